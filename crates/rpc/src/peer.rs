//! The connection peer: a reader task, a writer task and a cheap clonable handle.

use crate::methods::{HandlerError, Methods, Reply};
use crate::output::{Output, OutputLimits, Pushed, WriteIo};
use bytes::{Bytes, BytesMut};
use foldhash::HashMap;
use futures::FutureExt;
use jobcenter_wire::{
    classify, encode_error, encode_error_id_text, encode_notification, encode_request,
    encode_result, encode_result_id_text, is_falsy_id, FrameError, Incoming, NetstringCodec,
    RpcError, CLIENT_MAX_FRAME,
};
use parking_lot::Mutex;
use serde_json::{Map, Value};
use std::any::Any;
use std::cell::{Cell, RefCell};
use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{oneshot, watch, Notify};
use tokio_util::codec::Decoder;
use tracing::{debug, error, trace, warn, Instrument};

/// What running a handler under `catch_unwind` yields.
type HandlerOutcome = Result<Result<Reply, HandlerError>, Box<dyn std::any::Any + Send>>;

/// A handler future wrapped to catch panics.
type HandlerRun = dyn Future<Output = HandlerOutcome> + Send;

/// How long a graceful close may spend flushing queued frames before the socket is dropped.
pub const CLOSE_GRACE: Duration = Duration::from_secs(10);

/// How long the reader waits for more of what a vanished peer sent before it went.
const LEFTOVER_WAIT: Duration = Duration::from_millis(20);

/// Initial read buffer size.
const READ_BUFFER: usize = 16 * 1024;

static NEXT_PEER_ID: AtomicU64 = AtomicU64::new(1);

/// Settings of one connection.
#[derive(Debug, Clone)]
pub struct PeerConfig {
    /// Largest accepted incoming payload (use `SERVER_MAX_FRAME` on the server side).
    pub max_frame: usize,
    /// A label for log lines, e.g. `client 127.0.0.1:4711`.
    pub label: String,
    /// Requests being handled at once; while this many run, no further frames are read.
    pub max_in_flight: usize,
    /// Bytes queued for the other side above which no further frames are read until the
    /// queue is down to half; at four times this the connection is closed.
    pub max_output: usize,
    /// Queued bytes above which [`Peer::congestion`] reports `true` (back to `false` at half).
    pub congest_at: usize,
    /// Close the connection when queued output makes no progress for this long.
    pub output_stall_timeout: Option<Duration>,
    /// The span the connection's reader and writer tasks and its handlers run in, so that
    /// every line they log carries its fields. A field named `conn`, if the span declares
    /// it, is set to [`Peer::id`] before any task starts. Default: no span.
    pub span: tracing::Span,
}

impl PeerConfig {
    /// A config with the given frame limit and label, and no other limits.
    pub fn new(max_frame: usize, label: impl Into<String>) -> Self {
        Self {
            max_frame,
            label: label.into(),
            max_in_flight: usize::MAX,
            max_output: usize::MAX / 4,
            congest_at: DEFAULT_CONGEST_AT,
            output_stall_timeout: None,
            span: tracing::Span::none(),
        }
    }
}

/// Default of [`PeerConfig::congest_at`].
pub const DEFAULT_CONGEST_AT: usize = 64 * 1024;

impl Default for PeerConfig {
    /// The client limit (`CLIENT_MAX_FRAME`) and the label `peer`.
    fn default() -> Self {
        Self::new(CLIENT_MAX_FRAME, "peer")
    }
}

/// Why an outgoing call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// The other side answered with a JSON-RPC error object.
    #[error("rpc error {code}: {message}")]
    Rpc {
        /// The error code.
        code: i64,
        /// The error message.
        message: String,
    },
    /// The connection is closed (or closed while the call was outstanding).
    #[error("connection closed")]
    Closed,
    /// No answer within the timeout of [`Peer::call_timeout`].
    #[error("call timed out")]
    Timeout,
    /// The params could not be serialised.
    #[error("cannot encode request: {0}")]
    Encode(String),
}

impl From<RpcError> for CallError {
    fn from(e: RpcError) -> Self {
        CallError::Rpc {
            code: e.code,
            message: e.message,
        }
    }
}

/// Why a connection closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseReason {
    /// The other side closed the stream (end of file).
    PeerClosed,
    /// This side called [`Peer::close`] or [`Peer::abort`].
    Local,
    /// A fatal JSON-RPC envelope error (§5.3/§5.6); the payload is the reason text.
    Fatal(String),
    /// A framing error (§3).
    Framing(String),
    /// An I/O error.
    Io(String),
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CloseReason::PeerClosed => f.write_str("closed by peer"),
            CloseReason::Local => f.write_str("closed locally"),
            CloseReason::Fatal(r) => write!(f, "fatal protocol error: Invalid Request: {r}"),
            CloseReason::Framing(r) => write!(f, "framing error: {r}"),
            CloseReason::Io(r) => write!(f, "i/o error: {r}"),
        }
    }
}

