//! The server: listeners, per-connection lifecycle, backend events, polls and shutdown.

use crate::auth::{AuthFileError, AuthFilesLoaded, AuthStats, Authenticator};
use crate::config::ServerConfig;
use crate::dispatch::{ConnId, Dispatcher};
use crate::jobs::JobRegistry;
use crate::metrics::Metrics;
use crate::state::{
    check_job_now, run_poll, run_poll_for, send_job_done, send_offers, ConnInfo, Shared, Sockets,
};
use crate::{http, session, tls, ServerError};
use foldhash::{HashMap, HashMapExt};
use jobcenter_backend::{Backend, Event, EventSink};
use jobcenter_rpc::{CloseReason, Methods, Peer, PeerConfig};
use parking_lot::Mutex;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tracing::field::Empty;
use tracing::{debug, info, info_span, warn, Instrument, Span};

/// The greeting every connection gets first (C1), byte for byte.
pub const GREETING_FRAME: &[u8] =
    br#"79:{"jsonrpc":"2.0","method":"greetings","params":{"who":"jcapi","version":"1.1"}},"#;

/// How long disconnect processing waits for the requests a closed connection sent before.
const HANDLERS_GRACE: Duration = Duration::from_secs(30);

/// How long [`ServerHandle::shutdown`] waits for connections to finish closing.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(15);

/// Fires hand-off timers (§8.4). One task and a FIFO ([`crate::state::HandoffQueue`]) instead of one
/// sleeping task per offer: every timer has the same delay, so deadlines arrive in order,
/// and the task sleeps until the first one is due without being woken by every offer.
async fn handoff_loop(sh: Arc<Shared>) {
    loop {
        let Some(next) = sh.handoffs.next_due() else {
            let woken = sh.handoffs.wake.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            if sh.handoffs.next_due().is_none() {
                woken.await;
            }
            continue;
        };
        tokio::time::sleep_until(next).await;
        let now = Instant::now();
        while let Some(timer) = sh.handoffs.pop_due(now) {
            let next = sh.dispatch.lock().handoff(&timer.key, timer.token);
            if !next.is_empty() {
                debug!(key = %timer.key, moved = next.len(), "offer not claimed in time, handing off");
            }
            send_offers(&sh, next);
        }
    }
}

/// The server entry point.
pub struct Server;

impl Server {
    /// Bind every listener, start the backend event loop and the periodic poll, and serve.
    pub async fn start(
        config: ServerConfig,
        backend: Arc<dyn Backend>,
    ) -> Result<ServerHandle, ServerError> {
        let mut bound = Vec::new();
        for l in &config.listeners {
            let acceptor = match &l.tls {
                Some(t) => Some(tls::acceptor(t)?),
                None => None,
            };
            let listener = TcpListener::bind(l.addr)
                .await
                .map_err(|source| ServerError::Bind {
                    addr: l.addr,
                    source,
                })?;
            let addr = listener.local_addr().map_err(ServerError::Io)?;
            info!(%addr, tls = acceptor.is_some(), "listening");
            bound.push((listener, addr, acceptor));
        }
        let http_bound = match &config.http {
            Some(h) => {
                let listener =
                    TcpListener::bind(h.addr)
                        .await
                        .map_err(|source| ServerError::Bind {
                            addr: h.addr,
                            source,
                        })?;
                let addr = listener.local_addr().map_err(ServerError::Io)?;
                info!(%addr, no_auth = h.metrics_no_auth, "http listening (/metrics)");
                Some((listener, addr, h.clone()))
            }
            None => None,
        };
        let auth = Authenticator::new(config.auth.clone())?;
        let metrics = Arc::new(Metrics::new());
        backend.set_observer(metrics.clone());
        let sh = Arc::new(Shared {
            backend,
            auth,
            config,
            dispatch: Mutex::new(Dispatcher::new()),
            jobs: Mutex::new(JobRegistry::new()),
            conns: Mutex::new(HashMap::new()),
            sockets: Mutex::new(Sockets::default()),
            shutting_down: AtomicBool::new(false),
            dead: AtomicUsize::new(0),
            metrics,
            active: watch::channel(0).0,
            shutdown_tx: watch::channel(false).0,
            store_recovered: watch::channel(0).0,
            handoffs: Default::default(),
        });
        // Events where they happen when the backend can; else through its channel.
        let (to_loop, from_sink) = tokio::sync::mpsc::unbounded_channel();
        let events = if sh.backend.set_event_sink(event_sink(&sh, to_loop)) {
            from_sink
        } else {
            sh.backend.subscribe()
        };
        let methods = Arc::new(session::methods(&sh));
        let mut tasks = Vec::new();
        let mut addrs = Vec::new();
        for (ix, (listener, addr, acceptor)) in bound.into_iter().enumerate() {
            addrs.push(addr);
            tasks.push(tokio::spawn(accept_loop(
                sh.clone(),
                (ix, listener),
                acceptor,
                methods.clone(),
            )));
        }
        let mut http_addr = None;
        if let Some((listener, addr, cfg)) = http_bound {
            http_addr = Some(addr);
            tasks.push(tokio::spawn(http::accept_loop(sh.clone(), listener, cfg)));
        }
        tasks.push(tokio::spawn(event_loop(sh.clone(), events)));
        tasks.push(tokio::spawn(poll_loop(sh.clone())));
        tasks.push(tokio::spawn(handoff_loop(sh.clone())));
        Ok(ServerHandle {
            shared: sh,
            addrs,
            http_addr,
            tasks,
        })
    }
}

