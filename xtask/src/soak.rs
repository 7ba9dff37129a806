//! `cargo xtask soak --minutes N`: the whole platform under mixed
//! browser-shaped traffic for N minutes, with quiet spells longer than
//! every timeout in the system and restarts of the origin and a PoP, as a
//! week of real use would bring them. It reports every answer a user would
//! count as a failure; the expected number is zero.
//!
//! Shoppers are simulated as browsers (`edgeshop-clients` shapes), each
//! from its own loopback address (so each has its own rate-limit budget
//! behind the front door) and region, with a connection pool kept across
//! quiet spells as a browser keeps it. A shopper browses, searches, signs
//! up or in, reads its account, refreshes its token, checks out, lists its
//! orders and signs out; it revalidates what it has seen with
//! `If-None-Match` once the response's `max-age` has passed, and refreshes
//! its access token when the token has expired. Answers by design (a
//! 304, a 401 for a token past its expiry, a 409 for stock that ran out)
//! are counted, not reported.
//!
//! Traffic pauses for each quiet spell and restart: a restart happens with
//! no request in flight, so what is tested is what users meet afterwards
//! (stale streams, pooled connections to a process that is gone, replicas
//! catching up), not requests cut off by the restart itself.

use crate::platform::{Layout, Platform};
use crate::{build, say, state_dir};
use anyhow::{Result, bail};
use edgeshop_clients::{Client, Purpose};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The timeouts a quiet spell must outlast, as the report states them.
const TIMEOUTS: &[(&str, u64)] = &[
    ("the origin's idle Hrana stream", 10),
    ("a PoP's pooled primary connection", 5),
    ("the front door's pooled PoP connection", 30),
    ("a listing's cache lifetime (max-age)", 30),
    ("a product page's cache lifetime (max-age)", 60),
    ("the refresh-token retry grace", 60),
    ("the access token (300 s + 30 s leeway)", 330),
];

/// Simulated shoppers; each is one browser.
const SHOPPERS: usize = 8;
/// Longest any request may take before it counts as failed.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// At most this many unexpected answers are kept for the report.
const MAX_KEPT: usize = 200;

/// One step of the schedule.
#[derive(Debug, Clone, Copy)]
enum Phase {
    /// Shoppers at work for this long.
    Traffic(u64),
    /// No request at all for this long.
    Quiet(u64),
    /// The origin stops (`crash`: SIGKILL) and starts on its address.
    RestartOrigin { crash: bool },
    /// A PoP stops and starts on its address.
    RestartPop { crash: bool },
}

impl Phase {
    /// How long the phase is planned to take (a restart costs a few
    /// seconds of its own).
    fn planned_secs(&self) -> u64 {
        match self {
            Phase::Traffic(s) | Phase::Quiet(s) => *s,
            Phase::RestartOrigin { .. } | Phase::RestartPop { .. } => 4,
        }
    }
}

/// How long `phases` are planned to take, in seconds.
fn planned(phases: &[Phase]) -> u64 {
    phases.iter().map(Phase::planned_secs).sum()
}

/// The schedule for `minutes`: rounds of traffic, quiet spells past the
/// stream, pool and cache timeouts, an origin restart and a PoP restart;
/// from 10 minutes on, every other round also waits out the access token.
/// As many whole rounds as fit.
fn schedule(minutes: u64) -> Vec<Phase> {
    use Phase::*;
    let budget = minutes * 60;
    let mut phases = Vec::new();
    let mut used = 0;
    let mut round = 0u64;
    loop {
        let mut next = vec![
            Traffic(20),
            Quiet(12),
            Traffic(15),
            RestartOrigin {
                crash: round.is_multiple_of(2),
            },
            Traffic(15),
            Quiet(65),
            Traffic(15),
            RestartPop {
                crash: !round.is_multiple_of(2),
            },
            Traffic(15),
        ];
        // Every other round also waits out the access token, where that
        // still fits; a round that no longer fits with it runs without.
        let long_gap = [Quiet(340), Traffic(20)];
        if minutes >= 10
            && round.is_multiple_of(2)
            && used + planned(&next) + planned(&long_gap) <= budget
        {
            next.extend(long_gap);
        }
        let cost = planned(&next);
        // The first round always runs; later ones only if they fit.
        if round > 0 && used + cost > budget {
            break;
        }
        used += cost;
        phases.extend(next);
        round += 1;
    }
    phases
}

