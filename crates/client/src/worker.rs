//! The worker runtime: announce actions, serve `task_ready` → `get_task` → run → `task_done`.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::ops::Deref;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use jobcenter_rpc::{CallError, Peer};
use parking_lot::Mutex;
use serde_json::{json, Map, Value};
use tokio::sync::watch;

use crate::client::{open_session, Client, Shared};
use crate::config::ClientConfig;
use crate::error::ClientError;
use crate::json::{error_value, job_id_of, obj, truthy};
use crate::subprocess::Subprocess;

/// `work()` exit code: stopped normally (`stop(0)`).
pub const WORK_OK: i32 = 0;
/// `work()` exit code: the connection to the API closed.
pub const WORK_CONNECTION_CLOSED: i32 = 91;
/// `work()` exit code: no ping from the server within `ping_timeout`.
pub const WORK_PING_TIMEOUT: i32 = 92;

/// One task handed to an action handler.
#[derive(Debug, Clone, PartialEq)]
pub struct Task {
    /// The action name.
    pub action: String,
    /// The real job id (from the `get_task` result).
    pub job_id: i64,
    /// The task's input arguments (an object).
    pub inargs: Value,
    /// The task environment; only present when the action was announced with `addenv`.
    pub env: Option<Value>,
}

type SyncFn = Arc<dyn Fn(Task) -> Result<Value, String> + Send + Sync>;
type AsyncFut = Pin<Box<dyn Future<Output = Result<Value, String>> + Send>>;
type AsyncFn = Arc<dyn Fn(Task) -> AsyncFut + Send + Sync>;

#[derive(Clone)]
enum Handler {
    Sync(SyncFn),
    Async(AsyncFn),
    Subprocess(Subprocess),
}

/// An action to announce, with its handler. Built with [`Action::new`] and one of
/// [`Action::sync`], [`Action::run_async`] or [`Action::subprocess`].
///
/// ```
/// use jobcenter::Action;
/// use serde_json::json;
/// let add = Action::new("add").slots(2).sync(|task| {
///     let a = task.inargs["counter"].as_i64().ok_or("no counter")?;
///     let b = task.inargs["step"].as_i64().ok_or("no step")?;
///     Ok::<_, &str>(json!({"counter": a + b}))
/// });
/// # let _ = add;
/// ```
#[derive(Clone)]
pub struct Action {
    name: String,
    slots: Option<u32>,
    slotgroup: Option<String>,
    filter: Option<Value>,
    addenv: bool,
    workername: Option<String>,
    handler: Option<Handler>,
    undo: Option<SyncFn>,
}

impl fmt::Debug for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mode = match &self.handler {
            None => "none",
            Some(Handler::Sync(_)) => "sync",
            Some(Handler::Async(_)) => "async",
            Some(Handler::Subprocess(_)) => "subproc",
        };
        f.debug_struct("Action")
            .field("name", &self.name)
            .field("slots", &self.slots)
            .field("slotgroup", &self.slotgroup)
            .field("filter", &self.filter)
            .field("addenv", &self.addenv)
            .field("mode", &mode)
            .field("undo", &self.undo.is_some())
            .finish()
    }
}

fn display_err<E: fmt::Display>(e: E) -> String {
    e.to_string()
}

impl Action {
    /// A new action called `name` (no handler yet).
    pub fn new(name: impl Into<String>) -> Self {
        Action {
            name: name.into(),
            slots: None,
            slotgroup: None,
            filter: None,
            addenv: false,
            workername: None,
            handler: None,
            undo: None,
        }
    }

    /// The action name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// How many tasks of this action may run at once (server default 1).
    pub fn slots(mut self, n: u32) -> Self {
        self.slots = Some(n);
        self
    }

    /// Share the slots of a slotgroup created with [`Client::create_slotgroup`].
    pub fn slotgroup(mut self, name: impl Into<String>) -> Self {
        self.slotgroup = Some(name.into());
        self
    }

    /// Only take jobs whose task inargs contain this object.
    pub fn filter(mut self, filter: Value) -> Self {
        self.filter = Some(filter);
        self
    }

    /// Pass the task environment to the handler ([`Task::env`]).
    pub fn addenv(mut self, yes: bool) -> Self {
        self.addenv = yes;
        self
    }

