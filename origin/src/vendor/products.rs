//! The vendor API's SQL. Each edit is one `BEGIN IMMEDIATE` transaction on
//! the catalog primary that checks ownership, the `If-Match` version and
//! every reference inside it, so a refusal changes nothing and two edits
//! of one product cannot both pass the version check.

use libsql::{Connection, TransactionBehavior, params};
use problem::Problem;
use serde_json::{Value, json};
use vendor_core::{IfMatch, ProductFields, Status, StockChange, StockTo};

/// Most products one listing page holds.
const MAX_PAGE: i64 = 100;

/// Column 1, the owner, is checked by the queries, not read.
const COLUMNS: &str = "p.id, p.vendor_id, p.slug, p.title, p.description, p.price_minor, \
     p.currency, p.stock, p.status, p.media, p.created_at, p.updated_at, p.version, \
     (SELECT group_concat(pc.category_id) FROM product_categories pc WHERE pc.product_id = p.id)";

/// A product as its vendor sees it.
#[derive(Debug, Clone)]
pub struct Product {
    pub id: i64,
    pub slug: String,
    pub title: String,
    pub description: String,
    pub price_minor: i64,
    pub currency: String,
    pub stock: i64,
    pub status: String,
    pub media: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub version: i64,
    pub categories: Vec<i64>,
}

impl Product {
    fn from_row(row: &libsql::Row) -> Result<Product, libsql::Error> {
        let mut categories: Vec<i64> = row
            .get::<Option<String>>(13)?
            .unwrap_or_default()
            .split(',')
            .filter_map(|c| c.parse().ok())
            .collect();
        categories.sort_unstable();
        Ok(Product {
            id: row.get(0)?,
            slug: row.get(2)?,
            title: row.get(3)?,
            description: row.get(4)?,
            price_minor: row.get(5)?,
            currency: row.get(6)?,
            stock: row.get(7)?,
            status: row.get(8)?,
            media: row.get(9)?,
            created_at: row.get(10)?,
            updated_at: row.get(11)?,
            version: row.get(12)?,
            categories,
        })
    }

    /// The API's JSON: the fields a vendor sets, by the names they set
    /// them with, and what the platform keeps.
    pub fn json(&self) -> Value {
        json!({
            "id": self.id,
            "slug": self.slug,
            "title": self.title,
            "description": self.description,
            "price_minor": self.price_minor,
            "currency": self.currency,
            "stock": self.stock,
            "categories": self.categories,
            "status": self.status,
            "media": serde_json::from_str::<Value>(&self.media).unwrap_or_else(|_| json!([])),
            "created_at": catalog_core::rfc3339(self.created_at),
            "updated_at": catalog_core::rfc3339(self.updated_at),
            "version": self.version,
        })
    }
}

/// Why an edit was refused.
#[derive(Debug)]
pub enum Refusal {
    /// Not this vendor's product, or none at all (one answer for both).
    NotYours,
    /// `If-Match` named another version.
    Stale {
        current: i64,
    },
    Problem(Problem),
}

/// A listing's parameters.
#[derive(Debug, Clone, Default)]
pub struct Page {
    status: Option<Status>,
    after: Option<i64>,
    limit: i64,
}

impl Page {
    pub fn parse(query: Option<&str>) -> Result<Page, Problem> {
        let mut page = Page {
            limit: 50,
            ..Page::default()
        };
        for (k, v) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            match &*k {
                "status" => {
                    page.status = Some(Status::parse(&v).ok_or_else(|| {
                        Problem::invalid_parameter("status", "status is draft or published")
                    })?)
                }
                "after" => {
                    page.after =
                        Some(v.parse::<i64>().ok().filter(|n| *n > 0).ok_or_else(|| {
                            Problem::invalid_parameter("after", "after must be a product id")
                        })?)
                }
                "limit" => {
                    page.limit = v
                        .parse::<i64>()
                        .ok()
                        .filter(|n| (1..=MAX_PAGE).contains(n))
                        .ok_or_else(|| {
                            Problem::invalid_parameter(
                                "limit",
                                format!("limit must be a whole number from 1 to {MAX_PAGE}"),
                            )
                        })?
                }
                other => {
                    return Err(Problem::invalid_parameter(
                        other,
                        "unknown parameter; use status, after and limit",
                    ));
                }
            }
        }
        Ok(page)
    }
}

