//! Traces: W3C trace context (`traceparent`, `tracestate`) in and out of
//! every process, and `tracing` spans exported as OpenTelemetry spans over
//! OTLP/HTTP when a collector is configured with the standard
//! `OTEL_EXPORTER_OTLP_ENDPOINT` (or `..._TRACES_ENDPOINT`): protobuf
//! bodies, OTLP's default and the cheaper to encode, or JSON with
//! `OTEL_EXPORTER_OTLP_PROTOCOL=http/json` (or `..._TRACES_PROTOCOL`; the
//! exporter crate reads both). With none,
//! no exporter exists, [`enabled`] is false, and the request paths skip
//! trace work altogether. The PoP's hit path makes its span with the
//! OpenTelemetry API itself ([`Server`]): the cost of tracing there is an
//! id, two headers and, for the spans the sampler keeps, one export.

pub use opentelemetry::KeyValue;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{Span as _, TraceContextExt as _, Tracer as _, TracerProvider as _};
use opentelemetry::trace::{SpanContext, TraceFlags, TraceState};
pub use opentelemetry::trace::{SpanId, SpanKind, Status, TraceId};
use opentelemetry_http::{HeaderExtractor, HeaderInjector};
use opentelemetry_otlp::{WithExportConfig as _, WithHttpConfig as _};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::trace::{BatchSpanProcessor, SpanData, SpanExporter as _, SpanProcessor};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::Layer as _;

/// The exporting tracer, for spans made without `tracing` ([`Server`]).
static TRACER: OnceLock<opentelemetry_sdk::trace::Tracer> = OnceLock::new();
/// The exporting processor, for spans guests end themselves.
static PROCESSOR: OnceLock<Arc<BatchSpanProcessor>> = OnceLock::new();
/// The target of [`log_span`]'s spans, which the exporting layer skips.
const LOG_IDS: &str = "edgeshop::log_ids";
/// Whether log lines are JSON, the only place span fields with the ids
/// are read: otherwise recording them is work for nobody.
static IDS_IN_LOGS: AtomicBool = AtomicBool::new(false);

pub(crate) fn ids_in_logs(on: bool) {
    IDS_IN_LOGS.store(on, Ordering::Relaxed);
}

/// Whether spans are exported: callers on a hot path skip making them
/// (and leave `traceparent` as it came) when not.
pub fn enabled() -> bool {
    TRACER.get().is_some()
}

/// Flushes what is still batched when the process ends normally.
pub struct Guard(Option<SdkTracerProvider>);

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(provider) = self.0.take() {
            let _ = provider.shutdown();
        }
    }
}

/// Whether a collector is configured in the environment.
pub(crate) fn configured() -> bool {
    [
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
    ]
    .iter()
    .any(|v| std::env::var_os(v).is_some_and(|v| !v.is_empty()))
}

/// The OpenTelemetry layer for `service`; `most` is the most verbose level
/// the process's filter lets through. `None` if the exporter cannot start.
pub(crate) fn layer<S>(
    service: &str,
    most: tracing_subscriber::filter::LevelFilter,
) -> Option<(impl tracing_subscriber::Layer<S>, Guard)>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    let protocol = match protocol() {
        Ok(p) => p,
        Err(refused) => {
            eprintln!(
                "traces are not exported: OTLP over {refused:?} is not built in; \
                 set OTEL_EXPORTER_OTLP_PROTOCOL to http/protobuf or http/json \
                 and point the endpoint at the collector's OTLP/HTTP port (4318)"
            );
            return None;
        }
    };
    let client = match http_client() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("traces are not exported: {e}");
            return None;
        }
    };
    let mut exporter = match opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(protocol)
        .with_http_client(client)
        .build()
    {
        Ok(e) => e,
        Err(e) => {
            eprintln!("traces are not exported: the OTLP exporter failed to start: {e}");
            return None;
        }
    };
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(service.to_string())
        .build();
    // Set here: the provider cannot reach through the shared processor.
    exporter.set_resource(&resource);
    // Batched on the processor's own thread; bounded queue (2,048 spans by
    // default, the rest dropped, never blocking a request). Shared so that
    // spans guests end themselves ([`export_guest`]) join the same batches.
    let processor = Arc::new(BatchSpanProcessor::builder(exporter).build());
    let _ = PROCESSOR.set(processor.clone());
    let provider = SdkTracerProvider::builder()
        .with_resource(resource)
        .with_span_processor(Shared(processor))
        .build();
    let tracer = provider.tracer(service.to_string());
    let _ = TRACER.set(tracer.clone());
    Some((
        tracing_opentelemetry::layer()
            .with_tracer(tracer)
            .with_filter(
                tracing_subscriber::filter::filter_fn(|meta| meta.target() != LOG_IDS)
                    .with_max_level_hint(most),
            ),
        Guard(Some(provider)),
    ))
}

