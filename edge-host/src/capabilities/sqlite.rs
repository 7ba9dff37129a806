//! `spin:sqlite@3.1.0`: named databases behind a narrow trait.
//!
//! [`SqliteDatabase`] is the seam; [`LibsqlDatabase`] is a local libSQL
//! file and [`ReplicaDatabase`] an embedded replica of a primary. Every
//! query is bounded by a result-size limit so a guest cannot make the host
//! buffer an unbounded result.
//!
//! Statements that reach the primary ride on a Hrana stream that the
//! primary closes when it has been idle (10 s at our origin) or when it
//! restarts. A pooled connection is therefore not kept past
//! [`REMOTE_IDLE`], and a statement the primary refused because its stream
//! was gone, or that never reached it, runs once more on a new connection:
//! in both cases nothing ran, so running it again cannot run it twice.

mod held;

use crate::bindings::spin::sqlite::sqlite as wit;
use futures::FutureExt;
use futures::future::BoxFuture;
use held::Held;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use wasmtime::component::{Accessor, FutureReader, HasData, Resource, ResourceTable, StreamReader};

/// How long a query waits for a lock before failing.
const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);
/// Longest a connection whose statements may reach the primary stays in
/// the pool: well inside the 10 s after which our origin drops an idle
/// Hrana stream, so a connection taken from the pool still has its stream.
const REMOTE_IDLE: std::time::Duration = std::time::Duration::from_secs(5);

/// A value bound to or read from SQLite.
pub type Value = wit::Value;

/// What a query returned.
#[derive(Debug, Default)]
pub struct QueryOutput {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Value>>,
    pub last_insert_rowid: i64,
    pub changes: u64,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SqliteError {
    #[error("the result is larger than the {limit}-byte limit")]
    ResultTooLarge { limit: usize },
    #[error("{0}")]
    Backend(String),
    /// Not ready yet (a replica still bootstrapping); retrying helps.
    #[error("{0}")]
    Unavailable(String),
    /// The primary ran nothing: it no longer had the connection's stream
    /// (idle too long, or restarted), or it could not be reached at all.
    /// Safe to run again on a new connection.
    #[error("{0}")]
    NotExecuted(String),
    /// The local file was locked (SQLITE_BUSY): a read may try again.
    #[error("{0}")]
    Locked(String),
}

/// Whether the primary certainly ran nothing of a statement that failed
/// with `e`. The `libsql` crate keeps its Hrana error types private and
/// renders them as text, so this reads the text: an HTTP 400 naming the
/// stream or its baton is the primary refusing a stream it no longer has
/// (our origin and sqld both say so that way), and a failure to connect
/// sent nothing. Anything else, a connection that broke after the request
/// went out included, may have run.
fn not_executed(e: &libsql::Error) -> bool {
    let text = e.to_string().to_ascii_lowercase();
    let stream_gone =
        text.contains("status=400") && (text.contains("baton") || text.contains("stream"));
    let never_sent = text.contains("error trying to connect")
        || text.contains("tcp connect error")
        || text.contains("connection refused");
    stream_gone || never_sent
}

/// One database a component may open.
pub trait SqliteDatabase: Send + Sync + 'static {
    fn execute<'a>(
        &'a self,
        statement: Statement<'a>,
    ) -> BoxFuture<'a, Result<QueryOutput, SqliteError>>;

    /// Runs a plain read if that needs no waiting at all (no lock to wait
    /// for, a pooled connection at hand, the file not locked); `None` if
    /// it would wait. What the blocking `execute` runs for a statement
    /// with the [`edge_sql::ANSWER_NOW`] hint.
    fn answer_now(&self, _statement: Statement<'_>) -> Option<Result<QueryOutput, SqliteError>> {
        None
    }
}

/// An idle connection, with the database incarnation it belongs to (a
/// replaced replica's connections are not reused) and when it went idle.
struct Idle {
    epoch: u64,
    conn: Held,
    since: std::time::Instant,
}

/// What a pool's connections reach.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Reach {
    /// The local file, through a plain handle: statements are kept
    /// prepared.
    File,
    /// A replica's local file through the `libsql` replica's own handle,
    /// whose statements cannot be reset: prepared for each call.
    ReplicaFile,
    /// The primary, over Hrana.
    Primary,
}

/// Idle connections, most recently used last, in two lists: those that
/// only ever read locally, kept however long they idle, and those that
/// sent a statement to the primary and so hold a stream there, kept at
/// most `max_stream_idle`. Opening a replica connection is not free (the
/// `libsql` crate waits for any pull in progress), so reads keep theirs.
struct Pool {
    reads: Mutex<Vec<Idle>>,
    streams: Mutex<Vec<Idle>>,
    max_idle: usize,
    max_stream_idle: std::time::Duration,
}

