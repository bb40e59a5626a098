//! docs/PROTOCOL.md §15 items end to end with every component real: our client library and our
//! worker library on both ends of our server over the JCL engine (Part 4 fixtures), on
//! 127.0.0.1. The server crate's own tests drive these items with raw scripted peers and
//! the client crate's with a scripted server; here the libraries meet the real server.
//! Where exact frame order matters (C37, C38, C45) the client side is a raw connection.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use jobcenter::{Action, Client, JobHandle, JobStatus, Task, Worker};
use jobcenter_conformance::{
    c_add, fast_timers, part4_fixtures, reference_actions, RawConn, Recorder, TestServer, EMPLOYEE,
    EMPLOYEE_TOKEN, JC_ADMIN, JC_ADMIN_TOKEN, WAIT,
};
use jobcenter_server::Timers;
use serde_json::{json, Value};
use tokio::sync::{mpsc, Semaphore};

async fn server(timers: Timers) -> TestServer {
    match TestServer::start_on(super::STORE, part4_fixtures(), timers).await {
        Ok(s) => s,
        Err(e) => panic!("server: {e}"),
    }
}

async fn client(s: &TestServer) -> Client {
    match s.client().await {
        Ok(c) => c,
        Err(e) => panic!("client: {e}"),
    }
}

async fn worker(s: &TestServer) -> Worker {
    match s.worker().await {
        Ok(w) => w,
        Err(e) => panic!("worker: {e}"),
    }
}

async fn announce(w: &Worker, a: Action) {
    if let Err(e) = w.announce(a).await {
        panic!("announce: {e}");
    }
}

/// Announce the reference actions on `w` with `slots` each, recording into `rec`, under
/// the worker name `name` if one is given.
async fn announce_reference(w: &Worker, rec: &Recorder, slots: Option<u32>, name: Option<&str>) {
    for a in reference_actions(rec, slots) {
        announce(
            w,
            if let Some(n) = name {
                a.workername(n)
            } else {
                a
            },
        )
        .await;
    }
}

/// Create a `wfname` job with `inargs` on `c` without waiting for it.
async fn submit(c: &Client, wfname: &str, inargs: Value) -> JobHandle {
    c.job(wfname)
        .inargs(inargs)
        .submit()
        .await
        .unwrap_or_else(|e| panic!("submit: {e}"))
}

/// A server (fast timers) whose only `c_add` worker (returned last, to keep it connected)
/// is [`gated_add`] with `slots` slots: each task it gets is reported on the receiver and
/// waits for a permit of the semaphore.
async fn gated_server(
    slots: u32,
) -> (
    TestServer,
    Arc<Semaphore>,
    mpsc::UnboundedReceiver<i64>,
    Worker,
) {
    let s = server(fast_timers()).await;
    let gate = Arc::new(Semaphore::new(0));
    let (tx, entered) = mpsc::unbounded_channel();
    let w = worker(&s).await;
    announce(&w, gated_add(slots, gate.clone(), tx)).await;
    (s, gate, entered, w)
}

/// `c_add` whose handler reports each job id on `entered`, then waits for a permit of
/// `gate` (the permit is consumed), then answers like the reference worker.
fn gated_add(slots: u32, gate: Arc<Semaphore>, entered: mpsc::UnboundedSender<i64>) -> Action {
    Action::new("c_add").slots(slots).run_async(move |t: Task| {
        let gate = gate.clone();
        let entered = entered.clone();
        async move {
            let _ = entered.send(t.job_id);
            let permit = gate.acquire().await.map_err(|e| e.to_string())?;
            permit.forget();
            Ok::<_, String>(c_add(&t.inargs))
        }
    })
}

async fn next_entered(rx: &mut mpsc::UnboundedReceiver<i64>) -> i64 {
    match tokio::time::timeout(WAIT, rx.recv()).await {
        Ok(Some(id)) => id,
        other => panic!("no task reached the worker: {other:?}"),
    }
}

/// Timers with the given hand-off and everything else long (nothing else interferes).
fn quiet_timers(handoff: Duration) -> Timers {
    Timers {
        ping_interval: Duration::from_secs(60),
        ping_timeout: Duration::from_secs(30),
        handoff,
        poll: Duration::from_secs(60),
    }
}

