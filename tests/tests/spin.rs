//! The same `spin.toml` on real Spin 4.1: what browsers and `curl` get
//! from the cache middleware there is what they get from our host, since
//! the logic is in the components. Skipped (and says so) on a machine
//! without Spin; `cargo xtask test` finds it (see `setup::spin`).

use edgeshop_e2e::{
    Client, Purpose, TempDir, browse, post_json, primary_connection, request, request_as,
    spin_or_skip, start_origin_on_seed, start_spin, start_spin_reading,
};

#[tokio::test(flavor = "multi_thread")]
async fn browser_requests_are_compressed_cache_hits_on_real_spin() {
    let Some(spin) = spin_or_skip() else {
        return;
    };
    let dir = TempDir::new("spin");
    let app = start_spin(&spin, &dir.0);
    for path in [
        "/api/v1/products/1",
        "/api/v1/products?limit=20",
        "/api/v1/products?category=kitchen-knives&sort=price_asc",
        "/api/v1/categories",
    ] {
        let url = format!("{}{path}", app.url);
        let first = browse(&url, &[]).await;
        assert_eq!(first.status, 200, "{path}: {}\n{}", first.text(), app.log());
        assert_eq!(first.header("content-encoding"), Some("br"), "{path}");
        let second = browse(&url, &[]).await;
        assert!(
            second.cache_status().starts_with("edgeshop; hit"),
            "{path} on Spin, second browser request: {}",
            second.cache_status()
        );
        assert_eq!(second.body, first.body);
        assert!(second.wire.len() < second.body.len());
        // A browser revalidating what it holds.
        let etag = second.header("etag").unwrap().to_string();
        let again = browse(&url, &[("if-none-match", &etag)]).await;
        assert_eq!(again.status, 304, "{path}");
        // curl, plain and --compressed, from the same stored response.
        let plain = request_as(Client::Curl, Purpose::Read, "GET", &url, &[], vec![]).await;
        assert!(plain.cache_status().starts_with("edgeshop; hit"), "{path}");
        assert_eq!(plain.header("content-encoding"), None);
        assert_eq!(plain.body, first.body);
        let gz = request("GET", &url, &[("accept-encoding", "gzip")], vec![]).await;
        assert_eq!(gz.header("content-encoding"), Some("gzip"));
        assert_eq!(gz.body, first.body);
    }
}

/// A `cargo xtask up --spin` PoP: Spin reading the origin over Hrana with
/// the edge token. Reads, accounts and purges go to the origin; with the
/// origin gone, what the cache holds is still served (`stale-if-error`)
/// and what it does not is a problem a person can act on.
#[tokio::test(flavor = "multi_thread")]
async fn a_spin_pop_reads_the_origin_over_hrana_and_keeps_serving_what_it_holds() {
    let Some(spin) = spin_or_skip() else {
        return;
    };
    let dir = TempDir::new("spin-hrana");
    let origin = start_origin_on_seed(&dir.0, &[]);
    let app = start_spin_reading(&spin, &dir.0, &origin.url);
    let page = format!("{}/api/v1/products/1", app.url);
    let first = browse(&page, &[]).await;
    assert_eq!(first.status, 200, "{}\n{}", first.text(), app.log());
    assert!(
        browse(&page, &[])
            .await
            .cache_status()
            .starts_with("edgeshop; hit")
    );

    // Accounts are written at the origin, under the edge token's grant.
    let creds = serde_json::json!({ "email": "hrana@example.com",
        "password": "a long enough password" });
    let signup = post_json(&format!("{}/api/v1/auth/signup", app.url), &creds, &[]).await;
    assert_eq!(signup.status, 201, "{}", signup.text());
    let login = post_json(&format!("{}/api/v1/auth/login", app.url), &creds, &[]).await;
    assert_eq!(login.status, 200, "{}", login.text());

    // A commit at the primary purges the cached page at once: the cache
    // reads the `changes` table at the origin.
    primary_connection(&origin)
        .await
        .execute(
            "UPDATE products SET title = 'Seen over Hrana' WHERE id = 1",
            (),
        )
        .await
        .unwrap();
    let fresh = browse(&page, &[]).await;
    assert!(fresh.text().contains("Seen over Hrana"), "{}", fresh.text());

    // The origin goes away.
    drop(origin);
    let held = browse(&page, &[]).await;
    assert_eq!(held.status, 200, "{}", held.text());
    assert!(held.text().contains("Seen over Hrana"));
    let never = browse(&format!("{}/api/v1/products/2", app.url), &[]).await;
    let problem = never.problem(503);
    assert!(problem["detail"].as_str().is_some(), "{problem}");
}

