//! Worker behaviour (docs/PROTOCOL.md C73, C85–C93, §12.13–§12.15) against a scripted server peer.

mod support;

use std::sync::Arc;
use std::time::Duration;

use jobcenter::{
    default_workername, Action, ClientError, Reconnect, Subprocess, WorkOutcome, Worker,
    WORK_CONNECTION_CLOSED, WORK_PING_TIMEOUT,
};
use serde_json::{json, Value};
use support::{Conn, Script};

async fn worker(s: &Script) -> (Worker, Conn) {
    worker_cfg(s, s.config("theEmployee", "doesThings")).await
}

async fn worker_cfg(s: &Script, cfg: jobcenter::ClientConfig) -> (Worker, Conn) {
    let (w, conn) = tokio::join!(Worker::connect(cfg), s.accept_authed());
    (w.expect("connect"), conn.0)
}

/// Announce `action` while the server accepts it; returns the announce params.
async fn announce_ok(w: &Worker, c: &mut Conn, action: Action) -> Value {
    let server = async {
        let (id, p) = c.expect_call("announce").await;
        c.reply(&id, json!([true, "success"])).await;
        p
    };
    let (r, p) = tokio::join!(w.announce(action), server);
    r.expect("announce");
    p
}

/// Offer a task and answer get_task; returns the task_done outargs.
async fn run_task(c: &mut Conn, action: &str, job_id: i64, inargs: Value, env: Value) -> Value {
    c.notify(
        "task_ready",
        json!({"actionname": action, "job_id": job_id}),
    )
    .await;
    let (id, p) = c.expect_call("get_task").await;
    assert_eq!(p, json!({"actionname": action, "job_id": job_id}));
    let cookie = format!("cookie-{job_id}");
    c.reply(&id, json!([job_id, cookie, inargs, env])).await;
    let done = c.expect_notification("task_done").await;
    assert_eq!(done["cookie"], cookie);
    done["outargs"].clone()
}

#[tokio::test]
async fn c85_announce_params_and_default_workername() {
    let s = Script::bind().await;
    let (w, mut c) = worker(&s).await;
    let p = announce_ok(
        &w,
        &mut c,
        Action::new("add").sync(|_| Ok::<_, String>(json!({}))),
    )
    .await;
    assert_eq!(
        p,
        json!({"workername": default_workername("theEmployee"), "actionname": "add",
               "slotgroup": null, "slots": null})
    );
    let wn = p["workername"].as_str().unwrap();
    assert!(wn.starts_with("theEmployee "));
    assert!(wn.ends_with(&format!(" {}", std::process::id())));
    let p = announce_ok(
        &w,
        &mut c,
        Action::new("mul")
            .slots(3)
            .filter(json!({"k": "v"}))
            .run_async(|_| async { Ok::<_, String>(json!({})) }),
    )
    .await;
    assert_eq!(p["slots"], 3);
    assert_eq!(p["filter"], json!({"k": "v"}));
}

#[tokio::test]
async fn c86_announce_refused_and_twice() {
    let s = Script::bind().await;
    let (w, mut c) = worker(&s).await;
    let server = async {
        let (id, _) = c.expect_call("announce").await;
        c.reply(
            &id,
            json!([
                false,
                "DBD::Pg::st execute failed: ERROR:  no action named nosuch."
            ]),
        )
        .await;
        c
    };
    let (r, mut c) = tokio::join!(
        w.announce(Action::new("nosuch").sync(|_| Ok::<_, String>(json!({})))),
        server
    );
    match r.unwrap_err() {
        ClientError::Announce(m) => assert!(m.contains("no action named nosuch."), "{m}"),
        other => panic!("{other:?}"),
    }
    assert!(w.actions().is_empty());
    announce_ok(
        &w,
        &mut c,
        Action::new("add").sync(|_| Ok::<_, String>(json!({}))),
    )
    .await;
    let e = w
        .announce(Action::new("add").sync(|_| Ok::<_, String>(json!({}))))
        .await
        .unwrap_err();
    assert_eq!(e.to_string(), "already have action add");
    // Nothing was sent for the local refusal: the next frame is this withdraw.
    let server = async {
        let (id, p) = c.expect_call("withdraw").await;
        assert_eq!(p, json!({"actionname": "add"}));
        c.reply(&id, json!(1)).await;
    };
    let (r, ()) = tokio::join!(w.withdraw("add"), server);
    r.unwrap();
    assert!(w.withdraw("add").await.is_err());
}

