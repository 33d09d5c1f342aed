//! The output kinds callers choose (`unet_output`) and the checked conversion of a caller's
//! `void *` output buffer into a typed Rust slice.

use std::ffi::c_void;

use unet_core::Output;

use crate::boundary::{MutSlice, Span};
use crate::status::Failure;

/// What a run writes. Passed as `uint32_t` so that an unknown value is refused
/// (UNET_ERR_INVALID_ARGUMENT) rather than undefined behaviour.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum unet_output {
    /// Raw class scores, `float[num_classes][out_h][out_w]`.
    UNET_OUTPUT_LOGITS = 0,
    /// Soft-max probabilities, `float[num_classes][out_h][out_w]`, summing to 1 per pixel.
    UNET_OUTPUT_PROBABILITIES = 1,
    /// Arg-max class per pixel, `uint8_t[out_h][out_w]` (needs num_classes ≤ 256). Ties go to
    /// the lowest class; a pixel with NaN logits gets the first NaN class.
    UNET_OUTPUT_LABELS_U8 = 2,
    /// Arg-max class per pixel, `uint16_t[out_h][out_w]`.
    UNET_OUTPUT_LABELS_U16 = 3,
}

/// A checked output buffer of the kind the caller asked for.
pub(crate) enum OutBuf {
    Logits(MutSlice<f32>),
    Probabilities(MutSlice<f32>),
    Labels8(MutSlice<u8>),
    Labels16(MutSlice<u16>),
}

impl OutBuf {
    /// Checks `output` (NULL, alignment for the kind's element type, size) for `len` elements
    /// of kind `kind`.
    ///
    /// # Safety
    /// `output` must be valid for reads and writes of `len` elements of the kind's type and not
    /// accessed by anyone else during the call.
    pub(crate) unsafe fn new(kind: u32, output: *mut c_void, len: usize) -> Result<Self, Failure> {
        const NAME: &str = "output";
        // SAFETY (all arms): forwarded caller contract for the element type `kind` selects.
        Ok(match kind {
            0 => OutBuf::Logits(unsafe { MutSlice::new(output.cast(), len, NAME) }?),
            1 => OutBuf::Probabilities(unsafe { MutSlice::new(output.cast(), len, NAME) }?),
            2 => OutBuf::Labels8(unsafe { MutSlice::new(output.cast(), len, NAME) }?),
            3 => OutBuf::Labels16(unsafe { MutSlice::new(output.cast(), len, NAME) }?),
            _ => return Err(Failure::invalid(format!("unknown unet_output value {kind}"))),
        })
    }

    /// Its byte range.
    pub(crate) fn span(&self) -> Span {
        match self {
            OutBuf::Logits(s) | OutBuf::Probabilities(s) => s.span,
            OutBuf::Labels8(s) => s.span,
            OutBuf::Labels16(s) => s.span,
        }
    }

    /// The tile output; only after the overlap check.
    pub(crate) fn tile<'a>(self) -> Output<'a> {
        match self {
            OutBuf::Logits(s) => Output::Logits(s.get()),
            OutBuf::Probabilities(s) => Output::Probabilities(s.get()),
            OutBuf::Labels8(s) => Output::Labels8(s.get()),
            OutBuf::Labels16(s) => Output::Labels16(s.get()),
        }
    }
}
