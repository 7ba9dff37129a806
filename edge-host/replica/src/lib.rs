//! An embedded libSQL replica at a PoP, kept in sync in the background.
//!
//! Reads are local. A write is one Hrana request to the primary
//! ([`write`]); the primary answers with where its log ended, and the
//! writer waits until the replica has applied that much, so it reads its
//! own write. Frames reach the replica as the primary pushes them
//! ([`follow`]) and are applied by the unmodified `libsql` crate through
//! its own pull, which the pushed frames answer ([`relay`], [`feed`]);
//! pulls on an interval remain for when no stream is up. This crate
//! decides when to open, sync and bootstrap the replica, and reports
//! where it is:
//!
//! - a replica with local files opens without the network, so a PoP that
//!   restarts while the origin is down still serves reads;
//! - a new replica bootstraps through `Builder::new_remote_replica`,
//!   which picks the sync protocol the primary speaks;
//! - a replica the primary no longer has history for (HTTP 410) is
//!   replaced by a fresh one, in a new file, without stopping reads;
//! - applied commits do not wait for the disk ([`durability`]); a replica
//!   found after a machine crash is replaced the same way.

pub mod delay;
mod durability;
pub mod feed;
mod follow;
mod position;
pub mod relay;
pub mod tls;
pub mod write;
mod writeback;

pub use position::Position;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

/// How a replica finds and follows its primary.
#[derive(Debug, Clone)]
pub struct Config {
    /// The database's label (`catalog`), used in file names and logs.
    pub label: String,
    /// Directory for the replica's files.
    pub dir: PathBuf,
    /// The primary's database URL (`http://origin/db/catalog`,
    /// `libsql://name.turso.io`).
    pub url: String,
    pub token: String,
    /// Time between pulls while no push stream is up.
    pub interval: Duration,
    /// Follow the primary's push stream (our origin has one; a primary
    /// without answers 404 and the replica pulls on the interval).
    pub push: bool,
    /// Simulated extra round-trip time to the primary.
    pub delay: Duration,
    /// Whom an `https` primary must prove it is ([`tls::client_config`]).
    pub tls: tls::ClientConfig,
}

/// What the status endpoint and the logs report.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Status {
    pub label: String,
    /// True once the replica has a complete local copy.
    pub bootstrapped: bool,
    /// Applied position: generation and frame.
    pub position: Option<Position>,
    /// The primary's position, when it says (Turso reports only the
    /// generation).
    pub primary: Option<Position>,
    /// Frames the replica lacks, when both positions are in the same
    /// generation.
    pub frames_behind: Option<u64>,
    /// Milliseconds since the last successful pull.
    pub since_last_sync_ms: Option<u64>,
    /// Milliseconds since the replica was last known to hold the
    /// primary's newest position (0 while it does): how stale a read here
    /// may be. It grows while the primary cannot be reached, whatever the
    /// frame count last said.
    pub lag_ms: Option<u64>,
    pub last_error: Option<String>,
    pub syncs: u64,
    pub failed_syncs: u64,
    pub bootstraps: u64,
    /// A push stream is up and the replica follows it.
    pub pushed: bool,
}

/// The live database and which incarnation it is.
#[derive(Clone)]
pub struct Active {
    pub db: Arc<libsql::Database>,
    /// Changes when the replica is replaced; pooled connections of an
    /// older epoch must be dropped.
    pub epoch: u64,
    path: PathBuf,
    /// A connection held open for the file's life. SQLite keeps a WAL's
    /// index in shared memory only while a connection has the file open;
    /// the next connection to open it alone rebuilds the index by reading
    /// the whole WAL. The `libsql` client opens a connection for every
    /// pull, and a replica's WAL holds a generation's frames (up to 64
    /// MB): under the checkout bench a PoP spent 40% of its samples
    /// rebuilding it (docs/benchmarks.md). After one read it runs nothing,
    /// so it holds no snapshot. Opened through a plain handle on the file,
    /// which reads use too ([`Active::plain`]).
    held: Option<(Arc<libsql::Database>, Arc<libsql::Connection>)>,
}

