//! The three transforms of Winograd F(4×4, 3×3) (Lavin & Gray's `G`, `Bᵀ`, `Aᵀ`): filters
//! `U = G g Gᵀ` (stored as GEMM micro-panels), input tiles `V = Bᵀ d B` (strips of 64 tiles,
//! vectorised across x, then across 8 or 16 tiles), output tiles `Y = Aᵀ M A` plus bias and
//! ReLU (8 tiles at a time, or 16 with AVX-512 in rows of more than 8 tiles; within one tile
//! row), each portable and compiled for the kernel's ISA (AVX2+FMA, AVX-512F; [`Fast`]), the
//! x86 ones largely in intrinsics. The filter transform has the same arithmetic
//! everywhere (the same bits); the input and output transforms on x86-64 use fused
//! multiply-adds (fewer operations, one rounding fewer per fused pair), so their bits differ
//! from the portable code's by rounding — both are tested against an f64 oracle. Within one
//! ISA every element has one value, whatever the split between workers or the band.

use core::ops::Range;

use super::engine::OutPtr;
use super::{ALPHA, LANES, POS, SEG, STRIP, STRIP_W, TILE};
use crate::conv::ConvInput;
use crate::exec::Shared;
use crate::gemm::Kernel;
use crate::tensor::TensorView;

/// `G` of F(4×4, 3×3) (6×3); [`g_rows`] applies it (checked against this in the tests).
#[cfg(test)]
const G: [[f32; 3]; 6] = [
    [1.0 / 4.0, 0.0, 0.0],
    [-1.0 / 6.0, -1.0 / 6.0, -1.0 / 6.0],
    [-1.0 / 6.0, 1.0 / 6.0, -1.0 / 6.0],
    [1.0 / 24.0, 1.0 / 12.0, 1.0 / 6.0],
    [1.0 / 24.0, -1.0 / 12.0, 1.0 / 6.0],
    [0.0, 0.0, 1.0],
];

/// `G x` for a column `x = (x0, x1, x2)` of 8 lanes, using `G`'s structure (rows 1 and 2, 3
/// and 4 share their even part): 12 vector operations instead of 30.
#[inline(always)]
fn g_rows(x0: &[f32; 8], x1: &[f32; 8], x2: &[f32; 8]) -> [[f32; 8]; ALPHA] {
    let mut o = [[0.0f32; 8]; ALPHA];
    for l in 0..8 {
        let s = x0[l] + x2[l];
        let p = x0[l] * (1.0 / 24.0) + x2[l] * (1.0 / 6.0);
        let q = x1[l] * (1.0 / 12.0);
        o[0][l] = x0[l] * (1.0 / 4.0);
        o[1][l] = (s + x1[l]) * (-1.0 / 6.0);
        o[2][l] = (s - x1[l]) * (-1.0 / 6.0);
        o[3][l] = p + q;
        o[4][l] = p - q;
        o[5][l] = x2[l];
    }
    o
}

/// Filters `co0..co0 + rows` (`block = (co0, rows)`, all `cin` input channels) transformed
/// into `u`, packed in micro-panels of `mr ≤ 8` rows per K block ([`UPack`]): `U_ξ[r, ci]` at
/// `u[ξ·su + UPack::new(rows, cin, mr).at(ci, r)]`, with `U = G g Gᵀ`; the padding rows of
/// the last panel are zero. Only the micro-panels `panels` (of `rows.div_ceil(mr)`), so that
/// workers can share the transform. Vectorised across the rows of a panel, so that each
/// `U_ξ[panel, ci]` is one store of `mr` contiguous values; the weights of a panel are read 16
/// input channels at a time (`mr` contiguous runs of 144 values). Panics if a store leaves `u`.
///
/// # Safety
/// No other thread may access the elements of those panels in `u` during the call.
#[inline(always)]
unsafe fn filter_transform(
    w: &TensorView<'_>,
    block: (usize, usize),
    panels: Range<usize>,
    cin: usize,
    mr: usize,
    su: usize,
    u: &Shared<'_, f32>,
) {
    const CHUNK: usize = 16;
    const ROWS: usize = 8;
    let (co0, rows) = block;
    assert!((1..=ROWS).contains(&mr), "panel height {mr} outside 1..=8");
    let up = UPack::new(rows, cin, mr);
    // buf[rr]: the 9 taps of channels ci0..ci0 + n of row rr of the panel.
    let mut buf = [[0.0f32; 9 * CHUNK]; ROWS];
    for panel in panels.start..panels.end.min(rows.div_ceil(mr)) {
        let here = mr.min(rows - panel * mr);
        let mut ci0 = 0;
        while ci0 < cin {
            let n = CHUNK.min(cin - ci0);
            for (rr, b) in buf.iter_mut().enumerate().take(here) {
                w.read_into(((co0 + panel * mr + rr) * cin + ci0) * 9, &mut b[..9 * n]);
            }
            for c in 0..n {
                // g[k][rr]: tap k of row rr (rows past the panel's last stay zero).
                let mut g = [[0.0f32; ROWS]; 9];
                for (rr, b) in buf.iter().enumerate().take(here) {
                    for (k, gk) in g.iter_mut().enumerate() {
                        gk[rr] = b[c * 9 + k];
                    }
                }
                // t = G g (6×3 per row: column j of t is `G (g_j, g_3+j, g_6+j)`), then
                // U = t Gᵀ (row a of U is `G (t_a0, t_a1, t_a2)`), both by `g_rows`.
                let t = [
                    g_rows(&g[0], &g[3], &g[6]),
                    g_rows(&g[1], &g[4], &g[7]),
                    g_rows(&g[2], &g[5], &g[8]),
                ];
                let base = up.at(ci0 + c, panel * mr);
                let [t0, t1, t2] = &t;
                for (a, ((x0, x1), x2)) in t0.iter().zip(t1).zip(t2).enumerate() {
                    for (bb, val) in g_rows(x0, x1, x2).into_iter().enumerate() {
                        let at = (a * ALPHA + bb) * su + base;
                        // SAFETY: an element of this call's panels (the caller's contract).
                        let dst = unsafe { u.range(at, mr) }.expect("U store out of bounds");
                        if let Ok(d) = <&mut [f32; ROWS]>::try_from(&mut *dst) {
                            // Fixed length: one vector store, not a `memcpy` call.
                            *d = val;
                        } else {
                            for (d, &v) in dst.iter_mut().zip(&val) {
                                *d = v;
                            }
                        }
                    }
                }
            }
            ci0 += n;
        }
    }
}

/// `Bᵀ d` for one column of six values (`Bᵀ` of F(4×4, 3×3)), with the sums and differences
/// that rows 1–4 share taken once (18 operations; the x86 steps do the same with fused
/// multiply-adds, 14: [`x86`]'s `bt_fma`).
#[inline(always)]
fn bt(d: [f32; 6]) -> [f32; 6] {
    let (s12, s34) = (d[1] + d[2], d[3] + d[4]);
    let (d12, d43) = (d[1] - d[2], d[4] - d[3]);
    let (d31, d42) = (d[3] - d[1], d[4] - d[2]);
    [
        4.0 * d[0] + (d[4] - 5.0 * d[2]),
        s34 - 4.0 * s12,
        4.0 * d12 + d43,
        2.0 * d31 + d42,
        d42 - 2.0 * d31,
        4.0 * d[1] + (d[5] - 5.0 * d[3]),
    ]
}

/// `Aᵀ m` for one column of six values, lane-wise (`Aᵀ` of F(4×4, 3×3)).
#[inline(always)]
fn at(m: &[[f32; LANES]; 6]) -> [[f32; LANES]; 4] {
    let mut o = [[0.0f32; LANES]; 4];
    for l in 0..LANES {
        let (p12, m12) = (m[1][l] + m[2][l], m[1][l] - m[2][l]);
        let (p34, m34) = (m[3][l] + m[4][l], m[3][l] - m[4][l]);
        o[0][l] = m[0][l] + p12 + p34;
        o[1][l] = m12 + 2.0 * m34;
        o[2][l] = p12 + 4.0 * p34;
        o[3][l] = m12 + 8.0 * m34 + m[5][l];
    }
    o
}

/// Where the input transform puts `V_ξ[ci, t]` (`C_in × tb`, `t` the tile within the block):
/// already packed as the GEMM's right operand for a kernel with `nr` columns, so the GEMM reads
/// it in place ([`crate::gemm::PackB::packed`]). Depths are cut into the GEMM's K blocks
/// ([`crate::gemm::k_step`]); block `[pc, pc + kc)` takes `kc·tbp` elements from `pc·tbp` on,
/// as `tbp / nr` micro-panels of `kc × nr` (tiles past `tb` up to `tbp` are padding, zero).
#[derive(Clone, Copy, Debug)]
pub(super) struct VPack {
    /// Input channels (GEMM depth).
    pub cin: usize,
    /// Tiles of the block (GEMM columns).
    pub tb: usize,
    /// `tb` rounded up to whole micro-panels of `nr`.
    pub tbp: usize,
    /// The GEMM's K block depth for `cin`.
    pub kc_step: usize,
    /// The kernel's micro-panel width.
    pub nr: usize,
}

impl VPack {
    /// The layout for `cin` channels and `tb` tiles, for a kernel `nr` columns wide.
    pub(super) fn new(cin: usize, tb: usize, nr: usize) -> VPack {
        let b = KBlocks::new(tb, cin, nr);
        VPack {
            cin,
            tb,
            tbp: b.span,
            kc_step: b.kc_step,
            nr,
        }
    }

    fn blocks(&self) -> KBlocks {
        KBlocks {
            depth: self.cin,
            span: self.tbp,
            kc_step: self.kc_step,
            panel: self.nr,
        }
    }

    /// Elements of one `V_ξ`.
    pub(super) fn len(&self) -> usize {
        self.blocks().len()
    }

    /// The K block holding channel `ci`: `(pc, kc)`.
    #[inline(always)]
    pub(super) fn block(&self, ci: usize) -> (usize, usize) {
        self.blocks().block(ci)
    }

    /// Offset of `(ci, t)`; tiles `t .. t + (nr − t % nr)` follow contiguously.
    #[inline(always)]
    pub(super) fn at(&self, ci: usize, t: usize) -> usize {
        self.blocks().at(ci, t)
    }
}

