//! `cargo xtask bench`: the same load against each server in one run,
//! printed as one table.
//!
//! The load generator is a closed loop: `connections` keep-alive clients,
//! each sending its next request when the last answered, for a fixed time.
//! A row with a [`Target::rate`] is an open loop instead: requests are
//! due at that rate whatever the answers do, and each one's latency counts
//! from when it was due, so a server that falls behind shows it in p99
//! (no coordinated omission).

mod browser;
mod checkout;
mod media;
pub mod profile;
mod replication;
mod report;
mod seeing;
mod spin;

use crate::up::{Catalog, Service, edge_host_command};
use crate::{build, root, say, setup, state_dir};
use anyhow::{Context, Result, bail};
use std::process::Command;
use std::time::{Duration, Instant};

struct Row {
    name: String,
    requests: u64,
    errors: u64,
    elapsed: Duration,
    latencies_us: Vec<u64>,
    /// Answers that carried `Cache-Status`, and of those the cache hits.
    cached: u64,
    hits: u64,
    /// CPU time the server (`Target::server`) spent in the measured run.
    server_cpu: Option<Duration>,
}

/// What one load run counted.
struct Counts {
    requests: u64,
    errors: u64,
    latencies_us: Vec<u64>,
    elapsed: Duration,
    cached: u64,
    hits: u64,
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx] as f64 / 1000.0
}

/// Tells one load run's requests from another's where a header value
/// says `{i}` (a fresh Idempotency-Key per request, across runs too).
static RUNS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// What every request of a run is made from.
struct Plan {
    authority: String,
    method: http::Method,
    paths: Vec<String>,
    bodies: Vec<bytes::Bytes>,
    client_fields: std::sync::Arc<Vec<(String, String)>>,
    header_sets: std::sync::Arc<Vec<Vec<(String, String)>>>,
    expect: Option<u16>,
    run: u64,
}

impl Plan {
    /// Request `i` of the run.
    fn request(&self, i: usize) -> Result<http::Request<http_body_util::Full<bytes::Bytes>>> {
        let path = &self.paths[i % self.paths.len()];
        let sets = &self.header_sets;
        let set = (!sets.is_empty()).then(|| &sets[i % sets.len()]);
        let host = set
            .and_then(|s| s.iter().find(|(n, _)| n == "host"))
            .map_or(self.authority.as_str(), |(_, v)| v.as_str());
        let mut req = http::Request::builder()
            .method(self.method.clone())
            .uri(path.as_str())
            .header("host", host);
        // The client's own fields, unless the row sets one of a name.
        for (name, value) in self
            .client_fields
            .iter()
            .filter(|(n, _)| set.is_none_or(|s| !s.iter().any(|(m, _)| m == n)))
        {
            req = req.header(name, value);
        }
        for (name, value) in set.into_iter().flatten().filter(|(n, _)| n != "host") {
            if value.contains("{i}") {
                req = req.header(name, value.replace("{i}", &format!("{}-{i}", self.run)));
            } else {
                req = req.header(name, value);
            }
        }
        let body = if self.bodies.is_empty() {
            bytes::Bytes::new()
        } else {
            self.bodies[i % self.bodies.len()].clone()
        };
        Ok(req.body(http_body_util::Full::new(body))?)
    }
}

/// One connection's tally.
#[derive(Default)]
struct Tally {
    lat: Vec<u64>,
    errors: u64,
    cached: u64,
    hits: u64,
}

impl Tally {
    /// Sends request `i` and counts its answer, its latency from `since`.
    async fn send(
        &mut self,
        plan: &Plan,
        sender: &mut hyper::client::conn::http1::SendRequest<http_body_util::Full<bytes::Bytes>>,
        i: usize,
        since: Instant,
    ) -> Result<()> {
        // A server may close a kept-alive connection between requests
        // (an idle timeout): open another, as a browser would.
        if sender.ready().await.is_err() {
            *sender = connect(&plan.authority).await?;
        }
        let resp = sender.send_request(plan.request(i)?).await?;
        let ok = match plan.expect {
            Some(status) => resp.status().as_u16() == status,
            None => resp.status().is_success(),
        };
        if let Some(status) = resp.headers().get("cache-status") {
            self.cached += 1;
            if status.as_bytes().starts_with(b"edgeshop; hit") {
                self.hits += 1;
            }
        }
        http_body_util::BodyExt::collect(resp.into_body()).await?;
        self.lat.push(since.elapsed().as_micros() as u64);
        if !ok {
            self.errors += 1;
        }
        Ok(())
    }
}

