//! A payment provider simulator with the Stripe API's shape, for the
//! embedded default and for fault injection.
//!
//! It keeps PaymentIntents and refunds in memory and answers the calls
//! [`crate::stripe::Client`] makes, with Stripe's idempotency semantics: a
//! key's first answer is stored and replayed, the same key with other
//! parameters is an `idempotency_error`, and a key still being worked on
//! answers 409 `idempotency_key_in_use`. Test payment methods:
//! `pm_card_visa` and any other `pm_...` succeed; `pm_card_chargeCustomerFail`,
//! `pm_card_visa_chargeDeclined` and `pm_card_chargeDeclined...` are declined.
//!
//! Faults ([`Faults`], seeded so a run replays): declines, 5xx answered
//! before any work (not stored, as a retry should find nothing done), and
//! timeouts where the work is done and stored but the answer comes too late
//! for the caller. Webhooks are signed, and can be duplicated and delivered
//! out of order.

use crate::{IntentStatus, PaymentIntent, Refund, webhook};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{Request, Response, body::Incoming};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Largest request body the simulator reads.
const MAX_BODY_BYTES: usize = 64 << 10;
/// Longest a client may take to finish a TLS handshake.
const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// Objects kept before new ones are refused (503).
const MAX_OBJECTS: usize = 1_000_000;
/// Webhook deliveries queued before new events are dropped (and counted).
const MAX_PENDING_WEBHOOKS: usize = 10_000;
/// Attempts per webhook delivery.
const WEBHOOK_ATTEMPTS: u32 = 5;

/// Injected faults, in percent of calls. Seeded: the same seed and the
/// same calls in the same order give the same faults.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    pub seed: u64,
    /// Authorisations declined whatever the card.
    pub decline_percent: u32,
    /// Calls answered 500 before doing anything.
    pub error_percent: u32,
    /// Calls done (and stored) but answered only after `hang_ms`.
    pub timeout_percent: u32,
    pub hang_ms: u64,
    /// Webhooks delivered twice.
    pub duplicate_webhook_percent: u32,
    /// Each webhook waits a random 0..this before delivery, so they
    /// arrive out of order.
    pub webhook_jitter_ms: u64,
    /// Authorisations that can never be captured (every capture is a 500,
    /// as for an intent stuck at the provider): the caller must give up
    /// and void them.
    pub capture_fail_percent: u32,
}

/// How the simulator runs.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub faults: Faults,
    /// Where events are POSTed, if anywhere.
    pub webhook_url: Option<String>,
    pub webhook_secret: String,
}

/// Totals, for tests and the operator (`GET /_sim/stats`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Stats {
    pub intents: u64,
    pub declined: u64,
    pub authorised: u64,
    pub captured: u64,
    pub canceled: u64,
    pub refunded: u64,
    pub injected_errors: u64,
    pub injected_timeouts: u64,
    pub idempotent_replays: u64,
    pub webhooks_sent: u64,
    pub webhooks_failed: u64,
    pub webhooks_dropped: u64,
}

struct Stored {
    /// What the first request sent: method, path and form, canonical.
    fingerprint: String,
    /// `None` while the first request is still being worked on.
    answer: Option<(u16, Bytes)>,
}

struct State {
    faults: Faults,
    rng: u64,
    intents: BTreeMap<String, PaymentIntent>,
    /// Refunded amount per intent.
    refunds: HashMap<String, i64>,
    idempotency: HashMap<String, Stored>,
    /// Intents picked by `capture_fail_percent`.
    stuck: std::collections::HashSet<String>,
    next_id: u64,
    stats: Stats,
}

impl State {
    fn next(&mut self) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }

    fn roll(&mut self, percent: u32) -> bool {
        percent > 0 && (self.next() % 100) < u64::from(percent)
    }

    fn id(&mut self, prefix: &str) -> String {
        self.next_id += 1;
        format!("{prefix}_sim{:010}", self.next_id)
    }
}

/// The running simulator's shared state.
pub struct Simulator {
    state: Mutex<State>,
    options: Options,
    /// Where events go; settable at run time (`POST /_sim/webhook`), as
    /// the receiver may start after the simulator.
    webhook_url: Mutex<Option<String>>,
    webhooks: tokio::sync::mpsc::Sender<Bytes>,
    events: AtomicU64,
    dropped: AtomicU64,
    metrics: Metrics,
}

