//! Expressions, literals, assignments and io-specs as the parser sees them (docs/JCL.md §1.2,
//! §1.4, §1.5, §1.6): Perl precedence and associativity, raw strings, JSON-decoded
//! defaults, lhs resolution, compound and magic assignments.

use jobcenter_engine::compile::{Catalog, Stage};
use jobcenter_engine::syntax::ast::*;
use serde_json::json;

/// An S-expression view of an expression.
fn show(e: &Expr) -> String {
    match &e.kind {
        ExprKind::Lit(l) => lit(l),
        ExprKind::Var(v) => var(v),
        ExprKind::Unary(op, a) => format!("({} {})", op.spelling(), show(a)),
        ExprKind::Binary(op, a, b) => format!("({} {} {})", op.spelling(), show(a), show(b)),
        ExprKind::Match(a, re) => format!("(~ {} /{re}/)", show(a)),
        ExprKind::Call(f, args) => {
            let a: Vec<String> = args.iter().map(show).collect();
            format!("{}({})", f.name(), a.join(" "))
        }
    }
}

fn lit(l: &Literal) -> String {
    match l {
        Literal::Null => "null".into(),
        Literal::Bool(b) => b.to_string(),
        Literal::Int(i) => i.to_string(),
        Literal::UInt(u) => format!("{u}u"),
        Literal::Float(f) => format!("{f:?}f"),
        Literal::Str(s) => format!("{s:?}"),
    }
}

fn var(v: &Var) -> String {
    let mut s = v.obj.letter().to_string();
    for p in &v.path {
        s.push('.');
        s.push_str(&p.name);
        if let Some(i) = p.index {
            s.push_str(&format!("[{i}]"));
        }
    }
    s
}

fn parse_ok(src: &str) -> Definition {
    jobcenter_engine::parse("t.wf", src).unwrap_or_else(|e| panic!("{e:#?}"))
}

fn body(def: &Definition) -> &Block {
    match def {
        Definition::Workflow(w) => w.body.as_ref().unwrap(),
        _ => panic!("not a workflow"),
    }
}

fn let_items(src_lines: &str) -> Vec<MapItem> {
    let src = format!("workflow t:\nin:\n    x number\ndo:\n    let:\n{src_lines}");
    let def = parse_ok(&src);
    match &body(&def)[0].kind {
        StmtKind::Let { map, .. } => match &map.body {
            MapBody::Items(items) => items.clone(),
            MapBody::Perl(_) => panic!("perl"),
        },
        k => panic!("{k:?}"),
    }
}

fn rhs(text: &str) -> String {
    let items = let_items(&format!("        y = {text}\n"));
    match &items[0] {
        MapItem::Assign(a) => show(&a.value),
        m => panic!("{m:?}"),
    }
}

#[test]
fn perl_precedence_and_associativity() {
    let cases = [
        ("1 + 2 * 3", "(+ 1 (* 2 3))"),
        ("(1 + 2) * 3", "(* (+ 1 2) 3)"),
        ("2 ** 3 ** 2", "(** 2 (** 3 2))"),
        ("-a.x ** 2", "(- (** a.x 2))"),
        ("-2 ** 2", "(- (** 2 2))"),
        ("2 ** -1", "(** 2 -1)"),
        ("10 - 3 - 2", "(- (- 10 3) 2)"),
        ("a.x-1", "(- a.x 1)"),
        ("a.x + -1", "(+ a.x -1)"),
        ("!a.x && a.y", "(&& (! a.x) a.y)"),
        ("not a.x == 1", "(not (== a.x 1))"),
        ("not a.x == 1 and a.y", "(and (not (== a.x 1)) a.y)"),
        (
            "a.x || a.y and a.z or a.w",
            "(or (and (|| a.x a.y) a.z) a.w)",
        ),
        ("a.x or a.y xor a.z", "(xor (or a.x a.y) a.z)"),
        ("a.x // 'd' || 0", "(|| (// a.x \"d\") 0)"),
        ("a.x && a.y || a.z", "(|| (&& a.x a.y) a.z)"),
        ("a.x . 'y' x 3", "(. a.x (x \"y\" 3))"),
        ("1 < 2 == 3 > 4", "(== (< 1 2) (> 3 4))"),
        (
            "'a' lt 'b' eq 'c' ge 'd'",
            "(eq (lt \"a\" \"b\") (ge \"c\" \"d\"))",
        ),
        ("a.x ~ /^ab+$/ . 'z'", "(. (~ a.x /^ab+$/) \"z\")"),
        ("a.x * 2 ~ /4/", "(* a.x (~ 2 /4/))"),
        ("7 % 3 / 2 * 1", "(* (/ (% 7 3) 2) 1)"),
        ("+a.x", "(+ a.x)"),
        ("!!a.x", "(! (! a.x))"),
        ("1 + not 2 and 3", "(and (+ 1 (not 2)) 3)"),
        ("a.x ne 'q'", "(ne a.x \"q\")"),
        ("a.x != 1", "(!= a.x 1)"),
        ("a.x <= 1", "(<= a.x 1)"),
        ("a.x >= 1", "(>= a.x 1)"),
    ];
    for (src, want) in cases {
        assert_eq!(rhs(src), want, "{src}");
    }
}

