//! TLS from PEM files: serving HTTPS with a certificate chain and its
//! key, and the roots a client trusts (the web PKI's, plus an operator's
//! private CA when one is given).

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
    #[error("a certificate cannot be a trusted root: {0}")]
    Root(rustls::Error),
    #[error(transparent)]
    Tls(rustls::Error),
}

/// Every certificate in the PEM file `path`; none is an error.
pub fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsFilesError> {
    let unreadable = |why: String| TlsFilesError::Chain {
        path: path.to_path_buf(),
        why,
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .map_err(|e| unreadable(e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| unreadable(e.to_string()))?;
    if certs.is_empty() {
        return Err(TlsFilesError::NoCertificate(path.to_path_buf()));
    }
    Ok(certs)
}

/// Client settings trusting the web PKI's roots and `extra` (TLS 1.2 and
/// 1.3 with ring). There is deliberately no way to skip the check.
pub fn client_config(
    extra: &[CertificateDer<'static>],
) -> Result<rustls::ClientConfig, TlsFilesError> {
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    for cert in extra {
        roots.add(cert.clone()).map_err(TlsFilesError::Root)?;
    }
    Ok(rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(TlsFilesError::Tls)?
    .with_root_certificates(roots)
    .with_no_client_auth())
}

/// An acceptor serving the chain in `cert` with the key in `key` (PEM),
/// TLS 1.2 and 1.3 with ring, HTTP/1.1 by ALPN.
pub fn acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor, TlsFilesError> {
    let chain = read_certificates(cert)?;
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

/// A pooled HTTP/1.1 client for the origin's calls out (the payment
/// provider, the object store): `http://` or `https://` trusting the web
/// PKI's roots plus `extra`; at most 32 idle connections per host, kept
/// 30 s.
pub type HttpsClient = hyper_util::client::legacy::Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    http_body_util::Full<bytes::Bytes>,
>;

/// Builds an [`HttpsClient`] that gives up connecting after
/// `connect_timeout`.
pub fn https_client(
    extra: &[CertificateDer<'static>],
    connect_timeout: std::time::Duration,
) -> Result<HttpsClient, TlsFilesError> {
    let mut connector = hyper_util::client::legacy::connect::HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(connect_timeout));
    connector.enforce_http(false);
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(client_config(extra)?)
        .https_or_http()
        .enable_http1()
        .wrap_connector(connector);
    Ok(
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .pool_idle_timeout(std::time::Duration::from_secs(30))
            .pool_max_idle_per_host(32)
            .build(connector),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_or_empty_certificate_file_is_an_error_naming_it() {
        let dir = std::env::temp_dir().join(format!("admission-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let missing = dir.join("missing.pem");
        let e = read_certificates(&missing).unwrap_err();
        assert!(e.to_string().contains("missing.pem"), "{e}");
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        assert!(matches!(
            read_certificates(&empty),
            Err(TlsFilesError::NoCertificate(_))
        ));
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(client_config(&[]).is_ok());
    }

    #[test]
    fn a_certificate_that_is_not_one_cannot_be_a_root() {
        let junk = CertificateDer::from(vec![0x30, 0x03, 0x02, 0x01, 0x00]);
        assert!(matches!(
            client_config(&[junk]),
            Err(TlsFilesError::Root(_))
        ));
    }
}