/// The layout both packed operands share ([`VPack`], [`UPack`]): `span` lines (tiles or output
/// channels, a multiple of `panel`) over `depth` (input channels), cut into the GEMM's K blocks
/// of `kc_step`; block `[pc, pc + kc)` takes `kc·span` elements from `pc·span` on, as
/// `span / panel` micro-panels of `kc × panel`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct KBlocks {
    /// Depth (input channels).
    pub depth: usize,
    /// Lines, rounded up to whole panels.
    pub span: usize,
    /// The GEMM's K block depth for `depth`.
    pub kc_step: usize,
    /// Lines per micro-panel (the kernel's `nr` or `mr`).
    pub panel: usize,
}

impl KBlocks {
    /// `lines` lines (rounded up to whole panels) over `depth`, panels `panel` wide.
    pub(super) fn new(lines: usize, depth: usize, panel: usize) -> KBlocks {
        KBlocks {
            depth,
            span: lines.div_ceil(panel) * panel,
            kc_step: crate::gemm::k_step(depth).max(1),
            panel,
        }
    }

    /// Elements in all.
    pub(super) fn len(&self) -> usize {
        self.span * self.depth
    }

    /// The K block holding depth `k`: `(pc, kc)`.
    #[inline(always)]
    pub(super) fn block(&self, k: usize) -> (usize, usize) {
        let pc = k / self.kc_step * self.kc_step;
        (pc, self.kc_step.min(self.depth - pc))
    }

    /// Offset of depth `k`, line `j`; lines `j .. j + (panel − j % panel)` follow contiguously.
    #[inline(always)]
    pub(super) fn at(&self, k: usize, j: usize) -> usize {
        let (pc, kc) = self.block(k);
        pc * self.span + (j / self.panel) * kc * self.panel + (k - pc) * self.panel + j % self.panel
    }
}

/// Where the input transform writes `V` (all 36 `V_ξ`, `sv` apart): a raw view of a buffer
/// borrowed `&mut` for `'a`, so that several workers can fill disjoint tiles of one shared
/// `V` at once (each through short slices of its own elements only).
pub(super) struct VOut<'a> {
    ptr: *mut f32,
    len: usize,
    _borrow: core::marker::PhantomData<&'a mut [f32]>,
}

// SAFETY: a `VOut` is an exclusive borrow handed to several threads, which write disjoint
// elements (the contract of `VOut::run`).
unsafe impl Sync for VOut<'_> {}

impl<'a> VOut<'a> {
    /// Takes the buffer's borrow.
    pub(super) fn new(v: &'a mut [f32]) -> Self {
        VOut {
            ptr: v.as_mut_ptr(),
            len: v.len(),
            _borrow: core::marker::PhantomData,
        }
    }

    /// Elements `at..at + n`. Panics if they leave the buffer.
    ///
    /// # Safety
    /// No other live reference (on any thread) may cover these elements while the slice lives.
    #[allow(clippy::mut_from_ref)]
    #[inline(always)]
    pub(super) unsafe fn run(&self, at: usize, n: usize) -> &mut [f32] {
        assert!(at <= self.len && n <= self.len - at, "V run out of bounds");
        // SAFETY: in bounds (checked above) of the buffer borrowed for `'a`; exclusivity is
        // the caller's guarantee.
        unsafe { core::slice::from_raw_parts_mut(self.ptr.add(at), n) }
    }
}

/// Where the filter transform puts `U_ξ[r, ci]` (`rows × C_in`): already packed as the GEMM's
/// left operand for a kernel with `mr`-row micro-panels, per K block of the GEMM
/// ([`crate::gemm::k_step`], as [`VPack`]), so that the GEMM reads every block in place
/// ([`crate::gemm::PackA::packed`]): [`KBlocks`] with the output channels as lines
/// (`UPack::new(rows, cin, mr)`, `U_ξ[r, ci]` at `at(ci, r)`; rows past `rows` up to `span`
/// are padding, zero).
pub(super) type UPack = KBlocks;

/// The instruction set the transforms are compiled for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Isa {
    Portable,
    #[cfg(target_arch = "x86_64")]
    Avx2,
    #[cfg(target_arch = "x86_64")]
    Avx512,
}

/// The transforms compiled for the kernel's instruction set (the same code, wider vectors):
/// AVX2+FMA with the AVX2 kernel, AVX-512F (+AVX2, FMA) with the AVX-512 kernel, portable
/// otherwise, so that forcing a kernel also forces its transforms (the oracle tests run each).
#[derive(Clone, Copy)]
pub(super) struct Fast {
    isa: Isa,
}

impl Fast {
    pub(super) fn new(kernel: Kernel) -> Fast {
        let _ = kernel;
        #[cfg(target_arch = "x86_64")]
        {
            // `Kernel::avx2_fma` / `Kernel::avx512` are `Some` only on a CPU with those
            // features (checked at run time with `std`).
            if Kernel::avx2_fma().is_some() {
                if Kernel::avx512() == Some(kernel) {
                    return Fast { isa: Isa::Avx512 };
                }
                if Kernel::avx2_fma() == Some(kernel) {
                    return Fast { isa: Isa::Avx2 };
                }
            }
        }
        Fast { isa: Isa::Portable }
    }

    ///
    /// # Safety
    /// As [`filter_transform`]: no other thread may access the elements of `panels` in `u`.
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn filter_transform(
        self,
        w: &TensorView<'_>,
        block: (usize, usize),
        panels: Range<usize>,
        cin: usize,
        mr: usize,
        su: usize,
        u: &Shared<'_, f32>,
    ) {
        match self.isa {
            // SAFETY: `Isa::Avx2` / `Isa::Avx512` are only chosen by `Fast::new` on a CPU with
            // those features; the caller keeps other threads away from these panels.
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 | Isa::Avx512 => unsafe {
                x86::filter_transform_ymm(w, block, panels, cin, mr, su, u)
            },
            // SAFETY: as above.
            Isa::Portable => unsafe { filter_transform(w, block, panels, cin, mr, su, u) },
        }
    }

    /// # Safety
    /// As [`input_transform`]: no other thread may access the elements of `v` of tiles
    /// `sub.0..sub.1` during the call.
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn input_transform(
        self,
        input: &ConvInput<'_>,
        pad: usize,
        tw: usize,
        t0: usize,
        sub: (usize, usize),
        vp: &VPack,
        sv: usize,
        v: &VOut<'_>,
        strip: &mut [f32],
    ) {
        // SAFETY (all arms): the caller's contract ([`input_transform`]); `Isa::Avx2` /
        // `Isa::Avx512` are only chosen on a CPU with those features.
        match self.isa {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => unsafe {
                x86::input_transform_avx2(input, pad, tw, t0, sub, vp, sv, v, strip)
            },
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => unsafe {
                x86::input_transform_avx512(input, pad, tw, t0, sub, vp, sv, v, strip)
            },
            Isa::Portable => unsafe {
                input_transform(input, pad, tw, t0, sub, vp, sv, v, strip, RowStep::Scalar)
            },
        }
    }

    /// # Safety
    /// As [`output_transform`]: no other thread may access the pixels of tiles `t0..t0 + tb`
    /// of channels `co0..co0 + rows` of `out` during the call.
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn output_transform(
        self,
        m: &[f32],
        sm: usize,
        ld: usize,
        rows: usize,
        tb: usize,
        co0: usize,
        t0: usize,
        tw: usize,
        b: &TensorView<'_>,
        relu: bool,
        out: &OutPtr<'_>,
    ) {
        match self.isa {
            // SAFETY: `Isa::Avx512` is only chosen by `Fast::new` on a CPU with AVX-512F; the
            // caller keeps other threads away from these tiles.
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 if tw > 8 => unsafe {
                x86::output_transform_zmm(m, sm, ld, rows, tb, co0, t0, tw, b, relu, out)
            },
            // SAFETY: as above (an AVX-512F CPU has AVX2 and FMA). Rows of at most 8 tiles
            // fill a group of 8 as well as one of 16, with narrower vectors (the same bits).
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => unsafe {
                x86::output_transform_avx2(m, sm, ld, rows, tb, co0, t0, tw, b, relu, out)
            },
            // SAFETY: as above (`Isa::Avx2`: AVX2 and FMA).
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => unsafe {
                x86::output_transform_avx2(m, sm, ld, rows, tb, co0, t0, tw, b, relu, out)
            },
            // SAFETY: the caller keeps other threads away from these tiles.
            Isa::Portable => unsafe {
                output_transform(m, sm, ld, rows, tb, co0, t0, tw, b, relu, out)
            },
        }
    }
}

/// The transforms compiled with x86-64 target features.
#[cfg(target_arch = "x86_64")]
mod x86 {
    use core::arch::x86_64::*;

    use core::ops::Range;

    use super::{input_transform, RowStep, VOut, VPack, Walk};
    use crate::conv::ConvInput;
    use crate::exec::Shared;
    use crate::tensor::TensorView;
    use crate::winograd::engine::OutPtr;

    /// [`super::bt`] on vectors with fused multiply-adds (`$fmadd(a, b, c) = a·b + c`,
    /// `$fnmadd(a, b, c) = c − a·b`, each rounded once): 14 operations instead of 18, so not
    /// the portable code's bits (within a few units in the last place of the terms' magnitude;
    /// tested). Every x86 step (columns and rows, AVX2 and AVX-512, full and masked vectors)
    /// uses this one formula, so each element of `V` has one value whatever the vector width,
    /// the split between workers or the band.
    macro_rules! bt_fma {
        ([$e0:expr, $e1:expr, $e2:expr, $e3:expr, $e4:expr, $e5:expr], $fmadd:ident, $fnmadd:ident, $add:ident, $sub:ident, $set1:ident) => {{
            let (e0, e1, e2, e3, e4, e5) = ($e0, $e1, $e2, $e3, $e4, $e5);
            let (four, five, two) = ($set1(4.0), $set1(5.0), $set1(2.0));
            let (s12, s34) = ($add(e1, e2), $add(e3, e4));
            let (d12, d43) = ($sub(e1, e2), $sub(e4, e3));
            let (d31, d42) = ($sub(e3, e1), $sub(e4, e2));
            [
                $fmadd(four, e0, $fnmadd(five, e2, e4)),
                $fnmadd(four, s12, s34),
                $fmadd(four, d12, d43),
                $fmadd(two, d31, d42),
                $fnmadd(two, d31, d42),
                $fmadd(four, e1, $fnmadd(five, e3, e5)),
            ]
        }};
    }

