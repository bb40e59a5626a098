//! The administrative operations of the engine (docs/PROTOCOL.md §18) through the `Backend`
//! trait: job listings, one job, trees, errors, locks, workers, retry, cancel, and
//! disabled actions. Workers are driven by hand from the test.

#[path = "runtime_support.rs"]
mod support;

use std::sync::Arc;
use std::time::Duration;

use jobcenter_engine::backend::admin::JobQuery;
use jobcenter_engine::backend::{Backend, Event, JobId};
use jobcenter_engine::{Engine, EngineConfig};
use serde_json::{json, Value};
use support::{create, fixture_catalog, part4_config, wait_finished};
use tokio::sync::mpsc::UnboundedReceiver;

const CALLCHILD: &str = "workflow w_callchild:\nin:\n    x number\nout:\n    y number optional\nwfomap:\n    y = ifdef(v.y)\ndo:\n    call k45child:\n        x = a.x\n    into:\n        y = o.y\n";

fn engine_with(config: EngineConfig) -> Arc<Engine> {
    let mut cat = fixture_catalog();
    cat.compile("w_callchild.wf", CALLCHILD)
        .expect("workflow compiles");
    Engine::new(cat, jobcenter_store::MemoryStore::new(), config).start()
}

/// The next `ActionReady` (of any job), within 5 s; `None` if there is none by then.
async fn next_ready(rx: &mut UnboundedReceiver<Event>, within: Duration) -> Option<JobId> {
    let wait = async {
        while let Some(ev) = rx.recv().await {
            if let Event::ActionReady { job_id, .. } = ev {
                return Some(job_id);
            }
        }
        None
    };
    tokio::time::timeout(within, wait).await.ok().flatten()
}

/// Claim the task of `job` as worker `w1` and answer it with `out`.
async fn work(e: &Arc<Engine>, job: JobId, out: Value) {
    let claim = e
        .get_task("w1".into(), "c_add".into(), Some(job))
        .await
        .expect("get_task")
        .expect("a task");
    e.task_done(claim.cookie, out).await.expect("task_done");
}

