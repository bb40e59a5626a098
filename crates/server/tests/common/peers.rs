//! Load over real peers (the rpc layer, no raw frames): an adding worker, a client that keeps
//! `create_job` calls in flight, and the one-action `calladd` engine. Used by the stress test
//! and the throughput bench.
#![allow(dead_code)]

use jobcenter_engine::{Catalog, Engine, EngineConfig, Stage};
use jobcenter_rpc::{HandlerFuture, Methods, Peer, PeerConfig, Reply};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, Semaphore};

/// A handler future answering `v` at once.
pub fn ok(v: Value) -> HandlerFuture {
    Box::pin(async move { Ok(Reply::new(v)) })
}

/// A peer with `methods` connected to `addr` (no Nagle delay) and logged in as `who`.
pub async fn peer(addr: SocketAddr, methods: Methods, who: &str, token: &str) -> Peer {
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    tcp.set_nodelay(true).expect("nodelay");
    let p = Peer::spawn(tcp, Arc::new(methods), PeerConfig::new(1 << 24, who));
    let r = p
        .call(
            "hello",
            json!({"who": who, "method": "password", "token": token}),
        )
        .await
        .expect("hello");
    assert_eq!(r[0], json!(true));
    p
}

/// A worker (theEmployee) named `name` serving action `add` (`counter + step`, step 1 by
/// default) with `slots` slots.
pub async fn worker(addr: SocketAddr, name: &str, slots: u32) -> Peer {
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
    let p = peer(addr, m, "theEmployee", "doesThings").await;
    let r = p
        .call(
            "announce",
            json!({"workername": name, "actionname": "add", "slots": slots}),
        )
        .await
        .expect("announce");
    assert_eq!(r, json!([true, "success"]));
    p
}

/// Create `jobs` `calladd` jobs (the number in the input `input`) as theCustomer, at most
/// `in_flight` unfinished at a time, and wait for every `job_done`: the time that took.
pub async fn pump(
    addr: SocketAddr,
    input: &'static str,
    jobs: usize,
    in_flight: usize,
) -> Duration {
    let (tx, mut rx) = mpsc::unbounded_channel::<()>();
    let mut m = Methods::new();
    m.notification("greetings", None, |_, _| ok(Value::Null));
    m.notification("job_done", None, move |_, _| {
        let _ = tx.send(());
        ok(Value::Null)
    });
    let client = peer(addr, m, "theCustomer", "wantsThings").await;
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

/// The JCL engine over a `MemoryStore` with action `add` and workflow `calladd` (input
/// `input`, output `output`).
pub fn calladd_engine() -> Arc<Engine> {
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