async fn connect(
    authority: &str,
) -> Result<hyper::client::conn::http1::SendRequest<http_body_util::Full<bytes::Bytes>>> {
    let stream = tokio::net::TcpStream::connect(authority).await?;
    stream.set_nodelay(true)?;
    let (sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    Ok(sender)
}

/// One run of `plan`'s requests from `first` on, for `seconds`.
async fn load(
    plan: Plan,
    first: usize,
    seconds: u64,
    connections: usize,
    rate: Option<u32>,
) -> Result<Counts> {
    let plan = std::sync::Arc::new(plan);
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    // Open loop: request k is due at started + k / rate; a connection
    // takes the next due one when it is free.
    let due = rate.map(|r| {
        let (tx, rx) = async_channel_bounded(connections);
        let period = Duration::from_secs_f64(1.0 / f64::from(r.max(1)));
        tokio::spawn(async move {
            let mut k = 0usize;
            loop {
                let at = started + period * k as u32;
                if at >= deadline {
                    break;
                }
                tokio::time::sleep_until(at.into()).await;
                if tx.send((first + k, at)).await.is_err() {
                    break;
                }
                k += 1;
            }
        });
        rx
    });
    let mut tasks = Vec::new();
    for c in 0..connections {
        let plan = plan.clone();
        let due = due.clone();
        tasks.push(tokio::spawn(async move {
            let mut sender = connect(&plan.authority).await?;
            let mut tally = Tally::default();
            match due {
                Some(due) => {
                    while let Some((i, at)) = due.recv().await {
                        tally.send(&plan, &mut sender, i, at).await?;
                    }
                }
                None => {
                    // Connection c sends requests first + c, first + c +
                    // n, ...: every request of the run has its own index.
                    let mut i = first + c;
                    while Instant::now() < deadline {
                        tally.send(&plan, &mut sender, i, Instant::now()).await?;
                        i += connections;
                    }
                }
            }
            anyhow::Ok(tally)
        }));
    }
    drop(due);
    let mut all = Vec::new();
    let (mut errors, mut cached, mut hits) = (0, 0, 0);
    for t in tasks {
        let tally = t.await??;
        all.extend(tally.lat);
        errors += tally.errors;
        cached += tally.cached;
        hits += tally.hits;
    }
    let elapsed = started.elapsed();
    all.sort_unstable();
    Ok(Counts {
        requests: all.len() as u64,
        errors,
        latencies_us: all,
        elapsed,
        cached,
        hits,
    })
}

/// A channel many connections take due requests from: tokio's mpsc
/// receiver behind a lock (one waiter at a time takes the next).
fn async_channel_bounded(bound: usize) -> (tokio::sync::mpsc::Sender<(usize, Instant)>, Due) {
    let (tx, rx) = tokio::sync::mpsc::channel(bound.max(1));
    (tx, Due(std::sync::Arc::new(tokio::sync::Mutex::new(rx))))
}

/// The receiving end of [`async_channel_bounded`]; cheap to clone.
#[derive(Clone)]
struct Due(std::sync::Arc<tokio::sync::Mutex<tokio::sync::mpsc::Receiver<(usize, Instant)>>>);

impl Due {
    async fn recv(&self) -> Option<(usize, Instant)> {
        self.0.lock().await.recv().await
    }
}

fn measure(
    rt: &tokio::runtime::Runtime,
    name: &str,
    url: &str,
    paths: &[String],
    seconds: u64,
    connections: usize,
) -> Result<Row> {
    measure_with(rt, name, url, paths, &[], seconds, connections)
}

/// [`measure`], sending one of `header_sets` (in turn) with each request.
fn measure_with(
    rt: &tokio::runtime::Runtime,
    name: &str,
    url: &str,
    paths: &[String],
    header_sets: &[Vec<(String, String)>],
    seconds: u64,
    connections: usize,
) -> Result<Row> {
    let target = Target {
        url,
        paths,
        header_sets,
        expect: None,
        ..Target::default()
    };
    measure_target(rt, name, &target, seconds, connections)
}

/// What a row sends, and what answer it counts as served. Every request
/// is a browser's (`edgeshop-clients`: Chromium's fields, brotli asked
/// for, a cookie; `--client` picks another), with the row's own header
/// set on top.
#[derive(Default)]
struct Target<'a> {
    url: &'a str,
    /// GET unless set.
    method: Option<http::Method>,
    paths: &'a [String],
    /// Request bodies, one per request in turn; empty: none.
    bodies: &'a [bytes::Bytes],
    /// One set per request, in turn; empty: no extra headers.
    header_sets: &'a [Vec<(String, String)>],
    /// The status every answer should have; `None`: any 2xx.
    expect: Option<u16>,
    /// Requests due per second (an open loop, see the module docs);
    /// `None`: each connection sends when its last was answered.
    rate: Option<u32>,
    /// The answering process, whose CPU time in the measured run is
    /// counted: a server's cost per request, which the load generator
    /// sharing the cores does not blur as it does req/s.
    server: Option<u32>,
}

fn measure_target(
    rt: &tokio::runtime::Runtime,
    name: &str,
    target: &Target<'_>,
    seconds: u64,
    connections: usize,
) -> Result<Row> {
    match target.rate {
        Some(rate) => say(&format!(
            "bench: {name} ({rate}/s due, over up to {connections} connections, {seconds}s)"
        )),
        None => say(&format!(
            "bench: {name} ({connections} connections, {seconds}s)"
        )),
    }
    let run = |first, seconds| {
        rt.block_on(load(
            target.plan()?,
            first,
            seconds,
            connections,
            target.rate,
        ))
    };
    // Warm up: instances, caches, JIT'd code paths. The measured run
    // starts halfway through the header sets, so where every set is a
    // distinct cache key, none was seen in the warm-up.
    run(0, 1)?;
    let cpu = || target.server.and_then(process_cpu);
    let before = cpu();
    let c = run(target.header_sets.len() / 2, seconds)?;
    let server_cpu = before.zip(cpu()).map(|(b, a)| a.saturating_sub(b));
    Ok(c.row(name, server_cpu))
}

