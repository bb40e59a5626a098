//! The async client: connect and authenticate, create jobs and wait for them, query the API.

use std::sync::Arc;
use std::time::Duration;

use jobcenter_rpc::{CallError, HandlerFuture, Methods, Peer, PeerConfig, Reply};
use parking_lot::{Mutex, RwLock};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Map, Value};
use tokio::sync::oneshot;

use crate::config::ClientConfig;
use crate::error::ClientError;
use crate::jobs::{CreateGuard, Filter, JobCompletion, JobHandle, JobResult, JobStatus, JobTable};
use crate::json::{error_value, job_id_of, obj, seconds, truthy, wrap};
use crate::transport::{self, Stream};
use crate::worker::WorkerShared;

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
        crate::worker::on_task_ready(s.clone(), peer, params);
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

pub(crate) struct ClientInner {
    pub(crate) shared: Arc<Shared>,
    pub(crate) peer: RwLock<Peer>,
}

impl Drop for ClientInner {
    fn drop(&mut self) {
        self.peer.read().close();
    }
}

/// A connected, authenticated JobCenter client (cheap to clone; all clones share the
/// connection). The connection is closed when the last clone is dropped, or by
/// [`Client::close`].
///
/// ```no_run
/// # async fn demo() -> Result<(), jobcenter::ClientError> {
/// use jobcenter::{Client, ClientConfig};
/// use serde_json::json;
/// let client = Client::connect(ClientConfig::new("theCustomer", "wantsThings")).await?;
/// let res = client.call("calladd", json!({"input": 12})).await?;
/// println!("job {:?}: {}", res.job_id, res.outargs);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Client {
    pub(crate) inner: Arc<ClientInner>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("who", &self.inner.shared.cfg.who)
            .field("peer", &*self.inner.peer.read())
            .finish()
    }
}

impl Client {
    /// Connect, wait for `greetings` (version must be exactly `1.1`), authenticate with
    /// `hello`. The whole handshake is bounded by `cfg.timeout`.
    ///
    /// Errors: [`ClientError::MissingToken`] / [`ClientError::MissingWho`] before anything
    /// is sent; [`ClientError::WrongVersion`], [`ClientError::Auth`] (`[false,msg]`),
    /// [`ClientError::HelloError`], [`ClientError::HandshakeTimeout`], connect/TLS errors.
    /// The connection is closed on every failure.
    pub async fn connect(cfg: ClientConfig) -> Result<Client, ClientError> {
        cfg.validate()?;
        let shared = Arc::new(Shared::new(cfg));
        let peer = open_session(&shared).await?;
        Ok(Client {
            inner: Arc::new(ClientInner {
                shared,
                peer: RwLock::new(peer),
            }),
        })
    }

    /// The configuration this client was connected with.
    pub fn config(&self) -> &ClientConfig {
        &self.inner.shared.cfg
    }

    /// The current connection.
    pub(crate) fn peer(&self) -> Peer {
        self.inner.peer.read().clone()
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.inner.shared
    }

    /// Create a job of workflow `wfname` with `inargs` and wait for its result (the Perl
    /// `call`). A refused job gives `Ok` with `job_id: None` and `{"error": msg}` outargs.
    pub async fn call(&self, wfname: &str, inargs: Value) -> Result<JobResult, ClientError> {
        self.job(wfname).inargs(inargs).call().await
    }

    /// Like [`Client::call`] with typed inargs and outargs.
    ///
    /// A job that gives no result is an error: [`ClientError::NotCreated`] (refused),
    /// [`ClientError::JobFailed`] (with the job's `error` object) or
    /// [`ClientError::JobTimeout`]; outargs that do not match `O` give
    /// [`ClientError::Json`] (see [`JobResult::into_result`]).
    ///
    /// ```no_run
    /// # async fn demo(client: jobcenter::Client) -> Result<(), jobcenter::ClientError> {
    /// #[derive(serde::Serialize)]
    /// struct In { input: i64 }
    /// #[derive(serde::Deserialize)]
    /// struct Out { output: i64 }
    /// let out: Out = client.call_typed("calladd", &In { input: 12 }).await?;
    /// assert_eq!(out.output, 15);
    /// # Ok(()) }
    /// ```
    pub async fn call_typed<I: Serialize, O: DeserializeOwned>(
        &self,
        wfname: &str,
        inargs: &I,
    ) -> Result<O, ClientError> {
        let res = self.call(wfname, serde_json::to_value(inargs)?).await?;
        Ok(serde_json::from_value(res.into_result()?)?)
    }

