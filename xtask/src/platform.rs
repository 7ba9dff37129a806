//! The whole system on one machine: the payment simulator, the object
//! store, the origin, every PoP of `cdn-config/pops.toml` and the front
//! door, over the databases and objects in one directory. `cargo xtask up` runs it until Ctrl-C;
//! `cargo xtask soak` also restarts its parts on their own addresses.

use crate::sqld::Primaries;
use crate::up::{
    Catalog, Engine, PopConfig, PopsFile, Service, edge_host_command, pops_file, post_json, secret,
    wait_ready,
};
use crate::{keys, root, say};
use anyhow::{Context, Result};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

/// Where a platform keeps its files: `data/{catalog,identity,orders}.db`,
/// a replica directory per PoP under `pops/`, the front door's config,
/// and with `logs`, a log file per process.
pub struct Layout {
    pub root: PathBuf,
    /// Write each process's log to `root/logs/<name>.log` instead of this
    /// terminal.
    pub logs: bool,
}

impl Layout {
    pub fn catalog(&self) -> PathBuf {
        self.root.join("data/catalog.db")
    }

    pub fn identity(&self) -> PathBuf {
        self.root.join("data/identity.db")
    }

    pub(crate) fn log(&self, name: &str) -> Option<PathBuf> {
        self.logs
            .then(|| self.root.join("logs").join(format!("{name}.log")))
    }
}

/// A PoP and what it was started from.
pub struct RunningPop {
    pub config: PopConfig,
    pub service: Service,
}

/// Every process of the system, running.
pub struct Platform {
    layout: Layout,
    config: PopsFile,
    engine: Engine,
    webhook_secret: String,
    pub paysim: Service,
    pub objects: Service,
    pub origin: Service,
    pub pops: Vec<RunningPop>,
    /// The Workers twin under `wrangler dev`, a fourth edge location
    /// (`cargo xtask up --workers`).
    pub worker: Option<Service>,
    pub front_door: Service,
    /// sqld, when it is the primary of the replicated databases
    /// (`--primary sqld`); stopped last.
    pub primaries: Option<Primaries>,
}

/// The Workers edge location's name and the client region it serves.
pub const WORKER_LOCATION: (&str, &str) = ("wkr", "workers");

