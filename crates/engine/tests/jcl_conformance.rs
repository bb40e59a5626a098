//! docs/JCL.md Part 4, Stage A conformance cases C01–C30, run against the [`Engine`] through the
//! `Backend` trait with in-test reference workers (`c_add`, `c_fail`, `c_echo`, `c_soft`,
//! `c_slow`) that react to `ActionReady` events.

#[path = "runtime_support.rs"]
mod support;

use jobcenter_engine::backend::{Backend, Event};
use serde_json::json;
use support::{assert_out, Harness};

#[tokio::test]
async fn jcl_c01_call_action_default_output_map_wfomap() {
    let h = Harness::new().await;
    let r = h.run_id("k01", json!({"input": 5})).await;
    let (id, out) = r.clone().expect("k01 runs");
    assert_out(&Ok(out), json!({"output": 6}));
    let got = h.received_for(id);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].inargs, json!({"counter": 5, "step": 1}));
    assert_eq!(got[0].env, json!({}));
}

#[tokio::test]
async fn jcl_c02_missing_or_ill_typed_inputs_unknown_workflow() {
    Harness::new().await.cases("C02").await;
}

#[tokio::test]
async fn jcl_c03_defaults_null_extra_arguments() {
    Harness::new().await.cases("C03").await;
}

#[tokio::test]
async fn jcl_c04_schema_type_integer() {
    Harness::new().await.cases("C04").await;
}

#[tokio::test]
async fn jcl_c05_required_workflow_output_missing() {
    Harness::new().await.cases("C05").await;
}

#[tokio::test]
async fn jcl_c06_workflow_output_of_wrong_type() {
    Harness::new().await.cases("C06").await;
}

#[tokio::test]
async fn jcl_c07_division_uncaught_expression_error() {
    Harness::new().await.cases("C07").await;
}

#[tokio::test]
async fn jcl_c08_try_catch_ifdef_error() {
    Harness::new().await.cases("C08").await;
}

#[tokio::test]
async fn jcl_c09_worker_errors_uncaught() {
    Harness::new().await.cases("C09").await;
}

#[tokio::test]
async fn jcl_c10_worker_errors_caught_fatal_not_catchable() {
    Harness::new().await.cases("C10").await;
}

#[tokio::test]
async fn jcl_c11_call_of_a_workflow() {
    Harness::new().await.cases("C11").await;
}

#[tokio::test]
async fn jcl_c12_child_error_propagation_uncaught() {
    Harness::new().await.cases("C12").await;
}

#[tokio::test]
async fn jcl_c13_child_error_caught_in_parent() {
    Harness::new().await.cases("C13").await;
}

#[tokio::test]
async fn jcl_c14_recursion_and_max_depth() {
    Harness::new().await.cases("C14").await;
}

#[tokio::test]
async fn jcl_c15_max_steps_default() {
    Harness::new().await.cases("C15").await;
}

#[tokio::test]
async fn jcl_c16_configured_max_steps_exact_counting() {
    Harness::new().await.cases("C16").await;
}

#[tokio::test]
async fn jcl_c17_operators_and_value_model() {
    Harness::new().await.cases("C17").await;
}

#[tokio::test]
async fn jcl_c18_compound_assignments_arrays_nested() {
    Harness::new().await.cases("C18").await;
}

#[tokio::test]
async fn jcl_c19_string_literals_are_raw() {
    Harness::new().await.cases("C19").await;
}

#[tokio::test]
async fn jcl_c20_default_literal_forms() {
    Harness::new().await.cases("C20").await;
}

#[tokio::test]
async fn jcl_c21_case_when_else() {
    Harness::new().await.cases("C21").await;
}

#[tokio::test]
async fn jcl_c22_repeat_until_runs_at_least_once() {
    Harness::new().await.cases("C22").await;
}

#[tokio::test]
async fn jcl_c23_while_with_action_if_chain_return_in_loop() {
    Harness::new().await.cases("C23").await;
}

#[tokio::test]
async fn jcl_c24_nested_try_raise_error_rethrow() {
    Harness::new().await.cases("C24").await;
}

#[tokio::test]
async fn jcl_c25_magic_assignments() {
    let h = Harness::new().await;
    let (id, out) = h
        .run_id("k25", json!({"counter": 40}))
        .await
        .expect("k25 runs");
    assert_out(&Ok(out), json!({"counter": 42}));
    let got = h.received_for(id);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].inargs, json!({"counter": 40, "step": 2}));
}

#[tokio::test]
async fn jcl_c26_assert() {
    Harness::new().await.cases("C26").await;
}

