//! Compile-time checks (docs/JCL.md §1.10, Part 3 stage gating) and lowering of a parsed
//! definition to its compiled form (workflow task graph per §2.6, action interface/config).

use super::catalog::{Catalog, Stage};
use super::graph::*;
use crate::syntax::ast::*;
use crate::syntax::CompileError;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;

/// Placeholder for successors not patched yet.
const UNSET: TaskId = usize::MAX;

/// Names of everything a definition calls (`call`, `callflow`, `map`, `detachflow`,
/// interface call destinations), for dependency ordering.
pub fn called_names(def: &Definition) -> Vec<String> {
    let mut out = Vec::new();
    if let Definition::Workflow(wf) = def {
        if let Some(body) = &wf.body {
            walk_block(body, &mut |s| match &s.kind {
                StmtKind::Call(c) | StmtKind::DetachFlow(c) => out.push(c.target.clone()),
                StmtKind::Map(m) => out.push(m.target.clone()),
                StmtKind::Split { items } => {
                    for it in items {
                        match it {
                            SplitItem::Callflow(c) => out.push(c.target.clone()),
                            SplitItem::Map(m) => out.push(m.target.clone()),
                        }
                    }
                }
                StmtKind::InterfaceCall { names, .. } => {
                    out.extend(names.iter().map(|n| n.name.clone()))
                }
                _ => {}
            });
        }
    }
    out
}

/// Visit every statement of a block, depth first, in source order.
fn walk_block<'s>(block: &'s [Stmt], f: &mut impl FnMut(&'s Stmt)) {
    for s in block {
        f(s);
        match &s.kind {
            StmtKind::Case {
                whens, else_block, ..
            } => {
                for w in whens {
                    walk_block(&w.body, f);
                }
                if let Some(e) = else_block {
                    walk_block(e, f);
                }
            }
            StmtKind::If {
                first,
                elsifs,
                else_block,
            } => {
                walk_block(&first.body, f);
                for e in elsifs {
                    walk_block(&e.body, f);
                }
                if let Some(e) = else_block {
                    walk_block(e, f);
                }
            }
            StmtKind::Repeat { body, .. } | StmtKind::While { body, .. } => walk_block(body, f),
            StmtKind::Try { body, catch, .. } => {
                walk_block(body, f);
                walk_block(catch, f);
            }
            _ => {}
        }
    }
}

/// The code pieces (conditions/values), maps and plain expressions directly in a statement.
fn stmt_parts<'s>(
    s: &'s Stmt,
    codes: &mut Vec<&'s Code>,
    maps: &mut Vec<&'s Map>,
    exprs: &mut Vec<&'s Expr>,
) {
    fn call<'s>(c: &'s FlowCall, maps: &mut Vec<&'s Map>) {
        maps.push(&c.inputs);
        if let Some(o) = &c.outputs {
            maps.push(o);
        }
    }
    fn mapcall<'s>(m: &'s MapCall, maps: &mut Vec<&'s Map>) {
        maps.push(&m.inputs);
        if let Some(o) = &m.collect {
            maps.push(o);
        }
    }
    match &s.kind {
        StmtKind::Assert { cond, message } => {
            codes.push(cond);
            exprs.push(message);
        }
        StmtKind::Call(c) | StmtKind::DetachFlow(c) => call(c, maps),
        StmtKind::Case { expr, .. } => codes.push(expr),
        StmtKind::Let { map, .. } => maps.push(map),
        StmtKind::If { first, elsifs, .. } => {
            codes.push(&first.cond);
            for e in elsifs {
                codes.push(&e.cond);
            }
        }
        StmtKind::InterfaceCall {
            target,
            inputs,
            outputs,
            ..
        } => {
            codes.push(target);
            maps.push(inputs);
            if let Some(o) = outputs {
                maps.push(o);
            }
        }
        StmtKind::Lock { value, .. } | StmtKind::Unlock { value, .. } => codes.push(value),
        StmtKind::Map(m) => mapcall(m, maps),
        StmtKind::RaiseError { message } => codes.push(message),
        StmtKind::RaiseEvent { inputs }
        | StmtKind::Subscribe { inputs }
        | StmtKind::Unsubscribe { inputs } => maps.push(inputs),
        StmtKind::Repeat { until, .. } => codes.push(until),
        StmtKind::Sleep { duration } => codes.push(duration),
        StmtKind::Split { items } => {
            for it in items {
                match it {
                    SplitItem::Callflow(c) => call(c, maps),
                    SplitItem::Map(m) => mapcall(m, maps),
                }
            }
        }
        StmtKind::WaitForEvent { inputs, outputs } => {
            maps.push(inputs);
            if let Some(o) = outputs {
                maps.push(o);
            }
        }
        StmtKind::WaitForLock { inputs, .. } => maps.push(inputs),
        StmtKind::While { cond, .. } => codes.push(cond),
        StmtKind::Goto { .. }
        | StmtKind::Label { .. }
        | StmtKind::Return
        | StmtKind::Try { .. } => {}
    }
}

