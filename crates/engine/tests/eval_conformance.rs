//! Conformance cases of docs/JCL.md Part 4 that need no workers or child jobs, run end to end
//! through the real parser and the evaluator: a minimal statement walker (let, if, case,
//! while, repeat, try, raise_error, assert, return) drives the `eval` API the way the job
//! runtime does, including the input/output checks and the `caught exception in` messages.

use jobcenter_engine::eval::types::{check_inputs_owned, check_outputs, IoSpec, SchemaRegistry};
use jobcenter_engine::eval::{
    run_case, run_condition, run_implicit_input, run_let, run_wfomap, EnvIds, MapError, Object,
    Phase,
};
use jobcenter_engine::syntax::ast::{Block, Definition, StmtKind, WorkflowDef};
use jobcenter_engine::syntax::parse;
use serde_json::{json, Value};

const IDS: EnvIds = EnvIds {
    workflow_id: 1,
    job_id: 100,
    task_id: 5,
};

struct Job {
    a: Object,
    e: Object,
    v: Object,
}

enum Flow {
    Next,
    Return,
}

fn error_value(msg: Value) -> Value {
    json!({"msg": msg, "class": "normal"})
}

fn fail(err: impl Into<MapError>, phase: Phase) -> Value {
    error_value(Value::String(err.into().job_message(phase)))
}

fn keep(job: &mut Job, new_v: Option<Object>) {
    if let Some(v) = new_v {
        job.v = v;
    }
}

fn raise(job: &mut Job, message: &jobcenter_engine::syntax::ast::Code) -> Value {
    let spec = [IoSpec::base("msg", "string").unwrap()];
    let i = match run_implicit_input("msg", message, &job.a, &job.e, &job.v, Some(IDS)) {
        Ok(i) => i,
        Err(e) => return fail(e, Phase::InArgsMap),
    };
    match check_inputs_owned(&spec, i) {
        Ok(i) => error_value(i["msg"].clone()),
        Err(e) => fail(e, Phase::InArgsMap),
    }
}

fn run_block(block: &Block, job: &mut Job) -> Result<Flow, Value> {
    for stmt in block {
        if let Flow::Return = run_stmt(&stmt.kind, job)? {
            return Ok(Flow::Return);
        }
    }
    Ok(Flow::Next)
}

fn cond(code: &jobcenter_engine::syntax::ast::Code, job: &mut Job) -> Result<bool, Value> {
    let (b, v) =
        run_condition(code, &job.a, &job.e, &job.v).map_err(|e| fail(e, Phase::BoolCode))?;
    keep(job, v);
    Ok(b)
}

fn run_stmt(stmt: &StmtKind, job: &mut Job) -> Result<Flow, Value> {
    match stmt {
        StmtKind::Let { map, .. } => {
            let v = run_let(map, &job.a, &job.e, &job.v, Some(IDS))
                .map_err(|e| fail(e, Phase::Eval))?;
            keep(job, v);
        }
        StmtKind::If {
            first,
            elsifs,
            else_block,
        } => {
            for arm in std::iter::once(first).chain(elsifs) {
                if cond(&arm.cond, job)? {
                    return run_block(&arm.body, job);
                }
            }
            if let Some(b) = else_block {
                return run_block(b, job);
            }
        }
        StmtKind::Case {
            expr,
            whens,
            else_block,
        } => {
            let (s, v) =
                run_case(expr, &job.a, &job.e, &job.v).map_err(|e| fail(e, Phase::StringCode))?;
            keep(job, v);
            for w in whens {
                if w.labels.contains(&s) {
                    return run_block(&w.body, job);
                }
            }
            if let Some(b) = else_block {
                return run_block(b, job);
            }
        }
        StmtKind::While { cond: c, body } => {
            while cond(c, job)? {
                if let Flow::Return = run_block(body, job)? {
                    return Ok(Flow::Return);
                }
            }
        }
        StmtKind::Repeat { body, until, .. } => loop {
            if let Flow::Return = run_block(body, job)? {
                return Ok(Flow::Return);
            }
            if cond(until, job)? {
                break;
            }
        },
        StmtKind::Try { body, catch, .. } => match run_block(body, job) {
            Ok(flow) => return Ok(flow),
            Err(err) => {
                job.e.insert("_error".into(), err);
                return run_block(catch, job);
            }
        },
        StmtKind::RaiseError { message } => return Err(raise(job, message)),
        StmtKind::Assert { cond: c, message } => {
            if !cond(c, job)? {
                let code = jobcenter_engine::syntax::ast::Code::Expr(message.clone());
                return Err(raise(job, &code));
            }
        }
        StmtKind::Return => return Ok(Flow::Return),
        other => panic!(
            "statement {} not covered by this test walker",
            other.keyword()
        ),
    }
    Ok(Flow::Next)
}