    /// Override the worker name for this announce (use one name per connection).
    pub fn workername(mut self, name: impl Into<String>) -> Self {
        self.workername = Some(name.into());
        self
    }

    /// A blocking handler. It runs on tokio's blocking pool, so pings are answered while it
    /// runs. `Err(e)` or a panic gives outargs `{"error": "<e>"}`.
    pub fn sync<F, E>(mut self, f: F) -> Self
    where
        F: Fn(Task) -> Result<Value, E> + Send + Sync + 'static,
        E: fmt::Display,
    {
        self.handler = Some(Handler::Sync(Arc::new(move |t| f(t).map_err(display_err))));
        self
    }

    /// An async handler, spawned as its own task. `Err(e)` or a panic gives
    /// `{"error": "<e>"}`.
    pub fn run_async<F, Fut, E>(mut self, f: F) -> Self
    where
        F: Fn(Task) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Value, E>> + Send + 'static,
        E: fmt::Display,
    {
        let f = Arc::new(f);
        self.handler = Some(Handler::Async(Arc::new(move |t| {
            let fut = f(t);
            Box::pin(async move { fut.await.map_err(display_err) })
        })));
        self
    }

    /// Run each task in a child process; see [`Subprocess`] for the stdin/stdout contract.
    pub fn subprocess(mut self, program: impl Into<Subprocess>) -> Self {
        self.handler = Some(Handler::Subprocess(program.into()));
        self
    }

    /// An undo callback (§12.14): when the handler fails or returns outargs with a truthy
    /// `error`, `undo` runs with the same task and the outargs become
    /// `{"error":{"msg":"undo failure","undo":<undo result or error text>,"olderr":<error>}}`.
    /// It also runs when the result cannot be reported because the connection is gone.
    /// (The Perl client honours `undocb` only in `subproc` mode; here it works in every mode.)
    pub fn undo<F, E>(mut self, f: F) -> Self
    where
        F: Fn(Task) -> Result<Value, E> + Send + Sync + 'static,
        E: fmt::Display,
    {
        self.undo = Some(Arc::new(move |t| f(t).map_err(display_err)));
        self
    }
}

/// Worker-side state shared with the connection's handlers.
pub(crate) struct WorkerShared {
    actions: Mutex<HashMap<String, Slot>>,
    pub(crate) slotgroups: Mutex<Vec<(String, Option<u32>)>>,
    last_ping: Mutex<Option<Instant>>,
    inflight: watch::Sender<usize>,
    draining: AtomicBool,
    stop: watch::Sender<Option<i32>>,
}

#[derive(Clone)]
enum Slot {
    /// The announce is outstanding (tasks may already be offered).
    Pending(Arc<Action>),
    /// Announced successfully.
    Active(Arc<Action>),
}

impl Slot {
    fn action(&self) -> &Arc<Action> {
        match self {
            Slot::Pending(a) | Slot::Active(a) => a,
        }
    }
}

impl Default for WorkerShared {
    fn default() -> Self {
        WorkerShared {
            actions: Mutex::new(HashMap::new()),
            slotgroups: Mutex::new(Vec::new()),
            last_ping: Mutex::new(None),
            inflight: watch::channel(0).0,
            draining: AtomicBool::new(false),
            stop: watch::channel(None).0,
        }
    }
}

impl WorkerShared {
    pub(crate) fn record_ping(&self) {
        *self.last_ping.lock() = Some(Instant::now());
    }
}

/// Counts a task in flight until dropped.
struct InFlight(Arc<Shared>);

impl InFlight {
    fn new(shared: Arc<Shared>) -> Self {
        shared.worker.inflight.send_modify(|n| *n += 1);
        InFlight(shared)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0
            .worker
            .inflight
            .send_modify(|n| *n = n.saturating_sub(1));
    }
}

/// `task_ready {actionname, job_id}` arrived.
pub(crate) fn on_task_ready(shared: Arc<Shared>, peer: Peer, params: Map<String, Value>) {
    let Some(name) = params.get("actionname").and_then(Value::as_str) else {
        tracing::warn!("task_ready without actionname ignored");
        return;
    };
    let Some(job_id) = params.get("job_id").filter(|v| !v.is_null()).cloned() else {
        tracing::warn!(action = name, "task_ready without job_id ignored");
        return;
    };
    if shared.worker.draining.load(Ordering::SeqCst) {
        tracing::debug!(action = name, "shutting down: offer ignored");
        return;
    }
    let action = match shared.worker.actions.lock().get(name) {
        Some(slot) => slot.action().clone(),
        None => {
            tracing::warn!(
                action = name,
                "task_ready for an action we did not announce"
            );
            return;
        }
    };
    let guard = InFlight::new(shared);
    tokio::spawn(async move {
        serve_offer(&peer, &action, job_id).await;
        drop(guard);
    });
}