/// The simulator's `/metrics`: API calls by operation and status, and
/// what it did with them (its [`Stats`]), read at scrape time.
struct Metrics {
    registry: prometheus_client::registry::Registry,
    http: edgeshop_telemetry::metrics::HttpMetrics,
    /// Operation labels made once.
    operations: edgeshop_telemetry::metrics::Bounded,
}

impl Metrics {
    fn new(sim: std::sync::Weak<Simulator>) -> Metrics {
        use edgeshop_telemetry::metrics;
        let mut registry = metrics::registry();
        let ours = registry.sub_registry_with_prefix(metrics::PREFIX);
        let http = metrics::HttpMetrics::register(ours);
        ours.register_collector(Box::new(StatsCollector(sim)));
        Metrics {
            registry,
            http,
            operations: metrics::Bounded::new(16),
        }
    }
}

struct StatsCollector(std::sync::Weak<Simulator>);

impl std::fmt::Debug for StatsCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("simulator stats")
    }
}

impl prometheus_client::collector::Collector for StatsCollector {
    fn encode(
        &self,
        mut encoder: prometheus_client::encoding::DescriptorEncoder,
    ) -> Result<(), std::fmt::Error> {
        use prometheus_client::metrics::MetricType;
        use prometheus_client::metrics::counter::ConstCounter;
        let Some(sim) = self.0.upgrade() else {
            return Ok(());
        };
        let s = sim.stats();
        let payments = [
            ("created", s.intents),
            ("declined", s.declined),
            ("authorised", s.authorised),
            ("captured", s.captured),
            ("canceled", s.canceled),
            ("refunded", s.refunded),
        ]
        .map(|(outcome, n)| ([("outcome", outcome)], ConstCounter::new(n)));
        edgeshop_telemetry::metrics::encode_rows(
            &mut encoder,
            "paysim_payments",
            "What the simulator did with payment intents, by outcome",
            None,
            MetricType::Counter,
            &payments,
        )?;
        let faults = [
            ("error", s.injected_errors),
            ("timeout", s.injected_timeouts),
        ]
        .map(|(kind, n)| ([("kind", kind)], ConstCounter::new(n)));
        edgeshop_telemetry::metrics::encode_rows(
            &mut encoder,
            "paysim_injected_faults",
            "Faults injected on purpose, by kind",
            None,
            MetricType::Counter,
            &faults,
        )?;
        let webhooks = [
            ("sent", s.webhooks_sent),
            ("failed", s.webhooks_failed),
            ("dropped", s.webhooks_dropped),
        ]
        .map(|(result, n)| ([("result", result)], ConstCounter::new(n)));
        edgeshop_telemetry::metrics::encode_rows(
            &mut encoder,
            "paysim_webhooks",
            "Webhook deliveries by result",
            None,
            MetricType::Counter,
            &webhooks,
        )
    }
}

impl Simulator {
    /// Starts the webhook sender; call inside a Tokio runtime.
    pub fn new(options: Options) -> Arc<Simulator> {
        let (tx, rx) = tokio::sync::mpsc::channel(MAX_PENDING_WEBHOOKS);
        let sim = Arc::new_cyclic(|me| Simulator {
            metrics: Metrics::new(me.clone()),
            state: Mutex::new(State {
                rng: options.faults.seed | 1,
                faults: options.faults.clone(),
                intents: BTreeMap::new(),
                refunds: HashMap::new(),
                idempotency: HashMap::new(),
                stuck: Default::default(),
                next_id: 0,
                stats: Stats::default(),
            }),
            webhook_url: Mutex::new(options.webhook_url.clone()),
            options,
            webhooks: tx,
            events: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
        });
        tokio::spawn(deliver(Arc::downgrade(&sim), rx));
        sim
    }

    pub fn stats(&self) -> Stats {
        let mut stats = self.state.lock().expect("sim lock").stats.clone();
        stats.webhooks_dropped = self.dropped.load(Ordering::Relaxed);
        stats
    }

