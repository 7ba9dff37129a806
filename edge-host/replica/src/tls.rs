//! Whom a PoP trusts to be its primary over `https`: the web PKI's roots,
//! plus the operator's CA when the primary's certificate is private.
//! Replication and Hrana cross the public internet in production, so
//! there is no option to skip the check.

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use rustls022 as rustls;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The TLS client settings, shared by every connection to the primary.
pub type ClientConfig = Arc<rustls::ClientConfig>;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("reading the CA file {path}: {why}")]
    CaFile { path: PathBuf, why: String },
    #[error("the CA file {0} holds no PEM certificate")]
    NoCertificate(PathBuf),
    #[error("a certificate in {path} cannot be a root: {why}")]
    BadRoot { path: PathBuf, why: rustls::Error },
}

/// The web PKI's roots, and every certificate in the PEM file
/// `operator_ca` when there is one.
pub fn client_config(operator_ca: Option<&Path>) -> Result<ClientConfig, TlsError> {
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots026::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(path) = operator_ca {
        let unreadable = |why: String| TlsError::CaFile {
            path: path.to_path_buf(),
            why,
        };
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
            .map_err(|e| unreadable(e.to_string()))?
            .collect::<Result<_, _>>()
            .map_err(|e| unreadable(e.to_string()))?;
        if certs.is_empty() {
            return Err(TlsError::NoCertificate(path.to_path_buf()));
        }
        for cert in certs {
            roots.add(cert).map_err(|why| TlsError::BadRoot {
                path: path.to_path_buf(),
                why,
            })?;
        }
    }
    Ok(Arc::new(
        rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_or_empty_ca_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let e = client_config(Some(&missing)).unwrap_err();
        assert!(e.to_string().contains("missing.pem"), "{e}");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        assert!(matches!(
            client_config(Some(&empty)),
            Err(TlsError::NoCertificate(_))
        ));
        assert!(client_config(None).is_ok());
    }
}
