//! A pooled connection and the statements it keeps prepared.
//!
//! The `libsql` crate prepares a statement afresh for every `query`:
//! SQLite parses and plans it, and on an embedded replica the crate first
//! parses it once more with its own parser to decide where it runs.
//! Components send the same few statements again and again (a cache hit
//! asks the `changes` table the same question every time), so a
//! connection that only reads its local file keeps what it prepared and
//! runs it again.

use std::collections::HashMap;

/// Statements one connection keeps prepared at most. Past it the kept
/// ones are dropped and it starts again, so statements built per call
/// (an `IN` list as long as its input, say) cannot grow it, and cannot
/// keep the ones used every request out for good.
const KEPT: usize = 16;

/// A connection with the statements it prepared.
pub(super) struct Held {
    pub conn: libsql::Connection,
    kept: HashMap<Box<str>, libsql::Statement>,
    /// Whether its statements may be kept: only a plain handle's on the
    /// local file. One that may go to the primary is decided at
    /// preparation (where it runs, on which stream), and the `libsql`
    /// replica's statements ignore `reset`, so one kept there would run
    /// again on the values bound the first time.
    keeps: bool,
}

/// A kept statement, lent for one run and reset when dropped, so a
/// result read only in part (one past the size limit, say) leaves no read
/// open on the file, which would hold back the replica's checkpoints.
pub(super) struct Prepared<'a>(&'a libsql::Statement);

impl Held {
    pub fn new(conn: libsql::Connection, keeps: bool) -> Held {
        Held {
            conn,
            kept: HashMap::new(),
            keeps,
        }
    }

    /// Prepares `sql` to keep, unless it is kept already or this
    /// connection keeps none.
    pub async fn keep(&mut self, sql: &str) -> Result<(), libsql::Error> {
        if self.keeps && !self.kept.contains_key(sql) {
            let prepared = self.conn.prepare(sql).await?;
            if self.kept.len() >= KEPT {
                self.kept.clear();
            }
            self.kept.insert(sql.into(), prepared);
        }
        Ok(())
    }

    /// The statement kept for `sql`, lent for one run.
    pub fn kept(&self, sql: &str) -> Option<Prepared<'_>> {
        self.kept.get(sql).map(Prepared)
    }

    /// How many statements it keeps prepared.
    #[cfg(test)]
    pub fn kept_count(&self) -> usize {
        self.kept.len()
    }
}

impl std::ops::Deref for Prepared<'_> {
    type Target = libsql::Statement;

    fn deref(&self) -> &libsql::Statement {
        self.0
    }
}

impl Drop for Prepared<'_> {
    fn drop(&mut self) {
        self.0.reset();
    }
}
