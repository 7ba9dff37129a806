//! The storefront: pages rendered at the PoP from its replica, and the
//! shopper's journeys through them in headless Chromium.
//!
//! HTTP cases send what Chromium sends when a person navigates; the
//! journeys drive the real browser (`edgeshop_e2e::browser`) against the
//! platform `cargo xtask up` starts, save screenshots of each key page
//! under `target/screenshots/`, and run axe-core on every page type.

use edgeshop_e2e::browser::Browser;
use edgeshop_e2e::platform::Platform;
use edgeshop_e2e::{
    Host, SpinApp, TempDir, access_token, app_env, browse, empty_identity, navigate, post_json,
    request, root, seeded_catalog, start_spin,
};
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
async fn a_shopper_searches_filters_fills_the_cart_signs_up_and_checks_out_in_chromium() {
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
    browser.follow("header form button").await;
    browser.find("main h1").await;
    assert!(
        browser.url().await.ends_with("/search?q=walnut"),
        "{}",
        browser.url().await
    );
    assert_eq!(browser.text("main h1").await, "Results for “walnut”");
    check(&browser, "search").await;

    // Narrow by price and sort: the form is plain GET, so the URL says it.
    browser.choose("select[name=sort]", "price_asc").await;
    browser
        .find("input[name=min]")
        .await
        .send_keys("15")
        .await
        .unwrap();
    browser.follow("form.filters button").await;
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

    browser.follow("nav.categories a").await;
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
        drop(next);
        browser.follow("a[rel=next]").await;
        assert!(browser.url().await.contains("after="));
    }

    // A product with photos: the browser picks a variant from srcset.
    browser.follow("ul.grid h2 a").await;
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
    browser.follow("header nav a[href='/cart']").await;
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

    // An account: created from the header's link, kept in cookies no
    // script can read, known at the far PoP too, and ended by signing out.
    browser.follow("header nav a[href='/account']").await;
    browser.find("form.account").await;
    assert!(
        browser
            .url()
            .await
            .contains("/account/signin?next=%2Faccount"),
        "{}",
        browser.url().await
    );
    check(&browser, "sign-in").await;
    browser.follow("a[href^='/account/signup']").await;
    check(&browser, "sign-up").await;
    browser
        .find("#email")
        .await
        .send_keys("journey@example.com")
        .await
        .unwrap();
    browser
        .find("#password")
        .await
        .send_keys("a long enough password")
        .await
        .unwrap();
    browser.follow("form.account button").await;
    assert_eq!(browser.text("#account-email").await, "journey@example.com");
    check(&browser, "account").await;
    let readable = browser.eval("return document.cookie").await;
    assert!(
        !readable
            .as_str()
            .unwrap_or_default()
            .contains("edgeshop-access"),
        "{readable}"
    );
    let cookies = browser.client.get_all_cookies().await.unwrap();
    let access = cookies
        .iter()
        .find(|c| c.name() == "__Host-edgeshop-access")
        .expect("signed in");
    assert_eq!(
        (access.http_only(), access.secure()),
        (Some(true), Some(true))
    );
    checkout_journey(&browser, &platform, &mut check).await;
    // Cookies belong to the host, not the port: the far PoP gets them.
    browser
        .goto(&format!("{}/account", platform.pop("sin")))
        .await;
    assert_eq!(browser.text("#account-email").await, "journey@example.com");
    browser
        .follow("form[action='/account/signout'] button")
        .await;
    browser.find("main h1").await;
    assert_eq!(
        browser.text("main h1").await,
        "Independent makers, delivered",
        "home after signing out"
    );
    browser.goto(&format!("{fra}/account")).await;
    browser.find("form.account").await;
    assert!(
        browser.url().await.contains("/account/signin"),
        "signed out everywhere: {}",
        browser.url().await
    );

    // A page that went away says so, in the shop's own page.
    browser.goto(&format!("{fra}/p/99999999")).await;
    assert_eq!(browser.text("main h1").await, "Not found");
    check(&browser, "not-found").await;

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

