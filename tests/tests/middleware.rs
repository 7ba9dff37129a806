//! Middleware chains composed by the edge host as Spin 4.1 does: each
//! layer's `wasi:http/handler` import reaches the next layer's export, the
//! app innermost, and a layer has only what it inherits.

use edgeshop_e2e::{Host, component, request, root, seeded_catalog};

fn host() -> Host {
    component("test-guests");
    component("test-middleware");
    Host::start(
        &root().join("tests/fixtures/middleware.toml"),
        &[
            "--sqlite",
            &format!("catalog={}", seeded_catalog().display()),
        ],
        &[],
    )
}

#[tokio::test]
async fn requests_pass_through_every_layer_in_order_and_back() {
    let host = host();
    let r = request(
        "GET",
        &format!("{}/headers/x", host.url),
        &[("x-identity", "forged-by-client")],
        vec![],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let seen = r.text();
    // Both layers ran on the way in, outer first; the client's identity
    // header was replaced by the one the middleware sets.
    assert!(seen.contains("x-chain: mw,mw"), "{seen}");
    assert!(seen.contains("x-identity: set-by-middleware"), "{seen}");
    assert!(!seen.contains("forged-by-client"), "{seen}");
    // The app still sees the host's Spin headers.
    assert!(seen.contains("spin-path-info: /headers/x"), "{seen}");
    // And both ran on the way out.
    assert_eq!(r.header("x-chain"), Some("mw,mw"));
}

#[tokio::test]
async fn a_middleware_can_answer_without_calling_the_next_layer() {
    let host = host();
    let r = edgeshop_e2e::get(&format!("{}/mw/stop", host.url)).await;
    assert_eq!(r.status, 403);
    assert_eq!(r.text(), "stopped by the middleware");
    assert_eq!(r.header("x-chain"), None, "no layer after it ran");
}

#[tokio::test]
async fn a_middleware_has_only_the_grants_it_inherits() {
    let host = host();
    // Inherits nothing: the app's sqlite grant is not the middleware's.
    let r = edgeshop_e2e::get(&format!("{}/mw/sqlite", host.url)).await;
    assert_eq!(r.status, 403, "{}", r.text());
    // Inherits `sqlite_databases` on this route.
    let r = edgeshop_e2e::get(&format!("{}/sql/mw/sqlite", host.url)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text(), "granted");
}

#[tokio::test]
async fn bodies_stream_through_the_chain_and_failures_stay_contained() {
    let host = host();
    let body = vec![b'x'; 200_000];
    let r = request("POST", &format!("{}/body", host.url), &[], body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text(), "200000");
    // The app traps: the middleware is told its next layer failed, and the
    // PoP stays up.
    let r = edgeshop_e2e::get(&format!("{}/panic", host.url)).await;
    assert_eq!(r.status, 502, "{}", r.text());
    let r = edgeshop_e2e::get(&format!("{}/hello", host.url)).await;
    assert_eq!(r.status, 200);
}
