//! Exact Euclidean distance transform (Felzenszwalb & Huttenlocher, "Distance Transforms of
//! Sampled Functions", Theory of Computing 2012): the squared distance is separable, so a 1-D
//! lower envelope of parabolas along every column, then along every row, gives the exact 2-D
//! result in O(H·W).
//!
//! Definition: for a mask `m` of shape `[H, W]` (row-major, pixel `(y, x)`), `edt(m)[y, x]` is
//! the Euclidean distance in pixel units from the centre of `(y, x)` to the centre of the
//! nearest pixel where `m` is **false**:
//! `min { sqrt((y − y')² + (x − x')²) : m[y', x'] == false }`.
//! Pixels where `m` is false get 0. If `m` has no false pixel at all, every value is
//! `f32::INFINITY`. This is `scipy.ndimage.distance_transform_edt(m)` (which measures the
//! distance of non-zero pixels to the nearest zero pixel), except for the all-true case.
//!
//! Internally squared distances are exact integers held in f64 (exact below 2^53), and the
//! square root is taken once in f64 before rounding to f32.

use ndarray::{Array2, ArrayView2};

/// Exact Euclidean distance of every pixel to the nearest `false` pixel of `mask` (see the
/// module documentation). Output has the shape of `mask`.
pub fn edt(mask: ArrayView2<bool>) -> Array2<f32> {
    edt_squared(mask).mapv(|d| {
        if d.is_finite() {
            d.sqrt() as f32
        } else {
            f32::INFINITY
        }
    })
}

/// Squared Euclidean distance of every pixel to the nearest `false` pixel, exact (integers in
/// f64); `f64::INFINITY` where `mask` has no false pixel.
pub fn edt_squared(mask: ArrayView2<bool>) -> Array2<f64> {
    let (h, w) = mask.dim();
    let mut out = Array2::<f64>::from_elem((h, w), f64::INFINITY);
    if h == 0 || w == 0 {
        return out;
    }
    let n = h.max(w);
    let mut f = vec![0.0f64; n];
    let mut d = vec![0.0f64; n];
    let mut v = vec![0usize; n];
    let mut z = vec![0.0f64; n + 1];
    // Pass 1: along each column (over y).
    for x in 0..w {
        for y in 0..h {
            f[y] = if mask[[y, x]] { f64::INFINITY } else { 0.0 };
        }
        lower_envelope(&f[..h], &mut d[..h], &mut v, &mut z);
        for y in 0..h {
            out[[y, x]] = d[y];
        }
    }
    // Pass 2: along each row (over x), on the column results.
    for y in 0..h {
        for x in 0..w {
            f[x] = out[[y, x]];
        }
        lower_envelope(&f[..w], &mut d[..w], &mut v, &mut z);
        for x in 0..w {
            out[[y, x]] = d[x];
        }
    }
    out
}

/// 1-D squared distance transform `d[q] = min_p (q − p)² + f[p]` over the finite `f[p]`
/// (infinite samples are not parabolas and are skipped; all infinite gives all infinite).
/// `v` and `z` are scratch of length ≥ `f.len()` and `f.len() + 1`.
fn lower_envelope(f: &[f64], d: &mut [f64], v: &mut [usize], z: &mut [f64]) {
    let n = f.len();
    let mut k: usize = 0;
    let mut any = false;
    for q in 0..n {
        if !f[q].is_finite() {
            continue;
        }
        if !any {
            any = true;
            v[0] = q;
            z[0] = f64::NEG_INFINITY;
            z[1] = f64::INFINITY;
            k = 0;
            continue;
        }
        let qf = q as f64;
        let mut s;
        loop {
            let p = v[k];
            let pf = p as f64;
            // Abscissa where the parabolas rooted at p and q intersect.
            s = ((f[q] + qf * qf) - (f[p] + pf * pf)) / (2.0 * (qf - pf));
            // z[0] = −∞, so k never goes below 0.
            if k > 0 && s <= z[k] {
                k -= 1;
            } else {
                break;
            }
        }
        k += 1;
        v[k] = q;
        z[k] = s;
        z[k + 1] = f64::INFINITY;
    }
    if !any {
        d.fill(f64::INFINITY);
        return;
    }
    let mut k = 0usize;
    for (q, dq) in d.iter_mut().enumerate() {
        let qf = q as f64;
        while z[k + 1] < qf {
            k += 1;
        }
        let p = v[k];
        let pf = p as f64;
        *dq = (qf - pf) * (qf - pf) + f[p];
    }
}