#[tokio::test]
async fn c33_c37_c38_result_before_single_job_done_with_library_worker() {
    let s = server(fast_timers()).await;
    let rec = Recorder::new();
    let w = worker(&s).await;
    announce_reference(&w, &rec, Some(4), None).await;
    let mut c = match RawConn::login(s.addr(), JC_ADMIN, JC_ADMIN_TOKEN).await {
        Ok(c) => c,
        Err(e) => panic!("raw login: {e}"),
    };
    for i in 0..20 {
        let mut early = Vec::new();
        let id = format!("cj{i}");
        // Even jobs call c_add; odd ones (k02) finish inside create_job itself, the case
        // where a job_done could overtake the result.
        let (wf, inargs, out) = if i % 2 == 0 {
            ("k01", json!({"input": i}), json!({"output": i + 1}))
        } else {
            (
                "k02",
                json!({"n": i, "o": {}}),
                json!({"n": i, "s": "dflt", "o": {}}),
            )
        };
        let params = json!({"wfname": wf, "inargs": inargs, "vtag": null, "timeout": 300});
        let res = c.request(&id, "create_job", params, &mut early).await;
        let res = res.unwrap_or_else(|e| panic!("create_job: {e}"));
        // C37: nothing (in particular no job_done) before the result.
        assert!(
            early.is_empty(),
            "frames before the create_job result: {early:?}"
        );
        // C33: [<integer job id>, null].
        let job = res["result"][0].as_i64().unwrap_or_else(|| panic!("{res}"));
        assert_eq!(res["result"], json!([job, null]));
        // C38: one job_done with the final outargs, and nothing more before our ping's pong.
        let done = c.recv().await.unwrap_or_else(|e| panic!("job_done: {e}"));
        assert_eq!(
            done,
            json!({"jsonrpc": "2.0", "method": "job_done", "params": {"job_id": job, "outargs": out}})
        );
        let mut between = Vec::new();
        let pong = c
            .request(&format!("p{i}"), "ping", json!({}), &mut between)
            .await;
        assert_eq!(pong.map(|p| p["result"].clone()).ok(), Some(json!("pong?")));
        assert!(between.is_empty(), "unexpected frames: {between:?}");
    }
    assert_eq!(rec.len(), 10);
}

#[tokio::test]
async fn c39_create_job_timeout_then_real_result_by_status() {
    let (s, gate, mut entered, _w) = gated_server(1).await;
    let c = client(&s).await;
    let start = Instant::now();
    let res = c
        .job("k01")
        .inargs(json!({"input": 1}))
        .timeout(Duration::from_secs(1))
        .call()
        .await
        .unwrap_or_else(|e| panic!("call: {e}"));
    assert!(start.elapsed() >= Duration::from_millis(900));
    assert_eq!(res.outargs, json!({"error": "timeout"}));
    let id = res.job_id.unwrap_or_else(|| panic!("job was created"));
    assert_eq!(next_entered(&mut entered).await, id);
    // The job keeps running; a later status query (with notify) gets the real result.
    let (st, done) = c
        .get_job_status_notify(id)
        .await
        .unwrap_or_else(|e| panic!("status: {e}"));
    assert_eq!(st, JobStatus::Running);
    gate.add_permits(1);
    let done = done.unwrap_or_else(|| panic!("a completion for a running job"));
    assert_eq!(done.await.ok(), Some(json!({"output": 2})));
    assert_eq!(
        c.get_job_status(id).await.ok(),
        Some(JobStatus::Finished(json!({"output": 2})))
    );
    assert_eq!(c.waiting_jobs(), 0);
}

