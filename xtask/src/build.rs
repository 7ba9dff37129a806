//! Building guests and hosts, and seeding the catalog.

use crate::setup::{Toolchain, WASM_TARGET};
use crate::{root, say, state_dir};
use anyhow::{Context, Result, bail};
use std::path::Path;
use std::process::Command;

/// Guest crates and the file name each is installed under.
pub const COMPONENTS: &[(&str, &str)] = &[
    ("catalog", "catalog"),
    ("auth", "auth"),
    ("auth-middleware", "auth_middleware"),
    ("ratelimit", "ratelimit"),
    ("cache", "cache"),
    ("checkout", "checkout"),
    ("vendor", "vendor"),
    ("media", "media"),
    ("storefront", "storefront"),
    ("assets", "assets"),
    ("hello", "hello"),
    ("test-guests", "test_guests"),
    ("test-middleware", "test_middleware"),
    ("pass-through", "pass_through"),
    ("deny", "deny"),
];

/// The middleware and app components built a second time with
/// spin-glue's `otel` feature, a span per traced request, as
/// `target/components/<name>.traced.wasm`: the edge host loads these while
/// it exports spans. spin.toml names the plain builds, which import
/// nothing Spin links by default.
pub const TRACED: &[&str] = &[
    "ratelimit",
    "auth-middleware",
    "cache",
    "catalog",
    "auth",
    "checkout",
    "storefront",
    "vendor",
    "media",
    "assets",
];

/// `cargo`, as xtask runs it: without the package variables `cargo run`
/// hands xtask (`CARGO_PKG_NAME`, `CARGO_MANIFEST_DIR`, ...). Cargo
/// fingerprints the variables a crate reads (ring reads several), so a
/// build started from xtask and one started from a shell each found the
/// other's `ring` stale and rebuilt it and everything on top (rustls,
/// libsql, the host binaries: minutes) whenever a developer switched.
pub fn cargo_command() -> Command {
    let mut cmd = Command::new(env!("CARGO"));
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if name.starts_with("CARGO_PKG_")
            || name.starts_with("CARGO_MANIFEST_")
            || [
                "CARGO_CRATE_NAME",
                "CARGO_BIN_NAME",
                "CARGO_PRIMARY_PACKAGE",
            ]
            .contains(&name.as_ref())
        {
            cmd.env_remove(name.as_ref());
        }
    }
    cmd
}

pub fn cargo(args: &[&str]) -> Result<()> {
    let status = cargo_command()
        .args(args)
        .current_dir(root())
        .status()
        .context("running cargo")?;
    if !status.success() {
        bail!("cargo {} failed", args.join(" "));
    }
    Ok(())
}

/// Runs `cargo test`, echoing its output, and adds up every
/// `test result:` line into (passed, failed).
pub fn cargo_test(args: &[&str], env: &[(&str, &std::ffi::OsStr)]) -> Result<(u64, u64)> {
    use std::io::{BufRead, BufReader};
    let mut child = cargo_command()
        .args(args)
        .envs(env.iter().copied())
        .current_dir(root())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .context("running cargo test")?;
    let (mut passed, mut failed) = (0, 0);
    let stdout = child.stdout.take().context("stdout")?;
    for line in BufReader::new(stdout).lines() {
        let line = line?;
        println!("{line}");
        if let Some(rest) = line.strip_prefix("test result: ") {
            for part in rest.split(';') {
                let mut words = part.split_whitespace().rev();
                let (Some(kind), Some(n)) = (words.next(), words.next()) else {
                    continue;
                };
                let n: u64 = n.parse().unwrap_or(0);
                match kind {
                    "passed" => passed += n,
                    "failed" => failed += n,
                    _ => {}
                }
            }
        }
    }
    if !child.wait()?.success() {
        bail!("cargo {} failed", args.join(" "));
    }
    Ok((passed, failed))
}

/// Which guest builds: the shipped ones, or the same keeping their
/// function names (the `name` section the wasm profile strips), for
/// `cargo xtask profile --named`, in a target directory of their own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Guests {
    Shipped,
    Named,
}

fn guest_command(tc: &Toolchain, subcommand: &str, guests: Guests) -> (Command, &'static str) {
    let crates: Vec<&str> = COMPONENTS.iter().map(|(krate, _)| *krate).collect();
    guest_command_for(tc, subcommand, &crates, guests)
}

/// `cargo <subcommand>` for the wasm target over the traced builds.
fn traced_command(tc: &Toolchain, subcommand: &str, guests: Guests) -> (Command, &'static str) {
    let (mut cmd, target_dir) = guest_command_for(tc, subcommand, TRACED, guests);
    let features: Vec<String> = TRACED.iter().map(|k| format!("{k}/otel")).collect();
    cmd.args(["--features", &features.join(",")]);
    (cmd, target_dir)
}