/// What a step of a shopper's visit is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Step {
    Categories,
    Listing,
    Search,
    Product,
    SignUp,
    SignIn,
    Me,
    Refresh,
    Checkout,
    Orders,
    SignOut,
}

impl Step {
    fn name(self) -> &'static str {
        match self {
            Step::Categories => "GET /categories",
            Step::Listing => "GET /products?category",
            Step::Search => "GET /products?q",
            Step::Product => "GET /products/{id}",
            Step::SignUp => "POST /auth/signup",
            Step::SignIn => "POST /auth/login",
            Step::Me => "GET /auth/me",
            Step::Refresh => "POST /auth/refresh",
            Step::Checkout => "POST /checkout",
            Step::Orders => "GET /orders",
            Step::SignOut => "POST /auth/logout",
        }
    }

    /// The answers a user gets by design (besides those [`Outcome`]
    /// allows from the client's own state, such as an expired token).
    fn expected(self, status: u16) -> bool {
        match self {
            Step::Categories | Step::Listing | Step::Search | Step::Product => {
                matches!(status, 200 | 304)
            }
            Step::SignUp => status == 201,
            Step::SignIn | Step::Me | Step::Refresh | Step::Orders => status == 200,
            // Stock that ran out, or a price that moved since the page was
            // read: the shopper is told and chooses again.
            Step::Checkout => matches!(status, 201 | 409),
            Step::SignOut => status == 204,
        }
    }
}

/// One answer that a user would count as a failure.
#[derive(Debug, Clone)]
struct Unexpected {
    at_secs: f64,
    phase: String,
    shopper: usize,
    step: Step,
    /// The status, or what went wrong before one arrived.
    what: String,
    detail: String,
}

#[derive(Default)]
struct Tally {
    /// (step, status) -> count; status 0 is a transport failure.
    answers: BTreeMap<(Step, u16), u64>,
    latencies_us: HashMap<Step, Vec<u64>>,
    unexpected: Vec<Unexpected>,
    unexpected_total: u64,
    by_design: BTreeMap<String, u64>,
}

/// What every shopper shares: whether to send, what is in flight, the
/// tally, and where we are.
struct Shared {
    front_door: String,
    region_header: String,
    sending: AtomicBool,
    in_flight: AtomicUsize,
    done: AtomicBool,
    started: Instant,
    phase: Mutex<String>,
    tally: Mutex<Tally>,
    products: Vec<(i64, String)>,
    categories: Vec<String>,
    words: Vec<&'static str>,
    run: u64,
}

pub fn run(minutes: u64) -> Result<()> {
    let report = soak(minutes)?;
    println!("{report}");
    if report.contains("UNEXPECTED:") {
        bail!("the soak run met answers no user should get (listed above)");
    }
    Ok(())
}

