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
//! about `0.7 / tiles` of the products' flops: a transform is ~50 flops per filter using `G`'s
//! structure, the products 72·tiles). [`WORK_BUDGET`] bounds the blocks. `U` is stored in the
//! kernel's micro-panels and `V` as packed GEMM columns ([`gemm::PackA::packed`],
//! [`gemm::PackB::packed`]), so the GEMM reads both in place instead of copying them.
//!
//! Several workers ([`conv3x3_winograd_exec`], [`spread`]): each takes whole blocks of tiles
//! with its own `V`, `M` and packing, or — for deep layers with fewer than [`MIN_TILES`] tiles
//! per worker — blocks of output channels over a shared `V`; the work area stays within the same
//! budget (each worker gets a share), and the result is bit-identical for any worker count.
//!
//! Code: this module holds the rules, sizes and checks; `engine` runs a call (the split, the
//! 36 products); `transforms` the three transforms (portable, and with AVX2/AVX-512 target
//! features; the filter transform, the output transform and the input transform's column and
//! row steps in AVX2 / AVX-512 intrinsics — the filter transform with the portable code's
//! arithmetic, the other two with fused multiply-adds, tested against an f64 oracle). Every part of the work area starts on a 64-byte line
//! (the vector loads and stores of `V` and `M` then never straddle two).
//!
//! Which convolutions use it: [`ConvAlgo`] (a [`crate::Plan`] setting; [`ConvAlgo::Auto`] applies
//! [`prefers_winograd`], a rule measured on this crate's benchmarks).
//!
//! Accuracy (`tests/winograd_oracle.rs`, He-scaled random weights, 'same' padding): the largest
//! error against an f64 direct convolution, over the largest output, is 2.1e-6 with 16 input
//! channels, 4.1e-6 with 64 and 6.1e-6 with 256 (the direct path: 3e-7; AVX-512 build with its
//! fused multiply-adds in the transforms); per element it stays within
//! `1e-4 · (|b| + Σ|w·x|)`, which the tests enforce. Whole networks with every 3×3 layer
//! on Winograd stay within 5.3e-6 of PyTorch's float64 logits on the fixtures of
//! `tests/pytorch_parity.rs` (tolerance 1e-4).
//!
//! NaN/inf: a non-finite input value reaches every output of each 4×4 tile whose 6×6 patch holds
//! it (a superset of the direct convolution's 3×3 footprint, inside those tiles); finite inputs
//! give finite outputs as long as nothing overflows.

// `Error` is the crate's single error type (large because it carries a `Shape`); without
// `alloc` it cannot be boxed, so the size lint is accepted here.
#![allow(clippy::result_large_err)]

mod engine;
mod transforms;

use crate::arch::Padding;
use crate::conv::{Band, ConvInput, MapMut};
use crate::error::Error;
use crate::gemm::{self, Kernel};
use crate::tensor::TensorView;

/// Side of an output tile.
pub const TILE: usize = 4;
/// Side of a transformed tile (`TILE + 2`).
const ALPHA: usize = 6;
/// Positions of a transformed tile (`ALPHA²`): one product each.
const POS: usize = ALPHA * ALPHA;
/// Output tiles per input strip (a run of tiles in one tile row, transformed together).
const SEG: usize = 64;
/// Columns of one row of an input strip: the tiles' `4·SEG + 2` and a slack that the
/// vectorised row steps may read past the last tile (values in lanes they drop): up to
/// `4·ceil16(n) + 17` for a run of `n` tiles, so `4·SEG + 77` at most.
const STRIP_W: usize = TILE * SEG + 2 + 78;
/// f32 elements of the input strip buffer: `ALPHA` rows.
const STRIP: usize = ALPHA * STRIP_W;
/// Extra f32 between the 36 per-position matrices of `U`, `V` and `M`, so that their starts are
/// not all a multiple of 4 KiB apart (36 streams in one L1 set thrash it: measured, the output
/// transform's reads of `M` ran several times slower without it).
const SKEW: usize = 16;
/// Largest micro-panel height (MR) of any kernel: `U` rows are padded to whole panels.
const MAX_MR: usize = 8;
/// Largest micro-panel width (NR) of any kernel (every NR divides it): `V` columns are padded
/// to whole panels.
const MAX_NR: usize = 32;
/// Lanes of the output transform (tiles transformed together).
const LANES: usize = 8;
/// Most tiles in one block: one GEMM column block ([`gemm::NC`]), so `V_ξ` is packed once per
/// product.
const MAX_TILES: usize = gemm::NC;

