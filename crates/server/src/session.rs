//! Per-connection method handlers: every C→S method of docs/PROTOCOL.md §7, plus worker pings.

use crate::admin::{self, is_admin};
use crate::auth::AuthFailure;
use crate::dispatch::ConnId;
use crate::jobs::{Registered, Waiter};
use crate::params::{number, optional, required, task_key, truthy};
use crate::reqauth::ReqAuthRequest;
use crate::state::{check_job_now, run_poll_for, send_job_done, send_offers, Shared};
use crate::status;
use jobcenter_backend::{BackendError, CreateJob, JobStatus, WorkerId};
use jobcenter_rpc::{CallError, HandlerError, Methods, Peer, Reply};
use serde_json::{json, Map, Value};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tracing::{debug, info, warn, Instrument};

type Params = Map<String, Value>;
type Watch = tokio::sync::watch::Receiver<u64>;
type HResult = Result<Reply, HandlerError>;

/// The state gate of every method except `hello`. (The reference also answers `ping`
/// before login; we answer nothing but `hello` until a login succeeded.)
const AUTH: Option<&str> = Some("auth");

/// `ERROR:  <message>`: the form of backend errors on the wire (§10.13).
fn backend_text(e: &BackendError) -> String {
    format!("ERROR:  {}", e.message)
}

fn fail(reason: impl Into<String>) -> HandlerError {
    HandlerError(reason.into())
}

fn reply(v: Value) -> HResult {
    Ok(Reply::new(v))
}

/// Build the method table of a server session.
pub(crate) fn methods(sh: &Arc<Shared>) -> Methods {
    let mut m = Methods::new();
    add(&mut m, sh, "hello", None, false, hello);
    add(&mut m, sh, "ping", AUTH, false, |_, _, _| async {
        reply(json!("pong?"))
    });
    add(&mut m, sh, "create_job", AUTH, false, create_job);
    add(&mut m, sh, "get_job_status", AUTH, false, get_job_status);
    add(&mut m, sh, "find_jobs", AUTH, false, find_jobs);
    add(
        &mut m,
        sh,
        "check_if_lock_exists",
        AUTH,
        false,
        check_if_lock_exists,
    );
    add(&mut m, sh, "get_api_status", AUTH, false, get_api_status);
    add(
        &mut m,
        sh,
        "create_slotgroup",
        AUTH,
        false,
        create_slotgroup,
    );
    add(&mut m, sh, "announce", AUTH, false, announce);
    add(&mut m, sh, "withdraw", AUTH, false, withdraw);
    add(&mut m, sh, "get_task", AUTH, false, get_task);
    add(&mut m, sh, "task_done", AUTH, true, task_done);
    for &name in admin::METHODS {
        add(&mut m, sh, name, AUTH, false, move |sh, peer, p| {
            admin::call(sh, peer, name, p)
        });
    }
    m
}

fn add<F, Fut>(
    m: &mut Methods,
    sh: &Arc<Shared>,
    name: &str,
    state: Option<&str>,
    notification: bool,
    f: F,
) where
    F: Fn(Arc<Shared>, Peer, Params) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = HResult> + Send + 'static,
{
    let sh = sh.clone();
    let handler = move |peer: Peer, params: Params| -> jobcenter_rpc::HandlerFuture {
        Box::pin(f(sh.clone(), peer, params))
    };
    if notification {
        m.notification(name, state, handler);
    } else {
        m.request(name, state, handler);
    }
}

