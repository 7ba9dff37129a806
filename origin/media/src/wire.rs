//! The outcome of [`crate::process`] as bytes, for running it in a child
//! process: a decoder that crashes or runs away then takes only that
//! child with it (rav1d, like any decoder of hostile input, can abort on
//! data it does not expect, and an abort cannot be caught in-process).
//!
//! The shape: one JSON line, then the variants' bytes back to back in the
//! order the line lists them. Reading it back checks that every key is the
//! SHA-256 of its bytes and every variant is WebP, so even a subverted
//! child cannot store one thing under another's name.

use crate::{Rejected, Variant, sniff};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Header {
    Variants(Vec<Meta>),
    Rejected(String),
}

#[derive(Serialize, Deserialize)]
struct Meta {
    key: String,
    width: u32,
    height: u32,
    len: usize,
}

/// The first argument that makes the origin's binary a processing child;
/// the rest are the content type and the four [`crate::Bounds`] numbers.
pub const CHILD_ARG: &str = "__process-image";

/// The arguments after [`CHILD_ARG`] for an upload of `content_type`.
pub fn child_args(content_type: &str, bounds: crate::Bounds) -> Vec<String> {
    let mut args = vec![content_type.to_string()];
    args.extend(
        [
            u64::from(bounds.max_width),
            u64::from(bounds.max_height),
            bounds.max_pixels,
            bounds.max_alloc,
        ]
        .map(|n| n.to_string()),
    );
    args
}

/// Why a child's output cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("the image processor's output is not valid: {0}")]
pub struct WireError(String);

/// `outcome` as the child writes it.
pub fn encode(outcome: &Result<Vec<Variant>, Rejected>) -> Vec<u8> {
    let header = match outcome {
        Ok(variants) => Header::Variants(
            variants
                .iter()
                .map(|v| Meta {
                    key: v.key.clone(),
                    width: v.width,
                    height: v.height,
                    len: v.bytes.len(),
                })
                .collect(),
        ),
        Err(rejected) => Header::Rejected(rejected.to_string()),
    };
    let mut out = serde_json::to_vec(&header).expect("a header always serialises");
    out.push(b'\n');
    if let Ok(variants) = outcome {
        for v in variants {
            out.extend_from_slice(&v.bytes);
        }
    }
    out
}

/// What the child wrote: the variants, or the reason (for the vendor) the
/// upload was rejected.
pub fn decode(bytes: &[u8]) -> Result<Result<Vec<Variant>, String>, WireError> {
    let bad = |what: &str| WireError(what.to_string());
    let end = bytes
        .iter()
        .position(|b| *b == b'\n')
        .ok_or_else(|| bad("no header line"))?;
    let header: Header =
        serde_json::from_slice(&bytes[..end]).map_err(|e| WireError(e.to_string()))?;
    let metas = match header {
        Header::Rejected(reason) => return Ok(Err(reason)),
        Header::Variants(metas) => metas,
    };
    let mut rest = &bytes[end + 1..];
    let mut variants = Vec::with_capacity(metas.len());
    for meta in metas {
        if meta.len > rest.len() {
            return Err(bad("a variant is cut short"));
        }
        let (body, tail) = rest.split_at(meta.len);
        rest = tail;
        let hex: String = Sha256::digest(body)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        if meta.key != format!("media/{hex}.webp") || sniff(body) != Some(Variant::CONTENT_TYPE) {
            return Err(bad("a variant's key does not name its bytes"));
        }
        variants.push(Variant {
            key: meta.key,
            width: meta.width,
            height: meta.height,
            bytes: body.to_vec(),
        });
    }
    if !rest.is_empty() {
        return Err(bad("bytes after the last variant"));
    }
    Ok(Ok(variants))
}
