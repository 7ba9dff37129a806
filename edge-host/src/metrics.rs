//! What a PoP reports at `/metrics`: requests by route, guest instances
//! and failures, what the cache and the rate limiter decided, its
//! key-value stores and its replicas.
//!
//! The cache and the rate limiter are guests, so the host reads their
//! decisions where a client would, from the response: `Cache-Status` (RFC
//! 9211) and `RateLimit-Policy`. That keeps the count right for any
//! component that speaks those fields and costs the guests nothing.

use crate::capabilities::keyvalue::MemoryStore;
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
/// and requests it failed. Cloned into every component's handler.
#[derive(Clone, Debug, Default)]
pub struct GuestMetrics {
    instantiations: Family<ComponentLabels, Counter>,
    live: Family<ComponentLabels, Gauge>,
    failures: Family<FailureLabels, Counter>,
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
    ratelimit: Family<PolicyLabels, Counter>,
    policies: Bounded,
    /// `EDGESHOP_METRICS=off` stops counting requests: only for
    /// measuring what counting costs (`cargo xtask bench`).
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
        let ratelimit = Family::<PolicyLabels, Counter>::default();
        ours.register(
            "ratelimit_decisions",
            "Rate-limit decisions by policy: admit or refuse",
            ratelimit.clone(),
        );
        ours.register_collector(Box::new(State { replicas, stores }));
        PopMetrics {
            registry,
            http,
            routes: Bounded::new(MAX_ROUTES),
            cache,
            collapsed,
            ratelimit,
            policies: Bounded::new(MAX_POLICIES),
            counting: std::env::var("EDGESHOP_METRICS").map_or(true, |v| v != "off"),
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
        if let Some(policy) = headers
            .get("ratelimit-policy")
            .and_then(|v| v.to_str().ok())
            .and_then(ratelimit_core::headers::policy_name)
        {
            self.ratelimit
                .get_or_create(&PolicyLabels {
                    policy: self.policies.label(policy),
                    decision: if status == 429 { "refuse" } else { "admit" },
                })
                .inc();
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