#[test]
fn variables_and_quoted_parts() {
    assert_eq!(rhs("a.b[1].c"), "a.b[1].c");
    assert_eq!(rhs("v.arr[-1]"), "v.arr[-1]");
    assert_eq!(rhs("v.\"2nd\""), "v.2nd");
    assert_eq!(rhs("a.x.'y'"), "a.x.y");
    assert_eq!(rhs("a.x . 'y'"), "(. a.x \"y\")");
    assert_eq!(rhs("e._error.msg"), "e._error.msg");
    assert_eq!(rhs("v.if"), "v.if");
    assert_eq!(rhs("t.x"), "t.x");
}

#[test]
fn number_literals() {
    assert_eq!(rhs("0x1F"), "31");
    assert_eq!(rhs("0X1f"), "31");
    assert_eq!(rhs(".5"), "0.5f");
    assert_eq!(rhs("-0.25"), "-0.25f");
    assert_eq!(rhs("3.0"), "3.0f");
    assert_eq!(rhs("42"), "42");
    assert_eq!(rhs("-42"), "-42");
    // Leading zero: octal like the original (documented choice).
    assert_eq!(rhs("010"), "8");
    assert_eq!(rhs("0"), "0");
    assert_eq!(rhs("9223372036854775807"), "9223372036854775807");
    assert_eq!(rhs("9223372036854775808"), "9223372036854775808u");
    assert_eq!(rhs("-9223372036854775808"), "-9223372036854775808");
    assert_eq!(rhs("18446744073709551616"), "1.8446744073709552e19f");
}

#[test]
fn boolean_and_null_literals() {
    for (src, want) in [
        ("true", "true"),
        ("TRUE", "true"),
        ("false", "false"),
        ("FALSE", "false"),
        ("null", "null"),
        ("NULL", "null"),
    ] {
        assert_eq!(rhs(src), want);
    }
}

#[test]
fn jcl_c19_string_literals_are_raw() {
    let items = let_items(
        "        r = object(\"dq\": \"a\\tb\\\"c\", \"bs\": \"x\\\\y\", \"dqs\": \"it's\", \"sq\": 'say \"hi\"', \"nl\": \"l1\\nl2\")\n",
    );
    let MapItem::Assign(a) = &items[0] else {
        panic!()
    };
    let ExprKind::Call(Func::Object, args) = &a.value.kind else {
        panic!()
    };
    let vals: Vec<String> = args
        .iter()
        .map(|e| match &e.kind {
            ExprKind::Lit(Literal::Str(s)) => s.clone(),
            k => panic!("{k:?}"),
        })
        .collect();
    assert_eq!(
        vals,
        [
            "dq",
            r#"a\tb\"c"#,
            "bs",
            r"x\y",
            "dqs",
            "it's",
            "sq",
            "say \"hi\"",
            "nl",
            r"l1\nl2"
        ]
    );
    // docs/JCL.md says "6 chars" but lists 7 (a \ t b \ " c); the JSON text it gives has 7.
    assert_eq!(vals[1].chars().count(), 7);
}