type CallSender = oneshot::Sender<Result<Value, CallError>>;

#[derive(Default)]
struct Pending {
    closed: bool,
    calls: HashMap<u64, CallSender>,
}

struct Shared {
    id: u64,
    label: String,
    span: tracing::Span,
    id_prefix: String,
    methods: Arc<Methods>,
    state: Mutex<Option<String>>,
    pending: Mutex<Pending>,
    next_call: AtomicU64,
    out: Mutex<Output>,
    out_wake: Notify,
    /// Woken when a handler finishes or the output queue went down: the reader may resume.
    space: Arc<Notify>,
    /// Requests being handled in their own tasks.
    in_flight: AtomicUsize,
    /// Woken when the last request in flight finished.
    handlers_done: Notify,
    /// A write to the socket failed: the other side is gone (see `take_leftovers`).
    write_broken: AtomicBool,
    max_in_flight: usize,
    output_stall: Option<Duration>,
    congested: watch::Receiver<bool>,
    /// Set while more output is queued than the limit allows (kept by the output).
    over_output: Arc<AtomicBool>,
    close_tx: watch::Sender<Option<CloseReason>>,
    abort_tx: watch::Sender<bool>,
    done_tx: watch::Sender<bool>,
}

/// A cheap, clonable handle to one connection.
///
/// [`Peer::spawn`] starts a reader task and a writer task:
///
/// * The reader decodes frames, matches responses to outstanding calls by id and dispatches
///   requests and notifications to the [`Methods`] table (docs/PROTOCOL.md §5.4). A handler that
///   completes without waiting is answered inline; any other handler continues in its own
///   task, so a slow handler never blocks the reader. Responses may therefore go out in a
///   different order than the requests came in.
/// * Output keeps the order in which frames were queued ([`Peer::call`], [`Peer::notify`],
///   responses). A sender writes its frame straight to the socket when the socket is idle;
///   when the socket cannot take it, the writer task finishes the job. Answers produced while
///   the reader handles one read's worth of frames are collected and written together.
///
/// Lifetime: the tasks run until the connection closes: the other side closes it, a
/// protocol, framing or I/O error occurs, or [`Peer::close`]/[`Peer::abort`] is called.
/// Dropping every handle does **not** close the connection (handlers get their own handle,
/// and an idle connection keeps answering requests); call [`Peer::close`] to end it. Once the
/// connection is closed for any reason, both tasks end and the socket is released, so nothing
/// outlives the connection. Outstanding calls then fail with [`CallError::Closed`] at once.
#[derive(Clone)]
pub struct Peer {
    shared: Arc<Shared>,
}

impl fmt::Debug for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Peer")
            .field("id", &self.shared.id)
            .field("label", &self.shared.label)
            .field("closed", &self.is_closed())
            .finish()
    }
}

/// Removes a pending call when the calling future is dropped before completion.
struct PendingGuard<'a> {
    shared: &'a Shared,
    n: u64,
    armed: bool,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.shared.pending.lock().calls.remove(&self.n);
        }
    }
}

