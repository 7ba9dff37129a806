//! SQL for each route. Every value from the client is a bound parameter.

use crate::cursor::CursorKey;
use crate::params::{ListParams, Ref, Sort};

pub use edge_sql::SqlValue;

/// The columns of a product row, in order (see `model::product`).
const PRODUCT_COLUMNS: &str = "p.id, p.slug, p.vendor_id, p.title, p.description, p.price_minor, \
     p.currency, p.stock, p.media, p.created_at, p.updated_at, p.version, \
     (SELECT group_concat(pc.category_id) FROM product_categories pc WHERE pc.product_id = p.id), \
     v.name, v.slug";

/// Shoppers see published products only; a vendor's drafts stay theirs.
const PUBLISHED: &str = "p.status = 'published'";

pub(crate) fn product() -> String {
    format!(
        "SELECT {PRODUCT_COLUMNS}, NULL FROM products p JOIN vendors v ON v.id = p.vendor_id \
         WHERE p.id = ? AND {PUBLISHED}"
    )
}

/// Every category; with `counts`, each one's published products (a scan
/// of the product-category links: menus ask without).
pub(crate) fn categories(counts: bool) -> String {
    if !counts {
        return "SELECT c.id, c.slug, c.name, c.parent_id FROM categories c ORDER BY c.id"
            .to_string();
    }
    "SELECT c.id, c.slug, c.name, c.parent_id, \
       (SELECT count(*) FROM product_categories pc JOIN products p ON p.id = pc.product_id \
        WHERE pc.category_id = c.id AND p.status = 'published') \
     FROM categories c ORDER BY c.id"
        .to_string()
}

pub(crate) fn vendor() -> String {
    "SELECT v.id, v.slug, v.name, v.description, v.country, v.created_at, v.updated_at, \
       (SELECT count(*) FROM products p WHERE p.vendor_id = v.id AND p.status = 'published') \
     FROM vendors v WHERE v.id = ?"
        .to_string()
}

/// The page query: one row more than `limit`, so the caller knows whether
/// there is a next page without a second query.
pub(crate) fn list(params: &ListParams, after: Option<&CursorKey>) -> (String, Vec<SqlValue>) {
    let mut binds = Vec::new();
    let mut conds: Vec<String> = vec![PUBLISHED.into()];
    let (from, score) = match &params.fts {
        Some(expr) => {
            conds.push("products_fts MATCH ?".into());
            binds.push(SqlValue::Text(expr.clone()));
            (
                "products_fts JOIN products p ON p.id = products_fts.rowid",
                "bm25(products_fts)",
            )
        }
        None => ("products p", "NULL"),
    };
    if let Some(c) = &params.category {
        let (cond, bind) = match c {
            Ref::Id(id) => ("pc.category_id = ?", SqlValue::Integer(*id)),
            Ref::Slug(s) => (
                "pc.category_id = (SELECT id FROM categories WHERE slug = ?)",
                SqlValue::Text(s.clone()),
            ),
        };
        conds.push(format!(
            "EXISTS (SELECT 1 FROM product_categories pc WHERE pc.product_id = p.id AND {cond})"
        ));
        binds.push(bind);
    }
    if let Some(v) = &params.vendor {
        match v {
            Ref::Id(id) => {
                conds.push("p.vendor_id = ?".into());
                binds.push(SqlValue::Integer(*id));
            }
            Ref::Slug(s) => {
                conds.push("p.vendor_id = (SELECT id FROM vendors WHERE slug = ?)".into());
                binds.push(SqlValue::Text(s.clone()));
            }
        }
    }
    if let Some(lo) = params.min_price {
        conds.push("p.price_minor >= ?".into());
        binds.push(SqlValue::Integer(lo));
    }
    if let Some(hi) = params.max_price {
        conds.push("p.price_minor <= ?".into());
        binds.push(SqlValue::Integer(hi));
    }
    let (key_expr, order, after_op) = match params.sort {
        Sort::Newest => ("p.created_at", "p.created_at DESC, p.id DESC", "<"),
        Sort::PriceAsc => ("p.price_minor", "p.price_minor ASC, p.id ASC", ">"),
        Sort::PriceDesc => ("p.price_minor", "p.price_minor DESC, p.id DESC", "<"),
        // bm25() is lower for better matches.
        Sort::Relevance => (score, "1 ASC, p.id ASC", ">"),
    };
    let order = order.replacen('1', score, usize::from(params.sort == Sort::Relevance));
    if let Some(key) = after {
        conds.push(format!("({key_expr}, p.id) {after_op} (?, ?)"));
        match key {
            CursorKey::Int(k, id) => binds.extend([SqlValue::Integer(*k), SqlValue::Integer(*id)]),
            CursorKey::Real(k, id) => binds.extend([SqlValue::Real(*k), SqlValue::Integer(*id)]),
        }
    }
    let where_clause = format!(" WHERE {}", conds.join(" AND "));
    let sql = format!(
        "SELECT {PRODUCT_COLUMNS}, {score} FROM {from} JOIN vendors v ON v.id = p.vendor_id{where_clause} \
         ORDER BY {order} LIMIT {}",
        params.limit + 1
    );
    (sql, binds)
}
