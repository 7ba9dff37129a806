//! The origin's replication, checked with the client nobody here wrote:
//! the `libsql` crate's embedded replica (`Builder::new_remote_replica`),
//! which picks the v2 sync protocol because `/info` answers.

use edgeshop_e2e::{
    Host, ORIGIN_TOKEN, TempDir, acknowledged_inserts, catalog_info, content_hash,
    primary_connection, start_origin, start_origin_on_seed,
};
use std::path::Path;

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
    content_hash(&primary_connection(origin).await).await
}

#[tokio::test(flavor = "multi_thread")]
async fn an_embedded_replica_bootstraps_pulls_and_writes_through() {
    let dir = TempDir::new("repl-basic");
    let orders = dir.0.join("orders.db");
    let origin = start_origin_on_seed(&dir.0, &["--orders", orders.to_str().unwrap()]);
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
    let p = primary_connection(&origin).await;
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

    // Only the catalog goes to the edge: orders has no replication API,
    // and a missing token is refused.
    let auth = format!("Bearer {ORIGIN_TOKEN}");
    let r = edgeshop_e2e::request(
        "GET",
        &format!("{}/db/orders/info", origin.url),
        &[("authorization", &auth)],
        Vec::new(),
    )
    .await;
    assert_eq!(r.status, 404, "{}", r.text());
    assert!(r.text().contains("not replicated"), "{}", r.text());
    let r = edgeshop_e2e::get(&format!("{}/db/catalog/export/1", origin.url)).await;
    assert_eq!(r.status, 401);

    // The PoPs' token reaches the catalog (replication and Hrana) but
    // never `orders`, which holds shoppers' addresses.
    let edge = format!("Bearer {}", edgeshop_e2e::EDGE_TOKEN);
    let pipeline = br#"{"baton":null,"requests":[{"type":"execute","stmt":{"sql":"SELECT 1"}}]}"#;
    let r = edgeshop_e2e::request(
        "GET",
        &format!("{}/db/catalog/info", origin.url),
        &[("authorization", &edge)],
        Vec::new(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    for (db, status) in [("catalog", 200), ("orders", 403)] {
        let r = edgeshop_e2e::request(
            "POST",
            &format!("{}/db/{db}/v3/pipeline", origin.url),
            &[("authorization", &edge)],
            pipeline.to_vec(),
        )
        .await;
        assert_eq!(r.status, status, "{db}: {}", r.text());
    }
    let r = edgeshop_e2e::request(
        "POST",
        &format!("{}/db/orders/v3/pipeline", origin.url),
        &[("authorization", &auth)],
        pipeline.to_vec(),
    )
    .await;
    assert_eq!(
        r.status,
        200,
        "the origin token still reaches orders: {}",
        r.text()
    );
}

/// Runs `n` small write transactions at the primary.
async fn churn(p: &libsql::Connection, from: i64, n: i64) {
    for i in from..from + n {
        p.execute(
            "UPDATE products SET stock = ?1, updated_at = ?1 WHERE id = ?2",
            libsql::params![i, 1 + i % 1500],
        )
        .await
        .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_offline_replica_crosses_generations_and_checkpoints() {
    let dir = TempDir::new("repl-gens");
    // Tiny generations and checkpoints, so a few writes cross both.
    let origin = start_origin_on_seed(
        &dir.0,
        &[
            "--roll-frames",
            "12",
            "--retain-generations",
            "1000",
            "--checkpoint-frames",
            "8",
        ],
    );
    let db = replica(&origin, &dir.0.join("replica.db")).await;
    db.sync().await.unwrap();
    let start = catalog_info(&origin).await["current_generation"]
        .as_u64()
        .unwrap();

    let p = primary_connection(&origin).await;
    // Three bursts of about 400 frames each, with pauses that let the
    // shipper's once-a-second checkpoint run.
    for burst in 0..3 {
        churn(&p, burst * 60, 60).await;
        tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    }
    let now = catalog_info(&origin).await["current_generation"]
        .as_u64()
        .unwrap();
    assert!(now >= start + 3, "generations rolled: {start} -> {now}");

    db.sync().await.unwrap();
    let conn = db.connect().unwrap();
    assert_eq!(content_hash(&conn).await, primary_hash(&origin).await);
    // The primary's WAL was checkpointed and reused: it holds about one
    // burst, not all three.
    let wal = std::fs::metadata(dir.0.join("catalog.db-wal")).map_or(0, |m| m.len()) / 4120;
    assert!(wal < 700, "the primary WAL holds {wal} frames");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_replica_behind_the_kept_history_is_told_to_bootstrap_again() {
    let dir = TempDir::new("repl-gone");
    let origin = start_origin_on_seed(&dir.0, &["--roll-frames", "4", "--retain-generations", "2"]);
    let path = dir.0.join("replica.db");
    let db = replica(&origin, &path).await;
    db.sync().await.unwrap();
    churn(&primary_connection(&origin).await, 0, 40).await;

    let err = db.sync().await.expect_err("its generation is gone");
    assert!(err.to_string().contains("410"), "{err}");
    // A new replica (what the edge host does on 410) converges.
    drop(db);
    let fresh = replica(&origin, &dir.0.join("fresh.db")).await;
    fresh.sync().await.unwrap();
    let conn = fresh.connect().unwrap();
    assert_eq!(content_hash(&conn).await, primary_hash(&origin).await);
}

#[tokio::test(flavor = "multi_thread")]
async fn replicas_continue_across_origin_restarts_and_crashes_under_writes() {
    let dir = TempDir::new("repl-restart");
    let mut origin = start_origin_on_seed(&dir.0, &[]);
    let db = replica(&origin, &dir.0.join("replica.db")).await;
    db.sync().await.unwrap();
    let url = origin.url.clone();
    let port = url.rsplit(':').next().unwrap().to_string();

    // A writer inserts rows and remembers which were acknowledged; the
    // origin is killed under it and started again on the same port.
    let writer = tokio::spawn(acknowledged_inserts(
        format!("{url}/db/catalog"),
        ORIGIN_TOKEN.to_string(),
        400,
    ));
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    origin.kill();
    origin = start_origin(
        &dir.0.join("catalog.db"),
        &["--listen", &format!("127.0.0.1:{port}")],
    )
    .unwrap_or_else(|log| panic!("origin did not restart:\n{log}"));
    let acked = writer.await.unwrap();
    assert!(
        acked.len() > 100,
        "only {} writes were acknowledged",
        acked.len()
    );

    // A clean restart too.
    origin.stop();
    origin = start_origin(
        &dir.0.join("catalog.db"),
        &["--listen", &format!("127.0.0.1:{port}")],
    )
    .unwrap_or_else(|log| panic!("origin did not restart:\n{log}"));

    db.sync()
        .await
        .expect("the replica continues without bootstrapping again");
    let conn = db.connect().unwrap();
    for i in acked {
        let n = count(
            &conn,
            &format!("SELECT count(*) FROM vendors WHERE slug = 'crash-{i}'"),
        )
        .await;
        assert_eq!(
            n, 1,
            "acknowledged write crash-{i} is missing at the replica"
        );
    }
    assert_eq!(content_hash(&conn).await, primary_hash(&origin).await);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_catalog_changed_behind_the_origins_back_starts_a_new_history() {
    let dir = TempDir::new("repl-reset");
    let mut origin = start_origin_on_seed(&dir.0, &[]);
    let db = replica(&origin, &dir.0.join("replica.db")).await;
    db.sync().await.unwrap();
    let before = catalog_info(&origin).await["current_generation"]
        .as_u64()
        .unwrap();
    let listen = origin.url.trim_start_matches("http://").to_string();
    origin.stop();

    // What re-seeding or restoring a backup does: the file changes while
    // no origin is watching its WAL.
    {
        let local = libsql::Builder::new_local(dir.0.join("catalog.db"))
            .build()
            .await
            .unwrap();
        let conn = local.connect().unwrap();
        conn.execute(
            "UPDATE products SET title = 'edited offline' WHERE id = 3",
            (),
        )
        .await
        .unwrap();
    }
    let origin = start_origin(&dir.0.join("catalog.db"), &["--listen", &listen]).unwrap();
    let after = catalog_info(&origin).await["current_generation"]
        .as_u64()
        .unwrap();
    assert!(
        after > before,
        "a new history starts past the old: {before} -> {after}"
    );

    // The old replica cannot continue a history that no longer exists;
    // a new one sees the edit.
    let err = db.sync().await.expect_err("the old history is gone");
    assert!(err.to_string().contains("410"), "{err}");
    let fresh = replica(&origin, &dir.0.join("fresh.db")).await;
    fresh.sync().await.unwrap();
    let conn = fresh.connect().unwrap();
    assert_eq!(
        text(&conn, "SELECT title FROM products WHERE id = 3").await,
        "edited offline"
    );
    assert_eq!(content_hash(&conn).await, primary_hash(&origin).await);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_identity_database_replicates_next_to_the_catalog() {
    let dir = TempDir::new("repl-identity");
    let identity = dir.0.join("identity.db");
    let origin = start_origin_on_seed(&dir.0, &["--identity", identity.to_str().unwrap()]);
    let db = libsql::Builder::new_remote_replica(
        dir.0.join("identity-replica.db"),
        format!("{}/db/identity", origin.url),
        ORIGIN_TOKEN.to_string(),
    )
    .build()
    .await
    .unwrap();
    db.sync().await.unwrap();
    let conn = db.connect().unwrap();
    // Migrated at the origin, and the schema arrived with the base.
    assert_eq!(
        count(&conn, "SELECT max(version) FROM schema_migrations").await,
        identity_db::MIGRATIONS.last().unwrap().version
    );
    conn.execute(
        "INSERT INTO accounts (email, password_hash, kind, created_at, updated_at)
         VALUES ('ada@example.com', '$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA', 'shopper', 1, 1)",
        (),
    )
    .await
    .unwrap();
    assert_eq!(count(&conn, "SELECT count(*) FROM accounts").await, 1);
    let health = edgeshop_e2e::get(&format!("{}/health", origin.url))
        .await
        .json();
    assert!(
        health["replication"]["identity"]["frame"].as_u64().unwrap() > 0,
        "{health}"
    );
    assert!(health["replication"]["catalog"].is_object(), "{health}");
}
