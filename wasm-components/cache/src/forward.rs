//! Going forward to the app, storing what comes back, and building the
//! responses the cache gives.

use crate::represent::{self, Asked};
use crate::store::{self, Store};
use crate::{lines, now_ms};
use bytes::Bytes;
use cache_core::encoding::{self, Coding};
use cache_core::entry::Entry;
use cache_core::freshness::{self, Received};
use cache_core::status::Outcome;
use cache_core::storable::{self, ResponseFacts};
use cache_core::{CacheControl, key, tags};
use http_body_util::BodyExt;
use spin_sdk::http::{IntoResponse, Request};
use spin_sdk::wasip3::http::types::ErrorCode;

/// Request headers the app sees on a cacheable request: anything else
/// could change a response without being part of its key. A header a
/// stored response's `Vary` names is passed on as well, except
/// `Accept-Encoding`: the app is always asked for identity, and the cache
/// does the coding.
const FORWARDED: &[&str] = &[
    "accept",
    "accept-language",
    "authorization",
    "cookie",
    "traceparent",
    "tracestate",
];
/// Prefixes of headers set by the host and the auth middleware, never by
/// the client (both strip client-sent ones).
const FORWARDED_PREFIXES: &[&str] = &["spin-", "edgeshop-auth-"];
/// Response headers never stored: per connection, or this cache's own.
const NOT_STORED: &[&str] = &[
    "connection",
    "keep-alive",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "proxy-authenticate",
    "content-length",
    "age",
    "cache-status",
    "set-cookie",
];

/// Whether a fetched response was stored, and then for how many more ms
/// it is fresh.
pub type Stored = Option<u64>;

/// What came back from the app.
pub enum Fetched {
    /// Passed through as it streams.
    Streaming(spin_sdk::http::Response),
    /// Larger than an entry: what was read, then the rest.
    Chained(http::Response<Chained>),
    /// Read whole (to be stored, or as built here): the representation
    /// in the coding the client gets.
    Buffered {
        status: u16,
        headers: Vec<(String, Vec<u8>)>,
        body: Bytes,
    },
    /// The client refuses every coding the response is stored in.
    NotAcceptable,
}

impl Fetched {
    pub fn status(&self) -> u16 {
        match self {
            Fetched::Streaming(r) => r.status().as_u16(),
            Fetched::Chained(r) => r.status().as_u16(),
            Fetched::Buffered { status, .. } => *status,
            Fetched::NotAcceptable => 406,
        }
    }
}

/// The URL as the cache keys it (see [`crate::key_target`]).
pub fn target(req: &Request) -> String {
    crate::key_target(req.uri().path_and_query().map(|p| p.as_str()))
}

/// Sends the request on untouched.
pub async fn pass(req: Request) -> Result<Fetched, ErrorCode> {
    spin_glue::chain::next(req).await.map(Fetched::Streaming)
}

/// Fetches the current response for a cacheable request and stores it when
/// it may be. Returns it (in the coding the client gets) and whether it
/// was stored.
pub async fn fill(
    req: Request,
    store: &Store,
    primary: &str,
    credentials: bool,
    coding: Option<Coding>,
) -> Result<(Fetched, Stored), ErrorCode> {
    fetch_and_store(
        req.uri(),
        req.headers(),
        store,
        primary,
        credentials,
        coding,
    )
    .await
}

