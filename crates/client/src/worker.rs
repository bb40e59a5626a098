//! The worker runtime: announce actions, serve `task_ready` → `get_task` → run → `task_done`.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use jobcenter_rpc::{CallError, Peer};
use parking_lot::Mutex;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Map, Value};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::client::{open_session, Client, Shared};
use crate::config::ClientConfig;
use crate::error::ClientError;
use crate::json::{error_value, job_id_of, obj, truthy};
use crate::subprocess::Subprocess;

/// Exit code of [`WorkOutcome::Stopped`]: stopped normally (`stop(0)`, [`Worker::shutdown`]).
pub const WORK_OK: i32 = 0;
/// Exit code of [`WorkOutcome::ConnectionLost`]: the connection to the API closed.
pub const WORK_CONNECTION_CLOSED: i32 = 91;
/// Exit code of [`WorkOutcome::PingTimeout`]: no ping from the server within `ping_timeout`.
pub const WORK_PING_TIMEOUT: i32 = 92;

/// Why [`Worker::work`] returned.
///
/// [`WorkOutcome::exit_code`] gives the exit status the Perl client's `work()` returns
/// (0, the stop code, 91, 92), for programs that exit with it.
///
/// ```
/// use jobcenter::WorkOutcome;
/// assert_eq!(WorkOutcome::Stopped.exit_code(), 0);
/// assert_eq!(WorkOutcome::StopRequested(5).exit_code(), 5);
/// assert_eq!(WorkOutcome::ConnectionLost.exit_code(), 91);
/// assert_eq!(WorkOutcome::PingTimeout.exit_code(), 92);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum WorkOutcome {
    /// Stopped normally: `stop(0)` or [`Worker::shutdown`].
    Stopped,
    /// Stopped with a non-zero code given to [`Worker::stop`] / [`StopHandle::stop`].
    StopRequested(i32),
    /// The connection to the API closed (and no auto-reconnect was configured).
    ConnectionLost,
    /// No ping from the server arrived within `ping_timeout`; the connection was closed.
    PingTimeout,
}

impl fmt::Display for WorkOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WorkOutcome::Stopped => write!(f, "stopped (0)"),
            WorkOutcome::StopRequested(c) => write!(f, "stopped with code {c}"),
            WorkOutcome::ConnectionLost => write!(f, "connection lost ({WORK_CONNECTION_CLOSED})"),
            WorkOutcome::PingTimeout => write!(f, "no ping from the server ({WORK_PING_TIMEOUT})"),
        }
    }
}

impl WorkOutcome {
    /// The outcome of `stop(code)`: [`WorkOutcome::Stopped`] for 0.
    pub fn from_stop_code(code: i32) -> Self {
        if code == WORK_OK {
            WorkOutcome::Stopped
        } else {
            WorkOutcome::StopRequested(code)
        }
    }

    /// The Perl client's exit code: 0, the stop code, 91 (connection lost) or 92 (ping
    /// timeout).
    pub fn exit_code(&self) -> i32 {
        match self {
            WorkOutcome::Stopped => WORK_OK,
            WorkOutcome::StopRequested(c) => *c,
            WorkOutcome::ConnectionLost => WORK_CONNECTION_CLOSED,
            WorkOutcome::PingTimeout => WORK_PING_TIMEOUT,
        }
    }
}

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
    Subprocess(Subprocess, Option<TypeCheck>),
}

/// The checks of a typed subprocess: inargs are decoded into the input type (and sent to
/// the child re-encoded), the child's output must decode into the output type.
#[derive(Clone, Copy)]
struct TypeCheck {
    inargs: fn(&str, Value) -> Result<Value, String>,
    outargs: fn(&str, Value) -> Result<Value, String>,
}

/// Decode a task's inargs into `I`; the error text names the action.
fn decode_inargs<I: DeserializeOwned>(action: &str, inargs: Value) -> Result<I, String> {
    serde_json::from_value(inargs).map_err(|e| format!("invalid inargs for {action}: {e}"))
}

/// Encode a handler's typed output as outargs.
fn encode_outargs<O: Serialize>(action: &str, out: O) -> Result<Value, String> {
    serde_json::to_value(out).map_err(|e| format!("cannot encode outargs of {action}: {e}"))
}

