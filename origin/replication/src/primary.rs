//! Generations on disk, and the shipper thread that fills them from the
//! WAL.
//!
//! Layout of the replication directory: `gen-N.base` is the database at
//! the start of generation N (only the current one is kept) and
//! `gen-N.frames` its frame log (the last [`Options::retain`] are kept).

use crate::log::{self, FRAME_BYTES, FrameLog, PAGE_BYTES, Pace};
use crate::wal::{self, FrameHeader, Header, Scanner, Step};
use db_writer::checkpoint;
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::time::{Duration, Instant};

/// Most frames one pull answers with, whatever range was asked for.
pub const MAX_PULL_FRAMES: u32 = 1024;
/// Frames read from the WAL per read call.
const READ_BATCH: usize = 256;
/// Committed frames buffered before they are appended to the log.
const APPEND_BYTES: usize = 8 << 20;

#[derive(Debug, Clone)]
pub struct Options {
    /// A generation whose log reaches this many frames is closed and the
    /// next one starts from a new base.
    pub roll_frames: u32,
    /// Generations whose logs are kept for replicas that fall behind.
    pub retain: u32,
    /// WAL frames after which the shipper checkpoints the primary.
    pub checkpoint_frames: u32,
    /// How often the WAL is read when nobody nudges the shipper.
    pub poll: Duration,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            roll_frames: 16_384,
            retain: 8,
            checkpoint_frames: 1_000,
            poll: Duration::from_millis(25),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error(transparent)]
    Io(#[from] io::Error),
    #[error(transparent)]
    Sql(#[from] libsql::Error),
    #[error("replication needs 4096-byte pages; the database uses {0}")]
    PageSize(i64),
    #[error("replication needs WAL mode; the database is in {0:?} mode")]
    JournalMode(String),
    #[error("the checkpoint could not finish (busy); is another process using the database?")]
    CheckpointBusy,
}

/// Where a replica (or the primary) is in the history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Position {
    pub generation: u32,
    /// Frames of the generation's log (applied, for a replica).
    pub frame: u32,
}

/// Why a pull got no frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pull {
    /// Nothing at or after the start frame in that generation; the
    /// current generation is `current`.
    End { current: u32 },
    /// The generation is not (or no longer) served; bootstrap again.
    Gone { generation: u32, current: u32 },
    /// Frames are numbered from 1 and the range must not be empty.
    BadRange,
}

#[derive(Default)]
struct Passes {
    requested: u64,
    finished: u64,
}

struct State {
    current: u32,
    logs: BTreeMap<u32, Arc<FrameLog>>,
}

pub struct Primary {
    name: String,
    db_path: PathBuf,
    dir: PathBuf,
    options: Options,
    state: RwLock<State>,
    wake: (Mutex<bool>, Condvar),
    /// Shipping passes asked for and finished, for [`Primary::ship_now`].
    passes: (Mutex<Passes>, Condvar),
    stop: AtomicBool,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// The generation whose base a roll's thread is writing, if any
    /// (see [`Primary::roll`]); signalled when it is written.
    base_pending: (Mutex<Option<u32>>, Condvar),
    roller: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// The newest position shipped, for push streams to wait on.
    shipped: tokio::sync::watch::Sender<Position>,
}

/// Settings every connection that writes a replicated database needs:
/// only the shipper may checkpoint, after it has shipped the frames.
pub async fn prepare_connection(conn: &libsql::Connection) -> Result<(), libsql::Error> {
    for pragma in [
        "PRAGMA wal_autocheckpoint = 0",
        "PRAGMA journal_size_limit = 67108864",
    ] {
        let mut rows = conn.query(pragma, ()).await?;
        while rows.next().await?.is_some() {}
    }
    Ok(())
}

async fn query_one(conn: &libsql::Connection, sql: &str) -> Result<libsql::Value, libsql::Error> {
    let mut rows = conn.query(sql, ()).await?;
    let row = rows
        .next()
        .await?
        .ok_or_else(|| libsql::Error::QueryReturnedNoRows)?;
    row.get_value(0)
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Writes `path` through a temporary file, so it is whole or absent.
fn write_atomic(path: &Path, fill: impl FnOnce(&File) -> io::Result<()>) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)?;
    fill(&file)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)?;
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}

