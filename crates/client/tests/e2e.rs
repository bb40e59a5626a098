//! End to end: the client and worker library against the real API server
//! (`jobcenter-server`) over the real engine (`jobcenter_engine::Engine` on a `MemoryStore`),
//! in-process on 127.0.0.1.

mod support;

use std::time::Duration;

use std::sync::Arc;

use jobcenter::{Action, Client, ClientError, JobStatus, Reconnect, Worker};
use serde_json::{json, Value};
use support::rig::{rig, start};

fn add(t: jobcenter::Task) -> Result<Value, String> {
    let c = t.inargs["counter"].as_i64().ok_or("no counter")?;
    let s = t.inargs["step"].as_i64().ok_or("no step")?;
    Ok(json!({"counter": c + s}))
}

/// Standard actions of the example worker: add (sync), square (async), div (sync, errors).
async fn announce_all(w: &Worker) {
    w.announce(Action::new("add").slots(2).sync(add))
        .await
        .unwrap();
    w.announce(Action::new("square").run_async(|t| async move {
        tokio::time::sleep(Duration::from_millis(10)).await;
        let r = t.inargs["root"].as_i64().ok_or("no root")?;
        Ok::<_, String>(json!({"square": r * r}))
    }))
    .await
    .unwrap();
    w.announce(Action::new("div").sync(|t| {
        let a = t.inargs["dividend"].as_f64().ok_or("no dividend")?;
        let b = t.inargs["divisor"].as_f64().ok_or("no divisor")?;
        if b == 0.0 {
            return Err("division by zero".to_string());
        }
        Ok(json!({"quotient": a / b}))
    }))
    .await
    .unwrap();
}

