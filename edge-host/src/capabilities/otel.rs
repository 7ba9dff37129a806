//! `wasi:otel/tracing@0.2.0-rc.2`: spans a guest makes itself, exported
//! with the PoP's own, as Spin's otel factor does.
//!
//! A guest announces a span (`on-start`) and hands it over when it ends
//! (`on-end`); only a span this store saw start is exported, and a store
//! keeps at most [`MAX_OPEN`] open, so a guest cannot grow the host's
//! memory or flood the exporter with spans it never started. With nothing
//! exported, both calls are no-ops.
//!
//! `outer-span-context` answers "no span": one instance serves several
//! requests at once, so the store cannot tell whose span is asked for.
//! The PoP hands each request its server span in `traceparent` instead,
//! and our layers take their parent from there (`spin-glue`).

use crate::bindings::wasi::otel::tracing as wit;
use crate::bindings::wasi::otel::types::KeyValue as WitKeyValue;
use edgeshop_telemetry::trace::{self, GuestSpan, KeyValue, SpanId, SpanKind, Status, TraceId};
use std::collections::HashSet;
use std::time::{Duration, SystemTime};
use wasmtime::component::HasData;

/// Spans one store may have open at once.
pub const MAX_OPEN: usize = 256;
/// Attributes kept per guest span, and bytes per name or value.
const MAX_ATTRIBUTES: usize = 32;
const MAX_TEXT: usize = 256;

/// The spans a store's guests have started and not ended.
#[derive(Debug, Default)]
pub struct OpenSpans {
    open: HashSet<(TraceId, SpanId)>,
    /// The component (or chain) the store runs: the spans' scope.
    scope: String,
}

impl OpenSpans {
    pub fn new(scope: &str) -> OpenSpans {
        OpenSpans {
            open: HashSet::new(),
            scope: scope.to_string(),
        }
    }

    fn start(&mut self, context: &wit::SpanContext) {
        if !trace::enabled() || self.open.len() >= MAX_OPEN {
            return;
        }
        if let Some(ids) = ids(context) {
            self.open.insert(ids);
        }
    }

    fn end(&mut self, span: wit::SpanData) {
        let Some(ids) = ids(&span.span_context) else {
            return;
        };
        if !self.open.remove(&ids)
            || !span
                .span_context
                .trace_flags
                .contains(wit::TraceFlags::SAMPLED)
        {
            return;
        }
        trace::export_guest(guest_span(ids, span, &self.scope));
    }
}

fn ids(context: &wit::SpanContext) -> Option<(TraceId, SpanId)> {
    let trace_id = TraceId::from_hex(&context.trace_id).ok()?;
    let span_id = SpanId::from_hex(&context.span_id).ok()?;
    (trace_id != TraceId::INVALID && span_id != SpanId::INVALID).then_some((trace_id, span_id))
}

/// The exported form of a guest's span, its text bounded.
fn guest_span(
    (trace_id, span_id): (TraceId, SpanId),
    span: wit::SpanData,
    scope: &str,
) -> GuestSpan {
    let time = |d: wasmtime_wasi::p2::bindings::clocks::wall_clock::Datetime| {
        SystemTime::UNIX_EPOCH + Duration::new(d.seconds, d.nanoseconds.min(999_999_999))
    };
    let start = time(span.start_time);
    GuestSpan {
        trace_id,
        span_id,
        parent_span_id: SpanId::from_hex(&span.parent_span_id).unwrap_or(SpanId::INVALID),
        kind: match span.span_kind {
            wit::SpanKind::Client => SpanKind::Client,
            wit::SpanKind::Server => SpanKind::Server,
            wit::SpanKind::Producer => SpanKind::Producer,
            wit::SpanKind::Consumer => SpanKind::Consumer,
            wit::SpanKind::Internal => SpanKind::Internal,
        },
        name: bounded(span.name),
        start,
        end: time(span.end_time).max(start),
        attributes: span
            .attributes
            .into_iter()
            .take(MAX_ATTRIBUTES)
            .map(attribute)
            .collect(),
        status: match span.status {
            wit::Status::Unset => Status::Unset,
            wit::Status::Ok => Status::Ok,
            wit::Status::Error(message) => Status::error(bounded(message)),
        },
        scope: scope.to_string(),
    }
}

/// An attribute from its JSON-encoded value (the interface's encoding):
/// strings, integers, floats and booleans keep their type; anything else
/// is kept as its JSON text.
fn attribute(kv: WitKeyValue) -> KeyValue {
    let key = bounded(kv.key);
    match serde_json::from_str::<serde_json::Value>(&kv.value) {
        Ok(serde_json::Value::String(s)) => KeyValue::new(key, bounded(s)),
        Ok(serde_json::Value::Bool(b)) => KeyValue::new(key, b),
        Ok(serde_json::Value::Number(n)) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => KeyValue::new(key, i),
            (None, Some(f)) => KeyValue::new(key, f),
            _ => KeyValue::new(key, bounded(kv.value)),
        },
        _ => KeyValue::new(key, bounded(kv.value)),
    }
}

fn bounded(mut text: String) -> String {
    if text.len() > MAX_TEXT {
        let mut end = MAX_TEXT;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

/// `HasData` marker for the tracing interface.
pub struct Otel;

impl HasData for Otel {
    type Data<'a> = &'a mut OpenSpans;
}

impl wit::Host for &mut OpenSpans {
    async fn on_start(&mut self, context: wit::SpanContext) -> wasmtime::Result<()> {
        self.start(&context);
        Ok(())
    }

    async fn on_end(&mut self, span: wit::SpanData) -> wasmtime::Result<()> {
        self.end(span);
        Ok(())
    }

    async fn outer_span_context(&mut self) -> wasmtime::Result<wit::SpanContext> {
        Ok(wit::SpanContext {
            trace_id: TraceId::INVALID.to_string(),
            span_id: SpanId::INVALID.to_string(),
            trace_flags: wit::TraceFlags::empty(),
            is_remote: false,
            trace_state: Vec::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context(span_id: &str) -> wit::SpanContext {
        wit::SpanContext {
            trace_id: "4bf92f3577b34da6a3ce929d0e0e4736".to_string(),
            span_id: span_id.to_string(),
            trace_flags: wit::TraceFlags::SAMPLED,
            is_remote: false,
            trace_state: Vec::new(),
        }
    }

    #[test]
    fn attributes_keep_their_json_types_and_text_is_bounded() {
        let kv = |value: &str| WitKeyValue {
            key: "k".to_string(),
            value: value.to_string(),
        };
        assert_eq!(attribute(kv("\"cache\"")), KeyValue::new("k", "cache"));
        assert_eq!(attribute(kv("200")), KeyValue::new("k", 200_i64));
        assert_eq!(attribute(kv("0.5")), KeyValue::new("k", 0.5));
        assert_eq!(attribute(kv("true")), KeyValue::new("k", true));
        assert_eq!(attribute(kv("[1,2]")), KeyValue::new("k", "[1,2]"));
        assert_eq!(attribute(kv("not json")), KeyValue::new("k", "not json"));
        assert_eq!(bounded("é".repeat(200)).len(), MAX_TEXT);
    }

    #[test]
    fn invalid_ids_open_nothing() {
        assert!(ids(&context("00f067aa0ba902b7")).is_some());
        assert!(ids(&context("0000000000000000")).is_none());
        assert!(ids(&context("not hex")).is_none());
    }
}
