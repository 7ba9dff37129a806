//! `wasi:otel/tracing@0.2.0-rc.2`: spans a guest makes itself, exported
//! with the PoP's own, as Spin's otel factor does.
//!
//! A guest announces a span (`on-start`) and hands it over when it ends
//! (`on-end`); only a span this store saw start is exported, and a store
//! keeps at most [`MAX_OPEN`] open (the oldest give way), so a guest
//! cannot grow the host's memory or flood the exporter with spans it never
//! started. With nothing exported, both calls are no-ops.
//!
//! The store is where a composed chain's layers meet, so it nests their
//! spans: a span whose guest took its parent from outside the store (the
//! request's `traceparent`) is exported under the innermost span of the
//! same trace that was open in the store when it started, and a request
//! the store sends out carries that innermost span as its parent (what
//! Spin does with a component's active span). The layers then need not
//! rebuild the request to pass their span on, which was most of a layer
//! span's cost. Two requests of one trace in one instance at the same time could
//! nest under each other's layers; a trace's requests rarely overlap.
//!
//! `outer-span-context` answers "no span": one instance serves several
//! requests at once, so the store cannot tell whose span is asked for.
//! The PoP hands each request its server span in `traceparent` instead,
//! and our layers take their parent from there (`spin-glue`).

use crate::bindings::wasi::otel::tracing as wit;
use crate::bindings::wasi::otel::types::KeyValue as WitKeyValue;
use edgeshop_telemetry::trace::{self, GuestSpan, KeyValue, SpanId, SpanKind, Status, TraceId};
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
    /// Oldest first: the last of a trace is its innermost.
    open: Vec<Open>,
}

#[derive(Debug)]
struct Open {
    trace: TraceId,
    span: SpanId,
    /// The innermost span of the trace open here when this one started.
    inside: Option<SpanId>,
}

impl OpenSpans {
    /// The innermost open span of `trace` in this store.
    pub fn innermost(&self, trace: TraceId) -> Option<SpanId> {
        self.open
            .iter()
            .rev()
            .find(|o| o.trace == trace)
            .map(|o| o.span)
    }

    fn start(&mut self, context: &wit::SpanContext) {
        if let Some((trace, span)) = ids(context)
            && trace::enabled()
        {
            self.open(trace, span);
        }
    }

    fn end(&mut self, span: wit::SpanData) {
        let Some((trace, id)) = ids(&span.span_context) else {
            return;
        };
        let declared = SpanId::from_hex(&span.parent_span_id).unwrap_or(SpanId::INVALID);
        if let Some(parent) = self.close(trace, id, declared)
            && span
                .span_context
                .trace_flags
                .contains(wit::TraceFlags::SAMPLED)
        {
            trace::export_guest(guest_span((trace, id), parent, span));
        }
    }

    pub(crate) fn open(&mut self, trace: TraceId, span: SpanId) {
        if self.is_open(trace, span) {
            return;
        }
        if self.open.len() >= MAX_OPEN {
            // The oldest: most likely a span whose request was dropped
            // before its guest could end it.
            self.open.remove(0);
        }
        let inside = self.innermost(trace);
        self.open.push(Open {
            trace,
            span,
            inside,
        });
    }

    /// Ends an open span, and says which span it is exported under: the
    /// `declared` parent if the guest made that one itself, else the span
    /// it started inside, if any. `None` if it was not open.
    fn close(&mut self, trace: TraceId, span: SpanId, declared: SpanId) -> Option<SpanId> {
        let at = self
            .open
            .iter()
            .position(|o| o.trace == trace && o.span == span)?;
        let ended = self.open.remove(at);
        Some(match ended.inside {
            Some(inside) if !self.is_open(trace, declared) => inside,
            _ => declared,
        })
    }

    fn is_open(&self, trace: TraceId, span: SpanId) -> bool {
        self.open.iter().any(|o| o.trace == trace && o.span == span)
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
    parent_span_id: SpanId,
    span: wit::SpanData,
) -> GuestSpan {
    let time = |d: wasmtime_wasi::p2::bindings::clocks::wall_clock::Datetime| {
        SystemTime::UNIX_EPOCH + Duration::new(d.seconds, d.nanoseconds.min(999_999_999))
    };
    let start = time(span.start_time);
    GuestSpan {
        trace_id,
        span_id,
        parent_span_id,
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
        scope: bounded(span.instrumentation_scope.name),
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
    fn on_start(&mut self, context: wit::SpanContext) -> wasmtime::Result<()> {
        self.start(&context);
        Ok(())
    }

    fn on_end(&mut self, span: wit::SpanData) -> wasmtime::Result<()> {
        self.end(span);
        Ok(())
    }

    fn outer_span_context(&mut self) -> wasmtime::Result<wit::SpanContext> {
        Ok(wit::SpanContext {
            trace_id: "0".repeat(32),
            span_id: "0".repeat(16),
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
    fn layers_nest_in_the_order_they_started_and_a_guests_own_parent_stands() {
        let trace = TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap();
        let other = TraceId::from_hex("0af7651916cd43dd8448eb211c80319c").unwrap();
        let [pop, outer, middle, inner, own_child, elsewhere] =
            [1, 2, 3, 4, 5, 6].map(|n: u64| SpanId::from_bytes(n.to_be_bytes()));
        let mut spans = OpenSpans::default();
        spans.open(trace, outer);
        spans.open(other, elsewhere);
        spans.open(trace, middle);
        spans.open(trace, inner);
        assert_eq!(spans.innermost(trace), Some(inner));
        assert_eq!(spans.innermost(other), Some(elsewhere));
        // A span the innermost layer makes under its own.
        spans.open(trace, own_child);
        assert_eq!(spans.close(trace, own_child, inner), Some(inner));
        // Each layer took the PoP's span from `traceparent`.
        assert_eq!(spans.close(trace, inner, pop), Some(middle));
        assert_eq!(spans.close(trace, middle, pop), Some(outer));
        assert_eq!(spans.close(trace, outer, pop), Some(pop));
        assert_eq!(spans.innermost(trace), None);
        // Ended twice, or never started: not exported.
        assert_eq!(spans.close(trace, outer, pop), None);
        assert_eq!(spans.close(other, inner, pop), None);
        assert_eq!(spans.close(other, elsewhere, pop), Some(pop));
    }

    #[test]
    fn a_store_keeps_at_most_max_open_spans_the_newest() {
        let trace = TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap();
        let mut spans = OpenSpans::default();
        for n in 1..=(MAX_OPEN as u64 + 10) {
            spans.open(trace, SpanId::from_bytes(n.to_be_bytes()));
        }
        assert_eq!(spans.open.len(), MAX_OPEN);
        // The oldest gave way: a span never ended cannot block new ones.
        let first = SpanId::from_bytes(1_u64.to_be_bytes());
        assert_eq!(spans.close(trace, first, SpanId::INVALID), None);
        let newest = SpanId::from_bytes((MAX_OPEN as u64 + 10).to_be_bytes());
        assert!(spans.close(trace, newest, SpanId::INVALID).is_some());
    }

    #[test]
    fn invalid_ids_open_nothing() {
        assert!(ids(&context("00f067aa0ba902b7")).is_some());
        assert!(ids(&context("0000000000000000")).is_none());
        assert!(ids(&context("not hex")).is_none());
    }
}
