//! Generates the host bindings for Spin's interfaces.
//!
//! The WIT files are not copied into the repository: they ship inside the
//! `spin-sdk` crate our guests depend on, so the build asks cargo where that
//! crate lives, copies the packages `wit/host.wit` imports into OUT_DIR, and
//! writes a `bindgen!` invocation pointing there.

use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::process::Command;

const SPIN_SDK_VERSION: &str = "7.0.0";
/// The wasmtime-wasi-http whose `wasi:http@0.3.0` types the host uses;
/// its WIT gives the `handler` import middleware call `next` through.
const WASI_HTTP_VERSION: &str = "48.0.8";
/// Packages (directories under spin-sdk's `wit/deps`) the host world imports.
const PACKAGES: &[&str] = &[
    "spin-sqlite@3.1.0",
    "spin-variables@3.0.0",
    "spin-key-value@3.0.0",
    "wasi-keyvalue-2024-10-17",
];

fn main() -> Result<()> {
    println!("cargo:rerun-if-changed=wit/host.wit");
    println!("cargo:rerun-if-changed=build.rs");
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    let sdk = package_dir("spin-sdk", SPIN_SDK_VERSION)?;
    let wit = out.join("wit");
    let _ = std::fs::remove_dir_all(&wit);
    std::fs::create_dir_all(wit.join("deps"))?;
    std::fs::copy("wit/host.wit", wit.join("host.wit"))?;
    for pkg in PACKAGES {
        let from = sdk.join("wit/deps").join(pkg);
        let to = wit.join("deps").join(pkg);
        std::fs::create_dir_all(&to)?;
        for entry in
            std::fs::read_dir(&from).with_context(|| format!("reading {}", from.display()))?
        {
            let entry = entry?;
            std::fs::copy(entry.path(), to.join(entry.file_name()))?;
        }
    }
    let bindings = format!(
        r#"wasmtime::component::bindgen!({{
    path: {path:?},
    world: "edgeshop:host/spin-host",
    imports: {{ default: async | trappable }},
    with: {{
        "spin:sqlite/sqlite.connection": crate::capabilities::sqlite::ConnectionHandle,
        "spin:key-value/key-value.store": crate::capabilities::keyvalue::SpinStoreHandle,
        "wasi:keyvalue/store.bucket": crate::capabilities::keyvalue::BucketHandle,
        "wasi:keyvalue/atomics.cas": crate::capabilities::keyvalue::CasHandle,
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
    let _ = std::fs::remove_dir_all(&wit);
    std::fs::create_dir_all(wit.join("deps"))?;
    let deps = http.join("src/p3/wit/deps");
    for entry in std::fs::read_dir(&deps).with_context(|| format!("reading {}", deps.display()))? {
        let entry = entry?;
        std::fs::copy(entry.path(), wit.join("deps").join(entry.file_name()))?;
    }
    std::fs::write(
        wit.join("world.wit"),
        "package edgeshop:middleware;\n\nworld host {\n  import wasi:http/handler@0.3.0;\n}\n",
    )?;
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

/// Finds a dependency's source directory through `cargo metadata`, which
/// also downloads it when a host-only build has not fetched it yet.
fn package_dir(name: &str, version: &str) -> Result<PathBuf> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let workspace = manifest_dir.join("../Cargo.toml");
    let output = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--manifest-path"])
        .arg(&workspace)
        // The build may run for another target; metadata is the host's.
        .env_remove("CARGO_BUILD_TARGET")
        .output()
        .context("running cargo metadata")?;
    if !output.status.success() {
        bail!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let meta: serde_json::Value = serde_json::from_slice(&output.stdout)?;
    for pkg in meta["packages"].as_array().into_iter().flatten() {
        if pkg["name"] == name && pkg["version"] == version {
            let manifest = pkg["manifest_path"].as_str().context("manifest_path")?;
            let dir = Path::new(manifest)
                .parent()
                .context("spin-sdk dir")?
                .to_path_buf();
            return Ok(dir);
        }
    }
    bail!("{name} {version} is not in the workspace's dependency graph")
}
