//! Hrana over HTTP (v2 and v3, JSON): the libSQL remote protocol the
//! `libsql` crate, `@libsql/client` and Spin speak, served for each named
//! database at `/db/{name}`.
//!
//! A pipeline without a baton opens a stream (one libSQL connection); the
//! stream lives on while the client keeps presenting the baton it was last
//! given, which is how interactive transactions span requests. Streams idle
//! for [`STREAM_IDLE`] are dropped, rolling back anything uncommitted.

mod baton;
mod exec;

use baton::{Baton, BatonKey};
use bytes::Bytes;
use db_permissions::Grant;
use libsql_hrana::proto::{
    BatchStreamResp, CloseSqlStreamResp, CloseStreamResp, CursorEntry, CursorReqBody,
    CursorRespBody, DescribeStreamResp, ExecuteStreamResp, GetAutocommitStreamResp,
    PipelineReqBody, PipelineRespBody, SequenceStreamResp, StepBeginEntry, StepEndEntry,
    StepErrorEntry, StoreSqlStreamResp, StreamRequest, StreamResponse, StreamResult,
};
use problem::Problem;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A stream nobody used for this long is closed.
pub const STREAM_IDLE: Duration = Duration::from_secs(10);
/// Open streams at once, over all databases.
pub const MAX_STREAMS: usize = 1000;
/// Stored SQL texts per stream.
const MAX_STORED_SQL: usize = 256;
/// Largest request body.
pub const MAX_BODY_BYTES: usize = 10 << 20;

/// A stream looked up (or opened) for a request: its id, the stream, and
/// the sequence number of the baton presented (none for a new stream).
type OpenedStream = (u64, Arc<tokio::sync::Mutex<Stream>>, Option<u64>);

struct Stream {
    db: String,
    /// The token that opened it: only that token may continue it.
    principal: &'static str,
    conn: libsql::Connection,
    seq: u64,
    stored: HashMap<i32, String>,
    last_used: Instant,
}

pub struct HranaServer {
    dbs: BTreeMap<String, libsql::Database>,
    /// Databases whose WAL the replication shipper owns: their
    /// connections must never checkpoint.
    replicated: std::collections::BTreeSet<String>,
    token: String,
    /// The PoPs' token, with a narrower grant.
    edge_token: Option<String>,
    /// What each token may do (`cdn-config/db-permissions.toml`).
    origin_grant: Arc<Grant>,
    edge_grant: Arc<Grant>,
    key: BatonKey,
    streams: Mutex<HashMap<u64, Arc<tokio::sync::Mutex<Stream>>>>,
    next_stream: AtomicU64,
}

/// What the HTTP layer sends back.
pub struct Reply {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

impl Reply {
    fn json(value: &impl serde::Serialize) -> Reply {
        Reply {
            status: 200,
            content_type: "application/json",
            body: serde_json::to_vec(value).expect("hrana JSON serialises"),
        }
    }

    fn problem(p: Problem) -> Reply {
        Reply {
            status: p.status,
            content_type: Problem::CONTENT_TYPE,
            body: p.to_json(),
        }
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Constant-time comparison, so the token cannot be guessed byte by byte.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl HranaServer {
    pub fn new(
        dbs: BTreeMap<String, libsql::Database>,
        replicated: std::collections::BTreeSet<String>,
        tokens: Tokens,
        baton_secret: &[u8],
    ) -> Arc<HranaServer> {
        let server = Arc::new(HranaServer {
            dbs,
            replicated,
            token: tokens.origin,
            edge_token: tokens.edge,
            origin_grant: Arc::new(tokens.origin_grant),
            edge_grant: Arc::new(tokens.edge_grant),
            key: BatonKey::new(baton_secret),
            streams: Mutex::new(HashMap::new()),
            next_stream: AtomicU64::new(1),
        });
        // Sweep idle streams; the weak reference lets the server go away.
        let weak = Arc::downgrade(&server);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                let Some(server) = weak.upgrade() else { return };
                server.sweep();
            }
        });
        server
    }

    fn sweep(&self) {
        let mut streams = self.streams.lock().expect("streams lock");
        streams.retain(|_, s| match s.try_lock() {
            Ok(s) => s.last_used.elapsed() < STREAM_IDLE,
            Err(_) => true, // in use right now
        });
    }

