//! TLS test support: a throw-away PKI made with rcgen (a CA, a server certificate for
//! `localhost`, client certificates with chosen CNs and validity), a TLS server using it with
//! the `clientcert` method, and a tokio-rustls client.

use jobcenter_server::{AuthConfig, ListenerConfig, Server, ServerConfig, ServerHandle, TlsConfig};
use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The CN file of the TLS test server: `worker.example` may be theEmployee or apimeister.
pub const CN_FILE: &str = "other.example:theCustomer\nworker.example:theEmployee,apimeister\n";

/// A client certificate and its PKCS#8 private key.
#[derive(Clone)]
pub struct ClientCert {
    pub der: CertificateDer<'static>,
    pub key: Vec<u8>,
}

/// A CA, the server's certificate files and the `worker.example` client certificate.
pub struct Pki {
    pub ca_der: CertificateDer<'static>,
    ca: Certificate,
    ca_key: KeyPair,
    /// Client certificate with CN `worker.example`, valid now.
    pub client: ClientCert,
    pub dir: tempfile::TempDir,
}

fn ca(cn: &str) -> (Certificate, KeyPair) {
    let ca_key = KeyPair::generate().expect("key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(DnType::CommonName, cn);
    let ca = ca_params.self_signed(&ca_key).expect("ca");
    (ca, ca_key)
}

fn client_cert(
    issuer: &Certificate,
    issuer_key: &KeyPair,
    cn: &str,
    valid: Option<(i32, i32)>,
) -> ClientCert {
    let key = KeyPair::generate().expect("key");
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params.distinguished_name.push(DnType::CommonName, cn);
    if let Some((from, until)) = valid {
        params.not_before = rcgen::date_time_ymd(from, 1, 1);
        params.not_after = rcgen::date_time_ymd(until, 1, 1);
    }
    let cert = params.signed_by(&key, issuer, issuer_key).expect("cert");
    ClientCert {
        der: cert.der().clone(),
        key: key.serialize_der(),
    }
}

/// Make the PKI and write `ca.pem`, `server.pem`, `server.key` and the CN file `cns`.
pub fn pki() -> Pki {
    let dir = tempfile::tempdir().expect("tempdir");
    let (ca, ca_key) = ca("jobcenter test ca");
    let srv_key = KeyPair::generate().expect("key");
    let mut srv_params = CertificateParams::new(vec!["localhost".to_string()]).expect("params");
    srv_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let srv = srv_params.signed_by(&srv_key, &ca, &ca_key).expect("srv");
    let client = client_cert(&ca, &ca_key, "worker.example", None);
    std::fs::write(dir.path().join("ca.pem"), ca.pem()).expect("write");
    std::fs::write(dir.path().join("server.pem"), srv.pem()).expect("write");
    std::fs::write(dir.path().join("server.key"), srv_key.serialize_pem()).expect("write");
    std::fs::write(dir.path().join("cns"), CN_FILE).expect("write");
    Pki {
        ca_der: ca.der().clone(),
        ca,
        ca_key,
        client,
        dir,
    }
}

impl Pki {
    /// A client certificate signed by this CA, with subject CN `cn`, valid now.
    pub fn client_cert(&self, cn: &str) -> ClientCert {
        client_cert(&self.ca, &self.ca_key, cn, None)
    }

    /// A client certificate signed by this CA, valid from 1 January `from` to 1 January
    /// `until` (years in the past make an expired certificate).
    pub fn client_cert_valid(&self, cn: &str, from: i32, until: i32) -> ClientCert {
        client_cert(&self.ca, &self.ca_key, cn, Some((from, until)))
    }

    /// A client certificate with subject CN `cn` signed by another CA, unknown to the server.
    pub fn foreign_client_cert(&self, cn: &str) -> ClientCert {
        let (other, other_key) = ca("some other ca");
        client_cert(&other, &other_key, cn, None)
    }
}

/// A TLS server on 127.0.0.1:0 with the `clientcert` method (CN file [`CN_FILE`]). With
/// `require_client_cert`, clients must present a certificate the PKI's CA verifies.
pub async fn start(p: &Pki, require_client_cert: bool) -> ServerHandle {
    start_listeners(p, vec![tls_listener(p, require_client_cert)], false).await
}

/// A TLS listener on 127.0.0.1:0 with the PKI's files, accepting every method.
pub fn tls_listener(p: &Pki, require_client_cert: bool) -> ListenerConfig {
    let d = p.dir.path();
    ListenerConfig {
        addr: "127.0.0.1:0".parse().expect("addr"),
        tls: Some(TlsConfig {
            cert: d.join("server.pem"),
            key: d.join("server.key"),
            client_ca: require_client_cert.then(|| d.join("ca.pem")),
        }),
        auth: None,
    }
}

/// A server with these listeners, the `clientcert` method (CN file [`CN_FILE`]) and, with
/// `passwords`, the `password` method with the test password file.
pub async fn start_listeners(
    p: &Pki,
    listeners: Vec<ListenerConfig>,
    passwords: bool,
) -> ServerHandle {
    let d = p.dir.path();
    let password_file = passwords.then(|| {
        let pw = d.join("passwd");
        std::fs::write(&pw, super::password_file_contents()).expect("write passwd");
        pw
    });
    let config = ServerConfig {
        listeners,
        auth: AuthConfig {
            password_file,
            clientcert_file: Some(d.join("cns")),
            dev_allow_any: false,
            ..AuthConfig::default()
        },
        timers: Default::default(),
        limits: Default::default(),
        http: None,
        admin: ServerConfig::DEFAULT_ADMIN.into(),
    };
    Server::start(config, super::mini_backend())
        .await
        .expect("server starts")
}

/// A client trusting the PKI's CA, presenting `cert` if given.
pub fn connector_with(p: &Pki, cert: Option<&ClientCert>) -> tokio_rustls::TlsConnector {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(p.ca_der.clone()).expect("root");
    let b = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots);
    let cfg = match cert {
        Some(c) => {
            let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(c.key.clone()));
            b.with_client_auth_cert(vec![c.der.clone()], key)
                .expect("client cert")
        }
        None => b.with_no_client_auth(),
    };
    tokio_rustls::TlsConnector::from(Arc::new(cfg))
}

