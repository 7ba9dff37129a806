//! The primary's shipper against a real libSQL database: what it ships,
//! applied to what it exports, is the database.

use replication::{Options, Primary, log, prepare_connection};
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

async fn open(path: &Path) -> (libsql::Database, libsql::Connection) {
    let db = libsql::Builder::new_local(path).build().await.unwrap();
    let conn = db.connect().unwrap();
    let mut rows = conn.query("PRAGMA journal_mode = WAL", ()).await.unwrap();
    while rows.next().await.unwrap().is_some() {}
    drop(rows);
    prepare_connection(&conn).await.unwrap();
    (db, conn)
}

/// The database a replica would hold: the current base plus every frame
/// of the current generation.
fn rebuild(primary: &Primary, out: &Path) {
    let position = primary.position();
    let mut base = primary.export(position.generation).unwrap().unwrap();
    let mut file = std::fs::File::create(out).unwrap();
    std::io::copy(&mut base, &mut file).unwrap();
    file.flush().unwrap();
    let file = std::fs::OpenOptions::new().write(true).open(out).unwrap();
    // Applied at once: a pull's frames may end inside a transaction, and
    // `apply` truncates to the last commit it is given.
    let mut frames = Vec::new();
    while frames.len() / log::FRAME_BYTES < position.frame as usize {
        let start = (frames.len() / log::FRAME_BYTES) as u32 + 1;
        frames.extend(
            primary
                .frames(position.generation, start, start + 1024)
                .unwrap()
                .unwrap(),
        );
    }
    log::apply(&file, &frames).unwrap();
}

async fn rows(path: &Path) -> Vec<(i64, String)> {
    let db = libsql::Builder::new_local(path).build().await.unwrap();
    let conn = db.connect().unwrap();
    let mut rows = conn
        .query("SELECT id, v FROM t ORDER BY id", ())
        .await
        .unwrap();
    let mut out = Vec::new();
    while let Some(r) = rows.next().await.unwrap() {
        out.push((r.get(0).unwrap(), r.get(1).unwrap()));
    }
    out
}

fn options() -> Options {
    Options {
        roll_frames: 1_000_000,
        retain: 4,
        checkpoint_frames: 50,
        poll: Duration::from_millis(5),
    }
}

/// A database with table `t`, and its primary.
async fn primary_of_table_t(
    path: &Path,
    repl: &Path,
    options: Options,
) -> (libsql::Database, libsql::Connection, Arc<Primary>) {
    let (db, conn) = open(path).await;
    conn.execute(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)",
        (),
    )
    .await
    .unwrap();
    let primary = Primary::open("t", path, repl, options).await.unwrap();
    (db, conn, primary)
}

#[tokio::test(flavor = "multi_thread")]
async fn shipped_frames_rebuild_the_database_across_checkpoints_and_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let (_db, conn, primary) = primary_of_table_t(&path, &dir.path().join("repl"), options()).await;
    let generation = primary.position().generation;

    // Enough writes for several checkpoints (and WAL restarts), with
    // pauses so the shipper's checkpoint gets its turn.
    for batch in 0..6 {
        for i in 0..40 {
            let id = batch * 40 + i;
            conn.execute(
                "INSERT INTO t (id, v) VALUES (?1, ?2)",
                libsql::params![id, "x".repeat(3000)],
            )
            .await
            .unwrap();
        }
        assert!(primary.ship_now(Duration::from_secs(5)));
        tokio::time::sleep(Duration::from_millis(1100)).await;
    }
    assert!(primary.ship_now(Duration::from_secs(5)));
    let rebuilt = dir.path().join("rebuilt");
    rebuild(&primary, &rebuilt);
    let want = rows(&path).await;
    assert_eq!(want.len(), 240);
    assert_eq!(rows(&rebuilt).await, want);
    let wal = std::fs::metadata(dir.path().join("db-wal")).unwrap().len() / 4120;
    assert!(
        wal < 400,
        "the WAL was checkpointed and reused: {wal} frames"
    );

    // The shipper stops, then a write lands in the WAL that no shipper
    // saw (as after a crash); the next start ships it.
    primary.shutdown();
    conn.execute("UPDATE t SET v = 'after the crash' WHERE id = 7", ())
        .await
        .unwrap();
    drop(primary);
    let primary = Primary::open("t", &path, &dir.path().join("repl"), options())
        .await
        .unwrap();
    assert!(primary.position().generation > generation);
    // The old generation's log is complete: base(N) + log(N) = base(N+1).
    assert!(primary.frames(generation, 1, 2).unwrap().is_ok());
    rebuild(&primary, &rebuilt);
    let want = rows(&path).await;
    assert_eq!(rows(&rebuilt).await, want);
    assert!(want.contains(&(7, "after the crash".to_string())));
}

