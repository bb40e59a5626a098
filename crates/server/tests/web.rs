//! The status pages of the HTTP listener (`/`, `/job/ID`, `/jobs`): login, routes, methods,
//! escaping, against the real engine on a durable SQLite store, over loopback TCP. (The
//! real-browser test is scripts/web-browser-test.sh.)

mod common;

use common::http::{engine_rig, get, request, rig};
use common::{login, mini_backend, RawClient};
use serde_json::{json, Value};
use std::sync::Arc;

const SOURCES: &[(&str, &str)] = &[
    (
        "echo.ac",
        "action echo:\nin:\n    text string\nout:\n    text string\n",
    ),
    (
        "echoflow.wf",
        "workflow echoflow:\nin:\n    text string\nout:\n    text string\nwfomap:\n    text = v.text\ndo:\n    call echo:\n        text = a.text\n    into:\n        text = o.text\n",
    ),
    (
        "parent.wf",
        "workflow parent:\nin:\n    text string\nout:\n    text string\nwfomap:\n    text = v.text\ndo:\n    call echoflow:\n        text = a.text\n    into:\n        text = o.text\n",
    ),
    (
        "refuse.wf",
        "workflow refuse:\nin:\n    text string\nout:\n    text string optional\ndo:\n    raise_error 'refused: ' . a.text\n",
    ),
];

const ADMIN: Option<(&str, &str)> = Some(("apimeister", "meister"));
const SCRIPT: &str = "<script>alert(\"x\")</script>&'";
const SCRIPT_ESCAPED: &str = "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;&#39;";

async fn create(c: &mut RawClient, wf: &str, inargs: Value) -> i64 {
    let r = c
        .result(
            "create_job",
            json!({"wfname": wf, "inargs": inargs, "timeout": 300}),
        )
        .await;
    r[0].as_i64()
        .unwrap_or_else(|| panic!("create_job {wf}: {r}"))
}

