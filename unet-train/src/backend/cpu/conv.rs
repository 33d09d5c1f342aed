//! 3×3 convolution (valid or same padding, bias, optional ReLU) and the 1×1 head convolution,
//! forward and backward, for one sample.
//!
//! Feature maps are CHW, contiguous, row-major: `(c, y, x)` at `(c·h + y)·w + x`. Weights are the
//! PyTorch tensors as flat row-major slices: `[C_out, C_in, 3, 3]` is the `C_out × 9·C_in` matrix
//! `W`. The 3×3 convolution is `Y = W · im2col(X) + b`, computed in blocks of output rows so that
//! the column buffer stays below [`COL_BLOCK`] elements whatever the tile size. The backward pass
//! recomputes the block's columns (instead of keeping them: at 572² they would take gigabytes)
//! and computes `dW += dY · colsᵀ`, `dcols = Wᵀ · dY`, `dX = col2im(dcols)`.

use ndarray::{Array3, ArrayView3};
use rayon::prelude::*;
use unet_core::Padding;

use super::gemm::{sgemm, Mat, MatMut};

/// Largest im2col block (f32 elements, 64 MiB) the convolutions allocate at once.
pub const COL_BLOCK: usize = 1 << 24;

thread_local! {
    /// Per-thread im2col buffers, reused across calls so that large column blocks are not
    /// allocated (and page-faulted in) for every convolution. Taken out of the cell while in use
    /// (a nested call on the same thread, e.g. through rayon work stealing, finds it empty and
    /// allocates its own), put back afterwards.
    static COLS: std::cell::Cell<Vec<f32>> = const { std::cell::Cell::new(Vec::new()) };
    static DCOLS: std::cell::Cell<Vec<f32>> = const { std::cell::Cell::new(Vec::new()) };
}

/// A buffer of at least `n` elements from `cell` (contents unspecified).
fn take_buf(cell: &'static std::thread::LocalKey<std::cell::Cell<Vec<f32>>>, n: usize) -> Vec<f32> {
    let mut v = cell.with(|c| c.take());
    if v.len() < n {
        v.resize(n, 0.0);
    }
    v
}

fn put_buf(cell: &'static std::thread::LocalKey<std::cell::Cell<Vec<f32>>>, v: Vec<f32>) {
    cell.with(|c| c.set(v));
}

/// Pixels of padding on each side: 0 (valid) or 1 (same).
pub fn pad_of(padding: Padding) -> usize {
    match padding {
        Padding::Valid => 0,
        Padding::Same => 1,
    }
}

/// Output size of a 3×3 convolution along one dimension (`n − 2` valid, `n` same). The caller
/// guarantees `n ≥ 3` for valid padding (geometry checks it).
pub fn conv_out(n: usize, padding: Padding) -> usize {
    n + 2 * pad_of(padding) - 2
}

fn contiguous<'a>(x: &'a ArrayView3<'a, f32>) -> std::borrow::Cow<'a, [f32]> {
    match x.as_slice() {
        Some(s) => std::borrow::Cow::Borrowed(s),
        None => std::borrow::Cow::Owned(x.iter().copied().collect()),
    }
}

/// Geometry of one 3×3 convolution.
#[derive(Clone, Copy, Debug)]
struct Shape3 {
    cin: usize,
    h: usize,
    w: usize,
    oh: usize,
    ow: usize,
    p: usize,
}

impl Shape3 {
    fn new(cin: usize, h: usize, w: usize, padding: Padding) -> Self {
        let p = pad_of(padding);
        Shape3 {
            cin,
            h,
            w,
            oh: conv_out(h, padding),
            ow: conv_out(w, padding),
            p,
        }
    }
    /// Output rows per im2col block.
    fn block_rows(&self) -> usize {
        (COL_BLOCK / (self.cin * 9 * self.ow).max(1)).clamp(1, self.oh.max(1))
    }
    /// Range of output columns `x` whose input column `x + j − p` is inside `0..w`.
    fn x_range(&self, j: usize) -> (usize, usize) {
        let lo = self.p.saturating_sub(j);
        let hi = (self.w + self.p).saturating_sub(j).min(self.ow);
        (lo, hi.max(lo))
    }
}

