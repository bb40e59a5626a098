//! The types of the administrative operations (docs/PROTOCOL.md §16): what an operator sees.
//!
//! Plain serde structures; the API server sends them as they serialise here. Times are
//! milliseconds since the UNIX epoch (UTC).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{BackendError, BackendFuture, JobId, WorkerId};

/// The message of a backend without administrative operations.
pub const UNSUPPORTED: &str = "this backend does not support administrative operations";

/// The error of an administrative operation the backend does not offer.
pub fn unsupported() -> BackendError {
    BackendError::new(UNSUPPORTED)
}

/// A future failing with [`unsupported`] (the trait's default methods).
pub fn unsupported_future<'a, T: Send + 'a>() -> BackendFuture<'a, T> {
    Box::pin(std::future::ready(Err(unsupported())))
}

/// The default number of rows of a listing.
pub const DEFAULT_LIMIT: usize = 50;
/// The most rows a listing returns, whatever is asked.
pub const MAX_LIMIT: usize = 1000;

/// Which jobs [`crate::Backend::admin_jobs`] lists.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobQuery {
    /// Only jobs in this state (`ready`, `working`, `error`, `finished`, ...).
    pub state: Option<String>,
    /// Only jobs of this workflow.
    pub workflow: Option<String>,
    /// Only jobs created at or after this time (archived jobs: finished at or after).
    pub since: Option<u64>,
    /// Only jobs with an id below this one (paging: the last id of the previous page).
    pub before: Option<JobId>,
    /// At most this many (capped at [`MAX_LIMIT`]; 0 means [`DEFAULT_LIMIT`]).
    pub limit: usize,
}

impl JobQuery {
    /// The limit in force: [`DEFAULT_LIMIT`] for 0, at most [`MAX_LIMIT`].
    pub fn effective_limit(&self) -> usize {
        effective_limit(self.limit)
    }
}

/// A requested row count as served: [`DEFAULT_LIMIT`] for 0, at most [`MAX_LIMIT`].
pub fn effective_limit(limit: usize) -> usize {
    match limit {
        0 => DEFAULT_LIMIT,
        n => n.min(MAX_LIMIT),
    }
}

/// One job in a listing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobSummary {
    /// The job id.
    pub job_id: JobId,
    /// The workflow name.
    pub workflow: String,
    /// The workflow version.
    pub version: u32,
    /// The state (`ready`, `working`, ..., `finished`, `error`).
    pub state: String,
    /// Whether only the final result is kept (the job was archived).
    pub archived: bool,
    /// The current (or last) task's number in the workflow, if live.
    pub task: Option<u64>,
    /// The action the current task runs, if it is an action task.
    pub action: Option<String>,
    /// Creation time (unknown for archived jobs).
    pub created_at: Option<u64>,
    /// Last change (unknown for archived jobs).
    pub updated_at: Option<u64>,
    /// When the job finished.
    pub finished_at: Option<u64>,
    /// The parent job, for a child.
    pub parent: Option<JobId>,
    /// The error: of a failed job its `error` object, of a task waiting for a retry the
    /// error it got.
    pub error: Option<Value>,
}

/// A worker's claim of a task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimInfo {
    /// The worker id.
    pub worker_id: WorkerId,
    /// The worker's name, if it is still active.
    pub worker: Option<String>,
    /// When it claimed the task.
    pub claimed_at: u64,
    /// When the action's timeout expires, if it has one.
    pub deadline: Option<u64>,
}

/// The current (or, for a finished job, the last) task of a job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskInfo {
    /// The task's number in the workflow.
    pub task: u64,
    /// The action, for an action task.
    pub action: Option<String>,
    /// The inputs handed to the worker, for an action task.
    pub inargs: Option<Value>,
    /// The retry number of the current attempt (absent before the first retry).
    pub tries: Option<i64>,
    /// The worker's claim while `working`.
    pub claim: Option<ClaimInfo>,
    /// The child job of a call task.
    pub child: Option<JobId>,
    /// The last error raised at this task.
    pub error: Option<Value>,
    /// While `lockwait`: the lock waited for, as `[locktype, lockvalue]`.
    pub lock_wait: Option<(String, String)>,
    /// When the engine looks at the job again (retry, timeout, sleep, archival).
    pub wake_at: Option<u64>,
}

/// Everything the store keeps of one job.
///
/// The store keeps a job's current state, not a log of its past tasks: `steps` counts the
/// tasks entered, `task` is the current one. An archived job keeps only its final result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobDetail {
    /// The summary (as in a listing).
    #[serde(flatten)]
    pub summary: JobSummary,
    /// Tasks entered so far (live jobs).
    pub steps: Option<i64>,
    /// The step limit (live jobs).
    pub max_steps: Option<i64>,
    /// Call depth, 1 for a top-level job (live jobs).
    pub depth: Option<i64>,
    /// The input arguments (live jobs).
    pub inargs: Option<Value>,
    /// The final output (`{"error": ...}` for a failed job), once finished.
    pub outargs: Option<Value>,
    /// The variables (live jobs).
    pub vars: Option<Value>,
    /// The current or last task (live jobs).
    pub current: Option<TaskInfo>,
    /// The locks the job holds.
    pub locks: Vec<LockInfo>,
    /// The child jobs the store links to this job: the blocking child it waits for and
    /// non-blocking children not collected yet, plus live jobs naming it as parent.
    pub children: Vec<JobSummary>,
}

/// One job of a [`JobTree`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TreeNode {
    /// The job.
    #[serde(flatten)]
    pub job: JobSummary,
    /// 0 for the top ancestor, 1 for its children, ...
    pub level: usize,
}

/// A job's family, as [`crate::Backend::admin_tree`] returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobTree {
    /// The job asked about.
    pub job_id: JobId,
    /// The top ancestor.
    pub root: JobId,
    /// The jobs, depth first from the root (each parent before its children).
    pub nodes: Vec<TreeNode>,
}

/// A held lock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockInfo {
    /// The lock type.
    pub locktype: String,
    /// The lock value.
    pub lockvalue: String,
    /// The job holding it.
    pub holder: JobId,
    /// Whether the holder may lend it to a child.
    pub inheritable: bool,
    /// Jobs that lent it on to the holder (innermost last).
    pub lenders: Vec<JobId>,
    /// Jobs waiting for it (`lockwait`), ascending.
    pub waiters: Vec<JobId>,
}

/// An action a worker announced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerAction {
    /// The action name.
    pub action: String,
    /// The announced filter, if any.
    pub filter: Option<Value>,
}

/// An active worker, as the store lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerInfo {
    /// The worker id.
    pub worker_id: WorkerId,
    /// The worker name.
    pub name: String,
    /// When the worker row was created.
    pub started_at: u64,
    /// The last liveness refresh (a ping answered, or the announce).
    pub last_ping: u64,
    /// Its announced actions.
    pub actions: Vec<WorkerAction>,
    /// Jobs whose task it has claimed (state `working`), ascending.
    pub working_on: Vec<JobId>,
}

/// What [`crate::Backend::admin_retry`] did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetryOutcome {
    /// The job.
    pub job_id: JobId,
    /// The state it was in (`retrywait` or `error`).
    pub was: String,
    /// The action whose task is ready again.
    pub action: String,
}
