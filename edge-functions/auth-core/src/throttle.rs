//! Slowing down password guessing, per e-mail address.
//!
//! The first [`FREE_FAILURES`] - 1 failures in a [`WINDOW_SECS`] window
//! cost nothing extra; from then on every failure locks the address for
//! twice as long as the one before (1 s, 2 s, 4 s, ... up to
//! [`MAX_LOCK_SECS`]). Clocks here count whole seconds, so a lock runs to
//! the end of the second after its length: never shorter than stated (a
//! failure at 12.95 s locks a 1 s lock until 14 s, not 13 s). A locked
//! address is refused with 429 before any password is checked. Unknown addresses are counted exactly like known
//! ones, so a lock reveals nothing about which addresses have accounts.
//!
//! Counting happens at the primary in one statement, so concurrent guesses
//! at different PoPs are all counted.

use sha2::{Digest, Sha256};

pub const FREE_FAILURES: i64 = 5;
pub const WINDOW_SECS: i64 = 15 * 60;
pub const MAX_LOCK_SECS: i64 = 15 * 60;

/// The key of an address in `login_failures`.
pub fn email_key(normalized_email: &str) -> Vec<u8> {
    Sha256::digest(normalized_email.as_bytes()).to_vec()
}

/// Is the address locked at `now`? `SELECT` parameters: key.
pub const LOCKED_SQL: &str = "SELECT locked_until FROM login_failures WHERE email_key = ?1";

/// Counts one failure and sets the lock. Parameters: key, now.
pub fn record_failure_sql() -> String {
    // In an upsert's SET, column names are the row's values before the
    // update, so `count` is the new failure count.
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
         RETURNING failures, locked_until"
    )
}

/// Forgets the failures after a successful sign-in. Parameters: key.
pub const CLEAR_SQL: &str = "DELETE FROM login_failures WHERE email_key = ?1";

/// Seconds until a lock ends, if it has not.
pub fn retry_after(locked_until: i64, now: i64) -> Option<i64> {
    (locked_until > now).then(|| locked_until - now)
}
