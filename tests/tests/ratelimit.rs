//! The rate-limit middleware in the real host, in front of the test
//! guests, with the shipped policies: exact admission under concurrency,
//! independent keys, no spoofing through headers, the 429 and its fields,
//! and what each store-failure policy does.

use edgeshop_e2e::{Host, request, root};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn limited_host() -> Host {
    edgeshop_e2e::component("ratelimit");
    edgeshop_e2e::component("test-guests");
    Host::start(&root().join("tests/fixtures/ratelimit.toml"), &[], &[])
}

/// GET `path` from the local address `from` (any 127.x.y.z works on
/// Linux), on a fresh connection; returns the status.
async fn get_from(host: &Host, from: &str, path: &str, extra: &str) -> u16 {
    let addr: std::net::SocketAddr = host.url.trim_start_matches("http://").parse().unwrap();
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(format!("{from}:0").parse().unwrap()).unwrap();
    let mut stream = socket.connect(addr).await.unwrap();
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nhost: {addr}\r\n{extra}connection: close\r\n\r\n")
                .as_bytes(),
        )
        .await
        .unwrap();
    let mut out = Vec::new();
    stream.read_to_end(&mut out).await.unwrap();
    let head = String::from_utf8_lossy(&out[..12.min(out.len())]).to_string();
    head[9..12].parse().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_clients_on_one_key_get_exactly_rate_times_time_plus_burst() {
    let host = std::sync::Arc::new(limited_host());
    // `browse`: 1200 per 60 s (one per 50 ms), burst 200.
    let (interval, burst) = (Duration::from_millis(50), 200u64);
    let start = Instant::now();
    let run = Duration::from_secs(3);
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let host = host.clone();
        tasks.push(tokio::spawn(async move {
            let (mut ok, mut refused) = (0u64, 0u64);
            while start.elapsed() < run {
                match get_from(&host, "127.0.0.1", "/hello", "").await {
                    200 => ok += 1,
                    429 => refused += 1,
                    other => panic!("unexpected status {other}"),
                }
            }
            (ok, refused)
        }));
    }
    let (mut ok, mut refused) = (0, 0);
    for t in tasks {
        let (o, r) = t.await.unwrap();
        ok += o;
        refused += r;
    }
    let elapsed = start.elapsed();
    let bound = burst + (elapsed.as_nanos() / interval.as_nanos()) as u64 + 1;
    println!("admitted {ok}, refused {refused} in {elapsed:?} (bound {bound})");
    assert!(refused > 0, "the flood was never refused");
    assert!(ok <= bound, "admitted {ok} > bound {bound}");
    // Exact, not merely bounded: nothing lost to races either.
    let floor = burst + (run.as_nanos() / interval.as_nanos()) as u64 - 2;
    assert!(ok >= floor, "admitted {ok} < {floor}");

    // Another client address has its own budget.
    assert_eq!(get_from(&host, "127.0.0.2", "/hello", "").await, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn headers_a_client_writes_do_not_change_whose_budget_it_spends() {
    let host = limited_host();
    // `sign-in` refills one request per 3 s: spend the burst of 10, then
    // every spoofing attempt inside those 3 s must still be refused.
    let path = "/api/v1/auth/signup";
    // The guests have no such route: admitted means 404, refused 429.
    for _ in 0..10 {
        assert_eq!(get_from(&host, "127.0.0.3", path, "").await, 404);
    }
    for spoof in [
        "x-forwarded-for: 198.51.100.7\r\n",
        "x-real-ip: 198.51.100.7\r\n",
        "forwarded: for=198.51.100.9\r\n",
        "spin-client-addr: 198.51.100.8:1234\r\n",
        "edgeshop-auth-account: 7\r\n",
    ] {
        assert_eq!(
            get_from(&host, "127.0.0.3", path, spoof).await,
            429,
            "{spoof}"
        );
    }
    assert_eq!(
        get_from(&host, "127.0.0.4", path, "").await,
        404,
        "a real other client"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refusal_is_a_problem_with_retry_after_and_ratelimit_fields() {
    let host = limited_host();
    let url = format!("{}/api/v1/auth/signup", host.url);
    // `sign-in`: 20 per 60 s (one per 3 s), burst 10.
    let first = request("GET", &url, &[], Vec::new()).await;
    assert_eq!(
        first.header("ratelimit-policy"),
        Some("\"sign-in\";q=20;w=60")
    );
    assert_eq!(first.header("ratelimit"), Some("\"sign-in\";r=9;t=3"));
    for _ in 0..9 {
        request("GET", &url, &[], Vec::new()).await;
    }
    let refused = request("GET", &url, &[], Vec::new()).await;
    assert_eq!(refused.status, 429);
    assert_eq!(
        refused.header("content-type"),
        Some("application/problem+json")
    );
    assert_eq!(refused.header("retry-after"), Some("3"));
    assert!(refused.header("ratelimit").unwrap().contains("r=0"));
    assert!(refused.text().contains("sign-in"), "{}", refused.text());
    // Another policy's budget is untouched.
    let other = request("GET", &format!("{}/hello", host.url), &[], Vec::new()).await;
    assert_eq!(other.status, 200);
    assert_eq!(other.header("ratelimit"), Some("\"browse\";r=199;t=1"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_store_admits_or_refuses_as_the_policy_says() {
    let host = limited_host();
    // `browse` fails open: served, without RateLimit fields.
    let r = request(
        "GET",
        &format!("{}/nostore/hello", host.url),
        &[],
        Vec::new(),
    )
    .await;
    assert_ne!(r.status, 503, "{}", r.text());
    assert!(r.header("ratelimit").is_none());
    // `sign-in` fails closed: 503, and the guest never runs.
    let r = request(
        "GET",
        &format!("{}/api/v1/auth/login", host.url),
        &[],
        Vec::new(),
    )
    .await;
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/problem+json"));
    host.wait_log("fails closed").await;
}