    /// The column steps' operands as raw pointers (the slices would keep 18 pointers and
    /// lengths live in the loop): `n = dst_0.len()`, the rows of `src`, `dst` and `ahead` (an
    /// `ahead` row shorter than `n` stands in as its `src` row: prefetching it is harmless).
    /// Panics if a `src_i` or `dst_i` is shorter than `n`.
    #[allow(clippy::type_complexity)]
    fn col_pointers(
        src: [&[f32]; 6],
        dst: &mut [&mut [f32]; 6],
        ahead: [&[f32]; 6],
    ) -> (usize, [*const f32; 6], [*mut f32; 6], [*const f32; 6]) {
        let n = dst[0].len();
        assert!(src.iter().all(|s| s.len() >= n) && dst.iter().all(|d| d.len() >= n));
        let s = src.map(|r| r.as_ptr());
        let d = core::array::from_fn(|i| dst[i].as_mut_ptr());
        let a = core::array::from_fn(|i| {
            if ahead[i].len() >= n {
                ahead[i].as_ptr()
            } else {
                s[i]
            }
        });
        (n, s, d, a)
    }

    /// `Bᵀ` down the columns of a strip (B on the left), 8 columns at a time with AVX2:
    /// `dst_i[x] = (Bᵀ (src_0[x], …, src_5[x]))_i` for every `x < dst_0.len()` ([`bt_fma`];
    /// the last group masked). Prefetches the lines of `ahead` (the next channel's rows, or
    /// empty) at the same columns, one line per 16 columns, without checking each address (a
    /// prefetch never faults; the checks cost 2 % of a tile). Panics if a `src_i` or `dst_i` is
    /// shorter than `dst_0`.
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    pub(super) unsafe fn col_bt_ymm(
        src: [&[f32]; 6],
        mut dst: [&mut [f32]; 6],
        ahead: [&[f32]; 6],
    ) {
        let (n, s, d, a) = col_pointers(src, &mut dst, ahead);
        // SAFETY (whole body): AVX2 and FMA on a CPU that has them; loads and stores of
        // `[x, x + 8)` with `x + 8 ≤ n`, or masked to `[x, n)`: inside every slice (checked).
        unsafe {
            let lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
            let mut x = 0;
            while x < n {
                if x % 16 == 0 {
                    for p in a {
                        crate::gemm::prefetch(p.wrapping_add(x));
                    }
                }
                let e = if x + 8 <= n {
                    s.map(|p| _mm256_loadu_ps(p.add(x)))
                } else {
                    let keep = _mm256_cmpgt_epi32(_mm256_set1_epi32((n - x) as i32), lanes);
                    s.map(|p| _mm256_maskload_ps(p.add(x), keep))
                };
                let o = bt_fma!(
                    [e[0], e[1], e[2], e[3], e[4], e[5]],
                    _mm256_fmadd_ps,
                    _mm256_fnmadd_ps,
                    _mm256_add_ps,
                    _mm256_sub_ps,
                    _mm256_set1_ps
                );
                if x + 8 <= n {
                    for (p, v) in d.into_iter().zip(o) {
                        _mm256_storeu_ps(p.add(x), v);
                    }
                } else {
                    let keep = _mm256_cmpgt_epi32(_mm256_set1_epi32((n - x) as i32), lanes);
                    for (p, v) in d.into_iter().zip(o) {
                        _mm256_maskstore_ps(p.add(x), keep, v);
                    }
                }
                x += 8;
            }
        }
    }

    /// As [`col_bt_ymm`], 16 columns at a time with AVX-512F (the same bits).
    ///
    /// # Safety
    /// The CPU must support AVX-512F, AVX2 and FMA.
    #[target_feature(enable = "avx512f,avx2,fma")]
    #[inline]
    pub(super) unsafe fn col_bt_zmm(
        src: [&[f32]; 6],
        mut dst: [&mut [f32]; 6],
        ahead: [&[f32]; 6],
    ) {
        let (n, s, d, a) = col_pointers(src, &mut dst, ahead);
        // SAFETY (whole body): AVX-512F and FMA on a CPU that has them; loads and stores of
        // `[x, x + 16)` masked to `x < n`: inside every slice (checked); masked-off lanes are
        // neither read nor written.
        unsafe {
            let mut x = 0;
            while x < n {
                for p in a {
                    crate::gemm::prefetch(p.wrapping_add(x));
                }
                let keep: __mmask16 = if x + 16 <= n {
                    0xFFFF
                } else {
                    (1u16 << (n - x)) - 1
                };
                let e = s.map(|p| _mm512_maskz_loadu_ps(keep, p.add(x)));
                let o = bt_fma!(
                    [e[0], e[1], e[2], e[3], e[4], e[5]],
                    _mm512_fmadd_ps,
                    _mm512_fnmadd_ps,
                    _mm512_add_ps,
                    _mm512_sub_ps,
                    _mm512_set1_ps
                );
                for (p, v) in d.into_iter().zip(o) {
                    _mm512_mask_storeu_ps(p.add(x), keep, v);
                }
                x += 16;
            }
        }
    }

    /// The input transform compiled with target features `$features`.
    macro_rules! compiled_with {
        ($features:literal, $input:ident, $step:expr) => {
            /// [`input_transform`] compiled with these features.
            ///
            /// # Safety
            /// The CPU must support them; [`input_transform`]'s contract holds.
            #[target_feature(enable = $features)]
            #[allow(clippy::too_many_arguments)]
            pub(super) unsafe fn $input(
                input: &ConvInput<'_>,
                pad: usize,
                tw: usize,
                t0: usize,
                sub: (usize, usize),
                vp: &VPack,
                sv: usize,
                v: &VOut<'_>,
                strip: &mut [f32],
            ) {
                // SAFETY: the caller's contract.
                unsafe { input_transform(input, pad, tw, t0, sub, vp, sv, v, strip, $step) };
            }
        };
    }

    compiled_with!("avx2,fma", input_transform_avx2, RowStep::Ymm);
    compiled_with!("avx512f,avx2,fma", input_transform_avx512, RowStep::Zmm);

    /// [`super::g_rows`] on vectors (the same operations in the same order: the same bits).
    #[inline(always)]
    unsafe fn g_rows8(x0: __m256, x1: __m256, x2: __m256) -> [__m256; 6] {
        // SAFETY (whole body): AVX arithmetic on registers; the caller has AVX2.
        unsafe {
            let c = _mm256_set1_ps;
            let s = _mm256_add_ps(x0, x2);
            let p = _mm256_add_ps(
                _mm256_mul_ps(x0, c(1.0 / 24.0)),
                _mm256_mul_ps(x2, c(1.0 / 6.0)),
            );
            let q = _mm256_mul_ps(x1, c(1.0 / 12.0));
            [
                _mm256_mul_ps(x0, c(1.0 / 4.0)),
                _mm256_mul_ps(_mm256_add_ps(s, x1), c(-1.0 / 6.0)),
                _mm256_mul_ps(_mm256_sub_ps(s, x1), c(-1.0 / 6.0)),
                _mm256_add_ps(p, q),
                _mm256_sub_ps(p, q),
                x2,
            ]
        }
    }

    /// [`super::filter_transform`] with AVX2 vectors across the 8 rows of a panel (the same
    /// arithmetic, so the same bits): the taps are gathered from the rows' weights read 16
    /// channels at a time, each `U_ξ[panel, ci]` is one (masked, for `mr < 8`) store.
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn filter_transform_ymm(
        w: &TensorView<'_>,
        block: (usize, usize),
        panels: Range<usize>,
        cin: usize,
        mr: usize,
        su: usize,
        u: &Shared<'_, f32>,
    ) {
        use super::ALPHA;
        const CHUNK: usize = 16;
        const ROWS: usize = 8;
        const ROW: usize = 9 * CHUNK;
        let (co0, rows) = block;
        assert!((1..=ROWS).contains(&mr), "panel height {mr} outside 1..=8");
        let panels = panels.start..panels.end.min(rows.div_ceil(mr));
        if panels.is_empty() || cin == 0 {
            return;
        }
        let up = super::UPack::new(rows, cin, mr);
        let mut buf = [[0.0f32; ROW]; ROWS];
        // SAFETY (whole block): AVX2 on a CPU that has it; gathers read `buf` (offsets below
        // `ROWS·ROW`); each store goes to a slice of `u` in this call's panels (the caller's
        // contract), bounds-checked by `Shared::range`.
        unsafe {
            let lanes: [i32; ROWS] = core::array::from_fn(|i| if i < mr { -1 } else { 0 });
            let mask = _mm256_loadu_si256(lanes.as_ptr() as *const __m256i);
            let offs: [i32; ROWS] = core::array::from_fn(|i| (i * ROW) as i32);
            let idx = _mm256_loadu_si256(offs.as_ptr() as *const __m256i);
            for panel in panels {
                let here = mr.min(rows - panel * mr);
                for b in buf.iter_mut().skip(here) {
                    b.fill(0.0);
                }
                let mut ci0 = 0;
                while ci0 < cin {
                    let n = CHUNK.min(cin - ci0);
                    for (rr, b) in buf.iter_mut().enumerate().take(here) {
                        w.read_into(((co0 + panel * mr + rr) * cin + ci0) * 9, &mut b[..9 * n]);
                    }
                    let src = buf.as_ptr() as *const f32;
                    for c in 0..n {
                        let g: [__m256; 9] = core::array::from_fn(|k| {
                            _mm256_i32gather_ps::<4>(src.add(c * 9 + k), idx)
                        });
                        let t = [
                            g_rows8(g[0], g[3], g[6]),
                            g_rows8(g[1], g[4], g[7]),
                            g_rows8(g[2], g[5], g[8]),
                        ];
                        let base = up.at(ci0 + c, panel * mr);
                        let [t0, t1, t2] = t;
                        for (a, ((x0, x1), x2)) in t0.into_iter().zip(t1).zip(t2).enumerate() {
                            let o = g_rows8(x0, x1, x2);
                            for (bb, v) in o.into_iter().enumerate() {
                                let p = u
                                    .range((a * ALPHA + bb) * su + base, mr)
                                    .expect("U store out of bounds")
                                    .as_mut_ptr();
                                if mr == ROWS {
                                    _mm256_storeu_ps(p, v);
                                } else {
                                    _mm256_maskstore_ps(p, mask, v);
                                }
                            }
                        }
                    }
                    ci0 += n;
                }
            }
        }
    }

