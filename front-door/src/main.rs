//! The front door: the stand-in for a CDN's anycast/geo routing. It sends
//! each request to the nearest healthy PoP, health-checks every PoP, and
//! fails over when one stops answering.
//!
//! Per request: pick candidates ([`select::candidates`]), try them in
//! order. A PoP that refuses the connection is marked down at once and the
//! request moves on (nothing was sent, so any method is safe to retry); a
//! failure after sending is retried only for GET and HEAD.

mod config;
mod select;

use anyhow::{Context, Result};
use bytes::Bytes;
use clap::Parser;
use config::FrontDoorConfig;
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
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

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
}

struct FrontDoor {
    pops: Vec<Pop>,
    entries: Vec<PopEntry>,
    config: FrontDoorConfig,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl FrontDoor {
    fn mark(&self, pop: &Pop, ok: bool) {
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
                    let ok = matches!(
                        tokio::time::timeout(fd.config.health_timeout(), fd.client.request(req)).await,
                        Ok(Ok(r)) if r.status().is_success()
                    );
                    fd.mark(pop, ok);
                }
            });
        }
    }

    async fn handle(&self, req: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
        if req.uri().path() == "/.well-known/edgeshop/front-door" {
            return self.status();
        }
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
            Ok(Err(_)) => return problem(Problem::payload_too_large(MAX_BODY_BYTES as u64)),
            Err(_) => {
                return problem(Problem::new(
                    408,
                    "request-timeout",
                    "Request timeout",
                    format!("the request body did not arrive within {BODY_READ_TIMEOUT:?}"),
                ));
            }
        };
        if let Some(host) = parts.headers.get(http::header::HOST)
            && let Err(p) = problem::check_host(host.as_bytes())
        {
            return problem(p);
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
                return problem(Problem::bad_request("the request could not be forwarded"));
            };
            match tokio::time::timeout(UPSTREAM_TIMEOUT, self.client.request(upstream)).await {
                Ok(Ok(resp)) => {
                    let (mut rparts, rbody) = resp.into_parts();
                    if let Ok(v) = HeaderValue::from_str(&pop.entry.name) {
                        rparts.headers.insert("edgeshop-pop", v);
                    }
                    return Response::from_parts(rparts, rbody.map_err(Into::into).boxed_unsync());
                }
                Ok(Err(e)) if e.is_connect() => {
                    // Nothing reached the PoP: take it out now, try the next.
                    pop.failures
                        .store(self.config.unhealthy_after, Ordering::Relaxed);
                    if pop.healthy.swap(false, Ordering::Relaxed) {
                        tracing::warn!(pop = %pop.entry.name, "PoP refused a connection; failing over");
                    }
                }
                Ok(Err(e)) if idempotent => {
                    tracing::warn!(pop = %pop.entry.name, error = %e, "PoP failed mid-request; retrying elsewhere");
                }
                Ok(Err(e)) => {
                    tracing::warn!(pop = %pop.entry.name, error = %e, "PoP failed mid-request");
                    return problem(Problem::new(
                        502,
                        "bad-gateway",
                        "Bad gateway",
                        "the PoP failed while handling this request; it may or may not have been applied",
                    ));
                }
                Err(_) => {
                    return problem(Problem::gateway_timeout(format!(
                        "PoP {} did not answer within {UPSTREAM_TIMEOUT:?}",
                        pop.entry.name
                    )));
                }
            }
        }
        let mut r = problem(Problem::unavailable("no PoP is reachable; retry shortly"));
        r.headers_mut()
            .insert(http::header::RETRY_AFTER, HeaderValue::from_static("1"));
        r
    }

    fn status(&self) -> Response<Body> {
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
    edgeshop_telemetry::init("info");
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
        pops,
        config,
        client,
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
