//! Whole frames: sizing the scratch of an `H × W` frame and segmenting it (overlap-tile with
//! mirrored borders, normalisation from the model file, several threads) into a full-size
//! output, through unet-core's `Model::frame_plan` / `Model::segment`.

use std::ffi::c_void;

use unet_core::{
    FrameInput, FrameOptions, FramePlan, FrameView, Model, SampleType, TileChoice,
};

use crate::boundary::{alloc_scratch, guard, MutSlice, Out, Span};
use crate::handle::BoxHandle;
use crate::model::unet_model;
use crate::output::OutBuf;
use crate::status::{unet_status, Failure};
use crate::threads::ScopedThreads;

/// Element type of a frame's samples. Passed as `uint32_t`; unknown values are refused.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum unet_sample {
    /// `uint8_t` samples.
    UNET_SAMPLE_U8 = 0,
    /// `uint16_t` samples (e.g. a 16-bit camera).
    UNET_SAMPLE_U16 = 1,
    /// `float` samples.
    UNET_SAMPLE_F32 = 2,
}

/// Scratch budget of the automatic tile choice when `scratch_budget_bytes` is 0: 256 MiB.
pub const UNET_DEFAULT_SCRATCH_BUDGET: usize = 256 << 20;

/// How a frame is cut and run. Pass the same options (and frame size and sample type) to the
/// scratch query and to unet_model_segment_frame(): they define the scratch layout. A NULL
/// options pointer means unet_frame_options_default().
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct unet_frame_options {
    /// Tile input height; 0 together with `tile_width = 0` picks the largest square tile whose
    /// whole frame scratch fits `scratch_budget_bytes`. Otherwise both must be legal tile sizes
    /// (unet_model_is_legal_tile()).
    pub tile_height: usize,
    /// Tile input width (see `tile_height`).
    pub tile_width: usize,
    /// Scratch budget in bytes for the automatic tile choice; 0 means
    /// UNET_DEFAULT_SCRATCH_BUDGET. Ignored for an explicit tile.
    pub scratch_budget_bytes: usize,
    /// Threads that run tiles (the calling thread plus `threads − 1` threads spawned for the
    /// call); at least 1. The scratch holds one tile workspace per thread. The result does not
    /// depend on it.
    pub threads: usize,
}

/// The default frame options: automatic tile within UNET_DEFAULT_SCRATCH_BUDGET, one thread.
#[no_mangle]
pub extern "C" fn unet_frame_options_default() -> unet_frame_options {
    unet_frame_options { tile_height: 0, tile_width: 0, scratch_budget_bytes: 0, threads: 1 }
}

fn sample_type(sample: u32) -> Result<SampleType, Failure> {
    match sample {
        0 => Ok(SampleType::U8),
        1 => Ok(SampleType::U16),
        2 => Ok(SampleType::F32),
        _ => Err(Failure::invalid(format!("unknown unet_sample value {sample}"))),
    }
}

/// The frame plan and executor that `options` describe.
///
/// # Safety
/// `options` NULL or readable.
unsafe fn plan(
    m: &Model<'_>,
    height: usize,
    width: usize,
    sample: u32,
    options: *const unet_frame_options,
) -> Result<(FramePlan, ScopedThreads), Failure> {
    let sample = sample_type(sample)?;
    let o = if options.is_null() {
        unet_frame_options_default()
    } else {
        // SAFETY: forwarded caller contract; alignment checked by `arg_ref`.
        *unsafe { crate::boundary::arg_ref(options, "options") }?
    };
    if o.threads == 0 {
        return Err(Failure::invalid("options.threads must be at least 1"));
    }
    let tile = match (o.tile_height, o.tile_width) {
        (0, 0) => TileChoice::Budget(match o.scratch_budget_bytes {
            0 => UNET_DEFAULT_SCRATCH_BUDGET,
            b => b,
        }),
        (h, w) => TileChoice::Explicit(h, w),
    };
    let options = FrameOptions { tile, workers: o.threads, sample };
    let plan = m.frame_plan(height, width, m.config().in_channels, options)?;
    Ok((plan, ScopedThreads::new(o.threads)))
}

