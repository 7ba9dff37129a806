//! The rate-limit middleware: the outermost layer on a route (Spin 4.1
//! `dependencies.middleware`), importing and exporting
//! `wasi:http/handler@0.3.0`.
//!
//! It finds the route's policy in `cdn-config/ratelimit.toml`, works out
//! whose budget the request spends (the client address the host saw, a
//! verified account, or an API key header), and runs GCRA against that
//! key's TAT in the `ratelimit` key-value store with `wasi:keyvalue`
//! compare-and-swap, so concurrent requests in every instance of the PoP
//! count exactly. A refused request gets 429 and goes no further. The
//! decisions are in `ratelimit-core`.
//!
//! It has only what it inherits from the app component: the `ratelimit`
//! store, and the `token_*` variables for account keys.

use auth_core::{Settings, gate, settings};
use bytes::Bytes;
use http_body_util::Full;
use problem::Problem;
use ratelimit_core::gcra::Decision;
use ratelimit_core::limiter::{self, CasStore, LimitError, Read};
use ratelimit_core::policy::{KeyKind, Limits, Policy};
use ratelimit_core::{headers, key};
use spin_glue::vars::{self, Parsed};
use spin_sdk::experimental::wasi::keyvalue::{atomics, store};
use spin_sdk::http::{IntoResponse, Request};
use std::cell::RefCell;
use std::sync::OnceLock;
use tokens::KeySet;

/// The key-value store label the counters live in.
const STORE: &str = "ratelimit";
/// Longest API key value used as a budget key.
const MAX_KEY_BYTES: usize = 256;

thread_local! {
    static KEYS: Parsed<KeySet> = const { RefCell::new(None) };
}

fn limits() -> &'static Limits {
    static LIMITS: OnceLock<Limits> = OnceLock::new();
    // Checked by ratelimit-core's tests; a broken file cannot ship.
    LIMITS.get_or_init(|| {
        Limits::parse(ratelimit_core::policy::SHIPPED).expect("cdn-config/ratelimit.toml is valid")
    })
}

/// What the handler returns, whichever way it answers.
type Answer =
    Result<spin_sdk::wasip3::http::types::Response, spin_sdk::wasip3::http::types::ErrorCode>;

#[spin_sdk::http_service]
async fn handle(req: Request) -> Answer {
    let Some(policy) = limits().policy_for(req.uri().path()) else {
        return forward(req, None).await;
    };
    let budget = budget_key(&req, policy).await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let decision = store::open(STORE)
        .map_err(|e| LimitError::Store(format!("{e:?}")))
        .and_then(|bucket| {
            limiter::check(
                &Bucket(bucket),
                &format!("{}|{budget}", policy.name),
                &policy.quota,
                now,
            )
        });
    match decision {
        Ok(d @ Decision::Allowed { .. }) => forward(req, Some((policy, d))).await,
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
async fn budget_key(req: &Request, policy: &Policy) -> String {
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    // Set by the host from the connection; a client's own is dropped.
    let client = header("spin-client-addr")
        .and_then(key::client_key)
        .unwrap_or_else(|| "ip:unknown".to_string());
    match &policy.key {
        KeyKind::Client => client,
        KeyKind::Header(name) => match header(name) {
            Some(v) if !v.is_empty() && v.len() <= MAX_KEY_BYTES => format!("hdr:{name}:{v}"),
            _ => client,
        },
        KeyKind::Account => match account(header("authorization")).await {
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

/// Passes the request on, adding the `RateLimit` fields to the answer.
async fn forward(req: Request, limited: Option<(&Policy, Decision)>) -> Answer {
    match spin_sdk::http::next(req).await {
        Ok(mut resp) => {
            if let Some((policy, decision)) = limited {
                for (name, value) in rate_fields(policy, &decision) {
                    if let Ok(value) = http::HeaderValue::from_str(&value) {
                        resp.headers_mut().insert(name, value);
                    }
                }
            }
            resp.into_response()
        }
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
