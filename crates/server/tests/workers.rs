//! Workers against the server: announce/withdraw, slotgroups, offers, hand-off, polls,
//! pings and disconnects (docs/PROTOCOL.md §7.3, §7.10–§7.15, §8), over loopback TCP.

mod common;

use common::backend::ActionDef;
use common::{mini_backend, RawClient, TestServer, WAIT};
use jobcenter_server::Timers;
use serde_json::{json, Value};
use std::time::Duration;

fn threw(e: &Value, reason: &str) {
    assert_eq!(e["code"], json!(-32001), "{e}");
    assert_eq!(e["message"], json!(format!("Method threw error: {reason}")));
}

fn fast(handoff_ms: u64, poll_ms: u64) -> Timers {
    Timers {
        handoff: Duration::from_millis(handoff_ms),
        poll: Duration::from_millis(poll_ms),
        ..Timers::default()
    }
}

async fn create(c: &mut RawClient, wf: &str, inargs: Value) -> i64 {
    let r = c
        .result("create_job", json!({"wfname": wf, "inargs": inargs}))
        .await;
    r[0].as_i64()
        .unwrap_or_else(|| panic!("create_job failed: {r}"))
}

#[tokio::test]
async fn c13_c50_c51_slotgroups() {
    let s = TestServer::start().await;
    let mut w = s.login("theEmployee").await;
    assert_eq!(
        w.result("create_slotgroup", json!({"name":"g","slots":2}))
            .await,
        json!("")
    );
    threw(
        &w.error("create_slotgroup", json!({"name":"g","slots":2}))
            .await,
        "slotgroup g already exists",
    );
    threw(
        &w.error("create_slotgroup", json!({"name":"_x"})).await,
        "invalid slotgroup name",
    );
    threw(
        &w.error("create_slotgroup", json!({"name":"h","slots":0}))
            .await,
        "slots should be a positive number",
    );
    threw(
        &w.error("create_slotgroup", json!({})).await,
        "slotgroup name required",
    );
    assert_eq!(
        w.result("create_slotgroup", json!({"name":"one","slots":null}))
            .await,
        json!("")
    );
    threw(
        &w.error(
            "announce",
            json!({"actionname":"add","slotgroup":"g","slots":1}),
        )
        .await,
        "cannot provide both slotgroup and slots",
    );
    threw(
        &w.error("announce", json!({"actionname":"add","slotgroup":"nosuch"}))
            .await,
        "slotgroup nosuch does not exist",
    );
    assert_eq!(
        w.result(
            "announce",
            json!({"workername":"sgw","actionname":"add","slotgroup":"g","slots":null}),
        )
        .await,
        json!([true, "success"])
    );
    s.handle.shutdown().await;
}

#[tokio::test]
async fn c11_c12_c52_c53_announce_results_and_errors() {
    let s = TestServer::start().await;
    s.backend.action(
        "filtered",
        ActionDef {
            filter_keys: Some(vec!["color".into()]),
            ..ActionDef::default()
        },
    );
    let mut w = s.login("theEmployee").await;
    assert_eq!(w.announce("w1", "add", 1).await, json!([true, "success"]));
    let r = w.announce("w1", "add", 1).await;
    assert_eq!(r[0], json!(false));
    assert!(r[1]
        .as_str()
        .unwrap_or_default()
        .contains("worker w1 already can do action add"));
    assert_eq!(
        w.announce("w1", "nosuchaction", 1).await,
        json!([false, "ERROR:  no action named nosuchaction."])
    );
    threw(&w.error("announce", json!({})).await, "actionname required");
    threw(
        &w.error("announce", json!({"actionname":"add","slots":0}))
            .await,
        "slots should be a positive number",
    );
    threw(
        &w.error("announce", json!({"actionname":"add","filter":"x"}))
            .await,
        "filter must be a json object",
    );
    let r = w
        .result(
            "announce",
            json!({"workername":"w1","actionname":"nobody","filter":{"a":1}}),
        )
        .await;
    assert_eq!(
        r,
        json!([false, "ERROR:  filtering is not allowed for action nobody"])
    );
    let r = w
        .result(
            "announce",
            json!({"workername":"w1","actionname":"filtered"}),
        )
        .await;
    assert_eq!(
        r,
        json!([false, "ERROR:  filtering is required for action filtered"])
    );
    s.handle.shutdown().await;
}

