//! Job results, handles on running jobs, and the table that routes `job_done` to waiters.

use std::collections::{HashMap, VecDeque};
use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::sync::{Arc, Weak};

use jobcenter_rpc::Peer;
use parking_lot::Mutex;
use serde_json::{Map, Value};
use tokio::sync::oneshot;

use crate::error::{error_text, ClientError};
use crate::json::is_error_outargs;

/// The outcome of a job as the Perl client's `call` returns it: `(job_id, outargs)`.
///
/// `job_id` is `None` when the job was never created (the server refused `create_job`, or
/// answered with a JSON-RPC error); `outargs` is then `{"error": <message>}`.
#[derive(Debug, Clone, PartialEq)]
pub struct JobResult {
    /// The job id, when the job was created.
    pub job_id: Option<i64>,
    /// The final output arguments, or `{"error": ...}`.
    pub outargs: Value,
}

impl JobResult {
    /// True when the outargs are an error object (a top-level `error` member).
    pub fn is_error(&self) -> bool {
        is_error_outargs(&self.outargs)
    }

    /// The `error` member, if this is an error result.
    pub fn error(&self) -> Option<&Value> {
        self.outargs.as_object().and_then(|m| m.get("error"))
    }

    /// The outargs of a successful job, or the typed reason there are none:
    /// [`ClientError::NotCreated`] when the job was never created (`job_id` is `None`),
    /// [`ClientError::JobTimeout`] when the server-side wait expired (outargs exactly
    /// `{"error":"timeout"}`; the job may still be running), [`ClientError::JobFailed`]
    /// with the `error` member for any other error result.
    ///
    /// ```
    /// use jobcenter::{ClientError, JobResult};
    /// use serde_json::json;
    /// let ok = JobResult { job_id: Some(1), outargs: json!({"output": 15}) };
    /// assert_eq!(ok.into_result().unwrap(), json!({"output": 15}));
    /// let refused = JobResult { job_id: None, outargs: json!({"error": "no such workflow"}) };
    /// assert!(matches!(refused.into_result(), Err(ClientError::NotCreated { .. })));
    /// let late = JobResult { job_id: Some(2), outargs: json!({"error": "timeout"}) };
    /// assert!(matches!(late.into_result(), Err(ClientError::JobTimeout { job_id: 2 })));
    /// ```
    pub fn into_result(self) -> Result<Value, ClientError> {
        let Some(job_id) = self.job_id else {
            let message = match self.error() {
                Some(e) => error_text(e),
                None => self.outargs.to_string(),
            };
            return Err(ClientError::NotCreated { message });
        };
        if !self.is_error() {
            return Ok(self.outargs);
        }
        let error = match self.outargs {
            Value::Object(mut m) => m.remove("error").unwrap_or(Value::Null),
            other => other,
        };
        if error.as_str() == Some("timeout") {
            return Err(ClientError::JobTimeout { job_id });
        }
        Err(ClientError::JobFailed { job_id, error })
    }
}

/// What `get_job_status` found.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum JobStatus {
    /// The job exists and has not finished (`[null,null]`).
    Running,
    /// The job finished, successfully or not; its final outargs (`[J, outargs]`).
    Finished(Value),
    /// No such job (`[null, {"error":"no job J"}]`).
    Unknown,
}

/// A `find_jobs` filter: JSON text, or a JSON object that is sent as its JSON text.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    /// JSON text of an object, passed through unchanged.
    Text(String),
    /// A JSON value (normally an object), encoded to text before sending.
    Value(Value),
}

impl Filter {
    /// The JSON text sent on the wire.
    pub fn to_text(&self) -> String {
        match self {
            Filter::Text(t) => t.clone(),
            Filter::Value(v) => v.to_string(),
        }
    }
}

impl From<&str> for Filter {
    fn from(s: &str) -> Self {
        Filter::Text(s.to_string())
    }
}

impl From<String> for Filter {
    fn from(s: String) -> Self {
        Filter::Text(s)
    }
}

impl From<Value> for Filter {
    fn from(v: Value) -> Self {
        match v {
            Value::String(s) => Filter::Text(s),
            other => Filter::Value(other),
        }
    }
}

impl From<Map<String, Value>> for Filter {
    fn from(m: Map<String, Value>) -> Self {
        Filter::Value(Value::Object(m))
    }
}

type Waiter = (u64, oneshot::Sender<Value>);

/// Most `job_done` notifications we keep for ids not (yet) known while `create_job` calls
/// are outstanding.
const EARLY_LIMIT: usize = 4096;

/// Routes `job_done` notifications to whoever waits for that job, at most once each.
#[derive(Default)]
pub(crate) struct JobTable {
    waiters: HashMap<i64, Vec<Waiter>>,
    next_waiter: u64,
    /// `create_job` calls in flight.
    creating: usize,
    /// `job_done` that arrived for unknown ids while `create_job` calls were in flight (a
    /// server that sends `job_done` before the `create_job` result; ours never does).
    early: HashMap<i64, Value>,
    /// Insertion order of `early`, to evict the oldest when full.
    early_order: VecDeque<i64>,
}

