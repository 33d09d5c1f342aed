//! Augmentation: identity cases, exact quarter turns and flips, label sets, alignment of image
//! and target, elastic displacement statistics, reproducibility.

use ndarray::{Array2, Array3, Axis};
use proptest::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use unet_train::augment::{
    augment, symmetric_index, warp_image, warp_nearest, AugmentParams, Warp,
};

fn test_image(h: usize, w: usize) -> (Array3<f32>, Array2<u8>, Array2<f32>) {
    let img = Array3::from_shape_fn((2, h, w), |(c, y, x)| {
        (c * 1000 + y * 37 + x * 3) as f32 + 0.25
    });
    let t = Array2::from_shape_fn((h, w), |(y, x)| ((y / 3 + x / 4) % 3) as u8);
    let wt = Array2::from_shape_fn((h, w), |(y, x)| (y * w + x) as f32 * 0.5);
    (img, t, wt)
}

#[test]
fn elastic_sigma_zero_is_identity() {
    let (img, t, wt) = test_image(17, 24);
    let p = AugmentParams {
        elastic_sigma: 0.0,
        elastic_grid: 3,
        ..AugmentParams::none()
    };
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let (i2, t2, w2) = augment(img.view(), t.view(), wt.view(), &p, &mut rng);
    assert_eq!(i2, img);
    assert_eq!(t2, t);
    assert_eq!(w2, wt);
}

#[test]
fn flips_and_quarter_turns_are_exact() {
    let (img, t, wt) = test_image(12, 12);
    let p = AugmentParams {
        flip: true,
        rot90: true,
        ..AugmentParams::none()
    };
    // The 8 symmetries of the square, as index maps (y, x) -> source (y', x').
    let n = 12usize;
    type Sym = Box<dyn Fn(usize, usize) -> (usize, usize)>;
    let syms: Vec<Sym> = vec![
        Box::new(|y, x| (y, x)),
        Box::new(move |y, x| (n - 1 - y, x)),
        Box::new(move |y, x| (y, n - 1 - x)),
        Box::new(move |y, x| (n - 1 - y, n - 1 - x)),
        Box::new(|y, x| (x, y)),
        Box::new(move |y, x| (n - 1 - x, y)),
        Box::new(move |y, x| (x, n - 1 - y)),
        Box::new(move |y, x| (n - 1 - x, n - 1 - y)),
    ];
    let mut seen = [false; 8];
    for seed in 0..64 {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let (i2, t2, w2) = augment(img.view(), t.view(), wt.view(), &p, &mut rng);
        let k = syms
            .iter()
            .position(|f| {
                (0..n).all(|y| {
                    (0..n).all(|x| {
                        let (sy, sx) = f(y, x);
                        i2[[0, y, x]] == img[[0, sy, sx]]
                            && i2[[1, y, x]] == img[[1, sy, sx]]
                            && t2[[y, x]] == t[[sy, sx]]
                            && w2[[y, x]] == wt[[sy, sx]]
                    })
                })
            })
            .unwrap_or_else(|| panic!("seed {seed}: output is not an exact symmetry of the input"));
        seen[k] = true;
    }
    assert!(
        seen.iter().all(|&s| s),
        "not all 8 symmetries drawn: {seen:?}"
    );
}

#[test]
fn labels_and_weights_keep_only_original_values() {
    let (img, t, wt) = test_image(40, 33);
    let p = AugmentParams {
        elastic_sigma: 25.0,
        rotation_deg: 180.0,
        shift_px: 7.5,
        ..AugmentParams::default()
    };
    for seed in 0..8 {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let (i2, t2, w2) = augment(img.view(), t.view(), wt.view(), &p, &mut rng);
        assert_eq!(i2.dim(), img.dim());
        assert!(t2.iter().all(|v| *v < 3));
        assert!(
            w2.iter().all(|v| wt.iter().any(|o| o == v)),
            "weight value not in the input"
        );
        assert_ne!(t2, t, "seed {seed}: no deformation happened");
    }
}

