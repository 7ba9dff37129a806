//! A connector for the libsql client that adds a fixed delay to every
//! exchange, so one machine can show what distance to the origin costs.
//!
//! The delay is paid once when a connection opens (the handshake's round
//! trip) and once per request, before its response can be read: a
//! request/response round trip takes `delay` longer. Zero is free.

use hyper014::client::connect::{Connected, Connection};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The connector every replica uses: plain HTTP or TLS, plus the delay.
pub type Connector = Delay<hyper_rustls::HttpsConnector<hyper014::client::HttpConnector>>;

/// An HTTP(S) connector with `delay` added to each round trip, trusting
/// for `https` what `tls` trusts.
pub fn connector(delay: Duration, tls: crate::tls::ClientConfig) -> Connector {
    let mut http = hyper014::client::HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config((*tls).clone())
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    Delay {
        inner: https,
        delay,
    }
}

#[derive(Debug, Clone)]
pub struct Delay<C> {
    inner: C,
    delay: Duration,
}

impl<C> tower::Service<http02::Uri> for Delay<C>
where
    C: tower::Service<http02::Uri>,
    C::Future: Send + 'static,
    C::Response: Send,
{
    type Response = Delayed<C::Response>;
    type Error = C::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, C::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), C::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, uri: http02::Uri) -> Self::Future {
        let delay = self.delay;
        let connecting = self.inner.call(uri);
        Box::pin(async move {
            let stream = connecting.await?;
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            Ok(Delayed {
                inner: stream,
                delay,
                wrote: false,
                sleep: None,
            })
        })
    }
}

/// A stream whose reads after a write wait out the delay first.
#[derive(Debug)]
pub struct Delayed<S> {
    inner: S,
    delay: Duration,
    wrote: bool,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Delayed<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        if this.wrote {
            this.wrote = false;
            this.sleep = Some(Box::pin(tokio::time::sleep(this.delay)));
        }
        if let Some(sleep) = &mut this.sleep {
            ready!(sleep.as_mut().poll(cx));
            this.sleep = None;
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Delayed<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = &mut *self;
        let n = ready!(Pin::new(&mut this.inner).poll_write(cx, data))?;
        if n > 0 && !this.delay.is_zero() {
            this.wrote = true;
        }
        Poll::Ready(Ok(n))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl<S: Connection> Connection for Delayed<S> {
    fn connected(&self) -> Connected {
        self.inner.connected()
    }
}
