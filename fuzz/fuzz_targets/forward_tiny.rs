//! A tiny random model (possibly with corrupted bytes), a tile size near the legal ones, buffers
//! that may be short, NaN/inf in the input, every output kind: `forward` must either succeed
//! with sane outputs or fail leaving the output untouched.
#![no_main]

use libfuzzer_sys::fuzz_target;
use unet_core::{synth, Config, DType, Model, Output, Padding};

const SENTINEL: f32 = -12345.0;

fuzz_target!(|data: &[u8]| {
    if data.len() < 16 {
        return;
    }
    let b = |i: usize| data[i] as usize;
    let cfg = Config {
        in_channels: 1 + b(0) % 3,
        num_classes: 1 + b(1) % 4,
        base_channels: 1 + b(2) % 4,
        levels: 1 + b(3) % 3,
        padding: if b(4) & 1 == 0 { Padding::Valid } else { Padding::Same },
    };
    let dtype = [DType::F32, DType::F16, DType::BF16][b(4) / 2 % 3];
    let seed = u64::from(data[5]) | u64::from(data[6]) << 8;
    let mut bytes = synth::random_model(&cfg, dtype, seed, "none");
    // Up to four byte corruptions of the model file.
    let mut mutated = false;
    for m in data[16..].chunks_exact(3).take(4) {
        let pos = (usize::from(m[0]) | usize::from(m[1]) << 8) % bytes.len();
        bytes[pos] ^= m[2];
        mutated |= m[2] != 0;
    }
    let Ok(model) = Model::from_safetensors(&bytes) else {
        return;
    };
    let g = model.geometry();
    let step = g.step();
    let h = (g.min_input() + step * (b(7) % 3)).saturating_sub(b(8) % 2);
    let w = g.min_input() + step * (b(9) % 3) + b(10) % 2;
    let Ok(plan) = model.plan(h, w) else {
        return;
    };
    let short = |len: usize, bit: usize| if b(11) >> bit & 1 == 1 { len.saturating_sub(1) } else { len };
    let mut input = synth::random_input(short(plan.input_len(), 0), seed);
    let mut finite = true;
    for (k, &v) in data[12..16].iter().enumerate() {
        if v > 250 && !input.is_empty() {
            let i = (usize::from(v) * 7919 + k) % input.len();
            input[i] = [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, f32::NAN][k];
            finite = false;
        }
    }
    let mut scratch = vec![0f32; short(plan.scratch_len(), 1)];
    let k = cfg.num_classes;
    match b(11) >> 2 & 3 {
        0 | 1 => {
            let probs = b(11) >> 2 & 3 == 1;
            let mut out = vec![SENTINEL; short(plan.output_len(), 2)];
            let r = if probs {
                model.forward(&plan, &input, &mut scratch, Output::Probabilities(&mut out))
            } else {
                model.forward(&plan, &input, &mut scratch, Output::Logits(&mut out))
            };
            match r {
                Err(_) => assert!(out.iter().all(|&v| v == SENTINEL), "output written on error"),
                Ok(()) if finite && !mutated => {
                    assert!(out.iter().all(|v| v.is_finite()));
                    if probs {
                        let px = plan.label_len();
                        for p in 0..px {
                            let s: f32 = (0..k).map(|c| out[c * px + p]).sum();
                            assert!((s - 1.0).abs() < 1e-4, "probabilities sum to {s}");
                        }
                    }
                }
                Ok(()) => {}
            }
        }
        2 => {
            let mut out = vec![0xAAu8; short(plan.label_len(), 2)];
            match model.forward(&plan, &input, &mut scratch, Output::Labels8(&mut out)) {
                Err(_) => assert!(out.iter().all(|&v| v == 0xAA)),
                Ok(()) => assert!(out.iter().all(|&v| usize::from(v) < k)),
            }
        }
        _ => {
            let mut out = vec![0xAAAAu16; short(plan.label_len(), 2)];
            match model.forward(&plan, &input, &mut scratch, Output::Labels16(&mut out)) {
                Err(_) => assert!(out.iter().all(|&v| v == 0xAAAA)),
                Ok(()) => assert!(out.iter().all(|&v| usize::from(v) < k)),
            }
        }
    }
});
