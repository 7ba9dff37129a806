//! Images made on the spot, for tests and for the seeded catalog: a
//! JPEG of any size, the same with an EXIF block (orientation 6 and a
//! description naming a place), a PNG with transparency, and the header of
//! a decompression bomb; and AVIF files made from [`blocks`] by libavif's
//! `avifenc`, the reference encoder (see `fixtures/README.md`).

use image::{ImageEncoder, RgbImage, RgbaImage};

pub fn jpeg(width: u32, height: u32) -> Vec<u8> {
    let img = RgbImage::from_fn(width, height, |x, y| {
        image::Rgb([(x / 8 % 256) as u8, (y / 8 % 256) as u8, 128])
    });
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 85)
        .write_image(img.as_raw(), width, height, image::ExtendedColorType::Rgb8)
        .unwrap();
    out
}

pub fn png_rgba(width: u32, height: u32) -> Vec<u8> {
    let img = RgbaImage::from_fn(width, height, |x, _| {
        image::Rgba([200, 10, 10, (x % 256) as u8])
    });
    let mut out = Vec::new();
    image::codecs::png::PngEncoder::new(&mut out)
        .write_image(img.as_raw(), width, height, image::ExtendedColorType::Rgba8)
        .unwrap();
    out
}

/// An APP1 EXIF segment (little-endian TIFF): orientation 6 (turn 90°
/// clockwise to show) and a description naming where it was taken.
fn exif_segment(description: &str) -> Vec<u8> {
    let mut text = description.as_bytes().to_vec();
    text.push(0);
    let mut tiff = b"II*\0".to_vec();
    tiff.extend(8u32.to_le_bytes());
    let entries = 2u16;
    let data_at = 8 + 2 + 12 * u32::from(entries) + 4;
    tiff.extend(entries.to_le_bytes());
    // ImageDescription (0x010E), ASCII, at data_at.
    tiff.extend(0x010Eu16.to_le_bytes());
    tiff.extend(2u16.to_le_bytes());
    tiff.extend((text.len() as u32).to_le_bytes());
    tiff.extend(data_at.to_le_bytes());
    // Orientation (0x0112), SHORT, 6.
    tiff.extend(0x0112u16.to_le_bytes());
    tiff.extend(3u16.to_le_bytes());
    tiff.extend(1u32.to_le_bytes());
    tiff.extend([6, 0, 0, 0]);
    tiff.extend(0u32.to_le_bytes());
    tiff.extend(&text);
    let mut payload = b"Exif\0\0".to_vec();
    payload.extend(tiff);
    let mut segment = vec![0xFF, 0xE1];
    segment.extend(((payload.len() + 2) as u16).to_be_bytes());
    segment.extend(payload);
    segment
}

