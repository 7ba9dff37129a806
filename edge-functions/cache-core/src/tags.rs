//! Tag invalidation: responses name what they were made from in
//! `Cache-Tag`; the primary appends `(seq, tag)` to its `changes` table
//! whenever such a thing changes, and that table replicates to every PoP.
//! An entry stored after change `seq` is stale as soon as any of its tags
//! has a newer change, so a purge is a write at the primary and nothing
//! else.

/// Most tags kept per response; more cannot be tracked, so such a
/// response is not stored.
pub const MAX_TAGS: usize = 32;
/// Longest tag.
pub const MAX_TAG_BYTES: usize = 100;

/// Why a response's tags cannot be tracked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TagError {
    TooMany,
    TooLong,
}

/// The tags of `Cache-Tag` field lines: comma-separated, trimmed, each
/// once, in order.
pub fn parse<'a>(lines: impl IntoIterator<Item = &'a str>) -> Result<Vec<String>, TagError> {
    let mut tags: Vec<String> = Vec::new();
    for line in lines {
        for tag in line.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            if tag.len() > MAX_TAG_BYTES {
                return Err(TagError::TooLong);
            }
            if !tags.iter().any(|t| t == tag) {
                if tags.len() == MAX_TAGS {
                    return Err(TagError::TooMany);
                }
                tags.push(tag.to_string());
            }
        }
    }
    Ok(tags)
}

/// The newest change to any of `n` tags: a query over the replicated
/// `changes (seq INTEGER PRIMARY KEY, tag TEXT)` table (indexed by
/// `(tag, seq)`), parameters the tags. `n` is at least 1. One index
/// lookup per tag: with an `IN` list SQLite would build a temporary index
/// of the tags on every run, which cost more than the lookups.
pub fn newest_change_sql(n: usize) -> String {
    let each: Vec<String> = (1..=n.max(1))
        .map(|i| format!("coalesce((SELECT max(seq) FROM changes WHERE tag = ?{i}), 0)"))
        .collect();
    match each.as_slice() {
        [one] => format!("SELECT {one}"),
        // `max` of two or more values is SQLite's scalar `max`.
        _ => format!("SELECT max({})", each.join(", ")),
    }
}

/// The newest change of all: what a response stored now is current as of.
pub const HIGH_WATER_SQL: &str = "SELECT coalesce(max(seq), 0) FROM changes";

/// Whether an entry stored as of change `stored_at` is invalidated by a
/// change as new as `newest` to one of its tags.
pub fn invalidated(stored_at: u64, newest: u64) -> bool {
    newest > stored_at
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_read_once_each_and_bounded() {
        assert_eq!(
            parse(["product:7, vendor:3", " product:7,,catalog "]).unwrap(),
            ["product:7", "vendor:3", "catalog"]
        );
        assert_eq!(parse([]).unwrap(), Vec::<String>::new());
        let many: Vec<String> = (0..=MAX_TAGS).map(|i| format!("t{i}")).collect();
        assert_eq!(parse([many.join(",").as_str()]), Err(TagError::TooMany));
        let repeated = vec!["same"; 100].join(",");
        assert_eq!(parse([repeated.as_str()]).unwrap(), ["same"]);
        assert_eq!(
            parse(["x".repeat(MAX_TAG_BYTES + 1).as_str()]),
            Err(TagError::TooLong)
        );
    }

    #[test]
    fn newer_changes_invalidate() {
        assert!(!invalidated(10, 10));
        assert!(!invalidated(10, 3));
        assert!(invalidated(10, 11));
        assert_eq!(
            newest_change_sql(1),
            "SELECT coalesce((SELECT max(seq) FROM changes WHERE tag = ?1), 0)"
        );
        assert_eq!(
            newest_change_sql(2),
            "SELECT max(coalesce((SELECT max(seq) FROM changes WHERE tag = ?1), 0), \
             coalesce((SELECT max(seq) FROM changes WHERE tag = ?2), 0))"
        );
    }
}
