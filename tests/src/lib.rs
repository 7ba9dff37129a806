//! Harness for the end-to-end tests: the real `edge-host` binary on
//! `127.0.0.1:0`, the real components, a real libSQL catalog.
//!
//! `cargo xtask test` builds the binaries and components first; run alone,
//! `cargo test` fails with a message saying so.

pub mod browser;
pub mod metrics;
pub mod openapi;
pub mod platform;
pub mod sqld;
mod workers;

pub use workers::{
    WorkerApp, Wrangler, start_worker, start_worker_reading, wrangler_binary, wrangler_or_skip,
};

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace")
        .to_path_buf()
}

pub fn binary(name: &str) -> PathBuf {
    let p = root().join("target/release").join(name);
    assert!(
        p.exists(),
        "{} is missing: run `cargo xtask build` (or `cargo xtask test`)",
        p.display()
    );
    p
}

pub fn component(name: &str) -> PathBuf {
    let p = root()
        .join("target/components")
        .join(format!("{name}.wasm"));
    assert!(
        p.exists(),
        "{} is missing: run `cargo xtask build`",
        p.display()
    );
    p
}

/// A directory removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let p = std::env::temp_dir().join(format!(
            "edgeshop-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("temp dir");
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The seed every end-to-end test shares: small enough to write in well
/// under a second, big enough for multi-page listings.
pub const PRODUCTS: u32 = 2_000;
pub const VENDORS: u32 = 40;
pub const CURSOR_SECRET: &str = "end-to-end-test-cursor-secret-0123";

/// The token signing key test PoPs use, as `<kid>:<seed>`.
pub fn signing_secret() -> String {
    tokens::Signer::from_seed("test-1", [0x42; 32]).to_secret()
}

/// A JWKS of the public halves of `secrets`.
pub fn jwks_of(secrets: &[&str]) -> String {
    let keys: Vec<serde_json::Value> = secrets
        .iter()
        .map(|s| {
            tokens::Signer::from_secret(s)
                .expect("a signing secret")
                .public_jwk()
        })
        .collect();
    serde_json::json!({ "keys": keys }).to_string()
}

/// An access token for `account` signed with [`signing_secret`], valid for
/// ten minutes, in its live session ([`test_session`]; `account` must be
/// one of [`TEST_ACCOUNTS`] for a gate to accept it).
pub fn access_token(account: i64, roles: &[&str]) -> String {
    token_for(&account.to_string(), &test_session(account), roles)
}

/// A token signed with [`signing_secret`] (the PoPs' key in tests) for
/// `sub` in session `sid`, valid for ten minutes: whatever the caller
/// claims, as a holder of the key could mint it.
pub fn token_for(sub: &str, sid: &str, roles: &[&str]) -> String {
    let signer = tokens::Signer::from_secret(&signing_secret()).expect("a signing secret");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    tokens::sign(
        &signer,
        &tokens::Claims {
            iss: "edgeshop".into(),
            aud: "edgeshop-api".into(),
            sub: sub.to_string(),
            iat: now,
            exp: now + 600,
            nbf: None,
            jti: format!("test-{sub}-{sid}-{now}"),
            sid: sid.to_string(),
            roles: roles.iter().map(|r| r.to_string()).collect(),
        },
    )
}

/// The variables `spin.toml` requires, for a test PoP, with rate limits
/// no test reaches (`tests/fixtures/generous-limits.toml`).
pub fn app_env() -> Vec<(&'static str, String)> {
    let mut env = app_env_shipped_limits();
    env.push((
        "SPIN_VARIABLE_RATELIMIT_POLICIES",
        std::fs::read_to_string(root().join("tests/fixtures/generous-limits.toml"))
            .expect("tests/fixtures/generous-limits.toml"),
    ));
    env
}

/// The variables `spin.toml` requires, with the shipped rate limits.
pub fn app_env_shipped_limits() -> Vec<(&'static str, String)> {
    vec![
        ("SPIN_VARIABLE_CURSOR_SECRET", CURSOR_SECRET.to_string()),
        ("SPIN_VARIABLE_TOKEN_SIGNING_KEY", signing_secret()),
        ("SPIN_VARIABLE_TOKEN_JWKS", jwks_of(&[&signing_secret()])),
    ]
}

/// Accounts [`access_token`] may name: each has a live session in
/// [`empty_identity`] and in an origin started by [`start_origin_on_seed`].
pub const TEST_ACCOUNTS: std::ops::RangeInclusive<i64> = 1..=1_100;

/// The session [`access_token`] names for `account`.
pub fn test_session(account: i64) -> String {
    format!("test-session-{account:010}")
}

/// A migrated identity database file, made once per test binary, with no
/// accounts and a live session for each of [`TEST_ACCOUNTS`] (the gates
/// accept a token only for a live session of its account).
pub fn empty_identity() -> &'static Path {
    static DB: OnceLock<(TempDir, PathBuf)> = OnceLock::new();
    &DB.get_or_init(|| {
        let dir = TempDir::new("identity");
        let path = dir.0.join("identity.db");
        let p = path.clone();
        std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(async {
                    let (_db, conn) = identity_db::open_local(&p).await.unwrap();
                    identity_db::migrate(&conn).await.unwrap();
                    // Sessions of accounts that do not exist: tests name
                    // accounts by number and need no rows for them.
                    conn.execute("PRAGMA foreign_keys = OFF", ()).await.unwrap();
                    let tx = conn.transaction().await.unwrap();
                    for account in TEST_ACCOUNTS {
                        tx.execute(
                            "INSERT INTO sessions (id, account_id, created_at, expires_at) \
                             VALUES (?1, ?2, unixepoch(), unixepoch() + 86400)",
                            libsql::params![test_session(account), account],
                        )
                        .await
                        .unwrap();
                    }
                    tx.commit().await.unwrap();
                    // Fold the WAL in: callers copy the file alone.
                    let mut rows = conn
                        .query("PRAGMA wal_checkpoint(TRUNCATE)", ())
                        .await
                        .unwrap();
                    while rows.next().await.unwrap().is_some() {}
                });
        })
        .join()
        .expect("creating the test identity database");
        (dir, path)
    })
    .1
}

