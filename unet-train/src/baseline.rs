//! The simple threshold baseline for segmentation comparisons: Gaussian blur, then a global Otsu
//! threshold (Otsu 1979), foreground on the bright or the dark side.
//!
//! A U-Net should beat this; if it does not, the task (or the training) is suspect.

use ndarray::{Array2, ArrayView2, Axis};

/// Which side of the threshold is foreground.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Polarity {
    /// Foreground = pixels above the threshold (bright objects on a dark background).
    Bright,
    /// Foreground = pixels below the threshold (dark objects on a bright background).
    Dark,
    /// The polarity whose foreground is the smaller part of the image (objects such as cells
    /// are usually the minority); a tie picks [`Polarity::Bright`].
    Auto,
}

/// Number of histogram bins of [`otsu_threshold`].
pub const OTSU_BINS: usize = 256;

/// Otsu's threshold of `values`: the histogram of the finite values (256 equal bins between
/// their minimum and maximum) is split into a low class (bins `0..=t`) and a high class where
/// the between-class variance `w0·w1·(μ0 − μ1)²` (bin centres) is largest; the threshold is the
/// upper edge of bin `t`. When several adjacent splits give the same maximum (empty bins
/// between two modes), the middle of that run is taken, i.e. the middle of the gap.
///
/// Non-finite values are ignored. A constant input returns that value; an input without finite
/// values returns NaN.
pub fn otsu_threshold(values: &[f32]) -> f32 {
    let (lo, hi) = values
        .iter()
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| {
            (a.min(v as f64), b.max(v as f64))
        });
    if lo > hi {
        return f32::NAN;
    }
    if lo == hi {
        return lo as f32;
    }
    let width = (hi - lo) / OTSU_BINS as f64;
    let mut hist = [0u64; OTSU_BINS];
    for &v in values.iter().filter(|v| v.is_finite()) {
        let b = ((v as f64 - lo) / width) as usize;
        hist[b.min(OTSU_BINS - 1)] += 1;
    }
    // In bin-index units (centre of bin i = i + 0.5); the threshold is converted at the end.
    let total: f64 = hist.iter().map(|&c| c as f64).sum();
    let sum_all: f64 = hist
        .iter()
        .enumerate()
        .map(|(i, &c)| c as f64 * (i as f64 + 0.5))
        .sum();
    let (mut n0, mut s0) = (0.0f64, 0.0f64);
    let mut best = f64::NEG_INFINITY;
    let (mut first, mut last) = (0usize, 0usize);
    let mut in_run = false;
    for (t, &c) in hist.iter().enumerate().take(OTSU_BINS - 1) {
        n0 += c as f64;
        s0 += c as f64 * (t as f64 + 0.5);
        let n1 = total - n0;
        let var = if n0 > 0.0 && n1 > 0.0 {
            let d = s0 / n0 - (sum_all - s0) / n1;
            n0 * n1 * d * d
        } else {
            f64::NEG_INFINITY
        };
        if var > best {
            best = var;
            (first, last) = (t, t);
            in_run = true;
        } else if var == best && in_run {
            last = t;
        } else {
            in_run = false;
        }
    }
    let t = (first + last) as f64 / 2.0;
    (lo + (t + 1.0) * width) as f32
}

/// Reflect index `i` into `0..n` with the edge sample repeated (`… b a | a b c … | c b …`),
/// for any `i` (period `2n`). `n ≥ 1`.
fn reflect(i: i64, n: usize) -> usize {
    let p = 2 * n as i64;
    let m = i.rem_euclid(p) as usize;
    if m < n {
        m
    } else {
        2 * n - 1 - m
    }
}

/// Normalised 1-D Gaussian weights for offsets `-r..=r`, `r = ceil(3σ)`.
fn kernel(sigma: f64, r: usize) -> Vec<f64> {
    let w: Vec<f64> = (-(r as i64)..=r as i64)
        .map(|k| {
            let z = k as f64 / sigma;
            (-0.5 * z * z).exp()
        })
        .collect();
    let s: f64 = w.iter().sum();
    w.into_iter().map(|v| v / s).collect()
}

