//! `edgeshop-objects`: the embedded default's S3-compatible object store.
//! `s3s-fs` keeps the objects as files under `--root`; this binary adds
//! what a bucket's configuration gives in production: one bucket, the
//! keys and their roles (`--keys`, see [`edgeshop_objects::allows`]),
//! public reads of `media/`, and CORS for the storefront's origins.

use anyhow::{Context, Result};
use clap::Parser;
use edgeshop_objects::{Cors, Keys, Role, allows};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use s3s::access::{S3Access, S3AccessContext};
use s3s::auth::SimpleAuth;
use s3s::path::S3Path;
use s3s::service::{S3Service, S3ServiceBuilder};
use s3s::{Body, S3Result, s3_error};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Longest a client may take to send a request's header section.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Parser)]
#[command(name = "edgeshop-objects")]
struct Args {
    #[arg(long, default_value = "127.0.0.1:9000")]
    listen: std::net::SocketAddr,
    /// Where the objects are kept, one directory per bucket.
    #[arg(long)]
    root: PathBuf,
    /// The one bucket served; created if missing.
    #[arg(long, default_value = "edgeshop")]
    bucket: String,
    /// The keys file: `[[key]]` tables of `access_key`, `secret_key` and
    /// `role` (`uploader` or `processor`).
    #[arg(long)]
    keys: PathBuf,
    /// An origin (`https://shop.example`) whose pages may `PUT` to signed
    /// URLs and read media; repeat for several. `http://127.0.0.1:*` is
    /// any port of that host (a local front door's), `*` any origin.
    #[arg(long = "cors-origin", value_name = "ORIGIN")]
    cors_origins: Vec<String>,
    /// Connections held at once.
    #[arg(long, default_value_t = 1024)]
    max_connections: usize,
}

/// The access policy: a signed request acts as its key's role, an
/// unsigned one as anyone; only objects of the one bucket are reachable.
struct Policy {
    keys: Keys,
    bucket: String,
}

#[async_trait::async_trait]
impl S3Access for Policy {
    async fn check(&self, cx: &mut S3AccessContext<'_>) -> S3Result<()> {
        let role: Option<Role> = match cx.credentials() {
            None => None,
            Some(c) => match self.keys.role(&c.access_key) {
                Some(role) => Some(role),
                None => return Err(s3_error!(AccessDenied, "unknown access key")),
            },
        };
        let allowed = match cx.s3_path() {
            S3Path::Object { bucket, key } => {
                **bucket == *self.bucket && allows(role, cx.s3_op().name(), key)
            }
            _ => false,
        };
        if allowed {
            Ok(())
        } else {
            Err(s3_error!(AccessDenied, "this key may not do that here"))
        }
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let _telemetry = edgeshop_telemetry::init("edgeshop-objects", "info");
    let args = Args::parse();
    let text = std::fs::read_to_string(&args.keys)
        .with_context(|| format!("reading {}", args.keys.display()))?;
    let keys = Keys::parse(&text).with_context(|| format!("in {}", args.keys.display()))?;
    anyhow::ensure!(
        !args.bucket.is_empty()
            && args
                .bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
        "--bucket is lowercase letters, digits and '-'"
    );
    std::fs::create_dir_all(args.root.join(&args.bucket))
        .with_context(|| format!("creating the bucket under {}", args.root.display()))?;
    let fs = s3s_fs::FileSystem::new(&args.root)
        .map_err(|e| anyhow::anyhow!("opening {}: {e:?}", args.root.display()))?;
    let mut builder = S3ServiceBuilder::new(fs);
    let mut auth = SimpleAuth::new();
    for (access, (secret, _)) in &keys.keys {
        auth.register(access.clone(), secret.as_str().into());
    }
    builder.set_auth(auth);
    builder.set_access(Policy {
        keys,
        bucket: args.bucket.clone(),
    });
    let service = builder.build();
    let cors = Arc::new(Cors::new(args.cors_origins.clone()));

    let listener = admission::bind(args.listen)?;
    println!(
        "edgeshop-objects (bucket {}) listening on http://{}",
        args.bucket,
        listener.local_addr()?
    );
    std::io::stdout().flush()?;
    let connections = admission::Admission::serving(admission::Limits {
        total: args.max_connections.max(1),
        per_client: args.max_connections.max(1),
        trusted: Vec::new(),
    });
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        let (stream, _peer, permit) = tokio::select! {
            a = connections.accept(&listener) => a,
            _ = tokio::signal::ctrl_c() => break,
            _ = term.recv() => break,
        };
        let service = service.clone();
        let cors = cors.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| {
                let service = service.clone();
                let cors = cors.clone();
                async move { Ok::<_, std::convert::Infallible>(answer(&service, &cors, req).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                .await;
            drop(permit);
        });
    }
    tracing::info!("object store stopped");
    Ok(())
}

/// Answers CORS preflights itself and passes everything else to s3s,
/// adding CORS headers for an allowed origin.
async fn answer(service: &S3Service, cors: &Cors, req: Request<Incoming>) -> Response<Body> {
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    let origin = header("origin").map(str::to_string);
    if req.method() == Method::OPTIONS
        && let (Some(origin), Some(method)) = (&origin, header("access-control-request-method"))
    {
        let (status, headers) =
            match cors.preflight(origin, method, header("access-control-request-headers")) {
                Some(h) => (StatusCode::OK, h),
                None => (StatusCode::FORBIDDEN, Vec::new()),
            };
        return with_headers(Response::builder().status(status), headers);
    }
    let mut resp = match service.call(req.map(Body::from)).await {
        Ok(resp) => resp,
        Err(e) => {
            tracing::error!(error = ?e, "object store request failed");
            return with_headers(
                Response::builder().status(StatusCode::INTERNAL_SERVER_ERROR),
                Vec::new(),
            );
        }
    };
    for (name, value) in cors.actual(origin.as_deref()) {
        if let Ok(v) = HeaderValue::from_str(&value) {
            resp.headers_mut().append(name, v);
        }
    }
    resp
}

fn with_headers(
    builder: http::response::Builder,
    headers: Vec<(&'static str, String)>,
) -> Response<Body> {
    let mut resp = builder.body(Body::empty()).unwrap_or_default();
    for (name, value) in headers {
        if let Ok(v) = HeaderValue::from_str(&value) {
            resp.headers_mut().append(name, v);
        }
    }
    resp
}
