//! The Cloudflare Workers twin (`edge-functions/worker`): its tools, each
//! installed once per version into the tool cache, and its build.
//!
//! worker-build drives the standard steps (cargo for
//! wasm32-unknown-unknown, wasm-bindgen, a JavaScript shim, esbuild). It
//! downloads wasm-bindgen, esbuild and wasm-opt from their project sites
//! when it is not told where they are, and this machine reaches only the
//! registries; so each comes from a registry here (`cargo install`, npm)
//! and is named by its `*_BIN` variable, and wasm-opt is skipped
//! (`--no-opt`: a larger upload, the same code).

use crate::{root, say, tool_cache};
use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The target Workers run.
pub const TARGET: &str = "wasm32-unknown-unknown";
pub const WORKER_BUILD: &str = "0.8.7";
/// Exactly the wasm-bindgen the worker crate pins (`Cargo.lock`).
pub const WASM_BINDGEN: &str = "0.2.129";
/// The newest wrangler that runs on Node 20; workerd comes with it.
pub const WRANGLER: &str = "4.86.0";
/// The esbuild worker-build 0.8.7 bundles with.
pub const ESBUILD: &str = "0.28.2";
/// Where worker-build leaves the Worker `wrangler.toml`'s `main` names.
pub const BUILT: &str = "edge-functions/worker/build/worker/shim.mjs";

/// The installed tools.
#[derive(Debug, Clone)]
pub struct Tools {
    pub worker_build: PathBuf,
    pub wasm_bindgen: PathBuf,
    pub esbuild: PathBuf,
    pub wrangler: PathBuf,
}

/// Makes every tool available, installing what is missing.
pub fn tools() -> Result<Tools> {
    target()?;
    let worker_build = cargo_tool("worker-build", WORKER_BUILD, "worker-build")?;
    let wasm_bindgen = cargo_tool("wasm-bindgen-cli", WASM_BINDGEN, "wasm-bindgen")?;
    let npm = npm_tools()?;
    Ok(Tools {
        worker_build,
        wasm_bindgen,
        esbuild: npm.join("node_modules/@esbuild/linux-x64/bin/esbuild"),
        wrangler: npm.join("node_modules/.bin/wrangler"),
    })
}

fn target() -> Result<()> {
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .any(|l| l == TARGET)
        })
        .unwrap_or(false);
    if installed {
        return Ok(());
    }
    say(&format!(
        "installing the {TARGET} target with rustup (the Worker is built for it)"
    ));
    let ok = Command::new("rustup")
        .args(["target", "add", TARGET])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        bail!(
            "rustup could not add {TARGET}; the Workers twin needs it \
             (see docs/workers.md for building it with Debian's rustc instead)"
        );
    }
    Ok(())
}

/// `cargo install krate@version` into the tool cache, once.
fn cargo_tool(krate: &str, version: &str, bin: &str) -> Result<PathBuf> {
    let dir = tool_cache().join(format!("{krate}-{version}"));
    let path = dir.join("bin").join(bin);
    if path.exists() {
        return Ok(path);
    }
    say(&format!(
        "installing {krate} {version} from crates.io into {} (once; a few minutes)",
        dir.display()
    ));
    // Not --locked: a yanked transitive version has failed that before.
    let ok = crate::build::cargo_command()
        .args(["install", krate, "--version", version, "-j", "2", "--root"])
        .arg(&dir)
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok || !path.exists() {
        bail!("cargo install {krate} {version} failed");
    }
    Ok(path)
}

fn npm_tools() -> Result<PathBuf> {
    crate::setup::npm_install(
        &format!("npm-wrangler-{WRANGLER}"),
        &[
            &format!("wrangler@{WRANGLER}"),
            &format!("esbuild@{ESBUILD}"),
        ],
        &[
            "node_modules/.bin/wrangler",
            "node_modules/@esbuild/linux-x64/bin/esbuild",
        ],
        "the Workers twin's runtime (workerd) and bundler",
    )
}