    /// Runs `$body` for each run of the `n` tiles of a strip row that stays inside one
    /// micro-panel ([`Walk`]): tiles `$l..$l + $len` go to `$off..$off + $len`.
    macro_rules! panel_runs {
        ($pan:expr, $n:expr, |$l:ident, $off:ident, $len:ident| $body:block) => {{
            let (mut $l, mut $off, mut col) = (0usize, 0usize, $pan.col0);
            while $l < $n {
                let $len = ($pan.nr - col).min($n - $l);
                $body
                $l += $len;
                $off = $off + $pan.stride - col;
                col = 0;
            }
        }};
    }

    /// Whether a row step can run on `n ≥ 1` tiles laid out as `pan` says: a group starting at
    /// tile `l ≤ n − 1` reads `row` up to `4l + reach`, and every `d_i` holds the last tile.
    fn row_step_fits(row: &[f32], n: usize, reach: usize, pan: &Walk, d: &[&mut [f32]; 6]) -> bool {
        let last = pan.off(n - 1);
        row.len() >= 4 * (n - 1) + reach && d.iter().all(|x| x.len() > last)
    }

    /// `Bᵀ` along the rows of `n` tiles of one strip row (B on the right): tile `l` reads
    /// `row[4l .. 4l + 6]` and writes `d_i[pan.off(l)]`, 8 tiles at a time within each
    /// micro-panel, the last group of each masked (`bt_fma`: the bits of [`col_bt_ymm`], not of
    /// the scalar [`super::bt`]). Reads up to `row[4(n − 1) + 36]` (lanes past a run are
    /// computed from whatever is there and dropped). Returns `false`, having done nothing, if
    /// `row` or a `d_i` is short.
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    pub(super) unsafe fn row_bt_ymm(
        row: &[f32],
        n: usize,
        pan: Walk,
        mut d: [&mut [f32]; 6],
    ) -> bool {
        if n == 0 {
            return true;
        }
        if !row_step_fits(row, n, 36, &pan, &d) {
            return false;
        }
        // Lane k of the transposed vectors holds tile `PERM[k]`; undo with `permutevar`.
        // SAFETY (whole body): AVX2 on a CPU that has it; loads of `row[4l .. 4l + 36]` with
        // `l < n` stay inside `row` (checked above); stores of `d_i[off .. off + 8]` are masked
        // to the run's tiles, whose offsets are at most `pan.off(n − 1)` (inside `d_i`).
        unsafe {
            let undo = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
            let lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
            panel_runs!(pan, n, |l, off, len| {
                let mut g = 0;
                while g < len {
                    let p = row.as_ptr().add(4 * (l + g));
                    let (a0, a1, a2, a3) = (
                        _mm256_loadu_ps(p),
                        _mm256_loadu_ps(p.add(8)),
                        _mm256_loadu_ps(p.add(16)),
                        _mm256_loadu_ps(p.add(24)),
                    );
                    let t0 = _mm256_unpacklo_ps(a0, a1);
                    let t1 = _mm256_unpackhi_ps(a0, a1);
                    let t2 = _mm256_unpacklo_ps(a2, a3);
                    let t3 = _mm256_unpackhi_ps(a2, a3);
                    let e0 = _mm256_shuffle_ps::<0x44>(t0, t2);
                    let e1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
                    let e2 = _mm256_shuffle_ps::<0x44>(t1, t3);
                    let e3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
                    // e4, e5: elements 0 and 1 of the next tile.
                    let (b0, b1, b2, b3) = (
                        _mm256_loadu_ps(p.add(4)),
                        _mm256_loadu_ps(p.add(12)),
                        _mm256_loadu_ps(p.add(20)),
                        _mm256_loadu_ps(p.add(28)),
                    );
                    let s0 = _mm256_unpacklo_ps(b0, b1);
                    let s2 = _mm256_unpacklo_ps(b2, b3);
                    let e4 = _mm256_shuffle_ps::<0x44>(s0, s2);
                    let e5 = _mm256_shuffle_ps::<0xEE>(s0, s2);
                    let o = bt_fma!(
                        [e0, e1, e2, e3, e4, e5],
                        _mm256_fmadd_ps,
                        _mm256_fnmadd_ps,
                        _mm256_add_ps,
                        _mm256_sub_ps,
                        _mm256_set1_ps
                    );
                    if g + 8 <= len {
                        for (di, oi) in d.iter_mut().zip(o) {
                            let v = _mm256_permutevar8x32_ps(oi, undo);
                            _mm256_storeu_ps(di.as_mut_ptr().add(off + g), v);
                        }
                    } else {
                        // Lanes `< len − g`: all ones where the lane is kept.
                        let keep = _mm256_cmpgt_epi32(_mm256_set1_epi32((len - g) as i32), lanes);
                        for (di, oi) in d.iter_mut().zip(o) {
                            let v = _mm256_permutevar8x32_ps(oi, undo);
                            _mm256_maskstore_ps(di.as_mut_ptr().add(off + g), keep, v);
                        }
                    }
                    g += 8;
                }
            });
        }
        true
    }

