//! The path between the `libsql` replica and its primary, with the feed
//! in it.
//!
//! The replica is given [`RELAY_HOST`] as its primary's host. The
//! connector here answers that host in memory: a pull the [`Feed`] can
//! answer is answered at once, with no network at all; every other
//! request (`/info`, `/export`, pulls the feed lacks) is sent on to the
//! real primary over the real connector. The `libsql` crate applies
//! pushed frames through exactly the code that applies pulled ones.

use crate::delay;
use crate::feed::{Answer, Feed};
use hyper014::client::connect::{Connected, Connection};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The host name the replica's URL carries instead of the primary's.
/// `.invalid` never resolves (RFC 6761), so nothing else can answer it.
pub const RELAY_HOST: &str = "relay.edgeshop.invalid";
/// Longest a forwarded request waits for the primary's answer to begin
/// (a base snapshot then streams through unbuffered).
const FORWARD_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// Where the replica's requests go.
#[derive(Clone)]
pub struct Relay {
    /// `scheme://authority` of the real primary.
    origin: String,
    feed: Arc<Mutex<Feed>>,
    client: hyper014::Client<delay::Connector>,
    connector: delay::Connector,
}

impl Relay {
    pub fn new(url: &str, feed: Arc<Mutex<Feed>>, connector: delay::Connector) -> Relay {
        let origin = base(url).0;
        Relay {
            origin,
            feed,
            client: hyper014::Client::builder().build(connector.clone()),
            connector,
        }
    }

    /// The URL to give the `libsql` replica for `url`.
    pub fn replica_url(url: &str) -> String {
        let (origin, path) = base(url);
        let scheme = origin.split_once("://").map_or("https", |(s, _)| s);
        format!("{scheme}://{RELAY_HOST}{path}")
    }

    async fn answer(
        self,
        req: hyper014::Request<hyper014::Body>,
    ) -> Result<hyper014::Response<hyper014::Body>, std::convert::Infallible> {
        if let Some(answer) = pull_range(req.uri().path())
            .and_then(|(g, s, e)| self.feed.lock().expect("feed lock").answer(g, s, e))
        {
            return Ok(match answer {
                Answer::Frames(frames) => hyper014::Response::builder()
                    .header("content-type", "application/octet-stream")
                    .body(hyper014::Body::from(frames)),
                Answer::End { generation } => hyper014::Response::builder()
                    .status(400)
                    .header("content-type", "application/json")
                    .body(hyper014::Body::from(
                        serde_json::json!({ "generation": generation }).to_string(),
                    )),
            }
            .expect("a valid response"));
        }
        Ok(self.forward(req).await)
    }

    async fn forward(
        &self,
        req: hyper014::Request<hyper014::Body>,
    ) -> hyper014::Response<hyper014::Body> {
        let (mut parts, body) = req.into_parts();
        let target = format!(
            "{}{}",
            self.origin,
            parts.uri.path_and_query().map_or("/", |p| p.as_str())
        );
        let Ok(uri) = target.parse() else {
            return status(502, "the primary's URL does not parse");
        };
        parts.uri = uri;
        // Set again from the real URI by the client.
        parts.headers.remove("host");
        let sent = self
            .client
            .request(hyper014::Request::from_parts(parts, body));
        match tokio::time::timeout(FORWARD_TIMEOUT, sent).await {
            Ok(Ok(resp)) => resp,
            Ok(Err(e)) => status(502, &format!("the primary could not be reached: {e}")),
            Err(_) => status(504, "the primary did not answer in time"),
        }
    }
}

fn status(code: u16, text: &str) -> hyper014::Response<hyper014::Body> {
    hyper014::Response::builder()
        .status(code)
        .body(hyper014::Body::from(text.to_string()))
        .expect("a valid response")
}

/// `scheme://authority` and the path of a database URL (`libsql://` is
/// HTTPS, as the `libsql` crate treats it).
fn base(url: &str) -> (String, String) {
    let url = url.replacen("libsql://", "https://", 1);
    let (scheme, rest) = url.split_once("://").unwrap_or(("https", &url));
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    (
        format!("{scheme}://{authority}"),
        path.trim_end_matches('/').to_string(),
    )
}

/// `(generation, start, end)` of a `.../sync/{g}/{s}/{e}` pull.
fn pull_range(path: &str) -> Option<(u32, u32, u32)> {
    let mut parts = path.rsplit('/');
    let e = parts.next()?.parse().ok()?;
    let s = parts.next()?.parse().ok()?;
    let g = parts.next()?.parse().ok()?;
    (parts.next()? == "sync").then_some((g, s, e))
}

impl tower::Service<http02::Uri> for Relay {
    type Response = RelayStream;
    type Error = Box<dyn std::error::Error + Send + Sync>;
    type Future = Pin<
        Box<dyn std::future::Future<Output = Result<RelayStream, Self::Error>> + Send + 'static>,
    >;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.connector.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: http02::Uri) -> Self::Future {
        if uri.host() == Some(RELAY_HOST) {
            let (near, far) = tokio::io::duplex(64 << 10);
            let relay = self.clone();
            tokio::spawn(async move {
                let svc = hyper014::service::service_fn(move |req| relay.clone().answer(req));
                let _ = hyper014::server::conn::Http::new()
                    .http1_only(true)
                    .serve_connection(far, svc)
                    .await;
            });
            return Box::pin(async move { Ok(RelayStream::Local(near)) });
        }
        let connecting = self.connector.call(uri);
        Box::pin(async move { Ok(RelayStream::Net(Box::new(connecting.await?))) })
    }
}

/// A connection to the relay in memory, or to the primary.
pub enum RelayStream {
    Local(tokio::io::DuplexStream),
    /// Boxed: a TLS stream is a kilobyte, a duplex a pointer.
    Net(Box<<delay::Connector as tower::Service<http02::Uri>>::Response>),
}

impl AsyncRead for RelayStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            RelayStream::Local(s) => Pin::new(s).poll_read(cx, buf),
            RelayStream::Net(s) => Pin::new(&mut **s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for RelayStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            RelayStream::Local(s) => Pin::new(s).poll_write(cx, data),
            RelayStream::Net(s) => Pin::new(&mut **s).poll_write(cx, data),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            RelayStream::Local(s) => Pin::new(s).poll_flush(cx),
            RelayStream::Net(s) => Pin::new(&mut **s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            RelayStream::Local(s) => Pin::new(s).poll_shutdown(cx),
            RelayStream::Net(s) => Pin::new(&mut **s).poll_shutdown(cx),
        }
    }
}

impl Connection for RelayStream {
    fn connected(&self) -> Connected {
        match self {
            RelayStream::Local(_) => Connected::new(),
            RelayStream::Net(s) => s.connected(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_pulls() {
        assert_eq!(
            Relay::replica_url("http://127.0.0.1:9000/db/catalog"),
            format!("http://{RELAY_HOST}/db/catalog")
        );
        assert_eq!(
            Relay::replica_url("libsql://shop.example.org"),
            format!("https://{RELAY_HOST}")
        );
        assert_eq!(
            base("https://origin.example:8443/db/identity/"),
            (
                "https://origin.example:8443".to_string(),
                "/db/identity".to_string()
            )
        );
        assert_eq!(
            pull_range("/db/catalog/sync/3/10/1034"),
            Some((3, 10, 1034))
        );
        assert_eq!(pull_range("/sync/3/10/1034"), Some((3, 10, 1034)));
        assert_eq!(pull_range("/db/catalog/export/3"), None);
        assert_eq!(pull_range("/db/catalog/info"), None);
    }
}
