//! Client-side methods against the server: create_job, job_done, timeouts, get_job_status,
//! find_jobs, check_if_lock_exists (docs/PROTOCOL.md §7.4–§7.8, §9), over loopback TCP.

mod common;

use common::{TestServer, WAIT};
use serde_json::{json, Value};
use std::time::Duration;

fn threw(e: &Value, reason: &str) {
    assert_eq!(e["code"], json!(-32001), "{e}");
    assert_eq!(e["message"], json!(format!("Method threw error: {reason}")));
}

#[tokio::test]
async fn c04_c34_c36_create_job_unknown_workflow_and_missing_wfname() {
    let s = TestServer::start().await;
    let mut c = s.login("theCustomer").await;
    let r = c
        .result(
            "create_job",
            json!({"wfname":"nosuchworkflow","inargs":{},"vtag":null,"timeout":300}),
        )
        .await;
    assert_eq!(r, json!([null, "ERROR:  no workflow named nosuchworkflow"]));
    threw(
        &c.error("create_job", json!({"inargs":{"counter":1}})).await,
        "no workflowname?",
    );
    s.handle.shutdown().await;
}

#[tokio::test]
async fn c05_c35_c36_create_job_bad_inargs() {
    let s = TestServer::start().await;
    let mut c = s.login("theCustomer").await;
    let r = c
        .result(
            "create_job",
            json!({"wfname":"calladd","inargs":{"counter":"x"}}),
        )
        .await;
    assert_eq!(
        r,
        json!([
            null,
            "ERROR:  input argument \"counter\" has wrong type string (should be number)"
        ])
    );
    let r = c
        .result("create_job", json!({"wfname":"calladd","inargs":{}}))
        .await;
    assert_eq!(
        r,
        json!([
            null,
            "ERROR:  required input argument \"counter\" not found"
        ])
    );
    for inargs in [json!([1]), json!("{}"), Value::Null] {
        threw(
            &c.error("create_job", json!({"wfname":"calladd","inargs":inargs}))
                .await,
            "inargs should be a hashref",
        );
    }
    threw(
        &c.error("create_job", json!({"wfname":"calladd"})).await,
        "inargs should be a hashref",
    );
    s.handle.shutdown().await;
}

#[tokio::test]
async fn c33_c37_c38_job_done_once_after_the_result() {
    let s = TestServer::start().await;
    let mut w = s.login("theEmployee").await;
    assert_eq!(w.announce("w1", "add", 1).await, json!([true, "success"]));
    let mut c = s.login("theCustomer").await;
    let r = c
        .request(
            "create_job",
            json!({"wfname":"calladd","inargs":{"counter":41},"vtag":null,"timeout":300,"clenv":{"k":"v"}}),
        )
        .await;
    let job = r["result"][0].as_i64().expect("integer job id");
    assert_eq!(r["result"][1], Value::Null);
    assert_eq!(
        s.backend.job(job).and_then(|j| j.env),
        json!({"clenv":{"k":"v"}}).as_object().cloned()
    );
    let task = w.take_task().await;
    assert_eq!(task[0], json!(job));
    w.notify(
        "task_done",
        json!({"cookie": task[1], "outargs": {"counter": 42}}),
    )
    .await;
    let done = c.notification("job_done").await;
    assert_eq!(done, json!({"job_id": job, "outargs": {"counter": 42}}));
    c.silent_for(Duration::from_millis(200)).await;
    s.handle.shutdown().await;
}

#[tokio::test]
async fn job_done_takes_the_result_from_the_event_without_reading_it_back() {
    let s = TestServer::start().await;
    let mut w = s.login("theEmployee").await;
    assert_eq!(w.announce("w1", "add", 1).await, json!([true, "success"]));
    let mut c = s.login("theCustomer").await;
    for i in 0..5 {
        let job = c
            .result(
                "create_job",
                json!({"wfname":"calladd","inargs":{"counter":i}}),
            )
            .await[0]
            .clone();
        let task = w.take_task().await;
        assert_eq!(task[0], job);
        w.notify(
            "task_done",
            json!({"cookie": task[1], "outargs": {"counter": i + 1}}),
        )
        .await;
        let done = c.notification("job_done").await;
        assert_eq!(done, json!({"job_id": job, "outargs": {"counter": i + 1}}));
    }
    // Neither after create_job nor after job:finished.
    assert_eq!(s.backend.status_reads(), 0);
    s.handle.shutdown().await;
}

