//! Documented behaviour on hostile values and sizes through the public API:
//! - NaN/inf in a tile's input propagate: the logits/probabilities of every output pixel whose
//!   receptive field holds one are NaN (or non-finite), others stay finite; a label map gives
//!   such a pixel the first class whose logit is NaN (class 0 when all are NaN).
//! - Sizes that overflow are refused with an error, never a panic.

use unet_core::{synth, Config, DType, Error, Model, Output, Padding};

fn model_bytes(levels: usize) -> Vec<u8> {
    let cfg = Config {
        in_channels: 1,
        num_classes: 3,
        base_channels: 2,
        levels,
        padding: Padding::Valid,
    };
    synth::random_model(&cfg, DType::F32, 11, "none")
}

#[test]
fn nan_input_propagates_to_its_receptive_field_only() {
    let bytes = model_bytes(2);
    let model = Model::from_safetensors(&bytes).unwrap();
    let g = model.geometry();
    let n = g.min_input() + 8 * g.step();
    let plan = model.plan(n, n).unwrap();
    let (oh, ow) = plan.output_size();
    let mut input = synth::random_input(plan.input_len(), 3);
    input[0] = f32::NAN; // top-left input pixel: reaches only the top-left output pixels
    let mut scratch = vec![0f32; plan.scratch_len()];
    let mut logits = vec![0f32; plan.output_len()];
    model
        .forward(&plan, &input, &mut scratch, Output::Logits(&mut logits))
        .unwrap();
    let px = oh * ow;
    let nan_px: Vec<usize> = (0..px)
        .filter(|&p| (0..3).any(|c| logits[c * px + p].is_nan()))
        .collect();
    assert!(
        nan_px.contains(&0),
        "the NaN must reach output pixel (0, 0)"
    );
    assert!(
        nan_px.len() < px,
        "a single NaN pixel must not poison the whole tile"
    );
    // Bottom-right output pixel is outside the receptive field of input (0, 0).
    assert!((0..3).all(|c| logits[c * px + px - 1].is_finite()));

    let mut labels = vec![0u8; plan.label_len()];
    model
        .forward(&plan, &input, &mut scratch, Output::Labels8(&mut labels))
        .unwrap();
    for &p in &nan_px {
        let first_nan = (0..3).find(|&c| logits[c * px + p].is_nan()).unwrap();
        assert_eq!(labels[p] as usize, first_nan);
    }
    let mut probs = vec![0f32; plan.output_len()];
    model
        .forward(
            &plan,
            &input,
            &mut scratch,
            Output::Probabilities(&mut probs),
        )
        .unwrap();
    assert!(probs[0].is_nan());
    assert!((probs[px - 1] + probs[2 * px - 1] + probs[3 * px - 1] - 1.0).abs() < 1e-5);
}

#[test]
fn infinite_input_gives_non_finite_logits_not_a_panic() {
    let bytes = model_bytes(1);
    let model = Model::from_safetensors(&bytes).unwrap();
    let plan = model.plan(9, 9).unwrap();
    let input = vec![f32::INFINITY; plan.input_len()];
    let mut scratch = vec![0f32; plan.scratch_len()];
    let mut logits = vec![0f32; plan.output_len()];
    model
        .forward(&plan, &input, &mut scratch, Output::Logits(&mut logits))
        .unwrap();
    assert!(logits.iter().any(|v| !v.is_finite()));
}

#[test]
fn huge_sizes_are_errors() {
    let bytes = model_bytes(1);
    let model = Model::from_safetensors(&bytes).unwrap();
    assert_eq!(
        model.plan(usize::MAX, usize::MAX).unwrap_err(),
        Error::Overflow
    );
    assert!(model.plan(1 << 33, 1 << 33).is_err());
    assert!(matches!(model.plan(0, 9), Err(Error::TileSize { .. })));
}
