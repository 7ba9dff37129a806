//! The replication rows of `cargo xtask bench`: how long a commit at the
//! primary takes to be readable at every PoP under a steady write load,
//! how long a vendor's edit through a PoP takes to be fresh everywhere,
//! and what a catalog read costs at a distant PoP with its local replica
//! versus reading through the origin.

use super::{Row, measure, unreached_limits, without_middleware};
use crate::up::{self, Catalog, Service, edge_host_command, secret, wait_ready};
use crate::{root, say, state_dir};
use anyhow::{Context, Result, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

type Client = hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    Full<Bytes>,
>;

/// Lag percentiles, for the table.
pub struct Lag {
    /// Which server is the primary: `origin` (ours) or `sqld`.
    pub primary: &'static str,
    pub probes: usize,
    pub writes_per_second: f64,
    pub sorted_ms: Vec<f64>,
    pub per_pop: Vec<(String, u64, Vec<f64>)>,
    /// Vendor edits: the PoP they went through, and the same figures.
    pub vendor: Option<(String, Probed)>,
    /// Each auth write at each PoP: name, delay, median ms per write.
    pub auth: Vec<(String, u64, [f64; AUTH_WRITES.len()])>,
}

/// The auth writes timed at each PoP, in the order a session makes them,
/// and `me` (a local read) beside them.
const AUTH_WRITES: [&str; 5] = ["sign-up", "sign-in", "refresh", "sign-out", "me"];
/// Sessions timed at each PoP; the table shows medians.
const AUTH_ROUNDS: usize = 7;
/// What a write may cost beside its round trips, in the bounds printed:
/// the guest, the local reads, the wait for the replica to apply.
const LOCAL_WORK_MS: f64 = 20.0;

/// How long each probe took to be visible, at each PoP and everywhere.
pub struct Probed {
    pub sorted_ms: Vec<f64>,
    pub per_pop: Vec<(String, u64, Vec<f64>)>,
}

/// One statement at the primary (a database URL: the origin's
/// `/db/catalog`, or sqld) over Hrana (v2 pipeline, JSON).
async fn primary_write(client: &Client, primary: &str, token: &str, sql: &str) -> Result<()> {
    let body = serde_json::json!({
        "requests": [
            {"type": "execute", "stmt": {"sql": sql}},
            {"type": "close"}
        ]
    });
    let req = http::Request::post(format!("{primary}/v2/pipeline"))
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(serde_json::to_vec(&body)?)))?;
    let resp = client.request(req).await?;
    let status = resp.status();
    let bytes = resp.into_body().collect().await?.to_bytes();
    let v: serde_json::Value = serde_json::from_slice(&bytes)?;
    if !status.is_success() || v["results"][0]["type"] != "ok" {
        bail!("the primary refused {sql:?}: {status} {v}");
    }
    Ok(())
}

/// Every page once, as browsers would have, so a hit row hits.
fn warm(rt: &tokio::runtime::Runtime, base: &str, paths: &[String]) -> Result<()> {
    rt.block_on(async {
        let client: Client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build_http();
        for path in paths {
            body(&client, &format!("{base}{path}")).await?;
        }
        Ok(())
    })
}

/// A browser's read of `url`, decoded as the browser decodes it.
async fn body(client: &Client, url: &str) -> Result<String> {
    let uri: http::Uri = url.parse()?;
    let authority = uri.authority().map(|a| a.to_string()).unwrap_or_default();
    let mut req = http::Request::get(url);
    for (name, value) in edgeshop_clients::headers(
        edgeshop_clients::Client::Chromium,
        edgeshop_clients::Purpose::Read,
        &authority,
    ) {
        req = req.header(name, value);
    }
    let resp = client.request(req.body(Full::new(Bytes::new()))?).await?;
    let coding = resp
        .headers()
        .get("content-encoding")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let bytes = resp.into_body().collect().await?.to_bytes();
    let decoded = edgeshop_clients::decode(coding.as_deref(), &bytes)?;
    Ok(String::from_utf8_lossy(&decoded).into_owned())
}

