//! The administrative operations (docs/PROTOCOL.md §18): listings, one job, trees, locks,
//! errors, workers, retry, cancel, and disabled actions.
//!
//! Reads run in a transaction of their own and change nothing (jobs are read with
//! [`Txn::peek_job`] or the paged [`Txn::jobs_below`], which take no row locks on
//! PostgreSQL). Listings are bounded: at most [`admin::MAX_LIMIT`] rows, and at most
//! [`SCAN_MAX`] records looked at for one answer.

use std::collections::{BTreeSet, VecDeque};
use std::sync::Arc;

use jobcenter_store::{ArchivedJob, JobRecord, JobState, LockRecord, Store, StoreError, Txn};
use serde_json::{json, Value};

use super::sched::job_action;
use super::Engine;
use crate::backend::admin::{
    self, ClaimInfo, JobDetail, JobQuery, JobSummary, JobTree, LockInfo, RetryOutcome, StepInfo,
    TaskInfo, TreeNode, WorkerAction, WorkerInfo,
};
use crate::backend::{BackendError, JobId};
use crate::compile::graph::TaskId;

/// Records read per page of a listing.
const PAGE: usize = 256;
/// Most records looked at for one listing (the rest is not searched).
pub(super) const SCAN_MAX: usize = 100_000;
/// Most jobs in a tree.
const TREE_MAX: usize = 1000;
/// The key of what a node publishes to the other nodes of a shared store when it changed the
/// disabled actions: `{"disabled_actions": [...]}` (the new list), or `null` if the list is
/// too long to publish (then they read it from the store).
const DISABLED_KEY: &str = "disabled_actions";

/// The state names a job listing accepts.
const STATES: &[&str] = &[
    "ready",
    "working",
    "eventwait",
    "childwait",
    "sleeping",
    "lockwait",
    "retrywait",
    "done",
    "plotting",
    "zombie",
    "finished",
    "error",
];

/// The error of a live job: the `error` of a failed job's result, the last error of a task
/// waiting for its retry.
fn job_error(j: &JobRecord) -> Option<Value> {
    match j.state {
        JobState::Error => j.out_args.as_ref().and_then(|o| o.get("error")).cloned(),
        JobState::RetryWait => j.task_state.error.clone(),
        _ => None,
    }
}

/// The listing row of a live job.
pub(super) fn live_summary(j: &JobRecord) -> JobSummary {
    JobSummary {
        job_id: j.id,
        workflow: j.workflow.clone(),
        version: j.version,
        state: j.state.as_str().to_string(),
        archived: false,
        task: Some(j.task),
        action: j.task_state.action.clone(),
        created_at: Some(j.created_at),
        updated_at: Some(j.updated_at),
        finished_at: j.finished_at,
        parent: j.parent.as_ref().map(|p| p.job_id),
        error: job_error(j),
    }
}

/// The listing row of an archived job (archived jobs finished successfully).
pub(super) fn archived_summary(a: &ArchivedJob) -> JobSummary {
    let failed = a.out_args.get("error").is_some();
    JobSummary {
        job_id: a.id,
        workflow: a.workflow.clone(),
        version: a.version,
        state: if failed { "error" } else { "finished" }.to_string(),
        archived: true,
        task: None,
        action: None,
        created_at: None,
        updated_at: None,
        finished_at: Some(a.finished_at),
        parent: None,
        error: a.out_args.get("error").cloned(),
    }
}

/// A lock with its waiters.
fn lock_info(txn: &dyn Txn, l: LockRecord) -> LockInfo {
    let waiters = txn.lock_waiters(&l.locktype, &l.lockvalue);
    LockInfo {
        waiters,
        lenders: l.lenders.iter().map(|(j, _)| *j).collect(),
        locktype: l.locktype,
        lockvalue: l.lockvalue,
        holder: l.holder,
        inheritable: l.inheritable,
    }
}

