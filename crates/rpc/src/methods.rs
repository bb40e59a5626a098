//! The method table: handlers for requests and notifications, their replies and errors.

use crate::Peer;
use foldhash::HashMap;
use serde_json::{Map, Value};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// A handler failure. Sent as -32001 `Method threw error: {0}`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct HandlerError(pub String);

impl HandlerError {
    /// A handler error with the given reason text (sent after `Method threw error: `).
    pub fn new(reason: impl Into<String>) -> Self {
        HandlerError(reason.into())
    }
}

impl From<String> for HandlerError {
    fn from(s: String) -> Self {
        HandlerError(s)
    }
}

impl From<&str> for HandlerError {
    fn from(s: &str) -> Self {
        HandlerError(s.to_string())
    }
}

/// A hook run right after a reply frame has been queued for writing.
pub type AfterHook = Box<dyn FnOnce() + Send + 'static>;

/// A handler's successful answer: the `result` value plus an optional after-hook.
///
/// The after-hook runs right after the response frame is *queued* (or, for a notification
/// that gets no response, right after the handler finished). Anything the hook sends is
/// therefore written after the response: this is how the server guarantees that the
/// `create_job` result precedes that job's `job_done`.
pub struct Reply {
    /// The `result` value.
    pub value: Value,
    /// The hook to run once the response is queued.
    pub after: Option<AfterHook>,
}

impl Reply {
    /// A reply with result `v` and no hook.
    pub fn new(v: Value) -> Self {
        Reply {
            value: v,
            after: None,
        }
    }

    /// A reply built from handler output values, packed per §5.5: none → `[]`, one → the
    /// bare value, several → an array.
    pub fn values(values: Vec<Value>) -> Self {
        Reply::new(jobcenter_wire::pack_result(values))
    }

    /// Attach a hook that runs right after the response frame is queued.
    /// A second call replaces the first hook.
    pub fn after(mut self, f: impl FnOnce() + Send + 'static) -> Self {
        self.after = Some(Box::new(f));
        self
    }
}

impl From<Value> for Reply {
    fn from(v: Value) -> Self {
        Reply::new(v)
    }
}

impl fmt::Debug for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reply")
            .field("value", &self.value)
            .field("after", &self.after.is_some())
            .finish()
    }
}

/// The future a handler returns.
pub type HandlerFuture = Pin<Box<dyn Future<Output = Result<Reply, HandlerError>> + Send>>;

/// The shared handler function type.
pub type HandlerFn = dyn Fn(Peer, Map<String, Value>) -> HandlerFuture + Send + Sync + 'static;

/// One registered method.
pub(crate) struct MethodEntry {
    pub(crate) notification: bool,
    pub(crate) state: Option<String>,
    pub(crate) handler: Arc<HandlerFn>,
}

/// A method table shared by all connections of one kind (e.g. all server sessions).
/// All methods take named params (a JSON object).
#[derive(Default)]
pub struct Methods {
    pub(crate) map: HashMap<String, MethodEntry>,
}

impl Methods {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Register a request method. `state` is the connection state required to call it,
    /// e.g. `Some("auth")`; `None` means always callable. Re-registering replaces.
    pub fn request<F>(&mut self, name: &str, state: Option<&str>, f: F)
    where
        F: Fn(Peer, Map<String, Value>) -> HandlerFuture + Send + Sync + 'static,
    {
        self.insert(name, false, state, Arc::new(f));
    }

    /// Register a notification method (same handler type). Its result is ignored unless it
    /// is called with a truthy id, in which case the result is sent back like a request's.
    pub fn notification<F>(&mut self, name: &str, state: Option<&str>, f: F)
    where
        F: Fn(Peer, Map<String, Value>) -> HandlerFuture + Send + Sync + 'static,
    {
        self.insert(name, true, state, Arc::new(f));
    }

    fn insert(&mut self, name: &str, notification: bool, state: Option<&str>, f: Arc<HandlerFn>) {
        self.map.insert(
            name.to_string(),
            MethodEntry {
                notification,
                state: state.map(str::to_string),
                handler: f,
            },
        );
    }

    /// Whether `name` is registered.
    pub fn contains(&self, name: &str) -> bool {
        self.map.contains_key(name)
    }

    /// Number of registered methods.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

impl fmt::Debug for Methods {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut names: Vec<&String> = self.map.keys().collect();
        names.sort();
        f.debug_struct("Methods").field("names", &names).finish()
    }
}