/// Runs the soak and returns its report.
fn soak(minutes: u64) -> Result<String> {
    let phases = schedule(minutes);
    let layout = Layout {
        root: state_dir().join("soak"),
        logs: true,
    };
    let _ = std::fs::remove_dir_all(&layout.root);
    build::seed(&layout.catalog(), 10_000, 200, 1, true)?;
    build::seed_identity(&layout.identity(), "admin@edgeshop.test")?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let (products, categories) = rt.block_on(catalog_sample(&layout.catalog()))?;
    let mut platform = Platform::start(layout, crate::up::Engine::EdgeHost, false, None)?;
    say(&format!(
        "soak: {SHOPPERS} browser-shaped shoppers through the front door for about {} min \
         ({} phases); logs in {}",
        planned(&phases).div_ceil(60),
        phases.len(),
        state_dir().join("soak/logs").display()
    ));
    let shared = Arc::new(Shared {
        front_door: platform.front_door.url.clone(),
        region_header: platform.region_header().to_string(),
        sending: AtomicBool::new(false),
        in_flight: AtomicUsize::new(0),
        done: AtomicBool::new(false),
        started: Instant::now(),
        phase: Mutex::new("starting".into()),
        tally: Mutex::new(Tally::default()),
        products,
        categories,
        words: vec![
            "lamp", "walnut", "kettle", "linen", "knife", "glass", "wool", "oak",
        ],
        run: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs(),
    });
    let shoppers: Vec<_> = (0..SHOPPERS)
        .map(|i| rt.spawn(shopper(i, shared.clone())))
        .collect();

    let mut log = Vec::new();
    let mut failure = None;
    for (n, phase) in phases.iter().enumerate() {
        let label = format!("{}/{} {phase:?}", n + 1, phases.len());
        *shared.phase.lock().expect("phase") = label.clone();
        let t = Instant::now();
        match *phase {
            Phase::Traffic(secs) => {
                shared.sending.store(true, Ordering::SeqCst);
                std::thread::sleep(Duration::from_secs(secs));
                shared.sending.store(false, Ordering::SeqCst);
                settle(&shared);
            }
            Phase::Quiet(secs) => std::thread::sleep(Duration::from_secs(secs)),
            Phase::RestartOrigin { crash } => {
                if let Err(e) = platform.restart_origin(crash) {
                    failure = Some(e.context("restarting the origin"));
                }
            }
            Phase::RestartPop { crash } => {
                // The PoP nearest the first region: most traffic goes there.
                let name = platform.pops[0].config.name.clone();
                if let Err(e) = platform.restart_pop(&name, crash) {
                    failure = Some(e.context(format!("restarting PoP {name}")));
                }
            }
        }
        log.push(format!(
            "  {label:<40} {:>6.1} s",
            t.elapsed().as_secs_f64()
        ));
        if failure.is_some() {
            break;
        }
        if let Some((name, status)) = platform.exited() {
            failure = Some(anyhow::anyhow!("{name} exited on its own ({status})"));
            break;
        }
    }
    shared.done.store(true, Ordering::SeqCst);
    shared.sending.store(true, Ordering::SeqCst);
    for s in shoppers {
        let _ = rt.block_on(s);
    }
    let tails = platform.log_tails(15);
    drop(platform);
    let report = render(&shared, &log, minutes);
    if let Some(e) = failure {
        return Err(e.context(format!("{report}\n{tails}")));
    }
    if report.contains("UNEXPECTED:") {
        return Ok(format!("{report}\nThe last lines of each log:\n{tails}"));
    }
    Ok(report)
}

/// Waits until no request is in flight (bounded by the request timeout).
fn settle(shared: &Shared) {
    let deadline = Instant::now() + REQUEST_TIMEOUT + Duration::from_secs(1);
    while shared.in_flight.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Product ids with their slugs' categories, and category slugs, from the
/// seeded catalog: what a shopper's clicks lead to.
async fn catalog_sample(catalog: &std::path::Path) -> Result<(Vec<(i64, String)>, Vec<String>)> {
    let db = libsql::Builder::new_local(catalog).build().await?;
    let conn = db.connect()?;
    let mut rows = conn
        .query(
            "SELECT id, slug FROM products WHERE stock >= 50 ORDER BY id LIMIT 2000",
            (),
        )
        .await?;
    let mut products = Vec::new();
    while let Some(r) = rows.next().await? {
        products.push((r.get::<i64>(0)?, r.get::<String>(1)?));
    }
    let mut rows = conn.query("SELECT slug FROM categories", ()).await?;
    let mut categories = Vec::new();
    while let Some(r) = rows.next().await? {
        categories.push(r.get::<String>(0)?);
    }
    anyhow::ensure!(
        !products.is_empty() && !categories.is_empty(),
        "the soak catalog is empty"
    );
    Ok((products, categories))
}

type HttpClient = hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    http_body_util::Full<bytes::Bytes>,
>;

/// A browser's state: its connections, account, tokens and cached
/// validators.
struct Browser {
    id: usize,
    client: HttpClient,
    region: &'static str,
    /// Its own loopback address, as `host:port` the front door sees.
    email: Option<String>,
    tokens: Option<Tokens>,
    /// URL -> (ETag, when its max-age runs out).
    validators: HashMap<String, (String, Instant)>,
    rng: u64,
    visits: u64,
}

struct Tokens {
    access: String,
    refresh: String,
    /// By the client's clock, as `expires_in` said.
    access_expires: Instant,
}

struct Answer {
    status: u16,
    headers: http::HeaderMap,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_default()
    }
}

