//! Outbound HTTP, limited to the component's `allowed_outbound_hosts`.
//!
//! [`OutboundPolicy`] is pure (is this URL allowed?); [`OutboundHooks`]
//! plugs it into wasmtime-wasi-http so a denied request fails with
//! `HTTP-request-denied` before any connection is made, and an allowed one
//! goes out through the host's [`Sender`].

mod send;

use super::otel::OpenSpans;
use edgeshop_telemetry::trace::TraceId;
use http::HeaderName;
pub use send::Sender;
use wasmtime_wasi_http::{ForbiddenHeaderFilter, RequestOptions, WasiBody, WasiHttpHooks};

#[derive(Debug, Clone, PartialEq, Eq)]
struct AllowedHost {
    /// `None` = any scheme (`*://`).
    scheme: Option<String>,
    /// `*` = any host; `*.example.com` = any subdomain.
    host: String,
    /// `None` = any port; otherwise the exact port.
    port: Option<u16>,
}

/// The hosts one component may call.
#[derive(Debug, Clone, Default)]
pub struct OutboundPolicy {
    allowed: Vec<AllowedHost>,
}

impl OutboundPolicy {
    /// Parses entries such as `https://api.example.com`, `http://127.0.0.1:8080`,
    /// `*://localhost:*` or `https://*.example.com:443`.
    pub fn parse(entries: &[String]) -> Result<OutboundPolicy, String> {
        let mut allowed = Vec::new();
        for entry in entries {
            let (scheme, rest) = entry
                .split_once("://")
                .ok_or_else(|| format!("allowed_outbound_hosts entry {entry:?} has no scheme"))?;
            let scheme = match scheme {
                "*" => None,
                "http" | "https" => Some(scheme.to_string()),
                other => {
                    return Err(format!(
                        "{entry:?}: scheme {other:?} is not http, https or *"
                    ));
                }
            };
            let rest = rest.trim_end_matches('/');
            let (host, port) = match rest.rsplit_once(':') {
                Some((h, "*")) => (h, None),
                Some((h, p)) => (
                    h,
                    Some(
                        p.parse::<u16>()
                            .map_err(|_| format!("{entry:?}: bad port {p:?}"))?,
                    ),
                ),
                None => (
                    rest,
                    Some(if scheme.as_deref() == Some("http") {
                        80
                    } else {
                        443
                    }),
                ),
            };
            if host.is_empty() || host.contains('/') {
                return Err(format!("{entry:?}: bad host"));
            }
            allowed.push(AllowedHost {
                scheme,
                host: host.to_ascii_lowercase(),
                port,
            });
        }
        Ok(OutboundPolicy { allowed })
    }

    pub fn allows(&self, scheme: &str, host: &str, port: u16) -> bool {
        let host = host.to_ascii_lowercase();
        self.allowed.iter().any(|a| {
            a.scheme.as_deref().is_none_or(|s| s == scheme)
                && a.port.is_none_or(|p| p == port)
                && (a.host == "*"
                    || a.host == host
                    || a.host
                        .strip_prefix("*.")
                        .is_some_and(|suffix| host.ends_with(&format!(".{suffix}"))))
        })
    }
}

/// wasmtime-wasi-http hooks that enforce an [`OutboundPolicy`] and send
/// what it allows.
pub struct OutboundHooks {
    pub policy: std::sync::Arc<OutboundPolicy>,
    pub sender: Sender,
    pub component_id: String,
    /// The guests' open spans: a request sent out goes under the
    /// innermost of its trace (here, as the hooks are what sees it leave).
    pub spans: OpenSpans,
}

/// Points `traceparent` at the innermost guest span of its trace open in
/// `spans`, if any: a guest that passed on the header it was given would
/// otherwise hang the callee under the PoP's span. The PoP's mark of an
/// unsampled trace ([`trace_context::UNSAMPLED`]) is for its own guests
/// and goes no further.
fn nest(spans: &OpenSpans, headers: &mut http::HeaderMap) {
    headers.remove(trace_context::UNSAMPLED);
    let Some(given) = headers
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .and_then(trace_context::parse)
    else {
        return;
    };
    let Ok(trace) = TraceId::from_hex(given.trace_id) else {
        return;
    };
    if let Some(span) = spans.innermost(trace) {
        let header = trace_context::format(given.trace_id, &span.to_string(), given.sampled);
        if let Ok(value) = http::HeaderValue::from_str(&header) {
            headers.insert("traceparent", value);
        }
    }
}

pub type SendResult = wasmtime_wasi_http::Result<(
    http::Response<WasiBody>,
    Box<dyn Future<Output = wasmtime_wasi_http::Result<(), wasmtime_wasi_http::Error>> + Send>,
)>;

/// The fields no guest may see or set: wasmtime-wasi-http's own list,
/// kept in one place. The crate's default check makes its list and an
/// `Arc` around the check afresh for every name it is asked about (every
/// field of every request, and each one a guest sets): half a percent of
/// the hello component's samples, and the `Arc`'s allocation besides. (A
/// list of another length in a later release stops the build here, to be
/// looked at.)
static FORBIDDEN: [HeaderName; 9] = wasmtime_wasi_http::DEFAULT_FORBIDDEN_HEADERS;

