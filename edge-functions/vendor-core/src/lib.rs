//! A vendor's product edits as plain data: what a create, a patch or a
//! stock change may say, checked field by field before anything is
//! written, and the versions `ETag` and `If-Match` carry.
//!
//! The origin applies an edit in one transaction after these checks; the
//! edge gateway runs the same checks first, so a bad request never costs
//! a round trip to the origin. Errors are problems naming the field: 400
//! when the body is not a JSON object, 422 when a field is not acceptable.

use problem::Problem;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

mod precondition;
pub mod upload;

pub use precondition::{IfMatch, etag, if_match};

/// Largest edit body the API reads.
pub const MAX_BODY_BYTES: usize = 64 << 10;
pub const MAX_TITLE_CHARS: usize = 200;
pub const MAX_DESCRIPTION_CHARS: usize = 20_000;
/// Ten million in major units of a two-decimal currency.
pub const MAX_PRICE_MINOR: i64 = 1_000_000_000;
pub const MAX_STOCK: i64 = 1_000_000_000;
pub const MAX_CATEGORIES: usize = 10;
pub const MAX_SLUG_CHARS: usize = 80;
/// Most products one stock request changes.
pub const MAX_STOCK_CHANGES: usize = 500;

/// Whether shoppers see a product.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Visible to its vendor only, at the origin's vendor API.
    Draft,
    /// In the catalog at every PoP.
    Published,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Draft => "draft",
            Status::Published => "published",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        match s {
            "draft" => Some(Status::Draft),
            "published" => Some(Status::Published),
            _ => None,
        }
    }
}

/// The fields of a product a vendor controls. In a create every field
/// but `slug` (derived from the title when absent) and `status` (draft by
/// default) is required; in a patch every field is optional and an absent
/// one keeps its value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProductFields {
    pub title: Option<String>,
    pub description: Option<String>,
    pub price_minor: Option<i64>,
    pub currency: Option<String>,
    pub stock: Option<i64>,
    pub categories: Option<Vec<i64>>,
    pub slug: Option<String>,
    pub status: Option<Status>,
}

const FIELDS: &[&str] = &[
    "title",
    "description",
    "price_minor",
    "currency",
    "stock",
    "categories",
    "slug",
    "status",
];

fn invalid(field: &str, detail: impl Into<String>) -> Problem {
    Problem::new(422, "invalid-product", "The product is not valid", detail).with("field", field)
}

fn object(body: &[u8], shape: &str) -> Result<Map<String, Value>, Problem> {
    if body.len() > MAX_BODY_BYTES {
        return Err(Problem::payload_too_large(MAX_BODY_BYTES as u64));
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(Problem::bad_request(format!(
            "the body must be a JSON object: {shape}"
        ))),
        Err(e) => Err(Problem::bad_request(format!(
            "the body is not JSON ({e}); send {shape}"
        ))),
    }
}

const PRODUCT_SHAPE: &str = "{\"title\": ..., \"description\": ..., \"price_minor\": 1999, \
     \"currency\": \"EUR\", \"stock\": 10, \"categories\": [1], \"status\": \"draft\"}";

impl ProductFields {
    /// A create's body: every required field present and valid.
    pub fn parse_new(body: &[u8]) -> Result<ProductFields, Problem> {
        let fields = Self::parse(body)?;
        for (name, present) in [
            ("title", fields.title.is_some()),
            ("description", fields.description.is_some()),
            ("price_minor", fields.price_minor.is_some()),
            ("currency", fields.currency.is_some()),
            ("stock", fields.stock.is_some()),
            ("categories", fields.categories.is_some()),
        ] {
            if !present {
                return Err(invalid(name, format!("{name} is required")));
            }
        }
        Ok(fields)
    }

    /// A patch's body: at least one field, each valid.
    pub fn parse_patch(body: &[u8]) -> Result<ProductFields, Problem> {
        let fields = Self::parse(body)?;
        if fields == ProductFields::default() {
            return Err(Problem::bad_request(format!(
                "the patch changes nothing; send one or more of {}",
                FIELDS.join(", ")
            )));
        }
        Ok(fields)
    }