/// Longest a statement may wait for the primary: it holds the PoP's write
/// queue meanwhile, and the guest's own deadline is 10 s.
const REMOTE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(8);
/// A statement on a replica slower than this is logged with where its
/// time went: well past a write's round trips to the farthest PoP's
/// primary, well inside the guest's 10 s deadline.
const SLOW_STATEMENT: std::time::Duration = std::time::Duration::from_secs(3);
/// Longest a local read retries while the replica applies frames.
const LOCKED_RETRY: std::time::Duration = std::time::Duration::from_secs(5);

impl Pool {
    fn new() -> Pool {
        Pool {
            reads: Mutex::new(Vec::new()),
            streams: Mutex::new(Vec::new()),
            max_idle: 32,
            max_stream_idle: REMOTE_IDLE,
        }
    }

    /// Runs one statement on a pooled connection of `db` (incarnation
    /// `epoch`), which `reach`es what it says.
    ///
    /// On the primary, the statement is bounded by [`REMOTE_TIMEOUT`], and
    /// if the primary certainly ran nothing of it, it runs once more on a
    /// new connection. On the local file, a read that meets the file
    /// locked (a replica applying frames; the `libsql` crate's synced
    /// connections do not take a busy timeout) tries again for up to
    /// [`LOCKED_RETRY`].
    async fn query(
        &self,
        db: &Arc<libsql::Database>,
        epoch: u64,
        reach: Reach,
        statement: Statement<'_>,
    ) -> Result<QueryOutput, SqliteError> {
        if reach != Reach::Primary {
            return self.read(db, epoch, reach, statement).await;
        }
        let again = statement.clone();
        let mut conn = self.take(db, epoch, reach).await?;
        let out = match bounded(run(&mut conn, statement)).await {
            Ok(out) => (out, conn),
            Err(SqliteError::NotExecuted(why)) => {
                tracing::info!(error = %why, "the primary ran nothing of a statement; running it on a new connection");
                drop(conn);
                let mut conn = Self::connect(db, reach).await?;
                (bounded(run(&mut conn, again)).await?, conn)
            }
            Err(e) => return Err(e),
        };
        self.give_back(epoch, out.1, true);
        Ok(out.0)
    }

    async fn read(
        &self,
        db: &Arc<libsql::Database>,
        epoch: u64,
        reach: Reach,
        statement: Statement<'_>,
    ) -> Result<QueryOutput, SqliteError> {
        let started = std::time::Instant::now();
        let mut pause = std::time::Duration::from_millis(2);
        loop {
            let outcome = match self.take(db, epoch, reach).await {
                Ok(mut conn) => {
                    let out = run(&mut conn, statement.clone()).await;
                    self.give_back(epoch, conn, false);
                    out
                }
                Err(e) => Err(e),
            };
            match outcome {
                Err(SqliteError::Locked(why)) if started.elapsed() < LOCKED_RETRY => {
                    tracing::debug!(error = %why, "a read met the replica locked; trying again");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(std::time::Duration::from_millis(50));
                }
                Err(SqliteError::Locked(why)) => return Err(SqliteError::Backend(why)),
                other => return other,
            }
        }
    }

    /// [`SqliteDatabase::answer_now`] on a pooled read connection of
    /// incarnation `epoch`. A local read's future is ready at its first
    /// poll; one that is not (or that meets the file locked) is given up,
    /// which costs nothing, and the caller goes the waiting way.
    fn try_read(
        &self,
        epoch: u64,
        statement: Statement<'_>,
    ) -> Option<Result<QueryOutput, SqliteError>> {
        if !edge_sql::plainly_reads(statement.sql) {
            return None;
        }
        let mut conn = {
            let mut reads = self.reads.lock().expect("pool lock");
            // Only the newest idle connection: one of an older incarnation
            // is left for `pooled`, which drops it.
            match reads.last() {
                Some(idle) if idle.epoch == epoch => reads.pop()?.conn,
                _ => return None,
            }
        };
        // Nor may SQLite sleep the thread in its busy handler meanwhile.
        if conn.conn.busy_timeout(std::time::Duration::ZERO).is_err() {
            return None;
        }
        let outcome = match run(&mut conn, statement).now_or_never() {
            None | Some(Err(SqliteError::Locked(_))) => None,
            done => done,
        };
        if conn.conn.busy_timeout(BUSY_TIMEOUT).is_ok() {
            self.give_back(epoch, conn, false);
        }
        outcome
    }

    async fn take(
        &self,
        db: &Arc<libsql::Database>,
        epoch: u64,
        reach: Reach,
    ) -> Result<Held, SqliteError> {
        match self.pooled(epoch, reach == Reach::Primary) {
            Some(conn) => Ok(conn),
            None => Self::connect(db, reach).await,
        }
    }

