//! Shared harness of the `jobcenter` binary tests: child processes with kill-on-drop guards,
//! line-by-line access to their output, password files, and a `jobcenter serve` child.
#![allow(dead_code)] // each test binary uses a different part of the harness

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_jobcenter");

/// Upper bound for anything that should take well under a second (generous for a loaded CI box).
pub const BOUND: Duration = Duration::from_secs(30);

/// The client credentials every password file of these tests contains.
pub const CLIENT: (&str, &str) = ("theCustomer", "c-secret");
/// The worker credentials.
pub const WORKER: (&str, &str) = ("theEmployee", "w-secret");
/// The administrative identity that may call `get_api_status`.
pub const MEISTER: (&str, &str) = ("apimeister", "m-secret");

/// The example workflows of the repository.
pub fn examples_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/jcl"))
}

/// This crate's test fixtures.
pub fn fixtures_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures"))
}

/// A fixture action script, as a `--action NAME=COMMAND` argument.
pub fn action(name: &str, script: &str) -> String {
    let path = fixtures_dir().join("actions").join(script);
    format!("{name}=sh {}", path.display())
}

/// Write a password file with `$5$` (SHA-256-crypt) hashes of the three test identities.
pub fn password_file(dir: &Path) -> PathBuf {
    let path = dir.join("passwd");
    let mut text = String::from("# test identities\n");
    for (who, token) in [CLIENT, WORKER, MEISTER] {
        // $5$ is what the JobCenter password file speaks
        let hash = jobcenter_server::crypt::hash_sha256(token);
        text.push_str(&format!("{who}:{hash}\n"));
    }
    std::fs::write(&path, text).expect("write the password file");
    path
}

/// The result of a finished command.
#[derive(Debug)]
pub struct Output {
    /// Exit status (-1 when killed by a signal).
    pub code: i32,
    /// Standard output lines.
    pub stdout: Vec<String>,
    /// Standard error lines.
    pub stderr: Vec<String>,
}

impl Output {
    /// The stderr lines that are JSON log records (`--log-format json`), parsed.
    pub fn json_records(&self) -> Vec<serde_json::Value> {
        self.stderr
            .iter()
            .filter(|l| l.starts_with('{'))
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
            .collect()
    }

    /// The only stdout line, parsed as JSON (panics with the whole output otherwise).
    pub fn json_line(&self) -> serde_json::Value {
        assert_eq!(self.stdout.len(), 1, "want one stdout line: {self:#?}");
        serde_json::from_str(&self.stdout[0])
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self:#?}"))
    }

    /// Every stdout line parsed as JSON.
    pub fn json_lines(&self) -> Vec<serde_json::Value> {
        self.stdout
            .iter()
            .map(|l| {
                serde_json::from_str(l)
                    .unwrap_or_else(|e| panic!("stdout line {l:?} is not JSON ({e}): {self:#?}"))
            })
            .collect()
    }

    /// Assert the exit status, showing the output on mismatch.
    pub fn assert_code(&self, code: i32) -> &Self {
        assert_eq!(self.code, code, "exit status: {self:#?}");
        self
    }

    /// Assert stderr is exactly one line without a panic or backtrace, containing `needle`.
    pub fn assert_one_line_error(&self, needle: &str) -> &Self {
        assert_eq!(self.stderr.len(), 1, "want a one-line message: {self:#?}");
        let line = &self.stderr[0];
        assert!(line.contains(needle), "{needle:?} not in {line:?}");
        assert!(line.starts_with("jobcenter "), "{line:?}");
        for bad in ["panicked", "backtrace", "RUST_BACKTRACE"] {
            assert!(!line.contains(bad), "{line:?}");
        }
        self
    }
}

/// A running `jobcenter` child; killed when dropped (the guard against leaked processes).
pub struct Proc {
    /// What it is, for failure messages.
    pub name: String,
    child: Child,
    stdout: mpsc::UnboundedReceiver<String>,
    stderr: mpsc::UnboundedReceiver<String>,
    /// Stdout lines taken so far.
    pub seen_stdout: Vec<String>,
    /// Stderr lines taken so far.
    pub seen_stderr: Vec<String>,
}

