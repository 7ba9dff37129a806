//! [`edge_sql::Database`] over `spin:sqlite`.
//!
//! WASI 0.3 instances serve many requests, so each instance opens a label
//! once and keeps the connection.
//!
//! A statement that plainly only reads ([`edge_sql::plainly_reads`]) goes
//! first through the blocking `execute`, whose rows come back as one list,
//! with the [`edge_sql::ANSWER_NOW`] hint; anything else, and a hinted
//! read the host could not answer at once, goes through `execute-async`,
//! whose rows come back on a stream.
//!
//! A read is answered from the PoP's local replica in microseconds, and
//! the stream and the future of `execute-async` cost the guest several
//! suspensions: on our host, a product-page hit's one change-log query
//! took about a third of the hit through the async call. But on wasmtime
//! the host function behind a synchronous import holds the whole store,
//! every layer of the chain and every request in it, while it waits
//! (wasmtime issue 11870; a concurrent host function is refused for a
//! non-`async` import). A blocking read that waited behind a write pending
//! in the same store waited until the guest deadline: the soak run saw
//! the auth chain stall that way. With the hint our host answers only what
//! it can without waiting and otherwise says [`edge_sql::WOULD_WAIT`] at
//! once; other hosts read the hint as a comment.

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
}

impl SpinDb {
    pub const fn new(label: &'static str) -> SpinDb {
        SpinDb { label }
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
        if edge_sql::plainly_reads(sql) {
            let hinted = format!("{}{sql}", edge_sql::ANSWER_NOW);
            match self.for_reads()?.execute(&hinted, &params) {
                Ok(result) => return Ok(rows(result.rows)),
                Err(wit::Error::Io(m)) if m == edge_sql::WOULD_WAIT => {}
                Err(e) => return Err(failed(e)),
            }
        }
        let result = self
            .for_writes()
            .await?
            .execute(sql, params)
            .await
            .map_err(failed)?
            .collect()
            .await
            .map_err(failed)?;
        Ok(rows(result))
    }
}

fn rows(rows: Vec<wit::RowResult>) -> Vec<Row> {
    rows.into_iter()
        .map(|row| row.values.into_iter().map(from_wit).collect())
        .collect()
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