/// A client trusting the PKI's CA, with the `worker.example` certificate or none.
pub fn connector(p: &Pki, with_cert: bool) -> tokio_rustls::TlsConnector {
    connector_with(p, with_cert.then_some(&p.client))
}

/// The server name the test server's certificate is for.
pub fn server_name() -> ServerName<'static> {
    ServerName::try_from("localhost").expect("name")
}

/// A TLS session with the listener at `addr` through `connector` whose greeting was read
/// and checked to be [`jobcenter_server::GREETING_FRAME`]; panics if the handshake fails.
pub async fn greeted_session(
    addr: std::net::SocketAddr,
    connector: &tokio_rustls::TlsConnector,
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("tcp");
    let mut s = connector
        .connect(server_name(), tcp)
        .await
        .expect("handshake");
    let g = read_frame(&mut s).await.expect("greeting");
    assert_eq!(
        format!("{}:{},", g.len(), String::from_utf8_lossy(&g)).as_bytes(),
        jobcenter_server::GREETING_FRAME
    );
    s
}

/// Read one netstring; `None` at end of stream or on a read error.
pub async fn read_frame<S: AsyncRead + Unpin>(s: &mut S) -> Option<Vec<u8>> {
    read_frame_or_error(s).await.ok()
}

/// Read one netstring; `Err` with the I/O error text (`"eof"` at end of stream).
pub async fn read_frame_or_error<S: AsyncRead + Unpin>(s: &mut S) -> Result<Vec<u8>, String> {
    let mut head = Vec::new();
    loop {
        let mut b = [0u8; 1];
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut b))
            .await
            .expect("timely")
            .map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("eof".to_string());
        }
        if b[0] == b':' {
            break;
        }
        head.push(b[0]);
    }
    let len: usize = std::str::from_utf8(&head)
        .ok()
        .and_then(|h| h.parse().ok())
        .ok_or_else(|| "bad netstring length".to_string())?;
    let mut body = vec![0u8; len + 1];
    s.read_exact(&mut body).await.map_err(|e| e.to_string())?;
    body.pop();
    Ok(body)
}

/// Send a request with id `x1` and read the next frame as its answer.
pub async fn call<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    method: &str,
    params: Value,
) -> Value {
    let p = json!({"jsonrpc":"2.0","id":"x1","method":method,"params":params}).to_string();
    s.write_all(format!("{}:{p},", p.len()).as_bytes())
        .await
        .expect("write");
    let f = read_frame(s).await.expect("answer");
    serde_json::from_slice(&f).expect("json")
}
