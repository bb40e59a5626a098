//! The blocking facade, used from plain threads against a scripted server.

mod support;

use std::time::Duration;

use jobcenter::blocking::{Client, JobOptions, Worker};
use jobcenter::{Action, JobStatus};
use serde_json::json;
use support::Script;

/// Run a scripted server on its own thread and runtime; returns its port and join handle.
fn serve<F, Fut>(script: F) -> (u16, std::thread::JoinHandle<()>)
where
    F: FnOnce(Script) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()>,
{
    let (tx, rx) = std::sync::mpsc::channel();
    let h = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let s = Script::bind().await;
            tx.send(s.port).unwrap();
            script(s).await;
        });
    });
    (rx.recv().unwrap(), h)
}

#[test]
fn blocking_client_call_submit_status() {
    let (port, server) = serve(|s| async move {
        let (mut c, _) = s.accept_authed().await;
        let (id, _) = c.expect_call("create_job").await;
        c.reply(&id, json!([6, null])).await;
        c.notify("job_done", json!({"job_id": 6, "outargs": {"output": 15}}))
            .await;
        let (id, p) = c.expect_call("create_job").await;
        assert_eq!(p["timeout"], 10);
        c.reply(&id, json!([7, null])).await;
        let (id, p) = c.expect_call("get_job_status").await;
        assert_eq!(p, json!({"job_id": 7, "notify": true}));
        c.reply(&id, json!([null, null])).await;
        c.notify("job_done", json!({"job_id": 7, "outargs": {"n": 7}}))
            .await;
        c.expect_eof().await;
    });
    let client =
        Client::connect(jobcenter::ClientConfig::new("theCustomer", "wantsThings").port(port))
            .unwrap();
    let r = client.call("calladd", json!({"input": 12})).unwrap();
    assert_eq!((r.job_id, r.outargs), (Some(6), json!({"output": 15})));
    let mut opts = JobOptions::new("w", json!({}));
    opts.timeout = Some(Duration::from_secs(10));
    let h = client.submit(opts).unwrap();
    assert_eq!(h.job_id(), Some(7));
    let (st, comp) = client.get_job_status_notify(7).unwrap();
    assert_eq!(st, JobStatus::Running);
    assert_eq!(comp.unwrap().wait().unwrap(), json!({"n": 7}));
    assert_eq!(h.outcome().unwrap().outargs, json!({"n": 7}));
    client.close();
    server.join().unwrap();
}

#[test]
fn blocking_worker_serves_and_stops_from_a_handler() {
    let (port, server) = serve(|s| async move {
        let (mut c, _) = s.accept_authed().await;
        let (id, _) = c.expect_call("announce").await;
        c.reply(&id, json!([true, "success"])).await;
        c.notify("task_ready", json!({"actionname": "add", "job_id": 1}))
            .await;
        let (id, _) = c.expect_call("get_task").await;
        c.reply(&id, json!([1, "ck", {"counter": 40, "step": 2}, {}]))
            .await;
        let done = c.expect_notification("task_done").await;
        assert_eq!(done["outargs"], json!({"counter": 42}));
    });
    let worker = Worker::connect(
        jobcenter::ClientConfig::new("theEmployee", "doesThings")
            .port(port)
            .ping_timeout(Duration::ZERO),
    )
    .unwrap();
    let stop = worker.stop_handle();
    worker
        .announce(Action::new("add").sync(move |t| {
            let c = t.inargs["counter"].as_i64().ok_or("no counter")?;
            let s = t.inargs["step"].as_i64().ok_or("no step")?;
            stop.stop(5);
            Ok::<_, &str>(json!({"counter": c + s}))
        }))
        .unwrap();
    // The handler stops work() (a stop before work() starts is kept).
    assert_eq!(worker.work(), jobcenter::WorkOutcome::StopRequested(5));
    server.join().unwrap();
}

#[tokio::test]
async fn blocking_client_refuses_to_run_inside_a_runtime() {
    let r = Client::connect(jobcenter::ClientConfig::new("a", "b").port(1));
    assert!(
        matches!(r, Err(jobcenter::ClientError::Invalid(_))),
        "{r:?}"
    );
}
