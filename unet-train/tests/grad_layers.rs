//! Every CPU layer's forward against a naive formula and its backward against central finite
//! differences, then the whole network's parameter gradients against finite differences.
//!
//! Finite differences are taken on `L = Σ r ⊙ y` (fixed random `r`) evaluated in f64 from the f32
//! outputs. Convolutions, up-convolutions and the concat are linear in each argument, so the
//! central difference has no truncation error and only f32 rounding of `y` (~1e-7·|y|/h) limits
//! it: tolerance 1e-3 relative with h = 0.05. ReLU and max-pool are piecewise linear; a step of
//! h = 1e-3 crosses a kink only if a pre-activation lies within 1e-3·|∂y/∂θ| of 0, which the
//! tests avoid by using few parameters and checking the result against a generous 2 % relative
//! error (plus 2e-3 absolute) — a wrong routing or a missing term produces errors of order 100 %.

use ndarray::{Array1, Array3, ArrayView3};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use unet_core::{Config, Padding, ParamId};
use unet_train::backend::cpu::{conv, network, pool, skip, upconv};
use unet_train::init::he_init;
use unet_train::loss::sample_loss;

fn rand3(rng: &mut ChaCha8Rng, shape: (usize, usize, usize)) -> Array3<f32> {
    Array3::from_shape_simple_fn(shape, || rng.random_range(-1.0f32..1.0))
}

fn randv(rng: &mut ChaCha8Rng, n: usize) -> Vec<f32> {
    (0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect()
}

fn dot(a: ArrayView3<'_, f32>, r: &Array3<f32>) -> f64 {
    a.iter()
        .zip(r.iter())
        .map(|(&x, &y)| x as f64 * y as f64)
        .sum()
}

fn close(fd: f64, an: f64, rel: f64, abs: f64) -> bool {
    (fd - an).abs() <= rel * fd.abs().max(an.abs()) + abs
}

/// Naive 3×3 convolution (f64 accumulation).
fn naive_conv3x3(x: &Array3<f32>, w: &[f32], b: &[f32], pad: usize, relu: bool) -> Array3<f32> {
    let (cin, h, wd) = x.dim();
    let cout = b.len();
    let (oh, ow) = (h + 2 * pad - 2, wd + 2 * pad - 2);
    Array3::from_shape_fn((cout, oh, ow), |(co, y, xx)| {
        let mut acc = b[co] as f64;
        for ci in 0..cin {
            for i in 0..3 {
                for j in 0..3 {
                    let (yi, xi) = (
                        y as isize + i as isize - pad as isize,
                        xx as isize + j as isize - pad as isize,
                    );
                    if yi >= 0 && xi >= 0 && (yi as usize) < h && (xi as usize) < wd {
                        acc += x[[ci, yi as usize, xi as usize]] as f64
                            * w[((co * cin + ci) * 3 + i) * 3 + j] as f64;
                    }
                }
            }
        }
        let v = acc as f32;
        if relu {
            v.max(0.0)
        } else {
            v
        }
    })
}

#[test]
fn conv3x3_forward_and_backward() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    for (padding, pad) in [(Padding::Valid, 0), (Padding::Same, 1)] {
        let (cin, cout, h, wd) = (3, 4, 6, 7);
        let x = rand3(&mut rng, (cin, h, wd));
        let w = randv(&mut rng, cout * cin * 9);
        let b = randv(&mut rng, cout);
        let y = conv::conv3x3_forward(x.view(), &w, &b, padding, false);
        let yn = naive_conv3x3(&x, &w, &b, pad, false);
        assert_eq!(y.dim(), yn.dim());
        for (a, n) in y.iter().zip(yn.iter()) {
            assert!((a - n).abs() < 1e-5, "{padding:?} forward {a} vs {n}");
        }
        let yr = conv::conv3x3_forward(x.view(), &w, &b, padding, true);
        assert!(yr.iter().zip(y.iter()).all(|(r, v)| *r == v.max(0.0)));
        let mut xn = x.clone();
        xn[[0, 2, 2]] = f32::NAN;
        let yn = conv::conv3x3_forward(xn.view(), &w, &b, padding, true);
        assert!(yn[[0, 1, 1]].is_nan(), "ReLU must propagate NaN");

        let r = rand3(&mut rng, y.dim());
        let mut dw = vec![0.0f32; w.len()];
        let mut db = vec![0.0f32; cout];
        let dx = conv::conv3x3_backward(x.view(), &w, r.view(), padding, &mut dw, &mut db, true)
            .unwrap();
        let loss = |x: &Array3<f32>, w: &[f32], b: &[f32]| {
            dot(
                conv::conv3x3_forward(x.view(), w, b, padding, false).view(),
                &r,
            )
        };
        let h_ = 0.05f32;
        for k in (0..w.len()).step_by(7) {
            let (mut wp, mut wm) = (w.clone(), w.clone());
            wp[k] += h_;
            wm[k] -= h_;
            let fd = (loss(&x, &wp, &b) - loss(&x, &wm, &b)) / (2.0 * h_ as f64);
            assert!(
                close(fd, dw[k] as f64, 1e-3, 1e-4),
                "{padding:?} dw[{k}] fd {fd} an {}",
                dw[k]
            );
        }
        for k in 0..cout {
            let (mut bp, mut bm) = (b.clone(), b.clone());
            bp[k] += h_;
            bm[k] -= h_;
            let fd = (loss(&x, &w, &bp) - loss(&x, &w, &bm)) / (2.0 * h_ as f64);
            assert!(
                close(fd, db[k] as f64, 1e-3, 1e-4),
                "{padding:?} db[{k}] fd {fd} an {}",
                db[k]
            );
        }
        for (idx, _) in x.indexed_iter().step_by(5) {
            let (mut xp, mut xm) = (x.clone(), x.clone());
            xp[idx] += h_;
            xm[idx] -= h_;
            let fd = (loss(&xp, &w, &b) - loss(&xm, &w, &b)) / (2.0 * h_ as f64);
            assert!(
                close(fd, dx[idx] as f64, 1e-3, 1e-4),
                "{padding:?} dx{idx:?} fd {fd} an {}",
                dx[idx]
            );
        }
        // Gradients accumulate: a second call doubles them.
        let dw1 = dw.clone();
        conv::conv3x3_backward(x.view(), &w, r.view(), padding, &mut dw, &mut db, false);
        assert!(dw
            .iter()
            .zip(&dw1)
            .all(|(a, b)| (a - 2.0 * b).abs() <= 1e-5 * b.abs().max(1.0)));
    }
}

