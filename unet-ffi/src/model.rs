//! The model handle: loading (zero-copy from caller bytes, or from a file libunet reads),
//! freeing, and the queries a caller needs before running (architecture, legal tile sizes,
//! output size, halo, scratch size).

use std::ffi::{c_char, CStr};
use std::io::Read;

use unet_core::{Model, Padding};

use crate::boundary::{arg_slice, guard, Out};
use crate::handle::BoxHandle;
use crate::owned::OwnedModel;
use crate::status::{unet_status, Failure};

/// A loaded, validated U-Net. Opaque; made by unet_model_from_bytes() or unet_model_load(),
/// released by unet_model_free(). Immutable: `const unet_model *` may be shared by any number
/// of threads.
#[allow(non_camel_case_types)]
pub struct unet_model {
    source: Source,
}

enum Source {
    /// Over caller bytes that the caller keeps alive until unet_model_free().
    Borrowed(Model<'static>),
    /// Over bytes libunet read and owns.
    Owned(OwnedModel),
}

impl BoxHandle for unet_model {
    const NAME: &'static str = "model";
}

impl unet_model {
    /// The model, borrowed no longer than the handle.
    pub(crate) fn model(&self) -> &Model<'_> {
        match &self.source {
            Source::Borrowed(m) => m,
            Source::Owned(o) => o.model(),
        }
    }
}

/// Convolution padding of a model.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum unet_padding {
    /// No padding (the paper): the output is smaller than the input by 2·halo.
    UNET_PADDING_VALID = 0,
    /// Zero padding: output size = input size.
    UNET_PADDING_SAME = 1,
}

/// Loads a model from `len` bytes of a unet safetensors file **without copying them**: the
/// model reads its weights in place, so the caller must keep `bytes` alive and unchanged until
/// unet_model_free(). Any alignment of `bytes` is accepted. On success `*out` receives a new
/// handle.
///
/// Errors: UNET_ERR_NULL (`bytes` or `out` NULL), UNET_ERR_FORMAT (not safetensors: truncated,
/// corrupt), UNET_ERR_METADATA, UNET_ERR_UNSUPPORTED_VERSION, UNET_ERR_TENSOR.
///
/// # Safety
/// `bytes` must be valid for reads of `len` bytes until the model is freed; `out` must be
/// valid for a write.
#[no_mangle]
pub unsafe extern "C" fn unet_model_from_bytes(
    bytes: *const u8,
    len: usize,
    out: *mut *mut unet_model,
) -> unet_status {
    guard(|| {
        // SAFETY: forwarded caller contract (`out` writable).
        let out = unsafe { Out::new(out, "out") }?;
        // SAFETY: forwarded caller contract: readable for `len` bytes, alive and unchanged
        // until unet_model_free(), which is what the 'static borrow below stands for.
        let (bytes, _) = unsafe { arg_slice::<u8>(bytes, len, "bytes") }?;
        let model = Model::from_safetensors(bytes)?;
        out.write(unet_model { source: Source::Borrowed(model) }.into_raw());
        Ok(())
    })
}

fn read_file(path: &CStr) -> Result<Vec<u8>, Failure> {
    let display = path.to_string_lossy();
    #[cfg(unix)]
    let path = std::path::Path::new(<std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(
        path.to_bytes(),
    ));
    #[cfg(not(unix))]
    let path = std::path::Path::new(
        path.to_str().map_err(|_| Failure::invalid("path is not valid UTF-8"))?,
    );
    let io = |e: std::io::Error| {
        Failure::new(unet_status::UNET_ERR_IO, format!("cannot read model file '{display}': {e}"))
    };
    let mut file = std::fs::File::open(path).map_err(io)?;
    let size = file.metadata().map_err(io)?.len();
    let size = usize::try_from(size).map_err(|_| {
        Failure::new(unet_status::UNET_ERR_OUT_OF_MEMORY, "model file larger than memory")
    })?;
    let mut bytes = Vec::new();
    bytes.try_reserve_exact(size).map_err(|_| {
        Failure::new(
            unet_status::UNET_ERR_OUT_OF_MEMORY,
            format!("cannot allocate {size} bytes for '{display}'"),
        )
    })?;
    file.read_to_end(&mut bytes).map_err(io)?;
    Ok(bytes)
}

