//! Passwords and e-mail addresses for accounts. Pure: the caller brings
//! the salt (random bytes) and stores the result.
//!
//! Hashes are Argon2id in the PHC string format with OWASP's minimum
//! parameters (19 MiB, 2 passes, 1 lane). Verifying against an unknown
//! account runs the same work against a fixed hash ([`verify_nobody`]),
//! so "no such e-mail" and "wrong password" take the same time.

use argon2::{Algorithm, Argon2, Params, Version};
use base64::Engine;
use base64::engine::general_purpose::STANDARD_NO_PAD as B64;

/// Memory cost in KiB (19 MiB).
pub const MEMORY_KIB: u32 = 19 * 1024;
/// Passes over memory.
pub const ITERATIONS: u32 = 2;
/// Lanes.
pub const PARALLELISM: u32 = 1;
/// Bytes of salt the caller must supply.
pub const SALT_BYTES: usize = 16;
const HASH_BYTES: usize = 32;

/// Shortest password accepted, in characters.
pub const MIN_PASSWORD_CHARS: usize = 12;
/// Longest password accepted, in bytes: hashing work stays bounded.
pub const MAX_PASSWORD_BYTES: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PasswordError {
    #[error("the password must be at least {MIN_PASSWORD_CHARS} characters")]
    TooShort,
    #[error("the password must be at most {MAX_PASSWORD_BYTES} bytes")]
    TooLong,
    #[error("the stored hash is not an Argon2id PHC string this build can check")]
    BadHash,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EmailError {
    #[error("that is not an e-mail address (expected name@domain.tld)")]
    Invalid,
    #[error("the e-mail address is longer than 254 characters")]
    TooLong,
}

/// Checks a new password against the policy.
pub fn check_policy(password: &str) -> Result<(), PasswordError> {
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(PasswordError::TooLong);
    }
    if password.chars().count() < MIN_PASSWORD_CHARS || password.trim().is_empty() {
        return Err(PasswordError::TooShort);
    }
    Ok(())
}

fn argon2(
    memory_kib: u32,
    iterations: u32,
    parallelism: u32,
) -> Result<Argon2<'static>, PasswordError> {
    let params = Params::new(memory_kib, iterations, parallelism, Some(HASH_BYTES))
        .map_err(|_| PasswordError::BadHash)?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// Hashes `password` with `salt` into a PHC string.
pub fn hash(password: &str, salt: [u8; SALT_BYTES]) -> Result<String, PasswordError> {
    check_policy(password)?;
    let mut out = [0u8; HASH_BYTES];
    argon2(MEMORY_KIB, ITERATIONS, PARALLELISM)?
        .hash_password_into(password.as_bytes(), &salt, &mut out)
        .map_err(|_| PasswordError::BadHash)?;
    Ok(format!(
        "$argon2id$v=19$m={MEMORY_KIB},t={ITERATIONS},p={PARALLELISM}${}${}",
        B64.encode(salt),
        B64.encode(out)
    ))
}

/// A stored hash, taken apart.
struct Phc {
    memory_kib: u32,
    iterations: u32,
    parallelism: u32,
    salt: Vec<u8>,
    hash: Vec<u8>,
}

fn parse(phc: &str) -> Option<Phc> {
    let mut parts = phc.split('$');
    let (Some(""), Some("argon2id"), Some("v=19"), Some(params), Some(salt), Some(hash), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return None;
    };
    let mut m = None;
    let mut t = None;
    let mut p = None;
    for kv in params.split(',') {
        let (k, v) = kv.split_once('=')?;
        let v: u32 = v.parse().ok()?;
        match k {
            "m" => m = Some(v),
            "t" => t = Some(v),
            "p" => p = Some(v),
            _ => return None,
        }
    }
    Some(Phc {
        memory_kib: m?,
        iterations: t?,
        parallelism: p?,
        salt: B64.decode(salt).ok()?,
        hash: B64.decode(hash).ok()?,
    })
}

/// Checks `password` against a stored hash, in time independent of where
/// they differ.
pub fn verify(password: &str, phc: &str) -> Result<bool, PasswordError> {
    let stored = parse(phc).ok_or(PasswordError::BadHash)?;
    // Refuse parameters that would let a stored hash make verification
    // arbitrarily expensive (or trivially cheap).
    if stored.memory_kib > 256 * 1024 || stored.iterations > 16 || stored.parallelism > 8 {
        return Err(PasswordError::BadHash);
    }
    if stored.hash.len() != HASH_BYTES || password.len() > MAX_PASSWORD_BYTES {
        return Ok(false);
    }
    let mut out = [0u8; HASH_BYTES];
    argon2(stored.memory_kib, stored.iterations, stored.parallelism)?
        .hash_password_into(password.as_bytes(), &stored.salt, &mut out)
        .map_err(|_| PasswordError::BadHash)?;
    Ok(out
        .iter()
        .zip(&stored.hash)
        .fold(0u8, |acc, (a, b)| acc | (a ^ b))
        == 0)
}

