//! Prometheus metrics: one registry per process, served at [`PATH`] in the
//! OpenMetrics text format, so any Prometheus (or anything that reads its
//! format) can scrape every edgeshop process the same way.
//!
//! Label values come from bounded sets only: route patterns from a
//! manifest, status codes, names from configuration. A set that a peer
//! could grow (a guest's policy names, a database named in a URL) goes
//! through [`Bounded`], which reports values past its cap as `other`.

use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use prometheus_client;

/// Where every process serves its metrics.
pub const PATH: &str = "/metrics";
/// The OpenMetrics text format, which Prometheus asks for first.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Prefix of every metric of ours: `edgeshop_http_requests_total`.
pub const PREFIX: &str = "edgeshop";

/// A process's registry, with its resource use already in it under the
/// conventional `process_*` names. Register ours under
/// `registry.sub_registry_with_prefix(PREFIX)`.
pub fn registry() -> Registry {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(ProcessCollector));
    registry
}

/// The registry as OpenMetrics text.
pub fn encode(registry: &Registry) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail; a metric that fails to encode is a
    // bug in its encoder, and a partial page is still worth serving.
    let _ = prometheus_client::encoding::text::encode(&mut out, registry);
    out
}

/// Latency buckets in seconds: 0.5 ms doubling up to about 33 s, fine
/// enough for a cache hit and long enough for a request deadline.
pub fn latency_buckets() -> impl Iterator<Item = f64> {
    exponential_buckets(0.0005, 2.0, 17)
}

fn latency_histogram() -> Histogram {
    Histogram::new(latency_buckets())
}

/// A request's route (a bounded name, never a URL) and status code.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub route: Arc<str>,
    pub code: u16,
}

/// A request's route alone.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: Arc<str>,
}

/// The request families every HTTP server here has: a count by route and
/// status, and a latency histogram by route (time to the response head).
#[derive(Clone, Debug)]
pub struct HttpMetrics {
    requests: Family<RequestLabels, Counter>,
    duration: Family<RouteLabels, Histogram, fn() -> Histogram>,
}

impl HttpMetrics {
    pub fn register(registry: &mut Registry) -> HttpMetrics {
        let requests = Family::<RequestLabels, Counter>::default();
        let duration = Family::new_with_constructor(latency_histogram as fn() -> Histogram);
        registry.register(
            "http_requests",
            "HTTP requests answered, by route and status code",
            requests.clone(),
        );
        registry.register_with_unit(
            "http_request_duration",
            "Time from a request's arrival to its response head, by route",
            Unit::Seconds,
            duration.clone(),
        );
        HttpMetrics { requests, duration }
    }

    pub fn observe(&self, route: &Arc<str>, code: u16, elapsed: Duration) {
        self.requests
            .get_or_create(&RequestLabels {
                route: route.clone(),
                code,
            })
            .inc();
        self.duration
            .get_or_create(&RouteLabels {
                route: route.clone(),
            })
            .observe(elapsed.as_secs_f64());
    }
}

/// A label whose values are capped: the first `max` distinct values are
/// kept, any later one is reported as `other`, so a misbehaving source
/// cannot grow the label set without end.
#[derive(Debug)]
pub struct Bounded {
    seen: Mutex<HashSet<Arc<str>>>,
    max: usize,
}

impl Bounded {
    pub fn new(max: usize) -> Bounded {
        Bounded {
            seen: Mutex::new(HashSet::new()),
            max,
        }
    }

    pub fn label(&self, value: &str) -> Arc<str> {
        let mut seen = self.seen.lock().expect("label set");
        if let Some(v) = seen.get(value) {
            return v.clone();
        }
        if seen.len() >= self.max {
            return Arc::from("other");
        }
        let v: Arc<str> = Arc::from(value);
        seen.insert(v.clone());
        v
    }
}

/// Writes one family whose values are kept elsewhere (a replica's counts,
/// a pool's size), read at scrape time by a collector.
pub fn encode_rows<S: EncodeLabelSet, M: EncodeMetric>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    metric_type: MetricType,
    rows: &[(S, M)],
) -> Result<(), std::fmt::Error> {
    let mut family = encoder.encode_descriptor(name, help, unit, metric_type)?;
    for (labels, metric) in rows {
        metric.encode(family.encode_family(labels)?)?;
    }
    Ok(())
}