/// Claim the offered task, run it, report the result.
async fn serve_offer(peer: &Peer, action: &Action, offer_id: Value) {
    // The offer's job_id goes back unchanged (same JSON type): C73.
    let params = obj([("actionname", json!(action.name)), ("job_id", offer_id)]);
    let res = match peer.call("get_task", params).await {
        Ok(v) => v,
        Err(e) => {
            tracing::warn!(action = %action.name, "get_task failed: {e}");
            return;
        }
    };
    let Value::Array(mut a) = res else {
        tracing::warn!(action = %action.name, "get_task returned {res}");
        return;
    };
    let cookie = match a.get(1) {
        Some(Value::String(c)) if !c.is_empty() => c.clone(),
        _ => {
            tracing::debug!(action = %action.name, "no task for this offer");
            return;
        }
    };
    a.resize(4, Value::Null);
    let env = std::mem::take(&mut a[3]);
    let inargs = std::mem::take(&mut a[2]);
    let job_id = job_id_of(&a[0]).unwrap_or_else(|| {
        tracing::warn!(action = %action.name, "get_task gave no usable job id: {}", a[0]);
        0
    });
    let task = Task {
        action: action.name.clone(),
        job_id,
        inargs: if inargs.is_null() { json!({}) } else { inargs },
        env: action
            .addenv
            .then(|| if env.is_null() { json!({}) } else { env }),
    };
    if peer.is_closed() {
        // The claim arrived as the connection closed: its result could not be reported, and
        // the server gives the task to another worker. Running it here would run it twice.
        tracing::debug!(action = %action.name, job_id, "connection closed, task not run");
        return;
    }
    tracing::debug!(action = %action.name, job_id, "running task");
    let outargs = execute(action, task.clone()).await;
    let params = obj([("cookie", json!(cookie)), ("outargs", outargs)]);
    if let Err(e) = peer.notify("task_done", params) {
        tracing::warn!(action = %action.name, job_id, "cannot report task result: {e}");
        if let Some(undo) = &action.undo {
            // The result is lost: undo the work (result ignored).
            let undo = undo.clone();
            let _ = run_blocking(move || undo(task)).await;
        }
    }
}

fn panic_payload_text(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        return (*s).to_string();
    }
    if let Some(s) = p.downcast_ref::<String>() {
        return s.clone();
    }
    "handler panicked".to_string()
}

fn panic_text(e: tokio::task::JoinError) -> String {
    if e.is_panic() {
        panic_payload_text(e.into_panic().as_ref())
    } else {
        "handler cancelled".to_string()
    }
}

async fn run_blocking<F>(f: F) -> Result<Value, String>
where
    F: FnOnce() -> Result<Value, String> + Send + 'static,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r,
        Err(e) => Err(panic_text(e)),
    }
}

/// Run the handler and turn whatever happens into the outargs object to report.
pub(crate) async fn execute(action: &Action, task: Task) -> Value {
    let result = match &action.handler {
        Some(Handler::Sync(f)) => {
            let f = f.clone();
            let t = task.clone();
            run_blocking(move || f(t)).await
        }
        Some(Handler::Async(f)) => {
            // The handler may also panic while building its future.
            let t = task.clone();
            match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(t))) {
                Ok(fut) => match tokio::spawn(fut).await {
                    Ok(r) => r,
                    Err(e) => Err(panic_text(e)),
                },
                Err(p) => Err(panic_payload_text(p.as_ref())),
            }
        }
        Some(Handler::Subprocess(sp)) => sp.run(&task).await,
        None => Err("no cb?".to_string()),
    };
    let (outargs, failed) = match result {
        Ok(Value::Null) => (error_value("no result"), false),
        Ok(v @ Value::Object(_)) => {
            let failed = truthy(v.get("error"));
            (v, failed)
        }
        Ok(_) => (error_value("callback returned no object"), false),
        Err(e) => (error_value(e), true),
    };
    match (&action.undo, failed) {
        (Some(undo), true) => {
            let olderr = outargs.get("error").cloned().unwrap_or(Value::Null);
            let undo = undo.clone();
            let r = match run_blocking(move || undo(task)).await {
                Ok(v) => v,
                Err(e) => Value::String(e),
            };
            json!({"error": {"msg": "undo failure", "undo": r, "olderr": olderr}})
        }
        _ => outargs,
    }
}

