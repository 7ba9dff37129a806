//! The least a middleware can be (`wasi:http/handler@0.3.0` imported and
//! exported): each request goes to the next layer and each response comes
//! back as the same `wasi:http` resources, never converted to `http` types
//! and back, so no header or body byte is copied. The bench puts it in
//! front of `hello` to measure what crossing a layer itself costs.

use spin_glue::layer::{Middleware, RequestFields, next};
use spin_sdk::wasip3::http::types::{ErrorCode, Request, Response};

struct PassThrough;

spin_glue::export_layer!(PassThrough);

impl Middleware for PassThrough {
    async fn handle(request: Request, _: RequestFields) -> Result<Response, ErrorCode> {
        next(request).await
    }
}
