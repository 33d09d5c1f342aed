//! Overlap-tile stitching: a frame segmented tile by tile equals one single tile over the
//! mirror-extended frame (valid and same models, several depths, random frame sizes from 1×1,
//! random legal tile sizes), **bit for bit**: every output pixel goes through the same
//! operations in the same order whatever its tile (tile origins are aligned to 2^(levels−1);
//! the layers' summation order does not depend on the pixel position). If a future layer
//! implementation made the order position-dependent, this test is the one to tell.
//! Also: results identical for 1, 2 and 4 workers (std threads, and rayon with `--features rayon`).

mod frame_support;

use frame_support::{config, model_bytes, single_tile_logits, Rng, Threads};
use proptest::prelude::*;
use unet_core::tile::AxisTiling;
use unet_core::{
    ConvAlgo, Executor, FrameInput, FrameOptions, FrameOutput, FrameView, Model, Padding,
    SampleType, Sequential, TileChoice,
};

struct Case {
    levels: usize,
    padding: Padding,
    in_ch: usize,
    classes: usize,
}

const CASES: [Case; 4] = [
    Case {
        levels: 2,
        padding: Padding::Valid,
        in_ch: 1,
        classes: 3,
    },
    Case {
        levels: 3,
        padding: Padding::Valid,
        in_ch: 2,
        classes: 2,
    },
    Case {
        levels: 2,
        padding: Padding::Same,
        in_ch: 1,
        classes: 2,
    },
    Case {
        levels: 3,
        padding: Padding::Same,
        in_ch: 1,
        classes: 3,
    },
];

fn frame_u8(rng: &mut Rng, n: usize) -> Vec<u8> {
    (0..n).map(|_| (rng.next_u64() % 256) as u8).collect()
}

fn segment_logits(
    model: &Model<'_>,
    data: &[u8],
    h: usize,
    w: usize,
    tile: TileChoice,
    exec: &dyn Executor,
) -> Vec<f32> {
    segment_logits_with(model, data, h, w, tile, exec, ConvAlgo::Direct)
}

/// [`segment_logits`] with the tiles' 3×3 convolutions run as `algo` says.
fn segment_logits_with(
    model: &Model<'_>,
    data: &[u8],
    h: usize,
    w: usize,
    tile: TileChoice,
    exec: &dyn Executor,
    algo: ConvAlgo,
) -> Vec<f32> {
    let c = model.config().in_channels;
    let opts = FrameOptions {
        tile,
        workers: exec.workers(),
        sample: SampleType::U8,
    };
    let plan = model.frame_plan_with(h, w, c, opts, algo).unwrap();
    let mut scratch = vec![f32::NAN; plan.scratch_len()];
    let mut out = vec![f32::NAN; plan.output_len()];
    let view = FrameView::packed(data, c, h, w).unwrap();
    model
        .segment(
            &plan,
            FrameInput::U8(view),
            &mut scratch,
            FrameOutput::Logits(&mut out),
            exec,
        )
        .unwrap();
    out
}

