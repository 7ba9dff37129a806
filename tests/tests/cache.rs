//! The cache middleware in the real host, in front of the test guests'
//! `/origin/...` app (`tests/fixtures/cache.toml`): each directive, `Vary`,
//! `Age`, 304s, stale-while-revalidate and stale-if-error, credentials,
//! unsafe methods, tag invalidation through the `changes` table, request
//! coalescing, and headers that must not reach a cached app. Then the
//! cache in `spin.toml` at two PoPs, purged by a write at the primary.

use edgeshop_e2e::{
    Client, Host, Purpose, Reply, TempDir, primary_connection, request, request_as, root,
    seeded_catalog, start_origin_on_seed, start_pop, wait_ready,
};
use std::time::Duration;

/// A PoP on its own copy of the catalog (tests write to `changes`).
fn cached_host() -> (Host, TempDir) {
    edgeshop_e2e::component("cache");
    edgeshop_e2e::component("test-guests");
    let dir = TempDir::new("cache");
    let db = dir.0.join("catalog.db");
    std::fs::copy(seeded_catalog(), &db).unwrap();
    let host = Host::start(
        &root().join("tests/fixtures/cache.toml"),
        &["--sqlite", &format!("catalog={}", db.display())],
        &[],
    );
    (host, dir)
}

/// The same app on real Spin (`spin up` on `tests/fixtures/cache.toml`).
fn cached_spin(spin: &std::path::Path) -> (edgeshop_e2e::SpinApp, TempDir) {
    edgeshop_e2e::component("cache");
    edgeshop_e2e::component("test-guests");
    let dir = TempDir::new("cache-spin");
    let db = dir.0.join("catalog.db");
    std::fs::copy(seeded_catalog(), &db).unwrap();
    let app = edgeshop_e2e::start_spin_manifest(
        spin,
        &root().join("tests/fixtures/cache.toml"),
        &dir.0,
        &format!("[sqlite_database.catalog]\ntype = \"spin\"\npath = {db:?}\n"),
        &[],
        &[],
    );
    (app, dir)
}

/// `s` percent-encoded for a query parameter.
fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A bare request with exactly `headers`: the protocol tests below name
/// every field they send.
async fn get(host: &Host, path: &str, headers: &[(&str, &str)]) -> Reply {
    request("GET", &format!("{}{path}", host.url), headers, Vec::new()).await
}

/// `client`'s request for `path`, as a page script sends it, plus `extra`.
async fn as_client(
    client: Client,
    method: &str,
    host: &Host,
    path: &str,
    extra: &[(&str, &str)],
) -> Reply {
    let url = format!("{}{path}", host.url);
    request_as(client, Purpose::Read, method, &url, extra, Vec::new()).await
}

/// A browser's read of `path`.
async fn browser(host: &Host, path: &str, extra: &[(&str, &str)]) -> Reply {
    as_client(Client::Chromium, "GET", host, path, extra).await
}

fn status(r: &Reply) -> &str {
    r.header("cache-status").unwrap_or("<none>")
}

/// GETs every one of `paths` at once and returns the replies in order.
async fn all_at_once(host: &std::sync::Arc<Host>, paths: Vec<String>) -> Vec<Reply> {
    let tasks: Vec<_> = paths
        .into_iter()
        .map(|path| {
            let host = host.clone();
            tokio::spawn(async move { get(&host, &path, &[]).await })
        })
        .collect();
    let mut replies = Vec::new();
    for t in tasks {
        replies.push(t.await.unwrap());
    }
    replies
}

