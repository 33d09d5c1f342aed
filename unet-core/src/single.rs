//! The 3×3 convolution of a single-channel input: a grey-level network's first layer. Nine
//! taps per output pixel are too few for the GEMM (packing them, im2col, and copying the GEMM's
//! tiles out cost more than the products: measured, 1 → 16 channels on a 570² output took
//! 3.5 ms for 0.09 GFLOP). Here each output row is computed straight from three input rows in
//! chunks of 32 pixels whose nine shifted input runs stay in AVX-512 registers while every
//! output channel's taps are applied, then stored once. Only with the AVX-512 kernel (other
//! kernels keep the GEMM path, [`supports`]).

use crate::conv::{Band, ConvInput};
use crate::error::Error;
use crate::exec::Executor;
use crate::gemm::Kernel;
use crate::tensor::TensorView;

/// Most output channels this path takes (their weights are decoded on the stack: 2.3 KiB).
pub(crate) const MAX_COUT: usize = 64;

/// Output pixels computed together: the nine shifted input runs of a chunk (18 AVX-512
/// vectors) and its two sums stay in registers.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
const CHUNK: usize = 32;

/// Output channels computed along a whole row before the next ones (one micro-panel's worth of
/// output streams, as the GEMM path writes them).
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
const GROUP: usize = 8;

/// Whether [`conv3x3_single`] runs with `kernel`: the AVX-512 one.
pub(crate) fn supports(kernel: Kernel) -> bool {
    #[cfg(target_arch = "x86_64")]
    if Kernel::avx512() == Some(kernel) {
        return true;
    }
    let _ = kernel;
    false
}

