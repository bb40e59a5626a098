//! The backend interface the API server drives: what the original's stored procedures offer.
//!
//! The API server (crate `jobcenter-server`) is the JSON-RPC front; everything about jobs,
//! workflows, actions, workers and locks lives behind this trait (docs/PROTOCOL.md §10). The
//! in-process engine implements it; a PostgreSQL-backed implementation can implement it too,
//! so several server processes can share the work.
//!
//! Error texts: a [`BackendError`] carries the bare backend message (e.g.
//! `no workflow named foo`); the server adds the `ERROR:  ` prefix where the protocol wants it.

use serde_json::{Map, Value};
use std::future::Future;
use std::pin::Pin;

/// A job id: a positive 64-bit integer.
pub type JobId = i64;
/// A worker id: the backend's id for an active worker name.
pub type WorkerId = i64;

/// A boxed future, as returned by [`Backend`] methods.
pub type BackendFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, BackendError>> + Send + 'a>>;

/// A failure reported by the backend, with the exact message of docs/PROTOCOL.md §10.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct BackendError {
    /// The bare message, e.g. `required input argument "input" not found`.
    pub message: String,
}

impl BackendError {
    /// Build an error from its message.
    pub fn new(message: impl Into<String>) -> Self {
        BackendError {
            message: message.into(),
        }
    }
}

/// The arguments of `create_job` (docs/PROTOCOL.md §10.2).
#[derive(Debug, Clone, PartialEq)]
pub struct CreateJob {
    /// Workflow name.
    pub wfname: String,
    /// Input arguments (a JSON object).
    pub inargs: Map<String, Value>,
    /// Version tags, colon separated, or `None`.
    pub vtag: Option<String>,
    /// The connection's authenticated identity (becomes `e.client`).
    pub who: String,
    /// The environment built by the API server (`clenv`, `authscope`), or `None`.
    pub env: Option<Map<String, Value>>,
}

/// What `get_job_status` found (docs/PROTOCOL.md §10.3).
#[derive(Debug, Clone, PartialEq)]
pub enum JobStatus {
    /// No such job, live or archived.
    Unknown,
    /// The job exists and has not finished.
    Running,
    /// The job finished (successfully or with an error); its final outargs.
    Finished(Value),
}

/// A claimed task, as `get_task` returns it (docs/PROTOCOL.md §10.9).
#[derive(Debug, Clone, PartialEq)]
pub struct TaskClaim {
    /// The real job id.
    pub job_id: JobId,
    /// A fresh UUID text identifying this claim.
    pub cookie: String,
    /// The task's input object.
    pub inargs: Value,
    /// The action environment object (`{}` if none), with `tries` on retries.
    pub env: Value,
}

/// One row of `poll_tasks` (docs/PROTOCOL.md §10.11).
#[derive(Debug, Clone, PartialEq)]
pub struct PollRow {
    /// The action name (the original returns its ready channel; the name is equivalent).
    pub action: String,
    /// The worker ids of a filtered group, or `None` for workers without a filter.
    pub workers: Option<Vec<WorkerId>>,
    /// How many distinct ready jobs of that action match.
    pub count: usize,
}

/// What the backend tells the API server (the original's LISTEN/NOTIFY channels).
/// Serialisable, because on a shared store the other nodes' servers hear them too.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Event {
    /// `job:finished`: some job finished, with success or error. Sent only once the result
    /// is committed (and synced on a durable store), so it may be told to clients as is.
    JobFinished {
        /// The job.
        job_id: JobId,
        /// Its final outargs (what [`Backend::get_job_status`] answers now), or `None` when
        /// they were left out (a result too large for PostgreSQL's `NOTIFY`, or a backend
        /// that does not carry them): ask `get_job_status` then.
        outargs: Option<Value>,
    },
    /// `action:<id>:ready`: a task of this action became ready; with `workers`, only those
    /// worker ids may take it. Unlike the other events, a durable engine may send it before
    /// the transaction that made the task ready is synced: it is only a hint, and a
    /// `get_task` for it is answered after that sync (with nothing if the sync failed).
    ActionReady {
        /// The action name.
        action: String,
        /// The ready job.
        job_id: JobId,
        /// Candidate worker ids when the action filters, else `None`.
        workers: Option<Vec<WorkerId>>,
    },
    /// A durable store works again after a failure. The calls answered with a store error
    /// meanwhile changed nothing, and worker calls answered before their sync was known may
    /// have been rolled back: tasks may be ready without an offer, a `job_done` or a task
    /// result may be unsent. An API server polls for ready tasks and retries those now.
    StoreRecovered,
}