/// Inargs through `I` and back (the typed subprocess' input check).
fn roundtrip_inargs<I: DeserializeOwned + Serialize>(
    action: &str,
    inargs: Value,
) -> Result<Value, String> {
    encode_outargs(action, decode_inargs::<I>(action, inargs)?)
}

/// A child's output through `O` and back (the typed subprocess' output check).
fn roundtrip_outargs<O: DeserializeOwned + Serialize>(
    action: &str,
    out: Value,
) -> Result<Value, String> {
    let o: O = serde_json::from_value(out)
        .map_err(|e| format!("invalid outargs from the {action} subprocess: {e}"))?;
    encode_outargs(action, o)
}

/// An action to announce, with its handler. Built with [`Action::new`] and one of
/// [`Action::sync`], [`Action::run_async`] or [`Action::subprocess`] (handlers on
/// [`Task`] and JSON values), or typed with [`Action::typed`] (async),
/// [`Action::typed_sync`] or [`Action::typed_subprocess`].
///
/// Typed handlers take the task's inargs decoded into their input type and return a value
/// that is encoded as the outargs; inargs that do not decode fail the task with
/// `{"error": "invalid inargs for <action>: <serde's message>"}`, like a handler error.
///
/// ```
/// use jobcenter::Action;
/// use serde::{Deserialize, Serialize};
/// #[derive(Deserialize)]
/// struct AddIn { counter: i64, step: i64 }
/// #[derive(Serialize)]
/// struct AddOut { counter: i64 }
/// let add = Action::typed("add", |i: AddIn| async move {
///     Ok::<_, String>(AddOut { counter: i.counter + i.step })
/// })
/// .slots(2);
/// # let _ = add;
/// ```
///
/// The untyped form:
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
            Some(Handler::Subprocess(_, None)) => "subproc",
            Some(Handler::Subprocess(_, Some(_))) => "typed subproc",
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
        self.handler = Some(Handler::Subprocess(program.into(), None));
        self
    }

    /// A new action `name` with a typed async handler (see [`Action::run_typed`]).
    pub fn typed<I, O, E, F, Fut>(name: impl Into<String>, f: F) -> Self
    where
        I: DeserializeOwned + Send + 'static,
        O: Serialize + 'static,
        E: fmt::Display + 'static,
        F: Fn(I) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<O, E>> + Send + 'static,
    {
        Action::new(name).run_typed(f)
    }

    /// A new action `name` with a typed blocking handler (see [`Action::sync_typed`]).
    ///
    /// ```
    /// use jobcenter::Action;
    /// #[derive(serde::Deserialize)]
    /// struct Root { root: f64 }
    /// #[derive(serde::Serialize)]
    /// struct Square { square: f64 }
    /// let square = Action::typed_sync("square", |r: Root| {
    ///     Ok::<_, std::convert::Infallible>(Square { square: r.root * r.root })
    /// });
    /// # let _ = square;
    /// ```
    pub fn typed_sync<I, O, E, F>(name: impl Into<String>, f: F) -> Self
    where
        I: DeserializeOwned + 'static,
        O: Serialize + 'static,
        E: fmt::Display + 'static,
        F: Fn(I) -> Result<O, E> + Send + Sync + 'static,
    {
        Action::new(name).sync_typed(f)
    }

    /// A new action `name` run by a child process with typed input and output (see
    /// [`Action::subprocess_typed`]).
    ///
    /// ```
    /// use jobcenter::{Action, Subprocess};
    /// #[derive(serde::Serialize, serde::Deserialize)]
    /// struct Root { root: f64 }
    /// #[derive(serde::Serialize, serde::Deserialize)]
    /// struct Square { square: f64 }
    /// let square = Action::typed_subprocess::<Root, Square>("square", Subprocess::new("./square"));
    /// # let _ = square;
    /// ```
    pub fn typed_subprocess<I, O>(name: impl Into<String>, program: impl Into<Subprocess>) -> Self
    where
        I: DeserializeOwned + Serialize + 'static,
        O: DeserializeOwned + Serialize + 'static,
    {
        Action::new(name).subprocess_typed::<I, O>(program)
    }

    /// A typed async handler: the inargs are decoded into `I`, `Ok(o)` is encoded as the
    /// outargs (it must encode to a JSON object), `Err(e)` or a panic gives
    /// `{"error": "<e>"}`. Inargs that do not decode fail the task with
    /// `{"error": "invalid inargs for <action>: ..."}` without calling `f`.
    pub fn run_typed<I, O, E, F, Fut>(mut self, f: F) -> Self
    where
        I: DeserializeOwned + Send + 'static,
        O: Serialize + 'static,
        E: fmt::Display + 'static,
        F: Fn(I) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<O, E>> + Send + 'static,
    {
        let f = Arc::new(f);
        self.handler = Some(Handler::Async(Arc::new(move |t: Task| -> AsyncFut {
            match decode_inargs::<I>(&t.action, t.inargs) {
                Ok(input) => {
                    let fut = f(input);
                    let action = t.action;
                    Box::pin(async move {
                        match fut.await {
                            Ok(o) => encode_outargs(&action, o),
                            Err(e) => Err(e.to_string()),
                        }
                    })
                }
                Err(e) => Box::pin(std::future::ready(Err(e))),
            }
        })));
        self
    }

    /// A typed blocking handler (runs on tokio's blocking pool, like [`Action::sync`]);
    /// decoding and errors as for [`Action::run_typed`].
    pub fn sync_typed<I, O, E, F>(mut self, f: F) -> Self
    where
        I: DeserializeOwned + 'static,
        O: Serialize + 'static,
        E: fmt::Display + 'static,
        F: Fn(I) -> Result<O, E> + Send + Sync + 'static,
    {
        self.handler = Some(Handler::Sync(Arc::new(move |t: Task| {
            let input = decode_inargs::<I>(&t.action, t.inargs)?;
            match f(input) {
                Ok(o) => encode_outargs(&t.action, o),
                Err(e) => Err(e.to_string()),
            }
        })));
        self
    }

    /// Run each task in a child process (see [`Subprocess`]) with typed input and output:
    /// the inargs must decode into `I` (the child gets them re-encoded from `I`, so serde
    /// defaults are filled in), and the child's output must decode into `O`; otherwise the
    /// task fails with `{"error": "invalid inargs for ..."}` or
    /// `{"error": "invalid outargs from the <action> subprocess: ..."}`.
    pub fn subprocess_typed<I, O>(mut self, program: impl Into<Subprocess>) -> Self
    where
        I: DeserializeOwned + Serialize + 'static,
        O: DeserializeOwned + Serialize + 'static,
    {
        let check = TypeCheck {
            inargs: roundtrip_inargs::<I>,
            outargs: roundtrip_outargs::<O>,
        };
        self.handler = Some(Handler::Subprocess(program.into(), Some(check)));
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
    /// The caller of `announce` gave up (its future was dropped) while the call was
    /// outstanding: once the server has answered, an accepted announce is withdrawn and the
    /// slot removed; then the receiver sees `true`. A new `announce` of the name waits.
    Undoing(Arc<Action>, watch::Receiver<bool>),
}

