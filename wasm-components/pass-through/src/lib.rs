//! The least a middleware can be (spin-sdk 7, `wasi:http/handler@0.3.0`
//! imported and exported): each request goes to the next layer and each
//! response comes back as they are, bodies moved rather than copied. The
//! bench puts it in front of `hello` to measure what a layer itself costs.

use spin_sdk::wasip3::http::types::{ErrorCode, Response};

#[spin_sdk::http_service]
async fn handle(req: spin_sdk::http::Request) -> Result<Response, ErrorCode> {
    spin_glue::chain::respond(spin_glue::chain::next(req).await?)
}