/// Reads the model file at `path` (a NUL-terminated file name, bytes as the OS takes them) into
/// memory libunet owns, and loads it. On success `*out` receives a new handle.
///
/// Errors: UNET_ERR_NULL, UNET_ERR_IO (cannot open or read; the detail names the OS error),
/// UNET_ERR_OUT_OF_MEMORY, and the errors of unet_model_from_bytes().
///
/// # Safety
/// `path` must be a NUL-terminated string; `out` must be valid for a write.
#[no_mangle]
pub unsafe extern "C" fn unet_model_load(
    path: *const c_char,
    out: *mut *mut unet_model,
) -> unet_status {
    guard(|| {
        // SAFETY: forwarded caller contract.
        let out = unsafe { Out::new(out, "out") }?;
        if path.is_null() {
            return Err(Failure::null("path"));
        }
        // SAFETY: non-NULL and NUL-terminated by the caller's contract.
        let path = unsafe { CStr::from_ptr(path) };
        let owned = OwnedModel::new(read_file(path)?)?;
        out.write(unet_model { source: Source::Owned(owned) }.into_raw());
        Ok(())
    })
}

/// Releases a model (and, for unet_model_load(), its bytes). NULL is ignored. No call using
/// the model may be running or start afterwards.
///
/// # Safety
/// `model` must be NULL or a handle from unet_model_from_bytes() / unet_model_load() not yet
/// freed.
#[no_mangle]
pub unsafe extern "C" fn unet_model_free(model: *mut unet_model) {
    let _ = guard(|| {
        // SAFETY: forwarded caller contract.
        unsafe { unet_model::free(model) };
        Ok(())
    });
}

