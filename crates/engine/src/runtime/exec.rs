//! The store thread: runs the engine's transactions on a durable store with group commit.
//!
//! A durable store does blocking I/O and must make a transaction durable before anyone
//! hears about it. So for such a store every backend call becomes a [`Work`] item sent to
//! one dedicated OS thread (never a tokio worker). The thread takes whatever work is queued
//! (up to [`MAX_BATCH`] items), runs each item's transaction, calls [`Store::sync`] once for
//! all of them (one fsync), and only then sends the events the transactions produced and
//! the answers. If the sync fails, every item of the batch is answered with the error and
//! its events are dropped: nothing is answered that is not on disk.

use std::sync::mpsc::{Receiver, Sender, TryRecvError};
use std::sync::Weak;

use jobcenter_store::{Store, StoreError};
use tracing::{error, info};

use super::Engine;
use crate::backend::{BackendError, BackendFuture};

/// What to do once the batch's sync is known: answer with the item's result or the error.
pub(crate) type Done = Box<dyn FnOnce(Result<(), StoreError>) + Send>;

/// One backend call: runs its transaction(s) on the store thread and returns how to answer.
pub(crate) type Work<S> = Box<dyn FnOnce(&Engine<S>) -> Done + Send>;

/// Most work items per sync: bounds how long the first answer of a batch waits.
pub(crate) const MAX_BATCH: usize = 512;

/// Wrap `f` as a work item whose answer goes to the returned future.
pub(crate) fn work<S, T, F>(f: F) -> (Work<S>, BackendFuture<'static, T>)
where
    S: Store,
    T: Send + 'static,
    F: FnOnce(&Engine<S>) -> Result<T, BackendError> + Send + 'static,
{
    let (tx, rx) = tokio::sync::oneshot::channel();
    let item: Work<S> = Box::new(move |engine: &Engine<S>| {
        let result = f(engine);
        Box::new(move |synced: Result<(), StoreError>| {
            let answer = match synced {
                Ok(()) => result,
                Err(e) => Err(BackendError::new(format!(
                    "store failure, nothing was changed: {e}"
                ))),
            };
            let _ = tx.send(answer);
        }) as Done
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
    while let Ok(first) = rx.recv() {
        let Some(engine) = engine.upgrade() else {
            return;
        };
        let mut done: Vec<Done> = Vec::with_capacity(16);
        done.push(first(&engine));
        while done.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(item) => done.push(item(&engine)),
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
            }
        }
        let synced = engine.store.sync();
        let events = engine.take_pending_events();
        match &synced {
            Ok(()) => {
                if failing {
                    info!(store = %engine.store.describe(), "the store works again");
                    failing = false;
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
        for d in done {
            d(synced.clone());
        }
        drop(engine);
    }
}

/// The sending side, installed by [`Engine::start`](super::Engine::start).
pub(crate) type WorkSender<S> = Sender<Work<S>>;
