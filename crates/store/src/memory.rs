//! The in-memory backend: all records behind one mutex, transactions with an undo log.

use std::collections::{BTreeSet, HashMap};

use parking_lot::Mutex;

use crate::model::{
    ArchivedJob, JobId, JobRecord, JobState, LockRecord, Millis, WorkerId, WorkerRecord,
};
use crate::{Store, StoreError, Txn};

/// Everything stored, plus the indexes derived from the records.
#[derive(Debug, Default)]
pub(crate) struct State {
    pub(crate) last_job_id: JobId,
    pub(crate) last_worker_id: WorkerId,
    pub(crate) last_event_id: i64,
    pub(crate) jobs: HashMap<JobId, JobRecord, IdHash>,
    pub(crate) archive: HashMap<JobId, ArchivedJob, IdHash>,
    archive_by_time: BTreeSet<(Millis, JobId)>,
    pub(crate) workers: HashMap<WorkerId, WorkerRecord, IdHash>,
    // indexes
    idx: JobIndexes,
    active_by_name: HashMap<String, WorkerId>,
    pub(crate) locks: HashMap<(String, String), LockRecord>,
    locks_by_holder: HashMap<JobId, BTreeSet<(String, String)>, IdHash>,
    /// Actions an administrator disabled.
    disabled_actions: BTreeSet<String>,
}

