//! Checkout at the origin, end to end over real HTTP: the real origin with
//! its orders, catalog and identity databases, the payment simulator as a
//! separate process, shoppers' tokens signed with the test key.

use edgeshop_e2e::{
    Host, ORIGIN_TOKEN, TempDir, access_token, content_hash, primary_connection, request,
    set_faults, start_checkout_origin, start_checkout_origin_at, start_paysim,
};
use std::time::Duration;

struct Stack {
    _dir: TempDir,
    sim: Host,
    origin: Host,
}

async fn stack(tag: &str, sim_args: &[&str], origin_args: &[&str]) -> Stack {
    let dir = TempDir::new(tag);
    let sim = start_paysim(sim_args);
    let origin = start_checkout_origin(&dir.0, &sim, origin_args).await;
    Stack {
        _dir: dir,
        sim,
        origin,
    }
}

async fn orders_db(origin: &Host) -> libsql::Connection {
    libsql::Builder::new_remote(
        format!("{}/db/orders", origin.url),
        ORIGIN_TOKEN.to_string(),
    )
    .build()
    .await
    .unwrap()
    .connect()
    .unwrap()
}

async fn one(conn: &libsql::Connection, sql: &str) -> i64 {
    let mut rows = conn.query(sql, ()).await.unwrap();
    rows.next().await.unwrap().unwrap().get::<i64>(0).unwrap()
}

/// Products with at least `min_stock` units: (id, price, stock).
async fn products(origin: &Host, n: usize, min_stock: i64) -> Vec<(i64, i64, i64)> {
    let conn = primary_connection(origin).await;
    let mut rows = conn
        .query(
            &format!(
                "SELECT id, price_minor, stock FROM products WHERE stock >= {min_stock}
                 AND price_minor > 0 ORDER BY id LIMIT {n}"
            ),
            (),
        )
        .await
        .unwrap();
    let mut out = Vec::new();
    while let Some(r) = rows.next().await.unwrap() {
        out.push((r.get(0).unwrap(), r.get(1).unwrap(), r.get(2).unwrap()));
    }
    assert_eq!(out.len(), n, "the seed has {n} priced products with stock");
    out
}

async fn stock_of(origin: &Host, id: i64) -> i64 {
    one(
        &primary_connection(origin).await,
        &format!("SELECT stock FROM products WHERE id = {id}"),
    )
    .await
}

fn body(items: &[(i64, i64, i64)], payment_method: &str) -> Vec<u8> {
    serde_json::json!({
        "items": items.iter().map(|(id, qty, price)| serde_json::json!({
            "product_id": id, "quantity": qty, "unit_price_minor": price,
        })).collect::<Vec<_>>(),
        "shipping_address": {"name": "Ada Lovelace", "line1": "12 Analytical Row",
                             "city": "London", "postal_code": "N1 7AA", "country": "GB"},
        "payment_method": payment_method,
    })
    .to_string()
    .into_bytes()
}

async fn checkout(
    origin: &Host,
    token: &str,
    key: Option<&str>,
    body: Vec<u8>,
) -> edgeshop_e2e::Reply {
    let auth = format!("Bearer {token}");
    let mut headers = vec![
        ("authorization", auth.as_str()),
        ("content-type", "application/json"),
    ];
    if let Some(k) = key {
        headers.push(("idempotency-key", k));
    }
    request(
        "POST",
        &format!("{}/api/v1/checkout", origin.url),
        &headers,
        body,
    )
    .await
}

async fn get_as(origin: &Host, token: &str, path: &str) -> edgeshop_e2e::Reply {
    let auth = format!("Bearer {token}");
    request(
        "GET",
        &format!("{}{path}", origin.url),
        &[("authorization", &auth)],
        vec![],
    )
    .await
}

