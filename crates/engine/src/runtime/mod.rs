//! The job runtime: jobs walking their task graphs, action tasks for workers, child jobs.
//!
//! [`Engine`] implements the [`Backend`] trait the API server drives (docs/PROTOCOL.md §10): it
//! creates jobs, advances them task by task (docs/JCL.md §2.7), hands action tasks to workers
//! (`get_task`/`task_done`), runs blocking child jobs, retries soft errors, enforces action
//! timeouts, and reports through [`Event`]s what the original signalled with LISTEN/NOTIFY.
//!
//! # Transactions
//!
//! All state lives in a [`Store`] (crate `jobcenter-store`: `MemoryStore`, or the durable
//! `JournalStore`; a restarted engine needs the same catalog, since jobs refer to catalog
//! definition ids). Every backend call and every timer firing is exactly one
//! [`Store::transact`]: the job(s) touched are read, advanced synchronously until they wait
//! (for a worker, a child, a lock, an event, a timer) or finish, and written back.
//! A job that calls a workflow starts the child in the same transaction, and a child that
//! finishes at once resumes its parent in it too. Events are sent only after the commit.
//! No transaction ever spans an `.await`, and no I/O happens inside one.
//!
//! # Timers
//!
//! [`Engine::start`] spawns one tokio task. It sleeps until the earliest `wake_at` of any job
//! (retry due, action timeout, end of `sleep`, archival of a finished job) or the next
//! housekeeping round, whichever comes first; transactions that schedule an earlier wake-up
//! notify it. Housekeeping (every [`EngineConfig::housekeeping_interval`]) disconnects
//! workers whose last ping is older than [`EngineConfig::worker_timeout`].
//!
//! # Choices and deviations (documented as docs/JCL.md asks)
//!
//! - **Routing by name.** Action tasks are queued under the action *name*; workers announce
//!   names and serve whatever version a caller was bound to at compile time (docs/JCL.md §2.6
//!   allows this). Input/output checks, `env:`, retry, timeout, filter and `retryable` come
//!   from the bound version.
//! - **Disconnect of a non-retryable action's worker.** The original leaves such a task in
//!   state `working` forever (unless the action has a `timeout`). We put the task back to
//!   `ready` (same inputs, same `tries`) and emit [`Event::ActionReady`], so another worker
//!   gets it. Retryable actions get the soft error `worker disconnected` as specified.
//! - **Archival.** Every successfully finished job (also a child) is archived
//!   [`EngineConfig::archive_after`] after it finished; failed jobs stay live (§10.12).
//! - **Catalog.** The engine owns an immutable [`Catalog`]; definitions are resolved once.
//! - Beyond Stage A, `split`/`callflow` (non-blocking children, `wait_for_children`,
//!   `reap_child`, aborting children of a finished parent), `detachflow`, `sleep` and locks
//!   (declared, manual, `wait_for_lock`, inheritance, release on finish) work; from Stage C
//!   `goto`/`label`, version tags, `map`/`collect`, interface calls (destination chosen at
//!   run time; `interface call destination X does not exist?`) and events (`subscribe`,
//!   `unsubscribe`, `raise_event`, `wait_for_event`, external events through
//!   [`Engine::raise_event`]) work. Procedures (database plug-ins) raise a `normal` job
//!   error `calling procedures is not supported by this engine yet`. An interface call's
//!   destination expression is evaluated like a lock value (string, `v` changes discarded,
//!   `do_stringcode` errors). Event timestamps (`when`) are UTC with millisecond precision,
//!   e.g. `2026-11-28T04:34:31.123+00:00`.
//! - **Deadlocks.** Besides lock-wait cycles, the check follows a blocking parent to the
//!   child it waits for, so a child asking for a non-inheritable lock its own parent holds
//!   fails with `deadlock trying to get locktype T lockvalue V path J1, J2, ...` (the path
//!   lists, like the original, the cycle from the holder of the contested lock along the
//!   chain to the asking job and back to the holder) instead of
//!   hanging like the original (docs/JCL.md §2.11 recommends this). A split parent joining its
//!   children counts as waiting for each of them.
//! - **Invalid intervals.** A bad `sleep` (or `wait_for_lock` wait) interval raises
//!   `caught exception in do_inargsmap sqlstate 22007 sqlerrm invalid input syntax for type
//!   interval: "X"` (the original hangs); a bad action `timeout` is ignored with a warning.
//! - The workflow id visible as `e.workflow_id` is the catalog definition id.
//! - **Roles** (§2.16) come from [`EngineConfig::roles`]; impersonation is the API
//!   server's business (it passes the authenticated `who`), so `via` is never set.

mod admin;
mod calls;
mod events;
mod exec;
mod finish;
mod interval;
mod json;
mod locks;
mod sched;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jobcenter_store::{
    JobState, MemoryStore, Millis, Registration, Store, StoreError, Txn, WorkerRecord,
};
use parking_lot::Mutex;
use serde_json::{json, Map, Value};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};
use tokio::sync::Notify;
use tracing::{debug, error, info, warn};

use crate::backend::{
    Backend, BackendError, BackendFuture, CreateJob, Event, EventSink, JobId, JobStatus, Observer,
    PollRow, TaskClaim, WorkerId,
};
use crate::compile::graph::Workflow;
use crate::compile::{Catalog, Compiled};
use crate::eval::{self, IoSpec, SchemaRegistry, TypeError};

pub use interval::parse_interval;
pub use json::{catchable, contains, object_contains};
use sched::{job_action, secs_to_millis, Run};

/// Engine settings.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// The engine-global environment (original: table `jc_env`), merged into every job's
    /// environment after the workflow's `wfenv`. Default: empty.
    pub global_env: Map<String, Value>,
    /// Registered JSON-Schema types for io-specs (default: just `integer`).
    pub schemas: SchemaRegistry,
    /// How often housekeeping runs (default 60 s).
    pub housekeeping_interval: Duration,
    /// Age of a successful job's result before it is archived (default 60 s).
    pub archive_after: Duration,
    /// Workers without a ping for this long are disconnected (default 3 min).
    pub worker_timeout: Duration,
    /// Role memberships for `role:` checks (docs/JCL.md §2.16): role → its direct members.
    /// A definition with `role: R` accepts `who` equal to R or listed under R.
    pub roles: std::collections::BTreeMap<String, Vec<String>>,
    /// How long archived results stay queryable by `get_job_status` (default `None`:
    /// forever, as the original's archive table). An in-memory engine serving many jobs
    /// should set this, since the archive otherwise grows without bound.
    pub archive_retention: Option<Duration>,
    /// On a shared store: how long a node may miss heartbeats (written every second) before
    /// the other nodes treat its workers as disconnected. Default 10 s.
    pub node_lease: Duration,
    /// The name the API server connects as (the original's database "API role"), used in
    /// the role error messages. Default `jcapi`.
    pub api_role: String,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            global_env: Map::new(),
            schemas: SchemaRegistry::new(),
            housekeeping_interval: Duration::from_secs(60),
            archive_after: Duration::from_secs(60),
            worker_timeout: Duration::from_secs(180),
            roles: std::collections::BTreeMap::new(),
            archive_retention: None,
            node_lease: Duration::from_secs(10),
            api_role: "jcapi".to_string(),
        }
    }
}

