//! The storefront's static files: CSS, the one script and the icon, each
//! under a path that names its content hash, so a browser may keep it for
//! a year (`immutable`) and a new build is a new URL.
//!
//! `build.rs` compresses each file with gzip and brotli at their highest
//! levels once, at build time; the asset component only picks a coding.
//! Pages name files by the constants here (`STYLE_CSS`, `APP_JS`, ...), so
//! a page and the files it links always come from the same build.

/// One file, in every coding the component may send.
#[derive(Debug)]
pub struct Asset {
    pub name: &'static str,
    /// `/assets/{stem}.{hash}.{ext}`.
    pub path: &'static str,
    pub content_type: &'static str,
    /// A strong validator: the content hash, quoted.
    pub etag: &'static str,
    pub identity: &'static [u8],
    pub gzip: &'static [u8],
    pub brotli: &'static [u8],
}

include!(concat!(env!("OUT_DIR"), "/assets.rs"));

/// The most script a page may load, compressed as browsers fetch it
/// (gzip, the larger of the two codings): the storefront's stated budget.
pub const SCRIPT_BUDGET_BYTES: usize = 8 * 1024;

/// How long every asset may be kept: its path changes with its content.
pub const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// The answer to `method path` for a client that sent `accept_encoding`
/// and `if_none_match` (each field's values): the file in the best coding
/// the client takes (RFC 9110 section 12.5.3), `Vary: Accept-Encoding`,
/// a 304 when its tag matches; a problem otherwise. The same on a PoP
/// (the asset component) and on the Workers twin.
pub fn answer(
    method: &str,
    path: &str,
    accept_encoding: &[&str],
    if_none_match: &[&str],
) -> (u16, Vec<(String, String)>, Vec<u8>) {
    use cache_core::encoding::{self, Coding};
    use problem::Problem;
    let problem = |p: Problem| {
        let mut headers = p.header_fields();
        headers.push(("x-content-type-options".into(), "nosniff".into()));
        (p.status, headers, p.to_json())
    };
    let head = method == "HEAD";
    if !head && method != "GET" {
        return problem(Problem::method_not_allowed(method, &["GET", "HEAD"]));
    }
    let Some(asset) = find(path) else {
        return problem(Problem::not_found(format!(
            "there is no asset at {path}; asset paths change with every build, so reload the page"
        )));
    };
    let Some(coding) = encoding::negotiate(accept_encoding.iter().copied()) else {
        return problem(Problem::new(
            406,
            "not-acceptable",
            "Not acceptable",
            "this asset is available as br, gzip or identity, and the request refuses all three",
        ));
    };
    let body = match coding {
        Coding::Br => asset.brotli,
        Coding::Gzip => asset.gzip,
        Coding::Identity => asset.identity,
    };
    let etag = encoding::variant_etag(asset.etag, coding).unwrap_or_else(|| asset.etag.to_string());
    let mut headers = vec![
        ("content-type".to_string(), asset.content_type.to_string()),
        ("cache-control".to_string(), IMMUTABLE.to_string()),
        ("vary".to_string(), "accept-encoding".to_string()),
        ("x-content-type-options".to_string(), "nosniff".to_string()),
        ("etag".to_string(), etag.clone()),
    ];
    if coding != Coding::Identity {
        headers.push(("content-encoding".to_string(), coding.token().to_string()));
    }
    if cache_core::conditional::not_modified(if_none_match.iter().copied(), Some(&etag)) {
        return (304, headers, Vec::new());
    }
    headers.push(("content-length".to_string(), body.len().to_string()));
    (200, headers, if head { Vec::new() } else { body.to_vec() })
}

/// The file served at `path`, if any.
pub fn find(path: &str) -> Option<&'static Asset> {
    FILES.iter().find(|a| a.path == path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_has_a_hashed_path_and_round_trips_through_both_codings() {
        use std::io::Read as _;
        assert!(FILES.len() >= 3);
        for a in FILES {
            assert!(find(a.path).is_some_and(|f| f.name == a.name));
            let mut gz = Vec::new();
            gunzip(a.gzip, &mut gz);
            assert_eq!(gz, a.identity, "{} gzip", a.name);
            let mut br = Vec::new();
            brotli_decompress(a.brotli).read_to_end(&mut br).unwrap();
            assert_eq!(br, a.identity, "{} brotli", a.name);
            assert!(a.brotli.len() < a.identity.len(), "{} compresses", a.name);
        }
        assert_eq!(find(STYLE_CSS).unwrap().name, "style.css");
        assert!(find("/assets/style.css").is_none(), "only hashed paths");
    }

    #[test]
    fn the_script_stays_within_its_budget() {
        let scripts: usize = FILES
            .iter()
            .filter(|a| a.content_type.starts_with("text/javascript"))
            .map(|a| a.gzip.len().max(a.brotli.len()))
            .sum();
        assert!(
            scripts <= SCRIPT_BUDGET_BYTES,
            "{scripts} bytes of script, compressed; the budget is {SCRIPT_BUDGET_BYTES}"
        );
    }

    fn gunzip(data: &[u8], out: &mut Vec<u8>) {
        use std::io::Read as _;
        flate2::read::GzDecoder::new(data).read_to_end(out).unwrap();
    }

    fn brotli_decompress(data: &[u8]) -> impl std::io::Read + '_ {
        brotli::Decompressor::new(data, 4096)
    }
}