    /// Start building a job request with all `create_job` options.
    pub fn job(&self, wfname: &str) -> JobRequest {
        JobRequest {
            client: self.clone(),
            wfname: wfname.to_string(),
            inargs: Value::Object(Map::new()),
            vtag: None,
            timeout: None,
            clenv: None,
            reqauth: None,
        }
    }

    async fn submit_job(&self, req: JobRequest) -> Result<JobHandle, ClientError> {
        if req.wfname.is_empty() {
            return Err(ClientError::Invalid("no workflowname?".into()));
        }
        if !req.inargs.is_object() {
            return Err(ClientError::Invalid("inargs should be a hashref".into()));
        }
        let mut params = Map::new();
        params.insert("wfname".into(), json!(req.wfname));
        params.insert("inargs".into(), req.inargs);
        params.insert("vtag".into(), req.vtag.map_or(Value::Null, Value::String));
        let timeout = req
            .timeout
            .unwrap_or_else(|| self.config().default_job_timeout());
        params.insert("timeout".into(), seconds(timeout));
        if let Some(c) = req.clenv {
            if !c.is_object() {
                return Err(ClientError::Invalid("clenv should be a hashref".into()));
            }
            params.insert("clenv".into(), c);
        }
        if let Some(r) = req.reqauth {
            if !r.is_object() {
                return Err(ClientError::Invalid("reqauth should be a hashref".into()));
            }
            params.insert("reqauth".into(), r);
        }
        let peer = self.peer();
        let table = self.shared().jobs.clone();
        let _guard = CreateGuard::new(table.clone());
        let res = peer.call("create_job", Value::Object(params)).await;
        let v = match res {
            Err(CallError::Rpc { code, message }) => {
                return Ok(JobHandle::refused(
                    None,
                    error_value(format!("{message} ({code})")),
                ))
            }
            Err(e) => return Err(e.into()),
            Ok(v) => v,
        };
        let (id, msg) = match &v {
            Value::Array(a) => (a.first().cloned(), a.get(1).cloned()),
            _ => (None, None),
        };
        if truthy(msg.as_ref()) {
            let msg = msg.unwrap_or(Value::Null);
            return Ok(JobHandle::refused(
                id.as_ref().and_then(job_id_of),
                wrap(msg),
            ));
        }
        let Some(job_id) = id.as_ref().and_then(job_id_of) else {
            return Ok(JobHandle::refused(
                None,
                error_value(format!("unexpected create_job result {v}")),
            ));
        };
        let created = table.lock().created(job_id);
        let completion = match created {
            Ok(outargs) => JobCompletion::ready(job_id, outargs),
            Err((wid, rx)) => JobCompletion::waiting(job_id, wid, rx, &table, peer),
        };
        Ok(JobHandle::running(completion))
    }

    /// The status of job `job_id` (no notification).
    pub async fn get_job_status(&self, job_id: i64) -> Result<JobStatus, ClientError> {
        let v = self
            .peer()
            .call(
                "get_job_status",
                obj([("job_id", json!(job_id)), ("notify", json!(false))]),
            )
            .await?;
        parse_status(v)
    }

    /// The status of job `job_id`, plus (when it is still running) a completion that
    /// resolves once it finishes. The completion is registered *before* the request is sent,
    /// so a `job_done` racing the status answer is never lost (§7.6), and it is delivered at
    /// most once.
    pub async fn get_job_status_notify(
        &self,
        job_id: i64,
    ) -> Result<(JobStatus, Option<JobCompletion>), ClientError> {
        let peer = self.peer();
        let table = self.shared().jobs.clone();
        let (wid, rx) = table.lock().register(job_id);
        let completion = JobCompletion::waiting(job_id, wid, rx, &table, peer.clone());
        let v = peer
            .call(
                "get_job_status",
                obj([("job_id", json!(job_id)), ("notify", json!(true))]),
            )
            .await?;
        // On any other outcome dropping `completion` unregisters it.
        let status = parse_status(v)?;
        match status {
            JobStatus::Running => Ok((status, Some(completion))),
            _ => Ok((status, None)),
        }
    }

