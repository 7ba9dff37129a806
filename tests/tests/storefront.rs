//! The storefront: pages rendered at the PoP from its replica, and the
//! shopper's journeys through them in headless Chromium.
//!
//! HTTP cases send what Chromium sends when a person navigates; the
//! journeys drive the real browser (`edgeshop_e2e::browser`) against the
//! platform `cargo xtask up` starts, save screenshots of each key page
//! under `target/screenshots/`, and run axe-core on every page type.

use edgeshop_e2e::browser::Browser;
use edgeshop_e2e::platform::Platform;
use edgeshop_e2e::{Host, SpinApp, TempDir, browse, navigate, request, start_spin};
use std::path::Path;

/// Prices shown on the page, in cents, in page order.
fn prices(html: &str) -> Vec<i64> {
    html.split(r#"<p class="price">"#)
        .skip(1)
        .map(|rest| {
            let text = &rest[..rest.find('<').unwrap()];
            let digits: String = text.chars().filter(char::is_ascii_digit).collect();
            digits.parse().unwrap()
        })
        .collect()
}

fn hrefs<'a>(html: &'a str, prefix: &str) -> Vec<&'a str> {
    html.split("href=\"")
        .skip(1)
        .map(|rest| &rest[..rest.find('"').unwrap()])
        .filter(|h| h.starts_with(prefix))
        .collect()
}

fn on_files() -> (Host, TempDir) {
    (Host::catalog(), TempDir::new("storefront"))
}

fn on_spin(spin: &Path) -> (SpinApp, TempDir) {
    let dir = TempDir::new("storefront-spin");
    (start_spin(spin, &dir.0), dir)
}

// The same pages from the same spin.toml on our host and on real Spin.
edgeshop_e2e::on_every_host!(
    with on_files, on_spin;
    pages_are_html_made_at_the_pop_cached_and_compressed_like_the_api,
    listings_filter_sort_and_page_by_keyset_with_the_filters_kept_in_every_link,
);

