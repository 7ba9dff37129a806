//! AVIF stills read into pixels: the container by `avif-parse`, the AV1
//! frames by rav1d ([`crate::av1`]), YUV to RGB by the `yuv` crate.
//!
//! The colour conversion follows the frame's own sequence header (matrix
//! coefficients and range); an alpha item is applied as straight alpha.
//! What is not applied: the container's `irot`/`imir` transforms (the
//! parser does not expose them; cameras do not write AVIF, so the EXIF
//! style turn that phones rely on does not arise), grid (tiled) images
//! and animation beyond the first frame.

use crate::av1::{self, Frame, Layout, Plane};
use crate::{Bounds, Rejected};
use image::{DynamicImage, RgbImage, RgbaImage};
use yuv::{YuvGrayImage, YuvPlanarImage, YuvRange, YuvStandardMatrix};

/// Whether `bytes` begin an ISO-BMFF file whose brands say AVIF.
pub fn sniff(bytes: &[u8]) -> bool {
    if bytes.len() < 16 || &bytes[4..8] != b"ftyp" {
        return false;
    }
    let size = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
    let ftyp = &bytes[8..size.clamp(16, bytes.len())];
    // The major brand, then (after the minor version) compatible brands.
    let mut brands =
        std::iter::once(&ftyp[0..4]).chain(ftyp.get(8..).unwrap_or(&[]).chunks_exact(4));
    brands.any(|brand| brand == b"avif" || brand == b"avis")
}

/// The pixels of the AVIF file `bytes`, within `bounds`.
pub fn decode(bytes: &[u8], bounds: Bounds) -> Result<DynamicImage, Rejected> {
    let avif = avif_parse::read_avif(&mut &bytes[..])
        .map_err(|e| Rejected::Broken(format!("its AVIF container is not valid ({e})")))?;
    // The sequence header's maximum frame size bounds the frame before a
    // pixel is decoded, as an image header does for the other types.
    let meta = avif
        .primary_item_metadata()
        .map_err(|e| Rejected::Broken(format!("its AV1 sequence header is not valid ({e})")))?;
    let (width, height) = (meta.max_frame_width.get(), meta.max_frame_height.get());
    crate::check_size(width, height, bounds)?;
    let colour = av1::decode(&avif.primary_item, bounds.max_pixels).map_err(Rejected::Broken)?;
    let rgb = to_rgb(&colour)?;
    let Some(alpha_item) = &avif.alpha_item else {
        return Ok(DynamicImage::ImageRgb8(rgb));
    };
    let alpha = av1::decode(alpha_item, bounds.max_pixels).map_err(Rejected::Broken)?;
    if (alpha.width, alpha.height) != (colour.width, colour.height) {
        return Err(Rejected::Broken(format!(
            "its alpha plane is {}×{} but its picture is {}×{}",
            alpha.width, alpha.height, colour.width, colour.height
        )));
    }
    Ok(DynamicImage::ImageRgba8(with_alpha(
        &rgb,
        &alpha,
        avif.premultiplied_alpha,
    )))
}

/// The matrix for CICP matrix coefficients `code`. Unspecified and the
/// rarely used codes fall back to BT.601, as libavif does.
fn matrix(code: u32) -> YuvStandardMatrix {
    match code {
        1 => YuvStandardMatrix::Bt709,
        4 => YuvStandardMatrix::Fcc,
        7 => YuvStandardMatrix::Smpte240,
        9 | 10 => YuvStandardMatrix::Bt2020,
        _ => YuvStandardMatrix::Bt601,
    }
}

fn to_rgb(frame: &Frame) -> Result<RgbImage, Rejected> {
    let (w, h) = (frame.width, frame.height);
    if frame.matrix == 0 {
        return identity(frame);
    }
    let range = if frame.full_range {
        YuvRange::Full
    } else {
        YuvRange::Limited
    };
    let mut rgb = vec![0u8; w as usize * h as usize * 3];
    let planar = YuvPlanarImage {
        y_plane: &frame.y.samples,
        y_stride: frame.y.width,
        u_plane: &frame.u.samples,
        u_stride: frame.u.width,
        v_plane: &frame.v.samples,
        v_stride: frame.v.width,
        width: w,
        height: h,
    };
    let m = matrix(frame.matrix);
    let converted = match frame.layout {
        Layout::Mono => {
            let grey = YuvGrayImage {
                y_plane: &frame.y.samples,
                y_stride: frame.y.width,
                width: w,
                height: h,
            };
            yuv::yuv400_to_rgb(&grey, &mut rgb, w * 3, range, m)
        }
        Layout::Yuv420 => yuv::yuv420_to_rgb(&planar, &mut rgb, w * 3, range, m),
        Layout::Yuv422 => yuv::yuv422_to_rgb(&planar, &mut rgb, w * 3, range, m),
        Layout::Yuv444 => yuv::yuv444_to_rgb(&planar, &mut rgb, w * 3, range, m),
    };
    converted.map_err(|e| Rejected::Broken(format!("its colours could not be converted ({e})")))?;
    RgbImage::from_raw(w, h, rgb).ok_or_else(|| Rejected::Broken("its frame is incomplete".into()))
}

/// Matrix 0 stores RGB as G, B, R planes (lossless AVIF uses it).
fn identity(frame: &Frame) -> Result<RgbImage, Rejected> {
    if frame.layout != Layout::Yuv444 {
        return Err(Rejected::Broken(
            "it stores RGB planes with subsampled colour, which AV1 does not allow".into(),
        ));
    }
    let (g, b, r) = (&frame.y, &frame.u, &frame.v);
    let expand = |v: u8| {
        if frame.full_range {
            v
        } else {
            limited_to_full(v)
        }
    };
    Ok(RgbImage::from_fn(frame.width, frame.height, |x, y| {
        let i = (y * frame.width + x) as usize;
        image::Rgb([
            expand(r.samples[i]),
            expand(g.samples[i]),
            expand(b.samples[i]),
        ])
    }))
}

/// A limited-range (16–235) sample stretched to 0–255.
fn limited_to_full(v: u8) -> u8 {
    ((i32::from(v) - 16) * 255 / 219).clamp(0, 255) as u8
}

fn with_alpha(rgb: &RgbImage, alpha: &Frame, premultiplied: bool) -> RgbaImage {
    let a: &Plane = &alpha.y;
    RgbaImage::from_fn(rgb.width(), rgb.height(), |x, y| {
        let i = (y * a.width + x) as usize;
        let opacity = if alpha.full_range {
            a.samples[i]
        } else {
            limited_to_full(a.samples[i])
        };
        let [r, g, b] = rgb.get_pixel(x, y).0;
        let straight = |c: u8| {
            if !premultiplied || opacity == 0 || opacity == 255 {
                c
            } else {
                (u32::from(c) * 255 / u32::from(opacity)).min(255) as u8
            }
        };
        image::Rgba([straight(r), straight(g), straight(b), opacity])
    })
}
