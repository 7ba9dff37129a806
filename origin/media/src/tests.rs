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

/// The colour at the centre of each block of a decoded [`blocks`] image.
fn block_centres(image: &DynamicImage) -> Vec<[u8; 4]> {
    let rgba = image.to_rgba8();
    let (w, h) = rgba.dimensions();
    (0..16)
        .map(|i| {
            rgba.get_pixel(w / 8 + (i % 4) * w / 4, h / 8 + (i / 4) * h / 4)
                .0
        })
        .collect()
}

fn assert_near(found: [u8; 3], expected: [u8; 3], tolerance: u8, what: &str) {
    let off = (0..3)
        .map(|i| found[i].abs_diff(expected[i]))
        .max()
        .unwrap();
    assert!(
        off <= tolerance,
        "{what}: found {found:?}, expected {expected:?}"
    );
}

#[test]
fn avif_from_the_reference_encoder_decodes_to_its_colours_in_every_layout_depth_and_range() {
    use super::generate::{AVIF, BLOCK_COLOURS};
    for (name, bytes) in AVIF {
        assert_eq!(sniff(bytes), Some("image/avif"), "{name}");
        let image =
            avif::decode(bytes, Bounds::default()).unwrap_or_else(|e| panic!("{name}: {e}"));
        let centres = block_centres(&image);
        for (i, (found, source)) in centres.iter().zip(BLOCK_COLOURS).enumerate() {
            let what = format!("{name}, block {i}");
            let rgb = [found[0], found[1], found[2]];
            match name {
                // Lossless keeps every value.
                "lossless-identity" => assert_eq!(rgb, source, "{what}"),
                // Grey is the BT.601 luma of the source.
                "grey-12bit" => {
                    let [r, g, b] = source.map(f32::from);
                    let luma = (0.299 * r + 0.587 * g + 0.114 * b).round() as u8;
                    assert_near(rgb, [luma; 3], 6, &what);
                }
                "alpha-420" => {
                    // Opacity steps by column; where it is 0 the colour
                    // carries nothing.
                    let opacity = [0u8, 85, 170, 255][i % 4];
                    assert!(found[3].abs_diff(opacity) <= 2, "{what}: {found:?}");
                    if opacity == 255 {
                        assert_near(rgb, source, 10, &what);
                    }
                }
                _ => assert_near(rgb, source, 10, &what),
            }
        }
        assert_eq!(image.color().has_alpha(), name == "alpha-420", "{name}");
        let variants = process(bytes, "image/avif", Bounds::default()).unwrap();
        let widths: Vec<u32> = variants.iter().map(|v| v.width).collect();
        let expected: &[u32] = if name == "alpha-420" {
            &[200, 320]
        } else {
            &[200, 640]
        };
        assert_eq!(widths, expected, "{name}");
        assert!(
            variants
                .iter()
                .all(|v| sniff(&v.bytes) == Some("image/webp"))
        );
    }
}

#[test]
fn avif_is_refused_by_its_bytes_its_size_and_its_damage_like_the_others() {
    let avif_bytes = super::generate::avif();
    assert_eq!(
        process(&avif_bytes, "image/jpeg", Bounds::default()).unwrap_err(),
        Rejected::WrongType {
            declared: "image/jpeg".into(),
            found: "image/avif"
        }
    );
    assert_eq!(
        process(&jpeg(16, 16), "image/avif", Bounds::default()).unwrap_err(),
        Rejected::WrongType {
            declared: "image/avif".into(),
            found: "image/jpeg"
        }
    );
    // Another ISO-BMFF brand (HEIC) is not AVIF.
    let mut heic = avif_bytes.clone();
    heic[8..12].copy_from_slice(b"heic");
    let brands_end = u32::from_be_bytes(heic[0..4].try_into().unwrap()) as usize;
    for at in (16..brands_end).step_by(4) {
        if &heic[at..at + 4] == b"avif" || &heic[at..at + 4] == b"avis" {
            heic[at..at + 4].copy_from_slice(b"mif1");
        }
    }
    assert_eq!(
        process(&heic, "image/avif", Bounds::default()).unwrap_err(),
        Rejected::NotAnImage
    );
    // The sequence header's size is checked before the frame is decoded.
    let tight = Bounds {
        max_pixels: 100,
        ..Bounds::default()
    };
    assert!(matches!(
        process(&avif_bytes, "image/avif", tight),
        Err(Rejected::TooLarge {
            width: 640,
            height: 480,
            ..
        })
    ));
    // Cut anywhere, it is broken, never a panic.
    for keep in [20, 100, avif_bytes.len() / 2, avif_bytes.len() - 10] {
        let cut = process(&avif_bytes[..keep], "image/avif", Bounds::default());
        assert!(matches!(cut, Err(Rejected::Broken(_))), "{keep}: {cut:?}");
    }
    // Damage inside the AV1 data can abort rav1d (which only has a C
    // API, so its panics cannot unwind): the origin runs processing in a
    // child process for that reason, and tests/tests/uploads.rs sends
    // such a file through it.
}

#[test]
fn the_outcome_crosses_a_pipe_intact_and_a_forged_one_is_refused() {
    let variants = process(&jpeg(900, 300), "image/jpeg", Bounds::default()).unwrap();
    let sent = wire::encode(&Ok(variants.clone()));
    let got = wire::decode(&sent).unwrap().unwrap();
    assert_eq!(got.len(), variants.len());
    for (a, b) in got.iter().zip(&variants) {
        assert_eq!(
            (&a.key, a.width, a.height, &a.bytes),
            (&b.key, b.width, b.height, &b.bytes)
        );
    }
    let refused = wire::encode(&Err(Rejected::NotAnImage));
    assert_eq!(
        wire::decode(&refused).unwrap().unwrap_err(),
        Rejected::NotAnImage.to_string()
    );
    // One byte changed: the key no longer names the bytes.
    let mut forged = sent.clone();
    let last = forged.len() - 1;
    forged[last] ^= 1;
    assert!(wire::decode(&forged).is_err());
    // Cut short, or with something appended.
    assert!(wire::decode(&sent[..sent.len() - 1]).is_err());
    let mut longer = sent.clone();
    longer.push(0);
    assert!(wire::decode(&longer).is_err());
    assert!(wire::decode(b"").is_err());
}
