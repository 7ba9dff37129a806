//! Vendors upload images straight to the object store through URLs the
//! origin signs (SigV4, query-string form), never through an app server.
//! The embedded default's store (`edgeshop-objects`, s3s) checks every
//! signature, so the refusals are tested against it; `moto`'s S3 server
//! is the third-party oracle that a signed URL is one any S3 accepts.

use edgeshop_e2e::openapi;
use edgeshop_e2e::{
    Host, Reply, TempDir, browse, image, read_object, request, sign_up, start_checkout_origin,
    start_gateway_pop, start_objects, start_paysim, store_args, vendor_call,
};
use serde_json::json;
use std::time::Duration;

struct Platform {
    dir: TempDir,
    objects: Host,
    fra: Host,
    sin: Host,
    _origin: Host,
    _paysim: Host,
}

/// An object store, an origin that signs uploads for it (with `extra`
/// flags), and a PoP whose vendor gateway forwards to the origin.
async fn platform(name: &str, extra: &[&str]) -> Platform {
    let dir = TempDir::new(name);
    let objects = start_objects(&dir.0);
    platform_on(dir, objects, extra).await
}

async fn platform_on(dir: TempDir, objects: Host, extra: &[&str]) -> Platform {
    let paysim = start_paysim(&[]);
    let mut args = store_args(&objects.url);
    args.extend(extra.iter().map(|a| a.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let origin = start_checkout_origin(&dir.0, &paysim, &args).await;
    let fra = start_gateway_pop(&origin, Some(&objects.url), &dir.0.join("fra")).await;
    let sin = start_gateway_pop(&origin, Some(&objects.url), &dir.0.join("sin")).await;
    Platform {
        dir,
        objects,
        fra,
        sin,
        _origin: origin,
        _paysim: paysim,
    }
}

const UPLOADS: &str = "/api/v1/vendor/uploads";

/// Asks for a signed URL for `size` bytes of `content_type`.
async fn sign(pop: &Host, token: &str, content_type: &str, size: usize) -> Reply {
    let body =
        json!({ "file_name": "Scarf photo.jpg", "content_type": content_type, "size": size });
    vendor_call(pop, token, "POST", UPLOADS, None, Some(body)).await
}

/// The signed `PUT`: its URL and the fields it was signed over.
fn put_of(signed: &Reply) -> (String, Vec<(String, String)>) {
    let put = &signed.json()["put"];
    assert_eq!(put["method"], "PUT", "{put}");
    let headers = put["headers"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
        .collect();
    (put["url"].as_str().unwrap().to_string(), headers)
}

/// A plain HTTP client's `PUT` of `body` to `url` with `headers`.
async fn put(url: &str, headers: &[(String, String)], body: &[u8]) -> Reply {
    let headers: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    request("PUT", url, &headers, body.to_vec()).await
}

fn with(headers: &[(String, String)], name: &str, value: &str) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(k, v)| {
            let v = if k == name { value } else { v.as_str() };
            (k.clone(), v.to_string())
        })
        .collect()
}

/// A JPEG's first bytes and then filler: the store takes bytes, the
/// processor judges them.
fn photo(size: usize) -> Vec<u8> {
    let mut b = vec![0xFF, 0xD8, 0xFF, 0xE0];
    b.resize(size, 0x42);
    b
}

fn documented(method: &str, path: &str, reply: &Reply) {
    openapi::documented(&openapi::doc(), method, path, reply);
}

#[tokio::test]
async fn a_vendor_uploads_straight_to_the_store_and_nothing_else_gets_in() {
    let p = platform("uploads-flow", &[]).await;
    let ada = sign_up(&p.fra, "ada@example.com", Some("Ada's Wool")).await;
    let bob = sign_up(&p.fra, "bob@example.com", Some("Bob's Bowls")).await;
    let bytes = photo(4096);

    let signed = sign(&p.fra, &ada, "image/jpeg", bytes.len()).await;
    assert_eq!(signed.status, 201, "{}", signed.text());
    documented("POST", UPLOADS, &signed);
    let upload = signed.json();
    let id = upload["id"].as_i64().unwrap();
    assert_eq!(
        signed.header("location"),
        Some(format!("{UPLOADS}/{id}").as_str())
    );
    assert_eq!(signed.header("cache-control"), Some("private, no-store"));
    assert_eq!(upload["status"], "signed");
    assert_eq!(upload["file_name"], "Scarf photo.jpg");
    assert_eq!(upload["quota"]["objects_used"], 1);
    assert_eq!(upload["quota"]["bytes_used"], 4096);
    let key = upload["key"].as_str().unwrap().to_string();
    assert!(
        key.starts_with("uploads/") && key.ends_with(".jpg"),
        "{key}"
    );
    assert!(
        !key.contains("Scarf"),
        "the key names nothing the vendor chose: {key}"
    );
    let (url, headers) = put_of(&signed);
    assert!(
        url.starts_with(&format!("{}/edgeshop/{key}?", p.objects.url)),
        "{url}"
    );
    assert!(url.contains("X-Amz-Expires=900"), "{url}");
    assert!(
        url.contains("X-Amz-SignedHeaders=content-length%3Bcontent-type%3Bhost"),
        "type and length are signed: {url}"
    );

    // Each way past the signature is refused, and writes nothing.
    let refusals = [
        (
            "another type",
            put(&url, &with(&headers, "content-type", "image/png"), &bytes).await,
        ),
        (
            "another length",
            put(
                &url,
                &with(&headers, "content-length", "4095"),
                &bytes[..4095],
            )
            .await,
        ),
        ("another key", {
            let other = url.replace("/uploads/", "/uploads/9");
            put(&other, &headers, &bytes).await
        }),
        ("a tampered signature", {
            let (head, sig) = url.rsplit_once("X-Amz-Signature=").unwrap();
            let flipped = if sig.starts_with('0') { "1" } else { "0" };
            put(
                &format!("{head}X-Amz-Signature={flipped}{}", &sig[1..]),
                &headers,
                &bytes,
            )
            .await
        }),
        (
            "no signature",
            put(url.split('?').next().unwrap(), &headers, &bytes).await,
        ),
    ];
    for (what, r) in &refusals {
        assert_eq!(r.status, 403, "{what}: {}", r.text());
    }
    assert_gone(&p.objects.url, &key).await;

    // The signed request goes through, from a plain client.
    let done = put(&url, &headers, &bytes).await;
    assert_eq!(done.status, 200, "{}", done.text());
    assert!(done.header("etag").is_some());
    let stored = read_object(&p.objects.url, &key).await;
    assert_eq!(stored.status, 200);
    assert_eq!(stored.body, bytes);
    assert_eq!(stored.header("content-type"), Some("image/jpeg"));
    // Uploads are not public, and an upload URL cannot read.
    let anyone = request(
        "GET",
        &format!("{}/edgeshop/{key}", p.objects.url),
        &[],
        Vec::new(),
    )
    .await;
    assert_eq!(anyone.status, 403);
    let with_the_put_url = request("GET", &url, &[], Vec::new()).await;
    assert_eq!(with_the_put_url.status, 403);

    // A browser on the storefront may PUT across origins.
    let preflight = request(
        "OPTIONS",
        &url,
        &[
            ("origin", "http://127.0.0.1:8000"),
            ("access-control-request-method", "PUT"),
            ("access-control-request-headers", "content-type"),
        ],
        Vec::new(),
    )
    .await;
    assert_eq!(preflight.status, 200);
    assert_eq!(
        preflight.header("access-control-allow-origin"),
        Some("http://127.0.0.1:8000")
    );
    let elsewhere = request(
        "OPTIONS",
        &url,
        &[
            ("origin", "https://evil.example"),
            ("access-control-request-method", "PUT"),
        ],
        Vec::new(),
    )
    .await;
    assert_eq!(elsewhere.status, 403);

    // Theirs to see; another vendor's id is no upload of theirs.
    let shown = vendor_call(&p.fra, &ada, "GET", &format!("{UPLOADS}/{id}"), None, None).await;
    assert_eq!(shown.status, 200, "{}", shown.text());
    documented("GET", "/api/v1/vendor/uploads/{id}", &shown);
    assert_eq!(shown.json()["key"], key.as_str());
    let theirs = vendor_call(&p.fra, &bob, "GET", &format!("{UPLOADS}/{id}"), None, None).await;
    documented("GET", "/api/v1/vendor/uploads/{id}", &theirs);
    theirs.problem(404);
    let bobs = vendor_call(&p.fra, &bob, "GET", UPLOADS, None, None).await;
    assert_eq!(bobs.status, 200, "{}", bobs.text());
    documented("GET", UPLOADS, &bobs);
    assert_eq!(bobs.json()["uploads"], json!([]));
    assert_eq!(bobs.json()["quota"]["objects_used"], 0);

    // What may never be uploaded is refused before anything is signed.
    for (content_type, size) in [
        ("image/svg+xml", 100),
        ("text/html", 100),
        ("image/jpeg", 0),
    ] {
        let r = sign(&p.fra, &ada, content_type, size).await;
        documented("POST", UPLOADS, &r);
        let field = if size == 0 { "size" } else { "content_type" };
        assert_eq!(r.problem(422)["field"], field, "{content_type}");
    }
    let too_big = sign(&p.fra, &ada, "image/png", 20 * 1024 * 1024 + 1).await;
    assert_eq!(too_big.problem(422)["field"], "size");
    let listed = vendor_call(&p.fra, &ada, "GET", UPLOADS, None, None)
        .await
        .json();
    assert_eq!(listed["uploads"].as_array().unwrap().len(), 1, "{listed}");
    // A shopper is no vendor.
    let carol = sign_up(&p.fra, "carol@example.com", None).await;
    assert_eq!(sign(&p.fra, &carol, "image/jpeg", 10).await.status, 403);
    drop(p.dir);
}

#[tokio::test]
async fn an_expired_url_is_refused_and_a_vendor_stays_within_quota() {
    let p = platform(
        "uploads-quota",
        &[
            "--upload-url-secs",
            "1",
            "--upload-quota-objects",
            "2",
            "--upload-quota-bytes",
            "3000",
        ],
    )
    .await;
    let ada = sign_up(&p.fra, "ada@example.com", Some("Ada's Wool")).await;

    let signed = sign(&p.fra, &ada, "image/webp", 1000).await;
    assert_eq!(signed.status, 201, "{}", signed.text());
    let key = signed.json()["key"].as_str().unwrap().to_string();
    let (url, headers) = put_of(&signed);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let late = put(&url, &headers, &photo(1000)).await;
    assert_eq!(late.status, 403, "{}", late.text());
    assert!(late.text().contains("expired"), "{}", late.text());
    assert_gone(&p.objects.url, &key).await;

    // The expired URL holds nothing, so it counts for nothing.
    assert_eq!(sign(&p.fra, &ada, "image/webp", 2000).await.status, 201);
    let over = sign(&p.fra, &ada, "image/webp", 1500).await;
    documented("POST", UPLOADS, &over);
    let problem = over.problem(403);
    assert_eq!(
        problem["type"]
            .as_str()
            .map(|t| t.ends_with("upload-quota-exceeded")),
        Some(true)
    );
    assert_eq!(
        (&problem["bytes_used"], &problem["bytes_limit"]),
        (&json!(2000), &json!(3000))
    );
    assert_eq!(sign(&p.fra, &ada, "image/webp", 1000).await.status, 201);
    let objects = sign(&p.fra, &ada, "image/webp", 1).await.problem(403);
    assert_eq!(
        (&objects["objects_used"], &objects["objects_limit"]),
        (&json!(2), &json!(2))
    );
    // A refused request recorded nothing.
    let listed = vendor_call(&p.fra, &ada, "GET", UPLOADS, None, None)
        .await
        .json();
    assert_eq!(listed["uploads"].as_array().unwrap().len(), 3, "{listed}");
    assert_eq!(listed["quota"]["bytes_used"], 3000);
}

/// moto's S3 server on a loopback port, with the bucket made.
async fn moto(dir: &std::path::Path) -> Host {
    let python = std::env::var("EDGESHOP_ORACLE_PYTHON").expect(
        "EDGESHOP_ORACLE_PYTHON names the Python with moto installed; \
         `cargo xtask test` sets it",
    );
    let script = "\
from moto.server import DomainDispatcherApplication, create_backend_app\n\
from werkzeug.serving import make_server\n\
app = DomainDispatcherApplication(create_backend_app)\n\
server = make_server('127.0.0.1', 0, app, threaded=True)\n\
print('moto listening on http://127.0.0.1:%d' % server.server_port, flush=True)\n\
server.serve_forever()\n";
    let mut cmd = std::process::Command::new(python);
    cmd.args(["-c", script]).current_dir(dir);
    let host = Host::spawn(cmd).unwrap_or_else(|log| panic!("moto did not start:\n{log}"));
    let made = request("PUT", &format!("{}/edgeshop", host.url), &[], Vec::new()).await;
    assert_eq!(made.status, 200, "{}", made.text());
    // The production bucket policy: anyone may read media/, nothing else.
    let policy = json!({
        "Version": "2012-10-17",
        "Statement": [{ "Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
                        "Resource": "arn:aws:s3:::edgeshop/media/*" }],
    });
    let set = request(
        "PUT",
        &format!("{}/edgeshop?policy", host.url),
        &[("content-type", "application/json")],
        policy.to_string().into_bytes(),
    )
    .await;
    assert!([200, 204].contains(&set.status), "{}", set.text());
    host
}

#[tokio::test]
async fn a_signed_upload_url_works_against_a_third_party_s3() {
    let dir = TempDir::new("uploads-moto");
    let store = moto(&dir.0).await;
    let p = platform_on(dir, store, &[]).await;
    let ada = sign_up(&p.fra, "ada@example.com", Some("Ada's Wool")).await;
    let bytes = photo(2048);
    let signed = sign(&p.fra, &ada, "image/jpeg", bytes.len()).await;
    assert_eq!(signed.status, 201, "{}", signed.text());
    let key = signed.json()["key"].as_str().unwrap().to_string();
    let (url, headers) = put_of(&signed);
    let done = put(&url, &headers, &bytes).await;
    assert_eq!(done.status, 200, "{}", done.text());
    let stored = read_object(&p.objects.url, &key).await;
    assert_eq!(stored.status, 200, "{}", stored.text());
    assert_eq!(stored.body, bytes);
    assert_eq!(stored.header("content-type"), Some("image/jpeg"));

    // The processor reads it back, and writes its variants, there too.
    let body = json!({ "title": "Blue wool scarf", "description": "Warm.", "price_minor": 2500,
                       "currency": "EUR", "stock": 3, "categories": [1] });
    let created = vendor_call(
        &p.fra,
        &ada,
        "POST",
        "/api/v1/vendor/products",
        None,
        Some(body),
    )
    .await;
    let product = created.json()["id"].as_i64().unwrap();
    // An AVIF photo from libavif's encoder: decoded by rav1d at the origin.
    let photo = media_processing::generate::avif();
    let (id, _) = upload_and_attach(&p, &ada, product, "image/avif", &photo).await;
    let done = settled(&p.fra, &ada, id).await;
    assert_eq!(done["status"], "ready", "{done}");
    let widths: Vec<_> = done["media"]["variants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["width"].as_i64().unwrap())
        .collect();
    assert_eq!(widths, [200, 640], "{done}");
    let variant = done["media"]["variants"][0]["url"]
        .as_str()
        .unwrap()
        .to_string();
    let stored = read_object(&p.objects.url, variant.trim_start_matches('/')).await;
    assert_eq!(stored.status, 200);
    assert_eq!(stored.header("content-type"), Some("image/webp"));
    // Shoppers' browsers load it from a PoP, which reads it from moto
    // unsigned (the bucket policy) and keeps it.
    let at = format!("{}{variant}", p.sin.url);
    let shown = image(&at, &[]).await;
    assert_eq!(shown.status, 200, "{}", shown.text());
    assert_eq!(shown.body, stored.body);
    assert!(image(&at, &[]).await.cache_status().contains("hit"));
    // Uploads stay private there too.
    let original = request(
        "GET",
        &format!("{}/edgeshop/{key}", p.objects.url),
        &[],
        Vec::new(),
    )
    .await;
    assert_eq!(original.status, 403);
}

/// Signs, uploads and attaches `bytes` (declared as `content_type`) to
/// `product`; returns the upload's id and key.
async fn upload_and_attach(
    p: &Platform,
    token: &str,
    product: i64,
    content_type: &str,
    bytes: &[u8],
) -> (i64, String) {
    let signed = sign(&p.fra, token, content_type, bytes.len()).await;
    assert_eq!(signed.status, 201, "{}", signed.text());
    let id = signed.json()["id"].as_i64().unwrap();
    let key = signed.json()["key"].as_str().unwrap().to_string();
    let (url, headers) = put_of(&signed);
    assert_eq!(put(&url, &headers, bytes).await.status, 200);
    let path = format!("/api/v1/vendor/products/{product}/media");
    let attached = vendor_call(
        &p.fra,
        token,
        "POST",
        &path,
        None,
        Some(json!({ "upload": id })),
    )
    .await;
    assert_eq!(attached.status, 202, "{}", attached.text());
    documented("POST", "/api/v1/vendor/products/{id}/media", &attached);
    (id, key)
}

/// Polls the upload until it is no longer processing (at most 30 s).
/// The original at `key` is deleted once its outcome is recorded: right
/// after, not in the same step, so a poll may briefly see it.
async fn assert_gone(objects: &str, key: &str) {
    for _ in 0..50 {
        if read_object(objects, key).await.status == 404 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the original {key} is still stored 5 s after its outcome");
}

async fn settled(pop: &Host, token: &str, id: i64) -> serde_json::Value {
    for _ in 0..300 {
        let r = vendor_call(pop, token, "GET", &format!("{UPLOADS}/{id}"), None, None).await;
        assert_eq!(r.status, 200, "{}", r.text());
        if r.json()["status"] != "processing" {
            return r.json();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("upload {id} was still processing after 30 s");
}

#[tokio::test]
async fn an_attached_photo_is_stripped_resized_and_shown_at_every_pop_and_hostile_files_are_not() {
    let p = platform("uploads-processing", &[]).await;
    let ada = sign_up(&p.fra, "ada@example.com", Some("Ada's Wool")).await;
    let bob = sign_up(&p.fra, "bob@example.com", Some("Bob's Bowls")).await;
    let product = |token: &str, title: &str| {
        let body = json!({ "title": title, "description": "Hand-made.", "price_minor": 2500, "currency": "EUR",
                           "stock": 3, "categories": [1], "status": "published" });
        let token = token.to_string();
        let fra = &p.fra;
        async move {
            let r = vendor_call(
                fra,
                &token,
                "POST",
                "/api/v1/vendor/products",
                None,
                Some(body),
            )
            .await;
            assert_eq!(r.status, 201, "{}", r.text());
            r.json()["id"].as_i64().unwrap()
        }
    };
    let scarf = product(&ada, "Blue wool scarf").await;
    let bowl = product(&bob, "Walnut bowl").await;

    // A phone photo: EXIF with where it was taken, stored sideways.
    let secret = "Taken at 51.5007N 0.1246W, our back garden";
    let photo = media_processing::generate::with_exif(
        &media_processing::generate::jpeg(2000, 1000),
        secret,
    );
    let (id, key) = upload_and_attach(&p, &ada, scarf, "image/jpeg", &photo).await;
    let done = settled(&p.fra, &ada, id).await;
    assert_eq!(done["status"], "ready", "{done}");
    assert_eq!(done["product_id"], scarf);
    let variants = done["media"]["variants"].as_array().unwrap().clone();
    let sizes: Vec<(i64, i64)> = variants
        .iter()
        .map(|v| (v["width"].as_i64().unwrap(), v["height"].as_i64().unwrap()))
        .collect();
    assert_eq!(
        sizes,
        [(200, 400), (800, 1600), (1000, 2000)],
        "upright: {done}"
    );
    for v in &variants {
        let url = v["url"].as_str().unwrap();
        let stored = read_object(&p.objects.url, url.trim_start_matches('/')).await;
        assert_eq!(stored.status, 200, "{url}");
        assert_eq!(stored.header("content-type"), Some("image/webp"));
        assert_eq!(
            stored.header("cache-control"),
            Some("public, max-age=31536000, immutable")
        );
        assert!(
            !stored
                .body
                .windows(secret.len())
                .any(|w| w == secret.as_bytes())
        );
        assert!(!stored.body.windows(4).any(|w| w == b"Exif"));
    }
    // The original, EXIF and all, is gone.
    assert_gone(&p.objects.url, &key).await;
    // A shopper at the other PoP sees the image once it has replicated.
    let url = format!("{}/api/v1/products/{scarf}", p.sin.url);
    let mut shown = Vec::new();
    for _ in 0..150 {
        shown = browse(&url, &[]).await.json()["media"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if !shown.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(shown.len(), 1, "{url}");
    assert_eq!(shown[0]["variants"], json!(variants));

    // The page's <img> loads each variant from the PoP, which keeps it.
    for v in &variants {
        let path = v["url"].as_str().unwrap();
        let at = format!("{}{path}", p.sin.url);
        let first = image(&at, &[]).await;
        assert_eq!(first.status, 200, "{at}: {}", first.text());
        assert_eq!(first.header("content-type"), Some("image/webp"));
        assert_eq!(
            first.header("cache-control"),
            Some("public, max-age=31536000, immutable")
        );
        assert_eq!(first.header("x-content-type-options"), Some("nosniff"));
        assert!(
            first.header("content-encoding").is_none(),
            "images are not re-coded"
        );
        let stored = read_object(&p.objects.url, path.trim_start_matches('/')).await;
        assert_eq!(first.body, stored.body);
        let again = image(&at, &[]).await;
        assert!(
            again.cache_status().contains("hit"),
            "{}",
            again.cache_status()
        );
        assert_eq!(again.body, stored.body);
    }
    let biggest = format!("{}{}", p.sin.url, variants[2]["url"].as_str().unwrap());
    let whole = image(&biggest, &[]).await;
    let etag = whole.header("etag").unwrap().to_string();
    let part = image(&biggest, &[("range", "bytes=0-99")]).await;
    assert_eq!(part.status, 206);
    assert_eq!(part.body, whole.body[..100]);
    assert_eq!(
        part.header("content-range"),
        Some(format!("bytes 0-99/{}", whole.body.len()).as_str())
    );
    let unchanged = image(&biggest, &[("if-none-match", &etag)]).await;
    assert_eq!(unchanged.status, 304);
    documented("GET", "/media/{name}", &whole);
    documented("GET", "/media/{name}", &part);
    let head = request("HEAD", &biggest, &[], Vec::new()).await;
    documented("HEAD", "/media/{name}", &head);
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    assert_eq!(head.header("etag"), Some(etag.as_str()));
    assert_eq!(head.header("content-type"), Some("image/webp"));
    let nowhere = format!("{}/media/{}.webp", p.sin.url, "0".repeat(64));
    let missing = image(&nowhere, &[]).await;
    documented("GET", "/media/{name}", &missing);
    assert_eq!(missing.problem(404)["status"], 404);
    let not_media = format!("{}/media/products/1/1.jpg", p.sin.url);
    assert_eq!(image(&not_media, &[]).await.status, 404);

    // Hostile and broken files end failed, with nothing published and
    // nothing left behind.
    let version = |token: String, id: i64| {
        let fra = &p.fra;
        async move {
            let path = format!("/api/v1/vendor/products/{id}");
            vendor_call(fra, &token, "GET", &path, None, None)
                .await
                .json()["version"]
                .clone()
        }
    };
    let before = version(bob.clone(), bowl).await;
    let hostile: [(&str, Vec<u8>, &str); 5] = [
        (
            "image/jpeg",
            b"<!doctype html><script>alert(document.cookie)</script>".to_vec(),
            "not a JPEG",
        ),
        (
            "image/png",
            media_processing::generate::png_declaring(8000, 8000),
            "8000",
        ),
        (
            "image/jpeg",
            media_processing::generate::png_rgba(50, 50),
            "uploaded as image/jpeg",
        ),
        (
            "image/png",
            media_processing::generate::png_rgba(300, 300)[..400].to_vec(),
            "could not be read",
        ),
        // Aborts the AV1 decoder: only its child process goes down, and
        // the origin goes on (the rest of this test runs against it).
        (
            "image/avif",
            media_processing::generate::avif_damaged(),
            "damaged",
        ),
    ];
    for (content_type, bytes, says) in hostile {
        let (id, key) = upload_and_attach(&p, &bob, bowl, content_type, &bytes).await;
        let done = settled(&p.fra, &bob, id).await;
        assert_eq!(done["status"], "failed", "{done}");
        assert!(done["error"].as_str().unwrap().contains(says), "{done}");
        assert_eq!(done["media"], json!(null));
        assert_gone(&p.objects.url, &key).await;
    }
    assert_eq!(
        version(bob.clone(), bowl).await,
        before,
        "the product did not change"
    );

    // Attaching wrongly changes nothing.
    let path = |product: i64| format!("/api/v1/vendor/products/{product}/media");
    let attach = |token: &str, product: i64, upload: i64| {
        let token = token.to_string();
        let fra = &p.fra;
        let path = path(product);
        async move {
            vendor_call(
                fra,
                &token,
                "POST",
                &path,
                None,
                Some(json!({ "upload": upload })),
            )
            .await
        }
    };
    let again = attach(&ada, scarf, id).await;
    documented("POST", "/api/v1/vendor/products/{id}/media", &again);
    assert_eq!(again.problem(409)["upload_status"], "ready");
    assert_eq!(attach(&ada, bowl, id).await.status, 404, "bob's product");
    let signed = sign(&p.fra, &ada, "image/jpeg", 1000).await.json();
    let early = attach(&ada, scarf, signed["id"].as_i64().unwrap()).await;
    assert!(
        early.problem(409)["detail"]
            .as_str()
            .unwrap()
            .contains("PUT the file")
    );
    let not_hers = attach(&bob, bowl, signed["id"].as_i64().unwrap()).await;
    assert_eq!(not_hers.problem(404)["field"], "upload");
    // Media are public to read from the store; uploads are not.
    let variant = variants[0]["url"].as_str().unwrap();
    let public = request(
        "GET",
        &format!("{}/edgeshop{variant}", p.objects.url),
        &[],
        Vec::new(),
    )
    .await;
    assert_eq!(public.status, 200);

    // With the store down, the PoP still shows what it holds, and says
    // plainly what it cannot fetch.
    let mut p = p;
    p.objects.kill();
    for v in &variants {
        let at = format!("{}{}", p.sin.url, v["url"].as_str().unwrap());
        let kept = image(&at, &[]).await;
        assert_eq!(kept.status, 200, "{at}");
        assert_eq!(kept.header("content-type"), Some("image/webp"));
    }
    let never_fetched = format!("{}{}", p.fra.url, variants[0]["url"].as_str().unwrap());
    let down = image(&never_fetched, &[]).await;
    assert_eq!(down.problem(503)["status"], 503);
    assert_eq!(down.header("cache-control"), Some("no-store"));
}
