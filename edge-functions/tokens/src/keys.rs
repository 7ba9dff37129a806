//! Signing keys (a secret) and verification key sets (a JWKS), each key
//! named by a `kid` so keys can be rotated.
//!
//! A signing secret is `<kid>:<base64url of the 32-byte Ed25519 seed>`.
//! A key set is a JWKS of `OKP`/`Ed25519` public keys; a key carrying
//! private material (`d`) or meant for another algorithm is refused.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ed25519_dalek::{Signature, SigningKey, VerifyingKey};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    #[error("a signing secret is `<kid>:<base64url seed>`")]
    BadSecret,
    #[error("the key set is not a JWKS: {0}")]
    BadKeySet(String),
    #[error("key {0:?} is not an Ed25519 public key")]
    BadKey(String),
    #[error("key {0:?} carries private material; publish only public keys")]
    PrivateKey(String),
    #[error("key id {0:?} appears twice")]
    DuplicateKid(String),
}

/// The key tokens are signed with.
pub struct Signer {
    kid: String,
    key: SigningKey,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl Signer {
    /// A signer from a 32-byte seed (the caller supplies the randomness).
    pub fn from_seed(kid: &str, seed: [u8; 32]) -> Signer {
        Signer {
            kid: kid.to_string(),
            key: SigningKey::from_bytes(&seed),
        }
    }

    /// Parses `<kid>:<base64url seed>`.
    pub fn from_secret(secret: &str) -> Result<Signer, KeyError> {
        let (kid, seed) = secret.trim().split_once(':').ok_or(KeyError::BadSecret)?;
        let seed: [u8; 32] = B64
            .decode(seed)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or(KeyError::BadSecret)?;
        if kid.is_empty() {
            return Err(KeyError::BadSecret);
        }
        Ok(Signer::from_seed(kid, seed))
    }

    /// The secret form [`Signer::from_secret`] reads.
    pub fn to_secret(&self) -> String {
        format!("{}:{}", self.kid, B64.encode(self.key.to_bytes()))
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    pub(crate) fn sign(&self, message: &[u8]) -> [u8; 64] {
        use ed25519_dalek::Signer as _;
        self.key.sign(message).to_bytes()
    }

    /// This key's public half: 32 bytes in unpadded base64url.
    pub fn public_key(&self) -> String {
        B64.encode(self.key.verifying_key().to_bytes())
    }

    /// This key's public half as a JWK.
    pub fn public_jwk(&self) -> serde_json::Value {
        serde_json::json!({
            "kty": "OKP",
            "crv": "Ed25519",
            "alg": crate::ALGORITHM,
            "use": "sig",
            "kid": self.kid,
            "x": B64.encode(self.key.verifying_key().to_bytes()),
        })
    }
}

/// Public keys by `kid`.
#[derive(Debug, Clone, Default)]
pub struct KeySet {
    keys: Vec<(String, VerifyingKey)>,
}

/// A key found in a [`KeySet`].
#[derive(Debug)]
pub struct Key<'a>(&'a VerifyingKey);

impl Key<'_> {
    /// Strict verification: no malleable or small-order signatures.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> Result<(), ()> {
        let signature = Signature::from_slice(signature).map_err(drop)?;
        self.0.verify_strict(message, &signature).map_err(drop)
    }
}

impl KeySet {
    /// Parses a JWKS (`{"keys": [...]}`).
    pub fn from_jwks(json: &str) -> Result<KeySet, KeyError> {
        let v: serde_json::Value =
            serde_json::from_str(json).map_err(|e| KeyError::BadKeySet(e.to_string()))?;
        let list = v
            .get("keys")
            .and_then(|k| k.as_array())
            .ok_or_else(|| KeyError::BadKeySet("no `keys` array".into()))?;
        let mut set = KeySet::default();
        for k in list {
            let kid = k
                .get("kid")
                .and_then(|v| v.as_str())
                .ok_or_else(|| KeyError::BadKeySet("a key has no `kid`".into()))?
                .to_string();
            if k.get("d").is_some() {
                return Err(KeyError::PrivateKey(kid));
            }
            let field = |name: &str| k.get(name).and_then(|v| v.as_str());
            let alg_ok = field("alg").is_none_or(|a| a == crate::ALGORITHM);
            if field("kty") != Some("OKP") || field("crv") != Some("Ed25519") || !alg_ok {
                return Err(KeyError::BadKey(kid));
            }
            let x: [u8; 32] = field("x")
                .and_then(|x| B64.decode(x).ok())
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| KeyError::BadKey(kid.clone()))?;
            let key = VerifyingKey::from_bytes(&x).map_err(|_| KeyError::BadKey(kid.clone()))?;
            if set.get(&kid).is_some() {
                return Err(KeyError::DuplicateKid(kid));
            }
            set.keys.push((kid, key));
        }
        Ok(set)
    }

    /// The set as a JWKS document (for `/.well-known/jwks.json`).
    pub fn to_jwks(&self) -> serde_json::Value {
        let keys: Vec<serde_json::Value> = self
            .keys
            .iter()
            .map(|(kid, key)| {
                serde_json::json!({
                    "kty": "OKP",
                    "crv": "Ed25519",
                    "alg": crate::ALGORITHM,
                    "use": "sig",
                    "kid": kid,
                    "x": B64.encode(key.to_bytes()),
                })
            })
            .collect();
        serde_json::json!({ "keys": keys })
    }

    pub fn get(&self, kid: &str) -> Option<Key<'_>> {
        self.keys
            .iter()
            .find(|(k, _)| k == kid)
            .map(|(_, key)| Key(key))
    }

    pub fn kids(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().map(|(k, _)| k.as_str())
    }
}
