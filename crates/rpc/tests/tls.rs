//! The peer over TLS (tokio-rustls, ring): calls both ways, large frames that exercise the
//! flush-after-write path, and a graceful close.

mod common;

use common::guard;
use jobcenter_rpc::wire::{CLIENT_MAX_FRAME, SERVER_MAX_FRAME};
use jobcenter_rpc::{CallError, CloseReason, HandlerFuture, Methods, Peer, PeerConfig};
use rustls::pki_types::{CertificateDer, PrivatePkcs8KeyDer, ServerName};
use serde_json::{json, Value};
use std::sync::Arc;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::{TlsAcceptor, TlsConnector};

fn echo_methods() -> Methods {
    let mut m = Methods::new();
    m.request("echo", None, |_, p| -> HandlerFuture {
        Box::pin(async move { Ok(Value::Object(p).into()) })
    });
    m
}

async fn tls_pair(client_methods: Methods) -> (Peer, Peer) {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("cert");
    let cert: CertificateDer<'static> = ck.cert.der().clone();
    let key = PrivatePkcs8KeyDer::from(ck.key_pair.serialize_der());
    let server_cfg = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], key.into())
        .expect("server config");
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert).expect("root");
    let client_cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();

    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("addr");
    let acceptor = TlsAcceptor::from(Arc::new(server_cfg));
    let connector = TlsConnector::from(Arc::new(client_cfg));
    let server_side = async move {
        let (tcp, _) = l.accept().await.expect("accept");
        acceptor.accept(tcp).await.expect("tls accept")
    };
    let client_side = async move {
        let tcp = TcpStream::connect(addr).await.expect("connect");
        let name = ServerName::try_from("localhost").expect("name");
        connector.connect(name, tcp).await.expect("tls connect")
    };
    let (s, c) = guard(async { tokio::join!(server_side, client_side) }).await;
    let server = Peer::spawn(
        s,
        Arc::new(echo_methods()),
        PeerConfig::new(SERVER_MAX_FRAME, "tls-server"),
    );
    let client = Peer::spawn(
        c,
        Arc::new(client_methods),
        PeerConfig::new(CLIENT_MAX_FRAME, "tls-client"),
    );
    (server, client)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_both_ways_over_tls() {
    let (server, client) = tls_pair(echo_methods()).await;
    let r = guard(client.call("echo", json!({"a": "ü"}))).await;
    assert_eq!(r, Ok(json!({"a": "ü"})));
    let r = guard(server.call("echo", json!({"b": 2}))).await;
    assert_eq!(r, Ok(json!({"b": 2})));
    let calls = (0..500).map(|i| {
        let c = client.clone();
        async move { (i, c.call("echo", json!({ "i": i })).await) }
    });
    for (i, r) in guard(futures::future::join_all(calls)).await {
        assert_eq!(r, Ok(json!({ "i": i })));
    }
    let r = guard(client.call("nope", json!({}))).await;
    assert_eq!(
        r,
        Err(CallError::Rpc {
            code: -32601,
            message: "Method not found.".into()
        })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_frames_and_graceful_close_over_tls() {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut m = Methods::new();
    m.notification("blob", None, move |_, p| -> HandlerFuture {
        let tx = tx.clone();
        Box::pin(async move {
            let _ = tx.send(p);
            Ok(json!([]).into())
        })
    });
    let (server, client) = tls_pair(m).await;
    let blob = "q".repeat(200 * 1024);
    for i in 0..30 {
        server
            .notify("blob", json!({ "i": i, "s": blob }))
            .expect("queued");
    }
    server.close();
    for i in 0..30 {
        let p = guard(rx.recv()).await.expect("notification");
        assert_eq!(p["i"], i);
        assert_eq!(p["s"].as_str().map(str::len), Some(blob.len()));
    }
    assert_eq!(guard(client.closed()).await, CloseReason::PeerClosed);
    assert_eq!(guard(server.closed()).await, CloseReason::Local);
    guard(server.finished()).await;
}