impl Platform {
    /// Starts everything over the (seeded) databases of `layout` and waits
    /// until every PoP has bootstrapped its replicas. With `sqld` (its
    /// binary), sqld is the primary of the catalog and identity.
    pub fn start(
        layout: Layout,
        engine: Engine,
        workers: bool,
        sqld: Option<&std::path::Path>,
    ) -> Result<Platform> {
        if layout.logs {
            std::fs::create_dir_all(layout.root.join("logs"))?;
        }
        let config = pops_file()?;
        let webhook_secret = format!("whsec_{}", secret("webhook_secret")?);
        // The payment provider: the simulator, no faults unless asked for
        // (POST /_sim/faults).
        let mut paysim_cmd = Command::new(root().join("target/release/edgeshop-paysim"));
        paysim_cmd
            .current_dir(root())
            .args(["--listen", "127.0.0.1:0"])
            .env("EDGESHOP_WEBHOOK_SECRET", &webhook_secret);
        say("starting the payment simulator");
        let paysim = Service::start_logging("paysim", paysim_cmd, layout.log("paysim").as_deref())?;
        say("starting the object store");
        let objects = Service::start_logging(
            "objects",
            objects_command(&layout)?,
            layout.log("objects").as_deref(),
        )?;
        let primaries = sqld
            .map(|binary| Primaries::start(&layout, binary))
            .transpose()?;
        say("starting the origin");
        let origin = Service::start_logging(
            "origin",
            origin_command(
                &layout,
                &paysim.url,
                &objects.url,
                &webhook_secret,
                "127.0.0.1:0",
                primaries.as_ref(),
            )?,
            layout.log("origin").as_deref(),
        )?;
        post_json(
            &paysim.url,
            "/_sim/webhook",
            &serde_json::json!({ "url": format!("{}/webhooks/payments", origin.url) }),
        )
        .context("pointing the simulator's webhooks at the origin")?;

        let mut pops = Vec::new();
        for pop in &config.pop {
            // Each PoP reads an embedded replica of the origin's databases
            // (on Spin: the origin's databases, over Hrana).
            say(&format!(
                "starting PoP {} ({}, origin {} ms away) on {}",
                pop.name,
                pop.region,
                pop.origin_delay_ms,
                engine.name()
            ));
            let upstream = Upstream {
                origin: &origin.url,
                media: &objects.url,
                primaries: primaries.as_ref(),
            };
            let service = start_pop(&layout, &config, &engine, pop, &upstream, &pop.listen)?;
            pops.push(RunningPop {
                config: pop.clone(),
                service,
            });
        }
        for pop in &pops {
            wait_ready(&pop.service.url, Duration::from_secs(120))
                .with_context(|| format!("PoP {} bootstrapping its replica", pop.config.name))?;
        }

        let worker = if workers {
            say("starting the Workers twin under wrangler dev (reading the origin over Hrana)");
            let cmd = crate::workers::command(
                &layout.root.join("workers"),
                &origin.url,
                &[
                    ("media_origin", &objects.url),
                    ("media_bucket", BUCKET),
                    ("upload_origin", &objects.url),
                ],
            )?;
            let service =
                Service::start_group(WORKER_LOCATION.0, cmd, layout.log("worker").as_deref())?;
            wait_ready(&service.url, Duration::from_secs(120))
                .context("the Worker answering its health path")?;
            Some(service)
        } else {
            None
        };

        let mut locations: Vec<serde_json::Value> = pops
            .iter()
            .map(|p| {
                serde_json::json!({
                    "name": p.config.name, "region": p.config.region, "url": p.service.url,
                })
            })
            .collect();
        if let Some(w) = &worker {
            locations.push(serde_json::json!({
                "name": WORKER_LOCATION.0, "region": WORKER_LOCATION.1, "url": w.url,
            }));
        }
        let fd_config = layout.root.join("front-door.json");
        std::fs::write(
            &fd_config,
            serde_json::to_string_pretty(&serde_json::json!({
                "pops": locations,
                "nearest": config.front_door.nearest,
                "region_header": config.front_door.region_header,
            }))?,
        )?;
        let mut fd_cmd = Command::new(root().join("target/release/front-door"));
        fd_cmd
            .current_dir(root())
            .args(["--listen", &config.front_door.listen, "--config"])
            .arg(&fd_config);
        say("starting the front door");
        let front_door =
            Service::start_logging("front-door", fd_cmd, layout.log("front-door").as_deref())?;
        Ok(Platform {
            layout,
            config,
            engine,
            webhook_secret,
            paysim,
            objects,
            origin,
            pops,
            worker,
            front_door,
            primaries,
        })
    }

    /// The region header the front door routes by.
    pub fn region_header(&self) -> &str {
        &self.config.front_door.region_header
    }

    /// Stops the origin (`crash`: SIGKILL, else SIGTERM and a drain) and
    /// starts it again on the same address, over the same files.
    pub fn restart_origin(&mut self, crash: bool) -> Result<()> {
        let listen = self.origin.address().to_string();
        if crash {
            self.origin.kill();
        } else {
            self.origin.stop();
        }
        let cmd = origin_command(
            &self.layout,
            &self.paysim.url,
            &self.objects.url,
            &self.webhook_secret,
            &listen,
            self.primaries.as_ref(),
        )?;
        self.origin = Service::start_logging("origin", cmd, self.layout.log("origin").as_deref())?;
        Ok(())
    }

