//! Hostile and minimal guests for the edge host's tests and benchmarks.
//!
//! - `/hello`: the smallest useful response (benchmark peer).
//! - `/headers/...`: echoes the `spin-*` request headers the host set.
//! - `/spin`: loops forever (must be stopped at the deadline).
//! - `/grow`: grows memory until the limit stops it.
//! - `/panic`: panics (a trap the host must contain).
//! - `/outbound?url=U`: fetches U (outbound allow-list tests).
//! - `/body`: reads the whole request body and returns its length.
//! - `/sleep?ms=N`: answers after N milliseconds (graceful-shutdown tests).
//!
//! Every route here is exercised by `tests/tests/host.rs`.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
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
async fn handle(req: Request) -> Resp {
    let path = req.uri().path().to_string();
    match path.as_str() {
        p if p.starts_with("/headers") => {
            let mut lines: Vec<String> = req
                .headers()
                .iter()
                .filter(|(k, _)| k.as_str().starts_with("spin-"))
                .map(|(k, v)| format!("{}: {}", k, v.to_str().unwrap_or("?")))
                .collect();
            lines.sort();
            text(200, lines.join("\n"))
        }
        "/hello" => text(200, "hello from a wasm guest\n"),
        "/spin" => {
            let mut x: u64 = 0;
            loop {
                x = std::hint::black_box(x.wrapping_add(1));
            }
        }
        "/grow" => {
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                hoard.push(vec![1u8; 1 << 20]);
                std::hint::black_box(&hoard);
            }
        }
        "/panic" => panic!("this guest panics on purpose"),
        "/outbound" => {
            let url = req
                .uri()
                .query()
                .and_then(|q| q.strip_prefix("url="))
                .unwrap_or("")
                .to_string();
            match spin_sdk::http::get(url).await {
                Ok(resp) => text(200, format!("upstream said {}", resp.status())),
                Err(e) => text(502, format!("outbound failed: {e:?}")),
            }
        }
        "/body" => match req.into_body().collect().await {
            Ok(b) => text(200, b.to_bytes().len().to_string()),
            Err(e) => text(400, format!("body error: {e:?}")),
        },
        "/sleep" => {
            let ms: u64 = req
                .uri()
                .query()
                .and_then(|q| q.strip_prefix("ms="))
                .and_then(|v| v.parse().ok())
                .unwrap_or(100);
            spin_sdk::wasip3::clocks::monotonic_clock::wait_for(ms * 1_000_000).await;
            text(200, format!("slept {ms} ms"))
        }
        _ => text(404, "no such test route"),
    }
}
