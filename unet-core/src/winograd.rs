//! Winograd fast convolution F(4×4, 3×3) for the network's 3×3 stride-1 convolutions (Lavin &
//! Gray, "Fast Algorithms for Convolutional Neural Networks", CVPR 2016, section 4.2, with the
//! matrices `Bᵀ`, `G`, `Aᵀ` of their F(4×4, 3×3) example).
//!
//! The output is cut into 4×4 tiles; tile `(ty, tx)` reads the 6×6 input patch at padded
//! coordinates `(4·ty, 4·tx)` (zeros outside the window). For each input channel the patch is
//! transformed, `V = Bᵀ d B`; each 3×3 filter is transformed, `U = G g Gᵀ`; then for each of the
//! 36 positions `ξ` of the 6×6 transformed tile one product `M_ξ[C_out × T] = U_ξ[C_out × C_in] ·
//! V_ξ[C_in × T]` runs on the packed [`crate::gemm`] (any micro-kernel), and each output tile is
//! `Y = Aᵀ M A` (4×4), plus bias, then ReLU. That is 36 multiplies per 16 outputs and input
//! channel instead of 144: 4× fewer than a direct convolution, at the price of the transforms
//! and a larger rounding error (measured in `tests/winograd_oracle.rs`).
//!
//! Everything lives in the caller's `work` slice ([`work_len`]), blocked so that it stays small:
//! a block of `Blocking::tiles` output tiles is transformed at a time (`V`: `36·C_in·tiles`),
//! and the output channels are taken `Blocking::rows` at a time (`U`: `36·rows·C_in`, `M`:
//! `36·rows·tiles`). When all output channels fit one block, `U` is computed once per call;
//! otherwise it is recomputed for every block of tiles (the cost is then
//! about `2.25 / tiles` of the products' flops: a transform is ~162 flops per filter, the
//! products 72·tiles). [`WORK_BUDGET`] bounds the blocks.
//!
//! Which convolutions use it: [`ConvAlgo`] (a [`crate::Plan`] setting; [`ConvAlgo::Auto`] applies
//! [`prefers_winograd`], a rule measured on this crate's benchmarks).
//!
//! Accuracy (`tests/winograd_oracle.rs`, He-scaled random weights, 'same' padding): the largest
//! error against an f64 direct convolution, over the largest output, is 2.1e-6 with 16 input
//! channels, 4.5e-6 with 64 and 5.3e-6 with 256 (the direct path: 3e-7); per element it stays
//! within `1e-4 · (|b| + Σ|w·x|)`, which the tests enforce. Whole networks with every 3×3 layer
//! on Winograd stay within 5.1e-6 of PyTorch's float64 logits on the fixtures of
//! `tests/pytorch_parity.rs` (tolerance 1e-4).
//!
//! NaN/inf: a non-finite input value reaches every output of each 4×4 tile whose 6×6 patch holds
//! it (a superset of the direct convolution's 3×3 footprint, inside those tiles); finite inputs
//! give finite outputs as long as nothing overflows.

// `Error` is the crate's single error type (large because it carries a `Shape`); without
// `alloc` it cannot be boxed, so the size lint is accepted here.
#![allow(clippy::result_large_err)]

use crate::arch::Padding;
use crate::conv::{ConvInput, MapMut};
use crate::error::Error;
use crate::gemm::{self, Epilogue, Kernel, MatMut, MatRef};
use crate::tensor::TensorView;

/// Side of an output tile.
pub const TILE: usize = 4;
/// Side of a transformed tile (`TILE + 2`).
const ALPHA: usize = 6;
/// Positions of a transformed tile (`ALPHA²`): one product each.
const POS: usize = ALPHA * ALPHA;
/// Output tiles per input strip (a run of tiles in one tile row, transformed together).
const SEG: usize = 64;
/// Columns of one row of an input strip.
const STRIP_W: usize = TILE * SEG + 2;
/// f32 elements of the input strip buffer: `ALPHA` rows.
const STRIP: usize = ALPHA * STRIP_W;
/// Extra f32 between the 36 per-position matrices of `U`, `V` and `M`, so that their starts are
/// not all a multiple of 4 KiB apart (36 streams in one L1 set thrash it: measured, the output
/// transform's reads of `M` ran several times slower without it).
const SKEW: usize = 16;
/// Largest micro-panel height (MR) of any kernel: `U` rows are padded to whole panels.
const MAX_MR: usize = 8;
/// Lanes of the output transform (tiles transformed together).
const LANES: usize = 8;
/// Most tiles in one block: one GEMM column block ([`gemm::NC`]), so `V_ξ` is packed once per
/// product.
const MAX_TILES: usize = gemm::NC;

