//! Runtime tests of docs/PROTOCOL.md §10 backend semantics through the `Backend` trait: job
//! status, find_jobs containment, announce/withdraw/ping messages, filters and candidates,
//! claims and cookies, soft-error retries, action timeouts, disconnects, archival and
//! housekeeping. Workers are driven by hand from the test.

#[path = "runtime_support.rs"]
mod support;

use std::sync::Arc;
use std::time::Duration;

use jobcenter_engine::backend::{Backend, CreateJob, Event, JobId, JobStatus, PollRow};
use jobcenter_engine::{Engine, EngineConfig};
use serde_json::{json, Value};
use support::{create, fixture_catalog, part4_config, wait_finished};
use tokio::sync::mpsc::UnboundedReceiver;

/// Extra definitions: actions with the configs under test and a workflow calling each.
const ACTIONS: &[(&str, &str)] = &[
    ("t_plain", ""),
    (
        "t_soft3",
        "config:\n    retry = '{\"tries\": 3, \"interval\": \"10 milliseconds\"}'\n",
    ),
    (
        "t_soft2",
        "config:\n    retry = '{\"tries\": 2, \"interval\": \"10 milliseconds\"}'\n",
    ),
    (
        "t_badretry",
        "config:\n    retry = '{\"tries\": 3, \"interval\": \"soonish\"}'\n",
    ),
    ("t_retryable", "config:\n    retryable = true\n"),
    ("t_timeout", "config:\n    timeout = '100 milliseconds'\n"),
    ("t_filter", "config:\n    filter = '[\"domain\"]'\n"),
    (
        "t_filteropt",
        "config:\n    filter = '[\"domain\", \"_*_\"]'\n",
    ),
];

fn engine_with(config: EngineConfig) -> Arc<Engine> {
    let mut cat = fixture_catalog();
    for (name, config) in ACTIONS {
        let src = format!(
            "action {name}:\nin:\n    x number\n    domain string 'any'\nout:\n    y number optional\n{config}"
        );
        cat.compile(&format!("{name}.ac"), &src)
            .expect("action compiles");
        let wf = format!(
            "workflow w_{name}:\nin:\n    x number\n    domain string 'any'\nout:\n    y number optional\nwfomap:\n    y = ifdef(v.y)\ndo:\n    call {name}:\n        x = a.x\n        domain = a.domain\n    into:\n        y = o.y\n"
        );
        cat.compile(&format!("w_{name}.wf"), &wf)
            .expect("workflow compiles");
    }
    let callchild = "workflow w_callchild:\nin:\n    x number\nout:\n    y number optional\nwfomap:\n    y = ifdef(v.y)\ndo:\n    call k45child:\n        x = a.x\n    into:\n        y = o.y\n";
    cat.compile("w_callchild.wf", callchild)
        .expect("workflow compiles");
    Engine::new(cat, jobcenter_store::MemoryStore::new(), config).start()
}

fn engine() -> Arc<Engine> {
    engine_with(part4_config())
}

/// The next `ActionReady` for `job` (other events are skipped), within 5 s.
async fn ready_for(rx: &mut UnboundedReceiver<Event>, job: JobId) -> (String, Option<Vec<i64>>) {
    let wait = async {
        while let Some(ev) = rx.recv().await {
            if let Event::ActionReady {
                action,
                job_id,
                workers,
            } = ev
            {
                if job_id == job {
                    return Some((action, workers));
                }
            }
        }
        None
    };
    tokio::time::timeout(Duration::from_secs(5), wait)
        .await
        .ok()
        .flatten()
        .expect("ActionReady for the job")
}

async fn announce(
    e: &Arc<Engine>,
    worker: &str,
    action: &str,
    filter: Option<Value>,
) -> Result<i64, String> {
    e.announce(worker.into(), action.into(), "jc_admin".into(), filter)
        .await
        .map_err(|e| e.message)
}

#[tokio::test]
async fn c42_job_status_running_finished_unknown() {
    let e = engine();
    announce(&e, "w1", "t_plain", None).await.expect("announce");
    let mut rx = e.subscribe();
    let id = create(&e, "w_t_plain", json!({"x": 1})).await;
    ready_for(&mut rx, id).await;
    assert_eq!(e.get_job_status(id).await, Ok(JobStatus::Running));
    assert_eq!(e.get_job_status(id + 1000).await, Ok(JobStatus::Unknown));
    let claim = e
        .get_task("w1".into(), "t_plain".into(), Some(id))
        .await
        .expect("get_task")
        .expect("claimed");
    e.task_done(claim.cookie, json!({"y": 7}))
        .await
        .expect("task_done");
    assert_eq!(wait_finished(&e, &mut rx, id).await, Ok(json!({"y": 7})));
}

