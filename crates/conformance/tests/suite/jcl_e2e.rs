//! docs/JCL.md Part 4 conformance cases C01–C30 (plus C38/C39, which exercise the `c_soft` and
//! `c_slow` reference workers) end to end: a real client creates each job over TCP with
//! `Client::call`, the reference workers of our worker library serve the actions, and the
//! final outargs must match (numbers by value, `<J>`/`<C>`/`<T>` placeholders).

use jobcenter::{Client, JobResult, Worker};
use jobcenter_conformance::{
    c42_vtags, fast_timers, jcl_cases, jcl_error_cases, matches, part4_fixtures, Expect, Recorder,
    TestServer, JC_ADMIN,
};
use serde_json::{json, Value};

/// Server + engine over the Part 4 fixtures, one reference worker, one `jc_admin` client.
struct Rig {
    _server: TestServer,
    client: Client,
    rec: Recorder,
    _worker: Worker,
}

async fn rig() -> Rig {
    let server = match TestServer::start_on(super::STORE, part4_fixtures(), fast_timers()).await {
        Ok(s) => s,
        Err(e) => panic!("server: {e}"),
    };
    let rec = Recorder::new();
    let worker = match server.reference_worker(&rec).await {
        Ok(w) => w,
        Err(e) => panic!("worker: {e}"),
    };
    let client = match server.client().await {
        Ok(c) => c,
        Err(e) => panic!("client: {e}"),
    };
    Rig {
        _server: server,
        client,
        rec,
        _worker: worker,
    }
}

impl Rig {
    /// Create the job over the network and wait for its result.
    async fn run(&self, wf: &str, inargs: Value) -> JobResult {
        match self.client.call(wf, inargs).await {
            Ok(r) => r,
            Err(e) => panic!("call {wf}: {e}"),
        }
    }

    /// Run and assert the final outargs; returns the job id.
    #[track_caller]
    fn check(res: &JobResult, wf: &str, expected: &Value) -> i64 {
        let Some(id) = res.job_id else {
            panic!("{wf}: job was rejected: {}", res.outargs);
        };
        assert!(
            matches(expected, &res.outargs),
            "{wf}\nexpected {expected}\n     got {}",
            res.outargs
        );
        id
    }

    async fn out(&self, wf: &str, inargs: Value, expected: Value) -> i64 {
        let res = self.run(wf, inargs.clone()).await;
        Self::check(&res, &format!("{wf} {inargs}"), &expected)
    }

    /// Run every case of `c` in the shared fixture (`jcl_cases`) and check it.
    async fn cases(&self, c: &str) {
        for case in jcl_cases(c).unwrap_or_else(|e| panic!("{e}")) {
            match case.expect {
                Expect::Out(want) => {
                    self.out(&case.wf, case.inargs, want).await;
                }
                Expect::Rejected(msg) => self.rejected(&case.wf, case.inargs, &msg).await,
            }
        }
    }

    /// `create_job` must fail synchronously: no job id and `{"error": "ERROR:  MSG..."}`.
    async fn rejected(&self, wf: &str, inargs: Value, msg: &str) {
        let res = self.run(wf, inargs.clone()).await;
        assert_eq!(
            res.job_id, None,
            "{wf} {inargs}: expected rejection, got {res:?}"
        );
        let text = res.error().and_then(Value::as_str).unwrap_or_default();
        assert!(
            text.starts_with("ERROR:  ") && text.contains(msg),
            "{wf} {inargs}: error text {text:?} should be \"ERROR:  {msg}...\""
        );
    }
}

#[tokio::test]
async fn jcl_c01_call_action_default_output_map_wfomap() {
    let r = rig().await;
    let id = r
        .out("k01", json!({"input": 5}), json!({"output": 6}))
        .await;
    let got = r.rec.for_job(id);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].action, "c_add");
    assert_eq!(got[0].inargs, json!({"counter": 5, "step": 1}));
    assert_eq!(got[0].env, json!({}));
}

#[tokio::test]
async fn jcl_c02_missing_or_ill_typed_inputs_unknown_workflow() {
    rig().await.cases("C02").await;
}

#[tokio::test]
async fn jcl_c03_defaults_null_extra_arguments() {
    rig().await.cases("C03").await;
}

#[tokio::test]
async fn jcl_c04_schema_type_integer() {
    rig().await.cases("C04").await;
}

#[tokio::test]
async fn jcl_c05_required_workflow_output_missing() {
    rig().await.cases("C05").await;
}

#[tokio::test]
async fn jcl_c06_workflow_output_of_wrong_type() {
    rig().await.cases("C06").await;
}

#[tokio::test]
async fn jcl_c07_division_uncaught_expression_error() {
    rig().await.cases("C07").await;
}

#[tokio::test]
async fn jcl_c08_try_catch_ifdef_error() {
    rig().await.cases("C08").await;
}