/// Target size (f32 elements, 512 KiB) of `V` plus `M` for one block of tiles: they are written
/// and read back at once, so they should stay in a core's L2 cache, next to the rest of the
/// layer's working set. Measured on the paper's top layer (64 channels): 1 MiB blocks ran the
/// whole layer faster than 16 MiB ones (the output transform's reads of `M` missed L2); on the
/// base-16 tile (the only layers it changes: `C_in + C_out < 114`, whose blocks are not held
/// at [`MIN_TILES`]), 512 KiB ran 0.95–0.98× the time of 1 MiB on 1 and 2 threads (in-process
/// alternation of the two plans, 20 pairs each, 2 MiB of L2 per core, a shared host).
pub const TILE_BUDGET: usize = 1 << 17;
/// Fewest tiles per block (unless the layer has fewer): a block recomputes `U` when the
/// output channels need several blocks, at a cost of about `2.25 / MIN_TILES` of the products' flops.
pub const MIN_TILES: usize = 64;

/// Target size (f32 elements, 16 MiB) of the blocked buffers of one call: at most [`U_BUDGET`] for
/// `U`; when `U` must be split into blocks of rows, `V` and `M` take the rest (larger blocks of
/// tiles, fewer recomputations of `U`), otherwise they take [`TILE_BUDGET`]. With it the paper's
/// network keeps its whole scratch within 1.2× of the liveness lower bound (1.17×, tested in
/// `plan.rs`).
pub const WORK_BUDGET: usize = 1 << 22;

/// The part of [`WORK_BUDGET`] (f32 elements, 6 MiB) that `U` may take: up to it, `U` is
/// transformed once for all output channels (and the products run a micro-tile at a time with
/// the output transform, see `engine`); beyond it, in blocks of rows recomputed for every block
/// of tiles. 3/8 rather than a quarter lets 128 ↔ 256-channel layers (U of 4.5 MiB) compute
/// `U` once: base-16 tile 0.98× the time on 1 and 2 threads and 5.1–5.8 MiB less scratch; the
/// paper's scratch is within 0.1 % (in-process alternation of the two plans, 20 pairs each).
pub const U_BUDGET: usize = WORK_BUDGET / 8 * 3;

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
    /// Output channels per block (all of them when `36·C_out·C_in ≤ U_BUDGET`).
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
    let budget = U_BUDGET;
    let cin = c_in.max(1);
    let rows = if POS.saturating_mul(c_out).saturating_mul(cin) <= budget {
        c_out
    } else {
        // A multiple of every kernel's MR (6 and 8), at least one.
        let r = budget / POS.saturating_mul(cin) / 24 * 24;
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
    // Whole micro-panels of any kernel (a partial panel is computed in full: blocks of 112
    // tiles did 128 tiles' products).
    let tiles = (space / per_tile / MAX_NR * MAX_NR).clamp(MIN_TILES, MAX_TILES);
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
    // With `b.rows` standing in for `C_out` (an upper bound whenever all rows fit one block).
    Layout::new(&Spread::sequential(b, true), b.rows, c_in).total(1)
}

/// How one call spreads over the workers of an executor (see [`spread`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SplitBy {
    /// Each job is a block of `tiles` output tiles, all channels; every worker has its own
    /// `V`, `M`, input strip and GEMM packing (and `U` unless it is computed once).
    Tiles,
    /// Blocks of tiles one after another, their input transform on the calling thread into a
    /// shared `V`; each job is a block of at most `rows` output channels of one block of tiles,
    /// with its own `M` and packing (and `U` unless it is computed once).
    Channels,
}

