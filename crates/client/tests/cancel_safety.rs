//! Cancel safety: every public async method of `Client` / `Worker` is dropped mid-way
//! (`tokio::time::timeout`, `select!`, or after a fixed number of polls) against the real
//! server on loopback; afterwards the connection still works and no state is left behind
//! (no stale job waiter, announce again succeeds, the job's result can still be fetched).

mod support;

use std::future::Future;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use jobcenter::{Action, Client, JobStatus, WorkOutcome, Worker};
use serde_json::{json, Value};
use support::rig::{rig, Rig};
use tokio::sync::{mpsc, Semaphore};
use tokio::time::timeout;

/// Upper bound for anything that should happen promptly.
const BOUND: Duration = Duration::from_secs(10);

/// Poll `fut` at most `polls` times (yielding to the runtime in between, so spawned tasks
/// and the connection make progress), then drop it. `Some(output)` if it finished first.
async fn drop_after_polls<F: Future>(fut: F, polls: usize) -> Option<F::Output> {
    let mut fut = std::pin::pin!(fut);
    for _ in 0..polls {
        let step = std::future::poll_fn(|cx| Poll::Ready(fut.as_mut().poll(cx))).await;
        if let Poll::Ready(v) = step {
            return Some(v);
        }
        tokio::task::yield_now().await;
    }
    None
}

