//! `jobcenter bench --soak`: a bounded chaos soak (issue 10).
//!
//! `--jobs` jobs of the workflow run through client connections that drop at random
//! (`--client-churn`: mean seconds a connection lives) with jobs outstanding, and through
//! workers that disconnect and reconnect at random (`--worker-churn`), half of the time
//! gracefully (withdraw, finish what they hold, close) and half of the time abruptly (close
//! with tasks in hand). At the end it checks:
//!
//! - **lost**: every job whose `create_job` was answered with an id finished with the right
//!   result, delivered by `job_done` to the client that created it or, if that client
//!   dropped first, read by id with `get_job_status` on another connection. A job number
//!   whose `create_job` was never answered is submitted again (a new job).
//! - **duplicate results**: no connection got `job_done` twice for the same job. The
//!   clients speak raw netstring JSON-RPC, so every frame the server sends is counted (our
//!   client library would drop a second `job_done` silently).
//! - **tasks done twice**: no task ran again after a worker answered it. A run counts as
//!   answered when its handler returned and the worker library did not call the action's
//!   undo callback (which it calls when the result could not be sent).
//! - **server RSS** (with `--server-pid`): sampled every `--sample` seconds; the report gives
//!   the curve and its spread after the warm-up (the first tenth of the jobs).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use jobcenter::{Action, ClientConfig, Task, Worker};
use parking_lot::Mutex;
use rand::RngExt;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::embedded::rss_kib;
use super::spec::{self, Template};

/// What the soak runs and how hard it shakes.
#[derive(Debug, Clone)]
pub struct SoakPlan {
    /// Jobs in total.
    pub jobs: u64,
    /// Client connections at any time.
    pub clients: usize,
    /// Jobs in flight per client connection.
    pub window: usize,
    /// Worker connections at any time (between churns).
    pub workers: usize,
    /// Slots per worker connection.
    pub slots: u32,
    /// Mean lifetime of a worker connection (zero: workers never churn).
    pub worker_churn: Duration,
    /// Mean lifetime of a client connection (zero: clients never drop).
    pub client_churn: Duration,
    /// Workflow to call.
    pub wfname: String,
    /// Action the workers serve.
    pub action: String,
    /// Inargs template.
    pub inargs: Template,
    /// Expected outargs template.
    pub expect: Template,
    /// RSS sampling interval.
    pub sample: Duration,
    /// Give up when no job finished for this long.
    pub stall: Duration,
}

/// The outcome of a soak.
#[derive(Debug, Clone)]
pub struct SoakReport {
    /// Jobs asked for.
    pub jobs: u64,
    /// Job numbers that finished with the right result.
    pub done: u64,
    /// Answered jobs that never finished with a result (or whose result was wrong).
    pub lost: u64,
    /// Wrong results (included in `lost`).
    pub wrong: u64,
    /// `job_done` frames beyond the first for a job on one connection.
    pub duplicate_results: u64,
    /// Jobs whose task ran again after a worker had answered it.
    pub done_twice: u64,
    /// Jobs whose task ran more than once (a worker vanished holding it).
    pub rerun: u64,
    /// `create_job` answered with an id.
    pub created: u64,
    /// `create_job` refused by the server.
    pub refused: u64,
    /// `create_job` sent but unanswered when the connection dropped (submitted again).
    pub unanswered: u64,
    /// Jobs whose creator dropped first: looked up by id on another connection.
    pub orphans: u64,
    /// Client connections dropped on purpose.
    pub client_drops: u64,
    /// Worker connections closed gracefully / abruptly.
    pub worker_graceful: u64,
    /// Worker connections closed with tasks in hand.
    pub worker_abrupt: u64,
    /// Results the workers could not send (undo called).
    pub undone: u64,
    /// Seconds.
    pub secs: f64,
    /// (seconds, server VmRSS KiB, jobs done) samples.
    pub rss: Vec<(f64, u64, u64)>,
    /// Examples of what went wrong.
    pub problems: Vec<String>,
}

/// Most problems kept as examples.
const MAX_PROBLEMS: usize = 20;