#[tokio::test]
async fn c42_c44_c45_c80_status_and_notify_from_a_second_client() {
    let (s, gate, mut entered, _w) = gated_server(1).await;
    let creator = client(&s).await;
    let other = client(&s).await;
    let h = submit(&creator, "k01", json!({"input": 41})).await;
    let id = h.job_id().unwrap_or_else(|| panic!("created"));
    assert_eq!(next_entered(&mut entered).await, id);
    // C42/C44: running → Running, and with notify a completion follows.
    assert_eq!(
        other.get_job_status(id).await.ok(),
        Some(JobStatus::Running)
    );
    let (st, done) = other
        .get_job_status_notify(id)
        .await
        .unwrap_or_else(|e| panic!("status: {e}"));
    assert_eq!(st, JobStatus::Running);
    let done = done.unwrap_or_else(|| panic!("C80: a completion for a running job"));
    gate.add_permits(1);
    assert_eq!(done.await.ok(), Some(json!({"output": 42})));
    assert_eq!(h.await.ok().map(|r| r.outargs), Some(json!({"output": 42})));
    // C45: finished → the result at once and no completion to wait for.
    let (st, done) = other
        .get_job_status_notify(id)
        .await
        .unwrap_or_else(|e| panic!("status: {e}"));
    assert_eq!(st, JobStatus::Finished(json!({"output": 42})));
    assert!(done.is_none());
    // C42: unknown id.
    assert_eq!(
        other.get_job_status(987_654_321).await.ok(),
        Some(JobStatus::Unknown)
    );
    assert_eq!(other.waiting_jobs(), 0);
    assert_eq!(creator.waiting_jobs(), 0);
}

#[tokio::test]
async fn c45_notify_on_finished_job_sends_no_job_done() {
    let s = server(fast_timers()).await;
    let rec = Recorder::new();
    let w = worker(&s).await;
    announce_reference(&w, &rec, None, None).await;
    let job = client(&s)
        .await
        .call("k01", json!({"input": 1}))
        .await
        .ok()
        .and_then(|r| r.job_id)
        .unwrap_or_else(|| panic!("k01 ran"));
    let mut c = RawConn::login(s.addr(), JC_ADMIN, JC_ADMIN_TOKEN)
        .await
        .unwrap_or_else(|e| panic!("login: {e}"));
    let mut other = Vec::new();
    let r = c
        .request(
            "s1",
            "get_job_status",
            json!({"job_id": job, "notify": true}),
            &mut other,
        )
        .await
        .unwrap_or_else(|e| panic!("status: {e}"));
    assert_eq!(r["result"], json!([job, {"output": 2}]));
    let r = c
        .request("p1", "ping", json!({}), &mut other)
        .await
        .unwrap_or_else(|e| panic!("ping: {e}"));
    assert_eq!(r["result"], json!("pong?"));
    assert!(other.is_empty(), "no job_done expected: {other:?}");
    assert!(matches!(
        c.recv_timeout(Duration::from_millis(200)).await,
        Err(jobcenter_conformance::RawError::Timeout)
    ));
}

#[tokio::test]
async fn c49_client_vanishes_jobs_complete_and_new_client_gets_results() {
    let (s, gate, mut entered, _w) = gated_server(3).await;
    let c = client(&s).await;
    let mut ids = Vec::new();
    for i in 0..3 {
        let h = submit(&c, "k01", json!({"input": i * 10})).await;
        ids.push(h.job_id().unwrap_or_else(|| panic!("created")));
        // The handle is dropped: the client stops caring, like a process that goes away.
    }
    let mut seen = Vec::new();
    for _ in 0..3 {
        seen.push(next_entered(&mut entered).await);
    }
    seen.sort_unstable();
    assert_eq!(seen, ids);
    c.close();
    c.closed().await;
    gate.add_permits(3);
    let fresh = client(&s).await;
    for (i, id) in ids.iter().enumerate() {
        let (st, done) = fresh
            .get_job_status_notify(*id)
            .await
            .unwrap_or_else(|e| panic!("status: {e}"));
        let out = match (st, done) {
            (JobStatus::Finished(v), _) => v,
            (JobStatus::Running, Some(done)) => done.await.unwrap_or_else(|e| panic!("{e}")),
            other => panic!("unexpected status {other:?}"),
        };
        assert_eq!(out, json!({"output": i * 10 + 1}));
    }
    // The server is still serving.
    assert!(fresh.ping().await);
}