/// The same work as [`verify`], for a sign-in to an e-mail with no
/// account; always false.
pub fn verify_nobody(password: &str) -> bool {
    // Random bytes in the shape of a hash: no password verifies.
    const NOBODY: &str = "$argon2id$v=19$m=19456,t=2,p=1$ZWRnZXNob3Atbm9ib2R5$4nM6Q6Dk7iAgIv6mYb8bXz5S4i0J5p1Z6kqH5xq0k2c";
    let _ = verify(password, NOBODY);
    false
}

/// True when a stored hash uses other parameters than today's, so it
/// should be replaced after the next successful sign-in.
pub fn needs_rehash(phc: &str) -> bool {
    parse(phc).is_none_or(|p| {
        (p.memory_kib, p.iterations, p.parallelism) != (MEMORY_KIB, ITERATIONS, PARALLELISM)
    })
}

/// Normalises an e-mail address for storage and lookup: trimmed and
/// lower-cased, with a plausible `local@domain.tld` shape.
pub fn normalize_email(input: &str) -> Result<String, EmailError> {
    let email = input.trim().to_lowercase();
    if email.len() > 254 {
        return Err(EmailError::TooLong);
    }
    let (local, domain) = email.split_once('@').ok_or(EmailError::Invalid)?;
    let ok_char = |c: char| !c.is_whitespace() && !c.is_control() && c != '@';
    let domain_ok = domain.contains('.')
        && domain.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_alphanumeric() || c == '-')
        });
    if local.is_empty() || local.len() > 64 || !local.chars().all(ok_char) || !domain_ok {
        return Err(EmailError::Invalid);
    }
    Ok(email)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PW: &str = "correct horse battery staple";

    #[test]
    fn a_hash_verifies_its_password_and_nothing_else() {
        let phc = hash(PW, [7; SALT_BYTES]).unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(verify(PW, &phc).unwrap());
        assert!(!verify("correct horse battery stapler", &phc).unwrap());
        assert!(!verify("", &phc).unwrap());
        // Another salt, another hash.
        assert_ne!(hash(PW, [8; SALT_BYTES]).unwrap(), phc);
        assert!(!needs_rehash(&phc));
    }

    #[test]
    fn the_nobody_hash_is_well_formed_so_it_costs_the_same() {
        // If the constant could not be parsed, verify_nobody would return
        // at once and leak which e-mails have accounts.
        let p = parse("$argon2id$v=19$m=19456,t=2,p=1$ZWRnZXNob3Atbm9ib2R5$4nM6Q6Dk7iAgIv6mYb8bXz5S4i0J5p1Z6kqH5xq0k2c").unwrap();
        assert_eq!(
            (p.memory_kib, p.iterations, p.parallelism),
            (MEMORY_KIB, ITERATIONS, PARALLELISM)
        );
        assert_eq!(p.hash.len(), HASH_BYTES);
        assert!(!verify_nobody(PW));
    }

    #[test]
    fn policy_bounds_passwords() {
        assert_eq!(check_policy("short"), Err(PasswordError::TooShort));
        assert_eq!(check_policy("            "), Err(PasswordError::TooShort));
        assert_eq!(check_policy(&"x".repeat(257)), Err(PasswordError::TooLong));
        assert_eq!(check_policy("twelve chars"), Ok(()));
        assert_eq!(hash("short", [0; SALT_BYTES]), Err(PasswordError::TooShort));
    }

    #[test]
    fn hostile_stored_hashes_are_refused() {
        for bad in [
            "",
            "hunter2",
            "$argon2i$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaA",
            "$argon2id$v=16$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaA",
            "$argon2id$v=19$m=4194304,t=2,p=1$c2FsdHNhbHQ$aGFzaA",
            "$argon2id$v=19$m=19456,t=1000,p=1$c2FsdHNhbHQ$aGFzaA",
            "$argon2id$v=19$m=19456,t=2$c2FsdHNhbHQ$aGFzaA",
            "$argon2id$v=19$m=19456,t=2,p=1,x=1$c2FsdHNhbHQ$aGFzaA",
        ] {
            assert_eq!(verify(PW, bad), Err(PasswordError::BadHash), "{bad:?}");
        }
        assert!(needs_rehash(
            "$argon2id$v=19$m=4096,t=3,p=1$c2FsdHNhbHQ$aGFzaA"
        ));
    }

    #[test]
    fn emails_are_normalised_or_refused() {
        assert_eq!(
            normalize_email("  Ada@Example.COM ").unwrap(),
            "ada@example.com"
        );
        assert_eq!(
            normalize_email("a.b+shop@mail.example.co.uk").unwrap(),
            "a.b+shop@mail.example.co.uk"
        );
        for bad in [
            "",
            "ada",
            "ada@",
            "@example.com",
            "ada@example",
            "a da@example.com",
            "ada@@example.com",
            "ada@exa mple.com",
            "ada@-example.com",
            "ada@example..com",
        ] {
            assert_eq!(normalize_email(bad), Err(EmailError::Invalid), "{bad:?}");
        }
        let long = format!("{}@example.com", "a".repeat(250));
        assert_eq!(normalize_email(&long), Err(EmailError::TooLong));
    }
}