#[tokio::test]
async fn c87_empty_get_task_does_nothing_more() {
    let s = Script::bind().await;
    let (w, mut c) = worker(&s).await;
    announce_ok(
        &w,
        &mut c,
        Action::new("add").sync(|_| Ok::<_, String>(json!({"x": 1}))),
    )
    .await;
    c.notify("task_ready", json!({"actionname": "add", "job_id": 42}))
        .await;
    let (id, p) = c.expect_call("get_task").await;
    assert_eq!(p, json!({"actionname": "add", "job_id": 42}));
    c.reply(&id, json!([])).await;
    // Offers for actions we never announced are ignored (no get_task).
    c.notify("task_ready", json!({"actionname": "other", "job_id": 43}))
        .await;
    c.request("srv-1", "ping", json!({})).await;
    assert_eq!(c.expect_result("srv-1").await, json!("pong!"));
}

#[tokio::test]
async fn c73_poll_offer_id_string_echoed_unchanged() {
    let s = Script::bind().await;
    let (w, mut c) = worker(&s).await;
    announce_ok(
        &w,
        &mut c,
        Action::new("add").sync(|t| Ok::<_, String>(json!({"j": t.job_id}))),
    )
    .await;
    let token = "please_add_7";
    c.notify("task_ready", json!({"actionname": "add", "job_id": token}))
        .await;
    let (id, p) = c.expect_call("get_task").await;
    assert_eq!(p["job_id"], json!(token));
    c.reply(&id, json!([27, "ck", {}, {}])).await;
    let done = c.expect_notification("task_done").await;
    assert_eq!(done, json!({"cookie": "ck", "outargs": {"j": 27}}));
}

#[tokio::test]
async fn c88_sync_errors_panics_and_empty_results() {
    let s = Script::bind().await;
    let (w, mut c) = worker(&s).await;
    let action = Action::new("x").sync(|t| match t.inargs["mode"].as_str() {
        Some("err") => Err("worker callback failed on purpose\n".to_string()),
        Some("panic") => panic!("kaboom"),
        Some("none") => Ok(Value::Null),
        Some("scalar") => Ok(json!(5)),
        _ => Ok(json!({"ok": true})),
    });
    announce_ok(&w, &mut c, action).await;
    let cases = [
        (
            "err",
            json!({"error": "worker callback failed on purpose\n"}),
        ),
        ("panic", json!({"error": "kaboom"})),
        ("none", json!({"error": "no result"})),
        ("scalar", json!({"error": "callback returned no object"})),
        ("ok", json!({"ok": true})),
    ];
    for (i, (mode, want)) in cases.into_iter().enumerate() {
        let got = run_task(&mut c, "x", i as i64 + 1, json!({"mode": mode}), json!({})).await;
        assert_eq!(got, want, "mode {mode}");
    }
    assert!(w.client().is_connected());
}

