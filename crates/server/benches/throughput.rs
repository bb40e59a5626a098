//! End-to-end server throughput over loopback: one client pipelining `create_job`, workers
//! claiming and finishing tasks, `job_done` back to the client. Two backends: the small
//! in-memory test backend (measures the server: sessions, dispatcher, registry, rpc layer)
//! and the real JCL engine over a `MemoryStore` (a one-action `calladd` workflow).
//! Run: `cargo bench -p jobcenter-server --bench throughput`.

#[path = "../tests/common/backend.rs"]
#[allow(dead_code)]
mod backend;

use backend::MiniBackend;
use jobcenter_engine::backend::Backend;
use jobcenter_engine::{Catalog, Engine, EngineConfig, Stage};
use jobcenter_rpc::{HandlerFuture, Methods, Peer, PeerConfig, Reply};
use jobcenter_server::{AuthConfig, ListenerConfig, Server, ServerConfig};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, Semaphore};

fn ok(v: Value) -> HandlerFuture {
    Box::pin(async move { Ok(Reply::new(v)) })
}

async fn connect(addr: SocketAddr, methods: Methods, who: &str) -> Peer {
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    tcp.set_nodelay(true).expect("nodelay");
    let peer = Peer::spawn(tcp, Arc::new(methods), PeerConfig::new(1 << 24, who));
    let r = peer
        .call(
            "hello",
            json!({"who": who, "method": "password", "token": "x"}),
        )
        .await
        .expect("hello");
    assert_eq!(r[0], json!(true));
    peer
}

async fn worker(addr: SocketAddr, name: &str, slots: u32) -> Peer {
    let mut m = Methods::new();
    m.notification("greetings", None, |_, _| ok(Value::Null));
    m.request("ping", None, |_, _| ok(json!("pong!")));
    m.notification("task_ready", None, |peer: Peer, p| {
        Box::pin(async move {
            let r = peer
                .call(
                    "get_task",
                    json!({"actionname": p["actionname"], "job_id": p["job_id"]}),
                )
                .await;
            if let Ok(Value::Array(t)) = r {
                if t.len() == 4 {
                    let n = t[2]["counter"].as_f64().unwrap_or(0.0)
                        + t[2]["step"].as_f64().unwrap_or(1.0);
                    let _ = peer.notify(
                        "task_done",
                        json!({"cookie": t[1], "outargs": {"counter": n}}),
                    );
                }
            }
            Ok(Reply::new(Value::Null))
        })
    });
    let peer = connect(addr, m, "theEmployee").await;
    let r = peer
        .call(
            "announce",
            json!({"workername": name, "actionname": "add", "slots": slots}),
        )
        .await
        .expect("announce");
    assert_eq!(r, json!([true, "success"]));
    peer
}

async fn run(addr: SocketAddr, input: &'static str, jobs: usize, in_flight: usize) -> Duration {
    let (tx, mut rx) = mpsc::unbounded_channel::<i64>();
    let mut m = Methods::new();
    m.notification("greetings", None, |_, _| ok(Value::Null));
    m.notification("job_done", None, move |_, p| {
        let _ = tx.send(p["job_id"].as_i64().unwrap_or(0));
        ok(Value::Null)
    });
    let client = connect(addr, m, "theCustomer").await;
    let sem = Arc::new(Semaphore::new(in_flight));
    let start = Instant::now();
    let sem2 = sem.clone();
    let c2 = client.clone();
    let producer = tokio::spawn(async move {
        for n in 0..jobs {
            let permit = sem2.clone().acquire_owned().await.expect("semaphore");
            let c = c2.clone();
            tokio::spawn(async move {
                let r = c
                    .call(
                        "create_job",
                        json!({"wfname": "calladd", "inargs": {input: n}, "vtag": null}),
                    )
                    .await
                    .expect("create_job");
                assert!(r[0].is_i64(), "{r}");
                permit.forget();
            });
        }
    });
    for _ in 0..jobs {
        rx.recv().await.expect("job_done");
        sem.add_permits(1);
    }
    let elapsed = start.elapsed();
    producer.await.expect("producer");
    client.close();
    elapsed
}

fn engine() -> Arc<dyn Backend> {
    let mut cat = Catalog::with_stage(Stage::C);
    let add = "action add:\nin:\n    counter number\n    step number 1\nout:\n    counter number\n";
    let calladd = "workflow calladd:\nin:\n    input number\nout:\n    output number\nwfomap:\n    output = v.thing\ndo:\n    call add:\n        counter = a.input\n    into:\n        thing = o.counter\n";
    for (f, src) in [("add.ac", add), ("calladd.wf", calladd)] {
        if let Err(e) = cat.compile(f, src) {
            panic!("{f}: {e:?}");
        }
    }
    Engine::new(
        cat,
        jobcenter_store::MemoryStore::new(),
        EngineConfig::default(),
    )
    .start()
}

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
    run(addr, input, 2_000, 128).await;
    let seq = 500;
    let t = run(addr, input, seq, 1).await;
    println!(
        "{label}: sequential: {seq} jobs in {:.3} s = {:.0} µs per job (create_job → task_ready → get_task → task_done → job_done)",
        t.as_secs_f64(),
        t.as_secs_f64() * 1e6 / seq as f64
    );
    for in_flight in [32, 256] {
        let n = 20_000;
        let t = run(addr, input, n, in_flight).await;
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
        suite("test backend", MiniBackend::new(), "counter").await;
        suite("JCL engine", engine(), "input").await;
    });
}
