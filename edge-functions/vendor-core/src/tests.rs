use super::*;
use serde_json::json;

fn body(v: serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(&v).unwrap()
}

fn field_of(p: &Problem) -> &str {
    p.extensions["field"].as_str().unwrap()
}

fn scarf() -> serde_json::Value {
    json!({
        "title": "  Blue wool scarf ",
        "description": "Warm.\nHand-made.",
        "price_minor": 2500,
        "currency": "EUR",
        "stock": 3,
        "categories": [4, 2],
    })
}

#[test]
fn a_create_is_trimmed_sorted_and_a_draft_unless_it_says_otherwise() {
    let f = ProductFields::parse_new(&body(scarf())).unwrap();
    assert_eq!(f.title.as_deref(), Some("Blue wool scarf"));
    assert_eq!(f.description.as_deref(), Some("Warm.\nHand-made."));
    assert_eq!(f.categories, Some(vec![2, 4]));
    assert_eq!(f.status, None);
    assert_eq!(f.slug, None);
}

#[test]
fn every_refusal_names_its_field() {
    let mut missing = scarf();
    missing.as_object_mut().unwrap().remove("currency");
    let cases = [
        (missing, "currency"),
        (json!({"title": ""}), "title"),
        (json!({"title": "x\u{7}"}), "title"),
        (json!({"title": "x".repeat(MAX_TITLE_CHARS + 1)}), "title"),
        (json!({"price_minor": -1}), "price_minor"),
        (json!({"price_minor": 1.5}), "price_minor"),
        (json!({"price_minor": "10"}), "price_minor"),
        (json!({"stock": MAX_STOCK + 1}), "stock"),
        (json!({"currency": "eur"}), "currency"),
        (json!({"categories": []}), "categories"),
        (json!({"categories": [1, 1]}), "categories"),
        (json!({"categories": [0]}), "categories"),
        (json!({"slug": "Not A Slug"}), "slug"),
        (json!({"slug": "double--hyphen"}), "slug"),
        (json!({"status": "hidden"}), "status"),
        (json!({"vendor_id": 7}), "vendor_id"),
        (json!({"version": 9}), "version"),
    ];
    for (input, field) in cases {
        let p = ProductFields::parse_patch(&body(input.clone()))
            .and_then(|_| ProductFields::parse_new(&body(input.clone())))
            .unwrap_err();
        assert_eq!((p.status, field_of(&p)), (422, field), "{input}");
    }
}

#[test]
fn a_body_that_is_not_an_object_or_changes_nothing_is_a_400() {
    for b in [&b"[1]"[..], b"not json", b"{}"] {
        assert_eq!(ProductFields::parse_patch(b).unwrap_err().status, 400);
    }
    let big = vec![b' '; MAX_BODY_BYTES + 1];
    assert_eq!(ProductFields::parse_patch(&big).unwrap_err().status, 413);
}

#[test]
fn slugs_come_from_titles_and_leave_room_for_an_id() {
    assert_eq!(
        slugify("Blue Wool Scarf!").as_deref(),
        Some("blue-wool-scarf")
    );
    assert_eq!(slugify("  Ärger -- über  ").as_deref(), Some("rger-ber"));
    assert_eq!(slugify("日本"), None);
    let long = slugify(&"word ".repeat(100)).unwrap();
    assert!(
        is_slug(&long) && long.len() + 21 <= MAX_SLUG_CHARS,
        "{long}"
    );
    assert!(is_slug("a-1") && !is_slug("-a") && !is_slug("a-") && !is_slug(""));
}

#[test]
fn stock_changes_are_levels_or_deltas_once_per_product() {
    let ok = parse_stock_changes(&body(json!({"items": [
        {"id": 1, "stock": 10},
        {"id": 2, "delta": -3, "version": 4},
    ]})))
    .unwrap();
    assert_eq!(
        ok,
        vec![
            StockChange {
                id: 1,
                to: StockTo::Level(10),
                version: None
            },
            StockChange {
                id: 2,
                to: StockTo::Delta(-3),
                version: Some(4)
            },
        ]
    );
    for (input, field) in [
        (json!({"items": []}), "items"),
        (json!({"items": [{"id": 1}]}), "items[0]"),
        (
            json!({"items": [{"id": 1, "stock": 1, "delta": 1}]}),
            "items[0]",
        ),
        (json!({"items": [{"id": 1, "stock": -1}]}), "items[0].stock"),
        (
            json!({"items": [{"id": 1, "stock": 1}, {"id": 1, "stock": 2}]}),
            "items[1].id",
        ),
        (
            json!({"items": [{"id": 1, "stock": 1, "price_minor": 1}]}),
            "items[0].price_minor",
        ),
        (json!({"items": [{"stock": 1}]}), "items[0].id"),
        (
            json!({"items": [{"id": 1, "stock": 1}], "all": true}),
            "all",
        ),
    ] {
        let p = parse_stock_changes(&body(input.clone())).unwrap_err();
        assert_eq!((p.status, field_of(&p)), (422, field), "{input}");
    }
    let many: Vec<_> = (1..=MAX_STOCK_CHANGES as i64 + 1)
        .map(|id| json!({"id": id, "stock": 1}))
        .collect();
    assert_eq!(
        parse_stock_changes(&body(json!({ "items": many })))
            .unwrap_err()
            .status,
        422
    );
}

