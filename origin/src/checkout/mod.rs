//! Checkout at the origin: the order API the edge gateway forwards to, the
//! saga orchestrator behind it, payment webhooks, and the outbox publisher.
//!
//! - `POST /api/v1/checkout` prices the cart at the primary, creates the
//!   order under its `Idempotency-Key`, and drives the saga for up to a
//!   request budget; the answer is stored with the key and replayed.
//! - `GET /api/v1/orders` and `/api/v1/orders/{id}`: the caller's own
//!   orders only (another account's id is a 404).
//! - `POST /webhooks/payments`: signed provider events, de-duplicated by
//!   event id.
//!
//! Background tasks resume due sagas (after a crash, or after a request's
//! budget ran out), publish the outbox, and expire idempotency keys.

pub mod auth;
mod saga_run;
mod stock;
mod store;

use bytes::Bytes;
use checkout_core::CheckoutRequest;
use hmac::{Hmac, Mac};
use payments::breaker::Guarded;
use payments::{PayError, stripe, webhook};
use problem::Problem;
use sha2::{Digest, Sha256};
use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How the checkout runs.
#[derive(Debug, Clone)]
pub struct Settings {
    pub variables_file: Option<PathBuf>,
    pub provider: stripe::Client,
    pub webhook_secret: String,
    /// How long a checkout request drives its saga before answering 202.
    pub request_budget: Duration,
    /// Longest one saga step may take.
    pub step_timeout: Duration,
    /// How long an order stays leased to this process after its last
    /// recorded step (or, in a backoff, after its next step is due):
    /// longer than a step, so a live driver never loses it, and the
    /// bound on how long another origin waits to take over from a dead
    /// one.
    pub lease: Duration,
    /// This process's name on the orders it drives (unique among live
    /// origins); one made up for this process when unset.
    pub owner: Option<String>,
    /// Queue and group bounds of each database's writer.
    pub writer: db_writer::Settings,
}

/// Idempotency keys are kept at least this long.
pub const KEY_RETENTION_MS: i64 = 24 * 3600 * 1000;
/// Most sagas the background resumes at once.
const BACKGROUND_DRIVERS: usize = 32;
/// Longest webhook body read.
const MAX_WEBHOOK_BYTES: usize = 64 << 10;

/// A database the checkout reads and writes: every write goes through
/// its one writer (grouped commits, a bounded queue); reads use pooled
/// connections of their own.
pub(crate) struct Db {
    writer: db_writer::Writer,
    readers: db_writer::Readers,
}

/// Who checkpoints a [`Db`].
enum Checkpoints {
    /// A thread beside the writer (the orders database: nothing else
    /// reads its WAL).
    Aside,
    /// The replication shipper, which must ship frames before they are
    /// checkpointed (a catalog file this origin is the primary of).
    Shipper,
    /// The server of a remote primary (sqld, Turso), which this second
    /// handle reconnects to when its stream ends.
    Remote(Box<libsql::Database>),
}

impl Db {
    async fn new(
        label: &'static str,
        db: libsql::Database,
        writer: libsql::Connection,
        settings: db_writer::Settings,
        checkpoints: Checkpoints,
    ) -> Result<Db, libsql::Error> {
        // A remote primary's readers, like its writer, prepare per call.
        let (writer, readers) = match checkpoints {
            Checkpoints::Aside => {
                let checkpointer = db.connect()?;
                let writer = db_writer::Writer::start_with_checkpoints(
                    label,
                    writer,
                    checkpointer,
                    settings,
                )
                .await?;
                (writer, db_writer::Readers::new(db, 16))
            }
            Checkpoints::Shipper => (
                db_writer::Writer::start(label, writer, settings).await?,
                db_writer::Readers::new(db, 16),
            ),
            Checkpoints::Remote(second) => (
                db_writer::Writer::start_remote(label, *second, settings).await?,
                db_writer::Readers::remote(db, 16),
            ),
        };
        Ok(Db { writer, readers })
    }

    pub(crate) async fn read<T>(
        &self,
        f: impl AsyncFnOnce(&db_writer::Tx) -> Result<T, libsql::Error>,
    ) -> Result<T, libsql::Error> {
        let conn = self.readers.get()?;
        let out = f(&conn).await;
        self.readers.put(conn);
        out
    }