#[tokio::test]
async fn job_done_reads_a_result_the_event_left_out() {
    let s = TestServer::start().await;
    let mut c = s.login("theCustomer").await;
    let job = c
        .result("create_job", json!({"wfname":"forever","inargs":{}}))
        .await[0]
        .as_i64()
        .expect("id");
    s.backend.finish_unread(job, json!({"big": "x"}));
    let done = c.notification("job_done").await;
    assert_eq!(done, json!({"job_id": job, "outargs": {"big": "x"}}));
    assert_eq!(s.backend.status_reads(), 1);
    s.handle.shutdown().await;
}

#[tokio::test]
async fn c37_instant_job_done_comes_after_the_result() {
    let s = TestServer::start().await;
    let mut c = s.login("theCustomer").await;
    for _ in 0..20 {
        c.send(&json!({"jsonrpc":"2.0","id":"cj","method":"create_job","params":{"wfname":"instant","inargs":{}}}))
            .await;
        let first = c.next().await.expect("frame");
        assert_eq!(first["id"], json!("cj"), "result first: {first}");
        let job = first["result"][0].clone();
        let done = c.notification("job_done").await;
        assert_eq!(done, json!({"job_id": job, "outargs": {"done": true}}));
    }
    s.handle.shutdown().await;
}

#[tokio::test]
async fn c39_c40_create_job_timeout() {
    let s = TestServer::start().await;
    let mut c = s.login("theCustomer").await;
    let job = c
        .result(
            "create_job",
            json!({"wfname":"forever","inargs":{},"timeout":0.3}),
        )
        .await[0]
        .clone();
    let forever = c
        .result(
            "create_job",
            json!({"wfname":"forever","inargs":{},"timeout":0}),
        )
        .await[0]
        .clone();
    let started = std::time::Instant::now();
    let done = c.notification("job_done").await;
    assert_eq!(
        done,
        json!({"job_id": job, "outargs": {"error": "timeout"}})
    );
    assert!(started.elapsed() < Duration::from_secs(2));
    // the job keeps running; its completion is not reported on this connection
    let id = job.as_i64().expect("id");
    s.backend.finish(id, json!({"late": true}));
    c.silent_for(Duration::from_millis(300)).await;
    let st = c.result("get_job_status", json!({"job_id": job})).await;
    assert_eq!(st, json!([job, {"late": true}]));
    // the job without timeout is still awaited and reported when it finishes
    s.backend
        .finish(forever.as_i64().expect("id"), json!({"x": 1}));
    let done = c.notification("job_done").await;
    assert_eq!(done, json!({"job_id": forever, "outargs": {"x": 1}}));
    s.handle.shutdown().await;
}

#[tokio::test]
async fn c06_c42_c43_get_job_status() {
    let s = TestServer::start().await;
    let mut c = s.login("theCustomer").await;
    assert_eq!(
        c.result("get_job_status", json!({"job_id": 999999, "notify": false}))
            .await,
        json!([null, {"error": "no job 999999"}])
    );
    threw(
        &c.error("get_job_status", json!({"job_id": "abc"})).await,
        "invalid abc",
    );
    threw(&c.error("get_job_status", json!({})).await, "no job_id?");
    threw(
        &c.error("get_job_status", json!({"job_id": -1})).await,
        "invalid -1",
    );
    let r = c
        .result("get_job_status", json!({"job_id": "99999999999999999999"}))
        .await;
    assert_eq!(r[0], Value::Null);
    assert!(r[1].as_str().unwrap_or_default().starts_with("ERROR:  "));
    let job = c
        .result("create_job", json!({"wfname":"forever","inargs":{}}))
        .await[0]
        .clone();
    assert_eq!(
        c.result("get_job_status", json!({"job_id": job})).await,
        json!([null, null])
    );
    s.backend
        .finish(job.as_i64().expect("id"), json!({"output": 15}));
    c.notification("job_done").await;
    let as_string = json!(job.to_string());
    for id in [job.clone(), as_string] {
        assert_eq!(
            c.result("get_job_status", json!({"job_id": id})).await,
            json!([job, {"output": 15}])
        );
    }
    s.handle.shutdown().await;
}

