//! The seam between edge logic and a SQL database: values, rows and one
//! narrow trait. Components implement [`Database`] over `spin:sqlite`;
//! the logic crates stay free of I/O and of any host's types.

use std::future::Future;

/// A SQLite value, as bound parameter or result column.
#[derive(Debug, Clone, PartialEq)]
pub enum SqlValue {
    Integer(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
    Null,
}

impl SqlValue {
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            SqlValue::Integer(i) => Some(*i),
            _ => None,
        }
    }
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            SqlValue::Real(f) => Some(*f),
            SqlValue::Integer(i) => Some(*i as f64),
            _ => None,
        }
    }
    pub fn as_str(&self) -> Option<&str> {
        match self {
            SqlValue::Text(s) => Some(s),
            _ => None,
        }
    }
    pub fn as_blob(&self) -> Option<&[u8]> {
        match self {
            SqlValue::Blob(b) => Some(b),
            _ => None,
        }
    }
}

impl From<i64> for SqlValue {
    fn from(v: i64) -> SqlValue {
        SqlValue::Integer(v)
    }
}

impl From<&str> for SqlValue {
    fn from(v: &str) -> SqlValue {
        SqlValue::Text(v.to_string())
    }
}

impl From<String> for SqlValue {
    fn from(v: String) -> SqlValue {
        SqlValue::Text(v)
    }
}

impl From<Vec<u8>> for SqlValue {
    fn from(v: Vec<u8>) -> SqlValue {
        SqlValue::Blob(v)
    }
}

impl<T: Into<SqlValue>> From<Option<T>> for SqlValue {
    fn from(v: Option<T>) -> SqlValue {
        v.map_or(SqlValue::Null, Into::into)
    }
}

/// The hint that asks our edge host to answer a plain read through the
/// blocking `execute` only if it can without waiting, and otherwise to
/// fail at once with [`WOULD_WAIT`] (the caller then sends the statement
/// through `execute-async`). On wasmtime the host function behind a
/// synchronous import holds the whole store, every layer of the chain,
/// while it waits; a read that waits behind a write pending in the same
/// store then waits for good. To any other host (Spin, a remote libSQL)
/// the hint is an SQL comment and the read runs as it always does.
pub const ANSWER_NOW: &str = "/* edgeshop: answer now */ ";

/// The `io` error text of a hinted read the host could not answer at once.
pub const WOULD_WAIT: &str =
    "edgeshop: answering this read would wait; send it through execute-async";

/// `sql` without the [`ANSWER_NOW`] hint, if it carries it.
pub fn answer_now(sql: &str) -> Option<&str> {
    sql.strip_prefix(ANSWER_NOW)
}

/// True when `sql` plainly only reads: it starts with `SELECT`, `EXPLAIN`
/// or `VALUES`, after the [`ANSWER_NOW`] hint if it has one. A replica
/// answers such a statement from its local file, at once; anything else
/// may go to the primary, a round trip away. Other leading comments are
/// not skipped, so a commented read counts as a possible write: that
/// costs only speed, never correctness.
pub fn plainly_reads(sql: &str) -> bool {
    let head: String = answer_now(sql)
        .unwrap_or(sql)
        .trim_start()
        .chars()
        .take_while(|c| c.is_ascii_alphabetic())
        .collect::<String>()
        .to_ascii_uppercase();
    matches!(head.as_str(), "SELECT" | "EXPLAIN" | "VALUES")
}

/// One result row.
pub type Row = Vec<SqlValue>;

/// Why a statement failed. The text is for logs, not for clients.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct DbError(pub String);

/// A database one statement at a time (`spin:sqlite` has no transaction
/// API, so each statement must leave the data consistent on its own).
pub trait Database {
    fn query(
        &self,
        sql: &str,
        params: Vec<SqlValue>,
    ) -> impl Future<Output = Result<Vec<Row>, DbError>>;
}

#[cfg(test)]
mod tests {
    use super::{ANSWER_NOW, answer_now, plainly_reads};

    #[test]
    fn only_statements_that_start_by_reading_are_reads() {
        for read in [
            "SELECT 1",
            "  select * from t",
            "EXPLAIN SELECT 1",
            "VALUES (1)",
            "/* edgeshop: answer now */ SELECT 1",
        ] {
            assert!(plainly_reads(read), "{read}");
        }
        for write in [
            "INSERT INTO t VALUES (1)",
            "update t set a = 1",
            "WITH x AS (SELECT 1) INSERT INTO t SELECT * FROM x",
            "DELETE FROM t",
            "PRAGMA user_version = 3",
            "-- a comment\nSELECT 1",
            "/* edgeshop: answer now */ DELETE FROM t",
            "SELECTED",
            "",
        ] {
            assert!(!plainly_reads(write), "{write}");
        }
    }

    #[test]
    fn the_hint_is_a_comment_the_host_can_strip() {
        let hinted = format!("{ANSWER_NOW}SELECT 1");
        assert_eq!(answer_now(&hinted), Some("SELECT 1"));
        assert_eq!(answer_now("SELECT 1"), None);
        assert!(ANSWER_NOW.trim_start().starts_with("/*") && ANSWER_NOW.trim_end().ends_with("*/"));
    }
}