/// The summary of a job, live or archived.
fn any_summary(txn: &dyn Txn, id: JobId) -> Option<JobSummary> {
    match txn.peek_job(id) {
        Some(j) => Some(live_summary(&j)),
        None => txn.archived(id).map(|a| archived_summary(&a)),
    }
}

/// The children a live job links to (blocking child, uncollected children) plus the live
/// jobs naming it as parent (`by_parent`), ascending and without duplicates.
fn linked_children(j: &JobRecord, by_parent: &[JobId]) -> Vec<JobId> {
    let mut ids: BTreeSet<JobId> = by_parent.iter().copied().collect();
    ids.extend(j.history.iter().filter_map(|s| s.child));
    ids.extend(j.children.iter().map(|c| c.job_id));
    if let Some(c) = j.task_state.child {
        ids.insert(c);
    }
    ids.into_iter().collect()
}

/// A paged walk over live jobs by descending id.
struct LivePages {
    below: JobId,
    buf: VecDeque<JobRecord>,
    done: bool,
}

impl LivePages {
    fn new(below: JobId) -> Self {
        LivePages {
            below,
            buf: VecDeque::new(),
            done: false,
        }
    }

    fn peek(&mut self, txn: &dyn Txn) -> Option<&JobRecord> {
        if self.buf.is_empty() && !self.done {
            let page = txn.jobs_below(self.below, PAGE);
            self.done = page.len() < PAGE;
            if let Some(last) = page.last() {
                self.below = last.id;
            }
            self.buf.extend(page);
        }
        self.buf.front()
    }
}

/// A paged walk over archived jobs by descending id.
struct ArchivePages {
    below: JobId,
    buf: VecDeque<ArchivedJob>,
    done: bool,
}

impl ArchivePages {
    fn new(below: JobId) -> Self {
        ArchivePages {
            below,
            buf: VecDeque::new(),
            done: false,
        }
    }

    fn peek(&mut self, txn: &dyn Txn) -> Option<&ArchivedJob> {
        if self.buf.is_empty() && !self.done {
            let page = txn.archived_below(self.below, PAGE);
            self.done = page.len() < PAGE;
            if let Some(last) = page.last() {
                self.below = last.id;
            }
            self.buf.extend(page);
        }
        self.buf.front()
    }
}

impl<S: Store> Engine<S> {
    /// A job's history with the tasks described (kind and source line).
    fn history(&self, j: &JobRecord) -> Vec<StepInfo> {
        let wf = self.defs.workflow(j.workflow_def);
        j.history
            .iter()
            .map(|s| {
                let label = wf
                    .as_deref()
                    .and_then(|wf| wf.task(s.task as TaskId))
                    .map(|t| {
                        let kind = format!("{:?}", t.kind);
                        let name: String = kind
                            .chars()
                            .take_while(|c| c.is_ascii_alphanumeric())
                            .collect();
                        format!("{} (line {})", name.to_ascii_lowercase(), t.line)
                    })
                    .unwrap_or_else(|| format!("task {}", s.task));
                StepInfo {
                    task: s.task,
                    label,
                    at: s.at,
                    action: s.action.clone(),
                    child: s.child,
                    tries: s.tries,
                    error: s.error.clone(),
                }
            })
            .collect()
    }