impl Event {
    /// The job of a [`Event::JobFinished`].
    pub fn finished_job(&self) -> Option<JobId> {
        match self {
            Event::JobFinished { job_id, .. } => Some(*job_id),
            _ => None,
        }
    }
}

/// Receives events where they happen ([`Backend::set_event_sink`]). Returns `true` when it
/// offered an [`Event::ActionReady`]'s task to a worker of its own: a backend shared by
/// several servers then lets the others hold the task back for a moment, so that their
/// workers do not race for a task that is being claimed already.
pub type EventSink = std::sync::Arc<dyn Fn(Event) -> bool + Send + Sync>;

/// The operations of docs/PROTOCOL.md §10.1. All methods are cheap to call concurrently.
pub trait Backend: Send + Sync + 'static {
    /// Create a job; fails with the messages of §10.2 (no job is created then).
    fn create_job(&self, req: CreateJob) -> BackendFuture<'_, JobId>;
    /// The status of a job (§10.3).
    fn get_job_status(&self, job_id: JobId) -> BackendFuture<'_, JobStatus>;
    /// Ids of live jobs whose inargs contain `filter` (a JSON object; `{}` is an error) (§10.5).
    fn find_jobs(&self, filter: Value) -> BackendFuture<'_, Vec<JobId>>;
    /// `None` for an unknown locktype, else whether some job holds the lock (§10.6).
    fn check_if_lock_exists(
        &self,
        locktype: String,
        lockvalue: String,
    ) -> BackendFuture<'_, Option<bool>>;
    /// Register `actionname` for the active worker `workername`, creating the worker (§10.7).
    fn announce(
        &self,
        workername: String,
        actionname: String,
        who: String,
        filter: Option<Value>,
    ) -> BackendFuture<'_, WorkerId>;
    /// Remove a registration; `false` if nothing matched (§10.8).
    fn withdraw(&self, workername: String, actionname: String) -> BackendFuture<'_, bool>;
    /// Claim a ready task: the given job, or with `None` the lowest ready job id (§10.9).
    fn get_task(
        &self,
        workername: String,
        actionname: String,
        job_id: Option<JobId>,
    ) -> BackendFuture<'_, Option<TaskClaim>>;
    /// Report a task result; unknown cookies are ignored (§10.10).
    fn task_done(&self, cookie: String, outargs: Value) -> BackendFuture<'_, ()>;
    /// Refresh a worker's liveness; `false` if the worker is not active (§8.10).
    fn ping(&self, worker_id: WorkerId) -> BackendFuture<'_, bool>;
    /// Ready work for these workers, grouped by (action, filter) (§10.11).
    fn poll_tasks(&self, worker_ids: Vec<WorkerId>) -> BackendFuture<'_, Vec<PollRow>>;
    /// Mark the worker stopped, drop its registrations and release the tasks it claimed
    /// (§10.8); `false` if it was stopped already (its claims are released all the same).
    ///
    /// By worker id, where the reference goes by workername: a worker that withdrew (so its
    /// row is stopped) and reconnected under the same name has a new row by the time the old
    /// connection's disconnect arrives, and that must not stop the new one.
    fn disconnect(&self, worker_id: WorkerId) -> BackendFuture<'_, bool>;
    /// A new stream of [`Event`]s; every subscriber sees every event from now on.
    fn subscribe(&self) -> tokio::sync::mpsc::UnboundedReceiver<Event>;

    /// Call `sink` with every event from now on, on the thread that caused it, right after
    /// its transaction committed (instead of a channel and a task hop per event, as with
    /// [`Backend::subscribe`]). The sink must be quick and must not call the backend.
    /// Returns `false` when the backend cannot (the default): use `subscribe` then.
    fn set_event_sink(&self, sink: EventSink) -> bool {
        let _ = sink;
        false
    }

    /// Install the [`Observer`] told about finished jobs and store syncs (for metrics). A
    /// later call replaces it. The default ignores it (a backend without such numbers).
    fn set_observer(&self, observer: std::sync::Arc<dyn Observer>) {
        let _ = observer;
    }

    /// Ready tasks waiting per action (the queue depth), for the actions that have some.
    /// For metrics, at scrape time; the default knows none.
    fn ready_counts(&self) -> BackendFuture<'_, Vec<(String, usize)>> {
        Box::pin(std::future::ready(Ok(Vec::new())))
    }

    // --- Administration (docs/PROTOCOL.md §18, our extension). The defaults answer
    // `admin::unsupported()`, for backends (and test fakes) without them. ---

    /// Jobs, live and archived, newest (highest id) first, as `q` selects.
    fn admin_jobs(&self, q: admin::JobQuery) -> BackendFuture<'_, Vec<admin::JobSummary>> {
        let _ = q;
        admin::unsupported_future()
    }

    /// Everything the store keeps of one job; `None` if it is unknown (or purged).
    fn admin_job(&self, job_id: JobId) -> BackendFuture<'_, Option<admin::JobDetail>> {
        let _ = job_id;
        admin::unsupported_future()
    }

    /// The job's family: its top ancestor and every descendant the store links, depth first.
    /// `None` if the job is unknown.
    fn admin_tree(&self, job_id: JobId) -> BackendFuture<'_, Option<admin::JobTree>> {
        let _ = job_id;
        admin::unsupported_future()
    }

    /// Held locks (of one type, or all), by type and value, at most `limit`.
    fn admin_locks(
        &self,
        locktype: Option<String>,
        limit: usize,
    ) -> BackendFuture<'_, Vec<admin::LockInfo>> {
        let _ = (locktype, limit);
        admin::unsupported_future()
    }

    /// Failed jobs and tasks waiting to be retried after an error, newest first.
    fn admin_errors(
        &self,
        since: Option<u64>,
        limit: usize,
    ) -> BackendFuture<'_, Vec<admin::JobSummary>> {
        let _ = (since, limit);
        admin::unsupported_future()
    }

    /// The active workers the store lists (on a shared store: those of every node).
    fn admin_workers(&self) -> BackendFuture<'_, Vec<admin::WorkerInfo>> {
        admin::unsupported_future()
    }

    /// Retry a job's task now: a task waiting for its retry, or the action task a job
    /// failed at. Fails with a message saying why not.
    fn admin_retry(&self, job_id: JobId) -> BackendFuture<'_, admin::RetryOutcome> {
        let _ = job_id;
        admin::unsupported_future()
    }

    /// Abort a job: it fails with `job cancelled: <reason>` (class fatal). `false` if the
    /// job is unknown or has finished already.
    fn admin_cancel(&self, job_id: JobId, reason: String) -> BackendFuture<'_, bool> {
        let _ = (job_id, reason);
        admin::unsupported_future()
    }

    /// Disable (`enabled == false`) or enable an action: a disabled action's ready tasks
    /// are not handed to workers. Returns whether the setting changed. The engine keeps the
    /// setting in its store: it survives restarts and holds on every node of a shared store.
    fn admin_set_action_enabled(&self, action: String, enabled: bool) -> BackendFuture<'_, bool> {
        let _ = (action, enabled);
        admin::unsupported_future()
    }

    /// The disabled actions, sorted.
    fn admin_disabled_actions(&self) -> BackendFuture<'_, Vec<String>> {
        admin::unsupported_future()
    }

    /// The exact number of live (not yet archived) jobs in each state: (state name, count),
    /// by name, states without jobs left out.
    fn admin_state_counts(&self) -> BackendFuture<'_, Vec<(String, u64)>> {
        admin::unsupported_future()
    }
}

/// Told by a backend what happened, for metrics. Called on the backend's own threads
/// (the store thread of a durable engine), so implementations must be cheap and must not
/// block: a few atomic operations.
pub trait Observer: Send + Sync + 'static {
    /// A job of `workflow` finished (with an error when `failed`), `latency` after it
    /// was created. Told once the change is committed (synced, for a durable store).
    fn job_finished(&self, workflow: &str, failed: bool, latency: std::time::Duration);

    /// The store made a batch of `batch` transactions durable in `took` (one sync).
    fn store_synced(&self, took: std::time::Duration, batch: usize);
}

pub mod admin;
#[cfg(feature = "stub")]
pub mod stub;
pub mod time;

/// The JSON type name of a value (`null`, `boolean`, `number`, `string`, `array`, `object`),
/// as type-check messages name it.
pub fn json_type_name(v: &serde_json::Value) -> &'static str {
    use serde_json::Value;
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}
