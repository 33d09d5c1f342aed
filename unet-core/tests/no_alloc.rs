//! unet-core never allocates: a counting global allocator wraps `System` and every heap call made
//! by the current thread while a measurement is running is counted. Loading a model
//! ([`Model::from_safetensors`], also on files it refuses), planning ([`Model::plan`], also for
//! illegal sizes) and the forward pass for every [`Output`] kind must count zero.
//!
//! All bytes and buffers are prepared before the count starts. Only the measuring thread's calls
//! are counted (thread-local flag and counter), so tests running in parallel cannot disturb it.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::path::PathBuf;

use unet_core::{Model, Output};

struct Counting;

thread_local! {
    // `const` initialisation: using these never allocates (no lazy init, no destructor). Both
    // are per thread, so tests running in parallel cannot disturb each other's counts.
    static ACTIVE: Cell<bool> = const { Cell::new(false) };
    static CALLS: Cell<usize> = const { Cell::new(0) };
}

fn note() {
    if ACTIVE.try_with(Cell::get).unwrap_or(false) {
        let _ = CALLS.try_with(|c| c.set(c.get() + 1));
    }
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged, so `System`'s
// guarantees hold; the counting itself touches only an atomic and a const thread-local.
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

/// Runs `f` and returns its result with the number of heap calls this thread made inside it.
fn heap_calls<R>(f: impl FnOnce() -> R) -> (R, usize) {
    CALLS.with(|c| c.set(0));
    ACTIVE.with(|a| a.set(true));
    let r = f();
    ACTIVE.with(|a| a.set(false));
    (r, CALLS.with(Cell::get))
}

fn fixture(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/core")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn the_counter_counts() {
    // Guards against a vacuous test: an allocation inside the measurement is seen.
    let (v, n) = heap_calls(|| std::hint::black_box(vec![1u8; 64]));
    drop(v);
    assert!(n >= 1);
}

/// (model file, input h, input w) for every fixture model.
fn models() -> Vec<(String, usize, usize)> {
    let mut out = Vec::new();
    for (case, h, w) in [
        ("case_a", 60, 76),
        ("case_b", 24, 40),
        ("case_c", 13, 17),
        ("case_d", 100, 108),
        ("case_e", 18, 26),
    ] {
        for d in ["f32", "f16", "bf16"] {
            out.push((format!("{case}.{d}.safetensors"), h, w));
        }
    }
    out
}

#[test]
// unet-core's `Error` is large on purpose: `Copy` and heap-free (see its lib.rs).
#[allow(clippy::result_large_err)]
fn load_plan_and_forward_never_allocate() {
    for (file, h, w) in models() {
        let bytes = fixture(&file);
        // Sizes come from a first, unmeasured load; the buffers are allocated before measuring.
        let probe = Model::from_safetensors(&bytes).unwrap_or_else(|e| panic!("{file}: {e}"));
        let plan = probe.plan(h, w).expect("legal tile");
        let input: Vec<f32> = (0..plan.input_len())
            .map(|i| (i % 17) as f32 / 17.0)
            .collect();
        let mut scratch = vec![0.0f32; plan.scratch_len()];
        let mut logits = vec![0.0f32; plan.output_len()];
        let mut probs = vec![0.0f32; plan.output_len()];
        let mut l8 = vec![0u8; plan.label_len()];
        let mut l16 = vec![0u16; plan.label_len()];

        let (r, calls) = heap_calls(|| -> Result<(), unet_core::Error> {
            let model = Model::from_safetensors(&bytes)?;
            let plan = model.plan(h, w)?;
            model.forward(&plan, &input, &mut scratch, Output::Logits(&mut logits))?;
            model.forward(
                &plan,
                &input,
                &mut scratch,
                Output::Probabilities(&mut probs),
            )?;
            model.forward(&plan, &input, &mut scratch, Output::Labels8(&mut l8))?;
            model.forward(&plan, &input, &mut scratch, Output::Labels16(&mut l16))?;
            Ok(())
        });
        r.unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(
            calls, 0,
            "{file}: {calls} heap calls during load/plan/forward"
        );
        // The run did produce something (guards against a measured closure that did nothing).
        assert!(logits.iter().all(|v| v.is_finite()) && probs.iter().any(|&p| p > 0.0));
    }
}

#[test]
fn errors_never_allocate() {
    let good = fixture("case_a.f32.safetensors");
    let mut truncated = good.clone();
    truncated.truncate(good.len() / 2);
    let mut bad_header = good.clone();
    bad_header[8] = b'[';
    let garbage = vec![0xA5u8; 4096];
    let model = Model::from_safetensors(&good).expect("loads");
    let plan = model.plan(60, 76).expect("legal");
    let input = vec![0.0f32; plan.input_len()];
    let mut scratch = vec![0.0f32; plan.scratch_len()];
    let mut short = vec![0.0f32; plan.output_len() - 1];

    let (errors, calls) = heap_calls(|| {
        [
            Model::from_safetensors(&truncated).is_err(),
            Model::from_safetensors(&bad_header).is_err(),
            Model::from_safetensors(&garbage).is_err(),
            Model::from_safetensors(&[]).is_err(),
            model.plan(61, 76).is_err(),
            model.plan(0, 0).is_err(),
            model.plan(usize::MAX, usize::MAX).is_err(),
            model
                .forward(&plan, &input, &mut scratch, Output::Logits(&mut short))
                .is_err(),
            model
                .forward(
                    &plan,
                    &input[1..],
                    &mut scratch,
                    Output::Labels8(&mut [0u8; 4]),
                )
                .is_err(),
        ]
    });
    assert_eq!(errors, [true; 9], "every bad call must fail");
    assert_eq!(calls, 0, "{calls} heap calls on error paths");
}