impl Peer {
    /// Start serving `io` with the method table `methods`.
    ///
    /// A plain [`TcpStream`] is recognised and served as by [`Peer::spawn_tcp`] (owned halves,
    /// no lock between reading and writing); any other stream (e.g. TLS) is split with
    /// `tokio::io::split`, whose halves share a lock.
    ///
    /// # Panics
    ///
    /// Panics when called outside a tokio runtime (it spawns the reader and writer tasks).
    /// All other methods, except the `async` ones, may be used from any thread.
    pub fn spawn<S>(io: S, methods: Arc<Methods>, cfg: PeerConfig) -> Peer
    where
        S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let mut slot = Some(io);
        let tcp = (&mut slot as &mut dyn Any)
            .downcast_mut::<Option<TcpStream>>()
            .and_then(Option::take);
        match (tcp, slot) {
            (Some(tcp), _) => Self::spawn_tcp(tcp, methods, cfg),
            (None, Some(io)) => {
                let (r, w) = tokio::io::split(io);
                Self::start(r, Box::pin(w), methods, cfg)
            }
            // `slot` is emptied only when its content moved into `tcp`.
            (None, None) => unreachable!("stream neither kept nor taken"),
        }
    }

    /// Start serving a TCP stream with the method table `methods`. The stream is split into
    /// owned halves, so the reader and the writers never contend for a lock.
    ///
    /// # Panics
    ///
    /// Panics when called outside a tokio runtime (it spawns the reader and writer tasks).
    pub fn spawn_tcp(io: TcpStream, methods: Arc<Methods>, cfg: PeerConfig) -> Peer {
        let (r, w) = io.into_split();
        Self::start(r, Box::pin(w), methods, cfg)
    }

    /// Build the shared state and spawn the reader and writer tasks.
    fn start<R>(r: R, w: WriteIo, methods: Arc<Methods>, cfg: PeerConfig) -> Peer
    where
        R: AsyncRead + Send + Unpin + 'static,
    {
        let id = NEXT_PEER_ID.fetch_add(1, Ordering::Relaxed);
        cfg.span.record("conn", id);
        let (congested_tx, congested) = watch::channel(false);
        let space = Arc::new(Notify::new());
        let over_output = Arc::new(AtomicBool::new(false));
        let limits = OutputLimits {
            congest_at: cfg.congest_at,
            max_output: cfg.max_output,
        };
        let shared = Arc::new(Shared {
            id,
            label: cfg.label,
            span: cfg.span,
            id_prefix: format!("jc{id}-"),
            methods,
            state: Mutex::new(None),
            pending: Mutex::new(Pending::default()),
            next_call: AtomicU64::new(1),
            out: Mutex::new(Output::new(
                w,
                limits,
                congested_tx,
                space.clone(),
                over_output.clone(),
            )),
            out_wake: Notify::new(),
            space,
            in_flight: AtomicUsize::new(0),
            handlers_done: Notify::new(),
            write_broken: AtomicBool::new(false),
            max_in_flight: cfg.max_in_flight.max(1),
            output_stall: cfg.output_stall_timeout,
            congested,
            over_output,
            close_tx: watch::channel(None).0,
            abort_tx: watch::channel(false).0,
            done_tx: watch::channel(false).0,
        });
        let peer = Peer { shared };
        let span = peer.shared.span.clone();
        tokio::spawn(writer_task(peer.clone()).instrument(span.clone()));
        tokio::spawn(reader_task(peer.clone(), r, cfg.max_frame).instrument(span));
        debug!(peer = %peer.shared.label, id, "connection started");
        peer
    }

    /// A process-wide unique id of this connection.
    pub fn id(&self) -> u64 {
        self.shared.id
    }

    /// The span given in [`PeerConfig`] (record fields on it, e.g. who logged in).
    pub fn span(&self) -> &tracing::Span {
        &self.shared.span
    }

    /// The label given in [`PeerConfig`].
    pub fn label(&self) -> &str {
        &self.shared.label
    }

    /// Bytes queued for the other side that the socket has not taken yet.
    pub fn backlog(&self) -> usize {
        self.shared.out.lock().backlog()
    }

    /// Whether the other side is behind in reading: `true` once more than
    /// [`PeerConfig::congest_at`] bytes are queued, `false` again once the queue is down to
    /// half of that. Watch it to stop offering work to a peer that does not keep up.
    pub fn congestion(&self) -> watch::Receiver<bool> {
        self.shared.congested.clone()
    }

    /// Requests of the other side being handled right now (in their own tasks).
    pub fn requests_in_flight(&self) -> usize {
        self.shared.in_flight.load(Ordering::Relaxed)
    }

    /// Resolves once no request of the other side is being handled. After the connection
    /// closed, this is when everything it sent before closing has been acted on (e.g. a
    /// `task_done` read just before the close reached the engine).
    pub async fn requests_done(&self) {
        loop {
            let woken = self.shared.handlers_done.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            if self.shared.in_flight.load(Ordering::Acquire) == 0 {
                return;
            }
            woken.await;
        }
    }

    /// Whether the reader must wait before taking the next frame.
    fn must_pause(&self) -> bool {
        self.shared.in_flight.load(Ordering::Relaxed) >= self.shared.max_in_flight
            || self.shared.over_output.load(Ordering::Acquire)
    }

    /// Wait until the reader may take frames again.
    async fn resumed(&self) {
        loop {
            let woken = self.shared.space.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            if !self.must_pause() {
                return;
            }
            woken.await;
        }
    }

    /// Call `method` with `params` and wait for the result (no timeout). Fails with
    /// [`CallError::Closed`] as soon as the connection closes.
    pub async fn call(&self, method: &str, params: Value) -> Result<Value, CallError> {
        let n = self.shared.next_call.fetch_add(1, Ordering::Relaxed);
        let id = Value::String(format!("{}{}", self.shared.id_prefix, n));
        let payload =
            encode_request(&id, method, &params).map_err(|e| CallError::Encode(e.to_string()))?;
        let (tx, rx) = oneshot::channel();
        {
            let mut p = self.shared.pending.lock();
            if p.closed {
                return Err(CallError::Closed);
            }
            p.calls.insert(n, tx);
        }
        let mut guard = PendingGuard {
            shared: &self.shared,
            n,
            armed: true,
        };
        self.queue(payload)?;
        let res = rx.await;
        guard.armed = false;
        match res {
            Ok(r) => r,
            Err(_) => Err(CallError::Closed),
        }
    }

    /// Like [`Peer::call`], but gives up with [`CallError::Timeout`] after `t`. A late answer
    /// is then ignored.
    pub async fn call_timeout(
        &self,
        method: &str,
        params: Value,
        t: Duration,
    ) -> Result<Value, CallError> {
        match tokio::time::timeout(t, self.call(method, params)).await {
            Ok(r) => r,
            Err(_) => Err(CallError::Timeout),
        }
    }

    /// Send a notification (no id, no answer expected). Queued in order with everything else.
    pub fn notify(&self, method: &str, params: Value) -> Result<(), CallError> {
        let payload =
            encode_notification(method, &params).map_err(|e| CallError::Encode(e.to_string()))?;
        self.queue(payload)
    }

    /// The connection state used for method gating (e.g. `Some("auth")`), `None` initially.
    pub fn state(&self) -> Option<String> {
        self.shared.state.lock().clone()
    }

    /// Set the connection state.
    pub fn set_state(&self, s: Option<&str>) {
        *self.shared.state.lock() = s.map(str::to_string);
    }

    /// Graceful close: frames queued so far are written and flushed (for at most
    /// [`CLOSE_GRACE`]), then the stream is shut down. Outstanding calls fail at once.
    pub fn close(&self) {
        self.shutdown(CloseReason::Local, true);
    }

    /// Immediate close: queued frames are dropped.
    pub fn abort(&self) {
        self.shutdown(CloseReason::Local, false);
    }

    /// Whether the connection is closed or closing (no more calls or frames are accepted).
    pub fn is_closed(&self) -> bool {
        self.shared.close_tx.borrow().is_some()
    }

    /// The close reason, if the connection is closed or closing.
    pub fn close_reason(&self) -> Option<CloseReason> {
        self.shared.close_tx.borrow().clone()
    }

    /// Resolves once the connection is closed (closing has begun), with the first reason.
    /// May be awaited any number of times, also after the fact.
    pub async fn closed(&self) -> CloseReason {
        let mut rx = self.shared.close_tx.subscribe();
        let res = rx.wait_for(|r| r.is_some()).await;
        match res {
            Ok(r) => r.clone().unwrap_or(CloseReason::Local),
            Err(_) => CloseReason::Local,
        }
    }

    /// Resolves once the writer has finished (queued frames flushed or dropped, stream shut
    /// down). Useful to be sure a graceful close reached the socket.
    pub async fn finished(&self) {
        let mut rx = self.shared.done_tx.subscribe();
        let _ = rx.wait_for(|d| *d).await;
    }

    /// Queue an encoded payload for writing: written at once if the socket is idle, or when
    /// the burst running on this thread ends (see [`Burst`]).
    fn queue(&self, payload: Bytes) -> Result<(), CallError> {
        trace!(peer = %self.shared.label, frame = %loggable(&payload), "send");
        let pushed = {
            let mut out = self.shared.out.lock();
            if out.refuses() {
                return Err(CallError::Closed);
            }
            BURST.with(|b| b.hold(self, &mut out));
            out.push(&payload)
        };
        self.after_push(pushed);
        Ok(())
    }

    fn after_push(&self, pushed: Pushed) {
        match pushed {
            Pushed::Done => {}
            Pushed::WakeWriter => self.shared.out_wake.notify_one(),
            Pushed::Failed(e) => {
                debug!(peer = %self.shared.label, error = %e, "write error");
                self.shared.write_broken.store(true, Ordering::Release);
                self.shutdown(CloseReason::Io(e), false);
            }
            Pushed::Overflow(e) => {
                warn!(peer = %self.shared.label, error = %e, "closing");
                self.shutdown(CloseReason::Io(e), false);
            }
        }
    }

    fn send_result(&self, id: &ReplyId, result: &Value) {
        let encoded = match &id.text {
            Some(text) => encode_result_id_text(text, result),
            None => encode_result(&id.id, result),
        };
        match encoded {
            Ok(p) => {
                let _ = self.queue(p);
            }
            Err(e) => {
                error!(peer = %self.shared.label, error = %e, "cannot encode result");
                self.send_error(
                    id,
                    &RpcError::method_threw(&format!("cannot encode result: {e}")),
                );
            }
        }
    }

    fn send_error(&self, id: &ReplyId, err: &RpcError) {
        let encoded = match &id.text {
            Some(text) => encode_error_id_text(text, err),
            None => encode_error(&id.id, err),
        };
        match encoded {
            Ok(p) => {
                let _ = self.queue(p);
            }
            Err(e) => error!(peer = %self.shared.label, error = %e, "cannot encode error"),
        }
    }

    /// Begin closing with `reason` (the first reason wins). `graceful` flushes queued frames.
    fn shutdown(&self, reason: CloseReason, graceful: bool) {
        let sh = &self.shared;
        let mut first = false;
        sh.close_tx.send_if_modified(|cur| {
            if cur.is_none() {
                *cur = Some(reason.clone());
                first = true;
                true
            } else {
                false
            }
        });
        if first {
            let calls = {
                let mut p = sh.pending.lock();
                p.closed = true;
                std::mem::take(&mut p.calls)
            };
            for (_, tx) in calls {
                let _ = tx.send(Err(CallError::Closed));
            }
            debug!(peer = %sh.label, %reason, graceful, "connection closing");
            if graceful {
                sh.out.lock().begin_close();
                sh.out_wake.notify_one();
            } else {
                sh.abort_tx.send_replace(true);
            }
        } else if !graceful {
            sh.abort_tx.send_replace(true);
        }
    }

    /// Queue the fatal -32600 error (id null) and close gracefully.
    fn fatal(&self, reason: String) {
        warn!(peer = %self.shared.label, %reason, "fatal protocol error, closing");
        self.send_error(&ReplyId::null(), &RpcError::invalid_request(&reason));
        self.shutdown(CloseReason::Fatal(reason), true);
    }

    fn framing_error(&self, e: FrameError) {
        match e {
            FrameError::Io(e) => {
                debug!(peer = %self.shared.label, error = %e, "read error");
                self.shutdown(CloseReason::Io(e.to_string()), false);
            }
            e => {
                warn!(peer = %self.shared.label, error = %e, "framing error, closing");
                self.shutdown(CloseReason::Framing(e.to_string()), true);
            }
        }
    }

    /// The pending-call number encoded in one of our ids.
    fn call_number(&self, id: &Value) -> Option<u64> {
        let s = id.as_str()?;
        let digits = s.strip_prefix(self.shared.id_prefix.as_str())?;
        if digits.is_empty()
            || !digits.bytes().all(|b| b.is_ascii_digit())
            || (digits.len() > 1 && digits.starts_with('0'))
        {
            return None;
        }
        digits.parse().ok()
    }

    fn take_pending(&self, id: &Value) -> Option<CallSender> {
        if is_falsy_id(id) {
            return None;
        }
        let n = self.call_number(id)?;
        self.shared.pending.lock().calls.remove(&n)
    }

    /// Handle one payload. Returns false when reading must stop.
    fn handle_payload(&self, payload: &[u8]) -> bool {
        // Once closing has been decided (e.g. by a handler), further input is ignored.
        if self.is_closed() {
            return false;
        }
        self.take_payload(payload)
    }

    /// Handle one payload, closed or not. Returns false when reading must stop.
    fn take_payload(&self, payload: &[u8]) -> bool {
        trace!(peer = %self.shared.label, frame = %loggable(payload), "recv");
        match classify(payload) {
            Err(fatal) => {
                self.fatal(fatal.0);
                false
            }
            Ok(Incoming::Request {
                method,
                id,
                id_text,
                params,
            }) => {
                self.dispatch(method, id, id_text, params);
                true
            }
            Ok(Incoming::Response { id, outcome }) => {
                match self.take_pending(&id) {
                    Some(tx) => {
                        let _ = tx.send(outcome.map_err(CallError::from));
                    }
                    None => debug!(peer = %self.shared.label, %id, "ignoring unmatched response"),
                }
                true
            }
            Ok(Incoming::InvalidResponse { id, reason }) => {
                if self.take_pending(&id).is_some() {
                    self.fatal(reason);
                    false
                } else {
                    debug!(peer = %self.shared.label, %id, %reason, "ignoring unmatched invalid response");
                    true
                }
            }
        }
    }

    /// Dispatch a request or notification per §5.4.
    fn dispatch(
        &self,
        method: Value,
        id: Option<Value>,
        id_text: Option<String>,
        params: Option<Value>,
    ) {
        let reply_id = ReplyId {
            id: id.clone().unwrap_or(Value::Null),
            text: id_text,
        };
        let is_notification = id.as_ref().is_none_or(is_falsy_id);
        let entry = method
            .as_str()
            .and_then(|name| self.shared.methods.map.get(name));
        let Some(entry) = entry else {
            return self.send_error(&reply_id, &RpcError::method_not_found());
        };
        if is_notification && !entry.notification {
            return self.send_error(&reply_id, &RpcError::not_a_notification());
        }
        let params: Map<String, Value> = match params {
            Some(Value::Object(m)) => m,
            Some(Value::Array(_)) => {
                return self.send_error(&reply_id, &RpcError::expects_named_params())
            }
            _ => return self.send_error(&reply_id, &RpcError::params_not_array_or_object()),
        };
        if let Some(required) = &entry.state {
            if self.shared.state.lock().as_deref() != Some(required.as_str()) {
                return self.send_error(&reply_id, &RpcError::requires_state(required));
            }
        }
        let handler = Arc::clone(&entry.handler);
        let peer = self.clone();
        let hpeer = peer.clone();
        let mut fut: Pin<Box<HandlerRun>> =
            Box::pin(AssertUnwindSafe(async move { handler(hpeer, params).await }).catch_unwind());
        // Fast path: most handlers complete without waiting; answer them right here and save
        // a task hand-off. Anything that is not ready at once continues in its own task, so a
        // slow handler never blocks the reader.
        match (&mut fut).now_or_never() {
            Some(outcome) => peer.finish_handler(outcome, &reply_id, is_notification, &method),
            None => {
                peer.shared.in_flight.fetch_add(1, Ordering::AcqRel);
                let span = peer.shared.span.clone();
                tokio::spawn(
                    async move {
                        let _done = InFlight(&peer.shared);
                        let outcome = fut.await;
                        peer.finish_handler(outcome, &reply_id, is_notification, &method);
                    }
                    .instrument(span),
                );
            }
        }
    }

    /// Send the answer for a finished handler and run its after-hook.
    fn finish_handler(
        &self,
        outcome: HandlerOutcome,
        reply_id: &ReplyId,
        is_notification: bool,
        method: &Value,
    ) {
        match outcome {
            Ok(Ok(Reply { value, after })) => {
                if !is_notification {
                    self.send_result(reply_id, &value);
                }
                if let Some(hook) = after {
                    if std::panic::catch_unwind(AssertUnwindSafe(hook)).is_err() {
                        error!(peer = %self.shared.label, %method, "after-hook panicked");
                    }
                }
            }
            Ok(Err(HandlerError(text))) => {
                self.send_error(reply_id, &RpcError::method_threw(&text));
            }
            Err(_) => {
                error!(peer = %self.shared.label, %method, "handler panicked");
                self.send_error(reply_id, &RpcError::method_threw("internal error"));
            }
        }
    }
}