/// Checks one (model, frame, tile) combination against the single-tile reference.
fn check(
    case: &Case,
    h: usize,
    w: usize,
    extra_h: usize,
    extra_w: usize,
    seed: u64,
) -> Result<(), TestCaseError> {
    let cfg = config(case.in_ch, case.classes, 2, case.levels, case.padding);
    let bytes = model_bytes(&cfg, "mean_std:120:60", seed);
    let model = Model::from_safetensors(&bytes).unwrap();
    let g = *model.geometry();
    let mut rng = Rng(seed.wrapping_mul(31) | 1);
    let data = frame_u8(&mut rng, case.in_ch * h * w);
    // Smallest tile that can tile any frame (usable window ≥ step), plus some steps.
    let min_tile = g
        .next_legal(2 * unet_core::tile::margin(&g) + g.step())
        .unwrap();
    let th = g.next_legal(min_tile + extra_h * g.step()).unwrap();
    let tw = g.next_legal(min_tile + extra_w * g.step()).unwrap();
    let got = segment_logits(
        &model,
        &data,
        h,
        w,
        TileChoice::Explicit(th, tw),
        &Sequential,
    );

    let a = model.normalization().fixed_affine().unwrap();
    let norm: Vec<f32> = data.iter().map(|&v| a.apply(v as f32)).collect();
    let want = single_tile_logits(&model, &norm, h, w);
    prop_assert_eq!(got.len(), want.len());
    for (i, (x, y)) in got.iter().zip(&want).enumerate() {
        prop_assert!(
            x.to_bits() == y.to_bits(),
            "pixel {} of {}x{} tile {}x{}: {} vs {}",
            i,
            h,
            w,
            th,
            tw,
            x,
            y
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn stitched_equals_single_tile(
        which in 0usize..CASES.len(),
        h in 1usize..48,
        w in 1usize..48,
        extra_h in 0usize..4,
        extra_w in 0usize..4,
        seed in any::<u64>(),
    ) {
        check(&CASES[which], h, w, extra_h, extra_w, seed)?;
    }
}

#[test]
fn stitched_equals_single_tile_at_edges() {
    // 1×1, 5×3, and sizes just below / at / above multiples of the tile's stride.
    for (k, case) in CASES.iter().enumerate() {
        let cfg = config(case.in_ch, case.classes, 2, case.levels, case.padding);
        let g = unet_core::Geometry::new(cfg.levels, cfg.padding).unwrap();
        let min_tile = g
            .next_legal(2 * unet_core::tile::margin(&g) + g.step())
            .unwrap();
        let a = AxisTiling::new(&g, 1000, min_tile).unwrap();
        let (u, s) = (a.usable(), a.stride());
        let sizes = [
            1,
            3,
            5,
            u - 1,
            u,
            u + 1,
            u + s - 1,
            u + s,
            u + s + 1,
            u + 2 * s + 1,
        ];
        for (i, &h) in sizes.iter().enumerate() {
            let w = sizes[(i * 3 + 1) % sizes.len()];
            check(case, h, w, 0, 0, 1000 + k as u64).unwrap();
        }
        check(case, 1, 1, 0, 0, 7).unwrap();
        check(case, 5, 3, 1, 0, 8).unwrap();
    }
}

#[test]
fn tile_size_does_not_change_the_result() {
    let case = &CASES[1];
    let cfg = config(case.in_ch, case.classes, 2, case.levels, case.padding);
    let bytes = model_bytes(&cfg, "none", 3);
    let model = Model::from_safetensors(&bytes).unwrap();
    let mut rng = Rng(99);
    let (h, w) = (37, 29);
    let data = frame_u8(&mut rng, 2 * h * w);
    let first = segment_logits(
        &model,
        &data,
        h,
        w,
        TileChoice::Budget(1 << 20),
        &Sequential,
    );
    let g = *model.geometry();
    let mut n = g
        .next_legal(2 * unet_core::tile::margin(&g) + g.step())
        .unwrap();
    for _ in 0..6 {
        let other = segment_logits(
            &model,
            &data,
            h,
            w,
            TileChoice::Explicit(n, g.next_legal(n + 4).unwrap()),
            &Sequential,
        );
        assert!(
            first
                .iter()
                .zip(&other)
                .all(|(a, b)| a.to_bits() == b.to_bits()),
            "tile {n}"
        );
        n = g.next_legal(n + 1).unwrap();
    }
}

#[test]
fn worker_count_does_not_change_the_result() {
    for case in &CASES[..2] {
        let cfg = config(case.in_ch, case.classes, 2, case.levels, case.padding);
        let bytes = model_bytes(&cfg, "percentile:1:99.8", 11);
        let model = Model::from_safetensors(&bytes).unwrap();
        let mut rng = Rng(5);
        let (h, w) = (53, 41);
        let data = frame_u8(&mut rng, case.in_ch * h * w);
        let g = *model.geometry();
        let tile = TileChoice::Explicit(
            g.next_legal(2 * unet_core::tile::margin(&g) + g.step())
                .unwrap(),
            g.next_legal(2 * unet_core::tile::margin(&g) + 2 * g.step())
                .unwrap(),
        );
        let one = segment_logits(&model, &data, h, w, tile, &Sequential);
        for t in [1, 2, 4] {
            let got = segment_logits(&model, &data, h, w, tile, &Threads(t));
            assert!(
                one.iter()
                    .zip(&got)
                    .all(|(a, b)| a.to_bits() == b.to_bits()),
                "{t} threads"
            );
            #[cfg(feature = "rayon")]
            {
                let pool = unet_core::exec::RayonExecutor::new(t).unwrap();
                let got = segment_logits(&model, &data, h, w, tile, &pool);
                assert!(
                    one.iter()
                        .zip(&got)
                        .all(|(a, b)| a.to_bits() == b.to_bits()),
                    "rayon {t} threads"
                );
            }
        }
    }
}

#[test]
fn winograd_tilings_agree_up_to_rounding() {
    // The default plan runs the layers with >= 8 channels on Winograd (whose 4×4 grid is anchored
    // at each tile's origin): tilings then agree with the direct single-tile reference within
    // 1e-4 · max(1, max|logit|), with 1, 2 workers alike.
    for case in CASES.iter() {
        let cfg = config(case.in_ch, case.classes, 8, case.levels, case.padding);
        let bytes = model_bytes(&cfg, "none", 3);
        let model = Model::from_safetensors(&bytes).unwrap();
        let mut rng = Rng(7);
        let (h, w) = (37, 29);
        let data = frame_u8(&mut rng, case.in_ch * h * w);
        let exact = segment_logits(
            &model,
            &data,
            h,
            w,
            TileChoice::Budget(1 << 22),
            &Sequential,
        );
        let scale = exact.iter().fold(1.0f32, |m, v| m.max(v.abs()));
        let g = *model.geometry();
        let n = g
            .next_legal(2 * unet_core::tile::margin(&g) + g.step())
            .unwrap();
        for (tile, workers) in [
            (TileChoice::Budget(1 << 22), 1),
            (TileChoice::Explicit(n, g.next_legal(n + 4).unwrap()), 1),
            (TileChoice::Explicit(n, n), 2),
        ] {
            let exec = Threads(workers);
            let got = segment_logits_with(&model, &data, h, w, tile, &exec, ConvAlgo::Winograd);
            let err = got
                .iter()
                .zip(&exact)
                .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
            assert!(
                err <= 1e-4 * scale,
                "{:?} {tile:?}: max |winograd - direct| {err} (scale {scale})",
                case.padding
            );
        }
    }
}
