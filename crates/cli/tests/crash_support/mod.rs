//! The crash test of a durable store (issue 9), shared by `crash_sqlite.rs` and
//! `crash_postgres.rs`: a driver keeps 1,000 `calladd` jobs in flight against the real
//! `jobcenter serve --store STORE`, records every answered `create_job` and every result,
//! `kill -9`s the server at random moments (at least [`KILLS`] times), restarts it on the same
//! store and port, and finally checks with `get_job_status` that every answered job exists and
//! finished with the expected result, that no result reported before a crash changed, and that
//! no task ran again after its job's result had been reported.
//!
//! The seed of the random kill moments is printed; `CRASH_SEED=N` replays a run, and
//! `CRASH_KILLS=N` kills more often (a soak run; never fewer than [`KILLS`]);
//! `CRASH_VERBOSE=1` prints a line per server run.
//!
//! A test file includes this module next to `cli_support` and calls [`crash_test`] with a
//! [`Setup`] saying how the server's store is given.

use std::collections::HashMap;
use std::ops::RangeInclusive;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::cli_support::{
    closed_port, examples_dir, jobcenter, password_file, Proc, BOUND, CLIENT, WORKER,
};
use jobcenter::{Action, Client, ClientConfig, ClientError, JobStatus, Worker};
use parking_lot::Mutex;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde_json::{json, Value};
use tokio::task::JoinSet;

/// How many times the server is killed by default (the issue asks for at least 20).
pub const KILLS: usize = 30;
/// Client connections of the driver.
const CLIENTS: usize = 4;
/// Jobs each client connection keeps in flight (4 x 250 = 1,000).
const PER_CLIENT: usize = 250;
/// Worker connections serving `add`.
const WORKERS: usize = 2;
/// Slots of each worker.
const WORKER_SLOTS: u32 = 64;
/// Load between a restart and the next kill, by default: a random number of milliseconds in
/// this range.
const LOAD_MS: RangeInclusive<u64> = 100..=600;
/// One kill in [`EARLY_EVERY`] comes this early instead, while the restarted server still
/// releases the previous run's workers and the clients reconnect.
const EARLY_MS: RangeInclusive<u64> = 0..=100;
const EARLY_EVERY: u32 = 5;
/// Bound of the final wait for every answered job to finish.
const DRAIN: Duration = Duration::from_secs(60);

/// How a crash test gives the server its store.
pub struct Setup {
    /// The test's name, prefixed to every printed line (`crash_sqlite`).
    pub name: &'static str,
    /// The `--store` argument of every `jobcenter serve` start (the same store each time).
    pub store: String,
    /// More arguments for every start (`--node NAME` for PostgreSQL).
    pub serve_args: Vec<String>,
    /// Load between a restart and the next kill (milliseconds, random in this range; one kill
    /// in [`EARLY_EVERY`] comes after [`EARLY_MS`] instead).
    pub load_ms: RangeInclusive<u64>,
}

impl Setup {
    /// The store argument `store`, no more arguments, the default load times.
    pub fn new(name: &'static str, store: String) -> Setup {
        Setup {
            name,
            store,
            serve_args: Vec::new(),
            load_ms: LOAD_MS,
        }
    }
}

/// A result as a client received it.
#[derive(Debug, Clone)]
struct Received {
    outargs: Value,
    /// The server run (0 = first start) whose connection delivered it.
    epoch: usize,
    /// Position in the process-wide order of recorded events.
    seq: u64,
}

/// One start of the `add` handler.
#[derive(Debug, Clone, Copy)]
struct Exec {
    epoch: usize,
    seq: u64,
}

