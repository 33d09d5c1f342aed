//! The frame API's contracts: sample types, output kinds (vs the single-tile forward pass),
//! validation before any write, the scratch budget, constant frames.

// `unet_core::Error` is large and `Copy` by design (see unet-core/src/lib.rs).
#![allow(clippy::result_large_err)]

mod frame_support;

use frame_support::{config, model_bytes, single_tile_logits, Rng};
use unet_core::tile::margin;
use unet_core::{
    ConvAlgo, Error, FrameInput, FrameOptions, FrameOutput, FrameView, Model, Output, Padding,
    SampleType, Sequential, TileChoice,
};

fn opts(tile: TileChoice, sample: SampleType) -> FrameOptions {
    FrameOptions {
        tile,
        workers: 1,
        sample,
    }
}

fn small_tile(model: &Model<'_>) -> TileChoice {
    let g = *model.geometry();
    let n = g.next_legal(2 * margin(&g) + g.step()).unwrap();
    TileChoice::Explicit(n, n)
}

fn run(
    model: &Model<'_>,
    input: FrameInput<'_>,
    h: usize,
    w: usize,
    sample: SampleType,
    out: FrameOutput<'_>,
) -> Result<(), Error> {
    let c = model.config().in_channels;
    // Direct convolutions: the stitched result then equals the reference tile bit for bit.
    let plan = model.frame_plan_with(h, w, c, opts(small_tile(model), sample), ConvAlgo::Direct)?;
    let mut scratch = vec![0f32; plan.scratch_len()];
    model.segment(&plan, input, &mut scratch, out, &Sequential)
}

#[test]
fn u8_u16_f32_frames_give_identical_results() {
    for norm in [
        "percentile:1:99.8",
        "mean_std:100:40",
        "min_max:0:255",
        "none",
    ] {
        let cfg = config(2, 3, 2, 2, Padding::Valid);
        let bytes = model_bytes(&cfg, norm, 21);
        let model = Model::from_safetensors(&bytes).unwrap();
        let (h, w) = (23, 17);
        let mut rng = Rng(4);
        let v8: Vec<u8> = (0..2 * h * w)
            .map(|_| (rng.next_u64() % 256) as u8)
            .collect();
        let v16: Vec<u16> = v8.iter().map(|&v| v as u16).collect();
        let vf: Vec<f32> = v8.iter().map(|&v| v as f32).collect();
        let mut outs = Vec::new();
        for sample in [SampleType::U8, SampleType::U16, SampleType::F32] {
            let mut out = vec![0f32; 3 * h * w];
            let input = match sample {
                SampleType::U8 => FrameInput::U8(FrameView::packed(&v8[..], 2, h, w).unwrap()),
                SampleType::U16 => FrameInput::U16(FrameView::packed(&v16[..], 2, h, w).unwrap()),
                SampleType::F32 => FrameInput::F32(FrameView::packed(&vf[..], 2, h, w).unwrap()),
            };
            run(&model, input, h, w, sample, FrameOutput::Logits(&mut out)).unwrap();
            outs.push(out);
        }
        assert!(outs[0].iter().all(|v| v.is_finite()));
        assert!(
            outs.iter().all(|o| o
                .iter()
                .zip(&outs[0])
                .all(|(a, b)| a.to_bits() == b.to_bits())),
            "{norm}"
        );
    }
}

