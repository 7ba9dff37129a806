//! `cargo xtask`: set up, build, seed, run, test and benchmark edgeshop.
//!
//! Every command calls `setup` first, which is idempotent and says what it
//! does in one line each, so a fresh machine needs nothing but the README's
//! two commands.

mod bench;
mod browser;
mod build;
mod keys;
mod observe;
mod pictures;
mod platform;
mod private;
mod setup;
mod soak;
mod sqld;
mod up;
mod workers;

use anyhow::Result;
use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};

#[derive(Parser)]
#[command(name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Make the wasm toolchain and tools available (idempotent).
    Setup,
    /// Build every component (release, size-optimised) and the host binaries.
    Build {
        /// Only the wasm components (what spin.toml's build.command runs).
        #[arg(long)]
        components: bool,
        /// Only the Workers twin (what wrangler.toml's build.command runs).
        #[arg(long)]
        worker: bool,
    },
    /// Write the embedded-default catalog database.
    Seed {
        #[arg(long, default_value_t = 10_000)]
        products: u32,
        #[arg(long, default_value_t = 200)]
        vendors: u32,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Replace an existing database.
        #[arg(long)]
        force: bool,
        /// Where to write it (default: .edgeshop/data/catalog.db); the
        /// identity database goes next to it.
        #[arg(long)]
        out: Option<PathBuf>,
        /// The admin account made in the identity database if it has none.
        #[arg(long, default_value = "admin@edgeshop.test")]
        admin_email: String,
    },
    /// Build, seed if needed, start the origin and every PoP; Ctrl-C stops.
    Up {
        /// Skip setup and build (the binaries and components must exist).
        #[arg(long)]
        no_build: bool,
        /// Serve the PoPs with real Spin (found as `$EDGESHOP_SPIN`, `spin`
        /// on PATH, or the shared build) on the same spin.toml.
        #[arg(long)]
        spin: bool,
        /// Also run the Cloudflare Workers twin under `wrangler dev`, as a
        /// fourth edge location behind the front door (region `workers`).
        #[arg(long)]
        workers: bool,
        /// The primary of the replicated databases (catalog, identity):
        /// `origin` (ours, embedded in the origin) or `sqld` (the libSQL
        /// server, found as `$EDGESHOP_SQLD`, `sqld` on PATH, or the
        /// shared build).
        #[arg(long, value_enum, default_value = "origin")]
        primary: up::PrimaryKind,
        /// Also run Prometheus (Debian's, unpacked into the tool cache)
        /// scraping every process, with the SLO rules and alerts.
        #[arg(long)]
        observe: bool,
    },
    /// Token signing keys for the embedded default: status, generate, rotate.
    Keys {
        #[command(subcommand)]
        action: Option<KeysAction>,
    },
    /// The whole test suite: formatting, lints, unit, integration, end to
    /// end, and a three-minute soak run.
    Test,
    /// The whole platform under mixed browser-shaped traffic, with quiet
    /// spells past every timeout and restarts of the origin and a PoP;
    /// reports every answer a user would count as a failure.
    Soak {
        /// How long to run; from 10 minutes on, quiet spells also outlast
        /// the access token.
        #[arg(long, default_value_t = 3)]
        minutes: u64,
        /// Skip setup and build (the binaries and components must exist).
        #[arg(long)]
        no_build: bool,
    },
    /// Benchmarks; prints a table.
    Bench {
        /// Also run peer hosts (wasmtime serve) in the same run.
        #[arg(long)]
        peers: bool,
        /// Seconds per row.
        #[arg(long, default_value_t = 5)]
        seconds: u64,
        /// Concurrent connections.
        #[arg(long, default_value_t = 32)]
        connections: usize,
        /// Only the rows of these groups (comma-separated): catalog,
        /// native, hello, replication, checkout, media, browser, seeing
        /// (what metrics and tracing cost; also part of catalog).
        #[arg(long)]
        only: Option<String>,
        /// Whose requests every row sends (`edgeshop-clients` shapes).
        #[arg(long, value_enum, default_value_t = bench::BenchClient::Chromium)]
        client: bench::BenchClient,
        /// Another build of `edge-host` to run beside this one in the
        /// side-by-side rows (`seeing`): what a host change saves or costs.
        /// A `.toml` is a manifest instead (another build's `spin.toml`,
        /// copied aside with its `target/components`), run by this host:
        /// what a guest change saves or costs.
        #[arg(long)]
        against: Option<PathBuf>,
        /// Only the side-by-side rows (`seeing`) whose names contain this
        /// text (repeatable, e.g. `--row "1 in 10"`); the noise floor's
        /// row, and `--against`'s, always run.
        #[arg(long = "row")]
        rows: Vec<String>,
    },
    /// Where one bench row's time goes: `perf record` on the edge host
    /// under that row's load; writes target/bench/profile-SCENARIO.*.
    Profile {
        #[arg(value_enum)]
        scenario: bench::profile::Scenario,
        /// Seconds of load while sampled.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Concurrent connections.
        #[arg(long, default_value_t = 32)]
        connections: usize,
        /// Name guest functions: build the guests again keeping their
        /// names, and compile them in memory (slower to start).
        #[arg(long)]
        named: bool,
    },
}

