//! End to end against the real engine (`jobcenter_engine::Engine` over a `MemoryStore`):
//! raw netstring clients and workers on loopback TCP, JCL workflows compiled in the test.

mod common;

use common::{login, start_server, RawClient, WAIT};
use jobcenter_engine::{Catalog, Engine, EngineConfig, Stage};
use jobcenter_server::{ServerHandle, Timers};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

const SOURCES: &[(&str, &str)] = &[
    (
        "add.ac",
        "action add:\nin:\n    counter number\n    step number 1\nout:\n    counter number\n",
    ),
    (
        "calladd.wf",
        "workflow calladd:\nin:\n    input number\nout:\n    output number\nwfomap:\n    output = v.thing\ndo:\n    call add:\n        counter = a.input\n    into:\n        thing = o.counter\n",
    ),
    (
        "radd.ac",
        "action radd:\nin:\n    counter number\nout:\n    counter number\nconfig:\n    retryable = true\n",
    ),
    (
        "callradd.wf",
        "workflow callradd:\nin:\n    input number\nout:\n    output number\nwfomap:\n    output = v.thing\ndo:\n    call radd:\n        counter = a.input\n    into:\n        thing = o.counter\n",
    ),
    (
        "soft.ac",
        "action soft:\nin:\n    x number\nout:\n    y number\nconfig:\n    retry = '{\"tries\": 3, \"interval\": \"10 milliseconds\"}'\n",
    ),
    (
        "callsoft.wf",
        "workflow callsoft:\nin:\n    x number\nout:\n    y number\nwfomap:\n    y = v.y\ndo:\n    call soft:\n        x = a.x\n    into:\n        y = o.y\n",
    ),
    (
        "paint.ac",
        "action paint:\nin:\n    color string\nout:\n    done boolean\nconfig:\n    filter = '[\"color\"]'\n",
    ),
    (
        "callpaint.wf",
        "workflow callpaint:\nin:\n    color string\nout:\n    done boolean\nwfomap:\n    done = v.done\ndo:\n    call paint:\n        color = a.color\n    into:\n        done = o.done\n",
    ),
    (
        "sleeper.wf",
        "workflow sleeper:\nin:\n    d string\nout:\n    r string\nwfomap:\n    r = v.r\ndo:\n    sleep a.d\n    let:\n        r = 'woke up'\n",
    ),
    (
        "raiser.wf",
        "workflow raiser:\nin:\n    x number\nout:\n    y number optional\ndo:\n    raise_error \"let's raise an error\"\n",
    ),
];