    fn parse(body: &[u8]) -> Result<ProductFields, Problem> {
        let map = object(body, PRODUCT_SHAPE)?;
        if let Some(unknown) = map.keys().find(|k| !FIELDS.contains(&k.as_str())) {
            return Err(invalid(
                unknown,
                format!(
                    "{unknown} is not a product field a vendor sets; the fields are {}",
                    FIELDS.join(", ")
                ),
            ));
        }
        let mut f = ProductFields::default();
        for (name, value) in &map {
            match name.as_str() {
                "title" => f.title = Some(text(name, value, MAX_TITLE_CHARS, false)?),
                "description" => {
                    f.description = Some(text(name, value, MAX_DESCRIPTION_CHARS, true)?)
                }
                "price_minor" => f.price_minor = Some(integer(name, value, 0, MAX_PRICE_MINOR)?),
                "stock" => f.stock = Some(integer(name, value, 0, MAX_STOCK)?),
                "currency" => f.currency = Some(currency(value)?),
                "categories" => f.categories = Some(categories(value)?),
                "slug" => f.slug = Some(slug(value)?),
                "status" => {
                    f.status = Some(
                        value
                            .as_str()
                            .and_then(Status::parse)
                            .ok_or_else(|| invalid(name, "status is \"draft\" or \"published\""))?,
                    )
                }
                _ => unreachable!("unknown fields were refused above"),
            }
        }
        Ok(f)
    }
}

/// A text field: trimmed, not empty (a title) or possibly empty (a
/// description keeps its line breaks), no other control characters.
fn text(field: &str, value: &Value, max: usize, multiline: bool) -> Result<String, Problem> {
    let s = value
        .as_str()
        .ok_or_else(|| invalid(field, format!("{field} must be a string")))?
        .trim();
    if !multiline && s.is_empty() {
        return Err(invalid(field, format!("{field} cannot be empty")));
    }
    if s.chars().count() > max {
        return Err(invalid(
            field,
            format!("{field} is longer than {max} characters"),
        ));
    }
    let allowed = |c: char| !c.is_control() || (multiline && (c == '\n' || c == '\t'));
    if !s.chars().all(allowed) {
        return Err(invalid(
            field,
            format!("{field} contains control characters"),
        ));
    }
    Ok(s.to_string())
}

