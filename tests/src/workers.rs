//! The Workers twin under `wrangler dev` (workerd, locally), for the cases
//! that run on every host.

use crate::{EDGE_TOKEN, Host, TempDir, root, start_origin_on_seed};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// wrangler as `cargo xtask test` installed it (`EDGESHOP_WRANGLER`); `None`
/// when unset, and the caller says it skipped.
pub fn wrangler_binary() -> Option<PathBuf> {
    std::env::var_os("EDGESHOP_WRANGLER")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
}

/// [`wrangler_binary`], or `None` after saying the test is skipped.
pub fn wrangler_or_skip() -> Option<PathBuf> {
    let wrangler = wrangler_binary();
    if wrangler.is_none() {
        eprintln!("SKIPPED: no wrangler (EDGESHOP_WRANGLER is unset; cargo xtask test sets it)");
    }
    wrangler
}

/// `wrangler dev` and everything it runs (a second node process, workerd,
/// esbuild), stopped together, as a process group, when dropped.
pub struct Wrangler(Host);

impl std::ops::Deref for Wrangler {
    type Target = Host;
    fn deref(&self) -> &Host {
        &self.0
    }
}

impl Drop for Wrangler {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.0.child.id())])
            .status();
    }
}

/// The Worker and the origin it reads, stopped together when dropped.
pub struct WorkerApp {
    host: Wrangler,
    pub origin: Host,
    _dir: TempDir,
}

impl std::ops::Deref for WorkerApp {
    type Target = Host;
    fn deref(&self) -> &Host {
        &self.host
    }
}

/// Variables that are Workers secrets (`.dev.vars` locally).
const SECRETS: &[&str] = &["cursor_secret", "token_signing_key", "edge_token"];

/// The Worker on an origin of its own over a copy of the seeded catalog
/// and the test identity database, with `env` (the `SPIN_VARIABLE_*`
/// pairs a PoP gets, under the names `spin.toml` gives them).
pub fn start_worker(wrangler: &Path, tag: &str, env: &[(&'static str, String)]) -> WorkerApp {
    let dir = TempDir::new(&format!("worker-{tag}"));
    let origin = start_origin_on_seed(&dir.0, &[]);
    let host = start_worker_reading(wrangler, &dir.0, &origin.url, env);
    WorkerApp {
        host,
        origin,
        _dir: dir,
    }
}

/// `wrangler dev` on the root `wrangler.toml` (its build step left out:
/// `cargo xtask test` built the Worker), reading `origin`, in `dir`.
pub fn start_worker_reading(
    wrangler: &Path,
    dir: &Path,
    origin: &str,
    env: &[(&'static str, String)],
) -> Wrangler {
    let mut config: toml::Table =
        toml::from_str(&std::fs::read_to_string(root().join("wrangler.toml")).unwrap()).unwrap();
    config.remove("build");
    let main = root().join(config["main"].as_str().unwrap());
    assert!(
        main.exists(),
        "{} is missing: cargo xtask build --worker",
        main.display()
    );
    config.insert("main".into(), main.display().to_string().into());
    let vars = config
        .get_mut("vars")
        .and_then(|v| v.as_table_mut())
        .unwrap();
    vars.insert("origin_url".into(), origin.into());
    // The suite plays the front door from 127.0.0.1, as for the PoPs.
    vars.insert("ratelimit_trusted_proxies".into(), "127.0.0.1".into());
    let mut secrets = format!("edge_token='{EDGE_TOKEN}'\n");
    for (k, v) in env {
        let name = k
            .strip_prefix("SPIN_VARIABLE_")
            .unwrap_or(k)
            .to_ascii_lowercase();
        if SECRETS.contains(&name.as_str()) {
            assert!(
                !v.contains('\'') && !v.contains('\n'),
                "{name} fits .dev.vars"
            );
            secrets.push_str(&format!("{name}='{v}'\n"));
        } else {
            vars.insert(name, v.clone().into());
        }
    }
    std::fs::write(dir.join("wrangler.toml"), toml::to_string(&config).unwrap()).unwrap();
    std::fs::write(dir.join(".dev.vars"), secrets).unwrap();
    // Ports are picked free and then given to wrangler, so another process
    // of the suite can take one in between; wrangler then refuses the port
    // ("Address already in use", seen in a full run) or workerd fails to start
    // ("runtime failed to start"), and new ports are picked.
    let mut attempt = 0;
    let (port, child, log) = loop {
        attempt += 1;
        let port = free_port();
        let mut cmd = Command::new(wrangler);
        cmd.current_dir(dir)
            .args(["dev", "--config"])
            .arg(dir.join("wrangler.toml"))
            .args(["--ip", "127.0.0.1", "--port", &port.to_string()])
            .args(["--inspector-port", &free_port().to_string()])
            .arg("--persist-to")
            .arg(dir.join("state"))
            .args([
                "--show-interactive-dev-session=false",
                "--log-level",
                "info",
            ])
            .env("WRANGLER_SEND_METRICS", "false")
            .env("WRANGLER_SEND_ERROR_REPORTS", "false")
            .env("CLOUDFLARE_CF_FETCH_ENABLED", "false")
            .env("WRANGLER_LOG_PATH", dir.join("wrangler-logs"))
            .env("XDG_CONFIG_HOME", dir.join("config"))
            .env("NO_COLOR", "1")
            .stdin(Stdio::null());
        match crate::try_spawn_group_until(cmd, "Ready on http://", Duration::from_secs(60)) {
            Ok((child, log)) => break (port, child, log),
            Err(log)
                if attempt < 3
                    && (log.contains("runtime failed to start")
                        || log.contains("Address already in use")) =>
            {
                eprintln!(
                    "wrangler dev did not start (attempt {attempt}); trying other ports:\n{log}"
                );
            }
            Err(log) => panic!("wrangler dev did not serve:\n{log}"),
        }
    };
    Wrangler(Host {
        url: format!("http://127.0.0.1:{port}"),
        child,
        stderr: log,
        spin: false,
        workers: true,
    })
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}
