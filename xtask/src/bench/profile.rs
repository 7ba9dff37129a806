//! `cargo xtask profile SCENARIO`: where one bench row's time goes.
//!
//! Runs the row's load against an edge host started with `--perf-map`
//! (so guest functions have names) while `perf record` samples it with
//! DWARF call graphs, then writes `perf report`'s text summary next to the
//! data. With `inferno` installed (`cargo install inferno`) it also draws
//! the flame graph. The pictures are not committed; this command makes
//! them.
//!
//! Guest functions show as `wasm[N]::function[M]` unless `--named`: the
//! wasm profile strips the guests' function names, and perf names code it
//! finds in a file (the host's compile cache) by that file's symbols, not
//! by the perf map. `--named` builds every guest again keeping its names
//! (`target/bench/named/`), points a copy of the scenario's manifest at
//! those builds, and compiles them in memory, so the perf map names them.

use super::{
    BenchClient, CLIENT, bench_host, load_runtime, measure_with, prepare, product_paths,
    unreached_limits, warm_compile_cache,
};
use crate::up::{Catalog, Service, edge_host_command};
use crate::{root, say};
use anyhow::{Context, Result, bail};
use std::process::{Command, Stdio};

/// What can be profiled: a bench row's request against its host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    /// The bare hello component.
    Hello,
    /// Hello behind one pass-through middleware.
    Layer,
    /// Hello behind the rate limiter.
    Limited,
    /// A product page from the cache, through the shipped chain.
    Hit,
    /// A listing from the cache, through the shipped chain.
    Listing,
    /// A product page from the cache, signed in with one token.
    SignedIn,
}

pub fn run(scenario: Scenario, seconds: u64, connections: usize, named: bool) -> Result<()> {
    let _ = CLIENT.set(BenchClient::Chromium);
    if Command::new("perf").arg("--version").output().is_err() {
        bail!("perf is not installed; on Debian: apt-get install linux-perf");
    }
    let catalog = prepare()?;
    let (mut cmd, paths) = host(scenario, &catalog)?;
    if named {
        let dir = crate::build::named_components(&crate::setup::run()?)?;
        // Compiled before it listens, so outside the samples.
        cmd = with_named_guests(&cmd, &dir)?;
    } else {
        // A host's first start after a build compiles every component,
        // which would land in the samples; the second start loads them
        // from the compile cache.
        warm_compile_cache(host(scenario, &catalog)?.0)?;
    }
    cmd.arg("--perf-map");
    let host = Service::start("edge-host", cmd)?;
    let out = root().join("target/bench");
    std::fs::create_dir_all(&out)?;
    let name = format!("{scenario:?}").to_ascii_lowercase();
    let data = out.join(format!("profile-{name}.data"));
    let mut perf = Command::new("perf")
        .args(["record", "-F", "499", "--call-graph", "dwarf,16384", "-o"])
        .arg(&data)
        .args(["-p", &host.pid().to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting perf record")?;
    let rt = load_runtime()?;
    let headers = if scenario == Scenario::SignedIn {
        let token = crate::keys::bench_tokens(1)?.remove(0);
        vec![vec![(
            "authorization".to_string(),
            format!("Bearer {token}"),
        )]]
    } else {
        Vec::new()
    };
    let row = measure_with(
        &rt,
        &name,
        &host.url,
        &paths,
        &headers,
        seconds,
        connections,
    )?;
    // perf writes its data when interrupted.
    Command::new("kill")
        .args(["-INT", &perf.id().to_string()])
        .status()?;
    perf.wait()?;
    drop(host);
    say(&format!(
        "profile: {} requests in {:.1}s while sampled",
        row.requests,
        row.elapsed.as_secs_f64()
    ));
    let report = Command::new("perf")
        .args([
            "report",
            "--stdio",
            "--no-children",
            "--percent-limit",
            "0.5",
            // Without it perf asks addr2line for every inlined frame of
            // every DWARF stack: tens of minutes.
            "--no-inline",
        ])
        .args(["--sort", "dso,symbol", "-g", "none", "-i"])
        .arg(&data)
        .output()?;
    let text = out.join(format!("profile-{name}.txt"));
    std::fs::write(&text, &report.stdout)?;
    say(&format!("profile: wrote {}", text.display()));
    let have_inferno = Command::new("inferno-flamegraph")
        .arg("--help")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if have_inferno {
        let svg = out.join(format!("profile-{name}.svg"));
        let status = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "perf script --no-inline -i {:?} | inferno-collapse-perf | inferno-flamegraph > {:?}",
                data, svg
            ))
            .status()?;
        if status.success() {
            say(&format!("profile: wrote {}", svg.display()));
        }
    } else {
        say("profile: `cargo install inferno` for a flame graph as well");
    }
    Ok(())
}