    /// An idle connection of incarnation `epoch`, if there is one fit for
    /// the statement: one that only read is fit for either kind, one that
    /// holds a stream at the primary only for another remote statement,
    /// and only while its stream is likely alive.
    fn pooled(&self, epoch: u64, remote: bool) -> Option<Held> {
        let now = std::time::Instant::now();
        if remote {
            let mut streams = self.streams.lock().expect("pool lock");
            while let Some(pooled) = streams.pop() {
                if now.duration_since(pooled.since) > self.max_stream_idle {
                    // Its stream may be gone, and the rest went idle
                    // earlier still.
                    streams.clear();
                    break;
                }
                if pooled.epoch == epoch {
                    return Some(pooled.conn);
                }
            }
        }
        let mut reads = self.reads.lock().expect("pool lock");
        while let Some(pooled) = reads.pop() {
            if pooled.epoch == epoch {
                return Some(pooled.conn);
            }
            // From a replaced replica: dropped.
        }
        None
    }

    /// A new connection, opened off the runtime's workers. The `libsql`
    /// crate opens a replica's connection by blocking its thread until no
    /// pull holds the replica's sync state; on a worker that thread also
    /// polls the other requests of the same guest instance, one of which
    /// may be the write whose read-your-writes pull holds that state, so
    /// the two would wait for each other for good (seen in the soak run:
    /// a PoP's account writes and reads all stopped).
    async fn connect(db: &Arc<libsql::Database>, reach: Reach) -> Result<Held, SqliteError> {
        let opening = db.clone();
        // Opening reads the file's header, so it too can meet the file
        // locked (a replica applying frames): that is `Locked`, and a read
        // tries again.
        let conn = tokio::task::spawn_blocking(move || opening.connect())
            .await
            .map_err(|e| SqliteError::Backend(format!("opening a connection: {e}")))?
            .map_err(classify)?;
        if reach != Reach::Primary {
            // Readers wait out a writer (or WAL recovery by another
            // process) instead of failing with SQLITE_BUSY.
            conn.busy_timeout(BUSY_TIMEOUT).map_err(classify)?;
        }
        Ok(Held::new(conn, reach == Reach::File))
    }

    fn give_back(&self, epoch: u64, conn: Held, remote: bool) {
        let list = if remote { &self.streams } else { &self.reads };
        let mut idle = list.lock().expect("pool lock");
        if idle.len() < self.max_idle {
            idle.push(Idle {
                epoch,
                conn,
                since: std::time::Instant::now(),
            });
        }
    }
}

/// A statement that may reach the primary, bounded by [`REMOTE_TIMEOUT`].
async fn bounded(
    statement: impl std::future::Future<Output = Result<QueryOutput, SqliteError>>,
) -> Result<QueryOutput, SqliteError> {
    tokio::time::timeout(REMOTE_TIMEOUT, statement)
        .await
        .unwrap_or_else(|_| {
            Err(SqliteError::Backend(format!(
                "the primary did not answer within {REMOTE_TIMEOUT:?}"
            )))
        })
}

/// A local libSQL database file.
pub struct LibsqlDatabase {
    db: Arc<libsql::Database>,
    pool: Pool,
}

impl LibsqlDatabase {
    pub async fn open(path: &std::path::Path) -> anyhow::Result<LibsqlDatabase> {
        let db = libsql::Builder::new_local(path).build().await?;
        Ok(LibsqlDatabase {
            db: Arc::new(db),
            pool: Pool::new(),
        })
    }
}

/// A database read and written over Hrana, every statement a round trip
/// to the primary: what Spin's `libsql` database type does, and the
/// baseline the embedded replica is measured against.
pub struct RemoteDatabase {
    db: Arc<libsql::Database>,
    pool: Pool,
}

impl RemoteDatabase {
    pub async fn open(
        url: &str,
        token: &str,
        delay: std::time::Duration,
        tls: replica::tls::ClientConfig,
    ) -> anyhow::Result<RemoteDatabase> {
        let db = libsql::Builder::new_remote(url.to_string(), token.to_string())
            .connector(replica::delay::connector(delay, tls))
            .build()
            .await?;
        Ok(RemoteDatabase {
            db: Arc::new(db),
            pool: Pool::new(),
        })
    }
}

impl SqliteDatabase for RemoteDatabase {
    fn execute<'a>(
        &'a self,
        statement: Statement<'a>,
    ) -> BoxFuture<'a, Result<QueryOutput, SqliteError>> {
        Box::pin(async move {
            self.pool
                .query(&self.db, 0, Reach::Primary, statement)
                .await
        })
    }
}

/// An embedded replica of a primary: reads are local; a write is one
/// request to the primary, answered once this replica has applied it
/// (see the `replica` crate).
pub struct ReplicaDatabase {
    replica: Arc<replica::Replica>,
    pool: Pool,
    /// Checks writes against the PoP's grant before they leave.
    vetting: Option<Vetting>,
}

/// A write checked at the PoP against the grant of the token it is sent
/// with (`cdn-config/db-permissions.toml`), the way our origin checks it:
/// SQLite's authorizer while the statement is prepared, here on a
/// read-only connection to the local replica. Our origin checks again;
/// a primary that grants only whole databases (sqld) does not, so there
/// this is what keeps a component to its grant.
struct Vetting {
    grant: Arc<db_permissions::Grant>,
    /// The vetting connection of the current replica file, by epoch.
    conn: tokio::sync::Mutex<Option<(u64, libsql::Database, libsql::Connection)>>,
}

