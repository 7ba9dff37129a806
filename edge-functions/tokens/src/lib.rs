//! Access tokens: JWTs signed with Ed25519, verified at every PoP with no
//! round trip. Pure: keys, claims and the clock come from the caller.
//!
//! Verification follows RFC 8725: the algorithm is pinned per key (the
//! header's `alg` must equal the key's, so `none` or an HMAC header never
//! selects a verifier), `kid` is looked up only in the configured set,
//! `typ` must be `at+jwt` (RFC 9068), and `iss`, `aud`, `exp`, `nbf` and
//! `iat` are checked with a bounded leeway. The algorithm is named
//! `Ed25519` (RFC 9864), not the deprecated `EdDSA`.

mod keys;

pub use keys::{KeyError, KeySet, Signer};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;

/// The only algorithm this crate signs or verifies with.
pub const ALGORITHM: &str = "Ed25519";
/// The token type of an access token (RFC 9068).
pub const TYPE: &str = "at+jwt";
/// Longest token accepted; anything longer is refused before decoding.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;
/// The most clock leeway a policy may allow.
pub const MAX_LEEWAY_SECS: i64 = 60;

/// What an access token says.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Claims {
    pub iss: String,
    pub aud: String,
    /// The account id.
    pub sub: String,
    pub iat: i64,
    pub exp: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    pub jti: String,
    /// The session the token belongs to (revocation is per session).
    pub sid: String,
    #[serde(default)]
    pub roles: Vec<String>,
}

/// What a verifier accepts.
#[derive(Debug, Clone)]
pub struct Policy {
    pub issuer: String,
    pub audience: String,
    /// Clock skew tolerated on `exp`, `nbf` and `iat`; at most
    /// [`MAX_LEEWAY_SECS`].
    pub leeway_secs: i64,
}

/// Why a token was refused. The messages are safe to show to the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    #[error("the token is not a well-formed JWT")]
    Malformed,
    #[error("the token is longer than {MAX_TOKEN_BYTES} bytes")]
    TooLong,
    #[error("the token's key id is not one of ours")]
    UnknownKey,
    #[error("the token's algorithm is not the one its key is for")]
    WrongAlgorithm,
    #[error("the token is not an access token (typ must be at+jwt)")]
    WrongType,
    #[error("the token uses a critical header extension this verifier does not know")]
    UnknownCritical,
    #[error("the token's signature does not verify")]
    BadSignature,
    #[error("the token was issued by someone else")]
    WrongIssuer,
    #[error("the token is meant for another audience")]
    WrongAudience,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
    #[error("the token was issued in the future")]
    IssuedInFuture,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    typ: Option<String>,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    crit: Option<serde_json::Value>,
}

/// Signs `claims` into a compact JWT.
pub fn sign(signer: &Signer, claims: &Claims) -> String {
    let header = Header {
        alg: ALGORITHM.to_string(),
        typ: Some(TYPE.to_string()),
        kid: Some(signer.kid().to_string()),
        crit: None,
    };
    let mut header = serde_json::to_value(&header).expect("header serialises");
    header.as_object_mut().expect("object").remove("crit");
    compact(signer, &header, claims)
}

/// Signs any JSON claims into a compact JWT of type `JWT`: the bearer
/// tokens of a libSQL server (sqld's `--auth-jwt-key-file` checks them
/// with [`Signer::public_key`]). Such servers know the key by the
/// older name of its algorithm, `EdDSA` (RFC 8037), not `Ed25519`.
pub fn sign_jwt(signer: &Signer, claims: &serde_json::Value) -> String {
    let header = serde_json::json!({ "alg": "EdDSA", "typ": "JWT", "kid": signer.kid() });
    compact(signer, &header, claims)
}

/// `header.claims.signature`, each part base64url without padding.
fn compact(signer: &Signer, header: &serde_json::Value, claims: &impl serde::Serialize) -> String {
    let input = format!(
        "{}.{}",
        B64.encode(serde_json::to_vec(header).expect("json")),
        B64.encode(serde_json::to_vec(claims).expect("json"))
    );
    let signature = signer.sign(input.as_bytes());
    format!("{input}.{}", B64.encode(signature))
}

/// Verifies a compact JWT against the key set and policy at time `now`
/// (Unix seconds) and returns its claims.
pub fn verify(token: &str, keys: &KeySet, policy: &Policy, now: i64) -> Result<Claims, TokenError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(TokenError::TooLong);
    }
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed);
    };
    let decode = |part: &str| B64.decode(part).map_err(|_| TokenError::Malformed);
    let header: Header = serde_json::from_slice(&decode(h)?).map_err(|_| TokenError::Malformed)?;
    if header.crit.is_some() {
        return Err(TokenError::UnknownCritical);
    }
    let kid = header.kid.as_deref().ok_or(TokenError::UnknownKey)?;
    let key = keys.get(kid).ok_or(TokenError::UnknownKey)?;
    // Pinned: the key decides the algorithm, the header only has to agree.
    if header.alg != ALGORITHM {
        return Err(TokenError::WrongAlgorithm);
    }
    let typ = header.typ.as_deref().unwrap_or("");
    if !typ.eq_ignore_ascii_case(TYPE) && !typ.eq_ignore_ascii_case("application/at+jwt") {
        return Err(TokenError::WrongType);
    }
    let signature = decode(s)?;
    let signed = &token[..h.len() + 1 + p.len()];
    key.verify(signed.as_bytes(), &signature)
        .map_err(|_| TokenError::BadSignature)?;
    let claims: Claims = serde_json::from_slice(&decode(p)?).map_err(|_| TokenError::Malformed)?;
    check_claims(&claims, policy, now)?;
    Ok(claims)
}

fn check_claims(claims: &Claims, policy: &Policy, now: i64) -> Result<(), TokenError> {
    let leeway = policy.leeway_secs.clamp(0, MAX_LEEWAY_SECS);
    if claims.iss != policy.issuer {
        return Err(TokenError::WrongIssuer);
    }
    if claims.aud != policy.audience {
        return Err(TokenError::WrongAudience);
    }
    if now > claims.exp.saturating_add(leeway) {
        return Err(TokenError::Expired);
    }
    if claims
        .nbf
        .is_some_and(|nbf| now.saturating_add(leeway) < nbf)
    {
        return Err(TokenError::NotYetValid);
    }
    if claims.iat > now.saturating_add(leeway) {
        return Err(TokenError::IssuedInFuture);
    }
    Ok(())
}

#[cfg(test)]
mod tests;
