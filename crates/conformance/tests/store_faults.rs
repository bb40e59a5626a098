//! Store faults under the real server and engine (issue 10): the engine runs on a real
//! [`SqliteStore`] behind a wrapper whose commit ([`Store::sync`]) fails or is slow on
//! demand. A failing commit loses its batch exactly as a real one does
//! ([`SqliteStore::rollback_batch`]), so the engine sees what it would see on an I/O error.
//!
//! Proven here: calls during a failure get the clear "store failure, nothing was changed"
//! error and change nothing; nothing that was answered is lost (a result reported during
//! the failure is reported again once the store works, a claim lost with the batch is
//! offered again); the server recovers by itself; a slow commit delays answers but loses
//! nothing and does not hold up what does not need the store; the store thread checkpoints
//! SQLite's write-ahead log at idle moments ([`Store::idle`]) and every result stays.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use jobcenter::{Action, JobHandle, JobStatus, Task};
use jobcenter_conformance::{
    catalog, part4_fixtures, quiet_timers, RawConn, TestServer, APIMEISTER, APIMEISTER_TOKEN,
    EMPLOYEE, EMPLOYEE_TOKEN, WAIT,
};
use jobcenter_engine::backend::{Backend, CreateJob, Event};
use jobcenter_engine::{Engine, EngineConfig};
use jobcenter_server::{Limits, Timers};
use jobcenter_store::{SqliteStore, Store, StoreError, Txn};
use parking_lot::Mutex;
use serde_json::{json, Map};
use tokio::sync::watch;

/// The faults to inject, shared between the test and the store.
struct Faults {
    /// Every `sync` fails (and loses its batch) while set.
    failing: AtomicBool,
    /// Every `sync` takes this many milliseconds longer.
    delay_ms: AtomicU64,
    /// Transactions run so far.
    txns: AtomicU64,
    /// Transactions run before the last failed sync.
    failed_after: watch::Sender<u64>,
    /// Transactions run before the last successful sync.
    synced_after: watch::Sender<u64>,
    /// Syncs that did commit something or nothing, failed or not.
    syncs: AtomicU64,
    /// Checkpoints the SQLite store had run after the last [`Store::idle`] call.
    checkpoints_when_idle: watch::Sender<u64>,
    /// While set, the next `sync` waits until the test sends on (or drops) the sender; with
    /// `true`, only the next one of a batch that created a job (another call, such as the
    /// engine timer's, may sync first).
    hold: Mutex<Option<(std::sync::mpsc::Receiver<()>, bool)>>,
    /// Jobs in the store after the last `sync`.
    live_at_sync: AtomicU64,
    /// Set while a held `sync` waits.
    holding: watch::Sender<bool>,
}

impl Faults {
    fn new() -> Arc<Faults> {
        Arc::new(Faults {
            failing: AtomicBool::new(false),
            delay_ms: AtomicU64::new(0),
            txns: AtomicU64::new(0),
            failed_after: watch::channel(0).0,
            synced_after: watch::channel(0).0,
            syncs: AtomicU64::new(0),
            checkpoints_when_idle: watch::channel(0).0,
            hold: Mutex::new(None),
            live_at_sync: AtomicU64::new(0),
            holding: watch::channel(false).0,
        })
    }

    /// Make the next `sync` wait until the returned sender sends (or is dropped).
    fn hold_next_sync(&self) -> std::sync::mpsc::Sender<()> {
        let (tx, rx) = std::sync::mpsc::channel();
        *self.hold.lock() = Some((rx, false));
        tx
    }

    /// Make the next `sync` of a batch that created a job wait until the returned sender
    /// sends (or is dropped).
    fn hold_next_creating_sync(&self) -> std::sync::mpsc::Sender<()> {
        let (tx, rx) = std::sync::mpsc::channel();
        *self.hold.lock() = Some((rx, true));
        tx
    }

    /// Wait until a held `sync` waits.
    async fn holding(&self) {
        let mut rx = self.holding.subscribe();
        tokio::time::timeout(WAIT, rx.wait_for(|h| *h))
            .await
            .expect("no held sync")
            .expect("watch");
    }

    fn txns(&self) -> u64 {
        self.txns.load(Ordering::SeqCst)
    }

