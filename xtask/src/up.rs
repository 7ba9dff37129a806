//! `cargo xtask up`: the whole system on one machine.

use crate::platform::{Layout, Platform};
use crate::{build, root, say, setup, state_dir};
use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Debug, Deserialize)]
pub struct PopsFile {
    pub pop: Vec<PopConfig>,
    pub front_door: FrontDoorSection,
    #[serde(default)]
    pub replication: ReplicationSection,
}

#[derive(Debug, Deserialize)]
pub struct ReplicationSection {
    /// Time between a PoP's pulls from the primary.
    #[serde(default = "default_sync_interval_ms")]
    pub sync_interval_ms: u64,
}

impl Default for ReplicationSection {
    fn default() -> Self {
        ReplicationSection {
            sync_interval_ms: default_sync_interval_ms(),
        }
    }
}

fn default_sync_interval_ms() -> u64 {
    100
}

#[derive(Debug, Deserialize)]
pub struct FrontDoorSection {
    pub listen: String,
    pub region_header: String,
    #[serde(default)]
    pub nearest: std::collections::BTreeMap<String, Vec<String>>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct PopConfig {
    pub name: String,
    pub region: String,
    pub listen: String,
    /// Simulated extra round-trip time between this PoP and the origin.
    #[serde(default)]
    pub origin_delay_ms: u64,
}

#[derive(Debug, Serialize)]
struct Topology {
    origin: Endpoint,
    /// The primary of each replicated database when it is not the
    /// origin (sqld): its Hrana and replication URL.
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    primaries: std::collections::BTreeMap<&'static str, Endpoint>,
    /// The payment provider simulator (Stripe-shaped).
    payments: Endpoint,
    /// The S3-compatible object store (bucket `edgeshop`).
    objects: Endpoint,
    front_door: Endpoint,
    pops: Vec<PopEndpoint>,
    /// Prometheus, with `--observe`.
    #[serde(skip_serializing_if = "Option::is_none")]
    prometheus: Option<Endpoint>,
}

#[derive(Debug, Serialize)]
struct Endpoint {
    url: String,
}

#[derive(Debug, Serialize)]
struct PopEndpoint {
    name: String,
    region: String,
    url: String,
    /// `edge-host`, `spin` or `workers`.
    engine: &'static str,
    /// Simulated by the edge host only; a Spin PoP's calls are not delayed.
    origin_delay_ms: u64,
    /// The replica status endpoint; none on Spin, which reads the origin.
    replication: Option<String>,
}

/// A child process that is stopped (SIGTERM, then SIGKILL) when dropped.
pub struct Service {
    pub name: String,
    pub url: String,
    child: Child,
    /// Signals go to its whole process group (`spin up` runs its trigger
    /// as a child process of its own).
    group: bool,
}

/// What serves a PoP.
#[derive(Debug, Clone)]
pub enum Engine {
    /// edgeshop's edge host, reading embedded replicas.
    EdgeHost,
    /// Real Spin (this binary) on the same `spin.toml`, reading the
    /// origin's databases over Hrana.
    Spin(PathBuf),
}

impl Engine {
    pub fn name(&self) -> &'static str {
        match self {
            Engine::EdgeHost => "edge-host",
            Engine::Spin(_) => "spin",
        }
    }
}

/// The address a server announces on stdout: our services print
/// `... listening on http://ADDR`, `spin up` prints `Serving http://ADDR`,
/// `wrangler dev` `... Ready on http://ADDR`, sqld `... listening for
/// incoming user HTTP connection on ADDR`.
fn announced(line: &str) -> Option<String> {
    if let Some(addr) = line.split("user HTTP connection on ").nth(1) {
        return Some(format!("http://{}", addr.trim()));
    }
    let url = line
        .split("listening on ")
        .nth(1)
        .or_else(|| line.trim_start().strip_prefix("Serving "))
        .or_else(|| line.split("Ready on ").nth(1))?;
    Some(url.trim().trim_end_matches('/').to_string())
}