#[tokio::test]
async fn c56_one_slot_means_one_task_at_a_time() {
    let s = server(fast_timers()).await;
    let running = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let w = worker(&s).await;
    let (r2, p2) = (running.clone(), peak.clone());
    announce(
        &w,
        Action::new("c_add").slots(1).run_async(move |t: Task| {
            let (running, peak) = (r2.clone(), p2.clone());
            async move {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(30)).await;
                running.fetch_sub(1, Ordering::SeqCst);
                Ok::<_, String>(c_add(&t.inargs))
            }
        }),
    )
    .await;
    let c = client(&s).await;
    let mut handles = Vec::new();
    for i in 0..6 {
        handles.push(submit(&c, "k01", json!({"input": i})).await);
    }
    for (i, h) in handles.into_iter().enumerate() {
        assert_eq!(
            h.await.ok().map(|r| r.outargs),
            Some(json!({"output": i + 1}))
        );
    }
    assert_eq!(
        peak.load(Ordering::SeqCst),
        1,
        "slots:1 ran tasks concurrently"
    );
}

#[tokio::test]
async fn c58_unclaimed_offer_goes_to_the_library_worker_after_handoff() {
    let s = server(quiet_timers(Duration::from_millis(300))).await;
    // A raw worker that announces c_add and never claims anything.
    let mut lazy = RawConn::login(s.addr(), EMPLOYEE, EMPLOYEE_TOKEN)
        .await
        .unwrap_or_else(|e| panic!("login: {e}"));
    let mut other = Vec::new();
    let r = lazy
        .request(
            "a1",
            "announce",
            json!({"workername": "lazy", "actionname": "c_add", "slots": 1, "slotgroup": null}),
            &mut other,
        )
        .await
        .unwrap_or_else(|e| panic!("announce: {e}"));
    assert_eq!(r["result"], json!([true, "success"]));
    let rec = Recorder::new();
    let w = worker(&s).await;
    announce_reference(&w, &rec, Some(1), None).await;
    let c = client(&s).await;
    // Idle workers take turns (C59), so within a few jobs the lazy one gets an offer.
    let mut offered_to_lazy = None;
    for i in 0..4 {
        let start = Instant::now();
        let res = c
            .call("k01", json!({"input": i}))
            .await
            .unwrap_or_else(|e| panic!("call: {e}"));
        assert_eq!(res.outargs, json!({"output": i + 1}));
        let id = res.job_id.unwrap_or_default();
        assert_eq!(rec.for_job(id).len(), 1, "the library worker ran job {id}");
        while let Ok(f) = lazy.recv_timeout(Duration::from_millis(1)).await {
            if f["method"] == "task_ready" && f["params"]["job_id"] == json!(id) {
                assert!(start.elapsed() >= Duration::from_millis(250));
                offered_to_lazy = Some(id);
            }
        }
        if offered_to_lazy.is_some() {
            break;
        }
    }
    assert!(
        offered_to_lazy.is_some(),
        "the lazy worker never got an offer"
    );
}

#[tokio::test]
async fn c59_idle_library_workers_take_turns() {
    let s = server(quiet_timers(Duration::from_secs(10))).await;
    let (rec1, rec2) = (Recorder::new(), Recorder::new());
    let (w1, w2) = (worker(&s).await, worker(&s).await);
    announce_reference(&w1, &rec1, Some(1), Some("w1")).await;
    announce_reference(&w2, &rec2, Some(1), Some("w2")).await;
    let c = client(&s).await;
    let mut who = Vec::new();
    for i in 0..6 {
        let res = c
            .call("k01", json!({"input": i}))
            .await
            .unwrap_or_else(|e| panic!("call: {e}"));
        let id = res.job_id.unwrap_or_default();
        assert_eq!(res.outargs, json!({"output": i + 1}));
        match (rec1.for_job(id).len(), rec2.for_job(id).len()) {
            (1, 0) => who.push(1),
            (0, 1) => who.push(2),
            other => panic!("job {id} ran {other:?} times"),
        }
    }
    assert!(
        who.windows(2).all(|p| p[0] != p[1]),
        "offers did not alternate: {who:?}"
    );
}

#[tokio::test]
async fn c66_soft_error_reoffers_reach_the_library_worker_with_tries() {
    let s = server(fast_timers()).await;
    let rec = Recorder::new();
    let w = worker(&s).await;
    announce_reference(&w, &rec, None, None).await;
    let c = client(&s).await;
    let res = c
        .call("k33", json!({"x": 1}))
        .await
        .unwrap_or_else(|e| panic!("call: {e}"));
    assert_eq!(res.outargs, json!({"y": 2}));
    let got = rec.for_job(res.job_id.unwrap_or_default());
    let envs: Vec<Value> = got.iter().map(|r| r.env.clone()).collect();
    assert_eq!(envs, vec![json!({}), json!({"tries": 1})]);
    // The worker lowers its in-flight count after it sent `task_done`, which may be after the
    // client already has `job_done`: wait for the drain instead of reading the count.
    assert_eq!(w.shutdown(Duration::from_secs(10)).await, 0);
    assert_eq!(w.in_flight(), 0);
}