/// A page of the vendor's products, newest id first, with the link to
/// the next page when there is one.
pub async fn list(conn: &Connection, vendor: i64, page: &Page) -> Result<Value, libsql::Error> {
    let mut rows = conn
        .query(
            &format!(
                "SELECT {COLUMNS} FROM products p WHERE p.vendor_id = ?1 \
                 AND (?2 IS NULL OR p.status = ?2) AND (?3 IS NULL OR p.id < ?3) \
                 ORDER BY p.id DESC LIMIT ?4"
            ),
            params![
                vendor,
                page.status.map(Status::as_str),
                page.after,
                page.limit + 1
            ],
        )
        .await?;
    let mut products = Vec::new();
    while let Some(row) = rows.next().await? {
        products.push(Product::from_row(&row)?);
    }
    let next = if products.len() as i64 > page.limit {
        products.truncate(page.limit as usize);
        let mut next = format!(
            "/api/v1/vendor/products?limit={}&after={}",
            page.limit,
            products.last().map(|p| p.id).unwrap_or_default()
        );
        if let Some(s) = page.status {
            next.push_str(&format!("&status={}", s.as_str()));
        }
        Value::String(next)
    } else {
        Value::Null
    };
    Ok(json!({
        "products": products.iter().map(Product::json).collect::<Vec<_>>(),
        "next": next,
    }))
}

/// The vendor's product `id`, if it is theirs.
pub async fn load(
    conn: &Connection,
    vendor: i64,
    id: i64,
) -> Result<Option<Product>, libsql::Error> {
    let mut rows = conn
        .query(
            &format!("SELECT {COLUMNS} FROM products p WHERE p.id = ?1 AND p.vendor_id = ?2"),
            params![id, vendor],
        )
        .await?;
    match rows.next().await? {
        Some(row) => Ok(Some(Product::from_row(&row)?)),
        None => Ok(None),
    }
}

/// Runs `edit` in one immediate transaction: committed when it returns
/// `Ok(Ok(_))`, rolled back otherwise.
pub(super) async fn in_transaction<T, E>(
    conn: &Connection,
    edit: impl AsyncFnOnce(&Connection) -> Result<Result<T, E>, libsql::Error>,
) -> Result<Result<T, E>, libsql::Error> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .await?;
    match edit(&*tx).await {
        Ok(Ok(done)) => {
            tx.commit().await?;
            Ok(Ok(done))
        }
        Ok(Err(refused)) => {
            tx.rollback().await?;
            Ok(Err(refused))
        }
        Err(e) => {
            let _ = tx.rollback().await;
            Err(e)
        }
    }
}

fn invalid(field: &str, status: u16, kind: &str, title: &str, detail: String) -> Problem {
    Problem::new(status, kind, title, detail).with("field", field)
}

/// Every id in `categories` exists.
async fn check_categories(
    conn: &Connection,
    categories: &[i64],
) -> Result<Result<(), Problem>, libsql::Error> {
    for id in categories {
        let mut rows = conn
            .query("SELECT 1 FROM categories WHERE id = ?1", params![*id])
            .await?;
        if rows.next().await?.is_none() {
            return Ok(Err(invalid(
                "categories",
                422,
                "invalid-product",
                "The product is not valid",
                format!("there is no category {id}; GET /api/v1/categories lists them"),
            )));
        }
    }
    Ok(Ok(()))
}

/// `slug` is free, or already `id`'s.
async fn check_slug(
    conn: &Connection,
    slug: &str,
    id: Option<i64>,
) -> Result<Result<(), Problem>, libsql::Error> {
    let mut rows = conn
        .query(
            "SELECT id FROM products WHERE slug = ?1 AND id IS NOT ?2",
            params![slug, id],
        )
        .await?;
    Ok(match rows.next().await? {
        None => Ok(()),
        Some(_) => Err(invalid(
            "slug",
            409,
            "slug-taken",
            "Slug taken",
            format!("another product already uses the slug {slug:?}; choose another"),
        )),
    })
}

async fn set_categories(
    conn: &Connection,
    id: i64,
    categories: &[i64],
) -> Result<(), libsql::Error> {
    conn.execute(
        "DELETE FROM product_categories WHERE product_id = ?1",
        params![id],
    )
    .await?;
    for c in categories {
        conn.execute(
            "INSERT INTO product_categories (category_id, product_id) VALUES (?1, ?2)",
            params![*c, id],
        )
        .await?;
    }
    Ok(())
}