/// A hasher for integer ids (Fibonacci hashing): ids are small, dense and not chosen by
/// users, so SipHash's flooding resistance buys nothing here.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0.rotate_left(5) ^ u64::from(*b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_i64(&mut self, n: i64) {
        self.0 = (self.0 ^ n as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// Builds [`IdHasher`]s.
pub(crate) type IdHash = std::hash::BuildHasherDefault<IdHasher>;

/// The indexes derived from the live job records.
#[derive(Debug, Default)]
struct JobIndexes {
    ready: HashMap<String, BTreeSet<JobId>>,
    cookies: HashMap<String, JobId>,
    wake: BTreeSet<(Millis, JobId)>,
    subscribed: BTreeSet<JobId>,
    lock_waiters: HashMap<(String, String), BTreeSet<JobId>>,
    /// Live children by parent id (administration: `children_of`, trees).
    by_parent: HashMap<JobId, BTreeSet<JobId>, IdHash>,
}

impl JobIndexes {
    fn unindex_ready(&mut self, job: &JobRecord) {
        if let Some(action) = job.ready_action() {
            if let Some(set) = self.ready.get_mut(action) {
                set.remove(&job.id);
                if set.is_empty() {
                    self.ready.remove(action);
                }
            }
        }
    }

    fn index_ready(&mut self, job: &JobRecord) {
        if let Some(action) = job.ready_action() {
            match self.ready.get_mut(action) {
                Some(set) => {
                    set.insert(job.id);
                }
                None => {
                    self.ready
                        .insert(action.to_string(), BTreeSet::from([job.id]));
                }
            }
        }
    }

    fn unindex_lock(&mut self, job: &JobRecord) {
        if let Some(w) = job.waiting_lock() {
            let key = (w.locktype.clone(), w.lockvalue.clone());
            if let Some(set) = self.lock_waiters.get_mut(&key) {
                set.remove(&job.id);
                if set.is_empty() {
                    self.lock_waiters.remove(&key);
                }
            }
        }
    }

    fn index_lock(&mut self, job: &JobRecord) {
        if let Some(w) = job.waiting_lock() {
            self.lock_waiters
                .entry((w.locktype.clone(), w.lockvalue.clone()))
                .or_default()
                .insert(job.id);
        }
    }

    fn unindex(&mut self, job: &JobRecord) {
        self.unindex_ready(job);
        if let Some(c) = job.cookie() {
            self.cookies.remove(c);
        }
        if let Some(t) = job.wake_at {
            self.wake.remove(&(t, job.id));
        }
        self.subscribed.remove(&job.id);
        self.unindex_lock(job);
        self.unindex_parent(job);
    }

    fn unindex_parent(&mut self, job: &JobRecord) {
        if let Some(p) = &job.parent {
            if let Some(set) = self.by_parent.get_mut(&p.job_id) {
                set.remove(&job.id);
                if set.is_empty() {
                    self.by_parent.remove(&p.job_id);
                }
            }
        }
    }

    fn index_parent(&mut self, job: &JobRecord) {
        if let Some(p) = &job.parent {
            self.by_parent.entry(p.job_id).or_default().insert(job.id);
        }
    }

    fn index(&mut self, job: &JobRecord) {
        self.index_ready(job);
        if let Some(c) = job.cookie() {
            self.cookies.insert(c.to_string(), job.id);
        }
        if let Some(t) = job.wake_at {
            self.wake.insert((t, job.id));
        }
        if !job.subscriptions.is_empty() {
            self.subscribed.insert(job.id);
        }
        self.index_lock(job);
        self.index_parent(job);
    }

    /// `old` is replaced by `new` (the same job): update only the entries that differ.
    fn reindex(&mut self, old: &JobRecord, new: &JobRecord) {
        if old.id != new.id {
            self.unindex(old);
            self.index(new);
            return;
        }
        if old.ready_action() != new.ready_action() {
            self.unindex_ready(old);
            self.index_ready(new);
        }
        if old.cookie() != new.cookie() {
            if let Some(c) = old.cookie() {
                self.cookies.remove(c);
            }
            if let Some(c) = new.cookie() {
                self.cookies.insert(c.to_string(), new.id);
            }
        }
        if old.wake_at != new.wake_at {
            if let Some(t) = old.wake_at {
                self.wake.remove(&(t, old.id));
            }
            if let Some(t) = new.wake_at {
                self.wake.insert((t, new.id));
            }
        }
        if old.subscriptions.is_empty() != new.subscriptions.is_empty() {
            if new.subscriptions.is_empty() {
                self.subscribed.remove(&new.id);
            } else {
                self.subscribed.insert(new.id);
            }
        }
        if old.waiting_lock() != new.waiting_lock() {
            self.unindex_lock(old);
            self.index_lock(new);
        }
        if old.parent.as_ref().map(|p| p.job_id) != new.parent.as_ref().map(|p| p.job_id) {
            self.unindex_parent(old);
            self.index_parent(new);
        }
    }
}

impl State {
    /// Replace (or remove) an archived job, keeping the time index; returns the old one.
    pub(crate) fn set_archive(
        &mut self,
        id: JobId,
        archived: Option<ArchivedJob>,
    ) -> Option<ArchivedJob> {
        let old = self.archive.remove(&id);
        if let Some(o) = &old {
            self.archive_by_time.remove(&(o.finished_at, id));
        }
        if let Some(a) = archived {
            self.archive_by_time.insert((a.finished_at, id));
            self.archive.insert(id, a);
        }
        old
    }

    /// Replace (or remove) a lock, keeping the holder index; returns the old one.
    pub(crate) fn set_lock(
        &mut self,
        key: (String, String),
        lock: Option<LockRecord>,
    ) -> Option<LockRecord> {
        let old = self.locks.remove(&key);
        if let Some(o) = &old {
            if let Some(set) = self.locks_by_holder.get_mut(&o.holder) {
                set.remove(&key);
                if set.is_empty() {
                    self.locks_by_holder.remove(&o.holder);
                }
            }
        }
        if let Some(l) = lock {
            self.locks_by_holder
                .entry(l.holder)
                .or_default()
                .insert(key.clone());
            self.locks.insert(key, l);
        }
        old
    }

    /// Replace (or remove, with `None`) a live job, keeping the indexes; returns the old one.
    pub(crate) fn set_job(&mut self, id: JobId, job: Option<JobRecord>) -> Option<JobRecord> {
        use std::collections::hash_map::Entry;
        match job {
            Some(j) => match self.jobs.entry(id) {
                Entry::Occupied(mut e) => {
                    self.idx.reindex(e.get(), &j);
                    Some(e.insert(j))
                }
                Entry::Vacant(e) => {
                    self.idx.index(&j);
                    e.insert(j);
                    None
                }
            },
            None => {
                let old = self.jobs.remove(&id);
                if let Some(o) = &old {
                    self.idx.unindex(o);
                }
                old
            }
        }
    }

    pub(crate) fn set_worker(
        &mut self,
        id: WorkerId,
        worker: Option<WorkerRecord>,
    ) -> Option<WorkerRecord> {
        let old = self.workers.remove(&id);
        if let Some(o) = &old {
            if o.active && self.active_by_name.get(&o.name) == Some(&o.id) {
                self.active_by_name.remove(&o.name);
            }
        }
        if let Some(w) = worker {
            if w.active {
                self.active_by_name.insert(w.name.clone(), w.id);
                self.workers.insert(id, w);
            }
            // Stopped workers are not retained (nothing refers to them any more).
        }
        old
    }
}

/// One undo-log entry: the previous content of a record.
// Jobs dominate the log; boxing them would cost an allocation on every write.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub(crate) enum Undo {
    Job(JobId, Option<JobRecord>),
    Archive(JobId, Option<ArchivedJob>),
    Worker(WorkerId, Option<WorkerRecord>),
    Lock((String, String), Option<LockRecord>),
    /// An action's disabled flag before the change.
    Disabled(String, bool),
}

