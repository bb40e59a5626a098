//! Locks (docs/JCL.md §2.11): acquire, wait, inherit, release, deadlock detection.

use jobcenter_store::{JobId, JobRecord, JobState, LockRecord, LockWait, Txn};
use serde_json::Value;
use tracing::debug;

use super::json::error_value;
use super::sched::{Flow, Run};
use super::WaitPolicy;
use crate::compile::graph::{LockValue, Task, TaskId, Workflow};
use crate::eval::{self, caught_exception, EnvIds, Phase};
use crate::syntax::ast::Map as AstMap;

fn raise_msg(msg: String) -> Flow {
    Flow::Raise(error_value(msg, "normal"))
}

impl Run<'_> {
    /// The string value of a lock/unlock task (`do_stringcode` errors).
    fn lock_value(&self, job: &JobRecord, value: &LockValue) -> Result<String, Flow> {
        match value {
            LockValue::Literal(s) => Ok(s.clone()),
            LockValue::Code(c) => {
                eval::run_lock_value(c, &job.args, &job.env, &job.vars).map_err(|e| {
                    raise_msg(caught_exception(
                        Phase::StringCode,
                        e.sqlstate(),
                        &e.message(),
                    ))
                })
            }
        }
    }

    /// A `lock` task (declared non-manual lock or `lock` statement).
    pub(crate) fn lock_task(
        &mut self,
        txn: &mut dyn Txn,
        job: &mut JobRecord,
        task: &Task,
        locktype: &str,
        value: &LockValue,
        inherit: bool,
    ) -> Flow {
        match self.lock_value(job, value) {
            Ok(v) => self.acquire(
                txn,
                job,
                task.next,
                locktype,
                v,
                inherit,
                WaitPolicy::Forever,
            ),
            Err(flow) => flow,
        }
    }

    /// An `unlock` statement.
    pub(crate) fn unlock_task(
        &mut self,
        txn: &mut dyn Txn,
        job: &mut JobRecord,
        task: &Task,
        locktype: &str,
        value: &LockValue,
    ) -> Flow {
        let v = match self.lock_value(job, value) {
            Ok(v) => v,
            Err(flow) => return flow,
        };
        match txn.lock(locktype, &v) {
            Some(l) if l.holder == job.id => {
                self.release(txn, l);
                Flow::Goto(task.next)
            }
            _ => raise_msg(format!(
                "tried to unlock not held lock locktype {locktype} lockvalue {v}"
            )),
        }
    }

    /// A `wait_for_lock` statement: `value` from its input map, the given wait policy.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn wait_for_lock_task(
        &mut self,
        txn: &mut dyn Txn,
        job: &mut JobRecord,
        wf: &Workflow,
        task: &Task,
        locktype: &str,
        inherit: bool,
        inputs: &AstMap,
        wait: WaitPolicy,
    ) -> Flow {
        let ids = EnvIds {
            workflow_id: wf.id as i64,
            job_id: job.id,
            task_id: task.id as i64,
        };
        let i = match eval::run_input_map(inputs, &job.args, &job.env, &job.vars, Some(ids)) {
            Ok(i) => i,
            Err(e) => {
                return raise_msg(caught_exception(
                    Phase::InArgsMap,
                    e.sqlstate(),
                    &e.message(),
                ))
            }
        };
        let v = match i.get("value") {
            None => return raise_msg(format!("no lockvalue for locktype {locktype}")),
            Some(Value::Null) => String::new(),
            Some(v) => eval::to_perl_string(v).unwrap_or_default(),
        };
        self.acquire(txn, job, task.next, locktype, v, inherit, wait)
    }

    /// Acquire (type, value) for `job` or make it wait (§2.11 "Acquire").
    #[allow(clippy::too_many_arguments)]
    fn acquire(
        &mut self,
        txn: &mut dyn Txn,
        job: &mut JobRecord,
        next: TaskId,
        locktype: &str,
        lockvalue: String,
        inherit: bool,
        wait: WaitPolicy,
    ) -> Flow {
        let Some(mut lock) = txn.lock(locktype, &lockvalue) else {
            txn.put_lock(LockRecord {
                locktype: locktype.to_string(),
                lockvalue,
                holder: job.id,
                inheritable: inherit,
                lenders: Vec::new(),
            });
            return Flow::Goto(next);
        };
        if lock.holder == job.id {
            return raise_msg(format!(
                "reacquired locktype {locktype} lockvalue {lockvalue}"
            ));
        }
        let from_waiting_parent = lock.inheritable
            && job.parent.as_ref().is_some_and(|p| p.job_id == lock.holder)
            && txn
                .job(lock.holder)
                .is_some_and(|p| p.state == JobState::ChildWait);
        if from_waiting_parent {
            debug!(
                job = job.id,
                parent = lock.holder,
                locktype,
                "lock inherited"
            );
            lock.lenders.push((lock.holder, lock.inheritable));
            lock.holder = job.id;
            lock.inheritable = inherit;
            txn.put_lock(lock);
            return Flow::Goto(next);
        }
        if wait == WaitPolicy::No {
            return raise_msg(format!(
                "failed to get locktype {locktype} lockvalue {lockvalue}"
            ));
        }
        if let Some(path) = deadlock_path(txn, job.id, lock.holder) {
            // Listed like the original: from the holder of the contested lock around the
            // cycle back to it (`holder, ..., requester, holder`).
            let mut path: Vec<String> = path[1..].iter().map(|j| j.to_string()).collect();
            path.push(lock.holder.to_string());
            return raise_msg(format!(
                "deadlock trying to get locktype {locktype} lockvalue {lockvalue} path {}",
                path.join(", ")
            ));
        }
        job.state = JobState::LockWait;
        job.task_state.lock = Some(LockWait {
            locktype: locktype.to_string(),
            lockvalue,
            inherit,
        });
        job.wake_at = match wait {
            WaitPolicy::Until(t) => Some(t),
            _ => None,
        };
        Flow::Wait
    }

    /// Release a lock (§2.11 "Release"): to a waiting sibling or back to the lender if it
    /// was inherited, else to the oldest waiter, else delete it.
    pub(crate) fn release(&mut self, txn: &mut dyn Txn, mut lock: LockRecord) {
        let waiters = txn.lock_waiters(&lock.locktype, &lock.lockvalue);
        let next = match lock.lenders.last() {
            Some(&(lender, lender_inheritable)) => {
                let sibling = waiters.iter().copied().find(|w| {
                    txn.job(*w)
                        .and_then(|j| j.parent)
                        .is_some_and(|p| p.job_id == lender)
                });
                if sibling.is_none() {
                    lock.lenders.pop();
                    lock.holder = lender;
                    lock.inheritable = lender_inheritable;
                    txn.put_lock(lock);
                    return;
                }
                sibling
            }
            None => waiters.first().copied(),
        };
        let Some(w) = next else {
            txn.delete_lock(&lock.locktype, &lock.lockvalue);
            return;
        };
        let Some(mut waiter) = txn.job(w) else {
            txn.delete_lock(&lock.locktype, &lock.lockvalue);
            return;
        };
        lock.holder = w;
        lock.inheritable = waiter.task_state.lock.as_ref().is_some_and(|l| l.inherit);
        txn.put_lock(lock);
        waiter.task_state.lock = None;
        waiter.wake_at = None;
        waiter.state = JobState::Plotting;
        let next_task = self
            .defs
            .workflow(waiter.workflow_def)
            .and_then(|wf| wf.task(waiter.task as TaskId).map(|t| t.next));
        // Out of the waiter index at once, so a second release in this run skips it.
        txn.put_job(waiter.clone());
        match next_task {
            Some(n) => self.push(waiter, Flow::Goto(n)),
            None => self.push(
                waiter,
                Flow::Raise(error_value("lock task without successor", "fatal")),
            ),
        }
    }

    /// Release every lock a finishing job holds.
    pub(crate) fn release_all(&mut self, txn: &mut dyn Txn, job: JobId) {
        for l in txn.locks_held_by(job) {
            self.release(txn, l);
        }
    }

    /// The deadline of a `wait_for_lock` passed.
    pub(crate) fn lock_timeout(&mut self, mut job: JobRecord) {
        let (t, v) = match job.task_state.lock.take() {
            Some(l) => (l.locktype, l.lockvalue),
            None => (String::new(), String::new()),
        };
        job.state = JobState::Plotting;
        let err = error_value(
            format!(
                "locktype {t} lockvalue {v} timeout for job {} in task {}",
                job.id, job.task
            ),
            "lock ",
        );
        self.push(job, Flow::Raise(err));
    }
}

/// Follow "holder waits for a lock → its holder" and "holder waits for its blocking child →
/// that child" (or, joining a split, for `me` among its children) from `holder`;
/// `Some(path)` if the chain comes back to `me`.
fn deadlock_path(txn: &dyn Txn, me: JobId, holder: JobId) -> Option<Vec<JobId>> {
    let mut path = vec![me];
    let mut h = holder;
    for _ in 0..10_000 {
        if h == me {
            path.push(me);
            return Some(path);
        }
        if path.contains(&h) {
            return None;
        }
        path.push(h);
        let j = txn.job(h)?;
        h = if let Some(w) = j.waiting_lock() {
            txn.lock(&w.locktype, &w.lockvalue)?.holder
        } else if j.state == JobState::ChildWait {
            match j.task_state.child {
                Some(c) => c,
                // Joining a split: waiting for every child, `me` included.
                None if j.children.iter().any(|c| c.job_id == me) => me,
                None => return None,
            }
        } else {
            return None;
        };
    }
    None
}