#[derive(Subcommand)]
enum KeysAction {
    /// List the keys and their phases (the default).
    Status,
    /// Make a first signing key.
    Generate {
        /// Replace every key (signs everyone out).
        #[arg(long)]
        force: bool,
    },
    /// One rotation step: publish a new key, sign with it, retire the old.
    Rotate,
}

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

/// Local state: databases, secrets, caches, topology. `EDGESHOP_STATE_DIR`
/// moves it (the tests run `up` against a temporary one).
pub fn state_dir() -> PathBuf {
    match std::env::var_os("EDGESHOP_STATE_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => root().join(".edgeshop"),
    }
}

/// Tools installed from registries, outside the checkout so fresh clones
/// (CI) reuse them: `$XDG_CACHE_HOME/edgeshop`, else `~/.cache/edgeshop`.
/// Each tool lives in a directory named with its version.
pub fn tool_cache() -> PathBuf {
    if let Some(dir) = std::env::var_os("EDGESHOP_TOOL_CACHE") {
        return PathBuf::from(dir);
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| root().join("target"));
    base.join("edgeshop")
}

pub fn say(what: &str) {
    eprintln!("xtask: {what}");
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    // Everything below may write secrets or databases there.
    private::tighten(&state_dir())?;
    match cli.cmd {
        Cmd::Setup => {
            setup::run()?;
            setup::npm_tools()?;
            setup::pypi_tools()?;
            setup::spin()?;
            workers::tools()?;
            browser::tools()?;
        }
        Cmd::Build { components, worker } => {
            if worker {
                workers::build(&workers::tools()?)?;
                return Ok(());
            }
            let tc = setup::run()?;
            build::components(&tc)?;
            if !components {
                workers::build(&workers::tools()?)?;
                build::host()?;
            }
        }
        Cmd::Seed {
            products,
            vendors,
            seed,
            force,
            out,
            admin_email,
        } => {
            let out = out.unwrap_or_else(|| state_dir().join("data/catalog.db"));
            if force {
                // Accounts name the catalog's vendors and orders its
                // products: a new catalog starts them over too, or a new
                // vendor would collide with an old account's.
                build::remove_databases(&[
                    out.with_file_name("identity.db"),
                    out.with_file_name("orders.db"),
                ])?;
                // sqld's copies (`up --primary sqld`) start over from the
                // new files; its PoPs' replicas then bootstrap again.
                sqld::forget_copies(&state_dir())?;
            }
            build::seed(&out, products, vendors, seed, force)?;
            build::seed_identity(&out.with_file_name("identity.db"), &admin_email)?;
        }
        Cmd::Up {
            no_build,
            spin,
            workers,
            primary,
            observe,
        } => up::run(no_build, spin, workers, primary, observe)?,
        Cmd::Keys { action } => match action.unwrap_or(KeysAction::Status) {
            KeysAction::Status => keys::status()?,
            KeysAction::Generate { force } => keys::generate(force)?,
            KeysAction::Rotate => keys::rotate()?,
        },
        Cmd::Test => test()?,
        Cmd::Soak { minutes, no_build } => {
            if !no_build {
                let tc = setup::run()?;
                build::components(&tc)?;
                build::host()?;
            }
            soak::run(minutes)?;
        }
        Cmd::Bench {
            peers,
            seconds,
            connections,
            only,
            client,
            against,
            rows,
        } => bench::run(
            peers,
            seconds,
            connections,
            only.as_deref(),
            client,
            bench::SideBySide {
                against: against.as_deref(),
                rows: &rows,
            },
        )?,
        Cmd::Profile {
            scenario,
            seconds,
            connections,
            named,
        } => bench::profile::run(scenario, seconds, connections, named)?,
    }
    Ok(())
}

