//! `jobcenter serve`, `check` and `demo` through the real binary: refusing to start without
//! authentication, `file:line: message` for definitions that do not compile, SIGTERM → exit 0,
//! and the self-contained demo.

mod cli_support;

use std::path::PathBuf;

use cli_support::{
    action, examples_dir, fixtures_dir, jobcenter, password_file, run, run_cmd, Proc, Serve,
};

/// Split a `file:line: message` line, checking its shape.
fn file_line_message(line: &str) -> (String, u32, String) {
    let (loc, message) = line
        .split_once(": ")
        .unwrap_or_else(|| panic!("not file:line: message: {line:?}"));
    let (file, n) = loc
        .rsplit_once(':')
        .unwrap_or_else(|| panic!("no line number: {line:?}"));
    let n: u32 = n
        .parse()
        .unwrap_or_else(|_| panic!("line number is not a number: {line:?}"));
    assert!(!message.trim().is_empty(), "empty message: {line:?}");
    (file.to_string(), n, message.to_string())
}

fn broken(name: &str) -> PathBuf {
    fixtures_dir().join("broken").join(name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_without_passwd_refuses_to_start() {
    let out = run(&["serve", "--listen", "127.0.0.1:0"]).await;
    out.assert_code(2).assert_one_line_error("--passwd");
    assert!(out.stdout.is_empty(), "{out:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_with_a_broken_definition_prints_file_line_message_and_fails() {
    let dir = tempfile::tempdir().expect("tempdir");
    let passwd = password_file(dir.path());
    let mut cmd = jobcenter(["serve", "--listen", "127.0.0.1:0", "--passwd"]);
    cmd.arg(&passwd)
        .arg("--load")
        .arg(examples_dir())
        .arg("--load")
        .arg(broken("x.wf"));
    let out = Proc::spawn("jobcenter serve", cmd).finish().await;
    assert_eq!(out.code, 1, "README: 1 for bad definitions: {out:#?}");
    let errors: Vec<_> = out
        .stderr
        .iter()
        .filter(|l| l.contains("x.wf:"))
        .map(|l| file_line_message(l))
        .collect();
    assert_eq!(errors.len(), 1, "{out:#?}");
    let (file, line, message) = &errors[0];
    assert!(file.ends_with("broken/x.wf"), "{file}");
    assert_eq!(*line, 7);
    assert!(message.contains("nosuch"), "{message}");
    assert!(
        out.stderr.iter().any(|l| l.contains("not starting")),
        "{out:#?}"
    );
    assert!(
        !out.stderr.iter().any(|l| l.contains("listening on")),
        "{out:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_sigterm_exits_0() {
    let serve = Serve::examples().await;
    // A round trip first (see serve_signal_right_after_the_listening_line_exits_0).
    serve.run(&["ping"]).await.assert_code(0);
    let Serve {
        mut proc,
        port,
        dir,
        ..
    } = serve;
    let _keep = dir;
    proc.signal("TERM");
    proc.stderr_line("shutting down").await;
    proc.finish().await.assert_code(0);
    // The port is closed now.
    assert!(
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err(),
        "still listening on {port}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_sigint_exits_0() {
    let mut serve = Serve::examples().await;
    // A round trip first: the handlers are installed only after the "listening on" line (see
    // serve_signal_right_after_the_listening_line_exits_0).
    serve.run(&["ping"]).await.assert_code(0);
    serve.proc.signal("INT");
    serve.proc.stderr_line("shutting down").await;
    let Serve { proc, dir, .. } = serve;
    let _keep = dir;
    proc.finish().await.assert_code(0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_signal_right_after_the_listening_line_exits_0() {
    // A supervisor may stop the server as soon as it says it is ready. Five tries make the
    // race (observed in about 5 of 6 tries by hand) show reliably.
    for n in 1..=5 {
        let Serve { proc, dir, .. } = Serve::examples().await;
        let _keep = dir;
        proc.signal("TERM");
        let out = proc.finish().await;
        assert_eq!(out.code, 0, "try {n}: {out:#?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_insecure_dev_auth_warns_and_lets_anyone_in() {
    let cmd = jobcenter(["serve", "--listen", "127.0.0.1:0", "--insecure-dev-auth"]);
    let mut proc = Proc::spawn("jobcenter serve --insecure-dev-auth", cmd);
    proc.stderr_line("WARNING: --insecure-dev-auth lets anyone in")
        .await;
    let line = proc.stderr_line("listening on").await;
    let port = line
        .rsplit(':')
        .next()
        .unwrap_or_default()
        .trim()
        .to_string();
    let out = run(&[
        "ping", "--port", &port, "--who", "anybody", "--token", "anything",
    ])
    .await;
    out.assert_code(0);
    assert_eq!(out.stdout, vec!["pong".to_string()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_loads_the_examples_and_reports_the_count() {
    let serve = Serve::examples().await;
    let line = serve
        .proc
        .seen_stderr
        .iter()
        .find(|l| l.contains("listening on"))
        .cloned()
        .unwrap_or_default();
    assert!(line.contains("7 definition(s) loaded"), "{line:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_good_files_exits_0() {
    let examples = examples_dir();
    let out = run(&["check", examples.to_str().expect("utf-8 path")]).await;
    out.assert_code(0);
    assert!(out.stdout.is_empty(), "no errors on stdout: {out:#?}");
    for name in [
        "add",
        "calladd",
        "divide",
        "safediv",
        "square",
        "squareadd",
        "div",
    ] {
        assert!(
            out.stderr
                .iter()
                .any(|l| l.starts_with("ok: ") && l.contains(&format!(" {name} "))),
            "{name} not reported: {out:#?}"
        );
    }
    // Single files work too, callee before caller.
    let add = examples.join("add.ac");
    let calladd = examples.join("calladd.wf");
    run(&[
        "check",
        add.to_str().expect("utf-8 path"),
        calladd.to_str().expect("utf-8 path"),
    ])
    .await
    .assert_code(0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_broken_files_exits_1_with_file_line_message() {
    let dir = fixtures_dir().join("broken");
    let out = run(&["check", dir.to_str().expect("utf-8 path")]).await;
    out.assert_code(1);
    let errors: Vec<_> = out.stdout.iter().map(|l| file_line_message(l)).collect();
    assert_eq!(errors.len(), 2, "every error is reported: {out:#?}");
    let x = errors
        .iter()
        .find(|(f, _, _)| f.ends_with("x.wf"))
        .unwrap_or_else(|| panic!("no x.wf error: {out:#?}"));
    assert_eq!((x.1, x.2.contains("nosuch")), (7, true), "{x:?}");
    let y = errors
        .iter()
        .find(|(f, _, _)| f.ends_with("y.wf"))
        .unwrap_or_else(|| panic!("no y.wf error: {out:#?}"));
    assert_eq!((y.1, y.2.contains("bogus")), (5, true), "{y:?}");
    assert!(out.stderr.iter().any(|l| l == "2 error(s)"), "{out:#?}");

    let missing = fixtures_dir().join("no-such-file.wf");
    let out = run(&["check", missing.to_str().expect("utf-8 path")]).await;
    out.assert_code(1);
    assert_eq!(out.stdout.len(), 1, "{out:#?}");
    file_line_message(&out.stdout[0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_exits_0_with_every_result_as_expected() {
    let out = run(&["demo"]).await;
    out.assert_code(0);
    assert!(
        out.stdout
            .iter()
            .any(|l| l.contains("every result was as expected")),
        "{out:#?}"
    );
    assert!(
        !out.stdout.iter().any(|l| l.contains("UNEXPECTED")),
        "{out:#?}"
    );
    let quiet = run(&["demo", "--quiet"]).await;
    quiet.assert_code(0);
    assert!(quiet.stdout.is_empty(), "{quiet:#?}");
}

/// A self-signed certificate for 127.0.0.1: (cert.pem, key.pem) in `dir`.
fn self_signed(dir: &std::path::Path, name: &str) -> (PathBuf, PathBuf) {
    let ck = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()])
        .expect("generate a certificate");
    let cert = dir.join(format!("{name}.cert.pem"));
    let key = dir.join(format!("{name}.key.pem"));
    std::fs::write(&cert, ck.cert.pem()).expect("write cert");
    std::fs::write(&key, ck.key_pair.serialize_pem()).expect("write key");
    (cert, key)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_tls_listener_with_call_and_ping_over_tls() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) = self_signed(dir.path(), "server");
    let (other, _) = self_signed(dir.path(), "other");
    let path = |p: &PathBuf| p.to_str().expect("utf-8 path").to_string();
    let (cert_s, key_s, other_s) = (path(&cert), path(&key), path(&other));
    let serve = Serve::start_with(
        &[
            "--listen-tls",
            "127.0.0.1:0",
            "--tls-cert",
            &cert_s,
            "--tls-key",
            &key_s,
        ],
        &[examples_dir()],
    )
    .await;

    let out = serve.run(&["ping", "--tls", "--tls-ca", &cert_s]).await;
    out.assert_code(0);
    assert_eq!(out.stdout, vec!["pong".to_string()]);
    // A workflow over TLS: nobody serves add, so the job times out but is created.
    let out = serve
        .run(&[
            "call",
            "calladd",
            r#"{"input": 1}"#,
            "--tls",
            "--tls-ca",
            &cert_s,
            "--job-timeout",
            "0.1",
        ])
        .await;
    out.assert_code(4); // timed out, the job still runs
    assert_eq!(out.json_line(), serde_json::json!({"error": "timeout"}));

    // A certificate the CA file does not vouch for is refused; so is plain TCP.
    let out = serve
        .run(&["ping", "--tls", "--tls-ca", &other_s, "--timeout", "5"])
        .await;
    out.assert_code(2).assert_one_line_error("127.0.0.1");
    // Plain TCP never sees the greeting (the client also logs a warning about it).
    let out = serve.run(&["ping", "--timeout", "1"]).await;
    assert!(!out.stderr.iter().any(|l| l.contains("wating")), "{out:#?}");
    out.assert_code(2);
    let last = out.stderr.last().map(String::as_str).unwrap_or_default();
    assert!(
        last.starts_with("jobcenter ping: ") && last.contains("greeting"),
        "{out:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_listen_tls_needs_cert_and_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let passwd = password_file(dir.path());
    let mut cmd = jobcenter(["serve", "--listen-tls", "127.0.0.1:0", "--passwd"]);
    cmd.arg(&passwd);
    run_cmd(cmd, None)
        .await
        .assert_code(2)
        .assert_one_line_error("--tls-cert and --tls-key");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_auth_failure_delay_holds_back_a_wrong_token_and_bad_values_are_refused() {
    let serve = Serve::start_with(
        &[
            "--listen",
            "127.0.0.1:0",
            "--auth-failure-delay",
            "1.5",
            "--auth-max-checks",
            "1",
        ],
        &[],
    )
    .await;
    let t0 = std::time::Instant::now();
    let out = run_cmd(
        serve.as_user((cli_support::CLIENT.0, "wrong"), &["ping"]),
        None,
    )
    .await;
    out.assert_code(2)
        .assert_one_line_error("authentication failed");
    assert!(
        t0.elapsed() >= std::time::Duration::from_millis(1500),
        "answered after {:?}",
        t0.elapsed()
    );
    serve.run(&["ping"]).await.assert_code(0);

    let dir = tempfile::tempdir().expect("tempdir");
    let passwd = password_file(dir.path());
    let mut cmd = jobcenter(["serve", "--listen", "127.0.0.1:0", "--passwd"]);
    cmd.arg(&passwd).arg("--auth-failure-delay=-1");
    run_cmd(cmd, None)
        .await
        .assert_code(2)
        .assert_one_line_error("--auth-failure-delay");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdout_closed_by_the_reader_does_not_panic() {
    let (writer, reader) = tokio::net::unix::pipe::pipe().expect("pipe");
    drop(reader); // like `| head -1` after its line: every write gets EPIPE
    let writer = writer.into_blocking_fd().expect("a blocking pipe fd");
    let mut cmd = jobcenter(["demo"]);
    cmd.stdin(std::process::Stdio::null())
        .stdout(writer)
        .stderr(std::process::Stdio::piped());
    let child = cmd.spawn().expect("start jobcenter demo");
    let out = tokio::time::timeout(cli_support::BOUND, child.wait_with_output())
        .await
        .expect("demo finishes within the bound")
        .expect("wait for demo");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_ne!(out.status.code(), Some(101), "{stderr}");
}

/// `GET /metrics` on `addr` with an optional `Authorization` header value; the raw answer.
async fn http_get_metrics(addr: &str, authorization: Option<&str>) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut req = String::from("GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    if let Some(a) = authorization {
        req.push_str(&format!("Authorization: {a}\r\n"));
    }
    req.push_str("\r\n");
    let mut s = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connect to --http");
    s.write_all(req.as_bytes()).await.expect("send");
    let mut raw = String::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        s.read_to_string(&mut raw),
    )
    .await
    .expect("an answer in time")
    .expect("read");
    raw
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_http_serves_metrics_to_the_admin_only() {
    let mut serve = Serve::start_with(
        &["--listen", "127.0.0.1:0", "--http", "127.0.0.1:0"],
        &[examples_dir()],
    )
    .await;
    let line = serve.proc.stderr_line("metrics at http://").await;
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|r| r.strip_suffix("/metrics"))
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_string();
    let _worker = serve.worker(&[action("add", "add.sh")]).await;
    let out = serve.run(&["call", "calladd", r#"{"input": 4}"#]).await;
    out.assert_code(0);

    let anonymous = http_get_metrics(&addr, None).await;
    assert!(anonymous.starts_with("HTTP/1.1 401"), "{anonymous}");
    // base64("apimeister:m-secret"), the test password of MEISTER.
    let ok = http_get_metrics(&addr, Some("Basic YXBpbWVpc3RlcjptLXNlY3JldA==")).await;
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
    assert!(
        ok.contains("jobcenter_jobs_finished_total{workflow=\"calladd\"} 1"),
        "{ok}"
    );
    assert!(
        ok.contains("jobcenter_tasks_dispatched_total{action=\"add\"} 1"),
        "{ok}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_listen_auth_restricts_a_listener_and_bad_values_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) = self_signed(dir.path(), "server");
    let path = |p: &PathBuf| p.to_str().expect("utf-8 path").to_string();
    let (cert_s, key_s) = (path(&cert), path(&key));
    // A TLS listener for client certificates only: a right password is refused there.
    let mut serve = Serve::start_with(
        &[
            "--listen-tls",
            "127.0.0.1:0",
            "--tls-cert",
            &cert_s,
            "--tls-key",
            &key_s,
            "--listen-auth",
            "127.0.0.1:0=clientcert",
        ],
        &[examples_dir()],
    )
    .await;
    let started = serve.proc.seen_stderr.join("\n");
    assert!(started.contains("(tls; hello: clientcert)"), "{started}");
    let out = serve
        .run(&["ping", "--tls", "--tls-ca", &cert_s, "--timeout", "5"])
        .await;
    out.assert_code(2);
    let line = serve.proc.stderr_line("hello failed").await;
    assert!(
        line.contains("reason=authentication method password not allowed on this listener"),
        "{line}"
    );

    // Values that cannot be right stop the start with a usage error (exit 2).
    let passwd = password_file(dir.path());
    for (args, needle) in [
        (
            vec![
                "--listen",
                "127.0.0.1:0",
                "--listen-auth",
                "127.0.0.1:1=password",
            ],
            "no --listen or --listen-tls 127.0.0.1:1",
        ),
        (
            vec![
                "--listen",
                "127.0.0.1:0",
                "--listen-auth",
                "127.0.0.1:0=clientcert",
            ],
            "clientcert needs a TLS listener",
        ),
        (
            vec![
                "--listen",
                "127.0.0.1:0",
                "--listen-auth",
                "127.0.0.1:0=kerberos",
            ],
            "unknown authentication method",
        ),
        (
            vec![
                "--listen",
                "127.0.0.1:0",
                "--listen-auth",
                "127.0.0.1:0=password",
                "--listen-auth",
                "127.0.0.1:0=password",
            ],
            "given twice",
        ),
    ] {
        let mut cmd = jobcenter(["serve", "--passwd"]);
        cmd.arg(&passwd).args(&args);
        let out = run_cmd(cmd, None).await;
        out.assert_code(2);
        assert!(out.stderr.join("\n").contains(needle), "{args:?}: {out:#?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_reqauth_file_with_a_bad_line_stops_the_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let passwd = password_file(dir.path());
    let reqauth = dir.path().join("reqauth");
    std::fs::write(&reqauth, "# tokens\ntheCustomer:not-a-hash:ops\n").expect("write");
    let mut cmd = jobcenter(["serve", "--listen", "127.0.0.1:0", "--passwd"]);
    cmd.arg(&passwd).arg("--reqauth-file").arg(&reqauth);
    let out = run_cmd(cmd, None).await;
    out.assert_code(2);
    let want = format!("{}:2: not a supported password hash", reqauth.display());
    assert!(out.stderr.join("\n").contains(&want), "{out:#?}");
    assert!(!out.stderr.join("\n").contains("not-a-hash"), "{out:#?}");
}

/// The binary turns transparent huge pages off for itself (main.rs `no_huge_pages`;
/// BENCHMARKS.md, "Huge pages off"): the kernel reports it in the server's status.
#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_runs_without_transparent_huge_pages() {
    let serve = Serve::examples().await;
    let status = std::fs::read_to_string(format!("/proc/{}/status", serve.proc.pid()))
        .expect("the server's /proc status");
    let thp = status
        .lines()
        .find(|l| l.starts_with("THP_enabled:"))
        .map(|l| l.split_whitespace().last().unwrap_or_default().to_string());
    // Kernels before 5.0 do not report the setting; nothing to check there.
    if let Some(thp) = thp {
        assert_eq!(thp, "0", "THP_enabled of the server process");
    }
}
