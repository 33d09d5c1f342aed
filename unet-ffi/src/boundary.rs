//! The edge between C and Rust: the panic boundary every entry point runs inside, and the
//! checked conversions of C pointers into references and slices (NULL, alignment, size and
//! overlap checks), so that entry points never build a reference from an unchecked pointer.

use std::any::Any;
use std::mem::{align_of, size_of};
use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::status::{record, unet_status, Failure};

/// Runs `body` behind the panic boundary: a panic becomes [`unet_status::UNET_ERR_PANIC`]; the
/// outcome is recorded as the calling thread's last-error detail and its status returned.
pub(crate) fn guard(body: impl FnOnce() -> Result<(), Failure>) -> unet_status {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(result) => record(result),
        Err(payload) => record(Err(Failure::new(
            unet_status::UNET_ERR_PANIC,
            format!("internal error: {}", panic_text(&*payload)),
        ))),
    }
}

fn panic_text(payload: &(dyn Any + Send)) -> &str {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s
    } else {
        "panic"
    }
}

fn check_ptr<T>(p: *const T, name: &str) -> Result<(), Failure> {
    if p.is_null() {
        return Err(Failure::null(name));
    }
    if (p as usize) % align_of::<T>() != 0 {
        return Err(Failure::invalid(format!(
            "argument '{name}' is not aligned to {} bytes",
            align_of::<T>()
        )));
    }
    Ok(())
}

/// A shared reference from a C pointer: NULL and alignment checked.
///
/// # Safety
/// If non-NULL, `p` must point to a live `T` that is not written during `'a`.
pub(crate) unsafe fn arg_ref<'a, T>(p: *const T, name: &str) -> Result<&'a T, Failure> {
    check_ptr(p, name)?;
    // SAFETY: non-NULL and aligned (checked); validity and liveness are the caller's contract.
    Ok(unsafe { &*p })
}

/// An output parameter: checked for NULL and alignment now, written by [`Out::write`] only once
/// the call has succeeded.
pub(crate) struct Out<T> {
    p: *mut T,
}

impl<T> Out<T> {
    /// Checks `p`.
    ///
    /// # Safety
    /// If non-NULL, `p` must be valid for a write of one `T` for the rest of the call.
    pub(crate) unsafe fn new(p: *mut T, name: &str) -> Result<Self, Failure> {
        check_ptr(p, name)?;
        Ok(Out { p })
    }

    /// Stores `v` (without reading or dropping the old contents).
    pub(crate) fn write(self, v: T) {
        // SAFETY: `p` is non-NULL, aligned and writable (checked in `new` under its contract).
        unsafe { self.p.write(v) }
    }
}

/// A byte range `[start, end)` occupied by a caller buffer, for overlap checks.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Span {
    start: usize,
    end: usize,
    name: &'static str,
}

impl Span {
    fn of<T>(p: *const T, len: usize, name: &'static str) -> Self {
        let start = p as usize;
        Span { start, end: start + len * size_of::<T>(), name }
    }

    /// Fails if two non-empty spans share a byte (Rust may not alias a `&mut` slice).
    pub(crate) fn disjoint(spans: &[Span]) -> Result<(), Failure> {
        for (i, a) in spans.iter().enumerate() {
            for b in &spans[i + 1..] {
                if a.start < a.end && b.start < b.end && a.start < b.end && b.start < a.end {
                    return Err(Failure::invalid(format!(
                        "buffers '{}' and '{}' overlap",
                        a.name, b.name
                    )));
                }
            }
        }
        Ok(())
    }
}

fn check_slice<T>(p: *const T, len: usize, name: &'static str) -> Result<Span, Failure> {
    check_ptr(p, name)?;
    let bytes = len.checked_mul(size_of::<T>()).filter(|&b| b <= isize::MAX as usize);
    match bytes {
        Some(b) if (p as usize).checked_add(b).is_some() => Ok(Span::of(p, len, name)),
        _ => Err(Failure::invalid(format!("argument '{name}': length {len} is impossibly large"))),
    }
}

/// A read-only slice of `len` elements from a C pointer: NULL, alignment and size checked
/// (`len` may be 0, the pointer must still be non-NULL).
///
/// # Safety
/// `p` must be valid for reads of `len` elements, not written during `'a`.
pub(crate) unsafe fn arg_slice<'a, T>(
    p: *const T,
    len: usize,
    name: &'static str,
) -> Result<(&'a [T], Span), Failure> {
    let span = check_slice(p, len, name)?;
    // SAFETY: non-NULL, aligned, `len · size_of::<T>() ≤ isize::MAX` without wrapping the
    // address space (checked); validity for `len` elements is the caller's contract.
    Ok((unsafe { std::slice::from_raw_parts(p, len) }, span))
}

/// A checked mutable slice. Build the reference with [`MutSlice::get`] only after every
/// span of the call has been checked with [`Span::disjoint`].
pub(crate) struct MutSlice<T> {
    p: *mut T,
    len: usize,
    /// Its byte range.
    pub(crate) span: Span,
}

impl<T> MutSlice<T> {
    /// Checks `p` as for [`arg_slice`].
    ///
    /// # Safety
    /// `p` must be valid for reads and writes of `len` elements, not accessed by anyone else
    /// during the call.
    pub(crate) unsafe fn new(p: *mut T, len: usize, name: &'static str) -> Result<Self, Failure> {
        let span = check_slice(p, len, name)?;
        Ok(MutSlice { p, len, span })
    }

    /// The slice; call once, after the overlap check.
    pub(crate) fn get<'a>(self) -> &'a mut [T] {
        // SAFETY: checked in `new` (NULL, alignment, size) under its contract; the caller of
        // `get` has checked that no other slice of this call overlaps it.
        unsafe { std::slice::from_raw_parts_mut(self.p, self.len) }
    }
}

/// A `Vec<f32>` of `len` zeros, or [`unet_status::UNET_ERR_OUT_OF_MEMORY`].
pub(crate) fn alloc_scratch(len: usize) -> Result<Vec<f32>, Failure> {
    let mut v = Vec::new();
    v.try_reserve_exact(len).map_err(|_| {
        Failure::new(
            unet_status::UNET_ERR_OUT_OF_MEMORY,
            format!("could not allocate {len} f32 of scratch"),
        )
    })?;
    v.resize(len, 0.0);
    Ok(v)
}