/// Blurs every lane of `a` along `axis` in place with the mirrored-border kernel of `sigma`.
fn blur_axis(a: &mut Array2<f32>, axis: Axis, sigma: f64) {
    let n = a.len_of(axis);
    if n == 0 {
        return;
    }
    let mut line = vec![0f64; n];
    // Kernel folded onto the 2n-periodic reflected signal: weight of offset m in 0..2n. For
    // σ ≥ 2n the folded Gaussian is uniform to better than 1e-8 (Poisson summation), so the
    // lane mean is used without building a huge kernel.
    let period = 2 * n;
    let folded: Option<Vec<f64>> = if sigma >= period as f64 {
        None
    } else {
        let r = (3.0 * sigma).ceil() as usize;
        let k = kernel(sigma, r);
        let mut f = vec![0f64; period.min(2 * r + 1)];
        if 2 * r < period {
            // No wrap-around: offsets -r..=r stored at index k + r (applied as i - r + idx).
            f.copy_from_slice(&k);
        } else {
            for (j, w) in k.iter().enumerate() {
                let off = j as i64 - r as i64;
                f[off.rem_euclid(period as i64) as usize] += w;
            }
        }
        Some(f)
    };
    let r = (3.0 * sigma).ceil() as i64;
    for mut lane in a.lanes_mut(axis) {
        for (d, &v) in line.iter_mut().zip(lane.iter()) {
            *d = v as f64;
        }
        match &folded {
            None => {
                let mean = line.iter().sum::<f64>() / n as f64;
                lane.fill(mean as f32);
            }
            Some(f) if f.len() < period => {
                for (i, out) in lane.iter_mut().enumerate() {
                    let acc: f64 = f
                        .iter()
                        .enumerate()
                        .map(|(j, w)| w * line[reflect(i as i64 + j as i64 - r, n)])
                        .sum();
                    *out = acc as f32;
                }
            }
            Some(f) => {
                for (i, out) in lane.iter_mut().enumerate() {
                    let acc: f64 = f
                        .iter()
                        .enumerate()
                        .map(|(m, w)| w * line[reflect(i as i64 + m as i64, n)])
                        .sum();
                    *out = acc as f32;
                }
            }
        }
    }
}

/// Gaussian blur of `image` (`[H, W]`, any layout) with standard deviation `sigma` pixels:
/// separable (rows, then columns), kernel radius `ceil(3σ)` normalised to sum 1, borders
/// mirrored with the edge pixel repeated (`… b a | a b c …`, scipy's `reflect`), applied as
/// often as needed when the kernel is wider than the image. `sigma = 0` (or negative or not
/// finite) returns a copy. Accumulates in f64. Cost `O(H·W·min(6σ, 2·max(H, W)))`.
pub fn gaussian_blur(image: ArrayView2<'_, f32>, sigma: f32) -> Array2<f32> {
    let mut out = image.to_owned();
    if !(sigma.is_finite() && sigma > 0.0) || out.is_empty() {
        return out;
    }
    blur_axis(&mut out, Axis(1), sigma as f64);
    blur_axis(&mut out, Axis(0), sigma as f64);
    out
}

