//! The admin's status pages on the HTTP listener: overview `/`, job page `/job/ID`, search `/jobs`.
//!
//! Server-rendered HTML with a little inline CSS and no script (the overview refreshes
//! itself with a meta refresh). Every value that comes from users, workers or the store
//! (workflow and action names, arguments, errors, worker names) goes through [`esc`]; the
//! pages are also sent with a Content-Security-Policy that allows no script at all.
//! Authentication and the HTTP method are checked by the caller (`http.rs`).

use crate::server::Shared;
use crate::throughput::{Bucket, Throughput};
use jobcenter_backend::{JobId, JobStatus};
use serde_json::Value;
use std::fmt::Write as _;

/// Seconds between two loads of the overview.
pub(crate) const REFRESH_SECONDS: u32 = 5;

/// Most jobs listed by one search.
const MAX_LISTED: usize = 200;

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
.card{background:#fff;border:1px solid #dde;border-radius:4px;padding:.4em .8em;min-width:7em}\
.card b{display:block;font-size:1.5em}\
table{border-collapse:collapse;background:#fff}td,th{border:1px solid #dde;padding:2px 8px;text-align:left;vertical-align:top}\
th{background:#eef1f5}td.n{text-align:right;font-variant-numeric:tabular-nums}\
pre{background:#fff;border:1px solid #dde;padding:.4em;margin:0;white-space:pre-wrap;word-break:break-all;max-width:60em}\
.chart{display:flex;align-items:flex-end;gap:1px;height:60px;background:#fff;border:1px solid #dde;padding:2px;width:max-content}\
.chart span{width:6px;background:#4a7bd0;display:block}.chart span.f{background:#d04a4a}\
.err{color:#b00}.ok{color:#080}.muted{color:#777}";

/// Suggestions for the state field of the search form (the original's job states).
const STATES: &str = "<datalist id=\"states\"><option value=\"ready\"><option value=\"working\">\
<option value=\"eventwait\"><option value=\"childwait\"><option value=\"sleeping\">\
<option value=\"lockwait\"><option value=\"retrywait\"><option value=\"finished\">\
<option value=\"error\"></datalist>";

fn card(out: &mut String, label: &str, value: impl std::fmt::Display) {
    let _ = write!(
        out,
        "<div class=\"card\"><b>{}</b>{}</div>",
        esc(&value.to_string()),
        esc(label)
    );
}

/// Pretty JSON, escaped, in a `<pre>`.
fn json_block(v: &Value) -> String {
    let text = serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string());
    format!("<pre>{}</pre>", esc(&text))
}

/// The overview: jobs, throughput, workers, waiting tasks.
async fn overview(sh: &Shared) -> String {
    let mut b = String::new();
    b.push_str("<h1>Overview</h1>");

    // Jobs, as this server saw them since it started.
    let t = sh.metrics.totals();
    let waited = sh.jobs.lock().len();
    b.push_str("<h2>Jobs</h2><div class=\"cards\">");
    card(&mut b, "created", t.jobs_created);
    card(
        &mut b,
        "finished",
        t.jobs_finished - t.jobs_failed.min(t.jobs_finished),
    );
    card(&mut b, "failed", t.jobs_failed);
    card(&mut b, "waited for by clients", waited);
    card(&mut b, "tasks dispatched", t.tasks_dispatched);
    b.push_str(
        "</div><p class=\"muted\">Counted by this server since it started \
(finished: without an error).</p>",
    );

    throughput(&mut b, &sh.metrics.throughput.snapshot());
    workers(&mut b, sh);

    // Actions with ready tasks.
    b.push_str("<h2>Actions with waiting tasks</h2>");
    match sh.backend.ready_counts().await {
        Ok(mut counts) if !counts.is_empty() => {
            counts.sort();
            b.push_str("<table><tr><th>action</th><th>ready tasks</th></tr>");
            for (action, n) in counts {
                let _ = write!(
                    b,
                    "<tr><td>{}</td><td class=\"n\">{n}</td></tr>",
                    esc(&action)
                );
            }
            b.push_str("</table>");
        }
        Ok(_) => b.push_str("<p class=\"muted\">No task waits for a worker.</p>"),
        Err(e) => {
            let _ = write!(b, "<p class=\"err\">{}</p>", esc(&e.message));
        }
    }
    let _ = write!(
        b,
        "<p class=\"muted\">This page reloads every {REFRESH_SECONDS} s.</p>"
    );
    layout("Overview", true, &b)
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
            "<div title=\"{} finished, {} failed\" style=\"display:flex;flex-direction:column;\
justify-content:flex-end;height:100%\"><span class=\"f\" style=\"height:{}px\"></span>\
<span style=\"height:{}px\"></span></div>",
            x.finished,
            x.failed,
            h(x.failed),
            h(ok)
        );
    }
    b.push_str("</div>");
}

/// The worker connections: who, from where, their actions and slot groups.
fn workers(b: &mut String, sh: &Shared) {
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
        "<h2>Workers</h2><p class=\"muted\">{} connections, {} of them workers.</p>",
        list.len(),
        workers.len()
    );
    if workers.is_empty() {
        return;
    }
    b.push_str(
        "<table><tr><th>worker</th><th>login</th><th>from</th><th>actions</th>\
<th>slots used / total</th></tr>",
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
                    esc(&info["slots"].to_string())
                );
            }
        }
        let _ = write!(
            b,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{actions}</td><td>{slots}</td></tr>",
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

/// `/job/ID`.
async fn job_page(sh: &Shared, id: &str) -> Page {
    let Some(job_id) = id.parse::<JobId>().ok().filter(|j| *j > 0) else {
        return not_found("No such job", &format!("{} is not a job id.", esc(id)));
    };
    let status = match sh.backend.get_job_status(job_id).await {
        Ok(s) => s,
        Err(e) => {
            return Page::Html(
                hyper::StatusCode::INTERNAL_SERVER_ERROR,
                layout(
                    "Error",
                    false,
                    &format!(
                        "<h1>Job {job_id}</h1><p class=\"err\">{}</p>",
                        esc(&e.message)
                    ),
                ),
            )
        }
    };
    if status == JobStatus::Unknown {
        return not_found(
            "No such job",
            &format!("There is no job {job_id}, live or archived."),
        );
    }
    let mut b = format!(
        "<h1>Job {job_id}</h1><table><tr><th>state</th><td>{}</td></tr>",
        status_html(&status)
    );
    if let JobStatus::Finished(out) = &status {
        if let Some(err) = out.get("error") {
            // The engine's errors are `{"class":..,"msg":..}`; others are shown as JSON.
            let (class, text) = match err {
                Value::String(s) => (None, s.clone()),
                Value::Object(o) if o.get("msg").is_some_and(Value::is_string) => (
                    o.get("class").and_then(Value::as_str),
                    o["msg"].as_str().unwrap_or_default().to_string(),
                ),
                other => (
                    None,
                    serde_json::to_string_pretty(other).unwrap_or_default(),
                ),
            };
            let _ = write!(
                b,
                "<tr><th>error</th><td><pre class=\"err\">{}</pre>",
                esc(&text)
            );
            if let Some(class) = class {
                let _ = write!(b, "<span class=\"muted\">class {}</span>", esc(class));
            }
            b.push_str("</td></tr>");
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
/// input arguments contain that object.
async fn search(sh: &Shared, q: &[(String, String)]) -> Page {
    let get = |name: &str| {
        q.iter()
            .find(|(k, v)| k == name && !v.trim().is_empty())
            .map(|(_, v)| v.trim().to_string())
    };
    if let Some(id) = get("id") {
        return Page::Redirect(format!("/job/{}", url_enc(&id)));
    }
    let mut b = String::from("<h1>Find jobs</h1>");
    let workflow = get("workflow");
    let state = get("state");
    if workflow.is_some() || state.is_some() {
        let _ = write!(
            b,
            "<p class=\"err\">Searching by workflow ({}) or state ({}) needs the backend's \
job list, which this backend does not offer yet.</p>",
            esc(workflow.as_deref().unwrap_or("any")),
            esc(state.as_deref().unwrap_or("any"))
        );
    }
    let Some(inargs) = get("inargs") else {
        if workflow.is_none() && state.is_none() {
            b.push_str(
                "<p>Give a job id, or a JSON object the jobs' input arguments contain \
(for example <code>{&quot;input&quot;:12}</code>).</p>",
            );
        }
        return Page::Html(hyper::StatusCode::OK, layout("Find jobs", false, &b));
    };
    let filter = match serde_json::from_str::<Value>(&inargs) {
        Ok(v @ Value::Object(_)) => v,
        _ => {
            let _ = write!(
                b,
                "<p class=\"err\">inargs must be a JSON object, not {}</p>",
                esc(&inargs)
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
                    "<tr><td><a href=\"/job/{id}\">{id}</a></td><td>{}</td></tr>",
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
