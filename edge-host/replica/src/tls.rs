//! Whom a PoP trusts to be its primary over `https`: the web PKI's roots,
//! plus the operator's CA when the primary's certificate is private.
//! Replication and Hrana cross the public internet in production, so
//! there is no option to skip the check.

use rustls::pki_types::CertificateDer;
use rustls022 as rustls;
use std::sync::Arc;

/// The TLS client settings, shared by every connection to the primary.
pub type ClientConfig = Arc<rustls::ClientConfig>;

#[derive(Debug, thiserror::Error)]
#[error("a certificate of the operator's CA cannot be a root: {0}")]
pub struct BadRoot(rustls::Error);

/// The web PKI's roots, and `operator_roots` (read from the operator's CA
/// file by `admission::tls::read_certificates`).
pub fn client_config(operator_roots: &[CertificateDer<'static>]) -> Result<ClientConfig, BadRoot> {
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots026::TLS_SERVER_ROOTS.to_vec(),
    };
    for cert in operator_roots {
        roots.add(cert.clone()).map_err(BadRoot)?;
    }
    Ok(Arc::new(
        rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    ))
}
