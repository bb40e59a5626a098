//! The scheduler: jobs walking their task graphs inside one store transaction (docs/JCL.md §2.7).
//!
//! A [`Run`] is the engine's work for one transaction. Entry points put work on its queue
//! (continue a job with a [`Flow`], hand a finished child's result to its parent) and
//! [`Run::drain`] processes the queue until every touched job waits (for a worker, a child,
//! a timer) or is finished. Every job is read from and written back to the transaction, so
//! all of it commits or rolls back together. Events are collected and sent after commit.

use std::collections::VecDeque;
use std::sync::Arc;

use jobcenter_store::{
    ChildLink, JobId, JobRecord, JobState, Millis, ParentLink, Step, TaskState, Txn, HISTORY_MAX,
};
use serde_json::{json, Map, Value};
use tracing::{debug, warn};

use super::interval::parse_interval;
use super::json::{catchable, error_value, object_contains};
use super::WaitPolicy;
use super::{Defs, EngineConfig};
use crate::backend::Event;
use crate::compile::graph::{
    Action, CallMode, CallTask, LockWait, TargetKind, Task, TaskId, TaskKind, Workflow,
};
use crate::eval::{self, caught_exception, EnvIds, IoSpec, Phase};
use crate::syntax::ast::Obj;

/// What happens next to a job.
#[derive(Debug)]
pub(crate) enum Flow {
    /// Enter this task (counts a step).
    Goto(TaskId),
    /// Raise this error value at the current task.
    Raise(Value),
    /// The job waits; store it as it is.
    Wait,
    /// Finish with these outargs; `true` if they are an error (`{"error": E}`).
    Finish(Value, bool),
}

/// A unit of scheduler work.
#[derive(Debug)]
enum Work {
    /// Continue a job (already taken out of the store) with a flow.
    Continue(Box<JobRecord>, Flow),
    /// A non-blocking child finished (zombie or error): re-check the parent's join.
    ChildSettled(JobId),
    /// A blocking child finished: `Ok(outargs)` or `Err(error value)`.
    ChildDone {
        parent: JobId,
        child: JobId,
        outcome: Result<Value, Value>,
    },
}

/// The scheduler state of one transaction.
pub(crate) struct Run<'e> {
    pub defs: &'e Defs,
    pub cfg: &'e EngineConfig,
    pub now: Millis,
    pub events: Vec<Event>,
    /// Jobs finished in this run, for the [`crate::backend::Observer`]: workflow
    /// definition id, failed, latency in ms (no allocation per job).
    pub finished: Vec<(u64, bool, Millis)>,
    queue: VecDeque<Work>,
}

fn raise_msg(msg: String) -> Flow {
    Flow::Raise(error_value(msg, "normal"))
}

fn ids(job: &JobRecord, wf: &Workflow, task: TaskId) -> EnvIds {
    EnvIds {
        workflow_id: wf.id as i64,
        job_id: job.id,
        task_id: task as i64,
    }
}

/// `e.max_depth` as an integer (number or numeric string), else the default 9.
pub(crate) fn max_depth_of(env: &Map<String, Value>) -> i64 {
    let parsed = match env.get("max_depth") {
        Some(Value::Number(n)) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        Some(Value::String(s)) => {
            let t = s.trim();
            t.parse::<i64>()
                .ok()
                .or_else(|| t.parse::<f64>().ok().map(|f| f as i64))
        }
        _ => None,
    };
    parsed.unwrap_or(crate::compile::DEFAULT_MAX_DEPTH)
}

impl<'e> Run<'e> {
    /// A run at time `now`.
    pub fn new(defs: &'e Defs, cfg: &'e EngineConfig, now: Millis) -> Self {
        Run {
            defs,
            cfg,
            now,
            events: Vec::new(),
            finished: Vec::new(),
            queue: VecDeque::new(),
        }
    }

    /// Queue a job to continue with `flow`.
    pub fn push(&mut self, job: JobRecord, flow: Flow) {
        self.queue.push_back(Work::Continue(Box::new(job), flow));
    }

    /// Process all queued work.
    pub fn drain(&mut self, txn: &mut dyn Txn) {
        while let Some(w) = self.queue.pop_front() {
            match w {
                Work::Continue(job, flow) => self.advance(txn, *job, flow),
                Work::ChildDone {
                    parent,
                    child,
                    outcome,
                } => self.child_done(txn, parent, child, outcome),
                Work::ChildSettled(parent) => self.child_settled(txn, parent),
            }
        }
    }

    /// A fresh job record positioned on `wf`'s start task.
    #[allow(clippy::too_many_arguments)]
    pub fn new_job(
        &self,
        id: JobId,
        wf: &Workflow,
        args: Map<String, Value>,
        env: Map<String, Value>,
        depth: i64,
        parent: Option<ParentLink>,
    ) -> JobRecord {
        JobRecord {
            id,
            workflow: wf.name.clone(),
            version: wf.version,
            workflow_def: wf.id as u64,
            state: JobState::Plotting,
            task: wf.start as u64,
            steps: 0,
            max_steps: wf.max_steps,
            depth,
            parent,
            children: Vec::new(),
            subscriptions: Vec::new(),
            args: Arc::new(args),
            env: Arc::new(env),
            vars: Arc::default(),
            out_args: None,
            task_state: TaskState::default(),
            aborted: false,
            created_at: self.now,
            updated_at: self.now,
            finished_at: None,
            wake_at: None,
            history: Vec::new(),
        }
    }

