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
    let dir = crate::tool_cache().join("npm-libsql-client-0.18.0");
    if dir
        .join("node_modules/@libsql/client/package.json")
        .exists()
    {
        say(&format!(
            "{LIBSQL_CLIENT} is installed (test oracle for the origin's Hrana API)"
        ));
        return Ok(dir);
    }
    say(&format!(
        "installing {LIBSQL_CLIENT} from npm (test oracle for the origin's Hrana API)"
    ));
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
        .arg(LIBSQL_CLIENT)
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        bail!("npm install {LIBSQL_CLIENT} failed");
    }
    Ok(dir)
}

/// PyPI packages the test suite drives as third-party oracles: a stateful
/// fake of the Stripe API.
pub const LOCALSTRIPE: &str = "localstripe==1.15.10";

/// Installs PyPI oracles once per version into a virtualenv in the tool
/// cache; returns its Python.
pub fn pypi_tools() -> Result<PathBuf> {
    let dir = crate::tool_cache().join("pypi-localstripe-1.15.10");
    let python = dir.join("bin/python3");
    let marker = dir.join(".installed");
    if marker.exists() && python.exists() {
        say(&format!(
            "{LOCALSTRIPE} is installed (test oracle for the payment client)"
        ));
        return Ok(python);
    }
    say(&format!(
        "installing {LOCALSTRIPE} from PyPI into a virtualenv (test oracle for the payment client)"
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
        .args([
            "install",
            "--quiet",
            "--disable-pip-version-check",
            LOCALSTRIPE,
        ])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        bail!("pip install {LOCALSTRIPE} failed");
    }
    std::fs::write(&marker, LOCALSTRIPE)?;
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
