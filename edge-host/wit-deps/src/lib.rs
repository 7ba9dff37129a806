//! For build scripts: WIT packages taken from the crates that ship them.
//!
//! The repository keeps no third-party WIT. A build script asks cargo
//! where a dependency (spin-sdk, wasmtime-wasi-http) was unpacked and
//! copies the packages it needs into its `OUT_DIR`, beside a world of
//! our own, for `bindgen!`/`generate!` to read.

use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The spin-sdk release whose WIT our guests and host agree on.
pub const SPIN_SDK_VERSION: &str = "7.0.0";

/// Finds a dependency's source directory through `cargo metadata` (which
/// also downloads it when the build has not fetched it yet). Call it from
/// a build script of a workspace member.
pub fn package_dir(name: &str, version: &str) -> Result<PathBuf> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let output = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--manifest-path"])
        .arg(manifest_dir.join("Cargo.toml"))
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
            return Ok(Path::new(manifest)
                .parent()
                .with_context(|| format!("{name} has no directory"))?
                .to_path_buf());
        }
    }
    bail!("{name} {version} is not in the workspace's dependency graph")
}

/// Makes `dir` a fresh WIT directory: `world` (ours) as its root file,
/// and under `deps/` the named packages from `deps` (every package there
/// when `packages` is empty).
pub fn wit_dir(dir: &Path, world: &Path, deps: &Path, packages: &[&str]) -> Result<()> {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir.join("deps"))?;
    let name = world.file_name().context("world file name")?;
    std::fs::copy(world, dir.join(name)).with_context(|| format!("copying {}", world.display()))?;
    for entry in std::fs::read_dir(deps).with_context(|| format!("reading {}", deps.display()))? {
        let entry = entry?;
        let pkg = entry.file_name();
        if !packages.is_empty() && !packages.iter().any(|p| pkg == *p) {
            continue;
        }
        copy_tree(&entry.path(), &dir.join("deps").join(&pkg))?;
    }
    Ok(())
}

fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    if from.is_file() {
        std::fs::copy(from, to)?;
        return Ok(());
    }
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        copy_tree(&entry.path(), &to.join(entry.file_name()))?;
    }
    Ok(())
}

/// For a guest crate's build script: generates `OUT_DIR/bindings.rs`, a
/// spin-sdk `wit_bindgen::generate!` of `world` (e.g.
/// `edgeshop:deny/deny`) from `world_file` and spin-sdk's WIT packages,
/// with `wasi:http` types shared with spin-sdk's own. `options` are more
/// `generate!` options, e.g. `pub_export_macro: true,` for a library.
pub fn guest_bindings(world_file: &str, world: &str, options: &str) -> Result<()> {
    println!("cargo:rerun-if-changed={world_file}");
    println!("cargo:rerun-if-changed=build.rs");
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    let sdk = package_dir("spin-sdk", SPIN_SDK_VERSION)?;
    let wit = out.join("wit");
    wit_dir(&wit, Path::new(world_file), &sdk.join("wit/deps"), &[])?;
    let bindings = format!(
        r#"spin_sdk::wit_bindgen::generate!({{
    path: {path:?},
    world: {world:?},
    runtime_path: "spin_sdk::wit_bindgen::rt",
    generate_all,
    {options}
    with: {{
        "wasi:http/types@0.3.0": spin_sdk::wasip3::http::types,
        "wasi:clocks/types@0.3.0": spin_sdk::wasip3::clocks::types,
    }},
}});
"#,
        path = wit.display().to_string()
    );
    std::fs::write(out.join("bindings.rs"), bindings)?;
    Ok(())
}
