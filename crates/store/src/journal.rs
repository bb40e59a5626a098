//! A durable embedded backend: the in-memory store plus an append-only journal file.
//!
//! Every committed transaction appends one JSON line naming the records it wrote (their
//! new content, or `null` for a deletion) and the id sequences. Opening a store replays the
//! journal into memory and then compacts it: the whole state is written as a single line to
//! a new file that atomically replaces the old one.
//!
//! Serialising happens under the store's lock (CPU only); the file is written by a
//! background thread, in batches, with an `fsync` per batch (group commit). A crash can thus
//! lose the transactions of the last few milliseconds, like PostgreSQL with
//! `synchronous_commit = off`; [`JournalStore::sync`] waits until everything committed so
//! far is on disk. A torn last line (crash during a write) is ignored on replay.

use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread::JoinHandle;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tracing::warn;

use crate::memory::{run_txn, State, Undo};
use crate::model::{ArchivedJob, JobId, JobRecord, LockRecord, WorkerId, WorkerRecord};
use crate::{Store, StoreError, Txn};

/// One journal line (owned, for replay).
#[derive(Debug, Default, Deserialize)]
struct Entry {
    seq: (i64, i64, i64),
    #[serde(default)]
    jobs: Vec<(JobId, Option<JobRecord>)>,
    #[serde(default)]
    archive: Vec<(JobId, Option<ArchivedJob>)>,
    #[serde(default)]
    workers: Vec<(WorkerId, Option<WorkerRecord>)>,
    #[serde(default)]
    locks: Vec<((String, String), Option<LockRecord>)>,
}

