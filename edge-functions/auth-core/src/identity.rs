//! The identity the middleware hands to the next component.
//!
//! The middleware removes every one of these fields a client sent and sets
//! them after verifying a token, so a component behind it can trust them;
//! nothing else on the path can set them. They are all the identity a
//! component reads ([`Identity::from_headers`]); a client's other
//! `edgeshop-auth-*` fields reach it but are read by nothing.

use tokens::Claims;

pub const ACCOUNT: &str = "edgeshop-auth-account";
pub const SESSION: &str = "edgeshop-auth-session";
pub const ROLES: &str = "edgeshop-auth-roles";
/// When the access token expires (Unix seconds).
pub const EXPIRES: &str = "edgeshop-auth-expires";

/// Every field only the middleware may set.
pub const NAMES: [&str; 4] = [ACCOUNT, SESSION, ROLES, EXPIRES];

/// A verified caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub account: i64,
    pub session: String,
    pub roles: Vec<String>,
    pub expires: i64,
}

impl Identity {
    /// The identity a verified token names; `None` if `sub` is not an
    /// account id (a token we did not issue, even if correctly signed).
    pub fn from_claims(claims: &Claims) -> Option<Identity> {
        let account = claims.sub.parse().ok().filter(|&id: &i64| id > 0)?;
        let roles_ok = claims
            .roles
            .iter()
            .all(|r| !r.is_empty() && r.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'));
        let session_ok = !claims.sid.is_empty()
            && claims
                .sid
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        (roles_ok && session_ok).then(|| Identity {
            account,
            session: claims.sid.clone(),
            roles: claims.roles.clone(),
            expires: claims.exp,
        })
    }

    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }

    /// The headers that carry this identity.
    pub fn headers(&self) -> [(&'static str, String); 4] {
        [
            (ACCOUNT, self.account.to_string()),
            (SESSION, self.session.clone()),
            (ROLES, self.roles.join(",")),
            (EXPIRES, self.expires.to_string()),
        ]
    }

    /// Reads the identity back from headers the middleware set.
    pub fn from_headers<'a>(get: impl Fn(&str) -> Option<&'a str>) -> Option<Identity> {
        Some(Identity {
            account: get(ACCOUNT)?.parse().ok()?,
            session: get(SESSION)?.to_string(),
            roles: get(ROLES)?
                .split(',')
                .filter(|r| !r.is_empty())
                .map(str::to_string)
                .collect(),
            expires: get(EXPIRES)?.parse().ok()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_round_trip_and_reserved_names_match_any_case() {
        let id = Identity {
            account: 7,
            session: "abc_DEF-123".into(),
            roles: vec!["vendor".into(), "admin".into()],
            expires: 1_800_000_000,
        };
        let headers = id.headers();
        let back = Identity::from_headers(|n| {
            headers
                .iter()
                .find(|(k, _)| *k == n)
                .map(|(_, v)| v.as_str())
        });
        assert_eq!(back, Some(id));
        // Whatever fields the identity is made of, the middleware strips.
        for (name, _) in headers {
            assert!(NAMES.contains(&name), "{name}");
        }
    }
}