    /// [`crate::backend::Backend::admin_jobs`].
    pub(super) fn admin_jobs_now(&self, q: JobQuery) -> Result<Vec<JobSummary>, BackendError> {
        if let Some(s) = &q.state {
            if !STATES.contains(&s.as_str()) {
                return Err(BackendError::new(format!(
                    "unknown state {s} (one of {})",
                    STATES.join(", ")
                )));
            }
        }
        let limit = q.effective_limit();
        let below = q.before.unwrap_or(JobId::MAX);
        // Archived jobs finished successfully: only a listing of all states or of
        // `finished` needs them.
        let want_archive = q.state.as_deref().is_none_or(|s| s == "finished");
        self.store.transact(|txn| {
            let mut live = LivePages::new(below);
            let mut arch = ArchivePages::new(below);
            arch.done = !want_archive;
            let mut out = Vec::new();
            let mut scanned = 0usize;
            // Ids are handed out in creation order: below the first live job created
            // before `since`, every job was created before it.
            let mut cutoff: Option<JobId> = None;
            while out.len() < limit && scanned < SCAN_MAX {
                let l = live.peek(txn).map(|j| j.id);
                let a = arch.peek(txn).map(|j| j.id);
                let take_live = match (l, a) {
                    (None, None) => break,
                    (Some(l), Some(a)) => l > a,
                    (Some(_), None) => true,
                    (None, Some(_)) => false,
                };
                scanned += 1;
                if take_live {
                    let Some(j) = live.buf.pop_front() else { break };
                    if let Some(since) = q.since {
                        if j.created_at < since {
                            cutoff.get_or_insert(j.id);
                            live.done = true;
                            live.buf.clear();
                            continue;
                        }
                    }
                    let keep = q.state.as_deref().is_none_or(|s| s == j.state.as_str())
                        && q.workflow.as_deref().is_none_or(|w| w == j.workflow);
                    if keep {
                        out.push(live_summary(&j));
                    }
                } else {
                    let Some(a) = arch.buf.pop_front() else { break };
                    if cutoff.is_some_and(|c| a.id < c) {
                        arch.done = true;
                        arch.buf.clear();
                        continue;
                    }
                    let s = archived_summary(&a);
                    let keep = q.state.as_deref().is_none_or(|st| st == s.state)
                        && q.workflow.as_deref().is_none_or(|w| w == a.workflow)
                        && q.since.is_none_or(|since| a.finished_at >= since);
                    if keep {
                        out.push(s);
                    }
                }
            }
            Ok::<_, BackendError>(out)
        })
    }

    /// [`crate::backend::Backend::admin_job`].
    pub(super) fn admin_job_now(&self, job_id: JobId) -> Result<Option<JobDetail>, BackendError> {
        self.store.transact(|txn| {
            let Some(j) = txn.peek_job(job_id) else {
                return Ok::<_, BackendError>(txn.archived(job_id).map(|a| JobDetail {
                    summary: archived_summary(&a),
                    steps: None,
                    max_steps: None,
                    depth: None,
                    inargs: None,
                    outargs: Some(a.out_args),
                    vars: None,
                    current: None,
                    history: Vec::new(),
                    locks: Vec::new(),
                    children: Vec::new(),
                }));
            };
            let ts = &j.task_state;
            let claim = ts.claim.as_ref().map(|c| ClaimInfo {
                worker_id: c.worker_id,
                worker: txn.worker(c.worker_id).map(|w| w.name),
                claimed_at: c.claimed_at,
                deadline: c.deadline,
            });
            let current = TaskInfo {
                task: j.task,
                action: ts.action.clone(),
                inargs: ts.inargs.as_deref().cloned(),
                tries: ts.tries,
                claim,
                child: ts.child,
                error: ts.error.clone(),
                lock_wait: j
                    .waiting_lock()
                    .map(|l| (l.locktype.clone(), l.lockvalue.clone())),
                wake_at: j.wake_at,
            };
            let locks = txn
                .locks_held_by(job_id)
                .into_iter()
                .map(|l| lock_info(txn, l))
                .collect();
            let children = linked_children(&j, &txn.children_of(job_id))
                .into_iter()
                .filter_map(|c| any_summary(txn, c))
                .collect();
            Ok(Some(JobDetail {
                summary: live_summary(&j),
                steps: Some(j.steps),
                max_steps: Some(j.max_steps),
                depth: Some(j.depth),
                inargs: Some(Value::Object((*j.args).clone())),
                outargs: j.out_args.clone(),
                vars: Some(Value::Object((*j.vars).clone())),
                current: Some(current),
                history: self.history(&j),
                locks,
                children,
            }))
        })
    }