/// Exact scratch length, in f32 elements, that unet_model_segment_frame() needs for a
/// `height × width` frame of `sample`s with `options` (NULL: defaults) (`*out`).
///
/// Errors: UNET_ERR_NULL, UNET_ERR_INVALID_ARGUMENT (unknown `sample`, zero threads, zero or
/// more than 2^32 − 1 pixels), UNET_ERR_TILE_SIZE (explicit tile not legal or too small for
/// the frame), UNET_ERR_BUFFER_TOO_SMALL (no tile fits the budget), UNET_ERR_OVERFLOW.
///
/// # Safety
/// `model` a live handle; `options` NULL or readable; `out` valid for a write.
#[no_mangle]
pub unsafe extern "C" fn unet_model_frame_scratch_len(
    model: *const unet_model,
    height: usize,
    width: usize,
    sample: u32,
    options: *const unet_frame_options,
    out: *mut usize,
) -> unet_status {
    guard(|| {
        // SAFETY: forwarded caller contract.
        let m = unsafe { unet_model::borrow(model) }?.model();
        // SAFETY: forwarded caller contract.
        let out = unsafe { Out::new(out, "out") }?;
        // SAFETY: forwarded caller contract.
        let (p, _) = unsafe { plan(m, height, width, sample, options) }?;
        out.write(p.scratch_len());
        Ok(())
    })
}

/// As unet_model_frame_scratch_len(), in bytes.
///
/// # Safety
/// As unet_model_frame_scratch_len().
#[no_mangle]
pub unsafe extern "C" fn unet_model_frame_scratch_bytes(
    model: *const unet_model,
    height: usize,
    width: usize,
    sample: u32,
    options: *const unet_frame_options,
    out: *mut usize,
) -> unet_status {
    guard(|| {
        // SAFETY: forwarded caller contract.
        let m = unsafe { unet_model::borrow(model) }?.model();
        // SAFETY: forwarded caller contract.
        let out = unsafe { Out::new(out, "out") }?;
        // SAFETY: forwarded caller contract.
        let (p, _) = unsafe { plan(m, height, width, sample, options) }?;
        out.write(p.scratch_len().checked_mul(4).ok_or_else(|| {
            Failure::new(unet_status::UNET_ERR_OVERFLOW, "scratch bytes overflow size_t")
        })?);
        Ok(())
    })
}

/// The tile input size `*tile_h × *tile_w` that `options` give for a `height × width` frame
/// (the automatic choice, or the explicit tile once validated). Errors as
/// unet_model_frame_scratch_len().
///
/// # Safety
/// As unet_model_frame_scratch_len(); `tile_h`, `tile_w` valid for writes.
#[no_mangle]
pub unsafe extern "C" fn unet_model_frame_tile_size(
    model: *const unet_model,
    height: usize,
    width: usize,
    sample: u32,
    options: *const unet_frame_options,
    tile_h: *mut usize,
    tile_w: *mut usize,
) -> unet_status {
    guard(|| {
        // SAFETY: forwarded caller contract.
        let m = unsafe { unet_model::borrow(model) }?.model();
        // SAFETY: forwarded caller contract.
        let (th, tw) = unsafe { (Out::new(tile_h, "tile_h")?, Out::new(tile_w, "tile_w")?) };
        // SAFETY: forwarded caller contract.
        let (p, _) = unsafe { plan(m, height, width, sample, options) }?;
        let (h, w) = p.tile_input_size();
        th.write(h);
        tw.write(w);
        Ok(())
    })
}