#[tokio::test]
async fn c46_find_jobs_containment_and_empty_filter() {
    let e = engine();
    let a = create(&e, "w_t_plain", json!({"x": 1, "domain": "a.example"})).await;
    let b = create(&e, "w_t_plain", json!({"x": 2, "domain": "b.example"})).await;
    let c = create(&e, "k02", json!({"o": {"z": [1, 2], "k": "v"}})).await;
    assert_eq!(
        e.find_jobs(json!({"domain": "a.example"})).await,
        Ok(vec![a])
    );
    assert_eq!(e.find_jobs(json!({"x": 2.0})).await, Ok(vec![b]));
    // Defaults count: `domain` defaulted to "any" is not there for these jobs.
    assert_eq!(e.find_jobs(json!({"domain": "any"})).await, Ok(vec![]));
    // k02 filled in its defaults n = 10; nested containment.
    assert_eq!(
        e.find_jobs(json!({"n": 10, "o": {"z": [2]}})).await,
        Ok(vec![c])
    );
    assert_eq!(e.find_jobs(json!({"o": {"z": [3]}})).await, Ok(vec![]));
    assert_eq!(
        e.find_jobs(json!({})).await.map_err(|e| e.message),
        Err("using an empty filter is not allowed".to_string())
    );
}

#[tokio::test]
async fn c47_check_if_lock_exists_without_locks() {
    let e = engine();
    assert_eq!(
        e.check_if_lock_exists("nolock".into(), "x".into()).await,
        Ok(None)
    );
    assert_eq!(
        e.check_if_lock_exists("slot".into(), "x".into()).await,
        Ok(Some(false))
    );
}

#[tokio::test]
async fn c52_announce_unknown_action_and_duplicate() {
    let e = engine();
    assert_eq!(
        announce(&e, "w1", "nope", None).await,
        Err("no action named nope.".to_string())
    );
    let id = announce(&e, "w1", "t_plain", None).await.expect("announce");
    assert_eq!(
        announce(&e, "w1", "c_add", None).await,
        Ok(id),
        "same worker row"
    );
    assert_eq!(
        announce(&e, "w1", "t_plain", None).await,
        Err("worker w1 already can do action t_plain".to_string())
    );
    let other = announce(&e, "w2", "t_plain", None)
        .await
        .expect("announce w2");
    assert_ne!(other, id);
}

#[tokio::test]
async fn c53_announce_filter_rules() {
    let e = engine();
    assert_eq!(
        announce(&e, "w1", "t_plain", Some(json!({"domain": "x"}))).await,
        Err("filtering is not allowed for action t_plain".to_string())
    );
    assert_eq!(
        announce(&e, "w1", "t_filter", Some(json!(["domain"]))).await,
        Err("filter needs to be a json object [\"domain\"]".to_string())
    );
    assert_eq!(
        announce(&e, "w1", "t_filter", Some(json!({"other": 1}))).await,
        Err("filtering is not allowed for key other".to_string())
    );
    assert_eq!(
        announce(&e, "w1", "t_filter", None).await,
        Err("filtering is required for action t_filter".to_string())
    );
    assert!(announce(&e, "w1", "t_filter", Some(json!({"domain": "a"})))
        .await
        .is_ok());
    assert!(
        announce(&e, "w1", "t_filteropt", None).await.is_ok(),
        "_*_ makes it optional"
    );
}