    /// Ids of live jobs whose inargs contain `filter` (a JSON object, or its JSON text).
    /// The filter is always sent as JSON text. A backend error (`[null, text]`) becomes
    /// [`ClientError::Backend`]. Ids arriving as strings are accepted.
    pub async fn find_jobs(&self, filter: impl Into<Filter>) -> Result<Vec<i64>, ClientError> {
        let text = filter.into().to_text();
        if text.is_empty() {
            return Err(ClientError::Invalid("no filter?".into()));
        }
        let v = self
            .peer()
            .call("find_jobs", obj([("filter", json!(text))]))
            .await?;
        let Value::Array(items) = v else {
            return Err(ClientError::Protocol(format!("find_jobs returned {v}")));
        };
        let mut ids = Vec::with_capacity(items.len());
        for item in &items {
            match job_id_of(item) {
                Some(id) => ids.push(id),
                None => {
                    // `[null, "<error text>"]`: report the first text element.
                    let text = items
                        .iter()
                        .find_map(|i| {
                            i.as_str()
                                .filter(|s| job_id_of(i).is_none() && !s.is_empty())
                        })
                        .map(str::to_string)
                        .unwrap_or_else(|| Value::Array(items.clone()).to_string());
                    return Err(ClientError::Backend(text));
                }
            }
        }
        Ok(ids)
    }

    /// Whether a lock exists: `Some(true)` held, `Some(false)` free, `None` unknown locktype.
    /// Bounded by the client `timeout` (the reference server may never answer).
    pub async fn check_if_lock_exists(
        &self,
        locktype: &str,
        lockvalue: &str,
    ) -> Result<Option<bool>, ClientError> {
        if locktype.is_empty() {
            return Err(ClientError::Invalid("no locktype?".into()));
        }
        if lockvalue.is_empty() {
            return Err(ClientError::Invalid("no lockvalue?".into()));
        }
        let v = self
            .peer()
            .call_timeout(
                "check_if_lock_exists",
                obj([
                    ("locktype", json!(locktype)),
                    ("lockvalue", json!(lockvalue)),
                ]),
                self.config().timeout,
            )
            .await?;
        match v {
            Value::Bool(b) => Ok(Some(b)),
            Value::Null => Ok(None),
            other => Err(ClientError::Protocol(format!(
                "check_if_lock_exists returned {other}"
            ))),
        }
    }

    /// `get_api_status {what}` (needs `who` = `apimeister` on the server): the result value,
    /// an object for `stats`, text for the dumps.
    pub async fn get_api_status(&self, what: &str) -> Result<Value, ClientError> {
        if what.is_empty() {
            return Err(ClientError::Invalid("no what?".into()));
        }
        Ok(self
            .peer()
            .call("get_api_status", obj([("what", json!(what))]))
            .await?)
    }

    /// Send any request and return its result, for methods this library has no call of
    /// its own for (the admin methods of docs/PROTOCOL.md §18). `params` must be a JSON
    /// object.
    pub async fn request(&self, method: &str, params: Value) -> Result<Value, ClientError> {
        if !params.is_object() {
            return Err(ClientError::Invalid("params must be a JSON object".into()));
        }
        Ok(self.peer().call(method, params).await?)
    }

    /// Ping the server with the client `timeout`; see [`Client::ping_timeout`].
    pub async fn ping(&self) -> bool {
        self.ping_timeout(self.config().timeout).await
    }

    /// Ping the server: true if it answers a text containing `pong` within `t`. On any
    /// failure (error, other answer, timeout) the connection is closed and false returned.
    pub async fn ping_timeout(&self, t: Duration) -> bool {
        let peer = self.peer();
        match peer.call_timeout("ping", json!({}), t).await {
            Ok(Value::String(s)) if s.contains("pong") => true,
            other => {
                tracing::warn!("ping failed: {other:?}; closing");
                peer.close();
                false
            }
        }
    }

    /// Create a connection-wide slotgroup `name` with `slots` capacity (server default 1).
    /// Remembered so that an auto-reconnecting worker recreates it.
    ///
    /// Cancel safe: once sent, the request completes (and is remembered) even if the
    /// returned future is dropped.
    pub async fn create_slotgroup(
        &self,
        name: &str,
        slots: Option<u32>,
    ) -> Result<(), ClientError> {
        if name.is_empty() {
            return Err(ClientError::Invalid("no slotgroup name?".into()));
        }
        let peer = self.peer();
        let shared = self.shared().clone();
        let name = name.to_string();
        let done = tokio::spawn(async move {
            peer.call(
                "create_slotgroup",
                obj([("name", json!(name)), ("slots", json!(slots))]),
            )
            .await?;
            shared.worker.slotgroups.lock().push((name, slots));
            Ok::<(), ClientError>(())
        })
        .await;
        match done {
            Ok(r) => r,
            Err(e) => Err(ClientError::Protocol(format!("create_slotgroup task: {e}"))),
        }
    }

    /// True while the connection is open.
    pub fn is_connected(&self) -> bool {
        !self.peer().is_closed()
    }

