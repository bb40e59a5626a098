//! Handshake, authentication, JSON-RPC envelope and framing behaviour of a server session,
//! over loopback TCP with a raw netstring client (docs/PROTOCOL.md §3, §5, §6, §7.1–§7.3, §11).

mod common;

use common::{RawClient, TestServer, WAIT};
use jobcenter_server::GREETING_FRAME;
use serde_json::{json, Value};
use std::time::Duration;

fn threw(e: &Value, reason: &str) {
    assert_eq!(e["code"], json!(-32001), "{e}");
    assert_eq!(
        e["message"],
        json!(format!("Method threw error: {reason}")),
        "{e}"
    );
}

/// The connection must close; a -32600 `Invalid Request: …` error may come first.
async fn expect_fatal_close(c: &mut RawClient, reason_prefix: &str) {
    match c.next_within(WAIT).await {
        Ok(None) => {}
        Ok(Some(v)) => {
            assert_eq!(v["id"], Value::Null, "{v}");
            assert_eq!(v["error"]["code"], json!(-32600), "{v}");
            let msg = v["error"]["message"].as_str().unwrap_or_default();
            assert!(
                msg.starts_with(&format!("Invalid Request: {reason_prefix}")),
                "{msg}"
            );
            assert!(v["error"].get("data").is_none());
            c.expect_eof().await;
        }
        Err(()) => panic!("connection not closed"),
    }
}

#[tokio::test]
async fn c01_greeting_is_the_exact_first_frame() {
    let s = TestServer::start().await;
    let c = s.client().await;
    assert_eq!(c.greeting, GREETING_FRAME);
    assert_eq!(
        std::str::from_utf8(&c.greeting).expect("utf8"),
        r#"79:{"jsonrpc":"2.0","method":"greetings","params":{"who":"jcapi","version":"1.1"}},"#
    );
    s.handle.shutdown().await;
}

#[tokio::test]
async fn c25_hello_with_the_test_vector_welcomes_and_authenticates() {
    let s = TestServer::start().await;
    let mut c = s.login("theCustomer").await;
    let r = c
        .result("get_job_status", json!({"job_id": 1, "notify": false}))
        .await;
    assert_eq!(r, json!([null, {"error": "no job 1"}]));
    // a second hello re-authenticates as another user
    let r = c
        .result(
            "hello",
            json!({"who":"theEmployee","method":"password","token":"doesThings"}),
        )
        .await;
    assert_eq!(r, json!([true, "welcome to the clientapi theEmployee!"]));
    s.handle.shutdown().await;
}

#[tokio::test]
async fn c26_c27_failed_hello_is_not_welcome_then_closes() {
    let s = TestServer::start().await;
    for params in [
        json!({"who":"theCustomer","method":"password","token":"WRONG"}),
        json!({"who":"nobody","method":"password","token":"x"}),
        json!({"who":"theCustomer","method":"kerberos","token":"wantsThings"}),
    ] {
        let mut c = s.client().await;
        let id = json!("wrongpw-1");
        let frame = json!({"jsonrpc":"2.0","id":id,"method":"hello","params":params});
        c.send(&frame).await;
        let r = c.response(&id).await;
        assert_eq!(
            r["result"],
            json!([false, "you're not welcome!"]),
            "{params}"
        );
        c.expect_eof().await;
    }
    // an authenticated connection that fails a second hello is closed too
    let mut c = s.login("theCustomer").await;
    let r = c
        .result(
            "hello",
            json!({"who":"theCustomer","method":"password","token":"nope"}),
        )
        .await;
    assert_eq!(r, json!([false, "you're not welcome!"]));
    c.expect_eof().await;
    s.handle.shutdown().await;
}