/// Creates a product for `vendor` from a checked create body. Without a
/// slug it gets one from its title, suffixed with its id when taken.
pub async fn create(
    conn: &Connection,
    vendor: i64,
    f: &ProductFields,
    now: i64,
) -> Result<Result<Product, Problem>, libsql::Error> {
    in_transaction(conn, async |tx: &Connection| {
        let categories = f.categories.as_deref().unwrap_or_default();
        if let Err(p) = check_categories(tx, categories).await? {
            return Ok(Err(p));
        }
        if let Some(slug) = &f.slug
            && let Err(p) = check_slug(tx, slug, None).await?
        {
            return Ok(Err(p));
        }
        let base = f.title.as_deref().and_then(vendor_core::slugify);
        // A slug no other product can hold (slugs have no dots) until the
        // id is known.
        let placeholder = format!("new.{vendor}.{now}");
        let mut rows = tx
            .query(
                "INSERT INTO products (slug, vendor_id, title, description, price_minor, currency, \
                 stock, media, created_at, updated_at, version, status) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, '[]', ?8, ?8, 1, ?9) RETURNING id",
                params![
                    f.slug.clone().unwrap_or(placeholder),
                    vendor,
                    f.title.clone(),
                    f.description.clone(),
                    f.price_minor,
                    f.currency.clone(),
                    f.stock,
                    now,
                    f.status.unwrap_or(Status::Draft).as_str()
                ],
            )
            .await?;
        let id: i64 = match rows.next().await? {
            Some(row) => row.get(0)?,
            None => return Err(libsql::Error::QueryReturnedNoRows),
        };
        drop(rows);
        if f.slug.is_none() {
            let slug = match base {
                Some(base) => {
                    if check_slug(tx, &base, Some(id)).await?.is_ok() {
                        base
                    } else {
                        format!("{base}-{id}")
                    }
                }
                None => format!("product-{id}"),
            };
            tx.execute(
                "UPDATE products SET slug = ?1 WHERE id = ?2",
                params![slug, id],
            )
            .await?;
        }
        set_categories(tx, id, categories).await?;
        match load(tx, vendor, id).await? {
            Some(p) => Ok(Ok(p)),
            None => Err(libsql::Error::QueryReturnedNoRows),
        }
    })
    .await
}

/// The product, when it is `vendor`'s and at a version `expected` names.
async fn owned_at(
    conn: &Connection,
    vendor: i64,
    id: i64,
    expected: &IfMatch,
) -> Result<Result<Product, Refusal>, libsql::Error> {
    Ok(match load(conn, vendor, id).await? {
        None => Err(Refusal::NotYours),
        Some(p) if !expected.matches(p.version) => Err(Refusal::Stale { current: p.version }),
        Some(p) => Ok(p),
    })
}

/// Applies a checked patch to the vendor's product at the version
/// `expected` names.
pub async fn update(
    conn: &Connection,
    vendor: i64,
    id: i64,
    expected: &IfMatch,
    f: &ProductFields,
    now: i64,
) -> Result<Result<Product, Refusal>, libsql::Error> {
    in_transaction(conn, async |tx: &Connection| {
        if let Err(r) = owned_at(tx, vendor, id, expected).await? {
            return Ok(Err(r));
        }
        if let Some(categories) = &f.categories
            && let Err(p) = check_categories(tx, categories).await?
        {
            return Ok(Err(Refusal::Problem(p)));
        }
        if let Some(slug) = &f.slug
            && let Err(p) = check_slug(tx, slug, Some(id)).await?
        {
            return Ok(Err(Refusal::Problem(p)));
        }
        tx.execute(
            "UPDATE products SET title = coalesce(?1, title), \
             description = coalesce(?2, description), price_minor = coalesce(?3, price_minor), \
             currency = coalesce(?4, currency), stock = coalesce(?5, stock), \
             slug = coalesce(?6, slug), status = coalesce(?7, status), \
             version = version + 1, updated_at = ?8 WHERE id = ?9",
            params![
                f.title.clone(),
                f.description.clone(),
                f.price_minor,
                f.currency.clone(),
                f.stock,
                f.slug.clone(),
                f.status.map(Status::as_str),
                now,
                id
            ],
        )
        .await?;
        if let Some(categories) = &f.categories {
            set_categories(tx, id, categories).await?;
        }
        match load(tx, vendor, id).await? {
            Some(p) => Ok(Ok(p)),
            None => Err(libsql::Error::QueryReturnedNoRows),
        }
    })
    .await
}

