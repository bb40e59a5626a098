//! Two real peers (or a peer and a raw socket) over loopback TCP: dispatch per §5.4,
//! calls in both directions, ordering, closing. Checklist items C9–C24.
mod common;

use common::{boxed, guard};
use futures::{SinkExt, StreamExt};
use jobcenter_rpc::wire::{NetstringCodec, CLIENT_MAX_FRAME, SERVER_MAX_FRAME};
use jobcenter_rpc::{
    CallError, CloseReason, HandlerError, HandlerFuture, Methods, Peer, PeerConfig, Reply,
};
use serde_json::{json, Map, Value};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Notify};
use tokio_util::codec::{FramedRead, FramedWrite};

/// The method table used by the "server" side in these tests.
fn server_methods(release: Arc<Notify>) -> Methods {
    let mut m = Methods::new();
    m.request("ping", None, |_, _| {
        boxed(async { Ok(json!("pong?").into()) })
    });
    m.request("hello", None, |peer, params| {
        boxed(async move {
            let who = params
                .get("who")
                .and_then(Value::as_str)
                .ok_or_else(|| HandlerError::from("no who?"))?
                .to_string();
            peer.set_state(Some("auth"));
            Ok(json!([true, format!("welcome to the clientapi {who}!")]).into())
        })
    });
    m.request("create_job", Some("auth"), |peer, _| {
        boxed(async move {
            let p = peer.clone();
            Ok(Reply::new(json!([4711, null])).after(move || {
                let _ = p.notify("job_done", json!({"job_id": 4711, "outargs": {}}));
            }))
        })
    });
    m.notification("task_done", None, |_, params| {
        boxed(async move {
            if !params.contains_key("outargs") {
                return Err("task_done: no outargs!?".into());
            }
            Ok(json!([]).into())
        })
    });
    m.request("echo", None, |_, params| {
        boxed(async move { Ok(Value::Object(params).into()) })
    });
    let r = release.clone();
    m.request("wait", None, move |_, _| {
        let r = r.clone();
        boxed(async move {
            r.notified().await;
            Ok(json!("waited").into())
        })
    });
    m.request("release", None, move |_, _| {
        release.notify_one();
        boxed(async { Ok(json!("released").into()) })
    });
    m.request("bye", None, |peer, _| {
        boxed(async move {
            let p = peer.clone();
            Ok(Reply::new(json!([false, "you're not welcome!"])).after(move || p.close()))
        })
    });
    m.request("hook_panics", None, |_, _| {
        boxed(async { Ok(Reply::new(json!("ok")).after(|| panic!("hook bug"))) })
    });
    m.request("boom", None, |_, _| boxed(async { panic!("handler bug") }));
    m
}

fn cfg(label: &str, max: usize) -> PeerConfig {
    PeerConfig::new(max, label)
}

/// A raw netstring socket (or in-memory pipe) for the test side.
struct Raw {
    r: FramedRead<Box<dyn AsyncRead + Send + Unpin>, NetstringCodec>,
    w: FramedWrite<Box<dyn AsyncWrite + Send + Unpin>, NetstringCodec>,
}

impl Raw {
    fn new(
        r: impl AsyncRead + Send + Unpin + 'static,
        w: impl AsyncWrite + Send + Unpin + 'static,
    ) -> Raw {
        Raw {
            r: FramedRead::new(Box::new(r), NetstringCodec::new(CLIENT_MAX_FRAME)),
            w: FramedWrite::new(Box::new(w), NetstringCodec::new(CLIENT_MAX_FRAME)),
        }
    }

    async fn send(&mut self, payload: &str) {
        guard(self.w.send(bytes::Bytes::from(payload.to_string())))
            .await
            .expect("send");
    }

    async fn send_bytes(&mut self, raw: &[u8]) {
        let w = self.w.get_mut();
        guard(w.write_all(raw)).await.expect("write");
    }

    /// The next frame as raw text, or None at EOF.
    async fn next_text(&mut self) -> Option<String> {
        match guard(self.r.next()).await {
            None => None,
            Some(Ok(b)) => Some(String::from_utf8(b.to_vec()).expect("utf8 frame")),
            Some(Err(e)) => panic!("raw side framing error: {e}"),
        }
    }

    /// The next frame as JSON; asserts no `data` member in any error object (C21).
    async fn next(&mut self) -> Option<Value> {
        let text = self.next_text().await?;
        let v: Value = serde_json::from_str(&text).expect("json frame");
        if let Some(err) = v.get("error").and_then(Value::as_object) {
            assert!(!err.contains_key("data"), "C21: data sent: {text}");
            assert_eq!(err.len(), 2, "{text}");
        }
        assert_eq!(v["jsonrpc"], "2.0");
        Some(v)
    }

    /// Send `request` and assert that the next frame is `answer`.
    async fn exchange(&mut self, request: &str, answer: Value) {
        self.send(request).await;
        assert_eq!(self.next().await, Some(answer), "the answer to {request}");
    }