async fn hello(sh: Arc<Shared>, peer: Peer, p: Params) -> HResult {
    let who = required(&p, "who", "no who?").map_err(fail)?;
    let method = required(&p, "method", "no method?").map_err(fail)?;
    let token = required(&p, "token", "no token?").map_err(fail)?;
    let conn = peer.id();
    let (cn, from, listener) = {
        let conns = sh.conns.lock();
        let c = conns.get(&conn);
        (
            c.and_then(|c| c.peer_cn.clone()),
            c.map_or_else(|| "?".to_string(), |c| c.from.to_string()),
            c.and_then(|c| sh.config.listeners.get(c.listener)),
        )
    };
    // The listener's own list of methods comes first (§2.1, §14 Q18: enforced here).
    let outcome = match listener {
        Some(l) if !l.allows(&method) => Err(AuthFailure::NotOnListener(method.clone())),
        _ => {
            sh.auth
                .authenticate(&method, &who, &token, cn.as_deref())
                .await
        }
    };
    match outcome {
        Ok(()) => {
            if let Some(c) = sh.conns.lock().get_mut(&conn) {
                c.who = Some(who.clone());
                c.method = Some(method.clone());
            }
            peer.span().record("who", who.as_str());
            peer.set_state(Some("auth"));
            info!(conn, %from, %who, %method, "hello ok");
            reply(json!([true, format!("welcome to the clientapi {who}!")]))
        }
        Err(reason) => {
            // The reason never holds the token (AuthFailure's messages name no secret).
            warn!(conn, %from, %who, %method, %reason, "hello failed, closing");
            peer.set_state(None);
            if let Some(c) = sh.conns.lock().get_mut(&conn) {
                c.who = None;
                c.method = None;
            }
            // Answer a failure only after a while, so that guesses cannot be tried at speed.
            let delay = sh.auth.config().failure_delay;
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            let closer = peer.clone();
            Ok(Reply::new(json!([false, "you're not welcome!"])).after(move || closer.close()))
        }
    }
}

fn who(sh: &Shared, conn: ConnId) -> String {
    sh.who(conn).unwrap_or_default()
}

async fn create_job(sh: Arc<Shared>, peer: Peer, mut p: Params) -> HResult {
    let wfname = required(&p, "wfname", "no workflowname?").map_err(fail)?;
    let mut env = match p.get("clenv") {
        Some(Value::Object(o)) => {
            let mut env = Map::new();
            env.insert("clenv".into(), Value::Object(o.clone()));
            Some(env)
        }
        _ => None,
    };
    // The reference's order: workflow name, environment, per-request authenticator, inargs.
    match request_auth(&sh, &peer, &p, &wfname).await {
        Ok(None) => {}
        Ok(Some(scope)) => {
            env.get_or_insert_with(Map::new)
                .insert("authscope".into(), json!({ "authscope": scope }));
        }
        Err(refusal) => return refusal,
    }
    let inargs = match p.remove("inargs") {
        Some(Value::Object(o)) => o,
        _ => return Err(fail("inargs should be a hashref")),
    };
    let vtag = match p.get("vtag") {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    };
    let timeout = p.get("timeout").map(number).unwrap_or(0.0);
    let conn = peer.id();
    let workflow = wfname.clone();
    let req = CreateJob {
        wfname,
        inargs,
        vtag,
        who: who(&sh, conn),
        env,
    };
    // Taken before the job exists: see `JobRegistry::register_new`.
    let mark = sh.jobs.lock().mark();
    match sh.backend.create_job(req).await {
        Err(e) => reply(json!([null, backend_text(&e)])),
        Ok(job) => {
            debug!(conn, job, "job created");
            sh.metrics.job_created(&workflow);
            let sh2 = sh.clone();
            Ok(Reply::new(json!([job, null])).after(move || {
                // Runs once the result is queued: every job_done comes after it (C37).
                let registered = sh2.jobs.lock().register_new(
                    job,
                    Waiter {
                        conn,
                        job_id: Value::from(job),
                        creator: true,
                    },
                    mark,
                );
                let limit = Duration::try_from_secs_f64(timeout)
                    .ok()
                    .filter(|d| !d.is_zero() && timeout > 0.0);
                if let Some(limit) = limit {
                    let sh3 = sh2.clone();
                    let timer = tokio::spawn(async move {
                        tokio::time::sleep(limit).await;
                        let waiter = sh3.jobs.lock().timeout(job, conn);
                        if let Some(w) = waiter {
                            debug!(conn, job, "create_job timeout");
                            send_job_done(&sh3, w.conn, w.job_id, json!({"error": "timeout"}));
                        }
                    });
                    sh2.jobs.lock().set_timer(job, timer.abort_handle());
                }
                // Its job:finished came before the waiter: read the result (rare).
                if registered == Registered::CheckNow {
                    check_job_now(sh2, job);
                }
            }))
        }
    }
}