/// A [`Blocking`] plus how the work is shared between workers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Spread {
    /// Output channels per job or block (`rows`) and output tiles per block (`tiles`).
    pub bl: Blocking,
    /// `U` is transformed once, for all output channels, into the shared part of the work
    /// area (the layer's filters fit [`U_BUDGET`]); otherwise each block of channels
    /// transforms its own rows of `U` for every block of tiles. With [`SplitBy::Tiles`] this
    /// needs `bl.rows ≥ C_out`.
    pub u_once: bool,
    /// Which way the jobs cut the work.
    pub by: SplitBy,
    /// Workers the work area has room for (at least 1).
    pub workers: usize,
}

impl Spread {
    /// One worker, blocks of tiles, blocking `bl`; `u_once` when `bl.rows` covers every output
    /// channel.
    pub fn sequential(bl: Blocking, u_once: bool) -> Spread {
        Spread {
            bl,
            u_once,
            by: SplitBy::Tiles,
            workers: 1,
        }
    }
}

/// How a `c_in → c_out` convolution over an `out_h × out_w` output spreads over `workers`
/// workers (0 counts as 1). One worker: [`blocking`], blocks of tiles. Several: blocks of tiles
/// when there are at least [`MIN_TILES`] per worker, their count a multiple of the workers
/// (equal shares); otherwise blocks of output channels (deep layers with few pixels). The
/// buffers stay within [`WORK_BUDGET`] in all (each worker takes its share of the `U` budget),
/// except that a block of `U` has at least 24 rows. Saturating arithmetic, as [`blocking`].
pub fn spread(c_out: usize, c_in: usize, out_h: usize, out_w: usize, workers: usize) -> Spread {
    let base = blocking(c_out, c_in, out_h, out_w);
    let u_once = base.rows >= c_out;
    let w = workers.max(1);
    if w == 1 {
        return Spread::sequential(base, u_once);
    }
    let cin = c_in.max(1);
    let total = tile_count(out_h, out_w);
    // Rows of `U` per worker when it is recomputed: a share of `U_BUDGET`.
    let rows = if u_once {
        c_out
    } else {
        (U_BUDGET / POS.saturating_mul(cin) / w / 24 * 24)
            .max(24)
            .min(c_out)
    };
    let u_all = if u_once {
        POS.saturating_mul(c_out).saturating_mul(cin)
    } else {
        w.saturating_mul(POS)
            .saturating_mul(rows)
            .saturating_mul(cin)
    };
    // Blocks of tiles: each worker's `V` and `M` within its share of what `U` leaves (near L2
    // size when `U` is computed once), at least `MIN_TILES` tiles per block.
    let space = if u_once {
        TILE_BUDGET
    } else {
        WORK_BUDGET.saturating_sub(u_all) / w
    };
    let fit = space / POS.saturating_mul(cin.saturating_add(rows)).max(1);
    let tiles = (fit / MAX_NR * MAX_NR).clamp(MIN_TILES, MAX_TILES);
    // As many blocks as a multiple of the workers, of nearly equal size, in whole
    // micro-panels of any kernel (so also whole cache lines for the rows of `M`). With `U`
    // computed once, blocks of one panel when the layer has at most `2·JOBS_PER_WORKER` panels
    // per worker (deep layers: 6 panels in blocks of 2, 2, 2 left one of two workers idle a
    // third of the time), otherwise at least `JOBS_PER_WORKER` blocks per worker; for balance.
    let panels = total.div_ceil(MAX_NR);
    let blocks = total.div_ceil(tiles).div_ceil(w).saturating_mul(w);
    let jobs = w.saturating_mul(crate::exec::JOBS_PER_WORKER);
    let blocks = if u_once {
        if panels <= 2 * jobs {
            panels
        } else {
            blocks.max(jobs)
        }
    } else {
        blocks
    };
    let even = panels.div_ceil(blocks.max(1)).saturating_mul(MAX_NR);
    // Blocks of tiles need at least `MIN_TILES` per worker; when `U` is recomputed for each
    // block, blocks under `3/2·MIN_TILES` tiles recompute it so often that sharing `V` and
    // splitting the channels is faster (measured, 2 workers, paper tile: 256 → 512 at 66² and
    // 512 → 512 at 64², 80 and 64 tiles per block, ~10 % faster by channels; 120 tiles and up
    // faster by tiles).
    // And with `U` recomputed, blocks of tiles need `JOBS_PER_WORKER` per worker: with one or
    // two each, a worker waited for the other most of the layer (base-16 tile, 256 → 128 at
    // 54², 2 blocks of 128 and 68 tiles: 10.1 ms on 2 workers, one of them busy 4.3 ms).
    let by_tiles = u_once
        || (fit >= MIN_TILES
            && even > MIN_TILES * 3 / 2
            && blocks >= w.saturating_mul(crate::exec::JOBS_PER_WORKER));
    if total >= w.saturating_mul(MIN_TILES) && by_tiles {
        return Spread {
            bl: Blocking {
                rows,
                tiles: even.min(tiles).min(total),
            },
            u_once,
            by: SplitBy::Tiles,
            workers: w,
        };
    }
    // Blocks of channels: a shared `V` and each worker's `M` within what `U` leaves; blocks of
    // tiles of nearly equal size.
    let rows = if u_once {
        // A share of the channels for each worker, in whole panels of any kernel.
        c_out.div_ceil(w).div_ceil(24).saturating_mul(24).min(c_out)
    } else {
        rows
    }
    .max(1);
    let per_tile = POS.saturating_mul(cin.saturating_add(w.saturating_mul(rows)));
    let fit = (WORK_BUDGET.saturating_sub(u_all) / per_tile.max(1)).clamp(16, MAX_TILES);
    let blocks = total.div_ceil(fit).max(1);
    Spread {
        bl: Blocking {
            rows,
            tiles: total
                .div_ceil(blocks)
                .div_ceil(MAX_NR)
                .saturating_mul(MAX_NR)
                .min(total)
                .clamp(1, MAX_TILES),
        },
        u_once,
        by: SplitBy::Channels,
        workers: w,
    }
}

