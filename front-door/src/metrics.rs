//! What the front door reports at `/metrics`: requests and latency per
//! PoP, failovers, each PoP's health and replication lag. PoP names come
//! from the configuration, so the label set is bounded by it.

use edgeshop_telemetry::metrics::{self, latency_buckets};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};
use std::sync::Arc;
use std::time::Duration;

/// The `pop` label of a request no PoP answered (refused at the door,
/// or none reachable).
pub const NO_POP: &str = "none";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PopLabels {
    pop: Arc<str>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    pop: Arc<str>,
    code: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CheckLabels {
    pop: Arc<str>,
    result: &'static str,
}

fn latency() -> Histogram {
    Histogram::new(latency_buckets())
}

#[derive(Debug)]
pub struct FrontDoorMetrics {
    registry: Registry,
    /// The configured PoPs' labels, made once.
    names: Vec<Arc<str>>,
    requests: Family<RequestLabels, Counter>,
    duration: Family<PopLabels, Histogram, fn() -> Histogram>,
    failovers: Family<PopLabels, Counter>,
    healthy: Family<PopLabels, Gauge>,
    checks: Family<CheckLabels, Counter>,
    lag: Family<PopLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
}

impl FrontDoorMetrics {
    pub fn new<'a>(pops: impl Iterator<Item = &'a str>) -> FrontDoorMetrics {
        let mut registry = metrics::registry();
        let ours = registry.sub_registry_with_prefix(metrics::PREFIX);
        let requests = Family::default();
        ours.register(
            "frontdoor_requests",
            "Requests through the front door, by the PoP that answered and status code",
            requests.clone(),
        );
        let duration = Family::new_with_constructor(latency as fn() -> Histogram);
        ours.register_with_unit(
            "frontdoor_request_duration",
            "Time from a request's arrival to its response head, by PoP",
            Unit::Seconds,
            duration.clone(),
        );
        let failovers = Family::default();
        ours.register(
            "frontdoor_failovers",
            "Requests moved past a PoP that refused the connection or failed mid-request",
            failovers.clone(),
        );
        let healthy = Family::<PopLabels, Gauge>::default();
        ours.register(
            "frontdoor_pop_healthy",
            "1 while the front door sends traffic to the PoP",
            healthy.clone(),
        );
        let checks = Family::default();
        ours.register(
            "frontdoor_health_checks",
            "Active health checks by PoP and result",
            checks.clone(),
        );
        let lag = Family::default();
        ours.register_with_unit(
            "frontdoor_pop_replication_lag",
            "Largest replication lag among a PoP's replicas, from its last health answer",
            Unit::Seconds,
            lag.clone(),
        );
        let names: Vec<Arc<str>> = pops.map(Arc::from).collect();
        for pop in &names {
            // Healthy until a check says otherwise, as the router assumes.
            healthy
                .get_or_create(&PopLabels { pop: pop.clone() })
                .set(1);
        }
        FrontDoorMetrics {
            registry,
            names,
            requests,
            duration,
            failovers,
            healthy,
            checks,
            lag,
        }
    }

    fn name(&self, pop: &str) -> Arc<str> {
        self.names
            .iter()
            .find(|n| &***n == pop)
            .cloned()
            .unwrap_or_else(|| Arc::from(NO_POP))
    }

    pub fn request(&self, pop: &str, code: u16, elapsed: Duration) {
        let pop = self.name(pop);
        self.requests
            .get_or_create(&RequestLabels {
                pop: pop.clone(),
                code,
            })
            .inc();
        self.duration
            .get_or_create(&PopLabels { pop })
            .observe(elapsed.as_secs_f64());
    }

    pub fn failover(&self, pop: &str) {
        self.failovers
            .get_or_create(&PopLabels {
                pop: self.name(pop),
            })
            .inc();
    }

    pub fn checked(&self, pop: &str, ok: bool) {
        self.checks
            .get_or_create(&CheckLabels {
                pop: self.name(pop),
                result: if ok { "ok" } else { "fail" },
            })
            .inc();
    }

    pub fn set_healthy(&self, pop: &str, healthy: bool) {
        self.healthy
            .get_or_create(&PopLabels {
                pop: self.name(pop),
            })
            .set(i64::from(healthy));
    }

    pub fn lag(&self, pop: &str, lag_ms: u64) {
        self.lag
            .get_or_create(&PopLabels {
                pop: self.name(pop),
            })
            .set(lag_ms as f64 / 1000.0);
    }

    pub fn encode(&self) -> String {
        metrics::encode(&self.registry)
    }
}
