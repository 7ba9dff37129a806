//! `cargo xtask keys`: the token signing keys of the embedded default.
//!
//! The keyring (`.edgeshop/secrets/token-keys.json`) holds every key with
//! its phase. `rotate` moves one step at a time, so each step can reach
//! every PoP before the next:
//!
//! 1. a new key is *published* (in the JWKS, not signing);
//! 2. it becomes the *signing* key, the old one *retiring* (still in the
//!    JWKS, so the tokens it signed keep working);
//! 3. once the longest token lifetime plus leeway has passed, the retiring
//!    key is dropped.
//!
//! Each step rewrites `.edgeshop/variables.toml`, which running PoPs
//! re-read (`edge-host --variables-file`): no restart, no failed request.

use crate::{say, state_dir};
use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Phase {
    Published,
    Signing,
    Retiring,
}

#[derive(Debug, Serialize, Deserialize)]
struct Key {
    kid: String,
    /// `<kid>:<base64url seed>`.
    secret: String,
    phase: Phase,
    /// When the key entered its phase (Unix seconds).
    since: i64,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Keyring {
    keys: Vec<Key>,
}

fn keyring_path() -> PathBuf {
    state_dir().join("secrets/token-keys.json")
}

/// The file PoPs read variables from.
pub fn variables_file() -> PathBuf {
    state_dir().join("variables.toml")
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn new_key() -> Result<Key> {
    let mut seed = [0u8; 32];
    use std::io::Read;
    std::fs::File::open("/dev/urandom")?.read_exact(&mut seed)?;
    let mut tag = [0u8; 3];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut tag)?;
    let kid = format!(
        "k{}-{}",
        now(),
        tag.iter().map(|b| format!("{b:02x}")).collect::<String>()
    );
    let secret = tokens::Signer::from_seed(&kid, seed).to_secret();
    Ok(Key {
        kid,
        secret,
        phase: Phase::Signing,
        since: now(),
    })
}

fn load() -> Result<Option<Keyring>> {
    match std::fs::read_to_string(keyring_path()) {
        Ok(text) => Ok(Some(
            serde_json::from_str(&text).context("reading the token keyring")?,
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}

fn save(ring: &Keyring) -> Result<()> {
    let path = keyring_path();
    crate::private::dir(path.parent().context("dir")?)?;
    write_atomically(&path, &serde_json::to_string_pretty(ring)?)?;
    write_variables(ring)
}

/// Writes next to `path` and renames, owner-only, so a reader never sees
/// half a file.
fn write_atomically(path: &std::path::Path, text: &str) -> Result<()> {
    crate::private::write(path, text.as_bytes())
}

fn write_variables(ring: &Keyring) -> Result<()> {
    let signing = ring
        .keys
        .iter()
        .find(|k| k.phase == Phase::Signing)
        .context("the keyring has no signing key")?;
    let public: Vec<serde_json::Value> = ring
        .keys
        .iter()
        .map(|k| {
            Ok(tokens::Signer::from_secret(&k.secret)
                .map_err(|e| anyhow::anyhow!("key {}: {e}", k.kid))?
                .public_jwk())
        })
        .collect::<Result<_>>()?;
    let mut vars = std::collections::BTreeMap::new();
    vars.insert("token_signing_key", signing.secret.clone());
    vars.insert(
        "token_jwks",
        serde_json::json!({ "keys": public }).to_string(),
    );
    let text = format!(
        "# Written by `cargo xtask keys`; PoPs re-read it when it changes.\n{}",
        toml::to_string(&vars)?
    );
    // Unchanged text is not rewritten, so running PoPs see no change.
    if std::fs::read_to_string(variables_file()).is_ok_and(|old| old == text) {
        return Ok(());
    }
    write_atomically(&variables_file(), &text)
}

/// Makes sure a keyring and the variables file exist.
pub fn ensure() -> Result<PathBuf> {
    match load()? {
        Some(ring) => write_variables(&ring)?,
        None => {
            let ring = Keyring {
                keys: vec![new_key()?],
            };
            save(&ring)?;
            say(&format!("generated token signing key {}", ring.keys[0].kid));
        }
    }
    Ok(variables_file())
}

/// Longest a token signed by a key can stay valid after signing stopped.
fn retire_after() -> i64 {
    let s = auth_core::Settings::default();
    s.access_ttl_secs + s.leeway_secs
}

pub fn generate(force: bool) -> Result<()> {
    if load()?.is_some() && !force {
        bail!(
            "a keyring exists at {}; `cargo xtask keys rotate` replaces keys without \
             breaking tokens (or pass --force to start over, which signs everyone out)",
            keyring_path().display()
        );
    }
    let ring = Keyring {
        keys: vec![new_key()?],
    };
    save(&ring)?;
    say(&format!("generated token signing key {}", ring.keys[0].kid));
    status()
}

pub fn rotate() -> Result<()> {
    let mut ring = load()?.context("no keyring yet: run `cargo xtask keys generate`")?;
    let now = now();
    if let Some(i) = ring.keys.iter().position(|k| k.phase == Phase::Retiring) {
        let wait = ring.keys[i].since + retire_after() - now;
        if wait > 0 {
            bail!(
                "key {} may still have valid tokens for {wait} s (token lifetime plus leeway); \
                 rotate again after that",
                ring.keys[i].kid
            );
        }
        let gone = ring.keys.remove(i);
        say(&format!(
            "step 3/3: retired key {} (no longer in the JWKS)",
            gone.kid
        ));
    } else if let Some(i) = ring.keys.iter().position(|k| k.phase == Phase::Published) {
        for k in &mut ring.keys {
            if k.phase == Phase::Signing {
                k.phase = Phase::Retiring;
                k.since = now;
            }
        }
        ring.keys[i].phase = Phase::Signing;
        ring.keys[i].since = now;
        say(&format!(
            "step 2/3: signing with {}; the old key stays published for {} s, then rotate again",
            ring.keys[i].kid,
            retire_after()
        ));
    } else {
        let mut key = new_key()?;
        key.phase = Phase::Published;
        say(&format!(
            "step 1/3: published {} next to the signing key; once every PoP has it \
             (at once for `cargo xtask up`), rotate again to sign with it",
            key.kid
        ));
        ring.keys.push(key);
    }
    save(&ring)?;
    status()
}

pub fn status() -> Result<()> {
    let Some(ring) = load()? else {
        println!("no token keys yet (`cargo xtask keys generate`, or `cargo xtask up` makes one)");
        return Ok(());
    };
    let now = now();
    for k in &ring.keys {
        println!(
            "{:<20} {:<10} for {} s",
            k.kid,
            format!("{:?}", k.phase).to_lowercase(),
            now - k.since
        );
    }
    println!("variables: {}", variables_file().display());
    Ok(())
}

/// Most tokens [`bench_tokens`] signs, one session each.
pub const BENCH_SESSIONS: usize = 1000;

/// The session of bench token `i`.
fn bench_session(i: usize) -> String {
    format!("bench-session-{i:010}")
}

/// Makes the sessions [`bench_tokens`] name live in the identity database
/// at `identity` (created and migrated if new) for the next day (a gate accepts a token only for a live
/// session of its account).
pub fn bench_sessions(identity: &std::path::Path) -> Result<()> {
    let now = now();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(async {
            let (_db, conn) = identity_db::open_local(identity).await?;
            identity_db::migrate(&conn).await?;
            // The bench names accounts by number and needs no rows for them.
            conn.execute("PRAGMA foreign_keys = OFF", ()).await?;
            let tx = conn.transaction().await?;
            for i in 0..BENCH_SESSIONS {
                tx.execute(
                    "INSERT OR REPLACE INTO sessions (id, account_id, created_at, expires_at) \
                     VALUES (?1, ?2, ?3, ?4)",
                    libsql::params![bench_session(i), i as i64 + 1, now, now + 86_400],
                )
                .await?;
            }
            tx.commit().await?;
            anyhow::Ok(())
        })
}

/// `n` access tokens from the current signing key, valid for ten minutes,
/// for the sessions [`bench_sessions`] made live.
pub fn bench_tokens(n: usize) -> Result<Vec<String>> {
    anyhow::ensure!(n <= BENCH_SESSIONS, "at most {BENCH_SESSIONS} bench tokens");
    ensure()?;
    let ring = load()?.context("keyring")?;
    let signing = ring
        .keys
        .iter()
        .find(|k| k.phase == Phase::Signing)
        .context("no signing key")?;
    let signer = tokens::Signer::from_secret(&signing.secret)
        .map_err(|e| anyhow::anyhow!("key {}: {e}", signing.kid))?;
    let settings = auth_core::Settings::default();
    let now = now();
    Ok((0..n)
        .map(|i| {
            tokens::sign(
                &signer,
                &tokens::Claims {
                    iss: settings.issuer.clone(),
                    aud: settings.audience.clone(),
                    sub: (i + 1).to_string(),
                    iat: now,
                    exp: now + 600,
                    nbf: None,
                    jti: format!("bench-{now}-{i}"),
                    sid: bench_session(i),
                    roles: vec!["shopper".into()],
                },
            )
        })
        .collect())
}

/// sqld's JWT auth for one database's server (`cargo xtask up --primary
/// sqld`): each database's server trusts a key of its own, so a token
/// for one reaches no other.
pub struct SqldAuth {
    /// The public key, for `sqld --auth-jwt-key-file`.
    pub key_file: PathBuf,
    /// The origin's token: migrations, the saga, vendor writes.
    pub origin_token: String,
    /// The PoPs' token: replication and their writes.
    pub edge_token: String,
}

/// How long the tokens `up` mints stay valid; each `up` mints new ones.
const SQLD_TOKEN_SECS: i64 = 30 * 24 * 3600;

/// The key (generated once, kept in the secrets) and fresh tokens for
/// the sqld serving `db`. sqld grants per database, read-only or
/// read-write (claim `a`); both parties write, so both tokens are `rw`,
/// told apart by `sub` in sqld's logs (what our own primary's per-table
/// grant adds is in the README).
pub fn sqld_auth(db: &str) -> Result<SqldAuth> {
    let hex = crate::up::secret(&format!("sqld_{db}_key"))?;
    let bytes: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16))
        .collect::<Result<_, _>>()
        .context("the sqld key secret is not hex")?;
    let seed: [u8; 32] = bytes
        .get(..32)
        .and_then(|b| b.try_into().ok())
        .context("the sqld key secret is shorter than 32 bytes")?;
    let signer = tokens::Signer::from_seed(&format!("sqld-{db}"), seed);
    let key_file = state_dir().join(format!("sqld/{db}.pub"));
    std::fs::create_dir_all(key_file.parent().context("dir")?)?;
    std::fs::write(&key_file, signer.public_key())?;
    let token = |sub: &str| {
        tokens::sign_jwt(
            &signer,
            &serde_json::json!({ "a": "rw", "sub": sub, "exp": now() + SQLD_TOKEN_SECS }),
        )
    };
    let auth = SqldAuth {
        key_file,
        origin_token: token("edgeshop-origin"),
        edge_token: token("edgeshop-edge"),
    };
    // Tools (and the tests) reach the primary as the origin does.
    crate::private::write(
        &state_dir().join(format!("secrets/sqld_{db}_origin_token")),
        auth.origin_token.as_bytes(),
    )?;
    Ok(auth)
}
