//! Byte ranges of a stored representation (RFC 9110 §14): what a GET with
//! `Range` gets. One range is served as 206; several, an unknown unit or
//! a malformed field are ignored (the whole representation, as §14.2
//! allows); a range that starts past the end is 416. A range applies to
//! the bytes sent, so to the coded variant when one is sent (§14.1.2).

/// What to send for a GET of a `len`-byte representation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeAnswer {
    /// 200 with the whole body.
    Full,
    /// 206 with bytes `start..=end`.
    Partial { start: u64, end: u64 },
    /// 416; `Content-Range: bytes */len`.
    Unsatisfiable,
}

/// Decides a GET carrying `range` (and `if_range`) for a representation of
/// `len` bytes whose entity tag is `etag`.
pub fn evaluate(
    range: Option<&str>,
    if_range: Option<&str>,
    etag: Option<&str>,
    len: u64,
) -> RangeAnswer {
    let Some(range) = range else {
        return RangeAnswer::Full;
    };
    // §13.1.5: the range applies only if the client's copy is this one,
    // by strong comparison; a date cannot match (nothing here has a
    // Last-Modified).
    if let Some(validator) = if_range
        && !strong_match(validator, etag)
    {
        return RangeAnswer::Full;
    }
    let Some((unit, set)) = range.split_once('=') else {
        return RangeAnswer::Full;
    };
    if !unit.trim().eq_ignore_ascii_case("bytes") || set.contains(',') {
        return RangeAnswer::Full;
    }
    let Some((first, last)) = set.trim().split_once('-') else {
        return RangeAnswer::Full;
    };
    let number = |s: &str| -> Option<Option<u64>> {
        let s = s.trim();
        if s.is_empty() {
            return Some(None);
        }
        if !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        // Too many digits to fit is still a valid (huge) position.
        Some(Some(s.parse().unwrap_or(u64::MAX)))
    };
    let (Some(first), Some(last)) = (number(first), number(last)) else {
        return RangeAnswer::Full;
    };
    match (first, last) {
        (None, None) => RangeAnswer::Full,
        // The last `n` bytes.
        (None, Some(n)) => {
            if n == 0 || len == 0 {
                RangeAnswer::Unsatisfiable
            } else {
                RangeAnswer::Partial {
                    start: len.saturating_sub(n),
                    end: len - 1,
                }
            }
        }
        (Some(start), last) => {
            if last.is_some_and(|l| l < start) {
                return RangeAnswer::Full;
            }
            if start >= len {
                return RangeAnswer::Unsatisfiable;
            }
            RangeAnswer::Partial {
                start,
                end: last.map_or(len - 1, |l| l.min(len - 1)),
            }
        }
    }
}

/// Strong comparison (§8.8.3.2): both tags strong and the same.
fn strong_match(validator: &str, etag: Option<&str>) -> bool {
    let strong = |t: &str| {
        let t = t.trim();
        (t.len() >= 2 && t.starts_with('"') && t.ends_with('"')).then(|| t.to_string())
    };
    match (strong(validator), etag.and_then(strong)) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}

/// The `Content-Range` field of a 206.
pub fn content_range(start: u64, end: u64, len: u64) -> String {
    format!("bytes {start}-{end}/{len}")
}

/// The `Content-Range` field of a 416.
pub fn unsatisfied_range(len: u64) -> String {
    format!("bytes */{len}")
}

#[cfg(test)]
mod tests {
    use super::RangeAnswer::*;
    use super::*;

    const TAG: Option<&str> = Some("\"v1\"");

    fn eval(range: &str) -> RangeAnswer {
        evaluate(Some(range), None, TAG, 100)
    }

    #[test]
    fn single_ranges() {
        assert_eq!(eval("bytes=0-9"), Partial { start: 0, end: 9 });
        assert_eq!(eval("bytes=90-"), Partial { start: 90, end: 99 });
        assert_eq!(eval("bytes=90-1000"), Partial { start: 90, end: 99 });
        assert_eq!(eval("bytes=-10"), Partial { start: 90, end: 99 });
        assert_eq!(eval("bytes=-1000"), Partial { start: 0, end: 99 });
        assert_eq!(eval("Bytes = 5-5"), Partial { start: 5, end: 5 });
        assert_eq!(
            eval("bytes=99-99999999999999999999999"),
            Partial { start: 99, end: 99 }
        );
        assert_eq!(evaluate(None, None, TAG, 100), Full);
    }

    #[test]
    fn unsatisfiable_ranges_are_416() {
        assert_eq!(eval("bytes=100-"), Unsatisfiable);
        assert_eq!(eval("bytes=100-200"), Unsatisfiable);
        assert_eq!(eval("bytes=-0"), Unsatisfiable);
        assert_eq!(evaluate(Some("bytes=0-"), None, TAG, 0), Unsatisfiable);
        assert_eq!(evaluate(Some("bytes=-5"), None, TAG, 0), Unsatisfiable);
    }

    #[test]
    fn what_we_do_not_serve_is_ignored() {
        for field in [
            "bytes=0-1,5-6",
            "items=0-9",
            "bytes=9-0",
            "bytes=a-b",
            "bytes=-",
            "bytes",
            "bytes=0-9-",
            "",
        ] {
            assert_eq!(eval(field), Full, "{field}");
        }
    }

    #[test]
    fn if_range_needs_the_same_strong_tag() {
        let r = |if_range: &str, etag: Option<&str>| {
            evaluate(Some("bytes=0-9"), Some(if_range), etag, 100)
        };
        assert_eq!(r("\"v1\"", TAG), Partial { start: 0, end: 9 });
        assert_eq!(r("\"v2\"", TAG), Full);
        assert_eq!(r("W/\"v1\"", TAG), Full, "weak tags never match");
        assert_eq!(r("\"v1\"", Some("W/\"v1\"")), Full);
        assert_eq!(r("Tue, 01 Dec 2026 00:00:00 GMT", TAG), Full);
        assert_eq!(r("\"v1\"", None), Full);
    }

    #[test]
    fn fields_read_as_rfc_9110_shows_them() {
        assert_eq!(content_range(0, 9, 100), "bytes 0-9/100");
        assert_eq!(unsatisfied_range(100), "bytes */100");
    }
}