#[test]
fn functions_and_aliases() {
    assert_eq!(rhs("to_json(a.x)"), "tojson(a.x)");
    assert_eq!(rhs("encode_json(a.x)"), "tojson(a.x)");
    assert_eq!(rhs("decode_json('[]')"), "fromjson(\"[]\")");
    assert_eq!(rhs("md5_hex(a.x)"), "md5(a.x)");
    assert_eq!(rhs("md5_base64(a.x)"), "md5b64(a.x)");
    assert_eq!(rhs("encode_base64(a.x)"), "b64encode(a.x)");
    assert_eq!(rhs("decode_base64(a.x)"), "b64decode(a.x)");
    assert_eq!(rhs("object(\"a\": 1, \"b\", 2)"), "object(\"a\" 1 \"b\" 2)");
    assert_eq!(
        rhs("concat(a.x, 'y', (1 + 2))"),
        "concat(a.x \"y\" (+ 1 2))"
    );
    assert_eq!(rhs("array( 3 , 4 )"), "array(3 4)");
    assert_eq!(rhs("defined(e.job_id)"), "defined(e.job_id)");
    assert_eq!(rhs("tostring(1 + 2)"), "tostring((+ 1 2))");
    assert_eq!(rhs("keys(a.o)"), "keys(a.o)");
    assert_eq!(rhs("values(a.o)"), "values(a.o)");
    assert_eq!(rhs("tonumber('3') + 1"), "(+ tonumber(\"3\") 1)");
}

