//! The admin's status pages on the HTTP listener: overview `/`, job page `/job/ID`, search `/jobs`.
//!
//! Server-rendered HTML with a little inline CSS and no script (the overview refreshes
//! itself with a meta refresh). Every value that comes from users, workers or the store
//! (workflow and action names, arguments, errors, worker names) goes through [`esc`]; the
//! pages are also sent with a Content-Security-Policy that allows no script at all.
//! Authentication and the HTTP method are checked by the caller (`http.rs`).

use crate::state::Shared;
use crate::throughput::{Bucket, Throughput};
use jobcenter_backend::admin::{self, JobQuery, JobSummary, LockInfo, WorkerInfo};
use jobcenter_backend::{BackendError, JobId, JobStatus};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Seconds between two loads of the overview.
pub(crate) const REFRESH_SECONDS: u32 = 5;

/// Most jobs listed by one search by input arguments.
const MAX_LISTED: usize = 200;

/// Rows of the overview's locks and errors.
const OVERVIEW_ROWS: usize = 10;

/// An answer of the web pages.
#[derive(Debug)]
pub(crate) enum Page {
    /// A page, `200 OK` or an error status, with its HTML.
    Html(hyper::StatusCode, String),
    /// `303 See Other` to this (same-site) path.
    Redirect(String),
}

/// Escape text for an HTML element or a quoted attribute value.
pub(crate) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Percent-encode a query parameter value (for links).
fn url_enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// Decode one `application/x-www-form-urlencoded` component (`+` is a space); invalid
/// escapes are kept as they are, invalid UTF-8 is replaced.
fn url_dec(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(v) => {
                        out.push(v);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The `name=value` pairs of a query string, decoded.
fn query_pairs(query: Option<&str>) -> Vec<(String, String)> {
    query
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (url_dec(k), url_dec(v)),
            None => (url_dec(p), String::new()),
        })
        .collect()
}

/// The page for `path` (already authenticated, method GET or HEAD).
pub(crate) async fn route(sh: &Shared, path: &str, query: Option<&str>) -> Page {
    if path == "/" {
        return Page::Html(hyper::StatusCode::OK, overview(sh).await);
    }
    if path == "/jobs" {
        return search(sh, &query_pairs(query)).await;
    }
    if let Some(id) = path.strip_prefix("/job/") {
        return job_page(sh, id).await;
    }
    not_found("No such page", &format!("There is no page {}.", esc(path)))
}

fn not_found(title: &str, message_html: &str) -> Page {
    Page::Html(
        hyper::StatusCode::NOT_FOUND,
        layout(
            title,
            false,
            &format!("<h1>{}</h1><p>{message_html}</p>", esc(title)),
        ),
    )
}

/// The page frame: head, inline CSS, the navigation with the search form.
fn layout(title: &str, refresh: bool, body: &str) -> String {
    let refresh = if refresh {
        format!("<meta http-equiv=\"refresh\" content=\"{REFRESH_SECONDS}\">")
    } else {
        String::new()
    };
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">{refresh}\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<title>{title} - JobCenter</title><style>{CSS}</style></head><body>\
<nav><a class=\"brand\" href=\"/\">JobCenter</a>\
<form action=\"/jobs\" method=\"get\">\
<input name=\"id\" placeholder=\"job id\" size=\"8\" inputmode=\"numeric\">\
<input name=\"workflow\" placeholder=\"workflow\" size=\"12\">\
<input name=\"state\" placeholder=\"state\" size=\"9\" list=\"states\">\
<input name=\"inargs\" placeholder='inargs {{\"k\":\"v\"}}' size=\"16\">\
<button>Find</button></form>{STATES}</nav><main>{body}</main></body></html>\n",
        title = esc(title),
    )
}

