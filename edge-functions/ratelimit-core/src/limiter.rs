//! One request against a key's stored TAT, through a compare-and-swap
//! store: read the TAT, decide, and write the new one only if nobody else
//! wrote in between; otherwise decide again on what they wrote. Denials
//! write nothing, so a flood of refused requests costs one read each.
//! The edge host counts decisions from this shape: a swap that lands is
//! an admission, a read given up without a swap a refusal.

use crate::gcra::{Decision, Quota};
use crate::headers::{decode_tat, encode_tat};

/// The key-value store label the counters live in (`key_value_stores` in
/// `spin.toml`).
pub const STORE: &str = "ratelimit";

/// The store key holding the TAT of `budget` under `policy`. Policy names
/// have no `|` (see [`crate::policy`]), so [`policy_of`] reads it back.
pub fn counter_key(policy: &str, budget: &str) -> String {
    format!("{policy}|{budget}")
}

/// The policy a [`counter_key`] belongs to: what the edge host counts an
/// admission under when the limiter writes the key.
pub fn policy_of(counter_key: &str) -> Option<&str> {
    counter_key
        .split_once('|')
        .map(|(policy, _)| policy)
        .filter(|p| !p.is_empty())
}

/// A read: the handle a swap is conditional on, and the value (if any).
pub type Read<C> = (C, Option<Vec<u8>>);

/// A store with compare-and-swap on single keys (`wasi:keyvalue` atomics).
pub trait CasStore {
    /// A read that a later swap is conditional on.
    type Cas;
    type Error: std::fmt::Display;

    fn begin(&self, key: &str) -> Result<Read<Self::Cas>, Self::Error>;

    /// Writes `value` if the key still holds what `cas` read; otherwise
    /// returns a fresh read.
    fn swap(
        &self,
        cas: Self::Cas,
        value: Vec<u8>,
    ) -> Result<Result<(), Read<Self::Cas>>, Self::Error>;
}

/// Most decisions made for one request before giving up: each retry means
/// another request for the key won, so under fair scheduling this bounds
/// contention from this many concurrent requests per key.
pub const MAX_ATTEMPTS: u32 = 16;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LimitError {
    /// The store failed.
    Store(String),
    /// Every attempt lost a race for the key.
    Contended,
}

impl std::fmt::Display for LimitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LimitError::Store(e) => write!(f, "the counter store failed: {e}"),
            LimitError::Contended => {
                write!(f, "{MAX_ATTEMPTS} attempts each lost a race for the key")
            }
        }
    }
}