#[tokio::test]
async fn e2e_call_through_worker_all_modes() {
    let r = rig().await;
    let w = r.worker().await;
    announce_all(&w).await;
    let c = r.client().await;
    let res = c.call("calladd", json!({"input": 12})).await.unwrap();
    assert!(res.job_id.is_some());
    assert_eq!(res.outargs, json!({"output": 13}));
    let res = c.call("callsquare", json!({"root": 3})).await.unwrap();
    assert_eq!(res.outargs, json!({"square": 9}));
    let res = c
        .call("calldiv", json!({"dividend": 9, "divisor": 2}))
        .await
        .unwrap();
    assert_eq!(res.outargs, json!({"quotient": 4.5}));
    let res = c
        .call("calldiv", json!({"dividend": 9, "divisor": 0}))
        .await
        .unwrap();
    assert!(res.is_error(), "{}", res.outargs);
    assert!(res.outargs.to_string().contains("division by zero"));
    // The typed call reports it as a failed job with the job's error object.
    let typed = c
        .call_typed::<Value, Value>("calldiv", &json!({"dividend": 9, "divisor": 0}))
        .await;
    match typed {
        Err(ClientError::JobFailed { job_id, error }) => {
            assert!(job_id > 0);
            assert!(error.to_string().contains("division by zero"), "{error}");
        }
        other => panic!("{other:?}"),
    }
    // In flight drops after `task_done` was sent, possibly after `job_done` arrived.
    assert_eq!(w.shutdown(std::time::Duration::from_secs(10)).await, 0);
    assert_eq!(w.in_flight(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_many_jobs_in_flight() {
    let r = rig().await;
    let w = r.worker().await;
    w.announce(Action::new("add").slots(8).sync(add))
        .await
        .unwrap();
    let c = r.client().await;
    let mut handles = Vec::new();
    for i in 0..50 {
        handles.push(
            c.job("calladd")
                .inargs(json!({"input": i}))
                .submit()
                .await
                .unwrap(),
        );
    }
    for (i, h) in handles.into_iter().enumerate() {
        let res = h.await.unwrap();
        assert_eq!(res.outargs, json!({"output": i + 1}));
    }
    assert_eq!(c.waiting_jobs(), 0);
}

#[tokio::test]
async fn e2e_c75_c77_refusals() {
    let r = rig().await;
    let e = Client::connect(r.cfg("theCustomer", "wrong"))
        .await
        .unwrap_err();
    match e {
        ClientError::Auth(m) => assert_eq!(m, "you're not welcome!"),
        other => panic!("{other:?}"),
    }
    let c = r.client().await;
    let res = c.call("nosuchworkflow", json!({})).await.unwrap();
    assert_eq!(res.job_id, None);
    let text = res.error().and_then(Value::as_str).unwrap_or_default();
    assert!(text.contains("no workflow named nosuchworkflow"), "{text}");
    let res = c.call("calladd", json!({"input": "x"})).await.unwrap();
    assert_eq!(res.job_id, None);
    assert!(res.is_error());
    match c
        .call_typed::<Value, Value>("nosuchworkflow", &json!({}))
        .await
    {
        Err(ClientError::NotCreated { message }) => {
            assert!(
                message.contains("no workflow named nosuchworkflow"),
                "{message}"
            )
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn e2e_c79_c80_status_and_notify() {
    let r = rig().await;
    let c = r.client().await;
    let h = c
        .job("sleeper")
        .inargs(json!({"d": "300 milliseconds"}))
        .submit()
        .await
        .unwrap();
    let id = h.job_id().unwrap();
    assert_eq!(c.get_job_status(id).await.unwrap(), JobStatus::Running);
    let (st, comp) = c.get_job_status_notify(id).await.unwrap();
    assert_eq!(st, JobStatus::Running);
    let out = comp.unwrap().await.unwrap();
    assert_eq!(out, json!({"r": "woke up"}));
    // The creating call gets its own completion too (job_done may come twice: C94).
    assert_eq!(h.await.unwrap().outargs, json!({"r": "woke up"}));
    assert_eq!(
        c.get_job_status(id).await.unwrap(),
        JobStatus::Finished(json!({"r": "woke up"}))
    );
    assert_eq!(
        c.get_job_status(99_999_999).await.unwrap(),
        JobStatus::Unknown
    );
    let (st, comp) = c.get_job_status_notify(id).await.unwrap();
    assert_eq!(st, JobStatus::Finished(json!({"r": "woke up"})));
    assert!(comp.is_none());
    assert_eq!(c.waiting_jobs(), 0);
}

#[tokio::test]
async fn e2e_job_timeout_gives_timeout_error() {
    let r = rig().await;
    let c = r.client().await;
    let res = c
        .job("calladd") // nobody serves add here
        .inargs(json!({"input": 1}))
        .timeout(Duration::from_secs(1))
        .call()
        .await
        .unwrap();
    assert_eq!(res.outargs, json!({"error": "timeout"}));
    let job_id = res.job_id.expect("the job was created");
    assert!(matches!(
        res.into_result(),
        Err(ClientError::JobTimeout { job_id: j }) if j == job_id
    ));
    // It is still running (nobody serves add).
    assert_eq!(c.get_job_status(job_id).await.unwrap(), JobStatus::Running);
}

#[tokio::test]
async fn e2e_queries_find_jobs_locks_ping() {
    let r = rig().await;
    let c = r.client().await;
    let h = c
        .job("sleeper")
        .inargs(json!({"d": "5 seconds"}))
        .submit()
        .await
        .unwrap();
    let id = h.job_id().unwrap();
    let ids = c.find_jobs(json!({"d": "5 seconds"})).await.unwrap();
    assert!(ids.contains(&id), "{ids:?}");
    assert!(matches!(
        c.find_jobs("{}").await,
        Err(ClientError::Backend(_))
    ));
    assert_eq!(
        c.check_if_lock_exists("nosuchlock", "x").await.unwrap(),
        None
    );
    assert!(c.ping().await);
    assert!(matches!(
        c.get_api_status("stats").await,
        Err(ClientError::Rpc { code: -32001, .. })
    ));
    c.create_slotgroup("g", Some(2)).await.unwrap();
    assert!(c.create_slotgroup("g", Some(2)).await.is_err());
}

#[tokio::test]
async fn e2e_c86_announce_errors() {
    let r = rig().await;
    let w = r.worker().await;
    let e = w
        .announce(Action::new("frobnicate").sync(add))
        .await
        .unwrap_err();
    assert!(
        matches!(&e, ClientError::Announce(m) if m.contains("no action named frobnicate")),
        "{e:?}"
    );
    w.announce(Action::new("add").sync(add)).await.unwrap();
    assert!(matches!(
        w.announce(Action::new("add").sync(add)).await,
        Err(ClientError::AlreadyAnnounced(_))
    ));
    w.withdraw("add").await.unwrap();
    w.announce(Action::new("add").sync(add)).await.unwrap();
}

#[tokio::test]
async fn e2e_c93_work_returns_91_on_server_shutdown() {
    let mut r = rig().await;
    let w = r.worker().await;
    announce_all(&w).await;
    let work = tokio::spawn({
        let w = w.clone();
        async move { w.work().await }
    });
    r.handle.take().unwrap().shutdown().await;
    let code = tokio::time::timeout(Duration::from_secs(5), work)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(code, jobcenter::WorkOutcome::ConnectionLost);
    assert_eq!(code.exit_code(), jobcenter::WORK_CONNECTION_CLOSED);
}

#[tokio::test]
async fn e2e_auto_reconnect_after_server_restart() {
    let mut r = rig().await;
    let w = r.worker().await;
    w.set_reconnect(Some(Reconnect {
        initial: Duration::from_millis(50),
        max: Duration::from_millis(200),
    }));
    announce_all(&w).await;
    let work = tokio::spawn({
        let w = w.clone();
        async move { w.work().await }
    });
    r.handle.take().unwrap().shutdown().await;
    // A new server (same engine, same address) comes up; the worker reconnects and
    // re-announces by itself.
    let handle = start(r.addr, &r.dir, r.engine.clone()).await;
    let c = r.client().await;
    let res = tokio::time::timeout(
        Duration::from_secs(10),
        c.call("calladd", json!({"input": 1})),
    )
    .await
    .expect("the reconnected worker serves the job")
    .unwrap();
    assert_eq!(res.outargs, json!({"output": 2}));
    w.stop(0);
    assert_eq!(work.await.unwrap(), jobcenter::WorkOutcome::Stopped);
    handle.shutdown().await;
}

#[tokio::test]
async fn e2e_shutdown_drains() {
    let r = rig().await;
    let w = r.worker().await;
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let g = gate.clone();
    w.announce(Action::new("square").run_async(move |t| {
        let g = g.clone();
        async move {
            let _permit = g.acquire().await.map_err(|e| e.to_string())?;
            let r = t.inargs["root"].as_i64().ok_or("no root")?;
            Ok::<_, String>(json!({"square": r * r}))
        }
    }))
    .await
    .unwrap();
    let c = r.client().await;
    let h = c
        .job("callsquare")
        .inargs(json!({"root": 4}))
        .submit()
        .await
        .unwrap();
    while w.in_flight() == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let shut = tokio::spawn({
        let w = w.clone();
        async move { w.shutdown(Duration::from_secs(5)).await }
    });
    gate.add_permits(1);
    assert_eq!(shut.await.unwrap(), 0);
    assert_eq!(h.await.unwrap().outargs, json!({"square": 16}));
    assert!(!w.client().is_connected());
}
