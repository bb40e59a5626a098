//! Layout (docs/JCL.md §1.3), comments and line ends (§1.2): what the indentation rules accept
//! and reject.

use jobcenter_engine::syntax::ast::*;

fn parse(src: &str) -> Result<Definition, Vec<(u32, String)>> {
    jobcenter_engine::parse("t.wf", src)
        .map_err(|e| e.into_iter().map(|e| (e.line, e.message)).collect())
}

fn body(src: &str) -> Block {
    match parse(src) {
        Ok(Definition::Workflow(w)) => w.body.unwrap(),
        other => panic!("{other:?}"),
    }
}

fn err(src: &str) -> (u32, String) {
    match parse(src) {
        Ok(d) => panic!("parsed unexpectedly: {d:?}"),
        Err(mut e) => e.remove(0),
    }
}

const HEAD: &str = "workflow t:\nin:\n    x number\ndo:\n";

fn kws(b: &Block) -> Vec<&'static str> {
    b.iter().map(|s| s.kind.keyword()).collect()
}

#[test]
fn tabs_count_eight_and_mix_with_spaces() {
    let src = format!("{HEAD}\tlet:\n\t\tx = 1\n        let:\n\t        y = 2\n    \t    z = 3\n");
    // `\t` = 8, 8 spaces = 8; `\t` + 8 spaces = 16; 4 spaces + tab + 4 spaces = 16.
    let b = body(&src);
    assert_eq!(kws(&b), ["let", "let"]);
    let StmtKind::Let { map, .. } = &b[1].kind else {
        panic!()
    };
    let MapBody::Items(items) = &map.body else {
        panic!()
    };
    assert_eq!(items.len(), 2);
}

#[test]
fn all_lines_of_a_block_must_have_the_same_width() {
    let src = "workflow t:\nin:\n  a number\n   b number\ndo:\n    return\n";
    assert_eq!(
        err(src),
        (4, "syntax error: inconsistent indentation".to_string())
    );
    let src = format!("{HEAD}    let:\n        x = 1\n      y = 2\n");
    assert_eq!(
        err(&src),
        (7, "syntax error: inconsistent indentation".to_string())
    );
}

#[test]
fn dedent_to_a_width_matching_no_level_is_an_error() {
    let src = format!("{HEAD}    if a.x:\n        return\n      return\n");
    assert_eq!(
        err(&src),
        (7, "syntax error: inconsistent indentation".to_string())
    );
}

#[test]
fn comments_and_blank_lines_anywhere() {
    let src = format!(
        "# leading comment\n\n{HEAD}# col 0 comment inside the body\n    if a.x:   \n\n            # deeper comment\n        let:\n          # comment in a map\n            y = 1   # trailing\n\n  # odd indentation\n    else:\n        return # bye\n#[[\n  block comment\n      with: stuff\n#]]\n    #[x[ tagged #]x]\n    let:\n        z = 2 ; # semicolon then comment\n# trailing comment without newline"
    );
    let b = body(&src);
    assert_eq!(kws(&b), ["if", "let"]);
    let StmtKind::If { else_block, .. } = &b[0].kind else {
        panic!()
    };
    assert!(else_block.is_some());
    assert_eq!(b[1].line, 23);
}

#[test]
fn a_comment_after_a_header_colon_is_an_error() {
    let src = format!("{HEAD}    let: # c\n        y = 1\n");
    assert_eq!(
        err(&src),
        (5, "syntax error: no comment allowed after ':'".to_string())
    );
    let src = "workflow t: # c\nin:\n    x number\n";
    assert_eq!(err(src).0, 1);
}

#[test]
fn a_byte_order_mark_is_ignored() {
    let src = format!("\u{feff}{HEAD}    return\n");
    assert_eq!(kws(&body(&src)), ["return"]);
}

#[test]
fn crlf_line_ends_parse_like_lf() {
    let lf = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/jcl/k23.wf"
    ))
    .unwrap();
    let crlf = lf.replace('\n', "\r\n");
    assert_eq!(parse(&crlf).unwrap(), parse(&lf).unwrap());
}

#[test]
fn until_is_indented_less_than_the_body() {
    for w in ["    ", " ", "      "] {
        let src = format!(
            "{HEAD}    repeat:\n        let:\n            i += 1\n{w}until v.i > 3\n    return\n"
        );
        let b = body(&src);
        assert_eq!(kws(&b), ["repeat", "return"], "until at width {}", w.len());
        let StmtKind::Repeat { until_line, .. } = &b[0].kind else {
            panic!()
        };
        assert_eq!(*until_line, 8);
    }
    // Not indented at all, or as deep as the body: errors.
    let src = format!("{HEAD}    repeat:\n        return\nuntil v.i\n");
    assert!(err(&src).1.contains("'until'"));
    let src = format!("{HEAD}    repeat:\n        return\n        until v.i\n");
    assert!(err(&src).1.contains("unknown statement until"));
}