    /// The flow that leaves the `start` task (not counted as a step).
    pub fn start_flow(wf: &Workflow) -> Flow {
        match wf.task(wf.start) {
            Some(t) => Flow::Goto(t.next),
            None => raise_msg(format!("no start task in workflow {} .", wf.name)),
        }
    }

    fn advance(&mut self, txn: &mut dyn Txn, mut job: JobRecord, mut flow: Flow) {
        // Every line logged while the job moves on carries its id and workflow.
        let span = tracing::info_span!("job", job_id = job.id, workflow = %job.workflow);
        let _in_job = span.enter();
        // A parent that finished meanwhile (in this run) may have marked the stored copy.
        if txn.job(job.id).is_some_and(|j| j.aborted) {
            job.aborted = true;
        }
        let Some(wf) = self.defs.workflow(job.workflow_def) else {
            warn!(job = job.id, "job refers to an unknown workflow definition");
            let out = json!({"error": error_value("workflow definition not found", "fatal")});
            self.finish(txn, job, out, true);
            return;
        };
        loop {
            flow = match flow {
                Flow::Goto(t) => self.enter(txn, &mut job, &wf, t),
                Flow::Raise(err) => self.raise(&mut job, &wf, err),
                Flow::Wait => {
                    job.updated_at = self.now;
                    txn.put_job(job);
                    return;
                }
                Flow::Finish(out, is_err) => {
                    self.finish(txn, job, out, is_err);
                    return;
                }
            }
        }
    }

    /// Raise `err` at the job's current task: catch it or finish the job with it.
    fn raise(&mut self, job: &mut JobRecord, wf: &Workflow, err: Value) -> Flow {
        let on_error = wf.task(job.task as TaskId).and_then(|t| t.on_error);
        match on_error {
            Some(target) if catchable(&err) => {
                debug!(job = job.id, task = job.task, "error caught");
                Arc::make_mut(&mut job.env).insert("_error".into(), err);
                job.aborted = false;
                Flow::Goto(target)
            }
            _ => {
                if let Some(s) = job.history.last_mut().filter(|s| s.task == job.task) {
                    s.error = Some(err.clone());
                }
                let mut out = Map::new();
                out.insert("error".into(), err);
                Flow::Finish(Value::Object(out), true)
            }
        }
    }

    /// Enter task `t`: count the step, check the limits, execute it.
    fn enter(&mut self, txn: &mut dyn Txn, job: &mut JobRecord, wf: &Workflow, t: TaskId) -> Flow {
        job.steps += 1;
        close_step(job);
        if job.history.len() >= HISTORY_MAX {
            job.history.remove(0);
        }
        job.history.push(Step {
            task: t as u64,
            at: self.now,
            ..Step::default()
        });
        job.task = t as u64;
        job.task_state = TaskState::default();
        job.state = JobState::Plotting;
        if job.steps > job.max_steps {
            return Flow::Raise(error_value(
                format!(
                    "maximum step count exceeded: {} > {}",
                    job.steps, job.max_steps
                ),
                "fatal",
            ));
        }
        if job.aborted {
            return Flow::Raise(error_value("aborted by parent job", "abort"));
        }
        let Some(task) = wf.task(t) else {
            return Flow::Raise(error_value(format!("no task {t} in workflow"), "fatal"));
        };
        self.execute(txn, job, wf, task)
    }

