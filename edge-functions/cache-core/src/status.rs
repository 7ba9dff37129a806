//! The `Cache-Status` field (RFC 9211) this cache adds to every response.

/// The name this cache goes by in `Cache-Status`.
pub const CACHE_NAME: &str = "edgeshop";

/// Why the cache went forward to the next layer (the `fwd` parameter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forward {
    /// Not even looked up, or not usable for this request; the outcome's
    /// `detail` says why (`method`, `authorization`, ...).
    Bypass,
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
        /// Why it bypassed, or how a stale copy came to be served.
        detail: Option<&'static str>,
    },
    /// Answered by the cache itself without a representation (406 when
    /// the client refuses every coding the stored response comes in).
    Refused { detail: &'static str },
}

impl Outcome {
    /// Went forward for `why`, nothing more known yet.
    pub fn forwarded(why: Forward) -> Outcome {
        Outcome::Forwarded {
            why,
            status: None,
            stored: false,
            collapsed: false,
            ttl_secs: None,
            detail: None,
        }
    }

    /// Went past the cache; `detail` says why.
    pub fn bypass(detail: &'static str) -> Outcome {
        let mut outcome = Outcome::forwarded(Forward::Bypass);
        if let Outcome::Forwarded { detail: d, .. } = &mut outcome {
            *d = Some(detail);
        }
        outcome
    }

    /// The next layer's status, unless one is already set.
    pub fn with_fwd_status(mut self, fwd_status: Option<u16>) -> Outcome {
        if let Outcome::Forwarded { status, .. } = &mut self
            && status.is_none()
        {
            *status = fwd_status;
        }
        self
    }

    /// The field value, e.g. `edgeshop; hit; ttl=42` or
    /// `edgeshop; fwd=uri-miss; fwd-status=200; stored; ttl=60`.
    pub fn header_value(&self) -> String {
        let mut out = String::from(CACHE_NAME);
        match self {
            Outcome::Refused { detail } => out.push_str(&format!("; detail={detail}")),
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
                detail,
            } => {
                let fwd = match why {
                    Forward::Bypass => "bypass",
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
                if let Some(d) = detail {
                    out.push_str(&format!("; detail={d}"));
                }
            }
        }
        out
    }
}

/// What a `Cache-Status` field says this cache did, as an observer (the
/// host's metrics) reads it back from a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Observed {
    /// Served fresh from the cache.
    Hit,
    /// Served from the cache past its freshness (`stale-while-revalidate`,
    /// `stale-if-error`).
    Stale,
    /// Looked up and not usable: went to the next layer.
    Miss,
    /// Not looked up (method, credentials, `no-store`...).
    Bypass,
    /// Answered by the cache without a representation.
    Refused,
}

impl Observed {
    /// Reads this cache's member of a `Cache-Status` field; `None` when
    /// the field has none (the response did not pass through the cache).
    /// The second value is whether the request waited on another's fetch.
    pub fn from_field(field: &str) -> Option<(Observed, bool)> {
        let member = field
            .split(',')
            .map(str::trim)
            .find(|m| m.split(';').next().map(str::trim) == Some(CACHE_NAME))?;
        let mut hit = false;
        let mut fwd = None;
        let mut ttl: Option<i64> = None;
        let mut collapsed = false;
        for param in member.split(';').skip(1).map(str::trim) {
            let (key, value) = param.split_once('=').unwrap_or((param, ""));
            match key {
                "hit" => hit = true,
                "fwd" => fwd = Some(value),
                "ttl" => ttl = value.parse().ok(),
                "collapsed" => collapsed = true,
                _ => {}
            }
        }
        let observed = match (hit, fwd) {
            (true, _) if ttl.is_some_and(|t| t < 0) => Observed::Stale,
            (true, _) => Observed::Hit,
            (false, Some("bypass")) => Observed::Bypass,
            (false, Some(_)) => Observed::Miss,
            (false, None) => Observed::Refused,
        };
        Some((observed, collapsed))
    }

    /// The label `/metrics` reports it under.
    pub fn as_str(self) -> &'static str {
        match self {
            Observed::Hit => "hit",
            Observed::Stale => "stale",
            Observed::Miss => "miss",
            Observed::Bypass => "bypass",
            Observed::Refused => "refused",
        }
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
    fn an_observer_reads_back_what_the_cache_did() {
        let read = |o: Outcome| Observed::from_field(&o.header_value());
        assert_eq!(
            read(Outcome::Hit {
                ttl_secs: 42,
                detail: None
            }),
            Some((Observed::Hit, false))
        );
        assert_eq!(
            read(Outcome::Hit {
                ttl_secs: -3,
                detail: Some("stale-if-error")
            }),
            Some((Observed::Stale, false))
        );
        let mut collapsed = Outcome::forwarded(Forward::Miss);
        if let Outcome::Forwarded { collapsed: c, .. } = &mut collapsed {
            *c = true;
        }
        assert_eq!(read(collapsed), Some((Observed::Miss, true)));
        assert_eq!(
            read(Outcome::forwarded(Forward::Stale)),
            Some((Observed::Miss, false))
        );
        assert_eq!(
            read(Outcome::bypass("method")),
            Some((Observed::Bypass, false))
        );
        assert_eq!(
            read(Outcome::Refused {
                detail: "not-acceptable"
            }),
            Some((Observed::Refused, false))
        );
        // Another cache's member is not ours; ours after it is found.
        assert_eq!(Observed::from_field("cdn; hit"), None);
        assert_eq!(
            Observed::from_field("cdn; fwd=miss, edgeshop; hit; ttl=5"),
            Some((Observed::Hit, false))
        );
    }

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
                detail: None,
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
                detail: None,
            }
            .header_value(),
            "edgeshop; fwd=miss; fwd-status=200; collapsed; ttl=59"
        );
        assert_eq!(
            Outcome::Forwarded {
                why: Forward::Bypass,
                status: Some(200),
                stored: false,
                collapsed: false,
                ttl_secs: None,
                detail: Some("authorization"),
            }
            .header_value(),
            "edgeshop; fwd=bypass; fwd-status=200; detail=authorization"
        );
        assert_eq!(
            Outcome::Refused {
                detail: "not-acceptable"
            }
            .header_value(),
            "edgeshop; detail=not-acceptable"
        );
        assert_eq!(ttl_secs(5_999, 0), 5);
        assert_eq!(ttl_secs(0, 3_500), -3);
    }
}
