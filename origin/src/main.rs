//! The edgeshop origin: the libSQL primary for the `catalog` and `orders`
//! databases. Both are served over Hrana at `/db/{name}`; `catalog` is
//! also replicated to the PoPs with libSQL's sync protocol at
//! `/db/catalog/{info,export,sync}`. Checkout (the order API, the saga
//! orchestrator, payment webhooks and the outbox) runs here too
//! ([`checkout`]).

mod checkout;
mod hrana;
mod metrics;
mod sqlite;
mod vendor;

use anyhow::{Context, Result};
use bytes::Bytes;
use clap::Parser;
use http_body_util::{BodyExt, Full, combinators::UnsyncBoxBody};
use hyper::{Request, Response, body::Incoming};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

/// The reviewed permission file, built in so an origin started without
/// `--db-permissions` enforces it.
const SHIPPED_PERMISSIONS: &str = include_str!("../../cdn-config/db-permissions.toml");

/// Longest a client may take to send a request's header section, or to
/// start its next request on a kept-alive connection. Longer than the
/// `libsql` client's pool keeps an idle connection (90 s), so a PoP never
/// writes on a connection the origin is closing.
const HEADER_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

#[derive(Debug, Parser)]
#[command(name = "edgeshop-origin")]
struct Args {
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: std::net::SocketAddr,
    /// The catalog's primary: a database file this origin serves and
    /// replicates, or the URL of a libSQL server that does (sqld, Turso:
    /// `http://host:8080`, `libsql://name.turso.io`).
    #[arg(long, value_parser = parse_place)]
    catalog: Place,
    /// The bearer token (a JWT) for a catalog primary given as a URL.
    #[arg(long, env = "EDGESHOP_CATALOG_TOKEN", hide_env_values = true)]
    catalog_token: Option<String>,
    /// The orders database (origin only); created if missing.
    #[arg(long)]
    orders: Option<PathBuf>,
    /// The identity database (accounts and sessions), replicated to PoPs
    /// like the catalog; created and migrated if missing. A file or a
    /// URL, as for --catalog.
    #[arg(long, value_parser = parse_place)]
    identity: Option<Place>,
    /// The bearer token for an identity primary given as a URL.
    #[arg(long, env = "EDGESHOP_IDENTITY_TOKEN", hide_env_values = true)]
    identity_token: Option<String>,
    /// Bearer token Hrana and replication clients must send.
    #[arg(long, env = "EDGESHOP_ORIGIN_TOKEN", hide_env_values = true)]
    token: String,
    /// The token PoPs use: it runs only what its grant in the permission
    /// file allows (never `orders`, prices, stock or roles).
    #[arg(long, env = "EDGESHOP_EDGE_TOKEN", hide_env_values = true)]
    edge_token: Option<String>,
    /// What each token may do to each database (grants for `origin` and
    /// `edge`); the shipped `cdn-config/db-permissions.toml` when unset.
    #[arg(long)]
    db_permissions: Option<PathBuf>,
    /// Where replication histories live, one subdirectory per database
    /// (default: next to each database file, `<file>.replication`).
    #[arg(long)]
    replication_dir: Option<PathBuf>,
    /// The variables file PoPs read (`token_jwks`, ...): checkout verifies
    /// shoppers' tokens with the same keys.
    #[arg(long)]
    variables_file: Option<PathBuf>,
    /// The payment provider's API (Stripe-shaped): `https://api.stripe.com`,
    /// the simulator (`edgeshop-paysim`), localstripe, or an egress proxy.
    /// Checkout is off without it (and without --orders).
    #[arg(long)]
    payments_url: Option<String>,
    /// Certificates (PEM) trusted for the provider's HTTPS besides the web
    /// PKI's roots: a private CA, or an egress proxy's.
    #[arg(long)]
    payments_ca: Option<PathBuf>,
    /// The provider's secret key.
    #[arg(
        long,
        env = "EDGESHOP_PAYMENTS_KEY",
        hide_env_values = true,
        default_value = "sk_test_edgeshop"
    )]
    payments_key: String,
    /// Verifies payment webhooks (`whsec_...`).
    #[arg(
        long,
        env = "EDGESHOP_WEBHOOK_SECRET",
        hide_env_values = true,
        default_value = ""
    )]
    webhook_secret: String,
    /// Longest one payment call may take.
    #[arg(long, default_value_t = 5_000)]
    payments_timeout_ms: u64,
    /// How long a checkout request waits for its saga before answering 202.
    #[arg(long, default_value_t = 8_000)]
    checkout_budget_ms: u64,
    /// How long an order stays leased to the origin driving it after its
    /// last step: the most another origin waits to take over the sagas of
    /// one that died. Default: one and a half saga step timeouts (a step
    /// is bounded by twice --payments-timeout-ms).
    #[arg(long)]
    saga_lease_ms: Option<u64>,
    /// This origin's name on the orders it drives; it must differ between
    /// origins running at once. Default: the host's name and the --listen
    /// port, so an origin restarted at its address resumes its own sagas
    /// at once (another's wait for their leases to run out); with port 0,
    /// a name of this process alone.
    #[arg(long)]
    saga_owner: Option<String>,
    /// Run as a checkout peer of the origin that is the primary of these
    /// same database files (on this machine): serve the order API and
    /// payment webhooks and drive sagas beside it, taking over the sagas
    /// of an origin that died once their leases run out. A peer serves
    /// no Hrana, replication or vendor API and applies no catalog or
    /// identity migrations; its catalog writes reach the replicas when
    /// the primary ships them.
    #[arg(long, requires_all = ["orders", "payments_url"])]
    checkout_peer: bool,
    /// Frames after which a replication generation rolls over.
    #[arg(long, default_value_t = replication::Options::default().roll_frames)]
    roll_frames: u32,
    /// Generations of frames kept for replicas that fall behind.
    #[arg(long, default_value_t = replication::Options::default().retain)]
    retain_generations: u32,
    /// WAL frames after which the primary is checkpointed.
    #[arg(long, default_value_t = replication::Options::default().checkpoint_frames)]
    checkpoint_frames: u32,
    /// Connections held at once; a connection past it is answered 503 and
    /// closed (lowered to fit the open-files limit).
    #[arg(long, default_value_t = 4096)]
    max_connections: usize,
    /// Connections held at once from one client address (an IPv6 client
    /// is its /64). A PoP holds a few for replication and Hrana, and one
    /// per checkout in flight.
    #[arg(long, default_value_t = 512)]
    max_connections_per_client: usize,
    /// Push streams held at once (each a held connection and an idle
    /// task; a replica holds one per database).
    #[arg(long, default_value_t = 4096)]
    max_push_streams: usize,
    /// Push streams held at once from one client address: a PoP needs
    /// one per replicated database, a few more while one reconnects.
    #[arg(long, default_value_t = 8)]
    max_push_streams_per_client: usize,
    /// Longest one push stream is held, in seconds; the replica then
    /// opens the next (so none is held forever by a peer that vanished).
    #[arg(long, default_value_t = 300)]
    push_lifetime_secs: u64,
    /// Longest a push stream waits for its replica to read, in seconds,
    /// before it is dropped (the replica then catches up by pulling).
    #[arg(long, default_value_t = 10)]
    push_send_timeout_secs: u64,
    /// A peer whose connections carry many clients (a PoP, an edge
    /// gateway), so only the total bounds it. Repeat for several.
    #[arg(long = "trusted-proxy", value_name = "IP")]
    trusted_proxies: Vec<std::net::IpAddr>,
    /// Serve HTTPS with this PEM certificate chain (with --tls-key):
    /// replication and Hrana cross the internet in production.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// The S3-compatible object store vendors upload to, as their clients
    /// reach it (`https://s3.eu-west-1.amazonaws.com`, an R2 or MinIO
    /// endpoint, `edgeshop-objects`). Uploads are off without it.
    #[arg(long, value_name = "URL", requires = "store_uploader_key")]
    store_endpoint: Option<String>,
    #[arg(long, default_value = "edgeshop")]
    store_bucket: String,
    #[arg(long, default_value = "us-east-1")]
    store_region: String,
    /// The access key that signs upload URLs; it should reach nothing but
    /// `PutObject` under `uploads/`.
    #[arg(long, env = "EDGESHOP_STORE_UPLOADER_KEY", hide_env_values = true)]
    store_uploader_key: Option<String>,
    #[arg(
        long,
        env = "EDGESHOP_STORE_UPLOADER_SECRET",
        hide_env_values = true,
        requires = "store_uploader_key"
    )]
    store_uploader_secret: Option<String>,
    /// Bytes one vendor's uploads and media may hold.
    #[arg(long, default_value_t = 1 << 30)]
    upload_quota_bytes: u64,
    /// Uploads one vendor may hold.
    #[arg(long, default_value_t = 1000)]
    upload_quota_objects: u64,
    /// How long a signed upload URL works, at most 900 s.
    #[arg(long, default_value_t = 900)]
    upload_url_secs: u64,
    /// Where the origin itself reaches the store, when not at
    /// --store-endpoint (a private network address).
    #[arg(long, value_name = "URL")]
    store_internal_endpoint: Option<String>,
    /// Certificates (PEM) trusted for the store's HTTPS besides the web
    /// PKI's roots.
    #[arg(long, value_name = "FILE")]
    store_ca: Option<PathBuf>,
    /// The access key that processes uploads; it should reach nothing but
    /// reading and deleting `uploads/` and writing `media/`. Attaching
    /// images is off without it.
    #[arg(long, env = "EDGESHOP_STORE_PROCESSOR_KEY", hide_env_values = true)]
    store_processor_key: Option<String>,
    #[arg(
        long,
        env = "EDGESHOP_STORE_PROCESSOR_SECRET",
        hide_env_values = true,
        requires = "store_processor_key"
    )]
    store_processor_secret: Option<String>,
}

