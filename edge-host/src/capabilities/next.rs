//! The `wasi:http/handler` import, as the host sees it.
//!
//! Every spin-sdk 7 component imports `wasi:http/handler` (a middleware's
//! `next`). Inside a route's chain the host composes each layer's import
//! onto the export of the layer behind it (see `edgeshop-compose`), so the
//! only import left for the host is the innermost component's, which has
//! no layer behind it: its call is refused with `HTTP-request-denied`, as
//! before a chain existed. Outbound requests go through `wasi:http/client`.

use crate::bindings::middleware::wasi::http::handler::{Host, HostWithStore};
use crate::instance::HostState;
use wasmtime::component::{Accessor, HasData, Resource};
use wasmtime_wasi_http::p3::bindings::http::types::{ErrorCode, Request, Response};

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
        let component = store.with(|mut s| {
            let state = s.get();
            // Dropping the request drops its body stream too.
            let _ = state.table_mut().delete(request);
            state.component_id().to_string()
        });
        tracing::warn!(%component, "next() called with no layer behind it");
        Ok(Err(ErrorCode::HttpRequestDenied))
    }
}