#[tokio::test]
async fn c89_async_mode_and_c90_addenv() {
    let s = Script::bind().await;
    let (w, mut c) = worker(&s).await;
    announce_ok(
        &w,
        &mut c,
        Action::new("square")
            .addenv(true)
            .run_async(|t| async move {
                tokio::task::yield_now().await;
                let r = t.inargs["root"].as_i64().ok_or("no root")?;
                Ok::<_, String>(json!({"square": r * r, "env": t.env}))
            }),
    )
    .await;
    announce_ok(
        &w,
        &mut c,
        Action::new("noenv")
            .run_async(|t| async move { Ok::<_, String>(json!({"has_env": t.env.is_some()})) }),
    )
    .await;
    let got = run_task(&mut c, "square", 1, json!({"root": 3}), json!({"tries": 1})).await;
    assert_eq!(got, json!({"square": 9, "env": {"tries": 1}}));
    let got = run_task(&mut c, "square", 2, json!({}), json!({})).await;
    assert_eq!(got, json!({"error": "no root"}));
    let got = run_task(&mut c, "noenv", 3, json!({}), json!({"tries": 1})).await;
    assert_eq!(got, json!({"has_env": false}));
    announce_ok(
        &w,
        &mut c,
        Action::new("early_panic").run_async(|t| {
            if t.inargs.get("boom").is_some() {
                panic!("before the future");
            }
            async { Ok::<_, String>(json!({})) }
        }),
    )
    .await;
    let got = run_task(&mut c, "early_panic", 9, json!({"boom": 1}), json!({})).await;
    assert_eq!(got, json!({"error": "before the future"}));
    // A panic while the future is polled (after it was suspended once) is the task's error
    // too, and the worker goes on.
    announce_ok(
        &w,
        &mut c,
        Action::new("late_panic").run_async(|_| async {
            tokio::task::yield_now().await;
            if true {
                panic!("inside the future");
            }
            Ok::<_, String>(json!({}))
        }),
    )
    .await;
    let got = run_task(&mut c, "late_panic", 10, json!({}), json!({})).await;
    assert_eq!(got, json!({"error": "inside the future"}));
    let got = run_task(&mut c, "noenv", 11, json!({}), json!({})).await;
    assert_eq!(got, json!({"has_env": false}));
}

