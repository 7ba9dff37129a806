//! The orders database as the orchestrator uses it: an order and its saga
//! move in one write with the event that says why and, when it ends, the
//! outbox event that announces it. Every function that writes runs as one
//! job of the database's writer (`db_writer`), which makes the job atomic
//! (a savepoint of a grouped transaction); none opens a transaction.

use super::stock::Line;
use db_writer::Sql;
use libsql::{Connection, params};
use saga::Saga;

/// An order as stored.
#[derive(Debug, Clone)]
pub struct Order {
    pub id: String,
    pub saga: Saga,
    pub currency: String,
    pub total_minor: i64,
    pub shipping: serde_json::Value,
    pub payment_method: String,
    pub payment_intent: Option<String>,
    pub reason: Option<String>,
    pub next_attempt_at: i64,
    pub created_at: i64,
    pub updated_at: i64,
    pub lines: Vec<Line>,
}

/// A new order, as the checkout request made it.
pub struct NewOrder {
    pub id: String,
    pub account_id: i64,
    pub idempotency_key: String,
    pub digest: Vec<u8>,
    pub currency: String,
    pub lines: Vec<Line>,
    pub shipping: serde_json::Value,
    pub payment_method: String,
}

/// Who drives orders from this process, and how long a claim holds:
/// another process may take an order over once its lease has run out.
#[derive(Debug, Clone)]
pub struct Lease {
    pub owner: String,
    pub ms: i64,
}

/// What claiming an order found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// Ours now; `from` names a process whose lease had run out.
    Taken { from: Option<String> },
    /// Another process holds a live lease on it.
    Held,
    /// It has ended, or there is no such order: nothing to drive.
    Ended,
}

/// What an idempotency key already names.
#[derive(Debug, Clone)]
pub struct Seen {
    pub digest: Vec<u8>,
    pub order_id: String,
    pub response: Option<(u16, String)>,
}

pub async fn idempotency(
    conn: &impl Sql,
    account: i64,
    key: &str,
) -> Result<Option<Seen>, libsql::Error> {
    let mut rows = conn
        .query(
            "SELECT digest, order_id, status, response FROM idempotency
             WHERE account_id = ?1 AND key = ?2",
            params![account, key],
        )
        .await?;
    let Some(r) = rows.next().await? else {
        return Ok(None);
    };
    let status: Option<i64> = r.get(2)?;
    let response: Option<String> = r.get(3)?;
    Ok(Some(Seen {
        digest: r.get(0)?,
        order_id: r.get(1)?,
        response: status.zip(response).map(|(s, b)| (s as u16, b)),
    }))
}

/// Creates the order, its lines, its first event and the idempotency
/// record, leased to `lease.owner`. `Ok(false)` if the key was taken
/// meanwhile: the caller's job then rolls back the order it wrote.
pub async fn create(
    conn: &impl Sql,
    o: &NewOrder,
    now_ms: i64,
    lease: &Lease,
) -> Result<bool, libsql::Error> {
    let saga = Saga::new();
    let total: i64 = o
        .lines
        .iter()
        .map(|l| l.unit_price_minor * l.quantity)
        .sum();
    let tx = conn;
    tx.execute(
        "INSERT INTO orders (id, account_id, status, saga, currency, total_minor, shipping,
                             payment_method, created_at, updated_at, lease_owner, lease_until)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9, ?10, ?11)",
        params![
            o.id.clone(),
            o.account_id,
            saga.status(),
            serde_json::to_string(&saga).expect("json"),
            o.currency.clone(),
            total,
            o.shipping.to_string(),
            o.payment_method.clone(),
            now_ms,
            lease.owner.clone(),
            now_ms + lease.ms
        ],
    )
    .await?;
    let taken = tx
        .execute(
            "INSERT INTO idempotency (account_id, key, digest, order_id, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT DO NOTHING",
            params![
                o.account_id,
                o.idempotency_key.clone(),
                o.digest.clone(),
                o.id.clone(),
                now_ms
            ],
        )
        .await?;
    if taken == 0 {
        return Ok(false);
    }
    for l in &o.lines {
        tx.execute(
            "INSERT INTO order_lines (order_id, product_id, vendor_id, title, quantity, unit_price_minor)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![o.id.clone(), l.product_id, l.vendor_id, l.title.clone(), l.quantity, l.unit_price_minor],
        )
        .await?;
    }
    tx.execute(
        "INSERT INTO order_events (order_id, at, kind, detail) VALUES (?1, ?2, 'created', ?3)",
        params![
            o.id.clone(),
            now_ms,
            format!(
                "{} lines, {total} {} (minor units)",
                o.lines.len(),
                o.currency
            )
        ],
    )
    .await?;
    Ok(true)
}

