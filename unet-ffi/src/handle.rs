//! Ownership of opaque handles, encoded once: a handle created by libunet is a `Box` turned into
//! a raw pointer, borrowed by C as `const T *`, and released by the matching `_free`.

use crate::boundary::arg_ref;
use crate::status::Failure;

/// A Rust type handed to C as an opaque, heap-allocated handle.
pub(crate) trait BoxHandle: Sized {
    /// The C-facing name, for error messages ("model").
    const NAME: &'static str;

    /// Moves `self` to the heap and gives up ownership to C.
    fn into_raw(self) -> *mut Self {
        Box::into_raw(Box::new(self))
    }

    /// Borrows a handle given back by C; NULL is refused.
    ///
    /// # Safety
    /// If non-NULL, `p` must come from [`BoxHandle::into_raw`] and not be freed during `'a`.
    unsafe fn borrow<'a>(p: *const Self) -> Result<&'a Self, Failure> {
        // SAFETY: forwarded contract: a live handle from `into_raw` is a valid, aligned `Self`,
        // and handles are only read through shared references.
        unsafe { arg_ref(p, Self::NAME) }
    }

    /// Drops a handle given back by C; NULL is a no-op.
    ///
    /// # Safety
    /// If non-NULL, `p` must come from [`BoxHandle::into_raw`], and must not be used again.
    unsafe fn free(p: *mut Self) {
        if !p.is_null() {
            // SAFETY: `p` came from `Box::into_raw` and ownership returns here exactly once.
            drop(unsafe { Box::from_raw(p) });
        }
    }
}