async fn fetch_and_store(
    uri: &http::Uri,
    request_headers: &http::HeaderMap,
    store: &Store,
    primary: &str,
    credentials: bool,
    coding: Option<Coding>,
) -> Result<(Fetched, Stored), ErrorCode> {
    // Read before fetching: a change after this point is newer than the
    // entry, so it can never be missed.
    let as_of = store::changes_db(tags::HIGH_WATER_SQL, Vec::new()).await;
    let known_vary = store.variants(primary).unwrap_or_default();
    let (outgoing, dropped) = outgoing(uri, request_headers, &known_vary);
    let request_time = now_ms();
    let resp = spin_sdk::http::next(outgoing).await?;
    let response_time = now_ms();

    let status = resp.status().as_u16();
    let cc = CacheControl::parse(lines(resp.headers(), "cache-control"));
    let date = http_date(resp.headers(), "date");
    let expires = resp.headers().get("expires").map(|v| {
        v.to_str()
            .ok()
            .and_then(freshness::parse_http_date)
            .unwrap_or(0) // an invalid Expires is in the past
    });
    // The app saw `Accept-Encoding: identity` whatever it varies on; the
    // cache keys codings itself (below).
    let vary = key::vary_names(lines(resp.headers(), "vary")).map(|names| {
        names
            .into_iter()
            .filter(|n| n != "accept-encoding")
            .collect::<Vec<_>>()
    });
    let facts = ResponseFacts {
        status,
        lifetime: freshness::lifetime(&cc, expires, Some(date.unwrap_or(response_time))),
        cc: cc.clone(),
        set_cookie: resp.headers().contains_key("set-cookie"),
        vary_any: vary.is_none(),
        content_length: resp
            .headers()
            .get("content-length")
            .and_then(|v| v.to_str().ok()?.parse().ok()),
    };
    let tag_list = tags::parse(lines(resp.headers(), "cache-tag"));
    let keep = storable::storable(&facts, credentials, MAX_ENTRY_BYTES).is_ok()
        && tag_list.is_ok()
        && as_of.is_some()
        // The app never saw a header its Vary names: what it said cannot
        // be keyed on that header's value.
        && vary
            .as_ref()
            .is_some_and(|v| !v.iter().any(|name| dropped.contains(name)));
    if !keep {
        return Ok((Fetched::Streaming(resp), None));
    }
    let (parts, body) = resp.into_parts();
    let body = match read_up_to(body, MAX_ENTRY_BYTES as usize).await? {
        Read::Whole(body) => body,
        Read::TooLarge(prefix, rest) => {
            // Larger than an entry may be: pass on what was read and the rest.
            let body = Chained {
                prefix: Some(prefix),
                rest,
            };
            return Ok((
                Fetched::Chained(http::Response::from_parts(parts, body)),
                None,
            ));
        }
    };
    let mut headers: Vec<(String, Vec<u8>)> = parts
        .headers
        .iter()
        .filter(|(n, _)| !NOT_STORED.contains(&n.as_str()))
        .map(|(n, v)| (n.as_str().to_string(), v.as_bytes().to_vec()))
        .collect();
    let mut vary = vary.unwrap_or_default();
    let negotiated = encoding::negotiable(&headers, body.len(), cc.no_transform);
    if negotiated {
        headers = encoding::identity_fields(&headers);
        vary.push("accept-encoding".into());
        vary.sort();
    }
    if status == 200 {
        headers.push(("accept-ranges".into(), b"bytes".to_vec()));
    }
    let entry = Entry {
        primary: primary.to_string(),
        secondary: crate::secondary(&vary, request_headers, Coding::Identity),
        status,
        headers,
        body: body.to_vec(),
        response_time,
        initial_age: Received {
            request_time,
            response_time,
            date,
            age_secs: parts
                .headers
                .get("age")
                .and_then(|v| v.to_str().ok()?.trim().parse().ok()),
        }
        .initial_age(),
        lifetime: facts.lifetime.unwrap_or(0),
        as_of_change: as_of.unwrap_or(0),
        tags: tag_list.unwrap_or_default(),
    };
    let ttl = entry.lifetime.saturating_sub(entry.initial_age);
    let stored = store.put(&entry, &vary).then_some(ttl);
    // What this client gets: identity, or its coding, made once and stored
    // for the next client that asks for it.
    let served = match (negotiated, coding) {
        (false, _) | (true, Some(Coding::Identity)) => entry,
        (true, None) => return Ok((Fetched::NotAcceptable, stored)),
        (true, Some(c)) => {
            let secondary = crate::secondary(&vary, request_headers, c);
            match encoding::variant(&entry, c, secondary) {
                Some(variant) => {
                    store.put(&variant, &vary);
                    variant
                }
                None => entry,
            }
        }
    };
    Ok((
        Fetched::Buffered {
            status: served.status,
            headers: served.headers,
            body: Bytes::from(served.body),
        },
        stored,
    ))
}

/// Largest response body stored; larger ones pass through.
pub const MAX_ENTRY_BYTES: u64 = 1 << 20;

type IncomingBody = spin_sdk::wasip3::http_compat::IncomingResponseBody;

enum Read {
    Whole(Bytes),
    /// What was read before the limit, and the unread rest.
    TooLarge(Bytes, IncomingBody),
}

/// The whole body if it is at most `limit` bytes.
async fn read_up_to(mut body: IncomingBody, limit: usize) -> Result<Read, ErrorCode> {
    let mut out = Vec::new();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            out.extend_from_slice(&data);
            if out.len() > limit {
                return Ok(Read::TooLarge(Bytes::from(out), body));
            }
        }
    }
    Ok(Read::Whole(Bytes::from(out)))
}

/// A body already partly read: the part, then the rest as it streams.
pub struct Chained {
    prefix: Option<Bytes>,
    rest: IncomingBody,
}

impl http_body::Body for Chained {
    type Data = Bytes;
    type Error = ErrorCode;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, ErrorCode>>> {
        if let Some(prefix) = self.prefix.take() {
            return std::task::Poll::Ready(Some(Ok(http_body::Frame::data(prefix))));
        }
        std::pin::Pin::new(&mut self.rest).poll_frame(cx)
    }
}

