//! A vendor's uploaded image made fit to publish, as pure logic (bytes in,
//! variants out; the caller does the I/O):
//!
//! 1. its type is read from its bytes, never from its name or the type it
//!    was uploaded as, and must be an allowed image type (JPEG, PNG, WebP,
//!    AVIF) and the one declared (so an HTML or SVG file renamed `.jpg`
//!    never gets through);
//! 2. its dimensions are read from its header and bounded before any
//!    pixel is decoded (a decompression bomb declares huge dimensions in a
//!    few bytes), and decoding runs under an allocation limit;
//! 3. it is decoded, turned upright by its EXIF orientation, and made
//!    into WebP variants at [`WIDTHS`] (never wider than the original).
//!    Re-encoding from pixels carries no metadata over: EXIF (with GPS
//!    location), XMP and ICC text are gone;
//! 4. each variant's key is the SHA-256 of its bytes, so a key names one
//!    content forever and can be cached as immutable.

use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::io::Cursor;

/// The widths made, in pixels: a thumbnail, a product page, a zoom.
pub const WIDTHS: [u32; 3] = [200, 800, 1600];
/// WebP quality of the variants.
pub const QUALITY: f32 = 80.0;

/// What an upload may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    pub max_width: u32,
    pub max_height: u32,
    /// Width × height; a bomb's dimensions can each be modest.
    pub max_pixels: u64,
    /// Most memory the decoder may allocate.
    pub max_alloc: u64,
}

impl Default for Bounds {
    fn default() -> Bounds {
        Bounds {
            max_width: 12_000,
            max_height: 12_000,
            max_pixels: 50_000_000,
            max_alloc: 512 << 20,
        }
    }
}

/// Why an upload cannot be published; its message is for the vendor.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Rejected {
    #[error("the file is not a JPEG, PNG, WebP or AVIF image")]
    NotAnImage,
    #[error("the file is {found}, but it was uploaded as {declared}")]
    WrongType {
        declared: String,
        found: &'static str,
    },
    #[error(
        "the image is {width}×{height} pixels; the most accepted is {max_width}×{max_height} and {max_pixels} pixels in all"
    )]
    TooLarge {
        width: u32,
        height: u32,
        max_width: u32,
        max_height: u32,
        max_pixels: u64,
    },
    #[error("the image could not be read: {0}")]
    Broken(String),
}

/// One variant to store at `key`.
#[derive(Debug, Clone, Serialize)]
pub struct Variant {
    /// `media/{sha256}.webp`
    pub key: String,
    pub width: u32,
    pub height: u32,
    #[serde(skip)]
    pub bytes: Vec<u8>,
}

impl Variant {
    pub const CONTENT_TYPE: &str = "image/webp";
}

/// The content type an image's bytes show, among those read here.
pub fn sniff(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some("image/jpeg")
    } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if bytes.len() >= 12 && &bytes[0..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        Some("image/webp")
    } else if avif::sniff(bytes) {
        Some("image/avif")
    } else {
        None
    }
}

fn format_of(content_type: &str) -> Option<ImageFormat> {
    match content_type {
        "image/jpeg" => Some(ImageFormat::Jpeg),
        "image/png" => Some(ImageFormat::Png),
        "image/webp" => Some(ImageFormat::WebP),
        _ => None,
    }
}

fn broken(e: image::ImageError) -> Rejected {
    match e {
        image::ImageError::Limits(_) => Rejected::Broken(
            "decoding it would take more memory than an image of its size may".into(),
        ),
        other => Rejected::Broken(other.to_string()),
    }
}

/// The variants of `bytes`, uploaded as `declared`, within `bounds`.
pub fn process(bytes: &[u8], declared: &str, bounds: Bounds) -> Result<Vec<Variant>, Rejected> {
    let found = sniff(bytes).ok_or(Rejected::NotAnImage)?;
    if found != declared {
        return Err(Rejected::WrongType {
            declared: declared.to_string(),
            found,
        });
    }
    if found == "image/avif" {
        return variants(&avif::decode(bytes, bounds)?);
    }
    let format = format_of(found).ok_or(Rejected::NotAnImage)?;
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    let mut limits = Limits::default();
    limits.max_image_width = Some(bounds.max_width);
    limits.max_image_height = Some(bounds.max_height);
    limits.max_alloc = Some(bounds.max_alloc);
    reader.limits(limits);
    let mut decoder = reader.into_decoder().map_err(|e| match e {
        image::ImageError::Limits(_) => too_large_unknown(bounds),
        other => broken(other),
    })?;
    let (width, height) = decoder.dimensions();
    check_size(width, height, bounds)?;
    let orientation = decoder.orientation().map_err(broken)?;
    let mut image = DynamicImage::from_decoder(decoder).map_err(broken)?;
    image.apply_orientation(orientation);
    variants(&image)
}

/// Refuses dimensions outside `bounds`, read from a header before any
/// pixel is decoded.
fn check_size(width: u32, height: u32, bounds: Bounds) -> Result<(), Rejected> {
    if width == 0
        || height == 0
        || width > bounds.max_width
        || height > bounds.max_height
        || u64::from(width) * u64::from(height) > bounds.max_pixels
    {
        return Err(Rejected::TooLarge {
            width,
            height,
            max_width: bounds.max_width,
            max_height: bounds.max_height,
            max_pixels: bounds.max_pixels,
        });
    }
    Ok(())
}

fn too_large_unknown(bounds: Bounds) -> Rejected {
    Rejected::Broken(format!(
        "its header declares more than {}×{} pixels",
        bounds.max_width, bounds.max_height
    ))
}

/// The widths made for an image `width` wide: each of [`WIDTHS`] below
/// it, and it itself when it is narrower than the widest.
pub fn widths_for(width: u32) -> Vec<u32> {
    let widest = WIDTHS[WIDTHS.len() - 1];
    let mut out: Vec<u32> = WIDTHS.iter().copied().filter(|w| *w < width).collect();
    if width <= widest {
        out.push(width);
    }
    out
}

fn variants(image: &DynamicImage) -> Result<Vec<Variant>, Rejected> {
    let has_alpha = image.color().has_alpha();
    widths_for(image.width())
        .into_iter()
        .map(|width| {
            let height = ((u64::from(image.height()) * u64::from(width)) / u64::from(image.width()))
                .max(1) as u32;
            let sized = if width == image.width() {
                image.clone()
            } else {
                image.resize_exact(width, height, image::imageops::FilterType::CatmullRom)
            };
            let encoded = if has_alpha {
                let rgba = sized.to_rgba8();
                webp::Encoder::from_rgba(rgba.as_raw(), width, sized.height()).encode(QUALITY)
            } else {
                let rgb = sized.to_rgb8();
                webp::Encoder::from_rgb(rgb.as_raw(), width, sized.height()).encode(QUALITY)
            };
            let bytes = encoded.to_vec();
            if bytes.is_empty() {
                return Err(Rejected::Broken("the WebP encoder failed".into()));
            }
            let digest = Sha256::digest(&bytes);
            let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
            Ok(Variant {
                key: format!("media/{hex}.webp"),
                width,
                height: sized.height(),
                bytes,
            })
        })
        .collect()
}

mod av1;
mod avif;
pub mod generate;
pub mod wire;

#[cfg(test)]
mod tests;
