//! Storage for the JobCenter engine: the persisted data model, the [`Store`] trait and backends.
//!
//! # Design
//!
//! The engine (crate `jobcenter-engine`) keeps **no** job or worker state of its own: every
//! job, every claimed task and every worker lives in a [`Store`]. The data types of
//! [`model`] are plain serde structures, so a backend can keep them in memory, serialise
//! them to an embedded key-value store, or map them to the tables of a PostgreSQL schema.
//!
//! Every state change goes through [`Store::transact`]: the engine gets a [`Txn`] handle,
//! reads and writes records through it, and returns. If the closure returns `Ok`, all
//! writes become visible at once; if it returns `Err`, none of them do. One task transition
//! of a job (claim, result, error, timer, child completion) is always exactly one such
//! transaction, so a crash or a concurrent caller never sees a job half-way through a step.
//!
//! Besides plain get/put, a [`Txn`] answers the few indexed questions the engine asks
//! (ready jobs of an action in id order, the job holding a cookie, jobs due at a time,
//! the active worker of a name, the locks of a job, the jobs waiting for a lock). A backend
//! maintains these indexes itself from the records
//! it stores ([`JobRecord::ready_action`], [`JobRecord::wake_at`], the claim cookie), so
//! the engine cannot forget to update them. In SQL terms they are partial indexes.
//!
//! Backends:
//! - [`MemoryStore`]: everything in memory behind one mutex; a transaction holds the mutex
//!   for its whole duration (callers must never hold it across an `.await`: the closure is
//!   synchronous) and keeps an undo log, so an `Err` rolls every write back. Nothing
//!   survives a restart.
//! - [`SqliteStore`]: durable, in one SQLite file (WAL mode). Every record is a row, the
//!   indexes are SQL (partial) indexes, and nothing is cached beyond SQLite's page cache, so
//!   memory does not grow with the number of jobs. A transaction is a SAVEPOINT inside the
//!   open batch; [`Store::sync`] commits the batch (group commit).
//!
//! - [`PgStore`]: PostgreSQL, shared by several server processes (nodes): the same rows and
//!   batches, plus row locks on the jobs a transaction reads, advisory locks for JCL locks,
//!   sequences for ids, node heartbeats, and `NOTIFY` for events.
//!
//! See `docs/design/storage.md`.

pub mod memory;
pub mod model;
pub mod pg;
pub mod spec;
mod sql;
pub mod sqlite;
pub mod testdb;

pub use memory::MemoryStore;
pub use model::{
    ArchivedJob, ChildLink, JobId, JobRecord, JobState, LockRecord, LockWait, Millis, ParentLink,
    QueuedEvent, Registration, Step, Subscription, TaskClaim, TaskState, WorkerId, WorkerRecord,
    HISTORY_MAX,
};
pub use pg::{PgOpenError, PgStore, PG_SCHEMA_VERSION};
pub use spec::{StoreSpec, DEFAULT_STORE};
pub use sqlite::{
    OpenError, SqliteStore, SyncMode, APPLICATION_ID, SCHEMA_VERSION, WAL_CAP_PAGES, WAL_IDLE_PAGES,
};

/// A JSON object.
pub type Object = serde_json::Map<String, serde_json::Value>;

/// A failure of the storage layer itself (not of the engine logic running inside it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The backend could not run or commit the transaction (I/O, connection, conflict).
    #[error("store backend error: {0}")]
    Backend(String),
    /// A stored record could not be decoded.
    #[error("corrupt store record: {0}")]
    Corrupt(String),
}

/// A failed store call, as the API server sees it (the message of docs/PROTOCOL.md §10).
impl From<StoreError> for jobcenter_backend::BackendError {
    fn from(e: StoreError) -> Self {
        jobcenter_backend::BackendError::new(e.to_string())
    }
}

