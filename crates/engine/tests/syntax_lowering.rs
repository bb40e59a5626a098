//! Lowering to the task graph (docs/JCL.md §2.6): shapes, `on_error` targets, call binding, and
//! exact step counts (C15/C16 depend on them) checked with a scripted walk of the graph.

use jobcenter_engine::compile::*;
use std::path::PathBuf;
use std::sync::Arc;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/jcl")
}

/// A Stage C catalog with every fixture loaded.
fn loaded() -> Catalog {
    let mut cat = Catalog::with_stage(Stage::C);
    cat.register_locktype("slot");
    cat.register_locktype("abc");
    let r = cat.load_dir(fixtures());
    assert!(r.is_ok(), "{:?}", r.errors);
    cat
}

fn wf(cat: &Catalog, name: &str) -> Arc<Workflow> {
    cat.lookup_workflow(name, None).unwrap().clone()
}

fn compile(src: &str) -> Arc<Workflow> {
    let mut cat = loaded();
    let r = cat
        .compile("t.wf", src)
        .unwrap_or_else(|e| panic!("{e:#?}"));
    cat.workflow(r.id).unwrap().clone()
}

/// One line per task: `id kind -> next [extra] !on_error`.
fn shape(w: &Workflow) -> Vec<String> {
    w.tasks
        .iter()
        .map(|t| {
            let extra = match &t.kind {
                TaskKind::Branch {
                    true_next,
                    negate,
                    role,
                    ..
                } => format!(
                    " true->{true_next}{} {role:?}",
                    if *negate { " negated" } else { "" }
                ),
                TaskKind::Switch { table, .. } => format!(" {table:?}"),
                TaskKind::NoOp(r) => format!(" {r:?}"),
                TaskKind::Call(c) => format!(" {:?} {} {:?}", c.target.kind, c.target.name, c.mode),
                TaskKind::ReapChild { call_task, .. } => format!(" of {call_task}"),
                _ => String::new(),
            };
            let err = t.on_error.map(|e| format!(" !{e}")).unwrap_or_default();
            format!("{} {} -> {}{extra}{err}", t.id, t.kind.name(), t.next)
        })
        .collect()
}

/// What the scripted walk did.
#[derive(Debug, PartialEq)]
enum Outcome {
    /// Reached `End` after this many steps.
    Finished(u32),
    /// A `raise_error` was not caught, after this many steps.
    Error(u32),
    /// The step limit was exceeded (the step that would be `max_steps + 1`).
    StepLimit(u32),
}

/// Walk the graph like the runtime counts steps (§2.7): every task entered after `start`
/// is one step. Branch outcomes come from `branch`, switch values from `switch`; every
/// `raise_error` raises (caught if the task has an `on_error`).
fn walk(
    w: &Workflow,
    mut branch: impl FnMut(usize) -> bool,
    mut switch: impl FnMut(usize) -> String,
) -> Outcome {
    let mut steps = 0u32;
    let mut cur = w.tasks[w.start].next;
    loop {
        steps += 1;
        if i64::from(steps) > w.max_steps {
            return Outcome::StepLimit(steps);
        }
        let t = &w.tasks[cur];
        cur = match &t.kind {
            TaskKind::End => return Outcome::Finished(steps),
            TaskKind::Branch {
                true_next, negate, ..
            } => {
                if branch(t.id) != *negate {
                    *true_next
                } else {
                    t.next
                }
            }
            TaskKind::Switch { table, .. } => {
                let v = switch(t.id);
                table
                    .iter()
                    .find(|(l, _)| *l == v)
                    .map(|(_, to)| *to)
                    .unwrap_or(t.next)
            }
            TaskKind::RaiseError { .. } => match t.on_error {
                Some(c) => c,
                None => return Outcome::Error(steps),
            },
            TaskKind::Start => panic!("start entered twice"),
            _ => t.next,
        };
    }
}

/// Branch oracle: `n` times true, then false (per call, regardless of which branch).
fn times(n: usize) -> impl FnMut(usize) -> bool {
    let mut left = n;
    move |_| {
        if left > 0 {
            left -= 1;
            true
        } else {
            false
        }
    }
}

