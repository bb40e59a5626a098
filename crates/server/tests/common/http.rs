//! Test support for the HTTP listener: a server with `--http` on loopback, and a raw
//! HTTP/1.1 client.

use super::{password_file_contents, WAIT};
use jobcenter_engine::backend::Backend;
use jobcenter_engine::{Catalog, Engine, EngineConfig, Stage};
use jobcenter_server::{
    AuthConfig, HttpConfig, ListenerConfig, Server, ServerConfig, ServerHandle,
};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A server with an HTTP listener, both on 127.0.0.1 ports of their own.
pub struct Rig {
    pub handle: ServerHandle,
    /// The API listener.
    pub addr: SocketAddr,
    /// The HTTP listener.
    pub http: SocketAddr,
    _dir: tempfile::TempDir,
}

/// A server over `backend` with the test password file (kept in `dir`), an HTTP listener
/// for `apimeister`, and no failure delay.
pub async fn rig(backend: Arc<dyn Backend>, no_auth: bool, dir: tempfile::TempDir) -> Rig {
    let pw = dir.path().join("passwd");
    std::fs::write(&pw, password_file_contents()).expect("write passwd");
    let mut http = HttpConfig::new("127.0.0.1:0".parse().expect("addr"));
    http.metrics_no_auth = no_auth;
    let config = ServerConfig {
        listeners: vec![ListenerConfig::tcp("127.0.0.1:0".parse().expect("addr"))],
        auth: AuthConfig {
            password_file: Some(pw),
            failure_delay: std::time::Duration::ZERO,
            ..AuthConfig::default()
        },
        timers: Default::default(),
        limits: Default::default(),
        http: Some(http),
        admin: ServerConfig::DEFAULT_ADMIN.into(),
    };
    let handle = Server::start(config, backend).await.expect("server starts");
    let addr = handle.local_addrs()[0];
    let http = handle.http_addr().expect("http listener");
    Rig {
        handle,
        addr,
        http,
        _dir: dir,
    }
}

/// [`rig`] over the engine with these `(file, source)` definitions (Stage C) on a SQLite
/// file (durable: its store thread commits in batches).
pub async fn engine_rig(sources: &[(&str, &str)]) -> Rig {
    let mut cat = Catalog::with_stage(Stage::C);
    for (file, src) in sources {
        if let Err(e) = cat.compile(file, src) {
            panic!("{file} does not compile: {e:?}");
        }
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let store = jobcenter_store::SqliteStore::open(dir.path().join("jc.db")).expect("store");
    let engine = Engine::new(cat, store, EngineConfig::default()).start();
    rig(engine as Arc<_>, false, dir).await
}

/// A plain HTTP/1.1 GET; returns the status, the header block (lower case) and the body.
pub async fn get(
    addr: SocketAddr,
    path: &str,
    auth: Option<(&str, &str)>,
) -> (u16, String, String) {
    request(addr, "GET", path, auth).await
}

/// A plain HTTP/1.1 request without a body; returns the status, the header block (lower
/// case) and the body.
pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    auth: Option<(&str, &str)>,
) -> (u16, String, String) {
    use base64::Engine as _;
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    if let Some((u, p)) = auth {
        let b64 = base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"));
        req.push_str(&format!("Authorization: Basic {b64}\r\n"));
    }
    if method == "POST" {
        req.push_str("Content-Length: 0\r\n");
    }
    req.push_str("\r\n");
    let mut s = TcpStream::connect(addr).await.expect("connect http");
    s.write_all(req.as_bytes()).await.expect("send");
    let mut raw = Vec::new();
    tokio::time::timeout(WAIT, s.read_to_end(&mut raw))
        .await
        .expect("http answer in time")
        .expect("read");
    let raw = String::from_utf8(raw).expect("utf-8");
    let (head, body) = raw.split_once("\r\n\r\n").expect("header end");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status");
    (status, head.to_ascii_lowercase(), body.to_string())
}
