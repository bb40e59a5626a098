//! How jobs end and how parents hear of it: finishing a job (outputs, zombies, errors),
//! a blocking child's result reaching its parent (docs/JCL.md §2.7 "Finishing normally",
//! §2.10), joins of non-blocking children, orphans and reaping.

use jobcenter_store::{ChildLink, JobId, JobRecord, JobState, Txn};
use serde_json::{json, Map, Value};
use tracing::debug;

use super::interval::parse_interval;
use super::json::error_value;
use super::sched::{
    bound_call, close_step, ids, job_action, raise_msg, secs_to_millis, Flow, Run, Work,
};
use crate::backend::Event;
use crate::compile::graph::{TaskId, TaskKind, Workflow};
use crate::eval::{self, caught_exception, Phase};
use std::sync::Arc;

impl Run<'_> {
    /// Finish a job with `out` (docs/JCL.md §2.7 "Finishing normally", §2.10 "Uncaught").
    pub(super) fn finish(
        &mut self,
        txn: &mut dyn Txn,
        mut job: JobRecord,
        out: Value,
        is_err: bool,
    ) {
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
        // The result travels with the event: the API server need not read it back.
        self.events.push(Event::JobFinished {
            job_id: job.id,
            outargs: Some(out.clone()),
        });
        self.finished.push((
            job.workflow_def,
            is_err,
            self.now.saturating_sub(job.created_at),
        ));
        for c in std::mem::take(&mut job.children) {
            self.orphan(txn, c.job_id);
        }
        // A job whose workflow has no lock task never holds a lock: no look-up (on PostgreSQL
        // a round trip per job).
        if self
            .defs
            .workflow(job.workflow_def)
            .is_none_or(|wf| wf.may_lock())
        {
            self.release_all(txn, job.id);
        }
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
    pub(super) fn child_done(
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
    pub(super) fn orphan(&mut self, txn: &mut dyn Txn, child: JobId) {
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
    pub(super) fn wait_children(&mut self, txn: &dyn Txn, job: &mut JobRecord) -> Flow {
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
    pub(super) fn child_settled(&mut self, txn: &mut dyn Txn, parent: JobId) {
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
    pub(super) fn reap(
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