#[test]
fn keyword_spacing() {
    let b = body(&format!(
        "{HEAD}    if(a.x):\n        return\n    assert(a.x > 0):\n        'no'\n    let :\n        y = 1\n    call  c_add :\n        counter=1\n    while  a.x :\n        return\n"
    ));
    assert_eq!(kws(&b), ["if", "assert", "let", "call", "while"]);
    // `while` needs a blank; `elsif(` too.
    assert!(err(&format!("{HEAD}    while(a.x):\n        return\n"))
        .1
        .contains("blank after while"));
    assert!(err(&format!("{HEAD}    callc_add:\n        x = 1\n"))
        .1
        .contains("unknown statement callc_add"));
}

#[test]
fn continuation_keywords_sit_at_the_statement_width() {
    let ok = format!(
        "{HEAD}    if a.x:\n        return\n\n    # between\n    elsif a.y:\n        return\n    else:\n        return\n    try:\n        return\n    catch:\n        return\n    case a.k:\n    # comment\n    when a, 'b' , \"c\":\n        return\n\n    when d:\n        return\n    else:\n        return\n"
    );
    let b = body(&ok);
    assert_eq!(kws(&b), ["if", "try", "case"]);
    let StmtKind::Case {
        whens, else_block, ..
    } = &b[2].kind
    else {
        panic!()
    };
    assert_eq!(whens[0].labels, ["a", "b", "c"]);
    assert_eq!(whens[1].labels, ["d"]);
    assert!(else_block.is_some());
    // `else` indented like the body is a stray statement of the body.
    let bad = format!("{HEAD}    if a.x:\n        return\n        else:\n            return\n");
    assert_eq!(
        err(&bad),
        (7, "syntax error: unknown statement else".to_string())
    );
    // `catch` is required after `try`.
    let bad = format!("{HEAD}    try:\n        return\n    return\n");
    assert!(err(&bad).1.contains("'catch:'"));
}

#[test]
fn statements_take_no_semicolon_but_assignments_may() {
    assert!(err(&format!("{HEAD}    return;\n"))
        .1
        .contains("expected end of line"));
    let b = body(&format!("{HEAD}    let:\n        y = 1;\n"));
    assert_eq!(kws(&b), ["let"]);
}

#[test]
fn sections_start_in_column_zero_in_any_order() {
    let src = "do:\n    return\n";
    assert!(err(&format!(
        "workflow t:\n{src}in:\n    x number\n  out:\n    r number\n"
    ))
    .1
    .contains("column 0"));
    let d = parse(
        "# c\nworkflow t:\ndo:\n    return\nout:\n    r number\nin:\n    x number\n\n# end\n",
    )
    .unwrap();
    let Definition::Workflow(w) = d else { panic!() };
    assert!(w.inputs.is_some() && w.outputs.is_some() && w.body.is_some());
}

#[test]
fn one_definition_per_file() {
    let src = "action a:\nin:\n    x number\naction b:\nin:\n    x number\n";
    assert!(err(src).1.starts_with("syntax error"));
    assert!(err("").1.contains("'workflow', 'action' or 'procedure'"));
    assert!(err("    workflow t:\n").1.contains("column 0"));
}

#[test]
fn duplicate_sections_are_rejected() {
    let src = "workflow t:\nin:\n    x number\nin:\n    y number\ndo:\n    return\n";
    assert_eq!(err(src), (4, "duplicate section in".to_string()));
}

#[test]
fn env_is_an_action_section_only() {
    assert!(err("workflow t:\nenv:\n    x number\n").1.contains("wfenv"));
    let d = parse("action a:\nenv:\n    job_id number\nin:\n    x number\n").unwrap();
    let Definition::Action(a) = d else { panic!() };
    assert_eq!(a.env.unwrap()[0].name, "job_id");
}

#[test]
fn unterminated_things() {
    assert!(err(&format!("{HEAD}    let:\n        y = 'abc\n"))
        .1
        .contains("unterminated string"));
    // An unclosed block comment is a line comment (the PEG falls back to LINE_COMMENT).
    assert_eq!(
        kws(&body(&format!("{HEAD}#[[ never closed\n    return\n"))),
        ["return"]
    );
    assert!(err(&format!("{HEAD}    let:\n        [[ never closed\n"))
        .1
        .contains("unterminated perl block"));
}