impl EngineConfig {
    fn archive_after_ms(&self) -> Millis {
        self.archive_after.as_millis() as Millis
    }

    /// Whether `who` may use a definition requiring `role` (§2.16).
    fn has_role(&self, who: &str, role: Option<&str>) -> bool {
        match role {
            None => true,
            Some(r) => {
                r == who
                    || self
                        .roles
                        .get(r)
                        .is_some_and(|m| m.iter().any(|x| x == who))
            }
        }
    }
}

/// The io-specs of one definition, resolved against the schema registry.
#[derive(Debug)]
pub(crate) struct DefSpecs {
    inputs: Result<Vec<IoSpec>, TypeError>,
    outputs: Result<Vec<IoSpec>, TypeError>,
    env: Result<Vec<IoSpec>, TypeError>,
}

/// The catalog plus per-definition resolved specs.
#[derive(Debug)]
pub(crate) struct Defs {
    catalog: Catalog,
    specs: Vec<Option<DefSpecs>>,
}

impl Defs {
    fn new(catalog: Catalog, registry: &SchemaRegistry) -> Self {
        let mut specs: Vec<Option<DefSpecs>> = Vec::new();
        for d in catalog.definitions() {
            let s = match d {
                Compiled::Workflow(w) => DefSpecs {
                    inputs: IoSpec::from_ast_list(&w.inputs, registry, true),
                    outputs: IoSpec::from_ast_list(&w.outputs, registry, false),
                    env: Ok(Vec::new()),
                },
                Compiled::Action(a) => DefSpecs {
                    inputs: IoSpec::from_ast_list(&a.inputs, registry, true),
                    outputs: IoSpec::from_ast_list(&a.outputs, registry, false),
                    env: IoSpec::from_ast_list(&a.env, registry, true),
                },
            };
            let id = d.id();
            if specs.len() <= id {
                specs.resize_with(id + 1, || None);
            }
            specs[id] = Some(s);
        }
        Defs { catalog, specs }
    }

    fn specs(&self, id: usize) -> Option<&DefSpecs> {
        self.specs.get(id).and_then(Option::as_ref)
    }

    fn workflow(&self, id: u64) -> Option<Arc<Workflow>> {
        self.catalog.workflow(id as usize).cloned()
    }
}

/// How long a lock task may wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WaitPolicy {
    /// Wait as long as needed.
    Forever,
    /// Fail at once (`wait = 'no'`).
    No,
    /// Wait until this time, then fail with class `lock `.
    Until(Millis),
}

fn now_ms() -> Millis {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as Millis)
        .unwrap_or(0)
}

fn compact(v: &Value) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

/// The job runtime over a store (in memory by default).
pub struct Engine<S: Store = MemoryStore> {
    defs: Defs,
    store: S,
    config: EngineConfig,
    subscribers: Mutex<Vec<UnboundedSender<Event>>>,
    /// Called with every event on the emitting thread ([`Backend::set_event_sink`]).
    sinks: parking_lot::RwLock<Vec<EventSink>>,
    wake: Arc<Notify>,
    /// The earliest wake-up the timer task knows about (`u64::MAX`: none).
    timer_at: AtomicU64,
    /// For a durable store, once started: the store thread's queue (see [`exec`]).
    executor: OnceLock<exec::WorkSender<S>>,
    /// Events of transactions not yet synced (store thread only).
    pending_events: Mutex<Vec<Event>>,
    /// Shared store: tasks other nodes offered to workers of their own, held back until
    /// the instant given ([`Engine::hold_back`]); the standby thread waits on `standby_cv`.
    standby: Mutex<std::collections::VecDeque<(std::time::Instant, Vec<Event>)>>,
    standby_cv: parking_lot::Condvar,
    /// The jobs those transactions made ready (their `ActionReady`s are in
    /// `pending_events`): no claim may take them before the sync (store thread only).
    unsynced_ready: Mutex<std::collections::HashSet<JobId>>,
    /// Jobs finished by transactions not yet synced (store thread only), for the observer.
    pending_finished: Mutex<Vec<(u64, bool, Millis)>>,
    /// Told about finished jobs and syncs (metrics), if installed.
    observer: parking_lot::RwLock<Option<Arc<dyn Observer>>>,
    /// Actions disabled by an administrator (`disable`): their tasks are not handed out.
    /// A copy of the store's list (`Txn::disabled_actions`), read at start, after each
    /// change, when another node says it changed the list, and every node round.
    disabled: parking_lot::RwLock<std::collections::BTreeSet<String>>,
}

impl<S: Store> std::fmt::Debug for Engine<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("definitions", &self.defs.catalog.definitions().len())
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl<S: Store> Drop for Engine<S> {
    fn drop(&mut self) {
        // Let the timer task notice that the engine is gone.
        self.wake.notify_one();
    }
}

impl<S: Store> Engine<S> {
    /// An engine running the definitions of `catalog` on `store`.
    pub fn new(catalog: Catalog, store: S, config: EngineConfig) -> Self {
        let defs = Defs::new(catalog, &config.schemas);
        Engine {
            defs,
            store,
            config,
            subscribers: Mutex::new(Vec::new()),
            sinks: parking_lot::RwLock::new(Vec::new()),
            wake: Arc::new(Notify::new()),
            timer_at: AtomicU64::new(u64::MAX),
            executor: OnceLock::new(),
            pending_events: Mutex::new(Vec::new()),
            standby: Mutex::new(std::collections::VecDeque::new()),
            standby_cv: parking_lot::Condvar::new(),
            unsynced_ready: Mutex::new(std::collections::HashSet::new()),
            pending_finished: Mutex::new(Vec::new()),
            observer: parking_lot::RwLock::new(None),
            disabled: parking_lot::RwLock::new(std::collections::BTreeSet::new()),
        }
    }

    /// Wrap the engine in an `Arc` and spawn its timer task (retries, action timeouts,
    /// sleeps, archival, housekeeping) on the current tokio runtime. The task ends when the
    /// last `Arc` is dropped.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime (like `tokio::spawn`).
    ///
    /// With a durable store it also starts the store thread (module `exec`: every
    /// transaction runs there, answers wait for the batch's sync) and first of all treats
    /// the workers the store still lists as active as disconnected: they belonged to the
    /// previous server process, so the tasks they held are offered again (or retried, per
    /// the action's rules) as soon as a worker is there.
    pub fn start(self) -> Arc<Self> {
        let engine = Arc::new(self);
        let weak = Arc::downgrade(&engine);
        if engine.store.durable() {
            let (tx, rx) = std::sync::mpsc::channel();
            exec::spawn(weak.clone(), rx);
            let _ = engine.executor.set(tx);
            if engine.store.shared() {
                spawn_standby(weak.clone());
                engine.listen_to_other_nodes(weak.clone());
            }
            // The workers this node registered before belonged to its previous process
            // (alone on the store: every worker). On a shared store the heartbeat is written
            // first; the workers of other dead nodes are released by the survivors once the
            // dead node's lease ran out.
            let recover = engine.call(|e| {
                // First of all (the first work of the store thread): no task of a disabled
                // action is handed out.
                e.reload_disabled_now()?;
                if e.store.shared() {
                    // This node's row exists before any of its workers does: a worker of a
                    // node without a row is an orphan to the other nodes.
                    e.store.beat(now_ms())?;
                    e.node_round()?;
                }
                e.recover_workers()
            });
            if engine.store.shared() {
                spawn_beat(weak.clone());
            }
            tokio::spawn(async move {
                match recover.await {
                    Ok(n) if n > 0 => info!(workers = n, "workers of the previous run released"),
                    Ok(_) => {}
                    Err(e) => error!(error = %e, "releasing the previous run's workers failed"),
                }
            });
        } else if let Err(e) = engine.reload_disabled_now() {
            error!(error = %e, "reading the disabled actions failed");
        }
        let wake = engine.wake.clone();
        tokio::spawn(timer_loop(weak, wake));
        engine
    }

