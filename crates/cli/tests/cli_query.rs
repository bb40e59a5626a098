//! The query subcommands through the real binary: `status` (and `--wait`), `find`, `lock`,
//! `api-status` (apimeister versus another user) and `ping`.

mod cli_support;

use std::net::SocketAddr;
use std::sync::Arc;

use cli_support::{
    action, closed_port, examples_dir, fixtures_dir, job_id, jobcenter, password_file, run,
    run_cmd, Proc, Serve, CLIENT, MEISTER,
};
use jobcenter_engine::backend::Backend;
use jobcenter_engine::{Catalog, Engine, EngineConfig, Stage};
use jobcenter_server::{AuthConfig, ListenerConfig, Server, ServerConfig};
use jobcenter_store::MemoryStore;
use serde_json::json;

/// Create a calladd job while nobody serves `add`: the call gives up after 0.2 s, the job
/// stays live. Returns its id.
async fn pending_calladd(serve: &Serve, input: i64) -> i64 {
    let inargs = json!({ "input": input }).to_string();
    let out = serve
        .run(&["call", "calladd", &inargs, "--job-timeout", "0.2"])
        .await;
    out.assert_code(4); // timed out, the job still runs
    assert_eq!(out.json_line(), json!({"error": "timeout"}));
    job_id(&out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_of_finished_failed_running_and_unknown_jobs() {
    let serve = Serve::examples().await;
    let pending = pending_calladd(&serve, 5).await;
    let id = pending.to_string();
    let out = serve.run(&["status", &id]).await;
    out.assert_code(0);
    assert_eq!(
        out.json_line(),
        json!({"job_id": pending, "status": "running"})
    );

    let _worker = serve
        .worker(&[action("add", "add.sh"), action("div", "div.sh")])
        .await;
    let ok = serve.run(&["call", "calladd", r#"{"input": 1}"#]).await;
    ok.assert_code(0);
    let out = serve.run(&["status", &job_id(&ok).to_string()]).await;
    out.assert_code(0);
    assert_eq!(
        out.json_line(),
        json!({"job_id": job_id(&ok), "status": "finished", "outargs": {"output": 4}})
    );

    let bad = serve
        .run(&["call", "divide", r#"{"dividend": 1, "divisor": 0}"#])
        .await;
    bad.assert_code(1);
    let out = serve.run(&["status", &job_id(&bad).to_string()]).await;
    out.assert_code(1);
    let v = out.json_line();
    assert_eq!(v["status"], "error", "{v}");
    assert!(
        v["outargs"]["error"]
            .as_str()
            .unwrap_or_default()
            .contains("division by zero"),
        "{v}"
    );

    let out = serve.run(&["status", "987654"]).await;
    out.assert_code(1);
    assert_eq!(
        out.json_line(),
        json!({"job_id": 987654, "status": "unknown"})
    );

    for bad_id in ["abc", "0", "-3"] {
        serve
            .run(&["status", "--", bad_id])
            .await
            .assert_code(2)
            .assert_one_line_error("invalid job id");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_wait_returns_when_the_job_finishes() {
    let serve = Serve::examples().await;
    let pending = pending_calladd(&serve, 20).await;
    // Trace the protocol so that the moment the server has registered the wait is visible:
    // the answer [null, null] to get_job_status {notify: true} means "running, will notify".
    let mut cmd = serve.client(&["status", &pending.to_string(), "--wait"]);
    cmd.env("RUST_LOG", "jobcenter_rpc=trace");
    let mut waiting = Proc::spawn("jobcenter status --wait", cmd);
    waiting.stderr_line(r#""result":[null,null]"#).await;
    assert!(waiting.running(), "status --wait must wait for the job");

    let _worker = serve.worker(&[action("add", "add.sh")]).await;
    let out = waiting.finish().await;
    out.assert_code(0);
    assert_eq!(
        out.json_line(),
        json!({"job_id": pending, "status": "finished", "outargs": {"output": 23}})
    );

    // On a finished job --wait answers at once.
    let out = serve.run(&["status", &pending.to_string(), "--wait"]).await;
    out.assert_code(0);
    assert_eq!(out.json_line()["outargs"], json!({"output": 23}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c46_find_lists_live_jobs_matching_the_filter() {
    let serve = Serve::examples().await;
    let a = pending_calladd(&serve, 77).await;
    let b = pending_calladd(&serve, 77).await;
    let c = pending_calladd(&serve, 78).await;
    let out = serve.run(&["find", r#"{"input": 77}"#]).await;
    out.assert_code(0);
    let mut ids: Vec<i64> = out
        .json_line()
        .as_array()
        .expect("an array")
        .iter()
        .filter_map(|v| v.as_i64())
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, vec![a, b]);
    assert_eq!(
        serve.run(&["find", r#"{"input": 78}"#]).await.json_line(),
        json!([c])
    );
    assert_eq!(
        serve.run(&["find", r#"{"input": 79}"#]).await.json_line(),
        json!([])
    );

    // An empty filter is refused by the server (exit 1), a non-object by the CLI (exit 2).
    serve
        .run(&["find", "{}"])
        .await
        .assert_code(1)
        .assert_one_line_error("empty filter");
    serve
        .run(&["find", "[77]"])
        .await
        .assert_code(2)
        .assert_one_line_error("must be a JSON object");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_against_serve_is_null_for_an_unregistered_type() {
    // `jobcenter serve` registers no lock types, so every query answers null.
    let serve = Serve::examples().await;
    let out = serve.run(&["lock", "slot", "k35"]).await;
    out.assert_code(0);
    assert_eq!(out.stdout, vec!["null".to_string()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c47_lock_true_false_null_against_an_in_process_server() {
    // The server library in-process, with the lock type `slot` registered and a workflow that
    // holds (slot, k35) while it waits for an action nobody serves.
    let dir = tempfile::tempdir().expect("tempdir");
    let passwd = password_file(dir.path());
    let mut catalog = Catalog::with_stage(Stage::B);
    catalog.register_locktype("slot");
    let report = catalog.load_paths(&[
        examples_dir().join("add.ac"),
        fixtures_dir().join("locks/holdlock.wf"),
    ]);
    assert!(report.is_ok(), "{:?}", report.errors);
    let engine = Engine::new(catalog, MemoryStore::new(), EngineConfig::default()).start();
    let backend: Arc<dyn Backend> = engine;
    let loopback: SocketAddr = ([127, 0, 0, 1], 0).into();
    let config = ServerConfig::new(
        ListenerConfig::tcp(loopback),
        AuthConfig {
            password_file: Some(passwd),
            ..AuthConfig::default()
        },
    );
    let server = Server::start(config, backend)
        .await
        .expect("start the server");
    let port = server.local_addrs()[0].port().to_string();
    let client = |args: &[&str]| {
        let mut cmd = jobcenter(args);
        cmd.args(["--port", &port, "--who", CLIENT.0, "--token", CLIENT.1]);
        cmd
    };

    let out = run_cmd(client(&["lock", "slot", "k35"]), None).await;
    out.assert_code(0);
    assert_eq!(out.stdout, vec!["false".to_string()], "nobody holds it yet");

    let out = run_cmd(
        client(&[
            "call",
            "holdlock",
            r#"{"tag": "A"}"#,
            "--job-timeout",
            "0.2",
        ]),
        None,
    )
    .await;
    assert_eq!(out.json_line(), json!({"error": "timeout"}));
    let holder = job_id(&out);

    for (locktype, value, expect) in [
        ("slot", "k35", "true"),
        ("slot", "nope", "false"),
        ("nolocktype", "k35", "null"),
    ] {
        let out = run_cmd(client(&["lock", locktype, value]), None).await;
        out.assert_code(0);
        assert_eq!(out.stdout, vec![expect.to_string()], "{locktype} {value}");
    }
    let out = run_cmd(client(&["find", r#"{"tag": "A"}"#]), None).await;
    assert_eq!(out.json_line(), json!([holder]));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c48_api_status_needs_apimeister() {
    let serve = Serve::examples().await;
    let out = serve.run(&["api-status"]).await;
    out.assert_code(1)
        .assert_one_line_error("permission denied");
    assert!(out.stdout.is_empty(), "{out:#?}");

    let _worker = serve.worker(&[action("add", "add.sh")]).await;
    let out = run_cmd(serve.as_user(MEISTER, &["api-status"]), None).await;
    out.assert_code(0);
    let stats = out.json_line();
    assert_eq!(stats["workers"], 1, "{stats}");
    assert_eq!(stats["dead"], 0, "{stats}");
    assert!(stats["clients"].as_u64().unwrap_or(0) >= 2, "{stats}");
    // Unknown topics are refused before connecting (traps::trap5_...).

    // The dumps are multi-line JSON; the worker's actions show in the client list.
    let out = run_cmd(serve.as_user(MEISTER, &["api-status", "clients"]), None).await;
    out.assert_code(0);
    let clients: serde_json::Value =
        serde_json::from_str(&out.stdout.join("\n")).expect("clients dump is JSON");
    let text = clients.to_string();
    assert!(text.contains("\"add\""), "{text}");
    assert!(text.contains(cli_support::WORKER.0), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_answers_pong_and_fails_cleanly_without_a_server() {
    let serve = Serve::examples().await;
    let out = serve.run(&["ping"]).await;
    out.assert_code(0);
    assert_eq!(out.stdout, vec!["pong".to_string()]);

    // --debug logs the conversation to stderr, but never the token.
    let out = serve.run(&["ping", "--debug"]).await;
    out.assert_code(0);
    assert!(out.stderr.iter().any(|l| l.contains("DEBUG")), "{out:#?}");
    assert!(
        !out.stderr.iter().any(|l| l.contains(CLIENT.1)),
        "the token leaked: {out:#?}"
    );

    let port = closed_port().to_string();
    let out = run(&["ping", "--port", &port, "--who", "a", "--token", "b"]).await;
    out.assert_code(2).assert_one_line_error("cannot connect");
    assert!(out.stdout.is_empty(), "{out:#?}");

    let out = run_cmd(serve.as_user((CLIENT.0, "wrong"), &["ping"]), None).await;
    out.assert_code(2)
        .assert_one_line_error("authentication failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_wait_losing_the_server_exits_2() {
    let serve = Serve::examples().await;
    let pending = pending_calladd(&serve, 30).await;
    let mut cmd = serve.client(&["status", &pending.to_string(), "--wait"]);
    cmd.env("RUST_LOG", "jobcenter_rpc=trace");
    let mut waiting = Proc::spawn("jobcenter status --wait", cmd);
    waiting.stderr_line(r#""result":[null,null]"#).await;
    serve.proc.signal("KILL");
    let out = waiting.finish().await;
    assert!(out.stdout.is_empty(), "{out:#?}");
    assert!(
        out.stderr
            .iter()
            .any(|l| l == "jobcenter status: connection closed"),
        "{out:#?}"
    );
    assert_eq!(out.code, 2, "{out:#?}");
}