/// How a roll's thread writes a base. A roll writes the whole database;
/// synced once at the end, all of it would queue at the disk ahead of
/// every commit's sync for as long as it takes (tens of milliseconds for
/// a 24 MB catalog here, hundreds for a long log). Synced in steps, the
/// commits' syncs get in between, and the pauses spread the roll's reads
/// and writes over a few hundred milliseconds: only a bootstrap waits
/// for the base.
const ROLL_PACE: Pace = Pace {
    sync_every: 2 << 20,
    pause: Duration::from_millis(10),
};

/// At startup nothing else runs yet: the same steps without pauses.
const STARTUP_PACE: Pace = Pace {
    sync_every: 2 << 20,
    pause: Duration::ZERO,
};

/// Writes `base` + the log's first `frames` frames to `out`, each page
/// once, synced in steps.
fn materialize(base: &Path, log: &FrameLog, frames: u32, out: &File, pace: Pace) -> io::Result<()> {
    let base = File::open(base)?;
    let mut buf = vec![0u8; pace.sync_every];
    let mut at = 0u64;
    loop {
        let n = read_some(&base, at, &mut buf)?;
        if n == 0 {
            break;
        }
        out.write_all_at(&buf[..n], at)?;
        out.sync_data()?;
        std::thread::sleep(pace.pause);
        at += n as u64;
    }
    out.set_len(at)?;
    log::fold(out, log, frames, Some(pace))
}

fn gens(dir: &Path, suffix: &str) -> io::Result<Vec<u32>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let name = entry?.file_name();
        let name = name.to_string_lossy();
        if let Some(n) = name
            .strip_prefix("gen-")
            .and_then(|r| r.strip_suffix(suffix))
            .and_then(|n| n.parse().ok())
        {
            out.push(n);
        }
    }
    out.sort_unstable();
    Ok(out)
}

