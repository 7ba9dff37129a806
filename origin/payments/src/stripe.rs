//! A [`PaymentProvider`] over HTTP with the Stripe API's shape: form-encoded
//! requests, a secret key as the bearer, `Idempotency-Key` on every
//! mutating call, errors as `{"error": {"type", "code", "message"}}`.
//!
//! It speaks HTTPS (the real API, verified against the web PKI's roots and
//! any extra roots the deployment trusts, such as an egress proxy's) and
//! plain HTTP (the embedded default's simulator, `localstripe`). Plain HTTP
//! to anything but loopback is allowed, for a sidecar proxy, but logged: it
//! carries the secret key in the clear.

use crate::{Authorise, IntentStatus, PayError, PaymentIntent, PaymentProvider, Refund};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use serde::de::DeserializeOwned;
use std::sync::Arc;
use std::time::Duration;
use tokio_rustls::rustls::pki_types::CertificateDer;

/// Longest answer the client reads; Stripe objects are a few KB.
const MAX_RESPONSE_BYTES: usize = 1 << 20;

/// Where the provider is and how long to wait for it.
#[derive(Debug, Clone)]
pub struct Config {
    /// Base URL without a trailing slash, e.g. `http://127.0.0.1:8420`.
    pub base_url: String,
    /// The secret API key (`sk_test_...`).
    pub secret_key: String,
    /// Per call, connection to last byte.
    pub timeout: Duration,
    /// Roots trusted besides the web PKI's for `https://` (a private CA,
    /// an egress proxy's); see `admission::tls::read_certificates`.
    pub extra_roots: Vec<CertificateDer<'static>>,
}

/// Why a [`Client`] could not be made: a configuration mistake, found at
/// start-up rather than on the first checkout.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("the payments URL {0:?} is not an http:// or https:// URL with a host")]
    Url(String),
    #[error("TLS could not be set up: {0}")]
    Tls(#[from] admission::tls::TlsFilesError),
}

/// The HTTP client; cheap to clone (one connection pool).
#[derive(Clone)]
pub struct Client {
    config: Arc<Config>,
    http: admission::tls::HttpsClient,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("stripe::Client")
            .field("base_url", &self.config.base_url)
            .finish_non_exhaustive()
    }
}

impl Client {
    pub fn new(mut config: Config) -> Result<Client, ConfigError> {
        while config.base_url.ends_with('/') {
            config.base_url.pop();
        }
        let uri: http::Uri = config
            .base_url
            .parse()
            .map_err(|_| ConfigError::Url(config.base_url.clone()))?;
        let host = uri.host().unwrap_or_default();
        match uri.scheme_str() {
            Some("https") if !host.is_empty() => {}
            Some("http") if !host.is_empty() => {
                if !is_loopback(host) {
                    tracing::warn!(
                        url = %config.base_url,
                        "the payment provider is reached over plain HTTP: the secret key \
                         travels unencrypted (use https://, or a proxy on loopback)"
                    );
                }
            }
            _ => return Err(ConfigError::Url(config.base_url.clone())),
        }
        let http = admission::tls::https_client(&config.extra_roots, config.timeout)?;
        Ok(Client {
            config: Arc::new(config),
            http,
        })
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: http::Method,
        path: &str,
        form: &[(&str, &str)],
        idempotency_key: Option<&str>,
    ) -> Result<T, PayError> {
        let body = if form.is_empty() {
            Bytes::new()
        } else {
            let mut s = form_urlencoded::Serializer::new(String::new());
            for (k, v) in form {
                s.append_pair(k, v);
            }
            Bytes::from(s.finish())
        };
        let mut req = http::Request::builder()
            .method(method.clone())
            .uri(format!("{}{path}", self.config.base_url))
            .header(
                http::header::AUTHORIZATION,
                format!("Bearer {}", self.config.secret_key),
            );
        if !body.is_empty() {
            req = req.header(
                http::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            );
        }
        if let Some(key) = idempotency_key {
            req = req.header("idempotency-key", key);
        }
        let mut req = req.body(Full::new(body)).map_err(|e| PayError::Refused {
            status: 0,
            code: "bad_request".into(),
            message: e.to_string(),
        })?;
        let span = if edgeshop_telemetry::trace::enabled() {
            let span = tracing::info_span!(
                "payment provider",
                otel.kind = "client",
                otel.name = %format!("{method} {}", crate::operation(&method, path)),
                http.request.method = %method,
                server.address = %self.config.base_url,
            );
            edgeshop_telemetry::trace::pass_on(&span, req.headers_mut());
            span
        } else {
            tracing::Span::none()
        };
        let exchange = tracing::Instrument::instrument(
            async {
                let resp =
                    self.http.request(req).await.map_err(|e| {
                        PayError::Transient(format!("request failed: {}", chain(&e)))
                    })?;
                let status = resp.status().as_u16();
                let replayed = resp
                    .headers()
                    .get("idempotent-replayed")
                    .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"true"));
                let body = Limited::new(resp.into_body(), MAX_RESPONSE_BYTES)
                    .collect()
                    .await
                    .map_err(|e| PayError::Transient(format!("reading the answer failed: {e}")))?
                    .to_bytes();
                Ok::<_, PayError>((status, body, replayed))
            },
            span,
        );
        let (status, body, replayed) = tokio::time::timeout(self.config.timeout, exchange)
            .await
            .map_err(|_| {
            PayError::Transient(format!(
                "no answer within {} ms",
                self.config.timeout.as_millis()
            ))
        })??;
        if (200..300).contains(&status) {
            return serde_json::from_slice(&body).map_err(|e| {
                PayError::Transient(format!("the provider's answer did not parse: {e}"))
            });
        }
        if replayed && status >= 500 {
            // The provider stored a failure under this key and replays it:
            // the same key can never succeed, and the provider is not down.
            return Err(PayError::Refused {
                status,
                code: "idempotent_replay".into(),
                message: "the provider replayed a failure stored for this idempotency key".into(),
            });
        }
        Err(error_from(status, &body))
    }
}

fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// An error and its causes on one line: hyper's top-level message ("client
/// error (Connect)") says nothing a person can act on; the TLS or socket
/// error under it does.
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cause = c.source();
    }
    out
}

/// Maps a provider error answer to what the saga can do about it.
pub fn error_from(status: u16, body: &[u8]) -> PayError {
    #[derive(serde::Deserialize, Default)]
    struct Detail {
        #[serde(default, rename = "type")]
        kind: String,
        #[serde(default)]
        code: String,
        #[serde(default)]
        decline_code: String,
        #[serde(default)]
        message: String,
    }
    #[derive(serde::Deserialize)]
    struct Envelope {
        error: Detail,
    }
    let detail = serde_json::from_slice::<Envelope>(body)
        .map(|e| e.error)
        .unwrap_or_default();
    let message = if detail.message.is_empty() {
        format!("HTTP {status}")
    } else {
        detail.message
    };
    match status {
        402 => PayError::Declined {
            code: if detail.decline_code.is_empty() {
                if detail.code.is_empty() {
                    "card_declined".into()
                } else {
                    detail.code
                }
            } else {
                detail.decline_code
            },
            message,
        },
        // Another request with this key is still running; it will finish.
        409 if detail.code == "idempotency_key_in_use" => PayError::Transient(message),
        _ if detail.kind == "idempotency_error" => PayError::IdempotencyConflict(message),
        429 | 500..=599 => PayError::Transient(format!("HTTP {status}: {message}")),
        _ => PayError::Refused {
            status,
            code: detail.code,
            message,
        },
    }
}

impl PaymentProvider for Client {
    async fn authorise(&self, req: &Authorise<'_>) -> Result<PaymentIntent, PayError> {
        let amount = req.amount_minor.to_string();
        let currency = req.currency.to_ascii_lowercase();
        self.call(
            http::Method::POST,
            "/v1/payment_intents",
            &[
                ("amount", &amount),
                ("currency", &currency),
                ("payment_method", req.payment_method),
                ("payment_method_types[]", "card"),
                ("capture_method", "manual"),
                ("confirm", "true"),
                ("metadata[order_id]", req.order_id),
            ],
            Some(req.idempotency_key),
        )
        .await
    }

    async fn retrieve(&self, id: &str) -> Result<PaymentIntent, PayError> {
        self.call(
            http::Method::GET,
            &format!("/v1/payment_intents/{}", path_segment(id)?),
            &[],
            None,
        )
        .await
    }

    async fn capture(&self, id: &str, idempotency_key: &str) -> Result<PaymentIntent, PayError> {
        self.call(
            http::Method::POST,
            &format!("/v1/payment_intents/{}/capture", path_segment(id)?),
            &[],
            Some(idempotency_key),
        )
        .await
    }

    async fn cancel(&self, id: &str, idempotency_key: &str) -> Result<PaymentIntent, PayError> {
        self.call(
            http::Method::POST,
            &format!("/v1/payment_intents/{}/cancel", path_segment(id)?),
            &[],
            Some(idempotency_key),
        )
        .await
    }