pub fn run(
    rt: &tokio::runtime::Runtime,
    catalog: &Path,
    seconds: u64,
    connections: usize,
    product_paths: &[String],
) -> Result<(Vec<Row>, Lag)> {
    let dir = state_dir().join("bench/replication");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let primary_db = dir.join("catalog.db");
    std::fs::copy(catalog, &primary_db)?;
    let token = secret("origin_token")?;
    // One client sends everything: budgets out of its reach.
    let limits = unreached_limits()?;
    let mut cmd = Command::new(root().join("target/release/edgeshop-origin"));
    cmd.args(["--listen", "127.0.0.1:0", "--catalog"])
        .arg(&primary_db)
        .arg("--identity")
        .arg(dir.join("identity.db"))
        // The vendor API verifies vendors' tokens with the PoPs' keys.
        .arg("--variables-file")
        .arg(crate::keys::ensure()?)
        .env("EDGESHOP_ORIGIN_TOKEN", &token)
        .env("EDGESHOP_EDGE_TOKEN", secret("edge_token")?);
    let origin = Service::start("origin", cmd)?;

    let config = up::pops_file()?;
    let mut pops = Vec::new();
    for pop in &config.pop {
        let catalog = Catalog::Replica {
            origin: &origin.url,
            dir: dir.join("pops").join(&pop.name),
            delay_ms: pop.origin_delay_ms,
            interval_ms: config.replication.sync_interval_ms,
        };
        let mut cmd =
            edge_host_command(&pop.name, "127.0.0.1:0", catalog, &root().join("spin.toml"))?;
        cmd.env("SPIN_VARIABLE_RATELIMIT_POLICIES", &limits)
            .env("SPIN_VARIABLE_ORIGIN_URL", &origin.url);
        let svc = Service::start(&pop.name, cmd)?;
        wait_ready(&svc.url, Duration::from_secs(120))?;
        pops.push((pop.name.clone(), pop.origin_delay_ms, svc));
    }
    let far = config
        .pop
        .iter()
        .max_by_key(|p| p.origin_delay_ms)
        .context("cdn-config/pops.toml names no PoP")?;
    // Without the cache: this row is what every query costs over the wire.
    let mut cmd = edge_host_command(
        "through-origin",
        "127.0.0.1:0",
        Catalog::Remote {
            origin: &origin.url,
            delay_ms: far.origin_delay_ms,
        },
        &without_middleware("cache")?,
    )?;
    cmd.env("SPIN_VARIABLE_RATELIMIT_POLICIES", &limits);
    let through = Service::start("through-origin", cmd)?;
    let far_url = &pops
        .iter()
        .find(|(n, ..)| *n == far.name)
        .expect("the far PoP runs")
        .2
        .url;
    let mut rows = vec![
        measure(
            rt,
            &format!(
                "product by id at {} (+{} ms), replica + cache",
                far.name, far.origin_delay_ms
            ),
            far_url,
            product_paths,
            seconds,
            connections,
        )?,
        measure(
            rt,
            &format!(
                "product by id at {} (+{} ms), via origin, no cache",
                far.name, far.origin_delay_ms
            ),
            &through.url,
            product_paths,
            seconds,
            connections,
        )?,
    ];
    // Real Spin on the same spin.toml reading the origin over Hrana, as a
    // `cargo xtask up --spin` PoP does (no simulated distance): what a
    // Spin PoP pays for having no replica.
    if let Some(spin) = super::spin::SpinProcess::start(
        "over-hrana",
        &root().join("spin.toml"),
        super::spin::SpinData::Origin {
            url: &origin.url,
            token: &secret("edge_token")?,
        },
        Some(&limits),
    )? {
        warm(rt, &spin.url, product_paths)?;
        rows.push(measure(
            rt,
            "product by id, Spin over Hrana, cache hit",
            &spin.url,
            product_paths,
            seconds,
            connections,
        )?);
        rows.push(measure(
            rt,
            "product by id, Spin over Hrana, cache miss",
            &spin.url,
            &super::unseen_keys(product_paths, "hrana-miss"),
            seconds,
            connections,
        )?);
    }
    rows.extend(worker_rows(
        rt,
        &dir,
        &origin.url,
        &pops[0],
        &limits,
        product_paths,
        seconds,
        connections,
    )?);
    rows.iter_mut().for_each(|r| r.name.truncate(52));

    let pop_urls: Vec<(String, u64, String)> = pops
        .iter()
        .map(|(n, d, s)| (n.clone(), *d, s.url.clone()))
        .collect();
    let catalog_url = format!("{}/db/catalog", origin.url);
    let mut lag = rt.block_on(lag("origin", &catalog_url, &token, &pop_urls, seconds))?;
    lag.vendor = Some(rt.block_on(vendor_lag(&pop_urls, lag.probes))?);
    lag.auth = rt.block_on(auth_writes(&pop_urls))?;
    drop(through);
    drop(pops);
    drop(origin);
    Ok((rows, lag))
}