/// Everything the driver and the workers observed, across all server runs.
#[derive(Default)]
struct Ledger {
    /// Every job whose `create_job` was answered: job id -> input.
    answered: HashMap<i64, i64>,
    /// Answered jobs without a result yet.
    pending: HashMap<i64, i64>,
    /// The first result received per job.
    results: HashMap<i64, Received>,
    /// Executions of the `add` task per job (all jobs, answered or not).
    execs: HashMap<i64, Vec<Exec>>,
    /// A later result of a job that differed from the first (should never happen).
    changed_live: Vec<(i64, Value, Value)>,
    /// Answered jobs that `get_job_status` did not know when resumed after a restart.
    unknown_on_resume: Vec<i64>,
    /// Job ids answered twice by `create_job`: (id, first input, second input).
    reused: Vec<(i64, i64, i64)>,
    /// `create_job` calls the server answered with a refusal.
    refused: Vec<Value>,
    /// `create_job` calls that got no answer (connection closed by a kill).
    unanswered: usize,
}

struct Shared {
    ledger: Mutex<Ledger>,
    /// Order of recorded events (results and executions).
    seq: AtomicU64,
    /// The next job input (distinct per job).
    next_input: AtomicI64,
    /// `create_job` calls sent and not answered yet.
    creating: AtomicUsize,
}

impl Shared {
    /// Jobs in flight: created or being created, no result yet.
    fn in_flight(&self) -> usize {
        self.ledger.lock().pending.len() + self.creating.load(Ordering::SeqCst)
    }

    fn tick(&self) -> u64 {
        self.seq.fetch_add(1, Ordering::SeqCst)
    }

    fn record_result(&self, job_id: i64, outargs: Value, epoch: usize) {
        let seq = self.tick();
        let mut l = self.ledger.lock();
        l.pending.remove(&job_id);
        match l.results.get(&job_id) {
            None => {
                l.results.insert(
                    job_id,
                    Received {
                        outargs,
                        epoch,
                        seq,
                    },
                );
            }
            Some(first) if first.outargs != outargs => {
                let before = first.outargs.clone();
                l.changed_live.push((job_id, before, outargs));
            }
            Some(_) => {}
        }
    }

    fn record_exec(&self, job_id: i64, epoch: usize) {
        let seq = self.tick();
        self.ledger
            .lock()
            .execs
            .entry(job_id)
            .or_default()
            .push(Exec { epoch, seq });
    }
}

/// The state of one server run, shared by its driver and worker tasks.
struct Run {
    epoch: usize,
    port: u16,
    /// False from just before the kill: a failed connect is then expected.
    alive: AtomicBool,
}

/// A free loopback port below the kernel's range for outgoing connections, so that no
/// connection takes it while the server is down between a kill and the restart.
fn stable_port() -> u16 {
    let low: u16 = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse().ok())
        .unwrap_or(32768);
    let mut rng = rand::rng();
    for _ in 0..100 {
        if low <= 10_000 {
            break;
        }
        let port = rng.random_range(10_000..low);
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    closed_port()
}

/// Start `jobcenter serve` on `port` with the store of `setup` and the password file in
/// `dir`; wait until it listens.
async fn start_server(setup: &Setup, dir: &Path, port: u16, epoch: usize) -> Proc {
    let passwd = dir.join("passwd");
    let mut cmd = jobcenter(["serve"]);
    cmd.arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--passwd")
        .arg(&passwd)
        .arg("--load")
        .arg(examples_dir())
        .arg("--store")
        .arg(&setup.store)
        .args(&setup.serve_args);
    let mut proc = Proc::spawn(&format!("jobcenter serve (run {epoch})"), cmd);
    proc.stderr_line("listening on").await;
    proc
}

fn config((who, token): (&str, &str), port: u16) -> ClientConfig {
    ClientConfig::new(who, token)
        .port(port)
        .timeout(Duration::from_secs(10))
}

/// Connect; a failure while the server should be up is retried a few times, then fatal.
async fn connect(run: &Run, (who, token): (&str, &str)) -> Option<Client> {
    let mut last = None;
    for _ in 0..3 {
        match Client::connect(config((who, token), run.port)).await {
            Ok(c) => return Some(c),
            Err(_) if !run.alive.load(Ordering::SeqCst) => return None,
            Err(e) => last = Some(e),
        }
    }
    if !run.alive.load(Ordering::SeqCst) {
        return None;
    }
    panic!(
        "run {}: {who} cannot connect to a live server: {last:?}",
        run.epoch
    );
}