/// A signed-in shopper's checkout at the near PoP, failures first: a
/// declined card, more than the shop has, a session that expired on the
/// way; each said plainly with nothing lost. Then the order, seen at the
/// far PoP too.
async fn checkout_journey<F: AsyncFnMut(&Browser, &str)>(
    browser: &Browser,
    platform: &Platform,
    check: &mut F,
) {
    let (fra, sin) = (platform.pop("fra"), platform.pop("sin"));
    // A product with only a few left, added once, then wanted more of.
    let page = browse(&format!("{fra}/api/v1/products?limit=100"), &[]).await;
    let listing: serde_json::Value = serde_json::from_slice(&page.body).unwrap();
    let scarce = listing["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| (1..=30).contains(&p["stock"].as_i64().unwrap()))
        .expect("a product with a few left");
    let (id, stock) = (
        scarce["id"].as_i64().unwrap(),
        scarce["stock"].as_i64().unwrap(),
    );
    let title = scarce["title"].as_str().unwrap();
    browser.goto(&format!("{fra}/p/{id}")).await;
    browser.click("button[data-add-to-cart]").await;
    browser.wait_text("#cart-status", title).await;
    let set_quantity = async |qty: i64| {
        browser.goto(&format!("{fra}/cart")).await;
        let input = browser
            .find(&format!("table.cart tr:has(a[href='/p/{id}']) input"))
            .await;
        input
            .send_keys(&format!("\u{E009}a\u{E000}{qty}\t"))
            .await
            .unwrap();
        let saved = format!(
            "return JSON.parse(localStorage.getItem('edgeshop.cart')).find(l => l.id === {id}).qty"
        );
        assert_eq!(browser.eval(&saved).await, qty, "the cart keeps the change");
    };
    set_quantity(stock + 1).await;

    browser.follow("[data-cart-checkout] a").await;
    let summary = browser.wait_text("form[data-checkout] tbody", title).await;
    assert!(summary.contains(&(stock + 1).to_string()), "{summary}");
    for (field, value) in [
        ("#name", "Ada Lovelace"),
        ("#line1", "12 Edge Street"),
        ("#city", "Frankfurt"),
        ("#postal_code", "60311"),
        ("#country", "de"),
    ] {
        browser.find(field).await.send_keys(value).await.unwrap();
    }
    check(browser, "checkout").await;
    let place = async || {
        browser.click("#checkout button[type=submit]").await;
    };

    // More than the shop has: which product, how many are left.
    place().await;
    let said = browser.wait_text("#checkout-problem", "left").await;
    assert!(
        said.contains(title) && said.contains(&format!("only {stock} left")),
        "{said}"
    );

    // The shopper fixes the cart; what they typed is still there.
    set_quantity(1).await;
    browser.goto(&format!("{fra}/checkout")).await;
    browser.wait_text("form[data-checkout] tbody", title).await;
    let kept = browser
        .eval("return document.getElementById('line1').value")
        .await;
    assert_eq!(kept, "12 Edge Street");

    // A declined card: nothing ordered, everything still on the page.
    browser
        .choose("#payment_method", "pm_card_chargeDeclined")
        .await;
    place().await;
    browser
        .wait_text(
            "#checkout-problem",
            "payment was declined and nothing was charged",
        )
        .await;
    browser.shot("checkout-declined").await;
    browser.choose("#payment_method", "pm_card_visa").await;

    // The access token expires on the way (the browser drops the cookie):
    // the order renews the session and comes back to the same form.
    browser
        .client
        .delete_cookie("__Host-edgeshop-access")
        .await
        .unwrap();
    place().await;
    browser
        .wait_text("#checkout-status", "signed in again")
        .await;
    assert_eq!(
        browser
            .eval("return document.getElementById('name').value")
            .await,
        "Ada Lovelace"
    );
    place().await;
    browser.wait_text("#order-status", "Confirmed").await;
    let order_url = browser.url().await;
    let order_id = order_url.rsplit('/').next().unwrap().to_string();
    assert!(order_id.starts_with("ord_"), "{order_url}");
    assert!(browser.text("main").await.contains(title));
    check(browser, "order").await;
    assert_eq!(
        browser.text("[data-cart-count]").await,
        "(0)",
        "the cart was emptied"
    );

    // The far PoP lists it: orders live at the origin, not in a replica.
    browser.goto(&format!("{sin}/orders")).await;
    browser.wait_text("main table", &order_id).await;
    check(browser, "orders").await;
    browser
        .follow(&format!("a[href='/orders/{order_id}']"))
        .await;
    assert_eq!(browser.text("#order-status").await, "Confirmed");
}

/// A vendor's day in the dashboard: sign in, add a product as a draft,
/// find that someone changed it meanwhile (shown, nothing lost), upload a
/// photo straight to storage and watch it processed, publish, and see it
/// in the shop at the far PoP.
#[tokio::test(flavor = "multi_thread")]
async fn a_vendor_adds_a_product_meets_a_conflict_uploads_a_photo_and_publishes_in_chromium() {
    let Some(browser) = Browser::start_or_skip("vendor").await else {
        return;
    };
    let platform = Platform::up("storefront-vendor", &[]).await;
    let (fra, sin) = (platform.pop("fra"), platform.pop("sin"));
    let mut a11y = Vec::new();
    let mut check = async |b: &Browser, page: &str| {
        for problem in b.accessibility_problems().await {
            a11y.push(format!("{page}: {problem}"));
        }
        b.shot(page).await;
    };
    let password = "a long enough password";
    let type_in = async |css: &str, text: &str| {
        let field = browser.find(css).await;
        field.clear().await.unwrap();
        field.send_keys(text).await.unwrap();
    };

    // Signed out, the dashboard asks for the sign-in; from there the
    // vendor opens a shop and lands back in the dashboard.
    browser.goto(&format!("{fra}/sell")).await;
    browser.find("form.account").await;
    assert!(
        browser.url().await.contains("/account/signin?next=%2Fsell"),
        "{}",
        browser.url().await
    );
    browser.follow("a[href^='/account/signup']").await;
    browser.follow("a[href^='/account/signup?shop=1']").await;
    type_in("#email", "maker@example.com").await;
    type_in("#password", password).await;
    type_in("#shop_name", "Kestrel Makers").await;
    type_in("#shop_country", "de").await;
    check(&browser, "open-a-shop").await;
    browser.follow("form.account button").await;
    let login = post_json(
        &format!("{fra}/api/v1/auth/login"),
        &serde_json::json!({ "email": "maker@example.com", "password": password }),
        &[],
    )
    .await;
    assert_eq!(login.status, 200, "{}", login.text());
    let token = login.json()["access_token"].as_str().unwrap().to_string();
    assert_eq!(browser.text("main h1").await, "Your shop");
    check(&browser, "sell").await;

    // A new product, as a draft.
    browser.follow("a[href='/sell/products/new']").await;
    let title = "Hand-thrown edge mug";
    type_in("#title", title).await;
    type_in("#description", "Stoneware, glazed in deep blue.").await;
    type_in("#price", "24.50").await;
    type_in("#stock", "7").await;
    let first = browser.wait_text("#categories option", "").await;
    assert!(!first.is_empty(), "the categories are loaded");
    browser.click("#categories option").await;
    check(&browser, "sell-new").await;
    browser.follow("#product button[type=submit]").await;
    browser.wait_text("#product-status", "Created").await;
    let url = browser.url().await;
    let id: i64 = url
        .rsplit('/')
        .next()
        .and_then(|s| s.split('?').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{url}"));

    // Meanwhile the price changes elsewhere (the API, another tab).
    let api = |method: &'static str, if_match: Option<String>, body: Option<serde_json::Value>| {
        let token = token.clone();
        let url = format!("{fra}/api/v1/vendor/products/{id}");
        async move {
            let auth = format!("Bearer {token}");
            let mut fields = vec![
                ("authorization", auth.as_str()),
                ("accept", "application/json"),
            ];
            let im;
            if let Some(tag) = if_match {
                im = tag;
                fields.push(("if-match", im.as_str()));
            }
            let bytes = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
            if !bytes.is_empty() {
                fields.push(("content-type", "application/json"));
            }
            request(method, &url, &fields, bytes).await
        }
    };
    let read = api("GET", None, None).await;
    let etag = read.header("etag").unwrap().to_string();
    let changed = api(
        "PATCH",
        Some(etag),
        Some(serde_json::json!({ "price_minor": 2600 })),
    )
    .await;
    assert_eq!(changed.status, 200, "{}", changed.text());

    // The vendor changes the stock in the page: told what changed, nothing lost.
    type_in("#stock", "9").await;
    browser.click("#product button[type=submit]").await;
    let said = browser
        .wait_text("#conflict-text", "changed elsewhere")
        .await;
    assert!(
        said.contains("(Price)") && said.contains("changes only In stock and keeps theirs"),
        "{said}"
    );
    assert_eq!(
        browser
            .eval("return document.getElementById('stock').value")
            .await,
        "9"
    );
    check(&browser, "sell-conflict").await;
    browser.click("[data-conflict-keep]").await;
    browser.wait_text("#product-status", "Saved").await;
    let now = api("GET", None, None).await.json();
    assert_eq!(
        (now["stock"].as_i64(), now["price_minor"].as_i64()),
        (Some(9), Some(2600)),
        "both changes kept"
    );
    assert_eq!(
        browser
            .eval("return document.getElementById('price').value")
            .await,
        "26.00",
        "the form shows the product as saved"
    );

    // A photo, straight from the browser to the signed URL, then processed.
    let dir = TempDir::new("vendor-photo");
    let file = dir.0.join("mug.jpg");
    std::fs::write(&file, media_processing::generate::jpeg(1200, 900)).unwrap();
    browser
        .find("#photo")
        .await
        .send_keys(file.to_str().unwrap())
        .await
        .unwrap();
    browser.click("#upload button[type=submit]").await;
    browser.wait_text("#upload-status", "Ready").await;
    let shown = browser
        .eval("const i = document.querySelector('#photos img'); return i ? [i.getAttribute('src'), i.complete && i.naturalWidth > 0] : null;")
        .await;
    assert!(
        shown[0].as_str().is_some_and(|s| s.starts_with("/media/")) && shown[1] == true,
        "{shown}"
    );
    assert_eq!(
        browser
            .eval("return document.getElementById('upload-progress').value")
            .await,
        100
    );
    check(&browser, "sell-photo").await;

    // Published: shoppers at the far PoP see it once it has replicated.
    browser.choose("#status", "published").await;
    browser.click("#product button[type=submit]").await;
    browser
        .wait_text("#product-status", "Shoppers see the change")
        .await;
    let started = std::time::Instant::now();
    loop {
        browser.goto(&format!("{sin}/p/{id}")).await;
        if browser.text("main h1").await == title {
            break;
        }
        assert!(
            started.elapsed().as_secs() < 20,
            "not at the far PoP: {}",
            browser.text("main").await
        );
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    let photo = browser
        .eval("const i = document.querySelector('.gallery img'); return i ? i.currentSrc : null;")
        .await;
    assert!(
        photo.as_str().is_some_and(|s| s.contains("/media/")),
        "{photo}"
    );
    browser.goto(&format!("{fra}/sell")).await;
    let list = browser.text("main table").await;
    assert!(list.contains(title) && list.contains("Published"), "{list}");
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
    browser.follow("header form button").await;
    assert_eq!(browser.text("main h1").await, "Results for “oak”");
    browser.follow("ul.grid h2 a").await;
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

/// A PoP on the seeded catalog and an identity database of its own, for
/// cases that create accounts.
fn session_host() -> (Host, TempDir) {
    let dir = TempDir::new("storefront-sessions");
    let identity = dir.0.join("identity.db");
    std::fs::copy(empty_identity(), &identity).unwrap();
    let vars = app_env();
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let host = Host::start(
        &root().join("spin.toml"),
        &[
            "--sqlite",
            &format!("catalog={}", seeded_catalog().display()),
            "--sqlite",
            &format!("identity={}", identity.display()),
        ],
        &vars,
    );
    (host, dir)
}

/// A browser's cookie jar, as far as these tests need one: name to value,
/// from `Set-Cookie` fields (a `Max-Age=0` deletes).
#[derive(Default)]
struct Jar(std::collections::BTreeMap<String, String>);

impl Jar {
    fn take(&mut self, r: &edgeshop_e2e::Reply) -> Vec<String> {
        let set: Vec<String> = r
            .headers
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .collect();
        for c in &set {
            let (pair, _) = c.split_once(';').unwrap_or((c, ""));
            let (name, value) = pair.split_once('=').unwrap();
            if c.contains("Max-Age=0") {
                self.0.remove(name);
            } else {
                self.0.insert(name.to_string(), value.to_string());
            }
        }
        set
    }

    fn header(&self) -> String {
        self.0
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn get(&self, name: &str) -> &str {
        self.0.get(name).map_or("", String::as_str)
    }
}

/// A person opening `url` with `jar`'s cookies.
async fn open(url: &str, jar: &mut Jar) -> edgeshop_e2e::Reply {
    let cookies = jar.header();
    let r = navigate(url, &[("cookie", &cookies)]).await;
    jar.take(&r);
    r
}

/// A form posted from a page of this site, with `jar`'s cookies and
/// `extra` fields on top.
async fn post_form(
    url: &str,
    form: &[(&str, &str)],
    jar: &mut Jar,
    extra: &[(&str, &str)],
) -> edgeshop_e2e::Reply {
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form)
        .finish();
    let origin = url.split("/account").next().unwrap().to_string();
    let cookies = jar.header();
    // `extra` replaces a field of the same name.
    let mut fields: Vec<(&str, &str)> = [
        ("content-type", "application/x-www-form-urlencoded"),
        ("origin", origin.as_str()),
        ("sec-fetch-site", "same-origin"),
        ("cookie", cookies.as_str()),
    ]
    .into_iter()
    .filter(|(n, _)| !extra.iter().any(|(e, _)| e == n))
    .collect();
    fields.extend_from_slice(extra);
    let r = edgeshop_e2e::request_as(
        edgeshop_e2e::Client::Chromium,
        edgeshop_e2e::Purpose::Navigate,
        "POST",
        url,
        &fields,
        body.into_bytes(),
    )
    .await;
    jar.take(&r);
    r
}

/// The checkout page's script placing an order with `jar`'s cookies.
async fn place_order(
    url: &str,
    jar: &Jar,
    content_type: &str,
    fetch_site: &str,
) -> edgeshop_e2e::Reply {
    let order = serde_json::json!({
        "items": [{ "product_id": 1, "quantity": 1, "unit_price_minor": 100 }],
        "shipping_address": { "name": "Ada", "line1": "1 Edge St", "city": "Berlin",
            "postal_code": "10115", "country": "DE" },
        "payment_method": "pm_card_visa",
    });
    let cookies = jar.header();
    edgeshop_e2e::request_as(
        edgeshop_e2e::Client::Chromium,
        edgeshop_e2e::Purpose::SendJson,
        "POST",
        url,
        &[
            ("content-type", content_type),
            ("sec-fetch-site", fetch_site),
            ("cookie", &cookies),
            ("idempotency-key", "journey-1"),
        ],
        order.to_string().into_bytes(),
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn browser_sessions_live_in_http_only_cookies_and_every_form_is_csrf_checked() {
    let (host, _dir) = session_host();
    let url = |p: &str| format!("{}{p}", host.url);
    let mut jar = Jar::default();

    // Signed out, the account page goes through refresh to the sign-in form.
    let r = open(&url("/account"), &mut jar).await;
    assert_eq!(
        (r.status, r.header("location")),
        (303, Some("/account/refresh?next=%2Faccount"))
    );
    let r = open(&url("/account/refresh?next=%2Faccount"), &mut jar).await;
    assert_eq!(
        (r.status, r.header("location")),
        (303, Some("/account/signin?next=%2Faccount"))
    );

    // So do the order pages, and a script's order without a session is a
    // 401 problem it can act on (renew, then come back).
    let r = open(&url("/orders"), &mut jar).await;
    assert_eq!(
        (r.status, r.header("location")),
        (303, Some("/account/refresh?next=%2Forders"))
    );
    let r = place_order(&url("/checkout"), &jar, "application/json", "same-origin").await;
    assert_eq!(r.status, 401, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/problem+json"));

    let form = open(&url("/account/signup?next=%2Faccount"), &mut jar).await;
    assert_eq!(form.status, 200);
    assert_eq!(form.header("cache-control"), Some("private, no-store"));
    let set = form
        .headers
        .get_all("set-cookie")
        .iter()
        .next()
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        set.starts_with("__Host-edgeshop-csrf=")
            && set.contains("Secure; HttpOnly; SameSite=Strict")
            && set.contains("Path=/;"),
        "{set}"
    );
    let csrf = jar.get("__Host-edgeshop-csrf").to_string();
    assert!(
        form.text()
            .contains(&format!(r#"name="csrf" value="{csrf}""#))
    );

    let email = "cookie-shopper@example.com";
    let password = "a long enough password";
    let good = [
        ("csrf", csrf.as_str()),
        ("next", "/account"),
        ("email", email),
        ("password", password),
    ];
    // No token, a wrong one, or a post another site started: refused, and nothing created.
    for (form, extra) in [
        (&good[1..], vec![]),
        (
            &[
                ("csrf", "0000000000000000000000000000000000000000"),
                good[1],
                good[2],
                good[3],
            ][..],
            vec![],
        ),
        (&good[..], vec![("sec-fetch-site", "cross-site")]),
        (
            &good[..],
            vec![("sec-fetch-site", ""), ("origin", "https://evil.example")],
        ),
    ] {
        let r = post_form(&url("/account/signup"), form, &mut jar, &extra).await;
        assert_eq!(r.status, 403, "{extra:?}: {}", r.text());
        assert!(r.text().contains("reload the page and try again"));
        assert!(r.headers.get_all("set-cookie").iter().next().is_none());
    }
    let api = post_json(
        &url("/api/v1/auth/login"),
        &serde_json::json!({ "email": email, "password": password }),
        &[],
    )
    .await;
    assert_eq!(api.status, 401, "no account was made by a refused form");

    // A short password: the form again, with the reason and the email kept.
    let short = post_form(
        &url("/account/signup"),
        &[good[0], good[1], good[2], ("password", "short")],
        &mut jar,
        &[],
    )
    .await;
    assert_eq!(short.status, 400);
    assert!(short.text().contains("at least 12 characters") && short.text().contains(email));

    let made = post_form(&url("/account/signup"), &good, &mut jar, &[]).await;
    assert_eq!(
        (made.status, made.header("location")),
        (303, Some("/account")),
        "{}",
        made.text()
    );
    let cookies: Vec<String> = made
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    let access = cookies
        .iter()
        .find(|c| c.starts_with("__Host-edgeshop-access="))
        .expect("access cookie");
    assert!(
        access.contains("Path=/;") && access.contains("Secure; HttpOnly; SameSite=Lax"),
        "{access}"
    );
    let refresh = cookies
        .iter()
        .find(|c| c.starts_with("__Secure-edgeshop-refresh="))
        .expect("refresh cookie");
    assert!(
        refresh.contains("Path=/account/;")
            && refresh.contains("Secure; HttpOnly; SameSite=Strict"),
        "{refresh}"
    );

    let page = open(&url("/account"), &mut jar).await;
    assert_eq!(page.status, 200, "{}", page.text());
    assert!(page.text().contains(email));
    // The cookie is for pages only: the API takes bearer tokens and nothing else.
    let cookie_only = browse(&url("/api/v1/auth/me"), &[("cookie", &jar.header())]).await;
    assert_eq!(cookie_only.status, 401);

    // The checkout page takes the session cookie; an order placed with it
    // must be JSON from this site: a form another site posts, or one that
    // needs no CORS preflight, is refused before it reaches the origin.
    let checkout = open(&url("/checkout"), &mut jar).await;
    assert_eq!(checkout.status, 200, "{}", checkout.text());
    assert_eq!(checkout.header("cache-control"), Some("private, no-store"));
    assert!(checkout.text().contains("data-checkout"));
    for (content_type, site) in [
        ("application/json", "cross-site"),
        ("application/json", "same-site"),
        ("text/plain", "same-origin"),
        ("application/x-www-form-urlencoded", "same-origin"),
    ] {
        let r = place_order(&url("/checkout"), &jar, content_type, site).await;
        assert_eq!(r.status, 403, "{content_type} {site}: {}", r.text());
        assert!(r.text().contains("must come from the shop's own pages"));
    }
    let r = browse(&url("/api/v1/orders"), &[("cookie", &jar.header())]).await;
    assert_eq!(r.status, 401, "the order API takes bearer tokens only");

    // Refresh rotates both tokens.
    let before = (
        jar.get("__Host-edgeshop-access").to_string(),
        jar.get("__Secure-edgeshop-refresh").to_string(),
    );
    let rotated = open(&url("/account/refresh?next=%2Faccount"), &mut jar).await;
    assert_eq!(
        (rotated.status, rotated.header("location")),
        (303, Some("/account"))
    );
    assert_ne!(jar.get("__Secure-edgeshop-refresh"), before.1);
    assert_ne!(jar.get("__Host-edgeshop-access"), before.0);

    // After signing in, only a path on this site is followed.
    let mut other = Jar::default();
    let f = open(&url("/account/signin"), &mut other).await;
    assert_eq!(f.status, 200);
    let other_csrf = other.get("__Host-edgeshop-csrf").to_string();
    let r = post_form(
        &url("/account/signin"),
        &[
            ("csrf", &other_csrf),
            ("next", "//evil.example/x"),
            ("email", email),
            ("password", password),
        ],
        &mut other,
        &[],
    )
    .await;
    assert_eq!((r.status, r.header("location")), (303, Some("/account")));
    let wrong = post_form(
        &url("/account/signin"),
        &[
            ("csrf", &other_csrf),
            ("next", "/"),
            ("email", email),
            ("password", "not the password at all"),
        ],
        &mut other,
        &[],
    )
    .await;
    assert_eq!(wrong.status, 401);
    assert!(wrong.text().contains(email), "the email is kept");

    // Signing out ends the session itself: its access token is refused.
    let token = jar.get("__Host-edgeshop-access").to_string();
    let out = post_form(&url("/account/signout"), &[("csrf", &csrf)], &mut jar, &[]).await;
    assert_eq!(
        (out.status, out.header("location")),
        (303, Some("/")),
        "{}",
        out.text()
    );
    assert_eq!(
        jar.get("__Host-edgeshop-access"),
        "",
        "the cookies are cleared"
    );
    let replayed = browse(
        &url("/api/v1/auth/me"),
        &[("authorization", &format!("Bearer {token}"))],
    )
    .await;
    assert_eq!(replayed.status, 401);
    let r = open(&url("/account"), &mut jar).await;
    assert_eq!(r.status, 303);
}

/// The dashboard is a vendor's: a browser without a session is sent to
/// sign in, a shopper's session is refused, and a change made with a
/// vendor's session must be JSON from this site; what it sends passes the
/// vendor API's own checks at the edge.
#[tokio::test(flavor = "multi_thread")]
async fn the_dashboard_takes_only_a_vendors_session_and_only_json_from_this_site() {
    let (host, _dir) = session_host();
    let url = |p: &str| format!("{}{p}", host.url);
    let r = navigate(&url("/sell"), &[]).await;
    assert_eq!(
        (r.status, r.header("location")),
        (303, Some("/account/refresh?next=%2Fsell"))
    );
    let shopper = format!("__Host-edgeshop-access={}", access_token(71, &["shopper"]));
    let r = navigate(&url("/sell"), &[("cookie", &shopper)]).await;
    assert_eq!(r.status, 403, "{}", r.text());

    let vendor = format!("__Host-edgeshop-access={}", access_token(72, &["vendor"]));
    let form = navigate(&url("/sell/products/new"), &[("cookie", &vendor)]).await;
    assert_eq!(form.status, 200, "{}", form.text());
    let csp = form.header("content-security-policy").unwrap();
    assert!(
        csp.contains("connect-src 'self' http://127.0.0.1:9000;"),
        "photos may go to the store and nowhere else: {csp}"
    );
    assert!(form.text().contains(storefront_assets::SELL_JS));
    let home = navigate(&url("/"), &[]).await;
    assert!(
        !home.text().contains(storefront_assets::SELL_JS),
        "shoppers do not load the dashboard's script"
    );

    let create = |content_type: &'static str, site: &'static str, body: &'static str| {
        let vendor = vendor.clone();
        let to = url("/sell/products");
        async move {
            edgeshop_e2e::request_as(
                edgeshop_e2e::Client::Chromium,
                edgeshop_e2e::Purpose::SendJson,
                "POST",
                &to,
                &[
                    ("content-type", content_type),
                    ("sec-fetch-site", site),
                    ("cookie", &vendor),
                ],
                body.as_bytes().to_vec(),
            )
            .await
        }
    };
    for (content_type, site) in [
        ("application/json", "cross-site"),
        ("text/plain", "same-origin"),
        ("application/x-www-form-urlencoded", "same-origin"),
    ] {
        let r = create(content_type, site, "{}").await;
        assert_eq!(r.status, 403, "{content_type} {site}: {}", r.text());
    }
    // From the page itself it is the vendor API: checked before any
    // round trip to the origin.
    let r = create("application/json", "same-origin", r#"{"title":""}"#).await;
    assert_eq!(r.status, 422, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/problem+json"));
    let r = request(
        "PUT",
        &url("/sell"),
        &[
            ("cookie", &vendor),
            ("content-type", "application/json"),
            ("sec-fetch-site", "same-origin"),
        ],
        b"{}".to_vec(),
    )
    .await;
    assert_eq!((r.status, r.header("allow")), (405, Some("GET, HEAD")));
}
