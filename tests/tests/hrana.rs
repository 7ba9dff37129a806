//! The origin's Hrana endpoint, checked with a client nobody here wrote:
//! the `libsql` crate in remote mode.

use edgeshop_e2e::{Host, TempDir, binary, remote_connection, request};
use libsql::params;
use std::process::Command;

const TOKEN: &str = "hrana-test-token-0123456789";

fn origin(dir: &TempDir) -> Host {
    let mut cmd = Command::new(binary("edgeshop-origin"));
    cmd.args(["--listen", "127.0.0.1:0", "--catalog"])
        .arg(dir.0.join("catalog.db"))
        .arg("--orders")
        .arg(dir.0.join("orders.db"))
        .env("EDGESHOP_ORIGIN_TOKEN", TOKEN);
    Host::spawn(cmd).unwrap_or_else(|log| panic!("origin did not start:\n{log}"))
}

#[tokio::test]
async fn libsql_remote_client_executes_batches_and_transacts() {
    let dir = TempDir::new("hrana");
    let origin = origin(&dir);
    let conn = remote_connection(&origin, "orders", TOKEN).await;

    conn.execute(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT NOT NULL, score REAL, data BLOB)",
        (),
    )
    .await
    .unwrap();
    let n = conn
        .execute(
            "INSERT INTO t (name, score, data) VALUES (?1, ?2, ?3)",
            params!["ada", 3.5, vec![0u8, 1, 255]],
        )
        .await
        .unwrap();
    assert_eq!(n, 1);
    assert_eq!(conn.last_insert_rowid(), 1);
    conn.execute(
        "INSERT INTO t (name) VALUES (:name)",
        libsql::named_params! { ":name": "bob" },
    )
    .await
    .unwrap();

    let mut rows = conn
        .query("SELECT id, name, score, data FROM t ORDER BY id", ())
        .await
        .unwrap();
    let first = rows.next().await.unwrap().unwrap();
    assert_eq!(first.get::<i64>(0).unwrap(), 1);
    assert_eq!(first.get::<String>(1).unwrap(), "ada");
    assert_eq!(first.get::<f64>(2).unwrap(), 3.5);
    assert_eq!(first.get::<Vec<u8>>(3).unwrap(), vec![0u8, 1, 255]);
    let second = rows.next().await.unwrap().unwrap();
    assert_eq!(second.get::<String>(1).unwrap(), "bob");
    assert!(rows.next().await.unwrap().is_none());

    // execute_batch goes through a batch (or sequence) request.
    conn.execute_batch("INSERT INTO t (name) VALUES ('c'); INSERT INTO t (name) VALUES ('d');")
        .await
        .unwrap();

    // An interactive transaction spans requests over the stream's baton.
    let tx = conn.transaction().await.unwrap();
    tx.execute("INSERT INTO t (name) VALUES ('in-tx')", ())
        .await
        .unwrap();
    let mut r = tx.query("SELECT count(*) FROM t", ()).await.unwrap();
    assert_eq!(r.next().await.unwrap().unwrap().get::<i64>(0).unwrap(), 5);
    tx.rollback().await.unwrap();
    let tx = conn.transaction().await.unwrap();
    tx.execute("INSERT INTO t (name) VALUES ('kept')", ())
        .await
        .unwrap();
    tx.commit().await.unwrap();

    // A second client sees exactly the committed rows.
    let other = remote_connection(&origin, "orders", TOKEN).await;
    let mut r = other
        .query("SELECT group_concat(name, ',') FROM t ORDER BY id", ())
        .await
        .unwrap();
    assert_eq!(
        r.next().await.unwrap().unwrap().get::<String>(0).unwrap(),
        "ada,bob,c,d,kept"
    );

    // SQL errors come back as errors, and the connection stays usable.
    let err = conn
        .execute("INSERT INTO t (id, name) VALUES (1, 'dup')", ())
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("UNIQUE") || err.to_string().contains("constraint"),
        "{err}"
    );
    assert_eq!(conn.execute("UPDATE t SET score = 1", ()).await.unwrap(), 5);
}

