//! NaN and infinity in the input, through the C ABI (the `extern "C"` functions, called as C
//! calls them), as include/unet.h documents:
//! - unet_model_run_tile() takes already-normalised floats: a NaN propagates to the logits and
//!   probabilities of the output pixels whose receptive field holds it, ±inf may; pixels outside
//!   it stay finite; a label map gives a NaN pixel the first class whose logit is NaN; UNET_OK.
//! - unet_model_segment_frame() on f32 samples with percentile normalisation refuses a
//!   non-finite sample with UNET_ERR_INVALID_ARGUMENT, leaves the output untouched and says why
//!   in unet_last_error(); without percentiles (normalisation "none") NaN propagates as for a
//!   tile.

use std::ffi::{c_char, c_void, CStr};
use std::ptr::{null, null_mut};

use unet::frame::unet_model_segment_frame;
use unet::model::{unet_model_free, unet_model_from_bytes, unet_model_output_size};
use unet::tile::unet_model_run_tile;
use unet::{unet_last_error, unet_model, unet_output, unet_sample, unet_status};
use unet_core::{synth, Config, DType, Padding};

const CLASSES: usize = 3;

fn cfg() -> Config {
    Config {
        in_channels: 1,
        num_classes: CLASSES,
        base_channels: 2,
        levels: 2,
        padding: Padding::Valid,
    }
}

/// A loaded model over `bytes` (which must outlive it).
fn load(bytes: &[u8]) -> *mut unet_model {
    let mut m = null_mut();
    // SAFETY: bytes outlive the model (freed by the caller before `bytes` drops); m writable.
    let s = unsafe { unet_model_from_bytes(bytes.as_ptr(), bytes.len(), &mut m) };
    assert_eq!(s, unet_status::UNET_OK);
    m
}

fn last_error() -> String {
    let mut buf = [0 as c_char; 256];
    let mut n = 0usize;
    // SAFETY: buf writable for its length; n writable.
    assert_eq!(
        unsafe { unet_last_error(buf.as_mut_ptr(), buf.len(), &mut n) },
        unet_status::UNET_OK
    );
    // SAFETY: NUL-terminated by unet_last_error.
    unsafe { CStr::from_ptr(buf.as_ptr()) }
        .to_string_lossy()
        .into_owned()
}

/// Runs a tile; returns the status and the output.
fn run_tile<T: Copy>(
    m: *const unet_model,
    (h, w): (usize, usize),
    input: &[f32],
    kind: unet_output,
    out: &mut [T],
) -> unet_status {
    // SAFETY: input/out valid for their lengths; scratch NULL with length 0 (libunet allocates).
    unsafe {
        unet_model_run_tile(
            m,
            h,
            w,
            input.as_ptr(),
            input.len(),
            kind as u32,
            out.as_mut_ptr().cast::<c_void>(),
            out.len(),
            null_mut(),
            0,
        )
    }
}

#[test]
fn tile_nan_propagates_to_its_receptive_field() {
    let bytes = synth::random_model(&cfg(), DType::F32, 5, "none");
    let m = load(&bytes);
    let (h, w) = (44, 44);
    let (mut oh, mut ow) = (0, 0);
    // SAFETY: live model; outputs writable.
    assert_eq!(
        unsafe { unet_model_output_size(m, h, w, &mut oh, &mut ow) },
        unet_status::UNET_OK
    );
    let px = oh * ow;
    for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        let mut input = synth::random_input(h * w, 9);
        input[0] = bad; // top-left input pixel: reaches only top-left output pixels
        let mut logits = vec![0f32; CLASSES * px];
        assert_eq!(
            run_tile(
                m,
                (h, w),
                &input,
                unet_output::UNET_OUTPUT_LOGITS,
                &mut logits
            ),
            unet_status::UNET_OK
        );
        let bad_px: Vec<usize> = (0..px)
            .filter(|&p| (0..CLASSES).any(|c| !logits[c * px + p].is_finite()))
            .collect();
        // NaN survives every layer; ±inf may be absorbed (a ReLU maps −inf to 0), so only NaN
        // is required to arrive.
        if bad.is_nan() {
            assert!(bad_px.contains(&0), "NaN must reach output pixel (0, 0)");
        }
        assert!(
            bad_px.len() < px,
            "one {bad} pixel must not poison the tile"
        );
        assert!((0..CLASSES).all(|c| logits[c * px + px - 1].is_finite()));

        let mut probs = vec![0f32; CLASSES * px];
        assert_eq!(
            run_tile(
                m,
                (h, w),
                &input,
                unet_output::UNET_OUTPUT_PROBABILITIES,
                &mut probs
            ),
            unet_status::UNET_OK
        );
        let last: f32 = (0..CLASSES).map(|c| probs[c * px + px - 1]).sum();
        assert!(
            (last - 1.0).abs() < 1e-5,
            "finite pixel's probabilities sum to {last}"
        );

        let mut labels = vec![0xAAu8; px];
        assert_eq!(
            run_tile(
                m,
                (h, w),
                &input,
                unet_output::UNET_OUTPUT_LABELS_U8,
                &mut labels
            ),
            unet_status::UNET_OK
        );
        assert!(labels.iter().all(|&l| usize::from(l) < CLASSES));
        for &p in &bad_px {
            if let Some(first_nan) = (0..CLASSES).find(|&c| logits[c * px + p].is_nan()) {
                assert_eq!(usize::from(labels[p]), first_nan, "pixel {p}");
            }
        }
    }
    // SAFETY: live handle, freed once.
    unsafe { unet_model_free(m) };
}