#[tokio::test]
async fn jcl_c27_environment_wfenv_max_depth_ids_action_env() {
    let h = Harness::new().await;
    let (id, out) = h
        .run_id("k27b", json!({"x": {"a": 1}}))
        .await
        .expect("k27b runs");
    let env = json!({"client": "jc_admin", "job_id": id, "greeting": "hi"});
    assert_out(
        &Ok(out),
        json!({"env": {"greeting": "hi", "num": "42", "flag": "true", "client": "jc_admin", "version": "0.1", "max_depth": "5", "has_job_id": 1, "in_cond": "job_id not visible", "in_let": 1}, "seen": {"inargs": {"x": {"a": 1}}, "env": env}}),
    );
    let got = h.received_for(id);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].inargs, json!({"x": {"a": 1}}));
    assert_eq!(got[0].env, env);
}

#[tokio::test]
async fn jcl_c28_runtime_errors_and_implicit_input_checks() {
    let h = Harness::new().await;
    for (mode, expected) in support::jcl_error_cases("k40") {
        assert_out(&h.run("k40", json!({ "mode": mode })).await, expected);
    }
    // Autovivification: either emulated (`{}`) or not (`null`) is acceptable.
    let auto = h.run("k40", json!({"mode": "autoviv"})).await;
    let ok = auto == Ok(json!({"r": {"foo": {}}})) || auto == Ok(json!({"r": {"foo": null}}));
    assert!(ok, "autoviv gave {auto:?}");
}

#[tokio::test]
async fn jcl_c29_error_phase_prefixes_and_line_numbers() {
    let h = Harness::new().await;
    for (mode, expected) in support::jcl_error_cases("k42") {
        assert_out(&h.run("k42", json!({ "mode": mode })).await, expected);
    }
}

#[tokio::test]
async fn jcl_c30_booleans_and_truthiness() {
    Harness::new().await.cases("C30").await;
}

// Stage B cases the runtime already supports (they take about two seconds each, in parallel).

#[tokio::test]
async fn jcl_c37_sleep() {
    let h = Harness::new().await;
    let start = std::time::Instant::now();
    let (ok, bad) = tokio::join!(
        h.run("k29", json!({"d": "2 seconds"})),
        h.run("k29", json!({"d": "soon"}))
    );
    assert_out(&ok, json!({"r": "woke up"}));
    // The engine keeps wake-up times in whole milliseconds of the system clock, so the job
    // may wake up to 1 ms before two seconds of this (monotonic) clock have passed.
    let slept = start.elapsed();
    assert!(
        slept >= std::time::Duration::from_millis(1_990),
        "woke after {slept:?}"
    );
    let bad = bad.expect("k29 runs");
    assert_eq!(bad["error"]["class"], json!("normal"));
    let msg = bad["error"]["msg"].as_str().unwrap_or_default();
    assert!(msg.contains("\"soon\""), "{msg}");
}

#[tokio::test]
async fn jcl_c38_soft_errors_and_retry_policy() {
    let h = Harness::new().await;
    let (ok, fail) = tokio::join!(
        h.run_id("k33", json!({"x": 2})),
        h.run_id("k33", json!({"x": 10}))
    );
    let (ok_id, ok) = ok.expect("k33 runs");
    let (fail_id, fail) = fail.expect("k33 runs");
    assert_out(&Ok(ok), json!({"y": 3}));
    assert_out(
        &Ok(fail),
        json!({"error": {"msg": "attempt 3 failed", "class": "soft"}}),
    );
    for id in [ok_id, fail_id] {
        let envs: Vec<_> = h.received_for(id).into_iter().map(|r| r.env).collect();
        assert_eq!(
            envs,
            vec![json!({}), json!({"tries": 1}), json!({"tries": 2})]
        );
    }
}

#[tokio::test]
async fn jcl_c39_action_timeout() {
    Harness::new().await.cases("C39").await;
}

#[tokio::test]
async fn jcl_c31_split_callflow_output_maps_in_source_order() {
    let h = Harness::new().await;
    assert_out(
        &h.run("k12", json!({"x": 2})).await,
        json!({"r": "first:2,second:4,third:6"}),
    );

    // Completion order does not matter: finish the children's c_add tasks as 1, 3, 2.
    let h = Harness::with(
        support::fixture_catalog(),
        support::part4_config(),
        &["c_fail"],
    )
    .await;
    let e = h.engine.clone();
    e.announce("manual".into(), "c_add".into(), "jc_admin".into(), None)
        .await
        .expect("announce");
    let mut rx = e.subscribe();
    let run = tokio::spawn({
        let e = e.clone();
        async move { support::run_job(&e, "k45", json!({"x": 0})).await }
    });
    let mut ready = Vec::new();
    while ready.len() < 3 {
        if let Some(Event::ActionReady { job_id, .. }) = rx.recv().await {
            ready.push(job_id);
        }
    }
    ready.sort_unstable();
    let mut claims = Vec::new();
    for id in &ready {
        let c = e
            .get_task("manual".into(), "c_add".into(), Some(*id))
            .await
            .expect("get_task")
            .expect("claimed");
        claims.push(c);
    }
    for i in [0, 2, 1] {
        let c = &claims[i];
        let out = json!({"counter": c.inargs["counter"].clone()});
        e.task_done(c.cookie.clone(), out).await.expect("task_done");
    }
    let (_, out) = run.await.expect("join").expect("k45 finished");
    assert_out(&Ok(out), json!({"r": [1, 2, 3], "last": 3}));
}

