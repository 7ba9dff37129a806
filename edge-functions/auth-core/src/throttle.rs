//! Slowing down password guessing, per e-mail address.
//!
//! The first [`FREE_FAILURES`] - 1 failures in a [`WINDOW_SECS`] window
//! cost nothing extra; from then on every failure locks the address for
//! twice as long as the one before (1 s, 2 s, 4 s, ... up to
//! [`MAX_LOCK_SECS`]). Clocks here count whole seconds, so a lock runs to
//! the end of the second after its length: never shorter than stated (a
//! failure at 12.95 s locks a 1 s lock until 14 s, not 13 s). A locked
//! address is refused with 429 before any password is checked. Unknown
//! addresses are counted exactly like known ones, so a lock reveals
//! nothing about which addresses have accounts.
//!
//! The password is checked at the PoP, and the outcome is then settled at
//! the primary in one statement (one round trip from a far PoP): a
//! failure is counted ([`count_failure_sql`]), a success opens its session
//! ([`open_session_sql`], whose trigger clears the count), and either is
//! refused, changing nothing, while the address is locked there. The
//! client learns the outcome only from that statement, and the primary
//! takes them one at a time, so guesses racing at one or many PoPs get at
//! most [`FREE_FAILURES`] answers before the lock, and one per lock after
//! it, however many arrive while the lock is being written; the rest are
//! told to wait. The local replica is asked first only to refuse a known
//! lock without a round trip (or a hash).

use sha2::{Digest, Sha256};

pub const FREE_FAILURES: i64 = 5;
pub const WINDOW_SECS: i64 = 15 * 60;
pub const MAX_LOCK_SECS: i64 = 15 * 60;

/// The key of an address in `login_failures`.
pub fn email_key(normalized_email: &str) -> Vec<u8> {
    Sha256::digest(normalized_email.as_bytes()).to_vec()
}

/// Is the address locked at `now`, as far as the local replica knows?
/// `SELECT` parameters: key.
pub const LOCKED_SQL: &str = "SELECT locked_until FROM login_failures WHERE email_key = ?1";

/// Counts one failed attempt and sets the lock the
/// count calls for, returning `(failures, locked_until)`; returns no row,
/// and changes nothing, while the address is locked. Parameters: key, now.
pub fn count_failure_sql() -> String {
    // In an upsert's SET and WHERE, column names are the row's values
    // before the update, so `count` is the new failure count.
    let count =
        format!("(CASE WHEN window_start <= ?2 - {WINDOW_SECS} THEN 1 ELSE failures + 1 END)");
    format!(
        "INSERT INTO login_failures (email_key, failures, window_start, locked_until) \
         VALUES (?1, 1, ?2, CASE WHEN 1 >= {FREE_FAILURES} THEN ?2 + 2 ELSE 0 END) \
         ON CONFLICT (email_key) DO UPDATE SET \
           failures = {count}, \
           window_start = CASE WHEN window_start <= ?2 - {WINDOW_SECS} THEN ?2 ELSE window_start END, \
           locked_until = CASE WHEN {count} >= {FREE_FAILURES} \
             THEN ?2 + 1 + min({MAX_LOCK_SECS}, 1 << min(20, {count} - {FREE_FAILURES})) ELSE 0 END \
         WHERE locked_until <= ?2 \
         RETURNING failures, locked_until"
    )
}

/// Opens a session for a sign-in whose password was right, unless the
/// address is locked at the primary; returns the session's id, or no row
/// (and changes nothing) while locked. The session names the address's
/// key, and its trigger clears the address's failures. Parameters: id,
/// account, now, expires, first refresh token's digest, key.
pub fn open_session_sql() -> &'static str {
    "INSERT INTO sessions \
       (id, account_id, created_at, expires_at, first_refresh_hash, signin_key) \
     SELECT ?1, ?2, ?3, ?4, ?5, ?6 \
     WHERE NOT EXISTS (SELECT 1 FROM login_failures WHERE email_key = ?6 AND locked_until > ?3) \
     RETURNING id"
}

/// How long a client refused by the reservation is told to wait when the
/// local replica does not know the lock yet (it arrives within the
/// replication lag, and the next refusal then names the exact wait).
pub const UNKNOWN_LOCK_WAIT_SECS: i64 = 1;

/// Seconds until a lock ends, if it has not.
pub fn retry_after(locked_until: i64, now: i64) -> Option<i64> {
    (locked_until > now).then(|| locked_until - now)
}
