//! Client behaviour (docs/PROTOCOL.md C74–C84, C94 and the client side of C1–C24) against a
//! scripted server peer on loopback.

mod support;

use std::time::Duration;

use jobcenter::{Client, ClientConfig, ClientError, JobStatus};
use serde_json::{json, Value};
use support::Script;

async fn connected(s: &Script) -> (Client, support::Conn) {
    let cfg = s.config("theCustomer", "wantsThings");
    let (client, conn) = tokio::join!(Client::connect(cfg), s.accept_authed());
    (client.expect("connect"), conn.0)
}

#[test]
fn c74_constructor_defaults() {
    let c = ClientConfig::default();
    assert_eq!(c.address, "127.0.0.1");
    assert_eq!(c.port, 6522);
    assert_eq!(c.method, "password");
    assert_eq!(c.timeout, Duration::from_secs(60));
    assert_eq!(c.ping_timeout, Duration::from_secs(300));
    assert!(!c.tls);
    assert_eq!(c.max_frame, 16 * 1024 * 1024);
    assert_eq!(c.default_job_timeout(), Duration::from_secs(300));
}

#[tokio::test]
async fn c75_missing_token_or_who_raise_before_connecting() {
    // Port 1: nothing listens there; validation must fail before any connect attempt.
    let cfg = ClientConfig::new("", "").port(1);
    assert!(matches!(
        Client::connect(cfg).await,
        Err(ClientError::MissingToken)
    ));
    let cfg = ClientConfig::new("", "tok").port(1);
    let err = Client::connect(cfg).await.unwrap_err();
    assert!(matches!(err, ClientError::MissingWho));
    assert_eq!(err.to_string(), "no who?");
    assert_eq!(ClientError::MissingToken.to_string(), "no token?");
}

