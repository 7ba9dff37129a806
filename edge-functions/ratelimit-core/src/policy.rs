//! Named policies and the routes they guard (`cdn-config/ratelimit.toml`).

use crate::gcra::{Decision, Quota};
use serde::Deserialize;
use std::collections::BTreeMap;

/// The policies shipped with the app; built into the middleware.
pub const SHIPPED: &str = include_str!("../../../cdn-config/ratelimit.toml");

/// The variable that replaces [`SHIPPED`] for one deployment: the whole
/// text of a policies file. Unset or empty: the shipped policies.
pub const POLICIES_VARIABLE: &str = "ratelimit_policies";

/// The variable naming the proxies whose `X-Forwarded-For` is believed
/// (see [`crate::key::TrustedProxies`]). Unset or empty: none.
pub const TRUSTED_PROXIES_VARIABLE: &str = "ratelimit_trusted_proxies";

/// Whose budget a request spends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyKind {
    Client,
    /// A verified account, falling back to the client.
    Account,
    /// A request header (an API key), falling back to the client.
    Header(String),
}

/// Which admitted requests' answers carry the `RateLimit` and
/// `RateLimit-Policy` fields; a refusal always does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Advertise {
    /// Every answer.
    Always,
    /// Only answers with half the burst or less left: a client nearing
    /// the limit is told, and an ordinary one costs nothing to answer
    /// (adding fields means rebuilding the answer in the middleware).
    /// draft-ietf-httpapi-ratelimit-headers-11 § 6.2 allows sending the
    /// fields only close to exhaustion, and its § 7 tells clients not to
    /// expect them on every answer.
    NearLimit,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub name: String,
    pub quota: Quota,
    pub key: KeyKind,
    /// Admit (true) or refuse when the counter store fails.
    pub fail_open: bool,
    pub advertise: Advertise,
}

impl Policy {
    /// Whether the answer to a request decided as `decision` carries the
    /// `RateLimit` fields.
    pub fn advertises(&self, decision: &Decision) -> bool {
        match (self.advertise, decision) {
            (Advertise::Always, _) | (_, Decision::Denied { .. }) => true,
            (Advertise::NearLimit, Decision::Allowed { remaining, .. }) => {
                remaining.saturating_mul(2) <= self.quota.burst()
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyError {
    Parse(String),
    Invalid { what: String, why: String },
}

impl std::fmt::Display for PolicyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PolicyError::Parse(e) => write!(f, "rate limits: {e}"),
            PolicyError::Invalid { what, why } => write!(f, "rate limits: {what}: {why}"),
        }
    }
}

impl std::error::Error for PolicyError {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    policy: BTreeMap<String, RawPolicy>,
    #[serde(default)]
    route: Vec<RawRoute>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    quota: u64,
    window_secs: u64,
    burst: u64,
    key: String,
    on_store_error: String,
    #[serde(default)]
    advertise: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoute {
    path: String,
    policy: String,
}

/// Policies by route.
#[derive(Debug, Clone, Default)]
pub struct Limits {
    /// (path without a trailing `/...`, is a prefix, policy index)
    routes: Vec<(String, bool, usize)>,
    policies: Vec<Policy>,
}

fn invalid(what: impl Into<String>, why: impl Into<String>) -> PolicyError {
    PolicyError::Invalid {
        what: what.into(),
        why: why.into(),
    }
}

impl Limits {
    pub fn parse(text: &str) -> Result<Limits, PolicyError> {
        let file: File = toml::from_str(text).map_err(|e| PolicyError::Parse(e.to_string()))?;
        let mut limits = Limits::default();
        let mut index = BTreeMap::new();
        for (name, raw) in file.policy {
            let what = format!("policy {name:?}");
            // The name goes into a quoted structured-field string.
            if name.is_empty()
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return Err(invalid(what, "names use letters, digits, `-` and `_`"));
            }
            let quota = Quota::new(raw.quota, raw.window_secs, raw.burst)
                .map_err(|e| invalid(&what, e.to_string()))?;
            let key = match raw.key.as_str() {
                "client" => KeyKind::Client,
                "account" => KeyKind::Account,
                other => match other.strip_prefix("header:") {
                    Some(h)
                        if !h.is_empty()
                            && h.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') =>
                    {
                        KeyKind::Header(h.to_ascii_lowercase())
                    }
                    _ => {
                        return Err(invalid(
                            &what,
                            "key is `client`, `account` or `header:<name>`",
                        ));
                    }
                },
            };
            let fail_open = match raw.on_store_error.as_str() {
                "open" => true,
                "closed" => false,
                _ => return Err(invalid(&what, "on_store_error is `open` or `closed`")),
            };
            let advertise = match raw.advertise.as_deref() {
                None | Some("always") => Advertise::Always,
                Some("near-limit") => Advertise::NearLimit,
                Some(_) => return Err(invalid(&what, "advertise is `always` or `near-limit`")),
            };
            index.insert(name.clone(), limits.policies.len());
            limits.policies.push(Policy {
                name,
                quota,
                key,
                fail_open,
                advertise,
            });
        }
        for route in file.route {
            let what = format!("route {:?}", route.path);
            let &i = index
                .get(&route.policy)
                .ok_or_else(|| invalid(&what, format!("no policy named {:?}", route.policy)))?;
            let (path, prefix) = match route.path.strip_suffix("/...") {
                Some(p) => (p.to_string(), true),
                None => (route.path.clone(), false),
            };
            if !route.path.starts_with('/') || path.contains("...") {
                return Err(invalid(
                    what,
                    "a route is an absolute path, optionally ending in /...",
                ));
            }
            if limits
                .routes
                .iter()
                .any(|(p, x, _)| *p == path && *x == prefix)
            {
                return Err(invalid(what, "appears twice"));
            }
            limits.routes.push((path, prefix, i));
        }
        Ok(limits)
    }

