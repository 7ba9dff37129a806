//! sqld, the libSQL server Turso runs, for the tests on it: a server
//! over a data folder with JWT auth (a key of its own per server), which
//! a test can kill and start again on the same address.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct Sqld {
    /// Its HTTP address: Hrana at `/v2/pipeline`, replication (gRPC).
    pub url: String,
    binary: PathBuf,
    dir: PathBuf,
    listen: String,
    signer: tokens::Signer,
    child: Child,
}

impl Sqld {
    /// Starts sqld over `dir` (a new folder gets `seed`, a database file
    /// with its WAL folded in, as its database), trusting a fresh key.
    pub fn start(binary: &Path, dir: &Path, seed: Option<&Path>) -> Sqld {
        let data = dir.join("dbs/default/data");
        if let Some(seed) = seed.filter(|_| !data.exists()) {
            std::fs::create_dir_all(data.parent().unwrap()).unwrap();
            std::fs::copy(seed, &data).unwrap();
        }
        let mut seed_bytes = [0u8; 32];
        use std::io::Read;
        std::fs::File::open("/dev/urandom")
            .unwrap()
            .read_exact(&mut seed_bytes)
            .unwrap();
        let signer = tokens::Signer::from_seed("test", seed_bytes);
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join("key.pub"), signer.public_key()).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let listen = format!("127.0.0.1:{port}");
        let child = spawn(binary, dir, &listen);
        Sqld {
            url: format!("http://{listen}"),
            binary: binary.to_path_buf(),
            dir: dir.to_path_buf(),
            listen,
            signer,
            child,
        }
    }

    /// A token this server accepts, with `claims` (sqld's `a`: `ro` or
    /// `rw`, `exp`, ...).
    pub fn token(&self, claims: serde_json::Value) -> String {
        tokens::sign_jwt(&self.signer, &claims)
    }

    /// A read-write token.
    pub fn rw_token(&self) -> String {
        self.token(serde_json::json!({ "a": "rw" }))
    }

    /// A connection over Hrana with a read-write token.
    pub async fn connect(&self) -> libsql::Connection {
        libsql::Builder::new_remote(self.url.clone(), self.rw_token())
            .build()
            .await
            .unwrap()
            .connect()
            .unwrap()
    }

    /// Stops it, replaces its database with `seed` (a new history, as
    /// `cargo xtask seed --force` makes for `up --primary sqld`), and
    /// starts it again on the same address with the same key.
    pub fn reseed(&mut self, seed: &Path) {
        self.kill();
        std::fs::remove_dir_all(self.dir.join("dbs")).unwrap();
        let data = self.dir.join("dbs/default/data");
        std::fs::create_dir_all(data.parent().unwrap()).unwrap();
        std::fs::copy(seed, &data).unwrap();
        self.child = spawn(&self.binary, &self.dir, &self.listen);
    }

    /// SIGKILL: a crash.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts it again on the same address over the same folder.
    pub fn restart(&mut self) {
        self.kill();
        self.child = spawn(&self.binary, &self.dir, &self.listen);
    }
}

impl Drop for Sqld {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Runs sqld and waits (at most 30 s) until it says it listens.
fn spawn(binary: &Path, dir: &Path, listen: &str) -> Child {
    let mut child = Command::new(binary)
        .arg("--db-path")
        .arg(dir)
        .args(["--http-listen-addr", listen, "--no-welcome"])
        .arg("--auth-jwt-key-file")
        .arg(dir.join("key.pub"))
        .env_remove("SQLD_AUTH_JWT_KEY")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start sqld");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.contains("user HTTP connection on") {
                let _ = tx.send(());
            }
        }
    });
    if rx.recv_timeout(Duration::from_secs(30)).is_err() {
        let _ = child.kill();
        panic!("sqld did not start within 30 s");
    }
    child
}
