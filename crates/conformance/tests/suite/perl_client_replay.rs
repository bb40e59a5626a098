//! "An unmodified Perl client must be able to use our server": the frames the Perl client
//! (`JobCenter::Client::Mojo` 0.47) sent in the captured transcripts are replayed over raw
//! TCP + netstrings against our server over the real engine, and every server frame must
//! have the shape the Perl client parses (docs/PROTOCOL.md §12). Credentials, job ids, cookies
//! and poll tokens are taken from our server's earlier answers; JSON member order is
//! ignored; Perl source paths and backend decorations in error texts are not compared,
//! only the message the client shows.

use std::collections::HashMap;
use std::time::Duration;

use jobcenter::{Action, Client, Task};
use jobcenter_conformance::{own_fixtures, RawConn, RawError, TestServer, WAIT};
use jobcenter_server::Timers;
use serde_json::{json, Value};

/// One line of a `.jsonl` transcript.
#[derive(Debug, Clone)]
struct Event {
    conn: u64,
    kind: String,
    dir: String,
    who: String,
    payload: Option<Value>,
}

fn load(name: &str) -> Vec<Event> {
    let path = own_fixtures().join("wire").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}"));
            let s = |k: &str| v[k].as_str().unwrap_or_default().to_string();
            Event {
                conn: v["conn"].as_u64().unwrap_or_default(),
                kind: s("kind"),
                dir: s("dir"),
                who: s("who"),
                payload: v["payload"]
                    .as_str()
                    .map(|p| serde_json::from_str(p).unwrap_or_else(|e| panic!("{p}: {e}"))),
            }
        })
        .collect()
}

/// Replays transcript events against our server, keeping the id mappings.
struct Replay {
    addr: std::net::SocketAddr,
    conns: HashMap<u64, RawConn>,
    /// transcript job id → our job id
    jobs: HashMap<i64, i64>,
    /// transcript cookie → our cookie
    cookies: HashMap<String, String>,
    /// transcript poll token → the `job_id` our server offered instead
    tokens: HashMap<String, Value>,
    /// request method of each outstanding C>S request id, per connection
    methods: HashMap<(u64, String), (String, Value)>,
    /// server pings answered with "pong!" per connection, and how many the script used
    pings: HashMap<u64, (usize, usize)>,
    /// server frames checked against the transcript
    checked: usize,
    /// poll offers not in the transcript, answered with `get_task` → `[]`
    extra_offers: usize,
}

/// The message a Perl client shows from a backend/server text: the part after
/// `ERROR:  ` up to the first line break, or the text before ` at /` (Perl location).
fn core_message(text: &str) -> String {
    let t = match text.find("ERROR:  ") {
        Some(i) => &text[i + 8..],
        None => text,
    };
    let t = t.split('\n').next().unwrap_or_default();
    let t = match t.find(" at /") {
        Some(i) => &t[..i],
        None => t,
    };
    t.to_string()
}

/// With `JC_REPLAY_TRACE` set, print every frame (debugging aid).
fn trace(n: u64, dir: &str, f: &Value) {
    if std::env::var_os("JC_REPLAY_TRACE").is_some() {
        eprintln!("c{n} {dir} {f}");
    }
}

fn is_job_id(v: &Value) -> bool {
    v.as_i64().is_some() || v.as_str().is_some_and(|s| s.parse::<i64>().is_ok())
}

fn as_job_id(v: &Value) -> Option<i64> {
    v.as_i64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
}

impl Replay {
    fn new(addr: std::net::SocketAddr) -> Replay {
        Replay {
            addr,
            conns: HashMap::new(),
            jobs: HashMap::new(),
            cookies: HashMap::new(),
            tokens: HashMap::new(),
            methods: HashMap::new(),
            pings: HashMap::new(),
            checked: 0,
            extra_offers: 0,
        }
    }

    /// Answer the server's ping `f` on connection `n` as the Perl client does (`pong!`),
    /// checking its shape, and count it.
    async fn pong(&mut self, n: u64, f: &Value) {
        assert_eq!(f["params"], json!({}), "server ping params");
        assert!(f["id"].is_string(), "server ping id is a string: {f}");
        let pong = json!({"jsonrpc": "2.0", "id": f["id"], "result": "pong!"});
        if let Err(e) = self.conn(n).send(&pong).await {
            panic!("c{n}: pong: {e}");
        }
        self.pings.entry(n).or_default().0 += 1;
    }