#[test]
fn output_kinds_agree_with_the_forward_pass() {
    // Probabilities and labels of the stitched frame equal those `Model::forward` computes for
    // the single reference tile (per pixel the same function of the same logits).
    for padding in [Padding::Valid, Padding::Same] {
        let cfg = config(1, 4, 2, 3, padding);
        let bytes = model_bytes(&cfg, "none", 5);
        let model = Model::from_safetensors(&bytes).unwrap();
        let (h, w) = (29, 13);
        let mut rng = Rng(8);
        let vf: Vec<f32> = (0..h * w).map(|_| rng.uniform()).collect();
        let input = || FrameInput::F32(FrameView::packed(&vf[..], 1, h, w).unwrap());
        let mut probs = vec![0f32; 4 * h * w];
        let mut l8 = vec![0u8; h * w];
        let mut l16 = vec![0u16; h * w];
        run(
            &model,
            input(),
            h,
            w,
            SampleType::F32,
            FrameOutput::Probabilities(&mut probs),
        )
        .unwrap();
        run(
            &model,
            input(),
            h,
            w,
            SampleType::F32,
            FrameOutput::Labels8(&mut l8),
        )
        .unwrap();
        run(
            &model,
            input(),
            h,
            w,
            SampleType::F32,
            FrameOutput::Labels16(&mut l16),
        )
        .unwrap();

        let logits = single_tile_logits(&model, &vf, h, w);
        // Feed the reference logits through forward's output stage: a 1-level model is not
        // needed — compare with forward directly on the reference tile instead.
        let g = *model.geometry();
        let m = margin(&g);
        let (nh, nw) = (
            g.next_legal(h + 2 * m).unwrap(),
            g.next_legal(w + 2 * m).unwrap(),
        );
        let mut tile = vec![0f32; nh * nw];
        for y in 0..nh {
            for x in 0..nw {
                let fy = unet_core::mirror::symmetric_index(y as isize - m as isize, h);
                let fx = unet_core::mirror::symmetric_index(x as isize - m as isize, w);
                tile[y * nw + x] = vf[fy * w + fx];
            }
        }
        let plan = model.plan_with(nh, nw, ConvAlgo::Direct).unwrap();
        let mut scratch = vec![0f32; plan.scratch_len()];
        let mut fp = vec![0f32; plan.output_len()];
        let mut fl = vec![0u8; plan.label_len()];
        model
            .forward(&plan, &tile, &mut scratch, Output::Probabilities(&mut fp))
            .unwrap();
        model
            .forward(&plan, &tile, &mut scratch, Output::Labels8(&mut fl))
            .unwrap();
        let (oh, ow) = plan.output_size();
        let s = if padding == Padding::Same { m } else { 0 };
        let mut distinct = std::collections::HashSet::new();
        for y in 0..h {
            for x in 0..w {
                let want = fl[(y + s) * ow + x + s];
                distinct.insert(want);
                assert_eq!(l8[y * w + x], want, "({y},{x})");
                assert_eq!(l16[y * w + x], want as u16);
                let mut sum = 0.0;
                for k in 0..4 {
                    let p = probs[(k * h + y) * w + x];
                    assert_eq!(p.to_bits(), fp[(k * oh + y + s) * ow + x + s].to_bits());
                    sum += p;
                }
                assert!((sum - 1.0f32).abs() < 1e-5);
                // And the label is the arg-max of the reference logits.
                let best = (0..4)
                    .max_by(|&a, &b| {
                        logits[(a * h + y) * w + x]
                            .total_cmp(&logits[(b * h + y) * w + x])
                            .then(b.cmp(&a))
                    })
                    .unwrap();
                assert_eq!(best as u8, want);
            }
        }
        assert!(distinct.len() > 1, "degenerate test model");
    }
}

#[test]
fn constant_frame_under_percentiles_is_a_zero_input() {
    let cfg = config(1, 2, 2, 2, Padding::Valid);
    let pct = model_bytes(&cfg, "percentile:1:99.8", 9);
    let none = model_bytes(&cfg, "none", 9);
    let (pct, none) = (
        Model::from_safetensors(&pct).unwrap(),
        Model::from_safetensors(&none).unwrap(),
    );
    let (h, w) = (9, 14);
    let seven = vec![7u16; h * w];
    let zero = vec![0u16; h * w];
    let mut a = vec![0f32; 2 * h * w];
    let mut b = vec![1f32; 2 * h * w];
    run(
        &pct,
        FrameInput::U16(FrameView::packed(&seven[..], 1, h, w).unwrap()),
        h,
        w,
        SampleType::U16,
        FrameOutput::Logits(&mut a),
    )
    .unwrap();
    run(
        &none,
        FrameInput::U16(FrameView::packed(&zero[..], 1, h, w).unwrap()),
        h,
        w,
        SampleType::U16,
        FrameOutput::Logits(&mut b),
    )
    .unwrap();
    assert_eq!(a, b);
}