impl Primary {
    /// Takes over replication of the database at `db_path`, with history
    /// in `dir`. Call it before anything else writes the database in
    /// this process run: it ships what the WAL holds, checkpoints, and
    /// checks the history still describes the file.
    pub async fn open(
        name: &str,
        db_path: &Path,
        dir: &Path,
        options: Options,
    ) -> Result<Arc<Primary>, Error> {
        std::fs::create_dir_all(dir)?;
        let db = libsql::Builder::new_local(db_path).build().await?;
        let writer = db.connect()?;
        prepare_connection(&writer).await?;
        match query_one(&writer, "PRAGMA journal_mode = WAL").await? {
            libsql::Value::Text(m) if m.eq_ignore_ascii_case("wal") => {}
            other => return Err(Error::JournalMode(format!("{other:?}"))),
        }
        match query_one(&writer, "PRAGMA page_size").await? {
            libsql::Value::Integer(4096) => {}
            libsql::Value::Integer(n) => return Err(Error::PageSize(n)),
            _ => return Err(Error::PageSize(0)),
        }
        let checkpointer = db.connect()?;
        prepare_connection(&checkpointer).await?;
        // Checkout peers (other origin processes) may be using the file:
        // the checkpoints below wait for their transactions to end.
        for conn in [&writer, &checkpointer] {
            conn.busy_timeout(Duration::from_secs(5))?;
        }

        let mut current = match gens(dir, ".base")?.last() {
            Some(&n) => n,
            None => {
                if checkpoint(&writer, "TRUNCATE").await?[0] != 0 {
                    return Err(Error::CheckpointBusy);
                }
                let first = fresh_generation(0);
                write_atomic(&dir.join(base_name(first)), |f| {
                    io::copy(&mut File::open(db_path)?, &mut &*f).map(drop)
                })?;
                first
            }
        };
        if finish_roll(dir, current)? {
            current += 1;
        }
        let mut logs = BTreeMap::new();
        for n in gens(dir, ".frames")? {
            if n <= current && n + options.retain > current {
                logs.insert(n, Arc::new(FrameLog::open(&dir.join(frames_name(n)))?));
            } else {
                std::fs::remove_file(dir.join(frames_name(n)))?;
            }
        }
        if let std::collections::btree_map::Entry::Vacant(e) = logs.entry(current) {
            e.insert(Arc::new(FrameLog::open(&dir.join(frames_name(current)))?));
        }
        let primary = Arc::new(Primary {
            name: name.to_string(),
            db_path: db_path.to_path_buf(),
            dir: dir.to_path_buf(),
            options,
            state: RwLock::new(State { current, logs }),
            wake: (Mutex::new(false), Condvar::new()),
            passes: (Mutex::new(Passes::default()), Condvar::new()),
            stop: AtomicBool::new(false),
            thread: Mutex::new(None),
            base_pending: (Mutex::new(None), Condvar::new()),
            roller: Mutex::new(None),
            shipped: tokio::sync::watch::Sender::new(Position {
                generation: current,
                frame: 0,
            }),
        });

        // Ship what the last run left in the WAL, then fold it into the
        // file and start from a base that is the file itself.
        let mut shipper = Shipper::new(primary.clone(), writer, checkpointer, db);
        shipper.resume()?;
        shipper.ship()?;
        if checkpoint(&shipper.checkpointer, "TRUNCATE").await?[0] != 0 {
            return Err(Error::CheckpointBusy);
        }
        shipper.scanner = None;
        primary.start_from_file()?;
        primary.publish();
        let thread = std::thread::Builder::new()
            .name(format!("ship-{name}"))
            .spawn(move || shipper.run())?;
        *primary.thread.lock().expect("thread lock") = Some(thread);
        let p = primary.position();
        tracing::info!(
            db = name,
            generation = p.generation,
            frame = p.frame,
            "replication ready"
        );
        Ok(primary)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The newest frame shipped.
    pub fn position(&self) -> Position {
        let st = self.state.read().expect("state lock");
        Position {
            generation: st.current,
            frame: st.logs.get(&st.current).map_or(0, |l| l.len()),
        }
    }

    /// Tells push streams where the log ends now, if that moved.
    fn publish(&self) {
        let now = self.position();
        self.shipped.send_if_modified(|p| {
            let moved = *p != now;
            *p = now;
            moved
        });
    }

    /// Changes whenever shipped frames (or a new generation) land.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<Position> {
        self.shipped.subscribe()
    }

    /// Whether frames of `generation` are still served.
    pub fn serves(&self, generation: u32) -> bool {
        self.state
            .read()
            .expect("state lock")
            .logs
            .contains_key(&generation)
    }

    /// The oldest generation whose frames are still served.
    pub fn oldest_generation(&self) -> u32 {
        let st = self.state.read().expect("state lock");
        st.logs.keys().next().copied().unwrap_or(st.current)
    }

    /// Tells the shipper a write just committed, so it need not wait for
    /// its next poll.
    pub fn nudge(&self) {
        let (flag, cv) = &self.wake;
        *flag.lock().expect("wake lock") = true;
        cv.notify_one();
    }

    /// Waits (at most `limit`) until a shipping pass that started after
    /// this call has finished, so everything committed before the call
    /// is in the log. Answering a write only then gives the writer
    /// read-your-writes: its next pull finds the write. False on timeout.
    pub fn ship_now(&self, limit: Duration) -> bool {
        let (lock, cv) = &self.passes;
        let target = {
            let mut p = lock.lock().expect("passes lock");
            p.requested += 1;
            p.requested
        };
        self.nudge();
        let p = lock.lock().expect("passes lock");
        let (p, _) = cv
            .wait_timeout_while(p, limit, |p| p.finished < target)
            .expect("passes lock");
        p.finished >= target
    }