#[tokio::test]
async fn c28_hello_param_errors_keep_the_connection_open() {
    let s = TestServer::start().await;
    let mut c = s.client().await;
    let e = c
        .error("hello", json!({"who":"theCustomer","method":"password"}))
        .await;
    threw(&e, "no token?");
    let e = c
        .error("hello", json!({"who":"theCustomer","token":"x"}))
        .await;
    threw(&e, "no method?");
    let e = c
        .error("hello", json!({"method":"password","token":"x"}))
        .await;
    threw(&e, "no who?");
    let e = c
        .error(
            "hello",
            json!({"who":"theCustomer","method":"password","token":""}),
        )
        .await;
    threw(&e, "no token?");
    // still open and unauthenticated
    let e = c.error("find_jobs", json!({"filter":"{\"a\":1}"})).await;
    assert_eq!(e["code"], json!(-32002));
    s.handle.shutdown().await;
}

#[tokio::test]
async fn c02_c18_calls_before_hello_need_state_auth() {
    let s = TestServer::start().await;
    let mut c = s.client().await;
    let want = json!({"code":-32002,"message":"This method requires connection state auth"});
    for (m, p) in [
        (
            "create_job",
            json!({"wfname":"calladd","inargs":{"counter":1}}),
        ),
        ("get_job_status", json!({"job_id":1})),
        ("announce", json!({"actionname":"add"})),
        ("get_api_status", json!({"what":"stats"})),
        ("create_slotgroup", json!({"name":"g"})),
        ("withdraw", json!({"actionname":"add"})),
        ("get_task", json!({"actionname":"add","job_id":1})),
        (
            "check_if_lock_exists",
            json!({"locktype":"slot","lockvalue":"x"}),
        ),
        // the reference answers ping before hello; we answer nothing but hello
        ("ping", json!({})),
    ] {
        assert_eq!(c.error(m, p).await, want, "{m}");
    }
    // a notification before hello gets the error with id null
    c.notify("task_done", json!({"cookie":"x","outargs":{}}))
        .await;
    let v = c.next().await.expect("error frame");
    assert_eq!(v, json!({"jsonrpc":"2.0","id":null,"error":want}));
    let r = c
        .result(
            "hello",
            json!({"who":"theCustomer","method":"password","token":"wantsThings"}),
        )
        .await;
    assert_eq!(r, json!([true, "welcome to the clientapi theCustomer!"]));
    s.handle.shutdown().await;
}

#[tokio::test]
async fn c03_c14_c16_c17_unknown_method_and_bad_requests() {
    let s = TestServer::start().await;
    let mut c = s.login("theCustomer").await;
    let r = c.request("frobnicate", json!({"x":1})).await;
    assert_eq!(
        r,
        json!({"jsonrpc":"2.0","id":"t2","error":{"code":-32601,"message":"Method not found."}})
    );
    c.notify("frobnicate", json!({"x":1})).await;
    let v = c.next().await.expect("frame");
    assert_eq!(v["id"], Value::Null);
    assert_eq!(v["error"]["code"], json!(-32601));
    // no params, string params, array params
    c.send(&json!({"jsonrpc":"2.0","id":"np","method":"get_job_status"}))
        .await;
    let v = c.response(&json!("np")).await;
    assert_eq!(
        v["error"],
        json!({"code":-32600,"message":"Invalid Request: params should be array or object."})
    );
    c.send(&json!({"jsonrpc":"2.0","id":"sp","method":"get_job_status","params":"x"}))
        .await;
    let v = c.response(&json!("sp")).await;
    assert_eq!(v["error"]["code"], json!(-32600));
    c.send(&json!({"jsonrpc":"2.0","id":"ap","method":"get_job_status","params":[1]}))
        .await;
    let v = c.response(&json!("ap")).await;
    assert_eq!(
        v["error"],
        json!({"code":-32602,"message":"This method expects named params."})
    );
    // request method called as a notification, and with id null (C15)
    c.notify("get_job_status", json!({"job_id":1})).await;
    let v = c.next().await.expect("frame");
    assert_eq!(
        v,
        json!({"jsonrpc":"2.0","id":null,"error":{"code":-32000,"message":"Method is not a notification."}})
    );
    c.notify(
        "hello",
        json!({"who":"theCustomer","method":"password","token":"wantsThings"}),
    )
    .await;
    let v = c.next().await.expect("frame");
    assert_eq!(v["id"], Value::Null, "C15");
    assert_eq!(v["error"]["code"], json!(-32000), "C15");
    c.send(&json!({"jsonrpc":"2.0","id":null,"method":"ping","params":{}}))
        .await;
    let v = c.next().await.expect("frame");
    assert_eq!(v["error"]["code"], json!(-32000));
    // numeric ids are echoed as numbers
    c.send(&json!({"jsonrpc":"2.0","id":42,"method":"ping","params":{}}))
        .await;
    let v = c.response(&json!(42)).await;
    assert_eq!(v, json!({"jsonrpc":"2.0","id":42,"result":"pong?"}));
    // a response to nothing is ignored (C20)
    c.send(&json!({"jsonrpc":"2.0","id":"nosuchcall","result":1}))
        .await;
    c.silent_for(Duration::from_millis(200)).await;
    assert_eq!(c.result("ping", json!({})).await, json!("pong?"));
    // an object as id is fatal
    c.send(&json!({"jsonrpc":"2.0","id":{"a":1},"method":"ping","params":{}}))
        .await;
    expect_fatal_close(&mut c, "id is not a string or number").await;
    // neither method nor result: fatal
    let mut c = s.login("theCustomer").await;
    c.send(&json!({"jsonrpc":"2.0","foo":"bar"})).await;
    expect_fatal_close(&mut c, "invalid jsonnrpc object").await;
    s.handle.shutdown().await;
}