/// Which run of the app produced this body.
fn run(r: &Reply) -> String {
    let t = r.text();
    t.split(" run ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .unwrap_or("?")
        .trim()
        .to_string()
}

async fn runs(host: &Host, name: &str) -> u64 {
    let r = get(host, &format!("/origin-runs/{name}"), &[]).await;
    r.text().parse().unwrap_or_else(|_| {
        panic!(
            "run count: {} {:?}\n{}\n{}",
            r.status,
            r.headers,
            r.text(),
            host.log()
        )
    })
}

async fn a_miss_is_stored_and_then_served_with_age(host: &Host) {
    let path = format!("/origin/a?cc={}&etag={}", enc("max-age=60"), enc("\"v1\""));
    let first = get(host, &path, &[]).await;
    assert_eq!(first.status, 200);
    // The ttl is 60 s less the time the fetch took, in whole seconds.
    let s = status(&first);
    assert!(
        s == "edgeshop; fwd=uri-miss; fwd-status=200; stored; ttl=60"
            || s == "edgeshop; fwd=uri-miss; fwd-status=200; stored; ttl=59",
        "{s}"
    );
    assert!(first.header("age").is_none());
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let second = get(host, &path, &[]).await;
    assert_eq!(run(&second), "1", "{}", second.text());
    assert!(
        status(&second).starts_with("edgeshop; hit; ttl=5"),
        "{}",
        status(&second)
    );
    assert_eq!(second.header("age"), Some("1"));
    assert_eq!(second.header("etag"), Some("\"v1\""));
    // HEAD is answered from the stored GET.
    let head = request("HEAD", &format!("{}{path}", host.url), &[], Vec::new()).await;
    assert!(status(&head).contains("hit"), "{}", status(&head));
    assert!(head.body.is_empty());
    // A conditional request is answered 304 from the cache.
    let cond = get(host, &path, &[("if-none-match", "W/\"v1\"")]).await;
    assert_eq!(cond.status, 304);
    assert!(cond.body.is_empty());
    assert_eq!(cond.header("etag"), Some("\"v1\""));
    assert!(status(&cond).contains("hit"));
    let other = get(host, &path, &[("if-none-match", "\"v0\"")]).await;
    assert_eq!(other.status, 200);
    // Query order and escapes do not split the entry.
    let reordered = format!(
        "/origin/%61?etag={}&cc={}",
        enc("\"v1\""),
        enc("max-age=60")
    );
    assert!(status(&get(host, &reordered, &[]).await).contains("hit"));
    assert_eq!(runs(host, "a").await, 1);
}

async fn directives_decide_what_is_stored_and_reused(host: &Host) {
    // (name, cache-control, stored and reused?)
    for (name, cc, reused) in [
        ("store", "max-age=60", true),
        ("shared", "max-age=0, s-maxage=60", true),
        ("nostore", "max-age=60, no-store", false),
        ("private", "max-age=60, private", false),
        ("nocache", "max-age=60, no-cache", false),
        ("nolife", "public", false),
        ("expired", "max-age=0", false),
    ] {
        let path = format!("/origin/{name}?cc={}", enc(cc));
        get(host, &path, &[]).await;
        let second = get(host, &path, &[]).await;
        assert_eq!(
            status(&second).contains("hit"),
            reused,
            "{cc}: {}",
            status(&second)
        );
        assert_eq!(run(&second), if reused { "1" } else { "2" }, "{cc}");
    }
    // A response that sets a cookie is never stored.
    let path = format!("/origin/cookie?cc={}&cookie=1", enc("public, max-age=60"));
    get(host, &path, &[]).await;
    let second = get(host, &path, &[]).await;
    assert_eq!(run(&second), "2");
    assert_eq!(second.header("set-cookie"), Some("session=run2"));
    // `Vary: *` matches no later request.
    let path = format!("/origin/star?cc={}&vary=*", enc("max-age=60"));
    get(host, &path, &[]).await;
    assert_eq!(run(&get(host, &path, &[]).await), "2");
}

async fn vary_keys_on_the_named_request_headers(host: &Host) {
    let path = format!("/origin/v?cc={}&vary=accept", enc("max-age=60"));
    let json = get(host, &path, &[("accept", "application/json")]).await;
    let html = get(host, &path, &[("accept", "text/html")]).await;
    assert!(status(&html).contains("vary-miss"), "{}", status(&html));
    assert!(html.text().contains("accept=text/html"));
    let again = get(host, &path, &[("accept", "application/json")]).await;
    assert!(status(&again).contains("hit"));
    assert_eq!(again.text(), json.text());
    let none = get(host, &path, &[]).await;
    assert!(none.text().contains("accept=-"), "{}", none.text());
}

async fn credentials_never_get_another_clients_response(host: &Host) {
    let bearer = ("authorization", "Bearer whoever");
    // Stored for an anonymous request; a request with credentials may not
    // reuse it, and its own response is not stored.
    let path = format!("/origin/anon?cc={}", enc("max-age=60"));
    get(host, &path, &[]).await;
    let signed = get(host, &path, &[bearer]).await;
    assert_eq!(run(&signed), "2");
    assert!(
        status(&signed).contains("detail=authorization"),
        "{}",
        status(&signed)
    );
    assert!(status(&get(host, &path, &[]).await).contains("hit"));
    let path = format!("/origin/signed?cc={}", enc("max-age=60"));
    get(host, &path, &[bearer]).await;
    assert_eq!(run(&get(host, &path, &[bearer]).await), "2");
    // `public` allows both.
    let path = format!("/origin/pub?cc={}", enc("public, max-age=60"));
    get(host, &path, &[bearer]).await;
    assert!(status(&get(host, &path, &[]).await).contains("hit"));
    assert!(status(&get(host, &path, &[bearer]).await).contains("hit"));
}

async fn stale_while_revalidate_serves_stale_and_refreshes_once(host: &Host) {
    let path = format!(
        "/origin/swr?cc={}",
        enc("max-age=1, stale-while-revalidate=30")
    );
    get(host, &path, &[]).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let stale = get(host, &path, &[]).await;
    assert_eq!(run(&stale), "1");
    assert!(
        status(&stale).contains("detail=stale-while-revalidate"),
        "{}",
        status(&stale)
    );
    // The refresh lands in the background, once.
    for _ in 0..100 {
        let r = get(host, &path, &[]).await;
        if run(&r) == "2" {
            assert!(status(&r).contains("hit"), "{}", status(&r));
            assert_eq!(runs(host, "swr").await, 2);
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the stale entry was never refreshed:\n{}", host.log());
}

async fn stale_if_error_serves_the_last_good_copy_unless_revalidation_is_required(host: &Host) {
    let path = format!(
        "/origin/sie?cc={}&fail_after=1",
        enc("max-age=1, stale-if-error=60")
    );
    get(host, &path, &[]).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let r = get(host, &path, &[]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(run(&r), "1");
    assert!(
        status(&r).contains("fwd=stale; fwd-status=503"),
        "{}",
        status(&r)
    );
    assert!(status(&r).contains("detail=stale-if-error"));
    // An app that does not answer in time counts as failing.
    let path = format!(
        "/origin/slowsie?cc={}&slow_after=1&delay_ms=5000",
        enc("max-age=1, stale-if-error=60")
    );
    get(host, &path, &[]).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let r = get(host, &path, &[]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(run(&r), "1");
    assert!(
        status(&r).contains("fwd=stale; fwd-status=504"),
        "{}",
        status(&r)
    );
    let path = format!(
        "/origin/mr?cc={}&fail_after=1",
        enc("max-age=1, must-revalidate, stale-if-error=60")
    );
    get(host, &path, &[]).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(get(host, &path, &[]).await.status, 503);
}

async fn writes_and_tag_changes_invalidate(host: &Host) {
    let path = format!("/origin/w?cc={}", enc("max-age=600"));
    get(host, &path, &[]).await;
    let post = request("POST", &format!("{}{path}", host.url), &[], Vec::new()).await;
    assert!(status(&post).contains("fwd=bypass"), "{}", status(&post));
    assert!(status(&post).contains("detail=method"));
    let after = get(host, &path, &[]).await;
    assert!(status(&after).contains("uri-miss"), "{}", status(&after));

    let tagged = format!(
        "/origin/t?cc={}&tag={}",
        enc("max-age=600"),
        enc("product:1, vendor:2")
    );
    let other = format!(
        "/origin/u?cc={}&tag={}",
        enc("max-age=600"),
        enc("product:9")
    );
    get(host, &tagged, &[]).await;
    get(host, &other, &[]).await;
    assert!(status(&get(host, &tagged, &[]).await).contains("hit"));
    let sql = request(
        "POST",
        &format!("{}/sql", host.url),
        &[],
        b"INSERT INTO changes (tag) VALUES ('vendor:2')".to_vec(),
    )
    .await;
    assert_eq!(sql.status, 200, "{}", sql.text());
    let r = get(host, &tagged, &[]).await;
    assert_eq!(run(&r), "2", "{}", status(&r));
    assert!(status(&r).contains("fwd=stale"), "{}", status(&r));
    assert!(status(&get(host, &tagged, &[]).await).contains("hit"));
    assert!(status(&get(host, &other, &[]).await).contains("hit"));
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_misses_run_the_app_once() {
    let (host, _dir) = cached_host();
    let host = std::sync::Arc::new(host);
    let path = format!("/origin/herd?cc={}&delay_ms=300", enc("max-age=60"));
    let (mut fetched, mut collapsed, mut hits) = (0, 0, 0);
    for r in all_at_once(&host, vec![path; 1000]).await {
        assert_eq!(r.status, 200, "{}\n{}", r.text(), host.log());
        assert_eq!(run(&r), "1");
        let s = status(&r);
        if s.contains("collapsed") {
            collapsed += 1;
        } else if s.contains("; hit;") {
            hits += 1;
        } else {
            assert!(s.contains("fwd=uri-miss") && s.contains("stored"), "{s}");
            fetched += 1;
        }
    }
    assert_eq!(runs(&host, "herd").await, 1);
    // One request went forward; every other one waited for its fetch or,
    // arriving after it was stored, was a hit. How many land in which
    // depends on how fast the host admits them, so only the split is
    // checked, and that waiting happened at all.
    assert_eq!(
        (fetched, collapsed + hits),
        (1, 999),
        "{collapsed} collapsed, {hits} hits"
    );
    assert!(collapsed > 0, "nobody waited for the fetch ({hits} hits)");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slow_or_failed_fetch_does_not_wedge_the_requests_waiting_for_it() {
    let (host, _dir) = cached_host();
    let host = std::sync::Arc::new(host);
    // The fetch takes longer than anyone waits (2 s): the waiters go on
    // their own, and every request is answered.
    let slow = format!("/origin/slow?cc={}&delay_ms=3000", enc("max-age=60"));
    let failing = format!("/origin/failing?cc={}&status=500", enc("max-age=60"));
    let paths = [vec![slow; 10], vec![failing; 10]].concat();
    let (mut timed_out, mut failed) = (0, 0);
    for r in all_at_once(&host, paths).await {
        match r.status {
            200 => {
                if status(&r).contains("detail=collapse-timeout") {
                    timed_out += 1;
                }
            }
            500 => failed += 1,
            other => panic!("{other}: {}", r.text()),
        }
    }
    assert_eq!(timed_out, 9, "all but the fetcher gave up waiting");
    // A failed fetch stores nothing and holds no one up.
    assert_eq!(failed, 10);
    assert_eq!(runs(&host, "failing").await, 10);
}

#[tokio::test(flavor = "multi_thread")]
async fn requests_for_an_uncacheable_url_do_not_queue_behind_each_other() {
    let (host, _dir) = cached_host();
    let host = std::sync::Arc::new(host);
    let path = format!("/origin/pass?cc={}&delay_ms=300", enc("no-store"));
    let mut passed = 0;
    for r in all_at_once(&host, vec![path; 20]).await {
        assert_eq!(r.status, 200);
        if status(&r).contains("detail=uncacheable") {
            passed += 1;
        }
    }
    // One fetch found the response uncacheable; everyone waiting on it then
    // went at once rather than taking the fill lock in turn.
    assert_eq!(runs(&host, "pass").await, 20);
    assert_eq!(passed, 19);
}

async fn unkeyed_headers_do_not_reach_a_cached_app(host: &Host) {
    let r = get(
        host,
        "/headers/x",
        &[
            ("x-forwarded-host", "evil.example"),
            ("x-original-url", "/admin"),
        ],
    )
    .await;
    assert!(!r.text().contains("evil"), "{}", r.text());
    assert!(!r.text().contains("/admin"), "{}", r.text());
    // Uncacheable methods pass through untouched.
    let r = request(
        "POST",
        &format!("{}/headers/x", host.url),
        &[("x-forwarded-host", "evil.example")],
        Vec::new(),
    )
    .await;
    assert!(r.text().contains("evil"), "{}", r.text());
}

#[tokio::test(flavor = "multi_thread")]
async fn ten_thousand_mixed_requests_never_cross_users() {
    let (host, _dir) = cached_host();
    let host = std::sync::Arc::new(host);
    // Personal responses as an app would mark them; `public` only with the
    // identity in `Vary`. Accounts 1..=5 and anonymous ("-").
    let shapes = [
        format!("cc={}", enc("max-age=60")),
        format!("cc={}", enc("private, max-age=60")),
        format!("cc={}", enc("no-store")),
        format!(
            "cc={}&vary=edgeshop-auth-account",
            enc("public, max-age=60")
        ),
        format!("cc={}", enc("max-age=1, stale-while-revalidate=30")),
    ];
    let mut tasks = Vec::new();
    for worker in 0..50u64 {
        let host = host.clone();
        let shapes = shapes.clone();
        tasks.push(tokio::spawn(async move {
            let mut x = 0x2545_f491_4f6c_dd1d ^ (worker + 1);
            let (mut checked, mut hits) = (0, 0);
            for _ in 0..200 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let account = x % 6; // 0: anonymous
                let shape = &shapes[((x >> 8) % shapes.len() as u64) as usize];
                let path = format!("/origin/mix{}?{shape}", (x >> 16) % 8);
                let who = account.to_string();
                let headers: Vec<(&str, &str)> = if account == 0 {
                    vec![]
                } else {
                    vec![("edgeshop-auth-account", who.as_str())]
                };
                let r = get(&host, &path, &headers).await;
                assert_eq!(r.status, 200, "{}", r.text());
                let want = if account == 0 {
                    "-".to_string()
                } else {
                    who.clone()
                };
                assert!(
                    r.text().contains(&format!("account={want}\n")),
                    "account {want} got {:?} ({})",
                    r.text(),
                    status(&r)
                );
                checked += 1;
                if status(&r).contains("hit") {
                    hits += 1;
                }
            }
            (checked, hits)
        }));
    }
    let (mut total, mut hits) = (0, 0);
    for t in tasks {
        let (c, h) = t.await.unwrap();
        total += c;
        hits += h;
    }
    assert_eq!(total, 10_000);
    // Not vacuous: about 27% can be hits (anonymous requests for the two
    // anonymous-reusable shapes, everyone for the keyed public one).
    assert!(hits > 2_000, "only {hits} hits");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_write_at_the_primary_purges_every_pop_as_it_replicates() {
    let dir = TempDir::new("cache-purge");
    let origin = start_origin_on_seed(&dir.0, &[]);
    let manifest = root().join("spin.toml");
    let mut pops = Vec::new();
    for name in ["fra", "iad"] {
        let pop = start_pop(&manifest, &origin.url, &dir.0.join(name), &[])
            .unwrap_or_else(|log| panic!("PoP did not start:\n{log}"));
        wait_ready(&pop).await;
        pops.push(pop);
    }
    let product = "/api/v1/products/7";
    let listing = "/api/v1/products?limit=5";
    for pop in &pops {
        for path in [product, listing] {
            browser(pop, path, &[]).await;
            let again = browser(pop, path, &[]).await;
            assert_eq!(again.status, 200);
            assert!(status(&again).contains("hit"), "{path}: {}", status(&again));
        }
    }
    let primary = primary_connection(&origin).await;
    let written = std::time::Instant::now();
    primary
        .execute(
            "UPDATE products SET title = 'Freshly purged', updated_at = updated_at + 1 WHERE id = 7",
            (),
        )
        .await
        .unwrap();
    for pop in &pops {
        loop {
            let r = browser(pop, product, &[]).await;
            assert_eq!(r.status, 200);
            if r.json()["title"] == "Freshly purged" {
                println!(
                    "{} fresh after {:?} ({})",
                    pop.url,
                    written.elapsed(),
                    status(&r)
                );
                break;
            }
            // Until the change arrives, the old copy is what the replica holds too.
            assert!(written.elapsed() < Duration::from_secs(10), "never purged");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // The new copy is stored and served from the cache again.
        let r = browser(pop, product, &[]).await;
        assert!(status(&r).contains("hit"), "{}", status(&r));
        assert_eq!(r.json()["title"], "Freshly purged");
        // The listing was tagged `catalog`: it was purged as well.
        let r = browser(pop, listing, &[]).await;
        assert!(!status(&r).starts_with("edgeshop; hit"), "{}", status(&r));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn with_the_origin_down_cached_catalog_reads_keep_coming_from_the_cache() {
    let dir = TempDir::new("cache-origin-down");
    let mut origin = start_origin_on_seed(&dir.0, &[]);
    let pop = start_pop(
        &root().join("spin.toml"),
        &origin.url,
        &dir.0.join("fra"),
        &[],
    )
    .unwrap_or_else(|log| panic!("PoP did not start:\n{log}"));
    wait_ready(&pop).await;
    let product = "/api/v1/products/11";
    let first = browser(&pop, product, &[]).await;
    assert_eq!(first.status, 200);
    origin.kill();
    for _ in 0..20 {
        let r = browser(&pop, product, &[]).await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert!(status(&r).starts_with("edgeshop; hit"), "{}", status(&r));
        assert_eq!(r.text(), first.text());
    }
    // What was never asked for comes from the PoP's replica, and is stored.
    let r = browser(&pop, "/api/v1/products/12", &[]).await;
    assert_eq!(r.status, 200);
    assert!(status(&r).contains("stored"), "{}", status(&r));
}

/// A JSON page big enough to be worth compressing, fresh for a minute.
fn page(name: &str, extra: &str) -> String {
    format!(
        "/origin/{name}?cc={}&etag={}&type={}&pad=4000{extra}",
        enc("public, max-age=60"),
        enc("\"v1\""),
        enc("application/json"),
    )
}

/// Browsers ask for brotli on every request. The app is asked for
/// identity only; the cache stores that and serves each client the coding
/// it accepts, each coding made once from the stored response. Before
/// this, a browser-shaped request was never a hit.
async fn each_client_gets_the_coding_it_accepts_from_one_stored_response(host: &Host) {
    let path = page("coded", "");
    let first = browser(host, &path, &[]).await;
    assert_eq!(first.status, 200, "{}", first.text());
    assert!(
        first
            .cache_status()
            .starts_with("edgeshop; fwd=uri-miss; fwd-status=200; stored; ttl="),
        "{}",
        first.cache_status()
    );
    assert_eq!(first.header("content-encoding"), Some("br"));
    assert_eq!(first.header("vary"), Some("accept-encoding"));
    assert_eq!(first.header("etag"), Some("\"v1-br\""));
    assert_eq!(
        first.header("content-length"),
        Some(first.wire.len().to_string().as_str())
    );
    assert!(
        first.wire.len() * 4 < first.body.len(),
        "{} compressed bytes for {}",
        first.wire.len(),
        first.body.len()
    );
    // The app saw identity, whatever the browser asked for.
    assert!(
        first.text().contains("encoding=identity"),
        "{}",
        first.text()
    );

    let second = browser(host, &path, &[]).await;
    assert!(
        second.cache_status().starts_with("edgeshop; hit"),
        "{}",
        second.cache_status()
    );
    assert_eq!(second.wire, first.wire);

    // Other clients, other codings, the same stored response.
    for (client, extra, coding, etag) in [
        (Client::Curl, vec![], None, "\"v1\""),
        (Client::Bare, vec![], None, "\"v1\""),
        (Client::CurlCompressed, vec![], Some("br"), "\"v1-br\""),
        (
            Client::Bare,
            vec![("accept-encoding", "gzip")],
            Some("gzip"),
            "\"v1-gzip\"",
        ),
        (
            Client::Bare,
            vec![("accept-encoding", "br;q=0, gzip")],
            Some("gzip"),
            "\"v1-gzip\"",
        ),
        (
            Client::Bare,
            vec![("accept-encoding", "gzip;q=0.5, identity")],
            None,
            "\"v1\"",
        ),
        (
            Client::Bare,
            vec![("accept-encoding", "*;q=0, identity")],
            None,
            "\"v1\"",
        ),
        (Client::Bare, vec![("accept-encoding", "")], None, "\"v1\""),
        (
            Client::Bare,
            vec![("accept-encoding", "zstd, br")],
            Some("br"),
            "\"v1-br\"",
        ),
    ] {
        let r = as_client(client, "GET", host, &path, &extra).await;
        let what = format!("{client:?} {extra:?}");
        assert_eq!(r.status, 200, "{what}");
        assert!(
            r.cache_status().starts_with("edgeshop; hit"),
            "{what}: {}",
            r.cache_status()
        );
        assert_eq!(r.header("content-encoding"), coding, "{what}");
        assert_eq!(r.header("etag"), Some(etag), "{what}");
        assert_eq!(r.header("vary"), Some("accept-encoding"), "{what}");
        assert_eq!(r.body, first.body, "{what}: the same content");
    }
    // Refusing every coding, identity included, is 406.
    for refusal in ["identity;q=0, *;q=0", "*;q=0", "zstd, identity;q=0"] {
        let r = get(host, &path, &[("accept-encoding", refusal)]).await;
        r.problem(406);
        assert_eq!(r.header("vary"), Some("accept-encoding"));
    }
    // The real curl, as a user runs it.
    let out = std::process::Command::new("curl")
        .args(["-s", "--compressed", "-D", "-", "-o", "/dev/null"])
        .arg(format!("{}{path}", host.url))
        .output()
        .expect("curl runs");
    let head = String::from_utf8_lossy(&out.stdout).to_ascii_lowercase();
    assert!(head.contains("cache-status: edgeshop; hit"), "{head}");
    assert!(head.contains("content-encoding: br"), "{head}");
    // One app run served them all.
    assert_eq!(runs(host, "coded").await, 1);

    // A miss answered in gzip stores gzip too; a later browser gets its
    // brotli made from the stored identity response, not from the app.
    let path = page("gz-first", "");
    let r = get(host, &path, &[("accept-encoding", "gzip")]).await;
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    assert!(r.cache_status().contains("stored"));
    let r = browser(host, &path, &[]).await;
    assert_eq!(r.header("content-encoding"), Some("br"));
    assert!(
        r.cache_status().starts_with("edgeshop; hit"),
        "{}",
        r.cache_status()
    );
    assert_eq!(runs(host, "gz-first").await, 1);
}

/// What is not worth compressing, or must not be, is served as the app
/// sent it, to every client, and still cached.
async fn small_binary_coded_and_no_transform_responses_are_sent_as_they_are(host: &Host) {
    let cc = enc("public, max-age=60");
    for (name, query, coded) in [
        (
            "small",
            format!("cc={cc}&type={}", enc("application/json")),
            None,
        ),
        (
            "image",
            format!("cc={cc}&type={}&pad=4000", enc("image/webp")),
            None,
        ),
        (
            "notransform",
            format!(
                "cc={}&type={}&pad=4000",
                enc("public, max-age=60, no-transform"),
                enc("text/html")
            ),
            None,
        ),
        // An app that compressed by itself is passed on untouched, never
        // compressed twice.
        (
            "precoded",
            format!("cc={cc}&type={}&pad=4000&coded=gzip", enc("text/css")),
            Some("gzip"),
        ),
    ] {
        let path = format!("/origin/{name}?{query}");
        let first = as_client(Client::Chromium, "GET", host, &path, &[]).await;
        assert_eq!(first.status, 200, "{name}");
        let second = as_client(Client::Chromium, "GET", host, &path, &[]).await;
        assert!(
            second.cache_status().starts_with("edgeshop; hit"),
            "{name}: {}",
            second.cache_status()
        );
        assert_eq!(second.header("content-encoding"), coded, "{name}");
        assert_eq!(second.header("vary"), None, "{name}: nothing negotiated");
        if coded.is_none() {
            let plain = get(host, &path, &[]).await;
            assert_eq!(
                plain.wire, second.wire,
                "{name}: the same bytes for everyone"
            );
        }
    }
}

/// Ranges apply to the bytes sent, so to the coded variant; one range is a
/// 206, a range past the end a 416, and what this cache does not serve
/// (several ranges, another unit, a stale `If-Range`) the whole response.
async fn ranges_and_head_are_answered_from_the_stored_response(host: &Host) {
    let path = page("ranged", "");
    let whole = get(host, &path, &[]).await;
    assert_eq!(whole.status, 200);
    assert_eq!(whole.header("accept-ranges"), Some("bytes"));
    let len = whole.body.len();

    let r = get(host, &path, &[("range", "bytes=0-9")]).await;
    assert_eq!(r.status, 206);
    assert_eq!(
        r.header("content-range"),
        Some(format!("bytes 0-9/{len}").as_str())
    );
    assert_eq!(r.body, whole.body[..10]);
    assert!(r.cache_status().starts_with("edgeshop; hit"));
    let r = get(host, &path, &[("range", "bytes=-5")]).await;
    assert_eq!(r.status, 206);
    assert_eq!(r.body, whole.body[len - 5..]);

    // A browser resuming a brotli download gets brotli bytes.
    let br = browser(host, &path, &[]).await;
    let r = browser(host, &path, &[("range", "bytes=10-")]).await;
    assert_eq!(r.status, 206);
    assert_eq!(r.header("content-encoding"), Some("br"));
    assert_eq!(
        r.header("content-range"),
        Some(format!("bytes 10-{}/{}", br.wire.len() - 1, br.wire.len()).as_str())
    );
    assert_eq!(r.wire, br.wire[10..]);

    let r = get(host, &path, &[("range", &format!("bytes={len}-"))]).await;
    r.problem(416);
    assert_eq!(
        r.header("content-range"),
        Some(format!("bytes */{len}").as_str())
    );
    for (range, if_range) in [
        ("bytes=0-1, 5-6", None),
        ("items=0-9", None),
        ("bytes=9-0", None),
        ("bytes=0-9", Some("\"v0\"")),
        ("bytes=0-9", Some("W/\"v1\"")),
    ] {
        let mut fields = vec![("range", range)];
        fields.extend(if_range.map(|v| ("if-range", v)));
        let r = get(host, &path, &fields).await;
        assert_eq!(r.status, 200, "{range} {if_range:?}");
        assert_eq!(r.body, whole.body);
    }
    let r = get(
        host,
        &path,
        &[("range", "bytes=0-9"), ("if-range", "\"v1\"")],
    )
    .await;
    assert_eq!(r.status, 206);

    // A miss answers a range too, from what it just stored.
    let fresh = page("ranged-miss", "");
    let r = get(host, &fresh, &[("range", "bytes=0-4")]).await;
    assert_eq!(r.status, 206, "{}", r.cache_status());
    assert!(r.cache_status().contains("stored"));
    assert_eq!(r.body, b"/rang");

    // HEAD: the headers a GET would get, no body, no app run.
    for client in [Client::Chromium, Client::Curl] {
        let get = as_client(client, "GET", host, &path, &[]).await;
        let head = as_client(client, "HEAD", host, &path, &[]).await;
        assert_eq!(head.status, 200);
        assert!(head.wire.is_empty());
        assert!(head.cache_status().starts_with("edgeshop; hit"));
        for field in [
            "etag",
            "content-encoding",
            "vary",
            "content-type",
            "cache-control",
        ] {
            assert_eq!(head.header(field), get.header(field), "{client:?} {field}");
        }
    }
    assert_eq!(runs(host, "ranged").await, 1);
}

/// `If-None-Match` answers 304 however the response is produced: a hit, a
/// fill, a response that could not be stored, one too large to store, a
/// stale copy served for a failing app, a request with credentials that
/// goes past the cache. The app never answers conditions itself here.
async fn if_none_match_gives_304_on_every_path(host: &Host) {
    let tag = enc("\"v1\"");
    let cc = |v: &str| enc(v);
    let cases = [
        (
            "fill",
            format!("cc={}&etag={tag}", cc("max-age=60")),
            vec![],
        ),
        (
            "nostore",
            format!("cc={}&etag={tag}", cc("no-store")),
            vec![],
        ),
        (
            "private",
            format!("cc={}&etag={tag}", cc("private, max-age=60")),
            vec![],
        ),
        (
            "toolarge",
            format!("cc={}&etag={tag}&pad=1100000", cc("max-age=60")),
            vec![],
        ),
        (
            "signed",
            format!("cc={}&etag={tag}", cc("max-age=60")),
            vec![("authorization", "Bearer someone")],
        ),
    ];
    for (name, query, extra) in &cases {
        let path = format!("/origin/inm-{name}?{query}");
        let mut fields = extra.clone();
        fields.push(("if-none-match", "\"v1\""));
        for round in 0..2 {
            let r = get(host, &path, &fields).await;
            assert_eq!(r.status, 304, "{name} round {round}: {}", r.cache_status());
            assert!(r.wire.is_empty());
            assert_eq!(r.header("etag"), Some("\"v1\""), "{name}");
        }
        // Another validator gets the whole response.
        let mut other = extra.clone();
        other.push(("if-none-match", "\"v0\""));
        assert_eq!(get(host, &path, &other).await.status, 200, "{name}");
    }
    // A stale copy served because the app fails is answered the same way.
    let path = format!(
        "/origin/inm-sie?cc={}&etag={tag}&fail_after=1",
        cc("max-age=1, stale-if-error=60")
    );
    get(host, &path, &[]).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let r = get(host, &path, &[("if-none-match", "\"v1\"")]).await;
    assert_eq!(r.status, 304, "{}", r.cache_status());
    assert!(
        r.cache_status().contains("detail=stale-if-error"),
        "{}",
        r.cache_status()
    );
    // Unsafe methods are never turned into 304.
    let r = request(
        "POST",
        &format!("{}/origin/inm-post?etag={tag}", host.url),
        &[("if-none-match", "\"v1\"")],
        Vec::new(),
    )
    .await;
    assert_eq!(r.status, 200);
}

// The cache middleware's cases, on our edge host and on real Spin.
edgeshop_e2e::on_every_host!(
    with cached_host, cached_spin;
    a_miss_is_stored_and_then_served_with_age,
    directives_decide_what_is_stored_and_reused,
    vary_keys_on_the_named_request_headers,
    credentials_never_get_another_clients_response,
    stale_while_revalidate_serves_stale_and_refreshes_once,
    stale_if_error_serves_the_last_good_copy_unless_revalidation_is_required,
    writes_and_tag_changes_invalidate,
    unkeyed_headers_do_not_reach_a_cached_app,
    each_client_gets_the_coding_it_accepts_from_one_stored_response,
    small_binary_coded_and_no_transform_responses_are_sent_as_they_are,
    ranges_and_head_are_answered_from_the_stored_response,
    if_none_match_gives_304_on_every_path,
);