#[tokio::test]
async fn c60_filtered_tasks_go_to_matching_workers_only() {
    let e = engine();
    let wa = announce(&e, "wa", "t_filter", Some(json!({"domain": "a"})))
        .await
        .expect("wa");
    let wb = announce(&e, "wb", "t_filter", Some(json!({"domain": "b"})))
        .await
        .expect("wb");
    let mut rx = e.subscribe();
    let ja = create(&e, "w_t_filter", json!({"x": 1, "domain": "a"})).await;
    assert_eq!(
        ready_for(&mut rx, ja).await,
        ("t_filter".to_string(), Some(vec![wa]))
    );
    // Nobody matches "c": no notification at all; the job waits for a poll.
    let jc = create(&e, "w_t_filter", json!({"x": 1, "domain": "c"})).await;
    let jb = create(&e, "w_t_filter", json!({"x": 1, "domain": "b"})).await;
    assert_eq!(
        ready_for(&mut rx, jb).await,
        ("t_filter".to_string(), Some(vec![wb]))
    );
    while let Ok(ev) = rx.try_recv() {
        assert!(!matches!(ev, Event::ActionReady { job_id, .. } if job_id == jc));
    }
    // get_task honours the worker's filter.
    assert_eq!(
        e.get_task("wb".into(), "t_filter".into(), Some(ja)).await,
        Ok(None)
    );
    let mut rows = e.poll_tasks(vec![wa, wb]).await.expect("poll");
    rows.sort_by_key(|r| r.workers.clone());
    assert_eq!(
        rows,
        vec![
            PollRow {
                action: "t_filter".into(),
                workers: Some(vec![wa]),
                count: 1
            },
            PollRow {
                action: "t_filter".into(),
                workers: Some(vec![wb]),
                count: 1
            },
        ]
    );
    let claim = e
        .get_task("wa".into(), "t_filter".into(), None)
        .await
        .expect("get_task");
    assert_eq!(claim.map(|c| c.job_id), Some(ja));
    assert_eq!(
        e.get_task("wa".into(), "t_filter".into(), None).await,
        Ok(None)
    );
}

#[tokio::test]
async fn c61_get_task_without_job_id_takes_the_lowest_ready_job() {
    let e = engine();
    let w = announce(&e, "w1", "t_plain", None).await.expect("announce");
    let j1 = create(&e, "w_t_plain", json!({"x": 1})).await;
    let j2 = create(&e, "w_t_plain", json!({"x": 2})).await;
    assert_eq!(
        e.poll_tasks(vec![w]).await,
        Ok(vec![PollRow {
            action: "t_plain".into(),
            workers: None,
            count: 2
        }])
    );
    let c1 = e
        .get_task("w1".into(), "t_plain".into(), None)
        .await
        .expect("get_task");
    assert_eq!(
        c1.map(|c| (c.job_id, c.inargs)),
        Some((j1, json!({"x": 1, "domain": "any"})))
    );
    let c2 = e
        .get_task("w1".into(), "t_plain".into(), None)
        .await
        .expect("get_task");
    assert_eq!(c2.map(|c| c.job_id), Some(j2));
    assert_eq!(e.poll_tasks(vec![w]).await, Ok(vec![]));
}

#[tokio::test]
async fn c62_c63_get_task_of_unknown_or_claimed_job_returns_none() {
    let e = engine();
    announce(&e, "w1", "t_plain", None).await.expect("announce");
    announce(&e, "w2", "t_plain", None).await.expect("announce");
    let mut rx = e.subscribe();
    let id = create(&e, "w_t_plain", json!({"x": 1})).await;
    ready_for(&mut rx, id).await;
    assert_eq!(
        e.get_task("w1".into(), "t_plain".into(), Some(id + 99))
            .await,
        Ok(None)
    );
    let first = e
        .get_task("w1".into(), "t_plain".into(), Some(id))
        .await
        .expect("get_task");
    assert!(first.is_some());
    assert_eq!(
        e.get_task("w2".into(), "t_plain".into(), Some(id)).await,
        Ok(None)
    );
    assert_eq!(
        e.get_task("w1".into(), "t_plain".into(), Some(id)).await,
        Ok(None)
    );
    assert_eq!(
        e.get_task("w3".into(), "t_plain".into(), None)
            .await
            .map_err(|e| e.message),
        Err("no workeraction for worker w3 action t_plain.".to_string())
    );
    assert_eq!(
        e.get_task("w1".into(), "c_add".into(), None)
            .await
            .map_err(|e| e.message),
        Err("no workeraction for worker w1 action c_add.".to_string())
    );
}

