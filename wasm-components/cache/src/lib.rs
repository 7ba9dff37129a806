//! The cache middleware: a shared HTTP cache (RFC 9111) between the auth
//! middleware and the app, importing and exporting
//! `wasi:http/handler@0.3.0` (Spin 4.1 `dependencies.middleware`).
//!
//! Responses live in the `cache` key-value store of the PoP. An entry is
//! judged by its own headers (`Cache-Control`, `Age`, stale allowances)
//! and by its `Cache-Tag`s against the replicated `changes` table of the
//! `catalog` database: a change newer than the entry makes it stale, so a
//! write at the primary purges every PoP as it replicates. Concurrent
//! misses for one URL wait for a single fetch (a compare-and-swap lock in
//! the store). Content codings are negotiated here, as a CDN does: the
//! app is asked for identity, and each coding a client asks for is made
//! once from the stored response and stored beside it. The decisions are
//! in `cache-core`; this file does the I/O.
//!
//! It is a `spin_glue::layer`: a fresh hit is answered from the few
//! request fields it reads in place, and only a request that goes further
//! is turned into spin-sdk's `http` types.
//!
//! It has only what it inherits from the app component: the `cache` store
//! and the `catalog` database.

mod forward;
mod represent;
mod store;

use cache_core::encoding::{self, Coding};
use cache_core::entry::Entry;
use cache_core::freshness::{Stored, Usable};
use cache_core::status::{Forward, Outcome};
use cache_core::{CacheControl, key, storable, tags};
use forward::Fetched;
use represent::Asked;
use spin_glue::layer::{self, Middleware, RequestFields};
use spin_sdk::http::{FromRequest, Request};
use spin_sdk::wasip3::http::types::{ErrorCode, Method, Response};
use std::time::Duration;
use store::Store;

/// What the handler returns, whichever way it answers.
type Answer = Result<Response, ErrorCode>;

/// Longest a fetch may take when a stale copy could stand in for it
/// (`stale-if-error` also covers an app that does not answer).
const STALE_IF_ERROR_WAIT: Duration = Duration::from_secs(3);
/// Longest a request waits for another's fetch of the same URL before
/// going itself; short enough that waiting and then fetching still fits
/// a request's deadline.
const MAX_COLLAPSE_WAIT: Duration = Duration::from_secs(2);

pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

struct Cache;

spin_glue::export_layer!(Cache);

impl Middleware for Cache {
    async fn handle(req: layer::Request, fields: RequestFields) -> Answer {
        // A fresh hit reads a few fields of the request where it is; only
        // a request that goes further is turned into spin-sdk's types.
        if let Some(answer) = fresh_hit(&req, &fields).await {
            return answer;
        }
        handle(Request::from_request(req)?).await
    }
}

/// The answer to `req` from a fresh stored entry it may use, if there is
/// one; anything else (a miss, a stale entry, a lock to wait for) is left
/// to [`handle`], which looks again.
async fn fresh_hit(req: &layer::Request, fields: &RequestFields) -> Option<Answer> {
    let method = match req.get_method() {
        Method::Get => "GET",
        Method::Head => "HEAD",
        _ => return None,
    };
    let fields = fields.of(req);
    let request_cc = CacheControl::parse(borrowed(&fields.lines("cache-control")));
    storable::lookup(method, &request_cc).ok()?;
    let store = Store::open().ok()?;
    let target = key_target(req.get_path_with_query().as_deref());
    let primary = key::primary(method, &target);
    let asked = Asked::of_fields(method == "HEAD", method == "GET", fields);
    let Lookup::Found(entry, judged, _) = lookup(&store, &primary, fields, &asked).await else {
        return None;
    };
    let Usable::Fresh { ttl } = judged.usable else {
        return None;
    };
    if has_credentials(fields) && !storable::reusable_with_credentials(&judged.cc) {
        return None;
    }
    Some(hit(&asked, entry, &judged, ttl as i64, None))
}

/// What a request's key is made of: its path and query, as the client
/// sent them. Not its authority: a PoP serves one app, which Spin routes by
/// path alone, so every `Host` gets the same answer, and a client choosing
/// `Host` values could otherwise grow the cache (and push others' entries
/// out) with copies of one page.
pub(crate) fn key_target(path_and_query: Option<&str>) -> String {
    path_and_query.unwrap_or("/").to_string()
}

