//! Status codes, their messages, the per-thread detail message of the last failure, and the
//! library version.

use std::cell::RefCell;
use std::ffi::{c_char, c_int};

use unet_core::Error;

/// What a libunet call did. Numeric values are stable across releases; new codes are only ever
/// appended.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum unet_status {
    /// Success.
    UNET_OK = 0,
    /// A required pointer argument was NULL.
    UNET_ERR_NULL = 1,
    /// An argument is out of its documented range (including unknown enum values, a misaligned
    /// or overlapping buffer, zero threads).
    UNET_ERR_INVALID_ARGUMENT = 2,
    /// A caller buffer is shorter than required.
    UNET_ERR_BUFFER_TOO_SMALL = 3,
    /// A size computation overflowed.
    UNET_ERR_OVERFLOW = 4,
    /// The tile size is not legal for the model (see unet_model_is_legal_tile()).
    UNET_ERR_TILE_SIZE = 5,
    /// The model bytes are not a well-formed safetensors file (truncated, corrupt).
    UNET_ERR_FORMAT = 6,
    /// The model file's metadata is missing a key or has a bad value.
    UNET_ERR_METADATA = 7,
    /// The model file's format version is newer than this library reads.
    UNET_ERR_UNSUPPORTED_VERSION = 8,
    /// A parameter tensor is missing, unexpected, or has the wrong shape or dtype.
    UNET_ERR_TENSOR = 9,
    /// The model file could not be read.
    UNET_ERR_IO = 10,
    /// Memory for the model bytes or the scratch could not be allocated.
    UNET_ERR_OUT_OF_MEMORY = 11,
    /// libunet hit an internal bug (a Rust panic, caught at the boundary). Outputs may be
    /// partially written.
    UNET_ERR_PANIC = 12,
    /// Any other error of unet-core (see unet_last_error()).
    UNET_ERR_OTHER = 13,
}

use unet_status::*;

impl unet_status {
    /// The static message of this status.
    pub fn message(self) -> &'static str {
        match self {
            UNET_OK => "success",
            UNET_ERR_NULL => "a required pointer argument was NULL",
            UNET_ERR_INVALID_ARGUMENT => "an argument is out of its documented range",
            UNET_ERR_BUFFER_TOO_SMALL => "a buffer is too small",
            UNET_ERR_OVERFLOW => "a size computation overflowed",
            UNET_ERR_TILE_SIZE => "the tile size is not legal for this model",
            UNET_ERR_FORMAT => "the model bytes are not a valid safetensors file",
            UNET_ERR_METADATA => "the model metadata is missing or invalid",
            UNET_ERR_UNSUPPORTED_VERSION => "the model format version is not supported",
            UNET_ERR_TENSOR => "a model tensor is missing, unexpected or malformed",
            UNET_ERR_IO => "the model file could not be read",
            UNET_ERR_OUT_OF_MEMORY => "out of memory",
            UNET_ERR_PANIC => "internal error (panic caught at the libunet boundary)",
            UNET_ERR_OTHER => "unet-core reported an error",
        }
    }

    /// NUL-terminated copy of [`unet_status::message`], for C.
    fn message_c(self) -> &'static [u8] {
        match self {
            UNET_OK => b"success\0",
            UNET_ERR_NULL => b"a required pointer argument was NULL\0",
            UNET_ERR_INVALID_ARGUMENT => b"an argument is out of its documented range\0",
            UNET_ERR_BUFFER_TOO_SMALL => b"a buffer is too small\0",
            UNET_ERR_OVERFLOW => b"a size computation overflowed\0",
            UNET_ERR_TILE_SIZE => b"the tile size is not legal for this model\0",
            UNET_ERR_FORMAT => b"the model bytes are not a valid safetensors file\0",
            UNET_ERR_METADATA => b"the model metadata is missing or invalid\0",
            UNET_ERR_UNSUPPORTED_VERSION => b"the model format version is not supported\0",
            UNET_ERR_TENSOR => b"a model tensor is missing, unexpected or malformed\0",
            UNET_ERR_IO => b"the model file could not be read\0",
            UNET_ERR_OUT_OF_MEMORY => b"out of memory\0",
            UNET_ERR_PANIC => b"internal error (panic caught at the libunet boundary)\0",
            UNET_ERR_OTHER => b"unet-core reported an error\0",
        }
    }

    /// The status with numeric value `v`, if any.
    pub fn from_int(v: c_int) -> Option<unet_status> {
        const ALL: [unet_status; 14] = [
            UNET_OK,
            UNET_ERR_NULL,
            UNET_ERR_INVALID_ARGUMENT,
            UNET_ERR_BUFFER_TOO_SMALL,
            UNET_ERR_OVERFLOW,
            UNET_ERR_TILE_SIZE,
            UNET_ERR_FORMAT,
            UNET_ERR_METADATA,
            UNET_ERR_UNSUPPORTED_VERSION,
            UNET_ERR_TENSOR,
            UNET_ERR_IO,
            UNET_ERR_OUT_OF_MEMORY,
            UNET_ERR_PANIC,
            UNET_ERR_OTHER,
        ];
        ALL.iter().copied().find(|s| *s as c_int == v)
    }
}

