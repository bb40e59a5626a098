//! The JSON-RPC dispatcher: arbitrary bytes from the other side of a real [`Peer`] running
//! over `tokio::io::duplex`, with a server-like or a client-like method table.
//!
//! Input: one control byte, then the raw byte stream the other side sends.
//! * bit 0: method table: 0 = server side (`hello`, state-gated `create_job`, ...),
//!   1 = client side (`greetings`, `job_done`, `ping`, `task_ready`);
//! * bits 1-2: frame limit (64, 4096, SERVER_MAX_FRAME, CLIENT_MAX_FRAME);
//! * bits 3-4: number of calls this side makes before reading (ids `jc<N>-1`, ...; the text
//!   `jc0-` in the input is replaced by this peer's id prefix, so responses can match);
//! * bit 5: start in state `auth`.
//!
//! Invariants checked: nothing panics or hangs (5 s per input); the peer closes once the
//! input ends; every outgoing call finishes; everything the peer writes is a sequence of
//! well-formed netstrings whose payloads are valid JSON-RPC messages; a fatal error is
//! answered with a -32600 error with id null.
#![no_main]

use bytes::BytesMut;
use jobcenter_rpc::wire::{classify, Incoming, NetstringCodec, CLIENT_MAX_FRAME, SERVER_MAX_FRAME};
use jobcenter_rpc::{
    CallError, CloseReason, HandlerError, HandlerFuture, Methods, Peer, PeerConfig, Reply,
};
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Value};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::codec::Decoder;

fn ready(v: Value) -> HandlerFuture {
    Box::pin(std::future::ready(Ok(Reply::new(v))))
}

/// A method table shaped like the server's session methods.
fn server_methods() -> Methods {
    let mut m = Methods::new();
    m.request("hello", None, |peer, params| {
        let ok = params.get("who").is_some_and(Value::is_string);
        if ok {
            peer.set_state(Some("auth"));
        }
        ready(json!([ok, "welcome"]))
    });
    m.request(
        "create_job",
        Some("auth"),
        |peer, params| -> HandlerFuture {
            Box::pin(async move {
                let wf = params
                    .get("wfname")
                    .and_then(Value::as_str)
                    .ok_or(HandlerError::new("no workflowname?"))?
                    .to_string();
                Ok(
                    Reply::values(vec![json!(4711), Value::Null]).after(move || {
                        let _ =
                            peer.notify("job_done", json!({"job_id": 4711, "outargs": {"wf": wf}}));
                    }),
                )
            })
        },
    );
    m.request("slow", None, |_peer, params| -> HandlerFuture {
        Box::pin(async move {
            tokio::task::yield_now().await;
            Ok(Reply::values(vec![Value::Object(params), json!(1)]))
        })
    });
    m.request("ask_back", Some("auth"), |peer, _params| -> HandlerFuture {
        Box::pin(async move {
            // The server calls the client while handling a request (like `ping`).
            match peer.call("ping", json!({})).await {
                Ok(v) => Ok(Reply::new(v)),
                Err(e) => Err(HandlerError::new(e.to_string())),
            }
        })
    });
    m.request("fail", None, |_peer, _params| -> HandlerFuture {
        Box::pin(async { Err(HandlerError::new("it failed")) })
    });
    m.request("bye", None, |peer, _params| {
        peer.close();
        ready(json!("bye"))
    });
    m.notification("task_done", Some("auth"), |_peer, params| {
        ready(Value::Object(params))
    });
    m.notification("withdraw", None, |peer, _params| {
        peer.set_state(None);
        ready(Value::Null)
    });
    m
}

/// A method table shaped like the client library's.
fn client_methods() -> Methods {
    let mut m = Methods::new();
    m.notification("greetings", None, |_peer, params| {
        ready(Value::Object(params))
    });
    m.notification("job_done", None, |_peer, params| {
        let _ = params.get("job_id").and_then(Value::as_i64);
        ready(Value::Null)
    });
    m.request("ping", None, |_peer, _params| ready(json!("pong!")));
    m.notification("task_ready", None, |peer, params| {
        let _ = peer.notify("get_task", Value::Object(params));
        ready(Value::Null)
    });
    m
}

struct Fixture {
    rt: tokio::runtime::Runtime,
    server: Arc<Methods>,
    client: Arc<Methods>,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| Fixture {
        rt: tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime"),
        server: Arc::new(server_methods()),
        client: Arc::new(client_methods()),
    })
}

fn replace_all(hay: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(hay.len());
    let mut i = 0;
    while i < hay.len() {
        if hay[i..].starts_with(from) {
            out.extend_from_slice(to);
            i += from.len();
        } else {
            out.push(hay[i]);
            i += 1;
        }
    }
    out
}

async fn run(ctrl: u8, input: &[u8]) {
    let f = fixture();
    let methods = if ctrl & 1 == 0 { &f.server } else { &f.client };
    let max_frame = match (ctrl >> 1) & 3 {
        0 => 64,
        1 => 4096,
        2 => SERVER_MAX_FRAME,
        _ => CLIENT_MAX_FRAME,
    };
    let (ours, theirs) = tokio::io::duplex(4096);
    let peer = Peer::spawn(ours, methods.clone(), PeerConfig::new(max_frame, "fuzz"));
    if ctrl & 32 != 0 {
        peer.set_state(Some("auth"));
    }
    let calls: Vec<_> = (0..(ctrl >> 3) & 3)
        .map(|k| {
            let p = peer.clone();
            tokio::spawn(async move { p.call("create_job", json!({"wfname": "w", "k": k})).await })
        })
        .collect();
    let input = replace_all(input, b"jc0-", format!("jc{}-", peer.id()).as_bytes());
    let (mut r, mut w) = tokio::io::split(theirs);
    let writer = tokio::spawn(async move {
        // The peer may stop reading at any point (fatal error): ignore write errors.
        let _ = w.write_all(&input).await;
        let _ = w.shutdown().await;
        w
    });
    let mut out = Vec::new();
    r.read_to_end(&mut out)
        .await
        .expect("read what the peer wrote");
    let reason = peer.closed().await;
    for c in calls {
        match c.await.expect("call task") {
            Ok(_) | Err(CallError::Rpc { .. }) | Err(CallError::Closed) => {}
            Err(e) => panic!("unexpected call error {e:?}"),
        }
    }
    drop(writer.await);

    // Everything the peer wrote must be well-formed.
    let mut codec = NetstringCodec::new(usize::MAX);
    let mut buf = BytesMut::from(&out[..]);
    let mut last = None;
    while let Some(p) = codec
        .decode(&mut buf)
        .expect("peer wrote a valid netstring")
    {
        let msg = classify(&p).unwrap_or_else(|e| {
            panic!(
                "peer wrote an invalid payload {:?}: {e:?}",
                String::from_utf8_lossy(&p)
            )
        });
        if let Incoming::InvalidResponse { reason, .. } = &msg {
            panic!("peer wrote an invalid error object: {reason}");
        }
        last = Some(msg);
    }
    assert!(buf.is_empty(), "peer wrote a truncated frame");
    if let CloseReason::Fatal(_) = reason {
        // A fatal protocol error is answered with -32600 and id null before closing.
        match last {
            Some(Incoming::Response {
                id: Value::Null,
                outcome: Err(e),
            }) => assert_eq!(e.code, -32600),
            other => panic!("fatal close without a -32600 answer: {other:?}"),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&ctrl, input)) = data.split_first() else {
        return;
    };
    let f = fixture();
    f.rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(5), run(ctrl, input))
            .await
            .expect("peer hung: no close within 5 s after the input ended");
    });
});