const CSS: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:0;color:#222;background:#f6f7f9}\
nav{display:flex;gap:1em;align-items:center;background:#23395b;color:#fff;padding:.5em 1em;flex-wrap:wrap}\
nav a.brand{color:#fff;font-weight:bold;text-decoration:none;font-size:1.2em}\
nav input,nav button{font:inherit;padding:2px 4px}\
main{padding:0 1em 1em}h1{font-size:1.3em}h2{font-size:1.05em;margin:1.2em 0 .4em}\
.cards{display:flex;gap:.8em;flex-wrap:wrap}\
.card{background:#fff;border:1px solid #dde;border-radius:4px;padding:.4em .8em;min-width:7em;color:inherit;text-decoration:none}\
.card b{display:block;font-size:1.5em}\
table{border-collapse:collapse;background:#fff}td,th{border:1px solid #dde;padding:2px 8px;text-align:left;vertical-align:top}\
th{background:#eef1f5}td.n{text-align:right;font-variant-numeric:tabular-nums}\
pre{background:#fff;border:1px solid #dde;padding:.4em;margin:0;white-space:pre-wrap;word-break:break-all;max-width:60em}\
.chart{display:flex;align-items:flex-end;gap:1px;height:60px;background:#fff;border:1px solid #dde;padding:2px;width:max-content}\
.chart div{display:flex;flex-direction:column;justify-content:flex-end;height:100%}\
.chart span{width:6px;background:#4a7bd0;display:block}.chart span.f{background:#d04a4a}\
ul.tree{list-style:none;padding:0}\
.err{color:#b00}.ok{color:#080}.muted{color:#777}";

/// Suggestions for the state field of the search form (the original's job states).
const STATES: &str = "<datalist id=\"states\"><option value=\"ready\"><option value=\"working\">\
<option value=\"eventwait\"><option value=\"childwait\"><option value=\"sleeping\">\
<option value=\"lockwait\"><option value=\"retrywait\"><option value=\"finished\">\
<option value=\"error\"></datalist>";

fn card(out: &mut String, label: &str, value: impl std::fmt::Display, href: Option<&str>) {
    let value = esc(&value.to_string());
    let label = esc(label);
    match href {
        Some(h) => {
            let _ = write!(
                out,
                "<a class=\"card\" href=\"{}\"><b>{value}</b>{label}</a>",
                esc(h)
            );
        }
        None => {
            let _ = write!(out, "<div class=\"card\"><b>{value}</b>{label}</div>");
        }
    }
}

/// Pretty JSON, escaped, in a `<pre>`.
fn json_block(v: &Value) -> String {
    let text = serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string());
    format!("<pre>{}</pre>", esc(&text))
}

/// A link to a job's page.
fn job_link(id: JobId) -> String {
    format!("<a href=\"/job/{id}\">{id}</a>")
}

/// Milliseconds since the UNIX epoch as `YYYY-MM-DD HH:MM:SS` (UTC).
fn fmt_time(ms: u64) -> String {
    jobcenter_backend::time::utc_seconds(ms)
}

fn opt_time(ms: Option<u64>) -> String {
    ms.map(fmt_time).unwrap_or_default()
}

/// The message of an error value (the engine's are `{"class":..,"msg":..}`) and its class.
fn error_text(err: &Value) -> (String, Option<String>) {
    match err {
        Value::String(s) => (s.clone(), None),
        Value::Object(o) if o.get("msg").is_some_and(Value::is_string) => (
            o["msg"].as_str().unwrap_or_default().to_string(),
            o.get("class").and_then(Value::as_str).map(str::to_string),
        ),
        other => (
            serde_json::to_string_pretty(other).unwrap_or_default(),
            None,
        ),
    }
}

/// A state name, coloured for the finished ones.
fn state_html(state: &str) -> String {
    match state {
        "error" => "<span class=\"err\">error</span>".to_string(),
        "finished" => "<span class=\"ok\">finished</span>".to_string(),
        s => esc(s),
    }
}

/// A failed backend call, as a line of the page.
fn backend_error(b: &mut String, what: &str, e: &BackendError) {
    let _ = write!(
        b,
        "<p class=\"muted\">{}: {}</p>",
        esc(what),
        esc(&e.message)
    );
}

/// A table of jobs (listings, errors, children).
fn jobs_table(b: &mut String, jobs: &[JobSummary]) {
    b.push_str(
        "<table><tr><th>job</th><th>workflow</th><th>state</th><th>action</th>\
<th>created</th><th>finished</th><th>parent</th><th>error</th></tr>",
    );
    for j in jobs {
        let err = j
            .error
            .as_ref()
            .map(|e| esc(&error_text(e).0))
            .unwrap_or_default();
        let _ = write!(
            b,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
<td>{}</td><td class=\"err\">{err}</td></tr>",
            job_link(j.job_id),
            esc(&j.workflow),
            state_html(&j.state),
            esc(j.action.as_deref().unwrap_or("")),
            opt_time(j.created_at),
            opt_time(j.finished_at),
            j.parent.map(job_link).unwrap_or_default(),
        );
    }
    b.push_str("</table>");
}

/// The overview: jobs, throughput, workers, waiting tasks, locks, recent errors.
async fn overview(sh: &Shared) -> String {
    let be = &sh.backend;
    let (counts, store_workers, ready, disabled, locks, errors) = tokio::join!(
        be.admin_state_counts(),
        be.admin_workers(),
        be.ready_counts(),
        be.admin_disabled_actions(),
        be.admin_locks(None, OVERVIEW_ROWS),
        be.admin_errors(None, OVERVIEW_ROWS),
    );
    let mut b = String::new();
    b.push_str("<h1>Overview</h1>");

    // Live jobs per state, exact (an index count); a backend without counts: the newest.
    b.push_str("<h2>Jobs by state</h2>");
    let jobs = match counts {
        Ok(counts) if counts.is_empty() => {
            b.push_str("<p class=\"muted\">No live jobs.</p>");
            Err(None)
        }
        Ok(counts) => {
            b.push_str("<div class=\"cards\">");
            let mut total = 0;
            for (state, n) in &counts {
                let href = format!("/jobs?state={}", url_enc(state));
                card(&mut b, state, n, Some(&href));
                total += n;
            }
            let _ = write!(
                b,
                "</div><p class=\"muted\">All {total} live jobs (finished jobs are \
                 archived a minute after they end).</p>"
            );
            Err(None)
        }
        Err(_) => be
            .admin_jobs(JobQuery {
                limit: admin::MAX_LIMIT,
                ..JobQuery::default()
            })
            .await
            .map_err(Some),
    };
    match jobs {
        Err(None) => {}
        Err(Some(e)) => backend_error(&mut b, "Jobs by state", &e),
        Ok(jobs) if jobs.is_empty() => b.push_str("<p class=\"muted\">No jobs yet.</p>"),
        Ok(jobs) => {
            let mut per_state: BTreeMap<&str, usize> = BTreeMap::new();
            for j in &jobs {
                *per_state.entry(j.state.as_str()).or_default() += 1;
            }
            b.push_str("<div class=\"cards\">");
            for (state, n) in per_state {
                let href = format!("/jobs?state={}", url_enc(state));
                card(&mut b, state, n, Some(&href));
            }
            let _ = write!(
                b,
                "</div><p class=\"muted\">Among the newest {} jobs, live and archived.</p>",
                jobs.len()
            );
        }
    }

    // Jobs, as this server saw them since it started.
    let t = sh.metrics.totals();
    let waited = sh.jobs.lock().len();
    b.push_str("<h2>This server since it started</h2><div class=\"cards\">");
    card(&mut b, "jobs created", t.jobs_created, None);
    card(
        &mut b,
        "finished",
        t.jobs_finished - t.jobs_failed.min(t.jobs_finished),
        None,
    );
    card(&mut b, "failed", t.jobs_failed, None);
    card(&mut b, "waited for by clients", waited, None);
    card(&mut b, "tasks dispatched", t.tasks_dispatched, None);
    b.push_str("</div>");

    throughput(&mut b, &sh.metrics.throughput.snapshot());
    workers(&mut b, sh, store_workers.as_deref().ok());

    // Actions with ready tasks.
    let disabled = disabled.unwrap_or_default();
    b.push_str("<h2>Actions with waiting tasks</h2>");
    match ready {
        Ok(mut counts) if !counts.is_empty() => {
            counts.sort();
            b.push_str("<table><tr><th>action</th><th>ready tasks</th></tr>");
            for (action, n) in counts {
                let off = if disabled.contains(&action) {
                    " <span class=\"err\">disabled</span>"
                } else {
                    ""
                };
                let _ = write!(
                    b,
                    "<tr><td>{}{off}</td><td class=\"n\">{n}</td></tr>",
                    esc(&action)
                );
            }
            b.push_str("</table>");
        }
        Ok(_) => b.push_str("<p class=\"muted\">No task waits for a worker.</p>"),
        Err(e) => backend_error(&mut b, "Waiting tasks", &e),
    }
    if !disabled.is_empty() {
        let list: Vec<String> = disabled.iter().map(|a| esc(a)).collect();
        let _ = write!(
            b,
            "<p>Disabled actions: <span class=\"err\">{}</span></p>",
            list.join(", ")
        );
    }

    // Locks.
    b.push_str("<h2>Locks</h2>");
    match locks {
        Ok(locks) if locks.is_empty() => b.push_str("<p class=\"muted\">No lock is held.</p>"),
        Ok(locks) => locks_table(&mut b, &locks),
        Err(e) => backend_error(&mut b, "Locks", &e),
    }

    // Recent errors.
    b.push_str("<h2>Recent errors</h2>");
    match errors {
        Ok(errors) if errors.is_empty() => b.push_str("<p class=\"muted\">No errors.</p>"),
        Ok(errors) => jobs_table(&mut b, &errors),
        Err(e) => backend_error(&mut b, "Errors", &e),
    }
    let _ = write!(
        b,
        "<p class=\"muted\">This page reloads every {REFRESH_SECONDS} s.</p>"
    );
    layout("Overview", true, &b)
}

fn locks_table(b: &mut String, locks: &[LockInfo]) {
    b.push_str(
        "<table><tr><th>type</th><th>value</th><th>held by</th><th>lent by</th>\
<th>waiting</th></tr>",
    );
    for l in locks {
        let links = |ids: &[JobId]| {
            ids.iter()
                .map(|j| job_link(*j))
                .collect::<Vec<_>>()
                .join(" ")
        };
        let _ = write!(
            b,
            "<tr><td>{}</td><td>{}</td><td>{}{}</td><td>{}</td><td>{}</td></tr>",
            esc(&l.locktype),
            esc(&l.lockvalue),
            job_link(l.holder),
            if l.inheritable { " (inheritable)" } else { "" },
            links(&l.lenders),
            links(&l.waiters),
        );
    }
    b.push_str("</table>");
}

/// Jobs per minute over the ring buffer, and a bar per interval.
fn throughput(b: &mut String, buckets: &[Bucket]) {
    let per_interval = Throughput::INTERVAL.as_secs().max(1);
    let last = |secs: u64| -> (u64, u64, u64) {
        let n = (secs / per_interval) as usize;
        buckets
            .iter()
            .rev()
            .take(n)
            .fold((0, 0, 0), |(c, f, e), x| {
                (c + x.created, f + x.finished, e + x.failed)
            })
    };
    let _ = write!(
        b,
        "<h2>Throughput</h2><table><tr><th></th><th>created</th><th>finished</th>\
<th>failed</th></tr>"
    );
    for (label, secs) in [
        ("last minute", 60),
        ("last 5 minutes", 300),
        ("last 10 minutes", 600),
    ] {
        let (c, f, e) = last(secs);
        let _ = write!(
            b,
            "<tr><td>{label}</td><td class=\"n\">{c}</td><td class=\"n\">{f}</td>\
<td class=\"n\">{e}</td></tr>"
        );
    }
    b.push_str("</table>");
    let max = buckets.iter().map(|x| x.finished).max().unwrap_or(0).max(1);
    let _ = write!(
        b,
        "<p class=\"muted\">Jobs finished per {per_interval} s over the last {} minutes \
(red: with an error):</p><div class=\"chart\">",
        Throughput::window().as_secs() / 60
    );
    for x in buckets {
        let ok = x.finished - x.failed.min(x.finished);
        let h = |n: u64| (n * 56).div_ceil(max);
        let _ = write!(
            b,
            "<div title=\"{} finished, {} failed\"><span class=\"f\" style=\"height:{}px\"></span>\
<span style=\"height:{}px\"></span></div>",
            x.finished,
            x.failed,
            h(x.failed),
            h(ok)
        );
    }
    b.push_str("</div>");
}

/// A slot count: whole numbers without a fraction.
fn slots_text(v: &Value) -> String {
    match v.as_f64() {
        Some(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", f as i64),
        _ => v.to_string(),
    }
}

/// The worker connections of this server: who, from where, their actions and slot groups;
/// with the store's view (last ping, claimed jobs) when the backend has it.
fn workers(b: &mut String, sh: &Shared, store: Option<&[WorkerInfo]>) {
    let clients = crate::status::clients(sh);
    let list = clients.as_array().map(Vec::as_slice).unwrap_or(&[]);
    let workers: Vec<&Value> = list
        .iter()
        .filter(|c| {
            c["workeractions"]
                .as_object()
                .is_some_and(|a| !a.is_empty())
        })
        .collect();
    let _ = write!(
        b,
        "<h2>Workers</h2><p class=\"muted\">{} connections to this server, {} of them \
workers.</p>",
        list.len(),
        workers.len()
    );
    if workers.is_empty() {
        return;
    }
    b.push_str(
        "<table><tr><th>worker</th><th>login</th><th>from</th><th>actions</th>\
<th>slots used / total</th><th>working on</th><th>last ping</th></tr>",
    );
    for w in workers {
        let name = w["workername"].as_str().unwrap_or("");
        let who = w["who"].as_str().unwrap_or("");
        let from = w["from"].as_str().unwrap_or("");
        let mut actions = String::new();
        if let Some(a) = w["workeractions"].as_object() {
            for (action, info) in a {
                let _ = write!(actions, "{}", esc(action));
                if let Some(f) = info.get("filter").filter(|f| !f.is_null()) {
                    let _ = write!(
                        actions,
                        " <span class=\"muted\">filter {}</span>",
                        esc(&f.to_string())
                    );
                }
                actions.push_str("<br>");
            }
        }
        let mut slots = String::new();
        if let Some(g) = w["slotgroups"].as_object() {
            for (group, info) in g {
                let _ = write!(
                    slots,
                    "{}: {} / {}<br>",
                    esc(group),
                    info["used"],
                    slots_text(&info["slots"])
                );
            }
        }
        let known = w["worker_id"]
            .as_i64()
            .and_then(|id| store?.iter().find(|s| s.worker_id == id));
        let (working, ping) = match known {
            Some(s) => (
                s.working_on
                    .iter()
                    .map(|j| job_link(*j))
                    .collect::<Vec<_>>()
                    .join(" "),
                fmt_time(s.last_ping),
            ),
            None => (String::new(), String::new()),
        };
        let _ = write!(
            b,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{actions}</td><td>{slots}</td>\
<td>{working}</td><td>{ping}</td></tr>",
            esc(name),
            esc(who),
            esc(from)
        );
    }
    b.push_str("</table>");
}

/// The status words of a job.
fn status_html(status: &JobStatus) -> &'static str {
    match status {
        JobStatus::Unknown => "<span class=\"muted\">unknown</span>",
        JobStatus::Running => "running",
        JobStatus::Finished(out) if out.get("error").is_some() => {
            "<span class=\"err\">failed</span>"
        }
        JobStatus::Finished(_) => "<span class=\"ok\">finished</span>",
    }
}

fn no_such_job(job_id: JobId) -> Page {
    not_found(
        "No such job",
        &format!("There is no job {job_id}, live or archived."),
    )
}

fn server_error(title: &str, e: &BackendError) -> Page {
    Page::Html(
        hyper::StatusCode::INTERNAL_SERVER_ERROR,
        layout(
            title,
            false,
            &format!(
                "<h1>{}</h1><p class=\"err\">{}</p>",
                esc(title),
                esc(&e.message)
            ),
        ),
    )
}

/// An error row of a table: the message, and its class.
fn error_row(b: &mut String, label: &str, err: &Value) {
    let (text, class) = error_text(err);
    let _ = write!(
        b,
        "<tr><th>{label}</th><td><pre class=\"err\">{}</pre>",
        esc(&text)
    );
    if let Some(class) = class {
        let _ = write!(b, "<span class=\"muted\">class {}</span>", esc(&class));
    }
    b.push_str("</td></tr>");
}

/// `/job/ID`.
async fn job_page(sh: &Shared, id: &str) -> Page {
    let Some(job_id) = id.parse::<JobId>().ok().filter(|j| *j > 0) else {
        return not_found("No such job", &format!("{} is not a job id.", esc(id)));
    };
    let (detail, tree) = tokio::join!(sh.backend.admin_job(job_id), sh.backend.admin_tree(job_id));
    let d = match detail {
        Ok(Some(d)) => d,
        Ok(None) => return no_such_job(job_id),
        Err(e) if e.message == admin::UNSUPPORTED => return job_status_page(sh, job_id).await,
        Err(e) => return server_error(&format!("Job {job_id}"), &e),
    };
    let j = &d.summary;
    let mut b = format!(
        "<h1>Job {job_id} <span class=\"muted\">{}</span></h1><table>",
        esc(&j.workflow)
    );
    let mut row = |label: &str, html: String| {
        if !html.is_empty() {
            let _ = write!(b, "<tr><th>{label}</th><td>{html}</td></tr>");
        }
    };
    row(
        "workflow",
        format!("{} (version {})", esc(&j.workflow), j.version),
    );
    row("state", state_html(&j.state));
    row("created", opt_time(j.created_at));
    row("last change", opt_time(j.updated_at));
    row("finished", opt_time(j.finished_at));
    row("parent", j.parent.map(job_link).unwrap_or_default());
    row(
        "steps",
        match (d.steps, d.max_steps) {
            (Some(s), Some(m)) => format!("{s} of at most {m}"),
            (Some(s), None) => s.to_string(),
            _ => String::new(),
        },
    );
    row("depth", d.depth.map(|x| x.to_string()).unwrap_or_default());
    if j.archived {
        row("archived", "only the final result is kept".to_string());
    }
    if let Some(err) = &j.error {
        error_row(&mut b, "error", err);
    }
    b.push_str("</table>");

    if let Some(t) = &d.current {
        let _ = write!(
            b,
            "<h2>{} task</h2><table>",
            if j.finished_at.is_some() {
                "Last"
            } else {
                "Current"
            }
        );
        let mut row = |label: &str, html: String| {
            if !html.is_empty() {
                let _ = write!(b, "<tr><th>{label}</th><td>{html}</td></tr>");
            }
        };
        row("task", t.task.to_string());
        row("action", esc(t.action.as_deref().unwrap_or("")));
        row("tries", t.tries.map(|x| x.to_string()).unwrap_or_default());
        if let Some(c) = &t.claim {
            row(
                "claimed by",
                format!(
                    "{} (worker {}) at {}{}",
                    esc(c.worker.as_deref().unwrap_or("a stopped worker")),
                    c.worker_id,
                    fmt_time(c.claimed_at),
                    c.deadline
                        .map(|d| format!(", times out at {}", fmt_time(d)))
                        .unwrap_or_default()
                ),
            );
        }
        row("child job", t.child.map(job_link).unwrap_or_default());
        if let Some((lt, lv)) = &t.lock_wait {
            row("waits for lock", format!("{} {}", esc(lt), esc(lv)));
        }
        row("wakes at", opt_time(t.wake_at));
        row(
            "task inargs",
            t.inargs.as_ref().map(json_block).unwrap_or_default(),
        );
        if let Some(err) = &t.error {
            error_row(&mut b, "task error", err);
        }
        b.push_str("</table>");
    }

    for (title, v) in [
        ("Input arguments", &d.inargs),
        ("Output", &d.outargs),
        ("Variables", &d.vars),
    ] {
        if let Some(v) = v {
            let _ = write!(b, "<h2>{title}</h2>{}", json_block(v));
        }
    }
    if !d.locks.is_empty() {
        b.push_str("<h2>Locks held</h2>");
        locks_table(&mut b, &d.locks);
    }
    if !d.children.is_empty() {
        b.push_str("<h2>Children</h2>");
        jobs_table(&mut b, &d.children);
    }
    match tree {
        Ok(Some(t)) if t.nodes.len() > 1 => {
            b.push_str("<h2>Job tree</h2><ul class=\"tree\">");
            for n in &t.nodes {
                let me = n.job.job_id == job_id;
                let _ = write!(
                    b,
                    "<li style=\"margin-left:{}em\">{}{} {} {}{}</li>",
                    n.level * 2,
                    if me { "<b>" } else { "" },
                    job_link(n.job.job_id),
                    esc(&n.job.workflow),
                    state_html(&n.job.state),
                    if me { "</b>" } else { "" },
                );
            }
            b.push_str("</ul>");
        }
        Ok(_) => {}
        Err(e) => backend_error(&mut b, "Job tree", &e),
    }
    b.push_str(
        "<p class=\"muted\">The store keeps a job's current state, not a log of its past \
tasks: steps counts the tasks entered.</p>",
    );
    Page::Html(
        hyper::StatusCode::OK,
        layout(&format!("Job {job_id}"), false, &b),
    )
}

/// `/job/ID` for a backend without the administrative queries: what `get_job_status` says.
async fn job_status_page(sh: &Shared, job_id: JobId) -> Page {
    let status = match sh.backend.get_job_status(job_id).await {
        Ok(s) => s,
        Err(e) => return server_error(&format!("Job {job_id}"), &e),
    };
    if status == JobStatus::Unknown {
        return no_such_job(job_id);
    }
    let mut b = format!(
        "<h1>Job {job_id}</h1><table><tr><th>state</th><td>{}</td></tr>",
        status_html(&status)
    );
    if let JobStatus::Finished(out) = &status {
        if let Some(err) = out.get("error") {
            error_row(&mut b, "error", err);
        }
        let _ = write!(b, "<tr><th>outargs</th><td>{}</td></tr>", json_block(out));
    }
    b.push_str("</table>");
    Page::Html(
        hyper::StatusCode::OK,
        layout(&format!("Job {job_id}"), false, &b),
    )
}

/// `/jobs?id=N` goes to the job's page; `/jobs?inargs={...}` lists the live jobs whose
/// input arguments contain that object; otherwise `/jobs?workflow=W&state=S&before=ID`
/// lists jobs, newest first, a page at a time.
async fn search(sh: &Shared, q: &[(String, String)]) -> Page {
    let get = |name: &str| {
        q.iter()
            .find(|(k, v)| k == name && !v.trim().is_empty())
            .map(|(_, v)| v.trim().to_string())
    };
    if let Some(id) = get("id") {
        return Page::Redirect(format!("/job/{}", url_enc(&id)));
    }
    if let Some(inargs) = get("inargs") {
        return find_by_inargs(sh, &inargs).await;
    }
    let workflow = get("workflow");
    let state = get("state");
    let before = match get("before").map(|b| b.parse::<JobId>()) {
        None => None,
        Some(Ok(b)) => Some(b),
        Some(Err(_)) => {
            let b = "<h1>Find jobs</h1><p class=\"err\">before must be a job id</p>";
            return Page::Html(
                hyper::StatusCode::BAD_REQUEST,
                layout("Find jobs", false, b),
            );
        }
    };
    let mut title = String::from("Jobs");
    if let Some(w) = &workflow {
        let _ = write!(title, " of {w}");
    }
    if let Some(s) = &state {
        let _ = write!(title, " in state {s}");
    }
    let mut b = format!("<h1>{}</h1>", esc(&title));
    let query = JobQuery {
        state: state.clone(),
        workflow: workflow.clone(),
        since: None,
        before,
        limit: admin::DEFAULT_LIMIT,
    };
    match sh.backend.admin_jobs(query).await {
        Ok(jobs) if jobs.is_empty() => b.push_str("<p class=\"muted\">None.</p>"),
        Ok(jobs) => {
            jobs_table(&mut b, &jobs);
            if jobs.len() >= admin::DEFAULT_LIMIT {
                if let Some(last) = jobs.last() {
                    let mut href = format!("/jobs?before={}", last.job_id);
                    if let Some(w) = &workflow {
                        let _ = write!(href, "&workflow={}", url_enc(w));
                    }
                    if let Some(s) = &state {
                        let _ = write!(href, "&state={}", url_enc(s));
                    }
                    let _ = write!(b, "<p><a href=\"{}\">Older jobs</a></p>", esc(&href));
                }
            }
        }
        Err(e) if e.message == admin::UNSUPPORTED => {
            let _ = write!(
                b,
                "<p class=\"muted\">{}. Search by id or by input arguments \
(<code>{{&quot;input&quot;:12}}</code>).</p>",
                esc(&e.message)
            );
        }
        Err(e) => {
            let _ = write!(b, "<p class=\"err\">{}</p>", esc(&e.message));
            return Page::Html(hyper::StatusCode::BAD_REQUEST, layout(&title, false, &b));
        }
    }
    Page::Html(hyper::StatusCode::OK, layout(&title, false, &b))
}

/// `/jobs?inargs={...}`: the live jobs whose input arguments contain that object.
async fn find_by_inargs(sh: &Shared, inargs: &str) -> Page {
    let mut b = String::from("<h1>Find jobs</h1>");
    let filter = match serde_json::from_str::<Value>(inargs) {
        Ok(v @ Value::Object(_)) => v,
        _ => {
            let _ = write!(
                b,
                "<p class=\"err\">inargs must be a JSON object, not {}</p>",
                esc(inargs)
            );
            return Page::Html(
                hyper::StatusCode::BAD_REQUEST,
                layout("Find jobs", false, &b),
            );
        }
    };
    let _ = write!(
        b,
        "<p>Live jobs whose input arguments contain <code>{}</code>:</p>",
        esc(&filter.to_string())
    );
    match sh.backend.find_jobs(filter).await {
        Ok(ids) if ids.is_empty() => b.push_str("<p class=\"muted\">None.</p>"),
        Ok(mut ids) => {
            ids.sort_unstable();
            b.push_str("<table><tr><th>job</th><th>state</th></tr>");
            for id in ids.iter().rev().take(MAX_LISTED) {
                let status = sh
                    .backend
                    .get_job_status(*id)
                    .await
                    .unwrap_or(JobStatus::Unknown);
                let _ = write!(
                    b,
                    "<tr><td>{}</td><td>{}</td></tr>",
                    job_link(*id),
                    status_html(&status)
                );
            }
            b.push_str("</table>");
            if ids.len() > MAX_LISTED {
                let _ = write!(
                    b,
                    "<p class=\"muted\">The newest {MAX_LISTED} of {}.</p>",
                    ids.len()
                );
            }
        }
        Err(e) => {
            let _ = write!(b, "<p class=\"err\">{}</p>", esc(&e.message));
        }
    }
    Page::Html(hyper::StatusCode::OK, layout("Find jobs", false, &b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_covers_markup_and_quotes() {
        assert_eq!(
            esc("<script>alert('x')</script> & \"q\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;"
        );
        assert_eq!(esc("plain näme"), "plain näme");
    }

    #[test]
    fn query_strings_decode() {
        assert_eq!(
            query_pairs(Some(
                "id=&workflow=call%20add&inargs=%7B%22a%22%3A1%7D&x=a+b&bad=%zz%4"
            )),
            vec![
                ("id".to_string(), String::new()),
                ("workflow".to_string(), "call add".to_string()),
                ("inargs".to_string(), "{\"a\":1}".to_string()),
                ("x".to_string(), "a b".to_string()),
                ("bad".to_string(), "%zz%4".to_string()),
            ]
        );
        assert_eq!(url_dec("%C3%A4%FF"), "ä\u{FFFD}");
        assert_eq!(url_enc("a b/<"), "a%20b%2F%3C");
    }
}
