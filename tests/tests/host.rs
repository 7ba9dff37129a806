//! The edge host's own behaviour, with the hostile guests of
//! `wasm-components/test-guests` and the real binary.

use edgeshop_e2e::{Host, TempDir, app_env, empty_identity, get, request, root, seeded_catalog};
use std::time::{Duration, Instant};

#[tokio::test]
async fn sets_spin_headers_and_strips_forged_ones() {
    let host = Host::guests(&[]);
    let r = request(
        "GET",
        &format!("{}/headers/a/b?x=1", host.url),
        &[
            ("spin-client-addr", "6.6.6.6:1"),
            ("spin-path-info", "/forged"),
        ],
        vec![],
    )
    .await;
    assert_eq!(r.status, 200);
    let text = r.text();
    let port = host.url.rsplit(':').next().unwrap();
    assert!(
        text.contains(&format!(
            "spin-full-url: http://127.0.0.1:{port}/headers/a/b?x=1"
        )),
        "{text}"
    );
    assert!(text.contains("spin-path-info: /headers/a/b"), "{text}");
    assert!(text.contains("spin-matched-route: /..."), "{text}");
    assert!(
        text.contains("spin-component-route: \n") || text.contains("spin-component-route: "),
        "{text}"
    );
    assert!(text.contains("spin-client-addr: 127.0.0.1:"), "{text}");
    assert!(
        !text.contains("6.6.6.6") && !text.contains("/forged"),
        "{text}"
    );
}

#[tokio::test]
async fn a_guest_that_loops_forever_is_stopped_at_the_deadline() {
    let host = Host::guests(&["--request-timeout-ms", "500"]);
    let started = Instant::now();
    let r = get(&format!("{}/spin", host.url)).await;
    let p = r.problem(504);
    assert!(
        p["detail"].as_str().unwrap().contains("did not answer"),
        "{p}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    // The host stays up and serves the next request.
    let r = get(&format!("{}/hello", host.url)).await;
    assert_eq!(r.status, 200);
    host.wait_log("deadline").await;
}

#[tokio::test]
async fn a_guest_that_grows_past_its_memory_limit_traps_cleanly() {
    let host = Host::guests(&["--guest-memory-mib", "16"]);
    get(&format!("{}/grow", host.url)).await.problem(500);
    assert_eq!(get(&format!("{}/hello", host.url)).await.status, 200);
    host.wait_log("guest").await;
}

#[tokio::test]
async fn a_panicking_guest_is_a_500_and_the_host_survives() {
    let host = Host::guests(&[]);
    let p = get(&format!("{}/panic", host.url)).await.problem(500);
    assert!(p["detail"].as_str().unwrap().contains("guests"), "{p}");
    for _ in 0..3 {
        assert_eq!(get(&format!("{}/hello", host.url)).await.status, 200);
    }
}

#[tokio::test]
async fn request_bodies_are_bounded() {
    let host = Host::guests(&["--max-body-bytes", "1024"]);
    let r = request("POST", &format!("{}/body", host.url), &[], vec![7u8; 1000]).await;
    assert_eq!((r.status, r.text().as_str()), (200, "1000"));
    request("POST", &format!("{}/body", host.url), &[], vec![7u8; 4096])
        .await
        .problem(413);
}

#[tokio::test]
async fn outbound_http_is_limited_to_allowed_hosts() {
    // An upstream on 127.0.0.1 (allowed by the fixture manifest).
    let port = edgeshop_e2e::tiny_upstream().await;
    let host = Host::guests(&[]);
    let r = get(&format!(
        "{}/outbound?url=http://127.0.0.1:{port}/",
        host.url
    ))
    .await;
    assert_eq!((r.status, r.text().as_str()), (200, "upstream said 200 OK"));
    // Same server, but named `localhost`: not on the allow-list.
    let r = get(&format!(
        "{}/outbound?url=http://localhost:{port}/",
        host.url
    ))
    .await;
    assert_eq!(r.status, 502, "{}", r.text());
    assert!(r.text().contains("HttpRequestDenied"), "{}", r.text());
}

#[tokio::test]
async fn health_and_unrouted_paths() {
    let host = Host::catalog();
    let r = get(&format!("{}/.well-known/edgeshop/health", host.url)).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["status"], "ok");
    assert_eq!(
        r.json()["components"],
        serde_json::json!([
            "assets",
            "auth",
            "auth-middleware",
            "cache",
            "catalog",
            "checkout",
            "media",
            "ratelimit",
            "storefront",
            "vendor"
        ])
    );
    // Routes sharing a chain share its composed component.
    assert_eq!(
        r.json()["chains"],
        serde_json::json!([
            "ratelimit > assets",
            "ratelimit > auth-middleware > auth",
            "ratelimit > auth-middleware > cache > catalog",
            "ratelimit > auth-middleware > cache > storefront",
            "ratelimit > auth-middleware > checkout",
            "ratelimit > auth-middleware > vendor",
            "ratelimit > cache > media",
        ])
    );
    assert_eq!(
        get(&format!("{}/.well-known/spin/health", host.url))
            .await
            .status,
        200
    );
    get(&format!("{}/nothing/here", host.url))
        .await
        .problem(404);
}

