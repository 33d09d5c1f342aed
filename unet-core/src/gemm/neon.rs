//! The aarch64 NEON micro-kernel: an 8×8 tile held in sixteen 128-bit accumulators (two per
//! row), with two loads of A, two of B and sixteen lane-indexed FMAs per step of K.

use core::arch::aarch64::{float32x4_t, vdupq_n_f32, vfmaq_laneq_f32, vld1q_f32, vst1q_f32};

use super::{MicroKernel, MAX_TILE};

/// 8×8 NEON kernel (NEON is part of the target, checked at compile time).
pub(crate) struct Neon;

const MR: usize = 8;
const NR: usize = 8;

impl MicroKernel for Neon {
    const MR: usize = MR;
    const NR: usize = NR;

    #[inline]
    fn run(kc: usize, a: &[f32], b: &[f32], tile: &mut [f32; MAX_TILE]) {
        let (Some(a), Some(b)) = (a.get(..kc * MR), b.get(..kc * NR)) else {
            // Out of the trait's contract; produce a defined (zero) tile rather than read past.
            tile.fill(0.0);
            return;
        };
        // SAFETY: this module is only compiled when the target has NEON; the slice lengths were
        // checked just above.
        unsafe { kernel(kc, a, b, tile) }
    }
}

/// # Safety
/// `a.len() ≥ kc·8`, `b.len() ≥ kc·8`.
#[target_feature(enable = "neon")]
unsafe fn kernel(kc: usize, a: &[f32], b: &[f32], tile: &mut [f32; MAX_TILE]) {
    // SAFETY: step p reads a[8p..8p+8] and b[8p..8p+8] for p < kc, inside the slices the caller
    // guarantees; the stores write tile[8r..8r+8] for r < 8, inside the 128-element tile.
    unsafe {
        let mut c: [[float32x4_t; 2]; MR] = [[vdupq_n_f32(0.0); 2]; MR];
        let (mut pa, mut pb) = (a.as_ptr(), b.as_ptr());
        macro_rules! rows {
            ($alo:expr, $ahi:expr, $b0:expr, $b1:expr, $($lane:literal),*) => {$(
                c[$lane][0] = vfmaq_laneq_f32::<$lane>(c[$lane][0], $b0, $alo);
                c[$lane][1] = vfmaq_laneq_f32::<$lane>(c[$lane][1], $b1, $alo);
                c[$lane + 4][0] = vfmaq_laneq_f32::<$lane>(c[$lane + 4][0], $b0, $ahi);
                c[$lane + 4][1] = vfmaq_laneq_f32::<$lane>(c[$lane + 4][1], $b1, $ahi);
            )*};
        }
        for _ in 0..kc {
            let a0 = vld1q_f32(pa);
            let a1 = vld1q_f32(pa.add(4));
            let b0 = vld1q_f32(pb);
            let b1 = vld1q_f32(pb.add(4));
            rows!(a0, a1, b0, b1, 0, 1, 2, 3);
            pa = pa.add(MR);
            pb = pb.add(NR);
        }
        let out = tile.as_mut_ptr();
        for (r, acc) in c.iter().enumerate() {
            vst1q_f32(out.add(r * NR), acc[0]);
            vst1q_f32(out.add(r * NR + 4), acc[1]);
        }
    }
}