/// Visit an expression tree.
fn walk_expr(e: &Expr, f: &mut impl FnMut(&Expr)) {
    f(e);
    match &e.kind {
        ExprKind::Unary(_, a) | ExprKind::Match(a, _) => walk_expr(a, f),
        ExprKind::Binary(_, a, b) => {
            walk_expr(a, f);
            walk_expr(b, f);
        }
        ExprKind::Call(_, args) => {
            for a in args {
                walk_expr(a, f);
            }
        }
        ExprKind::Lit(_) | ExprKind::Var(_) => {}
    }
}

/// The stage a statement needs (Part 3 stage table).
fn stmt_stage(k: &StmtKind) -> Stage {
    match k {
        StmtKind::Assert { .. }
        | StmtKind::Call(_)
        | StmtKind::Case { .. }
        | StmtKind::Let { .. }
        | StmtKind::If { .. }
        | StmtKind::RaiseError { .. }
        | StmtKind::Repeat { .. }
        | StmtKind::Return
        | StmtKind::Try { .. }
        | StmtKind::While { .. } => Stage::A,
        StmtKind::Split { .. }
        | StmtKind::Lock { .. }
        | StmtKind::Unlock { .. }
        | StmtKind::Sleep { .. }
        | StmtKind::WaitForLock { .. } => Stage::B,
        StmtKind::Goto { .. }
        | StmtKind::Label { .. }
        | StmtKind::RaiseEvent { .. }
        | StmtKind::Subscribe { .. }
        | StmtKind::Unsubscribe { .. }
        | StmtKind::WaitForEvent { .. }
        | StmtKind::Map(_)
        | StmtKind::DetachFlow(_)
        | StmtKind::InterfaceCall { .. } => Stage::C,
    }
}

/// Checks shared by all definitions: Perl blocks, stage of statements and expression
/// features, in source order.
struct Checker<'a> {
    file: &'a str,
    stage: Stage,
    errors: Vec<CompileError>,
}

impl Checker<'_> {
    fn err(&mut self, line: Line, msg: impl Into<String>) {
        self.errors.push(CompileError::new(self.file, line, msg));
    }

    fn need(&mut self, stage: Stage, line: Line, what: String) {
        if stage > self.stage {
            self.err(line, format!("{what} not supported yet"));
        }
    }

    fn expr(&mut self, e: &Expr) {
        let mut found = Vec::new();
        walk_expr(e, &mut |x| match &x.kind {
            ExprKind::Match(..) => {
                found.push((Stage::B, x.line, "regex match ~ /.../".to_string()))
            }
            ExprKind::Call(Func::List, _) => {
                found.push((Stage::C, x.line, "function list".to_string()))
            }
            _ => {}
        });
        for (s, l, w) in found {
            self.need(s, l, w);
        }
    }

    fn code(&mut self, c: &Code) {
        match c {
            Code::Expr(e) => self.expr(e),
            Code::Perl(p) => self.err(p.line, "perl blocks are not supported"),
        }
    }

    fn map(&mut self, m: &Map) {
        match &m.body {
            MapBody::Perl(p) => self.err(p.line, "perl blocks are not supported"),
            MapBody::Items(items) => {
                for it in items {
                    if let MapItem::Assign(a) = it {
                        self.expr(&a.value);
                    }
                }
            }
        }
    }

    fn block(&mut self, block: &[Stmt]) {
        let mut stmts = Vec::new();
        walk_block(block, &mut |s| stmts.push(s));
        for s in stmts {
            self.need(
                stmt_stage(&s.kind),
                s.line,
                format!("statement {}", s.kind.keyword()),
            );
            if let StmtKind::Split { items } = &s.kind {
                for it in items {
                    if let SplitItem::Map(m) = it {
                        self.need(Stage::C, m.line, "statement map".to_string());
                    }
                }
            }
            let (mut codes, mut maps, mut exprs) = (Vec::new(), Vec::new(), Vec::new());
            stmt_parts(s, &mut codes, &mut maps, &mut exprs);
            for c in codes {
                self.code(c);
            }
            for m in maps {
                self.map(m);
            }
            for e in exprs {
                self.expr(e);
            }
        }
    }
}

/// Check the types of io-specs.
fn check_types(cat: &Catalog, file: &str, specs: &[IoSpec], errors: &mut Vec<CompileError>) {
    for s in specs {
        if !cat.types().contains(&s.ty) {
            errors.push(CompileError::new(
                file,
                s.line,
                format!("unknown type {}", s.ty),
            ));
        }
    }
}

