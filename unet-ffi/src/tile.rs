//! Running the network on one tile into caller buffers (unet_model_run_tile()).

use std::ffi::c_void;

use crate::boundary::{alloc_scratch, arg_slice, guard, MutSlice, Span};
use crate::handle::BoxHandle;
use crate::model::unet_model;
use crate::output::OutBuf;
use crate::status::{unet_status, Failure};

/// Runs the network on one `h × w` tile.
///
/// - `input`: `float[in_channels][h][w]`, already normalised, at least `input_len` elements
///   (`input_len ≥ in_channels·h·w`);
/// - `output_kind`: a unet_output value; `output` holds `output_len` elements of its type:
///   at least `num_classes·out_h·out_w` floats (logits, probabilities) or `out_h·out_w` labels,
///   with `out_h × out_w` from unet_model_output_size();
/// - `scratch`: at least unet_model_tile_scratch_len() floats, contents irrelevant
///   (clobbered); or NULL with `scratch_len = 0`, and libunet allocates and frees the scratch
///   itself for this call (the convenience path).
///
/// Buffers must be aligned for their element types and must not overlap each other
/// (UNET_ERR_INVALID_ARGUMENT). Errors: UNET_ERR_NULL, UNET_ERR_TILE_SIZE,
/// UNET_ERR_OVERFLOW, UNET_ERR_BUFFER_TOO_SMALL, UNET_ERR_INVALID_ARGUMENT (unknown
/// `output_kind`, labels u8 with more than 256 classes), UNET_ERR_OUT_OF_MEMORY. On error the
/// output is untouched. Thread-safe on a shared model with per-thread buffers.
///
/// # Safety
/// `model` a live handle; `input` readable for `input_len` floats; `output` readable and
/// writable for `output_len` elements of the kind's type; `scratch` NULL or readable and
/// writable for `scratch_len` floats; no other thread writes these buffers during the call.
#[no_mangle]
pub unsafe extern "C" fn unet_model_run_tile(
    model: *const unet_model,
    h: usize,
    w: usize,
    input: *const f32,
    input_len: usize,
    output_kind: u32,
    output: *mut c_void,
    output_len: usize,
    scratch: *mut f32,
    scratch_len: usize,
) -> unet_status {
    guard(|| {
        // SAFETY: forwarded caller contract.
        let m = unsafe { unet_model::borrow(model) }?.model();
        // SAFETY: forwarded caller contract.
        let (input, input_span) = unsafe { arg_slice(input, input_len, "input") }?;
        // SAFETY: forwarded caller contract.
        let output = unsafe { OutBuf::new(output_kind, output, output_len) }?;
        let plan = m.plan(h, w)?;
        let mut owned;
        let scratch: &mut [f32] = if scratch.is_null() {
            if scratch_len != 0 {
                return Err(Failure::null("scratch"));
            }
            Span::disjoint(&[input_span, output.span()])?;
            owned = alloc_scratch(plan.scratch_len())?;
            &mut owned
        } else {
            // SAFETY: forwarded caller contract.
            let s = unsafe { MutSlice::new(scratch, scratch_len, "scratch") }?;
            Span::disjoint(&[input_span, output.span(), s.span])?;
            s.get()
        };
        m.forward(&plan, input, scratch, output.tile())?;
        Ok(())
    })
}