/// `host` (an edge host command) on a copy of its manifest whose sources
/// are the builds in `named` that have names there, written into `named`,
/// and with no compile cache.
fn with_named_guests(host: &Command, named: &std::path::Path) -> Result<Command> {
    let mut named_host = super::in_the_same_place(host.get_program(), host);
    let base = host
        .get_current_dir()
        .unwrap_or(root().as_path())
        .to_path_buf();
    let mut args = host.get_args();
    while let Some(arg) = args.next() {
        match arg.to_str() {
            Some("--cache-dir") => {
                args.next();
            }
            Some("--manifest") => {
                let manifest = base.join(args.next().context("--manifest without a path")?);
                named_host
                    .arg("--manifest")
                    .arg(named_manifest(&manifest, named)?);
            }
            _ => {
                named_host.arg(arg);
            }
        }
    }
    Ok(named_host)
}

/// A copy of `manifest` in `named`, each component's source a build
/// there when there is one of its file name, else its own, made absolute.
fn named_manifest(
    manifest: &std::path::Path,
    named: &std::path::Path,
) -> Result<std::path::PathBuf> {
    let text = std::fs::read_to_string(manifest)
        .with_context(|| format!("reading {}", manifest.display()))?;
    let mut doc: toml::Table = toml::from_str(&text).context("the manifest")?;
    let dir = manifest.parent().context("the manifest's directory")?;
    if let Some(components) = doc.get_mut("component").and_then(|c| c.as_table_mut()) {
        for (_, c) in components.iter_mut() {
            if let Some(source) = c.get_mut("source")
                && let Some(rel) = source.as_str()
            {
                let own = dir.join(rel);
                let build = own.file_name().map(|f| named.join(f));
                let chosen = build.filter(|b| b.is_file()).unwrap_or(own);
                *source = toml::Value::String(chosen.display().to_string());
            }
        }
    }
    let name = manifest.file_name().context("the manifest's file name")?;
    let copy = named.join(name);
    std::fs::write(&copy, toml::to_string(&doc)?)?;
    Ok(copy)
}

/// The host serving `scenario`, and the paths its load requests.
fn host(scenario: Scenario, catalog: &std::path::Path) -> Result<(Command, Vec<String>)> {
    Ok(match scenario {
        Scenario::Hello | Scenario::Layer | Scenario::Limited => (
            edge_host_command(
                "profile",
                "127.0.0.1:0",
                Catalog::File(catalog),
                &root().join("benches/hello.toml"),
            )?,
            vec![
                match scenario {
                    Scenario::Layer => "/layer/",
                    Scenario::Limited => "/limited/",
                    _ => "/",
                }
                .to_string(),
            ],
        ),
        Scenario::Hit | Scenario::Listing | Scenario::SignedIn => (
            bench_host(catalog, &root().join("spin.toml"), &unreached_limits()?)?,
            if scenario != Scenario::Listing {
                product_paths()
            } else {
                vec!["/api/v1/products?limit=20".to_string()]
            },
        ),
    })
}
