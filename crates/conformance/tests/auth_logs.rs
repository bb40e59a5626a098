//! No token in the logs: the real server, client and worker in one process, with every
//! `tracing` event and span field at every level (trace included) captured into a buffer.
//! Frames that carry a token (`hello`) are logged by `jobcenter_rpc::peer` as a summary.

use std::fmt::Write as _;
use std::sync::{Arc, Mutex, OnceLock};

use jobcenter::{Client, ClientError, Worker};
use jobcenter_conformance::{
    fast_timers, part4_fixtures, reference_actions, RawConn, Recorder, TestServer, EMPLOYEE,
    EMPLOYEE_TOKEN, JC_ADMIN, JC_ADMIN_TOKEN, USERS,
};
use serde_json::json;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record as SpanValues};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::Layer;

/// A token that is never right (used for a failed login).
const WRONG_TOKEN: &str = "WrongGuessTokenQ7x";
/// The token of a raw `hello` refused for a missing `method`.
const RAW_TOKEN: &str = "RawHelloTokenZ3k";
/// A per-request token (`reqauth`) sent with a `create_job` (ignored without a plug-in,
/// but its frame is logged at trace level all the same).
const REQAUTH_TOKEN: &str = "PerRequestTokenK8w";

/// One captured event or span: level, target and every field as text.
#[derive(Debug, Clone)]
struct Captured {
    level: Level,
    target: String,
    text: String,
}

#[derive(Default)]
struct Fields(String);

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        let _ = write!(self.0, " {}={}", field.name(), value);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let _ = write!(self.0, " {}={:?}", field.name(), value);
    }
}

/// A layer that keeps everything it sees.
struct Capture(Arc<Mutex<Vec<Captured>>>);

impl Capture {
    fn keep(&self, level: Level, target: &str, text: String) {
        if let Ok(mut v) = self.0.lock() {
            v.push(Captured {
                level,
                target: target.to_string(),
                text,
            });
        }
    }
}

impl<S: Subscriber> Layer<S> for Capture {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut f = Fields::default();
        event.record(&mut f);
        let m = event.metadata();
        self.keep(*m.level(), m.target(), f.0);
    }

    fn on_new_span(&self, attrs: &Attributes<'_>, _id: &Id, _ctx: Context<'_, S>) {
        let mut f = Fields::default();
        attrs.record(&mut f);
        let m = attrs.metadata();
        self.keep(*m.level(), m.target(), format!("span {}{}", m.name(), f.0));
    }

    fn on_record(&self, _id: &Id, values: &SpanValues<'_>, _ctx: Context<'_, S>) {
        let mut f = Fields::default();
        values.record(&mut f);
        self.keep(Level::TRACE, "span-record", f.0);
    }
}

/// Everything logged in this test binary; the capture is installed on first use, before any
/// component logs (no level filter: trace and up).
fn captured() -> &'static Arc<Mutex<Vec<Captured>>> {
    static LOG: OnceLock<Arc<Mutex<Vec<Captured>>>> = OnceLock::new();
    LOG.get_or_init(|| {
        let log = Arc::new(Mutex::new(Vec::new()));
        let subscriber = tracing_subscriber::registry().with(Capture(log.clone()));
        if tracing::subscriber::set_global_default(subscriber).is_err() {
            panic!("another global subscriber is installed");
        }
        log
    })
}

fn snapshot() -> Vec<Captured> {
    captured().lock().map(|v| v.clone()).unwrap_or_default()
}

/// Every token the scenario uses.
fn tokens() -> Vec<&'static str> {
    let mut t: Vec<&str> = USERS.iter().map(|(_, t)| *t).collect();
    t.extend([WRONG_TOKEN, RAW_TOKEN, REQAUTH_TOKEN]);
    t
}