    fn conn(&mut self, n: u64) -> &mut RawConn {
        self.conns
            .get_mut(&n)
            .unwrap_or_else(|| panic!("connection c{n} not open"))
    }

    /// The next frame from the server on connection `n` that is not a server ping; pings
    /// are answered `"pong!"` at once, as the Perl client does.
    async fn next_frame(&mut self, n: u64) -> Value {
        loop {
            let f = match self.conn(n).recv_timeout(WAIT).await {
                Ok(f) => f,
                Err(e) => panic!("c{n}: waiting for a server frame: {e}"),
            };
            trace(n, "<-", &f);
            if f["method"] == "ping" && f.get("id").is_some() {
                self.pong(n, &f).await;
                continue;
            }
            return f;
        }
    }

    async fn run(&mut self, events: &[Event]) {
        for ev in events {
            match (ev.kind.as_str(), ev.dir.as_str()) {
                ("open", _) => {
                    let c = RawConn::connect(self.addr)
                        .await
                        .unwrap_or_else(|e| panic!("connect: {e}"));
                    self.conns.insert(ev.conn, c);
                }
                ("frame", "C>S") => {
                    let p = ev.payload.clone().unwrap_or_default();
                    self.send(ev.conn, p).await;
                }
                ("frame", "S>C") => {
                    let p = ev.payload.clone().unwrap_or_default();
                    self.expect(ev.conn, p).await;
                }
                ("eof", _) if ev.who == "C" => {
                    self.conn(ev.conn).shutdown_write().await;
                }
                ("eof", _) if ev.who == "S" => {
                    let n = ev.conn;
                    let closed = self.conn(n).closed_within(WAIT).await;
                    assert!(closed, "c{n}: server did not close after the client's eof");
                }
                _ => {}
            }
        }
    }

    /// Adjust and send one frame the Perl client sent.
    async fn send(&mut self, n: u64, mut p: Value) {
        // A pong to a server ping: already sent when the ping arrived.
        if p.get("method").is_none() && p["result"] == "pong!" {
            let e = self.pings.entry(n).or_default();
            assert!(e.0 > e.1, "c{n}: the server never pinged");
            e.1 += 1;
            return;
        }
        let method = p["method"].as_str().unwrap_or_default().to_string();
        let params = &mut p["params"];
        match method.as_str() {
            "hello" => {
                // The transcript's credentials are those of our password file.
                let who = params["who"].as_str().unwrap_or_default();
                assert!(
                    jobcenter_conformance::USERS
                        .iter()
                        .any(|(w, t)| *w == who && params["token"] == *t),
                    "unknown transcript credentials for {who}"
                );
            }
            "get_task" | "get_job_status" => {
                let old = params["job_id"].clone();
                if let Some(new) = old
                    .as_i64()
                    .and_then(|o| self.jobs.get(&o))
                    .map(|j| json!(j))
                    .or_else(|| old.as_str().and_then(|s| self.tokens.get(s)).cloned())
                {
                    params["job_id"] = new;
                }
            }
            "task_done" => {
                let old = params["cookie"].as_str().unwrap_or_default().to_string();
                let new = self
                    .cookies
                    .get(&old)
                    .unwrap_or_else(|| panic!("c{n}: unknown cookie {old}"));
                params["cookie"] = json!(new);
            }
            _ => {}
        }
        if let Some(id) = p["id"].as_str() {
            self.methods
                .insert((n, id.to_string()), (method.clone(), p["params"].clone()));
        }
        trace(n, "->", &p);
        if let Err(e) = self.conn(n).send(&p).await {
            panic!("c{n}: send {method}: {e}");
        }
    }

