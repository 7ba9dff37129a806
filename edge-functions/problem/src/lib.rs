//! RFC 9457 problem details: the one shape every edgeshop error takes.
//!
//! Target-neutral (no HTTP types): components, the edge host and the origin
//! each turn a [`Problem`] into a response with [`Problem::CONTENT_TYPE`].

use serde::Serialize;

mod host;

pub use host::{MAX_HOST_BYTES, check_host};

/// An `application/problem+json` body.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Problem {
    /// A URI reference naming the problem type; relative references resolve
    /// against the serving origin.
    #[serde(rename = "type")]
    pub type_uri: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// Extension members (RFC 9457 section 3.2), such as the bad parameter.
    #[serde(flatten)]
    pub extensions: serde_json::Map<String, serde_json::Value>,
}

impl Problem {
    pub const CONTENT_TYPE: &'static str = "application/problem+json";

    pub fn new(status: u16, kind: &str, title: &str, detail: impl Into<String>) -> Problem {
        Problem {
            type_uri: format!("/problems/{kind}"),
            title: title.to_string(),
            status,
            detail: detail.into(),
            extensions: serde_json::Map::new(),
        }
    }

    pub fn bad_request(detail: impl Into<String>) -> Problem {
        Problem::new(400, "bad-request", "Bad request", detail)
    }

    /// A query or path parameter the client can fix.
    pub fn invalid_parameter(name: &str, detail: impl Into<String>) -> Problem {
        Problem::new(400, "invalid-parameter", "Invalid parameter", detail).with("parameter", name)
    }

    pub fn not_found(detail: impl Into<String>) -> Problem {
        Problem::new(404, "not-found", "Not found", detail)
    }

    pub fn method_not_allowed(method: &str, allowed: &[&str]) -> Problem {
        Problem::new(
            405,
            "method-not-allowed",
            "Method not allowed",
            format!(
                "{method} is not supported here; use {}",
                allowed.join(" or ")
            ),
        )
        .with("allow", allowed.join(", "))
    }

    pub fn payload_too_large(limit: u64) -> Problem {
        Problem::new(
            413,
            "payload-too-large",
            "Payload too large",
            format!("the request body is larger than the {limit}-byte limit"),
        )
    }

    pub fn internal(detail: impl Into<String>) -> Problem {
        Problem::new(500, "internal", "Internal error", detail)
    }

    pub fn unavailable(detail: impl Into<String>) -> Problem {
        Problem::new(503, "unavailable", "Service unavailable", detail)
    }

    pub fn gateway_timeout(detail: impl Into<String>) -> Problem {
        Problem::new(504, "timeout", "Timed out", detail)
    }

    /// Adds an extension member.
    pub fn with(mut self, key: &str, value: impl Into<serde_json::Value>) -> Problem {
        self.extensions.insert(key.to_string(), value.into());
        self
    }

    /// The header fields a problem response carries: its content type,
    /// `Cache-Control: no-store` (an error is never worth caching), and
    /// the fields its extensions call for: `Allow` for a 405 (RFC 9110
    /// requires it), `Retry-After` when it names a wait.
    pub fn header_fields(&self) -> Vec<(String, String)> {
        let mut fields = vec![
            ("content-type".to_string(), Self::CONTENT_TYPE.to_string()),
            ("cache-control".to_string(), "no-store".to_string()),
        ];
        if let Some(allow) = self.extensions.get("allow").and_then(|v| v.as_str()) {
            fields.push(("allow".to_string(), allow.to_string()));
        }
        if let Some(secs) = self.extensions.get("retry_after").and_then(|v| v.as_u64()) {
            fields.push(("retry-after".to_string(), secs.to_string()));
        }
        fields
    }

    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a problem always serialises")
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status, self.title, self.detail)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_405_names_the_allowed_methods_and_a_wait_is_a_retry_after() {
        let fields = Problem::method_not_allowed("PATCH", &["GET", "HEAD"]).header_fields();
        assert!(fields.contains(&("allow".into(), "GET, HEAD".into())));
        assert!(fields.contains(&("content-type".into(), Problem::CONTENT_TYPE.into())));
        let fields = Problem::unavailable("busy")
            .with("retry_after", 3)
            .header_fields();
        assert!(fields.contains(&("retry-after".into(), "3".into())));
        assert!(!fields.iter().any(|(n, _)| n == "allow"));
    }

    #[test]
    fn serialises_rfc9457_members_and_extensions() {
        let p = Problem::invalid_parameter("limit", "limit must be between 1 and 100");
        let v: serde_json::Value = serde_json::from_slice(&p.to_json()).unwrap();
        assert_eq!(v["type"], "/problems/invalid-parameter");
        assert_eq!(v["status"], 400);
        assert_eq!(v["parameter"], "limit");
        assert_eq!(v["detail"], "limit must be between 1 and 100");
    }
}
