//! Rate limits: the policies of `cdn-config/ratelimit.toml` (or the
//! deployment's `ratelimit_policies`), GCRA from `ratelimit-core`, and the
//! counters in a Durable Object, one object per budget key. An object runs
//! one request at a time and keeps its key's TAT in memory and in its
//! storage, so every request to every Worker instance counts exactly
//! (Workers KV is eventually consistent and could not). An object deletes
//! its key once the TAT has passed: idle keys cost nothing.

use crate::gate;
use crate::reply::{Fields, Reply};
use crate::vars::{self, Parsed};
use auth_core::gate as token_gate;
use problem::Problem;
use ratelimit_core::gcra::{Decision, Quota};
use ratelimit_core::headers;
use ratelimit_core::key::{self, TrustedProxies};
use ratelimit_core::limiter::{self, CasStore, Read};
use ratelimit_core::policy::{self, KeyKind, Limits, Policy};
use serde::{Deserialize, Serialize};
use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;
use worker::{DurableObject, Env, Method, Request, RequestInit, Response, State, durable_object};

/// The Durable Object namespace binding in `wrangler.toml`.
pub const BINDING: &str = "RATE_COUNTERS";
/// Longest API key value used as a budget key.
const MAX_KEY_BYTES: usize = 256;

thread_local! {
    static CUSTOM: Parsed<Limits> = const { RefCell::new(None) };
    static SHIPPED: Rc<Limits> = Rc::new(shipped());
    static TRUSTED: Parsed<TrustedProxies> = const { RefCell::new(None) };
}

fn shipped() -> Limits {
    // Checked by ratelimit-core's tests; a broken file cannot ship.
    Limits::parse(policy::SHIPPED).expect("cdn-config/ratelimit.toml is valid")
}

/// The deployment's policies when `ratelimit_policies` holds a valid file,
/// else the shipped ones (a broken override is reported and ignored).
fn limits(env: &Env) -> Rc<Limits> {
    vars::parsed(env, &CUSTOM, policy::POLICIES_VARIABLE, |text| {
        Some(Limits::parse(text).unwrap_or_else(|e| {
            worker::console_error!(
                "ratelimit: {} is invalid ({e}); using the shipped policies",
                policy::POLICIES_VARIABLE
            );
            shipped()
        }))
    })
    .unwrap_or_else(|| SHIPPED.with(Rc::clone))
}

fn trusted(env: &Env) -> Rc<TrustedProxies> {
    vars::parsed(env, &TRUSTED, policy::TRUSTED_PROXIES_VARIABLE, |text| {
        Some(TrustedProxies::parse(text).unwrap_or_else(|e| {
            worker::console_error!(
                "ratelimit: {} is invalid ({e}); trusting no proxy",
                policy::TRUSTED_PROXIES_VARIABLE
            );
            TrustedProxies::default()
        }))
    })
    .unwrap_or_default()
}

/// What the limiter decided for a request.
#[derive(Debug)]
pub enum Verdict {
    /// Go on; add these fields to the answer.
    Admit(Vec<(String, String)>),
    /// Answer this instead.
    Refuse(Reply),
}