    /// As [`row_bt_ymm`], 16 tiles at a time with AVX-512 (stride-4 deinterleave by two-source
    /// permutes; the same bits as [`row_bt_ymm`]). Reads up to `row[4(n − 1) + 81]`.
    ///
    /// # Safety
    /// The CPU must support AVX-512F.
    #[target_feature(enable = "avx512f,avx2,fma")]
    #[inline]
    pub(super) unsafe fn row_bt_zmm(
        row: &[f32],
        n: usize,
        pan: Walk,
        mut d: [&mut [f32]; 6],
    ) -> bool {
        if n == 0 {
            return true;
        }
        if !row_step_fits(row, n, 81, &pan, &d) {
            return false;
        }
        // SAFETY (whole body): AVX-512F on a CPU that has it; loads of `row[4l .. 4l + 81]`
        // with `l < n` stay inside `row` (checked above); stores of `d_i[off .. off + 16]` are
        // masked to the run's tiles, whose offsets are at most `pan.off(n − 1)` (inside `d_i`).
        unsafe {
            // Stage 1: from 32 values (8 tiles), elements 0 and 1 (`lo`) or 2 and 3 (`hi`) of
            // each tile, 8 lanes each.
            let lo = _mm512_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28, 1, 5, 9, 13, 17, 21, 25, 29);
            let hi = _mm512_setr_epi32(2, 6, 10, 14, 18, 22, 26, 30, 3, 7, 11, 15, 19, 23, 27, 31);
            panel_runs!(pan, n, |l, off, len| {
                let mut g = 0;
                while g < len {
                    let p = row.as_ptr().add(4 * (l + g));
                    let (a0, a1, a2, a3) = (
                        _mm512_loadu_ps(p),
                        _mm512_loadu_ps(p.add(16)),
                        _mm512_loadu_ps(p.add(32)),
                        _mm512_loadu_ps(p.add(48)),
                    );
                    let (a4, a5) = (_mm512_loadu_ps(p.add(64)), _mm512_loadu_ps(p.add(65)));
                    let q0 = _mm512_permutex2var_ps(a0, lo, a1);
                    let q1 = _mm512_permutex2var_ps(a2, lo, a3);
                    let r0 = _mm512_permutex2var_ps(a0, hi, a1);
                    let r1 = _mm512_permutex2var_ps(a2, hi, a3);
                    // Stage 2: the halves of the two 8-tile groups side by side.
                    let e0 = _mm512_shuffle_f32x4::<0x44>(q0, q1);
                    let e1 = _mm512_shuffle_f32x4::<0xEE>(q0, q1);
                    let e2 = _mm512_shuffle_f32x4::<0x44>(r0, r1);
                    let e3 = _mm512_shuffle_f32x4::<0xEE>(r0, r1);
                    // e4, e5: elements 0 and 1 of the next tile (lane 15: row[64], row[65]).
                    let e4 = _mm512_castsi512_ps(_mm512_alignr_epi32::<1>(
                        _mm512_castps_si512(a4),
                        _mm512_castps_si512(e0),
                    ));
                    let e5 = _mm512_castsi512_ps(_mm512_alignr_epi32::<1>(
                        _mm512_castps_si512(a5),
                        _mm512_castps_si512(e1),
                    ));
                    let o = bt_fma!(
                        [e0, e1, e2, e3, e4, e5],
                        _mm512_fmadd_ps,
                        _mm512_fnmadd_ps,
                        _mm512_add_ps,
                        _mm512_sub_ps,
                        _mm512_set1_ps
                    );
                    let keep: __mmask16 = if g + 16 <= len {
                        0xFFFF
                    } else {
                        (1u16 << (len - g)) - 1
                    };
                    for (di, oi) in d.iter_mut().zip(o) {
                        _mm512_mask_storeu_ps(di.as_mut_ptr().add(off + g), keep, oi);
                    }
                    g += 16;
                }
            });
        }
        true
    }

    /// The first pass of an output transform over a group of tiles: `s[a][bb] = (Aᵀ m_bb)_a`
    /// for the six columns `m_bb` of the transformed tile (`$ld(ξ)` loads position ξ of the
    /// group's tiles), with `$at` ([`at8`] or [`at16`]).
    macro_rules! at_columns {
        ($at:ident, $ld:expr, $zero:expr) => {{
            let ld = $ld;
            let mut s = [[$zero; ALPHA]; TILE];
            for bb in 0..ALPHA {
                let o = $at(core::array::from_fn(|a| ld(a * ALPHA + bb)));
                for (sa, oa) in s.iter_mut().zip(o) {
                    sa[bb] = oa;
                }
            }
            s
        }};
    }

    /// Bias, then ReLU when `$relu` (`0 > v ? 0 : v` by `$max(zero, v)`: v < 0 → +0; NaN and
    /// −0 stay, as [`super::relu_keep_nan`]), on the four vectors of an output row.
    macro_rules! bias_relu {
        ($y:expr, $bias:expr, $relu:expr, $zero:expr, $add:ident, $max:ident) => {{
            let mut y = $y;
            for v in y.iter_mut() {
                *v = $add(*v, $bias);
                if $relu {
                    *v = $max($zero, *v);
                }
            }
            y
        }};
    }

    /// In-lane 4×4 transposes of an output row's four vectors (`y[bb]` lane `k` = pixel
    /// `4k + bb`): vector `i` of the result holds, in its 128-bit block `j`, the four pixels of
    /// tile `4j + i`.
    macro_rules! interleave4 {
        ($y:expr, $lo:ident, $hi:ident, $shuf:ident) => {{
            let y = $y;
            let (t0, t1) = ($lo(y[0], y[1]), $hi(y[0], y[1]));
            let (t2, t3) = ($lo(y[2], y[3]), $hi(y[2], y[3]));
            [
                $shuf::<0x44>(t0, t2),
                $shuf::<0xEE>(t0, t2),
                $shuf::<0x44>(t1, t3),
                $shuf::<0xEE>(t1, t3),
            ]
        }};
    }

    /// Prefetches, to write, `lines` cache lines from pixel `x0` of rows `y0..y0 + 4` of
    /// channel `c` of `out` (a tile row of the next channel). A hint: any address is harmless.
    #[inline(always)]
    fn prefetch_rows(out: &OutPtr<'_>, c: usize, y0: usize, x0: usize, lines: usize) {
        use super::TILE;
        for a in 0..TILE {
            let p = out.addr(c, y0 + a, x0) as *const i8;
            for line in 0..lines {
                // SAFETY: a prefetch never faults, whatever the address (SSE, baseline x86-64).
                unsafe { _mm_prefetch::<_MM_HINT_ET0>(p.wrapping_add(64 * line)) };
            }
        }
    }

    /// [`super::at`] on vectors with fused multiply-adds (10 operations instead of 13, so not
    /// the portable bits; every x86 output transform uses this one formula).
    macro_rules! at_fma {
        ($m:expr, $fmadd:ident, $add:ident, $sub:ident, $set1:ident) => {{
            let m = $m;
            let (p12, m12) = ($add(m[1], m[2]), $sub(m[1], m[2]));
            let (p34, m34) = ($add(m[3], m[4]), $sub(m[3], m[4]));
            let (two, four, eight) = ($set1(2.0), $set1(4.0), $set1(8.0));
            [
                $add($add(m[0], p12), p34),
                $fmadd(two, m34, m12),
                $fmadd(four, p34, p12),
                $add($fmadd(eight, m34, m12), m[5]),
            ]
        }};
    }

    /// `Aᵀ m` on six vectors of 8 tiles ([`at_fma`]).
    #[inline(always)]
    unsafe fn at8(m: [__m256; 6]) -> [__m256; 4] {
        // SAFETY: AVX arithmetic on registers; the caller has AVX2 and FMA.
        unsafe {
            at_fma!(
                m,
                _mm256_fmadd_ps,
                _mm256_add_ps,
                _mm256_sub_ps,
                _mm256_set1_ps
            )
        }
    }

    /// [`output_transform`] with vectors of 8 tiles ([`at8`]: fused multiply-adds, so within
    /// rounding of the portable bits, not equal to them), with the 4×8 transposes that interleave 8 side-by-side tiles into output rows done by
    /// shuffles. Groups of tiles never cross a tile row; the pixels of a partial group (the end
    /// of a row or of the block, or tiles cut by the output's right edge) are stored masked.
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA, and [`output_transform`]'s contract holds.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    unsafe fn output_transform_x86(
        m: &[f32],
        sm: usize,
        ld: usize,
        rows: usize,
        tb: usize,
        co0: usize,
        t0: usize,
        tw: usize,
        b: &TensorView<'_>,
        relu: bool,
        out: &OutPtr<'_>,
    ) {
        use super::{ALPHA, LANES, POS, TILE};
        let (oh, ow) = (out.h, out.w);
        // Every load below reads 8 values at `ξ·sm + r·ld + l` with `r < rows`, `l < tb`:
        // the last ends before `35·sm + (rows − 1)·ld + tb + 8 ≤ 36·sm`.
        assert!(ld >= tb && m.len() >= POS * sm);
        assert!(rows == 0 || sm >= (rows - 1) * ld + tb + LANES);
        for r in 0..rows {
            let co = co0 + r;
            // SAFETY (whole block): AVX2 on a CPU that has it; loads in bounds (asserted above);
            // stores through `out.row` into tiles the caller reserves for this call, masked to
            // the slice's length.
            unsafe {
                let bias = _mm256_set1_ps(b.get(co));
                let zero = _mm256_setzero_ps();
                let lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
                let ld =
                    |xi: usize, l: usize| _mm256_loadu_ps(m.as_ptr().add(xi * sm + r * ld + l));
                let mut l = 0;
                while l < tb {
                    let t = t0 + l;
                    let (ty, tx) = (t / tw, t % tw);
                    // Tiles of this group: within the block and the tile row.
                    let n = LANES.min(tb - l).min(tw - tx);
                    let y0 = TILE * ty;
                    // Output pixels of each of its rows (tiles may stick out on the right).
                    let px = (TILE * n).min(ow.saturating_sub(TILE * tx));
                    // The same pixels of the next channel, into the cache ahead of its stores
                    // (a line read by this core alone arrives exclusive: no second request to
                    // write it). The stores of the 4 output rows missed the caches and stalled
                    // the transform (measured, paired 1-thread runs: 16-channel layers 7-13 %
                    // faster).
                    if r + 1 < rows {
                        prefetch_rows(out, co + 1, y0, TILE * tx, 2);
                    }
                    let s = at_columns!(at8, |xi| ld(xi, l), zero);
                    for (a, sa) in s.iter().enumerate() {
                        if y0 + a >= oh || px == 0 {
                            break;
                        }
                        let y =
                            bias_relu!(at8(*sa), bias, relu, zero, _mm256_add_ps, _mm256_max_ps);
                        // y[bb] lane k = pixel (4·k + bb) of this output row; u_i block j = the
                        // 4 pixels of tile 4j + i.
                        let [u0, u1, u2, u3] = interleave4!(
                            y,
                            _mm256_unpacklo_ps,
                            _mm256_unpackhi_ps,
                            _mm256_shuffle_ps
                        );
                        let pix = [
                            _mm256_permute2f128_ps::<0x20>(u0, u1),
                            _mm256_permute2f128_ps::<0x20>(u2, u3),
                            _mm256_permute2f128_ps::<0x31>(u0, u1),
                            _mm256_permute2f128_ps::<0x31>(u2, u3),
                        ];
                        let dst = out.row(co, y0 + a, TILE * tx, px);
                        let p = dst.as_mut_ptr();
                        if px == TILE * LANES {
                            for (i, v) in pix.into_iter().enumerate() {
                                _mm256_storeu_ps(p.add(8 * i), v);
                            }
                        } else {
                            // Vector `i` holds pixels `8i .. 8i + 8`: keep those below `px`.
                            for (i, v) in pix.into_iter().enumerate().take(px.div_ceil(8)) {
                                let left = _mm256_set1_epi32((px - 8 * i) as i32);
                                let keep = _mm256_cmpgt_epi32(left, lanes);
                                _mm256_maskstore_ps(p.add(8 * i), keep, v);
                            }
                        }
                    }
                    l += n;
                }
            }
        }
    }

    /// `Aᵀ m` on six vectors of 16 tiles ([`at_fma`]: the same bits per lane as [`at8`]).
    #[inline(always)]
    unsafe fn at16(m: [__m512; 6]) -> [__m512; 4] {
        // SAFETY: AVX-512F arithmetic on registers; the caller has AVX-512F.
        unsafe {
            at_fma!(
                m,
                _mm512_fmadd_ps,
                _mm512_add_ps,
                _mm512_sub_ps,
                _mm512_set1_ps
            )
        }
    }

    /// [`output_transform`] with vectors of 16 tiles (AVX-512F): the arithmetic of
    /// [`output_transform_x86`] (the same bits), half its instructions per tile. Each output row
    /// of a group is a 4×16 transpose: in-lane unpacks and shuffles put tile `4j + i`'s four
    /// pixels in 128-bit block `j` of vector `i`, then two rounds of block shuffles order the
    /// blocks. The loads of a partial group (the end of a tile row or of the block) and the
    /// stores of its pixels (also tiles cut by the output's right edge) are masked: nothing
    /// past the block's `M` is read.
    ///
    /// # Safety
    /// The CPU must support AVX-512F, and [`output_transform`]'s contract holds.
    #[target_feature(enable = "avx512f,avx2,fma")]
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn output_transform_zmm(
        m: &[f32],
        sm: usize,
        ld: usize,
        rows: usize,
        tb: usize,
        co0: usize,
        t0: usize,
        tw: usize,
        b: &TensorView<'_>,
        relu: bool,
        out: &OutPtr<'_>,
    ) {
        use super::{ALPHA, POS, TILE};
        const W: usize = 16;
        let (oh, ow) = (out.h, out.w);
        // Every (masked) load below reads lanes of `ξ·sm + r·ld + l .. + n` with `r < rows`,
        // `l + n ≤ tb`: the last ends before `35·sm + (rows − 1)·ld + tb ≤ 36·sm`.
        assert!(ld >= tb && m.len() >= POS * sm);
        assert!(rows == 0 || sm >= (rows - 1) * ld + tb);
        for r in 0..rows {
            let co = co0 + r;
            // SAFETY (whole block): AVX-512F on a CPU that has it; loads masked to elements in
            // bounds (asserted above); stores through `out.row` into tiles the caller reserves
            // for this call, masked to the slice's length.
            unsafe {
                let bias = _mm512_set1_ps(b.get(co));
                let zero = _mm512_setzero_ps();
                let mut l = 0;
                while l < tb {
                    let t = t0 + l;
                    let (ty, tx) = (t / tw, t % tw);
                    // Tiles of this group (≥ 1): within the block and the tile row.
                    let n = W.min(tb - l).min(tw - tx);
                    let keep: __mmask16 = if n == W { 0xFFFF } else { (1u16 << n) - 1 };
                    let y0 = TILE * ty;
                    // Output pixels of each of its rows (tiles may stick out on the right).
                    let px = (TILE * n).min(ow.saturating_sub(TILE * tx));
                    // The same pixels of the next channel, into the cache ahead of its stores
                    // (as in `output_transform_x86`).
                    if r + 1 < rows {
                        prefetch_rows(out, co + 1, y0, TILE * tx, 4);
                    }
                    let ld = |xi: usize| {
                        _mm512_maskz_loadu_ps(keep, m.as_ptr().add(xi * sm + r * ld + l))
                    };
                    let s = at_columns!(at16, ld, zero);
                    for (a, sa) in s.iter().enumerate() {
                        if y0 + a >= oh || px == 0 {
                            break;
                        }
                        let y =
                            bias_relu!(at16(*sa), bias, relu, zero, _mm512_add_ps, _mm512_max_ps);
                        // y[bb] lane k = pixel (4·k + bb) of this output row; u_i block j = the
                        // 4 pixels of tile 4j + i.
                        let [u0, u1, u2, u3] = interleave4!(
                            y,
                            _mm512_unpacklo_ps,
                            _mm512_unpackhi_ps,
                            _mm512_shuffle_ps
                        );
                        // Blocks (tiles): v0 = [0 8 1 9], v1 = [2 10 3 11], v2 = [4 12 5 13],
                        // v3 = [6 14 7 15]; then [0 1 2 3], [4 5 6 7], [8 .. 11], [12 .. 15].
                        let v0 = _mm512_shuffle_f32x4::<0x88>(u0, u1);
                        let v1 = _mm512_shuffle_f32x4::<0x88>(u2, u3);
                        let v2 = _mm512_shuffle_f32x4::<0xDD>(u0, u1);
                        let v3 = _mm512_shuffle_f32x4::<0xDD>(u2, u3);
                        let pix = [
                            _mm512_shuffle_f32x4::<0x88>(v0, v1),
                            _mm512_shuffle_f32x4::<0x88>(v2, v3),
                            _mm512_shuffle_f32x4::<0xDD>(v0, v1),
                            _mm512_shuffle_f32x4::<0xDD>(v2, v3),
                        ];
                        let dst = out.row(co, y0 + a, TILE * tx, px);
                        let p = dst.as_mut_ptr();
                        for (i, v) in pix.into_iter().enumerate().take(px.div_ceil(W)) {
                            // Vector `i` holds pixels `16i .. 16i + 16`: keep those below `px`.
                            let left = px - W * i;
                            let keep: __mmask16 = if left >= W {
                                0xFFFF
                            } else {
                                (1u16 << left) - 1
                            };
                            _mm512_mask_storeu_ps(p.add(W * i), keep, v);
                        }
                    }
                    l += n;
                }
            }
        }
    }

    /// [`output_transform_x86`] compiled with target features `$features`.
    macro_rules! output_with {
        ($features:literal, $name:ident) => {
            /// [`output_transform_x86`] compiled with these features.
            ///
            /// # Safety
            /// The CPU must support them, and [`output_transform`]'s contract holds.
            #[target_feature(enable = $features)]
            #[allow(clippy::too_many_arguments)]
            pub(super) unsafe fn $name(
                m: &[f32],
                sm: usize,
                ld: usize,
                rows: usize,
                tb: usize,
                co0: usize,
                t0: usize,
                tw: usize,
                b: &TensorView<'_>,
                relu: bool,
                out: &OutPtr<'_>,
            ) {
                // SAFETY: the caller's contract.
                unsafe { output_transform_x86(m, sm, ld, rows, tb, co0, t0, tw, b, relu, out) }
            }
        };
    }

    output_with!("avx2,fma", output_transform_avx2);
}

