//! The same `spin.toml` on real Spin 4.1: what browsers and `curl` get
//! from the cache middleware there is what they get from our host, since
//! the logic is in the components. Skipped (and says so) on a machine
//! without Spin; `cargo xtask test` finds it (see `setup::spin`).

use edgeshop_e2e::{
    Client, Purpose, TempDir, browse, post_json, primary_connection, request, request_as,
    spin_or_skip, start_origin_on_seed, start_spin, start_spin_reading,
};

#[tokio::test(flavor = "multi_thread")]
async fn browser_requests_are_compressed_cache_hits_on_real_spin() {
    let Some(spin) = spin_or_skip() else {
        return;
    };
    let dir = TempDir::new("spin");
    let app = start_spin(&spin, &dir.0);
    for path in [
        "/api/v1/products/1",
        "/api/v1/products?limit=20",
        "/api/v1/products?category=kitchen-knives&sort=price_asc",
        "/api/v1/categories",
    ] {
        let url = format!("{}{path}", app.url);
        let first = browse(&url, &[]).await;
        assert_eq!(first.status, 200, "{path}: {}\n{}", first.text(), app.log());
        assert_eq!(first.header("content-encoding"), Some("br"), "{path}");
        let second = browse(&url, &[]).await;
        assert!(
            second.cache_status().starts_with("edgeshop; hit"),
            "{path} on Spin, second browser request: {}",
            second.cache_status()
        );
        assert_eq!(second.body, first.body);
        assert!(second.wire.len() < second.body.len());
        // A browser revalidating what it holds.
        let etag = second.header("etag").unwrap().to_string();
        let again = browse(&url, &[("if-none-match", &etag)]).await;
        assert_eq!(again.status, 304, "{path}");
        // curl, plain and --compressed, from the same stored response.
        let plain = request_as(Client::Curl, Purpose::Read, "GET", &url, &[], vec![]).await;
        assert!(plain.cache_status().starts_with("edgeshop; hit"), "{path}");
        assert_eq!(plain.header("content-encoding"), None);
        assert_eq!(plain.body, first.body);
        let gz = request("GET", &url, &[("accept-encoding", "gzip")], vec![]).await;
        assert_eq!(gz.header("content-encoding"), Some("gzip"));
        assert_eq!(gz.body, first.body);
    }
}

/// A `cargo xtask up --spin` PoP: Spin reading the origin over Hrana with
/// the edge token. Reads, accounts and purges go to the origin; with the
/// origin gone, what the cache holds is still served (`stale-if-error`)
/// and what it does not is a problem a person can act on.
#[tokio::test(flavor = "multi_thread")]
async fn a_spin_pop_reads_the_origin_over_hrana_and_keeps_serving_what_it_holds() {
    let Some(spin) = spin_or_skip() else {
        return;
    };
    let dir = TempDir::new("spin-hrana");
    let origin = start_origin_on_seed(&dir.0, &[]);
    let app = start_spin_reading(&spin, &dir.0, &origin.url);
    let page = format!("{}/api/v1/products/1", app.url);
    let first = browse(&page, &[]).await;
    assert_eq!(first.status, 200, "{}\n{}", first.text(), app.log());
    assert!(
        browse(&page, &[])
            .await
            .cache_status()
            .starts_with("edgeshop; hit")
    );

    // Accounts are written at the origin, under the edge token's grant.
    let creds = serde_json::json!({ "email": "hrana@example.com",
        "password": "a long enough password" });
    let signup = post_json(&format!("{}/api/v1/auth/signup", app.url), &creds, &[]).await;
    assert_eq!(signup.status, 201, "{}", signup.text());
    let login = post_json(&format!("{}/api/v1/auth/login", app.url), &creds, &[]).await;
    assert_eq!(login.status, 200, "{}", login.text());

    // A commit at the primary purges the cached page at once: the cache
    // reads the `changes` table at the origin.
    primary_connection(&origin)
        .await
        .execute(
            "UPDATE products SET title = 'Seen over Hrana' WHERE id = 1",
            (),
        )
        .await
        .unwrap();
    let fresh = browse(&page, &[]).await;
    assert!(fresh.text().contains("Seen over Hrana"), "{}", fresh.text());

    // The origin goes away.
    drop(origin);
    let held = browse(&page, &[]).await;
    assert_eq!(held.status, 200, "{}", held.text());
    assert!(held.text().contains("Seen over Hrana"));
    let never = browse(&format!("{}/api/v1/products/2", app.url), &[]).await;
    let problem = never.problem(503);
    assert!(problem["detail"].as_str().is_some(), "{problem}");
}