    /// Frames `start..end` of `generation` (bounded by [`MAX_PULL_FRAMES`]).
    pub fn frames(
        &self,
        generation: u32,
        start: u32,
        end: u32,
    ) -> Result<Result<Vec<u8>, Pull>, io::Error> {
        if start == 0 || end <= start {
            return Ok(Err(Pull::BadRange));
        }
        let (log, current) = {
            let st = self.state.read().expect("state lock");
            (st.logs.get(&generation).cloned(), st.current)
        };
        let Some(log) = log else {
            return Ok(Err(Pull::Gone {
                generation,
                current,
            }));
        };
        let end = end.min(start.saturating_add(MAX_PULL_FRAMES));
        let bytes = log.read(start, end)?;
        if bytes.is_empty() {
            return Ok(Err(Pull::End { current }));
        }
        Ok(Ok(bytes))
    }

    /// The base snapshot of `generation`, if it is the current one. Right
    /// after a roll its base may still be being written: this waits for
    /// it (at most [`BASE_WAIT`]; a bootstrap is rare, a base takes well
    /// under a second).
    pub fn export(&self, generation: u32) -> Result<Result<File, Pull>, io::Error> {
        {
            let (lock, cv) = &self.base_pending;
            let pending = lock.lock().expect("base lock");
            let (pending, _) = cv
                .wait_timeout_while(pending, BASE_WAIT, |p| *p == Some(generation))
                .expect("base lock");
            if *pending == Some(generation) {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("the base of generation {generation} is still being written"),
                ));
            }
        }
        let st = self.state.read().expect("state lock");
        if generation != st.current {
            return Ok(Err(Pull::Gone {
                generation,
                current: st.current,
            }));
        }
        File::open(self.dir.join(base_name(generation))).map(Ok)
    }

    /// Stops the shipper after a last pass over the WAL, and waits for a
    /// base being written.
    pub fn shutdown(&self) {
        self.stop.store(true, Ordering::Release);
        self.nudge();
        if let Some(t) = self.thread.lock().expect("thread lock").take() {
            let _ = t.join();
        }
        if let Some(t) = self.roller.lock().expect("roller lock").take() {
            let _ = t.join();
        }
    }

    fn base_path(&self, n: u32) -> PathBuf {
        self.dir.join(base_name(n))
    }

    /// At startup, with the WAL folded into the file: continue the
    /// current generation if nothing happened since its base, else start
    /// the next one from the file. If the file is not `base + log` (it
    /// was changed by something other than this origin), the history no
    /// longer describes it and is dropped, so replicas bootstrap again.
    fn start_from_file(&self) -> Result<(), Error> {
        let (current, log) = {
            let st = self.state.read().expect("state lock");
            (st.current, st.logs[&st.current].clone())
        };
        let file = std::fs::read(&self.db_path)?;
        let next = self.base_path(current + 1);
        let mut consistent = false;
        write_atomic(&next, |out| {
            materialize(&self.base_path(current), &log, log.len(), out, STARTUP_PACE)?;
            let mut rebuilt = vec![0u8; out.metadata()?.len() as usize];
            out.read_exact_at(&mut rebuilt, 0)?;
            consistent = rebuilt == file;
            if !consistent {
                out.set_len(0)?;
                out.write_all_at(&file, 0)?;
            }
            Ok(())
        })?;
        if consistent && log.is_empty() {
            // Nothing new: keep the generation replicas already have.
            std::fs::remove_file(&next)?;
            return Ok(());
        }
        if !consistent {
            tracing::warn!(
                db = %self.name,
                "the database changed outside the origin; replicas will bootstrap again"
            );
            let mut st = self.state.write().expect("state lock");
            for (n, _) in std::mem::take(&mut st.logs) {
                let _ = std::fs::remove_file(self.dir.join(frames_name(n)));
            }
        }
        let mut generation = current + 1;
        if !consistent {
            // A new history must not reuse generation numbers a stale
            // replica may hold: jump ahead (see `fresh_generation`).
            generation = fresh_generation(current);
            std::fs::rename(&next, self.base_path(generation))?;
        }
        self.advance(generation)?;
        self.drop_bases_before(generation)?;
        Ok(())
    }

    /// Makes `next` (whose base is written) the current generation.
    fn advance(&self, next: u32) -> io::Result<()> {
        let log = Arc::new(FrameLog::open(&self.dir.join(frames_name(next)))?);
        let dropped: Vec<u32> = {
            let mut st = self.state.write().expect("state lock");
            st.current = next;
            st.logs.insert(next, log);
            let keep_from = (next + 1).saturating_sub(self.options.retain);
            let old: Vec<u32> = st.logs.range(..keep_from).map(|(n, _)| *n).collect();
            for n in &old {
                st.logs.remove(n);
            }
            old
        };
        for n in dropped {
            // The generation is current already: a log left behind is
            // only disk, dropped at the next start.
            if let Err(e) = std::fs::remove_file(self.dir.join(frames_name(n))) {
                tracing::warn!(db = %self.name, generation = n, error = %e, "removing an old frame log failed");
            }
        }
        tracing::info!(db = %self.name, generation = next, "new replication generation");
        Ok(())
    }

    /// Removes the bases of generations before `generation`, if it is
    /// current (only the current generation's base is served).
    fn drop_bases_before(&self, generation: u32) -> io::Result<()> {
        // Held so no roll makes another generation current meanwhile.
        let st = self.state.read().expect("state lock");
        if st.current < generation {
            return Ok(());
        }
        for n in gens(&self.dir, ".base")? {
            if n < generation {
                std::fs::remove_file(self.base_path(n))?;
            }
        }
        Ok(())
    }

    /// Closes the current generation and starts the next, whose base
    /// (`base + log` of the one closed) a thread of its own writes. A
    /// roll reads the whole log (64 MB by default) and writes the whole
    /// database: on the shipper's thread that stopped shipping for as
    /// long, and at normal priority it took one of this machine's two
    /// cores from requests for ~90 ms (the checkout bench's stalls). The
    /// new generation's frames ship at once; only a bootstrap waits for
    /// the base ([`Primary::export`]). While one base is being written,
    /// the current log grows on rather than rolling again.
    fn roll(self: &Arc<Self>) -> io::Result<()> {
        let (lock, cv) = &self.base_pending;
        let mut pending = lock.lock().expect("base lock");
        if pending.is_some() {
            return Ok(());
        }
        let (current, log) = {
            let st = self.state.read().expect("state lock");
            (st.current, st.logs[&st.current].clone())
        };
        let next = current + 1;
        *pending = Some(next);
        drop(pending);
        if let Err(e) = self.advance(next) {
            *lock.lock().expect("base lock") = None;
            cv.notify_all();
            return Err(e);
        }
        let primary = self.clone();
        let frames = log.len();
        let spawned = std::thread::Builder::new()
            .name(format!("roll-{}", self.name))
            .spawn({
                let log = log.clone();
                move || {
                    // Per thread on Linux: requests keep the cores when
                    // both are busy.
                    if let Err(e) = rustix::process::setpriority_process(None, 19) {
                        tracing::debug!(error = %e, "a roll runs at normal priority");
                    }
                    primary.write_base(current, &log, frames);
                }
            });
        match spawned {
            Ok(thread) => {
                if let Some(done) = self.roller.lock().expect("roller lock").replace(thread) {
                    let _ = done.join();
                }
            }
            Err(e) => {
                tracing::warn!(db = %self.name, error = %e, "no thread for the roll; writing its base here");
                self.write_base(current, &log, frames);
            }
        }
        Ok(())
    }

    /// A roll's thread: writes the base of `from + 1`, retrying while the
    /// disk fails, then drops older bases.
    fn write_base(&self, from: u32, log: &FrameLog, frames: u32) {
        let next = from + 1;
        let started = Instant::now();
        let mut backoff = Duration::from_millis(100);
        let (lock, cv) = &self.base_pending;
        loop {
            match write_next_base(&self.dir, from, log, frames, ROLL_PACE) {
                Ok(()) => break,
                Err(e) => {
                    tracing::error!(db = %self.name, generation = next, error = %e, "writing a generation's base failed; retrying");
                    if self.stop.load(Ordering::Acquire) {
                        // The next start finishes it (`finish_roll`);
                        // an export meanwhile need not wait for it.
                        *lock.lock().expect("base lock") = None;
                        cv.notify_all();
                        return;
                    }
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                }
            }
        }
        tracing::debug!(
            db = %self.name,
            frames,
            ms = started.elapsed().as_millis() as u64,
            "wrote the next generation's base"
        );
        if let Err(e) = self.drop_bases_before(next) {
            tracing::warn!(db = %self.name, error = %e, "removing old bases failed");
        }
        *lock.lock().expect("base lock") = None;
        cv.notify_all();
    }

    fn current_log(&self) -> Arc<FrameLog> {
        let st = self.state.read().expect("state lock");
        st.logs[&st.current].clone()
    }
}