    /// The policy for `path`: the longest matching route's.
    pub fn policy_for(&self, path: &str) -> Option<&Policy> {
        self.routes
            .iter()
            .filter(|(p, prefix, _)| {
                if *prefix {
                    path == p || (path.starts_with(p.as_str()) && path[p.len()..].starts_with('/'))
                } else {
                    path == p
                }
            })
            .max_by_key(|(p, prefix, _)| (p.len(), !*prefix))
            .map(|&(_, _, i)| &self.policies[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_policies_parse_and_route() {
        let l = Limits::parse(SHIPPED).unwrap();
        let name = |p: &str| l.policy_for(p).map(|p| p.name.as_str());
        assert_eq!(name("/api/v1/products/1"), Some("browse"));
        assert_eq!(name("/"), Some("browse"));
        assert_eq!(name("/api/v1/auth/login"), Some("sign-in"));
        assert_eq!(name("/api/v1/auth/me"), Some("browse"));
        assert_eq!(name("/api/v1/checkout/orders"), Some("checkout"));
        assert_eq!(name("/api/v1/vendor/uploads/abc"), Some("uploads"));
        assert_eq!(name("/api/v1/vendor/products/7"), Some("vendor"));
        let sign_in = l.policy_for("/api/v1/auth/signup").unwrap();
        assert!(!sign_in.fail_open);
        assert_eq!(sign_in.key, KeyKind::Client);
        assert!(l.policy_for("/api/v1/products").unwrap().fail_open);
        // Browsing tells a client of its budget near the limit; the
        // budgets API clients plan around are on every answer.
        assert_eq!(l.policy_for("/").unwrap().advertise, Advertise::NearLimit);
        for path in ["/api/v1/auth/login", "/api/v1/checkout/orders", "/sell/x"] {
            assert_eq!(l.policy_for(path).unwrap().advertise, Advertise::Always);
        }
    }

    #[test]
    fn near_the_limit_means_half_the_burst_or_less_left() {
        let file = |advertise: &str| {
            format!(
                "[policy.p]\nquota = 60\nwindow_secs = 60\nburst = 10\nkey = \"client\"\n\
                 on_store_error = \"open\"\n{advertise}[[route]]\npath = \"/...\"\npolicy = \"p\"\n"
            )
        };
        let admitted = |remaining| Decision::Allowed {
            tat: 0,
            remaining,
            reset_secs: 1,
        };
        let refused = Decision::Denied {
            retry_after_secs: 1,
            reset_secs: 10,
        };
        let near = Limits::parse(&file("advertise = \"near-limit\"\n")).unwrap();
        let near = near.policy_for("/").unwrap();
        assert!(!near.advertises(&admitted(9)));
        assert!(!near.advertises(&admitted(6)));
        assert!(near.advertises(&admitted(5)));
        assert!(near.advertises(&admitted(0)));
        assert!(near.advertises(&refused));
        // Unsaid is `always`, as before the choice existed.
        let always = Limits::parse(&file("")).unwrap();
        let always = always.policy_for("/").unwrap();
        assert_eq!(always.advertise, Advertise::Always);
        assert!(always.advertises(&admitted(9)) && always.advertises(&refused));
    }

    #[test]
    fn bad_files_say_what_is_wrong() {
        let policy = "[policy.p]\nquota = 1\nwindow_secs = 1\nburst = 1\nkey = \"client\"\non_store_error = \"open\"\n";
        for (bad, says) in [
            (
                format!("{policy}[[route]]\npath = \"/x\"\npolicy = \"q\"\n"),
                "no policy named",
            ),
            (policy.replace("\"client\"", "\"ip\""), "key is"),
            (policy.replace("\"open\"", "\"maybe\""), "on_store_error"),
            (format!("{policy}advertise = \"never\"\n"), "advertise is"),
            (policy.replace("quota = 1", "quota = 0"), "at least 1"),
            (
                policy.replace("[policy.p]", "[policy.\"a b\"]"),
                "names use",
            ),
            (
                format!("{policy}[[route]]\npath = \"x\"\npolicy = \"p\"\n"),
                "absolute path",
            ),
            (format!("{policy}burst_extra = 1\n"), "unknown field"),
        ] {
            let e = Limits::parse(&bad).unwrap_err().to_string();
            assert!(e.contains(says), "{bad}\n=> {e}");
        }
    }
}