/// One journal line (borrowed, for writing).
#[derive(Debug, Default, Serialize)]
struct EntryRef<'a> {
    seq: (i64, i64, i64),
    jobs: Vec<(JobId, Option<&'a JobRecord>)>,
    archive: Vec<(JobId, Option<&'a ArchivedJob>)>,
    workers: Vec<(WorkerId, Option<&'a WorkerRecord>)>,
    locks: Vec<(&'a (String, String), Option<&'a LockRecord>)>,
}

enum Msg {
    Line(Vec<u8>),
    Sync(mpsc::Sender<()>),
}

/// The durable store: a [`MemoryStore`](crate::MemoryStore)-like state plus a journal.
pub struct JournalStore {
    state: Mutex<State>,
    tx: Mutex<Option<mpsc::Sender<Msg>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    path: PathBuf,
}

impl std::fmt::Debug for JournalStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JournalStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

fn io_err(e: std::io::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

fn apply(state: &mut State, e: Entry) {
    state.last_job_id = state.last_job_id.max(e.seq.0);
    state.last_worker_id = state.last_worker_id.max(e.seq.1);
    state.last_event_id = state.last_event_id.max(e.seq.2);
    for (id, j) in e.jobs {
        state.set_job(id, j);
    }
    for (id, a) in e.archive {
        state.set_archive(id, a);
    }
    for (id, w) in e.workers {
        state.set_worker(id, w);
    }
    for (k, l) in e.locks {
        state.set_lock(k, l);
    }
}

/// The journal line for a committed transaction.
fn entry_line(state: &State, undo: &[Undo]) -> Vec<u8> {
    let mut e = EntryRef {
        seq: (state.last_job_id, state.last_worker_id, state.last_event_id),
        ..EntryRef::default()
    };
    for u in undo {
        match u {
            Undo::Job(id, _) => {
                if !e.jobs.iter().any(|(j, _)| j == id) {
                    e.jobs.push((*id, state.jobs.get(id)));
                }
            }
            Undo::Archive(id, _) => {
                if !e.archive.iter().any(|(j, _)| j == id) {
                    e.archive.push((*id, state.archive.get(id)));
                }
            }
            Undo::Worker(id, _) => {
                if !e.workers.iter().any(|(j, _)| j == id) {
                    e.workers.push((*id, state.workers.get(id)));
                }
            }
            Undo::Lock(key, _) => {
                if !e.locks.iter().any(|(k, _)| *k == key) {
                    e.locks.push((key, state.locks.get(key)));
                }
            }
        }
    }
    let mut line = serde_json::to_vec(&e).unwrap_or_default();
    line.push(b'\n');
    line
}

/// The whole state as one journal line (compaction).
fn snapshot_line(state: &State) -> Vec<u8> {
    let e = EntryRef {
        seq: (state.last_job_id, state.last_worker_id, state.last_event_id),
        jobs: state.jobs.iter().map(|(id, j)| (*id, Some(j))).collect(),
        archive: state.archive.iter().map(|(id, a)| (*id, Some(a))).collect(),
        workers: state.workers.iter().map(|(id, w)| (*id, Some(w))).collect(),
        locks: state.locks.iter().map(|(k, l)| (k, Some(l))).collect(),
    };
    let mut line = serde_json::to_vec(&e).unwrap_or_default();
    line.push(b'\n');
    line
}

fn writer_loop(file: File, rx: mpsc::Receiver<Msg>) {
    let mut out = BufWriter::new(file);
    while let Ok(first) = rx.recv() {
        let mut waiters = Vec::new();
        let mut msg = Some(first);
        // Take everything queued: one write + one fsync per batch.
        while let Some(m) = msg {
            match m {
                Msg::Line(l) => {
                    if let Err(e) = out.write_all(&l) {
                        warn!(error = %e, "journal write failed");
                    }
                }
                Msg::Sync(w) => waiters.push(w),
            }
            msg = rx.try_recv().ok();
        }
        if let Err(e) = out.flush().and_then(|_| out.get_ref().sync_data()) {
            warn!(error = %e, "journal flush failed");
        }
        for w in waiters {
            let _ = w.send(());
        }
    }
    let _ = out.flush().and_then(|_| out.get_ref().sync_data());
}

impl JournalStore {
    /// Open (or create) the store whose journal is the file `path`: replay, compact, and
    /// start the writer thread.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        let mut state = State::default();
        if path.exists() {
            let reader = BufReader::new(File::open(&path).map_err(io_err)?);
            for (n, line) in reader.split(b'\n').enumerate() {
                let line = line.map_err(io_err)?;
                if line.is_empty() {
                    continue;
                }
                match serde_json::from_slice::<Entry>(&line) {
                    Ok(e) => apply(&mut state, e),
                    Err(e) => {
                        // Only a torn last line is expected; stop there either way.
                        warn!(line = n + 1, error = %e, "journal replay stopped at a bad line");
                        break;
                    }
                }
            }
        }
        // Compact: the current state as a single line, atomically replacing the journal.
        let tmp = path.with_extension("compact");
        {
            let mut f = File::create(&tmp).map_err(io_err)?;
            f.write_all(&snapshot_line(&state)).map_err(io_err)?;
            f.sync_all().map_err(io_err)?;
        }
        fs::rename(&tmp, &path).map_err(io_err)?;
        let file = OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(io_err)?;
        let (tx, rx) = mpsc::channel();
        let writer = std::thread::Builder::new()
            .name("jobcenter-journal".into())
            .spawn(move || writer_loop(file, rx))
            .map_err(io_err)?;
        Ok(JournalStore {
            state: Mutex::new(state),
            tx: Mutex::new(Some(tx)),
            writer: Mutex::new(Some(writer)),
            path,
        })
    }

    /// Wait until every transaction committed so far is written and synced.
    pub fn sync(&self) -> Result<(), StoreError> {
        let (tx, rx) = mpsc::channel();
        let sent = self
            .tx
            .lock()
            .as_ref()
            .is_some_and(|s| s.send(Msg::Sync(tx)).is_ok());
        if !sent {
            return Err(StoreError::Backend("journal writer stopped".into()));
        }
        rx.recv()
            .map_err(|_| StoreError::Backend("journal writer stopped".into()))
    }

    /// Number of live jobs (for tests and metrics).
    pub fn live_jobs(&self) -> usize {
        self.state.lock().jobs.len()
    }
}

impl Drop for JournalStore {
    fn drop(&mut self) {
        // Closing the channel lets the writer drain, sync and exit.
        self.tx.lock().take();
        if let Some(w) = self.writer.lock().take() {
            let _ = w.join();
        }
    }
}

impl Store for JournalStore {
    fn transact<R, E, F>(&self, f: F) -> Result<R, E>
    where
        E: From<StoreError>,
        F: FnOnce(&mut dyn Txn) -> Result<R, E>,
    {
        let mut guard = self.state.lock();
        let mut line = None;
        let r = run_txn(&mut guard, f, |state, undo| {
            if !undo.is_empty() {
                line = Some(entry_line(state, undo));
            }
        })?;
        if let Some(l) = line {
            // Sent under the state lock so journal order equals commit order.
            if let Some(tx) = self.tx.lock().as_ref() {
                if tx.send(Msg::Line(l)).is_err() {
                    warn!("journal writer stopped; commit not persisted");
                }
            }
        }
        drop(guard);
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{JobState, LockRecord, Registration, TaskState};
    use serde_json::json;

    fn job(id: JobId, state: JobState, action: Option<&str>) -> JobRecord {
        JobRecord {
            id,
            workflow: "w".into(),
            version: 0,
            workflow_def: 0,
            state,
            task: 1,
            steps: 3,
            max_steps: 99,
            depth: 1,
            parent: None,
            children: Vec::new(),
            subscriptions: Vec::new(),
            args: std::sync::Arc::new(json!({"x": 1}).as_object().cloned().unwrap_or_default()),
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
            wake_at: Some(77),
        }
    }

    #[test]
    fn reopen_replays_records_indexes_and_sequences() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("jobs.journal");
        {
            let store = JournalStore::open(&path).expect("open");
            let r: Result<(), StoreError> = store.transact(|t| {
                let a = t.next_job_id();
                let b = t.next_job_id();
                t.put_job(job(a, JobState::Ready, Some("add")));
                t.put_job(job(b, JobState::Finished, None));
                let w = t.next_worker_id();
                t.put_worker(WorkerRecord {
                    id: w,
                    name: "w1".into(),
                    active: true,
                    started_at: 0,
                    last_ping: 0,
                    registrations: vec![Registration {
                        action: "add".into(),
                        filter: None,
                    }],
                });
                t.put_lock(LockRecord {
                    locktype: "slot".into(),
                    lockvalue: "a".into(),
                    holder: a,
                    inheritable: false,
                    lenders: vec![],
                });
                Ok(())
            });
            assert!(r.is_ok());
            let r: Result<(), StoreError> = store.transact(|t| {
                assert!(t.archive_job(2));
                Ok(())
            });
            assert!(r.is_ok());
            // A rolled-back transaction leaves no trace in the journal either.
            let r: Result<(), StoreError> = store.transact(|t| {
                t.next_job_id();
                t.put_job(job(3, JobState::Ready, Some("add")));
                Err(StoreError::Backend("no".into()))
            });
            assert!(r.is_err());
            assert!(store.sync().is_ok());
        }
        for _ in 0..2 {
            // Twice: the second open reads the compacted file.
            let store = JournalStore::open(&path).expect("reopen");
            let got = store.transact(|t| {
                Ok::<_, StoreError>((
                    t.ready_jobs("add").collect::<Vec<_>>(),
                    t.archived(2).map(|a| a.id),
                    t.job(2).is_some(),
                    t.active_worker("w1").map(|w| w.registrations.len()),
                    t.lock("slot", "a").map(|l| l.holder),
                    t.due_jobs(100, 10),
                    t.job(3).is_some(),
                ))
            });
            let got = got.expect("query");
            assert_eq!(
                got,
                (vec![1], Some(2), false, Some(1), Some(1), vec![1], false)
            );
            let next = store.transact(|t| Ok::<_, StoreError>(t.next_job_id()));
            assert_eq!(next, Ok(3));
        }
    }
}
