//! The state one server shares among its tasks ([`Shared`]: backend, dispatcher, job
//! registry, connections, limits) and what every part does with it: send offers and
//! `job_done`, check a finished job, poll for ready tasks.

use crate::auth::Authenticator;
use crate::config::{ServerConfig, Timers};
use crate::dispatch::{ConnId, Dispatcher, HandoffTimer, Offer};
use crate::jobs::JobRegistry;
use crate::metrics::Metrics;
use foldhash::HashMap;
use jobcenter_backend::{Backend, JobId, JobStatus, PollRow, WorkerId};
use jobcenter_rpc::Peer;
use parking_lot::Mutex;
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{watch, Notify};
use tokio::task::AbortHandle;
use tokio::time::Instant;
use tracing::{debug, warn};

/// Counts of open sockets, in total and per peer IP address.
#[derive(Default)]
pub(crate) struct Sockets {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
    /// Connections refused since the last log line about it, and when that was.
    refused: u64,
    refused_logged: Option<Instant>,
}

/// One accepted socket, counted in [`Sockets`] until dropped.
pub(crate) struct SocketGuard {
    sh: Arc<Shared>,
    ip: IpAddr,
}

impl Drop for SocketGuard {
    fn drop(&mut self) {
        let mut s = self.sh.sockets.lock();
        s.total = s.total.saturating_sub(1);
        if let Some(n) = s.per_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                s.per_ip.remove(&self.ip);
            }
        }
    }
}

impl Shared {
    /// Count a new socket from `ip`, or refuse it when a connection limit is reached.
    pub(crate) fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<SocketGuard> {
        let limits = self.config.limits;
        let mut s = self.sockets.lock();
        let from_ip = s.per_ip.get(&ip).copied().unwrap_or(0);
        let why = if s.total >= limits.max_connections {
            Some("max connections reached")
        } else if from_ip >= limits.max_connections_per_ip {
            Some("max connections per address reached")
        } else {
            None
        };
        if let Some(why) = why {
            s.refused += 1;
            // One line per second at most: a flood must not flood the log too.
            let now = Instant::now();
            if s.refused_logged
                .is_none_or(|t| now.duration_since(t) >= Duration::from_secs(1))
            {
                warn!(%ip, refused = s.refused, total = s.total, from_ip, "{why}, refusing connections");
                s.refused = 0;
                s.refused_logged = Some(now);
            }
            return None;
        }
        s.total += 1;
        *s.per_ip.entry(ip).or_insert(0) += 1;
        Some(SocketGuard {
            sh: self.clone(),
            ip,
        })
    }
}

/// What the server knows about one live connection.
pub(crate) struct ConnInfo {
    pub(crate) peer: Peer,
    pub(crate) from: SocketAddr,
    pub(crate) who: Option<String>,
    /// The `hello` method it logged in with.
    pub(crate) method: Option<String>,
    pub(crate) peer_cn: Option<String>,
    /// Index of the listener it came in on, in [`ServerConfig::listeners`].
    pub(crate) listener: usize,
    pub(crate) ping: Option<AbortHandle>,
}

/// State shared by every task of one server.
pub(crate) struct Shared {
    pub(crate) backend: Arc<dyn Backend>,
    pub(crate) config: ServerConfig,
    /// Checks `hello` credentials (built from `config.auth`).
    pub(crate) auth: Authenticator,
    /// Lock order: `dispatch` may be held while taking `conns`, never the reverse.
    pub(crate) dispatch: Mutex<Dispatcher>,
    pub(crate) jobs: Mutex<JobRegistry>,
    pub(crate) conns: Mutex<HashMap<ConnId, ConnInfo>>,
    /// Open sockets per peer IP address (accepted, not yet closed), for the limits.
    pub(crate) sockets: Mutex<Sockets>,
    pub(crate) shutting_down: AtomicBool,
    /// Connections closed whose records are not torn down yet (disconnect processing
    /// runs): the `dead` of `get_api_status stats`.
    pub(crate) dead: AtomicUsize,
    /// Prometheus metrics (also the backend's observer).
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) active: watch::Sender<usize>,
    pub(crate) shutdown_tx: watch::Sender<bool>,
    /// Counts [`Event::StoreRecovered`]: what failed on the store is retried on a change.
    pub(crate) store_recovered: watch::Sender<u64>,
    /// Hand-off timers, all with the same delay, so they arrive in deadline order.
    pub(crate) handoffs: HandoffQueue,
}

impl Shared {
    pub(crate) fn timers(&self) -> Timers {
        self.config.timers
    }

    /// The authenticated identity of a connection.
    pub(crate) fn who(&self, conn: ConnId) -> Option<String> {
        self.conns.lock().get(&conn).and_then(|c| c.who.clone())
    }

    pub(crate) fn peer(&self, conn: ConnId) -> Option<Peer> {
        self.conns.lock().get(&conn).map(|c| c.peer.clone())
    }

    /// Wait for the next recovery of the store after `seen` was subscribed (`false`: the
    /// server shuts down first).
    pub(crate) async fn store_recovery(&self, mut seen: watch::Receiver<u64>) -> bool {
        let mut stop = self.shutdown_tx.subscribe();
        tokio::select! {
            r = seen.changed() => r.is_ok(),
            _ = stop.wait_for(|s| *s) => false,
        }
    }
}

