//! TLS listeners: the rustls acceptor from PEM files and the client certificate's subject CN.

use crate::config::TlsConfig;
use crate::ServerError;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::Path;
use std::sync::Arc;
use tokio_rustls::TlsAcceptor;

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

/// One DER element: (tag, contents, rest after the element).
fn der_element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (first as usize, rest)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | *b as usize);
        (len, &rest[n..])
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

/// The subject common name (OID 2.5.4.3) of a DER X.509 certificate, if it has one.
pub fn cert_common_name(der: &[u8]) -> Option<String> {
    const SEQ: u8 = 0x30;
    const SET: u8 = 0x31;
    const OID_CN: &[u8] = &[0x55, 0x04, 0x03];
    let (tag, cert, _) = der_element(der)?;
    if tag != SEQ {
        return None;
    }
    let (tag, tbs, _) = der_element(cert)?;
    if tag != SEQ {
        return None;
    }
    let mut rest = tbs;
    // optional [0] version
    let (tag, _, after) = der_element(rest)?;
    if tag == 0xa0 {
        rest = after;
    }
    // serial, signature algorithm, issuer, validity, then the subject
    for _ in 0..4 {
        rest = der_element(rest)?.2;
    }
    let (tag, subject, _) = der_element(rest)?;
    if tag != SEQ {
        return None;
    }
    let mut rdns = subject;
    while !rdns.is_empty() {
        let (tag, set, next) = der_element(rdns)?;
        rdns = next;
        if tag != SET {
            continue;
        }
        let mut atvs = set;
        while !atvs.is_empty() {
            let (_, atv, next) = der_element(atvs)?;
            atvs = next;
            let (tag, oid, value) = der_element(atv)?;
            if tag == 0x06 && oid == OID_CN {
                let (_, text, _) = der_element(value)?;
                return String::from_utf8(text.to_vec()).ok();
            }
        }
    }
    None
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
        assert_eq!(cert_common_name(&[]), None);
    }
}