    fn execute(
        &mut self,
        txn: &mut dyn Txn,
        job: &mut JobRecord,
        wf: &Workflow,
        task: &Task,
    ) -> Flow {
        match &task.kind {
            TaskKind::Start | TaskKind::NoOp(_) => Flow::Goto(task.next),
            TaskKind::End => self.end(job, wf, task),
            TaskKind::Eval { map } => {
                match eval::run_let(
                    map,
                    &job.args,
                    &job.env,
                    &job.vars,
                    Some(ids(job, wf, task.id)),
                ) {
                    Ok(Some(v)) => {
                        job.vars = Arc::new(v);
                        Flow::Goto(task.next)
                    }
                    Ok(None) => Flow::Goto(task.next),
                    Err(e) => raise_msg(caught_exception(Phase::Eval, e.sqlstate(), &e.message())),
                }
            }
            TaskKind::Branch {
                cond,
                negate,
                true_next,
                ..
            } => match eval::run_condition(cond, &job.args, &job.env, &job.vars) {
                Ok((b, v)) => {
                    if let Some(v) = v {
                        job.vars = Arc::new(v);
                    }
                    if b != *negate {
                        Flow::Goto(*true_next)
                    } else {
                        Flow::Goto(task.next)
                    }
                }
                Err(e) => raise_msg(caught_exception(
                    Phase::BoolCode,
                    e.sqlstate(),
                    &e.message(),
                )),
            },
            TaskKind::Switch { expr, table } => {
                match eval::run_case(expr, &job.args, &job.env, &job.vars) {
                    Ok((s, v)) => {
                        if let Some(v) = v {
                            job.vars = Arc::new(v);
                        }
                        match table.iter().find(|(label, _)| *label == s) {
                            Some((_, target)) => Flow::Goto(*target),
                            None => Flow::Goto(task.next),
                        }
                    }
                    Err(e) => raise_msg(caught_exception(
                        Phase::StringCode,
                        e.sqlstate(),
                        &e.message(),
                    )),
                }
            }
            TaskKind::RaiseError { message } => {
                let i = match eval::run_implicit_input(
                    "msg",
                    message,
                    &job.args,
                    &job.env,
                    &job.vars,
                    Some(ids(job, wf, task.id)),
                ) {
                    Ok(i) => i,
                    Err(e) => {
                        return raise_msg(caught_exception(
                            Phase::InArgsMap,
                            e.sqlstate(),
                            &e.message(),
                        ))
                    }
                };
                let spec = [IoSpec::base("msg", "string").unwrap_or_else(string_spec)];
                match eval::check_inputs_owned(&spec, i) {
                    Ok(mut i) => {
                        let msg = i.remove("msg").unwrap_or(Value::Null);
                        Flow::Raise(json!({"msg": msg, "class": "normal"}))
                    }
                    Err(e) => raise_msg(caught_exception(
                        Phase::InArgsMap,
                        e.sqlstate(),
                        &e.to_string(),
                    )),
                }
            }
            TaskKind::Sleep { duration } => self.sleep(job, wf, task, duration),
            TaskKind::WaitForChildren => self.wait_children(txn, job),
            TaskKind::Subscribe { inputs } => self.subscribe_task(job, wf, task, inputs),
            TaskKind::Unsubscribe { inputs } => self.unsubscribe_task(job, wf, task, inputs),
            TaskKind::RaiseEvent { inputs } => self.raise_event_task(txn, job, wf, task, inputs),
            TaskKind::WaitForEvent { inputs, .. } => {
                self.wait_for_event_task(job, wf, task, inputs)
            }
            TaskKind::Lock {
                locktype,
                value,
                inherit,
            } => self.lock_task(txn, job, task, locktype, value, *inherit),
            TaskKind::Unlock { locktype, value } => {
                self.unlock_task(txn, job, task, locktype, value)
            }
            TaskKind::WaitForLock {
                locktype,
                inherit,
                inputs,
                wait,
            } => {
                let policy = match wait {
                    LockWait::Yes => WaitPolicy::Forever,
                    LockWait::No => WaitPolicy::No,
                    LockWait::Interval(text) => match parse_interval(text) {
                        Some(secs) => WaitPolicy::Until(self.now + secs_to_millis(secs)),
                        None => {
                            return raise_msg(format!(
                                "caught exception in do_inargsmap sqlstate 22007 sqlerrm invalid input syntax for type interval: \"{text}\""
                            ))
                        }
                    },
                };
                self.wait_for_lock_task(txn, job, wf, task, locktype, *inherit, inputs, policy)
            }
            TaskKind::ReapChild { call_task, outputs } => {
                self.reap(txn, job, wf, *call_task, outputs.as_ref())
            }
            TaskKind::InterfaceCall {
                destinations,
                target,
                inputs,
                ..
            } => {
                let name = match eval::run_lock_value(target, &job.args, &job.env, &job.vars) {
                    Ok(n) => n,
                    Err(e) => {
                        return raise_msg(caught_exception(
                            Phase::StringCode,
                            e.sqlstate(),
                            &e.message(),
                        ))
                    }
                };
                let Some(dest) = destinations.iter().find(|d| d.name == name) else {
                    return raise_msg(format!("interface call destination {name} does not exist?"));
                };
                job.task_state.target_def = Some(dest.def as u64);
                let ct = CallTask {
                    target: dest.clone(),
                    inputs: inputs.clone(),
                    outputs: None,
                    mode: CallMode::Blocking,
                    map_over: None,
                };
                match dest.kind {
                    TargetKind::Action => self.call_action(txn, job, wf, task, &ct),
                    TargetKind::Workflow => self.call_workflow(txn, job, wf, task, &ct),
                    TargetKind::Procedure => {
                        raise_msg("calling procedures is not supported by this engine yet".into())
                    }
                }
            }
            TaskKind::Call(ct) => match ct.target.kind {
                TargetKind::Action => self.call_action(txn, job, wf, task, ct),
                TargetKind::Workflow => self.call_workflow(txn, job, wf, task, ct),
                TargetKind::Procedure => {
                    raise_msg("calling procedures is not supported by this engine yet".into())
                }
            },
        }
    }

    fn sleep(
        &mut self,
        job: &mut JobRecord,
        wf: &Workflow,
        task: &Task,
        duration: &crate::syntax::ast::Code,
    ) -> Flow {
        let i = match eval::run_implicit_input(
            "timeout",
            duration,
            &job.args,
            &job.env,
            &job.vars,
            Some(ids(job, wf, task.id)),
        ) {
            Ok(i) => i,
            Err(e) => {
                return raise_msg(caught_exception(
                    Phase::InArgsMap,
                    e.sqlstate(),
                    &e.message(),
                ))
            }
        };
        let text = match i.get("timeout") {
            Some(v) => eval::to_perl_string(v).unwrap_or_default(),
            None => String::new(),
        };
        match parse_interval(&text) {
            Some(secs) => {
                job.state = JobState::Sleeping;
                job.wake_at = Some(self.now + secs_to_millis(secs));
                Flow::Wait
            }
            None => raise_msg(format!(
                "caught exception in do_inargsmap sqlstate 22007 sqlerrm invalid input syntax for type interval: \"{text}\""
            )),
        }
    }

