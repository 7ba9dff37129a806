//! One writer per database, with a bounded queue and grouped commits.
//!
//! SQLite takes one writer at a time, and in WAL mode with
//! `synchronous = FULL` each commit waits for the disk (about half a
//! millisecond here). Writers that each open their own transaction queue
//! on the lock and pay that wait one by one. Here every write of a
//! database is a *job* sent to the one task that owns its write
//! connection: the task takes the jobs waiting (up to [`Settings::group`]),
//! runs each inside its own `SAVEPOINT` of one `BEGIN IMMEDIATE`
//! transaction, and commits them together, so many jobs share one disk
//! wait. A job's answer is sent only after that commit, so an answered
//! write is as durable as before. A job that fails, or asks to be rolled
//! back, is undone to its savepoint without touching the others.
//!
//! The queue is bounded ([`Settings::queue`]): a job that finds it full is
//! refused at once ([`Error::Busy`]), so overload turns into a quick 503
//! instead of a growing wait. Reads do not go through the writer; see
//! [`Readers`].

use futures::future::BoxFuture;
use libsql::Connection;
use std::time::Duration;

/// How a job ends its part of the group.
pub enum Step<T> {
    /// Keep what the job wrote.
    Commit(T),
    /// Undo what the job wrote (the answer is still delivered).
    Rollback(T),
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The queue is full: the database is overloaded; retry shortly.
    #[error("the {0} database has {1} writes queued; retry shortly")]
    Busy(&'static str, usize),
    /// The writer task is gone (the process is stopping).
    #[error("the {0} database's writer has stopped")]
    Stopped(&'static str),
    #[error(transparent)]
    Db(#[from] libsql::Error),
}

/// Bounds of a writer.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Jobs waiting at most; more are refused.
    pub queue: usize,
    /// Jobs committed together at most.
    pub group: usize,
    /// How long `BEGIN IMMEDIATE` waits for another process's write lock.
    pub busy_timeout: Duration,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            queue: 1024,
            group: 64,
            busy_timeout: Duration::from_secs(5),
        }
    }
}

type Run =
    Box<dyn for<'c> FnOnce(&'c Connection) -> BoxFuture<'c, Result<bool, libsql::Error>> + Send>;

/// A job: runs in the group's transaction and says whether to keep its
/// writes; its answer waits in `deliver` for the commit.
struct Job {
    run: Run,
    deliver: Box<dyn FnOnce(Result<(), libsql::Error>) + Send>,
}

/// The handle jobs are sent through; cheap to clone.
#[derive(Clone)]
pub struct Writer {
    label: &'static str,
    queue: usize,
    jobs: tokio::sync::mpsc::Sender<Job>,
}

impl Writer {
    /// Starts the task that owns `conn` for writing.
    pub fn start(label: &'static str, conn: Connection, settings: Settings) -> Writer {
        let (jobs, rx) = tokio::sync::mpsc::channel(settings.queue.max(1));
        let _ = conn.busy_timeout(settings.busy_timeout);
        tokio::spawn(run(label, conn, rx, settings.group.max(1)));
        Writer {
            label,
            queue: settings.queue,
            jobs,
        }
    }

    /// Runs `job` in the next group and returns its answer once the group
    /// has committed (or the job's undo, if it asked for one).
    pub async fn write<T, F>(&self, job: F) -> Result<T, Error>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c Connection) -> BoxFuture<'c, Result<Step<T>, libsql::Error>>
            + Send
            + 'static,
    {
        let (tx, rx) = tokio::sync::oneshot::channel::<Result<T, libsql::Error>>();
        let slot = std::sync::Arc::new(std::sync::Mutex::new(None::<T>));
        let filled = slot.clone();
        let run: Run = Box::new(move |conn| {
            Box::pin(async move {
                let (keep, value) = match job(conn).await? {
                    Step::Commit(v) => (true, v),
                    Step::Rollback(v) => (false, v),
                };
                *filled.lock().expect("job slot") = Some(value);
                Ok(keep)
            })
        });
        let deliver = Box::new(move |outcome: Result<(), libsql::Error>| {
            let answer = outcome.and_then(|()| {
                slot.lock()
                    .expect("job slot")
                    .take()
                    .ok_or(libsql::Error::QueryReturnedNoRows)
            });
            let _ = tx.send(answer);
        });
        self.jobs
            .try_send(Job { run, deliver })
            .map_err(|e| match e {
                tokio::sync::mpsc::error::TrySendError::Full(_) => {
                    Error::Busy(self.label, self.queue)
                }
                tokio::sync::mpsc::error::TrySendError::Closed(_) => Error::Stopped(self.label),
            })?;
        rx.await
            .map_err(|_| Error::Stopped(self.label))?
            .map_err(Error::Db)
    }
}

async fn exec(conn: &Connection, sql: &str) -> Result<(), libsql::Error> {
    conn.execute(sql, ()).await.map(drop)
}