#[tokio::test]
async fn wrong_or_missing_tokens_and_forged_batons_are_refused() {
    let dir = TempDir::new("hrana-auth");
    let origin = origin(&dir);
    let bad = remote_connection(&origin, "orders", "not-the-token-at-all").await;
    assert!(bad.execute("SELECT 1", ()).await.is_err());

    let url = format!("{}/db/orders/v3/pipeline", origin.url);
    let body =
        br#"{"baton":null,"requests":[{"type":"execute","stmt":{"sql":"SELECT 1"}}]}"#.to_vec();
    let r = request("POST", &url, &[], body.clone()).await;
    r.problem(401);
    assert_eq!(r.header("www-authenticate"), Some("Bearer"));

    let auth = format!("Bearer {TOKEN}");
    let r = request("POST", &url, &[("authorization", &auth)], body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(
        v["results"][0]["response"]["result"]["rows"][0][0]["value"],
        "1"
    );
    let baton = v["baton"].as_str().unwrap().to_string();

    // The baton works once; replaying it, or altering it, is refused.
    let next = format!(r#"{{"baton":"{baton}","requests":[{{"type":"get_autocommit"}}]}}"#);
    let r = request(
        "POST",
        &url,
        &[("authorization", &auth)],
        next.clone().into_bytes(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["results"][0]["response"]["is_autocommit"], true);
    request("POST", &url, &[("authorization", &auth)], next.into_bytes())
        .await
        .problem(400);
    let mut forged = baton.into_bytes();
    forged[2] = if forged[2] == b'A' { b'B' } else { b'A' };
    let forged = format!(
        r#"{{"baton":"{}","requests":[]}}"#,
        String::from_utf8(forged).unwrap()
    );
    request(
        "POST",
        &url,
        &[("authorization", &auth)],
        forged.into_bytes(),
    )
    .await
    .problem(400);

    // Unknown database: 404.
    let r = request(
        "POST",
        &format!("{}/db/nope/v3/pipeline", origin.url),
        &[("authorization", &auth)],
        b"{}".to_vec(),
    )
    .await;
    r.problem(404);
}

/// npm `@libsql/client`, installed by `cargo xtask setup` into the tool
/// cache (`EDGESHOP_NPM_DIR`), against the same endpoint.
#[tokio::test]
async fn npm_libsql_client_works_against_the_origin() {
    let npm = std::env::var("EDGESHOP_NPM_DIR")
        .map(std::path::PathBuf::from)
        .expect("EDGESHOP_NPM_DIR is set by `cargo xtask test` (it installs @libsql/client)");
    assert!(
        npm.join("node_modules/@libsql/client").exists(),
        "run `cargo xtask setup`"
    );
    let dir = TempDir::new("hrana-js");
    let origin = origin(&dir);
    // Node resolves packages from the script's directory upwards.
    let script = npm.join(format!("edgeshop-test-{}.mjs", std::process::id()));
    std::fs::copy(
        edgeshop_e2e::root().join("tests/js/libsql-client.mjs"),
        &script,
    )
    .unwrap();
    let out = tokio::process::Command::new("node")
        .arg(&script)
        // Trailing slash: the JS client resolves `v2/pipeline` relative to it.
        .env("HRANA_URL", format!("{}/db/orders/", origin.url))
        .env("HRANA_TOKEN", TOKEN)
        .output()
        .await
        .expect("run node");
    let _ = std::fs::remove_file(&script);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "node failed:\n{stderr}\n{}",
        origin.log()
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["names"], "ada,bob,c,d,kept");
    assert_eq!(v["count"], 5);
    assert_eq!(v["n"], 1.5);
    assert_eq!(v["blob"], serde_json::json!([1, 2, 255]));
    assert!(
        v["error"].as_str().unwrap().contains("no_such_table"),
        "{v}"
    );
}

/// An acknowledged write survives `kill -9` of the origin: it is in the WAL
/// on disk before the response leaves.
#[tokio::test]
async fn acknowledged_writes_survive_kill_9() {
    let dir = TempDir::new("hrana-durable");
    let mut first = origin(&dir);
    let conn = remote_connection(&first, "orders", TOKEN).await;
    conn.execute("CREATE TABLE d (id INTEGER PRIMARY KEY, v TEXT)", ())
        .await
        .unwrap();
    for i in 0..200 {
        conn.execute("INSERT INTO d (v) VALUES (?1)", params![format!("row-{i}")])
            .await
            .unwrap();
    }
    let tx = conn.transaction().await.unwrap();
    tx.execute("INSERT INTO d (v) VALUES ('in-committed-tx')", ())
        .await
        .unwrap();
    tx.commit().await.unwrap();
    // Begun but never committed: must not survive.
    let open = conn.transaction().await.unwrap();
    open.execute("INSERT INTO d (v) VALUES ('uncommitted')", ())
        .await
        .unwrap();

    let _ = first.child.kill(); // SIGKILL: no shutdown path runs
    let _ = first.child.wait();
    drop(open);

    let second = origin(&dir);
    let conn = remote_connection(&second, "orders", TOKEN).await;
    let mut r = conn
        .query(
            "SELECT count(*), sum(v = 'in-committed-tx'), sum(v = 'uncommitted') FROM d",
            (),
        )
        .await
        .unwrap();
    let row = r.next().await.unwrap().unwrap();
    assert_eq!(row.get::<i64>(0).unwrap(), 201);
    assert_eq!(row.get::<i64>(1).unwrap(), 1);
    assert_eq!(row.get::<i64>(2).unwrap(), 0);
}

/// A client inside a write transaction makes other writers wait for
/// SQLite's lock. Their waiting must not hold up the origin: if it did, the
/// holder could not even commit, and every waiter would give up with
/// "database is locked" having achieved nothing.
#[tokio::test(flavor = "multi_thread")]
async fn writers_waiting_for_the_lock_do_not_stall_the_origin() {
    let dir = TempDir::new("hrana-wait");
    let origin = origin(&dir);
    let setup = remote_connection(&origin, "orders", TOKEN).await;
    setup
        .execute("CREATE TABLE t (id INTEGER PRIMARY KEY, who TEXT)", ())
        .await
        .unwrap();
    let holder = remote_connection(&origin, "orders", TOKEN).await;
    let tx = holder.transaction().await.unwrap();
    tx.execute("INSERT INTO t (who) VALUES ('holder')", ())
        .await
        .unwrap();
    // More waiting writers than the origin has worker threads.
    let workers = std::thread::available_parallelism().map_or(4, |n| n.get());
    let waiters: Vec<_> = (0..workers * 4)
        .map(|i| {
            let url = origin.url.clone();
            tokio::spawn(async move {
                let conn = libsql::Builder::new_remote(format!("{url}/db/orders"), TOKEN.into())
                    .build()
                    .await
                    .unwrap()
                    .connect()
                    .unwrap();
                conn.execute("INSERT INTO t (who) VALUES (?1)", params![format!("w{i}")])
                    .await
            })
        })
        .collect();
    // Give them time to reach the lock and start waiting on it.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let health = request("GET", &format!("{}/health", origin.url), &[], vec![]).await;
    assert_eq!(health.status, 200, "{}", health.text());
    tx.commit().await.unwrap();
    for (i, w) in waiters.into_iter().enumerate() {
        let written = w.await.unwrap();
        assert!(written.is_ok(), "writer {i}: {written:?}");
    }
    let mut rows = setup.query("SELECT count(*) FROM t", ()).await.unwrap();
    assert_eq!(
        rows.next().await.unwrap().unwrap().get::<i64>(0).unwrap(),
        1 + workers as i64 * 4
    );
}
