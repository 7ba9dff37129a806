//! Rows to the JSON the API promises.

use crate::cursor::{CursorKey, CursorSigner};
use crate::params::{ListParams, Sort};
use crate::query::SqlValue;
use serde_json::{Value, json};

pub(crate) struct ProductJson {
    pub json: Value,
    pub vendor_id: i64,
    pub category_ids: Vec<i64>,
}

fn int(row: &[SqlValue], i: usize) -> i64 {
    row.get(i).and_then(SqlValue::as_i64).unwrap_or_default()
}

fn text(row: &[SqlValue], i: usize) -> &str {
    row.get(i).and_then(SqlValue::as_str).unwrap_or_default()
}

/// One product row (columns of `query::PRODUCT_COLUMNS` plus score).
pub(crate) fn product(row: &[SqlValue]) -> ProductJson {
    let id = int(row, 0);
    let vendor_id = int(row, 2);
    let mut category_ids: Vec<i64> = text(row, 12)
        .split(',')
        .filter_map(|c| c.parse().ok())
        .collect();
    category_ids.sort_unstable();
    let media: Value = serde_json::from_str(text(row, 8)).unwrap_or_else(|_| json!([]));
    let json = json!({
        "id": id,
        "slug": text(row, 1),
        "vendor": { "id": vendor_id, "name": text(row, 13), "slug": text(row, 14) },
        "title": text(row, 3),
        "description": text(row, 4),
        "price": { "amount": int(row, 5), "currency": text(row, 6) },
        "stock": int(row, 7),
        "categories": category_ids,
        "media": media,
        "created_at": rfc3339(int(row, 9)),
        "updated_at": rfc3339(int(row, 10)),
        "version": int(row, 11),
    });
    ProductJson {
        json,
        vendor_id,
        category_ids,
    }
}

pub(crate) fn list_page(
    mut rows: Vec<Vec<SqlValue>>,
    params: &ListParams,
    signer: &CursorSigner,
) -> Value {
    let has_more = rows.len() > params.limit as usize;
    rows.truncate(params.limit as usize);
    let next_cursor = match rows.last() {
        Some(last) if has_more => {
            let id = int(last, 0);
            let key = match params.sort {
                Sort::Newest => CursorKey::Int(int(last, 9), id),
                Sort::PriceAsc | Sort::PriceDesc => CursorKey::Int(int(last, 5), id),
                Sort::Relevance => CursorKey::Real(
                    last.get(15).and_then(SqlValue::as_f64).unwrap_or_default(),
                    id,
                ),
            };
            Value::String(signer.sign(params.sort, &params.filter_digest(), key))
        }
        _ => Value::Null,
    };
    let items: Vec<Value> = rows.iter().map(|r| product(r).json).collect();
    json!({ "items": items, "next_cursor": next_cursor })
}

pub(crate) fn categories(rows: &[Vec<SqlValue>], counts: bool) -> Value {
    let items: Vec<Value> = rows
        .iter()
        .map(|r| {
            let mut c = json!({
                "id": int(r, 0),
                "slug": text(r, 1),
                "name": text(r, 2),
                "parent_id": r.get(3).and_then(SqlValue::as_i64),
            });
            if counts {
                c["product_count"] = json!(int(r, 4));
            }
            c
        })
        .collect();
    json!({ "items": items })
}

pub(crate) fn vendor(row: &[SqlValue]) -> Value {
    json!({
        "id": int(row, 0),
        "slug": text(row, 1),
        "name": text(row, 2),
        "description": text(row, 3),
        "country": text(row, 4),
        "created_at": rfc3339(int(row, 5)),
        "updated_at": rfc3339(int(row, 6)),
        "product_count": int(row, 7),
    })
}

/// Unix seconds to `YYYY-MM-DDTHH:MM:SSZ` (proleptic Gregorian, UTC), using
/// the days-to-civil algorithm so no date crate is needed in the guest.
pub fn rfc3339(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let tod = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        tod / 3600,
        tod % 3600 / 60,
        tod % 60
    )
}