fn integer(field: &str, value: &Value, min: i64, max: i64) -> Result<i64, Problem> {
    match value.as_i64() {
        Some(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(invalid(
            field,
            format!("{field} must be a whole number from {min} to {max}"),
        )),
    }
}

fn currency(value: &Value) -> Result<String, Problem> {
    match value.as_str() {
        Some(c) if c.len() == 3 && c.bytes().all(|b| b.is_ascii_uppercase()) => Ok(c.to_string()),
        _ => Err(invalid(
            "currency",
            "currency must be an ISO 4217 code in capitals, e.g. EUR",
        )),
    }
}

fn categories(value: &Value) -> Result<Vec<i64>, Problem> {
    let bad = || {
        invalid(
            "categories",
            format!("categories must be a list of 1 to {MAX_CATEGORIES} distinct category ids"),
        )
    };
    let list = value.as_array().ok_or_else(bad)?;
    if list.is_empty() || list.len() > MAX_CATEGORIES {
        return Err(bad());
    }
    let mut ids = Vec::with_capacity(list.len());
    for v in list {
        match v.as_i64() {
            Some(id) if id > 0 && !ids.contains(&id) => ids.push(id),
            _ => return Err(bad()),
        }
    }
    ids.sort_unstable();
    Ok(ids)
}

fn slug(value: &Value) -> Result<String, Problem> {
    match value.as_str() {
        Some(s) if is_slug(s) => Ok(s.to_string()),
        _ => Err(invalid(
            "slug",
            format!(
                "a slug is 1 to {MAX_SLUG_CHARS} lowercase letters, digits and single hyphens, \
                 e.g. blue-wool-scarf"
            ),
        )),
    }
}

pub fn is_slug(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_SLUG_CHARS
        && s.split('-').all(|part| {
            !part.is_empty() && part.bytes().all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9'))
        })
}

/// A slug from a title: ASCII letters and digits lowercased, every other
/// run of characters one hyphen, cut to leave room for a `-{id}` suffix.
/// `None` when nothing of the title is left (the caller names the id).
pub fn slugify(title: &str) -> Option<String> {
    let mut out = String::new();
    for c in title.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    let mut out: String = out.chars().take(MAX_SLUG_CHARS - 21).collect();
    while out.ends_with('-') {
        out.pop();
    }
    (!out.is_empty()).then_some(out)
}

/// One product's new stock: a level, or a change to the current one, and
/// optionally the version it was read at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StockChange {
    pub id: i64,
    pub to: StockTo,
    pub version: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StockTo {
    Level(i64),
    Delta(i64),
}

const STOCK_SHAPE: &str =
    "{\"items\": [{\"id\": 1, \"stock\": 10}, {\"id\": 2, \"delta\": -3, \"version\": 4}]}";

/// A stock request's body: 1 to [`MAX_STOCK_CHANGES`] distinct products,
/// each with exactly one of `stock` and `delta`.
pub fn parse_stock_changes(body: &[u8]) -> Result<Vec<StockChange>, Problem> {
    let map = object(body, STOCK_SHAPE)?;
    let items = match map.get("items") {
        Some(Value::Array(items)) if !items.is_empty() && items.len() <= MAX_STOCK_CHANGES => items,
        _ => {
            return Err(invalid(
                "items",
                format!("items must list 1 to {MAX_STOCK_CHANGES} stock changes: {STOCK_SHAPE}"),
            ));
        }
    };
    if let Some(unknown) = map.keys().find(|k| *k != "items") {
        return Err(invalid(
            unknown,
            format!("{unknown} is not part of a stock request"),
        ));
    }
    let mut changes: Vec<StockChange> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let field = format!("items[{i}]");
        let item = item
            .as_object()
            .ok_or_else(|| invalid(&field, format!("{field} must be an object")))?;
        if let Some(unknown) = item
            .keys()
            .find(|k| !["id", "stock", "delta", "version"].contains(&k.as_str()))
        {
            return Err(invalid(
                &format!("{field}.{unknown}"),
                format!("{unknown} is not part of a stock change (id, stock or delta, version)"),
            ));
        }
        let id = item
            .get("id")
            .and_then(Value::as_i64)
            .filter(|id| *id > 0)
            .ok_or_else(|| invalid(&format!("{field}.id"), "id must be a product id"))?;
        if changes.iter().any(|c| c.id == id) {
            return Err(invalid(
                &format!("{field}.id"),
                format!("product {id} appears twice; send one change per product"),
            ));
        }
        let to = match (item.get("stock"), item.get("delta")) {
            (Some(v), None) => StockTo::Level(integer(&format!("{field}.stock"), v, 0, MAX_STOCK)?),
            (None, Some(v)) => StockTo::Delta(integer(
                &format!("{field}.delta"),
                v,
                -MAX_STOCK,
                MAX_STOCK,
            )?),
            _ => {
                return Err(invalid(
                    &field,
                    "a stock change has exactly one of stock (the new level) and delta",
                ));
            }
        };
        let version = match item.get("version") {
            None => None,
            Some(v) => Some(integer(&format!("{field}.version"), v, 1, i64::MAX)?),
        };
        changes.push(StockChange { id, to, version });
    }
    Ok(changes)
}

#[cfg(test)]
mod tests;

/// A resource of the vendor API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `/api/v1/vendor/products`: list and create.
    Products,
    /// `/api/v1/vendor/products/{id}`: read, patch, delete.
    Product(i64),
    /// `/api/v1/vendor/products/{id}/media`: attach an upload.
    ProductMedia(i64),
    /// `/api/v1/vendor/stock`: many products' stock at once.
    Stock,
    /// `/api/v1/vendor/uploads`: a signed upload URL, and the list.
    Uploads,
    /// `/api/v1/vendor/uploads/{id}`: one upload and its processing.
    Upload(i64),
}

