//! Opening the byte stream to the server: plain TCP or TLS (rustls) over TCP.

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use crate::config::ClientConfig;
use crate::error::ClientError;

/// The connected byte stream.
pub(crate) enum Stream {
    /// Plain TCP.
    Tcp(TcpStream),
    /// TLS over TCP (boxed: the TLS state is large).
    Tls(Box<TlsStream<TcpStream>>),
}

/// Open TCP (and TLS when configured) to the configured server.
pub(crate) async fn open(cfg: &ClientConfig) -> Result<Stream, ClientError> {
    let addr = format!("{}:{}", cfg.address, cfg.port);
    // Configuration errors (bad PEM files, no CA) come before any network traffic.
    let tls_cfg = if cfg.tls {
        Some(tls_config(cfg)?)
    } else {
        None
    };
    let tcp = TcpStream::connect((cfg.address.as_str(), cfg.port))
        .await
        .map_err(|source| ClientError::Connection {
            addr: addr.clone(),
            source,
        })?;
    // Small request/response frames: do not wait for Nagle.
    if let Err(e) = tcp.set_nodelay(true) {
        tracing::debug!("set_nodelay failed: {e}");
    }
    let Some(tls_cfg) = tls_cfg else {
        return Ok(Stream::Tcp(tcp));
    };
    let name = cfg
        .tls_server_name
        .clone()
        .unwrap_or_else(|| cfg.address.clone());
    let server_name = ServerName::try_from(name.clone())
        .map_err(|e| ClientError::Tls(format!("invalid server name {name}: {e}")))?;
    let stream = TlsConnector::from(Arc::new(tls_cfg))
        .connect(server_name, tcp)
        .await
        .map_err(|e| ClientError::Tls(format!("handshake with {addr}: {e}")))?;
    Ok(Stream::Tls(Box::new(stream)))
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Build the rustls client configuration from the `tls_*` options.
pub(crate) fn tls_config(cfg: &ClientConfig) -> Result<rustls::ClientConfig, ClientError> {
    let provider = provider();
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| ClientError::Tls(e.to_string()))?;
    let builder = match (&cfg.tls_ca, cfg.tls_insecure) {
        (Some(ca), _) => {
            let mut roots = RootCertStore::empty();
            for cert in read_certs(ca)? {
                roots
                    .add(cert)
                    .map_err(|e| ClientError::Tls(format!("{}: {e}", ca.display())))?;
            }
            builder.with_root_certificates(roots)
        }
        (None, true) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerification(provider))),
        (None, false) => {
            return Err(ClientError::Tls(
                "no tls_ca given: set tls_ca, or tls_insecure to skip server verification"
                    .to_string(),
            ))
        }
    };
    let config = match (&cfg.tls_cert, &cfg.tls_key) {
        (Some(cert), Some(key)) => builder
            .with_client_auth_cert(read_certs(cert)?, read_key(key)?)
            .map_err(|e| ClientError::Tls(e.to_string()))?,
        (None, None) => builder.with_no_client_auth(),
        _ => {
            return Err(ClientError::Tls(
                "tls_cert and tls_key must be given together".to_string(),
            ))
        }
    };
    Ok(config)
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, ClientError> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| pem_error(path, e))?;
    if certs.is_empty() {
        return Err(ClientError::Tls(format!(
            "{}: no certificate found",
            path.display()
        )));
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, ClientError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| match e {
        pem::Error::NoItemsFound => {
            ClientError::Tls(format!("{}: no private key found", path.display()))
        }
        e => pem_error(path, e),
    })
}

/// A PEM file's error, with the file's name (an unreadable file's I/O error as is).
fn pem_error(path: &Path, e: pem::Error) -> ClientError {
    match e {
        pem::Error::Io(e) => ClientError::Tls(format!("{}: {e}", path.display())),
        e => ClientError::Tls(format!("{}: bad PEM: {e}", path.display())),
    }
}

/// Accepts every server certificate (the `tls_insecure` switch). Signatures are still
/// checked, so the peer must own the key of the certificate it shows.
#[derive(Debug)]
struct NoVerification(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tls_error(r: Result<impl std::fmt::Debug, ClientError>) -> String {
        match r {
            Err(ClientError::Tls(msg)) => msg,
            other => panic!("expected a TLS error, got {other:?}"),
        }
    }

    #[test]
    fn pem_files_are_read_and_bad_ones_named_in_the_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let key = rcgen::KeyPair::generate().expect("key");
        let params = rcgen::CertificateParams::new(vec!["localhost".into()]).expect("params");
        let cert = params.self_signed(&key).expect("cert");
        let cert_path = dir.path().join("cert.pem");
        let key_path = dir.path().join("key.pem");
        std::fs::write(&cert_path, cert.pem()).expect("write");
        std::fs::write(&key_path, key.serialize_pem()).expect("write");

        let certs = read_certs(&cert_path).expect("certs");
        assert_eq!(certs.len(), 1);
        assert_eq!(certs[0].as_ref(), cert.der().as_ref());
        let k = read_key(&key_path).expect("key");
        assert_eq!(k.secret_der(), key.serialize_der().as_slice());

        let missing = dir.path().join("missing.pem");
        let msg = tls_error(read_certs(&missing));
        assert!(
            msg.starts_with(&format!("{}: ", missing.display())),
            "{msg}"
        );
        let msg = tls_error(read_key(&missing));
        assert!(
            msg.starts_with(&format!("{}: ", missing.display())),
            "{msg}"
        );
        let msg = tls_error(read_key(&cert_path));
        assert_eq!(
            msg,
            format!("{}: no private key found", cert_path.display())
        );
        let msg = tls_error(read_certs(&key_path));
        assert_eq!(msg, format!("{}: no certificate found", key_path.display()));
        let broken = dir.path().join("broken.pem");
        std::fs::write(&broken, "-----BEGIN PRIVATE KEY-----\nnot base64!\n").expect("write");
        let msg = tls_error(read_key(&broken));
        assert!(
            msg.starts_with(&format!("{}: bad PEM: ", broken.display())),
            "{msg}"
        );
    }
}
