//! Every example of docs/JCL.md compiles with the real compiler and gives what the text says.
//!
//! The conventions of the document (its section "How to read the examples"):
//! - a fenced block whose info string starts with `jcl` is one definition; all blocks are
//!   compiled in document order into one catalog (Stage C, lock type `account`, version tags
//!   `stable` and `beta`); `jcl tags=stable` compiles the block with version tags;
//! - the bullet `- compile error: `TEXT`` right after a block says the block does not
//!   compile and one error message contains TEXT;
//! - bullets after a workflow block are runs of that workflow:
//!   ``- `INARGS` → `OUTARGS` `` (the final output object; `<J>`-style placeholders in
//!   strings match any digits, numbers compare by value), ``- `INARGS` → rejected: `MSG` ``
//!   (`create_job` fails with MSG; MSG ending in `…` is a prefix), optionally prefixed by
//!   ``vtag `TAG`: ``;
//! - ``- `EXPR` ⇒ `VALUE` `` anywhere gives the value of an expression, computed as
//!   `let: r = EXPR` in a workflow whose output is `v.r`; ``⇒ error `TEXT` `` says the
//!   evaluation fails with a message containing TEXT.
//!
//! The example actions are served by the workers below (`add`, `fail`, `flaky`, `slow`,
//! `echo`), exactly as the document describes them.

#[path = "runtime_support.rs"]
mod support;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use jobcenter_engine::backend::{Backend, CreateJob, JobId};
use jobcenter_engine::compile::{Catalog, Stage};
use jobcenter_engine::{Engine, EngineConfig};
use serde_json::{json, Value};
use support::{job_request, matches, serve_actions, wait_finished_within};

/// One fenced `jcl` block and what the text after it expects.
#[derive(Debug)]
struct Block {
    line: usize,
    src: String,
    tags: Vec<String>,
    compile_error: Option<String>,
    runs: Vec<Run>,
}

/// A run of a workflow: inargs and the expected outcome.
#[derive(Debug)]
struct Run {
    line: usize,
    vtag: Option<String>,
    inargs: String,
    expect: Expect,
}

#[derive(Debug)]
enum Expect {
    Output(String),
    Rejected(String),
}

/// An expression example.
#[derive(Debug)]
struct ExprExample {
    line: usize,
    expr: String,
    value: Result<String, String>,
}

/// The text between the first pair of backticks of `s` and the rest after it.
fn backticked(s: &str) -> Option<(&str, &str)> {
    let s = s.strip_prefix('`')?;
    let end = s.find('`')?;
    Some((&s[..end], &s[end + 1..]))
}

fn parse_doc(text: &str) -> (Vec<Block>, Vec<ExprExample>) {
    let mut blocks: Vec<Block> = Vec::new();
    let mut exprs = Vec::new();
    let mut lines = text.lines().enumerate();
    // Bullets after a block belong to it until the next heading or block.
    let mut current: Option<usize> = None;
    while let Some((i, line)) = lines.next() {
        let n = i + 1;
        if let Some(info) = line.strip_prefix("```") {
            if info == "jcl" || info.starts_with("jcl ") {
                let tags = info
                    .split_whitespace()
                    .find_map(|w| w.strip_prefix("tags="))
                    .map(|t| t.split(':').map(str::to_string).collect())
                    .unwrap_or_default();
                let mut src = String::new();
                for (_, l) in lines.by_ref() {
                    if l.starts_with("```") {
                        break;
                    }
                    src.push_str(l);
                    src.push('\n');
                }
                blocks.push(Block {
                    line: n,
                    src,
                    tags,
                    compile_error: None,
                    runs: Vec::new(),
                });
                current = Some(blocks.len() - 1);
            } else if !info.is_empty() || line == "```" {
                // Another fenced block: skip it, it ends the bullets of the previous one.
                for (_, l) in lines.by_ref() {
                    if l.starts_with("```") {
                        break;
                    }
                }
                current = None;
            }
            continue;
        }
        if line.starts_with('#') {
            current = None;
            continue;
        }
        let Some(bullet) = line.strip_prefix("- ") else {
            continue;
        };
        if let Some(rest) = bullet.strip_prefix("compile error: ") {
            let (msg, _) = backticked(rest).unwrap_or_else(|| panic!("line {n}: bad bullet"));
            let b = current.unwrap_or_else(|| panic!("line {n}: compile error without block"));
            blocks[b].compile_error = Some(msg.to_string());
            continue;
        }
        let (vtag, bullet) = match bullet.strip_prefix("vtag ") {
            Some(rest) => {
                let (tag, rest) = backticked(rest).unwrap_or_else(|| panic!("line {n}: vtag"));
                let rest = rest
                    .strip_prefix(": ")
                    .unwrap_or_else(|| panic!("line {n}: vtag without ': '"));
                (Some(tag.to_string()), rest)
            }
            None => (None, bullet),
        };
        let Some((first, rest)) = backticked(bullet) else {
            continue;
        };
        if let Some(rest) = rest.strip_prefix(" → ") {
            let b = current.unwrap_or_else(|| panic!("line {n}: a run without a block"));
            let expect = match rest.strip_prefix("rejected: ") {
                Some(r) => Expect::Rejected(backticked(r).expect("rejected text").0.into()),
                None => Expect::Output(
                    backticked(rest)
                        .unwrap_or_else(|| panic!("line {n}: run without output"))
                        .0
                        .into(),
                ),
            };
            blocks[b].runs.push(Run {
                line: n,
                vtag,
                inargs: first.to_string(),
                expect,
            });
        } else if let Some(rest) = rest.strip_prefix(" ⇒ ") {
            let value = match rest.strip_prefix("error ") {
                Some(r) => Err(backticked(r).expect("error text").0.to_string()),
                None => Ok(backticked(rest)
                    .unwrap_or_else(|| panic!("line {n}: ⇒ without value"))
                    .0
                    .to_string()),
            };
            exprs.push(ExprExample {
                line: n,
                expr: first.to_string(),
                value,
            });
        }
    }
    (blocks, exprs)
}