/// Where a database's primary copy lives.
#[derive(Debug, Clone)]
enum Place {
    /// A file this origin is the primary of: it migrates, serves
    /// (Hrana) and replicates it.
    File(PathBuf),
    /// Another libSQL server is the primary (sqld, Turso): the origin
    /// migrates it and reads and writes it over Hrana like any client;
    /// PoPs replicate from that server, not from the origin.
    Url(String),
}

fn parse_place(s: &str) -> Result<Place, String> {
    let lower = s.to_ascii_lowercase();
    if ["http://", "https://", "libsql://"]
        .iter()
        .any(|p| lower.starts_with(p))
    {
        Ok(Place::Url(s.trim_end_matches('/').to_string()))
    } else if s.contains("://") {
        Err(format!(
            "{s:?}: a primary URL is http://, https:// or libsql://; anything else is a file path"
        ))
    } else {
        Ok(Place::File(PathBuf::from(s)))
    }
}

impl Place {
    fn file(&self) -> Option<&std::path::Path> {
        match self {
            Place::File(p) => Some(p),
            Place::Url(_) => None,
        }
    }

    /// A database handle: a local file, or a remote primary over Hrana.
    async fn open(&self, token: Option<&str>) -> Result<libsql::Database> {
        Ok(match self {
            Place::File(p) => libsql::Builder::new_local(p).build().await?,
            Place::Url(url) => {
                libsql::Builder::new_remote(url.clone(), token.unwrap_or_default().to_string())
                    .build()
                    .await?
            }
        })
    }
}