    pub fn open_streams(&self) -> usize {
        self.streams.lock().expect("streams lock").len()
    }

    /// Handles a request under `/db/` from a caller [`HranaServer::admit`]
    /// let in. `path` is the full path.
    pub async fn handle(
        &self,
        method: &http::Method,
        path: &str,
        who: &Principal,
        body: Bytes,
    ) -> Reply {
        let Some(rest) = path.strip_prefix("/db/") else {
            return Reply::problem(Problem::not_found(format!("no database API at {path}")));
        };
        let (db, endpoint) = rest.split_once('/').unwrap_or((rest, ""));
        match (method.as_str(), endpoint) {
            ("GET", "v2" | "v3" | "v2/" | "v3/") => Reply {
                status: 200,
                content_type: "text/plain",
                body: b"Hrana over HTTP\n".to_vec(),
            },
            ("POST", "v2/pipeline" | "v3/pipeline") => {
                match serde_json::from_slice::<PipelineReqBody>(&body) {
                    Ok(req) => crate::sqlite::off_runtime(self.pipeline(db, who, req)).await,
                    Err(e) => Reply::problem(Problem::bad_request(format!(
                        "the pipeline request is not valid Hrana JSON: {e}"
                    ))),
                }
            }
            ("POST", "v3/cursor") => match serde_json::from_slice::<CursorReqBody>(&body) {
                Ok(req) => crate::sqlite::off_runtime(self.cursor(db, who, req)).await,
                Err(e) => Reply::problem(Problem::bad_request(format!(
                    "the cursor request is not valid Hrana JSON: {e}"
                ))),
            },
            (_, "v2/pipeline" | "v3/pipeline" | "v3/cursor") => {
                Reply::problem(Problem::method_not_allowed(method.as_str(), &["POST"]))
            }
            _ => Reply::problem(Problem::not_found(format!("no Hrana endpoint at {path}"))),
        }
    }

    /// Checks the bearer token, that its grant reaches `db`, and that `db`
    /// exists; the caller's principal, whose grant then rules every
    /// statement it sends.
    pub fn admit(&self, db: &str, authorization: Option<&str>) -> Result<Principal, Problem> {
        let presented = authorization.and_then(|h| h.strip_prefix("Bearer "));
        let is = |token: &str| presented.is_some_and(|t| same(t.as_bytes(), token.as_bytes()));
        let who = if is(&self.token) {
            Principal {
                name: "origin",
                grant: self.origin_grant.clone(),
            }
        } else if self.edge_token.as_deref().is_some_and(is) {
            Principal {
                name: "edge",
                grant: self.edge_grant.clone(),
            }
        } else {
            return Err(Problem::new(
                401,
                "unauthorized",
                "Unauthorized",
                "send the database token as `Authorization: Bearer <token>`",
            ));
        };
        if !who.grant.reaches(db) {
            return Err(Problem::new(
                403,
                "forbidden",
                "Forbidden",
                format!(
                    "the {} token does not reach database {db:?} (see cdn-config/db-permissions.toml)",
                    who.name
                ),
            ));
        }
        if !self.dbs.contains_key(db) {
            return Err(Problem::not_found(format!(
                "there is no database named {db:?}"
            )));
        }
        Ok(who)
    }

    /// The stream a baton names, or a new one.
    fn stream(
        &self,
        db: &str,
        who: &Principal,
        baton: Option<&str>,
    ) -> Result<OpenedStream, Problem> {
        match baton {
            None => {
                let mut streams = self.streams.lock().expect("streams lock");
                if streams.len() >= MAX_STREAMS {
                    return Err(Problem::unavailable("too many open streams; retry shortly"));
                }
                let database = &self.dbs[db];
                let conn = database.connect().map_err(|e| {
                    Problem::unavailable(format!("cannot open database {db:?}: {e}"))
                })?;
                let _ = conn.busy_timeout(Duration::from_secs(5));
                let id = self.next_stream.fetch_add(1, Ordering::Relaxed);
                let stream = Arc::new(tokio::sync::Mutex::new(Stream {
                    db: db.to_string(),
                    principal: who.name,
                    conn,
                    seq: 0,
                    stored: HashMap::new(),
                    last_used: Instant::now(),
                }));
                streams.insert(id, stream.clone());
                Ok((id, stream, None))
            }
            Some(text) => {
                let b = self.key.decode(text, now_ms()).map_err(|e| {
                    Problem::bad_request(format!("{e}; open a new stream without a baton"))
                })?;
                let stream = self
                    .streams
                    .lock()
                    .expect("streams lock")
                    .get(&b.stream_id)
                    .cloned()
                    .ok_or_else(|| {
                        Problem::bad_request("the stream has closed or expired; open a new one")
                    })?;
                Ok((b.stream_id, stream, Some(b.seq)))
            }
        }
    }

