//! Segmenting a frame through libunet's C ABI (the `unet-ffi` crate's `extern "C"` functions,
//! called from Rust exactly as a C program calls them), for the demo's cross-check against the
//! trainer's own prediction.

use std::ffi::{c_void, CString};
use std::path::Path;

use ndarray::Array2;
use unet::{unet_frame_options, unet_output, unet_sample, unet_status, unet_status_message};

/// What one libunet frame segmentation produced.
pub struct FrameResult {
    /// Arg-max class per pixel.
    pub labels: Array2<u8>,
    /// Wall time of `unet_model_segment_frame` (scratch allocation excluded).
    pub seconds: f64,
    /// Tile input size libunet chose.
    pub tile: (usize, usize),
    /// Scratch bytes of the call.
    pub scratch_bytes: usize,
}

fn check(status: unet_status, what: &str) -> Result<(), String> {
    if status == unet_status::UNET_OK {
        return Ok(());
    }
    // SAFETY: unet_status_message returns a static NUL-terminated string for any value.
    let msg = unsafe { std::ffi::CStr::from_ptr(unet_status_message(status as i32)) };
    let mut buf = [0 as std::ffi::c_char; 512];
    let mut len = 0usize;
    // SAFETY: `buf` is writable for its length and `len` for one write.
    let detail = if unsafe { unet::unet_last_error(buf.as_mut_ptr(), buf.len(), &mut len) }
        == unet_status::UNET_OK
    {
        // SAFETY: on success the buffer holds a NUL-terminated string.
        unsafe { std::ffi::CStr::from_ptr(buf.as_ptr()) }
            .to_string_lossy()
            .into_owned()
    } else {
        String::new()
    };
    Err(format!(
        "libunet {what}: {} {detail}",
        msg.to_string_lossy()
    ))
}

/// An owned model handle, freed on drop.
struct Handle(*mut unet::unet_model);

impl Drop for Handle {
    fn drop(&mut self) {
        // SAFETY: the pointer came from unet_model_load and is freed exactly once.
        unsafe { unet::model::unet_model_free(self.0) }
    }
}

/// Segments a `height × width` frame of 16-bit samples (row-major) with the model file at
/// `path`, `threads` tile workers, automatic tile size; returns the label map.
pub fn segment_u16(
    path: &Path,
    pixels: &[u16],
    height: usize,
    width: usize,
    threads: usize,
) -> Result<FrameResult, String> {
    segment(
        path,
        pixels.as_ptr().cast(),
        pixels.len(),
        unet_sample::UNET_SAMPLE_U16,
        height,
        width,
        threads,
    )
}

/// As [`segment_u16`] for 8-bit samples.
pub fn segment_u8(
    path: &Path,
    pixels: &[u8],
    height: usize,
    width: usize,
    threads: usize,
) -> Result<FrameResult, String> {
    segment(
        path,
        pixels.as_ptr().cast(),
        pixels.len(),
        unet_sample::UNET_SAMPLE_U8,
        height,
        width,
        threads,
    )
}

fn segment(
    path: &Path,
    pixels: *const c_void,
    pixels_len: usize,
    sample: unet_sample,
    height: usize,
    width: usize,
    threads: usize,
) -> Result<FrameResult, String> {
    let c_path = CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|_| format!("{}: path holds a NUL byte", path.display()))?;
    let mut raw: *mut unet::unet_model = std::ptr::null_mut();
    // SAFETY: c_path is NUL-terminated and outlives the call; `raw` is valid for a write.
    check(
        unsafe { unet::model::unet_model_load(c_path.as_ptr(), &mut raw) },
        "load",
    )?;
    let model = Handle(raw);
    let mut options: unet_frame_options = unet::frame::unet_frame_options_default();
    options.threads = threads.max(1);
    let mut scratch_len = 0usize;
    let (mut th, mut tw) = (0usize, 0usize);
    // SAFETY: live handle, readable options, writable outputs.
    check(
        unsafe {
            unet::frame::unet_model_frame_scratch_len(
                model.0,
                height,
                width,
                sample as u32,
                &options,
                &mut scratch_len,
            )
        },
        "scratch size",
    )?;
    // SAFETY: as above.
    check(
        unsafe {
            unet::frame::unet_model_frame_tile_size(
                model.0,
                height,
                width,
                sample as u32,
                &options,
                &mut th,
                &mut tw,
            )
        },
        "tile size",
    )?;
    let mut scratch = vec![0f32; scratch_len];
    let mut labels = vec![0u8; height * width];
    let t = std::time::Instant::now();
    // SAFETY: `pixels` is readable for `pixels_len` samples of the named type (the callers
    // pass a slice of that type); `labels` and `scratch` are writable for the lengths given;
    // nothing else touches them during the call.
    check(
        unsafe {
            unet::frame::unet_model_segment_frame(
                model.0,
                height,
                width,
                0,
                sample as u32,
                pixels,
                pixels_len,
                &options,
                unet_output::UNET_OUTPUT_LABELS_U8 as u32,
                labels.as_mut_ptr().cast(),
                labels.len(),
                scratch.as_mut_ptr(),
                scratch.len(),
            )
        },
        "segment frame",
    )?;
    let seconds = t.elapsed().as_secs_f64();
    Ok(FrameResult {
        labels: Array2::from_shape_vec((height, width), labels).map_err(|e| e.to_string())?,
        seconds,
        tile: (th, tw),
        scratch_bytes: scratch_len * 4,
    })
}
