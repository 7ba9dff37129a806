//! The PoP's HTTP front: accept, bound, route, run the guest, answer.
//!
//! Phases of a request, in order: admission (connection and request
//! permits, else 503), host routes (health), routing (404), request limits
//! (413), Spin's request headers, the guest (504 on deadline, 500 on trap).

use crate::app::LoadedApp;
use crate::limits::Limits;
use crate::metrics::{GuestFailure, GuestMetrics, PopMetrics};
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use problem::Problem;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use wasmtime_wasi_http::WasiBody;
use wasmtime_wasi_http::handler::{ExpirationError, TrapOrPanicError};
use wasmtime_wasi_http::io::TokioIo;

pub const HEALTH_PATH: &str = "/.well-known/edgeshop/health";
/// Replication position and lag of each embedded replica.
pub const REPLICATION_PATH: &str = "/.well-known/edgeshop/replication";
/// Spin's own health path, answered the same way so tools that probe a
/// Spin app work against a PoP.
pub const SPIN_HEALTH_PATH: &str = "/.well-known/spin/health";

pub struct Server {
    pub app: LoadedApp,
    pub limits: Limits,
    pub pop: String,
    requests: Semaphore,
    next_request: AtomicU64,
    metrics: PopMetrics,
    guests: GuestMetrics,
}

/// Route labels for what the host answers itself.
mod route {
    pub const HEALTH: &str = "health";
    pub const REPLICATION: &str = "replication";
    pub const METRICS: &str = "metrics";
    pub const UNMATCHED: &str = "unmatched";
}

impl Server {
    /// `guests` must be the metrics the app's handlers were given, so
    /// one `/metrics` shows them with the rest.
    pub fn new(app: LoadedApp, limits: Limits, pop: String, guests: GuestMetrics) -> Arc<Server> {
        let metrics = PopMetrics::new(&guests, app.replicas.clone(), app.stores.clone());
        Arc::new(Server {
            requests: Semaphore::new(limits.max_concurrent_requests),
            app,
            limits,
            pop,
            next_request: AtomicU64::new(0),
            metrics,
            guests,
        })
    }