/// The OTLP encoding the environment asks for (the traces' own variable
/// first), protobuf when it names none, as the OTLP exporter
/// specification says. Set here because the exporter crate, built with
/// both encodings, would default to JSON; `Err` names a protocol this
/// build cannot speak (gRPC).
fn protocol() -> Result<opentelemetry_otlp::Protocol, String> {
    protocol_from(&otlp_setting("PROTOCOL"))
}

/// The values of OTLP exporter setting `name`: the traces' own variable
/// (`OTEL_EXPORTER_OTLP_TRACES_<name>`), then the general one
/// (`OTEL_EXPORTER_OTLP_<name>`); [`first_set`] picks.
fn otlp_setting(name: &str) -> [Option<String>; 2] {
    [
        std::env::var(format!("OTEL_EXPORTER_OTLP_TRACES_{name}")).ok(),
        std::env::var(format!("OTEL_EXPORTER_OTLP_{name}")).ok(),
    ]
}

/// The first of `values` that is set and not blank, trimmed.
fn first_set(values: &[Option<String>]) -> Option<String> {
    values
        .iter()
        .flatten()
        .map(|v| v.trim())
        .find(|v| !v.is_empty())
        .map(str::to_string)
}

/// The client exports go out with. An `https` collector must prove itself
/// against the web PKI's roots, or the CA certificates (PEM) in the file
/// `OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE` or
/// `OTEL_EXPORTER_OTLP_CERTIFICATE` names (the OTLP exporter's own
/// variables, for a collector with a private CA); there is no setting
/// that skips the check. An export gives up after
/// `OTEL_EXPORTER_OTLP_TRACES_TIMEOUT` or `OTEL_EXPORTER_OTLP_TIMEOUT`
/// milliseconds, 10 s when neither is set, as the exporter's own client
/// would.
fn http_client() -> Result<reqwest::blocking::Client, String> {
    let extra = match first_set(&otlp_setting("CERTIFICATE")) {
        Some(path) => admission::tls::read_certificates(std::path::Path::new(&path))
            .map_err(|e| format!("the collector's CA certificate: {e}"))?,
        None => Vec::new(),
    };
    let tls = admission::tls::client_config(&extra)
        .map_err(|e| format!("the collector's CA certificate: {e}"))?;
    let timeout = first_set(&otlp_setting("TIMEOUT"))
        .and_then(|ms| ms.parse().ok())
        .map_or(Duration::from_secs(10), Duration::from_millis);
    // The blocking client runs a runtime of its own: built on a thread
    // of its own, it cannot meet the caller's.
    std::thread::spawn(move || {
        reqwest::blocking::Client::builder()
            .timeout(timeout)
            .tls_backend_preconfigured(tls)
            .build()
    })
    .join()
    .map_err(|_| "building the exporter's HTTP client panicked".to_string())?
    .map_err(|e| format!("the exporter's HTTP client: {e}"))
}

/// [`protocol`] from the variables' values, the first set one winning.
fn protocol_from(values: &[Option<String>]) -> Result<opentelemetry_otlp::Protocol, String> {
    use opentelemetry_otlp::Protocol;
    let asked = first_set(values).map(|p| p.to_ascii_lowercase());
    match asked.as_deref() {
        None | Some("http/protobuf") => Ok(Protocol::HttpBinary),
        Some("http/json") => Ok(Protocol::HttpJson),
        Some(other) => Err(other.to_string()),
    }
}

