//! Test support: a scripted JobCenter server peer on loopback that replays protocol scripts.
#![allow(dead_code)]

pub mod rig;

use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use jobcenter::ClientConfig;
use jobcenter_wire::NetstringCodec;
use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_util::codec::Framed;

/// How long a test waits for any single expected event.
pub const STEP: Duration = Duration::from_secs(5);

/// A listening scripted server.
pub struct Script {
    pub listener: TcpListener,
    pub port: u16,
}

impl Script {
    pub async fn bind() -> Script {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        Script { listener, port }
    }

    pub fn config(&self, who: &str, token: &str) -> ClientConfig {
        ClientConfig::new(who, token).port(self.port)
    }

    pub async fn accept(&self) -> Conn {
        let (s, _) = tokio::time::timeout(STEP, self.listener.accept())
            .await
            .expect("accept timeout")
            .expect("accept");
        s.set_nodelay(true).ok();
        Conn::new(s)
    }

    /// Accept, greet, answer hello with success; returns the conn and the hello params.
    pub async fn accept_authed(&self) -> (Conn, Value) {
        let mut c = self.accept().await;
        c.greet().await;
        let (id, params) = c.expect_call("hello").await;
        let who = params["who"].as_str().unwrap_or("").to_string();
        c.reply(
            &id,
            json!([true, format!("welcome to the clientapi {who}!")]),
        )
        .await;
        (c, params)
    }
}

/// Any byte stream the scripted server can talk over (TCP or TLS).
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// One scripted connection (the server side).
pub struct Conn {
    pub framed: Framed<Box<dyn Io>, NetstringCodec>,
}

impl Conn {
    pub fn new(io: impl Io + 'static) -> Conn {
        let io: Box<dyn Io> = Box::new(io);
        Conn {
            framed: Framed::new(io, NetstringCodec::new(64 * 1024 * 1024)),
        }
    }

    pub async fn send(&mut self, v: Value) {
        self.framed
            .send(Bytes::from(v.to_string()))
            .await
            .expect("send");
    }

    pub async fn send_raw(&mut self, bytes: &[u8]) {
        self.framed.get_mut().write_all(bytes).await.expect("raw");
        self.framed.get_mut().flush().await.expect("flush");
    }

    pub async fn greet(&mut self) {
        self.greet_version("1.1").await;
    }

    pub async fn greet_version(&mut self, v: &str) {
        self.send(
            json!({"jsonrpc":"2.0","method":"greetings","params":{"who":"jcapi","version":v}}),
        )
        .await;
    }

    /// Next frame as JSON; `None` on EOF. Panics after [`STEP`].
    pub async fn recv(&mut self) -> Option<Value> {
        match tokio::time::timeout(STEP, self.framed.next())
            .await
            .expect("timeout waiting for a frame from the client")
        {
            None => None,
            Some(Err(e)) => panic!("framing error from client: {e}"),
            Some(Ok(b)) => Some(serde_json::from_slice(&b).expect("client sent bad json")),
        }
    }

    /// Like `recv` with a custom wait; `Err(())` on timeout.
    pub async fn recv_within(&mut self, t: Duration) -> Result<Option<Value>, ()> {
        match tokio::time::timeout(t, self.framed.next()).await {
            Err(_) => Err(()),
            Ok(None) => Ok(None),
            Ok(Some(Err(_))) => Ok(None),
            Ok(Some(Ok(b))) => Ok(Some(serde_json::from_slice(&b).expect("bad json"))),
        }
    }

    pub async fn expect_eof(&mut self) {
        if let Some(v) = self.recv().await {
            panic!("expected EOF, got {v}");
        }
    }

    /// Expect a request `method`; returns (id, params). Checks the envelope.
    pub async fn expect_call(&mut self, method: &str) -> (Value, Value) {
        let v = self
            .recv()
            .await
            .unwrap_or_else(|| panic!("EOF, expected {method}"));
        assert_eq!(v["jsonrpc"], "2.0", "{v}");
        assert_eq!(v["method"], method, "expected {method}, got {v}");
        let id = v.get("id").cloned().unwrap_or(Value::Null);
        assert!(
            id.as_str().is_some_and(|s| !s.is_empty() && s != "0"),
            "ids must be truthy strings (C23): {v}"
        );
        (id, v["params"].clone())
    }