/// Where the tiles of one strip row go in a `V_ξ` slice that starts at the strip's first tile:
/// they run through micro-panels of `nr` tiles (the first tile is the `col0`-th of its panel),
/// panels `stride` elements apart ([`VPack`]: `kc·nr` in a K block of `kc` channels).
#[derive(Clone, Copy, Debug)]
pub(super) struct Walk {
    /// Place of the strip's first tile in its micro-panel (`< nr`).
    pub col0: usize,
    /// Tiles per micro-panel.
    pub nr: usize,
    /// Elements from one micro-panel to the next.
    pub stride: usize,
}

impl Walk {
    /// Offset of the strip's tile `l` in the slice.
    #[inline(always)]
    pub(super) fn off(&self, l: usize) -> usize {
        let t = self.col0 + l;
        t / self.nr * self.stride + t % self.nr - self.col0
    }
}

/// The scalar row step: `Bᵀ` along the rows of `n` tiles of one strip row, tile `l` from
/// `row[4l .. 4l + 6]` into `d_i[pan.off(l)]`. Panics if `row` or a `d_i` is short.
fn row_bt(row: &[f32], n: usize, pan: Walk, mut d: [&mut [f32]; 6]) {
    for l in 0..n {
        let e = &row[TILE * l..TILE * l + 6];
        let o = bt([e[0], e[1], e[2], e[3], e[4], e[5]]);
        let at = pan.off(l);
        for (di, oi) in d.iter_mut().zip(o) {
            di[at] = oi;
        }
    }
}

/// The scalar column step: `Bᵀ` down the columns of a strip (B on the left), `dst_i[x] =
/// (Bᵀ (src_0[x], …, src_5[x]))_i` for every `x < dst_0.len()`, in lines of 16 columns, each
/// after prefetching the lines of `ahead` (the next channel's rows) at the same columns. Panics
/// if a `src_i` or `dst_i` is shorter than `dst_0`.
fn col_bt(src: [&[f32]; 6], dst: [&mut [f32]; 6], ahead: [&[f32]; 6]) {
    let n = dst[0].len();
    let [r0, r1, r2, r3, r4, r5] = dst;
    let (r0, r1, r2) = (&mut r0[..n], &mut r1[..n], &mut r2[..n]);
    let (r3, r4, r5) = (&mut r3[..n], &mut r4[..n], &mut r5[..n]);
    let [i0, i1, i2, i3, i4, i5] = src.map(|s| &s[..n]);
    let mut x = 0;
    while x + 16 <= n {
        for a in ahead {
            if let Some(v) = a.get(x) {
                crate::gemm::prefetch(v);
            }
        }
        let line = |r: &[f32]| -> [f32; 16] { r[x..x + 16].try_into().unwrap() };
        let (c0, c1, c2) = (line(i0), line(i1), line(i2));
        let (c3, c4, c5) = (line(i3), line(i4), line(i5));
        let mut o = [[0.0f32; 16]; ALPHA];
        for k in 0..16 {
            let b = bt([c0[k], c1[k], c2[k], c3[k], c4[k], c5[k]]);
            for (oi, bi) in o.iter_mut().zip(b) {
                oi[k] = bi;
            }
        }
        r0[x..x + 16].copy_from_slice(&o[0]);
        r1[x..x + 16].copy_from_slice(&o[1]);
        r2[x..x + 16].copy_from_slice(&o[2]);
        r3[x..x + 16].copy_from_slice(&o[3]);
        r4[x..x + 16].copy_from_slice(&o[4]);
        r5[x..x + 16].copy_from_slice(&o[5]);
        x += 16;
    }
    for c in x..n {
        let o = bt([i0[c], i1[c], i2[c], i3[c], i4[c], i5[c]]);
        r0[c] = o[0];
        r1[c] = o[1];
        r2[c] = o[2];
        r3[c] = o[3];
        r4[c] = o[4];
        r5[c] = o[5];
    }
}

/// Zeros standing for the rows of an input strip outside the window (padding).
static ZEROS: [f32; STRIP_W] = [0.0; STRIP_W];

/// How the input transform's row step runs: scalar, or vectorised across tiles with a masked
/// last group (x86-64 only; the caller must be compiled with the features). The vector steps
/// (and the column steps that go with them) use fused multiply-adds: the same bits as each
/// other, within rounding of the scalar step's.
#[derive(Clone, Copy, PartialEq, Eq)]
enum RowStep {
    Scalar,
    /// 8 tiles at a time, AVX2.
    #[cfg(target_arch = "x86_64")]
    Ymm,
    /// 16 tiles at a time, AVX-512F.
    #[cfg(target_arch = "x86_64")]
    Zmm,
}

