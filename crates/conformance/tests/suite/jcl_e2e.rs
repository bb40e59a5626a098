//! docs/JCL.md Part 4 conformance cases C01–C30 (plus C38/C39, which exercise the `c_soft` and
//! `c_slow` reference workers) end to end: a real client creates each job over TCP with
//! `Client::call`, the reference workers of our worker library serve the actions, and the
//! final outargs must match (numbers by value, `<J>`/`<C>`/`<T>` placeholders).

use jobcenter::{Client, JobResult, Worker};
use jobcenter_conformance::{
    fast_timers, jcl_error_cases, matches, part4_fixtures, Recorder, TestServer, JC_ADMIN,
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
    let r = rig().await;
    r.rejected(
        "k01",
        json!({"input": "x"}),
        "input argument \"input\" has wrong type string (should be number)",
    )
    .await;
    r.rejected(
        "k01",
        json!({}),
        "required input argument \"input\" not found",
    )
    .await;
    r.rejected("nonexistent", json!({}), "no workflow named nonexistent")
        .await;
}

#[tokio::test]
async fn jcl_c03_defaults_null_extra_arguments() {
    let r = rig().await;
    r.out(
        "k02",
        json!({"o": {"z": [1, 2]}}),
        json!({"n": 10, "s": "dflt", "o": {"z": [1, 2]}}),
    )
    .await;
    r.out(
        "k02",
        json!({"n": null, "s": null, "o": null}),
        json!({"n": null, "s": null, "o": null}),
    )
    .await;
    r.out(
        "k02",
        json!({"o": {}, "extra": true}),
        json!({"n": 10, "s": "dflt", "o": {}}),
    )
    .await;
    r.rejected(
        "k02",
        json!({"o": [1]}),
        "input argument \"o\" has wrong type array (should be object)",
    )
    .await;
}

#[tokio::test]
async fn jcl_c04_schema_type_integer() {
    let r = rig().await;
    r.out("k03", json!({"n": 3}), json!({"r": 3})).await;
    r.out("k03", json!({"n": 3.0}), json!({"r": 3.0})).await;
    let schema = "{\n    \"type\": \"integer\"\n}";
    for (input, shown) in [
        (json!(1.5), "\"1.5\""),
        (json!("1"), "\"\"1\"\""),
        (json!(null), "\"null\""),
    ] {
        r.rejected(
            "k03",
            json!({ "n": input }),
            &format!(
                "input argument \"n\" with value {shown} does not validate against schema:\\n\"{schema}\""
            ),
        )
        .await;
    }
}

#[tokio::test]
async fn jcl_c05_required_workflow_output_missing() {
    let r = rig().await;
    r.out(
        "k04",
        json!({"x": 1}),
        json!({"error": {"msg": "caught exception in do_workflowoutargsmap sqlstate P0001 sqlerrm required output parameter r not found", "class": "normal"}}),
    )
    .await;
}

#[tokio::test]
async fn jcl_c06_workflow_output_of_wrong_type() {
    let r = rig().await;
    r.out(
        "k05",
        json!({"x": 1}),
        json!({"error": {"msg": "caught exception in do_workflowoutargsmap sqlstate P0001 sqlerrm ouput parameter r has wrong type string (should be number)", "class": "normal"}}),
    )
    .await;
}

#[tokio::test]
async fn jcl_c07_division_uncaught_expression_error() {
    let r = rig().await;
    r.out("k07", json!({"a": 10, "b": 5}), json!({"q": 2}))
        .await;
    r.out(
        "k07",
        json!({"a": 1, "b": 0}),
        json!({"error": {"msg": "caught exception in do_eval sqlstate 38000 sqlerrm Illegal division by zero at line 1.", "class": "normal"}}),
    )
    .await;
}

#[tokio::test]
async fn jcl_c08_try_catch_ifdef_error() {
    let r = rig().await;
    r.out("k06", json!({"a": 1, "b": 4}), json!({"q": 0.25}))
        .await;
    r.out(
        "k06",
        json!({"a": 1, "b": 0}),
        json!({"msg": "caught exception in do_eval sqlstate 38000 sqlerrm Illegal division by zero at line 1.", "class": "normal"}),
    )
    .await;
}

#[tokio::test]
async fn jcl_c09_worker_errors_uncaught() {
    let r = rig().await;
    r.out(
        "k09",
        json!({"what": "string"}),
        json!({"error": "plain string error"}),
    )
    .await;
    r.out(
        "k09",
        json!({"what": "object"}),
        json!({"error": {"msg": "it broke", "class": "myclass", "extra": 42}}),
    )
    .await;
    r.out(
        "k09",
        json!({"what": "wrongtype"}),
        json!({"error": {"msg": "caught exception in do_outargsmap sqlstate P0001 sqlerrm ouput parameter res has wrong type number (should be string)", "class": "normal"}}),
    )
    .await;
}