/// Serve one `echo` task: answer with the text it got.
async fn serve_echo(w: &mut RawClient) {
    let t = w.take_task().await;
    w.notify(
        "task_done",
        json!({"cookie": t[1], "outargs": {"text": t[2]["text"]}}),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_needs_the_admin_login() {
    let r = engine_rig(SOURCES).await;
    for path in ["/", "/job/1", "/jobs?id=1", "/jobs", "/no/such/page"] {
        let (status, head, body) = get(r.http, path, None).await;
        assert_eq!(status, 401, "{path}");
        assert!(head.contains("www-authenticate: basic"), "{path}: {head}");
        assert!(!body.contains("JobCenter"), "{path}: {body}");
        let (status, _, _) = get(r.http, path, Some(("apimeister", "wrong"))).await;
        assert_eq!(status, 401, "{path} with a wrong password");
        // A valid login that is not the admin's.
        let (status, _, _) = get(r.http, path, Some(("theCustomer", "wantsThings"))).await;
        assert_eq!(status, 401, "{path} as another user");
    }
    // Anonymous POST: still the login first.
    let (status, _, _) = request(r.http, "POST", "/", None).await;
    assert_eq!(status, 401);
    r.handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_no_auth_opens_only_the_metrics() {
    let dir = tempfile::tempdir().expect("tempdir");
    let r = rig(mini_backend() as Arc<_>, true, dir).await;
    let (status, _, _) = get(r.http, "/metrics", None).await;
    assert_eq!(status, 200);
    for path in ["/", "/job/1", "/jobs"] {
        let (status, _, _) = get(r.http, path, None).await;
        assert_eq!(status, 401, "{path}");
    }
    let (status, _, body) = get(r.http, "/", ADMIN).await;
    assert_eq!(status, 200, "{body}");
    r.handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_get_and_head_are_allowed() {
    let r = engine_rig(SOURCES).await;
    for path in ["/", "/metrics", "/job/1"] {
        let (status, head, _) = request(r.http, "POST", path, ADMIN).await;
        assert_eq!(status, 405, "{path}");
        assert!(head.contains("allow: get, head"), "{path}: {head}");
    }
    let (status, _, _) = request(r.http, "DELETE", "/", ADMIN).await;
    assert_eq!(status, 405);
    let (status, head, body) = request(r.http, "HEAD", "/", ADMIN).await;
    assert_eq!(status, 200);
    assert!(head.contains("content-type: text/html"), "{head}");
    assert_eq!(body, "");
    r.handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_jobs_and_pages_are_404() {
    let r = engine_rig(SOURCES).await;
    for path in [
        "/job/987654",
        "/job/0",
        "/job/-3",
        "/job/abc",
        "/job/",
        "/nope",
    ] {
        let (status, head, body) = get(r.http, path, ADMIN).await;
        assert_eq!(status, 404, "{path}: {body}");
        assert!(head.contains("content-type: text/html"), "{path}: {head}");
    }
    let (_, _, body) = get(r.http, "/job/987654", ADMIN).await;
    assert!(body.contains("There is no job 987654"), "{body}");
    r.handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overview_shows_jobs_throughput_workers_and_waiting_tasks() {
    let r = engine_rig(SOURCES).await;
    let mut w = login(r.addr, "theEmployee").await;
    assert_eq!(
        w.announce("worker<b>one</b>", "echo", 1).await,
        json!([true, "success"])
    );
    let mut c = login(r.addr, "theCustomer").await;
    for i in 0..3 {
        let job = create(&mut c, "echoflow", json!({"text": format!("t{i}")})).await;
        serve_echo(&mut w).await;
        assert_eq!(c.notification("job_done").await["job_id"], job);
    }
    let failed = create(&mut c, "refuse", json!({"text": "no"})).await;
    assert_eq!(c.notification("job_done").await["job_id"], failed);
    // One task held by the only worker, one waiting for it.
    let held = create(&mut c, "echoflow", json!({"text": "held"})).await;
    let _held = w.take_task().await;
    create(&mut c, "echoflow", json!({"text": "waits"})).await;

    let (status, head, body) = get(r.http, "/", ADMIN).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        head.contains("content-type: text/html; charset=utf-8"),
        "{head}"
    );
    assert!(
        head.contains("content-security-policy: default-src 'none'"),
        "{head}"
    );
    assert!(head.contains("cache-control: no-store"), "{head}");
    assert!(body.contains("<meta http-equiv=\"refresh\""), "{body}");
    // Jobs by state (from the store), linked to their listings.
    for (n, state) in [(3, "finished"), (1, "error"), (1, "working"), (1, "ready")] {
        assert!(
            body.contains(&format!(
                "<a class=\"card\" href=\"/jobs?state={state}\"><b>{n}</b>{state}</a>"
            )),
            "{n} {state} in {body}"
        );
    }
    // Exact counts of the live jobs (none archived yet), not a sample.
    assert!(body.contains("All 6 live jobs"), "{body}");
    // This server's counters: 6 created, 3 finished without an error, 1 failed.
    for (n, label) in [(6, "jobs created"), (3, "finished"), (1, "failed")] {
        assert!(
            body.contains(&format!("<b>{n}</b>{label}</div>")),
            "{n} {label} in {body}"
        );
    }
    // Recent errors: the failed job, with its message.
    assert!(
        body.contains(&format!("<a href=\"/job/{failed}\">")),
        "{body}"
    );
    assert!(body.contains("refused: no"), "{body}");
    // The worker is working on the held job.
    assert!(
        body.contains(&format!("<td><a href=\"/job/{held}\">{held}</a></td>")),
        "{body}"
    );
    // Throughput: the last 5 minutes saw all of them (the server started just now).
    assert!(
        body.contains(
            "<tr><td>last 5 minutes</td><td class=\"n\">6</td><td class=\"n\">4</td><td class=\"n\">1</td></tr>"
        ),
        "{body}"
    );
    // The worker, its login, its action and its slot in use; its name escaped.
    assert!(body.contains("worker&lt;b&gt;one&lt;/b&gt;"), "{body}");
    assert!(!body.contains("worker<b>"), "{body}");
    assert!(body.contains("<td>theEmployee</td>"), "{body}");
    assert!(body.contains("echo: 1 / 1"), "{body}");
    // The action with one task waiting.
    assert!(
        body.contains("<tr><td>echo</td><td class=\"n\">1</td></tr>"),
        "{body}"
    );
    r.handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_page_shows_values_as_text() {
    let r = engine_rig(SOURCES).await;
    let mut w = login(r.addr, "theEmployee").await;
    assert_eq!(w.announce("w1", "echo", 1).await, json!([true, "success"]));
    let mut c = login(r.addr, "theCustomer").await;

    let done = create(&mut c, "echoflow", json!({"text": SCRIPT})).await;
    serve_echo(&mut w).await;
    assert_eq!(c.notification("job_done").await["job_id"], done);
    let (status, _, body) = get(r.http, &format!("/job/{done}"), ADMIN).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains(&format!(
            "<h1>Job {done} <span class=\"muted\">echoflow</span></h1>"
        )),
        "{body}"
    );
    assert!(
        body.contains("<span class=\"ok\">finished</span>"),
        "{body}"
    );
    // The values, as JSON text: the quote is JSON-escaped, then everything
    // HTML-escaped.
    let json_escaped = "&lt;script&gt;alert(\\&quot;x\\&quot;)&lt;/script&gt;&amp;&#39;";
    // In the inargs, the outargs and the variables.
    assert_eq!(body.matches(json_escaped).count(), 3, "{body}");
    assert!(body.contains("<h2>Input arguments</h2>"), "{body}");
    assert!(body.contains("<h2>Output</h2>"), "{body}");
    assert!(!body.contains("<script"), "{body}");
    let failed = create(&mut c, "refuse", json!({"text": SCRIPT})).await;
    assert_eq!(c.notification("job_done").await["job_id"], failed);
    let (status, _, body) = get(r.http, &format!("/job/{failed}"), ADMIN).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("<span class=\"err\">error</span>"), "{body}");
    assert!(
        body.contains(&format!("refused: {SCRIPT_ESCAPED}")),
        "{body}"
    );
    assert!(!body.contains("<script"), "{body}");

    // A running job, with a child: the tree, the current task.
    let parent = create(&mut c, "parent", json!({"text": "slow"})).await;
    let task = w.take_task().await;
    let child = task[0].as_i64().expect("child job id");
    assert_ne!(child, parent);
    let (status, _, body) = get(r.http, &format!("/job/{parent}"), ADMIN).await;
    assert_eq!(status, 200);
    assert!(body.contains("childwait"), "{body}");
    assert!(body.contains("<h2>Children</h2>"), "{body}");
    assert!(body.contains("<h2>Job tree</h2>"), "{body}");
    assert!(
        body.contains(&format!("<a href=\"/job/{child}\">")),
        "{body}"
    );
    let (status, _, body) = get(r.http, &format!("/job/{child}"), ADMIN).await;
    assert_eq!(status, 200);
    assert!(body.contains("<h2>Current task</h2>"), "{body}");
    assert!(body.contains("claimed by</th><td>w1"), "{body}");
    assert!(
        body.contains(&format!("<th>parent</th><td><a href=\"/job/{parent}\">")),
        "{body}"
    );
    r.handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_by_id_and_by_inargs() {
    let r = engine_rig(SOURCES).await;
    let mut c = login(r.addr, "theCustomer").await;
    // No worker: the jobs stay live (find_jobs looks at live jobs).
    let a = create(&mut c, "echoflow", json!({"text": "needle"})).await;
    let b = create(&mut c, "echoflow", json!({"text": "needle"})).await;
    let other = create(&mut c, "echoflow", json!({"text": "hay"})).await;

    let (status, head, _) = get(r.http, &format!("/jobs?id={a}"), ADMIN).await;
    assert_eq!(status, 303);
    assert!(head.contains(&format!("location: /job/{a}")), "{head}");
    // Whatever is typed as the id stays inside the path.
    let (status, head, _) = get(r.http, "/jobs?id=1%2F..%2F%3Cx%3E", ADMIN).await;
    assert_eq!(status, 303);
    assert!(head.contains("location: /job/1%2f..%2f%3cx%3e"), "{head}");

    let (status, _, body) = get(
        r.http,
        "/jobs?id=&inargs=%7B%22text%22%3A%22needle%22%7D",
        ADMIN,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    for job in [a, b] {
        assert!(body.contains(&format!("<a href=\"/job/{job}\">")), "{body}");
    }
    assert!(!body.contains(&format!("/job/{other}\"")), "{body}");

    let (status, _, body) = get(r.http, "/jobs?inargs=%3Cscript%3E", ADMIN).await;
    assert_eq!(status, 400);
    assert!(body.contains("not &lt;script&gt;"), "{body}");
    assert!(!body.contains("<script"), "{body}");

    // By workflow and state, from the store's job list.
    let (status, _, body) = get(r.http, "/jobs?workflow=echoflow&state=ready", ADMIN).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("<h1>Jobs of echoflow in state ready</h1>"),
        "{body}"
    );
    for job in [a, b, other] {
        assert!(body.contains(&format!("<a href=\"/job/{job}\">")), "{body}");
    }
    let (_, _, body) = get(r.http, "/jobs?workflow=refuse", ADMIN).await;
    assert!(body.contains("None."), "{body}");
    let (status, _, body) = get(r.http, "/jobs?state=%3Cb%3E", ADMIN).await;
    assert_eq!(status, 400);
    assert!(body.contains("unknown state &lt;b&gt;"), "{body}");
    let (status, _, _) = get(r.http, "/jobs?before=x", ADMIN).await;
    assert_eq!(status, 400);

    let (status, _, body) = get(r.http, "/jobs", ADMIN).await;
    assert_eq!(status, 200);
    assert!(body.contains("<form action=\"/jobs\""), "{body}");
    assert!(body.contains(&format!("<a href=\"/job/{a}\">")), "{body}");
    r.handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_without_admin_queries_still_gets_pages() {
    let backend = mini_backend();
    let dir = tempfile::tempdir().expect("tempdir");
    let r = rig(backend.clone() as Arc<_>, false, dir).await;
    let job = backend.quiet_job("add", json!({"counter": 1}));
    backend.finish(
        job,
        json!({"error": {"class": "normal", "msg": "<b>bad</b>"}}),
    );

    let (status, _, body) = get(r.http, "/", ADMIN).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("this backend does not support administrative operations"),
        "{body}"
    );
    assert!(body.contains("<h2>Throughput</h2>"), "{body}");
    // The job page falls back on get_job_status.
    let (status, _, body) = get(r.http, &format!("/job/{job}"), ADMIN).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("<span class=\"err\">failed</span>"), "{body}");
    assert!(body.contains("&lt;b&gt;bad&lt;/b&gt;"), "{body}");
    assert!(!body.contains("<b>bad"), "{body}");
    let (status, _, _) = get(r.http, &format!("/job/{}", job + 1), ADMIN).await;
    assert_eq!(status, 404);
    let (status, _, body) = get(r.http, "/jobs?workflow=add", ADMIN).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("does not support"), "{body}");
    r.handle.shutdown().await;
}