    /// One job of the writer, answered once it is on the disk (see
    /// `db_writer::Writer::write`); an overloaded or stopped writer is
    /// `SQLITE_BUSY`, which callers answer with 503 and `Retry-After`.
    pub(crate) async fn write<T: Send + 'static>(
        &self,
        job: impl db_writer::Job<T>,
    ) -> Result<T, libsql::Error> {
        self.write_as(true, job).await
    }

    /// [`Db::write`] for a write a machine crash may lose without harm
    /// (see `db_writer::Writer::write_unsynced`): one redone
    /// idempotently, or covered by a later synced write.
    pub(crate) async fn write_unsynced<T: Send + 'static>(
        &self,
        job: impl db_writer::Job<T>,
    ) -> Result<T, libsql::Error> {
        self.write_as(false, job).await
    }

    pub(crate) async fn write_as<T: Send + 'static>(
        &self,
        synced: bool,
        job: impl db_writer::Job<T>,
    ) -> Result<T, libsql::Error> {
        let written = if synced {
            self.writer.write(job).await
        } else {
            self.writer.write_unsynced(job).await
        };
        written.map_err(|e| match e {
            db_writer::Error::Db(e) => e,
            other => libsql::Error::SqliteFailure(5, other.to_string()),
        })
    }
}

pub struct Checkout {
    orders: Db,
    catalog: Db,
    /// Session checks read the identity primary, on pooled connections.
    identity: Option<db_writer::Readers>,
    provider: Guarded<stripe::Client>,
    verifier: auth::Verifier,
    hold_key: Vec<u8>,
    webhook_secret: String,
    request_budget: Duration,
    step_timeout: Duration,
    /// This process's name on the orders it drives, and the lease time.
    lease: store::Lease,
    /// Sagas taken over from a process whose lease ran out.
    takeovers: std::sync::atomic::AtomicU64,
    /// Orders a task is driving now.
    driving: std::sync::Mutex<HashSet<String>>,
    /// Woken whenever a task stops driving an order.
    finished: tokio::sync::Notify,
    rng: std::sync::Mutex<u64>,
    /// Steps by outcome and the outbox, for `/metrics`.
    pub metrics: crate::metrics::SagaMetrics,
}

