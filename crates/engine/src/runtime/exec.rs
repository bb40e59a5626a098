//! The store thread: runs the engine's transactions on a durable store with group commit.
//!
//! A durable store does blocking I/O and must make a transaction durable before anyone
//! hears about it. So for such a store every backend call becomes a [`Work`] item sent to
//! one dedicated OS thread (never a tokio worker). The thread takes whatever work is queued
//! (up to [`MAX_BATCH`] items), runs each item's transaction, calls [`Store::sync`] once for
//! all of them (one fsync), and only then sends the events the transactions produced and
//! the answers. If the sync fails, every item of the batch is answered with the error and
//! its events are dropped: nothing is answered that is not on disk.
//!
//! One kind of event leaves before the sync: task offers ([`Event::ActionReady`], which
//! become `task_ready`). They promise nothing: the worker's `get_task` travels while the
//! store syncs, and the thread takes it from the channel only after that sync, so a claim
//! never sees a job whose creation (or step) could still be lost; if the sync fails, the
//! `get_task` finds nothing and the worker's slot is free again. On a sequential job this
//! takes the offer's trip to the worker and back off the critical path (BENCHMARKS.md,
//! "Offers before the sync").
//!
//! Answers that promise nothing durable are sent without waiting for the sync
//! ([`Answer::Now`]): the calls of workers (`get_task`, `announce`, `withdraw`, `ping`,
//! `poll_tasks`, `disconnect`; not `task_done`: its result exists nowhere else). What they
//! change is either re-derived after a crash (a restarted engine releases every claim of
//! the previous process's workers) or reported through events, which always wait for the
//! sync. If that sync then fails, a claim the worker was told about is rolled back and the
//! task is offered again: at least once, never lost. The first sync that works after a
//! failure emits [`Event::StoreRecovered`], so the API server polls for such tasks and
//! retries what failed meanwhile. A `get_job_status` that finds the job still running (or
//! unknown) is answered the same way: only a result must be durable before it is told
//! ([`work_deciding`]): a call that waited for the sync would sync the worker's claim that
//! followed on its own.
//!
//! A batch of such calls alone (no answer waiting for durability, no event) is not synced at
//! once: its changes stay in the open batch and are made durable with the next batch that
//! needs a sync, or after [`IDLE_SYNC`] without work. On a job's critical path that saves
//! the fsync of the `get_task` claim between the `create_job` and `task_done` syncs.
//!
//! When a sync's answers have left and no work is queued, the thread calls [`Store::idle`]
//! (SQLite checkpoints its write-ahead log there, instead of inside a batch's `COMMIT`).

use std::sync::mpsc::{Receiver, Sender, TryRecvError};
use std::sync::Weak;

use jobcenter_store::{Store, StoreError};
use tracing::{error, info};

use super::Engine;
use crate::backend::{BackendError, BackendFuture, Event};

/// What to do once the batch's sync is known: answer with the item's result or the error;
/// `None` when the item was answered already ([`Answer::Now`]).
pub(crate) type Done = Option<Box<dyn FnOnce(Result<(), StoreError>) + Send>>;

/// How long changes answered without a sync may wait for one when no other work comes.
pub(crate) const IDLE_SYNC: std::time::Duration = std::time::Duration::from_millis(2);

/// One backend call: runs its transaction(s) on the store thread and returns how to answer.
pub(crate) type Work<S> = Box<dyn FnOnce(&Engine<S>) -> Done + Send>;

/// Most work items per sync: bounds how long the first answer of a batch waits.
pub(crate) const MAX_BATCH: usize = 512;

/// When a work item's answer may leave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Answer {
    /// After the sync of its batch (the answer promises something durable).
    AfterSync,
    /// As soon as its transaction ran.
    Now,
}

