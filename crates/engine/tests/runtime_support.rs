//! Test support for the runtime tests: an engine over the Part 4 fixtures, reference
//! workers of docs/JCL.md Part 4 driven by `ActionReady` events, and result matching with
//! `<J>`/`<C>`/`<T>` placeholders and numbers compared by value.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use jobcenter_engine::backend::{Backend, CreateJob, Event, JobId, JobStatus};
use jobcenter_engine::compile::{Catalog, Stage};
use jobcenter_engine::{Engine, EngineConfig};
use parking_lot::Mutex;
use serde_json::{json, Map, Value};

/// The fixtures folder of docs/JCL.md Part 4.
pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/jcl")
}

/// A catalog with every fixture loaded (Stage C, so every file compiles).
pub fn fixture_catalog() -> Catalog {
    let mut cat = Catalog::with_stage(Stage::C);
    cat.register_locktype("slot");
    cat.register_locktype("abc");
    let report = cat.load_dir(fixtures());
    assert!(
        report.is_ok(),
        "fixtures failed to load: {:?}",
        report.errors
    );
    cat
}

/// The Part 4 run configuration: global env `{"version": "0.1"}`.
pub fn part4_config() -> EngineConfig {
    EngineConfig {
        global_env: json!({"version": "0.1"})
            .as_object()
            .cloned()
            .unwrap_or_default(),
        ..EngineConfig::default()
    }
}

/// What a reference worker received for one attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct Received {
    pub action: String,
    pub job_id: JobId,
    pub inargs: Value,
    pub env: Value,
}

/// An engine plus the reference workers.
pub struct Harness {
    pub engine: Arc<Engine>,
    pub received: Arc<Mutex<Vec<Received>>>,
}

pub const WORKER: &str = "refworker";
pub const ACTIONS: [&str; 5] = ["c_add", "c_fail", "c_echo", "c_soft", "c_slow"];

/// The reference worker's answer (None: never answer, like `c_slow`).
pub fn reference_result(
    action: &str,
    inargs: &Value,
    attempts: &mut HashMap<JobId, i64>,
    job: JobId,
    env: &Value,
) -> Option<Value> {
    use jobcenter_testkit::reference;
    match action {
        "c_add" => Some(reference::c_add(inargs)),
        "c_fail" => Some(reference::c_fail(inargs)),
        "c_echo" => Some(reference::c_echo(inargs, env)),
        "c_soft" => {
            let n = attempts.entry(job).or_insert(0);
            *n += 1;
            Some(reference::c_soft(inargs, *n))
        }
        _ => None,
    }
}

/// Announce `actions` as worker `worker` of user `who`, then claim every task offered for
/// them (`ActionReady`) and finish it with what `answer(action, job, inargs, env)` gives
/// (`None`: the task is never answered).
pub async fn serve_actions<F>(
    engine: &Arc<Engine>,
    worker: &str,
    who: &str,
    actions: &[&str],
    mut answer: F,
) where
    F: FnMut(&str, JobId, &Value, &Value) -> Option<Value> + Send + 'static,
{
    let mut events = engine.subscribe();
    for a in actions {
        engine
            .announce(worker.into(), a.to_string(), who.into(), None)
            .await
            .unwrap_or_else(|e| panic!("announce {a}: {}", e.message));
    }
    let e2 = engine.clone();
    let worker = worker.to_string();
    tokio::spawn(async move {
        while let Some(ev) = events.recv().await {
            let Event::ActionReady { action, job_id, .. } = ev else {
                continue;
            };
            let Ok(Some(claim)) = e2
                .get_task(worker.clone(), action.clone(), Some(job_id))
                .await
            else {
                continue;
            };
            if let Some(out) = answer(&action, job_id, &claim.inargs, &claim.env) {
                let _ = e2.task_done(claim.cookie, out).await;
            }
        }
    });
}

impl Harness {
    /// Engine over the fixtures with the Part 4 config, reference workers announced.
    pub async fn new() -> Harness {
        Harness::with(fixture_catalog(), part4_config(), &ACTIONS).await
    }

    /// Engine over `catalog`; a reference worker serving `actions` (may be empty).
    pub async fn with(catalog: Catalog, config: EngineConfig, actions: &[&str]) -> Harness {
        let engine = Engine::new(catalog, jobcenter_store::MemoryStore::new(), config).start();
        let received = Arc::new(Mutex::new(Vec::new()));
        let rec = received.clone();
        let mut attempts = HashMap::new();
        serve_actions(
            &engine,
            WORKER,
            "jc_admin",
            actions,
            move |action, job_id, inargs, env| {
                rec.lock().push(Received {
                    action: action.to_string(),
                    job_id,
                    inargs: inargs.clone(),
                    env: env.clone(),
                });
                reference_result(action, inargs, &mut attempts, job_id, env)
            },
        )
        .await;
        Harness { engine, received }
    }

    /// Create a job as `jc_admin` and wait for its final output; `Err(message)` if rejected.
    pub async fn run(&self, wf: &str, inargs: Value) -> Result<Value, String> {
        run_job(&self.engine, wf, inargs).await.map(|(_, v)| v)
    }

    /// Run every case of `c` in `fixtures/jcl_cases.json` (see [`jcl_cases`]) and check it.
    pub async fn cases(&self, c: &str) {
        for case in jcl_cases(c) {
            let got = self.run(&case.wf, case.inargs.clone()).await;
            let what = format!("{c}: {} {}", case.wf, case.inargs);
            match (&case.expect, &got) {
                (jobcenter_testkit::Expect::Out(want), Ok(v)) => {
                    assert!(matches(want, v), "{what}\nexpected {want}\n     got {v}")
                }
                (jobcenter_testkit::Expect::Rejected(msg), Err(e)) => {
                    assert_eq!(e, msg, "{what}")
                }
                (want, got) => panic!("{what}: expected {want:?}, got {got:?}"),
            }
        }
    }