/// Target size (f32 elements, 1 MiB) of `V` plus `M` for one block of tiles: they are written
/// and read back at once, so they should stay in a core's L2 cache. Measured on the paper's
/// top layer (64 channels): 1 MiB blocks ran the whole layer faster than 16 MiB ones
/// (the output transform's reads of `M` missed L2).
pub const TILE_BUDGET: usize = 1 << 18;
/// Fewest tiles per block (unless the layer has fewer): a block recomputes `U` when the
/// output channels need several blocks, at a cost of about `2.25 / MIN_TILES` of the products' flops.
const MIN_TILES: usize = 64;

/// Target size (f32 elements, 16 MiB) of the blocked buffers of one call: at most a quarter for
/// `U`; when `U` must be split into blocks of rows, `V` and `M` take the rest (larger blocks of
/// tiles, fewer recomputations of `U`), otherwise they take [`TILE_BUDGET`]. With it the paper's
/// network keeps its whole scratch within 1.2× of the liveness lower bound (1.17×, tested in
/// `plan.rs`).
pub const WORK_BUDGET: usize = 1 << 22;

/// How a [`crate::Plan`] runs its 3×3 convolutions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ConvAlgo {
    /// Winograd where [`prefers_winograd`] says it is faster, direct elsewhere.
    #[default]
    Auto,
    /// Always the direct (im2col + GEMM) convolution of [`crate::conv`].
    Direct,
    /// Always Winograd F(4×4, 3×3).
    Winograd,
}

impl ConvAlgo {
    /// Whether a convolution of `c_in → c_out` channels over an `out_h × out_w` output runs
    /// Winograd under this setting.
    pub fn uses_winograd(self, c_out: usize, c_in: usize, out_h: usize, out_w: usize) -> bool {
        match self {
            ConvAlgo::Auto => prefers_winograd(c_out, c_in, out_h, out_w),
            ConvAlgo::Direct => false,
            ConvAlgo::Winograd => true,
        }
    }
}

/// The rule of [`ConvAlgo::Auto`]: Winograd when both channel counts are at least 8 and the
/// output has at least one whole 4×4 tile each way. Measured with `benches/winograd.rs`
/// (AVX2+FMA kernel, one thread, 128² outputs, medians): 1 → 64 channels (the first layer)
/// Winograd 19.7 ms vs direct 3.6 ms (the transforms cost more than the products they save);
/// 8 → 8: 2.3 vs 3.7 ms; 16 → 16: 5.3 vs 8.8 ms; 32 → 32: 13.1 vs 26.2 ms; 64 → 64: 29.5 vs
/// 63.6 ms; and 128 → 128 on a 280² output (the paper's second level): 437 vs 1186 ms. Outputs
/// narrower than a tile would waste most of each tile's work (not measured).
pub fn prefers_winograd(c_out: usize, c_in: usize, out_h: usize, out_w: usize) -> bool {
    c_out >= 8 && c_in >= 8 && out_h >= TILE && out_w >= TILE
}

/// How one call blocks its work: `rows` output channels and `tiles` output tiles at a time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Blocking {
    /// Output channels per block (all of them when `36·C_out·C_in ≤ WORK_BUDGET / 4`).
    pub rows: usize,
    /// Output tiles per block (at most the layer's tile count and [`gemm::NC`]).
    pub tiles: usize,
}

/// Number of 4×4 output tiles of an `out_h × out_w` output (saturating).
pub fn tile_count(out_h: usize, out_w: usize) -> usize {
    out_h.div_ceil(TILE).saturating_mul(out_w.div_ceil(TILE))
}