#[tokio::test]
async fn graceful_shutdown_finishes_in_flight_requests() {
    let mut host = Host::guests(&[]);
    let url = format!("{}/sleep?ms=800", host.url);
    let inflight = tokio::spawn(async move { get(&url).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    host.terminate();
    let r = inflight.await.unwrap();
    assert_eq!((r.status, r.text().as_str()), (200, "slept 800 ms"));
    let status = tokio::task::spawn_blocking(move || host.child.wait().unwrap())
        .await
        .unwrap();
    assert!(status.success(), "{status}");
}

#[test]
fn startup_errors_name_the_problem() {
    // An unsupported manifest field.
    let dir = TempDir::new("manifest");
    let manifest = dir.0.join("spin.toml");
    std::fs::write(
        &manifest,
        "spin_manifest_version = 2\n[application]\nname = \"x\"\n[component.a]\nsource = \"a.wasm\"\nfiles = [\"x\"]\n",
    )
    .unwrap();
    let log = Host::try_start(&manifest, &[], &[]).err().expect("refused");
    assert!(log.contains("component.a.files"), "{log}");

    // A required secret variable that is not set.
    let databases = [
        "--sqlite",
        &format!("catalog={}", seeded_catalog().display()),
        "--sqlite",
        &format!("identity={}", empty_identity().display()),
    ];
    let env = app_env();
    let without = |name: &str| -> Vec<(&str, &str)> {
        env.iter()
            .filter(|(k, _)| *k != name)
            .map(|(k, v)| (*k, v.as_str()))
            .collect()
    };
    for name in [
        "SPIN_VARIABLE_CURSOR_SECRET",
        "SPIN_VARIABLE_TOKEN_SIGNING_KEY",
        "SPIN_VARIABLE_TOKEN_JWKS",
    ] {
        let log = Host::try_start(&root().join("spin.toml"), &databases, &without(name))
            .err()
            .expect("refused");
        assert!(log.contains(name), "{log}");
    }

    // A database label the component needs but nobody configured.
    let log = Host::try_start(&root().join("spin.toml"), &databases[..2], &without(""))
        .err()
        .expect("refused");
    assert!(log.contains("--sqlite identity=PATH"), "{log}");
}

#[tokio::test]
async fn spin_key_value_round_trip() {
    let host = Host::guests(&[]);
    let kv = |q: &str| format!("{}/kv/spin?{q}", host.url);
    assert_eq!(get(&kv("op=get&key=a")).await.text(), "<none>");
    assert_eq!(get(&kv("op=set&key=a&value=apple")).await.text(), "ok");
    assert_eq!(get(&kv("op=set&key=b&value=banana")).await.text(), "ok");
    assert_eq!(get(&kv("op=get&key=a")).await.text(), "apple");
    assert_eq!(get(&kv("op=exists&key=b")).await.text(), "true");
    assert_eq!(get(&kv("op=keys")).await.text(), "a,b");
    assert_eq!(get(&kv("op=delete&key=a")).await.text(), "ok");
    assert_eq!(get(&kv("op=exists&key=a")).await.text(), "false");
    // A store the manifest does not grant cannot be opened.
    let r = get(&format!("{}/kv/denied", host.url)).await;
    assert_eq!((r.status, r.text().as_str()), (200, "Error::AccessDenied"));
}

#[tokio::test]
async fn wasi_keyvalue_batch() {
    let host = Host::guests(&[]);
    let r = get(&format!("{}/kv/batch", host.url)).await;
    assert_eq!(
        r.text(),
        "b0=0,b1=1,b2=2,b3=3,b4=4,b5=- b0-after-delete=false"
    );
}

/// Many requests at once, spread over several instances and running
/// concurrently inside each: atomics and compare-and-swap lose no update.
#[tokio::test]
async fn atomics_lose_no_update_under_concurrency() {
    let host = Host::guests(&[]);
    for (route, key) in [("incr", "n"), ("cas-incr", "c")] {
        let tasks: Vec<_> = (0..200)
            .map(|_| {
                let url = format!("{}/kv/{route}?key={key}", host.url);
                tokio::spawn(async move { get(&url).await })
            })
            .collect();
        for t in tasks {
            let r = t.await.unwrap();
            assert_eq!(r.status, 200, "{route}: {}", r.text());
        }
        let r = get(&format!("{}/kv/spin?op=get&key={key}", host.url)).await;
        if route == "incr" {
            // `increment` keeps a counter as 8 little-endian bytes, as
            // Spin does (the guest shows them as lossy UTF-8); the CAS
            // route keeps its own text.
            let bytes = 200i64.to_le_bytes();
            assert_eq!(r.text(), String::from_utf8_lossy(&bytes), "{route}");
        } else {
            assert_eq!(r.text(), "200", "{route}");
        }
    }
}

#[tokio::test]
async fn oversized_headers_are_431() {
    let host = Host::guests(&[]);
    let big = "x".repeat(80 << 10);
    let r = request(
        "GET",
        &format!("{}/hello", host.url),
        &[("x-big", &big)],
        vec![],
    )
    .await;
    r.problem(431);
    assert_eq!(get(&format!("{}/hello", host.url)).await.status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_burst_bigger_than_the_instance_pool_is_queued_not_failed() {
    // 300 requests at once on a pool of 8 instances (16 requests each):
    // with no worker free yet the handler starts an instance per request,
    // far past the pool. The host must queue them, not answer 500.
    let host = std::sync::Arc::new(Host::guests(&["--max-instances", "8"]));
    let mut tasks = Vec::new();
    for _ in 0..300 {
        let host = host.clone();
        tasks.push(tokio::spawn(async move {
            get(&format!("{}/sleep?ms=200", host.url)).await.status
        }));
    }
    for t in tasks {
        let status = t.await.unwrap();
        assert_eq!(status, 200, "{}", host.log());
    }
}
