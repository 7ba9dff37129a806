//! One statement to the primary in one round trip: a Hrana pipeline that
//! opens a stream, executes, and closes it, in a single HTTP request.
//!
//! The `libsql` client's remote write takes a round trip to describe the
//! statement, one to execute it and two to pull it back; the write itself
//! needs one. The primary's answer names where its replication log ended
//! once the write was shipped (our origin's `edgeshop-replication-position`
//! header), which is what the replica waits for before the writer reads.

use crate::Position;
use crate::delay;
use libsql_hrana::proto;

/// The header our origin answers a Hrana request with.
pub const POSITION_HEADER: &str = "edgeshop-replication-position";

/// What a write returned.
#[derive(Debug, Default)]
pub struct Written {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<libsql::Value>>,
    pub affected: u64,
    pub last_insert_rowid: i64,
    /// Where the primary's log ended with this write in it, if it said
    /// (our origin's header, or sqld's `replication_index`).
    pub position: Option<Position>,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WriteError {
    /// Nothing reached the primary: safe to send again.
    #[error("the primary could not be reached: {0}")]
    NotSent(String),
    /// The primary refused the statement (an SQL error): it changed
    /// nothing.
    #[error("{0}")]
    Refused(String),
    /// The answer was lost or unreadable: the write may have happened.
    #[error("{0}")]
    Unknown(String),
}

fn to_proto(v: libsql::Value) -> proto::Value {
    match v {
        libsql::Value::Null => proto::Value::Null,
        libsql::Value::Integer(value) => proto::Value::Integer { value },
        libsql::Value::Real(value) => proto::Value::Float { value },
        libsql::Value::Text(s) => proto::Value::Text { value: s.into() },
        libsql::Value::Blob(b) => proto::Value::Blob { value: b.into() },
    }
}

fn from_proto(v: proto::Value) -> libsql::Value {
    match v {
        proto::Value::None | proto::Value::Null => libsql::Value::Null,
        proto::Value::Integer { value } => libsql::Value::Integer(value),
        proto::Value::Float { value } => libsql::Value::Real(value),
        proto::Value::Text { value } => libsql::Value::Text(value.to_string()),
        proto::Value::Blob { value } => libsql::Value::Blob(value.to_vec()),
    }
}

/// The request body: execute, then close, in one pipeline.
pub fn pipeline(sql: &str, args: Vec<libsql::Value>) -> Vec<u8> {
    let mut stmt = proto::Stmt::new(sql, true);
    stmt.args = args.into_iter().map(to_proto).collect();
    let body = proto::PipelineReqBody {
        baton: None,
        requests: vec![
            proto::StreamRequest::Execute(proto::ExecuteStreamReq { stmt }),
            proto::StreamRequest::Close(proto::CloseStreamReq {}),
        ],
    };
    serde_json::to_vec(&body).expect("a pipeline serialises")
}

/// Reads the answer to [`pipeline`].
pub fn read_answer(body: &[u8], position: Option<Position>) -> Result<Written, WriteError> {
    let resp: proto::PipelineRespBody = serde_json::from_slice(body)
        .map_err(|e| WriteError::Unknown(format!("the primary's answer does not parse: {e}")))?;
    match resp.results.into_iter().next() {
        Some(proto::StreamResult::Ok {
            response: proto::StreamResponse::Execute(proto::ExecuteStreamResp { result }),
        }) => Ok(Written {
            columns: result
                .cols
                .into_iter()
                .map(|c| c.name.unwrap_or_default())
                .collect(),
            rows: result
                .rows
                .into_iter()
                .map(|r| r.values.into_iter().map(from_proto).collect())
                .collect(),
            affected: result.affected_row_count,
            last_insert_rowid: result.last_insert_rowid.unwrap_or(0),
            // sqld says where its log ended in the answer itself.
            position: position.or(result.replication_index.map(Position::from_index)),
        }),
        Some(proto::StreamResult::Error { error }) => Err(WriteError::Refused(error.message)),
        _ => Err(WriteError::Unknown(
            "the primary's answer has no result for the statement".into(),
        )),
    }
}

/// `{generation}/{frame}`.
fn parse_position(v: &str) -> Option<Position> {
    let (g, f) = v.split_once('/')?;
    Some(Position {
        generation: g.trim().parse().ok()?,
        frame: f.trim().parse().ok()?,
    })
}

/// Sends one statement to the primary at `url` (a database URL).
pub async fn execute(
    client: &hyper014::Client<delay::Connector>,
    url: &str,
    token: &str,
    sql: &str,
    args: Vec<libsql::Value>,
    max_answer_bytes: usize,
) -> Result<Written, WriteError> {
    let url = format!("{}/v2/pipeline", url.replacen("libsql://", "https://", 1));
    let req = hyper014::Request::post(url)
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .body(hyper014::Body::from(pipeline(sql, args)))
        .map_err(|e| WriteError::NotSent(e.to_string()))?;
    let resp = client.request(req).await.map_err(|e| {
        if e.is_connect() {
            WriteError::NotSent(e.to_string())
        } else {
            WriteError::Unknown(format!("the primary's answer was lost: {e}"))
        }
    })?;
    let status = resp.status();
    let position = resp
        .headers()
        .get(POSITION_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_position);
    let mut body = resp.into_body();
    let mut bytes = Vec::new();
    {
        use hyper014::body::HttpBody;
        while let Some(chunk) = body.data().await {
            let chunk = chunk
                .map_err(|e| WriteError::Unknown(format!("the primary's answer broke off: {e}")))?;
            if bytes.len() + chunk.len() > max_answer_bytes {
                return Err(WriteError::Unknown(format!(
                    "the primary's answer is larger than {max_answer_bytes} bytes"
                )));
            }
            bytes.extend_from_slice(&chunk);
        }
    }
    if !status.is_success() {
        let text = String::from_utf8_lossy(&bytes);
        let detail = format!("the primary answered {status}: {}", text.trim());
        // Refused before anything ran: the token, the grant, the body.
        return Err(if status.is_client_error() {
            WriteError::Refused(detail)
        } else {
            WriteError::Unknown(detail)
        });
    }
    read_answer(&bytes, position)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pipeline_executes_and_closes() {
        let body: serde_json::Value = serde_json::from_slice(&pipeline(
            "INSERT INTO t VALUES (?1, ?2, ?3)",
            vec![
                libsql::Value::Integer(7),
                libsql::Value::Text("a".into()),
                libsql::Value::Blob(vec![1, 2]),
            ],
        ))
        .unwrap();
        assert_eq!(body["baton"], serde_json::Value::Null);
        assert_eq!(body["requests"][0]["type"], "execute");
        assert_eq!(body["requests"][0]["stmt"]["args"][0]["value"], "7");
        assert_eq!(body["requests"][0]["stmt"]["args"][2]["base64"], "AQI");
        assert_eq!(body["requests"][1]["type"], "close");
    }

    #[test]
    fn reads_rows_errors_and_the_position() {
        let ok = br#"{"baton":null,"base_url":null,"results":[
            {"type":"ok","response":{"type":"execute","result":{
              "cols":[{"name":"id","decltype":null}],
              "rows":[[{"type":"integer","value":"42"}]],
              "affected_row_count":1,"last_insert_rowid":"42"}}},
            {"type":"ok","response":{"type":"close"}}]}"#;
        let w = read_answer(ok, parse_position("3/118")).unwrap();
        assert_eq!(w.columns, ["id"]);
        assert_eq!(w.rows, vec![vec![libsql::Value::Integer(42)]]);
        assert_eq!((w.affected, w.last_insert_rowid), (1, 42));
        assert_eq!(
            w.position,
            Some(Position {
                generation: 3,
                frame: 118
            })
        );
        let err = br#"{"baton":null,"base_url":null,"results":[
            {"type":"error","error":{"message":"UNIQUE constraint failed: t.id","code":"SQLITE_CONSTRAINT"}},
            {"type":"ok","response":{"type":"close"}}]}"#;
        assert!(
            matches!(read_answer(err, None), Err(WriteError::Refused(m)) if m.contains("UNIQUE"))
        );
        assert!(matches!(
            read_answer(b"<html>", None),
            Err(WriteError::Unknown(_))
        ));
        assert_eq!(parse_position("x/1"), None);
        // sqld puts its log's position in the statement's result.
        let sqld = br#"{"baton":null,"base_url":null,"results":[
            {"type":"ok","response":{"type":"execute","result":{
              "cols":[],"rows":[],"affected_row_count":1,"last_insert_rowid":"7",
              "replication_index":"2","rows_read":0,"rows_written":1}}},
            {"type":"ok","response":{"type":"close"}}]}"#;
        assert_eq!(
            read_answer(sqld, None).unwrap().position,
            Some(Position::from_index(2))
        );
        assert_eq!(
            read_answer(sqld, parse_position("3/9")).unwrap().position,
            parse_position("3/9")
        );
    }
}
