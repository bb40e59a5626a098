//! `jobcenter call`: create jobs and print their results, one or many (--batch).

use std::io::{BufRead, IsTerminal, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::stream::{FuturesUnordered, StreamExt};
use jobcenter::{Client, ClientError, JobResult, JobStatus};
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::args::CallArgs;
use crate::cmd::conn::{client_config, connect_message};
use crate::cmd::{parse_object, Failure};

/// One job to submit.
#[derive(Debug, Clone)]
struct JobSpec {
    wfname: String,
    inargs: Value,
    vtag: Option<String>,
}

/// Options shared by every job of one invocation.
#[derive(Debug, Clone)]
struct Common {
    job_timeout: Option<Duration>,
    clenv: Option<Value>,
    reqauth: Option<Value>,
}

/// How a single `call` ended.
#[derive(Debug)]
enum Outcome {
    /// The job finished without an error.
    Finished,
    /// The job finished with an error object.
    JobFailed,
    /// The server did not create the job.
    NotCreated,
    /// The server's wait (`--job-timeout`) ran out; the job still runs.
    TimedOut,
    /// No connection or no login: nothing was sent.
    Unconnected,
    /// The connection broke once `create_job` was sent: the job's fate is unknown.
    Lost,
}

/// The exit status of `call` for each way it can end: the one place that maps them (keep
/// `args::CALL_EXIT_CODES`, shown by `call --help`, in step).
fn exit_code(outcome: &Outcome) -> u8 {
    match outcome {
        Outcome::Finished => 0,
        Outcome::JobFailed => 1,
        Outcome::Unconnected => 2,
        Outcome::NotCreated => 3,
        Outcome::TimedOut => 4,
        Outcome::Lost => 5,
    }
}

pub async fn run(a: CallArgs) -> Result<u8, Failure> {
    let job_timeout = match a.job_timeout {
        None => None,
        Some(t) if t.is_finite() && t >= 0.0 => Some(Duration::from_secs_f64(t)),
        Some(_) => {
            return Err(Failure::usage(
                "--job-timeout must be a number of seconds ≥ 0",
            ))
        }
    };
    let clenv = a
        .clenv
        .as_deref()
        .map(|t| parse_object("--clenv", t))
        .transpose()?;
    let reqauth = a
        .reqauth
        .as_deref()
        .map(|t| parse_object("--reqauth", t))
        .transpose()?;
    let common = Common {
        job_timeout,
        clenv,
        reqauth,
    };
    let cfg = client_config(&a.conn)?;
    let connect = || async {
        Client::connect(cfg.clone())
            .await
            .map_err(|e| connect_message(&cfg, &e))
    };
    match &a.batch {
        Some(path) => {
            let source = BatchSource::open(path, a.batch_wfname.clone(), a.vtag.clone())?;
            let client = match connect().await {
                Ok(c) => c,
                Err(msg) => {
                    eprintln!("jobcenter call: {msg}");
                    return Ok(exit_code(&Outcome::Unconnected));
                }
            };
            let result = run_batch(&client, source, &common, a.in_flight.max(1)).await;
            client.close();
            result
        }
        None => {
            let wfname = a
                .wfname
                .clone()
                .ok_or_else(|| Failure::usage("no workflow name given"))?;
            let inargs = parse_object("INARGS", &a.inargs)?;
            let spec = JobSpec {
                wfname,
                inargs,
                vtag: a.vtag.clone(),
            };
            let client = match connect().await {
                Ok(c) => c,
                Err(msg) => {
                    eprintln!("jobcenter call: {msg}");
                    return Ok(exit_code(&Outcome::Unconnected));
                }
            };
            let outcome = call_one(&client, spec, &common).await;
            client.close();
            Ok(exit_code(&outcome))
        }
    }
}

/// Create one job, say its id on stderr as soon as it exists, wait for it and print its
/// outargs on stdout.
async fn call_one(client: &Client, spec: JobSpec, common: &Common) -> Outcome {
    let handle = match request(client, spec, common).submit().await {
        Ok(h) => h,
        Err(ClientError::Invalid(msg)) => {
            // refused by the client library's own checks: nothing was sent
            eprintln!("job not created: {msg}");
            return Outcome::NotCreated;
        }
        Err(e) => {
            eprintln!(
                "jobcenter call: the connection broke while the job was being created ({e}); \
                 it may or may not exist"
            );
            return Outcome::Lost;
        }
    };
    let job_id = handle.job_id();
    let refused = handle.is_refused();
    match (job_id, refused) {
        (Some(id), false) => eprintln!("job {id} created"),
        _ => eprintln!("job not created"),
    }
    let result = match handle.outcome().await {
        Ok(r) => r,
        Err(e) => {
            match job_id {
                Some(id) => eprintln!(
                    "jobcenter call: the connection broke while waiting for job {id} ({e}); it \
                     may still run: `jobcenter status {id} --wait` waits for it"
                ),
                None => eprintln!("jobcenter call: the connection broke ({e})"),
            }
            return Outcome::Lost;
        }
    };
    if refused || job_id.is_none() {
        crate::cmd::emit(&result.outargs);
        return Outcome::NotCreated;
    }
    let Some(id) = job_id else {
        return Outcome::NotCreated;
    };
    let mut outargs = result.outargs;
    if outargs == json!({"error": "timeout"}) {
        // The server's answer when its wait ran out; a job may also fail with that very
        // error, so ask whether it still runs.
        match client.get_job_status(id).await {
            Ok(JobStatus::Finished(final_outargs)) => outargs = final_outargs,
            Ok(_) | Err(_) => {
                crate::cmd::emit(&outargs);
                eprintln!(
                    "jobcenter call: timed out waiting for job {id}; it is still running: \
                     `jobcenter status {id} --wait` waits for it"
                );
                return Outcome::TimedOut;
            }
        }
    }
    crate::cmd::emit(&outargs);
    if jobcenter::json::is_error_outargs(&outargs) {
        Outcome::JobFailed
    } else {
        Outcome::Finished
    }
}

fn request(client: &Client, spec: JobSpec, common: &Common) -> jobcenter::JobRequest {
    let mut req = client.job(&spec.wfname).inargs(spec.inargs);
    if let Some(v) = spec.vtag {
        req = req.vtag(v);
    }
    if let Some(t) = common.job_timeout {
        req = req.timeout(t);
    }
    if let Some(c) = &common.clenv {
        req = req.clenv(c.clone());
    }
    if let Some(r) = &common.reqauth {
        req = req.reqauth(r.clone());
    }
    req
}

async fn submit(client: &Client, spec: JobSpec, common: &Common) -> Result<JobResult, ClientError> {
    request(client, spec, common).call().await
}

/// One line of a batch: its number and job, or why it is bad.
type BatchItem = Result<(usize, JobSpec), Failure>;

/// Where the lines of `--batch` come from. A file is checked whole before anything is sent
/// (a bad line stops the batch before it starts); stdin (`-`) is read and sent line by line.
struct BatchSource {
    path: Option<std::path::PathBuf>,
    wfname: Option<String>,
    vtag: Option<String>,
    /// The number of jobs, when known in advance (a file).
    total: Option<u64>,
}

impl BatchSource {
    fn open(
        path: &std::path::Path,
        wfname: Option<String>,
        vtag: Option<String>,
    ) -> Result<BatchSource, Failure> {
        if path.as_os_str() == "-" {
            return Ok(BatchSource {
                path: None,
                wfname,
                vtag,
                total: None,
            });
        }
        let mut source = BatchSource {
            path: Some(path.to_path_buf()),
            wfname,
            vtag,
            total: None,
        };
        let mut total = 0;
        for (i, line) in source.reader()?.lines().enumerate() {
            let line = line.map_err(|e| Failure::usage(format!("line {}: {e}", i + 1)))?;
            if source.parse(i + 1, &line)?.is_some() {
                total += 1;
            }
        }
        source.total = Some(total);
        Ok(source)
    }

    fn reader(&self) -> Result<Box<dyn BufRead + Send>, Failure> {
        match &self.path {
            None => Ok(Box::new(std::io::BufReader::new(std::io::stdin()))),
            Some(path) => {
                let f = std::fs::File::open(path)
                    .map_err(|e| Failure::usage(format!("cannot open {}: {e}", path.display())))?;
                Ok(Box::new(std::io::BufReader::new(f)))
            }
        }
    }

    /// One line: `{"wfname":..,"inargs":..,"vtag":..}`, or a bare inargs object when
    /// `--wfname` is given; `None` for a blank line (line numbers still count).
    fn parse(&self, n: usize, line: &str) -> Result<Option<JobSpec>, Failure> {
        if line.trim().is_empty() {
            return Ok(None);
        }
        let v: Value = serde_json::from_str(line)
            .map_err(|e| Failure::usage(format!("line {n}: not JSON: {e}")))?;
        let default_vtag = self.vtag.as_deref();
        let spec = match (&v, self.wfname.as_deref()) {
            (Value::Object(m), _) if m.contains_key("wfname") => {
                let wfname = m
                    .get("wfname")
                    .and_then(Value::as_str)
                    .ok_or_else(|| Failure::usage(format!("line {n}: wfname must be a string")))?;
                let inargs = m.get("inargs").cloned().unwrap_or_else(|| json!({}));
                if !inargs.is_object() {
                    return Err(Failure::usage(format!("line {n}: inargs must be an object")));
                }
                let vtag = m
                    .get("vtag")
                    .and_then(Value::as_str)
                    .or(default_vtag)
                    .map(str::to_string);
                JobSpec {
                    wfname: wfname.to_string(),
                    inargs,
                    vtag,
                }
            }
            (Value::Object(_), Some(wf)) => JobSpec {
                wfname: wf.to_string(),
                inargs: v.clone(),
                vtag: default_vtag.map(str::to_string),
            },
            _ => {
                return Err(Failure::usage(format!(
                    "line {n}: expected {{\"wfname\":..,\"inargs\":..}} (or an inargs object with --wfname)"
                )))
            }
        };
        Ok(Some(spec))
    }

    /// Read the lines on a thread of their own and hand the jobs over one by one; a bad
    /// line ends the stream with its error.
    fn stream(self) -> Result<mpsc::Receiver<BatchItem>, Failure> {
        let reader = self.reader()?;
        let (tx, rx) = mpsc::channel(16);
        std::thread::spawn(move || {
            for (i, line) in reader.lines().enumerate() {
                let item = line
                    .map_err(|e| Failure::usage(format!("line {}: {e}", i + 1)))
                    .and_then(|line| self.parse(i + 1, &line));
                let stop = item.is_err();
                let send = match item {
                    Ok(None) => continue,
                    Ok(Some(spec)) => tx.blocking_send(Ok((i + 1, spec))),
                    Err(f) => tx.blocking_send(Err(f)),
                };
                if stop || send.is_err() {
                    break;
                }
            }
        });
        Ok(rx)
    }
}

/// Submit the jobs as they are read, with at most `in_flight` outstanding; print one result
/// line per job and a summary on stderr. Exit status 0 if every job succeeded, 1 otherwise;
/// a bad line stops reading, lets the jobs in flight finish, and fails with exit status 2.
async fn run_batch(
    client: &Client,
    source: BatchSource,
    common: &Common,
    in_flight: usize,
) -> Result<u8, Failure> {
    let bar = if std::io::stderr().is_terminal() {
        let (bar, template) = match source.total {
            Some(total) => (
                indicatif::ProgressBar::new(total),
                "{bar:40} {pos}/{len} jobs  {per_sec}  eta {eta}",
            ),
            None => (
                indicatif::ProgressBar::no_length(),
                "{spinner} {pos} jobs  {per_sec}",
            ),
        };
        if let Ok(style) = indicatif::ProgressStyle::with_template(template) {
            bar.set_style(style);
        }
        Some(bar)
    } else {
        None
    };
    let mut input = source.stream()?;
    let common = Arc::new(common.clone());
    let started = Instant::now();
    let (mut ok, mut failed, mut lost) = (0u64, 0u64, 0u64);
    let mut reading = true;
    let mut bad_line = None;
    let mut running = FuturesUnordered::new();
    loop {
        tokio::select! {
            biased;
            Some((line, result)) = running.next(), if !running.is_empty() => {
                let record = match result {
                    Ok(r) => {
                        let r: JobResult = r;
                        if r.is_error() {
                            failed += 1;
                        } else {
                            ok += 1;
                        }
                        json!({"line": line, "job_id": r.job_id, "outargs": r.outargs})
                    }
                    Err(e) => {
                        let e: ClientError = e;
                        lost += 1;
                        json!({"line": line, "job_id": null, "outargs": {"error": e.to_string()}})
                    }
                };
                // A closed stdout (e.g. `| head`) must not abort the jobs in flight; stdout
                // is line buffered, so each record is out before the next job ends.
                let _ = writeln!(std::io::stdout().lock(), "{record}");
                if let Some(bar) = &bar {
                    bar.inc(1);
                }
            }
            item = input.recv(), if reading && running.len() < in_flight => match item {
                Some(Ok((line, spec))) => {
                    let client = client.clone();
                    let common = common.clone();
                    running.push(async move { (line, submit(&client, spec, &common).await) });
                }
                Some(Err(f)) => {
                    bad_line = Some(f);
                    reading = false;
                }
                None => reading = false,
            },
            else => break,
        }
    }
    let _ = std::io::stdout().lock().flush();
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let secs = started.elapsed().as_secs_f64();
    let done = ok + failed + lost;
    let rate = if secs > 0.0 { done as f64 / secs } else { 0.0 };
    eprintln!(
        "{done} jobs: {ok} ok, {failed} failed, {lost} not completed, in {secs:.2} s ({rate:.0} jobs/s)"
    );
    match bad_line {
        Some(f) => Err(f),
        None => Ok(u8::from(failed + lost > 0)),
    }
}