#[tokio::test]
async fn c10_c69_withdraw() {
    let s = TestServer::start().await;
    let mut w = s.login("theEmployee").await;
    w.announce("w1", "add", 1).await;
    assert_eq!(
        w.result("withdraw", json!({"actionname":"add"})).await,
        json!(1)
    );
    threw(
        &w.error("withdraw", json!({"actionname":"add"})).await,
        "actionname add not announced?",
    );
    threw(&w.error("withdraw", json!({})).await, "actionname required");
    // re-announcing after withdraw works
    assert_eq!(w.announce("w1", "add", 1).await, json!([true, "success"]));
    s.handle.shutdown().await;
}

#[tokio::test]
async fn c56_c57_c67_one_slot_offers_one_job_at_a_time() {
    let s = TestServer::start().await;
    let mut w = s.login("theEmployee").await;
    w.announce("w1", "add", 1).await;
    let mut c = s.login("theCustomer").await;
    let j1 = create(&mut c, "calladd", json!({"counter": 1})).await;
    let j2 = create(&mut c, "calladd", json!({"counter": 2})).await;
    let tr = w.notification("task_ready").await;
    assert_eq!(tr, json!({"actionname":"add","job_id": j1}));
    let task = w
        .result("get_task", json!({"actionname":"add","job_id": j1}))
        .await;
    assert_eq!(task[0], json!(j1));
    assert!(task[1].is_string());
    assert_eq!(task[2], json!({"counter": 1}));
    assert_eq!(task[3], json!({}));
    // the second job is not offered while the slot is busy
    w.silent_for(Duration::from_millis(300)).await;
    w.notify(
        "task_done",
        json!({"cookie": task[1], "outargs": {"counter": 2}}),
    )
    .await;
    // C67: the pending action gets a poll offer at once
    let tr = w.notification("task_ready").await;
    let key = tr["job_id"].as_str().expect("poll offer id is a string");
    assert!(!key.starts_with(|c: char| c.is_ascii_digit()));
    let task = w
        .result("get_task", json!({"actionname":"add","job_id": key}))
        .await;
    assert_eq!(task[0], json!(j2));
    w.notify(
        "task_done",
        json!({"cookie": task[1], "outargs": {"counter": 3}}),
    )
    .await;
    let mut outs = vec![
        c.notification("job_done").await,
        c.notification("job_done").await,
    ];
    outs.sort_by_key(|v| v["job_id"].as_i64());
    assert_eq!(
        outs,
        vec![
            json!({"job_id": j1, "outargs": {"counter": 2}}),
            json!({"job_id": j2, "outargs": {"counter": 3}})
        ]
    );
    s.handle.shutdown().await;
}

#[tokio::test]
async fn c58_unclaimed_offer_moves_to_another_worker() {
    let s = TestServer::with_timers(fast(200, 60_000)).await;
    let mut w1 = s.login("theEmployee").await;
    w1.announce("w1", "add", 1).await;
    let mut w2 = s.login("theEmployee").await;
    w2.announce("w2", "add", 1).await;
    let mut c = s.login("theCustomer").await;
    let job = create(&mut c, "calladd", json!({"counter": 1})).await;
    // whoever gets it first ignores it
    let (first, second) = tokio::select! {
        tr = w1.notification("task_ready") => { assert_eq!(tr["job_id"], json!(job)); (w1, w2) }
        tr = w2.notification("task_ready") => { assert_eq!(tr["job_id"], json!(job)); (w2, w1) }
    };
    let mut second = second;
    let tr = second.notification("task_ready").await;
    assert_eq!(tr, json!({"actionname":"add","job_id": job}));
    let task = second
        .result("get_task", json!({"actionname":"add","job_id": job}))
        .await;
    assert_eq!(
        task[0],
        json!(job),
        "the next worker can claim it (REF-BUG fixed)"
    );
    drop(first);
    s.handle.shutdown().await;
}