/// Loads every target at once, `connections` each, closed loop: servers
/// side by side share the machine's every slow and fast moment, so their
/// figures compare where runs one after another, on a machine whose speed
/// swings by a third from one run to the next, do not. Returns a row per
/// target, named as it is.
fn measure_side_by_side(
    rt: &tokio::runtime::Runtime,
    targets: &[(&str, Target<'_>)],
    seconds: u64,
    connections: usize,
) -> Result<Vec<Row>> {
    let names: Vec<&str> = targets.iter().map(|(n, _)| *n).collect();
    say(&format!(
        "bench: side by side, {connections} connections each, {seconds}s: {}",
        names.join(" | ")
    ));
    let run = |seconds| -> Result<Vec<Counts>> {
        let plans = targets
            .iter()
            .map(|(_, t)| t.plan())
            .collect::<Result<Vec<_>>>()?;
        rt.block_on(async {
            let runs: Vec<_> = plans
                .into_iter()
                .map(|p| tokio::spawn(load(p, 0, seconds, connections, None)))
                .collect();
            let mut counts = Vec::new();
            for r in runs {
                counts.push(r.await??);
            }
            Ok(counts)
        })
    };
    run(1)?;
    let cpu = || -> Vec<Option<Duration>> {
        targets
            .iter()
            .map(|(_, t)| t.server.and_then(process_cpu))
            .collect()
    };
    let before = cpu();
    let counts = run(seconds)?;
    let after = cpu();
    Ok(counts
        .into_iter()
        .zip(before.into_iter().zip(after))
        .zip(&names)
        .map(|((c, (b, a)), name)| c.row(name, b.zip(a).map(|(b, a)| a.saturating_sub(b))))
        .collect())
}

impl Counts {
    fn row(self, name: &str, server_cpu: Option<Duration>) -> Row {
        Row {
            name: name.to_string(),
            requests: self.requests,
            errors: self.errors,
            elapsed: self.elapsed,
            latencies_us: self.latencies_us,
            cached: self.cached,
            hits: self.hits,
            server_cpu,
        }
    }
}

impl Target<'_> {
    /// A fresh run of this target's requests.
    fn plan(&self) -> Result<Plan> {
        let method = self.method.clone().unwrap_or(http::Method::GET);
        let uri: http::Uri = self.url.parse()?;
        Ok(Plan {
            authority: uri.authority().context("url has host:port")?.to_string(),
            client_fields: std::sync::Arc::new(browser_fields(self.url, &method)),
            method,
            paths: self.paths.to_vec(),
            bodies: self.bodies.to_vec(),
            header_sets: std::sync::Arc::new(self.header_sets.to_vec()),
            expect: self.expect,
            run: RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        })
    }
}

/// CPU time (user and system, every thread's, the finished ones' too)
/// process `pid` has used so far.
fn process_cpu(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces), from
    // `state`, the third: `utime` and `stime` are the 14th and 15th.
    let mut fields = stat.rsplit_once(')')?.1.split_whitespace().skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    // In USER_HZ, which Linux fixes at 100 for userspace.
    Some(Duration::from_millis((user + system) * 10))
}

/// The bench client's own fields for `method` to `url` (a browser's
/// unless `--client` says otherwise); a row's header sets go on top, per
/// request.
fn browser_fields(url: &str, method: &http::Method) -> Vec<(String, String)> {
    use edgeshop_clients::{Client, Purpose, headers};
    let client = match CLIENT.get().copied().unwrap_or(BenchClient::Chromium) {
        BenchClient::Chromium => Client::Chromium,
        BenchClient::CurlCompressed => Client::CurlCompressed,
        BenchClient::Curl => Client::Curl,
        BenchClient::Bare => Client::Bare,
    };
    let authority = url.trim_start_matches("http://");
    let purpose = if method == http::Method::GET {
        Purpose::Read
    } else {
        Purpose::SendJson
    };
    headers(client, purpose, authority)
        .into_iter()
        .map(|(n, v)| (n.to_string(), v))
        .collect()
}

fn wasmtime_cli() -> Result<std::path::PathBuf> {
    let version = "48.0.8";
    let dir = crate::tool_cache().join(format!("wasmtime-cli-{version}"));
    let bin = dir.join("bin/wasmtime");
    if !bin.exists() {
        say(&format!(
            "installing wasmtime-cli {version} into {} (once; ~15 min on 2 cores)",
            dir.display()
        ));
        let ok = crate::build::cargo_command()
            .args([
                "install",
                "wasmtime-cli",
                "--version",
                version,
                "--locked",
                "--root",
            ])
            .arg(&dir)
            .status()?
            .success();
        if !ok {
            bail!("cargo install wasmtime-cli {version} failed");
        }
    }
    Ok(bin)
}