/// The example workers of docs/JCL.md ("The example actions").
fn worker_answer(
    action: &str,
    job: JobId,
    inargs: &Value,
    env: &Value,
    attempts: &mut HashMap<JobId, i64>,
) -> Option<Value> {
    match action {
        "add" => {
            let sum = inargs["counter"].as_f64().unwrap_or(0.0) + inargs["step"].as_f64()?;
            Some(if sum.fract() == 0.0 && sum.abs() < 1e15 {
                json!({ "counter": sum as i64 })
            } else {
                json!({ "counter": sum })
            })
        }
        "fail" => Some(match &inargs["class"] {
            Value::Null => json!({ "error": inargs["msg"] }),
            class => json!({ "error": { "msg": inargs["msg"], "class": class } }),
        }),
        "flaky" => {
            let n = attempts.entry(job).or_insert(0);
            *n += 1;
            let failures = inargs["failures"].as_i64().unwrap_or(0);
            Some(if *n <= failures {
                json!({ "error": { "class": "soft", "msg": format!("attempt {n} failed") } })
            } else {
                json!({ "attempts": *n, "tries": env.get("tries").cloned().unwrap_or(json!(0)) })
            })
        }
        "echo" => Some(json!({ "inargs": inargs, "env": env })),
        // `slow` never answers.
        _ => None,
    }
}

const WORKER: &str = "docworker";
const ACTIONS: [&str; 5] = ["add", "fail", "flaky", "slow", "echo"];
const WHO: &str = "theCustomer";

async fn start_workers(engine: &Arc<Engine>) {
    let mut attempts = HashMap::new();
    serve_actions(
        engine,
        WORKER,
        WHO,
        &ACTIONS,
        move |action, job, inargs, env| worker_answer(action, job, inargs, env, &mut attempts),
    )
    .await;
}

/// Create a job and wait (at most 20 s) for its final output; `Err(message)` if rejected.
async fn run_job(
    engine: &Arc<Engine>,
    wf: &str,
    vtag: Option<String>,
    inargs: Value,
) -> Result<Value, String> {
    let mut events = engine.subscribe();
    let id = engine
        .create_job(CreateJob {
            vtag,
            who: WHO.into(),
            ..job_request(wf, inargs)
        })
        .await
        .map_err(|e| e.message)?;
    Ok(
        wait_finished_within(engine, &mut events, id, Duration::from_secs(20))
            .await
            .unwrap_or_else(|e| json!({ "test harness": e })),
    )
}

/// The name of the definition in a JCL block (`workflow NAME:` / `action NAME:`).
fn definition(src: &str) -> Option<(&str, &str)> {
    src.lines().find_map(|l| {
        let (kind, rest) = l.split_once(' ')?;
        matches!(kind, "workflow" | "action")
            .then(|| rest.trim_end().strip_suffix(':'))
            .flatten()
            .map(|name| (kind, name))
    })
}

fn expr_workflow(n: usize, expr: &str) -> String {
    format!("workflow docexpr_{n}:\nin:\n    x number 0\nwfomap:\n    r = v.r\ndo:\n    let:\n        r = {expr}\n")
}