/// One worker connection for a server run: serves `add` until the connection closes.
async fn work(shared: Arc<Shared>, run: Arc<Run>, n: usize) {
    let Some(client) = connect(&run, WORKER).await else {
        return;
    };
    let worker = Worker::from_client(client);
    let epoch = run.epoch;
    let s = shared.clone();
    let add = Action::new("add")
        .slots(WORKER_SLOTS)
        .workername(format!("crash-worker-{epoch}-{n}"))
        .run_async(move |task| {
            s.record_exec(task.job_id, epoch);
            async move {
                let counter = &task.inargs["counter"];
                let step = &task.inargs["step"];
                match (counter.as_i64(), step.as_i64()) {
                    (Some(c), Some(s)) => Ok(json!({ "counter": c + s })),
                    _ => match (counter.as_f64(), step.as_f64()) {
                        (Some(c), Some(s)) => Ok(json!({ "counter": c + s })),
                        _ => Err(format!("bad inargs {}", task.inargs)),
                    },
                }
            }
        });
    if let Err(e) = worker.announce(add).await {
        assert!(
            !run.alive.load(Ordering::SeqCst) || !worker.client().is_connected(),
            "run {epoch}: announce failed on a live server: {e}"
        );
        return;
    }
    worker.work().await;
}

/// What the job task of a driver did.
enum JobEnd {
    /// The connection closed before the job's result arrived (or before it was answered).
    Interrupted,
    /// The job got its result.
    Done,
}

/// Create one new job and wait for its result.
async fn new_job(shared: Arc<Shared>, client: Client, epoch: usize) -> JobEnd {
    let input = shared.next_input.fetch_add(1, Ordering::SeqCst);
    shared.creating.fetch_add(1, Ordering::SeqCst);
    let submitted = client
        .job("calladd")
        .inargs(json!({ "input": input }))
        .timeout(Duration::from_secs(3600))
        .submit()
        .await;
    let handle = match submitted {
        Ok(h) => h,
        Err(_) => {
            shared.creating.fetch_sub(1, Ordering::SeqCst);
            shared.ledger.lock().unanswered += 1;
            return JobEnd::Interrupted;
        }
    };
    let Some(job_id) = handle.job_id().filter(|_| !handle.is_refused()) else {
        shared.creating.fetch_sub(1, Ordering::SeqCst);
        let why = match handle.outcome().await {
            Ok(r) => r.outargs,
            Err(e) => json!(e.to_string()),
        };
        shared.ledger.lock().refused.push(why);
        return JobEnd::Done;
    };
    {
        let mut l = shared.ledger.lock();
        shared.creating.fetch_sub(1, Ordering::SeqCst);
        if let Some(first) = l.answered.get(&job_id).copied() {
            // The id of an answered job was given out again: the first job was lost (and
            // the store's id sequence went back).
            l.reused.push((job_id, first, input));
            return JobEnd::Done;
        }
        l.answered.insert(job_id, input);
        l.pending.insert(job_id, input);
    }
    match handle.outcome().await {
        Ok(r) => {
            shared.record_result(job_id, r.outargs, epoch);
            JobEnd::Done
        }
        Err(_) => JobEnd::Interrupted,
    }
}

/// Wait for the result of a job answered by an earlier run.
async fn resume_job(shared: Arc<Shared>, client: Client, job_id: i64, epoch: usize) -> JobEnd {
    let completion = match client.get_job_status_notify(job_id).await {
        Ok((JobStatus::Finished(outargs), _)) => {
            shared.record_result(job_id, outargs, epoch);
            return JobEnd::Done;
        }
        Ok((JobStatus::Unknown, _)) => {
            let mut l = shared.ledger.lock();
            l.unknown_on_resume.push(job_id);
            l.pending.remove(&job_id);
            return JobEnd::Done;
        }
        Ok((JobStatus::Running, Some(c))) => c,
        Ok((JobStatus::Running, None)) => {
            panic!("get_job_status_notify({job_id}): running without a completion")
        }
        Ok((other, _)) => panic!("get_job_status_notify({job_id}): unexpected {other:?}"),
        Err(_) => return JobEnd::Interrupted,
    };
    match completion.wait().await {
        Ok(outargs) => {
            shared.record_result(job_id, outargs, epoch);
            JobEnd::Done
        }
        Err(_) => JobEnd::Interrupted,
    }
}