    /// Wait until a sync failed after the first `n` transactions (and at least one more).
    async fn failed_after(&self, n: u64) {
        let mut rx = self.failed_after.subscribe();
        tokio::time::timeout(WAIT, rx.wait_for(|t| *t > n))
            .await
            .expect("no failed commit of a transaction")
            .expect("watch");
    }

    /// Wait until the first `n` transactions are committed.
    async fn synced(&self, n: u64) {
        let mut rx = self.synced_after.subscribe();
        tokio::time::timeout(WAIT, rx.wait_for(|t| *t >= n))
            .await
            .expect("no commit")
            .expect("watch");
    }
}

/// A real SQLite store whose commits fail or are slow on demand.
struct FaultyStore {
    inner: SqliteStore,
    faults: Arc<Faults>,
}

impl Store for FaultyStore {
    fn transact<R, E, F>(&self, f: F) -> Result<R, E>
    where
        E: From<StoreError>,
        F: FnOnce(&mut dyn Txn) -> Result<R, E>,
    {
        let r = self.inner.transact(f);
        self.faults.txns.fetch_add(1, Ordering::SeqCst);
        r
    }

    fn durable(&self) -> bool {
        self.inner.durable()
    }

    fn max_batch(&self) -> usize {
        self.inner.max_batch()
    }

    fn sync(&self) -> Result<(), StoreError> {
        let txns = self.faults.txns();
        self.faults.syncs.fetch_add(1, Ordering::SeqCst);
        let live = self.inner.live_jobs() as u64;
        let created = live > self.faults.live_at_sync.swap(live, Ordering::SeqCst);
        let held = {
            let mut hold = self.faults.hold.lock();
            match &*hold {
                Some((_, true)) if !created => None,
                _ => hold.take().map(|(release, _)| release),
            }
        };
        if let Some(release) = held {
            self.faults.holding.send_replace(true);
            let _ = release.recv();
            self.faults.holding.send_replace(false);
        }
        let delay = self.faults.delay_ms.load(Ordering::SeqCst);
        if delay > 0 {
            // The injected fault itself: an fsync that takes this long.
            std::thread::sleep(Duration::from_millis(delay));
        }
        if self.faults.failing.load(Ordering::SeqCst) {
            self.inner.rollback_batch();
            self.faults
                .live_at_sync
                .store(self.inner.live_jobs() as u64, Ordering::SeqCst);
            self.faults.failed_after.send_replace(txns);
            return Err(StoreError::Backend("injected commit failure".into()));
        }
        let r = self.inner.sync();
        if r.is_ok() {
            self.faults.synced_after.send_replace(txns);
        }
        r
    }

    fn idle(&self) {
        self.inner.idle();
        self.faults
            .checkpoints_when_idle
            .send_replace(self.inner.checkpoints());
    }

    fn describe(&self) -> String {
        format!("faulty {}", self.inner.describe())
    }
}

/// Timers that never interfere (see [`quiet_timers`]).
fn quiet() -> Timers {
    quiet_timers()
}

/// The engine (Part 4 definitions, no housekeeping within a test) on a faulty SQLite store
/// in `dir`.
fn engine(dir: &tempfile::TempDir) -> (Arc<Engine<FaultyStore>>, Arc<Faults>) {
    let faults = Faults::new();
    let store = FaultyStore {
        inner: SqliteStore::open(dir.path().join("jc.db")).expect("open the store"),
        faults: faults.clone(),
    };
    let cat = catalog(&part4_fixtures()).expect("catalog");
    let mut global_env = Map::new();
    global_env.insert("version".into(), json!("0.1"));
    let config = EngineConfig {
        global_env,
        housekeeping_interval: Duration::from_secs(600),
        ..EngineConfig::default()
    };
    (Engine::new(cat, store, config).start(), faults)
}

/// The server over [`engine`].
async fn server(dir: &tempfile::TempDir) -> (TestServer, Arc<Faults>) {
    let (engine, faults) = engine(dir);
    let s = TestServer::with_backend(engine, quiet(), Limits::default())
        .await
        .expect("server");
    (s, faults)
}

/// A `create_job` request of k01 (`output = input + 1`) straight to the engine.
fn k01(input: i64) -> CreateJob {
    CreateJob {
        wfname: "k01".into(),
        inargs: Map::from_iter([("input".to_string(), json!(input))]),
        vtag: None,
        who: "jc_admin".into(),
        env: None,
    }
}