fn single_role(
    file: &str,
    role: &Option<Vec<NameRef>>,
    errors: &mut Vec<CompileError>,
) -> Option<String> {
    match role {
        None => None,
        Some(r) if r.len() > 1 => {
            errors.push(CompileError::new(
                file,
                r[1].line,
                "multiple roles not supported (yet?)",
            ));
            None
        }
        Some(r) => r.first().map(|n| n.name.clone()),
    }
}

/// Compile a parsed definition into a new catalog entry with the given id and version.
pub(crate) fn compile(
    cat: &Catalog,
    file: &str,
    def: &Definition,
    id: DefId,
    version: u32,
    tags: &[String],
) -> Result<Compiled, Vec<CompileError>> {
    match def {
        Definition::Workflow(wf) => compile_workflow(cat, file, wf, id, version, tags)
            .map(|w| Compiled::Workflow(Arc::new(w))),
        Definition::Action(ac) => {
            compile_action(cat, file, ac, id, version, tags).map(|a| Compiled::Action(Arc::new(a)))
        }
    }
}

/// Resolve an `interface NAME` section: the in/out of the latest version of NAME.
fn interface_io(
    cat: &Catalog,
    file: &str,
    iface: &NameRef,
    errors: &mut Vec<CompileError>,
) -> (Vec<IoSpec>, Vec<IoSpec>) {
    match cat.versions(&iface.name).last().and_then(|id| cat.get(*id)) {
        Some(Compiled::Workflow(w)) => (w.inputs.clone(), w.outputs.clone()),
        Some(Compiled::Action(a)) => (a.inputs.clone(), a.outputs.clone()),
        None => {
            errors.push(CompileError::new(
                file,
                iface.line,
                format!("interface {} not found?", iface.name),
            ));
            (Vec::new(), Vec::new())
        }
    }
}