    /// A poll offer the transcript does not show (our server makes one more after a
    /// pending backlog is served, docs/PROTOCOL.md §8.6): answer it as the Perl worker does
    /// (§12.13: `get_task` with the job_id unchanged) and require `[]`. False if `f` is
    /// not such an offer.
    async fn absorb_poll_offer(&mut self, n: u64, f: &Value) -> bool {
        if f["method"] != "task_ready" || !f["params"]["job_id"].is_string() {
            return false;
        }
        self.extra_offers += 1;
        let id = format!("extra-{}", self.extra_offers);
        let req = json!({"jsonrpc": "2.0", "id": id, "method": "get_task",
            "params": {"actionname": f["params"]["actionname"], "job_id": f["params"]["job_id"]}});
        trace(n, "->", &req);
        if let Err(e) = self.conn(n).send(&req).await {
            panic!("c{n}: get_task: {e}");
        }
        let r = self.next_frame(n).await;
        assert_eq!(r["id"], json!(id), "c{n}: {r}");
        assert_eq!(
            r["result"],
            json!([]),
            "c{n}: an unscripted poll offer claimed a job: {r}"
        );
        true
    }

    /// Read the server's next frame on `n` and check it against the transcript's.
    async fn expect(&mut self, n: u64, want: Value) {
        // A server ping: must have arrived (and been answered) by now or soon.
        if want["method"] == "ping" {
            let e = self.pings.get(&n).copied().unwrap_or_default();
            if e.0 > e.1 {
                return;
            }
            loop {
                let f = match self.conn(n).recv_timeout(WAIT).await {
                    Ok(f) => f,
                    Err(e) => panic!("c{n}: waiting for a server ping: {e}"),
                };
                trace(n, "<-", &f);
                if self.absorb_poll_offer(n, &f).await {
                    continue;
                }
                assert_eq!(f["method"], "ping", "c{n}: expected a server ping, got {f}");
                self.pong(n, &f).await;
                return;
            }
        }
        let mut got = self.next_frame(n).await;
        while want["method"] != "task_ready" && self.absorb_poll_offer(n, &got).await {
            got = self.next_frame(n).await;
        }
        self.checked += 1;
        assert_eq!(got["jsonrpc"], "2.0", "c{n}: {got}");
        if let Some(m) = want["method"].as_str() {
            assert_eq!(got["method"], m, "c{n}: expected {want}\ngot {got}");
            assert!(
                got.get("id").is_none(),
                "c{n}: {m} must be a notification: {got}"
            );
            self.check_notification(n, m, &want["params"], &got["params"]);
            return;
        }
        let id = want["id"].as_str().unwrap_or_default().to_string();
        assert_eq!(
            got["id"], want["id"],
            "c{n}: response id\nexpected {want}\ngot {got}"
        );
        let (method, sent) = self
            .methods
            .remove(&(n, id))
            .unwrap_or_else(|| panic!("c{n}: response to an unknown request {got}"));
        if let Some(err) = want.get("error") {
            let e = got
                .get("error")
                .unwrap_or_else(|| panic!("c{n}: {method}: expected error {want}, got {got}"));
            assert_eq!(e["code"], err["code"], "c{n}: {method}: {got}");
            let text = e["message"].as_str().unwrap_or_default();
            let core = core_message(err["message"].as_str().unwrap_or_default());
            assert!(
                text.contains(&core),
                "c{n}: {method}: {text:?} lacks {core:?}"
            );
            assert!(e.get("data").is_none(), "C21: {got}");
            return;
        }
        let w = &want["result"];
        let g = got
            .get("result")
            .unwrap_or_else(|| panic!("c{n}: {method}: expected a result {want}, got {got}"));
        self.check_result(n, &method, &sent, w, g);
    }

    fn check_notification(&mut self, n: u64, m: &str, want: &Value, got: &Value) {
        match m {
            "greetings" => assert_eq!(got, &json!({"who": "jcapi", "version": "1.1"})),
            "job_done" => {
                let old = want["job_id"].as_i64().unwrap_or_default();
                let ours = self.jobs.get(&old).copied();
                assert_eq!(got["job_id"].as_i64(), ours, "c{n}: job_done id: {got}");
                assert_eq!(got["outargs"], want["outargs"], "c{n}: job_done outargs");
            }
            "task_ready" => {
                assert_eq!(got["actionname"], want["actionname"], "c{n}: {got}");
                let (w, g) = (&want["job_id"], &got["job_id"]);
                // The Perl worker sends job_id back verbatim: a number or a poll token.
                assert!(g.is_i64() || g.is_string(), "c{n}: task_ready job_id {g}");
                match (w.as_i64(), w.as_str()) {
                    (Some(old), _) => {
                        let new = g.as_i64().unwrap_or_else(|| panic!("c{n}: {got}"));
                        if let Some(k) = self.jobs.insert(old, new) {
                            assert_eq!(k, new, "c{n}: job id changed");
                        }
                    }
                    (None, Some(token)) => {
                        self.tokens.insert(token.to_string(), g.clone());
                    }
                    _ => panic!("transcript task_ready without job_id"),
                }
            }
            other => panic!("c{n}: unexpected notification {other}"),
        }
    }

