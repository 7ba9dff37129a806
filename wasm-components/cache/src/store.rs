//! The PoP's `cache` key-value store and the replicated change log.

use cache_core::entry::Entry;
use cache_core::key;
use edge_sql::{Database, SqlValue};
use spin_sdk::experimental::wasi::keyvalue::{atomics, store};

/// The key-value store label entries live in.
const LABEL: &str = "cache";
/// The database whose `changes` table invalidates entries.
const CHANGES_DB: &str = "catalog";
/// A fill lock older than this was abandoned (its holder crashed or hit
/// its deadline); the next request may take it.
const LOCK_MS: u64 = 10_000;
/// How long a response that could not be stored keeps its URL's requests
/// from waiting on each other (they still store it if it changes).
const PASS_MS: u64 = 30_000;

pub struct Store(store::Bucket);

impl Store {
    pub fn open() -> Result<Store, String> {
        store::open(LABEL)
            .map(Store)
            .map_err(|e| format!("opening the {LABEL:?} store: {e:?}"))
    }

    /// The `Vary` header names stored responses for `primary` have.
    pub fn variants(&self, primary: &str) -> Option<Vec<String>> {
        let raw = self.0.get(&key::variants_key(primary)).ok()??;
        let text = String::from_utf8(raw).ok()?;
        Some(
            text.split('\n')
                .filter(|n| !n.is_empty())
                .map(str::to_string)
                .collect(),
        )
    }

    /// The entry stored for these keys, if it is intact and really theirs.
    pub fn entry(&self, primary: &str, secondary: &str) -> Option<Entry> {
        let raw = self.0.get(&key::entry_key(primary, secondary)).ok()??;
        Entry::decode(&raw)
            .ok()
            .filter(|e| e.primary == primary && e.secondary == secondary)
    }

    /// Stores `entry` under its keys and makes its variant list current.
    pub fn put(&self, entry: &Entry, vary: &[String]) -> bool {
        let entry_ok = self
            .0
            .set(
                &key::entry_key(&entry.primary, &entry.secondary),
                &entry.encode(),
            )
            .is_ok();
        entry_ok
            && self
                .0
                .set(
                    &key::variants_key(&entry.primary),
                    vary.join("\n").as_bytes(),
                )
                .is_ok()
    }

    /// Makes everything stored for `primary` unreachable.
    pub fn forget(&self, primary: &str) {
        let _ = self.0.delete(&key::variants_key(primary));
    }

    /// Takes the fill lock `lock` unless someone holds it (and is not
    /// overdue).
    pub fn try_lock(&self, lock: &str) -> bool {
        let Ok(cas) = atomics::Cas::new(&self.0, lock) else {
            return false;
        };
        let now = crate::now_ms();
        let held = cas
            .current()
            .ok()
            .flatten()
            .and_then(|v| String::from_utf8(v).ok()?.parse::<u64>().ok())
            .is_some_and(|until| until > now);
        if held {
            return false;
        }
        atomics::swap(cas, (now + LOCK_MS).to_string().as_bytes()).is_ok()
    }

    /// Marks `primary` as not worth waiting for: its last fetch could not
    /// be stored.
    pub fn mark_uncacheable(&self, primary: &str) {
        let until = crate::now_ms() + PASS_MS;
        let _ = self
            .0
            .set(&key::pass_key(primary), until.to_string().as_bytes());
    }

    /// Whether `primary`'s last fetch, recently, could not be stored.
    pub fn uncacheable(&self, primary: &str) -> bool {
        self.0
            .get(&key::pass_key(primary))
            .ok()
            .flatten()
            .and_then(|v| String::from_utf8(v).ok()?.parse::<u64>().ok())
            .is_some_and(|until| until > crate::now_ms())
    }

    pub fn unlock(&self, lock: &str) {
        let _ = self.0.delete(lock);
    }
}

/// The one integer a change-log query answers; `None` if it cannot be read.
pub async fn changes_db(sql: &str, params: Vec<SqlValue>) -> Option<u64> {
    let rows = spin_glue::SpinDb::new(CHANGES_DB)
        .query(sql, params)
        .await
        .ok()?;
    match rows.first()?.first()? {
        SqlValue::Integer(n) => u64::try_from(*n).ok(),
        _ => None,
    }
}