/// Sizes (f32 elements) of the parts of the work area under a [`Spread`]: a shared part, then
/// one part per worker. Saturating.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Layout {
    /// `U` for all output channels ([`Spread::u_once`]).
    pub u_shared: usize,
    /// `V` shared by the jobs of one block of tiles ([`SplitBy::Channels`]).
    pub v_shared: usize,
    /// A worker's own `U` rows (when `U` is not computed once).
    pub u_each: usize,
    /// A worker's own `V` ([`SplitBy::Tiles`]).
    pub v_each: usize,
    /// A worker's own `M`.
    pub m_each: usize,
    /// A worker's own input strip (each worker transforms its own tiles, also of a shared `V`).
    pub strip_each: usize,
    /// A worker's GEMM packing.
    pub pack_each: usize,
}

impl Layout {
    /// The layout of `sp` for `c_out` output and `c_in` input channels. `U` blocks are sized for
    /// any kernel's panel height ([`MAX_MR`]).
    pub(crate) fn new(sp: &Spread, c_out: usize, c_in: usize) -> Layout {
        // Every part a whole number of cache lines, so that each starts on one (see `ALIGN`).
        let line = |n: usize| n.saturating_add(gemm::ALIGN - 1) / gemm::ALIGN * gemm::ALIGN;
        let per_pos = |n: usize| line(POS.saturating_mul(n.saturating_add(SKEW)));
        let u = |rows: usize| per_pos(rows.saturating_add(MAX_MR - 1).saturating_mul(c_in));
        let (rows, tiles) = (sp.bl.rows, sp.bl.tiles);
        // `V_ξ` is stored packed for the kernel: tiles rounded up to its panel width.
        let v = per_pos(c_in.saturating_mul(tiles.saturating_add(MAX_NR - 1) / MAX_NR * MAX_NR));
        let tiles_split = sp.by == SplitBy::Tiles;
        Layout {
            u_shared: if sp.u_once { u(c_out) } else { 0 },
            v_shared: if tiles_split { 0 } else { v },
            u_each: if sp.u_once { 0 } else { u(rows) },
            v_each: if tiles_split { v } else { 0 },
            m_each: per_pos(rows.saturating_mul(tiles)),
            strip_each: line(STRIP),
            pack_each: line(gemm::pack_len(rows, tiles, c_in)),
        }
    }