/// A transaction over [`State`].
struct MemTxn<'a> {
    state: &'a mut State,
    undo: Vec<Undo>,
}

impl MemTxn<'_> {
    fn rollback(mut self, last_job: JobId, last_worker: WorkerId, last_event: i64) {
        while let Some(u) = self.undo.pop() {
            match u {
                Undo::Job(id, old) => {
                    self.state.set_job(id, old);
                }
                Undo::Archive(id, old) => {
                    self.state.set_archive(id, old);
                }
                Undo::Worker(id, old) => {
                    self.state.set_worker(id, old);
                }
                Undo::Lock(key, old) => {
                    self.state.set_lock(key, old);
                }
                Undo::Disabled(action, was) => {
                    if was {
                        self.state.disabled_actions.insert(action);
                    } else {
                        self.state.disabled_actions.remove(&action);
                    }
                }
            }
        }
        self.state.last_job_id = last_job;
        self.state.last_worker_id = last_worker;
        self.state.last_event_id = last_event;
    }
}

impl Txn for MemTxn<'_> {
    fn next_job_id(&mut self) -> JobId {
        self.state.last_job_id += 1;
        self.state.last_job_id
    }

    fn job(&self, id: JobId) -> Option<JobRecord> {
        self.state.jobs.get(&id).cloned()
    }

    fn job_aborted(&self, id: JobId) -> bool {
        self.state.jobs.get(&id).is_some_and(|j| j.aborted)
    }

    fn put_job(&mut self, job: JobRecord) {
        let id = job.id;
        let old = self.state.set_job(id, Some(job));
        self.undo.push(Undo::Job(id, old));
    }

    fn archive_job(&mut self, id: JobId) -> bool {
        let Some(old) = self.state.set_job(id, None) else {
            return false;
        };
        let archived = ArchivedJob {
            id,
            workflow: old.workflow.clone(),
            version: old.version,
            out_args: old.out_args.clone().unwrap_or(serde_json::Value::Null),
            finished_at: old.finished_at.unwrap_or(old.updated_at),
        };
        self.undo.push(Undo::Job(id, Some(old)));
        let prev = self.state.set_archive(id, Some(archived));
        self.undo.push(Undo::Archive(id, prev));
        true
    }

    fn archived(&self, id: JobId) -> Option<ArchivedJob> {
        self.state.archive.get(&id).cloned()
    }

    fn purge_archived(&mut self, before: Millis, limit: usize) -> usize {
        let old: Vec<JobId> = self
            .state
            .archive_by_time
            .iter()
            .take_while(|(t, _)| *t < before)
            .take(limit)
            .map(|(_, id)| *id)
            .collect();
        for id in &old {
            let prev = self.state.set_archive(*id, None);
            self.undo.push(Undo::Archive(*id, prev));
        }
        old.len()
    }

    fn job_by_cookie(&self, cookie: &str) -> Option<JobId> {
        self.state.idx.cookies.get(cookie).copied()
    }

    fn ready_jobs<'a>(&'a self, action: &str) -> Box<dyn Iterator<Item = JobId> + 'a> {
        match self.state.idx.ready.get(action) {
            Some(set) => Box::new(set.iter().copied()),
            None => Box::new(std::iter::empty()),
        }
    }

    fn jobs_claimed_by(&self, worker: WorkerId) -> Vec<JobId> {
        let mut ids: Vec<JobId> = self
            .state
            .idx
            .cookies
            .values()
            .copied()
            .filter(|id| {
                self.state
                    .jobs
                    .get(id)
                    .and_then(|j| j.task_state.claim.as_ref())
                    .is_some_and(|c| c.worker_id == worker)
            })
            .collect();
        ids.sort_unstable();
        ids
    }

    fn due_jobs(&self, now: Millis, limit: usize) -> Vec<JobId> {
        self.state
            .idx
            .wake
            .iter()
            .take_while(|(t, _)| *t <= now)
            .take(limit)
            .map(|(_, id)| *id)
            .collect()
    }

    fn next_wake(&self) -> Option<Millis> {
        self.state.idx.wake.first().map(|(t, _)| *t)
    }

    fn children_of(&self, parent: JobId) -> Vec<JobId> {
        self.state
            .idx
            .by_parent
            .get(&parent)
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default()
    }

    fn scan_jobs(&self, f: &mut dyn FnMut(&JobRecord)) {
        for j in self.state.jobs.values() {
            f(j);
        }
    }

    fn archived_below(&self, below: JobId, limit: usize) -> Vec<ArchivedJob> {
        let mut jobs: Vec<ArchivedJob> = self
            .state
            .archive
            .values()
            .filter(|a| a.id < below)
            .cloned()
            .collect();
        jobs.sort_unstable_by_key(|j| std::cmp::Reverse(j.id));
        jobs.truncate(limit);
        jobs
    }

    fn all_locks(&self, locktype: Option<&str>, limit: usize) -> Vec<LockRecord> {
        let mut locks: Vec<LockRecord> = self
            .state
            .locks
            .values()
            .filter(|l| locktype.is_none_or(|t| l.locktype == t))
            .cloned()
            .collect();
        locks
            .sort_unstable_by(|a, b| (&a.locktype, &a.lockvalue).cmp(&(&b.locktype, &b.lockvalue)));
        locks.truncate(limit);
        locks
    }

    fn disabled_actions(&self) -> Vec<String> {
        self.state.disabled_actions.iter().cloned().collect()
    }

    fn set_action_disabled(&mut self, action: &str, disabled: bool) -> bool {
        let changed = if disabled {
            self.state.disabled_actions.insert(action.to_string())
        } else {
            self.state.disabled_actions.remove(action)
        };
        if changed {
            self.undo
                .push(Undo::Disabled(action.to_string(), !disabled));
        }
        changed
    }

    fn lock(&self, locktype: &str, lockvalue: &str) -> Option<LockRecord> {
        self.state
            .locks
            .get(&(locktype.to_string(), lockvalue.to_string()))
            .cloned()
    }

    fn put_lock(&mut self, lock: LockRecord) {
        let key = (lock.locktype.clone(), lock.lockvalue.clone());
        let old = self.state.set_lock(key.clone(), Some(lock));
        self.undo.push(Undo::Lock(key, old));
    }

    fn delete_lock(&mut self, locktype: &str, lockvalue: &str) -> bool {
        let key = (locktype.to_string(), lockvalue.to_string());
        let old = self.state.set_lock(key.clone(), None);
        let found = old.is_some();
        self.undo.push(Undo::Lock(key, old));
        found
    }

    fn locks_held_by(&self, job: JobId) -> Vec<LockRecord> {
        self.state
            .locks_by_holder
            .get(&job)
            .map(|keys| {
                keys.iter()
                    .filter_map(|k| self.state.locks.get(k).cloned())
                    .collect()
            })
            .unwrap_or_default()
    }

    fn lock_waiters(&self, locktype: &str, lockvalue: &str) -> Vec<JobId> {
        self.state
            .idx
            .lock_waiters
            .get(&(locktype.to_string(), lockvalue.to_string()))
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default()
    }

    fn next_event_id(&mut self) -> i64 {
        self.state.last_event_id += 1;
        self.state.last_event_id
    }

    fn subscribed_jobs(&self) -> Vec<JobId> {
        self.state.idx.subscribed.iter().copied().collect()
    }

    fn next_worker_id(&mut self) -> WorkerId {
        self.state.last_worker_id += 1;
        self.state.last_worker_id
    }

    fn worker(&self, id: WorkerId) -> Option<WorkerRecord> {
        self.state.workers.get(&id).cloned()
    }

    fn active_worker(&self, name: &str) -> Option<WorkerRecord> {
        self.state
            .active_by_name
            .get(name)
            .and_then(|id| self.state.workers.get(id))
            .cloned()
    }

    fn active_workers(&self) -> Vec<WorkerRecord> {
        self.state
            .workers
            .values()
            .filter(|w| w.active)
            .cloned()
            .collect()
    }

    fn put_worker(&mut self, worker: WorkerRecord) {
        let id = worker.id;
        let old = self.state.set_worker(id, Some(worker));
        self.undo.push(Undo::Worker(id, old));
    }
}

