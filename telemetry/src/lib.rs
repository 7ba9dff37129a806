//! Logging, metrics and traces shared by every edgeshop binary, so they all
//! read the same `EDGESHOP_LOG` filter, write logs to stderr (stdout carries
//! each server's machine-readable `listening on` line), serve the same
//! `/metrics`, and export spans the same way.

pub mod metrics;
pub mod trace;

use tracing_subscriber::Layer as _;
use tracing_subscriber::filter::LevelFilter;
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
    init_with(
        service,
        Settings {
            filter: std::env::var("EDGESHOP_LOG")
                .ok()
                .filter(|f| {
                    let ok = tracing_subscriber::EnvFilter::builder().parse(f).is_ok();
                    if !ok {
                        eprintln!("EDGESHOP_LOG={f:?} is not a filter; using {default:?}");
                    }
                    ok
                })
                .unwrap_or_else(|| default.to_string()),
            json: std::env::var("EDGESHOP_LOG_FORMAT").is_ok_and(|f| f == "json"),
            export: trace::configured(),
        },
    )
}

/// What [`init`] reads from the environment.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `tracing_subscriber::EnvFilter` directives.
    pub filter: String,
    /// One JSON object per line instead of text.
    pub json: bool,
    /// Export spans over OTLP (to `OTEL_EXPORTER_OTLP_ENDPOINT`, or
    /// OpenTelemetry's default address).
    pub export: bool,
}

/// [`init`] with its settings given.
#[must_use = "dropping the guard flushes and stops trace export"]
pub fn init_with(service: &str, settings: Settings) -> trace::Guard {
    let filter = tracing_subscriber::EnvFilter::builder()
        .parse(&settings.filter)
        .unwrap_or_else(|e| {
            eprintln!(
                "the log filter {:?} is not one ({e}); using info",
                settings.filter
            );
            tracing_subscriber::EnvFilter::new("info")
        });
    // Every per-layer filter below states the global filter's most verbose
    // level as its own: a per-layer filter without a hint makes the
    // subscriber's hint "anything", and then every `trace!` (and every
    // `log::trace!` through the log bridge) in every dependency is built
    // and asked about at run time instead of skipped where it stands.
    let most = filter.max_level_hint().unwrap_or(LevelFilter::TRACE);
    let (otel, guard) = match settings
        .export
        .then(|| trace::layer(service, most))
        .flatten()
    {
        Some((layer, guard)) => (Some(layer), guard),
        None => (None, trace::no_guard()),
    };
    let json = settings.json;
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
                    .with_writer(std::io::stderr)
                    .with_filter(most),
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
                    .with_filter(
                        tracing_subscriber::filter::filter_fn(|meta| !meta.is_span())
                            .with_max_level_hint(most),
                    ),
            )
            .init();
    }
    guard
}