/// The request the app gets: GET (a HEAD is filled with the full
/// response), no conditions (the cache answers those), only the headers
/// that cannot poison the key. Returns it and the names it dropped.
fn outgoing(
    uri: &http::Uri,
    headers: &http::HeaderMap,
    vary: &[String],
) -> (http::Request<http_body_util::Empty<Bytes>>, Vec<String>) {
    let mut builder = http::Request::builder()
        .method(http::Method::GET)
        .uri(uri.clone());
    let mut dropped = Vec::new();
    for (name, value) in headers {
        let n = name.as_str();
        let keep = n != "accept-encoding"
            && (FORWARDED.contains(&n)
                || FORWARDED_PREFIXES.iter().any(|p| n.starts_with(p))
                || vary.iter().any(|v| v == n));
        if keep {
            builder = builder.header(name, value);
        } else {
            dropped.push(n.to_string());
        }
    }
    let request = builder
        .header("accept-encoding", "identity")
        .body(http_body_util::Empty::new())
        .unwrap_or_else(|_| http::Request::new(http_body_util::Empty::new()));
    (request, dropped)
}

fn http_date(headers: &http::HeaderMap, name: &str) -> Option<u64> {
    freshness::parse_http_date(headers.get(name)?.to_str().ok()?)
}

/// Refreshes an entry served stale, once per PoP however many requests
/// see it stale: whoever takes the fill lock does it after its answer.
pub fn refresh_in_background(req: &Request, primary: &str, store: Store, coding: Coding) {
    let lock = key::lock_key(primary);
    if !store.try_lock(&lock) {
        return;
    }
    let uri = req.uri().clone();
    let headers = req.headers().clone();
    let credentials = crate::has_credentials(req.headers());
    let primary = primary.to_string();
    spin_sdk::wasip3::wit_bindgen::spawn(async move {
        let refreshed =
            fetch_and_store(&uri, &headers, &store, &primary, credentials, Some(coding)).await;
        if let Err(e) = refreshed {
            eprintln!("cache: refreshing {primary} failed: {e:?}");
        }
        store.unlock(&lock);
    });
}

/// A response to the client: the app's, with `Cache-Status`, answering
/// the client's conditions, range and method.
pub fn answer(
    fetched: Result<Fetched, ErrorCode>,
    outcome: Outcome,
    asked: &Asked,
) -> crate::Answer {
    let outcome = outcome.with_fwd_status(fetched.as_ref().ok().map(Fetched::status));
    let status_value = outcome.header_value();
    match fetched {
        Ok(Fetched::Streaming(mut resp)) => {
            if let Some(answer) = unchanged(asked, resp.status(), resp.headers(), &status_value) {
                return answer;
            }
            if let Ok(v) = http::HeaderValue::from_str(&status_value) {
                resp.headers_mut().insert("cache-status", v);
            }
            spin_glue::chain::respond(resp)
        }
        Ok(Fetched::Chained(mut resp)) => {
            if let Some(answer) = unchanged(asked, resp.status(), resp.headers(), &status_value) {
                return answer;
            }
            if let Ok(v) = http::HeaderValue::from_str(&status_value) {
                resp.headers_mut().insert("cache-status", v);
            }
            resp.into_response()
        }
        Ok(Fetched::Buffered {
            status,
            headers,
            body,
        }) => represent::whole(
            asked,
            status,
            &headers,
            &body,
            vec![("cache-status".into(), status_value)],
        ),
        Ok(Fetched::NotAcceptable) => represent::not_acceptable(status_value),
        Err(e) => {
            eprintln!("cache: the app failed: {e:?}");
            let p = problem::Problem::new(
                502,
                "bad-gateway",
                "Bad gateway",
                "the component behind the cache failed and there is no stored copy to serve; try again",
            );
            let headers = vec![
                (
                    "content-type".to_string(),
                    problem::Problem::CONTENT_TYPE.to_string(),
                ),
                ("cache-control".to_string(), "no-store".to_string()),
                ("cache-status".to_string(), status_value),
            ];
            spin_glue::http_response(p.status, &headers, p.to_json()).into_response()
        }
    }
}

/// 304 for a streamed 200 the client already has (its body is dropped
/// unread): the app may not answer conditions itself, and on a cacheable
/// request it never saw them.
fn unchanged(
    asked: &Asked,
    status: http::StatusCode,
    headers: &http::HeaderMap,
    cache_status: &str,
) -> Option<crate::Answer> {
    let etag = headers.get("etag").and_then(|v| v.to_str().ok());
    if !asked.has_current(status.as_u16(), etag) {
        return None;
    }
    let fields: Vec<(String, Vec<u8>)> = headers
        .iter()
        .map(|(n, v)| (n.as_str().to_string(), v.as_bytes().to_vec()))
        .collect();
    let mut kept = represent::as_strings(&represent::not_modified_fields(&fields));
    kept.push(("cache-status".into(), cache_status.to_string()));
    Some(spin_glue::http_response(304, &kept, Vec::new()).into_response())
}

/// A response from a stored entry, `age` ms old, answering the client's
/// conditions, range and method.
pub fn from_entry(asked: &Asked, entry: Entry, age: u64, outcome: &Outcome) -> crate::Answer {
    represent::whole(
        asked,
        entry.status,
        &entry.headers,
        &entry.body,
        vec![
            represent::age(age),
            ("cache-status".into(), outcome.header_value()),
        ],
    )
}
