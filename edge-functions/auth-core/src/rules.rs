//! Which routes need a signed-in caller or a role (`cdn-config/auth.toml`).
//!
//! Patterns follow `spin.toml` routes: an exact path, or a prefix ending in
//! `/...`. The longest matching pattern wins; a path no rule names is open
//! to anyone. Paths are matched as sent, so the gate first refuses paths
//! that a component might read differently (`//`, dot segments, encoded
//! slashes or dots): otherwise `/api/v1//vendor/x` could slip past a rule
//! for `/api/v1/vendor/...`.

use serde::Deserialize;

/// The rules shipped with the app; built into the middleware.
pub const SHIPPED: &str = include_str!("../../../cdn-config/auth.toml");

/// What a route asks of the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requirement {
    Anyone,
    SignedIn,
    /// Any one of these roles.
    Role(Vec<String>),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RulesError {
    #[error("auth rules: {0}")]
    Parse(String),
    #[error(
        "auth rules: {0:?} is not a route pattern (an absolute path, optionally ending in /...)"
    )]
    BadPattern(String),
    #[error("auth rules: {0:?} appears twice")]
    Duplicate(String),
    #[error("auth rules: {0:?}: session is \"cookie\" or absent")]
    BadSession(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    route: Vec<RawRule>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    path: String,
    require: Vec<String>,
    /// `"cookie"`: pages here also take the browser session's access
    /// cookie (`crate::web`) when no `Authorization` is sent.
    #[serde(default)]
    session: Option<String>,
}

#[derive(Debug, Clone)]
struct Rule {
    /// Without the trailing `/...` for prefixes.
    path: String,
    prefix: bool,
    need: Requirement,
    cookie: bool,
}

#[derive(Debug, Clone, Default)]
pub struct Rules {
    rules: Vec<Rule>,
}

impl Rules {
    pub fn parse(text: &str) -> Result<Rules, RulesError> {
        let file: File = toml::from_str(text).map_err(|e| RulesError::Parse(e.to_string()))?;
        let mut rules: Vec<Rule> = Vec::new();
        for raw in file.route {
            let (path, prefix) = match raw.path.strip_suffix("/...") {
                Some(p) => (p.to_string(), true),
                None => (raw.path.clone(), false),
            };
            let normal = (prefix && path.is_empty()) || is_normal_path(&path);
            if !raw.path.starts_with('/') || !normal || path.contains("...") {
                return Err(RulesError::BadPattern(raw.path));
            }
            if rules.iter().any(|r| r.path == path && r.prefix == prefix) {
                return Err(RulesError::Duplicate(raw.path));
            }
            let need = if raw.require.is_empty() {
                Requirement::SignedIn
            } else {
                Requirement::Role(raw.require)
            };
            let cookie = match raw.session.as_deref() {
                None => false,
                Some("cookie") => true,
                Some(_) => return Err(RulesError::BadSession(raw.path)),
            };
            rules.push(Rule {
                path,
                prefix,
                need,
                cookie,
            });
        }
        Ok(Rules { rules })
    }

    /// What `path` requires: the longest matching rule's requirement.
    pub fn requirement(&self, path: &str) -> &Requirement {
        const ANYONE: &Requirement = &Requirement::Anyone;
        self.matching(path).map_or(ANYONE, |r| &r.need)
    }

    /// Whether pages at `path` take the browser session cookie.
    pub fn takes_session_cookie(&self, path: &str) -> bool {
        self.matching(path).is_some_and(|r| r.cookie)
    }

    fn matching(&self, path: &str) -> Option<&Rule> {
        self.rules
            .iter()
            .filter(|r| {
                if r.prefix {
                    path == r.path
                        || (path.starts_with(&r.path) && path[r.path.len()..].starts_with('/'))
                } else {
                    path == r.path
                }
            })
            // An exact rule beats a prefix rule of the same length.
            .max_by_key(|r| (r.path.len(), !r.prefix))
    }
}

