//! One connection's session: the handshake (greetings, version, hello), the handlers the
//! client offers the server (`greetings`, `job_done`, `ping`, `task_ready`) and the worker's
//! side of an offer (`task_ready` → `get_task` → run → `task_done`).

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use jobcenter_rpc::{CallError, HandlerFuture, Methods, Peer, PeerConfig, Reply};
use parking_lot::Mutex;
use serde_json::{json, Map, Value};
use tokio::sync::{oneshot, watch};

use crate::action::{execute, run_blocking, Action, Task};
use crate::config::ClientConfig;
use crate::error::ClientError;
use crate::jobs::JobTable;
use crate::json::{job_id_of, obj, truthy};
use crate::transport::{self, Stream};

/// The protocol version this client speaks (the `greetings` version it requires).
pub const API_VERSION: &str = "1.1";

/// State shared between the client handle and the connection's method handlers.
pub(crate) struct Shared {
    pub(crate) cfg: ClientConfig,
    pub(crate) jobs: Arc<Mutex<JobTable>>,
    greeting: Mutex<Option<oneshot::Sender<Value>>>,
    pub(crate) worker: WorkerShared,
}

impl Shared {
    pub(crate) fn new(cfg: ClientConfig) -> Self {
        Shared {
            cfg,
            jobs: Arc::new(Mutex::new(JobTable::default())),
            greeting: Mutex::new(None),
            worker: WorkerShared::default(),
        }
    }
}

/// Aborts a half-open connection unless disarmed (handshake failure or timeout).
struct AbortGuard(Option<Peer>);

impl Drop for AbortGuard {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            p.abort();
        }
    }
}

fn ready(v: Value) -> HandlerFuture {
    Box::pin(std::future::ready(Ok(Reply::new(v))))
}

/// The handlers a client offers the server: `greetings`, `job_done`, `ping`, `task_ready`.
fn client_methods(shared: &Arc<Shared>) -> Methods {
    let mut m = Methods::new();
    let s = shared.clone();
    m.notification("greetings", None, move |_peer, params| {
        if let Some(tx) = s.greeting.lock().take() {
            let _ = tx.send(Value::Object(params));
        } else {
            tracing::debug!("extra greetings ignored");
        }
        ready(Value::Null)
    });
    let s = shared.clone();
    m.notification("job_done", None, move |_peer, params| {
        match params.get("job_id").and_then(job_id_of) {
            Some(id) => {
                let outargs = params.get("outargs").cloned().unwrap_or(Value::Null);
                s.jobs.lock().job_done(id, outargs);
            }
            None => tracing::warn!(
                "job_done without a usable job_id: {:?}",
                params.get("job_id")
            ),
        }
        ready(Value::Null)
    });
    let s = shared.clone();
    m.request("ping", None, move |_peer, _params| {
        s.worker.record_ping();
        ready(json!("pong!"))
    });
    let s = shared.clone();
    m.notification("task_ready", None, move |peer, params| {
        on_task_ready(s.clone(), peer, params);
        ready(Value::Null)
    });
    m
}

/// Open the connection and run the handshake (greetings, version check, hello), bounded
/// by `cfg.timeout`. The returned peer is authenticated.
pub(crate) async fn open_session(shared: &Arc<Shared>) -> Result<Peer, ClientError> {
    match tokio::time::timeout(shared.cfg.timeout, handshake(shared)).await {
        Ok(r) => r,
        Err(_) => {
            tracing::warn!("timeout waiting for greeting");
            Err(ClientError::HandshakeTimeout)
        }
    }
}

async fn handshake(shared: &Arc<Shared>) -> Result<Peer, ClientError> {
    let cfg = &shared.cfg;
    let stream = transport::open(cfg).await?;
    let (tx, rx) = oneshot::channel();
    *shared.greeting.lock() = Some(tx);
    let methods = Arc::new(client_methods(shared));
    let pcfg = PeerConfig::new(
        cfg.max_frame,
        format!("jobcenter client {}:{}", cfg.address, cfg.port),
    );
    let peer = match stream {
        Stream::Tcp(s) => Peer::spawn(s, methods, pcfg),
        Stream::Tls(s) => Peer::spawn(s, methods, pcfg),
    };
    let mut guard = AbortGuard(Some(peer.clone()));
    let greeting = tokio::select! {
        r = rx => r.map_err(|_| ClientError::Closed)?,
        _ = peer.closed() => return Err(ClientError::Closed),
    };
    match greeting.get("version") {
        Some(Value::String(v)) if v == API_VERSION => {}
        other => {
            let v = match other {
                Some(Value::String(s)) => s.clone(),
                Some(v) => v.to_string(),
                None => "(none)".to_string(),
            };
            return Err(ClientError::WrongVersion(v));
        }
    }
    let hello = peer
        .call(
            "hello",
            obj([
                ("who", json!(cfg.who)),
                ("method", json!(cfg.method)),
                ("token", json!(cfg.token)),
            ]),
        )
        .await;
    match hello {
        Err(CallError::Rpc { code, message }) => Err(ClientError::HelloError { code, message }),
        Err(e) => Err(e.into()),
        Ok(Value::Array(a)) if !a.is_empty() => {
            let msg = match a.get(1) {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Null) | None => String::new(),
                Some(v) => v.to_string(),
            };
            if truthy(a.first()) {
                tracing::debug!("hello: {msg}");
                guard.0 = None;
                Ok(peer)
            } else {
                Err(ClientError::Auth(msg))
            }
        }
        Ok(other) => Err(ClientError::Protocol(format!(
            "no results from hello? ({other})"
        ))),
    }
}

/// Worker-side state shared with the connection's handlers.
pub(crate) struct WorkerShared {
    pub(crate) actions: Mutex<HashMap<String, Slot>>,
    pub(crate) slotgroups: Mutex<Vec<(String, Option<u32>)>>,
    pub(crate) last_ping: Mutex<Option<Instant>>,
    pub(crate) inflight: watch::Sender<usize>,
    pub(crate) draining: AtomicBool,
    pub(crate) stop: watch::Sender<Option<i32>>,
}

#[derive(Clone)]
pub(crate) enum Slot {
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
    pub(crate) fn action(&self) -> &Arc<Action> {
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
pub(crate) struct InFlight(Arc<Shared>);

impl InFlight {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
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

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared")
            .field("who", &self.cfg.who)
            .finish()
    }
}