#[tokio::test]
async fn c59_idle_workers_are_offered_jobs_alternately() {
    let s = TestServer::start().await;
    let mut w1 = s.login("theEmployee").await;
    w1.announce("w1", "add", 1).await;
    let mut w2 = s.login("theEmployee").await;
    w2.announce("w2", "add", 1).await;
    let mut c = s.login("theCustomer").await;
    let mut order = Vec::new();
    for n in 0..4 {
        create(&mut c, "calladd", json!({"counter": n})).await;
        let (who, task) = tokio::select! {
            t = w1.take_task() => (1, t),
            t = w2.take_task() => (2, t),
        };
        let w = if who == 1 { &mut w1 } else { &mut w2 };
        w.notify(
            "task_done",
            json!({"cookie": task[1], "outargs": {"counter": 0}}),
        )
        .await;
        c.notification("job_done").await;
        order.push(who);
    }
    assert_ne!(order[0], order[1], "{order:?}");
    assert_eq!(order[0], order[2], "{order:?}");
    assert_eq!(order[1], order[3], "{order:?}");
    s.handle.shutdown().await;
}

#[tokio::test]
async fn c60_filtered_worker_only_gets_matching_jobs() {
    let s = TestServer::start().await;
    s.backend.action(
        "paint",
        ActionDef {
            filter_keys: Some(vec!["color".into()]),
            ..ActionDef::default()
        },
    );
    let mut red = s.login("theEmployee").await;
    let r = red
        .result(
            "announce",
            json!({"workername":"red","actionname":"paint","filter":{"color":"red"}}),
        )
        .await;
    assert_eq!(r, json!([true, "success"]));
    let mut blue = s.login("theEmployee").await;
    blue.result(
        "announce",
        json!({"workername":"blue","actionname":"paint","filter":{"color":"blue"}}),
    )
    .await;
    let mut c = s.login("theCustomer").await;
    for _ in 0..2 {
        let jb = create(&mut c, "paint", json!({"color":"blue"})).await;
        let t = blue.take_task().await;
        assert_eq!(t[0], json!(jb));
        blue.notify("task_done", json!({"cookie": t[1], "outargs": {}}))
            .await;
        let jr = create(&mut c, "paint", json!({"color":"red"})).await;
        let t = red.take_task().await;
        assert_eq!(t[0], json!(jr));
        red.notify("task_done", json!({"cookie": t[1], "outargs": {}}))
            .await;
    }
    red.silent_for(Duration::from_millis(100)).await;
    blue.silent_for(Duration::from_millis(100)).await;
    s.handle.shutdown().await;
}

#[tokio::test]
async fn c61_c68_jobs_ready_before_announce_are_offered_by_poll() {
    let s = TestServer::start().await;
    let j1 = s.backend.quiet_job("add", json!({"counter": 1}));
    let j2 = s.backend.quiet_job("add", json!({"counter": 2}));
    let mut w = s.login("theEmployee").await;
    let started = std::time::Instant::now();
    w.announce("w1", "add", 1).await;
    let tr = w.notification("task_ready").await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "poll right after announce"
    );
    let key = tr["job_id"].as_str().expect("string id").to_string();
    assert!(key.starts_with("please_add_"));
    let t = w
        .result("get_task", json!({"actionname":"add","job_id": key}))
        .await;
    assert_eq!(t[0], json!(j1), "lowest ready job id");
    w.notify(
        "task_done",
        json!({"cookie": t[1], "outargs": {"counter": 0}}),
    )
    .await;
    let t = w.take_task().await;
    assert_eq!(t[0], json!(j2));
    s.handle.shutdown().await;
}

