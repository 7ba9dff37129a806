//! Content codings at the edge (RFC 9110 §8.4, §12.5.3): which coding a
//! client gets, which responses are worth compressing, what a coded
//! variant's entity tag is, and the compression itself.
//!
//! The cache asks the app for the identity coding only and compresses
//! what it stores, once per coding a client asks for, as a CDN does: a
//! hit is then a read of the stored variant, never a compression.

use crate::entry::Entry;
use std::io::Write;

/// The codings this cache serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Coding {
    Br,
    Gzip,
    Identity,
}

/// Our order of preference when a client likes several codings equally:
/// brotli is smaller than gzip for the same text.
pub const OFFERED: [Coding; 3] = [Coding::Br, Coding::Gzip, Coding::Identity];

/// Bodies smaller than this are served as they are: compression would
/// save a few bytes at best and cost a variant in the store.
pub const MIN_COMPRESSIBLE_BYTES: usize = 256;

/// Brotli quality for stored responses. Measured natively (this crate's
/// encoder, release build) on the catalog's product 1 (636 bytes) and its
/// 20-item listing (12,395 bytes): quality 4 makes 360 and 2,565 bytes in
/// 62 and 270 µs; quality 5 saves another 8% and costs 14 and 21 times as
/// much (870 µs, 5.8 ms), which every miss would pay; gzip 6 makes 398 and
/// 2,658 bytes in 33 and 200 µs.
const BROTLI_QUALITY: i32 = 4;
/// gzip's usual default level.
const GZIP_LEVEL: u32 = 6;

impl Coding {
    /// The content-coding token, as in `Content-Encoding`.
    pub fn token(self) -> &'static str {
        match self {
            Coding::Br => "br",
            Coding::Gzip => "gzip",
            Coding::Identity => "identity",
        }
    }

    /// A token from `Accept-Encoding`; `x-gzip` is gzip (§8.4.1.3).
    fn from_token(token: &str) -> Option<Coding> {
        let t = token.to_ascii_lowercase();
        match t.as_str() {
            "br" => Some(Coding::Br),
            "gzip" | "x-gzip" => Some(Coding::Gzip),
            "identity" => Some(Coding::Identity),
            _ => None,
        }
    }
}

/// The coding a client gets, from its `Accept-Encoding` field lines (none
/// when it sent no such field). `None` when it refuses every coding we
/// have, identity included: the answer is then 406 Not Acceptable.
///
/// Each coding's weight is its own entry's `q`, else `*`'s; identity is
/// acceptable unless refused (`identity;q=0`, or `*;q=0` without an
/// identity entry), but ranks below any coding the client named. Ties go
/// to [`OFFERED`]'s order. No field, or an empty one, means identity.
pub fn negotiate<'a>(lines: impl IntoIterator<Item = &'a str>) -> Option<Coding> {
    let mut named: [Option<u16>; 3] = [None; 3];
    let mut star = None;
    for element in lines.into_iter().flat_map(|l| l.split(',')) {
        let mut parts = element.split(';');
        let token = parts.next().unwrap_or("").trim();
        if token.is_empty() {
            continue;
        }
        let mut weight = Some(1000);
        for param in parts {
            if let Some((name, value)) = param.split_once('=')
                && name.trim().eq_ignore_ascii_case("q")
            {
                weight = qvalue(value.trim());
            }
        }
        // An entry with an unreadable weight is ignored.
        let Some(weight) = weight else { continue };
        if token == "*" {
            star.get_or_insert(weight);
        } else if let Some(c) = Coding::from_token(token) {
            named[index(c)].get_or_insert(weight);
        }
    }
    let weight = |c: Coding| match (named[index(c)], star) {
        (Some(w), _) => w,
        (None, Some(w)) => w,
        // Always acceptable unless refused, but last in line (1/1000 is
        // the smallest weight a client can give).
        (None, None) if c == Coding::Identity => 1,
        (None, None) => 0,
    };
    // `max_by_key` keeps the last of equals: walk our preference backwards.
    OFFERED
        .iter()
        .rev()
        .copied()
        .map(|c| (c, weight(c)))
        .filter(|(_, w)| *w > 0)
        .max_by_key(|(_, w)| *w)
        .map(|(c, _)| c)
}

fn index(c: Coding) -> usize {
    match c {
        Coding::Br => 0,
        Coding::Gzip => 1,
        Coding::Identity => 2,
    }
}