#[tokio::test]
async fn c24_id_zero_is_treated_as_a_notification() {
    let s = TestServer::start().await;
    let mut c = s.login("theCustomer").await;
    c.send(&json!({"jsonrpc":"2.0","id":0,"method":"create_job","params":{"wfname":"calladd","inargs":{"counter":1}}}))
        .await;
    let v = c.next().await.expect("frame");
    assert_eq!(
        v,
        json!({"jsonrpc":"2.0","id":0,"error":{"code":-32000,"message":"Method is not a notification."}})
    );
    s.handle.shutdown().await;
}

async fn framing_case(s: &TestServer, bytes: &[u8]) -> RawClient {
    let mut c = s.client().await;
    c.send_raw(bytes).await;
    c
}

const PING: &str = r#"{"jsonrpc":"2.0","id":"p","method":"ping","params":{}}"#;

#[tokio::test]
async fn d_framing_errors_close_the_connection() {
    let s = TestServer::start().await;
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "d01 non-numeric length",
            format!("abc:{PING},").into_bytes(),
        ),
        ("d02 no colon", b"hello world".to_vec()),
        ("d03 empty length", format!(":{PING},").into_bytes()),
        ("d04 negative length", b"-5:hello,".to_vec()),
        (
            "d05 wrong trailer",
            format!("{}:{PING};", PING.len()).into_bytes(),
        ),
        (
            "d06 length one too short",
            format!("{}:{PING},", PING.len() - 1).into_bytes(),
        ),
        ("d07 too big", b"1000000:{".to_vec()),
        ("d09 not json", b"16:this is not json,".to_vec()),
        ("d10 empty payload", b"0:,".to_vec()),
        (
            "d11 batch",
            format!("{}:[{PING},{PING}],", PING.len() * 2 + 3).into_bytes(),
        ),
        ("d12 scalar", b"2:42,".to_vec()),
        (
            "d13 no jsonrpc",
            br#"38:{"id":"p","method":"ping","params":{}},"#.to_vec(),
        ),
        (
            "d14 jsonrpc 1.0",
            br#"54:{"jsonrpc":"1.0","id":"p","method":"ping","params":{}},"#.to_vec(),
        ),
        (
            "d18 invalid utf-8",
            b"39:{\"jsonrpc\":\"2.0\",\"method\":\"x\xff\xfe\",\"id\":1},".to_vec(),
        ),
        ("eleven digit length", b"12345678901".to_vec()),
    ];
    for (name, bytes) in cases {
        let mut c = framing_case(&s, &bytes).await;
        match c.next_within(WAIT).await {
            Ok(None) => {}
            Ok(Some(v)) => {
                // only a fatal -32600 (JSON-level cases) may precede the close
                assert_eq!(v["error"]["code"], json!(-32600), "{name}: {v}");
                c.expect_eof().await;
            }
            Err(()) => panic!("{name}: connection not closed"),
        }
    }
    s.handle.shutdown().await;
}

