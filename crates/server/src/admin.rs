//! The admin-only methods (docs/PROTOCOL.md §18, our extension): see and steer the jobs.
//!
//! Every method is allowed only to [`crate::ServerConfig::admin`]; anyone else gets the
//! error `permission denied`, as `get_api_status` answers (§7.9). Params are named (an
//! object); an unusable param is a clear error naming it, never a panic.

use std::collections::HashMap;
use std::sync::Arc;

use jobcenter_backend::admin::JobQuery;
use jobcenter_backend::{BackendError, JobId, WorkerId};
use jobcenter_rpc::{HandlerError, Peer, Reply};
use serde_json::{json, Map, Value};
use tracing::info;

use crate::state::Shared;

type Params = Map<String, Value>;
type HResult = Result<Reply, HandlerError>;

/// The admin methods, by name.
pub(crate) const METHODS: &[&str] = &[
    "admin_jobs",
    "admin_job",
    "admin_tree",
    "admin_workers",
    "admin_locks",
    "admin_errors",
    "admin_retry",
    "admin_cancel",
    "admin_disable",
    "admin_enable",
];

/// Whether the connection is logged in as the admin identity.
pub(crate) fn is_admin(sh: &Shared, peer: &Peer) -> bool {
    sh.who(peer.id()).as_deref() == Some(sh.config.admin.as_str())
}

fn fail(reason: impl Into<String>) -> HandlerError {
    HandlerError(reason.into())
}

fn backend(e: BackendError) -> HandlerError {
    HandlerError(e.message)
}

/// The answer, from `serde_json::to_value` of the backend's result.
fn answer(v: serde_json::Result<Value>) -> HResult {
    v.map(Reply::new)
        .map_err(|e| fail(format!("cannot encode the answer: {e}")))
}

/// A non-negative integer param (a JSON number or a decimal string), if present.
fn uint(p: &Params, key: &str) -> Result<Option<u64>, HandlerError> {
    let bad = || fail(format!("{key} must be a non-negative integer"));
    match p.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n.as_u64().map(Some).ok_or_else(bad),
        Some(Value::String(s)) => s.trim().parse::<u64>().map(Some).map_err(|_| bad()),
        Some(_) => Err(bad()),
    }
}

/// The required `job_id` param: a positive integer.
fn job_id(p: &Params) -> Result<JobId, HandlerError> {
    match uint(p, "job_id") {
        Ok(Some(n)) if n > 0 && n <= i64::MAX as u64 => Ok(n as JobId),
        Ok(None) => Err(fail("no job_id?")),
        _ => Err(fail("job_id must be a positive integer")),
    }
}

/// An optional text param (a JSON string).
fn text(p: &Params, key: &str) -> Result<Option<String>, HandlerError> {
    match p.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if !s.is_empty() => Ok(Some(s.clone())),
        Some(_) => Err(fail(format!("{key} must be a non-empty string"))),
    }
}

fn limit(p: &Params) -> Result<usize, HandlerError> {
    Ok(uint(p, "limit")?.map_or(0, |n| n.min(usize::MAX as u64) as usize))
}