/// Run a workflow: `Err(message)` = create_job rejected, `Ok(final output object)`.
fn run(src: &str, args: Value) -> Result<Value, String> {
    let def = parse("test.wf", src).unwrap_or_else(|e| panic!("parse error: {e:?}"));
    let Definition::Workflow(wf) = def else {
        panic!("not a workflow")
    };
    run_wf(&wf, args)
}

fn run_wf(wf: &WorkflowDef, args: Value) -> Result<Value, String> {
    let reg = SchemaRegistry::new();
    let ins = IoSpec::from_ast_list(wf.inputs.as_deref().unwrap_or(&[]), &reg, true).unwrap();
    let outs = IoSpec::from_ast_list(wf.outputs.as_deref().unwrap_or(&[]), &reg, false).unwrap();
    let Value::Object(args) = args else {
        panic!("args must be an object")
    };
    let a = check_inputs_owned(&ins, args).map_err(|e| e.to_string())?;
    let mut job = Job {
        a,
        e: serde_json::from_value(json!({"client": "jc_admin", "version": "0.1"})).unwrap(),
        v: Object::new(),
    };
    if let Some(body) = &wf.body {
        if let Err(err) = run_block(body, &mut job) {
            return Ok(json!({ "error": err }));
        }
    }
    let Some(wfomap) = &wf.wfomap else {
        return Ok(json!({}));
    };
    let out = match run_wfomap(wfomap, &job.a, &job.e, &job.v, Some(IDS)) {
        Ok(o) => o,
        Err(e) => return Ok(json!({ "error": fail(e, Phase::WorkflowOutArgsMap) })),
    };
    if let Err(e) = check_outputs(&outs, &out) {
        return Ok(json!({ "error": fail(e, Phase::WorkflowOutArgsMap) }));
    }
    Ok(Value::Object(out))
}

/// Numbers compare by value (`2.0` ≡ `2`).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, p)| y.get(k).is_some_and(|q| same(p, q)))
        }
        _ => a == b,
    }
}

#[track_caller]
fn check(src: &str, args: Value, expected: Value) {
    let got = run(src, args).unwrap_or_else(|e| panic!("rejected: {e}"));
    assert!(
        same(&got, &expected),
        "\n  actual: {got}\nexpected: {expected}"
    );
}

#[track_caller]
fn rejected(src: &str, args: Value, message: &str) {
    assert_eq!(run(src, args).unwrap_err(), message);
}

const K02: &str = "workflow k02:\nin:\n    n number 10\n    s string 'dflt'\n    o object\nout:\n    n number\n    s string\n    o object\nwfomap:\n    n = a.n\n    s = a.s\n    o = a.o\ndo:\n    return\n";

#[test]
fn jcl_c03_defaults_null_extra_arguments() {
    check(
        K02,
        json!({"o": {"z": [1, 2]}}),
        json!({"n": 10, "s": "dflt", "o": {"z": [1, 2]}}),
    );
    check(
        K02,
        json!({"n": null, "s": null, "o": null}),
        json!({"n": null, "s": null, "o": null}),
    );
    check(
        K02,
        json!({"o": {}, "extra": true}),
        json!({"n": 10, "s": "dflt", "o": {}}),
    );
    rejected(
        K02,
        json!({"o": [1]}),
        r#"input argument "o" has wrong type array (should be object)"#,
    );
}

