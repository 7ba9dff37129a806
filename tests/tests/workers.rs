//! The Workers twin under `wrangler dev` (workerd), where it differs from
//! a PoP by design: no replica (data at the origin over Hrana), the
//! Workers Cache API purged by the origin's change log, counters in a
//! Durable Object, and the gateways forwarding to the origin. The cases
//! every host shares are in the other files (`on_every_host!`). Skipped,
//! and says so, without wrangler (`cargo xtask test` installs it).

use edgeshop_e2e::{
    Reply, TempDir, access_token, app_env, browse, get, post_json, primary_connection, request,
    sign_up, start_checkout_origin, start_paysim, start_worker, start_worker_reading, vendor_call,
    wrangler_or_skip,
};
use serde_json::json;

/// A write at the primary drops the page from the Worker's cache (the
/// entry's tag changed in the change log), and with the origin gone the
/// Worker still serves what it holds, while what it does not hold is a
/// problem a person can act on.
#[tokio::test(flavor = "multi_thread")]
async fn the_cache_follows_the_change_log_and_serves_what_it_holds_with_the_origin_gone() {
    let Some(wrangler) = wrangler_or_skip() else {
        return;
    };
    let mut app = start_worker(&wrangler, "purge", &app_env());
    let url = format!("{}/api/v1/products/5", app.url);
    let first = get(&url).await;
    assert_eq!(first.status, 200, "{}", first.text());
    assert!(
        first
            .cache_status()
            .contains("fwd=uri-miss; fwd-status=200; stored")
    );
    let hit = get(&url).await;
    assert!(
        hit.cache_status().contains("; hit; ttl="),
        "{}",
        hit.cache_status()
    );
    assert_eq!(hit.body, first.body);
    assert!(hit.header("age").is_some());

    let primary = primary_connection(&app.origin).await;
    primary
        .execute(
            "UPDATE products SET title = 'Purged at the Worker' WHERE id = 5",
            (),
        )
        .await
        .unwrap();
    let after = get(&url).await;
    assert!(
        after.text().contains("Purged at the Worker"),
        "{}",
        after.text()
    );
    assert!(
        after.cache_status().contains("fwd=miss"),
        "{}",
        after.cache_status()
    );
    // Another page's entry is untouched by that change.
    let other = format!("{}/api/v1/products/6", app.url);
    assert_eq!(get(&other).await.status, 200);
    assert!(get(&other).await.cache_status().contains("hit"));

    app.origin.kill();
    let held = get(&url).await;
    assert_eq!(held.status, 200);
    assert!(held.text().contains("Purged at the Worker"));
    assert!(
        held.cache_status().contains("hit") && held.cache_status().contains("origin-unreachable"),
        "{}",
        held.cache_status()
    );
    let missing = get(&format!("{}/api/v1/products/7", app.url)).await;
    let p = missing.problem(503);
    assert!(p["detail"].as_str().unwrap().contains("try again"), "{p}");
}

/// The Durable Object counts every request to a budget key, so a burst of
/// concurrent requests is admitted exactly up to the quota, as a PoP's
/// compare-and-swap store does.
#[tokio::test(flavor = "multi_thread")]
async fn concurrent_requests_are_counted_exactly_by_the_durable_object() {
    let Some(wrangler) = wrangler_or_skip() else {
        return;
    };
    let mut env = app_env();
    env.retain(|(k, _)| *k != "SPIN_VARIABLE_RATELIMIT_POLICIES");
    env.push((
        "SPIN_VARIABLE_RATELIMIT_POLICIES",
        "[policy.tight]\nquota = 12\nwindow_secs = 3600\nburst = 12\nkey = \"client\"\n\
         on_store_error = \"closed\"\n\
         [[route]]\npath = \"/api/v1/categories\"\npolicy = \"tight\"\n"
            .to_string(),
    ));
    let app = start_worker(&wrangler, "exact", &env);
    let url = format!("{}/api/v1/categories", app.url);
    let answers = futures::future::join_all((0..30).map(|_| browse(&url, &[]))).await;
    let admitted = answers.iter().filter(|r| r.status == 200).count();
    let refused: Vec<&Reply> = answers.iter().filter(|r| r.status == 429).collect();
    assert_eq!((admitted, refused.len()), (12, 18));
    let p = refused[0].problem(429);
    assert!(
        p["detail"].as_str().unwrap().contains("policy tight"),
        "{p}"
    );
    assert!(refused[0].header("retry-after").is_some());
    assert_eq!(
        refused[0].header("ratelimit-policy"),
        Some("\"tight\";q=12;w=3600")
    );
    // Another route has no policy here: not counted.
    let other = get(&format!("{}/api/v1/products/1", app.url)).await;
    assert_eq!((other.status, other.header("ratelimit")), (200, None));
}