/// Stores the first answer given for a key; later answers replay it.
pub async fn remember(
    conn: &impl Sql,
    account: i64,
    key: &str,
    status: u16,
    body: &str,
) -> Result<(), libsql::Error> {
    conn.execute(
        "UPDATE idempotency SET status = ?3, response = ?4
         WHERE account_id = ?1 AND key = ?2 AND response IS NULL",
        params![account, key, status as i64, body],
    )
    .await?;
    Ok(())
}

const ORDER_COLUMNS: &str = "id, account_id, saga, currency, total_minor, shipping, payment_method,
     payment_intent, reason, next_attempt_at, created_at, updated_at";

fn order_from(r: &libsql::Row) -> Result<Order, libsql::Error> {
    let saga: String = r.get(2)?;
    let shipping: String = r.get(5)?;
    Ok(Order {
        id: r.get(0)?,
        saga: serde_json::from_str(&saga).unwrap_or_default(),
        currency: r.get(3)?,
        total_minor: r.get(4)?,
        shipping: serde_json::from_str(&shipping).unwrap_or_default(),
        payment_method: r.get(6)?,
        payment_intent: r.get(7)?,
        reason: r.get(8)?,
        next_attempt_at: r.get(9)?,
        created_at: r.get(10)?,
        updated_at: r.get(11)?,
        lines: Vec::new(),
    })
}

async fn lines(conn: &impl Sql, order: &mut Order) -> Result<(), libsql::Error> {
    let mut rows = conn
        .query(
            "SELECT product_id, vendor_id, title, quantity, unit_price_minor FROM order_lines
             WHERE order_id = ?1 ORDER BY product_id",
            params![order.id.clone()],
        )
        .await?;
    while let Some(r) = rows.next().await? {
        order.lines.push(Line {
            product_id: r.get(0)?,
            vendor_id: r.get(1)?,
            title: r.get(2)?,
            quantity: r.get(3)?,
            unit_price_minor: r.get(4)?,
        });
    }
    Ok(())
}

/// An order with its lines; with `account`, only if it is that account's.
pub async fn load(
    conn: &impl Sql,
    id: &str,
    account: Option<i64>,
) -> Result<Option<Order>, libsql::Error> {
    let mut rows = conn
        .query(
            &format!(
                "SELECT {ORDER_COLUMNS} FROM orders WHERE id = ?1 AND (?2 IS NULL OR account_id = ?2)"
            ),
            params![id, account],
        )
        .await?;
    let Some(r) = rows.next().await? else {
        return Ok(None);
    };
    let mut order = order_from(&r)?;
    drop(rows);
    lines(conn, &mut order).await?;
    Ok(Some(order))
}

/// An account's orders, newest first, after the `before` order if given.
pub async fn list(
    conn: &impl Sql,
    account: i64,
    before: Option<&str>,
    limit: i64,
) -> Result<Vec<Order>, libsql::Error> {
    let mut rows = conn
        .query(
            &format!(
                "SELECT {ORDER_COLUMNS} FROM orders WHERE account_id = ?1
                   AND (?2 IS NULL OR (created_at, id) < (SELECT created_at, id FROM orders
                                                          WHERE id = ?2 AND account_id = ?1))
                 ORDER BY created_at DESC, id DESC LIMIT ?3"
            ),
            params![account, before, limit],
        )
        .await?;
    let mut out = Vec::new();
    while let Some(r) = rows.next().await? {
        out.push(order_from(&r)?);
    }
    drop(rows);
    for o in &mut out {
        lines(conn, o).await?;
    }
    Ok(out)
}

