//! CORS for a browser that uploads to a signed URL from the storefront's
//! origin, and reads media from it: the answers S3's bucket CORS rules
//! give, for one rule (these origins; `GET`, `HEAD`, `PUT`; the
//! `Content-Type` header; `ETag` readable).

/// Methods a browser may use across origins.
const METHODS: &[&str] = &["GET", "HEAD", "PUT"];
/// Request headers a browser may send across origins (besides the
/// CORS-safelisted ones). `Content-Type` is signed into upload URLs.
const HEADERS: &[&str] = &["content-type"];
/// How long a browser may keep a preflight's answer.
const MAX_AGE_SECS: u32 = 3600;

/// The origins allowed; `*` allows any.
#[derive(Debug, Clone, Default)]
pub struct Cors {
    origins: Vec<String>,
}

impl Cors {
    pub fn new(origins: impl IntoIterator<Item = String>) -> Cors {
        Cors {
            origins: origins
                .into_iter()
                .map(|o| o.trim_end_matches('/').to_ascii_lowercase())
                .collect(),
        }
    }

    fn allows(&self, origin: &str) -> bool {
        let origin = origin.to_ascii_lowercase();
        self.origins.iter().any(|o| {
            let any_port = o.strip_suffix(":*").is_some_and(|host| {
                origin
                    .strip_prefix(host)
                    .and_then(|rest| rest.strip_prefix(':'))
                    .is_some_and(|port| {
                        !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit())
                    })
            });
            o == "*" || *o == origin || any_port
        })
    }

    /// The answer to a preflight (`OPTIONS` with `Origin` and
    /// `Access-Control-Request-Method`): its headers when the rule allows
    /// it, `None` (answer 403) when not.
    pub fn preflight(
        &self,
        origin: &str,
        method: &str,
        request_headers: Option<&str>,
    ) -> Option<Vec<(&'static str, String)>> {
        let headers_ok = request_headers
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|h| !h.is_empty())
            .all(|h| HEADERS.iter().any(|a| a.eq_ignore_ascii_case(h)));
        if !self.allows(origin) || !METHODS.contains(&method) || !headers_ok {
            return None;
        }
        Some(vec![
            ("access-control-allow-origin", origin.to_string()),
            ("access-control-allow-methods", METHODS.join(", ")),
            ("access-control-allow-headers", HEADERS.join(", ")),
            ("access-control-max-age", MAX_AGE_SECS.to_string()),
            ("vary", "Origin".to_string()),
        ])
    }

    /// Headers added to an actual request's answer from `origin`.
    pub fn actual(&self, origin: Option<&str>) -> Vec<(&'static str, String)> {
        match origin {
            Some(o) if self.allows(o) => vec![
                ("access-control-allow-origin", o.to_string()),
                ("access-control-expose-headers", "ETag".to_string()),
                ("vary", "Origin".to_string()),
            ],
            _ => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_storefront_may_put_with_its_content_type_and_others_may_not() {
        let cors = Cors::new(["http://127.0.0.1:8000/".to_string()]);
        let ok = cors
            .preflight("http://127.0.0.1:8000", "PUT", Some("Content-Type"))
            .unwrap();
        assert!(ok.contains(&(
            "access-control-allow-origin",
            "http://127.0.0.1:8000".into()
        )));
        assert!(
            cors.preflight("https://evil.example", "PUT", None)
                .is_none()
        );
        assert!(
            cors.preflight("http://127.0.0.1:8000", "DELETE", None)
                .is_none()
        );
        assert!(
            cors.preflight(
                "http://127.0.0.1:8000",
                "PUT",
                Some("content-type, x-amz-acl")
            )
            .is_none()
        );
        assert!(cors.actual(Some("https://evil.example")).is_empty());
        assert_eq!(cors.actual(Some("http://127.0.0.1:8000")).len(), 3);
        let local = Cors::new(["http://127.0.0.1:*".to_string()]);
        assert!(
            local
                .preflight("http://127.0.0.1:41234", "PUT", None)
                .is_some()
        );
        for other in [
            "http://127.0.0.1",
            "http://127.0.0.1:1x",
            "http://127.0.0.10:80",
        ] {
            assert!(local.preflight(other, "PUT", None).is_none(), "{other}");
        }
        let any = Cors::new(["*".to_string()]);
        assert!(any.preflight("https://shop.example", "GET", None).is_some());
    }
}