/// A qvalue (§12.4.2) in thousandths: `0`, `0.5`, `1.000`; anything else
/// is unreadable.
fn qvalue(v: &str) -> Option<u16> {
    let (int, frac) = v.split_once('.').unwrap_or((v, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let thousandths = format!("{frac:0<3}").parse::<u16>().ok()?;
    match int {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

/// Whether a response of this media type gains from compression: text,
/// JSON, XML, JavaScript, SVG, WebAssembly and uncompressed fonts. Images,
/// archives and WOFF2 are compressed already.
pub fn compressible(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let Some((kind, subtype)) = essence.split_once('/') else {
        return false;
    };
    kind == "text"
        || subtype.ends_with("+json")
        || subtype.ends_with("+xml")
        || matches!(
            essence.as_str(),
            "application/json"
                | "application/xml"
                | "application/javascript"
                | "application/x-javascript"
                | "application/ecmascript"
                | "application/wasm"
                | "font/ttf"
                | "font/otf"
        )
}

/// The entity tag of `coding`'s variant of a representation tagged
/// `etag`: a strong tag belongs to one sequence of bytes, so each coding
/// gets its own (`"abc"` -> `"abc-br"`, RFC 9110 §8.8.3). `None` for a
/// malformed tag, which is then better dropped than sent wrong.
pub fn variant_etag(etag: &str, coding: Coding) -> Option<String> {
    let etag = etag.trim();
    let (weak, tag) = match etag.strip_prefix("W/") {
        Some(rest) => ("W/", rest),
        None => ("", etag),
    };
    let opaque = tag.strip_prefix('"')?.strip_suffix('"')?;
    if opaque.contains('"') {
        return None;
    }
    Some(match coding {
        Coding::Identity => etag.to_string(),
        c => format!("{weak}\"{opaque}-{}\"", c.token()),
    })
}

/// Header field lines as stored: lower-case names, raw values.
pub type Fields = [(String, Vec<u8>)];

fn field<'a>(headers: &'a Fields, name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n == name)
        .and_then(|(_, v)| std::str::from_utf8(v).ok())
}

/// Whether the cache negotiates codings for a response it stores: a type
/// that compresses, a body worth it, no coding already applied, and no
/// `no-transform`.
pub fn negotiable(headers: &Fields, body_len: usize, no_transform: bool) -> bool {
    let already_coded = field(headers, "content-encoding")
        .is_some_and(|c| !c.trim().eq_ignore_ascii_case("identity"));
    !no_transform
        && !already_coded
        && body_len >= MIN_COMPRESSIBLE_BYTES
        && field(headers, "content-type").is_some_and(compressible)
}

/// The identity representation's fields when the cache negotiates codings
/// for it: `Vary` also names `Accept-Encoding`, so any cache after this
/// one keys on it too.
pub fn identity_fields(headers: &Fields) -> Vec<(String, Vec<u8>)> {
    let mut names: Vec<String> = headers
        .iter()
        .filter(|(n, _)| n == "vary")
        .filter_map(|(_, v)| std::str::from_utf8(v).ok())
        .flat_map(|v| v.split(','))
        .map(|n| n.trim().to_ascii_lowercase())
        .filter(|n| !n.is_empty())
        .collect();
    if !names.iter().any(|n| n == "accept-encoding") {
        names.push("accept-encoding".into());
    }
    let mut out: Vec<(String, Vec<u8>)> = headers
        .iter()
        .filter(|(n, _)| n != "vary" && n != "content-encoding")
        .cloned()
        .collect();
    out.push(("vary".into(), names.join(", ").into_bytes()));
    out
}

/// A coded variant's fields from the identity representation's:
/// `Content-Encoding` added, the entity tag made the variant's own.
pub fn variant_fields(identity: &Fields, coding: Coding) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = Vec::with_capacity(identity.len() + 1);
    for (name, value) in identity {
        if name == "content-encoding" {
            continue;
        }
        if name == "etag" {
            let tag = std::str::from_utf8(value)
                .ok()
                .and_then(|t| variant_etag(t, coding));
            if let Some(tag) = tag {
                out.push((name.clone(), tag.into_bytes()));
            }
            continue;
        }
        out.push((name.clone(), value.clone()));
    }
    if coding != Coding::Identity {
        out.push((
            "content-encoding".into(),
            coding.token().as_bytes().to_vec(),
        ));
    }
    out
}

/// `coding`'s variant of a stored identity representation, stored under
/// `secondary`: the same age, lifetime and tags, so it is fresh, stale
/// and purged exactly when its base is.
pub fn variant(base: &Entry, coding: Coding, secondary: String) -> Option<Entry> {
    Some(Entry {
        primary: base.primary.clone(),
        secondary,
        status: base.status,
        headers: variant_fields(&base.headers, coding),
        body: encode(coding, &base.body)?,
        response_time: base.response_time,
        initial_age: base.initial_age,
        lifetime: base.lifetime,
        as_of_change: base.as_of_change,
        tags: base.tags.clone(),
    })
}

/// `body` in `coding`. `None` if the encoder failed (the caller serves
/// identity instead).
pub fn encode(coding: Coding, body: &[u8]) -> Option<Vec<u8>> {
    match coding {
        Coding::Identity => Some(body.to_vec()),
        Coding::Gzip => {
            let mut enc = flate2::write::GzEncoder::new(
                Vec::with_capacity(body.len() / 3),
                flate2::Compression::new(GZIP_LEVEL),
            );
            enc.write_all(body).ok()?;
            enc.finish().ok()
        }
        Coding::Br => {
            let params = brotli::enc::BrotliEncoderParams {
                quality: BROTLI_QUALITY,
                lgwin: window_bits(body.len()),
                size_hint: body.len(),
                ..Default::default()
            };
            let mut out = Vec::with_capacity(body.len() / 3);
            brotli::BrotliCompress(&mut &body[..], &mut out, &params).ok()?;
            Some(out)
        }
    }
}

/// The smallest brotli window that holds the whole body (10 to 22 bits):
/// a bigger one only costs the encoder memory.
fn window_bits(len: usize) -> i32 {
    let bits = usize::BITS - len.max(1).leading_zeros();
    bits.clamp(10, 22) as i32
}

#[cfg(test)]
mod tests {
    use super::*;
    use Coding::*;

    #[test]
    fn clients_get_the_coding_they_prefer() {
        // What real clients send.
        assert_eq!(negotiate(["gzip, deflate, br, zstd"]), Some(Br), "Chromium");
        assert_eq!(negotiate(["gzip, deflate, br"]), Some(Br), "Firefox");
        assert_eq!(
            negotiate(["deflate, gzip, br, zstd"]),
            Some(Br),
            "curl --compressed"
        );
        assert_eq!(negotiate(["gzip"]), Some(Gzip), "an older client");
        assert_eq!(negotiate([]), Some(Identity), "curl, no field");
        assert_eq!(negotiate([""]), Some(Identity), "an empty field");
        assert_eq!(negotiate(["deflate, zstd"]), Some(Identity));
        // Weights.
        assert_eq!(negotiate(["br;q=0.5, gzip"]), Some(Gzip));
        assert_eq!(negotiate(["br;q=0.5, gzip;q=0.4"]), Some(Br));
        assert_eq!(negotiate(["gzip;q=0.5, identity"]), Some(Identity));
        assert_eq!(
            negotiate(["gzip;q=0.001"]),
            Some(Gzip),
            "named beats implied"
        );
        assert_eq!(negotiate(["br;q=0, gzip;q=0"]), Some(Identity));
        assert_eq!(negotiate(["GZIP ; Q=0.8", "x-gzip;q=0.1"]), Some(Gzip));
        assert_eq!(negotiate(["x-gzip"]), Some(Gzip));
        // The wildcard.
        assert_eq!(negotiate(["*"]), Some(Br));
        assert_eq!(negotiate(["*;q=0.5, br;q=0"]), Some(Gzip));
        assert_eq!(negotiate(["gzip, *;q=0"]), Some(Gzip));
        // Refusing everything, identity too.
        assert_eq!(negotiate(["identity;q=0"]), None);
        assert_eq!(negotiate(["*;q=0"]), None);
        assert_eq!(negotiate(["zstd, identity;q=0"]), None);
        assert_eq!(negotiate(["*;q=0, identity;q=0.1"]), Some(Identity));
        assert_eq!(negotiate(["br, identity;q=0"]), Some(Br));
        // Unreadable weights are ignored, not read as 1.
        assert_eq!(negotiate(["br;q=2, gzip"]), Some(Gzip));
        assert_eq!(negotiate(["br;q=0.12345"]), Some(Identity));
        assert_eq!(negotiate(["br;q=, gzip;q=x"]), Some(Identity));
        assert_eq!(negotiate([" , ,"]), Some(Identity));
    }

    #[test]
    fn qvalues_follow_the_grammar() {
        assert_eq!(qvalue("1"), Some(1000));
        assert_eq!(qvalue("1.000"), Some(1000));
        assert_eq!(qvalue("1.001"), None);
        assert_eq!(qvalue("0"), Some(0));
        assert_eq!(qvalue("0.5"), Some(500));
        assert_eq!(qvalue("0.05"), Some(50));
        assert_eq!(qvalue("0.001"), Some(1));
        assert_eq!(qvalue(".5"), None);
        assert_eq!(qvalue("0.5000"), None);
        assert_eq!(qvalue("-0"), None);
    }

    #[test]
    fn text_is_compressible_and_images_are_not() {
        for t in [
            "application/json",
            "application/problem+json",
            "application/jwk-set+json",
            "text/html; charset=utf-8",
            "Text/CSS",
            "application/javascript",
            "image/svg+xml",
            "application/wasm",
        ] {
            assert!(compressible(t), "{t}");
        }
        for t in [
            "image/webp",
            "image/png",
            "font/woff2",
            "application/zip",
            "application/octet-stream",
            "",
            "json",
        ] {
            assert!(!compressible(t), "{t}");
        }
    }

    #[test]
    fn each_coding_has_its_own_entity_tag() {
        assert_eq!(variant_etag("\"abc\"", Br).as_deref(), Some("\"abc-br\""));
        assert_eq!(
            variant_etag("W/\"abc\"", Gzip).as_deref(),
            Some("W/\"abc-gzip\"")
        );
        assert_eq!(
            variant_etag("\"abc\"", Identity).as_deref(),
            Some("\"abc\"")
        );
        assert_eq!(variant_etag("abc", Br), None);
        assert_eq!(variant_etag("\"a\"b\"", Br), None);
        // Distinct variants never share a tag, so a 304 for one is never
        // taken for another.
        let tags: std::collections::HashSet<_> = OFFERED
            .iter()
            .map(|c| variant_etag("\"v1\"", *c).unwrap())
            .collect();
        assert_eq!(tags.len(), OFFERED.len());
    }

    fn fields(list: &[(&str, &str)]) -> Vec<(String, Vec<u8>)> {
        list.iter()
            .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec()))
            .collect()
    }

    #[test]
    fn only_plain_compressible_bodies_are_negotiated() {
        let json = fields(&[("content-type", "application/json")]);
        assert!(negotiable(&json, 1000, false));
        assert!(!negotiable(&json, MIN_COMPRESSIBLE_BYTES - 1, false));
        assert!(!negotiable(&json, 1000, true), "no-transform");
        let coded = fields(&[("content-type", "text/css"), ("content-encoding", "gzip")]);
        assert!(!negotiable(&coded, 1000, false));
        let identity = fields(&[
            ("content-type", "text/css"),
            ("content-encoding", "identity"),
        ]);
        assert!(negotiable(&identity, 1000, false));
        assert!(!negotiable(
            &fields(&[("content-type", "image/webp")]),
            1000,
            false
        ));
        assert!(!negotiable(&fields(&[]), 1000, false), "no type: unknown");
    }

    #[test]
    fn variants_say_how_they_are_coded() {
        let app = fields(&[
            ("content-type", "application/json"),
            ("etag", "\"v1\""),
            ("vary", "Accept-Language"),
            ("vary", "accept-encoding"),
            ("cache-tag", "product:1"),
        ]);
        let identity = identity_fields(&app);
        let vary: Vec<_> = identity.iter().filter(|(n, _)| n == "vary").collect();
        assert_eq!(vary.len(), 1);
        assert_eq!(vary[0].1, b"accept-language, accept-encoding");
        let plain = identity_fields(&fields(&[("etag", "\"v1\"")]));
        assert_eq!(field(&plain, "vary"), Some("accept-encoding"));

        let br = variant_fields(&identity, Br);
        assert_eq!(field(&br, "content-encoding"), Some("br"));
        assert_eq!(field(&br, "etag"), Some("\"v1-br\""));
        assert_eq!(field(&br, "cache-tag"), Some("product:1"));
        assert_eq!(field(&br, "vary"), Some("accept-language, accept-encoding"));
        let same = variant_fields(&identity, Identity);
        assert_eq!(field(&same, "content-encoding"), None);
        assert_eq!(field(&same, "etag"), Some("\"v1\""));
        // A malformed tag is dropped from a variant, never passed on.
        let odd = variant_fields(&fields(&[("etag", "v1")]), Gzip);
        assert_eq!(field(&odd, "etag"), None);
    }

    #[test]
    fn compressed_bodies_decode_to_the_original() {
        use std::io::Read;
        let body: Vec<u8> = (0..20_000u32)
            .flat_map(|i| format!("{{\"id\":{i},\"title\":\"item {}\"}},", i % 97).into_bytes())
            .collect();
        let br = encode(Br, &body).unwrap();
        let gz = encode(Gzip, &body).unwrap();
        assert!(br.len() < body.len() / 5, "{} of {}", br.len(), body.len());
        assert!(gz.len() < body.len() / 4, "{} of {}", gz.len(), body.len());
        let mut back = Vec::new();
        brotli::Decompressor::new(&br[..], 4096)
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, body);
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, body);
        assert_eq!(encode(Identity, &body).unwrap(), body);
        // Tiny and empty bodies still round-trip.
        for small in [&b""[..], b"x", b"{}"] {
            let mut back = Vec::new();
            brotli::Decompressor::new(&encode(Br, small).unwrap()[..], 4096)
                .read_to_end(&mut back)
                .unwrap();
            assert_eq!(back, small);
        }
    }

    #[test]
    fn the_window_fits_the_body() {
        assert_eq!(window_bits(0), 10);
        assert_eq!(window_bits(1000), 10);
        assert_eq!(window_bits(5000), 13);
        assert_eq!(window_bits(1 << 20), 21);
        assert_eq!(window_bits(usize::MAX), 22);
    }
}
