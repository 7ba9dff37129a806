//! The OpenAPI document (`docs/openapi.json`) against the live routes:
//! every route `spin.toml` serves is documented and every documented path
//! is routed; each path allows exactly the documented methods (the `Allow`
//! of a 405); and real answers, from a PoP running the shipped app, have a
//! documented status and the documented shape.

use edgeshop_e2e::openapi::{doc, documented};
use edgeshop_e2e::{
    Host, TempDir, access_token, app_env, browse, empty_identity, post_json, request, root,
    seeded_catalog,
};
use serde_json::Value;
use std::collections::BTreeSet;

/// Paths the edge host answers itself, before any route.
const HOST_PATHS: &[&str] = &[
    "/.well-known/edgeshop/health",
    "/.well-known/spin/health",
    "/.well-known/edgeshop/replication",
    "/metrics",
];

/// A documented path with its parameters filled in with ids that exist
/// (or, for orders, are well-formed).
fn concrete(path: &str) -> String {
    let order = format!("ord_{}", "0".repeat(20));
    path.replace("/orders/{id}", &format!("/orders/{order}"))
        .replace("{id}", "1")
        .replace("{slug}", "kitchen")
}

/// The documented methods of a path, upper-case.
fn methods(item: &Value) -> BTreeSet<String> {
    item.as_object()
        .unwrap()
        .keys()
        .filter(|k| k.as_str() != "parameters")
        .map(|k| k.to_ascii_uppercase())
        .collect()
}

