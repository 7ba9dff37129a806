//! The same `spin.toml` on real Spin 4.1: what browsers and `curl` get
//! from the cache middleware there is what they get from our host, since
//! the logic is in the components. Skipped (and says so) on a machine
//! without Spin; `cargo xtask test` finds it (see `setup::spin`).

use edgeshop_e2e::{
    Client, Purpose, TempDir, browse, request, request_as, spin_binary, start_spin,
};

#[tokio::test(flavor = "multi_thread")]
async fn browser_requests_are_compressed_cache_hits_on_real_spin() {
    let Some(spin) = spin_binary() else {
        eprintln!("SKIPPED: no real Spin on this machine (EDGESHOP_SPIN_BIN is empty)");
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
