//! The server's resource limits (issue 10), each proven by a peer that abuses it, against the
//! real server over the real engine (memory store) on 127.0.0.1: the login deadline, the
//! connection caps, the frame limit, and a worker that stops reading while others work.

use std::net::SocketAddr;
use std::time::Duration;

use futures::StreamExt;
use jobcenter_conformance::{
    catalog, part4_engine_config, part4_fixtures, quiet_timers, reference_actions, RawConn,
    RawError, Recorder, StoreKind, TestServer, EMPLOYEE, EMPLOYEE_TOKEN, JC_ADMIN, JC_ADMIN_TOKEN,
};
use jobcenter_server::{Limits, Timers};
use serde_json::json;
use tokio::net::{TcpSocket, TcpStream};

/// Timers that never interfere (see [`quiet_timers`]).
fn quiet() -> Timers {
    quiet_timers()
}

async fn server(limits: Limits) -> TestServer {
    server_with(quiet(), limits).await
}

async fn server_with(timers: Timers, limits: Limits) -> TestServer {
    let cat = catalog(&part4_fixtures()).unwrap_or_else(|e| panic!("catalog: {e}"));
    TestServer::with_limits(
        StoreKind::Memory,
        cat,
        part4_engine_config(),
        timers,
        limits,
    )
    .await
    .unwrap_or_else(|e| panic!("server: {e}"))
}

/// Whether the server sends its greeting on a new connection (`false`: closed without one).
async fn greeted(addr: SocketAddr) -> bool {
    let mut c = RawConn::connect(addr)
        .await
        .unwrap_or_else(|e| panic!("connect: {e}"));
    match c.recv_timeout(Duration::from_secs(5)).await {
        Ok(f) => f["method"] == "greetings",
        Err(RawError::Closed) | Err(RawError::Io(_)) => false,
        Err(e) => panic!("neither a greeting nor a close: {e}"),
    }
}

/// Retry a new connection until it is greeted (the server notices a close asynchronously).
async fn greeted_eventually(addr: SocketAddr) {
    for _ in 0..200 {
        if greeted(addr).await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("no connection was accepted again");
}

#[tokio::test]
async fn limit_login_deadline_closes_a_connection_that_never_says_hello() {
    let s = server(Limits {
        handshake_timeout: Duration::from_millis(300),
        ..Limits::default()
    })
    .await;
    let mut idle = RawConn::connect(s.addr()).await.expect("connect");
    let mut member = RawConn::login(s.addr(), JC_ADMIN, JC_ADMIN_TOKEN)
        .await
        .expect("login");
    assert_eq!(idle.recv().await.expect("greeting")["method"], "greetings");
    // The silent connection is closed at its deadline...
    match idle.recv_timeout(Duration::from_secs(5)).await {
        Err(RawError::Closed) | Err(RawError::Io(_)) => {}
        other => panic!("the connection without hello was not closed: {other:?}"),
    }
    // ...the one that logged in, accepted at the same time, is still served.
    let mut other = Vec::new();
    let r = member
        .request("p1", "ping", json!({}), &mut other)
        .await
        .expect("ping after the deadline");
    assert!(r.get("result").is_some(), "{r}");
}

#[tokio::test]
async fn limit_connections_per_address_refuses_the_one_too_many() {
    let s = server(Limits {
        max_connections_per_ip: 3,
        ..Limits::default()
    })
    .await;
    let mut open = Vec::new();
    for _ in 0..3 {
        let mut c = RawConn::connect(s.addr()).await.expect("connect");
        assert_eq!(c.recv().await.expect("greeting")["method"], "greetings");
        open.push(c);
    }
    assert!(!greeted(s.addr()).await, "a 4th connection was served");
    drop(open.pop());
    greeted_eventually(s.addr()).await;
}

#[tokio::test]
async fn limit_total_connections_refuses_the_one_too_many() {
    let s = server(Limits {
        max_connections: 2,
        ..Limits::default()
    })
    .await;
    let a = RawConn::login(s.addr(), JC_ADMIN, JC_ADMIN_TOKEN)
        .await
        .expect("first");
    let _b = RawConn::login(s.addr(), EMPLOYEE, EMPLOYEE_TOKEN)
        .await
        .expect("second");
    assert!(!greeted(s.addr()).await, "a 3rd connection was served");
    drop(a);
    greeted_eventually(s.addr()).await;
}

#[tokio::test]
async fn limit_frame_size_is_configurable_and_closes_on_a_bigger_frame() {
    let s = server(Limits {
        max_frame: 1_000,
        ..Limits::default()
    })
    .await;
    let ping = |len: usize| {
        let head = r#"{"jsonrpc":"2.0","id":"x","method":"ping","params":{"pad":""#;
        let tail = r#""}}"#;
        format!("{head}{}{tail}", "p".repeat(len - head.len() - tail.len()))
    };
    let mut c = RawConn::login(s.addr(), JC_ADMIN, JC_ADMIN_TOKEN)
        .await
        .expect("login");
    c.send_text(&ping(1_000)).await.expect("send");
    assert_eq!(c.recv().await.expect("answer")["id"], "x");
    c.send_text(&ping(1_001)).await.expect("send");
    match c.recv_timeout(Duration::from_secs(5)).await {
        Err(RawError::Closed) | Err(RawError::Io(_)) => {}
        other => panic!("a frame over the limit was not refused: {other:?}"),
    }
}

#[tokio::test]
async fn limit_a_worker_that_stops_reading_does_not_hold_up_the_others() {
    // Hand-off after 2 s; without the stuck-worker rule, an offer handed off to the same
    // worker again would be dropped and wait for the next poll (ten minutes here), and
    // every job offered to the lazy worker would wait for its own timer.
    let timers = Timers {
        handoff: Duration::from_secs(2),
        ..quiet()
    };
    let s = server_with(timers, Limits::default()).await;
    // A raw worker with a tiny receive buffer announces 100,000 slots and never reads again.
    let socket = TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("rcvbuf");
    let stream: TcpStream = socket.connect(s.addr()).await.expect("connect");
    let mut lazy = RawConn::from_stream(stream);
    lazy.hello(EMPLOYEE, EMPLOYEE_TOKEN).await.expect("hello");
    let mut other = Vec::new();
    let r = lazy
        .request(
            "a1",
            "announce",
            json!({"workername": "lazy", "actionname": "c_add", "slots": 100000}),
            &mut other,
        )
        .await
        .expect("announce");
    assert_eq!(r["result"], json!([true, "success"]));
    // A library worker with 20 slots and a client with 3,000 jobs, 500 in flight.
    let rec = Recorder::new();
    let w = s.worker().await.expect("worker");
    for a in reference_actions(&rec, Some(20)) {
        w.announce(a.workername("busy")).await.expect("announce");
    }
    let c = s.client().await.expect("client");
    let calls = futures::stream::iter(0..3_000i64)
        .map(|i| {
            let c = c.clone();
            async move {
                let res = c.call("k01", json!({"input": i})).await;
                (i, res)
            }
        })
        .buffer_unordered(500);
    let done = tokio::time::timeout(
        Duration::from_secs(60),
        calls.fold(0usize, |n, (i, res)| async move {
            let res = res.unwrap_or_else(|e| panic!("job {i}: {e}"));
            assert_eq!(res.outargs, json!({"output": i + 1}));
            n + 1
        }),
    )
    .await
    .expect("jobs offered to the lazy worker are stuck");
    assert_eq!(done, 3_000);
    assert_eq!(
        rec.len(),
        3_000,
        "every job ran once, on the worker that reads"
    );
    drop(lazy);
}