    /// The shared part.
    pub(crate) fn shared(&self) -> usize {
        self.u_shared.saturating_add(self.v_shared)
    }

    /// One worker's part.
    pub(crate) fn each(&self) -> usize {
        [
            self.u_each,
            self.v_each,
            self.m_each,
            self.strip_each,
            self.pack_each,
        ]
        .iter()
        .fold(0usize, |a, &p| a.saturating_add(p))
    }

    /// The whole work area for `workers` workers, with the elements its start may lose to
    /// alignment ([`gemm::ALIGN`]).
    pub(crate) fn total(&self, workers: usize) -> usize {
        self.shared()
            .saturating_add(self.each().saturating_mul(workers))
            .saturating_add(gemm::ALIGN)
    }
}

/// Scratch (f32 elements) that [`conv3x3_winograd_spread`] needs for a `c_in → c_out`
/// convolution spread as `sp` (its shared part plus `sp.workers` worker parts). Saturating.
pub fn work_len_spread(sp: &Spread, c_out: usize, c_in: usize) -> usize {
    Layout::new(sp, c_out, c_in).total(sp.workers)
}

/// Scratch (f32 elements) that a Winograd convolution needs on an executor with `workers`
/// workers ([`conv3x3_winograd_exec`]): the [`spread`]'s shared part plus one part per
/// worker. Equals [`work_len`] for one worker. Saturating.
pub fn work_len_workers(
    c_out: usize,
    c_in: usize,
    out_h: usize,
    out_w: usize,
    workers: usize,
) -> usize {
    work_len_spread(&spread(c_out, c_in, out_h, out_w, workers), c_out, c_in)
}

/// Scratch (f32 elements) of one 3×3 convolution under `algo` on `workers` workers (0 counts
/// as 1): [`work_len_workers`] if it runs Winograd, else `workers ×` the direct path's
/// [`crate::conv::conv3x3_pack_len`]. Saturating.
pub fn conv3x3_scratch_len(
    algo: ConvAlgo,
    c_out: usize,
    c_in: usize,
    out_h: usize,
    out_w: usize,
    workers: usize,
) -> usize {
    if algo.uses_winograd(c_out, c_in, out_h, out_w) {
        work_len_workers(c_out, c_in, out_h, out_w, workers)
    } else {
        crate::conv::conv3x3_pack_len(c_out, c_in, out_h, out_w).saturating_mul(workers.max(1))
    }
}

/// A 3×3 convolution by the algorithm `algo` chooses for its size: the same contract as
/// [`crate::conv::conv3x3_exec`], with `work` at least [`conv3x3_scratch_len`]`(algo, …,
/// exec.workers())` elements. Both paths split their work between `exec`'s workers (the direct
/// path its output columns, Winograd blocks of tiles or channels: [`spread`]); the result does
/// not depend on the number of workers.
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
        conv3x3_winograd_exec(kernel, exec, w, b, input, padding, relu, out, work)
    } else {
        crate::conv::conv3x3_exec(kernel, exec, w, b, input, padding, relu, out, work)
    }
}

