//! Opaque, tamper-evident keyset cursors.
//!
//! A cursor is `base64url(json) "." base64url(hmac-sha256(json))[..16]`. The
//! JSON holds the sort, a digest of the filters and the last row's sort key,
//! so a cursor cannot be edited, and cannot be replayed against another query.

use crate::params::Sort;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hmac::{Hmac, Mac};
use problem::Problem;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// The sort key of the last row on a page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum CursorKey {
    Int(i64, i64),
    Real(f64, i64),
}

#[derive(Serialize, Deserialize)]
struct Payload {
    v: u8,
    s: String,
    f: String,
    k: CursorKey,
}

const MAC_BYTES: usize = 16;

/// Signs and verifies cursors with one secret.
#[derive(Clone)]
pub struct CursorSigner {
    key: Vec<u8>,
}

impl std::fmt::Debug for CursorSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CursorSigner { key: <redacted> }")
    }
}

impl CursorSigner {
    pub fn new(secret: &[u8]) -> CursorSigner {
        CursorSigner {
            key: secret.to_vec(),
        }
    }

    fn mac(&self, data: &[u8]) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(data);
        mac
    }

    pub fn sign(&self, sort: Sort, filter_digest: &str, key: CursorKey) -> String {
        let payload = serde_json::to_vec(&Payload {
            v: 1,
            s: sort.as_str().to_string(),
            f: filter_digest.to_string(),
            k: key,
        })
        .expect("cursor payload serialises");
        let tag = self.mac(&payload).finalize().into_bytes();
        format!("{}.{}", B64.encode(&payload), B64.encode(&tag[..MAC_BYTES]))
    }

    pub fn verify(
        &self,
        token: &str,
        sort: Sort,
        filter_digest: &str,
    ) -> Result<CursorKey, Problem> {
        let invalid = |why: &str| {
            Problem::invalid_parameter(
                "cursor",
                format!(
                    "{why}; use the next_cursor of a previous page, or start again without cursor"
                ),
            )
        };
        let (payload, tag) = token
            .split_once('.')
            .ok_or_else(|| invalid("cursor is malformed"))?;
        let payload = B64
            .decode(payload)
            .map_err(|_| invalid("cursor is malformed"))?;
        let tag = B64
            .decode(tag)
            .map_err(|_| invalid("cursor is malformed"))?;
        self.mac(&payload)
            .verify_truncated_left(&tag)
            .ok()
            .filter(|()| tag.len() == MAC_BYTES)
            .ok_or_else(|| invalid("cursor was altered or signed with another key"))?;
        let payload: Payload =
            serde_json::from_slice(&payload).map_err(|_| invalid("cursor is malformed"))?;
        if payload.v != 1 || payload.s != sort.as_str() || payload.f != filter_digest {
            return Err(invalid("cursor belongs to a different query"));
        }
        match (sort, &payload.k) {
            (Sort::Relevance, CursorKey::Real(..)) | (_, CursorKey::Int(..)) => Ok(payload.k),
            _ => Err(invalid("cursor is malformed")),
        }
    }
}