impl Service {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Starts `cmd` and waits for it to announce its address (see
    /// [`announced`]); its log goes to this process's stderr.
    pub fn start(name: &str, cmd: Command) -> Result<Service> {
        Self::start_logging(name, cmd, None)
    }

    /// [`Service::start`], with the log appended to `log` when given.
    pub fn start_logging(name: &str, cmd: Command, log: Option<&Path>) -> Result<Service> {
        Self::launch(name, cmd, log, false)
    }

    /// [`Service::start_logging`] in a process group of its own, stopped
    /// as a group, given 300 s to announce itself (`spin up` compiles
    /// every component first).
    pub fn start_group(name: &str, mut cmd: Command, log: Option<&Path>) -> Result<Service> {
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        Self::launch(name, cmd, log, true)
    }

    fn launch(name: &str, mut cmd: Command, log: Option<&Path>, group: bool) -> Result<Service> {
        let stderr = match log {
            Some(path) => Stdio::from(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .with_context(|| format!("opening {}", path.display()))?,
            ),
            None => Stdio::inherit(),
        };
        cmd.stdout(Stdio::piped()).stderr(stderr);
        let mut child = cmd.spawn().with_context(|| format!("starting {name}"))?;
        let stdout = child.stdout.take().context("stdout")?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = announced(&line) {
                    let _ = tx.send(url);
                }
            }
        });
        // Spin compiles every component before it serves.
        let limit = Duration::from_secs(if group { 300 } else { 60 });
        match rx.recv_timeout(limit) {
            Ok(url) => Ok(Service {
                name: name.to_string(),
                url,
                child,
                group,
            }),
            Err(_) => {
                let mut service = Service {
                    name: name.to_string(),
                    url: String::new(),
                    child,
                    group,
                };
                service.kill();
                bail!("{name} did not start within {limit:?} (see its log)")
            }
        }
    }

    /// Starts `cmd`, a server that announces nothing on stdout, and waits
    /// until `url` answers `ready_path` with 200; its output goes to `log`.
    pub fn start_polling(
        name: &str,
        mut cmd: Command,
        url: &str,
        ready_path: &str,
        log: Option<&Path>,
        limit: Duration,
    ) -> Result<Service> {
        let (out, err) = match log {
            Some(path) => {
                let file = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .with_context(|| format!("opening {}", path.display()))?;
                (Stdio::from(file.try_clone()?), Stdio::from(file))
            }
            None => (Stdio::null(), Stdio::inherit()),
        };
        cmd.stdout(out).stderr(err);
        let child = cmd.spawn().with_context(|| format!("starting {name}"))?;
        let mut service = Service {
            name: name.to_string(),
            url: url.to_string(),
            child,
            group: false,
        };
        if let Err(e) = wait_ok(url, ready_path, limit) {
            service.kill();
            return Err(e.context(format!("{name} did not become ready (see its log)")));
        }
        Ok(service)
    }

    /// `host:port`, to start a successor on the same address.
    pub fn address(&self) -> &str {
        self.url.trim_start_matches("http://")
    }

    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// SIGTERM, then SIGKILL if it has not exited within 10 s.
    pub fn stop(&mut self) {
        if self.exited().is_some() {
            return;
        }
        let _ = Command::new("kill")
            .args(["-TERM", "--", &self.target()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.exited().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.kill();
    }

    /// SIGKILL: a crash, as far as the process can tell.
    pub fn kill(&mut self) {
        if self.group {
            let _ = Command::new("kill")
                .args(["-KILL", "--", &self.target()])
                .status();
        } else {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }

    /// What `kill` is given: the process, or its group.
    fn target(&self) -> String {
        if self.group {
            format!("-{}", self.child.id())
        } else {
            self.child.id().to_string()
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A per-checkout secret, generated once.
pub fn secret(name: &str) -> Result<String> {
    let path = state_dir().join("secrets").join(name);
    if let Ok(s) = std::fs::read_to_string(&path) {
        return Ok(s.trim().to_string());
    }
    crate::private::dir(path.parent().context("dir")?)?;
    let mut bytes = [0u8; 32];
    use std::io::Read;
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    crate::private::write(&path, hex.as_bytes())?;
    Ok(hex)
}

/// Where a PoP's `catalog` database comes from.
pub enum Catalog<'a> {
    /// A local file (benchmarks of the host alone).
    File(&'a Path),
    /// An embedded replica of the origin's primary, files in `dir`.
    Replica {
        origin: &'a str,
        dir: PathBuf,
        delay_ms: u64,
        interval_ms: u64,
    },
    /// Every query over Hrana to the origin (the no-replica baseline).
    Remote { origin: &'a str, delay_ms: u64 },
    /// Embedded replicas of primaries elsewhere (sqld): label, URL and
    /// the PoP's token for each.
    Primaries {
        primaries: Vec<(&'a str, String, String)>,
        dir: PathBuf,
        delay_ms: u64,
        interval_ms: u64,
    },
}

pub fn edge_host_command(
    pop: &str,
    listen: &str,
    catalog: Catalog<'_>,
    manifest: &Path,
) -> Result<Command> {
    let mut cmd = Command::new(root().join("target/release/edge-host"));
    cmd.current_dir(root())
        .args(["--manifest"])
        .arg(manifest)
        .args(["--pop", pop, "--listen", listen])
        .arg("--cache-dir")
        .arg(state_dir().join("cache/wasmtime"))
        .arg("--variables-file")
        .arg(crate::keys::ensure()?)
        .env("SPIN_VARIABLE_CURSOR_SECRET", secret("cursor_secret")?);
    match catalog {
        Catalog::File(path) => {
            let identity = path.with_file_name("identity.db");
            cmd.arg("--sqlite")
                .arg(format!("catalog={}", path.display()))
                .arg("--sqlite")
                .arg(format!("identity={}", identity.display()));
        }
        Catalog::Replica {
            origin,
            dir,
            delay_ms,
            interval_ms,
        } => {
            cmd.arg("--replica")
                .arg(format!("catalog={origin}/db/catalog"))
                .arg("--replica")
                .arg(format!("identity={origin}/db/identity"))
                .arg("--replica-dir")
                .arg(dir)
                .args(["--origin-delay-ms", &delay_ms.to_string()])
                .args(["--sync-interval-ms", &interval_ms.to_string()])
                .env("EDGESHOP_PRIMARY_TOKEN", secret("edge_token")?);
        }
        Catalog::Primaries {
            primaries,
            dir,
            delay_ms,
            interval_ms,
        } => {
            for (label, url, token) in primaries {
                cmd.arg("--replica").arg(format!("{label}={url}")).env(
                    format!("EDGESHOP_PRIMARY_TOKEN_{}", label.to_ascii_uppercase()),
                    token,
                );
            }
            cmd.arg("--replica-dir")
                .arg(dir)
                .args(["--origin-delay-ms", &delay_ms.to_string()])
                .args(["--sync-interval-ms", &interval_ms.to_string()]);
        }
        Catalog::Remote { origin, delay_ms } => {
            cmd.arg("--remote")
                .arg(format!("catalog={origin}/db/catalog"))
                .arg("--remote")
                .arg(format!("identity={origin}/db/identity"))
                .args(["--origin-delay-ms", &delay_ms.to_string()])
                .env("EDGESHOP_PRIMARY_TOKEN", secret("edge_token")?);
        }
    }
    Ok(cmd)
}

/// POSTs a JSON body to a local service and expects a 2xx answer.
pub fn post_json(base: &str, path: &str, body: &serde_json::Value) -> Result<()> {
    send(
        "POST",
        &format!("{base}{path}"),
        &[("content-type", "application/json")],
        body.to_string().as_bytes(),
    )
}

/// Sends one request to a local `http://` service and expects a 2xx.
pub fn send(method: &str, url: &str, fields: &[(&str, &str)], body: &[u8]) -> Result<()> {
    use std::io::{Read, Write};
    let rest = url
        .strip_prefix("http://")
        .with_context(|| format!("{url} is not a local http:// URL"))?;
    let (addr, target) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let mut s = std::net::TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut head = format!("{method} {target} HTTP/1.1\r\nhost: {addr}\r\n");
    for (name, value) in fields {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str(&format!(
        "content-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    ));
    s.write_all(head.as_bytes())?;
    s.write_all(body)?;
    let mut answer = Vec::new();
    s.read_to_end(&mut answer)?;
    let answer = String::from_utf8_lossy(&answer);
    let ok = answer
        .split(' ')
        .nth(1)
        .is_some_and(|code| code.starts_with('2'));
    if !ok {
        let path = target.split('?').next().unwrap_or(target);
        bail!(
            "{method} {addr}{path} answered: {}",
            answer.lines().next().unwrap_or("")
        );
    }
    Ok(())
}

/// Spin's own health path: every Spin host answers it, and our edge host
/// answers it like its own (503 until its replicas have bootstrapped).
pub const HEALTH_PATH: &str = "/.well-known/spin/health";

/// Waits (at most `limit`) until a server's health endpoint answers 200:
/// for a PoP, until its replica has bootstrapped.
pub fn wait_ready(url: &str, limit: Duration) -> Result<()> {
    wait_ok(url, HEALTH_PATH, limit)
}

/// Waits (at most `limit`) until `GET path` at `url` answers 200.
fn wait_ok(url: &str, path: &str, limit: Duration) -> Result<()> {
    use std::io::{Read, Write};
    let addr = url.trim_start_matches("http://");
    let deadline = Instant::now() + limit;
    loop {
        let ok = std::net::TcpStream::connect(addr).and_then(|mut s| {
            s.set_read_timeout(Some(Duration::from_secs(2)))?;
            write!(
                s,
                "GET {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n"
            )?;
            let mut head = [0u8; 12];
            s.read_exact(&mut head)?;
            Ok(head.ends_with(b"200"))
        });
        if matches!(ok, Ok(true)) {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{url} did not become ready within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub fn pops_file() -> Result<PopsFile> {
    let text = std::fs::read_to_string(root().join("cdn-config/pops.toml"))?;
    toml::from_str(&text).context("cdn-config/pops.toml")
}

/// Which server is the primary of the replicated databases.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PrimaryKind {
    /// Ours, inside the origin (the embedded default).
    Origin,
    /// sqld, the libSQL server Turso runs, one per database.
    Sqld,
}

pub fn run(
    no_build: bool,
    spin: bool,
    workers: bool,
    primary: PrimaryKind,
    observe: bool,
) -> Result<()> {
    let sqld = match primary {
        PrimaryKind::Origin => None,
        PrimaryKind::Sqld => Some(setup::sqld()?.context(
            "--primary sqld needs sqld: set EDGESHOP_SQLD to its binary, put `sqld` on PATH, \
             or keep the shared build in shared/tools/sqld/",
        )?),
    };
    if workers && sqld.is_some() {
        bail!(
            "--workers with --primary sqld is not wired: the Workers twin reads the origin's \
             Hrana, which then serves no catalog (docs/sqld.md)"
        );
    }
    let workers = workers.then(crate::workers::tools).transpose()?;
    let observer = observe.then(crate::observe::tools).transpose()?;
    if !no_build {
        let tc = setup::run()?;
        build::components(&tc)?;
        if let Some(tools) = &workers {
            crate::workers::build(tools)?;
        }
        build::host()?;
    }
    let engine = if spin {
        let Some(binary) = setup::spin()? else {
            bail!(
                "--spin needs real Spin 4.1 or newer: set EDGESHOP_SPIN to its binary or put \
                 `spin` on PATH"
            );
        };
        Engine::Spin(binary)
    } else {
        Engine::EdgeHost
    };
    let layout = Layout {
        root: state_dir(),
        logs: false,
    };
    build::seed(&layout.catalog(), 10_000, 200, 1, false)?;
    build::seed_identity(&layout.identity(), "admin@edgeshop.test")?;
    let mut platform = Platform::start(layout, engine.clone(), workers.is_some(), sqld.as_deref())?;
    say("storing the seeded catalog's pictures");
    crate::pictures::store(
        &platform.objects.url,
        crate::platform::BUCKET,
        &secret("store_processor_secret")?,
        &crate::pictures::make()?,
    )?;

    let prometheus = match &observer {
        Some(tools) => {
            say("starting Prometheus on every process's /metrics, with the SLO rules");
            Some(crate::observe::start(
                tools,
                &scrape_jobs(&platform, matches!(engine, Engine::EdgeHost)),
                &state_dir().join("prometheus"),
            )?)
        }
        None => None,
    };

    let topology = Topology {
        prometheus: prometheus.as_ref().map(|p| Endpoint { url: p.url.clone() }),
        origin: Endpoint {
            url: platform.origin.url.clone(),
        },
        primaries: platform
            .primaries
            .iter()
            .flat_map(|p| &p.servers)
            .map(|s| (s.db, Endpoint { url: s.url.clone() }))
            .collect(),
        payments: Endpoint {
            url: platform.paysim.url.clone(),
        },
        objects: Endpoint {
            url: platform.objects.url.clone(),
        },
        front_door: Endpoint {
            url: platform.front_door.url.clone(),
        },
        pops: platform
            .pops
            .iter()
            .map(|p| PopEndpoint {
                name: p.config.name.clone(),
                region: p.config.region.clone(),
                url: p.service.url.clone(),
                engine: engine.name(),
                origin_delay_ms: match engine {
                    Engine::EdgeHost => p.config.origin_delay_ms,
                    Engine::Spin(_) => 0,
                },
                replication: matches!(engine, Engine::EdgeHost)
                    .then(|| format!("{}/.well-known/edgeshop/replication", p.service.url)),
            })
            .chain(platform.worker.iter().map(|w| PopEndpoint {
                name: crate::platform::WORKER_LOCATION.0.to_string(),
                region: crate::platform::WORKER_LOCATION.1.to_string(),
                url: w.url.clone(),
                engine: "workers",
                origin_delay_ms: 0,
                replication: None,
            }))
            .collect(),
    };
    let topo_path = state_dir().join("topology.json");
    std::fs::write(&topo_path, serde_json::to_string_pretty(&topology)?)?;

    println!();
    let shown = topo_path.strip_prefix(root()).unwrap_or(&topo_path);
    println!("edgeshop is up (topology in {}):", shown.display());
    println!(
        "  front door  {}   (send `edgeshop-client-region: eu|us|ap`)",
        topology.front_door.url
    );
    println!("  origin  {}", topology.origin.url);
    for (db, e) in &topology.primaries {
        println!("  sqld    {}   (primary of {db})", e.url);
    }
    println!(
        "  payments {}   (simulator; inject faults with POST /_sim/faults)",
        topology.payments.url
    );
    println!(
        "  objects  {}   (S3-compatible, bucket {})",
        topology.objects.url,
        crate::platform::BUCKET
    );
    for p in &topology.pops {
        println!("  pop {:<4} {}   ({})", p.name, p.url, p.engine);
    }
    println!(
        "  status  {}/.well-known/edgeshop/status   (every PoP's traffic, drawn)",
        topology.front_door.url
    );
    if let Some(p) = &topology.prometheus {
        println!(
            "  prometheus {}   (scraping every process; SLO rules and alerts loaded)",
            p.url
        );
    }
    if platform.worker.is_some() {
        println!(
            "  (pop wkr is the Workers twin under wrangler dev, reading the origin over Hrana; \
             send `edgeshop-client-region: workers` through the front door)"
        );
    }
    if let Engine::Spin(_) = engine {
        println!(
            "  (the PoPs are real Spin on spin.toml, reading the origin's databases over \
             Hrana; no simulated distance)"
        );
    }
    println!();
    println!(
        "  curl -i --compressed -H 'edgeshop-client-region: eu' {}/api/v1/products/1",
        topology.front_door.url
    );
    if let Some(first) = topology.pops.first() {
        println!("  curl '{}/api/v1/products?q=walnut&limit=3'", first.url);
        println!();
        println!(
            "  In a browser: {0}/ is the shop (sign up under Account), {0}/sell the \
             vendor dashboard (open a shop from the sign-up page).",
            first.url
        );
    }
    println!();
    println!("Ctrl-C stops everything.");

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    {
        let stop = stop.clone();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        std::thread::spawn(move || {
            // Ctrl-C, or a service manager's (or `kill`'s) SIGTERM or a
            // closed terminal's SIGHUP: each stops everything we started.
            rt.block_on(async {
                use tokio::signal::unix::{SignalKind, signal};
                let (Ok(mut term), Ok(mut hup)) = (
                    signal(SignalKind::terminate()),
                    signal(SignalKind::hangup()),
                ) else {
                    let _ = tokio::signal::ctrl_c().await;
                    return;
                };
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                    _ = hup.recv() => {}
                }
            });
            stop.store(true, std::sync::atomic::Ordering::SeqCst);
        });
    }
    let stopping = || stop.load(std::sync::atomic::Ordering::SeqCst);
    while !stopping() {
        if let Some((name, status)) = platform.exited() {
            // A terminal's Ctrl-C reaches the children too, and one may exit
            // before our own handler has run: give it a moment to say so.
            std::thread::sleep(Duration::from_millis(500));
            if stopping() {
                break;
            }
            bail!("{name} exited ({status}); stopping everything");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    say("stopping PoPs and origin");
    drop(prometheus);
    drop(platform);
    let _ = std::fs::remove_file(&topo_path);
    Ok(())
}

/// What Prometheus scrapes: every process that serves `/metrics`, by role.
/// (Spin PoPs, the Workers twin and the object store serve none.)
fn scrape_jobs(platform: &Platform, edge_hosts: bool) -> Vec<crate::observe::Job> {
    use crate::observe::Job;
    let at = |url: &str| url.trim_start_matches("http://").to_string();
    let mut jobs = vec![
        Job {
            name: "frontdoor",
            targets: vec![("front-door".into(), at(&platform.front_door.url))],
        },
        Job {
            name: "origin",
            targets: vec![("origin".into(), at(&platform.origin.url))],
        },
        Job {
            name: "paysim",
            targets: vec![("paysim".into(), at(&platform.paysim.url))],
        },
    ];
    if edge_hosts {
        jobs.push(Job {
            name: "pop",
            targets: platform
                .pops
                .iter()
                .map(|p| (p.config.name.clone(), at(&p.service.url)))
                .collect(),
        });
    }
    jobs
}

#[cfg(test)]
mod tests {
    use super::announced;

    #[test]
    fn every_server_we_start_is_heard_announcing_its_address() {
        for (line, url) in [
            (
                "edge-host listening on http://127.0.0.1:4000",
                "http://127.0.0.1:4000",
            ),
            ("Serving http://127.0.0.1:3000/", "http://127.0.0.1:3000"),
            (
                "[wrangler] Ready on http://127.0.0.1:8787",
                "http://127.0.0.1:8787",
            ),
            (
                "2026-12-05T22:14:10Z  INFO sqld: listening for incoming user HTTP connection on 127.0.0.1:18555",
                "http://127.0.0.1:18555",
            ),
        ] {
            assert_eq!(announced(line).as_deref(), Some(url), "{line}");
        }
        assert_eq!(
            announced("INFO sqld: namespace `default` deallocated"),
            None
        );
    }
}