/// Log in and out in every way: a client and a worker that succeed and run a job, a client
/// with a wrong token, raw `hello`s that fail for a missing method, and one that logs in.
async fn scenario() {
    let _ = captured();
    let mut s = TestServer::start(part4_fixtures(), fast_timers())
        .await
        .unwrap_or_else(|e| panic!("server: {e}"));
    let rec = Recorder::new();
    let worker = Worker::connect(s.config(EMPLOYEE, EMPLOYEE_TOKEN))
        .await
        .unwrap_or_else(|e| panic!("worker: {e}"));
    for a in reference_actions(&rec, Some(1)) {
        worker
            .announce(a)
            .await
            .unwrap_or_else(|e| panic!("announce: {e}"));
    }
    let client = Client::connect(s.config(JC_ADMIN, JC_ADMIN_TOKEN))
        .await
        .unwrap_or_else(|e| panic!("client: {e}"));
    let res = client
        .call("k01", json!({"input": 1}))
        .await
        .unwrap_or_else(|e| panic!("call: {e}"));
    assert_eq!(res.outargs, json!({"output": 2}));
    match Client::connect(s.config(JC_ADMIN, WRONG_TOKEN)).await {
        Err(ClientError::Auth(msg)) => assert_eq!(msg, "you're not welcome!"),
        other => panic!("a wrong token must be refused: {other:?}"),
    }
    let mut raw = RawConn::connect(s.addr())
        .await
        .unwrap_or_else(|e| panic!("raw: {e}"));
    let _greeting = raw.recv().await;
    let mut other = Vec::new();
    let r = raw
        .request(
            "h1",
            "hello",
            json!({"who": JC_ADMIN, "token": RAW_TOKEN}),
            &mut other,
        )
        .await
        .unwrap_or_else(|e| panic!("raw hello: {e}"));
    assert_eq!(
        r["error"]["message"],
        json!("Method threw error: no method?")
    );
    let r = raw
        .request(
            "h2",
            "hello",
            json!({"who": "nobody", "method": "password", "token": RAW_TOKEN}),
            &mut other,
        )
        .await
        .unwrap_or_else(|e| panic!("raw hello: {e}"));
    assert_eq!(r["result"], json!([false, "you're not welcome!"]));
    assert!(raw.closed_within(jobcenter_conformance::WAIT).await);
    let mut raw = RawConn::login(s.addr(), JC_ADMIN, JC_ADMIN_TOKEN)
        .await
        .unwrap_or_else(|e| panic!("raw login: {e}"));
    let r = raw
        .request(
            "c1",
            "create_job",
            json!({"wfname": "k01", "vtag": null, "timeout": 300, "inargs": {"input": 2},
                "reqauth": {"secret": REQAUTH_TOKEN}}),
            &mut other,
        )
        .await
        .unwrap_or_else(|e| panic!("raw create_job: {e}"));
    assert!(r["result"][0].is_u64(), "{r}");
    client.close();
    drop(worker);
    s.shutdown().await;
}

/// The records that show a token.
fn leaks(records: &[Captured]) -> Vec<Captured> {
    let tokens = tokens();
    records
        .iter()
        .filter(|r| tokens.iter().any(|t| r.text.contains(t)))
        .cloned()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_no_token_in_trace_logs_of_server_client_and_worker() {
    scenario().await;
    let records = snapshot();
    // the capture really saw both sides, down to trace level
    assert!(records.iter().any(|r| r.level == Level::TRACE));
    // every failed login is logged at warn, with who, from where and the reason
    let failed: Vec<&Captured> = records
        .iter()
        .filter(|r| r.target.starts_with("jobcenter_server") && r.text.contains("hello failed"))
        .collect();
    assert_eq!(failed.len(), 2, "{failed:#?}");
    assert!(failed.iter().all(|r| r.level == Level::WARN), "{failed:#?}");
    assert!(
        failed.iter().all(|r| r.text.contains(" from=127.0.0.1:")),
        "{failed:#?}"
    );
    assert!(failed
        .iter()
        .any(|r| r.text.contains(&format!("who={JC_ADMIN}")) && r.text.contains("reason=nope")));
    assert!(failed
        .iter()
        .any(|r| r.text.contains("who=nobody") && r.text.contains("reason=no such user")));
    assert!(records
        .iter()
        .any(|r| r.target.starts_with("jobcenter::") && r.text.contains("welcome")));
    // the hello frames themselves were logged, summarised
    assert!(records
        .iter()
        .any(|r| r.target == "jobcenter_rpc::peer" && r.text.contains("carries a token")));
    let leaked = leaks(&records);
    assert!(leaked.is_empty(), "tokens in the logs: {leaked:#?}");
}
