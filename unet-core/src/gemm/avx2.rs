//! The x86-64 AVX2+FMA micro-kernel: a 6×16 tile held in twelve 256-bit accumulators (two per
//! row), with two loads of B, six broadcasts of A and twelve FMAs per step of K.

use core::arch::x86_64::{
    __m256, _mm256_fmadd_ps, _mm256_loadu_ps, _mm256_set1_ps, _mm256_setzero_ps, _mm256_storeu_ps,
};

use super::{MicroKernel, MAX_TILE};

/// 6×16 AVX2+FMA kernel. Only reachable through a [`super::Kernel`] made by
/// [`super::Kernel::avx2_fma`], which checks the CPU.
pub(crate) struct Avx2Fma;

const MR: usize = 6;
const NR: usize = 16;

impl MicroKernel for Avx2Fma {
    const MR: usize = MR;
    const NR: usize = NR;

    #[inline]
    fn run(kc: usize, a: &[f32], b: &[f32], tile: &mut [f32; MAX_TILE]) {
        let (Some(a), Some(b)) = (a.get(..kc * MR), b.get(..kc * NR)) else {
            // Out of the trait's contract; produce a defined (zero) tile rather than read past.
            tile.fill(0.0);
            return;
        };
        // SAFETY: this kernel is only instantiated by `gemm` for a `Kernel(Imp::Avx2Fma)`, which
        // `Kernel::avx2_fma` creates only after detecting AVX2 and FMA on this CPU (or when the
        // build enables both target features). The slice lengths were checked just above.
        unsafe { kernel(kc, a, b, tile) }
    }
}

/// # Safety
/// The CPU must support AVX2 and FMA; `a.len() ≥ kc·6`, `b.len() ≥ kc·16`.
#[target_feature(enable = "avx2,fma")]
unsafe fn kernel(kc: usize, a: &[f32], b: &[f32], tile: &mut [f32; MAX_TILE]) {
    // SAFETY: the caller guarantees AVX2+FMA. Every pointer read stays inside `a[..kc·6]` and
    // `b[..kc·16]` (step p reads a[6p..6p+6] and b[16p..16p+16] for p < kc), and the stores
    // write tile[16r..16r+16] for r < 6, inside the 128-element tile.
    unsafe {
        let mut c: [[__m256; 2]; MR] = [[_mm256_setzero_ps(); 2]; MR];
        let (mut pa, mut pb) = (a.as_ptr(), b.as_ptr());
        for _ in 0..kc {
            let b0 = _mm256_loadu_ps(pb);
            let b1 = _mm256_loadu_ps(pb.add(8));
            for (r, acc) in c.iter_mut().enumerate() {
                let x = _mm256_set1_ps(*pa.add(r));
                acc[0] = _mm256_fmadd_ps(x, b0, acc[0]);
                acc[1] = _mm256_fmadd_ps(x, b1, acc[1]);
            }
            pa = pa.add(MR);
            pb = pb.add(NR);
        }
        let out = tile.as_mut_ptr();
        for (r, acc) in c.iter().enumerate() {
            _mm256_storeu_ps(out.add(r * NR), acc[0]);
            _mm256_storeu_ps(out.add(r * NR + 8), acc[1]);
        }
    }
}
