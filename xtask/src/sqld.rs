//! sqld, the libSQL server Turso runs, as the primary of the replicated
//! databases (`cargo xtask up --primary sqld`): one server per database,
//! each trusting a JWT key of its own (a token for the catalog reaches
//! nothing else), first filled from the files `up` seeds. The origin
//! keeps `orders` in its own file: nothing at the edge reads it, and the
//! saga's writes stay local and grouped (see the README).

use crate::keys::{self, SqldAuth};
use crate::platform::Layout;
use crate::say;
use crate::up::Service;
use anyhow::{Context, Result};
use std::path::Path;
use std::process::Command;

/// The databases sqld serves, and the seeded file each starts from.
pub const DATABASES: [&str; 2] = ["catalog", "identity"];

/// One database's server.
pub struct Primary {
    pub db: &'static str,
    /// The server's HTTP address: Hrana (`/v2/pipeline`) and replication.
    pub url: String,
    pub auth: SqldAuth,
    service: Service,
}

/// Every database's server; stopped when dropped.
pub struct Primaries {
    pub servers: Vec<Primary>,
}

impl Primaries {
    /// Starts a server per database over `layout`'s `sqld/<db>` folders;
    /// a folder without a database yet gets a copy of the seeded file.
    pub fn start(layout: &Layout, binary: &Path) -> Result<Primaries> {
        let mut servers = Vec::new();
        for db in DATABASES {
            let dir = layout.root.join("sqld").join(db);
            let seed = layout.root.join(format!("data/{db}.db"));
            place_seed(&seed, &dir)?;
            let auth = keys::sqld_auth(db)?;
            let port = std::net::TcpListener::bind("127.0.0.1:0")?
                .local_addr()?
                .port();
            let listen = format!("127.0.0.1:{port}");
            say(&format!("starting sqld for {db} on {listen}"));
            let service = start(binary, db, &dir, &listen, &auth.key_file, layout)?;
            servers.push(Primary {
                db,
                url: service.url.clone(),
                auth,
                service,
            });
        }
        Ok(Primaries { servers })
    }

    pub fn get(&self, db: &str) -> &Primary {
        self.servers
            .iter()
            .find(|p| p.db == db)
            .expect("sqld serves every replicated database")
    }

    pub fn exited(&mut self) -> Option<(String, std::process::ExitStatus)> {
        self.servers
            .iter_mut()
            .find_map(|p| p.service.exited().map(|s| (p.service.name.clone(), s)))
    }
}

fn start(
    binary: &Path,
    db: &str,
    dir: &Path,
    listen: &str,
    key_file: &Path,
    layout: &Layout,
) -> Result<Service> {
    let mut cmd = Command::new(binary);
    cmd.arg("--db-path")
        .arg(dir)
        .args(["--http-listen-addr", listen, "--no-welcome"])
        .arg("--auth-jwt-key-file")
        .arg(key_file)
        // sqld reads these from the environment too: none may leak in.
        .env_remove("SQLD_AUTH_JWT_KEY")
        .env_remove("SQLD_HTTP_AUTH");
    let name = format!("sqld-{db}");
    Service::start_logging(&name, cmd, layout.log(&name).as_deref())
}

/// Drops the databases sqld serves under `state` (`cargo xtask seed
/// --force`): the next `up --primary sqld` copies the new seed.
pub fn forget_copies(state: &Path) -> Result<()> {
    match std::fs::remove_dir_all(state.join("sqld")) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
        _ => Ok(()),
    }
}

/// sqld keeps a database at `<dir>/dbs/default/data`. A folder without
/// one gets a consistent copy of the seeded file (`VACUUM INTO`, which
/// also folds in a WAL); one with a database keeps it, as `up` keeps a
/// seeded file.
fn place_seed(seed: &Path, dir: &Path) -> Result<()> {
    let data = dir.join("dbs/default/data");
    if data.exists() {
        return Ok(());
    }
    std::fs::create_dir_all(data.parent().context("dir")?)?;
    let part = data.with_extension("partial");
    let _ = std::fs::remove_file(&part);
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(async {
            let db = libsql::Builder::new_local(seed).build().await?;
            db.connect()?
                .execute("VACUUM INTO ?1", [part.display().to_string()])
                .await?;
            anyhow::Ok(())
        })
        .with_context(|| format!("copying {} for sqld", seed.display()))?;
    std::fs::rename(&part, &data)?;
    Ok(())
}