#[test]
fn errors_leave_the_output_untouched() {
    let cfg = config(1, 3, 2, 2, Padding::Valid);
    let bytes = model_bytes(&cfg, "percentile:1:99", 2);
    let model = Model::from_safetensors(&bytes).unwrap();
    let (h, w) = (12, 10);
    let plan = model
        .frame_plan(h, w, 1, opts(small_tile(&model), SampleType::F32))
        .unwrap();
    let good = vec![1.5f32; h * w];
    let mut nan = good.clone();
    nan[17] = f32::NAN;
    let mut scratch = vec![0f32; plan.scratch_len()];
    let sentinel = -777.0f32;
    let mut out = vec![sentinel; plan.output_len()];
    fn view(d: &[f32], h: usize, w: usize) -> FrameInput<'_> {
        FrameInput::F32(FrameView::packed(d, 1, h, w).unwrap())
    }
    let seg = |input, scratch: &mut [f32], out: FrameOutput<'_>| {
        model.segment(&plan, input, scratch, out, &Sequential)
    };

    assert!(matches!(
        seg(
            view(&nan, h, w),
            &mut scratch,
            FrameOutput::Logits(&mut out)
        ),
        Err(Error::InvalidArgument { .. })
    ));
    let short = plan.scratch_len() - 1;
    assert!(matches!(
        seg(
            view(&good, h, w),
            &mut scratch[..short],
            FrameOutput::Logits(&mut out)
        ),
        Err(Error::BufferTooSmall {
            buffer: "scratch",
            ..
        })
    ));
    let n = out.len() - 1;
    assert!(matches!(
        seg(
            view(&good, h, w),
            &mut scratch,
            FrameOutput::Logits(&mut out[..n])
        ),
        Err(Error::BufferTooSmall {
            buffer: "output",
            ..
        })
    ));
    let g16 = vec![1u16; h * w];
    assert!(seg(
        FrameInput::U16(FrameView::packed(&g16[..], 1, h, w).unwrap()),
        &mut scratch,
        FrameOutput::Logits(&mut out)
    )
    .is_err());
    let other = FrameInput::F32(FrameView::packed(&good[..h * (w - 1)], 1, h, w - 1).unwrap());
    assert!(seg(other, &mut scratch, FrameOutput::Logits(&mut out)).is_err());
    assert!(out.iter().all(|&v| v == sentinel));
    // Executor with more workers than the plan.
    let r = model.segment(
        &plan,
        view(&good, h, w),
        &mut scratch,
        FrameOutput::Logits(&mut out),
        &frame_support::Threads(2),
    );
    assert!(r.is_err());
    assert!(out.iter().all(|&v| v == sentinel));
    // A plan from another architecture.
    let other_cfg = config(1, 3, 4, 2, Padding::Valid);
    let other_bytes = model_bytes(&other_cfg, "percentile:1:99", 2);
    let other_model = Model::from_safetensors(&other_bytes).unwrap();
    assert!(other_model
        .segment(
            &plan,
            view(&good, h, w),
            &mut scratch,
            FrameOutput::Logits(&mut out),
            &Sequential
        )
        .is_err());
    assert!(out.iter().all(|&v| v == sentinel));
    // Then a good call writes everything.
    model
        .segment(
            &plan,
            view(&good, h, w),
            &mut scratch,
            FrameOutput::Logits(&mut out),
            &Sequential,
        )
        .unwrap();
    assert!(out.iter().all(|&v| v != sentinel && v.is_finite()));
}

#[test]
fn labels8_need_at_most_256_classes() {
    let cfg = config(1, 300, 1, 1, Padding::Valid);
    let bytes = model_bytes(&cfg, "none", 2);
    let model = Model::from_safetensors(&bytes).unwrap();
    let d = [0u8; 4];
    let mut l8 = vec![9u8; 4];
    let r = run(
        &model,
        FrameInput::U8(FrameView::packed(&d[..], 1, 2, 2).unwrap()),
        2,
        2,
        SampleType::U8,
        FrameOutput::Labels8(&mut l8),
    );
    assert!(matches!(r, Err(Error::InvalidArgument { .. })));
    assert_eq!(l8, [9; 4]);
    let mut l16 = vec![9u16; 4];
    run(
        &model,
        FrameInput::U8(FrameView::packed(&d[..], 1, 2, 2).unwrap()),
        2,
        2,
        SampleType::U8,
        FrameOutput::Labels16(&mut l16),
    )
    .unwrap();
    assert!(l16.iter().all(|&v| v < 300));
}

#[test]
fn plan_errors() {
    let cfg = config(2, 2, 2, 3, Padding::Valid);
    let bytes = model_bytes(&cfg, "none", 2);
    let model = Model::from_safetensors(&bytes).unwrap();
    let o = opts(TileChoice::Budget(1 << 24), SampleType::U8);
    assert!(model.frame_plan(10, 10, 1, o).is_err()); // channels
    assert!(model.frame_plan(0, 10, 2, o).is_err());
    assert!(model.frame_plan(10, 0, 2, o).is_err());
    assert!(model.frame_plan(1 << 20, 1 << 13, 2, o).is_err()); // > u32::MAX pixels
    assert!(model.frame_plan(usize::MAX, 2, 2, o).is_err());
    assert!(model
        .frame_plan(10, 10, 2, FrameOptions { workers: 0, ..o })
        .is_err());
    assert!(model
        .frame_plan(
            10,
            10,
            2,
            opts(TileChoice::Explicit(45, 44), SampleType::U8)
        )
        .is_err()); // illegal
    assert!(model
        .frame_plan(10, 10, 2, opts(TileChoice::Budget(100), SampleType::U8))
        .is_err());
    // Smallest legal tile (usable 4 < step? no: step 4) works; a legal tile with usable < step
    // cannot tile a frame larger than it.
    let g = *model.geometry();
    assert_eq!(margin(&g), 20);
    assert!(model
        .frame_plan(
            100,
            100,
            2,
            opts(TileChoice::Explicit(44, 44), SampleType::U8)
        )
        .is_ok());
    let l5 = model_bytes(&config(1, 2, 1, 5, Padding::Valid), "none", 1);
    let l5 = Model::from_safetensors(&l5).unwrap();
    // 188 is legal (output 4) but 4 < 16 = step: fine for a 4-pixel frame, not for 5.
    assert!(l5
        .frame_plan(
            4,
            4,
            1,
            opts(TileChoice::Explicit(188, 188), SampleType::U8)
        )
        .is_ok());
    assert!(matches!(
        l5.frame_plan(
            5,
            4,
            1,
            opts(TileChoice::Explicit(188, 188), SampleType::U8)
        ),
        Err(Error::TileSize { .. })
    ));
}