/// Run the per-request authenticator of §11.5, if one is configured: `Ok(None)` without
/// one, `Ok(Some(scope))` when it allows the request, and the `[null, message]` answer
/// (as an `Err` to return at once) when it refuses.
async fn request_auth(
    sh: &Arc<Shared>,
    peer: &Peer,
    p: &Params,
    wfname: &str,
) -> Result<Option<Value>, HResult> {
    let Some(plugin) = sh.auth.config().request_auth.clone() else {
        return Ok(None);
    };
    let req = {
        let conns = sh.conns.lock();
        let c = conns.get(&peer.id());
        ReqAuthRequest {
            who: c.and_then(|c| c.who.clone()).unwrap_or_default(),
            method: c.and_then(|c| c.method.clone()).unwrap_or_default(),
            peer_cn: c.and_then(|c| c.peer_cn.clone()),
            from: c.map_or_else(|| ([0, 0, 0, 0], 0).into(), |c| c.from),
            wfname: wfname.to_string(),
            reqauth: p.get("reqauth").cloned(),
        }
    };
    let span = tracing::Span::current();
    let decision = tokio::task::spawn_blocking(move || span.in_scope(|| plugin.check(&req)))
        .await
        .unwrap_or_else(|e| {
            warn!(error = %e, "the per-request authenticator failed");
            Err("reqauth: check failed".to_string())
        });
    match decision {
        Ok(scope) => Ok(Some(scope)),
        Err(message) => Err(reply(json!([null, message]))),
    }
}

async fn get_job_status(sh: Arc<Shared>, peer: Peer, p: Params) -> HResult {
    if !truthy(p.get("job_id")) {
        return Err(fail("no job_id?"));
    }
    let raw = p.get("job_id").cloned().unwrap_or(Value::Null);
    let text = crate::params::text(&raw);
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(fail(format!("invalid {text}")));
    }
    let Ok(job) = text.parse::<i64>() else {
        return reply(json!([
            null,
            format!("ERROR:  value \"{text}\" is out of range for type bigint")
        ]));
    };
    let notify = truthy(p.get("notify"));
    let conn = peer.id();
    if notify {
        // register before asking (§7.6): a job finishing in between is not lost
        sh.jobs.lock().register(
            job,
            Waiter {
                conn,
                job_id: raw,
                creator: false,
            },
        );
    }
    let status = sh.backend.get_job_status(job).await;
    let (result, done) = match status {
        Ok(JobStatus::Running) => (json!([null, null]), false),
        Ok(JobStatus::Unknown) => (json!([null, {"error": format!("no job {text}")}]), true),
        Ok(JobStatus::Finished(out)) => (json!([job, out]), true),
        Err(e) => (json!([null, backend_text(&e)]), true),
    };
    if notify && done {
        sh.jobs.lock().unregister_notify(job, conn);
    }
    reply(result)
}

async fn find_jobs(sh: Arc<Shared>, _peer: Peer, p: Params) -> HResult {
    let filter = match p.get("filter") {
        v if !truthy(v) => return Err(fail("no job_id?")),
        Some(Value::String(s)) => match serde_json::from_str::<Value>(s) {
            Ok(v) => v,
            Err(e) => {
                return reply(json!([
                    null,
                    format!("ERROR:  invalid input syntax for type json\nDETAIL:  {e}")
                ]))
            }
        },
        // lenient extension: an object is used as it is
        Some(v) => v.clone(),
        None => return Err(fail("no job_id?")),
    };
    match &filter {
        Value::Object(o) if o.is_empty() => {
            return reply(json!([
                null,
                "ERROR:  using an empty filter is not allowed"
            ]))
        }
        Value::Object(_) => {}
        _ => return reply(json!([null, "ERROR:  invalid input syntax for type json"])),
    }
    match sh.backend.find_jobs(filter).await {
        Ok(ids) => reply(Value::Array(ids.into_iter().map(Value::from).collect())),
        Err(e) => reply(json!([null, backend_text(&e)])),
    }
}

