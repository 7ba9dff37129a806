//! Query parameters of `GET /api/v1/products`.

use problem::Problem;
use sha2::{Digest, Sha256};

pub const DEFAULT_LIMIT: u32 = 20;
pub const MAX_LIMIT: u32 = 100;
/// Longest accepted `q`, in bytes, and most search terms used from it.
pub const MAX_QUERY_BYTES: usize = 200;
pub const MAX_TERMS: usize = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sort {
    Relevance,
    PriceAsc,
    PriceDesc,
    Newest,
}

impl Sort {
    pub fn as_str(self) -> &'static str {
        match self {
            Sort::Relevance => "relevance",
            Sort::PriceAsc => "price_asc",
            Sort::PriceDesc => "price_desc",
            Sort::Newest => "newest",
        }
    }
}

/// A category or vendor named by id or by slug.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ref {
    Id(i64),
    Slug(String),
}

impl Ref {
    pub fn tag_value(&self) -> String {
        match self {
            Ref::Id(id) => id.to_string(),
            Ref::Slug(s) => s.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ListParams {
    pub category: Option<Ref>,
    pub vendor: Option<Ref>,
    pub min_price: Option<i64>,
    pub max_price: Option<i64>,
    /// The FTS5 match expression built from `q`, never `q` itself.
    pub fts: Option<String>,
    pub sort: Sort,
    pub limit: u32,
    pub cursor: Option<String>,
}

impl ListParams {
    pub fn parse(query: &str) -> Result<ListParams, Problem> {
        let mut category = None;
        let mut vendor = None;
        let mut min_price = None;
        let mut max_price = None;
        let mut fts = None;
        let mut sort = None;
        let mut limit = DEFAULT_LIMIT;
        let mut cursor = None;
        let mut seen: Vec<String> = Vec::new();
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            if seen.iter().any(|k| *k == key) {
                return Err(Problem::invalid_parameter(
                    &key,
                    format!("{key} is given more than once"),
                ));
            }
            seen.push(key.to_string());
            match &*key {
                "category" => category = Some(parse_ref("category", &value)?),
                "vendor" => vendor = Some(parse_ref("vendor", &value)?),
                "min_price" => min_price = Some(parse_price("min_price", &value)?),
                "max_price" => max_price = Some(parse_price("max_price", &value)?),
                "q" => fts = Some(fts_expression(&value)?),
                "sort" => {
                    sort = Some(match &*value {
                        "relevance" => Sort::Relevance,
                        "price_asc" => Sort::PriceAsc,
                        "price_desc" => Sort::PriceDesc,
                        "newest" => Sort::Newest,
                        other => {
                            return Err(Problem::invalid_parameter(
                                "sort",
                                format!(
                                    "sort must be one of relevance, price_asc, price_desc, newest; got {other:?}"
                                ),
                            ));
                        }
                    })
                }
                "limit" => {
                    limit = match value.parse::<u32>() {
                        Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
                        _ => {
                            return Err(Problem::invalid_parameter(
                                "limit",
                                format!(
                                    "limit must be an integer from 1 to {MAX_LIMIT}, got {value:?}"
                                ),
                            ));
                        }
                    }
                }
                "cursor" => {
                    if value.is_empty() || value.len() > 512 {
                        return Err(Problem::invalid_parameter(
                            "cursor",
                            "cursor must be the next_cursor of a previous page",
                        ));
                    }
                    cursor = Some(value.to_string());
                }
                other => {
                    return Err(Problem::invalid_parameter(
                        other,
                        format!(
                            "unknown parameter {other:?}; known: category, vendor, min_price, max_price, q, sort, limit, cursor"
                        ),
                    ));
                }
            }
        }
        if let (Some(lo), Some(hi)) = (min_price, max_price)
            && lo > hi
        {
            return Err(Problem::invalid_parameter(
                "min_price",
                format!("min_price ({lo}) is greater than max_price ({hi})"),
            ));
        }
        let sort = match (sort, &fts) {
            (Some(Sort::Relevance), None) => {
                return Err(Problem::invalid_parameter(
                    "sort",
                    "sort=relevance needs a search query in q",
                ));
            }
            (Some(s), _) => s,
            (None, Some(_)) => Sort::Relevance,
            (None, None) => Sort::Newest,
        };
        Ok(ListParams {
            category,
            vendor,
            min_price,
            max_price,
            fts,
            sort,
            limit,
            cursor,
        })
    }

    /// A digest of everything that selects and orders rows (not `limit`):
    /// a cursor is only valid for the query that produced it.
    pub fn filter_digest(&self) -> String {
        let canonical = format!(
            "c={:?}|v={:?}|lo={:?}|hi={:?}|q={:?}|s={}",
            self.category,
            self.vendor,
            self.min_price,
            self.max_price,
            self.fts,
            self.sort.as_str()
        );
        let digest = Sha256::digest(canonical.as_bytes());
        digest[..8].iter().map(|b| format!("{b:02x}")).collect()
    }
}

fn parse_ref(name: &str, value: &str) -> Result<Ref, Problem> {
    let invalid = || {
        Problem::invalid_parameter(
            name,
            format!("{name} must be a positive id or a slug (a-z, 0-9, -), got {value:?}"),
        )
    };
    if let Ok(id) = value.parse::<i64>() {
        return if id > 0 {
            Ok(Ref::Id(id))
        } else {
            Err(invalid())
        };
    }
    let valid_slug = value.len() <= 100
        && value.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if valid_slug {
        Ok(Ref::Slug(value.to_string()))
    } else {
        Err(invalid())
    }
}

fn parse_price(name: &str, value: &str) -> Result<i64, Problem> {
    match value.parse::<i64>() {
        Ok(n) if n >= 0 => Ok(n),
        _ => Err(Problem::invalid_parameter(
            name,
            format!("{name} is a non-negative integer in minor units (cents), got {value:?}"),
        )),
    }
}

/// Turns free text into a safe FTS5 expression: each term quoted, so no
/// FTS5 operator or column filter from the client ever reaches SQLite; the
/// last term matches as a prefix so search-as-you-type works.
fn fts_expression(q: &str) -> Result<String, Problem> {
    if q.len() > MAX_QUERY_BYTES {
        return Err(Problem::invalid_parameter(
            "q",
            format!("q is longer than {MAX_QUERY_BYTES} bytes"),
        ));
    }
    let terms: Vec<String> = q
        .split(|c: char| !c.is_alphanumeric())
        .filter(|t| !t.is_empty())
        .take(MAX_TERMS)
        .map(str::to_lowercase)
        .collect();
    if terms.is_empty() {
        return Err(Problem::invalid_parameter(
            "q",
            "q must contain at least one letter or digit",
        ));
    }
    let last = terms.len() - 1;
    Ok(terms
        .iter()
        .enumerate()
        .map(|(i, t)| {
            if i == last {
                format!("\"{t}\"*")
            } else {
                format!("\"{t}\"")
            }
        })
        .collect::<Vec<_>>()
        .join(" "))
}

/// `counts` of `GET /api/v1/categories`: `true` (the default) or `false`.
/// Other parameters are ignored there, as they always were.
pub(crate) fn counts(query: &str) -> Result<bool, Problem> {
    let mut counts = true;
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        if key == "counts" {
            counts = match &*value {
                "true" => true,
                "false" => false,
                other => {
                    return Err(Problem::invalid_parameter(
                        "counts",
                        format!("counts must be true or false, got {other:?}"),
                    ));
                }
            };
        }
    }
    Ok(counts)
}