#[test]
fn conv3x3_blocks_cover_large_maps() {
    // Many input channels × wide rows (a 221 M-element im2col matrix if it were materialised):
    // long GEMM depths, many column jobs, large strides in the weight-gradient views.
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let (cin, cout, h, wd) = (2048usize, 1, 12, 1000);
    let x = rand3(&mut rng, (cin, h, wd));
    let w = randv(&mut rng, cout * cin * 9);
    let b = randv(&mut rng, cout);
    let y = conv::conv3x3_forward(x.view(), &w, &b, Padding::Valid, false);
    let yn = naive_conv3x3(&x, &w, &b, 0, false);
    for (a, n) in y.iter().zip(yn.iter()) {
        assert!((a - n).abs() < 2e-3, "{a} vs {n}");
    }
    let r = rand3(&mut rng, y.dim());
    let mut dw = vec![0.0f32; w.len()];
    let mut db = vec![0.0f32; cout];
    let dx = conv::conv3x3_backward(
        x.view(),
        &w,
        r.view(),
        Padding::Valid,
        &mut dw,
        &mut db,
        true,
    )
    .unwrap();
    // Spot-check against the direct sums ∂L/∂w = Σ r·x, ∂L/∂x = Σ r·w (f64).
    for &(ci, i, j) in &[(0usize, 0usize, 0usize), (1000, 1, 2), (2047, 2, 1)] {
        let mut want = 0.0f64;
        for y in 0..h - 2 {
            for xx in 0..wd - 2 {
                want += r[[0, y, xx]] as f64 * x[[ci, y + i, xx + j]] as f64;
            }
        }
        let got = dw[(ci * 3 + i) * 3 + j] as f64;
        assert!(
            (got - want).abs() < 1e-3 * want.abs().max(1.0),
            "dw {got} vs {want}"
        );
    }
    for &(ci, y, xx) in &[(5usize, 0usize, 0usize), (77, 6, 500), (2000, 11, 999)] {
        let mut want = 0.0f64;
        for i in 0..3 {
            for j in 0..3 {
                let (oy, ox) = (y as isize - i as isize, xx as isize - j as isize);
                if oy >= 0 && ox >= 0 && (oy as usize) < h - 2 && (ox as usize) < wd - 2 {
                    want +=
                        r[[0, oy as usize, ox as usize]] as f64 * w[(ci * 3 + i) * 3 + j] as f64;
                }
            }
        }
        assert!(
            (dx[[ci, y, xx]] as f64 - want).abs() < 1e-4,
            "dx {} vs {want}",
            dx[[ci, y, xx]]
        );
    }
}