/// Transforms the tiles `t0 + sub.0 .. t0 + sub.1` of the block `t0..t0 + vp.tb` (row-major
/// over the `tw`-wide tile grid) of every input channel into `v`: `V_ξ[ci, t − t0]` at
/// `v[ξ·sv + vp.at(ci, t − t0)]` ([`VPack`]); with `sub.1 == vp.tb`, also the padding tiles
/// `tb..tbp` (zeros). `strip` holds at least [`STRIP`] elements. `step`: how the row step runs
/// (the result is the same). Every element is computed the same way whatever `sub`, so the
/// block can be split between workers at multiples of `vp.nr`.
///
/// # Safety
/// No other thread may access the elements of `v` that these tiles own (`sub.0` and `sub.1`
/// multiples of `vp.nr`, or `sub.1 == vp.tb`, make them disjoint from other sub-ranges').
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn input_transform(
    input: &ConvInput<'_>,
    pad: usize,
    tw: usize,
    t0: usize,
    sub: (usize, usize),
    vp: &VPack,
    sv: usize,
    v: &VOut<'_>,
    strip: &mut [f32],
    step: RowStep,
) {
    let tb = vp.tb;
    let (s0, s1) = (sub.0.min(tb), sub.1.min(tb));
    let cin = input.channels();
    let (ih, iw) = (input.h, input.w);
    let strip = &mut strip[..STRIP];
    for ci in 0..cin {
        let (data, mw, off_y, off_x) = input.plane(ci);
        let mut t = t0 + s0;
        while t < t0 + s1 {
            let (ty, tx) = (t / tw, t % tw);
            let n = SEG.min(tw - tx).min(t0 + s1 - t);
            let width = TILE * n + 2;
            // The 6 padded input rows of this run of tiles, zeros outside the window.
            let xs = TILE * tx;
            let lead = pad.saturating_sub(xs).min(width);
            let first = xs + lead - pad;
            let inside = iw.saturating_sub(first).min(width - lead);
            let y0 = TILE * ty;
            // Row `i` of the padded 6-row window: columns `lead..lead + inside` come from the
            // map (its columns `first..`), the rest are zeros, as are rows outside the window
            // (`ZEROS`, so the arithmetic is the same for every strip).
            let src = |i: usize| -> &[f32] {
                let yy = y0 + i;
                if yy < pad || yy - pad >= ih {
                    return &ZEROS[..inside];
                }
                let start = (yy - pad + off_y) * mw + off_x + first;
                &data[start..start + inside]
            };
            let (i0, i1, i2, i3, i4, i5) = (src(0), src(1), src(2), src(3), src(4), src(5));
            // The same rows of the next channel: short runs in another plane, which the
            // hardware prefetchers do not foresee (measured: the loads above stalled). They are
            // prefetched a line at a time between the column step's vectors below (a burst of
            // ~100 prefetches ahead of the step stalled on the line fill buffers, and its loop
            // cost as many instructions as the step itself).
            let mut ahead: [&[f32]; ALPHA] = [&[]; ALPHA];
            if ci + 1 < cin {
                let (next, nw, ny, nx) = input.plane(ci + 1);
                for (i, a) in ahead.iter_mut().enumerate() {
                    let yy = y0 + i;
                    if yy < pad || yy - pad >= ih {
                        continue;
                    }
                    let start = (yy - pad + ny) * nw + nx + first;
                    *a = next.get(start..start + inside).unwrap_or(&[]);
                }
            }
            // Bᵀ along the columns into the strip, vectorised across x; zeros left and right of
            // the window (`Bᵀ 0 = +0` exactly).
            {
                let (r0, rest) = strip.split_at_mut(STRIP_W);
                let (r1, rest) = rest.split_at_mut(STRIP_W);
                let (r2, rest) = rest.split_at_mut(STRIP_W);
                let (r3, rest) = rest.split_at_mut(STRIP_W);
                let (r4, r5) = rest.split_at_mut(STRIP_W);
                let mut rows = [r0, r1, r2, r3, r4, r5];
                for r in rows.iter_mut() {
                    r[..lead].fill(0.0);
                    r[lead + inside..width].fill(0.0);
                }
                let dst = rows.map(|r| &mut r[lead..lead + inside]);
                let src = [i0, i1, i2, i3, i4, i5];
                match step {
                    // SAFETY: `RowStep::Ymm` / `Zmm` are only passed by callers compiled with
                    // AVX2 and FMA / AVX-512F.
                    #[cfg(target_arch = "x86_64")]
                    RowStep::Ymm => unsafe { x86::col_bt_ymm(src, dst, ahead) },
                    // SAFETY: as above.
                    #[cfg(target_arch = "x86_64")]
                    RowStep::Zmm => unsafe { x86::col_bt_zmm(src, dst, ahead) },
                    RowStep::Scalar => col_bt(src, dst, ahead),
                }
            }
            // Bᵀ along the rows of each tile (B on the right), 6 positions per strip row,
            // written straight into `V_ξ` for ξ = 6a..6a + 6 (`sv` apart): the strip's tiles
            // run through micro-panels of `nr` tiles, `kc·nr` apart in this channel's K block.
            let tt = t - t0;
            let at = vp.at(ci, tt);
            let pan = Walk {
                col0: tt % vp.nr,
                nr: vp.nr,
                stride: vp.block(ci).1 * vp.nr,
            };
            let span = pan.off(n - 1) + 1;
            for (a, row) in strip.chunks_exact(STRIP_W).enumerate() {
                // SAFETY: six distinct `V_ξ` (ξ = 6a..6a + 6), each from the strip's first tile
                // to its last: whole micro-panels (all channels) of tiles this call owns (the
                // caller's contract), or this call's part of the first and last panel.
                let d = |b: usize| unsafe { v.run((a * ALPHA + b) * sv + at, span) };
                let d = [d(0), d(1), d(2), d(3), d(4), d(5)];
                let done = match step {
                    // SAFETY: `RowStep::Ymm` / `Zmm` are only passed by callers compiled with
                    // AVX2 / AVX-512F; the strip row holds the tiles plus the slack the vector
                    // row steps read ([`STRIP_W`]).
                    #[cfg(target_arch = "x86_64")]
                    RowStep::Ymm => unsafe { x86::row_bt_ymm(row, n, pan, d) },
                    // SAFETY: as above.
                    #[cfg(target_arch = "x86_64")]
                    RowStep::Zmm => unsafe { x86::row_bt_zmm(row, n, pan, d) },
                    RowStep::Scalar => {
                        row_bt(row, n, pan, d);
                        true
                    }
                };
                // A vector step refuses only slices out of this function's contract (the
                // scalar step would give other bits than its fused multiply-adds).
                assert!(done, "input strip or V shorter than the row step needs");
            }
            t += n;
        }
    }
    // Padding tiles `tb..tbp` of every channel and position: zero.
    if s1 == tb && vp.tbp > tb {
        for ci in 0..cin {
            let at = vp.at(ci, tb);
            for xi in 0..POS {
                // SAFETY: padding tiles of the last sub-range, owned by this call.
                unsafe { v.run(xi * sv + at, vp.tbp - tb) }.fill(0.0);
            }
        }
    }
}

/// ReLU that keeps NaN.
#[inline(always)]
fn relu_keep_nan(v: f32) -> f32 {
    if v < 0.0 {
        0.0
    } else {
        v
    }
}

