//! 3×3 convolution (valid or same padding, bias, optional ReLU) and the 1×1 head convolution,
//! forward and backward, for one sample.
//!
//! Feature maps are CHW, contiguous, row-major: `(c, y, x)` at `(c·h + y)·w + x`. Weights are the
//! PyTorch tensors as flat row-major slices: `[C_out, C_in, 3, 3]` is the `C_out × 9·C_in` matrix
//! `W`. The 3×3 convolution is `Y = W · im2col(X) + b`, but no column matrix is ever
//! materialised: the forward pass runs unet-core's packed GEMM, which generates the columns while
//! packing (bias and ReLU fused into the store); `dX` is the transposed convolution of `dY`, run
//! the same way with the flipped kernel; `dW` is nine GEMMs (one per kernel tap) that read the
//! zero-padded input through strided views.

use ndarray::{Array3, ArrayView3};
use rayon::prelude::*;
use unet_core::Padding;

use super::gemm::{sgemm, Mat, MatMut};

thread_local! {
    /// Per-thread GEMM pack buffers, reused across calls instead of being allocated (and
    /// page-faulted in) for every convolution. Taken out of the cell while in use
    /// (a nested call on the same thread, e.g. through rayon work stealing, finds it empty and
    /// allocates its own), put back afterwards.
    static PACK: std::cell::Cell<Vec<f32>> = const { std::cell::Cell::new(Vec::new()) };
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
}

/// Runs unet-core's GEMM jobs on the current rayon pool: one worker per pool thread (at most
/// one per job), each pulling job indices from a shared counter, so a worker index is fixed by
/// its task. Inside a batch-parallel region the tasks simply join the same pool.
struct PoolExec {
    workers: usize,
}

// SAFETY: worker indices are the task numbers `0..min(workers, jobs)`, each used by exactly one
// task, and a task runs its jobs one after another, so no two concurrent calls share a worker
// index; `fetch_add` hands out each job index once; `rayon::scope` returns only after every
// spawned task has finished.
unsafe impl unet_core::Executor for PoolExec {
    fn workers(&self) -> usize {
        self.workers
    }
    fn run(&self, jobs: usize, job: &(dyn Fn(usize, usize) + Sync)) {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let tasks = self.workers.min(jobs);
        if tasks <= 1 {
            (0..jobs).for_each(|j| job(j, 0));
            return;
        }
        let next = AtomicUsize::new(0);
        let next = &next;
        rayon::scope(|s| {
            for w in 0..tasks {
                s.spawn(move |_| loop {
                    let j = next.fetch_add(1, Ordering::Relaxed);
                    if j >= jobs {
                        break;
                    }
                    job(j, w);
                });
            }
        });
    }
}

/// 3×3 convolution of `x` (`[C_in, H, W]`) with weight `w` (`[C_out, C_in, 3, 3]`, flat) and
/// bias `b` (`[C_out]`), then ReLU if `relu`. Returns `[C_out, H', W']` with `H' = H − 2`
/// (valid) or `H` (same).
///
/// Runs unet-core's packed GEMM with im2col fused into the packing of B and bias + ReLU fused
/// into the store (no column matrix is materialised), its output columns split over the threads
/// of the current rayon pool; the result does not depend on the number of threads.
pub fn conv3x3_forward(
    x: ArrayView3<'_, f32>,
    w: &[f32],
    b: &[f32],
    padding: Padding,
    relu: bool,
) -> Array3<f32> {
    let (cin, h, wd) = x.dim();
    let xs = contiguous(&x);
    fused_conv(&xs, cin, h, wd, w, b, padding, relu)
}

/// [`conv3x3_forward`] on a contiguous CHW slice `xs` of `cin × h × wd`.
#[allow(clippy::too_many_arguments)]
fn fused_conv(
    xs: &[f32],
    cin: usize,
    h: usize,
    wd: usize,
    w: &[f32],
    b: &[f32],
    padding: Padding,
    relu: bool,
) -> Array3<f32> {
    let cout = b.len();
    debug_assert_eq!(w.len(), cout * cin * 9);
    let s = Shape3::new(cin, h, wd, padding);
    let mut out = Array3::<f32>::zeros((cout, s.oh, s.ow));
    let o = out.as_slice_mut().expect("fresh array is contiguous");
    let exec = PoolExec {
        workers: rayon::current_num_threads().max(1),
    };
    let per = unet_core::conv::conv3x3_pack_len(cout, cin, s.oh, s.ow);
    let mut pack = take_buf(&PACK, per * exec.workers);
    let input = unet_core::conv::ConvInput::single(unet_core::conv::Map {
        data: xs,
        c: cin,
        h,
        w: wd,
    });
    let out_map = unet_core::conv::MapMut {
        data: o,
        c: cout,
        h: s.oh,
        w: s.ow,
    };
    let r = unet_core::conv::conv3x3_exec(
        unet_core::gemm::Kernel::best(),
        &exec,
        &f32_view(w, &[cout, cin, 3, 3]),
        &f32_view(b, &[cout]),
        &input,
        padding,
        relu,
        out_map,
        &mut pack[..per * exec.workers],
    );
    put_buf(&PACK, pack);
    if let Err(e) = r {
        // Sizes come from checked geometry and the parameter store; a failure is a bug here.
        panic!("conv3x3: {e}");
    }
    out
}

