//! Logging, metrics and traces shared by every edgeshop binary, so they all
//! read the same `EDGESHOP_LOG` filter, write logs to stderr (stdout carries
//! each server's machine-readable `listening on` line), serve the same
//! `/metrics`, and export spans the same way.

pub mod metrics;
pub mod trace;

use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Installs the global subscriber for the process `service` (its OTLP
/// `service.name`). `default` is the filter used when `EDGESHOP_LOG` is
/// unset, in `tracing_subscriber::EnvFilter` syntax.
/// `EDGESHOP_LOG_FORMAT=json` writes one JSON object per event instead of
/// text, for a log shipper, with the trace and span ids of the span it
/// happened in when traces are exported. Keep the guard until the process
/// ends: dropping it flushes the spans still batched.
#[must_use = "dropping the guard flushes and stops trace export"]
pub fn init(service: &str, default: &str) -> trace::Guard {
    let filter = tracing_subscriber::EnvFilter::try_from_env("EDGESHOP_LOG")
        .unwrap_or_else(|_| default.into());
    let (otel, guard) = match trace::layer(service) {
        Some((layer, guard)) => (Some(layer), guard),
        None => (None, trace::no_guard()),
    };
    let json = std::env::var("EDGESHOP_LOG_FORMAT").is_ok_and(|f| f == "json");
    trace::ids_in_logs(json);
    let registry = tracing_subscriber::registry().with(filter).with(otel);
    if json {
        registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(true)
                    .with_span_list(false)
                    .with_writer(std::io::stderr),
            )
            .init();
    } else {
        // Text lines name no span: the fmt layer would otherwise format
        // every request span's fields into a string as the span begins,
        // work for nobody while traces are exported.
        registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(std::io::stderr)
                    .with_filter(tracing_subscriber::filter::filter_fn(|meta| {
                        !meta.is_span()
                    })),
            )
            .init();
    }
    guard
}