/// The id an answer goes to, with its exact text when the value would render differently.
struct ReplyId {
    id: Value,
    text: Option<String>,
}

impl ReplyId {
    fn null() -> Self {
        ReplyId {
            id: Value::Null,
            text: None,
        }
    }
}

/// A frame as it may appear in a log: frames that carry a `token` (a `hello` with its
/// password) or a `reqauth` (a `create_job` with per-request credentials, §11.5) are
/// summarised, never shown.
fn loggable(payload: &[u8]) -> std::borrow::Cow<'_, str> {
    if payload.windows(7).any(|w| w == b"\"token\"")
        || payload.windows(9).any(|w| w == b"\"reqauth\"")
    {
        std::borrow::Cow::Owned(format!(
            "<{} bytes, not shown: it carries a token>",
            payload.len()
        ))
    } else {
        String::from_utf8_lossy(payload)
    }
}

/// Counts a request handled in its own task; wakes the reader when it finishes.
struct InFlight<'a>(&'a Shared);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        let before = self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
        if before >= self.0.max_in_flight {
            self.0.space.notify_waiters();
        }
        if before == 1 {
            self.0.handlers_done.notify_waiters();
        }
    }
}

/// Closes the connection if a task ends unexpectedly (e.g. a bug makes it panic), so the
/// connection can never be left half-served.
/// The writer's guard also reports completion for [`Peer::finished`].
struct CloseOnDrop {
    peer: Peer,
    report_done: bool,
}

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        if !self.peer.is_closed() {
            error!(peer = %self.peer.shared.label, "connection task ended unexpectedly");
            self.peer
                .shutdown(CloseReason::Io("internal error".into()), false);
        }
        if self.report_done {
            self.peer.shared.done_tx.send_replace(true);
        }
    }
}

