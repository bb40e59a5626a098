//! The client and worker against the server side of the real Perl stack's transcripts.

mod support;

use std::time::Duration;

use jobcenter::{Action, Client, ClientError, JobResult, JobStatus, Worker};
use serde_json::{json, Value};
use support::{fixture, replay, Script};

fn drop_workername(v: &mut Value) {
    if let Some(m) = v.as_object_mut() {
        m.remove("workername");
    }
}

fn add(task: jobcenter::Task) -> Result<Value, String> {
    let c = task.inargs["counter"].as_i64().ok_or("no counter")?;
    let s = task.inargs["step"].as_i64().ok_or("no step")?;
    Ok(json!({"counter": c + s}))
}

#[tokio::test]
async fn a_client_happy_path() {
    let s = Script::bind().await;
    let cfg = s.config("theCustomer", "wantsThings");
    let events = fixture("a_client_happy_path");
    let server = tokio::spawn(async move {
        let mut c = s.accept().await;
        replay(&mut c, &events, "c1", |_| {}).await;
        c.expect_eof().await;
    });
    let client = Client::connect(cfg).await.unwrap();
    let res = client.call("calladd", json!({"input": 12})).await.unwrap();
    assert_eq!(
        res,
        JobResult {
            job_id: Some(6),
            outargs: json!({"output": 15})
        }
    );
    client.close();
    server.await.unwrap();
}

/// Includes C73 (a string poll-offer id goes back unchanged) and C92 (`"pong!"`).
#[tokio::test]
async fn b_worker_happy_path_c73_c92() {
    let s = Script::bind().await;
    let cfg = s.config("theEmployee", "doesThings");
    let events = fixture("b_worker_happy_path");
    let server = tokio::spawn(async move {
        let mut c = s.accept().await;
        replay(&mut c, &events, "c1", drop_workername).await;
        c
    });
    let worker = Worker::connect(cfg).await.unwrap();
    worker
        .announce(Action::new("add").slots(1).sync(add))
        .await
        .unwrap();
    let _conn = server.await.unwrap();
    assert_eq!(worker.actions(), vec!["add".to_string()]);
}

#[tokio::test]
async fn e_perl_client_api_tour_worker_side() {
    let s = Script::bind().await;
    let cfg = s.config("theEmployee", "doesThings");
    let events = fixture("e_perl_client_api_tour");
    let server = tokio::spawn(async move {
        let mut c = s.accept().await;
        replay(&mut c, &events, "c1", drop_workername).await;
        c
    });
    let worker = Worker::connect(cfg).await.unwrap();
    worker
        .client()
        .create_slotgroup("tourgroup", Some(3))
        .await
        .unwrap();
    worker
        .announce(Action::new("radd").slotgroup("tourgroup").sync(add))
        .await
        .unwrap();
    worker
        .announce(Action::new("rsquare").slots(2).run_async(|t| async move {
            let r = t.inargs["root"].as_i64().ok_or("no root")?;
            Ok::<_, String>(json!({"square": r * r}))
        }))
        .await
        .unwrap();
    worker
        .announce(Action::new("rdiv").sync(|t| {
            let a = t.inargs["dividend"].as_f64().ok_or("no dividend")?;
            let b = t.inargs["divisor"].as_f64().ok_or("no divisor")?;
            if b == 0.0 {
                return Err("Illegal division by zero at tools/perl_api_tour.pl line 72.\n");
            }
            Ok(json!({"quotient": a / b}))
        }))
        .await
        .unwrap();
    let err = worker
        .announce(Action::new("nosuchaction").sync(add))
        .await
        .unwrap_err();
    match err {
        ClientError::Announce(m) => assert!(m.contains("no action named nosuchaction."), "{m}"),
        other => panic!("{other:?}"),
    }
    let _conn = server.await.unwrap();
    assert_eq!(worker.actions(), vec!["radd", "rdiv", "rsquare"]);
}

