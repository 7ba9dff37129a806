//! Forwarding from an edge gateway (checkout, the vendor API) to the
//! origin, which owns what the gateway cannot decide: the origin's base
//! URL from the `origin_url` variable, one exchange bounded in time and
//! size, and only the answer's fields a client needs.

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use problem::Problem;
use std::time::Duration;

/// Why an exchange with the origin gave no answer to pass on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failed {
    /// No connection, or it broke before the answer's head.
    Unreachable,
    /// The answer was cut short, or longer than the gateway passes on.
    CutShort,
    /// No whole answer within the wait.
    TimedOut,
}

/// The origin's base URL, without a trailing slash; `what` names the
/// feature that needs it in the 503 when it is not configured.
pub async fn origin_url(what: &str) -> Result<String, Problem> {
    match crate::vars::get("origin_url").await {
        Some(url) if url.starts_with("http://") || url.starts_with("https://") => {
            Ok(url.trim_end_matches('/').to_string())
        }
        _ => Err(Problem::unavailable(format!(
            "{what} is not configured at this edge location (the origin_url variable is not set)"
        ))),
    }
}

/// Sends `request` and reads the whole answer (at most `max_answer`
/// bytes) within `wait`; the answer keeps its status and the fields named
/// in `passed_on`.
pub async fn exchange(
    request: http::Request<Full<Bytes>>,
    wait: Duration,
    max_answer: usize,
    passed_on: &[&'static str],
) -> Result<http::Response<Full<Bytes>>, Failed> {
    let exchange = async {
        let resp = spin_sdk::http::send(request).await?;
        let (parts, body) = resp.into_parts();
        let body = Limited::new(body, max_answer).collect().await;
        Ok::<_, spin_sdk::http::Error>((parts, body.ok().map(|b| b.to_bytes())))
    };
    let timer = spin_sdk::time::sleep(wait);
    futures::pin_mut!(exchange, timer);
    let (parts, body) = match futures::future::select(exchange, timer).await {
        futures::future::Either::Left((Ok((parts, Some(body))), _)) => (parts, body),
        futures::future::Either::Left((Ok((_, None)), _)) => return Err(Failed::CutShort),
        futures::future::Either::Left((Err(e), _)) => {
            eprintln!("the origin could not be reached: {e:?}");
            return Err(Failed::Unreachable);
        }
        futures::future::Either::Right(((), _)) => return Err(Failed::TimedOut),
    };
    let mut resp = http::Response::new(Full::new(body));
    *resp.status_mut() = parts.status;
    for name in passed_on {
        if let Some(v) = parts.headers.get(*name) {
            resp.headers_mut().insert(*name, v.clone());
        }
    }
    Ok(resp)
}

/// A problem as a response; a 401 carries the Bearer challenge
/// (RFC 6750 section 3).
pub fn problem_response(p: &Problem) -> http::Response<Full<Bytes>> {
    let mut headers = p.header_fields();
    if p.status == 401 {
        headers.push(("www-authenticate".to_string(), "Bearer".to_string()));
    }
    crate::http_response(p.status, &headers, p.to_json())
}
