//! Replays the client side of recorded jcapi transcripts (fixtures/wire/*.jsonl) against our
//! server and compares every server frame with the recorded one: same JSON (member order
//! ignored), -32001 texts without the Perl location suffix, job ids by type only.

mod common;

use common::backend::ActionDef;
use common::{RawClient, TestServer, WAIT};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use tokio::io::AsyncWriteExt;

fn events(name: &str) -> BTreeMap<u64, Vec<Value>> {
    let path = format!(
        "{}/../../fixtures/wire/{name}.jsonl",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut by_conn: BTreeMap<u64, Vec<Value>> = BTreeMap::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let v: Value = serde_json::from_str(line).expect("jsonl line");
        let conn = v["conn"].as_u64().expect("conn");
        by_conn.entry(conn).or_default().push(v);
    }
    by_conn
}

/// Drop the Perl location (` at /opt/... line N.\n`) from error messages.
fn strip_location(v: &mut Value) {
    if let Some(m) = v.pointer_mut("/error/message") {
        if let Some(s) = m.as_str() {
            if let Some(pos) = s.find(" at /") {
                *m = Value::String(s[..pos].to_string());
            }
        }
    }
}

/// Expected vs actual: equal, except that inside `result` a positive integer of the
/// recording may stand for another one of ours (job ids differ from run to run), as long as
/// it does so consistently: `ids` maps each recorded number to the one it stood for first,
/// and no two recorded numbers may stand for the same one of ours.
fn same(expected: &Value, actual: &Value, in_result: bool, ids: &mut BTreeMap<u64, u64>) -> bool {
    match (expected, actual) {
        (Value::Number(e), Value::Number(a)) if in_result => match (e.as_u64(), a.as_u64()) {
            (Some(e), Some(a)) if e > 0 && a > 0 => match ids.get(&e) {
                Some(bound) => *bound == a,
                None if ids.values().any(|v| *v == a) => false,
                None => {
                    ids.insert(e, a);
                    true
                }
            },
            _ => e == a,
        },
        (Value::Object(e), Value::Object(a)) => {
            e.len() == a.len()
                && e.iter().all(|(k, ev)| {
                    a.get(k)
                        .is_some_and(|av| same(ev, av, in_result || k == "result", ids))
                })
        }
        (Value::Array(e), Value::Array(a)) => {
            e.len() == a.len() && e.iter().zip(a).all(|(x, y)| same(x, y, in_result, ids))
        }
        (e, a) => e == a,
    }
}

/// Where we answer differently from the recorded reference on purpose: nothing but `hello`
/// is answered before login, where the reference also answered `ping` with `"pong?"` (c02).
fn our_answer(expected: Value, logged_in: bool) -> Value {
    if !logged_in && expected.get("result") == Some(&json!("pong?")) {
        json!({"jsonrpc": "2.0", "id": expected["id"],
            "error": {"code": -32002, "message": "This method requires connection state auth"}})
    } else {
        expected
    }
}

/// Whether a server frame is the result of a successful `hello` (`Some(true)`) or of a
/// failed one (`Some(false)`).
fn hello_outcome(v: &Value) -> Option<bool> {
    let r = v.get("result")?.as_array()?;
    let msg = r.get(1)?.as_str()?;
    match r.first()? {
        Value::Bool(true) if msg.starts_with("welcome to the clientapi ") => Some(true),
        Value::Bool(false) if msg == "you're not welcome!" => Some(false),
        _ => None,
    }
}

