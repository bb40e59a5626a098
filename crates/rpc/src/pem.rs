//! PEM files of a TLS set-up (certificates, a private key), read the same way by the client
//! and the server, with errors that name the file.

use std::path::{Path, PathBuf};

use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Why a PEM file could not be used; its `Display` names the file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PemError {
    /// The file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// The file is not valid PEM.
    #[error("bad PEM in {}: {reason}", path.display())]
    Bad {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The file holds no section of the wanted kind.
    #[error("no {what} in {}", path.display())]
    Missing {
        /// The file.
        path: PathBuf,
        /// "certificate" or "private key".
        what: &'static str,
    },
}

fn read(path: &Path) -> Result<Vec<u8>, PemError> {
    std::fs::read(path).map_err(|source| PemError::Read {
        path: path.to_owned(),
        source,
    })
}

fn bad(path: &Path, e: pem::Error) -> PemError {
    PemError::Bad {
        path: path.to_owned(),
        reason: e.to_string(),
    }
}

/// Every certificate of a PEM file, in file order (other sections, e.g. a key, are skipped);
/// a file without one is an error.
pub fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, PemError> {
    let data = read(path)?;
    let certs = CertificateDer::pem_slice_iter(&data)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(path, e))?;
    if certs.is_empty() {
        return Err(PemError::Missing {
            path: path.to_owned(),
            what: "certificate",
        });
    }
    Ok(certs)
}

/// The first private key (PKCS#8, PKCS#1 or SEC1) of a PEM file.
pub fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, PemError> {
    let data = read(path)?;
    PrivateKeyDer::from_pem_slice(&data).map_err(|e| match e {
        pem::Error::NoItemsFound => PemError::Missing {
            path: path.to_owned(),
            what: "private key",
        },
        e => bad(path, e),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
        for msg in [
            read_certs(&missing).map(|_| ()),
            read_key(&missing).map(|_| ()),
        ]
        .map(|r| r.expect_err("a missing file").to_string())
        {
            assert!(
                msg.starts_with(&format!("cannot read {}: ", missing.display())),
                "{msg}"
            );
        }
        let msg = read_key(&cert_path).expect_err("no key").to_string();
        assert_eq!(msg, format!("no private key in {}", cert_path.display()));
        let msg = read_certs(&key_path).expect_err("no cert").to_string();
        assert_eq!(msg, format!("no certificate in {}", key_path.display()));
        let broken = dir.path().join("broken.pem");
        std::fs::write(&broken, "-----BEGIN CERTIFICATE-----\nnot base64!\n").expect("write");
        let msg = read_certs(&broken).expect_err("broken").to_string();
        assert!(
            msg.starts_with(&format!("bad PEM in {}: ", broken.display())),
            "{msg}"
        );
        std::fs::write(&broken, "-----BEGIN PRIVATE KEY-----\nnot base64!\n").expect("write");
        let msg = read_key(&broken).expect_err("broken").to_string();
        assert!(
            msg.starts_with(&format!("bad PEM in {}: ", broken.display())),
            "{msg}"
        );
    }
}