    /// Run a backend operation: inline for a memory store, on the store thread (answered
    /// after the sync of its batch) for a durable one.
    fn call<T, F>(&self, f: F) -> BackendFuture<'static, T>
    where
        T: Send + 'static,
        F: FnOnce(&Self) -> Result<T, BackendError> + Send + 'static,
    {
        self.call_answering(exec::Answer::AfterSync, f)
    }

    /// Like [`Engine::call`], but a durable store answers as soon as the transaction ran
    /// (for worker calls whose answers promise nothing durable; see module `exec`).
    fn call_now<T, F>(&self, f: F) -> BackendFuture<'static, T>
    where
        T: Send + 'static,
        F: FnOnce(&Self) -> Result<T, BackendError> + Send + 'static,
    {
        self.call_answering(exec::Answer::Now, f)
    }

    fn call_answering<T, F>(&self, when: exec::Answer, f: F) -> BackendFuture<'static, T>
    where
        T: Send + 'static,
        F: FnOnce(&Self) -> Result<T, BackendError> + Send + 'static,
    {
        self.call_deciding(move |e| (f(e), when))
    }

    /// Like [`Engine::call`], but `f` says by its result whether the answer must wait for
    /// the sync of its batch (module `exec`).
    fn call_deciding<T, F>(&self, f: F) -> BackendFuture<'static, T>
    where
        T: Send + 'static,
        F: FnOnce(&Self) -> (Result<T, BackendError>, exec::Answer) + Send + 'static,
    {
        match self.executor.get() {
            None => ready(f(self).0),
            Some(tx) => {
                let (item, answer) = exec::work_deciding(f);
                if tx.send(item).is_err() {
                    return ready(Err(BackendError::new("the engine has stopped")));
                }
                answer
            }
        }
    }

    /// Mark the workers this node registered in a previous run as gone (start of a durable
    /// engine; on a single-node store that is every worker it lists).
    fn recover_workers(&self) -> Result<usize, BackendError> {
        let workers = self.transact(|_, txn| Ok(txn.node_workers()))?;
        for (id, _) in &workers {
            self.disconnect_now(*id)?;
        }
        Ok(workers.len())
    }

    /// Whether transactions since the last sync produced events (store thread).
    fn has_pending_events(&self) -> bool {
        !self.pending_events.lock().is_empty()
    }

    /// The task-ready events of the transactions since the last sync (store thread), taken
    /// out to be sent before the sync (see [`exec`]: a worker hears of the task while the
    /// batch is being synced, but its claim runs after that sync).
    fn take_pending_offers(&self) -> Vec<Event> {
        // Next: the sync, then the next round's claims, which may take these jobs.
        self.unsynced_ready.lock().clear();
        self.pending_events
            .lock()
            .extract_if(.., |e| matches!(e, Event::ActionReady { .. }))
            .collect()
    }

    /// Events of the transactions since the last sync (store thread).
    fn take_pending_events(&self) -> Vec<Event> {
        std::mem::take(&mut *self.pending_events.lock())
    }

    /// Shared store: hand the pending events (job finished, task ready) to the store for the
    /// other nodes, as JSON arrays of at most [`PUBLISH_CHUNK`] bytes (NOTIFY's limit is 8000).
    fn publish_pending(&self, offers: Vec<String>) {
        let events = self.pending_events.lock();
        let texts = events
            .iter()
            .filter(|ev| !matches!(ev, Event::StoreRecovered))
            .filter_map(publishable)
            .chain(offers);
        let mut chunk = String::new();
        for text in texts {
            if !chunk.is_empty() && chunk.len() + text.len() + 2 > PUBLISH_CHUNK {
                chunk.push(']');
                self.store.publish(std::mem::take(&mut chunk));
            }
            chunk.push(if chunk.is_empty() { '[' } else { ',' });
            chunk.push_str(&text);
        }
        if !chunk.is_empty() {
            chunk.push(']');
            self.store.publish(chunk);
        }
    }

    /// Shared store: turn what the other nodes publish into this engine's events.
    fn listen_to_other_nodes(&self, engine: Weak<Self>) {
        let on = Box::new(move |payload: &str| {
            let Some(engine) = engine.upgrade() else {
                return false;
            };
            if engine.disabled_from_other_node(payload) {
                return true;
            }
            match serde_json::from_str::<Vec<Value>>(payload) {
                Ok(items) => {
                    let (mut now, mut held) = (Vec::new(), Vec::new());
                    for item in items {
                        let standby = item
                            .get("ActionReady")
                            .and_then(|r| r.get("standby"))
                            .and_then(Value::as_bool)
                            .unwrap_or(false);
                        match serde_json::from_value::<Event>(item) {
                            Ok(ev) if standby => held.push(ev),
                            Ok(ev) => now.push(ev),
                            Err(e) => {
                                warn!(error = %e, "ignoring a malformed event from another node")
                            }
                        }
                    }
                    engine.emit_now(now);
                    if !held.is_empty() {
                        engine.hold_back(held);
                    }
                }
                Err(e) => warn!(error = %e, "ignoring a malformed event from another node"),
            }
            true
        });
        match self.store.listen(on) {
            Ok(_) => {}
            Err(e) => error!(error = %e, "cannot listen to the other nodes' events"),
        }
    }

    /// Shared store: check this node's cached worker records ([`Txn::check_own_workers`]; the
    /// heartbeat row is written by [`spawn_beat`]), and release the workers of nodes whose
    /// heartbeat is older than [`EngineConfig::node_lease`] (like a disconnect: their claims
    /// are offered again or retried per the action's rules). Returns the workers released.
    fn node_round(&self) -> Result<Vec<String>, BackendError> {
        let lease = self.config.node_lease.as_millis() as Millis;
        let before = now_ms().saturating_sub(lease);
        // In case a change of the disabled actions was not heard (listener reconnecting).
        self.reload_disabled_now()?;
        let orphans = self.transact(|_, txn| {
            txn.check_own_workers();
            Ok(txn.orphaned_workers(before))
        })?;
        for (id, name) in &orphans {
            info!(worker = %name, worker_id = id, "releasing a worker of a node that stopped");
            self.disconnect_now(*id)?;
        }
        self.transact(|_, txn| {
            txn.forget_dead_nodes(before);
            Ok(())
        })?;
        Ok(orphans.into_iter().map(|(_, name)| name).collect())
    }

