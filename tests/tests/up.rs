//! The README's first command: `cargo xtask up` starts the payment
//! simulator, the origin and every PoP from `cdn-config/pops.toml`, writes
//! `topology.json`, serves the catalog and checkout at every PoP, and stops
//! everything on Ctrl-C. The same walk runs with `--spin`, the PoPs then
//! being real Spin on the same `spin.toml`, and with `--primary sqld`,
//! sqld then being the primary of the catalog and identity; where they
//! differ on purpose (a Spin PoP has no replica to report on) the walk
//! says so.

use edgeshop_e2e::{
    Client, Purpose, TempDir, binary, browse, get, post_json, probe, request_as, spin_or_skip,
    sqld_or_skip,
};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Sends Ctrl-C (SIGINT) to process group `pgid`.
fn interrupt(pgid: u32) {
    let _ = Command::new("kill")
        .args(["-INT", "--", &format!("-{pgid}")])
        .status();
}

/// Interrupts `xtask up`'s process group when dropped, so a test that
/// fails midway leaks no processes. Disarmed once `xtask up` has been
/// reaped: only then could its group id be reused.
struct StopOnDrop(Option<u32>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        if let Some(pgid) = self.0 {
            interrupt(pgid);
        }
    }
}

#[tokio::test]
async fn xtask_up_serves_every_pop_and_stops_on_ctrl_c() {
    walk(None, None).await;
}

#[tokio::test]
async fn xtask_up_primary_sqld_serves_every_pop_from_sqld_and_stops_on_ctrl_c() {
    let Some(sqld) = sqld_or_skip() else {
        return;
    };
    walk(None, Some(sqld)).await;
}

#[tokio::test]
async fn xtask_up_spin_serves_every_pop_on_real_spin_and_stops_on_ctrl_c() {
    let Some(spin) = spin_or_skip() else {
        return;
    };
    walk(Some(spin), None).await;
}

