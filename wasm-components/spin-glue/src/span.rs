//! A span per middleware layer, and per app component, for traced
//! requests, made through
//! `wasi:otel/tracing` (Spin 4.1 exports such spans with its own when its
//! experimental `wasi:otel` support is on; the edge host, with the traced
//! builds it loads while it exports spans).
//!
//! A layer's parent is the span in the request's `traceparent` (the PoP's
//! server span), or, with none there, the host's own
//! (`outer-span-context`). A request whose trace is not sampled gets no
//! span: the edge host marks it ([`trace_context::UNSAMPLED`]), so it
//! costs the layer one question of the fields it reads anyway
//! ([`crate::layer::RequestFields`]), whether the mark is there (reading
//! `traceparent` instead cost about four times as much); elsewhere
//! (Spin) the layer reads `traceparent`. A sampled one gets
//! a span around the rest of the chain. The request goes on as it came:
//! rebuilding it to carry this span in `traceparent` cost as much as the
//! span itself, and the host, which sees every layer of a chain start and
//! end, nests the layers behind under this one and the requests they send
//! out under the innermost. An app component's span
//! ([`around_component`]) is the innermost of its chain.

// Module names carry the version where spin-sdk ships two of a package.
use crate::layer::bindings::wasi::clocks0_2_0::wall_clock::Datetime;
use crate::layer::bindings::wasi::otel::tracing as otel;
use crate::layer::bindings::wasi::otel::types::{InstrumentationScope, KeyValue};
use crate::layer::{ErrorCode, Request, RequestFields, Response, field};
use std::future::Future;

/// Runs `handle` (a layer named `name`) on `request`, inside a span of
/// its own when the request's trace is sampled. The fields it looks in
/// for `traceparent` go on to the layer.
pub async fn around<F, Fut>(
    name: &'static str,
    request: Request,
    handle: F,
) -> Result<Response, ErrorCode>
where
    F: FnOnce(Request, RequestFields) -> Fut,
    Fut: Future<Output = Result<Response, ErrorCode>>,
{
    let fields = RequestFields::default();
    if fields.of(&request).has(trace_context::UNSAMPLED) {
        return handle(request, fields).await;
    }
    let header = field(fields.of(&request), "traceparent");
    let Some(span) = parent(header.as_deref()).map(|p| Active::begin(name, p)) else {
        return handle(request, fields).await;
    };
    let result = handle(request, fields).await;
    match &result {
        Ok(response) => span.end(Ok(response.get_status_code())),
        Err(e) => span.end(Err(format!("{e:?}"))),
    }
    result
}

/// Runs an app component's handler (`answer`, behind `#[http_service]`)
/// on `request`, inside a span named `name` when the request's trace is
/// sampled: the innermost span of its chain.
pub async fn around_component<T, B, F, Fut>(
    name: &'static str,
    request: http::Request<T>,
    answer: F,
) -> http::Response<B>
where
    F: FnOnce(http::Request<T>) -> Fut,
    Fut: Future<Output = http::Response<B>>,
{
    let header = request
        .headers()
        .get("traceparent")
        .and_then(|v| v.to_str().ok());
    let Some(span) = parent(header).map(|p| Active::begin(name, p)) else {
        return answer(request).await;
    };
    let response = answer(request).await;
    span.end(Ok(response.status().as_u16()));
    response
}

/// A started span: what `on-end` will need.
struct Active {
    name: &'static str,
    context: otel::SpanContext,
    parent_span_id: String,
    start: Datetime,
}

impl Active {
    fn begin(name: &'static str, parent: Parent) -> Self {
        let context = otel::SpanContext {
            trace_id: parent.trace_id,
            span_id: new_span_id(name, &parent.span_id),
            trace_flags: otel::TraceFlags::SAMPLED,
            is_remote: false,
            trace_state: parent.trace_state,
        };
        otel::on_start(&context);
        Self {
            name,
            context,
            parent_span_id: parent.span_id,
            start: now(),
        }
    }

    /// Ends the span with the status answered, or the error instead.
    fn end(self, answered: Result<u16, String>) {
        let end = now();
        let mut attributes = Vec::new();
        let status = match answered {
            Ok(code) => {
                attributes.push(KeyValue {
                    key: "http.response.status_code".to_string(),
                    value: code.to_string(),
                });
                if code >= 500 {
                    otel::Status::Error(format!("answered {code}"))
                } else {
                    otel::Status::Unset
                }
            }
            Err(e) => otel::Status::Error(e),
        };
        otel::on_end(&otel::SpanData {
            span_context: self.context,
            parent_span_id: self.parent_span_id,
            span_kind: otel::SpanKind::Internal,
            name: self.name.to_string(),
            start_time: self.start,
            end_time: end,
            attributes,
            events: Vec::new(),
            links: Vec::new(),
            status,
            instrumentation_scope: InstrumentationScope {
                name: self.name.to_string(),
                version: None,
                schema_url: None,
                attributes: Vec::new(),
            },
            dropped_attributes: 0,
            dropped_events: 0,
            dropped_links: 0,
        });
    }
}

/// The sampled span a layer's span belongs under.
struct Parent {
    trace_id: String,
    span_id: String,
    trace_state: Vec<(String, String)>,
}

fn parent(traceparent: Option<&str>) -> Option<Parent> {
    if let Some(header) = traceparent
        && let Some(given) = trace_context::parse(header)
    {
        return given.sampled.then(|| Parent {
            trace_id: given.trace_id.to_string(),
            span_id: given.parent_id.to_string(),
            trace_state: Vec::new(),
        });
    }
    let outer = otel::outer_span_context();
    let valid = outer.trace_flags.contains(otel::TraceFlags::SAMPLED)
        && trace_context::is_id(&outer.trace_id, 32)
        && trace_context::is_id(&outer.span_id, 16);
    valid.then_some(Parent {
        trace_id: outer.trace_id,
        span_id: outer.span_id,
        trace_state: outer.trace_state,
    })
}

/// A fresh span id for layer `name` under `parent`: 64 bits from a
/// hasher keyed by the host's seed, over the parent's id (random, from
/// whoever made it), the layer and a counter. The seed alone would not
/// do: every component of a composed chain shares one store, and with it
/// one seed, so the layers of a chain would draw the same ids.
fn new_span_id(name: &str, parent: &str) -> String {
    use std::hash::{BuildHasher, RandomState};
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let id = RandomState::new().hash_one((parent, name, n)).max(1);
    format!("{id:016x}")
}

fn now() -> Datetime {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    Datetime {
        seconds: since.as_secs(),
        nanoseconds: since.subsec_nanos(),
    }
}