/// Request fields by name, from spin-sdk's `http` types or from the
/// `wasi:http` fields themselves (a hit reads only the few it needs).
pub(crate) trait FieldLines {
    /// Every line of field `name` that is text.
    fn lines(&self, name: &str) -> Vec<String>;
    fn has(&self, name: &str) -> bool;
}

impl FieldLines for http::HeaderMap {
    fn lines(&self, name: &str) -> Vec<String> {
        lines(self, name).into_iter().map(str::to_string).collect()
    }
    fn has(&self, name: &str) -> bool {
        self.contains_key(name)
    }
}

impl FieldLines for layer::Fields {
    fn lines(&self, name: &str) -> Vec<String> {
        // As `HeaderValue::to_str` reads them, so both forms key alike.
        let text = |v: &[u8]| v.iter().all(|&b| b == b'\t' || (0x20..0x7f).contains(&b));
        self.get(name)
            .into_iter()
            .filter(|v| text(v))
            .filter_map(|v| String::from_utf8(v).ok())
            .collect()
    }
    fn has(&self, name: &str) -> bool {
        layer::Fields::has(self, name)
    }
}

pub(crate) fn borrowed(lines: &[String]) -> Vec<&str> {
    lines.iter().map(String::as_str).collect()
}

async fn handle(req: Request) -> Answer {
    let method = req.method().as_str().to_string();
    let asked = Asked::of(&req);
    let request_cc = CacheControl::parse(lines(req.headers(), "cache-control"));
    let target = forward::target(&req);
    if let Err(reason) = storable::lookup(&method, &request_cc) {
        let fetched = forward::pass(req).await;
        if let Ok(f) = &fetched
            && storable::invalidates(&method, f.status())
            && let Ok(store) = Store::open()
        {
            // A successful write: what was stored for its URL is out of date.
            store.forget(&key::primary("GET", &target));
        }
        return forward::answer(fetched, Outcome::bypass(reason.detail()), &asked);
    }
    let Ok(store) = Store::open() else {
        return forward::answer(
            forward::pass(req).await,
            Outcome::bypass("store-unavailable"),
            &asked,
        );
    };
    let primary = key::primary(&method, &target);
    let credentials = has_credentials(req.headers());
    let started = std::time::Instant::now();
    let mut why = Forward::UriMiss;
    let mut fallback = None;
    match lookup(&store, &primary, req.headers(), &asked).await {
        Lookup::UriMiss => {}
        Lookup::VaryMiss => why = Forward::VaryMiss,
        Lookup::NotAcceptable => {
            return represent::not_acceptable(
                Outcome::Refused {
                    detail: "not-acceptable",
                }
                .header_value(),
            );
        }
        Lookup::Found(entry, judged, coding) => {
            if credentials && !storable::reusable_with_credentials(&judged.cc) {
                // Stored for anonymous requests only; this one is not.
                return forward::answer(
                    forward::pass(req).await,
                    Outcome::bypass("authorization"),
                    &asked,
                );
            }
            match judged.usable {
                Usable::Fresh { ttl } => {
                    return hit(&asked, entry, &judged, ttl as i64, None);
                }
                Usable::StaleWhileRevalidate { stale } => {
                    forward::refresh_in_background(&req, &primary, store, coding);
                    return hit(
                        &asked,
                        entry,
                        &judged,
                        -(stale as i64),
                        Some("stale-while-revalidate"),
                    );
                }
                Usable::Stale { if_error, .. } => {
                    why = Forward::Stale;
                    fallback = if_error.then_some((entry, judged));
                }
                Usable::MustValidate => why = Forward::Miss,
            }
        }
    }

    // Go forward: one request per URL fetches, the others wait for it,
    // unless its responses could not be stored lately (nothing to wait for).
    let lock = key::lock_key(&primary);
    let mut waited = false;
    loop {
        if waited
            && let Some(answer) =
                stored_meanwhile(&store, &primary, &req, &asked, credentials).await
        {
            return answer;
        }
        let can_fall_back = fallback.is_some();
        if store.uncacheable(&primary) {
            let fetch = forward::fill(req, &store, &primary, credentials, asked.coding);
            let fetched = in_time(fetch, can_fall_back).await;
            return finish(&asked, fetched, why, fallback, Some("uncacheable"));
        }
        if store.try_lock(&lock) {
            // The fetch we waited for may have stored its entry and let go
            // of the lock just before we took it.
            if waited
                && let Some(answer) =
                    stored_meanwhile(&store, &primary, &req, &asked, credentials).await
            {
                store.unlock(&lock);
                return answer;
            }
            let fetch = forward::fill(req, &store, &primary, credentials, asked.coding);
            let fetched = in_time(fetch, can_fall_back).await;
            if matches!(fetched, Ok((_, None))) {
                store.mark_uncacheable(&primary);
            }
            store.unlock(&lock);
            return finish(&asked, fetched, why, fallback, None);
        }
        if started.elapsed() >= MAX_COLLAPSE_WAIT {
            // The fetch we waited for is slow: go ourselves, store nothing.
            let fetched = forward::pass(req).await.map(|f| (f, None));
            return finish(&asked, fetched, why, fallback, Some("collapse-timeout"));
        }
        spin_sdk::time::sleep(poll_interval(started.elapsed())).await;
        waited = true;
    }
}

