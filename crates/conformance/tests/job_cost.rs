//! A regression guard for the cost of one sequential job (issue 13) that does not depend on
//! the machine's speed: the thread wake-ups (voluntary context switches: a thread ran out of
//! work, blocked, and another woke it) of the whole process (server, engine on the memory
//! store, client and worker, all in this test; Linux `/proc`) per `k01` job (create_job → task_ready → get_task →
//! task_done → job_done), counted over many jobs run one at a time and compared with the
//! figures stored below.
//!
//! Updating the baseline: run
//! `cargo test -p jobcenter-conformance --test job_cost -- --nocapture`, which prints the
//! measured figures, and set [`WAKEUPS_PER_JOB`] to it (round up).
//! Do so when a change makes a job cheaper (lock the gain in) or, with a reason in the
//! commit message, when a change has to make it dearer. See BENCHMARKS.md, "Latency".

use std::collections::HashMap;

use jobcenter::{Action, Task};
use jobcenter_conformance::{part4_fixtures, quiet_timers, TestServer};
use serde_json::{json, Value};

/// Thread wake-ups per sequential job, whole process: voluntary context switches summed over
/// its threads (a thread that runs out of work and blocks, to be woken by another). The
/// stored baseline; the test fails above it times [`TOLERANCE`].
const WAKEUPS_PER_JOB: f64 = 5.0;

/// How much worse than the baseline a run may be (timing moves a few wake-ups).
const TOLERANCE: f64 = 1.3;

/// Jobs run before counting (connections, buffers and caches warmed up).
const WARM_UP: usize = 50;

/// Jobs counted.
const JOBS: usize = 400;

/// Voluntary context switches of each thread of this process, by thread id.
fn wakeups() -> Option<HashMap<String, u64>> {
    let mut out = HashMap::new();
    for entry in std::fs::read_dir("/proc/self/task").ok()? {
        let Ok(entry) = entry else { continue };
        let Ok(text) = std::fs::read_to_string(entry.path().join("status")) else {
            continue; // the thread ended meanwhile
        };
        let n = text
            .lines()
            .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
            .and_then(|v| v.trim().parse().ok())?;
        out.insert(entry.file_name().to_string_lossy().into_owned(), n);
    }
    Some(out)
}

/// Voluntary context switches since `before`, over the threads alive now.
fn wakeups_since(before: &HashMap<String, u64>) -> Option<u64> {
    let now = wakeups()?;
    Some(
        now.iter()
            .map(|(tid, n)| n.saturating_sub(before.get(tid).copied().unwrap_or(0)))
            .sum(),
    )
}

fn add(t: &Task) -> Result<Value, String> {
    let counter = t
        .inargs
        .get("counter")
        .and_then(Value::as_i64)
        .ok_or("no counter")?;
    Ok(json!({ "counter": counter + 1 }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sequential_job_costs_no_more_than_the_baseline() {
    let mut server = TestServer::start(part4_fixtures(), quiet_timers())
        .await
        .unwrap_or_else(|e| panic!("server: {e}"));
    let worker = server.worker().await.unwrap_or_else(|e| panic!("{e}"));
    worker
        .announce(Action::new("c_add").run_async(|t| async move { add(&t) }))
        .await
        .unwrap_or_else(|e| panic!("announce: {e}"));
    let client = server.client().await.unwrap_or_else(|e| panic!("{e}"));

    let run = |n: usize| {
        let client = &client;
        async move {
            for i in 0..n {
                let input = i64::try_from(i).unwrap_or(0);
                let r = client
                    .call("k01", json!({ "input": input }))
                    .await
                    .unwrap_or_else(|e| panic!("job {i}: {e}"));
                assert_eq!(r.outargs, json!({ "output": input + 1 }), "job {i}");
            }
        }
    };
    run(WARM_UP).await;
    let wake_before = wakeups();
    run(JOBS).await;
    let wake = wake_before
        .and_then(|b| wakeups_since(&b))
        .map(|n| n as f64 / JOBS as f64);
    println!("per sequential job: {wake:?} thread wake-ups");

    if let Some(wake) = wake {
        assert!(
            wake <= WAKEUPS_PER_JOB * TOLERANCE,
            "{wake:.2} thread wake-ups per job, baseline {WAKEUPS_PER_JOB} (see the module docs)"
        );
    }
    drop(client);
    drop(worker);
    server.shutdown().await;
}
