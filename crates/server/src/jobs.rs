//! The job registry of docs/PROTOCOL.md §9: which connections wait for which job's `job_done`.

use crate::dispatch::ConnId;
use foldhash::{HashMap, HashMapExt};
use jobcenter_backend::JobId;
use serde_json::Value;
use std::collections::VecDeque;
use tokio::task::AbortHandle;

/// How many finished jobs nobody waited for are remembered ([`JobRegistry::register_new`]).
pub const UNCLAIMED_CAPACITY: usize = 16_384;

/// One connection waiting for a job.
#[derive(Debug, Clone, PartialEq)]
pub struct Waiter {
    /// The waiting connection.
    pub conn: ConnId,
    /// The `job_id` value to put into `job_done` (the backend integer for `create_job`, the
    /// value the client sent for `get_job_status` with notify).
    pub job_id: Value,
    /// Registered by `create_job` (only that one gets the timeout `job_done`).
    pub creator: bool,
}

#[derive(Debug, Default)]
struct Entry {
    waiters: Vec<Waiter>,
    timer: Option<AbortHandle>,
}

/// The jobs that finished while nobody here waited for them, newest last, at most
/// `capacity`: a `create_job` answer whose job finished before its waiter was registered
/// finds its job here (see docs/design/storage.md, "The result in the event").
#[derive(Debug)]
struct Unclaimed {
    /// Sequence number of each remembered job's latest finish.
    ids: HashMap<JobId, u64>,
    /// (sequence number, job) in the order recorded.
    order: VecDeque<(u64, JobId)>,
    /// Sequence number of the last record.
    seq: u64,
    /// Sequence number of the last record forgotten (0: none).
    forgotten: u64,
    capacity: usize,
}

impl Unclaimed {
    fn new(capacity: usize) -> Self {
        Unclaimed {
            ids: HashMap::new(),
            order: VecDeque::new(),
            seq: 0,
            forgotten: 0,
            capacity: capacity.max(1),
        }
    }

    fn record(&mut self, job: JobId) {
        self.seq += 1;
        self.ids.insert(job, self.seq);
        self.order.push_back((self.seq, job));
        while self.order.len() > self.capacity {
            let Some((seq, old)) = self.order.pop_front() else {
                break;
            };
            self.forgotten = seq;
            if self.ids.get(&old) == Some(&seq) {
                self.ids.remove(&old);
            }
        }
    }
}

/// job id → waiting connections plus the optional `create_job` timeout timer, and the jobs
/// that finished while nobody waited (bounded).
#[derive(Debug)]
pub struct JobRegistry {
    entries: HashMap<JobId, Entry>,
    unclaimed: Unclaimed,
}

impl Default for JobRegistry {
    fn default() -> Self {
        JobRegistry::with_capacity(UNCLAIMED_CAPACITY)
    }
}

/// What [`JobRegistry::register_new`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Registered {
    /// The job has not finished before the registration: its `job:finished` comes later.
    Pending,
    /// The job finished before (or it cannot be ruled out): read its status now.
    CheckNow,
}