#[tokio::test]
async fn every_example_of_jcl_md_compiles_and_runs_as_documented() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/JCL.md");
    let text = std::fs::read_to_string(path).expect("docs/JCL.md is readable");
    let (blocks, exprs) = parse_doc(&text);
    assert!(blocks.len() >= 40, "only {} jcl blocks found", blocks.len());
    assert!(
        exprs.len() >= 40,
        "only {} expression examples",
        exprs.len()
    );

    let mut failures = Vec::new();
    let mut cat = Catalog::with_stage(Stage::C);
    cat.register_locktype("account");
    cat.register_vtag("stable");
    cat.register_vtag("beta");
    // Compile every block, in document order.
    let mut to_run = Vec::new();
    for b in &blocks {
        let file = format!("docs/JCL.md:{}", b.line);
        let res = cat.compile_tagged(&file, &b.src, &b.tags);
        match (&b.compile_error, res) {
            (None, Ok(r)) => {
                if !b.runs.is_empty() {
                    to_run.push((r.name.clone(), b));
                }
            }
            (None, Err(errs)) => failures.push(format!(
                "{file}: does not compile: {}",
                errs.iter()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
                    .join("; ")
            )),
            (Some(want), Ok(_)) => {
                failures.push(format!("{file}: compiles, but the text says `{want}`"))
            }
            (Some(want), Err(errs)) => {
                if !errs.iter().any(|e| e.to_string().contains(want.as_str())) {
                    failures.push(format!(
                        "{file}: errors {:?} do not contain `{want}`",
                        errs.iter().map(|e| e.to_string()).collect::<Vec<_>>()
                    ));
                }
            }
        }
        if b.compile_error.is_none() && !b.runs.is_empty() {
            if let Some((kind, _)) = definition(&b.src) {
                assert_eq!(kind, "workflow", "{file}: runs after an action");
            }
        }
    }
    for (i, ex) in exprs.iter().enumerate() {
        if let Err(errs) = cat.compile(&format!("docexpr_{i}"), &expr_workflow(i, &ex.expr)) {
            failures.push(format!(
                "docs/JCL.md:{}: `{}` does not compile: {}",
                ex.line,
                ex.expr,
                errs.iter()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
                    .join("; ")
            ));
        }
    }

    let engine = Engine::new(
        cat,
        jobcenter_store::MemoryStore::new(),
        EngineConfig::default(),
    )
    .start();
    start_workers(&engine).await;

    // Run everything concurrently (some examples sleep or wait for timeouts).
    let mut jobs = Vec::new();
    for (name, b) in &to_run {
        for r in &b.runs {
            let inargs: Value = serde_json::from_str(&r.inargs)
                .unwrap_or_else(|e| panic!("docs/JCL.md:{}: inargs: {e}", r.line));
            let engine = engine.clone();
            let (name, vtag, line) = (name.clone(), r.vtag.clone(), r.line);
            let expect = match &r.expect {
                Expect::Output(o) => Ok(serde_json::from_str::<Value>(o)
                    .unwrap_or_else(|e| panic!("docs/JCL.md:{line}: output: {e}"))),
                Expect::Rejected(m) => Err(m.clone()),
            };
            jobs.push(tokio::spawn(async move {
                let got = run_job(&engine, &name, vtag, inargs).await;
                let ok = match (&expect, &got) {
                    (Ok(want), Ok(v)) => matches(want, v),
                    (Err(want), Err(m)) => match want.strip_suffix('…') {
                        Some(prefix) => m.starts_with(prefix),
                        None => want == m,
                    },
                    _ => false,
                };
                (!ok).then(|| format!("docs/JCL.md:{line}: expected {expect:?}, got {got:?}"))
            }));
        }
    }
    for (i, ex) in exprs.iter().enumerate() {
        let engine = engine.clone();
        let (line, expr, want) = (ex.line, ex.expr.clone(), ex.value.clone());
        jobs.push(tokio::spawn(async move {
            let got = run_job(&engine, &format!("docexpr_{i}"), None, json!({})).await;
            let ok = match (&want, &got) {
                (Ok(w), Ok(out)) => {
                    let w: Value = serde_json::from_str(w)
                        .unwrap_or_else(|e| panic!("docs/JCL.md:{line}: value: {e}"));
                    out.get("r").is_some_and(|r| matches(&w, r))
                }
                (Err(w), Ok(out)) => out["error"]["msg"]
                    .as_str()
                    .is_some_and(|m| m.contains(w.as_str())),
                _ => false,
            };
            (!ok).then(|| format!("docs/JCL.md:{line}: `{expr}` expected {want:?}, got {got:?}"))
        }));
    }
    for j in jobs {
        if let Some(f) = j.await.expect("example task") {
            failures.push(f);
        }
    }
    assert!(
        failures.is_empty(),
        "{} example(s) of docs/JCL.md do not do what the text says:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