/// Auto-reconnect settings for [`Worker::work`]: capped exponential backoff.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reconnect {
    /// First delay after a disconnect.
    pub initial: Duration,
    /// Longest delay between attempts.
    pub max: Duration,
}

impl Default for Reconnect {
    fn default() -> Self {
        Reconnect {
            initial: Duration::from_millis(500),
            max: Duration::from_secs(30),
        }
    }
}

/// A client that also serves actions (the worker half of `JobCenter::Client::Mojo`).
///
/// Tasks are served as soon as an action is announced (handlers run on the tokio runtime);
/// [`Worker::work`] only waits for the end: `stop(code)`, connection loss (91) or the
/// ping watchdog (92). With [`Worker::set_reconnect`], `work()` instead reconnects with
/// capped exponential backoff, recreates slotgroups and re-announces every action.
///
/// ```no_run
/// # async fn demo() -> Result<(), jobcenter::ClientError> {
/// use jobcenter::{Action, ClientConfig, Worker};
/// use serde_json::json;
/// let worker = Worker::connect(ClientConfig::new("theEmployee", "doesThings")).await?;
/// worker
///     .announce(Action::new("square").run_async(|task| async move {
///         let r = task.inargs["root"].as_f64().ok_or("no root")?;
///         Ok::<_, String>(json!({"square": r * r}))
///     }))
///     .await?;
/// let code = worker.work().await;
/// std::process::exit(code);
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct Worker {
    client: Client,
    reconnect: Arc<Mutex<Option<Reconnect>>>,
}

impl Deref for Worker {
    type Target = Client;
    fn deref(&self) -> &Client {
        &self.client
    }
}

impl Client {
    /// This client as a [`Worker`] (same connection).
    pub fn worker(&self) -> Worker {
        Worker::from_client(self.clone())
    }
}

/// A handle that stops [`Worker::work`] from anywhere (e.g. inside a handler).
#[derive(Clone, Debug)]
pub struct StopHandle(Arc<Shared>);

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared")
            .field("who", &self.cfg.who)
            .finish()
    }
}

impl StopHandle {
    /// Make `work()` return `code`.
    pub fn stop(&self, code: i32) {
        self.0.worker.stop.send_replace(Some(code));
    }
}

/// The current stop request (copied out, so no borrow of the channel is held).
fn current(rx: &mut watch::Receiver<Option<i32>>) -> Option<i32> {
    let v = *rx.borrow_and_update();
    v
}

enum End {
    Stop(i32),
    Closed,
    PingTimeout,
}

impl Worker {
    /// Connect and authenticate (see [`Client::connect`]).
    pub async fn connect(cfg: ClientConfig) -> Result<Worker, ClientError> {
        Ok(Worker::from_client(Client::connect(cfg).await?))
    }

    /// Use an existing client connection as a worker.
    pub fn from_client(client: Client) -> Worker {
        Worker {
            client,
            reconnect: Arc::new(Mutex::new(None)),
        }
    }

    /// The underlying client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Enable (or with `None` disable) auto-reconnect in [`Worker::work`].
    pub fn set_reconnect(&self, r: Option<Reconnect>) {
        *self.reconnect.lock() = r;
    }

    fn workername(&self, action: &Action) -> String {
        action
            .workername
            .clone()
            .unwrap_or_else(|| self.config().effective_workername())
    }