#[test]
fn jcl_c04_schema_type_integer() {
    let src = "workflow k03:\nin:\n    n integer\nout:\n    r integer\nwfomap:\n    r = a.n\ndo:\n    return\n";
    check(src, json!({"n": 3}), json!({"r": 3}));
    check(src, json!({"n": 3.0}), json!({"r": 3.0}));
    let schema = "\\n\"{\n    \"type\": \"integer\"\n}\"";
    rejected(
        src,
        json!({"n": 1.5}),
        &format!(
            "input argument \"n\" with value \"1.5\" does not validate against schema:{schema}"
        ),
    );
    rejected(
        src,
        json!({"n": "1"}),
        &format!(
            "input argument \"n\" with value \"\"1\"\" does not validate against schema:{schema}"
        ),
    );
    rejected(
        src,
        json!({"n": null}),
        &format!(
            "input argument \"n\" with value \"null\" does not validate against schema:{schema}"
        ),
    );
}

#[test]
fn jcl_c05_c06_workflow_outputs() {
    let k04 = "workflow k04:\nin:\n    x number\nout:\n    r number\n    opt string optional\nwfomap:\n    opt = 'only opt'\ndo:\n    return\n";
    check(
        k04,
        json!({"x": 1}),
        json!({"error": {"msg": "caught exception in do_workflowoutargsmap sqlstate P0001 sqlerrm required output parameter r not found", "class": "normal"}}),
    );
    let k05 = "workflow k05:\nin:\n    x number\nout:\n    r number\nwfomap:\n    r = 'not a number'\ndo:\n    return\n";
    check(
        k05,
        json!({"x": 1}),
        json!({"error": {"msg": "caught exception in do_workflowoutargsmap sqlstate P0001 sqlerrm ouput parameter r has wrong type string (should be number)", "class": "normal"}}),
    );
}

#[test]
fn jcl_c07_division_uncaught_expression_error() {
    let src = "workflow k07:\nin:\n    a number\n    b number\nout:\n    q number\nwfomap:\n    q = v.q\ndo:\n    let:\n        q = a.a / a.b\n";
    check(src, json!({"a": 10, "b": 5}), json!({"q": 2.0}));
    check(
        src,
        json!({"a": 1, "b": 0}),
        json!({"error": {"msg": "caught exception in do_eval sqlstate 38000 sqlerrm Illegal division by zero at line 1.", "class": "normal"}}),
    );
}

#[test]
fn jcl_c08_try_catch_ifdef_error() {
    let src = "workflow k06:\nin:\n    a number\n    b number\nout:\n    q number optional\n    msg string optional\n    class string optional\nwfomap:\n    q = ifdef(v.q)\n    msg = ifdef(v.msg)\n    class = ifdef(v.class)\ndo:\n    try:\n        let:\n            q = a.a / a.b\n    catch:\n        let:\n            msg = e._error.msg\n            class = e._error.class\n";
    check(src, json!({"a": 1, "b": 4}), json!({"q": 0.25}));
    check(
        src,
        json!({"a": 1, "b": 0}),
        json!({"msg": "caught exception in do_eval sqlstate 38000 sqlerrm Illegal division by zero at line 1.", "class": "normal"}),
    );
}