    /// Stops PoP `name` (`crash`: SIGKILL) and starts it again on the same
    /// address over its replica files; returns once it is ready.
    pub fn restart_pop(&mut self, name: &str, crash: bool) -> Result<()> {
        let i = self
            .pops
            .iter()
            .position(|p| p.config.name == name)
            .with_context(|| format!("no PoP named {name}"))?;
        let listen = self.pops[i].service.address().to_string();
        if crash {
            self.pops[i].service.kill();
        } else {
            self.pops[i].service.stop();
        }
        let upstream = Upstream {
            origin: &self.origin.url,
            media: &self.objects.url,
            primaries: self.primaries.as_ref(),
        };
        self.pops[i].service = start_pop(
            &self.layout,
            &self.config,
            &self.engine,
            &self.pops[i].config,
            &upstream,
            &listen,
        )?;
        wait_ready(&self.pops[i].service.url, Duration::from_secs(120))
    }

    /// The first process that has exited, if any: its name and status.
    pub fn exited(&mut self) -> Option<(String, std::process::ExitStatus)> {
        std::iter::once(&mut self.paysim)
            .chain(std::iter::once(&mut self.objects))
            .chain(std::iter::once(&mut self.origin))
            .chain(self.pops.iter_mut().map(|p| &mut p.service))
            .chain(self.worker.iter_mut())
            .chain(std::iter::once(&mut self.front_door))
            .find_map(|s| s.exited().map(|status| (s.name.clone(), status)))
            .or_else(|| self.primaries.as_mut()?.exited())
    }

    /// The last `lines` lines of each process's log file (with `logs`).
    pub fn log_tails(&self, lines: usize) -> String {
        let mut out = String::new();
        let Ok(dir) = std::fs::read_dir(self.layout.root.join("logs")) else {
            return out;
        };
        let mut files: Vec<PathBuf> = dir.filter_map(|e| Some(e.ok()?.path())).collect();
        files.sort();
        for path in files {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(lines).collect();
            out.push_str(&format!("--- {} ---\n", path.display()));
            for line in tail.into_iter().rev() {
                out.push_str(line);
                out.push('\n');
            }
        }
        out
    }
}

impl Drop for Platform {
    /// Front to back: no PoP sees its clients' requests fail for a
    /// missing origin before the front door has stopped sending them.
    fn drop(&mut self) {
        self.front_door.stop();
        for pop in &mut self.pops {
            pop.service.stop();
        }
        if let Some(worker) = &mut self.worker {
            worker.stop();
        }
        self.origin.stop();
        self.primaries = None;
        self.objects.stop();
        self.paysim.stop();
    }
}

/// The bucket the embedded default serves.
pub const BUCKET: &str = "edgeshop";
/// The access keys of the object store's two roles.
pub const UPLOADER_KEY: &str = "edgeshop-uploader";
pub const PROCESSOR_KEY: &str = "edgeshop-processor";

/// The object store, with a keys file of its two roles' keys (secrets
/// made once per checkout, like the tokens) and CORS for any local port,
/// where the front door listens.
pub(crate) fn objects_command(layout: &Layout) -> Result<Command> {
    let keys = layout.root.join("objects-keys.toml");
    let mut text = String::new();
    for (access, role) in [(UPLOADER_KEY, "uploader"), (PROCESSOR_KEY, "processor")] {
        text.push_str(&format!(
            "[[key]]\naccess_key = \"{access}\"\nsecret_key = \"{}\"\nrole = \"{role}\"\n",
            secret(&format!("store_{role}_secret"))?
        ));
    }
    crate::private::write(&keys, text.as_bytes())?;
    let mut cmd = Command::new(root().join("target/release/edgeshop-objects"));
    cmd.current_dir(root())
        .args(["--listen", "127.0.0.1:0", "--bucket", BUCKET, "--root"])
        .arg(layout.root.join("objects"))
        .arg("--keys")
        .arg(&keys)
        .args(["--cors-origin", "http://127.0.0.1:*"]);
    Ok(cmd)
}