/// Applies `migrations` to a primary this origin does not serve.
async fn migrate_remote(
    name: &str,
    db: &libsql::Database,
    migrations: &[migrations::Migration],
) -> Result<libsql::Connection> {
    let conn = db.connect()?;
    let applied = migrations::apply(&conn, migrations)
        .await
        .with_context(|| format!("migrating the {name} primary"))?;
    if !applied.is_empty() {
        tracing::info!(
            db = name,
            ?applied,
            "applied migrations at the remote primary"
        );
    }
    Ok(conn)
}

/// The processor the flags give, if they give its key.
fn processor(args: &Args) -> Result<Option<vendor::Processor>> {
    let (Some(endpoint), Some(key)) = (&args.store_endpoint, &args.store_processor_key) else {
        return Ok(None);
    };
    let store = uploads::Store {
        endpoint: args
            .store_internal_endpoint
            .as_deref()
            .unwrap_or(endpoint)
            .trim_end_matches('/')
            .to_string(),
        region: args.store_region.clone(),
        bucket: args.store_bucket.clone(),
        access_key: key.clone(),
        secret_key: args
            .store_processor_secret
            .clone()
            .context("--store-processor-secret is needed with --store-processor-key")?,
    };
    store
        .object_url("media/check.webp")
        .context("--store-internal-endpoint")?;
    let roots = match &args.store_ca {
        Some(path) => admission::tls::read_certificates(path).context("reading --store-ca")?,
        None => Vec::new(),
    };
    let http = admission::tls::https_client(&roots, std::time::Duration::from_secs(5))?;
    Ok(Some(vendor::Processor {
        store: vendor::ObjectStore::new(store, http),
        bounds: media_processing::Bounds::default(),
    }))
}

/// The uploads settings the flags give, checked.
fn upload_settings(args: &Args) -> Result<Option<vendor::UploadSettings>> {
    let Some(endpoint) = &args.store_endpoint else {
        return Ok(None);
    };
    let store = uploads::Store {
        endpoint: endpoint.trim_end_matches('/').to_string(),
        region: args.store_region.clone(),
        bucket: args.store_bucket.clone(),
        access_key: args.store_uploader_key.clone().unwrap_or_default(),
        secret_key: args
            .store_uploader_secret
            .clone()
            .context("--store-uploader-secret is needed with --store-endpoint")?,
    };
    let valid_for = std::time::Duration::from_secs(args.upload_url_secs);
    // Signing once now finds a bad endpoint or validity at start.
    store
        .presign_put(
            "uploads/1/check.jpg",
            "image/jpeg",
            1,
            std::time::SystemTime::now(),
            valid_for,
        )
        .context("--store-endpoint / --upload-url-secs")?;
    Ok(Some(vendor::UploadSettings {
        store,
        quota: vendor::Quota {
            bytes: args.upload_quota_bytes,
            objects: args.upload_quota_objects,
        },
        valid_for,
    }))
}

/// Largest body the checkout API and the webhook endpoint read.
const CHECKOUT_MAX_BODY_BYTES: usize = 64 << 10;

/// Longest a Hrana answer waits for its writes to reach the frame log.
const SHIP_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

type Body = UnsyncBoxBody<Bytes, std::io::Error>;

/// Longest a client may take to send a request body.
const BODY_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// A request body of at most `limit` bytes that arrives within
/// [`BODY_READ_TIMEOUT`], or the problem to answer.
async fn read_body(body: Incoming, limit: usize) -> Result<Bytes, problem::Problem> {
    let read = http_body_util::Limited::new(body, limit).collect();
    match tokio::time::timeout(BODY_READ_TIMEOUT, read).await {
        Ok(Ok(b)) => Ok(b.to_bytes()),
        Ok(Err(_)) => Err(problem::Problem::payload_too_large(limit as u64)),
        Err(_) => Err(problem::Problem::new(
            408,
            "request-timeout",
            "Request timeout",
            format!("the request body did not arrive within {BODY_READ_TIMEOUT:?}"),
        )),
    }
}

