//! Versioned SQL migrations for the origin's databases.
//!
//! A migration is a plain SQL file with a version; [`apply`] runs every
//! one newer than the database's version, each in its own transaction,
//! and records it in `schema_migrations`. Sets are append-only: a
//! released migration never changes, a new version is added instead.

use libsql::{Connection, params};

/// One versioned migration.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    pub version: i64,
    pub name: &'static str,
    pub sql: &'static str,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("database error: {0}")]
    Database(#[from] libsql::Error),
    #[error(
        "the database is at schema version {found}, newer than this build knows ({known}); \
         upgrade edgeshop before opening it"
    )]
    SchemaTooNew { found: i64, known: i64 },
}

/// Opens (creating if needed) a local database file in WAL mode (readers
/// proceed while a writer commits) with foreign keys enforced.
pub async fn open_local(path: &std::path::Path) -> Result<(libsql::Database, Connection), Error> {
    let db = libsql::Builder::new_local(path).build().await?;
    let conn = db.connect()?;
    let mut rows = conn.query("PRAGMA journal_mode = WAL", ()).await?;
    while rows.next().await?.is_some() {}
    conn.execute("PRAGMA foreign_keys = ON", ()).await?;
    Ok((db, conn))
}

/// Applies every migration of `set` newer than the database's version.
/// Returns the versions applied.
pub async fn apply(conn: &Connection, set: &[Migration]) -> Result<Vec<i64>, Error> {
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
            version INTEGER PRIMARY KEY, name TEXT NOT NULL,
            applied_at INTEGER NOT NULL DEFAULT (unixepoch()))",
        (),
    )
    .await?;
    let current = schema_version(conn).await?;
    let known = set.last().map_or(0, |m| m.version);
    if current > known {
        return Err(Error::SchemaTooNew {
            found: current,
            known,
        });
    }
    let mut applied = Vec::new();
    for m in set.iter().filter(|m| m.version > current) {
        let tx = conn.transaction().await?;
        tx.execute_batch(m.sql).await?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name) VALUES (?1, ?2)",
            params![m.version, m.name],
        )
        .await?;
        tx.commit().await?;
        applied.push(m.version);
    }
    Ok(applied)
}

/// The highest applied migration, 0 for an empty database.
pub async fn schema_version(conn: &Connection) -> Result<i64, Error> {
    let mut rows = conn
        .query(
            "SELECT coalesce(max(version), 0) FROM schema_migrations",
            (),
        )
        .await?;
    Ok(match rows.next().await? {
        Some(row) => row.get::<i64>(0)?,
        None => 0,
    })
}
