//! The admin commands (jobs, job, tree, workers, locks, errors, retry, cancel, disable,
//! enable): the admin methods of docs/PROTOCOL.md §18, as tables or `--json`.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Map, Value};

use crate::args::{ActionArgs, AdminArgs, CancelArgs, ErrorsArgs, JobIdArgs, JobsArgs, LocksArgs};
use crate::cmd::conn::connect;
use crate::cmd::{emit, Failure};

/// Connection trouble exits 2; an error the server answered exits 1.
fn server_error(e: jobcenter::ClientError) -> Failure {
    use jobcenter::ClientError as E;
    match e {
        E::Closed | E::Timeout | E::Connection { .. } | E::Tls(_) | E::HandshakeTimeout => {
            Failure::connection(e.to_string())
        }
        E::Rpc { ref message, .. } if message.contains("permission denied") => Failure::with_code(
            1,
            format!(
                "{e}: admin commands need the server's admin identity (--who, \
                     `serve --admin`)"
            ),
        ),
        other => Failure::with_code(1, other.to_string()),
    }
}

/// Send one admin request.
async fn request(a: &AdminArgs, method: &str, params: Value) -> Result<Value, Failure> {
    let client = connect(&a.conn).await?;
    let r = client.request(method, params).await.map_err(server_error);
    client.close();
    r
}

/// A job id argument: a positive integer.
fn job_id(text: &str) -> Result<i64, Failure> {
    text.trim()
        .parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| Failure::usage(format!("invalid job id {text}")))
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// `--since T`: an age (`90s`, `10m`, `2h`, `1d`), a UTC time (`2026-12-03T14:00:00Z`,
/// `2026-12-03 14:00:00`, `2026-12-03`) or milliseconds since the epoch.
pub fn parse_since(text: &str, now: u64) -> Result<u64, Failure> {
    let t = text.trim();
    let bad = || {
        Failure::usage(format!(
            "--since {text}: want an age (90s, 10m, 2h, 1d), a UTC time \
             (2026-12-03T14:00:00Z) or milliseconds since the epoch"
        ))
    };
    if let Ok(ms) = t.parse::<u64>() {
        return Ok(ms);
    }
    if let Some(unit) = t.chars().last().filter(|c| "smhd".contains(*c)) {
        if let Ok(n) = t[..t.len() - 1].parse::<u64>() {
            let secs = match unit {
                's' => n,
                'm' => n.saturating_mul(60),
                'h' => n.saturating_mul(3600),
                _ => n.saturating_mul(86_400),
            };
            return Ok(now.saturating_sub(secs.saturating_mul(1000)));
        }
    }
    jobcenter_backend::time::parse_utc(t).ok_or_else(bad)
}

/// A time (ms since the epoch) as `YYYY-MM-DD HH:MM:SS` UTC; `-` for none.
pub fn fmt_time(v: &Value) -> String {
    let Some(ms) = v.as_u64() else {
        return "-".into();
    };
    jobcenter_backend::time::utc_seconds(ms)
}

/// A cell: strings as they are, null as `-`, anything else as compact JSON.
fn cell(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The message of an error object (`msg`), or the whole value as JSON.
fn error_text(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::Object(o) => match (o.get("msg").and_then(Value::as_str), o.get("class")) {
            (Some(m), Some(Value::String(c))) => format!("{m} ({c})"),
            (Some(m), _) => m.to_string(),
            _ => v.to_string(),
        },
        other => cell(other),
    }
}

/// A cell on one line: line breaks and tabs become spaces, trailing blanks go.
fn one_line(s: &str) -> String {
    s.trim_end()
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// Rows as a table with a header line, columns padded to their widest cell. Cells are put
/// on one line (see [`one_line`]).
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| r.iter().map(|c| one_line(c)).collect())
        .collect();
    let rows = rows.as_slice();
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(c.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let n = cells.len();
        let mut s = String::new();
        for (i, c) in cells.into_iter().enumerate() {
            s.push_str(c);
            if i + 1 < n {
                let pad = widths[i] + 2 - c.chars().count();
                s.extend(std::iter::repeat_n(' ', pad));
            }
        }
        s
    };
    let mut out = line(header.to_vec());
    for r in rows {
        out.push('\n');
        out.push_str(&line(r.iter().map(String::as_str).collect()));
    }
    out
}

