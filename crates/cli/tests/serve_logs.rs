//! `jobcenter serve`'s logs through the real binary with `--log-format json`: the start-up
//! summary, a span per connection (peer, conn, who) and per job (job_id, workflow) on the
//! lines logged inside them, and no token or password at any level, trace included.

mod cli_support;

use cli_support::{action, examples_dir, jobcenter, password_file, Proc, CLIENT, WORKER};
use serde_json::{json, Value};
use tokio::process::Command;

/// The per-request token of CLIENT (`--reqauth-file`).
const REQAUTH_TOKEN: &str = "rq-secret-77";

/// Trace for our crates, info for the others.
const TRACE: &str = "info,jobcenter=trace,jobcenter_server=trace,jobcenter_rpc=trace,\
jobcenter_engine=trace,jobcenter_store=trace,jobcenter_wire=trace";

/// A command line for `who` against the server on `port`.
fn as_user(port: u16, (who, token): (&str, &str), args: &[&str]) -> Command {
    let mut cmd = jobcenter(args);
    cmd.env("JOBCENTER_PORT", port.to_string())
        .env("JOBCENTER_WHO", who)
        .env("JOBCENTER_TOKEN", token);
    cmd
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_json_logs_carry_connection_and_job_spans_and_no_secret_at_trace_level() {
    let dir = tempfile::tempdir().expect("tempdir");
    let passwd = password_file(dir.path());
    let reqauth = dir.path().join("reqauth");
    let hash = jobcenter_server::crypt::hash_sha256(REQAUTH_TOKEN);
    std::fs::write(&reqauth, format!("{}:{hash}:ops\n", CLIENT.0)).expect("write");
    let mut cmd = jobcenter(["serve", "--listen", "127.0.0.1:0", "--log-format", "json"]);
    cmd.arg("--load")
        .arg(examples_dir())
        .arg("--passwd")
        .arg(&passwd)
        .arg("--reqauth-file")
        .arg(&reqauth)
        .env("RUST_LOG", TRACE);
    let mut serve = Proc::spawn("jobcenter serve", cmd);
    let port = serve.listening_port().await;

    let mut worker = Proc::spawn(
        "jobcenter work",
        as_user(
            port,
            WORKER,
            &["work", "--action", &action("add", "add.sh")],
        ),
    );
    worker.stderr_line("jobcenter work: serving").await;
    let mut call = as_user(port, CLIENT, &["call", "calladd", r#"{"input": 4}"#]);
    call.env(
        "JOBCENTER_REQAUTH",
        json!({ "token": REQAUTH_TOKEN }).to_string(),
    );
    let out = cli_support::run_cmd(call, None).await;
    out.assert_code(0);
    assert_eq!(out.json_line(), json!({"output": 7}), "{out:#?}");
    let job = cli_support::job_id(&out);
    // Without the per-request token the server refuses the job (PROTOCOL.md §11.5).
    let refused = cli_support::run_cmd(
        as_user(port, CLIENT, &["call", "calladd", r#"{"input": 1}"#]),
        None,
    )
    .await;
    assert_ne!(refused.code, 0, "{refused:#?}");
    assert!(
        refused.stdout.join("\n").contains("reqauth: no token?"),
        "{refused:#?}"
    );

    drop(worker);
    serve.signal("TERM");
    let out = serve.finish().await;
    let records = out.json_records();
    let find = |what: &str, pred: &dyn Fn(&Value) -> bool| -> Value {
        records
            .iter()
            .find(|r| pred(r))
            .cloned()
            .unwrap_or_else(|| panic!("no record {what}: {:#?}", out.stderr))
    };

    // The start-up summary: listeners with their hello methods, the store and its promise,
    // the authentication sources, the http listener.
    let started = find("start-up", &|r| {
        r["fields"]["message"] == json!("jobcenter serve started")
    });
    assert_eq!(started["level"], json!("INFO"));
    let f = &started["fields"];
    assert!(
        f["listeners"]
            .as_str()
            .is_some_and(|l| l.starts_with("127.0.0.1:") && l.ends_with("(tcp; hello: any method)")),
        "{started}"
    );
    assert_eq!(f["store"], json!("memory"));
    assert_eq!(f["promise"], json!("nothing survives a restart"));
    let auth = f["auth"].as_str().unwrap_or_default();
    assert!(
        auth.starts_with("password (3 users), reqauth token file "),
        "{auth}"
    );
    assert_eq!(f["http"], json!("off"));

    // A connection: the span has the peer address and the connection id, and `who` once
    // the hello succeeded; lines logged while handling its requests carry it.
    let hello = find("hello ok of the client", &|r| {
        r["fields"]["message"] == json!("hello ok") && r["fields"]["who"] == json!(CLIENT.0)
    });
    assert_eq!(hello["level"], json!("INFO"));
    let span = &hello["span"];
    assert_eq!(span["name"], json!("conn"), "{hello}");
    assert!(
        span["peer"]
            .as_str()
            .is_some_and(|p| p.starts_with("127.0.0.1:")),
        "{hello}"
    );
    let conn = span["conn"].clone();
    assert!(conn.is_u64(), "{hello}");
    assert_eq!(hello["fields"]["conn"], conn);
    let created = find("job created by the session", &|r| {
        r["fields"]["message"] == json!("job created")
            && r["fields"]["job"] == json!(job)
            && r["target"] == json!("jobcenter_server::session")
    });
    assert_eq!(created["span"]["name"], json!("conn"), "{created}");
    assert_eq!(created["span"]["conn"], conn, "{created}");
    assert_eq!(created["span"]["who"], json!(CLIENT.0), "{created}");

    // A job: its span has the job id and the workflow.
    let finished = find("job finished", &|r| {
        r["fields"]["message"] == json!("job finished") && r["fields"]["job"] == json!(job)
    });
    assert_eq!(finished["level"], json!("DEBUG"));
    assert_eq!(finished["span"]["name"], json!("job"), "{finished}");
    assert_eq!(finished["span"]["job_id"], json!(job), "{finished}");
    assert_eq!(finished["span"]["workflow"], json!("calladd"), "{finished}");
    // (memory store: the job finished on the worker's connection, inside its span)
    let outer: Vec<&Value> = finished["spans"].as_array().into_iter().flatten().collect();
    assert!(
        outer
            .iter()
            .any(|s| s["name"] == json!("conn") && s["who"] == json!(WORKER.0)),
        "{finished}"
    );

    // No secret at any level: trace lines were written (the frames of the rpc layer
    // among them, hello and create_job summarised), and none holds a token.
    assert!(records.iter().any(|r| r["level"] == json!("TRACE")));
    assert!(
        records
            .iter()
            .any(|r| r["target"] == json!("jobcenter_rpc::peer")
                && r.to_string().contains("carries a token")),
        "no summarised frame"
    );
    let all = out.stderr.join("\n");
    for secret in [CLIENT.1, WORKER.1, REQAUTH_TOKEN] {
        assert!(!all.contains(secret), "{secret:?} is in the log");
    }
}
