//! 2×2 stride-2 transposed convolution ("up-convolution"), forward and backward, for one sample.
//!
//! Weight `[C_in, C_out, 2, 2]` (PyTorch's ConvTranspose2d layout) is the `C_in × 4·C_out`
//! matrix `W`. Kernel = stride, so output blocks do not overlap: `cols = Wᵀ · X`
//! (`4·C_out × H·W`, one GEMM) and `y[co, 2y+i, 2x+j] = cols[co·4 + 2i + j, y·W + x] + b[co]`
//! (a scatter). Backward: gather `dcols` from `dy`, `dW += X · dcolsᵀ`, `dX = W · dcols`.

use ndarray::{Array3, ArrayView3};
use rayon::prelude::*;

use super::gemm::{sgemm, Mat, MatMut};

fn contiguous(x: &ArrayView3<'_, f32>) -> Vec<f32> {
    x.iter().copied().collect()
}

/// Forward: `x` is `[C_in, H, W]`, `w` `[C_in, C_out, 2, 2]` flat, `b` `[C_out]`; returns
/// `[C_out, 2H, 2W]` (no activation, as in the paper).
pub fn up2x2_forward(x: ArrayView3<'_, f32>, w: &[f32], b: &[f32]) -> Array3<f32> {
    let (cin, h, wd) = x.dim();
    let cout = b.len();
    let n = h * wd;
    let xs = x
        .as_slice()
        .map(std::borrow::Cow::Borrowed)
        .unwrap_or_else(|| contiguous(&x).into());
    let mut cols = vec![0.0f32; 4 * cout * n];
    sgemm(
        1.0,
        Mat::rm(w, cin, 4 * cout).t(),
        Mat::rm(&xs, cin, n),
        0.0,
        MatMut::rm(&mut cols, 4 * cout, n),
    );
    let mut out = Array3::<f32>::zeros((cout, 2 * h, 2 * wd));
    let o = out.as_slice_mut().expect("fresh array is contiguous");
    o.par_chunks_mut(4 * n)
        .zip(cols.par_chunks(4 * n))
        .zip(b.par_iter())
        .for_each(|((plane, c), &bv)| {
            for i in 0..2 {
                for j in 0..2 {
                    let src = &c[(2 * i + j) * n..(2 * i + j + 1) * n];
                    for y in 0..h {
                        let row = &mut plane[(2 * y + i) * 2 * wd..(2 * y + i + 1) * 2 * wd];
                        for xx in 0..wd {
                            row[2 * xx + j] = src[y * wd + xx] + bv;
                        }
                    }
                }
            }
        });
    out
}

/// Backward of [`up2x2_forward`]: accumulates `dw`, `db`; returns `∂E/∂x` (`[C_in, H, W]`).
pub fn up2x2_backward(
    x: ArrayView3<'_, f32>,
    w: &[f32],
    dy: ArrayView3<'_, f32>,
    dw: &mut [f32],
    db: &mut [f32],
) -> Array3<f32> {
    let (cin, h, wd) = x.dim();
    let cout = db.len();
    let n = h * wd;
    let xs = x
        .as_slice()
        .map(std::borrow::Cow::Borrowed)
        .unwrap_or_else(|| contiguous(&x).into());
    let dys = dy
        .as_slice()
        .map(std::borrow::Cow::Borrowed)
        .unwrap_or_else(|| contiguous(&dy).into());
    let mut dcols = vec![0.0f32; 4 * cout * n];
    dcols
        .par_chunks_mut(4 * n)
        .zip(dys.par_chunks(4 * n))
        .for_each(|(c, plane)| {
            for i in 0..2 {
                for j in 0..2 {
                    let dst = &mut c[(2 * i + j) * n..(2 * i + j + 1) * n];
                    for y in 0..h {
                        let row = &plane[(2 * y + i) * 2 * wd..(2 * y + i + 1) * 2 * wd];
                        for xx in 0..wd {
                            dst[y * wd + xx] = row[2 * xx + j];
                        }
                    }
                }
            }
        });
    for (c, d) in db.iter_mut().enumerate() {
        *d += dys[c * 4 * n..(c + 1) * 4 * n].iter().sum::<f32>();
    }
    sgemm(
        1.0,
        Mat::rm(&xs, cin, n),
        Mat::rm(&dcols, 4 * cout, n).t(),
        1.0,
        MatMut::rm(dw, cin, 4 * cout),
    );
    let mut dx = Array3::<f32>::zeros((cin, h, wd));
    let d = dx.as_slice_mut().expect("fresh array is contiguous");
    sgemm(
        1.0,
        Mat::rm(w, cin, 4 * cout),
        Mat::rm(&dcols, 4 * cout, n),
        0.0,
        MatMut::rm(d, cin, n),
    );
    dx
}