#[tokio::test(flavor = "multi_thread")]
async fn checkpoints_under_unbroken_writes_lose_no_frame_and_restart_the_wal() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let (_db, conn, primary) = primary_of_table_t(&path, &dir.path().join("repl"), options()).await;
    conn.busy_timeout(Duration::from_secs(5)).unwrap();
    // Steady writes for 3.5 s, a commit every millisecond or so (a busy
    // catalog): every checkpoint (one a second) races them, in its
    // unlocked pass and its locked one. (A loop with no pause at all
    // starves the locked pass: SQLite's lock is not fair. The WAL then
    // grows until writes pause, as it did before the unlocked pass.)
    let until = std::time::Instant::now() + Duration::from_millis(3500);
    let mut id = 0i64;
    while std::time::Instant::now() < until {
        conn.execute(
            "INSERT INTO t (id, v) VALUES (?1, ?2)",
            libsql::params![id, "y".repeat(3000)],
        )
        .await
        .unwrap();
        id += 1;
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert!(primary.ship_now(Duration::from_secs(5)));
    let rebuilt = dir.path().join("rebuilt");
    rebuild(&primary, &rebuilt);
    let want = rows(&path).await;
    assert_eq!(want.len() as i64, id);
    assert_eq!(
        rows(&rebuilt).await,
        want,
        "every committed frame was shipped"
    );
    let wal = std::fs::metadata(dir.path().join("db-wal")).unwrap().len() / 4120;
    assert!(
        (wal as i64) < id,
        "the WAL restarted under the writes: {wal} frames for {id} commits"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn commits_between_two_passes_ship_as_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    // Passes only when asked, so the commits below wait for one pass.
    let options = Options {
        poll: Duration::from_secs(60),
        ..options()
    };
    let (_db, conn, primary) = primary_of_table_t(&path, &dir.path().join("repl"), options).await;
    assert!(primary.ship_now(Duration::from_secs(5)));
    let before = primary.position();
    // A hundred commits, each rewriting the same few pages (as a busy
    // catalog's stock, holds and change log do).
    for i in 0..100 {
        conn.execute(
            "INSERT INTO t (id, v) VALUES (?1 % 7, ?2) \
             ON CONFLICT (id) DO UPDATE SET v = excluded.v",
            libsql::params![i, format!("version {i}")],
        )
        .await
        .unwrap();
    }
    assert!(primary.ship_now(Duration::from_secs(5)));
    let after = primary.position();
    assert_eq!(after.generation, before.generation);
    let shipped = primary
        .frames(after.generation, before.frame + 1, after.frame + 1)
        .unwrap()
        .unwrap();
    let headers: Vec<_> = shipped
        .chunks_exact(log::FRAME_BYTES)
        .map(replication::wal::FrameHeader::parse)
        .collect();
    // A commit per pass (one, or two if a wake-up from the first
    // `ship_now` ran a pass meanwhile), not a hundred, and in each a page
    // once.
    let transactions: Vec<_> = headers.split_inclusive(|h| h.is_commit()).collect();
    assert!(headers.last().unwrap().is_commit());
    assert!(
        transactions.len() <= 2,
        "{} commits shipped",
        transactions.len()
    );
    for t in transactions {
        let mut pages: Vec<_> = t.iter().map(|h| h.page_no).collect();
        pages.sort_unstable();
        pages.dedup();
        assert_eq!(pages.len(), t.len(), "{t:?}");
    }
    // ... and it makes the same database.
    let rebuilt = dir.path().join("rebuilt");
    rebuild(&primary, &rebuilt);
    let want = rows(&path).await;
    assert_eq!(want.len(), 7);
    assert!(want.contains(&(1, "version 99".to_string())));
    assert_eq!(rows(&rebuilt).await, want);
}

/// Inserts rows `from..from + n`, each about a page, in one transaction
/// apiece.
async fn insert_rows(conn: &libsql::Connection, from: i64, n: i64) {
    for id in from..from + n {
        conn.execute(
            "INSERT INTO t (id, v) VALUES (?1, ?2)",
            libsql::params![id, "z".repeat(3000)],
        )
        .await
        .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_generation_rebuilds_while_rolls_write_their_bases_aside() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    // A roll nearly every batch below.
    let options = Options {
        roll_frames: 40,
        ..options()
    };
    let (_db, conn, primary) = primary_of_table_t(&path, &dir.path().join("repl"), options).await;
    let first = primary.position().generation;
    let rebuilt = dir.path().join("rebuilt");
    for batch in 0..8 {
        insert_rows(&conn, batch * 30, 30).await;
        assert!(primary.ship_now(Duration::from_secs(5)));
        // At once: the newest generation's base may still be being
        // written, and an export waits for it rather than failing or
        // serving part of it.
        rebuild(&primary, &rebuilt);
        assert_eq!(rows(&rebuilt).await, rows(&path).await, "batch {batch}");
    }
    assert!(
        primary.position().generation >= first + 4,
        "generations rolled: {first} -> {}",
        primary.position().generation
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_roll_whose_base_was_never_written_is_finished_at_the_next_start() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let repl = dir.path().join("repl");
    let base = |n: u32| repl.join(format!("gen-{n:010}.base"));
    let (_db, conn, primary) = primary_of_table_t(&path, &repl, options()).await;
    let old = primary.position().generation;
    insert_rows(&conn, 0, 20).await;
    assert!(primary.ship_now(Duration::from_secs(5)));
    primary.shutdown();
    drop(primary);
    let kept = dir.path().join("old.base");
    std::fs::copy(base(old), &kept).unwrap();

    // Started again, generation `old + 1` begins; rows land in its log.
    let primary = Primary::open("t", &path, &repl, options()).await.unwrap();
    let next = primary.position().generation;
    assert_eq!(next, old + 1);
    insert_rows(&conn, 20, 20).await;
    assert!(primary.ship_now(Duration::from_secs(5)));
    primary.shutdown();
    drop(primary);

    // What a roll leaves when the process ends before its thread wrote
    // the new base: the old base and both logs, no base for `next`.
    std::fs::remove_file(base(next)).unwrap();
    std::fs::copy(&kept, base(old)).unwrap();
    let primary = Primary::open("t", &path, &repl, options()).await.unwrap();
    // The history goes on: replicas anywhere in it continue.
    assert!(primary.serves(old), "generation {old} is still served");
    assert!(primary.serves(next), "generation {next} is still served");
    assert!(primary.frames(next, 1, 2).unwrap().is_ok());
    let rebuilt = dir.path().join("rebuilt");
    rebuild(&primary, &rebuilt);
    let want = rows(&path).await;
    assert_eq!(want.len(), 40);
    assert_eq!(rows(&rebuilt).await, want);
}
