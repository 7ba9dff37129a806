//! The checkout row: orders end to end through a PoP (rate limiter, auth
//! middleware, the gateway), the origin's saga and the payment simulator
//! with no injected latency. Every request is a new order under a new
//! `Idempotency-Key`, one unit of one of 200 well-stocked products.

use super::{Row, Target, measure_target, unreached_limits};
use crate::up::{Catalog, Service, edge_host_command, post_json, secret, wait_ready};
use crate::{keys, root, state_dir};
use anyhow::{Context, Result};
use std::process::Command;
use std::time::Duration;

pub fn run(
    rt: &tokio::runtime::Runtime,
    seeded: &std::path::Path,
    seconds: u64,
    connections: usize,
) -> Result<Vec<Row>> {
    let dir = state_dir().join("bench/checkout");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let catalog = dir.join("catalog.db");
    std::fs::copy(seeded, &catalog).context("copying the bench catalog")?;
    let products = rt.block_on(stocked(&catalog, 200))?;

    // The shopper's session must be live at the primary and the PoP.
    keys::bench_sessions(&dir.join("identity.db"))?;
    let webhook_secret = format!("whsec_{}", secret("webhook_secret")?);
    let mut sim = Command::new(root().join("target/release/edgeshop-paysim"));
    sim.args(["--listen", "127.0.0.1:0"])
        .env("EDGESHOP_WEBHOOK_SECRET", &webhook_secret);
    let sim = Service::start("paysim", sim)?;
    let mut origin = Command::new(root().join("target/release/edgeshop-origin"));
    origin
        .args(["--listen", "127.0.0.1:0", "--catalog"])
        .arg(&catalog)
        .arg("--orders")
        .arg(dir.join("orders.db"))
        .arg("--identity")
        .arg(dir.join("identity.db"))
        .arg("--variables-file")
        .arg(keys::ensure()?)
        .args(["--payments-url", &sim.url])
        .env("EDGESHOP_ORIGIN_TOKEN", secret("origin_token")?)
        .env("EDGESHOP_EDGE_TOKEN", secret("edge_token")?)
        .env("EDGESHOP_WEBHOOK_SECRET", &webhook_secret);
    let origin = Service::start("origin", origin)?;
    post_json(
        &sim.url,
        "/_sim/webhook",
        &serde_json::json!({ "url": format!("{}/webhooks/payments", origin.url) }),
    )?;
    let mut pop = edge_host_command(
        "bench",
        "127.0.0.1:0",
        Catalog::Replica {
            origin: &origin.url,
            dir: dir.join("pop"),
            delay_ms: 0,
            interval_ms: 100,
        },
        &root().join("spin.toml"),
    )?;
    pop.env("SPIN_VARIABLE_RATELIMIT_POLICIES", unreached_limits()?)
        .env("SPIN_VARIABLE_ORIGIN_URL", &origin.url);
    let pop = Service::start("pop", pop)?;
    wait_ready(&pop.url, Duration::from_secs(120))?;

    let bodies: Vec<bytes::Bytes> = products
        .iter()
        .map(|(id, price)| {
            bytes::Bytes::from(
                serde_json::json!({
                    "items": [{"product_id": id, "quantity": 1, "unit_price_minor": price}],
                    "shipping_address": {"name": "Bench Shopper", "line1": "1 Load St",
                                         "city": "Berlin", "postal_code": "10115", "country": "DE"},
                    "payment_method": "pm_card_visa",
                })
                .to_string(),
            )
        })
        .collect();
    let headers = vec![vec![
        (
            "authorization".to_string(),
            format!("Bearer {}", keys::bench_tokens(1)?.remove(0)),
        ),
        ("content-type".to_string(), "application/json".to_string()),
        ("idempotency-key".to_string(), "bench-{i}".to_string()),
    ]];
    let row = measure_target(
        rt,
        "POST /api/v1/checkout  via PoP, saga, simulator",
        &Target {
            url: &pop.url,
            method: Some(http::Method::POST),
            paths: &["/api/v1/checkout".to_string()],
            bodies: &bodies,
            header_sets: &headers,
            expect: Some(201),
        },
        seconds,
        connections,
    )?;
    Ok(vec![row])
}

/// `n` products with plenty of stock: (id, price).
async fn stocked(catalog: &std::path::Path, n: usize) -> Result<Vec<(i64, i64)>> {
    let db = libsql::Builder::new_local(catalog).build().await?;
    let conn = db.connect()?;
    let mut rows = conn
        .query(
            "SELECT id, price_minor FROM products WHERE stock >= 150 AND price_minor > 0
             ORDER BY id LIMIT ?1",
            libsql::params![n as i64],
        )
        .await?;
    let mut out = Vec::new();
    while let Some(r) = rows.next().await? {
        out.push((r.get(0)?, r.get(1)?));
    }
    anyhow::ensure!(!out.is_empty(), "the bench catalog has no stocked products");
    Ok(out)
}
