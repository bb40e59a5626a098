//! The engine over the durable `SqliteStore`: what was answered survives a restart, a task
//! whose worker belonged to the previous process is offered again at once, and the worker
//! may come back under its old name.

#[path = "runtime_support.rs"]
mod support;

use jobcenter_engine::backend::{Backend, JobStatus};
use jobcenter_engine::Engine;
use jobcenter_store::SqliteStore;
use serde_json::json;
use support::{fixture_catalog, job_request, part4_config, wait_finished};

#[tokio::test]
async fn claimed_task_is_offered_again_after_restart_and_results_survive() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("engine.db");
    let (done_job, claimed_job, old_cookie) = {
        let e = Engine::new(
            fixture_catalog(),
            SqliteStore::open(&path).expect("open"),
            part4_config(),
        )
        .start();
        let mut rx = e.subscribe();
        e.announce("w1".into(), "c_add".into(), "jc_admin".into(), None)
            .await
            .expect("announce");
        let done_job = e
            .create_job(job_request("k01", json!({"input": 1})))
            .await
            .expect("created");
        let claim = e
            .get_task("w1".into(), "c_add".into(), Some(done_job))
            .await
            .expect("get_task")
            .expect("claimed");
        e.task_done(claim.cookie, json!({"counter": 2}))
            .await
            .expect("task_done");
        assert_eq!(
            wait_finished(&e, &mut rx, done_job).await,
            Ok(json!({"output": 2}))
        );
        let claimed_job = e
            .create_job(job_request("k01", json!({"input": 5})))
            .await
            .expect("created");
        let claim = e
            .get_task("w1".into(), "c_add".into(), Some(claimed_job))
            .await
            .expect("get_task")
            .expect("claimed");
        // Every answer above was synced before it was given: dropping the engine here is
        // a crash (no shutdown, no final sync).
        (done_job, claimed_job, claim.cookie)
    };
    let e = Engine::new(
        fixture_catalog(),
        SqliteStore::open(&path).expect("reopen"),
        part4_config(),
    )
    .start();
    let mut rx = e.subscribe();
    assert_eq!(
        e.get_job_status(done_job).await,
        Ok(JobStatus::Finished(json!({"output": 2}))),
        "a reported result survives the restart unchanged"
    );
    assert_eq!(e.get_job_status(claimed_job).await, Ok(JobStatus::Running));
    // The worker of the previous process is gone: the same name may announce again ...
    e.announce("w1".into(), "c_add".into(), "jc_admin".into(), None)
        .await
        .expect("the old worker name is accepted again");
    // ... its old cookie no longer counts ...
    e.task_done(old_cookie, json!({"counter": 99}))
        .await
        .expect("task_done");
    // ... and the task is ready for a worker again.
    let claim = e
        .get_task("w1".into(), "c_add".into(), Some(claimed_job))
        .await
        .expect("get_task")
        .expect("the held task is offered again");
    e.task_done(claim.cookie, json!({"counter": 6}))
        .await
        .expect("task_done");
    assert_eq!(
        wait_finished(&e, &mut rx, claimed_job).await,
        Ok(json!({"output": 6}))
    );
    let next = e
        .create_job(job_request("k02", json!({"o": {}})))
        .await
        .expect("created");
    assert!(next > claimed_job, "ids continue after a restart");
}

/// A job whose input nests as deep as the wire parser allows is accepted, stored, and read
/// back after a restart (the store reads with no lower nesting limit than it writes).
#[tokio::test]
async fn deeply_nested_input_is_read_back_after_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("deep.db");
    let mut deep = json!(1);
    for _ in 0..124 {
        deep = json!([deep]);
    }
    let job = {
        let e = Engine::new(
            fixture_catalog(),
            SqliteStore::open(&path).expect("open"),
            part4_config(),
        )
        .start();
        e.create_job(job_request(
            "k01",
            json!({"input": 5, "deep": deep.clone()}),
        ))
        .await
        .expect("created")
    };
    let e = Engine::new(
        fixture_catalog(),
        SqliteStore::open(&path).expect("reopen"),
        part4_config(),
    )
    .start();
    assert_eq!(e.get_job_status(job).await, Ok(JobStatus::Running));
    assert_eq!(
        e.find_jobs(json!({"deep": deep})).await,
        Ok(vec![job]),
        "the nested input is readable"
    );
}
