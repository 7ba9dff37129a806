//! The orders database: the origin's own, never replicated (orders, and
//! vendors' uploads). Versioned
//! migrations; the order saga's orchestrator reads and writes it.

pub use migrations::{Error, Migration, schema_version};

/// The orders migrations, oldest first. Append only.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "orders",
        sql: include_str!("../migrations/0001_orders.sql"),
    },
    Migration {
        version: 2,
        name: "uploads",
        sql: include_str!("../migrations/0002_uploads.sql"),
    },
    Migration {
        version: 3,
        name: "saga leases",
        sql: include_str!("../migrations/0003_saga_leases.sql"),
    },
];

/// Opens (creating if needed) and migrates an orders database file.
pub async fn open(path: &std::path::Path) -> Result<(libsql::Database, libsql::Connection), Error> {
    let (db, conn) = migrations::open_local(path).await?;
    migrations::apply(&conn, MIGRATIONS).await?;
    Ok((db, conn))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn events_are_append_only() {
        let dir = std::env::temp_dir().join(format!("orders-db-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (_db, conn) = open(&dir.join("orders.db")).await.unwrap();
        conn.execute(
            "INSERT INTO orders (id, account_id, status, saga, currency, total_minor, shipping,
                                 payment_method, created_at, updated_at)
             VALUES ('o1', 1, 'pending', '{}', 'EUR', 100, '{}', 'pm_card_visa', 0, 0)",
            (),
        )
        .await
        .unwrap();
        conn.execute(
            "INSERT INTO order_events (order_id, at, kind) VALUES ('o1', 0, 'created')",
            (),
        )
        .await
        .unwrap();
        assert!(
            conn.execute("UPDATE order_events SET kind = 'x'", ())
                .await
                .is_err()
        );
        assert!(conn.execute("DELETE FROM order_events", ()).await.is_err());
        // A second open applies nothing and keeps the hold key.
        let (_db2, conn2) = open(&dir.join("orders.db")).await.unwrap();
        assert_eq!(schema_version(&conn2).await.unwrap(), 3);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
