//! The blocking facade of the client library (`jobcenter::blocking`) against the real
//! server and engine: a plain-threads program creates jobs and a blocking worker serves
//! them (docs/JCL.md Part 4 `k01` → `c_add`).

use std::time::Duration;

use jobcenter::blocking::{Client, JobOptions, Worker};
use jobcenter::{Action, JobStatus, Task};
use jobcenter_conformance::{
    c_add, fast_timers, part4_fixtures, TestServer, EMPLOYEE, EMPLOYEE_TOKEN, JC_ADMIN,
    JC_ADMIN_TOKEN,
};
use serde_json::json;

#[test]
fn blocking_client_and_worker_over_the_real_server() {
    let rt = tokio::runtime::Runtime::new().unwrap_or_else(|e| panic!("runtime: {e}"));
    let server = rt
        .block_on(TestServer::start_on(
            super::STORE,
            part4_fixtures(),
            fast_timers(),
        ))
        .unwrap_or_else(|e| panic!("server: {e}"));
    let wcfg = server.config(EMPLOYEE, EMPLOYEE_TOKEN);
    let ccfg = server.config(JC_ADMIN, JC_ADMIN_TOKEN);
    // Neither facade may run on a runtime thread: plain threads, as in a sync program.
    let worker_thread = std::thread::spawn(move || {
        let w = Worker::connect(wcfg).unwrap_or_else(|e| panic!("worker: {e}"));
        w.announce(
            Action::new("c_add")
                .slots(2)
                .sync(|t: Task| Ok::<_, String>(c_add(&t.inargs))),
        )
        .unwrap_or_else(|e| panic!("announce: {e}"));
        let stop = w.stop_handle();
        (w, stop)
    });
    let (w, stop) = worker_thread
        .join()
        .unwrap_or_else(|_| panic!("worker thread"));
    let work = std::thread::spawn(move || w.work());
    let client_thread = std::thread::spawn(move || {
        let c = Client::connect(ccfg).unwrap_or_else(|e| panic!("client: {e}"));
        let res = c
            .call("k01", json!({"input": 5}))
            .unwrap_or_else(|e| panic!("call: {e}"));
        assert_eq!(res.outargs, json!({"output": 6}));
        let id = res.job_id.unwrap_or_else(|| panic!("job id"));
        assert_eq!(
            c.get_job_status(id).ok(),
            Some(JobStatus::Finished(json!({"output": 6})))
        );
        let h = c
            .submit(JobOptions::new("k01", json!({"input": 10})))
            .unwrap_or_else(|e| panic!("submit: {e}"));
        assert!(h.job_id().is_some());
        let res = h.outcome().unwrap_or_else(|e| panic!("outcome: {e}"));
        assert_eq!(res.outargs, json!({"output": 11}));
        let rejected = c
            .call("nonexistent", json!({}))
            .unwrap_or_else(|e| panic!("call: {e}"));
        assert_eq!(rejected.job_id, None);
        assert!(c.ping());
    });
    client_thread
        .join()
        .unwrap_or_else(|_| panic!("client thread failed"));
    stop.stop(3);
    assert_eq!(
        work.join().ok(),
        Some(jobcenter::WorkOutcome::StopRequested(3))
    );
    rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(5), async {
            let mut s = server;
            s.shutdown().await;
        })
        .await
        .unwrap_or_else(|_| panic!("server shutdown"));
    });
}