/// Writes the base of generation `from + 1` in `dir`: `from`'s base and
/// the first `frames` frames of its `log`.
fn write_next_base(
    dir: &Path,
    from: u32,
    log: &FrameLog,
    frames: u32,
    pace: Pace,
) -> io::Result<()> {
    write_atomic(&dir.join(base_name(from + 1)), |out| {
        materialize(&dir.join(base_name(from)), log, frames, out, pace)
    })
}

/// Longest an export waits for a roll's base to be written.
const BASE_WAIT: Duration = Duration::from_secs(30);

/// At startup: if the last run ended while a roll's thread was writing
/// the base of `current + 1` (its log exists, its base does not), writes
/// it from `current`'s base and log. True if `current + 1` is now
/// complete. Without `current`'s log (dropped by a retention of one) it
/// cannot be: the next generation's log is then dropped, and the file
/// no longer matching `base + log` starts a new history.
fn finish_roll(dir: &Path, current: u32) -> io::Result<bool> {
    let next = current + 1;
    if !dir.join(frames_name(next)).exists() {
        return Ok(false);
    }
    let log = dir.join(frames_name(current));
    if !log.exists() {
        std::fs::remove_file(dir.join(frames_name(next)))?;
        return Ok(false);
    }
    let log = FrameLog::open(&log)?;
    write_next_base(dir, current, &log, log.len(), STARTUP_PACE)?;
    std::fs::remove_file(dir.join(base_name(current)))?;
    tracing::info!(
        generation = next,
        "finished the base a roll had not written"
    );
    Ok(true)
}

