//! 2×2 stride-2 max-pooling (the U-Net's downsampling), NaN-propagating as PyTorch's: a
//! portable row routine and an AVX2 one that gives the same bits.

use crate::conv::{Band, Map, MapMut};

/// 2×2 stride-2 max-pool: `out[c, y, x] = max(in[c, 2y..2y+2, 2x..2x+2])`; `out` is
/// `input.h/2 × input.w/2` with the same channels (sizes are even by geometry). NaN in a window
/// propagates.
///
/// # Panics
/// Only outside that contract (`out` larger than half the input, or a buffer shorter than its
/// `c·h·w`).
pub fn maxpool2x2(input: Map<'_>, out: MapMut<'_>) {
    let (ih, iw, oh, ow) = (input.h, input.w, out.h, out.w);
    let rows = Rows::new();
    for c in 0..out.c {
        for y in 0..oh {
            let r0 = (c * ih + 2 * y) * iw;
            let o = &mut out.data[(c * oh + y) * ow..(c * oh + y + 1) * ow];
            rows.pool(&input.data[r0..r0 + 2 * iw], iw, o);
        }
    }
}

/// [`maxpool2x2`] of the band `input` into the band `out` (`out.h = input.h / 2`, `out.w =
/// input.w / 2`, the same channels; panics otherwise).
///
/// # Safety
/// No other thread may write `input`'s pixels meanwhile (`out`'s are the band's own).
pub(crate) unsafe fn maxpool2x2_band(input: &Band<'_>, out: &Band<'_>) {
    let iw = input.w;
    assert!(input.c == out.c && out.h == input.h / 2 && out.w == iw / 2);
    let rows = Rows::new();
    for c in 0..out.c {
        for y in 0..out.h {
            // SAFETY: two rows of the input band, not written meanwhile (the caller's
            // contract); the output row is the band's own.
            let (two, o) = unsafe { (input.lines(c, 2 * y, 2), out.row(c, y, 0, out.w)) };
            rows.pool(two, iw, o);
        }
    }
}

/// The row routine this CPU runs best.
#[derive(Clone, Copy)]
struct Rows {
    #[cfg(target_arch = "x86_64")]
    avx2: bool,
}

impl Rows {
    fn new() -> Rows {
        Rows {
            #[cfg(target_arch = "x86_64")]
            avx2: crate::gemm::Kernel::avx2_fma().is_some(),
        }
    }

    /// One output row `o` from the two input rows in `two` (`2·iw` values, rows `iw` apart).
    #[inline(always)]
    fn pool(self, two: &[f32], iw: usize, o: &mut [f32]) {
        let ow = o.len();
        let (top, bottom) = (&two[..2 * ow], &two[iw..iw + 2 * ow]);
        #[cfg(target_arch = "x86_64")]
        if self.avx2 {
            // SAFETY: the CPU has AVX2 (checked in `new`).
            unsafe { x86::pool_row_avx2(top, bottom, o, 2 * iw, ow) };
            return;
        }
        pool_row(top, bottom, o);
    }
}

/// [`maxpool2x2`] on the workers of `exec`: each job pools a run of whole channels (writing
/// only their planes of `out`). The same contract and result.
pub fn maxpool2x2_exec(exec: &dyn crate::exec::Executor, input: Map<'_>, out: MapMut<'_>) {
    let (c, oh, ow) = (out.c, out.h, out.w);
    let workers = exec.workers().max(1);
    let plane = oh * ow;
    if workers == 1 || c < 2 || plane == 0 {
        return maxpool2x2(input, out);
    }
    // About four runs of channels per worker (equal shares even if one worker is late).
    let per = c.div_ceil(4 * workers);
    let planes = crate::exec::Shared::new(&mut out.data[..c * plane]);
    let job = |j: usize, _w: usize| {
        let c0 = j * per;
        let n = per.min(c - c0);
        // SAFETY: job `j` alone owns the planes of channels `c0..c0 + n` (jobs are distinct
        // runs of channels; the `Executor` contract runs each job once).
        let Some(data) = (unsafe { planes.range(c0 * plane, n * plane) }) else {
            return;
        };
        let off = c0 * input.h * input.w;
        let part = Map {
            data: &input.data[off..],
            c: n,
            h: input.h,
            w: input.w,
        };
        maxpool2x2(
            part,
            MapMut {
                data,
                c: n,
                h: oh,
                w: ow,
            },
        );
    };
    exec.run(c.div_ceil(per), &job);
}

/// `max` that returns NaN if either argument is NaN (as PyTorch's max-pool does). Branch-free
/// enough to vectorise: `a ≥ b` is false whenever `b` is NaN, and a NaN `a` is kept explicitly.
#[inline(always)]
pub fn nan_max(a: f32, b: f32) -> f32 {
    if a >= b || a.is_nan() {
        a
    } else {
        b
    }
}