#[tokio::test]
async fn jcl_c09_worker_errors_uncaught() {
    rig().await.cases("C09").await;
}

#[tokio::test]
async fn jcl_c10_worker_errors_caught_fatal_not_catchable() {
    rig().await.cases("C10").await;
}

#[tokio::test]
async fn jcl_c11_call_of_a_workflow() {
    rig().await.cases("C11").await;
}

#[tokio::test]
async fn jcl_c12_child_error_propagation_uncaught() {
    rig().await.cases("C12").await;
}

#[tokio::test]
async fn jcl_c13_child_error_caught_in_parent() {
    rig().await.cases("C13").await;
}

#[tokio::test]
async fn jcl_c14_recursion_and_max_depth() {
    rig().await.cases("C14").await;
}

#[tokio::test]
async fn jcl_c15_max_steps_default() {
    rig().await.cases("C15").await;
}

#[tokio::test]
async fn jcl_c16_configured_max_steps_exact_counting() {
    rig().await.cases("C16").await;
}

#[tokio::test]
async fn jcl_c17_operators_and_value_model() {
    rig().await.cases("C17").await;
}

#[tokio::test]
async fn jcl_c18_compound_assignments_arrays_nested() {
    rig().await.cases("C18").await;
}

#[tokio::test]
async fn jcl_c19_string_literals_are_raw() {
    rig().await.cases("C19").await;
}

#[tokio::test]
async fn jcl_c20_default_literal_forms() {
    rig().await.cases("C20").await;
}

#[tokio::test]
async fn jcl_c21_case_when_else() {
    rig().await.cases("C21").await;
}

#[tokio::test]
async fn jcl_c22_repeat_until_runs_at_least_once() {
    rig().await.cases("C22").await;
}

#[tokio::test]
async fn jcl_c23_while_with_action_if_chain_return_in_loop() {
    rig().await.cases("C23").await;
}

#[tokio::test]
async fn jcl_c24_nested_try_raise_error_rethrow() {
    rig().await.cases("C24").await;
}

#[tokio::test]
async fn jcl_c25_magic_assignments() {
    let r = rig().await;
    let id = r
        .out("k25", json!({"counter": 40}), json!({"counter": 42}))
        .await;
    let got = r.rec.for_job(id);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].inargs, json!({"counter": 40, "step": 2}));
}

#[tokio::test]
async fn jcl_c26_assert() {
    rig().await.cases("C26").await;
}

#[tokio::test]
async fn jcl_c27_environment_wfenv_max_depth_ids_action_env() {
    let r = rig().await;
    let res = r.run("k27b", json!({"x": {"a": 1}})).await;
    let Some(id) = res.job_id else {
        panic!("k27b rejected: {}", res.outargs);
    };
    let env = json!({"client": JC_ADMIN, "job_id": id, "greeting": "hi"});
    Rig::check(
        &res,
        "k27b",
        &json!({"env": {"greeting": "hi", "num": "42", "flag": "true", "client": JC_ADMIN, "version": "0.1", "max_depth": "5", "has_job_id": 1, "in_cond": "job_id not visible", "in_let": 1}, "seen": {"inargs": {"x": {"a": 1}}, "env": env}}),
    );
    let got = r.rec.for_job(id);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].inargs, json!({"x": {"a": 1}}));
    assert!(matches(&env, &got[0].env), "worker env {}", got[0].env);
}

/// The expected `[mode, outargs]` pairs of `wf` shared with the engine's tests.
fn cases(wf: &str) -> Vec<(String, Value)> {
    jcl_error_cases(wf).unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test]
async fn jcl_c28_runtime_errors_and_implicit_input_checks() {
    let r = rig().await;
    for (mode, expected) in cases("k40") {
        r.out("k40", json!({ "mode": mode }), expected).await;
    }
    // Autovivification: emulated (`{}`) or not (`null`) are both acceptable (docs/JCL.md).
    let auto = r.run("k40", json!({"mode": "autoviv"})).await;
    assert!(auto.job_id.is_some(), "{auto:?}");
    assert!(
        auto.outargs == json!({"r": {"foo": {}}}) || auto.outargs == json!({"r": {"foo": null}}),
        "autoviv gave {}",
        auto.outargs
    );
}

#[tokio::test]
async fn jcl_c29_error_phase_prefixes_and_line_numbers() {
    let r = rig().await;
    for (mode, expected) in cases("k42") {
        r.out("k42", json!({ "mode": mode }), expected).await;
    }
}

#[tokio::test]
async fn jcl_c30_booleans_and_truthiness() {
    rig().await.cases("C30").await;
}

// Beyond C30: the two cases that exercise the c_soft and c_slow reference workers.