impl Browser {
    fn new(id: usize) -> Browser {
        let mut connector = hyper_util::client::legacy::connect::HttpConnector::new();
        // Its own address: 127.0.0.10, .11, ... (all of 127/8 is loopback).
        connector.set_local_address(Some(std::net::IpAddr::V4(std::net::Ipv4Addr::new(
            127,
            0,
            0,
            10 + id as u8,
        ))));
        connector.set_nodelay(true);
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                // Kept across quiet spells, as browsers keep theirs for minutes.
                .pool_idle_timeout(Duration::from_secs(300))
                .build(connector);
        Browser {
            id,
            client,
            region: ["eu", "us", "ap"][id % 3],
            email: None,
            tokens: None,
            validators: HashMap::new(),
            rng: 0x9e37_79b9_7f4a_7c15 ^ (id as u64 + 1).wrapping_mul(0xbf58_476d_1ce4_e5b9),
            visits: 0,
        }
    }

    fn next(&mut self, n: usize) -> usize {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        (self.rng % n as u64) as usize
    }

    fn chance(&mut self, percent: usize) -> bool {
        self.next(100) < percent
    }
}

async fn shopper(id: usize, shared: Arc<Shared>) {
    let mut b = Browser::new(id);
    while !shared.done.load(Ordering::SeqCst) {
        visit(&mut b, &shared).await;
        b.visits += 1;
    }
}