/// One output row: `o[x] = max(top[2x], top[2x+1], bottom[2x], bottom[2x+1])` by [`nan_max`]
/// in that order (`top`, `bottom`: at least `2·o.len()` values).
#[inline(always)]
fn pool_row(top: &[f32], bottom: &[f32], o: &mut [f32]) {
    for ((o, a), b) in o
        .iter_mut()
        .zip(top.chunks_exact(2))
        .zip(bottom.chunks_exact(2))
    {
        *o = nan_max(nan_max(a[0], a[1]), nan_max(b[0], b[1]));
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use core::arch::x86_64::*;

    /// [`super::nan_max`] lane-wise: `a` where `a ≥ b` or `a` is NaN, else `b` (the same
    /// bits, NaN payloads and signed zeros included).
    #[inline(always)]
    unsafe fn nan_max8(a: __m256, b: __m256) -> __m256 {
        // SAFETY: AVX on registers; the caller has AVX2.
        unsafe {
            let keep_a = _mm256_or_ps(
                _mm256_cmp_ps::<_CMP_GE_OQ>(a, b),
                _mm256_cmp_ps::<_CMP_UNORD_Q>(a, a),
            );
            _mm256_blendv_ps(b, a, keep_a)
        }
    }

    /// [`super::pool_row`] 8 outputs at a time (the rest by the portable code). Along the
    /// way, prefetches the next output row's inputs and output (`ahead_in` elements past
    /// `top` / `bottom`, `ahead_out` past `o`; hints only, any distance): the loads and stores
    /// of a large map otherwise wait on memory at every 4 KiB page, where the hardware
    /// prefetchers stop.
    ///
    /// # Safety
    /// The CPU must support AVX2.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn pool_row_avx2(
        top: &[f32],
        bottom: &[f32],
        o: &mut [f32],
        ahead_in: usize,
        ahead_out: usize,
    ) {
        let n = o.len();
        if top.len() < 2 * n || bottom.len() < 2 * n {
            // Out of contract: the portable code panics as slice indexing would.
            return super::pool_row(top, bottom, o);
        }
        let done = n / 8 * 8;
        // SAFETY (whole block): AVX2 on a CPU that has it; loads of `top`/`bottom[2x .. 2x + 16]`
        // and stores of `o[x .. x + 8]` with `x + 8 ≤ done ≤ n` stay in bounds (checked above).
        unsafe {
            // Even/odd lanes of two vectors in order: shuffle within 128-bit halves, then put
            // the 64-bit quarters in order.
            let split = |p: *const f32| {
                let (lo, hi) = (_mm256_loadu_ps(p), _mm256_loadu_ps(p.add(8)));
                let even = _mm256_shuffle_ps::<0x88>(lo, hi);
                let odd = _mm256_shuffle_ps::<0xDD>(lo, hi);
                let fix = |v: __m256| {
                    _mm256_castpd_ps(_mm256_permute4x64_pd::<0xD8>(_mm256_castps_pd(v)))
                };
                (fix(even), fix(odd))
            };
            let mut x = 0;
            while x < done {
                crate::gemm::prefetch(top.as_ptr().wrapping_add(2 * x + ahead_in));
                crate::gemm::prefetch(bottom.as_ptr().wrapping_add(2 * x + ahead_in));
                crate::gemm::prefetch(o.as_ptr().wrapping_add(x + ahead_out));
                let (t0, t1) = split(top.as_ptr().add(2 * x));
                let (b0, b1) = split(bottom.as_ptr().add(2 * x));
                let v = nan_max8(nan_max8(t0, t1), nan_max8(b0, b1));
                _mm256_storeu_ps(o.as_mut_ptr().add(x), v);
                x += 8;
            }
        }
        super::pool_row(&top[2 * done..], &bottom[2 * done..], &mut o[done..]);
    }
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;

    /// The AVX2 row gives the portable row's bits: NaNs with different payloads (which one
    /// wins matters), signed zeros, infinities, and lengths with a tail.
    #[test]
    fn avx2_row_gives_the_portable_bits() {
        if crate::gemm::Kernel::avx2_fma().is_none() {
            return;
        }
        let specials = [
            f32::NAN,
            f32::from_bits(0x7fc0_1234),
            f32::from_bits(0xffc0_0001),
            0.0,
            -0.0,
            f32::INFINITY,
            f32::NEG_INFINITY,
            1.5,
            -2.0,
        ];
        let mut seed = 3u32;
        let mut next = || {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            seed
        };
        for n in [0usize, 1, 7, 8, 9, 16, 37] {
            for _ in 0..50 {
                let mut val = || specials[(next() >> 8) as usize % specials.len()];
                let top: std::vec::Vec<f32> = (0..2 * n).map(|_| val()).collect();
                let bottom: std::vec::Vec<f32> = (0..2 * n).map(|_| val()).collect();
                let mut want = std::vec![0.0f32; n];
                let mut got = std::vec![1.0f32; n];
                pool_row(&top, &bottom, &mut want);
                // SAFETY: AVX2 checked above.
                unsafe { x86::pool_row_avx2(&top, &bottom, &mut got, 0, 0) };
                for (g, w) in got.iter().zip(&want) {
                    assert_eq!(g.to_bits(), w.to_bits(), "n {n}: {top:?} {bottom:?}");
                }
            }
        }
    }
}