/// What an HTTP handler answers: status, content type, body, extra headers.
pub struct Answer {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
    pub headers: Vec<(&'static str, String)>,
}

impl Answer {
    pub(crate) fn json(status: u16, v: &serde_json::Value) -> Answer {
        Answer {
            status,
            content_type: "application/json",
            body: serde_json::to_vec(v).expect("json"),
            headers: Vec::new(),
        }
    }
    pub(crate) fn problem(p: Problem) -> Answer {
        let mut a = Answer {
            status: p.status,
            content_type: Problem::CONTENT_TYPE,
            body: p.to_json(),
            headers: Vec::new(),
        };
        if p.status == 401 {
            a.headers.push(("www-authenticate", "Bearer".into()));
        }
        for (name, value) in p.header_fields() {
            match name.as_str() {
                "allow" => a.headers.push(("allow", value)),
                "retry-after" => a.headers.push(("retry-after", value)),
                _ => {}
            }
        }
        a
    }
    pub(crate) fn with(mut self, name: &'static str, value: impl Into<String>) -> Answer {
        self.headers.push((name, value.into()));
        self
    }
}

fn internal(e: libsql::Error) -> Answer {
    // A writer whose queue is full (see `Db::write`) is overload, not
    // failure: said as such, and not logged per request.
    if let libsql::Error::SqliteFailure(5, why) = &e
        && why.contains("writes queued")
    {
        tracing::debug!("checkout refused a write: {why}");
        return Answer::problem(Problem::unavailable(
            "the order service is busy right now; nothing was charged, try again in a moment",
        ))
        .with("retry-after", "1");
    }
    tracing::error!("checkout database error: {e}");
    Answer::problem(Problem::unavailable(
        "the order service could not reach its database; nothing was charged, try again",
    ))
    .with("retry-after", "2")
}

/// A SQLite database's WAL file: its path with `-wal` appended.
fn wal_of(db: &std::path::Path) -> PathBuf {
    let mut wal = db.as_os_str().to_owned();
    wal.push("-wal");
    wal.into()
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A replicated database as the origin reaches it: a file it is the
/// primary of, or a remote primary.
pub(crate) struct Primary {
    pub db: libsql::Database,
    pub is_file: bool,
}

pub(crate) async fn open(
    db: &libsql::Database,
    replicated: bool,
) -> anyhow::Result<libsql::Connection> {
    let conn = db.connect()?;
    conn.busy_timeout(Duration::from_secs(5))?;
    if replicated {
        replication::prepare_connection(&conn).await?;
    }
    Ok(conn)
}

impl Checkout {
    /// Opens the orders database (migrating it) and connections to the
    /// catalog and identity primaries.
    /// `catalog_writer` is a second handle to a remote catalog primary
    /// (none for a file this origin is the primary of).
    pub async fn open(
        orders: &std::path::Path,
        catalog: libsql::Database,
        catalog_writer: Option<libsql::Database>,
        identity: Option<db_writer::Readers>,
        settings: Settings,
    ) -> anyhow::Result<Arc<Checkout>> {
        let (orders_db, _) = orders_db::open(orders).await?;
        let orders_conn = open(&orders_db, false).await?;
        let hold_key = store::hold_key(&orders_conn).await?.into_bytes();
        let catalog_checkpoints = match catalog_writer {
            Some(db) => Checkpoints::Remote(Box::new(db)),
            None => Checkpoints::Shipper,
        };
        let catalog_writer = open(
            &catalog,
            matches!(catalog_checkpoints, Checkpoints::Shipper),
        )
        .await?;
        let seed = {
            use std::io::Read;
            let mut b = [0u8; 8];
            std::fs::File::open("/dev/urandom")?.read_exact(&mut b)?;
            u64::from_le_bytes(b) | 1
        };
        // Unnamed, unique to this process run: a restart then does not
        // inherit the leases of its previous life, it takes them over as
        // they run out (safe, as the steps are idempotent, only slower).
        let owner = settings
            .owner
            .unwrap_or_else(|| format!("pid-{}-{:08x}", std::process::id(), seed as u32));
        Ok(Arc::new(Checkout {
            // Orders commit without waiting for the disk unless a write
            // must be durable (see `saga_run`); the catalog replicates,
            // and the primary ships only what is on the disk, so every
            // catalog commit waits for it.
            orders: Db::new(
                "orders",
                orders_db,
                orders_conn,
                db_writer::Settings {
                    wal: Some(wal_of(orders)),
                    ..settings.writer.clone()
                },
                Checkpoints::Aside,
            )
            .await?,
            catalog: Db::new(
                "catalog",
                catalog,
                catalog_writer,
                db_writer::Settings {
                    wal: None,
                    ..settings.writer.clone()
                },
                catalog_checkpoints,
            )
            .await?,
            identity,
            provider: Guarded::new(settings.provider, payments::breaker::Config::default()),
            verifier: auth::Verifier::new(settings.variables_file),
            hold_key,
            webhook_secret: settings.webhook_secret,
            request_budget: settings.request_budget,
            step_timeout: settings.step_timeout,
            lease: store::Lease {
                owner,
                ms: settings.lease.as_millis().max(1) as i64,
            },
            takeovers: std::sync::atomic::AtomicU64::new(0),
            driving: std::sync::Mutex::new(HashSet::new()),
            finished: tokio::sync::Notify::new(),
            rng: std::sync::Mutex::new(seed),
            metrics: Default::default(),
        }))
    }

    /// The payment circuit breaker's state, for health checks.
    pub fn breaker(&self) -> &'static str {
        match self.provider.state() {
            payments::breaker::State::Closed => "closed",
            payments::breaker::State::Open { .. } => "open",
            payments::breaker::State::HalfOpen => "half-open",
        }
    }

    /// This process's name on the orders it drives.
    pub fn owner(&self) -> &str {
        &self.lease.owner
    }

    /// Sagas this process took over from one whose lease ran out.
    pub fn takeovers(&self) -> u64 {
        self.takeovers.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn random_unit(&self) -> f64 {
        let mut x = self.rng.lock().expect("rng lock");
        *x ^= *x << 13;
        *x ^= *x >> 7;
        *x ^= *x << 17;
        (*x >> 11) as f64 / (1u64 << 53) as f64
    }

    /// The name of an order's stock hold in the replicated catalog.
    fn hold_id(&self, order_id: &str) -> String {
        hold_id(&self.hold_key, order_id)
    }

    /// Starts the background work: resuming sagas (at once, for any a
    /// crash left in flight), publishing the outbox, expiring keys.
    pub fn start(self: &Arc<Self>) {
        let me = self.clone();
        tokio::spawn(async move { me.resume_loop().await });
        let me = self.clone();
        tokio::spawn(async move { me.outbox_loop().await });
    }

    async fn resume_loop(self: Arc<Self>) {
        let permits = Arc::new(tokio::sync::Semaphore::new(BACKGROUND_DRIVERS));
        let mut last_expiry = Instant::now() - Duration::from_secs(3600);
        loop {
            let due = self
                .orders
                .read(async |c| store::due(c, now_ms(), 256, &self.lease.owner).await)
                .await;
            match due {
                Ok(ids) => {
                    for id in ids {
                        if self.driving.lock().expect("driving lock").contains(&id) {
                            continue;
                        }
                        let Ok(permit) = permits.clone().try_acquire_owned() else {
                            break;
                        };
                        let me = self.clone();
                        tokio::spawn(async move {
                            let _permit = permit;
                            if let Err(e) = me.drive(&id, None, false).await {
                                tracing::warn!(order = id, "resuming the saga failed: {e}");
                            }
                        });
                    }
                }
                Err(e) => tracing::warn!("looking for sagas to resume failed: {e}"),
            }
            if last_expiry.elapsed() > Duration::from_secs(600) {
                last_expiry = Instant::now();
                let expired = self
                    .orders
                    .write_unsynced(|c| {
                        Box::pin(async move {
                            store::expire_keys(c, now_ms() - KEY_RETENTION_MS)
                                .await
                                .map(db_writer::Step::Commit)
                        })
                    })
                    .await;
                match expired {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(keys = n, "expired idempotency keys older than 24 h"),
                    Err(e) => tracing::warn!("expiring idempotency keys failed: {e}"),
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Publishes outbox events at least once; the consumer de-duplicates.
    async fn outbox_loop(self: Arc<Self>) {
        loop {
            let batch = self
                .orders
                .read(async |c| store::unpublished(c, 100).await)
                .await;
            let idle = match batch {
                Ok(events) if events.is_empty() => {
                    self.metrics.outbox(0, 0);
                    true
                }
                Ok(events) => {
                    // Delivered and marked in one write for the batch (the
                    // consumer de-duplicates, so a machine crash that loses
                    // it only delivers it again).
                    let n = events.len();
                    let marked = self
                        .orders
                        .write_unsynced(move |c| {
                            Box::pin(async move {
                                for e in &events {
                                    store::notify_vendors(c, e, now_ms()).await?;
                                    store::published(c, e.seq, now_ms()).await?;
                                }
                                Ok(db_writer::Step::Commit(()))
                            })
                        })
                        .await;
                    self.metrics.outbox(n, if marked.is_ok() { n } else { 0 });
                    match marked {
                        Ok(()) => n < 100,
                        Err(err) => {
                            // Not at once: the writer is overloaded or gone.
                            tracing::warn!(events = n, "publishing failed, will retry: {err}");
                            true
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!("reading the outbox failed: {e}");
                    true
                }
            };
            if idle {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }

    /// What can be checked before any of the body is read: a caller of
    /// the API must present a correctly signed token (its session is
    /// checked with the request), a webhook its signature header. A
    /// stranger's body is never buffered.
    pub fn admit(&self, path: &str, headers: &http::HeaderMap) -> Result<(), Answer> {
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        if path.starts_with("/api/v1/") {
            self.verifier
                .verify(header("authorization"), now_ms() / 1000)
                .map(drop)
                .map_err(|p| Answer::problem(p).with("cache-control", "private, no-store"))
        } else if path == "/webhooks/payments" && header("stripe-signature").is_none() {
            Err(Answer::problem(Problem::bad_request(
                "the webhook signature is not valid: no Stripe-Signature header",
            )))
        } else {
            Ok(())
        }
    }

    /// Answers a request under `/api/v1/checkout`, `/api/v1/orders` or
    /// `/webhooks/payments`; `None` for any other path.
    pub async fn handle(
        &self,
        method: &http::Method,
        path: &str,
        query: Option<&str>,
        headers: &http::HeaderMap,
        body: Bytes,
    ) -> Option<Answer> {
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let answer = match path {
            "/webhooks/payments" => {
                if method != http::Method::POST {
                    return Some(Answer::problem(Problem::method_not_allowed(
                        method.as_str(),
                        &["POST"],
                    )));
                }
                self.webhook(header("stripe-signature"), &body).await
            }
            "/api/v1/checkout" => {
                if method != http::Method::POST {
                    return Some(Answer::problem(Problem::method_not_allowed(
                        method.as_str(),
                        &["POST"],
                    )));
                }
                let key = headers.get("idempotency-key").map(|v| v.as_bytes());
                self.checkout(header("authorization"), key, &body).await
            }
            "/api/v1/orders" | "/api/v1/orders/" => {
                if method != http::Method::GET {
                    return Some(Answer::problem(Problem::method_not_allowed(
                        method.as_str(),
                        &["GET"],
                    )));
                }
                self.list(header("authorization"), query).await
            }
            p if p.starts_with("/api/v1/orders/") => {
                if method != http::Method::GET {
                    return Some(Answer::problem(Problem::method_not_allowed(
                        method.as_str(),
                        &["GET"],
                    )));
                }
                let id = &p["/api/v1/orders/".len()..];
                self.show(header("authorization"), id).await
            }
            _ => return None,
        };
        Some(answer.with("cache-control", "private, no-store"))
    }

    async fn shopper(&self, authorization: Option<&str>) -> Result<auth::Shopper, Answer> {
        let who = self
            .verifier
            .verify(authorization, now_ms() / 1000)
            .map_err(Answer::problem)?;
        let Some(identity) = &self.identity else {
            tracing::error!("checkout cannot check sessions: the origin has no --identity");
            return Err(Answer::problem(Problem::unavailable(
                "checkout cannot check sign-ins right now; try again shortly",
            )));
        };
        let conn = identity.get().map_err(internal)?;
        let live = auth::session_is_live(&conn, &who, now_ms() / 1000).await;
        identity.put(conn);
        if !live.map_err(internal)? {
            return Err(Answer::problem(auth::session_ended()));
        }
        Ok(who)
    }

    async fn checkout(
        &self,
        authorization: Option<&str>,
        key: Option<&[u8]>,
        body: &[u8],
    ) -> Answer {
        let who = match self.shopper(authorization).await {
            Ok(w) => w,
            Err(a) => return a,
        };
        if !who.roles.iter().any(|r| r == "shopper") {
            return Answer::problem(Problem::new(
                403,
                "forbidden",
                "Forbidden",
                "only shopper accounts can check out",
            ));
        }
        let key = match checkout_core::idempotency_key(key) {
            Ok(k) => k.to_string(),
            Err(p) => return Answer::problem(p),
        };
        let req = match CheckoutRequest::parse(body) {
            Ok(r) => r,
            Err(p) => return Answer::problem(p),
        };
        let digest = Sha256::digest(req.canonical()).to_vec();
        let deadline = Instant::now() + self.request_budget;
        // A key seen before: the same request gets the same answer.
        let seen = self
            .orders
            .read(async |c| store::idempotency(c, who.account, &key).await)
            .await;
        match seen {
            Ok(Some(seen)) => {
                return self
                    .replay(who.account, &key, seen, &digest, deadline)
                    .await;
            }
            Ok(None) => {}
            Err(e) => return internal(e),
        }
        // A failing provider: refuse before creating anything.
        if let Err(PayError::CircuitOpen { retry_after_secs }) = self.provider.check() {
            return Answer::problem(Problem::unavailable(
                "payments are failing right now, so checkout is paused; nothing was charged and \
                 your cart is unchanged, try again shortly",
            ))
            .with("retry-after", retry_after_secs.max(1).to_string());
        }
        let priced = self
            .catalog
            .read(async |c| stock::price(c, &req.items).await)
            .await;
        let (lines, currency) = match priced {
            Ok(Ok(p)) => p,
            Ok(Err(p)) => return Answer::problem(p),
            Err(e) => return internal(e),
        };
        let id = match new_order_id(now_ms()) {
            Ok(id) => id,
            Err(e) => {
                tracing::error!("checkout could not draw an order id: {e}");
                return Answer::problem(Problem::unavailable(
                    "the order service could not create an order id; nothing was charged, try again",
                ))
                .with("retry-after", "1");
            }
        };
        let shipping = serde_json::to_value(&req.shipping_address).expect("json");
        let lease = self.lease.clone();
        let order = store::NewOrder {
            id: id.clone(),
            account_id: who.account,
            idempotency_key: key.clone(),
            digest: digest.clone(),
            currency,
            lines,
            shipping,
            payment_method: req.payment_method.clone(),
        };
        // On the disk before the saga touches anything outside this
        // database (a stock hold, a payment): a machine crash must not
        // leave a hold or a charge for an order nobody remembers.
        let created = self
            .orders
            .write(move |c| {
                Box::pin(async move {
                    Ok(match store::create(c, &order, now_ms(), &lease).await? {
                        true => db_writer::Step::Commit(true),
                        // Undo the order: the key names another.
                        false => db_writer::Step::Rollback(false),
                    })
                })
            })
            .await;
        match created {
            Ok(true) => {}
            // Another request with this key won the race.
            Ok(false) => {
                // (Bound first: a guard in a match scrutinee would be held
                // through the arms, and replay locks the database again.)
                let seen = self
                    .orders
                    .read(async |c| store::idempotency(c, who.account, &key).await)
                    .await;
                return match seen {
                    Ok(Some(seen)) => {
                        self.replay(who.account, &key, seen, &digest, deadline)
                            .await
                    }
                    Ok(None) => internal(libsql::Error::QueryReturnedNoRows),
                    Err(e) => internal(e),
                };
            }
            Err(e) => return internal(e),
        }
        // A duplicate may have started driving it already (between our
        // commit and here): then wait for the outcome instead.
        if let Err(e) = self.drive_or_wait(&id, deadline, true).await {
            tracing::warn!(order = id, "the saga stopped on a database error: {e}");
        }
        let answer = self.answer_for(&id).await;
        let stored = std::str::from_utf8(&answer.body).unwrap_or("").to_string();
        if let Err(e) = self.remember(who.account, key, answer.status, stored).await {
            tracing::warn!(order = id, "storing the idempotent answer failed: {e}");
        }
        answer.with("location", format!("/api/v1/orders/{id}"))
    }

    /// Stores the first answer given for a key (see `store::remember`).
    async fn remember(
        &self,
        account: i64,
        key: String,
        status: u16,
        body: String,
    ) -> Result<(), libsql::Error> {
        // Lost in a machine crash, the answer is made again from the
        // order (on the disk since its creation) when the key comes back.
        self.orders
            .write_unsynced(move |c| {
                Box::pin(async move {
                    store::remember(c, account, &key, status, &body).await?;
                    Ok(db_writer::Step::Commit(()))
                })
            })
            .await
    }

    /// Drives an order until its outcome is decided or the deadline; if
    /// another task or process is driving it, waits for that instead.
    /// `leased`: this process took the lease when it created the order.
    async fn drive_or_wait(
        &self,
        id: &str,
        deadline: Instant,
        leased: bool,
    ) -> Result<(), libsql::Error> {
        let mut leased = leased;
        loop {
            let notified = self.finished.notified();
            if self.drive(id, Some(deadline), leased).await? == saga_run::Driven::Here {
                return Ok(());
            }
            leased = false;
            if Instant::now() >= deadline {
                return Ok(());
            }
            // Woken by a task of this process; another process's progress
            // is seen by looking again.
            let _ = tokio::time::timeout(Duration::from_millis(50), notified).await;
            let order = self
                .orders
                .read(async |c| store::load(c, id, None).await)
                .await?;
            if order.is_none_or(|o| o.saga.ended.or(o.saga.failed).is_some()) {
                return Ok(());
            }
        }
    }

    /// Answers a repeated key: the stored answer, or (while the first
    /// request is still running) the first's answer once it has one.
    async fn replay(
        &self,
        account: i64,
        key: &str,
        seen: store::Seen,
        digest: &[u8],
        deadline: Instant,
    ) -> Answer {
        if seen.digest != digest {
            return Answer::problem(Problem::new(
                422,
                "idempotency-key-reused",
                "Idempotency-Key reused",
                "this Idempotency-Key was used for a different checkout; use a new key for a new checkout",
            ));
        }
        let mut seen = seen;
        loop {
            if let Some((status, body)) = seen.response {
                let content_type = if (200..300).contains(&status) {
                    "application/json"
                } else {
                    Problem::CONTENT_TYPE
                };
                let mut answer = Answer {
                    status,
                    content_type,
                    body: body.into_bytes(),
                    headers: vec![
                        ("idempotent-replayed", "true".into()),
                        ("location", format!("/api/v1/orders/{}", seen.order_id)),
                    ],
                };
                if status == 503 {
                    answer = answer.with("retry-after", "5");
                }
                return answer;
            }
            // The first request is still working on it (or crashed before
            // answering): wait for its answer, bounded by our budget.
            let notified = self.finished.notified();
            if Instant::now() >= deadline {
                return self
                    .answer_for(&seen.order_id)
                    .await
                    .with("location", format!("/api/v1/orders/{}", seen.order_id));
            }
            let not_driven = !self
                .driving
                .lock()
                .expect("driving lock")
                .contains(&seen.order_id);
            let here = not_driven
                && matches!(
                    self.drive(&seen.order_id, Some(deadline), false).await,
                    Ok(saga_run::Driven::Here)
                );
            if here {
                // Nobody was on it (the first request's process died): it
                // was driven here; answer, and store the answer.
                let answer = self.answer_for(&seen.order_id).await;
                let body = std::str::from_utf8(&answer.body).unwrap_or("").to_string();
                let _ = self
                    .remember(account, key.to_string(), answer.status, body)
                    .await;
            } else {
                // A task here, or another origin holding the lease, is on
                // it: wait for the answer it stores.
                let _ = tokio::time::timeout(Duration::from_millis(50), notified).await;
            }
            match self
                .orders
                .read(async |c| store::idempotency(c, account, key).await)
                .await
            {
                Ok(Some(s)) => seen = s,
                Ok(None) => return internal(libsql::Error::QueryReturnedNoRows),
                Err(e) => return internal(e),
            }
        }
    }

    /// The checkout answer an order's current state gives.
    async fn answer_for(&self, id: &str) -> Answer {
        let order = match self
            .orders
            .read(async |c| store::load(c, id, None).await)
            .await
        {
            Ok(Some(o)) => o,
            Ok(None) => return internal(libsql::Error::QueryReturnedNoRows),
            Err(e) => return internal(e),
        };
        let view = view(&order, None);
        let reason = order.reason.clone().unwrap_or_default();
        // A failed order is answered as failed while its compensations
        // finish: its outcome no longer changes.
        match order.saga.ended.or(order.saga.failed) {
            Some(saga::Final::Completed) => Answer::json(201, &view),
            None => Answer::json(202, &view),
            Some(saga::Final::PaymentFailed) => Answer::problem(
                Problem::new(402, "payment-failed", "Payment failed", format!(
                    "{reason}; nothing was charged; try another payment method with a new Idempotency-Key"
                ))
                .with("order", view),
            ),
            Some(saga::Final::OutOfStock) => Answer::problem(
                Problem::new(409, "out-of-stock", "Out of stock", format!(
                    "{reason}; nothing was charged; adjust the cart and check out again"
                ))
                .with("order", view),
            ),
            Some(saga::Final::Cancelled) => Answer::problem(
                Problem::new(503, "checkout-failed", "Checkout could not complete", format!(
                    "{reason}; the order was cancelled and anything held was released; try again shortly"
                ))
                .with("order", view),
            )
            .with("retry-after", "5"),
        }
    }

    async fn show(&self, authorization: Option<&str>, id: &str) -> Answer {
        let who = match self.shopper(authorization).await {
            Ok(w) => w,
            Err(a) => return a,
        };
        let not_found = || {
            Answer::problem(Problem::not_found(format!(
                "you have no order {id:?}; GET /api/v1/orders lists yours"
            )))
        };
        if checkout_core::order_id(id).is_none() {
            return not_found();
        }
        let found = self
            .orders
            .read(
                async |c| match store::load(c, id, Some(who.account)).await? {
                    Some(order) => Ok(Some((store::history(c, id).await?, order))),
                    None => Ok(None),
                },
            )
            .await;
        match found {
            Ok(Some((h, order))) => Answer::json(200, &view(&order, Some(h))),
            Ok(None) => not_found(),
            Err(e) => internal(e),
        }
    }

    async fn list(&self, authorization: Option<&str>, query: Option<&str>) -> Answer {
        let who = match self.shopper(authorization).await {
            Ok(w) => w,
            Err(a) => return a,
        };
        let mut limit = 20i64;
        let mut before = None;
        for (k, v) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            match &*k {
                "limit" => match v.parse::<i64>() {
                    Ok(n) if (1..=100).contains(&n) => limit = n,
                    _ => {
                        return Answer::problem(Problem::invalid_parameter(
                            "limit",
                            "limit must be a whole number from 1 to 100",
                        ));
                    }
                },
                "before" => match checkout_core::order_id(&v) {
                    Some(id) => before = Some(id.to_string()),
                    None => {
                        return Answer::problem(Problem::invalid_parameter(
                            "before",
                            "before must be an order id from a previous page",
                        ));
                    }
                },
                other => {
                    return Answer::problem(Problem::invalid_parameter(
                        other,
                        "unknown parameter; use limit and before",
                    ));
                }
            }
        }
        let orders = self
            .orders
            .read(async |c| store::list(c, who.account, before.as_deref(), limit).await)
            .await;
        match orders {
            Ok(orders) => {
                let next = (orders.len() as i64 == limit)
                    .then(|| {
                        orders
                            .last()
                            .map(|o| format!("/api/v1/orders?limit={limit}&before={}", o.id))
                    })
                    .flatten();
                Answer::json(
                    200,
                    &serde_json::json!({
                        "orders": orders.iter().map(|o| view(o, None)).collect::<Vec<_>>(),
                        "next": next,
                    }),
                )
            }
            Err(e) => internal(e),
        }
    }

    /// A provider event: verified, de-duplicated, and used to learn an
    /// order's PaymentIntent when the authorisation's answer was lost. The
    /// saga never moves backwards on an event, so their order is moot.
    async fn webhook(&self, signature: Option<&str>, body: &[u8]) -> Answer {
        if self.webhook_secret.is_empty() {
            return Answer::problem(Problem::unavailable("webhooks are not configured"));
        }
        if body.len() > MAX_WEBHOOK_BYTES {
            return Answer::problem(Problem::payload_too_large(MAX_WEBHOOK_BYTES as u64));
        }
        if let Err(e) = webhook::verify(
            signature.unwrap_or(""),
            body,
            &self.webhook_secret,
            now_ms() / 1000,
        ) {
            tracing::warn!("refused a webhook: {e}");
            return Answer::problem(Problem::bad_request(format!(
                "the webhook signature is not valid: {e}"
            )));
        }
        let event: webhook::Event = match serde_json::from_slice(body) {
            Ok(e) => e,
            Err(e) => return Answer::problem(Problem::bad_request(format!("not an event: {e}"))),
        };
        let pi = event.payment_intent();
        // The event's record and what it teaches about its order, in one
        // write. A machine crash may lose it after the 200: the saga then
        // finds the order's intents at the provider itself.
        let recorded = self
            .orders
            .write_unsynced(move |c| {
                Box::pin(async move {
                    let first = store::webhook_seen(
                        c,
                        &event.id,
                        &event.kind,
                        pi.as_ref().map(|p| p.id.as_str()),
                        event.created,
                        now_ms(),
                    )
                    .await?;
                    if !first {
                        return Ok(db_writer::Step::Commit(false));
                    }
                    if let Some(pi) = pi
                        && let Some(order) = pi.metadata.get("order_id")
                        && checkout_core::order_id(order).is_some()
                    {
                        let detail = format!("{} ({}, {:?})", event.kind, pi.id, pi.status);
                        store::webhook_for_order(c, order, &pi.id, &detail, now_ms()).await?;
                    }
                    Ok(db_writer::Step::Commit(true))
                })
            })
            .await;
        match recorded {
            Ok(false) => Answer::json(
                200,
                &serde_json::json!({"received": true, "duplicate": true}),
            ),
            Ok(true) => Answer::json(200, &serde_json::json!({"received": true})),
            Err(e) => internal(e),
        }
    }
}

/// An order as the shopper sees it.
fn view(o: &store::Order, history: Option<Vec<serde_json::Value>>) -> serde_json::Value {
    let mut v = serde_json::json!({
        "id": o.id,
        "status": o.saga.status(),
        "final": o.saga.ended.is_some(),
        "currency": o.currency,
        "total_minor": o.total_minor,
        "lines": o.lines.iter().map(|l| serde_json::json!({
            "product_id": l.product_id, "title": l.title, "quantity": l.quantity,
            "unit_price_minor": l.unit_price_minor,
        })).collect::<Vec<_>>(),
        "shipping_address": o.shipping,
        "created_at_ms": o.created_at,
        "updated_at_ms": o.updated_at,
    });
    if let Some(r) = &o.reason {
        v["reason"] = r.clone().into();
    }
    if let Some(h) = history {
        v["history"] = h.into();
    }
    v
}

/// A new order's id: the time in milliseconds (12 hex digits), then 80
/// bits from the operating system's CSPRNG, so no client can guess
/// another's order from its own. Led by the time, a new order's rows land
/// at the end of every index keyed by its id (its lines, its events, its
/// outbox entries, the orders themselves) instead of on a random page of
/// each: an order writes about a fifth fewer pages (docs/benchmarks.md).
fn new_order_id(now_ms: i64) -> Result<String, getrandom::Error> {
    let mut random = [0u8; 10];
    getrandom::fill(&mut random)?;
    Ok(format!(
        "ord_{:012x}{}",
        now_ms.clamp(0, 0xffff_ffff_ffff),
        hex(&random)
    ))
}

/// The name of an order's stock hold in the replicated catalog: the
/// order's time, then a keyed hash of its id. PoPs learn when an order was
/// placed (the hold's `created_at` says as much) but never its id, and a
/// day's holds sit together in the table instead of on random pages. An
/// id from before ids carried their time is named by the hash alone, as
/// it was then, so a saga under way across an upgrade finds its hold.
fn hold_id(key: &[u8], order_id: &str) -> String {
    let mut m = Hmac::<Sha256>::new_from_slice(key).expect("any key length");
    m.update(order_id.as_bytes());
    let hash = hex(&m.finalize().into_bytes()[..16]);
    match order_id.strip_prefix("ord_") {
        Some(rest) if rest.len() == 32 && rest.is_ascii() => format!("{}{hash}", &rest[..12]),
        _ => hash,
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_ids_sort_by_time_and_carry_eighty_random_bits() {
        let t = 1_796_000_000_000;
        let earlier = new_order_id(t).unwrap();
        let (a, b) = (new_order_id(t + 1).unwrap(), new_order_id(t + 1).unwrap());
        assert!(earlier < a && earlier < b, "{earlier} {a} {b}");
        assert_ne!(a, b, "two orders in one millisecond");
        assert!(a.starts_with(&format!("ord_{:012x}", t + 1)), "{a}");
        assert_eq!(a.len(), 4 + 32);
        // The edge's check takes them.
        assert_eq!(checkout_core::order_id(&a), Some(a.as_str()));
    }

    #[test]
    fn a_hold_is_named_by_the_orders_time_and_a_keyed_hash_never_its_id() {
        let key = [7u8; 32];
        let id = "ord_019af2c3d4e5aabbccddeeff00112233";
        let hold = hold_id(&key, id);
        assert_eq!(hold, "019af2c3d4e5c0dcac54d42c60633433429dc38614d1");
        assert!(!hold.contains("aabbccddeeff00112233"), "{hold}");
        assert_ne!(hold_id(&[8u8; 32], id), hold, "the key names the hold");
        // An order placed before ids carried their time keeps the name
        // its hold was given then.
        assert_eq!(
            hold_id(&key, "ord_0123456789abcdef0123"),
            "a9632f13388984fa60fc0e5bcc840859"
        );
    }
}
