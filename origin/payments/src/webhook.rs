//! Webhook signatures in the Stripe shape: the `Stripe-Signature` header
//! is `t=<unix secs>,v1=<hex HMAC-SHA256 of "t.payload">` (more than one
//! `v1` while a secret rotates). Deliveries are retried, duplicated and
//! unordered, so receivers de-duplicate by event id and never move a
//! payment backwards.

use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;

/// How far a signature's timestamp may be from now: replays of an old
/// delivery are refused.
pub const TOLERANCE_SECS: i64 = 300;

/// The header value that signs `payload` at time `t`.
pub fn sign(secret: &str, t: i64, payload: &[u8]) -> String {
    format!("t={t},v1={}", hex(&mac(secret, t, payload)))
}

/// Why a delivery was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignatureError {
    #[error("the Stripe-Signature header is missing or has no t= and v1= parts")]
    Malformed,
    #[error("the signature is {0} s away from now, more than the {TOLERANCE_SECS} s allowed")]
    Stale(i64),
    #[error("no v1 signature matches the payload")]
    Mismatch,
}

/// Checks a delivery's `Stripe-Signature` header against its raw body.
pub fn verify(header: &str, payload: &[u8], secret: &str, now: i64) -> Result<(), SignatureError> {
    let mut t = None;
    let mut candidates = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) => t = v.parse::<i64>().ok(),
            Some(("v1", v)) => candidates.push(v),
            _ => {}
        }
    }
    let t = t.ok_or(SignatureError::Malformed)?;
    if candidates.is_empty() {
        return Err(SignatureError::Malformed);
    }
    let skew = (now - t).abs();
    if skew > TOLERANCE_SECS {
        return Err(SignatureError::Stale(skew));
    }
    for candidate in candidates {
        let Some(bytes) = unhex(candidate) else {
            continue;
        };
        let mut m = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
        m.update(t.to_string().as_bytes());
        m.update(b".");
        m.update(payload);
        // Constant-time comparison.
        if m.verify_slice(&bytes).is_ok() {
            return Ok(());
        }
    }
    Err(SignatureError::Mismatch)
}

/// An event as delivered.
#[derive(Debug, Clone, Deserialize)]
pub struct Event {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub created: i64,
    pub data: EventData,
}

#[derive(Debug, Clone, Deserialize)]
pub struct EventData {
    pub object: serde_json::Value,
}

impl Event {
    /// The PaymentIntent the event is about, if it is about one.
    pub fn payment_intent(&self) -> Option<crate::PaymentIntent> {
        if self.data.object.get("object")?.as_str()? != "payment_intent" {
            return None;
        }
        serde_json::from_value(self.data.object.clone()).ok()
    }
}

fn mac(secret: &str, t: i64, payload: &[u8]) -> Vec<u8> {
    let mut m = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    m.update(t.to_string().as_bytes());
    m.update(b".");
    m.update(payload);
    m.finalize().into_bytes().to_vec()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || s.len() > 128 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signed_payload_verifies_and_any_change_does_not() {
        let header = sign("whsec_a", 1_700_000_000, b"{\"id\":\"evt_1\"}");
        assert_eq!(
            verify(&header, b"{\"id\":\"evt_1\"}", "whsec_a", 1_700_000_010),
            Ok(())
        );
        assert_eq!(
            verify(&header, b"{\"id\":\"evt_2\"}", "whsec_a", 1_700_000_010),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(&header, b"{\"id\":\"evt_1\"}", "whsec_b", 1_700_000_010),
            Err(SignatureError::Mismatch)
        );
        // A replay long after.
        assert_eq!(
            verify(&header, b"{\"id\":\"evt_1\"}", "whsec_a", 1_700_000_400),
            Err(SignatureError::Stale(400))
        );
        // The timestamp is signed too.
        let moved = header.replace("t=1700000000", "t=1700000300");
        assert_eq!(
            verify(&moved, b"{\"id\":\"evt_1\"}", "whsec_a", 1_700_000_300),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn any_v1_of_a_rotation_may_match_and_garbage_is_malformed() {
        let good = sign("new", 10, b"x");
        let v1 = good.split_once(",v1=").unwrap().1;
        let header = format!("t=10,v1=00ff,v0=abc,v1={v1}");
        assert_eq!(verify(&header, b"x", "new", 10), Ok(()));
        for bad in ["", "t=10", "v1=00", "t=x,v1=00", "garbage"] {
            assert_eq!(
                verify(bad, b"x", "new", 10),
                Err(SignatureError::Malformed),
                "{bad}"
            );
        }
        assert_eq!(
            verify("t=10,v1=zz", b"x", "new", 10),
            Err(SignatureError::Mismatch)
        );
    }
}
