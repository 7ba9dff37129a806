//! The `wasi:http/handler` import of a middleware component: `next(req)`.
//!
//! A middleware layer is an ordinary component instance in its own store,
//! with only the capabilities it inherits. Its `handler.handle` import is
//! answered by handing the request to wasmtime-wasi-http's client path
//! with a mark, so [`super::outbound::OutboundHooks`] sends it to the next
//! layer in-process instead of onto the network. The mark is set by the
//! host only, between two synchronous steps of the same call, so a guest
//! cannot forge it.

use crate::bindings::middleware::wasi::http::handler::{Host, HostWithStore};
use crate::instance::HostState;
use wasmtime::component::{Accessor, HasData, Resource};
use wasmtime_wasi_http::p3::bindings::http::types::{ErrorCode, Request, Response};
use wasmtime_wasi_http::{WasiHttp, WasiHttpView};

/// The layer after a middleware: the next middleware or the app.
pub type NextLayer =
    std::sync::Arc<wasmtime_wasi_http::handler::ProxyHandler<crate::instance::ComponentHandler>>;

/// Ids for requests a middleware passes on (the outer request has its own).
static NEXT_REQUEST: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1 << 48);

/// Hands `request` to `next`, as the client path's `send_request` would
/// hand it to the network.
pub fn forward(
    next: NextLayer,
    request: http::Request<wasmtime_wasi_http::WasiBody>,
) -> Box<dyn Future<Output = super::outbound::SendResult> + Send> {
    let id = NEXT_REQUEST.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    Box::new(async move {
        let response = crate::instance::handle_with_backpressure(&next, id, request)
            .await
            .map_err(|e| {
                tracing::warn!(error = %format!("{e:#}"), "the next layer failed");
                wasmtime_wasi_http::Error::InternalError(Some("the next layer failed".into()))
            })?;
        Ok((
            response,
            Box::new(async { Ok(()) }) as Box<dyn Future<Output = _> + Send>,
        ))
    })
}

/// Marker type for the `handler` import's host implementation.
pub struct Next;

impl HasData for Next {
    type Data<'a> = &'a mut HostState;
}

impl Host for &mut HostState {}

impl HostWithStore<HostState> for Next {
    async fn handle(
        store: &Accessor<HostState, Self>,
        request: Resource<Request>,
    ) -> wasmtime::Result<Result<Resource<Response>, ErrorCode>> {
        store.with(|mut s| s.get().forward_to_next());
        let http = store.with_getter::<WasiHttp>(<HostState as WasiHttpView>::http);
        use wasmtime_wasi_http::p3::bindings::http::client::HostWithStore as _;
        match WasiHttp::send(&http, request).await {
            Ok(response) => Ok(Ok(response)),
            Err(e) => e.downcast().map(Err),
        }
    }
}
