//! Compile-time checks of docs/JCL.md §1.10 and the compile errors of Appendix A, plus the
//! syntax errors §1.4 lists as "not JCL". Each test asserts the exact message and line.

use jobcenter_engine::compile::{Catalog, Stage};

const C_ADD: &str =
    "action c_add:\nin:\n    counter number\n    step number 1\nout:\n    counter number\n";

fn catalog(stage: Stage) -> Catalog {
    let mut cat = Catalog::with_stage(stage);
    cat.register_locktype("slot");
    cat.compile("c_add.ac", C_ADD).unwrap();
    cat
}

/// Compile at Stage C and return `(line, message)` of every error.
fn errs(src: &str) -> Vec<(u32, String)> {
    errs_at(Stage::C, src)
}

fn errs_at(stage: Stage, src: &str) -> Vec<(u32, String)> {
    match catalog(stage).compile("t.wf", src) {
        Ok(r) => panic!("compiled unexpectedly: {r:?}"),
        Err(e) => e.into_iter().map(|e| (e.line, e.message)).collect(),
    }
}

fn ok(src: &str) {
    if let Err(e) = catalog(Stage::C).compile("t.wf", src) {
        panic!("{e:#?}");
    }
}

fn one(src: &str) -> (u32, String) {
    let e = errs(src);
    assert_eq!(e.len(), 1, "{e:#?}");
    e.into_iter().next().unwrap()
}

/// A workflow with `in: x number` around a `do:` body.
fn wf(body: &str) -> String {
    format!("workflow t:\nin:\n    x number\nout:\n    r number optional\ndo:\n{body}")
}

#[test]
fn jcl_c18_invalid_top_level_o_for_omap() {
    let src = wf("    let:\n        v.o.k = 1\n        o.k = 1\n");
    assert_eq!(one(&src), (9, "invalid top level o for omap".to_string()));
}

#[test]
fn invalid_top_level_for_imap_and_wfomap() {
    let src = wf("    call c_add:\n        v.counter = 1\n");
    assert_eq!(one(&src), (8, "invalid top level v for imap".to_string()));
    let src = "workflow t:\nin:\n    x number\nwfomap:\n    v.x = 1\ndo:\n    return\n";
    assert_eq!(one(src), (5, "invalid top level v for wfomap".to_string()));
    // Temporaries are fine everywhere, and multi-letter first parts get the default target.
    ok(&wf(
        "    call c_add:\n        t.tmp = 1\n        i.counter = t.tmp\n        foo.bar = 2\n",
    ));
}

#[test]
fn invalid_top_level_for_right_hand_side() {
    let src = wf("    let:\n        y = x.foo\n");
    assert_eq!(
        one(&src),
        (8, "invalid top level x for right hand side".to_string())
    );
}

#[test]
fn objects_not_available_in_context_are_rejected() {
    assert_eq!(
        one(&wf("    call c_add:\n        counter = o.x\n")),
        (8, "o is not available in imap".to_string())
    );
    assert_eq!(
        one(&wf(
            "    call c_add:\n        counter = 1\n    into:\n        y = i.counter\n"
        )),
        (10, "i is not available in omap".to_string())
    );
    assert_eq!(
        one(&wf("    let:\n        y = o.x\n")),
        (8, "o is not available in let".to_string())
    );
    assert_eq!(
        one(&wf("    if i.x:\n        return\n")),
        (7, "i is not available in condition".to_string())
    );
}

#[test]
fn jcl_c25_magic_assignment_in_let_is_rejected() {
    let (line, msg) = one(&wf("    let:\n        <*>\n"));
    assert_eq!(line, 8);
    assert!(
        msg.starts_with("magic assignments are not allowed in let"),
        "{msg}"
    );
}

#[test]
fn unknown_function() {
    assert_eq!(
        one(&wf("    let:\n        y = frobnicate(1)\n")),
        (8, "unknown function frobnicate".to_string())
    );
}

#[test]
fn function_argument_rules() {
    assert_eq!(
        one(&wf("    let:\n        y = tostring(1, 2)\n")),
        (
            8,
            "function tostring takes exactly one argument".to_string()
        )
    );
    let (line, msg) = one(&wf("    let:\n        y = array(a.x + 1)\n"));
    assert_eq!(line, 8);
    assert!(
        msg.starts_with("arguments of array() must be single terms"),
        "{msg}"
    );
    ok(&wf(
        "    let:\n        y = array((a.x + 1), -a.x, !a.x, 'k')\n",
    ));
    assert_eq!(
        one(&wf("    let:\n        y = object('a': 1, 'b')\n")),
        (
            8,
            "object() needs an even number of arguments (key/value pairs)".to_string()
        )
    );
    // `f()` has no argument at all: a syntax error.
    assert!(one(&wf("    let:\n        y = tostring()\n"))
        .1
        .starts_with("syntax error"));
}