#[tokio::test]
async fn jcl_c38_soft_errors_and_retry_policy() {
    let r = rig().await;
    let (ok, fail) = tokio::join!(
        r.run("k33", json!({"x": 2})),
        r.run("k33", json!({"x": 10}))
    );
    let ok_id = Rig::check(&ok, "k33 x=2", &json!({"y": 3}));
    let fail_id = Rig::check(
        &fail,
        "k33 x=10",
        &json!({"error": {"msg": "attempt 3 failed", "class": "soft"}}),
    );
    for id in [ok_id, fail_id] {
        let envs: Vec<Value> = r.rec.for_job(id).into_iter().map(|x| x.env).collect();
        assert_eq!(
            envs,
            vec![json!({}), json!({"tries": 1}), json!({"tries": 2})]
        );
    }
}

#[tokio::test]
async fn jcl_c39_action_timeout() {
    rig().await.cases("C39").await;
}

// Stage B/C cases that need no extra worker behaviour, through the network as well.

#[tokio::test]
async fn jcl_c31_split_callflow_output_maps_in_source_order() {
    let r = rig().await;
    r.out(
        "k12",
        json!({"x": 2}),
        json!({"r": "first:2,second:4,third:6"}),
    )
    .await;
}

#[tokio::test]
async fn jcl_c32_split_with_a_failing_child() {
    rig().await.cases("C32").await;
}

#[tokio::test]
async fn jcl_c33_declared_lock_visible_to_clients_and_released() {
    let r = rig().await;
    let a = r
        .client
        .job("k35")
        .inargs(json!({"tag": "A"}))
        .submit()
        .await
        .unwrap_or_else(|e| panic!("submit: {e}"));
    // A takes the lock inside create_job, so it is held as soon as the job id is known.
    assert_eq!(
        r.client.check_if_lock_exists("slot", "k35").await.ok(),
        Some(Some(true))
    );
    assert_eq!(
        r.client.check_if_lock_exists("slot", "nope").await.ok(),
        Some(Some(false))
    );
    assert_eq!(
        r.client
            .check_if_lock_exists("nolocktype", "k35")
            .await
            .ok(),
        Some(None)
    );
    let a = a.await.unwrap_or_else(|e| panic!("k35: {e}"));
    assert_eq!(a.outargs, json!({"r": "A got lock"}));
    assert_eq!(
        r.client.check_if_lock_exists("slot", "k35").await.ok(),
        Some(Some(false))
    );
}

#[tokio::test]
async fn jcl_c34_manual_locks_reacquire_and_unlock_not_held() {
    let r = rig().await;
    r.out(
        "k36",
        json!({"v": "x1"}),
        json!({"r": "locked x1, unlocked"}),
    )
    .await;
    r.out(
        "k36",
        json!({"v": "x2", "twice": true}),
        json!({"error": {"msg": "reacquired locktype slot lockvalue x2", "class": "normal"}}),
    )
    .await;
    r.out(
        "k36",
        json!({"v": "x3", "unlock_other": true}),
        json!({"error": {"msg": "tried to unlock not held lock locktype slot lockvalue other", "class": "normal"}}),
    )
    .await;
    for v in ["x1", "x2", "x3", "other"] {
        assert_eq!(
            r.client.check_if_lock_exists("slot", v).await.ok(),
            Some(Some(false)),
            "lock {v} released"
        );
    }
}

#[tokio::test]
async fn jcl_c41_goto_label_return() {
    rig().await.cases("C41").await;
}

#[tokio::test]
async fn jcl_c42_version_tags_sent_by_the_client() {
    use jobcenter_engine::{Catalog, Stage};
    let mut cat = Catalog::with_stage(Stage::C);
    cat.register_vtag("stable");
    cat.register_vtag("unittest");
    let dir = part4_fixtures().join("c42");
    let (files, runs) = c42_vtags().unwrap_or_else(|e| panic!("{e}"));
    for (file, tag) in files {
        let src =
            std::fs::read_to_string(dir.join(&file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        let tags: Vec<String> = tag.into_iter().collect();
        if let Err(e) = cat.compile_tagged(&file, &src, &tags) {
            panic!("{file}: {e:?}");
        }
    }
    let server = TestServer::with_catalog_on(
        super::STORE,
        cat,
        jobcenter_conformance::part4_engine_config(),
        fast_timers(),
    )
    .await
    .unwrap_or_else(|e| panic!("server: {e}"));
    let client = server
        .client()
        .await
        .unwrap_or_else(|e| panic!("client: {e}"));
    for (vtag, v) in runs {
        let mut req = client.job("k38").inargs(json!({"x": 1}));
        if let Some(t) = &vtag {
            req = req.vtag(t);
        }
        let res = req.call().await.unwrap_or_else(|e| panic!("k38: {e}"));
        assert_eq!(res.outargs, json!({ "v": v }), "vtag {vtag:?}");
    }
}

#[tokio::test]
async fn jcl_c43_map_collect() {
    rig().await.cases("C43").await;
}