#[tokio::test]
async fn c62_c63_get_task_unknown_used_or_taken_is_empty() {
    let s = TestServer::start().await;
    let mut w1 = s.login("theEmployee").await;
    w1.announce("w1", "add", 2).await;
    let mut w2 = s.login("theEmployee").await;
    w2.announce("w2", "add", 1).await;
    assert_eq!(
        w1.result("get_task", json!({"actionname":"add","job_id": 424242}))
            .await,
        json!([])
    );
    assert_eq!(
        w1.result(
            "get_task",
            json!({"actionname":"add","job_id": "please_add_999"})
        )
        .await,
        json!([])
    );
    let mut c = s.login("theCustomer").await;
    let job = create(&mut c, "calladd", json!({"counter": 1})).await;
    let (mut winner, mut loser) = tokio::select! {
        _ = w1.notification("task_ready") => (w1, w2),
        _ = w2.notification("task_ready") => (w2, w1),
    };
    let t = winner
        .result("get_task", json!({"actionname":"add","job_id": job}))
        .await;
    assert_eq!(t[0], json!(job));
    // already used by the winner
    assert_eq!(
        winner
            .result("get_task", json!({"actionname":"add","job_id": job}))
            .await,
        json!([])
    );
    // a poll offer for the loser finds nothing: the job is claimed
    s.handle.poll_now().await;
    loser.silent_for(Duration::from_millis(200)).await;
    assert_eq!(
        loser
            .result(
                "get_task",
                json!({"actionname":"add","job_id": job.to_string()})
            )
            .await,
        json!([])
    );
    s.handle.shutdown().await;
}

#[tokio::test]
async fn c63_get_task_backend_error_releases_the_slot() {
    let s = TestServer::start().await;
    let mut w = s.login("theEmployee").await;
    w.announce("w1", "add", 1).await;
    let mut c = s.login("theCustomer").await;
    let job = create(&mut c, "calladd", json!({"counter": 1})).await;
    let tr = w.notification("task_ready").await;
    assert_eq!(tr["job_id"], json!(job));
    // the backend refuses (no such registration): [] and the slot is free again
    let r = w
        .result("get_task", json!({"actionname":"nobody","job_id": job}))
        .await;
    assert_eq!(r, json!([]));
    s.handle.poll_now().await;
    let t = w.take_task().await;
    assert_eq!(t[0], json!(job), "re-offered: the slot was released");
    s.handle.shutdown().await;
}

#[tokio::test]
async fn c14_c64_c65_task_done_edge_cases() {
    let s = TestServer::start().await;
    let mut w = s.login("theEmployee").await;
    w.announce("w1", "add", 1).await;
    w.notify(
        "task_done",
        json!({"cookie":"5f0c7c2e-8a51-4a1b-9a43-0d0f1e2a3b4c","outargs":{"x":1}}),
    )
    .await;
    w.silent_for(Duration::from_millis(200)).await;
    w.notify(
        "task_done",
        json!({"cookie":"5f0c7c2e-8a51-4a1b-9a43-0d0f1e2a3b4c"}),
    )
    .await;
    let v = w.next().await.expect("error frame");
    assert_eq!(
        v,
        json!({"jsonrpc":"2.0","id":null,"error":{"code":-32001,"message":"Method threw error: task_done: no outargs!?"}})
    );
    w.notify("task_done", json!({"outargs":{"x":1}})).await;
    let v = w.next().await.expect("error frame");
    assert_eq!(
        v["error"]["message"],
        json!("Method threw error: task_done: no cookie!?")
    );
    // worker errors pass through verbatim; missing outputs fail the job (c14)
    let mut c = s.login("theCustomer").await;
    let job = create(&mut c, "calladd", json!({"counter": 1})).await;
    let t = w.take_task().await;
    w.notify(
        "task_done",
        json!({"cookie": t[1], "outargs": {"error": "worker callback failed on purpose\n"}}),
    )
    .await;
    assert_eq!(
        c.notification("job_done").await,
        json!({"job_id": job, "outargs": {"error": "worker callback failed on purpose\n"}})
    );
    // still open
    assert_eq!(w.result("ping", json!({})).await, json!("pong?"));
    s.handle.shutdown().await;
}

