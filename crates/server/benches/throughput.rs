//! End-to-end server throughput over loopback: one client pipelining `create_job`, workers
//! claiming and finishing tasks, `job_done` back to the client. Two backends: the small
//! in-memory test backend (measures the server: sessions, dispatcher, registry, rpc layer)
//! and the real JCL engine over a `MemoryStore` (a one-action `calladd` workflow).
//! Run: `cargo bench -p jobcenter-server --bench throughput`.

#[path = "../tests/common/backend.rs"]
#[allow(dead_code)]
mod backend;

#[path = "../tests/common/peers.rs"]
mod peers;

use backend::mini_backend;
use jobcenter_engine::backend::Backend;
use jobcenter_server::{AuthConfig, ListenerConfig, Server, ServerConfig};
use peers::{calladd_engine, pump, worker};
use std::sync::Arc;

async fn suite(label: &str, backend: Arc<dyn Backend>, input: &'static str) {
    let config = ServerConfig {
        listeners: vec![ListenerConfig::tcp("127.0.0.1:0".parse().expect("addr"))],
        auth: AuthConfig {
            dev_allow_any: true,
            ..AuthConfig::default()
        },
        timers: Default::default(),
        limits: Default::default(),
        http: None,
        admin: ServerConfig::DEFAULT_ADMIN.into(),
    };
    let handle = Server::start(config, backend).await.expect("server");
    let addr = handle.local_addrs()[0];
    let w1 = worker(addr, "bench-w1", 64).await;
    let w2 = worker(addr, "bench-w2", 64).await;
    // warm-up
    pump(addr, input, 2_000, 128).await;
    let seq = 500;
    let t = pump(addr, input, seq, 1).await;
    println!(
        "{label}: sequential: {seq} jobs in {:.3} s = {:.0} µs per job (create_job → task_ready → get_task → task_done → job_done)",
        t.as_secs_f64(),
        t.as_secs_f64() * 1e6 / seq as f64
    );
    for in_flight in [32, 256] {
        let n = 20_000;
        let t = pump(addr, input, n, in_flight).await;
        println!(
            "{label}: pipelined ({in_flight} in flight, 2 workers x 64 slots): {n} jobs in {:.3} s = {:.0} jobs/s",
            t.as_secs_f64(),
            n as f64 / t.as_secs_f64()
        );
    }
    w1.close();
    w2.close();
    handle.shutdown().await;
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        suite("test backend", mini_backend(), "counter").await;
        suite("JCL engine", calladd_engine(), "input").await;
    });
}