/// The same lag and auth-write rows with sqld as the primary of the
/// catalog and identity (`cargo xtask up --primary sqld`): the PoPs
/// replicate from it over its gRPC replication and write to it over
/// Hrana, with the same simulated distances. None without sqld.
pub fn run_sqld(rt: &tokio::runtime::Runtime, catalog: &Path, seconds: u64) -> Result<Option<Lag>> {
    let Some(binary) = crate::setup::sqld()? else {
        say("bench: no sqld here (EDGESHOP_SQLD, PATH, shared/tools/sqld/); skipping its rows");
        return Ok(None);
    };
    let dir = state_dir().join("bench/replication-sqld");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("data"))?;
    std::fs::copy(catalog, dir.join("data/catalog.db"))?;
    crate::build::seed_identity(&dir.join("data/identity.db"), "admin@edgeshop.test")?;
    let layout = crate::platform::Layout {
        root: dir.clone(),
        logs: false,
    };
    let primaries = crate::sqld::Primaries::start(&layout, &binary)?;
    let config = up::pops_file()?;
    let limits = unreached_limits()?;
    let mut pops = Vec::new();
    for pop in &config.pop {
        let catalog = Catalog::Primaries {
            primaries: crate::sqld::DATABASES
                .iter()
                .map(|db| {
                    let p = primaries.get(db);
                    (*db, p.url.clone(), p.auth.edge_token.clone())
                })
                .collect(),
            dir: dir.join("pops").join(&pop.name),
            delay_ms: pop.origin_delay_ms,
            interval_ms: config.replication.sync_interval_ms,
        };
        let mut cmd =
            edge_host_command(&pop.name, "127.0.0.1:0", catalog, &root().join("spin.toml"))?;
        cmd.env("SPIN_VARIABLE_RATELIMIT_POLICIES", &limits);
        let svc = Service::start(&pop.name, cmd)?;
        wait_ready(&svc.url, Duration::from_secs(120))?;
        pops.push((pop.name.clone(), pop.origin_delay_ms, svc));
    }
    let pop_urls: Vec<(String, u64, String)> = pops
        .iter()
        .map(|(n, d, s)| (n.clone(), *d, s.url.clone()))
        .collect();
    let catalog = primaries.get("catalog");
    let mut lag = rt.block_on(lag(
        "sqld",
        &catalog.url,
        &catalog.auth.origin_token,
        &pop_urls,
        seconds,
    ))?;
    lag.auth = rt.block_on(auth_writes(&pop_urls))?;
    drop(pops);
    drop(primaries);
    Ok(Some(lag))
}

/// Accounts the sign-in rows take turns with.
const SIGN_IN_ACCOUNTS: usize = 96;

/// The Workers twin under `wrangler dev`, reading the origin over Hrana
/// as a `cargo xtask up --workers` location does: its catalog hits and
/// misses, and a sign-in there beside one at the nearest PoP (both hash
/// the password: Argon2id, in wasm on workerd and in a component on our
/// host). None when wrangler is not installed.
#[allow(clippy::too_many_arguments)]
fn worker_rows(
    rt: &tokio::runtime::Runtime,
    dir: &Path,
    origin: &str,
    near: &(String, u64, Service),
    limits: &str,
    product_paths: &[String],
    seconds: u64,
    connections: usize,
) -> Result<Vec<Row>> {
    if let Err(e) = crate::workers::tools() {
        say(&format!("bench: no Workers rows ({e:#})"));
        return Ok(Vec::new());
    }
    let cmd = crate::workers::command(
        &dir.join("worker"),
        origin,
        &[("ratelimit_policies", limits)],
    )?;
    let worker = Service::start_group("worker", cmd, Some(&dir.join("worker.log")))?;
    wait_ready(&worker.url, Duration::from_secs(120))?;
    warm(rt, &worker.url, product_paths)?;
    // Accounts enough that concurrent sign-ins rarely share one: attempts
    // on one address are reserved before the password is checked, and
    // five at once lock it (auth-core's throttle), as they should.
    let bodies: Vec<Bytes> = (0..SIGN_IN_ACCOUNTS)
        .map(|i| {
            let creds = serde_json::json!({
                "email": format!("bench-{i}@example.com"),
                "password": "a long enough password",
            });
            crate::up::post_json(&near.2.url, "/api/v1/auth/signup", &creds)?;
            Ok(Bytes::from(creds.to_string()))
        })
        .collect::<Result<_>>()?;
    let mut rows = vec![
        measure(
            rt,
            "product by id, Worker over Hrana, cache hit",
            &worker.url,
            product_paths,
            seconds,
            connections,
        )?,
        measure(
            rt,
            "product by id, Worker over Hrana, cache miss",
            &worker.url,
            &super::unseen_keys(product_paths, "worker-miss"),
            seconds,
            connections,
        )?,
    ];
    let headers = [vec![(
        "content-type".to_string(),
        "application/json".to_string(),
    )]];
    for (name, url) in [
        (
            format!("POST sign-in at {} (edge host)", near.0),
            near.2.url.as_str(),
        ),
        (
            "POST sign-in at the Worker (workerd)".to_string(),
            worker.url.as_str(),
        ),
    ] {
        rows.push(super::measure_target(
            rt,
            &name,
            &super::Target {
                url,
                method: Some(http::Method::POST),
                paths: &["/api/v1/auth/login".to_string()],
                bodies: &bodies,
                header_sets: &headers,
                expect: Some(200),
                ..super::Target::default()
            },
            seconds,
            connections,
        )?);
    }
    Ok(rows)
}