    fn end(&mut self, job: &mut JobRecord, wf: &Workflow, task: &Task) -> Flow {
        let o = match &wf.wfomap {
            Some(m) => match eval::run_wfomap(
                m,
                &job.args,
                &job.env,
                &job.vars,
                Some(ids(job, wf, task.id)),
            ) {
                Ok(o) => o,
                Err(e) => {
                    return raise_msg(caught_exception(
                        Phase::WorkflowOutArgsMap,
                        e.sqlstate(),
                        &e.message(),
                    ))
                }
            },
            None => Map::new(),
        };
        let specs = self.defs.specs(wf.id);
        let checked = match specs {
            Some(s) => match &s.outputs {
                Ok(spec) => eval::check_outputs(spec, &o).map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            },
            None => Ok(()),
        };
        match checked {
            Ok(()) => Flow::Finish(Value::Object(o), false),
            Err(msg) => raise_msg(caught_exception(Phase::WorkflowOutArgsMap, "P0001", &msg)),
        }
    }

    /// Run an input map and check it against `spec` (`do_inargsmap` errors).
    fn inputs(
        &self,
        job: &JobRecord,
        env: &Map<String, Value>,
        wf: &Workflow,
        task: &Task,
        ct: &CallTask,
        spec: &Result<Vec<IoSpec>, eval::TypeError>,
    ) -> Result<Map<String, Value>, Flow> {
        let i = eval::run_input_map(
            &ct.inputs,
            &job.args,
            env,
            &job.vars,
            Some(ids(job, wf, task.id)),
        )
        .map_err(|e| {
            raise_msg(caught_exception(
                Phase::InArgsMap,
                e.sqlstate(),
                &e.message(),
            ))
        })?;
        let spec = spec
            .as_ref()
            .map_err(|e| raise_msg(caught_exception(Phase::InArgsMap, "P0001", &e.to_string())))?;
        eval::check_inputs_owned(spec, i)
            .map_err(|e| raise_msg(caught_exception(Phase::InArgsMap, "P0001", &e.to_string())))
    }