#[test]
fn every_route_in_spin_toml_is_documented_and_every_documented_path_is_routed() {
    let doc = doc();
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1."),
        "OpenAPI 3.1"
    );
    let paths = doc["paths"].as_object().unwrap();
    let app = edgeshop_manifest::load_file(&root().join("spin.toml")).expect("spin.toml");
    for path in paths.keys() {
        if HOST_PATHS.contains(&path.as_str()) {
            continue;
        }
        assert!(
            app.routes.route(&concrete(path)).is_some(),
            "{path} is documented but spin.toml routes nothing there"
        );
    }
    for (pattern, _) in app.routes.iter() {
        let raw = pattern.as_str();
        let covered = match raw.strip_suffix("/...") {
            Some(prefix) => paths.keys().any(|p| p.starts_with(&format!("{prefix}/"))),
            None => paths.contains_key(raw),
        };
        assert!(covered, "spin.toml routes {raw}, which the document omits");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn each_path_allows_exactly_the_documented_methods_and_answers_in_the_documented_shape() {
    let doc = doc();
    let dir = TempDir::new("openapi");
    let identity = dir.0.join("identity.db");
    std::fs::copy(empty_identity(), &identity).unwrap();
    let vars = app_env();
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let args = [
        "--sqlite".to_string(),
        format!("catalog={}", seeded_catalog().display()),
        "--sqlite".to_string(),
        format!("identity={}", identity.display()),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let pop = Host::start(&root().join("spin.toml"), &args, &vars);
    let bearer = format!("Bearer {}", access_token(1, &["shopper"]));
    // Past the role checks of every route, shopper's and vendor's.
    let anyone = format!("Bearer {}", access_token(1, &["shopper", "vendor"]));

    // A method no path documents gets 405, naming exactly the documented
    // ones: an undocumented method, or a documented one the route lost,
    // shows here.
    for (path, item) in doc["paths"].as_object().unwrap() {
        let url = format!("{}{}", pop.url, concrete(path));
        if HOST_PATHS.contains(&path.as_str()) {
            let r = browse(&url, &[]).await;
            documented(&doc, "GET", path, &r);
            assert_eq!(r.status, 200, "{path}");
            continue;
        }
        let r = request(
            "PUT",
            &url,
            &[
                ("authorization", &anyone),
                ("content-type", "application/json"),
            ],
            b"{}".to_vec(),
        )
        .await;
        assert_eq!(r.status, 405, "PUT {path}: {}", r.text());
        let allowed: BTreeSet<String> = r
            .header("allow")
            .unwrap_or_else(|| panic!("{path}: a 405 without Allow"))
            .split(',')
            .map(|m| m.trim().to_string())
            .collect();
        assert_eq!(allowed, methods(item), "{path}: live methods vs documented");
    }

    // Real answers in the documented shape.
    for path in [
        "/api/v1/products",
        "/api/v1/products/{id}",
        "/api/v1/categories",
        "/api/v1/vendors/{id}",
        "/.well-known/jwks.json",
        "/",
        "/search",
        "/c/{slug}",
        "/p/{id}",
        "/cart",
        "/account/signin",
        "/account/signup",
    ] {
        let url = format!("{}{}", pop.url, concrete(path));
        let r = browse(&url, &[]).await;
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        documented(&doc, "GET", path, &r);
        let head = request("HEAD", &url, &[], Vec::new()).await;
        documented(&doc, "HEAD", path, &head);
    }
    let filtered = browse(
        &format!("{}/api/v1/products?sort=price_asc&limit=2", pop.url),
        &[],
    )
    .await;
    documented(&doc, "GET", "/api/v1/products", &filtered);
    for (path, url) in [
        ("/p/{id}", "/p/999999"),
        ("/c/{slug}", "/c/no-such-category"),
        ("/search", "/search?min=ten"),
    ] {
        let page = edgeshop_e2e::navigate(&format!("{}{url}", pop.url), &[]).await;
        assert!(page.status >= 400, "{url}");
        documented(&doc, "GET", path, &page);
        let problem = browse(&format!("{}{url}", pop.url), &[]).await;
        documented(&doc, "GET", path, &problem);
    }
    for path in [
        "/checkout",
        "/orders",
        "/orders/{id}",
        "/sell",
        "/sell/products/new",
        "/sell/products/{id}",
    ] {
        let away = edgeshop_e2e::navigate(&format!("{}{}", pop.url, concrete(path)), &[]).await;
        assert_eq!(away.status, 303, "{path}");
        documented(&doc, "GET", path, &away);
    }
    let unsigned = edgeshop_e2e::request_as(
        edgeshop_e2e::Client::Chromium,
        edgeshop_e2e::Purpose::SendJson,
        "POST",
        &format!("{}/checkout", pop.url),
        &[("idempotency-key", "k")],
        b"{}".to_vec(),
    )
    .await;
    assert_eq!(unsigned.status, 401);
    documented(&doc, "POST", "/checkout", &unsigned);
    let away = edgeshop_e2e::navigate(&format!("{}/account", pop.url), &[]).await;
    assert_eq!(away.status, 303);
    documented(&doc, "GET", "/account", &away);
    let renew = edgeshop_e2e::navigate(&format!("{}/account/refresh", pop.url), &[]).await;
    documented(&doc, "GET", "/account/refresh", &renew);
    let forged = request(
        "POST",
        &format!("{}/account/signout", pop.url),
        &[("content-type", "application/x-www-form-urlencoded")],
        b"csrf=x".to_vec(),
    )
    .await;
    assert_eq!(forged.status, 403);
    documented(&doc, "POST", "/account/signout", &forged);
    let home = browse(&format!("{}/", pop.url), &[]).await;
    let linked = home
        .text()
        .split("href=\"/assets/")
        .nth(1)
        .map(|rest| format!("/assets/{}", &rest[..rest.find('"').unwrap()]))
        .expect("the home page links its stylesheet");
    let asset = browse(&format!("{}{linked}", pop.url), &[]).await;
    documented(&doc, "GET", "/assets/{name}", &asset);
    let gone = browse(&format!("{}/assets/style.0.css", pop.url), &[]).await;
    documented(&doc, "GET", "/assets/{name}", &gone);
    let missing = browse(&format!("{}/api/v1/products/999999", pop.url), &[]).await;
    assert_eq!(missing.status, 404);
    documented(&doc, "GET", "/api/v1/products/{id}", &missing);
    let bad = browse(&format!("{}/api/v1/products?limit=1000", pop.url), &[]).await;
    assert_eq!(bad.status, 400);
    documented(&doc, "GET", "/api/v1/products", &bad);

    let creds =
        serde_json::json!({ "email": "shape@example.com", "password": "a long enough password" });
    let signup = post_json(&format!("{}/api/v1/auth/signup", pop.url), &creds, &[]).await;
    assert_eq!(signup.status, 201, "{}", signup.text());
    documented(&doc, "POST", "/api/v1/auth/signup", &signup);
    let taken = post_json(&format!("{}/api/v1/auth/signup", pop.url), &creds, &[]).await;
    documented(&doc, "POST", "/api/v1/auth/signup", &taken);
    let login = post_json(&format!("{}/api/v1/auth/login", pop.url), &creds, &[]).await;
    assert_eq!(login.status, 200, "{}", login.text());
    documented(&doc, "POST", "/api/v1/auth/login", &login);
    let wrong = serde_json::json!({ "email": "shape@example.com", "password": "not the password" });
    let refused = post_json(&format!("{}/api/v1/auth/login", pop.url), &wrong, &[]).await;
    assert_eq!(refused.status, 401);
    documented(&doc, "POST", "/api/v1/auth/login", &refused);
    let tokens = login.json();
    let token = format!("Bearer {}", tokens["access_token"].as_str().unwrap());
    let me = browse(
        &format!("{}/api/v1/auth/me", pop.url),
        &[("authorization", &token)],
    )
    .await;
    assert_eq!(me.status, 200, "{}", me.text());
    documented(&doc, "GET", "/api/v1/auth/me", &me);
    let anonymous = browse(&format!("{}/api/v1/auth/me", pop.url), &[]).await;
    documented(&doc, "GET", "/api/v1/auth/me", &anonymous);
    let refresh = post_json(
        &format!("{}/api/v1/auth/refresh", pop.url),
        &serde_json::json!({ "refresh_token": tokens["refresh_token"] }),
        &[],
    )
    .await;
    assert_eq!(refresh.status, 200, "{}", refresh.text());
    documented(&doc, "POST", "/api/v1/auth/refresh", &refresh);
    let logout = post_json(
        &format!("{}/api/v1/auth/logout", pop.url),
        &serde_json::json!({}),
        &[("authorization", &token)],
    )
    .await;
    assert_eq!(logout.status, 204, "{}", logout.text());
    documented(&doc, "POST", "/api/v1/auth/logout", &logout);
    // No origin here: checkout says so in a documented way.
    let checkout = post_json(
        &format!("{}/api/v1/checkout", pop.url),
        &serde_json::json!({}),
        &[("authorization", &bearer)],
    )
    .await;
    documented(&doc, "POST", "/api/v1/checkout", &checkout);
}
