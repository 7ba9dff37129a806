//! What a PoP reports at `/metrics`: requests by route, guest instances
//! and failures, what the cache and the rate limiter decided, its
//! key-value stores and its replicas.
//!
//! The cache and the rate limiter are guests, so the host reads their
//! decisions where they leave a trace, at no cost to the guests: the
//! cache's from `Cache-Status` (RFC 9211) on the answer, the limiter's
//! from its `ratelimit` store ([`count_decisions`]). The answer would not
//! do for the limiter: a `near-limit` policy leaves its fields off
//! answers far from the limit, and a 429 from the app behind it (the
//! sign-in throttle's) carries the fields of a request it admitted.

use crate::capabilities::keyvalue::{KeyValueStore, KvError, MemoryStore, Versioned};
use edgeshop_telemetry::metrics::{self, Bounded, HttpMetrics, encode_rows};
use http::HeaderMap;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::registry::{Registry, Unit};
use replica::Replica;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// Distinct rate-limit policy names reported before the rest become
/// `other` (they come from guests' configuration).
const MAX_POLICIES: usize = 32;
/// Distinct route labels: the manifest's patterns, plus the host's own.
const MAX_ROUTES: usize = 256;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ComponentLabels {
    component: Arc<str>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FailureLabels {
    component: Arc<str>,
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CacheLabels {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PolicyLabels {
    policy: Arc<str>,
    decision: &'static str,
}

/// Why a guest did not answer a request.
#[derive(Debug, Clone, Copy)]
pub enum GuestFailure {
    Trap,
    Deadline,
    /// No instance slot came free.
    Capacity,
    /// Failed otherwise (an instance that could not be made, a broken
    /// body).
    Error,
}

/// The guest side: instances made and alive per component (or chain),
/// requests it failed, and the rate limiter's decisions. Cloned into
/// every component's handler.
#[derive(Clone, Debug, Default)]
pub struct GuestMetrics {
    instantiations: Family<ComponentLabels, Counter>,
    live: Family<ComponentLabels, Gauge>,
    failures: Family<FailureLabels, Counter>,
    ratelimit: Decisions,
}

/// Rate-limit decisions by policy, the policy names capped at
/// [`MAX_POLICIES`] (they come from guests' configuration).
#[derive(Clone, Debug)]
struct Decisions {
    counts: Family<PolicyLabels, Counter>,
    policies: Arc<Bounded>,
    counting: bool,
}

impl Default for Decisions {
    fn default() -> Self {
        Decisions {
            counts: Family::default(),
            policies: Arc::new(Bounded::new(MAX_POLICIES)),
            counting: counting(),
        }
    }
}

impl Decisions {
    fn count(&self, policy: &str, decision: &'static str) {
        if self.counting {
            self.counts
                .get_or_create(&PolicyLabels {
                    policy: self.policies.label(policy),
                    decision,
                })
                .inc();
        }
    }
}

/// Whether requests are counted: `EDGESHOP_METRICS=off` stops it, only
/// for measuring what counting costs (`cargo xtask bench`).
fn counting() -> bool {
    std::env::var("EDGESHOP_METRICS").map_or(true, |v| v != "off")
}

/// The PoP's `ratelimit` store as a component is granted it, counting
/// the limiter's decisions under the policy each key names
/// (`ratelimit-core`'s limiter reads a key's TAT, then writes the new one
/// to admit or gives the read up to refuse): a compare-and-swap that
/// lands is an admission, a read given up unwritten a refusal, and a lost
/// race neither (the limiter decides again on a fresh read). The read
/// given up after the limiter's sixteenth lost race in a row counts as a
/// refusal whatever the policy then does; too rare to count apart.
pub fn count_decisions(
    store: Arc<dyn KeyValueStore>,
    guests: &GuestMetrics,
) -> Arc<dyn KeyValueStore> {
    Arc::new(CountingDecisions {
        store,
        decisions: guests.ratelimit.clone(),
    })
}

struct CountingDecisions {
    store: Arc<dyn KeyValueStore>,
    decisions: Decisions,
}

impl KeyValueStore for CountingDecisions {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        self.store.get(key)
    }
    fn set(&self, key: &str, value: Vec<u8>) -> Result<(), KvError> {
        self.store.set(key, value)
    }
    fn delete(&self, key: &str) -> Result<(), KvError> {
        self.store.delete(key)
    }
    fn exists(&self, key: &str) -> Result<bool, KvError> {
        self.store.exists(key)
    }
    fn keys(&self, after: Option<&str>, limit: usize) -> Result<Vec<String>, KvError> {
        self.store.keys(after, limit)
    }
    fn get_versioned(&self, key: &str) -> Result<Versioned, KvError> {
        self.store.get_versioned(key)
    }
    fn swap_if_version(&self, key: &str, version: u64, value: Vec<u8>) -> Result<bool, KvError> {
        let swapped = self.store.swap_if_version(key, version, value)?;
        if swapped && let Some(policy) = ratelimit_core::limiter::policy_of(key) {
            self.decisions.count(policy, "admit");
        }
        Ok(swapped)
    }
    fn increment(&self, key: &str, delta: i64) -> Result<i64, KvError> {
        self.store.increment(key, delta)
    }
    fn read_given_up(&self, key: &str) {
        if let Some(policy) = ratelimit_core::limiter::policy_of(key) {
            self.decisions.count(policy, "refuse");
        }
    }
}

impl GuestMetrics {
    fn register(&self, registry: &mut Registry) {
        registry.register(
            "guest_instantiations",
            "Guest instances created, by component or composed chain",
            self.instantiations.clone(),
        );
        registry.register(
            "guest_instances",
            "Guest instances alive now (serving or idle in the pool)",
            self.live.clone(),
        );
        registry.register(
            "ratelimit_decisions",
            "Rate-limit decisions by policy: admit or refuse",
            self.ratelimit.counts.clone(),
        );
        registry.register(
            "guest_failures",
            "Requests a guest failed: trapped, overran its deadline, found no instance slot, or other errors",
            self.failures.clone(),
        );
    }

    pub fn instantiated(&self, component: &str) {
        let labels = ComponentLabels {
            component: component.into(),
        };
        self.instantiations.get_or_create(&labels).inc();
        self.live.get_or_create(&labels).inc();
    }

    pub fn dropped(&self, component: &str) {
        self.live
            .get_or_create(&ComponentLabels {
                component: component.into(),
            })
            .dec();
    }

    pub fn failed(&self, component: &str, failure: GuestFailure) {
        let kind = match failure {
            GuestFailure::Trap => "trap",
            GuestFailure::Deadline => "deadline",
            GuestFailure::Capacity => "capacity",
            GuestFailure::Error => "error",
        };
        self.failures
            .get_or_create(&FailureLabels {
                component: component.into(),
                kind,
            })
            .inc();
    }
}

/// Every metric of one PoP.
#[derive(Debug)]
pub struct PopMetrics {
    registry: Registry,
    http: HttpMetrics,
    routes: Bounded,
    cache: Family<CacheLabels, Counter>,
    collapsed: Counter,
    /// See [`counting`].
    counting: bool,
}

impl PopMetrics {
    pub fn new(
        guests: &GuestMetrics,
        replicas: Vec<Arc<Replica>>,
        stores: BTreeMap<String, Arc<MemoryStore>>,
    ) -> PopMetrics {
        let mut registry = metrics::registry();
        let ours = registry.sub_registry_with_prefix(metrics::PREFIX);
        let http = HttpMetrics::register(ours);
        guests.register(ours);
        let cache = Family::<CacheLabels, Counter>::default();
        ours.register(
            "cache_requests",
            "Requests through the edge cache by result (hit, stale, miss, bypass, refused)",
            cache.clone(),
        );
        let collapsed = Counter::default();
        ours.register(
            "cache_collapsed",
            "Requests that waited for another request's fetch of the same key",
            collapsed.clone(),
        );
        ours.register_collector(Box::new(State { replicas, stores }));
        PopMetrics {
            registry,
            http,
            routes: Bounded::new(MAX_ROUTES),
            cache,
            collapsed,
            counting: counting(),
        }
    }

    /// Counts one answered request: `route` is the manifest's pattern, or
    /// the host's own name for what it answered itself.
    pub fn observe(&self, route: &str, status: u16, headers: &HeaderMap, elapsed: Duration) {
        if !self.counting {
            return;
        }
        self.http
            .observe(&self.routes.label(route), status, elapsed);
        if let Some((observed, collapsed)) = headers
            .get("cache-status")
            .and_then(|v| v.to_str().ok())
            .and_then(cache_core::status::Observed::from_field)
        {
            self.cache
                .get_or_create(&CacheLabels {
                    result: observed.as_str(),
                })
                .inc();
            if collapsed {
                self.collapsed.inc();
            }
        }
    }

    pub fn encode(&self) -> String {
        metrics::encode(&self.registry)
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DbLabels {
    db: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StoreLabels {
    store: String,
}

/// What is read at scrape time: replicas' positions and lag, stores' use.
struct State {
    replicas: Vec<Arc<Replica>>,
    stores: BTreeMap<String, Arc<MemoryStore>>,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State").finish_non_exhaustive()
    }
}

impl Collector for State {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let statuses: Vec<_> = self.replicas.iter().map(|r| r.status()).collect();
        let db = |s: &replica::Status| DbLabels {
            db: s.label.clone(),
        };
        let gauges = |f: &dyn Fn(&replica::Status) -> Option<i64>| {
            statuses
                .iter()
                .filter_map(|s| Some((db(s), ConstGauge::new(f(s)?))))
                .collect::<Vec<_>>()
        };
        let counters = |f: &dyn Fn(&replica::Status) -> u64| {
            statuses
                .iter()
                .map(|s| (db(s), ConstCounter::new(f(s))))
                .collect::<Vec<_>>()
        };
        let e = &mut encoder;
        encode_rows(
            e,
            "replica_ready",
            "1 once the replica has a complete local copy",
            None,
            MetricType::Gauge,
            &gauges(&|s| Some(i64::from(s.bootstrapped))),
        )?;
        encode_rows(
            e,
            "replica_generation",
            "Generation of the replica's applied position",
            None,
            MetricType::Gauge,
            &gauges(&|s| s.position.map(|p| i64::from(p.generation))),
        )?;
        encode_rows(
            e,
            "replica_frame",
            "Frame of the replica's applied position within its generation",
            None,
            MetricType::Gauge,
            &gauges(&|s| s.position.map(|p| i64::from(p.frame))),
        )?;
        encode_rows(
            e,
            "replica_frames_behind",
            "Frames the replica lacks of the primary's newest known position",
            None,
            MetricType::Gauge,
            &gauges(&|s| s.frames_behind.map(|n| n as i64)),
        )?;
        let lag: Vec<_> = statuses
            .iter()
            .filter_map(|s| Some((db(s), ConstGauge::new(s.lag_ms? as f64 / 1000.0))))
            .collect();
        encode_rows(
            e,
            "replica_lag",
            "Time since the replica last held the primary's newest position",
            Some(&Unit::Seconds),
            MetricType::Gauge,
            &lag,
        )?;
        encode_rows(
            e,
            "replica_syncs",
            "Pulls from the primary that succeeded",
            None,
            MetricType::Counter,
            &counters(&|s| s.syncs),
        )?;
        encode_rows(
            e,
            "replica_sync_failures",
            "Pulls from the primary that failed",
            None,
            MetricType::Counter,
            &counters(&|s| s.failed_syncs),
        )?;
        encode_rows(
            e,
            "replica_bootstraps",
            "Fresh copies of the database the replica started over from",
            None,
            MetricType::Counter,
            &counters(&|s| s.bootstraps),
        )?;
        encode_rows(
            e,
            "replica_pushed",
            "1 while a push stream from the primary is up",
            None,
            MetricType::Gauge,
            &gauges(&|s| Some(i64::from(s.pushed))),
        )?;
        let usage: Vec<_> = self
            .stores
            .iter()
            .map(|(label, s)| {
                (
                    StoreLabels {
                        store: label.clone(),
                    },
                    s.usage(),
                )
            })
            .collect();
        let rows = |f: &dyn Fn(&crate::capabilities::keyvalue::Usage) -> i64| {
            usage
                .iter()
                .map(|(l, u)| (l.clone(), ConstGauge::new(f(u))))
                .collect::<Vec<_>>()
        };
        encode_rows(
            e,
            "kv_used",
            "Bytes a key-value store holds, as charged against its capacity",
            Some(&Unit::Bytes),
            MetricType::Gauge,
            &rows(&|u| u.bytes as i64),
        )?;
        encode_rows(
            e,
            "kv_keys",
            "Keys a key-value store holds",
            None,
            MetricType::Gauge,
            &rows(&|u| u.keys as i64),
        )?;
        let evictions: Vec<_> = usage
            .iter()
            .map(|(l, u)| (l.clone(), ConstCounter::new(u.evictions)))
            .collect();
        encode_rows(
            e,
            "kv_evictions",
            "Entries a key-value store dropped to make room",
            None,
            MetricType::Counter,
            &evictions,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limiters_decisions_are_read_from_its_store_not_its_answers() {
        let guests = GuestMetrics::default();
        let pop = PopMetrics::new(&guests, Vec::new(), BTreeMap::new());
        let memory = Arc::new(MemoryStore::new(1 << 20, Duration::from_secs(60)));
        let store = count_decisions(memory, &guests);
        let key = ratelimit_core::limiter::counter_key("browse", "ip:192.0.2.1");
        // Two admissions: each lands its swap at the version it read.
        for _ in 0..2 {
            let read = store.get_versioned(&key).unwrap();
            assert!(
                store
                    .swap_if_version(&key, read.version, b"t".to_vec())
                    .unwrap()
            );
        }
        // A lost race is decided again, so it is neither; nor is any other
        // write, or a key that names no policy.
        assert!(!store.swap_if_version(&key, 0, b"t".to_vec()).unwrap());
        store.set(&key, b"t".to_vec()).unwrap();
        assert!(store.swap_if_version("unkeyed", 0, b"t".to_vec()).unwrap());
        store.read_given_up("unkeyed");
        // One refusal: a read given up.
        store.read_given_up(&key);
        // A 429 the app sent through the limiter is no refusal of its.
        let mut fields = HeaderMap::new();
        fields.insert(
            "ratelimit-policy",
            "\"browse\";q=1200;w=60".parse().unwrap(),
        );
        pop.observe("/...", 429, &fields, Duration::ZERO);
        pop.observe("/...", 200, &fields, Duration::ZERO);
        let text = pop.encode();
        let value = |decision: &str| {
            let row = format!(
                "edgeshop_ratelimit_decisions_total{{policy=\"browse\",decision=\"{decision}\"}} "
            );
            text.lines()
                .find_map(|l| l.strip_prefix(&row))
                .unwrap_or_else(|| panic!("no {decision} row in\n{text}"))
                .to_string()
        };
        assert_eq!(value("admit"), "2");
        assert_eq!(value("refuse"), "1");
    }
}