/// Checkout and the vendor API through the Worker: it checks what it can,
/// forwards the rest to the origin with the caller's token, and passes on
/// only what a client needs, never cached.
#[tokio::test(flavor = "multi_thread")]
async fn checkout_and_vendor_edits_go_through_the_worker_to_the_origin() {
    let Some(wrangler) = wrangler_or_skip() else {
        return;
    };
    let dir = TempDir::new("worker-gateways");
    let paysim = start_paysim(&[]);
    let origin = start_checkout_origin(&dir.0, &paysim, &[]).await;
    let app = start_worker_reading(&wrangler, &dir.0, &origin.url, &app_env());

    // A shopper buys two of product 3 at its price.
    let page = get(&format!("{}/api/v1/products/3", app.url)).await.json();
    let price = page["price"]["amount"].as_i64().unwrap();
    let ada = access_token(101, &["shopper"]);
    let order = json!({
        "items": [{ "product_id": 3, "quantity": 2, "unit_price_minor": price }],
        "shipping_address": { "name": "Ada Lovelace", "line1": "12 Analytical Row",
                              "city": "London", "postal_code": "N1 7AA", "country": "GB" },
        "payment_method": "pm_card_visa",
    });
    let auth = format!("Bearer {ada}");
    let placed = |key: &'static str| {
        let (app, auth, order) = (&app, auth.clone(), order.clone());
        async move {
            post_json(
                &format!("{}/api/v1/checkout", app.url),
                &order,
                &[("authorization", auth.as_str()), ("idempotency-key", key)],
            )
            .await
        }
    };
    let r = placed("worker-order-1").await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.header("cache-control"), Some("private, no-store"));
    assert_eq!(r.json()["status"], "completed");
    let id = r.json()["id"].as_str().unwrap().to_string();
    // The same key again is the same order, not a second charge.
    let again = placed("worker-order-1").await;
    assert_eq!(again.json()["id"], id.as_str(), "{}", again.text());
    let mine = browse(
        &format!("{}/api/v1/orders/{id}", app.url),
        &[("authorization", &auth)],
    )
    .await;
    assert_eq!(mine.status, 200, "{}", mine.text());
    // Refused at the edge, before any round trip: no key, no token.
    let no_key = post_json(
        &format!("{}/api/v1/checkout", app.url),
        &order,
        &[("authorization", auth.as_str())],
    )
    .await;
    no_key.problem(400);
    let anonymous = post_json(&format!("{}/api/v1/checkout", app.url), &order, &[]).await;
    anonymous.problem(401);

    // A vendor signs up at the Worker, creates a product and publishes it;
    // a shopper then reads it there, and a stale If-Match is refused.
    let vendor = sign_up(&app, "worker-vendor@example.com", Some("Worker Wares")).await;
    let created = vendor_call(
        &app,
        &vendor,
        "POST",
        "/api/v1/vendor/products",
        None,
        Some(
            json!({ "title": "Edge kettle", "description": "", "price_minor": 4200,
                     "currency": "EUR", "stock": 3, "categories": [1] }),
        ),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.text());
    assert_eq!(created.header("etag"), Some("\"v1\""));
    let pid = created.json()["id"].as_i64().unwrap();
    let path = format!("/api/v1/vendor/products/{pid}");
    let published = vendor_call(
        &app,
        &vendor,
        "PATCH",
        &path,
        Some("\"v1\""),
        Some(json!({ "status": "published" })),
    )
    .await;
    assert_eq!(published.status, 200, "{}", published.text());
    let seen = get(&format!("{}/api/v1/products/{pid}", app.url)).await;
    assert_eq!(seen.status, 200, "{}", seen.text());
    assert_eq!(seen.json()["title"], "Edge kettle");
    let stale = vendor_call(
        &app,
        &vendor,
        "PATCH",
        &path,
        Some("\"v1\""),
        Some(json!({ "price_minor": 1 })),
    )
    .await;
    stale.problem(412);
    // A shopper's token does not reach the vendor API.
    let r = vendor_call(&app, &ada, "GET", "/api/v1/vendor/products", None, None).await;
    r.problem(403);
}

/// The health path front doors check answers without touching the origin.
#[tokio::test(flavor = "multi_thread")]
async fn the_health_path_answers_for_the_front_door() {
    let Some(wrangler) = wrangler_or_skip() else {
        return;
    };
    let mut app = start_worker(&wrangler, "health", &app_env());
    app.origin.kill();
    let r = request(
        "GET",
        &format!("{}/.well-known/spin/health", app.url),
        &[],
        vec![],
    )
    .await;
    assert_eq!((r.status, r.text().as_str()), (200, "ok"));
}
