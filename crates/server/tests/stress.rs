//! Many pipelined jobs through few slots: every job must finish without waiting for the
//! 60 s periodic poll (guards the pending/offer races of §8), with both backends.

mod common;

use common::peers::{calladd_engine, pump, worker};
use common::{mini_backend, start_server};
use jobcenter_engine::backend::Backend;
use jobcenter_server::Timers;
use std::sync::Arc;
use std::time::Duration;

async fn scenario(backend: Arc<dyn Backend>, input: &'static str) {
    let timers = Timers {
        poll: Duration::from_secs(3600),
        ..Timers::default()
    };
    let (handle, addr, _dir) = start_server(timers, backend).await;
    let w1 = worker(addr, "stress-1", 16).await;
    let w2 = worker(addr, "stress-2", 8).await;
    tokio::time::timeout(Duration::from_secs(30), pump(addr, input, 2000, 128))
        .await
        .expect("every job finishes well before the periodic poll");
    w1.close();
    w2.close();
    handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c56_c67_pipelined_jobs_through_few_slots_test_backend() {
    scenario(mini_backend(), "counter").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c56_c67_pipelined_jobs_through_few_slots_engine() {
    scenario(calladd_engine(), "input").await;
}