#[test]
fn ifdef_only_as_whole_rhs() {
    ok(&wf("    let:\n        y = ifdef(a.x)\n"));
    let (_, msg) = one(&wf("    let:\n        y = 1 + ifdef(a.x)\n"));
    assert!(
        msg.starts_with("ifdef(...) must be the whole right-hand side"),
        "{msg}"
    );
    let (_, msg) = one(&wf("    let:\n        y = ifdef(a.x) . 'x'\n"));
    assert!(
        msg.starts_with("ifdef(...) must be the whole right-hand side"),
        "{msg}"
    );
}

#[test]
fn workflow_needs_in_or_out() {
    let src = "workflow t:\nwfomap:\n    r = 1\ndo:\n    return\n";
    assert_eq!(
        one(src),
        (1, "either interface or in/out required".to_string())
    );
}

#[test]
fn interface_conflicts_with_in_out() {
    let src = "workflow t:\ninterface c_add:\nin:\n    x number\ndo:\n    return\n";
    assert_eq!(
        one(src),
        (2, "interface conlicts with in/out/env".to_string())
    );
    let src = "workflow t:\ninterface nothere:\ndo:\n    return\n";
    assert_eq!(one(src), (2, "interface nothere not found?".to_string()));
    // A valid interface copies in/out of the latest version of the named definition.
    let mut cat = catalog(Stage::C);
    let r = cat
        .compile("t.wf", "workflow t:\ninterface c_add:\ndo:\n    return\n")
        .unwrap();
    let w = cat.workflow(r.id).unwrap();
    assert_eq!(w.inputs.len(), 2);
    assert_eq!(w.outputs[0].name, "counter");
}

#[test]
fn unknown_type() {
    let src = "workflow t:\nin:\n    x number\n    y frobtype\ndo:\n    return\n";
    assert_eq!(one(src), (4, "unknown type frobtype".to_string()));
}

#[test]
fn multiple_roles() {
    let src = "workflow t:\nin:\n    x number\nrole:\n    admin\n    other\ndo:\n    return\n";
    assert_eq!(
        one(src),
        (6, "multiple roles not supported (yet?)".to_string())
    );
}

#[test]
fn config_keys() {
    let src = "workflow t:\nin:\n    x number\nconfig:\n    max_steps = 10\n    retry = 1\ndo:\n    return\n";
    assert_eq!(
        one(src),
        (6, "retry is not allowed as config for workflow".to_string())
    );
    let src = "action a:\nin:\n    x number\nconfig:\n    max_steps = 10\n";
    let e = catalog(Stage::C).compile("a.ac", src).unwrap_err();
    assert_eq!(
        (e[0].line, e[0].message.as_str()),
        (5, "max_steps is not allowed as config for action")
    );
}

#[test]
fn config_and_wfenv_lines_must_be_key_equals_literal() {
    let src = "workflow t:\nin:\n    x number\nconfig:\n    max_steps = 1 + 2\ndo:\n    return\n";
    assert_eq!(
        one(src),
        (5, "invalid config max_steps = 1 + 2".to_string())
    );
    let src = "workflow t:\nin:\n    x number\nwfenv:\n    g .= 'x'\ndo:\n    return\n";
    assert_eq!(one(src), (5, "invalid wfenv g .= 'x'".to_string()));
    let src = "workflow t:\nin:\n    x number\nwfenv:\n    a.b = 1\ndo:\n    return\n";
    assert_eq!(one(src), (5, "invalid wfenv a.b = 1".to_string()));
}