/// The fetch's result, or a timeout once [`STALE_IF_ERROR_WAIT`] has passed
/// when a stale copy could answer instead.
async fn in_time(
    fetch: impl std::future::Future<Output = Result<(Fetched, forward::Stored), ErrorCode>>,
    can_fall_back: bool,
) -> Result<(Fetched, forward::Stored), ErrorCode> {
    if !can_fall_back {
        return fetch.await;
    }
    let timer = spin_sdk::time::sleep(STALE_IF_ERROR_WAIT);
    futures::pin_mut!(fetch, timer);
    match futures::future::select(fetch, timer).await {
        futures::future::Either::Left((fetched, _)) => fetched,
        futures::future::Either::Right(((), _)) => Err(ErrorCode::HttpResponseTimeout),
    }
}

/// The answer from an entry another request's fetch stored while this one
/// waited, if there is a fresh one this request may use.
async fn stored_meanwhile(
    store: &Store,
    primary: &str,
    req: &Request,
    asked: &Asked,
    credentials: bool,
) -> Option<Answer> {
    let Lookup::Found(entry, judged, _) = lookup(store, primary, req.headers(), asked).await else {
        return None;
    };
    let Usable::Fresh { ttl } = judged.usable else {
        return None;
    };
    (!credentials || storable::reusable_with_credentials(&judged.cc))
        .then(|| collapsed(asked, entry, &judged, ttl as i64))
}

/// Short sleeps while the fetch is likely to land soon, longer after.
fn poll_interval(waited: Duration) -> Duration {
    let ms = (waited.as_millis() as u64 / 10).clamp(2, 50);
    Duration::from_millis(ms)
}

/// An entry as judged now.
pub(crate) struct Judged {
    pub cc: CacheControl,
    pub usable: Usable,
    pub age: u64,
}

enum Lookup {
    UriMiss,
    VaryMiss,
    /// Stored in codings the client refuses, identity included.
    NotAcceptable,
    /// The entry in the coding the client gets.
    Found(Entry, Judged, Coding),
}

async fn lookup(store: &Store, primary: &str, fields: &impl FieldLines, asked: &Asked) -> Lookup {
    let Some(vary) = store.variants(primary) else {
        return Lookup::UriMiss;
    };
    let coding = if vary.iter().any(|n| n == "accept-encoding") {
        match asked.coding {
            Some(c) => c,
            None => return Lookup::NotAcceptable,
        }
    } else {
        Coding::Identity
    };
    let wanted = secondary(&vary, fields, coding);
    let entry = match store.entry(primary, &wanted) {
        Some(entry) => entry,
        // Stored as identity only so far: make this coding from it, once.
        None if coding != Coding::Identity => {
            let identity = secondary(&vary, fields, Coding::Identity);
            let Some(variant) = store
                .entry(primary, &identity)
                .and_then(|base| encoding::variant(&base, coding, wanted))
            else {
                return Lookup::VaryMiss;
            };
            store.put(&variant, &vary);
            variant
        }
        None => return Lookup::VaryMiss,
    };
    let judged = judge(&entry, now_ms()).await;
    Lookup::Found(entry, judged, coding)
}

/// The secondary key of a request for the coding it gets: the values of
/// the headers `vary` names, with `Accept-Encoding` keyed by the coding
/// negotiated rather than the client's spelling of it, so every browser
/// shares one brotli entry.
pub(crate) fn secondary(vary: &[String], fields: &impl FieldLines, coding: Coding) -> String {
    let values: Vec<Vec<String>> = vary
        .iter()
        .map(|name| match name.as_str() {
            "accept-encoding" => vec![coding.token().to_string()],
            _ => fields.lines(name),
        })
        .collect();
    key::secondary(vary, |name| {
        vary.iter()
            .position(|n| n == name)
            .map(|i| borrowed(&values[i]))
            .unwrap_or_default()
    })
}

