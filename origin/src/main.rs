//! The edgeshop origin: the libSQL primary for the `catalog` and `orders`
//! databases, served over Hrana at `/db/{name}`. Replication to PoPs and
//! the order saga grow here in later work.

mod hrana;

use anyhow::{Context, Result};
use bytes::Bytes;
use clap::Parser;
use http_body_util::Full;
use hyper::{Request, Response, body::Incoming};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Debug, Parser)]
#[command(name = "edgeshop-origin")]
struct Args {
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: std::net::SocketAddr,
    /// The catalog database (primary copy).
    #[arg(long)]
    catalog: PathBuf,
    /// The orders database (origin only); created if missing.
    #[arg(long)]
    orders: Option<PathBuf>,
    /// Bearer token Hrana clients must send.
    #[arg(long, env = "EDGESHOP_ORIGIN_TOKEN", hide_env_values = true)]
    token: String,
}

struct Origin {
    catalog: libsql_handle::Catalog,
    hrana: Arc<hrana::HranaServer>,
}

mod libsql_handle {
    /// The primary catalog database.
    pub struct Catalog {
        pub conn: libsql::Connection,
        pub _db: libsql::Database,
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    edgeshop_telemetry::init("info");
    let args = Args::parse();
    let (db, conn) = catalog_db::open_local(&args.catalog)
        .await
        .with_context(|| format!("opening {}", args.catalog.display()))?;
    let applied = catalog_db::migrate(&conn).await?;
    if !applied.is_empty() {
        tracing::info!(?applied, "applied catalog migrations");
    }
    let mut dbs = std::collections::BTreeMap::new();
    dbs.insert(
        "catalog".to_string(),
        libsql::Builder::new_local(&args.catalog).build().await?,
    );
    if let Some(orders) = &args.orders {
        dbs.insert(
            "orders".to_string(),
            libsql::Builder::new_local(orders).build().await?,
        );
    }
    anyhow::ensure!(
        args.token.len() >= 16,
        "the origin token must be at least 16 characters"
    );
    // Batons name in-memory streams, so a per-process key is enough.
    let mut baton_secret = [0u8; 32];
    {
        use std::io::Read;
        std::fs::File::open("/dev/urandom")?.read_exact(&mut baton_secret)?;
    }
    let hrana = hrana::HranaServer::new(dbs, args.token.clone(), &baton_secret);
    let origin = Arc::new(Origin {
        catalog: libsql_handle::Catalog { conn, _db: db },
        hrana,
    });
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    println!(
        "edgeshop-origin listening on http://{}",
        listener.local_addr()?
    );
    std::io::stdout().flush()?;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        let (stream, _) = tokio::select! {
            a = listener.accept() => a?,
            _ = tokio::signal::ctrl_c() => break,
            _ = term.recv() => break,
        };
        let _ = stream.set_nodelay(true);
        let origin = origin.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| {
                let origin = origin.clone();
                async move { Ok::<_, std::convert::Infallible>(origin.handle(req).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                .await;
        });
    }
    tracing::info!("origin stopped");
    Ok(())
}

impl Origin {
    async fn handle(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        if req.uri().path().starts_with("/db/") {
            let method = req.method().clone();
            let path = req.uri().path().to_string();
            let auth = req
                .headers()
                .get(http::header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            use http_body_util::BodyExt;
            let body = match http_body_util::Limited::new(req.into_body(), hrana::MAX_BODY_BYTES)
                .collect()
                .await
            {
                Ok(b) => b.to_bytes(),
                Err(_) => {
                    let p = problem::Problem::payload_too_large(hrana::MAX_BODY_BYTES as u64);
                    return reply(p.status, problem::Problem::CONTENT_TYPE, p.to_json());
                }
            };
            let r = self
                .hrana
                .handle(&method, &path, auth.as_deref(), body)
                .await;
            let mut resp = reply(r.status, r.content_type, r.body);
            if r.status == 401 {
                resp.headers_mut().insert(
                    http::header::WWW_AUTHENTICATE,
                    http::HeaderValue::from_static("Bearer"),
                );
            }
            return resp;
        }
        match req.uri().path() {
            "/health" | "/.well-known/edgeshop/health" => {
                let (status, body) = match catalog_db::product_count(&self.catalog.conn).await {
                    Ok(n) => (
                        200,
                        serde_json::json!({
                            "status": "ok",
                            "catalog_products": n,
                            "hrana_streams": self.hrana.open_streams(),
                        }),
                    ),
                    Err(e) => (
                        503,
                        serde_json::json!({"status": "degraded", "error": e.to_string()}),
                    ),
                };
                json(status, &body)
            }
            path => {
                let body = serde_json::json!({
                    "type": "/problems/not-found",
                    "title": "Not found",
                    "status": 404,
                    "detail": format!("the origin has no resource at {path}"),
                });
                let mut r = json(404, &body);
                r.headers_mut().insert(
                    http::header::CONTENT_TYPE,
                    http::HeaderValue::from_static("application/problem+json"),
                );
                r
            }
        }
    }
}

fn reply(status: u16, content_type: &'static str, body: Vec<u8>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() =
        http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(content_type),
    );
    r
}

fn json(status: u16, body: &serde_json::Value) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(
        serde_json::to_vec(body).expect("json"),
    )));
    *r.status_mut() =
        http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    r
}
