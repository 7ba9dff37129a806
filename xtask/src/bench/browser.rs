//! The storefront in Chromium: Largest Contentful Paint and time to first
//! byte of a product page and a listing page at the nearest and the
//! farthest PoP of `cargo xtask up` (its simulated distances to the
//! origin), each a first visit: a fresh browser profile per sample, the
//! page already in the PoP's cache (the first visit warms it and is not
//! counted).
//!
//! What this shows: pages come from the PoP's replica and cache, so the
//! far PoP's figures match the near one's.

use crate::browser::Tools;
use crate::{say, state_dir};
use anyhow::{Context, Result, bail};
use fantoccini::ClientBuilder;
use serde_json::json;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Paints {
    pub name: String,
    /// (LCP, TTFB) in ms, one per visit.
    pub samples: Vec<(f64, f64)>,
}

/// Interrupts (then kills) a process group when dropped.
struct Group(Child);

impl Drop for Group {
    fn drop(&mut self) {
        let pgid = self.0.id().to_string();
        let _ = Command::new("kill")
            .args(["-INT", "--", &format!("-{pgid}")])
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if self.0.try_wait().ok().flatten().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{pgid}")])
            .status();
        let _ = self.0.wait();
    }
}

fn group(mut cmd: Command) -> Result<Group> {
    Ok(Group(cmd.process_group(0).stdout(Stdio::null()).spawn()?))
}

pub fn run(rt: &tokio::runtime::Runtime, tools: &Tools, samples: usize) -> Result<Vec<Paints>> {
    let dir = state_dir().join("bench/browser");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    // This very binary, through the kernel's link: the host build above
    // (`cargo build --release --bins`, the whole workspace) relinks
    // target/release/xtask with the workspace's features, so the path
    // `current_exe` names is gone by now.
    let mut up = Command::new("/proc/self/exe");
    up.args(["up", "--no-build"])
        .env("EDGESHOP_STATE_DIR", &dir)
        .stderr(std::fs::File::create(dir.join("up.log"))?);
    let _platform = group(up)?;
    let topology = dir.join("topology.json");
    let started = Instant::now();
    while !topology.exists() {
        if started.elapsed() > Duration::from_secs(180) {
            bail!(
                "xtask up did not come up; see {}",
                dir.join("up.log").display()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let topology: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&topology)?)?;
    let mut pops: Vec<(String, u64, String)> = topology["pops"]
        .as_array()
        .context("topology without PoPs")?
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap_or_default().to_string(),
                p["origin_delay_ms"].as_u64().unwrap_or_default(),
                p["url"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    pops.sort_by_key(|p| p.1);
    let (Some(near), Some(far)) = (pops.first().cloned(), pops.last().cloned()) else {
        bail!("no PoPs in the topology");
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let mut driver = Command::new(&tools.chromedriver);
    driver.arg(format!("--port={port}")).stderr(Stdio::null());
    let _driver = group(driver)?;
    let webdriver = format!("http://127.0.0.1:{port}");
    let mut out = Vec::new();
    for (name, delay, url) in [near, far] {
        for (page, path) in [("product page", "/p/4242"), ("listing page", "/c/kitchen")] {
            say(&format!("bench: {page} in Chromium at {name}"));
            let mut visits = Vec::new();
            // The first visit warms the PoP and is not counted.
            for _ in 0..=samples {
                visits.push(rt.block_on(visit(
                    &webdriver,
                    &tools.chromium,
                    &format!("{url}{path}"),
                ))?);
            }
            visits.remove(0);
            out.push(Paints {
                name: format!("{page} at {name} (+{delay} ms to the origin)"),
                samples: visits,
            });
        }
    }
    Ok(out)
}

/// One first visit in a fresh profile: (LCP, TTFB) in ms.
async fn visit(webdriver: &str, chromium: &std::path::Path, url: &str) -> Result<(f64, f64)> {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": chromium,
            "args": ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     "--disable-gpu", "--window-size=1280,900"],
        }),
    );
    // chromedriver may still be starting on the first visit.
    let started = Instant::now();
    let client = loop {
        let conn = hyper_util::client::legacy::connect::HttpConnector::new();
        match ClientBuilder::new(conn)
            .capabilities(caps.clone())
            .connect(webdriver)
            .await
        {
            Ok(c) => break c,
            Err(e) if started.elapsed() > Duration::from_secs(30) => {
                return Err(e).context("a Chromium session");
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    };
    let result = async {
        client.goto(url).await?;
        let v = client
            .execute_async(edgeshop_clients::PAINT_TIMINGS_SCRIPT, vec![])
            .await?;
        anyhow::Ok((
            v[0].as_f64().unwrap_or(f64::NAN),
            v[1].as_f64().unwrap_or(f64::NAN),
        ))
    }
    .await;
    let _ = client.close().await;
    result
}

/// The table for `latest.md`: median and worst of each.
pub fn print(rows: &[Paints]) -> String {
    let mut t = String::from(
        "\n| Chromium, first visit (fresh profile), page in the PoP cache | visits | LCP median ms | LCP worst ms | TTFB median ms | TTFB worst ms |\n|---|---:|---:|---:|---:|---:|\n",
    );
    for r in rows {
        let mut lcp: Vec<f64> = r.samples.iter().map(|s| s.0).collect();
        let mut ttfb: Vec<f64> = r.samples.iter().map(|s| s.1).collect();
        lcp.sort_by(f64::total_cmp);
        ttfb.sort_by(f64::total_cmp);
        let mid = |v: &[f64]| v.get(v.len() / 2).copied().unwrap_or(f64::NAN);
        let worst = |v: &[f64]| v.last().copied().unwrap_or(f64::NAN);
        t.push_str(&format!(
            "| {} | {} | {:.0} | {:.0} | {:.1} | {:.1} |\n",
            r.name,
            r.samples.len(),
            mid(&lcp),
            worst(&lcp),
            mid(&ttfb),
            worst(&ttfb)
        ));
    }
    t
}
