//! Running a task in a child process: inargs as JSON on stdin, outargs as JSON on stdout.

use std::ffi::{OsStr, OsString};
use std::path::PathBuf;
use std::process::Stdio;

use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;

/// A program to run for each task (the `subproc` mode of the Perl client).
///
/// Protocol with the child: stdin receives one JSON object
/// `{"job_id": J, "inargs": {...}}` (plus `"env": {...}` when the action has `addenv`), then
/// end-of-file. The child prints the outargs JSON object on stdout and exits 0. A non-zero
/// exit gives outargs `{"error": "<stderr text>"}` (or the exit status when stderr is empty);
/// output that is not JSON gives `{"error": "invalid json from subprocess: ..."}`.
/// The environment variables `JOBCENTER_JOB_ID` and `JOBCENTER_ACTION` are set as well.
///
/// ```
/// use jobcenter::Subprocess;
/// let sp = Subprocess::new("python3").arg("-c").arg("import sys,json; print(json.dumps({'ok':1}))");
/// # let _ = sp;
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Subprocess {
    program: OsString,
    args: Vec<OsString>,
    envs: Vec<(OsString, Option<OsString>)>,
    current_dir: Option<PathBuf>,
}

impl Subprocess {
    /// Run `program` (looked up in `PATH` like [`std::process::Command`]).
    pub fn new(program: impl AsRef<OsStr>) -> Self {
        Subprocess {
            program: program.as_ref().to_owned(),
            args: Vec::new(),
            envs: Vec::new(),
            current_dir: None,
        }
    }

    /// Add an argument.
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    /// Add several arguments.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// Set an environment variable for the child.
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.envs
            .push((key.as_ref().to_owned(), Some(value.as_ref().to_owned())));
        self
    }

    /// Run the child in `dir`.
    pub fn current_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.current_dir = Some(dir.into());
        self
    }

    /// Run the child for one task of `action` (its job id, inargs and, with `addenv`, its
    /// env): `Ok(outargs)` (possibly not an object; the caller checks) or `Err(error text)`.
    pub(crate) async fn run(
        &self,
        action: &str,
        job_id: i64,
        inargs: &Value,
        env: Option<&Value>,
    ) -> Result<Value, String> {
        let mut cmd = tokio::process::Command::new(&self.program);
        cmd.args(&self.args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .env("JOBCENTER_JOB_ID", job_id.to_string())
            .env("JOBCENTER_ACTION", action);
        for (k, v) in &self.envs {
            match v {
                Some(v) => cmd.env(k, v),
                None => cmd.env_remove(k),
            };
        }
        if let Some(d) = &self.current_dir {
            cmd.current_dir(d);
        }
        let mut input = json!({ "job_id": job_id, "inargs": inargs });
        if let (Some(env), Some(m)) = (env, input.as_object_mut()) {
            m.insert("env".into(), env.clone());
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", self.program.to_string_lossy()))?;
        if let Some(mut stdin) = child.stdin.take() {
            let bytes = input.to_string().into_bytes();
            // Write concurrently with reading the output, so a chatty child cannot deadlock.
            tokio::spawn(async move {
                if let Err(e) = stdin.write_all(&bytes).await {
                    tracing::debug!("subprocess stdin: {e}");
                }
                // stdin dropped here: the child sees end-of-file.
            });
        }
        let out = child
            .wait_with_output()
            .await
            .map_err(|e| format!("subprocess failed: {e}"))?;
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
            return Err(if stderr.trim().is_empty() {
                format!("subprocess {}", out.status)
            } else {
                stderr
            });
        }
        let stdout = String::from_utf8_lossy(&out.stdout);
        if stdout.trim().is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(stdout.trim())
            .map_err(|e| format!("invalid json from subprocess: {e}"))
    }
}

impl From<&std::process::Command> for Subprocess {
    fn from(c: &std::process::Command) -> Self {
        Subprocess {
            program: c.get_program().to_owned(),
            args: c.get_args().map(OsStr::to_owned).collect(),
            envs: c
                .get_envs()
                .map(|(k, v)| (k.to_owned(), v.map(OsStr::to_owned)))
                .collect(),
            current_dir: c.get_current_dir().map(PathBuf::from),
        }
    }
}

impl From<std::process::Command> for Subprocess {
    fn from(c: std::process::Command) -> Self {
        Subprocess::from(&c)
    }
}
