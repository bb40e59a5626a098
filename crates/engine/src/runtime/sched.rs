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
    JobId, JobRecord, JobState, Millis, ParentLink, Step, TaskState, Txn, HISTORY_MAX,
};
use serde_json::{json, Map, Value};
use tracing::{debug, warn};

use super::interval::parse_interval;
use super::json::{catchable, error_value};
use super::WaitPolicy;
use super::{Defs, EngineConfig};
use crate::backend::Event;
use crate::compile::graph::{
    Action, CallMode, CallTask, LockWait, TargetKind, Task, TaskId, TaskKind, Workflow,
};
use crate::eval::{self, caught_exception, EnvIds, IoSpec, Phase};

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
pub(super) enum Work {
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
    pub(super) queue: VecDeque<Work>,
}

pub(super) fn raise_msg(msg: String) -> Flow {
    Flow::Raise(error_value(msg, "normal"))
}

pub(super) fn ids(job: &JobRecord, wf: &Workflow, task: TaskId) -> EnvIds {
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
        // Every line logged while the job moves on carries its id and workflow, when debug
        // logging is on. A debug span: at info, the span alone cost the server 8-10 µs of CPU
        // per job at 1,000 in flight (BENCHMARKS.md), a fifth of its work per job.
        let span = tracing::debug_span!("job", job_id = job.id, workflow = %job.workflow);
        let _in_job = span.enter();
        // A parent that finished meanwhile (in this run) may have marked the stored copy.
        if txn.job_aborted(job.id) {
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
    pub(super) fn inputs(
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
pub(super) fn close_step(job: &mut JobRecord) {
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
