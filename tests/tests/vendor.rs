//! Vendors manage their products through the edge: the vendor gateway at
//! each PoP checks an edit and forwards it to the origin, which authorises
//! and applies it on the catalog primary; the change replicates to every
//! PoP and purges cached pages by tag. Real PoPs, the real origin (with
//! checkout, for open orders), a browser-shaped shopper.

use edgeshop_e2e::openapi;
use edgeshop_e2e::{
    Host, Reply, TempDir, browse, request, set_faults, sign_up, start_checkout_origin,
    start_gateway_pop, start_paysim, vendor_call as call,
};
use serde_json::{Value, json};
use std::time::Duration;

struct Platform {
    _dir: TempDir,
    paysim: Host,
    fra: Host,
    sin: Host,
    _origin: Host,
}

/// A checkout origin, its payment simulator, and two PoPs whose vendor
/// and checkout gateways forward to it.
async fn platform(name: &str) -> Platform {
    let dir = TempDir::new(name);
    let paysim = start_paysim(&[]);
    let origin = start_checkout_origin(&dir.0, &paysim, &[]).await;
    let fra = start_gateway_pop(&origin, None, &dir.0.join("fra")).await;
    let sin = start_gateway_pop(&origin, None, &dir.0.join("sin")).await;
    Platform {
        _dir: dir,
        paysim,
        fra,
        sin,
        _origin: origin,
    }
}

/// Creates a product from `body` through `pop`.
async fn create(pop: &Host, token: &str, body: Value) -> Reply {
    call(pop, token, "POST", ALL, None, Some(body)).await
}

