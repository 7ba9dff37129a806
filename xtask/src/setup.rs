//! Making the wasm toolchain available: the rustup target if it can be
//! had, else Debian's rustc with its std sources and `-Zbuild-std`.

use crate::say;
use anyhow::{Context, Result, bail};
use std::path::PathBuf;
use std::process::Command;

pub const WASM_TARGET: &str = "wasm32-wasip2";

/// How guests get compiled on this machine.
#[derive(Debug, Clone)]
pub enum Toolchain {
    /// The rustup-installed target.
    Rustup,
    /// Debian's rustc + std sources, building std from source.
    BuildStd { rustc: PathBuf, lld_dir: PathBuf },
}

fn has_rustup_target() -> bool {
    let out = Command::new("rustc")
        .args(["--print", "target-libdir", "--target", WASM_TARGET])
        .output();
    match out {
        Ok(o) if o.status.success() => {
            let dir = PathBuf::from(String::from_utf8_lossy(&o.stdout).trim());
            std::fs::read_dir(&dir)
                .map(|mut d| {
                    d.any(|e| {
                        e.is_ok_and(|e| e.file_name().to_string_lossy().starts_with("libstd"))
                    })
                })
                .unwrap_or(false)
        }
        _ => false,
    }
}

/// npm packages the test suite drives as third-party oracles.
pub const LIBSQL_CLIENT: &str = "@libsql/client@0.18.0";

/// Installs npm oracles once per version into the tool cache.
pub fn npm_tools() -> Result<std::path::PathBuf> {
    npm_install(
        "npm-libsql-client-0.18.0",
        &[LIBSQL_CLIENT],
        &["node_modules/@libsql/client/package.json"],
        "test oracle for the origin's Hrana API",
    )
}

/// Installs npm `packages` (exact versions) once into the tool cache
/// directory `name`, which `ready` (paths under it) show to be complete.
pub fn npm_install(name: &str, packages: &[&str], ready: &[&str], why: &str) -> Result<PathBuf> {
    let dir = crate::tool_cache().join(name);
    let what = packages.join(" and ");
    if ready.iter().all(|p| dir.join(p).exists()) {
        say(&format!("{what} is installed ({why})"));
        return Ok(dir);
    }
    say(&format!("installing {what} from npm ({why})"));
    std::fs::create_dir_all(&dir)?;
    let ok = Command::new("npm")
        .args([
            "install",
            "--no-audit",
            "--no-fund",
            "--loglevel=error",
            "--prefix",
        ])
        .arg(&dir)
        .args(packages)
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok || !ready.iter().all(|p| dir.join(p).exists()) {
        bail!("npm install {what} failed");
    }
    Ok(dir)
}

/// PyPI packages the test suite drives as third-party oracles: a stateful
/// fake of the Stripe API, and an S3 server for signed upload URLs.
pub const PYPI_ORACLES: &[&str] = &["localstripe==1.15.10", "moto[server]==5.2.6"];

/// Installs PyPI oracles once per version into a virtualenv in the tool
/// cache; returns its Python.
pub fn pypi_tools() -> Result<PathBuf> {
    let dir = crate::tool_cache().join("pypi-localstripe-1.15.10-moto-5.2.6");
    let python = dir.join("bin/python3");
    let marker = dir.join(".installed");
    let what = PYPI_ORACLES.join(" and ");
    if marker.exists() && python.exists() {
        say(&format!(
            "{what} are installed (test oracles for payments and uploads)"
        ));
        return Ok(python);
    }
    say(&format!(
        "installing {what} from PyPI into a virtualenv (test oracles for payments and uploads)"
    ));
    let _ = std::fs::remove_dir_all(&dir);
    let ok = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&dir)
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        bail!("python3 -m venv failed (Debian: apt install python3-venv)");
    }
    let ok = Command::new(dir.join("bin/pip"))
        .args(["install", "--quiet", "--disable-pip-version-check"])
        .args(PYPI_ORACLES)
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        bail!("pip install {what} failed");
    }
    std::fs::write(&marker, &what)?;
    Ok(python)
}

pub fn run() -> Result<Toolchain> {
    if std::env::var_os("EDGESHOP_FORCE_BUILD_STD").is_none() {
        if has_rustup_target() {
            say(&format!("wasm target {WASM_TARGET} is installed (rustup)"));
            return Ok(Toolchain::Rustup);
        }
        say(&format!(
            "installing the {WASM_TARGET} target with rustup (guests are built for it)"
        ));
        let ok = Command::new("rustup")
            .args(["target", "add", WASM_TARGET])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if ok && has_rustup_target() {
            return Ok(Toolchain::Rustup);
        }
        say("rustup could not provide the target; falling back to Debian's rustc with -Zbuild-std");
    }
    build_std()
}

fn build_std() -> Result<Toolchain> {
    let rustc = PathBuf::from("/usr/bin/rustc");
    let src = PathBuf::from("/usr/lib/rustlib/src/rust");
    let wasi = PathBuf::from("/usr/lib/wasm32-wasi");
    if !(rustc.exists() && src.exists() && wasi.exists()) {
        say(
            "installing rustc-web, rust-web-src and wasi-libc from Debian (the registry-only wasm route)",
        );
        let update = Command::new("apt-get").args(["update", "-q"]).status();
        if !update.map(|s| s.success()).unwrap_or(false) {
            bail!("apt-get update failed; cannot install the fallback wasm toolchain");
        }
        let ok = Command::new("apt-get")
            .args([
                "install",
                "-y",
                "-q",
                "rustc-web",
                "rust-web-src",
                "wasi-libc",
            ])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if !ok {
            bail!("apt-get install rustc-web rust-web-src wasi-libc failed");
        }
    }
    // rust-lld and wasm-component-ld come with the rustup toolchain.
    let sysroot = Command::new("rustc")
        .args(["--print", "sysroot"])
        .output()?;
    let lld_dir = PathBuf::from(String::from_utf8_lossy(&sysroot.stdout).trim())
        .join("lib/rustlib/x86_64-unknown-linux-gnu/bin");
    if !lld_dir.join("wasm-component-ld").exists() && !lld_dir.join("gcc-ld").exists() {
        say("warning: no wasm-component-ld next to the rustup toolchain; the link step may fail");
    }
    say("building guests with Debian rustc + -Zbuild-std");
    Ok(Toolchain::BuildStd {
        rustc: rustc.canonicalize().context("/usr/bin/rustc")?,
        lld_dir,
    })
}