struct Origin {
    catalog: db_writer::Shared,
    checkout: Option<Arc<checkout::Checkout>>,
    /// The vendor API; it needs the identity primary.
    vendors: Option<Arc<vendor::Vendors>>,
    hrana: Arc<hrana::HranaServer>,
    /// Replicated databases, by name.
    primaries: BTreeMap<String, Arc<replication::Primary>>,
    /// Push streams held, by client.
    pushes: Arc<admission::Admission>,
    push_settings: replication::push::Settings,
    metrics: metrics::OriginMetrics,
}

#[tokio::main]
async fn main() -> Result<()> {
    // The same binary is the image processing child (see vendor::isolate).
    let argv: Vec<String> = std::env::args().collect();
    if argv.get(1).map(String::as_str) == Some(vendor::isolate::CHILD_ARG) {
        vendor::isolate::child_main(&argv[2..]);
    }
    let _telemetry = edgeshop_telemetry::init("edgeshop-origin", "info");
    let args = Args::parse();
    anyhow::ensure!(
        args.token.len() >= 16,
        "the origin token must be at least 16 characters"
    );
    anyhow::ensure!(
        args.edge_token
            .as_ref()
            .is_none_or(|t| t.len() >= 16 && *t != args.token),
        "the edge token must be at least 16 characters and differ from the origin token"
    );
    // Payment and store settings are checked before any database is
    // opened, so a mistake stops the origin at once, naming the flag.
    let upload_settings = upload_settings(&args)?;
    let processor = processor(&args)?;
    let provider = match &args.payments_url {
        Some(url) => Some(
            payments::stripe::Client::new(payments::stripe::Config {
                base_url: url.clone(),
                secret_key: args.payments_key.clone(),
                timeout: std::time::Duration::from_millis(args.payments_timeout_ms),
                extra_roots: match &args.payments_ca {
                    Some(path) => {
                        admission::tls::read_certificates(path).context("reading --payments-ca")?
                    }
                    None => Vec::new(),
                },
            })
            .context("--payments-url")?,
        ),
        None => None,
    };
    let options = replication::Options {
        roll_frames: args.roll_frames.max(1),
        retain: args.retain_generations.max(1),
        checkpoint_frames: args.checkpoint_frames.max(1),
        ..replication::Options::default()
    };
    let catalog_token = args.catalog_token.as_deref();
    let identity_token = args.identity_token.as_deref();
    for (name, place, token) in [
        ("catalog", Some(&args.catalog), catalog_token),
        ("identity", args.identity.as_ref(), identity_token),
    ] {
        if let Some(Place::Url(url)) = place {
            anyhow::ensure!(
                token.is_some_and(|t| !t.is_empty()),
                "--{name} {url} needs a token (--{name}-token or EDGESHOP_{}_TOKEN)",
                name.to_ascii_uppercase()
            );
            anyhow::ensure!(
                !args.checkout_peer,
                "--checkout-peer shares this origin's files; with a primary at {url} run a \
                 second origin instead"
            );
        }
    }
    let mut replicated = Vec::new();
    if let Place::File(path) = &args.catalog {
        replicated.push(("catalog", path.clone(), catalog_db::MIGRATIONS));
    }
    if let Some(Place::File(identity)) = &args.identity {
        replicated.push(("identity", identity.clone(), identity_db::MIGRATIONS));
    }
    let mut primaries = BTreeMap::new();
    let mut catalog = None;
    if args.checkout_peer {
        // The primary origin migrates, ships and checkpoints these files;
        // a peer only writes them, never checkpointing (see the end).
        let conn = args.catalog.open(None).await?.connect()?;
        replication::prepare_connection(&conn).await?;
        catalog = Some(conn);
        replicated.clear();
    }
    for (name, path, migrations) in replicated {
        let (conn, primary) = replicate(name, &path, migrations, &args, &options).await?;
        if name == "catalog" {
            catalog = Some(conn);
        }
        primaries.insert(name.to_string(), primary);
    }
    if !args.checkout_peer {
        // A remote primary is migrated like a local one; it replicates
        // itself.
        if args.catalog.file().is_none() {
            let db = args.catalog.open(catalog_token).await?;
            catalog = Some(migrate_remote("catalog", &db, catalog_db::MIGRATIONS).await?);
        }
        if let Some(identity) = args.identity.as_ref().filter(|p| p.file().is_none()) {
            let db = identity.open(identity_token).await?;
            migrate_remote("identity", &db, identity_db::MIGRATIONS).await?;
        }
    }
    let conn = catalog.expect("the catalog is always opened");

    // A peer serves no database: the primary origin is the one place
    // PoPs and tools reach them. A primary elsewhere is reached there.
    let mut dbs = BTreeMap::new();
    if !args.checkout_peer {
        if let Some(path) = args.catalog.file() {
            dbs.insert(
                "catalog".to_string(),
                libsql::Builder::new_local(path).build().await?,
            );
        }
        if let Some(identity) = args.identity.as_ref().and_then(Place::file) {
            dbs.insert(
                "identity".to_string(),
                libsql::Builder::new_local(identity).build().await?,
            );
        }
        if let Some(orders) = &args.orders {
            dbs.insert(
                "orders".to_string(),
                libsql::Builder::new_local(orders).build().await?,
            );
        }
    }
    // Batons name in-memory streams, so a per-process key is enough.
    let mut baton_secret = [0u8; 32];
    {
        use std::io::Read;
        std::fs::File::open("/dev/urandom")?.read_exact(&mut baton_secret)?;
    }
    let permissions = match &args.db_permissions {
        Some(path) => {
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?
        }
        None => SHIPPED_PERMISSIONS.to_string(),
    };
    let permissions = db_permissions::Permissions::parse(&permissions)?;
    let hrana = hrana::HranaServer::new(
        dbs,
        primaries.keys().cloned().collect::<BTreeSet<_>>(),
        hrana::Tokens {
            origin: args.token.clone(),
            origin_grant: permissions.grant("origin")?.clone(),
            edge: args.edge_token.clone(),
            edge_grant: permissions.grant("edge")?.clone(),
        },
        &baton_secret,
    );
    let step_timeout_ms = args.payments_timeout_ms.saturating_mul(2);
    let checkout = match (&args.orders, provider) {
        (Some(orders), Some(provider)) => {
            let catalog_db = args.catalog.open(catalog_token).await?;
            let catalog_writer = match args.catalog.file() {
                Some(_) => None,
                None => Some(args.catalog.open(catalog_token).await?),
            };
            // Session checks keep their statement prepared, except on a
            // remote primary (sqld), as its writers do.
            let identity_db = match &args.identity {
                Some(p) => {
                    let db = p.open(identity_token).await?;
                    Some(match p.file() {
                        Some(_) => db_writer::Readers::new(db, 16),
                        None => db_writer::Readers::remote(db, 16),
                    })
                }
                None => None,
            };
            let c = checkout::Checkout::open(
                orders,
                catalog_db,
                catalog_writer,
                identity_db,
                checkout::Settings {
                    variables_file: args.variables_file.clone(),
                    provider,
                    webhook_secret: args.webhook_secret.clone(),
                    request_budget: std::time::Duration::from_millis(args.checkout_budget_ms),
                    step_timeout: std::time::Duration::from_millis(step_timeout_ms),
                    lease: std::time::Duration::from_millis(
                        args.saga_lease_ms
                            .unwrap_or(step_timeout_ms.saturating_mul(3) / 2)
                            .max(1_000),
                    ),
                    writer: db_writer::Settings::default(),
                    owner: args.saga_owner.clone().or_else(|| {
                        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
                        (args.listen.port() != 0)
                            .then(|| format!("{}:{}", host.trim(), args.listen.port()))
                    }),
                },
            )
            .await
            .context("starting checkout")?;
            c.start();
            Some(c)
        }
        _ => {
            tracing::info!("checkout is off (it needs --orders and --payments-url)");
            None
        }
    };
    let vendors = match &args.identity {
        Some(identity) if !args.checkout_peer => Some(
            vendor::Vendors::open(
                checkout::Primary {
                    db: args.catalog.open(catalog_token).await?,
                    is_file: args.catalog.file().is_some(),
                },
                checkout::Primary {
                    db: identity.open(identity_token).await?,
                    is_file: identity.file().is_some(),
                },
                match &args.orders {
                    Some(p) => Some(orders_db::open(p).await?.0),
                    None => None,
                }
                .as_ref(),
                args.variables_file.clone(),
                upload_settings,
                processor,
            )
            .await
            .map(Arc::new)
            .context("starting the vendor API")?,
        ),
        _ => None,
    };
    if let Some(v) = &vendors {
        v.start();
    }
    let remote_catalog = args.catalog.open(catalog_token).await?;
    let saga_metrics = checkout.as_ref().map(|c| c.metrics.clone());
    let origin = Arc::new_cyclic(|me| Origin {
        catalog: db_writer::Shared::new(conn, remote_catalog, args.catalog.file().is_none()),
        metrics: metrics::OriginMetrics::new(saga_metrics.as_ref(), me.clone()),
        checkout,
        vendors,
        hrana,
        primaries: primaries.clone(),
        pushes: admission::Admission::new(admission::Limits {
            total: args.max_push_streams.max(1),
            per_client: args.max_push_streams_per_client.max(1),
            trusted: Vec::new(),
        }),
        push_settings: replication::push::Settings {
            lifetime: std::time::Duration::from_secs(args.push_lifetime_secs.max(1)),
            send_timeout: std::time::Duration::from_secs(args.push_send_timeout_secs.max(1)),
            ..Default::default()
        },
    });
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(admission::tls::acceptor(cert, key)?),
        _ => None,
    };
    let listener = admission::bind(args.listen)?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    println!(
        "edgeshop-origin listening on {scheme}://{}",
        listener.local_addr()?
    );
    std::io::stdout().flush()?;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let connections = admission::Admission::serving(admission::Limits {
        total: args.max_connections.max(1),
        per_client: args.max_connections_per_client.max(1),
        trusted: args.trusted_proxies.clone(),
    });
    loop {
        let (stream, peer, permit) = tokio::select! {
            a = connections.accept(&listener) => a,
            _ = tokio::signal::ctrl_c() => break,
            _ = term.recv() => break,
        };
        let _ = stream.set_nodelay(true);
        let origin = origin.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            match tls {
                None => serve_connection(stream, peer, origin).await,
                Some(tls) => {
                    let handshake = tls.accept(stream);
                    match tokio::time::timeout(admission::tls::HANDSHAKE_TIMEOUT, handshake).await {
                        Ok(Ok(stream)) => serve_connection(stream, peer, origin).await,
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                }
            }
            drop(permit);
        });
    }
    if args.checkout_peer {
        // A peer never closes its connections to the primary's files: the
        // last connection to close checkpoints the WAL, and frames the
        // primary has not shipped (it may be down) would never reach the
        // replicas. Ending without closing leaves the WAL as a crash
        // does, which SQLite and the primary's next start handle.
        tracing::info!("checkout peer stopped");
        std::process::exit(0);
    }
    // Ship the last frames before the process (and its connections) go.
    tokio::task::spawn_blocking(move || primaries.values().for_each(|p| p.shutdown())).await?;
    tracing::info!("origin stopped");
    Ok(())
}