#[test]
fn conv1x1_forward_and_backward() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let (c, k, h, wd) = (5, 3, 4, 6);
    let x = rand3(&mut rng, (c, h, wd));
    let w = randv(&mut rng, k * c);
    let b = randv(&mut rng, k);
    let y = conv::conv1x1_forward(x.view(), &w, &b);
    for ((kk, yy, xx), v) in y.indexed_iter() {
        let want: f64 = b[kk] as f64
            + (0..c)
                .map(|ci| w[kk * c + ci] as f64 * x[[ci, yy, xx]] as f64)
                .sum::<f64>();
        assert!((*v as f64 - want).abs() < 1e-5);
    }
    let r = rand3(&mut rng, y.dim());
    let (mut dw, mut db) = (vec![0.0; w.len()], vec![0.0; k]);
    let dx = conv::conv1x1_backward(x.view(), &w, r.view(), &mut dw, &mut db);
    let loss = |x: &Array3<f32>, w: &[f32], b: &[f32]| {
        dot(conv::conv1x1_forward(x.view(), w, b).view(), &r)
    };
    let h_ = 0.05f32;
    for kk in 0..w.len() {
        let (mut wp, mut wm) = (w.clone(), w.clone());
        wp[kk] += h_;
        wm[kk] -= h_;
        let fd = (loss(&x, &wp, &b) - loss(&x, &wm, &b)) / (2.0 * h_ as f64);
        assert!(close(fd, dw[kk] as f64, 1e-3, 1e-4));
    }
    for kk in 0..k {
        let (mut bp, mut bm) = (b.clone(), b.clone());
        bp[kk] += h_;
        bm[kk] -= h_;
        let fd = (loss(&x, &w, &bp) - loss(&x, &w, &bm)) / (2.0 * h_ as f64);
        assert!(close(fd, db[kk] as f64, 1e-3, 1e-4));
    }
    for (idx, _) in x.indexed_iter().step_by(3) {
        let (mut xp, mut xm) = (x.clone(), x.clone());
        xp[idx] += h_;
        xm[idx] -= h_;
        let fd = (loss(&xp, &w, &b) - loss(&xm, &w, &b)) / (2.0 * h_ as f64);
        assert!(close(fd, dx[idx] as f64, 1e-3, 1e-4));
    }
}