fn guest_command_for(
    tc: &Toolchain,
    subcommand: &str,
    crates: &[&str],
    guests: Guests,
) -> (Command, &'static str) {
    let mut cmd = cargo_command();
    cmd.current_dir(root()).arg(subcommand);
    let named = guests == Guests::Named;
    if named {
        cmd.env("CARGO_PROFILE_WASM_STRIP", "false");
    }
    let target_dir = match tc {
        Toolchain::Rustup if named => {
            cmd.args(["--target-dir", "target/named-guests"]);
            "target/named-guests"
        }
        Toolchain::Rustup => "target",
        Toolchain::BuildStd { rustc, lld_dir } => {
            let path = std::env::var("PATH").unwrap_or_default();
            cmd.env("PATH", format!("{}:{path}", lld_dir.display()))
                .env("RUSTC", rustc)
                .env("RUSTC_BOOTSTRAP", "1")
                .env("RUSTFLAGS", "-L /usr/lib/wasm32-wasi")
                .arg("-Zbuild-std=std,panic_abort");
            let dir = if named {
                "target/build-std-named"
            } else {
                "target/build-std"
            };
            cmd.args(["--target-dir", dir]);
            dir
        }
    };
    cmd.args(["--profile", "wasm", "--target", WASM_TARGET]);
    for krate in crates {
        cmd.args(["-p", krate]);
    }
    (cmd, target_dir)
}

/// Builds every guest and installs it as `target/components/<name>.wasm`,
/// where spin.toml and the tests look.
pub fn components(tc: &Toolchain) -> Result<()> {
    say("building wasm components (profile wasm: opt-level s, LTO)");
    build_guests(tc, Guests::Shipped, &root().join("target/components"))
}

/// Builds every guest keeping its function names, installed in
/// `target/bench/named/` under the names `target/components` uses; that
/// directory.
pub fn named_components(tc: &Toolchain) -> Result<std::path::PathBuf> {
    say("building wasm components with their function names (for a profile)");
    let out = root().join("target/bench/named");
    build_guests(tc, Guests::Named, &out)?;
    Ok(out)
}

fn build_guests(tc: &Toolchain, guests: Guests, out: &Path) -> Result<()> {
    let (mut cmd, target_dir) = guest_command(tc, "build", guests);
    if !cmd.status()?.success() {
        bail!("building the wasm components failed");
    }
    for (krate, file) in COMPONENTS {
        install(target_dir, file, out, &format!("{krate}.wasm"))?;
    }
    // Only after the plain ones are installed: both builds write the same
    // file names in cargo's output directory.
    let (mut cmd, target_dir) = traced_command(tc, "build", guests);
    if !cmd.status()?.success() {
        bail!("building the traced components failed");
    }
    for krate in TRACED {
        install(
            target_dir,
            &krate.replace('-', "_"),
            out,
            &format!("{krate}.traced.wasm"),
        )?;
    }
    Ok(())
}

/// Copies cargo's `<file>.wasm` to `out/<name>`.
fn install(target_dir: &str, file: &str, out: &Path, name: &str) -> Result<()> {
    std::fs::create_dir_all(out)?;
    let built = root()
        .join(target_dir)
        .join(WASM_TARGET)
        .join("wasm")
        .join(format!("{file}.wasm"));
    let dest = out.join(name);
    std::fs::copy(&built, &dest).with_context(|| format!("copying {}", built.display()))?;
    let size = std::fs::metadata(&dest)?.len();
    say(&format!(
        "  {name}: {} KiB -> {}",
        size / 1024,
        dest.strip_prefix(root())?.display()
    ));
    Ok(())
}

pub fn guest_clippy(tc: &Toolchain) -> Result<()> {
    match tc {
        Toolchain::Rustup => {
            for (mut cmd, _) in [
                guest_command(tc, "clippy", Guests::Shipped),
                traced_command(tc, "clippy", Guests::Shipped),
            ] {
                cmd.args(["--", "-D", "warnings"]);
                if !cmd.status()?.success() {
                    bail!("clippy found problems in the guest crates");
                }
            }
            Ok(())
        }
        Toolchain::BuildStd { .. } => {
            say(
                "skipping guest clippy: rustup's clippy does not match Debian's rustc on this route",
            );
            Ok(())
        }
    }
}

pub fn host() -> Result<()> {
    say(
        "building host binaries (edge-host, front-door, edgeshop-origin, native-catalog) in release",
    );
    // The whole workspace's binaries, not `-p` a few: cargo resolves
    // features over the packages selected, so this build shares its
    // dependencies (wasmtime above all) with `cargo test --release`
    // instead of compiling them a second time.
    cargo(&["build", "--release", "--bins"])
}