    /// Like [`Harness::run`], also returning the job id.
    pub async fn run_id(&self, wf: &str, inargs: Value) -> Result<(JobId, Value), String> {
        run_job(&self.engine, wf, inargs).await
    }

    /// What the workers received for a job.
    pub fn received_for(&self, job: JobId) -> Vec<Received> {
        self.received
            .lock()
            .iter()
            .filter(|r| r.job_id == job)
            .cloned()
            .collect()
    }
}

/// A `create_job` request for `wf` with `inargs` (an object) by `jc_admin`, no version tag.
pub fn job_request(wf: &str, inargs: Value) -> CreateJob {
    CreateJob {
        wfname: wf.into(),
        inargs: obj(inargs),
        vtag: None,
        who: "jc_admin".into(),
        env: None,
    }
}

/// Create a [`job_request`] job; panics if it is rejected.
pub async fn create<B: Backend>(engine: &Arc<B>, wf: &str, inargs: Value) -> JobId {
    engine
        .create_job(job_request(wf, inargs))
        .await
        .expect("job created")
}

/// Create a job and wait (at most 10 s) for it to finish.
pub async fn run_job<B: Backend>(
    engine: &Arc<B>,
    wf: &str,
    inargs: Value,
) -> Result<(JobId, Value), String> {
    let mut events = engine.subscribe();
    let id = engine
        .create_job(job_request(wf, inargs))
        .await
        .map_err(|e| e.message)?;
    wait_finished(engine, &mut events, id)
        .await
        .map(|v| (id, v))
}

/// Wait (at most 10 s) for `job:finished` of `id` on `events`, then fetch the status.
pub async fn wait_finished<B: Backend>(
    engine: &Arc<B>,
    events: &mut tokio::sync::mpsc::UnboundedReceiver<Event>,
    id: JobId,
) -> Result<Value, String> {
    wait_finished_within(engine, events, id, Duration::from_secs(10)).await
}

/// Wait (at most `limit`) for `job:finished` of `id` on `events`, then fetch the status: the
/// final output, or why there is none.
pub async fn wait_finished_within<B: Backend>(
    engine: &Arc<B>,
    events: &mut tokio::sync::mpsc::UnboundedReceiver<Event>,
    id: JobId,
    limit: Duration,
) -> Result<Value, String> {
    let wait = async {
        while let Some(ev) = events.recv().await {
            if let Event::JobFinished { job_id, outargs } = ev {
                if job_id == id {
                    return Some(outargs);
                }
            }
        }
        None
    };
    let carried = match tokio::time::timeout(limit, wait).await {
        Ok(Some(outargs)) => outargs,
        _ => return Err(format!("job {id} did not finish")),
    };
    match engine.get_job_status(id).await {
        // The event carries the result the server tells its clients: the same as stored.
        Ok(JobStatus::Finished(v)) if carried.as_ref().is_none_or(|c| *c == v) => Ok(v),
        Ok(JobStatus::Finished(v)) => Err(format!(
            "job:finished carried {carried:?}, the status says {v}"
        )),
        other => Err(format!("unexpected status {other:?}")),
    }
}

pub use jobcenter_testkit::matches;

/// Assert a job result against the expected value (with placeholders).
#[track_caller]
pub fn assert_out(actual: &Result<Value, String>, expected: Value) {
    match actual {
        Ok(v) => assert!(matches(&expected, v), "\nexpected {expected}\n     got {v}"),
        Err(e) => panic!("job was rejected: {e}; expected {expected}"),
    }
}

/// Assert that creating the job was rejected with exactly `msg`.
#[track_caller]
pub fn assert_rejected(actual: &Result<Value, String>, msg: &str) {
    match actual {
        Err(e) => assert_eq!(e, msg),
        Ok(v) => panic!("expected rejection {msg:?}, job finished with {v}"),
    }
}

/// The expected outputs shared with the end-to-end suite (`fixtures/jcl_error_cases.json`):
/// the `[mode, outargs]` pairs of workflow `wf` (`k40`: C28, `k42`: C29).
pub fn jcl_error_cases(wf: &str) -> Vec<(String, Value)> {
    let all: Value = serde_json::from_str(include_str!("fixtures/jcl_error_cases.json"))
        .expect("fixtures/jcl_error_cases.json is JSON");
    let cases: Vec<(String, Value)> =
        serde_json::from_value(all[wf].clone()).unwrap_or_else(|e| panic!("{wf}: {e}"));
    assert!(!cases.is_empty(), "no cases for {wf}");
    cases
}

/// The expected runs of case `c` (`C05`...) shared with the end-to-end suite
/// (`fixtures/jcl_cases.json`).
pub fn jcl_cases(c: &str) -> Vec<jobcenter_testkit::Case> {
    jobcenter_testkit::cases(include_str!("fixtures/jcl_cases.json"), c)
        .unwrap_or_else(|e| panic!("{e}"))
}

/// C42 (`fixtures/jcl_cases.json`): the `c42` files with their version tags, and the
/// `[vtag, version that runs]` pairs.
#[allow(clippy::type_complexity)]
pub fn c42_vtags() -> (Vec<(String, Option<String>)>, Vec<(Option<String>, String)>) {
    let text = include_str!("fixtures/jcl_cases.json");
    let files = jobcenter_testkit::entry(text, "C42_files").unwrap_or_else(|e| panic!("{e}"));
    let runs = jobcenter_testkit::entry(text, "C42_runs").unwrap_or_else(|e| panic!("{e}"));
    (files, runs)
}

/// An object literal helper.
pub fn obj(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap_or_default()
}