/// The first generation of a new history. The sync protocol has no
/// history identity, so generations of different histories must not
/// collide: a new one starts at the current Unix time in seconds (or
/// after `previous`, if that is later).
fn fresh_generation(previous: u32) -> u32 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_secs().min(u64::from(u32::MAX / 2)) as u32);
    now.max(previous.saturating_add(1))
}

fn base_name(n: u32) -> String {
    format!("gen-{n:010}.base")
}

fn frames_name(n: u32) -> String {
    format!("gen-{n:010}.frames")
}

/// Reads committed WAL frames into the current log.
struct Shipper {
    primary: Arc<Primary>,
    wal_path: PathBuf,
    scanner: Option<Scanner>,
    writer: libsql::Connection,
    checkpointer: libsql::Connection,
    /// Holds a read snapshot while most of a checkpoint runs unlocked.
    pin: Option<libsql::Connection>,
    _db: libsql::Database,
    rt: tokio::runtime::Runtime,
    last_checkpoint: Instant,
}

impl Shipper {
    fn new(
        primary: Arc<Primary>,
        writer: libsql::Connection,
        checkpointer: libsql::Connection,
        db: libsql::Database,
    ) -> Shipper {
        let mut wal_path = primary.db_path.clone().into_os_string();
        wal_path.push("-wal");
        Shipper {
            primary,
            wal_path: wal_path.into(),
            scanner: None,
            writer,
            checkpointer,
            pin: db.connect().ok(),
            _db: db,
            rt: tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()
                .expect("a current-thread runtime builds"),
            last_checkpoint: Instant::now(),
        }
    }

    fn wal_header(&self) -> io::Result<Option<(File, Header)>> {
        let file = match File::open(&self.wal_path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut bytes = [0u8; wal::HEADER_BYTES];
        match file.read_exact_at(&mut bytes, 0) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(e),
        }
        Ok(Header::parse(&bytes).map(|h| (file, h)))
    }

