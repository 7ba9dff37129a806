//! sqld, the libSQL server Turso runs, as the primary (`cargo xtask up
//! --primary sqld`; the whole walk is in `up.rs`): its JWT auth as we
//! use it, our migrations over Hrana, and PoPs that replicate from it
//! through a crash of the server under writes, losing no acknowledged
//! write and reporting where they are.

use edgeshop_e2e::sqld::Sqld;
use edgeshop_e2e::{
    Host, TempDir, acknowledged_inserts, content_hash, probe, replica_hash, request, root,
    seeded_catalog, sqld_or_skip, wait_ready,
};
use std::time::{Duration, Instant};

async fn count(conn: &libsql::Connection, sql: &str) -> i64 {
    let mut rows = conn.query(sql, ()).await.unwrap();
    rows.next().await.unwrap().unwrap().get(0).unwrap()
}

/// What sqld answers a Hrana read with `bearer`.
async fn status_with(url: &str, bearer: Option<&str>) -> u16 {
    let read = serde_json::json!({"requests": [
        {"type": "execute", "stmt": {"sql": "SELECT 1"}}, {"type": "close"}]});
    let headers: Vec<(&str, String)> = bearer
        .map(|t| ("authorization", format!("Bearer {t}")))
        .into_iter()
        .collect();
    let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    edgeshop_e2e::post_json(&format!("{url}/v2/pipeline"), &read, &headers)
        .await
        .status
}

#[tokio::test(flavor = "multi_thread")]
async fn sqld_checks_our_tokens_and_takes_our_migrations_over_hrana() {
    let Some(binary) = sqld_or_skip() else {
        return;
    };
    let dir = TempDir::new("sqld-auth");
    let sqld = Sqld::start(&binary, &dir.0.join("catalog"), None);
    let other = Sqld::start(&binary, &dir.0.join("identity"), None);

    // No token, another server's token, an expired one, a forged one:
    // refused before anything runs.
    assert_eq!(status_with(&sqld.url, None).await, 401);
    assert_eq!(status_with(&sqld.url, Some(&other.rw_token())).await, 401);
    let expired = sqld.token(serde_json::json!({"a": "rw", "exp": 1_000_000_000}));
    assert_eq!(status_with(&sqld.url, Some(&expired)).await, 401);
    let mut forged = sqld.rw_token().into_bytes();
    let last = forged.len() - 2;
    forged[last] = if forged[last] == b'A' { b'B' } else { b'A' };
    let forged = String::from_utf8(forged).unwrap();
    assert_eq!(status_with(&sqld.url, Some(&forged)).await, 401);
    assert_eq!(status_with(&sqld.url, Some(&sqld.rw_token())).await, 200);

    // The catalog's migrations apply over Hrana, each in a transaction,
    // and a second run finds nothing to do.
    let conn = sqld.connect().await;
    let applied = catalog_db::migrate(&conn).await.unwrap();
    let newest = *catalog_db::MIGRATIONS
        .iter()
        .map(|m| &m.version)
        .max()
        .unwrap();
    assert_eq!(applied.last(), Some(&newest));
    assert!(catalog_db::migrate(&conn).await.unwrap().is_empty());
    assert_eq!(
        count(&conn, "SELECT count(*) FROM schema_migrations").await,
        catalog_db::MIGRATIONS.len() as i64
    );
    // The replicated `changes` table and its triggers came with them:
    // a write records what the PoPs' caches must drop.
    conn.execute(
        "INSERT INTO vendors (slug, name, country, created_at, updated_at)
         VALUES ('v', 'V', 'FR', 1, 1)",
        (),
    )
    .await
    .unwrap();
    let before = count(&conn, "SELECT count(*) FROM changes").await;
    conn.execute("UPDATE vendors SET name = 'W' WHERE slug = 'v'", ())
        .await
        .unwrap();
    assert!(count(&conn, "SELECT count(*) FROM changes").await > before);

    // A read-only token reads and cannot write.
    let ro =
        libsql::Builder::new_remote(sqld.url.clone(), sqld.token(serde_json::json!({"a": "ro"})))
            .build()
            .await
            .unwrap()
            .connect()
            .unwrap();
    assert_eq!(count(&ro, "SELECT count(*) FROM vendors").await, 1);
    assert!(
        ro.execute("DELETE FROM vendors", ()).await.is_err(),
        "a read-only token wrote"
    );
    assert_eq!(count(&conn, "SELECT count(*) FROM vendors").await, 1);
}

/// A PoP whose catalog is an embedded replica of `sqld`, serving the
/// test guests (`/sql` runs a statement on it), with the PoP's own token
/// for sqld: read-write on the whole database, as sqld grants.
fn pop(sqld: &Sqld, replicas: &std::path::Path) -> Host {
    edgeshop_e2e::component("test-guests");
    let token = sqld.token(serde_json::json!({"a": "rw", "sub": "edgeshop-edge"}));
    Host::try_start(
        &root().join("tests/fixtures/replica-guests.toml"),
        &[
            "--replica",
            &format!("catalog={}", sqld.url),
            "--replica-dir",
            &replicas.display().to_string(),
            "--sync-interval-ms",
            "50",
        ],
        &[("EDGESHOP_PRIMARY_TOKEN_CATALOG", token.as_str())],
    )
    .unwrap_or_else(|log| panic!("the PoP did not start:\n{log}"))
}