/// Counts the request against its route's policy, if it has one.
pub async fn check(env: &Env, path: &str, fields: &Fields) -> Verdict {
    let limits = limits(env);
    let Some(policy) = limits.policy_for(path) else {
        return Verdict::Admit(Vec::new());
    };
    let budget = budget_key(env, policy, fields);
    let ask = Ask {
        key: limiter::counter_key(&policy.name, &budget),
        quota: policy.quota.quota(),
        window_secs: policy.quota.window_secs(),
        burst: policy.quota.burst(),
    };
    match count(env, &ask).await {
        Ok(Counted::Allowed {
            tat,
            remaining,
            reset_secs,
        }) => {
            let decision = Decision::Allowed {
                tat,
                remaining,
                reset_secs,
            };
            Verdict::Admit(if policy.advertises(&decision) {
                rate_fields(policy, &decision)
            } else {
                Vec::new()
            })
        }
        Ok(Counted::Denied {
            retry_after_secs,
            reset_secs,
        }) => {
            let decision = Decision::Denied {
                retry_after_secs,
                reset_secs,
            };
            let mut reply = Reply::problem(Problem::new(
                429,
                "too-many-requests",
                "Too many requests",
                format!(
                    "more than {} requests in {} s (policy {}); retry after {retry_after_secs} s",
                    policy.quota.quota(),
                    policy.quota.window_secs(),
                    policy.name
                ),
            ));
            reply.set("retry-after", retry_after_secs.to_string());
            reply.headers.extend(rate_fields(policy, &decision));
            Verdict::Refuse(reply)
        }
        Err(e) if policy.fail_open => {
            worker::console_error!(
                "ratelimit: {e}; admitting (policy {} fails open)",
                policy.name
            );
            Verdict::Admit(Vec::new())
        }
        Err(e) => {
            worker::console_error!(
                "ratelimit: {e}; refusing (policy {} fails closed)",
                policy.name
            );
            let mut reply = Reply::problem(Problem::unavailable(
                "the rate limiter cannot count requests right now; try again shortly",
            ));
            reply.set("retry-after", "1");
            Verdict::Refuse(reply)
        }
    }
}

fn rate_fields(policy: &Policy, decision: &Decision) -> Vec<(String, String)> {
    vec![
        (
            "ratelimit-policy".into(),
            headers::policy(&policy.name, &policy.quota),
        ),
        ("ratelimit".into(), headers::status(&policy.name, decision)),
    ]
}

/// Whose budget this request spends: the client address Cloudflare saw
/// (or the one a trusted proxy forwarded), a verified account, or an API
/// key header, as the policy says.
fn budget_key(env: &Env, policy: &Policy, fields: &Fields) -> String {
    // Set by Cloudflare from the connection; a client's own is replaced.
    let peer = fields.get("cf-connecting-ip").unwrap_or_default();
    let trusted = trusted(env);
    let client = if trusted.is_empty() {
        key::client_key(peer)
    } else {
        trusted
            .client(peer, fields.get("x-forwarded-for"))
            .map(key::ip_key)
    }
    .unwrap_or_else(|| "ip:unknown".to_string());
    match &policy.key {
        KeyKind::Client => client,
        KeyKind::Header(name) => match fields.get(name) {
            Some(v) if !v.is_empty() && v.len() <= MAX_KEY_BYTES => format!("hdr:{name}:{v}"),
            _ => client,
        },
        KeyKind::Account => match account(env, fields.get("authorization")) {
            Some(id) => format!("acct:{id}"),
            None => client,
        },
    }
}

/// The account of a valid bearer token (verified here too: the limiter
/// runs before the gate, and an unverified `sub` would let a client pick
/// its own budget).
fn account(env: &Env, authorization: Option<&str>) -> Option<i64> {
    authorization?;
    let settings = gate::settings(env).ok()?;
    let keys = gate::keys(env).ok()?;
    token_gate::authenticate(authorization, &keys, &settings.policy(), vars::now_secs())
        .ok()
        .flatten()
        .map(|who| who.account)
}

/// What the Worker asks a counter object.
#[derive(Debug, Serialize, Deserialize)]
struct Ask {
    key: String,
    quota: u64,
    window_secs: u64,
    burst: u64,
}

/// What the object answers.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
enum Counted {
    Allowed {
        tat: u64,
        remaining: u64,
        reset_secs: u64,
    },
    Denied {
        retry_after_secs: u64,
        reset_secs: u64,
    },
}

/// Longest a count may take before the policy's failure rule applies.
const COUNT_WAIT: Duration = Duration::from_secs(2);