#[test]
fn same_seed_same_result_and_seeds_differ() {
    let (img, t, wt) = test_image(30, 30);
    let p = AugmentParams::default();
    let a = augment(
        img.view(),
        t.view(),
        wt.view(),
        &p,
        &mut ChaCha8Rng::seed_from_u64(7),
    );
    let b = augment(
        img.view(),
        t.view(),
        wt.view(),
        &p,
        &mut ChaCha8Rng::seed_from_u64(7),
    );
    let c = augment(
        img.view(),
        t.view(),
        wt.view(),
        &p,
        &mut ChaCha8Rng::seed_from_u64(8),
    );
    assert_eq!(a, b);
    assert_ne!(a.0, c.0);
}

/// At the corner pixels of the grid the bicubic field equals the node displacement, drawn from
/// N(0, σ²): its sample standard deviation must be σ (not σ² or √σ).
#[test]
fn elastic_node_displacements_have_sigma_std() {
    let p = AugmentParams {
        elastic_sigma: 10.0,
        elastic_grid: 3,
        ..AugmentParams::none()
    };
    let (n, draws) = (21usize, 2000);
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let mut vals = Vec::new();
    for _ in 0..draws {
        let w = Warp::sample(&p, n, n, (10.0, 10.0), &mut rng);
        // Pixel (0, 0) has offset (−10, −10) from the centre: displacement = src − 0.
        vals.push(w.src_y[[0, 0]] as f64);
        vals.push(w.src_x[[n - 1, n - 1]] as f64 - 20.0);
        // Middle node (10, 10).
        vals.push(w.src_y[[10, 10]] as f64 - 10.0);
    }
    let m = vals.iter().sum::<f64>() / vals.len() as f64;
    let sd = (vals.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / (vals.len() - 1) as f64).sqrt();
    assert!(m.abs() < 0.6, "mean {m}");
    assert!((sd - 10.0).abs() < 0.5, "std {sd}");
}

#[test]
fn elastic_field_is_smooth() {
    let p = AugmentParams {
        elastic_sigma: 10.0,
        elastic_grid: 3,
        ..AugmentParams::none()
    };
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let w = Warp::sample(&p, 64, 64, (31.5, 31.5), &mut rng);
    // The displacement varies smoothly: second differences along a row are small (a bicubic
    // interpolation over 31.5-px node spacing), unlike independent per-pixel noise.
    let mut worst = 0.0f32;
    for i in 0..64 {
        for j in 0..62 {
            for a in [&w.src_y, &w.src_x] {
                let d2 = a[[i, j + 2]] - 2.0 * a[[i, j + 1]] + a[[i, j]];
                worst = worst.max(d2.abs());
            }
        }
    }
    assert!(worst < 0.25, "second difference {worst}");
    assert!(worst > 0.0, "no deformation");
}

#[test]
fn mirror_extrapolation_is_numpy_symmetric() {
    // np.pad(np.arange(3), 7, mode="symmetric")
    let want = [0, 0, 1, 2, 2, 1, 0, 0, 1, 2, 2, 1, 0, 0, 1, 2, 2];
    let got: Vec<usize> = (0..17).map(|k| symmetric_index(k as i64 - 7, 3)).collect();
    assert_eq!(got, want);
    // A grid larger than a 2×3 image: values repeat mirrored.
    let img = Array3::from_shape_fn((1, 2, 3), |(_, y, x)| (y * 3 + x) as f32);
    let w = Warp::identity(6, 9, (0.5, 1.0));
    let out = warp_image(&w, img.view());
    for i in 0..6 {
        for j in 0..9 {
            let y = symmetric_index(i as i64 - 2, 2);
            let x = symmetric_index(j as i64 - 3, 3);
            assert_eq!(out[[0, i, j]], (y * 3 + x) as f32);
        }
    }
}