/// `dw += ∂E/∂W` of a 3×3 convolution without an im2col matrix: with the input zero-padded by
/// `p` (`Hp × Wp` planes, two spare zeros at the end) and `dy` widened to `Wp` columns (zeros
/// right of `W'`), tap `(i, j)` of every kernel is one GEMM `dY_w · X_tᵀ` where `X_t` is the
/// padded input read at offset `i·Wp + j` as a `C_in × H'·Wp` strided matrix (the extra columns
/// meet zeros of `dY_w`). The nine taps run in parallel, each into its own buffer, and are then
/// added to `dw` in a fixed order, so the result does not depend on the thread count.
fn conv3x3_weight_grad(xs: &[f32], dys: &[f32], s: &Shape3, cout: usize, dw: &mut [f32]) {
    let cin = s.cin;
    let (hp, wp) = (s.h + 2 * s.p, s.w + 2 * s.p);
    let plane = hp * wp;
    let k = s.oh * wp;
    // Largest index a tap reads: (2·Wp + 2) + (k − 1) + (cin − 1)·plane = cin·plane + 1.
    let mut xp = vec![0.0f32; cin * plane + 2];
    xp[..cin * plane]
        .par_chunks_mut(plane.max(1))
        .zip(xs.par_chunks((s.h * s.w).max(1)))
        .for_each(|(dst, src)| {
            for (y, row) in src.chunks_exact(s.w.max(1)).enumerate() {
                let o = (y + s.p) * wp + s.p;
                dst[o..o + s.w].copy_from_slice(row);
            }
        });
    let mut dyw = vec![0.0f32; cout * k];
    dyw.par_chunks_mut(k.max(1))
        .zip(dys.par_chunks((s.oh * s.ow).max(1)))
        .for_each(|(dst, src)| {
            for (y, row) in src.chunks_exact(s.ow.max(1)).enumerate() {
                dst[y * wp..y * wp + s.ow].copy_from_slice(row);
            }
        });
    let taps: Vec<Vec<f32>> = (0..9usize)
        .into_par_iter()
        .map(|t| {
            let off = (t / 3) * wp + t % 3;
            let mut g = vec![0.0f32; cout * cin];
            let xt = Mat {
                data: &xp[off..],
                rows: k,
                cols: cin,
                rs: 1,
                cs: plane,
            };
            sgemm(
                1.0,
                Mat::rm(&dyw, cout, k),
                xt,
                0.0,
                MatMut::rm(&mut g, cout, cin),
            );
            g
        })
        .collect();
    for (idx, d) in dw.iter_mut().enumerate() {
        let (oc, t) = (idx / 9, idx % 9);
        *d += taps[t][oc];
    }
}

/// `∂E/∂x` of a 3×3 convolution as a convolution itself: the transposed convolution of `dy`
/// (`[C_out, H', W']`, contiguous) with `w` (`[C_out, C_in, 3, 3]`) is the correlation of `dy`,
/// zero-padded by `2 − p`, with the kernel flipped in both axes and its channel axes swapped
/// (`w'[ci, co, i, j] = w[co, ci, 2 − i, 2 − j]`). Returns `[C_in, H, W]`.
fn conv3x3_input_grad(dys: &[f32], w: &[f32], s: &Shape3, cout: usize) -> Array3<f32> {
    let cin = s.cin;
    let mut wt = vec![0.0f32; cin * cout * 9];
    for co in 0..cout {
        for ci in 0..cin {
            for t in 0..9 {
                wt[(ci * cout + co) * 9 + 8 - t] = w[(co * cin + ci) * 9 + t];
            }
        }
    }
    let zb = vec![0.0f32; cin];
    if s.p == 1 {
        // Same: pad 1 = 2 − p, exactly what a same convolution adds.
        return fused_conv(dys, cout, s.oh, s.ow, &wt, &zb, Padding::Same, false);
    }
    // Valid: pad dy by one pixel explicitly, then a same convolution adds the second one.
    let (ph, pw) = (s.oh + 2, s.ow + 2);
    let mut padded = vec![0.0f32; cout * ph * pw];
    padded
        .par_chunks_mut(ph * pw)
        .zip(dys.par_chunks(s.oh * s.ow))
        .for_each(|(dst, src)| {
            for (y, row) in src.chunks_exact(s.ow).enumerate() {
                dst[(y + 1) * pw + 1..(y + 1) * pw + 1 + s.ow].copy_from_slice(row);
            }
        });
    fused_conv(&padded, cout, ph, pw, &wt, &zb, Padding::Same, false)
}

/// A little-endian f32 [`unet_core::TensorView`] of `data` with shape `dims`.
fn f32_view<'a>(data: &'a [f32], dims: &[usize]) -> unet_core::TensorView<'a> {
    #[cfg(not(target_endian = "little"))]
    compile_error!("the CPU backend views f32 slices as little-endian tensor bytes");
    // SAFETY: `u8` has alignment 1 and every byte of an `f32` is initialised, so the bytes of
    // `data` form a valid `[u8]` of `4·len` elements borrowed for the same lifetime; on this
    // (little-endian) target they are exactly the little-endian encoding TensorView decodes.
    let bytes = unsafe {
        std::slice::from_raw_parts(data.as_ptr().cast::<u8>(), std::mem::size_of_val(data))
    };
    unet_core::Shape::new(dims)
        .and_then(|sh| unet_core::TensorView::new(unet_core::DType::F32, sh, bytes))
        .expect("parameter slice matches its shape")
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
    conv3x3_weight_grad(&xs, &dys, &s, cout, dw);
    need_dx.then(|| conv3x3_input_grad(&dys, w, &s, cout))
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
