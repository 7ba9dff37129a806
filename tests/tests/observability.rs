//! Every process serves Prometheus metrics that move as a scripted
//! workload says they must: page views become cache hits at the PoP that
//! served them and requests at the front door; sign-in attempts past the
//! burst become refusals of the `sign-in` policy; a checkout becomes saga
//! steps at the origin and a captured payment at the simulator. The front
//! door's status page draws it. A replica's lag grows while its primary
//! cannot be reached and falls once it can.

use edgeshop_e2e::metrics::{Scrape, scrape};
use edgeshop_e2e::platform::Platform;
use edgeshop_e2e::{
    Client, Purpose, TempDir, browse, get, request_as, root, start_origin_on_seed, start_pop_with,
    wait_ready,
};
use std::time::{Duration, Instant};

/// What a browser sends, at the front door, from `region`.
async fn call(
    fd: &str,
    method: &str,
    path: &str,
    region: &str,
    token: Option<&str>,
    body: serde_json::Value,
) -> edgeshop_e2e::Reply {
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut headers = vec![("edgeshop-client-region", region)];
    if let Some(a) = &auth {
        headers.push(("authorization", a.as_str()));
    }
    let (purpose, body) = if body.is_null() {
        (Purpose::Read, Vec::new())
    } else {
        (Purpose::SendJson, serde_json::to_vec(&body).unwrap())
    };
    request_as(
        Client::Chromium,
        purpose,
        method,
        &format!("{fd}{path}"),
        &headers,
        body,
    )
    .await
}

/// One platform at a time: two on two cores would make the rate limiter's
/// refill and every wait a race.
static ONE_PLATFORM: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn delta(before: &Scrape, after: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    after.sum(name, labels) - before.sum(name, labels)
}

/// Prometheus as `cargo xtask test` found it (`EDGESHOP_PROMETHEUS`, with
/// promtool beside it); `None` when run by hand without it.
fn prometheus_or_skip() -> Option<std::path::PathBuf> {
    let found = std::env::var_os("EDGESHOP_PROMETHEUS")
        .filter(|p| !p.is_empty())
        .map(std::path::PathBuf::from);
    if found.is_none() {
        eprintln!(
            "skipped the Prometheus parts: EDGESHOP_PROMETHEUS is not set (cargo xtask test sets it)"
        );
    }
    found
}

