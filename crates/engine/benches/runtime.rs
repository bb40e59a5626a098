//! Benchmark of the job runtime: one whole job of a one-action workflow per iteration
//! (`create_job` → `get_task` → `task_done` → finished → archived), as the API server
//! drives it, with one event subscriber. Reports jobs per second, for the in-memory store and
//! for the durable journal store.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use futures::executor::block_on;
use jobcenter_engine::backend::{Backend, CreateJob, Event};
use jobcenter_engine::compile::Catalog;
use jobcenter_engine::{Engine, EngineConfig};
use jobcenter_store::Store;
use serde_json::{json, Map};
use std::time::Duration;

const ACTION: &str =
    "action b_add:\nin:\n    counter number\n    step number 1\nout:\n    counter number\n";
const WORKFLOW: &str = "workflow b_one:\nin:\n    input number\nout:\n    output number\nwfomap:\n    output = v.sum\ndo:\n    call b_add:\n        counter = a.input\n    into:\n        sum = o.counter\n";

fn catalog() -> Catalog {
    let mut cat = Catalog::new();
    if let Err(e) = cat.compile("b_add.ac", ACTION) {
        panic!("action: {e:?}");
    }
    if let Err(e) = cat.compile("b_one.wf", WORKFLOW) {
        panic!("workflow: {e:?}");
    }
    cat
}

fn bench_job(c: &mut Criterion) {
    bench_store(c, "one_action_job", jobcenter_store::MemoryStore::new());
    let dir = tempfile::tempdir().expect("temp dir");
    // Not started, so every transaction is synced on its own (no group commit): the cost
    // of one durable transaction at a time.
    let sqlite = jobcenter_store::SqliteStore::open(dir.path().join("bench.db")).expect("sqlite");
    bench_store(c, "one_action_job_sqlite", sqlite);
}

fn bench_store<S: Store>(c: &mut Criterion, name: &str, store: S) {
    let cat = catalog();
    let config = EngineConfig {
        global_env: json!({"version": "0.1"})
            .as_object()
            .cloned()
            .unwrap_or_default(),
        archive_after: Duration::ZERO,
        ..EngineConfig::default()
    };
    let engine = Engine::new(cat, store, config);
    let mut events = engine.subscribe();
    if let Err(e) = block_on(engine.announce("bw".into(), "b_add".into(), "bench".into(), None)) {
        panic!("announce: {e}");
    }
    let mut inargs = Map::new();
    inargs.insert("input".into(), json!(5));

    let mut group = c.benchmark_group("runtime");
    group.throughput(Throughput::Elements(1));
    group.bench_function(name, |b| {
        b.iter(|| {
            let id = block_on(engine.create_job(CreateJob {
                wfname: "b_one".into(),
                inargs: inargs.clone(),
                vtag: None,
                who: "bench".into(),
                env: None,
            }))
            .unwrap_or_default();
            let claim = block_on(engine.get_task("bw".into(), "b_add".into(), Some(id)));
            let Ok(Some(claim)) = claim else {
                panic!("no task for job {id}");
            };
            let done = block_on(engine.task_done(claim.cookie, json!({"counter": 6})));
            assert!(done.is_ok());
            // What the server does on job:finished: take the result from the event.
            while let Ok(ev) = events.try_recv() {
                if let Event::JobFinished {
                    job_id,
                    outargs: Some(out),
                } = ev
                {
                    if job_id == id {
                        assert_eq!(out, json!({"output": 6}));
                    }
                }
            }
            // Archival (normally the timer task, one minute later).
            assert!(engine.run_due().is_ok());
        })
    });
    group.finish();
}

/// Whole jobs from several threads at once (each thread: its own worker name), to see the
/// effect of the store lock: jobs/s over all threads.
fn bench_parallel(c: &mut Criterion) {
    const THREADS: u64 = 2;
    let config = EngineConfig {
        archive_after: Duration::ZERO,
        ..EngineConfig::default()
    };
    let engine = std::sync::Arc::new(Engine::new(
        catalog(),
        jobcenter_store::MemoryStore::new(),
        config,
    ));
    for t in 0..THREADS {
        let r = block_on(engine.announce(format!("bw{t}"), "b_add".into(), "bench".into(), None));
        assert!(r.is_ok());
    }
    let mut group = c.benchmark_group("runtime");
    group.throughput(Throughput::Elements(1));
    group.bench_function("one_action_job_2_threads", |b| {
        b.iter_custom(|iters| {
            let start = std::time::Instant::now();
            std::thread::scope(|s| {
                for t in 0..THREADS {
                    let engine = engine.clone();
                    s.spawn(move || {
                        let worker = format!("bw{t}");
                        let mut inargs = Map::new();
                        inargs.insert("input".into(), json!(5));
                        for _ in 0..iters / THREADS {
                            let id = block_on(engine.create_job(CreateJob {
                                wfname: "b_one".into(),
                                inargs: inargs.clone(),
                                vtag: None,
                                who: "bench".into(),
                                env: None,
                            }))
                            .unwrap_or_default();
                            let claim =
                                block_on(engine.get_task(worker.clone(), "b_add".into(), Some(id)));
                            let Ok(Some(claim)) = claim else {
                                panic!("no task for job {id}");
                            };
                            let done =
                                block_on(engine.task_done(claim.cookie, json!({"counter": 6})));
                            assert!(done.is_ok());
                        }
                    });
                }
            });
            assert!(engine.run_due().is_ok());
            start.elapsed()
        })
    });
    group.finish();
}

criterion_group!(benches, bench_job, bench_parallel);
criterion_main!(benches);
