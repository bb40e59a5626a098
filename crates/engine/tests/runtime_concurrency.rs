//! Many clients and competing workers on one engine (multi-threaded runtime): every job is
//! claimed exactly once and finishes with the right result.

#[path = "runtime_support.rs"]
mod support;

use std::collections::HashMap;
use std::sync::Arc;

use jobcenter_engine::backend::{Backend, Event};
use jobcenter_engine::Engine;
use parking_lot::Mutex;
use serde_json::json;
use support::{fixture_catalog, part4_config, run_job};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn competing_workers_claim_each_task_once() {
    let engine: Arc<Engine> = Engine::new(
        fixture_catalog(),
        jobcenter_store::MemoryStore::new(),
        part4_config(),
    )
    .start();
    let claims: Arc<Mutex<HashMap<i64, usize>>> = Arc::default();
    for w in 0..4 {
        let name = format!("w{w}");
        engine
            .announce(name.clone(), "c_add".into(), "jc_admin".into(), None)
            .await
            .expect("announce");
        let mut events = engine.subscribe();
        let e = engine.clone();
        let claims = claims.clone();
        tokio::spawn(async move {
            while let Some(ev) = events.recv().await {
                let Event::ActionReady { action, job_id, .. } = ev else {
                    continue;
                };
                let Ok(Some(claim)) = e.get_task(name.clone(), action, Some(job_id)).await else {
                    continue;
                };
                *claims.lock().entry(job_id).or_default() += 1;
                let c = claim.inargs["counter"].as_i64().unwrap_or(0);
                let s = claim.inargs["step"].as_i64().unwrap_or(0);
                let _ = e.task_done(claim.cookie, json!({"counter": c + s})).await;
            }
        });
    }
    let mut clients = Vec::new();
    for c in 0..4i64 {
        let e = engine.clone();
        clients.push(tokio::spawn(async move {
            let mut results = Vec::new();
            for i in 0..50i64 {
                let n = c * 1000 + i;
                let r = run_job(&e, "k01", json!({ "input": n })).await;
                results.push((n, r));
            }
            results
        }));
    }
    let mut ids = Vec::new();
    for c in clients {
        for (n, r) in c.await.expect("client task") {
            let (id, out) = r.expect("job finished");
            assert_eq!(out, json!({ "output": n + 1 }));
            ids.push(id);
        }
    }
    assert_eq!(ids.len(), 200);
    let claims = claims.lock();
    for id in ids {
        assert_eq!(claims.get(&id), Some(&1), "job {id} claimed once");
    }
}
