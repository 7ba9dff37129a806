//! The catalog API as a native Rust server (hyper + libsql), running the
//! same `catalog-core` plan/render and the same SQL as the wasm component.
//! `cargo xtask bench` races it against the edge host so the cost of the
//! sandbox is visible.

use anyhow::Result;
use bytes::Bytes;
use catalog_core::{CursorSigner, Request as CatalogRequest, SqlValue};
use clap::Parser;
use http_body_util::Full;
use hyper::{Request, Response, body::Incoming};
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

#[derive(Debug, Parser)]
struct Args {
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: std::net::SocketAddr,
    #[arg(long)]
    catalog: PathBuf,
    #[arg(
        long,
        env = "SPIN_VARIABLE_CURSOR_SECRET",
        default_value = "native-benchmark-cursor-secret"
    )]
    cursor_secret: String,
}

struct Native {
    db: libsql::Database,
    idle: Mutex<Vec<libsql::Connection>>,
    signer: CursorSigner,
}

impl Native {
    async fn query(&self, sql: &str, params: &[SqlValue]) -> Result<Vec<Vec<SqlValue>>, String> {
        let pooled = self.idle.lock().expect("pool").pop();
        let conn = match pooled {
            Some(c) => c,
            None => self.db.connect().map_err(|e| e.to_string())?,
        };
        let params: Vec<libsql::Value> = params
            .iter()
            .map(|p| match p {
                SqlValue::Integer(i) => libsql::Value::Integer(*i),
                SqlValue::Real(f) => libsql::Value::Real(*f),
                SqlValue::Text(s) => libsql::Value::Text(s.clone()),
                SqlValue::Blob(b) => libsql::Value::Blob(b.clone()),
                SqlValue::Null => libsql::Value::Null,
            })
            .collect();
        let mut rows = conn.query(sql, params).await.map_err(|e| e.to_string())?;
        let n = rows.column_count();
        let mut out = Vec::new();
        while let Some(row) = rows.next().await.map_err(|e| e.to_string())? {
            let mut values = Vec::with_capacity(n as usize);
            for i in 0..n {
                values.push(match row.get_value(i).map_err(|e| e.to_string())? {
                    libsql::Value::Integer(i) => SqlValue::Integer(i),
                    libsql::Value::Real(f) => SqlValue::Real(f),
                    libsql::Value::Text(s) => SqlValue::Text(s),
                    libsql::Value::Blob(b) => SqlValue::Blob(b),
                    libsql::Value::Null => SqlValue::Null,
                });
            }
            out.push(values);
        }
        drop(rows);
        let mut idle = self.idle.lock().expect("pool");
        if idle.len() < 32 {
            idle.push(conn);
        }
        Ok(out)
    }

    async fn handle(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let inm = req
            .headers()
            .get(http::header::IF_NONE_MATCH)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let creq = CatalogRequest {
            method: req.method().as_str(),
            path: req.uri().path(),
            query: req.uri().query().unwrap_or(""),
            if_none_match: inm.as_deref(),
        };
        let resp = match catalog_core::plan(&creq, &self.signer) {
            Ok(planned) => {
                let rows = self.query(&planned.sql, &planned.params).await;
                catalog_core::render(&planned, rows, &creq, &self.signer)
            }
            Err(r) => r,
        };
        let mut builder = Response::builder().status(resp.status);
        for (k, v) in &resp.headers {
            builder = builder.header(k, v);
        }
        builder
            .body(Full::new(Bytes::from(resp.body)))
            .expect("valid response")
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let db = libsql::Builder::new_local(&args.catalog).build().await?;
    let native = Arc::new(Native {
        db,
        idle: Mutex::new(Vec::new()),
        signer: CursorSigner::new(args.cursor_secret.as_bytes()),
    });
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    println!(
        "native-catalog listening on http://{}",
        listener.local_addr()?
    );
    std::io::stdout().flush()?;
    loop {
        let (stream, _) = tokio::select! {
            a = listener.accept() => a?,
            _ = tokio::signal::ctrl_c() => return Ok(()),
        };
        let _ = stream.set_nodelay(true);
        let native = native.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| {
                let native = native.clone();
                async move { Ok::<_, std::convert::Infallible>(native.handle(req).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                .await;
        });
    }
}