#[test]
fn assignment_lhs_resolution_and_operators() {
    let items = let_items(
        "        x = 1\n        foo.bar = 1\n        t.tmp = 1\n        v.o.k = 1\n        v.o.\"odd key\" = 2\n        x[0] = 1;\n        '2-factor' = 1\n        s .= 'b'\n        n += 5\n        n -= 3\n        n *= 2\n        n /= 4\n        u //= 'u'\n        z ||= 'z'\n        arr ,= 1\n        q = ifdef(v.q)\n",
    );
    let got: Vec<(String, &'static str, bool)> = items
        .iter()
        .map(|i| match i {
            MapItem::Assign(a) => (var(&a.target), a.op.spelling(), a.ifdef),
            m => panic!("{m:?}"),
        })
        .collect();
    let want = [
        ("v.x", "="),
        ("v.foo.bar", "="),
        ("t.tmp", "="),
        ("v.o.k", "="),
        ("v.o.odd key", "="),
        ("v.x[0]", "="),
        ("v.2-factor", "="),
        ("v.s", ".="),
        ("v.n", "+="),
        ("v.n", "-="),
        ("v.n", "*="),
        ("v.n", "/="),
        ("v.u", "//="),
        ("v.z", "||="),
        ("v.arr", ",="),
        ("v.q", "="),
    ];
    for (i, (t, op)) in want.iter().enumerate() {
        assert_eq!((got[i].0.as_str(), got[i].1), (*t, *op), "item {i}");
    }
    assert!(got[15].2, "ifdef flag");
    let MapItem::Assign(a) = &items[15] else {
        panic!()
    };
    assert_eq!(show(&a.value), "v.q");
    // Lines of the items are their source lines.
    let MapItem::Assign(first) = &items[0] else {
        panic!()
    };
    assert_eq!(first.line, 6);
}

#[test]
fn input_output_and_wfomap_targets_and_magic() {
    let src = "workflow t:\nin:\n    x number\nout:\n    r number\nwfomap:\n    r = v.r\n    t.k = 1\n    <*>\ndo:\n    call c_add:\n        counter = v.x\n        i.step = 2\n        <counter,step>\n    into:\n        r = o.counter\n        <*>\n";
    let def = parse_ok(src);
    let Definition::Workflow(w) = &def else {
        panic!()
    };
    let MapBody::Items(wfo) = &w.wfomap.as_ref().unwrap().body else {
        panic!()
    };
    let MapItem::Assign(a) = &wfo[0] else {
        panic!()
    };
    assert_eq!(var(&a.target), "o.r");
    let MapItem::Assign(a) = &wfo[1] else {
        panic!()
    };
    assert_eq!(var(&a.target), "t.k");
    assert_eq!(
        wfo[2],
        MapItem::Magic(Magic {
            line: 9,
            names: None
        })
    );
    let StmtKind::Call(c) = &w.body.as_ref().unwrap()[0].kind else {
        panic!()
    };
    assert_eq!(c.target, "c_add");
    assert_eq!(c.inputs.kind, MapKind::Input);
    let MapBody::Items(imap) = &c.inputs.body else {
        panic!()
    };
    let MapItem::Assign(a) = &imap[0] else {
        panic!()
    };
    assert_eq!(var(&a.target), "i.counter");
    let MapItem::Assign(a) = &imap[1] else {
        panic!()
    };
    assert_eq!(var(&a.target), "i.step");
    assert_eq!(
        imap[2],
        MapItem::Magic(Magic {
            line: 14,
            names: Some(vec!["counter".into(), "step".into()])
        })
    );
    let omap = c.outputs.as_ref().unwrap();
    assert_eq!(omap.kind, MapKind::Output);
    let MapBody::Items(o) = &omap.body else {
        panic!()
    };
    let MapItem::Assign(a) = &o[0] else { panic!() };
    assert_eq!(var(&a.target), "v.r");
    assert_eq!(show(&a.value), "o.counter");
}

fn io(def: &Definition) -> (&Vec<IoSpec>, &Vec<IoSpec>) {
    let Definition::Workflow(w) = def else {
        panic!()
    };
    (w.inputs.as_ref().unwrap(), w.outputs.as_ref().unwrap())
}

#[test]
fn jcl_c20_default_literal_forms() {
    let src = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/jcl/k21.wf"
    ))
    .unwrap();
    let def = parse_ok(&src);
    let (ins, _) = io(&def);
    let d: Vec<_> = ins.iter().map(|s| s.default.clone().unwrap()).collect();
    assert_eq!(
        d,
        vec![json!("\"+\""), json!(false), json!(null), json!(-2.5)]
    );
    let src = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/jcl/k50.wf"
    ))
    .unwrap();
    let def = parse_ok(&src);
    let (ins, _) = io(&def);
    let d: Vec<_> = ins.iter().map(|s| s.default.clone().unwrap()).collect();
    assert_eq!(d, vec![json!("a\tb"), json!("x\\y"), json!("l1\nl2")]);
}

#[test]
fn io_specs() {
    let src = "workflow t:\nin:\n    n number 10;\n    'odd name' \"string\" 'dflt'\n    o object\nout:\n    r number optional\n    s string\ndo:\n    return\n";
    let def = parse_ok(src);
    let (ins, outs) = io(&def);
    assert_eq!(ins[0].name, "n");
    assert_eq!(ins[0].default, Some(json!(10)));
    assert_eq!(
        (ins[1].name.as_str(), ins[1].ty.as_str()),
        ("odd name", "string")
    );
    assert_eq!(ins[1].default, Some(json!("dflt")));
    assert_eq!(ins[2].default, None);
    assert!(outs[0].optional);
    assert!(!outs[1].optional);
    assert_eq!(outs[1].line, 8);
}

#[test]
fn jcl_c27_wfenv_values_are_strings_and_config_numbers() {
    let src = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/jcl/k27b.wf"
    ))
    .unwrap();
    let mut cat = Catalog::new();
    let ac = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/jcl/c_echo.ac"
    ))
    .unwrap();
    cat.compile("c_echo.ac", &ac).unwrap();
    let r = cat.compile("k27b.wf", &src).unwrap();
    let w = cat.workflow(r.id).unwrap();
    assert_eq!(
        serde_json::Value::Object(w.wfenv.clone()),
        json!({"greeting": "hi", "num": "42", "flag": "true"})
    );
    assert_eq!(w.max_depth, Some(5));
    assert_eq!(w.max_steps, 99);
    assert_eq!(w.config["max_depth"], json!(5));
    let a = cat.latest_action("c_echo").unwrap();
    assert_eq!(a.env.len(), 3);
    assert_eq!(a.env[1].default, Some(json!("hallo")));
}