/// One open transaction: reads see the transaction's own writes.
///
/// Reads return owned records (the JSON inside a [`JobRecord`] is behind `Arc`, so a copy
/// is cheap), so a backend never hands out references into shared state and a SQL backend
/// can decode rows on demand. A read that fails in the backend (I/O, a corrupt row) returns
/// `None`/empty and poisons the transaction: [`Store::transact`] then rolls it back and
/// returns the error, so nothing decided on a failed read is ever committed.
///
/// The methods are object-safe so that the engine's code does not depend on the backend.
pub trait Txn {
    /// Allocate the next job id (positive, increasing, never handed out twice once the
    /// transaction is durable).
    fn next_job_id(&mut self) -> JobId;
    /// A live job.
    fn job(&self, id: JobId) -> Option<JobRecord>;
    /// Whether a live job is marked `aborted` (its parent finished before it). The scheduler
    /// needs only this flag of the stored copy each time it moves a job on; the default reads
    /// the whole job, the memory store looks at its record without copying it.
    fn job_aborted(&self, id: JobId) -> bool {
        self.job(id).is_some_and(|j| j.aborted)
    }
    /// A live job, read without taking it for this transaction (PostgreSQL: no row lock),
    /// for answers that change nothing (`get_job_status`, counting).
    fn peek_job(&self, id: JobId) -> Option<JobRecord> {
        self.job(id)
    }
    /// A live job whose task for `action` is ready, unless another node's open transaction
    /// holds it (PostgreSQL: `SKIP LOCKED`): for claims, which must not wait for (or deadlock
    /// with) another node claiming the same task. A job that is not ready for `action` is
    /// `None` and, on PostgreSQL, not locked: a claim that lost the race to another node must
    /// not hold the winner's job until its batch commits (the winner's `task_done` would wait
    /// for it, and two nodes doing that to each other deadlock).
    fn try_ready_job(&self, id: JobId, action: &str) -> Option<JobRecord> {
        self.job(id).filter(|j| j.ready_action() == Some(action))
    }
    /// Insert or replace a live job (indexes follow the record's fields).
    fn put_job(&mut self, job: JobRecord);
    /// Move a live job to the archive (only its final result is kept). `false` if the job
    /// is not live.
    fn archive_job(&mut self, id: JobId) -> bool;
    /// An archived job.
    fn archived(&self, id: JobId) -> Option<ArchivedJob>;
    /// Forget archived jobs that finished before `before` (at most `limit`); returns how
    /// many were removed.
    fn purge_archived(&mut self, before: Millis, limit: usize) -> usize;
    /// The live job whose current claim carries this cookie.
    fn job_by_cookie(&self, cookie: &str) -> Option<JobId>;
    /// The live job whose current claim carries this cookie, read as [`Txn::job`] reads
    /// (SQL backends: one query instead of two).
    fn job_with_cookie(&self, cookie: &str) -> Option<JobRecord> {
        self.job_by_cookie(cookie).and_then(|id| self.job(id))
    }
    /// Ids of jobs in state `ready` waiting for this action, ascending.
    fn ready_jobs<'a>(&'a self, action: &str) -> Box<dyn Iterator<Item = JobId> + 'a>;
    /// Ids of jobs whose task is claimed (state `working`) by this worker, ascending.
    fn jobs_claimed_by(&self, worker: WorkerId) -> Vec<JobId>;
    /// Ids of jobs whose `wake_at` is at or before `now`, earliest first, at most `limit`,
    /// taken for this transaction. On PostgreSQL every node runs its timer over the same
    /// jobs: a due job another node's open transaction holds is skipped (that node handles
    /// it), so the nodes never queue behind each other's batches for them.
    fn due_jobs(&self, now: Millis, limit: usize) -> Vec<JobId>;
    /// The earliest `wake_at` of any live job.
    fn next_wake(&self) -> Option<Millis>;
    /// After the engine's writes, a time at or before which the timer should look again, if
    /// this transaction may have made it earlier: the engine wakes its timer when this is
    /// earlier than what the timer knows. The default asks [`Txn::next_wake`]; SQL backends
    /// answer the earliest `wake_at` this transaction wrote (one query less per
    /// transaction; the wake-ups of other jobs are known to the timer already).
    fn wake_hint(&self) -> Option<Millis> {
        self.next_wake()
    }
    /// Visit every live job (order unspecified).
    fn scan_jobs(&self, f: &mut dyn FnMut(&JobRecord));
    /// The lock (type, value), if held.
    fn lock(&self, locktype: &str, lockvalue: &str) -> Option<LockRecord>;
    /// Insert or replace a lock (keyed by type and value).
    fn put_lock(&mut self, lock: LockRecord);
    /// Delete a lock; `false` if it was not held.
    fn delete_lock(&mut self, locktype: &str, lockvalue: &str) -> bool;
    /// The locks a job holds.
    fn locks_held_by(&self, job: JobId) -> Vec<LockRecord>;
    /// Ids of jobs in `lockwait` for (type, value), ascending.
    fn lock_waiters(&self, locktype: &str, lockvalue: &str) -> Vec<JobId>;
    /// Allocate the next event id.
    fn next_event_id(&mut self) -> i64;
    /// Ids of live jobs with at least one event subscription, ascending.
    fn subscribed_jobs(&self) -> Vec<JobId>;
    /// Allocate the next worker id.
    fn next_worker_id(&mut self) -> WorkerId;
    /// An active worker by id.
    fn worker(&self, id: WorkerId) -> Option<WorkerRecord>;
    /// The active (not stopped) worker with this name.
    fn active_worker(&self, name: &str) -> Option<WorkerRecord>;
    /// All active workers.
    fn active_workers(&self) -> Vec<WorkerRecord>;
    /// Insert or replace a worker. Stopped workers are forgotten.
    fn put_worker(&mut self, worker: WorkerRecord);

    /// Ids and names of the active workers registered through this node (on a single-node
    /// store: all of them). At start they are leftovers of this node's previous run.
    fn node_workers(&self) -> Vec<(WorkerId, String)> {
        self.active_workers()
            .into_iter()
            .map(|w| (w.id, w.name))
            .collect()
    }

    /// Administration: live jobs with an id below `below`, highest id first, at most
    /// `limit`, read without taking them (like [`Txn::peek_job`]). The default visits every
    /// live job; SQL backends walk the primary key.
    fn jobs_below(&self, below: JobId, limit: usize) -> Vec<JobRecord> {
        let mut jobs = Vec::new();
        self.scan_jobs(&mut |j| {
            if j.id < below {
                jobs.push(j.clone());
            }
        });
        jobs.sort_unstable_by_key(|j| std::cmp::Reverse(j.id));
        jobs.truncate(limit);
        jobs
    }

    /// Administration: archived jobs with an id below `below`, highest id first, at most
    /// `limit`.
    fn archived_below(&self, below: JobId, limit: usize) -> Vec<ArchivedJob>;

    /// Administration: held locks (of `locktype`, or of every type), ordered by type and
    /// value, at most `limit`.
    fn all_locks(&self, locktype: Option<&str>, limit: usize) -> Vec<LockRecord>;

    /// Administration: ids of the live jobs whose parent is `parent`, ascending. The
    /// default visits every live job; the backends use an index on the parent.
    fn children_of(&self, parent: JobId) -> Vec<JobId> {
        let mut ids = Vec::new();
        self.scan_jobs(&mut |j| {
            if j.parent.as_ref().is_some_and(|p| p.job_id == parent) {
                ids.push(j.id);
            }
        });
        ids.sort_unstable();
        ids
    }

    /// Administration: how many live jobs are in each state (the state's name, ascending;
    /// states without jobs left out). The default visits every live job; SQL backends
    /// count an index.
    fn count_by_state(&self) -> Vec<(String, u64)> {
        let mut counts: std::collections::BTreeMap<&'static str, u64> = Default::default();
        self.scan_jobs(&mut |j| *counts.entry(j.state.as_str()).or_default() += 1);
        counts
            .into_iter()
            .map(|(s, n)| (s.to_string(), n))
            .collect()
    }

    /// Administration: live jobs in `state` with an id below `below`, highest id first, at
    /// most `limit`, read without taking them. The default visits every live job; SQL
    /// backends walk an index on the state.
    fn jobs_in_state_below(&self, state: JobState, below: JobId, limit: usize) -> Vec<JobRecord> {
        let mut jobs = Vec::new();
        self.scan_jobs(&mut |j| {
            if j.state == state && j.id < below {
                jobs.push(j.clone());
            }
        });
        jobs.sort_unstable_by_key(|j| std::cmp::Reverse(j.id));
        jobs.truncate(limit);
        jobs
    }

    /// Administration: the actions disabled by an administrator (`disable`), sorted. Kept
    /// in the store, so the setting survives restarts and holds on every node.
    fn disabled_actions(&self) -> Vec<String>;

    /// Administration: disable (`disabled == true`) or enable `action`. Returns whether the
    /// setting changed.
    fn set_action_disabled(&mut self, action: &str, disabled: bool) -> bool;

    /// Several nodes: the node round's check (once per second) of the worker records this
    /// node keeps in memory against the table, where another node may have changed them.
    /// Whether the node is alive is written by [`Store::beat`]. Single-node stores ignore it.
    fn check_own_workers(&mut self) {}

    /// Several nodes: ids and names of the active workers of nodes whose last heartbeat is
    /// older than `before` (dead nodes). Single-node stores have none.
    fn orphaned_workers(&self, _before: Millis) -> Vec<(WorkerId, String)> {
        Vec::new()
    }

    /// Several nodes: forget the nodes whose last heartbeat is older than `before`.
    fn forget_dead_nodes(&mut self, _before: Millis) {}
}

