//! One AV1 still frame decoded by rav1d, behind a safe function.
//!
//! rav1d is the memory-safe Rust port of dav1d (BSD-2-Clause, pure Rust,
//! no system library); it exposes only dav1d's C API, so this module is
//! the one place in the crate that calls `unsafe` functions. Everything it
//! hands out is owned: the planes are copied out of the decoder's picture,
//! already narrowed to 8 bits, before the picture and the decoder are
//! released.
//!
//! Why not another decoder: `image`'s AVIF decoding needs a system dav1d
//! newer than Debian 12's, libaom's wrapper builds C with cmake, and the
//! other pure Rust AVIF decoders are AGPL or need a newer compiler.

#![allow(unsafe_code)]

use rav1d::include::dav1d::data::Dav1dData;
use rav1d::include::dav1d::dav1d::{Dav1dContext, Dav1dSettings};
use rav1d::include::dav1d::headers::{
    DAV1D_PIXEL_LAYOUT_I400, DAV1D_PIXEL_LAYOUT_I420, DAV1D_PIXEL_LAYOUT_I422,
    DAV1D_PIXEL_LAYOUT_I444,
};
use rav1d::include::dav1d::picture::Dav1dPicture;
use rav1d::src::lib::{
    dav1d_close, dav1d_data_create, dav1d_data_unref, dav1d_default_settings, dav1d_get_picture,
    dav1d_open, dav1d_picture_unref, dav1d_send_data,
};
use std::mem::MaybeUninit;
use std::ptr::NonNull;

/// How the chroma planes are subsampled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Luma only.
    Mono,
    Yuv420,
    Yuv422,
    Yuv444,
}

/// One plane, 8 bits a sample, rows packed (stride = width).
#[derive(Debug, Clone, Default)]
pub struct Plane {
    pub width: u32,
    pub samples: Vec<u8>,
}

/// A decoded frame (its planes narrowed from 8, 10 or 12 bits to 8) and
/// what its sequence header says about its colour.
#[derive(Debug, Clone)]
pub struct Frame {
    pub width: u32,
    pub height: u32,
    pub layout: Layout,
    pub full_range: bool,
    /// The CICP matrix coefficients (ISO/IEC 23091-4): 0 identity (RGB),
    /// 1 BT.709, 5 and 6 BT.601, 9 BT.2020, …
    pub matrix: u32,
    pub y: Plane,
    /// Empty for [`Layout::Mono`].
    pub u: Plane,
    pub v: Plane,
}

/// dav1d's "try again" status, `-EAGAIN`.
const EAGAIN: i32 = -11;
/// Send and receive turns before a still frame that has not come out is
/// taken to be broken (a still needs one or two).
const MAX_TURNS: usize = 64;

/// Decodes the AV1 bitstream `obus` (an AVIF item's payload) whose frame
/// may have at most `max_pixels` pixels.
pub fn decode(obus: &[u8], max_pixels: u64) -> Result<Frame, String> {
    let decoder = Decoder::open(max_pixels)?;
    let picture = decoder.decode(obus)?;
    picture.frame()
}

/// An open rav1d context, closed on drop.
struct Decoder(Option<Dav1dContext>);

impl Decoder {
    fn open(max_pixels: u64) -> Result<Decoder, String> {
        let mut settings = MaybeUninit::<Dav1dSettings>::uninit();
        // SAFETY: `dav1d_default_settings` writes a whole `Dav1dSettings`
        // to the pointer, which is valid for writes; it reads nothing.
        let mut settings = unsafe {
            dav1d_default_settings(NonNull::new_unchecked(settings.as_mut_ptr()));
            settings.assume_init()
        };
        // One thread and no frame delay: a still is one frame, and the
        // processor decodes one upload at a time beside the serving work.
        settings.n_threads = 1;
        settings.max_frame_delay = 1;
        // The decoder refuses larger frames itself (0 would mean none).
        settings.frame_size_limit = u32::try_from(max_pixels).unwrap_or(u32::MAX).max(1);
        let mut context: Option<Dav1dContext> = None;
        // SAFETY: both pointers are to live locals, valid for reads and
        // writes; `settings` is fully initialised above.
        let status = unsafe {
            dav1d_open(
                Some(NonNull::from(&mut context)),
                Some(NonNull::from(&mut settings)),
            )
        };
        match (status.0, context) {
            (0, Some(context)) => Ok(Decoder(Some(context))),
            (code, _) => Err(format!("the AV1 decoder could not start (error {code})")),
        }
    }

    fn decode(&self, obus: &[u8]) -> Result<Picture, String> {
        if obus.is_empty() {
            return Err("the image holds no AV1 data".into());
        }
        let mut data = Data(Dav1dData::default());
        // SAFETY: `data.0` is a live local valid for writes; on success
        // the returned pointer is the start of a fresh buffer of exactly
        // `obus.len()` bytes owned by `data.0`.
        let buffer = unsafe { dav1d_data_create(Some(NonNull::from(&mut data.0)), obus.len()) };
        if buffer.is_null() {
            return Err("the AV1 decoder could not take the image's data".into());
        }
        // SAFETY: `buffer` holds `obus.len()` writable bytes (above) and
        // does not overlap `obus`, which we only borrow.
        unsafe { std::ptr::copy_nonoverlapping(obus.as_ptr(), buffer, obus.len()) };
        let mut picture = Picture(Dav1dPicture::default());
        for _ in 0..MAX_TURNS {
            if data.0.sz > 0 {
                // SAFETY: the context is open (it closes only on drop) and
                // `data.0` is a live, initialised local.
                let sent = unsafe { dav1d_send_data(self.0, Some(NonNull::from(&mut data.0))) };
                if sent.0 != 0 && sent.0 != EAGAIN {
                    return Err(format!("the AV1 data is not valid (error {})", sent.0));
                }
            }
            // SAFETY: as above; `picture.0` is a live local the decoder
            // overwrites (it holds no references yet).
            let got = unsafe { dav1d_get_picture(self.0, Some(NonNull::from(&mut picture.0))) };
            match got.0 {
                0 => return Ok(picture),
                EAGAIN => continue,
                code => return Err(format!("the AV1 frame could not be decoded (error {code})")),
            }
        }
        Err("the AV1 data holds no complete frame".into())
    }
}