/// Regression (found by the `c_api` fuzz target): the automatic tile choice planned every legal
/// tile size up to the frame's, which for a 1 × 4·10⁹-pixel frame of a one-level model and a
/// huge budget meant billions of plans (a hang). It bisects now: a handful of plans.
#[test]
fn budget_search_on_a_huge_thin_frame_returns_at_once() {
    let cfg = config(1, 2, 2, 1, Padding::Valid);
    let bytes = model_bytes(&cfg, "none", 2);
    let model = Model::from_safetensors(&bytes).unwrap();
    for budget in [usize::MAX, 1 << 30, 1 << 20] {
        let o = opts(TileChoice::Budget(budget), SampleType::U8);
        match model.frame_plan(1, 4_000_000_000, 1, o) {
            Ok(p) => assert!(p.scratch_bytes() <= budget),
            Err(e) => assert!(
                matches!(e, Error::BufferTooSmall { .. } | Error::Overflow),
                "{e:?}"
            ),
        }
    }
}

#[test]
fn budget_picks_the_largest_fitting_tile() {
    let cfg = config(1, 2, 2, 3, Padding::Valid);
    let bytes = model_bytes(&cfg, "percentile:1:99.8", 2);
    let model = Model::from_safetensors(&bytes).unwrap();
    let g = *model.geometry();
    let (h, w) = (300, 200);
    for workers in [1, 3] {
        for budget in [60_000usize, 150_000, 400_000, 2_000_000, 50_000_000] {
            let o = FrameOptions {
                tile: TileChoice::Budget(budget),
                workers,
                sample: SampleType::U16,
            };
            let Ok(p) = model.frame_plan(h, w, 1, o) else {
                // Too small even for the smallest tile: then the smallest tile must not fit.
                let n = g.next_legal(2 * margin(&g) + g.step()).unwrap();
                let e = model
                    .frame_plan(
                        h,
                        w,
                        1,
                        FrameOptions {
                            tile: TileChoice::Explicit(n, n),
                            ..o
                        },
                    )
                    .unwrap();
                assert!(e.scratch_bytes() > budget);
                continue;
            };
            assert!(p.scratch_bytes() <= budget);
            let (th, tw) = p.tile_input_size();
            let cover_h = g.next_legal(h + 2 * margin(&g)).unwrap();
            let cover_w = g.next_legal(w + 2 * margin(&g)).unwrap();
            assert!(th <= cover_h && tw <= cover_w);
            // The next square size up (clamped to the covering sizes) would not fit.
            if th < cover_h || tw < cover_w {
                let c = g.next_legal(th.max(tw) + 1).unwrap();
                let bigger = model
                    .frame_plan(
                        h,
                        w,
                        1,
                        FrameOptions {
                            tile: TileChoice::Explicit(c.min(cover_h), c.min(cover_w)),
                            ..o
                        },
                    )
                    .unwrap();
                assert!(
                    bigger.scratch_bytes() > budget,
                    "budget {budget}: {th}x{tw} chosen, {c} fits too"
                );
            }
            assert!(p.scratch_len() >= 65536 + 2, "histogram counted");
        }
    }
    // A frame that fits one tile gets exactly the covering tile.
    let p = model
        .frame_plan(
            7,
            5,
            1,
            opts(TileChoice::Budget(usize::MAX), SampleType::U8),
        )
        .unwrap();
    assert_eq!(
        p.tile_input_size(),
        (g.next_legal(7 + 40).unwrap(), g.next_legal(5 + 40).unwrap())
    );
    assert_eq!(p.tile_counts(), (1, 1));
}

#[test]
fn model_and_plan_can_be_shared_between_threads() {
    fn shareable<T: Send + Sync>() {}
    shareable::<Model<'static>>();
    shareable::<unet_core::FramePlan>();
    shareable::<FrameView<'static, u16>>();
    shareable::<unet_core::exec::Sequential>();
}