/// The blocking of a `c_in → c_out` convolution over an `out_h × out_w` output. Never
/// overflows (saturating arithmetic; absurd sizes give absurd, not wrapped, blocks).
pub fn blocking(c_out: usize, c_in: usize, out_h: usize, out_w: usize) -> Blocking {
    let quarter = WORK_BUDGET / 4;
    let cin = c_in.max(1);
    let rows = if POS.saturating_mul(c_out).saturating_mul(cin) <= quarter {
        c_out
    } else {
        // A multiple of every kernel's MR (6 and 8), at least one.
        let r = quarter / POS.saturating_mul(cin) / 24 * 24;
        r.max(24).min(c_out)
    };
    let u = POS.saturating_mul(rows).saturating_mul(c_in);
    let per_tile = POS.saturating_mul(c_in.saturating_add(rows)).max(1);
    // When `U` is computed once (all rows in one block), `V` and `M` of a block of tiles are
    // kept near L2 size (they are written and read back at once). Otherwise `U` is recomputed
    // for every block of tiles: then the blocks take what the budget leaves, to recompute
    // rarely.
    let space = if rows >= c_out {
        TILE_BUDGET
    } else {
        WORK_BUDGET.saturating_sub(u)
    };
    let tiles = (space / per_tile / 16 * 16).clamp(MIN_TILES, MAX_TILES);
    Blocking {
        rows,
        tiles: tiles.min(tile_count(out_h, out_w)),
    }
}

/// Scratch (f32 elements) that [`conv3x3_winograd_with`] needs for a `c_in → c_out`
/// convolution over an `out_h × out_w` output, with any kernel of this target: the blocked
/// `U`, `V`, `M`, an input strip and the GEMM's packing. Saturates instead of overflowing
/// (callers add it with checked arithmetic).
pub fn work_len(c_out: usize, c_in: usize, out_h: usize, out_w: usize) -> usize {
    work_len_blocked(blocking(c_out, c_in, out_h, out_w), c_in)
}

/// Scratch (f32 elements) that [`conv3x3_winograd_blocked`] needs with blocking `b` for `c_in`
/// input channels (saturating).
pub fn work_len_blocked(b: Blocking, c_in: usize) -> usize {
    let per_pos = |n: usize| POS.saturating_mul(n.saturating_add(SKEW));
    let parts = [
        per_pos(b.rows.saturating_add(MAX_MR - 1).saturating_mul(c_in)),
        per_pos(c_in.saturating_mul(b.tiles)),
        per_pos(b.rows.saturating_mul(b.tiles)),
        STRIP,
        gemm::pack_len(b.rows, b.tiles, c_in),
    ];
    parts.iter().fold(0usize, |a, &p| a.saturating_add(p))
}

/// Scratch (f32 elements) of one 3×3 convolution under `algo`: [`work_len`] if it runs
/// Winograd, else the direct path's [`crate::conv::conv3x3_pack_len`].
pub fn conv3x3_scratch_len(
    algo: ConvAlgo,
    c_out: usize,
    c_in: usize,
    out_h: usize,
    out_w: usize,
) -> usize {
    if algo.uses_winograd(c_out, c_in, out_h, out_w) {
        work_len(c_out, c_in, out_h, out_w)
    } else {
        crate::conv::conv3x3_pack_len(c_out, c_in, out_h, out_w)
    }
}

/// A 3×3 convolution by the algorithm `algo` chooses for its size: the same contract as
/// [`crate::conv::conv3x3_exec`], with `work` at least [`conv3x3_scratch_len`] elements (times
/// the executor's workers for the direct path). The direct path splits its output between
/// `exec`'s workers; the Winograd path runs on the calling thread.
#[allow(clippy::too_many_arguments)]
pub fn conv3x3_by(
    algo: ConvAlgo,
    kernel: Kernel,
    exec: &dyn crate::exec::Executor,
    w: &TensorView<'_>,
    b: &TensorView<'_>,
    input: &ConvInput<'_>,
    padding: Padding,
    relu: bool,
    out: MapMut<'_>,
    work: &mut [f32],
) -> Result<(), Error> {
    if algo.uses_winograd(out.c, input.channels(), out.h, out.w) {
        conv3x3_winograd_with(kernel, w, b, input, padding, relu, out, work)
    } else {
        crate::conv::conv3x3_exec(kernel, exec, w, b, input, padding, relu, out, work)
    }
}

