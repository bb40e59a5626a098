//! Opening the byte stream to the server: plain TCP or TLS (rustls) over TCP.

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
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
    jobcenter_rpc::pem::read_certs(path).map_err(|e| ClientError::Tls(e.to_string()))
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, ClientError> {
    jobcenter_rpc::pem::read_key(path).map_err(|e| ClientError::Tls(e.to_string()))
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