#[test]
fn up2x2_forward_and_backward() {
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let (cin, cout, h, wd) = (4, 3, 3, 5);
    let x = rand3(&mut rng, (cin, h, wd));
    let w = randv(&mut rng, cin * cout * 4);
    let b = randv(&mut rng, cout);
    let y = upconv::up2x2_forward(x.view(), &w, &b);
    assert_eq!(y.dim(), (cout, 2 * h, 2 * wd));
    for ((co, yy, xx), v) in y.indexed_iter() {
        let (i, j) = (yy % 2, xx % 2);
        let want: f64 = b[co] as f64
            + (0..cin)
                .map(|ci| {
                    x[[ci, yy / 2, xx / 2]] as f64 * w[((ci * cout + co) * 2 + i) * 2 + j] as f64
                })
                .sum::<f64>();
        assert!((*v as f64 - want).abs() < 1e-5);
    }
    let r = rand3(&mut rng, y.dim());
    let (mut dw, mut db) = (vec![0.0; w.len()], vec![0.0; cout]);
    let dx = upconv::up2x2_backward(x.view(), &w, r.view(), &mut dw, &mut db);
    let loss = |x: &Array3<f32>, w: &[f32], b: &[f32]| {
        dot(upconv::up2x2_forward(x.view(), w, b).view(), &r)
    };
    let h_ = 0.05f32;
    for kk in 0..w.len() {
        let (mut wp, mut wm) = (w.clone(), w.clone());
        wp[kk] += h_;
        wm[kk] -= h_;
        let fd = (loss(&x, &wp, &b) - loss(&x, &wm, &b)) / (2.0 * h_ as f64);
        assert!(
            close(fd, dw[kk] as f64, 1e-3, 1e-4),
            "dw[{kk}] {fd} {}",
            dw[kk]
        );
    }
    for kk in 0..cout {
        let (mut bp, mut bm) = (b.clone(), b.clone());
        bp[kk] += h_;
        bm[kk] -= h_;
        let fd = (loss(&x, &w, &bp) - loss(&x, &w, &bm)) / (2.0 * h_ as f64);
        assert!(close(fd, db[kk] as f64, 1e-3, 1e-4));
    }
    for (idx, _) in x.indexed_iter() {
        let (mut xp, mut xm) = (x.clone(), x.clone());
        xp[idx] += h_;
        xm[idx] -= h_;
        let fd = (loss(&xp, &w, &b) - loss(&xm, &w, &b)) / (2.0 * h_ as f64);
        assert!(close(fd, dx[idx] as f64, 1e-3, 1e-4));
    }
}

#[test]
fn maxpool_forward_and_backward() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let x = rand3(&mut rng, (3, 6, 8));
    let (y, idx) = pool::maxpool_forward(x.view());
    for ((c, yy, xx), v) in y.indexed_iter() {
        let m = [
            x[[c, 2 * yy, 2 * xx]],
            x[[c, 2 * yy, 2 * xx + 1]],
            x[[c, 2 * yy + 1, 2 * xx]],
            x[[c, 2 * yy + 1, 2 * xx + 1]],
        ]
        .into_iter()
        .fold(f32::NEG_INFINITY, f32::max);
        assert_eq!(*v, m);
    }
    let r = rand3(&mut rng, y.dim());
    let dx = pool::maxpool_backward(r.view(), &idx, 6, 8);
    let loss = |x: &Array3<f32>| dot(pool::maxpool_forward(x.view()).0.view(), &r);
    let h_ = 1e-3f32;
    for (i, _) in x.indexed_iter() {
        let (mut xp, mut xm) = (x.clone(), x.clone());
        xp[i] += h_;
        xm[i] -= h_;
        let fd = (loss(&xp) - loss(&xm)) / (2.0 * h_ as f64);
        assert!(
            close(fd, dx[i] as f64, 2e-2, 2e-3),
            "dx{i:?} fd {fd} an {}",
            dx[i]
        );
    }
    // Ties go to the first position of the window in row-major order.
    let t = Array3::from_elem((1, 2, 2), 1.0f32);
    assert_eq!(pool::maxpool_forward(t.view()).1, vec![0]);
}

#[test]
fn crop_concat_is_adjoint_of_split() {
    let mut rng = ChaCha8Rng::seed_from_u64(6);
    let s = rand3(&mut rng, (2, 9, 10));
    let u = rand3(&mut rng, (3, 5, 4));
    let cat = skip::crop_concat(s.view(), 2, 3, u.view());
    assert_eq!(cat.dim(), (5, 5, 4));
    assert_eq!(cat[[1, 0, 0]], s[[1, 2, 3]]);
    assert_eq!(cat[[4, 4, 3]], u[[2, 4, 3]]);
    let r = rand3(&mut rng, cat.dim());
    let mut ds = Array3::<f32>::zeros(s.dim());
    let du = skip::split_crop_concat(&r, 2, 3, ds.view_mut());
    let lhs = dot(cat.view(), &r);
    let rhs: f64 = dot(s.view(), &ds) + dot(u.view(), &du);
    assert!((lhs - rhs).abs() < 1e-9 * lhs.abs().max(1.0));
    assert_eq!(ds[[0, 0, 0]], 0.0);
}

