//! `cargo xtask profile SCENARIO`: where one bench row's time goes.
//!
//! Runs the row's load against an edge host started with `--perf-map`
//! (so guest functions have names) while `perf record` samples it with
//! DWARF call graphs, then writes `perf report`'s text summary next to the
//! data. With `inferno` installed (`cargo install inferno`) it also draws
//! the flame graph. The pictures are not committed; this command makes
//! them.

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

pub fn run(scenario: Scenario, seconds: u64, connections: usize) -> Result<()> {
    let _ = CLIENT.set(BenchClient::Chromium);
    if Command::new("perf").arg("--version").output().is_err() {
        bail!("perf is not installed; on Debian: apt-get install linux-perf");
    }
    let catalog = prepare()?;
    let (mut cmd, paths) = host(scenario, &catalog)?;
    // A host's first start after a build compiles every component, which
    // would land in the samples; the second start loads them from the
    // compile cache.
    warm_compile_cache(host(scenario, &catalog)?.0)?;
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
                "perf script -i {:?} | inferno-collapse-perf | inferno-flamegraph > {:?}",
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
