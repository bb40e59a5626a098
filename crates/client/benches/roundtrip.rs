//! Client round trips over loopback against a minimal JSON-RPC server peer (no engine):
//! `ping` and `call` (create_job + job_done), with 1 and 128 requests in flight.
//!
//! Run: `cargo bench -p jobcenter --bench roundtrip` (prints a small table).

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use jobcenter::{Client, ClientConfig};
use jobcenter_rpc::{HandlerFuture, Methods, Peer, PeerConfig, Reply};
use serde_json::{json, Value};
use tokio::net::TcpListener;

fn ready(v: Value) -> HandlerFuture {
    Box::pin(std::future::ready(Ok(Reply::new(v))))
}

/// A minimal server: greetings, hello, ping, and create_job answering `[id,null]` followed by
/// `job_done {id, outargs: inargs}`.
async fn minimal_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let next = Arc::new(AtomicI64::new(1));
    let mut m = Methods::new();
    m.request("hello", None, |peer, p| {
        peer.set_state(Some("auth"));
        let who = p
            .get("who")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        ready(json!([true, format!("welcome to the clientapi {who}!")]))
    });
    m.request("ping", None, |_, _| ready(json!("pong?")));
    m.request("create_job", Some("auth"), move |peer, p| {
        let id = next.fetch_add(1, Ordering::Relaxed);
        let outargs = p.get("inargs").cloned().unwrap_or(json!({}));
        let reply = Reply::new(json!([id, null])).after(move || {
            let _ = peer.notify("job_done", json!({"job_id": id, "outargs": outargs}));
        });
        Box::pin(std::future::ready(Ok(reply)))
    });
    let methods = Arc::new(m);
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            let _ = s.set_nodelay(true);
            let peer = Peer::spawn(s, methods.clone(), PeerConfig::new(999_999, "bench server"));
            let _ = peer.notify("greetings", json!({"who": "jcapi", "version": "1.1"}));
        }
    });
    port
}

async fn run<F, Fut>(label: &str, in_flight: usize, total: usize, op: F)
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let per_task = total / in_flight;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..in_flight {
        let op = op.clone();
        tasks.push(tokio::spawn(async move {
            let mut h = Histogram::<u64>::new(3).expect("histogram");
            for _ in 0..per_task {
                let t = Instant::now();
                assert!(op().await, "operation failed");
                let _ = h.record(t.elapsed().as_micros() as u64);
            }
            h
        }));
    }
    let mut hist = Histogram::<u64>::new(3).expect("histogram");
    for t in tasks {
        hist.add(t.await.expect("task")).expect("add");
    }
    let secs = started.elapsed().as_secs_f64();
    let n = per_task * in_flight;
    println!(
        "{label:<28} in_flight={in_flight:<4} n={n:<7} {:>9.0} ops/s   p50 {:>6} µs   p99 {:>6} µs",
        n as f64 / secs,
        hist.value_at_quantile(0.5),
        hist.value_at_quantile(0.99),
    );
}

fn main() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let port = minimal_server().await;
        let client = Client::connect(
            ClientConfig::new("bench", "bench")
                .port(port)
                .timeout(Duration::from_secs(10)),
        )
        .await
        .expect("connect");
        // Warm up.
        for _ in 0..2000 {
            client.call("w", json!({})).await.expect("call");
        }
        let c = client.clone();
        run("ping", 1, 20_000, move || {
            let c = c.clone();
            async move { c.ping().await }
        })
        .await;
        let c = client.clone();
        run("ping", 128, 128_000, move || {
            let c = c.clone();
            async move { c.ping().await }
        })
        .await;
        let c = client.clone();
        run("submit (create_job only)", 128, 128_000, move || {
            let c = c.clone();
            async move { c.job("w").submit().await.is_ok() }
        })
        .await;
        let c = client.clone();
        run("call (create_job+job_done)", 1, 20_000, move || {
            let c = c.clone();
            async move {
                c.call("w", json!({"x": 1}))
                    .await
                    .is_ok_and(|r| !r.is_error())
            }
        })
        .await;
        let c = client.clone();
        run("call (create_job+job_done)", 128, 128_000, move || {
            let c = c.clone();
            async move {
                c.call("w", json!({"x": 1}))
                    .await
                    .is_ok_and(|r| !r.is_error())
            }
        })
        .await;
        assert_eq!(client.waiting_jobs(), 0);
    });
}
