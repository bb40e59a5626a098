//! The compiled form of definitions: workflows as task graphs (docs/JCL.md §2.6), actions with
//! their interface and config (§2.14).
//!
//! A [`Workflow`]'s tasks live in a `Vec` indexed by [`TaskId`]; successors are plain indexes,
//! so walking the graph needs no string lookups. Call targets are bound at compile time to a
//! definition id ([`DefId`], an index into the `Catalog`) and version.
//!
//! Lowering (exactly docs/JCL.md §2.6, step counts depend on it):
//!
//! | source | tasks (creation order) | flow |
//! |---|---|---|
//! | workflow | `Start`, lock tasks, body, `End` | start → non-manual locks in declaration order → body → end |
//! | `let`/`eval` | `Eval` | |
//! | `call` | `Call` (blocking; detached for `detachflow`) | |
//! | `if C: T elsif ... else E` | `Branch`, T, `NoOp(EndIf)`, else part | true → T → endif; false → else part or endif; an `elsif` is a nested if as the else part |
//! | `while C: B` | `Branch`, B, `NoOp(EndWhile)` | true → B → branch; false → endwhile |
//! | `repeat: B until C` | B, `Branch(Until)`, `NoOp(EndRepeat)` | B → until; true → end; false → B |
//! | `case` | `Switch`, when blocks, else block, `NoOp(EndCase)` | table / else / endcase |
//! | `try: T catch: C` | `NoOp(EndTry)`, C, T | no entry task; tasks in T have `on_error` = first task of C |
//! | `assert C: M` | `Branch` (negated), `RaiseError`, `NoOp(EndIf)` | passing costs 2 steps |
//! | `goto L` / `label L` / `return` | one `NoOp` each | goto → label's task; return → `End` |
//! | `split` with n items | n `Call` (non-blocking), `WaitForChildren`, n `ReapChild` | |
//! | `map W using X` alone | like a split with one map item | |
//! | other statements | one task each | |
//!
//! Every task created inside a try body carries that try's catch target in `on_error`;
//! `Start`, `End` and the `locks:` section's lock tasks never do.

use crate::syntax::ast::{ActionKind, Code, IoSpec, Line, LockSpec, Map, Var};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Index of a task in [`Workflow::tasks`].
pub type TaskId = usize;

/// Index of a compiled definition in the `Catalog` (stable for the catalog's lifetime).
pub type DefId = usize;

/// Default `max_steps` when the workflow does not configure one (docs/JCL.md §2.7).
pub const DEFAULT_MAX_STEPS: i64 = 99;

/// Default call depth limit when the environment has no `max_depth` (docs/JCL.md §2.7).
pub const DEFAULT_MAX_DEPTH: i64 = 9;

/// A compiled workflow version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Workflow {
    /// This definition's id in its catalog.
    pub id: DefId,
    /// The workflow name.
    pub name: String,
    /// The version (0 for the first compile of the name; shared across kinds).
    pub version: u32,
    /// Version tags given at compile time (empty = untagged).
    pub tags: Vec<String>,
    /// The source file name given to the compiler.
    pub file: String,
    /// Declared inputs in declaration order (`in:`).
    pub inputs: Vec<IoSpec>,
    /// Declared outputs in declaration order (`out:`).
    pub outputs: Vec<IoSpec>,
    /// `wfenv:` constants; **every value is a JSON string** (`num = 42` → `"42"`,
    /// `flag = true` → `"true"`; strings are their value), docs/JCL.md §2.2.
    pub wfenv: serde_json::Map<String, Value>,
    /// `config:` as JSON (`max_steps`, `max_depth` as numbers).
    pub config: serde_json::Map<String, Value>,
    /// Effective step limit: `config.max_steps` or [`DEFAULT_MAX_STEPS`].
    pub max_steps: i64,
    /// `config.max_depth` if configured (the environment gets it as a **string**).
    pub max_depth: Option<i64>,
    /// The `locks:` declarations in order.
    pub locks: Vec<LockSpec>,
    /// The `role:` (Stage C), if any.
    pub role: Option<String>,
    /// The workflow output map (`wfomap:`), evaluated by the `End` task. `None` = empty `o`.
    pub wfomap: Option<Map>,
    /// The task graph; `tasks[i].id == i`.
    pub tasks: Vec<Task>,
    /// The `Start` task (always 0).
    pub start: TaskId,
    /// The `End` task.
    pub end: TaskId,
}

