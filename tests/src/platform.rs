//! The whole platform as `cargo xtask up --no-build` starts it (payment
//! simulator, origin, object store, PoPs, front door), for journeys that
//! need all of it, stopped with Ctrl-C when dropped.

use crate::{TempDir, binary};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Platform {
    pub topology: serde_json::Value,
    child: Child,
    log_path: std::path::PathBuf,
    // Dropped last: the processes write there until they stop.
    _state: TempDir,
}

impl Platform {
    /// Starts `xtask up --no-build` with `args` and waits until it has
    /// written its topology.
    pub async fn up(tag: &str, args: &[&str]) -> Platform {
        Platform::up_with_env(tag, args, &[]).await
    }

    /// [`Platform::up`], with `env` set for xtask and everything it starts.
    pub async fn up_with_env(tag: &str, args: &[&str], env: &[(&str, &str)]) -> Platform {
        let state = TempDir::new(tag);
        let log_path = state.0.join("xtask.log");
        let mut child = Command::new(binary("xtask"))
            .args(["up", "--no-build"])
            .args(args)
            .envs(env.iter().copied())
            .env("EDGESHOP_STATE_DIR", &state.0)
            // Its own process group: Ctrl-C reaches everything it started.
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log_path).unwrap())
            .spawn()
            .expect("start xtask up");
        let topology_path = state.0.join("topology.json");
        let started = Instant::now();
        while !topology_path.exists() {
            if started.elapsed() > Duration::from_secs(120) || child.try_wait().unwrap().is_some() {
                interrupt(child.id());
                panic!(
                    "xtask up did not come up:\n{}",
                    std::fs::read_to_string(&log_path).unwrap_or_default()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let topology =
            serde_json::from_str(&std::fs::read_to_string(&topology_path).unwrap()).unwrap();
        Platform {
            topology,
            child,
            log_path,
            _state: state,
        }
    }

    /// The URL of PoP `name` (`fra`, `iad`, `sin`).
    pub fn pop(&self, name: &str) -> String {
        self.topology["pops"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .and_then(|p| p["url"].as_str())
            .unwrap_or_else(|| panic!("no PoP {name} in {}", self.topology))
            .to_string()
    }

    /// Sends SIGTERM to `xtask up` alone (as `kill PID` or a service
    /// manager does) and waits up to `within` for it to exit; whether it did.
    pub async fn terminate(&mut self, within: Duration) -> bool {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let started = Instant::now();
        while started.elapsed() < within {
            if self.child.try_wait().ok().flatten().is_some() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }
}

/// Sends Ctrl-C (SIGINT) to process group `pgid`.
fn interrupt(pgid: u32) {
    let _ = Command::new("kill")
        .args(["-INT", "--", &format!("-{pgid}")])
        .status();
}

impl Drop for Platform {
    fn drop(&mut self) {
        interrupt(self.child.id());
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if self.child.try_wait().ok().flatten().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .status();
        let _ = self.child.wait();
    }
}