#[tokio::test]
async fn c64_stale_and_unknown_cookies_are_ignored() {
    let e = engine();
    announce(&e, "w1", "t_plain", None).await.expect("announce");
    let mut rx = e.subscribe();
    let id = create(&e, "w_t_plain", json!({"x": 1})).await;
    ready_for(&mut rx, id).await;
    assert_eq!(
        e.task_done("no-such-cookie".into(), json!({"y": 1})).await,
        Ok(())
    );
    let claim = e
        .get_task("w1".into(), "t_plain".into(), Some(id))
        .await
        .expect("get_task")
        .expect("claimed");
    assert_eq!(claim.env, json!({}));
    uuid_like(&claim.cookie);
    e.task_done(claim.cookie.clone(), json!({"y": 5}))
        .await
        .expect("task_done");
    assert_eq!(wait_finished(&e, &mut rx, id).await, Ok(json!({"y": 5})));
    // The same cookie again: ignored, the result stays.
    e.task_done(claim.cookie, json!({"y": 6}))
        .await
        .expect("stale task_done");
    assert_eq!(
        e.get_job_status(id).await,
        Ok(JobStatus::Finished(json!({"y": 5})))
    );
}

fn uuid_like(s: &str) {
    let parts: Vec<usize> = s.split('-').map(str::len).collect();
    assert_eq!(parts, vec![8, 4, 4, 4, 12], "cookie {s} is not a UUID");
}

/// Answer every attempt of `job` with a soft error; return the envs seen.
async fn soft_fail_all(
    e: &Arc<Engine>,
    action: &str,
    job: JobId,
    rx: &mut UnboundedReceiver<Event>,
) -> (Vec<Value>, Value) {
    let mut envs = Vec::new();
    loop {
        let wait = async {
            loop {
                match rx.recv().await {
                    Some(Event::ActionReady { job_id, .. }) if job_id == job => return true,
                    Some(Event::JobFinished { job_id, .. }) if job_id == job => return false,
                    Some(_) => continue,
                    None => return false,
                }
            }
        };
        let again = tokio::time::timeout(Duration::from_secs(5), wait)
            .await
            .expect("event");
        if !again {
            let status = e.get_job_status(job).await.expect("status");
            let JobStatus::Finished(out) = status else {
                panic!("not finished: {status:?}")
            };
            return (envs, out);
        }
        let claim = e
            .get_task("w1".into(), action.into(), Some(job))
            .await
            .expect("get_task")
            .expect("claimed");
        envs.push(claim.env);
        let n = envs.len();
        e.task_done(
            claim.cookie,
            json!({"error": {"class": "soft", "msg": format!("x{n}")}}),
        )
        .await
        .expect("task_done");
    }
}

#[tokio::test]
async fn c66_soft_error_retry_counting() {
    let e = engine();
    announce(&e, "w1", "t_soft3", None).await.expect("announce");
    announce(&e, "w1", "t_soft2", None).await.expect("announce");
    let mut rx = e.subscribe();
    let id = create(&e, "w_t_soft3", json!({"x": 1})).await;
    let (envs, out) = soft_fail_all(&e, "t_soft3", id, &mut rx).await;
    assert_eq!(
        envs,
        vec![
            json!({}),
            json!({"tries": 1}),
            json!({"tries": 2}),
            json!({"tries": 3})
        ]
    );
    assert_eq!(out, json!({"error": {"class": "soft", "msg": "x4"}}));

    let id = create(&e, "w_t_soft2", json!({"x": 1})).await;
    let (envs, out) = soft_fail_all(&e, "t_soft2", id, &mut rx).await;
    assert_eq!(
        envs,
        vec![json!({}), json!({"tries": 1}), json!({"tries": 2})]
    );
    assert_eq!(out, json!({"error": {"class": "soft", "msg": "x3"}}));
}

#[tokio::test]
async fn soft_error_with_an_invalid_retry_interval() {
    let e = engine();
    announce(&e, "w1", "t_badretry", None)
        .await
        .expect("announce");
    let mut rx = e.subscribe();
    let id = create(&e, "w_t_badretry", json!({"x": 1})).await;
    let (envs, out) = soft_fail_all(&e, "t_badretry", id, &mut rx).await;
    assert_eq!(envs.len(), 1);
    assert_eq!(
        out,
        json!({"error": {"msg": "error calculating retry timeout sqlstate 22007 sqlerrm invalid input syntax for type interval: \"soonish\"", "class": "normal", "olderror": {"error": {"class": "soft", "msg": "x1"}}}})
    );
}

