//! The admin methods (docs/PROTOCOL.md §18) end to end: the real server over the real
//! engine on the suite's store, our client as the admin identity, our worker library.
//! Checked: the permission error for anyone else (the shape of `get_api_status`'s, C48);
//! listings, one job, trees, workers, locks and errors of jobs just run; a disabled action
//! holding its tasks back and releasing them when enabled; cancel delivering `job_done`
//! with the error to the waiting client; retry of a task waiting for its retry and of a
//! failed job.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use jobcenter::{Action, Client, Task};
use jobcenter_conformance::{
    catalog, fast_timers, part4_engine_config, part4_fixtures, RawConn, Recorder, TestServer,
    APIMEISTER, JC_ADMIN, JC_ADMIN_TOKEN, WAIT,
};
use serde_json::{json, Value};

/// Extra workflows: one holding a lock while its action task waits, one calling a child
/// workflow, and one calling an action that fails softly with a retry an hour later.
const EXTRA: &[(&str, &str)] = &[
    (
        "adm_locked.wf",
        "workflow adm_locked:\nin:\n    x number\nout:\n    r number optional\nlocks:\n    abc adm\nwfomap:\n    r = ifdef(v.r)\ndo:\n    call c_add:\n        counter = a.x\n    into:\n        r = o.counter\n",
    ),
    (
        "adm_parent.wf",
        "workflow adm_parent:\nin:\n    x number\nout:\n    y number optional\nwfomap:\n    y = ifdef(v.y)\ndo:\n    call k45child:\n        x = a.x\n    into:\n        y = o.y\n",
    ),
    (
        "adm_soft.ac",
        "action adm_soft:\nin:\n    x number\nout:\n    y number\nconfig:\n    retry = '{\"tries\": 2, \"interval\": \"1 hour\"}'\n",
    ),
    (
        "adm_retry.wf",
        "workflow adm_retry:\nin:\n    x number\nout:\n    y number\nwfomap:\n    y = v.y\ndo:\n    call adm_soft:\n        x = a.x\n    into:\n        y = o.y\n",
    ),
];

async fn server() -> TestServer {
    let mut cat = match catalog(&part4_fixtures()) {
        Ok(c) => c,
        Err(e) => panic!("catalog: {e}"),
    };
    for (file, src) in EXTRA {
        if let Err(e) = cat.compile(file, src) {
            panic!("{file}: {e:?}");
        }
    }
    match TestServer::with_catalog_on(super::STORE, cat, part4_engine_config(), fast_timers()).await
    {
        Ok(s) => s,
        Err(e) => panic!("server: {e}"),
    }
}

async fn admin_client(s: &TestServer) -> Client {
    match s.client_as(APIMEISTER).await {
        Ok(c) => c,
        Err(e) => panic!("admin client: {e}"),
    }
}

/// An admin request that must succeed.
async fn req(c: &Client, method: &str, params: Value) -> Value {
    match c.request(method, params.clone()).await {
        Ok(v) => v,
        Err(e) => panic!("{method} {params}: {e}"),
    }
}