/// State shared by every task of the soak.
struct Ledger {
    plan: SoakPlan,
    /// Next fresh job number.
    next: AtomicU64,
    /// Job numbers to submit again.
    again: Mutex<VecDeque<u64>>,
    /// Per job number: 0 open, 1 done.
    finished: Vec<AtomicU8>,
    done: AtomicU64,
    wrong: AtomicU64,
    created: AtomicU64,
    refused: AtomicU64,
    unanswered: AtomicU64,
    duplicate_results: AtomicU64,
    client_drops: AtomicU64,
    worker_graceful: AtomicU64,
    worker_abrupt: AtomicU64,
    undone: AtomicU64,
    /// Jobs whose creator dropped: (job number, job id).
    orphans: Mutex<Vec<(u64, i64)>>,
    orphans_total: AtomicU64,
    /// Orphans the server did not know (lost).
    orphans_gone: AtomicU64,
    /// Task runs per job id.
    runs: Mutex<HashMap<i64, Vec<Run>>>,
    seq: AtomicU64,
    problems: Mutex<Vec<String>>,
    stop: AtomicBool,
}

/// One run of a task on a worker connection.
#[derive(Debug, Clone, Copy)]
struct Run {
    incarnation: u64,
    started: u64,
    /// Sequence number when the handler returned (0: not yet).
    returned: u64,
    /// The worker library could not send the result (undo called).
    undone: bool,
}

impl Ledger {
    fn problem(&self, text: String) {
        let mut p = self.problems.lock();
        if p.len() < MAX_PROBLEMS {
            p.push(text);
        }
    }