impl ReplicaDatabase {
    /// `grant`: the one writes are checked against before they are sent
    /// (none: the primary alone decides).
    pub fn new(
        replica: Arc<replica::Replica>,
        grant: Option<Arc<db_permissions::Grant>>,
    ) -> ReplicaDatabase {
        ReplicaDatabase {
            replica,
            pool: Pool::new(),
            vetting: grant.map(|grant| Vetting {
                grant,
                conn: tokio::sync::Mutex::new(None),
            }),
        }
    }

    /// Refuses `sql` if the grant does not allow it. Any other failure to
    /// prepare it here (the replica one migration behind, say) leaves the
    /// decision to the primary.
    async fn vet(&self, active: &replica::Active, sql: &str) -> Result<(), SqliteError> {
        let Some(v) = &self.vetting else {
            return Ok(());
        };
        let label = self.replica.label();
        let mut held = v.conn.lock().await;
        if held
            .as_ref()
            .is_none_or(|(epoch, ..)| *epoch != active.epoch)
        {
            let opened = async {
                let db = libsql::Builder::new_local(active.path())
                    .flags(libsql::OpenFlags::SQLITE_OPEN_READ_ONLY)
                    .build()
                    .await?;
                let conn = db.connect()?;
                conn.authorizer(Some(db_permissions::authorizer(
                    v.grant.clone(),
                    label,
                    "edge",
                )))?;
                Ok::<_, libsql::Error>((active.epoch, db, conn))
            };
            match opened.await {
                Ok(c) => *held = Some(c),
                Err(e) => {
                    tracing::warn!(db = label, error = %e, "cannot check writes against the grant here; the primary decides");
                    return Ok(());
                }
            }
        }
        let Some((_, _, conn)) = held.as_ref() else {
            return Ok(());
        };
        match conn.prepare(sql).await {
            Err(e) if e.to_string().contains("not authorized") => {
                Err(SqliteError::Backend(format!(
                    "not authorized: this PoP's grant on {label} does not allow the statement (cdn-config/db-permissions.toml); nothing was sent"
                )))
            }
            _ => Ok(()),
        }
    }

    async fn write(
        &self,
        active: &replica::Active,
        statement: Statement<'_>,
    ) -> Result<QueryOutput, SqliteError> {
        let Statement {
            sql,
            params,
            max_result_bytes,
        } = statement;
        self.vet(active, sql).await?;
        let params: Vec<libsql::Value> = params.into_iter().map(to_libsql).collect();
        // The answer's JSON spells each value out; a result within the
        // guest's limit fits well inside four times it.
        let answer_limit = max_result_bytes.saturating_mul(4).max(64 << 10);
        let mut attempt = 0;
        let written = loop {
            attempt += 1;
            match self
                .replica
                .write(sql, params.clone(), answer_limit, REMOTE_TIMEOUT)
                .await
            {
                Ok(w) => break w,
                // Nothing was sent: once more, on a new connection.
                Err(replica::write::WriteError::NotSent(why)) if attempt == 1 => {
                    tracing::info!(error = %why, "a write did not reach the primary; sending it once more");
                }
                Err(replica::write::WriteError::NotSent(why)) => {
                    return Err(SqliteError::NotExecuted(why));
                }
                Err(e) => return Err(SqliteError::Backend(e.to_string())),
            }
        };
        let mut bytes = 0usize;
        let mut rows = Vec::with_capacity(written.rows.len());
        for row in written.rows {
            let mut values = Vec::with_capacity(row.len());
            for v in row {
                let (v, n) = from_libsql(v);
                bytes += n;
                values.push(v);
            }
            if bytes > max_result_bytes {
                return Err(SqliteError::ResultTooLarge {
                    limit: max_result_bytes,
                });
            }
            rows.push(values);
        }
        Ok(QueryOutput {
            columns: written.columns,
            rows,
            last_insert_rowid: written.last_insert_rowid,
            changes: written.affected,
        })
    }
}

impl SqliteDatabase for ReplicaDatabase {
    fn execute<'a>(
        &'a self,
        statement: Statement<'a>,
    ) -> BoxFuture<'a, Result<QueryOutput, SqliteError>> {
        Box::pin(async move {
            let Some(active) = self.replica.active() else {
                return Err(SqliteError::Unavailable(format!(
                    "the {} replica has not finished its first sync with the primary yet",
                    self.replica.label()
                )));
            };
            let mut watch = SlowWatch::new(self.replica.label(), statement.sql);
            if !edge_sql::plainly_reads(statement.sql) {
                watch.queued = Some(watch.started.elapsed());
                let outcome = self.write(&active, statement).await;
                watch.finished = true;
                return outcome;
            }
            watch.queued = Some(watch.started.elapsed());
            let _reading = self.replica.read_gate().await;
            watch.gated = Some(watch.started.elapsed());
            let (db, reach) = match active.plain() {
                Some(plain) => (plain, Reach::File),
                None => (&active.db, Reach::ReplicaFile),
            };
            let outcome = self.pool.query(db, active.epoch, reach, statement).await;
            watch.finished = true;
            outcome
        })
    }

    fn answer_now(&self, statement: Statement<'_>) -> Option<Result<QueryOutput, SqliteError>> {
        let active = self.replica.active()?;
        // A pull that must checkpoint holds the gate alone.
        let _reading = self.replica.try_read_gate()?;
        self.pool.try_read(active.epoch, statement)
    }
}