fn forbidden(name: &HeaderName) -> bool {
    FORBIDDEN.contains(name)
}

impl WasiHttpHooks for OutboundHooks {
    fn is_forbidden_header(&mut self, name: &HeaderName) -> bool {
        forbidden(name)
    }

    // Both, so the check made through either is the same one.
    fn forbidden_header_filter(&mut self) -> ForbiddenHeaderFilter {
        std::sync::Arc::new(forbidden)
    }

    fn send_request(
        &mut self,
        mut request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Box<
            dyn Future<Output = wasmtime_wasi_http::Result<(), wasmtime_wasi_http::Error>> + Send,
        >,
    ) -> Box<dyn Future<Output = SendResult> + Send> {
        let uri = request.uri();
        let scheme = uri.scheme_str().unwrap_or("https").to_string();
        let host = uri.host().unwrap_or_default().to_string();
        let port = uri
            .port_u16()
            .unwrap_or(if scheme == "http" { 80 } else { 443 });
        if !self.policy.allows(&scheme, &host, port) {
            tracing::warn!(component = %self.component_id, %scheme, %host, port, "outbound request denied");
            return Box::new(async move { Err(wasmtime_wasi_http::Error::HttpRequestDenied) });
        }
        let _ = fut;
        nest(&self.spans, request.headers_mut());
        let sender = self.sender.clone();
        Box::new(async move {
            let response = sender.send(request, options).await?;
            // The pool drives the connection, so nothing is left to report
            // once the response head is here.
            let done = async { Ok(()) };
            Ok((
                response,
                Box::new(done) as Box<dyn Future<Output = _> + Send>,
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use edgeshop_telemetry::trace::SpanId;

    fn policy(entries: &[&str]) -> OutboundPolicy {
        OutboundPolicy::parse(&entries.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn matches_scheme_host_and_port() {
        let p = policy(&[
            "https://api.example.com",
            "http://127.0.0.1:*",
            "*://*.cdn.test:8443",
        ]);
        assert!(p.allows("https", "api.example.com", 443));
        assert!(p.allows("https", "API.example.com", 443));
        assert!(!p.allows("http", "api.example.com", 80));
        assert!(!p.allows("https", "api.example.com", 8443));
        assert!(p.allows("http", "127.0.0.1", 9000));
        assert!(!p.allows("https", "127.0.0.1", 9000));
        assert!(p.allows("http", "img.cdn.test", 8443));
        assert!(!p.allows("http", "cdn.test", 8443));
        assert!(!p.allows("http", "evilcdn.test", 8443));
        assert!(!OutboundPolicy::default().allows("https", "example.com", 443));
    }

    #[test]
    fn a_request_sent_out_goes_under_the_innermost_open_span_of_its_trace() {
        let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
        let mut spans = OpenSpans::default();
        let (outer, inner) = (
            SpanId::from_bytes(1_u64.to_be_bytes()),
            SpanId::from_bytes(2_u64.to_be_bytes()),
        );
        spans.open(TraceId::from_hex(trace).unwrap(), outer);
        spans.open(TraceId::from_hex(trace).unwrap(), inner);
        let sent = |traceparent: &str| {
            let mut headers = http::HeaderMap::new();
            headers.insert("traceparent", traceparent.parse().unwrap());
            headers.insert(trace_context::UNSAMPLED, "1".parse().unwrap());
            nest(&spans, &mut headers);
            assert!(!headers.contains_key(trace_context::UNSAMPLED));
            headers["traceparent"].to_str().unwrap().to_string()
        };
        assert_eq!(
            sent(&format!("00-{trace}-00f067aa0ba902b7-01")),
            format!("00-{trace}-0000000000000002-01")
        );
        // Another trace, or a header that does not parse, goes as it came.
        let elsewhere = "00-0af7651916cd43dd8448eb211c80319c-00f067aa0ba902b7-01";
        assert_eq!(sent(elsewhere), elsewhere);
        assert_eq!(sent("garbage"), "garbage");
    }

    #[test]
    fn the_hooks_forbid_exactly_wasi_https_fields_both_ways() {
        let mut hooks = OutboundHooks {
            policy: std::sync::Arc::new(OutboundPolicy::default()),
            sender: Sender::new(admission::tls::client_config(&[]).unwrap()),
            component_id: "test".into(),
            spans: OpenSpans::default(),
        };
        let filter = hooks.forbidden_header_filter();
        for name in [
            "connection",
            "keep-alive",
            "Host",
            "transfer-encoding",
            "http2-settings",
        ] {
            let name = HeaderName::from_bytes(name.as_bytes()).unwrap();
            assert!(hooks.is_forbidden_header(&name), "{name}");
            assert!(filter(&name), "{name}");
        }
        for name in [
            "content-type",
            "authorization",
            "spin-client-addr",
            "x-keep-alive",
        ] {
            let name = HeaderName::from_bytes(name.as_bytes()).unwrap();
            assert!(!hooks.is_forbidden_header(&name), "{name}");
            assert!(!filter(&name), "{name}");
        }
    }

    #[test]
    fn rejects_malformed_entries() {
        for bad in ["example.com", "ftp://x", "https://x:port", "https://"] {
            assert!(OutboundPolicy::parse(&[bad.to_string()]).is_err(), "{bad}");
        }
    }
}