    /// Expect a notification `method`; returns params.
    pub async fn expect_notification(&mut self, method: &str) -> Value {
        let v = self
            .recv()
            .await
            .unwrap_or_else(|| panic!("EOF, expected {method}"));
        assert_eq!(v["method"], method, "expected {method}, got {v}");
        assert!(v.get("id").is_none(), "notification with id: {v}");
        v["params"].clone()
    }

    pub async fn reply(&mut self, id: &Value, result: Value) {
        self.send(json!({"jsonrpc":"2.0","id":id,"result":result}))
            .await;
    }

    pub async fn reply_error(&mut self, id: &Value, code: i64, message: &str) {
        self.send(json!({"jsonrpc":"2.0","id":id,"error":{"code":code,"message":message}}))
            .await;
    }

    pub async fn notify(&mut self, method: &str, params: Value) {
        self.send(json!({"jsonrpc":"2.0","method":method,"params":params}))
            .await;
    }

    /// Send a request to the client; returns nothing (read the response with `recv`).
    pub async fn request(&mut self, id: &str, method: &str, params: Value) {
        self.send(json!({"jsonrpc":"2.0","id":id,"method":method,"params":params}))
            .await;
    }

    /// Expect a response to our request `id` with a success result.
    pub async fn expect_result(&mut self, id: &str) -> Value {
        let v = self.recv().await.expect("EOF, expected a response");
        assert_eq!(v["id"], id, "{v}");
        assert!(v.get("error").is_none(), "{v}");
        v["result"].clone()
    }
}

/// One event of a fixture transcript.
#[derive(Debug, Clone)]
pub struct Event {
    pub conn: String,
    pub dir: String,
    pub payload: Value,
}

/// Load the frame events of a fixture `.jsonl` (from the repository's fixtures/wire).
pub fn fixture(name: &str) -> Vec<Event> {
    let path = format!(
        "{}/../../fixtures/wire/{name}.jsonl",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let v: Value = serde_json::from_str(line).expect("fixture line");
        let Some(payload) = v.get("payload").and_then(Value::as_str) else {
            continue;
        };
        let Some(dir) = v.get("dir").and_then(Value::as_str) else {
            continue;
        };
        if dir != "C>S" && dir != "S>C" {
            continue;
        }
        let Ok(payload) = serde_json::from_str::<Value>(payload) else {
            continue;
        };
        out.push(Event {
            conn: match &v["conn"] {
                Value::Number(n) => format!("c{n}"),
                Value::String(s) => s.clone(),
                _ => String::new(),
            },
            dir: dir.to_string(),
            payload,
        });
    }
    out
}

/// Replay the server side of `conn` in `events`: S>C frames are sent (response ids mapped
/// to the live client's ids), C>S frames are received and compared (method, params with
/// `normalize` applied to both sides; responses: result and exact id echo).
pub async fn replay(c: &mut Conn, events: &[Event], conn: &str, normalize: impl Fn(&mut Value)) {
    use std::collections::HashMap;
    let mut idmap: HashMap<String, Value> = HashMap::new();
    for ev in events.iter().filter(|e| e.conn == conn) {
        let mut p = ev.payload.clone();
        if ev.dir == "S>C" {
            if p.get("method").is_none() {
                // A response: use the live id of the matching client request.
                let fid = p["id"].to_string();
                let live = idmap
                    .get(&fid)
                    .cloned()
                    .unwrap_or_else(|| panic!("no request for {fid}"));
                p["id"] = live;
            }
            c.send(p).await;
        } else {
            let mut got = c
                .recv()
                .await
                .unwrap_or_else(|| panic!("EOF; expected {p}"));
            if let Some(method) = p.get("method").cloned() {
                assert_eq!(got["method"], method, "expected {p}\n got {got}");
                let mut want = p["params"].clone();
                let mut have = got["params"].clone();
                normalize(&mut want);
                normalize(&mut have);
                assert_eq!(have, want, "params of {method}");
                match p.get("id") {
                    Some(fid) => {
                        assert!(got["id"].as_str().is_some_and(|s| !s.is_empty()));
                        idmap.insert(fid.to_string(), got["id"].clone());
                    }
                    None => assert!(got.get("id").is_none(), "expected a notification: {got}"),
                }
            } else {
                // The client's response to a server request: exact id echo and result.
                assert_eq!(got["id"], p["id"], "id echo (C23)");
                let want = p.get("result").cloned();
                let have = got.as_object_mut().and_then(|m| m.remove("result"));
                assert_eq!(have, want, "response to {}", p["id"]);
            }
        }
    }
}
