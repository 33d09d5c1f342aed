//! The x86-64 AVX-512F micro-kernel: an 8×32 tile held in sixteen 512-bit accumulators (two per
//! row), with two loads of B, eight broadcasts of A and sixteen FMAs per step of K.
//!
//! Register budget (32 zmm): 2·MR accumulators + 2 for the row of B + the broadcasts of A
//! (LLVM folds them into the FMAs as `{1to16}` memory operands, so they need no register).
//! Shapes with NR = 32 (two zmm per row, loaded) and A broadcast keep the row-major tile the
//! other kernels write and need only 2 + MR loads per 2·MR FMAs, so the FMA ports rather than
//! the load ports bound a step. MR = 8 was chosen over MR = 12 (24 accumulators, the largest
//! MR dividing [`super::MC`] that fits) because every channel count of the U-Net (16·2^i) is a
//! multiple of 8, while 12 pads the 16-channel layers of a base-16 model to 24 rows. Measured
//! back to back, one thread, on the shared (loaded) AVX-512 Xeon: base-16 tile 8×32 medians
//! 557/577/722 ms vs 12×32 644/778/563 ms; paper tile 6.10/7.63 s vs 6.52/7.15 s — within the
//! noise, so the simpler fit wins. 16 accumulators are still twice the 2 FMA ports × 4 cycles
//! of latency that must be in flight.

use core::arch::x86_64::{
    __m512, _mm512_fmadd_ps, _mm512_loadu_ps, _mm512_set1_ps, _mm512_setzero_ps, _mm512_storeu_ps,
};

use super::{MicroKernel, MAX_TILE};

/// 8×32 AVX-512F kernel. Only reachable through a [`super::Kernel`] made by
/// [`super::Kernel::avx512`], which checks the CPU.
pub(crate) struct Avx512;

const MR: usize = 8;
const NR: usize = 32;

impl MicroKernel for Avx512 {
    const MR: usize = MR;
    const NR: usize = NR;

    #[inline]
    fn run(kc: usize, a: &[f32], b: &[f32], tile: &mut [f32; MAX_TILE]) {
        let (Some(a), Some(b)) = (a.get(..kc * MR), b.get(..kc * NR)) else {
            // Out of the trait's contract; produce a defined (zero) tile rather than read past.
            tile.fill(0.0);
            return;
        };
        // SAFETY: this kernel is only instantiated by `gemm` for a `Kernel(Imp::Avx512)`, which
        // `Kernel::avx512` creates only after detecting AVX-512F on this CPU (or when the build
        // enables the target feature). The slice lengths were checked just above.
        unsafe { kernel(kc, a, b, tile) }
    }
}

/// # Safety
/// The CPU must support AVX-512F; `a.len() ≥ kc·MR`, `b.len() ≥ kc·NR`.
#[target_feature(enable = "avx512f")]
unsafe fn kernel(kc: usize, a: &[f32], b: &[f32], tile: &mut [f32; MAX_TILE]) {
    // SAFETY: the caller guarantees AVX-512F. Every pointer read stays inside `a[..kc·MR]` and
    // `b[..kc·NR]` (step p reads a[MR·p..MR·p + MR] and b[NR·p..NR·p + NR] for p < kc), and the
    // stores write tile[NR·r..NR·r + NR] for r < MR, inside the tile (MR·NR ≤ MAX_TILE, checked
    // at compile time in `super`).
    unsafe {
        let mut c: [[__m512; 2]; MR] = [[_mm512_setzero_ps(); 2]; MR];
        let (mut pa, mut pb) = (a.as_ptr(), b.as_ptr());
        for _ in 0..kc {
            let b0 = _mm512_loadu_ps(pb);
            let b1 = _mm512_loadu_ps(pb.add(16));
            for (r, acc) in c.iter_mut().enumerate() {
                let x = _mm512_set1_ps(*pa.add(r));
                acc[0] = _mm512_fmadd_ps(x, b0, acc[0]);
                acc[1] = _mm512_fmadd_ps(x, b1, acc[1]);
            }
            pa = pa.add(MR);
            pb = pb.add(NR);
        }
        let out = tile.as_mut_ptr();
        for (r, acc) in c.iter().enumerate() {
            _mm512_storeu_ps(out.add(r * NR), acc[0]);
            _mm512_storeu_ps(out.add(r * NR + 16), acc[1]);
        }
    }
}
