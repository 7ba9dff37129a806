//! The Workers twin under `wrangler dev` (workerd), where it differs from
//! a PoP by design: no replica (data at the origin over Hrana), the
//! Workers Cache API purged by the origin's change log, counters in a
//! Durable Object, and the gateways forwarding to the origin. The cases
//! every host shares are in the other files (`on_every_host!`). Skipped,
//! and says so, without wrangler (`cargo xtask test` installs it).

use edgeshop_e2e::{
    Client, Purpose, Reply, TempDir, access_token, app_env, browse, get, navigate, post_json,
    primary_connection, request, request_as, sign_up, start_checkout_origin, start_paysim,
    start_worker, start_worker_reading, vendor_call, wrangler_or_skip,
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

/// The value of the cookie `name` an answer sets.
fn set_cookie(r: &Reply, name: &str) -> String {
    r.headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|c| c.strip_prefix(&format!("{name}=")))
        .and_then(|rest| rest.split(';').next())
        .unwrap_or_else(|| panic!("no {name} cookie set"))
        .to_string()
}

/// The shop on the Worker, as on a PoP: catalog pages made there and kept
/// by its cache, static files, sign-up with the form, an order placed by
/// the checkout page's script with the session cookie and its page, the
/// cookie rules (a forged order refused, a signed-out browser sent to
/// renew), and the dashboard for a vendor's session only.
#[tokio::test(flavor = "multi_thread")]
async fn the_shop_runs_on_the_worker_with_sessions_orders_and_the_dashboard() {
    let Some(wrangler) = wrangler_or_skip() else {
        return;
    };
    let dir = TempDir::new("worker-shop");
    let paysim = start_paysim(&[]);
    let origin = start_checkout_origin(&dir.0, &paysim, &[]).await;
    let app = start_worker_reading(&wrangler, &dir.0, &origin.url, &app_env());
    let url = |p: &str| format!("{}{p}", app.url);

    let home = navigate(&url("/"), &[]).await;
    assert_eq!(home.status, 200, "{}", home.text());
    assert_eq!(
        home.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    let csp = home.header("content-security-policy").unwrap().to_string();
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(home.text().contains(r#"href="/p/"#));
    let again = navigate(&url("/"), &[]).await;
    assert!(
        again.cache_status().contains("hit"),
        "{}",
        again.cache_status()
    );
    assert_eq!(navigate(&url("/p/3"), &[]).await.status, 200);
    let missing = navigate(&url("/p/99999999"), &[]).await;
    assert_eq!(missing.status, 404);
    assert!(
        missing.text().contains("<h1>Not found</h1>"),
        "a page, not JSON"
    );
    let css = home
        .text()
        .split(r#"href="/assets/"#)
        .nth(1)
        .map(|rest| format!("/assets/{}", &rest[..rest.find('"').unwrap()]))
        .expect("the home page links its stylesheet");
    let file = browse(&url(&css), &[]).await;
    assert_eq!(file.status, 200, "{}", file.text());
    assert_eq!(
        file.header("cache-control"),
        Some(storefront_assets::IMMUTABLE)
    );

    // A shopper signs up with the form: the session lives in cookies.
    let form = navigate(&url("/account/signup"), &[]).await;
    assert_eq!(form.status, 200, "{}", form.text());
    let csrf = set_cookie(&form, "__Host-edgeshop-csrf");
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("csrf", csrf.as_str()),
            ("next", "/account"),
            ("email", "worker-shopper@example.com"),
            ("password", "a long enough password"),
        ])
        .finish();
    let csrf_cookie = format!("__Host-edgeshop-csrf={csrf}");
    let made = request_as(
        Client::Chromium,
        Purpose::Navigate,
        "POST",
        &url("/account/signup"),
        &[
            ("content-type", "application/x-www-form-urlencoded"),
            ("origin", app.url.as_str()),
            ("sec-fetch-site", "same-origin"),
            ("cookie", &csrf_cookie),
        ],
        body.into_bytes(),
    )
    .await;
    assert_eq!(made.status, 303, "{}", made.text());
    let session = format!(
        "__Host-edgeshop-access={}",
        set_cookie(&made, "__Host-edgeshop-access")
    );

    // The checkout page's script places an order with the cookie.
    let price = get(&url("/api/v1/products/3")).await.json()["price"]["amount"]
        .as_i64()
        .unwrap();
    let order = json!({
        "items": [{ "product_id": 3, "quantity": 1, "unit_price_minor": price }],
        "shipping_address": { "name": "Ada Lovelace", "line1": "12 Analytical Row",
                              "city": "London", "postal_code": "N1 7AA", "country": "GB" },
        "payment_method": "pm_card_visa",
    });
    let place = |site: &'static str, key: &'static str| {
        let (to, session, order) = (url("/checkout"), session.clone(), order.clone());
        async move {
            request_as(
                Client::Chromium,
                Purpose::SendJson,
                "POST",
                &to,
                &[
                    ("cookie", session.as_str()),
                    ("sec-fetch-site", site),
                    ("idempotency-key", key),
                ],
                order.to_string().into_bytes(),
            )
            .await
        }
    };
    assert_eq!(
        navigate(&url("/checkout"), &[("cookie", &session)])
            .await
            .status,
        200
    );
    let forged = place("cross-site", "worker-page-0").await;
    assert_eq!(forged.status, 403, "{}", forged.text());
    let placed = place("same-origin", "worker-page-1").await;
    assert_eq!(placed.status, 201, "{}", placed.text());
    let id = placed.json()["id"].as_str().unwrap().to_string();
    let page = navigate(&url(&format!("/orders/{id}")), &[("cookie", &session)]).await;
    assert_eq!(page.status, 200, "{}", page.text());
    assert!(page.text().contains("Confirmed"));
    assert_eq!(page.header("cache-control"), Some("private, no-store"));
    let list = navigate(&url("/orders"), &[("cookie", &session)]).await;
    assert!(list.text().contains(&id), "{}", list.text());
    let away = navigate(&url("/orders"), &[]).await;
    assert_eq!(
        (away.status, away.header("location")),
        (303, Some("/account/refresh?next=%2Forders"))
    );

    // The dashboard takes a vendor's session only.
    assert_eq!(
        navigate(&url("/sell"), &[("cookie", &session)])
            .await
            .status,
        403
    );
    let vendor = sign_up(&app, "worker-shop-vendor@example.com", Some("Worker Wares")).await;
    let vendor = format!("__Host-edgeshop-access={vendor}");
    let dash = navigate(&url("/sell"), &[("cookie", &vendor)]).await;
    assert_eq!(dash.status, 200, "{}", dash.text());
    assert!(dash.text().contains("Your shop"));
    assert!(
        dash.header("content-security-policy")
            .unwrap()
            .contains("connect-src 'self' http://127.0.0.1:9000;"),
        "{:?}",
        dash.header("content-security-policy")
    );
    let created = request_as(
        Client::Chromium,
        Purpose::SendJson,
        "POST",
        &url("/sell/products"),
        &[("cookie", vendor.as_str())],
        json!({ "title": "Edge kettle", "description": "", "price_minor": 4200,
                "currency": "EUR", "stock": 3, "categories": [1] })
        .to_string()
        .into_bytes(),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.text());
    let pid = created.json()["id"].as_i64().unwrap();
    let edit = navigate(
        &url(&format!("/sell/products/{pid}")),
        &[("cookie", &vendor)],
    )
    .await;
    assert_eq!(edit.status, 200, "{}", edit.text());
    assert!(edit.text().contains(r#"data-etag="&quot;v1&quot;""#));
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