/// Wait (bounded) until `cond` holds, re-checking after yielding to the runtime.
async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let waited = timeout(BOUND, async {
        while !cond() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert!(waited.is_ok(), "not within {BOUND:?}: {what}");
}

#[derive(serde::Deserialize)]
struct AddIn {
    counter: i64,
    step: i64,
}

/// A worker serving `add`; each task reports its job id on the channel and then waits for
/// one permit of the gate.
async fn gated_worker(r: &Rig) -> (Worker, mpsc::UnboundedReceiver<i64>, Arc<Semaphore>) {
    let w = r.worker().await;
    let (tx, rx) = mpsc::unbounded_channel();
    let gate = Arc::new(Semaphore::new(0));
    let g = gate.clone();
    let action = Action::new("add").slots(4).run_async(move |task| {
        let tx = tx.clone();
        let gate = g.clone();
        async move {
            let _ = tx.send(task.job_id);
            gate.acquire().await.map_err(|e| e.to_string())?.forget();
            let i: AddIn = serde_json::from_value(task.inargs).map_err(|e| e.to_string())?;
            Ok::<_, String>(json!({"counter": i.counter + i.step}))
        }
    });
    w.announce(action).await.expect("announce add");
    (w, rx, gate)
}

fn square() -> Action {
    #[derive(serde::Deserialize)]
    struct Root {
        root: i64,
    }
    #[derive(serde::Serialize)]
    struct Square {
        square: i64,
    }
    Action::typed("square", |r: Root| async move {
        Ok::<_, String>(Square {
            square: r.root * r.root,
        })
    })
}

/// The final outargs of `job_id`, fetched with `get_job_status` (+ notify if still running).
async fn fetch_result(c: &Client, job_id: i64) -> Value {
    let (status, completion) = c.get_job_status_notify(job_id).await.expect("status");
    match (status, completion) {
        (JobStatus::Finished(out), _) => out,
        (JobStatus::Running, Some(done)) => timeout(BOUND, done.wait())
            .await
            .expect("the job finishes")
            .expect("its result"),
        other => panic!("job {job_id}: {other:?}"),
    }
}

/// `call` dropped while waiting for the job (the JobCompletion::wait inside): no stale
/// waiter; the job still finishes and its result can be fetched; the connection works.
#[tokio::test]
async fn call_dropped_while_waiting_leaves_no_waiter() {
    let r = rig().await;
    let (_w, mut started, gate) = gated_worker(&r).await;
    let c = r.client().await;
    let job_id = tokio::select! {
        res = c.call("calladd", json!({"input": 1})) => panic!("finished early: {res:?}"),
        id = started.recv() => id.expect("the task starts"),
    };
    assert_eq!(c.waiting_jobs(), 0, "the dropped call left a waiter behind");
    gate.add_permits(1);
    assert_eq!(fetch_result(&c, job_id).await, json!({"output": 2}));
    assert_eq!(c.waiting_jobs(), 0);
    gate.add_permits(1);
    let res = timeout(BOUND, c.call("calladd", json!({"input": 5})))
        .await
        .expect("call in time")
        .expect("call works");
    assert_eq!(res.outargs, json!({"output": 6}));
    assert_eq!(c.waiting_jobs(), 0);
}

/// A `JobHandle` / `JobCompletion` wait dropped by `timeout` (after one poll and after the
/// task started): no stale waiter, and waiting again via `get_job_status_notify` works.
#[tokio::test]
async fn job_completion_wait_dropped_by_timeout() {
    let r = rig().await;
    let (_w, mut started, gate) = gated_worker(&r).await;
    let c = r.client().await;
    let handle = c
        .job("calladd")
        .inargs(json!({"input": 10}))
        .submit()
        .await
        .expect("submit");
    let job_id = handle.job_id().expect("created");
    assert_eq!(c.waiting_jobs(), 1);
    assert!(timeout(Duration::ZERO, handle.outcome()).await.is_err());
    assert_eq!(c.waiting_jobs(), 0, "JobHandle::outcome left a waiter");
    assert_eq!(started.recv().await, Some(job_id));
    let (status, completion) = c.get_job_status_notify(job_id).await.expect("status");
    assert_eq!(status, JobStatus::Running);
    let completion = completion.expect("a completion");
    assert_eq!(c.waiting_jobs(), 1);
    assert!(timeout(Duration::ZERO, completion.wait()).await.is_err());
    assert_eq!(c.waiting_jobs(), 0, "JobCompletion::wait left a waiter");
    // get_job_status_notify itself, dropped at its await point.
    assert!(drop_after_polls(c.get_job_status_notify(job_id), 1)
        .await
        .is_none());
    assert_eq!(c.waiting_jobs(), 0, "get_job_status_notify left a waiter");
    gate.add_permits(1);
    assert_eq!(fetch_result(&c, job_id).await, json!({"output": 11}));
    assert!(c.ping().await);
}

/// `submit` dropped after 1..=8 polls: whether or not the job got created, nothing is left
/// waiting and the connection keeps working; created jobs run to the end.
#[tokio::test]
async fn submit_dropped_at_each_await_point() {
    let r = rig().await;
    let (_w, mut started, gate) = gated_worker(&r).await;
    gate.add_permits(1000);
    let c = r.client().await;
    for polls in 1..=8 {
        let submit = c.job("calladd").inargs(json!({"input": polls})).submit();
        if let Some(res) = drop_after_polls(submit, polls).await {
            drop(res.expect("submit"));
        }
        assert_eq!(c.waiting_jobs(), 0, "after {polls} polls");
        assert!(c.ping().await, "after {polls} polls");
    }
    let res = timeout(BOUND, c.call("calladd", json!({"input": 100})))
        .await
        .expect("call in time")
        .expect("call works");
    assert_eq!(res.outargs, json!({"output": 101}));
    // Every job that was created ran and finished.
    let mut ids = Vec::new();
    while let Ok(id) = started.try_recv() {
        ids.push(id);
    }
    for id in ids {
        let out = fetch_result(&c, id).await;
        assert!(out["output"].is_i64(), "job {id}: {out}");
    }
    assert_eq!(c.waiting_jobs(), 0);
}

/// `announce` dropped at every await point (by `timeout`, after 1..=8 polls): the
/// announce is undone, announcing again succeeds and the action then serves jobs.
#[tokio::test]
async fn announce_dropped_at_each_await_point_is_undone() {
    let r = rig().await;
    let w = r.worker().await;
    let c = r.client().await;
    // A zero timeout drops it only once the timer fires (by then it may have finished).
    if let Ok(res) = timeout(Duration::ZERO, w.announce(square())).await {
        res.expect("announce");
        w.withdraw("square").await.expect("withdraw");
    }
    timeout(BOUND, w.announce(square()))
        .await
        .expect("announce in time")
        .expect("announce after the timeout");
    w.withdraw("square").await.expect("withdraw");
    for polls in 1..=8 {
        match drop_after_polls(w.announce(square()), polls).await {
            Some(res) => res.expect("announce finished"),
            None => {
                // Dropped mid-way: announcing again waits for the undo and succeeds.
                timeout(BOUND, w.announce(square()))
                    .await
                    .expect("announce again in time")
                    .unwrap_or_else(|e| panic!("announce again after {polls} polls: {e}"));
            }
        }
        assert_eq!(w.actions(), vec!["square".to_string()]);
        let res = timeout(BOUND, c.call("callsquare", json!({"root": polls})))
            .await
            .expect("call in time")
            .expect("call works");
        let p = polls as i64;
        assert_eq!(res.outargs, json!({"square": p * p}), "after {polls} polls");
        timeout(BOUND, w.withdraw("square"))
            .await
            .expect("withdraw in time")
            .expect("withdraw");
        assert!(w.actions().is_empty());
    }
}

/// `withdraw` dropped after one poll still completes; `work` dropped can be run again.
#[tokio::test]
async fn withdraw_and_work_dropped() {
    let r = rig().await;
    let w = r.worker().await;
    w.announce(square()).await.expect("announce");
    assert!(drop_after_polls(w.withdraw("square"), 1).await.is_none());
    eventually("the dropped withdraw completes", || w.actions().is_empty()).await;
    timeout(BOUND, w.announce(square()))
        .await
        .expect("announce in time")
        .expect("announce again after the withdraw");
    assert!(timeout(Duration::ZERO, w.work()).await.is_err());
    w.stop(4);
    let outcome = timeout(BOUND, w.work()).await.expect("work ends");
    assert_eq!(outcome, WorkOutcome::StopRequested(4));
    let c = r.client().await;
    let res = timeout(BOUND, c.call("callsquare", json!({"root": 3})))
        .await
        .expect("call in time")
        .expect("call works");
    assert_eq!(res.outargs, json!({"square": 9}));
}

/// `shutdown` dropped after one poll still completes: `work()` ends with `Stopped`, the
/// actions are gone and the connection is closed.
#[tokio::test]
async fn shutdown_dropped_still_completes() {
    let r = rig().await;
    let w = r.worker().await;
    w.announce(square()).await.expect("announce");
    assert!(drop_after_polls(w.shutdown(Duration::from_secs(5)), 1)
        .await
        .is_none());
    let outcome = timeout(BOUND, w.work()).await.expect("work ends");
    assert_eq!(outcome, WorkOutcome::Stopped);
    timeout(BOUND, w.client().closed())
        .await
        .expect("the connection closes");
    assert!(w.actions().is_empty());
}