pub fn with_exif(jpeg: &[u8], description: &str) -> Vec<u8> {
    let mut out = jpeg[..2].to_vec();
    out.extend(exif_segment(description));
    out.extend(&jpeg[2..]);
    out
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for b in bytes {
        crc ^= u32::from(*b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// A PNG whose header declares `width`×`height` and whose data is a few
/// bytes: what a decompression bomb looks like before it is decoded.
pub fn png_declaring(width: u32, height: u32) -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = b"IHDR".to_vec();
    ihdr.extend(width.to_be_bytes());
    ihdr.extend(height.to_be_bytes());
    ihdr.extend([8, 2, 0, 0, 0]);
    out.extend(13u32.to_be_bytes());
    out.extend(&ihdr);
    out.extend(crc32(&ihdr).to_be_bytes());
    // A sliver of deflate data where gigabytes of pixels would follow.
    for (name, data) in [
        (
            &b"IDAT"[..],
            &[0x78, 0x9C, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01][..],
        ),
        (b"IEND", &[]),
    ] {
        let mut chunk = name.to_vec();
        chunk.extend(data);
        out.extend((data.len() as u32).to_be_bytes());
        out.extend(&chunk);
        out.extend(crc32(&chunk).to_be_bytes());
    }
    out
}

/// Seeded product picture `n`: a 1600×1200 JPEG of a rounded object on a
/// soft backdrop, in one of many colour schemes, so seeded products look
/// different from each other. Deterministic: the same `n`, the same bytes.
pub fn picture(n: usize) -> Vec<u8> {
    const SCHEMES: [([f32; 3], [f32; 3], [f32; 3]); 8] = [
        ([238., 232., 220.], [205., 190., 170.], [120., 72., 40.]),
        ([225., 236., 244.], [170., 196., 220.], [30., 70., 130.]),
        ([236., 244., 230.], [180., 210., 170.], [60., 110., 50.]),
        ([246., 230., 232.], [220., 170., 180.], [150., 40., 70.]),
        ([240., 238., 246.], [190., 180., 220.], [80., 60., 140.]),
        ([248., 242., 222.], [226., 206., 150.], [190., 130., 20.]),
        ([232., 232., 232.], [190., 190., 190.], [40., 40., 48.]),
        ([226., 242., 240.], [160., 210., 205.], [20., 120., 115.]),
    ];
    let (top, bottom, object) = SCHEMES[n % SCHEMES.len()];
    let (width, height) = (1600u32, 1200u32);
    // Where the object sits and how big it is vary with `n` too.
    let cx = 800.0 + ((n * 97) % 240) as f32 - 120.0;
    let cy = 640.0;
    let (rx, ry) = (
        300.0 + ((n * 53) % 120) as f32,
        260.0 + ((n * 31) % 90) as f32,
    );
    let img = RgbImage::from_fn(width, height, |x, y| {
        let t = y as f32 / height as f32;
        let mut px: [f32; 3] = std::array::from_fn(|i| top[i] * (1.0 - t) + bottom[i] * t);
        let (dx, dy) = ((x as f32 - cx) / rx, (y as f32 - cy) / ry);
        let d = dx * dx + dy * dy;
        // A soft shadow under the object, then the object, lit from the
        // top left.
        let (sx, sy) = ((x as f32 - cx - 30.0) / rx, (y as f32 - cy - 40.0) / ry);
        let shadow = (1.0 - (sx * sx + sy * sy)).clamp(0.0, 1.0) * 0.25;
        px = px.map(|c| c * (1.0 - shadow));
        if d < 1.0 {
            let light = 0.75 + 0.35 * (-(dx + dy) * 0.5).clamp(-1.0, 1.0) * (1.0 - d).sqrt();
            px = std::array::from_fn(|i| (object[i] * light).min(255.0));
        }
        image::Rgb(px.map(|c| c as u8))
    });
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 88)
        .write_image(img.as_raw(), width, height, image::ExtendedColorType::Rgb8)
        .expect("encoding a generated picture");
    out
}

/// The colours of [`blocks`], row by row.
pub const BLOCK_COLOURS: [[u8; 3]; 16] = [
    [230, 30, 30],
    [30, 200, 40],
    [20, 40, 220],
    [250, 250, 250],
    [5, 5, 5],
    [128, 128, 128],
    [240, 200, 20],
    [20, 200, 210],
    [200, 30, 200],
    [120, 60, 10],
    [255, 128, 0],
    [0, 90, 40],
    [60, 0, 120],
    [255, 190, 200],
    [90, 90, 160],
    [200, 230, 140],
];

/// A 4×4 grid of solid [`BLOCK_COLOURS`], `width`×`height`: saturated
/// colours, black and white show a wrong colour matrix or range at once.
pub fn blocks(width: u32, height: u32) -> RgbImage {
    RgbImage::from_fn(width, height, |x, y| {
        image::Rgb(BLOCK_COLOURS[(y * 4 / height * 4 + x * 4 / width) as usize])
    })
}

/// [`blocks`] at 640×480 as AVIF files, by name: 4:2:0 8-bit BT.601 full
/// range; 4:4:4 10-bit BT.709 limited range; 12-bit monochrome; lossless
/// (identity matrix, RGB planes); and at 320×240 with an alpha item whose
/// opacity steps 0, 85, 170, 255 across four columns.
pub const AVIF: [(&str, &[u8]); 5] = [
    (
        "photo-420-bt601-full",
        include_bytes!("../fixtures/photo-420-bt601-full.avif"),
    ),
    (
        "photo-444-10bit-bt709-limited",
        include_bytes!("../fixtures/photo-444-10bit-bt709-limited.avif"),
    ),
    ("grey-12bit", include_bytes!("../fixtures/grey-12bit.avif")),
    (
        "lossless-identity",
        include_bytes!("../fixtures/lossless-identity.avif"),
    ),
    ("alpha-420", include_bytes!("../fixtures/alpha-420.avif")),
];

/// The AVIF photo most tests upload: [`blocks`] at 640×480, 4:2:0.
pub fn avif() -> Vec<u8> {
    AVIF[0].1.to_vec()
}

/// [`avif`] with its AV1 data scrambled near the end: rav1d 1.1 aborts on
/// it (an `unwrap` in its error path), which is what the origin's child
/// process for processing is there to survive.
pub fn avif_damaged() -> Vec<u8> {
    let mut bytes = avif();
    let len = bytes.len();
    for b in &mut bytes[len - 200..len - 20] {
        *b ^= 0x5A;
    }
    bytes
}