#[test]
fn if_match_must_name_a_version() {
    assert_eq!(if_match(None).unwrap_err().status, 428);
    assert_eq!(if_match(Some(" ")).unwrap_err().status, 428);
    assert_eq!(if_match(Some("*")).unwrap_err().status, 428);
    assert_eq!(if_match(Some("W/\"v3\"")).unwrap_err().status, 428);
    assert_eq!(if_match(Some("\"abc\"")).unwrap_err().status, 400);
    assert_eq!(if_match(Some("v3")).unwrap_err().status, 400);
    let m = if_match(Some("W/\"v2\", \"v3\" ,\"v5\"")).unwrap();
    assert!(m.matches(3) && m.matches(5) && !m.matches(2) && !m.matches(4));
    assert_eq!(etag(7), "\"v7\"");
    let stale = IfMatch::stale(9);
    assert_eq!(stale.status, 412);
    assert_eq!(stale.extensions["current_version"], 9);
}

#[test]
fn routes_and_what_the_gateway_checks_before_forwarding() {
    assert_eq!(
        Route::parse("/api/v1/vendor/products/"),
        Ok(Route::Products)
    );
    assert_eq!(
        Route::parse("/api/v1/vendor/products/12"),
        Ok(Route::Product(12))
    );
    assert_eq!(Route::parse("/api/v1/vendor/stock"), Ok(Route::Stock));
    assert_eq!(
        Route::parse("/api/v1/vendor/products/12/media"),
        Ok(Route::ProductMedia(12))
    );
    assert_eq!(Route::parse("/api/v1/vendor/uploads"), Ok(Route::Uploads));
    assert_eq!(
        Route::parse("/api/v1/vendor/uploads/3"),
        Ok(Route::Upload(3))
    );
    for bad in [
        "/api/v1/vendor/products/0",
        "/api/v1/vendor/products/x",
        "/api/v1/vendor/products/x/media",
        "/api/v1/vendor/uploads/../1",
        "/api/v1/vendor/nope",
    ] {
        assert_eq!(Route::parse(bad).unwrap_err().status, 404, "{bad}");
    }
    let json = Some("application/json; charset=utf-8");
    let status = |r: Result<(), Problem>| r.unwrap_err().status;
    let p = Route::Products.check("PUT", json, None, b"").unwrap_err();
    assert_eq!(
        (p.status, p.extensions["allow"].as_str()),
        (405, Some("GET, POST"))
    );
    assert!(Route::Products.check("GET", None, None, b"").is_ok());
    assert_eq!(
        status(Route::Products.check("POST", json, None, b"{}")),
        422
    );
    let patch = br#"{"price_minor": 100}"#;
    let form = Some("application/x-www-form-urlencoded");
    let v1 = Some("\"v1\"");
    assert_eq!(
        status(Route::Product(1).check("PATCH", form, v1, patch)),
        415
    );
    assert_eq!(
        status(Route::Product(1).check("PATCH", json, None, patch)),
        428
    );
    assert!(Route::Product(1).check("PATCH", json, v1, patch).is_ok());
    assert_eq!(
        status(Route::Product(1).check("DELETE", None, None, b"")),
        428
    );
    assert_eq!(status(Route::Stock.check("POST", json, None, b"[]")), 400);
    let upload = br#"{"file_name": "a.svg", "content_type": "image/svg+xml", "size": 9}"#;
    assert_eq!(
        status(Route::Uploads.check("POST", json, None, upload)),
        422
    );
    let avif = br#"{"file_name": "a.avif", "content_type": "image/avif", "size": 9}"#;
    assert!(Route::Uploads.check("POST", json, None, avif).is_ok());
    assert_eq!(
        status(Route::Upload(1).check("DELETE", None, None, b"")),
        405
    );
    assert_eq!(
        status(Route::ProductMedia(1).check("POST", json, None, b"{}")),
        422
    );
}
