//! `jobcenter work --action NAME=COMMAND` through the real binary: shell-script actions
//! (success, non-zero exit, invalid JSON), draining on SIGTERM, exit 91 when the server dies.

mod cli_support;

use std::path::Path;

use cli_support::{action, closed_port, fixtures_dir, job_id, run, Proc, Serve, BOUND, WORKER};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::net::unix::pipe;

/// Call calladd with a worker serving `add` by `script`; returns the call's output.
async fn calladd_with(script: &str, input: i64) -> (cli_support::Output, Serve) {
    let serve = Serve::examples().await;
    let worker = serve.worker(&[action("add", script)]).await;
    let inargs = json!({ "input": input }).to_string();
    let out = serve.run(&["call", "calladd", &inargs]).await;
    drop(worker);
    (out, serve)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn work_script_success_gets_job_id_and_action_in_env() {
    let (out, _serve) = calladd_with("add.sh", 39).await;
    out.assert_code(0);
    assert_eq!(out.json_line(), json!({"output": 42}));

    // stdin carried the job id, the environment JOBCENTER_JOB_ID and JOBCENTER_ACTION.
    let (out, _serve) = calladd_with("jobid.sh", 1).await;
    out.assert_code(0);
    assert_eq!(out.json_line(), json!({"output": job_id(&out)}), "{out:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn work_script_nonzero_exit_gives_error_with_stderr_text() {
    let (out, _serve) = calladd_with("fail.sh", 1).await;
    out.assert_code(1);
    let v = out.json_line();
    assert_eq!(
        v["error"].as_str().map(str::trim),
        Some("this action always fails"),
        "{v}"
    );
    assert_eq!(v.as_object().map(|m| m.len()), Some(1), "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn work_script_invalid_json_gives_error() {
    let (out, _serve) = calladd_with("junk.sh", 1).await;
    out.assert_code(1);
    let v = out.json_line();
    let msg = v["error"].as_str().unwrap_or_default();
    assert!(msg.contains("invalid json"), "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn work_sigterm_drains_the_task_in_flight_then_exits_0() {
    let serve = Serve::examples().await;
    let mut fifos = Fifos::new();

    let mut cmd = serve.as_user(WORKER, &["work", "--action", &action("add", "block.sh")]);
    cmd.env("JC_TEST_FIFOS", fifos.dir.path());
    let mut worker = Proc::spawn("jobcenter work", cmd);
    worker.stderr_line("jobcenter work: serving").await;

    let call = Proc::spawn(
        "jobcenter call",
        serve.client(&["call", "calladd", r#"{"input": 0}"#]),
    );
    fifos.started("the action script").await;

    worker.signal("TERM");
    worker.stderr_line("draining").await;
    assert!(worker.running(), "the worker waits for its task in flight");

    let mut go = fifos.go();
    go.write_all(b"go\n").await.expect("release the script");

    let out = call.finish().await;
    out.assert_code(0);
    assert_eq!(
        out.json_line(),
        json!({"output": 42}),
        "the drained task's result"
    );
    let w = worker.finish().await;
    w.assert_code(0);
    drop(go);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn work_addenv_passes_the_task_environment() {
    let serve = Serve::examples().await;
    let cmd = serve.as_user(
        WORKER,
        &["work", "--addenv", "--action", &action("add", "addenv.sh")],
    );
    let mut worker = Proc::spawn("jobcenter work --addenv", cmd);
    worker.stderr_line("jobcenter work: serving").await;
    let out = serve.run(&["call", "calladd", r#"{"input": 5}"#]).await;
    out.assert_code(0);
    assert_eq!(out.json_line(), json!({"output": 1}));
    // Stop it cleanly (it withdraws its action) so the next job goes to the next worker.
    worker.signal("TERM");
    worker.finish().await.assert_code(0);

    // Without --addenv the same script sees no env and fails the job.
    let _plain = serve.worker(&[action("add", "addenv.sh")]).await;
    let out = serve.run(&["call", "calladd", r#"{"input": 5}"#]).await;
    out.assert_code(1);
    let msg = out.json_line()["error"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(msg.starts_with("no env in"), "{msg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn work_slots_2_runs_two_tasks_at_once() {
    let serve = Serve::examples().await;
    let mut fifos = Fifos::new();
    let mut cmd = serve.as_user(
        WORKER,
        &[
            "work",
            "--slots",
            "2",
            "--action",
            &action("add", "block.sh"),
        ],
    );
    cmd.env("JC_TEST_FIFOS", fifos.dir.path());
    let mut worker = Proc::spawn("jobcenter work --slots 2", cmd);
    worker.stderr_line("jobcenter work: serving").await;
    let calls: Vec<Proc> = (0..2)
        .map(|i| {
            let inargs = json!({ "input": i }).to_string();
            Proc::spawn(
                "jobcenter call",
                serve.client(&["call", "calladd", &inargs]),
            )
        })
        .collect();
    // Both scripts are running before either is released.
    for n in 1..=2 {
        fifos.started(&format!("task {n} of 2")).await;
    }
    let mut go = fifos.go();
    go.write_all(b"go\ngo\n")
        .await
        .expect("release the scripts");
    for call in calls {
        let out = call.finish().await;
        out.assert_code(0);
        assert_eq!(out.json_line(), json!({"output": 42}));
    }
    drop(go);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn work_sigterm_when_idle_exits_0() {
    let serve = Serve::examples().await;
    let worker = serve.worker(&[action("add", "add.sh")]).await;
    // A round trip first: the handlers are installed only after the "serving" line (see
    // work_sigterm_right_after_the_serving_line_exits_0).
    serve.run(&["ping"]).await.assert_code(0);
    worker.signal("TERM");
    worker.finish().await.assert_code(0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn work_sigterm_right_after_the_serving_line_exits_0() {
    let serve = Serve::examples().await;
    for n in 1..=5 {
        let worker = serve.worker(&[action("add", "add.sh")]).await;
        worker.signal("TERM");
        let out = worker.finish().await;
        assert_eq!(out.code, 0, "try {n}: {out:#?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c93_work_exits_91_when_the_server_dies() {
    let serve = Serve::examples().await;
    let worker = serve.worker(&[action("add", "add.sh")]).await;
    serve.proc.signal("KILL");
    let out = worker.finish().await;
    out.assert_code(91);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn work_refuses_bad_arguments_with_exit_2() {
    let port = closed_port().to_string();
    let creds = ["--port", port.as_str(), "--who", "a", "--token", "b"];
    for (spec, needle) in [("add", "NAME=COMMAND"), ("=true", "NAME=COMMAND")] {
        let mut args = vec!["work", "--action", spec];
        args.extend(creds);
        run(&args)
            .await
            .assert_code(2)
            .assert_one_line_error(needle);
    }
    let mut args = vec!["work", "--action", "add=true"];
    args.extend(creds);
    run(&args)
        .await
        .assert_code(2)
        .assert_one_line_error("cannot connect");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c93_work_exits_92_without_server_pings() {
    // The server pings workers every 60 s; a worker that wants one within 0.3 s gives up.
    let serve = Serve::examples().await;
    let cmd = serve.as_user(
        WORKER,
        &[
            "work",
            "--ping-timeout",
            "0.3",
            "--action",
            &action("add", "add.sh"),
        ],
    );
    let mut worker = Proc::spawn("jobcenter work --ping-timeout 0.3", cmd);
    worker.stderr_line("jobcenter work: serving").await;
    worker.finish().await.assert_code(92);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn work_slotgroup_and_workername_are_announced() {
    let serve = Serve::examples().await;
    let cmd = serve.as_user(
        WORKER,
        &[
            "work",
            "--slotgroup",
            "pool:3",
            "--workername",
            "cli test worker",
            "--action",
            &action("add", "add.sh"),
            "--action",
            &action("div", "div.sh"),
        ],
    );
    let mut worker = Proc::spawn("jobcenter work --slotgroup", cmd);
    worker.stderr_line("jobcenter work: serving add, div").await;
    let out = cli_support::run_cmd(
        serve.as_user(cli_support::MEISTER, &["api-status", "clients"]),
        None,
    )
    .await;
    out.assert_code(0);
    let clients: serde_json::Value =
        serde_json::from_str(&out.stdout.join("\n")).expect("clients dump is JSON");
    let me = clients
        .as_array()
        .and_then(|a| a.iter().find(|c| c["workername"] == "cli test worker"))
        .unwrap_or_else(|| panic!("no worker named 'cli test worker' in {clients:#}"));
    assert_eq!(me["slotgroups"]["pool"]["slots"], 3.0, "{me:#}");
    assert_eq!(me["workeractions"]["add"]["slotgroup"], "pool", "{me:#}");
    assert_eq!(me["workeractions"]["div"]["slotgroup"], "pool", "{me:#}");
    // And it works through the shared pool.
    let out = serve
        .run(&["call", "divide", r#"{"dividend": 8, "divisor": 2}"#])
        .await;
    out.assert_code(0);
    assert_eq!(out.json_line(), json!({"quotient": 4}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn work_filter_routes_tasks_to_the_matching_worker() {
    let serve = Serve::start(&[fixtures_dir().join("filtered")]).await;
    let lane = |name: &str, add: i64| -> Vec<String> {
        vec![
            "work".to_string(),
            "--filter".to_string(),
            json!({ "lane": name }).to_string(),
            "--action".to_string(),
            format!("fadd=cat > /dev/null; echo '{{\"counter\": {add}}}'"),
        ]
    };
    let mut workers = Vec::new();
    for (name, add) in [("a", 100), ("b", 200)] {
        let args = lane(name, add);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut w = Proc::spawn("jobcenter work --filter", serve.as_user(WORKER, &args));
        w.stderr_line("jobcenter work: serving fadd").await;
        workers.push(w);
    }
    for (name, expect) in [("a", 100), ("b", 200), ("a", 100)] {
        let inargs = json!({"input": 1, "lane": name}).to_string();
        let out = serve.run(&["call", "filtercall", &inargs]).await;
        out.assert_code(0);
        assert_eq!(out.json_line(), json!({ "output": expect }), "lane {name}");
    }

    // The action requires a filter; examples' add does not allow one: both refused, exit 2.
    let out = cli_support::run_cmd(
        serve.as_user(WORKER, &["work", "--action", "fadd=true"]),
        None,
    )
    .await;
    out.assert_code(2)
        .assert_one_line_error("filtering is required");
    let out = cli_support::run_cmd(
        serve.as_user(
            WORKER,
            &["work", "--filter", "[1]", "--action", "fadd=true"],
        ),
        None,
    )
    .await;
    out.assert_code(2)
        .assert_one_line_error("--filter must be a JSON object");
}

/// Make a named pipe with mkfifo(1).
/// The FIFOs `started` (the script writes a line when it starts) and `go` (it waits for a
/// line there) of `block.sh`, in a temporary folder for `JC_TEST_FIFOS`.
struct Fifos {
    dir: tempfile::TempDir,
    started: Lines<BufReader<pipe::Receiver>>,
}

impl Fifos {
    fn new() -> Fifos {
        let dir = tempfile::tempdir().expect("tempdir");
        mkfifo(&dir.path().join("started"));
        mkfifo(&dir.path().join("go"));
        // Held read-write, so neither side ever sees end-of-file or blocks on open.
        let started = pipe::OpenOptions::new()
            .read_write(true)
            .open_receiver(dir.path().join("started"))
            .expect("open the started FIFO");
        Fifos {
            dir,
            started: BufReader::new(started).lines(),
        }
    }

    /// Wait (within [`BOUND`]) for the next `started` line of `what`.
    async fn started(&mut self, what: &str) {
        let line = tokio::time::timeout(BOUND, self.started.next_line())
            .await
            .unwrap_or_else(|_| panic!("{what} did not start within the bound"))
            .expect("read the started FIFO");
        assert_eq!(line.as_deref(), Some("started"));
    }

    /// The writing end of `go` (read-write too).
    fn go(&self) -> pipe::Sender {
        pipe::OpenOptions::new()
            .read_write(true)
            .open_sender(self.dir.path().join("go"))
            .expect("open the go FIFO")
    }
}

fn mkfifo(path: &Path) {
    let status = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("run mkfifo");
    assert!(status.success(), "mkfifo {}", path.display());
}