/// A transactional store of jobs and workers.
///
/// # Durability and group commit
///
/// A durable backend ([`Store::durable`] is `true`) makes committed transactions durable
/// only at the next [`Store::sync`]: many transactions share one sync (group commit). Its
/// caller must call `sync` and wait for it to succeed before it answers a request or sends
/// a notification that depends on any of those transactions. If `sync` fails, every
/// transaction since the previous successful sync is lost (rolled back), as if the process
/// had crashed. A durable backend may do blocking I/O in `transact` and `sync`: call them
/// from a thread of their own, never from an async task.
pub trait Store: Send + Sync + 'static {
    /// Run `f` as one transaction: commit if it returns `Ok`, roll back if it returns `Err`
    /// (or if a read inside it failed in the backend). `f` must not block.
    fn transact<R, E, F>(&self, f: F) -> Result<R, E>
    where
        E: From<StoreError>,
        F: FnOnce(&mut dyn Txn) -> Result<R, E>;

    /// Whether this store keeps its data across restarts (and so needs [`Store::sync`]
    /// before answers, and a thread of its own).
    fn durable(&self) -> bool {
        false
    }

    /// Most transactions a caller should put into one batch (between two syncs).
    fn max_batch(&self) -> usize {
        512
    }

    /// Make every transaction committed so far durable. A no-op for memory stores.
    fn sync(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// Whether several server processes (nodes) share this store. Then workers belong to
    /// nodes, dead nodes are detected by heartbeats ([`Store::beat`]), and events reach the
    /// other nodes through [`Store::publish`] and [`Store::listen`].
    fn shared(&self) -> bool {
        false
    }

    /// Several nodes: record that this node's process is alive at `now`. Written at once and
    /// outside the batch transaction (PostgreSQL: a connection of its own, autocommit), so a
    /// node whose batch waits for another node's row locks, or is lost, is never taken for
    /// dead and its workers released while it runs. Blocks (call it off tokio's threads);
    /// single-node stores ignore it.
    fn beat(&self, _now: Millis) -> Result<(), StoreError> {
        Ok(())
    }

    /// Queue a payload for the other nodes; it is delivered with the next successful
    /// [`Store::sync`] (and dropped if that sync fails). Single-node stores ignore it.
    fn publish(&self, _payload: String) {}

    /// Call `on` with every payload the other nodes publish, from a thread of the store's
    /// own, until `on` returns `false`. `Ok(false)`: the store has no other nodes.
    fn listen(&self, _on: Box<dyn FnMut(&str) -> bool + Send>) -> Result<bool, StoreError> {
        Ok(false)
    }

    /// Housekeeping that must stay off the answers' path, called by the store thread when
    /// a sync is done, its answers have left and no work is queued. SQLite checkpoints its
    /// write-ahead log here; it never commits anything and never makes an unsynced
    /// transaction durable. The memory and PostgreSQL stores have nothing to do.
    fn idle(&self) {}

    /// A short description for logs (`memory`, `sqlite:/path/to/file.db`).
    fn describe(&self) -> String;
}