async fn run(
    label: &'static str,
    conn: Connection,
    mut rx: tokio::sync::mpsc::Receiver<Job>,
    group: usize,
) {
    let mut batch = Vec::with_capacity(group);
    while let Some(first) = rx.recv().await {
        batch.push(first);
        while batch.len() < group {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        if let Err(e) = exec(&conn, "BEGIN IMMEDIATE").await {
            tracing::warn!(db = label, error = %e, "a write group could not begin");
            for job in batch.drain(..) {
                (job.deliver)(Err(libsql::Error::SqliteFailure(5, e.to_string())));
            }
            continue;
        }
        let mut outcomes = Vec::with_capacity(batch.len());
        for (job, n) in batch.drain(..).zip(0..) {
            let savepoint = format!("job{n}");
            let outcome = match exec(&conn, &format!("SAVEPOINT {savepoint}")).await {
                Ok(()) => (job.run)(&conn).await,
                Err(e) => Err(e),
            };
            let undo = !matches!(outcome, Ok(true));
            if undo {
                let _ = exec(&conn, &format!("ROLLBACK TO {savepoint}")).await;
            }
            let _ = exec(&conn, &format!("RELEASE {savepoint}")).await;
            outcomes.push((job.deliver, outcome.map(drop)));
        }
        match exec(&conn, "COMMIT").await {
            Ok(()) => {
                for (deliver, outcome) in outcomes {
                    deliver(outcome);
                }
            }
            Err(e) => {
                tracing::error!(db = label, error = %e, jobs = outcomes.len(), "a write group did not commit");
                let _ = exec(&conn, "ROLLBACK").await;
                for (deliver, _) in outcomes {
                    deliver(Err(libsql::Error::SqliteFailure(1, e.to_string())));
                }
            }
        }
    }
}

/// Connections for reads, reused; WAL lets them read while the writer
/// writes.
pub struct Readers {
    db: libsql::Database,
    idle: std::sync::Mutex<Vec<Connection>>,
    keep: usize,
}

impl Readers {
    pub fn new(db: libsql::Database, keep: usize) -> Readers {
        Readers {
            db,
            idle: std::sync::Mutex::new(Vec::new()),
            keep,
        }
    }

    /// A connection to read with; give it back with [`Readers::put`].
    pub fn get(&self) -> Result<Connection, libsql::Error> {
        if let Some(c) = self.idle.lock().expect("readers").pop() {
            return Ok(c);
        }
        let c = self.db.connect()?;
        c.busy_timeout(Duration::from_secs(5))?;
        Ok(c)
    }

    pub fn put(&self, conn: Connection) {
        let mut idle = self.idle.lock().expect("readers");
        if idle.len() < self.keep {
            idle.push(conn);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn db() -> (tempfile::TempDir, libsql::Database, Connection) {
        let dir = tempfile::tempdir().unwrap();
        let db = libsql::Builder::new_local(dir.path().join("w.db"))
            .build()
            .await
            .unwrap();
        let conn = db.connect().unwrap();
        let mut rows = conn.query("PRAGMA journal_mode = WAL", ()).await.unwrap();
        while rows.next().await.unwrap().is_some() {}
        drop(rows);
        conn.execute("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT)", ())
            .await
            .unwrap();
        (dir, db, conn)
    }

    async fn count(conn: &Connection) -> i64 {
        let mut rows = conn.query("SELECT count(*) FROM t", ()).await.unwrap();
        rows.next().await.unwrap().unwrap().get(0).unwrap()
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn grouped_jobs_commit_together_and_fail_alone() {
        let (_dir, db, conn) = db().await;
        let w = Writer::start("test", conn, Settings::default());
        let mut tasks = Vec::new();
        for k in 0..200i64 {
            let w = w.clone();
            tasks.push(tokio::spawn(async move {
                w.write(move |c| {
                    Box::pin(async move {
                        // Every tenth job breaks a constraint after writing.
                        c.execute("INSERT INTO t (k, v) VALUES (?1, 'x')", [k])
                            .await?;
                        if k % 10 == 0 {
                            c.execute("INSERT INTO t (k, v) VALUES (?1, 'dup')", [k])
                                .await?;
                        }
                        // Every seventh asks to be undone.
                        Ok(if k % 7 == 0 {
                            Step::Rollback(k)
                        } else {
                            Step::Commit(k)
                        })
                    })
                })
                .await
            }));
        }
        let mut ok = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(_) => ok += 1,
                Err(Error::Db(_)) => {}
                Err(e) => panic!("{e}"),
            }
        }
        let kept = (0..200).filter(|k| k % 10 != 0 && k % 7 != 0).count() as i64;
        assert_eq!(
            ok,
            200 - 20,
            "failed jobs answer an error, the rest their value"
        );
        let reader = db.connect().unwrap();
        assert_eq!(
            count(&reader).await,
            kept,
            "only kept jobs' writes are there"
        );
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_full_queue_refuses_at_once() {
        let (_dir, _db, conn) = db().await;
        let w = Writer::start(
            "test",
            conn,
            Settings {
                queue: 2,
                group: 1,
                ..Settings::default()
            },
        );
        // A job that holds the writer until told to go on.
        let (go, wait) = tokio::sync::oneshot::channel::<()>();
        let held = {
            let w = w.clone();
            tokio::spawn(async move {
                w.write(move |_c| {
                    Box::pin(async move {
                        let _ = wait.await;
                        Ok(Step::Commit(()))
                    })
                })
                .await
            })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        let mut queued = Vec::new();
        for _ in 0..2 {
            let w = w.clone();
            queued.push(tokio::spawn(async move {
                w.write(|_c| Box::pin(async { Ok(Step::Commit(())) })).await
            }));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        let refused = w.write(|_c| Box::pin(async { Ok(Step::Commit(())) })).await;
        assert!(
            matches!(refused, Err(Error::Busy("test", 2))),
            "{refused:?}"
        );
        go.send(()).unwrap();
        held.await.unwrap().unwrap();
        for q in queued {
            q.await.unwrap().unwrap();
        }
    }
}