/// Print the answer as one JSON line (`--json`) or as `human` renders it.
fn show(a: &AdminArgs, v: &Value, human: impl FnOnce(&Value) -> String) -> u8 {
    if a.json {
        emit(v);
    } else {
        emit(human(v));
    }
    0
}

fn job_rows(list: &Value) -> Vec<Vec<String>> {
    list.as_array()
        .map(|jobs| {
            jobs.iter()
                .map(|j| {
                    vec![
                        cell(&j["job_id"]),
                        cell(&j["state"]),
                        cell(&j["workflow"]),
                        cell(&j["action"]),
                        fmt_time(&j["created_at"]),
                        fmt_time(&j["finished_at"]),
                        cell(&j["parent"]),
                        error_text(&j["error"]),
                    ]
                })
                .collect()
        })
        .unwrap_or_default()
}

const JOB_HEADER: &[&str] = &[
    "ID", "STATE", "WORKFLOW", "ACTION", "CREATED", "FINISHED", "PARENT", "ERROR",
];

/// `jobcenter jobs`.
pub async fn jobs(a: JobsArgs) -> Result<u8, Failure> {
    let mut p = Map::new();
    if let Some(s) = &a.state {
        p.insert("state".into(), json!(s));
    }
    if let Some(w) = &a.workflow {
        p.insert("workflow".into(), json!(w));
    }
    if let Some(t) = &a.since {
        p.insert("since".into(), json!(parse_since(t, now_ms())?));
    }
    if let Some(b) = a.before {
        p.insert("before".into(), json!(b));
    }
    p.insert("limit".into(), json!(a.limit));
    let v = request(&a.admin, "admin_jobs", Value::Object(p)).await?;
    Ok(show(&a.admin, &v, |v| table(JOB_HEADER, &job_rows(v))))
}

/// `jobcenter job ID`.
pub async fn job(a: JobIdArgs) -> Result<u8, Failure> {
    let id = job_id(&a.job_id)?;
    let v = request(&a.admin, "admin_job", json!({"job_id": id})).await?;
    Ok(show(&a.admin, &v, render_job))
}

fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|l| format!("  {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn render_job(v: &Value) -> String {
    let mut out = Vec::new();
    let field = |out: &mut Vec<String>, name: &str, val: String| {
        out.push(format!("{name:<10} {val}"));
    };
    field(&mut out, "job", cell(&v["job_id"]));
    field(
        &mut out,
        "workflow",
        format!("{} (version {})", cell(&v["workflow"]), cell(&v["version"])),
    );
    let state = if v["archived"] == json!(true) {
        format!("{} (archived: only the result is kept)", cell(&v["state"]))
    } else {
        cell(&v["state"])
    };
    field(&mut out, "state", state);
    field(&mut out, "parent", cell(&v["parent"]));
    field(&mut out, "created", fmt_time(&v["created_at"]));
    field(&mut out, "updated", fmt_time(&v["updated_at"]));
    field(&mut out, "finished", fmt_time(&v["finished_at"]));
    if !v["steps"].is_null() {
        field(
            &mut out,
            "steps",
            format!("{} of at most {}", cell(&v["steps"]), cell(&v["max_steps"])),
        );
    }
    if !v["error"].is_null() {
        field(&mut out, "error", error_text(&v["error"]));
    }
    let c = &v["current"];
    if c.is_object() {
        let mut t = format!("task {}", cell(&c["task"]));
        if !c["action"].is_null() {
            t.push_str(&format!(", action {}", cell(&c["action"])));
        }
        if !c["tries"].is_null() {
            t.push_str(&format!(", retry {}", cell(&c["tries"])));
        }
        if !c["child"].is_null() {
            t.push_str(&format!(", child job {}", cell(&c["child"])));
        }
        if let Some(w) = c["claim"].as_object() {
            t.push_str(&format!(
                ", claimed by {} (worker {}) at {}",
                w.get("worker").map_or("-".into(), cell),
                w.get("worker_id").map_or("-".into(), cell),
                w.get("claimed_at").map_or("-".into(), fmt_time)
            ));
        }
        if let Some(l) = c["lock_wait"].as_array() {
            let l: Vec<String> = l.iter().map(cell).collect();
            t.push_str(&format!(", waits for lock {}", l.join(" ")));
        }
        if !c["wake_at"].is_null() {
            t.push_str(&format!(", next look at {}", fmt_time(&c["wake_at"])));
        }
        field(&mut out, "task", t);
        if !c["error"].is_null() {
            field(&mut out, "task error", error_text(&c["error"]));
        }
    }
    for (name, key) in [
        ("inargs", "inargs"),
        ("outargs", "outargs"),
        ("vars", "vars"),
    ] {
        if !v[key].is_null() {
            out.push(format!("{name}:"));
            out.push(indent(&pretty(&v[key])));
        }
    }
    if let Some(task_in) = c.get("inargs").filter(|x| !x.is_null()) {
        out.push("task inargs:".into());
        out.push(indent(&pretty(task_in)));
    }
    let history = v["history"].as_array().cloned().unwrap_or_default();
    if !history.is_empty() {
        out.push("history:".into());
        let rows: Vec<Vec<String>> = history
            .iter()
            .map(|s| {
                vec![
                    cell(&s["task"]),
                    cell(&s["label"]),
                    fmt_time(&s["at"]),
                    cell(&s["action"]),
                    cell(&s["child"]),
                    cell(&s["tries"]),
                    error_text(&s["error"]),
                ]
            })
            .collect();
        out.push(indent(&table(
            &[
                "TASK", "WHAT", "ENTERED", "ACTION", "CHILD", "TRIES", "ERROR",
            ],
            &rows,
        )));
    }
    let locks = v["locks"].as_array().cloned().unwrap_or_default();
    if !locks.is_empty() {
        out.push("locks held:".into());
        out.push(indent(&table(
            LOCK_HEADER,
            &locks.iter().map(lock_row).collect::<Vec<_>>(),
        )));
    }
    let children = v["children"].as_array().cloned().unwrap_or_default();
    if !children.is_empty() {
        out.push("children:".into());
        out.push(indent(&table(JOB_HEADER, &job_rows(&v["children"]))));
    }
    out.join("\n")
}

/// `jobcenter tree ID`.
pub async fn tree(a: JobIdArgs) -> Result<u8, Failure> {
    let id = job_id(&a.job_id)?;
    let v = request(&a.admin, "admin_tree", json!({"job_id": id})).await?;
    Ok(show(&a.admin, &v, |v| {
        let rows: Vec<Vec<String>> = v["nodes"]
            .as_array()
            .map(|nodes| {
                nodes
                    .iter()
                    .map(|n| {
                        let level = n["level"].as_u64().unwrap_or(0) as usize;
                        let mark = if n["job_id"] == v["job_id"] { " *" } else { "" };
                        vec![
                            format!("{}{}{mark}", "  ".repeat(level), cell(&n["job_id"])),
                            cell(&n["workflow"]),
                            cell(&n["state"]),
                            cell(&n["action"]),
                            error_text(&n["error"]),
                        ]
                    })
                    .collect()
            })
            .unwrap_or_default();
        table(&["JOB", "WORKFLOW", "STATE", "ACTION", "ERROR"], &rows)
    }))
}

