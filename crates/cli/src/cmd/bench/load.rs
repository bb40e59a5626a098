//! The load: worker connections serving the `add` action, and submitters running jobs,
//! pings or status queries with a window of requests in flight.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::stream::{FuturesUnordered, StreamExt};
use jobcenter::{Action, Client, ClientConfig, JobStatus, Worker};
use serde_json::Value;

use super::report::Samples;
use super::spec::{self, Template};

/// What one submitted operation is.
#[derive(Debug, Clone)]
pub enum Op {
    /// Create a job and wait for its outargs, which must equal the filled `expect`.
    Call {
        /// Workflow name.
        wfname: String,
        /// Inargs template.
        inargs: Template,
        /// Expected outargs template.
        expect: Template,
        /// Padding text for `$pad`.
        pad: Arc<str>,
    },
    /// A bare `ping` round trip (the answer must contain `pong`).
    Ping {
        /// Per-ping timeout.
        timeout: Duration,
    },
    /// `get_job_status` of a finished job, whose outargs must equal `expect`.
    Status {
        /// The finished job.
        job_id: i64,
        /// Its outargs.
        expect: Value,
    },
}

/// Connect `count` workers, each announcing `action` with `slots` slots and the `add`
/// handler.
pub async fn start_workers(
    cfg: &ClientConfig,
    count: usize,
    slots: u32,
    action: &str,
) -> Result<Vec<Worker>, String> {
    let mut workers = Vec::with_capacity(count);
    for i in 0..count {
        let cfg = cfg
            .clone()
            .workername(format!("bench-worker-{}-{i}", std::process::id()))
            .ping_timeout(Duration::ZERO);
        let w = Worker::connect(cfg)
            .await
            .map_err(|e| format!("worker {i}: cannot connect: {e}"))?;
        let a = Action::new(action)
            .slots(slots.max(1))
            .run_async(|t| async move { spec::add(&t.inargs) });
        w.announce(a)
            .await
            .map_err(|e| format!("worker {i}: announce {action}: {e}"))?;
        workers.push(w);
    }
    Ok(workers)
}

/// Connect `count` client connections, at most `parallel` handshakes at a time.
pub async fn connect_clients(
    cfg: &ClientConfig,
    count: usize,
    parallel: usize,
) -> Result<Vec<Client>, String> {
    let results: Vec<_> = futures::stream::iter(0..count)
        .map(|i| {
            let cfg = cfg.clone();
            async move {
                Client::connect(cfg)
                    .await
                    .map_err(|e| format!("client {i}: cannot connect: {e}"))
            }
        })
        .buffer_unordered(parallel.max(1))
        .collect()
        .await;
    results.into_iter().collect()
}

/// Run operations `first..first+count` on `client` with up to `window` in flight.
pub async fn submit(
    client: Client,
    op: Arc<Op>,
    first: u64,
    count: u64,
    window: usize,
    done: Arc<AtomicU64>,
) -> Samples {
    let mut samples = Samples::new();
    let mut next = first;
    let end = first + count;
    let mut running = FuturesUnordered::new();
    loop {
        while running.len() < window.max(1) && next < end {
            let n = next;
            next += 1;
            let client = client.clone();
            let op = op.clone();
            running.push(async move {
                let t0 = Instant::now();
                let r = one(&client, &op, n).await;
                (t0.elapsed(), r)
            });
        }
        let Some((took, r)) = running.next().await else {
            break;
        };
        match r {
            Ok(()) => samples.record(took),
            Err(e) => samples.error(e),
        }
        done.fetch_add(1, Ordering::Relaxed);
    }
    samples
}

/// One operation; `Err` with a message when it failed or its result is wrong.
async fn one(client: &Client, op: &Op, n: u64) -> Result<(), String> {
    let n = i64::try_from(n).map_err(|_| "job number overflow".to_string())?;
    match op {
        Op::Call {
            wfname,
            inargs,
            expect,
            pad,
        } => {
            let res = client
                .job(wfname)
                .inargs(inargs.fill(n, pad))
                .call()
                .await
                .map_err(|e| format!("job {n}: {e}"))?;
            let want = expect.fill(n, pad);
            if spec::same(&res.outargs, &want) {
                Ok(())
            } else {
                Err(format!(
                    "job {n} ({:?}): got {}, want {}",
                    res.job_id,
                    abbreviate(&res.outargs),
                    abbreviate(&want)
                ))
            }
        }
        Op::Ping { timeout } => {
            if client.ping_timeout(*timeout).await {
                Ok(())
            } else {
                Err("ping failed".to_string())
            }
        }
        Op::Status { job_id, expect } => match client.get_job_status(*job_id).await {
            Ok(JobStatus::Finished(v)) if spec::same(&v, expect) => Ok(()),
            Ok(other) => Err(format!("status of {job_id}: {other:?}")),
            Err(e) => Err(format!("status of {job_id}: {e}")),
        },
    }
}

/// At most 200 characters of a JSON value (padding makes results huge).
fn abbreviate(v: &Value) -> String {
    let s = v.to_string();
    if s.len() <= 200 {
        s
    } else {
        let mut cut = 200;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        format!("{}... ({} bytes)", &s[..cut], s.len())
    }
}