#[tokio::test]
async fn listings_detail_tree_errors_and_retry() {
    let e = engine_with(part4_config());
    e.announce("w1".into(), "c_add".into(), "jc_admin".into(), None)
        .await
        .expect("announce");
    let mut rx = e.subscribe();

    // One job that finishes, one that fails at its action task, one parent with a child.
    let ok = create(&e, "k01", json!({"input": 1})).await;
    assert_eq!(next_ready(&mut rx, Duration::from_secs(5)).await, Some(ok));
    work(&e, ok, json!({"counter": 2})).await;
    assert_eq!(
        wait_finished(&e, &mut rx, ok).await,
        Ok(json!({"output": 2}))
    );
    let bad = create(&e, "k01", json!({"input": 5})).await;
    assert_eq!(next_ready(&mut rx, Duration::from_secs(5)).await, Some(bad));
    work(
        &e,
        bad,
        json!({"error": {"msg": "boom", "class": "normal"}}),
    )
    .await;
    let failed = wait_finished(&e, &mut rx, bad).await;
    assert_eq!(
        failed,
        Ok(json!({"error": {"msg": "boom", "class": "normal"}}))
    );
    let parent = create(&e, "w_callchild", json!({"x": 3})).await;
    let child = next_ready(&mut rx, Duration::from_secs(5))
        .await
        .expect("the child's task");
    assert_ne!(child, parent);

    // Listing: newest first, filters.
    let all = e.admin_jobs(JobQuery::default()).await.expect("jobs");
    let ids: Vec<JobId> = all.iter().map(|j| j.job_id).collect();
    assert_eq!(ids, vec![child, parent, bad, ok]);
    assert_eq!(all[0].state, "ready");
    assert_eq!(all[0].action.as_deref(), Some("c_add"));
    assert_eq!(all[0].parent, Some(parent));
    assert_eq!(all[1].state, "childwait");
    assert_eq!(all[2].state, "error");
    assert_eq!(
        all[2].error,
        Some(json!({"msg": "boom", "class": "normal"}))
    );
    assert_eq!(all[3].state, "finished");
    let q = |state: Option<&str>, workflow: Option<&str>, limit: usize| JobQuery {
        state: state.map(Into::into),
        workflow: workflow.map(Into::into),
        limit,
        ..JobQuery::default()
    };
    let only = |v: Vec<jobcenter_engine::backend::admin::JobSummary>| {
        v.into_iter().map(|j| j.job_id).collect::<Vec<_>>()
    };
    assert_eq!(
        only(e.admin_jobs(q(Some("error"), None, 0)).await.unwrap()),
        vec![bad]
    );
    assert_eq!(
        only(e.admin_jobs(q(None, Some("k01"), 0)).await.unwrap()),
        vec![bad, ok]
    );
    assert_eq!(
        only(e.admin_jobs(q(None, None, 2)).await.unwrap()),
        vec![child, parent]
    );
    let paged = JobQuery {
        before: Some(parent),
        ..JobQuery::default()
    };
    assert_eq!(only(e.admin_jobs(paged).await.unwrap()), vec![bad, ok]);
    let future = JobQuery {
        since: Some(u64::MAX / 2),
        ..JobQuery::default()
    };
    assert_eq!(
        only(e.admin_jobs(future).await.unwrap()),
        Vec::<JobId>::new()
    );
    let err = e.admin_jobs(q(Some("bogus"), None, 0)).await.unwrap_err();
    assert!(err.message.starts_with("unknown state bogus"), "{err}");

    // One job.
    let d = e.admin_job(ok).await.expect("job").expect("known");
    assert_eq!(d.inargs, Some(json!({"input": 1})));
    assert_eq!(d.outargs, Some(json!({"output": 2})));
    assert_eq!(d.summary.state, "finished");
    let d = e.admin_job(parent).await.expect("job").expect("known");
    assert_eq!(d.children.len(), 1);
    assert_eq!(d.children[0].job_id, child);
    assert_eq!(d.current.as_ref().and_then(|c| c.child), Some(child));
    assert_eq!(e.admin_job(9_999_999).await, Ok(None));

    // The tree, asked about the child.
    let t = e.admin_tree(child).await.expect("tree").expect("known");
    assert_eq!(t.root, parent);
    let nodes: Vec<(JobId, usize)> = t.nodes.iter().map(|n| (n.job.job_id, n.level)).collect();
    assert_eq!(nodes, vec![(parent, 0), (child, 1)]);

    // Errors, then a retry of the failed job: its task is ready again and can finish.
    let errs = e.admin_errors(None, 0).await.expect("errors");
    assert_eq!(only(errs), vec![bad]);
    let r = e.admin_retry(bad).await.expect("retry");
    assert_eq!((r.was.as_str(), r.action.as_str()), ("error", "c_add"));
    assert_eq!(next_ready(&mut rx, Duration::from_secs(5)).await, Some(bad));
    work(&e, bad, json!({"counter": 7})).await;
    assert_eq!(
        wait_finished(&e, &mut rx, bad).await,
        Ok(json!({"output": 7}))
    );
    assert_eq!(
        only(e.admin_errors(None, 0).await.expect("errors")),
        Vec::<JobId>::new()
    );
    let err = e.admin_retry(parent).await.unwrap_err();
    assert!(err.message.contains("state childwait"), "{err}");

    // Workers.
    let ws = e.admin_workers().await.expect("workers");
    assert_eq!(ws.len(), 1);
    assert_eq!(ws[0].name, "w1");
    assert_eq!(ws[0].actions[0].action, "c_add");

    // Cancel the parent: it fails with the cancel error.
    assert_eq!(e.admin_cancel(parent, "by test".into()).await, Ok(true));
    assert_eq!(
        wait_finished(&e, &mut rx, parent).await,
        Ok(json!({"error": {"msg": "job cancelled: by test", "class": "fatal"}}))
    );
    assert_eq!(e.admin_cancel(parent, "again".into()).await, Ok(false));
}

