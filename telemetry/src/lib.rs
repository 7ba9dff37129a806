//! Logging and metrics shared by every edgeshop binary, so they all read the
//! same `EDGESHOP_LOG` filter, write logs to stderr (stdout carries each
//! server's machine-readable `listening on` line) and serve the same
//! `/metrics`.

pub mod metrics;

/// Installs the global subscriber. `default` is the filter used when
/// `EDGESHOP_LOG` is unset, in `tracing_subscriber::EnvFilter` syntax.
/// `EDGESHOP_LOG_FORMAT=json` writes one JSON object per event instead of
/// text, for a log shipper.
pub fn init(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("EDGESHOP_LOG")
        .unwrap_or_else(|_| default.into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if std::env::var("EDGESHOP_LOG_FORMAT").is_ok_and(|f| f == "json") {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .init();
    } else {
        builder.init();
    }
}