impl Active {
    /// The replica's database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A plain handle on the replica's file, for reads, if it could be
    /// opened. Its connections read the same file as the replica's own,
    /// without the `libsql` replica's wrapping: no parse of each statement
    /// to decide where it runs, and statements that can be kept prepared
    /// (a replica connection's ignore `reset`).
    pub fn plain(&self) -> Option<&Arc<libsql::Database>> {
        self.held.as_ref().map(|(db, _)| db)
    }
}

pub struct Replica {
    config: Config,
    connector: delay::Connector,
    /// What the `libsql` replica's requests go through.
    relay: relay::Relay,
    feed: Arc<Mutex<feed::Feed>>,
    /// Wakes the sync loop: frames were pushed, or a writer waits.
    wake: Arc<tokio::sync::Notify>,
    /// The applied position after each round, for writers to wait on.
    applied: tokio::sync::watch::Sender<Option<Position>>,
    /// Rounds asked for and finished, for [`Replica::pull_now`].
    rounds: tokio::sync::watch::Sender<(u64, u64)>,
    /// Writes to the primary, over kept-alive connections.
    writer: hyper014::Client<delay::Connector>,
    /// The primary pushes (ours does; one that does not is found out at
    /// bootstrap, and its replica talks to it directly).
    pushes: std::sync::atomic::AtomicBool,
    /// Readers hold it shared; a pull that must checkpoint holds it
    /// alone (see [`Replica::read_gate`]).
    gate: tokio::sync::RwLock<()>,
    active: RwLock<Option<Active>>,
    state: Mutex<State>,
    epochs: AtomicU64,
    /// The active copy may have lost commits to a machine crash: it
    /// serves reads, and is replaced instead of pulled into.
    replace: std::sync::atomic::AtomicBool,
}

#[derive(Default)]
struct State {
    status: Status,
    /// The last pull could not checkpoint because readers were active.
    checkpoint_blocked: bool,
    last_sync: Option<Instant>,
    /// When the replica was last seen at the primary's newest position,
    /// from fresh news only (a pull, a probe, a live push stream).
    caught_up: Option<Instant>,
    failures_in_a_row: u32,
    last_report: Option<Instant>,
}

/// How often the primary's position is asked for while no push stream
/// says it.
const PROBE_EVERY: Duration = Duration::from_millis(500);
/// Longest a connection for writes is kept idle: inside the origin's
/// own idle limits, so a kept connection is one it still holds.
const WRITER_IDLE: Duration = Duration::from_secs(30);
/// Longest one pull may take. The `libsql` client sets no timeout of its
/// own, and a pull that never ends would stop replication (and every
/// write that waits to read its own) without a word. A long catch-up cut
/// short loses nothing: every committed transaction it applied stays, and
/// the next round goes on from there.
const SYNC_TIMEOUT: Duration = Duration::from_secs(15);

/// Frames a replica lacks, when both positions are in one generation.
fn frames_behind(replica: Option<Position>, primary: Option<Position>) -> Option<u64> {
    match (replica, primary) {
        (Some(p), Some(q)) if p.generation == q.generation => {
            Some(u64::from(q.frame.saturating_sub(p.frame)))
        }
        _ => None,
    }
}

/// The replica thread's nice value (0 is the default, 19 the lowest).
const REPLICA_NICE: i32 = 10;

/// How often the position is logged while all is well.
const REPORT_EVERY: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("the primary no longer has this replica's history: {0}")]
    Gone(String),
    #[error(transparent)]
    Libsql(#[from] libsql::Error),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// One pull, bounded by [`SYNC_TIMEOUT`].
async fn pull(db: &libsql::Database) -> Result<(), Error> {
    match tokio::time::timeout(SYNC_TIMEOUT, db.sync()).await {
        Ok(result) => result.map(drop).map_err(classify),
        Err(_) => Err(Error::Io(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("a pull took longer than {SYNC_TIMEOUT:?}"),
        ))),
    }
}

/// libsql reports a 410 from the sync endpoint as an error whose text
/// carries the status.
fn classify(e: libsql::Error) -> Error {
    let text = e.to_string();
    if text.contains("PullFrame(410") || text.contains("status=410") || text.contains(" 410 ") {
        Error::Gone(text)
    } else {
        Error::Libsql(e)
    }
}