/// Run the admin method `name` for the connection `peer`.
pub(crate) async fn call(sh: Arc<Shared>, peer: Peer, name: &str, p: Params) -> HResult {
    if !is_admin(&sh, &peer) {
        return Err(fail("permission denied"));
    }
    let b = &sh.backend;
    match name {
        "admin_jobs" => {
            let q = JobQuery {
                state: text(&p, "state")?,
                workflow: text(&p, "workflow")?,
                since: uint(&p, "since")?,
                before: match uint(&p, "before")? {
                    Some(n) => Some(i64::try_from(n).map_err(|_| fail("before is too large"))?),
                    None => None,
                },
                limit: limit(&p)?,
            };
            answer(serde_json::to_value(
                &b.admin_jobs(q).await.map_err(backend)?,
            ))
        }
        "admin_job" => {
            let id = job_id(&p)?;
            match b.admin_job(id).await.map_err(backend)? {
                Some(d) => answer(serde_json::to_value(&d)),
                None => Err(fail(format!("no job {id}"))),
            }
        }
        "admin_tree" => {
            let id = job_id(&p)?;
            match b.admin_tree(id).await.map_err(backend)? {
                Some(t) => answer(serde_json::to_value(&t)),
                None => Err(fail(format!("no job {id}"))),
            }
        }
        "admin_workers" => workers(&sh).await,
        "admin_locks" => {
            let locks = b
                .admin_locks(text(&p, "locktype")?, limit(&p)?)
                .await
                .map_err(backend)?;
            answer(serde_json::to_value(&locks))
        }
        "admin_errors" => {
            let errs = b
                .admin_errors(uint(&p, "since")?, limit(&p)?)
                .await
                .map_err(backend)?;
            answer(serde_json::to_value(&errs))
        }
        "admin_retry" => {
            let id = job_id(&p)?;
            let r = b.admin_retry(id).await.map_err(backend)?;
            info!(job = id, was = %r.was, action = %r.action, "admin retry");
            answer(serde_json::to_value(&r))
        }
        "admin_cancel" => {
            let id = job_id(&p)?;
            let who = sh.who(peer.id()).unwrap_or_default();
            let reason = text(&p, "reason")?.unwrap_or_else(|| format!("by {who}"));
            if b.admin_cancel(id, reason.clone()).await.map_err(backend)? {
                info!(job = id, %reason, "admin cancel");
                Ok(Reply::new(
                    json!({"job_id": id, "cancelled": true, "reason": reason}),
                ))
            } else {
                Err(fail(format!("job {id} is unknown or has finished already")))
            }
        }
        "admin_disable" | "admin_enable" => {
            let Some(action) = text(&p, "action")? else {
                return Err(fail("no action?"));
            };
            let enabled = name == "admin_enable";
            let changed = b
                .admin_set_action_enabled(action.clone(), enabled)
                .await
                .map_err(backend)?;
            info!(%action, enabled, changed, "admin action setting");
            Ok(Reply::new(
                json!({"action": action, "enabled": enabled, "changed": changed}),
            ))
        }
        other => Err(fail(format!("no admin method {other}"))),
    }
}

/// `admin_workers`: the store's active workers, with this server's connection and slots
/// for those connected here (`local`; `null` for workers of other nodes).
async fn workers(sh: &Shared) -> HResult {
    let listed = sh.backend.admin_workers().await.map_err(backend)?;
    let disabled = sh.backend.admin_disabled_actions().await.map_err(backend)?;
    let local: HashMap<WorkerId, Value> = {
        let d = sh.dispatch.lock();
        let conns = sh.conns.lock();
        conns
            .iter()
            .filter_map(|(conn, c)| {
                let wid = d.worker_id(*conn)?;
                let desc = d.describe_conn(*conn);
                Some((
                    wid,
                    json!({
                        "conn": conn,
                        "from": c.from.to_string(),
                        "who": c.who,
                        "slotgroups": desc.get("slotgroups").cloned().unwrap_or(Value::Null),
                    }),
                ))
            })
            .collect()
    };
    let out: Vec<Value> = listed
        .into_iter()
        .map(|w| {
            let actions: Vec<Value> = w
                .actions
                .iter()
                .map(|a| {
                    json!({
                        "action": a.action,
                        "filter": a.filter,
                        "disabled": disabled.contains(&a.action),
                    })
                })
                .collect();
            json!({
                "worker_id": w.worker_id,
                "name": w.name,
                "started_at": w.started_at,
                "last_ping": w.last_ping,
                "working_on": w.working_on,
                "actions": actions,
                "local": local.get(&w.worker_id).cloned().unwrap_or(Value::Null),
            })
        })
        .collect();
    Ok(Reply::new(
        json!({"workers": out, "disabled_actions": disabled}),
    ))
}