#[tokio::test]
async fn action_timeout_raises_a_soft_error_and_late_results_are_ignored() {
    let e = engine();
    announce(&e, "w1", "t_timeout", None)
        .await
        .expect("announce");
    let mut rx = e.subscribe();
    let id = create(&e, "w_t_timeout", json!({"x": 1})).await;
    ready_for(&mut rx, id).await;
    let claim = e
        .get_task("w1".into(), "t_timeout".into(), Some(id))
        .await
        .expect("get_task")
        .expect("claimed");
    let out = wait_finished(&e, &mut rx, id)
        .await
        .expect("finished by the timeout");
    let msg = out["error"]["msg"].as_str().unwrap_or_default().to_string();
    assert_eq!(out["error"]["class"], json!("soft"));
    assert!(
        support::matches(
            &json!(format!("timeout for job {id} in task <T>")),
            &json!(msg)
        ),
        "{msg}"
    );
    e.task_done(claim.cookie, json!({"y": 1}))
        .await
        .expect("late task_done");
    assert_eq!(e.get_job_status(id).await, Ok(JobStatus::Finished(out)));
}

#[tokio::test]
async fn c71_disconnect_gives_retryable_actions_a_soft_error() {
    let e = engine();
    let w1 = announce(&e, "w1", "t_retryable", None)
        .await
        .expect("announce");
    let mut rx = e.subscribe();
    let id = create(&e, "w_t_retryable", json!({"x": 1})).await;
    ready_for(&mut rx, id).await;
    let claim = e
        .get_task("w1".into(), "t_retryable".into(), Some(id))
        .await
        .expect("get_task");
    assert!(claim.is_some());
    assert_eq!(e.disconnect(w1).await, Ok(true));
    assert_eq!(
        wait_finished(&e, &mut rx, id).await,
        Ok(json!({"error": {"class": "soft", "msg": "worker disconnected"}}))
    );
    assert_eq!(e.disconnect(w1).await, Ok(false), "already stopped");
}

#[tokio::test]
async fn disconnect_puts_a_non_retryable_task_back_to_ready() {
    let e = engine();
    let w1 = announce(&e, "w1", "t_plain", None).await.expect("announce");
    let mut rx = e.subscribe();
    let id = create(&e, "w_t_plain", json!({"x": 1})).await;
    ready_for(&mut rx, id).await;
    let old = e
        .get_task("w1".into(), "t_plain".into(), Some(id))
        .await
        .expect("get_task")
        .expect("claimed");
    assert_eq!(e.disconnect(w1).await, Ok(true));
    assert_eq!(e.ping(w1).await, Ok(false), "stopped worker");
    // Offered again; another worker takes it; the old cookie is dead.
    ready_for(&mut rx, id).await;
    announce(&e, "w2", "t_plain", None)
        .await
        .expect("announce w2");
    let new = e
        .get_task("w2".into(), "t_plain".into(), Some(id))
        .await
        .expect("get_task")
        .expect("claimed again");
    assert_ne!(new.cookie, old.cookie);
    assert_eq!(new.inargs, old.inargs);
    e.task_done(old.cookie, json!({"y": 1}))
        .await
        .expect("stale");
    e.task_done(new.cookie, json!({"y": 2}))
        .await
        .expect("task_done");
    assert_eq!(wait_finished(&e, &mut rx, id).await, Ok(json!({"y": 2})));
}

#[tokio::test]
async fn withdraw_ping_and_worker_rows() {
    let e = engine();
    let w = announce(&e, "w1", "t_plain", None).await.expect("announce");
    announce(&e, "w1", "c_add", None).await.expect("announce");
    assert_eq!(e.ping(w).await, Ok(true));
    assert_eq!(e.withdraw("w1".into(), "t_plain".into()).await, Ok(true));
    assert_eq!(e.withdraw("w1".into(), "t_plain".into()).await, Ok(false));
    assert_eq!(e.ping(w).await, Ok(true), "still has c_add");
    assert_eq!(e.withdraw("w1".into(), "c_add".into()).await, Ok(true));
    assert_eq!(
        e.ping(w).await,
        Ok(false),
        "last registration gone: stopped"
    );
    let again = announce(&e, "w1", "t_plain", None).await.expect("announce");
    assert_ne!(again, w, "a stopped worker's name gets a new row");
}

