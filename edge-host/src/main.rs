//! edge-host: the edgeshop PoP runtime. Serves a Spin app (`spin.toml`)
//! on wasmtime, one instance per PoP.

mod access;
mod app;
mod bindings;
mod capabilities;
mod compiled;
mod instance;
mod limits;
mod metrics;
mod server;

use anyhow::{Context, Result};
use clap::Parser;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Parser)]
// A flag given twice takes the last value, so a wrapper can set defaults
// its caller overrides.
#[command(
    name = "edge-host",
    about = "Serve a Spin app at an edgeshop PoP",
    args_override_self = true
)]
struct Args {
    /// The Spin manifest to serve.
    #[arg(long, default_value = "spin.toml")]
    manifest: PathBuf,
    /// Address to listen on; port 0 picks a free port (printed on stdout).
    #[arg(long, default_value = "127.0.0.1:3000")]
    listen: std::net::SocketAddr,
    /// This PoP's name, reported by the health endpoint and in logs.
    #[arg(long, default_value = "local")]
    pop: String,
    /// A sqlite database label and its file, e.g. `catalog=./catalog.db`.
    #[arg(long = "sqlite", value_parser = parse_label_path)]
    sqlite: Vec<(String, PathBuf)>,
    /// A sqlite label served by an embedded replica of a libSQL primary,
    /// e.g. `catalog=http://127.0.0.1:8080/db/catalog` (or a Turso URL).
    #[arg(long = "replica", value_parser = parse_label_url)]
    replica: Vec<(String, String)>,
    /// A sqlite label used remotely over Hrana, every query a round trip
    /// to the primary (Spin's `libsql` type), e.g. `catalog=URL`.
    #[arg(long = "remote", value_parser = parse_label_url)]
    remote: Vec<(String, String)>,
    /// Directory for replica files (one subdirectory per label).
    #[arg(long, default_value = ".edgeshop/replicas")]
    replica_dir: PathBuf,
    /// Bearer token for the primary. A label whose primary wants a token
    /// of its own (sqld with a key per database) takes it from
    /// `EDGESHOP_PRIMARY_TOKEN_<LABEL>` (`..._CATALOG`) instead.
    #[arg(
        long,
        env = "EDGESHOP_PRIMARY_TOKEN",
        hide_env_values = true,
        default_value = ""
    )]
    primary_token: String,
    /// Time between replica pulls while no push stream is up, in
    /// milliseconds.
    #[arg(long, default_value_t = 100)]
    sync_interval_ms: u64,
    /// Follow no push stream: pull on the interval only. (A primary that
    /// does not push is noticed without it.)
    #[arg(long)]
    pull_only: bool,
    /// Simulated extra round-trip time to the primary, in milliseconds.
    #[arg(long, default_value_t = 0)]
    origin_delay_ms: u64,
    /// A PEM file of CA certificates an `https` origin's certificate may
    /// chain to, beside the web PKI's roots (an origin with a private CA):
    /// trusted for replication, Hrana and components' outbound calls.
    #[arg(long, value_name = "FILE")]
    origin_ca: Option<PathBuf>,
    /// A TOML file of application variable values (`name = "value"`),
    /// looked up before `SPIN_VARIABLE_*` and re-read when it changes, so
    /// keys can be rotated without a restart.
    #[arg(long)]
    variables_file: Option<PathBuf>,
    /// What the PoP's database token may do (`cdn-config/db-permissions.toml`,
    /// built in): a replica's write is checked against the `edge` grant
    /// before it is sent, as our origin checks it again on arrival (sqld,
    /// which grants whole databases, does not).
    #[arg(long, value_name = "FILE")]
    db_permissions: Option<PathBuf>,
    /// Keep compiled components here, so restarts skip compilation; they
    /// are mapped from these files, so an idle PoP holds only the code it
    /// has run.
    #[arg(long)]
    cache_dir: Option<PathBuf>,
    /// The deny adapter component, wired in place of what a middleware
    /// does not inherit [default: components/deny.wasm beside the
    /// directory of this binary, where `cargo xtask build` puts it].
    #[arg(long)]
    deny_adapter: Option<PathBuf>,
    /// Longest a guest may take to answer, in milliseconds.
    #[arg(long, default_value_t = 10_000)]
    request_timeout_ms: u64,
    /// Longest a client may take to send a request's header section, or
    /// to start its next request on a kept-alive connection, in seconds.
    #[arg(long, default_value_t = 20)]
    header_read_timeout_secs: u64,
    /// Connections held at once; a connection past it is answered 503 and
    /// closed (lowered to fit the open-files limit).
    #[arg(long, default_value_t = 4096)]
    max_connections: usize,
    /// Connections held at once from one client address (an IPv6 client
    /// is its /64); past it, the same.
    #[arg(long, default_value_t = 128)]
    max_connections_per_client: usize,
    /// A peer (the front door) whose connections carry many clients, so
    /// only the total bounds them. Repeat for several.
    #[arg(long = "trusted-proxy", value_name = "IP")]
    trusted_proxies: Vec<std::net::IpAddr>,
    /// Linear memory limit per guest instance, in MiB.
    #[arg(long, default_value_t = 64)]
    guest_memory_mib: usize,
    /// Largest request body accepted, in bytes.
    #[arg(long, default_value_t = 1 << 20)]
    max_body_bytes: u64,
    /// Guest instances that may exist at once, across all components
    /// (each reserves its memory limit). Requests beyond them wait.
    #[arg(long, default_value_t = 200)]
    max_instances: u32,
    /// Write a perf map (`/tmp/perf-PID.map`) of compiled guest code, so
    /// `perf` names guest functions (`cargo xtask profile` sets it).
    #[arg(long)]
    perf_map: bool,
}

