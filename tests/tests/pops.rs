//! PoPs on embedded replicas of the origin's catalog: read-your-writes
//! through a PoP, convergence of several PoPs after a burst of writes,
//! and the faults a PoP must ride out without a manual step.

use edgeshop_e2e::{
    Host, TempDir, content_hash, get, post_json, primary_connection, private_ca, probe,
    replica_hash, request, root, start_checkout_origin_at, start_origin, start_origin_on_seed,
    start_pop, start_pop_with, wait_ready,
};
use std::path::{Path, PathBuf};
use std::time::Duration;

fn guests_manifest() -> PathBuf {
    edgeshop_e2e::component("test-guests");
    root().join("tests/fixtures/replica-guests.toml")
}

async fn pop(manifest: &Path, origin: &Host, dir: &Path, extra: &[&str]) -> Host {
    let pop = start_pop(manifest, &origin.url, dir, extra)
        .unwrap_or_else(|log| panic!("PoP did not start:\n{log}"));
    wait_ready(&pop).await;
    pop
}

async fn sql(pop: &Host, statement: &str) -> String {
    let r = request(
        "POST",
        &format!("{}/sql", pop.url),
        &[],
        statement.as_bytes().to_vec(),
    )
    .await;
    assert_eq!(r.status, 200, "{statement}: {}", r.text());
    r.text()
}

