use crate::*;
use serde_json::json;

fn get(path: &str) -> Request<'_> {
    Request {
        method: "GET",
        path,
        query: "",
        if_none_match: None,
        accept: Some("text/html,application/xhtml+xml,*/*;q=0.8"),
    }
}

fn answer(body: serde_json::Value, tags: &str) -> Response {
    Response {
        status: 200,
        headers: vec![("cache-tag".into(), tags.into())],
        body: serde_json::to_vec(&body).unwrap(),
    }
}

fn categories() -> Response {
    answer(
        json!({ "items": [
            { "id": 1, "slug": "kitchen", "name": "Kitchen", "parent_id": null, "product_count": 7 },
            { "id": 2, "slug": "kitchen-tea", "name": "Kitchen / Tea", "parent_id": 1, "product_count": 3 },
        ]}),
        "categories",
    )
}

fn product(id: i64, title: &str) -> serde_json::Value {
    json!({
        "id": id, "slug": "p", "title": title, "description": "Nice.",
        "vendor": { "id": 4, "name": "Kestrel <Makers>", "slug": "k" },
        "price": { "amount": 123_456, "currency": "USD" }, "stock": 3,
        "categories": [1, 2],
        "media": [{ "upload": 1, "variants": [
            { "url": "/media/a.webp", "width": 200, "height": 150, "type": "image/webp" },
            { "url": "/media/b.webp", "width": 800, "height": 600, "type": "image/webp" },
        ]}],
    })
}

fn body(r: &Response) -> String {
    String::from_utf8(r.body.clone()).unwrap()
}

#[test]
fn urls_name_pages_and_anything_else_is_a_404_or_405() {
    assert_eq!(route("GET", "/", "utm_source=x"), Ok(Page::Home));
    assert_eq!(route("HEAD", "/p/42", ""), Ok(Page::Product { id: 42 }));
    assert_eq!(route("GET", "/cart", ""), Ok(Page::Cart));
    assert!(
        matches!(route("GET", "/c/kitchen-tea", ""), Ok(Page::Category { slug, .. }) if slug == "kitchen-tea")
    );
    for bad in [
        "/p/0",
        "/p/-1",
        "/p/abc",
        "/c/Kitchen",
        "/c/a/b",
        "/c/",
        "/nope",
    ] {
        assert_eq!(route("GET", bad, "").unwrap_err().status, 404, "{bad}");
    }
    let p = route("POST", "/search", "").unwrap_err();
    assert_eq!(
        (
            p.status,
            p.header_fields()
                .iter()
                .any(|(k, v)| k == "allow" && v == "GET, HEAD")
        ),
        (405, true)
    );
}

#[test]
fn filters_from_a_form_skip_empty_fields_and_take_prices_as_people_write_them() {
    let f = Filters::parse("q=+tea+pot&sort=relevance&min=&max=12.5&utm_source=mail").unwrap();
    assert_eq!(f.q.as_deref(), Some("tea pot"));
    assert_eq!((f.min, f.max), (None, Some(1250)));
    assert_eq!(
        f.api_query(Some("kitchen")),
        "category=kitchen&q=tea+pot&sort=relevance&max_price=1250&limit=24"
    );
    assert_eq!(
        f.page_url("/search", Some("CUR")),
        "/search?q=tea+pot&sort=relevance&max=12.50&after=CUR"
    );
    assert_eq!(
        Filters::parse(&f.page_url("/search", None)[8..]).unwrap(),
        f
    );
    // A form's default sort without a search is not an error.
    assert_eq!(
        Filters::parse("sort=relevance").unwrap().effective_sort(),
        "newest"
    );
    for (q, param) in [
        ("sort=cheapest", "sort"),
        ("min=ten", "min"),
        ("max=1.234", "max"),
        ("min=-1", "min"),
    ] {
        let p = Filters::parse(q).unwrap_err();
        assert_eq!(
            (p.status, p.extensions["parameter"].as_str()),
            (400, Some(param)),
            "{q}"
        );
    }
}

#[test]
fn money_reads_like_a_price_tag() {
    assert_eq!(money::format(123_456, "USD"), "$1,234.56");
    assert_eq!(money::format(5, "EUR"), "€0.05");
    assert_eq!(money::format(100_000_000, "SEK"), "1,000,000.00 SEK");
    assert_eq!(money::parse("$12"), Some(1200));
    assert_eq!(money::parse("0.5"), Some(50));
    assert_eq!(money::parse("1e3"), None);
}

