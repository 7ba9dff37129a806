//! The rate-limit middleware: the outermost layer on a route (Spin 4.1
//! `dependencies.middleware`), importing and exporting
//! `wasi:http/handler@0.3.0`.
//!
//! It finds the route's policy in `cdn-config/ratelimit.toml` (or the
//! deployment's `ratelimit_policies`), works out whose budget the request
//! spends (the client address the host saw, or the one a trusted proxy
//! forwarded; a verified account; an API key header), and runs GCRA against that
//! key's TAT in the `ratelimit` key-value store with `wasi:keyvalue`
//! compare-and-swap, so concurrent requests in every instance of the PoP
//! count exactly. A refused request gets 429 and goes no further. The
//! decisions are in `ratelimit-core`.
//!
//! It has only what it inherits from the app component: the `ratelimit`
//! store, the `ratelimit_*` variables, and the `token_*` variables for
//! account keys.

use auth_core::{Settings, gate, settings};
use bytes::Bytes;
use http_body_util::Full;
use problem::Problem;
use ratelimit_core::gcra::Decision;
use ratelimit_core::key::TrustedProxies;
use ratelimit_core::limiter::{self, CasStore, LimitError, Read};
use ratelimit_core::policy::{self, KeyKind, Limits, Policy};
use ratelimit_core::{headers, key};
use spin_glue::layer::{self, Middleware, RequestFields};
use spin_glue::vars::{self, Parsed};
use spin_sdk::experimental::wasi::keyvalue::{atomics, store};
use spin_sdk::http::IntoResponse;
use spin_sdk::wasip3::http::types::Request;
use std::cell::RefCell;
use std::rc::Rc;
use tokens::KeySet;

/// Longest API key value used as a budget key.
const MAX_KEY_BYTES: usize = 256;

thread_local! {
    static KEYS: Parsed<KeySet> = const { RefCell::new(None) };
    static SHIPPED: Rc<Limits> = Rc::new(shipped());
    static CUSTOM: Parsed<Limits> = const { RefCell::new(None) };
    static TRUSTED: Parsed<TrustedProxies> = const { RefCell::new(None) };
}

/// The deployment's policies when `ratelimit_policies` holds a valid file,
/// else the shipped ones. A broken override is reported (once per text and
/// instance) and ignored: the shipped limits are safer than none.
async fn limits() -> Rc<Limits> {
    let custom = vars::parsed(&CUSTOM, policy::POLICIES_VARIABLE, |text| {
        Some(Limits::parse(text).unwrap_or_else(|e| {
            eprintln!(
                "ratelimit: {} is invalid ({e}); using the shipped policies",
                policy::POLICIES_VARIABLE
            );
            shipped()
        }))
    })
    .await;
    custom.unwrap_or_else(|| SHIPPED.with(Rc::clone))
}

fn shipped() -> Limits {
    // Checked by ratelimit-core's tests; a broken file cannot ship.
    Limits::parse(policy::SHIPPED).expect("cdn-config/ratelimit.toml is valid")
}

/// The proxies whose `X-Forwarded-For` is believed; none when unset or
/// invalid (reported).
async fn trusted() -> Rc<TrustedProxies> {
    vars::parsed(&TRUSTED, policy::TRUSTED_PROXIES_VARIABLE, |text| {
        Some(TrustedProxies::parse(text).unwrap_or_else(|e| {
            eprintln!(
                "ratelimit: {} is invalid ({e}); trusting no proxy",
                policy::TRUSTED_PROXIES_VARIABLE
            );
            TrustedProxies::default()
        }))
    })
    .await
    .unwrap_or_default()
}

/// What the handler returns, whichever way it answers.
type Answer =
    Result<spin_sdk::wasip3::http::types::Response, spin_sdk::wasip3::http::types::ErrorCode>;

struct RateLimit;

spin_glue::export_layer!(RateLimit);

impl Middleware for RateLimit {
    async fn handle(req: Request, fields: RequestFields) -> Answer {
        handle(req, fields).await
    }
}

async fn handle(req: Request, fields: RequestFields) -> Answer {
    let limits = limits().await;
    let Some(policy) = limits.policy_for(&layer::path(&req)) else {
        return forward(req, None).await;
    };
    let budget = budget_key(fields.of(&req), policy).await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let decision = store::open(limiter::STORE)
        .map_err(|e| LimitError::Store(format!("{e:?}")))
        .and_then(|bucket| {
            limiter::check(
                &Bucket(bucket),
                &limiter::counter_key(&policy.name, &budget),
                &policy.quota,
                now,
            )
        });
    match decision {
        Ok(d @ Decision::Allowed { .. }) => {
            forward(req, policy.advertises(&d).then_some((policy, d))).await
        }
        Ok(
            d @ Decision::Denied {
                retry_after_secs, ..
            },
        ) => too_many(policy, &d, retry_after_secs).into_response(),
        Err(e) if policy.fail_open => {
            eprintln!(
                "ratelimit: {e}; admitting (policy {} fails open)",
                policy.name
            );
            forward(req, None).await
        }
        Err(e) => {
            eprintln!(
                "ratelimit: {e}; refusing (policy {} fails closed)",
                policy.name
            );
            problem(
                Problem::unavailable(
                    "the rate limiter cannot count requests right now; try again shortly",
                ),
                &[("retry-after", "1".to_string())],
            )
            .into_response()
        }
    }
}