/// The client every row's requests come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BenchClient {
    /// A browser's page script: Chromium's fields, brotli asked for.
    Chromium,
    /// `curl --compressed`.
    CurlCompressed,
    /// `curl`: no `Accept-Encoding`.
    Curl,
    /// Nothing but `Host`.
    Bare,
}

/// Set once, before any row runs.
static CLIENT: std::sync::OnceLock<BenchClient> = std::sync::OnceLock::new();

/// What the side-by-side rows (`seeing`) are asked to add or leave out.
#[derive(Clone, Copy, Default)]
pub struct SideBySide<'a> {
    /// Another build of the host, or another build's manifest, to run
    /// beside this one.
    pub against: Option<&'a std::path::Path>,
    /// Only the rows whose names contain one of these; all when empty.
    pub rows: &'a [String],
}

pub fn run(
    peers: bool,
    seconds: u64,
    connections: usize,
    only: Option<&str>,
    client: BenchClient,
    side_by_side: SideBySide<'_>,
) -> Result<()> {
    seeing::check_rows(side_by_side.rows)?;
    let _ = CLIENT.set(client);
    say(&format!("bench: every request is {client:?}-shaped"));
    let want = |group: &str| only.is_none_or(|o| o.split(',').any(|g| g.trim() == group));
    let catalog = prepare()?;
    let rt = load_runtime()?;
    let product_paths = product_paths();
    let mut rows = Vec::new();
    let mut memory = Vec::new();
    let mut seeing_cost = None;

    if want("catalog") {
        warm_compile_cache(bench_host(
            &catalog,
            &root().join("spin.toml"),
            &unreached_limits()?,
        )?)?;
        // One client sends everything: its budgets are set out of reach
        // so the limiter counts every request and refuses none.
        let host = Service::start(
            "edge-host",
            bench_host(&catalog, &root().join("spin.toml"), &unreached_limits()?)?,
        )?;
        // Every component is compiled and linked at start; idle is before
        // any request.
        std::thread::sleep(Duration::from_secs(1));
        let idle_mb = rss_mb(host.pid()).unwrap_or(0.0);
        let sampler = RssSampler::start(pid_rss(host.pid()));
        rows.push(measure_target(
            &rt,
            "GET /api/v1/products/{id}  cache hit",
            &Target {
                url: &host.url,
                paths: &product_paths,
                server: Some(host.pid()),
                ..Target::default()
            },
            seconds,
            connections,
        )?);
        // Every request a key the cache has not seen: a miss, a run of
        // the app, and a store.
        rows.push(measure(
            &rt,
            "GET /api/v1/products/{id}  cache miss",
            &host.url,
            &unseen_keys(&product_paths, "miss"),
            seconds,
            connections,
        )?);
        // Popularity as shops see it: Zipf (s = 1) over every product,
        // from a cold cache (its own authority).
        let zipf: Vec<String> = zipf_ids(10_000, 1.0, 200_000)
            .into_iter()
            // Keys of their own, so the cache starts cold for them.
            .map(|id| format!("/api/v1/products/{id}?zipf"))
            .collect();
        rows.push(measure(
            &rt,
            "GET /api/v1/products/{id}  Zipf(1), cold cache",
            &host.url,
            &zipf,
            seconds,
            connections,
        )?);
        {
            // The same read with the rate limiter taken out of the chain.
            let manifest = without_middleware("ratelimit")?;
            let bare = Service::start("edge-host", bench_host(&catalog, &manifest, "")?)?;
            rows.push(measure(
                &rt,
                "GET /api/v1/products/{id}  without the rate limiter",
                &bare.url,
                &product_paths,
                seconds,
                connections,
            )?);
        }
        {
            // A flood from one client on a spent budget: every answer is
            // the limiter's 429, and nothing behind it runs.
            let flood = "[policy.flood]\nquota = 1\nwindow_secs = 3600\nburst = 1\n\
                         key = \"client\"\non_store_error = \"closed\"\n\
                         [[route]]\npath = \"/...\"\npolicy = \"flood\"\n";
            let refusing = Service::start(
                "edge-host",
                bench_host(&catalog, &root().join("spin.toml"), flood)?,
            )?;
            rows.push(measure_target(
                &rt,
                "GET /api/v1/products/{id}  refused: 429 flood",
                &Target {
                    url: &refusing.url,
                    paths: &product_paths,
                    header_sets: &[],
                    expect: Some(429),
                    ..Target::default()
                },
                seconds,
                connections,
            )?);
        }
        // The same read with a bearer token: the auth middleware checks it
        // and looks the session up in the identity database before the
        // catalog runs. One token (a client calling again: its signature
        // is checked once per instance), then 1,000 tokens in turn (each
        // signature checked afresh).
        let bearer = |token: String| vec![("authorization".to_string(), format!("Bearer {token}"))];
        let tokens = crate::keys::bench_tokens(1000)?;
        rows.push(measure_with(
            &rt,
            "GET /api/v1/products/{id}  signed in, one token",
            &host.url,
            &product_paths,
            &[bearer(tokens[0].clone())],
            seconds,
            connections,
        )?);
        let many: Vec<_> = tokens.into_iter().map(bearer).collect();
        rows.push(measure_with(
            &rt,
            "GET /api/v1/products/{id}  signed in, 1000 tokens",
            &host.url,
            &product_paths,
            &many,
            seconds,
            connections,
        )?);
        let listing = ["/api/v1/products?limit=20".to_string()];
        rows.push(measure(
            &rt,
            "GET /api/v1/products?limit=20  cache hit",
            &host.url,
            &listing,
            seconds,
            connections,
        )?);
        rows.push(measure(
            &rt,
            "GET /api/v1/products?limit=20  cache miss",
            &host.url,
            &unseen_keys(&listing, "list"),
            seconds,
            connections,
        )?);
        // The storefront's pages: made from the same catalog answers on a
        // miss, one stored page on a hit.
        let pages: Vec<String> = product_paths
            .iter()
            .map(|p| p.replace("/api/v1/products/", "/p/"))
            .collect();
        rows.push(measure(
            &rt,
            "GET /p/{id}  product page, cache hit",
            &host.url,
            &pages,
            seconds,
            connections,
        )?);
        rows.push(measure(
            &rt,
            "GET /p/{id}  product page, cache miss",
            &host.url,
            &unseen_keys(&pages, "page-miss"),
            seconds,
            connections,
        )?);
        let departments = ["/c/kitchen?sort=price_asc".to_string()];
        rows.push(measure(
            &rt,
            "GET /c/{slug}  listing page, cache hit",
            &host.url,
            &departments,
            seconds,
            connections,
        )?);
        rows.push(measure(
            &rt,
            "GET /c/{slug}  listing page, cache miss",
            &host.url,
            &unseen_keys(&departments, "page-list"),
            seconds,
            connections,
        )?);
        memory.push(Memory {
            name: "edge-host PoP, spin.toml".to_string(),
            idle_mb,
            peak_mb: sampler.peak(),
        });
    }
    if want("catalog") || want("seeing") {
        // What it costs to count the hit and to trace it
        // (docs/observability.md): a shipped PoP beside each variant.
        // Part of the catalog group, and a group of its own.
        let host = Service::start(
            "edge-host",
            bench_host(&catalog, &root().join("spin.toml"), &unreached_limits()?)?,
        )?;
        seeing_cost = Some(seeing::run(
            &rt,
            &catalog,
            &host,
            &product_paths,
            seconds,
            connections,
            side_by_side,
        )?);
    }
    if want("native") {
        let mut cmd = Command::new(root().join("target/release/native-catalog"));
        cmd.arg("--catalog").arg(&catalog);
        let native = Service::start("native-catalog", cmd)?;
        rows.push(measure(
            &rt,
            "GET /api/v1/products/{id}  native hyper+libsql",
            &native.url,
            &product_paths,
            seconds,
            connections,
        )?);
        rows.push(measure(
            &rt,
            "GET /api/v1/products?limit=20  native hyper+libsql",
            &native.url,
            &["/api/v1/products?limit=20".to_string()],
            seconds,
            connections,
        )?);
    }
    let hello = vec!["/".to_string()];
    // Kept for the side-by-side rounds against `wasmtime serve`.
    let mut hello_host = None;
    if want("hello") {
        let manifest = root().join("benches/hello.toml");
        warm_compile_cache(edge_host_command(
            "bench",
            "127.0.0.1:0",
            Catalog::File(&catalog),
            &manifest,
        )?)?;
        let host = Service::start(
            "edge-host",
            edge_host_command("bench", "127.0.0.1:0", Catalog::File(&catalog), &manifest)?,
        )?;
        std::thread::sleep(Duration::from_secs(1));
        let idle_mb = rss_mb(host.pid()).unwrap_or(0.0);
        let sampler = RssSampler::start(pid_rss(host.pid()));
        rows.push(measure(
            &rt,
            "GET /  hello component, edge-host",
            &host.url,
            &hello,
            seconds,
            connections,
        )?);
        memory.push(Memory {
            name: "edge-host, hello".to_string(),
            idle_mb,
            peak_mb: sampler.peak(),
        });
        rows.push(measure(
            &rt,
            "GET /  hello behind a pass-through middleware",
            &host.url,
            &["/layer/".to_string()],
            seconds,
            connections,
        )?);
        rows.push(measure(
            &rt,
            "GET /  hello behind a middleware using spin-sdk's next",
            &host.url,
            &["/sdk-layer/".to_string()],
            seconds,
            connections,
        )?);
        rows.push(measure(
            &rt,
            "GET /  hello behind the rate limiter",
            &host.url,
            &["/limited/".to_string()],
            seconds,
            connections,
        )?);
        hello_host = Some(host);
    }
    let mut hello_side_by_side = None;
    if peers && want("hello") {
        let wasmtime = wasmtime_cli()?;
        let mut cmd = Command::new(wasmtime);
        cmd.args(["serve", "-Scli", "--addr", "127.0.0.1:0"])
            .arg(root().join("target/components/hello.wasm"));
        // wasmtime serve prints its address on stderr.
        let svc = start_wasmtime_serve(cmd)?;
        std::thread::sleep(Duration::from_secs(1));
        let idle_mb = rss_mb(svc.0.0.id()).unwrap_or(0.0);
        let sampler = RssSampler::start(pid_rss(svc.0.0.id()));
        rows.push(measure(
            &rt,
            WASMTIME_SERVE_HELLO,
            &svc.1,
            &hello,
            seconds,
            connections,
        )?);
        memory.push(Memory {
            name: "wasmtime serve, hello".to_string(),
            idle_mb,
            peak_mb: sampler.peak(),
        });
        if let Some(ours) = &hello_host {
            // The rows above run one after another, and this machine
            // moves by a fifth between them; at the same moments, the
            // two hosts' CPU per request compares.
            hello_side_by_side = Some(hello_beside_wasmtime(
                &rt,
                ours,
                &svc,
                &hello,
                seconds,
                connections,
            )?);
        }
    }

    if peers && want("catalog") {
        // The same app and rows on real Spin, for the record.
        let limits = unreached_limits()?;
        if let Some(spin) = spin::SpinProcess::start(
            "catalog",
            &root().join("spin.toml"),
            spin::SpinData::Files(&catalog),
            Some(&limits),
        )? {
            let pid = spin.pid();
            std::thread::sleep(Duration::from_secs(1));
            let idle_mb = spin::group_rss_mb(pid);
            let sampler = RssSampler::start(move || spin::group_rss_mb(pid));
            rows.push(measure(
                &rt,
                "GET /api/v1/products/{id}  cache hit, Spin 4.1",
                &spin.url,
                &product_paths,
                seconds,
                connections,
            )?);
            rows.push(measure(
                &rt,
                "GET /api/v1/products/{id}  cache miss, Spin 4.1",
                &spin.url,
                &unseen_keys(&product_paths, "spin-miss"),
                seconds,
                connections,
            )?);
            let token = crate::keys::bench_tokens(1)?.remove(0);
            rows.push(measure_with(
                &rt,
                "GET /api/v1/products/{id}  signed in, one token, Spin 4.1",
                &spin.url,
                &product_paths,
                &[vec![(
                    "authorization".to_string(),
                    format!("Bearer {token}"),
                )]],
                seconds,
                connections,
            )?);
            rows.push(measure(
                &rt,
                "GET /api/v1/products?limit=20  cache hit, Spin 4.1",
                &spin.url,
                &["/api/v1/products?limit=20".to_string()],
                seconds,
                connections,
            )?);
            memory.push(Memory {
                name: "Spin 4.1 (spin up + trigger), spin.toml".to_string(),
                idle_mb,
                peak_mb: sampler.peak(),
            });
        }
    }
    if peers && want("hello") {
        let manifest = root().join("benches/hello.toml");
        if let Some(spin) =
            spin::SpinProcess::start("hello", &manifest, spin::SpinData::Files(&catalog), None)?
        {
            rows.push(measure(
                &rt,
                "GET /  hello component, Spin 4.1",
                &spin.url,
                &hello,
                seconds,
                connections,
            )?);
            rows.push(measure(
                &rt,
                "GET /  hello behind a pass-through middleware, Spin 4.1",
                &spin.url,
                &["/layer/".to_string()],
                seconds,
                connections,
            )?);
        }
    }

    if want("checkout") {
        rows.extend(checkout::run(&rt, &catalog, seconds, connections)?);
    }

    let mut processing = None;
    if want("media") {
        let (more, p) = media::run(&rt, &catalog, seconds, connections, &product_paths)?;
        rows.extend(more);
        processing = Some(p);
    }

    let mut lags = Vec::new();
    if want("replication") {
        let (more, l) = replication::run(&rt, &catalog, seconds, connections, &product_paths)?;
        rows.extend(more);
        lags.push(l);
        lags.extend(replication::run_sqld(&rt, &catalog, seconds)?);
    }

    let mut paints = None;
    if want("browser") {
        let tools = crate::browser::tools()?;
        paints = Some(browser::run(&rt, &tools, 7)?);
    }

    let lines: Vec<report::Line> = rows
        .iter()
        .map(|r| report::Line {
            name: r.name.clone(),
            req_per_s: r.requests as f64 / r.elapsed.as_secs_f64(),
            p50_ms: percentile(&r.latencies_us, 0.50),
            p99_ms: percentile(&r.latencies_us, 0.99),
            errors: r.errors,
            hit_share: (r.cached > 0).then(|| r.hits as f64 / r.cached as f64),
        })
        .collect();
    let reference = rows
        .iter()
        .find(|r| r.name == WASMTIME_SERVE_HELLO)
        .map(|r| r.name.as_str());
    let mut table = report::markdown(&lines, reference);
    table.push_str(&format!(
        "\n{connections} keep-alive connections, {seconds}s per row after a 1s warm-up; \
         every request {client:?}-shaped; load generator shares the 2 cores.\n"
    ));
    if !memory.is_empty() {
        table.push_str("\n| process | RSS idle MB | RSS peak under load MB |\n|---|---:|---:|\n");
        for m in &memory {
            table.push_str(&format!(
                "| {} | {:.1} | {:.1} |\n",
                m.name, m.idle_mb, m.peak_mb
            ));
        }
    }
    if let Some(p) = &processing {
        table.push_str(&media::print(p));
    }
    if let Some(p) = &paints {
        table.push_str(&browser::print(p));
    }
    if let Some(c) = &seeing_cost {
        table.push_str(&seeing::print(c));
    }
    if let Some(c) = &hello_side_by_side {
        table.push_str(&seeing::table(
            &format!(
                "Hello side by side: our edge host and `wasmtime serve` under the same load at \
                 the same moments ({} connections each, which load starts first alternating), \
                 {} rounds of {}s; the change against `wasmtime serve` is the median over \
                 the rounds (and the range).",
                c.connections,
                seeing::ROUNDS,
                c.seconds
            ),
            "edge-host",
            "wasmtime serve",
            &c.pairs,
        ));
    }
    println!();
    println!("{table}");
    for lag in &lags {
        replication::print(lag);
    }
    let out = root().join("target/bench");
    std::fs::create_dir_all(&out)?;
    std::fs::write(out.join("latest.md"), &table)?;
    std::fs::write(out.join("latest.svg"), report::svg(&lines)?)?;
    say(&format!(
        "bench: wrote {} and latest.svg",
        out.join("latest.md").display()
    ));
    Ok(())
}