#[test]
fn action_config_values_are_checked() {
    let src = "action a:\nin:\n    x number\nconfig:\n    retry = 'not json'\n";
    let e = catalog(Stage::C).compile("a.ac", src).unwrap_err();
    assert!(
        e[0].message
            .starts_with("invalid config retry = 'not json'"),
        "{}",
        e[0].message
    );
    let src = "action a:\nin:\n    x number\nconfig:\n    retry = '{\"tries\": 3, \"interval\": \"5 seconds\"}'\n    timeout = '30 minutes'\n    retryable = true\n    filter = '[\"domain\"]'\n";
    let mut cat = catalog(Stage::C);
    let r = cat.compile("a.ac", src).unwrap();
    let a = cat.action(r.id).unwrap();
    assert_eq!(a.retry.as_ref().unwrap().tries, 3);
    assert_eq!(
        a.retry.as_ref().unwrap().interval.as_deref(),
        Some("5 seconds")
    );
    assert_eq!(a.timeout.as_deref(), Some("30 minutes"));
    assert!(a.retryable);
    assert_eq!(a.filter.as_deref(), Some(&["domain".to_string()][..]));
    assert_eq!(a.config["retry"]["tries"], 3);
}

#[test]
fn lock_checks() {
    let head = "workflow t:\nin:\n    x number\nlocks:\n";
    assert_eq!(
        one(&format!("{head}    nolock k\ndo:\n    return\n")),
        (5, "no locktype nolock?".to_string())
    );
    assert_eq!(
        one(&format!(
            "{head}    slot _ manual\ndo:\n    lock other 'x'\n"
        )),
        (7, "unkown lock other".to_string())
    );
    assert_eq!(
        one(&format!("{head}    slot k\ndo:\n    unlock slot 'x'\n")),
        (7, "lock type slot not declared manual".to_string())
    );
    ok(&format!(
        "{head}    slot _ manual inherit\ndo:\n    lock slot a.x\n    unlock slot a.x\n"
    ));
}

#[test]
fn goto_and_labels() {
    assert_eq!(
        one(&wf("    goto nowhere\n")),
        (7, "goto: unknown label nowhere".to_string())
    );
    assert_eq!(
        one(&wf("    label l\n    label l\n")),
        (8, "duplicate label l".to_string())
    );
}

#[test]
fn call_targets_must_exist() {
    assert_eq!(
        one(&wf("    call nothere:\n        x = 1\n")),
        (7, "action nothere not found?".to_string())
    );
    // callflow/map/detachflow only accept workflows.
    let src = wf("    split:\n        callflow c_add:\n            counter = 1\n");
    assert_eq!(one(&src), (8, "action c_add not found?".to_string()));
    let src = wf("    detachflow c_add:\n        counter = 1\n");
    assert_eq!(one(&src), (7, "action c_add not found?".to_string()));
}

#[test]
fn perl_blocks_are_rejected_with_a_clear_message() {
    assert_eq!(
        one(&wf("    let:\n        [[ $v{x} = 1 ]]\n")),
        (8, "perl blocks are not supported".to_string())
    );
    assert_eq!(
        one(&wf("    if [[ 1 ]]:\n        return\n")),
        (7, "perl blocks are not supported".to_string())
    );
    assert_eq!(
        one(&wf("    raise_error [pl[ \"x\" ]pl]\n")),
        (7, "perl blocks are not supported".to_string())
    );
    // Multi-line Perl blocks keep the line of their opening bracket.
    assert_eq!(
        one(&wf(
            "    let:\n        [[\n          $v{x} = 1;\n        ]]\n    return\n"
        )),
        (8, "perl blocks are not supported".to_string())
    );
    // The empty Perl block is the documented way to call without inputs: accepted.
    ok(&wf("    call c_add:\n        [[ ]]\n"));
}

#[test]
fn stage_gating_messages() {
    let e = errs_at(Stage::A, &wf("    sleep 5\n"));
    assert_eq!(
        e,
        vec![(7, "statement sleep not supported yet".to_string())]
    );
    let e = errs_at(Stage::A, &wf("    let:\n        y = a.x ~ /^1/\n"));
    assert_eq!(
        e,
        vec![(8, "regex match ~ /.../ not supported yet".to_string())]
    );
    let e = errs_at(Stage::B, &wf("    let:\n        y = array(list(a.x))\n"));
    assert_eq!(e, vec![(8, "function list not supported yet".to_string())]);
    let e = errs_at(Stage::B, "procedure p:\nin:\n    x number\n");
    assert_eq!(
        e,
        vec![(1, "procedure definitions not supported yet".to_string())]
    );
    let e = errs_at(
        Stage::B,
        "workflow t:\nin:\n    x number\nrole:\n    admin\ndo:\n    return\n",
    );
    assert_eq!(e, vec![(5, "section role not supported yet".to_string())]);
}

