//! Optimistic concurrency for product edits (RFC 9110 section 13.1.1):
//! every product has a version, its `ETag` is `"v{version}"`, and a
//! change must name the version it was made against in `If-Match`.

use problem::Problem;

/// The entity tag of a product at `version`.
pub fn etag(version: i64) -> String {
    format!("\"v{version}\"")
}

/// The versions an `If-Match` field accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IfMatch {
    versions: Vec<i64>,
}

impl IfMatch {
    /// Whether a product at `current` may be changed.
    pub fn matches(&self, current: i64) -> bool {
        self.versions.contains(&current)
    }

    /// The 412 for a product now at `current`: its current version in the
    /// body and in `ETag`, so the vendor can re-read and decide.
    pub fn stale(current: i64) -> Problem {
        Problem::new(
            412,
            "stale-version",
            "The product changed since you read it",
            format!(
                "the product is at version {current} now; read it again (GET), \
                 then send your change with If-Match: {}",
                etag(current)
            ),
        )
        .with("current_version", current)
        .with("etag", etag(current))
    }
}

fn required(detail: &str) -> Problem {
    Problem::new(428, "precondition-required", "If-Match required", detail)
}

/// Parses `If-Match`. Absent, or `*` (which would overwrite changes the
/// vendor never saw), is a 428; a field with no strong tag of ours is a
/// 400. Weak tags never match a strong comparison, so they are ignored.
pub fn if_match(field: Option<&str>) -> Result<IfMatch, Problem> {
    let Some(field) = field.map(str::trim).filter(|f| !f.is_empty()) else {
        return Err(required(
            "send If-Match with the product's ETag (from its GET or your last change) \
             so a change made meanwhile is not overwritten",
        ));
    };
    if field == "*" {
        return Err(required(
            "If-Match: * would overwrite changes you have not seen; send the product's ETag",
        ));
    }
    let mut versions = Vec::new();
    for tag in field.split(',').map(str::trim) {
        if tag.starts_with("W/") {
            continue;
        }
        let version = tag
            .strip_prefix("\"v")
            .and_then(|t| t.strip_suffix('"'))
            .and_then(|n| n.parse::<i64>().ok())
            .filter(|n| *n > 0);
        match version {
            Some(v) => versions.push(v),
            None => {
                return Err(Problem::bad_request(format!(
                    "If-Match holds {tag}, which is not a product ETag such as \"v3\""
                ))
                .with("header", "if-match"));
            }
        }
    }
    if versions.is_empty() {
        return Err(required(
            "If-Match names only weak tags, which never match; send the product's ETag",
        ));
    }
    Ok(IfMatch { versions })
}