/// Checks a convolution's arguments as [`crate::conv::conv3x3_with`] does; returns the padding
/// (0 or 1).
fn check(
    w: &TensorView<'_>,
    b: &TensorView<'_>,
    input: &ConvInput<'_>,
    padding: Padding,
    out: &MapMut<'_>,
) -> Result<usize, Error> {
    let bad = |what| Err(Error::InvalidArgument { what });
    let pad = match padding {
        Padding::Valid => 0,
        Padding::Same => 1,
    };
    for p in input.parts.iter().flatten() {
        let m = &p.map;
        let len =
            m.c.checked_mul(m.h)
                .and_then(|v| v.checked_mul(m.w))
                .ok_or(Error::Overflow)?;
        if m.data.len() < len {
            return bad("winograd conv3x3: input map data shorter than c·h·w");
        }
        if p.off_y.checked_add(input.h).is_none_or(|e| e > m.h)
            || p.off_x.checked_add(input.w).is_none_or(|e| e > m.w)
        {
            return bad("winograd conv3x3: input window leaves its map");
        }
    }
    let expect = |s: usize| if pad == 1 { Some(s) } else { s.checked_sub(2) };
    if expect(input.h) != Some(out.h) || expect(input.w) != Some(out.w) {
        return bad("winograd conv3x3: output size does not match input size and padding");
    }
    let cin = input.channels();
    let k = cin.checked_mul(9).ok_or(Error::Overflow)?;
    if out.c.checked_mul(k) != Some(w.len()) {
        return bad("winograd conv3x3: weights are not [c_out, c_in, 3, 3]");
    }
    if b.len() < out.c {
        return bad("winograd conv3x3: bias shorter than c_out");
    }
    let needed = out
        .c
        .checked_mul(out.h)
        .and_then(|v| v.checked_mul(out.w))
        .ok_or(Error::Overflow)?;
    if out.data.len() < needed {
        return Err(Error::BufferTooSmall {
            buffer: "winograd conv3x3 output",
            needed,
            got: out.data.len(),
        });
    }
    // The tile grid and the blocked buffers must be addressable.
    let tiles = out
        .h
        .div_ceil(TILE)
        .checked_mul(out.w.div_ceil(TILE))
        .ok_or(Error::Overflow)?;
    POS.checked_mul(cin.max(out.c))
        .and_then(|v| v.checked_mul(tiles.max(cin).max(out.c)))
        .ok_or(Error::Overflow)?;
    Ok(pad)
}

/// 3×3 stride-1 convolution by Winograd F(4×4, 3×3): the same result (up to rounding) and the
/// same contract as [`crate::conv::conv3x3_with`] — `out[co, y, x] = b[co] + Σ_ci Σ_ij
/// in[ci, y+i−p, x+j−p]·w[co, ci, i, j]`, ReLU if `relu` — with `work` scratch of at least
/// [`work_len`]`(out.c, input.channels(), out.h, out.w)` elements (contents irrelevant on entry,
/// unspecified on return). Any `h`, `w` (edge tiles are clipped), valid or same padding.
///
/// Errors as for [`crate::conv::conv3x3_with`] (nothing is written then), and
/// [`Error::BufferTooSmall`] for a short `work`.
#[allow(clippy::too_many_arguments)]
pub fn conv3x3_winograd_with(
    kernel: Kernel,
    w: &TensorView<'_>,
    b: &TensorView<'_>,
    input: &ConvInput<'_>,
    padding: Padding,
    relu: bool,
    out: MapMut<'_>,
    work: &mut [f32],
) -> Result<(), Error> {
    let bl = blocking(out.c, input.channels(), out.h, out.w);
    conv3x3_winograd_blocked(kernel, bl, w, b, input, padding, relu, out, work)
}