async fn count(env: &Env, ask: &Ask) -> Result<Counted, String> {
    let stub = env
        .durable_object(BINDING)
        .and_then(|ns| ns.id_from_name(&ask.key)?.get_stub())
        .map_err(|e| format!("the counter objects are not bound ({BINDING}): {e}"))?;
    let body = serde_json::to_string(ask).map_err(|e| e.to_string())?;
    let mut init = RequestInit::new();
    init.with_method(Method::Post).with_body(Some(body.into()));
    let req = Request::new_with_init("https://counter.internal/count", &init)
        .map_err(|e| e.to_string())?;
    let asked = async {
        let mut resp = stub
            .fetch_with_request(req)
            .await
            .map_err(|e| e.to_string())?;
        if resp.status_code() != 200 {
            return Err(format!("the counter answered {}", resp.status_code()));
        }
        resp.json::<Counted>().await.map_err(|e| e.to_string())
    };
    match futures_util::future::select(Box::pin(asked), worker::Delay::from(COUNT_WAIT)).await {
        futures_util::future::Either::Left((counted, _)) => counted,
        futures_util::future::Either::Right(_) => Err("the counter did not answer in time".into()),
    }
}

/// One budget key's counter.
#[durable_object]
pub struct RateCounter {
    state: State,
    /// The key's TAT as stored, once read.
    tat: RefCell<Option<Option<Vec<u8>>>>,
}

/// Where the TAT is kept in the object's storage.
const TAT: &str = "tat";

impl DurableObject for RateCounter {
    fn new(state: State, _env: Env) -> Self {
        RateCounter {
            state,
            tat: RefCell::new(None),
        }
    }

    async fn fetch(&self, mut req: Request) -> worker::Result<Response> {
        let ask: Ask = req.json().await?;
        let quota = Quota::new(ask.quota, ask.window_secs, ask.burst)
            .map_err(|e| worker::Error::RustError(format!("{e:?}")))?;
        let storage = self.state.storage();
        let known = self.tat.borrow().clone();
        let current = match known {
            Some(tat) => tat,
            None => storage.get::<Vec<u8>>(TAT).await?,
        };
        // No await between reading and deciding: the object serves one
        // event at a time, so this is the compare-and-swap.
        let cell = OneKey {
            current,
            written: RefCell::new(None),
        };
        let now_ns = vars::now_ms().saturating_mul(1_000_000);
        let decision = limiter::check(&cell, &ask.key, &quota, now_ns)
            .map_err(|e| worker::Error::RustError(e.to_string()))?;
        let counted = match decision {
            Decision::Allowed {
                tat,
                remaining,
                reset_secs,
            } => {
                let stored = cell.written.into_inner().unwrap_or_default();
                *self.tat.borrow_mut() = Some(Some(stored.clone()));
                storage.put(TAT, stored).await?;
                // Forget the key once its TAT has passed.
                let idle_ms = (tat.saturating_sub(now_ns) / 1_000_000).max(1);
                storage
                    .set_alarm(Duration::from_millis(idle_ms + 1_000))
                    .await?;
                Counted::Allowed {
                    tat,
                    remaining,
                    reset_secs,
                }
            }
            Decision::Denied {
                retry_after_secs,
                reset_secs,
            } => {
                *self.tat.borrow_mut() = Some(cell.current);
                Counted::Denied {
                    retry_after_secs,
                    reset_secs,
                }
            }
        };
        Response::from_json(&counted)
    }

    async fn alarm(&self) -> worker::Result<Response> {
        *self.tat.borrow_mut() = Some(None);
        self.state.storage().delete_all().await?;
        Response::empty()
    }
}

/// The object's one key, behind `ratelimit-core`'s store trait.
struct OneKey {
    current: Option<Vec<u8>>,
    written: RefCell<Option<Vec<u8>>>,
}

impl CasStore for OneKey {
    type Cas = ();
    type Error = std::convert::Infallible;

    fn begin(&self, _key: &str) -> Result<Read<()>, Self::Error> {
        Ok(((), self.current.clone()))
    }

    fn swap(&self, _cas: (), value: Vec<u8>) -> Result<Result<(), Read<()>>, Self::Error> {
        *self.written.borrow_mut() = Some(value);
        Ok(Ok(()))
    }
}