/// An order's history, oldest first.
pub async fn history(conn: &impl Sql, id: &str) -> Result<Vec<serde_json::Value>, libsql::Error> {
    let mut rows = conn
        .query(
            "SELECT at, kind, detail FROM order_events WHERE order_id = ?1 ORDER BY seq LIMIT 500",
            params![id],
        )
        .await?;
    let mut out = Vec::new();
    while let Some(r) = rows.next().await? {
        out.push(serde_json::json!({
            "at_ms": r.get::<i64>(0)?, "event": r.get::<String>(1)?, "detail": r.get::<String>(2)?,
        }));
    }
    Ok(out)
}

/// One move of a saga: the new state, the event that says why and, if it
/// ended, the outbox event, in one write, which also renews the lease
/// until the next step is due plus the lease time. `Ok(false)`, with
/// nothing written, if `lease.owner` no longer holds the order: another
/// process took it over and this one must stop driving it.
pub async fn advance(
    conn: &impl Sql,
    order: &Order,
    event: &str,
    detail: &str,
    now_ms: i64,
    lease: &Lease,
) -> Result<bool, libsql::Error> {
    let ended = order.saga.ended;
    let tx = conn;
    let held = tx
        .execute(
            // An intent a webhook taught is never erased by a move written
            // from a copy that had not seen it.
            "UPDATE orders SET status = ?2, final = ?3, saga = ?4,
                               payment_intent = coalesce(?5, payment_intent), reason = ?6,
                               next_attempt_at = ?7, updated_at = ?8, lease_until = ?9
             WHERE id = ?1 AND lease_owner = ?10",
            params![
                order.id.clone(),
                order.saga.status(),
                ended.is_some() as i64,
                serde_json::to_string(&order.saga).expect("json"),
                order.payment_intent.clone(),
                order.reason.clone(),
                order.next_attempt_at,
                now_ms,
                now_ms.max(order.next_attempt_at) + lease.ms,
                lease.owner.clone()
            ],
        )
        .await?;
    if held == 0 {
        return Ok(false);
    }
    tx.execute(
        "INSERT INTO order_events (order_id, at, kind, detail) VALUES (?1, ?2, ?3, ?4)",
        params![order.id.clone(), now_ms, event, detail],
    )
    .await?;
    if let Some(end) = ended {
        let topic = match end {
            saga::Final::Completed => "order.confirmed",
            saga::Final::OutOfStock => "order.out_of_stock",
            saga::Final::PaymentFailed => "order.payment_failed",
            saga::Final::Cancelled => "order.cancelled",
        };
        let payload = serde_json::json!({
            "order_id": order.id, "status": end.name(), "currency": order.currency,
            "total_minor": order.total_minor, "reason": order.reason,
            "lines": order.lines.iter().map(|l| serde_json::json!({
                "product_id": l.product_id, "vendor_id": l.vendor_id, "quantity": l.quantity,
            })).collect::<Vec<_>>(),
        });
        tx.execute(
            "INSERT INTO outbox (event_id, topic, order_id, payload, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                format!("{}.{topic}", order.id),
                topic,
                order.id.clone(),
                payload.to_string(),
                now_ms
            ],
        )
        .await?;
    }
    Ok(true)
}

/// Orders whose saga is due to move and that `owner` may drive (its own,
/// unleased, or leased by a process whose lease ran out), oldest first.
pub async fn due(
    conn: &impl Sql,
    now_ms: i64,
    limit: i64,
    owner: &str,
) -> Result<Vec<String>, libsql::Error> {
    let mut rows = conn
        .query(
            "SELECT id FROM orders WHERE final = 0 AND next_attempt_at <= ?1
               AND (lease_owner IS NULL OR lease_owner = ?3 OR lease_until < ?1)
             ORDER BY next_attempt_at LIMIT ?2",
            params![now_ms, limit, owner],
        )
        .await?;
    let mut out = Vec::new();
    while let Some(r) = rows.next().await? {
        out.push(r.get(0)?);
    }
    Ok(out)
}