/// The job's state as `admin_job` tells it.
async fn state(c: &Client, job: i64) -> String {
    req(c, "admin_job", json!({"job_id": job})).await["state"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Ask until the job is in `want` (bounded by [`WAIT`]): the state changes inside the
/// engine, where no event reaches a client.
async fn until_state(c: &Client, job: i64, want: &str) {
    let start = Instant::now();
    loop {
        let s = state(c, job).await;
        if s == want {
            return;
        }
        assert!(start.elapsed() < WAIT, "job {job} stayed {s}, never {want}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

fn ids(v: &Value) -> Vec<i64> {
    v.as_array()
        .map(|a| a.iter().filter_map(|j| j["job_id"].as_i64()).collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_methods_refuse_anyone_but_the_admin() {
    let s = server().await;
    let mut raw = match RawConn::login(s.addr(), JC_ADMIN, JC_ADMIN_TOKEN).await {
        Ok(r) => r,
        Err(e) => panic!("login: {e}"),
    };
    let mut other = Vec::new();
    let status = raw
        .request("s", "get_api_status", json!({"what": "stats"}), &mut other)
        .await
        .expect("get_api_status answer");
    let refused = status["error"].clone();
    assert_eq!(refused["code"], -32001, "{status}");
    assert!(
        refused["message"]
            .as_str()
            .is_some_and(|m| m.contains("permission denied")),
        "{status}"
    );
    for (i, (method, params)) in [
        ("admin_jobs", json!({})),
        ("admin_job", json!({"job_id": 1})),
        ("admin_tree", json!({"job_id": 1})),
        ("admin_workers", json!({})),
        ("admin_locks", json!({})),
        ("admin_errors", json!({})),
        ("admin_retry", json!({"job_id": 1})),
        ("admin_cancel", json!({"job_id": 1})),
        ("admin_disable", json!({"action": "c_add"})),
        ("admin_enable", json!({"action": "c_add"})),
    ]
    .into_iter()
    .enumerate()
    {
        let id = format!("a{i}");
        let r = raw
            .request(&id, method, params, &mut other)
            .await
            .expect("an answer");
        assert_eq!(r["error"], refused, "{method}: {r}");
        assert!(r.get("result").is_none(), "{method}: {r}");
    }
    // Bad params of the admin get clear errors, not a panic or a hang.
    let c = admin_client(&s).await;
    for (method, params, needle) in [
        ("admin_job", json!({}), "no job_id?"),
        (
            "admin_job",
            json!({"job_id": "x"}),
            "job_id must be a positive integer",
        ),
        (
            "admin_job",
            json!({"job_id": -4}),
            "job_id must be a positive integer",
        ),
        (
            "admin_jobs",
            json!({"limit": "lots"}),
            "limit must be a non-negative integer",
        ),
        (
            "admin_jobs",
            json!({"state": 3}),
            "state must be a non-empty string",
        ),
        ("admin_disable", json!({}), "no action?"),
        (
            "admin_disable",
            json!({"action": "nope"}),
            "no action named nope",
        ),
        ("admin_tree", json!({"job_id": 99999}), "no job 99999"),
    ] {
        match c.request(method, params.clone()).await {
            Ok(v) => panic!("{method} {params} answered {v}"),
            Err(e) => assert!(e.to_string().contains(needle), "{method} {params}: {e}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_views_of_jobs_just_run_and_disable_enable() {
    let s = server().await;
    let c = admin_client(&s).await;
    let client = match s.client().await {
        Ok(c) => c,
        Err(e) => panic!("client: {e}"),
    };
    let rec = Recorder::new();
    let w = match s.reference_worker(&rec).await {
        Ok(w) => w,
        Err(e) => panic!("worker: {e}"),
    };

    // A job that finished and one that failed.
    let ok = client.call("k01", json!({"input": 1})).await.expect("k01");
    let ok_id = ok.job_id.expect("created");
    assert_eq!(ok.outargs, json!({"output": 2}));
    let failed = client
        .call("k09", json!({"what": "fatal"}))
        .await
        .expect("k09");
    let failed_id = failed.job_id.expect("created");
    assert!(failed.is_error(), "{failed:?}");

    let jobs = req(&c, "admin_jobs", json!({})).await;
    assert_eq!(ids(&jobs), vec![failed_id, ok_id], "{jobs}");
    assert_eq!(jobs[0]["state"], "error");
    assert_eq!(jobs[1]["state"], "finished");
    let detail = req(&c, "admin_job", json!({"job_id": ok_id})).await;
    assert_eq!(detail["inargs"], json!({"input": 1}), "{detail}");
    assert_eq!(detail["outargs"], json!({"output": 2}), "{detail}");
    // Its history: the tasks it entered, the action task among them.
    let history = detail["history"].as_array().cloned().unwrap_or_default();
    assert_eq!(
        Some(history.len() as u64),
        detail["steps"].as_u64(),
        "{detail}"
    );
    let call = history
        .iter()
        .find(|s| s["action"] == "c_add")
        .unwrap_or_else(|| panic!("no c_add step: {detail}"));
    assert!(
        call["label"]
            .as_str()
            .is_some_and(|l| l.starts_with("call (line ")),
        "{detail}"
    );
    assert!(call["error"].is_null(), "{detail}");
    let fd = req(&c, "admin_job", json!({"job_id": failed_id})).await;
    let last = fd["history"].as_array().and_then(|h| h.last().cloned());
    assert_eq!(
        last.map(|s| (s["action"].clone(), s["error"]["class"].clone())),
        Some((json!("c_fail"), json!("fatal"))),
        "{fd}"
    );
    let errs = req(&c, "admin_errors", json!({})).await;
    assert_eq!(ids(&errs), vec![failed_id], "{errs}");

    // Disable c_add: new tasks are held back (ready, not offered, not claimed).
    let r = req(&c, "admin_disable", json!({"action": "c_add"})).await;
    assert_eq!(
        r,
        json!({"action": "c_add", "enabled": false, "changed": true})
    );
    let parent = client
        .job("adm_parent")
        .inargs(json!({"x": 5}))
        .submit()
        .await
        .expect("adm_parent");
    let parent_id = parent.job_id().expect("created");
    let holder = client
        .job("adm_locked")
        .inargs(json!({"x": 7}))
        .submit()
        .await
        .expect("adm_locked");
    let holder_id = holder.job_id().expect("created");
    let waiter = client
        .job("adm_locked")
        .inargs(json!({"x": 8}))
        .submit()
        .await
        .expect("adm_locked 2");
    let waiter_id = waiter.job_id().expect("created");
    until_state(&c, holder_id, "ready").await;
    until_state(&c, waiter_id, "lockwait").await;
    until_state(&c, parent_id, "childwait").await;

    // The tree of the parent and its child; the child is ready and nobody took it.
    let tree = req(&c, "admin_tree", json!({"job_id": parent_id})).await;
    let nodes = tree["nodes"].as_array().cloned().unwrap_or_default();
    assert_eq!(nodes.len(), 2, "{tree}");
    assert_eq!(nodes[0]["job_id"], parent_id);
    assert_eq!(nodes[0]["level"], 0);
    assert_eq!(nodes[1]["level"], 1);
    assert_eq!(nodes[1]["parent"], parent_id);
    assert_eq!(nodes[1]["state"], "ready", "{tree}");
    let child_id = nodes[1]["job_id"].as_i64().expect("child id");
    let from_child = req(&c, "admin_tree", json!({"job_id": child_id})).await;
    assert_eq!(from_child["root"], parent_id, "{from_child}");
    let pd = req(&c, "admin_job", json!({"job_id": parent_id})).await;
    assert_eq!(ids(&pd["children"]), vec![child_id], "{pd}");

    // Locks: held by the first adm_locked, waited for by the second.
    let locks = req(&c, "admin_locks", json!({"locktype": "abc"})).await;
    assert_eq!(
        locks,
        json!([{"locktype": "abc", "lockvalue": "adm", "holder": holder_id,
                "inheritable": false, "lenders": [], "waiters": [waiter_id]}])
    );
    assert_eq!(
        req(&c, "admin_locks", json!({"locktype": "slot"})).await,
        json!([])
    );
    let hd = req(&c, "admin_job", json!({"job_id": holder_id})).await;
    assert_eq!(hd["locks"][0]["lockvalue"], "adm", "{hd}");
    let wd = req(&c, "admin_job", json!({"job_id": waiter_id})).await;
    assert_eq!(wd["current"]["lock_wait"], json!(["abc", "adm"]), "{wd}");

    // Workers: ours, with its actions (c_add disabled) and its slots on this node.
    let ws = req(&c, "admin_workers", json!({})).await;
    assert_eq!(ws["disabled_actions"], json!(["c_add"]), "{ws}");
    let worker = &ws["workers"][0];
    let acts: Vec<&str> = worker["actions"]
        .as_array()
        .map(|a| a.iter().filter_map(|x| x["action"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(
        acts,
        vec!["c_add", "c_fail", "c_echo", "c_soft", "c_slow"],
        "{ws}"
    );
    assert_eq!(worker["actions"][0]["disabled"], true, "{ws}");
    assert!(worker["local"]["slotgroups"].is_object(), "{ws}");
    assert_eq!(worker["working_on"], json!([]), "{ws}");
    // Nothing was handed out while disabled.
    assert!(rec.for_job(holder_id).is_empty());
    assert!(rec.for_job(child_id).is_empty());

    // Cancel the lock waiter: its client gets job_done with the error.
    let r = req(
        &c,
        "admin_cancel",
        json!({"job_id": waiter_id, "reason": "not needed"}),
    )
    .await;
    assert_eq!(r["cancelled"], true, "{r}");
    let out = waiter
        .outcome()
        .await
        .expect("job_done for the cancelled job");
    assert_eq!(
        out.outargs,
        json!({"error": {"msg": "job cancelled: not needed", "class": "fatal"}})
    );
    match c
        .request("admin_cancel", json!({"job_id": waiter_id}))
        .await
    {
        Ok(v) => panic!("second cancel answered {v}"),
        Err(e) => assert!(e.to_string().contains("has finished already"), "{e}"),
    }
    let locks = req(&c, "admin_locks", json!({})).await;
    assert_eq!(locks[0]["waiters"], json!([]), "{locks}");

    // Enable: the held-back tasks run and the jobs finish.
    let r = req(&c, "admin_enable", json!({"action": "c_add"})).await;
    assert_eq!(r["changed"], true, "{r}");
    let out = holder.outcome().await.expect("holder");
    assert_eq!(out.outargs, json!({"r": 8}));
    let out = parent.outcome().await.expect("parent");
    assert_eq!(out.outargs, json!({"y": 5}));
    assert_eq!(req(&c, "admin_locks", json!({})).await, json!([]));
    let all = req(&c, "admin_jobs", json!({"workflow": "adm_locked"})).await;
    assert_eq!(ids(&all), vec![waiter_id, holder_id], "{all}");
    assert_eq!(all[0]["state"], "error");
    assert_eq!(all[1]["state"], "finished");
    drop(w);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_of_a_waiting_task_and_of_a_failed_job() {
    let s = server().await;
    let c = admin_client(&s).await;
    let client = match s.client().await {
        Ok(c) => c,
        Err(e) => panic!("client: {e}"),
    };
    // adm_soft fails softly on its first three attempts, then answers the attempt number.
    let attempts = Arc::new(AtomicI64::new(0));
    let n = attempts.clone();
    let w = match s.worker().await {
        Ok(w) => w,
        Err(e) => panic!("worker: {e}"),
    };
    w.announce(Action::new("adm_soft").sync(move |_t: Task| {
        let a = n.fetch_add(1, Ordering::SeqCst) + 1;
        Ok::<_, String>(if a <= 3 {
            json!({"error": {"class": "soft", "msg": format!("attempt {a} failed")}})
        } else {
            json!({"y": a})
        })
    }))
    .await
    .expect("announce");

    let job = client
        .job("adm_retry")
        .inargs(json!({"x": 1}))
        .submit()
        .await
        .expect("adm_retry");
    let id = job.job_id().expect("created");
    // Attempt 1 failed: the retry is due in an hour. Retry it now, twice.
    until_state(&c, id, "retrywait").await;
    let errs = req(&c, "admin_errors", json!({})).await;
    assert_eq!(ids(&errs), vec![id], "{errs}");
    assert_eq!(errs[0]["error"]["msg"], "attempt 1 failed", "{errs}");
    let r = req(&c, "admin_retry", json!({"job_id": id})).await;
    assert_eq!(
        r,
        json!({"job_id": id, "was": "retrywait", "action": "adm_soft"})
    );
    until_state(&c, id, "retrywait").await;
    assert_eq!(attempts.load(Ordering::SeqCst), 2);
    req(&c, "admin_retry", json!({"job_id": id})).await;
    // Attempt 3 exhausts the retries: the job fails and its client hears so.
    let out = job.outcome().await.expect("job_done");
    assert_eq!(
        out.outargs,
        json!({"error": {"class": "soft", "msg": "attempt 3 failed"}})
    );
    let errs = req(&c, "admin_errors", json!({})).await;
    assert_eq!(errs[0]["state"], "error", "{errs}");
    // Retry the failed job: attempt 4 succeeds and the job finishes after all.
    let r = req(&c, "admin_retry", json!({"job_id": id})).await;
    assert_eq!(
        r,
        json!({"job_id": id, "was": "error", "action": "adm_soft"})
    );
    let status = client
        .get_job_status_notify(id)
        .await
        .expect("get_job_status");
    let outargs = match status {
        (jobcenter::JobStatus::Finished(v), _) => v,
        (jobcenter::JobStatus::Running, Some(done)) => done.wait().await.expect("job_done"),
        other => panic!("status {other:?}"),
    };
    assert_eq!(outargs, json!({"y": 4}));
    assert_eq!(req(&c, "admin_errors", json!({})).await, json!([]));
    match c.request("admin_retry", json!({"job_id": id})).await {
        Ok(v) => panic!("retry of a finished job answered {v}"),
        Err(e) => assert!(e.to_string().contains("state finished"), "{e}"),
    }
}