impl Workflow {
    /// The task with this id. Ids come from the graph itself, so they are always in range
    /// for the workflow they were taken from.
    pub fn task(&self, id: TaskId) -> Option<&Task> {
        self.tasks.get(id)
    }

    /// The lock declaration for a lock type, if declared.
    pub fn lock_decl(&self, locktype: &str) -> Option<&LockSpec> {
        self.locks.iter().find(|l| l.locktype == locktype)
    }

    /// Whether a job of this workflow can ever hold a lock: only a `lock` task (a declared
    /// lock or a `lock` statement) or a `wait_for_lock` task of its own takes one (an
    /// inherited lock too is taken by the child's own task).
    pub fn may_lock(&self) -> bool {
        self.tasks
            .iter()
            .any(|t| matches!(t.kind, TaskKind::Lock { .. } | TaskKind::WaitForLock { .. }))
    }
}

/// One task of a workflow's graph.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Task {
    /// Its index in [`Workflow::tasks`].
    pub id: TaskId,
    /// Source line of the statement (or section) that created it.
    pub line: Line,
    /// What the task does.
    pub kind: TaskKind,
    /// The (default / false) successor. For `End` it is the task's own id (unused).
    pub next: TaskId,
    /// First task of the innermost enclosing `catch` block, if any.
    pub on_error: Option<TaskId>,
}

/// What a [`NoOp`](TaskKind::NoOp) task stands for (documentation only; all behave alike).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum NoOpRole {
    /// End of an `if`/`elsif`/`assert`.
    EndIf,
    /// End of a `while`.
    EndWhile,
    /// End of a `repeat`/`until`.
    EndRepeat,
    /// End of a `case`.
    EndCase,
    /// End of a `try`/`catch`.
    EndTry,
    /// A `goto` (its `next` is the label's task).
    Goto(String),
    /// A `label`.
    Label(String),
    /// A `return` (its `next` is `End`).
    Return,
}

/// Which statement a [`Branch`](TaskKind::Branch) comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum BranchRole {
    /// `if` or `elsif`.
    If,
    /// `while`.
    While,
    /// `until` of a `repeat`.
    Until,
    /// `assert` (negated condition).
    Assert,
}

/// How a call task waits for its callee.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CallMode {
    /// `call`: action task, or blocking child job (`parentwait = true`).
    Blocking,
    /// `callflow`/`map` inside a split (or a lone `map`): non-blocking child(ren), joined by
    /// `WaitForChildren` and collected by `ReapChild`.
    NonBlocking,
    /// `detachflow`: fire and forget, no parent link.
    Detached,
}

/// The kind of a bound call target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TargetKind {
    /// An action, executed by workers.
    Action,
    /// A procedure (Stage C plug-in).
    Procedure,
    /// A workflow, executed as a child job.
    Workflow,
}

/// A call target bound at compile time (docs/JCL.md §2.6 "Binding of calls").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallTarget {
    /// Action, procedure or workflow.
    pub kind: TargetKind,
    /// The target name.
    pub name: String,
    /// The bound version.
    pub version: u32,
    /// The bound definition in the catalog. For a workflow calling itself (recursion) this
    /// is the caller's own id.
    pub def: DefId,
}

/// A call of an action/procedure/workflow (`call`, `callflow`, `map`, `detachflow`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallTask {
    /// The bound target.
    pub target: CallTarget,
    /// The input map (kind `Input`).
    pub inputs: Map,
    /// The output map (kind `Output`) for blocking calls; for non-blocking calls the output
    /// map lives on the matching `ReapChild` task and this is `None`.
    pub outputs: Option<Map>,
    /// Blocking, non-blocking or detached.
    pub mode: CallMode,
    /// For `map W using X`: the array variable; one child per element, with `e._i` (1-based)
    /// and `e._v` during the input map.
    pub map_over: Option<Var>,
}

/// How a `wait_for_lock` waits (its `wait = ...` line, a compile-time constant).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum LockWait {
    /// `'yes'`: wait as long as needed.
    Yes,
    /// `'no'`: fail at once with `failed to get locktype T lockvalue V`.
    No,
    /// An interval string: wait at most that long.
    Interval(String),
}

