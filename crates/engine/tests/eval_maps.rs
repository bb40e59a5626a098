//! Map evaluation: assignments, compound operators, magic assignments, `ifdef`, the object
//! availability table and autovivification (docs/JCL.md §1.5, §2.2, §2.4; cases C08, C18, C25, C28).

mod eval_support;

use eval_support::{assert_same, expr, map, obj};
use jobcenter_engine::eval::expr::eval_expr;
use jobcenter_engine::eval::maps::{
    eval_map, run_case, run_condition, run_implicit_input, run_input_map, run_let, run_lock_value,
    run_output_map, run_wfomap,
};
use jobcenter_engine::eval::scope::{EnvIds, Scope};
use jobcenter_engine::eval::ErrorKind;
use jobcenter_engine::syntax::ast::{Code, MapKind};
use serde_json::{json, Value};

const IDS: EnvIds = EnvIds {
    workflow_id: 7,
    job_id: 42,
    task_id: 99,
};

#[test]
fn jcl_c18_compound_assignments_arrays_nested_variables() {
    let first = map(
        MapKind::Let,
        r#"s = 'a'
        s .= 'b'
        n = 10
        n += 5
        n -= 3
        n *= 2
        n /= 4
        u //= 'was undef'
        s //= 'not used'
        z ||= 'was false'
        arr ,= 1
        arr ,= 'two'
        arr ,= array(3, 4)
        v.o.k = 1
        v.o."odd key" = 2
        first = v.arr[0]
        last = v.arr[-1]
        missing = v.arr[10]
        nested = v.o.k"#,
    );
    let second = map(
        MapKind::Let,
        r#"r = object("s": v.s, "n": v.n, "u": v.u, "z": v.z, "arr": v.arr, "o": v.o, "first": v.first, "last": v.last, "missing": v.missing, "nested": v.nested)"#,
    );
    let a = obj(r#"{"n": 3}"#);
    let e = obj("{}");
    let v0 = obj("{}");
    let v1 = run_let(&first, &a, &e, &v0, None).unwrap().unwrap();
    assert!(
        v1.contains_key("missing") && v1["missing"].is_null(),
        "null assignment creates the key"
    );
    let v2 = run_let(&second, &a, &e, &v1, None).unwrap().unwrap();
    let expected = json!({"s": "ab", "n": 6.0, "u": "was undef", "z": "was false", "arr": [1, "two", [3, 4]], "o": {"k": 1, "odd key": 2}, "first": 1, "last": [3, 4], "missing": null, "nested": 1});
    assert_same(&v2["r"], &expected);
    assert!(v2["r"]["n"].is_f64(), "`/=` gives a float");
}

#[test]
fn defined_or_and_or_assign_short_circuit() {
    let (a, e) = (obj("{}"), obj("{}"));
    let v = obj(r#"{"d": 0, "t": 1}"#);
    // The right-hand side is not evaluated when the target is already set.
    let out = run_let(
        &map(MapKind::Let, "d //= 1 / 0\nt ||= 1 / 0"),
        &a,
        &e,
        &v,
        None,
    )
    .unwrap();
    assert!(out.is_none(), "nothing changed");
    let out = run_let(&map(MapKind::Let, "d ||= 'now'"), &a, &e, &v, None)
        .unwrap()
        .unwrap();
    assert_eq!(out["d"], json!("now"));
}

#[test]
fn indexed_targets_extend_arrays_with_nulls() {
    let (a, e, v) = (obj("{}"), obj("{}"), obj(r#"{"l": [1]}"#));
    let out = run_let(
        &map(
            MapKind::Let,
            "l[3] = 'x'\nl[-1] .= 'y'\nm[1].k = 5\nv.p.q[0] = 1",
        ),
        &a,
        &e,
        &v,
        None,
    )
    .unwrap()
    .unwrap();
    assert_eq!(out["l"], json!([1, null, null, "xy"]));
    assert_eq!(out["m"], json!([null, {"k": 5}]));
    assert_eq!(out["p"], json!({"q": [1]}));
    let err = run_let(&map(MapKind::Let, "l[-5] = 1"), &a, &e, &v, None).unwrap_err();
    assert_eq!(err.kind, ErrorKind::NonCreatableIndex(-5));
    let err = run_let(&map(MapKind::Let, "x = 'str'\nx ,= 1"), &a, &e, &v, None).unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"Can't use string ("str") as an ARRAY ref while "strict refs" in use at line 2."#
    );
}

#[test]
fn jcl_c25_magic_assignments() {
    let a = obj(r#"{"counter": 40, "step": 2}"#);
    let e = obj("{}");
    // let: counter = a.counter, step = a.step, other = 'lost'
    let v = run_let(
        &map(
            MapKind::Let,
            "counter = a.counter\nstep = a.step\nother = 'lost'",
        ),
        &a,
        &e,
        &obj("{}"),
        None,
    )
    .unwrap()
    .unwrap();
    // Input map `<counter,step>` reads v (not a).
    let mut v_changed = v.clone();
    v_changed.insert("counter".into(), json!(41));
    let i = run_input_map(
        &map(MapKind::Input, "<counter,step>"),
        &a,
        &e,
        &v_changed,
        None,
    )
    .unwrap();
    assert_eq!(Value::Object(i), json!({"counter": 41, "step": 2}));
    // Output map `<*>` replaces all variables by the outputs.
    let o = obj(r#"{"counter": 42}"#);
    let v2 = run_output_map(&map(MapKind::Output, "<*>"), &a, &e, &v, &o, None)
        .unwrap()
        .unwrap();
    assert_eq!(
        Value::Object(v2.clone()),
        json!({"counter": 42}),
        "`other` was lost"
    );
    // wfomap `<*>` copies v to o.
    let out = run_wfomap(&map(MapKind::WfOmap, "<*>"), &a, &e, &v2, None).unwrap();
    assert_eq!(Value::Object(out), json!({"counter": 42}));
    // `<*>` in an input map copies all of v; `<a,b>` in an output map reads o.
    let i = run_input_map(&map(MapKind::Input, "<*>"), &a, &e, &v, None).unwrap();
    assert_eq!(i, v);
    let v3 = run_output_map(
        &map(MapKind::Output, "<counter,absent>"),
        &a,
        &e,
        &v,
        &o,
        None,
    )
    .unwrap()
    .unwrap();
    assert_eq!(v3["counter"], json!(42));
    assert_eq!(v3["other"], json!("lost"));
    assert!(v3["absent"].is_null());
    // wfomap `<x>` reads v.
    let out = run_wfomap(&map(MapKind::WfOmap, "<other>"), &a, &e, &v, None).unwrap();
    assert_eq!(Value::Object(out), json!({"other": "lost"}));
}

#[test]
fn jcl_c08_ifdef_leaves_target_untouched() {
    let (a, e) = (obj("{}"), obj("{}"));
    let v = obj(r#"{"q": 0.25}"#);
    let m = map(
        MapKind::WfOmap,
        "q = ifdef(v.q)\nmsg = ifdef(v.msg)\nclass = ifdef(v.class)",
    );
    let out = run_wfomap(&m, &a, &e, &v, None).unwrap();
    assert_eq!(Value::Object(out), json!({"q": 0.25}));
    // Without ifdef a null creates the key.
    let out = run_wfomap(&map(MapKind::WfOmap, "msg = v.msg"), &a, &e, &v, None).unwrap();
    assert_eq!(Value::Object(out), json!({"msg": null}));
    // ifdef with a compound operator.
    let out = run_let(
        &map(MapKind::Let, "q += ifdef(v.none)\nn .= ifdef(v.q)"),
        &a,
        &e,
        &v,
        None,
    )
    .unwrap()
    .unwrap();
    assert_eq!(out["q"], json!(0.25));
    assert_eq!(out["n"], json!("0.25"));
}

#[test]
fn jcl_c28_autovivification_in_conditions_is_kept() {
    let (a, e, v) = (obj("{}"), obj("{}"), obj("{}"));
    let cond = Code::Expr(expr("v.foo.bar == 1"));
    let (b, new_v) = run_condition(&cond, &a, &e, &v).unwrap();
    assert!(!b);
    assert_eq!(
        Value::Object(new_v.expect("autovivified")),
        json!({"foo": {}})
    );
    // A plain read of a missing top-level key changes nothing.
    let (_, new_v) = run_condition(&Code::Expr(expr("v.foo == 1")), &a, &e, &v).unwrap();
    assert!(new_v.is_none());
    // Arrays are vivified for an index step.
    let (_, new_v) = run_condition(&Code::Expr(expr("defined(v.l[2].x)")), &a, &e, &v).unwrap();
    assert_eq!(
        Value::Object(new_v.unwrap()),
        json!({"l": [null, null, {}]})
    );
    // In an input map v is read-only: no change, no error.
    let i = run_input_map(&map(MapKind::Input, "x = v.foo.bar"), &a, &e, &v, None).unwrap();
    assert_eq!(Value::Object(i), json!({"x": null}));
}

#[test]
fn environment_ids_only_where_the_table_says() {
    let a = obj("{}");
    let e = obj(r#"{"client": "jc_admin", "job_id": "from env"}"#);
    let v = obj("{}");
    // let with ids: ids visible and win over the stored environment.
    let out = run_let(
        &map(
            MapKind::Let,
            "j = e.job_id\nw = e.workflow_id\nt = e.task_id\nc = e.client",
        ),
        &a,
        &e,
        &v,
        Some(IDS),
    )
    .unwrap()
    .unwrap();
    assert_eq!(
        Value::Object(out),
        json!({"j": 42, "w": 7, "t": 99, "c": "jc_admin"})
    );
    // Conditions have no ids.
    let e2 = obj(r#"{"client": "jc_admin"}"#);
    let (b, _) = run_condition(&Code::Expr(expr("defined(e.job_id)")), &a, &e2, &v).unwrap();
    assert!(!b);
    let (s, _) = run_case(&Code::Expr(expr("e.client")), &a, &e2, &v).unwrap();
    assert_eq!(s, "jc_admin");
    // Input map with ids.
    let i = run_input_map(
        &map(MapKind::Input, "job = e.job_id"),
        &a,
        &e2,
        &v,
        Some(IDS),
    )
    .unwrap();
    assert_eq!(i["job"], json!(42));
}

#[test]
fn temporaries_start_empty_each_evaluation_and_are_dropped() {
    let (a, e, v) = (obj("{}"), obj("{}"), obj("{}"));
    let m = map(MapKind::Let, "t.x = 5\nt.x += 1\ny = t.x");
    let out = run_let(&m, &a, &e, &v, None).unwrap().unwrap();
    assert_eq!(Value::Object(out.clone()), json!({"y": 6}));
    let again = run_let(&map(MapKind::Let, "z = defined(t.x)"), &a, &e, &out, None)
        .unwrap()
        .unwrap();
    assert_eq!(again["z"], json!(""));
    // Input maps may use t too; t is not part of i.
    let i = run_input_map(
        &map(MapKind::Input, "t.k = 'tmp'\nx = t.k . '!'"),
        &a,
        &e,
        &v,
        None,
    )
    .unwrap();
    assert_eq!(Value::Object(i), json!({"x": "tmp!"}));
}

#[test]
fn object_availability_per_context() {
    let (a, e, v) = (obj(r#"{"x": 1}"#), obj("{}"), obj(r#"{"y": 2}"#));
    // Input maps cannot read o; output maps cannot read i.
    let err = run_input_map(&map(MapKind::Input, "x = o.y"), &a, &e, &v, None).unwrap_err();
    assert_eq!(err.kind, ErrorKind::UnavailableObject('o'));
    let o = obj("{}");
    let err = run_output_map(&map(MapKind::Output, "x = i.y"), &a, &e, &v, &o, None).unwrap_err();
    assert_eq!(err.kind, ErrorKind::UnavailableObject('i'));
    // The input map result does not leak v changes; v in the wfomap is read-only.
    let mut scope = Scope::wfomap(&a, &e, &v);
    let m = map(MapKind::WfOmap, "r = v.y + a.x");
    eval_map(&m, &mut scope).unwrap();
    assert_eq!(Value::Object(scope.into_outputs()), json!({"r": 3}));
    let m = map(MapKind::WfOmap, "v.y = 5");
    let err = run_wfomap(&m, &a, &e, &v, None).unwrap_err();
    assert_eq!(err.kind, ErrorKind::ReadOnly);
    // Lock values: strings, v changes discarded.
    let s = run_lock_value(&Code::Expr(expr("'lock-' . a.x")), &a, &e, &v).unwrap();
    assert_eq!(s, "lock-1");
}

#[test]
fn implicit_input_of_raise_error() {
    let (a, e, v) = (obj(r#"{"x": 2}"#), obj("{}"), obj("{}"));
    let i =
        run_implicit_input("msg", &Code::Expr(expr("'inner ' . a.x")), &a, &e, &v, None).unwrap();
    assert_eq!(Value::Object(i), json!({"msg": "inner 2"}));
    let i = run_implicit_input("msg", &Code::Expr(expr("v.nothing")), &a, &e, &v, None).unwrap();
    assert_eq!(Value::Object(i), json!({"msg": null}));
}

#[test]
fn scope_api_expression_in_output_map() {
    let (a, e, v) = (obj("{}"), obj("{}"), obj("{}"));
    let o = obj(r#"{"counter": 6}"#);
    let mut scope = Scope::output_map(&a, &e, &v, &o);
    assert_eq!(
        eval_expr(&expr("o.counter * 7"), &mut scope).unwrap(),
        json!(42)
    );
    assert!(scope.into_vars().is_none(), "reading does not copy v");
}