/// A running server. Dropping it leaves the server running; call [`ServerHandle::shutdown`].
pub struct ServerHandle {
    shared: Arc<Shared>,
    addrs: Vec<SocketAddr>,
    http_addr: Option<SocketAddr>,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for ServerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerHandle")
            .field("addrs", &self.addrs)
            .finish()
    }
}

impl ServerHandle {
    /// The bound address of every listener, in configuration order.
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// The bound address of the HTTP listener, if one is configured.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http_addr
    }

    /// Number of open connections.
    pub fn connection_count(&self) -> usize {
        self.shared.conns.lock().len()
    }

    /// The password-check counters: how many run now, the most that ran at once, how many
    /// finished.
    pub fn auth_stats(&self) -> AuthStats {
        self.shared.auth.stats()
    }

    /// Read and validate the password and CN files again (as on SIGHUP). On success the
    /// next `hello` uses them; on an error the files loaded before stay in use.
    pub fn reload_auth(&self) -> Result<AuthFilesLoaded, AuthFileError> {
        self.shared.auth.reload()
    }

    /// How many entries the password and CN files in use hold.
    pub fn auth_files_loaded(&self) -> AuthFilesLoaded {
        self.shared.auth.loaded()
    }

    /// Run one poll for ready tasks now (as the periodic timer does).
    pub async fn poll_now(&self) {
        run_poll(self.shared.clone()).await;
    }

    /// Stop accepting, close every connection gracefully, run disconnect processing for
    /// each (§8.11), and stop the event loop and the poll timer.
    pub async fn shutdown(self) {
        let sh = self.shared;
        sh.shutting_down.store(true, Ordering::SeqCst);
        sh.shutdown_tx.send_replace(true);
        for t in &self.tasks {
            t.abort();
        }
        let peers: Vec<Peer> = sh.conns.lock().values().map(|c| c.peer.clone()).collect();
        info!(connections = peers.len(), "shutting down");
        for p in &peers {
            p.close();
        }
        let mut rx = sh.active.subscribe();
        if tokio::time::timeout(SHUTDOWN_GRACE, rx.wait_for(|n| *n == 0))
            .await
            .is_err()
        {
            warn!("connections still open after the shutdown grace period");
        }
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

/// Counts a connection task as active while it lives.
struct ActiveGuard(Arc<Shared>);

impl ActiveGuard {
    fn new(sh: &Arc<Shared>) -> Self {
        sh.active.send_modify(|n| *n += 1);
        ActiveGuard(sh.clone())
    }
}

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.active.send_modify(|n| *n = n.saturating_sub(1));
    }
}

