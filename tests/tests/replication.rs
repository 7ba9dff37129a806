//! The origin's replication, checked with the client nobody here wrote:
//! the `libsql` crate's embedded replica (`Builder::new_remote_replica`),
//! which picks the v2 sync protocol because `/info` answers.

use edgeshop_e2e::{Host, ORIGIN_TOKEN, TempDir, content_hash, seeded_catalog, start_origin};
use std::path::Path;

fn origin_on_copy(dir: &TempDir, extra: &[&str]) -> Host {
    let catalog = dir.0.join("catalog.db");
    if !catalog.exists() {
        std::fs::copy(seeded_catalog(), &catalog).unwrap();
    }
    start_origin(&catalog, extra).unwrap_or_else(|log| panic!("origin did not start:\n{log}"))
}

async fn replica(origin: &Host, path: &Path) -> libsql::Database {
    libsql::Builder::new_remote_replica(
        path,
        format!("{}/db/catalog", origin.url),
        ORIGIN_TOKEN.to_string(),
    )
    .build()
    .await
    .expect("the replica opens")
}

async fn primary(origin: &Host) -> libsql::Connection {
    libsql::Builder::new_remote(
        format!("{}/db/catalog", origin.url),
        ORIGIN_TOKEN.to_string(),
    )
    .build()
    .await
    .unwrap()
    .connect()
    .unwrap()
}

async fn count(conn: &libsql::Connection, sql: &str) -> i64 {
    let mut rows = conn.query(sql, ()).await.unwrap();
    rows.next().await.unwrap().unwrap().get(0).unwrap()
}

async fn text(conn: &libsql::Connection, sql: &str) -> String {
    let mut rows = conn.query(sql, ()).await.unwrap();
    rows.next().await.unwrap().unwrap().get(0).unwrap()
}

/// The primary's content, read over Hrana.
async fn primary_hash(origin: &Host) -> u64 {
    content_hash(&primary(origin).await).await
}

#[tokio::test(flavor = "multi_thread")]
async fn an_embedded_replica_bootstraps_pulls_and_writes_through() {
    let dir = TempDir::new("repl-basic");
    let origin = origin_on_copy(&dir, &[]);
    let db = replica(&origin, &dir.0.join("replica.db")).await;
    db.sync().await.unwrap();
    let conn = db.connect().unwrap();
    assert_eq!(
        count(&conn, "SELECT count(*) FROM products").await,
        i64::from(edgeshop_e2e::PRODUCTS)
    );

    // A write through the replica goes to the primary and reads back at
    // once (read-your-writes).
    conn.execute(
        "UPDATE products SET title = 'Replicated kettle' WHERE id = 7",
        (),
    )
    .await
    .unwrap();
    assert_eq!(
        text(&conn, "SELECT title FROM products WHERE id = 7").await,
        "Replicated kettle"
    );

    // Writes by someone else arrive with the next sync: inserts, updates,
    // deletes and a schema change.
    let p = primary(&origin).await;
    p.execute_batch(
        "INSERT INTO vendors (id, slug, name, country, created_at, updated_at)
             VALUES (9001, 'late-vendor', 'Late vendor', 'DE', 1, 1);
         UPDATE products SET price_minor = price_minor + 1 WHERE id <= 500;
         DELETE FROM product_categories WHERE product_id BETWEEN 10 AND 20;
         CREATE TABLE promotions (id INTEGER PRIMARY KEY, code TEXT NOT NULL UNIQUE);
         INSERT INTO promotions (code) VALUES ('WINTER');
         ALTER TABLE promotions ADD COLUMN percent INTEGER NOT NULL DEFAULT 10;",
    )
    .await
    .unwrap();
    db.sync().await.unwrap();
    assert_eq!(count(&conn, "SELECT percent FROM promotions").await, 10);
    assert_eq!(content_hash(&conn).await, primary_hash(&origin).await);
}
