use super::*;

fn req<'a>(method: &'a str, path: &'a str, query: &'a str) -> Request<'a> {
    Request {
        method,
        path,
        query,
        if_none_match: None,
    }
}

fn signer() -> CursorSigner {
    CursorSigner::new(b"test-secret")
}

fn problem_of(r: Response) -> (u16, serde_json::Value) {
    assert_eq!(r.header("content-type"), Some("application/problem+json"));
    (r.status, serde_json::from_slice(&r.body).unwrap())
}

#[test]
fn routes_and_methods() {
    assert!(plan(&req("GET", "/api/v1/products", ""), &signer()).is_ok());
    assert!(plan(&req("HEAD", "/api/v1/products/7", ""), &signer()).is_ok());
    let (status, p) = problem_of(plan(&req("GET", "/api/v1/nope", ""), &signer()).unwrap_err());
    assert_eq!(status, 404);
    assert_eq!(p["type"], "/problems/not-found");
    let r = plan(&req("POST", "/api/v1/products", ""), &signer()).unwrap_err();
    assert_eq!(r.header("allow"), Some("GET, HEAD"));
    assert_eq!(problem_of(r).0, 405);
    let (status, p) =
        problem_of(plan(&req("GET", "/api/v1/products/abc", ""), &signer()).unwrap_err());
    assert_eq!((status, p["parameter"].as_str()), (400, Some("id")));
}

#[test]
fn every_bad_parameter_is_named() {
    for (query, param) in [
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("limit=x", "limit"),
        ("min_price=-1", "min_price"),
        ("max_price=1.5", "max_price"),
        ("min_price=500&max_price=100", "min_price"),
        ("sort=cheapest", "sort"),
        ("sort=relevance", "sort"),
        ("q=%20%2B%2D", "q"),
        ("category=Not%20A%20Slug", "category"),
        ("vendor=-3", "vendor"),
        ("colour=red", "colour"),
        ("limit=5&limit=6", "limit"),
        ("cursor=garbage", "cursor"),
    ] {
        let r = plan(&req("GET", "/api/v1/products", query), &signer()).unwrap_err();
        let (status, p) = problem_of(r);
        assert_eq!(status, 400, "{query}");
        assert_eq!(p["parameter"], param, "{query}: {p}");
    }
}

#[test]
fn search_text_never_reaches_fts_unquoted() {
    let p = ListParams::parse("q=walnut%20OR%20title%3Alamp%20NEAR(%22x").unwrap();
    assert_eq!(
        p.fts.as_deref(),
        Some("\"walnut\" \"or\" \"title\" \"lamp\" \"near\" \"x\"*")
    );
    assert_eq!(p.sort, Sort::Relevance);
}

#[test]
fn cursors_are_tamper_evident_and_bound_to_their_query() {
    let s = signer();
    let params = ListParams::parse("category=3&sort=price_asc").unwrap();
    let token = s.sign(
        params.sort,
        &params.filter_digest(),
        CursorKey::Int(1299, 42),
    );
    assert_eq!(
        s.verify(&token, params.sort, &params.filter_digest())
            .unwrap(),
        CursorKey::Int(1299, 42)
    );
    // Another key, another query, or one flipped character: all rejected.
    assert!(
        CursorSigner::new(b"other")
            .verify(&token, params.sort, &params.filter_digest())
            .is_err()
    );
    let other = ListParams::parse("category=4&sort=price_asc").unwrap();
    assert!(
        s.verify(&token, other.sort, &other.filter_digest())
            .is_err()
    );
    let mut bytes = token.into_bytes();
    bytes[3] ^= 1;
    let altered = String::from_utf8(bytes).unwrap();
    assert!(
        s.verify(&altered, params.sort, &params.filter_digest())
            .is_err()
    );
}

#[test]
fn list_sql_binds_every_client_value() {
    let p =
        ListParams::parse("q=lamp&category=kitchen-knives&vendor=9&min_price=100&max_price=900")
            .unwrap();
    let (sql, binds) = query::list(&p, Some(&CursorKey::Real(-3.5, 10)));
    assert!(!sql.contains("lamp") && !sql.contains("kitchen"), "{sql}");
    assert_eq!(binds.len(), 7);
    assert!(
        sql.contains("ORDER BY bm25(products_fts) ASC, p.id ASC"),
        "{sql}"
    );
    assert!(sql.ends_with("LIMIT 21"), "{sql}");
}

#[test]
fn not_found_and_database_errors_are_problems() {
    let r = req("GET", "/api/v1/products/99", "");
    let planned = plan(&r, &signer()).unwrap();
    let (status, _) = problem_of(render(&planned, Ok(vec![]), &r, &signer()));
    assert_eq!(status, 404);
    let (status, _) = problem_of(render(&planned, Err("disk".into()), &r, &signer()));
    assert_eq!(status, 503);
}

#[test]
fn conditional_get_gives_304_with_validators() {
    let r = req("GET", "/api/v1/categories", "");
    let planned = plan(&r, &signer()).unwrap();
    let rows = vec![vec![
        SqlValue::Integer(1),
        SqlValue::Text("kitchen".into()),
        SqlValue::Text("Kitchen".into()),
        SqlValue::Null,
        SqlValue::Integer(12),
    ]];
    let full = render(&planned, Ok(rows.clone()), &r, &signer());
    assert_eq!(full.status, 200);
    let etag = full.header("etag").unwrap().to_string();
    let cond = Request {
        if_none_match: Some(&etag),
        ..r.clone()
    };
    let not_modified = render(&planned, Ok(rows), &cond, &signer());
    assert_eq!(not_modified.status, 304);
    assert!(not_modified.body.is_empty());
    assert_eq!(not_modified.header("etag"), Some(etag.as_str()));
    assert_eq!(not_modified.header("cache-tag"), Some("categories"));
}

#[test]
fn rfc3339_dates() {
    assert_eq!(model::rfc3339(0), "1970-01-01T00:00:00Z");
    assert_eq!(model::rfc3339(1_767_225_600), "2026-01-01T00:00:00Z");
    assert_eq!(model::rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    assert_eq!(model::rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
}

#[test]
fn categories_for_a_menu_skip_the_counts_and_the_scan_behind_them() {
    let plain = plan(&req("GET", "/api/v1/categories", ""), &signer()).unwrap();
    assert!(plain.sql.contains("count(*)"));
    let r = req("GET", "/api/v1/categories", "counts=false");
    let menu = plan(&r, &signer()).unwrap();
    assert!(!menu.sql.contains("count"), "{}", menu.sql);
    let row = vec![
        SqlValue::Integer(1),
        SqlValue::Text("kitchen".into()),
        SqlValue::Text("Kitchen".into()),
        SqlValue::Null,
    ];
    let body: serde_json::Value =
        serde_json::from_slice(&render(&menu, Ok(vec![row]), &r, &signer()).body).unwrap();
    assert_eq!(body["items"][0]["slug"], "kitchen");
    assert!(body["items"][0].get("product_count").is_none());
    let (status, p) =
        problem_of(plan(&req("GET", "/api/v1/categories", "counts=no"), &signer()).unwrap_err());
    assert_eq!((status, p["parameter"].as_str()), (400, Some("counts")));
}
