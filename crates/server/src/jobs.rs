//! The job registry of docs/PROTOCOL.md §9: which connections wait for which job's `job_done`.

use crate::dispatch::ConnId;
use jobcenter_backend::JobId;
use serde_json::Value;
use std::collections::HashMap;
use tokio::task::AbortHandle;

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

/// job id → waiting connections plus the optional `create_job` timeout timer.
#[derive(Debug, Default)]
pub struct JobRegistry {
    entries: HashMap<JobId, Entry>,
}

impl JobRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        JobRegistry::default()
    }

    /// Add a waiter for `job` (creating the entry).
    pub fn register(&mut self, job: JobId, waiter: Waiter) {
        self.entries.entry(job).or_default().waiters.push(waiter);
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