/// `out[co, y, x] = b[co] + Σ_{i,j} w[co, 0, i, j] · in[y + i − pad, x + j − pad]` (zero
/// outside the window), then ReLU (NaN kept) if `relu`, with the arithmetic of the GEMM path
/// (the products fused-multiply-added in `(i, j)` order from zero, padding included as zeros,
/// then the bias added): the same bits as im2col + GEMM with any kernel, however the rows are
/// split between the workers of `exec` (runs of whole output rows).
/// The caller ([`crate::conv::conv3x3_exec`]) checked the window against its map, the output
/// size against the window and padding (`pad ≤ 1`), the weights' and bias' lengths; here:
/// exactly one input channel, at most [`MAX_COUT`] output channels, a kernel it [`supports`],
/// `out` long enough (errors otherwise, nothing written).
#[allow(clippy::too_many_arguments)]
pub(crate) fn conv3x3_single(
    kernel: Kernel,
    exec: &dyn Executor,
    w: &TensorView<'_>,
    b: &TensorView<'_>,
    input: &ConvInput<'_>,
    pad: usize,
    relu: bool,
    out: Band<'_>,
) -> Result<(), Error> {
    let (cout, oh, ow) = (out.c, out.h, out.w);
    if input.channels() != 1 || cout > MAX_COUT || pad > 1 || !supports(kernel) {
        return Err(Error::InvalidArgument {
            what: "internal: single-channel convolution out of contract",
        });
    }
    let mut taps = [0.0f32; 9 * MAX_COUT];
    w.read_into(0, &mut taps[..9 * cout]);
    let mut bias = [0.0f32; MAX_COUT];
    b.read_into(0, &mut bias[..cout]);
    let job = Rows {
        input,
        taps: &taps[..9 * cout],
        bias: &bias[..cout],
        pad,
        relu,
        out,
        ow,
    };
    let workers = exec.workers().max(1);
    // About four runs of rows per worker (even shares if one worker is late).
    let per = oh.div_ceil(4 * workers).max(1);
    let run = |j: usize, _wk: usize| {
        let rows = j * per..((j + 1) * per).min(oh);
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `supports` checked that the AVX-512 kernel exists on this CPU (a `Kernel` is
        // only made after detecting its features); jobs own distinct rows.
        unsafe {
            x86::rows_avx512(&job, rows)
        };
        #[cfg(not(target_arch = "x86_64"))]
        let _ = (&job, rows);
    };
    exec.run(oh.div_ceil(per), &run);
    Ok(())
}

/// One convolution's arguments, shared by the jobs (each writes its own output rows).
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
struct Rows<'a, 's> {
    input: &'a ConvInput<'s>,
    /// `[c_out, 9]` weights.
    taps: &'a [f32],
    bias: &'a [f32],
    pad: usize,
    relu: bool,
    /// `[c_out, oh, ow]`, each job writing its own rows.
    out: Band<'a>,
    ow: usize,
}

#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
impl Rows<'_, '_> {
    /// Input row `i` (0..3) of the window for output row `y`: `None` in the padding.
    #[inline(always)]
    fn line(&self, y: usize, i: usize) -> Option<&[f32]> {
        let (pad, ih, iw) = (self.pad, self.input.h, self.input.w);
        let (data, mw, off_y, off_x) = self.input.plane(0);
        let yy = y + i;
        (yy >= pad && yy - pad < ih).then(|| {
            let start = (yy - pad + off_y) * mw + off_x;
            &data[start..start + iw]
        })
    }
}

/// The AVX-512 rows.
#[cfg(target_arch = "x86_64")]
mod x86 {
    use core::arch::x86_64::*;

    use super::{Rows, CHUNK, GROUP};

    /// Output rows `rows` of every channel, in chunks of [`CHUNK`] pixels: the nine shifted
    /// input runs of a chunk are loaded once (masked: zeros outside the window and past the
    /// row's end), then for each channel `bias + Σ_k w_k·s_k` (fused multiply-adds in tap
    /// order, padding included as zeros), ReLU, and two stores (masked at the row's end).
    ///
    /// # Safety
    /// The CPU must support AVX-512F; no other thread may access those rows of `out`.
    #[target_feature(enable = "avx512f,avx2,fma")]
    pub(super) unsafe fn rows_avx512(job: &Rows<'_, '_>, rows: core::ops::Range<usize>) {
        let (pad, iw, ow) = (job.pad, job.input.w, job.ow);
        let cout = job.bias.len();
        for y in rows {
            let lines = [job.line(y, 0), job.line(y, 1), job.line(y, 2)];
            // Groups of [`GROUP`] channels along the whole row: their rows are written as a few
            // sequential streams (all channels at once scattered the stores over 64 planes).
            for c0 in (0..cout).step_by(GROUP) {
                let group = c0..(c0 + GROUP).min(cout);
                let mut x0 = 0;
                while x0 < ow {
                    let n = CHUNK.min(ow - x0);
                    // Lanes `t` of the chunk (two vectors of 16) that are pixels (`t < n`).
                    let keep = |half: usize| lanes(n.saturating_sub(16 * half).min(16));
                    // SAFETY (whole block): AVX-512F on a CPU that has it. The loads read `row`
                    // at columns `x0 + t + j − pad` for lanes where that column is in `0..iw` (the
                    // masks below), so no masked-in lane leaves the row; masked-off lanes are not
                    // accessed (the address is formed with wrapping arithmetic). The stores write
                    // lanes `t < n` of `dst`, `n` pixels of this call's row.
                    unsafe {
                        let zero = _mm512_setzero_ps();
                        let mut s = [[zero; 2]; 9];
                        for (i, line) in lines.iter().enumerate() {
                            let Some(row) = line else { continue };
                            for j in 0..3 {
                                // Lane `t` reads column `x0 + t + j − pad`: inside the row for
                                // `pad − j − x0 ≤ t < iw + pad − j − x0`.
                                let lo = pad.saturating_sub(j + x0);
                                let hi = (iw + pad).saturating_sub(j + x0);
                                let base = row.as_ptr().wrapping_add(x0 + j).wrapping_sub(pad);
                                for (half, v) in s[3 * i + j].iter_mut().enumerate() {
                                    let (l0, l1) = (16 * half, 16 * half + 16);
                                    let from = lo.clamp(l0, l1) - l0;
                                    let to = hi.clamp(l0, l1) - l0;
                                    let m = lanes(to) & !lanes(from) & keep(half);
                                    *v = _mm512_maskz_loadu_ps(m, base.wrapping_add(l0));
                                }
                            }
                        }
                        for co in group.clone() {
                            let (taps, bias) = (&job.taps[9 * co..9 * co + 9], job.bias[co]);
                            // The GEMM kernels' arithmetic: products fused-multiply-added in tap
                            // order from zero, then the bias (the same bits as im2col + GEMM).
                            let mut acc = [zero; 2];
                            for (&w, sk) in taps.iter().zip(&s) {
                                let wv = _mm512_set1_ps(w);
                                for (a, &v) in acc.iter_mut().zip(sk) {
                                    *a = _mm512_fmadd_ps(wv, v, *a);
                                }
                            }
                            let bias = _mm512_set1_ps(bias);
                            for a in acc.iter_mut() {
                                *a = _mm512_add_ps(bias, *a);
                            }
                            if job.relu {
                                // `max(0, a)` is `a` when `a` is NaN (the second operand wins).
                                for a in acc.iter_mut() {
                                    *a = _mm512_max_ps(zero, *a);
                                }
                            }
                            let dst = job.out.row(co, y, x0, n);
                            let p = dst.as_mut_ptr();
                            // This row's pixels 4 chunks on, ahead of their stores.
                            let ahead = p.wrapping_add(4 * CHUNK) as *const f32;
                            crate::gemm::prefetch(ahead);
                            crate::gemm::prefetch(ahead.wrapping_add(16));
                            _mm512_mask_storeu_ps(p, keep(0), acc[0]);
                            _mm512_mask_storeu_ps(p.wrapping_add(16), keep(1), acc[1]);
                        }
                    }
                    x0 += n;
                }
            }
        }
    }

    /// The mask of lanes `0..k` (`k ≤ 16`).
    #[inline(always)]
    fn lanes(k: usize) -> __mmask16 {
        if k >= 16 {
            0xFFFF
        } else {
            (1u16 << k) - 1
        }
    }
}