thread_local! {
    /// The burst running on this thread, if any (see [`Burst`]).
    static BURST: BurstState = const { BurstState { active: Cell::new(false), held: RefCell::new(Vec::new()) } };
}

/// What this thread's burst holds.
struct BurstState {
    /// A reader is handling a burst on this thread.
    active: Cell<bool>,
    /// The other connections whose output it holds back, in the order taken.
    held: RefCell<Vec<Peer>>,
}

impl BurstState {
    /// Inside a burst: hold `peer`'s output back until the burst ends, unless a burst holds
    /// it already.
    fn hold(&self, peer: &Peer, out: &mut Output) {
        if self.active.get() && out.cork() {
            self.held.borrow_mut().push(peer.clone());
        }
    }
}

/// A reader handling the frames of one read (a *burst*), synchronously on its thread.
///
/// The frames it queues, for its own connection and for any other (a `task_ready` offer to a
/// worker, a `job_done` to a client), are held back and written when the burst ends: one
/// `sendto` per connection for the whole burst instead of one per frame. Under load a read
/// holds dozens of frames; each of them used to send to another connection on its own.
/// Nothing can wait for a held frame inside the burst: handlers run inline to completion
/// or are spawned and queue after it. Dropping the guard (also on unwinding) ends the burst.
struct Burst {
    /// The reader's own connection, if the burst took its output (written last).
    own: Option<Peer>,
}