/// Whose budget this request spends.
async fn budget_key(fields: &layer::Fields, policy: &Policy) -> String {
    let header = |name: &str| layer::field(fields, &name.to_ascii_lowercase());
    // Set by the host from the connection; a client's own is dropped.
    let peer = header("spin-client-addr").unwrap_or_default();
    let trusted = trusted().await;
    let client = if trusted.is_empty() {
        key::client_key(&peer)
    } else {
        let forwarded = layer::fields_all(fields, "x-forwarded-for");
        let forwarded = (!forwarded.is_empty()).then(|| forwarded.join(","));
        trusted.client(&peer, forwarded.as_deref()).map(key::ip_key)
    }
    .unwrap_or_else(|| "ip:unknown".to_string());
    match &policy.key {
        KeyKind::Client => client,
        KeyKind::Header(name) => match header(name) {
            Some(v) if !v.is_empty() && v.len() <= MAX_KEY_BYTES => format!("hdr:{name}:{v}"),
            _ => client,
        },
        // A shop page's browser session spends the account's budget too.
        KeyKind::Account => match account(
            header("authorization")
                .or_else(|| {
                    let cookies = header("cookie")?;
                    let token = auth_core::web::cookie(&cookies, auth_core::web::ACCESS_COOKIE)?;
                    Some(format!("Bearer {token}"))
                })
                .as_deref(),
        )
        .await
        {
            Some(id) => format!("acct:{id}"),
            None => client,
        },
    }
}

/// The account of a valid bearer token (verified here too: this layer
/// runs before the auth middleware, and an unverified `sub` would let a
/// client pick its own budget).
async fn account(authorization: Option<&str>) -> Option<i64> {
    authorization?;
    let values = vars::read(&[settings::ISSUER, settings::AUDIENCE, settings::LEEWAY]).await;
    let settings = Settings::from_variables(|n| values.get(n).cloned()).ok()?;
    let keys = vars::parsed(&KEYS, settings::JWKS, |s| KeySet::from_jwks(s).ok()).await?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    gate::authenticate(authorization, &keys, &settings.policy(), now)
        .ok()
        .flatten()
        .map(|who| who.account)
}

/// Passes the request on, adding the `RateLimit` fields to the answer
/// when `limited` (an answer far from the limit of a `near-limit` policy
/// goes back as it came: adding fields means rebuilding it, about a tenth
/// of a cache hit's cost).
async fn forward(req: Request, limited: Option<(&Policy, Decision)>) -> Answer {
    match layer::next(req).await {
        Ok(resp) => match limited {
            Some((policy, decision)) => layer::with_fields(resp, &rate_fields(policy, &decision)),
            None => Ok(resp),
        },
        Err(e) => {
            eprintln!("ratelimit: the next component failed: {e:?}");
            problem(
                Problem::new(
                    502,
                    "bad-gateway",
                    "Bad gateway",
                    "the component behind the rate limiter failed; try again",
                ),
                &[],
            )
            .into_response()
        }
    }
}

fn rate_fields(policy: &Policy, decision: &Decision) -> [(&'static str, String); 2] {
    [
        (
            "ratelimit-policy",
            headers::policy(&policy.name, &policy.quota),
        ),
        ("ratelimit", headers::status(&policy.name, decision)),
    ]
}

fn too_many(policy: &Policy, decision: &Decision, wait: u64) -> http::Response<Full<Bytes>> {
    let mut extra = vec![("retry-after", wait.to_string())];
    extra.extend(rate_fields(policy, decision));
    problem(
        Problem::new(
            429,
            "too-many-requests",
            "Too many requests",
            format!(
                "more than {} requests in {} s (policy {}); retry after {wait} s",
                policy.quota.quota(),
                policy.quota.window_secs(),
                policy.name
            ),
        ),
        &extra,
    )
}

fn problem(p: Problem, extra: &[(&str, String)]) -> http::Response<Full<Bytes>> {
    let mut headers = vec![
        (
            "content-type".to_string(),
            Problem::CONTENT_TYPE.to_string(),
        ),
        ("cache-control".to_string(), "no-store".to_string()),
    ];
    headers.extend(extra.iter().map(|(k, v)| (k.to_string(), v.clone())));
    spin_glue::http_response(p.status, &headers, p.to_json())
}

/// `wasi:keyvalue` atomics behind `ratelimit-core`'s store trait.
struct Bucket(store::Bucket);

impl CasStore for Bucket {
    type Cas = atomics::Cas;
    type Error = String;

    fn begin(&self, key: &str) -> Result<Read<atomics::Cas>, String> {
        let cas = atomics::Cas::new(&self.0, key).map_err(|e| format!("{e:?}"))?;
        let current = cas.current().map_err(|e| format!("{e:?}"))?;
        Ok((cas, current))
    }

    fn swap(
        &self,
        cas: atomics::Cas,
        value: Vec<u8>,
    ) -> Result<Result<(), Read<atomics::Cas>>, String> {
        match atomics::swap(cas, &value) {
            Ok(()) => Ok(Ok(())),
            Err(atomics::CasError::CasFailed(fresh)) => {
                let current = fresh.current().map_err(|e| format!("{e:?}"))?;
                Ok(Err((fresh, current)))
            }
            Err(atomics::CasError::StoreError(e)) => Err(format!("{e:?}")),
        }
    }
}
