//! The front door: the stand-in for a CDN's anycast/geo routing. It sends
//! each request to the nearest healthy PoP, health-checks every PoP, and
//! fails over when one stops answering.
//!
//! Per request: pick candidates ([`select::candidates`]), try them in
//! order. A PoP that refuses the connection is marked down at once and the
//! request moves on (nothing was sent, so any method is safe to retry); a
//! failure after sending is retried only for GET and HEAD.

mod config;
mod metrics;
mod select;
mod status;
mod window;

use anyhow::{Context, Result};
use bytes::Bytes;
use cache_core::status::Observed;
use clap::Parser;
use config::FrontDoorConfig;
use edgeshop_telemetry::trace::{self, KeyValue};
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited, combinators::UnsyncBoxBody};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use problem::Problem;
use select::PopEntry;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

type Body = UnsyncBoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;

/// Largest request body the front door buffers (it must be able to replay a
/// request on another PoP).
const MAX_BODY_BYTES: usize = 1 << 20;
/// Fields through which a client could claim another address or origin;
/// the front door removes them all and writes `X-Forwarded-For` itself.
const SPOOFABLE: &[&str] = &[
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-real-ip",
    "true-client-ip",
    "cf-connecting-ip",
];
/// Longest a client may take to send a request's body.
const BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest a PoP may take to answer before the front door gives up.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(30);
/// The operators' status page.
const STATUS_PATH: &str = "/.well-known/edgeshop/status";
/// The PoP list as JSON (what `cargo xtask up` and tests read).
const POPS_PATH: &str = "/.well-known/edgeshop/front-door";
/// Largest health answer read for the replicas' lag.
const MAX_HEALTH_BYTES: usize = 64 << 10;

#[derive(Debug, Parser)]
#[command(name = "front-door")]
struct Args {
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// JSON: `{"pops": [{"name", "region", "url"}], "nearest": {...}}`.
    #[arg(long)]
    config: std::path::PathBuf,
}

struct Pop {
    entry: PopEntry,
    url: String,
    healthy: AtomicBool,
    failures: AtomicU32,
    /// The last minutes of its traffic, for the status page.
    window: Mutex<window::Window>,
}

struct FrontDoor {
    pops: Vec<Pop>,
    entries: Vec<PopEntry>,
    config: FrontDoorConfig,
    client: Client<HttpConnector, Full<Bytes>>,
    metrics: metrics::FrontDoorMetrics,
    /// The status windows' clock.
    started: Instant,
}

impl FrontDoor {
    fn mark(&self, pop: &Pop, ok: bool) {
        self.metrics.checked(&pop.entry.name, ok);
        if ok {
            pop.failures.store(0, Ordering::Relaxed);
            if !pop.healthy.swap(true, Ordering::Relaxed) {
                tracing::info!(pop = %pop.entry.name, "PoP healthy");
            }
        } else {
            let n = pop.failures.fetch_add(1, Ordering::Relaxed) + 1;
            if n >= self.config.unhealthy_after && pop.healthy.swap(false, Ordering::Relaxed) {
                tracing::warn!(pop = %pop.entry.name, failures = n, "PoP down; failing over");
            }
        }
        self.metrics
            .set_healthy(&pop.entry.name, pop.healthy.load(Ordering::Relaxed));
    }

