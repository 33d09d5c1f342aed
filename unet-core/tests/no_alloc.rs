//! unet-core never allocates: a counting global allocator wraps `System` and every heap call made
//! by the current thread while a measurement is running is counted. Loading a model
//! ([`Model::from_safetensors`], also on files it refuses), planning ([`Model::plan`], also for
//! illegal sizes) and the forward pass for every [`Output`] kind must count zero, with the 3×3
//! convolutions chosen automatically, forced direct and forced Winograd.
//!
//! All bytes and buffers are prepared before the count starts. Only the measuring thread's calls
//! are counted (thread-local flag and counter), so tests running in parallel cannot disturb it.

use std::path::PathBuf;

use unet_core::{ConvAlgo, Model, Output};

mod counting_alloc;

use counting_alloc::heap_calls;

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
        let algos = [ConvAlgo::Auto, ConvAlgo::Direct, ConvAlgo::Winograd];
        let plan = probe.plan(h, w).expect("legal tile");
        let len = algos
            .iter()
            .map(|&a| probe.plan_with(h, w, a).expect("legal tile").scratch_len())
            .max()
            .unwrap();
        let input: Vec<f32> = (0..plan.input_len())
            .map(|i| (i % 17) as f32 / 17.0)
            .collect();
        let mut scratch = vec![0.0f32; len];
        let mut logits = vec![0.0f32; plan.output_len()];
        let mut probs = vec![0.0f32; plan.output_len()];
        let mut l8 = vec![0u8; plan.label_len()];
        let mut l16 = vec![0u16; plan.label_len()];

        let (r, calls) = heap_calls(|| -> Result<(), unet_core::Error> {
            let model = Model::from_safetensors(&bytes)?;
            for algo in algos {
                let plan = model.plan_with(h, w, algo)?;
                model.forward(&plan, &input, &mut scratch, Output::Logits(&mut logits))?;
                model.forward(
                    &plan,
                    &input,
                    &mut scratch,
                    Output::Probabilities(&mut probs),
                )?;
                model.forward(&plan, &input, &mut scratch, Output::Labels8(&mut l8))?;
                model.forward(&plan, &input, &mut scratch, Output::Labels16(&mut l16))?;
            }
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