#[tokio::test]
async fn c44_c45_get_job_status_with_notify() {
    let s = TestServer::start().await;
    let mut c = s.login("theCustomer").await;
    let mut other = s.login("theCustomer").await;
    let job = c
        .result("create_job", json!({"wfname":"forever","inargs":{}}))
        .await[0]
        .clone();
    let id = job.as_i64().expect("id");
    // notify from another connection, with the id as a string: echoed as sent
    let r = other
        .result(
            "get_job_status",
            json!({"job_id": id.to_string(), "notify": true}),
        )
        .await;
    assert_eq!(r, json!([null, null]));
    // the creator asks too: it will get job_done twice
    let r = c
        .result("get_job_status", json!({"job_id": job, "notify": true}))
        .await;
    assert_eq!(r, json!([null, null]));
    s.backend.finish(id, json!({"r": 1}));
    assert_eq!(
        other.notification("job_done").await,
        json!({"job_id": id.to_string(), "outargs": {"r": 1}})
    );
    assert_eq!(
        c.notification("job_done").await,
        json!({"job_id": job, "outargs": {"r": 1}})
    );
    assert_eq!(
        c.notification("job_done").await,
        json!({"job_id": job, "outargs": {"r": 1}})
    );
    // notify on a finished job: the result carries outargs, no job_done follows
    let r = other
        .result("get_job_status", json!({"job_id": job, "notify": true}))
        .await;
    assert_eq!(r, json!([job, {"r": 1}]));
    other.silent_for(Duration::from_millis(300)).await;
    s.handle.shutdown().await;
}

#[tokio::test]
async fn c49_creator_vanishes_while_its_job_runs() {
    let s = TestServer::start().await;
    let mut c = s.login("theCustomer").await;
    let job = c
        .result(
            "create_job",
            json!({"wfname":"forever","inargs":{},"timeout":0.5}),
        )
        .await[0]
        .as_i64()
        .expect("id");
    drop(c);
    // wait until the server noticed the close
    let deadline = tokio::time::Instant::now() + WAIT;
    while s.handle.connection_count() > 0 {
        assert!(tokio::time::Instant::now() < deadline, "close not noticed");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    s.backend.finish(job, json!({"fine": true}));
    // the timeout would fire now too; nothing breaks
    tokio::time::sleep(Duration::from_millis(600)).await;
    let mut c2 = s.login("theCustomer").await;
    assert_eq!(
        c2.result("get_job_status", json!({"job_id": job})).await,
        json!([job, {"fine": true}])
    );
    s.handle.shutdown().await;
}

#[tokio::test]
async fn c07_c46_find_jobs() {
    let s = TestServer::start().await;
    let mut c = s.login("theCustomer").await;
    let a = c
        .result(
            "create_job",
            json!({"wfname":"calladd","inargs":{"counter":12}}),
        )
        .await[0]
        .clone();
    c.result(
        "create_job",
        json!({"wfname":"calladd","inargs":{"counter":13}}),
    )
    .await;
    assert_eq!(
        c.result("find_jobs", json!({"filter": "{\"counter\":12}"}))
            .await,
        json!([a])
    );
    // lenient extension: an object filter
    assert_eq!(
        c.result("find_jobs", json!({"filter": {"counter": 12}}))
            .await,
        json!([a])
    );
    assert_eq!(
        c.result("find_jobs", json!({"filter": "{\"counter\":-777}"}))
            .await,
        json!([])
    );
    let r = c.result("find_jobs", json!({"filter": "{}"})).await;
    assert_eq!(
        r,
        json!([null, "ERROR:  using an empty filter is not allowed"])
    );
    let r = c.result("find_jobs", json!({"filter": "not json"})).await;
    assert_eq!(r[0], Value::Null);
    assert!(r[1]
        .as_str()
        .unwrap_or_default()
        .starts_with("ERROR:  invalid input syntax for type json"));
    threw(&c.error("find_jobs", json!({})).await, "no job_id?");
    s.handle.shutdown().await;
}

#[tokio::test]
async fn c08_c47_check_if_lock_exists() {
    let s = TestServer::start().await;
    let mut c = s.login("theCustomer").await;
    let q = |v: &str| json!({"locktype":"slot","lockvalue":v});
    assert_eq!(
        c.result("check_if_lock_exists", q("sleutel")).await,
        json!(true)
    );
    assert_eq!(
        c.result("check_if_lock_exists", q("other")).await,
        json!(false)
    );
    assert_eq!(
        c.result(
            "check_if_lock_exists",
            json!({"locktype":"nosuch","lockvalue":"x"})
        )
        .await,
        Value::Null
    );
    threw(
        &c.error("check_if_lock_exists", json!({"locktype":"slot"}))
            .await,
        "no lockvalue?",
    );
    threw(
        &c.error("check_if_lock_exists", q("0")).await,
        "no lockvalue?",
    );
    threw(
        &c.error("check_if_lock_exists", json!({"lockvalue":"x"}))
            .await,
        "no locktype?",
    );
    s.handle.shutdown().await;
}