    fn next_baton(&self, id: u64, seq: u64) -> String {
        self.key.encode(Baton {
            stream_id: id,
            seq,
            expires_ms: now_ms() + STREAM_IDLE.as_millis() as u64,
        })
    }

    /// The stream a request continues (or a new one), locked for the
    /// request, after checking its baton is this database's latest.
    async fn enter(
        &self,
        db: &str,
        who: &Principal,
        baton: Option<&str>,
    ) -> Result<(u64, tokio::sync::OwnedMutexGuard<Stream>), Problem> {
        let (id, stream, presented) = self.stream(db, who, baton)?;
        let s = stream.lock_owned().await;
        check(&s, db, who, presented)?;
        if presented.is_none() {
            if self.replicated.contains(db) {
                replication::prepare_connection(&s.conn)
                    .await
                    .map_err(|e| {
                        Problem::unavailable(format!("cannot prepare database {db:?}: {e}"))
                    })?;
            }
            // From here on every statement is the caller's: its grant
            // decides each action SQLite prepares.
            if !who.grant.all {
                s.conn.authorizer(Some(authorizer(who, db))).map_err(|e| {
                    Problem::unavailable(format!("cannot guard database {db:?}: {e}"))
                })?;
            }
        }
        Ok((id, s))
    }

    async fn pipeline(&self, db: &str, who: &Principal, req: PipelineReqBody) -> Reply {
        let (id, mut s) = match self.enter(db, who, req.baton.as_deref()).await {
            Ok(entered) => entered,
            Err(p) => return Reply::problem(p),
        };
        let mut results = Vec::with_capacity(req.requests.len());
        let mut closed = false;
        for r in req.requests {
            if closed {
                results.push(StreamResult::Error {
                    error: exec::error(
                        "STREAM_CLOSED",
                        "the stream was closed earlier in this pipeline",
                    ),
                });
                continue;
            }
            let outcome = match r {
                StreamRequest::Close(_) => {
                    closed = true;
                    Ok(StreamResponse::Close(CloseStreamResp {}))
                }
                StreamRequest::Execute(e) => exec::execute(&s.conn, &e.stmt, &s.stored)
                    .await
                    .map(|result| StreamResponse::Execute(ExecuteStreamResp { result })),
                StreamRequest::Batch(b) => exec::batch(&s.conn, &b.batch, &s.stored)
                    .await
                    .map(|result| StreamResponse::Batch(BatchStreamResp { result })),
                StreamRequest::Sequence(q) => match exec::sql_text(&q.sql, q.sql_id, &s.stored) {
                    Ok(sql) => s
                        .conn
                        .execute_batch(sql)
                        .await
                        .map(|_| StreamResponse::Sequence(SequenceStreamResp {}))
                        .map_err(|e| exec::error("SQLITE_ERROR", e.to_string())),
                    Err(e) => Err(e),
                },
                StreamRequest::Describe(d) => match exec::sql_text(&d.sql, d.sql_id, &s.stored) {
                    Ok(sql) => exec::describe(&s.conn, sql)
                        .await
                        .map(|result| StreamResponse::Describe(DescribeStreamResp { result })),
                    Err(e) => Err(e),
                },
                StreamRequest::StoreSql(q) => {
                    if s.stored.contains_key(&q.sql_id) {
                        Err(exec::error(
                            "SQL_STORE_INVALID",
                            format!("sql id {} is already stored", q.sql_id),
                        ))
                    } else if s.stored.len() >= MAX_STORED_SQL {
                        Err(exec::error(
                            "SQL_STORE_FULL",
                            format!("a stream stores at most {MAX_STORED_SQL} SQL texts"),
                        ))
                    } else {
                        s.stored.insert(q.sql_id, q.sql);
                        Ok(StreamResponse::StoreSql(StoreSqlStreamResp {}))
                    }
                }
                StreamRequest::CloseSql(q) => {
                    s.stored.remove(&q.sql_id);
                    Ok(StreamResponse::CloseSql(CloseSqlStreamResp {}))
                }
                StreamRequest::GetAutocommit(_) => {
                    Ok(StreamResponse::GetAutocommit(GetAutocommitStreamResp {
                        is_autocommit: s.conn.is_autocommit(),
                    }))
                }
                StreamRequest::None => Err(exec::error("REQUEST_INVALID", "unknown request type")),
            };
            results.push(match outcome {
                Ok(response) => StreamResult::Ok { response },
                Err(error) => StreamResult::Error { error },
            });
        }
        let baton = self.finish(id, &mut s, closed);
        Reply::json(&PipelineRespBody {
            baton,
            base_url: None,
            results,
        })
    }