    /// The definitions the engine runs.
    pub fn catalog(&self) -> &Catalog {
        &self.defs.catalog
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The configuration.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// Run `f` in one transaction with a scheduler [`Run`]; drain the scheduler, commit,
    /// then send the events and wake the timer task if needed.
    fn transact<R>(
        &self,
        f: impl FnOnce(&mut Run<'_>, &mut dyn Txn) -> Result<R, BackendError>,
    ) -> Result<R, BackendError> {
        let mut run = Run::new(&self.defs, &self.config, now_ms());
        let (r, next_wake) = self.store.transact(|txn| {
            let r = f(&mut run, txn)?;
            run.drain(txn);
            Ok::<_, BackendError>((r, txn.wake_hint()))
        })?;
        let events = std::mem::take(&mut run.events);
        let finished = std::mem::take(&mut run.finished);
        drop(run);
        if self.executor.get().is_some() {
            // On the store thread: sent once the batch is synced.
            {
                let mut ready = self.unsynced_ready.lock();
                ready.extend(events.iter().filter_map(|e| match e {
                    Event::ActionReady { job_id, .. } => Some(*job_id),
                    _ => None,
                }));
            }
            self.pending_events.lock().extend(events);
            if !finished.is_empty() {
                self.pending_finished.lock().extend(finished);
            }
        } else {
            if self.store.durable() {
                // A durable engine that was not started: sync every transaction.
                self.store.sync()?;
            }
            // Counted before anyone hears of it: a `job_done` never overtakes the count.
            self.tell_finished(finished);
            self.emit_now(events);
        }
        if let Some(w) = next_wake {
            if w < self.timer_at.load(Ordering::Relaxed) {
                self.timer_at.store(w, Ordering::Relaxed);
                self.wake.notify_one();
            }
        }
        Ok(r)
    }

    /// The jobs finished by the synced batch, for the observer (store thread only).
    fn take_pending_finished(&self) -> Vec<(u64, bool, Millis)> {
        std::mem::take(&mut *self.pending_finished.lock())
    }

    /// Tell the observer, if any, about finished jobs (committed, synced if durable).
    fn tell_finished(&self, finished: Vec<(u64, bool, Millis)>) {
        if finished.is_empty() {
            return;
        }
        let Some(obs) = self.observer.read().clone() else {
            return;
        };
        for (def, failed, ms) in finished {
            if let Some(wf) = self.defs.catalog.workflow(def as usize) {
                obs.job_finished(&wf.name, failed, Duration::from_millis(ms));
            }
        }
    }

    /// Tell the observer, if any, about one sync of the store thread.
    fn tell_synced(&self, took: Duration, batch: usize) {
        if let Some(obs) = self.observer.read().as_ref() {
            obs.store_synced(took, batch);
        }
    }

    /// Ready tasks per action, for the actions that have some (the queue depth).
    fn ready_counts_now(&self) -> Result<Vec<(String, usize)>, BackendError> {
        let actions: Vec<String> = self
            .defs
            .catalog
            .definitions()
            .iter()
            .filter_map(|d| match d {
                Compiled::Action(a) => Some(a.name.clone()),
                _ => None,
            })
            .collect();
        self.store.transact(|txn| {
            let mut out: Vec<(String, usize)> = Vec::new();
            for a in actions {
                if out.iter().any(|(n, _)| *n == a) {
                    continue; // several versions of one action share the name
                }
                let n = txn.ready_jobs(&a).count();
                if n > 0 {
                    out.push((a, n));
                }
            }
            Ok::<_, BackendError>(out)
        })
    }

    fn emit_now(&self, events: Vec<Event>) {
        if events.is_empty() {
            return;
        }
        // The sinks run outside the subscribers' lock: several threads emit at once.
        let sinks = self.sinks.read();
        for ev in events {
            self.emit_to(&sinks, ev);
        }
    }

    /// Hand `ev` to the subscribers and the sinks; `true` when a sink offered its task to a
    /// worker ([`EventSink`]).
    fn emit_to(&self, sinks: &[EventSink], ev: Event) -> bool {
        if let Event::ActionReady { action, .. } = &ev {
            if self.action_disabled(action) {
                return false; // offered again when the action is enabled
            }
        }
        {
            let mut subs = self.subscribers.lock();
            if !subs.is_empty() {
                subs.retain(|s| s.send(ev.clone()).is_ok());
            }
        }
        match sinks.split_last() {
            None => false,
            Some((last, rest)) => {
                let mut offered = false;
                for sink in rest {
                    offered |= sink(ev.clone());
                }
                offered | last(ev)
            }
        }
    }

    /// Shared store, store thread, before the sync: offer the round's ready tasks here, then
    /// publish them with the round's other events. Those offered to a worker of this node
    /// are marked `standby`: the other nodes hold them back for [`STANDBY`] and offer them
    /// only if they are still ready then, instead of every node's workers racing for every
    /// task (the losers' offer, `get_task` and claim transaction are wasted).
    fn offer_and_publish(&self, offers: Vec<Event>) {
        let mut texts = Vec::with_capacity(offers.len());
        {
            let sinks = self.sinks.read();
            for ev in offers {
                let mut value = serde_json::to_value(&ev).ok();
                if self.emit_to(&sinks, ev) {
                    if let Some(Value::Object(ready)) =
                        value.as_mut().and_then(|v| v.get_mut("ActionReady"))
                    {
                        ready.insert("standby".into(), Value::Bool(true));
                    }
                }
                texts.extend(value.map(|v| v.to_string()));
            }
        }
        self.publish_pending(texts);
    }

    /// Shared store, listener thread: tasks another node offered to a worker of its own.
    /// They are offered here after [`STANDBY`] if they are still ready then.
    fn hold_back(&self, events: Vec<Event>) {
        let mut q = self.standby.lock();
        q.push_back((std::time::Instant::now() + STANDBY, events));
        self.standby_cv.notify_one();
    }

    /// Shared store, standby thread: the held-back tasks still ready are offered here (the
    /// check runs on the store thread, as one read-only transaction).
    fn offer_still_ready(&self, events: Vec<Event>) {
        let _answered_at_once = self.call_deciding(move |e| {
            let still = e.store.transact(|txn| {
                Ok::<_, StoreError>(
                    events
                        .iter()
                        .filter(|ev| match ev {
                            Event::ActionReady { action, job_id, .. } => txn
                                .peek_job(*job_id)
                                .is_some_and(|j| j.ready_action() == Some(action.as_str())),
                            _ => true,
                        })
                        .cloned()
                        .collect::<Vec<_>>(),
                )
            });
            match still {
                Ok(still) => e.emit_now(still),
                Err(err) => {
                    // Offer them all, as without the standby: a lost race costs a claim.
                    warn!(error = %err, "checking held-back tasks failed; offering them");
                    e.emit_now(events);
                }
            }
            (Ok(()), exec::Answer::Now)
        });
    }

    /// Process every job whose `wake_at` has passed (retries, timeouts, sleeps, archival).
    /// Returns how many jobs were handled. The timer task calls this; tests may too.
    pub fn run_due(&self) -> Result<usize, BackendError> {
        let mut total = 0;
        loop {
            let n = self.transact(|run, txn| {
                let due = txn.due_jobs(run.now, 256);
                for id in &due {
                    // On a shared store another node may have handled it meanwhile.
                    if let Some(job) = txn
                        .job(*id)
                        .filter(|j| j.wake_at.is_some_and(|t| t <= run.now))
                    {
                        run.wake(txn, job);
                    }
                }
                Ok(due.len())
            })?;
            total += n;
            if n < 256 {
                return Ok(total);
            }
        }
    }

    /// Publish an external event (docs/JCL.md §2.13, the original's `raise_event(D)`): jobs
    /// waiting on a matching subscription wake up, other matching subscriptions queue it.
    pub fn raise_event(&self, event: Value) -> Result<(), BackendError> {
        if !event.is_object() {
            return Err(BackendError::new(format!(
                "event needs to be a json object {}",
                compact(&event)
            )));
        }
        self.transact(|run, txn| {
            run.raise_event(txn, event, None);
            Ok(())
        })
    }

    /// Cancel a job administratively (the original's `cancel_job`): it fails with
    /// `{"msg": "job cancelled: <reason>", "class": "fatal"}` and its parent, if any, sees a
    /// `childerror`. `false` if the job is unknown or already finished.
    pub fn cancel_job(&self, job_id: JobId, reason: &str) -> Result<bool, BackendError> {
        self.transact(|run, txn| Ok(run.cancel(txn, job_id, reason)))
    }

    /// The stored record of a live job (administrative inspection).
    pub fn job_record(&self, job_id: JobId) -> Option<jobcenter_store::JobRecord> {
        self.store
            .transact(|txn| Ok::<_, StoreError>(txn.job(job_id)))
            .ok()
            .flatten()
    }

    /// Housekeeping: disconnect workers whose last ping is older than the worker timeout,
    /// and forget archived results older than [`EngineConfig::archive_retention`].
    /// Returns the names of the workers disconnected.
    pub fn housekeeping(&self) -> Result<Vec<String>, BackendError> {
        while self.purge_round(PURGE_BATCH)? == PURGE_BATCH {}
        self.disconnect_stale_workers()
    }

    /// Forget at most `limit` archived results older than the retention; how many.
    fn purge_round(&self, limit: usize) -> Result<usize, BackendError> {
        let Some(keep) = self.config.archive_retention else {
            return Ok(0);
        };
        let before = now_ms().saturating_sub(keep.as_millis() as Millis);
        self.transact(|_, txn| Ok(txn.purge_archived(before, limit)))
    }

    /// Disconnect the workers whose last ping is older than the worker timeout.
    fn disconnect_stale_workers(&self) -> Result<Vec<String>, BackendError> {
        let limit = now_ms().saturating_sub(self.config.worker_timeout.as_millis() as Millis);
        let stale: Vec<(WorkerId, String)> = self.transact(|_, txn| {
            Ok(txn
                .active_workers()
                .into_iter()
                .filter(|w| w.last_ping < limit)
                .map(|w| (w.id, w.name.clone()))
                .collect())
        })?;
        for (id, name) in &stale {
            info!(worker = %name, worker_id = id, "disconnecting worker without ping");
            self.disconnect_now(*id)?;
        }
        Ok(stale.into_iter().map(|(_, name)| name).collect())
    }

    /// The timer task's next target: the earliest `wake_at` of any job, or `later` when that
    /// comes first. The target is stored in `timer_at` inside the transaction that reads
    /// the wake-ups, so a transaction is either seen by that read or committed after the
    /// store, and then compares its own wake-ups with this target (waking the timer when
    /// earlier). Read and stored apart, a retry scheduled in between was compared with the
    /// previous, older target, did not wake the timer, and its job waited for the next
    /// housekeeping round (`jcl_c38_soft_errors_and_retry_policy` on SQLite: 1 run in 6 hung
    /// once `task_done` freed the worker's slot earlier).
    fn arm_timer(&self, later: Millis) -> Millis {
        let mut target = later;
        let _ = self.store.transact(|txn| {
            target = txn.next_wake().map_or(later, |w| w.min(later));
            self.timer_at.store(target, Ordering::Relaxed);
            Ok::<_, StoreError>(())
        });
        // A failed read: look again at `later` at the latest.
        self.timer_at.fetch_min(target, Ordering::Relaxed);
        target
    }

    // ------------------------------------------------------------------------------------
    // Backend operations (synchronous bodies)
    // ------------------------------------------------------------------------------------

    fn create_job_now(&self, req: CreateJob) -> Result<JobId, BackendError> {
        let Some(wf) = self
            .defs
            .catalog
            .lookup_workflow(&req.wfname, req.vtag.as_deref())
            .cloned()
        else {
            return Err(BackendError::new(format!(
                "no workflow named {}",
                req.wfname
            )));
        };
        if wf.config.get("disabled") == Some(&Value::Bool(true)) {
            return Err(BackendError::new(format!(
                "workflow {} is disabled",
                req.wfname
            )));
        }
        if !self.config.has_role(&req.who, wf.role.as_deref()) {
            return Err(BackendError::new(format!(
                "client {} with role {} has no permission for role {}",
                self.config.api_role,
                req.who,
                wf.role.as_deref().unwrap_or_default()
            )));
        }
        let spec = match self.defs.specs(wf.id).map(|s| &s.inputs) {
            Some(Ok(s)) => s.as_slice(),
            Some(Err(e)) => return Err(BackendError::new(e.to_string())),
            None => &[],
        };
        let args = eval::check_inputs_owned(spec, req.inargs)
            .map_err(|e| BackendError::new(e.to_string()))?;
        let mut env = req.env.unwrap_or_default();
        for (k, v) in &wf.wfenv {
            env.insert(k.clone(), v.clone());
        }
        for (k, v) in &self.config.global_env {
            env.insert(k.clone(), v.clone());
        }
        env.insert("client".into(), Value::String(req.who));
        if let Some(d) = wf.max_depth {
            env.insert("max_depth".into(), Value::String(d.to_string()));
        }
        self.transact(|run, txn| {
            let id = txn.next_job_id();
            let job = run.new_job(id, &wf, args, env, 1, None);
            debug!(job = id, workflow = %wf.name, "job created");
            run.push(job, Run::start_flow(&wf));
            Ok(id)
        })
    }

    fn get_job_status_now(&self, job_id: JobId) -> Result<JobStatus, BackendError> {
        self.store.transact(|txn| {
            if let Some(j) = txn.peek_job(job_id) {
                if !j.state.is_final() {
                    return Ok(JobStatus::Running);
                }
                return Ok(JobStatus::Finished(
                    j.out_args
                        .clone()
                        .unwrap_or_else(|| json!({"error": "an unknown error occurred"})),
                ));
            }
            Ok(match txn.archived(job_id) {
                Some(a) => JobStatus::Finished(a.out_args.clone()),
                None => JobStatus::Unknown,
            })
        })
    }

    fn find_jobs_now(&self, filter: Value) -> Result<Vec<JobId>, BackendError> {
        if filter.as_object().is_some_and(Map::is_empty) {
            return Err(BackendError::new("using an empty filter is not allowed"));
        }
        self.store.transact(|txn| {
            let mut ids = Vec::new();
            txn.scan_jobs(&mut |j| {
                if object_contains(&j.args, &filter) {
                    ids.push(j.id);
                }
            });
            ids.sort_unstable();
            Ok(ids)
        })
    }

    fn announce_now(
        &self,
        workername: String,
        actionname: String,
        who: String,
        filter: Option<Value>,
    ) -> Result<WorkerId, BackendError> {
        let Some(action) = self.defs.catalog.latest_action(&actionname).cloned() else {
            return Err(BackendError::new(format!("no action named {actionname}.")));
        };
        if !self.config.has_role(&who, action.role.as_deref()) {
            return Err(BackendError::new(format!(
                "worker {} with role {} has no permission for role {}",
                self.config.api_role,
                who,
                action.role.as_deref().unwrap_or_default()
            )));
        }
        let filter = filter.filter(|f| !f.is_null());
        let filter = match (filter, &action.filter) {
            (Some(_), None) => {
                return Err(BackendError::new(format!(
                    "filtering is not allowed for action {actionname}"
                )))
            }
            (Some(Value::Object(f)), Some(allowed)) => {
                if let Some(k) = f.keys().find(|k| !allowed.contains(k)) {
                    return Err(BackendError::new(format!(
                        "filtering is not allowed for key {k}"
                    )));
                }
                Some(f)
            }
            (Some(other), Some(_)) => {
                return Err(BackendError::new(format!(
                    "filter needs to be a json object {}",
                    compact(&other)
                )))
            }
            (None, Some(allowed)) if !allowed.iter().any(|k| k == "_*_") => {
                return Err(BackendError::new(format!(
                    "filtering is required for action {actionname}"
                )))
            }
            (None, _) => None,
        };
        self.transact(|run, txn| {
            let mut worker = match txn.active_worker(&workername) {
                Some(w) => w.clone(),
                None => WorkerRecord {
                    id: txn.next_worker_id(),
                    name: workername.clone(),
                    active: true,
                    started_at: run.now,
                    last_ping: run.now,
                    registrations: Vec::new(),
                },
            };
            if worker.registrations.iter().any(|r| r.action == actionname) {
                return Err(BackendError::new(format!(
                    "worker {workername} already can do action {actionname}"
                )));
            }
            worker.registrations.push(Registration {
                action: actionname.clone(),
                filter,
            });
            worker.last_ping = run.now;
            let id = worker.id;
            txn.put_worker(worker);
            debug!(worker = %workername, action = %actionname, id, "announced");
            Ok(id)
        })
    }

    fn withdraw_now(&self, workername: String, actionname: String) -> Result<bool, BackendError> {
        self.transact(|_, txn| {
            let Some(mut w) = txn.active_worker(&workername) else {
                return Ok(false);
            };
            let before = w.registrations.len();
            w.registrations.retain(|r| r.action != actionname);
            if w.registrations.len() == before {
                return Ok(false);
            }
            if w.registrations.is_empty() {
                w.active = false;
            }
            txn.put_worker(w);
            Ok(true)
        })
    }

    fn get_task_now(
        &self,
        workername: String,
        actionname: String,
        job_id: Option<JobId>,
    ) -> Result<Option<TaskClaim>, BackendError> {
        if self.action_disabled(&actionname) {
            return Ok(None);
        }
        self.transact(|run, txn| {
            let Some(w) = txn.active_worker(&workername) else {
                return Err(BackendError::new(format!(
                    "no workeraction for worker {workername} action {actionname}."
                )));
            };
            let Some(reg) = w.registrations.iter().find(|r| r.action == actionname) else {
                return Err(BackendError::new(format!(
                    "no workeraction for worker {workername} action {actionname}."
                )));
            };
            let worker_id = w.id;
            let filter = reg.filter.clone().map(Value::Object);
            // Candidates another node is claiming right now are skipped, not waited for.
            // So are jobs made ready in this round, before its sync: their creation (or
            // step) could still be lost, and the worker would run a task of a job that
            // never was (a poll-mode `get_task`, or a stale offer for a reused id, can
            // name them; a fresh offer leaves only just before the sync).
            let unsynced = self.unsynced_ready.lock();
            let fits = |txn: &dyn Txn, id: JobId| {
                !unsynced.contains(&id)
                    && txn.try_ready_job(id, &actionname).is_some_and(|j| {
                        filter.as_ref().is_none_or(|f| {
                            j.task_state.inargs.as_ref().is_some_and(|i| contains(i, f))
                        })
                    })
            };
            let found = match job_id {
                Some(id) => fits(&*txn, id).then_some(id),
                None => txn.ready_jobs(&actionname).find(|id| fits(&*txn, *id)),
            };
            let Some(id) = found else {
                return Ok(None);
            };
            let Some(mut job) = txn.job(id) else {
                return Ok(None);
            };
            let deadline = job_action(run.defs, &job)
                .and_then(|a| a.timeout.as_deref())
                .and_then(|t| {
                    let secs = parse_interval(t);
                    if secs.is_none() {
                        warn!(timeout = t, "invalid action timeout interval ignored");
                    }
                    secs
                })
                .map(|secs| run.now + secs_to_millis(secs));
            // A v4 UUID from the thread-local CSPRNG (no system call per claim).
            let cookie = uuid::Builder::from_random_bytes(rand::random::<[u8; 16]>())
                .into_uuid()
                .to_string();
            job.state = JobState::Working;
            job.updated_at = run.now;
            job.wake_at = deadline;
            job.task_state.claim = Some(jobcenter_store::TaskClaim {
                cookie: cookie.clone(),
                worker_id,
                claimed_at: run.now,
                deadline,
            });
            let mut env = job.task_state.env.as_deref().cloned().unwrap_or_default();
            if let Some(t) = job.task_state.tries {
                env.insert("tries".into(), json!(t));
            }
            let inargs = job
                .task_state
                .inargs
                .as_deref()
                .cloned()
                .unwrap_or_else(|| Value::Object(Map::new()));
            txn.put_job(job);
            Ok(Some(TaskClaim {
                job_id: id,
                cookie,
                inargs,
                env: Value::Object(env),
            }))
        })
    }

    fn task_done_now(&self, cookie: String, outargs: Value) -> Result<(), BackendError> {
        self.transact(|run, txn| {
            let Some(mut job) = txn.job_with_cookie(&cookie) else {
                debug!(cookie = %cookie, "task_done with an unknown cookie ignored");
                return Ok(());
            };
            if job.cookie() != Some(cookie.as_str()) {
                return Ok(());
            }
            job.task_state.claim = None;
            job.wake_at = None;
            run.task_result(job, outargs);
            Ok(())
        })
    }

    fn ping_now(&self, worker_id: WorkerId) -> Result<bool, BackendError> {
        self.transact(|run, txn| {
            let Some(mut w) = txn.worker(worker_id).filter(|w| w.active) else {
                return Ok(false);
            };
            w.last_ping = run.now;
            txn.put_worker(w);
            Ok(true)
        })
    }

    fn poll_tasks_now(&self, worker_ids: Vec<WorkerId>) -> Result<Vec<PollRow>, BackendError> {
        self.store.transact(|txn| {
            let mut groups: Vec<(String, Option<Value>, Vec<WorkerId>)> = Vec::new();
            for wid in &worker_ids {
                let Some(w) = txn.worker(*wid).filter(|w| w.active) else {
                    continue;
                };
                for r in &w.registrations {
                    let f = r.filter.clone().map(Value::Object);
                    match groups
                        .iter_mut()
                        .find(|(a, gf, _)| *a == r.action && *gf == f)
                    {
                        Some(g) => {
                            if !g.2.contains(wid) {
                                g.2.push(*wid);
                            }
                        }
                        None => groups.push((r.action.clone(), f, vec![*wid])),
                    }
                }
            }
            let mut rows = Vec::new();
            for (action, filter, ids) in groups {
                if self.action_disabled(&action) {
                    continue;
                }
                let count = txn
                    .ready_jobs(&action)
                    .filter(|id| match &filter {
                        None => true,
                        Some(f) => txn
                            .peek_job(*id)
                            .and_then(|j| j.task_state.inargs)
                            .is_some_and(|i| contains(&i, f)),
                    })
                    .count();
                if count > 0 {
                    rows.push(PollRow {
                        action,
                        workers: filter.map(|_| ids),
                        count,
                    });
                }
            }
            Ok::<_, BackendError>(rows)
        })
    }

    fn disconnect_now(&self, worker_id: WorkerId) -> Result<bool, BackendError> {
        self.transact(|run, txn| {
            // A stopped worker may be gone from the store (PostgreSQL deletes its row).
            let was_active = match txn.worker(worker_id) {
                Some(mut w) => {
                    let was_active = w.active;
                    if was_active || !w.registrations.is_empty() {
                        w.active = false;
                        w.registrations.clear();
                        txn.put_worker(w);
                    }
                    was_active
                }
                None => false,
            };
            // A stopped worker (it withdrew its last action) may still hold claims.
            for id in txn.jobs_claimed_by(worker_id) {
                if let Some(job) = txn.job(id) {
                    run.worker_gone(txn, job);
                }
            }
            Ok(was_active)
        })
    }

    fn subscribe_now(&self) -> UnboundedReceiver<Event> {
        let (tx, rx) = unbounded_channel();
        self.subscribers.lock().push(tx);
        rx
    }
}

/// How long a node holds back a task that the node where it became ready offered to a
/// worker of its own ([`Engine::offer_and_publish`]) before offering it to its own workers,
/// if it is still ready then. Long against a claim (a few milliseconds: the offer, the
/// worker's `get_task`, a transaction), short against the 10 s an offered worker has to
/// claim (docs/PROTOCOL.md §8.4), after which its node would hand the task on itself.
const STANDBY: Duration = Duration::from_millis(250);

/// Shared store: the thread that offers held-back tasks once their [`STANDBY`] is over
/// ([`Engine::offer_still_ready`]). Ends within a second once the engine is dropped.
fn spawn_standby<S: Store>(engine: Weak<Engine<S>>) {
    let spawned = std::thread::Builder::new()
        .name("jobcenter-standby".into())
        .spawn(move || loop {
            let Some(e) = engine.upgrade() else {
                return;
            };
            let due = {
                let mut q = e.standby.lock();
                let now = std::time::Instant::now();
                match q.front() {
                    Some((at, _)) if *at <= now => q.pop_front().map(|(_, evs)| evs),
                    Some((at, _)) => {
                        let wait = *at - now;
                        e.standby_cv.wait_for(&mut q, wait);
                        None
                    }
                    None => {
                        e.standby_cv.wait_for(&mut q, Duration::from_secs(1));
                        None
                    }
                }
            };
            if let Some(events) = due {
                e.offer_still_ready(events);
            }
        });
    if let Err(err) = spawned {
        error!(error = %err, "cannot start the standby thread; offers of other nodes wait for the poll");
    }
}

/// Largest payload published to the other nodes at once (NOTIFY allows 8000 bytes).
const PUBLISH_CHUNK: usize = 7000;

/// `ev` as JSON for the other nodes; a finished job's result that would not fit into one
/// payload is left out (the other nodes read it from the store then).
fn publishable(ev: &Event) -> Option<String> {
    let text = serde_json::to_string(ev).ok()?;
    match ev {
        Event::JobFinished {
            job_id,
            outargs: Some(_),
        } if text.len() + 2 > PUBLISH_CHUNK => serde_json::to_string(&Event::JobFinished {
            job_id: *job_id,
            outargs: None,
        })
        .ok(),
        _ => Some(text),
    }
}

/// How often a node on a shared store writes its heartbeat ([`spawn_beat`]) and looks for
/// dead nodes (the timer task's node round).
const NODE_ROUND_MS: Millis = 1000;

/// Archived results forgotten per purge transaction.
const PURGE_BATCH: usize = 2000;

/// How often the retention purge runs (it continues at once while there is more to do).
const PURGE_EVERY_MS: Millis = 1000;

/// Shared store: write this node's heartbeat every [`NODE_ROUND_MS`] on a thread of its own
/// ([`Store::beat`] blocks), apart from the store thread and the timer task, so that a node
/// whose batches wait (lock waits behind other nodes, a slow database) still counts as alive.
/// Ends within a round once the engine is dropped.
fn spawn_beat<S: Store>(engine: Weak<Engine<S>>) {
    let spawned = std::thread::Builder::new()
        .name("jobcenter-beat".into())
        .spawn(move || {
            let mut failing = false;
            loop {
                std::thread::sleep(Duration::from_millis(NODE_ROUND_MS));
                let Some(e) = engine.upgrade() else {
                    return;
                };
                match e.store.beat(now_ms()) {
                    Ok(()) if failing => {
                        info!("node heartbeat written again");
                        failing = false;
                    }
                    Ok(()) => {}
                    Err(err) => {
                        if !failing {
                            warn!(error = %err, "writing the node heartbeat failed");
                        }
                        failing = true;
                    }
                }
            }
        });
    if let Err(e) = spawned {
        error!(error = %e, "cannot start the node heartbeat thread");
    }
}

/// The timer task: sleep until the next due job, purge round or housekeeping round.
/// Everything it does goes through [`Engine::call`], so on a durable store it runs on the
/// store thread like any other transaction. It holds the engine only to start a call, never
/// across an `.await`, so dropping the last `Arc` stops the engine at once.
async fn timer_loop<S: Store>(engine: Weak<Engine<S>>, wake: Arc<Notify>) {
    /// Start `f` on the engine (if it still exists) and wait for its answer.
    async fn on<S: Store, T: Send + 'static>(
        engine: &Weak<Engine<S>>,
        f: impl FnOnce(&Engine<S>) -> Result<T, BackendError> + Send + 'static,
    ) -> Option<Result<T, BackendError>> {
        let answer = engine.upgrade()?.call(f);
        Some(answer.await)
    }
    let Some((interval, purging, shared)) = engine.upgrade().map(|e| {
        // At least 10 ms, so a zero interval cannot make the loop spin.
        let interval = (e.config.housekeeping_interval.as_millis() as Millis).max(10);
        (
            interval,
            e.config.archive_retention.is_some(),
            e.store.shared(),
        )
    }) else {
        return;
    };
    let mut next_housekeeping = now_ms() + interval;
    let mut next_purge = 0;
    // The first round runs at start (Engine::start); other nodes' due jobs are found by
    // these rounds too, since their timers do not wake ours.
    let mut next_node_round = now_ms() + NODE_ROUND_MS;
    loop {
        let now = now_ms();
        match on(&engine, |e| e.run_due()).await {
            None => return,
            Some(Err(e)) => warn!(error = %e, "processing due jobs failed"),
            Some(Ok(_)) => {}
        }
        if purging && now >= next_purge {
            loop {
                match on(&engine, |e| e.purge_round(PURGE_BATCH)).await {
                    None => return,
                    Some(Ok(n)) if n == PURGE_BATCH => tokio::task::yield_now().await,
                    Some(Ok(_)) => break,
                    Some(Err(e)) => {
                        warn!(error = %e, "purging archived jobs failed");
                        break;
                    }
                }
            }
            next_purge = now + PURGE_EVERY_MS;
        }
        if shared && now >= next_node_round {
            match on(&engine, |e| e.node_round()).await {
                None => return,
                Some(Err(e)) => warn!(error = %e, "node heartbeat failed"),
                Some(Ok(_)) => {}
            }
            next_node_round = now + NODE_ROUND_MS;
        }
        if now >= next_housekeeping {
            match on(&engine, |e| e.disconnect_stale_workers()).await {
                None => return,
                Some(Err(e)) => warn!(error = %e, "housekeeping failed"),
                Some(Ok(_)) => {}
            }
            next_housekeeping = now + interval;
        }
        let mut later = next_housekeeping;
        if purging {
            later = later.min(next_purge);
        }
        if shared {
            later = later.min(next_node_round);
        }
        let Some(target) = on(&engine, move |e| Ok(e.arm_timer(later))).await else {
            return;
        };
        let target = target.unwrap_or(later);
        let sleep_for = Duration::from_millis(target.saturating_sub(now_ms()));
        tokio::select! {
            _ = tokio::time::sleep(sleep_for) => {}
            _ = wake.notified() => {}
        }
    }
}

fn ready<T: Send + 'static>(r: Result<T, BackendError>) -> BackendFuture<'static, T> {
    Box::pin(std::future::ready(r))
}

impl<S: Store> Backend for Engine<S> {
    fn create_job(&self, req: CreateJob) -> BackendFuture<'_, JobId> {
        self.call(move |e| e.create_job_now(req))
    }