/// The batch processor, shared between the provider and [`export_guest`].
#[derive(Debug)]
struct Shared(Arc<BatchSpanProcessor>);

impl SpanProcessor for Shared {
    fn on_start(&self, span: &mut opentelemetry_sdk::trace::Span, cx: &opentelemetry::Context) {
        self.0.on_start(span, cx);
    }

    fn on_end(&self, span: SpanData) {
        self.0.on_end(span);
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.0.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.0.shutdown_with_timeout(timeout)
    }
}

/// A span a guest made and ended itself (`wasi:otel/tracing`'s `on-end`).
#[derive(Debug, Clone)]
pub struct GuestSpan {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    /// `SpanId::INVALID` for a root span.
    pub parent_span_id: SpanId,
    pub kind: SpanKind,
    pub name: String,
    pub start: SystemTime,
    pub end: SystemTime,
    pub attributes: Vec<KeyValue>,
    pub status: Status,
    /// Its instrumentation scope: the component that made it.
    pub scope: String,
}

/// Exports `span` with the process's own spans; false when nothing is
/// exported. Only sampled spans should come here: the guest decided.
pub fn export_guest(span: GuestSpan) -> bool {
    let Some(processor) = PROCESSOR.get() else {
        return false;
    };
    processor.on_end(SpanData {
        span_context: SpanContext::new(
            span.trace_id,
            span.span_id,
            TraceFlags::SAMPLED,
            false,
            TraceState::NONE,
        ),
        parent_span_id: span.parent_span_id,
        parent_span_is_remote: false,
        span_kind: span.kind,
        name: span.name.into(),
        start_time: span.start,
        end_time: span.end,
        attributes: span.attributes,
        dropped_attributes_count: 0,
        events: Default::default(),
        links: Default::default(),
        status: span.status,
        instrumentation_scope: opentelemetry::InstrumentationScope::builder(span.scope).build(),
    });
    true
}

/// A guard for a process that exports nothing.
pub(crate) fn no_guard() -> Guard {
    Guard(None)
}

/// Makes `span` a child of the context `headers` carry, if any.
pub fn continue_from(span: &tracing::Span, headers: &http::HeaderMap) {
    let parent = TraceContextPropagator::new().extract(&HeaderExtractor(headers));
    let _ = span.set_parent(parent);
}

/// Writes `span`'s context into `headers` (`traceparent`, `tracestate`),
/// replacing what was there: the next hop's parent is this span.
pub fn pass_on(span: &tracing::Span, headers: &mut http::HeaderMap) {
    inject(&span.context(), headers);
}

fn inject(cx: &opentelemetry::Context, headers: &mut http::HeaderMap) {
    headers.remove("traceparent");
    headers.remove("tracestate");
    TraceContextPropagator::new().inject_context(cx, &mut HeaderInjector(headers));
}

/// Names `span` once what it is for is known (a route found after the
/// span began). `otel.name` recorded late does not reach a span whose
/// context was already made, so this goes to the OpenTelemetry span.
pub fn rename(span: &tracing::Span, name: String) {
    use opentelemetry::trace::TraceContextExt;
    span.context().span().update_name(name);
}

/// Records `span`'s trace and span ids in its `trace_id` and `span_id`
/// fields (declared empty), so JSON log lines inside it carry them.
pub fn record_ids(span: &tracing::Span) {
    use opentelemetry::trace::TraceContextExt;
    if !IDS_IN_LOGS.load(Ordering::Relaxed) {
        return;
    }
    let cx = span.context();
    let ids = cx.span().span_context().clone();
    if ids.is_valid() {
        span.record("trace_id", ids.trace_id().to_string());
        span.record("span_id", ids.span_id().to_string());
    }
}

/// A request's server span made with the OpenTelemetry API directly, for
/// the PoP, where every microsecond of a cache hit shows: no `tracing`
/// span tree, no per-poll enter and exit, and attributes built only for
/// spans the sampler keeps (an unsampled request costs its ids and the
/// `traceparent` it passes on).
pub struct Server {
    cx: opentelemetry::Context,
}

