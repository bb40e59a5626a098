//! Test support: a raw netstring JSON-RPC client, a small in-memory backend and a server
//! launcher. (Shared by several test binaries; not everything is used by each.)
#![allow(dead_code)]

pub mod backend;
pub mod http;
pub mod peers;
pub mod tls;

use bytes::{Buf, BytesMut};
use jobcenter_engine::backend::Backend;
use jobcenter_server::{AuthConfig, ListenerConfig, Server, ServerConfig, ServerHandle, Timers};
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub use backend::{mini_backend, StubBackend};

/// How long a test waits for something that should happen.
pub const WAIT: Duration = Duration::from_secs(5);

/// A server for tests with its password file.
pub struct TestServer {
    pub handle: ServerHandle,
    pub addr: SocketAddr,
    pub backend: Arc<StubBackend>,
    _dir: tempfile::TempDir,
}

/// Password file lines: the §11.2 test vectors plus `apimeister` (password `meister`).
pub fn password_file_contents() -> String {
    let meister = jobcenter_server::crypt::crypt("meister", "$5$saltsaltsalt$").expect("hash");
    format!(
        "theCustomer:$5$Re.J8ULljB$Zlp7EvuSXSqred7R/ONec5Wcx3sa0Di7r8jYj6OYJgB\n\
theEmployee:$5$OHFG1Ol7VMz647y$gmqS.M6i0hTtcKu9935yBn8Ck7yOdonV68hkz7mjnS/\n\
apimeister:{meister}\n"
    )
}

impl TestServer {
    pub async fn start() -> TestServer {
        Self::with_timers(Timers::default()).await
    }

    pub async fn with_timers(timers: Timers) -> TestServer {
        Self::with(timers, mini_backend()).await
    }

    pub async fn with(timers: Timers, backend: Arc<StubBackend>) -> TestServer {
        Self::with_auth(timers, backend, |_| {}).await
    }

    /// A server whose [`AuthConfig`] (already holding the test password file) `auth` adjusts.
    pub async fn with_auth(
        timers: Timers,
        backend: Arc<StubBackend>,
        auth: impl FnOnce(&mut AuthConfig),
    ) -> TestServer {
        let (handle, addr, dir) = start_server_with_auth(timers, backend.clone(), auth).await;
        TestServer {
            handle,
            addr,
            backend,
            _dir: dir,
        }
    }

    pub async fn client(&self) -> RawClient {
        RawClient::connect(self.addr).await
    }

    /// A connection logged in as `who` (theCustomer, theEmployee or apimeister).
    pub async fn login(&self, who: &str) -> RawClient {
        login(self.addr, who).await
    }
}

/// Start a server on 127.0.0.1:0 over `backend` with the test password file.
pub async fn start_server(
    timers: Timers,
    backend: Arc<dyn Backend>,
) -> (ServerHandle, SocketAddr, tempfile::TempDir) {
    start_server_with_auth(timers, backend, |_| {}).await
}

/// [`start_server`] with the [`AuthConfig`] adjusted by `auth`.
pub async fn start_server_with_auth(
    timers: Timers,
    backend: Arc<dyn Backend>,
    auth: impl FnOnce(&mut AuthConfig),
) -> (ServerHandle, SocketAddr, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let pw = dir.path().join("passwd");
    std::fs::write(&pw, password_file_contents()).expect("write passwd");
    let mut auth_config = AuthConfig {
        password_file: Some(pw),
        clientcert_file: None,
        dev_allow_any: false,
        ..AuthConfig::default()
    };
    auth(&mut auth_config);
    let config = ServerConfig {
        listeners: vec![ListenerConfig::tcp("127.0.0.1:0".parse().expect("addr"))],
        auth: auth_config,
        timers,
        limits: Default::default(),
        http: None,
        admin: ServerConfig::DEFAULT_ADMIN.into(),
    };
    let handle = Server::start(config, backend).await.expect("server starts");
    let addr = handle.local_addrs()[0];
    (handle, addr, dir)
}