    /// Send `request` and assert that the next frame is `answer`, to the byte.
    async fn exchange_text(&mut self, request: &str, answer: &str) {
        self.send(request).await;
        assert_eq!(
            self.next_text().await.as_deref(),
            Some(answer),
            "the answer to {request}"
        );
    }

    /// Read until EOF; returns the frames seen on the way.
    async fn until_eof(&mut self) -> Vec<Value> {
        let mut seen = Vec::new();
        while let Some(v) = self.next().await {
            seen.push(v);
        }
        seen
    }

    /// The connection is still answering: a ping gets its pong.
    async fn assert_alive(&mut self) {
        self.send(r#"{"jsonrpc":"2.0","id":"alive","method":"ping","params":{}}"#)
            .await;
        let v = self.next().await.expect("still open");
        assert_eq!(v, json!({"jsonrpc":"2.0","id":"alive","result":"pong?"}));
    }
}

async fn listener() -> (TcpListener, std::net::SocketAddr) {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let a = l.local_addr().expect("addr");
    (l, a)
}

/// A Peer on the accepting side with `methods`, and a raw socket as the other side.
async fn peer_and_raw(methods: Methods, max: usize) -> (Peer, Raw) {
    let (l, addr) = listener().await;
    let (conn, accepted) = tokio::join!(TcpStream::connect(addr), l.accept());
    let (sock, _) = accepted.expect("accept");
    let peer = Peer::spawn(sock, Arc::new(methods), cfg("server", max));
    let conn = conn.expect("connect");
    // No Nagle delay: a test that writes one byte at a time sends each on its own.
    conn.set_nodelay(true).expect("nodelay");
    let (r, w) = conn.into_split();
    (peer, Raw::new(r, w))
}

/// [`server_and_raw`] over an in-memory pipe instead of a socket: for tests in virtual time
/// (`start_paused`), where nothing may wait on the kernel.
fn server_and_raw_in_memory() -> (Peer, Raw) {
    let (ours, theirs) = tokio::io::duplex(64 * 1024);
    let methods = server_methods(Arc::new(Notify::new()));
    let peer = Peer::spawn(theirs, Arc::new(methods), cfg("server", SERVER_MAX_FRAME));
    let (r, w) = tokio::io::split(ours);
    (peer, Raw::new(r, w))
}

async fn server_and_raw() -> (Peer, Raw, Arc<Notify>) {
    let release = Arc::new(Notify::new());
    let (p, r) = peer_and_raw(server_methods(release.clone()), SERVER_MAX_FRAME).await;
    (p, r, release)
}

/// Two Peers: (server with `server_methods`, client with `client_methods`).
async fn two_peers(client_methods: Methods) -> (Peer, Peer) {
    let (l, addr) = listener().await;
    let (conn, accepted) = tokio::join!(TcpStream::connect(addr), l.accept());
    let (sock, _) = accepted.expect("accept");
    let server = Peer::spawn(
        sock,
        Arc::new(server_methods(Arc::new(Notify::new()))),
        cfg("server", SERVER_MAX_FRAME),
    );
    let client = Peer::spawn(
        conn.expect("connect"),
        Arc::new(client_methods),
        cfg("client", CLIENT_MAX_FRAME),
    );
    (server, client)
}

fn client_methods() -> Methods {
    let mut m = Methods::new();
    m.request("ping", None, |_, _| {
        boxed(async { Ok(json!("pong!").into()) })
    });
    m.request("add", None, |_, p: Map<String, Value>| {
        boxed(async move {
            let a = p.get("a").and_then(Value::as_i64).unwrap_or(0);
            let b = p.get("b").and_then(Value::as_i64).unwrap_or(0);
            Ok(json!(a + b).into())
        })
    });
    m
}

#[tokio::test]
async fn calls_both_ways() {
    let (server, client) = two_peers(client_methods()).await;
    assert_ne!(server.id(), client.id());
    let r = guard(client.call("ping", json!({}))).await;
    assert_eq!(r, Ok(json!("pong?")));
    let r = guard(server.call("ping", json!({}))).await;
    assert_eq!(r, Ok(json!("pong!")));
    let r = guard(server.call("add", json!({"a": 2, "b": 40}))).await;
    assert_eq!(r, Ok(json!(42)));
    let r = guard(client.call("hello", json!({"who": "theCustomer"}))).await;
    assert_eq!(
        r,
        Ok(json!([true, "welcome to the clientapi theCustomer!"]))
    );
    assert_eq!(server.state().as_deref(), Some("auth"));
    assert_eq!(client.state(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelining_1000_concurrent_calls() {
    let (_server, client) = two_peers(client_methods()).await;
    let calls = (0..1000).map(|i| {
        let c = client.clone();
        async move { (i, c.call("echo", json!({ "n": i })).await) }
    });
    let results = guard(futures::future::join_all(calls)).await;
    assert_eq!(results.len(), 1000);
    for (i, r) in results {
        assert_eq!(r, Ok(json!({ "n": i })));
    }
}

#[tokio::test]
async fn out_of_order_replies() {
    let (_server, client) = two_peers(client_methods()).await;
    let slow = tokio::spawn({
        let c = client.clone();
        async move { c.call("wait", json!({})).await }
    });
    // `release` is answered while `wait` is still outstanding, then `wait` completes.
    let r = guard(client.call("release", json!({}))).await;
    assert_eq!(r, Ok(json!("released")));
    let r = guard(slow).await.expect("join");
    assert_eq!(r, Ok(json!("waited")));
}

#[tokio::test]
async fn c18_state_gating_32002_exact_text() {
    let (_server, client) = two_peers(client_methods()).await;
    let r = guard(client.call("create_job", json!({"wfname": "x", "inargs": {}}))).await;
    assert_eq!(
        r,
        Err(CallError::Rpc {
            code: -32002,
            message: "This method requires connection state auth".into()
        })
    );
    assert_eq!(
        guard(client.call("ping", json!({}))).await,
        Ok(json!("pong?"))
    );
    guard(client.call("hello", json!({"who": "w"})))
        .await
        .expect("hello");
    let r = guard(client.call("create_job", json!({"wfname": "x", "inargs": {}}))).await;
    assert_eq!(r, Ok(json!([4711, null])));
}

#[tokio::test]
async fn c14_unknown_method_gets_32601_and_stays_open() {
    let (_p, mut raw, _) = server_and_raw().await;
    raw.exchange_text(
        r#"{"jsonrpc":"2.0","id":"x","method":"frobnicate","params":{"x":1}}"#,
        r#"{"jsonrpc":"2.0","id":"x","error":{"code":-32601,"message":"Method not found."}}"#,
    )
    .await;
    // Unknown notification: answered too, with id null; a non-string method never matches.
    raw.exchange(
        r#"{"jsonrpc":"2.0","method":"frobnicate","params":{"x":1}}"#,
        json!({"jsonrpc":"2.0","id":null,"error":{"code":-32601,"message":"Method not found."}}),
    )
    .await;
    raw.send(r#"{"jsonrpc":"2.0","id":"m","method":5,"params":{}}"#)
        .await;
    assert_eq!(raw.next().await.expect("frame")["error"]["code"], -32601);
    raw.assert_alive().await;
}

#[tokio::test]
async fn c15_request_method_as_notification_gets_32000_id_null() {
    let (_p, mut raw, _) = server_and_raw().await;
    raw.exchange_text(r#"{"jsonrpc":"2.0","method":"hello","params":{"who":"a","method":"password","token":"t"}}"#, r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32000,"message":"Method is not a notification."}}"#).await;
    // "id":null counts as a notification as well.
    raw.exchange(r#"{"jsonrpc":"2.0","id":null,"method":"ping","params":{}}"#, json!({"jsonrpc":"2.0","id":null,"error":{"code":-32000,"message":"Method is not a notification."}})).await;
    raw.assert_alive().await;
}

#[tokio::test]
async fn c16_missing_or_scalar_params_get_32600_and_stay_open() {
    let (_p, mut raw, _) = server_and_raw().await;
    for req in [
        r#"{"jsonrpc":"2.0","id":"np","method":"echo"}"#,
        r#"{"jsonrpc":"2.0","id":"np","method":"echo","params":"x"}"#,
        r#"{"jsonrpc":"2.0","id":"np","method":"echo","params":null}"#,
    ] {
        raw.send(req).await;
        assert_eq!(
            raw.next().await,
            Some(
                json!({"jsonrpc":"2.0","id":"np","error":{"code":-32600,"message":"Invalid Request: params should be array or object."}})
            )
        );
    }
    raw.assert_alive().await;
}

#[tokio::test]
async fn c17_array_params_get_32602() {
    let (_p, mut raw, _) = server_and_raw().await;
    raw.exchange(r#"{"jsonrpc":"2.0","id":"ap","method":"echo","params":[1]}"#, json!({"jsonrpc":"2.0","id":"ap","error":{"code":-32602,"message":"This method expects named params."}})).await;
    raw.assert_alive().await;
}

#[tokio::test]
async fn dispatch_check_order_state_after_params() {
    let (_p, mut raw, _) = server_and_raw().await;
    // Array params are reported before the missing connection state.
    raw.send(r#"{"jsonrpc":"2.0","id":"o","method":"create_job","params":[]}"#)
        .await;
    assert_eq!(raw.next().await.expect("frame")["error"]["code"], -32602);
    raw.exchange(r#"{"jsonrpc":"2.0","id":"o","method":"create_job","params":{}}"#, json!({"jsonrpc":"2.0","id":"o","error":{"code":-32002,"message":"This method requires connection state auth"}})).await;
}

#[tokio::test]
async fn c19_handler_error_gets_32001() {
    let (_p, mut raw, _) = server_and_raw().await;
    raw.exchange(r#"{"jsonrpc":"2.0","id":"h","method":"hello","params":{}}"#, json!({"jsonrpc":"2.0","id":"h","error":{"code":-32001,"message":"Method threw error: no who?"}})).await;
    // A failing notification handler is answered with id null (REF-QUIRK, C65).
    raw.exchange(r#"{"jsonrpc":"2.0","method":"task_done","params":{"cookie":"c"}}"#, json!({"jsonrpc":"2.0","id":null,"error":{"code":-32001,"message":"Method threw error: task_done: no outargs!?"}})).await;
    // A panicking after-hook does not disturb the answer or the connection.
    raw.exchange(
        r#"{"jsonrpc":"2.0","id":"hp","method":"hook_panics","params":{}}"#,
        json!({"jsonrpc":"2.0","id":"hp","result":"ok"}),
    )
    .await;
    // A panicking handler becomes -32001 as well and the connection survives.
    raw.send(r#"{"jsonrpc":"2.0","id":"b","method":"boom","params":{}}"#)
        .await;
    let v = raw.next().await.expect("frame");
    assert_eq!(v["id"], "b");
    assert_eq!(v["error"]["code"], -32001);
    assert!(v["error"]["message"]
        .as_str()
        .unwrap_or("")
        .starts_with("Method threw error: "));
    raw.assert_alive().await;
}

#[tokio::test]
async fn notifications_get_no_result_unless_called_with_truthy_id() {
    let (_p, mut raw, _) = server_and_raw().await;
    raw.send(r#"{"jsonrpc":"2.0","method":"task_done","params":{"cookie":"c","outargs":{}}}"#)
        .await;
    raw.send(
        r#"{"jsonrpc":"2.0","id":"",  "method":"task_done","params":{"cookie":"c","outargs":{}}}"#,
    )
    .await;
    // Nothing came back for those two: the next frame is the ping answer.
    raw.assert_alive().await;
    raw.exchange(
        r#"{"jsonrpc":"2.0","id":"t","method":"task_done","params":{"cookie":"c","outargs":{}}}"#,
        json!({"jsonrpc":"2.0","id":"t","result":[]}),
    )
    .await;
}

#[tokio::test]
async fn c20_unmatched_responses_are_ignored() {
    let (_p, mut raw, _) = server_and_raw().await;
    for resp in [
        r#"{"jsonrpc":"2.0","id":"nosuchcall","result":1}"#,
        r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32601,"message":"Method not found."}}"#,
        r#"{"jsonrpc":"2.0","id":0,"result":1}"#,
        r#"{"jsonrpc":"2.0","id":"jc1-1","result":1}"#,
        // Invalid error object, but for no outstanding call: ignored too.
        r#"{"jsonrpc":"2.0","id":"zz","error":{"code":"x","message":"m"}}"#,
    ] {
        raw.send(resp).await;
    }
    raw.assert_alive().await;
}

#[tokio::test]
async fn c23_ids_unique_truthy_strings_and_numeric_ids_echoed() {
    let (peer, mut raw, _) = server_and_raw().await;
    let mut ids = HashSet::new();
    let mut calls = Vec::new();
    for _ in 0..50 {
        let p = peer.clone();
        calls.push(tokio::spawn(async move { p.call("x", json!({})).await }));
    }
    for _ in 0..50 {
        let req = raw.next().await.expect("request");
        let id = req["id"].as_str().expect("string id").to_string();
        assert!(!id.is_empty() && id != "0");
        assert!(ids.insert(id.clone()), "duplicate id {id}");
        raw.send(&json!({"jsonrpc":"2.0","id":id,"result":id}).to_string())
            .await;
    }
    for c in calls {
        let r = guard(c).await.expect("join").expect("result");
        assert!(r.is_string());
    }
    raw.exchange_text(
        r#"{"jsonrpc":"2.0","id":42,"method":"ping","params":{}}"#,
        r#"{"jsonrpc":"2.0","id":42,"result":"pong?"}"#,
    )
    .await;
}

#[tokio::test]
async fn c24_id_zero_is_a_notification_and_gets_32000_with_that_id() {
    let (_p, mut raw, _) = server_and_raw().await;
    raw.exchange_text(r#"{"jsonrpc":"2.0","method":"create_job","params":{"wfname":"x","inargs":{}},"id":0}"#, r#"{"jsonrpc":"2.0","id":0,"error":{"code":-32000,"message":"Method is not a notification."}}"#).await;
    for id in [r#""0""#, r#""""#] {
        raw.send(&format!(
            r#"{{"jsonrpc":"2.0","method":"ping","params":{{}},"id":{id}}}"#
        ))
        .await;
        let v = raw.next().await.expect("frame");
        assert_eq!(v["error"]["code"], -32000);
        assert_eq!(v["id"].to_string(), id);
    }
    raw.assert_alive().await;
}

async fn assert_fatal(payload: &[u8], reason: &str) {
    let (peer, mut raw, _) = server_and_raw().await;
    raw.send_bytes(payload).await;
    let seen = raw.until_eof().await;
    // We write the -32600 before closing (§5.9 SHOULD), so it does arrive.
    assert_eq!(
        seen,
        vec![
            json!({"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":format!("Invalid Request: {reason}")}})
        ],
        "{}",
        String::from_utf8_lossy(payload)
    );
    assert_eq!(
        guard(peer.closed()).await,
        CloseReason::Fatal(reason.to_string())
    );
    assert!(peer.is_closed());
}

#[tokio::test]
async fn c9_to_c13_fatal_envelopes_close_the_connection() {
    assert_fatal(b"2:[],", "not a json object").await;
    assert_fatal(
        br#"56:[{"jsonrpc":"2.0","method":"ping","params":{},"id":"a"}],"#,
        "not a json object",
    )
    .await;
    assert_fatal(
        br#"54:{"jsonrpc":"1.0","id":"p","method":"ping","params":{}},"#,
        "expected jsonrpc version 2.0",
    )
    .await;
    assert_fatal(
        br#"58:{"jsonrpc":"2.0","id":{"a":1},"method":"ping","params":{}},"#,
        "id is not a string or number",
    )
    .await;
    assert_fatal(
        br#"29:{"jsonrpc":"2.0","foo":"bar"},"#,
        "invalid jsonnrpc object",
    )
    .await;
}

#[tokio::test]
async fn c10_invalid_json_closes_with_decode_failure() {
    let (peer, mut raw, _) = server_and_raw().await;
    raw.send_bytes(b"12:{broken json,").await;
    let seen = raw.until_eof().await;
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0]["error"]["code"], -32600);
    let msg = seen[0]["error"]["message"].as_str().expect("message");
    assert!(
        msg.starts_with("Invalid Request: json decode failed: "),
        "{msg}"
    );
    assert!(matches!(guard(peer.closed()).await, CloseReason::Fatal(_)));
}

#[tokio::test]
async fn framing_errors_close_without_answer() {
    for bad in [
        &b"abc:{}},"[..],
        b":{},",
        b"-5:hello,",
        b"2:{};",
        b"1000000:",
        b"123456789012",
    ] {
        let (peer, mut raw, _) = server_and_raw().await;
        raw.send_bytes(bad).await;
        assert!(
            raw.until_eof().await.is_empty(),
            "{}",
            String::from_utf8_lossy(bad)
        );
        assert!(matches!(
            guard(peer.closed()).await,
            CloseReason::Framing(_)
        ));
    }
}

#[tokio::test]
async fn c5_declared_999999_is_accepted_by_the_server() {
    let (peer, mut raw, _) = server_and_raw().await;
    let make = |s: &str| {
        format!(r#"{{"jsonrpc":"2.0","id":"big","method":"echo","params":{{"s":"{s}"}}}}"#)
    };
    let fill = 999_999 - make("").len();
    let body = make(&"x".repeat(fill));
    assert_eq!(body.len(), 999_999);
    raw.send(&body).await;
    let v = raw.next().await.expect("answer");
    assert_eq!(v["id"], "big");
    assert_eq!(v["result"]["s"].as_str().map(str::len), Some(fill));
    assert!(!peer.is_closed());
}

#[tokio::test]
async fn outstanding_calls_fail_with_closed_when_the_peer_vanishes() {
    let (peer, mut raw, _) = server_and_raw().await;
    let calls: Vec<_> = (0..3)
        .map(|_| {
            let p = peer.clone();
            tokio::spawn(async move { p.call("never", json!({})).await })
        })
        .collect();
    for _ in 0..3 {
        raw.next().await.expect("request arrives");
    }
    drop(raw);
    for c in calls {
        assert_eq!(guard(c).await.expect("join"), Err(CallError::Closed));
    }
    assert_eq!(guard(peer.closed()).await, CloseReason::PeerClosed);
    assert_eq!(
        guard(peer.call("x", json!({}))).await,
        Err(CallError::Closed)
    );
    assert_eq!(peer.notify("x", json!({})), Err(CallError::Closed));
    guard(peer.finished()).await;
}

/// In virtual time: the deadline passes at once, and exactly when it is due.
#[tokio::test(start_paused = true)]
async fn call_timeout_gives_timeout_and_late_answer_is_ignored() {
    let (peer, mut raw) = server_and_raw_in_memory();
    let start = tokio::time::Instant::now();
    let r = peer
        .call_timeout("slow", json!({}), Duration::from_secs(30))
        .await;
    assert_eq!(r, Err(CallError::Timeout));
    let took = start.elapsed();
    assert!(
        took >= Duration::from_secs(30) && took < Duration::from_millis(30_010),
        "timed out after {took:?}, not when due"
    );
    let req = raw.next().await.expect("request");
    raw.send(&json!({"jsonrpc":"2.0","id":req["id"],"result":"late"}).to_string())
        .await;
    raw.assert_alive().await;
    assert!(!peer.is_closed());
}

#[tokio::test]
async fn after_hook_runs_after_the_reply_is_queued() {
    let (_p, mut raw, _) = server_and_raw().await;
    raw.send(r#"{"jsonrpc":"2.0","id":"h","method":"hello","params":{"who":"c"}}"#)
        .await;
    raw.next().await.expect("hello result");
    for i in 0..20 {
        let id = format!("cj{i}");
        raw.send(&json!({"jsonrpc":"2.0","id":id,"method":"create_job","params":{}}).to_string())
            .await;
        let first = raw.next().await.expect("frame");
        assert_eq!(first, json!({"jsonrpc":"2.0","id":id,"result":[4711,null]}));
        let second = raw.next().await.expect("frame");
        assert_eq!(second["method"], "job_done");
        assert!(second.get("id").is_none());
    }
}

/// `peer` calls method `x` and the raw side answers with `answer` plus the `jsonrpc` and
/// `id` members: what the call returns.
async fn call_answered_with(peer: &Peer, raw: &mut Raw, answer: Value) -> Result<Value, CallError> {
    let call = tokio::spawn({
        let p = peer.clone();
        async move { p.call("x", json!({})).await }
    });
    let req = raw.next().await.expect("request");
    let mut frame = answer;
    frame["jsonrpc"] = json!("2.0");
    frame["id"] = req["id"].clone();
    raw.send(&frame.to_string()).await;
    guard(call).await.expect("join")
}

#[tokio::test]
async fn rpc_error_with_data_is_accepted_on_receive() {
    let (peer, mut raw, _) = server_and_raw().await;
    let answer = json!({"error": {"code": -1, "message": "m", "data": [1]}});
    assert_eq!(
        call_answered_with(&peer, &mut raw, answer).await,
        Err(CallError::Rpc {
            code: -1,
            message: "m".into()
        })
    );
    raw.assert_alive().await;
}

#[tokio::test]
async fn invalid_error_object_for_outstanding_call_is_fatal() {
    let (peer, mut raw, _) = server_and_raw().await;
    let answer = json!({"error": {"code": -1, "message": "m", "extra": 1}});
    assert_eq!(
        call_answered_with(&peer, &mut raw, answer).await,
        Err(CallError::Closed)
    );
    let seen = raw.until_eof().await;
    assert_eq!(
        seen,
        vec![
            json!({"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"Invalid Request: extra members in error object"}})
        ]
    );
    assert_eq!(
        guard(peer.closed()).await,
        CloseReason::Fatal("extra members in error object".into())
    );
}

#[tokio::test]
async fn graceful_close_flushes_queued_frames_then_closes() {
    let (peer, mut raw, _) = server_and_raw().await;
    for i in 0..100 {
        peer.notify("n", json!({ "i": i })).expect("queued");
    }
    peer.close();
    assert!(peer.is_closed());
    let seen = raw.until_eof().await;
    assert_eq!(seen.len(), 100);
    assert_eq!(seen[99]["params"]["i"], 99);
    assert_eq!(guard(peer.closed()).await, CloseReason::Local);
    // closed() may be awaited again.
    assert_eq!(guard(peer.closed()).await, CloseReason::Local);
    guard(peer.finished()).await;
}

#[tokio::test]
async fn abort_closes_immediately() {
    let (peer, mut raw, _) = server_and_raw().await;
    peer.abort();
    assert!(raw.until_eof().await.is_empty());
    assert_eq!(guard(peer.closed()).await, CloseReason::Local);
    guard(peer.finished()).await;
}

#[tokio::test]
async fn peer_close_is_seen_by_the_other_peer() {
    let (server, client) = two_peers(client_methods()).await;
    let pending = tokio::spawn({
        let s = server.clone();
        async move {
            s.call("never_answered_because_unknown_to_nobody", json!({}))
                .await
        }
    });
    // The unknown method is answered with -32601 by the client peer.
    assert_eq!(
        guard(pending).await.expect("join"),
        Err(CallError::Rpc {
            code: -32601,
            message: "Method not found.".into()
        })
    );
    client.close();
    assert_eq!(guard(server.closed()).await, CloseReason::PeerClosed);
    assert_eq!(guard(client.closed()).await, CloseReason::Local);
}

#[tokio::test]
async fn handler_gets_its_peer_and_can_call_back() {
    // A server method that calls back into the client before answering.
    let mut m = Methods::new();
    m.request("relay", None, |peer, p| {
        boxed(async move {
            let r = peer
                .call("add", Value::Object(p))
                .await
                .map_err(|e| HandlerError(e.to_string()))?;
            Ok(json!({ "sum": r }).into())
        })
    });
    let (l, addr) = listener().await;
    let (conn, accepted) = tokio::join!(TcpStream::connect(addr), l.accept());
    let server = Peer::spawn(
        accepted.expect("accept").0,
        Arc::new(m),
        PeerConfig::default(),
    );
    let client = Peer::spawn(
        conn.expect("connect"),
        Arc::new(client_methods()),
        PeerConfig::default(),
    );
    let r = guard(client.call("relay", json!({"a": 1, "b": 2}))).await;
    assert_eq!(r, Ok(json!({"sum": 3})));
    assert_eq!(server.label(), "peer");
    let (tx, mut rx) = mpsc::unbounded_channel();
    tokio::spawn({
        let s = server.clone();
        async move {
            let _ = tx.send(s.closed().await);
        }
    });
    server.close();
    assert_eq!(guard(rx.recv()).await, Some(CloseReason::Local));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backpressure_large_frames_arrive_intact_and_in_order() {
    // 10 MB of notifications cannot be written at once: the writer task has to finish the job
    // once the reader below starts draining the socket. Then close gracefully.
    let (peer, mut raw, _) = server_and_raw().await;
    let blob = "y".repeat(100 * 1024);
    for i in 0..100 {
        peer.notify("blob", json!({ "i": i, "s": blob }))
            .expect("queued");
    }
    peer.close();
    let seen = raw.until_eof().await;
    assert_eq!(seen.len(), 100);
    for (i, v) in seen.iter().enumerate() {
        assert_eq!(v["params"]["i"], i);
        assert_eq!(v["params"]["s"].as_str().map(str::len), Some(blob.len()));
    }
    guard(peer.finished()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_senders_on_many_threads_keep_frames_whole() {
    let (peer, mut raw, _) = server_and_raw().await;
    let mut threads = Vec::new();
    for t in 0..4 {
        let p = peer.clone();
        // Plain OS threads, as a blocking facade would use.
        threads.push(std::thread::spawn(move || {
            for i in 0..250 {
                p.notify("n", json!({ "t": t, "i": i, "pad": "z".repeat(i * 10) }))
                    .expect("queued");
            }
        }));
    }
    for t in threads {
        t.join().expect("thread");
    }
    let mut last = [-1i64; 4];
    for _ in 0..1000 {
        let v = raw.next().await.expect("frame");
        let t = v["params"]["t"].as_u64().expect("t") as usize;
        let i = v["params"]["i"].as_i64().expect("i");
        assert_eq!(i, last[t] + 1, "per-sender order kept");
        last[t] = i;
    }
    raw.assert_alive().await;
}

#[tokio::test]
async fn c3_frame_written_one_byte_at_a_time_over_tcp() {
    let (_p, mut raw, _) = server_and_raw().await;
    let wire = br#"54:{"jsonrpc":"2.0","id":"p","method":"ping","params":{}},"#;
    for b in wire.iter() {
        raw.send_bytes(std::slice::from_ref(b)).await;
    }
    assert_eq!(
        raw.next().await,
        Some(json!({"jsonrpc":"2.0","id":"p","result":"pong?"}))
    );
}

#[tokio::test]
async fn c4_two_frames_in_one_write_over_tcp() {
    let (_p, mut raw, _) = server_and_raw().await;
    raw.send_bytes(
        br#"54:{"jsonrpc":"2.0","id":"p","method":"ping","params":{}},55:{"jsonrpc":"2.0","id":"p2","method":"ping","params":{}},"#,
    )
    .await;
    assert_eq!(raw.next().await.expect("first")["id"], "p");
    assert_eq!(raw.next().await.expect("second")["id"], "p2");
}

#[tokio::test]
async fn d15_leading_zero_length_accepted_over_tcp() {
    let (_p, mut raw, _) = server_and_raw().await;
    raw.send_bytes(br#"054:{"jsonrpc":"2.0","id":"p","method":"ping","params":{}},"#)
        .await;
    assert_eq!(
        raw.next().await,
        Some(json!({"jsonrpc":"2.0","id":"p","result":"pong?"}))
    );
}

#[tokio::test]
async fn truncated_frame_at_eof_is_a_framing_close() {
    let (peer, mut raw, _) = server_and_raw().await;
    raw.send_bytes(b"54:{\"jsonrpc\"").await;
    raw.w.get_mut().shutdown().await.expect("half-close");
    assert!(raw.until_eof().await.is_empty());
    assert!(matches!(
        guard(peer.closed()).await,
        CloseReason::Framing(_)
    ));
}

#[test]
fn reply_values_pack_like_5_5() {
    assert_eq!(Reply::values(vec![]).value, json!([]));
    assert_eq!(Reply::values(vec![json!(true)]).value, json!(true));
    assert_eq!(
        Reply::values(vec![json!(1), Value::Null]).value,
        json!([1, null])
    );
    assert_eq!(HandlerError::new("no who?").to_string(), "no who?");
}

#[tokio::test]
async fn close_from_after_hook_sends_the_reply_then_ignores_further_input() {
    let (peer, mut raw, _) = server_and_raw().await;
    raw.send_bytes(
        br#"53:{"jsonrpc":"2.0","id":"b","method":"bye","params":{}},54:{"jsonrpc":"2.0","id":"p","method":"ping","params":{}},"#,
    )
    .await;
    let seen = raw.until_eof().await;
    assert_eq!(
        seen,
        vec![json!({"jsonrpc":"2.0","id":"b","result":[false,"you're not welcome!"]})]
    );
    assert_eq!(guard(peer.closed()).await, CloseReason::Local);
}

#[test]
fn public_types_are_send_and_sync() {
    fn check<T: Send + Sync + 'static>() {}
    check::<Peer>();
    check::<Methods>();
    check::<CallError>();
    check::<CloseReason>();
    check::<HandlerError>();
    check::<PeerConfig>();
    fn check_send<T: Send + 'static>() {}
    check_send::<Reply>();
    check_send::<HandlerFuture>();
}

#[tokio::test]
async fn spawn_tcp_answers_and_a_graceful_close_flushes_then_ends_the_stream() {
    let (l, addr) = listener().await;
    let (conn, accepted) = tokio::join!(TcpStream::connect(addr), l.accept());
    let (sock, _) = accepted.expect("accept");
    let peer = Peer::spawn_tcp(
        sock,
        Arc::new(server_methods(Arc::new(Notify::new()))),
        cfg("server", SERVER_MAX_FRAME),
    );
    let (r, w) = conn.expect("connect").into_split();
    let mut raw = Raw::new(r, w);
    raw.assert_alive().await;
    // Queued before the close, so it must reach the socket before EOF.
    peer.notify("bye", json!({})).expect("notify");
    peer.close();
    let seen = raw.until_eof().await;
    assert_eq!(
        seen,
        vec![json!({"jsonrpc":"2.0","method":"bye","params":{}})]
    );
    guard(peer.finished()).await;
    assert_eq!(peer.close_reason(), Some(CloseReason::Local));
}

#[tokio::test]
async fn non_tcp_streams_use_the_generic_split_path() {
    let (a, b) = tokio::io::duplex(64 * 1024);
    let server = Peer::spawn(
        a,
        Arc::new(server_methods(Arc::new(Notify::new()))),
        cfg("server", SERVER_MAX_FRAME),
    );
    let client = Peer::spawn(
        b,
        Arc::new(client_methods()),
        cfg("client", CLIENT_MAX_FRAME),
    );
    assert_eq!(
        guard(client.call("ping", json!({}))).await,
        Ok(json!("pong?"))
    );
    assert_eq!(
        guard(server.call("add", json!({"a": 1, "b": 2}))).await,
        Ok(json!(3))
    );
    client.close();
    assert_eq!(guard(server.closed()).await, CloseReason::PeerClosed);
    guard(client.finished()).await;
}

/// A stream that counts the writes that reach the socket.
struct CountingWrites {
    inner: TcpStream,
    writes: Arc<std::sync::atomic::AtomicUsize>,
}

impl AsyncRead for CountingWrites {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for CountingWrites {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let r = std::pin::Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(r, std::task::Poll::Ready(Ok(n)) if n > 0) {
            self.writes
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        r
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A handler on connection A queues ten notifications for connection B (as the server's
/// `create_job` offers a task to a worker, or `task_done` sends `job_done` to a client): they
/// are held until A's reader has handled its burst, then leave in one write, not ten.
#[tokio::test]
async fn frames_queued_for_another_connection_during_a_burst_leave_in_one_write() {
    let (l, addr) = listener().await;
    let (conn, accepted) = tokio::join!(TcpStream::connect(addr), l.accept());
    let writes = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let b = Peer::spawn(
        CountingWrites {
            inner: accepted.expect("accept").0,
            writes: writes.clone(),
        },
        Arc::new(Methods::new()),
        cfg("b", SERVER_MAX_FRAME),
    );
    let (r, w) = conn.expect("connect").into_split();
    let mut raw_b = Raw::new(r, w);

    let mut m = Methods::new();
    let to_b = b.clone();
    m.request("fanout", None, move |_, _| {
        let b = to_b.clone();
        boxed(async move {
            for n in 0..10 {
                b.notify("tick", json!({ "n": n }))
                    .map_err(|e| HandlerError::from(e.to_string()))?;
            }
            Ok(json!(true).into())
        })
    });
    let (_a, mut raw_a) = peer_and_raw(m, SERVER_MAX_FRAME).await;
    raw_a
        .exchange(
            r#"{"jsonrpc":"2.0","id":"f","method":"fanout","params":{}}"#,
            json!({"jsonrpc":"2.0","id":"f","result":true}),
        )
        .await;
    for n in 0..10 {
        let v = raw_b.next().await.expect("a tick");
        assert_eq!(v["method"], "tick");
        assert_eq!(v["params"]["n"], n);
    }
    assert_eq!(
        writes.load(std::sync::atomic::Ordering::Relaxed),
        1,
        "the ten frames for B left in one write"
    );
}