fn forward_lines(r: impl AsyncRead + Unpin + Send + 'static) -> mpsc::UnboundedReceiver<String> {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut lines = BufReader::new(r).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// A command line for the binary with a clean environment (no JOBCENTER_* from outside).
pub fn jobcenter<I, S>(args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env_remove("JOBCENTER_ADDRESS")
        .env_remove("JOBCENTER_PORT")
        .env_remove("JOBCENTER_WHO")
        .env_remove("JOBCENTER_TOKEN")
        .env_remove("JOBCENTER_REQAUTH")
        .env_remove("RUST_LOG")
        // A `serve` that a test starts without `--store` must not write ./jobcenter.db
        // into the source tree; `Serve` passes a SQLite file in its own directory.
        .env("JOBCENTER_STORE", "memory")
        .env("RUST_BACKTRACE", "1")
        .kill_on_drop(true);
    cmd
}

impl Proc {
    /// Start `cmd` with piped output (stdin closed).
    pub fn spawn(name: &str, cmd: Command) -> Proc {
        Proc::spawn_with_stdin(name, cmd, false).0
    }

    /// Start `cmd` with piped output and, if asked, a piped stdin.
    pub fn spawn_with_stdin(
        name: &str,
        mut cmd: Command,
        stdin: bool,
    ) -> (Proc, Option<tokio::process::ChildStdin>) {
        cmd.stdin(if stdin { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        let stdin = child.stdin.take();
        let stdout = forward_lines(child.stdout.take().expect("piped stdout"));
        let stderr = forward_lines(child.stderr.take().expect("piped stderr"));
        let proc = Proc {
            name: name.to_string(),
            child,
            stdout,
            stderr,
            seen_stdout: Vec::new(),
            seen_stderr: Vec::new(),
        };
        (proc, stdin)
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id().expect("the child is still running")
    }

    /// Send a signal (`TERM`, `KILL`, ...) with kill(1).
    pub fn signal(&self, sig: &str) {
        let status = std::process::Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.pid().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{sig} {} failed", self.name);
    }

    /// Wait (bounded) for `serve`'s "listening on ADDR:PORT" line; the port.
    pub async fn listening_port(&mut self) -> u16 {
        let line = self.stderr_line("listening on").await;
        line.rsplit(':')
            .next()
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| panic!("no port in {line:?}"))
    }

    /// Wait (bounded) for a stderr line containing `needle` and return it.
    pub async fn stderr_line(&mut self, needle: &str) -> String {
        let found = tokio::time::timeout(BOUND, async {
            while let Some(line) = self.stderr.recv().await {
                self.seen_stderr.push(line.clone());
                if line.contains(needle) {
                    return Some(line);
                }
            }
            None
        })
        .await;
        match found {
            Ok(Some(line)) => line,
            Ok(None) => panic!(
                "{}: stderr ended without {needle:?}; stderr: {:#?}",
                self.name, self.seen_stderr
            ),
            Err(_) => panic!(
                "{}: no {needle:?} on stderr within {BOUND:?}; stderr: {:#?}",
                self.name, self.seen_stderr
            ),
        }
    }

    /// Wait (bounded) for the next stdout line and return it.
    pub async fn stdout_line(&mut self) -> String {
        match tokio::time::timeout(BOUND, self.stdout.recv()).await {
            Ok(Some(line)) => {
                self.seen_stdout.push(line.clone());
                line
            }
            Ok(None) => panic!(
                "{}: stdout ended; stderr: {:#?}",
                self.name, self.seen_stderr
            ),
            Err(_) => panic!(
                "{}: no stdout line within {BOUND:?}; stderr: {:#?}",
                self.name, self.seen_stderr
            ),
        }
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Wait (bounded) for the exit and collect the rest of the output.
    pub async fn finish(mut self) -> Output {
        let status = match tokio::time::timeout(BOUND, self.child.wait()).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => panic!("{}: wait failed: {e}", self.name),
            Err(_) => {
                let _ = self.child.start_kill();
                panic!(
                    "{} did not exit within {BOUND:?}; stderr so far: {:#?}",
                    self.name, self.seen_stderr
                )
            }
        };
        let mut stdout = std::mem::take(&mut self.seen_stdout);
        let mut stderr = std::mem::take(&mut self.seen_stderr);
        // The pipes reach end-of-file once the process (and any child holding them) is gone.
        let drained = tokio::time::timeout(BOUND, async {
            while let Some(l) = self.stdout.recv().await {
                stdout.push(l);
            }
            while let Some(l) = self.stderr.recv().await {
                stderr.push(l);
            }
        })
        .await;
        assert!(drained.is_ok(), "{}: output pipes stayed open", self.name);
        Output {
            code: status.code().unwrap_or(-1),
            stdout,
            stderr,
        }
    }
}

/// Run the binary to completion (bounded), with optional text on stdin.
pub async fn run_cmd(cmd: Command, stdin: Option<&str>) -> Output {
    let (proc, pipe) = Proc::spawn_with_stdin("jobcenter", cmd, stdin.is_some());
    if let (Some(mut pipe), Some(text)) = (pipe, stdin) {
        pipe.write_all(text.as_bytes()).await.expect("write stdin");
        drop(pipe);
    }
    proc.finish().await
}

/// Run `jobcenter ARGS` to completion with a clean environment.
pub async fn run(args: &[&str]) -> Output {
    run_cmd(jobcenter(args), None).await
}

/// A port nobody listens on (bound, then released).
pub fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("local addr").port()
}

/// A `jobcenter serve` child on a free loopback port, with its own password file.
pub struct Serve {
    /// The server process (killed on drop).
    pub proc: Proc,
    /// The port it listens on.
    pub port: u16,
    /// Holds the password file and the store (`DIR/jobcenter.db`, the default SQLite store).
    pub dir: tempfile::TempDir,
    /// The listen arguments, for [`Serve::restart`].
    listen: Vec<String>,
    /// The loaded paths, for [`Serve::restart`].
    load: Vec<PathBuf>,
}

impl Serve {
    /// Start `jobcenter serve --listen 127.0.0.1:0 --passwd FILE --load PATH...` and wait for
    /// the "listening on" line, then check the port accepts connections.
    pub async fn start(load: &[PathBuf]) -> Serve {
        Serve::start_with(&["--listen", "127.0.0.1:0"], load).await
    }

    /// Start `jobcenter serve LISTEN... --passwd FILE --load PATH...` (LISTEN must make it
    /// listen on exactly one address) and wait until it listens.
    pub async fn start_with(listen: &[&str], load: &[PathBuf]) -> Serve {
        let dir = tempfile::tempdir().expect("tempdir");
        let listen: Vec<String> = listen.iter().map(|a| a.to_string()).collect();
        let (proc, port) = Serve::spawn_in(dir.path(), &listen, load).await;
        Serve {
            proc,
            port,
            dir,
            listen,
            load: load.to_vec(),
        }
    }

    /// Kill the server (`kill -9`) and start it again with the same arguments on the same
    /// store; wait until it listens (on a new port).
    pub async fn restart(self) -> Serve {
        let Serve {
            proc,
            dir,
            listen,
            load,
            ..
        } = self;
        proc.signal("KILL");
        proc.finish().await;
        let (proc, port) = Serve::spawn_in(dir.path(), &listen, &load).await;
        Serve {
            proc,
            port,
            dir,
            listen,
            load,
        }
    }

    async fn spawn_in(dir: &Path, listen: &[String], load: &[PathBuf]) -> (Proc, u16) {
        let passwd = password_file(dir);
        let mut cmd = jobcenter(["serve"]);
        let store = format!("sqlite:{}", dir.join("jobcenter.db").display());
        cmd.args(listen)
            .arg("--passwd")
            .arg(&passwd)
            .arg("--store")
            .arg(store);
        for p in load {
            cmd.arg("--load").arg(p);
        }
        let mut proc = Proc::spawn("jobcenter serve", cmd);
        let port = proc.listening_port().await;
        // The line is printed once the listener is bound; one connect proves it.
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap_or_else(|e| panic!("serve said it listens on {port} but connect failed: {e}"));
        (proc, port)
    }

    /// Start a server with the repository's example workflows.
    pub async fn examples() -> Serve {
        Serve::start(&[examples_dir()]).await
    }

    /// A client command line, credentials and port in JOBCENTER_* environment variables.
    pub fn client(&self, args: &[&str]) -> Command {
        self.as_user(CLIENT, args)
    }

    /// A command line with the given identity in the environment (JOBCENTER_* variables).
    pub fn as_user(&self, (who, token): (&str, &str), args: &[&str]) -> Command {
        let mut cmd = jobcenter(args);
        cmd.env("JOBCENTER_PORT", self.port.to_string())
            .env("JOBCENTER_WHO", who)
            .env("JOBCENTER_TOKEN", token);
        cmd
    }

    /// Run a client command to completion.
    pub async fn run(&self, args: &[&str]) -> Output {
        run_cmd(self.client(args), None).await
    }

    /// Start `jobcenter work` with the given `--action NAME=COMMAND` specs and wait until it
    /// has announced them.
    pub async fn worker(&self, actions: &[String]) -> Proc {
        let mut cmd = self.as_user(WORKER, &["work"]);
        for a in actions {
            cmd.arg("--action").arg(a);
        }
        let mut proc = Proc::spawn("jobcenter work", cmd);
        proc.stderr_line("jobcenter work: serving").await;
        proc
    }
}

/// The job id in a `job N created` line of `jobcenter call`.
pub fn created_job_id(line: &str) -> Option<i64> {
    line.strip_prefix("job ")?
        .strip_suffix(" created")?
        .trim()
        .parse()
        .ok()
}

/// The job id that `jobcenter call` printed on stderr (`job N created`).
pub fn job_id(out: &Output) -> i64 {
    out.stderr
        .iter()
        .find_map(|l| created_job_id(l))
        .unwrap_or_else(|| panic!("no job id on stderr: {out:#?}"))
}