/// Checks a convolution's arguments as [`crate::conv::conv3x3_with`] does; returns the padding
/// (0 or 1). The output's length is checked where it becomes a [`Band`].
fn check(
    w: &TensorView<'_>,
    b: &TensorView<'_>,
    input: &ConvInput<'_>,
    padding: Padding,
    (out_c, out_h, out_w): (usize, usize, usize),
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
    if expect(input.h) != Some(out_h) || expect(input.w) != Some(out_w) {
        return bad("winograd conv3x3: output size does not match input size and padding");
    }
    let cin = input.channels();
    let k = cin.checked_mul(9).ok_or(Error::Overflow)?;
    if out_c.checked_mul(k) != Some(w.len()) {
        return bad("winograd conv3x3: weights are not [c_out, c_in, 3, 3]");
    }
    if b.len() < out_c {
        return bad("winograd conv3x3: bias shorter than c_out");
    }
    // The tile grid and the blocked buffers must be addressable.
    let tiles = out_h
        .div_ceil(TILE)
        .checked_mul(out_w.div_ceil(TILE))
        .ok_or(Error::Overflow)?;
    POS.checked_mul(cin.max(out_c))
        .and_then(|v| v.checked_mul(tiles.max(cin).max(out_c)))
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

/// [`conv3x3_winograd_with`] on the workers of `exec`, spread as [`spread`] says for
/// `exec.workers()`; `work`: at least [`work_len_workers`]`(…, exec.workers())` elements. The
/// result is bit-identical to [`conv3x3_winograd_with`]'s for any number of workers.
#[allow(clippy::too_many_arguments)]
pub fn conv3x3_winograd_exec(
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
    let sp = spread(out.c, input.channels(), out.h, out.w, exec.workers());
    conv3x3_winograd_spread(kernel, exec, sp, w, b, input, padding, relu, out, work)
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
    out: MapMut<'_>,
    work: &mut [f32],
) -> Result<(), Error> {
    let sp = Spread::sequential(bl, bl.rows >= out.c);
    let exec = crate::exec::Sequential;
    conv3x3_winograd_spread(kernel, &exec, sp, w, b, input, padding, relu, out, work)
}

/// The general form: a Winograd convolution on `exec` spread as `sp` says (any fields; tests
/// use it to run every split on small layers). `sp.bl` fields at least 1, `exec.workers() ≤
/// sp.workers`, `sp.u_once` with [`SplitBy::Tiles`] only if `sp.bl.rows ≥ out.c`; `work`: at
/// least the layout's shared part plus `exec.workers()` worker parts ([`work_len_workers`]
/// for [`spread`]'s choice). Errors as [`conv3x3_winograd_with`]; nothing is written then.
#[allow(clippy::too_many_arguments)]
pub fn conv3x3_winograd_spread(
    kernel: Kernel,
    exec: &dyn crate::exec::Executor,
    sp: Spread,
    w: &TensorView<'_>,
    b: &TensorView<'_>,
    input: &ConvInput<'_>,
    padding: Padding,
    relu: bool,
    out: MapMut<'_>,
    work: &mut [f32],
) -> Result<(), Error> {
    let pad = check(w, b, input, padding, (out.c, out.h, out.w))?;
    let out = Band::of_map(out, "winograd conv3x3 output")?;
    spread_band(kernel, exec, sp, w, b, input, pad, relu, out, None, work)
}

/// [`conv3x3_winograd_spread`] into a [`Band`] (sizes checked by the caller except the
/// convolution's own), with `U` transformed beforehand when `u_ready` is given ([`prepare_u`]:
/// then `sp.u_once`, and the work area holds no `U`).
#[allow(clippy::too_many_arguments)]
fn spread_band(
    kernel: Kernel,
    exec: &dyn crate::exec::Executor,
    sp: Spread,
    w: &TensorView<'_>,
    b: &TensorView<'_>,
    input: &ConvInput<'_>,
    pad: usize,
    relu: bool,
    out: Band<'_>,
    u_ready: Option<&[f32]>,
    work: &mut [f32],
) -> Result<(), Error> {
    let bad = |what| Err(Error::InvalidArgument { what });
    if sp.bl.rows == 0 || sp.bl.tiles == 0 {
        return bad("winograd conv3x3: empty blocking");
    }
    let workers = exec.workers();
    if workers == 0 || workers > sp.workers {
        return bad("winograd conv3x3: executor has more workers than the work area has room for");
    }
    let (cout, cin) = (out.c, input.channels());
    if sp.u_once && sp.by == SplitBy::Tiles && sp.bl.rows < cout {
        return bad("winograd conv3x3: U once with blocks of tiles needs every row in one block");
    }
    let total = tile_count(out.h, out.w);
    let sp = Spread {
        bl: Blocking {
            rows: sp.bl.rows.min(cout.max(1)),
            tiles: sp.bl.tiles.min(total.max(1)),
        },
        ..sp
    };
    let lay = Layout::new(&sp, cout, cin);
    let mut needed = lay.total(workers);
    if u_ready.is_some() {
        needed -= lay.u_shared;
    }
    if work.len() < needed {
        return Err(Error::BufferTooSmall {
            buffer: "winograd work",
            needed,
            got: work.len(),
        });
    }
    if total == 0 || cout == 0 {
        return Ok(());
    }
    let cv = engine::Conv {
        kernel,
        w,
        b,
        input,
        pad,
        relu,
    };
    engine::run(&cv, exec, &sp, out, u_ready, work)
}

/// Elements of a `U` for every output channel of a `c_in → c_out` convolution (any kernel of
/// this target): what [`prepare_u`] writes. Saturating.
pub(crate) fn u_len(c_out: usize, c_in: usize) -> usize {
    let bl = Blocking {
        rows: c_out,
        tiles: 1,
    };
    Layout::new(&Spread::sequential(bl, true), c_out, c_in).u_shared
}

/// Whether [`band`] can run a `c_in → c_out` convolution with its `U` transformed once
/// ([`prepare_u`]): all output channels in one block ([`blocking`]).
pub(crate) fn band_fits(c_out: usize, c_in: usize) -> bool {
    POS.saturating_mul(c_out).saturating_mul(c_in.max(1)) <= U_BUDGET
}

/// Transforms the filters `w` (`[c_out, c_in, 3, 3]`) once into `u` ([`u_len`] elements) for
/// several [`band`] calls, on the workers of `exec`.
pub(crate) fn prepare_u(
    kernel: Kernel,
    exec: &dyn crate::exec::Executor,
    w: &TensorView<'_>,
    c_out: usize,
    c_in: usize,
    u: &mut [f32],
) -> Result<(), Error> {
    engine::prepare_u(kernel, exec, w, (c_out, c_in), u)
}

/// Work area (f32 elements) of one [`band`] call writing `out_h × out_w` pixels: one worker's
/// part of [`work_len`] without `U`. Saturating.
pub(crate) fn band_work_len(c_out: usize, c_in: usize, out_h: usize, out_w: usize) -> usize {
    let lay = Layout::new(
        &Spread::sequential(blocking(c_out, c_in, out_h, out_w), true),
        c_out,
        c_in,
    );
    lay.total(1).saturating_sub(lay.u_shared)
}

/// A Winograd convolution of `input` into the band `out` on the calling thread, with the `U`
/// that [`prepare_u`] made from `w` (the same bits as [`conv3x3_winograd_with`] for the same
/// tiles). `band_fits(out.c, input.channels())` must hold; `work`: [`band_work_len`]. Errors
/// as [`conv3x3_winograd_with`].
#[allow(clippy::too_many_arguments)]
pub(crate) fn band(
    kernel: Kernel,
    u: &[f32],
    w: &TensorView<'_>,
    b: &TensorView<'_>,
    input: &ConvInput<'_>,
    padding: Padding,
    relu: bool,
    out: Band<'_>,
    work: &mut [f32],
) -> Result<(), Error> {
    let pad = check(w, b, input, padding, (out.c, out.h, out.w))?;
    let cin = input.channels();
    if !band_fits(out.c, cin) {
        return Err(Error::InvalidArgument {
            what: "internal: winograd band needs every output channel in one block",
        });
    }
    let sp = Spread::sequential(blocking(out.c, cin, out.h, out.w), true);
    let exec = crate::exec::Sequential;
    spread_band(
        kernel,
        &exec,
        sp,
        w,
        b,
        input,
        pad,
        relu,
        out,
        Some(u),
        work,
    )
}