#[test]
fn a_listing_escapes_catalog_text_keeps_its_filters_in_the_next_link_and_carries_every_tag() {
    let page = route("GET", "/c/kitchen", "sort=price_asc&min=10").unwrap();
    let reads = catalog_reads(&page);
    assert_eq!(
        reads[1].query,
        "category=kitchen&sort=price_asc&min_price=1000&limit=24"
    );
    let list = answer(
        json!({ "items": [product(9, "<script>alert(1)</script>")], "next_cursor": "c1" }),
        "catalog,category:kitchen",
    );
    let r = render(&page, &[categories(), list], &get("/c/kitchen"));
    assert_eq!(r.status, 200);
    let html = body(&r);
    assert!(!html.contains("<script>alert"), "titles are escaped");
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(html.contains("Kestrel &lt;Makers&gt;"));
    assert!(
        html.contains(r#"href="/c/kitchen?sort=price_asc&amp;min=10&amp;after=c1""#),
        "{html}"
    );
    assert!(html.contains(r#"srcset="/media/a.webp 200w, /media/b.webp 800w""#));
    assert!(
        html.contains(r#"<a href="/c/kitchen-tea">Tea</a>"#),
        "subcategories are linked"
    );
    assert_eq!(
        r.header("cache-tag"),
        Some("categories,catalog,category:kitchen")
    );
    assert_eq!(
        r.header("cache-control"),
        Some(catalog_core::LIST_CACHE_CONTROL)
    );
    assert_eq!(
        r.header("content-security-policy"),
        Some(CONTENT_SECURITY_POLICY)
    );
    assert!(CONTENT_SECURITY_POLICY.contains("frame-ancestors 'none'"));
    assert!(!CONTENT_SECURITY_POLICY.contains("unsafe-inline"));
    // Revalidation: the same page again is a 304 without a body.
    let etag = r.header("etag").unwrap().to_string();
    let again = render(
        &page,
        &[
            categories(),
            answer(
                json!({ "items": [product(9, "<script>alert(1)</script>")], "next_cursor": "c1" }),
                "catalog",
            ),
        ],
        &Request {
            if_none_match: Some(&etag),
            ..get("/c/kitchen")
        },
    );
    assert_eq!((again.status, again.body.len()), (304, 0));
}

#[test]
fn a_product_page_has_its_gallery_price_and_cart_button() {
    let page = route("GET", "/p/9", "").unwrap();
    assert_eq!(catalog_reads(&page)[1].path, "/api/v1/products/9");
    let r = render(
        &page,
        &[categories(), answer(product(9, "Tea pot"), "product:9")],
        &get("/p/9"),
    );
    let html = body(&r);
    assert!(html.contains(r#"alt="Tea pot, photo 1 of 1""#));
    assert!(
        html.contains(r#"width="800" height="600""#),
        "intrinsic size avoids layout shift"
    );
    assert!(html.contains(r#"fetchpriority="high""#));
    assert!(html.contains("$1,234.56") && html.contains("Only 3 left"));
    assert!(
        html.contains("<button type=\"button\" data-add-to-cart hidden")
            && html.contains(r#"data-price="123456""#)
    );
    assert!(
        html.contains(r#"<a href="/c/kitchen-tea">Kitchen / Tea</a>"#),
        "breadcrumb"
    );
    assert_eq!(
        r.header("cache-control"),
        Some(catalog_core::ITEM_CACHE_CONTROL)
    );
}

#[test]
fn errors_are_pages_for_browsers_and_problems_for_everything_else() {
    let page = route("GET", "/p/5", "").unwrap();
    let missing = Response::problem(problem::Problem::not_found("there is no product with id 5"));
    let r = render(&page, &[categories(), missing.clone()], &get("/p/5"));
    assert_eq!(r.status, 404);
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert!(body(&r).contains("there is no product with id 5"));
    let api = Request {
        accept: Some("application/json"),
        ..get("/p/5")
    };
    let r = render(&page, &[categories(), missing], &api);
    assert_eq!(
        (r.status, r.header("content-type")),
        (404, Some("application/problem+json"))
    );

    let unknown = route("GET", "/c/nope", "").unwrap();
    let r = render(
        &unknown,
        &[
            categories(),
            answer(json!({ "items": [], "next_cursor": null }), "catalog"),
        ],
        &get("/c/nope"),
    );
    assert_eq!(r.status, 404);
    assert!(body(&r).contains("there is no category"));

    let stale = route("GET", "/search", "after=forged").unwrap();
    let bad_cursor = Response::problem(problem::Problem::invalid_parameter(
        "cursor",
        "cursor must be ...",
    ));
    let r = render(&stale, &[categories(), bad_cursor], &get("/search"));
    assert_eq!(r.status, 400);
    assert!(body(&r).contains("start again from the first page"));
}

mod orders {
    use super::*;

    fn origin(status: u16, body: serde_json::Value) -> Response {
        Response {
            status,
            headers: vec![("retry-after".into(), "7".into())],
            body: serde_json::to_vec(&body).unwrap(),
        }
    }

    fn order(id: &str, status: &str) -> serde_json::Value {
        json!({
            "id": id, "status": status, "final": status != "pending", "currency": "EUR",
            "total_minor": 250_000, "created_at_ms": 1_796_467_198_201_i64,
            "lines": [{ "product_id": 7, "title": "Tea <b>cup</b>", "quantity": 2, "unit_price_minor": 125_000 }],
            "shipping_address": { "name": "Ada", "line1": "1 Edge St", "city": "Berlin",
                "postal_code": "10115", "country": "DE" },
        })
    }

    #[test]
    fn pages_name_their_origin_reads() {
        assert_eq!(OrderPage::route("/checkout", ""), Some(OrderPage::Checkout));
        assert_eq!(OrderPage::Checkout.origin_read(), None);
        let list = OrderPage::route("/orders", "before=ord_a%26b&x=1").unwrap();
        assert_eq!(
            list.origin_read().unwrap(),
            "/api/v1/orders?limit=20&before=ord_a%26b",
            "the cursor is passed on encoded"
        );
        assert_eq!(
            OrderPage::route("/orders", "before=")
                .unwrap()
                .origin_read()
                .unwrap(),
            "/api/v1/orders?limit=20"
        );
        assert_eq!(
            OrderPage::route("/orders/ord_1", "")
                .unwrap()
                .origin_read()
                .unwrap(),
            "/api/v1/orders/ord_1"
        );
        for other in ["/orders/", "/orders/a/b", "/checkout/x", "/api/v1/orders"] {
            assert_eq!(OrderPage::route(other, ""), None, "{other}");
        }
    }

    #[test]
    fn an_order_reads_as_words_and_escapes_what_shoppers_typed() {
        let page = OrderPage::Detail("ord_1".into());
        let r = page.render(
            Some(&origin(200, order("ord_1", "completed"))),
            &get("/orders/ord_1"),
        );
        assert_eq!(r.status, 200);
        let html = String::from_utf8(r.body).unwrap();
        assert!(
            html.contains(r#"<dd id="order-status">Confirmed</dd>"#),
            "{html}"
        );
        assert!(html.contains("€2,500.00") && html.contains("€1,250.00"));
        assert!(html.contains("2026-12-05 10:39 UTC"), "{html}");
        assert!(html.contains("Tea &lt;b&gt;cup&lt;/b&gt;") && !html.contains("<b>cup"));
        assert!(!html.contains("still working"), "a final order is settled");
        let r = page.render(
            Some(&origin(200, order("ord_1", "pending"))),
            &get("/orders/ord_1"),
        );
        let html = String::from_utf8(r.body).unwrap();
        assert!(html.contains("Processing") && html.contains("still working"));
        assert!(
            r.headers
                .contains(&("cache-control".into(), "private, no-store".into()))
        );
    }

    #[test]
    fn a_full_page_of_orders_links_to_older_ones() {
        let full: Vec<_> = (0..ORDERS_PER_PAGE)
            .map(|i| order(&format!("ord_{i}"), "completed"))
            .collect();
        let page = OrderPage::List { before: None };
        let r = page.render(
            Some(&origin(200, json!({ "orders": full }))),
            &get("/orders"),
        );
        let html = String::from_utf8(r.body).unwrap();
        assert!(html.contains(r#"href="/orders?before=ord_19""#), "{html}");
        let r = page.render(
            Some(&origin(
                200,
                json!({ "orders": [order("ord_1", "payment_failed")] }),
            )),
            &get("/orders"),
        );
        let html = String::from_utf8(r.body).unwrap();
        assert!(html.contains("Payment declined") && !html.contains("Older orders"));
        let r = page.render(Some(&origin(200, json!({ "orders": [] }))), &get("/orders"));
        assert!(
            String::from_utf8(r.body)
                .unwrap()
                .contains("not placed an order yet")
        );
    }

    #[test]
    fn the_origins_refusal_is_a_page_for_a_browser_and_a_problem_otherwise() {
        let gone = origin(
            404,
            json!({ "type": "/problems/not-found", "title": "Not found", "status": 404,
                    "detail": "you have no order \"ord_9\"" }),
        );
        let page = OrderPage::Detail("ord_9".into());
        let r = page.render(Some(&gone), &get("/orders/ord_9"));
        assert_eq!(r.status, 404);
        let html = String::from_utf8(r.body).unwrap();
        assert!(html.contains("you have no order"), "{html}");
        let mut api = get("/orders/ord_9");
        api.accept = Some("application/json");
        let r = page.render(Some(&gone), &api);
        assert_eq!(r.status, 404);
        let p: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(p["type"], "/problems/not-found");
        let busy = origin(503, json!({ "title": "Busy", "detail": "try again" }));
        let r = page.render(Some(&busy), &api);
        assert!(
            r.headers.contains(&("retry-after".into(), "7".into())),
            "{:?}",
            r.headers
        );
        let garbled = Response {
            status: 200,
            headers: vec![],
            body: b"<html>".to_vec(),
        };
        assert_eq!(page.render(Some(&garbled), &api).status, 502);
    }

    #[test]
    fn the_checkout_form_is_labelled_and_needs_no_origin_read() {
        let r = OrderPage::Checkout.render(None, &get("/checkout"));
        assert_eq!(r.status, 200);
        let html = String::from_utf8(r.body).unwrap();
        for id in [
            "name",
            "line1",
            "line2",
            "city",
            "postal_code",
            "country",
            "payment_method",
        ] {
            assert!(html.contains(&format!(r#"<label for="{id}">"#)), "{id}");
        }
        assert!(html.contains("needs JavaScript"));
        let mut head = get("/checkout");
        head.method = "HEAD";
        assert!(OrderPage::Checkout.render(None, &head).body.is_empty());
    }
}

mod sell {
    use super::*;

    fn vendor_product() -> serde_json::Value {
        json!({
            "id": 42, "slug": "mug", "title": "Edge <Mug>", "description": "Thrown.",
            "price_minor": 2450, "currency": "EUR", "stock": 7, "categories": [1, 3],
            "status": "draft", "media": [], "version": 3,
        })
    }

    #[test]
    fn sell_paths_stand_for_the_vendor_api() {
        assert_eq!(
            api_target("/sell/products/42", "").unwrap(),
            "/api/v1/vendor/products/42"
        );
        assert_eq!(
            api_target("/sell/uploads", "x=1").unwrap(),
            "/api/v1/vendor/uploads?x=1"
        );
        assert_eq!(api_target("/sell", "").unwrap(), "/api/v1/vendor");
        assert_eq!(api_target("/seller", ""), None);
        assert_eq!(api_target("/api/v1/vendor/products", ""), None);
    }

    #[test]
    fn a_browser_gets_pages_and_the_script_gets_the_vendor_api() {
        use crate::sell::dispatch;
        let html = Some("text/html,application/xhtml+xml");
        let json = Some("application/json");
        assert_eq!(
            dispatch("GET", "/sell/products/7", "", html),
            Some(SellRoute::Page(SellPage::Edit(7)))
        );
        assert_eq!(
            dispatch("GET", "/sell/products/7", "", json),
            Some(SellRoute::Api("/api/v1/vendor/products/7".into()))
        );
        assert_eq!(
            dispatch("PATCH", "/sell/products/7", "", html),
            Some(SellRoute::Api("/api/v1/vendor/products/7".into()))
        );
        assert_eq!(
            dispatch("GET", "/sell", "", json),
            Some(SellRoute::Page(SellPage::Products {
                status: None,
                after: None
            })),
            "a page-only path is a page whatever is asked"
        );
        assert!(matches!(
            dispatch("POST", "/sell/products/new", "", json),
            Some(SellRoute::Refused(p)) if p.status == 405
        ));
        assert_eq!(dispatch("GET", "/seller", "", html), None);
        use crate::orders::dispatch as order;
        assert_eq!(order("POST", "/checkout", ""), Some(OrderRoute::Place));
        assert_eq!(
            order("HEAD", "/orders", ""),
            Some(OrderRoute::Page(OrderPage::List { before: None }))
        );
        assert!(matches!(
            order("POST", "/orders/ord_1", ""),
            Some(OrderRoute::Refused(p)) if p.status == 405
        ));
        assert_eq!(order("GET", "/api/v1/orders", ""), None);
    }

    #[test]
    fn pages_are_the_list_the_new_form_and_one_product() {
        assert_eq!(
            SellPage::route("/sell", "status=draft&after=9")
                .unwrap()
                .origin_read()
                .unwrap(),
            "/api/v1/vendor/products?limit=50&status=draft&after=9"
        );
        assert_eq!(
            SellPage::route("/sell", "status=evil&after=x")
                .unwrap()
                .origin_read()
                .unwrap(),
            "/api/v1/vendor/products?limit=50",
            "what the list does not know is ignored"
        );
        assert_eq!(
            SellPage::route("/sell/products/new", ""),
            Some(SellPage::New)
        );
        assert_eq!(
            SellPage::route("/sell/products/42", ""),
            Some(SellPage::Edit(42))
        );
        for other in [
            "/sell/products/0",
            "/sell/products/x",
            "/sell/uploads",
            "/sell/products/1/media",
        ] {
            assert_eq!(SellPage::route(other, ""), None, "{other}");
        }
    }

    #[test]
    fn the_form_carries_the_version_it_was_read_at_and_escapes_the_product() {
        let answer = Response {
            status: 200,
            headers: vec![("etag".into(), "\"v3\"".into())],
            body: serde_json::to_vec(&vendor_product()).unwrap(),
        };
        let r = SellPage::Edit(42).render(
            Some(&answer),
            &get("/sell/products/42"),
            Some("http://127.0.0.1:9000"),
        );
        assert_eq!(r.status, 200);
        let csp = r
            .headers
            .iter()
            .find(|(k, _)| k == "content-security-policy")
            .unwrap();
        assert!(
            csp.1.contains("connect-src 'self' http://127.0.0.1:9000;"),
            "{}",
            csp.1
        );
        let html = String::from_utf8(r.body).unwrap();
        assert!(html.contains(r#"data-etag="&quot;v3&quot;""#), "{html}");
        assert!(html.contains(r#"value="24.50""#) && html.contains(r#"data-selected="1,3""#));
        assert!(html.contains("Edge &lt;Mug&gt;") && !html.contains("<Mug>"));
        assert!(
            html.contains(storefront_assets::SELL_JS),
            "the dashboard's script"
        );
        assert!(
            html.contains(r#"type="file""#),
            "an existing product takes photos"
        );
        let new = SellPage::New.render(None, &get("/sell/products/new"), None);
        let html = String::from_utf8(new.body).unwrap();
        assert!(html.contains("Create product") && !html.contains(r#"type="file""#));
    }

    #[test]
    fn the_upload_origin_widens_connect_src_only_when_it_is_a_plain_origin() {
        assert_eq!(content_security_policy(None), CONTENT_SECURITY_POLICY);
        for bad in [
            "http://a.example; script-src *",
            "javascript:alert(1)",
            "http://a.example/path",
            "http://",
            "ftp://a.example",
        ] {
            assert_eq!(
                content_security_policy(Some(bad)),
                CONTENT_SECURITY_POLICY,
                "{bad}"
            );
        }
        assert!(
            content_security_policy(Some("https://bucket.example:8443/"))
                .contains("connect-src 'self' https://bucket.example:8443;")
        );
    }

    #[test]
    fn the_list_links_each_product_and_the_next_page() {
        let answer = Response {
            status: 200,
            headers: vec![],
            body: serde_json::to_vec(&json!({
                "products": [vendor_product()],
                "next": "/api/v1/vendor/products?limit=50&after=42",
            }))
            .unwrap(),
        };
        let page = SellPage::route("/sell", "status=draft").unwrap();
        let r = page.render(Some(&answer), &get("/sell"), None);
        let html = String::from_utf8(r.body).unwrap();
        assert!(html.contains(r#"href="/sell/products/42""#) && html.contains("€24.50"));
        assert!(
            html.contains(r#"href="/sell?status=draft&amp;after=42""#),
            "{html}"
        );
        let refused = Response {
            status: 403,
            headers: vec![],
            body: br#"{"title":"Forbidden","detail":"vendors only"}"#.to_vec(),
        };
        let r = page.render(Some(&refused), &get("/sell"), None);
        assert_eq!(r.status, 403);
    }
}

#[test]
fn a_vendor_signs_up_with_a_shop_name_and_a_shopper_is_offered_the_way() {
    let shopper = crate::html::sign_up("t", "/account", "", None, None).into_string();
    assert!(shopper.contains(r#"href="/account/signup?shop=1&amp;next=%2Fsell""#));
    assert!(!shopper.contains("shop_name"));
    let vendor = crate::html::sign_up(
        "t",
        "/sell",
        "a@b.example",
        Some("x"),
        Some(("K <M>", "DE")),
    )
    .into_string();
    for needle in [
        r#"<label for="shop_name">"#,
        r#"<label for="shop_country">"#,
        r#"value="K &lt;M&gt;""#,
        "Open my shop",
        r#"name="next" value="/sell""#,
    ] {
        assert!(vendor.contains(needle), "{needle}: {vendor}");
    }
}