async fn accept_loop(
    sh: Arc<Shared>,
    (listener_ix, listener): (usize, TcpListener),
    tls: Option<TlsAcceptor>,
    methods: Arc<Methods>,
) {
    loop {
        let (stream, from) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        if sh.shutting_down.load(Ordering::SeqCst) {
            return;
        }
        let accepted = Instant::now();
        // Over a limit: the socket is dropped (closed) at once, before any byte is sent.
        let Some(socket) = sh.admit(from.ip()) else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let guard = ActiveGuard::new(&sh);
        let sh = sh.clone();
        let tls = tls.clone();
        let methods = methods.clone();
        let listener = listener_ix;
        // Every line logged about this connection, by the server or its peer, carries these.
        let span = info_span!("conn", peer = %from, conn = Empty, who = Empty);
        let conn_span = span.clone();
        let task = async move {
            let _guard = guard;
            let _socket = socket;
            let deadline = accepted + sh.config.limits.handshake_timeout;
            let conn = Conn {
                from,
                listener,
                span: conn_span,
                deadline,
            };
            match tls {
                None => serve(sh, stream, conn, None, methods).await,
                Some(acceptor) => {
                    match tokio::time::timeout_at(deadline, acceptor.accept(stream)).await {
                        Ok(Ok(s)) => {
                            let cn = s
                                .get_ref()
                                .1
                                .peer_certificates()
                                .and_then(|c| c.first())
                                .and_then(|c| tls::cert_common_name(c));
                            serve(sh, s, conn, cn, methods).await
                        }
                        Ok(Err(e)) => info!(%from, error = %e, "TLS handshake failed"),
                        Err(_) => info!(%from, "TLS handshake timed out"),
                    }
                }
            }
        };
        tokio::spawn(task.instrument(span));
    }
}

/// An accepted connection: where from, on which listener, its span, its login deadline.
struct Conn {
    from: SocketAddr,
    /// Index of the listener in [`ServerConfig::listeners`].
    listener: usize,
    span: Span,
    /// A connection that has not logged in by then is closed.
    deadline: Instant,
}

/// Serve one connection: greeting, the JSON-RPC peer, then disconnect processing. A
/// connection that has not logged in by its deadline is closed.
async fn serve<S>(
    sh: Arc<Shared>,
    mut io: S,
    c: Conn,
    peer_cn: Option<String>,
    methods: Arc<Methods>,
) where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let Conn {
        from,
        listener,
        span,
        deadline: login_deadline,
    } = c;
    if sh.shutting_down.load(Ordering::SeqCst) {
        return;
    }
    // The greeting goes out before the peer exists, so it is certainly the first frame.
    let greet = async {
        io.write_all(GREETING_FRAME).await?;
        io.flush().await
    };
    match tokio::time::timeout_at(login_deadline, greet).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            info!(%from, error = %e, "cannot send greetings");
            return;
        }
        Err(_) => {
            info!(%from, "greeting not taken before the login deadline, closing");
            return;
        }
    }
    let peer = {
        // Hold the table lock while spawning, so handlers always find their connection.
        let mut conns = sh.conns.lock();
        let limits = sh.config.limits;
        let mut cfg = PeerConfig::new(limits.max_frame, format!("client {from}"));
        cfg.max_in_flight = limits.max_in_flight;
        cfg.max_output = limits.max_output;
        cfg.output_stall_timeout = Some(limits.output_stall_timeout);
        cfg.span = span;
        let peer = Peer::spawn(io, methods, cfg);
        conns.insert(
            peer.id(),
            ConnInfo {
                peer: peer.clone(),
                from,
                who: None,
                method: None,
                peer_cn,
                listener,
                ping: None,
            },
        );
        peer
    };
    let conn = peer.id();
    info!(%from, conn, "connection accepted");
    let reason = watch_connection(&sh, &peer, login_deadline).await;
    info!(%from, conn, %reason, "connection closed");
    sh.dead.fetch_add(1, Ordering::SeqCst);
    // What the peer sent before it closed is acted on first: a `task_done` read just before
    // the close must reach the engine before the disconnect releases the worker's tasks, or
    // the task would run again although its result was sent.
    if tokio::time::timeout(HANDLERS_GRACE, peer.requests_done())
        .await
        .is_err()
    {
        warn!(%from, conn, "requests still running after the close; disconnecting anyway");
    }
    disconnect(&sh, conn).await;
    sh.dead.fetch_sub(1, Ordering::SeqCst);
}

/// Until the connection closes: close it when it has not logged in by `login_deadline`,
/// and tell the dispatcher when it stops or resumes reading what it is sent.
async fn watch_connection(sh: &Arc<Shared>, peer: &Peer, login_deadline: Instant) -> CloseReason {
    let conn = peer.id();
    let mut congestion = peer.congestion();
    let mut deadline = Some(login_deadline);
    loop {
        tokio::select! {
            reason = peer.closed() => return reason,
            _ = tokio::time::sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => {
                deadline = None;
                if sh.who(conn).is_none() {
                    info!(conn, "no successful hello before the login deadline, closing");
                    peer.close();
                }
            }
            changed = congestion.changed() => {
                if changed.is_err() {
                    return peer.closed().await;
                }
                let congested = *congestion.borrow_and_update();
                let moved = sh.dispatch.lock().congested(conn, congested);
                if congested {
                    info!(conn, backlog = peer.backlog(), moved = moved.len(),
                        "the connection does not read what it is sent: no offers to it until it does");
                    send_offers(sh, moved);
                } else if let Some(worker_id) = sh.dispatch.lock().worker_id(conn) {
                    debug!(conn, "the connection reads again");
                    tokio::spawn(run_poll_for(sh.clone(), worker_id));
                }
            }
        }
    }
}