/// What may be done with `entry` at `now`: its own freshness, unless one
/// of its tags changed after it was stored.
async fn judge(entry: &Entry, now: u64) -> Judged {
    let cc = CacheControl::parse(header_values(entry, "cache-control"));
    let stored = Stored {
        cc: cc.clone(),
        lifetime: entry.lifetime,
        initial_age: entry.initial_age,
        response_time: entry.response_time,
    };
    let age = stored.age(now);
    let mut usable = stored.usable(now);
    if !matches!(usable, Usable::Stale { .. }) && changed_since(entry).await {
        // Out of date, but still the last good copy if the app fails.
        let if_error = !cc.forbids_stale()
            && cc
                .stale_if_error
                .is_some_and(|a| age <= entry.lifetime + a * 1000);
        usable = Usable::Stale {
            stale: age.saturating_sub(entry.lifetime),
            if_error,
        };
    }
    Judged { cc, usable, age }
}

/// Whether any of the entry's tags changed after it was stored. Unknown
/// (the database cannot be read) counts as changed.
async fn changed_since(entry: &Entry) -> bool {
    if entry.tags.is_empty() {
        return false;
    }
    let params = entry
        .tags
        .iter()
        .map(|t| edge_sql::SqlValue::Text(t.clone()))
        .collect();
    match store::changes_db(&tags::newest_change_sql(entry.tags.len()), params).await {
        Some(newest) => tags::invalidated(entry.as_of_change, newest),
        None => true,
    }
}

/// Answers from the cache.
fn hit(
    asked: &Asked,
    entry: Entry,
    judged: &Judged,
    ttl_ms: i64,
    detail: Option<&'static str>,
) -> Answer {
    let outcome = Outcome::Hit {
        ttl_secs: ttl_ms / 1000,
        detail,
    };
    forward::from_entry(asked, entry, judged.age, &outcome)
}

/// Answers from the entry another request's fetch just stored.
fn collapsed(asked: &Asked, entry: Entry, judged: &Judged, ttl_ms: i64) -> Answer {
    let outcome = Outcome::Forwarded {
        why: Forward::Miss,
        status: Some(entry.status),
        stored: false,
        collapsed: true,
        ttl_secs: Some(ttl_ms / 1000),
        detail: None,
    };
    forward::from_entry(asked, entry, judged.age, &outcome)
}

/// The answer after going forward: the app's, or on failure the stale copy
/// `fallback` when `stale-if-error` allows it.
fn finish(
    asked: &Asked,
    fetched: Result<(Fetched, forward::Stored), ErrorCode>,
    why: Forward,
    fallback: Option<(Entry, Judged)>,
    detail: Option<&'static str>,
) -> Answer {
    let failed_status = match &fetched {
        Ok((f, _)) if f.status() >= 500 => Some(f.status()),
        Ok(_) => None,
        Err(ErrorCode::HttpResponseTimeout) => Some(504),
        Err(_) => Some(502),
    };
    if let (Some(status), Some((entry, judged))) = (failed_status, fallback) {
        let outcome = Outcome::Forwarded {
            why,
            status: Some(status),
            stored: false,
            collapsed: false,
            ttl_secs: Some((entry.lifetime as i64 - judged.age as i64) / 1000),
            detail: Some("stale-if-error"),
        };
        return forward::from_entry(asked, entry, judged.age, &outcome);
    }
    let mut outcome = Outcome::forwarded(why);
    if let Outcome::Forwarded {
        stored,
        ttl_secs,
        detail: d,
        ..
    } = &mut outcome
    {
        if let Ok((_, Some(ttl))) = &fetched {
            *stored = true;
            *ttl_secs = Some(*ttl as i64 / 1000);
        }
        *d = detail;
    }
    forward::answer(fetched.map(|(f, _)| f), outcome, asked)
}

/// Credentials of any kind: a bearer token (verified or not), the
/// identity the auth middleware vouched for, or a cookie.
pub(crate) fn has_credentials(fields: &impl FieldLines) -> bool {
    ["authorization", "edgeshop-auth-account", "cookie"]
        .iter()
        .any(|h| fields.has(h))
}

pub(crate) fn lines<'a>(headers: &'a http::HeaderMap, name: &str) -> Vec<&'a str> {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect()
}

fn header_values<'a>(entry: &'a Entry, name: &str) -> Vec<&'a str> {
    entry
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .filter_map(|(_, v)| std::str::from_utf8(v).ok())
        .collect()
}