/// The traced builds of the layers and the catalog on real Spin, started
/// with its experimental `wasi:otel` support: they serve as the plain
/// ones do, and Spin exports their spans with its own, in the client's
/// trace. Spin 4.1 does not nest them: its `outer-span-context` does not
/// give a component its request span, so each one's parent is the one in
/// `traceparent` as the client sent it (on our host, the PoP's, and the
/// host nests them).
#[tokio::test(flavor = "multi_thread")]
async fn component_spans_reach_the_collector_from_real_spin_with_its_wasi_otel_support() {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::trace::v1::{Span, span::SpanKind};
    use prost::Message;
    let Some(spin) = spin_or_skip() else {
        return;
    };
    let dir = TempDir::new("spin-otel");
    let root = edgeshop_e2e::root();
    // spin.toml with the traced builds of the layers and the catalog (the
    // first read of a product is the cache's miss), its sources absolute.
    let mut manifest = std::fs::read_to_string(root.join("spin.toml"))
        .unwrap()
        .replace(
            "source = \"target/",
            &format!("source = \"{}/target/", root.display()),
        );
    let layers = ["ratelimit", "auth-middleware", "cache", "catalog"];
    for layer in layers {
        manifest = manifest.replace(
            &format!("components/{layer}.wasm\""),
            &format!("components/{layer}.traced.wasm\""),
        );
    }
    let manifest_path = dir.0.join("spin.toml");
    std::fs::write(&manifest_path, manifest).unwrap();
    // Spin speaks OTLP/HTTP with protobuf bodies only.
    let collector = Collector::start();
    let mut env = edgeshop_e2e::app_env();
    env.push(("OTEL_EXPORTER_OTLP_ENDPOINT", collector.url.clone()));
    env.push(("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf".to_string()));
    env.push(("OTEL_BSP_SCHEDULE_DELAY", "100".to_string()));
    let app = edgeshop_e2e::start_spin_local(
        &spin,
        &manifest_path,
        &dir.0,
        &env,
        &["--experimental-wasi-otel"],
    );
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let client_span = "00f067aa0ba902b7";
    let got = browse(
        &format!("{}/api/v1/products/1", app.url),
        &[("traceparent", &format!("00-{trace}-{client_span}-01"))],
    )
    .await;
    assert_eq!(got.status, 200, "{}\n{}", got.text(), app.log());
    // Each span of the trace with its scope's name.
    let spans = |bodies: &[Vec<u8>]| -> Vec<(String, Span)> {
        bodies
            .iter()
            .flat_map(|b| {
                ExportTraceServiceRequest::decode(b.as_slice())
                    .unwrap()
                    .resource_spans
            })
            .flat_map(|r| r.scope_spans)
            .flat_map(|s| {
                let scope = s.scope.map(|s| s.name).unwrap_or_default();
                s.spans.into_iter().map(move |span| (scope.clone(), span))
            })
            .filter(|(_, s)| hex(&s.trace_id) == trace)
            .collect()
    };
    let started = std::time::Instant::now();
    let spans = loop {
        let spans = spans(&collector.bodies.lock().unwrap());
        if layers
            .iter()
            .all(|l| spans.iter().any(|(_, s)| s.name == *l))
            && spans.iter().any(|(_, s)| s.kind == SpanKind::Server as i32)
        {
            break spans;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(15),
            "Spin did not export the layers' spans: {spans:#?}\n{}",
            app.log()
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    // Spin's span for the request, under the client's.
    let server = &spans
        .iter()
        .find(|(_, s)| s.kind == SpanKind::Server as i32)
        .unwrap()
        .1;
    assert_eq!(hex(&server.parent_span_id), client_span, "{server:#?}");
    // A span per component, made by the component, in its own scope, inside
    // Spin's request span in time, all ids distinct.
    for layer in layers {
        let (scope, span) = spans.iter().find(|(_, s)| s.name == layer).unwrap();
        assert_eq!(scope, layer);
        assert_eq!(span.kind, SpanKind::Internal as i32, "{span:#?}");
        assert_eq!(hex(&span.parent_span_id), client_span, "{span:#?}");
        assert!(
            span.start_time_unix_nano >= server.start_time_unix_nano
                && span.end_time_unix_nano <= server.end_time_unix_nano,
            "{layer} inside Spin's request: {spans:#?}"
        );
    }
    let ids: std::collections::HashSet<&[u8]> =
        spans.iter().map(|(_, s)| s.span_id.as_slice()).collect();
    assert_eq!(ids.len(), spans.len(), "{spans:#?}");
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// An OTLP/HTTP receiver that keeps every body it is sent.
struct Collector {
    url: String,
    bodies: std::sync::Arc<std::sync::Mutex<Vec<Vec<u8>>>>,
}

impl Collector {
    fn start() -> Collector {
        use std::io::{BufRead, BufReader, Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let bodies = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let store = bodies.clone();
        // Ends with the test process; one request per connection.
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut length = 0;
                let mut line = String::new();
                while reader.read_line(&mut line).unwrap_or(0) > 0 && line != "\r\n" {
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap_or(0);
                    }
                    line.clear();
                }
                let mut body = vec![0; length];
                if reader.read_exact(&mut body).is_ok() {
                    store.lock().unwrap().push(body);
                }
                let _ = stream.write_all(
                    b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                );
            }
        });
        Collector { url, bodies }
    }
}
