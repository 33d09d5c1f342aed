//! 2×2 stride-2 max-pool with arg-max routing for the backward pass, for one sample.

use ndarray::{Array3, ArrayView3};
use rayon::prelude::*;

/// Forward: `x` is `[C, H, W]` with even `H`, `W`; returns the pooled `[C, H/2, W/2]` map and,
/// per output element, which of the four window positions won (`2·di + dj`, row-major order).
/// The first maximum in that order wins ties (as PyTorch's CPU kernel); NaN wins over numbers.
pub fn maxpool_forward(x: ArrayView3<'_, f32>) -> (Array3<f32>, Vec<u8>) {
    let (c, h, w) = x.dim();
    let (oh, ow) = (h / 2, w / 2);
    let xs: std::borrow::Cow<'_, [f32]> = x
        .as_slice()
        .map(std::borrow::Cow::Borrowed)
        .unwrap_or_else(|| x.iter().copied().collect::<Vec<_>>().into());
    let mut out = Array3::<f32>::zeros((c, oh, ow));
    let mut idx = vec![0u8; c * oh * ow];
    let o = out.as_slice_mut().expect("fresh array is contiguous");
    o.par_chunks_mut((oh * ow).max(1))
        .zip(idx.par_chunks_mut((oh * ow).max(1)))
        .enumerate()
        .for_each(|(ch, (op, ip))| {
            let plane = &xs[ch * h * w..(ch + 1) * h * w];
            for y in 0..oh {
                for xx in 0..ow {
                    let mut best = plane[2 * y * w + 2 * xx];
                    let mut arg = 0u8;
                    if !best.is_nan() {
                        for k in 1..4u8 {
                            let (di, dj) = ((k / 2) as usize, (k % 2) as usize);
                            let v = plane[(2 * y + di) * w + 2 * xx + dj];
                            if v > best || v.is_nan() {
                                best = v;
                                arg = k;
                                if v.is_nan() {
                                    break;
                                }
                            }
                        }
                    }
                    op[y * ow + xx] = best;
                    ip[y * ow + xx] = arg;
                }
            }
        });
    (out, idx)
}

/// Backward: routes `dy` (`[C, H/2, W/2]`) to the arg-max positions of an `[C, H, W]` input.
pub fn maxpool_backward(dy: ArrayView3<'_, f32>, idx: &[u8], h: usize, w: usize) -> Array3<f32> {
    let (c, oh, ow) = dy.dim();
    let mut dx = Array3::<f32>::zeros((c, h, w));
    let d = dx.as_slice_mut().expect("fresh array is contiguous");
    let dys: Vec<f32> = dy.iter().copied().collect();
    d.par_chunks_mut((h * w).max(1))
        .enumerate()
        .for_each(|(ch, plane)| {
            for y in 0..oh {
                for xx in 0..ow {
                    let k = ch * oh * ow + y * ow + xx;
                    let (di, dj) = ((idx[k] / 2) as usize, (idx[k] % 2) as usize);
                    plane[(2 * y + di) * w + 2 * xx + dj] = dys[k];
                }
            }
        });
    dx
}
