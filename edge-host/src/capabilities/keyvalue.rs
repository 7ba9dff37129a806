//! Key-value stores: `spin:key-value@3.0.0` and `wasi:keyvalue@0.2.0-draft2`
//! (store, atomics, batch) over one narrow trait.
//!
//! [`KeyValueStore`] is the seam; [`MemoryStore`] is the per-PoP backend:
//! sharded, bounded in bytes with least-recently-used eviction, idle keys
//! expiring, and versioned entries so compare-and-swap is exact (no ABA).
//! Both WIT interfaces name stores by the labels in `key_value_stores`.

mod host;

pub use host::{BucketHandle, CasHandle, KeyValue, KeyValueView, SpinStoreHandle};

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Longest key accepted, in bytes.
pub const MAX_KEY_BYTES: usize = 256;
/// Largest value accepted, in bytes.
pub const MAX_VALUE_BYTES: usize = 1 << 20;
/// Most keys `get-keys`/`list-keys` return.
pub const MAX_LISTED_KEYS: usize = 10_000;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KvError {
    #[error("key is longer than {MAX_KEY_BYTES} bytes")]
    KeyTooLong,
    #[error("value is larger than {MAX_VALUE_BYTES} bytes")]
    ValueTooLarge,
    #[error("the stored value is not a decimal integer")]
    NotAnInteger,
    #[error("integer overflow")]
    Overflow,
}

/// A value and the version it was read at (0: the key was absent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned {
    pub value: Option<Vec<u8>>,
    pub version: u64,
}

/// One key-value store.
pub trait KeyValueStore: Send + Sync + 'static {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError>;
    fn set(&self, key: &str, value: Vec<u8>) -> Result<(), KvError>;
    fn delete(&self, key: &str) -> Result<(), KvError>;
    fn exists(&self, key: &str) -> Result<bool, KvError>;
    /// Keys in ascending order, after `after`, at most `limit`.
    fn keys(&self, after: Option<&str>, limit: usize) -> Result<Vec<String>, KvError>;
    fn get_versioned(&self, key: &str) -> Result<Versioned, KvError>;
    /// Writes `value` only if the key is still at `version`; false if not.
    fn swap_if_version(&self, key: &str, version: u64, value: Vec<u8>) -> Result<bool, KvError>;
    /// Adds `delta` to the decimal integer at `key` (absent = 0).
    fn increment(&self, key: &str, delta: i64) -> Result<i64, KvError>;
    /// A guest dropped a compare-and-swap ticket for `key` without
    /// swapping: it read the key and decided not to write. Nothing to
    /// do for a store; the rate limiter's counts a refusal here.
    fn read_given_up(&self, _key: &str) {}
}

struct Entry {
    value: Vec<u8>,
    version: u64,
    touched: Instant,
}

#[derive(Default)]
struct Shard {
    map: HashMap<String, Entry>,
    bytes: usize,
}

const SHARDS: usize = 16;
/// Bookkeeping charged per entry on top of key and value bytes.
const ENTRY_OVERHEAD: usize = 64;

/// The in-process store of one PoP.
pub struct MemoryStore {
    shards: Vec<Mutex<Shard>>,
    shard_capacity: usize,
    idle_ttl: Duration,
    next_version: std::sync::atomic::AtomicU64,
    evictions: std::sync::atomic::AtomicU64,
}

/// How full a store is, for `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    /// Keys, values and per-entry bookkeeping, as charged to the capacity.
    pub bytes: u64,
    pub keys: u64,
    /// Entries dropped to make room (least recently used first).
    pub evictions: u64,
}

impl MemoryStore {
    /// `capacity_bytes` bounds keys + values (+ overhead); `idle_ttl` drops
    /// keys nobody read or wrote for that long.
    pub fn new(capacity_bytes: usize, idle_ttl: Duration) -> MemoryStore {
        MemoryStore {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            shard_capacity: (capacity_bytes / SHARDS)
                .max(MAX_VALUE_BYTES + MAX_KEY_BYTES + ENTRY_OVERHEAD),
            idle_ttl,
            next_version: std::sync::atomic::AtomicU64::new(1),
            evictions: std::sync::atomic::AtomicU64::new(0),
        }
    }

    pub fn usage(&self) -> Usage {
        let (mut bytes, mut keys) = (0, 0);
        for shard in &self.shards {
            let shard = shard.lock().expect("kv shard lock");
            bytes += shard.bytes as u64;
            keys += shard.map.len() as u64;
        }
        Usage {
            bytes,
            keys,
            evictions: self.evictions.load(std::sync::atomic::Ordering::Relaxed),
        }
    }