#[tokio::test]
async fn finished_jobs_are_archived_and_leave_find_jobs() {
    let e = engine_with(EngineConfig {
        archive_after: Duration::ZERO,
        ..part4_config()
    });
    let ok = create(&e, "k02", json!({"o": {"tag": 1}})).await;
    let failed = create(&e, "k04", json!({"x": 1, "tag": 1})).await;
    e.run_due().expect("run_due");
    assert_eq!(e.store().archived_jobs(), 1);
    assert_eq!(e.find_jobs(json!({"tag": 1})).await, Ok(vec![failed]));
    assert_eq!(e.find_jobs(json!({"o": {"tag": 1}})).await, Ok(vec![]));
    assert_eq!(
        e.get_job_status(ok).await,
        Ok(JobStatus::Finished(
            json!({"n": 10, "s": "dflt", "o": {"tag": 1}})
        ))
    );
}

#[tokio::test]
async fn housekeeping_disconnects_workers_without_ping() {
    let e = engine_with(EngineConfig {
        worker_timeout: Duration::ZERO,
        ..part4_config()
    });
    let w = announce(&e, "old", "t_plain", None)
        .await
        .expect("announce");
    // The clock has millisecond resolution: make sure the ping is in the past.
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert_eq!(
        e.housekeeping().expect("housekeeping"),
        vec!["old".to_string()]
    );
    assert_eq!(e.ping(w).await, Ok(false));
}

#[tokio::test]
async fn matcher_rejects_what_it_should() {
    use support::matches;
    assert!(matches(&json!({"a": 2}), &json!({"a": 2.0})));
    assert!(!matches(&json!({"a": 2}), &json!({"a": 3})));
    assert!(!matches(&json!({"a": 2}), &json!({"a": 2, "b": 1})));
    assert!(matches(
        &json!("childjob <C> raised"),
        &json!("childjob 12 raised")
    ));
    assert!(!matches(
        &json!("childjob <C> raised"),
        &json!("childjob x raised")
    ));
    assert!(matches(&json!({"id": "<J>"}), &json!({"id": 5})));
}

#[tokio::test]
async fn wait_for_lock_deadline_raises_class_lock_with_trailing_space() {
    let mut cat = fixture_catalog();
    let src = "workflow w_lockwait:\nin:\n    v string\nout:\n    r string optional\nlocks:\n    slot _ manual\nwfomap:\n    r = ifdef(v.r)\ndo:\n    wait_for_lock slot:\n        value = a.v\n        wait = '100 milliseconds'\n    let:\n        r = 'got it'\n";
    cat.compile("w_lockwait.wf", src).expect("compiles");
    let e = Engine::new(cat, jobcenter_store::MemoryStore::new(), part4_config()).start();
    // k35 takes (slot, k35) and sleeps two seconds.
    let holder = create(&e, "k35", json!({"tag": "A"})).await;
    assert_eq!(
        e.check_if_lock_exists("slot".into(), "k35".into()).await,
        Ok(Some(true))
    );
    let (id, out) = support::run_job(&e, "w_lockwait", json!({"v": "k35"}))
        .await
        .expect("runs");
    assert_eq!(out["error"]["class"], json!("lock "));
    let msg = out["error"]["msg"].as_str().unwrap_or_default();
    assert!(
        support::matches(
            &json!(format!(
                "locktype slot lockvalue k35 timeout for job {id} in task <T>"
            )),
            &json!(msg)
        ),
        "{msg}"
    );
    assert_eq!(e.get_job_status(holder).await, Ok(JobStatus::Running));
    // A free value is taken at once.
    assert_eq!(
        support::run_job(&e, "w_lockwait", json!({"v": "free"}))
            .await
            .map(|(_, v)| v),
        Ok(json!({"r": "got it"}))
    );
}

#[tokio::test]
async fn c36_cancel_job_fails_it_fatally_and_the_parent_sees_childerror() {
    let e = engine();
    announce(&e, "w1", "c_add", None).await.expect("announce");
    let mut rx = e.subscribe();
    let job = create(&e, "k01", json!({"input": 1})).await;
    ready_for(&mut rx, job).await;
    assert_eq!(e.cancel_job(job, "stuck"), Ok(true));
    assert_eq!(
        wait_finished(&e, &mut rx, job).await,
        Ok(json!({"error": {"msg": "job cancelled: stuck", "class": "fatal"}}))
    );
    assert_eq!(e.cancel_job(job, "again"), Ok(false));
    assert_eq!(
        e.get_task("w1".into(), "c_add".into(), None).await,
        Ok(None)
    );

    // A parent blocked on its child (which waits for c_add): cancel the child.
    let parent = create(&e, "w_callchild", json!({"x": 1})).await;
    let child = loop {
        match rx.recv().await {
            Some(Event::ActionReady { job_id, .. }) => break job_id,
            Some(_) => continue,
            None => panic!("event stream closed"),
        }
    };
    assert_ne!(child, parent);
    assert_eq!(e.cancel_job(child, "stuck"), Ok(true));
    let out = wait_finished(&e, &mut rx, parent).await;
    assert_eq!(
        out,
        Ok(
            json!({"error": {"msg": format!("childjob {child} raised error"), "class": "childerror", "error": {"msg": "job cancelled: stuck", "class": "fatal"}}})
        )
    );
}