/// Takes an order's lease for `lease.owner` unless another process holds
/// a live one, until its next step is due plus the lease time. Run as one
/// writer job, so the check and the take see no write in between.
pub async fn claim(
    conn: &impl Sql,
    id: &str,
    now_ms: i64,
    lease: &Lease,
) -> Result<Claim, libsql::Error> {
    let mut rows = conn
        .query(
            "SELECT final, lease_owner, lease_until FROM orders WHERE id = ?1",
            params![id],
        )
        .await?;
    let Some(r) = rows.next().await? else {
        return Ok(Claim::Ended);
    };
    let (ended, owner, until): (i64, Option<String>, i64) = (r.get(0)?, r.get(1)?, r.get(2)?);
    drop(rows);
    if ended != 0 {
        return Ok(Claim::Ended);
    }
    if owner.as_ref().is_some_and(|o| *o != lease.owner) && until >= now_ms {
        return Ok(Claim::Held);
    }
    conn.execute(
        "UPDATE orders SET lease_owner = ?2, lease_until = max(?3, next_attempt_at) + ?4
         WHERE id = ?1",
        params![id, lease.owner.clone(), now_ms, lease.ms],
    )
    .await?;
    Ok(Claim::Taken {
        from: owner.filter(|o| *o != lease.owner),
    })
}

/// Records a payment webhook; false if this event id was seen before.
pub async fn webhook_seen(
    conn: &impl Sql,
    event_id: &str,
    kind: &str,
    intent: Option<&str>,
    created: i64,
    now_ms: i64,
) -> Result<bool, libsql::Error> {
    let n = conn
        .execute(
            "INSERT INTO payment_webhooks (event_id, kind, payment_intent, created, received_at)
             VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT DO NOTHING",
            params![event_id, kind, intent, created, now_ms],
        )
        .await?;
    Ok(n == 1)
}

/// Learns an order's PaymentIntent from a webhook (when the answer to the
/// authorisation was lost) and records the event in its history.
pub async fn webhook_for_order(
    conn: &impl Sql,
    order_id: &str,
    intent: &str,
    detail: &str,
    now_ms: i64,
) -> Result<(), libsql::Error> {
    let tx = conn;
    let n = tx
        .execute(
            "UPDATE orders SET payment_intent = coalesce(payment_intent, ?2) WHERE id = ?1",
            params![order_id, intent],
        )
        .await?;
    if n == 1 {
        tx.execute(
            "INSERT INTO order_events (order_id, at, kind, detail) VALUES (?1, ?2, 'payment.webhook', ?3)",
            params![order_id, now_ms, detail],
        )
        .await?;
    }
    Ok(())
}

/// An outbox event not yet handed to the consumer.
pub struct Outgoing {
    pub seq: i64,
    pub event_id: String,
    pub topic: String,
    pub order_id: String,
    pub payload: String,
}

pub async fn unpublished(conn: &impl Sql, limit: i64) -> Result<Vec<Outgoing>, libsql::Error> {
    let mut rows = conn
        .query(
            "SELECT seq, event_id, topic, order_id, payload FROM outbox
             WHERE published_at IS NULL ORDER BY seq LIMIT ?1",
            params![limit],
        )
        .await?;
    let mut out = Vec::new();
    while let Some(r) = rows.next().await? {
        out.push(Outgoing {
            seq: r.get(0)?,
            event_id: r.get(1)?,
            topic: r.get(2)?,
            order_id: r.get(3)?,
            payload: r.get(4)?,
        });
    }
    Ok(out)
}

pub async fn published(conn: &impl Sql, seq: i64, now_ms: i64) -> Result<(), libsql::Error> {
    conn.execute(
        "UPDATE outbox SET published_at = ?2 WHERE seq = ?1",
        params![seq, now_ms],
    )
    .await?;
    Ok(())
}

/// The consumer: one notification per vendor in the order, de-duplicated
/// by event id, so a redelivery changes nothing.
pub async fn notify_vendors(
    conn: &impl Sql,
    e: &Outgoing,
    now_ms: i64,
) -> Result<u64, libsql::Error> {
    let payload: serde_json::Value = serde_json::from_str(&e.payload).unwrap_or_default();
    let mut vendors: Vec<i64> = payload["lines"]
        .as_array()
        .map(|ls| ls.iter().filter_map(|l| l["vendor_id"].as_i64()).collect())
        .unwrap_or_default();
    vendors.sort_unstable();
    vendors.dedup();
    let tx = conn;
    let mut new = 0;
    for v in vendors {
        new += tx
            .execute(
                "INSERT INTO vendor_notifications (event_id, vendor_id, topic, order_id, payload, received_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT DO NOTHING",
                params![e.event_id.clone(), v, e.topic.clone(), e.order_id.clone(), e.payload.clone(), now_ms],
            )
            .await?;
    }
    Ok(new)
}