/// `cols[(ci·9 + i·3 + j), yy·ow + x] = x[ci, y0 + yy + i − p, x + j − p]` (0 outside), for
/// output rows `y0..y0 + rows`. `cols` has `9·cin × rows·ow` elements.
fn im2col(x: &[f32], s: &Shape3, y0: usize, rows: usize, cols: &mut [f32]) {
    let nb = rows * s.ow;
    cols.par_chunks_mut(9 * nb)
        .enumerate()
        .for_each(|(ci, chunk)| {
            let plane = &x[ci * s.h * s.w..(ci + 1) * s.h * s.w];
            for i in 0..3 {
                for j in 0..3 {
                    let row = &mut chunk[(i * 3 + j) * nb..(i * 3 + j + 1) * nb];
                    let (lo, hi) = s.x_range(j);
                    for yy in 0..rows {
                        let dst = &mut row[yy * s.ow..(yy + 1) * s.ow];
                        let yi = (y0 + yy + i) as isize - s.p as isize;
                        if yi < 0 || yi >= s.h as isize {
                            dst.fill(0.0);
                            continue;
                        }
                        let src = &plane[yi as usize * s.w..(yi as usize + 1) * s.w];
                        dst[..lo].fill(0.0);
                        dst[hi..].fill(0.0);
                        let xi0 = lo + j - s.p;
                        dst[lo..hi].copy_from_slice(&src[xi0..xi0 + (hi - lo)]);
                    }
                }
            }
        });
}

/// The adjoint of [`im2col`]: `dx[ci, y0 + yy + i − p, x + j − p] += cols[...]`.
fn col2im_add(cols: &[f32], s: &Shape3, y0: usize, rows: usize, dx: &mut [f32]) {
    let nb = rows * s.ow;
    dx.par_chunks_mut(s.h * s.w)
        .zip(cols.par_chunks(9 * nb))
        .for_each(|(plane, chunk)| {
            for i in 0..3 {
                for j in 0..3 {
                    let row = &chunk[(i * 3 + j) * nb..(i * 3 + j + 1) * nb];
                    let (lo, hi) = s.x_range(j);
                    for yy in 0..rows {
                        let yi = (y0 + yy + i) as isize - s.p as isize;
                        if yi < 0 || yi >= s.h as isize {
                            continue;
                        }
                        let src = &row[yy * s.ow + lo..yy * s.ow + hi];
                        let xi0 = lo + j - s.p;
                        let dst = &mut plane
                            [yi as usize * s.w + xi0..yi as usize * s.w + xi0 + (hi - lo)];
                        for (d, v) in dst.iter_mut().zip(src) {
                            *d += v;
                        }
                    }
                }
            }
        });
}

/// 3×3 convolution of `x` (`[C_in, H, W]`) with weight `w` (`[C_out, C_in, 3, 3]`, flat) and
/// bias `b` (`[C_out]`), then ReLU if `relu`. Returns `[C_out, H', W']` with `H' = H − 2`
/// (valid) or `H` (same).
pub fn conv3x3_forward(
    x: ArrayView3<'_, f32>,
    w: &[f32],
    b: &[f32],
    padding: Padding,
    relu: bool,
) -> Array3<f32> {
    let (cin, h, wd) = x.dim();
    let cout = b.len();
    debug_assert_eq!(w.len(), cout * cin * 9);
    let s = Shape3::new(cin, h, wd, padding);
    let xs = contiguous(&x);
    let mut out = Array3::<f32>::zeros((cout, s.oh, s.ow));
    let plane = s.oh * s.ow;
    let o = out.as_slice_mut().expect("fresh array is contiguous");
    let rb = s.block_rows();
    let mut cols_buf = take_buf(&COLS, cin * 9 * rb * s.ow);
    let mut y0 = 0;
    while y0 < s.oh {
        let rows = rb.min(s.oh - y0);
        let nb = rows * s.ow;
        let cols = &mut cols_buf[..cin * 9 * nb];
        im2col(&xs, &s, y0, rows, cols);
        let c = MatMut {
            data: &mut o[y0 * s.ow..],
            rows: cout,
            cols: nb,
            rs: plane,
            cs: 1,
        };
        sgemm(
            1.0,
            Mat::rm(w, cout, cin * 9),
            Mat::rm(cols, cin * 9, nb),
            0.0,
            c,
        );
        y0 += rows;
    }
    put_buf(&COLS, cols_buf);
    bias_act(o, b, plane, relu);
    out
}

/// Adds `b[c]` to every element of channel `c` and applies ReLU if asked (NaN stays NaN).
fn bias_act(o: &mut [f32], b: &[f32], plane: usize, relu: bool) {
    o.par_chunks_mut(plane.max(1))
        .zip(b.par_iter())
        .for_each(|(ch, &bv)| {
            if relu {
                // NaN propagates (as PyTorch's relu); `f32::max` would turn it into 0.
                ch.iter_mut().for_each(|v| {
                    let t = *v + bv;
                    *v = if t < 0.0 { 0.0 } else { t };
                });
            } else {
                ch.iter_mut().for_each(|v| *v += bv);
            }
        });
}

/// Zeroes `dy` wherever the ReLU output `y` is not positive (`dy ← dy · [y > 0]`, PyTorch's
/// `threshold_backward`).
pub fn relu_backward(dy: &mut Array3<f32>, y: &Array3<f32>) {
    ndarray::Zip::from(dy).and(y).par_for_each(|d, &v| {
        if v <= 0.0 || v.is_nan() {
            *d = 0.0
        }
    });
}