#[tokio::test]
async fn jcl_c10_worker_errors_caught_fatal_not_catchable() {
    let r = rig().await;
    r.out(
        "k08a",
        json!({"what": "object"}),
        json!({"err": {"msg": "it broke", "class": "myclass", "extra": 42}}),
    )
    .await;
    r.out(
        "k08a",
        json!({"what": "fatal"}),
        json!({"error": {"msg": "fatal from worker", "class": "fatal"}}),
    )
    .await;
    r.out(
        "k08a",
        json!({"what": "wrongtype"}),
        json!({"err": {"msg": "caught exception in do_outargsmap sqlstate P0001 sqlerrm ouput parameter res has wrong type number (should be string)", "class": "normal"}}),
    )
    .await;
    r.out("k08a", json!({"what": "empty"}), json!({})).await;
    r.out("k08a", json!({"what": "ok"}), json!({"res": "fine"}))
        .await;
    r.out(
        "k08b",
        json!({"what": "string"}),
        json!({"errs": "caught: plain string error"}),
    )
    .await;
}

#[tokio::test]
async fn jcl_c11_call_of_a_workflow() {
    let r = rig().await;
    r.out("k10", json!({"x": 4}), json!({"r": 10})).await;
}

#[tokio::test]
async fn jcl_c12_child_error_propagation_uncaught() {
    let r = rig().await;
    r.out(
        "k10",
        json!({"x": 4, "fail": true}),
        json!({"error": {"msg": "childjob <C> raised error", "class": "childerror", "error": {"msg": "child says no: 5", "class": "normal"}}}),
    )
    .await;
}

#[tokio::test]
async fn jcl_c13_child_error_caught_in_parent() {
    let r = rig().await;
    r.out(
        "k11",
        json!({"x": 7}),
        json!({"cls": "childerror", "msg": "childjob <C> raised error", "inner": "child says no: 7"}),
    )
    .await;
}

#[tokio::test]
async fn jcl_c14_recursion_and_max_depth() {
    let r = rig().await;
    r.out("k14", json!({"n": 3}), json!({"d": 3})).await;
    r.out("k14", json!({"n": 8}), json!({"d": 8})).await;
    let mut expected =
        json!({"msg": "maximum call depth would be exceeded: 9 >= 9", "class": "fatal"});
    for i in (1..=8).rev() {
        expected = json!({"msg": format!("childjob <C{i}> raised error"), "class": "childerror", "error": expected});
    }
    r.out("k14", json!({"n": 9}), json!({ "error": expected }))
        .await;
}

#[tokio::test]
async fn jcl_c15_max_steps_default() {
    let r = rig().await;
    r.out(
        "k15",
        json!({"x": 1}),
        json!({"error": {"msg": "maximum step count exceeded: 100 > 99", "class": "fatal"}}),
    )
    .await;
}

#[tokio::test]
async fn jcl_c16_configured_max_steps_exact_counting() {
    let r = rig().await;
    r.out("k16", json!({"x": 3}), json!({"r": 3})).await;
    r.out(
        "k16",
        json!({"x": 4}),
        json!({"error": {"msg": "maximum step count exceeded: 11 > 10", "class": "fatal"}}),
    )
    .await;
}

#[tokio::test]
async fn jcl_c17_operators_and_value_model() {
    let r = rig().await;
    r.out(
        "k17",
        json!({"n": 3, "s": "x"}),
        json!({"r": {"sum": 5, "cat": "x3", "rep": "ababab", "div": 3.5, "idiv": 4.0, "mod": 1, "pow": 1024.0, "neg": -3, "lt": 1, "gt": "", "eq": 1, "ne": "", "numstr": 7, "junk": 1.0, "and": 0, "or": 5, "dor": "dflt", "not": "", "not0": 1, "tx": 3, "cmp": 1, "scmp": ""}}),
    )
    .await;
}

#[tokio::test]
async fn jcl_c18_compound_assignments_arrays_nested() {
    let r = rig().await;
    r.out(
        "k18",
        json!({"n": 3}),
        json!({"r": {"s": "ab", "n": 6.0, "u": "was undef", "z": "was false", "arr": [1, "two", [3, 4]], "o": {"k": 1, "odd key": 2}, "first": 1, "last": [3, 4], "missing": null, "nested": 1}}),
    )
    .await;
}

#[tokio::test]
async fn jcl_c19_string_literals_are_raw() {
    let r = rig().await;
    r.out(
        "k19",
        json!({"s": "x"}),
        json!({"r": {"dq": "a\\tb\\\"c", "bs": "x\\y", "dqs": "it's", "sq": "say \"hi\"", "nl": "l1\\nl2"}}),
    )
    .await;
}

#[tokio::test]
async fn jcl_c20_default_literal_forms() {
    let r = rig().await;
    r.out(
        "k21",
        json!({}),
        json!({"r": {"op": "\"+\"", "b": false, "nl": null, "n": -2.5}}),
    )
    .await;
    r.out(
        "k50",
        json!({}),
        json!({"r": {"p": "a\tb", "q": "x\\y", "r": "l1\nl2"}}),
    )
    .await;
}