async fn replay(s: &TestServer, name: &str) {
    // Recorded number → ours, over the whole transcript (a job id may recur on another
    // connection).
    let mut ids = BTreeMap::new();
    for (conn, evs) in events(name) {
        let mut client: Option<RawClient> = None;
        let mut client_closed = false;
        let mut logged_in = false;
        for ev in evs {
            let kind = ev["kind"].as_str().unwrap_or_default();
            let dir = ev["dir"].as_str().unwrap_or_default();
            let ctx = format!("{name} conn {conn} at {}", ev["rel"]);
            match (kind, dir) {
                ("open", _) => client = Some(s.client().await),
                ("frame", "S>C") => {
                    let c = client.as_mut().expect("open");
                    let mut expected: Value =
                        serde_json::from_str(ev["payload"].as_str().expect("payload"))
                            .expect("json");
                    if expected["method"] == "greetings" {
                        // already read by RawClient::connect; it must be the same
                        let g = &c.greeting;
                        let start = g.iter().position(|b| *b == b':').expect("colon") + 1;
                        let actual: Value =
                            serde_json::from_slice(&g[start..g.len() - 1]).expect("json");
                        assert_eq!(actual, expected, "{ctx}");
                        continue;
                    }
                    expected = our_answer(expected, logged_in);
                    let mut actual = c
                        .next()
                        .await
                        .unwrap_or_else(|| panic!("{ctx}: closed, expected {expected}"));
                    if let Some(ok) = hello_outcome(&actual) {
                        logged_in = ok;
                    }
                    strip_location(&mut expected);
                    strip_location(&mut actual);
                    assert!(
                        same(&expected, &actual, false, &mut ids),
                        "{ctx}:\n expected {expected}\n actual   {actual}"
                    );
                }
                ("frame", "C>S") => {
                    let c = client.as_mut().expect("open");
                    let p = ev["payload"].as_str().expect("payload").as_bytes();
                    let mut f = format!("{}:", p.len()).into_bytes();
                    f.extend_from_slice(p);
                    f.push(b',');
                    c.send_raw(&f).await;
                }
                ("eof", _) if ev["who"] == "S" && !client_closed => {
                    let c = client.as_mut().expect("open");
                    match c.next_within(WAIT).await {
                        Ok(None) => {}
                        // we write the fatal -32600 before closing; the reference lost it
                        Ok(Some(v)) if v["error"]["code"] == -32600 => c.expect_eof().await,
                        other => panic!("{ctx}: expected close, got {other:?}"),
                    }
                }
                ("eof", _) if ev["who"] == "C" => {
                    if let Some(c) = client.as_mut() {
                        let _ = c.stream.shutdown().await;
                    }
                    client_closed = true;
                }
                _ => {}
            }
        }
    }
}

#[tokio::test]
async fn replay_c01_hello_wrong_password() {
    let s = TestServer::start().await;
    replay(&s, "c01_hello_wrong_password").await;
    s.handle.shutdown().await;
}

#[tokio::test]
async fn replay_c02_call_before_hello() {
    let s = TestServer::start().await;
    replay(&s, "c02_call_before_hello").await;
    s.handle.shutdown().await;
}

#[tokio::test]
async fn replay_c03_unknown_method_and_bad_requests() {
    let s = TestServer::start().await;
    replay(&s, "c03_unknown_method_and_bad_requests").await;
    s.handle.shutdown().await;
}

#[tokio::test]
async fn replay_c08_check_if_lock_exists() {
    let s = TestServer::start().await;
    s.backend.action("locktest2", ActionDef::default());
    replay(&s, "c08_check_if_lock_exists").await;
    s.handle.shutdown().await;
}

#[tokio::test]
async fn replay_c10_withdraw() {
    let s = TestServer::start().await;
    s.backend.action("radd", ActionDef::default());
    replay(&s, "c10_withdraw").await;
    s.handle.shutdown().await;
}

#[test]
fn the_comparator_lets_numbers_stand_for_others_only_consistently() {
    let mut ids = BTreeMap::new();
    let r = |v: Value| json!({"id": 1, "result": v});
    assert!(same(
        &r(json!([5, null])),
        &r(json!([7, null])),
        false,
        &mut ids
    ));
    assert!(same(&r(json!([5])), &r(json!([7])), false, &mut ids));
    assert!(
        !same(&r(json!([5])), &r(json!([8])), false, &mut ids),
        "5 stood for 7"
    );
    assert!(
        !same(&r(json!([6])), &r(json!([7])), false, &mut ids),
        "7 is 5's"
    );
    assert!(
        !same(&json!({"id": 5}), &json!({"id": 7}), false, &mut ids),
        "outside a result numbers are compared exactly"
    );
    assert!(!same(&r(json!([0])), &r(json!([3])), false, &mut ids));
}