/// Send `task_ready` for each offer and start hand-off timers.
pub(crate) fn send_offers(sh: &Arc<Shared>, offers: impl IntoIterator<Item = Offer>) {
    for offer in offers {
        match sh.peer(offer.conn) {
            Some(peer) => {
                debug!(conn = offer.conn, job_id = %offer.job_id, action = %offer.actionname, "task_ready");
                if peer.notify("task_ready", offer.params()).is_err() {
                    debug!(conn = offer.conn, "task_ready to a closed connection");
                }
            }
            None => debug!(conn = offer.conn, "offer for a vanished connection"),
        }
        if let Some(timer) = offer.handoff {
            sh.handoffs.push(sh.timers().handoff, timer);
        }
    }
}

/// Send `job_done` to a connection if it still exists.
/// The pending hand-off timers (§8.4) in due order, fired by one task
/// (`server::handoff_loop`). Every timer has the same delay, so a new one is never due
/// before those queued: the task is woken only when the queue was empty, not per offer.
#[derive(Default)]
pub(crate) struct HandoffQueue {
    queue: Mutex<VecDeque<(Instant, HandoffTimer)>>,
    /// Woken when a timer is queued into an empty queue.
    pub(crate) wake: Notify,
}

impl HandoffQueue {
    /// Queue a timer due `delay` from now.
    pub(crate) fn push(&self, delay: Duration, timer: HandoffTimer) {
        let was_empty = {
            let mut q = self.queue.lock();
            // Computed under the lock, so the queue stays in due order.
            let due = Instant::now() + delay;
            q.push_back((due, timer));
            q.len() == 1
        };
        if was_empty {
            self.wake.notify_one();
        }
    }

    /// When the first queued timer is due, if any.
    pub(crate) fn next_due(&self) -> Option<Instant> {
        self.queue.lock().front().map(|(due, _)| *due)
    }

    /// Take the first timer if it is due at `now`.
    pub(crate) fn pop_due(&self, now: Instant) -> Option<HandoffTimer> {
        let mut q = self.queue.lock();
        if q.front().is_some_and(|(due, _)| *due <= now) {
            q.pop_front().map(|(_, t)| t)
        } else {
            None
        }
    }
}

pub(crate) fn send_job_done(sh: &Shared, conn: ConnId, job_id: Value, outargs: Value) {
    if let Some(peer) = sh.peer(conn) {
        let _ = peer.notify("job_done", json!({"job_id": job_id, "outargs": outargs}));
    }
}

/// Check a job once; if it finished, notify everybody registered for it (§9). If the
/// store fails, check again once it works: the waiters would wait forever otherwise.
/// Run [`check_job`] right here when it finishes without waiting (the memory store
/// answers at once), and in its own task otherwise: no task hand-off per finished job on
/// the fast path.
pub(crate) fn check_job_now(sh: Arc<Shared>, job: JobId) {
    let mut fut = Box::pin(check_job(sh, job));
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    if fut.as_mut().poll(&mut cx).is_pending() {
        // Polled again by the task, which registers its real waker then.
        tokio::spawn(fut);
    }
}

pub(crate) async fn check_job(sh: Arc<Shared>, job: JobId) {
    loop {
        // Subscribed before asking, so a recovery right after the failure is not missed.
        let seen = sh.store_recovered.subscribe();
        if !sh.jobs.lock().is_registered(job) {
            return;
        }
        match sh.backend.get_job_status(job).await {
            Ok(JobStatus::Finished(outargs)) => {
                let waiters = sh.jobs.lock().finish(job);
                for w in waiters {
                    send_job_done(&sh, w.conn, w.job_id, outargs.clone());
                }
                return;
            }
            Ok(_) => return,
            Err(e) => warn!(job, error = %e, "get_job_status after job:finished failed"),
        }
        if !sh.store_recovery(seen).await {
            return;
        }
    }
}

/// One server-wide poll for ready tasks (§8.5).
pub(crate) async fn run_poll(sh: Arc<Shared>) {
    let ids = sh.dispatch.lock().worker_ids();
    if ids.is_empty() {
        return;
    }
    match sh.backend.poll_tasks(ids).await {
        Ok(rows) => {
            let offers = sh.dispatch.lock().poll(rows);
            send_offers(&sh, offers);
        }
        Err(e) => warn!(error = %e, "poll_tasks failed"),
    }
}

/// A poll for one newly announced worker: offers go to that worker only (§7.11 allows
/// polling for a new registration right away; this makes C68 immediate).
pub(crate) async fn run_poll_for(sh: Arc<Shared>, worker_id: WorkerId) {
    match sh.backend.poll_tasks(vec![worker_id]).await {
        Ok(rows) => {
            let rows: Vec<PollRow> = rows
                .into_iter()
                .filter(|r| r.workers.as_ref().is_none_or(|w| w.contains(&worker_id)))
                .map(|r| PollRow {
                    workers: Some(vec![worker_id]),
                    ..r
                })
                .collect();
            let offers = sh.dispatch.lock().poll(rows);
            send_offers(&sh, offers);
        }
        Err(e) => warn!(error = %e, "poll_tasks failed"),
    }
}
