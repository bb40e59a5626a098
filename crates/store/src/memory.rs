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

    fn job(&self, id: JobId) -> Option<&JobRecord> {
        self.state.jobs.get(&id)
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

    fn archived(&self, id: JobId) -> Option<&ArchivedJob> {
        self.state.archive.get(&id)
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

    fn working_jobs(&self) -> Vec<JobId> {
        self.state.idx.cookies.values().copied().collect()
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

    fn scan_jobs(&self, f: &mut dyn FnMut(&JobRecord)) {
        for j in self.state.jobs.values() {
            f(j);
        }
    }

    fn lock(&self, locktype: &str, lockvalue: &str) -> Option<&LockRecord> {
        self.state
            .locks
            .get(&(locktype.to_string(), lockvalue.to_string()))
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

    fn worker(&self, id: WorkerId) -> Option<&WorkerRecord> {
        self.state.workers.get(&id)
    }

    fn active_worker(&self, name: &str) -> Option<&WorkerRecord> {
        self.state
            .active_by_name
            .get(name)
            .and_then(|id| self.state.workers.get(id))
    }

    fn active_workers(&self) -> Vec<&WorkerRecord> {
        self.state.workers.values().filter(|w| w.active).collect()
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

/// Run `f` as a transaction on `state`: roll back on `Err`; on `Ok` call `on_commit` with
/// the state and the undo log (which names every record written).
pub(crate) fn run_txn<R, E, F>(
    state: &mut State,
    f: F,
    on_commit: impl FnOnce(&State, &[Undo]),
) -> Result<R, E>
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
    } else {
        let undo = std::mem::take(&mut txn.undo);
        on_commit(txn.state, &undo);
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
        run_txn(&mut guard, f, |_, _| {})
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{TaskClaim, TaskState};

    fn job(id: JobId, state: JobState, action: Option<&str>) -> JobRecord {
        JobRecord {
            id,
            workflow: "w".into(),
            version: 0,
            workflow_def: 0,
            state,
            task: 1,
            steps: 0,
            max_steps: 99,
            depth: 1,
            parent: None,
            children: Vec::new(),
            subscriptions: Vec::new(),
            args: Default::default(),
            env: Default::default(),
            vars: Default::default(),
            out_args: None,
            task_state: TaskState {
                action: action.map(str::to_string),
                ..TaskState::default()
            },
            aborted: false,
            created_at: 0,
            updated_at: 0,
            finished_at: None,
            wake_at: None,
        }
    }

    #[test]
    fn ready_index_follows_records_and_err_rolls_back() {
        let store = MemoryStore::new();
        let r: Result<(), StoreError> = store.transact(|t| {
            let a = t.next_job_id();
            let b = t.next_job_id();
            t.put_job(job(b, JobState::Ready, Some("x")));
            t.put_job(job(a, JobState::Ready, Some("x")));
            Ok(())
        });
        assert!(r.is_ok());
        let ids: Vec<JobId> = store
            .transact(|t| Ok::<_, StoreError>(t.ready_jobs("x").collect()))
            .unwrap_or_default();
        assert_eq!(ids, vec![1, 2]);

        // A failing transaction leaves nothing behind: not the claim, not the id.
        let r: Result<(), StoreError> = store.transact(|t| {
            let mut j = t
                .job(1)
                .cloned()
                .ok_or(StoreError::Corrupt("gone".into()))?;
            j.state = JobState::Working;
            j.task_state.claim = Some(TaskClaim {
                cookie: "c1".into(),
                worker_id: 1,
                claimed_at: 0,
                deadline: Some(5),
            });
            j.wake_at = Some(5);
            t.put_job(j);
            t.next_job_id();
            assert_eq!(t.job_by_cookie("c1"), Some(1));
            Err(StoreError::Backend("boom".into()))
        });
        assert!(r.is_err());
        let (ids, cookie, due, next) = store
            .transact(|t| {
                Ok::<_, StoreError>((
                    t.ready_jobs("x").collect::<Vec<_>>(),
                    t.job_by_cookie("c1"),
                    t.due_jobs(10, 10),
                    t.next_job_id(),
                ))
            })
            .unwrap_or_default();
        assert_eq!(ids, vec![1, 2]);
        assert_eq!(cookie, None);
        assert!(due.is_empty());
        assert_eq!(next, 3);
    }

    /// Replacing a record in place updates exactly the index entries that changed, and a
    /// rollback of several replacements of one job restores every index.
    #[test]
    fn replacing_a_job_reindexes_only_changes_and_rolls_back() {
        use crate::model::{Subscription, TaskClaim};
        let store = MemoryStore::new();
        let working = |id: JobId, cookie: &str, wake: Option<Millis>| {
            let mut j = job(id, JobState::Working, Some("x"));
            j.task_state.claim = Some(TaskClaim {
                cookie: cookie.into(),
                worker_id: 1,
                claimed_at: 0,
                deadline: wake,
            });
            j.wake_at = wake;
            j
        };
        let r: Result<(), StoreError> = store.transact(|t| {
            t.put_job(job(1, JobState::Ready, Some("x")));
            t.put_job(working(2, "c2", Some(7)));
            Ok(())
        });
        assert!(r.is_ok());
        // Same index keys (only a counter changes), then a new cookie and wake time.
        let r: Result<(), StoreError> = store.transact(|t| {
            let mut j = working(2, "c2", Some(7));
            j.steps = 5;
            t.put_job(j);
            t.put_job(working(2, "c2b", Some(9)));
            Ok(())
        });
        assert!(r.is_ok());
        let snapshot = |store: &MemoryStore| {
            store
                .transact(|t| {
                    Ok::<_, StoreError>((
                        t.ready_jobs("x").collect::<Vec<_>>(),
                        t.job_by_cookie("c2"),
                        t.job_by_cookie("c2b"),
                        t.due_jobs(100, 10),
                        t.subscribed_jobs(),
                    ))
                })
                .unwrap_or_default()
        };
        assert_eq!(snapshot(&store), (vec![1], None, Some(2), vec![2], vec![]));

        // Several replacements of both jobs in one failing transaction: all undone.
        let r: Result<(), StoreError> = store.transact(|t| {
            let mut a = working(1, "c1", Some(3));
            a.subscriptions.push(Subscription {
                name: "s".into(),
                mask: serde_json::json!({}),
                queue: vec![],
            });
            t.put_job(a);
            t.put_job(job(2, JobState::Ready, Some("x")));
            let mut b = job(2, JobState::Ready, Some("y"));
            b.wake_at = Some(1);
            t.put_job(b);
            assert_eq!(t.ready_jobs("y").collect::<Vec<_>>(), vec![2]);
            assert_eq!(t.subscribed_jobs(), vec![1]);
            assert_eq!(t.due_jobs(100, 10), vec![2, 1]);
            Err(StoreError::Backend("undo".into()))
        });
        assert!(r.is_err());
        assert_eq!(snapshot(&store), (vec![1], None, Some(2), vec![2], vec![]));
        let y = store
            .transact(|t| Ok::<_, StoreError>(t.ready_jobs("y").count()))
            .unwrap_or(1);
        assert_eq!(y, 0);
    }

    #[test]
    fn lock_indexes_follow_records_and_roll_back() {
        use crate::model::LockWait;
        let store = MemoryStore::new();
        let lock = LockRecord {
            locktype: "slot".into(),
            lockvalue: "a".into(),
            holder: 1,
            inheritable: false,
            lenders: vec![],
        };
        let r: Result<(), StoreError> = store.transact(|t| {
            t.put_lock(lock.clone());
            let mut w = job(2, JobState::LockWait, None);
            w.task_state.lock = Some(LockWait {
                locktype: "slot".into(),
                lockvalue: "a".into(),
                inherit: false,
            });
            t.put_job(w);
            Ok(())
        });
        assert!(r.is_ok());
        let r: Result<(), StoreError> = store.transact(|t| {
            assert_eq!(t.locks_held_by(1), vec![lock.clone()]);
            assert_eq!(t.lock_waiters("slot", "a"), vec![2]);
            assert!(t.delete_lock("slot", "a"));
            assert!(t.locks_held_by(1).is_empty());
            Err(StoreError::Backend("undo".into()))
        });
        assert!(r.is_err());
        let held = store
            .transact(|t| Ok::<_, StoreError>(t.lock("slot", "a").map(|l| l.holder)))
            .unwrap_or_default();
        assert_eq!(held, Some(1));
    }

    #[test]
    fn archive_moves_the_result_and_workers_index_by_name() {
        let store = MemoryStore::new();
        let r: Result<(), StoreError> = store.transact(|t| {
            let mut j = job(1, JobState::Finished, None);
            j.out_args = Some(serde_json::json!({"r": 1}));
            t.put_job(j);
            assert!(t.archive_job(1));
            assert!(t.job(1).is_none());
            let id = t.next_worker_id();
            t.put_worker(WorkerRecord {
                id,
                name: "w1".into(),
                active: true,
                started_at: 0,
                last_ping: 0,
                registrations: vec![],
            });
            Ok(())
        });
        assert!(r.is_ok());
        assert_eq!(store.archived_jobs(), 1);
        assert_eq!(store.live_jobs(), 0);
        let found = store
            .transact(|t| {
                Ok::<_, StoreError>((
                    t.archived(1).map(|a| a.out_args.clone()),
                    t.active_worker("w1").map(|w| w.id),
                ))
            })
            .unwrap_or_default();
        assert_eq!(found, (Some(serde_json::json!({"r": 1})), Some(1)));
    }
}
