//! [`edge_sql::Database`] over `spin:sqlite`.
//!
//! WASI 0.3 instances serve many requests, so each instance opens a label
//! once and keeps the connection.

use edge_sql::{DbError, Row, SqlValue};
use spin_sdk::sqlite::{Connection, Value};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

thread_local! {
    static OPEN: RefCell<BTreeMap<&'static str, Rc<Connection>>> = const { RefCell::new(BTreeMap::new()) };
}

/// The database behind one `sqlite_databases` label.
#[derive(Debug, Clone, Copy)]
pub struct SpinDb(pub &'static str);

impl SpinDb {
    async fn connection(&self) -> Result<Rc<Connection>, DbError> {
        if let Some(c) = OPEN.with_borrow(|open| open.get(self.0).cloned()) {
            return Ok(c);
        }
        let conn = Rc::new(
            Connection::open(self.0)
                .await
                .map_err(|e| DbError(format!("opening {:?}: {e:?}", self.0)))?,
        );
        OPEN.with_borrow_mut(|open| open.insert(self.0, conn.clone()));
        Ok(conn)
    }
}

impl edge_sql::Database for SpinDb {
    async fn query(&self, sql: &str, params: Vec<SqlValue>) -> Result<Vec<Row>, DbError> {
        let db = self.connection().await?;
        let params = params.into_iter().map(|p| match p {
            SqlValue::Integer(i) => Value::Integer(i),
            SqlValue::Real(f) => Value::Real(f),
            SqlValue::Text(s) => Value::Text(s),
            SqlValue::Blob(b) => Value::Blob(b),
            SqlValue::Null => Value::Null,
        });
        let result = db
            .execute(sql, params)
            .await
            .map_err(|e| DbError(format!("{e:?}")))?;
        let rows = result
            .collect()
            .await
            .map_err(|e| DbError(format!("{e:?}")))?;
        Ok(rows
            .into_iter()
            .map(|row| {
                row.values
                    .into_iter()
                    .map(|v| match v {
                        Value::Integer(i) => SqlValue::Integer(i),
                        Value::Real(f) => SqlValue::Real(f),
                        Value::Text(s) => SqlValue::Text(s),
                        Value::Blob(b) => SqlValue::Blob(b),
                        Value::Null => SqlValue::Null,
                    })
                    .collect()
            })
            .collect())
    }
}
