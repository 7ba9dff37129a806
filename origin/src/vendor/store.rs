//! The processor's calls to the object store: reads of uploads, writes of
//! media, deletes of both, each a short-lived URL signed with the
//! processor's own key (which reaches `uploads/` to read and delete and
//! `media/` to write, nothing else).
//!
//! Not `object_store`: it brings its own `reqwest` stack for four calls
//! the origin's pooled client already makes; the signing is the AWS SDK's
//! (`uploads::Store`, `aws-sigv4`) either way.

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use std::time::{Duration, SystemTime};

/// How long each signed call's URL works.
const CALL_VALIDITY: Duration = Duration::from_secs(60);
/// Longest one call may take, body included.
const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// Why a call failed; all are worth retrying later.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the object store could not be reached: {0}")]
    Unreachable(String),
    #[error("the object store answered {status} to {method} {key}")]
    Status {
        method: &'static str,
        key: String,
        status: u16,
    },
    #[error("the object store did not answer within {CALL_TIMEOUT:?}")]
    Timeout,
    #[error("signing failed: {0}")]
    Signing(#[from] uploads::PresignError),
}

/// An object that is larger than its reader allows.
#[derive(Debug)]
pub struct TooLong;

/// The object store as the processor reaches it.
pub struct ObjectStore {
    store: uploads::Store,
    http: admission::tls::HttpsClient,
}

impl ObjectStore {
    pub fn new(store: uploads::Store, http: admission::tls::HttpsClient) -> ObjectStore {
        ObjectStore { store, http }
    }

    async fn call(
        &self,
        method: &'static str,
        key: &str,
        signed: &[(&'static str, String)],
        unsigned: &[(&'static str, &str)],
        body: Bytes,
    ) -> Result<http::Response<hyper::body::Incoming>, StoreError> {
        let url =
            self.store
                .presign_object(method, key, signed, SystemTime::now(), CALL_VALIDITY)?;
        let mut req = http::Request::builder().method(method).uri(url);
        for (name, value) in signed {
            req = req.header(*name, value);
        }
        for (name, value) in unsigned {
            req = req.header(*name, *value);
        }
        let req = req
            .body(Full::new(body))
            .map_err(|e| StoreError::Unreachable(e.to_string()))?;
        match tokio::time::timeout(CALL_TIMEOUT, self.http.request(req)).await {
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(e)) => Err(StoreError::Unreachable(e.to_string())),
            Err(_) => Err(StoreError::Timeout),
        }
    }

    /// Object `key`'s length, or `None` when there is no such object.
    pub async fn head(&self, key: &str) -> Result<Option<u64>, StoreError> {
        let resp = self.call("HEAD", key, &[], &[], Bytes::new()).await?;
        match resp.status().as_u16() {
            200 => Ok(Some(
                resp.headers()
                    .get(http::header::CONTENT_LENGTH)
                    .and_then(|v| v.to_str().ok()?.parse().ok())
                    .unwrap_or_default(),
            )),
            404 => Ok(None),
            status => Err(StoreError::Status {
                method: "HEAD",
                key: key.to_string(),
                status,
            }),
        }
    }

    /// Object `key`'s bytes if it has at most `max`; `None` when there is
    /// no such object.
    pub async fn get(
        &self,
        key: &str,
        max: u64,
    ) -> Result<Option<Result<Bytes, TooLong>>, StoreError> {
        let resp = self.call("GET", key, &[], &[], Bytes::new()).await?;
        match resp.status().as_u16() {
            200 => {}
            404 => return Ok(None),
            status => {
                return Err(StoreError::Status {
                    method: "GET",
                    key: key.to_string(),
                    status,
                });
            }
        }
        let read = Limited::new(resp.into_body(), max as usize).collect();
        match tokio::time::timeout(CALL_TIMEOUT, read).await {
            Ok(Ok(body)) => Ok(Some(Ok(body.to_bytes()))),
            Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Ok(Some(Err(TooLong))),
            Ok(Err(e)) => Err(StoreError::Unreachable(e.to_string())),
            Err(_) => Err(StoreError::Timeout),
        }
    }

    /// Stores `bytes` at `key` as `content_type`, cacheable for a year:
    /// media keys are content-addressed, so one never changes.
    pub async fn put_immutable(
        &self,
        key: &str,
        content_type: &str,
        bytes: Bytes,
    ) -> Result<(), StoreError> {
        let signed = [
            ("content-type", content_type.to_string()),
            ("content-length", bytes.len().to_string()),
        ];
        let cache = [("cache-control", media_core::IMMUTABLE)];
        let resp = self.call("PUT", key, &signed, &cache, bytes).await?;
        match resp.status().as_u16() {
            200 | 201 | 204 => Ok(()),
            status => Err(StoreError::Status {
                method: "PUT",
                key: key.to_string(),
                status,
            }),
        }
    }

    /// Removes `key`; a key already gone is done.
    pub async fn delete(&self, key: &str) -> Result<(), StoreError> {
        let resp = self.call("DELETE", key, &[], &[], Bytes::new()).await?;
        match resp.status().as_u16() {
            200 | 204 | 404 => Ok(()),
            status => Err(StoreError::Status {
                method: "DELETE",
                key: key.to_string(),
                status,
            }),
        }
    }
}