    /// Active checks: one task per PoP, forever.
    fn spawn_health_checks(self: &Arc<Self>) {
        for i in 0..self.pops.len() {
            let fd = self.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(fd.config.health_interval());
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    let pop = &fd.pops[i];
                    // Spin's health path: every Spin host answers it, and
                    // our edge host answers it as its own (503 until its
                    // replicas have bootstrapped), so a PoP on either works.
                    let req = Request::get(format!("{}/.well-known/spin/health", pop.url))
                        .body(Full::new(Bytes::new()))
                        .expect("valid request");
                    let answer = tokio::time::timeout(fd.config.health_timeout(), async {
                        let r = fd.client.request(req).await.ok()?;
                        let ok = r.status().is_success();
                        let body = Limited::new(r.into_body(), MAX_HEALTH_BYTES)
                            .collect()
                            .await
                            .ok()?
                            .to_bytes();
                        Some((ok, body))
                    })
                    .await;
                    let ok = matches!(answer, Ok(Some((true, _))));
                    fd.mark(pop, ok);
                    if let Ok(Some((true, body))) = answer
                        && let Some(lag) = replicas_lag_ms(&body)
                    {
                        fd.metrics.lag(&pop.entry.name, lag);
                        pop.window
                            .lock()
                            .expect("window")
                            .record_lag(fd.started.elapsed(), lag);
                    }
                }
            });
        }
    }

    async fn handle(&self, req: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
        match req.uri().path() {
            POPS_PATH => return self.pops(),
            STATUS_PATH => return self.status_page(),
            // For the operators' Prometheus on this machine; the public
            // gets the status page. Never forwarded: a PoP's own
            // metrics are not the public's either.
            edgeshop_telemetry::metrics::PATH if peer.ip().is_loopback() => return self.metrics(),
            edgeshop_telemetry::metrics::PATH => {
                return problem(Problem::not_found(
                    "metrics are served to this machine only; scrape from it",
                ));
            }
            _ => {}
        }
        let started = Instant::now();
        // The trace starts here, or continues the client's.
        let method = req.method().clone();
        let span = trace::Server::start(req.headers(), || {
            vec![
                KeyValue::new("http.request.method", method.to_string()),
                KeyValue::new("url.path", req.uri().path().to_string()),
            ]
        });
        let logs = trace::log_span(span.as_ref());
        let (pop, resp) =
            tracing::Instrument::instrument(self.forward(req, peer, span.as_ref()), logs).await;
        let elapsed = started.elapsed();
        let status = resp.status().as_u16();
        if let Some(span) = span {
            span.end(
                || method.to_string(),
                || {
                    let mut a = vec![KeyValue::new(
                        "http.response.status_code",
                        i64::from(status),
                    )];
                    if let Some(pop) = pop {
                        a.push(KeyValue::new("edgeshop.pop", pop.entry.name.clone()));
                    }
                    a
                },
            );
        }
        let hit = resp
            .headers()
            .get("cache-status")
            .and_then(|v| v.to_str().ok())
            .and_then(cache_core::status::Observed::from_field)
            .and_then(|(o, _)| match o {
                Observed::Hit | Observed::Stale => Some(true),
                Observed::Miss => Some(false),
                Observed::Bypass | Observed::Refused => None,
            });
        let name = pop.map_or(metrics::NO_POP, |p| p.entry.name.as_str());
        self.metrics.request(name, status, elapsed);
        if let Some(pop) = pop {
            pop.window.lock().expect("window").record(
                self.started.elapsed(),
                window::Seen {
                    latency: elapsed,
                    error: status >= 500,
                    hit,
                },
            );
        }
        resp
    }

    /// Sends the request to the best PoP that answers; returns which one
    /// answered (or failed last), if any got that far.
    async fn forward(
        &self,
        req: Request<Incoming>,
        peer: SocketAddr,
        span: Option<&trace::Server>,
    ) -> (Option<&Pop>, Response<Body>) {
        let region = req
            .headers()
            .get(&self.config.region_header)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let (mut parts, body) = req.into_parts();
        let body = match tokio::time::timeout(
            BODY_READ_TIMEOUT,
            Limited::new(body, MAX_BODY_BYTES).collect(),
        )
        .await
        {
            Ok(Ok(b)) => b.to_bytes(),
            Ok(Err(_)) => {
                return (
                    None,
                    problem(Problem::payload_too_large(MAX_BODY_BYTES as u64)),
                );
            }
            Err(_) => {
                return (
                    None,
                    problem(Problem::new(
                        408,
                        "request-timeout",
                        "Request timeout",
                        format!("the request body did not arrive within {BODY_READ_TIMEOUT:?}"),
                    )),
                );
            }
        };
        if let Some(host) = parts.headers.get(http::header::HOST)
            && let Err(p) = problem::check_host(host.as_bytes())
        {
            return (None, problem(p));
        }
        // Untrusted traffic enters here: whatever the client says about
        // its address is dropped, and the PoPs (which trust this hop) see
        // the address the connection came from.
        for name in SPOOFABLE {
            parts.headers.remove(*name);
        }
        if let Ok(v) = HeaderValue::from_str(&peer.ip().to_string()) {
            parts.headers.insert("x-forwarded-for", v);
        }
        if let Some(span) = span {
            // The PoP's span is a child of this one.
            span.pass_on(&mut parts.headers);
        }
        let idempotent = parts.method == http::Method::GET || parts.method == http::Method::HEAD;
        let healthy: Vec<bool> = self
            .pops
            .iter()
            .map(|p| p.healthy.load(Ordering::Relaxed))
            .collect();
        let order = select::candidates(
            &self.entries,
            &healthy,
            region.as_deref(),
            &self.config.nearest,
        );
        for entry in order {
            let pop = self
                .pops
                .iter()
                .find(|p| p.entry.name == entry.name)
                .expect("known PoP");
            let path = parts
                .uri
                .path_and_query()
                .map(|p| p.as_str())
                .unwrap_or("/");
            let mut upstream = Request::builder()
                .method(parts.method.clone())
                .uri(format!("{}{path}", pop.url));
            for (k, v) in &parts.headers {
                upstream = upstream.header(k, v);
            }
            let Ok(upstream) = upstream.body(Full::new(body.clone())) else {
                return (
                    Some(pop),
                    problem(Problem::bad_request("the request could not be forwarded")),
                );
            };
            match tokio::time::timeout(UPSTREAM_TIMEOUT, self.client.request(upstream)).await {
                Ok(Ok(resp)) => {
                    let (mut rparts, rbody) = resp.into_parts();
                    if let Ok(v) = HeaderValue::from_str(&pop.entry.name) {
                        rparts.headers.insert("edgeshop-pop", v);
                    }
                    return (
                        Some(pop),
                        Response::from_parts(rparts, rbody.map_err(Into::into).boxed_unsync()),
                    );
                }
                Ok(Err(e)) if e.is_connect() => {
                    self.metrics.failover(&pop.entry.name);
                    // Nothing reached the PoP: take it out now, try the next.
                    pop.failures
                        .store(self.config.unhealthy_after, Ordering::Relaxed);
                    if pop.healthy.swap(false, Ordering::Relaxed) {
                        self.metrics.set_healthy(&pop.entry.name, false);
                        tracing::warn!(pop = %pop.entry.name, "PoP refused a connection; failing over");
                    }
                }
                Ok(Err(e)) if idempotent => {
                    self.metrics.failover(&pop.entry.name);
                    tracing::warn!(pop = %pop.entry.name, error = %e, "PoP failed mid-request; retrying elsewhere");
                }
                Ok(Err(e)) => {
                    tracing::warn!(pop = %pop.entry.name, error = %e, "PoP failed mid-request");
                    return (
                        Some(pop),
                        problem(Problem::new(
                            502,
                            "bad-gateway",
                            "Bad gateway",
                            "the PoP failed while handling this request; it may or may not have been applied",
                        )),
                    );
                }
                Err(_) => {
                    return (
                        Some(pop),
                        problem(Problem::gateway_timeout(format!(
                            "PoP {} did not answer within {UPSTREAM_TIMEOUT:?}",
                            pop.entry.name
                        ))),
                    );
                }
            }
        }
        let mut r = problem(Problem::unavailable("no PoP is reachable; retry shortly"));
        r.headers_mut()
            .insert(http::header::RETRY_AFTER, HeaderValue::from_static("1"));
        (None, r)
    }

    fn status_page(&self) -> Response<Body> {
        let now = self.started.elapsed();
        let views: Vec<status::PopView> = self
            .pops
            .iter()
            .map(|p| status::PopView {
                name: &p.entry.name,
                region: &p.entry.region,
                healthy: p.healthy.load(Ordering::Relaxed),
                slots: p.window.lock().expect("window").series(now),
            })
            .collect();
        let mut r = Response::new(full(status::page(&views).into_bytes()));
        let h = r.headers_mut();
        h.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
        h.insert(
            http::header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        );
        // Inline styles and SVG only: nothing may load or run.
        h.insert(
            http::header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'",
            ),
        );
        r
    }

    fn metrics(&self) -> Response<Body> {
        let mut r = Response::new(full(self.metrics.encode().into_bytes()));
        let h = r.headers_mut();
        h.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static(edgeshop_telemetry::metrics::CONTENT_TYPE),
        );
        h.insert(
            http::header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        );
        r
    }

    fn pops(&self) -> Response<Body> {
        let pops: Vec<_> = self
            .pops
            .iter()
            .map(|p| {
                serde_json::json!({
                    "name": p.entry.name,
                    "region": p.entry.region,
                    "url": p.url,
                    "healthy": p.healthy.load(Ordering::Relaxed),
                })
            })
            .collect();
        let body = serde_json::to_vec(&serde_json::json!({ "pops": pops })).expect("json");
        let mut r = Response::new(full(body));
        r.headers_mut().insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        r
    }
}

