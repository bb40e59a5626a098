//! The CLI traps of issue 12 (part 5) and the log output of `serve` (part 4), one test per
//! trap, through the real `jobcenter` binary against a real `jobcenter serve` child.

mod cli_support;

use std::path::{Path, PathBuf};

use cli_support::{
    action, closed_port, created_job_id, examples_dir, fixtures_dir, jobcenter, password_file, run,
    run_cmd, Proc, Serve, CLIENT, MEISTER,
};
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// The ports of a `listening on A:P, B:Q` line.
fn ports(line: &str) -> Vec<u16> {
    let list = line.split("listening on").nth(1).unwrap_or_default();
    list.split(',')
        .filter_map(|a| a.trim().rsplit(':').next()?.parse().ok())
        .collect()
}

/// `jobcenter ARGS` with who and token in the environment.
fn with_creds(args: &[&str], who: &str, token: &str) -> tokio::process::Command {
    let mut cmd = jobcenter(args);
    cmd.env("JOBCENTER_WHO", who).env("JOBCENTER_TOKEN", token);
    cmd
}

/// A password-file line for `who` with a `$5$` hash of `token`.
fn passwd_line(who: &str, token: &str) -> String {
    // $5$ is what the JobCenter password file speaks
    let hash = jobcenter_server::crypt::hash_sha256(token);
    format!("{who}:{hash}\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trap1_check_uses_the_defaults_of_serve_with_stage_locktype_and_dependencies() {
    let dir = fixtures_dir().join("check");
    let file = dir.join("everything.wf");
    // serve's defaults (stage C) plus --locktype: locks, split, sleep, map and events pass;
    // the callees beside the file come along, the broken unrelated.wf does not.
    let out = run(&["check", "--locktype", "slot", s(&file)]).await;
    out.assert_code(0);
    assert!(out.stdout.is_empty(), "{out:#?}");
    let err = out.stderr.join("\n");
    for want in ["double.wf", "bump.ac", "Workflow everything"] {
        assert!(err.contains(want), "{want} not in {out:#?}");
    }
    assert!(!err.contains("unrelated"), "{out:#?}");
    // The same options restrict it as they restrict serve.
    let out = run(&["check", s(&file)]).await;
    out.assert_code(1);
    assert_eq!(
        out.stdout,
        vec![format!("{}:11: no locktype slot?", file.display())]
    );
    let out = run(&["check", "--locktype", "slot", "--stage", "B", s(&file)]).await;
    out.assert_code(1);
    assert!(
        out.stdout.iter().any(|l| l.contains("map not supported")),
        "{out:#?}"
    );
    // And serve runs what check accepted, with the same options.
    let pw = tempfile::tempdir().expect("tempdir");
    let passwd = password_file(pw.path());
    let mut cmd = jobcenter(["serve", "--listen", "127.0.0.1:0", "--locktype", "slot"]);
    cmd.arg("--passwd").arg(&passwd);
    for f in ["everything.wf", "double.wf", "bump.ac"] {
        cmd.arg("--load").arg(dir.join(f));
    }
    let mut serve = Proc::spawn("jobcenter serve", cmd);
    let line = serve.stderr_line("listening on").await;
    assert!(line.contains("3 definition(s) loaded"), "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trap2_serve_refuses_an_unreadable_or_bad_passwd_or_cnfile_naming_file_and_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let good = password_file(dir.path());
    let missing = dir.path().join("nosuchfile");
    let bad = dir.path().join("badpasswd");
    std::fs::write(
        &bad,
        format!("# users\n{}\ngarbage\n", passwd_line("a", "b").trim()),
    )
    .expect("write");
    let plain = dir.path().join("plainpasswd");
    std::fs::write(&plain, "a:clear-text-password\n").expect("write");
    let badcn = dir.path().join("cns");
    std::fs::write(&badcn, "worker.example:theEmployee\nnocolon\n").expect("write");
    for (args, needle) in [
        (
            vec!["--passwd", s(&missing)],
            format!("cannot read {}", missing.display()),
        ),
        (
            vec!["--passwd", s(&bad)],
            format!("{}:3: expected user:hash", bad.display()),
        ),
        (
            vec!["--passwd", s(&plain)],
            format!("{}:1: not a supported password hash", plain.display()),
        ),
        (
            vec!["--passwd", s(&good), "--cnfile", s(&badcn)],
            format!("{}:2: expected cn:", badcn.display()),
        ),
    ] {
        let mut cmd = jobcenter(["serve", "--listen", "127.0.0.1:0"]);
        cmd.args(&args);
        let out = run_cmd(cmd, None).await;
        out.assert_code(2).assert_one_line_error(&needle);
        // The line itself (it may hold a hash) is not shown.
        assert!(!out.stderr[0].contains("clear-text"), "{out:#?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trap2_serve_reloads_passwd_on_sighup_and_keeps_the_old_one_when_bad() {
    let mut serve = Serve::start(&[]).await;
    let passwd = serve.dir.path().join("passwd");
    serve.run(&["ping"]).await.assert_code(0);
    // Replace the file: the new user gets in, the old one is out, after SIGHUP only.
    let newbie = ("newbie", "n-secret");
    std::fs::write(&passwd, passwd_line(newbie.0, newbie.1)).expect("write");
    serve.proc.signal("HUP");
    let line = serve
        .proc
        .stderr_line("reloaded the authentication files")
        .await;
    assert!(line.contains("password (1 users)"), "{line}");
    assert!(line.contains("INFO"), "{line}");
    run_cmd(serve.as_user(newbie, &["ping"]), None)
        .await
        .assert_code(0);
    run_cmd(serve.as_user(CLIENT, &["ping"]), None)
        .await
        .assert_code(2)
        .assert_one_line_error("authentication failed");
    // A bad file on reload: an error naming file and line, the loaded one stays.
    std::fs::write(
        &passwd,
        format!("{}oops\n", passwd_line(CLIENT.0, CLIENT.1)),
    )
    .expect("write");
    serve.proc.signal("HUP");
    let line = serve.proc.stderr_line("cannot reload").await;
    assert!(line.contains("ERROR"), "{line}");
    assert!(
        line.contains(&format!("{}:2: expected user:hash", passwd.display())),
        "{line}"
    );
    run_cmd(serve.as_user(newbie, &["ping"]), None)
        .await
        .assert_code(0);
    run_cmd(serve.as_user(CLIENT, &["ping"]), None)
        .await
        .assert_code(2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trap3_call_prints_the_job_id_at_once_and_exits_by_outcome() {
    let serve = Serve::examples().await;
    // Nobody serves `add`: the job waits, and its id is out while call still waits.
    let mut call = Proc::spawn(
        "jobcenter call",
        serve.client(&["call", "calladd", r#"{"input": 1}"#, "--job-timeout", "10"]),
    );
    let line = call.stderr_line("created").await;
    let id = created_job_id(&line).unwrap_or_else(|| panic!("no id in {line:?}"));
    assert!(call.running(), "call must still wait when the id is out");
    let out = serve.run(&["status", &id.to_string()]).await;
    out.assert_code(0);
    assert_eq!(out.json_line()["status"], json!("running"));
    // Timed out, job still running: exit 4 and a hint.
    let out = call.finish().await;
    out.assert_code(4);
    assert_eq!(out.json_line(), json!({"error": "timeout"}));
    assert!(
        out.stderr
            .iter()
            .any(|l| l.contains("still running") && l.contains(&format!("status {id} --wait"))),
        "{out:#?}"
    );
    // Not created: exit 3. A finished job with an error: exit 1 (cli_call).
    let out = serve.run(&["call", "nosuchflow", "{}"]).await;
    out.assert_code(3);
    assert!(
        out.stderr.iter().any(|l| l == "job not created"),
        "{out:#?}"
    );
    // The exit codes are documented.
    let help = run(&["call", "--help"]).await;
    help.assert_code(0);
    let text = help.stdout.join("\n");
    for want in [
        "Exit status:",
        "  3  the job was not created",
        "  4  timed out",
    ] {
        assert!(text.contains(want), "{want:?} not in {text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trap3_call_exits_5_when_the_connection_breaks_after_the_job_was_created() {
    let serve = Serve::examples().await;
    let mut call = Proc::spawn(
        "jobcenter call",
        serve.client(&["call", "calladd", r#"{"input": 1}"#]),
    );
    let line = call.stderr_line("created").await;
    let id = created_job_id(&line).unwrap_or_else(|| panic!("no id in {line:?}"));
    serve.proc.signal("KILL");
    let out = call.finish().await;
    out.assert_code(5);
    assert!(out.stdout.is_empty(), "{out:#?}");
    let last = out.stderr.last().cloned().unwrap_or_default();
    assert!(
        last.contains(&format!("waiting for job {id}")) && last.contains("may still run"),
        "{out:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trap3_call_says_what_to_do_when_refused_without_greeting_or_login_failed() {
    let creds = ["--who", "a", "--token", "b"];
    // Connection refused.
    let port = closed_port().to_string();
    let mut args = vec!["call", "calladd", "--port", &port];
    args.extend(creds);
    let out = run(&args).await;
    out.assert_code(2)
        .assert_one_line_error("connection refused. Is the server running");
    assert!(out.stderr[0].contains("--address/--port"), "{out:#?}");
    // Something listens but never greets.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = silent.local_addr().expect("addr").port().to_string();
    let keep = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((sock, _)) = silent.accept().await {
            held.push(sock);
        }
    });
    let mut args = vec!["call", "calladd", "--port", &port, "--timeout", "1"];
    args.extend(creds);
    let out = run(&args).await;
    out.assert_code(2);
    let last = out.stderr.last().cloned().unwrap_or_default();
    assert!(
        last.starts_with("jobcenter call: ") && last.contains("sent no greeting"),
        "{out:#?}"
    );
    assert!(!out.stderr.iter().any(|l| l.contains("wating")), "{out:#?}");
    keep.abort();
    // Login failed.
    let serve = Serve::examples().await;
    let out = run_cmd(
        serve.as_user((CLIENT.0, "wrong"), &["call", "calladd"]),
        None,
    )
    .await;
    out.assert_code(2)
        .assert_one_line_error("authentication failed as theCustomer");
    assert!(out.stderr[0].contains("--who/--token"), "{out:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trap4_listen_and_address_take_host_names() {
    let dir = tempfile::tempdir().expect("tempdir");
    let passwd = password_file(dir.path());
    let mut cmd = jobcenter(["serve", "--listen", "localhost:0"]);
    cmd.arg("--passwd").arg(&passwd);
    let mut serve = Proc::spawn("jobcenter serve", cmd);
    let line = serve.stderr_line("listening on").await;
    let found = ports(&line);
    assert!(!found.is_empty(), "{line}");
    for port in found {
        let address = format!("localhost:{port}");
        let out = run_cmd(
            with_creds(&["ping", "--address", &address], CLIENT.0, CLIENT.1),
            None,
        )
        .await;
        out.assert_code(0);
        assert_eq!(out.stdout, vec!["pong".to_string()]);
        let out = run_cmd(
            with_creds(
                &[
                    "ping",
                    "--address",
                    "localhost",
                    "--port",
                    &port.to_string(),
                ],
                CLIENT.0,
                CLIENT.1,
            ),
            None,
        )
        .await;
        out.assert_code(0);
    }
    // A name that does not resolve is a usage error naming the option.
    let out = run(&["serve", "--listen", "no-such-host.invalid:6522"]).await;
    out.assert_code(2);
    assert!(out.stderr.join("\n").contains("--listen"), "{out:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trap5_api_status_takes_a_fixed_set_of_topics() {
    let out = run(&["api-status", "bogus", "--who", "a", "--token", "b"]).await;
    out.assert_code(2);
    let err = out.stderr.join("\n");
    assert!(err.contains("invalid value 'bogus'"), "{err}");
    assert!(err.contains("stats, clients"), "{err}");
    // The known topics still reach the server.
    let serve = Serve::examples().await;
    let out = run_cmd(serve.as_user(MEISTER, &["api-status", "stats"]), None).await;
    out.assert_code(0);
    assert!(out.json_line()["clients"].is_number(), "{out:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trap6_wfname_conflicts_with_batch_and_batch_stdin_streams() {
    let out = run(&[
        "call", "calladd", "--batch", "-", "--who", "a", "--token", "b",
    ])
    .await;
    out.assert_code(2);
    assert!(
        out.stderr.join("\n").contains("cannot be used with"),
        "{out:#?}"
    );
    let serve = Serve::examples().await;
    let _worker = serve.worker(&[action("add", "add.sh")]).await;
    let (mut call, stdin) = Proc::spawn_with_stdin(
        "jobcenter call --batch -",
        serve.client(&["call", "--batch", "-", "--wfname", "calladd"]),
        true,
    );
    let mut stdin = stdin.expect("piped stdin");
    // One line, stdin left open: its result comes back before any more input.
    stdin
        .write_all(b"{\"input\": 1}\n")
        .await
        .expect("write stdin");
    stdin.flush().await.expect("flush");
    let first: Value = serde_json::from_str(&call.stdout_line().await).expect("JSON");
    assert_eq!(first["line"], json!(1));
    assert_eq!(first["outargs"], json!({"output": 4}));
    stdin
        .write_all(b"{\"input\": 2}\nnot json\n{\"input\": 3}\n")
        .await
        .expect("write stdin");
    drop(stdin);
    // A bad line stops reading; what was sent finishes and is printed; exit 2.
    let out = call.finish().await;
    out.assert_code(2);
    let lines: Vec<Value> = out
        .stdout
        .iter()
        .map(|l| serde_json::from_str(l).expect("JSON"))
        .collect();
    assert_eq!(lines.len(), 2, "{out:#?}");
    assert_eq!(lines[1]["line"], json!(2));
    assert_eq!(lines[1]["outargs"], json!({"output": 5}));
    let last = out.stderr.last().cloned().unwrap_or_default();
    assert!(last.contains("line 3: not JSON"), "{out:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trap7_tls_without_a_ca_needs_tls_insecure() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ck = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()])
        .expect("generate a certificate");
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    std::fs::write(&cert, ck.cert.pem()).expect("write cert");
    std::fs::write(&key, ck.key_pair.serialize_pem()).expect("write key");
    let serve = Serve::start_with(
        &[
            "--listen-tls",
            "127.0.0.1:0",
            "--tls-cert",
            s(&cert),
            "--tls-key",
            s(&key),
        ],
        &[examples_dir()],
    )
    .await;
    // No CA and no --tls-insecure: refused before connecting, with what to do.
    let out = serve.run(&["ping", "--tls"]).await;
    out.assert_code(2).assert_one_line_error("--tls-insecure");
    assert!(out.stderr[0].contains("--tls-ca"), "{out:#?}");
    // Explicitly insecure works, with a warning.
    let out = serve.run(&["ping", "--tls", "--tls-insecure"]).await;
    out.assert_code(0);
    assert_eq!(out.stdout, vec!["pong".to_string()]);
    assert!(
        out.stderr.iter().any(|l| l.contains("not verified")),
        "{out:#?}"
    );
    // --tls-insecure means nothing without --tls, and contradicts --tls-ca.
    serve.run(&["ping", "--tls-insecure"]).await.assert_code(2);
    serve
        .run(&["ping", "--tls", "--tls-insecure", "--tls-ca", s(&cert)])
        .await
        .assert_code(2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trap8_completions_for_bash_zsh_and_fish() {
    for shell in ["bash", "zsh", "fish"] {
        let out = run(&["completions", shell]).await;
        out.assert_code(0);
        let text = out.stdout.join("\n");
        for want in ["jobcenter", "api-status", "completions", "--tls-insecure"] {
            assert!(text.contains(want), "{shell}: {want} missing");
        }
    }
    let out = run(&["completions", "tcsh"]).await;
    out.assert_code(2);
    // The bash script is valid bash.
    if let Ok(bash) = std::process::Command::new("bash").arg("--version").output() {
        if bash.status.success() {
            let out = run(&["completions", "bash"]).await;
            let dir = tempfile::tempdir().expect("tempdir");
            let script = dir.path().join("jobcenter.bash");
            std::fs::write(&script, out.stdout.join("\n")).expect("write");
            let check = std::process::Command::new("bash")
                .arg("-n")
                .arg(&script)
                .output()
                .expect("bash -n");
            assert!(
                check.status.success(),
                "{}",
                String::from_utf8_lossy(&check.stderr)
            );
        }
    }
}

/// Start `jobcenter serve` with extra options and wait until it listens; its port.
async fn serve_with(dir: &Path, extra: &[&str]) -> (Proc, u16) {
    let passwd: PathBuf = password_file(dir);
    let mut cmd = jobcenter(["serve", "--listen", "127.0.0.1:0", "--load"]);
    cmd.arg(examples_dir())
        .arg("--passwd")
        .arg(&passwd)
        .args(extra);
    let mut proc = Proc::spawn("jobcenter serve", cmd);
    let port = proc.listening_port().await;
    (proc, port)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trap9_serve_logs_a_summary_and_failed_logins_without_colours_or_tokens() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut serve, port) = serve_with(dir.path(), &[]).await;
    let started = serve.seen_stderr.join("\n");
    assert!(started.contains(" INFO "), "{started}");
    for want in [
        "jobcenter serve started",
        "listen=127.0.0.1:",
        "store=memory",
        "definitions=7",
        "auth=password (3 users)",
    ] {
        assert!(started.contains(want), "{want:?} not in {started}");
    }
    let wrong = "Wrong-Token-9f3";
    let out = run_cmd(
        with_creds(&["ping", "--port", &port.to_string()], CLIENT.0, wrong),
        None,
    )
    .await;
    out.assert_code(2);
    let line = serve.stderr_line("hello failed").await;
    assert!(line.contains(" WARN "), "{line}");
    assert!(line.contains("reason=nope"), "{line}");
    assert!(line.contains("who=theCustomer"), "{line}");
    assert!(line.contains("from=127.0.0.1:"), "{line}");
    serve.signal("TERM");
    let out = serve.finish().await;
    let all = out.stderr.join("\n");
    assert!(
        !all.contains('\u{1b}'),
        "no ANSI colours into a pipe: {all}"
    );
    assert!(!all.contains(wrong), "the token is logged: {all}");
    assert!(!all.contains(CLIENT.1), "a token is logged: {all}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trap9_serve_log_format_json_writes_one_object_per_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut serve, port) = serve_with(dir.path(), &["--log-format", "json"]).await;
    let out = run_cmd(
        with_creds(
            &["ping", "--port", &port.to_string()],
            "nobody",
            "x-token-x",
        ),
        None,
    )
    .await;
    out.assert_code(2);
    serve.stderr_line("hello failed").await;
    serve.signal("TERM");
    let out = serve.finish().await;
    let records = out.json_records();
    let started = records
        .iter()
        .find(|r| r["fields"]["message"] == json!("jobcenter serve started"))
        .unwrap_or_else(|| panic!("no start-up record: {out:#?}"));
    assert_eq!(started["level"], json!("INFO"));
    assert_eq!(started["fields"]["auth"], json!("password (3 users)"));
    let failed = records
        .iter()
        .find(|r| r["fields"]["message"] == json!("hello failed, closing"))
        .unwrap_or_else(|| panic!("no failed login record: {out:#?}"));
    assert_eq!(failed["level"], json!("WARN"));
    assert_eq!(failed["fields"]["reason"], json!("no such user"));
    assert!(!out.stderr.join("\n").contains("x-token-x"), "{out:#?}");
    // Only the plain CLI messages are not JSON.
    for l in out.stderr.iter().filter(|l| !l.starts_with('{')) {
        assert!(l.starts_with("jobcenter serve: "), "{l}");
    }
}