    /// FNV-1a: stable, so a key always lands in the same shard.
    fn shard(&self, key: &str) -> std::sync::MutexGuard<'_, Shard> {
        let mut x: u64 = 0xcbf2_9ce4_8422_2325;
        for b in key.as_bytes() {
            x ^= u64::from(*b);
            x = x.wrapping_mul(0x0100_0000_01b3);
        }
        self.shards[(x as usize) % SHARDS]
            .lock()
            .expect("kv shard lock")
    }

    fn version(&self) -> u64 {
        self.next_version
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }

    fn check(key: &str, value: Option<&[u8]>) -> Result<(), KvError> {
        if key.len() > MAX_KEY_BYTES {
            return Err(KvError::KeyTooLong);
        }
        if value.is_some_and(|v| v.len() > MAX_VALUE_BYTES) {
            return Err(KvError::ValueTooLarge);
        }
        Ok(())
    }

    fn cost(key: &str, value: &[u8]) -> usize {
        key.len() + value.len() + ENTRY_OVERHEAD
    }

    /// Drops an idle entry on access, so expired keys read as absent.
    fn live<'a>(&self, shard: &'a mut Shard, key: &str, now: Instant) -> Option<&'a mut Entry> {
        let expired = shard
            .map
            .get(key)
            .is_some_and(|e| now.duration_since(e.touched) > self.idle_ttl);
        if expired {
            if let Some(e) = shard.map.remove(key) {
                shard.bytes -= Self::cost(key, &e.value);
            }
            return None;
        }
        shard.map.get_mut(key)
    }

    fn put(&self, shard: &mut Shard, key: &str, value: Vec<u8>, now: Instant) {
        let cost = Self::cost(key, &value);
        if let Some(old) = shard.map.remove(key) {
            shard.bytes -= Self::cost(key, &old.value);
        }
        // Make room: first anything idle, then the least recently used.
        if shard.bytes + cost > self.shard_capacity {
            let ttl = self.idle_ttl;
            let mut freed = 0;
            shard.map.retain(|k, e| {
                let keep = now.duration_since(e.touched) <= ttl;
                if !keep {
                    freed += Self::cost(k, &e.value);
                }
                keep
            });
            shard.bytes -= freed;
        }
        while shard.bytes + cost > self.shard_capacity {
            let Some(victim) = shard
                .map
                .iter()
                .min_by_key(|(_, e)| e.touched)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            if let Some(e) = shard.map.remove(&victim) {
                shard.bytes -= Self::cost(&victim, &e.value);
                self.evictions
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
        shard.bytes += cost;
        shard.map.insert(
            key.to_string(),
            Entry {
                value,
                version: self.version(),
                touched: now,
            },
        );
    }
}

impl KeyValueStore for MemoryStore {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        Ok(self.get_versioned(key)?.value)
    }

    fn set(&self, key: &str, value: Vec<u8>) -> Result<(), KvError> {
        Self::check(key, Some(&value))?;
        let mut shard = self.shard(key);
        self.put(&mut shard, key, value, Instant::now());
        Ok(())
    }

    fn delete(&self, key: &str) -> Result<(), KvError> {
        Self::check(key, None)?;
        let mut shard = self.shard(key);
        if let Some(e) = shard.map.remove(key) {
            shard.bytes -= Self::cost(key, &e.value);
        }
        Ok(())
    }

    fn exists(&self, key: &str) -> Result<bool, KvError> {
        Ok(self.get_versioned(key)?.value.is_some())
    }

    fn keys(&self, after: Option<&str>, limit: usize) -> Result<Vec<String>, KvError> {
        let now = Instant::now();
        let mut all = BTreeMap::new();
        for shard in &self.shards {
            let shard = shard.lock().expect("kv shard lock");
            for (k, e) in &shard.map {
                if now.duration_since(e.touched) <= self.idle_ttl
                    && after.is_none_or(|a| k.as_str() > a)
                {
                    all.insert(k.clone(), ());
                }
            }
        }
        Ok(all.into_keys().take(limit).collect())
    }

    fn get_versioned(&self, key: &str) -> Result<Versioned, KvError> {
        Self::check(key, None)?;
        let now = Instant::now();
        let mut shard = self.shard(key);
        Ok(match self.live(&mut shard, key, now) {
            Some(e) => {
                e.touched = now;
                Versioned {
                    value: Some(e.value.clone()),
                    version: e.version,
                }
            }
            None => Versioned {
                value: None,
                version: 0,
            },
        })
    }

    fn swap_if_version(&self, key: &str, version: u64, value: Vec<u8>) -> Result<bool, KvError> {
        Self::check(key, Some(&value))?;
        let now = Instant::now();
        let mut shard = self.shard(key);
        let current = self.live(&mut shard, key, now).map_or(0, |e| e.version);
        if current != version {
            return Ok(false);
        }
        self.put(&mut shard, key, value, now);
        Ok(true)
    }

    fn increment(&self, key: &str, delta: i64) -> Result<i64, KvError> {
        Self::check(key, None)?;
        let now = Instant::now();
        let mut shard = self.shard(key);
        // A counter is 8 bytes, little-endian, as Spin stores it: a
        // component reading it back sees the same bytes on either host.
        let current = match self.live(&mut shard, key, now) {
            Some(e) => <[u8; 8]>::try_from(e.value.as_slice())
                .map(i64::from_le_bytes)
                .map_err(|_| KvError::NotAnInteger)?,
            None => 0,
        };
        let next = current.checked_add(delta).ok_or(KvError::Overflow)?;
        self.put(&mut shard, key, next.to_le_bytes().to_vec(), now);
        Ok(next)
    }
}

