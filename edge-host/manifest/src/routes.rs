//! Spin's HTTP route syntax and precedence.
//!
//! `/cart` matches exactly; `/products/:id` matches one segment and names
//! it; a trailing `/...` matches any rest (including none). When several
//! routes match, the one with more literal segments wins, then an exact
//! route over a wildcard, then the one with fewer parameters.

use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Param(String),
}

/// A compiled route pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutePattern {
    raw: String,
    segments: Vec<Segment>,
    wildcard: bool,
}

impl RoutePattern {
    pub fn parse(raw: &str) -> Result<RoutePattern, String> {
        if !raw.starts_with('/') {
            return Err(format!("route {raw:?} must start with '/'"));
        }
        let (body, wildcard) = match raw.strip_suffix("/...") {
            Some(prefix) => (prefix, true),
            None => (raw, false),
        };
        let mut segments = Vec::new();
        for seg in body.split('/').skip(1).filter(|s| !s.is_empty()) {
            if seg == "..." || seg.contains('*') {
                return Err(format!(
                    "route {raw:?}: `...` may only end a route, as `/...`"
                ));
            }
            match seg.strip_prefix(':') {
                Some(name) if is_param_name(name) => {
                    if segments.contains(&Segment::Param(name.to_string())) {
                        return Err(format!("route {raw:?} names parameter :{name} twice"));
                    }
                    segments.push(Segment::Param(name.to_string()));
                }
                Some(name) => {
                    return Err(format!(
                        "route {raw:?}: parameter name {name:?} must be letters, digits, '_' or '-'"
                    ));
                }
                None => segments.push(Segment::Literal(seg.to_string())),
            }
        }
        if raw.starts_with("/.well-known/spin/") || raw == "/.well-known/spin/..." {
            return Err(format!(
                "route {raw:?} is under /.well-known/spin/, which Spin reserves"
            ));
        }
        Ok(RoutePattern {
            raw: raw.to_string(),
            segments,
            wildcard,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// The route without its trailing `/...` (Spin's `spin-component-route`).
    pub fn component_route(&self) -> &str {
        self.raw.strip_suffix("/...").unwrap_or(&self.raw)
    }

    /// The pattern with parameter names erased: `/a/:x` and `/a/:y` match
    /// the same paths, so they are the same route.
    fn shape(&self) -> (Vec<Option<&str>>, bool) {
        let segs = self
            .segments
            .iter()
            .map(|s| match s {
                Segment::Literal(l) => Some(l.as_str()),
                Segment::Param(_) => None,
            })
            .collect();
        (segs, self.wildcard)
    }

    /// Precedence key: larger wins.
    fn rank(&self) -> (usize, bool, std::cmp::Reverse<usize>) {
        let literals = self
            .segments
            .iter()
            .filter(|s| matches!(s, Segment::Literal(_)))
            .count();
        let params = self.segments.len() - literals;
        (literals, !self.wildcard, std::cmp::Reverse(params))
    }

    fn matches(&self, path: &str) -> Option<(BTreeMap<String, String>, String)> {
        let parts: Vec<&str> = path.split('/').skip(1).collect();
        // A trailing slash is not a segment: `/cart/` is `/cart`.
        let parts: Vec<&str> = match parts.split_last() {
            Some((&"", rest)) => rest.to_vec(),
            _ => parts,
        };
        if parts.len() < self.segments.len()
            || (!self.wildcard && parts.len() != self.segments.len())
        {
            return None;
        }
        let mut params = BTreeMap::new();
        for (seg, part) in self.segments.iter().zip(&parts) {
            match seg {
                Segment::Literal(l) if l == part => {}
                Segment::Param(name) if !part.is_empty() => {
                    params.insert(name.clone(), (*part).to_string());
                }
                _ => return None,
            }
        }
        let rest = &parts[self.segments.len()..];
        let path_info = if self.wildcard && !rest.is_empty() {
            format!("/{}", rest.join("/"))
        } else {
            String::new()
        };
        Some((params, path_info))
    }
}

fn is_param_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// The outcome of routing one path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteMatch<'a, T> {
    pub target: &'a T,
    pub pattern: &'a RoutePattern,
    pub params: BTreeMap<String, String>,
    /// The path below a wildcard route's prefix (Spin's `spin-path-info`).
    pub path_info: String,
}

/// A route table, in precedence order.
#[derive(Debug, Clone)]
pub struct Router<T> {
    routes: Vec<(RoutePattern, T)>,
}

impl<T> Router<T> {
    /// Builds the table; two routes with the same pattern are an error.
    pub fn new(routes: Vec<(RoutePattern, T)>) -> Result<Router<T>, String> {
        for (i, (a, _)) in routes.iter().enumerate() {
            if routes[..i].iter().any(|(b, _)| b.shape() == a.shape()) {
                return Err(format!("route {:?} is declared twice", a.raw));
            }
        }
        let mut routes = routes;
        // Stable: among equals, declaration order decides.
        routes.sort_by_key(|(p, _)| std::cmp::Reverse(p.rank()));
        Ok(Router { routes })
    }

    pub fn route(&self, path: &str) -> Option<RouteMatch<'_, T>> {
        self.routes.iter().find_map(|(pattern, target)| {
            pattern.matches(path).map(|(params, path_info)| RouteMatch {
                target,
                pattern,
                params,
                path_info,
            })
        })
    }

    pub fn iter(&self) -> impl Iterator<Item = (&RoutePattern, &T)> {
        self.routes.iter().map(|(p, t)| (p, t))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router(patterns: &[&str]) -> Router<String> {
        Router::new(
            patterns
                .iter()
                .map(|p| (RoutePattern::parse(p).unwrap(), (*p).to_string()))
                .collect(),
        )
        .unwrap()
    }

    fn hit(r: &Router<String>, path: &str) -> Option<String> {
        r.route(path).map(|m| m.target.clone())
    }

    #[test]
    fn exact_param_and_wildcard() {
        let r = router(&["/cart", "/products/:id", "/api/...", "/..."]);
        assert_eq!(hit(&r, "/cart").as_deref(), Some("/cart"));
        assert_eq!(hit(&r, "/cart/").as_deref(), Some("/cart"));
        assert_eq!(hit(&r, "/cart/x").as_deref(), Some("/..."));
        assert_eq!(hit(&r, "/products/42").as_deref(), Some("/products/:id"));
        assert_eq!(hit(&r, "/products/42/x").as_deref(), Some("/..."));
        assert_eq!(hit(&r, "/api").as_deref(), Some("/api/..."));
        assert_eq!(hit(&r, "/api/v1/x").as_deref(), Some("/api/..."));
        assert_eq!(hit(&r, "/apix").as_deref(), Some("/..."));
        let m = r.route("/products/42").unwrap();
        assert_eq!(m.params.get("id").map(String::as_str), Some("42"));
        let m = r.route("/api/v1/x").unwrap();
        assert_eq!(m.path_info, "/v1/x");
        assert_eq!(m.pattern.component_route(), "/api");
    }

    #[test]
    fn longest_prefix_wins_regardless_of_order() {
        let r = router(&["/api/...", "/api/v1/auth/...", "/api/v1/..."]);
        assert_eq!(
            hit(&r, "/api/v1/auth/login").as_deref(),
            Some("/api/v1/auth/...")
        );
        assert_eq!(hit(&r, "/api/v1/products").as_deref(), Some("/api/v1/..."));
        assert_eq!(hit(&r, "/api/v2").as_deref(), Some("/api/..."));
    }

    #[test]
    fn literal_beats_param() {
        let r = router(&["/products/:id", "/products/search"]);
        assert_eq!(
            hit(&r, "/products/search").as_deref(),
            Some("/products/search")
        );
        assert_eq!(hit(&r, "/products/7").as_deref(), Some("/products/:id"));
        assert_eq!(hit(&r, "/products"), None);
    }

    #[test]
    fn bad_patterns_are_refused() {
        assert!(RoutePattern::parse("api").is_err());
        assert!(RoutePattern::parse("/a/.../b").is_err());
        assert!(RoutePattern::parse("/a/:").is_err());
        assert!(RoutePattern::parse("/a/:x/:x").is_err());
        assert!(RoutePattern::parse("/.well-known/spin/health").is_err());
        assert!(
            Router::new(vec![
                (RoutePattern::parse("/a/:x").unwrap(), 1),
                (RoutePattern::parse("/a/:y").unwrap(), 2)
            ])
            .is_err()
        );
    }
}