fn test() -> Result<()> {
    let tc = setup::run()?;
    let npm = setup::npm_tools()?;
    let python = setup::pypi_tools()?;
    let spin = setup::spin()?;
    let sqld = setup::sqld()?;
    if sqld.is_none() {
        say(
            "sqld: not found (no EDGESHOP_SQLD, no sqld on PATH, no shared/tools/sqld/); the tests on sqld will be skipped",
        );
    }
    let workers = workers::tools()?;
    let browser = browser::tools()?;
    let prometheus = observe::tools()?;
    build::components(&tc)?;
    workers::build(&workers)?;
    build::host()?;
    say("checking formatting (cargo fmt --check)");
    build::cargo(&["fmt", "--all", "--", "--check"])?;
    say("linting host crates (cargo clippy --all-targets -D warnings)");
    build::cargo(&[
        "clippy",
        "--release",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ])?;
    say("linting guest crates for wasm32-wasip2");
    build::guest_clippy(&tc)?;
    say("linting the worker crate for wasm32-unknown-unknown");
    workers::clippy()?;
    say("running unit, integration and end-to-end tests (release profile, shared with the build)");
    // The end-to-end tests find the npm oracles through the environment.
    let spin = spin.map(|p| p.into_os_string()).unwrap_or_default();
    let sqld = sqld.map(|p| p.into_os_string()).unwrap_or_default();
    let (passed, failed) = build::cargo_test(
        &["test", "--release", "--no-fail-fast"],
        &[
            ("EDGESHOP_NPM_DIR", npm.as_os_str()),
            ("EDGESHOP_ORACLE_PYTHON", python.as_os_str()),
            // Empty when there is no Spin here: its tests say they skipped.
            ("EDGESHOP_SPIN_BIN", spin.as_os_str()),
            // Likewise sqld, the primary of the walk on `--primary sqld`.
            ("EDGESHOP_SQLD_BIN", sqld.as_os_str()),
            // The Workers suite runs the built Worker under wrangler dev.
            ("EDGESHOP_WRANGLER", workers.wrangler.as_os_str()),
            // The storefront's journeys drive Chromium over WebDriver.
            ("EDGESHOP_CHROMIUM", browser.chromium.as_os_str()),
            ("EDGESHOP_CHROMEDRIVER", browser.chromedriver.as_os_str()),
            ("EDGESHOP_AXE", browser.axe.as_os_str()),
            // `up --observe` and the SLO rules' promtool tests.
            ("EDGESHOP_PROMETHEUS", prometheus.prometheus.as_os_str()),
        ],
    )?;
    // Real time with real clients: quiet spells and restarts under
    // browser-shaped traffic (the short form; `cargo xtask soak --minutes
    // 30` is the long one).
    say("soak: three minutes of browser-shaped traffic with quiet spells and restarts");
    let (passed, failed) = match soak::run(3) {
        Ok(()) => (passed + 1, failed),
        Err(e) => {
            eprintln!("soak run failed: {e:#}");
            (passed, failed + 1)
        }
    };
    // One closing line for the whole suite, whatever cargo printed last.
    println!("summary: {passed} passed, {failed} failed");
    if failed > 0 || passed == 0 {
        anyhow::bail!("the test suite did not pass");
    }
    Ok(())
}