impl Replica {
    /// Opens the replica's existing files, if any, and starts following
    /// the primary in the background.
    pub async fn start(config: Config) -> Result<Arc<Replica>, Error> {
        std::fs::create_dir_all(&config.dir)?;
        durability::relax(&config.dir).await;
        let rebooted = durability::rebooted_since_applied(&config.dir)?;
        let connector = delay::connector(config.delay, config.tls.clone());
        let feed = Arc::new(Mutex::new(feed::Feed::default()));
        let replica = Arc::new(Replica {
            relay: relay::Relay::new(&config.url, feed.clone(), connector.clone()),
            feed,
            wake: Arc::new(tokio::sync::Notify::new()),
            applied: tokio::sync::watch::Sender::new(None),
            rounds: tokio::sync::watch::Sender::new((0, 0)),
            writer: hyper014::Client::builder()
                .pool_idle_timeout(WRITER_IDLE)
                .build(connector.clone()),
            pushes: std::sync::atomic::AtomicBool::new(config.push),
            connector,
            gate: tokio::sync::RwLock::new(()),
            active: RwLock::new(None),
            state: Mutex::new(State {
                status: Status {
                    label: config.label.clone(),
                    ..Status::default()
                },
                ..State::default()
            }),
            epochs: AtomicU64::new(0),
            replace: std::sync::atomic::AtomicBool::new(false),
            config,
        });
        if let Some(path) = replica.latest_file()? {
            match replica.open_existing(&path).await {
                Ok(()) if rebooted => {
                    tracing::warn!(db = %replica.config.label, path = %path.display(), "the machine restarted since this replica last applied frames, which may be lost: serving it until a fresh bootstrap replaces it");
                    replica.replace.store(true, Ordering::Relaxed);
                }
                Ok(()) => {
                    tracing::info!(db = %replica.config.label, path = %path.display(), "opened the local replica")
                }
                Err(e) => {
                    tracing::warn!(db = %replica.config.label, error = %e, "the local replica does not open; bootstrapping a new one")
                }
            }
        }
        let label = replica.config.label.clone();
        let loops = Arc::downgrade(&replica);
        std::thread::Builder::new()
            .name(format!("replica-{label}"))
            .spawn(move || {
                // Below requests when both want a core: applying frames is
                // light, but a generation's checkpoint copies and truncates
                // tens of megabytes in the kernel (per thread on Linux).
                if let Err(e) = rustix::process::setpriority_process(None, REPLICA_NICE) {
                    tracing::debug!(error = %e, "the replica runs at normal priority");
                }
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        tracing::error!(db = %label, error = %e, "the replica's runtime did not start; it will not follow the primary");
                        return;
                    }
                };
                rt.block_on(Replica::follow(loops));
            })?;
        Ok(replica)
    }

    /// The replica's rounds, its probes of the primary and its push
    /// stream, until the replica is dropped. They run on a thread of their
    /// own: `libsql` applies frames and checkpoints inside its async
    /// `sync`, synchronously, on whichever thread polls it. At a new
    /// generation that checkpoint copies the generation's pages into the
    /// file and syncs it (56 ms seen under the checkout bench), and on a
    /// request worker every request queued behind it waited as long.
    async fn follow(replica: std::sync::Weak<Replica>) {
        let Some(this) = replica.upgrade() else {
            return;
        };
        let pushes = this.pushes.load(Ordering::Relaxed);
        drop(this);
        let weak = replica.clone();
        let rounds = tokio::spawn(async move {
            let Some(wake) = weak.upgrade().map(|r| r.wake.clone()) else {
                return;
            };
            loop {
                let Some(replica) = weak.upgrade() else {
                    return;
                };
                let asked = replica.rounds.borrow().0;
                let pause = replica.step().await;
                replica.rounds.send_modify(|r| r.1 = r.1.max(asked));
                drop(replica);
                tokio::select! {
                    _ = tokio::time::sleep(pause) => {}
                    _ = wake.notified() => {}
                }
            }
        });
        // Where the primary is, asked on its own schedule so the lag is
        // known while a long pull runs; a push stream says it instead.
        let weak = replica.clone();
        let probes = tokio::spawn(async move {
            loop {
                let Some(replica) = weak.upgrade() else {
                    return;
                };
                let pushed = replica.feed.lock().expect("feed lock").is_live();
                if !pushed && let Some(p) = replica.primary_position().await {
                    let applied = *replica.applied.borrow();
                    let mut st = replica.state.lock().expect("replica state");
                    st.status.primary = Some(p);
                    if frames_behind(applied, Some(p)) == Some(0) {
                        st.caught_up = Some(Instant::now());
                    }
                }
                drop(replica);
                tokio::time::sleep(PROBE_EVERY).await;
            }
        });
        if pushes && let Some(replica) = replica.upgrade() {
            let follow = follow::Follow {
                label: replica.config.label.clone(),
                url: replica.config.url.clone(),
                token: replica.config.token.clone(),
                connector: replica.connector.clone(),
                delay: replica.config.delay,
                feed: replica.feed.clone(),
                wake: replica.wake.clone(),
            };
            let weak = Arc::downgrade(&replica);
            drop(replica);
            follow
                .run(move || {
                    let replica = weak.upgrade()?;
                    if !replica.pushes.load(Ordering::Relaxed) {
                        return None;
                    }
                    Some(replica.active().and_then(|a| Position::read(&a.path)))
                })
                .await;
        }
        let _ = tokio::join!(rounds, probes);
    }

    /// The URL and connector the `libsql` replica is built with: through
    /// the relay when following pushes, else straight to the primary.
    fn libsql_url(&self) -> String {
        if self.pushes.load(Ordering::Relaxed) {
            relay::Relay::replica_url(&self.config.url)
        } else {
            self.config.url.clone()
        }
    }

    /// Sends one write to the primary and waits (at most `limit` in all)
    /// until this replica has applied it, so what the writer reads next
    /// includes it. A write whose wait runs out still happened; it is
    /// answered, and the lag is logged.
    pub async fn write(
        &self,
        sql: &str,
        args: Vec<libsql::Value>,
        max_answer_bytes: usize,
        limit: Duration,
    ) -> Result<write::Written, write::WriteError> {
        let started = Instant::now();
        let written = tokio::time::timeout(
            limit,
            write::execute(
                &self.writer,
                &self.config.url,
                &self.config.token,
                sql,
                args,
                max_answer_bytes,
            ),
        )
        .await
        .map_err(|_| {
            write::WriteError::Unknown(format!("the primary did not answer within {limit:?}"))
        })??;
        let left = limit.saturating_sub(started.elapsed());
        let caught_up = match written.position {
            Some(target) => self.wait_for(target, left).await,
            // A primary that does not say: pull once after the write.
            None => self.pull_now(left).await,
        };
        if !caught_up {
            tracing::warn!(db = %self.config.label, position = ?written.position, "a write was answered before this replica applied it");
        }
        Ok(written)
    }

    /// Waits until the replica has applied `target`; a round is asked
    /// for if pushes have not brought it soon.
    async fn wait_for(&self, target: Position, limit: Duration) -> bool {
        let started = Instant::now();
        let mut applied = self.applied.subscribe();
        // A pushed commit arrives with the write's answer; a pull is
        // asked for only if it has not come within a moment. A primary
        // that does not push (sqld) brings it only with a pull: at once.
        let nudge = if self.pushes.load(Ordering::Relaxed) {
            Duration::from_millis(20).max(self.config.delay / 4)
        } else {
            Duration::ZERO
        };
        let mut nudged = false;
        loop {
            // The metadata file moves with every commit applied, also in
            // the middle of a long pull.
            let now = self.applied_now().await;
            if now.is_some_and(|p| p >= target) {
                return true;
            }
            let waited = started.elapsed();
            if waited >= limit {
                return false;
            }
            if !nudged && waited >= nudge {
                nudged = true;
                self.wake.notify_one();
            }
            let _ = tokio::time::timeout(Duration::from_millis(5), applied.changed()).await;
        }
    }

    /// Asks for a round of the sync loop and waits (at most `limit`) for
    /// one that started after the call to finish.
    pub async fn pull_now(&self, limit: Duration) -> bool {
        let mut target = 0;
        self.rounds.send_modify(|r| {
            r.0 += 1;
            target = r.0;
        });
        let mut rounds = self.rounds.subscribe();
        self.wake.notify_one();
        tokio::time::timeout(limit, rounds.wait_for(|r| r.1 >= target))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    pub fn label(&self) -> &str {
        &self.config.label
    }

    /// Hold this while reading. At the end of a generation the replica
    /// must checkpoint its WAL, which SQLite refuses while any reader is
    /// inside it; under steady reads that could stall replication, so a
    /// pull that failed that way runs once more with readers paused (for
    /// one pull: a round trip or two).
    pub async fn read_gate(&self) -> tokio::sync::RwLockReadGuard<'_, ()> {
        self.gate.read().await
    }

    /// The read gate if no pull holds it alone now; `None` rather than
    /// wait.
    pub fn try_read_gate(&self) -> Option<tokio::sync::RwLockReadGuard<'_, ()>> {
        self.gate.try_read().ok()
    }

    /// The database to read from, once bootstrapped.
    pub fn active(&self) -> Option<Active> {
        self.active.read().expect("replica lock").clone()
    }

    pub fn is_ready(&self) -> bool {
        self.state
            .lock()
            .expect("replica state")
            .status
            .bootstrapped
    }

    /// Where the active copy is: its metadata file (sync protocol), else
    /// the client's replication index (sqld's gRPC replication).
    async fn applied_now(&self) -> Option<Position> {
        let a = self.active()?;
        if let Some(p) = Position::read(&a.path) {
            return Some(p);
        }
        a.db.replication_index()
            .await
            .ok()
            .flatten()
            .map(Position::from_index)
    }

    /// The status now: the applied position is read live, so a long pull
    /// shows its progress commit by commit (a replica of sqld: as of the
    /// last pull).
    pub fn status(&self) -> Status {
        let live = self.active().and_then(|a| Position::read(&a.path));
        let mut st = self.state.lock().expect("replica state");
        let mut s = st.status.clone();
        s.position = live.or(s.position);
        let feed = self.feed.lock().expect("feed lock");
        s.pushed = feed.is_live();
        if s.pushed {
            s.primary = feed.primary().or(s.primary);
        }
        drop(feed);
        s.frames_behind = frames_behind(s.position, s.primary);
        if s.pushed && s.frames_behind == Some(0) {
            st.caught_up = Some(Instant::now());
        }
        s.since_last_sync_ms = st.last_sync.map(|t| t.elapsed().as_millis() as u64);
        s.lag_ms = st.caught_up.map(|t| t.elapsed().as_millis() as u64);
        s
    }

    fn file(&self, n: u64) -> PathBuf {
        self.config
            .dir
            .join(format!("{}-{n}.db", self.config.label))
    }

    /// Replica files are `{label}-{n}.db`; the highest `n` is current.
    fn files(&self) -> std::io::Result<Vec<u64>> {
        let prefix = format!("{}-", self.config.label);
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&self.config.dir)? {
            let name = entry?.file_name();
            let name = name.to_string_lossy();
            if let Some(n) = name
                .strip_prefix(&prefix)
                .and_then(|r| r.strip_suffix(".db"))
                .and_then(|n| n.parse().ok())
            {
                out.push(n);
            }
        }
        out.sort_unstable();
        Ok(out)
    }

    fn latest_file(&self) -> std::io::Result<Option<PathBuf>> {
        Ok(self
            .files()?
            .last()
            .map(|&n| self.file(n))
            .filter(|p| Position::read(p).is_some()))
    }

    /// A replica with its sync metadata opens without the network.
    async fn open_existing(&self, path: &Path) -> Result<(), Error> {
        let db = libsql::Builder::new_synced_database(
            path,
            self.libsql_url(),
            self.config.token.clone(),
        )
        .connector(self.relay.clone())
        .remote_writes(true)
        .read_your_writes(true)
        .build()
        .await?;
        self.install(db, path).await;
        Ok(())
    }

    async fn install(&self, db: libsql::Database, path: &Path) {
        let index = match hold_open(path).await {
            Ok((db, conn)) => Some((Arc::new(db), Arc::new(conn))),
            Err(e) => {
                tracing::warn!(db = %self.config.label, error = %e, "could not open the replica's file plainly; each pull will rebuild its WAL index, and reads go through the replica's own connections");
                None
            }
        };
        let epoch = self.epochs.fetch_add(1, Ordering::Relaxed) + 1;
        *self.active.write().expect("replica lock") = Some(Active {
            db: Arc::new(db),
            epoch,
            path: path.to_path_buf(),
            held: index,
        });
        let mut st = self.state.lock().expect("replica state");
        st.status.bootstrapped = true;
        st.status.position = Position::read(path);
        self.applied.send_replace(st.status.position);
    }

    /// A fresh replica in a new file, from the primary's current base.
    async fn bootstrap(&self) -> Result<(), Error> {
        if self.pushes.load(Ordering::Relaxed) && !self.primary_pushes().await? {
            tracing::info!(db = %self.config.label, "the primary does not push; pulling on the interval");
            self.pushes.store(false, Ordering::Relaxed);
        }
        let next = self.files()?.last().map_or(1, |n| n + 1);
        let path = self.file(next);
        let db = libsql::Builder::new_remote_replica(
            &path,
            self.libsql_url(),
            self.config.token.clone(),
        )
        .connector(self.relay.clone())
        .read_your_writes(true)
        .build()
        .await?;
        db.sync().await.map_err(classify)?;
        self.install(db, &path).await;
        self.state.lock().expect("replica state").status.bootstraps += 1;
        tracing::info!(db = %self.config.label, path = %path.display(), "bootstrapped a replica from the primary");
        // Older files are no longer read; open connections keep theirs.
        for n in self.files()? {
            if n < next {
                for suffix in ["", "-wal", "-shm", "-info", "-client_wal_index"] {
                    let mut p = self.file(n).into_os_string();
                    p.push(suffix);
                    let _ = std::fs::remove_file(p);
                }
            }
        }
        Ok(())
    }

    /// One round: bootstrap or pull, then record the outcome. Returns
    /// how long to wait before the next round.
    async fn step(&self) -> Duration {
        let exclusive = self.state.lock().expect("replica state").checkpoint_blocked;
        let replace = self.replace.load(Ordering::Relaxed);
        let result = match self.active() {
            None => self.bootstrap().await,
            Some(_) if replace => {
                let done = self.bootstrap().await;
                if done.is_ok() {
                    self.replace.store(false, Ordering::Relaxed);
                }
                done
            }
            Some(a) if exclusive => {
                let _alone = self.gate.write().await;
                pull(&a.db).await
            }
            Some(a) => pull(&a.db).await,
        };
        if result.is_ok()
            && let Some(a) = self.active()
        {
            writeback::start(&a.path);
        }
        let position = self.applied_now().await;
        let gone = matches!(result, Err(Error::Gone(_)));
        let pause = self.record(result, position);
        if gone {
            // Keep serving the old copy until the new one is ready.
            if let Err(e) = self.rebootstrap().await {
                tracing::warn!(db = %self.config.label, error = %e, "bootstrapping a new replica failed");
            }
            return self.config.interval;
        }
        pause
    }

    /// Records a round's outcome; returns the pause before the next.
    fn record(&self, result: Result<(), Error>, position: Option<Position>) -> Duration {
        if let Some(p) = position {
            self.feed.lock().expect("feed lock").applied(p);
        }
        self.applied.send_if_modified(|a| {
            let moved = *a != position;
            *a = position;
            moved
        });
        let mut st = self.state.lock().expect("replica state");
        st.status.position = position;
        st.checkpoint_blocked =
            matches!(&result, Err(Error::Libsql(e)) if e.to_string().contains("checkpoint"));
        if st.last_report.is_none_or(|t| t.elapsed() >= REPORT_EVERY) {
            st.last_report = Some(Instant::now());
            tracing::info!(
                db = %self.config.label,
                ?position,
                primary = ?st.status.primary,
                frames_behind = ?frames_behind(position, st.status.primary),
                since_last_sync_ms = ?st.last_sync.map(|t| t.elapsed().as_millis()),
                "replication position"
            );
        }
        match result {
            Ok(()) => {
                if st.failures_in_a_row > 0 {
                    tracing::info!(db = %self.config.label, ?position, "replication resumed");
                }
                st.status.syncs += 1;
                st.last_sync = Some(Instant::now());
                if frames_behind(position, st.status.primary) == Some(0) {
                    st.caught_up = st.last_sync;
                }
                st.status.last_error = None;
                st.failures_in_a_row = 0;
                self.config.interval
            }
            Err(e) => {
                st.status.failed_syncs += 1;
                st.failures_in_a_row = st.failures_in_a_row.saturating_add(1);
                if st.failures_in_a_row == 1 {
                    tracing::warn!(db = %self.config.label, error = %e, "replication sync failed; reads continue from the local copy");
                }
                st.status.last_error = Some(e.to_string());
                if st.checkpoint_blocked {
                    return Duration::ZERO;
                }
                // Back off while the primary is unreachable: up to 5 s.
                let shift = st.failures_in_a_row.min(6);
                (self.config.interval * (1 << shift)).min(Duration::from_secs(5))
            }
        }
    }

    async fn rebootstrap(&self) -> Result<(), Error> {
        tracing::warn!(db = %self.config.label, "the primary dropped this replica's history; bootstrapping a new replica");
        self.bootstrap().await
    }

    /// The primary's `/info`, within `limit`; `None` if it has none.
    async fn info(&self, limit: Duration) -> Result<Option<serde_json::Value>, String> {
        let client = hyper014::Client::builder().build::<_, hyper014::Body>(self.connector.clone());
        let url = format!(
            "{}/info",
            self.config.url.replacen("libsql://", "https://", 1)
        );
        let req = hyper014::Request::get(url)
            .header("authorization", format!("Bearer {}", self.config.token))
            .body(hyper014::Body::empty())
            .map_err(|e| e.to_string())?;
        let res = tokio::time::timeout(limit, client.request(req))
            .await
            .map_err(|_| "the primary did not answer /info".to_string())?
            .map_err(|e| format!("asking the primary's /info: {e}"))?;
        if !res.status().is_success() {
            return Ok(None);
        }
        let body = hyper014::body::to_bytes(res.into_body())
            .await
            .map_err(|e| e.to_string())?;
        Ok(Some(serde_json::from_slice(&body).unwrap_or_default()))
    }

    /// Whether the primary is one that pushes: its `/info` says which
    /// generations it keeps, which only ours does.
    async fn primary_pushes(&self) -> Result<bool, Error> {
        let info = self
            .info(Duration::from_secs(10))
            .await
            .map_err(|e| Error::Io(std::io::Error::other(e)))?;
        Ok(info.is_some_and(|v| v.get("oldest_generation").is_some()))
    }

    /// Asks the primary where it is: our origin's `/info`, else (sqld)
    /// the replication index a read over Hrana is answered with.
    async fn primary_position(&self) -> Option<Position> {
        let limit = Duration::from_secs(2);
        match self.info(limit).await.ok()? {
            Some(v) => Some(Position {
                generation: v["current_generation"].as_u64()? as u32,
                frame: v["current_frame"].as_u64().unwrap_or(0) as u32,
            }),
            None => {
                let probe = write::execute(
                    &self.writer,
                    &self.config.url,
                    &self.config.token,
                    "SELECT 1",
                    Vec::new(),
                    4096,
                );
                tokio::time::timeout(limit, probe)
                    .await
                    .ok()?
                    .ok()?
                    .position
            }
        }
    }
}

/// A plain connection to a replica's file, for [`Active`] to hold. It
/// reads once: SQLite maps the WAL's index at a connection's first read,
/// and keeps it mapped until the connection closes.
async fn hold_open(path: &Path) -> Result<(libsql::Database, libsql::Connection), libsql::Error> {
    let db = libsql::Builder::new_local(path).build().await?;
    let conn = db.connect()?;
    let mut rows = conn.query("SELECT count(*) FROM sqlite_schema", ()).await?;
    while rows.next().await?.is_some() {}
    drop(rows);
    Ok((db, conn))
}