impl JobTable {
    /// Register a waiter for `job_id`; returns its id and receiver.
    pub(crate) fn register(&mut self, job_id: i64) -> (u64, oneshot::Receiver<Value>) {
        let (tx, rx) = oneshot::channel();
        self.next_waiter += 1;
        let wid = self.next_waiter;
        self.waiters.entry(job_id).or_default().push((wid, tx));
        (wid, rx)
    }

    /// Remove one waiter (no-op when it was already served).
    pub(crate) fn unregister(&mut self, job_id: i64, wid: u64) {
        if let Some(list) = self.waiters.get_mut(&job_id) {
            list.retain(|(w, _)| *w != wid);
            if list.is_empty() {
                self.waiters.remove(&job_id);
            }
        }
    }

    /// A `job_done` arrived: complete every waiter of that job once; unknown ids are ignored
    /// (or remembered briefly while `create_job` calls are in flight).
    pub(crate) fn job_done(&mut self, job_id: i64, outargs: Value) {
        match self.waiters.remove(&job_id) {
            Some(list) => {
                for (_, tx) in list {
                    // The receiver may be gone (handle dropped): nothing to do then.
                    let _ = tx.send(outargs.clone());
                }
            }
            None if self.creating > 0 => {
                tracing::debug!(job_id, "job_done for an unknown job while creating; kept");
                // Keep the first one: a repeated job_done must not replace it.
                if let std::collections::hash_map::Entry::Vacant(e) = self.early.entry(job_id) {
                    e.insert(outargs);
                    self.early_order.push_back(job_id);
                }
                while self.early.len() > EARLY_LIMIT {
                    match self.early_order.pop_front() {
                        Some(old) => {
                            self.early.remove(&old);
                        }
                        None => break,
                    }
                }
            }
            None => tracing::debug!(job_id, "job_done for a job nobody waits for; ignored"),
        }
    }

    /// A `create_job` call starts.
    pub(crate) fn begin_create(&mut self) {
        self.creating += 1;
    }

    /// A `create_job` call ended.
    pub(crate) fn end_create(&mut self) {
        self.creating = self.creating.saturating_sub(1);
        if self.creating == 0 {
            self.early.clear();
            self.early_order.clear();
        }
    }

    /// A created job: its early completion if one arrived, else a registered waiter.
    pub(crate) fn created(
        &mut self,
        job_id: i64,
    ) -> Result<Value, (u64, oneshot::Receiver<Value>)> {
        match self.early.remove(&job_id) {
            Some(v) => {
                self.early_order.retain(|i| *i != job_id);
                Ok(v)
            }
            None => Err(self.register(job_id)),
        }
    }

    /// Number of jobs with waiters (for tests and diagnostics).
    pub(crate) fn waiting(&self) -> usize {
        self.waiters.len()
    }
}

/// Keeps the `create_job` in-flight count right, also when the caller's future is dropped.
pub(crate) struct CreateGuard(pub(crate) Arc<Mutex<JobTable>>);

impl CreateGuard {
    pub(crate) fn new(table: Arc<Mutex<JobTable>>) -> Self {
        table.lock().begin_create();
        CreateGuard(table)
    }
}

impl Drop for CreateGuard {
    fn drop(&mut self) {
        self.0.lock().end_create();
    }
}

/// The future completion of one job: resolves with its final outargs when `job_done`
/// arrives, or fails with [`ClientError::Closed`] when the connection closes first.
///
/// Dropping it stops waiting (the registration is removed).
pub struct JobCompletion {
    job_id: i64,
    state: CompletionState,
}

enum CompletionState {
    Ready(Value),
    Waiting {
        wid: u64,
        rx: oneshot::Receiver<Value>,
        table: Weak<Mutex<JobTable>>,
        peer: Peer,
    },
    Taken,
}

impl JobCompletion {
    pub(crate) fn ready(job_id: i64, outargs: Value) -> Self {
        JobCompletion {
            job_id,
            state: CompletionState::Ready(outargs),
        }
    }

    pub(crate) fn waiting(
        job_id: i64,
        wid: u64,
        rx: oneshot::Receiver<Value>,
        table: &Arc<Mutex<JobTable>>,
        peer: Peer,
    ) -> Self {
        JobCompletion {
            job_id,
            state: CompletionState::Waiting {
                wid,
                rx,
                table: Arc::downgrade(table),
                peer,
            },
        }
    }

    /// The job this completion belongs to.
    pub fn job_id(&self) -> i64 {
        self.job_id
    }