#[tokio::test]
async fn c66_soft_errors_are_retried_with_tries_in_env() {
    let s = TestServer::start().await;
    s.backend.action(
        "flaky",
        ActionDef {
            retry_tries: Some(3),
            ..ActionDef::default()
        },
    );
    let mut w = s.login("theEmployee").await;
    w.announce("w1", "flaky", 1).await;
    let mut c = s.login("theCustomer").await;
    let job = create(&mut c, "flaky", json!({})).await;
    let tries = w.fail_softly(4).await;
    assert_eq!(tries, vec![Value::Null, json!(1), json!(2), json!(3)]);
    assert_eq!(
        c.notification("job_done").await,
        json!({"job_id": job, "outargs": {"error": {"class":"soft","msg":"x"}}})
    );
    s.handle.shutdown().await;
}

#[tokio::test]
async fn c67_busy_slotgroup_takes_turns_between_actions() {
    let s = TestServer::start().await;
    s.backend.action("sub", ActionDef::default());
    let mut w = s.login("theEmployee").await;
    w.result("create_slotgroup", json!({"name":"g","slots":1}))
        .await;
    for a in ["add", "sub"] {
        let r = w
            .result(
                "announce",
                json!({"workername":"w","actionname":a,"slotgroup":"g"}),
            )
            .await;
        assert_eq!(r, json!([true, "success"]));
    }
    let mut c = s.login("theCustomer").await;
    create(&mut c, "calladd", json!({"counter": 1})).await;
    create(&mut c, "calladd", json!({"counter": 2})).await;
    create(&mut c, "sub", json!({})).await;
    create(&mut c, "sub", json!({})).await;
    let mut seen = Vec::new();
    for _ in 0..4 {
        let tr = w.notification("task_ready").await;
        seen.push(tr["actionname"].as_str().unwrap_or_default().to_string());
        let t = w
            .result(
                "get_task",
                json!({"actionname": tr["actionname"], "job_id": tr["job_id"]}),
            )
            .await;
        w.notify(
            "task_done",
            json!({"cookie": t[1], "outargs": {"counter": 0}}),
        )
        .await;
    }
    assert_eq!(seen, vec!["add", "sub", "add", "sub"]);
    s.handle.shutdown().await;
}

