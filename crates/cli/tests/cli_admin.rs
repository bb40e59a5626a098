//! The admin commands through the real binary (docs/PROTOCOL.md §18, README "Operating
//! it"): `jobs`, `job`, `tree`, `workers`, `locks`, `errors`, `retry`, `cancel`,
//! `disable`/`enable`, as tables and with `--json`, as the admin and as someone else.

mod cli_support;

use cli_support::{action, job_id, run_cmd, Output, Serve, CLIENT, MEISTER};
use serde_json::{json, Value};

/// Run an admin command as the admin identity.
async fn admin(serve: &Serve, args: &[&str]) -> Output {
    run_cmd(serve.as_user(MEISTER, args), None).await
}

/// Run an admin command with `--json`; it must succeed with one JSON line.
async fn admin_json(serve: &Serve, args: &[&str]) -> Value {
    let mut args = args.to_vec();
    args.push("--json");
    let out = admin(serve, &args).await;
    out.assert_code(0);
    out.json_line()
}

/// Create a calladd job nobody serves yet (the call gives up after 0.2 s, the job stays).
async fn pending_calladd(serve: &Serve, input: i64) -> i64 {
    let inargs = json!({ "input": input }).to_string();
    let out = serve
        .run(&["call", "calladd", &inargs, "--job-timeout", "0.2"])
        .await;
    out.assert_code(4);
    job_id(&out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_commands_show_a_job_that_was_just_run() {
    let serve = Serve::examples().await;
    let _worker = serve
        .worker(&[action("add", "add.sh"), action("div", "div.sh")])
        .await;
    let ok = serve.run(&["call", "calladd", r#"{"input": 1}"#]).await;
    ok.assert_code(0);
    let ok = job_id(&ok);
    let bad = serve
        .run(&["call", "divide", r#"{"dividend": 1, "divisor": 0}"#])
        .await;
    bad.assert_code(1);
    let bad = job_id(&bad);

    // jobs: newest first, as JSON and as a table.
    let v = admin_json(&serve, &["jobs"]).await;
    let ids: Vec<i64> = v
        .as_array()
        .expect("an array")
        .iter()
        .filter_map(|j| j["job_id"].as_i64())
        .collect();
    assert_eq!(ids, vec![bad, ok], "{v}");
    assert_eq!(v[0]["state"], "error");
    assert_eq!(v[1]["state"], "finished");
    assert_eq!(v[1]["workflow"], "calladd");
    let out = admin(&serve, &["jobs", "--workflow", "calladd"]).await;
    out.assert_code(0);
    assert!(out.stdout[0].starts_with("ID"), "{out:#?}");
    assert_eq!(out.stdout.len(), 2, "{out:#?}");
    assert!(out.stdout[1].starts_with(&format!("{ok} ")), "{out:#?}");
    assert!(out.stdout[1].contains("finished"), "{out:#?}");
    let v = admin_json(&serve, &["jobs", "--state", "error", "--since", "1h"]).await;
    assert_eq!(v.as_array().map(Vec::len), Some(1), "{v}");
    assert_eq!(v[0]["job_id"], bad);
    admin(&serve, &["jobs", "--since", "soon"])
        .await
        .assert_code(2)
        .assert_one_line_error("--since soon");
    admin(&serve, &["jobs", "--state", "bogus"])
        .await
        .assert_code(1)
        .assert_one_line_error("unknown state bogus");

    // job: everything the store keeps.
    let v = admin_json(&serve, &["job", &ok.to_string()]).await;
    assert_eq!(v["inargs"], json!({"input": 1}), "{v}");
    assert_eq!(v["outargs"], json!({"output": 4}), "{v}");
    let out = admin(&serve, &["job", &bad.to_string()]).await;
    out.assert_code(0);
    let text = out.stdout.join("\n");
    assert!(text.contains("state      error"), "{text}");
    assert!(text.contains("division by zero"), "{text}");
    assert!(text.contains("inargs:"), "{text}");
    assert!(text.contains("\"divisor\": 0"), "{text}");
    assert!(text.contains("history:"), "{text}");
    assert!(
        out.stdout.iter().any(|l| l.contains("call (line")
            && l.contains("div")
            && l.contains("division by zero")),
        "{text}"
    );
    admin(&serve, &["job", "987654"])
        .await
        .assert_code(1)
        .assert_one_line_error("no job 987654");
    admin(&serve, &["job", "abc"])
        .await
        .assert_code(2)
        .assert_one_line_error("invalid job id");

    // tree of a top-level job: itself.
    let v = admin_json(&serve, &["tree", &ok.to_string()]).await;
    assert_eq!(v["root"], ok);
    assert_eq!(v["nodes"].as_array().map(Vec::len), Some(1), "{v}");
    let out = admin(&serve, &["tree", &ok.to_string()]).await;
    out.assert_code(0);
    assert!(out.stdout[1].starts_with(&format!("{ok} *")), "{out:#?}");

    // workers: the one worker, its actions and slots, connected here.
    let v = admin_json(&serve, &["workers"]).await;
    let w = &v["workers"][0];
    let actions: Vec<&str> = w["actions"]
        .as_array()
        .expect("actions")
        .iter()
        .filter_map(|a| a["action"].as_str())
        .collect();
    assert_eq!(actions, vec!["add", "div"], "{v}");
    assert!(w["local"]["slotgroups"].is_object(), "{v}");
    let out = admin(&serve, &["workers"]).await;
    out.assert_code(0);
    assert!(out.stdout[0].contains("LAST PING"), "{out:#?}");
    assert!(out.stdout[1].contains("add, div"), "{out:#?}");

    // errors: the failed job.
    let v = admin_json(&serve, &["errors"]).await;
    assert_eq!(v[0]["job_id"], bad, "{v}");
    let out = admin(&serve, &["errors", "--since", "10m"]).await;
    out.assert_code(0);
    assert!(out.stdout[1].contains("division by zero"), "{out:#?}");

    // locks: the examples take none.
    let v = admin_json(&serve, &["locks"]).await;
    assert_eq!(v, json!([]));
    let out = admin(&serve, &["locks"]).await;
    out.assert_code(0);
    assert_eq!(
        out.stdout,
        vec!["TYPE  VALUE  HOLDER  INHERITABLE  WAITERS"]
    );

    // retry of the failed job: its task runs again (and fails again the same way).
    let v = admin_json(&serve, &["retry", &bad.to_string()]).await;
    assert_eq!(v, json!({"job_id": bad, "was": "error", "action": "div"}));
    let st = serve.run(&["status", &bad.to_string(), "--wait"]).await;
    assert_eq!(st.json_line()["status"], "error");
    let out = admin(&serve, &["retry", &ok.to_string()]).await;
    out.assert_code(1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_disable_enable_and_permissions() {
    let serve = Serve::examples().await;

    // Not the admin: the permission error, exit 1.
    for args in [
        vec!["jobs"],
        vec!["workers"],
        vec!["cancel", "1"],
        vec!["disable", "add"],
    ] {
        run_cmd(serve.as_user(CLIENT, &args), None)
            .await
            .assert_code(1)
            .assert_one_line_error("permission denied");
    }

    // cancel a waiting job: its waiting client gets the error.
    let pending = pending_calladd(&serve, 5).await;
    let waiter = serve.client(&["status", &pending.to_string(), "--wait"]);
    let waiter = tokio::spawn(run_cmd(waiter, None));
    let out = admin(
        &serve,
        &["cancel", &pending.to_string(), "--reason", "not needed"],
    )
    .await;
    out.assert_code(0);
    assert_eq!(
        out.stdout,
        vec![format!(
            "job {pending} cancelled: its error is \"job cancelled: not needed\""
        )]
    );
    let st = waiter.await.expect("waiter");
    assert_eq!(
        st.json_line()["outargs"],
        json!({"error": {"msg": "job cancelled: not needed", "class": "fatal"}})
    );
    admin(&serve, &["cancel", &pending.to_string()])
        .await
        .assert_code(1)
        .assert_one_line_error("unknown or has finished already");

    // disable: a new job's task waits; enable: it runs.
    let out = admin(&serve, &["disable", "add"]).await;
    out.assert_code(0);
    assert_eq!(out.stdout, vec!["action add disabled"]);
    assert_eq!(
        admin_json(&serve, &["disable", "add"]).await,
        json!({"action": "add", "enabled": false, "changed": false})
    );
    admin(&serve, &["disable", "nosuchaction"])
        .await
        .assert_code(1)
        .assert_one_line_error("no action named nosuchaction");
    let _worker = serve.worker(&[action("add", "add.sh")]).await;
    let held = pending_calladd(&serve, 10).await;
    let v = admin_json(&serve, &["job", &held.to_string()]).await;
    assert_eq!(v["state"], "ready", "{v}");
    let v = admin_json(&serve, &["workers"]).await;
    assert_eq!(v["disabled_actions"], json!(["add"]), "{v}");
    assert_eq!(v["workers"][0]["actions"][0]["disabled"], true, "{v}");
    let out = admin(&serve, &["enable", "add"]).await;
    out.assert_code(0);
    assert_eq!(out.stdout, vec!["action add enabled"]);
    let st = serve.run(&["status", &held.to_string(), "--wait"]).await;
    assert_eq!(st.json_line()["outargs"], json!({"output": 13}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_action_stays_disabled_across_a_restart() {
    let serve = Serve::examples().await;
    admin(&serve, &["disable", "add"]).await.assert_code(0);
    // kill -9: the answer came after the store's sync, so the setting is on disk.
    let serve = serve.restart().await;
    let v = admin_json(&serve, &["workers"]).await;
    assert_eq!(v["disabled_actions"], json!(["add"]), "{v}");
    let _worker = serve.worker(&[action("add", "add.sh")]).await;
    let held = pending_calladd(&serve, 20).await;
    let v = admin_json(&serve, &["job", &held.to_string()]).await;
    assert_eq!(v["state"], "ready", "{v}");
    assert_eq!(
        admin_json(&serve, &["enable", "add"]).await,
        json!({"action": "add", "enabled": true, "changed": true})
    );
    let st = serve.run(&["status", &held.to_string(), "--wait"]).await;
    assert_eq!(st.json_line()["outargs"], json!({"output": 23}));
    // Enabled stays enabled too.
    let serve = serve.restart().await;
    let v = admin_json(&serve, &["workers"]).await;
    assert_eq!(v["disabled_actions"], json!([]), "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_admin_names_the_admin_identity() {
    let serve = Serve::start_with(
        &["--listen", "127.0.0.1:0", "--admin", CLIENT.0],
        &[cli_support::examples_dir()],
    )
    .await;
    // The named identity may; apimeister no longer may, for get_api_status neither.
    run_cmd(serve.as_user(CLIENT, &["jobs", "--json"]), None)
        .await
        .assert_code(0);
    run_cmd(serve.as_user(CLIENT, &["api-status"]), None)
        .await
        .assert_code(0);
    for args in [vec!["jobs"], vec!["api-status"]] {
        let out = admin(&serve, &args).await;
        out.assert_code(1);
        assert!(
            out.stderr.iter().any(|l| l.contains("permission denied")),
            "{out:#?}"
        );
    }
}