/// Probes: a marker written at the primary, then polled for at every PoP
/// through the catalog API, while a background writer keeps committing.
async fn lag(
    primary: &'static str,
    origin: &str,
    token: &str,
    pops: &[(String, u64, String)],
    seconds: u64,
) -> Result<Lag> {
    let client: Client =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    // Steady background load: about 100 small commits a second.
    let background = tokio::spawn({
        let (client, origin, token, stop) = (
            client.clone(),
            origin.to_string(),
            token.to_string(),
            stop.clone(),
        );
        async move {
            let mut n = 0u64;
            let started = Instant::now();
            let mut tick = tokio::time::interval(Duration::from_millis(10));
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                tick.tick().await;
                let sql = format!(
                    "UPDATE products SET stock = stock + 1 WHERE id = {}",
                    2 + n % 9_000
                );
                if primary_write(&client, &origin, &token, &sql).await.is_ok() {
                    n += 1;
                }
            }
            n as f64 / started.elapsed().as_secs_f64()
        }
    });
    let probes = (seconds as usize * 6).clamp(20, 120);
    say(&format!(
        "bench: replication lag, {probes} probes under a steady write load"
    ));
    let mut tally = Tally::new(pops.len());
    for i in 0..probes {
        let marker = format!("lag-probe-{i}-{}", std::process::id());
        primary_write(
            &client,
            origin,
            token,
            &format!("UPDATE products SET title = '{marker}' WHERE id = 1"),
        )
        .await?;
        let committed = Instant::now();
        let seen = everywhere(&client, pops, "/api/v1/products/1", &marker, committed)
            .await
            .with_context(|| format!("probe {i}"))?;
        tally.record(seen);
        // A random phase against the PoPs' pull interval.
        tokio::time::sleep(Duration::from_millis(40 + (i as u64 * 37) % 90)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let writes_per_second = background.await?;
    let probed = tally.finish(pops);
    Ok(Lag {
        primary,
        probes,
        writes_per_second,
        sorted_ms: probed.sorted_ms,
        per_pop: probed.per_pop,
        vendor: None,
        auth: Vec::new(),
    })
}

/// One JSON request as a browser's script sends it; its status and body.
async fn auth_call(
    client: &Client,
    url: &str,
    body: serde_json::Value,
    bearer: Option<&str>,
) -> Result<(u16, serde_json::Value)> {
    let method = if body.is_null() {
        http::Method::GET
    } else {
        http::Method::POST
    };
    let (status, _, answer) = vendor_call(client, method, url, bearer, None, body).await?;
    Ok((status, answer))
}

/// A whole session's writes at each PoP, [`AUTH_ROUNDS`] times: sign-up,
/// sign-in, refresh, sign-out, and `me` with the sign-in's token, each
/// timed from send to answer; medians per PoP.
async fn auth_writes(
    pops: &[(String, u64, String)],
) -> Result<Vec<(String, u64, [f64; AUTH_WRITES.len()])>> {
    let client: Client =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http();
    say(&format!(
        "bench: auth writes, {AUTH_ROUNDS} sessions at each PoP"
    ));
    let mut out = Vec::new();
    for (name, delay, url) in pops {
        let mut times: [Vec<f64>; AUTH_WRITES.len()] = Default::default();
        for round in 0..AUTH_ROUNDS {
            let creds = serde_json::json!({
                "email": format!("bench-{name}-{round}-{}@example.com", std::process::id()),
                "password": "a bench password, long enough",
            });
            let mut timed = |k: usize, started: Instant| {
                times[k].push(started.elapsed().as_secs_f64() * 1000.0);
            };
            let t = Instant::now();
            let (status, _) = auth_call(
                &client,
                &format!("{url}/api/v1/auth/signup"),
                creds.clone(),
                None,
            )
            .await?;
            timed(0, t);
            anyhow::ensure!(status == 201, "sign-up at {name}: {status}");
            let t = Instant::now();
            let (status, tokens) =
                auth_call(&client, &format!("{url}/api/v1/auth/login"), creds, None).await?;
            timed(1, t);
            anyhow::ensure!(status == 200, "sign-in at {name}: {status}");
            let access = tokens["access_token"].as_str().unwrap_or_default();
            let t = Instant::now();
            let (status, _) = auth_call(
                &client,
                &format!("{url}/api/v1/auth/refresh"),
                serde_json::json!({ "refresh_token": tokens["refresh_token"] }),
                None,
            )
            .await?;
            timed(2, t);
            anyhow::ensure!(status == 200, "refresh at {name}: {status}");
            let t = Instant::now();
            let (status, _) = auth_call(
                &client,
                &format!("{url}/api/v1/auth/me"),
                serde_json::Value::Null,
                Some(access),
            )
            .await?;
            timed(4, t);
            anyhow::ensure!(status == 200, "me at {name}: {status}");
            let t = Instant::now();
            let (status, _) = auth_call(
                &client,
                &format!("{url}/api/v1/auth/logout"),
                serde_json::json!({}),
                Some(access),
            )
            .await?;
            timed(3, t);
            anyhow::ensure!(status == 204, "sign-out at {name}: {status}");
        }
        let medians = times.map(|mut v| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        });
        out.push((name.clone(), *delay, medians));
    }
    Ok(out)
}