/// The saga's moves in an order's history (webhooks left out: when they
/// arrive is up to the provider).
fn saga_steps(order: &serde_json::Value) -> Vec<String> {
    order["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["event"].as_str().unwrap().to_string())
        .filter(|e| e != "payment.webhook")
        .collect()
}

async fn sim_stats(sim: &Host) -> serde_json::Value {
    request("GET", &format!("{}/_sim/stats", sim.url), &[], vec![])
        .await
        .json()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_checkout_completes_and_only_its_shopper_sees_it() {
    let s = stack("checkout-happy", &[], &[]).await;
    let ps = products(&s.origin, 2, 5).await;
    let ada = access_token(101, &["shopper"]);
    let items = [(ps[0].0, 2, ps[0].1), (ps[1].0, 1, ps[1].1)];
    let r = checkout(
        &s.origin,
        &ada,
        Some("k-happy-1"),
        body(&items, "pm_card_visa"),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.header("cache-control"), Some("private, no-store"));
    let order = r.json();
    assert_eq!(order["status"], "completed");
    assert_eq!(order["total_minor"], ps[0].1 * 2 + ps[1].1);
    let id = order["id"].as_str().unwrap().to_string();
    assert_eq!(
        r.header("location"),
        Some(format!("/api/v1/orders/{id}").as_str())
    );
    // Stock moved at the primary, once.
    assert_eq!(stock_of(&s.origin, ps[0].0).await, ps[0].2 - 2);
    assert_eq!(stock_of(&s.origin, ps[1].0).await, ps[1].2 - 1);
    let stats = sim_stats(&s.sim).await;
    assert_eq!(
        (stats["authorised"].as_i64(), stats["captured"].as_i64()),
        (Some(1), Some(1))
    );

    // The shopper reads it, with its history.
    let mine = get_as(&s.origin, &ada, &format!("/api/v1/orders/{id}")).await;
    assert_eq!(mine.status, 200, "{}", mine.text());
    let history = saga_steps(&mine.json());
    assert_eq!(
        history,
        [
            "created",
            "reserve_stock",
            "authorise_payment",
            "confirm_order",
            "capture_payment"
        ]
    );
    let list = get_as(&s.origin, &ada, "/api/v1/orders").await.json();
    assert_eq!(list["orders"][0]["id"], id.as_str());

    // Another shopper: a 404 for the id, and an empty list.
    let bob = access_token(102, &["shopper"]);
    get_as(&s.origin, &bob, &format!("/api/v1/orders/{id}"))
        .await
        .problem(404);
    let theirs = get_as(&s.origin, &bob, "/api/v1/orders").await.json();
    assert_eq!(theirs["orders"].as_array().unwrap().len(), 0);
    // And bob replaying ada's key makes bob's own order, not a replay of ada's.
    let r = checkout(
        &s.origin,
        &bob,
        Some("k-happy-1"),
        body(&items, "pm_card_visa"),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_ne!(r.json()["id"], id.as_str());

    // The outbox reached the vendors' notification log, once per vendor.
    let orders = orders_db(&s.origin).await;
    for _ in 0..100 {
        if one(
            &orders,
            "SELECT count(*) FROM outbox WHERE published_at IS NULL",
        )
        .await
            == 0
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        one(
            &orders,
            "SELECT count(*) FROM outbox WHERE published_at IS NULL"
        )
        .await,
        0
    );
    assert!(
        one(&orders, &format!("SELECT count(*) FROM vendor_notifications WHERE order_id = '{id}' AND topic = 'order.confirmed'")).await >= 1
    );
    // The provider's webhooks arrived and were matched to the order.
    for _ in 0..100 {
        if one(&orders, "SELECT count(*) FROM payment_webhooks").await >= 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(one(&orders, "SELECT count(*) FROM payment_webhooks").await >= 4);
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_checkouts_are_refused_and_change_nothing() {
    let s = stack("checkout-bad", &[], &[]).await;
    let ps = products(&s.origin, 1, 5).await;
    let (id, price, stock) = ps[0];
    let ada = access_token(201, &["shopper"]);
    let good = body(&[(id, 1, price)], "pm_card_visa");
    // No token, a vendor's token, no key.
    let r = request(
        "POST",
        &format!("{}/api/v1/checkout", s.origin.url),
        &[("idempotency-key", "k")],
        good.clone(),
    )
    .await;
    r.problem(401);
    assert_eq!(r.header("www-authenticate"), Some("Bearer"));
    checkout(
        &s.origin,
        &access_token(202, &["vendor"]),
        Some("k"),
        good.clone(),
    )
    .await
    .problem(403);
    checkout(&s.origin, &ada, None, good.clone())
        .await
        .problem(400);
    // Malformed, invalid, unknown product, moved price.
    checkout(&s.origin, &ada, Some("k1"), b"{".to_vec())
        .await
        .problem(400);
    let p = checkout(
        &s.origin,
        &ada,
        Some("k2"),
        body(&[(id, 0, price)], "pm_card_visa"),
    )
    .await
    .problem(422);
    assert_eq!(p["field"], "items[0]");
    let p = checkout(
        &s.origin,
        &ada,
        Some("k3"),
        body(&[(99_999_999, 1, 100)], "pm_card_visa"),
    )
    .await
    .problem(422);
    assert_eq!(p["product_ids"], serde_json::json!([99_999_999]));
    let p = checkout(
        &s.origin,
        &ada,
        Some("k4"),
        body(&[(id, 1, price + 1)], "pm_card_visa"),
    )
    .await
    .problem(409);
    assert_eq!(p["lines"][0]["unit_price_minor"], price);
    // None of it made an order, took stock or touched the provider.
    let orders = orders_db(&s.origin).await;
    assert_eq!(one(&orders, "SELECT count(*) FROM orders").await, 0);
    assert_eq!(stock_of(&s.origin, id).await, stock);
    assert_eq!(sim_stats(&s.sim).await["intents"], 0);
    // The refused keys were not used up: the fixed request goes through.
    let r = checkout(&s.origin, &ada, Some("k4"), good).await;
    assert_eq!(r.status, 201, "{}", r.text());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_declined_card_or_missing_stock_ends_the_order_and_gives_everything_back() {
    let s = stack("checkout-fail", &[], &[]).await;
    let ps = products(&s.origin, 2, 3).await;
    let ada = access_token(301, &["shopper"]);
    let (id, price, stock) = ps[0];
    let p = checkout(
        &s.origin,
        &ada,
        Some("d1"),
        body(&[(id, 2, price)], "pm_card_chargeCustomerFail"),
    )
    .await
    .problem(402);
    assert_eq!(p["order"]["status"], "payment_failed");
    assert!(p["detail"].as_str().unwrap().contains("declined"), "{p}");
    assert_eq!(
        stock_of(&s.origin, id).await,
        stock,
        "the reservation was released"
    );

    let (id2, price2, stock2) = ps[1];
    let p = checkout(
        &s.origin,
        &ada,
        Some("d2"),
        body(&[(id, 1, price), (id2, stock2 + 1, price2)], "pm_card_visa"),
    )
    .await;
    if stock2 + 1 > checkout_core::MAX_QUANTITY {
        p.problem(422);
    } else {
        let p = p.problem(409);
        assert_eq!(p["order"]["status"], "out_of_stock");
        assert!(
            p["detail"]
                .as_str()
                .unwrap()
                .contains(&format!("product {id2}")),
            "{p}"
        );
    }
    assert_eq!(stock_of(&s.origin, id).await, stock, "no line was held");
    assert_eq!(stock_of(&s.origin, id2).await, stock2);
    let stats = sim_stats(&s.sim).await;
    assert_eq!(stats["captured"], 0);
    assert_eq!(stats["authorised"], 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn one_key_is_one_order_even_under_100_concurrent_duplicates() {
    let s = stack("checkout-dup", &[], &[]).await;
    let ps = products(&s.origin, 1, 2).await;
    let (id, price, stock) = ps[0];
    let ada = access_token(401, &["shopper"]);
    let b = body(&[(id, 1, price)], "pm_card_visa");
    let replies = futures_join(100, |_| {
        checkout(&s.origin, &ada, Some("same-key"), b.clone())
    })
    .await;
    let first = &replies[0];
    assert_eq!(first.status, 201, "{}", first.text());
    for r in &replies {
        assert_eq!(
            (r.status, r.json()["id"].clone()),
            (201, first.json()["id"].clone())
        );
    }
    assert!(
        replies
            .iter()
            .filter(|r| r.header("idempotent-replayed").is_some())
            .count()
            >= 99
    );
    let orders = orders_db(&s.origin).await;
    assert_eq!(one(&orders, "SELECT count(*) FROM orders").await, 1);
    let stats = sim_stats(&s.sim).await;
    assert_eq!(
        (stats["intents"].as_i64(), stats["captured"].as_i64()),
        (Some(1), Some(1))
    );
    assert_eq!(stock_of(&s.origin, id).await, stock - 1);
    // The same key with another body is refused.
    let p = checkout(
        &s.origin,
        &ada,
        Some("same-key"),
        body(&[(id, 2, price)], "pm_card_visa"),
    )
    .await
    .problem(422);
    assert!(
        p["detail"].as_str().unwrap().contains("different checkout"),
        "{p}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_provider_trips_the_breaker_and_checkout_fails_fast() {
    let s = stack(
        "checkout-breaker",
        &["--error-percent", "100"],
        &["--payments-timeout-ms", "500"],
    )
    .await;
    let ps = products(&s.origin, 1, 20).await;
    let (id, price, stock) = ps[0];
    let ada = access_token(501, &["shopper"]);
    // The first checkout retries, gives up and is cancelled; its stock
    // is released before the provider is asked to void (it may never have
    // seen the authorisation, and it is failing).
    let r = checkout(
        &s.origin,
        &ada,
        Some("b1"),
        body(&[(id, 1, price)], "pm_card_visa"),
    )
    .await;
    let p = r.problem(503);
    assert!(
        ["cancelled", "compensating"].contains(&p["order"]["status"].as_str().unwrap()),
        "{p}"
    );
    assert!(r.header("retry-after").is_some());
    assert_eq!(stock_of(&s.origin, id).await, stock);
    // Soon the breaker is open: checkouts are refused at once, with
    // Retry-After, before any order exists.
    let mut refused_fast = None;
    for i in 0..10 {
        let started = std::time::Instant::now();
        let r = checkout(
            &s.origin,
            &ada,
            Some(&format!("b{}", i + 2)),
            body(&[(id, 1, price)], "pm_card_visa"),
        )
        .await;
        let p = r.problem(503);
        if p.get("order").is_none() {
            // Fast: well inside the provider timeout a call would wait for.
            assert!(
                started.elapsed() < Duration::from_secs(2),
                "{:?}",
                started.elapsed()
            );
            assert!(
                r.header("retry-after")
                    .is_some_and(|v| v.parse::<u64>().unwrap() >= 1)
            );
            refused_fast = Some(i);
            break;
        }
    }
    let before_open = refused_fast.expect("the breaker never opened");
    let health = request("GET", &format!("{}/health", s.origin.url), &[], vec![])
        .await
        .json();
    assert_ne!(health["checkout"]["payments_breaker"], "closed", "{health}");
    let orders = orders_db(&s.origin).await;
    assert_eq!(
        one(&orders, "SELECT count(*) FROM orders").await,
        1 + before_open as i64
    );
    // The provider heals: the stranded compensations finish, and every
    // order ends cancelled with its stock back.
    set_faults(&s.sim, serde_json::json!({})).await;
    for _ in 0..300 {
        if one(&orders, "SELECT count(*) FROM orders WHERE final = 0").await == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        one(&orders, "SELECT count(*) FROM orders WHERE final = 0").await,
        0
    );
    assert_eq!(
        one(
            &orders,
            "SELECT count(*) FROM orders WHERE status <> 'cancelled'"
        )
        .await,
        0
    );
    assert_eq!(stock_of(&s.origin, id).await, stock);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_capture_that_keeps_failing_voids_the_authorisation() {
    let s = stack("checkout-void", &["--capture-fail-percent", "100"], &[]).await;
    let ps = products(&s.origin, 1, 2).await;
    let (id, price, stock) = ps[0];
    let ada = access_token(701, &["shopper"]);
    let p = checkout(
        &s.origin,
        &ada,
        Some("v1"),
        body(&[(id, 1, price)], "pm_card_visa"),
    )
    .await
    .problem(503);
    assert_eq!(p["order"]["status"], "cancelled", "{p}");
    assert!(
        p["order"]["reason"]
            .as_str()
            .unwrap()
            .contains("cannot be captured"),
        "{p}"
    );
    let stats = sim_stats(&s.sim).await;
    assert_eq!(
        (
            stats["authorised"].as_i64(),
            stats["captured"].as_i64(),
            stats["canceled"].as_i64()
        ),
        (Some(1), Some(0), Some(1))
    );
    assert_eq!(stock_of(&s.origin, id).await, stock);
    let order = p["order"]["id"].as_str().unwrap();
    let history = saga_steps(
        &get_as(&s.origin, &ada, &format!("/api/v1/orders/{order}"))
            .await
            .json(),
    );
    let tail: Vec<&str> = history.iter().rev().take(2).map(String::as_str).collect();
    assert_eq!(tail, ["release_stock", "release_payment"], "{history:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn webhooks_are_verified_and_recorded_once() {
    let s = stack("checkout-webhooks", &[], &[]).await;
    let url = format!("{}/webhooks/payments", s.origin.url);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let event = serde_json::json!({
        "id": "evt_test_once", "object": "event", "type": "payment_intent.canceled",
        "created": now,
        "data": {"object": {"object": "payment_intent", "id": "pi_test_1", "status": "canceled",
                            "amount": 100, "currency": "usd",
                            "metadata": {"order_id": "ord_00000000000000000000"}}},
    })
    .to_string();
    let post = |sig: String, body: String| {
        let url = url.clone();
        async move {
            request(
                "POST",
                &url,
                &[
                    ("stripe-signature", &sig),
                    ("content-type", "application/json"),
                ],
                body.into_bytes(),
            )
            .await
        }
    };
    let good = payments::webhook::sign(edgeshop_e2e::WEBHOOK_SECRET, now, event.as_bytes());
    let first = post(good.clone(), event.clone()).await;
    assert_eq!(first.status, 200, "{}", first.text());
    assert_eq!(first.json()["duplicate"], serde_json::Value::Null);
    let again = post(good, event.clone()).await;
    assert_eq!(again.json()["duplicate"], true);
    // Unsigned, signed with another secret, or replayed late: refused.
    post(String::new(), event.clone()).await.problem(400);
    post(
        payments::webhook::sign("whsec_other", now, event.as_bytes()),
        event.clone(),
    )
    .await
    .problem(400);
    post(
        payments::webhook::sign(edgeshop_e2e::WEBHOOK_SECRET, now - 3600, event.as_bytes()),
        event.clone(),
    )
    .await
    .problem(400);
    let orders = orders_db(&s.origin).await;
    assert_eq!(
        one(
            &orders,
            "SELECT count(*) FROM payment_webhooks WHERE event_id = 'evt_test_once'"
        )
        .await,
        1
    );
}

/// Through a real PoP running `spin.toml`: the gateway forwards to the
/// origin with the shopper's token; the stock change reaches the PoP's
/// replica and purges its cache; with the origin gone, checkout fails fast
/// while browsing goes on.
#[tokio::test(flavor = "multi_thread")]
async fn checkout_through_a_pop_and_with_the_origin_down() {
    let mut s = stack("checkout-edge", &[], &[]).await;
    let pop = edgeshop_e2e::start_pop_with(
        &edgeshop_e2e::root().join("spin.toml"),
        &s.origin.url,
        &s._dir.0.join("pop"),
        &[],
        &[("SPIN_VARIABLE_ORIGIN_URL", s.origin.url.clone())],
    )
    .unwrap_or_else(|log| panic!("the PoP did not start:\n{log}"));
    edgeshop_e2e::wait_ready(&pop).await;
    let ps = products(&s.origin, 1, 3).await;
    let (id, price, stock) = ps[0];
    let product_url = format!("{}/api/v1/products/{id}", pop.url);
    let before = edgeshop_e2e::get(&product_url).await;
    assert_eq!(before.json()["stock"], stock, "{}", before.text());

    let ada = access_token(601, &["shopper"]);
    let r = checkout(
        &pop,
        &ada,
        Some("edge-1"),
        body(&[(id, 2, price)], "pm_card_visa"),
    )
    .await;
    assert_eq!(r.status, 201, "{}\n{}", r.text(), pop.log());
    assert_eq!(r.header("cache-control"), Some("private, no-store"));
    // The rate limiter runs in front (the shipped `checkout` budget is per
    // account; these tests run with budgets no test reaches).
    assert!(r.header("ratelimit").is_some(), "{:?}", r.headers);
    let order = r.json();
    let order_id = order["id"].as_str().unwrap();
    let mine = get_as(&pop, &ada, &format!("/api/v1/orders/{order_id}")).await;
    assert_eq!(mine.status, 200, "{}", mine.text());
    assert_eq!(mine.json()["status"], "completed");
    assert_eq!(mine.header("cache-control"), Some("private, no-store"));
    // Another shopper, a vendor, nobody.
    get_as(
        &pop,
        &access_token(602, &["shopper"]),
        &format!("/api/v1/orders/{order_id}"),
    )
    .await
    .problem(404);
    checkout(
        &pop,
        &access_token(603, &["vendor"]),
        Some("edge-2"),
        body(&[(id, 1, price)], "pm_card_visa"),
    )
    .await
    .problem(403);
    edgeshop_e2e::get(&format!("{}/api/v1/orders", pop.url))
        .await
        .problem(401);
    // Refused at the edge: no key, a bad body, a malformed order id.
    checkout(&pop, &ada, None, body(&[(id, 1, price)], "pm_card_visa"))
        .await
        .problem(400);
    checkout(
        &pop,
        &ada,
        Some("edge-3"),
        body(&[(id, 0, price)], "pm_card_visa"),
    )
    .await
    .problem(422);
    let r = get_as(&pop, &ada, "/api/v1/orders/../../db/orders").await;
    assert!((400..500).contains(&r.status), "{} {}", r.status, r.text());
    get_as(&pop, &ada, "/api/v1/orders/not-an-order")
        .await
        .problem(404);

    // The stock change replicates and the PoP's cached product is purged.
    let mut seen = None;
    for _ in 0..100 {
        let r = edgeshop_e2e::get(&product_url).await;
        if r.json()["stock"] == stock - 2 {
            seen = Some(r);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(seen.is_some(), "the PoP never saw the stock change");

    // The origin goes away: checkout fails fast with a clear problem,
    // browsing carries on from the replica.
    s.origin.kill();
    let started = std::time::Instant::now();
    let r = checkout(
        &pop,
        &ada,
        Some("edge-4"),
        body(&[(id, 1, price)], "pm_card_visa"),
    )
    .await;
    let p = r.problem(503);
    assert!(
        p["detail"]
            .as_str()
            .unwrap()
            .contains("Nothing was charged"),
        "{p}"
    );
    assert!(r.header("retry-after").is_some());
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(edgeshop_e2e::get(&product_url).await.status, 200);
}

/// A seeded, replayable fault run: 1,000 checkouts from 50 shoppers with
/// 20% of payment calls faulted (declines, 5xx, answers lost to timeouts),
/// one in ten sent twice, duplicated and shuffled webhooks, spread over
/// two origins on the same files (the primary and a `--checkout-peer`),
/// each killed with SIGKILL in a burst of checkouts while the other runs
/// on and takes over its sagas, then restarted. Afterwards the books must
/// balance, and a replica of the catalog equals the primary (the peer's
/// stock writes were all shipped). `EDGESHOP_FAULT_SEED` replays a run.
#[tokio::test(flavor = "multi_thread")]
async fn a_fault_run_loses_nothing_and_charges_nothing_twice() {
    let seed: u64 = std::env::var("EDGESHOP_FAULT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20_261_121);
    println!("fault run seed {seed} (EDGESHOP_FAULT_SEED={seed} replays it)");
    let seed_arg = seed.to_string();
    let dir = TempDir::new("checkout-faults");
    let sim = start_paysim(&[
        "--seed",
        &seed_arg,
        "--decline-percent",
        "5",
        "--error-percent",
        "8",
        "--timeout-percent",
        "7",
        "--hang-ms",
        "2500",
        "--duplicate-webhook-percent",
        "20",
        "--webhook-jitter-ms",
        "300",
        "--capture-fail-percent",
        "5",
    ]);
    // A generous client timeout: the suite shares two cores with this run,
    // and a call that is only slow must not look like an outage.
    let origin_args = [
        "--payments-timeout-ms",
        "1000",
        "--checkout-budget-ms",
        "4000",
    ];
    // The primary restarts at the same address, so the catalog's replica
    // below follows it across the restart.
    let listen = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("127.0.0.1:{}", l.local_addr().unwrap().port())
    };
    let primary_args = [&origin_args[..], &["--listen", &listen]].concat();
    let mut origin = start_checkout_origin(&dir.0, &sim, &primary_args).await;
    let peer_args = [&origin_args[..], &["--checkout-peer"]].concat();
    let mut peer = start_checkout_origin_at(&dir.0, &sim.url, &peer_args);
    let catalog = products(&origin, 40, 1).await;
    // A replica that follows the catalog from here to the end.
    let replica = libsql::Builder::new_remote_replica(
        dir.0.join("catalog-replica.db"),
        format!("{}/db/catalog", origin.url),
        ORIGIN_TOKEN.to_string(),
    )
    .build()
    .await
    .unwrap();
    replica.sync().await.unwrap();
    let initial: std::collections::BTreeMap<i64, i64> =
        catalog.iter().map(|(id, _, stock)| (*id, *stock)).collect();

    // The plan, from the seed: who buys what, and which are sent twice.
    let mut x = seed | 1;
    let mut rnd = move |n: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % n
    };
    const TOTAL: usize = 1_000;
    // Each kill lands in a burst of 100 concurrent checkouts (the peer's
    // first, then the primary's); the outage (the provider failing every
    // call) spans two batches.
    const KILL_PEER_AT: usize = 400;
    const KILL_PRIMARY_AT: usize = 540;
    const KILL_BURST: usize = 100;
    const OUTAGE_AT: usize = 700;
    let plan: Vec<(i64, Vec<u8>, bool)> = (0..TOTAL)
        .map(|_| {
            let shopper = 1_000 + rnd(50) as i64;
            let lines = 1 + rnd(3) as usize;
            let mut items = Vec::new();
            while items.len() < lines {
                let (id, price, _) = catalog[rnd(catalog.len() as u64) as usize];
                if !items.iter().any(|(i, _, _)| *i == id) {
                    items.push((id, 1 + rnd(2) as i64, price));
                }
            }
            (shopper, body(&items, "pm_card_visa"), rnd(10) == 0)
        })
        .collect();

    let mut answers: Vec<Option<(u16, Option<String>)>> = vec![None; TOTAL];
    let mut sent = 0usize;
    let mut duplicates = 0usize;
    let mut retried_after_crash = 0usize;
    let faults = request("GET", &format!("{}/_sim/faults", sim.url), &[], vec![])
        .await
        .json();
    let mut takeovers = Vec::new();
    for batch_start in (0..TOTAL).step_by(20) {
        if [KILL_PEER_AT, KILL_PRIMARY_AT]
            .iter()
            .any(|k| (k + 20..k + KILL_BURST).contains(&batch_start))
        {
            continue;
        }
        if batch_start == OUTAGE_AT {
            // The provider fails every call for 1.5 s, then recovers.
            let mut f = faults.clone();
            f["error_percent"] = 100.into();
            set_faults(&sim, f).await;
            let (sim_url, faults) = (sim.url.clone(), faults.clone());
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(1_500)).await;
                let r = request(
                    "POST",
                    &format!("{sim_url}/_sim/faults"),
                    &[("content-type", "application/json")],
                    faults.to_string().into_bytes(),
                )
                .await;
                assert_eq!(r.status, 200);
            });
        }
        if batch_start == KILL_PEER_AT || batch_start == KILL_PRIMARY_AT {
            // Kill one origin while a burst is in flight at it; its
            // clients retry at the other with the same keys, which takes
            // its sagas over once their leases run out. Then restart it
            // on the same files.
            let primary = batch_start == KILL_PRIMARY_AT;
            let (victim, survivor) = if primary {
                (&mut origin, &peer)
            } else {
                (&mut peer, &origin)
            };
            let burst = Burst {
                dir: &dir.0,
                plan: &plan,
                range: batch_start..batch_start + KILL_BURST,
                seed,
            };
            let k = burst.kill(victim, survivor, &mut answers).await;
            println!(
                "killed the {} (SIGKILL) with checkouts {}..{} in flight: {} orders mid-saga, \
                 {} retried at the other origin, which took over {} sagas, all {:.1} s after the kill",
                if primary {
                    "primary origin"
                } else {
                    "checkout peer"
                },
                batch_start,
                batch_start + KILL_BURST,
                k.stranded,
                k.retried,
                k.taken_over,
                k.settled.as_secs_f64()
            );
            sent += KILL_BURST;
            retried_after_crash += k.retried;
            takeovers.push(k);
            if primary {
                origin = start_checkout_origin(&dir.0, &sim, &primary_args).await;
            } else {
                peer = start_checkout_origin_at(&dir.0, &sim.url, &peer_args);
            }
            continue;
        }
        // Batches alternate between the two origins.
        let url = if (batch_start / 20) % 2 == 0 {
            origin.url.clone()
        } else {
            peer.url.clone()
        };
        let batch: Vec<_> = (batch_start..batch_start + 20)
            .flat_map(|i| {
                let (shopper, b, twice) = plan[i].clone();
                let copies = if twice { 2 } else { 1 };
                (0..copies).map(move |_| (i, shopper, b.clone()))
            })
            .map(|(i, shopper, b)| {
                let url = url.clone();
                let key = format!("fault-{seed}-{i}");
                tokio::spawn(
                    async move { (i, checkout_until_admitted(&url, shopper, &key, b).await) },
                )
            })
            .collect();
        let mut first_of = std::collections::BTreeMap::new();
        for h in batch {
            let (i, a) = h.await.unwrap();
            sent += 1;
            let a = a.unwrap_or_else(|| {
                let log = format!("{}\n--- peer ---\n{}", origin.log(), peer.log());
                let tail = &log[log.len().saturating_sub(4000)..];
                panic!("checkout {i} got no answer while the origin runs:\n{tail}")
            });
            match first_of.get(&i) {
                None => {
                    first_of.insert(i, a.clone());
                    answers[i] = Some(a);
                }
                Some(earlier) => {
                    duplicates += 1;
                    assert_eq!(earlier.1, a.1, "a duplicate checkout named another order");
                }
            }
        }
    }

    // Every order ends, each in one final state.
    let orders = orders_db(&origin).await;
    for _ in 0..600 {
        if one(&orders, "SELECT count(*) FROM orders WHERE final = 0").await == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut by_status = std::collections::BTreeMap::new();
    let mut rows = orders
        .query(
            "SELECT status, final, count(*) FROM orders GROUP BY 1, 2",
            (),
        )
        .await
        .unwrap();
    while let Some(r) = rows.next().await.unwrap() {
        let status: String = r.get(0).unwrap();
        assert_eq!(
            r.get::<i64>(1).unwrap(),
            1,
            "{status} orders are still in flight"
        );
        by_status.insert(status, r.get::<i64>(2).unwrap());
    }
    for status in by_status.keys() {
        assert!(
            ["completed", "payment_failed", "out_of_stock", "cancelled"].contains(&status.as_str()),
            "{status}"
        );
    }
    let acknowledged: Vec<String> = answers
        .iter()
        .flatten()
        .filter_map(|(_, id)| id.clone())
        .collect();
    assert_eq!(
        answers.iter().filter(|a| a.is_none()).count(),
        0,
        "every checkout was answered in the end"
    );
    let total_orders: i64 = by_status.values().sum();
    assert_eq!(
        acknowledged.len() as i64,
        total_orders,
        "one order per key, every order acknowledged"
    );

    // Payments: every capture kept maps to one completed order, nothing is
    // left authorised. (The audit itself must not be faulted.)
    set_faults(&sim, serde_json::json!({})).await;
    let mut kept_captures = std::collections::BTreeMap::<String, usize>::new();
    let (mut authorised_left, mut voided, mut refunded, mut intents) = (0, 0, 0, 0);
    let mut after = String::new();
    loop {
        let page = request(
            "GET",
            &format!(
                "{}/v1/payment_intents?limit=100&starting_after={after}",
                sim.url
            ),
            &[("authorization", "Bearer sk_test_audit")],
            vec![],
        )
        .await;
        let page = page.json();
        for pi in page["data"].as_array().unwrap() {
            intents += 1;
            let order = pi["metadata"]["order_id"].as_str().unwrap().to_string();
            match pi["status"].as_str().unwrap() {
                "requires_capture" => authorised_left += 1,
                "canceled" => voided += 1,
                "succeeded" if pi["amount_refunded"].as_i64() == pi["amount"].as_i64() => {
                    refunded += 1
                }
                "succeeded" => *kept_captures.entry(order).or_default() += 1,
                _ => {}
            }
            after = pi["id"].as_str().unwrap().to_string();
        }
        if !page["has_more"].as_bool().unwrap() {
            break;
        }
    }
    let mut completed = Vec::new();
    let mut rows = orders
        .query("SELECT id FROM orders WHERE status = 'completed'", ())
        .await
        .unwrap();
    while let Some(r) = rows.next().await.unwrap() {
        completed.push(r.get::<String>(0).unwrap());
    }
    assert_eq!(
        authorised_left, 0,
        "an authorisation was left neither captured nor released"
    );
    assert!(
        kept_captures.values().all(|n| *n == 1),
        "an order was charged twice"
    );
    let mut charged: Vec<&String> = kept_captures.keys().collect();
    charged.sort();
    let mut done: Vec<&String> = completed.iter().collect();
    done.sort();
    assert_eq!(
        charged, done,
        "captured payments and completed orders differ"
    );

    // Stock: initial = available + sold, for every product.
    let mut sold = std::collections::BTreeMap::<i64, i64>::new();
    let mut rows = orders
        .query(
            "SELECT l.product_id, sum(l.quantity) FROM order_lines l JOIN orders o ON o.id = l.order_id
             WHERE o.status = 'completed' GROUP BY 1",
            (),
        )
        .await
        .unwrap();
    while let Some(r) = rows.next().await.unwrap() {
        sold.insert(r.get(0).unwrap(), r.get(1).unwrap());
    }
    for (id, start) in &initial {
        let now = stock_of(&origin, *id).await;
        let s = sold.get(id).copied().unwrap_or(0);
        assert_eq!(
            *start,
            now + s,
            "product {id}: initial {start} != available {now} + sold {s}"
        );
    }
    let webhooks = one(&orders, "SELECT count(*) FROM payment_webhooks").await;
    let stats = sim_stats(&sim).await;
    println!(
        "fault run: {TOTAL} checkouts ({sent} requests, {duplicates} concurrent duplicates, \
         {retried_after_crash} retried after the kill), {total_orders} orders: {by_status:?}; \
         provider: {intents} intents, {} captured and kept, {voided} voided, {refunded} refunded, \
         {authorised_left} left authorised; faults injected: {} errors, {} lost answers, {} declines; webhooks: {} delivered, {webhooks} distinct recorded; \
         stock balanced for {} products",
        kept_captures.len(),
        stats["injected_errors"],
        stats["injected_timeouts"],
        stats["declined"],
        stats["webhooks_sent"],
        initial.len()
    );
    let refused = REFUSED.load(std::sync::atomic::Ordering::Relaxed);
    println!(
        "checkouts refused outright while the breaker was open, then retried after a wait: {refused}; the breaker opened {} times after the restart",
        origin.log().matches("payment breaker opened").count()
    );
    assert!(refused > 0, "the outage never opened the breaker");
    assert!(
        by_status.get("completed").copied().unwrap_or(0) >= 150,
        "{by_status:?}"
    );
    assert!(
        by_status.get("cancelled").copied().unwrap_or(0) > 0,
        "{by_status:?}"
    );
    assert!(
        voided > 0,
        "no authorisation was ever voided: the compensation was not exercised"
    );

    // Each kill stranded sagas, and the other origin took them over within
    // the lease (3 s here: 1.5 step timeouts) plus the longest backoff.
    for k in &takeovers {
        assert!(
            k.stranded > 0,
            "a kill stranded no saga: nothing was taken over"
        );
        assert_eq!(
            k.taken_over, k.stranded,
            "the survivor took over another number of sagas than the dead origin left"
        );
        assert!(
            k.settled < Duration::from_secs(15),
            "taking over sagas took {:?}",
            k.settled
        );
    }

    // The catalog's replica, which followed both kills and the primary's
    // restart, holds exactly what the primary holds: every stock write the
    // peer made was shipped.
    replica.sync().await.unwrap();
    assert_eq!(
        content_hash(&replica.connect().unwrap()).await,
        content_hash(&primary_connection(&origin).await).await,
        "the replica and the primary differ after the run"
    );
}

/// A burst of checkouts in the fault run that one origin dies under.
struct Burst<'a> {
    dir: &'a std::path::Path,
    plan: &'a [(i64, Vec<u8>, bool)],
    range: std::ops::Range<usize>,
    seed: u64,
}

/// What a kill left, and how the other origin dealt with it.
struct Killed {
    /// Orders leased to the dead origin and not yet ended when it died.
    stranded: i64,
    /// Checkouts that got no answer and were sent again to the other.
    retried: usize,
    /// From the kill until none of its orders was left unended and
    /// leased to it.
    settled: Duration,
    /// Sagas the survivor took over meanwhile (its own count).
    taken_over: i64,
}

impl Burst<'_> {
    /// Sends the burst to `victim`, kills it (SIGKILL) 150 ms in, and
    /// sends each unanswered checkout again, with its key, to `survivor`.
    async fn kill(
        &self,
        victim: &mut Host,
        survivor: &Host,
        answers: &mut [Option<(u16, Option<String>)>],
    ) -> Killed {
        let checkout_health = async |h: &Host| {
            edgeshop_e2e::get(&format!("{}/health", h.url)).await.json()["checkout"].clone()
        };
        let owner = checkout_health(victim).await["saga_owner"]
            .as_str()
            .expect("the origin names its saga owner")
            .to_string();
        let taken_before = checkout_health(survivor).await["sagas_taken_over"]
            .as_i64()
            .unwrap();
        let batch: Vec<_> = self
            .range
            .clone()
            .map(|i| {
                let (shopper, b, _) = self.plan[i].clone();
                let key = format!("fault-{}-{i}", self.seed);
                let url = victim.url.clone();
                tokio::spawn(async move { try_checkout(&url, shopper, &key, b).await })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(150)).await;
        victim.kill();
        let killed_at = std::time::Instant::now();
        let db = libsql::Builder::new_local(self.dir.join("orders.db"))
            .build()
            .await
            .unwrap();
        let orders = db.connect().unwrap();
        let left = async |orders: &libsql::Connection| {
            let mut rows = orders
                .query(
                    "SELECT count(*) FROM orders WHERE final = 0 AND lease_owner = ?1",
                    [owner.as_str()],
                )
                .await
                .unwrap();
            rows.next().await.unwrap().unwrap().get::<i64>(0).unwrap()
        };
        let stranded = left(&orders).await;
        for (i, h) in self.range.clone().zip(batch) {
            if let Ok(Some(a)) = h.await {
                answers[i] = Some(a);
            }
        }
        let retries: Vec<_> = self
            .range
            .clone()
            .filter(|i| answers[*i].is_none())
            .map(|i| {
                let (shopper, b, _) = self.plan[i].clone();
                let key = format!("fault-{}-{i}", self.seed);
                let url = survivor.url.clone();
                tokio::spawn(async move { (i, try_checkout(&url, shopper, &key, b).await) })
            })
            .collect();
        let retried = retries.len();
        for h in retries {
            let (i, a) = h.await.unwrap();
            answers[i] = a;
        }
        let mut settled = killed_at.elapsed();
        for _ in 0..600 {
            if left(&orders).await == 0 {
                settled = killed_at.elapsed();
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let taken_over = checkout_health(survivor).await["sagas_taken_over"]
            .as_i64()
            .unwrap()
            - taken_before;
        Killed {
            stranded,
            retried,
            settled,
            taken_over,
        }
    }
}

/// Checkouts refused before any order was made (breaker open), which the
/// client then retried after waiting.
static REFUSED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// [`try_checkout`], retried like a client honouring `Retry-After` while
/// checkout is refused outright (the breaker is open), up to 20 times.
async fn checkout_until_admitted(
    url: &str,
    shopper: i64,
    key: &str,
    body: Vec<u8>,
) -> Option<(u16, Option<String>)> {
    for _ in 0..20 {
        let answer = try_checkout(url, shopper, key, body.clone()).await;
        if answer != Some((503, None)) {
            return answer;
        }
        REFUSED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    Some((503, None))
}

/// One checkout as a client would send it; `None` if no answer came (the
/// origin died under it). The answer's status and its order id, if any.
async fn try_checkout(
    url: &str,
    shopper: i64,
    key: &str,
    body: Vec<u8>,
) -> Option<(u16, Option<String>)> {
    let token = access_token(shopper, &["shopper"]);
    let auth = format!("Bearer {token}");
    let uri: http::Uri = format!("{url}/api/v1/checkout").parse().unwrap();
    let authority = uri.authority().unwrap().to_string();
    let stream = tokio::net::TcpStream::connect(&authority).await.ok()?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .ok()?;
    tokio::spawn(conn);
    let req = http::Request::post("/api/v1/checkout")
        .header("host", &authority)
        .header("authorization", &auth)
        .header("idempotency-key", key)
        .header("content-type", "application/json")
        .body(http_body_util::Full::new(bytes::Bytes::from(body)))
        .unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(30), sender.send_request(req))
        .await
        .ok()?
        .ok()?;
    let status = resp.status().as_u16();
    let body = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .ok()?
        .to_bytes();
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let id = v["id"]
        .as_str()
        .or(v["order"]["id"].as_str())
        .map(str::to_string);
    assert!(
        id.is_some() || status == 503,
        "an answer without an order: {status} {}",
        String::from_utf8_lossy(&body)
    );
    Some((status, id))
}

/// Runs `n` futures at once; their results in order.
async fn futures_join<F, Fut>(n: usize, f: F) -> Vec<edgeshop_e2e::Reply>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = edgeshop_e2e::Reply>,
{
    futures::future::join_all((0..n).map(f)).await
}

#[tokio::test(flavor = "multi_thread")]
async fn checkout_reaches_an_https_provider_through_the_configured_ca() {
    let dir = TempDir::new("checkout-tls");
    let ca = edgeshop_e2e::private_ca(&dir.0);
    let sim = start_paysim(&[
        "--tls-cert",
        ca.cert.to_str().unwrap(),
        "--tls-key",
        ca.key.to_str().unwrap(),
    ]);
    // A CA file that holds no certificate stops the origin at start-up,
    // naming the flag, instead of failing every checkout later.
    let empty = dir.0.join("empty.pem");
    std::fs::write(&empty, "").unwrap();
    // (It stops before opening any database, so the catalog is untouched.)
    let catalog = dir.0.join("untouched.db");
    let log = edgeshop_e2e::start_origin(
        &catalog,
        &[
            "--orders",
            dir.0.join("never.db").to_str().unwrap(),
            "--payments-url",
            &sim.url,
            "--payments-ca",
            empty.to_str().unwrap(),
        ],
    )
    .err()
    .expect("the origin refuses an empty --payments-ca");
    assert!(log.contains("--payments-ca"), "{log}");
    assert!(!catalog.exists());

    let origin = edgeshop_e2e::start_checkout_origin_at(
        &dir.0,
        &sim.url,
        &["--payments-ca", ca.ca.to_str().unwrap()],
    );
    let ps = products(&origin, 1, 1).await;
    let ada = access_token(101, &["shopper"]);
    let r = checkout(
        &origin,
        &ada,
        Some("k-tls-1"),
        body(&[(ps[0].0, 1, ps[0].1)], "pm_card_visa"),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json()["status"], "completed");
    assert_eq!(stock_of(&origin, ps[0].0).await, ps[0].2 - 1);
}