/// Another vendor's upload, or none.
pub fn no_such_upload() -> Problem {
    Problem::not_found("you have no upload with this id; GET /api/v1/vendor/uploads lists yours")
}

/// Another vendor's product, or none: one answer for both, so ids reveal
/// nothing.
pub fn not_yours() -> Problem {
    Problem::not_found("you have no product with this id; GET /api/v1/vendor/products lists yours")
}

impl Route {
    /// The resource at `path`; a product id that is not one is no
    /// product of anyone's.
    pub fn parse(path: &str) -> Result<Route, Problem> {
        match path.trim_end_matches('/') {
            "/api/v1/vendor/products" => Ok(Route::Products),
            "/api/v1/vendor/stock" => Ok(Route::Stock),
            "/api/v1/vendor/uploads" => Ok(Route::Uploads),
            p => {
                let id = |s: &str| s.parse::<i64>().ok().filter(|id| *id > 0);
                if let Some(rest) = p.strip_prefix("/api/v1/vendor/products/") {
                    let (product, media) = match rest.strip_suffix("/media") {
                        Some(product) => (product, true),
                        None => (rest, false),
                    };
                    match (id(product), media) {
                        (Some(id), false) => Ok(Route::Product(id)),
                        (Some(id), true) => Ok(Route::ProductMedia(id)),
                        (None, _) => Err(not_yours()),
                    }
                } else if let Some(upload) = p.strip_prefix("/api/v1/vendor/uploads/") {
                    id(upload).map(Route::Upload).ok_or_else(no_such_upload)
                } else {
                    Err(Problem::not_found(format!(
                        "the vendor API has no resource at {path}; it has \
                         /api/v1/vendor/products, /api/v1/vendor/stock and /api/v1/vendor/uploads"
                    )))
                }
            }
        }
    }

    pub fn methods(self) -> &'static [&'static str] {
        match self {
            Route::Products => &["GET", "POST"],
            Route::Product(_) => &["GET", "PATCH", "DELETE"],
            Route::ProductMedia(_) | Route::Stock => &["POST"],
            Route::Uploads => &["GET", "POST"],
            Route::Upload(_) => &["GET"],
        }
    }

    /// Everything about a request that can be checked without the
    /// catalog: the method, a JSON body's media type, `If-Match` where a
    /// change needs it, and the body. The edge gateway runs this before
    /// forwarding, and the origin again.
    pub fn check(
        self,
        method: &str,
        content_type: Option<&str>,
        if_match: Option<&str>,
        body: &[u8],
    ) -> Result<(), Problem> {
        if !self.methods().contains(&method) {
            return Err(Problem::method_not_allowed(method, self.methods()));
        }
        let has_body = matches!(
            (self, method),
            (Route::Products | Route::Uploads, "POST")
                | (Route::Product(_), "PATCH")
                | (Route::Stock | Route::ProductMedia(_), _)
        );
        let json = content_type
            .and_then(|c| c.split(';').next())
            .is_some_and(|c| c.trim().eq_ignore_ascii_case("application/json"));
        if has_body && !json {
            return Err(Problem::new(
                415,
                "unsupported-media-type",
                "Unsupported media type",
                "send the body as JSON with `content-type: application/json`",
            ));
        }
        match (self, method) {
            (Route::Products, "POST") => ProductFields::parse_new(body).map(drop),
            (Route::Product(_), "PATCH") => {
                ProductFields::parse_patch(body)?;
                precondition::if_match(if_match).map(drop)
            }
            (Route::Product(_), "DELETE") => precondition::if_match(if_match).map(drop),
            (Route::Stock, _) => parse_stock_changes(body).map(drop),
            (Route::Uploads, "POST") => upload::UploadRequest::parse(body).map(drop),
            (Route::ProductMedia(_), _) => upload::parse_attach(body).map(drop),
            _ => Ok(()),
        }
    }
}