    /// Closes the stream, or advances it and hands out its next baton.
    fn finish(&self, id: u64, s: &mut Stream, closed: bool) -> Option<String> {
        if closed {
            self.streams.lock().expect("streams lock").remove(&id);
            None
        } else {
            s.seq += 1;
            s.last_used = Instant::now();
            Some(self.next_baton(id, s.seq))
        }
    }

    async fn cursor(&self, db: &str, who: &Principal, req: CursorReqBody) -> Reply {
        let (id, mut s) = match self.enter(db, who, req.baton.as_deref()).await {
            Ok(entered) => entered,
            Err(p) => return Reply::problem(p),
        };
        // Run the batch, then write it as newline-delimited entries.
        let result = exec::batch(&s.conn, &req.batch, &s.stored).await;
        let baton = self.finish(id, &mut s, false);
        let mut body = serde_json::to_vec(&CursorRespBody {
            baton,
            base_url: None,
        })
        .expect("json");
        body.push(b'\n');
        let mut entry = |e: CursorEntry| {
            body.extend(serde_json::to_vec(&e).expect("json"));
            body.push(b'\n');
        };
        match result {
            Err(error) => entry(CursorEntry::Error { error }),
            Ok(r) => {
                for (step, (ok, err)) in r.step_results.into_iter().zip(r.step_errors).enumerate() {
                    let step = step as u32;
                    match (ok, err) {
                        (Some(res), _) => {
                            entry(CursorEntry::StepBegin(StepBeginEntry {
                                step,
                                cols: res.cols,
                            }));
                            for row in res.rows {
                                entry(CursorEntry::Row { row });
                            }
                            entry(CursorEntry::StepEnd(StepEndEntry {
                                affected_row_count: res.affected_row_count,
                                last_insert_rowid: res.last_insert_rowid,
                            }));
                        }
                        (None, Some(error)) => {
                            entry(CursorEntry::StepError(StepErrorEntry { step, error }))
                        }
                        (None, None) => {}
                    }
                }
            }
        }
        Reply {
            status: 200,
            content_type: "text/plain",
            body,
        }
    }
}

/// A baton must be for this database and token, and be the latest one
/// handed out.
fn check(s: &Stream, db: &str, who: &Principal, presented: Option<u64>) -> Result<(), Problem> {
    if s.db != db {
        return Err(Problem::bad_request(
            "the baton belongs to another database",
        ));
    }
    if s.principal != who.name {
        return Err(Problem::new(
            403,
            "forbidden",
            "Forbidden",
            "the baton belongs to a stream another token opened",
        ));
    }
    match presented {
        Some(seq) if seq != s.seq => Err(Problem::bad_request(
            "the baton was already used; continue with the baton from the latest response",
        )),
        _ => Ok(()),
    }
}

/// The tokens the server accepts and what each may do.
pub struct Tokens {
    /// The operator's token.
    pub origin: String,
    pub origin_grant: Grant,
    /// The PoPs' token, if PoPs are served.
    pub edge: Option<String>,
    pub edge_grant: Grant,
}

/// A caller let in by [`HranaServer::admit`]: its token's name and grant.
#[derive(Clone)]
pub struct Principal {
    name: &'static str,
    grant: Arc<Grant>,
}

/// SQLite's authorizer for a stream of `who` on `db` (see
/// [`db_permissions::authorizer`]).
fn authorizer(who: &Principal, db: &str) -> libsql::AuthHook {
    db_permissions::authorizer(who.grant.clone(), db, who.name)
}
