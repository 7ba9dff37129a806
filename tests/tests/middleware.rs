//! Middleware chains composed by the edge host as Spin 4.1 does: each
//! layer's `wasi:http/handler` import reaches the next layer's export, the
//! app innermost, and a layer has only what it inherits, capability by
//! capability.

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
    let upstream = edgeshop_e2e::tiny_upstream().await;
    let outbound = format!("mw/outbound?url=http://127.0.0.1:{upstream}/");
    // The component holds one grant of each kind. `/` layers inherit
    // nothing, `/sql/` inherits the databases only, `/all/` everything.
    for (probe, inherited_by) in [
        ("mw/sqlite", &["/sql/", "/all/"][..]),
        ("mw/kv", &["/all/"][..]),
        ("mw/variable", &["/all/"][..]),
        (outbound.as_str(), &["/all/"][..]),
    ] {
        for prefix in ["/", "/sql/", "/all/"] {
            let r = edgeshop_e2e::get(&format!("{}{prefix}{probe}", host.url)).await;
            let granted = inherited_by.contains(&prefix);
            assert_eq!(
                r.status,
                if granted { 200 } else { 403 },
                "{prefix}{probe}: {}",
                r.text()
            );
            assert_eq!(
                r.text().starts_with("granted"),
                granted,
                "{prefix}{probe}: {}",
                r.text()
            );
        }
    }
    // What a layer inherits is the component's own value.
    let r = edgeshop_e2e::get(&format!("{}/all/mw/variable", host.url)).await;
    assert_eq!(r.text(), "granted: hello from the component's variables");
    // Every grant is still the component's own behind the layers.
    let r = edgeshop_e2e::get(&format!("{}/kv/spin?op=get&key=k", host.url)).await;
    assert_eq!((r.status, r.text().as_str()), (200, "<none>"));
}

#[tokio::test]
async fn a_secret_variable_is_read_only_by_the_component_that_declares_it() {
    // As in spin.toml, where only auth declares `token_signing_key`: the
    // app defines the secret, one component declares it, and the others,
    // or a layer in front of them inheriting everything, ask by name.
    let host = host();
    let r = edgeshop_e2e::get(&format!("{}/keeper/variable?name=signing_key", host.url)).await;
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "granted: the keeper's secret")
    );
    for probe in [
        "/variable?name=signing_key",
        "/all/mw/variable?name=signing_key",
        "/mw/variable?name=signing_key",
    ] {
        let r = edgeshop_e2e::get(&format!("{}{probe}", host.url)).await;
        assert_eq!(r.status, 403, "{probe}: {}", r.text());
        assert!(
            !r.text().contains("keeper's secret"),
            "{probe}: {}",
            r.text()
        );
    }
    let r = edgeshop_e2e::get(&format!("{}/variable?name=signing_key", host.url)).await;
    assert!(r.text().contains("Undefined"), "{}", r.text());
    // What it declares, it reads.
    let r = edgeshop_e2e::get(&format!("{}/variable?name=greeting", host.url)).await;
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "granted: hello from the component's variables")
    );
}

#[tokio::test]
async fn bodies_stream_through_the_chain_and_failures_stay_contained() {
    let host = host();
    let body = vec![b'x'; 200_000];
    let r = request("POST", &format!("{}/body", host.url), &[], body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text(), "200000");
    // A layer traps, the app or a middleware: the chain is one composed
    // instance (as on Spin), so nothing inside is left to answer for it
    // and the host's 500 names the chain; the next request is served.
    for (path, chain) in [
        ("/panic", "outer > inner > guests"),
        ("/mw/panic", "outer > inner > guests"),
        ("/sql/mw/panic", "outer > guests"),
    ] {
        let r = edgeshop_e2e::get(&format!("{}{path}", host.url)).await;
        let p = r.problem(500);
        assert!(
            p["detail"]
                .as_str()
                .unwrap()
                .contains(&format!("the {chain} component failed")),
            "{path}: {p}"
        );
        let r = edgeshop_e2e::get(&format!("{}/hello", host.url)).await;
        assert_eq!(r.status, 200, "after {path}");
    }
    host.wait_log("guest instance failed").await;
}

#[tokio::test]
async fn a_trap_fails_only_the_requests_of_its_own_instance() {
    let host = host();
    // Slow requests in flight on one route while a layer of another route
    // traps: they are in other instances and finish normally.
    let slow: Vec<_> = (0..4)
        .map(|_| {
            let url = format!("{}/sleep?ms=400", host.url);
            tokio::spawn(async move { edgeshop_e2e::get(&url).await })
        })
        .collect();
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let r = edgeshop_e2e::get(&format!("{}/sql/mw/panic", host.url)).await;
    r.problem(500);
    for s in slow {
        let r = s.await.unwrap();
        assert_eq!((r.status, r.text().as_str()), (200, "slept 400 ms"));
    }
}
