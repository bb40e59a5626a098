//! Network faults against the real server over the real engine (memory store) on 127.0.0.1
//! (issue 10): a connection reset in the middle of a frame, half-open peers (they stop
//! reading and writing without closing), and workers that vanish with a task in hand. The
//! server must stay healthy, free what the broken connection held, and never leave a job
//! stuck: the task goes to another worker, is retried per the action's rules, or the job
//! ends with a clear error.

use std::net::SocketAddr;
use std::time::Duration;

use jobcenter::{Action, Client, JobHandle, JobResult, JobStatus, Task};
use jobcenter_conformance::{
    own_fixtures, part4_engine_config, part4_fixtures, quiet_timers, RawConn, RawError, Recorder,
    StoreKind, TestServer, EMPLOYEE, EMPLOYEE_TOKEN, JC_ADMIN, JC_ADMIN_TOKEN, WAIT,
};
use jobcenter_engine::{Catalog, Stage};
use jobcenter_server::{Limits, Timers};
use serde_json::{json, Value};

/// Timers that never interfere (see [`quiet_timers`]).
fn quiet() -> Timers {
    quiet_timers()
}

/// The Part 4 definitions plus `tests/fixtures/faults` (the retryable `f_flaky`).
fn catalog() -> Catalog {
    let mut cat = Catalog::with_stage(Stage::C);
    cat.register_locktype("slot");
    cat.register_locktype("abc");
    for dir in [part4_fixtures(), own_fixtures().join("faults")] {
        let report = cat.load_dir(&dir);
        assert!(report.is_ok(), "{}: {:?}", dir.display(), report.errors);
    }
    cat
}

async fn server(timers: Timers, limits: Limits) -> TestServer {
    TestServer::with_limits(
        StoreKind::Memory,
        catalog(),
        part4_engine_config(),
        timers,
        limits,
    )
    .await
    .unwrap_or_else(|e| panic!("server: {e}"))
}

/// A raw worker logged in as [`EMPLOYEE`] that announced `action` with one slot.
async fn raw_worker(addr: SocketAddr, name: &str, action: &str) -> RawConn {
    let mut w = RawConn::login(addr, EMPLOYEE, EMPLOYEE_TOKEN)
        .await
        .expect("worker login");
    w.announce(name, action, 1).await.expect("announce");
    w
}

/// Wait for the `task_ready` of `action` and claim it: the job id and the cookie.
async fn take_task(w: &mut RawConn, action: &str) -> (i64, String) {
    w.take_task(action).await.expect("a task")
}

/// Create a `wfname` job with `inargs` on `c` (the handle for its outcome).
async fn submit(c: &Client, wfname: &str, inargs: Value) -> JobHandle {
    c.job(wfname)
        .inargs(inargs)
        .submit()
        .await
        .expect("create_job")
}

/// The outcome of `h` within [`WAIT`]; `stuck` says what it means if it never comes.
async fn outcome(h: JobHandle, stuck: &str) -> JobResult {
    tokio::time::timeout(WAIT, h.outcome())
        .await
        .unwrap_or_else(|_| panic!("{stuck}"))
        .expect("outcome")
}

/// `text` as the first part of a netstring frame: the header and all but the last `keep_back`
/// bytes of the payload (no trailing comma).
fn cut_frame(text: &str, keep_back: usize) -> Vec<u8> {
    let mut out = format!("{}:", text.len()).into_bytes();
    out.extend_from_slice(&text.as_bytes()[..text.len() - keep_back]);
    out
}

/// Whether a new connection is greeted (`false`: closed or refused without a greeting).
async fn greeted(addr: SocketAddr) -> bool {
    let Ok(mut c) = RawConn::connect(addr).await else {
        return false;
    };
    match c.recv_timeout(Duration::from_secs(5)).await {
        Ok(f) => f["method"] == "greetings",
        Err(RawError::Closed) | Err(RawError::Io(_)) => false,
        Err(e) => panic!("neither a greeting nor a close: {e}"),
    }
}

/// `f_flaky` for a library worker: `{"y": x + 1}`.
fn flaky_action() -> Action {
    Action::new("f_flaky").sync(|t: Task| {
        let x = t.inargs["x"].as_i64().ok_or("no x")?;
        Ok::<_, &str>(json!({ "y": x + 1 }))
    })
}