/// Logs a statement on a replica that took longer than [`SLOW_STATEMENT`],
/// with where its time went, when it ends or is dropped (a guest past its
/// deadline drops its pending calls), so a stall can be traced from the
/// PoP's log.
struct SlowWatch<'a> {
    db: &'a str,
    sql: &'a str,
    started: std::time::Instant,
    /// When it left the write queue and passed the read gate, if it did.
    queued: Option<std::time::Duration>,
    gated: Option<std::time::Duration>,
    finished: bool,
}

impl<'a> SlowWatch<'a> {
    fn new(db: &'a str, sql: &'a str) -> SlowWatch<'a> {
        SlowWatch {
            db,
            sql,
            started: std::time::Instant::now(),
            queued: None,
            gated: None,
            finished: false,
        }
    }
}

impl Drop for SlowWatch<'_> {
    fn drop(&mut self) {
        let total = self.started.elapsed();
        if total > SLOW_STATEMENT {
            tracing::warn!(
                db = %self.db,
                statement = %self.sql.chars().take(60).collect::<String>(),
                out_of_write_queue_at = ?self.queued,
                past_read_gate_at = ?self.gated,
                total = ?total,
                finished = self.finished,
                "a statement on the replica was slow"
            );
        }
    }
}

fn to_libsql(v: Value) -> libsql::Value {
    match v {
        Value::Integer(i) => libsql::Value::Integer(i),
        Value::Real(f) => libsql::Value::Real(f),
        Value::Text(s) => libsql::Value::Text(s),
        Value::Blob(b) => libsql::Value::Blob(b),
        Value::Null => libsql::Value::Null,
    }
}

fn from_libsql(v: libsql::Value) -> (Value, usize) {
    match v {
        libsql::Value::Integer(i) => (Value::Integer(i), 8),
        libsql::Value::Real(f) => (Value::Real(f), 8),
        libsql::Value::Text(s) => {
            let n = s.len();
            (Value::Text(s), n)
        }
        libsql::Value::Blob(b) => {
            let n = b.len();
            (Value::Blob(b), n)
        }
        libsql::Value::Null => (Value::Null, 1),
    }
}

impl SqliteDatabase for LibsqlDatabase {
    fn execute<'a>(
        &'a self,
        statement: Statement<'a>,
    ) -> BoxFuture<'a, Result<QueryOutput, SqliteError>> {
        Box::pin(async move { self.pool.query(&self.db, 0, Reach::File, statement).await })
    }

    fn answer_now(&self, statement: Statement<'_>) -> Option<Result<QueryOutput, SqliteError>> {
        self.pool.try_read(0, statement)
    }
}

/// One statement to run, and the most result bytes it may produce.
#[derive(Clone)]
pub struct Statement<'a> {
    pub sql: &'a str,
    pub params: Vec<Value>,
    pub max_result_bytes: usize,
}

/// What a `libsql` error means for the caller.
fn classify(e: libsql::Error) -> SqliteError {
    if not_executed(&e) {
        SqliteError::NotExecuted(e.to_string())
    } else if matches!(e, libsql::Error::SqliteFailure(code, _) if code & 0xff == 5)
        // Opening a connection reports SQLITE_BUSY in its message only.
        || e.to_string().contains("database is locked")
    {
        // SQLITE_BUSY, extended codes included.
        SqliteError::Locked(e.to_string())
    } else {
        SqliteError::Backend(e.to_string())
    }
}

/// Runs one statement, bounding the result's size.
async fn run(held: &mut Held, statement: Statement<'_>) -> Result<QueryOutput, SqliteError> {
    let Statement {
        sql,
        params,
        max_result_bytes,
    } = statement;
    let params: Vec<libsql::Value> = params.into_iter().map(to_libsql).collect();
    // A kept statement still holds the values bound last time, so one
    // given fewer (the rest are NULL) or too many (an error) is prepared
    // afresh, for SQLite to answer as it would have.
    held.keep(sql).await.map_err(classify)?;
    let prepared = held
        .kept(sql)
        .filter(|s| s.parameter_count() == params.len());
    let mut rows = match &prepared {
        Some(statement) => statement.query(params).await,
        None => held.conn.query(sql, params).await,
    }
    .map_err(classify)?;
    let ncols = rows.column_count();
    let columns: Vec<String> = (0..ncols)
        .map(|i| rows.column_name(i).unwrap_or_default().to_string())
        .collect();
    let mut out = QueryOutput {
        columns,
        ..QueryOutput::default()
    };
    let mut bytes = 0usize;
    while let Some(row) = rows.next().await.map_err(classify)? {
        let mut values = Vec::with_capacity(ncols as usize);
        for i in 0..ncols {
            let (v, n) = from_libsql(row.get_value(i).map_err(classify)?);
            bytes += n;
            values.push(v);
        }
        if bytes > max_result_bytes {
            return Err(SqliteError::ResultTooLarge {
                limit: max_result_bytes,
            });
        }
        out.rows.push(values);
    }
    drop(rows);
    drop(prepared);
    out.last_insert_rowid = held.conn.last_insert_rowid();
    out.changes = held.conn.changes();
    Ok(out)
}

