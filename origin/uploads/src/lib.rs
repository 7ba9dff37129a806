//! Vendors' uploads to object storage: what an upload may be, the object
//! key it gets, and the presigned `PUT` URL that lets the vendor's client
//! send the bytes straight to the store, never through an app server.
//!
//! The URL is AWS Signature Version 4 in its query-string form, which S3,
//! R2, MinIO and GCS's interoperability API accept. It is signed with the
//! AWS SDK's own signer (`aws-sigv4`) over the method, the path-style
//! object URL and the `Content-Type` and `Content-Length` the vendor
//! declared, so another key, type or length, an edited query, or a request
//! after the URL's time fails the store's signature check. It is valid for
//! at most [`MAX_VALIDITY`]. Pure: the caller passes the time.

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    SignableBody, SignableRequest, SignatureLocation, SigningSettings, sign,
};
use aws_smithy_runtime_api::client::identity::Identity;
use std::time::{Duration, SystemTime};
pub use vendor_core::upload::{
    CONTENT_TYPES, MAX_FILE_NAME_CHARS, MAX_UPLOAD_BYTES, UploadRequest, extension,
};

/// The longest a presigned URL is valid.
pub const MAX_VALIDITY: Duration = Duration::from_secs(15 * 60);
/// Where uploads go, and the credential that signs for them. That
/// credential should reach nothing but `PutObject` under `uploads/`.
#[derive(Clone)]
pub struct Store {
    /// `http(s)://host[:port]`, without a trailing slash.
    pub endpoint: String,
    pub region: String,
    pub bucket: String,
    pub access_key: String,
    pub secret_key: String,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("bucket", &self.bucket)
            .field("access_key", &self.access_key)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PresignError {
    #[error("the store endpoint {0:?} is not an http:// or https:// URL with a host")]
    Endpoint(String),
    #[error("a presigned URL is valid for at most 15 minutes, not {0:?}")]
    Validity(Duration),
    #[error("signing failed: {0}")]
    Signing(String),
}

/// The object key of upload `id` (random, from the caller) by `vendor`:
/// under the vendor's own prefix, named by nothing the vendor chose.
pub fn object_key(vendor: i64, id: &str, content_type: &str) -> Option<String> {
    let ok_id = !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric());
    (vendor > 0 && ok_id)
        .then(|| extension(content_type).map(|ext| format!("uploads/{vendor}/{id}.{ext}")))
        .flatten()
}

/// A signed upload: `PUT` the bytes to `url` with exactly these fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresignedPut {
    pub url: String,
    pub headers: Vec<(&'static str, String)>,
    pub expires_at: SystemTime,
}

impl Store {
    /// The path-style URL of `key` (`{endpoint}/{bucket}/{key}`), which
    /// every S3-compatible store accepts.
    pub fn object_url(&self, key: &str) -> Result<String, PresignError> {
        let endpoint = self.endpoint.trim_end_matches('/');
        let scheme_ok = endpoint.starts_with("http://") || endpoint.starts_with("https://");
        let host_ok = endpoint
            .split_once("://")
            .is_some_and(|(_, h)| !h.is_empty() && !h.contains('/'));
        if !scheme_ok || !host_ok {
            return Err(PresignError::Endpoint(self.endpoint.clone()));
        }
        Ok(format!("{endpoint}/{}/{key}", self.bucket))
    }

    /// A `PUT` of `key` signed over its type and length, valid from `now`
    /// for `valid_for` (at most [`MAX_VALIDITY`]).
    pub fn presign_put(
        &self,
        key: &str,
        content_type: &str,
        length: u64,
        now: SystemTime,
        valid_for: Duration,
    ) -> Result<PresignedPut, PresignError> {
        if valid_for.is_zero() || valid_for > MAX_VALIDITY {
            return Err(PresignError::Validity(valid_for));
        }
        let headers = vec![
            ("content-type", content_type.to_string()),
            ("content-length", length.to_string()),
        ];
        let url = self.presign("PUT", &self.object_url(key)?, &headers, now, valid_for)?;
        Ok(PresignedPut {
            url,
            headers,
            expires_at: now + valid_for,
        })
    }

    /// Any other request on `key` (`GET`, `HEAD`, `DELETE`) as a URL
    /// signed over `headers`, valid from `now` for `valid_for`: how the
    /// processor reads uploads and writes media with its own key.
    pub fn presign_object(
        &self,
        method: &str,
        key: &str,
        headers: &[(&'static str, String)],
        now: SystemTime,
        valid_for: Duration,
    ) -> Result<String, PresignError> {
        if valid_for.is_zero() || valid_for > MAX_VALIDITY {
            return Err(PresignError::Validity(valid_for));
        }
        self.presign(method, &self.object_url(key)?, headers, now, valid_for)
    }

    /// SigV4 in the query string for `method url` with `headers` signed
    /// (and the host, always), the payload unsigned.
    fn presign(
        &self,
        method: &str,
        url: &str,
        headers: &[(&'static str, String)],
        now: SystemTime,
        valid_for: Duration,
    ) -> Result<String, PresignError> {
        let identity: Identity = Credentials::new(
            self.access_key.clone(),
            self.secret_key.clone(),
            None,
            None,
            "edgeshop-uploads",
        )
        .into();
        let mut settings = SigningSettings::default();
        settings.signature_location = SignatureLocation::QueryParams;
        settings.expires_in = Some(valid_for);
        let params = aws_sigv4::sign::v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name("s3")
            .time(now)
            .settings(settings)
            .build()
            .map_err(|e| PresignError::Signing(e.to_string()))?
            .into();
        let signable = SignableRequest::new(
            method,
            url,
            headers.iter().map(|(n, v)| (*n, v.as_str())),
            SignableBody::UnsignedPayload,
        )
        .map_err(|e| PresignError::Signing(e.to_string()))?;
        let (instructions, _) = sign(signable, &params)
            .map_err(|e| PresignError::Signing(e.to_string()))?
            .into_parts();
        let mut request = http::Request::builder()
            .method(method)
            .uri(url)
            .body(())
            .map_err(|e| PresignError::Signing(e.to_string()))?;
        instructions.apply_to_request_http1x(&mut request);
        Ok(request.uri().to_string())
    }
}

#[cfg(test)]
mod tests;