fn parse_label_path(s: &str) -> Result<(String, PathBuf), String> {
    let (label, path) = s
        .split_once('=')
        .ok_or_else(|| format!("expected LABEL=PATH, got {s:?}"))?;
    Ok((label.to_string(), PathBuf::from(path)))
}

fn parse_label_url(s: &str) -> Result<(String, String), String> {
    let (label, url) = s
        .split_once('=')
        .ok_or_else(|| format!("expected LABEL=URL, got {s:?}"))?;
    Ok((label.to_string(), url.trim_end_matches('/').to_string()))
}

// A PoP allocates and frees on every request (hyper's buffers, header
// maps, wasmtime's per-call tables): glibc's malloc was a tenth of a
// cache hit's samples, and with mimalloc a hit costs 7-13% less CPU
// (docs/benchmarks.md, "The edge host's allocator").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> Result<()> {
    // wasmtime makes an error value on the hot path (every finished guest
    // task disposes its fiber with one), and with RUST_BACKTRACE set each
    // would capture a backtrace: a third of a composed chain's time in a
    // profile. Errors need no backtrace here; panics still print theirs.
    if std::env::var_os("RUST_LIB_BACKTRACE").is_none() {
        // SAFETY: first thing in main, before any other thread exists.
        #[allow(unsafe_code)]
        unsafe {
            std::env::set_var("RUST_LIB_BACKTRACE", "0");
        }
    }
    // The `libsql` client's gRPC replication logs every pull's handshake
    // at info (ten a second per replica against sqld).
    // The access log is off unless asked for:
    // `EDGESHOP_LOG=info,edge_host::access=info`.
    let _telemetry = edgeshop_telemetry::init(
        "edgeshop-edge-host",
        "info,edge_host::access=off,wasmtime_wasi_http=warn,libsql::replication=warn",
    );
    let args = Args::parse();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run(args))
}