/// [`conv3x3_winograd_with`] with an explicit blocking (both fields at least 1; tests use small
/// blocks to run every blocking path on small layers). `work`: at least
/// [`work_len_blocked`]`(bl, input.channels())` elements; `bl.rows` may exceed `out.c` and
/// `bl.tiles` the tile count (they are clipped).
#[allow(clippy::too_many_arguments)]
pub fn conv3x3_winograd_blocked(
    kernel: Kernel,
    bl: Blocking,
    w: &TensorView<'_>,
    b: &TensorView<'_>,
    input: &ConvInput<'_>,
    padding: Padding,
    relu: bool,
    mut out: MapMut<'_>,
    work: &mut [f32],
) -> Result<(), Error> {
    let pad = check(w, b, input, padding, &out)?;
    if bl.rows == 0 || bl.tiles == 0 {
        return Err(Error::InvalidArgument {
            what: "winograd conv3x3: empty blocking",
        });
    }
    let (cout, cin) = (out.c, input.channels());
    let bl = Blocking {
        rows: bl.rows.min(cout),
        tiles: bl.tiles.min(tile_count(out.h, out.w)),
    };
    let needed = work_len_blocked(bl, cin);
    if work.len() < needed {
        return Err(Error::BufferTooSmall {
            buffer: "winograd work",
            needed,
            got: work.len(),
        });
    }
    let total = tile_count(out.h, out.w);
    if total == 0 || cout == 0 {
        return Ok(());
    }
    let tw = out.w.div_ceil(TILE);
    let mr = kernel.tile().0;
    let su_of = |rows: usize| rows.div_ceil(mr) * mr * cin + SKEW;
    let (u, rest) = work.split_at_mut(POS * su_of(bl.rows));
    let (v, rest) = rest.split_at_mut(POS * (cin * bl.tiles + SKEW));
    let (m, rest) = rest.split_at_mut(POS * (bl.rows * bl.tiles + SKEW));
    let (strip, pack) = rest.split_at_mut(STRIP);
    let fast = Fast::new(kernel);
    let single = bl.rows >= cout;
    if single {
        fast.filter_transform(w, (0, cout), cin, mr, su_of(cout), u);
    }
    let internal = Error::InvalidArgument {
        what: "internal: winograd operand sizes",
    };
    let mut t0 = 0;
    while t0 < total {
        let tb = bl.tiles.min(total - t0);
        let sv = cin * tb + SKEW;
        fast.input_transform(input, pad, tw, t0, tb, sv, v, strip);
        let mut co0 = 0;
        while co0 < cout {
            let rows = bl.rows.min(cout - co0);
            let sm = rows * tb + SKEW;
            if !single {
                fast.filter_transform(w, (co0, rows), cin, mr, su_of(rows), u);
            }
            let su = su_of(rows);
            for xi in 0..POS {
                let a = Panels {
                    data: &u[xi * su..xi * su + su - SKEW],
                    rows,
                    depth: cin,
                    mr,
                };
                let bm = MatRef::new(&v[xi * sv..xi * sv + cin * tb], cin, tb, tb, 1);
                let dst = &mut m[xi * sm..xi * sm + rows * tb];
                let d = MatMut::new(dst, rows, tb, tb, Epilogue::NONE);
                let (Some(bm), Some(mut d)) = (bm, d) else {
                    return Err(internal);
                };
                gemm::gemm(kernel, &a, &bm, &mut d, 0..tb, pack)?;
            }
            fast.output_transform(m, sm, rows, tb, co0, t0, tw, b, relu, &mut out);
            co0 += rows;
        }
        t0 += tb;
    }
    Ok(())
}

/// The left operand `U_ξ` stored already packed for the kernel: micro-panels of `mr` rows over
/// the whole depth, element `(i, p)` at `data[((i / mr)·depth + p)·mr + i % mr]` (rows past
/// `rows` in the last panel are zero). Packing a block is one contiguous copy per panel.
struct Panels<'a> {
    data: &'a [f32],
    rows: usize,
    depth: usize,
    mr: usize,
}

impl gemm::PackA for Panels<'_> {
    fn dims(&self) -> (usize, usize) {
        (self.rows, self.depth)
    }

    fn pack_a(&self, m0: usize, mc: usize, k0: usize, kc: usize, mr: usize, dst: &mut [f32]) {
        let panels = dst.chunks_exact_mut(kc * mr).take(mc.div_ceil(mr));
        if mr == self.mr && m0.is_multiple_of(mr) {
            for (s, panel) in panels.enumerate() {
                let at = ((m0 / mr + s) * self.depth + k0) * mr;
                panel.copy_from_slice(&self.data[at..at + kc * mr]);
            }
            return;
        }
        // Another panel height (not used by `conv3x3_winograd_blocked`): element by element.
        for (s, panel) in panels.enumerate() {
            for (p, d) in panel.chunks_exact_mut(mr).enumerate() {
                for (r, x) in d.iter_mut().enumerate() {
                    let i = m0 + s * mr + r;
                    *x = if i < m0 + mc {
                        let at = ((i / self.mr) * self.depth + k0 + p) * self.mr + i % self.mr;
                        self.data[at]
                    } else {
                        0.0
                    };
                }
            }
        }
    }
}