/// Whole network: parameter gradients of the weighted cross-entropy against central
/// differences, for valid and same padding, one to three levels, with and without a dropout
/// mask; and the memory-saving evaluation forward gives the same logits.
#[test]
fn network_gradients_match_finite_differences() {
    for (levels, padding, size, mask_on) in [
        (2, Padding::Valid, 28usize, false),
        (2, Padding::Same, 8, true),
        (2, Padding::Valid, 28, true),
        (1, Padding::Valid, 9, true),
        (3, Padding::Same, 12, false),
    ] {
        let cfg = Config {
            in_channels: 2,
            num_classes: 3,
            base_channels: 2,
            levels,
            padding,
        };
        let mut params = he_init(&cfg, 11).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(12);
        for k in 0..params.len() {
            if params.id(k).to_string().ends_with("bias") {
                for v in params.data_mut(k) {
                    *v = rng.random_range(-0.1f32..0.1);
                }
            }
        }
        let x = rand3(&mut rng, (2, size, size));
        let (logits, _) = network::forward(&params, x.view(), None).unwrap();
        assert_eq!(network::forward_eval(&params, x.view()).unwrap(), logits);
        let (_, oh, ow) = logits.dim();
        let target =
            ndarray::Array2::from_shape_fn((oh, ow), |(y, xx)| ((y * 3 + xx * 7) % 3) as u8);
        let weight = ndarray::Array2::from_shape_fn((oh, ow), |(y, xx)| {
            if (y + xx) % 5 == 0 {
                0.0
            } else {
                0.5 + ((y * xx) % 4) as f32
            }
        });
        let bottom = {
            let (sh, sw) = network::sizes(&cfg, size, size).unwrap();
            let l = levels - 1;
            (cfg.channels(l).unwrap(), sh.enc_out[l], sw.enc_out[l])
        };
        let mask = mask_on.then(|| {
            Array3::from_shape_simple_fn(bottom, || {
                if rng.random::<f32>() < 0.3 {
                    0.0
                } else {
                    1.0 / 0.7
                }
            })
        });
        let scale = 1.0 / (oh * ow) as f64;
        let eval = |p: &unet_train::params::Params| -> f64 {
            let (l, _) = network::forward(p, x.view(), mask.as_ref()).unwrap();
            sample_loss(l.view(), target.view(), weight.view(), scale)
                .unwrap()
                .0
                * scale
        };
        let (l, acts) = network::forward(&params, x.view(), mask.as_ref()).unwrap();
        let (_, dl) = sample_loss(l.view(), target.view(), weight.view(), scale).unwrap();
        let mut grads = params.zeros_like();
        network::backward(&params, &acts, mask.as_ref(), dl.view(), &mut grads).unwrap();
        let mut checked = 0;
        for k in 0..params.len() {
            let n = params.data(k).len();
            let picks: Array1<usize> = Array1::from_iter((0..3).map(|j| (j * 7919 + k * 31) % n));
            for &e in picks.iter() {
                let an = grads.data(k)[e] as f64;
                let orig = params.data(k)[e];
                // The loss is piecewise smooth with many ReLU/max-pool kinks: the central
                // difference converges to the gradient as h shrinks, until f32 rounding of the
                // loss (~1e-7/h) takes over. Accept the best of three step sizes.
                let mut fds = Vec::new();
                for h_ in [1e-3f32, 3e-4, 1e-4] {
                    params.data_mut(k)[e] = orig + h_;
                    let lp = eval(&params);
                    params.data_mut(k)[e] = orig - h_;
                    let lm = eval(&params);
                    params.data_mut(k)[e] = orig;
                    fds.push((lp - lm) / (2.0 * h_ as f64));
                }
                assert!(
                    fds.iter().any(|&fd| close(fd, an, 2e-2, 2e-4)),
                    "{padding:?} mask={mask_on} {} [{e}]: fd {fds:?} analytic {an}",
                    params.id(k)
                );
                checked += 1;
            }
        }
        assert!(checked >= 3 * params.len());
        assert!(grads.data(0).iter().any(|&v| v != 0.0));
        let _ = ParamId::Head { bias: true };
    }
}
