//! Batons: the unforgeable, expiring, single-use handle a Hrana client
//! presents to continue a stream.
//!
//! `base64url(stream_id:u64 | seq:u64 | expires_unix_ms:u64) "." base64url(hmac)`.
//! Each response hands out the next `seq`, so a baton replayed after it was
//! used is refused, as is one past its expiry or signed with another key.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hmac::{Hmac, Mac};
use sha2::Sha256;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Baton {
    pub stream_id: u64,
    pub seq: u64,
    pub expires_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatonError {
    #[error("the baton is malformed")]
    Malformed,
    #[error("the baton was not issued by this server")]
    BadSignature,
    #[error("the baton has expired")]
    Expired,
}

pub struct BatonKey(Vec<u8>);

impl BatonKey {
    pub fn new(secret: &[u8]) -> BatonKey {
        BatonKey(secret.to_vec())
    }

    fn mac(&self, payload: &[u8]) -> Hmac<Sha256> {
        let mut m = Hmac::<Sha256>::new_from_slice(&self.0).expect("any key length");
        m.update(payload);
        m
    }

    pub fn encode(&self, b: Baton) -> String {
        let mut payload = Vec::with_capacity(24);
        payload.extend_from_slice(&b.stream_id.to_be_bytes());
        payload.extend_from_slice(&b.seq.to_be_bytes());
        payload.extend_from_slice(&b.expires_ms.to_be_bytes());
        let tag = self.mac(&payload).finalize().into_bytes();
        format!("{}.{}", B64.encode(&payload), B64.encode(tag))
    }

    pub fn decode(&self, text: &str, now_ms: u64) -> Result<Baton, BatonError> {
        let (payload, tag) = text.split_once('.').ok_or(BatonError::Malformed)?;
        let payload = B64.decode(payload).map_err(|_| BatonError::Malformed)?;
        let tag = B64.decode(tag).map_err(|_| BatonError::Malformed)?;
        if payload.len() != 24 {
            return Err(BatonError::Malformed);
        }
        self.mac(&payload)
            .verify_slice(&tag)
            .map_err(|_| BatonError::BadSignature)?;
        let word =
            |i: usize| u64::from_be_bytes(payload[i * 8..i * 8 + 8].try_into().expect("8 bytes"));
        let b = Baton {
            stream_id: word(0),
            seq: word(1),
            expires_ms: word(2),
        };
        if b.expires_ms < now_ms {
            return Err(BatonError::Expired);
        }
        Ok(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_forgeries() {
        let key = BatonKey::new(b"k1");
        let b = Baton {
            stream_id: 7,
            seq: 3,
            expires_ms: 10_000,
        };
        let text = key.encode(b);
        assert_eq!(key.decode(&text, 9_999), Ok(b));
        assert_eq!(key.decode(&text, 10_001), Err(BatonError::Expired));
        assert_eq!(
            BatonKey::new(b"k2").decode(&text, 0),
            Err(BatonError::BadSignature)
        );
        // Re-signing another stream id with a guessed tag fails.
        let other = key.encode(Baton { stream_id: 8, ..b });
        let (p8, _) = other.split_once('.').unwrap();
        let (_, t7) = text.split_once('.').unwrap();
        assert_eq!(
            key.decode(&format!("{p8}.{t7}"), 0),
            Err(BatonError::BadSignature)
        );
        assert_eq!(key.decode("garbage", 0), Err(BatonError::Malformed));
    }
}