    fn call_action(
        &mut self,
        txn: &mut dyn Txn,
        job: &mut JobRecord,
        wf: &Workflow,
        task: &Task,
        ct: &CallTask,
    ) -> Flow {
        let (Some(action), Some(specs)) = (
            self.defs.catalog.action(ct.target.def),
            self.defs.specs(ct.target.def),
        ) else {
            return raise_msg(format!("no action named {}.", ct.target.name));
        };
        let inargs = match self.inputs(job, &job.env, wf, task, ct, &specs.inputs) {
            Ok(i) => i,
            Err(flow) => return flow,
        };
        let env = if action.env.is_empty() {
            Map::new()
        } else {
            let ids = ids(job, wf, task.id);
            let mut obj = Map::new();
            for spec in &action.env {
                let v = match spec.name.as_str() {
                    "workflow_id" => Some(json!(ids.workflow_id)),
                    "job_id" => Some(json!(ids.job_id)),
                    "task_id" => Some(json!(ids.task_id)),
                    k => job.env.get(k).cloned(),
                };
                if let Some(v) = v {
                    obj.insert(spec.name.clone(), v);
                }
            }
            let checked = match &specs.env {
                Ok(spec) => eval::check_inputs_owned(spec, obj).map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            match checked {
                Ok(env) => env,
                Err(msg) => return raise_msg(format!("action environment error: {msg}")),
            }
        };
        let inargs = Value::Object(inargs);
        self.notify_ready(txn, job.id, action, &inargs);
        job.state = JobState::Ready;
        job.task_state.action = Some(action.name.clone());
        job.task_state.inargs = Some(Arc::new(inargs));
        job.task_state.env = Some(Arc::new(env));
        Flow::Wait
    }

    /// Emit `ActionReady` for a job whose task of `action` became ready (§10.11).
    pub fn notify_ready(&mut self, txn: &dyn Txn, job_id: JobId, action: &Action, inargs: &Value) {
        let workers = if action.filter.is_some() {
            let empty = Map::new();
            let inargs_obj = inargs.as_object().unwrap_or(&empty);
            let mut ids: Vec<i64> = txn
                .active_workers()
                .into_iter()
                .filter(|w| {
                    w.registrations.iter().any(|r| {
                        r.action == action.name
                            && r.filter.as_ref().is_none_or(|f| {
                                object_contains(inargs_obj, &Value::Object(f.clone()))
                            })
                    })
                })
                .map(|w| w.id)
                .collect();
            if ids.is_empty() {
                return;
            }
            ids.sort_unstable();
            Some(ids)
        } else {
            None
        };
        self.events.push(Event::ActionReady {
            action: action.name.clone(),
            job_id,
            workers,
        });
    }

    fn call_workflow(
        &mut self,
        txn: &mut dyn Txn,
        job: &mut JobRecord,
        wf: &Workflow,
        task: &Task,
        ct: &CallTask,
    ) -> Flow {
        let (Some(child_wf), Some(specs)) = (
            self.defs.catalog.workflow(ct.target.def),
            self.defs.specs(ct.target.def),
        ) else {
            return raise_msg(format!("no workflow named {}", ct.target.name));
        };
        let d = job.depth;
        let max = max_depth_of(&job.env);
        if d >= max {
            return Flow::Raise(error_value(
                format!("maximum call depth would be exceeded: {d} >= {max}"),
                "fatal",
            ));
        }
        // One child per element for `map W using X`, else exactly one.
        let args_list = match &ct.map_over {
            None => match self.inputs(job, &job.env, wf, task, ct, &specs.inputs) {
                Ok(i) => vec![i],
                Err(flow) => return flow,
            },
            Some(var) => {
                let name = var.path.first().map(|p| p.name.as_str()).unwrap_or("");
                let label = format!("{}.{}", var.obj.letter(), name);
                let src = if var.obj == Obj::A {
                    &job.args
                } else {
                    &job.vars
                };
                let items = match src.get(name) {
                    None => return raise_msg(format!("map variable {label} does not exist?")),
                    Some(Value::Array(items)) => items.clone(),
                    Some(_) => return raise_msg(format!("map variable {label} is not an array")),
                };
                let mut list = Vec::with_capacity(items.len());
                for (idx, item) in items.into_iter().enumerate() {
                    let mut env = (*job.env).clone();
                    env.insert("_i".into(), json!(idx + 1));
                    env.insert("_v".into(), item);
                    match self.inputs(job, &env, wf, task, ct, &specs.inputs) {
                        Ok(i) => list.push(i),
                        Err(flow) => return flow,
                    }
                }
                list
            }
        };
        let mut env = (*job.env).clone();
        for (k, v) in &child_wf.wfenv {
            env.insert(k.clone(), v.clone());
        }
        for (k, v) in &self.cfg.global_env {
            env.insert(k.clone(), v.clone());
        }
        env.insert("max_depth".into(), json!(max));
        let parent = match ct.mode {
            CallMode::Detached => None,
            mode => Some(ParentLink {
                job_id: job.id,
                task: task.id as u64,
                wait: mode == CallMode::Blocking,
            }),
        };
        let mut last = None;
        for args in args_list {
            let child_id = txn.next_job_id();
            let child = self.new_job(child_id, child_wf, args, env.clone(), d + 1, parent.clone());
            debug!(job = job.id, child = child_id, workflow = %child_wf.name, "child job created");
            // Visible at once (a `wait_for_children` later in this transaction must see it).
            txn.put_job(child.clone());
            self.push(child, Self::start_flow(child_wf));
            if ct.mode == CallMode::NonBlocking {
                job.children.push(ChildLink {
                    job_id: child_id,
                    task: task.id as u64,
                });
            }
            last = Some(child_id);
        }
        match ct.mode {
            CallMode::Blocking => {
                job.state = JobState::ChildWait;
                job.task_state.child = last;
                Flow::Wait
            }
            CallMode::NonBlocking | CallMode::Detached => Flow::Goto(task.next),
        }
    }
}

fn string_spec() -> IoSpec {
    IoSpec {
        name: "msg".into(),
        ty: eval::IoType::Base(eval::types::BaseType::String),
        default: None,
        optional: false,
    }
}

/// Seconds (possibly fractional or negative) to milliseconds, saturating at 0.
pub(crate) fn secs_to_millis(secs: f64) -> Millis {
    if secs.is_finite() && secs > 0.0 {
        (secs * 1000.0).round() as Millis
    } else {
        0
    }
}

/// The action of the call task a job is at, if it is at one.
pub(crate) fn job_action<'d>(defs: &'d Defs, job: &JobRecord) -> Option<&'d Arc<Action>> {
    let wf = defs.catalog.workflow(job.workflow_def as usize)?;
    match bound_call(wf, job)? {
        (def, TargetKind::Action, _) => defs.catalog.action(def),
        _ => None,
    }
}

/// The call a job is at: the bound definition, its kind and the output map (for an
/// interface call, the destination chosen at run time).
pub(crate) fn bound_call<'w>(
    wf: &'w Workflow,
    job: &JobRecord,
) -> Option<(usize, TargetKind, Option<&'w crate::syntax::ast::Map>)> {
    match &wf.task(job.task as TaskId)?.kind {
        TaskKind::Call(ct) => Some((ct.target.def, ct.target.kind, ct.outputs.as_ref())),
        TaskKind::InterfaceCall {
            destinations,
            outputs,
            ..
        } => {
            let def = job.task_state.target_def? as usize;
            let t = destinations.iter().find(|t| t.def == def)?;
            Some((def, t.kind, outputs.as_ref()))
        }
        _ => None,
    }
}

