//! The rate-limit middleware in the real host, with the shipped policies:
//! in front of the test guests, exact admission under concurrency,
//! independent keys, no spoofing through headers, the 429 and its fields,
//! and what each store-failure policy does; in front of the whole app from
//! `spin.toml`, every route limited, per-account budgets, and client
//! addresses taken from trusted proxies only.

use edgeshop_e2e::{
    Host, TempDir, access_token, app_env_shipped_limits, empty_identity, request, root,
    seeded_catalog,
};
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
    exchange_from(host, from, "GET", path, extra).await.0
}

/// Sends `method path` from the local address `from` with the header lines
/// `extra`; returns the status and the response head, lower-cased.
async fn exchange_from(
    host: &Host,
    from: &str,
    method: &str,
    path: &str,
    extra: &str,
) -> (u16, String) {
    let addr: std::net::SocketAddr = host.url.trim_start_matches("http://").parse().unwrap();
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(format!("{from}:0").parse().unwrap()).unwrap();
    let mut stream = socket.connect(addr).await.unwrap();
    // A browser's own fields, unless the test sends its own of a name.
    let named = |n: &str| {
        extra.lines().any(|l| {
            l.split(':')
                .next()
                .is_some_and(|e| e.trim().eq_ignore_ascii_case(n))
        })
    };
    let browser: String = edgeshop_e2e::client_fields(&addr.to_string())
        .into_iter()
        .filter(|(n, _)| !named(n))
        .map(|(n, v)| format!("{n}: {v}\r\n"))
        .collect();
    stream
        .write_all(
            format!(
                "{method} {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-length: 0\r\n{browser}{extra}connection: close\r\n\r\n"
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let mut out = Vec::new();
    stream.read_to_end(&mut out).await.unwrap();
    let text = String::from_utf8_lossy(&out).to_string();
    let head = text
        .split("\r\n\r\n")
        .next()
        .unwrap_or("")
        .to_ascii_lowercase();
    (text[9..12].parse().unwrap(), head)
}

/// The value of response header `name` in a lower-cased head.
fn field<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .map(str::trim)
}

/// The whole app from `spin.toml` on local files, with the shipped rate
/// limits and `env` on top.
fn app(env: &[(&'static str, &str)]) -> Host {
    app_with(env, &[])
}

fn app_with(env: &[(&'static str, &str)], extra: &[&str]) -> Host {
    let mut vars = app_env_shipped_limits();
    vars.extend(env.iter().map(|(k, v)| (*k, v.to_string())));
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut args = vec![
        "--sqlite".to_string(),
        format!("catalog={}", seeded_catalog().display()),
        "--sqlite".to_string(),
        format!("identity={}", empty_identity().display()),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Host::start(&root().join("spin.toml"), &args, &vars)
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
    // Another policy's budget is untouched: browsing admits, and far
    // from its limit (`near-limit`) says nothing of it.
    let other = request("GET", &format!("{}/hello", host.url), &[], Vec::new()).await;
    assert_eq!(other.status, 200);
    assert_eq!(other.header("ratelimit"), None);
    assert_eq!(other.header("ratelimit-policy"), None);
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

/// On both hosts: the limits are the rate limiter's, which runs the same
/// on each.
async fn spin_toml_limits_every_route_before_any_other_work(host: &Host) {
    // `browse` (burst 200, refilling 20 a second) tells a client of its
    // budget once half the burst or less is left: not on a first view,
    // and on every view once the client has spent a hundred or so, both
    // routes from the one budget.
    let paths = ["/api/v1/products/1", "/.well-known/jwks.json"];
    for path in paths {
        let r = request("GET", &format!("{}{path}", host.url), &[], Vec::new()).await;
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        assert_eq!(r.header("ratelimit"), None, "{path}");
    }
    let mut views = 2;
    let left = loop {
        let path = paths[views % 2];
        let r = request("GET", &format!("{}{path}", host.url), &[], Vec::new()).await;
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        views += 1;
        if let Some(field) = r.header("ratelimit") {
            assert_eq!(
                r.header("ratelimit-policy"),
                Some("\"browse\";q=1200;w=60"),
                "{path}"
            );
            break field.to_string();
        }
        assert!(views < 180, "no RateLimit field after {views} views");
    };
    let r: u64 = left
        .strip_prefix("\"browse\";r=")
        .and_then(|rest| rest.split(';').next()?.parse().ok())
        .unwrap_or_else(|| panic!("{left}"));
    assert!(r <= 100 && views >= 100, "r={r} after {views} views");
    // Sign-up and sign-in share one tight budget per client: ten bad
    // sign-ups are answered by the auth component, then it is not asked.
    let signup = format!("{}/api/v1/auth/signup", host.url);
    let json = ("content-type", "application/json");
    for _ in 0..10 {
        let r = request("POST", &signup, &[json], b"{".to_vec()).await;
        assert_eq!(r.status, 400, "{}", r.text());
        assert!(r.header("ratelimit").unwrap().starts_with("\"sign-in\""));
    }
    let login = format!("{}/api/v1/auth/login", host.url);
    let refused = request("POST", &login, &[json], b"{}".to_vec()).await;
    assert_eq!(refused.status, 429, "{}", refused.text());
    assert_eq!(
        refused.header("content-type"),
        Some("application/problem+json")
    );
    assert_eq!(refused.header("retry-after"), Some("3"));
    // Browsing is a separate budget.
    let r = request(
        "GET",
        &format!("{}/api/v1/products/2", host.url),
        &[],
        Vec::new(),
    )
    .await;
    assert_eq!(r.status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn checkout_budgets_are_per_verified_account() {
    let host = app(&[]);
    let url = format!("{}/api/v1/checkout/orders", host.url);
    let (alice, bob) = (
        access_token(101, &["shopper"]),
        access_token(102, &["shopper"]),
    );
    let as_ = |token: &str| format!("Bearer {token}");
    // `checkout`: 30 per 60 s, burst 10, keyed by account. There is no
    // checkout yet: admitted means the catalog's 404.
    for _ in 0..10 {
        let r = request("POST", &url, &[("authorization", &as_(&alice))], Vec::new()).await;
        assert_eq!(r.status, 404, "{}", r.text());
    }
    let r = request("POST", &url, &[("authorization", &as_(&alice))], Vec::new()).await;
    assert_eq!(r.status, 429, "{}", r.text());
    // Bob, from the same address, has his own budget.
    let r = request("POST", &url, &[("authorization", &as_(&bob))], Vec::new()).await;
    assert_eq!(r.status, 404);
    assert_eq!(r.header("ratelimit"), Some("\"checkout\";r=9;t=2"));
    // A token claiming to be Bob's but signed by someone else spends the
    // client address's budget, not Bob's (and the auth middleware refuses it).
    let forged = access_token(102, &["shopper"]);
    let (head, _) = forged.rsplit_once('.').unwrap();
    let forged = format!("{head}.{}", "A".repeat(86));
    let r = request(
        "POST",
        &url,
        &[("authorization", &as_(&forged))],
        Vec::new(),
    )
    .await;
    assert_eq!(r.status, 401, "{}", r.text());
    assert_eq!(r.header("ratelimit"), Some("\"checkout\";r=9;t=2"));
    let r = request("POST", &url, &[], Vec::new()).await;
    assert_eq!(r.status, 404);
    assert_eq!(r.header("ratelimit"), Some("\"checkout\";r=8;t=4"));
    let r = request("POST", &url, &[("authorization", &as_(&bob))], Vec::new()).await;
    assert_eq!(r.header("ratelimit"), Some("\"checkout\";r=8;t=4"));
    // Carol's browser session on the checkout page spends her budget (the
    // address's is down to 8 by now).
    let carol = access_token(103, &["shopper"]);
    let page = format!("{}/checkout", host.url);
    let cookie = format!("__Host-edgeshop-access={carol}");
    let r = request("GET", &page, &[("cookie", &cookie)], Vec::new()).await;
    let left = r.header("ratelimit").unwrap_or_default();
    assert!(left.starts_with("\"checkout\";r=9;"), "{left}");
}

#[tokio::test(flavor = "multi_thread")]
async fn only_a_trusted_proxy_names_the_client() {
    // A broken policies override is reported and the shipped ones apply.
    let host = app(&[
        ("SPIN_VARIABLE_RATELIMIT_TRUSTED_PROXIES", "127.0.0.2"),
        ("SPIN_VARIABLE_RATELIMIT_POLICIES", "[policy.x\n"),
    ]);
    let path = "/api/v1/auth/signup";
    let xff = |ip: &str| format!("x-forwarded-for: {ip}\r\n");
    // From an untrusted address, X-Forwarded-For changes nothing.
    for i in 0..10 {
        let (status, _) = exchange_from(
            &host,
            "127.0.0.1",
            "POST",
            path,
            &xff(&format!("198.51.100.{i}")),
        )
        .await;
        assert_ne!(status, 429);
    }
    let (status, _) = exchange_from(&host, "127.0.0.1", "POST", path, &xff("198.51.100.99")).await;
    assert_eq!(status, 429, "an untrusted peer chose its own budget");
    host.wait_log("using the shipped policies").await;
    // From the trusted proxy, the address it appended is the client.
    for _ in 0..10 {
        let (status, head) =
            exchange_from(&host, "127.0.0.2", "POST", path, &xff("198.51.100.1")).await;
        assert_ne!(status, 429, "{head}");
    }
    let (status, _) = exchange_from(&host, "127.0.0.2", "POST", path, &xff("198.51.100.1")).await;
    assert_eq!(status, 429);
    // What the client wrote before the proxy's entry is not believed.
    let (status, _) = exchange_from(
        &host,
        "127.0.0.2",
        "POST",
        path,
        &xff("198.51.100.2, 198.51.100.1"),
    )
    .await;
    assert_eq!(status, 429);
    let (status, head) =
        exchange_from(&host, "127.0.0.2", "POST", path, &xff("198.51.100.2")).await;
    assert_ne!(status, 429);
    assert_eq!(field(&head, "ratelimit"), Some("\"sign-in\";r=9;t=3"));
    // The proxy's own requests are its own client.
    let (status, _) = exchange_from(&host, "127.0.0.2", "POST", path, "").await;
    assert_ne!(status, 429);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deployment_replaces_the_policies_without_a_rebuild_or_restart() {
    let dir = TempDir::new("ratelimit-vars");
    let file = dir.0.join("variables.toml");
    std::fs::write(&file, "").unwrap();
    let host = app_with(&[], &["--variables-file", file.to_str().unwrap()]);
    let url = format!("{}/api/v1/products/1", host.url);
    let policy = |r: &edgeshop_e2e::Reply| r.header("ratelimit-policy").map(str::to_string);
    // The shipped `browse` says nothing far from its limit.
    let r = request("GET", &url, &[], Vec::new()).await;
    assert_eq!((r.status, policy(&r)), (200, None));
    let custom = "[policy.tight]\nquota = 2\nwindow_secs = 10\nburst = 2\nkey = \"client\"\n\
                  on_store_error = \"open\"\n[[route]]\npath = \"/api/v1/products/...\"\n\
                  policy = \"tight\"\n";
    std::fs::write(
        &file,
        format!("ratelimit_policies = {}\n", toml_string(custom)),
    )
    .unwrap();
    // The host re-reads the file within a fraction of a second.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let r = request("GET", &url, &[], Vec::new()).await;
        if policy(&r).as_deref() == Some("\"tight\";q=2;w=10") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the new policies were never used"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A burst of 2: one more, then refused.
    assert_eq!(request("GET", &url, &[], Vec::new()).await.status, 200);
    let r = request("GET", &url, &[], Vec::new()).await;
    assert_eq!(r.status, 429, "{}", r.text());
    // Routes the replacement does not name are not limited.
    let r = request(
        "GET",
        &format!("{}/api/v1/categories", host.url),
        &[],
        Vec::new(),
    )
    .await;
    assert_eq!(r.status, 200);
    assert!(r.header("ratelimit").is_none());
}

/// `s` as a TOML basic string.
fn toml_string(s: &str) -> String {
    format!(
        "\"{}\"",
        s.replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n")
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn api_key_budgets_are_per_key_and_keyless_requests_spend_the_clients() {
    let policies = "[policy.partners]\nquota = 60\nwindow_secs = 60\nburst = 2\n\
                    key = \"header:x-api-key\"\non_store_error = \"closed\"\n\
                    [[route]]\npath = \"/api/v1/products/...\"\npolicy = \"partners\"\n";
    let host = app(&[("SPIN_VARIABLE_RATELIMIT_POLICIES", policies)]);
    let url = format!("{}/api/v1/products/1", host.url);
    let with_key = |key: &'static str| {
        let url = url.clone();
        async move { request("GET", &url, &[("x-api-key", key)], Vec::new()).await }
    };
    assert_eq!(with_key("partner-a").await.status, 200);
    assert_eq!(with_key("partner-a").await.status, 200);
    let refused = with_key("partner-a").await;
    assert_eq!(refused.status, 429);
    assert_eq!(
        refused.header("ratelimit-policy"),
        Some("\"partners\";q=60;w=60")
    );
    // Another key, and no key at all (the client's address), are untouched.
    assert_eq!(with_key("partner-b").await.status, 200);
    let r = request("GET", &url, &[], Vec::new()).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("ratelimit"), Some("\"partners\";r=1;t=1"));
}

edgeshop_e2e::on_every_host!(
    env edgeshop_e2e::app_env_shipped_limits;
    spin_toml_limits_every_route_before_any_other_work,
);
