//! `jobcenter bench --embedded` through the real binary: every mode finishes with 0 errors
//! (with the JCL engine and with the pass-through stub backend), and a wrong result is
//! counted as an error (exit status 1), not as a sample.

use std::process::Command;

use serde_json::Value;

/// Run `jobcenter bench --json ARGS`, return the exit status and the parsed report.
fn bench(args: &[&str]) -> (i32, Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_jobcenter"))
        .arg("bench")
        .arg("--json")
        .args(args)
        .output()
        .expect("run the jobcenter binary");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report: Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "not one JSON object ({e}): {stdout}\nstderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap_or(-1), report)
}

fn figure<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["figures"]
        .as_array()
        .and_then(|f| f.iter().find(|x| x["name"] == name))
        .unwrap_or_else(|| panic!("no {name} figure in {report}"))
}

fn assert_clean(report: &Value, name: &str, ops: u64) {
    for n in ["raw", name] {
        let f = figure(report, n);
        assert_eq!(f["errors"], 0, "{n}: {f}");
        assert_eq!(f["ok"], ops, "{n}: {f}");
        assert!(f["per_sec"].as_f64().unwrap_or(0.0) > 0.0, "{n}: {f}");
        let l = &f["latency_us"];
        assert!(l["min"].as_f64() <= l["p50"].as_f64(), "{n}: {l}");
        assert!(l["p50"].as_f64() <= l["p99"].as_f64(), "{n}: {l}");
        assert!(l["p99"].as_f64() <= l["max"].as_f64(), "{n}: {l}");
    }
    assert!(figure(report, name)["ratio_to_raw"].as_f64().unwrap_or(0.0) > 0.0);
}

#[test]
fn bench_embedded_call_checks_every_job() {
    let (code, r) = bench(&["--embedded", "--jobs", "200", "--in-flight", "20"]);
    assert_eq!(code, 0, "{r}");
    assert_clean(&r, "call", 200);
}

#[test]
fn bench_embedded_ping() {
    let (code, r) = bench(&["--embedded", "--mode", "ping", "--jobs", "200"]);
    assert_eq!(code, 0, "{r}");
    assert_clean(&r, "ping", 200);
}

#[test]
fn bench_embedded_status_of_a_finished_job() {
    let (code, r) = bench(&[
        "--embedded",
        "--mode",
        "status",
        "--jobs",
        "200",
        "--clients",
        "2",
    ]);
    assert_eq!(code, 0, "{r}");
    assert_clean(&r, "status", 200);
}

#[test]
fn bench_embedded_payload_round_trips() {
    let (code, r) = bench(&[
        "--embedded",
        "--jobs",
        "50",
        "--payload",
        "10000",
        "--workers",
        "2",
        "--slots",
        "5",
        "--clients",
        "2",
        "--in-flight",
        "10",
    ]);
    assert_eq!(code, 0, "{r}");
    assert_clean(&r, "call", 50);
}

#[test]
fn bench_wrong_result_is_an_error_not_a_sample() {
    let (code, r) = bench(&[
        "--embedded",
        "--jobs",
        "20",
        "--warmup",
        "0",
        "--expect",
        r#"{"output":"$n+4"}"#,
    ]);
    assert_eq!(code, 1, "{r}");
    let f = figure(&r, "call");
    assert_eq!(f["errors"], 20, "{f}");
    assert_eq!(f["ok"], 0, "{f}");
}

#[test]
fn bench_idle_connections_measure_server_memory() {
    let out = Command::new(env!("CARGO_BIN_EXE_jobcenter"))
        .args([
            "bench",
            "--json",
            "--embedded",
            "--mode",
            "idle",
            "--clients",
            "50",
        ])
        .output()
        .expect("run the jobcenter binary");
    assert!(out.status.success(), "{out:?}");
    let r: Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    assert_eq!(r["alive"], 50, "{r}");
    let pid = r["server_pid"].as_u64().unwrap_or(0);
    assert!(pid > 0 && pid != u64::from(std::process::id()), "{r}");
    assert!(
        r["rss_after_kib"].as_u64() >= r["rss_before_kib"].as_u64(),
        "{r}"
    );
}

#[test]
fn bench_embedded_stub_backend_call() {
    let (code, r) = bench(&[
        "--embedded",
        "--backend",
        "stub",
        "--jobs",
        "200",
        "--in-flight",
        "20",
        "--payload",
        "100",
    ]);
    assert_eq!(code, 0, "{r}");
    assert_eq!(r["wfname"], "add", "{r}");
    assert_clean(&r, "call", 200);
}

#[test]
fn bench_server_in_a_child_process_reports_its_cpu() {
    let (code, r) = bench(&[
        "--embedded",
        "--server-process",
        "--jobs",
        "300",
        "--in-flight",
        "30",
    ]);
    assert_eq!(code, 0, "{r}");
    assert_clean(&r, "call", 300);
    let f = figure(&r, "call");
    assert!(f["server_cpu_us_per_op"].is_number(), "{f}");
    assert!(f["cpu_us_per_op"].is_number(), "{f}");
}

#[test]
fn bench_external_server_by_address() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    // Our server alone in another process (the hidden helper the idle mode uses).
    let mut server = Command::new(env!("CARGO_BIN_EXE_jobcenter"))
        .args(["bench", "--serve-only"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the server");
    let mut line = String::new();
    let stdout = server.stdout.take().expect("server stdout");
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("server port");
    let port = line.trim().to_string();
    let pid = server.id().to_string();
    let (code, r) = bench(&[
        "--port",
        &port,
        "--who",
        "theCustomer",
        "--token",
        "wantsThings",
        "--worker-who",
        "theEmployee",
        "--worker-token",
        "doesThings",
        "--jobs",
        "200",
        "--in-flight",
        "10",
        "--workers",
        "2",
        "--slots",
        "3",
        "--server-pid",
        &pid,
    ]);
    drop(server.stdin.take());
    let _ = server.wait();
    assert_eq!(code, 0, "{r}");
    assert_eq!(r["server"], format!("127.0.0.1:{port}"), "{r}");
    assert_clean(&r, "call", 200);
    assert!(
        figure(&r, "call")["server_cpu_us_per_op"].is_number(),
        "{r}"
    );
}