/// Builds what the rows run and seeds their databases; returns the
/// catalog's path (the identity database lies beside it).
fn prepare() -> Result<std::path::PathBuf> {
    let tc = setup::run()?;
    build::components(&tc)?;
    build::host()?;
    let catalog = state_dir().join("bench/catalog.db");
    build::seed(&catalog, 10_000, 200, 1, false)?;
    let identity = catalog.with_file_name("identity.db");
    build::seed_identity(&identity, "admin@edgeshop.test")?;
    crate::keys::bench_sessions(&identity)?;
    Ok(catalog)
}

/// The load generator's runtime: one thread, so it takes one of the two
/// cores at most.
fn load_runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?)
}

/// 1,000 product pages spread over the seeded catalog.
fn product_paths() -> Vec<String> {
    (0..1000)
        .map(|i| format!("/api/v1/products/{}", 1 + (i * 7919) % 10_000))
        .collect()
}

/// The reference row: the bare hello component on `wasmtime serve`.
const WASMTIME_SERVE_HELLO: &str = "GET /  hello component, wasmtime serve 48.0.8 -Scli";

/// What one server process held in memory.
struct Memory {
    name: String,
    idle_mb: f64,
    peak_mb: f64,
}

/// Resident set size of process `pid`, in MB.
fn rss_mb(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}