async fn run(args: Args) -> Result<()> {
    let limits = limits::Limits {
        request_timeout: Duration::from_millis(args.request_timeout_ms),
        header_read_timeout: Duration::from_secs(args.header_read_timeout_secs.max(1)),
        guest_memory_bytes: args.guest_memory_mib << 20,
        max_request_body_bytes: args.max_body_bytes,
        max_instances: args.max_instances.max(1),
        connections: admission::Limits {
            total: args.max_connections.max(1),
            per_client: args.max_connections_per_client.max(1),
            trusted: args.trusted_proxies.clone(),
        },
        ..limits::Limits::default()
    };
    // Whom the origin must prove it is: the web PKI's roots, and the
    // operator's CA for a private certificate; for replication, Hrana and
    // the checkout gateway's calls alike.
    let operator_roots = match &args.origin_ca {
        Some(path) => admission::tls::read_certificates(path).context("--origin-ca")?,
        None => Vec::new(),
    };
    let origin_tls = replica::tls::client_config(&operator_roots).context("--origin-ca")?;
    let outbound = capabilities::outbound::Sender::new(
        admission::tls::client_config(&operator_roots).context("--origin-ca")?,
    );
    let write_grant = {
        let text = match &args.db_permissions {
            Some(path) => std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?,
            None => SHIPPED_PERMISSIONS.to_string(),
        };
        let permissions = db_permissions::Permissions::parse(&text).context("--db-permissions")?;
        std::sync::Arc::new(
            permissions
                .grant("edge")
                .context("--db-permissions")?
                .clone(),
        )
    };
    let options = app::HostOptions {
        manifest: args.manifest.clone(),
        sqlite: args.sqlite.into_iter().collect::<BTreeMap<_, _>>(),
        remote: args
            .remote
            .iter()
            .map(|(label, url)| {
                (
                    label.clone(),
                    (url.clone(), label_token(label, &args.primary_token)),
                )
            })
            .collect(),
        origin_delay: Duration::from_millis(args.origin_delay_ms),
        origin_tls: origin_tls.clone(),
        outbound,
        variables_file: args.variables_file.clone(),
        write_grant: (!args.replica.is_empty()).then_some(write_grant),
        cache_dir: args.cache_dir.clone(),
        deny_adapter: args.deny_adapter.clone(),
        limits: limits.clone(),
        guests: metrics::GuestMetrics::default(),
    };
    let engine = app::engine(&limits, args.perf_map)?;
    let mut replicas = BTreeMap::new();
    for (label, url) in &args.replica {
        let config = replica::Config {
            label: label.clone(),
            dir: args.replica_dir.join(label),
            url: url.clone(),
            token: label_token(label, &args.primary_token),
            interval: Duration::from_millis(args.sync_interval_ms.max(1)),
            push: !args.pull_only,
            delay: Duration::from_millis(args.origin_delay_ms),
            tls: origin_tls.clone(),
        };
        let r = replica::Replica::start(config)
            .await
            .with_context(|| format!("starting the {label} replica"))?;
        replicas.insert(label.clone(), r);
    }
    let loaded = app::load(&options, &replicas, &engine).await?;
    // Loading compiled or mapped every component and freed most of what
    // it took; hand that back now rather than when this thread next
    // allocates, which on an idle PoP is never.
    #[allow(unsafe_code)]
    // SAFETY: takes no pointers; safe to call from any thread at any time.
    unsafe {
        libmimalloc_sys::mi_collect(true)
    };

    // The epoch clock behind every guest deadline.
    let ticker = engine.clone();
    let tick = limits.epoch_tick;
    std::thread::Builder::new()
        .name("epoch".into())
        .spawn(move || {
            loop {
                std::thread::sleep(tick);
                ticker.increment_epoch();
            }
        })?;

    let listener =
        admission::bind(args.listen).with_context(|| format!("binding {}", args.listen))?;
    let addr = listener.local_addr()?;
    // Machine-readable: tests and `cargo xtask up` read this line.
    println!("edge-host {} listening on http://{addr}", args.pop);
    std::io::stdout().flush()?;
    tracing::info!(pop = %args.pop, %addr, app = %loaded.name, "serving");

    let (tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutdown requested");
        let _ = tx.send(true);
    });
    server::Server::new(loaded, limits, args.pop, options.guests.clone())
        .serve(listener, rx)
        .await?;
    instance::begin_shutdown();
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// The reviewed permission file, built in (as the origin's).
const SHIPPED_PERMISSIONS: &str = include_str!("../../cdn-config/db-permissions.toml");

/// The token for `label`'s primary: `EDGESHOP_PRIMARY_TOKEN_<LABEL>` when
/// set, else the one for every primary.
fn label_token(label: &str, default: &str) -> String {
    let var = format!(
        "EDGESHOP_PRIMARY_TOKEN_{}",
        label.to_ascii_uppercase().replace('-', "_")
    );
    std::env::var(var)
        .ok()
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| default.to_string())
}
