//! Running Hrana statements and batches on a libSQL connection.

use bytes::Bytes;
use libsql::params::Params;
use libsql_hrana::proto::{
    Batch, BatchCond, BatchResult, Col, DescribeCol, DescribeParam, DescribeResult, Error, Row,
    Stmt, StmtResult, Value,
};
use std::collections::HashMap;
use std::sync::Arc;

/// Largest result one statement may return, so a query cannot make the
/// origin buffer without bound.
pub const MAX_RESULT_BYTES: usize = 8 << 20;

pub fn error(code: &str, message: impl Into<String>) -> Error {
    Error {
        message: message.into(),
        code: code.to_string(),
    }
}

fn sqlite_error(e: libsql::Error) -> Error {
    match e {
        libsql::Error::SqliteFailure(code, msg) => {
            let name = match code & 0xff {
                1 => "SQLITE_ERROR",
                5 => "SQLITE_BUSY",
                6 => "SQLITE_LOCKED",
                8 => "SQLITE_READONLY",
                11 => "SQLITE_CORRUPT",
                13 => "SQLITE_FULL",
                19 => "SQLITE_CONSTRAINT",
                20 => "SQLITE_MISMATCH",
                25 => "SQLITE_RANGE",
                _ => "SQLITE_UNKNOWN",
            };
            error(name, msg)
        }
        other => error("SQLITE_ERROR", other.to_string()),
    }
}

fn to_libsql(v: &Value) -> Result<libsql::Value, Error> {
    Ok(match v {
        Value::Null => libsql::Value::Null,
        Value::Integer { value } => libsql::Value::Integer(*value),
        Value::Float { value } => libsql::Value::Real(*value),
        Value::Text { value } => libsql::Value::Text(value.to_string()),
        Value::Blob { value } => libsql::Value::Blob(value.to_vec()),
        Value::None => return Err(error("ARGS_INVALID", "an argument has no value")),
    })
}

fn from_libsql(v: libsql::Value) -> (Value, usize) {
    match v {
        libsql::Value::Null => (Value::Null, 1),
        libsql::Value::Integer(i) => (Value::Integer { value: i }, 8),
        libsql::Value::Real(f) => (Value::Float { value: f }, 8),
        libsql::Value::Text(s) => {
            let n = s.len();
            (
                Value::Text {
                    value: Arc::from(s),
                },
                n,
            )
        }
        libsql::Value::Blob(b) => {
            let n = b.len();
            (
                Value::Blob {
                    value: Bytes::from(b),
                },
                n,
            )
        }
    }
}

/// Resolves `sql` or `sql_id` against the stream's stored SQL.
pub fn sql_text<'a>(
    sql: &'a Option<String>,
    sql_id: Option<i32>,
    stored: &'a HashMap<i32, String>,
) -> Result<&'a str, Error> {
    match (sql, sql_id) {
        (Some(s), None) => Ok(s),
        (None, Some(id)) => stored
            .get(&id)
            .map(String::as_str)
            .ok_or_else(|| error("SQL_NOT_FOUND", format!("no stored SQL with id {id}"))),
        _ => Err(error("SQL_INVALID", "give exactly one of sql and sql_id")),
    }
}

pub async fn execute(
    conn: &libsql::Connection,
    stmt: &Stmt,
    stored: &HashMap<i32, String>,
) -> Result<StmtResult, Error> {
    let sql = sql_text(&stmt.sql, stmt.sql_id, stored)?;
    if !stmt.named_args.is_empty() && !stmt.args.is_empty() {
        return Err(error(
            "ARGS_INVALID",
            "positional and named arguments cannot be mixed",
        ));
    }
    let started = std::time::Instant::now();
    let before = conn.total_changes();
    let prepared = conn.prepare(sql).await.map_err(sqlite_error)?;
    let params = if stmt.named_args.is_empty() {
        Params::Positional(stmt.args.iter().map(to_libsql).collect::<Result<_, _>>()?)
    } else {
        // Clients may name `:x` as `x` (sqld accepts both): match a bare
        // name to the statement's parameter with any of SQLite's prefixes.
        let declared: Vec<String> = (1..=prepared.parameter_count() as i32)
            .filter_map(|i| prepared.parameter_name(i).map(str::to_string))
            .collect();
        let mut named = Vec::with_capacity(stmt.named_args.len());
        for a in &stmt.named_args {
            let name = if a.name.starts_with([':', '@', '$']) {
                a.name.clone()
            } else {
                declared
                    .iter()
                    .find(|d| d.len() > 1 && d[1..] == *a.name)
                    .cloned()
                    .ok_or_else(|| {
                        error(
                            "ARGS_INVALID",
                            format!("the statement has no parameter named {:?}", a.name),
                        )
                    })?
            };
            named.push((name, to_libsql(&a.value)?));
        }
        Params::Named(named)
    };
    let cols: Vec<Col> = prepared
        .columns()
        .iter()
        .map(|c| Col {
            name: Some(c.name().to_string()),
            decltype: c.decl_type().map(str::to_string),
        })
        .collect();
    let mut rows = prepared.query(params).await.map_err(sqlite_error)?;
    let want_rows = stmt.want_rows.unwrap_or(true);
    let mut out = Vec::new();
    let mut bytes = 0usize;
    let mut read = 0u64;
    while let Some(row) = rows.next().await.map_err(sqlite_error)? {
        read += 1;
        if !want_rows {
            continue;
        }
        let mut values = Vec::with_capacity(cols.len());
        for i in 0..cols.len() as i32 {
            let (v, n) = from_libsql(row.get_value(i).map_err(sqlite_error)?);
            bytes += n;
            values.push(v);
        }
        if bytes > MAX_RESULT_BYTES {
            return Err(error(
                "RESPONSE_TOO_LARGE",
                format!("the result is larger than {MAX_RESULT_BYTES} bytes; page through it"),
            ));
        }
        out.push(Row { values });
    }
    drop(rows);
    let affected = conn.total_changes().saturating_sub(before);
    Ok(StmtResult {
        cols,
        rows: out,
        affected_row_count: affected,
        last_insert_rowid: Some(conn.last_insert_rowid()),
        replication_index: None,
        rows_read: read,
        rows_written: affected,
        query_duration_ms: started.elapsed().as_secs_f64() * 1000.0,
    })
}