#[tokio::test]
async fn jcl_c32_split_with_a_failing_child() {
    Harness::new().await.cases("C32").await;
}

#[tokio::test]
async fn jcl_c33_declared_lock_contention_release_on_finish() {
    let h = Harness::new().await;
    let e = h.engine.clone();
    let start = std::time::Instant::now();
    let a = tokio::spawn({
        let e = e.clone();
        async move { support::run_job(&e, "k35", json!({"tag": "A"})).await }
    });
    // A takes the lock inside create_job; wait until it holds it, then start B.
    while e.check_if_lock_exists("slot".into(), "k35".into()).await != Ok(Some(true)) {
        tokio::task::yield_now().await;
    }
    let b = tokio::spawn({
        let e = e.clone();
        async move { support::run_job(&e, "k35", json!({"tag": "B"})).await }
    });
    while e.store().jobs_in_state(jobcenter_store::JobState::LockWait) == 0 {
        tokio::task::yield_now().await;
    }
    assert_eq!(
        e.store().jobs_in_state(jobcenter_store::JobState::Sleeping),
        1
    );
    assert_eq!(
        e.check_if_lock_exists("slot".into(), "nope".into()).await,
        Ok(Some(false))
    );
    assert_eq!(
        e.check_if_lock_exists("nolocktype".into(), "k35".into())
            .await,
        Ok(None)
    );
    let (_, a) = a.await.expect("join").expect("A finished");
    assert_out(&Ok(a), json!({"r": "A got lock"}));
    let (_, b) = b.await.expect("join").expect("B finished");
    assert_out(&Ok(b), json!({"r": "B got lock"}));
    assert!(start.elapsed() >= std::time::Duration::from_secs(4));
    assert_eq!(
        e.check_if_lock_exists("slot".into(), "k35".into()).await,
        Ok(Some(false))
    );
}

#[tokio::test]
async fn jcl_c34_manual_locks_reacquire_and_unlock_not_held() {
    let h = Harness::new().await;
    assert_out(
        &h.run("k36", json!({"v": "x1"})).await,
        json!({"r": "locked x1, unlocked"}),
    );
    assert_out(
        &h.run("k36", json!({"v": "x2", "twice": true})).await,
        json!({"error": {"msg": "reacquired locktype slot lockvalue x2", "class": "normal"}}),
    );
    assert_out(
        &h.run("k36", json!({"v": "x3", "unlock_other": true})).await,
        json!({"error": {"msg": "tried to unlock not held lock locktype slot lockvalue other", "class": "normal"}}),
    );
    for v in ["x1", "x2", "x3", "other"] {
        assert_eq!(
            h.engine.check_if_lock_exists("slot".into(), v.into()).await,
            Ok(Some(false)),
            "lock {v} released"
        );
    }
}

#[tokio::test]
async fn jcl_c35_wait_for_lock_without_waiting() {
    let h = Harness::new().await;
    assert_out(
        &h.run("k37", json!({"v": "k35"})).await,
        json!({"r": "got it"}),
    );
    let e = h.engine.clone();
    let _holder = tokio::spawn({
        let e = e.clone();
        async move { support::run_job(&e, "k35", json!({"tag": "A"})).await }
    });
    while e.check_if_lock_exists("slot".into(), "k35".into()).await != Ok(Some(true)) {
        tokio::task::yield_now().await;
    }
    assert_out(
        &h.run("k37", json!({"v": "k35"})).await,
        json!({"r": "failed to get locktype slot lockvalue k35"}),
    );
}

