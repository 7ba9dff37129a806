//! The IETF draft `RateLimit-Policy` and `RateLimit` fields (structured
//! field lists whose items are the policy's name with parameters).

use crate::gcra::{Decision, Quota};

/// `"name";q=<quota>;w=<window secs>`. The name must be a plain token
/// (letters, digits, `-`, `_`); the configuration enforces that.
pub fn policy(name: &str, quota: &Quota) -> String {
    format!("\"{name}\";q={};w={}", quota.quota(), quota.window_secs())
}

/// The policy's name in a `RateLimit-Policy` field, for an observer.
pub fn policy_name(field: &str) -> Option<&str> {
    let rest = field.trim_start().strip_prefix('"')?;
    Some(&rest[..rest.find('"')?])
}

/// `"name";r=<remaining>;t=<seconds until a full burst again>`.
pub fn status(name: &str, decision: &Decision) -> String {
    let (remaining, reset) = match *decision {
        Decision::Allowed {
            remaining,
            reset_secs,
            ..
        } => (remaining, reset_secs),
        Decision::Denied { reset_secs, .. } => (0, reset_secs),
    };
    format!("\"{name}\";r={remaining};t={reset}")
}

/// How a TAT is stored: 8 bytes, big-endian nanoseconds.
pub fn encode_tat(tat: u64) -> Vec<u8> {
    tat.to_be_bytes().to_vec()
}

/// A stored TAT; anything else (a foreign or truncated value) reads as
/// none, so the key starts afresh rather than failing.
pub fn decode_tat(bytes: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(bytes.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_follow_the_draft_and_tats_round_trip() {
        let q = Quota::new(100, 60, 10).unwrap();
        assert_eq!(policy("browse", &q), "\"browse\";q=100;w=60");
        assert_eq!(policy_name(&policy("browse", &q)), Some("browse"));
        assert_eq!(policy_name("browse;q=1"), None);
        let d = q.decide(None, 0);
        assert_eq!(status("browse", &d), "\"browse\";r=9;t=1");
        assert_eq!(decode_tat(&encode_tat(123_456_789)), Some(123_456_789));
        assert_eq!(decode_tat(b"junk"), None);
    }
}