fn origin_command(
    layout: &Layout,
    payments_url: &str,
    store_url: &str,
    webhook_secret: &str,
    listen: &str,
    primaries: Option<&Primaries>,
) -> Result<Command> {
    let mut cmd = Command::new(root().join("target/release/edgeshop-origin"));
    cmd.current_dir(root()).args(["--listen", listen]);
    match primaries {
        None => {
            cmd.arg("--catalog")
                .arg(layout.catalog())
                .arg("--identity")
                .arg(layout.identity());
        }
        Some(p) => {
            for db in crate::sqld::DATABASES {
                let server = p.get(db);
                cmd.arg(format!("--{db}")).arg(&server.url).env(
                    format!("EDGESHOP_{}_TOKEN", db.to_ascii_uppercase()),
                    &server.auth.origin_token,
                );
            }
        }
    }
    cmd.arg("--orders")
        .arg(layout.root.join("data/orders.db"))
        // Checkout verifies shoppers' tokens with the keys PoPs use.
        .arg("--variables-file")
        .arg(keys::ensure()?)
        .args(["--payments-url", payments_url])
        .args(["--store-endpoint", store_url, "--store-bucket", BUCKET])
        // The PoPs run here: each carries many shoppers' checkouts.
        .args(["--trusted-proxy", "127.0.0.1"])
        .env("EDGESHOP_ORIGIN_TOKEN", secret("origin_token")?)
        .env("EDGESHOP_EDGE_TOKEN", secret("edge_token")?)
        .env("EDGESHOP_WEBHOOK_SECRET", webhook_secret)
        .env("EDGESHOP_STORE_UPLOADER_KEY", UPLOADER_KEY)
        .env(
            "EDGESHOP_STORE_UPLOADER_SECRET",
            secret("store_uploader_secret")?,
        )
        .env("EDGESHOP_STORE_PROCESSOR_KEY", PROCESSOR_KEY)
        .env(
            "EDGESHOP_STORE_PROCESSOR_SECRET",
            secret("store_processor_secret")?,
        );
    Ok(cmd)
}

/// Starts PoP `pop` on `engine`, listening on `listen`.
/// What a PoP reaches: the origin, the object store and, with `--primary
/// sqld`, the primaries.
struct Upstream<'a> {
    origin: &'a str,
    media: &'a str,
    primaries: Option<&'a Primaries>,
}

fn start_pop(
    layout: &Layout,
    config: &PopsFile,
    engine: &Engine,
    pop: &PopConfig,
    upstream: &Upstream<'_>,
    listen: &str,
) -> Result<Service> {
    let log = layout.log(&pop.name);
    match engine {
        Engine::EdgeHost => {
            let cmd = pop_command(layout, config, pop, upstream, listen)?;
            Service::start_logging(&pop.name, cmd, log.as_deref())
        }
        Engine::Spin(spin) => {
            let cmd = spin_pop_command(layout, spin, pop, upstream, listen)?;
            Service::start_group(&pop.name, cmd, log.as_deref())
        }
    }
}

