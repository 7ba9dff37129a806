//! The browser the storefront is tested in: Debian's Chromium and its
//! WebDriver server (`chromium`, `chromium-driver`), installed from Debian
//! when missing, and axe-core from npm for the accessibility checks.
//!
//! Found as `$EDGESHOP_CHROMIUM`/`$EDGESHOP_CHROMEDRIVER`, else on `PATH`.

use crate::say;
use anyhow::{Result, bail};
use std::path::PathBuf;
use std::process::Command;

/// The axe-core release the accessibility checks run.
pub const AXE_CORE: &str = "4.11.0";

pub struct Tools {
    pub chromium: PathBuf,
    pub chromedriver: PathBuf,
    /// `axe.min.js`, injected into each page under test.
    pub axe: PathBuf,
}

fn find(var: &str, names: &[&str]) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(var).filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| names.iter().map(move |n| dir.join(n)))
        .find(|p| p.is_file())
}

fn browser() -> (Option<PathBuf>, Option<PathBuf>) {
    (
        find("EDGESHOP_CHROMIUM", &["chromium", "chromium-browser"]),
        find("EDGESHOP_CHROMEDRIVER", &["chromedriver"]),
    )
}

/// Chromium, chromedriver and axe-core, installing what is missing.
pub fn tools() -> Result<Tools> {
    let (mut chromium, mut chromedriver) = browser();
    if chromium.is_none() || chromedriver.is_none() {
        say("installing chromium and chromium-driver from Debian (the storefront's browser tests)");
        let apt = |args: &[&str]| {
            Command::new("apt-get")
                .args(args)
                .env("DEBIAN_FRONTEND", "noninteractive")
                .status()
                .is_ok_and(|s| s.success())
        };
        if !(apt(&["update", "-q"]) && apt(&["install", "-y", "-q", "chromium", "chromium-driver"]))
        {
            bail!(
                "apt-get install chromium chromium-driver failed; install them (as root), \
                 or set EDGESHOP_CHROMIUM and EDGESHOP_CHROMEDRIVER"
            );
        }
        (chromium, chromedriver) = browser();
    }
    let (Some(chromium), Some(chromedriver)) = (chromium, chromedriver) else {
        bail!("chromium or chromedriver is still missing after installing them");
    };
    say(&format!(
        "browser tests use {} and {}",
        chromium.display(),
        chromedriver.display()
    ));
    let npm = crate::setup::npm_install(
        &format!("npm-axe-core-{AXE_CORE}"),
        &[&format!("axe-core@{AXE_CORE}")],
        &["node_modules/axe-core/axe.min.js"],
        "accessibility checks in the browser tests",
    )?;
    Ok(Tools {
        chromium,
        chromedriver,
        axe: npm.join("node_modules/axe-core/axe.min.js"),
    })
}
