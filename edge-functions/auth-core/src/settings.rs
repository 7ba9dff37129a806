//! What the operator configures, read from Spin variables.

use problem::Problem;

/// Token and session settings shared by the auth component and the
/// middleware; each has a default in `spin.toml`.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// `iss` of every token issued and accepted.
    pub issuer: String,
    /// `aud` of every token issued and accepted.
    pub audience: String,
    /// Lifetime of an access token. Retiring a key must wait this long
    /// (plus the leeway) after signing stops using it.
    pub access_ttl_secs: i64,
    /// Absolute lifetime of a session; refreshing never extends it.
    pub session_ttl_secs: i64,
    /// Clock skew tolerated when checking tokens (at most 60 s).
    pub leeway_secs: i64,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            issuer: "edgeshop".into(),
            audience: "edgeshop-api".into(),
            access_ttl_secs: 300,
            session_ttl_secs: 30 * 24 * 3600,
            leeway_secs: 30,
        }
    }
}

/// Variable names, as declared in `spin.toml`.
pub const ISSUER: &str = "token_issuer";
pub const AUDIENCE: &str = "token_audience";
pub const ACCESS_TTL: &str = "access_token_ttl_secs";
pub const SESSION_TTL: &str = "session_ttl_secs";
pub const LEEWAY: &str = "token_leeway_secs";
/// The verification key set, a JWKS of public keys.
pub const JWKS: &str = "token_jwks";
/// The signing key, `<kid>:<base64url seed>` (secret; the auth component
/// only).
pub const SIGNING_KEY: &str = "token_signing_key";

impl Settings {
    /// Reads the settings through `get`; a variable that is absent keeps
    /// its default, one that is present must be valid.
    pub fn from_variables(get: impl Fn(&str) -> Option<String>) -> Result<Settings, Problem> {
        let mut s = Settings::default();
        if let Some(v) = get(ISSUER) {
            s.issuer = v;
        }
        if let Some(v) = get(AUDIENCE) {
            s.audience = v;
        }
        let number = |name: &str, min: i64, max: i64, default: i64| -> Result<i64, Problem> {
            match get(name) {
                None => Ok(default),
                Some(v) => v
                    .trim()
                    .parse::<i64>()
                    .ok()
                    .filter(|n| (min..=max).contains(n))
                    .ok_or_else(|| {
                        Problem::internal(format!(
                            "the {name} variable must be a whole number from {min} to {max}; \
                             the operator must fix it"
                        ))
                    }),
            }
        };
        s.access_ttl_secs = number(ACCESS_TTL, 1, 3600, s.access_ttl_secs)?;
        s.session_ttl_secs = number(SESSION_TTL, 60, 365 * 24 * 3600, s.session_ttl_secs)?;
        s.leeway_secs = number(LEEWAY, 0, tokens::MAX_LEEWAY_SECS, s.leeway_secs)?;
        if s.issuer.is_empty() || s.audience.is_empty() {
            return Err(Problem::internal(
                "token_issuer and token_audience must not be empty; the operator must set them",
            ));
        }
        Ok(s)
    }

    pub fn policy(&self) -> tokens::Policy {
        tokens::Policy {
            issuer: self.issuer.clone(),
            audience: self.audience.clone(),
            leeway_secs: self.leeway_secs,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absent_variables_keep_defaults_and_bad_ones_are_refused() {
        assert_eq!(
            Settings::from_variables(|_| None).unwrap(),
            Settings::default()
        );
        let s = Settings::from_variables(|n| (n == ACCESS_TTL).then(|| "60".into())).unwrap();
        assert_eq!(s.access_ttl_secs, 60);
        for bad in ["0", "-5", "3601", "ten"] {
            let e = Settings::from_variables(|n| (n == ACCESS_TTL).then(|| bad.into()));
            assert_eq!(e.unwrap_err().status, 500, "{bad}");
        }
        let e = Settings::from_variables(|n| (n == LEEWAY).then(|| "61".into()));
        assert!(e.is_err(), "leeway is capped at 60 s");
    }
}