/// `jobcenter workers`.
pub async fn workers(a: AdminArgs) -> Result<u8, Failure> {
    let v = request(&a, "admin_workers", json!({})).await?;
    Ok(show(&a, &v, |v| {
        let rows: Vec<Vec<String>> = v["workers"]
            .as_array()
            .map(|ws| {
                ws.iter()
                    .map(|w| {
                        let actions: Vec<String> = w["actions"]
                            .as_array()
                            .map(|acts| {
                                acts.iter()
                                    .map(|x| {
                                        let mut s = cell(&x["action"]);
                                        if !x["filter"].is_null() {
                                            s.push_str(&format!(" {}", x["filter"]));
                                        }
                                        if x["disabled"] == json!(true) {
                                            s.push_str(" (disabled)");
                                        }
                                        s
                                    })
                                    .collect()
                            })
                            .unwrap_or_default();
                        let (slots, conn) = match w["local"].as_object() {
                            None => ("-".to_string(), "another node".to_string()),
                            Some(l) => {
                                let groups: Vec<String> = l
                                    .get("slotgroups")
                                    .and_then(Value::as_object)
                                    .map(|g| {
                                        g.iter()
                                            .map(|(name, sg)| {
                                                let used = sg["used"].as_f64().unwrap_or(0.0);
                                                let all = sg["slots"].as_f64().unwrap_or(0.0);
                                                format!(
                                                    "{name} {used}/{all} used, {} free",
                                                    (all - used).max(0.0)
                                                )
                                            })
                                            .collect()
                                    })
                                    .unwrap_or_default();
                                (groups.join("; "), l.get("from").map_or("-".into(), cell))
                            }
                        };
                        vec![
                            cell(&w["worker_id"]),
                            cell(&w["name"]),
                            actions.join(", "),
                            slots,
                            fmt_time(&w["last_ping"]),
                            w["working_on"]
                                .as_array()
                                .map(|j| j.iter().map(cell).collect::<Vec<_>>().join(","))
                                .filter(|s| !s.is_empty())
                                .unwrap_or_else(|| "-".into()),
                            conn,
                        ]
                    })
                    .collect()
            })
            .unwrap_or_default();
        let mut out = table(
            &[
                "ID",
                "NAME",
                "ACTIONS",
                "SLOTS",
                "LAST PING",
                "WORKING ON",
                "FROM",
            ],
            &rows,
        );
        if let Some(d) = v["disabled_actions"].as_array().filter(|d| !d.is_empty()) {
            let d: Vec<String> = d.iter().map(cell).collect();
            out.push_str(&format!("\ndisabled actions: {}", d.join(", ")));
        }
        out
    }))
}

const LOCK_HEADER: &[&str] = &["TYPE", "VALUE", "HOLDER", "INHERITABLE", "WAITERS"];

fn lock_row(l: &Value) -> Vec<String> {
    let waiters = l["waiters"]
        .as_array()
        .map(|w| w.iter().map(cell).collect::<Vec<_>>().join(","))
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "-".into());
    vec![
        cell(&l["locktype"]),
        cell(&l["lockvalue"]),
        cell(&l["holder"]),
        if l["inheritable"] == json!(true) {
            "yes"
        } else {
            "no"
        }
        .into(),
        waiters,
    ]
}

/// `jobcenter locks [TYPE]`.
pub async fn locks(a: LocksArgs) -> Result<u8, Failure> {
    let mut p = Map::new();
    if let Some(t) = &a.locktype {
        p.insert("locktype".into(), json!(t));
    }
    p.insert("limit".into(), json!(a.limit));
    let v = request(&a.admin, "admin_locks", Value::Object(p)).await?;
    Ok(show(&a.admin, &v, |v| {
        let rows: Vec<Vec<String>> = v
            .as_array()
            .map(|ls| ls.iter().map(lock_row).collect())
            .unwrap_or_default();
        table(LOCK_HEADER, &rows)
    }))
}

