//! A middleware for the edge host's chain tests (spin-sdk 7,
//! `wasi:http/handler@0.3.0` imported and exported).
//!
//! - Any request: a client's `x-identity` header is replaced by one only
//!   this layer sets, `x-chain` gets `mw` appended on the way in and out,
//!   and the rest goes to `next`.
//! - `.../mw/stop`: answers 403 itself; the next layer never runs.
//! - `.../mw/sqlite`, `.../mw/kv`, `.../mw/variable[?name=N]`,
//!   `.../mw/outbound?url=`: say whether it may open the `catalog`
//!   database, open the `default` key-value store, read the variable `N`
//!   (`greeting` by default), or call `url`: each only if it inherited that
//!   part of the component's configuration.
//! - `.../mw/panic`: traps.

use bytes::Bytes;
use http_body_util::Full;
use spin_sdk::http::Request;

type Resp = http::Response<Full<Bytes>>;

fn text(status: u16, body: impl Into<Bytes>) -> Resp {
    http::Response::builder()
        .status(status)
        .header("content-type", "text/plain")
        .body(Full::new(body.into()))
        .expect("valid response")
}

#[spin_sdk::http_service]
async fn handle(mut req: Request) -> impl spin_sdk::http::IntoResponse {
    use spin_sdk::http::IntoResponse;
    let path = req.uri().path().to_string();
    match path.rsplit_once("/mw/").map(|(_, op)| op) {
        Some("stop") => return text(403, "stopped by the middleware").into_response(),
        Some("sqlite") => {
            return match spin_sdk::sqlite::Connection::open("catalog").await {
                Ok(_) => text(200, "granted"),
                Err(e) => text(403, format!("denied: {e:?}")),
            }
            .into_response();
        }
        Some("kv") => {
            return match spin_sdk::key_value::Store::open("default").await {
                Ok(_) => text(200, "granted"),
                Err(e) => text(403, format!("denied: {e:?}")),
            }
            .into_response();
        }
        Some("variable") => {
            let name = req
                .uri()
                .query()
                .and_then(|q| q.strip_prefix("name="))
                .unwrap_or("greeting")
                .to_string();
            return match spin_sdk::variables::get(&name).await {
                Ok(v) => text(200, format!("granted: {v}")),
                Err(e) => text(403, format!("denied: {e:?}")),
            }
            .into_response();
        }
        Some(op) if op.starts_with("outbound") => {
            let url = req
                .uri()
                .query()
                .and_then(|q| q.strip_prefix("url="))
                .unwrap_or("")
                .to_string();
            return match spin_sdk::http::get(url).await {
                Ok(resp) => text(200, format!("granted: upstream said {}", resp.status())),
                Err(e) => text(403, format!("denied: {e:?}")),
            }
            .into_response();
        }
        Some("panic") => panic!("this middleware panics on purpose"),
        _ => {}
    }
    let headers = req.headers_mut();
    headers.remove("x-identity");
    headers.insert(
        "x-identity",
        http::HeaderValue::from_static("set-by-middleware"),
    );
    let chain = headers
        .get("x-chain")
        .and_then(|v| v.to_str().ok())
        .map_or("mw".to_string(), |c| format!("{c},mw"));
    headers.insert("x-chain", chain.parse().expect("header value"));
    match spin_sdk::http::next(req).await {
        Ok(mut resp) => {
            let chain = resp
                .headers()
                .get("x-chain")
                .and_then(|v| v.to_str().ok())
                .map_or("mw".to_string(), |c| format!("{c},mw"));
            resp.headers_mut()
                .insert("x-chain", chain.parse().expect("header value"));
            resp.into_response()
        }
        Err(e) => text(502, format!("next failed: {e:?}")).into_response(),
    }
}