/// A checked pixel buffer of the sample type the caller named.
enum Pixels<'a> {
    U8(&'a [u8]),
    U16(&'a [u16]),
    F32(&'a [f32]),
}

/// Segments a whole `height × width` frame into a full-size output.
///
/// - `pixels`: `in_channels` planar channels of `sample`s; sample `(c, y, x)` is at index
///   `(c·height + y)·row_stride + x`; `row_stride ≥ width` (0 means `width`: packed rows);
///   `pixels_len` counts samples (at least `((in_channels − 1)·height + height − 1)·row_stride
///   + width`). Raw values: the model file's normalisation is applied by libunet.
/// - `options`: as given to unet_model_frame_scratch_len() (NULL: defaults).
/// - `output_kind`/`output`/`output_len`: a unet_output kind over the frame:
///   `num_classes·height·width` floats or `height·width` labels.
/// - `scratch`: at least unet_model_frame_scratch_len() floats (clobbered), or NULL with
///   `scratch_len = 0` to let libunet allocate it for the call.
///
/// Every output pixel is computed from mirror-extended context, so the frame may have any
/// size ≥ 1×1; results do not depend on the tile size or thread count. Buffers must be
/// aligned and must not overlap. Errors: those of unet_model_frame_scratch_len(), plus
/// UNET_ERR_BUFFER_TOO_SMALL (pixels, output, scratch), UNET_ERR_INVALID_ARGUMENT (unknown
/// `output_kind`, `row_stride < width`, a non-finite f32 sample under percentile
/// normalisation), UNET_ERR_OUT_OF_MEMORY. On error the output is untouched. Thread-safe on a
/// shared model with per-call buffers.
///
/// # Safety
/// `model` a live handle; `pixels` readable for `pixels_len` samples; `output` readable and
/// writable for `output_len` elements of the kind's type; `scratch` NULL or readable and
/// writable for `scratch_len` floats; `options` NULL or readable; no other thread writes these
/// buffers during the call.
#[no_mangle]
pub unsafe extern "C" fn unet_model_segment_frame(
    model: *const unet_model,
    height: usize,
    width: usize,
    row_stride: usize,
    sample: u32,
    pixels: *const c_void,
    pixels_len: usize,
    options: *const unet_frame_options,
    output_kind: u32,
    output: *mut c_void,
    output_len: usize,
    scratch: *mut f32,
    scratch_len: usize,
) -> unet_status {
    guard(|| {
        // SAFETY: forwarded caller contract.
        let m = unsafe { unet_model::borrow(model) }?.model();
        let kind = sample_type(sample)?;
        // SAFETY (each arm): forwarded caller contract for the sample type the caller named.
        let (pixels, pixel_span) = match kind {
            SampleType::U8 => {
                let (s, span) = unsafe { crate::boundary::arg_slice(pixels.cast::<u8>(), pixels_len, "pixels") }?;
                (Pixels::U8(s), span)
            }
            SampleType::U16 => {
                let (s, span) = unsafe { crate::boundary::arg_slice(pixels.cast::<u16>(), pixels_len, "pixels") }?;
                (Pixels::U16(s), span)
            }
            _ => {
                let (s, span) = unsafe { crate::boundary::arg_slice(pixels.cast::<f32>(), pixels_len, "pixels") }?;
                (Pixels::F32(s), span)
            }
        };
        // SAFETY: forwarded caller contract.
        let output = unsafe { OutBuf::new(output_kind, output, output_len) }?;
        // SAFETY: forwarded caller contract.
        let (plan, exec) = unsafe { plan(m, height, width, sample, options) }?;
        let stride = if row_stride == 0 { width } else { row_stride };
        let channels = m.config().in_channels;
        let plane = height.checked_mul(stride).ok_or_else(|| {
            Failure::new(unet_status::UNET_ERR_OVERFLOW, "height × row_stride overflows")
        })?;
        let input = match pixels {
            Pixels::U8(d) => FrameInput::U8(FrameView::new(d, channels, height, width, stride, plane)?),
            Pixels::U16(d) => FrameInput::U16(FrameView::new(d, channels, height, width, stride, plane)?),
            Pixels::F32(d) => FrameInput::F32(FrameView::new(d, channels, height, width, stride, plane)?),
        };
        let mut owned;
        let scratch: &mut [f32] = if scratch.is_null() {
            if scratch_len != 0 {
                return Err(Failure::null("scratch"));
            }
            Span::disjoint(&[pixel_span, output.span()])?;
            owned = alloc_scratch(plan.scratch_len())?;
            &mut owned
        } else {
            // SAFETY: forwarded caller contract.
            let s = unsafe { MutSlice::new(scratch, scratch_len, "scratch") }?;
            Span::disjoint(&[pixel_span, output.span(), s.span])?;
            s.get()
        };
        m.segment(&plan, input, scratch, output.frame(), &exec)?;
        Ok(())
    })
}