fn compile_action(
    cat: &Catalog,
    file: &str,
    ac: &ActionDef,
    id: DefId,
    version: u32,
    tags: &[String],
) -> Result<Action, Vec<CompileError>> {
    let mut errors = Vec::new();
    let stage = cat.stage();
    let need = |s: Stage, line: Line, what: &str, errors: &mut Vec<CompileError>| {
        if s > stage {
            errors.push(CompileError::new(
                file,
                line,
                format!("{what} not supported yet"),
            ));
        }
    };
    if ac.kind == ActionKind::Procedure {
        need(Stage::C, ac.line, "procedure definitions", &mut errors);
    }
    if let Some(i) = &ac.interface {
        need(Stage::C, i.line, "section interface", &mut errors);
    }
    if let Some(r) = ac.role.as_ref().and_then(|r| r.first()) {
        need(Stage::C, r.line, "section role", &mut errors);
    }
    let (mut inputs, mut outputs) = (
        ac.inputs.clone().unwrap_or_default(),
        ac.outputs.clone().unwrap_or_default(),
    );
    if let Some(iface) = &ac.interface {
        if ac.inputs.is_some() || ac.outputs.is_some() || ac.env.is_some() {
            errors.push(CompileError::new(
                file,
                iface.line,
                "interface conlicts with in/out/env",
            ));
        } else if stage >= Stage::C {
            (inputs, outputs) = interface_io(cat, file, iface, &mut errors);
        }
    }
    let env = ac.env.clone().unwrap_or_default();
    check_types(cat, file, &inputs, &mut errors);
    check_types(cat, file, &outputs, &mut errors);
    check_types(cat, file, &env, &mut errors);
    let role = single_role(file, &ac.role, &mut errors);

    let mut config = serde_json::Map::new();
    let mut retry = None;
    let mut timeout = None;
    let mut retryable = false;
    let mut filter = None;
    for c in ac.config.iter().flatten() {
        let bad = |errors: &mut Vec<CompileError>, why: &str| {
            errors.push(CompileError::new(
                file,
                c.line,
                format!("invalid config {} = {}: {why}", c.key, c.text),
            ));
        };
        match (c.key.as_str(), &c.value) {
            ("retry", Literal::Str(s)) => match serde_json::from_str::<Value>(s) {
                Ok(Value::Object(o)) => {
                    let tries = match o.get("tries") {
                        None | Some(Value::Null) => Some(0),
                        Some(Value::Number(n)) => {
                            n.as_i64().or_else(|| n.as_f64().map(|f| f as i64))
                        }
                        Some(Value::String(s)) => s.trim().parse::<i64>().ok(),
                        _ => None,
                    };
                    let interval = match o.get("interval") {
                        None | Some(Value::Null) => Some(None),
                        Some(Value::String(s)) => Some(Some(s.clone())),
                        Some(Value::Number(n)) => Some(Some(n.to_string())),
                        _ => None,
                    };
                    match (tries, interval) {
                        (Some(tries), Some(interval)) => {
                            retry = Some(RetryPolicy { tries, interval });
                            config.insert(c.key.clone(), Value::Object(o));
                        }
                        _ => bad(&mut errors, "tries must be a number and interval a string"),
                    }
                }
                _ => bad(
                    &mut errors,
                    "retry must be a string containing a JSON object",
                ),
            },
            ("timeout" | "archive", Literal::Str(_) | Literal::Int(_) | Literal::Float(_)) => {
                let text = match &c.value {
                    Literal::Str(s) => s.clone(),
                    _ => c.text.clone(),
                };
                if c.key == "timeout" {
                    timeout = Some(text.clone());
                }
                config.insert(c.key.clone(), Value::String(text));
            }
            ("retryable", Literal::Bool(b)) => {
                retryable = *b;
                config.insert(c.key.clone(), Value::Bool(*b));
            }
            ("filter", Literal::Str(s)) => match serde_json::from_str::<Vec<String>>(s) {
                Ok(keys) => {
                    config.insert(c.key.clone(), Value::from(keys.clone()));
                    filter = Some(keys);
                }
                Err(_) => bad(
                    &mut errors,
                    "filter must be a string containing a JSON array of key names",
                ),
            },
            ("retry" | "timeout" | "archive" | "retryable" | "filter", _) => {
                bad(&mut errors, "wrong kind of value")
            }
            (k, _) => errors.push(CompileError::new(
                file,
                c.line,
                format!("{k} is not allowed as config for action"),
            )),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Action {
        id,
        kind: ac.kind,
        name: ac.name.clone(),
        version,
        tags: tags.to_vec(),
        file: file.to_string(),
        inputs,
        outputs,
        env,
        role,
        config,
        retry,
        timeout,
        retryable,
        filter,
    })
}

fn compile_workflow(
    cat: &Catalog,
    file: &str,
    wf: &WorkflowDef,
    id: DefId,
    version: u32,
    tags: &[String],
) -> Result<Workflow, Vec<CompileError>> {
    let mut errors = Vec::new();
    let stage = cat.stage();
    let need = |s: Stage, line: Line, what: &str, errors: &mut Vec<CompileError>| {
        if s > stage {
            errors.push(CompileError::new(
                file,
                line,
                format!("{what} not supported yet"),
            ));
        }
    };
    // Structure.
    if wf.interface.is_none() && wf.inputs.is_none() && wf.outputs.is_none() {
        errors.push(CompileError::new(
            file,
            wf.line,
            "either interface or in/out required",
        ));
    }
    let (mut inputs, mut outputs) = (
        wf.inputs.clone().unwrap_or_default(),
        wf.outputs.clone().unwrap_or_default(),
    );
    if let Some(iface) = &wf.interface {
        need(Stage::C, iface.line, "section interface", &mut errors);
        if wf.inputs.is_some() || wf.outputs.is_some() {
            errors.push(CompileError::new(
                file,
                iface.line,
                "interface conlicts with in/out/env",
            ));
        } else if stage >= Stage::C {
            (inputs, outputs) = interface_io(cat, file, iface, &mut errors);
        }
    }
    if let Some(r) = wf.role.as_ref().and_then(|r| r.first()) {
        need(Stage::C, r.line, "section role", &mut errors);
    }
    let role = single_role(file, &wf.role, &mut errors);
    check_types(cat, file, &inputs, &mut errors);
    check_types(cat, file, &outputs, &mut errors);

    // config
    let mut config = serde_json::Map::new();
    let mut max_steps = DEFAULT_MAX_STEPS;
    let mut max_depth = None;
    for c in wf.config.iter().flatten() {
        match (c.key.as_str(), &c.value) {
            ("max_steps" | "max_depth", Literal::Int(n)) => {
                if c.key == "max_steps" {
                    max_steps = *n;
                } else {
                    max_depth = Some(*n);
                }
                config.insert(c.key.clone(), Value::from(*n));
            }
            ("max_steps" | "max_depth", _) => errors.push(CompileError::new(
                file,
                c.line,
                format!("invalid config {} = {}: must be an integer", c.key, c.text),
            )),
            (k, _) => errors.push(CompileError::new(
                file,
                c.line,
                format!("{k} is not allowed as config for workflow"),
            )),
        }
    }
    // wfenv: every value a string.
    let mut wfenv = serde_json::Map::new();
    for c in wf.wfenv.iter().flatten() {
        let s = match &c.value {
            Literal::Str(s) => s.clone(),
            _ => c.text.clone(),
        };
        wfenv.insert(c.key.clone(), Value::String(s));
    }
    // locks
    let locks = wf.locks.clone().unwrap_or_default();
    if let Some(l) = locks.first() {
        need(Stage::B, l.line, "section locks", &mut errors);
    }
    for l in &locks {
        if !cat.locktypes().contains(&l.locktype) {
            errors.push(CompileError::new(
                file,
                l.line,
                format!("no locktype {}?", l.locktype),
            ));
        }
    }
    // Perl blocks, stages, expression features.
    let mut checker = Checker {
        file,
        stage,
        errors: Vec::new(),
    };
    if let Some(m) = &wf.wfomap {
        checker.map(m);
    }
    if let Some(b) = &wf.body {
        checker.block(b);
    }
    errors.append(&mut checker.errors);

    // Lowering.
    let taglist: Vec<&str> = tags
        .iter()
        .map(|s| s.as_str())
        .chain(std::iter::once("default"))
        .collect();
    let mut b = Builder {
        cat,
        file,
        own_name: &wf.name,
        own_id: id,
        own_version: version,
        taglist,
        locks: wf.locks.as_deref().unwrap_or(&[]),
        tasks: Vec::new(),
        labels: HashMap::new(),
        gotos: Vec::new(),
        returns: Vec::new(),
        errors: Vec::new(),
    };
    let start = b.emit(wf.line, TaskKind::Start, None);
    let mut prev = vec![start];
    for l in locks.iter().filter(|l| !l.manual) {
        let t = b.emit(
            l.line,
            TaskKind::Lock {
                locktype: l.locktype.clone(),
                value: LockValue::Literal(l.value.clone()),
                inherit: l.inherit,
            },
            None,
        );
        b.patch(&prev, t);
        prev = vec![t];
    }
    if let Some(body) = &wf.body {
        let f = b.block(body, None);
        b.patch(&prev, f.entry);
        prev = f.exits;
    }
    let end_line = wf.wfomap.as_ref().map(|m| m.line).unwrap_or(wf.line);
    let end = b.emit(end_line, TaskKind::End, None);
    b.patch(&prev, end);
    b.tasks[end].next = end;
    let returns = std::mem::take(&mut b.returns);
    b.patch(&returns, end);
    for (g, label, line) in std::mem::take(&mut b.gotos) {
        match b.labels.get(&label) {
            Some(t) => b.tasks[g].next = *t,
            None => b.errors.push(CompileError::new(
                file,
                line,
                format!("goto: unknown label {label}"),
            )),
        }
    }
    errors.append(&mut b.errors);
    if !errors.is_empty() {
        errors.sort_by_key(|e| e.line);
        return Err(errors);
    }
    if b.tasks.iter().any(|t| t.next == UNSET) {
        return Err(vec![CompileError::new(
            file,
            wf.line,
            "internal error: unpatched task successor",
        )]);
    }
    Ok(Workflow {
        id,
        name: wf.name.clone(),
        version,
        tags: tags.to_vec(),
        file: file.to_string(),
        inputs,
        outputs,
        wfenv,
        config,
        max_steps,
        max_depth,
        locks,
        role,
        wfomap: wf.wfomap.clone(),
        tasks: b.tasks,
        start,
        end,
    })
}

/// A lowered piece of the graph: its entry task and the tasks whose `next` must be set to
/// whatever follows.
struct Frag {
    entry: TaskId,
    exits: Vec<TaskId>,
}

struct Builder<'a> {
    cat: &'a Catalog,
    file: &'a str,
    own_name: &'a str,
    own_id: DefId,
    own_version: u32,
    taglist: Vec<&'a str>,
    locks: &'a [LockSpec],
    tasks: Vec<Task>,
    labels: HashMap<String, TaskId>,
    gotos: Vec<(TaskId, String, Line)>,
    returns: Vec<TaskId>,
    errors: Vec<CompileError>,
}