/// Backward of [`conv3x3_forward`] (the ReLU, if any, already applied to `dy` with
/// [`relu_backward`]). Accumulates `dw += ∂E/∂W` (`[C_out, C_in, 3, 3]`) and `db += ∂E/∂b`;
/// returns `∂E/∂x` (`[C_in, H, W]`) if `need_dx`.
pub fn conv3x3_backward(
    x: ArrayView3<'_, f32>,
    w: &[f32],
    dy: ArrayView3<'_, f32>,
    padding: Padding,
    dw: &mut [f32],
    db: &mut [f32],
    need_dx: bool,
) -> Option<Array3<f32>> {
    let (cin, h, wd) = x.dim();
    let cout = db.len();
    let s = Shape3::new(cin, h, wd, padding);
    debug_assert_eq!(dy.dim(), (cout, s.oh, s.ow));
    let xs = contiguous(&x);
    let dys = contiguous(&dy);
    let plane = s.oh * s.ow;
    for (c, d) in db.iter_mut().enumerate() {
        *d += dys[c * plane..(c + 1) * plane].iter().sum::<f32>();
    }
    let mut dx = need_dx.then(|| Array3::<f32>::zeros((cin, h, wd)));
    let rb = s.block_rows();
    let mut cols_buf = take_buf(&COLS, cin * 9 * rb * s.ow);
    let mut dcols = if need_dx {
        take_buf(&DCOLS, cin * 9 * rb * s.ow)
    } else {
        Vec::new()
    };
    let mut y0 = 0;
    while y0 < s.oh {
        let rows = rb.min(s.oh - y0);
        let nb = rows * s.ow;
        let cols = &mut cols_buf[..cin * 9 * nb];
        im2col(&xs, &s, y0, rows, cols);
        let dyb = Mat {
            data: &dys[y0 * s.ow..],
            rows: cout,
            cols: nb,
            rs: plane,
            cs: 1,
        };
        sgemm(
            1.0,
            dyb,
            Mat::rm(cols, cin * 9, nb).t(),
            1.0,
            MatMut::rm(dw, cout, cin * 9),
        );
        if let Some(dx) = dx.as_mut() {
            let dcols = &mut dcols[..cin * 9 * nb];
            sgemm(
                1.0,
                Mat::rm(w, cout, cin * 9).t(),
                dyb,
                0.0,
                MatMut::rm(dcols, cin * 9, nb),
            );
            col2im_add(
                dcols,
                &s,
                y0,
                rows,
                dx.as_slice_mut().expect("fresh array is contiguous"),
            );
        }
        y0 += rows;
    }
    put_buf(&COLS, cols_buf);
    if need_dx {
        put_buf(&DCOLS, dcols);
    }
    dx
}

/// 1×1 convolution (the head): `y[k, p] = b[k] + Σ_c w[k, c]·x[c, p]`; `w` is
/// `[K, C, 1, 1]` flat, `x` is `[C, H, W]`; returns `[K, H, W]` (no activation).
pub fn conv1x1_forward(x: ArrayView3<'_, f32>, w: &[f32], b: &[f32]) -> Array3<f32> {
    let (c, h, wd) = x.dim();
    let k = b.len();
    let xs = contiguous(&x);
    let mut out = Array3::<f32>::zeros((k, h, wd));
    let o = out.as_slice_mut().expect("fresh array is contiguous");
    sgemm(
        1.0,
        Mat::rm(w, k, c),
        Mat::rm(&xs, c, h * wd),
        0.0,
        MatMut::rm(o, k, h * wd),
    );
    bias_act(o, b, h * wd, false);
    out
}

/// Backward of [`conv1x1_forward`]: `dw += dY·Xᵀ`, `db += Σ_p dY`, returns `dX = Wᵀ·dY`.
pub fn conv1x1_backward(
    x: ArrayView3<'_, f32>,
    w: &[f32],
    dy: ArrayView3<'_, f32>,
    dw: &mut [f32],
    db: &mut [f32],
) -> Array3<f32> {
    let (c, h, wd) = x.dim();
    let k = db.len();
    let n = h * wd;
    let xs = contiguous(&x);
    let dys = contiguous(&dy);
    for (kk, d) in db.iter_mut().enumerate() {
        *d += dys[kk * n..(kk + 1) * n].iter().sum::<f32>();
    }
    sgemm(
        1.0,
        Mat::rm(&dys, k, n),
        Mat::rm(&xs, c, n).t(),
        1.0,
        MatMut::rm(dw, k, c),
    );
    let mut dx = Array3::<f32>::zeros((c, h, wd));
    let d = dx.as_slice_mut().expect("fresh array is contiguous");
    sgemm(
        1.0,
        Mat::rm(w, k, c).t(),
        Mat::rm(&dys, k, n),
        0.0,
        MatMut::rm(d, c, n),
    );
    dx
}