#[tokio::test]
async fn a_disabled_action_holds_its_tasks_back_until_enabled() {
    let e = engine_with(part4_config());
    e.announce("w1".into(), "c_add".into(), "jc_admin".into(), None)
        .await
        .expect("announce");
    let mut rx = e.subscribe();
    assert_eq!(
        e.admin_set_action_enabled("c_add".into(), false).await,
        Ok(true)
    );
    assert_eq!(
        e.admin_set_action_enabled("c_add".into(), false).await,
        Ok(false)
    );
    assert_eq!(
        e.admin_disabled_actions().await,
        Ok(vec!["c_add".to_string()])
    );
    let job = create(&e, "k01", json!({"input": 1})).await;
    // No offer, no claim, no poll row while disabled.
    assert_eq!(next_ready(&mut rx, Duration::from_millis(200)).await, None);
    assert_eq!(
        e.get_task("w1".into(), "c_add".into(), None).await,
        Ok(None)
    );
    let wid = e.admin_workers().await.unwrap()[0].worker_id;
    assert_eq!(e.poll_tasks(vec![wid]).await, Ok(vec![]));
    // Enabled: offered at once.
    assert_eq!(
        e.admin_set_action_enabled("c_add".into(), true).await,
        Ok(true)
    );
    assert_eq!(next_ready(&mut rx, Duration::from_secs(5)).await, Some(job));
    work(&e, job, json!({"counter": 1})).await;
    assert_eq!(
        wait_finished(&e, &mut rx, job).await,
        Ok(json!({"output": 1}))
    );
    assert_eq!(e.admin_disabled_actions().await, Ok(vec![]));
}

#[tokio::test]
async fn the_history_records_tasks_children_retries_and_errors() {
    let e = engine_with(part4_config());
    e.announce("w1".into(), "c_add".into(), "jc_admin".into(), None)
        .await
        .expect("announce");
    let mut rx = e.subscribe();
    let parent = create(&e, "w_callchild", json!({"x": 3})).await;
    let child = next_ready(&mut rx, Duration::from_secs(5))
        .await
        .expect("the child's task");
    work(&e, child, json!({"counter": 3})).await;
    assert_eq!(
        wait_finished(&e, &mut rx, parent).await,
        Ok(json!({"y": 3}))
    );
    let d = e.admin_job(parent).await.expect("job").expect("known");
    assert_eq!(d.steps, Some(d.history.len() as i64));
    let call = d
        .history
        .iter()
        .find(|s| s.child.is_some())
        .expect("the call step");
    assert_eq!(call.child, Some(child));
    assert!(call.label.starts_with("call (line "), "{}", call.label);
    // The finished child is still linked through the parent's history.
    let t = e.admin_tree(parent).await.expect("tree").expect("known");
    let nodes: Vec<JobId> = t.nodes.iter().map(|n| n.job.job_id).collect();
    assert_eq!(nodes, vec![parent, child]);
    let c = e.admin_job(child).await.expect("job").expect("known");
    let step = c
        .history
        .iter()
        .find(|s| s.action.as_deref() == Some("c_add"))
        .expect("the action step");
    assert_eq!((step.tries, &step.error), (None, &None));

    // A failed action task carries the error.
    let bad = create(&e, "k01", json!({"input": 1})).await;
    assert_eq!(next_ready(&mut rx, Duration::from_secs(5)).await, Some(bad));
    work(&e, bad, json!({"error": {"msg": "no", "class": "normal"}})).await;
    wait_finished(&e, &mut rx, bad).await.expect("finished");
    let d = e.admin_job(bad).await.expect("job").expect("known");
    let last = d.history.last().expect("a step");
    assert_eq!(last.action.as_deref(), Some("c_add"));
    assert_eq!(last.error, Some(json!({"msg": "no", "class": "normal"})));
}
