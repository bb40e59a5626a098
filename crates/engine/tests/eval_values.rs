//! The value model and every operator (docs/JCL.md §2.3, Appendix D; cases C17, C30).

mod eval_support;

use eval_support::{assert_same, expr, map, obj};
use jobcenter_engine::eval::expr::eval_expr;
use jobcenter_engine::eval::maps::run_let;
use jobcenter_engine::eval::scope::Scope;
use jobcenter_engine::eval::value::{is_true, to_perl_string};
use jobcenter_engine::syntax::ast::MapKind;
use serde_json::{json, Value};

/// Evaluate `src` with the given arguments (`a`), empty `e` and `v`.
fn ev_with(src: &str, args: &str) -> Result<Value, String> {
    let a = obj(args);
    let e = obj("{}");
    let v = obj("{}");
    let mut scope = Scope::let_map(&a, &e, &v);
    eval_expr(&expr(src), &mut scope).map_err(|e| e.to_string())
}

fn ev(src: &str) -> Value {
    ev_with(src, "{}").unwrap_or_else(|e| panic!("{src}: {e}"))
}

/// The exact JSON text of a result (to see `1` vs `1.0` vs `"1"`).
fn text(src: &str) -> String {
    ev(src).to_string()
}

#[test]
fn jcl_c17_operators_and_the_value_model() {
    let m = map(
        MapKind::Let,
        r#"t.x = a.n
        r = object("sum": (a.n + 2), "cat": (a.s . a.n), "rep": ("ab" x 3), "div": (7 / 2), "idiv": (8 / 2), "mod": (7 % 3), "pow": (2 ** 10), "neg": -a.n, "lt": (1 < 2), "gt": (1 > 2), "eq": ("a" eq "a"), "ne": ("a" ne "a"), "numstr": ("3" + 4), "junk": ("abc" + 1), "and": (0 && 5), "or": (0 || 5), "dor": (v.nope // 'dflt'), "not": !1, "not0": !0, "tx": t.x, "cmp": (10 == 10.0), "scmp": ("10" eq "10.0"))"#,
    );
    let a = obj(r#"{"n": 3, "s": "x"}"#);
    let e = obj("{}");
    let v = obj("{}");
    let out = run_let(&m, &a, &e, &v, None).unwrap().expect("v changed");
    let expected = json!({"sum": 5, "cat": "x3", "rep": "ababab", "div": 3.5, "idiv": 4.0, "mod": 1, "pow": 1024.0, "neg": -3, "lt": 1, "gt": "", "eq": 1, "ne": "", "numstr": 7, "junk": 1.0, "and": 0, "or": 5, "dor": "dflt", "not": "", "not0": 1, "tx": 3, "cmp": 1, "scmp": ""});
    assert_same(&out["r"], &expected);
    // Types, not only values: integers stay integers, `/` and `**` give floats.
    let r = &out["r"];
    assert!(r["sum"].is_i64() && r["numstr"].is_i64() && r["mod"].is_i64() && r["neg"].is_i64());
    assert!(r["idiv"].is_f64() && r["pow"].is_f64() && r["junk"].is_f64());
    assert_eq!(r["gt"], json!(""));
    assert_eq!(r["lt"], json!(1));
    // `t` is not part of the result.
    assert!(!out.contains_key("x"));
}

#[test]
fn jcl_c30_booleans_and_truthiness() {
    let m = map(
        MapKind::Let,
        r#"r = object("bcat": ('x' . a.b . a.f), "bnum": (a.b + a.f), "beq": (a.b eq 'true'), "bnot": !a.f, "s0": !a.s, "arrnot": !a.arr, "onot": !a.o, "copy": a.b, "cmpnum": (10 < 9), "cmpstr": ("10" lt "9"), "inc": (a.s + 1))"#,
    );
    let e = obj("{}");
    let v = obj("{}");
    let a = obj(r#"{"b": true, "f": false, "s": "0", "arr": [], "o": {}}"#);
    let out = run_let(&m, &a, &e, &v, None).unwrap().unwrap();
    let expected = json!({"bcat": "x10", "bnum": 1, "beq": 1, "bnot": 1, "s0": 1, "arrnot": "", "onot": "", "copy": true, "cmpnum": "", "cmpstr": 1, "inc": 1});
    assert_same(&out["r"], &expected);
    assert_eq!(
        out["r"]["copy"],
        json!(true),
        "copying a boolean keeps it a JSON boolean"
    );

    let a = obj(r#"{"b": true, "f": false, "s": "0.0", "arr": [], "o": {}}"#);
    let out = run_let(&m, &a, &e, &v, None).unwrap().unwrap();
    assert_eq!(out["r"]["s0"], json!(""));
    assert_same(&out["r"]["inc"], &json!(1.0));
}

#[test]
fn truthiness_table() {
    for falsy in [
        json!(null),
        json!(false),
        json!(0),
        json!(0.0),
        json!(""),
        json!("0"),
    ] {
        assert!(!is_true(&falsy), "{falsy} must be false");
    }
    for truthy in [
        json!(true),
        json!(1),
        json!(-1),
        json!(0.5),
        json!("0.0"),
        json!("00"),
        json!(" "),
        json!("false"),
        json!([]),
        json!({}),
        json!("a"),
    ] {
        assert!(is_true(&truthy), "{truthy} must be true");
    }
    // The same through `!` on expressions.
    assert_eq!(text("!'0.0'"), r#""""#);
    assert_eq!(text("!''"), "1");
    assert_eq!(text("not 0"), "1");
}

#[test]
fn numification_of_strings() {
    assert_eq!(text("'7' + 1"), "8");
    assert_eq!(text("'12abc' + 0"), "12.0");
    assert_eq!(text("'abc' + 1"), "1.0");
    assert_eq!(text("' 42 ' + 0"), "42");
    assert_eq!(text("'-3.5e2x' + 0"), "-350.0");
    assert_eq!(text("'.5' + 0"), "0.5");
    assert_eq!(text("null + 1"), "1");
    assert_eq!(text("true + true"), "2");
    assert_eq!(text("tonumber('3abc')"), "3.0");
    assert_eq!(text("tonumber('17')"), "17");
    assert_eq!(text("tonumber(a.x)").as_str(), "0");
}

#[test]
fn stringification_and_float_formatting() {
    assert_eq!(ev("tostring(0.1 + 0.2)"), json!("0.3"));
    assert_eq!(ev("tostring(3.0)"), json!("3"));
    assert_eq!(ev("tostring(8 / 2)"), json!("4"));
    assert_eq!(
        ev("tostring(1000000 * 1000000 * 1000000 * 1000.0)"),
        json!("1e+21")
    );
    assert_eq!(ev("tostring(1 / 3)"), json!("0.333333333333333"));
    assert_eq!(ev("tostring(null)"), json!(""));
    assert_eq!(ev("tostring(true) . tostring(false)"), json!("10"));
    assert_eq!(ev("'n' . -2.5"), json!("n-2.5"));
    // Floats written to JSON are rounded to 15 significant digits (Appendix D.4).
    assert_eq!(text("0.1 + 0.2"), "0.3");
    assert_eq!(text("1 / 3"), "0.333333333333333");
    // ... but keep full precision inside one expression.
    assert_eq!(ev("(0.1 + 0.2) == 0.3"), json!(""));
}

#[test]
fn arithmetic_results_and_integer_range() {
    assert_eq!(text("2 + 3"), "5");
    assert_eq!(text("2 - 3"), "-1");
    assert_eq!(text("6 * 7"), "42");
    assert_eq!(text("1.5 * 2"), "3.0");
    assert_eq!(text("7 / 2"), "3.5");
    assert_eq!(text("8 / 2"), "4.0");
    // Appendix D.3: integer arithmetic stays integral up to 2**64-1.
    assert_eq!(text("9223372036854775807 + 1"), "9223372036854775808");
    assert_eq!(text("18446744073709551615 + 0"), "18446744073709551615");
    assert!(ev("18446744073709551615 + 1").is_f64());
    assert!(ev("-9223372036854775807 - 10").is_f64());
    // Integral floats count as integers in `+ - * **` and unary minus (Perl's SvIV_please),
    // strings with a fraction do not.
    assert_eq!(text("(8 / 2) + 1"), "5");
    assert_eq!(text("-(8 / 2)"), "-4");
    assert_eq!(text("3.0 ** 2"), "9");
    assert_eq!(text("'3.0' + 1"), "4.0");
    assert_eq!(text("0.5 + 0.5"), "1.0");
}

#[test]
fn modulus_sign_of_right_operand() {
    assert_eq!(text("7 % 3"), "1");
    assert_eq!(text("-7 % 3"), "2");
    assert_eq!(text("7 % -3"), "-2");
    assert_eq!(text("-7 % -3"), "-1");
    assert_eq!(text("7.9 % 3"), "1");
    assert_eq!(text("'10' % '4'"), "2");
}

#[test]
fn power_results() {
    assert_eq!(text("2 ** 10"), "1024.0");
    assert_eq!(text("3 ** 2"), "9");
    assert_eq!(ev("tostring(10 ** 15)"), json!("1000000000000000"));
    assert_eq!(text("2 ** -1"), "0.5");
    assert_eq!(text("4 ** 0.5"), "2.0");
    // `-x ** 2` is `-(x ** 2)`; `**` is right-associative.
    assert_eq!(text("-3 ** 2"), "-9");
    assert_eq!(text("2 ** 3 ** 2"), "512.0");
}

#[test]
fn unary_operators() {
    assert_eq!(text("-a.n"), "0");
    assert_eq!(ev_with("-a.n", r#"{"n": 3}"#).unwrap(), json!(-3));
    assert_eq!(ev("-'foo'"), json!("-foo"));
    assert_eq!(ev("-'-foo'"), json!("+foo"));
    assert_eq!(text("-'12'"), "-12");
    assert_eq!(text("+'12'"), r#""12""#);
    assert_eq!(text("!1"), r#""""#);
    assert_eq!(text("!0"), "1");
    assert_eq!(text("!!'x'"), "1");
}

#[test]
fn string_operators() {
    assert_eq!(ev("'ab' x 3"), json!("ababab"));
    assert_eq!(ev("'ab' x 0"), json!(""));
    assert_eq!(ev("'ab' x -1"), json!(""));
    assert_eq!(ev("'ab' x 2.9"), json!("abab"));
    assert_eq!(ev("1 . 2"), json!("12"));
    assert_eq!(ev("concat('a', 1, null, 2.50)"), json!("a12.5"));
}

#[test]
fn comparisons_numeric_and_string() {
    for (src, want) in [
        ("1 < 2", "1"),
        ("2 < 1", r#""""#),
        ("2 <= 2", "1"),
        ("3 >= 4", r#""""#),
        ("10 == 10.0", "1"),
        ("10 != 10.0", r#""""#),
        ("'abc' == 0", "1"),
        ("10 < 9", r#""""#),
        ("'10' lt '9'", "1"),
        ("'b' gt 'a'", "1"),
        ("'a' le 'a'", "1"),
        ("'a' ge 'b'", r#""""#),
        ("'10' eq '10.0'", r#""""#),
        ("'x' ne 'y'", "1"),
        ("null == 0", "1"),
        ("null eq ''", "1"),
    ] {
        assert_eq!(text(src), want, "{src}");
    }
}

#[test]
fn boolean_eq_quirk_left_operand_only() {
    // Appendix D.5
    assert_eq!(text("true eq 'true'"), "1");
    assert_eq!(text("false eq 'false'"), "1");
    assert_eq!(text("true eq 'false'"), r#""""#);
    assert_eq!(text("false eq '0'"), "1");
    assert_eq!(text("false eq ''"), "1");
    assert_eq!(text("'false' eq false"), r#""""#);
    assert_eq!(text("'1' eq true"), "1");
    assert_eq!(text("true ne 'true'"), r#""""#);
}

#[test]
fn logical_operators_return_operands() {
    assert_eq!(text("0 && 5"), "0");
    assert_eq!(text("3 && 5"), "5");
    assert_eq!(text("0 || 5"), "5");
    assert_eq!(text("'' || 0"), "0");
    assert_eq!(text("3 || 5"), "3");
    assert_eq!(text("null // 'd'"), r#""d""#);
    assert_eq!(text("0 // 'd'"), "0");
    assert_eq!(text("0 and 5"), "0");
    assert_eq!(text("0 or 5"), "5");
    assert_eq!(text("1 xor 1"), r#""""#);
    assert_eq!(text("1 xor 0"), "1");
    assert_eq!(text("not 1 == 2"), "1");
    // Short-circuit: the right side is not evaluated.
    assert_eq!(text("0 && 1 / 0"), "0");
    assert_eq!(text("1 || 1 / 0"), "1");
    assert_eq!(text("1 // 1 / 0"), "1");
}

#[test]
fn precedence_as_in_perl() {
    assert_eq!(text("1 + 2 * 3"), "7");
    assert_eq!(text("(1 + 2) * 3"), "9");
    assert_eq!(text("10 - 2 - 3"), "5");
    // `.` and `+` share a level, left-assoc: ('a' . 1) + 2 = 'a1' + 2.
    assert_eq!(text("'a' . 1 + 2"), "2.0");
    assert_eq!(text("1 + 1 == 2 && 'ok'"), r#""ok""#);
    assert_eq!(text("0 || 2 and 3"), "3");
}

#[test]
fn functions() {
    assert_eq!(ev("defined(a.x)"), json!(""));
    assert_eq!(ev("defined(0)"), json!(1));
    assert_eq!(ev("array(1, 'two', null)"), json!([1, "two", null]));
    assert_eq!(
        ev("object('a': 1, 'b', 2, 3: true)"),
        json!({"a": 1, "b": 2, "3": true})
    );
    assert_eq!(
        ev("tojson(object('b': 1, 'a': array(1.5, 'x')))"),
        json!(r#"{"a":[1.5,"x"],"b":1}"#)
    );
    assert_eq!(ev("tojson(array((8 / 2)))"), json!("[4.0]"));
    assert_eq!(ev("fromjson('{\"k\": [1, 2]}')"), json!({"k": [1, 2]}));
    assert_eq!(ev("fromjson('[]')"), json!([]));
    assert_eq!(ev("b64encode('hello')"), json!("aGVsbG8="));
    assert_eq!(ev("b64decode('aGVsbG8=')"), json!("hello"));
    assert_eq!(ev("md5('abc')"), json!("900150983cd24fb0d6963f7d28e17f72"));
    assert_eq!(ev("md5b64('abc')"), json!("kAFQmDzST7DWlj99KOF/cg"));
    assert_eq!(
        ev_with("keys(a.o)", r#"{"o": {"x": 1, "y": 2}}"#).unwrap(),
        json!(["x", "y"])
    );
    assert_eq!(
        ev_with("values(a.o)", r#"{"o": {"x": 1, "y": 2}}"#).unwrap(),
        json!([1, 2])
    );
    assert_eq!(
        ev_with("array(list(a.l), 3)", r#"{"l": [1, 2]}"#).unwrap(),
        json!([1, 2, 3])
    );
    // Latin-1 semantics (Appendix D.7).
    assert_eq!(ev("b64encode('\u{e9}')"), json!("6Q=="));
    assert_eq!(ev("b64decode('6Q==')"), json!("\u{e9}"));
}

#[test]
fn variables_paths_and_indexes() {
    let args =
        r#"{"l": [10, 20, {"k": "deep"}], "o": {"x": {"y": [1, 2]}, "odd key": 5}, "s": "abc"}"#;
    assert_eq!(ev_with("a.l[0]", args).unwrap(), json!(10));
    assert_eq!(ev_with("a.l[-1].k", args).unwrap(), json!("deep"));
    assert_eq!(ev_with("a.l[-4]", args).unwrap(), json!(null));
    assert_eq!(ev_with("a.l[7]", args).unwrap(), json!(null));
    assert_eq!(ev_with("a.o.x.y[1]", args).unwrap(), json!(2));
    assert_eq!(ev_with("a.o.'odd key'", args).unwrap(), json!(5));
    assert_eq!(ev_with("a.nope.deeper.still", args).unwrap(), json!(null));
    assert_eq!(ev_with("a.s . 'y'", args).unwrap(), json!("abcy"));
}

#[test]
fn perl_string_of_json_values() {
    assert_eq!(to_perl_string(&json!(1.5)).unwrap(), "1.5");
    assert_eq!(to_perl_string(&json!(2.0)).unwrap(), "2");
    assert_eq!(to_perl_string(&json!(null)).unwrap(), "");
    assert_eq!(to_perl_string(&json!(true)).unwrap(), "1");
    assert_eq!(to_perl_string(&json!(false)).unwrap(), "0");
    assert!(to_perl_string(&json!([1])).is_err());
}
