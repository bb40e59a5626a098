//! Runtime error messages of expressions and maps (docs/JCL.md §2.3 "Error texts", Appendix A;
//! cases C07, C25, C28, C29).

mod eval_support;

use eval_support::{expr, map, obj};
use jobcenter_engine::eval::expr::eval_expr;
use jobcenter_engine::eval::maps::{run_case, run_condition, run_let, run_output_map};
use jobcenter_engine::eval::scope::Scope;
use jobcenter_engine::eval::{ErrorKind, EvalError};
use jobcenter_engine::syntax::ast::{Code, MapKind};

fn let_err(src: &str, args: &str) -> EvalError {
    let a = obj(args);
    let e = obj("{}");
    let v = obj("{}");
    match run_let(&map(MapKind::Let, src), &a, &e, &v, None) {
        Ok(v) => panic!("{src}: expected an error, got {v:?}"),
        Err(err) => err,
    }
}

fn expr_err(src: &str, args: &str) -> String {
    let a = obj(args);
    let e = obj("{}");
    let v = obj("{}");
    let mut scope = Scope::let_map(&a, &e, &v);
    match eval_expr(&expr(src), &mut scope) {
        Ok(v) => panic!("{src}: expected an error, got {v}"),
        Err(err) => err.to_string(),
    }
}

