//! The per-connection limits of a peer, against a raw socket over loopback TCP that misbehaves
//! on purpose: requests in flight, unread output (back-pressure, congestion, the stall
//! deadline and the hard cap), and request ids echoed exactly as sent.

mod common;

use common::{boxed, guard};
use jobcenter_rpc::wire::SERVER_MAX_FRAME;
use jobcenter_rpc::{CloseReason, HandlerError, Methods, Peer, PeerConfig, Reply};
use serde_json::json;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::Semaphore;

/// A listening socket and a raw client connected to it with a small receive buffer (so that
/// a client that does not read fills up quickly).
async fn pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let socket = TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("rcvbuf");
    let (client, server) = tokio::join!(socket.connect(addr), listener.accept());
    (client.expect("connect"), server.expect("accept").0)
}

fn frame(payload: &str) -> Vec<u8> {
    format!("{}:{},", payload.len(), payload).into_bytes()
}

/// Poll `cond` until it holds (a condition on state that changes by itself, checked at a
/// short interval, bounded by [`common::GUARD`]).
async fn until(mut cond: impl FnMut() -> bool) {
    guard(async {
        while !cond() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
}

#[tokio::test]
async fn limit_requests_in_flight_pause_reading_until_one_finishes() {
    let started = Arc::new(AtomicUsize::new(0));
    let gate = Arc::new(Semaphore::new(0));
    let mut m = Methods::new();
    let (s, g) = (started.clone(), gate.clone());
    m.request("slow", None, move |_, _| {
        let (s, g) = (s.clone(), g.clone());
        boxed(async move {
            s.fetch_add(1, Ordering::SeqCst);
            let permit = g
                .acquire()
                .await
                .map_err(|_| HandlerError::from("closed"))?;
            permit.forget();
            Ok(json!("done").into())
        })
    });
    let (mut client, server) = pair().await;
    let mut cfg = PeerConfig::new(SERVER_MAX_FRAME, "limits");
    cfg.max_in_flight = 3;
    let peer = Peer::spawn(server, Arc::new(m), cfg);
    let mut all = Vec::new();
    for i in 1..=10 {
        all.extend(frame(&format!(
            r#"{{"jsonrpc":"2.0","id":{i},"method":"slow","params":{{}}}}"#
        )));
    }
    client.write_all(&all).await.expect("send");
    until(|| started.load(Ordering::SeqCst) == 3).await;
    assert_eq!(peer.requests_in_flight(), 3);
    // Ten requests arrived, three run: the others stay unread while those three do.
    tokio::task::yield_now().await;
    assert_eq!(started.load(Ordering::SeqCst), 3);
    gate.add_permits(1);
    until(|| started.load(Ordering::SeqCst) == 4).await;
    assert_eq!(peer.requests_in_flight(), 3);
    gate.add_permits(6);
    until(|| started.load(Ordering::SeqCst) == 10).await;
    gate.add_permits(3);
    until(|| peer.requests_in_flight() == 0).await;
    // All ten answers arrive.
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while String::from_utf8_lossy(&got)
        .matches(r#""result":"done""#)
        .count()
        < 10
    {
        let n = guard(client.read(&mut buf)).await.expect("read");
        assert!(n > 0, "closed early");
        got.extend_from_slice(&buf[..n]);
    }
}

/// A method that answers with `size` bytes, counting its calls.
fn big_answers(calls: Arc<AtomicUsize>, size: usize) -> Methods {
    let mut m = Methods::new();
    m.request("big", None, move |_, _| {
        calls.fetch_add(1, Ordering::SeqCst);
        let s = "x".repeat(size);
        boxed(async move { Ok(Reply::new(json!(s))) })
    });
    m
}

/// In virtual time over an in-memory pipe (no kernel buffers): the stall deadline passes at
/// once, and the test checks that it is the deadline, not something earlier, that closes.
#[tokio::test(start_paused = true)]
async fn limit_unread_output_stops_reading_then_closes_after_the_stall_deadline() {
    let calls = Arc::new(AtomicUsize::new(0));
    let (mut client, server) = tokio::io::duplex(16 * 1024);
    let mut cfg = PeerConfig::new(SERVER_MAX_FRAME, "limits");
    cfg.max_output = 256 * 1024;
    cfg.congest_at = 16 * 1024;
    cfg.output_stall_timeout = Some(Duration::from_secs(5));
    let peer = Peer::spawn(server, Arc::new(big_answers(calls.clone(), 10_000)), cfg);
    let mut congestion = peer.congestion();
    // The client asks for 2,000 answers of 10 kB (20 MB) and reads none of them.
    let req = frame(r#"{"jsonrpc":"2.0","id":1,"method":"big","params":{}}"#);
    let writer = tokio::spawn(async move {
        for _ in 0..2_000 {
            if client.write_all(&req).await.is_err() {
                break;
            }
        }
        client
    });
    guard(congestion.wait_for(|c| *c)).await.expect("congested");
    let congested = tokio::time::Instant::now();
    let reason = guard(peer.closed()).await;
    assert_eq!(
        reason,
        CloseReason::Io("output stalled: the peer does not read".into())
    );
    let stalled = congested.elapsed();
    assert!(
        stalled >= Duration::from_secs(5) && stalled < Duration::from_secs(6),
        "closed {stalled:?} after the congestion, the deadline is 5 s"
    );
    // What was read is bounded by the output limit plus the pipe's buffer, not by what the
    // client sent.
    let answered = calls.load(Ordering::SeqCst);
    assert!(
        answered < 64,
        "{answered} requests were read although the answers were not"
    );
    let _client = guard(writer).await.expect("writer");
}

#[tokio::test]
async fn limit_output_over_four_times_the_limit_closes_the_connection() {
    let (_client, server) = pair().await;
    let mut cfg = PeerConfig::new(SERVER_MAX_FRAME, "limits");
    cfg.max_output = 64 * 1024;
    let peer = Peer::spawn(server, Arc::new(Methods::new()), cfg);
    // Notifications the other side never reads (as task_ready to a stuck worker).
    let big = "y".repeat(8 * 1024);
    let mut sent = 0;
    while peer.notify("task_ready", json!({ "pad": big })).is_ok() {
        sent += 1;
        assert!(peer.backlog() <= 4 * 64 * 1024 + 16 * 1024);
        assert!(sent < 10_000, "never closed");
        tokio::task::yield_now().await;
    }
    let reason = guard(peer.closed()).await;
    assert!(
        matches!(&reason, CloseReason::Io(r) if r.contains("the peer does not read")),
        "{reason:?}"
    );
}

#[tokio::test]
async fn limit_congestion_is_reported_and_cleared_when_the_peer_reads_again() {
    let (mut client, server) = pair().await;
    let mut cfg = PeerConfig::new(SERVER_MAX_FRAME, "limits");
    cfg.congest_at = 32 * 1024;
    let peer = Peer::spawn(server, Arc::new(Methods::new()), cfg);
    let mut congestion = peer.congestion();
    assert!(!*congestion.borrow());
    let pad = "z".repeat(1024);
    while !*congestion.borrow() {
        peer.notify("task_ready", json!({ "pad": pad }))
            .expect("queued");
        tokio::task::yield_now().await;
    }
    assert!(peer.backlog() > 32 * 1024);
    // The client reads everything: the flag drops again.
    let reader = tokio::spawn(async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match client.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    });
    guard(congestion.wait_for(|c| !*c)).await.expect("cleared");
    peer.abort();
    let _ = guard(reader).await;
}

#[tokio::test]
async fn request_ids_are_echoed_exactly_as_sent_big_integers_included() {
    let mut m = Methods::new();
    m.request("ping", None, |_, _| {
        boxed(async { Ok(json!("pong").into()) })
    });
    let (mut client, server) = pair().await;
    let _peer = Peer::spawn(
        server,
        Arc::new(m),
        PeerConfig::new(SERVER_MAX_FRAME, "ids"),
    );
    for id in ["123456789012345678901234567890", "1e3", "7", "\"x\""] {
        let req = format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"ping","params":{{}}}}"#);
        client.write_all(&frame(&req)).await.expect("send");
        let want = frame(&format!(r#"{{"jsonrpc":"2.0","id":{id},"result":"pong"}}"#));
        let mut got = vec![0u8; want.len()];
        guard(client.read_exact(&mut got)).await.expect("answer");
        assert_eq!(
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(&want)
        );
    }
}

#[tokio::test]
async fn requests_done_waits_for_what_a_closed_connection_sent_before_closing() {
    let gate = Arc::new(Semaphore::new(0));
    let started = Arc::new(AtomicUsize::new(0));
    let mut m = Methods::new();
    let (g, st) = (gate.clone(), started.clone());
    m.notification("task_done", None, move |_, _| {
        let (g, st) = (g.clone(), st.clone());
        boxed(async move {
            st.fetch_add(1, Ordering::SeqCst);
            let permit = g
                .acquire()
                .await
                .map_err(|_| HandlerError::from("closed"))?;
            permit.forget();
            Ok(json!([]).into())
        })
    });
    let (mut client, server) = pair().await;
    let peer = Peer::spawn(
        server,
        Arc::new(m),
        PeerConfig::new(SERVER_MAX_FRAME, "done"),
    );
    client
        .write_all(&frame(
            r#"{"jsonrpc":"2.0","method":"task_done","params":{"cookie":"c","outargs":{}}}"#,
        ))
        .await
        .expect("send");
    drop(client);
    assert_eq!(guard(peer.closed()).await, CloseReason::PeerClosed);
    assert_eq!(started.load(Ordering::SeqCst), 1);
    // The handler still runs: not done yet.
    let mut done = Box::pin(peer.requests_done());
    assert!(futures::poll!(done.as_mut()).is_pending());
    gate.add_permits(1);
    guard(done).await;
    assert_eq!(peer.requests_in_flight(), 0);
}

#[tokio::test]
async fn what_a_vanished_peer_sent_before_it_went_is_still_acted_on() {
    let gate = Arc::new(Semaphore::new(0));
    let results = Arc::new(AtomicUsize::new(0));
    let mut m = Methods::new();
    let g = gate.clone();
    m.request("block", None, move |_, _| {
        let g = g.clone();
        boxed(async move {
            let permit = g
                .acquire()
                .await
                .map_err(|_| HandlerError::from("closed"))?;
            permit.forget();
            Ok(json!("unblocked").into())
        })
    });
    let r2 = results.clone();
    m.notification("task_done", None, move |_, _| {
        r2.fetch_add(1, Ordering::SeqCst);
        boxed(async { Ok(json!([]).into()) })
    });
    let (mut client, server) = pair().await;
    let mut cfg = PeerConfig::new(SERVER_MAX_FRAME, "leftovers");
    cfg.max_in_flight = 1;
    let peer = Peer::spawn(server, Arc::new(m), cfg);
    // One request keeps the reader paused; the result after it waits unread in the socket.
    client
        .write_all(&frame(
            r#"{"jsonrpc":"2.0","id":1,"method":"block","params":{}}"#,
        ))
        .await
        .expect("send");
    until(|| peer.requests_in_flight() == 1).await;
    client
        .write_all(&frame(
            r#"{"jsonrpc":"2.0","method":"task_done","params":{"cookie":"c","outargs":{}}}"#,
        ))
        .await
        .expect("send");
    // The other side goes away with a reset; the next write to it fails.
    #[allow(deprecated)] // a zero linger does not block: it resets at once
    client.set_linger(Some(Duration::ZERO)).expect("linger");
    drop(client);
    let mut reason = None;
    for _ in 0..200 {
        if peer.notify("task_ready", json!({})).is_err() {
            reason = peer.close_reason();
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(matches!(reason, Some(CloseReason::Io(_))), "{reason:?}");
    until(|| results.load(Ordering::SeqCst) == 1).await;
    gate.add_permits(1);
}

#[tokio::test]
async fn a_graceful_close_delivers_the_last_frames_even_with_unread_input() {
    let (mut other, sock) = pair().await;
    let peer = Peer::spawn(
        sock,
        Arc::new(Methods::new()),
        PeerConfig::new(SERVER_MAX_FRAME, "linger"),
    );
    // The other side does not read for now: 2 MB wait in the socket buffers and the queue,
    // and the last frame (a worker's result, say) sits behind them.
    let pad = "p".repeat(64 * 1024);
    for _ in 0..32 {
        peer.notify("task_ready", json!({ "pad": pad }))
            .expect("queued");
    }
    peer.notify(
        "task_done",
        json!({"cookie": "the-last-one", "outargs": {}}),
    )
    .expect("queued");
    peer.close();
    // Input that this side will never read arrives after it closed.
    other
        .write_all(&frame(
            r#"{"jsonrpc":"2.0","method":"task_ready","params":{}}"#,
        ))
        .await
        .expect("send");
    // Now the other side reads everything: it must get the last frame and a clean end, not
    // a reset that threw away what was still queued.
    let mut got = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let end = guard(async {
        loop {
            match other.read(&mut buf).await {
                Ok(0) => return Ok(()),
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) => return Err(e),
            }
        }
    })
    .await;
    assert!(
        end.is_ok(),
        "connection reset after {} bytes: {end:?}",
        got.len()
    );
    assert!(
        String::from_utf8_lossy(&got[got.len().saturating_sub(200)..]).contains("the-last-one"),
        "the last frame was lost ({} bytes received)",
        got.len()
    );
}