/// The value of a lock task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum LockValue {
    /// A literal value from the `locks:` section.
    Literal(String),
    /// An expression (or Perl block) of a `lock`/`unlock` statement, converted to a string.
    Code(Code),
}

/// The kinds of tasks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum TaskKind {
    /// Entry of the graph; not counted as a step.
    Start,
    /// Evaluate `wfomap`, output-check, finish the job.
    End,
    /// Continue with `next`.
    NoOp(NoOpRole),
    /// `let`/`eval`: evaluate the map, keep the new `v`.
    Eval {
        /// The assignments (kind `Let`).
        map: Map,
    },
    /// Evaluate a condition (`v` changes kept): truthy → `true_next`, else `next`.
    Branch {
        /// The condition.
        cond: Code,
        /// Use the negated truth value (`assert`: the branch is taken when the condition is
        /// false).
        negate: bool,
        /// Successor when the (possibly negated) condition is true.
        true_next: TaskId,
        /// Which statement it comes from.
        role: BranchRole,
    },
    /// Evaluate the case expression to a string (`v` changes kept); jump to the first table
    /// entry with an equal label, else `next` (else block or endcase).
    Switch {
        /// The case expression.
        expr: Code,
        /// Label → first task of the `when` block, in source order.
        table: Vec<(String, TaskId)>,
    },
    /// Call an action/procedure/workflow.
    Call(CallTask),
    /// Evaluate `msg = <message>` as an input map, check `msg string`, raise a `normal` error.
    RaiseError {
        /// The message.
        message: Code,
    },
    /// Acquire a lock (declared non-manual lock at start, or a `lock` statement).
    Lock {
        /// The lock type.
        locktype: String,
        /// The lock value.
        value: LockValue,
        /// Whether the lock may be lent to children (from the declaration).
        inherit: bool,
    },
    /// `unlock TYPE VALUE`.
    Unlock {
        /// The lock type.
        locktype: String,
        /// The lock value.
        value: LockValue,
    },
    /// `wait_for_lock TYPE:` with `value = ...` and a constant `wait`.
    WaitForLock {
        /// The lock type.
        locktype: String,
        /// Whether the lock may be lent to children (from the declaration).
        inherit: bool,
        /// The lines as an input map (the runtime reads `i.value`).
        inputs: Map,
        /// The wait policy.
        wait: LockWait,
    },
    /// `sleep X`: evaluate `timeout = '' . X` as an input map, sleep that interval.
    Sleep {
        /// The interval expression.
        duration: Code,
    },
    /// Wait until every non-blocking child of this job finished (or one failed).
    WaitForChildren,
    /// Collect the zombie child(ren) created by `call_task`, output-check and run `outputs`
    /// (for a `map` call: once per child in creation order).
    ReapChild {
        /// The non-blocking `Call` task whose children are reaped.
        call_task: TaskId,
        /// The output map (`into:` / `collect:`).
        outputs: Option<Map>,
    },
    /// `subscribe:` (Stage C).
    Subscribe {
        /// Input map (`name`, `mask`).
        inputs: Map,
    },
    /// `unsubscribe:` (Stage C).
    Unsubscribe {
        /// Input map (`name`).
        inputs: Map,
    },
    /// `raise_event:` (Stage C).
    RaiseEvent {
        /// Input map (`event`).
        inputs: Map,
    },
    /// `wait_for_event:` (Stage C).
    WaitForEvent {
        /// Input map (`events`, `timeout`).
        inputs: Map,
        /// Output map (`o.event`).
        outputs: Option<Map>,
    },
    /// `interface NAME: ... call EXPR:` (Stage C extension): the destination is chosen at
    /// run time among `destinations`.
    InterfaceCall {
        /// The interface name.
        interface: String,
        /// The allowed destinations, bound at compile time.
        destinations: Vec<CallTarget>,
        /// Expression naming the destination.
        target: Code,
        /// Input map.
        inputs: Map,
        /// Output map.
        outputs: Option<Map>,
    },
}

