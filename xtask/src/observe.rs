//! `cargo xtask up --observe`: a real Prometheus scraping every process of
//! the platform, with the SLO rules and alerts of
//! `observability/prometheus/slo.rules.yml`.
//!
//! Prometheus is Debian's package, fetched with `apt-get download` and
//! unpacked into the tool cache (`dpkg-deb -x`), not installed: nothing
//! runs as a system service, and nothing needs root. Found as
//! `$EDGESHOP_PROMETHEUS` (the `prometheus` binary; `promtool` beside it)
//! or on `PATH` first.

use crate::up::Service;
use crate::{root, say};
use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// How often Prometheus scrapes and evaluates rules here: short, so a
/// developer sees a change within seconds.
const INTERVAL: &str = "5s";

pub struct Tools {
    pub prometheus: PathBuf,
    pub promtool: PathBuf,
}

/// The rules every deployment loads, and their unit tests.
pub fn rules() -> PathBuf {
    root().join("observability/prometheus/slo.rules.yml")
}

fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// Prometheus and promtool, fetching Debian's package when neither the
/// environment nor `PATH` has them.
pub fn tools() -> Result<Tools> {
    let given = std::env::var_os("EDGESHOP_PROMETHEUS")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .or_else(|| on_path("prometheus"));
    if let Some(prometheus) = given {
        let promtool = prometheus.with_file_name("promtool");
        if promtool.is_file() {
            return Ok(Tools {
                prometheus,
                promtool,
            });
        }
    }
    let version = candidate()?;
    let dir = crate::tool_cache().join(format!("deb-prometheus-{version}"));
    let tools = Tools {
        prometheus: dir.join("usr/bin/prometheus"),
        promtool: dir.join("usr/bin/promtool"),
    };
    if tools.prometheus.is_file() && tools.promtool.is_file() {
        say(&format!(
            "prometheus {version} is unpacked (up --observe, SLO rule tests)"
        ));
        return Ok(tools);
    }
    say(&format!(
        "fetching Debian's prometheus {version} and unpacking it into the tool cache"
    ));
    let download = dir.with_file_name(format!("deb-prometheus-{version}.download"));
    let _ = std::fs::remove_dir_all(&download);
    std::fs::create_dir_all(&download)?;
    let fetch = || {
        Command::new("apt-get")
            .args(["download", "-q", "prometheus"])
            .current_dir(&download)
            .status()
            .is_ok_and(|s| s.success())
    };
    if !fetch() {
        // The package lists may be missing on a fresh machine.
        let updated = Command::new("apt-get")
            .args(["update", "-q"])
            .status()
            .is_ok_and(|s| s.success());
        if !(updated && fetch()) {
            bail!(
                "apt-get download prometheus failed; install Debian's prometheus package \
                 or set EDGESHOP_PROMETHEUS to a prometheus binary with promtool beside it"
            );
        }
    }
    let deb = std::fs::read_dir(&download)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|e| e == "deb"))
        .context("apt-get download left no .deb")?;
    let ok = Command::new("dpkg-deb")
        .arg("-x")
        .arg(&deb)
        .arg(&dir)
        .status()
        .is_ok_and(|s| s.success());
    let _ = std::fs::remove_dir_all(&download);
    if !ok || !tools.prometheus.is_file() || !tools.promtool.is_file() {
        bail!("unpacking {} failed", deb.display());
    }
    Ok(tools)
}

/// The version Debian would install, which names the cache directory.
fn candidate() -> Result<String> {
    let out = Command::new("apt-cache")
        .args(["show", "--no-all-versions", "prometheus"])
        .output()
        .context("apt-cache (is this Debian?)")?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("Version: "))
        .map(|v| v.trim().replace(['/', ':'], "_"))
        .context("Debian knows no prometheus package here (apt-get update?)")
}

/// A scrape job: its name and `(instance, address)` targets.
pub struct Job {
    pub name: &'static str,
    pub targets: Vec<(String, String)>,
}

/// `prometheus.yml` for `jobs`, loading `rules`. Each target is named by
/// its role (`fra`, `origin`), not its port. Pure.
pub fn config(jobs: &[Job], rules: &Path) -> String {
    let mut out = format!(
        "# Written by cargo xtask up --observe; rewritten at every start.\n\
         global:\n  scrape_interval: {INTERVAL}\n  evaluation_interval: {INTERVAL}\n\
         rule_files:\n  - {}\n\
         scrape_configs:\n",
        yaml_string(&rules.display().to_string())
    );
    for job in jobs {
        out.push_str(&format!(
            "  - job_name: {}\n    static_configs:\n",
            job.name
        ));
        for (instance, address) in &job.targets {
            out.push_str(&format!(
                "      - targets: [{}]\n        labels: {{instance: {}}}\n",
                yaml_string(address),
                yaml_string(instance)
            ));
        }
    }
    out
}

/// A double-quoted YAML scalar.
fn yaml_string(s: &str) -> String {
    serde_json::to_string(s).expect("a string serialises")
}

/// Starts Prometheus over `dir` (config, data) on a free local port and
/// waits until it is ready.
pub fn start(tools: &Tools, jobs: &[Job], dir: &Path) -> Result<Service> {
    std::fs::create_dir_all(dir)?;
    let config_path = dir.join("prometheus.yml");
    std::fs::write(&config_path, config(jobs, &rules()))?;
    let check = Command::new(&tools.promtool)
        .args(["check", "config"])
        .arg(&config_path)
        .output()?;
    if !check.status.success() {
        bail!(
            "promtool rejected {}:\n{}{}",
            config_path.display(),
            String::from_utf8_lossy(&check.stdout),
            String::from_utf8_lossy(&check.stderr)
        );
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let mut cmd = Command::new(&tools.prometheus);
    cmd.arg(format!("--config.file={}", config_path.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg("--storage.tsdb.retention.time=2d")
        .arg(format!("--web.listen-address=127.0.0.1:{port}"));
    Service::start_polling(
        "prometheus",
        cmd,
        &url,
        "/-/ready",
        Some(&dir.join("prometheus.log")),
        Duration::from_secs(60),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_target_is_a_job_instance_named_by_its_role() {
        let text = config(
            &[
                Job {
                    name: "pop",
                    targets: vec![
                        ("fra".into(), "127.0.0.1:4001".into()),
                        ("sin".into(), "127.0.0.1:4003".into()),
                    ],
                },
                Job {
                    name: "origin",
                    targets: vec![("origin".into(), "127.0.0.1:5000".into())],
                },
            ],
            Path::new("/srv/edgeshop/slo.rules.yml"),
        );
        assert!(
            text.contains("rule_files:\n  - \"/srv/edgeshop/slo.rules.yml\"\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "  - job_name: pop\n    static_configs:\n      - targets: [\"127.0.0.1:4001\"]\n        labels: {instance: \"fra\"}\n"
            ),
            "{text}"
        );
        assert!(text.contains("  - job_name: origin\n"), "{text}");
        assert!(text.contains("scrape_interval: 5s"), "{text}");
    }
}