impl Run<'_> {
    /// Finish a job with `out` (docs/JCL.md §2.7 "Finishing normally", §2.10 "Uncaught").
    fn finish(&mut self, txn: &mut dyn Txn, mut job: JobRecord, out: Value, is_err: bool) {
        let zombie = !is_err && job.parent.as_ref().is_some_and(|p| !p.wait);
        job.state = if is_err {
            JobState::Error
        } else if zombie {
            JobState::Zombie
        } else {
            JobState::Finished
        };
        job.finished_at = Some(self.now);
        job.updated_at = self.now;
        job.task_state.claim = None;
        close_step(&mut job);
        // Successful jobs are archived later; failed jobs stay in the live table (§10.12);
        // zombies wait for their parent.
        job.wake_at = (!is_err && !zombie).then(|| self.now + self.cfg.archive_after_ms());
        debug!(
            job = job.id,
            workflow = %job.workflow,
            state = ?job.state,
            ms = self.now.saturating_sub(job.created_at),
            steps = job.steps,
            "job finished"
        );
        self.events.push(Event::JobFinished(job.id));
        self.finished.push((
            job.workflow_def,
            is_err,
            self.now.saturating_sub(job.created_at),
        ));
        for c in std::mem::take(&mut job.children) {
            self.orphan(txn, c.job_id);
        }
        self.release_all(txn, job.id);
        job.subscriptions.clear();
        if let Some(p) = &job.parent {
            if !p.wait {
                self.queue.push_back(Work::ChildSettled(p.job_id));
            } else {
                let outcome = if is_err {
                    Err(out.get("error").cloned().unwrap_or(Value::Null))
                } else {
                    Ok(out.clone())
                };
                self.queue.push_back(Work::ChildDone {
                    parent: p.job_id,
                    child: job.id,
                    outcome,
                });
            }
        }
        job.out_args = Some(out);
        txn.put_job(job);
    }

    /// A blocking child finished: complete the parent's call task (§2.9).
    fn child_done(
        &mut self,
        txn: &mut dyn Txn,
        parent: JobId,
        child: JobId,
        outcome: Result<Value, Value>,
    ) {
        let Some(mut job) = txn.job(parent) else {
            return;
        };
        if job.state != JobState::ChildWait || job.task_state.child != Some(child) {
            debug!(job = parent, child, "parent no longer waits for this child");
            return;
        }
        job.state = JobState::Plotting;
        let flow = match outcome {
            Err(x) => Flow::Raise(json!({
                "msg": format!("childjob {child} raised error"),
                "class": "childerror",
                "error": x,
            })),
            Ok(out) => {
                let wf = self.defs.workflow(job.workflow_def);
                match wf.as_deref().and_then(|wf| bound_call(wf, &job)) {
                    Some((def, _, outputs)) => {
                        self.apply_outputs(&mut job, Some(def), outputs, out)
                    }
                    None => Flow::Raise(error_value("parent is not at a call task", "fatal")),
                }
            }
        };
        self.push(job, flow);
    }

    /// Output check against definition `callee`'s `out:` and the caller's output map, then
    /// continue with the next task (`do_outargsmap` errors).
    pub(crate) fn apply_outputs(
        &mut self,
        job: &mut JobRecord,
        callee: Option<usize>,
        map: Option<&crate::syntax::ast::Map>,
        outargs: Value,
    ) -> Flow {
        let Some(wf) = self.defs.workflow(job.workflow_def) else {
            return Flow::Raise(error_value("workflow definition not found", "fatal"));
        };
        let t = job.task as TaskId;
        let next = wf.task(t).map(|x| x.next).unwrap_or(wf.end);
        let o = match outargs {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        if let Some(specs) = callee.and_then(|c| self.defs.specs(c)) {
            let checked = match &specs.outputs {
                Ok(spec) => eval::check_outputs(spec, &o).map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            if let Err(msg) = checked {
                return raise_msg(caught_exception(Phase::OutArgsMap, "P0001", &msg));
            }
        }
        if let Some(m) = map {
            match eval::run_output_map(
                m,
                &job.args,
                &job.env,
                &job.vars,
                &o,
                Some(ids(job, &wf, t)),
            ) {
                Ok(Some(v)) => job.vars = Arc::new(v),
                Ok(None) => {}
                Err(e) => {
                    return raise_msg(caught_exception(
                        Phase::OutArgsMap,
                        e.sqlstate(),
                        &e.message(),
                    ))
                }
            }
        }
        Flow::Goto(next)
    }

    /// A worker's result for a claimed job (the claim already cleared) (§10.10).
    pub fn task_result(&mut self, mut job: JobRecord, outargs: Value) {
        job.state = JobState::Plotting;
        let error = match &outargs {
            Value::Object(o) => o.get("error").cloned(),
            Value::Array(a) => a
                .iter()
                .any(|v| v.as_str() == Some("error"))
                .then_some(Value::Null),
            _ => None,
        };
        let flow = match error {
            Some(e) => self.task_error(&mut job, e, outargs),
            None => {
                let wf = self.defs.workflow(job.workflow_def);
                match wf.as_deref().and_then(|wf| bound_call(wf, &job)) {
                    Some((def, _, outputs)) => {
                        self.apply_outputs(&mut job, Some(def), outputs, outargs)
                    }
                    None => Flow::Raise(error_value("job is not at a call task", "fatal")),
                }
            }
        };
        self.push(job, flow);
    }

    /// The task error path (§10.10): retry soft errors per the action's policy, else raise.
    /// `doc` is the whole error document (`{"error": E}`).
    pub fn task_error(&mut self, job: &mut JobRecord, err: Value, doc: Value) -> Flow {
        let soft = err.get("class").and_then(Value::as_str) == Some("soft");
        let policy = if soft {
            job_action(self.defs, job).and_then(|a| a.retry.clone())
        } else {
            None
        };
        let Some(policy) = policy else {
            return Flow::Raise(err);
        };
        let t = job.task_state.tries.unwrap_or(1);
        if policy.tries >= 0 && t >= policy.tries {
            return Flow::Raise(err);
        }
        let text = policy.interval.unwrap_or_else(|| "0".into());
        match parse_interval(&text) {
            Some(secs) => {
                job.state = JobState::RetryWait;
                job.wake_at = Some(self.now + secs_to_millis(secs * (t.max(1) as f64).sqrt()));
                job.task_state.error = Some(err);
                Flow::Wait
            }
            None => Flow::Raise(json!({
                "msg": format!("error calculating retry timeout sqlstate 22007 sqlerrm invalid input syntax for type interval: \"{text}\""),
                "class": "normal",
                "olderror": doc,
            })),
        }
    }

    /// A job's `wake_at` passed: retry, timeout, end of sleep or archival.
    pub fn wake(&mut self, txn: &mut dyn Txn, mut job: JobRecord) {
        let due = job.wake_at.is_some_and(|t| t <= self.now);
        job.wake_at = None;
        if !due {
            txn.put_job(job);
            return;
        }
        match job.state {
            JobState::RetryWait => {
                job.task_state.tries = Some(job.task_state.tries.unwrap_or(0) + 1);
                job.state = JobState::Ready;
                job.updated_at = self.now;
                if let (Some(action), Some(inargs)) =
                    (job_action(self.defs, &job), job.task_state.inargs.as_ref())
                {
                    self.notify_ready(txn, job.id, action, inargs);
                }
                txn.put_job(job);
            }
            JobState::Working => {
                let err = error_value(
                    format!("timeout for job {} in task {}", job.id, job.task),
                    "soft",
                );
                job.task_state.claim = None;
                job.state = JobState::Plotting;
                let doc = json!({"error": err.clone()});
                let flow = self.task_error(&mut job, err, doc);
                self.push(job, flow);
            }
            JobState::Sleeping => {
                let next = self
                    .defs
                    .workflow(job.workflow_def)
                    .and_then(|wf| wf.task(job.task as TaskId).map(|t| t.next));
                match next {
                    Some(n) => self.push(job, Flow::Goto(n)),
                    None => txn.put_job(job),
                }
            }
            JobState::Finished => {
                txn.archive_job(job.id);
            }
            JobState::LockWait => self.lock_timeout(job),
            JobState::EventWait => self.event_timeout(job),
            _ => txn.put_job(job),
        }
    }

    /// The claiming worker went away: soft error for retryable actions, else back to
    /// `ready` (our fix of the original's stuck job, see the module docs).
    pub fn worker_gone(&mut self, txn: &mut dyn Txn, mut job: JobRecord) {
        job.task_state.claim = None;
        job.wake_at = None;
        let Some(action) = job_action(self.defs, &job) else {
            job.state = JobState::Plotting;
            self.push(job, Flow::Raise(error_value("worker disconnected", "soft")));
            return;
        };
        if action.retryable {
            job.state = JobState::Plotting;
            let err = error_value("worker disconnected", "soft");
            let doc = json!({"error": err.clone()});
            let flow = self.task_error(&mut job, err, doc);
            self.push(job, flow);
        } else {
            job.state = JobState::Ready;
            job.updated_at = self.now;
            if let Some(inargs) = job.task_state.inargs.clone() {
                self.notify_ready(txn, job.id, action, &inargs);
            }
            txn.put_job(job);
        }
    }
}

impl Run<'_> {
    /// The parent of `child` finished: abort it if it still runs, release it if a zombie.
    fn orphan(&mut self, txn: &mut dyn Txn, child: JobId) {
        let Some(mut c) = txn.job(child) else {
            return;
        };
        match c.state {
            JobState::Zombie => {
                c.state = JobState::Finished;
                c.wake_at = Some(self.now + self.cfg.archive_after_ms());
            }
            s if s.is_final() => return,
            _ => c.aborted = true,
        }
        txn.put_job(c);
    }

    /// `wait_for_children` (§2.9): an errored child raises `childerror`; all zombies →
    /// continue; otherwise wait.
    fn wait_children(&mut self, txn: &dyn Txn, job: &mut JobRecord) -> Flow {
        let mut all_done = true;
        for (i, c) in job.children.iter().enumerate() {
            match txn.job(c.job_id).map(|j| (j.state, j.out_args)) {
                Some((JobState::Error, out)) => {
                    let err = out
                        .as_ref()
                        .and_then(|o| o.get("error"))
                        .cloned()
                        .unwrap_or(Value::Null);
                    let id = c.job_id;
                    job.children.remove(i);
                    return Flow::Raise(json!({
                        "msg": format!("childjob {id} raised error"),
                        "class": "childerror",
                        "error": err,
                    }));
                }
                Some((JobState::Zombie, _)) | None => {}
                Some(_) => all_done = false,
            }
        }
        if all_done {
            let next = self
                .defs
                .workflow(job.workflow_def)
                .and_then(|wf| wf.task(job.task as TaskId).map(|t| t.next));
            match next {
                Some(n) => Flow::Goto(n),
                None => Flow::Raise(error_value("no task after wait_for_children", "fatal")),
            }
        } else {
            job.state = JobState::ChildWait;
            Flow::Wait
        }
    }

    /// A non-blocking child settled: if the parent waits in `wait_for_children`, re-check.
    fn child_settled(&mut self, txn: &mut dyn Txn, parent: JobId) {
        let Some(mut job) = txn.job(parent) else {
            return;
        };
        if job.state != JobState::ChildWait || job.task_state.child.is_some() {
            return;
        }
        let at_join = self
            .defs
            .workflow(job.workflow_def)
            .and_then(|wf| wf.task(job.task as TaskId).map(|t| t.kind.clone()))
            .is_some_and(|k| matches!(k, TaskKind::WaitForChildren));
        if !at_join {
            return;
        }
        job.state = JobState::Plotting;
        let flow = self.wait_children(txn, &mut job);
        if matches!(flow, Flow::Wait) {
            // Still waiting: nothing changed.
            return;
        }
        // Record that the job no longer waits, so a later settle in this run ignores it.
        txn.put_job(job.clone());
        self.push(job, flow);
    }

    /// `reap_child` (§2.9 step 4): collect the zombie created by `call_task` (for `map`:
    /// every child of it, in creation order; none is fine).
    fn reap(
        &mut self,
        txn: &mut dyn Txn,
        job: &mut JobRecord,
        wf: &Workflow,
        call_task: TaskId,
        outputs: Option<&crate::syntax::ast::Map>,
    ) -> Flow {
        let (callee, is_map) = match wf.task(call_task).map(|t| &t.kind) {
            Some(TaskKind::Call(ct)) => (ct.target.def, ct.map_over.is_some()),
            _ => return Flow::Raise(error_value("reap_child without its call task", "fatal")),
        };
        let mine: Vec<ChildLink> = job
            .children
            .iter()
            .filter(|c| c.task == call_task as u64)
            .cloned()
            .collect();
        if mine.is_empty() && !is_map {
            return raise_msg("no zombie childjob found in reap_child_task".into());
        }
        let mut flow = None;
        for link in mine.iter().take(if is_map { usize::MAX } else { 1 }) {
            let Some(mut child) = txn.job(link.job_id).filter(|j| j.state == JobState::Zombie)
            else {
                return raise_msg("no zombie childjob found in reap_child_task".into());
            };
            job.children.retain(|c| c.job_id != link.job_id);
            let out = child.out_args.clone().unwrap_or(Value::Null);
            child.state = JobState::Finished;
            child.wake_at = Some(self.now + self.cfg.archive_after_ms());
            txn.put_job(child);
            let f = self.apply_outputs(job, Some(callee), outputs, out);
            if !matches!(f, Flow::Goto(_)) {
                return f;
            }
            flow = Some(f);
        }
        match flow {
            Some(f) => f,
            None => match wf.task(job.task as TaskId) {
                Some(t) => Flow::Goto(t.next),
                None => Flow::Raise(error_value("reap_child without successor", "fatal")),
            },
        }
    }
}

