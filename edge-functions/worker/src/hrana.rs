//! [`edge_sql::Database`] over Hrana HTTP pipelines at the origin
//! (`{origin_url}/db/{label}/v2/pipeline`, the edge token as bearer), with
//! `libsql-hrana`'s protocol types over the Workers fetch API. It plays
//! the role a PoP's local replica plays, at one round trip per call;
//! [`Hrana::run`] puts several statements in one.

use crate::forward::{self, Failed};
use edge_sql::{DbError, Row, SqlValue};
use libsql_hrana::proto::{
    CloseStreamReq, ExecuteStreamReq, PipelineReqBody, PipelineRespBody, Stmt, StreamRequest,
    StreamResponse, StreamResult, Value,
};
use std::time::Duration;

/// Longest one pipeline may take; a PoP's deadline for a whole request is
/// about this.
const WAIT: Duration = Duration::from_secs(10);
/// Largest pipeline answer read (a listing page is far smaller).
const MAX_ANSWER_BYTES: usize = 8 << 20;

/// One database at the origin.
#[derive(Debug, Clone)]
pub struct Hrana {
    url: String,
    token: String,
}

impl Hrana {
    pub fn new(origin: &str, label: &str, token: &str) -> Hrana {
        Hrana {
            url: format!("{origin}/db/{label}/v2/pipeline"),
            token: token.to_string(),
        }
    }

    /// Runs `statements` in one pipeline, one round trip, each on its own
    /// (as `spin:sqlite` runs them); the rows of each, or the first error.
    pub async fn run(
        &self,
        statements: Vec<(String, Vec<SqlValue>)>,
    ) -> Result<Vec<Vec<Row>>, DbError> {
        let n = statements.len();
        let mut requests: Vec<StreamRequest> = statements
            .into_iter()
            .map(|(sql, params)| {
                let mut stmt = Stmt::new(sql, true);
                params.into_iter().for_each(|p| stmt.bind(to_hrana(p)));
                StreamRequest::Execute(ExecuteStreamReq { stmt })
            })
            .collect();
        requests.push(StreamRequest::Close(CloseStreamReq {}));
        let body = serde_json::to_vec(&PipelineReqBody {
            baton: None,
            requests,
        })
        .map_err(|e| DbError(format!("encoding a pipeline: {e}")))?;
        let fields = [
            ("authorization", format!("Bearer {}", self.token)),
            ("content-type", "application/json".to_string()),
        ];
        let answer = forward::exchange(
            worker::Method::Post,
            &self.url,
            &fields,
            Some(body),
            WAIT,
            MAX_ANSWER_BYTES,
        )
        .await
        .map_err(|f: Failed| DbError(format!("the origin: {}", f.how())))?;
        if answer.status != 200 {
            return Err(DbError(format!(
                "the origin answered {}: {}",
                answer.status,
                String::from_utf8_lossy(&answer.body)
            )));
        }
        let resp: PipelineRespBody = serde_json::from_slice(&answer.body)
            .map_err(|e| DbError(format!("reading a pipeline answer: {e}")))?;
        let mut out = Vec::with_capacity(n);
        for result in resp.results.into_iter().take(n) {
            match result {
                StreamResult::Ok {
                    response: StreamResponse::Execute(e),
                } => out.push(
                    e.result
                        .rows
                        .into_iter()
                        .map(|r| r.values.into_iter().map(from_hrana).collect())
                        .collect(),
                ),
                StreamResult::Error { error } => {
                    return Err(DbError(format!("{} ({})", error.message, error.code)));
                }
                _ => return Err(DbError("the origin answered out of turn".to_string())),
            }
        }
        if out.len() != n {
            return Err(DbError("the origin left statements unanswered".to_string()));
        }
        Ok(out)
    }
}

impl edge_sql::Database for Hrana {
    async fn query(&self, sql: &str, params: Vec<SqlValue>) -> Result<Vec<Row>, DbError> {
        let mut all = self.run(vec![(sql.to_string(), params)]).await?;
        Ok(all.pop().unwrap_or_default())
    }
}

fn to_hrana(v: SqlValue) -> Value {
    match v {
        SqlValue::Integer(value) => Value::Integer { value },
        SqlValue::Real(value) => Value::Float { value },
        SqlValue::Text(value) => Value::Text {
            value: value.into(),
        },
        SqlValue::Blob(value) => Value::Blob {
            value: value.into(),
        },
        SqlValue::Null => Value::Null,
    }
}

fn from_hrana(v: Value) -> SqlValue {
    match v {
        Value::Integer { value } => SqlValue::Integer(value),
        Value::Float { value } => SqlValue::Real(value),
        Value::Text { value } => SqlValue::Text(value.to_string()),
        Value::Blob { value } => SqlValue::Blob(value.to_vec()),
        Value::Null | Value::None => SqlValue::Null,
    }
}
