//! The least a middleware can be (`wasi:http/handler@0.3.0` imported and
//! exported): each request goes to the next layer and each response comes
//! back as the same `wasi:http` resources, never converted to `http` types
//! and back, so no header or body byte is copied. The bench puts it in
//! front of `hello` to measure what crossing a layer itself costs.

// The generated bindings import and export functions by symbol name.
#![allow(unsafe_code)]

mod bindings {
    include!(concat!(env!("OUT_DIR"), "/bindings.rs"));
}

use bindings::exports::wasi::http::handler::Guest;
use spin_sdk::wasip3::http::types::{ErrorCode, Request, Response};

struct PassThrough;

bindings::export!(PassThrough with_types_in bindings);

impl Guest for PassThrough {
    async fn handle(request: Request) -> Result<Response, ErrorCode> {
        bindings::wasi::http::handler::handle(request).await
    }
}
