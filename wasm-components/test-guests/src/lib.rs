//! Hostile and minimal guests for the edge host's tests and benchmarks.
//!
//! - `/hello`: the smallest useful response (benchmark peer).
//! - `/headers/...`: echoes the `spin-*`, `x-*` and `edgeshop-*` request
//!   headers it got.
//! - `/spin`: loops forever (must be stopped at the deadline).
//! - `/grow`: grows memory until the limit stops it.
//! - `/panic`: panics (a trap the host must contain).
//! - `/outbound?url=U`: fetches U (outbound allow-list tests).
//! - `/body`: reads the whole request body and returns its length.
//! - `/sleep?ms=N`: answers after N milliseconds (graceful-shutdown tests).
//! - `/kv/spin?op=set|get|delete|exists|keys&key=K&value=V`: spin:key-value.
//! - `/kv/incr?key=K`, `/kv/cas-incr?key=K`, `/kv/batch`, `/kv/denied`:
//!   wasi:keyvalue atomics, compare-and-swap, batch, and an ungranted store.
//! - `.../variable?name=N`: reads the variable `N` (403 with the host's
//!   reason when this component may not).
//! - `/sql` (POST, body = one SQL statement): runs it on the `catalog`
//!   database and answers the rows as JSON text; only the fixture
//!   `tests/fixtures/replica-guests.toml` grants that database.
//!
//! - `/origin/...?cc=&vary=&tag=&etag=&cookie=1&status=&delay_ms=&slow_after=&fail_after=&type=&coded=&pad=`:
//!   an app for the cache tests. It answers with those headers (values
//!   percent-decoded; `type` is the content type, `coded` a
//!   `Content-Encoding` it claims), counts its runs per path in the
//!   `default` store, and says in its body which run it was and which
//!   `accept`, `accept-encoding` and `edgeshop-auth-account` it saw, then
//!   `pad` bytes of text. `/origin-runs/...` reads the count.
//!
//! Every route here is exercised by `tests/tests/host.rs` or
//! `tests/tests/cache.rs`.

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
                .filter(|(k, _)| {
                    let k = k.as_str();
                    k.starts_with("spin-") || k.starts_with("x-") || k.starts_with("edgeshop-")
                })
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
        p if p.starts_with("/kv/") => kv(p, req.uri().query().unwrap_or("")).await,
        p if p.starts_with("/origin/") => origin(&req).await,
        p if p.starts_with("/origin-runs/") => {
            use spin_sdk::experimental::wasi::keyvalue::store;
            let key = format!("runs:{}", &p["/origin-runs".len()..]);
            let bucket = store::open("default").expect("open default");
            // `increment` keeps 8 little-endian bytes (on Spin as here).
            let n = bucket
                .get(&key)
                .ok()
                .flatten()
                .and_then(|v| <[u8; 8]>::try_from(v.as_slice()).ok())
                .map_or(0, i64::from_le_bytes)
                .to_string();
            text(200, n)
        }
        p if p.ends_with("/variable") => {
            let name = req
                .uri()
                .query()
                .and_then(|q| q.strip_prefix("name="))
                .unwrap_or_default();
            match spin_sdk::variables::get(name).await {
                Ok(v) => text(200, format!("granted: {v}")),
                Err(e) => text(403, format!("denied: {e:?}")),
            }
        }
        "/sql" => match req.into_body().collect().await {
            Ok(b) => sql(&String::from_utf8_lossy(&b.to_bytes())).await,
            Err(e) => text(400, format!("body error: {e:?}")),
        },
        _ => text(404, "no such test route"),
    }
}

