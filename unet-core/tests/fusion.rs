//! Levels run in bands of rows (`unet_core::Plan::with_fusion`) give the bits of the same
//! network run layer by layer: on random models whose levels are narrow enough to be banded,
//! tiles of several shapes (bands that end at the map's edge mid-tile, maps shorter than a
//! band), both convolution algorithms, 1 to 4 workers (also one after another, so that the first
//! steals the others' bands), and every output kind. The layer-by-layer
//! path itself is checked against PyTorch and naive oracles elsewhere.
#![allow(clippy::result_large_err)]

mod frame_support;

use frame_support::Threads;
use unet_core::{
    synth, Config, ConvAlgo, DType, Executor, Model, Output, Padding, Plan, Sequential,
};

/// Runs the jobs one after another on the calling thread, job `j` as worker `j mod n`: the first
/// worker finishes its run of bands before the others start theirs, so it steals from them
/// (the stealing path, deterministically).
struct InOrder(usize);

// SAFETY: one job at a time, each `j` once, worker indices below `n`, all before returning.
unsafe impl Executor for InOrder {
    fn workers(&self) -> usize {
        self.0
    }
    fn run(&self, jobs: usize, job: &(dyn Fn(usize, usize) + Sync)) {
        for j in 0..jobs {
            job(j, j % self.0);
        }
    }
}

fn run(model: &Model<'_>, exec: &dyn Executor, plan: &Plan, input: &[f32]) -> (Vec<f32>, Vec<u8>) {
    // NaN-filled scratch and output: nothing may be read before it is written, and every
    // output element must be written.
    let mut scratch = vec![f32::NAN; plan.scratch_len()];
    let mut out = vec![f32::NAN; plan.output_len()];
    model
        .forward_with(exec, plan, input, &mut scratch, Output::Logits(&mut out))
        .unwrap();
    let mut labels = vec![255u8; plan.label_len()];
    model
        .forward_with(
            exec,
            plan,
            input,
            &mut scratch,
            Output::Labels8(&mut labels),
        )
        .unwrap();
    (out, labels)
}

fn same_bits(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
}

#[test]
fn bands_give_the_bits_of_layer_by_layer() {
    let cases = [
        // (levels, base, in, classes, h, w)
        (2, 8, 1, 2, 28, 28),
        (3, 8, 1, 3, 108, 60),
        (3, 16, 3, 2, 92, 124),
        // The top level wider than its bands are tall; several bands per worker.
        (4, 8, 1, 2, 188, 92),
        // 32 channels at the top: only the top level banded; the next (64) layer by layer.
        (2, 32, 1, 2, 60, 44),
    ];
    for (i, &(levels, base, in_c, classes, h, w)) in cases.iter().enumerate() {
        let cfg = Config {
            in_channels: in_c,
            num_classes: classes,
            base_channels: base,
            levels,
            padding: Padding::Valid,
        };
        let bytes = synth::random_model(&cfg, DType::F32, 40 + i as u64, "none");
        let model = Model::from_safetensors(&bytes).unwrap();
        for algo in [ConvAlgo::Auto, ConvAlgo::Direct] {
            let flat = Plan::with_fusion(&cfg, h, w, algo, 1, false).unwrap();
            assert_eq!(flat.banded_levels(), (0, 0));
            let input = synth::random_input(flat.input_len(), i as u64);
            let (want, want_labels) = run(&model, &Sequential, &flat, &input);
            assert!(want.iter().all(|v| v.is_finite()), "case {i}");
            for workers in [1, 2, 3, 4] {
                let plan = Plan::with_fusion(&cfg, h, w, algo, workers, true).unwrap();
                let (enc, dec) = plan.banded_levels();
                assert!(enc >= 1 && dec >= 1, "case {i}: nothing banded");
                assert!(enc <= levels && dec < levels);
                let exec: Box<dyn Executor> = if workers == 1 {
                    Box::new(Sequential)
                } else {
                    Box::new(Threads(workers))
                };
                let (got, labels) = run(&model, &*exec, &plan, &input);
                let what = format!("case {i}, {algo:?}, {workers} workers");
                assert!(same_bits(&want, &got), "{what}");
                assert_eq!(want_labels, labels, "{what}");
                let (got, _) = run(&model, &InOrder(workers), &plan, &input);
                assert!(same_bits(&want, &got), "{what}, in order (stealing)");
            }
        }
    }
}

#[test]
fn only_narrow_valid_levels_are_banded() {
    let cfg = |base, padding| Config {
        in_channels: 1,
        num_classes: 2,
        base_channels: base,
        levels: 5,
        padding,
    };
    // base 16: the 16- and 32-channel levels (encoder 0, 1; decoder 0, 1).
    let p = Plan::new(&cfg(16, Padding::Valid), 572, 572).unwrap();
    assert_eq!(p.banded_levels(), (2, 2));
    // The paper's network: none (64 channels at the top).
    let p = Plan::new(&cfg(64, Padding::Valid), 572, 572).unwrap();
    assert_eq!(p.banded_levels(), (0, 0));
    // 'same' padding: none.
    let p = Plan::new(&cfg(16, Padding::Same), 64, 64).unwrap();
    assert_eq!(p.banded_levels(), (0, 0));
}

#[test]
fn banded_plans_need_less_scratch() {
    let cfg = Config {
        in_channels: 1,
        num_classes: 2,
        base_channels: 16,
        levels: 5,
        padding: Padding::Valid,
    };
    for workers in [1, 2] {
        let flat = Plan::with_fusion(&cfg, 572, 572, ConvAlgo::Auto, workers, false).unwrap();
        let bands = Plan::with_fusion(&cfg, 572, 572, ConvAlgo::Auto, workers, true).unwrap();
        // Fewer whole maps alive at once (the rings and the filters' transforms are small).
        assert!(
            bands.scratch_len() < flat.scratch_len()
                && bands.scratch_lower_bound() < flat.scratch_lower_bound(),
            "{workers} workers: {} vs {}",
            bands.scratch_len(),
            flat.scratch_len()
        );
    }
}