    fn seq(&self) -> u64 {
        self.seq.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// The next job number to submit, if any is left.
    fn take(&self) -> Option<u64> {
        if let Some(n) = self.again.lock().pop_front() {
            return Some(n);
        }
        let n = self.next.fetch_add(1, Ordering::SeqCst);
        (n < self.plan.jobs).then_some(n)
    }

    fn give_back(&self, n: u64) {
        self.again.lock().push_back(n);
    }

    fn all_done(&self) -> bool {
        self.done.load(Ordering::SeqCst) >= self.plan.jobs
    }

    /// A result for job number `n` (job `id`) arrived; check it.
    fn result(&self, n: u64, id: i64, outargs: &Value, via: &str) {
        let want = self.plan.expect.fill(n as i64, "");
        if !spec::same(outargs, &want) {
            self.wrong.fetch_add(1, Ordering::SeqCst);
            self.problem(format!(
                "job {id} (#{n}) via {via}: got {outargs}, want {want}"
            ));
            return;
        }
        let Some(slot) = self.finished.get(n as usize) else {
            return;
        };
        if slot.swap(1, Ordering::SeqCst) == 1 {
            self.problem(format!(
                "job number {n} finished twice (job {id} via {via})"
            ));
            return;
        }
        self.done.fetch_add(1, Ordering::SeqCst);
    }

    fn run_started(&self, job: i64, incarnation: u64) {
        let started = self.seq();
        self.runs.lock().entry(job).or_default().push(Run {
            incarnation,
            started,
            returned: 0,
            undone: false,
        });
    }

    fn run_returned(&self, job: i64, incarnation: u64) {
        let seq = self.seq();
        if let Some(r) = self.runs.lock().get_mut(&job).and_then(|v| {
            v.iter_mut()
                .rev()
                .find(|r| r.incarnation == incarnation && r.returned == 0)
        }) {
            r.returned = seq;
        }
    }

    fn run_undone(&self, job: i64, incarnation: u64) {
        self.undone.fetch_add(1, Ordering::SeqCst);
        if let Some(r) = self.runs.lock().get_mut(&job).and_then(|v| {
            v.iter_mut()
                .rev()
                .find(|r| r.incarnation == incarnation && !r.undone)
        }) {
            r.undone = true;
        }
    }
}

/// A random duration around `mean` (uniform in [mean/2, 3·mean/2]).
fn around(mean: Duration) -> Duration {
    let f: f64 = rand::rng().random_range(0.5..1.5);
    mean.mul_f64(f)
}

/// Run the soak against the server of `cfg`; `server_pid` for the RSS samples.
pub async fn run(
    plan: SoakPlan,
    cfg: ClientConfig,
    worker_cfg: ClientConfig,
    server_pid: Option<u32>,
) -> SoakReport {
    let ledger = Arc::new(Ledger {
        finished: (0..plan.jobs).map(|_| AtomicU8::new(0)).collect(),
        plan: plan.clone(),
        next: AtomicU64::new(0),
        again: Mutex::new(VecDeque::new()),
        done: AtomicU64::new(0),
        wrong: AtomicU64::new(0),
        created: AtomicU64::new(0),
        refused: AtomicU64::new(0),
        unanswered: AtomicU64::new(0),
        duplicate_results: AtomicU64::new(0),
        client_drops: AtomicU64::new(0),
        worker_graceful: AtomicU64::new(0),
        worker_abrupt: AtomicU64::new(0),
        undone: AtomicU64::new(0),
        orphans: Mutex::new(Vec::new()),
        orphans_total: AtomicU64::new(0),
        orphans_gone: AtomicU64::new(0),
        runs: Mutex::new(HashMap::new()),
        seq: AtomicU64::new(0),
        problems: Mutex::new(Vec::new()),
        stop: AtomicBool::new(false),
    });
    let started = Instant::now();
    let mut workers = Vec::new();
    for i in 0..plan.workers {
        workers.push(tokio::spawn(worker_slot(
            ledger.clone(),
            worker_cfg.clone(),
            i,
        )));
    }
    let mut clients = Vec::new();
    for i in 0..plan.clients {
        clients.push(tokio::spawn(client_slot(ledger.clone(), cfg.clone(), i)));
    }
    let checker = tokio::spawn(orphan_checker(ledger.clone(), cfg.clone()));

    // Watch progress, sample the server's memory, stop on completion or a stall.
    let mut rss = Vec::new();
    let mut last_done = 0;
    let mut last_progress = Instant::now();
    let mut next_sample = Instant::now();
    let mut next_line = Instant::now() + Duration::from_secs(10);
    loop {
        let done = ledger.done.load(Ordering::SeqCst);
        if done != last_done {
            last_done = done;
            last_progress = Instant::now();
        }
        if Instant::now() >= next_sample {
            if let Some(kib) = server_pid.and_then(|p| rss_kib(p).ok()) {
                rss.push((started.elapsed().as_secs_f64(), kib, done));
            }
            next_sample += plan.sample;
        }
        if Instant::now() >= next_line {
            eprintln!(
                "soak: {done}/{} jobs done after {:.0} s",
                plan.jobs,
                started.elapsed().as_secs_f64()
            );
            next_line += Duration::from_secs(10);
        }
        // Jobs the server did not know any more are lost: nothing left to wait for.
        let gone = ledger.orphans_gone.load(Ordering::SeqCst);
        if done + gone >= plan.jobs && ledger.orphans.lock().is_empty() {
            break;
        }
        if last_progress.elapsed() > plan.stall {
            ledger.problem(format!(
                "no job finished for {:?}: stopped at {done}/{}",
                plan.stall, plan.jobs
            ));
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let secs = started.elapsed().as_secs_f64();
    if let Some(kib) = server_pid.and_then(|p| rss_kib(p).ok()) {
        rss.push((secs, kib, ledger.done.load(Ordering::SeqCst)));
    }
    ledger.stop.store(true, Ordering::SeqCst);
    for c in clients {
        let _ = c.await;
    }
    let _ = checker.await;
    // Workers stop gracefully, so every run has returned or been undone.
    for w in workers {
        let _ = w.await;
    }
    report(&ledger, secs, rss)
}

fn report(ledger: &Ledger, secs: f64, rss: Vec<(f64, u64, u64)>) -> SoakReport {
    let mut done_twice = 0;
    let mut rerun = 0;
    for (job, runs) in ledger.runs.lock().iter() {
        if runs.len() > 1 {
            rerun += 1;
        }
        let answered: Vec<&Run> = runs
            .iter()
            .filter(|r| r.returned != 0 && !r.undone)
            .collect();
        let Some(first) = answered.iter().map(|r| r.returned).min() else {
            continue;
        };
        let again = runs.iter().filter(|r| r.started > first).count();
        if answered.len() > 1 || again > 0 {
            done_twice += 1;
            ledger.problem(format!(
                "job {job}: ran again after a worker answered: {runs:?}"
            ));
        }
    }
    let done = ledger.done.load(Ordering::SeqCst);
    let wrong = ledger.wrong.load(Ordering::SeqCst);
    SoakReport {
        jobs: ledger.plan.jobs,
        done,
        lost: ledger.plan.jobs.saturating_sub(done),
        wrong,
        duplicate_results: ledger.duplicate_results.load(Ordering::SeqCst),
        done_twice,
        rerun,
        created: ledger.created.load(Ordering::SeqCst),
        refused: ledger.refused.load(Ordering::SeqCst),
        unanswered: ledger.unanswered.load(Ordering::SeqCst),
        orphans: ledger.orphans_total.load(Ordering::SeqCst),
        client_drops: ledger.client_drops.load(Ordering::SeqCst),
        worker_graceful: ledger.worker_graceful.load(Ordering::SeqCst),
        worker_abrupt: ledger.worker_abrupt.load(Ordering::SeqCst),
        undone: ledger.undone.load(Ordering::SeqCst),
        secs,
        rss,
        problems: ledger.problems.lock().clone(),
    }
}

/// One worker slot: connect, announce, serve for a while, disconnect (gracefully or with
/// tasks in hand), reconnect; until the soak stops.
async fn worker_slot(ledger: Arc<Ledger>, cfg: ClientConfig, slot: usize) {
    static INCARNATIONS: AtomicU64 = AtomicU64::new(0);
    let plan = ledger.plan.clone();
    let name = format!("soak-{}-{slot}", std::process::id());
    while !ledger.stop.load(Ordering::SeqCst) {
        let incarnation = INCARNATIONS.fetch_add(1, Ordering::SeqCst);
        let cfg = cfg
            .clone()
            .workername(name.clone())
            .ping_timeout(Duration::ZERO);
        let w = match Worker::connect(cfg).await {
            Ok(w) => w,
            Err(e) => {
                ledger.problem(format!("worker {name}: connect: {e}"));
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let (l1, l2) = (ledger.clone(), ledger.clone());
        let action = Action::new(plan.action.as_str())
            .slots(plan.slots.max(1))
            .run_async(move |t: Task| {
                let l = l1.clone();
                async move {
                    l.run_started(t.job_id, incarnation);
                    let r = spec::add(&t.inargs);
                    l.run_returned(t.job_id, incarnation);
                    r
                }
            })
            .undo(move |t: Task| {
                l2.run_undone(t.job_id, incarnation);
                Ok::<_, String>(json!({}))
            });
        if let Err(e) = w.announce(action).await {
            ledger.problem(format!("worker {name}: announce: {e}"));
            w.client().close();
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        }
        let life = if plan.worker_churn.is_zero() {
            Duration::MAX
        } else {
            around(plan.worker_churn)
        };
        let until = Instant::now().checked_add(life);
        while !ledger.stop.load(Ordering::SeqCst) && until.is_none_or(|u| Instant::now() < u) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let graceful = ledger.stop.load(Ordering::SeqCst) || rand::rng().random_bool(0.5);
        if graceful {
            w.shutdown(Duration::from_secs(10)).await;
            ledger.worker_graceful.fetch_add(1, Ordering::SeqCst);
        } else {
            // Gone with tasks in hand; their handlers finish and find the connection closed.
            w.client().close();
            ledger.worker_abrupt.fetch_add(1, Ordering::SeqCst);
            let deadline = Instant::now() + Duration::from_secs(10);
            while w.in_flight() > 0 && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        let pause = rand::rng().random_range(0..100);
        tokio::time::sleep(Duration::from_millis(pause)).await;
    }
}

/// Why a raw connection failed.
type RawResult<T> = Result<T, String>;

/// A raw netstring JSON-RPC connection (our own framing, so every frame is seen).
struct RawClient {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl RawClient {
    async fn connect(cfg: &ClientConfig) -> RawResult<RawClient> {
        let stream = TcpStream::connect((cfg.address.as_str(), cfg.port))
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let _ = stream.set_nodelay(true);
        let mut c = RawClient {
            stream,
            buf: Vec::with_capacity(8192),
        };
        let greet = c.recv().await?;
        if greet["method"] != "greetings" {
            return Err(format!("expected greetings, got {greet}"));
        }
        c.send(&json!({"jsonrpc": "2.0", "id": "hello", "method": "hello",
            "params": {"who": cfg.who, "method": cfg.method, "token": cfg.token}}))
            .await?;
        let r = c.recv().await?;
        if r["result"][0] != json!(true) {
            return Err(format!("hello: {r}"));
        }
        Ok(c)
    }

    async fn send(&mut self, v: &Value) -> RawResult<()> {
        let text = v.to_string();
        let frame = format!("{}:{text},", text.len());
        self.stream
            .write_all(frame.as_bytes())
            .await
            .map_err(|e| format!("write: {e}"))
    }

    /// The next frame (cancel-safe: bytes stay in the buffer).
    async fn recv(&mut self) -> RawResult<Value> {
        loop {
            if let Some(v) = self.take_frame()? {
                return Ok(v);
            }
            let mut chunk = [0u8; 16384];
            let n = self
                .stream
                .read(&mut chunk)
                .await
                .map_err(|e| format!("read: {e}"))?;
            if n == 0 {
                return Err("closed by the server".to_string());
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    fn take_frame(&mut self) -> RawResult<Option<Value>> {
        let Some(colon) = self.buf.iter().position(|b| *b == b':') else {
            if self.buf.len() > 12 {
                return Err("bad frame header".to_string());
            }
            return Ok(None);
        };
        let len: usize = std::str::from_utf8(&self.buf[..colon])
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or("bad frame length")?;
        let end = colon + 1 + len;
        if self.buf.len() <= end {
            return Ok(None);
        }
        if self.buf[end] != b',' {
            return Err("frame without ','".to_string());
        }
        let v = serde_json::from_slice(&self.buf[colon + 1..end])
            .map_err(|e| format!("bad JSON: {e}"))?;
        self.buf.drain(..=end);
        Ok(Some(v))
    }

    /// Drop the connection: with a reset (RST) or a plain close (FIN).
    fn drop_hard(self, reset: bool) {
        if reset {
            let _ = self.stream.set_zero_linger();
        }
    }
}

/// One client slot: connect, keep `window` jobs going, drop at a random moment with jobs
/// outstanding, reconnect; until every job number is taken and finished.
async fn client_slot(ledger: Arc<Ledger>, cfg: ClientConfig, slot: usize) {
    let plan = ledger.plan.clone();
    while !ledger.stop.load(Ordering::SeqCst) && !ledger.all_done() {
        let mut c = match RawClient::connect(&cfg).await {
            Ok(c) => c,
            Err(e) => {
                ledger.problem(format!("client {slot}: {e}"));
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let life = if plan.client_churn.is_zero() {
            Duration::MAX
        } else {
            around(plan.client_churn)
        };
        let until = tokio::time::Instant::now().checked_add(life);
        // Request id → job number; job id → job number; job id → job_done frames seen.
        let mut asked: HashMap<u64, u64> = HashMap::new();
        let mut waiting: HashMap<i64, u64> = HashMap::new();
        let mut seen: HashMap<i64, u32> = HashMap::new();
        let mut next_id = 0u64;
        let mut exhausted = false;
        let broke: Option<String> = 'conn: loop {
            while !exhausted && asked.len() + waiting.len() < plan.window {
                let Some(n) = ledger.take() else {
                    exhausted = true;
                    break;
                };
                next_id += 1;
                let req = json!({"jsonrpc": "2.0", "id": next_id, "method": "create_job",
                    "params": {"wfname": plan.wfname, "inargs": plan.inargs.fill(n as i64, "")}});
                asked.insert(next_id, n);
                if let Err(e) = c.send(&req).await {
                    break 'conn Some(e);
                }
            }
            if asked.is_empty()
                && waiting.is_empty()
                && (exhausted || ledger.stop.load(Ordering::SeqCst))
            {
                break None;
            }
            let frame = match until {
                Some(u) => match tokio::time::timeout_at(u, c.recv()).await {
                    Ok(f) => f,
                    Err(_) => break None,
                },
                None => c.recv().await,
            };
            let frame = match frame {
                Ok(f) => f,
                Err(e) => break Some(e),
            };
            if frame["method"] == "job_done" {
                let params = &frame["params"];
                let Some(id) = params["job_id"].as_i64() else {
                    ledger.problem(format!("job_done without a job id: {frame}"));
                    continue;
                };
                let count = seen.entry(id).or_insert(0);
                *count += 1;
                if *count > 1 {
                    ledger.duplicate_results.fetch_add(1, Ordering::SeqCst);
                    ledger.problem(format!(
                        "job_done of job {id} {count} times on one connection"
                    ));
                }
                if let Some(n) = waiting.remove(&id) {
                    ledger.result(n, id, &params["outargs"], "job_done");
                }
                continue;
            }
            if frame.get("method").is_some() {
                continue;
            }
            let Some(n) = frame["id"].as_u64().and_then(|id| asked.remove(&id)) else {
                ledger.problem(format!("an answer to nothing asked: {frame}"));
                continue;
            };
            let result = &frame["result"];
            match (result[0].as_i64(), result.get(1)) {
                (Some(id), _) => {
                    ledger.created.fetch_add(1, Ordering::SeqCst);
                    waiting.insert(id, n);
                }
                (None, why) => {
                    ledger.refused.fetch_add(1, Ordering::SeqCst);
                    ledger.problem(format!("create_job #{n} refused: {why:?} {frame}"));
                    ledger.give_back(n);
                }
            }
        };
        if let Some(e) = &broke {
            ledger.problem(format!("client {slot}: connection broke: {e}"));
        }
        // Dropped (on purpose or not): unanswered numbers go again, the rest are looked up.
        for (_, n) in asked.drain() {
            ledger.unanswered.fetch_add(1, Ordering::SeqCst);
            ledger.give_back(n);
        }
        if !waiting.is_empty() {
            ledger
                .orphans_total
                .fetch_add(waiting.len() as u64, Ordering::SeqCst);
            ledger
                .orphans
                .lock()
                .extend(waiting.drain().map(|(id, n)| (n, id)));
        }
        if broke.is_none() && !ledger.all_done() && !exhausted {
            ledger.client_drops.fetch_add(1, Ordering::SeqCst);
        }
        c.drop_hard(rand::rng().random_bool(0.5));
        if exhausted && ledger.again.lock().is_empty() {
            // Nothing left to submit from this slot; the others finish their jobs.
            if !ledger.stop.load(Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            if ledger.next.load(Ordering::SeqCst) >= plan.jobs && ledger.again.lock().is_empty() {
                break;
            }
        }
    }
}

/// Most `get_job_status` lookups in flight at once.
const LOOKUP_WINDOW: usize = 1000;

/// Look up the jobs of dropped clients by id on a connection of its own until each has
/// finished. The lookups are pipelined: on a durable store each answer waits for a commit,
/// and finished results are forgotten after the server's retention time.
async fn orphan_checker(ledger: Arc<Ledger>, cfg: ClientConfig) {
    let mut conn: Option<RawClient> = None;
    let mut next_id = 0u64;
    loop {
        let batch: Vec<(u64, i64)> = {
            let mut o = ledger.orphans.lock();
            let keep = o.len().saturating_sub(LOOKUP_WINDOW);
            o.split_off(keep)
        };
        if batch.is_empty() {
            if ledger.stop.load(Ordering::SeqCst) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        }
        let c = match conn.as_mut() {
            Some(c) => c,
            None => match RawClient::connect(&cfg).await {
                Ok(c) => conn.insert(c),
                Err(e) => {
                    ledger.problem(format!("orphan checker: {e}"));
                    ledger.orphans.lock().extend(batch);
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            },
        };
        // Request id → (job number, job id).
        let mut asked: HashMap<u64, (u64, i64)> = HashMap::with_capacity(batch.len());
        let mut failed = None;
        for (n, id) in batch {
            next_id += 1;
            asked.insert(next_id, (n, id));
            if failed.is_some() {
                continue;
            }
            let req = json!({"jsonrpc": "2.0", "id": next_id, "method": "get_job_status",
                "params": {"job_id": id}});
            if let Err(e) = c.send(&req).await {
                failed = Some(e);
            }
        }
        let mut still = Vec::new();
        while failed.is_none() && !asked.is_empty() {
            let f = match c.recv().await {
                Ok(f) => f,
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            };
            let Some((n, id)) = f["id"].as_u64().and_then(|rid| asked.remove(&rid)) else {
                continue;
            };
            let r = &f["result"];
            match (r[0].as_i64(), r.get(1)) {
                (Some(_), Some(outargs)) => ledger.result(n, id, outargs, "get_job_status"),
                (None, Some(Value::Null)) => still.push((n, id)),
                _ => {
                    ledger.orphans_gone.fetch_add(1, Ordering::SeqCst);
                    ledger.problem(format!(
                        "job {id} (#{n}) unknown after its client dropped: {f}"
                    ));
                }
            }
        }
        if let Some(e) = failed {
            ledger.problem(format!("orphan checker: {e}"));
            conn = None;
            still.extend(asked.into_values());
        }
        let waiting = !still.is_empty();
        ledger.orphans.lock().extend(still);
        if waiting {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl SoakReport {
    /// Whether every check passed.
    pub fn ok(&self) -> bool {
        self.lost == 0 && self.duplicate_results == 0 && self.done_twice == 0 && self.wrong == 0
    }

    /// RSS after the warm-up (the first tenth of the jobs): (min, max) KiB.
    pub fn rss_after_warmup(&self) -> Option<(u64, u64)> {
        let warm = self.jobs / 10;
        let after: Vec<u64> = self
            .rss
            .iter()
            .filter(|(_, _, done)| *done >= warm)
            .map(|(_, kib, _)| *kib)
            .collect();
        Some((*after.iter().min()?, *after.iter().max()?))
    }

    /// The report as JSON.
    pub fn json(&self) -> Value {
        json!({
            "mode": "soak", "jobs": self.jobs, "done": self.done, "lost": self.lost,
            "wrong": self.wrong, "duplicate_results": self.duplicate_results,
            "done_twice": self.done_twice, "rerun": self.rerun, "created": self.created,
            "refused": self.refused, "unanswered": self.unanswered, "orphans": self.orphans,
            "client_drops": self.client_drops, "worker_graceful": self.worker_graceful,
            "worker_abrupt": self.worker_abrupt, "undone": self.undone, "secs": self.secs,
            "rss_after_warmup_kib": self.rss_after_warmup(),
            "rss": self.rss, "problems": self.problems, "ok": self.ok(),
        })
    }

    /// The report as text lines.
    pub fn text(&self) -> String {
        let mut out = format!(
            "soak: {} jobs in {:.1} s ({:.0} jobs/s): {} done, {} lost, {} wrong, \
             {} duplicate results, {} tasks done twice after an answer\n\
             churn: {} client drops ({} jobs looked up by id after the drop, {} create_job \
             unanswered and sent again, {} refused); worker connections closed {} gracefully, \
             {} with tasks in hand ({} results unsendable, {} jobs ran more than once)\n",
            self.jobs,
            self.secs,
            self.done as f64 / self.secs.max(1e-9),
            self.done,
            self.lost,
            self.wrong,
            self.duplicate_results,
            self.done_twice,
            self.client_drops,
            self.orphans,
            self.unanswered,
            self.refused,
            self.worker_graceful,
            self.worker_abrupt,
            self.undone,
            self.rerun,
        );
        if !self.rss.is_empty() {
            let step = self.rss.len().div_ceil(12).max(1);
            let curve: Vec<String> = self
                .rss
                .iter()
                .enumerate()
                .filter(|(i, _)| i % step == 0 || *i + 1 == self.rss.len())
                .map(|(_, (t, kib, done))| format!("{t:.0}s/{done}:{} MiB", kib / 1024))
                .collect();
            out.push_str(&format!(
                "server RSS (time/jobs done: RSS): {}\n",
                curve.join(", ")
            ));
            if let Some((lo, hi)) = self.rss_after_warmup() {
                out.push_str(&format!(
                    "server RSS after warm-up: {} .. {} MiB\n",
                    lo / 1024,
                    hi / 1024
                ));
            }
        }
        for p in &self.problems {
            out.push_str(&format!("problem: {p}\n"));
        }
        out.push_str(if self.ok() {
            "soak: OK\n"
        } else {
            "soak: FAILED\n"
        });
        out
    }
}