/// A connection logged in as `who` (theCustomer, theEmployee or apimeister).
pub async fn login(addr: SocketAddr, who: &str) -> RawClient {
    let mut c = RawClient::connect(addr).await;
    let token = match who {
        "theCustomer" => "wantsThings",
        "theEmployee" => "doesThings",
        "apimeister" => "meister",
        _ => "x",
    };
    let r = c
        .result(
            "hello",
            json!({"who": who, "method": "password", "token": token}),
        )
        .await;
    assert_eq!(r, json!([true, format!("welcome to the clientapi {who}!")]));
    c
}

/// Parse one netstring from the front of `buf`.
fn take_frame(buf: &mut BytesMut) -> Option<Vec<u8>> {
    let colon = buf.iter().position(|b| *b == b':')?;
    let len: usize = std::str::from_utf8(&buf[..colon]).ok()?.parse().ok()?;
    if buf.len() < colon + 1 + len + 1 {
        return None;
    }
    assert_eq!(buf[colon + 1 + len], b',', "frame must end with a comma");
    buf.advance(colon + 1);
    let payload = buf.split_to(len).to_vec();
    buf.advance(1);
    Some(payload)
}

/// A raw JSON-RPC client over TCP, speaking netstrings byte by byte.
pub struct RawClient {
    pub stream: TcpStream,
    buf: BytesMut,
    stash: VecDeque<Value>,
    next_id: u64,
    pub greeting: Vec<u8>,
}

impl RawClient {
    /// Connect and read the greeting frame (kept raw in `greeting`).
    pub async fn connect(addr: SocketAddr) -> RawClient {
        let stream = TcpStream::connect(addr).await.expect("connect");
        let mut c = RawClient {
            stream,
            buf: BytesMut::new(),
            stash: VecDeque::new(),
            next_id: 1,
            greeting: Vec::new(),
        };
        let g = c.next_payload().await.expect("greeting");
        let mut raw = format!("{}:", g.len()).into_bytes();
        raw.extend_from_slice(&g);
        raw.push(b',');
        c.greeting = raw;
        c
    }

