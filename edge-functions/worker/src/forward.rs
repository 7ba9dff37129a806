//! Exchanges with the origin over the Workers fetch API, bounded in time
//! and size, and the gateways built on them: checkout and orders, the
//! vendor API, and media from the object store. Each checks what it can at the edge with the rules the
//! origin applies (`checkout_core`, `vendor_core`), so a bad request never
//! costs a round trip, and passes on only the answer fields a client needs.

use crate::reply::{Fields, Reply};
use futures_util::StreamExt;
use futures_util::future::{Either, select};
use problem::Problem;
use std::time::Duration;
use worker::{Delay, Fetch, Headers, Method, Request, RequestInit};

/// Why an exchange gave no answer to pass on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failed {
    /// No connection, or it broke before the answer's head.
    Unreachable,
    /// The answer was cut short, or longer than allowed.
    CutShort,
    /// No whole answer within the wait.
    TimedOut,
}

impl Failed {
    /// What happened, as the end of "the origin ...".
    pub fn how(self) -> &'static str {
        match self {
            Failed::CutShort => "its answer was cut short or too large",
            Failed::Unreachable => "it could not be reached",
            Failed::TimedOut => "it did not answer in time",
        }
    }
}

/// A whole answer.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: Headers,
    pub body: Vec<u8>,
}

/// Sends one request and reads the whole answer (at most `max_answer`
/// bytes) within `wait`.
pub async fn exchange(
    method: Method,
    url: &str,
    fields: &[(&str, String)],
    body: Option<Vec<u8>>,
    wait: Duration,
    max_answer: usize,
) -> Result<Answer, Failed> {
    let headers = Headers::new();
    for (name, value) in fields {
        headers.set(name, value).map_err(|_| Failed::Unreachable)?;
    }
    let mut init = RequestInit::new();
    init.with_method(method).with_headers(headers);
    if let Some(body) = body {
        init.with_body(Some(
            worker::js_sys::Uint8Array::from(body.as_slice()).into(),
        ));
    }
    let request = Request::new_with_init(url, &init).map_err(|_| Failed::Unreachable)?;
    let exchange = async move {
        let mut resp = Fetch::Request(request).send().await.map_err(|e| {
            worker::console_error!("the origin could not be reached: {e}");
            Failed::Unreachable
        })?;
        let mut body = Vec::new();
        let mut stream = resp.stream().map_err(|_| Failed::CutShort)?;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|_| Failed::CutShort)?;
            if body.len() + chunk.len() > max_answer {
                return Err(Failed::CutShort);
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Answer {
            status: resp.status_code(),
            headers: resp.headers().clone(),
            body,
        })
    };
    match select(Box::pin(exchange), Delay::from(wait)).await {
        Either::Left((answer, _)) => answer,
        Either::Right(((), _)) => Err(Failed::TimedOut),
    }
}

/// How long the origin may take over an order.
const CHECKOUT_WAIT: Duration = Duration::from_secs(15);
/// How long it may take over a read or a vendor edit.
const READ_WAIT: Duration = Duration::from_secs(5);
const VENDOR_WAIT: Duration = Duration::from_secs(10);
/// Largest answer passed on (a listing page of 100 products).
const MAX_ANSWER_BYTES: usize = 4 << 20;

/// `POST /api/v1/checkout`, `GET /api/v1/orders[/{id}]`, for a verified
/// account (the gate in front has checked the token).
pub async fn checkout(
    origin: Option<String>,
    method: &str,
    target: &str,
    fields: &Fields,
    body: Vec<u8>,
) -> Result<Reply, Problem> {
    let path = target.split('?').next().unwrap_or(target);
    let route = checkout_core::Route::parse(path)?;
    let (allowed, wait) = match route {
        checkout_core::Route::Checkout => (route.method(), CHECKOUT_WAIT),
        _ => (route.method(), READ_WAIT),
    };
    if method != allowed {
        return Err(Problem::method_not_allowed(method, &[allowed]));
    }
    let body = if allowed == "POST" {
        checkout_core::idempotency_key(fields.get("idempotency-key").map(str::as_bytes))?;
        if body.len() > checkout_core::MAX_BODY_BYTES {
            return Err(Problem::payload_too_large(
                checkout_core::MAX_BODY_BYTES as u64,
            ));
        }
        checkout_core::CheckoutRequest::parse(&body)?;
        Some(body)
    } else {
        None
    };
    let origin = origin.ok_or_else(|| {
        Problem::unavailable(
            "checkout is not configured at this edge location (the origin_url variable is not set)",
        )
    })?;
    let sent = pass(
        allowed,
        &format!("{origin}{target}"),
        fields,
        &["authorization", "idempotency-key", "content-type"],
        body,
        wait,
    )
    .await;
    let answer = sent.map_err(|failed| match failed {
        Failed::TimedOut => checkout_core::timed_out(),
        other => checkout_core::unreachable(other.how()),
    })?;
    Ok(passed_on(
        answer,
        &[
            "content-type",
            "location",
            "retry-after",
            "idempotent-replayed",
        ],
    ))
}