/// The in-memory store: fast, not durable. One mutex serialises transactions.
#[derive(Debug, Default)]
pub struct MemoryStore {
    state: Mutex<State>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        MemoryStore::default()
    }

    /// Number of live jobs (for tests and metrics).
    pub fn live_jobs(&self) -> usize {
        self.state.lock().jobs.len()
    }

    /// Number of archived jobs (for tests and metrics).
    pub fn archived_jobs(&self) -> usize {
        self.state.lock().archive.len()
    }

    /// Number of live jobs in a state (for tests and metrics).
    pub fn jobs_in_state(&self, state: JobState) -> usize {
        self.state
            .lock()
            .jobs
            .values()
            .filter(|j| j.state == state)
            .count()
    }
}

/// Run `f` as a transaction on `state`: roll back on `Err`.
fn run_txn<R, E, F>(state: &mut State, f: F) -> Result<R, E>
where
    E: From<StoreError>,
    F: FnOnce(&mut dyn Txn) -> Result<R, E>,
{
    let (last_job, last_worker, last_event) =
        (state.last_job_id, state.last_worker_id, state.last_event_id);
    let mut txn = MemTxn {
        state,
        undo: Vec::new(),
    };
    let result = f(&mut txn);
    if result.is_err() {
        txn.rollback(last_job, last_worker, last_event);
    }
    result
}

impl Store for MemoryStore {
    fn transact<R, E, F>(&self, f: F) -> Result<R, E>
    where
        E: From<StoreError>,
        F: FnOnce(&mut dyn Txn) -> Result<R, E>,
    {
        let mut guard = self.state.lock();
        run_txn(&mut guard, f)
    }

    fn describe(&self) -> String {
        "memory".to_string()
    }
}