#[tokio::test]
async fn c67_busy_slotgroup_offers_the_pending_action_at_once() {
    // Poll far away: only the pending round-robin of C67 can hand over the second task.
    let s = server(quiet_timers(Duration::from_secs(10))).await;
    let w = worker(&s).await;
    w.client()
        .create_slotgroup("one", Some(1))
        .await
        .unwrap_or_else(|e| panic!("slotgroup: {e}"));
    let gate = Arc::new(Semaphore::new(0));
    let (tx, mut entered) = mpsc::unbounded_channel();
    let add = Action::new("c_add").slotgroup("one").run_async({
        let (gate, tx) = (gate.clone(), tx.clone());
        move |t: Task| {
            let (gate, tx) = (gate.clone(), tx.clone());
            async move {
                let _ = tx.send(t.job_id);
                gate.acquire().await.map_err(|e| e.to_string())?.forget();
                Ok::<_, String>(c_add(&t.inargs))
            }
        }
    });
    let fail = Action::new("c_fail").slotgroup("one").sync(move |t: Task| {
        let _ = tx.send(t.job_id);
        Ok::<_, String>(jobcenter_conformance::c_fail(&t.inargs))
    });
    announce(&w, add).await;
    announce(&w, fail).await;
    let c = client(&s).await;
    let h1 = submit(&c, "k01", json!({"input": 1})).await;
    let id1 = h1.job_id().unwrap_or_default();
    assert_eq!(next_entered(&mut entered).await, id1);
    // The slotgroup is busy: the c_fail job waits (pending) until c_add is done.
    let h2 = submit(&c, "k08a", json!({"what": "ok"})).await;
    let id2 = h2.job_id().unwrap_or_default();
    assert!(
        tokio::time::timeout(Duration::from_millis(200), entered.recv())
            .await
            .is_err(),
        "second task ran while the only slot was busy"
    );
    let released = Instant::now();
    gate.add_permits(1);
    assert_eq!(next_entered(&mut entered).await, id2);
    assert!(
        released.elapsed() < Duration::from_secs(5),
        "not offered at once"
    );
    assert_eq!(h1.await.ok().map(|r| r.outargs), Some(json!({"output": 2})));
    assert_eq!(
        h2.await.ok().map(|r| r.outargs),
        Some(json!({"res": "fine"}))
    );
}

#[tokio::test]
async fn c68_jobs_ready_before_announce_are_served_soon_after() {
    // Poll every 60 s as the reference: the job must still be served right after announce.
    let s = server(quiet_timers(Duration::from_secs(10))).await;
    let c = client(&s).await;
    let h = submit(&c, "k01", json!({"input": 7})).await;
    let id = h.job_id().unwrap_or_default();
    assert_eq!(c.get_job_status(id).await.ok(), Some(JobStatus::Running));
    let rec = Recorder::new();
    let w = worker(&s).await;
    let start = Instant::now();
    announce_reference(&w, &rec, None, None).await;
    let res = tokio::time::timeout(WAIT, h)
        .await
        .unwrap_or_else(|_| panic!("job not served within {WAIT:?} of the announce"));
    assert_eq!(res.ok().map(|r| r.outargs), Some(json!({"output": 8})));
    assert!(start.elapsed() < WAIT);
    assert_eq!(rec.for_job(id).len(), 1);
}