    /// Wait for the final outargs.
    ///
    /// Cancel safe: dropping the returned future (e.g. in `select!` or `timeout`) removes
    /// the registration at once, so no stale waiter is left; the job itself is unaffected
    /// and its result can be fetched with [`crate::Client::get_job_status`].
    pub async fn wait(mut self) -> Result<Value, ClientError> {
        // The registration stays inside `self` while waiting: if this future is dropped,
        // `self` is dropped with it and `Drop` unregisters.
        let CompletionState::Waiting { rx, peer, .. } = &mut self.state else {
            return match std::mem::replace(&mut self.state, CompletionState::Taken) {
                CompletionState::Ready(v) => Ok(v),
                _ => Err(ClientError::Closed),
            };
        };
        tokio::select! {
            biased;
            r = &mut *rx => r.map_err(|_| ClientError::Closed),
            _ = peer.closed() => {
                // A job_done queued just before the close still counts.
                rx.try_recv().map_err(|_| ClientError::Closed)
            }
        }
        // `self` drops here: unregistering is a no-op when job_done already served us.
    }
}

impl Drop for JobCompletion {
    fn drop(&mut self) {
        if let CompletionState::Waiting { wid, table, .. } = &self.state {
            if let Some(t) = table.upgrade() {
                t.lock().unregister(self.job_id, *wid);
            }
        }
    }
}

impl std::fmt::Debug for JobCompletion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobCompletion")
            .field("job_id", &self.job_id)
            .finish_non_exhaustive()
    }
}

impl IntoFuture for JobCompletion {
    type Output = Result<Value, ClientError>;
    type IntoFuture = Pin<Box<dyn Future<Output = Self::Output> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.wait())
    }
}

/// A submitted job (the `call_nb` equivalent): the server has answered `create_job`.
///
/// Await it (or call [`JobHandle::outcome`]) for the [`JobResult`].
#[derive(Debug)]
pub struct JobHandle {
    job_id: Option<i64>,
    inner: HandleInner,
}

#[derive(Debug)]
enum HandleInner {
    /// The job was not created; this is the final result.
    Refused(Value),
    /// The job runs; wait for its completion.
    Running(JobCompletion),
}

impl JobHandle {
    pub(crate) fn refused(job_id: Option<i64>, outargs: Value) -> Self {
        JobHandle {
            job_id,
            inner: HandleInner::Refused(outargs),
        }
    }

    pub(crate) fn running(c: JobCompletion) -> Self {
        JobHandle {
            job_id: Some(c.job_id()),
            inner: HandleInner::Running(c),
        }
    }

    /// The job id, or `None` when the server refused to create the job.
    pub fn job_id(&self) -> Option<i64> {
        self.job_id
    }

    /// True when the job was not created (the outcome is already known).
    pub fn is_refused(&self) -> bool {
        matches!(self.inner, HandleInner::Refused(_))
    }

    /// Wait for the job to finish. Fails with [`ClientError::Closed`] if the connection
    /// closes first; a server-side job timeout gives outargs `{"error":"timeout"}`.
    ///
    /// Cancel safe like [`JobCompletion::wait`]: dropping the future stops waiting and
    /// leaves no registration; the job runs on and its result can be fetched with
    /// [`crate::Client::get_job_status`].
    pub async fn outcome(self) -> Result<JobResult, ClientError> {
        match self.inner {
            HandleInner::Refused(outargs) => Ok(JobResult {
                job_id: self.job_id,
                outargs,
            }),
            HandleInner::Running(c) => {
                let outargs = c.wait().await?;
                Ok(JobResult {
                    job_id: self.job_id,
                    outargs,
                })
            }
        }
    }
}

impl IntoFuture for JobHandle {
    type Output = Result<JobResult, ClientError>;
    type IntoFuture = Pin<Box<dyn Future<Output = Self::Output> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.outcome())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn c94_job_done_twice_delivers_once() {
        let mut t = JobTable::default();
        let (_w, mut rx) = t.register(7);
        t.job_done(7, json!({"a": 1}));
        t.job_done(7, json!({"a": 2}));
        assert_eq!(rx.try_recv().ok(), Some(json!({"a": 1})));
        assert_eq!(t.waiting(), 0);
    }

    #[test]
    fn early_job_done_is_kept_only_while_creating() {
        let mut t = JobTable::default();
        t.job_done(1, json!({"x": 1}));
        t.begin_create();
        t.job_done(2, json!({"x": 2}));
        assert!(t.created(1).is_err());
        assert_eq!(t.created(2).ok(), Some(json!({"x": 2})));
        t.end_create();
        assert!(t.early.is_empty());
    }

    #[test]
    fn early_stash_is_bounded_and_evicts_the_oldest() {
        let mut t = JobTable::default();
        t.begin_create();
        for id in 0..(EARLY_LIMIT as i64 + 10) {
            t.job_done(id, json!({"id": id}));
        }
        assert_eq!(t.early.len(), EARLY_LIMIT);
        assert!(t.created(0).is_err(), "the oldest was evicted");
        let last = EARLY_LIMIT as i64 + 9;
        assert_eq!(t.created(last).ok(), Some(json!({"id": last})));
    }

    #[test]
    fn filter_forms() {
        assert_eq!(Filter::from(json!({"k": "v"})).to_text(), r#"{"k":"v"}"#);
        assert_eq!(Filter::from(r#"{"k":"v"}"#).to_text(), r#"{"k":"v"}"#);
        assert_eq!(Filter::from(json!("{}")).to_text(), "{}");
    }
}