/// One client connection of the driver for a server run: resumes `resume`, and (unless
/// `drain`) keeps [`PER_CLIENT`] jobs in flight with new ones until the connection closes.
async fn drive(shared: Arc<Shared>, run: Arc<Run>, resume: Vec<i64>, drain: bool) {
    let Some(client) = connect(&run, CLIENT).await else {
        return;
    };
    let epoch = run.epoch;
    let mut jobs = JoinSet::new();
    for id in resume {
        jobs.spawn(resume_job(shared.clone(), client.clone(), id, epoch));
    }
    let fill = |jobs: &mut JoinSet<JobEnd>| {
        while !drain && client.is_connected() && jobs.len() < PER_CLIENT {
            jobs.spawn(new_job(shared.clone(), client.clone(), epoch));
        }
    };
    fill(&mut jobs);
    while let Some(end) = jobs.join_next().await {
        match end.expect("a driver job task panicked") {
            JobEnd::Done => fill(&mut jobs),
            JobEnd::Interrupted => {}
        }
    }
}

/// Wait (bounded) for every task of a set; panics name what hung.
async fn join_all(set: &mut JoinSet<()>, bound: Duration, what: &str) {
    let joined = tokio::time::timeout(bound, async {
        while let Some(r) = set.join_next().await {
            r.unwrap_or_else(|e| panic!("{what}: a task failed: {e}"));
        }
    })
    .await;
    assert!(
        joined.is_ok(),
        "{what}: {} task(s) still running after {bound:?}",
        set.len()
    );
}

/// Panics, failed asserts or store failures in a server's stderr.
fn check_server_stderr(name: &str, stderr: &[String]) {
    for bad in ["panicked", "store failure", "corrupt"] {
        let hits: Vec<&String> = stderr.iter().filter(|l| l.contains(bad)).collect();
        assert!(hits.is_empty(), "{name}: {bad:?} on stderr: {hits:#?}");
    }
}

fn expected(input: i64) -> Value {
    json!({ "output": input + 3 })
}

/// The same number, whether it came as an integer or a float.
fn same_result(got: &Value, want: &Value) -> bool {
    if got == want {
        return true;
    }
    let num = |v: &Value| v.get("output").and_then(Value::as_f64);
    matches!((got.as_object(), num(got), num(want)), (Some(o), Some(a), Some(b)) if o.len() == 1 && a == b)
}