fn pid_rss(pid: u32) -> impl Fn() -> f64 + Send + 'static {
    move || rss_mb(pid).unwrap_or(0.0)
}

/// Samples an RSS every 100 ms until asked for the peak.
struct RssSampler {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<f64>>,
}

impl RssSampler {
    fn start(rss: impl Fn() -> f64 + Send + 'static) -> RssSampler {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut peak: f64 = 0.0;
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                peak = peak.max(rss());
                std::thread::sleep(Duration::from_millis(100));
            }
            peak
        });
        RssSampler {
            stop,
            thread: Some(thread),
        }
    }

    fn peak(mut self) -> f64 {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread
            .take()
            .and_then(|t| t.join().ok())
            .unwrap_or(0.0)
    }
}

/// 400,000 requests for `paths` in turn, each under a cache key no request
/// had before (the cache keys on path and query, never on `Host`), with
/// the same answer: a product by id ignores its query, and a listing gets
/// a price cap above every price. `tag` keeps rows' keys apart.
fn unseen_keys(paths: &[String], tag: &str) -> Vec<String> {
    (0..400_000usize)
        .map(|i| {
            let path = &paths[i % paths.len()];
            if path.contains('?') {
                format!("{path}&max_price={}", 1_000_000_000_000u64 + i as u64)
            } else {
                format!("{path}?{tag}={i}")
            }
        })
        .collect()
}