    /// Serves until `shutdown` flips to true, then stops accepting and waits
    /// for in-flight connections to finish (graceful shutdown).
    pub async fn serve(
        self: Arc<Self>,
        listener: TcpListener,
        mut shutdown: watch::Receiver<bool>,
    ) -> anyhow::Result<()> {
        let connections = admission::Admission::serving(self.limits.connections.clone());
        let mut tasks = tokio::task::JoinSet::new();
        loop {
            let (stream, peer, permit) = tokio::select! {
                _ = shutdown.changed() => break,
                accepted = connections.accept(&listener) => accepted,
            };
            // Without this, Nagle + delayed ACK add ~40 ms to the last chunk
            // of a chunked WASI 0.3 response.
            let _ = stream.set_nodelay(true);
            let server = self.clone();
            let header_read_timeout = self.limits.header_read_timeout;
            let mut conn_shutdown = shutdown.clone();
            tasks.spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let server = server.clone();
                    async move { Ok::<_, std::convert::Infallible>(server.handle(req, peer).await) }
                });
                // hyper's own defaults bound the header section (100
                // headers, ~400 KiB buffer); `max_headers` is not set
                // because setting it moves header parsing to the heap on
                // every request. The byte limit is checked in `handle`.
                let conn = hyper::server::conn::http1::Builder::new()
                    .keep_alive(true)
                    // Without a timer hyper silently drops its header
                    // timeout; with one, it also ends idle keep-alives.
                    .timer(hyper_util::rt::TokioTimer::new())
                    .header_read_timeout(header_read_timeout)
                    .serve_connection(TokioIo::new(stream), service);
                let mut conn = std::pin::pin!(conn);
                tokio::select! {
                    r = conn.as_mut() => { if let Err(e) = r { tracing::debug!(error = %e, "connection ended"); } }
                    _ = conn_shutdown.changed() => {
                        conn.as_mut().graceful_shutdown();
                        let _ = conn.await;
                    }
                }
                drop(permit);
            });
            while tasks.try_join_next().is_some() {}
        }
        tracing::info!(
            in_flight = tasks.len(),
            "shutting down; finishing in-flight requests"
        );
        while tasks.join_next().await.is_some() {}
        Ok(())
    }

    async fn handle(&self, mut req: Request<Incoming>, peer: SocketAddr) -> Response<WasiBody> {
        use edgeshop_telemetry::trace::{self, KeyValue};
        use tracing::Instrument;
        let started = std::time::Instant::now();
        let method = req.method().clone();
        let span = trace::Server::start(req.headers(), || {
            vec![
                KeyValue::new("edgeshop.pop", self.pop.clone()),
                KeyValue::new("http.request.method", method.to_string()),
                KeyValue::new("url.path", req.uri().path().to_string()),
            ]
        });
        if let Some(span) = &span {
            // The guests pass `traceparent` on to the origin: its parent
            // is then this PoP's span, not the front door's.
            let headers = req.headers_mut();
            span.pass_on(headers);
            // Ours to set: a client's own would spare the traced layers'
            // spans. Without spans exported the plain builds ignore it,
            // and no request a guest sends out carries it on.
            if span.is_sampled() {
                headers.remove(TRACE_UNSAMPLED);
            } else {
                headers.insert(TRACE_UNSAMPLED, HeaderValue::from_static("1"));
            }
        }
        let logs = trace::log_span(span.as_ref());
        // Read only when someone listens: it copies the request line.
        let access = crate::access::on().then(|| crate::access::Seen::of(&req));
        let mut route = route::UNMATCHED;
        let resp = self
            .dispatch(req, peer, &mut route)
            .instrument(logs.clone())
            .await;
        let elapsed = started.elapsed();
        let status = resp.status().as_u16();
        if let Some(span) = span {
            span.end(
                || format!("{method} {route}"),
                || {
                    vec![
                        KeyValue::new("http.route", route.to_string()),
                        KeyValue::new("http.response.status_code", i64::from(status)),
                    ]
                },
            );
        }
        self.metrics.observe(route, status, resp.headers(), elapsed);
        if let Some(seen) = access {
            // Inside the request's span, so a JSON line carries its trace
            // and span ids.
            logs.in_scope(|| {
                crate::access::log(&self.pop, peer.ip(), &seen, route, status, elapsed)
            });
        }
        resp
    }

    /// Answers a request; `route` is set to the label it is counted under
    /// as soon as that is known.
    async fn dispatch<'a>(
        &'a self,
        req: Request<Incoming>,
        peer: SocketAddr,
        route: &mut &'a str,
    ) -> Response<WasiBody> {
        let Ok(_permit) = self.requests.try_acquire() else {
            let mut r = problem(Problem::unavailable(
                "the PoP is at capacity; retry shortly",
            ));
            r.headers_mut()
                .insert(http::header::RETRY_AFTER, HeaderValue::from_static("1"));
            return r;
        };
        let request_id = self.next_request.fetch_add(1, Ordering::Relaxed);
        let path = req.uri().path().to_string();
        if path == HEALTH_PATH || path == SPIN_HEALTH_PATH {
            *route = route::HEALTH;
            return self.health();
        }
        if path == REPLICATION_PATH {
            *route = route::REPLICATION;
            return self.replication();
        }
        if path == edgeshop_telemetry::metrics::PATH {
            *route = route::METRICS;
            return self.metrics();
        }
        if let Some(r) = self.app.replicas.iter().find(|r| !r.is_ready()) {
            let mut resp = problem(Problem::unavailable(format!(
                "this PoP's {} replica is still bootstrapping from the primary; retry shortly",
                r.label()
            )));
            resp.headers_mut()
                .insert(http::header::RETRY_AFTER, HeaderValue::from_static("1"));
            return resp;
        }
        let Some(matched) = self.app.routes.route(&path) else {
            return problem(Problem::not_found(format!("no route matches {path}")));
        };
        *route = matched.pattern.as_str();
        if content_length(req.headers()).is_some_and(|n| n > self.limits.max_request_body_bytes) {
            return problem(Problem::payload_too_large(
                self.limits.max_request_body_bytes,
            ));
        }
        let header_bytes: usize = req
            .headers()
            .iter()
            .map(|(k, v)| k.as_str().len() + v.len())
            .sum();
        if header_bytes > self.limits.max_header_bytes {
            return problem(Problem::new(
                431,
                "headers-too-large",
                "Request header fields too large",
                format!(
                    "request headers total {header_bytes} bytes, over the {}-byte limit",
                    self.limits.max_header_bytes
                ),
            ));
        }
        let (mut parts, body) = req.into_parts();
        // The guest's URL is built from the authority: one that is not a
        // plain `host[:port]` could rewrite the path it sees.
        let host = match parts.headers.get(http::header::HOST) {
            Some(h) => match problem::check_host(h.as_bytes()) {
                Ok(()) => h.to_str().unwrap_or("localhost").to_string(),
                Err(p) => return problem(p),
            },
            None => "localhost".to_string(),
        };
        strip_spin_headers(&mut parts.headers);
        let full_url = format!(
            "http://{host}{}",
            parts
                .uri
                .path_and_query()
                .map(|p| p.as_str())
                .unwrap_or("/")
        );
        // The guest sees an absolute URI, as Spin gives it.
        if let Ok(uri) = full_url.parse() {
            parts.uri = uri;
        }
        let h = &mut parts.headers;
        set(h, SPIN_FULL_URL, &full_url);
        set(h, SPIN_PATH_INFO, &matched.path_info);
        set(h, SPIN_MATCHED_ROUTE, matched.pattern.as_str());
        set(h, SPIN_RAW_COMPONENT_ROUTE, matched.pattern.as_str());
        set(h, SPIN_COMPONENT_ROUTE, matched.pattern.component_route());
        h.insert(SPIN_BASE_PATH, HeaderValue::from_static("/"));
        set(h, SPIN_CLIENT_ADDR, &peer.to_string());
        for (name, value) in &matched.params {
            if let Ok(n) = HeaderName::from_bytes(format!("spin-path-match-{name}").as_bytes()) {
                set(h, n, value);
            }
        }
        let body = LimitedBody {
            inner: body,
            remaining: self.limits.max_request_body_bytes,
            limit: self.limits.max_request_body_bytes,
        }
        .boxed_unsync();
        let req = Request::from_parts(parts, body);
        let handler = matched.target.clone();
        let component = handler.state().id.clone();
        let started = std::time::Instant::now();
        match crate::instance::handle_with_backpressure(&handler, request_id, req).await {
            Ok(resp) => resp,
            Err(e) if e.is::<crate::instance::AtCapacity>() => {
                self.guests.failed(&component, GuestFailure::Capacity);
                tracing::warn!(%component, request_id, "no instance slot came free; refusing");
                let mut resp = problem(Problem::unavailable(
                    "this PoP is at capacity; try again in a moment",
                ));
                resp.headers_mut()
                    .insert(http::header::RETRY_AFTER, HeaderValue::from_static("1"));
                resp
            }
            // A worker dropped for overstaying counts as a timeout too.
            Err(e)
                if e.is::<ExpirationError>()
                    || started.elapsed() >= self.limits.request_timeout =>
            {
                self.guests.failed(&component, GuestFailure::Deadline);
                tracing::warn!(%component, request_id, timeout = ?self.limits.request_timeout, "guest exceeded its deadline; instance dropped");
                problem(Problem::gateway_timeout(format!(
                    "the {component} component did not answer within {:?}",
                    self.limits.request_timeout
                )))
            }
            Err(e) => {
                let kind = if e.is::<TrapOrPanicError>() {
                    "trapped"
                } else {
                    "failed"
                };
                self.guests.failed(
                    &component,
                    if kind == "trapped" {
                        GuestFailure::Trap
                    } else {
                        GuestFailure::Error
                    },
                );
                tracing::error!(%component, request_id, error = %format!("{e:#}"), "guest {kind}");
                problem(Problem::internal(format!(
                    "the {component} component failed while handling this request (request {request_id})"
                )))
            }
        }
    }

    /// Liveness and readiness: 503 until every replica has bootstrapped,
    /// so a front door sends no traffic to a PoP with nothing to read.
    fn health(&self) -> Response<WasiBody> {
        let ready = self.app.replicas.iter().all(|r| r.is_ready());
        let body = serde_json::json!({
            "status": if ready { "ok" } else { "bootstrapping" },
            "pop": self.pop,
            "app": self.app.name,
            "components": self.app.components,
            "chains": self.app.chains,
            "replicas": self.app.replicas.iter().map(|r| r.status()).collect::<Vec<_>>(),
        });
        let mut r = json_response(&body);
        if !ready {
            *r.status_mut() = http::StatusCode::SERVICE_UNAVAILABLE;
            r.headers_mut()
                .insert(http::header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        r
    }

    fn metrics(&self) -> Response<WasiBody> {
        let mut r = Response::new(full(self.metrics.encode().into_bytes()));
        r.headers_mut().insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static(edgeshop_telemetry::metrics::CONTENT_TYPE),
        );
        r.headers_mut().insert(
            http::header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        );
        r
    }

    fn replication(&self) -> Response<WasiBody> {
        let body = serde_json::json!({
            "pop": self.pop,
            "replicas": self.app.replicas.iter().map(|r| r.status()).collect::<Vec<_>>(),
        });
        json_response(&body)
    }
}