/// The first engine event `pick` takes, within [`WAIT`] (`None` if it does not come).
async fn next_event<T>(
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<Event>,
    mut pick: impl FnMut(Event) -> Option<T>,
) -> Option<T> {
    tokio::time::timeout(WAIT, async {
        while let Some(ev) = rx.recv().await {
            if let Some(t) = pick(ev) {
                return Some(t);
            }
        }
        None
    })
    .await
    .ok()
    .flatten()
}

/// `create_job` of k01 (`output = input + 1`).
async fn submit(s: &jobcenter::Client, input: i64) -> JobHandle {
    s.job("k01")
        .inargs(json!({ "input": input }))
        .submit()
        .await
        .expect("create_job answered")
}

async fn finished(h: JobHandle) -> serde_json::Value {
    tokio::time::timeout(WAIT, h.outcome())
        .await
        .expect("the job never finished")
        .expect("outcome")
        .outargs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_commit_refuses_clearly_and_a_result_reported_meanwhile_is_not_lost() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (s, faults) = server(&dir).await;
    // The worker records the counters it ran; the first task waits for `gate`.
    let ran: Arc<Mutex<Vec<i64>>> = Arc::default();
    let (taken_tx, taken_rx) = tokio::sync::oneshot::channel::<()>();
    let (gate_tx, gate_rx) = tokio::sync::oneshot::channel::<()>();
    let first = Arc::new(Mutex::new(Some((taken_tx, gate_rx))));
    let w = s.worker().await.expect("worker");
    let ran2 = ran.clone();
    w.announce(Action::new("c_add").run_async(move |t: Task| {
        let ran = ran2.clone();
        let first = first.lock().take();
        async move {
            let counter = t.inargs["counter"].as_i64().ok_or("no counter")?;
            ran.lock().push(counter);
            if let Some((taken, gate)) = first {
                let _ = taken.send(());
                let _ = gate.await;
            }
            Ok::<_, &str>(json!({ "counter": counter + 1 }))
        }
    }))
    .await
    .expect("announce");
    let c = s.client().await.expect("client");

    // Job A is answered and its task is in the worker's hands, claimed durably.
    let a = submit(&c, 1).await;
    let a_id = a.job_id().expect("job A has an id");
    taken_rx.await.expect("the worker takes A");
    faults.synced(faults.txns()).await;

    // The store fails: a new job is refused with the clear error and changes nothing.
    faults.failing.store(true, Ordering::SeqCst);
    let b = submit(&c, 2).await;
    assert!(b.is_refused(), "a job was accepted while the store fails");
    let refused = b.outcome().await.expect("refusal").outargs.to_string();
    assert!(
        refused.contains("store failure, nothing was changed"),
        "refused for another reason: {refused}"
    );
    // A's result arrives while the store fails: its commit fails too.
    let before = faults.txns();
    gate_tx.send(()).expect("release the worker");
    faults.failed_after(before).await;

    // The store works again: the server recovers by itself on the next change.
    faults.failing.store(false, Ordering::SeqCst);
    let c3 = submit(&c, 3).await;
    assert!(!c3.is_refused(), "refused after the store works again");
    let c3_id = c3.job_id().expect("job C has an id");
    assert_eq!(finished(c3).await, json!({"output": 4}));
    // A's result was reported again: A finishes without running a second time.
    assert_eq!(finished(a).await, json!({"output": 2}));
    assert_eq!(
        c.get_job_status(a_id).await.expect("status"),
        JobStatus::Finished(json!({"output": 2}))
    );
    assert_eq!(
        c.get_job_status(c3_id).await.expect("status"),
        JobStatus::Finished(json!({"output": 4}))
    );
    let mut ran = ran.lock().clone();
    ran.sort_unstable();
    assert_eq!(ran, vec![1, 3], "the refused job ran, or A ran twice");
}