#[test]
fn statements_of_every_stage_parse_into_the_ast() {
    let src = "workflow t:\nin:\n    x number\nlocks:\n    slot _ manual\n    abc k46 inherit manual\ndo:\n    lock slot a.x\n    unlock slot 'v'\n    sleep '2 seconds'\n    wait_for_lock slot:\n        value = a.x\n        wait = 'no'\n    goto end\n    label end\n    subscribe:\n        name = 'n'\n    raise_event:\n        event = object('a': 1)\n    wait_for_event:\n        events = array('n')\n    into:\n        ev = o.event\n    unsubscribe:\n        name = 'n'\n    detachflow w:\n        x = 1\n    map w using a.xs:\n        x = e._v\n    collect:\n        r ,= o.y\n    split:\n        callflow w:\n            x = 1\n        into:\n            r = o.y\n        map w using v.ys:\n            x = 2\n    interface iface:\n        w1\n        w2\n    call a.which:\n        x = 1\n    into:\n        r = o.y\n";
    let def = parse_ok(src);
    let Definition::Workflow(w) = &def else {
        panic!()
    };
    let kws: Vec<&str> = w
        .body
        .as_ref()
        .unwrap()
        .iter()
        .map(|s| s.kind.keyword())
        .collect();
    assert_eq!(
        kws,
        [
            "lock",
            "unlock",
            "sleep",
            "wait_for_lock",
            "goto",
            "label",
            "subscribe",
            "raise_event",
            "wait_for_event",
            "unsubscribe",
            "detachflow",
            "map",
            "split",
            "interface"
        ]
    );
    let locks = w.locks.as_ref().unwrap();
    assert_eq!(
        (locks[0].value.as_str(), locks[0].manual, locks[0].inherit),
        ("_", true, false)
    );
    assert_eq!(
        (locks[1].value.as_str(), locks[1].manual, locks[1].inherit),
        ("k46", true, true)
    );
    let StmtKind::Split { items } = &w.body.as_ref().unwrap()[12].kind else {
        panic!()
    };
    assert!(matches!(&items[0], SplitItem::Callflow(c) if c.outputs.is_some()));
    assert!(
        matches!(&items[1], SplitItem::Map(m) if var(&m.using) == "v.ys" && m.collect.is_none())
    );
    let StmtKind::InterfaceCall {
        names, call_line, ..
    } = &w.body.as_ref().unwrap()[13].kind
    else {
        panic!()
    };
    assert_eq!(names.len(), 2);
    assert_eq!(*call_line, 42);
}

#[test]
fn ast_round_trips_through_serde() {
    let src = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/jcl/k17.wf"
    ))
    .unwrap();
    let def = parse_ok(&src);
    let text = serde_json::to_string(&def).unwrap();
    let back: Definition = serde_json::from_str(&text).unwrap();
    assert_eq!(back, def);
}

#[test]
fn perl_blocks_are_kept_verbatim_in_the_ast() {
    let src = "workflow t:\nin:\n    x number\ndo:\n    if [c[ $a{x} > 1 ]c]:\n        let:\n            [[\n    $v{y} = [1,2];\n            ]]\n";
    let def = parse_ok(src);
    let Definition::Workflow(w) = &def else {
        panic!()
    };
    let StmtKind::If { first, .. } = &w.body.as_ref().unwrap()[0].kind else {
        panic!()
    };
    assert_eq!(
        first.cond,
        Code::Perl(PerlBlock {
            line: 5,
            tag: "c".into(),
            text: " $a{x} > 1 ".into()
        })
    );
    let StmtKind::Let { map, .. } = &first.body[0].kind else {
        panic!()
    };
    let MapBody::Perl(p) = &map.body else {
        panic!()
    };
    assert_eq!(p.text, "\n    $v{y} = [1,2];\n            ");
    let _ = Stage::C;
}