/// A seeded catalog database file, written once per test binary.
pub fn seeded_catalog() -> &'static Path {
    static DB: OnceLock<(TempDir, PathBuf)> = OnceLock::new();
    &DB.get_or_init(|| {
        let dir = TempDir::new("catalog");
        let path = dir.0.join("catalog.db");
        // A thread of its own: callers may already be inside a runtime.
        let seed_path = path.clone();
        std::thread::spawn(move || {
            let path = seed_path;
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(async {
                    let (_db, conn) = catalog_db::open_local(&path).await.unwrap();
                    catalog_db::migrate(&conn).await.unwrap();
                    let cfg = catalog_db::SeedConfig {
                        products: PRODUCTS,
                        vendors: VENDORS,
                        seed: 1,
                        ..Default::default()
                    };
                    catalog_db::seed(&conn, &cfg).await.unwrap();
                    // Fold the WAL in, as `cargo xtask seed` does.
                    let mut rows = conn
                        .query("PRAGMA wal_checkpoint(TRUNCATE)", ())
                        .await
                        .unwrap();
                    while rows.next().await.unwrap().is_some() {}
                });
        })
        .join()
        .expect("seeding the test catalog");
        (dir, path)
    })
    .1
}

/// A running edge-host; stopped (SIGKILL) when dropped.
pub struct Host {
    pub url: String,
    pub child: Child,
    pub stderr: std::sync::Arc<std::sync::Mutex<String>>,
    /// Real Spin serves it (see [`start_spin`]), not one of our servers:
    /// a case that differs on purpose between the two asks this.
    pub spin: bool,
    /// The Workers twin under workerd serves it ([`start_worker`]).
    pub workers: bool,
}

