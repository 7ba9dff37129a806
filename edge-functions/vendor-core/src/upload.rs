//! What a vendor may ask to upload: a file name for their own reference,
//! an image type, and a size. Checked at the edge gateway and again at
//! the origin, which signs the upload URL.

use problem::Problem;
use serde_json::Value;

/// The largest file a vendor may upload.
pub const MAX_UPLOAD_BYTES: u64 = 20 << 20;
/// The longest file name kept (for the vendor's own reference only).
pub const MAX_FILE_NAME_CHARS: usize = 255;
/// Image types an upload may declare, with the extension its key gets:
/// those the processor decodes. Never SVG or HTML, which run script in a
/// browser.
pub const CONTENT_TYPES: &[(&str, &str)] = &[
    ("image/jpeg", "jpg"),
    ("image/png", "png"),
    ("image/webp", "webp"),
    ("image/avif", "avif"),
];

/// What a vendor asks to upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadRequest {
    pub file_name: String,
    pub content_type: String,
    pub size: u64,
}

fn invalid(field: &str, detail: impl Into<String>) -> Problem {
    Problem::new(422, "invalid-upload", "The upload is not valid", detail).with("field", field)
}

impl UploadRequest {
    /// Parses `{"file_name": ..., "content_type": ..., "size": ...}`:
    /// 400 when it is not a JSON object, 422 naming the field otherwise.
    pub fn parse(body: &[u8]) -> Result<UploadRequest, Problem> {
        let shape =
            "{\"file_name\": \"scarf.jpg\", \"content_type\": \"image/jpeg\", \"size\": 123456}";
        let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(body) else {
            return Err(Problem::bad_request(format!(
                "the body must be a JSON object: {shape}"
            )));
        };
        if let Some(unknown) = map
            .keys()
            .find(|k| !["file_name", "content_type", "size"].contains(&k.as_str()))
        {
            return Err(invalid(
                unknown,
                format!("{unknown} is not part of an upload request: {shape}"),
            ));
        }
        let file_name = match map.get("file_name").and_then(Value::as_str).map(str::trim) {
            Some(n)
                if !n.is_empty()
                    && n.chars().count() <= MAX_FILE_NAME_CHARS
                    && !n.chars().any(char::is_control) =>
            {
                n.to_string()
            }
            _ => {
                return Err(invalid(
                    "file_name",
                    format!("file_name is 1 to {MAX_FILE_NAME_CHARS} characters"),
                ));
            }
        };
        let content_type = match map.get("content_type").and_then(Value::as_str) {
            Some(t) if extension(t).is_some() => t.to_string(),
            _ => {
                let allowed: Vec<&str> = CONTENT_TYPES.iter().map(|(t, _)| *t).collect();
                return Err(invalid(
                    "content_type",
                    format!("content_type is one of {}", allowed.join(", ")),
                ));
            }
        };
        let size = match map.get("size").and_then(Value::as_u64) {
            Some(n) if (1..=MAX_UPLOAD_BYTES).contains(&n) => n,
            _ => {
                return Err(invalid(
                    "size",
                    format!("size is the file's length in bytes, 1 to {MAX_UPLOAD_BYTES}"),
                ));
            }
        };
        Ok(UploadRequest {
            file_name,
            content_type,
            size,
        })
    }
}

/// The key extension for an allowed content type.
pub fn extension(content_type: &str) -> Option<&'static str> {
    CONTENT_TYPES
        .iter()
        .find(|(t, _)| *t == content_type)
        .map(|(_, e)| *e)
}

/// Which upload to attach to a product: `{"upload": 12}`.
pub fn parse_attach(body: &[u8]) -> Result<i64, Problem> {
    let shape = "{\"upload\": 12}, the id POST /api/v1/vendor/uploads answered";
    let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(body) else {
        return Err(Problem::bad_request(format!(
            "the body must be a JSON object: {shape}"
        )));
    };
    if let Some(unknown) = map.keys().find(|k| *k != "upload") {
        return Err(invalid(
            unknown,
            format!("{unknown} is not expected: {shape}"),
        ));
    }
    match map.get("upload").and_then(Value::as_i64) {
        Some(id) if id > 0 => Ok(id),
        _ => Err(invalid("upload", format!("upload is {shape}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_upload_request_names_what_is_wrong() {
        let ok = UploadRequest::parse(
            br#"{"file_name": " scarf.jpg ", "content_type": "image/jpeg", "size": 1024}"#,
        )
        .unwrap();
        assert_eq!(ok.file_name, "scarf.jpg");
        for (body, field) in [
            (
                r#"{"file_name": "", "content_type": "image/jpeg", "size": 1}"#,
                "file_name",
            ),
            (
                r#"{"file_name": "a.svg", "content_type": "image/svg+xml", "size": 1}"#,
                "content_type",
            ),
            (
                r#"{"file_name": "a.html", "content_type": "text/html", "size": 1}"#,
                "content_type",
            ),
            (
                r#"{"file_name": "a.jpg", "content_type": "image/jpeg", "size": 0}"#,
                "size",
            ),
            (
                r#"{"file_name": "a.jpg", "content_type": "image/jpeg", "size": 20971521}"#,
                "size",
            ),
            (
                r#"{"file_name": "a.jpg", "content_type": "image/jpeg", "size": 1, "key": "x"}"#,
                "key",
            ),
        ] {
            let p = UploadRequest::parse(body.as_bytes()).unwrap_err();
            assert_eq!(
                (p.status, p.extensions["field"].as_str()),
                (422, Some(field)),
                "{body}"
            );
        }
        assert_eq!(UploadRequest::parse(b"[]").unwrap_err().status, 400);
    }

    #[test]
    fn an_attach_names_one_upload() {
        assert_eq!(parse_attach(br#"{"upload": 12}"#).unwrap(), 12);
        for body in [r#"{"upload": 0}"#, r#"{"upload": "12"}"#, r#"{"key": "x"}"#] {
            assert_eq!(
                parse_attach(body.as_bytes()).unwrap_err().status,
                422,
                "{body}"
            );
        }
        assert_eq!(parse_attach(b"12").unwrap_err().status, 400);
    }
}