impl JobRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        JobRegistry::default()
    }

    /// An empty registry remembering at most `capacity` finished jobs nobody waited for.
    pub fn with_capacity(capacity: usize) -> Self {
        JobRegistry {
            entries: HashMap::new(),
            unclaimed: Unclaimed::new(capacity),
        }
    }

    /// Add a waiter for `job` (creating the entry).
    pub fn register(&mut self, job: JobId, waiter: Waiter) {
        self.entries.entry(job).or_default().waiters.push(waiter);
    }

    /// A mark to take before creating a job and to hand to [`JobRegistry::register_new`].
    pub fn mark(&self) -> u64 {
        self.unclaimed.seq
    }

    /// Add a waiter for a job created after `mark` was taken, and say whether its
    /// `job:finished` may have come before: it did if the job is among the finished jobs
    /// nobody waited for; it may have if a record newer than `mark` was forgotten since.
    /// Otherwise the job has not finished yet and its event will find this waiter.
    pub fn register_new(&mut self, job: JobId, waiter: Waiter, mark: u64) -> Registered {
        self.register(job, waiter);
        if self.unclaimed.ids.remove(&job).is_some() || self.unclaimed.forgotten > mark {
            Registered::CheckNow
        } else {
            Registered::Pending
        }
    }

    /// `job` finished with its result at hand: remove its entry (cancelling its timer) and
    /// return its waiters; with none, remember that it finished.
    pub fn finished(&mut self, job: JobId) -> Vec<Waiter> {
        if self.entries.contains_key(&job) {
            self.finish(job)
        } else {
            self.unclaimed.record(job);
            Vec::new()
        }
    }

    /// `job` finished, its result not at hand: whether anybody waits (read the status
    /// then); with nobody, remember that it finished.
    pub fn finished_unread(&mut self, job: JobId) -> bool {
        if self.entries.contains_key(&job) {
            true
        } else {
            self.unclaimed.record(job);
            false
        }
    }

    /// Attach the `create_job` timeout timer to the entry (aborted when the job finishes).
    /// Without an entry the timer is aborted at once.
    pub fn set_timer(&mut self, job: JobId, timer: AbortHandle) {
        match self.entries.get_mut(&job) {
            Some(e) => {
                if let Some(old) = e.timer.replace(timer) {
                    old.abort();
                }
            }
            None => timer.abort(),
        }
    }

    /// Whether anybody waits for `job`.
    pub fn is_registered(&self, job: JobId) -> bool {
        self.entries.contains_key(&job)
    }

    /// The job finished: remove the entry (cancelling its timer) and return its waiters.
    /// Each waiter is returned by exactly one call.
    pub fn finish(&mut self, job: JobId) -> Vec<Waiter> {
        match self.entries.remove(&job) {
            Some(e) => {
                if let Some(t) = e.timer {
                    t.abort();
                }
                e.waiters
            }
            None => Vec::new(),
        }
    }

    /// The `create_job` timeout fired: remove the creator's waiter and return it.
    ///
    /// Deviation (allowed by §14 Q31): other connections' `get_job_status` notify
    /// registrations for the job are kept and still get the real result.
    pub fn timeout(&mut self, job: JobId, conn: ConnId) -> Option<Waiter> {
        let e = self.entries.get_mut(&job)?;
        let pos = e.waiters.iter().position(|w| w.creator && w.conn == conn)?;
        let w = e.waiters.remove(pos);
        e.timer = None;
        if e.waiters.is_empty() {
            self.entries.remove(&job);
        }
        Some(w)
    }

    /// Remove one non-creator waiter of `conn` (after a `get_job_status` with notify that
    /// already returned the final outargs, or failed).
    pub fn unregister_notify(&mut self, job: JobId, conn: ConnId) {
        let Some(e) = self.entries.get_mut(&job) else {
            return;
        };
        if let Some(pos) = e.waiters.iter().position(|w| !w.creator && w.conn == conn) {
            e.waiters.remove(pos);
        }
        if e.waiters.is_empty() {
            if let Some(e) = self.entries.remove(&job) {
                if let Some(t) = e.timer {
                    t.abort();
                }
            }
        }
    }

    /// Number of jobs somebody waits for.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nobody waits for any job.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// A JSON description (for `get_api_status jobs`).
    pub fn describe(&self) -> Value {
        let mut jobs: Vec<(&JobId, &Entry)> = self.entries.iter().collect();
        jobs.sort_by_key(|(j, _)| **j);
        let mut out = serde_json::Map::new();
        for (j, e) in jobs {
            let waiters: Vec<Value> = e
                .waiters
                .iter()
                .map(|w| serde_json::json!({"conn": w.conn, "creator": w.creator}))
                .collect();
            out.insert(
                j.to_string(),
                serde_json::json!({"waiters": waiters, "timer": e.timer.is_some()}),
            );
        }
        Value::Object(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creator(conn: ConnId, job: JobId) -> Waiter {
        Waiter {
            conn,
            job_id: Value::from(job),
            creator: true,
        }
    }

    fn notify(conn: ConnId, v: Value) -> Waiter {
        Waiter {
            conn,
            job_id: v,
            creator: false,
        }
    }

    #[test]
    fn finish_returns_every_waiter_once() {
        let mut r = JobRegistry::new();
        r.register(5, creator(1, 5));
        r.register(5, notify(2, Value::from("5")));
        let w = r.finish(5);
        assert_eq!(w.len(), 2);
        assert_eq!(w[1].job_id, Value::from("5"));
        assert!(r.finish(5).is_empty());
        assert!(r.is_empty());
    }

    #[test]
    fn c39_timeout_only_hits_the_creator() {
        let mut r = JobRegistry::new();
        r.register(7, creator(1, 7));
        r.register(7, notify(2, Value::from(7)));
        assert_eq!(r.timeout(7, 2), None);
        assert_eq!(r.timeout(7, 1), Some(creator(1, 7)));
        assert_eq!(r.timeout(7, 1), None);
        // the notify registration survives and gets the real result
        assert_eq!(r.finish(7), vec![notify(2, Value::from(7))]);
    }

    #[test]
    fn a_job_finished_before_its_registration_is_found() {
        let mut r = JobRegistry::new();
        let mark = r.mark();
        assert!(r.finished(8).is_empty());
        assert_eq!(r.register_new(8, creator(1, 8), mark), Registered::CheckNow);
        // Found once: a second finish (an admin retry) is an event like any other.
        assert_eq!(r.finish(8), vec![creator(1, 8)]);
        let mark = r.mark();
        assert_eq!(r.register_new(9, creator(1, 9), mark), Registered::Pending);
        assert_eq!(r.finished(9), vec![creator(1, 9)]);
        // Finished with the result left out (too large for NOTIFY): found the same way.
        let mark = r.mark();
        assert!(!r.finished_unread(10));
        assert_eq!(
            r.register_new(10, creator(2, 10), mark),
            Registered::CheckNow
        );
    }

    #[test]
    fn a_forgotten_record_newer_than_the_mark_means_check() {
        let mut r = JobRegistry::with_capacity(2);
        r.finished(1);
        let mark = r.mark();
        r.finished(2);
        // Job 1 is forgotten, but it was recorded before the mark: no reason to check.
        r.finished(3);
        assert_eq!(r.register_new(4, creator(1, 4), mark), Registered::Pending);
        // Job 2 (after the mark) is forgotten now: job 5 might have been it.
        r.finished(6);
        assert_eq!(r.register_new(5, creator(1, 5), mark), Registered::CheckNow);
    }

    #[test]
    fn c45_unregister_notify_keeps_other_waiters() {
        let mut r = JobRegistry::new();
        r.register(3, creator(1, 3));
        r.register(3, notify(1, Value::from(3)));
        r.unregister_notify(3, 1);
        assert_eq!(r.finish(3), vec![creator(1, 3)]);
        r.register(4, notify(9, Value::from(4)));
        r.unregister_notify(4, 9);
        assert!(!r.is_registered(4));
    }
}