/// A task's offer (`ActionReady`) leaves before the sync of the batch that made the task
/// ready, so the worker's `get_task` travels while the store syncs; the claim itself runs
/// only after that sync. Proven with a sync that is held, then fails: the offer came while
/// it was held, and the `get_task` sent meanwhile finds no job (its creation was lost),
/// where a claim run before the sync would have been told about a job that never was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offer_leaves_before_its_sync_but_the_claim_waits_for_the_sync() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (e, faults) = engine(&dir);
    let mut rx = e.subscribe();
    e.announce("w1".into(), "c_add".into(), "jc_admin".into(), None)
        .await
        .expect("announce");
    // The announcement's changes wait for a sync of their own (module `exec`): let it pass.
    faults.synced(faults.txns()).await;
    let release = faults.hold_next_creating_sync();
    faults.failing.store(true, Ordering::SeqCst);
    let create = tokio::spawn({
        let e = e.clone();
        async move { e.create_job(k01(1)).await }
    });
    let offered = next_event(&mut rx, |ev| match ev {
        Event::ActionReady { job_id, .. } => Some(job_id),
        _ => None,
    })
    .await
    .expect("no offer while the sync of the new job was held");
    let claim = e.get_task("w1".into(), "c_add".into(), Some(offered));
    drop(release);
    let created = create.await.expect("create_job task");
    assert!(
        created
            .as_ref()
            .is_err_and(|e| e.to_string().contains("store failure")),
        "the creation fails with its sync: {created:?}"
    );
    assert_eq!(
        claim.await,
        Ok(None),
        "the claim ran after the failed sync and found no job"
    );
    // The store works again: offered, claimed and finished as usual.
    faults.failing.store(false, Ordering::SeqCst);
    let job = e.create_job(k01(5)).await.expect("created");
    let task = e
        .get_task("w1".into(), "c_add".into(), Some(job))
        .await
        .expect("get_task")
        .expect("claimed");
    e.task_done(task.cookie, json!({"counter": 6}))
        .await
        .expect("task_done");
    let outargs = next_event(&mut rx, |ev| match ev {
        Event::JobFinished { job_id, outargs } if job_id == job => Some(outargs),
        _ => None,
    })
    .await
    .expect("the job never finished");
    assert_eq!(outargs, Some(json!({"output": 6})));
}

/// A claim never takes a job made ready in its own round, before that round's sync: the
/// creation could still be lost, and the worker would run a task of a job its client was
/// told was never created. A fresh offer leaves only just before the sync, but a poll-mode
/// `get_task` (no job id) can find any ready job. The store thread is held in a sync while a
/// job's creation and two poll-mode claims queue behind it, so the three run in one round:
/// the second claim cannot take the new job (without the rule it does), the first takes at
/// most the job created before (if that one's round was the held one, else nothing). Both
/// jobs are claimed after their syncs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poll_claim_skips_a_job_made_ready_in_its_own_unsynced_round() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (e, faults) = engine(&dir);
    e.announce("w1".into(), "c_add".into(), "jc_admin".into(), None)
        .await
        .expect("announce");
    faults.synced(faults.txns()).await;
    let release = faults.hold_next_creating_sync();
    let first = tokio::spawn({
        let e = e.clone();
        async move { e.create_job(k01(1)).await }
    });
    faults.holding().await;
    // Queued in this order behind the held sync (each call sends its work at once).
    let second = e.create_job(k01(2));
    let claim_a = e.get_task("w1".into(), "c_add".into(), None);
    let claim_b = e.get_task("w1".into(), "c_add".into(), None);
    drop(release);
    let first = first.await.expect("create task").expect("first created");
    let a = claim_a.await.expect("claim a").map(|t| t.job_id);
    let b = claim_b.await.expect("claim b").map(|t| t.job_id);
    let second = second.await.expect("second created");
    assert_ne!(
        a,
        Some(second),
        "the first claim took a job of its own round"
    );
    assert_eq!(b, None, "the second claim took a job of its own round");
    // After the syncs, poll-mode claims find what is left.
    let mut claimed: Vec<i64> = a.into_iter().collect();
    let started = std::time::Instant::now();
    while claimed.len() < 2 {
        assert!(started.elapsed() < WAIT, "claimed only {claimed:?}");
        if let Some(t) = e
            .get_task("w1".into(), "c_add".into(), None)
            .await
            .expect("claim after the syncs")
        {
            claimed.push(t.job_id);
        }
    }
    claimed.sort_unstable();
    assert_eq!(claimed, vec![first, second]);
}

