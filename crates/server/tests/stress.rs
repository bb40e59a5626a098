//! Many pipelined jobs through few slots: every job must finish without waiting for the
//! 60 s periodic poll (guards the pending/offer races of §8), with both backends.

mod common;

use common::{start_server, MiniBackend};
use jobcenter_engine::backend::Backend;
use jobcenter_engine::{Catalog, Engine, EngineConfig, Stage};
use jobcenter_rpc::{HandlerFuture, Methods, Peer, PeerConfig, Reply};
use jobcenter_server::Timers;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, Semaphore};

fn ok(v: Value) -> HandlerFuture {
    Box::pin(async move { Ok(Reply::new(v)) })
}

async fn peer(addr: SocketAddr, methods: Methods, who: &str, token: &str) -> Peer {
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
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

async fn pump(addr: SocketAddr, input: &'static str, jobs: usize, in_flight: usize) {
    let (tx, mut rx) = mpsc::unbounded_channel::<()>();
    let mut m = Methods::new();
    m.notification("greetings", None, |_, _| ok(Value::Null));
    m.notification("job_done", None, move |_, _| {
        let _ = tx.send(());
        ok(Value::Null)
    });
    let client = peer(addr, m, "theCustomer", "wantsThings").await;
    let sem = Arc::new(Semaphore::new(in_flight));
    let sem2 = sem.clone();
    let counter = tokio::spawn(async move {
        for _ in 0..jobs {
            rx.recv().await.expect("job_done");
            sem2.add_permits(1);
        }
    });
    let c2 = client.clone();
    let producer = async move {
        for n in 0..jobs {
            let permit = sem.clone().acquire_owned().await.expect("semaphore");
            let c = c2.clone();
            tokio::spawn(async move {
                let r = c
                    .call(
                        "create_job",
                        json!({"wfname": "calladd", "inargs": {input: n}}),
                    )
                    .await
                    .expect("create_job");
                assert!(r[0].is_i64(), "{r}");
                permit.forget();
            });
        }
        counter.await.expect("counter");
    };
    tokio::time::timeout(Duration::from_secs(30), producer)
        .await
        .expect("every job finishes well before the periodic poll");
    client.close();
}

async fn scenario(backend: Arc<dyn Backend>, input: &'static str) {
    let timers = Timers {
        poll: Duration::from_secs(3600),
        ..Timers::default()
    };
    let (handle, addr, _dir) = start_server(timers, backend).await;
    let w1 = worker(addr, "stress-1", 16).await;
    let w2 = worker(addr, "stress-2", 8).await;
    pump(addr, input, 2000, 128).await;
    w1.close();
    w2.close();
    handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c56_c67_pipelined_jobs_through_few_slots_test_backend() {
    scenario(MiniBackend::new(), "counter").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c56_c67_pipelined_jobs_through_few_slots_engine() {
    let mut cat = Catalog::with_stage(Stage::C);
    let add = "action add:\nin:\n    counter number\n    step number 1\nout:\n    counter number\n";
    let calladd = "workflow calladd:\nin:\n    input number\nout:\n    output number\nwfomap:\n    output = v.thing\ndo:\n    call add:\n        counter = a.input\n    into:\n        thing = o.counter\n";
    for (f, src) in [("add.ac", add), ("calladd.wf", calladd)] {
        if let Err(e) = cat.compile(f, src) {
            panic!("{f}: {e:?}");
        }
    }
    let engine = Engine::new(
        cat,
        jobcenter_store::MemoryStore::new(),
        EngineConfig::default(),
    )
    .start();
    scenario(engine, "input").await;
}
