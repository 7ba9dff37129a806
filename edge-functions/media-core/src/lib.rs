//! Media at the edge as plain data: which `/media/` paths name an object
//! (only content-addressed WebP variants, `media/{sha256}.webp`), the
//! object's URL in the store, and the fields a served image carries.
//!
//! A name is the SHA-256 of the bytes, so an object never changes: its
//! answer may be cached for a year as `immutable`, and its ETag is the
//! name itself, the same at every PoP whatever the store says.

use problem::Problem;

/// How long a served image may be kept, anywhere.
pub const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// How long "no such media" may be kept: a variant is written before the
/// product names it, so a 404 is either a mistake or a moment early.
pub const MISSING: &str = "public, max-age=60";

/// No media at `path`.
pub fn not_found(path: &str) -> Problem {
    Problem::not_found(format!(
        "there is no media at {path}; media paths are /media/{{sha256}}.webp, as products' \
         `media` name them"
    ))
}

/// The answer when an image is not held here and the store cannot be
/// reached; `how` says what happened.
pub fn store_unavailable(how: &str) -> Problem {
    Problem::unavailable(format!(
        "this image is not at this edge location yet and the media store is unavailable: {how}"
    ))
    .with("retry_after", 5)
}

/// What the store's `status` for the object at `path` means: served, a
/// 404 (S3 answers 403 for a missing key to a caller who may not list),
/// or a bad gateway.
pub fn store_answered(status: u16, path: &str) -> Result<(), Problem> {
    match status {
        200 => Ok(()),
        403 | 404 => Err(not_found(path)),
        status => Err(Problem::new(
            502,
            "bad-gateway",
            "Bad gateway",
            format!("the media store answered {status}"),
        )),
    }
}

/// A media object's name: 64 lowercase hex digits and `.webp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Name<'a>(&'a str);

impl<'a> Name<'a> {
    /// The name in a `/media/{name}` path, or the 404 to answer.
    pub fn parse(path: &'a str) -> Result<Name<'a>, Problem> {
        let name = path.strip_prefix("/media/").unwrap_or_default();
        let hash = name.strip_suffix(".webp").unwrap_or_default();
        let ok = hash.len() == 64
            && hash
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if ok {
            Ok(Name(name))
        } else {
            Err(not_found(path))
        }
    }

    /// The object's URL: `{origin}/{bucket}/media/{name}` (path style), or
    /// `{origin}/media/{name}` when the bucket is the host's own.
    pub fn object_url(self, origin: &str, bucket: &str) -> String {
        let origin = origin.trim_end_matches('/');
        match bucket.trim_matches('/') {
            "" => format!("{origin}/media/{}", self.0),
            bucket => format!("{origin}/{bucket}/media/{}", self.0),
        }
    }

    /// The entity tag of the object: its hash, strong.
    pub fn etag(self) -> String {
        format!("\"{}\"", self.0.trim_end_matches(".webp"))
    }
}

/// The fields of a served image whose store said it is `content_type`:
/// only an image type is served (a store that says otherwise holds
/// something edgeshop never wrote there), never sniffed, never run.
pub fn served_fields(
    name: Name<'_>,
    content_type: Option<&str>,
) -> Result<Vec<(&'static str, String)>, Problem> {
    let content_type = match content_type {
        Some(t) if t.starts_with("image/") && !t.contains("svg") => t.to_string(),
        other => {
            return Err(Problem::new(
                502,
                "bad-gateway",
                "Bad gateway",
                format!(
                    "the media store holds {} at this address, not an image",
                    other.unwrap_or("no content type")
                ),
            ));
        }
    };
    Ok(vec![
        ("content-type", content_type),
        ("cache-control", IMMUTABLE.to_string()),
        ("etag", name.etag()),
        ("x-content-type-options", "nosniff".to_string()),
        // Opened on its own, it is an image, never a document that runs.
        (
            "content-security-policy",
            "default-src 'none'; sandbox".to_string(),
        ),
        ("cross-origin-resource-policy", "cross-origin".to_string()),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

    #[test]
    fn only_content_addressed_webp_names_are_media() {
        let path = format!("/media/{HASH}.webp");
        let name = Name::parse(&path).unwrap();
        assert_eq!(name.etag(), format!("\"{HASH}\""));
        assert_eq!(
            name.object_url("http://127.0.0.1:9000/", "edgeshop"),
            format!("http://127.0.0.1:9000/edgeshop/media/{HASH}.webp")
        );
        assert_eq!(
            name.object_url("https://media.shop.example", ""),
            format!("https://media.shop.example/media/{HASH}.webp")
        );
        let upper = format!("/media/{}.webp", HASH.to_uppercase());
        let climbing = format!("/media/../uploads/{HASH}.webp");
        for bad in [
            "/media/products/1/1.jpg",
            &upper,
            &climbing,
            &format!("/media/{HASH}.svg"),
            &format!("/media/{HASH}.webp/x"),
            "/media/",
        ] {
            assert_eq!(Name::parse(bad).unwrap_err().status, 404, "{bad}");
        }
    }

    #[test]
    fn a_served_image_is_immutable_never_sniffed_and_never_a_document() {
        let path = format!("/media/{HASH}.webp");
        let name = Name::parse(&path).unwrap();
        let fields = served_fields(name, Some("image/webp")).unwrap();
        let get = |n: &str| {
            fields
                .iter()
                .find(|(k, _)| *k == n)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("cache-control"), Some(IMMUTABLE));
        assert_eq!(get("x-content-type-options"), Some("nosniff"));
        assert_eq!(get("content-type"), Some("image/webp"));
        for not_an_image in [Some("text/html"), Some("image/svg+xml"), None] {
            assert_eq!(served_fields(name, not_an_image).unwrap_err().status, 502);
        }
    }
}