#[tokio::test]
async fn c75_hello_false_is_auth_error_and_closes() {
    let s = Script::bind().await;
    let cfg = s.config("theCustomer", "wrong");
    let server = async {
        let mut c = s.accept().await;
        c.greet().await;
        let (id, p) = c.expect_call("hello").await;
        assert_eq!(
            p,
            json!({"who":"theCustomer","method":"password","token":"wrong"})
        );
        c.reply(&id, json!([false, "you're not welcome!"])).await;
        c.expect_eof().await;
    };
    let (r, ()) = tokio::join!(Client::connect(cfg), server);
    match r.unwrap_err() {
        ClientError::Auth(m) => assert_eq!(m, "you're not welcome!"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn hello_error_response_fails_the_handshake() {
    let s = Script::bind().await;
    let cfg = s.config("theCustomer", "x");
    let server = async {
        let mut c = s.accept().await;
        c.greet().await;
        let (id, _) = c.expect_call("hello").await;
        c.reply_error(&id, -32001, "Method threw error: no token?")
            .await;
        c.expect_eof().await;
    };
    let (r, ()) = tokio::join!(Client::connect(cfg), server);
    let e = r.unwrap_err();
    assert_eq!(
        e.to_string(),
        "hello returned error Method threw error: no token? (-32001)"
    );
}

#[tokio::test]
async fn c31_wrong_greeting_version_refused_no_hello_and_closed() {
    let s = Script::bind().await;
    let cfg = s.config("theCustomer", "wantsThings");
    let server = async {
        let mut c = s.accept().await;
        c.greet_version("1.0").await;
        // No hello may be sent; the client closes the socket (Q45 fixed).
        c.expect_eof().await;
    };
    let (r, ()) = tokio::join!(Client::connect(cfg), server);
    match r.unwrap_err() {
        ClientError::WrongVersion(v) => assert_eq!(v, "1.0"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn c32_handshake_timeout() {
    let s = Script::bind().await;
    let cfg = s
        .config("theCustomer", "wantsThings")
        .timeout(Duration::from_millis(200));
    let server = async {
        let mut c = s.accept().await; // never greets
        c.expect_eof().await;
    };
    let started = std::time::Instant::now();
    let (r, ()) = tokio::join!(Client::connect(cfg), server);
    assert!(matches!(r, Err(ClientError::HandshakeTimeout)), "{r:?}");
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn connect_refused_is_typed() {
    let s = Script::bind().await;
    let port = s.port;
    drop(s);
    let r = Client::connect(ClientConfig::new("a", "b").port(port)).await;
    assert!(matches!(r, Err(ClientError::Connection { .. })), "{r:?}");
    // The I/O error is kept as the source.
    let e = r
        .err()
        .map(|e| std::error::Error::source(&e).map(ToString::to_string));
    assert!(matches!(e, Some(Some(_))), "{e:?}");
}

#[tokio::test]
async fn c77_refused_create_job_and_rpc_error_give_error_outargs() {
    let s = Script::bind().await;
    let (client, mut c) = connected(&s).await;
    let server = async {
        let (id, p) = c.expect_call("create_job").await;
        assert_eq!(p["wfname"], "nosuchworkflow");
        c.reply(
            &id,
            json!([
                null,
                "ERROR:  no workflow named nosuchworkflow\nCONTEXT:  x"
            ]),
        )
        .await;
        let (id, _) = c.expect_call("create_job").await;
        c.reply_error(
            &id,
            -32001,
            "Method threw error: inargs should be a hashref",
        )
        .await;
        c
    };
    let client2 = client.clone();
    let calls = async move {
        let a = client2.call("nosuchworkflow", json!({})).await.unwrap();
        let b = client2.call("x", json!({})).await.unwrap();
        (a, b)
    };
    let ((a, b), _c) = tokio::join!(calls, server);
    assert_eq!(a.job_id, None);
    assert!(a.is_error());
    assert_eq!(
        a.outargs,
        json!({"error": "ERROR:  no workflow named nosuchworkflow\nCONTEXT:  x"})
    );
    assert_eq!(b.job_id, None);
    assert_eq!(
        b.outargs,
        json!({"error": "Method threw error: inargs should be a hashref (-32001)"})
    );
}

#[tokio::test]
async fn c78_create_job_params_defaults_and_options() {
    let s = Script::bind().await;
    let (client, mut c) = connected(&s).await;
    let server = async {
        let (id, p) = c.expect_call("create_job").await;
        // Default timeout 5 × 60 s, vtag always present, no clenv/reqauth keys.
        assert_eq!(
            p,
            json!({"wfname":"w","inargs":{},"vtag":null,"timeout":300})
        );
        c.reply(&id, json!([1, null])).await;
        c.notify("job_done", json!({"job_id": 1, "outargs": {}}))
            .await;
        let (id, p) = c.expect_call("create_job").await;
        assert_eq!(
            p,
            json!({"wfname":"w","inargs":{"a":1},"vtag":"beta:stable","timeout":2.5,
                   "clenv":{"x":1},"reqauth":{"t":"k"}})
        );
        c.reply(&id, json!(["2", null])).await; // a job id as a decimal string
        c.notify("job_done", json!({"job_id": "2", "outargs": {"ok": true}}))
            .await;
        c
    };
    let cl = client.clone();
    let calls = async move {
        let a = cl.call("w", json!({})).await.unwrap();
        let b = cl
            .job("w")
            .inargs(json!({"a": 1}))
            .vtag("beta:stable")
            .timeout(Duration::from_millis(2500))
            .clenv(json!({"x": 1}))
            .reqauth(json!({"t": "k"}))
            .call()
            .await
            .unwrap();
        (a, b)
    };
    let ((a, b), _c) = tokio::join!(calls, server);
    assert_eq!(a.job_id, Some(1));
    assert_eq!(b.job_id, Some(2));
    assert_eq!(b.outargs, json!({"ok": true}));
}

#[tokio::test]
async fn local_argument_checks_send_nothing() {
    let s = Script::bind().await;
    let (client, mut c) = connected(&s).await;
    for r in [
        client.call("", json!({})).await,
        client.call("w", json!([1])).await,
        client.job("w").clenv(json!("x")).call().await,
    ] {
        assert!(matches!(r, Err(ClientError::Invalid(_))), "{r:?}");
    }
    assert!(client.find_jobs("").await.is_err());
    assert!(client.check_if_lock_exists("", "v").await.is_err());
    assert!(client.get_api_status("").await.is_err());
    // Nothing reached the server: the next frame is this ping.
    let ping = tokio::spawn({
        let client = client.clone();
        async move { client.ping().await }
    });
    let (id, _) = c.expect_call("ping").await;
    c.reply(&id, json!("pong?")).await;
    assert!(ping.await.unwrap());
}

#[tokio::test]
async fn c94_job_done_twice_unknown_and_early_are_handled() {
    let s = Script::bind().await;
    let (client, mut c) = connected(&s).await;
    let server = async {
        let (id, _) = c.expect_call("create_job").await;
        // An unknown job first, then (misbehaving server) this job's job_done BEFORE its
        // create_job result, then twice more.
        c.notify("job_done", json!({"job_id": 999, "outargs": {"x": 0}}))
            .await;
        c.notify("job_done", json!({"job_id": 5, "outargs": {"n": 1}}))
            .await;
        c.reply(&id, json!([5, null])).await;
        c.notify("job_done", json!({"job_id": 5, "outargs": {"n": 2}}))
            .await;
        c.notify("job_done", json!({"job_id": 5, "outargs": {"n": 3}}))
            .await;
        // Garbage-ish notifications must not disturb anything.
        c.notify("job_done", json!({"job_id": "abc"})).await;
        c.notify("no_such_notification", json!({})).await;
        // The unknown notification gets a -32601 with id null (the reference's quirk); it
        // may come before or after the next create_job.
        let mut others = Vec::new();
        let id = loop {
            let v = c.recv().await.expect("frame");
            if v["method"] == "create_job" {
                break v["id"].clone();
            }
            others.push(v);
        };
        c.reply(&id, json!([6, null])).await;
        if others.is_empty() {
            others.push(c.recv().await.expect("frame"));
        }
        assert_eq!(others.len(), 1);
        assert_eq!(others[0]["error"]["code"], -32601);
        assert_eq!(others[0]["id"], Value::Null);
        c.notify("job_done", json!({"job_id": 6, "outargs": {"n": 6}}))
            .await;
        c
    };
    let cl = client.clone();
    let calls = async move {
        let a = cl.call("w", json!({})).await.unwrap();
        let b = cl.call("w", json!({})).await.unwrap();
        (a, b)
    };
    let ((a, b), _c) = tokio::join!(calls, server);
    // Delivered once; the rpc layer runs notification handlers as separate tasks, so which
    // duplicate wins is not specified (a real server sends the same outargs each time).
    assert!(
        [json!({"n": 1}), json!({"n": 2}), json!({"n": 3})].contains(&a.outargs),
        "{}",
        a.outargs
    );
    assert_eq!(b.outargs, json!({"n": 6}));
    assert_eq!(client.waiting_jobs(), 0);
    assert!(client.is_connected());
}

#[tokio::test]
async fn c80_notify_registered_before_request_job_done_first() {
    let s = Script::bind().await;
    let (client, mut c) = connected(&s).await;
    let server = async {
        let (id, p) = c.expect_call("get_job_status").await;
        assert_eq!(p, json!({"job_id": 12, "notify": true}));
        // The race of §7.6: job_done overtakes the [null,null] answer.
        c.notify("job_done", json!({"job_id": 12, "outargs": {"out": 1}}))
            .await;
        c.reply(&id, json!([null, null])).await;
        c.notify("job_done", json!({"job_id": 12, "outargs": {"out": 2}}))
            .await;
        let (id, _) = c.expect_call("get_job_status").await;
        c.reply(&id, json!([13, {"out": 3}])).await;
        c.notify("job_done", json!({"job_id": 13, "outargs": {"out": 4}}))
            .await;
        c
    };
    let cl = client.clone();
    let calls = async move {
        let (st, comp) = cl.get_job_status_notify(12).await.unwrap();
        assert_eq!(st, JobStatus::Running);
        let out = comp.expect("completion").await.unwrap();
        let (st2, comp2) = cl.get_job_status_notify(13).await.unwrap();
        (out, st2, comp2.is_none())
    };
    let ((out, st2, none), _c) = tokio::join!(calls, server);
    assert!(
        out == json!({"out": 1}) || out == json!({"out": 2}),
        "delivered exactly once: {out}"
    );
    assert_eq!(st2, JobStatus::Finished(json!({"out": 3})));
    assert!(none);
    assert_eq!(client.waiting_jobs(), 0);
}

#[tokio::test]
async fn c79_get_job_status_shapes() {
    let s = Script::bind().await;
    let (client, mut c) = connected(&s).await;
    let server = async {
        for result in [
            json!([null, null]),
            json!([6, {"output": 15}]),
            json!([null, {"error": "no job 99"}]),
            json!([null, "ERROR:  value out of range"]),
        ] {
            let (id, p) = c.expect_call("get_job_status").await;
            assert_eq!(p["notify"], false);
            c.reply(&id, result).await;
        }
        let (id, _) = c.expect_call("get_job_status").await;
        c.reply_error(&id, -32001, "Method threw error: invalid abc")
            .await;
        c
    };
    let cl = client.clone();
    let calls = async move {
        let mut v = Vec::new();
        for _ in 0..5 {
            v.push(cl.get_job_status(6).await);
        }
        v
    };
    let (v, _c) = tokio::join!(calls, server);
    assert_eq!(v[0].as_ref().unwrap(), &JobStatus::Running);
    assert_eq!(
        v[1].as_ref().unwrap(),
        &JobStatus::Finished(json!({"output": 15}))
    );
    assert_eq!(v[2].as_ref().unwrap(), &JobStatus::Unknown);
    assert!(matches!(&v[3], Err(ClientError::Backend(m)) if m.contains("out of range")));
    assert!(matches!(&v[4], Err(ClientError::Rpc { code: -32001, .. })));
}

#[tokio::test]
async fn c81_find_jobs_sends_text_and_detects_error_shape() {
    let s = Script::bind().await;
    let (client, mut c) = connected(&s).await;
    let server = async {
        let (id, p) = c.expect_call("find_jobs").await;
        assert_eq!(p, json!({"filter": "{\"k\":\"v\"}"}));
        c.reply(&id, json!(["2", 3])).await;
        let (id, p) = c.expect_call("find_jobs").await;
        assert_eq!(p, json!({"filter": "{}"}));
        c.reply(
            &id,
            json!([null, "ERROR:  using an empty filter is not allowed"]),
        )
        .await;
        let (id, _) = c.expect_call("find_jobs").await;
        c.reply(&id, json!([])).await;
        c
    };
    let cl = client.clone();
    let calls = async move {
        (
            cl.find_jobs(json!({"k": "v"})).await,
            cl.find_jobs("{}").await,
            cl.find_jobs(r#"{"k":"none"}"#).await,
        )
    };
    let ((a, b, e), _c) = tokio::join!(calls, server);
    assert_eq!(a.unwrap(), vec![2, 3]);
    match b.unwrap_err() {
        ClientError::Backend(m) => assert!(m.contains("empty filter"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert!(e.unwrap().is_empty());
}

#[tokio::test]
async fn c82_check_if_lock_exists_values_and_timeout() {
    let s = Script::bind().await;
    let cfg = s
        .config("theCustomer", "wantsThings")
        .timeout(Duration::from_millis(300));
    let (client, conn) = tokio::join!(Client::connect(cfg), s.accept_authed());
    let (client, mut c) = (client.unwrap(), conn.0);
    let server = async {
        for r in [json!(true), json!(false), json!(null)] {
            let (id, p) = c.expect_call("check_if_lock_exists").await;
            assert_eq!(p, json!({"locktype": "slot", "lockvalue": "sleutel"}));
            c.reply(&id, r).await;
        }
        // The reference may never answer (§7.8): the client must time out.
        let (_id, _) = c.expect_call("check_if_lock_exists").await;
        c
    };
    let cl = client.clone();
    let calls = async move {
        let mut v = Vec::new();
        for _ in 0..4 {
            v.push(cl.check_if_lock_exists("slot", "sleutel").await);
        }
        v
    };
    let (v, _c) = tokio::join!(calls, server);
    assert_eq!(v[0].as_ref().unwrap(), &Some(true));
    assert_eq!(v[1].as_ref().unwrap(), &Some(false));
    assert_eq!(v[2].as_ref().unwrap(), &None);
    assert!(matches!(v[3], Err(ClientError::Timeout)));
    assert!(client.is_connected());
}

#[tokio::test]
async fn c83_ping_true_on_pong_false_and_closed_otherwise() {
    let s = Script::bind().await;
    let (client, mut c) = connected(&s).await;
    let server = async {
        let (id, p) = c.expect_call("ping").await;
        assert_eq!(p, json!({}));
        c.reply(&id, json!("pong?")).await;
        let (id, _) = c.expect_call("ping").await;
        c.reply(&id, json!("nope")).await;
        c.expect_eof().await;
    };
    let cl = client.clone();
    let calls = async move { (cl.ping().await, cl.ping().await) };
    let ((a, b), ()) = tokio::join!(calls, server);
    assert!(a);
    assert!(!b);
    assert!(!client.is_connected());
}

#[tokio::test]
async fn c84_create_slotgroup_and_api_status() {
    let s = Script::bind().await;
    let (client, mut c) = connected(&s).await;
    let server = async {
        let (id, p) = c.expect_call("create_slotgroup").await;
        assert_eq!(p, json!({"name": "g", "slots": 2}));
        c.reply(&id, json!("")).await;
        let (id, p) = c.expect_call("create_slotgroup").await;
        assert_eq!(p, json!({"name": "g", "slots": null}));
        c.reply_error(
            &id,
            -32001,
            "Method threw error: slotgroup g already exists",
        )
        .await;
        let (id, p) = c.expect_call("get_api_status").await;
        assert_eq!(p, json!({"what": "stats"}));
        c.reply(&id, json!({"clients": 2, "dead": 0, "workers": 1}))
            .await;
        c
    };
    let cl = client.clone();
    let calls = async move {
        (
            cl.create_slotgroup("g", Some(2)).await,
            cl.create_slotgroup("g", None).await,
            cl.get_api_status("stats").await,
        )
    };
    let ((a, b, st), _c) = tokio::join!(calls, server);
    a.unwrap();
    let e = b.unwrap_err();
    assert!(e.to_string().contains("slotgroup g already exists"), "{e}");
    assert_eq!(st.unwrap()["workers"], 1);
}

#[tokio::test]
async fn waiters_fail_when_the_connection_closes() {
    let s = Script::bind().await;
    let (client, mut c) = connected(&s).await;
    let cl = client.clone();
    let handle = tokio::spawn(async move { cl.call("w", json!({})).await });
    let (id, _) = c.expect_call("create_job").await;
    c.reply(&id, json!([7, null])).await;
    let cl = client.clone();
    let status = tokio::spawn(async move { cl.get_job_status(7).await });
    let _ = c.expect_call("get_job_status").await;
    drop(c); // the server vanishes
    let r = tokio::time::timeout(Duration::from_secs(5), handle)
        .await
        .expect("call must not hang")
        .unwrap();
    assert!(matches!(r, Err(ClientError::Closed)), "{r:?}");
    let r = tokio::time::timeout(Duration::from_secs(5), status)
        .await
        .expect("status must not hang")
        .unwrap();
    assert!(matches!(r, Err(ClientError::Closed)), "{r:?}");
    assert!(!client.is_connected());
    assert!(matches!(
        client.call("w", json!({})).await,
        Err(ClientError::Closed)
    ));
}

#[tokio::test]
async fn garbage_frame_from_server_closes_without_panic() {
    let s = Script::bind().await;
    let (client, mut c) = connected(&s).await;
    let cl = client.clone();
    let handle = tokio::spawn(async move { cl.call("w", json!({})).await });
    let _ = c.expect_call("create_job").await;
    c.send_raw(b"abc:{},").await;
    let r = tokio::time::timeout(Duration::from_secs(5), handle)
        .await
        .expect("no hang")
        .unwrap();
    assert!(matches!(r, Err(ClientError::Closed)), "{r:?}");
    c.expect_eof().await;
}

#[tokio::test]
async fn error_with_data_and_unknown_ids_are_tolerated() {
    let s = Script::bind().await;
    let (client, mut c) = connected(&s).await;
    let server = async {
        let (id, _) = c.expect_call("get_api_status").await;
        // C20: a response for an unknown id is ignored; then an error with `data` (lenient).
        c.send(json!({"jsonrpc":"2.0","id":"nobody","result":1}))
            .await;
        c.send(
            json!({"jsonrpc":"2.0","id":id,"error":{"code":-32001,"message":"m","data":{"x":1}}}),
        )
        .await;
        c
    };
    let cl = client.clone();
    let (r, _c) = tokio::join!(async move { cl.get_api_status("stats").await }, server);
    assert!(
        matches!(r, Err(ClientError::Rpc { code: -32001, .. })),
        "{r:?}"
    );
    assert!(client.is_connected());
}

#[tokio::test]
async fn large_job_done_frames_are_accepted() {
    let s = Script::bind().await;
    let (client, mut c) = connected(&s).await;
    let big = "x".repeat(2_000_000); // beyond the server's 999 999 limit; fine for clients
    let server = async {
        let (id, _) = c.expect_call("create_job").await;
        c.reply(&id, json!([8, null])).await;
        c.notify("job_done", json!({"job_id": 8, "outargs": {"big": big}}))
            .await;
        c
    };
    let cl = client.clone();
    let (r, _c) = tokio::join!(async move { cl.call("w", json!({})).await }, server);
    assert_eq!(
        r.unwrap().outargs["big"].as_str().map(str::len),
        Some(2_000_000)
    );
}

#[tokio::test]
async fn typed_call_helper() {
    #[derive(serde::Serialize)]
    struct In {
        input: i64,
    }
    #[derive(serde::Deserialize, Debug, PartialEq)]
    struct Out {
        output: i64,
    }
    let s = Script::bind().await;
    let (client, mut c) = connected(&s).await;
    let server = async {
        let (id, p) = c.expect_call("create_job").await;
        assert_eq!(p["inargs"], json!({"input": 12}));
        c.reply(&id, json!([6, null])).await;
        c.notify("job_done", json!({"job_id": 6, "outargs": {"output": 15}}))
            .await;
        let (id, _) = c.expect_call("create_job").await;
        c.reply(&id, json!([7, null])).await;
        c.notify(
            "job_done",
            json!({"job_id": 7, "outargs": {"error": {"msg": "boom", "class": "normal"}}}),
        )
        .await;
        let (id, _) = c.expect_call("create_job").await;
        c.reply(&id, json!([null, "no such workflow"])).await;
        let (id, _) = c.expect_call("create_job").await;
        c.reply(&id, json!([8, null])).await;
        c.notify(
            "job_done",
            json!({"job_id": 8, "outargs": {"error": "timeout"}}),
        )
        .await;
        let (id, _) = c.expect_call("create_job").await;
        c.reply(&id, json!([9, null])).await;
        c.notify("job_done", json!({"job_id": 9, "outargs": {"other": 1}}))
            .await;
        c
    };
    let cl = client.clone();
    let calls = async move {
        let mut v: Vec<Result<Out, _>> = Vec::new();
        for input in [12, 0, 1, 2, 3] {
            v.push(cl.call_typed("calladd", &In { input }).await);
        }
        v
    };
    let (mut v, _c) = tokio::join!(calls, server);
    let mut v = v.drain(..);
    assert_eq!(v.next().unwrap().unwrap(), Out { output: 15 });
    match v.next().unwrap() {
        Err(ClientError::JobFailed { job_id, error }) => {
            assert_eq!(job_id, 7);
            assert_eq!(error, json!({"msg": "boom", "class": "normal"}));
        }
        other => panic!("{other:?}"),
    }
    match v.next().unwrap() {
        Err(ClientError::NotCreated { message }) => assert_eq!(message, "no such workflow"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        v.next().unwrap(),
        Err(ClientError::JobTimeout { job_id: 8 })
    ));
    // Outargs of the wrong shape: a JSON error that keeps serde's error as its source.
    match v.next().unwrap() {
        Err(e @ ClientError::Json(_)) => {
            assert!(std::error::Error::source(&e).is_some(), "{e}")
        }
        other => panic!("{other:?}"),
    }
}

/// The client's own JSON-RPC answers to odd server requests (C14–C17, C21, C24): errors
/// without `data`, the connection stays open.
#[tokio::test]
async fn c14_c17_c21_c24_client_answers_bad_server_requests() {
    let s = Script::bind().await;
    let (client, mut c) = connected(&s).await;
    c.send(json!({"jsonrpc":"2.0","id":"x","method":"frobnicate","params":{}}))
        .await;
    assert_eq!(
        c.recv().await.unwrap(),
        json!({"jsonrpc":"2.0","id":"x","error":{"code":-32601,"message":"Method not found."}})
    );
    c.send(json!({"jsonrpc":"2.0","method":"ping","params":{}}))
        .await;
    assert_eq!(
        c.recv().await.unwrap(),
        json!({"jsonrpc":"2.0","id":null,"error":{"code":-32000,"message":"Method is not a notification."}})
    );
    c.send(json!({"jsonrpc":"2.0","id":0,"method":"ping","params":{}}))
        .await;
    let v = c.recv().await.unwrap();
    assert_eq!(
        (v["id"].clone(), v["error"]["code"].clone()),
        (json!(0), json!(-32000))
    );
    c.send(json!({"jsonrpc":"2.0","id":"y","method":"ping"}))
        .await;
    let v = c.recv().await.unwrap();
    assert_eq!(
        v["error"]["message"],
        "Invalid Request: params should be array or object."
    );
    c.send(json!({"jsonrpc":"2.0","id":"z","method":"ping","params":[]}))
        .await;
    let v = c.recv().await.unwrap();
    assert_eq!(v["error"]["message"], "This method expects named params.");
    assert!(v["error"].get("data").is_none());
    c.send(json!({"jsonrpc":"2.0","id":42,"method":"ping","params":{}}))
        .await;
    assert_eq!(
        c.recv().await.unwrap(),
        json!({"jsonrpc":"2.0","id":42,"result":"pong!"})
    );
    assert!(client.is_connected());
}

/// Fatal envelopes from the server (C9–C13) and framing errors (C6, C8) close the client's
/// connection; pending calls fail at once.
#[tokio::test]
async fn c6_c8_c9_c13_fatal_input_from_server_closes() {
    let bad: [&[u8]; 7] = [
        b"2:[],",
        b"16:this is not json,",
        b"39:{\"jsonrpc\":\"1.0\",\"method\":\"x\",\"params\":{}},",
        b"41:{\"jsonrpc\":\"2.0\",\"id\":true,\"result\":1234},",
        b"17:{\"jsonrpc\":\"2.0\"},",
        b"5:{\"a\":1};",
        b"1x:{},",
    ];
    for payload in bad {
        let s = Script::bind().await;
        let (client, mut c) = connected(&s).await;
        let cl = client.clone();
        let pending = tokio::spawn(async move { cl.get_api_status("stats").await });
        let _ = c.expect_call("get_api_status").await;
        c.send_raw(payload).await;
        let r = tokio::time::timeout(Duration::from_secs(5), pending)
            .await
            .expect("no hang")
            .unwrap();
        assert!(
            matches!(r, Err(ClientError::Closed)),
            "{}: {r:?}",
            String::from_utf8_lossy(payload)
        );
        // At most the -32600 notice, then EOF.
        while let Ok(Some(v)) = c.recv_within(Duration::from_secs(5)).await {
            assert_eq!(v["error"]["code"], -32600, "{v}");
        }
        assert!(!client.is_connected());
    }
}