fn no_switch(_: usize) -> String {
    panic!("no switch expected")
}

#[test]
fn jcl_c16_step_count_is_4_plus_2x() {
    let cat = loaded();
    let w = wf(&cat, "k16");
    assert_eq!(w.max_steps, 10);
    assert_eq!(
        shape(&w),
        [
            "0 start -> 1",
            "1 eval -> 2",
            "2 branch -> 4 true->3 While",
            "3 eval -> 2",
            "4 noop -> 5 EndWhile",
            "5 end -> 5",
        ]
    );
    for x in 0..=3 {
        assert_eq!(
            walk(&w, times(x), no_switch),
            Outcome::Finished(4 + 2 * x as u32),
            "x = {x}"
        );
    }
    // x = 4 needs 12 steps: the 11th exceeds max_steps = 10.
    assert_eq!(walk(&w, times(4), no_switch), Outcome::StepLimit(11));
}

#[test]
fn jcl_c15_default_max_steps_99() {
    let cat = loaded();
    let w = wf(&cat, "k15");
    assert_eq!(w.max_steps, DEFAULT_MAX_STEPS);
    assert_eq!(walk(&w, |_| true, no_switch), Outcome::StepLimit(100));
}

#[test]
fn assert_is_branch_raise_endif_and_passing_costs_two_steps() {
    let cat = loaded();
    let w = wf(&cat, "k26");
    assert_eq!(
        shape(&w),
        [
            "0 start -> 1",
            "1 eval -> 2",
            "2 branch -> 4 true->3 negated Assert",
            "3 raise_error -> 4",
            "4 noop -> 5 EndIf",
            "5 eval -> 6",
            "6 end -> 6",
        ]
    );
    // The oracle answers the condition itself; the branch negates it.
    assert_eq!(walk(&w, |_| true, no_switch), Outcome::Finished(5));
    assert_eq!(walk(&w, |_| false, no_switch), Outcome::Error(3));
    let TaskKind::RaiseError { message } = &w.tasks[3].kind else {
        panic!()
    };
    assert!(matches!(
        message,
        jobcenter_engine::syntax::ast::Code::Expr(_)
    ));
}

#[test]
fn try_has_no_entry_task_and_sets_on_error() {
    let cat = loaded();
    let w = wf(&cat, "k44");
    assert_eq!(
        shape(&w),
        [
            "0 start -> 8",
            "1 noop -> 9 EndTry",
            "2 eval -> 1",
            "3 noop -> 1 EndTry !2",
            "4 eval -> 5 !2",
            "5 branch -> 7 true->6 If !2",
            "6 raise_error -> 7 !2",
            "7 noop -> 3 EndIf !2",
            "8 raise_error -> 3 !4",
            "9 end -> 9",
        ]
    );
    // x = 1: inner raise (1), catch let (2), branch (3), endif (4), inner endtry (5),
    // outer endtry (6), end (7).
    assert_eq!(walk(&w, |_| false, no_switch), Outcome::Finished(7));
    // x = 2: ..., branch true (3), re-raise (4) caught by the outer catch: let (5),
    // outer endtry (6), end (7).
    assert_eq!(walk(&w, |_| true, no_switch), Outcome::Finished(7));
}

#[test]
fn if_elsif_else_chain_nests_with_own_endifs() {
    let cat = loaded();
    let w = wf(&cat, "k43");
    assert_eq!(
        shape(&w),
        [
            "0 start -> 1",
            "1 eval -> 2",
            "2 branch -> 15 true->3 While",
            "3 call -> 4 Action c_add Blocking",
            "4 branch -> 7 true->5 If",
            "5 eval -> 6",
            "6 noop -> 2 EndIf",
            "7 branch -> 10 true->8 If",
            "8 eval -> 9",
            "9 noop -> 6 EndIf",
            "10 branch -> 14 true->11 If",
            "11 eval -> 12",
            "12 noop -> 16 Return",
            "13 noop -> 9 EndIf",
            "14 eval -> 13",
            "15 noop -> 16 EndWhile",
            "16 end -> 16",
        ]
    );
    // n = 0: let, while-branch false, endwhile, end.
    assert_eq!(walk(&w, |_| false, no_switch), Outcome::Finished(4));
    // One iteration taking the first elsif: while(t) call if(f) elsif(t) eval endif endif,
    // while(f) endwhile end; plus the let = 11.
    let mut answers = vec![true, false, true, false].into_iter();
    assert_eq!(
        walk(&w, move |_| answers.next().unwrap(), no_switch),
        Outcome::Finished(11)
    );
}

