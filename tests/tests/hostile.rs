//! Hostile clients against a running deployment, with the real PoP
//! credentials and keys: each test makes an attack and asserts the
//! refusal and that nothing the attack aimed at changed.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use edgeshop_e2e::{
    EDGE_TOKEN, Host, ORIGIN_TOKEN, TempDir, app_env_shipped_limits, binary, content_hash,
    empty_identity, post_json, remote_connection, request, root, seeded_catalog,
    start_checkout_origin_at, start_origin_on_seed, start_pop, token_for, wait_ready,
};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Held by every test here: the flood test measures a normal client's
/// latency and must not share the two cores with another attack.
static ALONE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The claims of a token we were given, read without verifying.
fn claims(token: &str) -> serde_json::Value {
    let payload = token.split('.').nth(1).expect("a JWT");
    serde_json::from_slice(&B64.decode(payload).unwrap()).unwrap()
}

/// A token signed with the PoPs' real signing key for `sub`, naming a
/// session that was never issued (and an admin role): what a leaked key
/// lets anyone mint.
fn minted_for_invented_session(sub: &str) -> String {
    token_for(sub, "invented-by-the-attacker-0001", &["shopper", "admin"])
}

#[tokio::test(flavor = "multi_thread")]
async fn a_validly_signed_token_for_an_invented_session_is_refused_at_the_pop_and_the_origin() {
    let _alone = ALONE.lock().await;
    let dir = TempDir::new("hostile-session");
    // Checkout's order API is what the attack aims at; no payment is made.
    let origin = start_checkout_origin_at(&dir.0, "http://127.0.0.1:9", &[]);
    let pop = start_pop(
        &root().join("spin.toml"),
        &origin.url,
        &dir.0.join("pop"),
        &[],
    )
    .unwrap_or_else(|log| panic!("PoP did not start:\n{log}"));
    wait_ready(&pop).await;

    let r = post_json(
        &format!("{}/api/v1/auth/signup", pop.url),
        &serde_json::json!({ "email": "victim@example.com", "password": "a long enough password" }),
        &[],
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let real = r.json()["access_token"].as_str().unwrap().to_string();
    let sub = claims(&real)["sub"].as_str().unwrap().to_string();
    let bearer = |t: &str| format!("Bearer {t}");

    // The real token works at both: the checks below refuse the session,
    // not the key.
    let me = format!("{}/api/v1/auth/me", pop.url);
    let orders = format!("{}/api/v1/orders", origin.url);
    let ok = request("GET", &me, &[("authorization", &bearer(&real))], Vec::new()).await;
    assert_eq!(ok.status, 200, "{}", ok.text());
    let ok = request(
        "GET",
        &orders,
        &[("authorization", &bearer(&real))],
        Vec::new(),
    )
    .await;
    assert_eq!(ok.status, 200, "{}", ok.text());

    let forged = minted_for_invented_session(&sub);
    for url in [&me, &orders] {
        let r = request(
            "GET",
            url,
            &[("authorization", &bearer(&forged))],
            Vec::new(),
        )
        .await;
        let problem = r.problem(401);
        assert!(
            problem["detail"].as_str().unwrap().contains("session"),
            "{url}: {problem}"
        );
    }
    let challenge = request(
        "GET",
        &me,
        &[("authorization", &bearer(&forged))],
        Vec::new(),
    )
    .await;
    assert!(
        challenge
            .header("www-authenticate")
            .is_some_and(|c| c.contains("invalid_token")),
        "{:?}",
        challenge.header("www-authenticate")
    );
    // The admin role the attacker wrote into the token opened nothing.
    let admin = request(
        "GET",
        &format!("{}/api/v1/admin/accounts", pop.url),
        &[("authorization", &bearer(&forged))],
        Vec::new(),
    )
    .await;
    assert_eq!(admin.status, 401, "{}", admin.text());
}

/// The whole app from `spin.toml` on local files with the shipped rate
/// limits, trusting the front door's address as `cargo xtask up` does.
fn pop_behind_a_proxy() -> Host {
    let mut vars = app_env_shipped_limits();
    vars.push((
        "SPIN_VARIABLE_RATELIMIT_TRUSTED_PROXIES",
        "127.0.0.1, ::1".into(),
    ));
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let args = [
        "--sqlite".to_string(),
        format!("catalog={}", seeded_catalog().display()),
        "--sqlite".to_string(),
        format!("identity={}", empty_identity().display()),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Host::start(&root().join("spin.toml"), &args, &vars)
}

fn front_door(pop: &Host, dir: &TempDir) -> Host {
    let config = serde_json::json!({
        "pops": [{ "name": "fra", "region": "eu", "url": pop.url }],
        "nearest": { "eu": ["fra"] },
    });
    let path = dir.0.join("front-door.json");
    std::fs::write(&path, config.to_string()).unwrap();
    let mut cmd = Command::new(binary("front-door"));
    cmd.args(["--listen", "127.0.0.1:0", "--config"]).arg(&path);
    Host::spawn(cmd).unwrap_or_else(|log| panic!("front door did not start:\n{log}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_behind_the_front_door_cannot_choose_its_own_rate_limit_key() {
    let _alone = ALONE.lock().await;
    let dir = TempDir::new("hostile-xff");
    let pop = pop_behind_a_proxy();
    let fd = front_door(&pop, &dir);
    let login = format!("{}/api/v1/auth/login", fd.url);
    // `sign-in` admits a burst of 10 per client, then one per 3 s. Each
    // guess claims another address, in every field a proxy might believe
    // (and names another account, so no per-account lock interferes).
    let mut refused = 0;
    for i in 0..40 {
        let claimed = format!("198.51.100.{}", i + 1);
        let forwarded = format!("for={claimed}");
        let body = serde_json::json!({
            "email": format!("nobody{i}@example.com"),
            "password": "wrong guess 123",
        });
        let r = post_json(
            &login,
            &body,
            &[
                ("x-forwarded-for", claimed.as_str()),
                ("x-real-ip", claimed.as_str()),
                ("forwarded", forwarded.as_str()),
            ],
        )
        .await;
        if i < 10 {
            assert_eq!(r.status, 401, "guess {i} is within the burst: {}", r.text());
        } else if r.status == 429 {
            assert!(r.text().contains("sign-in"), "{}", r.text());
            refused += 1;
        }
    }
    // At most one request refills during the run (one per 3 s).
    assert!(
        refused >= 28,
        "only {refused} of 30 guesses past the burst were limited"
    );
}

/// Sends one request with `host` as its `Host` field, on a raw
/// connection (a client library would refuse to); returns the status, the
/// header section and the body.
async fn with_host(url: &str, host: &str) -> (u16, String, String) {
    let addr = url.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(
            format!(
                "GET /api/v1/products/1 HTTP/1.1\r\nhost: {host}\r\naccept: application/json\r\n\
                 accept-encoding: gzip, br\r\nconnection: close\r\n\r\n"
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let mut out = Vec::new();
    stream.read_to_end(&mut out).await.unwrap();
    let text = String::from_utf8_lossy(&out).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (
        text[9..12].parse().unwrap(),
        head.to_ascii_lowercase(),
        body.to_string(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_host_field_that_is_not_an_authority_is_refused_at_the_pop_and_the_front_door() {
    let _alone = ALONE.lock().await;
    let dir = TempDir::new("hostile-host");
    let pop = pop_behind_a_proxy();
    let fd = front_door(&pop, &dir);
    for url in [&pop.url, &fd.url] {
        let (status, _, _) = with_host(url, "shop.example.com").await;
        assert_eq!(status, 200, "{url}: a plain host name");
        // Every host gets the one app, so invented hosts share its cache
        // entries instead of each growing the cache by a copy.
        for (i, invented) in ["other.example", "ANOTHER.example:8443", "127.0.0.9"]
            .iter()
            .enumerate()
        {
            let (status, head, _) = with_host(url, &format!("{i}.{invented}")).await;
            assert_eq!(status, 200, "{url}: {invented}");
            assert!(
                head.contains("cache-status: edgeshop; hit"),
                "{url}: {invented} made its own entry:\n{head}"
            );
        }
        for bad in [
            "evil.example/admin?x=",
            "user@shop.example.com",
            "shop.example.com:99999",
            &"a".repeat(300),
        ] {
            let (status, _, body) = with_host(url, bad).await;
            assert_eq!(status, 400, "{url}: {bad}");
            let problem: serde_json::Value = serde_json::from_str(&body).unwrap();
            assert!(
                problem["detail"].as_str().unwrap().contains("Host header"),
                "{problem}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_edge_token_runs_only_what_the_edge_flows_need() {
    let _alone = ALONE.lock().await;
    let dir = TempDir::new("hostile-edge-token");
    let origin = start_checkout_origin_at(&dir.0, "http://127.0.0.1:9", &[]);
    let admin_catalog = remote_connection(&origin, "catalog", ORIGIN_TOKEN).await;
    let admin_identity = remote_connection(&origin, "identity", ORIGIN_TOKEN).await;
    let before = (
        content_hash(&admin_catalog).await,
        content_hash(&admin_identity).await,
    );

    let edge_catalog = remote_connection(&origin, "catalog", EDGE_TOKEN).await;
    let edge_identity = remote_connection(&origin, "identity", EDGE_TOKEN).await;
    // What the edge does is allowed: reads, and the sign-in lock.
    let mut rows = edge_catalog
        .query("SELECT count(*) FROM products", ())
        .await
        .unwrap();
    assert!(rows.next().await.unwrap().unwrap().get::<i64>(0).unwrap() > 0);
    edge_identity
        .execute(
            "INSERT INTO login_failures (email_key, failures, window_start, locked_until) \
             VALUES (zeroblob(32), 1, 1, 0)",
            (),
        )
        .await
        .unwrap();
    edge_identity
        .execute(
            "DELETE FROM login_failures WHERE email_key = zeroblob(32)",
            (),
        )
        .await
        .unwrap();

    // Everything an attacker holding the edge token tried on 2026-11-30,
    // and its neighbours.
    let orders_file = dir.0.join("orders.db");
    let attach = format!("ATTACH '{}' AS o", orders_file.display());
    for (db, sql) in [
        ("catalog", attach.as_str()),
        ("catalog", "UPDATE products SET price_minor = 1"),
        (
            "catalog",
            "UPDATE products SET stock = 1000000 WHERE id = 1",
        ),
        ("catalog", "INSERT INTO products (id) VALUES (999999)"),
        ("catalog", "DELETE FROM products WHERE id = 1"),
        ("catalog", "INSERT INTO changes (tag) VALUES ('x')"),
        ("catalog", "PRAGMA wal_checkpoint(TRUNCATE)"),
        ("catalog", "PRAGMA writable_schema = 1"),
        ("catalog", "PRAGMA user_version = 99"),
        ("catalog", "CREATE TABLE t (x)"),
        (
            "catalog",
            "CREATE TEMP TRIGGER t AFTER INSERT ON vendors BEGIN UPDATE products SET price_minor = 1; END",
        ),
        ("catalog", "DROP TABLE products"),
        ("catalog", "SELECT load_extension('/tmp/x.so')"),
        (
            "identity",
            "INSERT INTO account_roles (account_id, role, granted_at) VALUES (1, 'admin', 1)",
        ),
        ("identity", "UPDATE accounts SET kind = 'vendor'"),
        (
            "identity",
            "UPDATE sessions SET expires_at = expires_at + 1000000",
        ),
        (
            "identity",
            "INSERT INTO revocations (session_id, revoked_at, purge_after) VALUES ('x', 1, 2)",
        ),
        ("identity", "DELETE FROM sessions"),
    ] {
        // Sent as raw Hrana pipelines: an attacker is not bound by what a
        // client library agrees to send.
        let body = serde_json::json!({
            "baton": null,
            "requests": [{ "type": "execute", "stmt": { "sql": sql } }, { "type": "close" }],
        });
        let r = request(
            "POST",
            &format!("{}/db/{db}/v3/pipeline", origin.url),
            &[
                ("authorization", &format!("Bearer {EDGE_TOKEN}")),
                ("content-type", "application/json"),
            ],
            body.to_string().into_bytes(),
        )
        .await;
        assert_eq!(r.status, 200, "{sql}: {}", r.text());
        let result = &r.json()["results"][0];
        assert_eq!(
            result["type"], "error",
            "the edge token ran: {sql}: {result}"
        );
        let message = result["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains("not authorized"), "{sql}: {result}");
    }
    // `orders` is out of reach altogether.
    let orders = remote_connection(&origin, "orders", EDGE_TOKEN).await;
    assert!(orders.execute("SELECT 1", ()).await.is_err());

    assert_eq!(
        (
            content_hash(&admin_catalog).await,
            content_hash(&admin_identity).await
        ),
        before,
        "a refused statement changed a database"
    );
    // The operator's token keeps its reach.
    admin_catalog
        .execute(
            "UPDATE products SET price_minor = price_minor WHERE id = 1",
            (),
        )
        .await
        .unwrap();
}

/// How many wrong guesses may have their password checked in a guessing
/// run that lasted `secs`: the free failures, then one each time a lock
/// ends (locks last 1 s, 2 s, 4 s, ..., each to the end of a whole second).
fn checks_allowed(secs: f64) -> usize {
    let mut allowed = 5;
    let (mut lock, mut ends) = (1.0, 2.0);
    while ends <= secs + 1.0 {
        allowed += 1;
        lock *= 2.0;
        ends += lock + 1.0;
    }
    allowed
}

#[tokio::test(flavor = "multi_thread")]
async fn guesses_at_three_pops_at_once_get_at_most_five_answers() {
    let _alone = ALONE.lock().await;
    let dir = TempDir::new("hostile-guesses");
    let origin = start_origin_on_seed(&dir.0, &[]);
    let mut pops = Vec::new();
    for name in ["fra", "iad", "sin"] {
        let pop = start_pop(
            &root().join("spin.toml"),
            &origin.url,
            &dir.0.join(name),
            &[],
        )
        .unwrap_or_else(|log| panic!("PoP {name} did not start:\n{log}"));
        wait_ready(&pop).await;
        pops.push(pop);
    }
    let login = |pop: &Host, password: &str| {
        let url = format!("{}/api/v1/auth/login", pop.url);
        let body = serde_json::json!({ "email": "target@example.com", "password": password });
        async move { post_json(&url, &body, &[]).await }
    };
    let right = "the right password, at last";
    let r = post_json(
        &format!("{}/api/v1/auth/signup", pops[0].url),
        &serde_json::json!({ "email": "target@example.com", "password": right }),
        &[],
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    // Every PoP knows the account before the attack (its replica has it).
    for pop in &pops {
        let mut r = login(pop, right).await;
        for _ in 0..100 {
            if r.status == 200 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            r = login(pop, right).await;
        }
        assert_eq!(r.status, 200, "{}: {}", pop.url, r.text());
    }

    // Thirty wrong guesses at once, ten at each PoP.
    let started = Instant::now();
    let guesses = (0..30).map(|i| login(&pops[i % 3], "a wrong guess, again"));
    let replies = futures::future::join_all(guesses).await;
    let secs = started.elapsed().as_secs_f64();
    let statuses: Vec<u16> = replies.iter().map(|r| r.status).collect();
    for r in replies.iter().filter(|r| r.status == 429) {
        let problem = r.problem(429);
        assert!(problem["retry_after"].as_i64().unwrap() >= 1, "{problem}");
        assert!(r.header("retry-after").is_some());
    }
    let checked = statuses.iter().filter(|s| **s == 401).count();
    assert!(
        statuses.iter().all(|s| *s == 401 || *s == 429),
        "{statuses:?}"
    );
    assert!(
        (1..=checks_allowed(secs)).contains(&checked),
        "{checked} passwords checked in {secs:.2} s: {statuses:?}"
    );
    // Only the checked guesses count, at the primary.
    let identity = remote_connection(&origin, "identity", ORIGIN_TOKEN).await;
    let mut rows = identity
        .query("SELECT failures, locked_until FROM login_failures", ())
        .await
        .unwrap();
    let row = rows.next().await.unwrap().expect("the address's failures");
    assert_eq!(row.get::<i64>(0).unwrap(), checked as i64);
    let locked_until = row.get::<i64>(1).unwrap();

    // Locked everywhere, even for the right password (unless the lock is
    // about to end on a slow machine); open again after.
    let unix_now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64()
    };
    if locked_until as f64 - unix_now() > 0.5 {
        for pop in &pops {
            assert_eq!(login(pop, right).await.status, 429);
        }
    }
    tokio::time::sleep(Duration::from_secs_f64(
        (locked_until as f64 - unix_now()).max(0.0) + 0.2,
    ))
    .await;
    let r = login(&pops[2], right).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let mut rows = identity
        .query("SELECT count(*) FROM login_failures", ())
        .await
        .unwrap();
    let left: i64 = rows.next().await.unwrap().unwrap().get(0).unwrap();
    assert_eq!(left, 0, "a successful sign-in clears the failures");
}

/// What one hostile connection saw.
struct Held {
    /// How long the server kept it open.
    open_for: Duration,
    /// The first bytes the server sent, if any.
    first: Vec<u8>,
}

impl Held {
    /// Was it answered 503 with a problem and closed at once, for being
    /// past a connection bound?
    fn refused(&self) -> bool {
        let head = String::from_utf8_lossy(&self.first);
        head.starts_with("HTTP/1.1 503") && head.contains("application/problem+json")
    }
}

/// Opens a connection from the local address `from`, counts it in
/// `connected`, sends `prefix` and then one byte of a header every `drip`
/// (none when `drip` is zero), until the server closes it.
async fn held_open(
    url: &str,
    from: &str,
    prefix: &[u8],
    drip: Duration,
    connected: &AtomicUsize,
) -> Held {
    let addr: std::net::SocketAddr = url.trim_start_matches("http://").parse().unwrap();
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(format!("{from}:0").parse().unwrap()).unwrap();
    let mut stream = socket.connect(addr).await.unwrap();
    let opened = Instant::now();
    connected.fetch_add(1, Ordering::Relaxed);
    let mut first = Vec::new();
    // A refused connection may be closed before this is written.
    let _ = stream.write_all(prefix).await;
    let mut buf = [0u8; 4096];
    loop {
        let wait = if drip.is_zero() {
            Duration::from_secs(30)
        } else {
            drip
        };
        match tokio::time::timeout(wait, stream.read(&mut buf)).await {
            // The server closed (or reset) the connection.
            Ok(Ok(0)) | Ok(Err(_)) => break,
            // An answer: read on until the close.
            Ok(Ok(n)) => {
                if first.is_empty() {
                    first = buf[..n].to_vec();
                }
            }
            Err(_) if drip.is_zero() => break,
            Err(_) => {
                if stream.write_all(b"x").await.is_err() {
                    break;
                }
            }
        }
    }
    Held {
        open_for: opened.elapsed(),
        first,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn two_thousand_idle_or_slow_connections_starve_no_one_and_are_all_closed_in_time() {
    let _alone = ALONE.lock().await;
    let dir = TempDir::new("hostile-slow");
    let vars = edgeshop_e2e::app_env();
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let args = [
        "--sqlite".to_string(),
        format!("catalog={}", seeded_catalog().display()),
        "--sqlite".to_string(),
        format!("identity={}", empty_identity().display()),
        "--header-read-timeout-secs".to_string(),
        "2".to_string(),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    // It trusts 127.0.0.1, where the front door and the normal client are;
    // the attackers come from other addresses (`Host::try_start`).
    let pop = Host::start(&root().join("spin.toml"), &args, &vars);
    let config = serde_json::json!({
        "pops": [{ "name": "fra", "region": "eu", "url": pop.url }],
        "header_read_timeout_ms": 2000,
    });
    let path = dir.0.join("front-door.json");
    std::fs::write(&path, config.to_string()).unwrap();
    let mut cmd = Command::new(binary("front-door"));
    cmd.args(["--listen", "127.0.0.1:0", "--config"]).arg(&path);
    let fd = Host::spawn(cmd).unwrap_or_else(|log| panic!("front door did not start:\n{log}"));

    // The header timeout, and time for the close to arrive on a busy
    // machine.
    let bound = Duration::from_millis(3500);
    let drip = Duration::from_millis(300);
    let request = b"GET /api/v1/products/1 HTTP/1.1\r\nhost: shop.example.com\r\n\r\n";
    const ATTACKERS: usize = 2_000;
    // Half from one address, past its bound of 128; half spread over
    // eight addresses, 125 each, within theirs.
    let from = |i: usize| {
        if i < ATTACKERS / 2 {
            "127.0.0.2".to_string()
        } else {
            format!("127.0.0.{}", 3 + i % 8)
        }
    };
    for url in [&pop.url, &fd.url] {
        let connected = AtomicUsize::new(0);
        let attackers = futures::future::join_all((0..ATTACKERS).map(|i| {
            let (url, from, connected) = (url.to_string(), from(i), &connected);
            async move {
                match i % 3 {
                    // Connects and says nothing.
                    0 => held_open(&url, &from, b"", Duration::ZERO, connected).await,
                    // Sends a header a byte at a time, never finishing.
                    1 => {
                        held_open(&url, &from, b"GET / HTTP/1.1\r\nx-slow: ", drip, connected).await
                    }
                    // One request, then an idle keep-alive connection.
                    _ => held_open(&url, &from, request, Duration::ZERO, connected).await,
                }
            }
        }));
        // A shopper's browser while all of them are held.
        let normal = async {
            let ready = Instant::now();
            while connected.load(Ordering::Relaxed) < ATTACKERS {
                assert!(
                    ready.elapsed() < Duration::from_secs(20),
                    "{url}: attackers never connected"
                );
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            let mut took = Vec::new();
            for _ in 0..50 {
                let sent = Instant::now();
                let r = edgeshop_e2e::browse(&format!("{url}/api/v1/products/1"), &[]).await;
                took.push(sent.elapsed());
                assert_eq!(r.status, 200, "{url}: {}", r.text());
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            took.sort();
            took
        };
        let (held, took) = tokio::join!(attackers, normal);
        let p99 = took[took.len() * 99 / 100 - 1];
        println!(
            "{url}: normal client p50 {:?}, p99 {p99:?} under {ATTACKERS} hostile connections",
            took[took.len() / 2]
        );
        assert!(
            p99 < Duration::from_millis(100),
            "{url}: p99 {p99:?}: {took:?}"
        );
        for (i, h) in held.iter().enumerate() {
            assert!(
                h.open_for < bound,
                "{url}: connection {i} from {} held for {:?}",
                from(i),
                h.open_for
            );
        }
        let refused_one = held[..ATTACKERS / 2].iter().filter(|h| h.refused()).count();
        let refused_spread = held[ATTACKERS / 2..].iter().filter(|h| h.refused()).count();
        assert!(
            refused_one >= ATTACKERS / 2 - 128 - 100,
            "{url}: one address kept {} connections",
            ATTACKERS / 2 - refused_one
        );
        assert_eq!(
            refused_spread, 0,
            "{url}: clients within their bound were refused"
        );
    }
}
