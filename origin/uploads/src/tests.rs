use super::*;

fn at(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
}

/// 2013-05-24T00:00:00Z.
const MAY_24_2013: u64 = 1_369_353_600;

#[test]
fn a_get_presigned_as_in_the_s3_documentation() {
    // The worked example of S3's "Authenticating Requests: Using Query
    // Parameters": its example key pair, bucket, object and time.
    let store = Store {
        endpoint: "https://examplebucket.s3.amazonaws.com".into(),
        region: "us-east-1".into(),
        bucket: String::new(),
        access_key: "AKIAIOSFODNN7EXAMPLE".into(),
        secret_key: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".into(),
    };
    let url = store
        .presign(
            "GET",
            "https://examplebucket.s3.amazonaws.com/test.txt",
            &[],
            at(MAY_24_2013),
            Duration::from_secs(86_400),
        )
        .unwrap();
    assert!(
        url.ends_with(
            "X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"
        ),
        "{url}"
    );
}

/// 2026-12-04T12:00:00Z.
const DEC_4_2026_NOON: u64 = 1_796_385_600;

fn local_store() -> Store {
    Store {
        endpoint: "http://127.0.0.1:9000".into(),
        region: "us-east-1".into(),
        bucket: "media".into(),
        access_key: "edgeshop-uploader".into(),
        secret_key: "an-uploader-secret".into(),
    }
}

#[test]
fn a_put_is_signed_over_its_type_and_length_as_botocore_signs_it() {
    // The same request presigned by botocore's S3SigV4QueryAuth (the AWS
    // SDK for Python), run once as an oracle: the whole URL must match.
    let put = local_store()
        .presign_put(
            "uploads/7/abc123.jpg",
            "image/jpeg",
            1234,
            at(DEC_4_2026_NOON),
            Duration::from_secs(900),
        )
        .unwrap();
    assert_eq!(
        put.url,
        "http://127.0.0.1:9000/media/uploads/7/abc123.jpg?X-Amz-Algorithm=AWS4-HMAC-SHA256\
         &X-Amz-Credential=edgeshop-uploader%2F20261204%2Fus-east-1%2Fs3%2Faws4_request\
         &X-Amz-Date=20261204T120000Z&X-Amz-Expires=900\
         &X-Amz-SignedHeaders=content-length%3Bcontent-type%3Bhost\
         &X-Amz-Signature=d2c63a25759354ac90a4ba2f18e44b81f8da7ceb81080d4a7a69141fc33e6031"
    );
    assert_eq!(
        put.headers,
        vec![
            ("content-type", "image/jpeg".to_string()),
            ("content-length", "1234".to_string())
        ]
    );
    assert_eq!(put.expires_at, at(DEC_4_2026_NOON + 900));
}

#[test]
fn another_type_length_or_key_is_another_signature() {
    let store = local_store();
    let sig = |key: &str, ct: &str, len: u64| {
        let url = store
            .presign_put(key, ct, len, at(DEC_4_2026_NOON), Duration::from_secs(900))
            .unwrap()
            .url;
        url.rsplit_once("X-Amz-Signature=").unwrap().1.to_string()
    };
    let base = sig("uploads/7/abc123.jpg", "image/jpeg", 1234);
    assert_ne!(base, sig("uploads/7/abc123.jpg", "image/png", 1234));
    assert_ne!(base, sig("uploads/7/abc123.jpg", "image/jpeg", 1235));
    assert_ne!(base, sig("uploads/8/abc123.jpg", "image/jpeg", 1234));
}

#[test]
fn validity_is_bounded_and_the_endpoint_must_be_a_url() {
    let store = local_store();
    let put = |d: Duration| store.presign_put("uploads/7/a.jpg", "image/jpeg", 1, at(0), d);
    assert!(matches!(
        put(MAX_VALIDITY + Duration::from_secs(1)),
        Err(PresignError::Validity(_))
    ));
    assert!(matches!(
        put(Duration::ZERO),
        Err(PresignError::Validity(_))
    ));
    assert!(put(MAX_VALIDITY).is_ok());
    for bad in ["127.0.0.1:9000", "ftp://x", "http://", "http://host/path"] {
        let s = Store {
            endpoint: bad.into(),
            ..local_store()
        };
        assert!(
            matches!(s.object_url("k"), Err(PresignError::Endpoint(_))),
            "{bad}"
        );
    }
}

#[test]
fn keys_are_under_the_vendors_prefix_and_named_by_nothing_the_vendor_chose() {
    assert_eq!(
        object_key(7, "a1B2", "image/webp").as_deref(),
        Some("uploads/7/a1B2.webp")
    );
    assert_eq!(object_key(7, "../x", "image/png"), None);
    assert_eq!(object_key(7, "", "image/png"), None);
    assert_eq!(object_key(0, "a", "image/png"), None);
    assert_eq!(object_key(7, "a", "image/svg+xml"), None);
}