    /// [`crate::backend::Backend::admin_tree`].
    pub(super) fn admin_tree_now(&self, job_id: JobId) -> Result<Option<JobTree>, BackendError> {
        self.store.transact(|txn| {
            if txn.peek_job(job_id).is_none() && txn.archived(job_id).is_none() {
                return Ok::<_, BackendError>(None);
            }
            // Up to the top ancestor (archived jobs keep no parent link).
            let mut root = job_id;
            let mut seen = BTreeSet::from([root]);
            while let Some(p) = txn.peek_job(root).and_then(|j| j.parent).map(|p| p.job_id) {
                if !seen.insert(p) || seen.len() > TREE_MAX {
                    break;
                }
                root = p;
            }
            // Children by the parent index, one look-up per job of the tree.
            let mut nodes = Vec::new();
            let mut visited = BTreeSet::new();
            let mut stack = vec![(root, 0usize)];
            while let Some((id, level)) = stack.pop() {
                if nodes.len() >= TREE_MAX || !visited.insert(id) {
                    continue;
                }
                let kids = match txn.peek_job(id) {
                    Some(j) => {
                        let kids = linked_children(&j, &txn.children_of(id));
                        nodes.push(TreeNode {
                            job: live_summary(&j),
                            level,
                        });
                        kids
                    }
                    None => {
                        if let Some(a) = txn.archived(id) {
                            nodes.push(TreeNode {
                                job: archived_summary(&a),
                                level,
                            });
                        }
                        Vec::new()
                    }
                };
                for k in kids.into_iter().rev() {
                    stack.push((k, level + 1));
                }
            }
            Ok(Some(JobTree {
                job_id,
                root,
                nodes,
            }))
        })
    }

    /// [`crate::backend::Backend::admin_state_counts`].
    pub(super) fn admin_state_counts_now(&self) -> Result<Vec<(String, u64)>, BackendError> {
        self.store
            .transact(|txn| Ok::<_, BackendError>(txn.count_by_state()))
    }

    /// [`crate::backend::Backend::admin_locks`].
    pub(super) fn admin_locks_now(
        &self,
        locktype: Option<String>,
        limit: usize,
    ) -> Result<Vec<LockInfo>, BackendError> {
        let limit = admin::effective_limit(limit);
        self.store.transact(|txn| {
            let locks = txn.all_locks(locktype.as_deref(), limit);
            Ok::<_, BackendError>(locks.into_iter().map(|l| lock_info(txn, l)).collect())
        })
    }

