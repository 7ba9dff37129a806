//! Generates the host bindings for Spin's interfaces.
//!
//! The WIT files are not copied into the repository: they ship inside the
//! `spin-sdk` crate our guests depend on, so the build asks cargo where that
//! crate lives, copies the packages `wit/host.wit` imports into OUT_DIR, and
//! writes a `bindgen!` invocation pointing there.

use anyhow::Result;
use edgeshop_wit_deps::{SPIN_SDK_VERSION, package_dir, wit_dir};
use std::path::{Path, PathBuf};

/// The wasmtime-wasi-http whose `wasi:http@0.3.0` types the host uses;
/// its WIT gives the `handler` import middleware call `next` through.
const WASI_HTTP_VERSION: &str = "48.0.8";
/// Packages (directories under spin-sdk's `wit/deps`) the host world imports.
const PACKAGES: &[&str] = &[
    "spin-sqlite@3.1.0",
    "spin-variables@3.0.0",
    "spin-key-value@3.0.0",
    "wasi-keyvalue-2024-10-17",
    "otel@0.2.0-rc.2",
    // What wasi:otel's tracing names its times with, and what that needs.
    "clocks@0.2.0",
    "io@0.2.0",
];

fn main() -> Result<()> {
    println!("cargo:rerun-if-changed=wit/host.wit");
    println!("cargo:rerun-if-changed=build.rs");
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    let sdk = package_dir("spin-sdk", SPIN_SDK_VERSION)?;
    let wit = out.join("wit");
    wit_dir(
        &wit,
        Path::new("wit/host.wit"),
        &sdk.join("wit/deps"),
        PACKAGES,
    )?;
    let bindings = format!(
        r#"wasmtime::component::bindgen!({{
    path: {path:?},
    world: "edgeshop:host/spin-host",
    // wasi:otel's calls do no I/O: sync, they skip the host task an
    // async import costs per call.
    imports: {{ "wasi:otel/tracing": trappable, default: async | trappable }},
    with: {{
        "spin:sqlite/sqlite.connection": crate::capabilities::sqlite::ConnectionHandle,
        "spin:key-value/key-value.store": crate::capabilities::keyvalue::SpinStoreHandle,
        "wasi:keyvalue/store.bucket": crate::capabilities::keyvalue::BucketHandle,
        "wasi:keyvalue/atomics.cas": crate::capabilities::keyvalue::CasHandle,
        "wasi:clocks/wall-clock@0.2.0": wasmtime_wasi::p2::bindings::clocks::wall_clock,
    }},
}});
"#,
        path = wit.display().to_string()
    );
    std::fs::write(out.join("spin_bindings.rs"), bindings)?;
    middleware_bindings(&out)
}

/// Bindings for the `wasi:http/handler` *import* of middleware: a world
/// of ours over the `wasi:http` package wasmtime-wasi-http ships, with its
/// types mapped to wasmtime-wasi-http's so requests pass between the two.
fn middleware_bindings(out: &Path) -> Result<()> {
    let http = package_dir("wasmtime-wasi-http", WASI_HTTP_VERSION)?;
    let wit = out.join("middleware-wit");
    let world = out.join("middleware-world.wit");
    std::fs::write(
        &world,
        "package edgeshop:middleware;\n\nworld host {\n  import wasi:http/handler@0.3.0;\n}\n",
    )?;
    wit_dir(&wit, &world, &http.join("src/p3/wit/deps"), &[])?;
    let bindings = format!(
        r#"wasmtime::component::bindgen!({{
    path: {path:?},
    world: "edgeshop:middleware/host",
    imports: {{ "wasi:http/handler.handle": store | trappable, default: trappable }},
    with: {{ "wasi:http/types": wasmtime_wasi_http::p3::bindings::http::types }},
}});
"#,
        path = wit.display().to_string()
    );
    std::fs::write(out.join("middleware_bindings.rs"), bindings)?;
    Ok(())
}