/// Waits while traffic is paused; false once the run is over.
async fn may_send(shared: &Shared) -> bool {
    while !shared.sending.load(Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    !shared.done.load(Ordering::SeqCst)
}

/// One visit: browse, search, account, maybe check out, maybe sign out.
async fn visit(b: &mut Browser, shared: &Shared) {
    let category = shared.categories[b.next(shared.categories.len())].clone();
    let Some(_) = read(b, shared, Step::Categories, "/api/v1/categories".into()).await else {
        return;
    };
    read(
        b,
        shared,
        Step::Listing,
        format!("/api/v1/products?category={category}&limit=20"),
    )
    .await;
    let word = shared.words[b.next(shared.words.len())];
    read(
        b,
        shared,
        Step::Search,
        format!("/api/v1/products?q={word}&limit=10"),
    )
    .await;
    let mut shown = None;
    for _ in 0..2 {
        let (id, _) = shared.products[b.next(shared.products.len())];
        if let Some(a) = read(b, shared, Step::Product, format!("/api/v1/products/{id}")).await
            && a.status == 200
        {
            shown = a.json()["price"]["amount"].as_i64().map(|p| (id, p));
        }
    }
    if !account(b, shared).await {
        return;
    }
    if b.chance(30) {
        let token = b
            .tokens
            .as_ref()
            .map(|t| t.refresh.clone())
            .unwrap_or_default();
        let body = serde_json::json!({ "refresh_token": token });
        if let Some(a) = send(
            b,
            shared,
            Step::Refresh,
            "POST",
            "/api/v1/auth/refresh",
            Some(body),
            false,
        )
        .await
            && a.status == 200
        {
            take_tokens(b, &a);
        }
    }
    if let Some((id, price)) = shown
        && b.chance(50)
    {
        let body = serde_json::json!({
            "items": [{"product_id": id, "quantity": 1, "unit_price_minor": price}],
            "shipping_address": {"name": "Soak Shopper", "line1": "1 Loop Rd",
                                 "city": "Berlin", "postal_code": "10115", "country": "DE"},
            "payment_method": "pm_card_visa",
        });
        send(
            b,
            shared,
            Step::Checkout,
            "POST",
            "/api/v1/checkout",
            Some(body),
            true,
        )
        .await;
        send(
            b,
            shared,
            Step::Orders,
            "GET",
            "/api/v1/orders?limit=5",
            None,
            true,
        )
        .await;
    }
    if b.chance(25)
        && let Some(a) = send(
            b,
            shared,
            Step::SignOut,
            "POST",
            "/api/v1/auth/logout",
            Some(serde_json::json!({})),
            true,
        )
        .await
        && a.status == 204
    {
        b.tokens = None;
    }
    think(b).await;
}

/// Signs up (first visit) or in (signed out), then reads the account.
async fn account(b: &mut Browser, shared: &Shared) -> bool {
    if b.tokens.is_none() {
        let (step, path, status) = match &b.email {
            None => (Step::SignUp, "/api/v1/auth/signup", 201),
            Some(_) => (Step::SignIn, "/api/v1/auth/login", 200),
        };
        let email = b
            .email
            .clone()
            .unwrap_or_else(|| format!("soak-{}-{}-{}@example.com", shared.run, b.id, b.visits));
        let body = serde_json::json!({ "email": email, "password": "a long enough password" });
        match send(b, shared, step, "POST", path, Some(body), false).await {
            Some(a) if a.status == status => {
                b.email = Some(email);
                take_tokens(b, &a);
            }
            _ => return false,
        }
    }
    send(b, shared, Step::Me, "GET", "/api/v1/auth/me", None, true)
        .await
        .is_some_and(|a| a.status == 200)
}

fn take_tokens(b: &mut Browser, a: &Answer) {
    let j = a.json();
    if let (Some(access), Some(refresh), Some(ttl)) = (
        j["access_token"].as_str(),
        j["refresh_token"].as_str(),
        j["expires_in"].as_u64(),
    ) {
        b.tokens = Some(Tokens {
            access: access.to_string(),
            refresh: refresh.to_string(),
            access_expires: Instant::now() + Duration::from_secs(ttl),
        });
    }
}

/// A pause between clicks.
async fn think(b: &mut Browser) {
    let ms = 100 + b.next(400) as u64;
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

/// A page script's read, revalidated with `If-None-Match` once the copy
/// it has is stale, as the browser's own cache does.
async fn read(b: &mut Browser, shared: &Shared, step: Step, path: String) -> Option<Answer> {
    let validator = b
        .validators
        .get(&path)
        .filter(|(_, fresh_until)| *fresh_until <= Instant::now())
        .map(|(etag, _)| etag.clone());
    if b.validators
        .get(&path)
        .is_some_and(|(_, until)| *until > Instant::now())
    {
        // Still fresh in the browser's own cache: no request at all.
        return Some(Answer {
            status: 200,
            headers: http::HeaderMap::new(),
            body: Vec::new(),
        });
    }
    let extra: Vec<(&str, &str)> = validator
        .as_deref()
        .map(|v| vec![("if-none-match", v)])
        .unwrap_or_default();
    let a = request(b, shared, step, "GET", &path, None, &extra).await?;
    let max_age = a
        .headers
        .get("cache-control")
        .and_then(|v| v.to_str().ok())
        .and_then(|cc| {
            cc.split(',')
                .find_map(|d| d.trim().strip_prefix("max-age=")?.parse::<u64>().ok())
        });
    if let (Some(etag), Some(max_age)) =
        (a.headers.get("etag").and_then(|v| v.to_str().ok()), max_age)
    {
        // Age: the browser's copy is only as fresh as the cache's was.
        let age = a
            .headers
            .get("age")
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
            .unwrap_or(0);
        let until = Instant::now() + Duration::from_secs(max_age.saturating_sub(age));
        b.validators.insert(path, (etag.to_string(), until));
    }
    think(b).await;
    Some(a)
}

/// A request that needs the account: signed in with the access token,
/// refreshed first when the token has expired (by the client's clock),
/// and once more if the answer says it expired.
async fn send(
    b: &mut Browser,
    shared: &Shared,
    step: Step,
    method: &str,
    path: &str,
    body: Option<serde_json::Value>,
    signed_in: bool,
) -> Option<Answer> {
    if signed_in
        && b.tokens
            .as_ref()
            .is_some_and(|t| t.access_expires <= Instant::now())
    {
        refresh_expired(b, shared).await;
    }
    let bearer = b.tokens.as_ref().map(|t| format!("Bearer {}", t.access));
    let mut extra: Vec<(&str, &str)> = Vec::new();
    if signed_in && let Some(bearer) = &bearer {
        extra.push(("authorization", bearer));
    }
    let key = format!("soak-{}-{}-{}", shared.run, b.id, b.visits);
    if step == Step::Checkout {
        extra.push(("idempotency-key", &key));
    }
    let a = request(b, shared, step, method, path, body, &extra).await;
    think(b).await;
    a
}

/// The access token ran out while the shopper was away: refresh it, as
/// the storefront's script does before its next call.
async fn refresh_expired(b: &mut Browser, shared: &Shared) {
    let Some(token) = b.tokens.as_ref().map(|t| t.refresh.clone()) else {
        return;
    };
    tally_by_design(shared, "access token expired while away: refreshed first");
    let body = serde_json::json!({ "refresh_token": token });
    if let Some(a) = request(
        b,
        shared,
        Step::Refresh,
        "POST",
        "/api/v1/auth/refresh",
        Some(body),
        &[],
    )
    .await
        && a.status == 200
    {
        take_tokens(b, &a);
    }
}

fn tally_by_design(shared: &Shared, what: &str) {
    *shared
        .tally
        .lock()
        .expect("tally")
        .by_design
        .entry(what.to_string())
        .or_default() += 1;
}

/// Sends one browser-shaped request through the front door and records
/// its outcome. `None` if the run ended before it could be sent.
async fn request(
    b: &mut Browser,
    shared: &Shared,
    step: Step,
    method: &str,
    path: &str,
    body: Option<serde_json::Value>,
    extra: &[(&str, &str)],
) -> Option<Answer> {
    if !may_send(shared).await {
        return None;
    }
    let authority = shared.front_door.trim_start_matches("http://").to_string();
    let purpose = if body.is_some() {
        Purpose::SendJson
    } else {
        Purpose::Read
    };
    let mut fields = edgeshop_clients::merged(
        edgeshop_clients::headers(Client::Chromium, purpose, &authority),
        extra,
    );
    fields.push((shared.region_header.clone(), b.region.to_string()));
    let mut req = http::Request::builder()
        .method(method)
        .uri(format!("{}{path}", shared.front_door));
    for (n, v) in &fields {
        req = req.header(n.as_str(), v.as_str());
    }
    let body = body.map(|j| j.to_string()).unwrap_or_default();
    let req = match req.body(http_body_util::Full::new(bytes::Bytes::from(body))) {
        Ok(r) => r,
        Err(e) => {
            record(
                shared,
                b.id,
                step,
                Err(format!("building the request: {e}")),
                0,
            );
            return None;
        }
    };
    shared.in_flight.fetch_add(1, Ordering::SeqCst);
    let t = Instant::now();
    let outcome = tokio::time::timeout(REQUEST_TIMEOUT, async {
        let resp = b.client.request(req).await.map_err(|e| format!("{e:?}"))?;
        let (parts, body) = resp.into_parts();
        let wire = http_body_util::BodyExt::collect(body)
            .await
            .map_err(|e| format!("reading the body: {e}"))?
            .to_bytes();
        let coding = parts
            .headers
            .get("content-encoding")
            .and_then(|v| v.to_str().ok());
        let body = edgeshop_clients::decode(coding, &wire).map_err(|e| e.to_string())?;
        Ok::<_, String>(Answer {
            status: parts.status.as_u16(),
            headers: parts.headers,
            body,
        })
    })
    .await
    .unwrap_or_else(|_| Err(format!("no answer within {REQUEST_TIMEOUT:?}")));
    shared.in_flight.fetch_sub(1, Ordering::SeqCst);
    let us = t.elapsed().as_micros() as u64;
    match outcome {
        Ok(a) => {
            let expired = a.status == 401
                && b.tokens
                    .as_ref()
                    .is_some_and(|t| t.access_expires <= Instant::now() + Duration::from_secs(5));
            if expired {
                tally_by_design(shared, "401 for a token past its expiry");
            }
            let ok = step.expected(a.status) || expired;
            let detail = String::from_utf8_lossy(&a.body).chars().take(300).collect();
            record(shared, b.id, step, Ok((a.status, ok, detail)), us);
            if a.status == 304 {
                tally_by_design(shared, "304 for a copy the browser revalidated");
            }
            if step == Step::Checkout && a.status == 409 {
                tally_by_design(shared, "409 at checkout (stock ran out or a price moved)");
            }
            Some(a)
        }
        Err(e) => {
            record(shared, b.id, step, Err(e), us);
            None
        }
    }
}

fn record(
    shared: &Shared,
    shopper: usize,
    step: Step,
    outcome: Result<(u16, bool, String), String>,
    us: u64,
) {
    let mut tally = shared.tally.lock().expect("tally");
    let (status, ok, what, detail) = match outcome {
        Ok((status, ok, detail)) => (status, ok, status.to_string(), detail),
        Err(e) => (0, false, "no answer".to_string(), e),
    };
    *tally.answers.entry((step, status)).or_default() += 1;
    tally.latencies_us.entry(step).or_default().push(us);
    if !ok {
        tally.unexpected_total += 1;
        if tally.unexpected.len() < MAX_KEPT {
            let phase = shared.phase.lock().expect("phase").clone();
            tally.unexpected.push(Unexpected {
                at_secs: shared.started.elapsed().as_secs_f64(),
                phase,
                shopper,
                step,
                what,
                detail,
            });
        }
    }
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize] as f64 / 1000.0
}

fn render(shared: &Shared, phases: &[String], minutes: u64) -> String {
    let tally = shared.tally.lock().expect("tally");
    let mut out = String::new();
    out.push_str(&format!(
        "soak report: {SHOPPERS} browser-shaped shoppers, {} planned minutes, {:.1} minutes run\n\n",
        minutes,
        shared.started.elapsed().as_secs_f64() / 60.0
    ));
    out.push_str("quiet spells outlast:\n");
    for (what, secs) in TIMEOUTS {
        out.push_str(&format!("  {what}: {secs} s\n"));
    }
    out.push_str("\nphases:\n");
    for p in phases {
        out.push_str(p);
        out.push('\n');
    }
    out.push_str(
        "\n| step | answers | statuses | p50 ms | p99 ms |\n| --- | --- | --- | --- | --- |\n",
    );
    let mut steps: Vec<Step> = tally.answers.keys().map(|(s, _)| *s).collect();
    steps.dedup();
    let mut total = 0;
    for step in steps {
        let statuses: Vec<String> = tally
            .answers
            .iter()
            .filter(|((s, _), _)| *s == step)
            .map(|((_, status), n)| {
                if *status == 0 {
                    format!("no answer x{n}")
                } else {
                    format!("{status} x{n}")
                }
            })
            .collect();
        let n: u64 = tally
            .answers
            .iter()
            .filter(|((s, _), _)| *s == step)
            .map(|(_, n)| n)
            .sum();
        total += n;
        let mut lat = tally.latencies_us.get(&step).cloned().unwrap_or_default();
        lat.sort_unstable();
        out.push_str(&format!(
            "| {} | {n} | {} | {:.1} | {:.1} |\n",
            step.name(),
            statuses.join(", "),
            percentile(&lat, 0.5),
            percentile(&lat, 0.99)
        ));
    }
    out.push_str(&format!("\n{total} answers in all.\n"));
    if !tally.by_design.is_empty() {
        out.push_str("by design (counted, not failures):\n");
        for (what, n) in &tally.by_design {
            out.push_str(&format!("  {what}: {n}\n"));
        }
    }
    if tally.unexpected_total == 0 {
        out.push_str("unexpected answers: 0\n");
    } else {
        out.push_str(&format!(
            "UNEXPECTED: {} answers no user should get (first {} listed):\n",
            tally.unexpected_total,
            tally.unexpected.len()
        ));
        for u in &tally.unexpected {
            out.push_str(&format!(
                "  {:>7.1} s  [{}] shopper {} {}: {} {}\n",
                u.at_secs,
                u.phase,
                u.shopper,
                u.step.name(),
                u.what,
                u.detail.replace('\n', " ")
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_schedule_outlasts_the_timeouts_and_restarts_both() {
        for minutes in [3, 10, 30] {
            let phases = schedule(minutes);
            let longest_quiet = phases
                .iter()
                .filter_map(|p| match p {
                    Phase::Quiet(s) => Some(*s),
                    _ => None,
                })
                .max()
                .unwrap();
            let must_outlast = if minutes >= 10 { 330 } else { 60 };
            assert!(
                longest_quiet > must_outlast,
                "{minutes} min: {longest_quiet} s"
            );
            assert!(
                phases
                    .iter()
                    .any(|p| matches!(p, Phase::RestartOrigin { .. }))
            );
            assert!(phases.iter().any(|p| matches!(p, Phase::RestartPop { .. })));
            let secs = planned(&phases);
            assert!(
                secs <= minutes * 60 || minutes < 3,
                "{minutes} min: {secs} s"
            );
        }
        // The CI form: one round, about three minutes.
        let ci = planned(&schedule(3));
        assert!((150..=180).contains(&ci), "{ci} s");
        // A long run fills its time with whole rounds.
        let long = planned(&schedule(30));
        assert!(long > 25 * 60, "{long} s of 30 min");
    }

    #[test]
    fn only_answers_by_design_are_expected() {
        assert!(Step::Product.expected(304));
        assert!(!Step::Product.expected(503));
        assert!(Step::Checkout.expected(409));
        assert!(
            !Step::Checkout.expected(402),
            "the simulator has no faults in a soak"
        );
        assert!(!Step::SignIn.expected(429));
        assert!(
            !Step::Me.expected(401),
            "unless the token expired, checked apart"
        );
    }
}
