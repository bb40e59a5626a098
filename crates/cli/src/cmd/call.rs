//! `jobcenter call`: create jobs and print their results, one or many (--batch).

use std::io::{BufRead, IsTerminal, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::stream::{FuturesUnordered, StreamExt};
use jobcenter::{Client, ClientError, JobResult};
use serde_json::{json, Value};

use crate::args::CallArgs;
use crate::cmd::conn::connect;
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
    let common = Common { job_timeout, clenv };
    match &a.batch {
        Some(path) => {
            let specs = read_batch(path, a.batch_wfname.as_deref(), a.vtag.as_deref())?;
            let client = connect(&a.conn).await?;
            let code = run_batch(&client, specs, &common, a.in_flight.max(1)).await;
            client.close();
            Ok(code)
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
            let client = connect(&a.conn).await?;
            let result = submit(&client, spec, &common).await;
            client.close();
            let result = result.map_err(|e| Failure::connection(e.to_string()))?;
            match result.job_id {
                Some(id) => eprintln!("job_id {id}"),
                None => eprintln!("job not created"),
            }
            crate::cmd::emit(&result.outargs);
            Ok(u8::from(result.is_error()))
        }
    }
}

async fn submit(client: &Client, spec: JobSpec, common: &Common) -> Result<JobResult, ClientError> {
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
    req.call().await
}

/// Read the JSON lines of a batch: `{"wfname":..,"inargs":..,"vtag":..}`, or bare inargs
/// objects when `--wfname` is given. Blank lines are skipped (line numbers still count).
fn read_batch(
    path: &std::path::Path,
    default_wf: Option<&str>,
    default_vtag: Option<&str>,
) -> Result<Vec<(usize, JobSpec)>, Failure> {
    let reader: Box<dyn BufRead> = if path.as_os_str() == "-" {
        Box::new(std::io::BufReader::new(std::io::stdin()))
    } else {
        let f = std::fs::File::open(path)
            .map_err(|e| Failure::usage(format!("cannot open {}: {e}", path.display())))?;
        Box::new(std::io::BufReader::new(f))
    };
    let mut specs = Vec::new();
    for (i, line) in reader.lines().enumerate() {
        let n = i + 1;
        let line = line.map_err(|e| Failure::usage(format!("line {n}: {e}")))?;
        if line.trim().is_empty() {
            continue;
        }
        let v: Value = serde_json::from_str(&line)
            .map_err(|e| Failure::usage(format!("line {n}: not JSON: {e}")))?;
        let spec = match (&v, default_wf) {
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
        specs.push((n, spec));
    }
    Ok(specs)
}

/// Submit every job with at most `in_flight` outstanding; print one result line per job and
/// a summary on stderr. Exit status 0 if every job succeeded, 1 otherwise.
async fn run_batch(
    client: &Client,
    specs: Vec<(usize, JobSpec)>,
    common: &Common,
    in_flight: usize,
) -> u8 {
    let total = specs.len() as u64;
    let bar = if std::io::stderr().is_terminal() {
        let bar = indicatif::ProgressBar::new(total);
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{bar:40} {pos}/{len} jobs  {per_sec}  eta {eta}",
        ) {
            bar.set_style(style);
        }
        Some(bar)
    } else {
        None
    };
    let common = Arc::new(common.clone());
    let started = Instant::now();
    let (mut ok, mut failed, mut lost) = (0u64, 0u64, 0u64);
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut pending = specs.into_iter();
    let mut running = FuturesUnordered::new();
    loop {
        while running.len() < in_flight {
            let Some((line, spec)) = pending.next() else {
                break;
            };
            let client = client.clone();
            let common = common.clone();
            running.push(async move { (line, submit(&client, spec, &common).await) });
        }
        let Some((line, result)) = running.next().await else {
            break;
        };
        let record = match result {
            Ok(r) => {
                if r.is_error() {
                    failed += 1;
                } else {
                    ok += 1;
                }
                json!({"line": line, "job_id": r.job_id, "outargs": r.outargs})
            }
            Err(e) => {
                lost += 1;
                json!({"line": line, "job_id": null, "outargs": {"error": e.to_string()}})
            }
        };
        // A closed stdout (e.g. `| head`) must not abort the jobs in flight.
        let _ = writeln!(out, "{record}");
        if let Some(bar) = &bar {
            bar.inc(1);
        }
    }
    let _ = out.flush();
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let secs = started.elapsed().as_secs_f64();
    let done = ok + failed + lost;
    let rate = if secs > 0.0 { done as f64 / secs } else { 0.0 };
    eprintln!(
        "{done} jobs: {ok} ok, {failed} failed, {lost} not completed, in {secs:.2} s ({rate:.0} jobs/s)"
    );
    u8::from(failed + lost > 0)
}
