//! The portable micro-kernel: plain Rust over fixed-size arrays, which LLVM keeps in vector
//! registers where the target has them. Correct on every target (no `unsafe`).

use super::{MicroKernel, MAX_TILE};

/// MR×8 tile, one multiply and one add per element and step (no fused multiply-add: `core` has
/// none without `std`, and a software `fmaf` would be far slower).
pub(crate) struct Portable;

/// Rows of a tile: 8 where the target has 16+ wide-enough vector registers for 8×8 accumulators
/// plus operands (AVX: 8 ymm; aarch64: 16 of 32 q registers); 4 elsewhere, where 8×8 would need
/// all 16 SSE registers for the accumulators alone and spill (measured: 8×8 on baseline x86-64
/// ran at about a third of 4×8).
const MR: usize = if cfg!(any(target_feature = "avx", target_arch = "aarch64")) {
    8
} else {
    4
};
/// Columns of a tile.
const NR: usize = 8;

impl MicroKernel for Portable {
    const MR: usize = MR;
    const NR: usize = NR;

    #[inline]
    fn run(kc: usize, a: &[f32], b: &[f32], tile: &mut [f32; MAX_TILE]) {
        let mut acc = [[0.0f32; NR]; MR];
        let a = a.get(..kc * MR).unwrap_or(&[]);
        let b = b.get(..kc * NR).unwrap_or(&[]);
        for (ap, bp) in a.chunks_exact(MR).zip(b.chunks_exact(NR)) {
            let mut av = [0.0f32; MR];
            av.copy_from_slice(ap);
            let mut bv = [0.0f32; NR];
            bv.copy_from_slice(bp);
            for (row, &x) in acc.iter_mut().zip(&av) {
                for (c, &y) in row.iter_mut().zip(&bv) {
                    *c += x * y;
                }
            }
        }
        for (dst, row) in tile.chunks_exact_mut(NR).zip(&acc) {
            dst.copy_from_slice(row);
        }
    }
}