/// Run the crash test on the store of `setup`; `dir` holds the password file (and may hold
/// the store). Call it from a `#[tokio::test(flavor = "multi_thread", worker_threads = 2)]`.
pub async fn crash_test(setup: Setup, dir: &Path) {
    let name = setup.name;
    let started = Instant::now();
    let seed: u64 = std::env::var("CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| rand::rng().random());
    println!("{name}: seed {seed} (CRASH_SEED={seed} replays the kill moments)");
    let mut rng = StdRng::seed_from_u64(seed);

    password_file(dir);
    let port = stable_port();
    let shared = Arc::new(Shared {
        ledger: Mutex::new(Ledger::default()),
        seq: AtomicU64::new(0),
        next_input: AtomicI64::new(1),
        creating: AtomicUsize::new(0),
    });

    let mut in_flight_at_kill = Vec::new();
    let kills: usize = std::env::var("CRASH_KILLS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(KILLS)
        .max(KILLS);
    let verbose = std::env::var_os("CRASH_VERBOSE").is_some();
    for epoch in 0..=kills {
        let last = epoch == kills;
        let starting = Instant::now();
        let server = start_server(&setup, dir, port, epoch).await;
        let start_took = starting.elapsed();
        let (answered_before, results_before) = {
            let l = shared.ledger.lock();
            (l.answered.len(), l.results.len())
        };
        let run = Arc::new(Run {
            epoch,
            port,
            alive: AtomicBool::new(true),
        });
        let mut worker_tasks = JoinSet::new();
        for n in 0..WORKERS {
            worker_tasks.spawn(work(shared.clone(), run.clone(), n));
        }
        // The jobs answered before but not finished are spread over the client connections.
        let mut resume: Vec<i64> = shared.ledger.lock().pending.keys().copied().collect();
        resume.sort_unstable();
        let mut driver_tasks = JoinSet::new();
        for d in 0..CLIENTS {
            let mine: Vec<i64> = resume.iter().copied().skip(d).step_by(CLIENTS).collect();
            driver_tasks.spawn(drive(shared.clone(), run.clone(), mine, last));
        }

        if !last {
            // The random moment: let the load run, then kill -9.
            let range = if rng.random_ratio(1, EARLY_EVERY) {
                EARLY_MS
            } else {
                setup.load_ms.clone()
            };
            let load = Duration::from_millis(rng.random_range(range));
            tokio::time::sleep(load).await;
            let in_flight = shared.in_flight();
            in_flight_at_kill.push(in_flight);
            if verbose {
                let l = shared.ledger.lock();
                println!(
                    "{name}: run {epoch}: started in {start_took:.1?}, killed after {load:?}: \
                     {} answered, {} results, {in_flight} in flight",
                    l.answered.len() - answered_before,
                    l.results.len() - results_before,
                );
            }
            run.alive.store(false, Ordering::SeqCst);
            server.signal("KILL");
            let out = server.finish().await;
            assert_eq!(
                out.code, -1,
                "run {epoch}: not killed by the signal: {out:#?}"
            );
            check_server_stderr(&format!("run {epoch}"), &out.stderr);
            join_all(&mut driver_tasks, BOUND, &format!("run {epoch}: driver")).await;
            join_all(&mut worker_tasks, BOUND, &format!("run {epoch}: workers")).await;
            continue;
        }

        // The last run: every job answered so far must finish (bounded).
        let drained = tokio::time::timeout(DRAIN, async {
            while let Some(r) = driver_tasks.join_next().await {
                r.expect("a driver task panicked");
            }
        })
        .await;
        if drained.is_err() {
            driver_tasks.abort_all();
        }
        verify(name, &shared, port, &in_flight_at_kill).await;

        // A clean stop closes the workers' connections, which ends their tasks.
        server.signal("TERM");
        let out = server.finish().await;
        join_all(&mut worker_tasks, BOUND, "last run: workers").await;
        check_server_stderr("last run", &out.stderr);
        assert_eq!(
            out.code, 0,
            "the last server did not stop cleanly: {out:#?}"
        );
        println!("{name}: passed in {:.1?}", started.elapsed());
    }
}

/// Check every answered job with `get_job_status` and the ledger; print the summary line.
async fn verify(name: &str, shared: &Shared, port: u16, in_flight_at_kill: &[usize]) {
    let kills = in_flight_at_kill.len();
    let (min, max) = (
        in_flight_at_kill.iter().min().copied().unwrap_or(0),
        in_flight_at_kill.iter().max().copied().unwrap_or(0),
    );
    let avg = in_flight_at_kill.iter().sum::<usize>() / kills.max(1);
    let client = Client::connect(config(CLIENT, port))
        .await
        .expect("connect the checking client");
    let answered = shared.ledger.lock().answered.clone();
    let mut ids: Vec<i64> = answered.keys().copied().collect();
    ids.sort_unstable();

    let mut lost = Vec::new();
    let mut changed = Vec::new();
    let mut wrong = Vec::new();
    let mut unfinished = Vec::new();
    let mut finished = Vec::new();
    for id in &ids {
        let input = answered[id];
        let status = tokio::time::timeout(BOUND, client.get_job_status(*id))
            .await
            .unwrap_or_else(|_| panic!("get_job_status({id}) took more than {BOUND:?}"))
            .unwrap_or_else(|e: ClientError| panic!("get_job_status({id}): {e}"));
        match status {
            JobStatus::Unknown => lost.push(*id),
            JobStatus::Running => unfinished.push(*id),
            JobStatus::Finished(out) => {
                if !same_result(&out, &expected(input)) {
                    wrong.push((*id, input, out.clone()));
                }
                finished.push((*id, out));
            }
            other => panic!("get_job_status({id}): unexpected {other:?}"),
        }
    }
    // Everything observed, including task runs up to now (a run after the result is bad).
    let l = std::mem::take(&mut *shared.ledger.lock());
    let (results, execs) = (l.results, l.execs);
    for (id, out) in finished {
        if let Some(r) = results.get(&id) {
            if r.outargs != out {
                changed.push((id, r.outargs.clone(), out));
            }
        }
    }
    // Unknown when resumed after a restart, or its id given to another job: lost as well.
    let reused = l.reused.iter().map(|(id, _, _)| *id);
    for id in l.unknown_on_resume.iter().copied().chain(reused) {
        if !lost.contains(&id) {
            lost.push(id);
        }
    }
    for (id, before, after) in &l.changed_live {
        changed.push((*id, before.clone(), after.clone()));
    }
    for (id, r) in &results {
        if !same_result(&r.outargs, &expected(answered[id])) {
            wrong.push((*id, answered[id], r.outargs.clone()));
        }
    }

    // A run that started after the job's result had been received (in an earlier server run,
    // or later in the same one) is a task run twice; a run that re-started because its
    // `task_done` died with the server is the legitimate re-run after a crash.
    let mut run_twice = Vec::new();
    let mut reruns = 0;
    for (id, list) in &execs {
        reruns += list.len().saturating_sub(1);
        if let Some(r) = results.get(id) {
            for e in list {
                if e.epoch > r.epoch || (e.epoch == r.epoch && e.seq > r.seq) {
                    run_twice.push((*id, *e, r.epoch));
                }
            }
        }
    }
    let not_run: Vec<i64> = ids
        .iter()
        .copied()
        .filter(|id| !execs.contains_key(id))
        .collect();

    let summary = format!(
        "{} jobs answered, {} results received, {kills} kills, {} lost, {} changed, {} wrong, \
         {} unfinished, {} run twice, {} re-runs after crash, {} create_job unanswered, \
         {} refused; jobs in flight at the kills min/avg/max {min}/{avg}/{max}",
        ids.len(),
        results.len(),
        lost.len(),
        changed.len(),
        wrong.len(),
        unfinished.len(),
        run_twice.len(),
        reruns,
        l.unanswered,
        l.refused.len(),
    );
    println!("{name}: {summary}");
    let few = |n: usize| n.min(10);
    assert!(kills >= 20, "only {kills} kills");
    assert!(!ids.is_empty(), "no job was ever answered");
    assert!(
        lost.is_empty(),
        "lost jobs: {:?}; ids answered twice (id, first input, second input): {:?}",
        &lost[..few(lost.len())],
        &l.reused[..few(l.reused.len())]
    );
    assert!(
        changed.is_empty(),
        "changed results (id, before, after): {:?}",
        &changed[..few(changed.len())]
    );
    assert!(
        wrong.is_empty(),
        "wrong results (id, input, outargs): {:?}",
        &wrong[..few(wrong.len())]
    );
    assert!(
        unfinished.is_empty(),
        "jobs not finished after {DRAIN:?}: {:?}",
        &unfinished[..few(unfinished.len())]
    );
    assert!(
        run_twice.is_empty(),
        "tasks run after their job's result was reported (id, run, result's server run): {:?}",
        &run_twice[..few(run_twice.len())]
    );
    assert!(
        not_run.is_empty(),
        "finished jobs whose task never ran: {:?}",
        &not_run[..few(not_run.len())]
    );
    assert!(l.refused.is_empty(), "refused create_job: {:?}", l.refused);
}