/// `jobcenter errors`.
pub async fn errors(a: ErrorsArgs) -> Result<u8, Failure> {
    let mut p = Map::new();
    if let Some(t) = &a.since {
        p.insert("since".into(), json!(parse_since(t, now_ms())?));
    }
    p.insert("limit".into(), json!(a.limit));
    let v = request(&a.admin, "admin_errors", Value::Object(p)).await?;
    Ok(show(&a.admin, &v, |v| {
        let rows: Vec<Vec<String>> = v
            .as_array()
            .map(|js| {
                js.iter()
                    .map(|j| {
                        let when = if j["finished_at"].is_null() {
                            &j["updated_at"]
                        } else {
                            &j["finished_at"]
                        };
                        vec![
                            cell(&j["job_id"]),
                            cell(&j["state"]),
                            cell(&j["workflow"]),
                            cell(&j["action"]),
                            fmt_time(when),
                            error_text(&j["error"]),
                        ]
                    })
                    .collect()
            })
            .unwrap_or_default();
        table(
            &["ID", "STATE", "WORKFLOW", "ACTION", "WHEN", "ERROR"],
            &rows,
        )
    }))
}

/// `jobcenter retry ID`.
pub async fn retry(a: JobIdArgs) -> Result<u8, Failure> {
    let id = job_id(&a.job_id)?;
    let v = request(&a.admin, "admin_retry", json!({"job_id": id})).await?;
    Ok(show(&a.admin, &v, |v| {
        format!(
            "job {}: the task of action {} is ready again (was {})",
            cell(&v["job_id"]),
            cell(&v["action"]),
            cell(&v["was"])
        )
    }))
}

/// `jobcenter cancel ID`.
pub async fn cancel(a: CancelArgs) -> Result<u8, Failure> {
    let id = job_id(&a.job_id)?;
    let mut p = json!({"job_id": id});
    if let Some(r) = &a.reason {
        p["reason"] = json!(r);
    }
    let v = request(&a.admin, "admin_cancel", p).await?;
    Ok(show(&a.admin, &v, |v| {
        format!(
            "job {} cancelled: its error is \"job cancelled: {}\"",
            cell(&v["job_id"]),
            cell(&v["reason"])
        )
    }))
}

/// `jobcenter disable ACTION` / `jobcenter enable ACTION`.
pub async fn set_enabled(a: ActionArgs, enabled: bool) -> Result<u8, Failure> {
    let method = if enabled {
        "admin_enable"
    } else {
        "admin_disable"
    };
    let v = request(&a.admin, method, json!({"action": a.action})).await?;
    Ok(show(&a.admin, &v, |v| {
        let what = if enabled { "enabled" } else { "disabled" };
        if v["changed"] == json!(true) {
            format!("action {} {what}", cell(&v["action"]))
        } else {
            format!("action {} was {what} already", cell(&v["action"]))
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_forms() {
        let now = 1_000_000_000_000;
        assert_eq!(parse_since("90s", now).ok(), Some(now - 90_000));
        assert_eq!(parse_since("2h", now).ok(), Some(now - 7_200_000));
        assert_eq!(parse_since("1d", now).ok(), Some(now - 86_400_000));
        assert_eq!(parse_since("1234", now).ok(), Some(1234));
        assert_eq!(
            parse_since("2026-12-03T14:00:00Z", now).ok(),
            Some(1_796_306_400_000)
        );
        assert_eq!(parse_since("1970-01-02", now).ok(), Some(86_400_000));
        assert!(parse_since("yesterday", now).is_err());
        assert!(parse_since("2026-13-01", now).is_err());
        assert!(parse_since("-5m", now).is_err());
    }

    #[test]
    fn times_and_tables() {
        assert_eq!(
            fmt_time(&json!(1_796_306_400_000u64)),
            "2026-12-03 14:00:00"
        );
        assert_eq!(fmt_time(&Value::Null), "-");
        assert_eq!(
            table(&["A", "BB"], &[vec!["xyz".into(), "1".into()]]),
            "A    BB\nxyz  1"
        );
        assert_eq!(
            table(&["E", "F"], &[vec!["a\nb\n".into(), "c\td".into()]]),
            "E    F\na b  c d"
        );
    }
}