/// Output transform of channels `co0..co0 + rows`, tiles `t0..t0 + tb`: `M_ξ[r, t − t0]` at
/// `m[ξ·sm + r·ld + t − t0]` (`ld ≥ tb`; the GEMM's `M` has `ld = tb`, a micro-tile `ld = NR`); `Y = Aᵀ M A + b[co]`, ReLU if `relu`, written to the parts of
/// each 4×4 tile inside `out` (edge tiles clipped).
///
/// # Safety
/// No other thread may access those pixels (tiles `t0..t0 + tb` of channels `co0..co0 + rows`)
/// during the call: `out` may be shared by workers that write other tiles or channels.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn output_transform(
    m: &[f32],
    sm: usize,
    ld: usize,
    rows: usize,
    tb: usize,
    co0: usize,
    t0: usize,
    tw: usize,
    b: &TensorView<'_>,
    relu: bool,
    out: &OutPtr<'_>,
) {
    let (oh, ow) = (out.h, out.w);
    for r in 0..rows {
        let co = co0 + r;
        let bias = b.get(co);
        let mut l = 0;
        while l < tb {
            let n = LANES.min(tb - l);
            let mut mm = [[[0.0f32; LANES]; ALPHA]; ALPHA];
            for (xi, slot) in mm.iter_mut().flatten().enumerate() {
                let at = xi * sm + r * ld + l;
                if n == LANES {
                    // Fixed length: vector moves, not a `memcpy` call.
                    slot.copy_from_slice(&m[at..at + LANES]);
                } else {
                    for (d, &v) in slot.iter_mut().zip(&m[at..at + n]) {
                        *d = v;
                    }
                }
            }
            // Aᵀ along a for every b, then along b: y[a'][b'].
            let mut s = [[[0.0f32; LANES]; ALPHA]; TILE];
            for bb in 0..ALPHA {
                let col = [
                    mm[0][bb], mm[1][bb], mm[2][bb], mm[3][bb], mm[4][bb], mm[5][bb],
                ];
                let o = at(&col);
                for (sa, oa) in s.iter_mut().zip(&o) {
                    sa[bb] = *oa;
                }
            }
            let mut y = [[[0.0f32; LANES]; TILE]; TILE];
            for (ya, sa) in y.iter_mut().zip(&s) {
                *ya = at(sa);
                for lane in ya.iter_mut().flatten() {
                    let val = *lane + bias;
                    *lane = if relu { relu_keep_nan(val) } else { val };
                }
            }
            let t = t0 + l;
            let (ty, tx) = (t / tw, t % tw);
            let y0 = TILE * ty;
            if tx + n <= tw && y0 + TILE <= oh && TILE * (tx + n) <= ow && n == LANES {
                // Eight whole tiles side by side in one tile row: four contiguous output rows.
                for (a, ya) in y.iter().enumerate() {
                    let mut rowv = [0.0f32; TILE * LANES];
                    for (k, px) in rowv.chunks_exact_mut(TILE).enumerate() {
                        for (bb, p) in px.iter_mut().enumerate() {
                            *p = ya[bb][k];
                        }
                    }
                    // SAFETY: these pixels belong to tile `t0 + l…` of channel `co`, which
                    // the caller reserves for this call.
                    let dst = unsafe { out.row(co, y0 + a, TILE * tx, TILE * LANES) };
                    dst.copy_from_slice(&rowv);
                }
            } else {
                for k in 0..n {
                    let t = t0 + l + k;
                    let (ty, tx) = (t / tw, t % tw);
                    let (y0, x0) = (TILE * ty, TILE * tx);
                    let hh = TILE.min(oh - y0);
                    let ww = TILE.min(ow - x0);
                    for (a, ya) in y.iter().enumerate().take(hh) {
                        // SAFETY: as above (tile `t` of channel `co`, clipped to the map).
                        let dst = unsafe { out.row(co, y0 + a, x0, ww) };
                        for (bb, p) in dst.iter_mut().enumerate() {
                            *p = ya[bb][k];
                        }
                    }
                }
            }
            l += n;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn g_rows_is_g_times_the_column() {
        let mut seed = 1u32;
        let mut next = || {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (seed >> 8) as f32 / (1 << 24) as f32 * 4.0 - 2.0
        };
        let x: [[f32; 8]; 3] = core::array::from_fn(|_| core::array::from_fn(|_| next()));
        let o = g_rows(&x[0], &x[1], &x[2]);
        for (a, row) in G.iter().enumerate() {
            for l in 0..8 {
                let want: f64 = (0..3).map(|j| f64::from(row[j]) * f64::from(x[j][l])).sum();
                let got = f64::from(o[a][l]);
                assert!(
                    (got - want).abs() <= 1e-6 * (1.0 + want.abs()),
                    "row {a} lane {l}"
                );
            }
        }
    }

    /// `Bᵀ` of F(4×4, 3×3) (Lavin & Gray), for the oracles below.
    const BT: [[f64; 6]; 6] = [
        [4.0, 0.0, -5.0, 0.0, 1.0, 0.0],
        [0.0, -4.0, -4.0, 1.0, 1.0, 0.0],
        [0.0, 4.0, -4.0, -1.0, 1.0, 0.0],
        [0.0, -2.0, -1.0, 2.0, 1.0, 0.0],
        [0.0, 2.0, -1.0, -2.0, 1.0, 0.0],
        [0.0, 4.0, 0.0, -5.0, 0.0, 1.0],
    ];

    /// `Aᵀ` of F(4×4, 3×3).
    const AT: [[f64; 6]; 4] = [
        [1.0, 1.0, 1.0, 1.0, 1.0, 0.0],
        [0.0, 1.0, -1.0, 2.0, -2.0, 0.0],
        [0.0, 1.0, 1.0, 4.0, 4.0, 0.0],
        [0.0, 1.0, -1.0, 8.0, -8.0, 1.0],
    ];

    /// `(P x Qᵀ, |P| |x| |Q|ᵀ)` in f64: a transform and the magnitude that bounds its
    /// rounding error.
    fn sandwich<const R: usize>(p: &[[f64; 6]; R], x: &[[f64; 6]; 6]) -> [[(f64, f64); R]; R] {
        let mut o = [[(0.0, 0.0); R]; R];
        for (a, oa) in o.iter_mut().enumerate() {
            for (b, ob) in oa.iter_mut().enumerate() {
                for (i, xi) in x.iter().enumerate() {
                    for (j, &xij) in xi.iter().enumerate() {
                        let c = p[a][i] * p[b][j];
                        ob.0 += c * xij;
                        ob.1 += (c * xij).abs();
                    }
                }
            }
        }
        o
    }

    /// Every row/column step the CPU can run (scalar; AVX2 and AVX-512 with fused
    /// multiply-adds) puts `Bᵀ d B` of every tile and channel where [`VPack`] says, within
    /// `16·ε·(|Bᵀ| |d| |B|)` of the f64 value (two passes of at most four roundings each), with
    /// zeros in the padding tiles; and gives the same bits when the block is cut into pieces as
    /// workers cut it. Blocks start and end anywhere in a tile row, cross micro-panels and runs
    /// of [`SEG`] tiles, touch the padding (zeros) and leave masked tails of every length.
    #[test]
    fn input_transforms_match_an_f64_oracle_whatever_the_split() {
        use crate::conv::Map;
        #[cfg_attr(not(target_arch = "x86_64"), allow(unused_mut))]
        let mut steps = std::vec![RowStep::Scalar];
        #[cfg(target_arch = "x86_64")]
        {
            if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
                steps.push(RowStep::Ymm);
            }
            if std::is_x86_feature_detected!("avx512f") {
                steps.push(RowStep::Zmm);
            }
        }
        let mut seed = 7u32;
        let mut next = || {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (seed >> 8) as f32 / (1 << 24) as f32 * 4.0 - 2.0
        };
        // (channels, input side, padding, nr)
        for &(cin, side, pad, nr) in &[(3, 290, 1, 32), (2, 43, 0, 16), (5, 70, 1, 8)] {
            let data: std::vec::Vec<f32> = (0..cin * side * side).map(|_| next()).collect();
            let input = ConvInput::single(Map {
                data: &data,
                c: cin,
                h: side,
                w: side,
            });
            let out = side + 2 * pad - 2;
            let (tw, total) = (out.div_ceil(TILE), super::super::tile_count(out, out));
            for &(t0, tb) in &[(0, 37), (5, 100), (tw - 3, 2 * tw + 9), (total - 61, 61)] {
                let vp = VPack::new(cin, tb, nr);
                let sv = vp.len() + 16;
                // The block in one call, or in pieces of `piece` tiles (as workers split it).
                let run = |step: RowStep, piece: usize| {
                    let mut v = std::vec![f32::NAN; POS * sv];
                    let mut strip = std::vec![f32::NAN; STRIP];
                    {
                        let out = VOut::new(&mut v);
                        let mut s0 = 0;
                        while s0 < tb {
                            let sub = (s0, (s0 + piece).min(tb));
                            let strip = &mut strip;
                            // SAFETY: the steps in `steps` were checked to run on this CPU; one
                            // thread.
                            match step {
                                RowStep::Scalar => unsafe {
                                    input_transform(
                                        &input, pad, tw, t0, sub, &vp, sv, &out, strip, step,
                                    )
                                },
                                #[cfg(target_arch = "x86_64")]
                                RowStep::Ymm => unsafe {
                                    x86::input_transform_avx2(
                                        &input, pad, tw, t0, sub, &vp, sv, &out, strip,
                                    )
                                },
                                #[cfg(target_arch = "x86_64")]
                                RowStep::Zmm => unsafe {
                                    x86::input_transform_avx512(
                                        &input, pad, tw, t0, sub, &vp, sv, &out, strip,
                                    )
                                },
                            }
                            s0 += piece;
                        }
                    }
                    v
                };
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<std::vec::Vec<_>>();
                for &step in &steps {
                    let got = run(step, tb);
                    for piece in [nr, 2 * nr] {
                        assert_eq!(
                            bits(&run(step, piece)),
                            bits(&got),
                            "pieces of {piece} tiles"
                        );
                    }
                    let mut worst = 0.0f64;
                    for tt in 0..vp.tbp {
                        for ci in 0..cin {
                            let at = |xi: usize| f64::from(got[xi * sv + vp.at(ci, tt)]);
                            if tt >= tb {
                                assert!((0..POS).all(|xi| at(xi) == 0.0), "padding tile {tt}");
                                continue;
                            }
                            let t = t0 + tt;
                            let (y0, x0) = (TILE * (t / tw), TILE * (t % tw));
                            let d: [[f64; 6]; 6] = core::array::from_fn(|i| {
                                core::array::from_fn(|j| {
                                    let (y, x) = (y0 + i, x0 + j);
                                    if y < pad || x < pad || y - pad >= side || x - pad >= side {
                                        0.0
                                    } else {
                                        let k = (ci * side + y - pad) * side + x - pad;
                                        f64::from(data[k])
                                    }
                                })
                            });
                            let want = sandwich(&BT, &d);
                            for (xi, &(w, mag)) in want.iter().flatten().enumerate() {
                                let err = (at(xi) - w).abs();
                                worst = worst.max(err / mag.max(f64::MIN_POSITIVE));
                                assert!(
                                    err <= 16.0 * f64::from(f32::EPSILON) * mag,
                                    "side {side} pad {pad} nr {nr} t0 {t0} tb {tb} tile {tt} \
                                     channel {ci} position {xi}: {} vs {w}",
                                    at(xi)
                                );
                            }
                        }
                    }
                    assert!(worst > 0.0, "no rounding at all: the oracle is not looking");
                }
            }
        }
    }

    /// Every output transform the CPU can run (portable; AVX2 and AVX-512 with fused
    /// multiply-adds) writes `Aᵀ M A + b` (then ReLU) within `16·ε·(|Aᵀ| |M| |A| + |b|)` of the
    /// f64 value, and touches exactly the portable one's pixels: blocks that start mid-row,
    /// cross tile rows and end mid-row, tiles cut by the right and bottom edges, with and
    /// without ReLU.
    #[test]
    fn output_transforms_match_an_f64_oracle() {
        use crate::conv::MapMut;
        use crate::error::Shape;
        use crate::tensor::DType;
        let fast: std::vec::Vec<Fast> = crate::gemm::Kernel::available().map(Fast::new).collect();
        let mut seed = 11u32;
        let mut next = || {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (seed >> 8) as f32 / (1 << 24) as f32 * 4.0 - 2.0
        };
        // (output h, w, channels in the block, first channel, t0, tiles)
        for &(oh, ow, rows, co0, t0, tb) in &[
            (13usize, 22usize, 3usize, 1usize, 5usize, 17usize),
            (8, 40, 2, 0, 0, 20),
            (9, 9, 1, 0, 2, 7),
            // Rows of 18 and 34 tiles (whole groups of 16, the last tile cut to 2 / 1 pixels).
            (10, 70, 2, 1, 3, 40),
            (12, 133, 2, 0, 0, 100),
        ] {
            let c = co0 + rows;
            let tw = ow.div_ceil(TILE);
            // `M` rows `tb` apart (the GEMM's) or further (a micro-tile's).
            for ld in [tb, tb + 9] {
                let sm = (rows - 1) * ld + tb + 16;
                let m: std::vec::Vec<f32> = (0..POS * sm).map(|_| next()).collect();
                let bias: std::vec::Vec<u8> = (0..c)
                    .flat_map(|i| (i as f32 * 0.25 - 0.3).to_le_bytes())
                    .collect();
                let b = TensorView::new(DType::F32, Shape::new(&[c]).unwrap(), &bias).unwrap();
                for relu in [false, true] {
                    let run = |f: Fast| {
                        let mut o = std::vec![f32::NAN; c * oh * ow];
                        let out = crate::conv::Band::whole(MapMut {
                            data: &mut o,
                            c,
                            h: oh,
                            w: ow,
                        })
                        .unwrap();
                        // SAFETY: one thread.
                        unsafe {
                            f.output_transform(&m, sm, ld, rows, tb, co0, t0, tw, &b, relu, &out)
                        };
                        o
                    };
                    let want = run(Fast { isa: Isa::Portable });
                    assert!(want.iter().any(|x| x.is_finite()));
                    for f in fast.iter().copied().chain([Fast { isa: Isa::Portable }]) {
                        let got = run(f);
                        let what = std::format!(
                            "{oh}x{ow} t0 {t0} tb {tb} ld {ld} relu {relu} isa {:?}",
                            f.isa
                        );
                        // The same pixels written (NaN: untouched).
                        assert!(
                            got.iter().zip(&want).all(|(a, b)| a.is_nan() == b.is_nan()),
                            "{what}"
                        );
                        for l in 0..tb {
                            let t = t0 + l;
                            let (y0, x0) = (TILE * (t / tw), TILE * (t % tw));
                            for r in 0..rows {
                                let mm: [[f64; 6]; 6] = core::array::from_fn(|i| {
                                    core::array::from_fn(|j| {
                                        f64::from(m[(i * ALPHA + j) * sm + r * ld + l])
                                    })
                                });
                                let bias = f64::from(b.get(co0 + r));
                                let y = sandwich(&AT, &mm);
                                for (a, ya) in y.iter().enumerate() {
                                    for (bb, &(w, mag)) in ya.iter().enumerate() {
                                        let (py, px) = (y0 + a, x0 + bb);
                                        if py >= oh || px >= ow {
                                            continue;
                                        }
                                        let w = w + bias;
                                        let w = if relu { w.max(0.0) } else { w };
                                        let g = f64::from(got[((co0 + r) * oh + py) * ow + px]);
                                        let bound =
                                            16.0 * f64::from(f32::EPSILON) * (mag + bias.abs());
                                        assert!(
                                            (g - w).abs() <= bound,
                                            "{what}: channel {} pixel ({py}, {px}): {g} vs {w}",
                                            co0 + r
                                        );
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}