/// Runs `statement` at `pop` through a component: status and text.
async fn sql(pop: &Host, statement: &str) -> (u16, String) {
    let r = request(
        "POST",
        &format!("{}/sql", pop.url),
        &[],
        statement.as_bytes().to_vec(),
    )
    .await;
    (r.status, r.text())
}

#[tokio::test(flavor = "multi_thread")]
async fn pops_replicating_sqld_keep_every_acknowledged_write_across_its_crash() {
    let Some(binary) = sqld_or_skip() else {
        return;
    };
    let dir = TempDir::new("sqld-crash");
    let mut sqld = Sqld::start(&binary, &dir.0.join("sqld"), Some(seeded_catalog()));
    let pops: Vec<(std::path::PathBuf, Host)> = (0..2)
        .map(|i| {
            let replicas = dir.0.join(format!("pop{i}"));
            let host = pop(&sqld, &replicas);
            (replicas, host)
        })
        .collect();
    for (_, host) in &pops {
        wait_ready(host).await;
    }

    // A component's write through a PoP reaches sqld in one request and
    // the same PoP reads it at once (it waits for sqld's replication
    // index, which sqld answers the write with).
    let near = &pops[0].1;
    for i in 0..5 {
        let (status, text) = sql(
            near,
            &format!(
                "INSERT INTO vendors (slug, name, country, created_at, updated_at)
                 VALUES ('pop-{i}', 'Pop vendor {i}', 'FR', 1, 1)"
            ),
        )
        .await;
        assert_eq!(status, 200, "{text}");
        let (_, read) = sql(
            near,
            &format!("SELECT name FROM vendors WHERE slug = 'pop-{i}'"),
        )
        .await;
        assert_eq!(
            read,
            format!("Pop vendor {i}\n"),
            "write {i} was not read back at once"
        );
    }
    // sqld would take any write of this token; the PoP holds components
    // to the edge grant before anything is sent.
    let price = "SELECT price_minor FROM products WHERE id = 11";
    let before = count(&sqld.connect().await, price).await;
    let (status, text) = sql(near, "UPDATE products SET price_minor = 1 WHERE id = 11").await;
    assert_eq!(status, 500, "{text}");
    assert!(text.contains("not authorized"), "{text}");
    assert_eq!(count(&sqld.connect().await, price).await, before);

    // A writer inserts rows and remembers which sqld acknowledged; sqld
    // is killed under it and started again on its address.
    let writer = tokio::spawn(acknowledged_inserts(sqld.url.clone(), sqld.rw_token(), 400));
    tokio::time::sleep(Duration::from_millis(300)).await;
    sqld.restart();
    let acked = writer.await.unwrap();
    assert!(
        acked.len() > 100,
        "only {} writes were acknowledged",
        acked.len()
    );
    // Some were refused while sqld was down: the crash was under writes.
    assert!(acked.len() < 400, "the crash missed the writes");

    let primary = sqld.connect().await;
    for i in &acked {
        let n = count(
            &primary,
            &format!("SELECT count(*) FROM vendors WHERE slug = 'crash-{i}'"),
        )
        .await;
        assert_eq!(n, 1, "acknowledged write crash-{i} is missing at sqld");
    }

    // Every PoP converges on sqld's content and says it has: its status
    // reports where its replica and sqld are, nothing behind.
    let want = content_hash(&primary).await;
    for (replicas, host) in &pops {
        let started = Instant::now();
        loop {
            let status = probe(&format!("{}/.well-known/edgeshop/replication", host.url))
                .await
                .json();
            let catalog = &status["replicas"][0];
            let converged = replica_hash(replicas).await == Some(want)
                && catalog["frames_behind"] == 0
                && catalog["position"]["frame"].as_u64().is_some_and(|f| f > 0);
            if converged {
                assert_eq!(catalog["position"], catalog["primary"], "{status}");
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "a PoP never converged on sqld: {status}\n{}",
                host.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pop_follows_sqld_onto_a_new_seed() {
    let Some(binary) = sqld_or_skip() else {
        return;
    };
    let dir = TempDir::new("sqld-reseed");
    let mut sqld = Sqld::start(&binary, &dir.0.join("sqld"), Some(seeded_catalog()));
    let replicas = dir.0.join("pop");
    let pop = pop(&sqld, &replicas);
    wait_ready(&pop).await;
    let title = "SELECT title FROM products WHERE id = 1";
    let (_, before) = sql(&pop, title).await;

    // A new seed: the same catalog with product 1 renamed, written as
    // `cargo xtask seed` writes one (its WAL folded in).
    let seed = dir.0.join("reseed.db");
    std::fs::copy(seeded_catalog(), &seed).unwrap();
    {
        let db = libsql::Builder::new_local(&seed).build().await.unwrap();
        let conn = db.connect().unwrap();
        conn.execute("UPDATE products SET title = 'Reseeded' WHERE id = 1", ())
            .await
            .unwrap();
        let mut rows = conn
            .query("PRAGMA wal_checkpoint(TRUNCATE)", ())
            .await
            .unwrap();
        while rows.next().await.unwrap().is_some() {}
    }
    sqld.reseed(&seed);

    // The running PoP finds a log it does not continue, takes sqld's new
    // database whole and converges on it, without a restart.
    let want = content_hash(&sqld.connect().await).await;
    let started = Instant::now();
    loop {
        let (_, now) = sql(&pop, title).await;
        if now == "Reseeded\n" && replica_hash(&replicas).await == Some(want) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the PoP still reads {now:?} (before: {before:?}):\n{}",
            pop.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