impl Drop for Decoder {
    fn drop(&mut self) {
        // SAFETY: the context came from `dav1d_open` and is closed once:
        // `dav1d_close` takes it out of the `Option`, leaving `None`.
        unsafe { dav1d_close(Some(NonNull::from(&mut self.0))) };
    }
}

/// Input data, its buffer released on drop.
struct Data(Dav1dData);

impl Drop for Data {
    fn drop(&mut self) {
        // SAFETY: `self.0` is either empty or was made by
        // `dav1d_data_create`; unref releases it once and empties it.
        unsafe { dav1d_data_unref(Some(NonNull::from(&mut self.0))) };
    }
}

/// A decoded picture, released on drop.
struct Picture(Dav1dPicture);

impl Drop for Picture {
    fn drop(&mut self) {
        // SAFETY: `self.0` is the default (empty) picture or one filled by
        // `dav1d_get_picture`; unref releases its references once.
        unsafe { dav1d_picture_unref(Some(NonNull::from(&mut self.0))) };
    }
}

impl Picture {
    fn frame(&self) -> Result<Frame, String> {
        let p = &self.0;
        let width = u32::try_from(p.p.w).map_err(|_| "the frame has no width")?;
        let height = u32::try_from(p.p.h).map_err(|_| "the frame has no height")?;
        let bit_depth = u8::try_from(p.p.bpc).map_err(|_| "the frame's bit depth is invalid")?;
        if width == 0 || height == 0 || !matches!(bit_depth, 8 | 10 | 12) {
            return Err(format!(
                "the frame is {width}×{height} at {bit_depth} bits, which cannot be shown"
            ));
        }
        let (layout, (sx, sy)) = match p.p.layout {
            DAV1D_PIXEL_LAYOUT_I400 => (Layout::Mono, (0, 0)),
            DAV1D_PIXEL_LAYOUT_I420 => (Layout::Yuv420, (1, 1)),
            DAV1D_PIXEL_LAYOUT_I422 => (Layout::Yuv422, (1, 0)),
            DAV1D_PIXEL_LAYOUT_I444 => (Layout::Yuv444, (0, 0)),
            other => return Err(format!("the frame's pixel layout {other} is unknown")),
        };
        let header = p.seq_hdr.ok_or("the frame has no sequence header")?;
        // SAFETY: a picture from `dav1d_get_picture` holds a reference to
        // its sequence header, alive until the picture is released (drop).
        let header = unsafe { header.as_ref() };
        let y = self.plane(0, width, height, bit_depth)?;
        let (u, v) = if layout == Layout::Mono {
            (Plane::default(), Plane::default())
        } else {
            let (cw, ch) = ((width + sx) >> sx, (height + sy) >> sy);
            (
                self.plane(1, cw, ch, bit_depth)?,
                self.plane(2, cw, ch, bit_depth)?,
            )
        };
        Ok(Frame {
            width,
            height,
            layout,
            full_range: header.color_range != 0,
            matrix: header.mtrx,
            y,
            u,
            v,
        })
    }

    /// Plane `index` (`width`×`height` samples), copied and narrowed to
    /// 8 bits with rounding.
    fn plane(&self, index: usize, width: u32, height: u32, depth: u8) -> Result<Plane, String> {
        let p = &self.0;
        let base = p.data[index].ok_or("the frame is missing a plane")?;
        let stride = p.stride[index.min(1)];
        let sample_bytes = if depth > 8 { 2 } else { 1 };
        let row_bytes = width as usize * sample_bytes;
        if stride.unsigned_abs() < row_bytes {
            return Err("the frame's rows overlap".into());
        }
        let shift = u32::from(depth - 8);
        let mut samples = Vec::with_capacity(width as usize * height as usize);
        for row in 0..height as isize {
            // SAFETY: dav1d lays plane `index` out as `height` rows of at
            // least `row_bytes` bytes, `stride` bytes apart from `base`
            // (which may be negative for bottom-up pictures); the picture
            // keeps them alive until it is released (drop). High bit
            // depths store native-endian u16 samples, 2-byte aligned.
            let bytes = unsafe {
                let start = base.as_ptr().cast::<u8>().offset(row * stride);
                std::slice::from_raw_parts(start, row_bytes)
            };
            if shift == 0 {
                samples.extend_from_slice(bytes);
            } else {
                let top = (1u32 << depth) - 1;
                samples.extend(bytes.chunks_exact(2).map(|pair| {
                    let sample = u32::from(u16::from_ne_bytes([pair[0], pair[1]])).min(top);
                    ((sample + (1 << (shift - 1))) >> shift).min(255) as u8
                }));
            }
        }
        Ok(Plane { width, samples })
    }
}
