//! Host bindings for Spin's interfaces, generated from the WIT files that
//! ship in the spin-sdk crate, and for the `wasi:http/handler` import of
//! middleware, from wasmtime-wasi-http's (see build.rs).

include!(concat!(env!("OUT_DIR"), "/spin_bindings.rs"));

/// The `wasi:http/handler` import: how a middleware calls the next layer.
pub mod middleware {
    include!(concat!(env!("OUT_DIR"), "/middleware_bindings.rs"));
}