#[tokio::test]
async fn c91_subprocess_mode_with_undo() {
    let s = Script::bind().await;
    let (w, mut c) = worker(&s).await;
    let echo = Subprocess::new("sh")
        .arg("-c")
        .arg(r#"read -r x; printf '{"got":%s,"id":"%s"}' "$x" "$JOBCENTER_JOB_ID""#);
    announce_ok(
        &w,
        &mut c,
        Action::new("echo").addenv(true).subprocess(echo),
    )
    .await;
    let failing = Subprocess::new("sh")
        .arg("-c")
        .arg(r#"cat >/dev/null; echo '{"error":"x"}'"#);
    announce_ok(
        &w,
        &mut c,
        Action::new("fail")
            .subprocess(failing)
            .undo(|t| Ok::<_, String>(json!({"undone": t.job_id}))),
    )
    .await;
    let mut cmd = std::process::Command::new("sh");
    cmd.arg("-c").arg("cat >/dev/null; echo oops >&2; exit 3");
    announce_ok(&w, &mut c, Action::new("crash").subprocess(cmd)).await;
    let garbage = Subprocess::new("sh")
        .arg("-c")
        .arg("cat >/dev/null; echo not-json");
    announce_ok(&w, &mut c, Action::new("garbage").subprocess(garbage)).await;
    let missing = Subprocess::new("/nonexistent/program");
    announce_ok(&w, &mut c, Action::new("missing").subprocess(missing)).await;

    let got = run_task(&mut c, "echo", 5, json!({"a": 1}), json!({"e": 2})).await;
    assert_eq!(
        got,
        json!({"got": {"job_id": 5, "inargs": {"a": 1}, "env": {"e": 2}}, "id": "5"})
    );
    let got = run_task(&mut c, "fail", 6, json!({}), json!({})).await;
    assert_eq!(
        got,
        json!({"error": {"msg": "undo failure", "undo": {"undone": 6}, "olderr": "x"}})
    );
    let got = run_task(&mut c, "crash", 7, json!({}), json!({})).await;
    assert_eq!(got, json!({"error": "oops\n"}));
    let got = run_task(&mut c, "garbage", 8, json!({}), json!({})).await;
    assert!(got["error"]
        .as_str()
        .unwrap()
        .starts_with("invalid json from subprocess"));
    let got = run_task(&mut c, "missing", 9, json!({}), json!({})).await;
    assert!(
        got["error"].as_str().unwrap().starts_with("cannot start"),
        "{got}"
    );
}

#[tokio::test]
async fn c92_pings_answered_while_a_sync_handler_runs() {
    let s = Script::bind().await;
    let (w, mut c) = worker(&s).await;
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let (started_tx, mut started_rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let release_rx = Arc::new(std::sync::Mutex::new(release_rx));
    announce_ok(
        &w,
        &mut c,
        Action::new("slow").sync(move |_| {
            let _ = started_tx.send(());
            let rx = release_rx.lock().map_err(|_| "poisoned")?;
            rx.recv().map_err(|_| "no release")?;
            Ok::<_, &str>(json!({"slow": "done"}))
        }),
    )
    .await;
    c.notify("task_ready", json!({"actionname": "slow", "job_id": 1}))
        .await;
    let (id, _) = c.expect_call("get_task").await;
    c.reply(&id, json!([1, "ck", {}, {}])).await;
    started_rx.recv().await.unwrap();
    c.request("srv-ping", "ping", json!({})).await;
    assert_eq!(c.expect_result("srv-ping").await, json!("pong!"));
    assert_eq!(w.in_flight(), 1);
    release_tx.send(()).unwrap();
    let done = c.expect_notification("task_done").await;
    assert_eq!(done["outargs"], json!({"slow": "done"}));
}

#[tokio::test]
async fn c93_work_returns_91_when_the_server_closes() {
    let s = Script::bind().await;
    let (w, c) = worker(&s).await;
    let work = tokio::spawn({
        let w = w.clone();
        async move { w.work().await }
    });
    drop(c);
    let code = tokio::time::timeout(Duration::from_secs(5), work)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(code, WorkOutcome::ConnectionLost);
    assert_eq!(code.exit_code(), WORK_CONNECTION_CLOSED);
}

#[tokio::test]
async fn c93_work_returns_92_without_pings_and_closes() {
    let s = Script::bind().await;
    let cfg = s
        .config("theEmployee", "doesThings")
        .ping_timeout(Duration::from_millis(200));
    let (w, mut c) = worker_cfg(&s, cfg).await;
    let started = std::time::Instant::now();
    let code = w.work().await;
    assert_eq!(code, WorkOutcome::PingTimeout);
    assert_eq!(code.exit_code(), WORK_PING_TIMEOUT);
    assert!(started.elapsed() >= Duration::from_millis(200));
    c.expect_eof().await;
}

#[tokio::test]
async fn c93_pings_keep_work_alive_and_stop_returns_code() {
    let s = Script::bind().await;
    let cfg = s
        .config("theEmployee", "doesThings")
        .ping_timeout(Duration::from_millis(300));
    let (w, mut c) = worker_cfg(&s, cfg).await;
    let work = tokio::spawn({
        let w = w.clone();
        async move { w.work().await }
    });
    // Ping every 100 ms for 1 s (> 3 watchdog periods): work() must keep running.
    for i in 0..10 {
        let id = format!("p{i}");
        c.request(&id, "ping", json!({})).await;
        assert_eq!(c.expect_result(&id).await, json!("pong!"));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!work.is_finished());
    w.stop(7);
    assert_eq!(work.await.unwrap(), WorkOutcome::StopRequested(7));
    assert!(w.client().is_connected(), "stop does not close");
}

#[tokio::test]
async fn shutdown_withdraws_and_drains_in_flight_tasks() {
    let s = Script::bind().await;
    let (w, mut c) = worker(&s).await;
    let gate = Arc::new(tokio::sync::Notify::new());
    let g = gate.clone();
    announce_ok(
        &w,
        &mut c,
        Action::new("wait").run_async(move |_| {
            let g = g.clone();
            async move {
                g.notified().await;
                Ok::<_, String>(json!({"drained": true}))
            }
        }),
    )
    .await;
    c.notify("task_ready", json!({"actionname": "wait", "job_id": 1}))
        .await;
    let (id, _) = c.expect_call("get_task").await;
    c.reply(&id, json!([1, "ck", {}, {}])).await;
    let work = tokio::spawn({
        let w = w.clone();
        async move { w.work().await }
    });
    let shut = tokio::spawn({
        let w = w.clone();
        async move { w.shutdown(Duration::from_secs(5)).await }
    });
    let (id, p) = c.expect_call("withdraw").await;
    assert_eq!(p, json!({"actionname": "wait"}));
    c.reply(&id, json!(1)).await;
    // A new offer while draining is not claimed.
    c.notify("task_ready", json!({"actionname": "wait", "job_id": 2}))
        .await;
    gate.notify_one();
    let done = c.expect_notification("task_done").await;
    assert_eq!(done["outargs"], json!({"drained": true}));
    assert_eq!(shut.await.unwrap(), 0);
    assert_eq!(work.await.unwrap(), WorkOutcome::Stopped);
    c.expect_eof().await;
}

#[tokio::test]
async fn shutdown_deadline_reports_abandoned_tasks() {
    let s = Script::bind().await;
    let (w, mut c) = worker(&s).await;
    announce_ok(
        &w,
        &mut c,
        Action::new("hang").run_async(|_| async {
            std::future::pending::<()>().await;
            Ok::<_, String>(json!({}))
        }),
    )
    .await;
    c.notify("task_ready", json!({"actionname": "hang", "job_id": 1}))
        .await;
    let (id, _) = c.expect_call("get_task").await;
    c.reply(&id, json!([1, "ck", {}, {}])).await;
    while w.in_flight() == 0 {
        tokio::task::yield_now().await;
    }
    let shut = tokio::spawn({
        let w = w.clone();
        async move { w.shutdown(Duration::from_millis(200)).await }
    });
    let (id, _) = c.expect_call("withdraw").await;
    c.reply(&id, json!(1)).await;
    assert_eq!(shut.await.unwrap(), 1);
    c.expect_eof().await;
}

#[tokio::test]
async fn reconnect_recreates_slotgroups_and_reannounces() {
    let s = Script::bind().await;
    let (w, mut c) = worker(&s).await;
    w.set_reconnect(Some(Reconnect {
        initial: Duration::from_millis(20),
        max: Duration::from_millis(100),
    }));
    let server = async {
        let (id, _) = c.expect_call("create_slotgroup").await;
        c.reply(&id, json!("")).await;
        c
    };
    let (r, mut c) = tokio::join!(w.client().create_slotgroup("g", Some(2)), server);
    r.unwrap();
    let p1 = announce_ok(
        &w,
        &mut c,
        Action::new("add")
            .slotgroup("g")
            .sync(|t| Ok::<_, String>(json!({"j": t.job_id}))),
    )
    .await;
    let work = tokio::spawn({
        let w = w.clone();
        async move { w.work().await }
    });
    drop(c); // the server goes away
    let (mut c2, _hello) = s.accept_authed().await;
    let (id, p) = c2.expect_call("create_slotgroup").await;
    assert_eq!(p, json!({"name": "g", "slots": 2}));
    c2.reply(&id, json!("")).await;
    let (id, p2) = c2.expect_call("announce").await;
    assert_eq!(p1, p2);
    c2.reply(&id, json!([true, "success"])).await;
    let got = run_task(&mut c2, "add", 11, json!({}), json!({})).await;
    assert_eq!(got, json!({"j": 11}));
    w.stop(3);
    assert_eq!(work.await.unwrap(), WorkOutcome::StopRequested(3));
}

#[derive(serde::Deserialize, serde::Serialize, Debug, PartialEq)]
struct AddIn {
    counter: i64,
    #[serde(default = "one")]
    step: i64,
}

fn one() -> i64 {
    1
}

#[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
struct AddOut {
    counter: i64,
}

/// Typed async and sync handlers: inargs decoded (serde defaults apply), output encoded,
/// undecodable inargs and handler errors become error objects (the handler is not called).
#[tokio::test]
async fn typed_handlers_decode_encode_and_report_bad_inargs() {
    let s = Script::bind().await;
    let (w, mut c) = worker(&s).await;
    let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let n = calls.clone();
    announce_ok(
        &w,
        &mut c,
        Action::typed("add", move |i: AddIn| {
            n.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            async move {
                if i.counter < 0 {
                    return Err(format!("negative counter {}", i.counter));
                }
                Ok(AddOut {
                    counter: i.counter + i.step,
                })
            }
        }),
    )
    .await;
    announce_ok(
        &w,
        &mut c,
        Action::typed_sync("addsync", |i: AddIn| {
            Ok::<_, std::convert::Infallible>(AddOut {
                counter: i.counter + i.step,
            })
        })
        .slots(2),
    )
    .await;
    let got = run_task(
        &mut c,
        "add",
        1,
        json!({"counter": 4, "step": 3}),
        json!({}),
    )
    .await;
    assert_eq!(got, json!({"counter": 7}));
    let got = run_task(&mut c, "add", 2, json!({"counter": 4}), json!({})).await;
    assert_eq!(got, json!({"counter": 5}), "serde default for step");
    let got = run_task(&mut c, "add", 3, json!({"counter": -1}), json!({})).await;
    assert_eq!(got, json!({"error": "negative counter -1"}));
    let got = run_task(&mut c, "add", 4, json!({"counter": "x"}), json!({})).await;
    let text = got["error"].as_str().unwrap_or_default();
    assert!(text.starts_with("invalid inargs for add: "), "{got}");
    assert!(text.contains("invalid type"), "{got}");
    assert_eq!(
        calls.load(std::sync::atomic::Ordering::SeqCst),
        3,
        "the handler is not called for undecodable inargs"
    );
    let got = run_task(
        &mut c,
        "addsync",
        5,
        json!({"counter": 1, "step": 1}),
        json!({}),
    )
    .await;
    assert_eq!(got, json!({"counter": 2}));
    let got = run_task(&mut c, "addsync", 6, json!({"step": 1}), json!({})).await;
    let text = got["error"].as_str().unwrap_or_default();
    assert!(
        text.starts_with("invalid inargs for addsync: ")
            && text.contains("missing field `counter`"),
        "{got}"
    );
}

/// A typed subprocess gets its inargs re-encoded from the input type and must print output
/// of the output type.
#[tokio::test]
async fn typed_subprocess_checks_both_directions() {
    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    struct Stdin {
        job_id: i64,
        inargs: AddIn,
    }
    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    struct Echo {
        got: Stdin,
    }
    let s = Script::bind().await;
    let (w, mut c) = worker(&s).await;
    let echo = Subprocess::new("sh")
        .arg("-c")
        .arg(r#"read -r x; printf '{"got":%s}' "$x""#);
    announce_ok(
        &w,
        &mut c,
        Action::typed_subprocess::<AddIn, Echo>("echo", echo),
    )
    .await;
    let wrong = Subprocess::new("sh")
        .arg("-c")
        .arg(r#"cat >/dev/null; echo '{"nope":1}'"#);
    announce_ok(
        &w,
        &mut c,
        Action::new("wrong").subprocess_typed::<AddIn, AddOut>(wrong),
    )
    .await;
    let got = run_task(
        &mut c,
        "echo",
        5,
        json!({"counter": 2, "extra": true}),
        json!({}),
    )
    .await;
    // Unknown members are dropped and defaults filled in on the way to the child.
    assert_eq!(
        got,
        json!({"got": {"job_id": 5, "inargs": {"counter": 2, "step": 1}}})
    );
    let got = run_task(&mut c, "echo", 6, json!({"counter": []}), json!({})).await;
    let text = got["error"].as_str().unwrap_or_default();
    assert!(text.starts_with("invalid inargs for echo: "), "{got}");
    let got = run_task(&mut c, "wrong", 7, json!({"counter": 1}), json!({})).await;
    let text = got["error"].as_str().unwrap_or_default();
    assert!(
        text.starts_with("invalid outargs from the wrong subprocess: "),
        "{got}"
    );
}