    async fn refund(
        &self,
        payment_intent: &str,
        idempotency_key: &str,
    ) -> Result<Refund, PayError> {
        self.call(
            http::Method::POST,
            "/v1/refunds",
            &[("payment_intent", payment_intent)],
            Some(idempotency_key),
        )
        .await
    }

    async fn find_for_order(&self, order_id: &str) -> Result<Vec<PaymentIntent>, PayError> {
        #[derive(serde::Deserialize)]
        struct Page {
            data: Vec<PaymentIntent>,
        }
        // Order ids are ours (digits and dashes), so no quoting is needed
        // inside the search query; refuse anything else.
        if !order_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(PayError::Refused {
                status: 0,
                code: "bad_order_id".into(),
                message: format!("order id {order_id:?} cannot be searched for"),
            });
        }
        let query = format!("metadata['order_id']:'{order_id}'");
        let q: String = form_urlencoded::byte_serialize(query.as_bytes()).collect();
        let page: Page = self
            .call(
                http::Method::GET,
                &format!("/v1/payment_intents/search?query={q}&limit=100"),
                &[],
                None,
            )
            .await?;
        Ok(page.data)
    }
}

/// An object id as one path segment: provider ids are `[A-Za-z0-9_]`.
fn path_segment(id: &str) -> Result<&str, PayError> {
    if !id.is_empty()
        && id.len() <= 255
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        Ok(id)
    } else {
        Err(PayError::Refused {
            status: 0,
            code: "bad_id".into(),
            message: format!("{id:?} is not a provider object id"),
        })
    }
}

impl PaymentIntent {
    /// Whether money is held or taken: something a failed order must give
    /// back.
    pub fn holds_money(&self) -> bool {
        matches!(
            self.status,
            IntentStatus::RequiresCapture | IntentStatus::Succeeded | IntentStatus::Processing
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_say_whether_a_retry_helps() {
        let declined = error_from(
            402,
            br#"{"error":{"type":"card_error","code":"card_declined","decline_code":"insufficient_funds","message":"Your card has insufficient funds."}}"#,
        );
        assert!(
            matches!(&declined, PayError::Declined { code, .. } if code == "insufficient_funds")
        );
        assert!(!declined.is_transient());
        assert!(error_from(500, b"oops").is_transient());
        assert!(error_from(503, b"").is_transient());
        assert!(error_from(429, br#"{"error":{"type":"rate_limit_error"}}"#).is_transient());
        assert!(
            error_from(
                409,
                br#"{"error":{"type":"invalid_request_error","code":"idempotency_key_in_use"}}"#
            )
            .is_transient()
        );
        assert!(matches!(
            error_from(400, br#"{"error":{"type":"idempotency_error","message":"Keys for idempotent requests can only be used with the same parameters"}}"#),
            PayError::IdempotencyConflict(_)
        ));
        let refused = error_from(
            400,
            br#"{"error":{"type":"invalid_request_error","code":"payment_intent_unexpected_state","message":"already captured"}}"#,
        );
        assert!(
            matches!(&refused, PayError::Refused { status: 400, code, .. } if code == "payment_intent_unexpected_state")
        );
        assert!(!refused.is_transient() && !refused.is_provider_failure());
    }

    #[test]
    fn only_http_and_https_urls_with_a_host_make_a_client() {
        let config = |url: &str| Config {
            base_url: url.into(),
            secret_key: "sk_test_x".into(),
            timeout: Duration::from_secs(1),
            extra_roots: Vec::new(),
        };
        for good in [
            "https://api.stripe.com",
            "https://api.stripe.com/",
            "http://127.0.0.1:8420",
            "http://[::1]:8420",
        ] {
            assert!(Client::new(config(good)).is_ok(), "{good}");
        }
        for bad in ["", "api.stripe.com", "ftp://x", "https://", "/v1"] {
            assert!(
                matches!(Client::new(config(bad)), Err(ConfigError::Url(_))),
                "{bad}"
            );
        }
        assert!(is_loopback("localhost") && is_loopback("127.0.0.2") && is_loopback("[::1]"));
        assert!(!is_loopback("10.0.0.1") && !is_loopback("api.stripe.com"));
    }

    #[test]
    fn ids_are_single_path_segments() {
        assert!(path_segment("pi_123abc").is_ok());
        for bad in ["", "pi/../x", "pi_1?x=1", "pi 1", "pi_%2F"] {
            assert!(path_segment(bad).is_err(), "{bad}");
        }
    }
}
