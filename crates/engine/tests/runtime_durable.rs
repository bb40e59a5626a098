//! The engine over the durable `JournalStore`: a claimed task survives an engine restart and
//! its worker's result (old cookie) completes the job afterwards.

#[path = "runtime_support.rs"]
mod support;

use jobcenter_engine::backend::{Backend, CreateJob, JobStatus};
use jobcenter_engine::Engine;
use jobcenter_store::JournalStore;
use serde_json::json;
use support::{fixture_catalog, part4_config, wait_finished};

#[tokio::test]
async fn claimed_task_survives_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("engine.journal");
    let (job, cookie) = {
        let store = JournalStore::open(&path).expect("open");
        let e = Engine::new(fixture_catalog(), store, part4_config()).start();
        e.announce("w1".into(), "c_add".into(), "jc_admin".into(), None)
            .await
            .expect("announce");
        let job = e
            .create_job(CreateJob {
                wfname: "k01".into(),
                inargs: support::obj(json!({"input": 5})),
                vtag: None,
                who: "jc_admin".into(),
                env: None,
            })
            .await
            .expect("created");
        let claim = e
            .get_task("w1".into(), "c_add".into(), Some(job))
            .await
            .expect("get_task")
            .expect("claimed");
        e.store().sync().expect("sync");
        (job, claim.cookie)
    };
    let store = JournalStore::open(&path).expect("reopen");
    let e = Engine::new(fixture_catalog(), store, part4_config()).start();
    assert_eq!(e.get_job_status(job).await, Ok(JobStatus::Running));
    assert!(
        e.ping(1).await == Ok(true),
        "the worker row survived the restart"
    );
    let mut rx = e.subscribe();
    e.task_done(cookie, json!({"counter": 6}))
        .await
        .expect("task_done");
    assert_eq!(
        wait_finished(&e, &mut rx, job).await,
        Ok(json!({"output": 6}))
    );
    let next = e
        .create_job(CreateJob {
            wfname: "k02".into(),
            inargs: support::obj(json!({"o": {}})),
            vtag: None,
            who: "jc_admin".into(),
            env: None,
        })
        .await
        .expect("created");
    assert!(next > job, "ids continue after a restart");
}
