//! Sending a component's allowed outbound request, over one pooled client
//! for the whole host.
//!
//! wasmtime-wasi-http's own sender opens a connection per request and
//! trusts the web PKI's roots alone, so a checkout gateway could not reach
//! an origin whose certificate comes from the operator's CA
//! (`--origin-ca`), and paid a TCP and TLS handshake per order. This one
//! trusts both, keeps a bounded number of idle connections for reuse, and
//! bounds every wait: a guest's `request-options` may change a wait, never
//! past [`MAX_WAIT`].

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::{Client, connect::HttpConnector};
use hyper_util::rt::TokioExecutor;
use tokio_rustls::rustls;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody};

/// Waits when the guest names none.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
pub const FIRST_BYTE_TIMEOUT: Duration = Duration::from_secs(30);
pub const BETWEEN_BYTES_TIMEOUT: Duration = Duration::from_secs(30);
/// The longest any one wait may be, whatever the guest asks; the request
/// deadline of the guest that sends bounds the whole exchange anyway.
pub const MAX_WAIT: Duration = Duration::from_secs(120);
/// Idle connections kept per host, and for how long.
const MAX_IDLE_PER_HOST: usize = 32;
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// The host's outbound HTTP client; cheap to clone (one pool).
#[derive(Clone)]
pub struct Sender {
    client: Client<HttpsConnector<HttpConnector>, WasiBody>,
}

impl std::fmt::Debug for Sender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("outbound::Sender").finish_non_exhaustive()
    }
}

impl Sender {
    /// A client trusting what `tls` trusts (see `admission::tls::client_config`).
    pub fn new(tls: rustls::ClientConfig) -> Sender {
        let mut tcp = HttpConnector::new();
        tcp.set_nodelay(true);
        tcp.set_connect_timeout(Some(CONNECT_TIMEOUT));
        tcp.enforce_http(false);
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(tcp);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(IDLE_TIMEOUT)
            .pool_max_idle_per_host(MAX_IDLE_PER_HOST)
            .build(connector);
        Sender { client }
    }

    /// Sends `request` (absolute URI, already allowed by the policy).
    pub async fn send(
        &self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
    ) -> Result<http::Response<WasiBody>, Error> {
        let waits = Waits::from(options);
        let response = tokio::time::timeout(waits.head, self.client.request(request))
            .await
            .map_err(|_| Error::ConnectionReadTimeout)?
            .map_err(classify)?;
        Ok(response.map(|body| Paced::new(body, waits.between_bytes).boxed_unsync()))
    }
}

/// How long a request may wait for the response head (connecting
/// included), and then between frames of its body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Waits {
    head: Duration,
    between_bytes: Duration,
}

impl From<Option<RequestOptions>> for Waits {
    fn from(options: Option<RequestOptions>) -> Waits {
        let options = options.unwrap_or_default();
        let pick = |asked: Option<Duration>, default: Duration| {
            // Zero would fail every wait at once; treat it as unasked.
            asked
                .filter(|d| !d.is_zero())
                .unwrap_or(default)
                .min(MAX_WAIT)
        };
        Waits {
            head: pick(options.connect_timeout, CONNECT_TIMEOUT)
                + pick(options.first_byte_timeout, FIRST_BYTE_TIMEOUT),
            between_bytes: pick(options.between_bytes_timeout, BETWEEN_BYTES_TIMEOUT),
        }
    }
}

/// A response body that fails when the next frame is later than its wait.
struct Paced {
    body: Incoming,
    wait: Duration,
    timer: Pin<Box<tokio::time::Sleep>>,
}

impl Paced {
    fn new(body: Incoming, wait: Duration) -> Paced {
        Paced {
            body,
            wait,
            timer: Box::pin(tokio::time::sleep(wait)),
        }
    }
}

impl Body for Paced {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.body).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                let next = tokio::time::Instant::now() + this.wait;
                this.timer.as_mut().reset(next);
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(from_hyper(e)))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => match this.timer.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(Error::ConnectionReadTimeout))),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.body.size_hint()
    }
}

fn from_hyper(e: hyper::Error) -> Error {
    if e.is_timeout() {
        Error::HttpResponseTimeout
    } else if e.is_incomplete_message() {
        Error::HttpResponseIncomplete
    } else {
        Error::Hyper(e)
    }
}

/// The `wasi:http` error a failed exchange is to the guest: what the
/// certificate check, the TCP connect or the peer said, as precisely as
/// the error chain tells it.
fn classify(e: hyper_util::client::legacy::Error) -> Error {
    let mut cause = std::error::Error::source(&e);
    while let Some(c) = cause {
        if let Some(tls) = c.downcast_ref::<rustls::Error>() {
            return match tls {
                rustls::Error::InvalidCertificate(_) => Error::TlsCertificateError,
                rustls::Error::AlertReceived(alert) => Error::TlsAlertReceived {
                    alert_id: Some(u8::from(*alert)),
                    alert_message: Some(format!("{alert:?}")),
                },
                _ => Error::TlsProtocolError,
            };
        }
        if let Some(io) = c.downcast_ref::<std::io::Error>() {
            match io.kind() {
                std::io::ErrorKind::ConnectionRefused => return Error::ConnectionRefused,
                std::io::ErrorKind::TimedOut => return Error::ConnectionTimeout,
                _ => {}
            }
        }
        cause = c.source();
    }
    if e.is_connect() {
        Error::Connect(std::io::Error::other(e.to_string()))
    } else {
        Error::InternalError(Some(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_default_follow_the_guest_and_stay_bounded() {
        let w = Waits::from(None);
        assert_eq!(w.head, CONNECT_TIMEOUT + FIRST_BYTE_TIMEOUT);
        assert_eq!(w.between_bytes, BETWEEN_BYTES_TIMEOUT);
        let w = Waits::from(Some(RequestOptions {
            connect_timeout: Some(Duration::from_millis(100)),
            first_byte_timeout: Some(Duration::from_secs(3600)),
            between_bytes_timeout: Some(Duration::ZERO),
        }));
        assert_eq!(w.head, Duration::from_millis(100) + MAX_WAIT);
        assert_eq!(w.between_bytes, BETWEEN_BYTES_TIMEOUT);
    }
}