#[test]
fn jcl_c17_operators_and_the_value_model() {
    let src = r#"workflow k17:
in:
    n number
    s string
out:
    r object
wfomap:
    r = v.r
do:
    let:
        t.x = a.n
        r = object("sum": (a.n + 2), "cat": (a.s . a.n), "rep": ("ab" x 3), "div": (7 / 2), "idiv": (8 / 2), "mod": (7 % 3), "pow": (2 ** 10), "neg": -a.n, "lt": (1 < 2), "gt": (1 > 2), "eq": ("a" eq "a"), "ne": ("a" ne "a"), "numstr": ("3" + 4), "junk": ("abc" + 1), "and": (0 && 5), "or": (0 || 5), "dor": (v.nope // 'dflt'), "not": !1, "not0": !0, "tx": t.x, "cmp": (10 == 10.0), "scmp": ("10" eq "10.0"))
"#;
    check(
        src,
        json!({"n": 3, "s": "x"}),
        json!({"r": {"sum": 5, "cat": "x3", "rep": "ababab", "div": 3.5, "idiv": 4.0, "mod": 1, "pow": 1024.0, "neg": -3, "lt": 1, "gt": "", "eq": 1, "ne": "", "numstr": 7, "junk": 1.0, "and": 0, "or": 5, "dor": "dflt", "not": "", "not0": 1, "tx": 3, "cmp": 1, "scmp": ""}}),
    );
}

#[test]
fn jcl_c18_compound_assignments_arrays_nested_variables() {
    let src = r#"workflow k18:
in:
    n number
out:
    r object
wfomap:
    r = v.r
do:
    let:
        s = 'a'
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
        nested = v.o.k
    let:
        r = object("s": v.s, "n": v.n, "u": v.u, "z": v.z, "arr": v.arr, "o": v.o, "first": v.first, "last": v.last, "missing": v.missing, "nested": v.nested)
"#;
    check(
        src,
        json!({"n": 3}),
        json!({"r": {"s": "ab", "n": 6.0, "u": "was undef", "z": "was false", "arr": [1, "two", [3, 4]], "o": {"k": 1, "odd key": 2}, "first": 1, "last": [3, 4], "missing": null, "nested": 1}}),
    );
}

#[test]
fn jcl_c19_string_literals_are_raw() {
    let src = r#"workflow k19:
in:
    s string
out:
    r object
wfomap:
    r = v.r
do:
    let:
        r = object("dq": "a\tb\"c", "bs": "x\\y", "dqs": "it's", "sq": 'say "hi"', "nl": "l1\nl2")
"#;
    let got = run(src, json!({"s": "x"})).unwrap();
    assert_eq!(
        serde_json::to_string(&got).unwrap(),
        r#"{"r":{"bs":"x\\y","dq":"a\\tb\\\"c","dqs":"it's","nl":"l1\\nl2","sq":"say \"hi\""}}"#
    );
}

#[test]
fn jcl_c20_default_literal_forms() {
    let src = "workflow k21:\nin:\n    op string '\"+\"'\n    b boolean false\n    nl string null\n    n number -2.5\nout:\n    r object\nwfomap:\n    r = object(\"op\": a.op, \"b\": a.b, \"nl\": a.nl, \"n\": a.n)\ndo:\n    return\n";
    check(
        src,
        json!({}),
        json!({"r": {"op": "\"+\"", "b": false, "nl": null, "n": -2.5}}),
    );
    let k50 = "workflow k50:\nin:\n    p string \"a\\tb\"\n    q string 'x\\\\y'\n    r string \"l1\\nl2\"\nout:\n    r object\nwfomap:\n    r = object(\"p\": a.p, \"q\": a.q, \"r\": a.r)\ndo:\n    return\n";
    check(
        k50,
        json!({}),
        json!({"r": {"p": "a\tb", "q": "x\\y", "r": "l1\nl2"}}),
    );
}

#[test]
fn jcl_c21_case_when_else() {
    let src = "workflow k22:\nin:\n    k string\nout:\n    r string\nwfomap:\n    r = v.r\ndo:\n    case a.k:\n    when foo:\n        let:\n            r = 'got foo'\n    when 'bar', \"baz\", '3':\n        let:\n            r = 'got bar, baz or 3'\n    else:\n        let:\n            r = 'other: ' . a.k\n";
    check(src, json!({"k": "foo"}), json!({"r": "got foo"}));
    for k in ["bar", "baz", "3"] {
        check(src, json!({ "k": k }), json!({"r": "got bar, baz or 3"}));
    }
    check(src, json!({"k": "quux"}), json!({"r": "other: quux"}));
}

#[test]
fn jcl_c22_repeat_until() {
    let src = "workflow k23:\nin:\n    n number\nout:\n    r number\n    steps array\nwfomap:\n    r = v.i\n    steps = v.steps\ndo:\n    let:\n        i = 0\n        steps = fromjson('[]')\n    repeat:\n        let:\n            i += 1\n            steps ,= v.i\n    until v.i >= a.n\n";
    check(src, json!({"n": 3}), json!({"r": 3, "steps": [1, 2, 3]}));
    check(src, json!({"n": 0}), json!({"r": 1, "steps": [1]}));
}

#[test]
fn jcl_c24_nested_try_raise_error_rethrow() {
    let src = "workflow k44:\nin:\n    x number\nout:\n    r string\nwfomap:\n    r = v.r\ndo:\n    try:\n        try:\n            raise_error 'inner ' . a.x\n        catch:\n            let:\n                r = 'caught ' . e._error.msg\n            if a.x > 1:\n                raise_error 'rethrown: ' . e._error.msg\n    catch:\n        let:\n            r .= ' / outer caught ' . e._error.msg . ' (' . e._error.class . ')'\n";
    check(src, json!({"x": 1}), json!({"r": "caught inner 1"}));
    check(
        src,
        json!({"x": 2}),
        json!({"r": "caught inner 2 / outer caught rethrown: inner 2 (normal)"}),
    );
}

#[test]
fn jcl_c26_assert() {
    let src = "workflow k26:\nin:\n    x number\nout:\n    r number\nwfomap:\n    r = v.x\ndo:\n    let:\n        x = a.x\n    assert v.x > 0:\n        'x must be positive, got ' . v.x\n    let:\n        x *= 10\n";
    check(src, json!({"x": 2}), json!({"r": 20}));
    check(
        src,
        json!({"x": -1}),
        json!({"error": {"msg": "x must be positive, got -1", "class": "normal"}}),
    );
}

const K40: &str = r#"workflow k40:
in:
    mode string
    s string 'abc'
out:
    r object optional
wfomap:
    r = ifdef(v.r)
do:
    case a.mode:
    when strictref:
        let:
            r = a.s.foo
    when autoviv:
        if v.foo.bar == 1:
            let:
                z = 1
        let:
            r = object("foo": v.foo)
    when numraise:
        raise_error 42
    when undefraise:
        raise_error v.nothing
    when notarray:
        let:
            r = a.s[0]
    when keysfail:
        let:
            r = keys(a.s)
"#;

#[test]
fn jcl_c28_runtime_errors_in_expressions() {
    let err = |msg: &str| json!({"error": {"msg": msg, "class": "normal"}});
    check(K40, json!({"mode": "strictref"}), err("caught exception in do_eval sqlstate 38000 sqlerrm Can't use string (\"abc\") as a HASH ref while \"strict refs\" in use at line 1."));
    check(K40, json!({"mode": "autoviv"}), json!({"r": {"foo": {}}}));
    check(K40, json!({"mode": "numraise"}), err("caught exception in do_inargsmap sqlstate P0001 sqlerrm input argument \"msg\" has wrong type number (should be string)"));
    check(
        K40,
        json!({"mode": "undefraise"}),
        json!({"error": {"msg": null, "class": "normal"}}),
    );
    check(K40, json!({"mode": "notarray"}), err("caught exception in do_eval sqlstate 38000 sqlerrm Can't use string (\"abc\") as an ARRAY ref while \"strict refs\" in use at line 1."));
    check(
        K40,
        json!({"mode": "keysfail"}),
        err("caught exception in do_eval sqlstate 38000 sqlerrm not an object"),
    );
}

#[test]
fn jcl_c29_error_phase_prefixes_and_line_numbers() {
    let src = "workflow k42:\nin:\n    mode string\nout:\n    r number optional\nwfomap:\n    r = ifdef(v.r)\ndo:\n    case a.mode:\n    when line2:\n        let:\n            a1 = 1\n            r = 1 / 0\n    when mod:\n        let:\n            r = 5 % 0\n    when cond:\n        while v.x / 0:\n            let:\n                r = 1\n    when casediv:\n        case 1 / 0:\n        when x:\n            let:\n                r = 1\n";
    let err = |msg: &str| json!({"error": {"msg": msg, "class": "normal"}});
    check(src, json!({"mode": "line2"}), err("caught exception in do_eval sqlstate 38000 sqlerrm Illegal division by zero at line 2."));
    check(
        src,
        json!({"mode": "mod"}),
        err("caught exception in do_eval sqlstate 38000 sqlerrm Illegal modulus zero at line 1."),
    );
    check(src, json!({"mode": "cond"}), err("caught exception in do_boolcode sqlstate 38000 sqlerrm Illegal division by zero at line 1."));
    check(src, json!({"mode": "casediv"}), err("caught exception in do_stringcode sqlstate 38000 sqlerrm Illegal division by zero at line 1."));
}

#[test]
fn jcl_c30_booleans_and_truthiness() {
    let src = r#"workflow k48:
in:
    b boolean
    f boolean
    s string
    arr array
    o object
out:
    r object
wfomap:
    r = v.r
do:
    let:
        r = object("bcat": ('x' . a.b . a.f), "bnum": (a.b + a.f), "beq": (a.b eq 'true'), "bnot": !a.f, "s0": !a.s, "arrnot": !a.arr, "onot": !a.o, "copy": a.b, "cmpnum": (10 < 9), "cmpstr": ("10" lt "9"), "inc": (a.s + 1))
"#;
    check(
        src,
        json!({"b": true, "f": false, "s": "0", "arr": [], "o": {}}),
        json!({"r": {"bcat": "x10", "bnum": 1, "beq": 1, "bnot": 1, "s0": 1, "arrnot": "", "onot": "", "copy": true, "cmpnum": "", "cmpstr": 1, "inc": 1}}),
    );
    check(
        src,
        json!({"b": true, "f": false, "s": "0.0", "arr": [], "o": {}}),
        json!({"r": {"bcat": "x10", "bnum": 1, "beq": 1, "bnot": 1, "s0": "", "arrnot": "", "onot": "", "copy": true, "cmpnum": "", "cmpstr": 1, "inc": 1.0}}),
    );
}

#[test]
fn environment_ids_in_let_but_not_in_conditions() {
    // From C27: `e.job_id` is visible in a let, not in an `if`.
    let src = "workflow k27:\nin:\n    x number\nout:\n    in_cond string\n    in_let number\nwfomap:\n    in_cond = v.in_cond\n    in_let = v.in_let\ndo:\n    if defined(e.job_id):\n        let:\n            in_cond = 'job_id visible'\n    else:\n        let:\n            in_cond = 'job_id not visible'\n    let:\n        in_let = defined(e.job_id)\n";
    check(
        src,
        json!({"x": 1}),
        json!({"in_cond": "job_id not visible", "in_let": 1}),
    );
}

#[test]
fn regex_match_returns_1_or_empty_string() {
    let src = r#"workflow k60:
in:
    s string
out:
    r object
wfomap:
    r = v.r
do:
    let:
        r = object("word": (a.s ~ /^[a-z]+\d*$/), "digits": (a.s ~ /\d{3}/), "alt": (a.s ~ /^(foo|bar)/))
"#;
    check(
        src,
        json!({"s": "foo123"}),
        json!({"r": {"word": 1, "digits": 1, "alt": 1}}),
    );
    check(
        src,
        json!({"s": "Foo12"}),
        json!({"r": {"word": "", "digits": "", "alt": ""}}),
    );
    let bad = "workflow k61:\nin:\n    s string\nout:\n    r string\nwfomap:\n    r = v.r\ndo:\n    let:\n        r = (a.s ~ /(a)\\1/)\n";
    let got = run(bad, json!({"s": "aa"})).unwrap();
    let msg = got["error"]["msg"].as_str().unwrap();
    assert!(
        msg.starts_with(
            "caught exception in do_eval sqlstate 38000 sqlerrm Back-references are not supported"
        ),
        "{msg}"
    );
}