/// The databases one component may open, by label.
#[derive(Clone, Default)]
pub struct SqliteGrants {
    pub databases: BTreeMap<String, Arc<dyn SqliteDatabase>>,
    pub max_result_bytes: usize,
}

/// A guest's open connection (the `connection` resource).
pub struct ConnectionHandle {
    db: Arc<dyn SqliteDatabase>,
    last_insert_rowid: i64,
    changes: u64,
}

/// `HasData` marker: the sqlite capability's view of a store.
pub struct Sqlite;

pub struct SqliteView<'a> {
    pub table: &'a mut ResourceTable,
    pub grants: &'a SqliteGrants,
}

impl HasData for Sqlite {
    type Data<'a> = SqliteView<'a>;
}

impl SqliteView<'_> {
    fn open(
        &mut self,
        label: &str,
    ) -> wasmtime::Result<Result<Resource<ConnectionHandle>, wit::Error>> {
        let Some(db) = self.grants.databases.get(label) else {
            // Spin answers access-denied both for unknown and ungranted
            // labels, so a guest cannot probe which databases exist.
            return Ok(Err(wit::Error::AccessDenied));
        };
        let handle = ConnectionHandle {
            db: db.clone(),
            last_insert_rowid: 0,
            changes: 0,
        };
        Ok(Ok(self.table.push(handle)?))
    }

    fn db(
        &self,
        conn: &Resource<ConnectionHandle>,
    ) -> wasmtime::Result<(Arc<dyn SqliteDatabase>, usize)> {
        Ok((
            self.table.get(conn)?.db.clone(),
            self.grants.max_result_bytes,
        ))
    }

    fn record(
        &mut self,
        conn: &Resource<ConnectionHandle>,
        out: &QueryOutput,
    ) -> wasmtime::Result<()> {
        let handle = self.table.get_mut(conn)?;
        handle.last_insert_rowid = out.last_insert_rowid;
        handle.changes = out.changes;
        Ok(())
    }
}

fn query_result(out: QueryOutput) -> wit::QueryResult {
    wit::QueryResult {
        columns: out.columns,
        rows: out
            .rows
            .into_iter()
            .map(|values| wit::RowResult { values })
            .collect(),
    }
}

fn to_wit_error(e: SqliteError) -> wit::Error {
    match e {
        SqliteError::ResultTooLarge { .. } => wit::Error::Io(e.to_string()),
        SqliteError::Backend(m)
        | SqliteError::Unavailable(m)
        | SqliteError::NotExecuted(m)
        | SqliteError::Locked(m) => wit::Error::Io(m),
    }
}

impl wit::Host for SqliteView<'_> {}

impl wit::HostConnection for SqliteView<'_> {
    async fn open(
        &mut self,
        database: String,
    ) -> wasmtime::Result<Result<Resource<ConnectionHandle>, wit::Error>> {
        SqliteView::open(self, &database)
    }

    /// The blocking `execute`. For a synchronous WIT function wasmtime
    /// takes only a host function that holds the whole store while it
    /// waits (wasmtime issue 11870; a concurrent one is refused for a
    /// non-`async` import), so every other task of the store, in every
    /// layer of the chain, waits too. A statement with the
    /// [`edge_sql::ANSWER_NOW`] hint therefore never waits: it is
    /// answered at once or refused with [`edge_sql::WOULD_WAIT`], and the
    /// guest sends it through `execute-async` (see `spin_glue::SpinDb`).
    async fn execute(
        &mut self,
        conn: Resource<ConnectionHandle>,
        statement: String,
        parameters: Vec<Value>,
    ) -> wasmtime::Result<Result<wit::QueryResult, wit::Error>> {
        let (db, limit) = self.db(&conn)?;
        let outcome = match edge_sql::answer_now(&statement) {
            // The caller would rather go async than have this wait.
            Some(sql) => match db.answer_now(Statement {
                sql,
                params: parameters,
                max_result_bytes: limit,
            }) {
                Some(outcome) => outcome,
                None => return Ok(Err(wit::Error::Io(edge_sql::WOULD_WAIT.to_string()))),
            },
            None => {
                db.execute(Statement {
                    sql: &statement,
                    params: parameters,
                    max_result_bytes: limit,
                })
                .await
            }
        };
        match outcome {
            Ok(out) => {
                self.record(&conn, &out)?;
                Ok(Ok(query_result(out)))
            }
            Err(e) => Ok(Err(to_wit_error(e))),
        }
    }

    async fn last_insert_rowid(
        &mut self,
        conn: Resource<ConnectionHandle>,
    ) -> wasmtime::Result<i64> {
        Ok(self.table.get(&conn)?.last_insert_rowid)
    }

    async fn changes(&mut self, conn: Resource<ConnectionHandle>) -> wasmtime::Result<u64> {
        Ok(self.table.get(&conn)?.changes)
    }

    async fn drop(&mut self, conn: Resource<ConnectionHandle>) -> wasmtime::Result<()> {
        self.table.delete(conn)?;
        Ok(())
    }
}

