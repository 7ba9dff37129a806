//! [`edge_sql::Database`] over `spin:sqlite`.
//!
//! WASI 0.3 instances serve many requests, so each instance opens a label
//! once and keeps the connection.
//!
//! A statement that plainly only reads ([`edge_sql::plainly_reads`]) goes
//! through the blocking `execute`, whose rows come back as one list; any
//! other through `execute-async`, whose rows come back on a stream. A read
//! is answered from the PoP's local replica in microseconds, and the
//! stream and the future that come with `execute-async` cost the guest
//! several suspensions: on our host, a product-page hit's one change-log
//! query took about a third of the hit through the async call. A write
//! may wait a round trip for the primary, and only the async call lets
//! the instance's other requests go on meanwhile.

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
pub struct SpinDb(pub &'static str);

impl SpinDb {
    fn opening_failed(&self, e: wit::Error) -> DbError {
        DbError(format!("opening {:?}: {e:?}", self.0))
    }

    fn for_reads(&self) -> Result<Rc<wit::Connection>, DbError> {
        if let Some(c) = OPEN.with_borrow(|open| open.get(self.0)?.reads.clone()) {
            return Ok(c);
        }
        let conn = Rc::new(wit::Connection::open(self.0).map_err(|e| self.opening_failed(e))?);
        OPEN.with_borrow_mut(|open| open.entry(self.0).or_default().reads = Some(conn.clone()));
        Ok(conn)
    }

    async fn for_writes(&self) -> Result<Rc<Connection>, DbError> {
        if let Some(c) = OPEN.with_borrow(|open| open.get(self.0)?.writes.clone()) {
            return Ok(c);
        }
        let conn = Rc::new(
            Connection::open(self.0)
                .await
                .map_err(|e| self.opening_failed(e))?,
        );
        OPEN.with_borrow_mut(|open| open.entry(self.0).or_default().writes = Some(conn.clone()));
        Ok(conn)
    }
}

impl edge_sql::Database for SpinDb {
    async fn query(&self, sql: &str, params: Vec<SqlValue>) -> Result<Vec<Row>, DbError> {
        let params: Vec<Value> = params.into_iter().map(to_wit).collect();
        let failed = |e: wit::Error| DbError(format!("{e:?}"));
        let rows = if edge_sql::plainly_reads(sql) {
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
