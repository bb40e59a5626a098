//! `get_api_status`: the `stats` object and free-form text dumps (§7.9).
//!
//! `stats` has the reference's members and more (all integers):
//! - `clients`: connection records; `dead`: of those, connections already closed whose
//!   records are still being torn down (disconnect processing: waiting for the requests
//!   they sent, releasing a worker's tasks), the reference's meaning (docs/PROTOCOL.md §7.9);
//!   `workers`: connections with at least one announced action.
//! - `jobs`: jobs a client of this server waits for (`create_job` with a wait, or
//!   `get_job_status` notify); `tasks`: tasks offered to or claimed by this server's
//!   workers (the task table).
//! - Totals since the server started: `jobs_created`, `jobs_finished` (ended, with or
//!   without an error), `jobs_failed`, `tasks_dispatched` (claimed by a worker). Finished
//!   jobs are those the backend finished while this server observed it.

use crate::state::Shared;
use serde_json::{json, Value};

/// The result of `get_api_status` for `what` (permission already checked).
pub(crate) fn api_status(sh: &Shared, what: &str) -> Value {
    match what {
        "stats" => {
            let (workers, tasks) = {
                let d = sh.dispatch.lock();
                (d.worker_count(), d.task_count())
            };
            let clients = sh.conns.lock().len();
            let jobs = sh.jobs.lock().len();
            let dead = sh.dead.load(std::sync::atomic::Ordering::SeqCst);
            let t = sh.metrics.totals();
            json!({
                "clients": clients,
                "dead": dead,
                "workers": workers,
                "jobs": jobs,
                "tasks": tasks,
                "jobs_created": t.jobs_created,
                "jobs_finished": t.jobs_finished,
                "jobs_failed": t.jobs_failed,
                "tasks_dispatched": t.tasks_dispatched,
            })
        }
        "clients" | "clientsraw" => Value::String(pretty(&clients(sh))),
        "jobs" => Value::String(pretty(&sh.jobs.lock().describe())),
        "tasks" => Value::String(pretty(&sh.dispatch.lock().describe_tasks())),
        other => Value::String(format!("no status for {other}")),
    }
}

/// Every connection: its id, address, login and worker state (for `clients` and the status page).
pub(crate) fn clients(sh: &Shared) -> Value {
    let mut list: Vec<(u64, String, Option<String>)> = sh
        .conns
        .lock()
        .iter()
        .map(|(id, c)| (*id, c.from.to_string(), c.who.clone()))
        .collect();
    list.sort();
    let d = sh.dispatch.lock();
    let out: Vec<Value> = list
        .into_iter()
        .map(|(id, from, who)| {
            let mut v = json!({"conn": id, "from": from, "who": who});
            if let (Value::Object(o), Value::Object(w)) = (&mut v, d.describe_conn(id)) {
                o.extend(w);
            }
            v
        })
        .collect();
    Value::Array(out)
}

fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}
