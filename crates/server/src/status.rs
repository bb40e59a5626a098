//! `get_api_status`: the exact `stats` object and free-form text dumps (§7.9).

use crate::server::Shared;
use serde_json::{json, Value};

/// The result of `get_api_status` for `what` (permission already checked).
pub(crate) fn api_status(sh: &Shared, what: &str) -> Value {
    match what {
        "stats" => {
            let workers = sh.dispatch.lock().worker_count();
            let clients = sh.conns.lock().len();
            json!({"clients": clients, "dead": 0, "workers": workers})
        }
        "clients" | "clientsraw" => Value::String(pretty(&clients(sh))),
        "jobs" => Value::String(pretty(&sh.jobs.lock().describe())),
        "tasks" => Value::String(pretty(&sh.dispatch.lock().describe_tasks())),
        other => Value::String(format!("no status for {other}")),
    }
}

fn clients(sh: &Shared) -> Value {
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