/// `G` of F(4×4, 3×3) (6×3).
const G: [[f32; 3]; 6] = [
    [1.0 / 4.0, 0.0, 0.0],
    [-1.0 / 6.0, -1.0 / 6.0, -1.0 / 6.0],
    [-1.0 / 6.0, 1.0 / 6.0, -1.0 / 6.0],
    [1.0 / 24.0, 1.0 / 12.0, 1.0 / 6.0],
    [1.0 / 24.0, -1.0 / 12.0, 1.0 / 6.0],
    [0.0, 0.0, 1.0],
];

/// Filters `co0..co0 + rows` (`block = (co0, rows)`, all `cin` input channels) transformed
/// into `u`, packed in micro-panels of `mr` rows ([`Panels`]): `U_ξ[r, ci]` at
/// `u[ξ·su + ((r / mr)·cin + ci)·mr + r % mr]`, with `U = G g Gᵀ`; the padding rows of the last
/// panel are zero. Vectorised across input channels.
#[inline(always)]
fn filter_transform(
    w: &TensorView<'_>,
    block: (usize, usize),
    cin: usize,
    mr: usize,
    su: usize,
    u: &mut [f32],
) {
    const CHUNK: usize = 16;
    let (co0, rows) = block;
    let mut buf = [0.0f32; 9 * CHUNK];
    let padded = rows.div_ceil(mr) * mr;
    for xi in 0..POS {
        for r in rows..padded {
            for ci in 0..cin {
                u[xi * su + ((r / mr) * cin + ci) * mr + r % mr] = 0.0;
            }
        }
    }
    for r in 0..rows {
        let mut ci0 = 0;
        while ci0 < cin {
            let n = CHUNK.min(cin - ci0);
            w.read_into(((co0 + r) * cin + ci0) * 9, &mut buf[..9 * n]);
            // g[k][c]: tap k of channel ci0 + c.
            let mut g = [[0.0f32; CHUNK]; 9];
            for (c, taps) in buf[..9 * n].chunks_exact(9).enumerate() {
                for (gk, &v) in g.iter_mut().zip(taps) {
                    gk[c] = v;
                }
            }
            // t = G g (6×3 per channel), then U = t Gᵀ (6×6).
            let mut t = [[[0.0f32; CHUNK]; 3]; ALPHA];
            for (ta, ga) in t.iter_mut().zip(&G) {
                for (j, tj) in ta.iter_mut().enumerate() {
                    for c in 0..CHUNK {
                        tj[c] = ga[0] * g[j][c] + ga[1] * g[3 + j][c] + ga[2] * g[6 + j][c];
                    }
                }
            }
            for (a, ta) in t.iter().enumerate() {
                for (bb, gb) in G.iter().enumerate() {
                    let mut val = [0.0f32; CHUNK];
                    for (c, vc) in val.iter_mut().enumerate() {
                        *vc = ta[0][c] * gb[0] + ta[1][c] * gb[1] + ta[2][c] * gb[2];
                    }
                    let d = (a * ALPHA + bb) * su + ((r / mr) * cin + ci0) * mr + r % mr;
                    for (c, &x) in val[..n].iter().enumerate() {
                        u[d + c * mr] = x;
                    }
                }
            }
            ci0 += n;
        }
    }
}

