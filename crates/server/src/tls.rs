//! TLS listeners: the rustls acceptor from PEM files and the client certificate's subject CN.

use crate::config::TlsConfig;
use crate::ServerError;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::Path;
use std::sync::Arc;
use tokio_rustls::TlsAcceptor;
use x509_cert::der::Decode;
use x509_cert::Certificate;

fn read_pem(path: &Path) -> Result<Vec<u8>, ServerError> {
    std::fs::read(path)
        .map_err(|e| ServerError::Tls(format!("cannot read {}: {e}", path.display())))
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, ServerError> {
    let data = read_pem(path)?;
    let certs = CertificateDer::pem_slice_iter(&data)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ServerError::Tls(format!("bad PEM in {}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(ServerError::Tls(format!(
            "no certificate in {}",
            path.display()
        )));
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, ServerError> {
    let data = read_pem(path)?;
    PrivateKeyDer::from_pem_slice(&data).map_err(|e| match e {
        pem::Error::NoItemsFound => {
            ServerError::Tls(format!("no private key in {}", path.display()))
        }
        e => ServerError::Tls(format!("bad PEM in {}: {e}", path.display())),
    })
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

    fn tls_error(r: Result<impl std::fmt::Debug, ServerError>) -> String {
        match r {
            Err(ServerError::Tls(msg)) => msg,
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
        let both_path = dir.path().join("both.pem");
        std::fs::write(&cert_path, cert.pem()).expect("write");
        std::fs::write(&key_path, key.serialize_pem()).expect("write");
        std::fs::write(&both_path, format!("{}{}", key.serialize_pem(), cert.pem()))
            .expect("write");

        let certs = read_certs(&cert_path).expect("certs");
        assert_eq!(certs.len(), 1);
        assert_eq!(certs[0].as_ref(), cert.der().as_ref());
        assert_eq!(read_certs(&both_path).expect("certs").len(), 1);
        let k = read_key(&key_path).expect("key");
        assert_eq!(k.secret_der(), key.serialize_der().as_slice());
        assert!(read_key(&both_path).is_ok());

        let missing = dir.path().join("missing.pem");
        let msg = tls_error(read_certs(&missing));
        assert!(
            msg.starts_with("cannot read ") && msg.contains("missing.pem"),
            "{msg}"
        );
        let msg = tls_error(read_key(&cert_path));
        assert_eq!(msg, format!("no private key in {}", cert_path.display()));
        let msg = tls_error(read_certs(&key_path));
        assert_eq!(msg, format!("no certificate in {}", key_path.display()));
        let broken = dir.path().join("broken.pem");
        std::fs::write(&broken, "-----BEGIN CERTIFICATE-----\nnot base64!\n").expect("write");
        let msg = tls_error(read_certs(&broken));
        assert!(
            msg.starts_with("bad PEM in ") && msg.contains("broken.pem"),
            "{msg}"
        );
    }

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
