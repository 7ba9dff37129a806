//! The requests real clients send, in one place: the end-to-end tests, the
//! soak run and `cargo xtask bench` all speak through these shapes, so what
//! the suite sends is what browsers and `curl` send.
//!
//! A shape is the header fields a client adds on its own, for one kind of
//! request (a page script's `fetch`, a form-less JSON post, a navigation).
//! The test supplies what the application decides (a bearer token, an
//! `Idempotency-Key`, a body). Values follow Chromium 148 on Linux and
//! Debian's curl 7.88; what matters for the edge is which fields are there
//! and what they ask for: `Accept-Encoding` (Chromium always asks for
//! brotli), `Accept-Language`, cookies, and the fetch metadata.
//!
//! [`decode`] undoes a `Content-Encoding`, as every such client does
//! before anyone reads the body.

use std::io::Read;

/// Who is asking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Client {
    /// A current Chromium: a page's script (`fetch`) or a navigation.
    Chromium,
    /// `curl URL`: no `Accept-Encoding`.
    Curl,
    /// `curl --compressed URL`.
    CurlCompressed,
    /// Nothing beyond what HTTP/1.1 needs (`Host`): a script, a probe.
    Bare,
}

/// What kind of request it is; browsers send different fields for each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// A page's script reading the API (`fetch(url)`, same origin).
    Read,
    /// A page's script sending JSON (`fetch(url, {method: "POST", body})`).
    SendJson,
    /// The user opening a URL (address bar, link).
    Navigate,
    /// A page's `<img>` loading a picture.
    Image,
}

/// Run in a loaded page with WebDriver's *Execute Async Script*: answers
/// `[LCP, TTFB]` in ms, the page's Largest Contentful Paint (the last
/// candidate so far, buffered) and its navigation's `responseStart`.
pub const PAINT_TIMINGS_SCRIPT: &str = "const done = arguments[arguments.length - 1];
 const ttfb = performance.getEntriesByType('navigation')[0].responseStart;
 new PerformanceObserver((list) => {
   const e = list.getEntries();
   done([e[e.length - 1].startTime, ttfb]);
 }).observe({ type: 'largest-contentful-paint', buffered: true });";

/// The page the storefront's scripts run on, for `Referer` and `Origin`.
pub const PAGE: &str = "/";

const CHROMIUM_UA: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 \
     (KHTML, like Gecko) Chrome/148.0.0.0 Safari/537.36";
const CHROMIUM_CH_UA: &str = "\"Chromium\";v=\"148\", \"Not.A/Brand\";v=\"99\"";
/// What Chromium asks for on every request.
pub const CHROMIUM_ACCEPT_ENCODING: &str = "gzip, deflate, br, zstd";
/// A first-party cookie a returning visitor carries (a preference the
/// storefront set). Browsers send it on every request to the site,
/// API reads included.
pub const CHROMIUM_COOKIE: &str = "edgeshop_prefs=currency%3DEUR; edgeshop_seen=1";
/// What curl asks for with `--compressed` (built with zlib, brotli, zstd).
pub const CURL_ACCEPT_ENCODING: &str = "deflate, gzip, br, zstd";
const CURL_UA: &str = "curl/7.88.1";

/// The fields `client` adds to a `purpose` request to `authority`
/// (`host:port`), lower-case names, in the order the client sends them.
/// `Host` is left to the HTTP client.
pub fn headers(client: Client, purpose: Purpose, authority: &str) -> Vec<(&'static str, String)> {
    let s = |v: &str| v.to_string();
    match client {
        Client::Bare => Vec::new(),
        Client::Curl => vec![("user-agent", s(CURL_UA)), ("accept", s("*/*"))],
        Client::CurlCompressed => vec![
            ("user-agent", s(CURL_UA)),
            ("accept", s("*/*")),
            ("accept-encoding", s(CURL_ACCEPT_ENCODING)),
        ],
        Client::Chromium => {
            let origin = format!("http://{authority}");
            let mut h = vec![
                ("sec-ch-ua-platform", s("\"Linux\"")),
                ("user-agent", s(CHROMIUM_UA)),
                ("sec-ch-ua", s(CHROMIUM_CH_UA)),
                ("sec-ch-ua-mobile", s("?0")),
            ];
            match purpose {
                Purpose::Read => h.extend([
                    ("accept", s("*/*")),
                    ("sec-fetch-site", s("same-origin")),
                    ("sec-fetch-mode", s("cors")),
                    ("sec-fetch-dest", s("empty")),
                    ("referer", format!("{origin}{PAGE}")),
                ]),
                Purpose::SendJson => h.extend([
                    ("content-type", s("application/json")),
                    ("accept", s("*/*")),
                    ("origin", origin.clone()),
                    ("sec-fetch-site", s("same-origin")),
                    ("sec-fetch-mode", s("cors")),
                    ("sec-fetch-dest", s("empty")),
                    ("referer", format!("{origin}{PAGE}")),
                ]),
                Purpose::Image => h.extend([
                    (
                        "accept",
                        s("image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8"),
                    ),
                    ("sec-fetch-site", s("same-origin")),
                    ("sec-fetch-mode", s("no-cors")),
                    ("sec-fetch-dest", s("image")),
                    ("referer", format!("{origin}{PAGE}")),
                ]),
                Purpose::Navigate => h.extend([
                    ("upgrade-insecure-requests", s("1")),
                    (
                        "accept",
                        s("text/html,application/xhtml+xml,application/xml;q=0.9,\
                           image/avif,image/webp,image/apng,*/*;q=0.8,\
                           application/signed-exchange;v=b3;q=0.7"),
                    ),
                    ("sec-fetch-site", s("none")),
                    ("sec-fetch-mode", s("navigate")),
                    ("sec-fetch-user", s("?1")),
                    ("sec-fetch-dest", s("document")),
                ]),
            }
            h.extend([
                ("accept-encoding", s(CHROMIUM_ACCEPT_ENCODING)),
                ("accept-language", s("en-US,en;q=0.9")),
                ("cookie", s(CHROMIUM_COOKIE)),
                (
                    "priority",
                    s(match purpose {
                        Purpose::Navigate => "u=0, i",
                        Purpose::Image => "i",
                        _ => "u=1, i",
                    }),
                ),
            ]);
            h
        }
    }
}