impl Host {
    pub fn start(manifest: &Path, args: &[&str], env: &[(&str, &str)]) -> Host {
        Self::try_start(manifest, args, env).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Starts the host, or returns what it printed if it exits instead.
    pub fn try_start(manifest: &Path, args: &[&str], env: &[(&str, &str)]) -> Result<Host, String> {
        let mut cmd = Command::new(binary("edge-host"));
        cmd.arg("--manifest")
            .arg(manifest)
            .args(["--listen", "127.0.0.1:0", "--pop", "test"])
            // Composed chains compile once for the whole suite.
            .arg("--cache-dir")
            .arg(root().join("target/wasmtime-cache"))
            // The suite's own traffic comes from 127.0.0.1 and stands for
            // many shoppers behind a front door: it is bounded only in
            // total. Hostile tests attack from other loopback addresses,
            // which get the shipped per-client bound.
            .args(["--trusted-proxy", "127.0.0.1"])
            .args(args)
            .env_remove("SPIN_VARIABLE_CURSOR_SECRET")
            .env_remove("SPIN_VARIABLE_TOKEN_SIGNING_KEY")
            .env_remove("SPIN_VARIABLE_TOKEN_JWKS");
        for (k, v) in env {
            cmd.env(k, v);
        }
        Host::spawn(cmd)
    }

    /// Runs any of our servers and waits for its `listening on` line.
    pub fn spawn(mut cmd: Command) -> Result<Host, String> {
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn");
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        {
            let log = log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    let mut l = log.lock().unwrap();
                    l.push_str(&line);
                    l.push('\n');
                }
            });
        }
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.split("listening on ").nth(1) {
                    let _ = tx.send(url.trim().to_string());
                }
            }
        });
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(url) => Ok(Host {
                url,
                child,
                stderr: log,
                spin: false,
                workers: false,
            }),
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                std::thread::sleep(Duration::from_millis(100));
                let log = log.lock().unwrap().clone();
                Err(log)
            }
        }
    }

    /// The app on local files: the seeded catalog and an empty identity
    /// database (shared by the test binary; the catalog is only read).
    pub fn catalog() -> Host {
        Host::on_files(&app_env())
    }

    /// `spin.toml` on the seeded files with the variables `env`.
    pub fn on_files(env: &[(&'static str, String)]) -> Host {
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        Host::start(
            &root().join("spin.toml"),
            &[
                "--sqlite",
                &format!("catalog={}", seeded_catalog().display()),
                "--sqlite",
                &format!("identity={}", empty_identity().display()),
            ],
            &env,
        )
    }

    /// The coding a browser (`gzip, deflate, br, zstd`) gets here: br from
    /// a PoP's cache, which ranks br first; gzip on Workers, whose runtime
    /// takes the client's first of gzip and br (README, feature by host).
    pub fn browser_coding(&self) -> &'static str {
        if self.workers { "gzip" } else { "br" }
    }

    pub fn guests(args: &[&str]) -> Host {
        component("test-guests");
        Host::start(&root().join("tests/fixtures/test-guests.toml"), args, &[])
    }

    pub fn log(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits (at most 5 s) until the host's log contains `needle`: lines
    /// arrive through a pipe, after the response that caused them.
    pub async fn wait_log(&self, needle: &str) {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !self.log().contains(needle) {
            assert!(
                std::time::Instant::now() < deadline,
                "the log never said {needle:?}:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The process id, to read its use of the machine from `/proc`.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn terminate(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
    }

    /// SIGTERM, then waits (bounded) for the process to exit.
    pub fn stop(&mut self) {
        self.terminate();
        for _ in 0..200 {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.kill();
    }

    /// SIGKILL: a crash, as far as the process can tell.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A response, fully read.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: http::HeaderMap,
    /// The body as a client reads it: any `Content-Encoding` undone.
    pub body: Vec<u8>,
    /// The body as it came over the wire.
    pub wire: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    /// Asserts an RFC 9457 problem with this status and returns its body.
    pub fn problem(&self, status: u16) -> serde_json::Value {
        assert_eq!(self.status, status, "{}", self.text());
        assert_eq!(
            self.header("content-type"),
            Some("application/problem+json")
        );
        let p = self.json();
        assert_eq!(p["status"], status);
        assert!(p["detail"].as_str().is_some_and(|d| !d.is_empty()), "{p}");
        p
    }
    /// The cache's `Cache-Status`, or `<none>`.
    pub fn cache_status(&self) -> &str {
        self.header("cache-status").unwrap_or("<none>")
    }
}

pub use edgeshop_clients::{Client, Purpose};

/// Sends one request on a fresh connection, with exactly `headers` (and
/// `Host`): a bare client. The body is decoded as any client decodes it.
pub async fn request(method: &str, url: &str, headers: &[(&str, &str)], body: Vec<u8>) -> Reply {
    let uri: http::Uri = url.parse().expect("url");
    let authority = uri.authority().expect("authority").to_string();
    let stream = tokio::net::TcpStream::connect(&authority)
        .await
        .expect("connect");
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .expect("handshake");
    tokio::spawn(conn);
    let mut req = http::Request::builder()
        .method(method)
        .uri(uri.path_and_query().map(|p| p.as_str()).unwrap_or("/"))
        .header("host", &authority);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req
        .body(http_body_util::Full::new(bytes::Bytes::from(body)))
        .unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(30), sender.send_request(req))
        .await
        .expect("response within 30 s")
        .expect("response");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let wire = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .map(|b| b.to_bytes().to_vec())
        .unwrap_or_default();
    let coding = headers
        .get("content-encoding")
        .and_then(|v| v.to_str().ok());
    // A HEAD, a 204, a 304 and a part of a coded body have nothing to
    // decode on their own (a 204 has no content, RFC 9110 §15.3.5, even
    // where a Content-Encoding is named, as workerd's front line names one).
    let body = if method == "HEAD" || [204, 206, 304].contains(&status) {
        wire.clone()
    } else {
        edgeshop_clients::decode(coding, &wire)
            .unwrap_or_else(|e| panic!("{method} {url}: {e} ({status}, {headers:?})"))
    };
    Reply {
        status,
        headers,
        body,
        wire,
    }
}

/// Sends one request the way `client` would for `purpose`: its own header
/// fields, then `extra` (which replace the client's of the same name).
pub async fn request_as(
    client: Client,
    purpose: Purpose,
    method: &str,
    url: &str,
    extra: &[(&str, &str)],
    body: Vec<u8>,
) -> Reply {
    let uri: http::Uri = url.parse().expect("url");
    let authority = uri.authority().expect("authority").to_string();
    let fields = edgeshop_clients::merged(
        edgeshop_clients::headers(client, purpose, &authority),
        extra,
    );
    let fields: Vec<(&str, &str)> = fields
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    request(method, url, &fields, body).await
}

/// The fields a browser's page script adds to a read of `authority`, for
/// tests that write their requests by hand.
pub fn client_fields(authority: &str) -> Vec<(&'static str, String)> {
    edgeshop_clients::headers(Client::Chromium, Purpose::Read, authority)
}

/// A shopper's browser reading `url` (a page script's `fetch`): what most
/// tests send, because it is what most users send.
pub async fn get(url: &str) -> Reply {
    browse(url, &[]).await
}

/// [`get`] with more fields (a token, a condition).
pub async fn browse(url: &str, extra: &[(&str, &str)]) -> Reply {
    request_as(
        Client::Chromium,
        Purpose::Read,
        "GET",
        url,
        extra,
        Vec::new(),
    )
    .await
}

/// A person opening `url` in Chromium (address bar, link), with `extra`
/// fields.
pub async fn navigate(url: &str, extra: &[(&str, &str)]) -> Reply {
    request_as(
        Client::Chromium,
        Purpose::Navigate,
        "GET",
        url,
        extra,
        Vec::new(),
    )
    .await
}

/// A page's `<img>` loading `url`, with `extra` fields (a `Range`, a
/// condition).
pub async fn image(url: &str, extra: &[(&str, &str)]) -> Reply {
    request_as(
        Client::Chromium,
        Purpose::Image,
        "GET",
        url,
        extra,
        Vec::new(),
    )
    .await
}

/// A browser's script posting JSON to `url`.
pub async fn post_json(url: &str, body: &serde_json::Value, extra: &[(&str, &str)]) -> Reply {
    request_as(
        Client::Chromium,
        Purpose::SendJson,
        "POST",
        url,
        extra,
        body.to_string().into_bytes(),
    )
    .await
}

/// A probe: a plain GET with no client's fields (health checks, status
/// endpoints, monitoring).
pub async fn probe(url: &str) -> Reply {
    request("GET", url, &[], Vec::new()).await
}

/// The bearer token test origins accept.
pub const ORIGIN_TOKEN: &str = "end-to-end-origin-token-0123456789";

/// The token test PoPs use: it reaches only `catalog` and `identity`.
pub const EDGE_TOKEN: &str = "end-to-end-edge-token-9876543210";

/// Starts `edgeshop-origin` on `catalog` (created and migrated if new),
/// with `extra` arguments.
pub fn start_origin(catalog: &Path, extra: &[&str]) -> Result<Host, String> {
    let mut cmd = Command::new(binary("edgeshop-origin"));
    if !extra.contains(&"--listen") {
        cmd.args(["--listen", "127.0.0.1:0"]);
    }
    cmd.arg("--catalog").arg(catalog);
    if !extra.contains(&"--identity") {
        let identity = catalog.with_file_name("identity.db");
        cmd.arg("--identity").arg(identity);
    }
    // The suite plays the PoPs, from 127.0.0.1 (see `Host::try_start`).
    cmd.args(["--trusted-proxy", "127.0.0.1"])
        .args(extra)
        .env("EDGESHOP_ORIGIN_TOKEN", ORIGIN_TOKEN)
        .env("EDGESHOP_EDGE_TOKEN", EDGE_TOKEN);
    Host::spawn(cmd)
}

/// Starts an origin on a copy of the seeded catalog in `dir` (made once,
/// so a restart reuses the same file).
pub fn start_origin_on_seed(dir: &Path, extra: &[&str]) -> Host {
    let catalog = dir.join("catalog.db");
    if !catalog.exists() {
        std::fs::copy(seeded_catalog(), &catalog).expect("copy the seeded catalog");
    }
    let identity = dir.join("identity.db");
    if !identity.exists() && !extra.contains(&"--identity") {
        std::fs::copy(empty_identity(), &identity).expect("copy the test identity database");
    }
    start_origin(&catalog, extra).unwrap_or_else(|log| panic!("origin did not start:\n{log}"))
}

/// The origin's replication `/info` for its catalog: the current
/// generation and the last frame shipped.
pub async fn catalog_info(origin: &Host) -> serde_json::Value {
    request(
        "GET",
        &format!("{}/db/catalog/info", origin.url),
        &[("authorization", &format!("Bearer {ORIGIN_TOKEN}"))],
        Vec::new(),
    )
    .await
    .json()
}

/// A `libsql` remote (Hrana) connection to an origin's catalog primary.
pub async fn primary_connection(origin: &Host) -> libsql::Connection {
    remote_connection(origin, "catalog", ORIGIN_TOKEN).await
}

/// A `libsql` remote (Hrana) connection to database `db` at an origin,
/// presenting `token`.
pub async fn remote_connection(origin: &Host, db: &str, token: &str) -> libsql::Connection {
    libsql::Builder::new_remote(format!("{}/db/{db}", origin.url), token.to_string())
        .build()
        .await
        .expect("a remote database")
        .connect()
        .expect("a remote connection")
}

/// A digest of everything a database holds: its schema and every row of
/// every table, in a canonical order. Equal digests mean equal content.
pub async fn content_hash(conn: &libsql::Connection) -> u64 {
    try_content_hash(conn).await.expect("reading the database")
}

/// [`content_hash`], or the error reading it (a replica file that the
/// running PoP is writing can be busy for a moment).
pub async fn try_content_hash(conn: &libsql::Connection) -> Result<u64, libsql::Error> {
    use std::hash::{Hash, Hasher};
    let mut tables = Vec::new();
    let mut rows = conn
        .query(
            "SELECT name, sql FROM sqlite_schema WHERE type = 'table' ORDER BY name",
            (),
        )
        .await?;
    while let Some(row) = rows.next().await? {
        tables.push((row.get::<String>(0)?, row.get::<Option<String>>(1)?));
    }
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for (name, sql) in tables {
        (&name, &sql).hash(&mut h);
        if sql.as_deref().is_some_and(|s| s.contains("VIRTUAL")) {
            continue; // its shadow tables hold the data
        }
        let mut lines = Vec::new();
        let mut rows = conn.query(&format!("SELECT * FROM \"{name}\""), ()).await?;
        while let Some(row) = rows.next().await? {
            let cells = (0..row.column_count())
                .map(|i| row.get_value(i).map(|v| format!("{v:?}")))
                .collect::<Result<Vec<String>, _>>()?;
            lines.push(cells.join("\u{1f}"));
        }
        lines.sort();
        lines.hash(&mut h);
    }
    Ok(h.finish())
}

/// Starts a PoP whose `catalog` and `identity` are embedded replicas of
/// `origin`'s, with their files in `dir`.
pub fn start_pop(
    manifest: &Path,
    origin: &str,
    dir: &Path,
    extra: &[&str],
) -> Result<Host, String> {
    start_pop_with(manifest, origin, dir, extra, &[])
}

/// [`start_pop`] with more environment, e.g. `SPIN_VARIABLE_ORIGIN_URL`.
pub fn start_pop_with(
    manifest: &Path,
    origin: &str,
    dir: &Path,
    extra: &[&str],
    extra_env: &[(&'static str, String)],
) -> Result<Host, String> {
    let mut args = vec![
        "--replica".to_string(),
        format!("catalog={origin}/db/catalog"),
        "--replica".to_string(),
        format!("identity={origin}/db/identity"),
        "--replica-dir".to_string(),
        dir.display().to_string(),
        "--sync-interval-ms".to_string(),
        "50".to_string(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut env = app_env();
    env.push(("EDGESHOP_PRIMARY_TOKEN", EDGE_TOKEN.to_string()));
    env.extend(extra_env.iter().cloned());
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    Host::try_start(manifest, &args, &env)
}

/// Waits (at most 30 s) until `host`'s health endpoint says ready.
pub async fn wait_ready(host: &Host) {
    for _ in 0..300 {
        if probe(&format!("{}/.well-known/edgeshop/health", host.url))
            .await
            .status
            == 200
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{} never became ready:\n{}", host.url, host.log());
}

/// Inserts vendors `crash-0` to `crash-{n-1}` into the catalog primary at
/// `url` (a database URL), one connection per write as separate clients
/// would, and returns the numbers of the writes the primary acknowledged
/// (a refused one is not retried), for tests that kill the primary under
/// them.
pub async fn acknowledged_inserts(url: String, token: String, n: i64) -> Vec<i64> {
    let mut acked = Vec::new();
    for i in 0..n {
        let conn = libsql::Builder::new_remote(url.clone(), token.clone())
            .build()
            .await
            .unwrap()
            .connect()
            .unwrap();
        let ok = conn
            .execute(
                "INSERT INTO vendors (slug, name, country, created_at, updated_at)
                 VALUES (?1, 'Crash vendor', 'FR', 1, 1)",
                libsql::params![format!("crash-{i}")],
            )
            .await;
        if ok.is_ok() {
            acked.push(i);
        } else {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    acked
}

/// The content digest of the newest replica file a PoP keeps in `dir`,
/// opened read-only next to the running PoP; `None` if there is none yet
/// or it cannot be read right now.
pub async fn replica_hash(dir: &Path) -> Option<u64> {
    let dir = dir.join("catalog");
    let newest = std::fs::read_dir(&dir)
        .ok()?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter_map(|n| {
            n.strip_prefix("catalog-")?
                .strip_suffix(".db")?
                .parse::<u64>()
                .ok()
        })
        .max()?;
    let db = libsql::Builder::new_local(dir.join(format!("catalog-{newest}.db")))
        .flags(libsql::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .build()
        .await
        .ok()?;
    let conn = db.connect().ok()?;
    // Busy while the PoP applies a frame batch: the caller polls again.
    try_content_hash(&conn).await.ok()
}

/// Signs payment webhooks between the test simulator and test origins.
pub const WEBHOOK_SECRET: &str = "whsec_end_to_end_secret";

/// A plain HTTP server on 127.0.0.1 that answers every request 200 "up",
/// for outbound-HTTP tests; it lives as long as the test's runtime.
pub async fn tiny_upstream() -> u16 {
    let upstream = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = upstream.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = upstream.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(|_req| async {
                    Ok::<_, std::convert::Infallible>(hyper::Response::new(
                        http_body_util::Full::new(bytes::Bytes::from_static(b"up")),
                    ))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    port
}

/// The payment simulator on a loopback port.
pub fn start_paysim(args: &[&str]) -> Host {
    let mut cmd = Command::new(binary("edgeshop-paysim"));
    cmd.args(["--listen", "127.0.0.1:0"])
        .args(args)
        .env("EDGESHOP_WEBHOOK_SECRET", WEBHOOK_SECRET);
    Host::spawn(cmd).unwrap_or_else(|log| panic!("paysim did not start:\n{log}"))
}

/// A private certificate authority and a server certificate it signed
/// for `localhost` and 127.0.0.1, as PEM files in a directory.
pub struct PrivateCa {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Makes a [`PrivateCa`] in `dir`.
pub fn private_ca(dir: &Path) -> PrivateCa {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
        SanType,
    };
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::default();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "edgeshop test CA");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let mut leaf = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    leaf.subject_alt_names
        .push(SanType::IpAddress(std::net::Ipv4Addr::LOCALHOST.into()));
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let leaf_cert = leaf.signed_by(&key, &ca_cert, &ca_key).unwrap();
    let files = PrivateCa {
        ca: dir.join("ca.pem"),
        cert: dir.join("cert.pem"),
        key: dir.join("key.pem"),
    };
    std::fs::write(&files.ca, ca_cert.pem()).unwrap();
    std::fs::write(&files.cert, leaf_cert.pem()).unwrap();
    std::fs::write(&files.key, key.serialize_pem()).unwrap();
    files
}

/// An origin with checkout on: a copy of the seeded catalog, an orders
/// and an identity database in `dir`, the test signing key's JWKS, and
/// payments at `paysim` (whose webhooks it is then told to send here).
pub async fn start_checkout_origin(dir: &Path, paysim: &Host, extra: &[&str]) -> Host {
    let origin = start_checkout_origin_at(dir, &paysim.url, extra);
    let r = request(
        "POST",
        &format!("{}/_sim/webhook", paysim.url),
        &[("content-type", "application/json")],
        serde_json::json!({"url": format!("{}/webhooks/payments", origin.url)})
            .to_string()
            .into_bytes(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    origin
}

/// [`start_checkout_origin`] with payments at `payments_url`, and no
/// webhooks wired.
pub fn start_checkout_origin_at(dir: &Path, payments_url: &str, extra: &[&str]) -> Host {
    let vars = dir.join("variables.toml");
    if !vars.exists() {
        std::fs::write(
            &vars,
            format!(
                "token_jwks = {}\n",
                toml_string(&jwks_of(&[&signing_secret()]))
            ),
        )
        .unwrap();
    }
    let orders = dir.join("orders.db");
    let mut args = vec![
        "--orders",
        orders.to_str().unwrap(),
        "--variables-file",
        vars.to_str().unwrap(),
        "--payments-url",
        payments_url,
        "--webhook-secret",
        WEBHOOK_SECRET,
    ];
    args.extend_from_slice(extra);
    start_origin_on_seed(dir, &args)
}

/// Replaces the simulator's injected faults (`{}` for none).
pub async fn set_faults(paysim: &Host, faults: serde_json::Value) {
    let r = request(
        "POST",
        &format!("{}/_sim/faults", paysim.url),
        &[("content-type", "application/json")],
        faults.to_string().into_bytes(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
}

fn toml_string(s: &str) -> String {
    format!("'''{s}'''")
}

/// A proxy between a PoP and the origin that injects network faults.
/// Armed with needles, it forwards the next request whose body contains
/// them all, lets the origin run it, then closes the connection instead of
/// answering: the PoP sees what a failure after sending looks like, and
/// the outcome of its statement is unknown to it. Stalled, it holds every
/// request unanswered until released: a primary that stopped answering.
/// A fault injector, not a stand-in: everything else passes through to
/// the real origin.
pub struct AnswerDropper {
    pub url: String,
    armed: std::sync::Arc<std::sync::Mutex<Option<Vec<String>>>>,
    dropped: std::sync::Arc<std::sync::atomic::AtomicU32>,
    stalled: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl AnswerDropper {
    pub async fn start(origin: &str) -> AnswerDropper {
        use hyper::service::service_fn;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let armed = std::sync::Arc::new(std::sync::Mutex::new(None::<Vec<String>>));
        let dropped = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
        let origin: http::Uri = origin.parse().unwrap();
        let (stalled, stall_rx) = tokio::sync::watch::channel(false);
        let (a, d) = (armed.clone(), dropped.clone());
        let task = tokio::spawn(async move {
            let client =
                hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                    .build_http::<http_body_util::Full<bytes::Bytes>>();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (client, origin, armed, dropped, stall) = (
                    client.clone(),
                    origin.clone(),
                    a.clone(),
                    d.clone(),
                    stall_rx.clone(),
                );
                tokio::spawn(async move {
                    let service = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        let (client, origin, armed, dropped, mut stall) = (
                            client.clone(),
                            origin.clone(),
                            armed.clone(),
                            dropped.clone(),
                            stall.clone(),
                        );
                        async move {
                            // Held while stalled, forwarded once released.
                            let _ = stall.wait_for(|stalled| !*stalled).await;
                            let (mut parts, body) = req.into_parts();
                            let body = http_body_util::BodyExt::collect(body)
                                .await
                                .map(|b| b.to_bytes())
                                .unwrap_or_default();
                            let lose = {
                                let mut armed = armed.lock().unwrap();
                                let text = String::from_utf8_lossy(&body);
                                let hit = armed.as_ref().is_some_and(|needles| {
                                    needles.iter().all(|n| text.contains(n.as_str()))
                                });
                                if hit {
                                    *armed = None;
                                }
                                hit
                            };
                            let mut uri = origin.clone().into_parts();
                            uri.path_and_query = parts.uri.path_and_query().cloned();
                            parts.uri = http::Uri::from_parts(uri).unwrap();
                            parts.headers.remove("host");
                            let req =
                                http::Request::from_parts(parts, http_body_util::Full::new(body));
                            let resp = client.request(req).await;
                            if lose {
                                dropped.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                                // The origin ran it; the PoP never hears.
                                return Err::<http::Response<http_body_util::Full<bytes::Bytes>>, _>(
                                    "answer dropped on purpose",
                                );
                            }
                            let resp = resp.map_err(|_| "origin unreachable")?;
                            let (parts, body) = resp.into_parts();
                            let body = http_body_util::BodyExt::collect(body)
                                .await
                                .map(|b| b.to_bytes())
                                .unwrap_or_default();
                            Ok(http::Response::from_parts(
                                parts,
                                http_body_util::Full::new(body),
                            ))
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        AnswerDropper {
            url,
            armed,
            dropped,
            stalled,
            task,
        }
    }

    /// Holds every request from now on unanswered (`true`), or lets them
    /// all through (`false`).
    pub fn stall(&self, stalled: bool) {
        self.stalled.send_replace(stalled);
    }

    /// Loses the answer to the next request whose body contains every
    /// one of `needles`.
    pub fn arm(&self, needles: &[&str]) {
        *self.armed.lock().unwrap() = Some(needles.iter().map(|n| n.to_string()).collect());
    }

    /// Answers lost so far.
    pub fn dropped(&self) -> u32 {
        self.dropped.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Drop for AnswerDropper {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Real Spin, as `cargo xtask test` found it (`EDGESHOP_SPIN_BIN`); `None`
/// when there is none on this machine, and the caller says it skipped.
pub fn spin_binary() -> Option<PathBuf> {
    std::env::var_os("EDGESHOP_SPIN_BIN")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
}

/// sqld, the libSQL server, when this machine has it
/// (`EDGESHOP_SQLD_BIN`, set by `cargo xtask test`), or `None` after
/// saying the test is skipped.
pub fn sqld_or_skip() -> Option<PathBuf> {
    let sqld = std::env::var_os("EDGESHOP_SQLD_BIN")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from);
    if sqld.is_none() {
        eprintln!("SKIPPED: no sqld on this machine (EDGESHOP_SQLD_BIN is empty)");
    }
    sqld
}

/// [`spin_binary`], or `None` after saying the test is skipped, for the
/// tests on real Spin to begin with.
pub fn spin_or_skip() -> Option<PathBuf> {
    let spin = spin_binary();
    if spin.is_none() {
        eprintln!("SKIPPED: no real Spin on this machine (EDGESHOP_SPIN_BIN is empty)");
    }
    spin
}

/// A running `spin up` and the trigger process it starts, killed together
/// (as a process group) when dropped.
pub struct SpinApp(Host);

impl std::ops::Deref for SpinApp {
    type Target = Host;
    fn deref(&self) -> &Host {
        &self.0
    }
}

impl Drop for SpinApp {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.0.child.id())])
            .status();
    }
}

/// Makes each named `async fn(&Host)` a test per host: `NAME::edge_host`,
/// the case against `spin.toml` on our edge host ([`Host::on_files`]);
/// `NAME::spin`, on real Spin ([`start_spin_env`], over copies of the same
/// seeded databases); and `NAME::workers`, on the Workers twin under
/// `wrangler dev` ([`start_worker`], reading an origin over copies of
/// them). The Spin and Workers ones say they skipped where the engine is
/// not found.
#[macro_export]
macro_rules! on_every_host {
    ($($name:ident),* $(,)?) => {
        $crate::on_every_host!(env $crate::app_env; $($name),*);
    };
    // `with`: the test file's functions starting an app of its own on
    // each host, `fn() -> (Host, TempDir)` and `fn(&Path) -> (SpinApp,
    // TempDir)`; a Spin app, so not on the Worker.
    (with $edge:ident, $spin:ident; $($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread")]
            async fn edge_host() {
                let (host, _dir) = super::$edge();
                super::$name(&host).await;
            }

            #[tokio::test(flavor = "multi_thread")]
            async fn spin() {
                let Some(spin) = $crate::spin_or_skip() else {
                    return;
                };
                let (app, _dir) = super::$spin(&spin);
                super::$name(&app).await;
            }
        }
    )*};
    // `origin`: each engine as an edge location of an origin of its own
    // over copies of the seeded files, as `cargo xtask up` runs them: our
    // host replicating it, Spin and the Worker reading it over Hrana.
    (origin; $($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread")]
            async fn edge_host() {
                let dir = $crate::TempDir::new(concat!("pop-", stringify!($name)));
                let origin = $crate::start_origin_on_seed(&dir.0, &[]);
                let pop = $crate::start_pop(
                    &$crate::root().join("spin.toml"),
                    &origin.url,
                    &dir.0.join("pop"),
                    &[],
                )
                .unwrap_or_else(|log| panic!("PoP did not start:\n{log}"));
                $crate::wait_ready(&pop).await;
                super::$name(&pop).await;
            }

            #[tokio::test(flavor = "multi_thread")]
            async fn spin() {
                let Some(spin) = $crate::spin_or_skip() else {
                    return;
                };
                let dir = $crate::TempDir::new(concat!("spin-", stringify!($name)));
                let origin = $crate::start_origin_on_seed(&dir.0, &[]);
                let app = $crate::start_spin_reading(&spin, &dir.0, &origin.url);
                super::$name(&app).await;
            }

            #[tokio::test(flavor = "multi_thread")]
            async fn workers() {
                let Some(wrangler) = $crate::wrangler_or_skip() else {
                    return;
                };
                let app = $crate::start_worker(&wrangler, stringify!($name), &$crate::app_env());
                super::$name(&app).await;
            }
        }
    )*};
    // `env`: a function giving the variables every host gets.
    (env $env:path; $($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread")]
            async fn edge_host() {
                let host = $crate::Host::on_files(&$env());
                super::$name(&host).await;
            }

            #[tokio::test(flavor = "multi_thread")]
            async fn spin() {
                let Some(spin) = $crate::spin_or_skip() else {
                    return;
                };
                let dir = $crate::TempDir::new(concat!("spin-", stringify!($name)));
                let app = $crate::start_spin_env(&spin, &dir.0, &$env());
                super::$name(&app).await;
            }

            #[tokio::test(flavor = "multi_thread")]
            async fn workers() {
                let Some(wrangler) = $crate::wrangler_or_skip() else {
                    return;
                };
                let app = $crate::start_worker(&wrangler, stringify!($name), &$env());
                super::$name(&app).await;
            }
        }
    )*};
}

/// `spin up` on the project's own `spin.toml`, unmodified, with a runtime
/// config that opens the seeded catalog and a fresh identity database in
/// `dir` (local files, as the README's "Running on real Spin" does).
pub fn start_spin(spin: &Path, dir: &Path) -> SpinApp {
    start_spin_env(spin, dir, &app_env())
}

/// [`start_spin`] with the variables `env` (as [`Host::on_files`] takes).
pub fn start_spin_env(spin: &Path, dir: &Path, env: &[(&'static str, String)]) -> SpinApp {
    start_spin_local(spin, &root().join("spin.toml"), dir, env, &[])
}

/// `spin up` on `manifest` with local copies of the seeded catalog and
/// an empty identity database, the variables `env` and `args` for Spin.
pub fn start_spin_local(
    spin: &Path,
    manifest: &Path,
    dir: &Path,
    env: &[(&str, String)],
    args: &[&str],
) -> SpinApp {
    let catalog = dir.join("catalog.db");
    std::fs::copy(seeded_catalog(), &catalog).expect("copy the seeded catalog");
    let identity = dir.join("identity.db");
    std::fs::copy(empty_identity(), &identity).expect("copy the identity database");
    let databases = format!(
        "[sqlite_database.catalog]\ntype = \"spin\"\npath = {catalog:?}\n\
         [sqlite_database.identity]\ntype = \"spin\"\npath = {identity:?}\n"
    );
    start_spin_manifest(spin, manifest, dir, &databases, env, args)
}

/// [`start_spin`], with `catalog` and `identity` read from `origin` over
/// Hrana with the edge token, as a `cargo xtask up --spin` PoP reads them.
pub fn start_spin_reading(spin: &Path, dir: &Path, origin: &str) -> SpinApp {
    let databases = ["catalog", "identity"]
        .map(|label| {
            format!(
                "[sqlite_database.{label}]\ntype = \"libsql\"\n\
                 url = \"{origin}/db/{label}\"\ntoken = \"{EDGE_TOKEN}\"\n"
            )
        })
        .concat();
    let mut env = app_env();
    env.push(("SPIN_VARIABLE_ORIGIN_URL", origin.to_string()));
    start_spin_manifest(spin, &root().join("spin.toml"), dir, &databases, &env, &[])
}

/// `spin up` on `manifest`, unmodified, with `databases` (runtime config
/// sections), key-value stores in `dir`, the variables `env` and `args`
/// for Spin.
pub fn start_spin_manifest(
    spin: &Path,
    manifest: &Path,
    dir: &Path,
    databases: &str,
    env: &[(&str, String)],
    args: &[&str],
) -> SpinApp {
    let config = dir.join("runtime-config.toml");
    std::fs::write(
        &config,
        format!(
            "{databases}\
             [key_value_store.ratelimit]\ntype = \"spin\"\npath = {:?}\n\
             [key_value_store.cache]\ntype = \"spin\"\npath = {:?}\n\
             [key_value_store.default]\ntype = \"spin\"\npath = {:?}\n",
            dir.join("ratelimit.db"),
            dir.join("cache.db"),
            dir.join("default.db"),
        ),
    )
    .unwrap();
    // Spin takes a fixed address: find a free one.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let mut cmd = Command::new(spin);
    cmd.arg("up")
        .arg("--from")
        .arg(manifest)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .arg("--runtime-config-file")
        .arg(&config)
        .arg("--state-dir")
        .arg(dir.join("state"))
        .args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    // Spin compiles every component before it serves.
    let (child, log) =
        spawn_group_until(cmd, "Serving http://", Duration::from_secs(180), "spin up");
    SpinApp(Host {
        url: format!("http://127.0.0.1:{port}"),
        child,
        stderr: log,
        spin: true,
        workers: false,
    })
}

/// Spawns `cmd` (in a process group of its own, with piped output) and
/// waits until its output says `ready`; the process group is killed and
/// the test fails with the output if it exits or `limit` passes first.
pub(crate) fn spawn_group_until(
    cmd: Command,
    ready: &str,
    limit: Duration,
    what: &str,
) -> (Child, std::sync::Arc<std::sync::Mutex<String>>) {
    try_spawn_group_until(cmd, ready, limit)
        .unwrap_or_else(|log| panic!("{what} did not serve:\n{log}"))
}

/// [`spawn_group_until`], giving back the output instead of failing.
pub(crate) fn try_spawn_group_until(
    mut cmd: Command,
    ready: &str,
    limit: Duration,
) -> Result<(Child, std::sync::Arc<std::sync::Mutex<String>>), String> {
    // Its own process group: `spin up` runs the trigger, wrangler runs
    // workerd, as children that must go when the test's handle does.
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{e}"))?;
    let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    for pipe in [
        Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
        Box::new(child.stderr.take().unwrap()),
    ] {
        let log = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                let mut l = log.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
    }
    let deadline = std::time::Instant::now() + limit;
    while !log.lock().unwrap().contains(ready) {
        if std::time::Instant::now() > deadline || matches!(child.try_wait(), Ok(Some(_))) {
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", child.id())])
                .status();
            let _ = child.wait();
            return Err(log.lock().unwrap().clone());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok((child, log))
}

/// The bucket test object stores serve.
pub const BUCKET: &str = "edgeshop";
/// The object store's uploader key (signs vendors' upload URLs).
pub const UPLOADER_KEY: (&str, &str) = ("test-uploader", "test-uploader-secret-0123456789");
/// The object store's processor key (reads uploads, writes media).
pub const PROCESSOR_KEY: (&str, &str) = ("test-processor", "test-processor-secret-0123456789");

/// `edgeshop-objects` on a loopback port, objects under `dir/objects`,
/// with the two test keys and CORS for any local port.
pub fn start_objects(dir: &Path) -> Host {
    let keys = dir.join("objects-keys.toml");
    let mut text = String::new();
    for ((access, secret), role) in [(UPLOADER_KEY, "uploader"), (PROCESSOR_KEY, "processor")] {
        text.push_str(&format!(
            "[[key]]\naccess_key = \"{access}\"\nsecret_key = \"{secret}\"\nrole = \"{role}\"\n"
        ));
    }
    std::fs::write(&keys, text).unwrap();
    let mut cmd = Command::new(binary("edgeshop-objects"));
    cmd.args(["--listen", "127.0.0.1:0", "--bucket", BUCKET, "--root"])
        .arg(dir.join("objects"))
        .arg("--keys")
        .arg(&keys)
        .args(["--cors-origin", "http://127.0.0.1:*"]);
    Host::spawn(cmd).unwrap_or_else(|log| panic!("the object store did not start:\n{log}"))
}

/// The origin's flags for uploads to the store at `url`.
pub fn store_args(url: &str) -> Vec<String> {
    [
        "--store-endpoint",
        url,
        "--store-bucket",
        BUCKET,
        "--store-uploader-key",
        UPLOADER_KEY.0,
        "--store-uploader-secret",
        UPLOADER_KEY.1,
        "--store-processor-key",
        PROCESSOR_KEY.0,
        "--store-processor-secret",
        PROCESSOR_KEY.1,
    ]
    .map(String::from)
    .to_vec()
}

/// The store at `url` as the processor reaches it.
pub fn processor_store(url: &str) -> uploads::Store {
    uploads::Store {
        endpoint: url.to_string(),
        region: "us-east-1".into(),
        bucket: BUCKET.into(),
        access_key: PROCESSOR_KEY.0.into(),
        secret_key: PROCESSOR_KEY.1.into(),
    }
}

/// Object `key` of the store at `url`, read with the processor's key:
/// its status and bytes.
pub async fn read_object(url: &str, key: &str) -> Reply {
    let signed = processor_store(url)
        .presign_object(
            "GET",
            key,
            &[],
            std::time::SystemTime::now(),
            Duration::from_secs(60),
        )
        .unwrap();
    request("GET", &signed, &[], Vec::new()).await
}

/// Signs up an account at `pop` and returns its access token.
pub async fn sign_up(pop: &Host, email: &str, vendor: Option<&str>) -> String {
    let mut body = serde_json::json!({ "email": email, "password": "a long enough password" });
    if let Some(name) = vendor {
        body["kind"] = serde_json::json!("vendor");
        body["vendor"] = serde_json::json!({ "name": name, "country": "DE" });
    }
    let r = post_json(&format!("{}/api/v1/auth/signup", pop.url), &body, &[]).await;
    assert_eq!(r.status, 201, "{}", r.text());
    r.json()["access_token"].as_str().unwrap().to_string()
}

/// A vendor's dashboard calling the vendor API at `pop`.
pub async fn vendor_call(
    pop: &Host,
    token: &str,
    method: &str,
    path: &str,
    if_match: Option<&str>,
    body: Option<serde_json::Value>,
) -> Reply {
    let auth = format!("Bearer {token}");
    let mut headers = vec![
        ("authorization", auth.as_str()),
        ("accept", "application/json"),
        ("accept-language", "de-DE,de;q=0.9,en;q=0.8"),
    ];
    if body.is_some() {
        headers.push(("content-type", "application/json"));
    }
    if let Some(tag) = if_match {
        headers.push(("if-match", tag));
    }
    let body = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
    request(method, &format!("{}{path}", pop.url), &headers, body).await
}

/// A PoP running the shipped app on a replica in `dir`, whose gateways
/// (checkout, vendor) forward to `origin` and whose media come from the
/// object store at `objects` (when there is one); ready to serve.
pub async fn start_gateway_pop(origin: &Host, objects: Option<&str>, dir: &Path) -> Host {
    let mut env = vec![("SPIN_VARIABLE_ORIGIN_URL", origin.url.clone())];
    if let Some(url) = objects {
        env.push(("SPIN_VARIABLE_MEDIA_ORIGIN", url.to_string()));
        env.push(("SPIN_VARIABLE_MEDIA_BUCKET", BUCKET.to_string()));
    }
    let pop = start_pop_with(&root().join("spin.toml"), &origin.url, dir, &[], &env)
        .unwrap_or_else(|log| panic!("PoP did not start:\n{log}"));
    wait_ready(&pop).await;
    pop
}

/// A TCP proxy on 127.0.0.1 in front of `target` whose connections can be
/// cut at will: the network failing between a PoP and its origin.
pub struct CutProxy {
    pub url: String,
    /// Bumped to cut every connection; odd while new ones are refused.
    state: std::sync::Arc<tokio::sync::watch::Sender<u64>>,
    task: tokio::task::JoinHandle<()>,
}

impl CutProxy {
    /// Proxies to the `http://host:port` in `target`.
    pub async fn start(target: &str) -> CutProxy {
        let to = target.trim_start_matches("http://").to_string();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let state = std::sync::Arc::new(tokio::sync::watch::Sender::new(0u64));
        let st = state.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let mut cut = st.subscribe();
                let at = *cut.borrow_and_update();
                if at % 2 == 1 {
                    continue; // refused: dropped at once
                }
                let to = to.clone();
                tokio::spawn(async move {
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(&to).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = cut.changed() => {}
                    }
                });
            }
        });
        CutProxy { url, state, task }
    }

    /// Cuts every connection and refuses new ones until [`CutProxy::heal`].
    pub fn cut(&self) {
        self.state.send_modify(|s| *s = (*s | 1) + 2);
    }

    pub fn heal(&self) {
        self.state.send_modify(|s| *s = (*s + 1) & !1);
    }
}

impl Drop for CutProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}
