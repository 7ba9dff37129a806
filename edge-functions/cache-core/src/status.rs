//! The `Cache-Status` field (RFC 9211) this cache adds to every response.

/// The name this cache goes by in `Cache-Status`.
pub const CACHE_NAME: &str = "edgeshop";

/// Why the cache went forward to the next layer (the `fwd` parameter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forward {
    /// Not even looked up; `detail` says why (`method`, `authorization`,
    /// `no-store`, ...).
    Bypass(&'static str),
    /// Nothing stored for this URI.
    UriMiss,
    /// Something stored for this URI, but not for these `Vary` headers.
    VaryMiss,
    /// Stored, but not usable (stale, invalidated by a tag, `no-cache`).
    Miss,
    /// Stale: forwarded to get a new one.
    Stale,
}

/// How one response was produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// From the cache. `ttl` is negative when stale (served under
    /// `stale-while-revalidate` or `stale-if-error`, said in `detail`).
    Hit {
        ttl_secs: i64,
        detail: Option<&'static str>,
    },
    /// From the next layer.
    Forwarded {
        why: Forward,
        /// The next layer's status, when it answered.
        status: Option<u16>,
        /// Whether the answer was stored.
        stored: bool,
        /// Whether this request waited for another's fetch of the same key
        /// instead of going forward itself.
        collapsed: bool,
        ttl_secs: Option<i64>,
    },
}

impl Outcome {
    /// The field value, e.g. `edgeshop; hit; ttl=42` or
    /// `edgeshop; fwd=uri-miss; fwd-status=200; stored; ttl=60`.
    pub fn header_value(&self) -> String {
        let mut out = String::from(CACHE_NAME);
        match self {
            Outcome::Hit { ttl_secs, detail } => {
                out.push_str(&format!("; hit; ttl={ttl_secs}"));
                if let Some(d) = detail {
                    out.push_str(&format!("; detail={d}"));
                }
            }
            Outcome::Forwarded {
                why,
                status,
                stored,
                collapsed,
                ttl_secs,
            } => {
                let fwd = match why {
                    Forward::Bypass(_) => "bypass",
                    Forward::UriMiss => "uri-miss",
                    Forward::VaryMiss => "vary-miss",
                    Forward::Miss => "miss",
                    Forward::Stale => "stale",
                };
                out.push_str(&format!("; fwd={fwd}"));
                if let Some(s) = status {
                    out.push_str(&format!("; fwd-status={s}"));
                }
                if *stored {
                    out.push_str("; stored");
                }
                if *collapsed {
                    out.push_str("; collapsed");
                }
                if let Some(t) = ttl_secs {
                    out.push_str(&format!("; ttl={t}"));
                }
                if let Forward::Bypass(reason) = why {
                    out.push_str(&format!("; detail={reason}"));
                }
            }
        }
        out
    }
}

/// Whole seconds of a ttl in ms, rounded toward zero; negative when stale.
pub fn ttl_secs(fresh_ms: u64, stale_ms: u64) -> i64 {
    (fresh_ms / 1000) as i64 - (stale_ms / 1000) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_values_follow_rfc_9211() {
        assert_eq!(
            Outcome::Hit {
                ttl_secs: 42,
                detail: None
            }
            .header_value(),
            "edgeshop; hit; ttl=42"
        );
        assert_eq!(
            Outcome::Hit {
                ttl_secs: -3,
                detail: Some("stale-while-revalidate")
            }
            .header_value(),
            "edgeshop; hit; ttl=-3; detail=stale-while-revalidate"
        );
        assert_eq!(
            Outcome::Forwarded {
                why: Forward::UriMiss,
                status: Some(200),
                stored: true,
                collapsed: false,
                ttl_secs: Some(60),
            }
            .header_value(),
            "edgeshop; fwd=uri-miss; fwd-status=200; stored; ttl=60"
        );
        assert_eq!(
            Outcome::Forwarded {
                why: Forward::Miss,
                status: Some(200),
                stored: false,
                collapsed: true,
                ttl_secs: Some(59),
            }
            .header_value(),
            "edgeshop; fwd=miss; fwd-status=200; collapsed; ttl=59"
        );
        assert_eq!(
            Outcome::Forwarded {
                why: Forward::Bypass("authorization"),
                status: Some(200),
                stored: false,
                collapsed: false,
                ttl_secs: None,
            }
            .header_value(),
            "edgeshop; fwd=bypass; fwd-status=200; detail=authorization"
        );
        assert_eq!(ttl_secs(5_999, 0), 5);
        assert_eq!(ttl_secs(0, 3_500), -3);
    }
}