struct Rig {
    handle: ServerHandle,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

async fn rig_with(timers: Timers) -> Rig {
    rig_with_engine(timers, EngineConfig::default()).await.0
}

/// A rig whose engine has `config`; the engine too.
async fn rig_with_engine(
    timers: Timers,
    config: EngineConfig,
) -> (Rig, Arc<Engine<jobcenter_store::MemoryStore>>) {
    let mut cat = Catalog::with_stage(Stage::C);
    for (file, src) in SOURCES {
        if let Err(e) = cat.compile(file, src) {
            panic!("{file} does not compile: {e:?}");
        }
    }
    let engine = Engine::new(cat, jobcenter_store::MemoryStore::new(), config).start();
    let (handle, addr, dir) = start_server(timers, engine.clone() as Arc<_>).await;
    let rig = Rig {
        handle,
        addr,
        _dir: dir,
    };
    (rig, engine)
}

async fn rig() -> Rig {
    rig_with(Timers::default()).await
}

async fn create(c: &mut RawClient, wf: &str, inargs: Value) -> Value {
    let r = c
        .result(
            "create_job",
            json!({"wfname": wf, "inargs": inargs, "vtag": null, "timeout": 300}),
        )
        .await;
    assert!(r[0].is_i64(), "create_job {wf}: {r}");
    assert_eq!(r[1], Value::Null);
    r[0].clone()
}

/// Serve one `add` task: counter + step.
async fn serve_add(w: &mut RawClient) -> Value {
    let t = w.take_task().await;
    assert_eq!(t.as_array().map(Vec::len), Some(4), "{t}");
    let sum = t[2]["counter"].as_f64().unwrap_or(0.0) + t[2]["step"].as_f64().unwrap_or(0.0);
    w.notify(
        "task_done",
        json!({"cookie": t[1], "outargs": {"counter": sum}}),
    )
    .await;
    t
}

#[tokio::test]
async fn a_client_happy_path_c33_c37_c38() {
    let r = rig().await;
    let mut w = login(r.addr, "theEmployee").await;
    assert_eq!(
        w.announce("w-happy", "add", 1).await,
        json!([true, "success"])
    );
    let mut c = login(r.addr, "theCustomer").await;
    let job = create(&mut c, "calladd", json!({"input": 12})).await;
    let t = serve_add(&mut w).await;
    assert_eq!(t[0], job);
    assert!(
        t[1].as_str().is_some_and(|s| s.len() == 36),
        "uuid cookie {t}"
    );
    assert_eq!(t[2], json!({"counter": 12, "step": 1}));
    let done = c.notification("job_done").await;
    assert_eq!(done["job_id"], job);
    assert_eq!(done["outargs"]["output"].as_f64(), Some(13.0));
    c.silent_for(Duration::from_millis(200)).await;
    assert_eq!(
        c.result("get_job_status", json!({"job_id": job})).await[0],
        job
    );
    r.handle.shutdown().await;
}

#[tokio::test]
async fn c34_c35_c42_engine_errors_and_status() {
    let r = rig().await;
    let mut c = login(r.addr, "theCustomer").await;
    let res = c
        .result("create_job", json!({"wfname":"nosuch","inargs":{}}))
        .await;
    assert_eq!(res[0], Value::Null);
    let text = res[1].as_str().unwrap_or_default();
    assert!(text.starts_with("ERROR:  "), "{text}");
    assert!(text.contains("no workflow named nosuch"), "{text}");
    let res = c
        .result(
            "create_job",
            json!({"wfname":"calladd","inargs":{"input":"x"}}),
        )
        .await;
    assert!(
        res[1]
            .as_str()
            .unwrap_or_default()
            .contains("input argument \"input\" has wrong type string (should be number)"),
        "{res}"
    );
    let res = c
        .result("create_job", json!({"wfname":"calladd","inargs":{}}))
        .await;
    assert!(
        res[1]
            .as_str()
            .unwrap_or_default()
            .contains("required input argument \"input\" not found"),
        "{res}"
    );
    let job = create(&mut c, "calladd", json!({"input": 1})).await;
    assert_eq!(
        c.result("get_job_status", json!({"job_id": job})).await,
        json!([null, null])
    );
    assert_eq!(
        c.result("get_job_status", json!({"job_id": 987654})).await,
        json!([null, {"error": "no job 987654"}])
    );
    // C46 against the engine
    let ids = c
        .result("find_jobs", json!({"filter": "{\"input\":1}"}))
        .await;
    assert_eq!(ids, json!([job]));
    let res = c.result("find_jobs", json!({"filter": "{}"})).await;
    assert!(res[1]
        .as_str()
        .unwrap_or_default()
        .contains("using an empty filter is not allowed"));
    r.handle.shutdown().await;
}

#[tokio::test]
async fn c15_c41_failing_workflow_and_worker_error() {
    let r = rig().await;
    let mut c = login(r.addr, "theCustomer").await;
    let job = create(&mut c, "raiser", json!({"x": 1})).await;
    let done = c.notification("job_done").await;
    assert_eq!(done["job_id"], job);
    assert_eq!(
        done["outargs"],
        json!({"error": {"msg": "let's raise an error", "class": "normal"}})
    );
    let mut w = login(r.addr, "theEmployee").await;
    w.announce("w-err", "add", 1).await;
    let job = create(&mut c, "calladd", json!({"input": 1})).await;
    let t = w.take_task().await;
    w.notify(
        "task_done",
        json!({"cookie": t[1], "outargs": {"error": "worker callback failed on purpose\n"}}),
    )
    .await;
    let done = c.notification("job_done").await;
    assert_eq!(
        done,
        json!({"job_id": job, "outargs": {"error": "worker callback failed on purpose\n"}})
    );
    r.handle.shutdown().await;
}

#[tokio::test]
async fn c16_c39_timeout_then_the_real_result_by_status() {
    let r = rig().await;
    let mut c = login(r.addr, "theCustomer").await;
    let res = c
        .result(
            "create_job",
            json!({"wfname":"sleeper","inargs":{"d":"400 milliseconds"},"timeout":0.1}),
        )
        .await;
    let job = res[0].clone();
    assert_eq!(
        c.notification("job_done").await,
        json!({"job_id": job, "outargs": {"error": "timeout"}})
    );
    // no second job_done; the job finishes anyway
    c.silent_for(Duration::from_millis(600)).await;
    assert_eq!(
        c.result("get_job_status", json!({"job_id": job})).await,
        json!([job, {"r": "woke up"}])
    );
    r.handle.shutdown().await;
}

#[tokio::test]
async fn c44_notify_and_c49_vanishing_creator() {
    let r = rig().await;
    let mut c = login(r.addr, "theCustomer").await;
    let job = create(&mut c, "sleeper", json!({"d": "1 second"})).await;
    let mut other = login(r.addr, "theCustomer").await;
    assert_eq!(
        other
            .result("get_job_status", json!({"job_id": job, "notify": true}))
            .await,
        json!([null, null])
    );
    drop(c);
    assert_eq!(
        other.notification("job_done").await,
        json!({"job_id": job, "outargs": {"r": "woke up"}})
    );
    r.handle.shutdown().await;
}

#[tokio::test]
async fn c52_c53_announce_messages_from_the_engine() {
    let r = rig().await;
    let mut w = login(r.addr, "theEmployee").await;
    assert_eq!(
        w.announce("w-ann", "add", 1).await,
        json!([true, "success"])
    );
    let res = w.announce("w-ann", "add", 1).await;
    assert!(res[1]
        .as_str()
        .unwrap_or_default()
        .contains("worker w-ann already can do action add"));
    let res = w.announce("w-ann", "nosuchaction", 1).await;
    assert_eq!(res[0], json!(false));
    assert!(res[1]
        .as_str()
        .unwrap_or_default()
        .contains("no action named nosuchaction."));
    let res = w
        .result(
            "announce",
            json!({"workername":"w-ann","actionname":"radd","filter":{"a":1}}),
        )
        .await;
    assert!(res[1]
        .as_str()
        .unwrap_or_default()
        .contains("filtering is not allowed for action radd"));
    let res = w
        .result(
            "announce",
            json!({"workername":"w-ann","actionname":"paint"}),
        )
        .await;
    assert!(res[1]
        .as_str()
        .unwrap_or_default()
        .contains("filtering is required for action paint"));
    assert_eq!(
        w.result("withdraw", json!({"actionname":"add"})).await,
        json!(1)
    );
    r.handle.shutdown().await;
}

#[tokio::test]
async fn c56_c67_one_slot_and_pending_offer() {
    let r = rig().await;
    let mut w = login(r.addr, "theEmployee").await;
    w.announce("w-slot", "add", 1).await;
    let mut c = login(r.addr, "theCustomer").await;
    let j1 = create(&mut c, "calladd", json!({"input": 1})).await;
    let j2 = create(&mut c, "calladd", json!({"input": 2})).await;
    let tr = w.notification("task_ready").await;
    assert_eq!(tr, json!({"actionname":"add","job_id": j1}));
    w.silent_for(Duration::from_millis(200)).await;
    let t = w
        .result("get_task", json!({"actionname":"add","job_id": j1}))
        .await;
    w.notify(
        "task_done",
        json!({"cookie": t[1], "outargs": {"counter": 2}}),
    )
    .await;
    let tr = w.notification("task_ready").await;
    assert!(tr["job_id"].is_string(), "pending poll offer {tr}");
    let t = w
        .result(
            "get_task",
            json!({"actionname":"add","job_id": tr["job_id"]}),
        )
        .await;
    assert_eq!(t[0], j2);
    w.notify(
        "task_done",
        json!({"cookie": t[1], "outargs": {"counter": 3}}),
    )
    .await;
    let mut ids = vec![
        c.notification("job_done").await["job_id"].clone(),
        c.notification("job_done").await["job_id"].clone(),
    ];
    ids.sort_by_key(|v| v.as_i64());
    assert_eq!(ids, vec![j1, j2]);
    r.handle.shutdown().await;
}

#[tokio::test]
async fn c58_handoff_with_the_engine() {
    let r = rig_with(Timers {
        handoff: Duration::from_millis(200),
        ..Timers::default()
    })
    .await;
    let mut w1 = login(r.addr, "theEmployee").await;
    w1.announce("w-h1", "add", 1).await;
    let mut w2 = login(r.addr, "theEmployee").await;
    w2.announce("w-h2", "add", 1).await;
    let mut c = login(r.addr, "theCustomer").await;
    let job = create(&mut c, "calladd", json!({"input": 5})).await;
    let mut second = tokio::select! {
        _ = w1.notification("task_ready") => w2,
        _ = w2.notification("task_ready") => w1,
    };
    let tr = second.notification("task_ready").await;
    assert_eq!(tr["job_id"], job);
    let t = second
        .result("get_task", json!({"actionname":"add","job_id": job}))
        .await;
    assert_eq!(t[0], job);
    r.handle.shutdown().await;
}

#[tokio::test]
async fn c60_filters_with_the_engine() {
    let r = rig().await;
    let mut red = login(r.addr, "theEmployee").await;
    let res = red
        .result(
            "announce",
            json!({"workername":"w-red","actionname":"paint","filter":{"color":"red"}}),
        )
        .await;
    assert_eq!(res, json!([true, "success"]));
    let mut blue = login(r.addr, "theEmployee").await;
    blue.result(
        "announce",
        json!({"workername":"w-blue","actionname":"paint","filter":{"color":"blue"}}),
    )
    .await;
    let mut c = login(r.addr, "theCustomer").await;
    let jb = create(&mut c, "callpaint", json!({"color":"blue"})).await;
    let t = blue.take_task().await;
    assert_eq!(t[0], jb);
    blue.notify(
        "task_done",
        json!({"cookie": t[1], "outargs": {"done": true}}),
    )
    .await;
    let jr = create(&mut c, "callpaint", json!({"color":"red"})).await;
    let t = red.take_task().await;
    assert_eq!(t[0], jr);
    red.notify(
        "task_done",
        json!({"cookie": t[1], "outargs": {"done": true}}),
    )
    .await;
    for _ in 0..2 {
        let d = c.notification("job_done").await;
        assert_eq!(d["outargs"], json!({"done": true}));
    }
    red.silent_for(Duration::from_millis(100)).await;
    blue.silent_for(Duration::from_millis(100)).await;
    r.handle.shutdown().await;
}

#[tokio::test]
async fn c61_c68_ready_before_announce_offered_at_once() {
    let r = rig().await;
    let mut c = login(r.addr, "theCustomer").await;
    let j1 = create(&mut c, "calladd", json!({"input": 1})).await;
    let j2 = create(&mut c, "calladd", json!({"input": 2})).await;
    let mut w = login(r.addr, "theEmployee").await;
    let started = std::time::Instant::now();
    w.announce("w-late", "add", 2).await;
    let t1 = w.take_task().await;
    let t2 = w.take_task().await;
    assert!(started.elapsed() < Duration::from_secs(2));
    let mut got = vec![t1[0].clone(), t2[0].clone()];
    got.sort_by_key(|v| v.as_i64());
    assert_eq!(got, vec![j1, j2]);
    r.handle.shutdown().await;
}

#[tokio::test]
async fn c66_soft_error_retries_with_the_engine() {
    let r = rig().await;
    let mut w = login(r.addr, "theEmployee").await;
    w.announce("w-soft", "soft", 1).await;
    let mut c = login(r.addr, "theCustomer").await;
    let job = create(&mut c, "callsoft", json!({"x": 1})).await;
    let tries = w.fail_softly(4).await;
    assert_eq!(tries, vec![Value::Null, json!(1), json!(2), json!(3)]);
    let done = c.notification("job_done").await;
    assert_eq!(done["job_id"], job);
    assert_eq!(done["outargs"]["error"]["class"], json!("soft"));
    r.handle.shutdown().await;
}

#[tokio::test]
async fn c19_c71_worker_disconnects_holding_tasks() {
    let r = rig().await;
    let mut c = login(r.addr, "theCustomer").await;
    let mut w1 = login(r.addr, "theEmployee").await;
    w1.announce("w-gone", "radd", 1).await;
    w1.announce("w-gone", "add", 1).await;
    let jr = create(&mut c, "callradd", json!({"input": 1})).await;
    let t = w1.take_task().await;
    assert_eq!(t[0], jr);
    let ja = create(&mut c, "calladd", json!({"input": 7})).await;
    let t = w1.take_task().await;
    assert_eq!(t[0], ja);
    drop(w1);
    // retryable: soft error `worker disconnected`, no retry policy → the job fails
    let done = c.notification("job_done").await;
    assert_eq!(done["job_id"], jr);
    assert_eq!(
        done["outargs"]["error"],
        json!({"class":"soft","msg":"worker disconnected"})
    );
    // not retryable: back to ready (our fix of the stuck job), offered to the next worker
    let mut w2 = login(r.addr, "theEmployee").await;
    w2.announce("w-next", "add", 1).await;
    let t = serve_add(&mut w2).await;
    assert_eq!(t[0], ja);
    let done = c.notification("job_done").await;
    assert_eq!(done["job_id"], ja);
    assert_eq!(done["outargs"]["output"].as_f64(), Some(8.0));
    r.handle.shutdown().await;
}

#[tokio::test]
async fn c54_pings_keep_the_engine_worker_alive() {
    let r = rig_with(Timers {
        ping_interval: Duration::from_millis(100),
        ping_timeout: Duration::from_millis(500),
        ..Timers::default()
    })
    .await;
    let mut w = login(r.addr, "theEmployee").await;
    w.announce("w-ping", "add", 1).await;
    for _ in 0..2 {
        let v = w.next().await.expect("ping");
        assert_eq!(v["method"], json!("ping"));
        w.send(&json!({"jsonrpc":"2.0","id": v["id"],"result":"pong!"}))
            .await;
    }
    // the worker is still registered: a job reaches it
    let mut c = login(r.addr, "theCustomer").await;
    let job = create(&mut c, "calladd", json!({"input": 1})).await;
    let tr = w.notification("task_ready").await;
    assert_eq!(tr["job_id"], job);
    let _ = WAIT;
    r.handle.shutdown().await;
}

/// The backend released a worker behind its connection's back (as another node does when it
/// takes this node for dead, or housekeeping when its pings are too old): its next claim
/// fails, and the connection is closed so that the worker connects and announces again,
/// instead of being offered the task again and again.
#[tokio::test]
async fn a_worker_the_backend_released_is_disconnected_not_offered_tasks_forever() {
    let config = EngineConfig {
        // Every worker is stale at once; housekeeping runs only when the test calls it.
        worker_timeout: Duration::ZERO,
        housekeeping_interval: Duration::from_secs(3600),
        ..EngineConfig::default()
    };
    let (r, engine) = rig_with_engine(Timers::default(), config).await;
    let mut w = login(r.addr, "theEmployee").await;
    assert_eq!(
        w.announce("w-released", "add", 1).await,
        json!([true, "success"])
    );
    // Released by the engine (its last ping is older than a zero timeout once the clock
    // moved on by a millisecond).
    let mut released = Vec::new();
    for _ in 0..1000 {
        released = engine.housekeeping().expect("housekeeping");
        if !released.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert_eq!(released, vec!["w-released".to_string()]);
    // A job for its action: the connection is still offered the task, but cannot claim it.
    let mut c = login(r.addr, "theCustomer").await;
    let job = create(&mut c, "calladd", json!({"input": 1})).await;
    let tr = w.notification("task_ready").await;
    assert_eq!(tr["job_id"], job);
    let claim = w
        .result("get_task", json!({"actionname": "add", "job_id": job}))
        .await;
    assert_eq!(claim, json!([]));
    // Then the server closes the connection (before: task_ready in a loop, for ever).
    w.expect_eof().await;
    // The worker comes back under its name and does the job.
    let mut w = login(r.addr, "theEmployee").await;
    assert_eq!(
        w.announce("w-released", "add", 1).await,
        json!([true, "success"])
    );
    serve_add(&mut w).await;
    let done = c.notification("job_done").await;
    assert_eq!(done["job_id"], job);
    assert_eq!(done["outargs"]["output"].as_f64(), Some(2.0));
    r.handle.shutdown().await;
}