/// Segments `image` (`[H, W]`) by [`gaussian_blur`] with `sigma`, then [`otsu_threshold`] of
/// the blurred values: foreground (1) are the pixels strictly above (`Bright`) or strictly
/// below (`Dark`) the threshold, everything else (including NaN) is background (0). `Auto`
/// picks the side with fewer foreground pixels. A constant image gives an empty mask.
pub fn threshold_baseline(
    image: ArrayView2<'_, f32>,
    sigma: f32,
    polarity: Polarity,
) -> Array2<u8> {
    let blurred = gaussian_blur(image, sigma);
    let flat: Vec<f32> = blurred.iter().copied().collect();
    let t = otsu_threshold(&flat);
    let polarity = match polarity {
        Polarity::Auto => {
            let above = flat.iter().filter(|&&v| v > t).count();
            let below = flat.iter().filter(|&&v| v < t).count();
            if below < above {
                Polarity::Dark
            } else {
                Polarity::Bright
            }
        }
        p => p,
    };
    blurred.mapv(|v| match polarity {
        Polarity::Dark => (v < t) as u8,
        _ => (v > t) as u8,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;
    use rand_distr::{Distribution, Normal};

    /// Between-class variance (times n²) of splitting `v` into `≤ t` and `> t`, on raw values.
    fn between(v: &[f64], t: f64) -> f64 {
        let (lo, hi): (Vec<f64>, Vec<f64>) = v.iter().partition(|&&x| x <= t);
        if lo.is_empty() || hi.is_empty() {
            return 0.0;
        }
        let m0 = lo.iter().sum::<f64>() / lo.len() as f64;
        let m1 = hi.iter().sum::<f64>() / hi.len() as f64;
        lo.len() as f64 * hi.len() as f64 * (m0 - m1) * (m0 - m1)
    }

    #[test]
    fn otsu_bimodal_between_modes_and_near_brute_force_optimum() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        for (a, b, na, nb) in [
            (0.2, 0.8, 3000, 1000),
            (-5.0, 3.0, 500, 2500),
            (10.0, 11.0, 800, 800),
        ] {
            let sd = (b - a) * 0.08;
            let (da, db) = (Normal::new(a, sd).unwrap(), Normal::new(b, sd).unwrap());
            let mut v: Vec<f32> = (0..na).map(|_| da.sample(&mut rng) as f32).collect();
            v.extend((0..nb).map(|_| db.sample(&mut rng) as f32));
            v.push(f32::NAN); // ignored
            let t = otsu_threshold(&v) as f64;
            let lo_mode = a + 2.0 * sd;
            let hi_mode = b - 2.0 * sd;
            assert!(
                t > lo_mode && t < hi_mode,
                "threshold {t} not between {a} and {b}"
            );
            // Exhaustive: every cut between consecutive sorted values.
            let mut s: Vec<f64> = v
                .iter()
                .filter(|x| x.is_finite())
                .map(|&x| x as f64)
                .collect();
            s.sort_by(f64::total_cmp);
            let best = s
                .windows(2)
                .map(|w| between(&s, (w[0] + w[1]) / 2.0))
                .fold(0.0f64, f64::max);
            let got = between(&s, t);
            assert!(got >= best * 0.999, "variance {got} vs brute-force {best}");
        }
    }

    #[test]
    fn otsu_edge_cases() {
        assert_eq!(otsu_threshold(&[0.25; 10]), 0.25);
        assert!(otsu_threshold(&[]).is_nan());
        assert!(otsu_threshold(&[f32::NAN, f32::INFINITY]).is_nan());
        // Two values: the threshold splits them, in the middle of the empty gap.
        let t = otsu_threshold(&[0.0, 0.0, 1.0, 1.0, 1.0]);
        assert!((t - 0.5).abs() < 0.01, "{t}");
        // Extreme range does not overflow.
        let t = otsu_threshold(&[-f32::MAX, f32::MAX]);
        assert!(t.is_finite() && t > -f32::MAX && t < f32::MAX);
    }

    /// Direct 2-D convolution with the product kernel and the same border rule, written
    /// independently of the separable code.
    fn blur_direct(img: &Array2<f32>, sigma: f64) -> Array2<f32> {
        let (h, w) = img.dim();
        let r = (3.0 * sigma).ceil() as i64;
        let g = |k: i64| (-(k * k) as f64 / (2.0 * sigma * sigma)).exp();
        let norm: f64 = (-r..=r).map(g).sum();
        let refl = |i: i64, n: usize| -> usize {
            let n = n as i64;
            let mut i = i;
            loop {
                if i < 0 {
                    i = -i - 1;
                } else if i >= n {
                    i = 2 * n - 1 - i;
                } else {
                    return i as usize;
                }
            }
        };
        Array2::from_shape_fn((h, w), |(y, x)| {
            let mut acc = 0.0;
            for dy in -r..=r {
                for dx in -r..=r {
                    let v = img[[refl(y as i64 + dy, h), refl(x as i64 + dx, w)]] as f64;
                    acc += g(dy) * g(dx) * v;
                }
            }
            (acc / (norm * norm)) as f32
        })
    }

    #[test]
    fn blur_matches_direct_convolution() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let img = Array2::from_shape_fn((7, 11), |_| rng.random::<f32>());
        // 0.6: radius 2; 1.5: radius 5 (wider than the 7 rows: reflected more than once).
        for sigma in [0.6f32, 1.5, 4.0] {
            let got = gaussian_blur(img.view(), sigma);
            let want = blur_direct(&img, sigma as f64);
            for (g, w) in got.iter().zip(&want) {
                assert!((g - w).abs() < 1e-5, "sigma {sigma}: {g} vs {w}");
            }
        }
        // Transposed (non-standard layout) input gives the transposed result.
        let t = gaussian_blur(img.t(), 1.0);
        let want = blur_direct(&img.t().to_owned(), 1.0);
        for (g, w) in t.iter().zip(&want) {
            assert!((g - w).abs() < 1e-5);
        }
    }

    #[test]
    fn blur_constant_and_degenerate() {
        let c = Array2::from_elem((9, 5), 0.7f32);
        for sigma in [0.5f32, 2.0, 100.0, 1e30] {
            let b = gaussian_blur(c.view(), sigma);
            for v in &b {
                assert!((v - 0.7).abs() < 1e-6, "sigma {sigma}: {v}");
            }
        }
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let img = Array2::from_shape_fn((6, 4), |_| rng.random::<f32>());
        assert_eq!(gaussian_blur(img.view(), 0.0), img);
        assert_eq!(gaussian_blur(img.view(), -1.0), img);
        assert_eq!(gaussian_blur(img.view(), f32::NAN), img);
        // Mean preserved for a random image with a huge sigma (reflection keeps mass).
        let b = gaussian_blur(img.view(), 1e6);
        let mean = img.mean().unwrap();
        assert!(b.iter().all(|v| (v - mean).abs() < 1e-5));
        assert_eq!(
            gaussian_blur(Array2::<f32>::zeros((0, 3)).view(), 1.0).dim(),
            (0, 3)
        );
        assert_eq!(
            gaussian_blur(Array2::<f32>::ones((1, 1)).view(), 2.0)[[0, 0]],
            1.0
        );
    }

    #[test]
    fn dark_cells_auto_polarity() {
        let (h, w) = (64, 80);
        let cells = [(16.0, 20.0, 7.0), (40.0, 55.0, 9.0), (48.0, 18.0, 6.0)];
        let truth = Array2::from_shape_fn((h, w), |(y, x)| {
            cells
                .iter()
                .any(|&(cy, cx, r)| (y as f64 - cy).powi(2) + (x as f64 - cx).powi(2) <= r * r)
                as u8
        });
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let noise = Normal::new(0.0, 0.05).unwrap();
        let img = truth.mapv(|t| if t == 1 { 0.25 } else { 0.8 } + noise.sample(&mut rng) as f32);
        let frac = truth.iter().filter(|&&t| t == 1).count() as f64 / (h * w) as f64;
        assert!(frac < 0.3);
        let auto = threshold_baseline(img.view(), 1.0, Polarity::Auto);
        let dark = threshold_baseline(img.view(), 1.0, Polarity::Dark);
        let bright = threshold_baseline(img.view(), 1.0, Polarity::Bright);
        assert_eq!(auto, dark);
        assert!(auto.iter().all(|&v| v <= 1));
        let inter = auto
            .iter()
            .zip(&truth)
            .filter(|(a, t)| **a == 1 && **t == 1)
            .count();
        let union = auto
            .iter()
            .zip(&truth)
            .filter(|(a, t)| **a == 1 || **t == 1)
            .count();
        assert!(
            inter as f64 / union as f64 > 0.9,
            "IoU {}",
            inter as f64 / union as f64
        );
        // Bright is the complement (no pixel sits exactly on the threshold here).
        assert!(bright.iter().zip(&dark).all(|(b, d)| b + d == 1));
        // Inverted image: Auto now picks Bright and finds the same cells.
        let inv = img.mapv(|v| 1.0 - v);
        let inv_auto = threshold_baseline(inv.view(), 1.0, Polarity::Auto);
        let differ = inv_auto.iter().zip(&dark).filter(|(a, b)| a != b).count();
        assert!(differ * 100 < h * w, "{differ} pixels differ");
        // Constant image: empty mask.
        let c = Array2::from_elem((5, 5), 0.3f32);
        assert!(threshold_baseline(c.view(), 1.0, Polarity::Auto)
            .iter()
            .all(|&v| v == 0));
    }
}
