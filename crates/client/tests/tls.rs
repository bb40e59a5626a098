//! TLS: server verification against `tls_ca`, the explicit insecure switch, client certificates.

mod support;

use std::path::Path;
use std::sync::Arc;

use jobcenter::{Client, ClientConfig, ClientError};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde_json::json;
use support::{Conn, Script};
use tokio_rustls::TlsAcceptor;

struct Pki {
    dir: tempfile::TempDir,
    ca_der: CertificateDer<'static>,
    server_cert: CertificateDer<'static>,
    server_key: PrivateKeyDer<'static>,
}

/// A CA, a server certificate for `localhost` and a client certificate with CN `worker1`,
/// written as PEM files into a temporary directory.
fn pki() -> Pki {
    let dir = tempfile::tempdir().unwrap();
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "test ca");
    let ca = ca_params.self_signed(&ca_key).unwrap();

    let server_key = KeyPair::generate().unwrap();
    let server = CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .signed_by(&server_key, &ca, &ca_key)
        .unwrap();

    let client_key = KeyPair::generate().unwrap();
    let mut client_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    client_params
        .distinguished_name
        .push(DnType::CommonName, "worker1");
    let client = client_params.signed_by(&client_key, &ca, &ca_key).unwrap();

    let w = |name: &str, text: String| std::fs::write(dir.path().join(name), text).unwrap();
    w("ca.pem", ca.pem());
    w("client.pem", client.pem());
    w("client.key", client_key.serialize_pem());
    w("other.pem", server.pem()); // not a CA
    Pki {
        ca_der: ca.der().clone(),
        server_cert: server.der().clone(),
        server_key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der())),
        dir,
    }
}

fn acceptor(p: &Pki, client_auth: bool) -> TlsAcceptor {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let b = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap();
    let b = if client_auth {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(p.ca_der.clone()).unwrap();
        let v =
            rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .unwrap();
        b.with_client_cert_verifier(v)
    } else {
        b.with_no_client_auth()
    };
    let cfg = b
        .with_single_cert(vec![p.server_cert.clone()], p.server_key.clone_key())
        .unwrap();
    TlsAcceptor::from(Arc::new(cfg))
}

fn tls_cfg(s: &Script, dir: &Path) -> ClientConfig {
    let mut cfg = s
        .config("theEmployee", "doesThings")
        .tls_ca(dir.join("ca.pem"));
    cfg.tls_server_name = Some("localhost".to_string());
    cfg
}

/// Accept one TLS connection and authenticate it; returns the peer's certificate count.
async fn serve_tls(s: &Script, acc: TlsAcceptor) -> (Conn, usize) {
    let (tcp, _) = s.listener.accept().await.unwrap();
    let tls = acc.accept(tcp).await.unwrap();
    let certs = tls.get_ref().1.peer_certificates().map_or(0, |c| c.len());
    let mut c = Conn::new(tls);
    c.greet().await;
    let (id, _) = c.expect_call("hello").await;
    c.reply(&id, json!([true, "welcome to the clientapi theEmployee!"]))
        .await;
    (c, certs)
}

#[tokio::test]
async fn tls_verified_against_ca_and_ping_works() {
    let p = pki();
    let s = Script::bind().await;
    let cfg = tls_cfg(&s, p.dir.path());
    let (client, (mut c, certs)) =
        tokio::join!(Client::connect(cfg), serve_tls(&s, acceptor(&p, false)));
    let client = client.unwrap();
    assert_eq!(certs, 0);
    let (ok, ()) = tokio::join!(client.ping(), async {
        let (id, _) = c.expect_call("ping").await;
        c.reply(&id, json!("pong?")).await;
    });
    assert!(ok);
}

#[tokio::test]
async fn tls_client_certificate_is_presented() {
    let p = pki();
    let s = Script::bind().await;
    let d = p.dir.path();
    let cfg = tls_cfg(&s, d)
        .method("clientcert")
        .tls_client_cert(d.join("client.pem"), d.join("client.key"));
    let (client, (_c, certs)) =
        tokio::join!(Client::connect(cfg), serve_tls(&s, acceptor(&p, true)));
    client.unwrap();
    assert_eq!(certs, 1);
}

#[tokio::test]
async fn tls_wrong_ca_is_rejected() {
    let p = pki();
    let s = Script::bind().await;
    let mut cfg = tls_cfg(&s, p.dir.path());
    cfg.tls_ca = Some(p.dir.path().join("other.pem"));
    let acc = acceptor(&p, false);
    let server = async {
        let (tcp, _) = s.listener.accept().await.unwrap();
        assert!(acc.accept(tcp).await.is_err());
    };
    let (r, ()) = tokio::join!(Client::connect(cfg), server);
    assert!(matches!(r, Err(ClientError::Tls(_))), "{r:?}");
}

#[tokio::test]
async fn tls_insecure_accepts_any_certificate_and_no_ca_is_an_error() {
    let p = pki();
    let s = Script::bind().await;
    let cfg = s.config("theEmployee", "doesThings").tls_insecure();
    let (client, _) = tokio::join!(Client::connect(cfg), serve_tls(&s, acceptor(&p, false)));
    client.unwrap();
    let mut cfg = s.config("theEmployee", "doesThings");
    cfg.tls = true;
    match Client::connect(cfg).await {
        Err(ClientError::Tls(m)) => assert!(m.contains("tls_ca"), "{m}"),
        other => panic!("{other:?}"),
    }
}