    fn get_job_status(&self, job_id: JobId) -> BackendFuture<'_, JobStatus> {
        // Only a result must be durable before it is told; "still running" (or "unknown")
        // promises nothing, so it does not make its batch sync (a client polling a running
        // job would otherwise sync the next claim on its own).
        self.call_deciding(move |e| {
            let status = e.get_job_status_now(job_id);
            let when = match status {
                Ok(JobStatus::Running | JobStatus::Unknown) => exec::Answer::Now,
                _ => exec::Answer::AfterSync,
            };
            (status, when)
        })
    }

    fn find_jobs(&self, filter: Value) -> BackendFuture<'_, Vec<JobId>> {
        self.call(move |e| e.find_jobs_now(filter))
    }

    fn check_if_lock_exists(
        &self,
        locktype: String,
        lockvalue: String,
    ) -> BackendFuture<'_, Option<bool>> {
        if !self.defs.catalog.has_locktype(&locktype) {
            return ready(Ok(None));
        }
        self.call(move |e| {
            e.store.transact(|txn| {
                Ok::<_, BackendError>(Some(txn.lock(&locktype, &lockvalue).is_some()))
            })
        })
    }

    fn announce(
        &self,
        workername: String,
        actionname: String,
        who: String,
        filter: Option<Value>,
    ) -> BackendFuture<'_, WorkerId> {
        self.call_now(move |e| e.announce_now(workername, actionname, who, filter))
    }

    fn withdraw(&self, workername: String, actionname: String) -> BackendFuture<'_, bool> {
        self.call_now(move |e| e.withdraw_now(workername, actionname))
    }

    fn get_task(
        &self,
        workername: String,
        actionname: String,
        job_id: Option<JobId>,
    ) -> BackendFuture<'_, Option<TaskClaim>> {
        self.call_now(move |e| e.get_task_now(workername, actionname, job_id))
    }

    fn task_done(&self, cookie: String, outargs: Value) -> BackendFuture<'_, ()> {
        // Answered after the sync: a result rolled back by a failed sync exists nowhere
        // else, so the API server must hear of the failure to report it again.
        self.call(move |e| e.task_done_now(cookie, outargs))
    }

    fn ping(&self, worker_id: WorkerId) -> BackendFuture<'_, bool> {
        self.call_now(move |e| e.ping_now(worker_id))
    }

    fn poll_tasks(&self, worker_ids: Vec<WorkerId>) -> BackendFuture<'_, Vec<PollRow>> {
        self.call_now(move |e| e.poll_tasks_now(worker_ids))
    }

    fn disconnect(&self, worker_id: WorkerId) -> BackendFuture<'_, bool> {
        self.call_now(move |e| e.disconnect_now(worker_id))
    }

    fn subscribe(&self) -> UnboundedReceiver<Event> {
        self.subscribe_now()
    }

    fn set_event_sink(&self, sink: EventSink) -> bool {
        self.sinks.write().push(sink);
        true
    }

    fn set_observer(&self, observer: Arc<dyn Observer>) {
        *self.observer.write() = Some(observer);
    }

    fn ready_counts(&self) -> BackendFuture<'_, Vec<(String, usize)>> {
        self.call_now(|e| e.ready_counts_now())
    }

    fn admin_jobs(
        &self,
        q: crate::backend::admin::JobQuery,
    ) -> BackendFuture<'_, Vec<crate::backend::admin::JobSummary>> {
        self.call_now(move |e| e.admin_jobs_now(q))
    }

    fn admin_job(
        &self,
        job_id: JobId,
    ) -> BackendFuture<'_, Option<crate::backend::admin::JobDetail>> {
        self.call_now(move |e| e.admin_job_now(job_id))
    }

    fn admin_tree(
        &self,
        job_id: JobId,
    ) -> BackendFuture<'_, Option<crate::backend::admin::JobTree>> {
        self.call_now(move |e| e.admin_tree_now(job_id))
    }

    fn admin_locks(
        &self,
        locktype: Option<String>,
        limit: usize,
    ) -> BackendFuture<'_, Vec<crate::backend::admin::LockInfo>> {
        self.call_now(move |e| e.admin_locks_now(locktype, limit))
    }

    fn admin_errors(
        &self,
        since: Option<u64>,
        limit: usize,
    ) -> BackendFuture<'_, Vec<crate::backend::admin::JobSummary>> {
        self.call_now(move |e| e.admin_errors_now(since, limit))
    }

    fn admin_workers(&self) -> BackendFuture<'_, Vec<crate::backend::admin::WorkerInfo>> {
        self.call_now(|e| e.admin_workers_now())
    }

    fn admin_retry(&self, job_id: JobId) -> BackendFuture<'_, crate::backend::admin::RetryOutcome> {
        self.call(move |e| e.admin_retry_now(job_id))
    }

    fn admin_cancel(&self, job_id: JobId, reason: String) -> BackendFuture<'_, bool> {
        self.call(move |e| e.admin_cancel_now(job_id, reason))
    }

    fn admin_set_action_enabled(&self, action: String, enabled: bool) -> BackendFuture<'_, bool> {
        self.call(move |e| e.admin_set_action_enabled_now(action, enabled))
    }

    fn admin_disabled_actions(&self) -> BackendFuture<'_, Vec<String>> {
        ready(Ok(self.admin_disabled_actions_now()))
    }

    fn admin_state_counts(&self) -> BackendFuture<'_, Vec<(String, u64)>> {
        self.call_now(|e| e.admin_state_counts_now())
    }
}