async fn pages_are_html_made_at_the_pop_cached_and_compressed_like_the_api(host: &Host) {
    let home = navigate(&format!("{}/", host.url), &[]).await;
    assert_eq!(home.status, 200, "{}", home.text());
    assert_eq!(
        home.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(
        home.header("content-encoding"),
        Some("br"),
        "Chromium asks for br"
    );
    let csp = home.header("content-security-policy").unwrap();
    for directive in [
        "script-src 'self'",
        "frame-ancestors 'none'",
        "default-src 'none'",
    ] {
        assert!(csp.contains(directive), "{csp}");
    }
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    let html = home.text();
    assert!(!html.contains("<script>"), "no inline script");
    assert_eq!(hrefs(&html, "/p/").len(), 12, "the twelve newest products");
    // A second visit is a hit, with the same bytes.
    let again = navigate(&format!("{}/", host.url), &[]).await;
    assert!(
        again.cache_status().contains("hit"),
        "{}",
        again.cache_status()
    );
    assert_eq!(again.text(), html);

    // Every asset the page links is served, immutable, in the coding asked.
    let assets = hrefs(&html, "/assets/");
    let script = html
        .split("<script src=\"")
        .nth(1)
        .map(|r| &r[..r.find('"').unwrap()]);
    for path in assets.iter().copied().chain(script) {
        let url = format!("{}{path}", host.url);
        let r = browse(&url, &[]).await;
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(
            r.header("cache-control"),
            Some("public, max-age=31536000, immutable")
        );
        assert_eq!(r.header("content-encoding"), Some("br"), "{path}");
        assert_eq!(r.header("vary"), Some("accept-encoding"));
        let gz = request("GET", &url, &[("accept-encoding", "gzip")], vec![]).await;
        assert_eq!(
            (gz.header("content-encoding"), &gz.body[..]),
            (Some("gzip"), &r.body[..])
        );
        let plain = request("GET", &url, &[], vec![]).await;
        assert_eq!(
            (plain.header("content-encoding"), &plain.body[..]),
            (None, &r.body[..])
        );
        let etag = r.header("etag").unwrap();
        let revalidated = browse(&url, &[("if-none-match", etag)]).await;
        assert_eq!(revalidated.status, 304, "{path}");
    }
    let missing = browse(&format!("{}/assets/style.0000.css", host.url), &[]).await;
    assert_eq!(
        missing.problem(404)["detail"]
            .as_str()
            .map(|d| d.contains("reload")),
        Some(true)
    );
}

async fn listings_filter_sort_and_page_by_keyset_with_the_filters_kept_in_every_link(host: &Host) {
    let base = format!("{}/c/kitchen", host.url);
    let first = navigate(
        &format!("{base}?sort=price_asc&min=20&max=&utm_source=mail"),
        &[],
    )
    .await;
    assert_eq!(first.status, 200, "{}", first.text());
    let html = first.text();
    let p1 = prices(&html);
    assert_eq!(p1.len(), 24, "a full page");
    assert!(
        p1.windows(2).all(|w| w[0] <= w[1]) && p1[0] >= 2000,
        "{p1:?}"
    );
    let next: Vec<&str> = hrefs(&html, "/c/kitchen?")
        .into_iter()
        .filter(|h| h.contains("after="))
        .collect();
    assert_eq!(next.len(), 1, "one next link");
    let next = next[0].replace("&amp;", "&");
    assert!(
        next.contains("sort=price_asc") && next.contains("min=20"),
        "{next}"
    );
    let second = navigate(&format!("{}{next}", host.url), &[]).await;
    let p2 = prices(&second.text());
    assert!(
        p2[0] >= *p1.last().unwrap(),
        "the next page continues: {p1:?} then {p2:?}"
    );
    let ids = |h: &str| {
        hrefs(h, "/p/")
            .into_iter()
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    let (ids1, ids2) = (ids(&html), ids(&second.text()));
    assert!(ids2.iter().all(|id| !ids1.contains(id)), "no product twice");

    // A cursor from other filters is refused as a page with a way out.
    let cursor = next.split("after=").nth(1).unwrap();
    let forged = navigate(&format!("{base}?sort=price_desc&after={cursor}"), &[]).await;
    assert_eq!(forged.status, 400);
    assert!(forged.text().contains("start again from the first page"));

    // Search keeps its query in the URL and in the box; hostile text stays text.
    let found = navigate(&format!("{}/search?q=walnut", host.url), &[]).await;
    assert!(found.text().contains(r#"value="walnut""#));
    assert!(!hrefs(&found.text(), "/p/").is_empty());
    let hostile = navigate(
        &format!("{}/search?q=%3Cscript%3Ealert(1)%3C%2Fscript%3E", host.url),
        &[],
    )
    .await;
    assert_eq!(hostile.status, 200);
    assert!(
        hostile
            .text()
            .contains("&lt;script&gt;alert(1)&lt;/script&gt;")
    );
    assert!(!hostile.text().contains("<script>alert"));

    // Mistakes are pages for people and problems for programs.
    let bad = navigate(&format!("{base}?min=ten"), &[]).await;
    assert_eq!(
        (bad.status, bad.header("content-type")),
        (400, Some("text/html; charset=utf-8"))
    );
    assert!(
        bad.text()
            .contains("the lowest price must be an amount such as 12 or 12.50")
    );
    let api = browse(&format!("{base}?min=ten"), &[]).await;
    assert_eq!(api.problem(400)["parameter"], "min");
    let gone = navigate(&format!("{}/p/99999999", host.url), &[]).await;
    assert_eq!(gone.status, 404);
    assert!(gone.text().contains("there is no product with id 99999999"));
    let no_category = navigate(&format!("{}/c/no-such-thing", host.url), &[]).await;
    assert_eq!(no_category.status, 404);
    let post = request(
        "POST",
        &format!("{}/cart", host.url),
        &[("accept", "text/html")],
        vec![],
    )
    .await;
    assert_eq!(
        (post.status, post.header("allow")),
        (405, Some("GET, HEAD"))
    );
}

/// A shopper finds a product by searching, narrows by price, pages on,
/// opens a department and a product with its photos, and adds it to the
/// cart, in Chromium at the PoP nearest them. Every page type passes
/// axe-core with no serious or critical violation.
#[tokio::test(flavor = "multi_thread")]
async fn a_shopper_searches_filters_opens_a_product_and_fills_the_cart_in_chromium() {
    let Some(browser) = Browser::start_or_skip("shopper").await else {
        return;
    };
    // The check itself finds what it should: an unlabelled field and
    // text too faint to read.
    browser
        .goto("data:text/html,<html lang=en><title>t</title><main><input><p style='color:%23bbb'>faint</p></main></html>")
        .await;
    let found = browser.accessibility_problems().await.join("\n");
    assert!(
        found.contains("label") && found.contains("color-contrast"),
        "{found}"
    );
    let platform = Platform::up("storefront-shopper", &[]).await;
    let fra = platform.pop("fra");
    let mut a11y = Vec::new();
    let mut check = async |b: &Browser, page: &str| {
        for problem in b.accessibility_problems().await {
            a11y.push(format!("{page}: {problem}"));
        }
        b.shot(page).await;
    };

    browser.goto(&format!("{fra}/")).await;
    assert_eq!(browser.text("h1").await, "Independent makers, delivered");
    check(&browser, "home").await;

    let search = browser.find("#site-search").await;
    search.send_keys("walnut").await.unwrap();
    browser
        .find("header form button")
        .await
        .click()
        .await
        .unwrap();
    browser.find("main h1").await;
    assert!(
        browser.url().await.ends_with("/search?q=walnut"),
        "{}",
        browser.url().await
    );
    assert_eq!(browser.text("main h1").await, "Results for “walnut”");
    check(&browser, "search").await;

    // Narrow by price and sort: the form is plain GET, so the URL says it.
    browser
        .find("select[name=sort]")
        .await
        .select_by_value("price_asc")
        .await
        .unwrap();
    browser
        .find("input[name=min]")
        .await
        .send_keys("15")
        .await
        .unwrap();
    browser
        .find("form.filters button")
        .await
        .click()
        .await
        .unwrap();
    browser.find("main h1").await;
    let url = browser.url().await;
    assert!(
        url.contains("sort=price_asc") && url.contains("min=15"),
        "{url}"
    );
    let shown: Vec<i64> = prices(&browser.client.source().await.unwrap());
    assert!(
        !shown.is_empty() && shown.windows(2).all(|w| w[0] <= w[1]) && shown[0] >= 1500,
        "{shown:?}"
    );

    browser
        .find("nav.categories a")
        .await
        .click()
        .await
        .unwrap();
    browser.find("main h1").await;
    assert!(
        browser.url().await.contains("/c/"),
        "{}",
        browser.url().await
    );
    check(&browser, "category").await;
    if let Ok(next) = browser
        .client
        .find(fantoccini::Locator::Css("a[rel=next]"))
        .await
    {
        next.click().await.unwrap();
        browser.find("a[rel=next], nav.pager").await;
        assert!(browser.url().await.contains("after="));
    }

    // A product with photos: the browser picks a variant from srcset.
    browser.find("ul.grid h2 a").await.click().await.unwrap();
    let title = browser.text("main h1").await;
    assert!(browser.url().await.contains("/p/"));
    let picked = browser
        .eval("const i = document.querySelector('.gallery img'); return i && i.complete ? [i.currentSrc, i.naturalWidth] : null;")
        .await;
    assert!(
        picked[0].as_str().is_some_and(|s| s.contains("/media/")) && picked[1].as_u64() > Some(0),
        "{picked}"
    );
    let (lcp, ttfb) = browser.paint_timings().await;
    assert!(lcp > 0.0 && ttfb > 0.0, "LCP {lcp} ms, TTFB {ttfb} ms");
    check(&browser, "product").await;

    // The cart lives in this browser: add, see the count, change it.
    let add = browser.find("button[data-add-to-cart]").await;
    assert!(
        add.is_displayed().await.unwrap(),
        "the script shows the button"
    );
    add.click().await.unwrap();
    assert!(browser.text("#cart-status").await.contains(&title));
    assert_eq!(browser.text("[data-cart-count]").await, "(1)");
    browser
        .find("header nav a[href='/cart']")
        .await
        .click()
        .await
        .unwrap();
    let row = browser.find("table.cart tbody tr").await;
    assert!(row.text().await.unwrap().contains(&title));
    let total_one = browser.text("[data-cart-total]").await;
    let qty = browser.find("table.cart input").await;
    // As a person does it: select the number, type another, move on.
    qty.send_keys("\u{E009}a\u{E000}2\t").await.unwrap();
    let started = std::time::Instant::now();
    while browser.text("[data-cart-total]").await == total_one && started.elapsed().as_secs() < 5 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_ne!(
        browser.text("[data-cart-total]").await,
        total_one,
        "the total follows the quantity"
    );
    check(&browser, "cart").await;

    // The far PoP serves the same pages from its own replica.
    browser
        .goto(&format!("{}/search?q=walnut", platform.pop("sin")))
        .await;
    assert_eq!(browser.text("main h1").await, "Results for “walnut”");
    browser.close().await;
    assert!(
        a11y.is_empty(),
        "accessibility problems:\n{}",
        a11y.join("\n")
    );
}

/// With JavaScript off, every page still reads and navigates: search,
/// filters, departments and products are links and GET forms; only the
/// cart says it needs the script.
#[tokio::test(flavor = "multi_thread")]
async fn without_javascript_a_shopper_still_searches_and_reads_every_page() {
    let Some(browser) = Browser::start_with("no-script", false).await else {
        return;
    };
    let host = Host::catalog();
    browser.goto(&format!("{}/", host.url)).await;
    browser
        .find("#site-search")
        .await
        .send_keys("oak")
        .await
        .unwrap();
    browser
        .find("header form button")
        .await
        .click()
        .await
        .unwrap();
    assert_eq!(browser.text("main h1").await, "Results for “oak”");
    browser.find("ul.grid h2 a").await.click().await.unwrap();
    assert!(browser.url().await.contains("/p/"));
    let add = browser.find("button[data-add-to-cart]").await;
    assert!(
        !add.is_displayed().await.unwrap(),
        "no cart button without the script"
    );
    browser.goto(&format!("{}/cart", host.url)).await;
    let notice = browser.find("[data-cart-needs-script]").await;
    assert!(notice.is_displayed().await.unwrap());
    assert!(notice.text().await.unwrap().contains("needs JavaScript"));
    browser.shot("cart").await;
    browser.close().await;
}