    /// Close the connection gracefully (queued frames are flushed first). Pending calls and
    /// job waits fail with [`ClientError::Closed`].
    pub fn close(&self) {
        self.peer().close();
    }

    /// Resolves once the current connection is closed.
    pub async fn closed(&self) {
        self.peer().closed().await;
    }

    /// Number of jobs this client is waiting for (diagnostics).
    pub fn waiting_jobs(&self) -> usize {
        self.shared().jobs.lock().waiting()
    }
}

fn parse_status(v: Value) -> Result<JobStatus, ClientError> {
    let Value::Array(a) = &v else {
        return Err(ClientError::Protocol(format!(
            "get_job_status returned {v}"
        )));
    };
    let id = a.first().unwrap_or(&Value::Null);
    let out = a.get(1).unwrap_or(&Value::Null);
    match (id, out) {
        (Value::Null, Value::Null) => Ok(JobStatus::Running),
        (Value::Null, Value::Object(_)) => Ok(JobStatus::Unknown),
        (Value::Null, Value::String(s)) => Err(ClientError::Backend(s.clone())),
        (id, out) if job_id_of(id).is_some() && !out.is_null() => {
            Ok(JobStatus::Finished(out.clone()))
        }
        _ => Err(ClientError::Protocol(format!(
            "get_job_status returned {v}"
        ))),
    }
}

/// A `create_job` request under construction; see [`Client::job`].
///
/// ```no_run
/// # async fn demo(client: jobcenter::Client) -> Result<(), jobcenter::ClientError> {
/// use serde_json::json;
/// use std::time::Duration;
/// let handle = client
///     .job("calladd")
///     .inargs(json!({"input": 1}))
///     .vtag("beta")
///     .timeout(Duration::from_secs(30))
///     .clenv(json!({"x": 1}))
///     .submit()
///     .await?;
/// println!("created {:?}", handle.job_id());
/// let result = handle.await?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
#[must_use = "a job request does nothing until .call() or .submit() is awaited"]
pub struct JobRequest {
    client: Client,
    wfname: String,
    inargs: Value,
    vtag: Option<String>,
    timeout: Option<Duration>,
    clenv: Option<Value>,
    reqauth: Option<Value>,
}

impl JobRequest {
    /// The job's input arguments (a JSON object; default `{}`).
    pub fn inargs(mut self, inargs: Value) -> Self {
        self.inargs = inargs;
        self
    }

    /// Version tag(s), colon separated (sent as `vtag`; `null` when not set).
    pub fn vtag(mut self, vtag: impl Into<String>) -> Self {
        self.vtag = Some(vtag.into());
        self
    }

    /// Server-side wait timeout for this job (default 5 × client `timeout`; zero = forever).
    /// When it expires the outcome is `{"error":"timeout"}` (the job keeps running).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Client environment object, available to actions that declare `clenv`.
    pub fn clenv(mut self, clenv: Value) -> Self {
        self.clenv = Some(clenv);
        self
    }

    /// Per-request authentication data (only used by servers with such a plugin).
    pub fn reqauth(mut self, reqauth: Value) -> Self {
        self.reqauth = Some(reqauth);
        self
    }

    /// Create the job and return once the server answered `create_job` (the Perl
    /// `call_nb`). Await the handle for the result.
    ///
    /// Cancel safe: dropped before the answer, nothing is left waiting here; the job may
    /// still have been created on the server (then it runs to its end unobserved).
    pub async fn submit(self) -> Result<JobHandle, ClientError> {
        let client = self.client.clone();
        client.submit_job(self).await
    }

    /// Create the job and wait for its result.
    pub async fn call(self) -> Result<JobResult, ClientError> {
        self.submit().await?.outcome().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn c79_status_shapes() {
        assert_eq!(
            parse_status(json!([null, null])).ok(),
            Some(JobStatus::Running)
        );
        assert_eq!(
            parse_status(json!([6, {"output": 15}])).ok(),
            Some(JobStatus::Finished(json!({"output": 15})))
        );
        assert_eq!(
            parse_status(json!(["6", {"output": 15}])).ok(),
            Some(JobStatus::Finished(json!({"output": 15})))
        );
        assert_eq!(
            parse_status(json!([null, {"error": "no job 99"}])).ok(),
            Some(JobStatus::Unknown)
        );
        assert!(matches!(
            parse_status(json!([null, "ERROR:  out of range"])),
            Err(ClientError::Backend(_))
        ));
        assert!(matches!(
            parse_status(json!("x")),
            Err(ClientError::Protocol(_))
        ));
    }
}