/// `shape` with `extra` fields added; an extra field replaces the
/// shape's field of the same name (a test's `Accept`, say).
pub fn merged(shape: Vec<(&'static str, String)>, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = shape
        .into_iter()
        .filter(|(n, _)| !extra.iter().any(|(e, _)| e.eq_ignore_ascii_case(n)))
        .map(|(n, v)| (n.to_string(), v))
        .collect();
    out.extend(
        extra
            .iter()
            .map(|(n, v)| (n.to_ascii_lowercase(), v.to_string())),
    );
    out
}

/// Why a body could not be decoded.
#[derive(Debug)]
pub struct DecodeError(pub String);

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DecodeError {}

/// The body as the client reads it: `Content-Encoding` (`br`, `gzip`,
/// `identity`, or a list applied in order) undone.
pub fn decode(content_encoding: Option<&str>, body: &[u8]) -> Result<Vec<u8>, DecodeError> {
    let mut out = body.to_vec();
    let Some(codings) = content_encoding else {
        return Ok(out);
    };
    // Codings are listed in the order they were applied; undo the last first.
    for coding in codings.split(',').map(str::trim).rev() {
        let mut decoded = Vec::new();
        let read = match coding.to_ascii_lowercase().as_str() {
            "" | "identity" => continue,
            "br" => brotli::Decompressor::new(&out[..], 4096).read_to_end(&mut decoded),
            "gzip" | "x-gzip" => flate2::read::GzDecoder::new(&out[..]).read_to_end(&mut decoded),
            other => {
                return Err(DecodeError(format!(
                    "no decoder for content-coding {other:?}"
                )));
            }
        };
        read.map_err(|e| DecodeError(format!("the {coding} body does not decode: {e}")))?;
        out = decoded;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chromium_always_asks_for_brotli_and_carries_its_cookie() {
        for purpose in [
            Purpose::Read,
            Purpose::SendJson,
            Purpose::Navigate,
            Purpose::Image,
        ] {
            let h = headers(Client::Chromium, purpose, "127.0.0.1:8080");
            let get = |n: &str| h.iter().find(|(k, _)| *k == n).map(|(_, v)| v.as_str());
            assert_eq!(get("accept-encoding"), Some(CHROMIUM_ACCEPT_ENCODING));
            assert!(get("accept-language").is_some());
            assert_eq!(get("cookie"), Some(CHROMIUM_COOKIE));
            assert!(get("user-agent").unwrap().contains("Chrome/"));
        }
        let post = headers(Client::Chromium, Purpose::SendJson, "shop:1");
        assert!(post.contains(&("origin", "http://shop:1".to_string())));
        assert!(
            headers(Client::Curl, Purpose::Read, "x")
                .iter()
                .all(|(n, _)| *n != "accept-encoding")
        );
        assert!(headers(Client::Bare, Purpose::Read, "x").is_empty());
    }

    #[test]
    fn extra_fields_replace_the_shapes_own() {
        let h = merged(
            headers(Client::CurlCompressed, Purpose::Read, "x"),
            &[
                ("Accept", "application/json"),
                ("authorization", "Bearer t"),
            ],
        );
        let accepts: Vec<_> = h.iter().filter(|(n, _)| n == "accept").collect();
        assert_eq!(
            accepts,
            [&("accept".to_string(), "application/json".to_string())]
        );
        assert!(h.iter().any(|(n, _)| n == "authorization"));
    }

    #[test]
    fn bodies_decode_as_a_client_reads_them() {
        use std::io::Write;
        let text = b"{\"hello\":\"edge\"}".repeat(50);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&text).unwrap();
        let gz = gz.finish().unwrap();
        assert_eq!(decode(Some("gzip"), &gz).unwrap(), text);
        let mut br = Vec::new();
        {
            let mut w = brotli::CompressorWriter::new(&mut br, 4096, 5, 18);
            w.write_all(&text).unwrap();
        }
        assert_eq!(decode(Some("br"), &br).unwrap(), text);
        assert_eq!(decode(None, &text).unwrap(), text);
        assert_eq!(decode(Some("identity"), &text).unwrap(), text);
        assert!(decode(Some("br"), &text).is_err(), "not brotli");
        assert!(decode(Some("zstd"), &text).is_err());
    }
}