/// `cargo xtask up`, with `--spin` when `spin` is given and `--primary
/// sqld` when `sqld` is, walked through as the README's "Try it" does,
/// then stopped with Ctrl-C.
async fn walk(spin: Option<std::path::PathBuf>, sqld: Option<std::path::PathBuf>) {
    // One platform at a time: two on two cores (one compiling for Spin)
    // would make the rate limiter's refill and every wait a race.
    static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _turn = ONE_AT_A_TIME.lock().await;
    let state = TempDir::new(match (&spin, &sqld) {
        (Some(_), _) => "up-spin",
        (None, Some(_)) => "up-sqld",
        (None, None) => "up",
    });
    let log_path = state.0.join("xtask.log");
    let mut cmd = Command::new(binary("xtask"));
    cmd.args(["up", "--no-build"]);
    if let Some(spin) = &spin {
        cmd.arg("--spin").env("EDGESHOP_SPIN", spin);
    }
    if let Some(sqld) = &sqld {
        cmd.args(["--primary", "sqld"]).env("EDGESHOP_SQLD", sqld);
    }
    // With wrangler here, the edge-host walk also runs the Workers twin
    // as a fourth edge location (`--workers`).
    // (Once: the Worker reads the origin's Hrana, which with sqld does
    // not serve the catalog.)
    let workers = spin.is_none() && sqld.is_none() && edgeshop_e2e::wrangler_binary().is_some();
    if workers {
        cmd.arg("--workers");
    }
    let mut child = cmd
        .env("EDGESHOP_STATE_DIR", &state.0)
        // Its own process group, so a Ctrl-C reaches xtask and everything
        // it started, as it would from a terminal.
        .process_group(0)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .expect("start xtask up");
    let pgid = child.id();
    let log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    let ctrl_c = || interrupt(pgid);
    // A failing assertion must not leave the platform running.
    let mut stop = StopOnDrop(Some(pgid));

    let topology_path = state.0.join("topology.json");
    let started = Instant::now();
    // Spin compiles every component of every PoP before it serves.
    let limit = Duration::from_secs(if spin.is_some() { 420 } else { 120 });
    while !topology_path.exists() {
        if started.elapsed() > limit || child.try_wait().unwrap().is_some() {
            ctrl_c();
            panic!("xtask up did not come up:\n{}", log());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let topology: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&topology_path).unwrap()).unwrap();
    let mut pops = topology["pops"].as_array().unwrap().clone();
    let names: Vec<&str> = pops.iter().map(|p| p["name"].as_str().unwrap()).collect();
    if workers {
        assert_eq!(names, ["fra", "iad", "sin", "wkr"]);
    } else {
        assert_eq!(names, ["fra", "iad", "sin"]);
    }
    // The Worker is walked through on its own below.
    let worker = workers.then(|| pops.pop().unwrap());
    if let Some(w) = &worker {
        assert_eq!(w["engine"], "workers", "{topology}");
    }
    let engine = if spin.is_some() { "spin" } else { "edge-host" };
    assert!(pops.iter().all(|p| p["engine"] == engine), "{topology}");

    // Secrets and the state directory are owner-only whatever the umask,
    // and no secret shows up in what `up` printed.
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&state.0), 0o700, "the state directory");
    let secrets = state.0.join("secrets");
    assert_eq!(mode(&secrets), 0o700, "the secrets directory");
    let mut seen = 0;
    for entry in std::fs::read_dir(&secrets).unwrap() {
        let path = entry.unwrap().path();
        assert_eq!(mode(&path), 0o600, "{}", path.display());
        let text = std::fs::read_to_string(&path).unwrap();
        if path.extension().is_none_or(|e| e != "json") {
            let secret = text.trim();
            assert!(secret.len() >= 32, "{}", path.display());
            assert!(!log().contains(secret), "{} was printed", path.display());
        }
        seen += 1;
    }
    assert!(seen >= 5, "secrets written: {seen}");
    assert_eq!(mode(&state.0.join("variables.toml")), 0o600);

    let origin = probe(&format!(
        "{}/health",
        topology["origin"]["url"].as_str().unwrap()
    ))
    .await;
    assert_eq!(origin.status, 200);
    assert_eq!(origin.json()["catalog_products"], 10_000);

    // Every PoP serves the same seeded product, byte for byte.
    let mut etags = Vec::new();
    for pop in &pops {
        let r = get(&format!(
            "{}/api/v1/products/1",
            pop["url"].as_str().unwrap()
        ))
        .await;
        assert_eq!(r.status, 200, "{}: {}", pop["name"], r.text());
        etags.push(r.header("etag").unwrap().to_string());
    }
    assert!(etags.windows(2).all(|w| w[0] == w[1]), "{etags:?}");
    if let Some(w) = &worker {
        // The same seeded page, now in the Worker's cache.
        let url = format!("{}/api/v1/products/1", w["url"].as_str().unwrap());
        let r = get(&url).await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert!(get(&url).await.cache_status().contains("hit"));
    }

    // Each PoP reads an embedded replica (on Spin: the primary itself): a
    // write at the primary becomes readable at every PoP, through the
    // cache that already holds the page, and each edge host reports where
    // its replica is. The primary is the origin, or sqld with its own
    // token (and nothing of the catalog at the origin).
    let (url, token) = match &sqld {
        None => (
            format!("{}/db/catalog", topology["origin"]["url"].as_str().unwrap()),
            std::fs::read_to_string(state.0.join("secrets/origin_token")).unwrap(),
        ),
        Some(_) => {
            let url = topology["primaries"]["catalog"]["url"].as_str().unwrap();
            let origin = topology["origin"]["url"].as_str().unwrap();
            let origin_token =
                std::fs::read_to_string(state.0.join("secrets/origin_token")).unwrap();
            let hrana = post_json(
                &format!("{origin}/db/catalog/v2/pipeline"),
                &serde_json::json!({"baton": null, "requests": []}),
                &[("authorization", &format!("Bearer {}", origin_token.trim()))],
            )
            .await;
            assert_eq!(hrana.status, 404, "{}", hrana.text());
            let catalog_token =
                std::fs::read_to_string(state.0.join("secrets/sqld_catalog_origin_token")).unwrap();
            // sqld checks the JWTs: none, or one for another database's
            // server (each trusts its own key), reaches nothing.
            let identity = topology["primaries"]["identity"]["url"].as_str().unwrap();
            let read = serde_json::json!({"requests": [{"type": "execute",
                "stmt": {"sql": "SELECT count(*) FROM accounts"}}, {"type": "close"}]});
            let bearer = format!("Bearer {}", catalog_token.trim());
            for (base, auth) in [(url, None), (identity, Some(bearer.as_str()))] {
                let headers: Vec<(&str, &str)> =
                    auth.map(|a| ("authorization", a)).into_iter().collect();
                let r = post_json(&format!("{base}/v2/pipeline"), &read, &headers).await;
                assert_eq!(r.status, 401, "{base} {auth:?}: {}", r.text());
            }
            (url.to_string(), catalog_token)
        }
    };
    let primary = libsql::Builder::new_remote(url, token.trim().to_string())
        .build()
        .await
        .unwrap()
        .connect()
        .unwrap();
    primary
        .execute(
            "UPDATE products SET title = 'Replicated by up' WHERE id = 1",
            (),
        )
        .await
        .unwrap();
    for pop in &pops {
        let url = format!("{}/api/v1/products/1", pop["url"].as_str().unwrap());
        let waited = Instant::now();
        while !get(&url).await.text().contains("Replicated by up") {
            assert!(
                waited.elapsed() < Duration::from_secs(10),
                "{} never saw the write",
                pop["name"]
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        match pop["replication"].as_str() {
            Some(url) => {
                let status = probe(url).await.json();
                assert_eq!(status["replicas"][0]["bootstrapped"], true, "{status}");
            }
            // A difference on purpose: Spin reads the origin, no replica.
            None => assert!(spin.is_some(), "{pop}"),
        }
    }

    // The Worker reads the primary over Hrana: the write shows there too,
    // through the Workers Cache API entry it stored before (the page's
    // tag changed), and the front door sends region `workers` to it.
    if let Some(w) = &worker {
        let url = format!("{}/api/v1/products/1", w["url"].as_str().unwrap());
        let r = get(&url).await;
        assert!(r.text().contains("Replicated by up"), "{}", r.text());
        assert!(get(&url).await.cache_status().contains("hit"));
        let fd = topology["front_door"]["url"].as_str().unwrap();
        let r = browse(
            &format!("{fd}/api/v1/products/1"),
            &[("edgeshop-client-region", "workers")],
        )
        .await;
        assert_eq!((r.status, r.header("edgeshop-pop")), (200, Some("wkr")));
    }

    // The front door sends each region to its nearest PoP.
    let fd = topology["front_door"]["url"].as_str().unwrap();
    for (region, pop) in [("eu", "fra"), ("us", "iad"), ("ap", "sin")] {
        let r = browse(
            &format!("{fd}/api/v1/products/1"),
            &[("edgeshop-client-region", region)],
        )
        .await;
        assert_eq!(
            (r.status, r.header("edgeshop-pop")),
            (200, Some(pop)),
            "{region}"
        );
    }

    // Every seeded product page shows pictures, and every region's PoP
    // serves them (the seeded variants went through the processor and
    // into the object store before topology.json was written).
    let page = browse(&format!("{fd}/api/v1/products/1"), &[]).await.json();
    let pictures = page["media"].as_array().unwrap();
    assert!(!pictures.is_empty(), "{page}");
    let variants = pictures[0]["variants"].as_array().unwrap();
    assert_eq!(
        variants
            .iter()
            .map(|v| v["width"].as_i64().unwrap())
            .collect::<Vec<_>>(),
        [200, 800, 1600]
    );
    let mut regions = vec!["eu", "us", "ap"];
    if workers {
        regions.push("workers");
    }
    for region in regions {
        for v in variants {
            let url = format!("{fd}{}", v["url"].as_str().unwrap());
            let r = request_as(
                Client::Chromium,
                Purpose::Image,
                "GET",
                &url,
                &[("edgeshop-client-region", region)],
                Vec::new(),
            )
            .await;
            assert_eq!(r.status, 200, "{region} {url}: {}", r.text());
            assert_eq!(r.header("content-type"), Some("image/webp"));
            assert_eq!(&r.body[8..12], b"WEBP");
        }
    }
    // The objects are in the store the topology names.
    assert!(topology["objects"]["url"].as_str().is_some());

    // What browsers and curl get at every PoP, directly and through the
    // front door: a product page, listings and the categories are brotli
    // cache hits from the second request on, and revalidate to 304.
    let mut places: Vec<(String, Vec<(&str, &str)>)> = pops
        .iter()
        .map(|p| (p["url"].as_str().unwrap().to_string(), vec![]))
        .collect();
    for region in ["eu", "us", "ap"] {
        places.push((fd.to_string(), vec![("edgeshop-client-region", region)]));
    }
    for (base, fields) in &places {
        for path in [
            "/api/v1/products/3",
            "/api/v1/products?limit=20",
            "/api/v1/products?q=walnut+lamp&limit=3",
            "/api/v1/categories",
        ] {
            let url = format!("{base}{path}");
            let first = browse(&url, fields).await;
            assert_eq!(first.status, 200, "{url}: {}", first.text());
            let second = browse(&url, fields).await;
            assert!(
                second.cache_status().starts_with("edgeshop; hit"),
                "{url} {fields:?}: the second browser request was {}",
                second.cache_status()
            );
            assert_eq!(second.header("content-encoding"), Some("br"), "{url}");
            assert_eq!(second.body, first.body);
            let etag = second.header("etag").unwrap().to_string();
            let mut conditional = fields.clone();
            conditional.push(("if-none-match", &etag));
            assert_eq!(browse(&url, &conditional).await.status, 304, "{url}");
            let curl = request_as(
                Client::CurlCompressed,
                Purpose::Read,
                "GET",
                &url,
                fields,
                vec![],
            )
            .await;
            assert!(curl.cache_status().starts_with("edgeshop; hit"), "{url}");
            assert_eq!(curl.body, first.body);
        }
    }

    // A vendor's image goes the whole way here too: signed, uploaded
    // straight to the store, attached, processed, published. (After the
    // cache checks: the new product purges the listings.)
    let signup = serde_json::json!({ "email": "ada@example.com",
        "password": "a long enough password", "kind": "vendor",
        "vendor": { "name": "Ada's Wool", "country": "DE" } });
    let r = post_json(&format!("{fd}/api/v1/auth/signup"), &signup, &[]).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let bearer = format!("Bearer {}", r.json()["access_token"].as_str().unwrap());
    let vendor = |path: &str, body: serde_json::Value| {
        let url = format!("{fd}{path}");
        let bearer = bearer.clone();
        async move { post_json(&url, &body, &[("authorization", bearer.as_str())]).await }
    };
    let product = vendor(
        "/api/v1/vendor/products",
        serde_json::json!({
        "title": "Blue wool scarf", "description": "Warm.", "price_minor": 2500,
        "currency": "EUR", "stock": 3, "categories": [1], "status": "published" }),
    )
    .await;
    assert_eq!(product.status, 201, "{}", product.text());
    let id = product.json()["id"].as_i64().unwrap();
    let photo = get(&format!("{fd}{}", variants[1]["url"].as_str().unwrap()))
        .await
        .body;
    let signed = vendor(
        "/api/v1/vendor/uploads",
        serde_json::json!({
        "file_name": "scarf.webp", "content_type": "image/webp", "size": photo.len() }),
    )
    .await;
    assert_eq!(signed.status, 201, "{}", signed.text());
    let put = &signed.json()["put"];
    let sent = edgeshop_e2e::request(
        "PUT",
        put["url"].as_str().unwrap(),
        &[
            ("content-type", "image/webp"),
            ("content-length", &photo.len().to_string()),
        ],
        photo.clone(),
    )
    .await;
    assert_eq!(sent.status, 200, "{}", sent.text());
    let upload = signed.json()["id"].as_i64().unwrap();
    let attached = vendor(
        &format!("/api/v1/vendor/products/{id}/media"),
        serde_json::json!({ "upload": upload }),
    )
    .await;
    assert_eq!(attached.status, 202, "{}", attached.text());
    let mut status = serde_json::Value::Null;
    for _ in 0..100 {
        status = browse(
            &format!("{fd}/api/v1/vendor/uploads/{upload}"),
            &[("authorization", &bearer)],
        )
        .await
        .json();
        if status["status"] != "processing" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status["status"], "ready", "{status}");

    // Rate limits through the front door: a client's budget is the
    // address the front door saw, whatever X-Forwarded-For it writes.
    // Rounds of forty requests at once, each claiming an address of its
    // own: with a budget per claimed address every one would find a full
    // burst of 200 and `browse` (near-limit) would never say how much is
    // left; with one budget it runs down by about forty a round (refill,
    // 20 a second, takes back a few) and the fields appear once half the
    // burst is spent.
    let mut told = None;
    for round in 0..6u32 {
        let spoofing = (0..40u32).map(|i| {
            let url = format!("{fd}/api/v1/products/2");
            let xff = format!("198.51.{}.{}", 100 + round, i + 1);
            async move {
                let r = browse(
                    &url,
                    &[("edgeshop-client-region", "eu"), ("x-forwarded-for", &xff)],
                )
                .await;
                assert_eq!(r.status, 200, "{}", r.text());
                r.header("ratelimit").map(|f| {
                    assert_eq!(r.header("ratelimit-policy"), Some("\"browse\";q=1200;w=60"));
                    f.to_string()
                })
            }
        });
        told = futures::future::join_all(spoofing)
            .await
            .into_iter()
            .flatten()
            .next();
        if told.is_some() {
            break;
        }
    }
    // `"browse";r=N;t=S`: N requests left in this client's budget.
    let field = told.expect("claimed addresses got budgets of their own");
    let left: u64 = field
        .split(';')
        .find_map(|p| p.strip_prefix("r="))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no remaining count in {field}"));
    assert!(left <= 100, "{field}");

    // Accounts through the front door: sign up in one region, use the
    // token in another, refresh, sign out, and the token stops working in
    // both within the replication lag.
    let call = |method: &'static str,
                path: &str,
                region: &'static str,
                token: Option<String>,
                body: serde_json::Value| {
        let url = format!("{fd}{path}");
        async move {
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
            request_as(Client::Chromium, purpose, method, &url, &headers, body).await
        }
    };
    let creds =
        serde_json::json!({ "email": "up@example.com", "password": "a long enough password" });
    let signup = call("POST", "/api/v1/auth/signup", "eu", None, creds.clone()).await;
    assert_eq!(signup.status, 201, "{}", signup.text());
    let token = signup.json()["access_token"].as_str().unwrap().to_string();
    let me = call(
        "GET",
        "/api/v1/auth/me",
        "eu",
        Some(token.clone()),
        serde_json::Value::Null,
    )
    .await;
    assert_eq!(me.json()["email"], "up@example.com");
    // The token works at sin at once; the account arrives with replication.
    let started = Instant::now();
    loop {
        let r = call(
            "GET",
            "/api/v1/auth/me",
            "ap",
            Some(token.clone()),
            serde_json::Value::Null,
        )
        .await;
        if r.status == 200 {
            break;
        }
        assert_eq!(r.status, 503, "{}", r.text());
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the account never reached sin"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Check out through the front door: the PoP's gateway forwards to the
    // origin, which runs the saga against the payment simulator.
    let product = call(
        "GET",
        "/api/v1/products/1",
        "eu",
        None,
        serde_json::Value::Null,
    )
    .await;
    let product = product.json();
    let mut order = None;
    let started = Instant::now();
    while order.is_none() {
        let r = request_as(
            Client::Chromium,
            Purpose::SendJson,
            "POST",
            &format!("{fd}/api/v1/checkout"),
            &[
                ("edgeshop-client-region", "eu"),
                ("authorization", &format!("Bearer {token}")),
                ("idempotency-key", "up-checkout-1"),
            ],
            serde_json::to_vec(&serde_json::json!({
                "items": [{"product_id": 1, "quantity": 1,
                           "unit_price_minor": product["price"]["amount"]}],
                "shipping_address": {"name": "Up Shopper", "line1": "1 Main St",
                                     "city": "Frankfurt", "postal_code": "60311", "country": "DE"},
                "payment_method": "pm_card_visa",
            }))
            .unwrap(),
        )
        .await;
        match r.status {
            201 => order = Some(r.json()),
            // Checkout needs the origin; give a slow machine a moment.
            503 if started.elapsed() < Duration::from_secs(10) => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            _ => panic!("checkout through the front door: {} {}", r.status, r.text()),
        }
    }
    let order = order.unwrap();
    assert_eq!(order["status"], "completed", "{order}");
    let orders = call(
        "GET",
        "/api/v1/orders",
        "ap",
        Some(token.clone()),
        serde_json::Value::Null,
    )
    .await;
    assert_eq!(orders.status, 200, "{}", orders.text());
    assert_eq!(orders.json()["orders"][0]["id"], order["id"]);

    let login = call("POST", "/api/v1/auth/login", "ap", None, creds.clone()).await;
    assert_eq!(login.status, 200, "{}", login.text());
    assert_eq!(login.header("edgeshop-pop"), Some("sin"));
    let refresh = login.json()["refresh_token"].as_str().unwrap().to_string();
    let r = call(
        "POST",
        "/api/v1/auth/refresh",
        "us",
        None,
        serde_json::json!({ "refresh_token": refresh }),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = call(
        "POST",
        "/api/v1/auth/logout",
        "eu",
        Some(token.clone()),
        serde_json::json!({}),
    )
    .await;
    assert_eq!(r.status, 204, "{}", r.text());
    let started = Instant::now();
    while call(
        "GET",
        "/api/v1/products/1",
        "ap",
        Some(token.clone()),
        serde_json::Value::Null,
    )
    .await
    .status
        != 401
    {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "sign-out never reached sin"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // `up` seeded an admin, whose password is kept in the state dir.
    let password = std::fs::read_to_string(state.0.join("secrets/admin_password")).unwrap();
    let admin = call(
        "POST",
        "/api/v1/auth/login",
        "eu",
        None,
        serde_json::json!({ "email": "admin@edgeshop.test", "password": password.trim() }),
    )
    .await;
    assert_eq!(admin.status, 200, "{}", admin.text());
    assert_eq!(
        admin.json()["roles"],
        serde_json::json!(["shopper", "admin"])
    );

    ctrl_c();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            stop.0 = None;
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "xtask up did not stop on Ctrl-C:\n{}",
            log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(status.success(), "{status}:\n{}", log());
    assert!(!topology_path.exists(), "topology.json is removed on stop");
    for pop in &pops {
        let addr = pop["url"]
            .as_str()
            .unwrap()
            .trim_start_matches("http://")
            .to_string();
        assert!(
            tokio::net::TcpStream::connect(&addr).await.is_err(),
            "PoP {} still listening after Ctrl-C",
            pop["name"]
        );
    }
}

/// `kill PID` (SIGTERM, as a service manager sends) stops what `xtask up`
/// started too, not only Ctrl-C: nothing keeps serving after it.
#[tokio::test]
async fn xtask_up_stops_everything_on_sigterm() {
    let mut platform = edgeshop_e2e::platform::Platform::up("up-sigterm", &[]).await;
    let t = &platform.topology;
    let mut urls: Vec<String> = t["pops"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["url"].as_str().unwrap().to_string())
        .collect();
    for part in ["origin", "front_door", "payments", "objects"] {
        urls.push(t[part]["url"].as_str().unwrap().to_string());
    }
    for url in &urls {
        assert!(listening(url), "{url} serves while up");
    }
    assert!(
        platform.terminate(Duration::from_secs(30)).await,
        "xtask up exits on SIGTERM:\n{}",
        platform.log()
    );
    for url in &urls {
        assert!(!listening(url), "{url} still serves after SIGTERM");
    }
}

/// Whether something accepts connections at `url`'s address.
fn listening(url: &str) -> bool {
    let authority = url.trim_start_matches("http://").trim_end_matches('/');
    let addr: std::net::SocketAddr = authority.parse().expect("a local address");
    std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok()
}
