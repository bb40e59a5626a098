//! The HTTP listener's `/metrics` (Prometheus text) and the `get_api_status stats` counts,
//! against the real engine on a durable SQLite store, over loopback TCP.

mod common;

use common::http::{get, rig, Rig};
use common::{login, mini_backend, RawClient};
use serde_json::{json, Value};
use std::sync::Arc;

const SOURCES: &[(&str, &str)] = &[
    (
        "add.ac",
        "action add:\nin:\n    counter number\n    step number 1\nout:\n    counter number\n",
    ),
    (
        "calladd.wf",
        "workflow calladd:\nin:\n    input number\nout:\n    output number\nwfomap:\n    output = v.thing\ndo:\n    call add:\n        counter = a.input\n    into:\n        thing = o.counter\n",
    ),
    (
        "raiser.wf",
        "workflow raiser:\nin:\n    x number\nout:\n    y number optional\ndo:\n    raise_error \"let's raise an error\"\n",
    ),
];

/// The engine over a SQLite file with [`SOURCES`].
async fn engine_rig() -> Rig {
    common::http::engine_rig(SOURCES).await
}

/// The value of the sample line `name` (with its labels) in a scrape.
fn sample(body: &str, name: &str) -> Option<f64> {
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.split(' ').next()?.parse().ok())
}

async fn create(c: &mut RawClient, wf: &str, inargs: Value) -> Value {
    let r = c
        .result(
            "create_job",
            json!({"wfname": wf, "inargs": inargs, "timeout": 300}),
        )
        .await;
    assert!(r[0].is_i64(), "create_job {wf}: {r}");
    r[0].clone()
}

async fn serve_add(w: &mut RawClient) {
    let t = w.take_task().await;
    let sum = t[2]["counter"].as_f64().unwrap_or(0.0) + 1.0;
    w.notify(
        "task_done",
        json!({"cookie": t[1], "outargs": {"counter": sum}}),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_need_the_admin_login() {
    let r = engine_rig().await;
    let (status, head, _) = get(r.http, "/metrics", None).await;
    assert_eq!(status, 401);
    assert!(head.contains("www-authenticate: basic"), "{head}");
    let (status, _, _) = get(r.http, "/metrics", Some(("apimeister", "wrong"))).await;
    assert_eq!(status, 401);
    // A valid login that is not the admin's.
    let (status, _, _) = get(r.http, "/metrics", Some(("theCustomer", "wantsThings"))).await;
    assert_eq!(status, 401);
    let (status, head, body) = get(r.http, "/metrics", Some(("apimeister", "meister"))).await;
    assert_eq!(status, 200, "{head}");
    assert!(
        head.contains("content-type: application/openmetrics-text"),
        "{head}"
    );
    assert!(
        body.contains("# TYPE jobcenter_connections gauge"),
        "{body}"
    );
    let (status, _, _) = get(r.http, "/other", Some(("apimeister", "meister"))).await;
    assert_eq!(status, 404);
    r.handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_the_jobs_that_ran() {
    let r = engine_rig().await;
    let mut w = login(r.addr, "theEmployee").await;
    assert_eq!(w.announce("w1", "add", 1).await, json!([true, "success"]));
    let mut c = login(r.addr, "theCustomer").await;
    for i in 0..3 {
        let job = create(&mut c, "calladd", json!({"input": i})).await;
        serve_add(&mut w).await;
        assert_eq!(c.notification("job_done").await["job_id"], job);
    }
    let job = create(&mut c, "raiser", json!({"x": 1})).await;
    assert_eq!(c.notification("job_done").await["job_id"], job);
    // One task claimed and not done, one job waiting for the busy worker.
    create(&mut c, "calladd", json!({"input": 10})).await;
    let _held = w.take_task().await;
    create(&mut c, "calladd", json!({"input": 11})).await;

    let (status, _, body) = get(r.http, "/metrics", Some(("apimeister", "meister"))).await;
    assert_eq!(status, 200);
    let expect = [
        ("jobcenter_jobs_created_total{workflow=\"calladd\"}", 5.0),
        ("jobcenter_jobs_created_total{workflow=\"raiser\"}", 1.0),
        ("jobcenter_jobs_finished_total{workflow=\"calladd\"}", 3.0),
        ("jobcenter_jobs_finished_total{workflow=\"raiser\"}", 1.0),
        ("jobcenter_jobs_failed_total{workflow=\"raiser\"}", 1.0),
        (
            "jobcenter_job_latency_seconds_count{workflow=\"calladd\"}",
            3.0,
        ),
        ("jobcenter_tasks_dispatched_total{action=\"add\"}", 4.0),
        ("jobcenter_queue_depth{action=\"add\"}", 1.0),
        ("jobcenter_connections", 2.0),
        ("jobcenter_workers", 1.0),
        ("jobcenter_slots_total", 1.0),
        ("jobcenter_slots_used", 1.0),
    ];
    for (name, want) in expect {
        assert_eq!(sample(&body, name), Some(want), "{name} in\n{body}");
    }
    assert_eq!(
        sample(&body, "jobcenter_jobs_failed_total{workflow=\"calladd\"}"),
        Some(0.0),
        "{body}"
    );
    // The store thread synced at least once per finished job's task_done.
    let commits = sample(&body, "jobcenter_store_commit_seconds_count").unwrap_or(0.0);
    assert!(commits >= 4.0, "{body}");
    let batched = sample(&body, "jobcenter_store_commit_batch_sum").unwrap_or(0.0);
    assert!(batched >= commits, "{body}");

    // The same counts in get_api_status stats.
    let mut m = login(r.addr, "apimeister").await;
    let stats = m.result("get_api_status", json!({"what": "stats"})).await;
    assert_eq!(
        stats,
        json!({
            "clients": 3, "dead": 0, "workers": 1,
            "jobs": 2, "tasks": 1,
            "jobs_created": 6, "jobs_finished": 4, "jobs_failed": 1, "tasks_dispatched": 4,
        })
    );
    r.handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_no_auth_lets_a_scraper_in() {
    let dir = tempfile::tempdir().expect("tempdir");
    let r = rig(mini_backend() as Arc<_>, true, dir).await;
    let (status, _, body) = get(r.http, "/metrics", None).await;
    assert_eq!(status, 200);
    assert_eq!(sample(&body, "jobcenter_connections"), Some(0.0), "{body}");
    r.handle.shutdown().await;
}
