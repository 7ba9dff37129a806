//! Response shaping: JSON bodies, validators, cache headers, problems.

use problem::Problem;
use sha2::{Digest, Sha256};

/// Product and vendor pages: fresh for a minute at the edge, then served
/// stale while one request refreshes, and for a day if the origin fails
/// (RFC 5861).
pub const ITEM_CACHE_CONTROL: &str =
    "public, max-age=60, stale-while-revalidate=300, stale-if-error=86400";
/// Listings change whenever any product does: a shorter freshness window.
pub const LIST_CACHE_CONTROL: &str =
    "public, max-age=30, stale-while-revalidate=120, stale-if-error=86400";

/// A platform-neutral HTTP response.
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn problem(p: Problem) -> Response {
        Response {
            status: p.status,
            headers: p.header_fields(),
            body: p.to_json(),
        }
    }

    pub(crate) fn json_cacheable(
        body: Vec<u8>,
        tags: &[String],
        cache_control: &str,
        if_none_match: Option<&str>,
        head: bool,
    ) -> Response {
        let etag = etag_for(&body);
        let mut headers = vec![
            ("etag".to_string(), etag.clone()),
            ("cache-control".to_string(), cache_control.to_string()),
            ("cache-tag".to_string(), tags.join(",")),
        ];
        if if_none_match
            .is_some_and(|inm| cache_core::conditional::not_modified([inm], Some(&etag)))
        {
            return Response {
                status: 304,
                headers,
                body: Vec::new(),
            };
        }
        headers.push(("content-type".to_string(), "application/json".to_string()));
        headers.push(("content-length".to_string(), body.len().to_string()));
        Response {
            status: 200,
            headers,
            body: if head { Vec::new() } else { body },
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A strong validator from the representation's bytes.
pub fn etag_for(body: &[u8]) -> String {
    let digest = Sha256::digest(body);
    let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
    format!("\"{hex}\"")
}