#[tokio::test]
async fn c54_c72_pings_refresh_liveness_and_silence_closes() {
    let timers = Timers {
        ping_interval: Duration::from_millis(150),
        ping_timeout: Duration::from_millis(300),
        ..Timers::default()
    };
    let s = TestServer::with_timers(timers).await;
    let mut w = s.login("theEmployee").await;
    w.announce("pinged", "add", 1).await;
    let wid = s.backend.worker_id("pinged").expect("worker");
    for _ in 0..3 {
        let v = w.next().await.expect("ping");
        assert_eq!(v["method"], json!("ping"));
        assert_eq!(v["params"], json!({}));
        assert!(v["id"].is_string());
        w.send(&json!({"jsonrpc":"2.0","id": v["id"],"result":"pong!"}))
            .await;
    }
    let deadline = tokio::time::Instant::now() + WAIT;
    while s.backend.ping_count(wid) < 3 {
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // now stay silent: the next ping is not answered and the server closes
    let v = w.next().await.expect("ping");
    assert_eq!(v["method"], json!("ping"));
    w.expect_eof().await;
    let deadline = tokio::time::Instant::now() + WAIT;
    while !s.backend.disconnects().contains(&"pinged".to_string()) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "disconnect processing"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    s.handle.shutdown().await;
}

#[tokio::test]
async fn c55_c70_error_reply_keeps_open_and_withdraw_stops_pings() {
    let timers = Timers {
        ping_interval: Duration::from_millis(100),
        ping_timeout: Duration::from_millis(200),
        ..Timers::default()
    };
    let s = TestServer::with_timers(timers).await;
    let mut w = s.login("theEmployee").await;
    w.announce("w1", "add", 1).await;
    for _ in 0..3 {
        let v = w.next().await.expect("ping");
        assert_eq!(v["method"], json!("ping"));
        w.send(&json!({"jsonrpc":"2.0","id": v["id"],"error":{"code":-32601,"message":"Method not found."}}))
            .await;
    }
    let r = w.request("withdraw", json!({"actionname":"add"})).await;
    assert_eq!(r["result"], json!(1));
    // a ping may have been in flight; after that, silence and an open connection
    if let Ok(Some(v)) = w.next_within(Duration::from_millis(50)).await {
        assert_eq!(v["method"], json!("ping"));
        w.send(&json!({"jsonrpc":"2.0","id": v["id"],"result":"pong!"}))
            .await;
    }
    w.silent_for(Duration::from_millis(500)).await;
    assert_eq!(w.result("ping", json!({})).await, json!("pong?"));
    s.handle.shutdown().await;
}

#[tokio::test]
async fn c19_c71_disconnect_with_tasks_in_hand() {
    let backend = mini_backend();
    backend.action(
        "retryme",
        ActionDef {
            retryable: true,
            ..ActionDef::default()
        },
    );
    let s = TestServer::with(Timers::default(), backend).await;
    let mut c = s.login("theCustomer").await;
    // a worker takes a retryable task and a normal one, then vanishes
    let mut w1 = s.login("theEmployee").await;
    w1.announce("w1", "retryme", 1).await;
    w1.announce("w1", "add", 1).await;
    let jr = create(&mut c, "retryme", json!({})).await;
    let t = w1.take_task().await;
    assert_eq!(t[0], json!(jr));
    let ja = create(&mut c, "calladd", json!({"counter": 5})).await;
    let t = w1.take_task().await;
    assert_eq!(t[0], json!(ja));
    let old_cookie = t[1].clone();
    drop(w1);
    // the retryable task fails with the soft error
    assert_eq!(
        c.notification("job_done").await,
        json!({"job_id": jr, "outargs": {"error": {"class":"soft","msg":"worker disconnected"}}})
    );
    // the other one is ready again and goes to the remaining worker
    let mut w2 = s.login("theEmployee").await;
    w2.announce("w2", "add", 1).await;
    let t = w2.take_task().await;
    assert_eq!(t[0], json!(ja));
    assert_ne!(t[1], old_cookie);
    // the old cookie is ignored
    w2.notify(
        "task_done",
        json!({"cookie": old_cookie, "outargs": {"counter": 1}}),
    )
    .await;
    w2.notify(
        "task_done",
        json!({"cookie": t[1], "outargs": {"counter": 6}}),
    )
    .await;
    assert_eq!(
        c.notification("job_done").await,
        json!({"job_id": ja, "outargs": {"counter": 6}})
    );
    assert_eq!(s.backend.disconnects(), vec!["w1".to_string()]);
    s.handle.shutdown().await;
}

#[tokio::test]
async fn shutdown_closes_connections_and_runs_disconnect_processing() {
    let s = TestServer::start().await;
    let mut w = s.login("theEmployee").await;
    w.announce("w1", "add", 1).await;
    let mut c = s.login("theCustomer").await;
    let backend = s.backend.clone();
    let addr = s.addr;
    s.handle.shutdown().await;
    w.expect_eof().await;
    c.expect_eof().await;
    assert_eq!(backend.disconnects(), vec!["w1".to_string()]);
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}