    /// Serves plain HTTP until the listener fails.
    pub async fn serve(self: Arc<Self>, listener: tokio::net::TcpListener) -> std::io::Result<()> {
        loop {
            let (stream, _) = listener.accept().await?;
            let _ = stream.set_nodelay(true);
            tokio::spawn(self.clone().connection(stream));
        }
    }

    /// Serves HTTPS until the listener fails, as the real API does; a
    /// failed handshake ends only its own connection.
    pub async fn serve_tls(
        self: Arc<Self>,
        listener: tokio::net::TcpListener,
        tls: tokio_rustls::TlsAcceptor,
    ) -> std::io::Result<()> {
        loop {
            let (stream, _) = listener.accept().await?;
            let _ = stream.set_nodelay(true);
            let (sim, tls) = (self.clone(), tls.clone());
            tokio::spawn(async move {
                let handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.accept(stream));
                if let Ok(Ok(stream)) = handshake.await {
                    sim.connection(stream).await;
                }
            });
        }
    }

    async fn connection<S>(self: Arc<Self>, stream: S)
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let svc = hyper::service::service_fn(move |req| {
            let sim = self.clone();
            async move { Ok::<_, std::convert::Infallible>(sim.handle(req).await) }
        });
        let _ = hyper::server::conn::http1::Builder::new()
            .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
            .await;
    }

    async fn handle(self: &Arc<Self>, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let started = std::time::Instant::now();
        let operation = crate::operation(req.method(), req.uri().path());
        let route = self.metrics.operations.label(operation);
        let span = edgeshop_telemetry::server_span!(
            req.headers(),
            http.request.method = %req.method(),
            http.route = operation,
        );
        if !span.is_disabled() {
            edgeshop_telemetry::trace::rename(&span, format!("{} {operation}", req.method()));
        }
        let resp = if req.uri().path() == edgeshop_telemetry::metrics::PATH {
            let text = edgeshop_telemetry::metrics::encode(&self.metrics.registry);
            let mut r = Response::new(Full::new(Bytes::from(text)));
            r.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static(edgeshop_telemetry::metrics::CONTENT_TYPE),
            );
            r
        } else {
            tracing::Instrument::instrument(self.api(req), span.clone()).await
        };
        span.record("http.response.status_code", resp.status().as_u16());
        self.metrics
            .http
            .observe(&route, resp.status().as_u16(), started.elapsed());
        resp
    }

    async fn api(self: &Arc<Self>, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let method = req.method().clone();
        let path = req.uri().path().to_string();
        let query = req.uri().query().unwrap_or("").to_string();
        let authorised = req
            .headers()
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("Bearer sk_"));
        let key = req
            .headers()
            .get("idempotency-key")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = match Limited::new(req.into_body(), MAX_BODY_BYTES)
            .collect()
            .await
        {
            Ok(b) => b.to_bytes(),
            Err(_) => return error(413, "invalid_request_error", "body_too_large", "too big"),
        };
        if path.starts_with("/_sim/") {
            return self.admin(&method, &path, &body);
        }
        if !authorised {
            return error(
                401,
                "invalid_request_error",
                "api_key_missing",
                "send your secret key as a bearer token (sk_...)",
            );
        }
        let form: Vec<(String, String)> = form_urlencoded::parse(&body).into_owned().collect();
        let (hang, injected) = {
            let mut s = self.state.lock().expect("sim lock");
            let error_percent = s.faults.error_percent;
            let timeout_percent = s.faults.timeout_percent;
            if s.roll(error_percent) {
                s.stats.injected_errors += 1;
                (None, true)
            } else if s.roll(timeout_percent) {
                s.stats.injected_timeouts += 1;
                (Some(Duration::from_millis(s.faults.hang_ms)), false)
            } else {
                (None, false)
            }
        };
        if injected {
            return error(500, "api_error", "", "injected failure; nothing was done");
        }
        let resp = match (method == http::Method::POST, key) {
            (true, Some(key)) => self.idempotent(&key, &method, &path, &form).await,
            _ => {
                let (status, body) = self.route(&method, &path, &query, &form);
                response(status, body)
            }
        };
        if let Some(hang) = hang {
            tokio::time::sleep(hang).await;
        }
        resp
    }

    async fn idempotent(
        self: &Arc<Self>,
        key: &str,
        method: &http::Method,
        path: &str,
        form: &[(String, String)],
    ) -> Response<Full<Bytes>> {
        let mut sorted = form.to_vec();
        sorted.sort();
        let fingerprint = format!("{method} {path} {sorted:?}");
        {
            let mut s = self.state.lock().expect("sim lock");
            match s.idempotency.get(key) {
                Some(stored) if stored.fingerprint != fingerprint => {
                    return error(
                        400,
                        "idempotency_error",
                        "",
                        "Keys for idempotent requests can only be used with the same parameters they were first used with.",
                    );
                }
                Some(Stored { answer: None, .. }) => {
                    return error(
                        409,
                        "invalid_request_error",
                        "idempotency_key_in_use",
                        "There is currently another in-progress request using this Idempotent Key.",
                    );
                }
                Some(Stored {
                    answer: Some((status, body)),
                    ..
                }) => {
                    let (status, body) = (*status, body.clone());
                    s.stats.idempotent_replays += 1;
                    let mut r = response(status, body);
                    r.headers_mut().insert(
                        "idempotent-replayed",
                        http::HeaderValue::from_static("true"),
                    );
                    return r;
                }
                None => {
                    if s.idempotency.len() >= MAX_OBJECTS {
                        return error(503, "api_error", "", "the simulator is full");
                    }
                    s.idempotency.insert(
                        key.to_string(),
                        Stored {
                            fingerprint,
                            answer: None,
                        },
                    );
                }
            }
        }
        let (status, body) = self.route(method, path, "", form);
        let mut s = self.state.lock().expect("sim lock");
        if let Some(stored) = s.idempotency.get_mut(key) {
            stored.answer = Some((status, body.clone()));
        }
        response(status, body)
    }

    fn admin(&self, method: &http::Method, path: &str, body: &[u8]) -> Response<Full<Bytes>> {
        match (method.as_str(), path) {
            ("GET", "/_sim/stats") => {
                let stats = self.stats();
                response(200, Bytes::from(serde_json::to_vec(&stats).expect("json")))
            }
            ("GET", "/_sim/faults") => {
                let f = self.state.lock().expect("sim lock").faults.clone();
                response(200, Bytes::from(serde_json::to_vec(&f).expect("json")))
            }
            ("POST", "/_sim/faults") => match serde_json::from_slice::<Faults>(body) {
                Ok(f) => {
                    let mut s = self.state.lock().expect("sim lock");
                    s.rng = f.seed | 1;
                    s.faults = f.clone();
                    response(200, Bytes::from(serde_json::to_vec(&f).expect("json")))
                }
                Err(e) => error(
                    400,
                    "invalid_request_error",
                    "",
                    &format!("bad faults: {e}"),
                ),
            },
            ("POST", "/_sim/webhook") => {
                #[derive(Deserialize)]
                struct Target {
                    url: Option<String>,
                }
                match serde_json::from_slice::<Target>(body) {
                    Ok(t) if t.url.as_deref().is_none_or(|u| u.starts_with("http://")) => {
                        if t.url.is_some() && self.options.webhook_secret.is_empty() {
                            return error(
                                400,
                                "invalid_request_error",
                                "",
                                "start the simulator with a webhook secret first",
                            );
                        }
                        *self.webhook_url.lock().expect("sim lock") = t.url;
                        response(200, Bytes::from_static(b"{}"))
                    }
                    _ => error(
                        400,
                        "invalid_request_error",
                        "",
                        "send {\"url\": \"http://...\"} or {\"url\": null}",
                    ),
                }
            }
            _ => error(
                404,
                "invalid_request_error",
                "resource_missing",
                "no such admin call",
            ),
        }
    }

    /// Does the work of one API call.
    fn route(
        &self,
        method: &http::Method,
        path: &str,
        query: &str,
        form: &[(String, String)],
    ) -> (u16, Bytes) {
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        let mut s = self.state.lock().expect("sim lock");
        let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        match (method.as_str(), segments.as_slice()) {
            ("POST", ["v1", "payment_intents"]) => self.create(&mut s, form, get),
            ("GET", ["v1", "payment_intents"]) => {
                let q: HashMap<String, String> = form_urlencoded::parse(query.as_bytes())
                    .into_owned()
                    .collect();
                let limit = q
                    .get("limit")
                    .and_then(|l| l.parse::<usize>().ok())
                    .unwrap_or(10)
                    .clamp(1, 100);
                let after = q.get("starting_after").cloned().unwrap_or_default();
                let page: Vec<&PaymentIntent> = s
                    .intents
                    .range::<String, _>((
                        std::ops::Bound::Excluded(&after),
                        std::ops::Bound::Unbounded,
                    ))
                    .map(|(_, pi)| pi)
                    .take(limit + 1)
                    .collect();
                let has_more = page.len() > limit;
                // With what was refunded, for audits of a run.
                let data: Vec<_> = page
                    .into_iter()
                    .take(limit)
                    .map(|pi| {
                        let mut v = export(pi);
                        v["amount_refunded"] = s.refunds.get(&pi.id).copied().unwrap_or(0).into();
                        v
                    })
                    .collect();
                json(
                    200,
                    &serde_json::json!({"object": "list", "data": data, "has_more": has_more}),
                )
            }
            ("GET", ["v1", "payment_intents", "search"]) => {
                let q: HashMap<String, String> = form_urlencoded::parse(query.as_bytes())
                    .into_owned()
                    .collect();
                let Some(order) = q
                    .get("query")
                    .and_then(|q| q.strip_prefix("metadata['order_id']:'"))
                    .and_then(|q| q.strip_suffix('\''))
                else {
                    return json_error(
                        400,
                        "invalid_request_error",
                        "",
                        "the simulator searches by metadata['order_id']:'...' only",
                    );
                };
                let data: Vec<_> = s
                    .intents
                    .values()
                    .filter(|pi| pi.metadata.get("order_id").map(String::as_str) == Some(order))
                    .map(export)
                    .collect();
                json(
                    200,
                    &serde_json::json!({"object": "search_result", "data": data, "has_more": false}),
                )
            }
            ("GET", ["v1", "payment_intents", id]) => match s.intents.get(*id) {
                Some(pi) => json(200, &export(pi)),
                None => missing(id),
            },
            ("POST", ["v1", "payment_intents", id, action]) => {
                let id = id.to_string();
                let Some(pi) = s.intents.get(&id).cloned() else {
                    return missing(&id);
                };
                if *action == "capture" && s.stuck.contains(&id) {
                    s.stats.injected_errors += 1;
                    return json_error(
                        500,
                        "api_error",
                        "",
                        "injected: this authorisation cannot be captured",
                    );
                }
                let (next, event) = match (*action, &pi.status) {
                    ("capture", IntentStatus::RequiresCapture) => {
                        (IntentStatus::Succeeded, "payment_intent.succeeded")
                    }
                    (
                        "cancel",
                        IntentStatus::RequiresCapture
                        | IntentStatus::RequiresPaymentMethod
                        | IntentStatus::RequiresConfirmation
                        | IntentStatus::RequiresAction,
                    ) => (IntentStatus::Canceled, "payment_intent.canceled"),
                    ("capture" | "cancel", status) => {
                        return json_error(
                            400,
                            "invalid_request_error",
                            "payment_intent_unexpected_state",
                            &format!(
                                "You cannot {action} this PaymentIntent because it has a status of {}.",
                                status_name(status)
                            ),
                        );
                    }
                    _ => return missing(path),
                };
                let pi = s.intents.get_mut(&id).expect("present");
                if next == IntentStatus::Succeeded {
                    pi.amount_received = pi.amount;
                    s.stats.captured += 1;
                } else {
                    s.stats.canceled += 1;
                }
                let pi = s.intents.get_mut(&id).expect("present");
                pi.amount_capturable = 0;
                pi.status = next;
                let pi = pi.clone();
                drop(s);
                self.emit(event, export(&pi));
                json(200, &export(&pi))
            }
            ("POST", ["v1", "refunds"]) => {
                let Some(id) = get("payment_intent") else {
                    return json_error(
                        400,
                        "invalid_request_error",
                        "parameter_missing",
                        "payment_intent is required",
                    );
                };
                let Some(pi) = s.intents.get(id).cloned() else {
                    return missing(id);
                };
                if pi.status != IntentStatus::Succeeded {
                    return json_error(
                        400,
                        "invalid_request_error",
                        "payment_intent_unexpected_state",
                        "Only a captured PaymentIntent can be refunded.",
                    );
                }
                let refunded = s.refunds.get(id).copied().unwrap_or(0);
                if refunded >= pi.amount_received {
                    return json_error(
                        400,
                        "invalid_request_error",
                        "charge_already_refunded",
                        "This charge has already been refunded.",
                    );
                }
                let amount = pi.amount_received - refunded;
                s.refunds.insert(id.to_string(), pi.amount_received);
                s.stats.refunded += 1;
                let refund = Refund {
                    id: s.id("re"),
                    amount,
                    payment_intent: Some(id.to_string()),
                    status: Some("succeeded".into()),
                };
                drop(s);
                self.emit(
                    "charge.refunded",
                    serde_json::json!({"object": "charge", "payment_intent": id, "amount_refunded": pi.amount_received}),
                );
                let mut v = serde_json::to_value(&refund).expect("json");
                v["object"] = "refund".into();
                json(200, &v)
            }
            _ => json_error(
                404,
                "invalid_request_error",
                "resource_missing",
                &format!("Unrecognized request URL ({method} {path})."),
            ),
        }
    }

    fn create<'f>(
        &self,
        s: &mut State,
        form: &'f [(String, String)],
        get: impl Fn(&str) -> Option<&'f str>,
    ) -> (u16, Bytes) {
        let Some(amount) = get("amount")
            .and_then(|a| a.parse::<i64>().ok())
            .filter(|a| *a > 0)
        else {
            return json_error(
                400,
                "invalid_request_error",
                "parameter_invalid_integer",
                "amount must be a positive integer",
            );
        };
        let Some(currency) = get("currency").filter(|c| c.len() == 3) else {
            return json_error(
                400,
                "invalid_request_error",
                "parameter_missing",
                "currency must be a three-letter ISO code",
            );
        };
        let Some(method) = get("payment_method").filter(|m| m.starts_with("pm_")) else {
            return json_error(
                400,
                "invalid_request_error",
                "resource_missing",
                "payment_method must be a PaymentMethod id (pm_...)",
            );
        };
        if s.intents.len() >= MAX_OBJECTS {
            return json_error(503, "api_error", "", "the simulator is full");
        }
        let manual = get("capture_method") == Some("manual");
        let confirm = get("confirm") == Some("true");
        let metadata: BTreeMap<String, String> = form
            .iter()
            .filter_map(|(k, v)| {
                let name = k.strip_prefix("metadata[")?.strip_suffix(']')?;
                Some((name.to_string(), v.clone()))
            })
            .collect();
        let id = s.id("pi");
        s.stats.intents += 1;
        let mut pi = PaymentIntent {
            id: id.clone(),
            status: IntentStatus::RequiresConfirmation,
            amount,
            currency: currency.to_ascii_lowercase(),
            amount_capturable: 0,
            amount_received: 0,
            metadata,
        };
        if !confirm {
            s.intents.insert(id, pi.clone());
            return json(200, &export(&pi));
        }
        let decline_percent = s.faults.decline_percent;
        let declined = method.starts_with("pm_card_visa_chargeDeclined")
            || method.starts_with("pm_card_chargeDeclined")
            || method == "pm_card_chargeCustomerFail"
            || s.roll(decline_percent);
        if declined {
            pi.status = IntentStatus::RequiresPaymentMethod;
            s.stats.declined += 1;
            s.intents.insert(id, pi.clone());
            self.emit("payment_intent.payment_failed", export(&pi));
            let body = serde_json::json!({"error": {
                "type": "card_error",
                "code": "card_declined",
                "decline_code": "generic_decline",
                "message": "Your card was declined.",
                "payment_intent": export(&pi),
            }});
            return json(402, &body);
        }
        if manual {
            pi.status = IntentStatus::RequiresCapture;
            pi.amount_capturable = amount;
            s.stats.authorised += 1;
            let stuck = s.faults.capture_fail_percent;
            if s.roll(stuck) {
                s.stuck.insert(id.clone());
            }
        } else {
            pi.status = IntentStatus::Succeeded;
            pi.amount_received = amount;
            s.stats.captured += 1;
        }
        s.intents.insert(id, pi.clone());
        self.emit(
            if manual {
                "payment_intent.amount_capturable_updated"
            } else {
                "payment_intent.succeeded"
            },
            export(&pi),
        );
        json(200, &export(&pi))
    }

    /// Queues an event for delivery; never blocks the API call (and takes
    /// no lock: it runs with the state locked).
    fn emit(&self, kind: &str, object: serde_json::Value) {
        if self.webhook_url.lock().expect("sim lock").is_none() {
            return;
        }
        let n = self.events.fetch_add(1, Ordering::Relaxed) + 1;
        let event = serde_json::json!({
            "id": format!("evt_sim{n:010}"), "object": "event", "type": kind,
            "created": unix_now(), "data": {"object": object},
        });
        let payload = Bytes::from(serde_json::to_vec(&event).expect("json"));
        if self.webhooks.try_send(payload).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Sends queued events: each after a random jitter (so they arrive out of
/// order), some twice, each retried a few times on failure.
async fn deliver(sim: std::sync::Weak<Simulator>, mut rx: tokio::sync::mpsc::Receiver<Bytes>) {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<Bytes>>();
    // At most this many deliveries in flight.
    let permits = Arc::new(tokio::sync::Semaphore::new(64));
    while let Some(payload) = rx.recv().await {
        let Some(this) = sim.upgrade() else { return };
        let url = this.webhook_url.lock().expect("sim lock").clone();
        let Some(url) = url else {
            continue;
        };
        let (jitter, copies) = {
            let mut s = this.state.lock().expect("sim lock");
            let jitter = match s.faults.webhook_jitter_ms {
                0 => 0,
                max => s.next() % max,
            };
            let dup = s.faults.duplicate_webhook_percent;
            (jitter, if s.roll(dup) { 2 } else { 1 })
        };
        let secret = this.options.webhook_secret.clone();
        drop(this);
        for copy in 0..copies {
            let Ok(permit) = permits.clone().acquire_owned().await else {
                return;
            };
            let (client, url, payload, secret, sim) = (
                client.clone(),
                url.clone(),
                payload.clone(),
                secret.clone(),
                sim.clone(),
            );
            tokio::spawn(async move {
                let _permit = permit;
                tokio::time::sleep(Duration::from_millis(jitter + copy * 7)).await;
                let mut ok = false;
                for attempt in 0..WEBHOOK_ATTEMPTS {
                    let signature = webhook::sign(&secret, unix_now(), &payload);
                    let req = Request::post(&url)
                        .header(
                            http::header::CONTENT_TYPE,
                            "application/json; charset=utf-8",
                        )
                        .header("stripe-signature", signature)
                        .body(Full::new(payload.clone()))
                        .expect("request");
                    let sent =
                        tokio::time::timeout(Duration::from_secs(5), client.request(req)).await;
                    if matches!(&sent, Ok(Ok(r)) if r.status().is_success()) {
                        ok = true;
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
                }
                if let Some(sim) = sim.upgrade() {
                    let mut s = sim.state.lock().expect("sim lock");
                    if ok {
                        s.stats.webhooks_sent += 1;
                    } else {
                        s.stats.webhooks_failed += 1;
                    }
                }
            });
        }
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn status_name(status: &IntentStatus) -> String {
    serde_json::to_value(status)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| "unknown".into())
}

fn export(pi: &PaymentIntent) -> serde_json::Value {
    let mut v = serde_json::to_value(pi).expect("json");
    v["object"] = "payment_intent".into();
    v["capture_method"] = "manual".into();
    v
}

fn json(status: u16, v: &serde_json::Value) -> (u16, Bytes) {
    (status, Bytes::from(serde_json::to_vec(v).expect("json")))
}

fn json_error(status: u16, kind: &str, code: &str, message: &str) -> (u16, Bytes) {
    json(
        status,
        &serde_json::json!({"error": {"type": kind, "code": code, "message": message}}),
    )
}

fn missing(id: &str) -> (u16, Bytes) {
    json_error(
        404,
        "invalid_request_error",
        "resource_missing",
        &format!("No such object: '{id}'"),
    )
}

fn response(status: u16, body: Bytes) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body));
    *r.status_mut() = http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::OK);
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    r
}

fn error(status: u16, kind: &str, code: &str, message: &str) -> Response<Full<Bytes>> {
    let (status, body) = json_error(status, kind, code, message);
    response(status, body)
}