    fn check_result(&mut self, n: u64, method: &str, sent: &Value, w: &Value, g: &Value) {
        let ctx = format!("c{n}: {method} {sent}\nexpected {w}\n     got {g}");
        match method {
            "hello" => {
                assert_eq!(g, w, "{ctx}");
            }
            "create_job" => {
                // [job_id, null] → the Perl client waits for job_done of job_id.
                let old = w[0].as_i64().unwrap_or_else(|| panic!("{ctx}"));
                let new = g[0].as_i64().unwrap_or_else(|| panic!("{ctx}"));
                assert_eq!(g, &json!([new, null]), "{ctx}");
                self.jobs.insert(old, new);
            }
            "get_job_status" => {
                assert!(
                    g.is_array() && g.as_array().map(Vec::len) == Some(2),
                    "{ctx}"
                );
                match (w[0].as_i64(), &w[1]) {
                    (None, Value::Null) => assert_eq!(g, &json!([null, null]), "{ctx}"),
                    (Some(old), out) => {
                        assert_eq!(g[0].as_i64(), self.jobs.get(&old).copied(), "{ctx}");
                        assert_eq!(&g[1], out, "{ctx}");
                    }
                    (None, err) => assert_eq!(g, &json!([null, err]), "{ctx}"),
                }
            }
            "find_jobs" => {
                let ids = g.as_array().unwrap_or_else(|| panic!("{ctx}"));
                assert!(ids.iter().all(is_job_id), "{ctx}");
                let ours: Vec<i64> = ids.iter().filter_map(as_job_id).collect();
                // Every job of this replay that the transcript lists must be found.
                for old in w.as_array().into_iter().flatten().filter_map(as_job_id) {
                    if let Some(new) = self.jobs.get(&old) {
                        assert!(ours.contains(new), "{ctx}: job {new} missing");
                    }
                }
            }
            "get_task" => {
                // [J, cookie, inargs, env]
                let a = g.as_array().unwrap_or_else(|| panic!("{ctx}"));
                assert_eq!(a.len(), 4, "{ctx}");
                let old = w[0].as_i64().unwrap_or_default();
                let new = a[0].as_i64().unwrap_or_else(|| panic!("{ctx}"));
                if let Some(known) = self.jobs.insert(old, new) {
                    assert_eq!(known, new, "{ctx}");
                }
                let cookie = a[1].as_str().unwrap_or_else(|| panic!("{ctx}"));
                assert!(!cookie.is_empty(), "{ctx}");
                let old_cookie = w[1].as_str().unwrap_or_default().to_string();
                self.cookies.insert(old_cookie, cookie.to_string());
                assert_eq!(a[2], w[2], "{ctx}");
                assert_eq!(a[3], w[3], "{ctx}");
            }
            "announce" => {
                assert_eq!(g[0], w[0], "{ctx}");
                let (wt, gt) = (w[1].as_str().unwrap_or_default(), g[1].as_str());
                let gt = gt.unwrap_or_else(|| panic!("{ctx}"));
                if w[0] == json!(true) {
                    assert_eq!(gt, wt, "{ctx}");
                } else {
                    assert!(gt.contains(&core_message(wt)), "{ctx}");
                }
            }
            "get_api_status" if w.is_object() => {
                let obj = g.as_object().unwrap_or_else(|| panic!("{ctx}"));
                // The reference's members; ours adds job and task counts.
                for key in ["clients", "dead", "workers"] {
                    assert!(obj.contains_key(key), "{key}: {ctx}");
                }
                assert!(obj.values().all(Value::is_i64), "{ctx}");
            }
            "get_api_status" => assert!(g.is_string(), "{ctx}"),
            // create_slotgroup "", check_if_lock_exists true/false/null, ping "pong?",
            // withdraw 1: exact values.
            _ => assert_eq!(g, w, "{ctx}"),
        }
    }
}