/// Wrap `f` as a work item whose answer goes to the returned future; `f` also says when
/// the answer may leave, which may depend on its result (a `get_job_status` that finds the
/// job still running promises nothing durable).
pub(crate) fn work_deciding<S, T, F>(f: F) -> (Work<S>, BackendFuture<'static, T>)
where
    S: Store,
    T: Send + 'static,
    F: FnOnce(&Engine<S>) -> (Result<T, BackendError>, Answer) + Send + 'static,
{
    let (tx, rx) = tokio::sync::oneshot::channel();
    let item: Work<S> = Box::new(move |engine: &Engine<S>| {
        let (result, when) = f(engine);
        if when == Answer::Now {
            let _ = tx.send(result);
            return None;
        }
        Some(Box::new(move |synced: Result<(), StoreError>| {
            let answer = match synced {
                Ok(()) => result,
                Err(e) => Err(BackendError::new(format!(
                    "store failure, nothing was changed: {e}"
                ))),
            };
            let _ = tx.send(answer);
        }))
    });
    let fut = Box::pin(async move {
        rx.await
            .unwrap_or_else(|_| Err(BackendError::new("the engine has stopped")))
    });
    (item, fut)
}

/// Spawn the store thread. It ends when every sender is gone or the engine is dropped.
pub(crate) fn spawn<S: Store>(engine: Weak<Engine<S>>, rx: Receiver<Work<S>>) {
    let spawned = std::thread::Builder::new()
        .name("jobcenter-store".into())
        .spawn(move || run(engine, rx));
    if let Err(e) = spawned {
        error!(error = %e, "cannot start the store thread");
    }
}

fn run<S: Store>(engine: Weak<Engine<S>>, rx: Receiver<Work<S>>) {
    let mut failing = false;
    // Changes answered without a sync are waiting in the open batch (how many items).
    let mut unsynced = 0usize;
    // An item taken from the channel to see whether the thread is idle.
    let mut next: Option<Work<S>> = None;
    loop {
        let first = if let Some(item) = next.take() {
            Some(item)
        } else if unsynced > 0 {
            match rx.recv_timeout(IDLE_SYNC) {
                Ok(item) => Some(item),
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => None,
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return,
            }
        } else {
            match rx.recv() {
                Ok(item) => Some(item),
                Err(_) => return,
            }
        };
        let Some(engine) = engine.upgrade() else {
            return;
        };
        let mut done: Vec<Done> = Vec::with_capacity(16);
        let max = engine.store.max_batch().clamp(1, MAX_BATCH);
        if let Some(first) = first {
            done.push(first(&engine));
            while unsynced + done.len() < max {
                match rx.try_recv() {
                    Ok(item) => done.push(item(&engine)),
                    Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
                }
            }
            let waiting = done.iter().any(Option::is_some);
            if !waiting && !engine.has_pending_events() && unsynced + done.len() < max {
                // Nobody waits for durability yet (see the module documentation).
                unsynced += done.len();
                continue;
            }
        }
        let batch = unsynced + done.len();
        unsynced = 0;
        // Offers leave before the sync, so the worker's `get_task` travels while the store
        // syncs; it is taken from the channel only after this sync (next loop), so a claim
        // never sees a job whose creation could still be lost.
        let offers = engine.take_pending_offers();
        if engine.store.shared() {
            // Offered here first, then published to the other nodes (delivered with the
            // commit, or not at all), marked where a worker here was offered the task.
            engine.offer_and_publish(offers);
        } else {
            engine.emit_now(offers);
        }
        let started = std::time::Instant::now();
        let synced = engine.store.sync();
        let took = started.elapsed();
        let mut events = engine.take_pending_events();
        let finished = engine.take_pending_finished();
        match &synced {
            Ok(()) => {
                engine.tell_synced(took, batch);
                engine.tell_finished(finished);
                if failing {
                    info!(store = %engine.store.describe(), "the store works again");
                    failing = false;
                    // What failed meanwhile changed nothing, but may have left work undone.
                    events.push(Event::StoreRecovered);
                }
                engine.emit_now(events);
            }
            Err(e) => {
                if !failing {
                    error!(store = %engine.store.describe(), error = %e,
                        "store failure: the calls of this batch are refused until it works again");
                }
                failing = true;
            }
        }
        for d in done.into_iter().flatten() {
            d(synced.clone());
        }
        match rx.try_recv() {
            Ok(item) => next = Some(item),
            Err(TryRecvError::Empty) => {
                if synced.is_ok() {
                    engine.store.idle();
                }
            }
            Err(TryRecvError::Disconnected) => return,
        }
        drop(engine);
    }
}

/// The sending side, installed by [`Engine::start`](super::Engine::start).
pub(crate) type WorkSender<S> = Sender<Work<S>>;
