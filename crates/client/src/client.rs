//! The async client: connect and authenticate, create jobs and wait for them, query the API.

use std::sync::Arc;
use std::time::Duration;

use jobcenter_rpc::{CallError, Peer};
use parking_lot::RwLock;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::config::ClientConfig;
use crate::error::ClientError;
use crate::jobs::{CreateGuard, Filter, JobCompletion, JobHandle, JobResult, JobStatus};
use crate::json::{error_value, job_id_of, obj, seconds, truthy, wrap};
use crate::session::{open_session, Shared};

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
    ///
    /// ```no_run
    /// # async fn demo(client: jobcenter::Client) -> Result<(), jobcenter::ClientError> {
    /// use jobcenter::JobStatus;
    /// match client.get_job_status(42).await? {
    ///     JobStatus::Running => println!("still running"),
    ///     JobStatus::Finished(outargs) => println!("finished: {outargs}"),
    ///     other => println!("{other:?}"),
    /// }
    /// # Ok(()) }
    /// ```
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
    ///
    /// ```no_run
    /// # async fn demo(client: jobcenter::Client) -> Result<(), jobcenter::ClientError> {
    /// let (status, completion) = client.get_job_status_notify(42).await?;
    /// if let Some(done) = completion {
    ///     // The job was running: wait for its result.
    ///     println!("{status:?}, then {}", done.wait().await?);
    /// }
    /// # Ok(()) }
    /// ```
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
    ///
    /// ```no_run
    /// # async fn demo(client: jobcenter::Client) -> Result<(), jobcenter::ClientError> {
    /// use serde_json::json;
    /// let ids = client.find_jobs(json!({"customer": "acme"})).await?;
    /// println!("{} running jobs for acme", ids.len());
    /// # Ok(()) }
    /// ```
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
    ///
    /// ```no_run
    /// # async fn demo(client: jobcenter::Client) -> Result<(), jobcenter::ClientError> {
    /// match client.check_if_lock_exists("customer", "acme").await? {
    ///     Some(true) => println!("held"),
    ///     Some(false) => println!("free"),
    ///     None => println!("no such lock type"),
    /// }
    /// # Ok(()) }
    /// ```
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
    ///
    /// ```no_run
    /// # async fn demo(client: jobcenter::Client) -> Result<(), jobcenter::ClientError> {
    /// // Connected as `apimeister`:
    /// let stats = client.get_api_status("stats").await?;
    /// println!("{} workers connected", stats["workers"]);
    /// # Ok(()) }
    /// ```
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
    ///
    /// ```no_run
    /// # async fn demo(client: jobcenter::Client) -> Result<(), jobcenter::ClientError> {
    /// use std::time::Duration;
    /// if !client.ping_timeout(Duration::from_secs(2)).await {
    ///     eprintln!("server gone; the connection is closed");
    /// }
    /// # Ok(()) }
    /// ```
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
    ///
    /// ```no_run
    /// # async fn demo(client: jobcenter::Client) -> Result<(), jobcenter::ClientError> {
    /// use jobcenter::{Action, Task};
    /// use serde_json::json;
    /// // At most 4 tasks at once over all actions announced into the group.
    /// client.create_slotgroup("db", Some(4)).await?;
    /// let worker = client.worker();
    /// let load = Action::new("load").slotgroup("db").sync(|_t: Task| Ok::<_, String>(json!({"ok": 1})));
    /// worker.announce(load).await?;
    /// # Ok(()) }
    /// ```
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