/// A failure: the status returned to C and the detail message kept for the calling thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The status.
    pub status: unet_status,
    /// The detail message.
    pub detail: String,
}

impl Failure {
    /// A failure with a detail message.
    pub fn new(status: unet_status, detail: impl Into<String>) -> Self {
        Failure { status, detail: detail.into() }
    }

    /// A NULL argument named `what`.
    pub fn null(what: &str) -> Self {
        Failure::new(UNET_ERR_NULL, format!("argument '{what}' is NULL"))
    }

    /// An argument out of range.
    pub fn invalid(detail: impl Into<String>) -> Self {
        Failure::new(UNET_ERR_INVALID_ARGUMENT, detail)
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        let status = match e {
            Error::Format { .. } => UNET_ERR_FORMAT,
            Error::MissingMetadata { .. } | Error::BadMetadata { .. } => UNET_ERR_METADATA,
            Error::UnsupportedVersion { .. } => UNET_ERR_UNSUPPORTED_VERSION,
            Error::MissingTensor { .. }
            | Error::UnexpectedTensor { .. }
            | Error::TensorShape { .. }
            | Error::TensorDType { .. } => UNET_ERR_TENSOR,
            Error::TileSize { .. } => UNET_ERR_TILE_SIZE,
            Error::Overflow => UNET_ERR_OVERFLOW,
            Error::BufferTooSmall { .. } => UNET_ERR_BUFFER_TOO_SMALL,
            Error::InvalidArgument { .. } => UNET_ERR_INVALID_ARGUMENT,
            _ => UNET_ERR_OTHER,
        };
        Failure::new(status, e.to_string())
    }
}

thread_local! {
    static LAST_ERROR: RefCell<String> = const { RefCell::new(String::new()) };
}

/// Records the outcome of a call for the calling thread: the detail of a failure, or nothing
/// (an empty message) after a success.
pub(crate) fn record(result: Result<(), Failure>) -> unet_status {
    let (status, detail) = match result {
        Ok(()) => (UNET_OK, String::new()),
        Err(f) => (f.status, f.detail),
    };
    // `try_with` fails only while the thread is being torn down; the status still goes back.
    let _ = LAST_ERROR.try_with(|m| *m.borrow_mut() = detail);
    status
}

/// The calling thread's detail message of its last failed call ("" after a success).
pub fn last_error() -> String {
    LAST_ERROR.try_with(|m| m.borrow().clone()).unwrap_or_default()
}

/// A static, NUL-terminated English message for `status`; for a value that is not a
/// `unet_status`, "unknown status". Never NULL; the string must not be freed.
///
/// Thread-safe; does not change the calling thread's last-error detail.
#[no_mangle]
pub extern "C" fn unet_status_message(status: c_int) -> *const c_char {
    let msg: &'static [u8] = match unet_status::from_int(status) {
        Some(s) => s.message_c(),
        None => b"unknown status\0",
    };
    msg.as_ptr().cast()
}

/// Copies the calling thread's detail message of its last failed libunet call into `buf`
/// (NUL-terminated, truncated to `buf_len - 1` bytes; UTF-8, possibly cut inside a character
/// when truncated) and stores the full message length (without the NUL) in `*out_len`. After a
/// successful call the message is empty. Every libunet function except this one,
/// unet_status_message() and unet_version() sets the message.
///
/// Errors: UNET_ERR_NULL if `buf` or `out_len` is NULL; UNET_ERR_INVALID_ARGUMENT if
/// `buf_len` is 0. Does not change the detail message itself.
///
/// # Safety
/// `buf` must be valid for writes of `buf_len` bytes; `out_len` must be valid for a write.
#[no_mangle]
pub unsafe extern "C" fn unet_last_error(
    buf: *mut c_char,
    buf_len: usize,
    out_len: *mut usize,
) -> unet_status {
    let run = || -> unet_status {
        if buf.is_null() || out_len.is_null() {
            return UNET_ERR_NULL;
        }
        if buf_len == 0 {
            return UNET_ERR_INVALID_ARGUMENT;
        }
        let msg = last_error();
        let n = msg.len().min(buf_len - 1);
        // SAFETY: the caller guarantees `buf` is writable for `buf_len > n` bytes and `out_len`
        // for one usize; `msg` is a separate Rust allocation, so the ranges do not overlap.
        unsafe {
            std::ptr::copy_nonoverlapping(msg.as_ptr(), buf.cast::<u8>(), n);
            *buf.add(n) = 0;
            *out_len = msg.len();
        }
        UNET_OK
    };
    std::panic::catch_unwind(run).unwrap_or(UNET_ERR_PANIC)
}

/// The library version, e.g. "0.1.0": a static NUL-terminated string equal to
/// UNET_VERSION_STRING of the header the library was built with. Never NULL.
#[no_mangle]
pub extern "C" fn unet_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_agree_and_roundtrip() {
        for v in 0..14 {
            let s = unet_status::from_int(v).expect("contiguous codes");
            assert_eq!(s as c_int, v);
            let c = s.message_c();
            assert_eq!(&c[..c.len() - 1], s.message().as_bytes());
        }
        assert_eq!(unet_status::from_int(14), None);
        assert_eq!(unet_status::from_int(-1), None);
    }
}