#[tokio::test]
async fn jcl_c21_case_when_else() {
    let r = rig().await;
    r.out("k22", json!({"k": "foo"}), json!({"r": "got foo"}))
        .await;
    for k in ["bar", "baz", "3"] {
        r.out("k22", json!({ "k": k }), json!({"r": "got bar, baz or 3"}))
            .await;
    }
    r.out("k22", json!({"k": "quux"}), json!({"r": "other: quux"}))
        .await;
}

#[tokio::test]
async fn jcl_c22_repeat_until_runs_at_least_once() {
    let r = rig().await;
    r.out("k23", json!({"n": 3}), json!({"r": 3, "steps": [1, 2, 3]}))
        .await;
    r.out("k23", json!({"n": 0}), json!({"r": 1, "steps": [1]}))
        .await;
}

#[tokio::test]
async fn jcl_c23_while_with_action_if_chain_return_in_loop() {
    let r = rig().await;
    r.out("k43", json!({"n": 0}), json!({"r": ""})).await;
    r.out("k43", json!({"n": 3}), json!({"r": "one,two,3"}))
        .await;
    r.out("k43", json!({"n": 10}), json!({"r": "one,two,3,4,many"}))
        .await;
}

#[tokio::test]
async fn jcl_c24_nested_try_raise_error_rethrow() {
    let r = rig().await;
    r.out("k44", json!({"x": 1}), json!({"r": "caught inner 1"}))
        .await;
    r.out(
        "k44",
        json!({"x": 2}),
        json!({"r": "caught inner 2 / outer caught rethrown: inner 2 (normal)"}),
    )
    .await;
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
    let r = rig().await;
    r.out("k26", json!({"x": 2}), json!({"r": 20})).await;
    r.out(
        "k26",
        json!({"x": -1}),
        json!({"error": {"msg": "x must be positive, got -1", "class": "normal"}}),
    )
    .await;
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
    let r = rig().await;
    r.out(
        "k48",
        json!({"b": true, "f": false, "s": "0", "arr": [], "o": {}}),
        json!({"r": {"bcat": "x10", "bnum": 1, "beq": 1, "bnot": 1, "s0": 1, "arrnot": "", "onot": "", "copy": true, "cmpnum": "", "cmpstr": 1, "inc": 1}}),
    )
    .await;
    r.out(
        "k48",
        json!({"b": true, "f": false, "s": "0.0", "arr": [], "o": {}}),
        json!({"r": {"bcat": "x10", "bnum": 1, "beq": 1, "bnot": 1, "s0": "", "arrnot": "", "onot": "", "copy": true, "cmpnum": "", "cmpstr": 1, "inc": 1}}),
    )
    .await;
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
    let r = rig().await;
    r.out(
        "k34",
        json!({"x": 1}),
        json!({"error": {"msg": "timeout for job <J> in task <T>", "class": "soft"}}),
    )
    .await;
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
    let r = rig().await;
    r.out(
        "k13",
        json!({"x": 2}),
        json!({"error": {"msg": "childjob <C2> raised error", "class": "childerror", "error": {"msg": "child says no: 2", "class": "normal"}}}),
    )
    .await;
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
    let r = rig().await;
    r.out("k24", json!({"n": 1}), json!({"r": "start middle first"}))
        .await;
    r.out("k24", json!({"n": 0}), json!({"r": "start middle end"}))
        .await;
}

#[tokio::test]
async fn jcl_c42_version_tags_sent_by_the_client() {
    use jobcenter_engine::{Catalog, Stage};
    let mut cat = Catalog::with_stage(Stage::C);
    cat.register_vtag("stable");
    cat.register_vtag("unittest");
    let dir = part4_fixtures().join("c42");
    for (file, tag) in [
        ("k38_v0_stable.wf", Some("stable")),
        ("k38_v1_untagged.wf", None),
        ("k38_v2_unittest.wf", Some("unittest")),
        ("k38_v3_untagged.wf", None),
    ] {
        let src = std::fs::read_to_string(dir.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        let tags: Vec<String> = tag.map(str::to_string).into_iter().collect();
        if let Err(e) = cat.compile_tagged(file, &src, &tags) {
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
    for (vtag, v) in [
        (None, "v4-untagged"),
        (Some("stable"), "v1-stable"),
        (Some("unittest"), "v3-unittest"),
        (Some("stable:unittest"), "v1-stable"),
        (Some("unittest:stable"), "v3-unittest"),
        (Some("nonexistent"), "v4-untagged"),
        (Some("default"), "v4-untagged"),
    ] {
        let mut req = client.job("k38").inargs(json!({"x": 1}));
        if let Some(t) = vtag {
            req = req.vtag(t);
        }
        let res = req.call().await.unwrap_or_else(|e| panic!("k38: {e}"));
        assert_eq!(res.outargs, json!({ "v": v }), "vtag {vtag:?}");
    }
}

#[tokio::test]
async fn jcl_c43_map_collect() {
    let r = rig().await;
    r.out("k41", json!({"xs": [1, 2, 3]}), json!({"r": [22, 44, 66]}))
        .await;
    r.out("k41", json!({"xs": []}), json!({"r": []})).await;
}