    /// Positions the scanner after the last frame the logs hold, so a
    /// restart ships only what the previous run did not.
    fn resume(&mut self) -> io::Result<()> {
        let last = {
            let st = self.primary.state.read().expect("state lock");
            let mut last = None;
            for log in st.logs.values().rev() {
                if let Some(h) = log.last_header()? {
                    last = Some(h);
                    break;
                }
            }
            last
        };
        let Some((file, header)) = self.wal_header()? else {
            return Ok(());
        };
        let mut scanner = Scanner::new(header);
        if let Some(last) = last.filter(|l| l.salt == header.salt) {
            let mut frame = vec![0u8; header.frame_bytes()];
            loop {
                let at = header.frame_offset(scanner.next_frame());
                if file.read_exact_at(&mut frame, at).is_err() {
                    break;
                }
                match scanner.push(&frame) {
                    Step::End => break,
                    Step::Commit if FrameHeader::parse(&frame).checksum == last.checksum => {
                        self.scanner = Some(scanner);
                        return Ok(());
                    }
                    _ => {}
                }
            }
            tracing::warn!("the WAL does not continue the shipped history");
        }
        self.scanner = Some(Scanner::new(header));
        Ok(())
    }

    /// Appends every committed frame not yet shipped; returns how many.
    fn ship(&mut self) -> io::Result<u32> {
        let Some((file, header)) = self.wal_header()? else {
            return Ok(0);
        };
        if header.page_size as usize != PAGE_BYTES {
            return Err(io::Error::other("the WAL's page size is not 4096"));
        }
        let scanner = match &mut self.scanner {
            Some(s) if *s.header() == header => s,
            // A new header: SQLite restarted the log after a checkpoint
            // that (by construction) covered only shipped frames.
            slot => slot.insert(Scanner::new(header)),
        };
        scanner.rewind();
        let log = self.primary.current_log();
        let mut out = Vec::new();
        let mut pending = Vec::new();
        let mut buf = vec![0u8; READ_BATCH * FRAME_BYTES];
        let mut shipped = 0u32;
        'read: loop {
            let n = read_some(&file, header.frame_offset(scanner.next_frame()), &mut buf)?;
            let whole = n / FRAME_BYTES;
            for frame in buf[..whole * FRAME_BYTES].chunks_exact(FRAME_BYTES) {
                match scanner.push(frame) {
                    Step::End => break 'read,
                    Step::Pending => pending.extend_from_slice(frame),
                    Step::Commit => {
                        pending.extend_from_slice(frame);
                        out.append(&mut pending);
                    }
                }
            }
            if out.len() >= APPEND_BYTES {
                shipped += append(&log, &out)?;
                out.clear();
            }
            if whole < READ_BATCH {
                break;
            }
        }
        shipped += append(&log, &out)?;
        scanner.rewind();
        Ok(shipped)
    }

    fn block_on_checkpoint(&self, mode: &str) -> Result<[i64; 3], libsql::Error> {
        self.rt.block_on(checkpoint(&self.checkpointer, mode))
    }

    /// Checkpoints the primary once its WAL is long, in two passes. SQLite
    /// may restart the WAL over frames once they are checkpointed, so none
    /// may be checkpointed before it is shipped. The first pass holds a
    /// read snapshot, ships, and checkpoints: a checkpoint never copies
    /// past a reader's snapshot, so it copies only shipped frames, while
    /// writers go on. The second, with the write lock held, ships and
    /// checkpoints the few frames committed meanwhile, so the WAL can
    /// restart (without it, steady writes would keep the WAL growing).
    /// Writers wait only for the second pass.
    fn maybe_checkpoint(&mut self) -> Result<(), Error> {
        let long = self
            .scanner
            .as_ref()
            .is_some_and(|s| s.committed() >= self.primary.options.checkpoint_frames);
        if !long || self.last_checkpoint.elapsed() < Duration::from_secs(1) {
            return Ok(());
        }
        self.last_checkpoint = Instant::now();
        if let Err(e) = self.checkpoint_pinned() {
            tracing::debug!(error = %e, "the unlocked checkpoint pass failed; the locked one does it all");
        }
        if let Err(e) = self.rt.block_on(self.writer.execute("BEGIN IMMEDIATE", ())) {
            tracing::debug!(error = %e, "checkpoint deferred: writers are busy");
            return Ok(());
        }
        let held = Instant::now();
        let shipped = self.ship();
        let result = match shipped {
            Ok(_) => self.block_on_checkpoint("PASSIVE").map_err(Error::from),
            Err(e) => Err(e.into()),
        };
        self.rt.block_on(self.writer.execute("COMMIT", ()))?;
        let held_ms = held.elapsed().as_secs_f64() * 1e3;
        let [_, wal, done] = result?;
        tracing::debug!(db = %self.primary.name, wal, done, held_ms, "checkpointed the primary");
        Ok(())
    }

    /// The first pass of [`Shipper::maybe_checkpoint`]: snapshot, ship,
    /// checkpoint up to the snapshot.
    fn checkpoint_pinned(&mut self) -> Result<(), Error> {
        let Some(pin) = self.pin.clone() else {
            return Ok(());
        };
        let pinned = self.rt.block_on(async {
            pin.execute("BEGIN DEFERRED", ()).await?;
            // The first read takes the snapshot (and SQLite's read mark).
            let mut rows = pin.query("SELECT 1 FROM sqlite_schema LIMIT 1", ()).await?;
            while rows.next().await?.is_some() {}
            Ok::<_, libsql::Error>(())
        });
        let done = pinned.map_err(Error::from).and_then(|()| {
            self.ship()?;
            Ok(self.block_on_checkpoint("PASSIVE")?)
        });
        // A snapshot left open would keep the WAL from ever restarting.
        if !pin.is_autocommit() {
            self.rt.block_on(pin.execute("ROLLBACK", ()))?;
        }
        done.map(drop)
    }

    fn run(mut self) {
        // The write lock for a checkpoint is worth a short wait only.
        let _ = self.writer.busy_timeout(Duration::from_millis(250));
        let primary = self.primary.clone();
        let mut failures = 0u32;
        loop {
            let stopping = primary.stop.load(Ordering::Acquire);
            let pass = primary.passes.0.lock().expect("passes lock").requested;
            let result = self.ship().map_err(Error::from).and_then(|_| {
                if primary.current_log().len() >= primary.options.roll_frames {
                    primary.roll()?;
                }
                self.maybe_checkpoint()
            });
            match result {
                Ok(()) => failures = 0,
                Err(e) => {
                    failures = failures.saturating_add(1);
                    tracing::error!(db = %primary.name, error = %e, "shipping WAL frames failed");
                }
            }
            primary.publish();
            {
                let mut p = primary.passes.0.lock().expect("passes lock");
                p.finished = p.finished.max(pass);
                primary.passes.1.notify_all();
            }
            if stopping {
                return;
            }
            // Back off while failing, so a broken disk does not spin.
            let wait = primary.options.poll * (1 << failures.min(6));
            let (flag, cv) = &primary.wake;
            let guard = flag.lock().expect("wake lock");
            let (mut guard, _) = cv
                .wait_timeout_while(guard, wait, |woken| !*woken)
                .expect("wake lock");
            *guard = false;
        }
    }
}

/// Most frames a shipping pass merges into one transaction: half of what
/// a PoP's feed serves one sync before it says "no more" (1,024 frames),
/// so a merged transaction is always applied within one sync there.
const MERGE_FRAMES: usize = 512;

/// Appends the transactions one pass found as one, or as few as
/// [`MERGE_FRAMES`] allows ([`log::coalesce_runs`]): replicas then apply
/// about one commit per pass, not one per commit at the primary (a busy
/// catalog commits several hundred times a second). Returns the frames
/// appended.
fn append(log: &FrameLog, transactions: &[u8]) -> io::Result<u32> {
    let one = log::coalesce_runs(transactions, MERGE_FRAMES);
    log.append(&one)?;
    Ok((one.len() / FRAME_BYTES) as u32)
}

/// Reads as much of `buf` as the file has at `at`.
fn read_some(file: &File, at: u64, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match file.read_at(&mut buf[n..], at + n as u64)? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}