async fn check_if_lock_exists(sh: Arc<Shared>, _peer: Peer, p: Params) -> HResult {
    let locktype = required(&p, "locktype", "no locktype?").map_err(fail)?;
    let lockvalue = required(&p, "lockvalue", "no lockvalue?").map_err(fail)?;
    match sh.backend.check_if_lock_exists(locktype, lockvalue).await {
        Ok(Some(b)) => reply(Value::Bool(b)),
        Ok(None) => reply(Value::Null),
        Err(e) => Err(fail(backend_text(&e))),
    }
}

async fn get_api_status(sh: Arc<Shared>, peer: Peer, p: Params) -> HResult {
    if !is_admin(&sh, &peer) {
        return Err(fail("permission denied"));
    }
    let what = required(&p, "what", "what status?").map_err(fail)?;
    reply(status::api_status(&sh, &what))
}

fn positive_slots(v: Option<&Value>) -> Result<f64, HandlerError> {
    let slots = match v {
        None | Some(Value::Null) => 1.0,
        Some(v) => number(v),
    };
    if slots > 0.0 {
        Ok(slots)
    } else {
        Err(fail("slots should be a positive number"))
    }
}

async fn create_slotgroup(sh: Arc<Shared>, peer: Peer, p: Params) -> HResult {
    let name = required(&p, "name", "slotgroup name required").map_err(fail)?;
    if name.starts_with('_') {
        return Err(fail("invalid slotgroup name"));
    }
    let slots = positive_slots(p.get("slots"))?;
    sh.dispatch
        .lock()
        .create_slotgroup(peer.id(), &name, slots)
        .map_err(|e| fail(e.to_string()))?;
    reply(json!(""))
}

async fn announce(sh: Arc<Shared>, peer: Peer, p: Params) -> HResult {
    let conn = peer.id();
    let action = required(&p, "actionname", "actionname required").map_err(fail)?;
    let group = optional(&p, "slotgroup");
    if group.is_some() && truthy(p.get("slots")) {
        return Err(fail("cannot provide both slotgroup and slots"));
    }
    let slots = match &group {
        Some(g) => {
            if !sh.dispatch.lock().slotgroup_exists(conn, g) {
                return Err(fail(format!("slotgroup {g} does not exist")));
            }
            None
        }
        None => Some(positive_slots(p.get("slots"))?),
    };
    let filter = match p.get("filter") {
        None | Some(Value::Null) => None,
        Some(v @ Value::Object(_)) => Some(v.clone()),
        Some(_) => return Err(fail("filter must be a json object")),
    };
    let (slotgroup, workername) = {
        let mut d = sh.dispatch.lock();
        let slotgroup = match (group, slots) {
            (Some(g), _) => g,
            (None, s) => d.set_private_slotgroup(conn, &action, s.unwrap_or(1.0)),
        };
        let workername = optional(&p, "workername")
            .or_else(|| d.workername(conn))
            .unwrap_or_else(|| who(&sh, conn));
        (slotgroup, workername)
    };
    let res = sh
        .backend
        .announce(
            workername.clone(),
            action.clone(),
            who(&sh, conn),
            filter.clone(),
        )
        .await;
    let worker_id = match res {
        Ok(id) => id,
        Err(e) => return reply(json!([false, backend_text(&e)])),
    };
    info!(conn, %workername, %action, worker_id, "announced");
    let sh2 = sh.clone();
    Ok(Reply::new(json!([true, "success"])).after(move || {
        // Registered only once the result is queued, so no task_ready can overtake it.
        let registered = {
            let mut d = sh2.dispatch.lock();
            let alive = sh2.conns.lock().contains_key(&conn);
            if alive {
                d.register(conn, &workername, worker_id, &action, &slotgroup, filter);
            }
            alive
        };
        if !registered {
            // the connection vanished during the backend call: undo the registration
            tokio::spawn(async move {
                let _ = sh2.backend.disconnect(worker_id).await;
            });
            return;
        }
        start_pinging(&sh2, &peer);
        // offer work that was ready before the announce right away (§7.11 allows it)
        tokio::spawn(run_poll_for(sh2, worker_id));
    }))
}