fn holds(cond: &BatchCond, result: &BatchResult, conn: &libsql::Connection) -> Result<bool, Error> {
    let step = |s: u32| s as usize;
    Ok(match cond {
        BatchCond::None => true,
        BatchCond::Ok { step: s } => result
            .step_results
            .get(step(*s))
            .is_some_and(Option::is_some),
        BatchCond::Error { step: s } => result
            .step_errors
            .get(step(*s))
            .is_some_and(Option::is_some),
        BatchCond::Not { cond } => !holds(cond, result, conn)?,
        BatchCond::And(list) => {
            for c in &list.conds {
                if !holds(c, result, conn)? {
                    return Ok(false);
                }
            }
            true
        }
        BatchCond::Or(list) => {
            for c in &list.conds {
                if holds(c, result, conn)? {
                    return Ok(true);
                }
            }
            false
        }
        BatchCond::IsAutocommit {} => conn.is_autocommit(),
    })
}

/// Runs a batch: each step runs if its condition holds on the steps before.
pub async fn batch(
    conn: &libsql::Connection,
    batch: &Batch,
    stored: &HashMap<i32, String>,
) -> Result<BatchResult, Error> {
    let mut result = BatchResult::default();
    for (i, step) in batch.steps.iter().enumerate() {
        if let Some(cond) = &step.condition {
            // A condition may only look back.
            if refers_forward(cond, i as u32) {
                return Err(error(
                    "BATCH_COND_INVALID",
                    format!("step {i}'s condition refers to a later step"),
                ));
            }
        }
        let run = match &step.condition {
            Some(c) => holds(c, &result, conn)?,
            None => true,
        };
        if !run {
            result.step_results.push(None);
            result.step_errors.push(None);
            continue;
        }
        match execute(conn, &step.stmt, stored).await {
            Ok(r) => {
                result.step_results.push(Some(r));
                result.step_errors.push(None);
            }
            Err(e) => {
                result.step_results.push(None);
                result.step_errors.push(Some(e));
            }
        }
    }
    Ok(result)
}

fn refers_forward(cond: &BatchCond, current: u32) -> bool {
    match cond {
        BatchCond::Ok { step } | BatchCond::Error { step } => *step >= current,
        BatchCond::Not { cond } => refers_forward(cond, current),
        BatchCond::And(l) | BatchCond::Or(l) => l.conds.iter().any(|c| refers_forward(c, current)),
        BatchCond::None | BatchCond::IsAutocommit {} => false,
    }
}

pub async fn describe(conn: &libsql::Connection, sql: &str) -> Result<DescribeResult, Error> {
    let stmt = conn.prepare(sql).await.map_err(sqlite_error)?;
    let params = (1..=stmt.parameter_count() as i32)
        .map(|i| DescribeParam {
            name: stmt.parameter_name(i).map(str::to_string),
        })
        .collect();
    let cols = stmt
        .columns()
        .iter()
        .map(|c| DescribeCol {
            name: c.name().to_string(),
            decltype: c.decl_type().map(str::to_string),
        })
        .collect();
    let head = sql.trim_start().to_ascii_uppercase();
    let readonly = ["SELECT", "EXPLAIN", "WITH", "VALUES"]
        .iter()
        .any(|k| head.starts_with(k))
        && !head.contains("INSERT")
        && !head.contains("UPDATE")
        && !head.contains("DELETE");
    Ok(DescribeResult {
        params,
        cols,
        is_explain: head.starts_with("EXPLAIN"),
        is_readonly: readonly,
    })
}