/// The stores one component may open, by label.
#[derive(Clone, Default)]
pub struct KeyValueGrants {
    pub stores: BTreeMap<String, Arc<dyn KeyValueStore>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(capacity: usize) -> MemoryStore {
        MemoryStore::new(capacity, Duration::from_secs(3600))
    }

    #[test]
    fn set_get_delete_exists_keys() {
        let s = store(1 << 20);
        assert_eq!(s.get("a").unwrap(), None);
        s.set("b", b"2".to_vec()).unwrap();
        s.set("a", b"1".to_vec()).unwrap();
        assert_eq!(s.get("a").unwrap().as_deref(), Some(&b"1"[..]));
        assert!(s.exists("b").unwrap());
        assert_eq!(s.keys(None, 10).unwrap(), ["a", "b"]);
        assert_eq!(s.keys(Some("a"), 10).unwrap(), ["b"]);
        s.delete("a").unwrap();
        assert!(!s.exists("a").unwrap());
        assert_eq!(s.set(&"k".repeat(300), vec![]), Err(KvError::KeyTooLong));
    }

    #[test]
    fn compare_and_swap_is_exact() {
        let s = store(1 << 20);
        let v0 = s.get_versioned("k").unwrap();
        assert_eq!(v0.version, 0);
        assert!(s.swap_if_version("k", 0, b"x".to_vec()).unwrap());
        // A second writer holding the old version loses.
        assert!(!s.swap_if_version("k", 0, b"y".to_vec()).unwrap());
        let v1 = s.get_versioned("k").unwrap();
        // Writing the same bytes again still bumps the version (no ABA).
        s.set("k", b"x".to_vec()).unwrap();
        assert!(!s.swap_if_version("k", v1.version, b"z".to_vec()).unwrap());
    }

    #[test]
    fn increments_are_atomic_across_threads() {
        let s = Arc::new(store(1 << 20));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let s = s.clone();
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        s.increment("n", 1).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(s.increment("n", 0).unwrap(), 8000);
        // Stored as Spin stores a counter.
        assert_eq!(s.get("n").unwrap(), Some(8000i64.to_le_bytes().to_vec()));
        s.set("t", b"text".to_vec()).unwrap();
        assert_eq!(s.increment("t", 1), Err(KvError::NotAnInteger));
    }

    #[test]
    fn stays_within_capacity_evicting_least_recently_used() {
        let cap = SHARDS * (MAX_VALUE_BYTES + MAX_KEY_BYTES + ENTRY_OVERHEAD);
        let s = store(cap);
        for i in 0..10_000 {
            s.set(&format!("key-{i}"), vec![0u8; 4096]).unwrap();
        }
        let used: usize = s.shards.iter().map(|sh| sh.lock().unwrap().bytes).sum();
        assert!(used <= cap, "{used} > {cap}");
        // The newest key survived.
        assert!(s.exists("key-9999").unwrap());
        // What `/metrics` reports: every key written is stored or evicted.
        let usage = s.usage();
        assert_eq!(usage.bytes, used as u64);
        assert_eq!(usage.keys + usage.evictions, 10_000);
    }

    #[test]
    fn idle_keys_expire() {
        let s = MemoryStore::new(1 << 20, Duration::from_millis(20));
        s.set("k", b"v".to_vec()).unwrap();
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(s.get("k").unwrap(), None);
        assert!(s.keys(None, 10).unwrap().is_empty());
    }
}
