//! Logging set-up shared by every edgeshop binary, so they all read the same
//! `EDGESHOP_LOG` filter and write to stderr (stdout carries each server's
//! machine-readable `listening on` line). Metrics and traces join here.

/// Installs the global subscriber. `default` is the filter used when
/// `EDGESHOP_LOG` is unset, in `tracing_subscriber::EnvFilter` syntax.
pub fn init(default: &str) {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("EDGESHOP_LOG")
                .unwrap_or_else(|_| default.into()),
        )
        .with_writer(std::io::stderr)
        .init();
}