/// Segments an `h × w` f32 frame with 4 threads into labels (`u8`) or logits (`f32`).
fn segment<T: Copy>(
    m: *const unet_model,
    (h, w): (usize, usize),
    px: &[f32],
    kind: unet_output,
    out: &mut [T],
) -> unet_status {
    // SAFETY: px/out valid for their lengths; options NULL (defaults); scratch NULL/0.
    unsafe {
        unet_model_segment_frame(
            m,
            h,
            w,
            0,
            unet_sample::UNET_SAMPLE_F32 as u32,
            px.as_ptr().cast::<c_void>(),
            px.len(),
            null(),
            kind as u32,
            out.as_mut_ptr().cast::<c_void>(),
            out.len(),
            null_mut(),
            0,
        )
    }
}

#[test]
fn frame_with_percentiles_refuses_non_finite_samples() {
    let bytes = synth::random_model(&cfg(), DType::F32, 6, "percentile:1:99.8");
    let m = load(&bytes);
    let (h, w) = (30, 41);
    for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        let mut px: Vec<f32> = synth::random_input(h * w, 2)
            .iter()
            .map(|v| v * 1000.0)
            .collect();
        px[h * w / 2] = bad;
        let mut labels = vec![0xAAu8; h * w];
        assert_eq!(
            segment(
                m,
                (h, w),
                &px,
                unet_output::UNET_OUTPUT_LABELS_U8,
                &mut labels
            ),
            unet_status::UNET_ERR_INVALID_ARGUMENT,
            "{bad}"
        );
        assert!(labels.iter().all(|&l| l == 0xAA), "output written on error");
        let msg = last_error();
        assert!(msg.contains("finite"), "detail {msg:?}");
        // The same frame with the sample made finite succeeds.
        px[h * w / 2] = 5.0;
        assert_eq!(
            segment(
                m,
                (h, w),
                &px,
                unet_output::UNET_OUTPUT_LABELS_U8,
                &mut labels
            ),
            unet_status::UNET_OK
        );
        assert!(labels.iter().all(|&l| usize::from(l) < CLASSES));
    }
    // SAFETY: live handle, freed once.
    unsafe { unet_model_free(m) };
}

#[test]
fn frame_without_percentiles_propagates_nan_locally() {
    let bytes = synth::random_model(&cfg(), DType::F32, 7, "none");
    let m = load(&bytes);
    let (h, w) = (60, 60);
    let mut px = synth::random_input(h * w, 4);
    px[0] = f32::NAN; // corner: mirrored context keeps it near the top-left
    let mut logits = vec![0f32; CLASSES * h * w];
    assert_eq!(
        segment(m, (h, w), &px, unet_output::UNET_OUTPUT_LOGITS, &mut logits),
        unet_status::UNET_OK
    );
    let n = h * w;
    assert!(
        (0..CLASSES).any(|c| logits[c * n].is_nan()),
        "NaN reaches (0, 0)"
    );
    assert!(
        (0..CLASSES).all(|c| logits[c * n + n - 1].is_finite()),
        "the far corner stays finite"
    );
    // SAFETY: live handle, freed once.
    unsafe { unet_model_free(m) };
}