/// Start the server→worker ping timer of a connection unless it runs (§7.3).
fn start_pinging(sh: &Arc<Shared>, peer: &Peer) {
    let conn = peer.id();
    let mut conns = sh.conns.lock();
    let Some(c) = conns.get_mut(&conn) else {
        return;
    };
    if c.ping.is_some() {
        return;
    }
    let task = tokio::spawn(ping_loop(sh.clone(), peer.clone()).instrument(peer.span().clone()));
    c.ping = Some(task.abort_handle());
}

fn stop_pinging(sh: &Shared, conn: ConnId) {
    if let Some(ping) = sh.conns.lock().get_mut(&conn).and_then(|c| c.ping.take()) {
        ping.abort();
    }
}

async fn ping_loop(sh: Arc<Shared>, peer: Peer) {
    let timers = sh.timers();
    let conn = peer.id();
    loop {
        tokio::time::sleep(timers.ping_interval).await;
        match peer
            .call_timeout("ping", json!({}), timers.ping_timeout)
            .await
        {
            Ok(_) => {
                let (was_stuck, worker_id) = {
                    let mut d = sh.dispatch.lock();
                    (d.alive(conn), d.worker_id(conn))
                };
                if let (true, Some(id)) = (was_stuck, worker_id) {
                    tokio::spawn(crate::state::run_poll_for(sh.clone(), id));
                }
                if let Some(id) = worker_id {
                    match sh.backend.ping(id).await {
                        Ok(true) => {}
                        Ok(false) => {
                            if close_released_worker(&sh, &peer, id) {
                                return;
                            }
                        }
                        Err(e) => warn!(conn, error = %e, "backend ping failed"),
                    }
                }
            }
            Err(CallError::Timeout) => {
                warn!(conn, "no ping reply in time, closing");
                peer.abort();
                return;
            }
            Err(CallError::Closed) => return,
            Err(e) => warn!(conn, error = %e, "ping answered with an error"),
        }
    }
}

/// The backend says worker `id` is not active although this connection still has actions
/// announced: it was released behind the connection's back (another node took this node
/// for dead, or housekeeping found its pings too old), and its claims with it. The
/// connection is closed like a lost worker's, so that the worker connects and announces
/// again instead of being offered tasks it can never claim. Whether it was closed.
fn close_released_worker(sh: &Shared, peer: &Peer, id: WorkerId) -> bool {
    let conn = peer.id();
    // A withdraw of the last action updates the dispatcher first: that is not a release.
    if !sh.dispatch.lock().has_actions(conn) {
        return false;
    }
    warn!(
        conn,
        worker_id = id,
        "the backend released this worker (lease or ping timeout): closing its connection"
    );
    peer.abort();
    true
}

async fn withdraw(sh: Arc<Shared>, peer: Peer, p: Params) -> HResult {
    let conn = peer.id();
    let action = required(&p, "actionname", "actionname required").map_err(fail)?;
    let (workername, any_left) = {
        let mut d = sh.dispatch.lock();
        let w = d.withdraw(conn, &action).map_err(|e| fail(e.to_string()))?;
        (w, d.has_actions(conn))
    };
    if !any_left {
        stop_pinging(&sh, conn);
    }
    match sh.backend.withdraw(workername, action).await {
        Ok(_) => reply(json!(1)),
        Err(e) => Err(fail(backend_text(&e))),
    }
}