#[test]
fn repeat_runs_the_body_first() {
    let cat = loaded();
    let w = wf(&cat, "k23");
    assert_eq!(
        shape(&w),
        [
            "0 start -> 1",
            "1 eval -> 2",
            "2 eval -> 3",
            "3 branch -> 2 true->4 Until",
            "4 noop -> 5 EndRepeat",
            "5 end -> 5",
        ]
    );
    // until true at once: let, body, until, end-noop, end.
    assert_eq!(walk(&w, |_| true, no_switch), Outcome::Finished(5));
}

#[test]
fn case_switches_to_the_when_block_or_else() {
    let cat = loaded();
    let w = wf(&cat, "k22");
    assert_eq!(
        shape(&w),
        [
            "0 start -> 1",
            r#"1 switch -> 4 [("foo", 2), ("bar", 3), ("baz", 3), ("3", 3)]"#,
            "2 eval -> 5",
            "3 eval -> 5",
            "4 eval -> 5",
            "5 noop -> 6 EndCase",
            "6 end -> 6",
        ]
    );
    assert_eq!(walk(&w, no_branch, |_| "baz".into()), Outcome::Finished(4));
    assert_eq!(walk(&w, no_branch, |_| "quux".into()), Outcome::Finished(4));
    // Without else, no match goes straight to endcase.
    let w = compile(
        "workflow t:\nin:\n    x number\ndo:\n    case a.x:\n    when a:\n        return\n",
    );
    assert_eq!(
        shape(&w),
        [
            "0 start -> 1",
            "1 switch -> 3 [(\"a\", 2)]",
            "2 noop -> 4 Return",
            "3 noop -> 4 EndCase",
            "4 end -> 4"
        ]
    );
    assert_eq!(walk(&w, no_branch, |_| "zz".into()), Outcome::Finished(3));
}

fn no_branch(_: usize) -> bool {
    panic!("no branch expected")
}

#[test]
fn return_goes_to_end_and_a_return_only_body_costs_two_steps() {
    let cat = loaded();
    let w = wf(&cat, "k02");
    assert_eq!(
        shape(&w),
        ["0 start -> 1", "1 noop -> 2 Return", "2 end -> 2"]
    );
    assert_eq!(walk(&w, no_branch, no_switch), Outcome::Finished(2));
}

#[test]
fn goto_and_label_are_noops_wired_to_the_label() {
    let cat = loaded();
    let w = wf(&cat, "k24");
    assert_eq!(
        shape(&w),
        [
            "0 start -> 1",
            "1 eval -> 2",
            "2 noop -> 6 Goto(\"middle\")",
            "3 noop -> 4 Label(\"first\")",
            "4 eval -> 5",
            "5 noop -> 12 Return",
            "6 noop -> 7 Label(\"middle\")",
            "7 eval -> 8",
            "8 branch -> 10 true->9 If",
            "9 noop -> 3 Goto(\"first\")",
            "10 noop -> 11 EndIf",
            "11 eval -> 12",
            "12 end -> 12",
        ]
    );
}