/// The Spin the tests run `spin.toml` on: `$EDGESHOP_SPIN`, else `spin` on
/// `PATH`, else a build in a `shared/tools/spin/` folder next to the
/// checkout or above it (`$EDGESHOP_SHARED_TOOLS` names another), unpacked
/// once into the tool cache. `None` when there is none: Spin is not in any
/// registry this machine reaches, so the Spin tests then say they skipped.
pub fn spin() -> Result<Option<PathBuf>> {
    if let Some(path) = std::env::var_os("EDGESHOP_SPIN").map(PathBuf::from) {
        if !path.exists() {
            bail!(
                "EDGESHOP_SPIN names {}, which does not exist",
                path.display()
            );
        }
        say(&format!("real Spin: {} (EDGESHOP_SPIN)", path.display()));
        return Ok(Some(path));
    }
    let on_path = Command::new("spin")
        .arg("--version")
        .output()
        .ok()
        .filter(|o| o.status.success());
    if let Some(out) = on_path {
        say(&format!(
            "real Spin: spin on PATH ({})",
            String::from_utf8_lossy(&out.stdout).trim()
        ));
        return Ok(Some(PathBuf::from("spin")));
    }
    let Some(packed) = shared_tool("spin", "spin-", "-x86_64-linux.xz") else {
        say(
            "real Spin: not found (no EDGESHOP_SPIN, no spin on PATH, no shared/tools/spin/); \
             the tests on real Spin will be skipped",
        );
        return Ok(None);
    };
    let (version, binary) = unpack_shared(&packed, "spin-", "spin")?;
    say(&format!(
        "real Spin: {version}, unpacked from the shared tools into {}",
        binary.display()
    ));
    Ok(Some(binary))
}

/// sqld, the libSQL server (`cargo xtask up --primary sqld` and its
/// tests): `$EDGESHOP_SQLD`, else `sqld` on `PATH`, else the build in a
/// `shared/tools/sqld/` folder (found as for Spin), unpacked once into
/// the tool cache. `None` when there is none.
pub fn sqld() -> Result<Option<PathBuf>> {
    if let Some(path) = std::env::var_os("EDGESHOP_SQLD").map(PathBuf::from) {
        if !path.exists() {
            bail!(
                "EDGESHOP_SQLD names {}, which does not exist",
                path.display()
            );
        }
        return Ok(Some(path));
    }
    let on_path = Command::new("sqld")
        .arg("--version")
        .output()
        .ok()
        .filter(|o| o.status.success());
    if on_path.is_some() {
        return Ok(Some(PathBuf::from("sqld")));
    }
    let Some(packed) = shared_tool("sqld", "sqld-", "-x86_64-linux.xz") else {
        return Ok(None);
    };
    let (version, binary) = unpack_shared(&packed, "sqld-", "sqld")?;
    say(&format!(
        "sqld {version}: unpacked from the shared tools into {}",
        binary.display()
    ));
    Ok(Some(binary))
}

/// Unpacks `<prefix><version>-x86_64-linux.xz` once into the tool cache
/// folder `<prefix><version>` as `binary`; returns the version and path.
fn unpack_shared(
    packed: &std::path::Path,
    prefix: &str,
    binary: &str,
) -> Result<(String, PathBuf)> {
    let version = packed
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_prefix(prefix)?.strip_suffix("-x86_64-linux.xz"))
        .unwrap_or("unknown")
        .to_string();
    let dir = crate::tool_cache().join(format!("{prefix}{version}"));
    let path = dir.join(binary);
    if !path.exists() {
        say(&format!(
            "unpacking {binary} {version} from {} into {}",
            packed.display(),
            dir.display()
        ));
        std::fs::create_dir_all(&dir)?;
        let part = dir.join(format!("{binary}.part"));
        let out = std::fs::File::create(&part)?;
        let ok = Command::new("xz")
            .arg("-dc")
            .arg(packed)
            .stdout(out)
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if !ok {
            bail!(
                "xz -dc {} failed (Debian: apt install xz-utils)",
                packed.display()
            );
        }
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&part, std::fs::Permissions::from_mode(0o755))?;
        std::fs::rename(&part, &path)?;
    }
    Ok((version, path))
}

/// A packed third-party build in `shared/tools/<tool>/` whose file name
/// starts with `prefix` and ends with `suffix`, looked for in
/// `$EDGESHOP_SHARED_TOOLS`, then beside the checkout and each folder above.
fn shared_tool(tool: &str, prefix: &str, suffix: &str) -> Option<PathBuf> {
    let mut places: Vec<PathBuf> = std::env::var_os("EDGESHOP_SHARED_TOOLS")
        .map(PathBuf::from)
        .into_iter()
        .collect();
    let root = crate::root();
    places.extend(root.ancestors().map(|a| a.join("shared/tools")));
    places.into_iter().find_map(|tools| {
        std::fs::read_dir(tools.join(tool))
            .ok()?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(prefix) && n.ends_with(suffix))
            })
    })
}