/// Runs `f` on the model and stores its value in `*out` on success.
///
/// # Safety
/// `model` NULL or a live handle; `out` NULL or writable.
unsafe fn query<T>(
    model: *const unet_model,
    out: *mut T,
    f: impl FnOnce(&Model<'_>) -> Result<T, Failure>,
) -> unet_status {
    guard(|| {
        // SAFETY: forwarded caller contract.
        let m = unsafe { unet_model::borrow(model) }?;
        // SAFETY: forwarded caller contract.
        let out = unsafe { Out::new(out, "out") }?;
        out.write(f(m.model())?);
        Ok(())
    })
}

/// Input channels the model expects (`*out`).
///
/// # Safety
/// `model` must be a live handle (or NULL: UNET_ERR_NULL); `out` valid for a write (or NULL).
#[no_mangle]
pub unsafe extern "C" fn unet_model_in_channels(
    model: *const unet_model,
    out: *mut usize,
) -> unet_status {
    // SAFETY: forwarded caller contract.
    unsafe { query(model, out, |m| Ok(m.config().in_channels)) }
}

/// Output classes (logit channels) of the model (`*out`).
///
/// # Safety
/// As unet_model_in_channels().
#[no_mangle]
pub unsafe extern "C" fn unet_model_num_classes(
    model: *const unet_model,
    out: *mut usize,
) -> unet_status {
    // SAFETY: forwarded caller contract.
    unsafe { query(model, out, |m| Ok(m.config().num_classes)) }
}

/// Channels of the first level (`*out`); level `i` has `base_channels << i`.
///
/// # Safety
/// As unet_model_in_channels().
#[no_mangle]
pub unsafe extern "C" fn unet_model_base_channels(
    model: *const unet_model,
    out: *mut usize,
) -> unet_status {
    // SAFETY: forwarded caller contract.
    unsafe { query(model, out, |m| Ok(m.config().base_channels)) }
}

/// Resolution levels including the bottom (`*out`; the paper's network has 5).
///
/// # Safety
/// As unet_model_in_channels().
#[no_mangle]
pub unsafe extern "C" fn unet_model_levels(
    model: *const unet_model,
    out: *mut usize,
) -> unet_status {
    // SAFETY: forwarded caller contract.
    unsafe { query(model, out, |m| Ok(m.config().levels)) }
}

/// Padding mode of the convolutions (`*out`).
///
/// # Safety
/// As unet_model_in_channels().
#[no_mangle]
pub unsafe extern "C" fn unet_model_padding(
    model: *const unet_model,
    out: *mut unet_padding,
) -> unet_status {
    // SAFETY: forwarded caller contract.
    unsafe {
        query(model, out, |m| {
            Ok(match m.config().padding {
                Padding::Valid => unet_padding::UNET_PADDING_VALID,
                Padding::Same => unet_padding::UNET_PADDING_SAME,
            })
        })
    }
}

/// Pixels lost on each side between a tile's input and its output (`*out`): `3·2^levels − 4`
/// for valid padding (92 for the paper's network), 0 for same padding.
///
/// # Safety
/// As unet_model_in_channels().
#[no_mangle]
pub unsafe extern "C" fn unet_model_halo(model: *const unet_model, out: *mut usize) -> unet_status {
    // SAFETY: forwarded caller contract.
    unsafe { query(model, out, |m| Ok(m.geometry().halo())) }
}

/// Distance between consecutive legal tile sizes, `2^(levels−1)` (`*out`).
///
/// # Safety
/// As unet_model_in_channels().
#[no_mangle]
pub unsafe extern "C" fn unet_model_tile_step(
    model: *const unet_model,
    out: *mut usize,
) -> unet_status {
    // SAFETY: forwarded caller contract.
    unsafe { query(model, out, |m| Ok(m.geometry().step())) }
}

/// The smallest legal tile input size along one axis (`*out`).
///
/// # Safety
/// As unet_model_in_channels().
#[no_mangle]
pub unsafe extern "C" fn unet_model_min_tile(
    model: *const unet_model,
    out: *mut usize,
) -> unet_status {
    // SAFETY: forwarded caller contract.
    unsafe { query(model, out, |m| Ok(m.geometry().min_input())) }
}

/// Whether `n` is a legal tile input size along one axis (`*out`). Height and width are
/// independent: an `h × w` tile is legal iff both are.
///
/// # Safety
/// As unet_model_in_channels().
#[no_mangle]
pub unsafe extern "C" fn unet_model_is_legal_tile(
    model: *const unet_model,
    n: usize,
    out: *mut bool,
) -> unet_status {
    // SAFETY: forwarded caller contract.
    unsafe { query(model, out, |m| Ok(m.geometry().is_legal(n))) }
}

/// The smallest legal tile size `≥ n` (`*out`). UNET_ERR_OVERFLOW if there is none.
///
/// # Safety
/// As unet_model_in_channels().
#[no_mangle]
pub unsafe extern "C" fn unet_model_next_legal_tile(
    model: *const unet_model,
    n: usize,
    out: *mut usize,
) -> unet_status {
    // SAFETY: forwarded caller contract.
    unsafe {
        query(model, out, |m| {
            m.geometry().next_legal(n).ok_or_else(|| {
                Failure::new(unet_status::UNET_ERR_OVERFLOW, format!("no legal tile size >= {n}"))
            })
        })
    }
}

/// The largest legal tile size `≤ n` (`*out`). UNET_ERR_TILE_SIZE if `n` is below the
/// smallest legal size.
///
/// # Safety
/// As unet_model_in_channels().
#[no_mangle]
pub unsafe extern "C" fn unet_model_prev_legal_tile(
    model: *const unet_model,
    n: usize,
    out: *mut usize,
) -> unet_status {
    // SAFETY: forwarded caller contract.
    unsafe {
        query(model, out, |m| {
            m.geometry().prev_legal(n).ok_or_else(|| {
                Failure::new(unet_status::UNET_ERR_TILE_SIZE, format!("no legal tile size <= {n}"))
            })
        })
    }
}

/// The smallest legal tile input size whose output is at least `output` pixels along one axis
/// (`*out`). UNET_ERR_OVERFLOW if there is none.
///
/// # Safety
/// As unet_model_in_channels().
#[no_mangle]
pub unsafe extern "C" fn unet_model_tile_for_output(
    model: *const unet_model,
    output: usize,
    out: *mut usize,
) -> unet_status {
    // SAFETY: forwarded caller contract.
    unsafe {
        query(model, out, |m| {
            m.geometry().input_for_output(output).ok_or_else(|| {
                Failure::new(
                    unet_status::UNET_ERR_OVERFLOW,
                    format!("no legal tile gives an output of {output} pixels"),
                )
            })
        })
    }
}

/// Output size `*out_h × *out_w` of an `h × w` input tile. UNET_ERR_TILE_SIZE if the tile is
/// not legal. Both outputs are written only on success.
///
/// # Safety
/// `model` a live handle or NULL; `out_h`, `out_w` valid for writes or NULL.
#[no_mangle]
pub unsafe extern "C" fn unet_model_output_size(
    model: *const unet_model,
    h: usize,
    w: usize,
    out_h: *mut usize,
    out_w: *mut usize,
) -> unet_status {
    guard(|| {
        // SAFETY: forwarded caller contract.
        let m = unsafe { unet_model::borrow(model) }?;
        // SAFETY: forwarded caller contract.
        let (oh, ow) = unsafe { (Out::new(out_h, "out_h")?, Out::new(out_w, "out_w")?) };
        let (h2, w2) = m.model().geometry().output_size(h, w)?;
        oh.write(h2);
        ow.write(w2);
        Ok(())
    })
}

/// Exact scratch length, in f32 elements, that unet_model_run_tile() needs for an `h × w`
/// tile (`*out`). UNET_ERR_TILE_SIZE if the tile is not legal, UNET_ERR_OVERFLOW if it is
/// too large to address.
///
/// # Safety
/// As unet_model_in_channels().
#[no_mangle]
pub unsafe extern "C" fn unet_model_tile_scratch_len(
    model: *const unet_model,
    h: usize,
    w: usize,
    out: *mut usize,
) -> unet_status {
    // SAFETY: forwarded caller contract.
    unsafe { query(model, out, |m| Ok(m.plan(h, w)?.scratch_len())) }
}

/// As unet_model_tile_scratch_len(), in bytes (`4 ×` the f32 count).
///
/// # Safety
/// As unet_model_in_channels().
#[no_mangle]
pub unsafe extern "C" fn unet_model_tile_scratch_bytes(
    model: *const unet_model,
    h: usize,
    w: usize,
    out: *mut usize,
) -> unet_status {
    // SAFETY: forwarded caller contract.
    unsafe {
        query(model, out, |m| {
            m.plan(h, w)?.scratch_len().checked_mul(4).ok_or_else(|| {
                Failure::new(unet_status::UNET_ERR_OVERFLOW, "scratch bytes overflow size_t")
            })
        })
    }
}

/// Copies the raw value of the model file's `__metadata__` entry `key` (NUL-terminated) into
/// `buf` (NUL-terminated; JSON escapes are left undecoded) and stores its full length (without
/// the NUL) in `*out_len`. If `buf_len` is too small nothing is copied, `*out_len` still gets
/// the needed length, and UNET_ERR_BUFFER_TOO_SMALL is returned, so a caller can ask with
/// `buf_len = 0` first (`buf` may then be NULL). UNET_ERR_INVALID_ARGUMENT if the key is
/// absent. Examples of keys: "class_names", "normalization", and training provenance.
///
/// # Safety
/// `model` a live handle; `key` NUL-terminated; `buf` valid for writes of `buf_len` bytes (or
/// NULL if `buf_len` is 0); `out_len` valid for a write.
#[no_mangle]
pub unsafe extern "C" fn unet_model_metadata(
    model: *const unet_model,
    key: *const c_char,
    buf: *mut c_char,
    buf_len: usize,
    out_len: *mut usize,
) -> unet_status {
    guard(|| {
        // SAFETY: forwarded caller contract.
        let m = unsafe { unet_model::borrow(model) }?;
        // SAFETY: forwarded caller contract.
        let out_len = unsafe { Out::new(out_len, "out_len") }?;
        if key.is_null() {
            return Err(Failure::null("key"));
        }
        // SAFETY: non-NULL and NUL-terminated by the caller's contract.
        let key = unsafe { CStr::from_ptr(key) };
        let key_str = key.to_str().map_err(|_| Failure::invalid("key is not valid UTF-8"))?;
        let value = m
            .model()
            .metadata(key_str)
            .ok_or_else(|| Failure::invalid(format!("no metadata key '{key_str}'")))?
            .raw();
        // The header's length is already checked to fit memory, so `+ 1` cannot overflow.
        let needed = value.len() + 1;
        out_len.write(value.len());
        if buf_len < needed {
            return Err(Failure::new(
                unet_status::UNET_ERR_BUFFER_TOO_SMALL,
                format!("metadata '{key_str}' needs {needed} bytes, buffer has {buf_len}"),
            ));
        }
        if buf.is_null() {
            return Err(Failure::null("buf"));
        }
        // SAFETY: `buf` is non-NULL and writable for `buf_len ≥ needed` bytes (caller's
        // contract); `value` lies in the model bytes, which the caller does not let overlap an
        // output buffer it hands us for writing.
        unsafe {
            std::ptr::copy_nonoverlapping(value.as_ptr(), buf.cast::<u8>(), value.len());
            *buf.add(value.len()) = 0;
        }
        Ok(())
    })
}