/// True when `path` has one spelling: no empty, `.` or `..` segments, and
/// no percent-encoded `/`, `\`, or `.`, nor a raw backslash.
pub fn is_normal_path(path: &str) -> bool {
    if !path.starts_with('/') || path.contains('\\') {
        return false;
    }
    let lower = path.to_ascii_lowercase();
    if lower.contains("%2f") || lower.contains("%5c") || lower.contains("%2e") {
        return false;
    }
    // Only the last segment may be empty (a trailing slash).
    let segments: Vec<&str> = path[1..].split('/').collect();
    let last = segments.len() - 1;
    segments.iter().enumerate().all(|(i, s)| match *s {
        "" => i == last,
        "." | ".." => false,
        _ => true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> Rules {
        Rules::parse(
            r#"
            [[route]]
            path = "/api/v1/vendor/..."
            require = ["vendor"]
            [[route]]
            path = "/api/v1/vendor/public"
            require = []
            [[route]]
            path = "/api/v1/auth/me"
            require = []
            "#,
        )
        .unwrap()
    }

    #[test]
    fn longest_match_wins_and_unlisted_paths_are_open() {
        let r = rules();
        let vendor = Requirement::Role(vec!["vendor".into()]);
        assert_eq!(r.requirement("/api/v1/vendor/products"), &vendor);
        assert_eq!(r.requirement("/api/v1/vendor"), &vendor);
        assert_eq!(r.requirement("/api/v1/vendor/products/7/media"), &vendor);
        assert_eq!(
            r.requirement("/api/v1/vendor/public"),
            &Requirement::SignedIn
        );
        assert_eq!(r.requirement("/api/v1/vendors/3"), &Requirement::Anyone);
        assert_eq!(r.requirement("/api/v1/auth/me"), &Requirement::SignedIn);
        assert_eq!(r.requirement("/api/v1/auth/me/x"), &Requirement::Anyone);
        assert_eq!(r.requirement("/api/v1/products"), &Requirement::Anyone);
    }

    #[test]
    fn paths_with_two_spellings_are_not_normal() {
        for ok in ["/", "/api/v1/vendor/x", "/api/v1/products/", "/a%20b"] {
            assert!(is_normal_path(ok), "{ok}");
        }
        for bad in [
            "",
            "api",
            "//api/v1/vendor/x",
            "/api/v1//vendor/x",
            "/api/v1/./vendor/x",
            "/api/v1/x/../vendor/y",
            "/api/v1/%2e%2e/vendor",
            "/api/v1%2Fvendor/x",
            "/api/v1/vendor%5cx",
            "/api\\v1",
        ] {
            assert!(!is_normal_path(bad), "{bad}");
        }
    }

    #[test]
    fn the_shipped_rules_parse_and_guard_vendor_routes() {
        let r = Rules::parse(SHIPPED).unwrap();
        assert_eq!(
            r.requirement("/api/v1/vendor/products"),
            &Requirement::Role(vec!["vendor".into()])
        );
        assert_eq!(r.requirement("/api/v1/auth/me"), &Requirement::SignedIn);
        assert_eq!(r.requirement("/api/v1/auth/logout"), &Requirement::SignedIn);
        assert_eq!(r.requirement("/api/v1/auth/login"), &Requirement::Anyone);
        assert_eq!(r.requirement("/api/v1/products/1"), &Requirement::Anyone);
        // Shop pages take the session cookie; the API never does.
        for page in ["/checkout", "/orders", "/orders/ord_1"] {
            assert!(r.takes_session_cookie(page), "{page}");
            assert_eq!(
                r.requirement(page),
                &Requirement::Role(vec!["shopper".into()])
            );
        }
        for api in [
            "/api/v1/checkout",
            "/api/v1/orders",
            "/api/v1/auth/me",
            "/",
            "/account",
        ] {
            assert!(!r.takes_session_cookie(api), "{api}");
        }
    }

    #[test]
    fn bad_rule_files_are_refused() {
        for bad in [
            "[[route]]\npath = \"api\"\nrequire = []",
            "[[route]]\npath = \"/a//b\"\nrequire = []",
            "[[route]]\npath = \"/a\"\nrequire = []\n[[route]]\npath = \"/a\"\nrequire = [\"x\"]",
            "[[route]]\npath = \"/a\"",
            "[[route]]\npath = \"/a\"\nrequire = []\nmethods = [\"GET\"]",
        ] {
            assert!(Rules::parse(bad).is_err(), "{bad}");
        }
    }
}
