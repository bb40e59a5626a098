//! Call round trips over loopback TCP (1 and 128 in flight) against a raw netstring ping-pong.
//!
//! Run with `cargo bench -p jobcenter-rpc --bench roundtrip`; prints one line per scenario.
//! Env: `ROUNDTRIP_N` (calls per scenario, default 20000), `ROUNDTRIP_RUNTIME=current` for a
//! single-threaded runtime. The scenarios run interleaved for 5 rounds; median and best are
//! printed.

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use jobcenter_rpc::wire::{NetstringCodec, CLIENT_MAX_FRAME, SERVER_MAX_FRAME};
use jobcenter_rpc::{HandlerFuture, Methods, Peer, PeerConfig};
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::codec::Framed;

type BenchResult<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

fn report(name: &str, calls: usize, elapsed: Duration) -> f64 {
    let per_s = calls as f64 / elapsed.as_secs_f64();
    println!(
        "{name:<34} {calls:>7} calls in {:>8.1} ms  {per_s:>10.0} calls/s  {:>7.2} us/call",
        elapsed.as_secs_f64() * 1e3,
        elapsed.as_secs_f64() * 1e6 / calls as f64
    );
    per_s
}

async fn connected() -> BenchResult<(TcpStream, TcpStream)> {
    let l = TcpListener::bind("127.0.0.1:0").await?;
    let addr = l.local_addr()?;
    let (c, a) = tokio::join!(TcpStream::connect(addr), l.accept());
    let c = c?;
    let (s, _) = a?;
    c.set_nodelay(true)?;
    s.set_nodelay(true)?;
    Ok((c, s))
}

/// Raw baseline: the client sends a ping frame, the server echoes a fixed pong frame.
async fn raw_ping_pong(n: usize) -> BenchResult<Duration> {
    let (c, s) = connected().await?;
    let server = tokio::spawn(async move {
        let mut f = Framed::new(s, NetstringCodec::new(SERVER_MAX_FRAME));
        let pong = Bytes::from_static(br#"{"jsonrpc":"2.0","id":"jc1-1","result":"pong?"}"#);
        while let Some(Ok(_req)) = f.next().await {
            if f.send(pong.clone()).await.is_err() {
                break;
            }
        }
    });
    let mut f = Framed::new(c, NetstringCodec::new(CLIENT_MAX_FRAME));
    let ping = Bytes::from_static(br#"{"jsonrpc":"2.0","method":"ping","params":{},"id":"jc1-1"}"#);
    let start = Instant::now();
    for _ in 0..n {
        f.send(ping.clone()).await?;
        match f.next().await {
            Some(Ok(_)) => {}
            _ => return Err("raw server went away".into()),
        }
    }
    let el = start.elapsed();
    drop(f);
    let _ = server.await;
    Ok(el)
}

fn methods() -> Arc<Methods> {
    let mut m = Methods::new();
    m.request("ping", None, |_, _| -> HandlerFuture {
        Box::pin(async { Ok(json!("pong?").into()) })
    });
    Arc::new(m)
}

async fn peers() -> BenchResult<(Peer, Peer)> {
    let (c, s) = connected().await?;
    let server = Peer::spawn(
        s,
        methods(),
        PeerConfig::new(SERVER_MAX_FRAME, "bench-server"),
    );
    let client = Peer::spawn(
        c,
        Arc::new(Methods::new()),
        PeerConfig::new(CLIENT_MAX_FRAME, "bench-client"),
    );
    Ok((server, client))
}

async fn rpc_sequential(n: usize) -> BenchResult<Duration> {
    let (server, client) = peers().await?;
    let start = Instant::now();
    for _ in 0..n {
        client.call("ping", json!({})).await?;
    }
    let el = start.elapsed();
    client.close();
    server.closed().await;
    Ok(el)
}

async fn rpc_pipelined(n: usize, in_flight: usize) -> BenchResult<Duration> {
    let (server, client) = peers().await?;
    let per_task = n / in_flight;
    let start = Instant::now();
    let tasks: Vec<_> = (0..in_flight)
        .map(|_| {
            let c = client.clone();
            tokio::spawn(async move {
                for _ in 0..per_task {
                    c.call("ping", json!({})).await?;
                }
                Ok::<_, jobcenter_rpc::CallError>(())
            })
        })
        .collect();
    for t in tasks {
        t.await??;
    }
    let el = start.elapsed();
    client.close();
    server.closed().await;
    Ok(el)
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort_unstable();
    v[v.len() / 2]
}

async fn run(n: usize, rounds: usize) -> BenchResult<()> {
    // Warm-up (connection setup, allocator, branch predictors).
    raw_ping_pong(n / 10).await?;
    rpc_sequential(n / 10).await?;
    // Interleave the scenarios so that load from other processes hits them alike.
    let (mut raw, mut seq, mut pip) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        raw.push(raw_ping_pong(n).await?);
        seq.push(rpc_sequential(n).await?);
        pip.push(rpc_pipelined(n * 5, 128).await?);
    }
    println!("median of {rounds} rounds:");
    let raw_m = report("raw netstring ping-pong (1)", n, median(&mut raw));
    let seq_m = report("rpc call, 1 in flight", n, median(&mut seq));
    let pip_m = report("rpc call, 128 in flight", n * 5, median(&mut pip));
    println!("best of {rounds} rounds:");
    let raw_b = report("raw netstring ping-pong (1)", n, raw[0]);
    let seq_b = report("rpc call, 1 in flight", n, seq[0]);
    report("rpc call, 128 in flight", n * 5, pip[0]);
    println!(
        "sequential rpc time / raw time: median {:.2}x, best {:.2}x; pipelined median {:.0} calls/s",
        raw_m / seq_m,
        raw_b / seq_b,
        pip_m
    );
    Ok(())
}

fn main() -> BenchResult<()> {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing useful: keep it quick.
    let quick = !std::env::args().any(|a| a == "--bench");
    let n: usize = std::env::var("ROUNDTRIP_N")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if quick { 1000 } else { 20_000 });
    let rounds = if quick { 1 } else { 5 };
    let current = std::env::var("ROUNDTRIP_RUNTIME").is_ok_and(|v| v == "current");
    let rt = if current {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?
    };
    println!(
        "runtime: {}, n = {n}",
        if current {
            "current_thread"
        } else {
            "multi_thread"
        }
    );
    rt.block_on(run(n, rounds))
}