type ExecuteAsync = (
    Vec<String>,
    StreamReader<wit::RowResult>,
    FutureReader<Result<(), wit::Error>>,
);

impl<T> wit::HostConnectionWithStore<T> for Sqlite {
    async fn open_async(
        accessor: &Accessor<T, Self>,
        database: String,
    ) -> wasmtime::Result<Result<Resource<ConnectionHandle>, wit::Error>> {
        accessor.with(|mut access| access.get().open(&database))
    }

    async fn execute_async(
        accessor: &Accessor<T, Self>,
        conn: Resource<ConnectionHandle>,
        statement: String,
        parameters: Vec<Value>,
    ) -> wasmtime::Result<Result<ExecuteAsync, wit::Error>> {
        let (db, limit) = accessor.with(|mut access| access.get().db(&conn))?;
        // The query runs to completion before the guest sees a row: results
        // are bounded by `limit`, and buffering keeps no database cursor
        // open while the guest is suspended.
        let out = match db
            .execute(Statement {
                sql: &statement,
                params: parameters,
                max_result_bytes: limit,
            })
            .await
        {
            Ok(out) => out,
            Err(e) => return Ok(Err(to_wit_error(e))),
        };
        accessor.with(|mut access| {
            access.get().record(&conn, &out)?;
            let rows: Vec<wit::RowResult> = out
                .rows
                .into_iter()
                .map(|values| wit::RowResult { values })
                .collect();
            let stream = StreamReader::new(&mut access, rows)?;
            let done = FutureReader::new(
                &mut access,
                std::future::ready(Ok::<_, wasmtime::Error>(Ok::<(), wit::Error>(()))),
            )?;
            Ok(Ok((out.columns, stream, done)))
        })
    }

    async fn last_insert_rowid_async(
        accessor: &Accessor<T, Self>,
        conn: Resource<ConnectionHandle>,
    ) -> wasmtime::Result<i64> {
        accessor.with(|mut access| Ok(access.get().table.get(&conn)?.last_insert_rowid))
    }

    async fn changes_async(
        accessor: &Accessor<T, Self>,
        conn: Resource<ConnectionHandle>,
    ) -> wasmtime::Result<u64> {
        accessor.with(|mut access| Ok(access.get().table.get(&conn)?.changes))
    }
}

#[cfg(test)]
mod tests {
    use super::{LibsqlDatabase, SqliteDatabase, Statement, Value, not_executed};