#[test]
fn jcl_c07_division_by_zero() {
    let err = let_err("q = a.a / a.b", r#"{"a": 1, "b": 0}"#);
    assert_eq!(err.to_string(), "Illegal division by zero at line 1.");
    assert_eq!(err.sqlstate(), "38000");
    assert_eq!(err.kind, ErrorKind::DivisionByZero);
    // and the good case
    let a = obj(r#"{"a": 10, "b": 5}"#);
    let (e, v) = (obj("{}"), obj("{}"));
    let out = run_let(&map(MapKind::Let, "q = a.a / a.b"), &a, &e, &v, None)
        .unwrap()
        .unwrap();
    assert_eq!(out["q"].as_f64(), Some(2.0));
}

#[test]
fn jcl_c29_line_numbers_and_modulus() {
    assert_eq!(
        let_err("a1 = 1\nr = 1 / 0", "{}").to_string(),
        "Illegal division by zero at line 2."
    );
    assert_eq!(
        let_err("r = 5 % 0", "{}").to_string(),
        "Illegal modulus zero at line 1."
    );
    assert_eq!(
        let_err("r = 5 % 0.5", "{}").to_string(),
        "Illegal modulus zero at line 1."
    );
    assert_eq!(
        let_err("x = 1\ny = 2\nz /= 0", "{}").to_string(),
        "Illegal division by zero at line 3."
    );
    // A condition is line 1.
    let (a, e, v) = (obj("{}"), obj("{}"), obj("{}"));
    let cond = Code::Expr(expr("v.x / 0"));
    assert_eq!(
        run_condition(&cond, &a, &e, &v).unwrap_err().to_string(),
        "Illegal division by zero at line 1."
    );
    let case = Code::Expr(expr("1 / 0"));
    assert_eq!(
        run_case(&case, &a, &e, &v).unwrap_err().to_string(),
        "Illegal division by zero at line 1."
    );
    // Output map errors.
    let o = obj(r#"{"y": 3}"#);
    let err =
        run_output_map(&map(MapKind::Output, "r = o.y / 0"), &a, &e, &v, &o, None).unwrap_err();
    assert_eq!(err.to_string(), "Illegal division by zero at line 1.");
}

#[test]
fn jcl_c28_strict_refs_and_not_an_object() {
    let args = r#"{"s": "abc", "n": 5, "l": [1], "o": {"k": 1}}"#;
    assert_eq!(
        let_err("r = a.s.foo", args).to_string(),
        r#"Can't use string ("abc") as a HASH ref while "strict refs" in use at line 1."#
    );
    assert_eq!(
        let_err("r = a.s[0]", args).to_string(),
        r#"Can't use string ("abc") as an ARRAY ref while "strict refs" in use at line 1."#
    );
    assert_eq!(
        let_err("r = a.n.x", args).to_string(),
        r#"Can't use string ("5") as a HASH ref while "strict refs" in use at line 1."#
    );
    assert_eq!(let_err("r = keys(a.s)", args).to_string(), "not an object");
    assert_eq!(
        let_err("r = values(a.l)", args).to_string(),
        "not an object"
    );
    assert_eq!(
        let_err("r = a.l.x", args).to_string(),
        "Not a HASH reference at line 1."
    );
    assert_eq!(
        let_err("r = a.o[0]", args).to_string(),
        "Not an ARRAY reference at line 1."
    );
}

#[test]
fn long_strings_are_truncated_in_strict_refs_messages() {
    let long = "x".repeat(40);
    let args = format!(r#"{{"s": "{long}"}}"#);
    assert_eq!(
        expr_err("a.s.k", &args),
        format!(
            r#"Can't use string ("{}"...) as a HASH ref while "strict refs" in use at line 1."#,
            "x".repeat(32)
        )
    );
}

#[test]
fn jcl_c25_magic_in_let_refers_to_missing_o() {
    assert_eq!(
        let_err("<*>", "{}").to_string(),
        r#"Global symbol "%o" requires explicit package name (did you forget to declare "my %o"?) at line 1."#
    );
    assert_eq!(
        let_err("x = 1\n<x>", "{}").to_string(),
        r#"Global symbol "%o" requires explicit package name (did you forget to declare "my %o"?) at line 2."#
    );
    // Reading an object the context does not provide.
    assert_eq!(
        expr_err("i.x", "{}"),
        r#"Global symbol "%i" requires explicit package name (did you forget to declare "my %i"?) at line 1."#
    );
}

#[test]
fn json_function_errors() {
    assert_eq!(
        expr_err("tojson(1)", "{}"),
        "hash- or arrayref expected (not a simple scalar, use allow_nonref to allow this) at line 1."
    );
    assert_eq!(
        expr_err("fromjson('3')", "{}"),
        "JSON text must be an object or array (but found number, string, true, false or null, use allow_nonref to allow this) at line 1."
    );
    assert!(expr_err("fromjson('{oops')", "{}").starts_with("malformed JSON string"));
    assert_eq!(
        expr_err("md5('\u{20ac}')", "{}"),
        "Wide character in subroutine entry at line 1."
    );
    assert_eq!(expr_err("array(list(1))", "{}"), "not a reference");
}

#[test]
fn references_in_scalar_operators_are_errors() {
    let args = r#"{"l": [1], "o": {}}"#;
    assert_eq!(
        expr_err("a.l + 1", args),
        "Can't use an ARRAY reference as a number at line 1."
    );
    assert_eq!(
        expr_err("a.o . 'x'", args),
        "Can't use a HASH reference as a string at line 1."
    );
    assert_eq!(
        expr_err("a.o eq 'x'", args),
        "Can't use a HASH reference as a string at line 1."
    );
    assert!(expr_err("'x' x 100000000000", "{}").starts_with("Out of memory"));
}

#[test]
fn failed_map_keeps_nothing() {
    // The helper returns an error, not a half-updated variable object.
    let (a, e) = (obj("{}"), obj("{}"));
    let v = obj(r#"{"keep": 1}"#);
    let err = run_let(&map(MapKind::Let, "keep = 2\nx = 1 / 0"), &a, &e, &v, None).unwrap_err();
    assert_eq!(err.line, 2);
    assert_eq!(v["keep"], 1);
}

#[test]
fn jcl_c29_phase_prefixes_of_job_errors() {
    use jobcenter_engine::eval::types::{check_inputs, check_outputs, IoSpec};
    use jobcenter_engine::eval::{MapError, Phase};
    let err = MapError::from(let_err("q = a.a / a.b", r#"{"a": 1, "b": 0}"#));
    assert_eq!(
        err.job_message(Phase::Eval),
        "caught exception in do_eval sqlstate 38000 sqlerrm Illegal division by zero at line 1."
    );
    let (a, e, v) = (obj("{}"), obj("{}"), obj("{}"));
    let cond = Code::Expr(expr("v.x / 0"));
    let err = MapError::from(run_condition(&cond, &a, &e, &v).unwrap_err());
    assert_eq!(
        err.job_message(Phase::BoolCode),
        "caught exception in do_boolcode sqlstate 38000 sqlerrm Illegal division by zero at line 1."
    );
    let spec = [IoSpec::base("counter", "number").unwrap()];
    let err = MapError::from(check_inputs(&spec, &obj(r#"{"counter": "abc"}"#)).unwrap_err());
    assert_eq!(
        err.job_message(Phase::InArgsMap),
        "caught exception in do_inargsmap sqlstate P0001 sqlerrm input argument \"counter\" has wrong type string (should be number)"
    );
    let spec = [IoSpec::base("r", "number").unwrap()];
    let err = MapError::from(check_outputs(&spec, &obj("{}")).unwrap_err());
    assert_eq!(
        err.job_message(Phase::WorkflowOutArgsMap),
        "caught exception in do_workflowoutargsmap sqlstate P0001 sqlerrm required output parameter r not found"
    );
    assert_eq!(Phase::StringCode.name(), "do_stringcode");
    assert_eq!(Phase::OutArgsMap.name(), "do_outargsmap");
}