/// The process's own resource use, read from `/proc/self` at scrape time
/// (the names Prometheus's client libraries use).
#[derive(Debug, Default)]
struct ProcessCollector;

/// A series without labels.
const NO_LABELS: [(&str, &str); 0] = [];

/// Clock ticks per second for `/proc/self/stat`; 100 on every Linux this
/// runs on (the kernel's USER_HZ).
const TICKS_PER_SECOND: f64 = 100.0;
/// Bytes per page for `/proc/self/statm` (4 KiB on x86-64 and arm64 Linux).
const PAGE_BYTES: u64 = 4096;

impl prometheus_client::collector::Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        use prometheus_client::metrics::counter::ConstCounter;
        use prometheus_client::metrics::gauge::ConstGauge;
        if let Some(rss) = std::fs::read_to_string("/proc/self/statm")
            .ok()
            .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        {
            encode_rows(
                &mut encoder,
                "process_resident_memory",
                "Resident set size",
                Some(&Unit::Bytes),
                MetricType::Gauge,
                &[(NO_LABELS, ConstGauge::new((rss * PAGE_BYTES) as i64))],
            )?;
        }
        if let Some(ticks) = std::fs::read_to_string("/proc/self/stat")
            .ok()
            .and_then(|s| cpu_ticks(&s))
        {
            encode_rows(
                &mut encoder,
                "process_cpu",
                "User and system CPU time used",
                Some(&Unit::Seconds),
                MetricType::Counter,
                &[(
                    NO_LABELS,
                    ConstCounter::new(ticks as f64 / TICKS_PER_SECOND),
                )],
            )?;
        }
        if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
            encode_rows(
                &mut encoder,
                "process_open_fds",
                "Open file descriptors",
                None,
                MetricType::Gauge,
                &[(NO_LABELS, ConstGauge::new(fds.count() as i64))],
            )?;
        }
        Ok(())
    }
}

/// utime + stime from `/proc/self/stat`: fields 14 and 15, counted after
/// the parenthesised command name (which may itself contain spaces).
fn cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_counted_by_route_and_code_in_openmetrics_text() {
        let mut registry = registry();
        let http = HttpMetrics::register(registry.sub_registry_with_prefix(PREFIX));
        let route: Arc<str> = Arc::from("/products/:id");
        http.observe(&route, 200, Duration::from_millis(3));
        http.observe(&route, 200, Duration::from_millis(5));
        http.observe(&route, 404, Duration::from_millis(1));
        let text = encode(&registry);
        assert!(
            text.contains("edgeshop_http_requests_total{route=\"/products/:id\",code=\"200\"} 2"),
            "{text}"
        );
        assert!(text.contains("code=\"404\"} 1"), "{text}");
        assert!(
            text.contains(
                "edgeshop_http_request_duration_seconds_count{route=\"/products/:id\"} 3"
            ),
            "{text}"
        );
        // 3 ms and 5 ms both fall at or under the 8 ms bucket, 1 ms under 2 ms.
        assert!(
            text.contains("edgeshop_http_request_duration_seconds_bucket{le=\"0.008\",route=\"/products/:id\"} 3"),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    #[test]
    fn a_bounded_label_reports_values_past_its_cap_as_other() {
        let b = Bounded::new(2);
        assert_eq!(&*b.label("a"), "a");
        assert_eq!(&*b.label("b"), "b");
        assert_eq!(&*b.label("c"), "other");
        assert_eq!(&*b.label("a"), "a");
    }

    #[test]
    fn cpu_time_is_read_after_a_command_name_with_spaces() {
        let stat = "42 (a b) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 1 0 5 1000 200";
        assert_eq!(cpu_ticks(stat), Some(300));
    }

    #[test]
    fn the_process_collector_reports_this_process() {
        let text = encode(&registry());
        for name in [
            "process_resident_memory_bytes ",
            "process_cpu_seconds_total ",
            "process_open_fds ",
        ] {
            assert!(text.lines().any(|l| l.starts_with(name)), "{text}");
        }
    }
}
