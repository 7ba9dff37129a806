use super::generate::{jpeg, png_declaring, png_rgba, with_exif};
use super::*;

#[test]
fn a_photo_is_turned_upright_stripped_and_made_into_webp_variants() {
    let secret = "Taken at 51.5007N 0.1246W, our back garden";
    let upload = with_exif(&jpeg(2000, 1000), secret);
    assert!(upload.windows(secret.len()).any(|w| w == secret.as_bytes()));
    let variants = process(&upload, "image/jpeg", Bounds::default()).unwrap();
    // Orientation 6 stands a 2000×1000 landscape up as 1000×2000.
    let sizes: Vec<(u32, u32)> = variants.iter().map(|v| (v.width, v.height)).collect();
    assert_eq!(sizes, [(200, 400), (800, 1600), (1000, 2000)]);
    for v in &variants {
        assert_eq!(sniff(&v.bytes), Some("image/webp"));
        let decoded = image::load_from_memory_with_format(&v.bytes, ImageFormat::WebP).unwrap();
        assert_eq!((decoded.width(), decoded.height()), (v.width, v.height));
        for needle in [secret.as_bytes(), b"Exif", b"EXIF"] {
            assert!(
                !v.bytes.windows(needle.len()).any(|w| w == needle),
                "{}",
                v.key
            );
        }
        let hex: String = Sha256::digest(&v.bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(v.key, format!("media/{hex}.webp"));
    }
    // The same bytes make the same keys.
    let again = process(&upload, "image/jpeg", Bounds::default()).unwrap();
    assert_eq!(again[0].key, variants[0].key);
}

#[test]
fn a_small_image_is_never_enlarged_and_keeps_its_transparency() {
    let variants = process(&png_rgba(120, 60), "image/png", Bounds::default()).unwrap();
    assert_eq!(variants.len(), 1);
    assert_eq!((variants[0].width, variants[0].height), (120, 60));
    let decoded = image::load_from_memory(&variants[0].bytes).unwrap();
    assert!(decoded.color().has_alpha());
    assert_eq!(widths_for(5000), [200, 800, 1600]);
    assert_eq!(widths_for(1600), [200, 800, 1600]);
    assert_eq!(widths_for(900), [200, 800, 900]);
}

#[test]
fn what_is_not_an_allowed_image_is_refused_by_its_bytes() {
    let html = b"<!doctype html><script>alert(1)</script>";
    let svg = b"<svg xmlns=\"http://www.w3.org/2000/svg\"><script>alert(1)</script></svg>";
    for bytes in [&html[..], &svg[..], b"GIF89a\x01\x00\x01\x00", b""] {
        assert_eq!(
            process(bytes, "image/jpeg", Bounds::default()).unwrap_err(),
            Rejected::NotAnImage
        );
    }
    let png_as_jpeg = process(&png_rgba(10, 10), "image/jpeg", Bounds::default()).unwrap_err();
    assert_eq!(
        png_as_jpeg,
        Rejected::WrongType {
            declared: "image/jpeg".into(),
            found: "image/png"
        }
    );
}

#[test]
fn bombs_and_broken_files_fail_before_their_pixels_are_decoded() {
    // 8000×8000 is 64 million pixels: refused from the header alone.
    let bomb = process(&png_declaring(8000, 8000), "image/png", Bounds::default()).unwrap_err();
    assert!(
        matches!(bomb, Rejected::TooLarge { width: 8000, .. }),
        "{bomb:?}"
    );
    let huge = process(
        &png_declaring(100_000, 100_000),
        "image/png",
        Bounds::default(),
    );
    assert!(huge.is_err());
    // A cut-off file.
    let whole = png_rgba(300, 300);
    let cut = process(&whole[..whole.len() / 2], "image/png", Bounds::default()).unwrap_err();
    assert!(matches!(cut, Rejected::Broken(_)), "{cut:?}");
    let header_only = process(&jpeg(64, 64)[..20], "image/jpeg", Bounds::default()).unwrap_err();
    assert!(
        matches!(header_only, Rejected::Broken(_)),
        "{header_only:?}"
    );
    // Small bounds make a modest image too large.
    let tight = Bounds {
        max_pixels: 100,
        ..Bounds::default()
    };
    assert!(matches!(
        process(&jpeg(64, 64), "image/jpeg", tight),
        Err(Rejected::TooLarge { .. })
    ));
}