/// A PoP on real Spin: `spin up` on the same `spin.toml`, unmodified, with
/// a runtime config that opens `catalog` and `identity` at the origin over
/// Hrana (Spin's `libsql` database type, with the edge token, so the same
/// grant as an edge host's) and keeps the rate limiter's and the cache's
/// stores in files of its own. The variables are the edge host's.
fn spin_pop_command(
    layout: &Layout,
    spin: &std::path::Path,
    pop: &PopConfig,
    upstream: &Upstream<'_>,
    listen: &str,
) -> Result<Command> {
    let Upstream {
        origin,
        media,
        primaries,
    } = *upstream;
    let dir = layout.root.join("pops").join(&pop.name);
    std::fs::create_dir_all(&dir)?;
    let quote = |s: &str| toml::Value::from(s).to_string();
    let mut config = String::new();
    for label in ["catalog", "identity"] {
        let (url, token) = match primaries {
            None => (format!("{origin}/db/{label}"), secret("edge_token")?),
            Some(p) => (
                p.get(label).url.clone(),
                p.get(label).auth.edge_token.clone(),
            ),
        };
        config.push_str(&format!(
            "[sqlite_database.{label}]\ntype = \"libsql\"\nurl = {}\ntoken = {}\n\n",
            quote(&url),
            quote(&token),
        ));
    }
    for label in ["ratelimit", "cache"] {
        let path = dir.join(format!("{label}.db"));
        config.push_str(&format!(
            "[key_value_store.{label}]\ntype = \"spin\"\npath = {}\n\n",
            quote(&path.display().to_string()),
        ));
    }
    let runtime_config = dir.join("runtime-config.toml");
    // It holds the edge token.
    crate::private::write(&runtime_config, config.as_bytes())?;
    // Spin takes a fixed address: give it a free one for `:0`.
    let listen = match listen.strip_suffix(":0") {
        Some(host) => {
            let port = std::net::TcpListener::bind(format!("{host}:0"))?
                .local_addr()?
                .port();
            format!("{host}:{port}")
        }
        None => listen.to_string(),
    };
    let mut cmd = Command::new(spin);
    cmd.current_dir(root())
        .arg("up")
        .arg("--from")
        .arg(root().join("spin.toml"))
        .args(["--listen", &listen])
        .arg("--runtime-config-file")
        .arg(&runtime_config)
        .arg("--state-dir")
        .arg(dir.join("spin-state"))
        .env("SPIN_VARIABLE_CURSOR_SECRET", secret("cursor_secret")?)
        .env("SPIN_VARIABLE_RATELIMIT_TRUSTED_PROXIES", "127.0.0.1, ::1")
        .env("SPIN_VARIABLE_ORIGIN_URL", origin)
        .env("SPIN_VARIABLE_MEDIA_ORIGIN", media)
        .env("SPIN_VARIABLE_UPLOAD_ORIGIN", media)
        .env("SPIN_VARIABLE_MEDIA_BUCKET", BUCKET);
    // The signing key and JWKS our host reads from its variables file.
    let vars: toml::Table = toml::from_str(&std::fs::read_to_string(keys::ensure()?)?)?;
    for (k, v) in vars {
        if let Some(v) = v.as_str() {
            cmd.env(format!("SPIN_VARIABLE_{}", k.to_ascii_uppercase()), v);
        }
    }
    Ok(cmd)
}

fn pop_command(
    layout: &Layout,
    config: &PopsFile,
    pop: &PopConfig,
    upstream: &Upstream<'_>,
    listen: &str,
) -> Result<Command> {
    let Upstream {
        origin,
        media,
        primaries,
    } = *upstream;
    let dir = layout.root.join("pops").join(&pop.name);
    let (delay_ms, interval_ms) = (pop.origin_delay_ms, config.replication.sync_interval_ms);
    let catalog = match primaries {
        None => Catalog::Replica {
            origin,
            dir,
            delay_ms,
            interval_ms,
        },
        Some(p) => Catalog::Primaries {
            primaries: crate::sqld::DATABASES
                .iter()
                .map(|db| {
                    let server = p.get(db);
                    (*db, server.url.clone(), server.auth.edge_token.clone())
                })
                .collect(),
            dir,
            delay_ms,
            interval_ms,
        },
    };
    let mut cmd = edge_host_command(&pop.name, listen, catalog, &root().join("spin.toml"))?;
    // Shoppers reach the PoPs through the local front door, so the client
    // is the address it appends to X-Forwarded-For, and the front door's
    // connections carry every shopper's (bounded only in total).
    cmd.args(["--trusted-proxy", "127.0.0.1", "--trusted-proxy", "::1"])
        .env("SPIN_VARIABLE_RATELIMIT_TRUSTED_PROXIES", "127.0.0.1, ::1")
        .env("SPIN_VARIABLE_ORIGIN_URL", origin)
        .env("SPIN_VARIABLE_MEDIA_ORIGIN", media)
        .env("SPIN_VARIABLE_UPLOAD_ORIGIN", media)
        .env("SPIN_VARIABLE_MEDIA_BUCKET", BUCKET);
    Ok(cmd)
}
