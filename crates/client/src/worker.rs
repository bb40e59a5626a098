//! The worker runtime: announce actions, serve `task_ready` → `get_task` → run → `task_done`.

use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jobcenter_rpc::{CallError, Peer};
use parking_lot::Mutex;
use serde_json::{json, Map, Value};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::action::{panic_text, Action};
use crate::client::Client;
use crate::config::ClientConfig;
use crate::error::ClientError;
use crate::json::{obj, truthy};
use crate::session::{open_session, Shared, Slot};

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
    ///
    /// ```no_run
    /// # async fn demo(worker: jobcenter::Worker) -> Result<(), jobcenter::ClientError> {
    /// // Keep working across server restarts: reconnect with backoff, re-announce.
    /// worker.set_reconnect(Some(jobcenter::Reconnect::default()));
    /// # Ok(()) }
    /// ```
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
    ///
    /// ```no_run
    /// # async fn demo(worker: jobcenter::Worker) -> Result<(), jobcenter::ClientError> {
    /// use jobcenter::{Action, Task};
    /// use serde_json::json;
    /// let add = Action::new("add").slots(4).sync(|t: Task| {
    ///     let n = t.inargs["counter"].as_i64().ok_or("no counter")?;
    ///     Ok::<_, String>(json!({"counter": n + 1}))
    /// });
    /// worker.announce(add).await?;
    /// # Ok(()) }
    /// ```
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
    ///
    /// ```no_run
    /// # async fn demo(worker: jobcenter::Worker) -> Result<(), jobcenter::ClientError> {
    /// worker.withdraw("add").await?; // tasks of `add` already running still finish
    /// # Ok(()) }
    /// ```
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
    ///
    /// ```no_run
    /// # async fn demo(worker: jobcenter::Worker) -> Result<(), jobcenter::ClientError> {
    /// let stop = worker.stop_handle();
    /// tokio::spawn(async move {
    ///     let _ = tokio::signal::ctrl_c().await;
    ///     stop.stop(0); // work() returns WorkOutcome::Stopped
    /// });
    /// let outcome = worker.work().await;
    /// std::process::exit(outcome.exit_code());
    /// # Ok(()) }
    /// ```
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
    ///
    /// ```no_run
    /// # async fn demo(worker: jobcenter::Worker) -> Result<(), jobcenter::ClientError> {
    /// use jobcenter::WorkOutcome;
    /// match worker.work().await {
    ///     WorkOutcome::Stopped => println!("stopped"),
    ///     WorkOutcome::ConnectionLost => eprintln!("lost the server"),
    ///     other => eprintln!("ended: {other}"),
    /// }
    /// # Ok(()) }
    /// ```
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
