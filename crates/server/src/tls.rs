//! TLS listeners: the rustls acceptor from PEM files and the client certificate's subject CN.

use crate::config::TlsConfig;
use crate::ServerError;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::Path;
use std::sync::Arc;
use tokio_rustls::TlsAcceptor;
use x509_cert::der::Decode;
use x509_cert::Certificate;

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, ServerError> {
    jobcenter_rpc::pem::read_certs(path).map_err(|e| ServerError::Tls(e.to_string()))
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, ServerError> {
    jobcenter_rpc::pem::read_key(path).map_err(|e| ServerError::Tls(e.to_string()))
}

/// Build the acceptor of a TLS listener. With `client_ca`, a client certificate signed by
/// that CA is required (§2.2); without it, no client certificate is asked for.
pub fn acceptor(cfg: &TlsConfig) -> Result<TlsAcceptor, ServerError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certs = read_certs(&cfg.cert)?;
    let key = read_key(&cfg.key)?;
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| ServerError::Tls(e.to_string()))?;
    let builder = match &cfg.client_ca {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in read_certs(ca)? {
                roots
                    .add(c)
                    .map_err(|e| ServerError::Tls(format!("bad CA certificate: {e}")))?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .map_err(|e| ServerError::Tls(e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let config = builder
        .with_single_cert(certs, key)
        .map_err(|e| ServerError::Tls(e.to_string()))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// The subject common name (OID 2.5.4.3) of a DER X.509 certificate, if it has one (the
/// first one, if it has several); `None` too for bytes that are no certificate.
pub fn cert_common_name(der: &[u8]) -> Option<String> {
    let cert = Certificate::from_der(der).ok()?;
    let cn = cert.tbs_certificate().subject().common_name().ok()??;
    Some(cn.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_name_of_generated_certificate() {
        let mut params = rcgen::CertificateParams::new(vec!["localhost".into()]).expect("params");
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "Example Org");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "worker.example");
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = params.self_signed(&key).expect("cert");
        assert_eq!(
            cert_common_name(cert.der()).as_deref(),
            Some("worker.example")
        );
        let mut params = rcgen::CertificateParams::new(vec!["localhost".into()]).expect("params");
        params.distinguished_name = rcgen::DistinguishedName::new();
        let cert = params.self_signed(&key).expect("cert");
        assert_eq!(cert_common_name(cert.der()), None);
        assert_eq!(cert_common_name(b"garbage"), None);
        // a truncated certificate is none either
        let der = cert.der();
        assert_eq!(cert_common_name(&der[..der.len() - 1]), None);
        assert_eq!(cert_common_name(&[]), None);
    }

    #[test]
    fn common_name_string_kinds_and_subject_not_issuer() {
        let key = rcgen::KeyPair::generate().expect("key");
        let with_cn = |cn: rcgen::DnValue| {
            let mut params = rcgen::CertificateParams::new(vec![]).expect("params");
            params.distinguished_name = rcgen::DistinguishedName::new();
            params
                .distinguished_name
                .push(rcgen::DnType::CommonName, cn);
            params
        };
        let printable = rcgen::PrintableString::try_from("worker 1").expect("printable");
        let cert = with_cn(rcgen::DnValue::PrintableString(printable))
            .self_signed(&key)
            .expect("cert");
        assert_eq!(cert_common_name(cert.der()).as_deref(), Some("worker 1"));
        let cert = with_cn(rcgen::DnValue::Utf8String("Wörker ✓".into()))
            .self_signed(&key)
            .expect("cert");
        assert_eq!(cert_common_name(cert.der()).as_deref(), Some("Wörker ✓"));

        // The issuer's CN is not the subject's.
        let ca_params = with_cn(rcgen::DnValue::Utf8String("ca.example".into()));
        let ca = ca_params.self_signed(&key).expect("ca");
        let mut leaf = rcgen::CertificateParams::new(vec!["localhost".into()]).expect("params");
        leaf.distinguished_name = rcgen::DistinguishedName::new();
        let leaf_key = rcgen::KeyPair::generate().expect("key");
        let cert = leaf.signed_by(&leaf_key, &ca, &key).expect("leaf");
        assert_eq!(cert_common_name(cert.der()), None);
    }
}
