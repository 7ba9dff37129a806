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
    let checkout_path = ["/api/v1/checkout".to_string()];
    // Orders with `bodies`, each under a fresh key, all expected to complete.
    let orders = |bodies| Target {
        url: &pop.url,
        method: Some(http::Method::POST),
        paths: &checkout_path,
        bodies,
        header_sets: &headers,
        expect: Some(201),
        ..Target::default()
    };
    let row = measure_target(
        rt,
        "POST /api/v1/checkout  via PoP, saga, simulator",
        &orders(&bodies),
        seconds,
        connections,
    )?;

    // Everyone after the same five products: every hold contends for
    // the same rows, and the stock taken must equal what was sold.
    let hot: Vec<(i64, i64)> = products.iter().take(5).copied().collect();
    // Read at the primary, over Hrana: the files change under the origin.
    let primary = |db: &str| {
        let (url, token) = (format!("{}/db/{db}", origin.url), secret("origin_token"));
        async move {
            let db = libsql::Builder::new_remote(url, token?).build().await?;
            anyhow::Ok(db.connect()?)
        }
    };
    let (catalog_conn, orders_conn) =
        rt.block_on(async { anyhow::Ok((primary("catalog").await?, primary("orders").await?)) })?;
    let hot_bodies: Vec<bytes::Bytes> = bodies
        .iter()
        .zip(&products)
        .filter(|(_, (id, _))| hot.iter().any(|(h, _)| h == id))
        .map(|(b, _)| b.clone())
        .collect();
    let contended = measure_target(
        rt,
        "POST /api/v1/checkout, 32 shoppers, the same 5 products",
        &orders(&hot_bodies),
        seconds,
        connections,
    )?;
    rt.block_on(exact(&catalog_conn, &orders_conn, &hot))?;

    // The figure the order service is held to: orders arriving at
    // ORDERS_PER_SECOND whatever the answers do, each timed from when it
    // was due. Enough connections that the client never holds one back.
    let open = measure_target(
        rt,
        &format!(
            "POST /api/v1/checkout, {ORDERS_PER_SECOND} orders/s due (bound: p99 <= {P99_BOUND_MS} ms)"
        ),
        &Target {
            rate: Some(ORDERS_PER_SECOND),
            ..orders(&bodies)
        },
        seconds,
        connections.max(128),
    )?;
    Ok(vec![row, contended, open])
}

/// Stock of each product now.
async fn stock_of(conn: &libsql::Connection, products: &[(i64, i64)]) -> Result<Vec<i64>> {
    let mut out = Vec::new();
    for (id, _) in products {
        let mut rows = conn
            .query("SELECT stock FROM products WHERE id = ?1", [*id])
            .await?;
        let row = rows.next().await?.context("a bench product vanished")?;
        out.push(row.get(0)?);
    }
    Ok(out)
}

/// Once every saga has settled: for each product, the stock taken (from
/// the [`STOCKED`] it started with) is the units of its completed orders,
/// no more and no less. A bench whose holds drift fails, whatever its
/// speed.
async fn exact(
    catalog: &libsql::Connection,
    o: &libsql::Connection,
    products: &[(i64, i64)],
) -> Result<()> {
    let one = async |sql: &str, p: libsql::Value| -> Result<i64> {
        let mut rows = o.query(sql, [p]).await?;
        Ok(rows.next().await?.map_or(Ok(0), |r| r.get(0))?)
    };
    let mut settled = false;
    for _ in 0..100 {
        if one("SELECT count(*) FROM orders WHERE final = ?1", 0.into()).await? == 0 {
            settled = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::ensure!(
        settled,
        "sagas were still running 10 s after the load stopped"
    );
    let now = stock_of(catalog, products).await?;
    for ((id, _), is) in products.iter().zip(&now) {
        let was = STOCKED;
        let sold = one(
            "SELECT coalesce(sum(l.quantity), 0) FROM order_lines l JOIN orders o ON o.id = l.order_id
             WHERE o.status = 'completed' AND l.product_id = ?1",
            (*id).into(),
        )
        .await?;
        anyhow::ensure!(
            was - is == sold,
            "product {id}: stock went from {was} to {is}, but completed orders hold {sold} units"
        );
    }
    crate::say("bench: contended checkout: stock taken equals units sold, for each product");
    Ok(())
}

/// The rate the open-loop row offers, and the p99 it is held to.
const ORDERS_PER_SECOND: u32 = 500;
const P99_BOUND_MS: u32 = 50;

/// Each bench product's stock when the bench starts.
const STOCKED: i64 = 1_000_000;

/// `n` products with plenty of stock: (id, price).
async fn stocked(catalog: &std::path::Path, n: usize) -> Result<Vec<(i64, i64)>> {
    let db = libsql::Builder::new_local(catalog).build().await?;
    let conn = db.connect()?;
    let mut rows = conn
        .query(
            "SELECT id, price_minor FROM products WHERE stock >= 150 AND price_minor > 0
             ORDER BY stock DESC, id LIMIT ?1",
            libsql::params![n as i64],
        )
        .await?;
    let mut out = Vec::new();
    while let Some(r) = rows.next().await? {
        out.push((r.get(0)?, r.get(1)?));
    }
    anyhow::ensure!(!out.is_empty(), "the bench catalog has no stocked products");
    drop(rows);
    // Enough that no row runs out (this is the bench's own copy): a
    // sold-out answer would be measured as an error.
    for (id, _) in &out {
        conn.execute(
            "UPDATE products SET stock = ?2 WHERE id = ?1",
            [*id, STOCKED],
        )
        .await?;
    }
    Ok(out)
}