#[tokio::test]
async fn c71_worker_disconnects_holding_task_another_worker_finishes_job() {
    let s = server(fast_timers()).await;
    let gate = Arc::new(Semaphore::new(0));
    let (tx, mut entered) = mpsc::unbounded_channel();
    let first = worker(&s).await;
    announce(&first, gated_add(1, gate.clone(), tx).workername("first")).await;
    let c = client(&s).await;
    let h = submit(&c, "k01", json!({"input": 99})).await;
    let id = h.job_id().unwrap_or_default();
    // The first worker has claimed the task (c_add is not retryable) ...
    assert_eq!(next_entered(&mut entered).await, id);
    let rec = Recorder::new();
    let second = worker(&s).await;
    announce_reference(&second, &rec, None, Some("second")).await;
    // ... and vanishes while holding it.
    first.client().close();
    first.client().closed().await;
    let res = tokio::time::timeout(WAIT, h)
        .await
        .unwrap_or_else(|_| panic!("the job did not finish after the worker left"));
    assert_eq!(res.ok().map(|r| r.outargs), Some(json!({"output": 100})));
    let got = rec.for_job(id);
    assert_eq!(
        got.len(),
        1,
        "the second worker ran the re-queued task once"
    );
    assert_eq!(got[0].inargs, json!({"counter": 99, "step": 1}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_jobs_two_workers_none_lost() {
    const JOBS: usize = 2000;
    const IN_FLIGHT: usize = 200;
    let s = server(fast_timers()).await;
    let (rec1, rec2) = (Recorder::new(), Recorder::new());
    let (w1, w2) = (worker(&s).await, worker(&s).await);
    announce_reference(&w1, &rec1, Some(8), Some("many-1")).await;
    announce_reference(&w2, &rec2, Some(8), Some("many-2")).await;
    let c = client(&s).await;
    let start = Instant::now();
    let results: Vec<(usize, Option<i64>, Value)> = futures::stream::iter(0..JOBS)
        .map(|i| {
            let c = c.clone();
            async move {
                match c.call("k01", json!({ "input": i })).await {
                    Ok(r) => (i, r.job_id, r.outargs),
                    Err(e) => (i, None, json!({"client error": e.to_string()})),
                }
            }
        })
        .buffer_unordered(IN_FLIGHT)
        .collect()
        .await;
    let took = start.elapsed();
    let mut ids = std::collections::HashSet::new();
    for (i, id, out) in &results {
        assert_eq!(out, &json!({"output": i + 1}), "job {i}");
        assert!(
            ids.insert(id.unwrap_or_default()),
            "duplicate job id {id:?}"
        );
    }
    assert_eq!(results.len(), JOBS);
    assert_eq!(rec1.len() + rec2.len(), JOBS, "each task ran exactly once");
    assert!(!rec1.is_empty() && !rec2.is_empty(), "both workers served");
    assert_eq!(c.waiting_jobs(), 0);
    eprintln!(
        "{JOBS} jobs, {IN_FLIGHT} in flight: {took:?} ({:.0} jobs/s); worker split {}/{}",
        JOBS as f64 / took.as_secs_f64(),
        rec1.len(),
        rec2.len()
    );
}

#[tokio::test]
async fn c93_work_keeps_running_on_server_pings_then_stop_code() {
    // Server pings every 100 ms; the watchdog wants one within 800 ms (eight pings' worth:
    // 400 ms once tripped on a machine with a load of 9).
    let timers = Timers {
        ping_interval: Duration::from_millis(100),
        ..fast_timers()
    };
    let s = server(timers).await;
    let cfg = s
        .config(EMPLOYEE, EMPLOYEE_TOKEN)
        .ping_timeout(Duration::from_millis(800));
    let w = Worker::connect(cfg)
        .await
        .unwrap_or_else(|e| panic!("connect: {e}"));
    let rec = Recorder::new();
    announce_reference(&w, &rec, None, None).await;
    let work = tokio::spawn({
        let w = w.clone();
        async move { w.work().await }
    });
    // Several watchdog periods pass; work() must still be running.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(
        !work.is_finished(),
        "work() ended although the server pings"
    );
    // And the worker still serves.
    let c = client(&s).await;
    let res = c.call("k01", json!({"input": 1})).await.ok();
    assert_eq!(res.map(|r| r.outargs), Some(json!({"output": 2})));
    w.stop(7);
    assert_eq!(
        work.await.ok(),
        Some(jobcenter::WorkOutcome::StopRequested(7))
    );
}

#[tokio::test]
async fn c93_work_returns_92_when_the_server_does_not_ping() {
    let s = server(quiet_timers(Duration::from_secs(10))).await;
    let cfg = s
        .config(EMPLOYEE, EMPLOYEE_TOKEN)
        .ping_timeout(Duration::from_millis(300));
    let w = Worker::connect(cfg)
        .await
        .unwrap_or_else(|e| panic!("connect: {e}"));
    announce_reference(&w, &Recorder::new(), None, None).await;
    let code = tokio::time::timeout(WAIT, w.work())
        .await
        .unwrap_or_else(|_| panic!("work() did not end"));
    assert_eq!(code, jobcenter::WorkOutcome::PingTimeout);
    assert_eq!(code.exit_code(), jobcenter::WORK_PING_TIMEOUT);
    assert!(!w.client().is_connected());
}

#[tokio::test]
async fn large_payloads_cross_every_hop_below_the_frame_limit() {
    // create_job, get_task, task_done and job_done each carry ~900 kB (server limit: a
    // declared length of 999999 bytes is accepted, C5).
    let s = server(fast_timers()).await;
    let rec = Recorder::new();
    let w = worker(&s).await;
    announce_reference(&w, &rec, None, None).await;
    let c = client(&s).await;
    let blob = "x".repeat(900_000);
    let res = c
        .call("k27b", json!({"x": {"blob": blob}}))
        .await
        .unwrap_or_else(|e| panic!("call: {e}"));
    assert!(res.job_id.is_some(), "{}", res.outargs.to_string().len());
    assert_eq!(
        res.outargs["seen"]["inargs"]["x"]["blob"]
            .as_str()
            .map(str::len),
        Some(900_000)
    );
    // Too big for the server: the client learns it as a closed connection, not a hang.
    let big = "y".repeat(1_000_000);
    let r = tokio::time::timeout(WAIT, c.call("k27b", json!({"x": {"blob": big}}))).await;
    assert!(matches!(r, Ok(Err(_))), "oversized create_job: {r:?}");
}

#[tokio::test]
async fn clenv_reaches_workflow_actions_and_children_reqauth_ignored() {
    // docs/PROTOCOL.md §11.5/§11.6 through the client library: `clenv` becomes `e.clenv`, an
    // action declaring the env input `clenv` receives it, child jobs inherit it; `reqauth`
    // is ignored by the password adapter.
    let dir = jobcenter_conformance::own_fixtures().join("extra");
    let s = TestServer::start_on(super::STORE, dir, fast_timers())
        .await
        .unwrap_or_else(|e| panic!("server: {e}"));
    let w = worker(&s).await;
    announce(
        &w,
        Action::new("e_env")
            .addenv(true)
            .sync(|t: Task| Ok::<_, String>(json!({"y": t.env.unwrap_or_default()}))),
    )
    .await;
    let c = client(&s).await;
    let clenv = json!({"lang": "nl", "n": 1});
    let res = c
        .job("e_clenv")
        .inargs(json!({"x": 1}))
        .clenv(clenv.clone())
        .reqauth(json!({"token": "ignored"}))
        .call()
        .await
        .unwrap_or_else(|e| panic!("call: {e}"));
    assert_eq!(
        res.outargs,
        json!({"wf": clenv, "act": {"clenv": clenv}}),
        "job {:?}",
        res.job_id
    );
    let res = c
        .job("e_clenv_parent")
        .inargs(json!({"x": 2}))
        .clenv(clenv.clone())
        .call()
        .await
        .unwrap_or_else(|e| panic!("call: {e}"));
    assert_eq!(
        res.outargs,
        json!({"child": {"wf": clenv, "act": {"clenv": clenv}}})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_clients_and_workers_at_once_no_job_lost() {
    const CLIENTS: usize = 20;
    const JOBS_EACH: usize = 50;
    let s = server(fast_timers()).await;
    let recs: Vec<Recorder> = (0..4).map(|_| Recorder::new()).collect();
    let mut workers = Vec::new();
    for (k, rec) in recs.iter().enumerate() {
        let w = worker(&s).await;
        announce_reference(&w, rec, Some(4), Some(&format!("mw-{k}"))).await;
        workers.push(w);
    }
    let mut tasks = Vec::new();
    for k in 0..CLIENTS {
        let c = client(&s).await;
        tasks.push(tokio::spawn(async move {
            let mut bad = Vec::new();
            let calls = (0..JOBS_EACH).map(|j| {
                let c = c.clone();
                async move {
                    let input = (k * 1000 + j) as i64;
                    let r = c.call("k01", json!({ "input": input })).await;
                    (input, r.map(|r| r.outargs).map_err(|e| e.to_string()))
                }
            });
            for (input, r) in futures::future::join_all(calls).await {
                if r != Ok(json!({"output": input + 1})) {
                    bad.push((input, r));
                }
            }
            bad
        }));
    }
    for t in tasks {
        let bad = t.await.unwrap_or_else(|e| panic!("client task: {e}"));
        assert!(bad.is_empty(), "wrong results: {bad:?}");
    }
    let total: usize = recs.iter().map(Recorder::len).sum();
    assert_eq!(total, CLIENTS * JOBS_EACH, "each task ran exactly once");
}

#[tokio::test]
async fn c88_odd_handler_results_end_the_job_instead_of_hanging() {
    // Whatever a handler returns (nothing, a scalar, an array, an error, a panic, an
    // object without the required output), the job ends with an error result.
    let s = server(fast_timers()).await;
    let w = worker(&s).await;
    announce(
        &w,
        Action::new("c_add").slots(4).sync(|t: Task| {
            match t.inargs["counter"].as_i64().unwrap_or_default() {
                1 => Ok(Value::Null),
                2 => Ok(json!("just a string")),
                3 => Ok(json!([1, 2])),
                4 => Err("handler failed".to_string()),
                5 => panic!("handler panicked"),
                _ => Ok(json!({})),
            }
        }),
    )
    .await;
    let c = client(&s).await;
    let missing = json!({"error": {"msg": "caught exception in do_outargsmap sqlstate P0001 sqlerrm required output parameter counter not found", "class": "normal"}});
    for (counter, expected) in [
        (1, Some(json!({"error": "no result"}))),
        (2, None),
        (3, None),
        (4, Some(json!({"error": "handler failed"}))),
        (5, None),
        (6, Some(missing)),
    ] {
        let res = tokio::time::timeout(WAIT, c.call("k01", json!({ "input": counter })))
            .await
            .unwrap_or_else(|_| panic!("counter {counter}: the job hangs"))
            .unwrap_or_else(|e| panic!("counter {counter}: {e}"));
        assert!(res.job_id.is_some());
        assert!(res.is_error(), "counter {counter}: {}", res.outargs);
        if let Some(exp) = expected {
            assert_eq!(res.outargs, exp, "counter {counter}");
        }
    }
    // In flight drops after `task_done` was sent, possibly after `job_done` arrived.
    assert_eq!(w.shutdown(WAIT).await, 0);
    assert_eq!(w.in_flight(), 0);
}

#[tokio::test]
async fn c39_sub_second_job_timeout_is_not_rounded_to_forever() {
    let (s, gate, mut entered, _w) = gated_server(1).await;
    let c = client(&s).await;
    let start = Instant::now();
    let res = tokio::time::timeout(
        WAIT,
        c.job("k01")
            .inargs(json!({"input": 1}))
            .timeout(Duration::from_millis(300))
            .call(),
    )
    .await
    .unwrap_or_else(|_| panic!("a 300 ms job timeout never fired"))
    .unwrap_or_else(|e| panic!("call: {e}"));
    assert_eq!(res.outargs, json!({"error": "timeout"}));
    assert!(start.elapsed() >= Duration::from_millis(250));
    let id = res.job_id.unwrap_or_default();
    assert_eq!(next_entered(&mut entered).await, id);
    gate.add_permits(1);
}

#[tokio::test]
async fn waiting_calls_fail_promptly_when_the_server_shuts_down() {
    let mut s = server(fast_timers()).await;
    let c = client(&s).await;
    // Nobody serves c_add: the call waits for a job_done that will never come.
    let call = tokio::spawn({
        let c = c.clone();
        async move { c.call("k01", json!({"input": 1})).await }
    });
    while c.waiting_jobs() == 0 {
        tokio::task::yield_now().await;
    }
    s.shutdown().await;
    let r = tokio::time::timeout(WAIT, call)
        .await
        .unwrap_or_else(|_| panic!("the waiting call hangs after shutdown"));
    assert!(
        matches!(r, Ok(Err(jobcenter::ClientError::Closed))),
        "{r:?}"
    );
    assert!(!c.is_connected());
}
