//! What the origin reports at `/metrics`: requests by route, saga steps by
//! outcome, the payment breaker, the outbox, Hrana streams and each
//! replicated primary's position and push streams.

use crate::Origin;
use edgeshop_telemetry::metrics::{self, HttpMetrics, encode_rows};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::registry::Registry;
use std::sync::{Arc, Weak};
use std::time::Duration;

/// Route labels: what part of the origin answered.
pub mod route {
    pub const REPLICATION: &str = "replication";
    pub const HRANA: &str = "hrana";
    pub const VENDOR: &str = "vendor";
    pub const CHECKOUT: &str = "checkout";
    pub const WEBHOOK: &str = "webhook";
    pub const HEALTH: &str = "health";
    pub const METRICS: &str = "metrics";
    pub const UNMATCHED: &str = "unmatched";
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StepLabels {
    step: &'static str,
    outcome: &'static str,
}

/// The saga's counters, kept by [`crate::checkout::Checkout`].
#[derive(Clone, Debug, Default)]
pub struct SagaMetrics {
    steps: Family<StepLabels, Counter>,
    published: Counter,
    pending: Gauge,
}

impl SagaMetrics {
    /// One step run: `outcome` is `done`, `retrying`, `gave up` or
    /// `failed`, as the order's history says.
    pub fn step(&self, step: &'static str, outcome: &'static str) {
        self.steps
            .get_or_create(&StepLabels { step, outcome })
            .inc();
    }

    /// A poll of the outbox found `pending` events; `published` of them
    /// were delivered.
    pub fn outbox(&self, pending: usize, published: usize) {
        self.pending.set(pending as i64);
        self.published.inc_by(published as u64);
    }

    fn register(&self, registry: &mut Registry) {
        registry.register(
            "saga_steps",
            "Saga steps run, by step and outcome",
            self.steps.clone(),
        );
        registry.register(
            "outbox_published",
            "Outbox events delivered",
            self.published.clone(),
        );
        registry.register(
            "outbox_pending",
            "Unpublished outbox events the last poll found (at most one batch of 100)",
            self.pending.clone(),
        );
    }
}

#[derive(Debug)]
pub struct OriginMetrics {
    registry: Registry,
    http: HttpMetrics,
}

impl OriginMetrics {
    /// `origin` is read at scrape time; a weak reference, as the origin
    /// holds these metrics.
    pub fn new(saga: Option<&SagaMetrics>, origin: Weak<Origin>) -> OriginMetrics {
        let mut registry = metrics::registry();
        let ours = registry.sub_registry_with_prefix(metrics::PREFIX);
        let http = HttpMetrics::register(ours);
        if let Some(saga) = saga {
            saga.register(ours);
        }
        ours.register_collector(Box::new(State(origin)));
        OriginMetrics { registry, http }
    }

    pub fn observe(&self, route: &'static str, code: u16, elapsed: Duration) {
        self.http.observe(&ROUTES.label(route), code, elapsed);
    }

    pub fn encode(&self) -> String {
        metrics::encode(&self.registry)
    }
}

/// Route labels made once, so a request allocates none.
struct Routes([Arc<str>; 8]);

impl Routes {
    fn label(&self, route: &str) -> Arc<str> {
        self.0
            .iter()
            .find(|r| &***r == route)
            .cloned()
            .unwrap_or_else(|| self.0[7].clone())
    }
}

static ROUTES: std::sync::LazyLock<Routes> = std::sync::LazyLock::new(|| {
    use route::*;
    Routes(
        [
            REPLICATION,
            HRANA,
            VENDOR,
            CHECKOUT,
            WEBHOOK,
            HEALTH,
            METRICS,
            UNMATCHED,
        ]
        .map(Arc::from),
    )
});

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DbLabels {
    db: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BreakerLabels {
    state: &'static str,
}

struct State(Weak<Origin>);

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("origin state")
    }
}

impl Collector for State {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(origin) = self.0.upgrade() else {
            return Ok(());
        };
        let e = &mut encoder;
        encode_rows(
            e,
            "hrana_streams",
            "Hrana streams open now",
            None,
            MetricType::Gauge,
            &[(
                [("", ""); 0],
                ConstGauge::new(origin.hrana.open_streams() as i64),
            )],
        )?;
        let positions: Vec<_> = origin
            .primaries
            .iter()
            .map(|(db, p)| (DbLabels { db: db.clone() }, p.position()))
            .collect();
        encode_rows(
            e,
            "primary_generation",
            "Generation of a replicated primary's log",
            None,
            MetricType::Gauge,
            &positions
                .iter()
                .map(|(l, p)| (l.clone(), ConstGauge::new(i64::from(p.generation))))
                .collect::<Vec<_>>(),
        )?;
        encode_rows(
            e,
            "primary_frame",
            "Frames shipped in the primary's current generation",
            None,
            MetricType::Gauge,
            &positions
                .iter()
                .map(|(l, p)| (l.clone(), ConstGauge::new(i64::from(p.frame))))
                .collect::<Vec<_>>(),
        )?;
        encode_rows(
            e,
            "push_streams",
            "Replication push streams held open to PoPs",
            None,
            MetricType::Gauge,
            &[([("", ""); 0], ConstGauge::new(origin.pushes.held() as i64))],
        )?;
        if let Some(checkout) = &origin.checkout {
            let now = checkout.breaker();
            let states = ["closed", "open", "half-open"].map(|state| {
                (
                    BreakerLabels { state },
                    ConstGauge::new(i64::from(state == now)),
                )
            });
            encode_rows(
                e,
                "payments_breaker",
                "1 for the payment provider's circuit breaker's current state",
                None,
                MetricType::Gauge,
                &states,
            )?;
            encode_rows(
                e,
                "sagas_taken_over",
                "Sagas taken over from an origin whose lease ran out",
                None,
                MetricType::Counter,
                &[([("", ""); 0], ConstCounter::new(checkout.takeovers()))],
            )?;
        }
        Ok(())
    }
}