async fn origin(req: &Request) -> Resp {
    use spin_sdk::experimental::wasi::keyvalue::{atomics, store};
    let path = &req.uri().path()["/origin".len()..];
    let query = req.uri().query().unwrap_or("");
    let bucket = store::open("default").expect("open default");
    let run = atomics::increment(&bucket, &format!("runs:{path}"), 1).unwrap_or(-1);
    // `slow_after=N`: only runs after the Nth are delayed.
    let slow_after: i64 = param(query, "slow_after").parse().unwrap_or(0);
    let delay: u64 = if run > slow_after {
        param(query, "delay_ms").parse().unwrap_or(0)
    } else {
        0
    };
    if delay > 0 {
        spin_sdk::time::sleep(std::time::Duration::from_millis(delay)).await;
    }
    let seen = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-")
            .to_string()
    };
    let mut status: u16 = param(query, "status").parse().unwrap_or(200);
    // Fails from run `fail_after + 1` on, as an app that broke would.
    let fail_after: i64 = param(query, "fail_after").parse().unwrap_or(i64::MAX);
    if run > fail_after {
        status = 503;
    }
    let content_type = match decode(param(query, "type")) {
        t if t.is_empty() => "text/plain".to_string(),
        t => t,
    };
    let mut builder = http::Response::builder()
        .status(status)
        .header("content-type", content_type);
    if status == 503 {
        return builder
            .header("cache-control", "no-store")
            .body(Full::new(Bytes::from(format!("{path} run {run} failed\n"))))
            .unwrap_or_else(|e| text(500, format!("bad test parameters: {e}")));
    }
    for (param_name, header) in [
        ("cc", "cache-control"),
        ("vary", "vary"),
        ("tag", "cache-tag"),
        ("etag", "etag"),
        ("coded", "content-encoding"),
    ] {
        let value = decode(param(query, param_name));
        if !value.is_empty() {
            builder = builder.header(header, value);
        }
    }
    if param(query, "cookie") == "1" {
        builder = builder.header("set-cookie", format!("session=run{run}"));
    }
    let mut body = format!(
        "{path} run {run} accept={} encoding={} account={}\n",
        seen("accept"),
        seen("accept-encoding"),
        seen("edgeshop-auth-account")
    );
    let pad: usize = param(query, "pad").parse().unwrap_or(0);
    // Text that compresses like a catalog page does, capped at 2 MiB.
    for i in 0..pad.min(2 << 20) {
        body.push(char::from(b"edge shop catalog page "[i % 23]));
    }
    if param(query, "coded") == "gzip" {
        // An app that compresses by itself, for real.
        use std::io::Write;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let coded = gz.write_all(body.as_bytes()).and_then(|()| gz.finish());
        return builder
            .body(Full::new(Bytes::from(coded.unwrap_or_default())))
            .unwrap_or_else(|e| text(500, format!("bad test parameters: {e}")));
    }
    builder
        .body(Full::new(Bytes::from(body)))
        .unwrap_or_else(|e| text(500, format!("bad test parameters: {e}")))
}

/// `%XX` and `+` decoding, enough for test parameters.
fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len()
                && b[i + 1].is_ascii_hexdigit()
                && b[i + 2].is_ascii_hexdigit() =>
            {
                let v = u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap_or(b'?');
                out.push(v);
                i += 3;
                continue;
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).to_string()
}

fn param<'a>(query: &'a str, name: &str) -> &'a str {
    query
        .split('&')
        .find_map(|kv| kv.strip_prefix(name).and_then(|r| r.strip_prefix('=')))
        .unwrap_or("")
}