/// Builds the Worker into `edge-functions/worker/build/`.
pub fn build(tools: &Tools) -> Result<()> {
    say("building the Workers twin (worker-build, wasm32-unknown-unknown)");
    let crate_dir = root().join("edge-functions/worker");
    let ok = Command::new(&tools.worker_build)
        .args(["--release", "--no-opt"])
        .current_dir(&crate_dir)
        .env("WASM_BINDGEN_BIN", &tools.wasm_bindgen)
        .env("ESBUILD_BIN", &tools.esbuild)
        // Debug info stays out of the upload.
        .env("CARGO_PROFILE_RELEASE_DEBUG", "false")
        .status()
        .context("running worker-build")?
        .success();
    if !ok {
        bail!("worker-build failed");
    }
    let wasm = crate_dir.join("build/index_bg.wasm");
    let size = std::fs::metadata(&wasm)
        .with_context(|| format!("{} was not made", wasm.display()))?
        .len();
    say(&format!("  worker: {} KiB -> {BUILT}", size / 1024));
    Ok(())
}

/// clippy over the worker crate for its target.
pub fn clippy() -> Result<()> {
    let ok = crate::build::cargo_command()
        .current_dir(root())
        .args([
            "clippy",
            "--release",
            "--target",
            TARGET,
            "-p",
            "edgeshop-worker",
        ])
        .args(["--", "-D", "warnings"])
        .env("CARGO_PROFILE_RELEASE_DEBUG", "false")
        .status()?
        .success();
    if !ok {
        bail!("clippy found problems in the worker crate");
    }
    Ok(())
}

/// `wrangler dev` on the root `wrangler.toml`, as the edge location
/// `cargo xtask up --workers` adds beside the PoPs: reading `origin` with
/// the edge token, on a free port of 127.0.0.1, its state (the Durable
/// Object, the Cache API) under `dir`, with the `extra` variables (the
/// object store for media, a rate-limit policies file). The configuration it runs is the
/// root one written out under `dir` with the addresses of this run and
/// without the build step (`up` has built the Worker; a `cargo` run from
/// inside wrangler would wait on the build directory a test run holds).
/// The secrets go in `.dev.vars` beside it, readable by this user only.
pub fn command(dir: &Path, origin: &str, extra: &[(&str, &str)]) -> Result<Command> {
    std::fs::create_dir_all(dir)?;
    let tools = tools()?;
    let mut config: toml::Table =
        toml::from_str(&std::fs::read_to_string(root().join("wrangler.toml"))?)
            .context("wrangler.toml")?;
    config.remove("build");
    config.insert(
        "main".into(),
        root().join(BUILT).display().to_string().into(),
    );
    let keys: toml::Table = toml::from_str(&std::fs::read_to_string(crate::keys::ensure()?)?)?;
    let key = |name: &str| -> Result<String> {
        keys.get(name)
            .and_then(|v| v.as_str())
            .map(str::to_string)
            .with_context(|| format!("{name} is not in the variables file"))
    };
    let vars = config
        .get_mut("vars")
        .and_then(|v| v.as_table_mut())
        .context("wrangler.toml has [vars]")?;
    vars.insert("origin_url".into(), origin.into());
    vars.insert("token_jwks".into(), key("token_jwks")?.into());
    // The front door here, as for the PoPs.
    vars.insert("ratelimit_trusted_proxies".into(), "127.0.0.1, ::1".into());
    for (name, value) in extra {
        vars.insert(name.to_string(), (*value).into());
    }
    let path = dir.join("wrangler.toml");
    std::fs::write(&path, toml::to_string(&config)?)?;
    let secrets = format!(
        "cursor_secret='{}'\nedge_token='{}'\ntoken_signing_key='{}'\n",
        crate::up::secret("cursor_secret")?,
        crate::up::secret("edge_token")?,
        key("token_signing_key")?,
    );
    crate::private::write(&dir.join(".dev.vars"), secrets.as_bytes())?;
    let mut cmd = Command::new(&tools.wrangler);
    // wrangler runs workerd and esbuild as children of its own.
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    cmd.current_dir(dir)
        .args(["dev", "--config"])
        .arg(&path)
        .args(["--ip", "127.0.0.1", "--port", &free_port()?.to_string()])
        .args(["--inspector-port", &free_port()?.to_string()])
        .arg("--persist-to")
        .arg(dir.join("state"))
        .args(["--show-interactive-dev-session=false"])
        .env("WRANGLER_SEND_METRICS", "false")
        .env("WRANGLER_SEND_ERROR_REPORTS", "false")
        .env("CLOUDFLARE_CF_FETCH_ENABLED", "false")
        .env("WRANGLER_LOG_PATH", dir.join("wrangler-logs"))
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::null());
    Ok(cmd)
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}