/// Forgets idempotency keys older than `older_than_ms` (at least 24 h).
pub async fn expire_keys(conn: &impl Sql, older_than_ms: i64) -> Result<u64, libsql::Error> {
    conn.execute(
        "DELETE FROM idempotency WHERE created_at < ?1",
        params![older_than_ms],
    )
    .await
}

/// The per-database key that names stock holds.
pub async fn hold_key(conn: &Connection) -> Result<String, libsql::Error> {
    let mut rows = conn
        .query("SELECT value FROM settings WHERE name = 'hold_key'", ())
        .await?;
    match rows.next().await? {
        Some(r) => r.get(0),
        None => Err(libsql::Error::QueryReturnedNoRows),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(owner: &str) -> Lease {
        Lease {
            owner: owner.to_string(),
            ms: 3_000,
        }
    }

    async fn count(conn: &Connection, sql: &str) -> i64 {
        let mut rows = conn.query(sql, ()).await.unwrap();
        rows.next().await.unwrap().unwrap().get(0).unwrap()
    }

    #[tokio::test]
    async fn one_origin_at_a_time_drives_an_order_and_a_dead_ones_lease_runs_out() {
        let dir = std::env::temp_dir().join(format!("orders-lease-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let (_db, conn) = orders_db::open(&dir.join("orders.db")).await.unwrap();
        let (a, b) = (lease("a"), lease("b"));
        let t0 = 1_000_000;
        let new = NewOrder {
            id: "ord_1".into(),
            account_id: 7,
            idempotency_key: "k".into(),
            digest: vec![1],
            currency: "EUR".into(),
            lines: vec![Line {
                product_id: 1,
                vendor_id: 1,
                title: "t".into(),
                quantity: 1,
                unit_price_minor: 100,
            }],
            shipping: serde_json::json!({}),
            payment_method: "pm_card_visa".into(),
        };
        assert!(create(&conn, &new, t0, &a).await.unwrap());
        let order = load(&conn, "ord_1", None).await.unwrap().unwrap();

        // While a's lease is live, b can neither claim, move nor resume it.
        assert_eq!(
            claim(&conn, "ord_1", t0 + 10, &b).await.unwrap(),
            Claim::Held
        );
        assert!(!advance(&conn, &order, "x", "", t0 + 10, &b).await.unwrap());
        assert!(due(&conn, t0 + 10, 10, "b").await.unwrap().is_empty());
        assert_eq!(due(&conn, t0 + 10, 10, "a").await.unwrap(), ["ord_1"]);
        // a's step renews it; with a backoff, until the step is due + lease.
        let mut later = order.clone();
        later.next_attempt_at = t0 + 2_000;
        assert!(advance(&conn, &later, "x", "", t0 + 100, &a).await.unwrap());
        assert_eq!(
            claim(&conn, "ord_1", t0 + 4_000, &b).await.unwrap(),
            Claim::Held
        );
        // a stops renewing: once the lease has run out b takes it over,
        // and a's late move is refused with nothing written.
        let expired = t0 + 2_000 + 3_001;
        assert_eq!(due(&conn, expired, 10, "b").await.unwrap(), ["ord_1"]);
        assert_eq!(
            claim(&conn, "ord_1", expired, &b).await.unwrap(),
            Claim::Taken {
                from: Some("a".into())
            }
        );
        let events = count(&conn, "SELECT count(*) FROM order_events").await;
        assert!(
            !advance(&conn, &later, "late", "", expired, &a)
                .await
                .unwrap()
        );
        assert_eq!(
            count(&conn, "SELECT count(*) FROM order_events").await,
            events
        );
        // b's own claim again is no takeover; an ended order is not claimed.
        assert_eq!(
            claim(&conn, "ord_1", expired + 1, &b).await.unwrap(),
            Claim::Taken { from: None }
        );
        conn.execute("UPDATE orders SET final = 1", ())
            .await
            .unwrap();
        assert_eq!(
            claim(&conn, "ord_1", expired + 10_000, &a).await.unwrap(),
            Claim::Ended
        );
        assert_eq!(
            claim(&conn, "ord_nope", t0, &a).await.unwrap(),
            Claim::Ended
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