/// Waits (at most 30 s) until the PoP's replica holds exactly `want`.
async fn converged(dir: &Path, want: u64, what: &str, pop: &Host) {
    for _ in 0..300 {
        if replica_hash(dir).await == Some(want) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let status = probe(&format!("{}/.well-known/edgeshop/replication", pop.url)).await;
    panic!(
        "{what} did not converge; status {}\n{}",
        status.text(),
        pop.log()
    );
}

/// `pop`'s replication status once its catalog replica has had a round
/// fail (at most 10 s): each replica follows on its own thread, so the
/// first round may come a moment after the PoP has started.
async fn failed_round(pop: &Host) -> serde_json::Value {
    let mut s = serde_json::Value::Null;
    for _ in 0..200 {
        s = probe(&format!("{}/.well-known/edgeshop/replication", pop.url))
            .await
            .json();
        if s["replicas"][0]["last_error"].is_string() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    s
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pop_always_reads_its_own_writes() {
    let dir = TempDir::new("pop-ryw");
    let origin = start_origin_on_seed(&dir.0, &[]);
    let pop = pop(&guests_manifest(), &origin, &dir.0.join("pop"), &[]).await;
    // Vendor rows: among the few catalog writes the edge token may make.
    for i in 0..40 {
        sql(
            &pop,
            &format!(
                "INSERT INTO vendors (slug, name, country, created_at, updated_at) \
                 VALUES ('ryw-{i}', 'Vendor {i}', 'DE', 1, 1)"
            ),
        )
        .await;
        assert_eq!(
            sql(
                &pop,
                &format!("SELECT name FROM vendors WHERE slug = 'ryw-{i}'")
            )
            .await,
            format!("Vendor {i}\n"),
            "write {i} was not visible to the next read at the same PoP"
        );
    }
    // The writes reached the primary, too.
    let p = primary_connection(&origin).await;
    let mut rows = p
        .query("SELECT count(*) FROM vendors WHERE slug LIKE 'ryw-%'", ())
        .await
        .unwrap();
    let written: i64 = rows.next().await.unwrap().unwrap().get(0).unwrap();
    assert_eq!(written, 40);
    // A write the edge token may not make fails, whatever the component
    // asks for: the PoP checks it against the edge grant before sending
    // it, and our origin would check it again (`hostile.rs` sends such
    // writes to the origin directly).
    let r = request(
        "POST",
        &format!("{}/sql", pop.url),
        &[],
        b"UPDATE products SET price_minor = 1 WHERE id = 11".to_vec(),
    )
    .await;
    assert_eq!(r.status, 500, "{}", r.text());
    assert!(r.text().contains("not authorized"), "{}", r.text());

    // The status endpoint reports the position and, once the primary's
    // position has been asked for, zero lag.
    let mut caught_up = false;
    for _ in 0..100 {
        let status = probe(&format!("{}/.well-known/edgeshop/replication", pop.url))
            .await
            .json();
        let r = &status["replicas"][0];
        assert_eq!(r["label"], "catalog");
        assert_eq!(r["bootstrapped"], true);
        assert!(r["position"]["frame"].as_u64().unwrap() > 0, "{status}");
        assert!(
            r["since_last_sync_ms"].as_u64().unwrap() < 5_000,
            "{status}"
        );
        if r["frames_behind"] == 0 && r["primary"] == r["position"] {
            caught_up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(caught_up, "the status never showed the replica caught up");
}

/// Inserts, updates, deletes and a schema migration at the primary.
async fn burst(p: &libsql::Connection, round: u32) {
    p.execute_batch(&format!(
        "INSERT INTO vendors (slug, name, country, created_at, updated_at)
             VALUES ('burst-{round}', 'Burst vendor {round}', 'NL', 1, 1);
         UPDATE products SET stock = stock + 1, updated_at = {round} WHERE id % 7 = {m};
         DELETE FROM product_categories WHERE product_id = {d};
         CREATE TABLE IF NOT EXISTS promotions (id INTEGER PRIMARY KEY, code TEXT NOT NULL);
         INSERT INTO promotions (code) VALUES ('R{round}');",
        m = round % 7,
        d = 100 + round,
    ))
    .await
    .unwrap();
    if round == 3 {
        p.execute(
            "ALTER TABLE promotions ADD COLUMN percent INTEGER NOT NULL DEFAULT 5",
            (),
        )
        .await
        .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn pops_converge_through_crashes_restarts_and_late_joins() {
    let dir = TempDir::new("pop-converge");
    let mut origin = start_origin_on_seed(&dir.0, &[]);
    let port = origin.url.rsplit(':').next().unwrap().to_string();
    let manifest = root().join("spin.toml");
    let (a_dir, b_dir, c_dir) = (dir.0.join("fra"), dir.0.join("iad"), dir.0.join("sin"));
    let a = pop(&manifest, &origin, &a_dir, &[]).await;
    // iad is 20 ms from the origin, so pulling a big transaction takes
    // many round trips: long enough to be killed in the middle of one.
    let mut b = pop(&manifest, &origin, &b_dir, &["--origin-delay-ms", "20"]).await;

    let p = primary_connection(&origin).await;
    for round in 0..8 {
        burst(&p, round).await;
    }
    // One transaction touching every product (and its search index).
    p.execute(
        "UPDATE products SET description = description || ' Revised.'",
        (),
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(150)).await;
    b.kill();
    // The origin dies under writes, too; both restart.
    origin.kill();
    origin = start_origin(
        &dir.0.join("catalog.db"),
        &["--listen", &format!("127.0.0.1:{port}")],
    )
    .unwrap_or_else(|log| panic!("origin did not restart:\n{log}"));
    let p = primary_connection(&origin).await;
    for round in 8..12 {
        burst(&p, round).await;
    }
    let b = pop(&manifest, &origin, &b_dir, &[]).await;
    // A PoP that starts late bootstraps from the current base.
    let c = pop(&manifest, &origin, &c_dir, &[]).await;

    let want = content_hash(&p).await;
    converged(&a_dir, want, "fra", &a).await;
    converged(&b_dir, want, "iad (killed mid-sync)", &b).await;
    converged(&c_dir, want, "sin (late)", &c).await;

    // The catalog API at the late PoP serves a vendor written last.
    let mut rows = p
        .query("SELECT id FROM vendors WHERE slug = 'burst-11'", ())
        .await
        .unwrap();
    let id: i64 = rows.next().await.unwrap().unwrap().get(0).unwrap();
    let r = get(&format!("{}/api/v1/vendors/{id}", c.url)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["name"], "Burst vendor 11");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_offline_pop_catches_up_across_generations_or_bootstraps_again() {
    let dir = TempDir::new("pop-offline");
    let origin = start_origin_on_seed(
        &dir.0,
        &["--roll-frames", "16", "--retain-generations", "200"],
    );
    let manifest = root().join("spin.toml");
    let pop_dir = dir.0.join("fra");
    let mut fra = pop(&manifest, &origin, &pop_dir, &[]).await;
    let p = primary_connection(&origin).await;

    // Offline while generations roll (within what the origin keeps).
    fra.stop();
    for round in 0..10 {
        burst(&p, round).await;
    }
    let fra = pop(&manifest, &origin, &pop_dir, &[]).await;
    converged(
        &pop_dir,
        content_hash(&p).await,
        "fra after crossing generations",
        &fra,
    )
    .await;
    let s = probe(&format!("{}/.well-known/edgeshop/replication", fra.url))
        .await
        .json();
    assert_eq!(
        s["replicas"][0]["bootstraps"], 0,
        "caught up without bootstrapping: {s}"
    );
    drop(fra);

    // Offline longer than the origin keeps history: the PoP notices the
    // 410, bootstraps a new replica by itself, and keeps serving.
    let dir2 = TempDir::new("pop-gone");
    let origin = start_origin_on_seed(
        &dir2.0,
        &["--roll-frames", "4", "--retain-generations", "2"],
    );
    let pop_dir = dir2.0.join("iad");
    let mut iad = pop(&manifest, &origin, &pop_dir, &[]).await;
    iad.stop();
    let p = primary_connection(&origin).await;
    for round in 0..10 {
        burst(&p, round).await;
    }
    let iad = pop(&manifest, &origin, &pop_dir, &[]).await;
    // Ready at once from its old copy, then replaced.
    let r = get(&format!("{}/api/v1/products/5", iad.url)).await;
    assert_eq!(r.status, 200);
    converged(
        &pop_dir,
        content_hash(&p).await,
        "iad after its history was dropped",
        &iad,
    )
    .await;
    let s = probe(&format!("{}/.well-known/edgeshop/replication", iad.url))
        .await
        .json();
    assert_eq!(s["replicas"][0]["bootstraps"], 1, "{s}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pop_keeps_serving_reads_while_the_origin_is_down() {
    let dir = TempDir::new("pop-partition");
    let mut origin = start_origin_on_seed(&dir.0, &[]);
    let manifest = root().join("spin.toml");
    let pop_dir = dir.0.join("fra");
    let mut fra = pop(&manifest, &origin, &pop_dir, &[]).await;
    origin.kill();
    let r = get(&format!("{}/api/v1/products/42", fra.url)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    // Even a PoP restarted during the outage serves from its local copy.
    fra.stop();
    let fra = start_pop(&manifest, "http://127.0.0.1:9", &pop_dir, &[])
        .unwrap_or_else(|log| panic!("PoP did not start:\n{log}"));
    wait_ready(&fra).await;
    let r = get(&format!("{}/api/v1/products/42", fra.url)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let s = failed_round(&fra).await;
    assert!(s["replicas"][0]["last_error"].is_string(), "{s}");

    // A brand-new PoP cannot serve anything yet: not ready, and app
    // routes answer 503 with Retry-After rather than an empty catalog.
    let fresh = start_pop(&manifest, "http://127.0.0.1:9", &dir.0.join("new"), &[])
        .unwrap_or_else(|log| panic!("PoP did not start:\n{log}"));
    let h = probe(&format!("{}/.well-known/edgeshop/health", fresh.url)).await;
    assert_eq!(h.status, 503);
    let r = get(&format!("{}/api/v1/products/42", fresh.url)).await;
    assert_eq!(r.status, 503);
    assert_eq!(r.header("retry-after"), Some("1"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pop_under_read_load_follows_generation_rolls() {
    let dir = TempDir::new("pop-busy");
    let origin = start_origin_on_seed(
        &dir.0,
        &["--roll-frames", "24", "--retain-generations", "100"],
    );
    let manifest = root().join("spin.toml");
    let pop_dir = dir.0.join("fra");
    let fra = pop(&manifest, &origin, &pop_dir, &[]).await;

    // Readers keep the replica's WAL busy while generations roll under
    // them; the replica checkpoints at each generation's end regardless.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut readers = Vec::new();
    for k in 0..8u32 {
        let (url, stop) = (fra.url.clone(), stop.clone());
        readers.push(tokio::spawn(async move {
            let mut ok = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let r = get(&format!("{url}/api/v1/products?limit=20&min_price={k}")).await;
                assert_eq!(r.status, 200, "{}", r.text());
                ok += 1;
            }
            ok
        }));
    }
    let p = primary_connection(&origin).await;
    for round in 0..20 {
        burst(&p, round).await;
    }
    converged(
        &pop_dir,
        content_hash(&p).await,
        "fra under read load",
        &fra,
    )
    .await;
    // And, with the readers still going, it reaches the primary's
    // current generation instead of stalling at a generation's end.
    let mut status = serde_json::Value::Null;
    for _ in 0..100 {
        status = probe(&format!("{}/.well-known/edgeshop/replication", fra.url))
            .await
            .json();
        let r = &status["replicas"][0];
        if r["frames_behind"] == 0 && r["position"] == r["primary"] {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let r = &status["replicas"][0];
    assert_eq!(r["position"], r["primary"], "{status}");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for r in readers {
        assert!(r.await.unwrap() > 0);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pop_replicates_and_writes_over_tls_and_refuses_a_certificate_it_cannot_trust() {
    let dir = TempDir::new("pop-tls");
    let ca = private_ca(&dir.0);
    let (cert, key, ca_file) = (
        ca.cert.display().to_string(),
        ca.key.display().to_string(),
        ca.ca.display().to_string(),
    );
    // With the order API on (payments are never called here), so the
    // checkout gateway has something to reach.
    let origin = start_checkout_origin_at(
        &dir.0,
        "http://127.0.0.1:9",
        &["--tls-cert", &cert, "--tls-key", &key],
    );
    assert!(origin.url.starts_with("https://"), "{}", origin.url);
    let manifest = root().join("spin.toml");

    // Trusting the operator's CA: bootstraps, pulls, and writes through;
    // its checkout gateway reaches the same origin with the same trust.
    let fra = start_pop_with(
        &manifest,
        &origin.url,
        &dir.0.join("fra"),
        &["--origin-ca", &ca_file],
        &[("SPIN_VARIABLE_ORIGIN_URL", origin.url.clone())],
    )
    .unwrap_or_else(|log| panic!("PoP did not start:\n{log}"));
    wait_ready(&fra).await;
    let r = get(&format!("{}/api/v1/products/42", fra.url)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let signup = post_json(
        &format!("{}/api/v1/auth/signup", fra.url),
        &serde_json::json!({ "email": "tls@example.com", "password": "a long enough password" }),
        &[],
    )
    .await;
    assert_eq!(signup.status, 201, "{}", signup.text());
    let token = signup.json()["access_token"].as_str().unwrap().to_string();
    let me = edgeshop_e2e::browse(
        &format!("{}/api/v1/auth/me", fra.url),
        &[("authorization", &format!("Bearer {token}"))],
    )
    .await;
    assert_eq!(me.status, 200, "the PoP reads its own write: {}", me.text());
    let orders = edgeshop_e2e::browse(
        &format!("{}/api/v1/orders", fra.url),
        &[("authorization", &format!("Bearer {token}"))],
    )
    .await;
    assert_eq!(orders.status, 200, "through the gateway: {}", orders.text());
    assert_eq!(orders.json()["orders"].as_array().map(Vec::len), Some(0));

    // Without the CA the same certificate is refused: never ready, and
    // the replica says why.
    let doubter = start_pop(&manifest, &origin.url, &dir.0.join("iad"), &[])
        .unwrap_or_else(|log| panic!("PoP did not start:\n{log}"));
    let s = failed_round(&doubter).await;
    let h = probe(&format!("{}/.well-known/edgeshop/health", doubter.url)).await;
    assert_eq!(h.status, 503, "{}", h.text());
    let why = s["replicas"][0]["last_error"].as_str().unwrap_or_default();
    assert!(
        why.to_ascii_lowercase().contains("certificate"),
        "{s}\n{}",
        doubter.log()
    );
}

/// A replica commits without waiting for the disk. One found after a
/// machine restart (its directory records another boot than this one)
/// may have lost its last commits while its metadata still counts them,
/// so it serves reads until a fresh bootstrap replaces it.
#[tokio::test(flavor = "multi_thread")]
async fn a_replica_found_after_a_machine_restart_is_replaced_by_a_fresh_one() {
    let dir = TempDir::new("pop-reboot");
    let origin = start_origin_on_seed(&dir.0, &[]);
    let pops = dir.0.join("pop");
    let want = content_hash(&primary_connection(&origin).await).await;
    let mut first = pop(&guests_manifest(), &origin, &pops, &[]).await;
    converged(&pops, want, "the first replica", &first).await;
    first.kill();
    let catalog = pops.join("catalog");
    assert!(catalog.join("catalog-1.db").exists());
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap();
    assert_eq!(
        std::fs::read_to_string(catalog.join("applied-in-boot")).unwrap(),
        boot.trim(),
        "the replica records the boot it applies frames in"
    );
    std::fs::write(catalog.join("applied-in-boot"), "a-boot-that-crashed").unwrap();

    let second = pop(&guests_manifest(), &origin, &pops, &[]).await;
    second
        .wait_log("the machine restarted since this replica last applied frames")
        .await;
    let mut replaced = false;
    for _ in 0..300 {
        if catalog.join("catalog-2.db").exists() && !catalog.join("catalog-1.db").exists() {
            replaced = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        replaced,
        "no fresh replica replaced the suspect one:\n{}",
        second.log()
    );
    converged(&pops, want, "the fresh replica", &second).await;
    assert_eq!(
        std::fs::read_to_string(catalog.join("applied-in-boot")).unwrap(),
        boot.trim()
    );
    // The identity replica's directory saw no other boot: kept, not
    // bootstrapped again.
    assert!(pops.join("identity/identity-1.db").exists());
    assert!(!pops.join("identity/identity-2.db").exists());
}
