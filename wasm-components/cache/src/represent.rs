//! Responses the cache gives, whichever way it got the representation:
//! 304 when the client's copy is current, 206 or 416 for a byte range,
//! headers only for HEAD, and otherwise the body with its length.
//!
//! Every path goes through here, stored or not, so `If-None-Match`, `Range`
//! and HEAD behave the same on a hit, a miss and a response that could
//! not be stored (RFC 9110 §13.2.2 orders them: conditions, then range).

use crate::Answer;
use crate::FieldLines;
use cache_core::encoding::{self, Coding};
use cache_core::range::{self, RangeAnswer};
use cache_core::{conditional, freshness};
use spin_sdk::http::Request;

/// What the client asked for, read once from its request.
pub struct Asked {
    pub head: bool,
    pub get: bool,
    if_none_match: Vec<String>,
    range: Option<String>,
    if_range: Option<String>,
    /// The coding it gets where the cache negotiates; `None` when it
    /// refuses all of ours, identity included.
    pub coding: Option<Coding>,
}

impl Asked {
    pub fn of(req: &Request) -> Asked {
        Asked::of_fields(
            req.method() == http::Method::HEAD,
            req.method() == http::Method::GET,
            req.headers(),
        )
    }

    /// What a `head` or `get` request with `fields` asks for.
    pub fn of_fields(head: bool, get: bool, fields: &impl FieldLines) -> Asked {
        let first = |name: &str| fields.lines(name).into_iter().next();
        Asked {
            head,
            get,
            if_none_match: fields.lines("if-none-match"),
            range: first("range"),
            if_range: first("if-range"),
            coding: encoding::negotiate(crate::borrowed(&fields.lines("accept-encoding"))),
        }
    }

    /// Whether the client already holds the representation tagged `etag`
    /// (only GET and HEAD are conditional here; a cache never turns an
    /// unsafe request into 304).
    pub fn has_current(&self, status: u16, etag: Option<&str>) -> bool {
        (self.get || self.head)
            && status == 200
            && conditional::not_modified(self.if_none_match.iter().map(String::as_str), etag)
    }
}

/// Fields a 304 carries from the 200 it stands for (RFC 9110 §15.4.5).
const NOT_MODIFIED_FIELDS: &[&str] = &[
    "cache-control",
    "content-location",
    "date",
    "etag",
    "expires",
    "vary",
    "cache-tag",
];

pub fn not_modified_fields(headers: &[(String, Vec<u8>)]) -> Vec<(String, Vec<u8>)> {
    headers
        .iter()
        .filter(|(n, _)| NOT_MODIFIED_FIELDS.contains(&n.as_str()))
        .cloned()
        .collect()
}

/// The response for a whole representation, answering the client's
/// conditions, range and method; `extra` fields (`Age`, `Cache-Status`)
/// go on whatever is sent.
pub fn whole(
    asked: &Asked,
    status: u16,
    headers: &[(String, Vec<u8>)],
    body: &[u8],
    extra: Vec<(String, String)>,
) -> Answer {
    let etag = field(headers, "etag");
    if asked.has_current(status, etag) {
        let mut fields = as_strings(&not_modified_fields(headers));
        fields.extend(extra);
        return respond(304, fields, Vec::new());
    }
    let mut fields = as_strings(headers);
    fields.extend(extra);
    let len = body.len() as u64;
    if asked.get && status == 200 {
        match range::evaluate(asked.range.as_deref(), asked.if_range.as_deref(), etag, len) {
            RangeAnswer::Full => {}
            RangeAnswer::Partial { start, end } => {
                fields.push((
                    "content-range".into(),
                    range::content_range(start, end, len),
                ));
                let part = body[start as usize..=end as usize].to_vec();
                fields.push(("content-length".into(), part.len().to_string()));
                return respond(206, fields, part);
            }
            RangeAnswer::Unsatisfiable => {
                return unsatisfiable(len, fields);
            }
        }
    }
    if asked.head {
        // No Content-Length: the host checks a body against it, and a HEAD
        // answer has none.
        return respond(status, fields, Vec::new());
    }
    fields.push(("content-length".into(), body.len().to_string()));
    respond(status, fields, body.to_vec())
}

/// 416 for a range past the end, with the representation's length.
fn unsatisfiable(len: u64, representation: Vec<(String, String)>) -> Answer {
    let p = problem::Problem::new(
        416,
        "range-not-satisfiable",
        "Range not satisfiable",
        format!(
            "the range starts past the end of the {len}-byte representation; ask for bytes 0 to {}",
            len.saturating_sub(1)
        ),
    );
    let mut fields: Vec<(String, String)> = representation
        .into_iter()
        .filter(|(n, _)| matches!(n.as_str(), "etag" | "vary" | "cache-status" | "age"))
        .collect();
    fields.push(("content-type".into(), problem::Problem::CONTENT_TYPE.into()));
    fields.push(("content-range".into(), range::unsatisfied_range(len)));
    fields.push(("cache-control".into(), "no-store".into()));
    respond(416, fields, p.to_json())
}

/// 406 for a client that refuses every coding the resource comes in.
pub fn not_acceptable(cache_status: String) -> Answer {
    let p = problem::Problem::new(
        406,
        "not-acceptable",
        "Not acceptable",
        "this resource is sent as br, gzip or identity, and the request's Accept-Encoding \
         refuses all three; accept at least one of them",
    );
    respond(
        406,
        vec![
            ("content-type".into(), problem::Problem::CONTENT_TYPE.into()),
            ("cache-control".into(), "no-store".into()),
            ("vary".into(), "accept-encoding".into()),
            ("cache-status".into(), cache_status),
        ],
        p.to_json(),
    )
}

/// `Age` in whole seconds for an entry `age_ms` old.
pub fn age(age_ms: u64) -> (String, String) {
    ("age".into(), freshness::age_field(age_ms))
}

pub fn field<'a>(headers: &'a [(String, Vec<u8>)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n == name)
        .and_then(|(_, v)| std::str::from_utf8(v).ok())
}

pub fn as_strings(headers: &[(String, Vec<u8>)]) -> Vec<(String, String)> {
    headers
        .iter()
        .filter_map(|(n, v)| Some((n.clone(), String::from_utf8(v.clone()).ok()?)))
        .collect()
}

fn respond(status: u16, headers: Vec<(String, String)>, body: Vec<u8>) -> Answer {
    use spin_sdk::http::IntoResponse;
    spin_glue::http_response(status, &headers, body).into_response()
}