/// `n` ids in 1..=`items` drawn from a Zipf distribution with exponent
/// `s` (id 1 the most popular), from a fixed seed.
fn zipf_ids(items: u64, s: f64, n: usize) -> Vec<u64> {
    let weights: Vec<f64> = (1..=items).map(|k| 1.0 / (k as f64).powf(s)).collect();
    let total: f64 = weights.iter().sum();
    let mut cdf = Vec::with_capacity(weights.len());
    let mut acc = 0.0;
    for w in weights {
        acc += w / total;
        cdf.push(acc);
    }
    let mut x: u64 = 0x853c_49e6_748f_ea9b;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let u = (x >> 11) as f64 / (1u64 << 53) as f64;
            cdf.partition_point(|&c| c < u) as u64 + 1
        })
        .map(|id| id.min(items))
        .collect()
}

/// An edge host serving `manifest` on the bench databases, with
/// `ratelimit_policies` set to `limits` (empty: the shipped ones).
/// Starts `cmd` once and stops it, so the measured start finds every
/// component in the compile cache and its idle RSS is a restarted PoP's.
/// A first start after a build compiles everything and keeps about 45 MB
/// more (compiler scratch the allocator holds on to).
fn warm_compile_cache(cmd: std::process::Command) -> Result<()> {
    drop(Service::start("warm-up", cmd)?);
    Ok(())
}