#[tokio::test]
async fn children_of_a_failed_split_are_aborted_at_their_next_task() {
    let mut cat = fixture_catalog();
    let src = "workflow w_abort:\nin:\n    x number\nout:\n    r string optional\nwfomap:\n    r = ifdef(v.r)\ndo:\n    split:\n        callflow k45child:\n            x = a.x\n        callflow k10child:\n            x = a.x\n            fail = TRUE\n";
    cat.compile("w_abort.wf", src).expect("compiles");
    let e = Engine::new(cat, jobcenter_store::MemoryStore::new(), part4_config()).start();
    announce(&e, "w1", "c_add", None).await.expect("announce");
    let mut rx = e.subscribe();
    let parent = create(&e, "w_abort", json!({"x": 3})).await;
    // The first child waits for c_add; the second fails at once, so the parent fails.
    let out = wait_finished(&e, &mut rx, parent)
        .await
        .expect("parent finished");
    assert_eq!(out["error"]["class"], json!("childerror"));
    assert_eq!(
        out["error"]["error"],
        json!({"msg": "child says no: 3", "class": "normal"})
    );
    let claim = e
        .get_task("w1".into(), "c_add".into(), None)
        .await
        .expect("get_task")
        .expect("the first child's task is still there");
    let child = claim.job_id;
    e.task_done(claim.cookie, json!({"counter": 3}))
        .await
        .expect("task_done");
    assert_eq!(
        e.get_job_status(child).await,
        Ok(JobStatus::Finished(
            json!({"error": {"msg": "aborted by parent job", "class": "abort"}})
        ))
    );
}

#[tokio::test]
async fn split_child_asking_for_its_parents_lock_is_a_deadlock() {
    let mut cat = fixture_catalog();
    let src = "workflow w_splitlock:\nin:\n    v string\nout:\n    r string optional\nlocks:\n    abc k46\nwfomap:\n    r = ifdef(v.r)\ndo:\n    split:\n        callflow k46child:\n            v = a.v\n        into:\n            r = o.r\n";
    cat.compile("w_splitlock.wf", src).expect("compiles");
    let e = Engine::new(cat, jobcenter_store::MemoryStore::new(), part4_config()).start();
    let (parent, out) = support::run_job(&e, "w_splitlock", json!({"v": "x"}))
        .await
        .expect("finishes instead of hanging");
    assert_eq!(out["error"]["class"], json!("childerror"));
    let child: i64 = out["error"]["msg"]
        .as_str()
        .and_then(|m| m.strip_prefix("childjob "))
        .and_then(|m| m.split(' ').next())
        .and_then(|id| id.parse().ok())
        .unwrap_or_else(|| panic!("a child job id in {out}"));
    // The cycle as the original lists it: from the holder of the lock, back to it.
    assert_eq!(
        out["error"]["error"]["msg"],
        json!(format!(
            "deadlock trying to get locktype abc lockvalue k46 path {parent}, {child}, {parent}"
        ))
    );
    assert_eq!(
        e.check_if_lock_exists("abc".into(), "k46".into()).await,
        Ok(Some(false))
    );
}

#[tokio::test]
async fn interface_call_picks_its_destination_at_run_time() {
    let mut cat = fixture_catalog();
    let src = "workflow w_iface:\nin:\n    which string\n    x number\nout:\n    r number optional\nwfomap:\n    r = ifdef(v.r)\ndo:\n    interface adder:\n        k10child\n        k45child\n        c_add\n    call a.which:\n        x = a.x\n        counter = a.x\n    into:\n        r = o.y // o.counter\n";
    cat.compile("w_iface.wf", src).expect("compiles");
    let h = support::Harness::with(cat, part4_config(), &["c_add"]).await;
    assert_eq!(
        h.run("w_iface", json!({"which": "k10child", "x": 4})).await,
        Ok(json!({"r": 8}))
    );
    assert_eq!(
        h.run("w_iface", json!({"which": "k45child", "x": 4})).await,
        Ok(json!({"r": 4}))
    );
    assert_eq!(
        h.run("w_iface", json!({"which": "c_add", "x": 4})).await,
        Ok(json!({"r": 5}))
    );
    assert_eq!(
        h.run("w_iface", json!({"which": "nope", "x": 4})).await,
        Ok(
            json!({"error": {"msg": "interface call destination nope does not exist?", "class": "normal"}})
        )
    );
}

