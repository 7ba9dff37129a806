//! Stock at the catalog primary: pricing an order's lines, and holding,
//! selling and releasing stock. Each change and the hold that records it
//! are one job of the catalog's writer (`db_writer`: a savepoint of a
//! grouped transaction, taken alone while it runs, so a check and the
//! change it allows see no other write in between), so every step can be
//! repeated after a crash without taking or returning stock twice. The products' update triggers
//! append `product:ID` changes, so PoP caches purge as the catalog
//! replicates.

use checkout_core::Item;
use db_writer::Sql;
use libsql::params;
use problem::Problem;

/// A line as priced at the primary.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Line {
    pub product_id: i64,
    pub vendor_id: i64,
    pub title: String,
    pub quantity: i64,
    pub unit_price_minor: i64,
}

/// Prices `items` from the primary: unknown products and moved prices are
/// refused with a problem the shopper can act on.
pub async fn price(
    catalog: &impl Sql,
    items: &[Item],
) -> Result<Result<(Vec<Line>, String), Problem>, libsql::Error> {
    let mut lines = Vec::with_capacity(items.len());
    let mut unknown = Vec::new();
    let mut moved = Vec::new();
    let mut currency: Option<String> = None;
    for item in items {
        let mut rows = catalog
            .query(
                "SELECT vendor_id, title, price_minor, currency FROM products \
                 WHERE id = ?1 AND status = 'published'",
                params![item.product_id],
            )
            .await?;
        let Some(row) = rows.next().await? else {
            unknown.push(item.product_id);
            continue;
        };
        let price: i64 = row.get(2)?;
        let cur: String = row.get(3)?;
        if price != item.unit_price_minor {
            moved.push(serde_json::json!({
                "product_id": item.product_id,
                "unit_price_minor": price,
                "you_saw": item.unit_price_minor,
            }));
        }
        match &currency {
            Some(c) if *c != cur => {
                return Ok(Err(Problem::new(
                    422,
                    "mixed-currencies",
                    "Mixed currencies",
                    "every item of an order must be priced in the same currency; \
                     check out each currency separately",
                )));
            }
            _ => currency = Some(cur),
        }
        lines.push(Line {
            product_id: item.product_id,
            vendor_id: row.get(0)?,
            title: row.get(1)?,
            quantity: item.quantity,
            unit_price_minor: price,
        });
    }
    if !unknown.is_empty() {
        return Ok(Err(Problem::new(
            422,
            "unknown-product",
            "Unknown product",
            format!(
                "no product has the id {}; remove it from the cart",
                unknown
                    .iter()
                    .map(i64::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )
        .with("product_ids", unknown)));
    }
    if !moved.is_empty() {
        return Ok(Err(Problem::new(
            409,
            "price-changed",
            "Prices changed",
            "some prices changed since the cart was filled; review the new prices and check out again",
        )
        .with("lines", moved)));
    }
    Ok(Ok((lines, currency.expect("at least one line"))))
}

/// How a hold went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Held {
    Done,
    /// Not enough stock: which product, and how many are left.
    Short {
        product_id: i64,
        left: i64,
    },
}

/// Takes the lines' stock and records the hold. On [`Held::Short`] the
/// caller's job must roll back (earlier lines were taken).
pub async fn hold(
    catalog: &impl Sql,
    hold_id: &str,
    lines: &[Line],
) -> Result<Held, libsql::Error> {
    let tx = catalog;
    let mut rows = tx
        .query(
            "SELECT state FROM stock_holds WHERE id = ?1",
            params![hold_id],
        )
        .await?;
    if rows.next().await?.is_some() {
        // Taken by an earlier attempt whose outcome was not recorded.
        return Ok(Held::Done);
    }
    drop(rows);
    let now = unix_now();
    for l in lines {
        let n = tx
            .execute(
                "UPDATE products SET stock = stock - ?1, version = version + 1, updated_at = ?2
                 WHERE id = ?3 AND stock >= ?1",
                params![l.quantity, now, l.product_id],
            )
            .await?;
        if n == 0 {
            let mut rows = tx
                .query(
                    "SELECT stock FROM products WHERE id = ?1",
                    params![l.product_id],
                )
                .await?;
            let left = match rows.next().await? {
                Some(r) => r.get::<i64>(0)?,
                None => 0,
            };
            return Ok(Held::Short {
                product_id: l.product_id,
                left,
            });
        }
    }
    let spec: Vec<(i64, i64)> = lines.iter().map(|l| (l.product_id, l.quantity)).collect();
    tx.execute(
        "INSERT INTO stock_holds (id, lines, state, created_at, updated_at)
         VALUES (?1, ?2, 'held', ?3, ?3)",
        params![hold_id, serde_json::to_string(&spec).expect("json"), now],
    )
    .await?;
    Ok(Held::Done)
}

/// Marks a hold as sold (the order is confirmed). Idempotent.
pub async fn sell(catalog: &impl Sql, hold_id: &str) -> Result<(), libsql::Error> {
    catalog
        .execute(
            "UPDATE stock_holds SET state = 'sold', updated_at = ?2 WHERE id = ?1 AND state = 'held'",
            params![hold_id, unix_now()],
        )
        .await?;
    Ok(())
}

/// Gives a hold's stock back. Idempotent: a missing or released hold is
/// left alone.
pub async fn release(catalog: &impl Sql, hold_id: &str) -> Result<(), libsql::Error> {
    let tx = catalog;
    let mut rows = tx
        .query(
            "SELECT lines FROM stock_holds WHERE id = ?1 AND state IN ('held', 'sold')",
            params![hold_id],
        )
        .await?;
    let Some(row) = rows.next().await? else {
        return Ok(());
    };
    let spec: Vec<(i64, i64)> = serde_json::from_str(&row.get::<String>(0)?).unwrap_or_default();
    drop(rows);
    let now = unix_now();
    for (product, quantity) in spec {
        tx.execute(
            "UPDATE products SET stock = stock + ?1, version = version + 1, updated_at = ?2 WHERE id = ?3",
            params![quantity, now, product],
        )
        .await?;
    }
    tx.execute(
        "UPDATE stock_holds SET state = 'released', updated_at = ?2 WHERE id = ?1",
        params![hold_id, now],
    )
    .await?;
    Ok(())
}

pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
