//! The payment provider simulator for the embedded default: a Stripe-shaped
//! API on one port, with injectable faults (`--decline-percent`, ...; or
//! `POST /_sim/faults` at run time) and signed webhooks.

use anyhow::Result;
use clap::Parser;
use payments::sim::{Faults, Options, Simulator};
use std::io::Write;
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(name = "edgeshop-paysim")]
struct Args {
    #[arg(long, default_value = "127.0.0.1:8420")]
    listen: std::net::SocketAddr,
    /// Where events are POSTed (the origin's webhook endpoint).
    #[arg(long)]
    webhook_url: Option<String>,
    /// Signs webhook deliveries (`whsec_...`).
    #[arg(
        long,
        env = "EDGESHOP_WEBHOOK_SECRET",
        hide_env_values = true,
        default_value = ""
    )]
    webhook_secret: String,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    #[arg(long, default_value_t = 0)]
    decline_percent: u32,
    #[arg(long, default_value_t = 0)]
    error_percent: u32,
    #[arg(long, default_value_t = 0)]
    timeout_percent: u32,
    /// How late a "timed out" call answers.
    #[arg(long, default_value_t = 10_000)]
    hang_ms: u64,
    #[arg(long, default_value_t = 0)]
    duplicate_webhook_percent: u32,
    #[arg(long, default_value_t = 0)]
    webhook_jitter_ms: u64,
    /// Authorisations whose every capture fails.
    #[arg(long, default_value_t = 0)]
    capture_fail_percent: u32,
    /// Serve HTTPS with this certificate chain (PEM), as the real API does.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The private key (PEM) for --tls-cert.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> Result<()> {
    let _telemetry = edgeshop_telemetry::init("edgeshop-paysim", "info");
    let args = Args::parse();
    anyhow::ensure!(
        args.webhook_url.is_none() || !args.webhook_secret.is_empty(),
        "--webhook-url needs a --webhook-secret to sign deliveries with"
    );
    let sim = Simulator::new(Options {
        faults: Faults {
            seed: args.seed,
            decline_percent: args.decline_percent,
            error_percent: args.error_percent,
            timeout_percent: args.timeout_percent,
            hang_ms: args.hang_ms,
            duplicate_webhook_percent: args.duplicate_webhook_percent,
            webhook_jitter_ms: args.webhook_jitter_ms,
            capture_fail_percent: args.capture_fail_percent,
        },
        webhook_url: args.webhook_url,
        webhook_secret: args.webhook_secret,
    });
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(admission::tls::acceptor(cert, key)?),
        _ => None,
    };
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    println!(
        "edgeshop-paysim listening on {scheme}://{}",
        listener.local_addr()?
    );
    std::io::stdout().flush()?;
    let serve = async {
        match tls {
            Some(tls) => sim.serve_tls(listener, tls).await,
            None => sim.serve(listener).await,
        }
    };
    tokio::select! {
        r = serve => r?,
        _ = tokio::signal::ctrl_c() => {}
    }
    Ok(())
}