/// Disconnect processing (§8.9).
async fn disconnect(sh: &Arc<Shared>, conn: ConnId) {
    let info = sh.conns.lock().remove(&conn);
    if let Some(ping) = info.and_then(|i| i.ping) {
        ping.abort();
    }
    let worker = sh.dispatch.lock().disconnect(conn);
    if let Some((worker_id, w)) = worker {
        debug!(conn, workername = %w, worker_id, "backend disconnect");
        if let Err(e) = sh.backend.disconnect(worker_id).await {
            warn!(conn, workername = %w, worker_id, error = %e, "backend disconnect failed");
        }
    }
}

async fn event_loop(sh: Arc<Shared>, mut events: tokio::sync::mpsc::UnboundedReceiver<Event>) {
    let mut stop = sh.shutdown_tx.subscribe();
    loop {
        let ev = tokio::select! {
            ev = events.recv() => ev,
            _ = stop.wait_for(|s| *s) => return,
        };
        match ev {
            None => {
                warn!("backend event stream ended");
                return;
            }
            Some(ev) => {
                handle_event(&sh, ev);
            }
        }
    }
}

/// The sink given to the backend ([`Backend::set_event_sink`]): an event is acted on right
/// where it was raised, which saves a task hop and a thread wake-up per event. That is a
/// tokio thread (a connection's call into the memory store, the engine's timer task), the
/// store thread of a durable store after its sync, or the listener of other nodes' events:
/// offers and `job_done`s only take locks and write to sockets without waiting, so any
/// thread can send them. What needs a task (reading a result left out of the event, the
/// poll after a store recovery) goes to the event loop task when raised off a tokio thread.
fn event_sink(sh: &Arc<Shared>, to_loop: tokio::sync::mpsc::UnboundedSender<Event>) -> EventSink {
    let weak = Arc::downgrade(sh);
    Arc::new(move |ev: Event| {
        let anywhere = matches!(
            ev,
            Event::ActionReady { .. }
                | Event::JobFinished {
                    outargs: Some(_),
                    ..
                }
        );
        if !anywhere && tokio::runtime::Handle::try_current().is_err() {
            let _ = to_loop.send(ev);
            return false;
        }
        match weak.upgrade() {
            Some(sh) => handle_event(&sh, ev),
            None => false,
        }
    })
}

/// Act on one backend event: offers for ready tasks, `job_done` for finished jobs. `true`
/// when a ready task was offered to a worker here ([`EventSink`]).
fn handle_event(sh: &Arc<Shared>, ev: Event) -> bool {
    match ev {
        Event::JobFinished {
            job_id,
            outargs: Some(outargs),
        } => {
            // The result is committed (synced) before the event is sent: tell it as is.
            let waiters = sh.jobs.lock().finished(job_id);
            for w in waiters {
                send_job_done(sh, w.conn, w.job_id, outargs.clone());
            }
            false
        }
        Event::JobFinished {
            job_id,
            outargs: None,
        } => {
            // Left out of the event (too large for NOTIFY): read it if anybody waits.
            if sh.jobs.lock().finished_unread(job_id) {
                check_job_now(sh.clone(), job_id);
            }
            false
        }
        Event::ActionReady {
            action,
            job_id,
            workers,
        } => {
            let offer = sh.dispatch.lock().ready(&action, job_id, workers);
            let offered = offer.is_some();
            send_offers(sh, offer);
            offered
        }
        Event::StoreRecovered => {
            info!("the store works again: polling for ready tasks, retrying what failed");
            sh.store_recovered.send_modify(|n| *n += 1);
            tokio::spawn(run_poll(sh.clone()));
            false
        }
    }
}

async fn poll_loop(sh: Arc<Shared>) {
    let period = sh.timers().poll;
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        run_poll(sh.clone()).await;
    }
}