fn shapes() -> impl Strategy<Value = Array2<u8>> {
    proptest::collection::vec((0usize..48, 0usize..48, 3usize..12), 1..6).prop_map(|discs| {
        Array2::from_shape_fn((48, 48), |(y, x)| {
            discs.iter().any(|&(cy, cx, r)| {
                let (dy, dx) = (y as i64 - cy as i64, x as i64 - cx as i64);
                dy * dy + dx * dx <= (r * r) as i64
            }) as u8
        })
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]
    /// The image is a copy of the target; after one joint transform, wherever the bilinear
    /// image value is exactly 0 or 1 (all four source pixels agree) the nearest-sampled target
    /// must carry the same value, and that must hold for most pixels.
    #[test]
    fn image_and_target_stay_aligned(t in shapes(), seed in any::<u64>()) {
        let img = t.mapv(f32::from).insert_axis(Axis(0));
        let wt = Array2::from_elem(t.dim(), 1.0f32);
        let p = AugmentParams { rotation_deg: 180.0, shift_px: 5.0, ..AugmentParams::default() };
        let p = AugmentParams { gamma: (1.0, 1.0), contrast: (1.0, 1.0), brightness: 0.0, ..p };
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let (i2, t2, _) = augment(img.view(), t.view(), wt.view(), &p, &mut rng);
        let mut exact = 0;
        for ((y, x), &tv) in t2.indexed_iter() {
            let v = i2[[0, y, x]];
            if v == 0.0 || v == 1.0 {
                exact += 1;
                prop_assert_eq!(tv as f32, v, "pixel ({}, {})", y, x);
            } else {
                // Mixed neighbourhood: the target is one of its values.
                prop_assert!(tv <= 1);
            }
        }
        prop_assert!(exact > t2.len() / 2);
    }
}

#[test]
fn nearest_warp_on_crop_matches_full_warp() {
    let (img, t, _) = test_image(20, 20);
    let p = AugmentParams::default();
    let w = Warp::sample(&p, 20, 20, (9.5, 9.5), &mut ChaCha8Rng::seed_from_u64(5));
    let full = warp_nearest(&w, t.view());
    let part = warp_nearest(&w.crop(4, 3, 10, 12), t.view());
    assert_eq!(part, full.slice(ndarray::s![4..14, 3..15]));
    assert_eq!(warp_image(&w, img.view()).dim(), (2, 20, 20));
}

/// Nearest sampling picks, among the four pixels bilinear interpolation blends, the one with the
/// largest bilinear weight: labels stay aligned with the image to within half a pixel.
#[test]
fn nearest_is_the_heaviest_bilinear_corner() {
    let (h, w) = (23usize, 19usize);
    // Unique value per pixel, so the chosen source pixel can be read back.
    let ids = Array2::from_shape_fn((h, w), |(y, x)| (y * w + x) as u32);
    let p = AugmentParams {
        rotation_deg: 180.0,
        shift_px: 3.0,
        ..AugmentParams::default()
    };
    let mut checked = 0;
    for seed in 0..6 {
        let warp = Warp::sample(
            &p,
            30,
            30,
            (11.0, 9.0),
            &mut ChaCha8Rng::seed_from_u64(seed),
        );
        let got = warp_nearest(&warp, ids.view());
        for ((i, j), &g) in got.indexed_iter() {
            let (sy, sx) = (warp.src_y[[i, j]] as f64, warp.src_x[[i, j]] as f64);
            let (ty, tx) = (sy - sy.floor(), sx - sx.floor());
            if (ty - 0.5).abs() < 1e-3 || (tx - 0.5).abs() < 1e-3 {
                continue;
            }
            let y = symmetric_index(sy.floor() as i64 + (ty > 0.5) as i64, h);
            let x = symmetric_index(sx.floor() as i64 + (tx > 0.5) as i64, w);
            assert_eq!(g, ids[[y, x]], "seed {seed} ({i},{j}) src ({sy},{sx})");
            checked += 1;
        }
    }
    assert!(checked > 5000);
}