impl Server {
    /// Starts the span for a request with `headers`, continuing the trace
    /// they carry; `None` when nothing is exported. `attributes` is called
    /// only if the span is sampled.
    pub fn start(
        headers: &http::HeaderMap,
        attributes: impl FnOnce() -> Vec<KeyValue>,
    ) -> Option<Server> {
        let tracer = TRACER.get()?;
        let parent = TraceContextPropagator::new().extract(&HeaderExtractor(headers));
        // Named once the route is known (`end`); the sampler sees this.
        let mut span = tracer
            .span_builder("request")
            .with_kind(opentelemetry::trace::SpanKind::Server)
            .start_with_context(tracer, &parent);
        if span.is_recording() {
            span.set_attributes(attributes());
        }
        Some(Server {
            cx: parent.with_span(span),
        })
    }

    /// Writes this span's context into `headers`, replacing what was
    /// there: the next hop's parent is this span.
    pub fn pass_on(&self, headers: &mut http::HeaderMap) {
        inject(&self.cx, headers);
    }

    /// Whether the sampler kept this span (and so its trace).
    pub fn is_sampled(&self) -> bool {
        self.cx.span().span_context().is_sampled()
    }

    /// Ends the span, naming it and adding `attributes` if it is sampled.
    pub fn end(self, name: impl FnOnce() -> String, attributes: impl FnOnce() -> Vec<KeyValue>) {
        let span = self.cx.span();
        if span.is_recording() {
            span.update_name(name());
            span.set_attributes(attributes());
        }
        span.end();
    }
}

/// A span that only names `server`'s trace and span ids, for log lines
/// made inside a request when they are JSON (the only place they are
/// read); not exported, and disabled otherwise.
pub fn log_span(server: Option<&Server>) -> tracing::Span {
    let Some(server) = server.filter(|_| IDS_IN_LOGS.load(Ordering::Relaxed)) else {
        return tracing::Span::none();
    };
    let span = server.cx.span();
    let ids = span.span_context();
    tracing::info_span!(
        target: LOG_IDS,
        "request",
        trace_id = %ids.trace_id(),
        span_id = %ids.span_id()
    )
}

/// A server span for one request, continuing the caller's trace; disabled
/// (and free) when nothing is exported.
#[macro_export]
macro_rules! server_span {
    ($headers:expr, $($fields:tt)*) => {{
        if $crate::trace::enabled() {
            let span = ::tracing::info_span!(
                "request",
                otel.kind = "server",
                otel.name = ::tracing::field::Empty,
                http.response.status_code = ::tracing::field::Empty,
                trace_id = ::tracing::field::Empty,
                span_id = ::tracing::field::Empty,
                $($fields)*
            );
            $crate::trace::continue_from(&span, $headers);
            $crate::trace::record_ids(&span);
            span
        } else {
            ::tracing::Span::none()
        }
    }};
}

#[cfg(test)]
mod tests {
    use super::protocol_from;
    use opentelemetry_otlp::Protocol;

    #[test]
    fn otlp_is_protobuf_unless_json_is_asked_for_and_grpc_is_refused() {
        let set = |v: &str| Some(v.to_string());
        assert_eq!(protocol_from(&[None, None]), Ok(Protocol::HttpBinary));
        assert_eq!(protocol_from(&[None, set(" ")]), Ok(Protocol::HttpBinary));
        assert_eq!(
            protocol_from(&[None, set("HTTP/JSON")]),
            Ok(Protocol::HttpJson)
        );
        // The traces' own variable wins over the general one.
        assert_eq!(
            protocol_from(&[set("http/protobuf"), set("http/json")]),
            Ok(Protocol::HttpBinary)
        );
        assert_eq!(
            protocol_from(&[set("http/json"), set("grpc")]),
            Ok(Protocol::HttpJson)
        );
        assert_eq!(protocol_from(&[None, set("grpc")]), Err("grpc".into()));
    }
}