/// Whether an order that is not final yet names product `id` (read from
/// the orders database).
pub async fn in_open_order(orders: &Connection, id: i64) -> Result<bool, libsql::Error> {
    let mut rows = orders
        .query(
            "SELECT 1 FROM order_lines l JOIN orders o ON o.id = l.order_id \
             WHERE l.product_id = ?1 AND o.final = 0 LIMIT 1",
            params![id],
        )
        .await?;
    Ok(rows.next().await?.is_some())
}

fn in_open_orders() -> Problem {
    Problem::new(
        409,
        "product-in-open-orders",
        "Product in open orders",
        "an order that is not complete yet holds this product, so it cannot be deleted now; \
         set its stock to 0 or make it a draft to stop new orders, and delete it once \
         those orders are complete",
    )
}

/// Deletes the vendor's product at the version `expected` names, unless
/// an open order holds it: `open_order` from the orders database, or a
/// stock hold still held in the catalog itself.
pub async fn delete(
    conn: &Connection,
    vendor: i64,
    id: i64,
    expected: &IfMatch,
    open_order: bool,
) -> Result<Result<(), Refusal>, libsql::Error> {
    in_transaction(conn, async |tx: &Connection| {
        if let Err(r) = owned_at(tx, vendor, id, expected).await? {
            return Ok(Err(r));
        }
        let mut held = tx
            .query(
                "SELECT 1 FROM stock_holds h, json_each(h.lines) l \
                 WHERE h.state = 'held' AND json_extract(l.value, '$[0]') = ?1 LIMIT 1",
                params![id],
            )
            .await?;
        if open_order || held.next().await?.is_some() {
            return Ok(Err(Refusal::Problem(in_open_orders())));
        }
        drop(held);
        tx.execute(
            "DELETE FROM product_categories WHERE product_id = ?1",
            params![id],
        )
        .await?;
        tx.execute("DELETE FROM products WHERE id = ?1", params![id])
            .await?;
        Ok(Ok(()))
    })
    .await
}

/// Applies every stock change or none: each product must be the vendor's,
/// at the version named (when one is), and never below zero.
pub async fn change_stock(
    conn: &Connection,
    vendor: i64,
    changes: &[StockChange],
    now: i64,
) -> Result<Result<Vec<Value>, Refusal>, libsql::Error> {
    in_transaction(conn, async |tx: &Connection| {
        let mut levels = Vec::with_capacity(changes.len());
        for (i, c) in changes.iter().enumerate() {
            let field = format!("items[{i}]");
            let Some(p) = load(tx, vendor, c.id).await? else {
                return Ok(Err(Refusal::Problem(
                    Problem::not_found(format!(
                        "you have no product {}; nothing was changed",
                        c.id
                    ))
                    .with("field", format!("{field}.id")),
                )));
            };
            if let Some(v) = c.version
                && v != p.version
            {
                return Ok(Err(Refusal::Problem(
                    IfMatch::stale(p.version).with("field", format!("{field}.version")),
                )));
            }
            let stock = match c.to {
                StockTo::Level(n) => n,
                StockTo::Delta(d) => p.stock + d,
            };
            if !(0..=vendor_core::MAX_STOCK).contains(&stock) {
                return Ok(Err(Refusal::Problem(invalid(
                    &field,
                    409,
                    "stock-out-of-range",
                    "Stock out of range",
                    format!(
                        "product {} has {} in stock; this change would make it {stock}; \
                         nothing was changed",
                        c.id, p.stock
                    ),
                ))));
            }
            tx.execute(
                "UPDATE products SET stock = ?1, version = version + 1, updated_at = ?2 WHERE id = ?3",
                params![stock, now, c.id],
            )
            .await?;
            levels.push(json!({ "id": c.id, "stock": stock, "version": p.version + 1 }));
        }
        Ok(Ok(levels))
    })
    .await
}

/// Appends a processed image to product `id`'s media, as a new version
/// (so its cached pages are purged); `false` when the product is gone.
pub async fn add_media(
    conn: &Connection,
    id: i64,
    image: &Value,
    now: i64,
) -> Result<bool, libsql::Error> {
    let changed = conn
        .execute(
            "UPDATE products SET media = json_insert(media, '$[#]', json(?1)), \
             version = version + 1, updated_at = ?2 WHERE id = ?3",
            params![image.to_string(), now, id],
        )
        .await?;
    Ok(changed == 1)
}