impl Slot {
    fn action(&self) -> &Arc<Action> {
        match self {
            Slot::Pending(a) | Slot::Active(a) | Slot::Undoing(a, _) => a,
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
        Some(Handler::Subprocess(sp, None)) => sp.run(&task).await,
        Some(Handler::Subprocess(sp, Some(check))) => {
            match (check.inargs)(&task.action, task.inargs.clone()) {
                Ok(inargs) => {
                    let typed = Task {
                        inargs,
                        ..task.clone()
                    };
                    match sp.run(&typed).await {
                        Ok(out) => (check.outargs)(&task.action, out),
                        Err(e) => Err(e),
                    }
                }
                Err(e) => Err(e),
            }
        }
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
/// [`Worker::work`] only waits for the end: `stop(code)`, connection loss or the ping
/// watchdog (see [`WorkOutcome`]). With [`Worker::set_reconnect`], `work()` instead
/// reconnects with capped exponential backoff, recreates slotgroups and re-announces every
/// action. The connection is a [`Client`] ([`Worker::client`]) for everything else.
///
/// ```no_run
/// # async fn demo() -> Result<(), jobcenter::ClientError> {
/// use jobcenter::{Action, ClientConfig, Worker};
/// #[derive(serde::Deserialize)]
/// struct Root { root: f64 }
/// #[derive(serde::Serialize)]
/// struct Square { square: f64 }
/// let worker = Worker::connect(ClientConfig::new("theEmployee", "doesThings")).await?;
/// worker
///     .announce(Action::typed("square", |r: Root| async move {
///         Ok::<_, String>(Square { square: r.root * r.root })
///     }))
///     .await?;
/// let outcome = worker.work().await;
/// std::process::exit(outcome.exit_code());
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct Worker {
    client: Client,
    reconnect: Arc<Mutex<Option<Reconnect>>>,
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

/// Turn a spawned task's end into its result (a panic there is a bug; report it).
fn joined<T>(r: Result<Result<T, ClientError>, tokio::task::JoinError>) -> Result<T, ClientError> {
    match r {
        Ok(r) => r,
        Err(e) => Err(ClientError::Protocol(format!(
            "internal task failed: {}",
            panic_text(e)
        ))),
    }
}

/// The `announce` params for `action`.
fn announce_params(cfg: &ClientConfig, action: &Action) -> Value {
    let workername = action
        .workername
        .clone()
        .unwrap_or_else(|| cfg.effective_workername());
    let mut params = Map::new();
    params.insert("workername".into(), json!(workername));
    params.insert("actionname".into(), json!(action.name));
    params.insert("slotgroup".into(), json!(action.slotgroup));
    params.insert("slots".into(), json!(action.slots));
    if let Some(f) = &action.filter {
        if truthy(Some(f)) {
            params.insert("filter".into(), f.clone());
        }
    }
    Value::Object(params)
}

/// Send `announce` and interpret the answer.
async fn announce_call(peer: &Peer, params: Value) -> Result<(), ClientError> {
    let v = peer.call("announce", params).await?;
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

/// Owns an outstanding `announce` call. If the future of [`Worker::announce`] is dropped
/// before the answer was handled, `Drop` hands the call to a task that waits for the
/// answer, withdraws an accepted announce and removes the slot: a cancelled announce
/// leaves nothing registered, on either side.
struct AnnounceGuard {
    shared: Arc<Shared>,
    peer: Peer,
    name: String,
    call: Option<JoinHandle<Result<(), ClientError>>>,
}

impl AnnounceGuard {
    /// Wait for the call's answer; afterwards the guard does nothing on drop.
    async fn answer(&mut self) -> Result<(), ClientError> {
        let r = match self.call.as_mut() {
            Some(call) => joined(call.await),
            None => Err(ClientError::Closed),
        };
        self.call = None;
        r
    }
}

impl Drop for AnnounceGuard {
    fn drop(&mut self) {
        let Some(call) = self.call.take() else {
            return;
        };
        let name = std::mem::take(&mut self.name);
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            // No runtime left (shutting down): the connection goes with it.
            call.abort();
            self.shared.worker.actions.lock().remove(&name);
            return;
        };
        let shared = self.shared.clone();
        let (done_tx, done_rx) = watch::channel(false);
        {
            let mut actions = shared.worker.actions.lock();
            if let Some(Slot::Pending(a)) = actions.get(&name) {
                let a = a.clone();
                actions.insert(name.clone(), Slot::Undoing(a, done_rx));
            }
        }
        let peer = self.peer.clone();
        rt.spawn(async move {
            if let Ok(Ok(())) = call.await {
                // The server accepted it: take it back.
                if let Err(e) = peer
                    .call("withdraw", obj([("actionname", json!(name))]))
                    .await
                {
                    tracing::debug!(action = %name, "withdrawing a cancelled announce: {e}");
                }
            }
            {
                let mut actions = shared.worker.actions.lock();
                if matches!(actions.get(&name), Some(Slot::Undoing(..))) {
                    actions.remove(&name);
                }
            }
            done_tx.send_replace(true);
        });
    }
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

    /// The underlying client (the same connection): create jobs, query, create slotgroups,
    /// close.
    pub fn client(&self) -> &Client {
        &self.client
    }

    fn shared(&self) -> &Arc<Shared> {
        self.client.shared()
    }

    /// Enable (or with `None` disable) auto-reconnect in [`Worker::work`].
    pub fn set_reconnect(&self, r: Option<Reconnect>) {
        *self.reconnect.lock() = r;
    }

    /// Announce `action` and start serving its tasks. Errors:
    /// [`ClientError::AlreadyAnnounced`] (local, nothing sent), [`ClientError::Announce`]
    /// with the server's message on `[false, msg]`, [`ClientError::Rpc`] on a JSON-RPC error.
    ///
    /// Cancel safe: if the returned future is dropped before it finished, the announce is
    /// undone (withdrawn on the server once it answered, removed here), and announcing the
    /// same name again waits for that and then succeeds.
    pub async fn announce(&self, action: Action) -> Result<(), ClientError> {
        if action.name.is_empty() {
            return Err(ClientError::Invalid("no actionname?".into()));
        }
        if action.handler.is_none() {
            return Err(ClientError::Invalid("no cb?".into()));
        }
        let name = action.name.clone();
        let action = Arc::new(action);
        let shared = self.shared().clone();
        loop {
            let mut undoing = {
                let mut actions = shared.worker.actions.lock();
                match actions.get(&name) {
                    Some(Slot::Undoing(_, rx)) => rx.clone(),
                    Some(_) => return Err(ClientError::AlreadyAnnounced(name)),
                    None => {
                        // Registered before sending: a task_ready may follow the result at once.
                        actions.insert(name.clone(), Slot::Pending(action.clone()));
                        break;
                    }
                }
            };
            // A cancelled announce of this name is being undone; wait for it (an error
            // means it finished too).
            let _ = undoing.wait_for(|done| *done).await;
        }
        let peer = self.client.peer();
        let params = announce_params(self.client.config(), &action);
        let call_peer = peer.clone();
        let mut guard = AnnounceGuard {
            shared: shared.clone(),
            peer,
            name: name.clone(),
            call: Some(tokio::spawn(async move {
                announce_call(&call_peer, params).await
            })),
        };
        let res = guard.answer().await;
        let mut actions = shared.worker.actions.lock();
        let ours = matches!(actions.get(&name), Some(Slot::Pending(a)) if Arc::ptr_eq(a, &action));
        match res {
            Ok(()) => {
                if ours {
                    actions.insert(name, Slot::Active(action));
                }
                Ok(())
            }
            Err(e) => {
                if ours {
                    actions.remove(&name);
                }
                Err(e)
            }
        }
    }

    /// Withdraw an announced action: no new tasks are offered; running ones finish.
    ///
    /// Cancel safe: once sent, the withdraw completes (on the server and here) even if the
    /// returned future is dropped.
    pub async fn withdraw(&self, name: &str) -> Result<(), ClientError> {
        if !matches!(
            self.shared().worker.actions.lock().get(name),
            Some(Slot::Active(_) | Slot::Pending(_))
        ) {
            return Err(ClientError::Invalid(format!(
                "actionname {name} not announced?"
            )));
        }
        let shared = self.shared().clone();
        let peer = self.client.peer();
        let name = name.to_string();
        joined(
            tokio::spawn(async move {
                peer.call("withdraw", obj([("actionname", json!(name))]))
                    .await?;
                shared.worker.actions.lock().remove(&name);
                Ok(())
            })
            .await,
        )
    }

    /// Names of the announced actions (including announces still waiting for an answer).
    pub fn actions(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .shared()
            .worker
            .actions
            .lock()
            .iter()
            .filter(|(_, s)| !matches!(s, Slot::Undoing(..)))
            .map(|(k, _)| k.clone())
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

    /// Make a running [`Worker::work`] return `code` ([`WorkOutcome::Stopped`] for 0,
    /// [`WorkOutcome::StopRequested`] otherwise).
    pub fn stop(&self, code: i32) {
        self.stop_handle().stop(code);
    }

    /// Run until stopped: [`WorkOutcome::Stopped`] / [`WorkOutcome::StopRequested`] after
    /// `stop(code)`, [`WorkOutcome::ConnectionLost`] when the connection closes, or
    /// [`WorkOutcome::PingTimeout`] when no server ping arrived within `ping_timeout`
    /// (checked every `ping_timeout`; zero disables; the connection is closed then);
    /// [`WorkOutcome::exit_code`] maps these to the Perl client's 0 / code / 91 / 92.
    /// Handlers serve tasks as soon as an action is announced, so a `stop` issued before
    /// `work()` starts is kept: `work()` then returns at once (and clears it). Pure clients
    /// (nobody pings them) should set `ping_timeout` to zero.
    ///
    /// Cancel safe: dropping the future only stops watching; a reconnect that has started
    /// (new session, slotgroups, re-announces) completes in the background.
    pub async fn work(&self) -> WorkOutcome {
        let shared = self.shared().clone();
        // A stop issued before work() started (e.g. by a handler) ends it at once.
        let mut stop_rx = shared.worker.stop.subscribe();
        let pending = *stop_rx.borrow_and_update();
        if let Some(code) = pending {
            shared.worker.stop.send_replace(None);
            return WorkOutcome::from_stop_code(code);
        }
        let pt = self.client.config().ping_timeout;
        loop {
            let peer = self.client.peer();
            let outcome = match self.watch(&peer, &mut stop_rx, pt).await {
                End::Stop(c) => return WorkOutcome::from_stop_code(c),
                End::Closed => WorkOutcome::ConnectionLost,
                End::PingTimeout => WorkOutcome::PingTimeout,
            };
            let policy = *self.reconnect.lock();
            let Some(policy) = policy else {
                return outcome;
            };
            tracing::warn!(?outcome, "connection lost; reconnecting");
            if let Some(c) = self.reconnect_loop(policy, &mut stop_rx).await {
                return WorkOutcome::from_stop_code(c);
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
            // A session, once opened, is installed and re-announced even if we are dropped.
            let w = self.clone();
            match joined(tokio::spawn(async move { w.reconnect_once().await }).await) {
                Ok(()) => {
                    tracing::info!("reconnected");
                    return None;
                }
                Err(e) => tracing::warn!("reconnect failed: {e}"),
            }
            delay = (delay * 2).min(policy.max);
        }
    }

    /// Open a new session, install it, recreate slotgroups and re-announce every action.
    async fn reconnect_once(&self) -> Result<(), ClientError> {
        let peer = open_session(self.shared()).await?;
        *self.client.inner.peer.write() = peer.clone();
        *self.shared().worker.last_ping.lock() = Some(Instant::now());
        self.reannounce(&peer).await;
        Ok(())
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
            .filter(|s| !matches!(s, Slot::Undoing(..)))
            .map(|s| s.action().clone())
            .collect();
        for a in actions {
            let params = announce_params(self.client.config(), &a);
            if let Err(e) = announce_call(peer, params).await {
                tracing::warn!("re-announcing {}: {e}", a.name);
            }
        }
    }

    /// Graceful shutdown (beyond the Perl client): stop claiming new tasks, withdraw every
    /// action, wait until the running tasks have reported (at most `deadline`), then stop
    /// `work()` with 0 and close the connection. Returns the number of tasks still running
    /// at the deadline (0 = fully drained).
    ///
    /// Cancel safe: once started, the shutdown completes even if the future is dropped.
    pub async fn shutdown(&self, deadline: Duration) -> usize {
        let w = self.clone();
        match tokio::spawn(async move { w.shutdown_now(deadline).await }).await {
            Ok(left) => left,
            Err(e) => {
                tracing::error!("shutdown failed: {}", panic_text(e));
                self.in_flight()
            }
        }
    }

    async fn shutdown_now(&self, deadline: Duration) -> usize {
        let shared = self.shared().clone();
        let end = tokio::time::Instant::now() + deadline;
        shared.worker.draining.store(true, Ordering::SeqCst);
        for name in self.actions() {
            let left = end.saturating_duration_since(tokio::time::Instant::now());
            match self
                .client
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
        self.client.close();
        left
    }
}