#[tokio::test]
async fn c05_declared_length_999999_is_accepted() {
    let s = TestServer::start().await;
    let mut c = s.login("theCustomer").await;
    let mut payload = PING.as_bytes().to_vec();
    payload.resize(999_999, b' ');
    let mut frame = b"999999:".to_vec();
    frame.extend_from_slice(&payload);
    frame.push(b',');
    c.send_raw(&frame).await;
    let v = c.response(&json!("p")).await;
    assert_eq!(v["result"], json!("pong?"));
    s.handle.shutdown().await;
}

#[tokio::test]
async fn d15_d16_c03_c04_leading_zero_coalesced_and_split_frames() {
    let s = TestServer::start().await;
    let mut c = s.login("theCustomer").await;
    c.send_raw(format!("0{}:{PING},", PING.len()).as_bytes())
        .await;
    assert_eq!(c.response(&json!("p")).await["result"], json!("pong?"));
    let p2 = PING.replace("\"p\"", "\"p2\"");
    let p3 = PING.replace("\"p\"", "\"p3\"");
    let two = format!("{}:{PING},{}:{p2},", PING.len(), p2.len());
    c.send_raw(two.as_bytes()).await;
    let f3 = format!("{}:{p3},", p3.len());
    let (a, b) = f3.as_bytes().split_at(10);
    c.send_raw(a).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    c.send_raw(b).await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(c.next().await.expect("answer")["id"].clone());
    }
    assert_eq!(ids, vec![json!("p"), json!("p2"), json!("p3")]);
    // one byte per write (C3)
    let f = format!("{}:{PING},", PING.len());
    for b in f.as_bytes() {
        c.send_raw(std::slice::from_ref(b)).await;
    }
    assert_eq!(c.response(&json!("p")).await["result"], json!("pong?"));
    s.handle.shutdown().await;
}

#[tokio::test]
async fn c17_and_d17_broken_json_after_hello_closes() {
    let s = TestServer::start().await;
    let mut c = s.login("theCustomer").await;
    c.send_raw(b"12:{broken json,").await;
    expect_fatal_close(&mut c, "json decode failed").await;
    s.handle.shutdown().await;
}

#[tokio::test]
async fn c09_c48_get_api_status() {
    let s = TestServer::start().await;
    let mut w = s.login("theEmployee").await;
    assert_eq!(w.announce("w1", "add", 1).await, json!([true, "success"]));
    let mut c = s.login("theCustomer").await;
    threw(
        &c.error("get_api_status", json!({"what":"stats"})).await,
        "permission denied",
    );
    let mut m = s.login("apimeister").await;
    let stats = m.result("get_api_status", json!({"what":"stats"})).await;
    assert_eq!(stats["clients"], 3, "{stats}");
    assert_eq!(stats["dead"], 0, "{stats}");
    assert_eq!(stats["workers"], 1, "{stats}");
    assert_eq!(stats["jobs"], 0, "{stats}");
    assert_eq!(stats["tasks"], 0, "{stats}");
    assert_eq!(
        m.result("get_api_status", json!({"what":"foo"})).await,
        json!("no status for foo")
    );
    threw(&m.error("get_api_status", json!({})).await, "what status?");
    for what in ["clients", "clientsraw", "jobs", "tasks"] {
        let v = m.result("get_api_status", json!({"what": what})).await;
        assert!(v.is_string(), "{what}: {v}");
    }
    let clients = m.result("get_api_status", json!({"what":"clients"})).await;
    assert!(clients.as_str().unwrap_or_default().contains("\"w1\""));
    drop(c);
    drop(w);
    s.handle.shutdown().await;
}