/// Decides one request for `key` at `now` (ns) and records it if admitted.
pub fn check<S: CasStore>(
    store: &S,
    key: &str,
    quota: &Quota,
    now: u64,
) -> Result<Decision, LimitError> {
    let store_err = |e: S::Error| LimitError::Store(e.to_string());
    let (mut cas, mut current) = store.begin(key).map_err(store_err)?;
    for _ in 0..MAX_ATTEMPTS {
        let decision = quota.decide(current.as_deref().and_then(decode_tat), now);
        let Decision::Allowed { tat, .. } = decision else {
            return Ok(decision);
        };
        match store.swap(cas, encode_tat(tat)).map_err(store_err)? {
            Ok(()) => return Ok(decision),
            Err((fresh, value)) => {
                cas = fresh;
                current = value;
            }
        }
    }
    Err(LimitError::Contended)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::{Cell, RefCell};
    use std::collections::HashMap;

    type Rival = Box<dyn Fn(Option<Vec<u8>>) -> Vec<u8>>;

    /// A store for fault injection: versioned values, with a rival that
    /// writes between a read and the swap `rival_writes` times, and a
    /// switch that makes every call fail.
    #[derive(Default)]
    struct Store {
        values: RefCell<HashMap<String, (u64, Vec<u8>)>>,
        rival_writes: Cell<u32>,
        rival: RefCell<Option<Rival>>,
        broken: Cell<bool>,
    }

    impl CasStore for Store {
        type Cas = (String, u64);
        type Error = &'static str;

        fn begin(&self, key: &str) -> Result<Read<Self::Cas>, &'static str> {
            if self.broken.get() {
                return Err("down");
            }
            let values = self.values.borrow();
            let (version, value) = values
                .get(key)
                .map_or((0, None), |(v, b)| (*v, Some(b.clone())));
            Ok(((key.to_string(), version), value))
        }

        fn swap(
            &self,
            (key, version): Self::Cas,
            value: Vec<u8>,
        ) -> Result<Result<(), Read<Self::Cas>>, &'static str> {
            if self.broken.get() {
                return Err("down");
            }
            if self.rival_writes.get() > 0 {
                self.rival_writes.set(self.rival_writes.get() - 1);
                let old = self.values.borrow().get(&key).map(|(_, b)| b.clone());
                let written = (self.rival.borrow().as_ref().unwrap())(old);
                let mut values = self.values.borrow_mut();
                let v = values.get(&key).map_or(0, |(v, _)| *v) + 1;
                values.insert(key.clone(), (v, written));
            }
            let mut values = self.values.borrow_mut();
            let current = values.get(&key).map_or(0, |(v, _)| *v);
            if current != version {
                let fresh = values.get(&key).map(|(_, b)| b.clone());
                return Ok(Err(((key, current), fresh)));
            }
            values.insert(key, (version + 1, value));
            Ok(Ok(()))
        }
    }

    #[test]
    fn a_lost_race_is_decided_again_on_the_winners_value() {
        let q = Quota::new(10, 10, 2).unwrap();
        let store = Store::default();
        // A rival admits one request (as this one would) before each of
        // our first two swaps: we must see its writes, not overwrite them.
        *store.rival.borrow_mut() = Some(Box::new(move |old| {
            let q = Quota::new(10, 10, 2).unwrap();
            match q.decide(old.as_deref().and_then(decode_tat), 0) {
                Decision::Allowed { tat, .. } => encode_tat(tat),
                Decision::Denied { .. } => old.unwrap(),
            }
        }));
        store.rival_writes.set(2);
        // The rival took the whole burst of 2; this request must be denied.
        let d = check(&store, "k", &q, 0).unwrap();
        assert!(!d.allowed(), "{d:?}");
    }

    #[test]
    fn endless_contention_and_a_broken_store_are_errors() {
        let q = Quota::new(1000, 1, 1000).unwrap();
        let store = Store::default();
        *store.rival.borrow_mut() = Some(Box::new(|_| encode_tat(0)));
        store.rival_writes.set(u32::MAX);
        assert_eq!(check(&store, "k", &q, 0), Err(LimitError::Contended));
        store.broken.set(true);
        assert!(matches!(
            check(&store, "k", &q, 0),
            Err(LimitError::Store(_))
        ));
    }

    #[test]
    fn keys_are_independent_and_denials_write_nothing() {
        let q = Quota::new(1, 60, 1).unwrap();
        let store = Store::default();
        assert!(check(&store, "a", &q, 0).unwrap().allowed());
        assert!(check(&store, "b", &q, 0).unwrap().allowed());
        let before = store.values.borrow().get("a").cloned();
        assert!(!check(&store, "a", &q, 0).unwrap().allowed());
        assert_eq!(store.values.borrow().get("a").cloned(), before);
    }

    #[test]
    fn a_counter_key_names_its_policy_whatever_the_budget_holds() {
        for budget in ["ip:127.0.0.1", "hdr:x-api-key:a|b|c", "acct:7", ""] {
            let key = counter_key("sign-in", budget);
            assert_eq!(policy_of(&key), Some("sign-in"), "{key}");
        }
        assert_eq!(policy_of("no-separator"), None);
        assert_eq!(policy_of("|ip:1.2.3.4"), None);
    }
}
