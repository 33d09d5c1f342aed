//! Whole-frame segmentation never allocates: a counting global allocator (as in no_alloc.rs)
//! sees zero heap calls from the measuring thread in `Model::frame_plan` (both tile choices,
//! also when refusing) and `Model::segment` (every sample type and output kind, percentile
//! statistics included, also when refusing) with the `Sequential` executor. (An executor is
//! the caller's: `RayonExecutor` itself allocates rayon's job boxes; unet-core does not.)
#![allow(clippy::result_large_err)]

mod frame_support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use frame_support::{config, model_bytes};
use unet_core::{
    FrameInput, FrameOptions, FrameOutput, FrameView, Model, Padding, SampleType, Sequential,
    TileChoice,
};

struct Counting;

thread_local! {
    static ACTIVE: Cell<bool> = const { Cell::new(false) };
    static CALLS: Cell<usize> = const { Cell::new(0) };
}

fn note() {
    if ACTIVE.try_with(Cell::get).unwrap_or(false) {
        let _ = CALLS.try_with(|c| c.set(c.get() + 1));
    }
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged; counting
// touches only const-initialised thread-locals.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note();
        // SAFETY: forwarded contract of `GlobalAlloc::alloc`.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note();
        // SAFETY: forwarded contract of `GlobalAlloc::alloc_zeroed`.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note();
        // SAFETY: forwarded contract of `GlobalAlloc::realloc`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        note();
        // SAFETY: forwarded contract of `GlobalAlloc::dealloc`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn heap_calls<R>(f: impl FnOnce() -> R) -> (R, usize) {
    CALLS.with(|c| c.set(0));
    ACTIVE.with(|a| a.set(true));
    let r = f();
    ACTIVE.with(|a| a.set(false));
    (r, CALLS.with(Cell::get))
}

#[test]
fn the_counter_counts() {
    let (v, n) = heap_calls(|| std::hint::black_box(vec![1u8; 64]));
    drop(v);
    assert!(n >= 1);
}

#[test]
fn frame_plan_and_segment_do_not_allocate() {
    for (norm, padding) in [
        ("percentile:1:99.8", Padding::Valid),
        ("mean_std:9:3", Padding::Same),
    ] {
        let cfg = config(1, 3, 2, 2, padding);
        let bytes = model_bytes(&cfg, norm, 4);
        let model = Model::from_safetensors(&bytes).unwrap();
        let (h, w) = (31, 26);
        let v8: Vec<u8> = (0..h * w).map(|i| (i * 7 % 251) as u8).collect();
        let v16: Vec<u16> = v8.iter().map(|&v| v as u16 * 3).collect();
        let vf: Vec<f32> = v8.iter().map(|&v| v as f32 * 0.5).collect();
        let mut logits = vec![0f32; 3 * h * w];
        let mut l8 = vec![0u8; h * w];
        let mut l16 = vec![0u16; h * w];
        for sample in [SampleType::U8, SampleType::U16, SampleType::F32] {
            let budget = FrameOptions {
                tile: TileChoice::Budget(4 << 20),
                workers: 1,
                sample,
            };
            let (plan, n) = heap_calls(|| model.frame_plan(h, w, 1, budget));
            let plan = plan.unwrap();
            assert_eq!(n, 0, "frame_plan (budget) allocated");
            let explicit = FrameOptions {
                tile: TileChoice::Explicit(45, 44),
                ..budget
            };
            let (r, n) = heap_calls(|| model.frame_plan(h, w, 1, explicit));
            assert!(r.is_err());
            assert_eq!(n, 0, "refused frame_plan allocated");
            let mut scratch = vec![0f32; plan.scratch_len()];
            let input = match sample {
                SampleType::U8 => FrameInput::U8(FrameView::packed(&v8[..], 1, h, w).unwrap()),
                SampleType::U16 => FrameInput::U16(FrameView::packed(&v16[..], 1, h, w).unwrap()),
                SampleType::F32 => FrameInput::F32(FrameView::packed(&vf[..], 1, h, w).unwrap()),
            };
            for kind in 0..4 {
                let out = match kind {
                    0 => FrameOutput::Logits(&mut logits),
                    1 => FrameOutput::Probabilities(&mut logits),
                    2 => FrameOutput::Labels8(&mut l8),
                    _ => FrameOutput::Labels16(&mut l16),
                };
                let (r, n) =
                    heap_calls(|| model.segment(&plan, input, &mut scratch, out, &Sequential));
                r.unwrap();
                assert_eq!(
                    n, 0,
                    "segment allocated ({norm}, {sample:?}, output {kind})"
                );
            }
            let short = plan.scratch_len() - 1;
            let (r, n) = heap_calls(|| {
                model.segment(
                    &plan,
                    input,
                    &mut scratch[..short],
                    FrameOutput::Labels8(&mut l8),
                    &Sequential,
                )
            });
            assert!(r.is_err());
            assert_eq!(n, 0, "refused segment allocated");
        }
    }
}
