//! The smallest useful component: imports only what any `wasi:http` host
//! provides, so `cargo xtask bench --peers` can race the same bytes on
//! edge-host and on `wasmtime serve`.

use bytes::Bytes;
use http_body_util::Full;
use spin_sdk::http::Request;

#[spin_sdk::http_service]
async fn handle(_req: Request) -> http::Response<Full<Bytes>> {
    http::Response::builder()
        .status(200)
        .header("content-type", "text/plain")
        .body(Full::new(Bytes::from_static(b"hello from a wasm guest\n")))
        .expect("valid response")
}
