//! Hostile clients against a running deployment, with the real PoP
//! credentials and keys: each test makes an attack and asserts the
//! refusal and that nothing the attack aimed at changed.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use edgeshop_e2e::{
    EDGE_TOKEN, Host, ORIGIN_TOKEN, TempDir, app_env_shipped_limits, binary, content_hash,
    empty_identity, post_json, remote_connection, request, root, seeded_catalog,
    start_checkout_origin_at, start_pop, token_for, wait_ready,
};
use std::process::Command;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

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
/// connection (a client library would refuse to); returns the status and
/// the body.
async fn with_host(url: &str, host: &str) -> (u16, String) {
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
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    (text[9..12].parse().unwrap(), body)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_host_field_that_is_not_an_authority_is_refused_at_the_pop_and_the_front_door() {
    let dir = TempDir::new("hostile-host");
    let pop = pop_behind_a_proxy();
    let fd = front_door(&pop, &dir);
    for url in [&pop.url, &fd.url] {
        let (status, _) = with_host(url, "shop.example.com").await;
        assert_eq!(status, 200, "{url}: a plain host name");
        for bad in [
            "evil.example/admin?x=",
            "user@shop.example.com",
            "shop.example.com:99999",
            &"a".repeat(300),
        ] {
            let (status, body) = with_host(url, bad).await;
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

/// Opens a connection from the local address `from`, sends `prefix` and
/// then one byte of a header every `drip` (none when `drip` is zero);
/// returns how long the server kept it open.
async fn held_open(
    url: &str,
    from: &str,
    prefix: &[u8],
    drip: std::time::Duration,
) -> std::time::Duration {
    let addr: std::net::SocketAddr = url.trim_start_matches("http://").parse().unwrap();
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(format!("{from}:0").parse().unwrap()).unwrap();
    let mut stream = socket.connect(addr).await.unwrap();
    let opened = std::time::Instant::now();
    stream.write_all(prefix).await.unwrap();
    let mut buf = [0u8; 4096];
    loop {
        let wait = if drip.is_zero() {
            std::time::Duration::from_secs(30)
        } else {
            drip
        };
        match tokio::time::timeout(wait, stream.read(&mut buf)).await {
            // The server closed (or reset) the connection.
            Ok(Ok(0)) | Ok(Err(_)) => return opened.elapsed(),
            // A response: read on until the close.
            Ok(Ok(_)) => {}
            Err(_) if drip.is_zero() => return opened.elapsed(),
            Err(_) => {
                if stream.write_all(b"x").await.is_err() {
                    return opened.elapsed();
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn idle_and_byte_a_second_clients_are_cut_off_while_others_are_served() {
    let dir = TempDir::new("hostile-slow");
    let vars = edgeshop_e2e::app_env();
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let args = [
        "--sqlite".to_string(),
        format!("catalog={}", seeded_catalog().display()),
        "--sqlite".to_string(),
        format!("identity={}", empty_identity().display()),
        "--header-read-timeout-secs".to_string(),
        "1".to_string(),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let pop = Host::start(&root().join("spin.toml"), &args, &vars);
    let config = serde_json::json!({
        "pops": [{ "name": "fra", "region": "eu", "url": pop.url }],
        "header_read_timeout_ms": 1000,
    });
    let path = dir.0.join("front-door.json");
    std::fs::write(&path, config.to_string()).unwrap();
    let mut cmd = Command::new(binary("front-door"));
    cmd.args(["--listen", "127.0.0.1:0", "--config"]).arg(&path);
    let fd = Host::spawn(cmd).unwrap_or_else(|log| panic!("front door did not start:\n{log}"));

    let bound = std::time::Duration::from_millis(2500);
    let second = std::time::Duration::from_millis(300);
    let request = b"GET /api/v1/products/1 HTTP/1.1\r\nhost: shop.example.com\r\n\r\n";
    for url in [&pop.url, &fd.url] {
        let attackers = futures::future::join_all((0..20).map(|i| {
            let url = url.to_string();
            async move {
                match i % 3 {
                    // Connects and says nothing.
                    0 => held_open(&url, "127.0.0.2", b"", std::time::Duration::ZERO).await,
                    // Sends a header a byte at a time, never finishing.
                    1 => held_open(&url, "127.0.0.2", b"GET / HTTP/1.1\r\nx-slow: ", second).await,
                    // One request, then an idle keep-alive connection.
                    _ => held_open(&url, "127.0.0.2", request, std::time::Duration::ZERO).await,
                }
            }
        }));
        let normal = async {
            for _ in 0..10 {
                let r = edgeshop_e2e::browse(&format!("{url}/api/v1/products/1"), &[]).await;
                assert_eq!(r.status, 200, "{url}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        };
        let (held, ()) = tokio::join!(attackers, normal);
        for (i, held) in held.iter().enumerate() {
            assert!(*held < bound, "{url}: connection {i} held for {held:?}");
        }
    }
}