#[test]
fn split_is_calls_then_wait_then_reaps_in_source_order() {
    let cat = loaded();
    let w = wf(&cat, "k12");
    assert_eq!(
        shape(&w),
        [
            "0 start -> 1",
            "1 call -> 2 Workflow k10child NonBlocking",
            "2 call -> 3 Workflow k10child NonBlocking",
            "3 call -> 4 Workflow k10child NonBlocking",
            "4 wait_for_children -> 5",
            "5 reap_child -> 6 of 1",
            "6 reap_child -> 7 of 2",
            "7 reap_child -> 8 of 3",
            "8 end -> 8",
        ]
    );
    // Output maps live on the reap tasks.
    let TaskKind::Call(c) = &w.tasks[1].kind else {
        panic!()
    };
    assert!(c.outputs.is_none());
    let TaskKind::ReapChild { outputs, .. } = &w.tasks[5].kind else {
        panic!()
    };
    assert!(outputs.is_some());
    // A lone map is a split with one map item.
    let w = wf(&cat, "k41");
    assert_eq!(
        shape(&w),
        [
            "0 start -> 1",
            "1 eval -> 2",
            "2 call -> 3 Workflow k10child NonBlocking",
            "3 wait_for_children -> 4",
            "4 reap_child -> 5 of 2",
            "5 end -> 5",
        ]
    );
    let TaskKind::Call(c) = &w.tasks[2].kind else {
        panic!()
    };
    assert!(c.map_over.is_some());
}

#[test]
fn declared_locks_run_after_start_without_on_error() {
    let w = compile(
        "workflow t:\nin:\n    x number\nlocks:\n    slot one\n    abc _ manual\n    slot two inherit\ndo:\n    try:\n        lock abc a.x\n    catch:\n        return\n",
    );
    assert_eq!(
        shape(&w),
        [
            "0 start -> 1",
            "1 lock -> 2",
            "2 lock -> 5",
            "3 noop -> 6 EndTry",
            "4 noop -> 6 Return",
            "5 lock -> 3 !4",
            "6 end -> 6",
        ]
    );
    let TaskKind::Lock { value, inherit, .. } = &w.tasks[2].kind else {
        panic!()
    };
    assert_eq!(*value, LockValue::Literal("two".into()));
    assert!(*inherit);
    assert!(w
        .tasks
        .iter()
        .filter(|t| matches!(t.kind, TaskKind::Start | TaskKind::End))
        .all(|t| t.on_error.is_none()));
}

#[test]
fn wait_for_lock_wait_is_a_compile_time_constant() {
    let cat = loaded();
    let w = wf(&cat, "k37");
    let t = w
        .tasks
        .iter()
        .find(|t| matches!(t.kind, TaskKind::WaitForLock { .. }))
        .unwrap();
    let TaskKind::WaitForLock { wait, locktype, .. } = &t.kind else {
        panic!()
    };
    assert_eq!((locktype.as_str(), wait), ("slot", &LockWait::No));
    assert_eq!(
        t.on_error,
        Some(
            w.tasks
                .iter()
                .find(|t| matches!(t.kind, TaskKind::Eval { .. }))
                .unwrap()
                .id
        )
    );
}

#[test]
fn calls_bind_at_compile_time_to_a_version() {
    let mut cat = loaded();
    let k10 = wf(&cat, "k10");
    let TaskKind::Call(c) = &k10.tasks[1].kind else {
        panic!()
    };
    let child_v0 = cat.lookup_workflow("k10child", None).unwrap().clone();
    assert_eq!(
        (c.target.kind, c.target.def, c.target.version),
        (TargetKind::Workflow, child_v0.id, child_v0.version)
    );
    // Recompiling the callee adds a version; the old caller keeps its binding, a new
    // compile of the caller binds to the new version.
    let src = std::fs::read_to_string(fixtures().join("k10child.wf")).unwrap();
    let r = cat.compile("k10child.wf", &src).unwrap();
    assert_eq!(r.version, child_v0.version + 1);
    let TaskKind::Call(c) = &k10.tasks[1].kind else {
        panic!()
    };
    assert_eq!(c.target.def, child_v0.id);
    let src = std::fs::read_to_string(fixtures().join("k10.wf")).unwrap();
    let r2 = cat.compile("k10.wf", &src).unwrap();
    let k10b = cat.workflow(r2.id).unwrap();
    let TaskKind::Call(c) = &k10b.tasks[1].kind else {
        panic!()
    };
    assert_eq!(c.target.def, r.id);
    // Actions bind as actions.
    let k01 = wf(&cat, "k01");
    let TaskKind::Call(c) = &k01.tasks[1].kind else {
        panic!()
    };
    assert_eq!(c.target.kind, TargetKind::Action);
    assert_eq!(cat.action(c.target.def).unwrap().name, "c_add");
}