fn timers(ping_interval: Duration) -> Timers {
    Timers {
        ping_interval,
        ping_timeout: Duration::from_secs(5),
        handoff: Duration::from_secs(10),
        poll: Duration::from_secs(60),
    }
}

async fn server(ping_interval: Duration) -> TestServer {
    TestServer::start_on(
        super::STORE,
        own_fixtures().join("tour"),
        timers(ping_interval),
    )
    .await
    .unwrap_or_else(|e| panic!("server: {e}"))
}

/// An `add` worker of our library (counter + step), for the client transcript.
async fn add_worker(s: &TestServer) -> jobcenter::Worker {
    let w = s.worker().await.unwrap_or_else(|e| panic!("worker: {e}"));
    let add = Action::new("add").sync(|t: Task| {
        let c = t.inargs["counter"].as_f64().unwrap_or_default();
        let st = t.inargs["step"].as_f64().unwrap_or_default();
        Ok::<_, String>(json!({"counter": jobcenter_conformance::number(c + st)}))
    });
    w.announce(add)
        .await
        .unwrap_or_else(|e| panic!("announce: {e}"));
    w
}

#[tokio::test]
async fn perl_client_a_happy_path_call() {
    let s = server(Duration::from_secs(60)).await;
    let _w = add_worker(&s).await;
    let events = load("a_client_happy_path.jsonl");
    let mut r = Replay::new(s.addr());
    r.run(&events).await;
    // greetings, hello, create_job, job_done
    assert_eq!(r.checked, 4);
    assert_eq!(r.jobs.len(), 1);
}

#[tokio::test]
async fn perl_worker_b_happy_path_offer_poll_offer_and_ping() {
    let s = server(Duration::from_millis(300)).await;
    let client: Client = s
        .client_as(jobcenter_conformance::CUSTOMER)
        .await
        .unwrap_or_else(|e| panic!("client: {e}"));
    let events = load("b_worker_happy_path.jsonl");
    let first_ready = events
        .iter()
        .position(|e| {
            e.payload
                .as_ref()
                .is_some_and(|p| p["method"] == "task_ready")
        })
        .unwrap_or_else(|| panic!("no task_ready in b"));
    let first_done = events
        .iter()
        .position(|e| {
            e.payload
                .as_ref()
                .is_some_and(|p| p["method"] == "task_done")
        })
        .unwrap_or_else(|| panic!("no task_done in b"));
    let mut r = Replay::new(s.addr());
    // hello + announce.
    r.run(&events[..first_ready]).await;
    // The job the other client created in the capture: add {"step":2,"counter":40}.
    let first = client
        .job("calladd")
        .inargs(json!({"input": 40, "step": 2}))
        .submit()
        .await
        .unwrap_or_else(|e| panic!("submit: {e}"));
    // task_ready → get_task → result.
    r.run(&events[first_ready..first_done]).await;
    // While the only slot is busy a second job becomes ready; after task_done it is
    // offered again (the capture shows a poll offer with a string token here).
    let second = client
        .job("calladd")
        .inargs(json!({"input": 12}))
        .submit()
        .await
        .unwrap_or_else(|e| panic!("submit: {e}"));
    r.run(&events[first_done..]).await;
    let (a, b) = (
        first.await.unwrap_or_else(|e| panic!("{e}")),
        second.await.unwrap_or_else(|e| panic!("{e}")),
    );
    assert_eq!(a.outargs, json!({"output": 42}));
    assert_eq!(b.outargs, json!({"output": 15}));
    let pings = r.pings.get(&1).copied().unwrap_or_default();
    assert!(pings.0 >= 1, "the worker was pinged and answered");
}

#[tokio::test]
async fn perl_client_e_api_tour() {
    let s = server(Duration::from_secs(60)).await;
    let events = load("e_perl_client_api_tour.jsonl");
    let mut r = Replay::new(s.addr());
    r.run(&events).await;
    assert!(r.checked > 40, "checked {} frames", r.checked);
    assert!(matches!(
        r.conn(1).recv_timeout(Duration::from_millis(10)).await,
        Err(RawError::Closed) | Err(RawError::Timeout)
    ));
}