impl Burst {
    fn begin(own: &Peer) -> Self {
        BURST.with(|b| b.active.set(true));
        let taken = own.shared.out.lock().cork();
        Burst {
            own: taken.then(|| own.clone()),
        }
    }
}

impl Drop for Burst {
    fn drop(&mut self) {
        let mut held = BURST.with(|b| {
            b.active.set(false);
            b.held.take()
        });
        // Other connections first: an offer to a worker is on a job's critical path, the
        // own answers are not waited for any longer than that.
        for peer in held.iter().chain(self.own.as_ref()) {
            let pushed = peer.shared.out.lock().uncork();
            peer.after_push(pushed);
        }
        // Give the (emptied) list back, so a burst does not allocate.
        held.clear();
        BURST.with(|b| b.held.replace(held));
    }
}

async fn reader_task<R>(peer: Peer, mut r: R, max_frame: usize)
where
    R: AsyncRead + Unpin,
{
    let _guard = CloseOnDrop {
        peer: peer.clone(),
        report_done: false,
    };
    let mut codec = NetstringCodec::new(max_frame);
    let mut buf = BytesMut::with_capacity(READ_BUFFER);
    let mut close_rx = peer.shared.close_tx.subscribe();
    // One close watcher for the whole connection, so each read does not register anew.
    let closing = close_rx.wait_for(|r| r.is_some());
    tokio::pin!(closing);
    loop {
        // Handle every complete frame already buffered; answers produced meanwhile are
        // collected and written together afterwards. Too many requests in flight or too
        // much unread output pause the reading (back-pressure) until there is room again.
        let mut paused = false;
        let burst = Burst::begin(&peer);
        let stop = loop {
            if peer.must_pause() {
                paused = true;
                break false;
            }
            match codec.decode(&mut buf) {
                Ok(Some(payload)) => {
                    if !peer.handle_payload(&payload) {
                        break true;
                    }
                }
                Ok(None) => break false,
                Err(e) => {
                    peer.framing_error(e);
                    break true;
                }
            }
        };
        drop(burst);
        if stop {
            break;
        }
        if paused {
            let closed = tokio::select! {
                biased;
                _ = &mut closing => true,
                _ = peer.resumed() => false,
            };
            if closed {
                after_close(&peer, &mut r, &mut codec, &mut buf).await;
                break;
            }
            continue;
        }
        if buf.is_empty() && buf.capacity() > READ_BUFFER * 16 {
            // A big frame has been handled: give its memory back.
            buf = BytesMut::with_capacity(READ_BUFFER);
        }
        if buf.capacity() - buf.len() < READ_BUFFER / 4 {
            buf.reserve(READ_BUFFER);
        }
        let read = tokio::select! {
            biased;
            _ = &mut closing => None,
            read = r.read_buf(&mut buf) => Some(read),
        };
        let Some(read) = read else {
            after_close(&peer, &mut r, &mut codec, &mut buf).await;
            break;
        };
        match read {
            Ok(0) => {
                match codec.decode_eof(&mut buf) {
                    Ok(_) => peer.shutdown(CloseReason::PeerClosed, true),
                    Err(e) => peer.framing_error(e),
                }
                break;
            }
            Ok(_) => {}
            Err(e) => {
                debug!(peer = %peer.shared.label, error = %e, "read error");
                peer.shutdown(CloseReason::Io(e.to_string()), false);
                break;
            }
        }
    }
}