/// The client half of the tour: call with options, job timeout, call_nb, status with and
/// without notify (job_done twice: delivered once each), find_jobs, locks, api status, ping.
#[tokio::test]
async fn e_perl_client_api_tour_client_side() {
    let s = Script::bind().await;
    let cfg = s.config("theCustomer", "wantsThings");
    let events = fixture("e_perl_client_api_tour");
    let server = tokio::spawn(async move {
        let mut c = s.accept().await;
        replay(&mut c, &events, "c3", |_| {}).await;
        c.expect_eof().await;
    });
    let client = Client::connect(cfg).await.unwrap();
    let r = client.call("callradd", json!({"input": 1})).await.unwrap();
    assert_eq!((r.job_id, r.outargs), (Some(3033), json!({"output": 4})));
    let r = client
        .call("callrsquare", json!({"root": 3}))
        .await
        .unwrap();
    assert_eq!(r.outargs, json!({"square": 9}));
    let r = client
        .call("callrdiv", json!({"dividend": 9}))
        .await
        .unwrap();
    assert_eq!(r.outargs, json!({"quotient": 4.5}));
    let r = client
        .call("callrdiv", json!({"divisor": 0, "dividend": 9}))
        .await
        .unwrap();
    assert!(r.is_error());
    assert_eq!(
        r.error(),
        Some(&json!(
            "Illegal division by zero at tools/perl_api_tour.pl line 72.\n"
        ))
    );
    let r = client
        .job("callradd")
        .inargs(json!({"input": 2}))
        .timeout(Duration::from_secs(30))
        .clenv(json!({"x": 1}))
        .vtag("nosuchtag")
        .call()
        .await
        .unwrap();
    assert_eq!(r.outargs, json!({"output": 5}));
    let r = client
        .job("sleeptest")
        .inargs(json!({"in": "x"}))
        .timeout(Duration::from_secs(1))
        .call()
        .await
        .unwrap();
    assert_eq!(
        (r.job_id, r.outargs),
        (Some(3038), json!({"error": "timeout"}))
    );
    let handle = client
        .job("sleeptest")
        .inargs(json!({"in": "y"}))
        .submit()
        .await
        .unwrap();
    assert_eq!(handle.job_id(), Some(3039));
    assert_eq!(
        client.get_job_status(3039).await.unwrap(),
        JobStatus::Running
    );
    let (st, completion) = client.get_job_status_notify(3039).await.unwrap();
    assert_eq!(st, JobStatus::Running);
    let completion = completion.expect("a completion for a running job");
    let done = handle.await.unwrap();
    assert_eq!(done.outargs, json!({"out": "got timeout"}));
    assert_eq!(completion.await.unwrap(), json!({"out": "got timeout"}));
    assert_eq!(
        client.get_job_status(3039).await.unwrap(),
        JobStatus::Finished(json!({"out": "got timeout"}))
    );
    assert_eq!(
        client.get_job_status(999999).await.unwrap(),
        JobStatus::Unknown
    );
    let ids = client.find_jobs(json!({"input": 1})).await.unwrap();
    assert_eq!(ids.len(), 12);
    assert!(ids.contains(&3033) && ids.contains(&15));
    let ids = client.find_jobs(r#"{"in":"y"}"#).await.unwrap();
    assert_eq!(ids, vec![3039, 3032]);
    assert_eq!(
        client
            .check_if_lock_exists("slot", "sleutel")
            .await
            .unwrap(),
        Some(false)
    );
    match client.get_api_status("stats").await.unwrap_err() {
        ClientError::Rpc { code, message } => {
            assert_eq!(code, -32001);
            assert!(message.starts_with("Method threw error: permission denied"));
        }
        other => panic!("{other:?}"),
    }
    assert!(client.ping().await);
    assert_eq!(client.waiting_jobs(), 0);
    client.close();
    server.await.unwrap();
}