    fn statement(sql: &str) -> Statement<'_> {
        Statement {
            sql,
            params: Vec::new(),
            max_result_bytes: 1 << 20,
        }
    }

    /// A fresh database `t.db` in a directory of its own.
    async fn scratch(name: &str) -> (std::path::PathBuf, LibsqlDatabase) {
        let dir = std::env::temp_dir().join(format!(
            "edge-host-{name}-{}-{:?}",
            std::process::id(),
            std::time::SystemTime::now()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let db = LibsqlDatabase::open(&dir.join("t.db")).await.unwrap();
        (dir, db)
    }

    /// A hinted read is answered at once when a connection is at hand,
    /// and refused (the guest goes async) when it is not or the
    /// statement may write; to SQLite itself the hint is a comment.
    #[tokio::test]
    async fn reads_are_answered_now_only_when_nothing_would_wait() {
        let (dir, db) = scratch("answer-now").await;
        // No connection opened yet: answering would wait for one.
        assert!(db.answer_now(statement("SELECT 1")).is_none());
        db.execute(statement("CREATE TABLE t (a INTEGER)"))
            .await
            .unwrap();
        db.execute(statement("INSERT INTO t VALUES (7)"))
            .await
            .unwrap();
        let out = db
            .answer_now(statement("SELECT a FROM t"))
            .expect("a pooled connection answers at once")
            .unwrap();
        assert!(
            matches!(out.rows.as_slice(), [row] if matches!(row.as_slice(), [Value::Integer(7)]))
        );
        // Never a statement that may write, even with a connection at hand.
        assert!(db.answer_now(statement("DELETE FROM t")).is_none());
        let hinted = format!("{}SELECT count(*) FROM t", edge_sql::ANSWER_NOW);
        let out = db.execute(statement(&hinted)).await.unwrap();
        assert!(
            matches!(out.rows.as_slice(), [row] if matches!(row.as_slice(), [Value::Integer(1)]))
        );
        drop(db);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn with(sql: &str, params: Vec<Value>) -> Statement<'_> {
        Statement {
            params,
            ..statement(sql)
        }
    }

    fn integers(out: &super::QueryOutput) -> Vec<Option<i64>> {
        out.rows
            .iter()
            .map(|row| match row.as_slice() {
                [Value::Integer(n)] => Some(*n),
                _ => None,
            })
            .collect()
    }

    /// A pooled connection runs a repeated statement on what it prepared
    /// the first time, with this call's values, and answers exactly as a
    /// fresh statement would: fewer values than the statement names leave
    /// the rest NULL, a schema changed meanwhile is seen, and a result cut
    /// off at the size limit leaves no read open that would keep a
    /// checkpoint from finishing.
    #[tokio::test]
    async fn kept_statements_answer_as_fresh_ones_would() {
        let (dir, db) = scratch("kept").await;
        db.execute(statement("PRAGMA journal_mode = WAL"))
            .await
            .unwrap();
        db.execute(statement("CREATE TABLE t (a INTEGER)"))
            .await
            .unwrap();
        for n in 1..=50 {
            db.execute(with("INSERT INTO t VALUES (?1)", vec![Value::Integer(n)]))
                .await
                .unwrap();
        }
        let select = "SELECT a FROM t WHERE a = ?1 OR a = ?2";
        let both = |x, y| with(select, vec![Value::Integer(x), Value::Integer(y)]);
        assert_eq!(
            integers(&db.execute(both(3, 4)).await.unwrap()),
            [Some(3), Some(4)]
        );
        assert_eq!(
            integers(&db.execute(both(5, 6)).await.unwrap()),
            [Some(5), Some(6)]
        );
        let kept = |db: &LibsqlDatabase| {
            let reads = db.pool.reads.lock().unwrap();
            reads
                .iter()
                .map(|i| i.conn.kept_count())
                .collect::<Vec<_>>()
        };
        // One connection, each statement prepared once: the pragma, the
        // table, fifty inserts, two selects.
        assert_eq!(kept(&db), [4]);
        // ?2 unbound is NULL, not the 6 bound last time.
        let one = with(select, vec![Value::Integer(7)]);
        assert_eq!(integers(&db.execute(one).await.unwrap()), [Some(7)]);

        db.execute(statement("ALTER TABLE t ADD COLUMN b TEXT"))
            .await
            .unwrap();
        let all = "SELECT * FROM t WHERE a = 1";
        assert_eq!(
            db.execute(statement(all)).await.unwrap().columns,
            ["a", "b"]
        );
        db.execute(statement("ALTER TABLE t DROP COLUMN b"))
            .await
            .unwrap();
        assert_eq!(db.execute(statement(all)).await.unwrap().columns, ["a"]);

        let small = Statement {
            max_result_bytes: 64,
            ..statement("SELECT a FROM t")
        };
        assert!(matches!(
            db.execute(small).await,
            Err(super::SqliteError::ResultTooLarge { limit: 64 })
        ));
        // Another connection can move every frame into the database: no
        // reader holds an older snapshot.
        let other = libsql::Builder::new_local(dir.join("t.db"))
            .build()
            .await
            .unwrap()
            .connect()
            .unwrap();
        other
            .execute("INSERT INTO t VALUES (51)", ())
            .await
            .unwrap();
        let mut rows = other
            .query("PRAGMA wal_checkpoint(TRUNCATE)", ())
            .await
            .unwrap();
        let row = rows.next().await.unwrap().unwrap();
        assert_eq!(row.get::<i64>(0).unwrap(), 0, "the checkpoint was blocked");
        drop(rows);
        drop(db);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn hrana(text: &str) -> libsql::Error {
        libsql::Error::Hrana(text.to_string().into())
    }

    #[test]
    fn only_refusals_before_running_are_run_again() {
        // As the `libsql` crate renders them (seen against our origin).
        for gone in [
            "api error: `status=400 Bad Request, body={\"detail\":\"the baton has expired; open a new stream without a baton\"}`",
            "api error: `status=400 Bad Request, body={\"detail\":\"the baton was not issued by this server; open a new stream without a baton\"}`",
            "api error: `status=400 Bad Request, body={\"detail\":\"the stream has closed or expired; open a new one\"}`",
            "http error: `error trying to connect: tcp connect error: Connection refused (os error 111)`",
        ] {
            assert!(not_executed(&hrana(gone)), "{gone}");
        }
        for unknown in [
            // Sent, then the connection broke: it may have run.
            "http error: `connection closed before message completed`",
            "http error: `connection error: Connection reset by peer (os error 104)`",
            // The statement ran and failed.
            "stream error: `Error { message: \"UNIQUE constraint failed: accounts.email\", code: \"SQLITE_CONSTRAINT\" }`",
            "api error: `status=401 Unauthorized, body={\"detail\":\"send the database token\"}`",
            "api error: `status=503 Service Unavailable, body={\"detail\":\"too many open streams\"}`",
        ] {
            assert!(!not_executed(&hrana(unknown)), "{unknown}");
        }
    }
}
