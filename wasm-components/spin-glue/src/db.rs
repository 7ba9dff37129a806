//! [`edge_sql::Database`] over `spin:sqlite`.
//!
//! WASI 0.3 instances serve many requests, so each instance opens a label
//! once and keeps the connection.
//!
//! Statements go through `execute-async`, whose rows come back on a
//! stream: a write may wait round trips for the primary, and only the
//! async call lets the instance's other requests go on meanwhile.
//!
//! [`SpinDb::blocking_reads`] sends a statement that plainly only reads
//! ([`edge_sql::plainly_reads`]) through the blocking `execute` instead,
//! whose rows come back as one list. A read is answered from the PoP's
//! local replica in microseconds, and the stream and the future of
//! `execute-async` cost the guest several suspensions: on our host, a
//! product-page hit's one change-log query took about a third of the hit
//! through the async call.
//!
//! But on a wasmtime host a blocking call holds the whole store while the
//! host waits: every layer of the chain and every request in it (wasmtime
//! issue 11870; wasmtime offers no other form of host function for a
//! synchronous import). If the read then waits on anything another
//! pending call of that store holds, it waits until the guest deadline:
//! the soak run saw the auth chain stall past its 10 s twice in eight
//! minutes when the auth component's and the auth middleware's identity
//! reads blocked, a read waiting behind a write of the same store (the
//! replica's read gate and write queue). So blocking reads are only for a
//! database that no layer of the chain writes and that every layer of the
//! chain reads through blocking reads too: the catalog, in the cache and
//! catalog components.

use edge_sql::{DbError, Row, SqlValue};
use spin_sdk::sqlite::wit::sqlite as wit;
use spin_sdk::sqlite::{Connection, Value};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

/// One label's connections: the blocking one for reads, the async one
/// for the rest, each opened the first time it is needed.
#[derive(Default)]
struct Open {
    reads: Option<Rc<wit::Connection>>,
    writes: Option<Rc<Connection>>,
}

thread_local! {
    static OPEN: RefCell<BTreeMap<&'static str, Open>> = const { RefCell::new(BTreeMap::new()) };
}

/// The database behind one `sqlite_databases` label.
#[derive(Debug, Clone, Copy)]
pub struct SpinDb {
    label: &'static str,
    blocking_reads: bool,
}

impl SpinDb {
    /// Every statement through `execute-async`.
    pub const fn new(label: &'static str) -> SpinDb {
        SpinDb {
            label,
            blocking_reads: false,
        }
    }

    /// Plain reads through the blocking `execute`: only for a database
    /// no layer of the chain writes and every layer reads this way (see
    /// the module docs).
    pub const fn blocking_reads(label: &'static str) -> SpinDb {
        SpinDb {
            label,
            blocking_reads: true,
        }
    }

    fn opening_failed(&self, e: wit::Error) -> DbError {
        DbError(format!("opening {:?}: {e:?}", self.label))
    }

    fn for_reads(&self) -> Result<Rc<wit::Connection>, DbError> {
        if let Some(c) = OPEN.with_borrow(|open| open.get(self.label)?.reads.clone()) {
            return Ok(c);
        }
        let conn = Rc::new(wit::Connection::open(self.label).map_err(|e| self.opening_failed(e))?);
        OPEN.with_borrow_mut(|open| open.entry(self.label).or_default().reads = Some(conn.clone()));
        Ok(conn)
    }

    async fn for_writes(&self) -> Result<Rc<Connection>, DbError> {
        if let Some(c) = OPEN.with_borrow(|open| open.get(self.label)?.writes.clone()) {
            return Ok(c);
        }
        let conn = Rc::new(
            Connection::open(self.label)
                .await
                .map_err(|e| self.opening_failed(e))?,
        );
        OPEN.with_borrow_mut(|open| {
            open.entry(self.label).or_default().writes = Some(conn.clone())
        });
        Ok(conn)
    }
}

impl edge_sql::Database for SpinDb {
    async fn query(&self, sql: &str, params: Vec<SqlValue>) -> Result<Vec<Row>, DbError> {
        let params: Vec<Value> = params.into_iter().map(to_wit).collect();
        let failed = |e: wit::Error| DbError(format!("{e:?}"));
        let rows = if self.blocking_reads && edge_sql::plainly_reads(sql) {
            self.for_reads()?
                .execute(sql, &params)
                .map_err(failed)?
                .rows
        } else {
            self.for_writes()
                .await?
                .execute(sql, params)
                .await
                .map_err(failed)?
                .collect()
                .await
                .map_err(failed)?
        };
        Ok(rows
            .into_iter()
            .map(|row| row.values.into_iter().map(from_wit).collect())
            .collect())
    }
}

fn to_wit(v: SqlValue) -> Value {
    match v {
        SqlValue::Integer(i) => Value::Integer(i),
        SqlValue::Real(f) => Value::Real(f),
        SqlValue::Text(s) => Value::Text(s),
        SqlValue::Blob(b) => Value::Blob(b),
        SqlValue::Null => Value::Null,
    }
}

fn from_wit(v: Value) -> SqlValue {
    match v {
        Value::Integer(i) => SqlValue::Integer(i),
        Value::Real(f) => SqlValue::Real(f),
        Value::Text(s) => SqlValue::Text(s),
        Value::Blob(b) => SqlValue::Blob(b),
        Value::Null => SqlValue::Null,
    }
}