/// The reader's last duty once the connection closes (not by end of file).
///
/// * The socket broke on a write: act on what the other side sent before it went
///   ([`take_leftovers`]).
/// * A graceful close: keep reading, and discarding, until the other side closes too (at
///   most [`CLOSE_GRACE`]). A socket closed with unread input is reset by the kernel, and a
///   reset throws away what it had not sent yet: the last frames this side queued (a
///   worker's `task_done` just before it leaves) would be lost.
async fn after_close<R>(peer: &Peer, r: &mut R, codec: &mut NetstringCodec, buf: &mut BytesMut)
where
    R: AsyncRead + Unpin,
{
    if peer.shared.write_broken.load(Ordering::Acquire) {
        take_leftovers(peer, r, codec, buf).await;
        return;
    }
    if !peer.shared.out.lock().closing {
        return;
    }
    let linger = async {
        let mut sink = vec![0u8; READ_BUFFER];
        loop {
            match r.read(&mut sink).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    let _ = tokio::time::timeout(CLOSE_GRACE, linger).await;
}

/// After the connection broke on a write (the other side is gone), what it sent before it
/// went may still wait in the socket: a worker's last `task_done`, say. Read what is there
/// (bounded) and act on its requests and notifications; answers go nowhere.
async fn take_leftovers<R>(peer: &Peer, r: &mut R, codec: &mut NetstringCodec, buf: &mut BytesMut)
where
    R: AsyncRead + Unpin,
{
    if !peer.shared.write_broken.load(Ordering::Acquire) {
        return;
    }
    for _ in 0..64 {
        loop {
            match codec.decode(buf) {
                Ok(Some(payload)) => {
                    if !peer.take_payload(&payload) {
                        return;
                    }
                }
                Ok(None) => break,
                Err(_) => return,
            }
        }
        if buf.capacity() - buf.len() < READ_BUFFER / 4 {
            buf.reserve(READ_BUFFER);
        }
        match tokio::time::timeout(LEFTOVER_WAIT, r.read_buf(buf)).await {
            Ok(Ok(n)) if n > 0 => {}
            _ => return,
        }
    }
}

enum WriterEnd {
    Done,
    Stalled(Duration, usize),
    Aborted,
    GraceExpired,
    Io(std::io::Error),
}

/// Drain the output whenever woken, until a graceful close has been written out. With an
/// output stall timeout, gives up when queued bytes make no progress for that long.
async fn drive_output(shared: &Shared) -> WriterEnd {
    loop {
        shared.out_wake.notified().await;
        let res = loop {
            let drain = std::future::poll_fn(|cx| shared.out.lock().poll_writer(cx));
            let Some(stall) = shared.output_stall else {
                break drain.await;
            };
            match tokio::time::timeout(stall, drain).await {
                Ok(res) => break res,
                Err(_) => {
                    let out = shared.out.lock();
                    let stalled = out.stalled_for();
                    if stalled >= stall {
                        return WriterEnd::Stalled(stalled, out.backlog());
                    }
                }
            }
        };
        match res {
            Ok(true) => return WriterEnd::Done,
            Ok(false) => {}
            Err(e) => return WriterEnd::Io(e),
        }
    }
}

async fn writer_task(peer: Peer) {
    let _guard = CloseOnDrop {
        peer: peer.clone(),
        report_done: true,
    };
    let shared = &peer.shared;
    let mut abort_rx = shared.abort_tx.subscribe();
    let mut close_rx = shared.close_tx.subscribe();
    let end = tokio::select! {
        biased;
        _ = abort_rx.wait_for(|a| *a) => WriterEnd::Aborted,
        _ = async {
            let _ = close_rx.wait_for(|r| r.is_some()).await;
            tokio::time::sleep(CLOSE_GRACE).await;
        } => WriterEnd::GraceExpired,
        end = drive_output(shared) => end,
    };
    let io = shared.out.lock().finish();
    match end {
        WriterEnd::Done => {
            if let Some(mut io) = io {
                let _ = tokio::time::timeout(CLOSE_GRACE, io.shutdown()).await;
            }
        }
        WriterEnd::Io(e) => {
            debug!(peer = %shared.label, error = %e, "write error");
            shared.write_broken.store(true, Ordering::Release);
            peer.shutdown(CloseReason::Io(e.to_string()), false);
        }
        WriterEnd::Stalled(d, backlog) => {
            warn!(peer = %shared.label, stalled_s = d.as_secs(), backlog,
                "the peer has not read its output for too long, closing");
            peer.shutdown(
                CloseReason::Io("output stalled: the peer does not read".into()),
                false,
            );
        }
        WriterEnd::Aborted => {}
        WriterEnd::GraceExpired => {
            warn!(peer = %shared.label, "graceful close timed out, dropping the connection");
        }
    }
    // Make sure the reader stops too; the guard then reports completion.
    peer.shutdown(CloseReason::Local, false);
    debug!(peer = %shared.label, "connection finished");
}

#[cfg(test)]
mod tests {
    use super::loggable;

    #[test]
    fn frames_with_a_token_are_not_logged() {
        let hello = br#"{"jsonrpc":"2.0","id":1,"method":"hello","params":{"who":"w","method":"password","token":"s3cret"}}"#;
        let shown = loggable(hello);
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("not shown"));
        let create = br#"{"jsonrpc":"2.0","id":2,"method":"create_job","params":{"wfname":"w","inargs":{},"reqauth":{"key":"s3cret"}}}"#;
        let shown = loggable(create);
        assert!(!shown.contains("s3cret"), "{shown}");
        let ping = br#"{"jsonrpc":"2.0","id":1,"method":"ping","params":{}}"#;
        assert_eq!(loggable(ping), String::from_utf8_lossy(ping));
    }
}