/// Serves HTTP/1.1 requests on one connection, plain or TLS.
async fn serve_connection<S>(stream: S, peer: std::net::SocketAddr, origin: Arc<Origin>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let svc = hyper::service::service_fn(move |req| {
        let origin = origin.clone();
        async move { Ok::<_, std::convert::Infallible>(origin.handle(req, peer).await) }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
        .await;
}

/// Opens, migrates and starts replicating one database. Its connection
/// stays open (and never checkpoints) for the life of the process.
async fn replicate(
    name: &str,
    path: &std::path::Path,
    migrations: &[migrations::Migration],
    args: &Args,
    options: &replication::Options,
) -> Result<(libsql::Connection, Arc<replication::Primary>)> {
    let (_db, conn) = migrations::open_local(path)
        .await
        .with_context(|| format!("opening {}", path.display()))?;
    // Migrations write frames the replicas need too.
    replication::prepare_connection(&conn).await?;
    let applied = migrations::apply(&conn, migrations).await?;
    if !applied.is_empty() {
        tracing::info!(db = name, ?applied, "applied migrations");
    }
    let dir = match &args.replication_dir {
        Some(dir) => dir.join(name),
        None => {
            let mut dir = path.as_os_str().to_owned();
            dir.push(".replication");
            dir.into()
        }
    };
    let primary = replication::Primary::open(name, path, &dir, options.clone())
        .await
        .with_context(|| format!("starting {name} replication"))?;
    Ok((conn, primary))
}

/// A caller [`hrana::HranaServer::admit`] turned away; a 401 carries the
/// challenge (RFC 6750).
fn refused(p: problem::Problem) -> Response<Body> {
    let mut resp = problem(p);
    if resp.status() == 401 {
        resp.headers_mut().insert(
            http::header::WWW_AUTHENTICATE,
            http::HeaderValue::from_static("Bearer"),
        );
    }
    resp
}

fn answer_response(a: checkout::Answer) -> Response<Body> {
    let mut resp = reply(a.status, a.content_type, a.body);
    for (name, value) in a.headers {
        if let Ok(v) = http::HeaderValue::from_str(&value) {
            resp.headers_mut().insert(name, v);
        }
    }
    resp
}

impl Origin {
    async fn handle(&self, req: Request<Incoming>, peer: std::net::SocketAddr) -> Response<Body> {
        use tracing::Instrument;
        let started = std::time::Instant::now();
        let span = edgeshop_telemetry::server_span!(
            req.headers(),
            http.request.method = %req.method(),
            url.path = %req.uri().path(),
            http.route = tracing::field::Empty,
        );
        let method = req.method().clone();
        let (route, resp) = self.dispatch(req, peer).instrument(span.clone()).await;
        let status = resp.status().as_u16();
        if !span.is_disabled() {
            span.record("http.route", route);
            edgeshop_telemetry::trace::rename(&span, format!("{method} {route}"));
            span.record("http.response.status_code", status);
        }
        self.metrics.observe(route, status, started.elapsed());
        resp
    }

    /// Answers a request, saying which route it was counted under.
    async fn dispatch(
        &self,
        req: Request<Incoming>,
        peer: std::net::SocketAddr,
    ) -> (&'static str, Response<Body>) {
        use metrics::route;
        let path = req.uri().path().to_string();
        if let Some(rest) = path.strip_prefix("/db/") {
            let (db, endpoint) = rest.split_once('/').unwrap_or((rest, ""));
            if let Some(request) = replication::protocol::Request::parse(endpoint) {
                return (
                    route::REPLICATION,
                    self.replicate(&req, peer, db, request).await,
                );
            }
            return (route::HRANA, self.hrana(req, &path, db).await);
        }
        if path.starts_with("/api/v1/vendor/") {
            return (route::VENDOR, self.vendor(req).await);
        }
        if path.starts_with("/api/v1/") {
            return (route::CHECKOUT, self.checkout(req).await);
        }
        if path.starts_with("/webhooks/") {
            return (route::WEBHOOK, self.checkout(req).await);
        }
        match path.as_str() {
            "/health" | "/.well-known/edgeshop/health" => (route::HEALTH, self.health().await),
            edgeshop_telemetry::metrics::PATH => (route::METRICS, self.metrics_page()),
            path => (
                route::UNMATCHED,
                problem(problem::Problem::not_found(format!(
                    "the origin has no resource at {path}"
                ))),
            ),
        }
    }

    /// Served without credentials, as Prometheus scrapes by default: the
    /// origin is reached by PoPs and operators, not by shoppers (PoPs
    /// forward only the checkout and vendor APIs to it).
    fn metrics_page(&self) -> Response<Body> {
        let mut r = Response::new(full(self.metrics.encode().into_bytes()));
        r.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static(edgeshop_telemetry::metrics::CONTENT_TYPE),
        );
        r
    }

    async fn checkout(&self, req: Request<Incoming>) -> Response<Body> {
        let Some(checkout) = &self.checkout else {
            return problem(problem::Problem::unavailable(
                "checkout is not configured at this origin (start it with --orders and --payments-url)",
            ));
        };
        let (parts, body) = req.into_parts();
        if let Err(a) = checkout.admit(parts.uri.path(), &parts.headers) {
            return answer_response(a);
        }
        let body = match read_body(body, CHECKOUT_MAX_BODY_BYTES).await {
            Ok(b) => b,
            Err(p) => return problem(p),
        };
        let answer = checkout
            .handle(
                &parts.method,
                parts.uri.path(),
                parts.uri.query(),
                &parts.headers,
                body,
            )
            .await;
        let Some(a) = answer else {
            return problem(problem::Problem::not_found(format!(
                "the origin has no resource at {}",
                parts.uri.path()
            )));
        };
        answer_response(a)
    }

    async fn vendor(&self, req: Request<Incoming>) -> Response<Body> {
        let Some(vendors) = &self.vendors else {
            return problem(problem::Problem::unavailable(
                "the vendor API is not configured at this origin (start it with --identity)",
            ));
        };
        let (parts, body) = req.into_parts();
        let body = match read_body(body, vendor_core::MAX_BODY_BYTES).await {
            Ok(b) => b,
            Err(p) => return problem(p),
        };
        answer_response(
            vendors
                .handle(
                    &parts.method,
                    parts.uri.path(),
                    parts.uri.query(),
                    &parts.headers,
                    body,
                )
                .await,
        )
    }

    async fn hrana(&self, req: Request<Incoming>, path: &str, db: &str) -> Response<Body> {
        let method = req.method().clone();
        let auth = authorization(&req);
        // Who is asking is known before any of the body is read.
        let who = match self.hrana.admit(db, auth.as_deref()) {
            Ok(who) => who,
            Err(p) => return refused(p),
        };
        let body = match read_body(req.into_body(), hrana::MAX_BODY_BYTES).await {
            Ok(b) => b,
            Err(p) => return problem(p),
        };
        let r = self.hrana.handle(&method, path, &who, body).await;
        let mut resp = reply(r.status, r.content_type, r.body);
        if let Some(primary) = self.primaries.get(db).cloned() {
            // A write may have committed: answer once it is shipped, and
            // say where the log ends then, so the writer can wait until
            // its replica has applied that much (read-your-writes).
            let shipped = {
                let primary = primary.clone();
                tokio::task::spawn_blocking(move || primary.ship_now(SHIP_WAIT)).await
            };
            if matches!(shipped, Ok(true)) {
                let p = primary.position();
                if let Ok(v) = http::HeaderValue::from_str(&format!("{}/{}", p.generation, p.frame))
                {
                    resp.headers_mut().insert(POSITION_HEADER, v);
                }
            } else {
                tracing::warn!(db, "a write was answered before it was shipped");
            }
        }
        resp
    }

    async fn replicate(
        &self,
        req: &Request<Incoming>,
        peer: std::net::SocketAddr,
        db: &str,
        request: replication::protocol::Request,
    ) -> Response<Body> {
        if let Err(p) = self.hrana.admit(db, authorization(req).as_deref()) {
            return refused(p);
        }
        if req.method() != http::Method::GET {
            return problem(problem::Problem::method_not_allowed(
                req.method().as_str(),
                &["GET"],
            ));
        }
        let Some(primary) = self.primaries.get(db).cloned() else {
            return problem(problem::Problem::not_found(format!(
                "database {db:?} is not replicated; only the catalog goes to the edge"
            )));
        };
        if let replication::protocol::Request::Push { generation, start } = request {
            return self.push(peer, primary, generation, start);
        }
        let answer =
            tokio::task::spawn_blocking(move || replication::protocol::answer(&primary, request))
                .await;
        use replication::protocol::Reply;
        match answer {
            Ok(Reply::Json(v)) => json(200, &v),
            Ok(Reply::Frames(f)) => reply(200, "application/octet-stream", f),
            Ok(Reply::Problem(p)) => problem(p),
            Ok(Reply::File(file)) => stream_file(file),
            Err(e) => problem(problem::Problem::new(
                500,
                "internal",
                "Internal error",
                format!("the replication request failed: {e}"),
            )),
        }
    }

    /// A push stream (see `replication::push`), held against the per
    /// client and total bounds for as long as it is open.
    fn push(
        &self,
        peer: std::net::SocketAddr,
        primary: Arc<replication::Primary>,
        generation: u32,
        start: u32,
    ) -> Response<Body> {
        use futures::StreamExt;
        let permit = match self.pushes.admit(peer.ip()) {
            Ok(p) => p,
            Err(refused) => {
                let mut resp = problem(problem::Problem::new(
                    429,
                    "too-many-push-streams",
                    "Too many push streams",
                    format!(
                        "{}; a replica needs one per database: close the others or retry later",
                        refused.to_string().replace("connections", "push streams")
                    ),
                ));
                resp.headers_mut().insert(
                    http::header::RETRY_AFTER,
                    http::HeaderValue::from_static("5"),
                );
                return resp;
            }
        };
        let messages = match replication::push::serve(
            primary,
            generation,
            start,
            self.push_settings.clone(),
        ) {
            Ok(rx) => rx,
            Err(pull) => return problem(replication::protocol::refusal(pull)),
        };
        // The permit lives as long as the body: a closed connection drops
        // the body, and with it the stream's place.
        let body = tokio_stream_of(messages).map(move |m| {
            let _held = &permit;
            Ok::<_, std::io::Error>(hyper::body::Frame::data(Bytes::from(m)))
        });
        let mut r = Response::new(http_body_util::StreamBody::new(body).boxed_unsync());
        r.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static(replication::push::CONTENT_TYPE),
        );
        r.headers_mut().insert(
            http::header::CACHE_CONTROL,
            http::HeaderValue::from_static("no-store"),
        );
        r
    }

    async fn health(&self) -> Response<Body> {
        let replication: serde_json::Map<String, serde_json::Value> = self
            .primaries
            .iter()
            .map(|(name, p)| {
                let pos = p.position();
                (
                    name.clone(),
                    serde_json::json!({"generation": pos.generation, "frame": pos.frame}),
                )
            })
            .collect();
        match catalog_db::product_count(&*self.catalog.lock().await).await {
            Ok(n) => json(
                200,
                &serde_json::json!({
                    "status": "ok",
                    "catalog_products": n,
                    "hrana_streams": self.hrana.open_streams(),
                    "checkout": self.checkout.as_ref().map(|c| serde_json::json!({
                        "payments_breaker": c.breaker(),
                        "saga_owner": c.owner(),
                        "sagas_taken_over": c.takeovers(),
                    })),
                    "replication": replication,
                }),
            ),
            Err(e) => json(
                503,
                &serde_json::json!({"status": "degraded", "error": e.to_string()}),
            ),
        }
    }
}