/// The slots in use on the connections of `who`, as `get_api_status clients` shows them.
async fn slots_used(admin: &mut RawConn, workername: &str) -> i64 {
    let mut other = Vec::new();
    let r = admin
        .request(
            "s",
            "get_api_status",
            json!({"what": "clients"}),
            &mut other,
        )
        .await
        .expect("get_api_status");
    let text = r["result"].as_str().expect("clients as text");
    let clients: serde_json::Value = serde_json::from_str(text).expect("clients JSON");
    let conn = clients
        .as_array()
        .expect("a list")
        .iter()
        .find(|c| c["workername"] == workername)
        .expect("the worker's connection");
    conn["slotgroups"]
        .as_object()
        .expect("slotgroups")
        .values()
        .map(|g| g["used"].as_i64().expect("used"))
        .sum()
}

/// A worker's slot is free as soon as its `task_done` arrives, before the backend commits
/// the result and sends `job_done`: the original handles that notification in its event
/// loop only after the `task_done` handler, so a client that creates its next job on
/// `job_done` always finds the slot free there, and the new task is offered straight to the
/// worker. (Released after the commit, the offer found the slot taken and became a poll
/// offer, `please_...`: an extra round trip, and a different frame than the original's.)
/// Proven with the commit of the `task_done` held: meanwhile the slot already counts as free.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_slot_is_free_when_task_done_arrives_before_its_commit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (s, faults) = server(&dir).await;
    let mut w = RawConn::login(s.addr(), EMPLOYEE, EMPLOYEE_TOKEN)
        .await
        .expect("worker login");
    w.announce("w1", "c_add", 1).await.expect("announce");
    let mut admin = RawConn::login(s.addr(), APIMEISTER, APIMEISTER_TOKEN)
        .await
        .expect("admin login");
    let c = s.client().await.expect("client");
    let a = submit(&c, 1).await;
    let (_, cookie) = w.take_task("c_add").await.expect("task");
    faults.synced(faults.txns()).await;
    assert_eq!(
        slots_used(&mut admin, "w1").await,
        1,
        "the claim holds the slot"
    );
    let release = faults.hold_next_sync();
    w.send(&json!({"jsonrpc": "2.0", "method": "task_done",
        "params": {"cookie": cookie, "outargs": {"counter": 2}}}))
        .await
        .expect("task_done");
    faults.holding().await;
    assert_eq!(
        slots_used(&mut admin, "w1").await,
        0,
        "the slot is still taken while the result is being committed"
    );
    drop(release);
    assert_eq!(finished(a).await, json!({"output": 2}));
    // The next job goes straight to the worker, by its id.
    let b = submit(&c, 5).await;
    let b_id = b.job_id().expect("job B has an id");
    assert_eq!(w.next_offer("c_add").await.expect("offer"), json!(b_id));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_commit_loses_a_claim_and_the_task_is_offered_again_after_recovery() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (s, faults) = server(&dir).await;
    let mut w = RawConn::login(s.addr(), EMPLOYEE, EMPLOYEE_TOKEN)
        .await
        .expect("worker login");
    w.announce("raw", "c_add", 1).await.expect("announce");
    let c = s.client().await.expect("client");
    let a = submit(&c, 10).await;
    let a_id = a.job_id().expect("job A has an id");
    let offer = w.next_offer("c_add").await.expect("offer of A");
    // The claim falls into a batch whose commit fails (and the result too, or it comes
    // after the claim was rolled back: unknown cookie).
    faults.failing.store(true, Ordering::SeqCst);
    let (job, cookie) = w
        .claim("c_add", offer)
        .await
        .expect("get_task")
        .expect("the task of A");
    assert_eq!(job, a_id);
    // The claim's transaction has run (it is answered at once). Wait for a failed sync
    // after it, not just any: a transaction of another call (the status check after
    // `create_job`) may fail first, and the claim would then commit once the store works.
    let with_claim = faults.txns();
    w.send(&json!({"jsonrpc": "2.0", "method": "task_done",
        "params": {"cookie": cookie, "outargs": {"counter": 11}}}))
        .await
        .expect("task_done");
    faults.failed_after(with_claim - 1).await;
    // Once the store works, A (ready again: the claim was rolled back) is offered again.
    faults.failing.store(false, Ordering::SeqCst);
    let b = submit(&c, 20).await;
    assert!(!b.is_refused(), "refused after the store works again");
    let b_id = b.job_id().expect("job B has an id");
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let (job, cookie) = w.take_task("c_add").await.expect("an offer after recovery");
        let counter = if job == a_id { 11 } else { 21 };
        w.send(&json!({"jsonrpc": "2.0", "method": "task_done",
            "params": {"cookie": cookie, "outargs": {"counter": counter}}}))
            .await
            .expect("task_done");
        seen.push(job);
    }
    seen.sort_unstable();
    assert_eq!(seen, vec![a_id, b_id]);
    assert_eq!(finished(a).await, json!({"output": 11}));
    assert_eq!(finished(b).await, json!({"output": 21}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_commit_delays_answers_but_loses_nothing_and_pings_stay_fast() {
    const DELAY: Duration = Duration::from_millis(200);
    const JOBS: i64 = 40;
    let dir = tempfile::tempdir().expect("tempdir");
    let (s, faults) = server(&dir).await;
    let w = s.worker().await.expect("worker");
    w.announce(Action::new("c_add").slots(JOBS as u32).sync(|t: Task| {
        let counter = t.inargs["counter"].as_i64().ok_or("no counter")?;
        Ok::<_, &str>(json!({ "counter": counter + 1 }))
    }))
    .await
    .expect("announce");
    let c = s.client().await.expect("client");
    let other = s.client().await.expect("another client");
    faults
        .delay_ms
        .store(DELAY.as_millis() as u64, Ordering::SeqCst);
    let syncs0 = faults.syncs.load(Ordering::SeqCst);

    let started = Instant::now();
    let jobs = futures::future::join_all((0..JOBS).map(|i| {
        let c = c.clone();
        async move {
            let t0 = Instant::now();
            let h = submit(&c, i).await;
            let answered = t0.elapsed();
            (i, answered, h)
        }
    }));
    // While every commit takes 200 ms, a connection that needs no store is answered at once.
    let pings = async {
        let mut worst = Duration::ZERO;
        for _ in 0..5 {
            let t0 = Instant::now();
            assert!(other.ping().await, "ping failed");
            worst = worst.max(t0.elapsed());
        }
        worst
    };
    let (created, worst_ping) = tokio::join!(jobs, pings);
    for (i, answered, h) in created {
        assert!(!h.is_refused(), "job {i} refused");
        assert!(
            answered >= DELAY,
            "job {i} answered in {answered:?}, before its commit"
        );
        assert_eq!(finished(h).await, json!({"output": i + 1}), "job {i}");
    }
    let took = started.elapsed();
    let syncs = faults.syncs.load(Ordering::SeqCst) - syncs0;
    // Group commit: the 40 jobs share their commits (one each for create, claim and result
    // would be 120 × 200 ms = 24 s).
    assert!(
        took < Duration::from_secs(8),
        "40 jobs took {took:?} with {syncs} commits"
    );
    assert!(
        worst_ping < DELAY,
        "a ping waited {worst_ping:?} behind the slow commits"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_thread_checkpoints_when_idle_and_loses_nothing() {
    const JOBS: i64 = 300;
    let dir = tempfile::tempdir().expect("tempdir");
    let (s, faults) = server(&dir).await;
    let w = s.worker().await.expect("worker");
    w.announce(Action::new("c_add").sync(|t: Task| {
        let counter = t.inargs["counter"].as_i64().ok_or("no counter")?;
        Ok::<_, &str>(json!({ "counter": counter + 1 }))
    }))
    .await
    .expect("announce");
    let c = s.client().await.expect("client");
    let mut checkpoints = faults.checkpoints_when_idle.subscribe();
    // Sequential jobs: the store thread is idle between them, and the write-ahead log
    // passes the idle threshold (1,000 pages) within a few hundred jobs.
    let mut jobs = Vec::new();
    for i in 0..JOBS {
        let h = submit(&c, i).await;
        let id = h.job_id().expect("the job has an id");
        assert_eq!(finished(h).await, json!({ "output": i + 1 }));
        jobs.push(id);
        if *checkpoints.borrow_and_update() > 0 {
            break;
        }
    }
    tokio::time::timeout(WAIT, checkpoints.wait_for(|n| *n > 0))
        .await
        .expect("no checkpoint at an idle moment")
        .expect("watch");
    // Every job is still there with its result.
    for (i, id) in jobs.iter().enumerate() {
        let st = c.get_job_status(*id).await.expect("get_job_status");
        assert_eq!(
            st,
            JobStatus::Finished(json!({ "output": i as i64 + 1 })),
            "job {id}"
        );
    }
}