    /// Announce `action` and start serving its tasks. Errors:
    /// [`ClientError::AlreadyAnnounced`] (local, nothing sent), [`ClientError::Announce`]
    /// with the server's message on `[false, msg]`, [`ClientError::Rpc`] on a JSON-RPC error.
    pub async fn announce(&self, action: Action) -> Result<(), ClientError> {
        if action.name.is_empty() {
            return Err(ClientError::Invalid("no actionname?".into()));
        }
        if action.handler.is_none() {
            return Err(ClientError::Invalid("no cb?".into()));
        }
        let name = action.name.clone();
        let action = Arc::new(action);
        {
            let mut actions = self.shared().worker.actions.lock();
            if actions.contains_key(&name) {
                return Err(ClientError::AlreadyAnnounced(name));
            }
            // Registered before sending: a task_ready may follow the result immediately.
            actions.insert(name.clone(), Slot::Pending(action.clone()));
        }
        let res = self.send_announce(&self.peer(), &action).await;
        let mut actions = self.shared().worker.actions.lock();
        match res {
            Ok(()) => {
                actions.insert(name, Slot::Active(action));
                Ok(())
            }
            Err(e) => {
                actions.remove(&name);
                Err(e)
            }
        }
    }

    async fn send_announce(&self, peer: &Peer, action: &Action) -> Result<(), ClientError> {
        let mut params = Map::new();
        params.insert("workername".into(), json!(self.workername(action)));
        params.insert("actionname".into(), json!(action.name));
        params.insert("slotgroup".into(), json!(action.slotgroup));
        params.insert("slots".into(), json!(action.slots));
        if let Some(f) = &action.filter {
            if truthy(Some(f)) {
                params.insert("filter".into(), f.clone());
            }
        }
        let v = peer.call("announce", Value::Object(params)).await?;
        match &v {
            Value::Array(a) if truthy(a.first()) => Ok(()),
            Value::Array(a) => Err(ClientError::Announce(match a.get(1) {
                Some(Value::String(s)) => s.clone(),
                Some(other) => other.to_string(),
                None => "announce failed".to_string(),
            })),
            _ => Err(ClientError::Protocol(format!("announce returned {v}"))),
        }
    }

    /// Withdraw an announced action: no new tasks are offered; running ones finish.
    pub async fn withdraw(&self, name: &str) -> Result<(), ClientError> {
        if !self.shared().worker.actions.lock().contains_key(name) {
            return Err(ClientError::Invalid(format!(
                "actionname {name} not announced?"
            )));
        }
        self.peer()
            .call("withdraw", obj([("actionname", json!(name))]))
            .await?;
        self.shared().worker.actions.lock().remove(name);
        Ok(())
    }

    /// Names of the announced actions.
    pub fn actions(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .shared()
            .worker
            .actions
            .lock()
            .keys()
            .cloned()
            .collect();
        v.sort();
        v
    }

    /// Tasks currently being claimed, run or reported.
    pub fn in_flight(&self) -> usize {
        *self.shared().worker.inflight.borrow()
    }

    /// A handle that can stop [`Worker::work`] from anywhere.
    pub fn stop_handle(&self) -> StopHandle {
        StopHandle(self.shared().clone())
    }

    /// Make a running [`Worker::work`] return `code`.
    pub fn stop(&self, code: i32) {
        self.stop_handle().stop(code);
    }

    /// Run until stopped: returns the `stop` code, [`WORK_CONNECTION_CLOSED`] (91) when the
    /// connection closes, or [`WORK_PING_TIMEOUT`] (92) when no server ping arrived within
    /// `ping_timeout` (checked every `ping_timeout`; zero disables; the connection is closed
    /// then). Handlers serve tasks as soon as an action is announced, so a `stop` issued
    /// before `work()` starts is kept: `work()` then returns that code at once (and clears it).
    /// Pure clients (nobody pings them) should set `ping_timeout` to zero.
    pub async fn work(&self) -> i32 {
        let shared = self.shared().clone();
        // A stop issued before work() started (e.g. by a handler) ends it at once.
        let mut stop_rx = shared.worker.stop.subscribe();
        let pending = *stop_rx.borrow_and_update();
        if let Some(code) = pending {
            shared.worker.stop.send_replace(None);
            return code;
        }
        let pt = self.config().ping_timeout;
        loop {
            let peer = self.peer();
            let end = self.watch(&peer, &mut stop_rx, pt).await;
            let code = match end {
                End::Stop(c) => return c,
                End::Closed => WORK_CONNECTION_CLOSED,
                End::PingTimeout => WORK_PING_TIMEOUT,
            };
            let policy = *self.reconnect.lock();
            let Some(policy) = policy else {
                return code;
            };
            tracing::warn!(code, "connection lost; reconnecting");
            if let Some(c) = self.reconnect_loop(policy, &mut stop_rx).await {
                return c;
            }
        }
    }

