//! `jobcenter call` (single and --batch) through the real binary against a real
//! `jobcenter serve` child with the example workflows and a `jobcenter work` child whose
//! actions are shell scripts: exit statuses 0/1/2, stdout/stderr contract.

mod cli_support;

use cli_support::{action, closed_port, job_id, run, run_cmd, Serve, CLIENT};
use serde_json::{json, Value};

/// A server with the examples and a worker serving add and div with the fixture scripts.
async fn server_and_worker() -> (Serve, cli_support::Proc) {
    let serve = Serve::examples().await;
    let worker = serve
        .worker(&[action("add", "add.sh"), action("div", "div.sh")])
        .await;
    (serve, worker)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_success_prints_outargs_line_and_job_id() {
    let (serve, _worker) = server_and_worker().await;
    let out = serve.run(&["call", "calladd", r#"{"input": 4}"#]).await;
    out.assert_code(0);
    assert_eq!(out.json_line(), json!({"output": 7}), "{out:#?}");
    assert!(job_id(&out) > 0);

    // A child workflow then an action; and the explicit flags instead of the environment.
    let port = serve.port.to_string();
    let out = run(&[
        "call",
        "divide",
        r#"{"dividend": 12, "divisor": 4}"#,
        "--port",
        &port,
        "--who",
        CLIENT.0,
        "--token",
        CLIENT.1,
    ])
    .await;
    out.assert_code(0);
    assert_eq!(out.json_line(), json!({"quotient": 3}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_job_ending_with_error_exits_1() {
    let (serve, _worker) = server_and_worker().await;
    let out = serve
        .run(&["call", "divide", r#"{"dividend": 1, "divisor": 0}"#])
        .await;
    out.assert_code(1);
    let v = out.json_line();
    let msg = v["error"].as_str().unwrap_or_default();
    assert!(msg.contains("division by zero"), "{v}");
    assert!(job_id(&out) > 0, "the job was created");

    // The same error caught by the workflow is a success.
    let out = serve
        .run(&["call", "safediv", r#"{"dividend": 1, "divisor": 0}"#])
        .await;
    out.assert_code(0);
    assert_eq!(out.json_line(), json!({"problem": "could not divide"}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_unknown_workflow_and_bad_input_exit_3_not_created_with_error_object() {
    let serve = Serve::examples().await;
    let out = serve.run(&["call", "nosuchflow", "{}"]).await;
    out.assert_code(3);
    let v = out.json_line();
    let msg = v["error"].as_str().unwrap_or_default();
    assert!(msg.contains("nosuchflow"), "{v}");
    assert!(
        out.stderr.iter().any(|l| l == "job not created"),
        "{out:#?}"
    );

    let out = serve
        .run(&["call", "calladd", r#"{"input": "twelve"}"#])
        .await;
    out.assert_code(3);
    let v = out.json_line();
    assert!(
        v["error"]
            .as_str()
            .unwrap_or_default()
            .contains("wrong type"),
        "{v}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_wrong_password_exits_2_with_one_line() {
    let serve = Serve::examples().await;
    let cmd = serve.as_user(
        (CLIENT.0, "not-the-token"),
        &["call", "calladd", r#"{"input":1}"#],
    );
    let out = run_cmd(cmd, None).await;
    out.assert_code(2)
        .assert_one_line_error("authentication failed");
    assert!(out.stdout.is_empty(), "{out:#?}");

    // An unknown user is refused the same way.
    let cmd = serve.as_user(("nobody", CLIENT.1), &["call", "calladd", r#"{"input":1}"#]);
    run_cmd(cmd, None)
        .await
        .assert_code(2)
        .assert_one_line_error("authentication failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_without_server_exits_2_with_one_line() {
    let port = closed_port().to_string();
    let out = run(&[
        "call", "calladd", "{}", "--port", &port, "--who", "a", "--token", "b",
    ])
    .await;
    out.assert_code(2).assert_one_line_error(&port);
    assert!(out.stdout.is_empty(), "{out:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_missing_credentials_or_bad_inargs_exit_2() {
    // Checked before connecting: no server needed.
    let port = closed_port().to_string();
    let creds = ["--port", &port, "--who", "a", "--token", "b"];
    for (inargs, needle) in [
        (r#"{"input":"#, "INARGS is not valid JSON"),
        ("[1, 2]", "INARGS must be a JSON object"),
        ("42", "INARGS must be a JSON object"),
    ] {
        let mut args = vec!["call", "calladd", inargs];
        args.extend(creds);
        let out = run(&args).await;
        out.assert_code(2).assert_one_line_error(needle);
        assert!(out.stdout.is_empty(), "{out:#?}");
    }
    let out = run(&["call", "calladd", "{}", "--port", &port, "--token", "b"]).await;
    out.assert_code(2).assert_one_line_error("no who?");
}

/// Parse batch result lines, keyed by line number.
fn by_line(out: &cli_support::Output) -> std::collections::BTreeMap<u64, Value> {
    out.json_lines()
        .into_iter()
        .map(|v| {
            (
                v["line"]
                    .as_u64()
                    .unwrap_or_else(|| panic!("no line in {v}")),
                v,
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_batch_file_one_line_per_job_and_exit_1_when_some_fail() {
    let (serve, _worker) = server_and_worker().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("jobs.jsonl");
    let text = [
        r#"{"wfname": "calladd", "inargs": {"input": 1}}"#,
        "",
        r#"{"wfname": "divide", "inargs": {"dividend": 9, "divisor": 3}}"#,
        r#"{"wfname": "divide", "inargs": {"dividend": 9, "divisor": 0}}"#,
        r#"{"wfname": "nosuchflow", "inargs": {}}"#,
        r#"{"wfname": "calladd", "inargs": {"input": 100}}"#,
    ]
    .join("\n");
    std::fs::write(&file, text).expect("write the batch");
    let path = file.to_str().expect("utf-8 path");
    let out = serve
        .run(&["call", "--batch", path, "--in-flight", "2"])
        .await;
    out.assert_code(1);
    let lines = by_line(&out);
    assert_eq!(
        lines.len(),
        5,
        "one result per job, blank line skipped: {out:#?}"
    );
    assert_eq!(lines[&1]["outargs"], json!({"output": 4}));
    assert!(
        lines[&1]["job_id"].as_i64().unwrap_or(0) > 0,
        "{}",
        lines[&1]
    );
    assert_eq!(lines[&3]["outargs"], json!({"quotient": 3}));
    let err = lines[&4]["outargs"]["error"].as_str().unwrap_or_default();
    assert!(err.contains("division by zero"), "{}", lines[&4]);
    assert!(lines[&5]["job_id"].is_null(), "{}", lines[&5]);
    assert!(lines[&5]["outargs"]["error"].is_string(), "{}", lines[&5]);
    assert_eq!(lines[&6]["outargs"], json!({"output": 103}));
    let summary = out.stderr.last().expect("a summary line");
    assert!(
        summary.starts_with("5 jobs: 3 ok, 2 failed, 0 not completed"),
        "{summary:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_batch_stdin_with_wfname_exits_0_when_all_succeed() {
    let (serve, _worker) = server_and_worker().await;
    let input: String = (1..=10).map(|i| format!("{{\"input\": {i}}}\n")).collect();
    let cmd = serve.client(&["call", "--batch", "-", "--wfname", "calladd"]);
    let out = run_cmd(cmd, Some(&input)).await;
    out.assert_code(0);
    let lines = by_line(&out);
    assert_eq!(lines.len(), 10, "{out:#?}");
    for (n, v) in &lines {
        assert_eq!(v["outargs"], json!({"output": n + 3}), "{v}");
    }
    let ids: std::collections::BTreeSet<i64> = lines
        .values()
        .filter_map(|v| v["job_id"].as_i64())
        .collect();
    assert_eq!(ids.len(), 10, "ten distinct jobs");
    let summary = out.stderr.last().expect("a summary line");
    assert!(
        summary.starts_with("10 jobs: 10 ok, 0 failed"),
        "{summary:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_batch_file_bad_line_exits_2_before_submitting() {
    let serve = Serve::examples().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("jobs.jsonl");
    let text = "{\"wfname\": \"calladd\", \"inargs\": {\"input\": 1}}\nnot json\n";
    std::fs::write(&file, text).expect("write the batch");
    let path = file.to_str().expect("utf-8 path");
    let out = serve.run(&["call", "--batch", path]).await;
    out.assert_code(2).assert_one_line_error("line 2");
    assert!(out.stdout.is_empty(), "{out:#?}");
    // Nothing was submitted: the first line's job does not exist.
    let out = serve.run(&["find", r#"{"input": 1}"#]).await;
    out.assert_code(0);
    assert_eq!(out.json_line(), json!([]));
}