/// Polls `path` at every PoP until its body holds `marker` (at most
/// 10 s), returning each PoP's milliseconds since `since`.
async fn everywhere(
    client: &Client,
    pops: &[(String, u64, String)],
    path: &str,
    marker: &str,
    since: Instant,
) -> Result<Vec<f64>> {
    let mut seen: Vec<Option<f64>> = vec![None; pops.len()];
    let deadline = since + Duration::from_secs(10);
    while seen.iter().any(Option::is_none) {
        if Instant::now() > deadline {
            bail!("{marker} was not visible at every PoP within 10 s: {seen:?}");
        }
        for (k, (_, _, url)) in pops.iter().enumerate() {
            if seen[k].is_none()
                && body(client, &format!("{url}{path}"))
                    .await?
                    .contains(marker)
            {
                seen[k] = Some(since.elapsed().as_secs_f64() * 1000.0);
            }
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    Ok(seen.into_iter().map(|s| s.unwrap_or(0.0)).collect())
}

/// A JSON call as a browser's script makes it (a vendor dashboard's, a
/// sign-in form's): status, `ETag`, body (decoded as the browser would).
/// A `null` body sends none.
async fn vendor_call(
    client: &Client,
    method: http::Method,
    url: &str,
    token: Option<&str>,
    if_match: Option<&str>,
    body: serde_json::Value,
) -> Result<(u16, Option<String>, serde_json::Value)> {
    let mut req = http::Request::builder()
        .method(method)
        .uri(url)
        .header("content-type", "application/json")
        .header("accept", "application/json")
        .header("accept-encoding", "gzip, deflate, br, zstd")
        .header("accept-language", "en-GB,en;q=0.9");
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    if let Some(tag) = if_match {
        req = req.header("if-match", tag);
    }
    let payload = if body.is_null() {
        Bytes::new()
    } else {
        Bytes::from(body.to_string())
    };
    let resp = client.request(req.body(Full::new(payload))?).await?;
    let status = resp.status().as_u16();
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let (etag, coding) = (header("etag"), header("content-encoding"));
    let bytes = resp.into_body().collect().await?.to_bytes();
    let decoded = edgeshop_clients::decode(coding.as_deref(), &bytes)?;
    Ok((
        status,
        etag,
        serde_json::from_slice(&decoded).unwrap_or(serde_json::Value::Null),
    ))
}

/// Probes: a vendor renames a published product through the nearest
/// PoP's vendor gateway (the origin applies it at the primary); the new
/// title is then polled for at every PoP through its cache. The time runs
/// from sending the edit, so it includes the gateway's round trip.
async fn vendor_lag(pops: &[(String, u64, String)], probes: usize) -> Result<(String, Probed)> {
    let client: Client =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http();
    let (near, _, near_url) = pops
        .iter()
        .min_by_key(|(_, delay, _)| *delay)
        .context("no PoP runs")?;
    say(&format!(
        "bench: vendor edits through {near}, {probes} probes"
    ));
    let email = format!("bench-vendor-{}@example.com", std::process::id());
    let (status, _, signed_up) = vendor_call(
        &client,
        http::Method::POST,
        &format!("{near_url}/api/v1/auth/signup"),
        None,
        None,
        serde_json::json!({ "email": email, "password": "a long enough password",
                            "kind": "vendor", "vendor": { "name": "Bench Goods", "country": "DE" } }),
    )
    .await?;
    if status != 201 {
        bail!("the bench vendor could not sign up: {status} {signed_up}");
    }
    let token = signed_up["access_token"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let (status, mut etag, product) = vendor_call(
        &client,
        http::Method::POST,
        &format!("{near_url}/api/v1/vendor/products"),
        Some(&token),
        None,
        serde_json::json!({ "title": "Bench product", "description": "", "price_minor": 100,
                            "currency": "EUR", "stock": 1, "categories": [1], "status": "published" }),
    )
    .await?;
    if status != 201 {
        bail!("the bench product could not be created: {status} {product}");
    }
    let id = product["id"].as_i64().unwrap_or_default();
    let path = format!("/api/v1/products/{id}");
    let mut tally = Tally::new(pops.len());
    for i in 0..probes {
        let marker = format!("vendor-probe-{i}-{}", std::process::id());
        let sent = Instant::now();
        let (status, tag, answer) = vendor_call(
            &client,
            http::Method::PATCH,
            &format!("{near_url}/api/v1/vendor/products/{id}"),
            Some(&token),
            etag.as_deref(),
            serde_json::json!({ "title": marker }),
        )
        .await?;
        if status != 200 {
            bail!("vendor edit {i} was refused: {status} {answer}");
        }
        etag = tag;
        let seen = everywhere(&client, pops, &path, &marker, sent)
            .await
            .with_context(|| format!("vendor edit {i}"))?;
        tally.record(seen);
        tokio::time::sleep(Duration::from_millis(40 + (i as u64 * 37) % 90)).await;
    }
    Ok((near.clone(), tally.finish(pops)))
}

/// Probe times as they come in: the slowest PoP's, and each PoP's.
struct Tally {
    all: Vec<f64>,
    per_pop: Vec<Vec<f64>>,
}

impl Tally {
    fn new(pops: usize) -> Tally {
        Tally {
            all: Vec::new(),
            per_pop: vec![Vec::new(); pops],
        }
    }

    /// One probe's milliseconds at each PoP, in PoP order.
    fn record(&mut self, seen: Vec<f64>) {
        self.all.push(seen.iter().copied().fold(0.0, f64::max));
        for (k, ms) in seen.into_iter().enumerate() {
            self.per_pop[k].push(ms);
        }
    }

    fn finish(mut self, pops: &[(String, u64, String)]) -> Probed {
        self.all.sort_by(f64::total_cmp);
        Probed {
            sorted_ms: self.all,
            per_pop: pops
                .iter()
                .zip(self.per_pop)
                .map(|((n, d, _), mut v)| {
                    v.sort_by(f64::total_cmp);
                    (n.clone(), *d, v)
                })
                .collect(),
        }
    }
}

/// One table of probe figures, per PoP and everywhere.
fn print_table(title: &str, probes: usize, sorted_ms: &[f64], per_pop: &[(String, u64, Vec<f64>)]) {
    let pct = |v: &[f64], p: f64| -> f64 {
        if v.is_empty() {
            return 0.0;
        }
        v[((v.len() as f64 - 1.0) * p).round() as usize]
    };
    println!();
    println!(
        "| {:<52} | {:>9} | {:>8} | {:>8} |",
        title, "probes", "p50 ms", "p99 ms"
    );
    println!(
        "|{}|{}|{}|{}|",
        "-".repeat(54),
        "-".repeat(11),
        "-".repeat(10),
        "-".repeat(10)
    );
    for (name, delay, v) in per_pop {
        println!(
            "| {:<52} | {:>9} | {:>8.1} | {:>8.1} |",
            format!("PoP {name} (+{delay} ms to origin)"),
            v.len(),
            pct(v, 0.5),
            pct(v, 0.99)
        );
    }
    println!(
        "| {:<52} | {:>9} | {:>8.1} | {:>8.1} |",
        "every PoP",
        probes,
        pct(sorted_ms, 0.5),
        pct(sorted_ms, 0.99)
    );
}

/// The lag tables.
pub fn print(lag: &Lag) {
    print_table(
        &format!("purge-to-fresh: commit at {} -> fresh read at", lag.primary),
        lag.probes,
        &lag.sorted_ms,
        &lag.per_pop,
    );
    println!();
    let farthest = lag.per_pop.iter().map(|(_, d, _)| *d).max().unwrap_or(0);
    let p99 = lag
        .sorted_ms
        .get(((lag.sorted_ms.len().max(1) - 1) as f64 * 0.99).round() as usize)
        .copied()
        .unwrap_or(0.0);
    let bound = farthest as f64 + 50.0;
    // The bounds are our primary's, which pushes; sqld's rows are beside
    // them for comparison.
    let judge = |within: bool| match (lag.primary, within) {
        ("origin", true) => "within",
        ("origin", false) => "OVER",
        (_, true) => "within ours",
        (_, false) => "over ours: no push",
    };
    println!(
        "Under {:.0} background commits/s at the primary; polled every 2 ms through GET /api/v1/products/1, which the PoP's cache\nanswers until the commit's change row replicates and invalidates the entry. Bound: p99 everywhere <= the farthest\nround trip + 50 ms = {bound:.0} ms; measured {p99:.1} ms ({}).",
        lag.writes_per_second,
        judge(p99 <= bound)
    );
    if !lag.auth.is_empty() {
        // The hash's cost: the nearest PoP's sign-in less its refresh,
        // both one write to the primary.
        let near = &lag.auth[0].2;
        let hash = (near[1] - near[2]).max(0.0);
        println!();
        println!(
            "| {:<28} | {} | {:>24} |",
            format!("auth writes at {}, median ms", lag.primary),
            AUTH_WRITES.map(|w| format!("{w:>9}")).join(" | "),
            "bound (1.5 RTT + hash)"
        );
        println!(
            "|{}|{}|{}|",
            "-".repeat(30),
            "-----------|".repeat(5).trim_end_matches('|'),
            "-".repeat(26)
        );
        for (name, delay, ms) in &lag.auth {
            let write_bound = 1.5 * *delay as f64 + LOCAL_WORK_MS;
            let hashed_bound = write_bound + hash;
            let within = ms[0] <= hashed_bound
                && ms[1] <= hashed_bound
                && ms[2] <= write_bound
                && ms[3] <= write_bound;
            println!(
                "| {:<28} | {} | {:>24} |",
                format!("PoP {name} (+{delay} ms)"),
                ms.map(|m| format!("{m:>9.1}")).join(" | "),
                format!("{hashed_bound:.0} / {write_bound:.0}: {}", judge(within))
            );
        }
        println!();
        println!(
            "Each a fresh session's requests at that PoP, JSON as a browser's script sends it, {AUTH_ROUNDS} sessions, medians. Bounds:\nsign-up and sign-in 1.5 RTT + hash + {LOCAL_WORK_MS} ms of local work, refresh and sign-out 1.5 RTT + {LOCAL_WORK_MS} ms; the hash (Argon2id\nin wasm) is taken as {hash:.0} ms, the nearest PoP's sign-in less its refresh (each one write). `me` reads only the replica."
        );
    }
    if let Some((near, v)) = &lag.vendor {
        print_table(
            &format!("vendor edit sent through {near} -> fresh read at"),
            v.sorted_ms.len(),
            &v.sorted_ms,
            &v.per_pop,
        );
        println!();
        println!(
            "A PATCH of a product's title through {near}'s vendor gateway, applied at the origin, then polled for at every PoP's\nproduct page; timed from sending the PATCH. The gateway's call to the origin carries no simulated delay."
        );
    }
}