#[tokio::test]
async fn roles_restrict_create_job_and_announce() {
    let mut cat = fixture_catalog();
    cat.compile(
        "r_act.ac",
        "action r_act:\nin:\n    x number\nout:\n    y number optional\nrole:\n    workers\n",
    )
    .expect("action compiles");
    cat.compile(
        "r_wf.wf",
        "workflow r_wf:\nin:\n    x number\nout:\n    x number\nrole:\n    admins\nwfomap:\n    x = a.x\ndo:\n    return\n",
    )
    .expect("workflow compiles");
    let mut config = part4_config();
    config
        .roles
        .insert("admins".into(), vec!["jc_admin".into()]);
    let e = Engine::new(cat, jobcenter_store::MemoryStore::new(), config).start();
    let as_who = |who: &str| CreateJob {
        who: who.into(),
        ..support::job_request("r_wf", json!({"x": 1}))
    };
    assert!(e.create_job(as_who("jc_admin")).await.is_ok(), "member");
    assert!(
        e.create_job(as_who("admins")).await.is_ok(),
        "the role itself"
    );
    assert_eq!(
        e.create_job(as_who("bob")).await.map_err(|e| e.message),
        Err("client jcapi with role bob has no permission for role admins".to_string())
    );
    assert_eq!(
        e.announce("w".into(), "r_act".into(), "bob".into(), None)
            .await
            .map_err(|e| e.message),
        Err("worker jcapi with role bob has no permission for role workers".to_string())
    );
    assert!(e
        .announce("w".into(), "r_act".into(), "workers".into(), None)
        .await
        .is_ok());
}

#[tokio::test]
async fn archive_retention_forgets_old_results() {
    let e = engine_with(EngineConfig {
        archive_after: Duration::ZERO,
        archive_retention: Some(Duration::ZERO),
        ..part4_config()
    });
    let id = create(&e, "k02", json!({"o": {}})).await;
    e.run_due().expect("run_due");
    assert_eq!(e.store().archived_jobs(), 1);
    tokio::time::sleep(Duration::from_millis(5)).await;
    e.housekeeping().expect("housekeeping");
    assert_eq!(e.store().archived_jobs(), 0);
    assert_eq!(e.get_job_status(id).await, Ok(JobStatus::Unknown));
}

/// Only a workflow with a lock task (declared non-manual lock, `lock` statement) or a
/// `wait_for_lock` can hold a lock: a finishing job of any other skips the look-up of its locks.
#[test]
fn only_workflows_with_lock_tasks_may_lock() {
    let mut cat =
        jobcenter_engine::compile::Catalog::with_stage(jobcenter_engine::compile::Stage::C);
    cat.register_locktype("slot");
    cat.register_locktype("abc");
    let plain = "workflow w_plain:\nin:\n    v string\nout:\n    r string optional\ndo:\n    let:\n        r = a.v\n";
    let declared = "workflow w_declared:\nin:\n    v string\nout:\n    r string optional\nlocks:\n    abc k46\ndo:\n    let:\n        r = a.v\n";
    let manual = "workflow w_manual:\nin:\n    v string\nout:\n    r string optional\nlocks:\n    slot _ manual\ndo:\n    lock slot a.v\n";
    let waits = "workflow w_waits:\nin:\n    v string\nout:\n    r string optional\nlocks:\n    slot _ manual\ndo:\n    wait_for_lock slot:\n        value = a.v\n        wait = '100 milliseconds'\n";
    for (name, src, may) in [
        ("w_plain", plain, false),
        ("w_declared", declared, true),
        ("w_manual", manual, true),
        ("w_waits", waits, true),
    ] {
        cat.compile(&format!("{name}.wf"), src).expect("compiles");
        let wf = cat.lookup_workflow(name, None).expect("compiled");
        assert_eq!(wf.may_lock(), may, "{name}");
    }
}
