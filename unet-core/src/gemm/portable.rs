//! The portable micro-kernel: plain Rust over fixed-size arrays, which LLVM keeps in vector
//! registers where the target has them. Correct on every target (no `unsafe`).

use super::{MicroKernel, MAX_TILE};

/// 8×8 tile, one multiply and one add per element and step (no fused multiply-add: `core` has
/// none without `std`, and a software `fmaf` would be far slower).
pub(crate) struct Portable;

const MR: usize = 8;
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