/// An OTLP/HTTP endpoint that takes every export and answers 200, on the
/// bench's runtime; its URL.
async fn otlp_sink() -> Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let service = hyper::service::service_fn(
                    |req: http::Request<hyper::body::Incoming>| async move {
                        use http_body_util::BodyExt;
                        let _ = req.into_body().collect().await;
                        Ok::<_, std::convert::Infallible>(http::Response::new(
                            http_body_util::Full::new(bytes::Bytes::from_static(b"{}")),
                        ))
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(url)
}

fn bench_host(
    catalog: &std::path::Path,
    manifest: &std::path::Path,
    limits: &str,
) -> Result<Command> {
    let mut cmd = edge_host_command("bench", "127.0.0.1:0", Catalog::File(catalog), manifest)?;
    cmd.env("SPIN_VARIABLE_RATELIMIT_POLICIES", limits);
    Ok(cmd)
}

/// `program` to be run where `host` runs, with its environment, and no
/// arguments yet.
pub(crate) fn in_the_same_place(program: impl AsRef<std::ffi::OsStr>, host: &Command) -> Command {
    let mut cmd = Command::new(program);
    if let Some(dir) = host.get_current_dir() {
        cmd.current_dir(dir);
    }
    for (key, value) in host.get_envs() {
        match value {
            Some(v) => cmd.env(key, v),
            None => cmd.env_remove(key),
        };
    }
    cmd
}

/// The shipped routes with budgets no benchmark reaches (the end-to-end
/// tests use the same file).
pub(crate) fn unreached_limits() -> Result<String> {
    let path = root().join("tests/fixtures/generous-limits.toml");
    std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))
}

/// `spin.toml` with `component` taken out of every route's middleware,
/// written next to the bench databases (component sources made absolute).
pub(crate) fn without_middleware(component: &str) -> Result<std::path::PathBuf> {
    let text = std::fs::read_to_string(root().join("spin.toml"))?;
    let mut manifest: toml::Table = toml::from_str(&text).context("spin.toml")?;
    let routes = manifest
        .get_mut("trigger")
        .and_then(|t| t.get_mut("http"))
        .and_then(|h| h.as_array_mut())
        .context("spin.toml has no [[trigger.http]]")?;
    for route in routes {
        if let Some(chain) = route
            .get_mut("dependencies")
            .and_then(|d| d.get_mut("middleware"))
            .and_then(|m| m.as_array_mut())
        {
            chain.retain(|m| m.get("component").and_then(|c| c.as_str()) != Some(component));
        }
    }
    if let Some(components) = manifest.get_mut("component").and_then(|c| c.as_table_mut()) {
        components.remove(component);
        for (_, c) in components.iter_mut() {
            if let Some(source) = c.get_mut("source")
                && let Some(rel) = source.as_str()
            {
                *source = toml::Value::String(root().join(rel).display().to_string());
            }
        }
    }
    let path = state_dir().join(format!("bench/spin-without-{component}.toml"));
    std::fs::write(&path, toml::to_string(&manifest)?)?;
    Ok(path)
}

/// Hello on `ours` (the hello manifest's host) and behind its pass-through
/// layer, each beside the bare hello on `wasmtime serve` (`reference`),
/// round by round.
fn hello_beside_wasmtime(
    rt: &tokio::runtime::Runtime,
    ours: &Service,
    reference: &(KillOnDrop, String),
    hello: &[String],
    seconds: u64,
    connections: usize,
) -> Result<seeing::Cost> {
    let layer = ["/layer/".to_string()];
    let rows: [(&str, &[String]); 2] = [
        ("hello component", hello),
        ("hello behind a pass-through middleware", &layer),
    ];
    let mut pairs: Vec<_> = rows
        .iter()
        .map(|(name, _)| seeing::Pair::new(name))
        .collect();
    let each = (connections / 2).max(1);
    for round in 0..seeing::ROUNDS {
        for ((_, paths), pair) in rows.iter().zip(&mut pairs) {
            let wasmtime = Target {
                url: &reference.1,
                paths: hello,
                server: Some(reference.0.0.id()),
                ..Target::default()
            };
            let edge_host = Target {
                url: &ours.url,
                paths,
                server: Some(ours.pid()),
                ..Target::default()
            };
            seeing::one_round(
                rt,
                round,
                ("wasmtime serve", wasmtime),
                ("edge-host", edge_host),
                seconds,
                each,
                pair,
            )?;
        }
    }
    Ok(seeing::Cost {
        seconds,
        connections: each,
        pairs,
    })
}

/// `wasmtime serve` reports its address on stderr, not stdout.
fn start_wasmtime_serve(mut cmd: Command) -> Result<(KillOnDrop, String)> {
    use std::io::{BufRead, BufReader};
    cmd.stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null());
    let mut child = cmd.spawn()?;
    let stderr = child.stderr.take().context("stderr")?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(rest) = line.split("Serving HTTP on ").nth(1) {
                let _ = tx.send(rest.trim().trim_end_matches('/').to_string());
            }
        }
    });
    let url = rx
        .recv_timeout(Duration::from_secs(60))
        .context("wasmtime serve did not start")?;
    Ok((KillOnDrop(child), url))
}

struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