/// The header on a Hrana answer that names where the replication log
/// ended once the request's writes were shipped: `{generation}/{frame}`.
const POSITION_HEADER: &str = "edgeshop-replication-position";

/// A receiver as a stream of its messages.
fn tokio_stream_of(
    mut rx: tokio::sync::mpsc::Receiver<Vec<u8>>,
) -> impl futures::Stream<Item = Vec<u8>> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

fn authorization(req: &Request<Incoming>) -> Option<String> {
    req.headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

fn full(body: Vec<u8>) -> Body {
    Full::new(Bytes::from(body))
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// Streams a file (a replication base) without holding it in memory.
fn stream_file(file: std::fs::File) -> Response<Body> {
    use futures::TryStreamExt;
    let len = file.metadata().map(|m| m.len()).ok();
    let chunks =
        tokio_util::io::ReaderStream::with_capacity(tokio::fs::File::from_std(file), 256 << 10)
            .map_ok(hyper::body::Frame::data);
    let mut r = Response::new(http_body_util::StreamBody::new(chunks).boxed_unsync());
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/octet-stream"),
    );
    if let Some(len) = len {
        r.headers_mut()
            .insert(http::header::CONTENT_LENGTH, http::HeaderValue::from(len));
    }
    r
}

fn reply(status: u16, content_type: &'static str, body: Vec<u8>) -> Response<Body> {
    let mut r = Response::new(full(body));
    *r.status_mut() =
        http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    // A 204 has no content to describe.
    if status != 204 {
        r.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static(content_type),
        );
    }
    r
}

fn problem(p: problem::Problem) -> Response<Body> {
    reply(p.status, problem::Problem::CONTENT_TYPE, p.to_json())
}

fn json(status: u16, body: &serde_json::Value) -> Response<Body> {
    reply(
        status,
        "application/json",
        serde_json::to_vec(body).expect("json"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_primary_is_a_file_or_a_libsql_server_url() {
        assert!(
            matches!(parse_place("data/catalog.db"), Ok(Place::File(p)) if p == std::path::Path::new("data/catalog.db"))
        );
        for url in [
            "http://127.0.0.1:8080/",
            "HTTPS://db.example",
            "libsql://shop.turso.io",
        ] {
            match parse_place(url) {
                Ok(Place::Url(u)) => assert_eq!(u, url.trim_end_matches('/')),
                other => panic!("{url}: {other:?}"),
            }
        }
        // A URL of another kind is a mistake, not a file name.
        assert!(parse_place("ftp://db.example/catalog").is_err());
    }
}