#[tokio::test]
async fn jcl_c36_lock_inheritance_and_parent_child_deadlock() {
    let h = Harness::new().await;
    assert_out(
        &h.run("k46", json!({"v": "x"})).await,
        json!({"r": "child has lock x"}),
    );
    assert_eq!(
        h.engine
            .check_if_lock_exists("abc".into(), "k46".into())
            .await,
        Ok(Some(false))
    );
    // Non-inheritable: the original hangs; we detect the deadlock in the child.
    let out = h.run("k47", json!({"v": "x"})).await.expect("k47 runs");
    assert!(
        support::matches(
            &json!({"error": {"msg": "childjob <C> raised error", "class": "childerror", "error": {"msg": out["error"]["error"]["msg"].clone(), "class": "normal"}}}),
            &out
        ),
        "{out}"
    );
    let msg = out["error"]["error"]["msg"].as_str().unwrap_or_default();
    assert!(
        msg.starts_with("deadlock trying to get locktype abc lockvalue k46 path "),
        "{msg}"
    );
    assert_eq!(
        h.engine
            .check_if_lock_exists("abc".into(), "k46".into())
            .await,
        Ok(Some(false))
    );
}

// Stage C cases the runtime supports.

#[tokio::test]
async fn jcl_c41_goto_label_return() {
    Harness::new().await.cases("C41").await;
}

#[tokio::test]
async fn jcl_c42_version_tags() {
    use jobcenter_engine::compile::{Catalog, Stage};
    let mut cat = Catalog::with_stage(Stage::C);
    cat.register_vtag("stable");
    cat.register_vtag("unittest");
    let dir = support::fixtures().join("c42");
    let (files, runs) = support::c42_vtags();
    for (file, tag) in files {
        let src = std::fs::read_to_string(dir.join(&file)).expect("fixture");
        let tags: Vec<String> = tag.into_iter().collect();
        cat.compile_tagged(&file, &src, &tags).expect("compiles");
    }
    let h = Harness::with(cat, support::part4_config(), &[]).await;
    for (vtag, v) in runs {
        let mut events = h.engine.subscribe();
        let id = h
            .engine
            .create_job(jobcenter_engine::backend::CreateJob {
                vtag: vtag.clone(),
                ..support::job_request("k38", json!({"x": 1}))
            })
            .await
            .expect("created");
        let out = support::wait_finished(&h.engine, &mut events, id).await;
        assert_eq!(out, Ok(json!({ "v": v })), "vtag {vtag:?}");
    }
}

#[tokio::test]
async fn jcl_c43_map_collect() {
    Harness::new().await.cases("C43").await;
}

#[tokio::test]
async fn jcl_c40_events_subscribe_raise_wait_timeout_external() {
    let h = Harness::new().await;
    let e = h.engine.clone();
    let mut events = e.subscribe();
    let create =
        |wf: &str, key: &str| e.create_job(support::job_request(wf, json!({ "key": key })));
    let own_id = create("k28", "abc").await.expect("created");
    // External event for a waiting job.
    let id = create("k30", "k30key").await.expect("created");
    assert_eq!(
        e.store()
            .jobs_in_state(jobcenter_store::JobState::EventWait),
        2,
        "k28 (second wait) and k30 wait"
    );
    e.raise_event(json!({"key": "other"})).expect("raise_event");
    e.raise_event(json!({"key": "k30key", "payload": [1, 2]}))
        .expect("raise_event");
    let ext = support::wait_finished(&e, &mut events, id).await;
    assert_out(
        &ext,
        json!({"ev": {"name": "ext", "event_id": "<E>", "when": ext.as_ref().map(|v| v["ev"]["when"].clone()).unwrap_or_default(), "data": {"key": "k30key", "payload": [1, 2]}}}),
    );
    let out = support::wait_finished(&e, &mut events, own_id)
        .await
        .expect("k28 finished");
    assert_out(
        &Ok(out.clone()),
        json!({"ev": {"name": "mine", "event_id": "<E>", "when": out["ev"]["when"].clone(), "data": {"kind": "ping", "key": "abc", "n": 1}}, "ev2": {"name": "timeout", "event_id": null, "when": out["ev2"]["when"].clone(), "data": null}}),
    );
    let when = out["ev"]["when"].as_str().unwrap_or_default();
    assert!(when.ends_with("+00:00") && when.len() == 29, "{when}");
}

#[tokio::test]
async fn jcl_c40_string_timeout_is_a_type_error() {
    let mut cat = support::fixture_catalog();
    let path = support::fixtures().join("variants/k28_string_timeout.wf");
    let src = std::fs::read_to_string(path).expect("fixture");
    cat.compile("k28_string_timeout.wf", &src)
        .expect("compiles as a new version of k28");
    let h = Harness::with(cat, support::part4_config(), &[]).await;
    assert_out(
        &h.run("k28", json!({"key": "abc"})).await,
        json!({"error": {"msg": "caught exception in do_inargsmap sqlstate P0001 sqlerrm input argument \"timeout\" has wrong type string (should be number)", "class": "normal"}}),
    );
}