#[tokio::test]
async fn reset_mid_frame_frees_the_connection_and_the_others_are_served() {
    // Three connections at most: the reset one must be let go for a fourth to be greeted.
    let s = server(
        quiet(),
        Limits {
            max_connections: 3,
            ..Limits::default()
        },
    )
    .await;
    let rec = Recorder::new();
    let _w = s.reference_worker(&rec).await.expect("worker");
    let c = s.client().await.expect("client");
    let mut cut = RawConn::login(s.addr(), JC_ADMIN, JC_ADMIN_TOKEN)
        .await
        .expect("login");
    assert!(!greeted(s.addr()).await, "a 4th connection was served");
    // Jobs in flight on the healthy connections while the third one breaks mid-frame.
    let mut handles = Vec::new();
    for i in 0..20i64 {
        let h = submit(&c, "k01", json!({"input": i})).await;
        handles.push((i, h));
    }
    let frame = json!({"jsonrpc": "2.0", "id": "cut", "method": "create_job",
        "params": {"wfname": "k01", "inargs": {"input": 1000}}})
    .to_string();
    cut.send_bytes(&cut_frame(&frame, frame.len() / 2))
        .await
        .expect("half a frame");
    cut.reset();
    // The server notices the reset (asynchronously) and frees the connection's place.
    let deadline = tokio::time::Instant::now() + WAIT;
    while !greeted(s.addr()).await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the reset connection still counts after {WAIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    for (i, h) in handles {
        let r = outcome(h, &format!("job {i} stuck")).await;
        assert_eq!(r.outargs, json!({"output": i + 1}));
    }
    // Half a frame never becomes a request.
    assert_eq!(rec.len(), 20, "a job ran that was never sent whole");
}

#[tokio::test]
async fn worker_reset_mid_task_done_hands_the_task_to_another_worker() {
    let s = server(quiet(), Limits::default()).await;
    let mut w1 = raw_worker(s.addr(), "vanishing", "c_add").await;
    let c = s.client().await.expect("client");
    let h = submit(&c, "k01", json!({"input": 41})).await;
    let id = h.job_id().expect("a job id");
    let (job_id, cookie) = take_task(&mut w1, "c_add").await;
    assert_eq!(job_id, id);
    // The worker dies while writing its (wrong) result: half a task_done, then a reset.
    let done = json!({"jsonrpc": "2.0", "method": "task_done",
        "params": {"cookie": cookie, "outargs": {"counter": 999}}})
    .to_string();
    w1.send_bytes(&cut_frame(&done, 5))
        .await
        .expect("half a frame");
    w1.reset();
    // c_add is not retryable: the task goes back to ready for the next worker.
    let rec = Recorder::new();
    let _w2 = s.reference_worker(&rec).await.expect("second worker");
    let r = outcome(h, "the job is stuck with the vanished worker").await;
    assert_eq!(r.outargs, json!({"output": 42}));
    assert_eq!(rec.for_job(id).len(), 1, "the second worker ran it once");
    assert_eq!(
        c.get_job_status(id).await.expect("status"),
        JobStatus::Finished(json!({"output": 42}))
    );
}

#[tokio::test]
async fn worker_vanishing_with_a_retryable_task_is_retried_on_another_worker() {
    let s = server(quiet(), Limits::default()).await;
    let mut w1 = raw_worker(s.addr(), "vanishing", "f_flaky").await;
    let c = s.client().await.expect("client");
    let h = submit(&c, "f_callflaky", json!({"x": 7})).await;
    let id = h.job_id().expect("a job id");
    assert_eq!(take_task(&mut w1, "f_flaky").await.0, id);
    w1.reset();
    // The soft error `worker disconnected` is retried (after 1 s) elsewhere.
    let w2 = s.worker().await.expect("second worker");
    w2.announce(flaky_action()).await.expect("announce");
    let r = outcome(h, "the retry never came").await;
    assert_eq!(r.outargs, json!({"y": 8}));
    assert_eq!(
        c.get_job_status(id).await.expect("status"),
        JobStatus::Finished(json!({"y": 8}))
    );
}

#[tokio::test]
async fn worker_vanishing_on_every_try_of_a_retryable_task_ends_the_job_with_a_clear_error() {
    let s = server(quiet(), Limits::default()).await;
    let c = s.client().await.expect("client");
    let mut w1 = raw_worker(s.addr(), "try-1", "f_flaky").await;
    let h = submit(&c, "f_callflaky", json!({"x": 7})).await;
    let id = h.job_id().expect("a job id");
    assert_eq!(take_task(&mut w1, "f_flaky").await.0, id);
    w1.reset();
    // `tries: 2` allows two retries (docs/JCL.md C38: three attempts); each goes to a worker
    // that vanishes too.
    for attempt in 2..=3 {
        let mut w = raw_worker(s.addr(), &format!("try-{attempt}"), "f_flaky").await;
        assert_eq!(
            take_task(&mut w, "f_flaky").await.0,
            id,
            "attempt {attempt}"
        );
        w.reset();
    }
    let r = match tokio::time::timeout(WAIT, h.outcome()).await {
        Ok(r) => r.expect("outcome"),
        Err(_) => panic!(
            "the job is stuck after its last try: status {:?}",
            c.get_job_status(id).await
        ),
    };
    let text = r.outargs.to_string();
    assert!(
        r.is_error() && text.contains("worker disconnected"),
        "not a clear error: {text}"
    );
    match c.get_job_status(id).await.expect("status") {
        JobStatus::Finished(v) => assert_eq!(v, r.outargs),
        other => panic!("job {id} not finished: {other:?}"),
    }
}

/// Ping every 200 ms; a worker that does not answer within 1 s is closed.
fn pinging() -> Timers {
    Timers {
        ping_interval: Duration::from_millis(200),
        ping_timeout: Duration::from_secs(1),
        ..quiet()
    }
}

#[tokio::test]
async fn half_open_worker_with_a_task_is_closed_by_the_ping_timeout_and_the_task_moves_on() {
    let s = server(pinging(), Limits::default()).await;
    let mut w1 = raw_worker(s.addr(), "silent", "c_add").await;
    let c = s.client().await.expect("client");
    let h = submit(&c, "k01", json!({"input": 1})).await;
    let id = h.job_id().expect("a job id");
    assert_eq!(take_task(&mut w1, "c_add").await.0, id);
    // From now on the first worker neither reads nor writes, and never closes: to the
    // server it is a peer that vanished without a FIN.
    let rec = Recorder::new();
    let _w2 = s.reference_worker(&rec).await.expect("second worker");
    let r = outcome(h, "the job is stuck with the silent worker").await;
    assert_eq!(r.outargs, json!({"output": 2}));
    assert_eq!(rec.for_job(id).len(), 1);
    // The server closed the silent connection (after the pings it sent meanwhile).
    assert!(
        w1.closed_within(WAIT).await,
        "the silent worker's connection is still open"
    );
}

#[tokio::test]
async fn half_open_peer_stuck_mid_hello_is_closed_by_the_login_deadline() {
    let s = server(
        quiet(),
        Limits {
            handshake_timeout: Duration::from_millis(300),
            ..Limits::default()
        },
    )
    .await;
    let mut stuck = RawConn::connect(s.addr()).await.expect("connect");
    assert_eq!(stuck.recv().await.expect("greeting")["method"], "greetings");
    let hello = json!({"jsonrpc": "2.0", "id": "h", "method": "hello",
        "params": {"who": JC_ADMIN, "method": "password", "token": JC_ADMIN_TOKEN}})
    .to_string();
    stuck
        .send_bytes(&cut_frame(&hello, 10))
        .await
        .expect("half a hello");
    // Nothing more comes: the deadline closes the connection mid-frame...
    match stuck.recv_timeout(Duration::from_secs(5)).await {
        Err(RawError::Closed) | Err(RawError::Io(_)) => {}
        other => panic!("the half-open peer was not closed: {other:?}"),
    }
    // ...and the server goes on serving.
    let c = s.client().await.expect("client after the deadline");
    assert!(c.ping().await);
}

/// A worker that sends its result and closes at once (what a worker does that is stopped
/// right after a task) answered: its task must not run again elsewhere, however soon the
/// close follows the result.
#[tokio::test]
async fn worker_answering_then_closing_at_once_never_gets_its_task_run_again() {
    const ROUNDS: i64 = 300;
    let s = server(quiet(), Limits::default()).await;
    let c = s.client().await.expect("client");
    let mut handles = Vec::new();
    for i in 0..ROUNDS {
        let mut w = raw_worker(s.addr(), &format!("quick-{i}"), "c_add").await;
        let h = submit(&c, "k01", json!({"input": 1000 + i})).await;
        let (_, cookie) = take_task(&mut w, "c_add").await;
        w.send(&json!({"jsonrpc": "2.0", "method": "task_done",
            "params": {"cookie": cookie, "outargs": {"counter": -1}}}))
            .await
            .expect("task_done");
        w.shutdown_write().await;
        drop(w);
        handles.push((h.job_id().expect("id"), h));
    }
    // A worker for whatever the server offers again.
    let rec = Recorder::new();
    let _standby = s.reference_worker(&rec).await.expect("standby worker");
    for (id, h) in handles {
        let r = outcome(h, "job stuck").await;
        assert_eq!(
            r.outargs,
            json!({"output": -1}),
            "job {id}: the answered task ran again ({} run(s) on the standby worker)",
            rec.for_job(id).len()
        );
    }
}

/// `withdraw` the connection's only action (a worker's graceful shutdown begins so); the
/// connection stays open.
async fn withdraw(w: &mut RawConn, action: &str) {
    let r = w
        .request(
            "withdraw-1",
            "withdraw",
            json!({"actionname": action}),
            &mut Vec::new(),
        )
        .await
        .expect("withdraw");
    assert_eq!(r["result"], json!(1), "withdraw answered {r}");
}

/// Wait until the server has dropped all but `n` connections (disconnect processing ran).
async fn connections_down_to(s: &TestServer, n: usize) {
    tokio::time::timeout(WAIT, async {
        while s.handle().expect("a server").connection_count() > n {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the closed connection was never dropped");
}

/// A worker that reconnects under its old name while the old connection, already
/// withdrawn, is still closing: the old connection's disconnect must stop only its own
/// worker, not the new one (which would lose its claim, see its task run again elsewhere
/// and be refused every later `get_task`). Found by the chaos soak on SQLite, where the old
/// connection's disconnect waits for its last `task_done` to be synced.
#[tokio::test]
async fn late_disconnect_of_a_withdrawn_worker_leaves_its_successor_under_the_same_name_alone() {
    let s = server(quiet(), Limits::default()).await;
    let mut old = raw_worker(s.addr(), "same-name", "c_add").await;
    withdraw(&mut old, "c_add").await;
    // Two slots: it takes a second task while it holds the first.
    let mut new = RawConn::login(s.addr(), EMPLOYEE, EMPLOYEE_TOKEN)
        .await
        .expect("worker login");
    new.announce("same-name", "c_add", 2)
        .await
        .expect("announce");
    let c = s.client().await.expect("client");
    let base = s.handle().expect("a server").connection_count();
    let first = submit(&c, "k01", json!({"input": 1})).await;
    let (id1, cookie1) = take_task(&mut new, "c_add").await;
    assert_eq!(Some(id1), first.job_id());
    // The old connection goes now.
    old.shutdown_write().await;
    drop(old);
    connections_down_to(&s, base - 1).await;
    // The new worker still holds its task and still gets and claims new ones.
    let second = submit(&c, "k01", json!({"input": 2})).await;
    let (id2, cookie2) = take_task(&mut new, "c_add").await;
    assert_eq!(Some(id2), second.job_id());
    for (cookie, counter) in [(cookie1, -1), (cookie2, -2)] {
        new.send(&json!({"jsonrpc": "2.0", "method": "task_done",
            "params": {"cookie": cookie, "outargs": {"counter": counter}}}))
            .await
            .expect("task_done");
    }
    for (h, out) in [(first, -1), (second, -2)] {
        let r = outcome(h, "job stuck").await;
        assert_eq!(r.outargs, json!({"output": out}));
    }
}

/// A worker that withdrew its last action (its backend worker is stopped then) and
/// vanishes with a claimed task in hand: its disconnect must still release the task.
#[tokio::test]
async fn withdrawn_worker_vanishing_with_a_task_in_hand_releases_it() {
    let s = server(quiet(), Limits::default()).await;
    let mut w1 = raw_worker(s.addr(), "leaving", "c_add").await;
    let c = s.client().await.expect("client");
    let h = submit(&c, "k01", json!({"input": 41})).await;
    let (job_id, _cookie) = take_task(&mut w1, "c_add").await;
    assert_eq!(Some(job_id), h.job_id());
    withdraw(&mut w1, "c_add").await;
    w1.reset();
    let rec = Recorder::new();
    let _w2 = s.reference_worker(&rec).await.expect("second worker");
    let r = outcome(h, "the task stayed with the worker that left").await;
    assert_eq!(r.outargs, json!({"output": 42}));
    assert_eq!(rec.for_job(job_id).len(), 1);
}
