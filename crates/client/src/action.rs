//! Actions: what a worker can do, their handlers (sync, async, subprocess, typed) and running one task.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use futures::FutureExt;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};

use crate::json::{error_value, truthy};
use crate::subprocess::Subprocess;

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

pub(crate) type SyncFn = Arc<dyn Fn(Task) -> Result<Value, String> + Send + Sync>;
pub(crate) type AsyncFut = Pin<Box<dyn Future<Output = Result<Value, String>> + Send>>;
pub(crate) type AsyncFn = Arc<dyn Fn(Task) -> AsyncFut + Send + Sync>;

#[derive(Clone)]
pub(crate) enum Handler {
    Sync(SyncFn),
    Async(AsyncFn),
    Subprocess(Subprocess, Option<TypeCheck>),
}

/// The checks of a typed subprocess: inargs are decoded into the input type (and sent to
/// the child re-encoded), the child's output must decode into the output type.
#[derive(Clone, Copy)]
pub(crate) struct TypeCheck {
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
    pub(crate) name: String,
    pub(crate) slots: Option<u32>,
    pub(crate) slotgroup: Option<String>,
    pub(crate) filter: Option<Value>,
    pub(crate) addenv: bool,
    pub(crate) workername: Option<String>,
    pub(crate) handler: Option<Handler>,
    pub(crate) undo: Option<SyncFn>,
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

    /// Share the slots of a slotgroup created with [`crate::Client::create_slotgroup`].
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

    /// An async handler, run in the task that serves its offer (one per task). `Err(e)` or
    /// a panic gives `{"error": "<e>"}`.
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

fn panic_payload_text(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        return (*s).to_string();
    }
    if let Some(s) = p.downcast_ref::<String>() {
        return s.clone();
    }
    "handler panicked".to_string()
}

pub(crate) fn panic_text(e: tokio::task::JoinError) -> String {
    if e.is_panic() {
        panic_payload_text(e.into_panic().as_ref())
    } else {
        "handler cancelled".to_string()
    }
}

pub(crate) async fn run_blocking<F>(f: F) -> Result<Value, String>
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
            // Run in the offer's own task, not a task of its own (no task hop per job); a
            // panic while building the future or while polling it becomes the error.
            let t = task.clone();
            match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(t))) {
                Ok(fut) => match std::panic::AssertUnwindSafe(fut).catch_unwind().await {
                    Ok(r) => r,
                    Err(p) => Err(panic_payload_text(p.as_ref())),
                },
                Err(p) => Err(panic_payload_text(p.as_ref())),
            }
        }
        Some(Handler::Subprocess(sp, None)) => {
            sp.run(&task.action, task.job_id, &task.inargs, task.env.as_ref())
                .await
        }
        Some(Handler::Subprocess(sp, Some(check))) => {
            match (check.inargs)(&task.action, task.inargs.clone()) {
                Ok(inargs) => {
                    let typed = Task {
                        inargs,
                        ..task.clone()
                    };
                    match sp
                        .run(
                            &typed.action,
                            typed.job_id,
                            &typed.inargs,
                            typed.env.as_ref(),
                        )
                        .await
                    {
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