fn json_response(body: &serde_json::Value) -> Response<WasiBody> {
    let mut r = Response::new(full(serde_json::to_vec(body).expect("json")));
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r.headers_mut().insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-store"),
    );
    r
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

/// Spin's headers are the host's to set: a client cannot supply them.
fn strip_spin_headers(headers: &mut HeaderMap) {
    let spin: Vec<HeaderName> = headers
        .keys()
        .filter(|k| k.as_str().starts_with("spin-"))
        .cloned()
        .collect();
    for k in spin {
        headers.remove(k);
    }
}

const SPIN_FULL_URL: HeaderName = HeaderName::from_static("spin-full-url");
const SPIN_PATH_INFO: HeaderName = HeaderName::from_static("spin-path-info");
const SPIN_MATCHED_ROUTE: HeaderName = HeaderName::from_static("spin-matched-route");
const SPIN_RAW_COMPONENT_ROUTE: HeaderName = HeaderName::from_static("spin-raw-component-route");
const SPIN_COMPONENT_ROUTE: HeaderName = HeaderName::from_static("spin-component-route");
const SPIN_BASE_PATH: HeaderName = HeaderName::from_static("spin-base-path");
const SPIN_CLIENT_ADDR: HeaderName = HeaderName::from_static("spin-client-addr");
const TRACE_UNSAMPLED: HeaderName = HeaderName::from_static(trace_context::UNSAMPLED);

fn set(headers: &mut HeaderMap, name: HeaderName, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        headers.insert(name, v);
    }
}

fn full(bytes: Vec<u8>) -> WasiBody {
    Full::new(Bytes::from(bytes))
        .map_err(|never: std::convert::Infallible| match never {})
        .boxed_unsync()
}

pub fn problem(p: Problem) -> Response<WasiBody> {
    let status = StatusCode::from_u16(p.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut r = Response::new(full(p.to_json()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static(Problem::CONTENT_TYPE),
    );
    r.headers_mut().insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-store"),
    );
    r
}

/// A request body that fails once it exceeds the limit, for bodies without
/// a Content-Length (chunked) that the up-front check cannot see.
struct LimitedBody {
    inner: Incoming,
    remaining: u64,
    limit: u64,
}

impl Body for LimitedBody {
    type Data = Bytes;
    type Error = wasmtime_wasi_http::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let n = data.len() as u64;
                    if n > self.remaining {
                        let limit = self.limit;
                        return Poll::Ready(Some(Err(
                            wasmtime_wasi_http::Error::HttpRequestBodySize(Some(limit)),
                        )));
                    }
                    self.remaining -= n;
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
