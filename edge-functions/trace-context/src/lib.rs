//! W3C Trace Context's `traceparent` header, read and written by guests
//! that make spans of their own (`spin-glue`'s layers), where the
//! OpenTelemetry SDK does not run. Pure: strings in, strings out.

/// The field the edge host adds, while it exports spans, to a request
/// whose trace is not sampled. A layer that finds it makes no span, and
/// asking whether a field is there costs a guest far less than reading
/// one: a host call whose answer is a list is lowered into the guest by
/// calls back into its allocator. A host that does not add it (Spin)
/// leaves the layers to read `traceparent`. The host drops a client's
/// own, and removes it from every request a guest sends out.
pub const UNSAMPLED: &str = "edgeshop-trace-unsampled";

/// What a valid `traceparent` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceParent<'a> {
    /// 32 lowercase hex digits.
    pub trace_id: &'a str,
    /// The caller's span: 16 lowercase hex digits.
    pub parent_id: &'a str,
    pub sampled: bool,
}

/// Reads `header`; `None` for one that is not valid, which the
/// specification says to treat as if there were none.
pub fn parse(header: &str) -> Option<TraceParent<'_>> {
    let mut parts = header.trim().split('-');
    let (version, trace_id, parent_id, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    // Version 00 has exactly four parts; a later one may add more, and
    // version ff is never valid.
    if version.len() != 2
        || version == "ff"
        || !is_hex(version)
        || (version == "00" && parts.next().is_some())
        || !is_id(trace_id, 32)
        || !is_id(parent_id, 16)
        || flags.len() != 2
        || !is_hex(flags)
    {
        return None;
    }
    let flags = u8::from_str_radix(flags, 16).ok()?;
    Some(TraceParent {
        trace_id,
        parent_id,
        sampled: flags & 1 == 1,
    })
}

/// The version-00 header naming span `span_id` of trace `trace_id`.
pub fn format(trace_id: &str, span_id: &str, sampled: bool) -> String {
    format!(
        "00-{trace_id}-{span_id}-{}",
        if sampled { "01" } else { "00" }
    )
}

/// Whether `s` is an id of `len` lowercase hex digits, not all zero.
pub fn is_id(s: &str, len: usize) -> bool {
    s.len() == len && is_hex(s) && s.bytes().any(|b| b != b'0')
}

fn is_hex(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    const SPAN: &str = "00f067aa0ba902b7";

    #[test]
    fn reads_what_it_writes() {
        for sampled in [true, false] {
            let header = format(TRACE, SPAN, sampled);
            assert_eq!(
                parse(&header),
                Some(TraceParent {
                    trace_id: TRACE,
                    parent_id: SPAN,
                    sampled
                })
            );
        }
        assert_eq!(
            format(TRACE, SPAN, true),
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        );
    }

    #[test]
    fn refuses_what_the_specification_calls_invalid() {
        // Any flag bit but the lowest says nothing about sampling.
        assert!(parse(&format!("00-{TRACE}-{SPAN}-03")).is_some_and(|t| t.sampled));
        assert!(parse(&format!("00-{TRACE}-{SPAN}-02")).is_some_and(|t| !t.sampled));
        assert!(parse(&format!("01-{TRACE}-{SPAN}-01-more")).is_some());
        assert!(parse(&format!("00-{TRACE}-{SPAN}-01-more")).is_none());
        assert!(parse(&format!("ff-{TRACE}-{SPAN}-01")).is_none());
        assert!(parse(&format!("00-{}-{SPAN}-01", "0".repeat(32))).is_none());
        assert!(parse(&format!("00-{TRACE}-{}-01", "0".repeat(16))).is_none());
        assert!(parse(&format!("00-{}-{SPAN}-01", TRACE.to_uppercase())).is_none());
        assert!(parse(&format!("00-{TRACE}-{SPAN}-1")).is_none());
        assert!(parse(&format!("00-{TRACE}-{SPAN}-zz")).is_none());
        assert!(parse("garbage").is_none());
        assert!(parse("").is_none());
    }
}