#[test]
fn recursion_binds_to_the_version_being_compiled() {
    let mut cat = Catalog::new();
    let src = std::fs::read_to_string(fixtures().join("k14.wf")).unwrap();
    let r = cat.compile("k14.wf", &src).unwrap();
    let w = cat.workflow(r.id).unwrap();
    let call = w.tasks.iter().find_map(|t| match &t.kind {
        TaskKind::Call(c) => Some(c.target.clone()),
        _ => None,
    });
    assert_eq!(call.unwrap().def, r.id);
}

#[test]
fn versions_are_shared_across_kinds() {
    let mut cat = Catalog::new();
    cat.compile("x.ac", "action x:\nin:\n    a number\n")
        .unwrap();
    let r = cat
        .compile("x.wf", "workflow x:\nin:\n    a number\ndo:\n    return\n")
        .unwrap();
    assert_eq!(r.version, 1);
    assert_eq!(cat.versions("x").len(), 2);
    assert!(cat.latest_action("x").is_some());
    assert_eq!(cat.lookup_workflow("x", None).unwrap().version, 1);
}

#[test]
fn detachflow_is_one_detached_call() {
    let w =
        compile("workflow t:\nin:\n    x number\ndo:\n    detachflow k10child:\n        x = 1\n");
    assert_eq!(
        shape(&w),
        [
            "0 start -> 1",
            "1 call -> 2 Workflow k10child Detached",
            "2 end -> 2"
        ]
    );
}

#[test]
fn task_ids_index_the_vec_and_lines_point_at_the_source() {
    let cat = loaded();
    let w = wf(&cat, "k42");
    for (i, t) in w.tasks.iter().enumerate() {
        assert_eq!(t.id, i);
        assert!(t.next < w.tasks.len());
    }
    assert_eq!(w.tasks[w.end].next, w.end);
    // `let:` of the `line2` arm is on line 11 of k42.wf.
    let first_eval = w
        .tasks
        .iter()
        .find(|t| matches!(t.kind, TaskKind::Eval { .. }))
        .unwrap();
    assert_eq!(first_eval.line, 11);
}

#[test]
fn lowering_is_fast_enough() {
    // A large generated workflow: 2000 nested-free statements compile in well under a second.
    let mut src = String::from("workflow big:\nin:\n    x number\ndo:\n");
    for i in 0..500 {
        src.push_str(&format!(
            "    let:\n        v{i} = a.x + {i}\n    if v.v{i} > 3:\n        let:\n            y .= 'x'\n    else:\n        return\n    while v.n < {i}:\n        let:\n            n += 1\n    try:\n        call c_add:\n            counter = v.n\n    catch:\n        return\n"
        ));
    }
    let start = std::time::Instant::now();
    let mut cat = loaded();
    let r = cat.compile("big.wf", &src).unwrap();
    let took = start.elapsed();
    let w = cat.workflow(r.id).unwrap();
    assert_eq!(w.tasks.len(), 2 + 500 * 11);
    assert!(took.as_secs_f64() < 2.0, "{took:?}");
}

#[test]
fn compiled_workflows_and_actions_round_trip_through_serde() {
    let cat = loaded();
    let w = wf(&cat, "k43");
    let text = serde_json::to_string(&*w).unwrap();
    let back: Workflow = serde_json::from_str(&text).unwrap();
    assert_eq!(back, *w);
    let a = cat.latest_action("c_soft").unwrap();
    let back: Action = serde_json::from_str(&serde_json::to_string(&**a).unwrap()).unwrap();
    assert_eq!(back, **a);
    assert_eq!(back.retry.as_ref().map(|r| r.tries), Some(2));
}