#[test]
fn the_slo_rules_load_and_pass_their_unit_tests() {
    let Some(prometheus) = prometheus_or_skip() else {
        return;
    };
    let promtool = prometheus.with_file_name("promtool");
    let dir = root().join("observability/prometheus");
    for args in [
        &["check", "rules", "slo.rules.yml"][..],
        &["test", "rules", "slo.test.yml"],
    ] {
        let out = std::process::Command::new(&promtool)
            .args(args)
            .current_dir(&dir)
            .output()
            .expect("promtool");
        assert!(
            out.status.success(),
            "promtool {}:\n{}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_process_serves_metrics_that_follow_a_scripted_workload() {
    let _turn = ONE_PLATFORM.lock().await;
    let observe = prometheus_or_skip().is_some();
    let args: &[&str] = if observe { &["--observe"] } else { &[] };
    let mut platform = Platform::up("observe", args).await;
    let t = platform.topology.clone();
    let url = |part: &str| t[part]["url"].as_str().unwrap().to_string();
    let (fd, origin, paysim) = (url("front_door"), url("origin"), url("payments"));
    let (fra, sin) = (platform.pop("fra"), platform.pop("sin"));

    // Every process: OpenMetrics, its own resource use, and no label
    // that names a URL or an id.
    for base in [&fd, &fra, &platform.pop("iad"), &sin, &origin, &paysim] {
        let m = scrape(base).await;
        assert!(m.has("process_resident_memory_bytes"), "{base}\n{}", m.text);
        assert!(m.has("process_cpu_seconds_total"), "{base}");
        for labels in m.series("edgeshop_http_requests_total") {
            for (k, v) in labels {
                assert!(
                    !v.contains('?') && !v.contains("ord_") && !v.contains("pi_"),
                    "{base}: unbounded label {k}={v}"
                );
            }
        }
    }

    // N page views in Frankfurt: N requests on the route at fra, at
    // least N-1 of them cache hits, N answers from fra at the front door.
    let n = 6;
    let (fra0, fd0) = (scrape(&fra).await, scrape(&fd).await);
    for _ in 0..n {
        let r = browse(
            &format!("{fd}/api/v1/products/2"),
            &[("edgeshop-client-region", "eu")],
        )
        .await;
        assert_eq!((r.status, r.header("edgeshop-pop")), (200, Some("fra")));
    }
    let (fra1, fd1) = (scrape(&fra).await, scrape(&fd).await);
    let route = [("route", "/api/v1/..."), ("code", "200")];
    assert_eq!(
        delta(&fra0, &fra1, "edgeshop_http_requests_total", &route),
        n as f64,
        "{}",
        fra1.text
    );
    assert_eq!(
        delta(
            &fra0,
            &fra1,
            "edgeshop_http_request_duration_seconds_count",
            &route[..1]
        ),
        n as f64
    );
    let looked_up = delta(&fra0, &fra1, "edgeshop_cache_requests_total", &[]);
    let hits = delta(
        &fra0,
        &fra1,
        "edgeshop_cache_requests_total",
        &[("result", "hit")],
    );
    assert_eq!(looked_up, n as f64, "{}", fra1.text);
    assert!(hits >= (n - 1) as f64, "{hits} hits of {n}\n{}", fra1.text);
    assert_eq!(
        delta(
            &fd0,
            &fd1,
            "edgeshop_frontdoor_requests_total",
            &[("pop", "fra"), ("code", "200")]
        ),
        n as f64,
        "{}",
        fd1.text
    );
    assert_eq!(
        fd1.sum("edgeshop_frontdoor_pop_healthy", &[("pop", "fra")]),
        1.0
    );
    // The browse policy admitted each view.
    assert_eq!(
        delta(
            &fra0,
            &fra1,
            "edgeshop_ratelimit_decisions_total",
            &[("policy", "browse"), ("decision", "admit")]
        ),
        n as f64
    );

    // Sign-in attempts at sin past the policy's burst. Each is one
    // decision of the limiter's: a refusal is its own 429 (problem type
    // `too-many-requests`); what it admits the auth component answers,
    // 401 or, past five failures for the email, its own 429
    // (`too-many-attempts`), which is no refusal of the limiter's.
    let sin0 = scrape(&sin).await;
    let attempts = 14;
    let (mut refused, mut throttled) = (0, 0);
    for _ in 0..attempts {
        let r = call(
            &fd,
            "POST",
            "/api/v1/auth/login",
            "ap",
            None,
            serde_json::json!({"email": "nobody@example.com", "password": "not the password"}),
        )
        .await;
        assert!(matches!(r.status, 401 | 429), "{} {}", r.status, r.text());
        if r.status == 429 {
            match r.problem(429)["type"].as_str() {
                Some("/problems/too-many-requests") => refused += 1,
                Some("/problems/too-many-attempts") => throttled += 1,
                other => panic!("a 429 of type {other:?}"),
            }
        }
    }
    assert!(refused >= 1, "the sign-in burst never ran out");
    assert!(throttled >= 1, "the email was never throttled");
    let sin1 = scrape(&sin).await;
    let decision = |d| {
        delta(
            &sin0,
            &sin1,
            "edgeshop_ratelimit_decisions_total",
            &[("policy", "sign-in"), ("decision", d)],
        )
    };
    assert_eq!(decision("refuse"), refused as f64, "{}", sin1.text);
    assert_eq!(decision("admit"), (attempts - refused) as f64);
    assert_eq!(
        delta(
            &sin0,
            &sin1,
            "edgeshop_http_requests_total",
            &[("code", "429")]
        ),
        (refused + throttled) as f64
    );

    // One checkout: saga steps at the origin, a capture at the simulator.
    let (origin0, paysim0) = (scrape(&origin).await, scrape(&paysim).await);
    let signup = call(
        &fd,
        "POST",
        "/api/v1/auth/signup",
        "eu",
        None,
        serde_json::json!({"email": "observer@example.com", "password": "a long enough password"}),
    )
    .await;
    assert_eq!(signup.status, 201, "{}", signup.text());
    let token = signup.json()["access_token"].as_str().unwrap().to_string();
    let order = checkout(&fd, &token, "observe-checkout-1", 1, &[]).await;
    assert_eq!(order["status"], "completed", "{order}");
    let (origin1, paysim1) = (scrape(&origin).await, scrape(&paysim).await);
    for step in [
        "reserve_stock",
        "authorise_payment",
        "confirm_order",
        "capture_payment",
    ] {
        assert_eq!(
            delta(
                &origin0,
                &origin1,
                "edgeshop_saga_steps_total",
                &[("step", step), ("outcome", "done")]
            ),
            1.0,
            "{step}\n{}",
            origin1.text
        );
    }
    assert_eq!(
        delta(
            &origin0,
            &origin1,
            "edgeshop_http_requests_total",
            &[("route", "checkout"), ("code", "201")]
        ),
        1.0
    );
    assert_eq!(
        origin1.sum("edgeshop_payments_breaker", &[("state", "closed")]),
        1.0
    );
    // Where each replicated log stands (a roll may just have reset the
    // frame count to 0), and the PoPs' push streams held.
    assert!(origin1.sum("edgeshop_primary_generation", &[("db", "catalog")]) > 0.0);
    assert!(origin1.has("edgeshop_primary_frame"));
    assert!(
        origin1.sum("edgeshop_push_streams", &[]) >= 3.0,
        "{}",
        origin1.text
    );
    assert_eq!(
        delta(
            &paysim0,
            &paysim1,
            "edgeshop_paysim_payments_total",
            &[("outcome", "captured")]
        ),
        1.0,
        "{}",
        paysim1.text
    );
    assert!(
        delta(
            &paysim0,
            &paysim1,
            "edgeshop_http_requests_total",
            &[("route", "capture")]
        ) >= 1.0
    );

    // The front door answers /metrics itself, never a PoP's.
    let own = scrape(&fd).await;
    assert!(own.has("edgeshop_frontdoor_requests_total"));
    assert!(!own.has("edgeshop_cache_requests_total"));

    // The status page: a row per PoP and five charts, made server-side,
    // loading and running nothing.
    let page = get(&format!("{fd}/.well-known/edgeshop/status")).await;
    assert_eq!(page.status, 200);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert!(
        page.header("content-security-policy")
            .is_some_and(|c| c.starts_with("default-src 'none'"))
    );
    let html = page.text();
    for pop in ["fra", "iad", "sin"] {
        assert!(html.contains(&format!("<td>{pop}</td>")), "{html}");
    }
    assert_eq!(html.matches("<svg").count(), 5);
    assert!(!html.contains("<script"));

    // With --observe: Prometheus scrapes all six processes and records the
    // SLO ratios from what they served.
    if observe {
        let prom = url("prometheus");
        let query = |q: &'static str| {
            let prom = prom.clone();
            async move {
                let r = get(&format!(
                    "{prom}/api/v1/query?query={}",
                    form_urlencoded::byte_serialize(q.as_bytes()).collect::<String>()
                ))
                .await;
                assert_eq!(r.status, 200, "{}", r.text());
                r.json()["data"]["result"].as_array().unwrap().clone()
            }
        };
        let started = Instant::now();
        loop {
            let up = query("up == 1").await;
            let slo = query("edgeshop:slo_errors:ratio_rate5m").await;
            if up.len() == 6 && slo.iter().any(|s| s["metric"]["slo"] == "catalog") {
                let jobs: std::collections::BTreeSet<_> = up
                    .iter()
                    .map(|s| s["metric"]["job"].as_str().unwrap().to_string())
                    .collect();
                assert_eq!(
                    jobs.into_iter().collect::<Vec<_>>(),
                    ["frontdoor", "origin", "paysim", "pop"]
                );
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "Prometheus: up {up:?}, catalog SLO {slo:?}"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        let rules = get(&format!("{prom}/api/v1/rules")).await.json();
        let groups = rules["data"]["groups"].as_array().unwrap();
        assert!(groups.len() >= 4, "{rules}");
    }

    assert!(platform.terminate(Duration::from_secs(15)).await);
}

#[tokio::test(flavor = "multi_thread")]
async fn replica_lag_rises_while_the_primary_is_unreachable_and_falls_after() {
    let dir = TempDir::new("observe-lag");
    let origin = start_origin_on_seed(&dir.0, &[]);
    let receiver = Receiver::start().await;
    // Pulling, not pushed: the PoP asks where the primary is every
    // 500 ms, so a primary that stops answering shows at once. Its log is
    // JSON, with the access log on, and it exports traces.
    let pop = start_pop_with(
        &root().join("spin.toml"),
        &origin.url,
        &dir.0.join("pop"),
        &["--pull-only"],
        &[
            ("EDGESHOP_LOG_FORMAT", "json".to_string()),
            ("EDGESHOP_LOG", "info,edge_host::access=info".to_string()),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url.clone()),
            ("OTEL_BSP_SCHEDULE_DELAY", "100".to_string()),
            // The other encoding a collector may want, chosen the standard
            // way (the checkout trace test has the default, protobuf).
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json".to_string()),
        ],
    )
    .unwrap_or_else(|log| panic!("PoP did not start:\n{log}"));
    wait_ready(&pop).await;
    let lag = |m: &Scrape| m.sum("edgeshop_replica_lag_seconds", &[("db", "catalog")]);
    let started = Instant::now();
    while lag(&scrape(&pop.url).await) >= 1.0 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "never caught up"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The origin paused (SIGSTOP): its connections stay open, nothing
    // answers. The lag grows with the pause, and reads go on.
    signal(origin.pid(), "STOP");
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let first = lag(&scrape(&pop.url).await);
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    let paused = scrape(&pop.url).await;
    let second = lag(&paused);
    signal(origin.pid(), "CONT");
    assert!(
        first >= 1.5,
        "lag {first} s after 2.5 s paused\n{}",
        paused.text
    );
    assert!(
        second >= first + 0.5,
        "lag did not grow: {first} then {second}"
    );
    let trace_id = "0af7651916cd43dd8448eb211c80319c";
    let client_span = "b7ad6b7169203331";
    let traceparent = format!("00-{trace_id}-{client_span}-01");
    assert_eq!(
        browse(
            &format!("{}/api/v1/products/1", pop.url),
            &[("traceparent", &traceparent)]
        )
        .await
        .status,
        200
    );

    // Every line of the log is one JSON event; the read above is in the
    // access log with its route, status and client, and no query string.
    pop.wait_log(r#""url.path":"/api/v1/products/1""#).await;
    let log = pop.log();
    let events: Vec<serde_json::Value> = log
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(events.len() > 3, "{log}");
    assert!(
        events.iter().any(|e| e["target"] == "edge_host::access"
            && e["url.path"] == "/api/v1/products/1"
            && e["http.route"] == "/api/v1/..."
            && e["http.request.method"] == "GET"
            && e["http.response.status_code"] == 200
            && e["client.address"] == "127.0.0.1"
            && e["duration_ms"].is_f64()),
        "{log}"
    );

    // A read whose trace the client does not sample: no span at all.
    let unsampled = "5b8efff798038103d269b633813fc60c";
    assert_eq!(
        browse(
            &format!("{}/api/v1/products/2", pop.url),
            &[("traceparent", &format!("00-{unsampled}-{client_span}-00"))]
        )
        .await
        .status,
        200
    );

    // The traced read: the PoP's server span, the client's child, named
    // by its route, and under it a span per middleware layer and one for
    // the catalog, which answered the cache's miss (on by default while
    // exporting), each made by the component through `wasi:otel` and
    // nested by the PoP under the one in front; the access line carries
    // the server span's ids (the span that names them for the log is not
    // exported).
    let layers = ["ratelimit", "auth-middleware", "cache", "catalog"];
    let started = Instant::now();
    while receiver.trace(trace_id).len() < 1 + layers.len() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the traced read's spans did not all arrive: {:#?}",
            receiver.trace(trace_id)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Batches leave every 100 ms: any further span would be here by now.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let spans = receiver.trace(trace_id);
    assert_eq!(spans.len(), 1 + layers.len(), "{spans:#?}");
    let encodings = receiver.encodings();
    assert!(
        encodings.iter().all(|e| e == "application/json"),
        "{encodings:?}"
    );
    assert!(
        spans.iter().all(|(s, _)| s == "edgeshop-edge-host"),
        "{spans:#?}"
    );
    // Every span its own id: the layers of a chain share one store, and
    // with it one random seed.
    let ids: std::collections::HashSet<&str> = spans
        .iter()
        .map(|(_, s)| s["spanId"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), spans.len(), "{spans:#?}");
    let named = |name: &str| {
        &spans
            .iter()
            .find(|(_, s)| s["name"] == name)
            .unwrap_or_else(|| panic!("no {name} span: {spans:#?}"))
            .1
    };
    let span = named("GET /api/v1/...");
    assert_eq!(span["parentSpanId"], client_span, "{span}");
    assert_eq!(span["kind"], 2, "a server span: {span}");
    let mut parent = span;
    for layer in layers {
        let inner = named(layer);
        assert_eq!(
            inner["parentSpanId"], parent["spanId"],
            "{layer}: {spans:#?}"
        );
        assert_eq!(inner["kind"], 1, "an internal span: {inner}");
        assert_eq!(inner["scope"], layer, "the layer's own scope: {inner}");
        assert!(
            nanos(&inner["startTimeUnixNano"]) >= nanos(&parent["startTimeUnixNano"])
                && nanos(&inner["endTimeUnixNano"]) <= nanos(&parent["endTimeUnixNano"]),
            "{layer} runs inside its parent: {spans:#?}"
        );
        parent = inner;
    }
    assert!(
        receiver.trace(unsampled).is_empty(),
        "{:#?}",
        receiver.trace(unsampled)
    );
    let traced = events
        .iter()
        .find(|e| e["target"] == "edge_host::access" && e["span"]["trace_id"] == trace_id)
        .unwrap_or_else(|| panic!("no access line with the trace id\n{log}"));
    assert_eq!(traced["span"]["span_id"], span["spanId"], "{traced}");

    let resumed = Instant::now();
    loop {
        let m = scrape(&pop.url).await;
        if lag(&m) < 1.0 {
            assert_eq!(m.sum("edgeshop_replica_ready", &[("db", "catalog")]), 1.0);
            break;
        }
        assert!(
            resumed.elapsed() < Duration::from_secs(20),
            "lag never fell after the origin resumed\n{}",
            m.text
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A collector over `https` with a private CA: a process told the CA in
/// the OTLP exporter's own variable delivers its spans there; one that is
/// not (as if an attacker stood in for the collector) refuses the
/// handshake and sends nothing, and serves on regardless.
#[tokio::test(flavor = "multi_thread")]
async fn spans_reach_an_https_collector_only_when_its_certificate_checks_out() {
    let dir = TempDir::new("observe-https");
    let ca = edgeshop_e2e::private_ca(&dir.0);
    let receiver = Receiver::start_tls(admission::tls::acceptor(&ca.cert, &ca.key).unwrap()).await;
    let paysim = |trust: Option<&std::path::Path>| {
        let mut cmd = std::process::Command::new(edgeshop_e2e::binary("edgeshop-paysim"));
        cmd.args(["--listen", "127.0.0.1:0"])
            .env("EDGESHOP_WEBHOOK_SECRET", edgeshop_e2e::WEBHOOK_SECRET)
            .env("OTEL_EXPORTER_OTLP_ENDPOINT", &receiver.url)
            .env("OTEL_BSP_SCHEDULE_DELAY", "100");
        if let Some(ca) = trust {
            // And smaller exports, as a collector across the internet
            // would want them.
            cmd.env("OTEL_EXPORTER_OTLP_CERTIFICATE", ca)
                .env("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip");
        }
        edgeshop_e2e::Host::spawn(cmd).unwrap_or_else(|log| panic!("paysim did not start:\n{log}"))
    };
    let traced = |trace: &str| format!("00-{trace}-00f067aa0ba902b7-01");

    let trusting = paysim(Some(&ca.ca));
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let r = browse(
        &format!("{}/metrics", trusting.url),
        &[("traceparent", &traced(trace))],
    )
    .await;
    assert_eq!(r.status, 200);
    let started = Instant::now();
    while receiver.trace(trace).is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no span arrived over https\n{}",
            trusting.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(receiver.trace(trace)[0].0, "edgeshop-paysim");
    assert_eq!(receiver.refused(), 0);
    let encodings = receiver.encodings();
    assert!(
        encodings.iter().all(|e| e == "application/x-protobuf+gzip"),
        "{encodings:?}"
    );

    let unaware = paysim(None);
    let other = "0af7651916cd43dd8448eb211c80319c";
    let r = browse(
        &format!("{}/metrics", unaware.url),
        &[("traceparent", &traced(other))],
    )
    .await;
    assert_eq!(r.status, 200, "serving does not wait on the collector");
    let started = Instant::now();
    while receiver.refused() == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the exporter never tried the collector\n{}",
            unaware.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Batches leave every 100 ms: a span let through would be here.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        receiver.trace(other).is_empty(),
        "{:?}",
        receiver.trace(other)
    );
}

/// An OTLP/HTTP export body in OTLP's JSON shape: JSON as it came, a
/// protobuf body decoded and put in the same shape (the exporters' own
/// JSON encoding is that same mapping).
fn otlp_json(content_type: &str, body: &[u8]) -> serde_json::Value {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use prost::Message;
    match content_type {
        "application/json" => serde_json::from_slice(body).unwrap(),
        "application/x-protobuf" => {
            serde_json::to_value(ExportTraceServiceRequest::decode(body).unwrap()).unwrap()
        }
        other => panic!("an OTLP export with content-type {other:?}"),
    }
}

/// An OTLP/JSON time: a string of nanoseconds, or a number.
fn nanos(v: &serde_json::Value) -> u128 {
    v.as_str()
        .and_then(|s| s.parse().ok())
        .or_else(|| v.as_u64().map(u128::from))
        .unwrap_or_else(|| panic!("not a time: {v}"))
}

fn signal(pid: u32, name: &str) {
    let ok = std::process::Command::new("kill")
        .args([&format!("-{name}"), &pid.to_string()])
        .status()
        .expect("kill")
        .success();
    assert!(ok, "kill -{name} {pid}");
}

/// An OTLP/HTTP receiver, as a collector would be: every span it is sent,
/// with its service's name, in OTLP's JSON shape whichever encoding it
/// came in (protobuf, the exporters' default, or JSON, gzipped or not),
/// and the `content-type` of each export (`+gzip` when it came gzipped).
struct Receiver {
    url: String,
    spans: std::sync::Arc<std::sync::Mutex<Vec<(String, serde_json::Value)>>>,
    encodings: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    /// Connections whose TLS handshake failed (an `https` receiver's).
    refused: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    async fn start() -> Receiver {
        Receiver::serve(None).await
    }

    /// The receiver over `https`, proving itself with `tls`'s certificate.
    async fn start_tls(tls: tokio_rustls::TlsAcceptor) -> Receiver {
        Receiver::serve(Some(tls)).await
    }

    async fn serve(tls: Option<tokio_rustls::TlsAcceptor>) -> Receiver {
        use http_body_util::BodyExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let scheme = if tls.is_some() { "https" } else { "http" };
        let url = format!("{scheme}://{}", listener.local_addr().unwrap());
        let spans = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let encodings = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let refused = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (store, seen, failed) = (spans.clone(), encodings.clone(), refused.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (store, seen, failed) = (store.clone(), seen.clone(), failed.clone());
                let tls = tls.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(
                        move |req: http::Request<hyper::body::Incoming>| {
                            let (store, seen) = (store.clone(), seen.clone());
                            async move {
                                let path = req.uri().path().to_string();
                                let field = |name: &str| {
                                    req.headers()
                                        .get(name)
                                        .and_then(|v| v.to_str().ok())
                                        .unwrap_or_default()
                                        .to_string()
                                };
                                let (mut encoding, zipped) =
                                    (field("content-type"), field("content-encoding"));
                                let body = req.into_body().collect().await.unwrap().to_bytes();
                                assert_eq!(path, "/v1/traces");
                                let body = match zipped.as_str() {
                                    "" => body.to_vec(),
                                    "gzip" => {
                                        use std::io::Read;
                                        let mut out = Vec::new();
                                        flate2::read::GzDecoder::new(&body[..])
                                            .read_to_end(&mut out)
                                            .unwrap();
                                        encoding.push_str("+gzip");
                                        out
                                    }
                                    other => panic!("an export in content-encoding {other:?}"),
                                };
                                let export = otlp_json(encoding.trim_end_matches("+gzip"), &body);
                                seen.lock().unwrap().push(encoding);
                                let mut store = store.lock().unwrap();
                                for rs in export["resourceSpans"].as_array().unwrap() {
                                    let service = rs["resource"]["attributes"]
                                        .as_array()
                                        .unwrap()
                                        .iter()
                                        .find(|a| a["key"] == "service.name")
                                        .map(|a| a["value"]["stringValue"].as_str().unwrap())
                                        .unwrap()
                                        .to_string();
                                    for ss in rs["scopeSpans"].as_array().unwrap() {
                                        for span in ss["spans"].as_array().unwrap() {
                                            // The scope's name rides on the span.
                                            let mut span = span.clone();
                                            span["scope"] = ss["scope"]["name"].clone();
                                            store.push((service.clone(), span));
                                        }
                                    }
                                }
                                Ok::<_, std::convert::Infallible>(
                                    http::Response::builder()
                                        .header("content-type", "application/json")
                                        .body(http_body_util::Full::new(bytes::Bytes::from_static(
                                            b"{}",
                                        )))
                                        .unwrap(),
                                )
                            }
                        },
                    );
                    let http = hyper::server::conn::http1::Builder::new();
                    match tls {
                        None => {
                            let io = hyper_util::rt::TokioIo::new(stream);
                            let _ = http.serve_connection(io, service).await;
                        }
                        Some(tls) => match tls.accept(stream).await {
                            Ok(stream) => {
                                let io = hyper_util::rt::TokioIo::new(stream);
                                let _ = http.serve_connection(io, service).await;
                            }
                            Err(_) => {
                                failed.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                            }
                        },
                    }
                });
            }
        });
        Receiver {
            url,
            spans,
            encodings,
            refused,
            task,
        }
    }

    /// Connections refused at the TLS handshake so far.
    fn refused(&self) -> usize {
        self.refused.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The `content-type` of every export received so far.
    fn encodings(&self) -> Vec<String> {
        self.encodings.lock().unwrap().clone()
    }

    /// The spans of trace `id` received so far, with their services.
    fn trace(&self, id: &str) -> Vec<(String, serde_json::Value)> {
        self.spans
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, s)| {
                s["traceId"]
                    .as_str()
                    .is_some_and(|t| t.eq_ignore_ascii_case(id))
            })
            .cloned()
            .collect()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_checkout_is_one_trace_from_the_front_door_to_the_payment_provider() {
    let _turn = ONE_PLATFORM.lock().await;
    let receiver = Receiver::start().await;
    let mut platform = Platform::up_with_env(
        "observe-trace",
        &[],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url.as_str()),
            // Batches leave every 100 ms instead of every 5 s.
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ],
    )
    .await;
    let fd = platform.topology["front_door"]["url"]
        .as_str()
        .unwrap()
        .to_string();
    let signup = call(
        &fd,
        "POST",
        "/api/v1/auth/signup",
        "eu",
        None,
        serde_json::json!({"email": "tracer@example.com", "password": "a long enough password"}),
    )
    .await;
    assert_eq!(signup.status, 201, "{}", signup.text());
    let token = signup.json()["access_token"].as_str().unwrap().to_string();

    // The client starts the trace (as a browser's instrumentation would),
    // and writes the PoP's own mark of an unsampled trace, which must not
    // cost the trace its layers' spans: the PoP drops it.
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let client_span = "00f067aa0ba902b7";
    let traceparent = format!("00-{trace_id}-{client_span}-01");
    let order = checkout(
        &fd,
        &token,
        "trace-checkout-1",
        3,
        &[
            ("traceparent", &traceparent),
            ("edgeshop-trace-unsampled", "1"),
        ],
    )
    .await;
    assert_eq!(order["status"], "completed", "{order}");

    // Every hop's spans arrive, in one trace.
    let wanted = [
        "edgeshop-front-door",
        "edgeshop-edge-host",
        "edgeshop-origin",
        "edgeshop-paysim",
    ];
    let steps = [
        "reserve_stock",
        "authorise_payment",
        "confirm_order",
        "capture_payment",
    ];
    let started = Instant::now();
    let spans = loop {
        let spans = receiver.trace(trace_id);
        let services: std::collections::BTreeSet<&str> =
            spans.iter().map(|(s, _)| s.as_str()).collect();
        let names: Vec<&str> = spans
            .iter()
            .map(|(_, s)| s["name"].as_str().unwrap())
            .collect();
        if wanted.iter().all(|w| services.contains(w))
            && steps.iter().all(|s| names.contains(s))
            && names.iter().filter(|n| n.contains("capture")).count() >= 3
            && names.contains(&"auth-middleware")
            && names.contains(&"checkout")
        {
            break spans;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the trace is incomplete: {services:?} {names:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    // OTLP's default encoding, from every process.
    let encodings = receiver.encodings();
    assert!(
        encodings.iter().all(|e| e == "application/x-protobuf"),
        "{encodings:?}"
    );
    let by_id: std::collections::HashMap<&str, &(String, serde_json::Value)> = spans
        .iter()
        .map(|s| (s.1["spanId"].as_str().unwrap(), s))
        .collect();
    let parent_of = |span: &serde_json::Value| {
        let id = span["parentSpanId"].as_str().unwrap_or("");
        by_id
            .get(id)
            .map(|(service, p)| (service.as_str(), p["name"].as_str().unwrap()))
    };
    let find = |service: &str, name: &str| {
        spans
            .iter()
            .find(|(s, span)| s == service && span["name"].as_str().unwrap().contains(name))
            .map(|(_, span)| span)
            .unwrap_or_else(|| panic!("no {name} span from {service}: {spans:#?}"))
    };
    // The front door continues the client's span; each hop is a child of
    // the one before it.
    let door = find("edgeshop-front-door", "POST");
    assert_eq!(door["parentSpanId"], client_span, "{door}");
    let pop = find("edgeshop-edge-host", "POST /api/v1/checkout");
    assert_eq!(parent_of(pop), Some(("edgeshop-front-door", "POST")));
    // The route's layers, each inside the one in front, then the checkout
    // component's own span; the component passes on the `traceparent` it
    // was given, and the PoP points it at the innermost span (the
    // component's) on the way out.
    let limiter = find("edgeshop-edge-host", "ratelimit");
    assert_eq!(
        parent_of(limiter),
        Some(("edgeshop-edge-host", "POST /api/v1/checkout"))
    );
    let auth = find("edgeshop-edge-host", "auth-middleware");
    assert_eq!(parent_of(auth), Some(("edgeshop-edge-host", "ratelimit")));
    let component = spans
        .iter()
        .find(|(s, span)| s == "edgeshop-edge-host" && span["name"] == "checkout")
        .map(|(_, span)| span)
        .unwrap_or_else(|| panic!("no span of the checkout component: {spans:#?}"));
    assert_eq!(component["scope"], "checkout", "{component}");
    assert_eq!(
        parent_of(component),
        Some(("edgeshop-edge-host", "auth-middleware"))
    );
    let origin = find("edgeshop-origin", "POST checkout");
    assert_eq!(parent_of(origin), Some(("edgeshop-edge-host", "checkout")));
    for step in steps {
        let span = find("edgeshop-origin", step);
        assert!(
            matches!(parent_of(span), Some(("edgeshop-origin", _))),
            "{step}: {span}"
        );
    }
    let call = find("edgeshop-origin", "POST capture");
    assert_eq!(
        parent_of(call),
        Some(("edgeshop-origin", "capture_payment"))
    );
    let provider = find("edgeshop-paysim", "POST capture");
    assert_eq!(
        parent_of(provider),
        Some(("edgeshop-origin", "POST capture"))
    );
    // Every span of the trace hangs off another of it, or off the client.
    for (service, span) in &spans {
        let parent = span["parentSpanId"].as_str().unwrap_or("");
        assert!(
            parent == client_span || by_id.contains_key(parent),
            "{service} {span}"
        );
    }
    assert!(platform.terminate(Duration::from_secs(15)).await);
}

/// One checkout of one `product` through the front door from Frankfurt,
/// as a browser's script posts it, with `extra` fields; its order.
async fn checkout(
    fd: &str,
    token: &str,
    key: &str,
    product: i64,
    extra: &[(&str, &str)],
) -> serde_json::Value {
    let price = call(
        fd,
        "GET",
        &format!("/api/v1/products/{product}"),
        "eu",
        None,
        serde_json::Value::Null,
    )
    .await
    .json()["price"]["amount"]
        .clone();
    let auth = format!("Bearer {token}");
    let mut headers = vec![
        ("edgeshop-client-region", "eu"),
        ("authorization", auth.as_str()),
        ("idempotency-key", key),
    ];
    headers.extend_from_slice(extra);
    let body = serde_json::to_vec(&serde_json::json!({
        "items": [{"product_id": product, "quantity": 1, "unit_price_minor": price}],
        "shipping_address": {"name": "O. Server", "line1": "1 Main St",
                             "city": "Frankfurt", "postal_code": "60311", "country": "DE"},
        "payment_method": "pm_card_visa",
    }))
    .unwrap();
    let started = Instant::now();
    loop {
        let r = request_as(
            Client::Chromium,
            Purpose::SendJson,
            "POST",
            &format!("{fd}/api/v1/checkout"),
            &headers,
            body.clone(),
        )
        .await;
        match r.status {
            201 => return r.json(),
            // The account reaches the origin's identity replica first.
            503 | 401 if started.elapsed() < Duration::from_secs(10) => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            _ => panic!("checkout: {} {}", r.status, r.text()),
        }
    }
}