pub fn seed(out: &Path, products: u32, vendors: u32, seed: u64, force: bool) -> Result<()> {
    if out.exists() {
        if !force {
            say(&format!(
                "{} exists; keeping it (use --force to replace)",
                out.display()
            ));
            return Ok(());
        }
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", out.display()));
        }
    }
    std::fs::create_dir_all(out.parent().context("output has a directory")?)?;
    // Write to a temporary file and rename, so a crash never leaves a
    // half-seeded catalog that `up` would then treat as present.
    let tmp = out.with_extension("db.partial");
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", tmp.display()));
    }
    let started = std::time::Instant::now();
    // The pictures' names are their contents' hashes: known before they
    // are stored (`up` stores them).
    let pictures = crate::pictures::make()?;
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(async {
            let (_db, conn) = catalog_db::open_local(&tmp).await?;
            catalog_db::migrate(&conn).await?;
            catalog_db::seed(
                &conn,
                &catalog_db::SeedConfig {
                    products,
                    vendors,
                    seed,
                    pictures: pictures.iter().map(|p| p.image.clone()).collect(),
                },
            )
            .await?;
            // Fold the WAL into the file so it can be copied as one file.
            let mut rows = conn.query("PRAGMA wal_checkpoint(TRUNCATE)", ()).await?;
            while rows.next().await?.is_some() {}
            anyhow::Ok(())
        })?;
    std::fs::rename(&tmp, out)?;
    for suffix in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", tmp.display()));
    }
    say(&format!(
        "seeded {products} products, {vendors} vendors, 100 categories and {} pictures into {} in {:.1}s",
        pictures.len(),
        out.display(),
        started.elapsed().as_secs_f64()
    ));
    Ok(())
}

/// Removes database files and their WAL and shared-memory files, saying
/// which were there.
pub fn remove_databases(paths: &[std::path::PathBuf]) -> Result<()> {
    for path in paths {
        if path.exists() {
            say(&format!(
                "removing {} (it names the old catalog)",
                path.display()
            ));
        }
        for suffix in ["", "-wal", "-shm"] {
            match std::fs::remove_file(format!("{}{suffix}", path.display())) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e).with_context(|| format!("removing {}", path.display())),
            }
        }
    }
    Ok(())
}

/// Creates the identity database if needed and makes sure it has an admin
/// account (`admin` is granted nowhere else). A new admin's password is
/// generated and kept owner-only in `.edgeshop/secrets/admin_password`;
/// it is never printed, so it stays out of terminal scrollback and CI logs.
/// Run it while the origin is stopped: the origin owns this file.
pub fn seed_identity(path: &Path, admin_email: &str) -> Result<()> {
    let email = passwords::normalize_email(admin_email)
        .map_err(|e| anyhow::anyhow!("--admin-email: {e}"))?;
    std::fs::create_dir_all(path.parent().context("identity has a directory")?)?;
    let created = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(async {
            let (_db, conn) = identity_db::open_local(path).await?;
            identity_db::migrate(&conn).await?;
            let mut rows = conn
                .query(
                    "SELECT 1 FROM accounts a JOIN account_roles r ON r.account_id = a.id \
                     WHERE a.email = ?1 AND r.role = 'admin'",
                    [email.as_str()],
                )
                .await?;
            if rows.next().await?.is_some() {
                return anyhow::Ok(None);
            }
            let password = crate::up::secret("admin_password")?;
            let mut salt = [0u8; passwords::SALT_BYTES];
            use std::io::Read;
            std::fs::File::open("/dev/urandom")?.read_exact(&mut salt)?;
            let hash = passwords::hash(&password, salt)?;
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)?
                .as_secs() as i64;
            // One transaction: an admin without the role never exists.
            let tx = conn.transaction().await?;
            tx.execute(
                "INSERT INTO accounts (email, password_hash, kind, created_at, updated_at) \
                 VALUES (?1, ?2, 'shopper', ?3, ?3) \
                 ON CONFLICT (email) DO UPDATE SET password_hash = excluded.password_hash",
                libsql::params![email.as_str(), hash, now],
            )
            .await?;
            tx.execute(
                "INSERT OR IGNORE INTO account_roles (account_id, role, granted_at) \
                 SELECT id, 'admin', ?2 FROM accounts WHERE email = ?1",
                libsql::params![email.as_str(), now],
            )
            .await?;
            tx.commit().await?;
            let mut rows = conn.query("PRAGMA wal_checkpoint(TRUNCATE)", ()).await?;
            while rows.next().await?.is_some() {}
            anyhow::Ok(Some(()))
        })?;
    if created.is_some() {
        say(&format!(
            "admin account {email} created in {}; its password is in {} (owner-only)",
            path.display(),
            state_dir().join("secrets/admin_password").display()
        ));
    }
    Ok(())
}