/// `/api/v1/vendor/...`, for a verified vendor.
pub async fn vendor(
    origin: Option<String>,
    method: &str,
    target: &str,
    fields: &Fields,
    body: Vec<u8>,
) -> Result<Reply, Problem> {
    let path = target.split('?').next().unwrap_or(target);
    let route = vendor_core::Route::parse(path)?;
    if body.len() > vendor_core::MAX_BODY_BYTES {
        return Err(Problem::payload_too_large(
            vendor_core::MAX_BODY_BYTES as u64,
        ));
    }
    route.check(
        method,
        fields.get("content-type"),
        fields.get("if-match"),
        &body,
    )?;
    let origin = origin.ok_or_else(|| {
        Problem::unavailable(
            "the vendor API is not configured at this edge location (the origin_url variable is not set)",
        )
    })?;
    let body = (!matches!(method, "GET" | "HEAD")).then_some(body);
    let answer = pass(
        method,
        &format!("{origin}{target}"),
        fields,
        &["authorization", "content-type", "if-match"],
        body,
        VENDOR_WAIT,
    )
    .await
    .map_err(|failed| {
        let how = failed.how();
        // A timed-out change may still have been applied: the vendor
        // re-reads before retrying, and If-Match keeps a retry from
        // applying twice.
        Problem::unavailable(format!(
            "the vendor API is unavailable from here right now: the origin {how}. \
             Read the product again before retrying a change; shoppers can still browse."
        ))
        .with("retry_after", 5)
    })?;
    Ok(passed_on(
        answer,
        &["content-type", "etag", "location", "retry-after", "allow"],
    ))
}

async fn pass(
    method: &str,
    url: &str,
    fields: &Fields,
    forwarded: &[&str],
    body: Option<Vec<u8>>,
    wait: Duration,
) -> Result<Answer, Failed> {
    let sent: Vec<(&str, String)> = forwarded
        .iter()
        .filter_map(|name| fields.get(name).map(|v| (*name, v.to_string())))
        .collect();
    let method = Method::from(method.to_string());
    exchange(method, url, &sent, body, wait, MAX_ANSWER_BYTES).await
}

/// The answer's status and body, the fields in `names`, and never stored.
fn passed_on(answer: Answer, names: &[&str]) -> Reply {
    let mut headers: Vec<(String, String)> = names
        .iter()
        .filter_map(|n| {
            answer
                .headers
                .get(n)
                .ok()
                .flatten()
                .map(|v| (n.to_string(), v))
        })
        .collect();
    headers.push(("cache-control".into(), "private, no-store".into()));
    Reply::new(answer.status, headers, answer.body)
}

/// How long the store may take over one image.
const MEDIA_WAIT: Duration = Duration::from_secs(10);
/// Largest image passed on; variants are far smaller.
const MAX_IMAGE_BYTES: usize = 8 << 20;

/// `GET` and `HEAD /media/{sha256}.webp`: the image from the object store
/// (public to read, so no credential), with its image type, `nosniff`,
/// and its name as the ETag (`media_core`); the cache in front keeps it.
pub async fn media(
    store: Option<String>,
    bucket: Option<String>,
    method: &str,
    path: &str,
) -> Result<Reply, Problem> {
    if !matches!(method, "GET" | "HEAD") {
        return Err(Problem::method_not_allowed(method, &["GET", "HEAD"]));
    }
    let name = media_core::Name::parse(path)?;
    let store = store.ok_or_else(|| {
        Problem::unavailable(
            "media are not configured at this edge location (the media_origin variable is not set)",
        )
    })?;
    let url = name.object_url(&store, &bucket.unwrap_or_default());
    let stored = exchange(Method::Get, &url, &[], None, MEDIA_WAIT, MAX_IMAGE_BYTES)
        .await
        .map_err(|failed| media_core::store_unavailable(failed.how()))?;
    media_core::store_answered(stored.status, path)?;
    let content_type = stored.headers.get("content-type").ok().flatten();
    let fields = media_core::served_fields(name, content_type.as_deref())?;
    let headers = fields
        .into_iter()
        .map(|(n, v)| (n.to_string(), v))
        .collect();
    Ok(Reply::new(200, headers, stored.body))
}