impl Builder<'_> {
    fn emit(&mut self, line: Line, kind: TaskKind, on_error: Option<TaskId>) -> TaskId {
        let id = self.tasks.len();
        self.tasks.push(Task {
            id,
            line,
            kind,
            next: UNSET,
            on_error,
        });
        id
    }

    fn patch(&mut self, exits: &[TaskId], to: TaskId) {
        for e in exits {
            self.tasks[*e].next = to;
        }
    }

    fn single(&mut self, line: Line, kind: TaskKind, on_error: Option<TaskId>) -> Frag {
        let t = self.emit(line, kind, on_error);
        Frag {
            entry: t,
            exits: vec![t],
        }
    }

    fn err(&mut self, line: Line, msg: impl Into<String>) {
        self.errors.push(CompileError::new(self.file, line, msg));
    }

    /// Bind a call target (docs/JCL.md §2.6): calls accept any kind, `callflow`/`map`/
    /// `detachflow` only workflows. A workflow calling its own name binds to itself.
    fn resolve(&mut self, line: Line, name: &str, workflows_only: bool) -> CallTarget {
        if name == self.own_name {
            return CallTarget {
                kind: TargetKind::Workflow,
                name: name.to_string(),
                version: self.own_version,
                def: self.own_id,
            };
        }
        let found = self.cat.select_with(name, &self.taglist, |d| {
            !workflows_only || matches!(d, Compiled::Workflow(_))
        });
        match found {
            Some(d) => CallTarget {
                kind: d.target_kind(),
                name: name.to_string(),
                version: d.version(),
                def: d.id(),
            },
            None => {
                self.err(line, format!("action {name} not found?"));
                CallTarget {
                    kind: TargetKind::Action,
                    name: name.to_string(),
                    version: 0,
                    def: UNSET,
                }
            }
        }
    }

    /// The declaration of a lock type used by `lock`/`unlock`/`wait_for_lock`.
    fn manual_lock(&mut self, line: Line, locktype: &str) -> bool {
        match self.locks.iter().find(|l| l.locktype == locktype) {
            None => {
                self.err(line, format!("unkown lock {locktype}"));
                false
            }
            Some(l) if !l.manual => {
                self.err(line, format!("lock type {locktype} not declared manual"));
                false
            }
            Some(l) => l.inherit,
        }
    }

    fn block(&mut self, block: &[Stmt], on_error: Option<TaskId>) -> Frag {
        let mut entry = None;
        let mut prev: Vec<TaskId> = Vec::new();
        for s in block {
            let f = self.stmt(s, on_error);
            if entry.is_none() {
                entry = Some(f.entry);
            } else {
                self.patch(&prev, f.entry);
            }
            prev = f.exits;
        }
        match entry {
            Some(entry) => Frag { entry, exits: prev },
            None => {
                // The parser never produces empty blocks; keep the graph well formed anyway.
                let line = block.first().map(|s| s.line).unwrap_or(0);
                self.single(line, TaskKind::NoOp(NoOpRole::EndIf), on_error)
            }
        }
    }

    fn if_chain(
        &mut self,
        arms: &[CondBlock],
        else_block: Option<&Block>,
        on_error: Option<TaskId>,
    ) -> Frag {
        let Some((arm, rest)) = arms.split_first() else {
            // Never happens (an if always has its first arm); keep the graph well formed.
            return self.single(0, TaskKind::NoOp(NoOpRole::EndIf), on_error);
        };
        let br = self.emit(
            arm.line,
            TaskKind::Branch {
                cond: arm.cond.clone(),
                negate: false,
                true_next: UNSET,
                role: BranchRole::If,
            },
            on_error,
        );
        let then = self.block(&arm.body, on_error);
        self.set_true(br, then.entry);
        let endif = self.emit(arm.line, TaskKind::NoOp(NoOpRole::EndIf), on_error);
        self.patch(&then.exits, endif);
        let false_next = if !rest.is_empty() {
            let e = self.if_chain(rest, else_block, on_error);
            self.patch(&e.exits, endif);
            e.entry
        } else if let Some(eb) = else_block {
            let e = self.block(eb, on_error);
            self.patch(&e.exits, endif);
            e.entry
        } else {
            endif
        };
        self.tasks[br].next = false_next;
        Frag {
            entry: br,
            exits: vec![endif],
        }
    }

    fn set_true(&mut self, branch: TaskId, to: TaskId) {
        if let TaskKind::Branch { true_next, .. } = &mut self.tasks[branch].kind {
            *true_next = to;
        }
    }

    fn call_task(&mut self, c: &FlowCall, mode: CallMode, on_error: Option<TaskId>) -> TaskId {
        let workflows_only = mode != CallMode::Blocking;
        let target = self.resolve(c.line, &c.target, workflows_only);
        self.emit(
            c.line,
            TaskKind::Call(CallTask {
                target,
                inputs: c.inputs.clone(),
                outputs: if mode == CallMode::Blocking {
                    c.outputs.clone()
                } else {
                    None
                },
                mode,
                map_over: None,
            }),
            on_error,
        )
    }

    fn map_task(&mut self, m: &MapCall, on_error: Option<TaskId>) -> TaskId {
        let target = self.resolve(m.line, &m.target, true);
        if !matches!(m.using.obj, Obj::A | Obj::V) || m.using.path.len() != 1 {
            self.err(m.line, "map variable must be a.name or v.name");
        }
        self.emit(
            m.line,
            TaskKind::Call(CallTask {
                target,
                inputs: m.inputs.clone(),
                outputs: None,
                mode: CallMode::NonBlocking,
                map_over: Some(m.using.clone()),
            }),
            on_error,
        )
    }

    /// n non-blocking calls, `wait_for_children`, n `reap_child` tasks.
    fn split(&mut self, line: Line, items: &[SplitItem], on_error: Option<TaskId>) -> Frag {
        let mut calls = Vec::new();
        for it in items {
            let (t, outputs, l) = match it {
                SplitItem::Callflow(c) => (
                    self.call_task(c, CallMode::NonBlocking, on_error),
                    c.outputs.clone(),
                    c.line,
                ),
                SplitItem::Map(m) => (self.map_task(m, on_error), m.collect.clone(), m.line),
            };
            calls.push((t, outputs, l));
        }
        let wait = self.emit(line, TaskKind::WaitForChildren, on_error);
        let mut reaps = Vec::new();
        for (call_task, outputs, l) in &calls {
            reaps.push(self.emit(
                *l,
                TaskKind::ReapChild {
                    call_task: *call_task,
                    outputs: outputs.clone(),
                },
                on_error,
            ));
        }
        let chain: Vec<TaskId> = calls
            .iter()
            .map(|c| c.0)
            .chain(std::iter::once(wait))
            .chain(reaps.iter().copied())
            .collect();
        for w in chain.windows(2) {
            self.tasks[w[0]].next = w[1];
        }
        let last = *chain.last().unwrap_or(&wait);
        Frag {
            entry: chain[0],
            exits: vec![last],
        }
    }

    fn stmt(&mut self, s: &Stmt, on_error: Option<TaskId>) -> Frag {
        let line = s.line;
        match &s.kind {
            StmtKind::Let { map, .. } => {
                self.single(line, TaskKind::Eval { map: map.clone() }, on_error)
            }
            StmtKind::Call(c) => {
                let t = self.call_task(c, CallMode::Blocking, on_error);
                Frag {
                    entry: t,
                    exits: vec![t],
                }
            }
            StmtKind::DetachFlow(c) => {
                let t = self.call_task(c, CallMode::Detached, on_error);
                Frag {
                    entry: t,
                    exits: vec![t],
                }
            }
            StmtKind::If {
                first,
                elsifs,
                else_block,
            } => {
                let mut arms = vec![first.clone()];
                arms.extend(elsifs.iter().cloned());
                self.if_chain(&arms, else_block.as_ref(), on_error)
            }
            StmtKind::While { cond, body } => {
                let br = self.emit(
                    line,
                    TaskKind::Branch {
                        cond: cond.clone(),
                        negate: false,
                        true_next: UNSET,
                        role: BranchRole::While,
                    },
                    on_error,
                );
                let b = self.block(body, on_error);
                self.set_true(br, b.entry);
                self.patch(&b.exits, br);
                let end = self.emit(line, TaskKind::NoOp(NoOpRole::EndWhile), on_error);
                self.tasks[br].next = end;
                Frag {
                    entry: br,
                    exits: vec![end],
                }
            }
            StmtKind::Repeat {
                body,
                until_line,
                until,
            } => {
                let b = self.block(body, on_error);
                let br = self.emit(
                    *until_line,
                    TaskKind::Branch {
                        cond: until.clone(),
                        negate: false,
                        true_next: UNSET,
                        role: BranchRole::Until,
                    },
                    on_error,
                );
                self.patch(&b.exits, br);
                let end = self.emit(*until_line, TaskKind::NoOp(NoOpRole::EndRepeat), on_error);
                self.set_true(br, end);
                self.tasks[br].next = b.entry;
                Frag {
                    entry: b.entry,
                    exits: vec![end],
                }
            }
            StmtKind::Case {
                expr,
                whens,
                else_block,
            } => {
                let sw = self.emit(
                    line,
                    TaskKind::Switch {
                        expr: expr.clone(),
                        table: Vec::new(),
                    },
                    on_error,
                );
                let mut table = Vec::new();
                let mut exits = Vec::new();
                for w in whens {
                    let f = self.block(&w.body, on_error);
                    for l in &w.labels {
                        table.push((l.clone(), f.entry));
                    }
                    exits.extend(f.exits);
                }
                let else_entry = else_block.as_ref().map(|eb| {
                    let f = self.block(eb, on_error);
                    exits.extend(f.exits);
                    f.entry
                });
                let end = self.emit(line, TaskKind::NoOp(NoOpRole::EndCase), on_error);
                self.patch(&exits, end);
                if let TaskKind::Switch { table: t, .. } = &mut self.tasks[sw].kind {
                    *t = table;
                }
                self.tasks[sw].next = else_entry.unwrap_or(end);
                Frag {
                    entry: sw,
                    exits: vec![end],
                }
            }
            StmtKind::Try { body, catch, .. } => {
                let end = self.emit(line, TaskKind::NoOp(NoOpRole::EndTry), on_error);
                let c = self.block(catch, on_error);
                self.patch(&c.exits, end);
                let t = self.block(body, Some(c.entry));
                self.patch(&t.exits, end);
                Frag {
                    entry: t.entry,
                    exits: vec![end],
                }
            }
            StmtKind::Assert { cond, message } => {
                let br = self.emit(
                    line,
                    TaskKind::Branch {
                        cond: cond.clone(),
                        negate: true,
                        true_next: UNSET,
                        role: BranchRole::Assert,
                    },
                    on_error,
                );
                let raise = self.emit(
                    message.line,
                    TaskKind::RaiseError {
                        message: Code::Expr(message.clone()),
                    },
                    on_error,
                );
                let endif = self.emit(line, TaskKind::NoOp(NoOpRole::EndIf), on_error);
                self.set_true(br, raise);
                self.tasks[raise].next = endif;
                self.tasks[br].next = endif;
                Frag {
                    entry: br,
                    exits: vec![endif],
                }
            }
            StmtKind::Goto { label } => {
                let t = self.emit(
                    line,
                    TaskKind::NoOp(NoOpRole::Goto(label.clone())),
                    on_error,
                );
                self.gotos.push((t, label.clone(), line));
                Frag {
                    entry: t,
                    exits: vec![],
                }
            }
            StmtKind::Label { label } => {
                let t = self.emit(
                    line,
                    TaskKind::NoOp(NoOpRole::Label(label.clone())),
                    on_error,
                );
                if self.labels.insert(label.clone(), t).is_some() {
                    self.err(line, format!("duplicate label {label}"));
                }
                Frag {
                    entry: t,
                    exits: vec![t],
                }
            }
            StmtKind::Return => {
                let t = self.emit(line, TaskKind::NoOp(NoOpRole::Return), on_error);
                self.returns.push(t);
                Frag {
                    entry: t,
                    exits: vec![],
                }
            }
            StmtKind::RaiseError { message } => self.single(
                line,
                TaskKind::RaiseError {
                    message: message.clone(),
                },
                on_error,
            ),
            StmtKind::Sleep { duration } => self.single(
                line,
                TaskKind::Sleep {
                    duration: duration.clone(),
                },
                on_error,
            ),
            StmtKind::Lock { locktype, value } => {
                let inherit = self.manual_lock(line, locktype);
                self.single(
                    line,
                    TaskKind::Lock {
                        locktype: locktype.clone(),
                        value: LockValue::Code(value.clone()),
                        inherit,
                    },
                    on_error,
                )
            }
            StmtKind::Unlock { locktype, value } => {
                self.manual_lock(line, locktype);
                self.single(
                    line,
                    TaskKind::Unlock {
                        locktype: locktype.clone(),
                        value: LockValue::Code(value.clone()),
                    },
                    on_error,
                )
            }
            StmtKind::WaitForLock { locktype, inputs } => {
                let inherit = self.manual_lock(line, locktype);
                let wait = self.lock_wait(inputs);
                self.single(
                    line,
                    TaskKind::WaitForLock {
                        locktype: locktype.clone(),
                        inherit,
                        inputs: inputs.clone(),
                        wait,
                    },
                    on_error,
                )
            }
            StmtKind::Split { items } => self.split(line, items, on_error),
            StmtKind::Map(m) => self.split(line, &[SplitItem::Map(m.clone())], on_error),
            StmtKind::Subscribe { inputs } => self.single(
                line,
                TaskKind::Subscribe {
                    inputs: inputs.clone(),
                },
                on_error,
            ),
            StmtKind::Unsubscribe { inputs } => self.single(
                line,
                TaskKind::Unsubscribe {
                    inputs: inputs.clone(),
                },
                on_error,
            ),
            StmtKind::RaiseEvent { inputs } => self.single(
                line,
                TaskKind::RaiseEvent {
                    inputs: inputs.clone(),
                },
                on_error,
            ),
            StmtKind::WaitForEvent { inputs, outputs } => self.single(
                line,
                TaskKind::WaitForEvent {
                    inputs: inputs.clone(),
                    outputs: outputs.clone(),
                },
                on_error,
            ),
            StmtKind::InterfaceCall {
                interface,
                names,
                target,
                inputs,
                outputs,
                ..
            } => {
                let destinations = names
                    .iter()
                    .map(|n| self.resolve(n.line, &n.name, false))
                    .collect();
                self.single(
                    line,
                    TaskKind::InterfaceCall {
                        interface: interface.clone(),
                        destinations,
                        target: target.clone(),
                        inputs: inputs.clone(),
                        outputs: outputs.clone(),
                    },
                    on_error,
                )
            }
        }
    }

    /// The constant `wait = ...` of a `wait_for_lock` (default `yes`).
    fn lock_wait(&mut self, inputs: &Map) -> LockWait {
        let mut wait = LockWait::Yes;
        if let MapBody::Items(items) = &inputs.body {
            for it in items {
                if let MapItem::Assign(a) = it {
                    if a.target.obj == Obj::I
                        && a.target.path.len() == 1
                        && a.target.path[0].name == "wait"
                    {
                        wait = match &a.value.kind {
                            ExprKind::Lit(Literal::Str(s)) if s == "yes" => LockWait::Yes,
                            ExprKind::Lit(Literal::Str(s)) if s == "no" => LockWait::No,
                            ExprKind::Lit(Literal::Str(s)) => LockWait::Interval(s.clone()),
                            ExprKind::Lit(Literal::Int(n)) => LockWait::Interval(n.to_string()),
                            _ => {
                                self.err(a.line, "wait_for_lock: wait must be a constant ('yes', 'no' or an interval)");
                                LockWait::Yes
                            }
                        };
                    }
                }
            }
        }
        wait
    }
}
