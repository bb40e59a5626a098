//! The persisted records: jobs (with their current task's claim), archived results, workers.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::Object;

/// A job id (positive).
pub type JobId = i64;
/// A worker id (positive).
pub type WorkerId = i64;
/// A point in time: milliseconds since the UNIX epoch.
pub type Millis = u64;

/// The state of a job (docs/JCL.md §2.7, docs/PROTOCOL.md §10.3), as the original's enum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    /// An action task waits for a worker.
    Ready,
    /// A worker claimed the action task.
    Working,
    /// Waiting for an event (Stage C).
    EventWait,
    /// Waiting for a child job.
    ChildWait,
    /// Sleeping until `wake_at`.
    Sleeping,
    /// Waiting for a lock (Stage B).
    LockWait,
    /// A soft error is waiting for its retry at `wake_at`.
    RetryWait,
    /// Task finished, waiting for the scheduler.
    Done,
    /// The scheduler is deciding.
    Plotting,
    /// A non-blocking child finished; its parent has not collected it.
    Zombie,
    /// Finished successfully.
    Finished,
    /// Finished with an error.
    Error,
}

impl JobState {
    /// The original's name of the state (`ready`, `childwait`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Ready => "ready",
            JobState::Working => "working",
            JobState::EventWait => "eventwait",
            JobState::ChildWait => "childwait",
            JobState::Sleeping => "sleeping",
            JobState::LockWait => "lockwait",
            JobState::RetryWait => "retrywait",
            JobState::Done => "done",
            JobState::Plotting => "plotting",
            JobState::Zombie => "zombie",
            JobState::Finished => "finished",
            JobState::Error => "error",
        }
    }

    /// Whether the job's result is final (`finished`, `error` or `zombie`).
    pub fn is_final(self) -> bool {
        matches!(
            self,
            JobState::Finished | JobState::Error | JobState::Zombie
        )
    }
}

/// The link of a child job to its parent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParentLink {
    /// The parent job.
    pub job_id: JobId,
    /// The parent's task that created this child.
    pub task: u64,
    /// Whether the parent blocks on this child (`call` of a workflow).
    pub wait: bool,
}

/// A non-blocking child (split/callflow) its parent has not collected yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChildLink {
    /// The child job.
    pub job_id: JobId,
    /// The parent's call task that created it.
    pub task: u64,
}

/// A worker's claim of an action task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskClaim {
    /// The random cookie (UUID text) the worker must present with its result.
    pub cookie: String,
    /// The claiming worker.
    pub worker_id: WorkerId,
    /// When the task was claimed.
    pub claimed_at: Millis,
    /// When the action's `timeout` expires, if it has one.
    pub deadline: Option<Millis>,
}

/// A held lock (docs/JCL.md §2.11).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockRecord {
    /// The lock type (registered).
    pub locktype: String,
    /// The lock value.
    pub lockvalue: String,
    /// The job holding it.
    pub holder: JobId,
    /// Whether the holder may lend it to a child that asks for it while the holder waits.
    pub inheritable: bool,
    /// Jobs that lent it on (innermost last) with their `inheritable` flag; on release the
    /// last lender gets it back.
    #[serde(default)]
    pub lenders: Vec<(JobId, bool)>,
}

/// What a job in state `lockwait` waits for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockWait {
    /// The lock type.
    pub locktype: String,
    /// The lock value.
    pub lockvalue: String,
    /// The `inherit` option the job takes the lock with.
    pub inherit: bool,
}

/// An event queued for a subscription (docs/JCL.md §2.13).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueuedEvent {
    /// The event id (increasing).
    pub event_id: i64,
    /// When it was raised (ISO-8601 text with offset).
    pub when: String,
    /// The event object.
    pub data: Value,
}

/// A job's event subscription.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Subscription {
    /// The subscription name.
    pub name: String,
    /// The mask events must contain.
    pub mask: Value,
    /// Matching events not consumed yet, oldest first.
    pub queue: Vec<QueuedEvent>,
}

/// Per-task scratch data (the original's `task_state`), cleared on every task entry.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TaskState {
    /// For an action task: the action name workers serve it under.
    pub action: Option<String>,
    /// For an action task: the checked input object handed to workers (shared, so that
    /// copying a record for a transaction does not copy it).
    pub inargs: Option<Arc<Value>>,
    /// For an action task: the action environment (without `tries`), shared like `inargs`.
    pub env: Option<Arc<Object>>,
    /// Retry number of the current attempt (absent before the first retry).
    pub tries: Option<i64>,
    /// The current claim, while a worker works on it.
    pub claim: Option<TaskClaim>,
    /// For a call of a workflow: the child job.
    pub child: Option<JobId>,
    /// The last error raised at this task, if any.
    pub error: Option<Value>,
    /// For an interface call: the catalog id of the destination chosen.
    #[serde(default)]
    pub target_def: Option<u64>,
    /// For a lock task in state `lockwait`: the lock waited for.
    #[serde(default)]
    pub lock: Option<LockWait>,
}