impl Run<'_> {
    /// Administrative cancel: the job fails with the uncatchable
    /// `{"msg": "job cancelled: <reason>", "class": "fatal"}`; a blocking child it waits for
    /// is aborted. Returns `false` if the job is not live or already finished.
    pub fn cancel(&mut self, txn: &mut dyn Txn, id: JobId, reason: &str) -> bool {
        let Some(mut job) = txn.job(id) else {
            return false;
        };
        if job.state.is_final() {
            return false;
        }
        if job.state == JobState::ChildWait {
            if let Some(c) = job.task_state.child {
                self.orphan(txn, c);
            }
        }
        job.task_state.claim = None;
        job.task_state.lock = None;
        job.wake_at = None;
        job.state = JobState::Plotting;
        // Out of every wait index at once.
        txn.put_job(job.clone());
        let err = error_value(format!("job cancelled: {reason}"), "fatal");
        self.push(job, Flow::Raise(err));
        true
    }
}

/// Complete the history entry of the job's current task from its task state (action,
/// child, retries, error) before the task state is reset or the job finishes.
fn close_step(job: &mut JobRecord) {
    let ts = &job.task_state;
    if let Some(s) = job.history.last_mut().filter(|s| s.task == job.task) {
        if ts.action.is_some() {
            s.action.clone_from(&ts.action);
        }
        if ts.child.is_some() {
            s.child = ts.child;
        }
        if ts.tries.is_some() {
            s.tries = ts.tries;
        }
        if s.error.is_none() && ts.error.is_some() {
            s.error.clone_from(&ts.error);
        }
    }
}
