//! Real Spin as a bench peer: `spin up` on a manifest, unmodified, with a
//! runtime config that opens the bench databases as local files, or the
//! origin's over Hrana (as `cargo xtask up --spin` does).

use crate::{root, say, setup, state_dir};
use anyhow::{Context, Result, bail};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where a Spin app's `catalog` and `identity` databases are.
pub enum SpinData<'a> {
    /// Copies of the files beside this catalog.
    Files(&'a Path),
    /// The origin's, over Hrana, with this token.
    Origin { url: &'a str, token: &'a str },
}

/// A running `spin up`; its process group goes when this does.
pub struct SpinProcess {
    pub url: String,
    child: Child,
}

impl SpinProcess {
    /// `spin up --from manifest`, reading `data`, with
    /// `ratelimit_policies` set to `limits` when given (else the
    /// manifest's own).
    /// `None` when no Spin is found (the rows are left out, and said so).
    pub fn start(
        name: &str,
        manifest: &Path,
        data: SpinData<'_>,
        limits: Option<&str>,
    ) -> Result<Option<SpinProcess>> {
        let Some(spin) = setup::spin()? else {
            say(
                "bench: no Spin found (EDGESHOP_SPIN, PATH or the shared build); its rows are left out",
            );
            return Ok(None);
        };
        let dir = state_dir().join("bench/spin").join(name);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        let mut text = String::new();
        for label in ["catalog", "identity"] {
            text.push_str(&match data {
                SpinData::Files(catalog) => {
                    let db = format!("{label}.db");
                    std::fs::copy(catalog.with_file_name(&db), dir.join(&db))
                        .with_context(|| format!("copying {db} for Spin"))?;
                    format!(
                        "[sqlite_database.{label}]\ntype = \"spin\"\npath = {:?}\n",
                        dir.join(&db)
                    )
                }
                SpinData::Origin { url, token } => format!(
                    "[sqlite_database.{label}]\ntype = \"libsql\"\nurl = \"{url}/db/{label}\"\n\
                     token = \"{token}\"\n"
                ),
            });
        }
        text.push_str(&format!(
            "[key_value_store.ratelimit]\ntype = \"spin\"\npath = {:?}\n\
             [key_value_store.cache]\ntype = \"spin\"\npath = {:?}\n",
            dir.join("ratelimit.db"),
            dir.join("cache.db"),
        ));
        let config = dir.join("runtime-config.toml");
        crate::private::write(&config, text.as_bytes())?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let mut cmd = Command::new(spin);
        // `spin up` runs its trigger as a child: one group, killed together.
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        cmd.current_dir(root())
            .arg("up")
            .arg("--from")
            .arg(manifest)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .arg("--runtime-config-file")
            .arg(&config)
            .arg("--state-dir")
            .arg(dir.join("state"))
            .env(
                "SPIN_VARIABLE_CURSOR_SECRET",
                crate::up::secret("cursor_secret")?,
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // The signing key and JWKS our host reads from its variables file.
        let vars: toml::Table = toml::from_str(&std::fs::read_to_string(crate::keys::ensure()?)?)?;
        for (k, v) in vars {
            if let Some(v) = v.as_str() {
                cmd.env(format!("SPIN_VARIABLE_{}", k.to_ascii_uppercase()), v);
            }
        }
        if let Some(limits) = limits {
            cmd.env("SPIN_VARIABLE_RATELIMIT_POLICIES", limits);
        }
        let mut child = cmd.spawn().context("starting spin up")?;
        let (tx, rx) = std::sync::mpsc::channel();
        for pipe in [
            Box::new(child.stdout.take().context("stdout")?) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().context("stderr")?),
        ] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    let _ = tx.send(line);
                }
            });
        }
        let mut process = SpinProcess {
            url: format!("http://127.0.0.1:{port}"),
            child,
        };
        // Spin compiles every component before it serves.
        let deadline = Instant::now() + Duration::from_secs(300);
        let mut seen = Vec::new();
        loop {
            match rx.recv_timeout(Duration::from_millis(200)) {
                Ok(line) if line.contains("Serving http://") => break,
                Ok(line) => seen.push(line),
                Err(_)
                    if Instant::now() > deadline
                        || matches!(process.child.try_wait(), Ok(Some(_))) =>
                {
                    bail!("spin up did not serve:\n{}", seen.join("\n"));
                }
                Err(_) => {}
            }
        }
        // Keep draining its output so it never blocks on a full pipe.
        std::thread::spawn(move || while rx.recv().is_ok() {});
        process.url = format!("http://127.0.0.1:{port}");
        Ok(Some(process))
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

/// The resident memory of `spin up` (`pid`) and its trigger process, in MB.
pub fn group_rss_mb(pid: u32) -> f64 {
    let children =
        std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
    std::iter::once(pid)
        .chain(children.split_whitespace().filter_map(|c| c.parse().ok()))
        .filter_map(super::rss_mb)
        .sum()
}

impl Drop for SpinProcess {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .status();
        let _ = self.child.wait();
    }
}