    /// [`crate::backend::Backend::admin_errors`]: failed live jobs (failed jobs are never
    /// archived) and tasks waiting for a retry, newest first.
    pub(super) fn admin_errors_now(
        &self,
        since: Option<u64>,
        limit: usize,
    ) -> Result<Vec<JobSummary>, BackendError> {
        let limit = admin::effective_limit(limit);
        self.store.transact(|txn| {
            // Each state by its index, newest first: once `limit` of one state are taken,
            // its older ones cannot be among the newest `limit` of both.
            let mut out: Vec<JobRecord> = Vec::new();
            for state in [JobState::Error, JobState::RetryWait] {
                let (mut below, mut taken, mut scanned) = (JobId::MAX, 0usize, 0usize);
                'pages: loop {
                    let page = txn.jobs_in_state_below(state, below, PAGE);
                    let Some(last) = page.last() else { break };
                    below = last.id;
                    for j in page {
                        scanned += 1;
                        let when = match j.state {
                            JobState::Error => j.finished_at.unwrap_or(j.updated_at),
                            _ => j.updated_at,
                        };
                        if since.is_some_and(|s| when < s) {
                            continue;
                        }
                        out.push(j);
                        taken += 1;
                        if taken >= limit {
                            break 'pages;
                        }
                    }
                    if scanned >= SCAN_MAX {
                        break;
                    }
                }
            }
            out.sort_unstable_by_key(|j| std::cmp::Reverse(j.id));
            out.truncate(limit);
            Ok::<_, BackendError>(out.iter().map(live_summary).collect())
        })
    }

    /// [`crate::backend::Backend::admin_workers`].
    pub(super) fn admin_workers_now(&self) -> Result<Vec<WorkerInfo>, BackendError> {
        self.store.transact(|txn| {
            let workers = txn.active_workers();
            Ok::<_, BackendError>(
                workers
                    .into_iter()
                    .map(|w| WorkerInfo {
                        working_on: txn.jobs_claimed_by(w.id),
                        worker_id: w.id,
                        name: w.name,
                        started_at: w.started_at,
                        last_ping: w.last_ping,
                        actions: w
                            .registrations
                            .into_iter()
                            .map(|r| WorkerAction {
                                action: r.action,
                                filter: r.filter.map(Value::Object),
                            })
                            .collect(),
                    })
                    .collect(),
            )
        })
    }

    /// [`crate::backend::Backend::admin_retry`].
    pub(super) fn admin_retry_now(&self, job_id: JobId) -> Result<RetryOutcome, BackendError> {
        self.transact(|run, txn| {
            let Some(mut job) = txn.job(job_id) else {
                return Err(BackendError::new(format!("no live job {job_id}")));
            };
            let was = job.state.as_str().to_string();
            let action = job.task_state.action.clone().unwrap_or_default();
            match job.state {
                JobState::RetryWait => {
                    job.wake_at = Some(run.now);
                    run.wake(txn, job);
                }
                JobState::Error => {
                    if job.parent.is_some() {
                        return Err(BackendError::new(format!(
                            "job {job_id} is a child job: its parent has seen the error; \
                             retry the parent instead"
                        )));
                    }
                    let def = job_action(run.defs, &job).cloned();
                    let (Some(def), Some(inargs)) = (def, job.task_state.inargs.clone()) else {
                        return Err(BackendError::new(format!(
                            "job {job_id} did not fail at an action task"
                        )));
                    };
                    job.state = JobState::Ready;
                    job.out_args = None;
                    job.finished_at = None;
                    job.wake_at = None;
                    job.updated_at = run.now;
                    job.task_state.claim = None;
                    job.task_state.error = None;
                    job.task_state.tries = None;
                    run.notify_ready(txn, job_id, &def, &inargs);
                    txn.put_job(job);
                }
                s => {
                    return Err(BackendError::new(format!(
                        "job {job_id} is in state {}: only a task waiting for its retry \
                         (retrywait) or a job that failed (error) can be retried",
                        s.as_str()
                    )))
                }
            }
            Ok(RetryOutcome {
                job_id,
                was,
                action,
            })
        })
    }

    /// [`crate::backend::Backend::admin_cancel`].
    pub(super) fn admin_cancel_now(
        &self,
        job_id: JobId,
        reason: String,
    ) -> Result<bool, BackendError> {
        self.transact(|run, txn| Ok(run.cancel(txn, job_id, &reason)))
    }

    /// Whether tasks of `action` are held back (`disable`).
    pub(super) fn action_disabled(&self, action: &str) -> bool {
        let d = self.disabled.read();
        !d.is_empty() && d.contains(action)
    }

    /// [`crate::backend::Backend::admin_set_action_enabled`]. The setting is kept in the
    /// store (it survives restarts, and every node of a shared store follows it); this
    /// node's copy changes at once, the other nodes get the new list with the commit (see
    /// [`Engine::disabled_from_other_node`]). Enabling offers the action's ready tasks again
    /// (an `ActionReady` event for each).
    pub(super) fn admin_set_action_enabled_now(
        &self,
        action: String,
        enabled: bool,
    ) -> Result<bool, BackendError> {
        let known = self
            .defs
            .catalog
            .definitions()
            .iter()
            .any(|d| matches!(d, crate::compile::Compiled::Action(a) if a.name == action));
        if !known {
            return Err(BackendError::new(format!("no action named {action}")));
        }
        let changed = {
            let mut cur = self.disabled.write();
            let (changed, now) = self.store.transact(|txn| {
                let changed = txn.set_action_disabled(&action, !enabled);
                Ok::<_, StoreError>((changed, txn.disabled_actions()))
            })?;
            *cur = now.into_iter().collect();
            if changed && self.store.shared() {
                // Delivered with this batch's commit, before the events of later batches.
                let msg = json!({ DISABLED_KEY: &*cur }).to_string();
                self.store.publish(if msg.len() <= super::PUBLISH_CHUNK {
                    msg
                } else {
                    json!({ DISABLED_KEY: null }).to_string()
                });
            }
            changed
        };
        if changed && enabled {
            self.offer_ready(&action)?;
        }
        Ok(changed)
    }

    /// Read the disabled actions from the store into this node's copy (at start, and every
    /// node round on a shared store in case a change was not heard). The ready tasks of
    /// actions enabled meanwhile are offered again. Returns whether anything changed.
    pub(super) fn reload_disabled_now(&self) -> Result<bool, BackendError> {
        let enabled = {
            // Held across the read: a newer list from another node is not overwritten.
            let mut cur = self.disabled.write();
            let now: BTreeSet<String> = self
                .store
                .transact(|txn| Ok::<_, StoreError>(txn.disabled_actions()))?
                .into_iter()
                .collect();
            if *cur == now {
                return Ok(false);
            }
            let enabled: Vec<String> = cur.difference(&now).cloned().collect();
            *cur = now;
            enabled
        };
        for action in enabled {
            self.offer_ready(&action)?;
        }
        Ok(true)
    }

    /// Shared store, listener thread: another node published `payload`. If it is a new list
    /// of disabled actions, take it (at once, so the events that follow it are filtered by
    /// it) and return `true`; the ready tasks of actions it enables are offered on the store
    /// thread.
    pub(super) fn disabled_from_other_node(self: &Arc<Self>, payload: &str) -> bool {
        let Ok(Value::Object(msg)) = serde_json::from_str::<Value>(payload) else {
            return false;
        };
        let Some(list) = msg.get(DISABLED_KEY) else {
            return false;
        };
        let Some(list) = list.as_array() else {
            // Too long to publish: read it from the store.
            drop(self.call(|e| e.reload_disabled_now()));
            return true;
        };
        let now: BTreeSet<String> = list
            .iter()
            .filter_map(|a| a.as_str().map(str::to_string))
            .collect();
        let enabled: Vec<String> = {
            let mut cur = self.disabled.write();
            let enabled = cur.difference(&now).cloned().collect();
            *cur = now;
            enabled
        };
        if !enabled.is_empty() {
            // Nobody waits for the answer.
            drop(self.call(move |e| {
                for action in &enabled {
                    e.offer_ready(action)?;
                }
                Ok(())
            }));
        }
        true
    }

    /// An `ActionReady` event for each ready task of `action`.
    fn offer_ready(&self, action: &str) -> Result<(), BackendError> {
        self.transact(|run, txn| {
            let ids: Vec<JobId> = txn.ready_jobs(action).collect();
            for id in ids {
                let Some(job) = txn.peek_job(id) else {
                    continue;
                };
                if let (Some(def), Some(inargs)) =
                    (job_action(run.defs, &job), job.task_state.inargs.as_ref())
                {
                    run.notify_ready(txn, id, def, inargs);
                }
            }
            Ok(())
        })
    }

    /// [`crate::backend::Backend::admin_disabled_actions`].
    pub(super) fn admin_disabled_actions_now(&self) -> Vec<String> {
        self.disabled.read().iter().cloned().collect()
    }
}
