//! Overlap-tile prediction: small tiles stitched equal one tile covering the whole
//! mirror-extended image (valid padding; f32 with different GEMM blockings: 1e-5 of the largest
//! logit), for an image larger than a tile and one smaller than the halo; same padding keeps
//! tile centres; mirroring follows the documented rule.

use ndarray::{s, Array3, Array4};
use unet_core::{Config, Padding};
use unet_train::backend::cpu::CpuBackend;
use unet_train::backend::Backend;
use unet_train::init::he_init;
use unet_train::optim::{Optimizer, OptimizerKind};
use unet_train::predict::{argmax, mirror, predict_logits, softmax};

fn backend(padding: Padding) -> CpuBackend {
    let cfg = Config {
        in_channels: 1,
        num_classes: 3,
        base_channels: 2,
        levels: 2,
        padding,
    };
    let p = he_init(&cfg, 4).unwrap();
    CpuBackend::new(p.clone(), Optimizer::new(OptimizerKind::adam(), 0.0, &p))
}

fn image(h: usize, w: usize) -> Array3<f32> {
    Array3::from_shape_fn((1, h, w), |(_, y, x)| {
        ((y * 13 + x * 7) as f32 * 0.1).sin() + 0.01 * y as f32
    })
}

#[test]
fn mirror_rule() {
    let got: Vec<usize> = (-4..8).map(|i| mirror(i, 4)).collect();
    assert_eq!(got, vec![2, 3, 2, 1, 0, 1, 2, 3, 2, 1, 0, 1]);
    assert_eq!(mirror(-7, 1), 0);
}

#[test]
fn stitched_equals_single_tile() {
    let be = backend(Padding::Valid);
    // 2 levels valid: halo 8, legal inputs 2(b+8)−4 = 20, 22, 24, ...
    for (h, w) in [(30usize, 34usize), (5, 3)] {
        let img = image(h, w);
        let small = predict_logits(&be, img.view(), 20, 3).unwrap();
        assert_eq!(small.dim(), (3, h, w));
        // One tile covering everything: input h+16 (legal: even ≥ 20 here), mirror-extended.
        let big_n = (h.max(w) + 16).max(20);
        let big_n = big_n + big_n % 2;
        let mut input = Array4::<f32>::zeros((1, 1, big_n, big_n));
        for y in 0..big_n {
            for x in 0..big_n {
                input[[0, 0, y, x]] =
                    img[[0, mirror(y as isize - 8, h), mirror(x as isize - 8, w)]];
            }
        }
        let whole = be.forward(input.view()).unwrap();
        let whole = whole.slice(s![0, .., ..h, ..w]);
        let max = whole.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let err = whole
            .iter()
            .zip(small.iter())
            .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(err <= 1e-5 * max, "{h}x{w}: err {err} max {max}");
    }
}

#[test]
fn same_padding_and_outputs() {
    let be = backend(Padding::Same);
    let img = image(40, 37);
    // margin 7·2−5 = 9: tiles must exceed 18 and be even.
    assert!(predict_logits(&be, img.view(), 18, 2).is_err());
    let a = predict_logits(&be, img.view(), 24, 2).unwrap();
    let b = predict_logits(&be, img.view(), 32, 4).unwrap();
    let max = a.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let err = a
        .iter()
        .zip(b.iter())
        .fold(0.0f32, |m, (x, y)| m.max((x - y).abs()));
    assert!(err <= 1e-5 * max, "tile sizes disagree: {err}");
    let p = softmax(&a);
    for y in 0..40 {
        let s: f32 = (0..3).map(|c| p[[c, y, 5]]).sum();
        assert!((s - 1.0).abs() < 1e-5);
    }
    let l = argmax(&a);
    assert!(l.iter().all(|&c| c < 3));
    assert!(predict_logits(&be, Array3::<f32>::zeros((2, 8, 8)).view(), 24, 1).is_err());
}

/// Four levels: the output of a tile (8(b−4)+4) is not a multiple of the pooling step 8, so
/// tiles must overlap to stay on the pooling grid.
#[test]
fn deep_network_stays_on_pooling_grid() {
    let cfg = Config {
        in_channels: 1,
        num_classes: 2,
        base_channels: 1,
        levels: 4,
        padding: Padding::Valid,
    };
    let p = he_init(&cfg, 8).unwrap();
    let be = CpuBackend::new(p.clone(), Optimizer::new(OptimizerKind::adam(), 0.0, &p));
    let g = unet_core::Geometry::new(4, Padding::Valid).unwrap();
    let halo = g.halo();
    let img = image(30, 21);
    assert!(
        predict_logits(&be, img.view(), 92, 2).is_err(),
        "output 4 < step 8 must be refused"
    );
    let small = predict_logits(&be, img.view(), 100, 2).unwrap();
    let n = g.next_legal(30 + 2 * halo).unwrap();
    let mut input = Array4::<f32>::zeros((1, 1, n, n));
    for y in 0..n {
        for x in 0..n {
            input[[0, 0, y, x]] = img[[
                0,
                mirror(y as isize - halo as isize, 30),
                mirror(x as isize - halo as isize, 21),
            ]];
        }
    }
    let whole = be.forward(input.view()).unwrap();
    let whole = whole.slice(s![0, .., ..30, ..21]);
    let max = whole.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let err = whole
        .iter()
        .zip(small.iter())
        .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
    assert!(max > 0.0 && err <= 1e-5 * max, "err {err} max {max}");
}

/// Same padding, three levels: tiles equal one large tile over the mirror-extended image whose
/// zero-padded border lies outside the kept region.
#[test]
fn same_padding_equals_one_large_tile() {
    let cfg = Config {
        in_channels: 1,
        num_classes: 2,
        base_channels: 2,
        levels: 3,
        padding: Padding::Same,
    };
    let p = he_init(&cfg, 9).unwrap();
    let be = CpuBackend::new(p.clone(), Optimizer::new(OptimizerKind::adam(), 0.0, &p));
    let g = unet_core::Geometry::new(3, Padding::Same).unwrap();
    let m = unet_train::predict::same_margin(&g);
    assert_eq!(m, 23);
    let img = image(45, 38);
    let tiled = predict_logits(&be, img.view(), 60, 3).unwrap();
    let n = g.next_legal(45 + 2 * m).unwrap();
    let mut input = Array4::<f32>::zeros((1, 1, n, n));
    for y in 0..n {
        for x in 0..n {
            input[[0, 0, y, x]] = img[[
                0,
                mirror(y as isize - m as isize, 45),
                mirror(x as isize - m as isize, 38),
            ]];
        }
    }
    let whole = be.forward(input.view()).unwrap();
    let whole = whole.slice(s![0, .., m..m + 45, m..m + 38]);
    let max = whole.iter().fold(0.0f32, |a, v| a.max(v.abs()));
    let err = whole
        .iter()
        .zip(tiled.iter())
        .fold(0.0f32, |a, (x, y)| a.max((x - y).abs()));
    assert!(max > 0.0 && err <= 1e-5 * max, "err {err} max {max}");
}
