//! Serving HTTPS from PEM files: the certificate chain and its key.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::{
    self,
    pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
};

/// Longest a client may take over the TLS handshake: a connection that
/// opens and never says hello is closed after it, as one that never sends
/// its headers is.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum TlsFilesError {
    #[error("reading a certificate chain from {path}: {why}")]
    Chain { path: PathBuf, why: String },
    #[error("{0} holds no PEM certificate")]
    NoCertificate(PathBuf),
    #[error("reading a private key from {path}: {why}")]
    Key { path: PathBuf, why: String },
    #[error("the certificate and key do not go together: {0}")]
    Mismatch(rustls::Error),
    #[error(transparent)]
    Tls(rustls::Error),
}

/// An acceptor serving the chain in `cert` with the key in `key` (PEM),
/// TLS 1.2 and 1.3 with ring, HTTP/1.1 by ALPN.
pub fn acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor, TlsFilesError> {
    let unreadable = |why: String| TlsFilesError::Chain {
        path: cert.to_path_buf(),
        why,
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| unreadable(e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| unreadable(e.to_string()))?;
    if chain.is_empty() {
        return Err(TlsFilesError::NoCertificate(cert.to_path_buf()));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsFilesError::Key {
        path: key.to_path_buf(),
        why: e.to_string(),
    })?;
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(TlsFilesError::Tls)?
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .map_err(TlsFilesError::Mismatch)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}