#[test]
fn empty_blocks_are_rejected() {
    let (line, msg) = one(&wf("    if a.x:\n    return\n"));
    assert_eq!(line, 8);
    assert!(
        msg.starts_with("syntax error: expected an indented block"),
        "{msg}"
    );
    let (_, msg) = one("workflow t:\nin:\n    x number\ndo:\n");
    assert!(
        msg.starts_with("syntax error: expected an indented block"),
        "{msg}"
    );
    // A call without input map lines is an error too (use `[[ ]]`).
    let (_, msg) = one(&wf("    call c_add:\n    return\n"));
    assert!(
        msg.contains("expected an indented assignment list"),
        "{msg}"
    );
}

#[test]
fn single_quote_escape_is_rejected() {
    let (line, msg) = one(&wf("    let:\n        y = 'it\\'s'\n"));
    assert_eq!(line, 8);
    assert!(
        msg.contains("\\' in a single-quoted string is not supported"),
        "{msg}"
    );
}

#[test]
fn io_spec_option_rules() {
    let src = "workflow t:\nin:\n    x number optional\ndo:\n    return\n";
    assert!(one(src).1.starts_with("optional is only allowed in out"));
    let src = "workflow t:\nin:\n    x number\nout:\n    r number 5\ndo:\n    return\n";
    assert_eq!(
        one(src),
        (5, "default value 5 not allowed in out".to_string())
    );
}

#[test]
fn defaults_must_be_json_literals() {
    // Appendix D.9 and §1.2: invalid JSON escapes and non-JSON number forms.
    for d in [
        "\"a\\0b\"",
        "\"say \\\"x\\\"\"",
        "TRUE",
        "NULL",
        "010",
        ".5",
        "-.5",
        "0x1F",
    ] {
        let src = format!("workflow t:\nin:\n    x string {d}\ndo:\n    return\n");
        let (line, msg) = one(&src);
        assert_eq!(line, 3);
        assert!(
            msg.starts_with("invalid input syntax for type json"),
            "{d}: {msg}"
        );
    }
}

#[test]
fn not_jcl_syntax_errors() {
    // §1.4 "Not supported by JCL (verified syntax errors)" and Appendix D.8.
    for rhs in [
        "a[\"x\"]",
        "a.b[a.x]",
        "a.b[1][2]",
        "1e3",
        "a.x ? 1 : 2",
        "1 <=> 2",
        "a.x =~ /x/",
        "'a' cmp 'b'",
        "a.x ~ /x/i",
        "a",
        "fromjson('{}').y",
        "- 1",
        "foo",
        "09",
    ] {
        let src = wf(&format!("    let:\n        y = {rhs}\n"));
        let e = errs(&src);
        assert_eq!(e.len(), 1, "{rhs}: {e:?}");
        assert_eq!(e[0].0, 8, "{rhs}");
        assert!(
            e[0].1.starts_with("syntax error") || e[0].1.starts_with("illegal octal digit"),
            "{rhs}: {}",
            e[0].1
        );
    }
}

#[test]
fn relational_chains_are_rejected() {
    let (_, msg) = one(&wf("    let:\n        y = 1 < a.x < 3\n"));
    assert!(msg.contains("cannot be chained"), "{msg}");
    let (_, msg) = one(&wf("    let:\n        y = 1 == a.x == 3\n"));
    assert!(msg.contains("cannot be chained"), "{msg}");
}

#[test]
fn several_resolution_errors_are_reported_together() {
    let e = errs(&wf(
        "    let:\n        y = nope(1)\n        z = x.y\n    call c_add:\n        o.k = 1\n",
    ));
    let lines: Vec<u32> = e.iter().map(|e| e.0).collect();
    assert_eq!(lines, vec![8, 9, 11], "{e:?}");
}

#[test]
fn filename_must_start_with_definition_name() {
    let dir = std::env::temp_dir().join(format!("jcl-syntax-errors-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("other.wf"), wf("    return\n")).unwrap();
    std::fs::write(dir.join("t_v2.wf"), wf("    return\n")).unwrap();
    let mut cat = Catalog::new();
    let r = cat.load_dir(&dir);
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(r.loaded.len(), 1);
    assert_eq!(r.errors.len(), 1);
    assert_eq!(
        r.errors[0].message,
        "workflow filename other.wf does not match workflow name t"
    );
    assert_eq!(r.errors[0].line, 1);
}

#[test]
fn syntax_errors_stop_at_the_first_and_carry_the_line() {
    let src = wf("    let:\n        y = 1\n    bogus statement\n    let:\n        z = (\n");
    let e = errs(&src);
    assert_eq!(
        e,
        vec![(9, "syntax error: unknown statement bogus".to_string())]
    );
}