impl TaskKind {
    /// A short name of the task kind for logs (`start`, `eval`, `branch`, `call`, ...).
    pub fn name(&self) -> &'static str {
        match self {
            TaskKind::Start => "start",
            TaskKind::End => "end",
            TaskKind::NoOp(_) => "noop",
            TaskKind::Eval { .. } => "eval",
            TaskKind::Branch { .. } => "branch",
            TaskKind::Switch { .. } => "switch",
            TaskKind::Call(_) => "call",
            TaskKind::RaiseError { .. } => "raise_error",
            TaskKind::Lock { .. } => "lock",
            TaskKind::Unlock { .. } => "unlock",
            TaskKind::WaitForLock { .. } => "wait_for_lock",
            TaskKind::Sleep { .. } => "sleep",
            TaskKind::WaitForChildren => "wait_for_children",
            TaskKind::ReapChild { .. } => "reap_child",
            TaskKind::Subscribe { .. } => "subscribe",
            TaskKind::Unsubscribe { .. } => "unsubscribe",
            TaskKind::RaiseEvent { .. } => "raise_event",
            TaskKind::WaitForEvent { .. } => "wait_for_event",
            TaskKind::InterfaceCall { .. } => "interface_call",
        }
    }
}

/// An action's retry policy (`config: retry = '{"tries": N, "interval": "..."}'`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetryPolicy {
    /// `tries` (negative = retry forever; 0 or 1 = no retry). Missing → 0.
    pub tries: i64,
    /// `interval` as written (an interval string, Appendix B), if given.
    pub interval: Option<String>,
}

/// A compiled action (or procedure) version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Action {
    /// This definition's id in its catalog.
    pub id: DefId,
    /// Action or procedure.
    pub kind: ActionKind,
    /// The action name.
    pub name: String,
    /// The version (shared numbering with workflows of the same name).
    pub version: u32,
    /// Version tags given at compile time.
    pub tags: Vec<String>,
    /// The source file name given to the compiler.
    pub file: String,
    /// Declared inputs (`in:`).
    pub inputs: Vec<IoSpec>,
    /// Declared outputs (`out:`).
    pub outputs: Vec<IoSpec>,
    /// Declared environment (`env:`); empty = the action environment is `{}`.
    pub env: Vec<IoSpec>,
    /// The `role:` (Stage C), if any.
    pub role: Option<String>,
    /// `config:` as JSON: `retry` and `filter` decoded from their JSON strings, other values
    /// as literals (`timeout`/`archive` strings, `retryable` boolean).
    pub config: serde_json::Map<String, Value>,
    /// Decoded `retry` policy.
    pub retry: Option<RetryPolicy>,
    /// `timeout` interval string.
    pub timeout: Option<String>,
    /// `retryable`: soft error when the worker disconnects.
    pub retryable: bool,
    /// `filter`: keys workers may filter on (`"_*_"` = any, filter optional).
    pub filter: Option<Vec<String>>,
}

/// A compiled definition of any kind (shared, cheap to clone).
#[derive(Debug, Clone, PartialEq)]
pub enum Compiled {
    /// A workflow.
    Workflow(std::sync::Arc<Workflow>),
    /// An action or procedure.
    Action(std::sync::Arc<Action>),
}

impl Compiled {
    /// The definition's name.
    pub fn name(&self) -> &str {
        match self {
            Compiled::Workflow(w) => &w.name,
            Compiled::Action(a) => &a.name,
        }
    }

    /// The definition's version.
    pub fn version(&self) -> u32 {
        match self {
            Compiled::Workflow(w) => w.version,
            Compiled::Action(a) => a.version,
        }
    }

    /// The definition's id.
    pub fn id(&self) -> DefId {
        match self {
            Compiled::Workflow(w) => w.id,
            Compiled::Action(a) => a.id,
        }
    }

    /// The version tags.
    pub fn tags(&self) -> &[String] {
        match self {
            Compiled::Workflow(w) => &w.tags,
            Compiled::Action(a) => &a.tags,
        }
    }

    /// The kind as a call target kind.
    pub fn target_kind(&self) -> TargetKind {
        match self {
            Compiled::Workflow(_) => TargetKind::Workflow,
            Compiled::Action(a) => match a.kind {
                ActionKind::Action => TargetKind::Action,
                ActionKind::Procedure => TargetKind::Procedure,
            },
        }
    }
}
