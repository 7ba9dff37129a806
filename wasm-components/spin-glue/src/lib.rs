//! What every edgeshop component needs from Spin: databases behind the
//! [`edge_sql::Database`] seam, and variables parsed once per change.

#[cfg(feature = "catalog")]
pub mod catalog;
#[cfg(feature = "middleware")]
pub mod chain;
pub mod db;
#[cfg(feature = "gateway")]
pub mod gateway;
#[cfg(feature = "middleware")]
pub mod layer;
#[cfg(feature = "otel")]
pub mod span;
pub mod vars;

pub use db::SpinDb;

use bytes::Bytes;
use http_body_util::Full;

/// A response from plain parts; a header the `http` crate refuses makes
/// it a bare 500 rather than a panic.
pub fn http_response(
    status: u16,
    headers: &[(String, String)],
    body: Vec<u8>,
) -> http::Response<Full<Bytes>> {
    let mut builder = http::Response::builder().status(status);
    for (name, value) in headers {
        builder = builder.header(name, value);
    }
    builder
        .body(Full::new(Bytes::from(body)))
        .unwrap_or_else(|_| {
            let mut r = http::Response::new(Full::new(Bytes::new()));
            *r.status_mut() = http::StatusCode::INTERNAL_SERVER_ERROR;
            r
        })
}

/// Runs an app component's handler (`answer`) on `request`; in the traced
/// build (feature `otel`), inside a span named `name` when the request's
/// trace is sampled ([`span::around_component`]). The plain build, which
/// spin.toml names, only calls `answer`.
pub async fn spanned<T, B, F, Fut>(
    name: &'static str,
    request: http::Request<T>,
    answer: F,
) -> http::Response<B>
where
    F: FnOnce(http::Request<T>) -> Fut,
    Fut: std::future::Future<Output = http::Response<B>>,
{
    #[cfg(feature = "otel")]
    return span::around_component(name, request, answer).await;
    #[cfg(not(feature = "otel"))]
    {
        let _ = name;
        answer(request).await
    }
}