async fn kv(path: &str, query: &str) -> Resp {
    use spin_sdk::experimental::wasi::keyvalue::{atomics, batch, store};
    let key = param(query, "key");
    match path {
        "/kv/spin" => {
            let s = match spin_sdk::key_value::Store::open("default").await {
                Ok(s) => s,
                Err(e) => return text(500, format!("open: {e:?}")),
            };
            let out = match param(query, "op") {
                "set" => s
                    .set(key, param(query, "value").as_bytes())
                    .await
                    .map(|()| "ok".to_string()),
                "get" => s.get(key).await.map(|v| {
                    v.map_or("<none>".to_string(), |v| {
                        String::from_utf8_lossy(&v).into_owned()
                    })
                }),
                "delete" => s.delete(key).await.map(|()| "ok".to_string()),
                "exists" => s.exists(key).await.map(|b| b.to_string()),
                "keys" => s.get_keys().await.collect().await.map(|k| k.join(",")),
                other => return text(400, format!("unknown op {other:?}")),
            };
            match out {
                Ok(body) => text(200, body),
                Err(e) => text(500, format!("{e:?}")),
            }
        }
        "/kv/incr" => {
            let bucket = store::open("default").expect("open default");
            match atomics::increment(&bucket, key, 1) {
                Ok(n) => text(200, n.to_string()),
                Err(e) => text(500, format!("{e:?}")),
            }
        }
        "/kv/cas-incr" => {
            let bucket = store::open("default").expect("open default");
            let mut cas = atomics::Cas::new(&bucket, key).expect("cas");
            for attempt in 1..=1000 {
                let current: i64 = cas
                    .current()
                    .expect("current")
                    .map(|v| String::from_utf8_lossy(&v).parse().unwrap_or(0))
                    .unwrap_or(0);
                match atomics::swap(cas, (current + 1).to_string().as_bytes()) {
                    Ok(()) => return text(200, format!("{} after {attempt}", current + 1)),
                    Err(atomics::CasError::CasFailed(fresh)) => cas = fresh,
                    Err(e) => return text(500, format!("{e:?}")),
                }
            }
            text(503, "gave up after 1000 attempts")
        }
        "/kv/batch" => {
            let bucket = store::open("default").expect("open default");
            let pairs: Vec<(String, Vec<u8>)> = (0..5)
                .map(|i| (format!("b{i}"), vec![b'0' + i as u8]))
                .collect();
            batch::set_many(&bucket, &pairs).expect("set_many");
            let keys: Vec<String> = (0..6).map(|i| format!("b{i}")).collect();
            let got = batch::get_many(&bucket, &keys).expect("get_many");
            batch::delete_many(&bucket, &keys[..2]).expect("delete_many");
            let present: Vec<String> = got
                .iter()
                .map(|(k, v)| {
                    format!(
                        "{k}={}",
                        v.as_ref()
                            .map_or("-".into(), |v| String::from_utf8_lossy(v).into_owned())
                    )
                })
                .collect();
            let after = bucket.exists("b0").expect("exists");
            text(
                200,
                format!("{} b0-after-delete={after}", present.join(",")),
            )
        }
        "/kv/denied" => match store::open("not-granted") {
            Ok(_) => text(500, "opened a store the manifest does not grant"),
            Err(e) => text(200, format!("{e:?}")),
        },
        _ => text(404, "no such kv route"),
    }
}

/// Runs one statement on `catalog`; rows come back one per line, values
/// separated by tabs.
async fn sql(statement: &str) -> Resp {
    use spin_sdk::sqlite::{Connection, Value};
    let conn = match Connection::open("catalog").await {
        Ok(c) => c,
        Err(e) => return text(500, format!("open: {e:?}")),
    };
    let result = match conn.execute(statement, Vec::new()).await {
        Ok(r) => r,
        Err(e) => return text(500, format!("execute: {e:?}")),
    };
    let rows = match result.collect().await {
        Ok(rows) => rows,
        Err(e) => return text(500, format!("rows: {e:?}")),
    };
    let mut out = String::new();
    for row in rows {
        let cells: Vec<String> = row
            .values
            .into_iter()
            .map(|v| match v {
                Value::Integer(i) => i.to_string(),
                Value::Real(f) => f.to_string(),
                Value::Text(s) => s,
                Value::Blob(b) => format!("<{} bytes>", b.len()),
                Value::Null => "NULL".to_string(),
            })
            .collect();
        out.push_str(&cells.join("\t"));
        out.push('\n');
    }
    text(200, out)
}