/// The largest `lag_ms` among the replicas in an edge host's health
/// answer; `None` from a PoP that does not report it (real Spin).
fn replicas_lag_ms(body: &[u8]) -> Option<u64> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    v.get("replicas")?
        .as_array()?
        .iter()
        .filter_map(|r| r.get("lag_ms")?.as_u64())
        .max()
}

fn full(bytes: Vec<u8>) -> Body {
    Full::new(Bytes::from(bytes))
        .map_err(|never| match never {})
        .boxed_unsync()
}

fn problem(p: Problem) -> Response<Body> {
    let mut r = Response::new(full(p.to_json()));
    *r.status_mut() = StatusCode::from_u16(p.status).unwrap_or(StatusCode::BAD_GATEWAY);
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static(Problem::CONTENT_TYPE),
    );
    r
}

#[tokio::main]
async fn main() -> Result<()> {
    let _telemetry = edgeshop_telemetry::init("edgeshop-front-door", "info");
    let args = Args::parse();
    let text = std::fs::read_to_string(&args.config)
        .with_context(|| format!("reading {}", args.config.display()))?;
    let config: FrontDoorConfig = serde_json::from_str(&text)
        .with_context(|| format!("parsing {}", args.config.display()))?;
    anyhow::ensure!(
        !config.pops.is_empty(),
        "the front door needs at least one PoP"
    );
    let pops: Vec<Pop> = config
        .pops
        .iter()
        .map(|p| Pop {
            entry: PopEntry {
                name: p.name.clone(),
                region: p.region.clone(),
            },
            url: p.url.trim_end_matches('/').to_string(),
            // Optimistic until the first check says otherwise.
            healthy: AtomicBool::new(true),
            failures: AtomicU32::new(0),
            window: Mutex::new(window::Window::default()),
        })
        .collect();
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(Duration::from_secs(1)));
    let client = Client::builder(hyper_util::rt::TokioExecutor::new())
        // Shorter than a PoP's idle timeout, so a pooled connection is
        // never reused just as the PoP closes it.
        .pool_idle_timeout(Duration::from_secs(10))
        .pool_max_idle_per_host(64)
        .build(connector);
    let fd = Arc::new(FrontDoor {
        entries: pops.iter().map(|p| p.entry.clone()).collect(),
        metrics: metrics::FrontDoorMetrics::new(pops.iter().map(|p| p.entry.name.as_str())),
        pops,
        config,
        client,
        started: Instant::now(),
    });
    fd.spawn_health_checks();

    let listener = admission::bind(args.listen)?;
    println!("front-door listening on http://{}", listener.local_addr()?);
    std::io::stdout().flush()?;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let connections = admission::Admission::serving(fd.config.connections());
    loop {
        let (stream, peer, permit) = tokio::select! {
            a = connections.accept(&listener) => a,
            _ = tokio::signal::ctrl_c() => break,
            _ = term.recv() => break,
        };
        let _ = stream.set_nodelay(true);
        let header_read_timeout = fd.config.header_read_timeout();
        let fd = fd.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| {
                let fd = fd.clone();
                async move { Ok::<_, std::convert::Infallible>(fd.handle(req, peer).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .keep_alive(true)
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(header_read_timeout)
                .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                .await;
            drop(permit);
        });
    }
    tracing::info!("front door stopped");
    Ok(())
}