/// `Bᵀ d` for one column of six values (`Bᵀ` of F(4×4, 3×3)).
#[inline(always)]
fn bt(d: [f32; 6]) -> [f32; 6] {
    [
        4.0 * d[0] - 5.0 * d[2] + d[4],
        -4.0 * (d[1] + d[2]) + d[3] + d[4],
        4.0 * (d[1] - d[2]) - d[3] + d[4],
        2.0 * (d[3] - d[1]) - d[2] + d[4],
        2.0 * (d[1] - d[3]) - d[2] + d[4],
        4.0 * d[1] - 5.0 * d[3] + d[5],
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

/// Input channel `ci` of the concatenated input: its plane, the plane's width and the window
/// origin.
fn plane<'s>(input: &ConvInput<'s>, mut ci: usize) -> (&'s [f32], usize, usize, usize) {
    for p in input.parts.iter().flatten() {
        let m = &p.map;
        if ci < m.c {
            let len = m.h * m.w;
            return (&m.data[ci * len..(ci + 1) * len], m.w, p.off_y, p.off_x);
        }
        ci -= m.c;
    }
    (&[], 0, 0, 0)
}

/// The transforms compiled for the running CPU: with AVX2+FMA enabled where the kernel proves
/// them (wider vectors for the same code), portable otherwise.
#[derive(Clone, Copy)]
struct Fast {
    #[cfg(target_arch = "x86_64")]
    avx2: bool,
}

impl Fast {
    fn new(kernel: Kernel) -> Fast {
        let _ = kernel;
        Fast {
            // `Kernel::avx2_fma` is `Some` only on a CPU with AVX2 and FMA.
            #[cfg(target_arch = "x86_64")]
            avx2: Kernel::avx2_fma() == Some(kernel),
        }
    }

    fn filter_transform(
        self,
        w: &TensorView<'_>,
        block: (usize, usize),
        cin: usize,
        mr: usize,
        su: usize,
        u: &mut [f32],
    ) {
        #[cfg(target_arch = "x86_64")]
        if self.avx2 {
            // SAFETY: as in `input_transform`: the CPU has AVX2 and FMA.
            unsafe { filter_transform_avx2(w, block, cin, mr, su, u) };
            return;
        }
        filter_transform(w, block, cin, mr, su, u);
    }

    #[allow(clippy::too_many_arguments)]
    fn input_transform(
        self,
        input: &ConvInput<'_>,
        pad: usize,
        tw: usize,
        t0: usize,
        tb: usize,
        sv: usize,
        v: &mut [f32],
        strip: &mut [f32],
    ) {
        #[cfg(target_arch = "x86_64")]
        if self.avx2 {
            // SAFETY: `avx2` is only set for a kernel made by `Kernel::avx2_fma`, which checked
            // that this CPU has AVX2 and FMA.
            unsafe { input_transform_avx2(input, pad, tw, t0, tb, sv, v, strip) };
            return;
        }
        input_transform(input, pad, tw, t0, tb, sv, v, strip);
    }

    #[allow(clippy::too_many_arguments)]
    fn output_transform(
        self,
        m: &[f32],
        sm: usize,
        rows: usize,
        tb: usize,
        co0: usize,
        t0: usize,
        tw: usize,
        b: &TensorView<'_>,
        relu: bool,
        out: &mut MapMut<'_>,
    ) {
        #[cfg(target_arch = "x86_64")]
        if self.avx2 {
            // SAFETY: as in `input_transform`: the CPU has AVX2 and FMA.
            unsafe { output_transform_avx2(m, sm, rows, tb, co0, t0, tw, b, relu, out) };
            return;
        }
        output_transform(m, sm, rows, tb, co0, t0, tw, b, relu, out);
    }
}

/// [`filter_transform`] compiled with AVX2 and FMA.
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn filter_transform_avx2(
    w: &TensorView<'_>,
    block: (usize, usize),
    cin: usize,
    mr: usize,
    su: usize,
    u: &mut [f32],
) {
    filter_transform(w, block, cin, mr, su, u);
}

/// [`input_transform`] compiled with AVX2 and FMA.
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn input_transform_avx2(
    input: &ConvInput<'_>,
    pad: usize,
    tw: usize,
    t0: usize,
    tb: usize,
    sv: usize,
    v: &mut [f32],
    strip: &mut [f32],
) {
    input_transform(input, pad, tw, t0, tb, sv, v, strip);
}

/// [`output_transform`] compiled with AVX2 and FMA.
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn output_transform_avx2(
    m: &[f32],
    sm: usize,
    rows: usize,
    tb: usize,
    co0: usize,
    t0: usize,
    tw: usize,
    b: &TensorView<'_>,
    relu: bool,
    out: &mut MapMut<'_>,
) {
    output_transform(m, sm, rows, tb, co0, t0, tw, b, relu, out);
}

/// Transforms tiles `t0..t0 + tb` (row-major over the `tw`-wide tile grid) of every input
/// channel into `v`: `V_ξ[ci, t − t0]` at `v[ξ·sv + ci·tb + t − t0]`. `strip` holds at least
/// [`STRIP`] elements.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn input_transform(
    input: &ConvInput<'_>,
    pad: usize,
    tw: usize,
    t0: usize,
    tb: usize,
    sv: usize,
    v: &mut [f32],
    strip: &mut [f32],
) {
    let cin = input.channels();
    let (ih, iw) = (input.h, input.w);
    let strip = &mut strip[..STRIP];
    for ci in 0..cin {
        let (data, mw, off_y, off_x) = plane(input, ci);
        let mut t = t0;
        while t < t0 + tb {
            let (ty, tx) = (t / tw, t % tw);
            let n = SEG.min(tw - tx).min(t0 + tb - t);
            let width = TILE * n + 2;
            // The 6 padded input rows of this run of tiles, zeros outside the window.
            let xs = TILE * tx;
            let lead = pad.saturating_sub(xs).min(width);
            let first = xs + lead - pad;
            let inside = iw.saturating_sub(first).min(width - lead);
            for (i, row) in strip.chunks_exact_mut(STRIP_W).enumerate() {
                let row = &mut row[..width];
                let yy = TILE * ty + i;
                if yy < pad || yy - pad >= ih {
                    row.fill(0.0);
                    continue;
                }
                let start = (yy - pad + off_y) * mw + off_x + first;
                row[..lead].fill(0.0);
                row[lead..lead + inside].copy_from_slice(&data[start..start + inside]);
                row[lead + inside..].fill(0.0);
            }
            // Bᵀ along the columns, in place, vectorised across x.
            {
                let (r0, rest) = strip.split_at_mut(STRIP_W);
                let (r1, rest) = rest.split_at_mut(STRIP_W);
                let (r2, rest) = rest.split_at_mut(STRIP_W);
                let (r3, rest) = rest.split_at_mut(STRIP_W);
                let (r4, r5) = rest.split_at_mut(STRIP_W);
                for x in 0..width {
                    let o = bt([r0[x], r1[x], r2[x], r3[x], r4[x], r5[x]]);
                    r0[x] = o[0];
                    r1[x] = o[1];
                    r2[x] = o[2];
                    r3[x] = o[3];
                    r4[x] = o[4];
                    r5[x] = o[5];
                }
            }
            // Bᵀ along the rows of each tile (B on the right), 6 positions per strip row,
            // written straight into `V_ξ` for ξ = 6a..6a + 6 (rows `cin·tb` apart).
            let base = t - t0;
            for (a, row) in strip.chunks_exact(STRIP_W).enumerate() {
                let start = a * ALPHA * sv + ci * tb + base;
                let mut dst = v[start..].chunks_mut(sv);
                let mut next = || dst.next().map(|d| &mut d[..n]).unwrap_or(&mut []);
                let (d0, d1, d2, d3, d4, d5) = (next(), next(), next(), next(), next(), next());
                let row = &row[..TILE * n + 2];
                for l in 0..n.min(d5.len()) {
                    let e = &row[TILE * l..TILE * l + 6];
                    let o = bt([e[0], e[1], e[2], e[3], e[4], e[5]]);
                    d0[l] = o[0];
                    d1[l] = o[1];
                    d2[l] = o[2];
                    d3[l] = o[3];
                    d4[l] = o[4];
                    d5[l] = o[5];
                }
            }
            t += n;
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
/// `m[ξ·sm + r·tb + t − t0]`; `Y = Aᵀ M A + b[co]`, ReLU if `relu`, written to the parts of
/// each 4×4 tile inside `out`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn output_transform(
    m: &[f32],
    sm: usize,
    rows: usize,
    tb: usize,
    co0: usize,
    t0: usize,
    tw: usize,
    b: &TensorView<'_>,
    relu: bool,
    out: &mut MapMut<'_>,
) {
    let (oh, ow) = (out.h, out.w);
    for r in 0..rows {
        let co = co0 + r;
        let bias = b.get(co);
        let plane = &mut out.data[co * oh * ow..(co + 1) * oh * ow];
        let mut l = 0;
        while l < tb {
            let n = LANES.min(tb - l);
            let mut mm = [[[0.0f32; LANES]; ALPHA]; ALPHA];
            for (xi, slot) in mm.iter_mut().flatten().enumerate() {
                let at = xi * sm + r * tb + l;
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
                    let at = (y0 + a) * ow + TILE * tx;
                    plane[at..at + TILE * LANES].copy_from_slice(&rowv);
                }
            } else {
                for k in 0..n {
                    let t = t0 + l + k;
                    let (ty, tx) = (t / tw, t % tw);
                    let (y0, x0) = (TILE * ty, TILE * tx);
                    let hh = TILE.min(oh - y0);
                    let ww = TILE.min(ow - x0);
                    for (a, ya) in y.iter().enumerate().take(hh) {
                        let at = (y0 + a) * ow + x0;
                        for (bb, p) in plane[at..at + ww].iter_mut().enumerate() {
                            *p = ya[bb][k];
                        }
                    }
                }
            }
            l += n;
        }
    }
}