    async fn watch(
        &self,
        peer: &Peer,
        stop_rx: &mut watch::Receiver<Option<i32>>,
        pt: Duration,
    ) -> End {
        let mut tick =
            (!pt.is_zero()).then(|| tokio::time::interval_at(tokio::time::Instant::now() + pt, pt));
        loop {
            tokio::select! {
                biased;
                r = stop_rx.changed() => {
                    match r {
                        Ok(()) => if let Some(c) = current(stop_rx) {
                            self.shared().worker.stop.send_replace(None);
                            return End::Stop(c);
                        },
                        Err(_) => return End::Stop(WORK_OK),
                    }
                }
                _ = peer.closed() => return End::Closed,
                _ = async {
                    match tick.as_mut() {
                        Some(t) => { t.tick().await; }
                        None => std::future::pending::<()>().await,
                    }
                } => {
                    let last = *self.shared().worker.last_ping.lock();
                    let alive = last.is_some_and(|t| t.elapsed() <= pt);
                    if !alive {
                        tracing::warn!("no ping from the server within {pt:?}; closing");
                        peer.close();
                        return End::PingTimeout;
                    }
                }
            }
        }
    }

    /// Reconnect with backoff until it works (returns `None`) or `stop` is called.
    async fn reconnect_loop(
        &self,
        policy: Reconnect,
        stop_rx: &mut watch::Receiver<Option<i32>>,
    ) -> Option<i32> {
        let mut delay = policy.initial;
        loop {
            tokio::select! {
                biased;
                r = stop_rx.changed() => match r {
                    Ok(()) => if let Some(c) = current(stop_rx) {
                        self.shared().worker.stop.send_replace(None);
                        return Some(c);
                    },
                    Err(_) => return Some(WORK_OK),
                },
                _ = tokio::time::sleep(delay) => {}
            }
            match open_session(self.shared()).await {
                Ok(peer) => {
                    *self.client.inner.peer.write() = peer.clone();
                    *self.shared().worker.last_ping.lock() = Some(Instant::now());
                    self.reannounce(&peer).await;
                    tracing::info!("reconnected");
                    return None;
                }
                Err(e) => tracing::warn!("reconnect failed: {e}"),
            }
            delay = (delay * 2).min(policy.max);
        }
    }

    async fn reannounce(&self, peer: &Peer) {
        let groups = self.shared().worker.slotgroups.lock().clone();
        for (name, slots) in groups {
            if let Err(e) = peer
                .call(
                    "create_slotgroup",
                    obj([("name", json!(name)), ("slots", json!(slots))]),
                )
                .await
            {
                tracing::warn!("recreating slotgroup {name}: {e}");
            }
        }
        let actions: Vec<Arc<Action>> = self
            .shared()
            .worker
            .actions
            .lock()
            .values()
            .map(|s| s.action().clone())
            .collect();
        for a in actions {
            if let Err(e) = self.send_announce(peer, &a).await {
                tracing::warn!("re-announcing {}: {e}", a.name);
            }
        }
    }

    /// Graceful shutdown (beyond the Perl client): stop claiming new tasks, withdraw every
    /// action, wait until the running tasks have reported (at most `deadline`), then stop
    /// `work()` with 0 and close the connection. Returns the number of tasks still running
    /// at the deadline (0 = fully drained).
    pub async fn shutdown(&self, deadline: Duration) -> usize {
        let shared = self.shared().clone();
        let end = tokio::time::Instant::now() + deadline;
        shared.worker.draining.store(true, Ordering::SeqCst);
        for name in self.actions() {
            let left = end.saturating_duration_since(tokio::time::Instant::now());
            match self
                .peer()
                .call_timeout("withdraw", obj([("actionname", json!(name))]), left)
                .await
            {
                Ok(_) => {}
                Err(CallError::Closed) => break,
                Err(e) => tracing::warn!("withdraw {name}: {e}"),
            }
        }
        let mut rx = shared.worker.inflight.subscribe();
        let _ = tokio::time::timeout_at(end, rx.wait_for(|n| *n == 0)).await;
        let left = *shared.worker.inflight.borrow();
        shared.worker.actions.lock().clear();
        self.stop(WORK_OK);
        self.close();
        left
    }
}