    pub async fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("write");
    }

    pub async fn send(&mut self, v: &Value) {
        let p = serde_json::to_vec(v).expect("json");
        let mut f = format!("{}:", p.len()).into_bytes();
        f.extend_from_slice(&p);
        f.push(b',');
        self.send_raw(&f).await;
    }

    /// The next payload, or `None` at end of stream. Panics after [`WAIT`].
    pub async fn next_payload(&mut self) -> Option<Vec<u8>> {
        self.next_payload_within(WAIT)
            .await
            .expect("timed out waiting for a frame")
    }

    /// `Err(())` on timeout, `Ok(None)` at end of stream.
    pub async fn next_payload_within(&mut self, t: Duration) -> Result<Option<Vec<u8>>, ()> {
        let deadline = tokio::time::Instant::now() + t;
        loop {
            if let Some(p) = take_frame(&mut self.buf) {
                return Ok(Some(p));
            }
            let mut chunk = [0u8; 4096];
            let n = match tokio::time::timeout_at(deadline, self.stream.read(&mut chunk)).await {
                Err(_) => return Err(()),
                Ok(Ok(n)) => n,
                Ok(Err(_)) => 0,
            };
            if n == 0 {
                return Ok(None);
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// The next message (from the stash first), `None` at end of stream.
    pub async fn next(&mut self) -> Option<Value> {
        if let Some(v) = self.stash.pop_front() {
            return Some(v);
        }
        let p = self.next_payload().await?;
        Some(serde_json::from_slice(&p).expect("server sends JSON"))
    }

    /// The next message within `t`; `Err(())` if nothing arrived.
    pub async fn next_within(&mut self, t: Duration) -> Result<Option<Value>, ()> {
        if let Some(v) = self.stash.pop_front() {
            return Ok(Some(v));
        }
        let p = self.next_payload_within(t).await?;
        Ok(p.map(|p| serde_json::from_slice(&p).expect("server sends JSON")))
    }

    /// Send a request and return the whole response message; other messages are stashed.
    pub async fn request(&mut self, method: &str, params: Value) -> Value {
        let id = format!("t{}", self.next_id);
        self.next_id += 1;
        self.send(&json!({"jsonrpc":"2.0","id": id,"method": method,"params": params}))
            .await;
        self.response(&Value::String(id)).await
    }

    /// Wait for the response with `id`, stashing everything else.
    pub async fn response(&mut self, id: &Value) -> Value {
        let mut seen = Vec::new();
        loop {
            let p = self
                .next_payload()
                .await
                .unwrap_or_else(|| panic!("connection closed waiting for {id}; saw {seen:?}"));
            let v: Value = serde_json::from_slice(&p).expect("json");
            if v.get("id") == Some(id) && v.get("method").is_none() {
                for s in seen {
                    self.stash.push_back(s);
                }
                return v;
            }
            seen.push(v);
        }
    }

    /// A request's `result` (panics on an error response).
    pub async fn result(&mut self, method: &str, params: Value) -> Value {
        let r = self.request(method, params).await;
        match r.get("result") {
            Some(v) => v.clone(),
            None => panic!("{method} failed: {r}"),
        }
    }

    /// A request's error object (panics on success).
    pub async fn error(&mut self, method: &str, params: Value) -> Value {
        let r = self.request(method, params).await;
        match r.get("error") {
            Some(v) => v.clone(),
            None => panic!("{method} succeeded: {r}"),
        }
    }

    pub async fn notify(&mut self, method: &str, params: Value) {
        self.send(&json!({"jsonrpc":"2.0","method": method,"params": params}))
            .await;
    }

    /// Wait for a notification `method` and return its params; others are stashed.
    pub async fn notification(&mut self, method: &str) -> Value {
        if let Some(pos) = self
            .stash
            .iter()
            .position(|v| v.get("method").and_then(Value::as_str) == Some(method))
        {
            let v = self.stash.remove(pos).expect("stashed");
            return v["params"].clone();
        }
        let mut seen = Vec::new();
        loop {
            let p = self
                .next_payload()
                .await
                .unwrap_or_else(|| panic!("closed waiting for {method}; saw {seen:?}"));
            let v: Value = serde_json::from_slice(&p).expect("json");
            if v.get("method").and_then(Value::as_str) == Some(method) {
                for s in seen {
                    self.stash.push_back(s);
                }
                return v["params"].clone();
            }
            seen.push(v);
        }
    }

    /// Assert that nothing arrives within `t`.
    pub async fn silent_for(&mut self, t: Duration) {
        match self.next_within(t).await {
            Err(()) => {}
            Ok(v) => panic!("expected silence, got {v:?}"),
        }
    }

    /// Assert that the server closes the connection (without sending anything more).
    pub async fn expect_eof(&mut self) {
        match self.next_within(WAIT).await {
            Ok(None) => {}
            Ok(Some(v)) => panic!("expected close, got {v}"),
            Err(()) => panic!("expected close, connection still open"),
        }
    }

    /// Announce an action with `slots` as workername `name`.
    pub async fn announce(&mut self, name: &str, action: &str, slots: u32) -> Value {
        self.result(
            "announce",
            json!({"workername": name, "actionname": action, "slots": slots}),
        )
        .await
    }

    /// Wait for a task_ready for `action` and claim it; returns the get_task result.
    pub async fn take_task(&mut self) -> Value {
        let tr = self.notification("task_ready").await;
        self.result(
            "get_task",
            json!({"actionname": tr["actionname"], "job_id": tr["job_id"]}),
        )
        .await
    }

    /// Take `n` tasks one after the other and answer each with the soft error
    /// `{"class": "soft", "msg": "x"}`; returns the `tries` of each task's env (null if
    /// absent).
    pub async fn fail_softly(&mut self, n: usize) -> Vec<Value> {
        let mut tries = Vec::new();
        for _ in 0..n {
            let t = self.take_task().await;
            tries.push(t[3].get("tries").cloned().unwrap_or(Value::Null));
            self.notify(
                "task_done",
                json!({"cookie": t[1], "outargs": {"error": {"class":"soft","msg":"x"}}}),
            )
            .await;
        }
        tries
    }
}