/// Most entries a job's [`JobRecord::history`] keeps; older ones are dropped (the job's
/// `steps` still counts them).
pub const HISTORY_MAX: usize = 50;

/// One task a job entered (its history, for administration).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Step {
    /// The task (index into the workflow's task graph).
    pub task: u64,
    /// When the job entered it.
    pub at: Millis,
    /// For an action task: the action.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// For a call of a workflow: the child job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub child: Option<JobId>,
    /// For an action task that was retried: the number of the last retry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tries: Option<i64>,
    /// The error raised at this task, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<Value>,
}

/// A live job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRecord {
    /// The job id.
    pub id: JobId,
    /// The workflow name.
    pub workflow: String,
    /// The workflow version.
    pub version: u32,
    /// The engine's id of the workflow version (a catalog definition id).
    pub workflow_def: u64,
    /// The state.
    pub state: JobState,
    /// The current task (index into the workflow's task graph).
    pub task: u64,
    /// Tasks entered so far (docs/JCL.md §2.7).
    pub steps: i64,
    /// The step limit.
    pub max_steps: i64,
    /// Call depth: 1 for a top-level job.
    pub depth: i64,
    /// The parent, for child jobs.
    pub parent: Option<ParentLink>,
    /// Non-blocking children not yet reaped (in creation order).
    #[serde(default)]
    pub children: Vec<ChildLink>,
    /// Event subscriptions (Stage C).
    #[serde(default)]
    pub subscriptions: Vec<Subscription>,
    /// The checked input arguments (`a`). Shared: a copy of the record for a transaction
    /// shares the map until one side changes it (`Arc::make_mut`).
    pub args: Arc<Object>,
    /// The environment (`e`), shared like `args`.
    pub env: Arc<Object>,
    /// The variables (`v`), shared like `args`.
    pub vars: Arc<Object>,
    /// The final output (`{"error": ...}` on failure) once finished.
    pub out_args: Option<Value>,
    /// Scratch data of the current task.
    pub task_state: TaskState,
    /// Set when the parent finished before this job: the next task entry raises `abort`.
    pub aborted: bool,
    /// Creation time.
    pub created_at: Millis,
    /// Time of the last change.
    pub updated_at: Millis,
    /// When the job finished.
    pub finished_at: Option<Millis>,
    /// When the engine wants to look at this job again (timeout, retry, sleep, archival).
    pub wake_at: Option<Millis>,
    /// The tasks entered, oldest first, at most [`HISTORY_MAX`] (the last ones). Absent
    /// in records written before it existed (read as empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<Step>,
}

impl JobRecord {
    /// The action whose ready queue holds this job: its action name while `ready`.
    pub fn ready_action(&self) -> Option<&str> {
        if self.state == JobState::Ready {
            self.task_state.action.as_deref()
        } else {
            None
        }
    }

    /// The lock waited for while `lockwait`.
    pub fn waiting_lock(&self) -> Option<&LockWait> {
        if self.state == JobState::LockWait {
            self.task_state.lock.as_ref()
        } else {
            None
        }
    }

    /// The cookie of the current claim while `working`.
    pub fn cookie(&self) -> Option<&str> {
        if self.state == JobState::Working {
            self.task_state.claim.as_ref().map(|c| c.cookie.as_str())
        } else {
            None
        }
    }
}

/// What is kept of an archived job: its final result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArchivedJob {
    /// The job id.
    pub id: JobId,
    /// The workflow name.
    pub workflow: String,
    /// The workflow version.
    pub version: u32,
    /// The final output.
    pub out_args: Value,
    /// When the job finished.
    pub finished_at: Millis,
}

/// A worker's registration for one action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Registration {
    /// The action name.
    pub action: String,
    /// The announced filter object, if any.
    pub filter: Option<Object>,
}

/// A worker (identified by name while active).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerRecord {
    /// The worker id.
    pub id: WorkerId,
    /// The worker name.
    pub name: String,
    /// `false` once stopped (disconnected or withdrawn from everything).
    pub active: bool,
    /// When the worker row was created.
    pub started_at: Millis,
    /// The last liveness refresh.
    pub last_ping: Millis,
    /// Its action registrations.
    pub registrations: Vec<Registration>,
}