/// Polls `pop`'s product page like a browser until `done` holds (at most
/// 15 s, well past the replication lag), returning the last answer.
async fn shopper_sees(pop: &Host, id: i64, done: impl Fn(&Reply) -> bool) -> Reply {
    let url = format!("{}/api/v1/products/{id}", pop.url);
    for _ in 0..150 {
        let r = browse(&url, &[]).await;
        if done(&r) {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let r = browse(&url, &[]).await;
    panic!("{url} never showed the change: {} {}", r.status, r.text());
}

/// Asserts the answer is as `docs/openapi.json` documents it.
fn documented(method: &str, path: &str, reply: &Reply) {
    openapi::documented(&openapi::doc(), method, path, reply);
}

const ONE: &str = "/api/v1/vendor/products/{id}";
const ALL: &str = "/api/v1/vendor/products";
const STOCK: &str = "/api/v1/vendor/stock";

fn scarf() -> Value {
    json!({
        "title": "Blue wool scarf",
        "description": "Warm and hand-made.",
        "price_minor": 2500,
        "currency": "EUR",
        "stock": 3,
        "categories": [1],
    })
}

#[tokio::test]
async fn a_vendor_drafts_publishes_edits_and_deletes_and_every_pop_follows_through_its_cache() {
    let p = platform("vendor-flow").await;
    let ada = sign_up(&p.fra, "ada@example.com", Some("Ada's Wool")).await;
    // This origin has no object store: uploads say so, and why.
    let upload = json!({ "file_name": "a.jpg", "content_type": "image/jpeg", "size": 10 });
    let off = call(
        &p.fra,
        &ada,
        "POST",
        "/api/v1/vendor/uploads",
        None,
        Some(upload),
    )
    .await;
    assert!(
        off.problem(503)["detail"]
            .as_str()
            .unwrap()
            .contains("object store")
    );

    // A draft: theirs alone.
    let created = create(&p.fra, &ada, scarf()).await;
    assert_eq!(created.status, 201, "{}", created.text());
    documented("POST", ALL, &created);
    assert_eq!(created.header("etag"), Some("\"v1\""));
    let product = created.json();
    let id = product["id"].as_i64().unwrap();
    assert_eq!(
        created.header("location"),
        Some(format!("/api/v1/vendor/products/{id}").as_str())
    );
    assert_eq!(product["status"], "draft");
    assert_eq!(product["slug"], "blue-wool-scarf");
    assert_eq!(created.header("cache-control"), Some("private, no-store"));
    let mine = call(&p.sin, &ada, "GET", "/api/v1/vendor/products", None, None).await;
    assert_eq!(mine.status, 200, "{}", mine.text());
    documented("GET", ALL, &mine);
    assert_eq!(mine.json()["products"][0]["id"], id);
    let drafts = call(
        &p.sin,
        &ada,
        "GET",
        "/api/v1/vendor/products?status=published",
        None,
        None,
    )
    .await
    .json();
    assert_eq!(drafts["products"].as_array().unwrap().len(), 0, "{drafts}");

    // Published: every PoP shows it once the change has replicated.
    let published = call(
        &p.fra,
        &ada,
        "PATCH",
        &format!("/api/v1/vendor/products/{id}"),
        Some("\"v1\""),
        Some(json!({ "status": "published" })),
    )
    .await;
    assert_eq!(published.status, 200, "{}", published.text());
    documented("PATCH", ONE, &published);
    assert_eq!(published.header("etag"), Some("\"v2\""));
    for pop in [&p.fra, &p.sin] {
        let r = shopper_sees(pop, id, |r| r.status == 200).await;
        assert_eq!(r.json()["price"]["amount"], 2500);
    }
    // A cached page at sin ...
    let hit = shopper_sees(&p.sin, id, |r| {
        r.header("cache-status").is_some_and(|s| s.contains("hit"))
    })
    .await;
    assert_eq!(hit.json()["price"]["amount"], 2500);
    // ... is purged by a price change made through fra.
    let repriced = call(
        &p.fra,
        &ada,
        "PATCH",
        &format!("/api/v1/vendor/products/{id}"),
        Some("\"v2\""),
        Some(json!({ "price_minor": 1999, "title": "Blue wool scarf, long" })),
    )
    .await;
    assert_eq!(repriced.status, 200, "{}", repriced.text());
    assert_eq!(repriced.json()["version"], 3);
    let fresh = shopper_sees(&p.sin, id, |r| r.json()["price"]["amount"] == 1999).await;
    assert_eq!(fresh.json()["title"], "Blue wool scarf, long");
    let listing = browse(
        &format!(
            "{}/api/v1/products?vendor={}",
            p.sin.url,
            product_vendor(&fresh)
        ),
        &[],
    )
    .await;
    assert!(
        listing.text().contains("Blue wool scarf, long"),
        "{}",
        listing.text()
    );

    // Stale, missing and invalid edits are refused and change nothing.
    let path = format!("/api/v1/vendor/products/{id}");
    let stale = call(
        &p.sin,
        &ada,
        "PATCH",
        &path,
        Some("\"v2\""),
        Some(json!({ "price_minor": 1 })),
    )
    .await;
    assert_eq!(stale.status, 412, "{}", stale.text());
    documented("PATCH", ONE, &stale);
    assert_eq!(stale.json()["current_version"], 3);
    assert_eq!(stale.header("etag"), Some("\"v3\""));
    assert_eq!(
        stale.header("content-type"),
        Some("application/problem+json")
    );
    let blind = call(
        &p.sin,
        &ada,
        "PATCH",
        &path,
        None,
        Some(json!({ "price_minor": 1 })),
    )
    .await;
    assert_eq!(blind.status, 428, "{}", blind.text());
    documented("PATCH", ONE, &blind);
    let star = call(&p.sin, &ada, "DELETE", &path, Some("*"), None).await;
    assert_eq!(star.status, 428, "{}", star.text());
    for (bad, field) in [
        (json!({ "price_minor": -5 }), "price_minor"),
        (json!({ "currency": "euro" }), "currency"),
        (json!({ "categories": [999999] }), "categories"),
        (json!({ "vendor_id": 1 }), "vendor_id"),
    ] {
        let r = call(
            &p.sin,
            &ada,
            "PATCH",
            &path,
            Some("\"v3\""),
            Some(bad.clone()),
        )
        .await;
        assert_eq!(r.status, 422, "{bad}: {}", r.text());
        documented("PATCH", ONE, &r);
        assert_eq!(r.json()["field"], field, "{bad}");
    }
    let seeded = browse(&format!("{}/api/v1/products/1", p.sin.url), &[])
        .await
        .json();
    let taken = call(
        &p.sin,
        &ada,
        "PATCH",
        &path,
        Some("\"v3\""),
        Some(json!({ "slug": seeded["slug"] })),
    )
    .await;
    assert_eq!(taken.status, 409, "{}", taken.text());
    documented("PATCH", ONE, &taken);
    assert_eq!(taken.json()["field"], "slug");
    let now = call(&p.sin, &ada, "GET", &path, None, None).await;
    assert_eq!(now.json()["price_minor"], 1999, "{}", now.text());
    assert_eq!(now.json()["version"], 3);
    let version = 3;

    // Another vendor, or a shopper, reaches none of it.
    let bob = sign_up(&p.sin, "bob@example.com", Some("Bob's Boxes")).await;
    for (method, body) in [
        ("GET", None),
        ("PATCH", Some(json!({ "price_minor": 1 }))),
        ("DELETE", None),
    ] {
        let tag = format!("\"v{version}\"");
        let r = call(&p.sin, &bob, method, &path, Some(&tag), body).await;
        assert_eq!(r.status, 404, "{method}: {}", r.text());
        documented(method, ONE, &r);
    }
    let theirs = call(&p.sin, &bob, "GET", "/api/v1/vendor/products", None, None)
        .await
        .json();
    assert_eq!(theirs["products"].as_array().unwrap().len(), 0, "{theirs}");
    let shopper = sign_up(&p.sin, "carol@example.com", None).await;
    let r = call(
        &p.sin,
        &shopper,
        "GET",
        "/api/v1/vendor/products",
        None,
        None,
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.text());
    documented("GET", ALL, &r);

    // Stock for many products at once, all or nothing.
    let second = create(
        &p.fra,
        &ada,
        json!({ "title": "Blue wool scarf", "description": "", "price_minor": 900,
                "currency": "EUR", "stock": 1, "categories": [1], "status": "published" }),
    )
    .await;
    assert_eq!(second.status, 201, "{}", second.text());
    let id2 = second.json()["id"].as_i64().unwrap();
    assert_eq!(
        second.json()["slug"],
        format!("blue-wool-scarf-{id2}"),
        "a taken slug gets the id"
    );
    let bobs = create(&p.sin, &bob, scarf()).await;
    let bobs = bobs.json()["id"].as_i64().unwrap();
    let refused = call(
        &p.sin,
        &ada,
        "POST",
        "/api/v1/vendor/stock",
        None,
        Some(json!({ "items": [{ "id": id, "stock": 50 }, { "id": bobs, "stock": 0 }] })),
    )
    .await;
    assert_eq!(refused.status, 404, "{}", refused.text());
    documented("POST", STOCK, &refused);
    assert_eq!(refused.json()["field"], "items[1].id");
    let below = call(
        &p.sin,
        &ada,
        "POST",
        "/api/v1/vendor/stock",
        None,
        Some(json!({ "items": [{ "id": id, "stock": 50 }, { "id": id2, "delta": -2 }] })),
    )
    .await;
    assert_eq!(below.status, 409, "{}", below.text());
    documented("POST", STOCK, &below);
    let unchanged = call(&p.sin, &ada, "GET", &path, None, None).await.json();
    assert_eq!(
        unchanged["stock"], 3,
        "nothing of a refused request was written"
    );
    let stocked = call(
        &p.sin,
        &ada,
        "POST",
        "/api/v1/vendor/stock",
        None,
        Some(json!({ "items": [{ "id": id, "stock": 50 }, { "id": id2, "delta": 4, "version": 1 }] })),
    )
    .await;
    assert_eq!(stocked.status, 200, "{}", stocked.text());
    documented("POST", STOCK, &stocked);
    assert_eq!(
        stocked.json()["items"],
        json!([{ "id": id, "stock": 50, "version": version + 1 }, { "id": id2, "stock": 5, "version": 2 }])
    );
    shopper_sees(&p.fra, id, |r| r.status == 200 && r.json()["stock"] == 50).await;

    // Deleted: gone at every PoP, cached pages included.
    let tag = format!("\"v{}\"", version + 1);
    let gone = call(&p.fra, &ada, "DELETE", &path, Some(&tag), None).await;
    assert_eq!(gone.status, 204, "{}", gone.text());
    documented("DELETE", ONE, &gone);
    shopper_sees(&p.sin, id, |r| r.status == 404).await;
    let again = call(&p.fra, &ada, "DELETE", &path, Some(&tag), None).await;
    assert_eq!(again.status, 404, "{}", again.text());
}

fn product_vendor(product: &Reply) -> i64 {
    product.json()["vendor"]["id"].as_i64().unwrap()
}

#[tokio::test]
async fn a_product_in_an_open_order_cannot_be_deleted_and_drafts_cannot_be_bought() {
    let p = platform("vendor-open-order").await;
    let ada = sign_up(&p.fra, "ada@example.com", Some("Ada's Wool")).await;
    let mut live = scarf();
    live["status"] = json!("published");
    let created = create(&p.fra, &ada, live).await;
    assert_eq!(created.status, 201, "{}", created.text());
    let id = created.json()["id"].as_i64().unwrap();
    let draft = create(&p.fra, &ada, scarf()).await;
    let draft = draft.json()["id"].as_i64().unwrap();
    let shopper = sign_up(&p.fra, "carol@example.com", None).await;
    let order = |product: i64, price: i64| {
        json!({
            "items": [{ "product_id": product, "quantity": 1, "unit_price_minor": price }],
            "shipping_address": { "name": "Carol", "line1": "1 Main St", "city": "Berlin",
                                  "postal_code": "10115", "country": "DE" },
            "payment_method": "pm_card_visa",
        })
    };
    let checkout = |body: Value, key: &'static str| {
        let shopper = shopper.clone();
        let url = format!("{}/api/v1/checkout", p.fra.url);
        async move {
            let auth = format!("Bearer {shopper}");
            request(
                "POST",
                &url,
                &[
                    ("authorization", &auth),
                    ("content-type", "application/json"),
                    ("idempotency-key", key),
                ],
                body.to_string().into_bytes(),
            )
            .await
        }
    };
    // A draft is not for sale, whatever the client claims to have seen.
    let r = checkout(order(draft, 2500), "draft-attempt-0001").await;
    assert_eq!(r.status, 422, "{}", r.text());

    // The payment provider fails every call, so the order stays open with
    // its stock held.
    set_faults(&p.paysim, json!({ "error_percent": 100 })).await;
    let r = checkout(order(id, 2500), "open-order-00000001").await;
    assert!([202, 503, 504].contains(&r.status), "{}", r.text());
    // The hold took stock, so the product is at a new version: read it.
    let path = format!("/api/v1/vendor/products/{id}");
    let current = call(&p.fra, &ada, "GET", &path, None, None).await;
    let tag = current.header("etag").unwrap().to_string();
    let refused = call(&p.fra, &ada, "DELETE", &path, Some(&tag), None).await;
    assert_eq!(refused.status, 409, "{}", refused.text());
    documented("DELETE", ONE, &refused);
    assert!(refused.text().contains("order"), "{}", refused.text());
    let still = call(&p.fra, &ada, "GET", &path, None, None).await;
    assert_eq!(still.status, 200, "{}", still.text());
    set_faults(&p.paysim, json!({})).await;
}