async fn get_task(sh: Arc<Shared>, peer: Peer, p: Params) -> HResult {
    let conn = peer.id();
    let action = p
        .get("actionname")
        .map(crate::params::text)
        .unwrap_or_default();
    let Some(key) = p.get("job_id").and_then(task_key) else {
        return reply(json!([]));
    };
    let (taken, workername) = {
        let mut d = sh.dispatch.lock();
        if d.alive(conn) {
            if let Some(worker_id) = d.worker_id(conn) {
                tokio::spawn(crate::state::run_poll_for(sh.clone(), worker_id));
            }
        }
        let Some(t) = d.take_offer(&key) else {
            return reply(json!([]));
        };
        (t, d.workername(conn))
    };
    let Some(workername) = workername else {
        let next = sh.dispatch.lock().claim_failed(taken);
        send_offers(&sh, next);
        return reply(json!([]));
    };
    match sh
        .backend
        .get_task(workername, action, taken.job_id())
        .await
    {
        Err(e) => {
            info!(conn, error = %e, "get_task failed in the backend");
            let (next, worker_id) = {
                let mut d = sh.dispatch.lock();
                (d.claim_failed(taken), d.worker_id(conn))
            };
            send_offers(&sh, next);
            // A worker the backend no longer knows would be offered tasks again and again.
            if let Some(id) = worker_id {
                if matches!(sh.backend.ping(id).await, Ok(false)) {
                    close_released_worker(&sh, &peer, id);
                }
            }
            reply(json!([]))
        }
        Ok(None) => {
            let next = sh.dispatch.lock().claim_nothing(taken);
            send_offers(&sh, next);
            reply(json!([]))
        }
        Ok(Some(claim)) => {
            sh.metrics.task_dispatched(taken.action());
            if !sh
                .dispatch
                .lock()
                .claimed(taken, claim.job_id, &claim.cookie)
            {
                warn!(
                    conn,
                    job = claim.job_id,
                    "claimed for a connection that is gone"
                );
            }
            reply(json!([claim.job_id, claim.cookie, claim.inargs, claim.env]))
        }
    }
}

async fn task_done(sh: Arc<Shared>, _peer: Peer, mut p: Params) -> HResult {
    let cookie = required(&p, "cookie", "task_done: no cookie!?").map_err(fail)?;
    if !truthy(p.get("outargs")) {
        return Err(fail("task_done: no outargs!?"));
    }
    let outargs = match p.remove("outargs") {
        Some(v @ (Value::Object(_) | Value::Array(_))) => v,
        Some(v) => json!([v]),
        None => return Err(fail("task_done: no outargs!?")),
    };
    let Some(taken) = sh.dispatch.lock().take_claim(&cookie) else {
        debug!(%cookie, "task_done for an unknown cookie ignored");
        return reply(json!([]));
    };
    // The worker is done with the task: its slot is free now, before the backend is asked
    // (§8.8 step 3 moved ahead of step 2). A durable backend sends the `job_done` before it
    // answers here, and a client may create its next job at once; the original handles that
    // notification in its event loop only after this handler, so there the slot is always
    // free by then. Released after the answer, the next job's offer found the slot taken and
    // went out as a poll offer (`please_...`) with an extra round trip.
    let next = sh.dispatch.lock().done(taken);
    send_offers(&sh, next);
    let seen = sh.store_recovered.subscribe();
    if let Err(e) = sh.backend.task_done(cookie.clone(), outargs.clone()).await {
        warn!(%cookie, error = %e, "task_done failed in the backend");
        tokio::spawn(retry_task_done(sh.clone(), cookie, outargs, seen));
    }
    reply(json!([]))
}

/// A failed `task_done` changed nothing: the job still waits for this claim, and the worker
/// does not send its result twice. Report it again each time the store works again, until
/// it is taken (a claim released meanwhile makes the cookie unknown: ignored, done).
async fn retry_task_done(sh: Arc<Shared>, cookie: String, outargs: Value, mut seen: Watch) {
    while sh.store_recovery(seen).await {
        seen = sh.store_recovered.subscribe();
        match sh.backend.task_done(cookie.clone(), outargs.clone()).await {
            Ok(()) => {
                info!(%cookie, "task_done reported again after the store recovered");
                return;
            }
            Err(e) => warn!(%cookie, error = %e, "task_done failed in the backend again"),
        }
    }
}
