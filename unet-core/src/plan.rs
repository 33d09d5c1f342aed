//! Planning a tile: validate its size, compute every feature map's size, and lay all of them out
//! in one scratch buffer by liveness, so the exact scratch length is known before anything runs.
//!
//! The schedule (step numbers in brackets) for `L` levels:
//! encoder level `i`: `E1_i = conv1(P_{i−1} or input)`, `S_i = conv2(E1_i)`, `P_i = pool(S_i)`
//! (`i < L−1`); decoder level `i = L−2 … 0`: `U_i = up(D2_{i+1} or S_{L−1})`,
//! `D1_i = conv1([crop(S_i), U_i])`, `D2_i = conv2(D1_i)`; then the head reads `D2_0` (or `S_0`
//! when `L = 1`) row by row through a `K × out_w` row buffer into the caller's output.
//!
//! Each tensor lives from the step that writes it to the last step that reads it (inclusive).
//! Offsets are assigned greedily, largest tensor first, at the lowest address not used by a
//! tensor whose lifetime overlaps. Skip tensors therefore stay alive across the bottom of the
//! network while everything else is recycled. The GEMM packing buffer follows the arena.
//!
//! A level run in bands of rows (`fuse.rs`) has no `E1_i` (encoder) or `U_i`, `D1_i`
//! (decoder), nor `D2_0` at the top (the head reads its rows from a ring): those live in the
//! workers' rings, in the packing region. Its outputs are alive from its first step and its
//! inputs until its last, as the bands write and read them throughout the level.

use crate::arch::{Config, MAX_LEVELS};
use crate::conv;
use crate::error::Error;
use crate::fuse::{Bands, DecDims, EncDims};
use crate::gemm::Kernel;
use crate::geometry::{Geometry, Sizes};
use crate::winograd::{self, ConvAlgo};

/// Kinds of planned tensors (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    E1 = 0,
    S = 1,
    P = 2,
    U = 3,
    D1 = 4,
    D2 = 5,
}

const KINDS: usize = 6;
const HEAD_ROW: usize = KINDS * MAX_LEVELS;
const SLOTS: usize = HEAD_ROW + 1;

/// A scratch region: `start..start + len` in f32 elements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Region {
    pub start: usize,
    pub len: usize,
}

impl Region {
    pub fn range(&self) -> core::ops::Range<usize> {
        self.start..self.start + self.len
    }
}

/// A validated tile size with its scratch layout. Made by [`crate::Model::plan`]; only valid for
/// models with the same [`Config`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    pub(crate) config: Config,
    pub(crate) sh: Sizes,
    pub(crate) sw: Sizes,
    pub(crate) slots: [Region; SLOTS],
    pub(crate) pack: Region,
    /// How the 3×3 convolutions run (the `pack` region covers the chosen algorithm's scratch).
    pub(crate) conv_algo: ConvAlgo,
    /// Lifetime `(first, last)` step of each slot (inclusive); `(1, 0)` for unused slots.
    life: [(usize, usize); SLOTS],
    arena_len: usize,
    lower_bound: usize,
    /// Workers the pack region has room for; `pack.len = max(workers · pack_each + banded levels' shared part, Winograd work)`.
    workers: usize,
    pack_each: usize,
    /// GEMM micro-kernel of the forward pass.
    kernel: Kernel,
    /// Encoder / decoder levels that run in bands of rows ([`crate::fuse`]; `rows == 0`: layer
    /// by layer). Their areas live in the `pack` region.
    pub(crate) enc_bands: [Bands; MAX_LEVELS],
    pub(crate) dec_bands: [Bands; MAX_LEVELS],
}

#[derive(Clone, Copy, Default)]
struct Item {
    slot: usize,
    len: usize,
    first: usize,
    last: usize,
}

fn mul3(a: usize, b: usize, c: usize) -> Result<usize, Error> {
    a.checked_mul(b)
        .and_then(|v| v.checked_mul(c))
        .ok_or(Error::Overflow)
}

impl Plan {
    /// Plans an `h × w` tile (input pixels) for a network of `config`, run by one worker, with
    /// the 3×3 convolutions chosen by [`ConvAlgo::Auto`].
    pub fn new(config: &Config, h: usize, w: usize) -> Result<Plan, Error> {
        Plan::with_options(config, h, w, ConvAlgo::Auto, 1)
    }

    /// Plans an `h × w` tile for up to `workers` workers ([`crate::Model::forward_with`]): the
    /// scratch holds one GEMM pack buffer per worker after the feature maps, so
    /// [`Plan::scratch_len`] grows by [`Plan::pack_len_per_worker`] for each worker past the
    /// first. `workers = 0` is an error.
    pub fn with_workers(
        config: &Config,
        h: usize,
        w: usize,
        workers: usize,
    ) -> Result<Plan, Error> {
        Plan::with_options(config, h, w, ConvAlgo::Auto, workers)
    }

    /// [`Plan::new`] with the 3×3 convolutions run as `algo` says (e.g. forced direct or
    /// Winograd, for tests and benchmarks). The scratch length covers that choice.
    pub fn with_conv_algo(
        config: &Config,
        h: usize,
        w: usize,
        algo: ConvAlgo,
    ) -> Result<Plan, Error> {
        Plan::with_options(config, h, w, algo, 1)
    }

    /// [`Plan::with_options`] with the choice of running levels in bands of rows (`fusion`,
    /// what every other constructor does where it helps: levels of at most 32 channels, valid
    /// padding) or every level layer by layer (`false`; for tests and benchmarks: both give
    /// the same bits).
    pub fn with_fusion(
        config: &Config,
        h: usize,
        w: usize,
        algo: ConvAlgo,
        workers: usize,
        fusion: bool,
    ) -> Result<Plan, Error> {
        Plan::build(config, h, w, algo, workers, fusion)
    }

    /// Both choices at once: `algo` for the 3×3 convolutions and room for `workers` workers.
    /// Direct-path layers split their output columns between the workers; Winograd layers
    /// split blocks of tiles or of channels ([`crate::winograd::spread`]) and use the pack
    /// region as their work area (a shared part and one part per worker, within the same
    /// budget as one worker's: the paper's tile stays within 1.2× of the lower bound for 1 and
    /// 2 workers).
    pub fn with_options(
        config: &Config,
        h: usize,
        w: usize,
        algo: ConvAlgo,
        workers: usize,
    ) -> Result<Plan, Error> {
        Plan::build(config, h, w, algo, workers, true)
    }

    fn build(
        config: &Config,
        h: usize,
        w: usize,
        algo: ConvAlgo,
        workers: usize,
        fusion: bool,
    ) -> Result<Plan, Error> {
        if workers == 0 {
            return Err(Error::InvalidArgument {
                what: "workers must be at least 1",
            });
        }
        config.validate()?;
        let g = Geometry::new(config.levels, config.padding)?;
        let sh = g.sizes(h).map_err(|what| Error::TileSize { h, w, what })?;
        let sw = g.sizes(w).map_err(|what| Error::TileSize { h, w, what })?;
        let l = config.levels;
        let ch = |i: usize| config.channels(i).ok_or(Error::Overflow);

        // Levels that run in bands of rows (their area: the largest for all the workers).
        let mut enc_bands = [Bands::default(); MAX_LEVELS];
        let mut dec_bands = [Bands::default(); MAX_LEVELS];
        // The largest shared part and the largest worker part of any banded level's area.
        let (mut band_shared, mut band_each) = (0usize, 0usize);
        if fusion {
            for (i, slot) in enc_bands.iter_mut().enumerate().take(l) {
                if let Some(b) = EncDims::of(config, &sh, &sw, i)?.bands(algo, config.padding) {
                    *slot = b;
                    band_shared = band_shared.max(b.shared());
                    band_each = band_each.max(b.each());
                }
            }
            for (i, slot) in dec_bands.iter_mut().enumerate().take(l.saturating_sub(1)) {
                if let Some(b) = DecDims::of(config, &sh, &sw, i)?.bands(algo, config.padding) {
                    *slot = b;
                    band_shared = band_shared.max(b.shared());
                    band_each = band_each.max(b.each());
                }
            }
        }
        let enc_fused = |i: usize| i < l && enc_bands[i].rows > 0;
        let dec_fused = |i: usize| i + 1 < l && dec_bands[i].rows > 0;

        // Tensors with their lifetimes, in schedule order.
        let mut items = [Item::default(); SLOTS];
        let mut n = 0;
        let mut push = |kind: Kind, level: usize, len: usize, first: usize, last: usize| {
            items[n] = Item {
                slot: kind as usize * MAX_LEVELS + level,
                len,
                first,
                last,
            };
            n += 1;
        };
        // Step numbers: encoder level i uses 3i, 3i+1, 3i+2; decoder level i uses
        // dec(i) = 3L + 3(L−2−i) + {0, 1, 2}; the head is 3L + 3(L−1).
        let dec = |i: usize| 3 * l + 3 * (l - 2 - i);
        let head = 3 * l + 3 * (l - 1);
        // `pack`: the largest direct-path GEMM pack buffer (one per worker); `work`: the largest
        // Winograd work area for all the workers (shared part plus one part each).
        let mut pack = 0usize;
        let mut work = 0usize;
        let mut conv3 = |co, ci, oh, ow| {
            let direct = winograd::conv3x3_scratch_len(ConvAlgo::Direct, co, ci, oh, ow, 1);
            if algo.uses_winograd(co, ci, oh, ow) {
                work = work.max(winograd::conv3x3_scratch_len(algo, co, ci, oh, ow, workers));
                0
            } else {
                direct
            }
        };
        for i in 0..l {
            let c = ch(i)?;
            let cin = if i == 0 {
                config.in_channels
            } else {
                ch(i - 1)?
            };
            // A level in bands writes its outputs from its first step and reads its inputs
            // until its last.
            let fused = enc_fused(i);
            if !fused {
                push(
                    Kind::E1,
                    i,
                    mul3(c, sh.enc_mid[i], sw.enc_mid[i])?,
                    3 * i,
                    3 * i + 1,
                );
                pack = pack
                    .max(conv3(c, cin, sh.enc_mid[i], sw.enc_mid[i]))
                    .max(conv3(c, c, sh.enc_out[i], sw.enc_out[i]));
            }
            let s_last = if l == 1 {
                head
            } else if i + 1 < l {
                dec(i) + if dec_fused(i) { 2 } else { 1 }
            } else {
                dec(l - 2) + if dec_fused(l - 2) { 2 } else { 0 }
            };
            push(
                Kind::S,
                i,
                mul3(c, sh.enc_out[i], sw.enc_out[i])?,
                if fused { 3 * i } else { 3 * i + 1 },
                s_last,
            );
            if i + 1 < l {
                push(
                    Kind::P,
                    i,
                    mul3(c, sh.enc_out[i] / 2, sw.enc_out[i] / 2)?,
                    if fused { 3 * i } else { 3 * i + 2 },
                    if enc_fused(i + 1) {
                        3 * i + 5
                    } else {
                        3 * i + 3
                    },
                );
            }
        }
        for i in (0..l.saturating_sub(1)).rev() {
            let c = ch(i)?;
            let d = dec(i);
            let fused = dec_fused(i);
            if !fused {
                push(Kind::U, i, mul3(c, sh.up[i], sw.up[i])?, d, d + 1);
                push(
                    Kind::D1,
                    i,
                    mul3(c, sh.dec_mid[i], sw.dec_mid[i])?,
                    d + 1,
                    d + 2,
                );
            }
            let last = if i == 0 {
                head
            } else {
                dec(i - 1) + if dec_fused(i - 1) { 2 } else { 0 }
            };
            // The top level in bands hands its rows to the head: no whole `D2_0`.
            if !(fused && i == 0) {
                push(
                    Kind::D2,
                    i,
                    mul3(c, sh.dec_out[i], sw.dec_out[i])?,
                    if fused { d } else { d + 2 },
                    last,
                );
            }
            if fused {
                continue;
            }
            let below_h = if i + 2 < l {
                sh.dec_out[i + 1]
            } else {
                sh.enc_out[l - 1]
            };
            let below_w = if i + 2 < l {
                sw.dec_out[i + 1]
            } else {
                sw.enc_out[l - 1]
            };
            pack = pack
                .max(conv::up2x2_pack_len(c, ch(i + 1)?, below_h, below_w))
                .max(conv3(c, 2 * c, sh.dec_mid[i], sw.dec_mid[i]))
                .max(conv3(c, c, sh.dec_out[i], sw.dec_out[i]));
        }
        // The head's row buffers: one output row of every class per worker.
        let row = config
            .num_classes
            .checked_mul(sw.output)
            .and_then(|r| r.checked_mul(workers))
            .ok_or(Error::Overflow)?;
        items[n] = Item {
            slot: HEAD_ROW,
            len: row,
            first: if dec_fused(0) { dec(0) } else { head },
            last: head,
        };
        n += 1;

        let items = &mut items[..n];
        let mut slots = [Region::default(); SLOTS];
        let mut life = [(1usize, 0usize); SLOTS];
        for it in items.iter() {
            life[it.slot] = (it.first, it.last);
        }
        let mut arena = 0usize;
        // Largest first; ties keep schedule order (insertion sort is stable and n ≤ 49).
        for a in 1..items.len() {
            let mut b = a;
            while b > 0 && items[b - 1].len < items[b].len {
                items.swap(b - 1, b);
                b -= 1;
            }
        }
        for a in 0..items.len() {
            let it = items[a];
            let overlaps = |o: &Item| o.first <= it.last && it.first <= o.last;
            // Candidate offsets: 0 and the end of every placed tensor alive at the same time.
            let mut best = usize::MAX;
            let mut try_at = |start: usize| -> Result<(), Error> {
                let end = start.checked_add(it.len).ok_or(Error::Overflow)?;
                let free = items[..a].iter().filter(|o| overlaps(o)).all(|o| {
                    let r = slots[o.slot];
                    end <= r.start || r.start + r.len <= start
                });
                if free && start < best {
                    best = start;
                }
                Ok(())
            };
            try_at(0)?;
            for o in items[..a].iter().filter(|o| overlaps(o)) {
                let r = slots[o.slot];
                try_at(r.start + r.len)?;
            }
            slots[it.slot] = Region {
                start: best,
                len: it.len,
            };
            arena = arena.max(best + it.len);
        }
        // Lower bound: the most f32 that are alive at one step.
        let mut lower_bound = 0usize;
        for t in 0..=head {
            let live: usize = items
                .iter()
                .filter(|o| o.first <= t && t <= o.last)
                .map(|o| o.len)
                .sum();
            lower_bound = lower_bound.max(live);
        }
        // Each worker's part: a GEMM pack buffer or a banded level's rings and work area.
        let pack_each = pack.max(band_each);
        let pack = pack_each
            .checked_mul(workers)
            .and_then(|p| p.checked_add(band_shared))
            .ok_or(Error::Overflow)?
            .max(work);
        let pack_region = Region {
            start: arena,
            len: pack,
        };
        arena.checked_add(pack).ok_or(Error::Overflow)?;
        Ok(Plan {
            config: *config,
            sh,
            sw,
            slots,
            pack: pack_region,
            conv_algo: algo,
            life,
            arena_len: arena,
            lower_bound,
            workers,
            pack_each,
            kernel: Kernel::best(),
            enc_bands,
            dec_bands,
        })
    }

    /// How many encoder and decoder levels run in bands of rows (`(encoder, decoder)`; see
    /// [`Plan::with_fusion`]).
    pub fn banded_levels(&self) -> (usize, usize) {
        let count = |b: &[Bands; MAX_LEVELS]| b.iter().filter(|b| b.rows > 0).count();
        (count(&self.enc_bands), count(&self.dec_bands))
    }

    /// How this plan runs the 3×3 convolutions.
    pub fn conv_algo(&self) -> ConvAlgo {
        self.conv_algo
    }

    /// The GEMM micro-kernel [`crate::Model::forward`] uses with this plan: [`Kernel::best`]
    /// unless changed by [`Plan::with_kernel`].
    pub fn kernel(&self) -> Kernel {
        self.kernel
    }

    /// This plan with the forward pass forced onto `kernel` (for benchmarks and tests that
    /// compare kernels). Sizes are unchanged: pack buffers cover every kernel of the target
    /// ([`crate::gemm::pack_len`]), and a [`Kernel`] value exists only for one the CPU runs.
    pub fn with_kernel(mut self, kernel: Kernel) -> Plan {
        self.kernel = kernel;
        self
    }

    /// Input height and width.
    pub fn input_size(&self) -> (usize, usize) {
        (self.sh.input, self.sw.input)
    }

    /// Output height and width.
    pub fn output_size(&self) -> (usize, usize) {
        (self.sh.output, self.sw.output)
    }

    /// Elements of the input: `in_channels × h × w`.
    pub fn input_len(&self) -> usize {
        self.config.in_channels * self.sh.input * self.sw.input
    }

    /// Elements of a logits or probabilities output: `num_classes × out_h × out_w`.
    pub fn output_len(&self) -> usize {
        self.config.num_classes * self.sh.output * self.sw.output
    }

    /// Elements of a label-map output: `out_h × out_w`.
    pub fn label_len(&self) -> usize {
        self.sh.output * self.sw.output
    }

    /// Workers this plan has scratch for (1 from [`Plan::new`]).
    pub fn workers(&self) -> usize {
        self.workers
    }

    /// Scratch elements of one worker: the largest GEMM pack buffer any layer needs, or a
    /// banded level's rings and work area if larger ([`Plan::with_fusion`]); the scratch ends
    /// with [`Plan::workers`] of them (after the banded levels' shared filter transforms).
    pub fn pack_len_per_worker(&self) -> usize {
        self.pack_each
    }

    /// Exact scratch length (f32 elements) that [`crate::Model::forward`] needs (and
    /// [`crate::Model::forward_with`] with up to [`Plan::workers`] workers): the feature-map
    /// arena plus `workers ·` [`Plan::pack_len_per_worker`] and the banded levels' shared part,
    /// or the largest Winograd work area if that is larger.
    pub fn scratch_len(&self) -> usize {
        self.arena_len + self.pack.len
    }

    /// Scratch length in bytes.
    pub fn scratch_bytes(&self) -> usize {
        self.scratch_len().saturating_mul(4)
    }

    /// The smallest arena any layout of this schedule could use: the largest total of tensors
    /// alive at one step (f32 elements, packing buffer excluded).
    pub fn scratch_lower_bound(&self) -> usize {
        self.lower_bound
    }

    /// Floating-point operations of one forward pass (2 per multiply-add) of the convolutions,
    /// transposed convolutions and head, the usual GFLOP count of a network (300.9 G for the
    /// paper's 572² tile with 64 base channels and 2 classes). `None` on overflow.
    pub fn flops(&self) -> Option<u64> {
        let c = &self.config;
        let (sh, sw) = (&self.sh, &self.sw);
        let ch = |i: usize| c.channels(i).map(|v| v as u64);
        let px = |h: usize, w: usize| (h as u64).checked_mul(w as u64);
        let mut total = 0u64;
        let mut add = |cout: u64, cin: u64, taps: u64, pixels: u64| -> Option<()> {
            total = total.checked_add(
                2u64.checked_mul(cout)?
                    .checked_mul(cin)?
                    .checked_mul(taps)?
                    .checked_mul(pixels)?,
            )?;
            Some(())
        };
        for i in 0..c.levels {
            let cin = if i == 0 {
                c.in_channels as u64
            } else {
                ch(i - 1)?
            };
            add(ch(i)?, cin, 9, px(sh.enc_mid[i], sw.enc_mid[i])?)?;
            add(ch(i)?, ch(i)?, 9, px(sh.enc_out[i], sw.enc_out[i])?)?;
        }
        for i in 0..c.levels - 1 {
            add(ch(i)?, ch(i + 1)?, 1, px(sh.up[i], sw.up[i])?)?;
            add(ch(i)?, 2 * ch(i)?, 9, px(sh.dec_mid[i], sw.dec_mid[i])?)?;
            add(ch(i)?, ch(i)?, 9, px(sh.dec_out[i], sw.dec_out[i])?)?;
        }
        add(c.num_classes as u64, ch(0)?, 1, px(sh.output, sw.output)?)?;
        Some(total)
    }

    /// Sizes of every feature map along the height.
    pub fn sizes_h(&self) -> &Sizes {
        &self.sh
    }

    /// Sizes of every feature map along the width.
    pub fn sizes_w(&self) -> &Sizes {
        &self.sw
    }

    pub(crate) fn slot(&self, kind: Kind, level: usize) -> Region {
        self.slots[kind as usize * MAX_LEVELS + level]
    }

    pub(crate) fn head_row(&self) -> Region {
        self.slots[HEAD_ROW]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::Padding;

    fn cfg(levels: usize, base: usize, padding: Padding) -> Config {
        Config {
            in_channels: 1,
            num_classes: 2,
            base_channels: base,
            levels,
            padding,
        }
    }

    /// Regions of tensors alive at the same step never share an address.
    fn assert_no_live_overlap(p: &Plan) {
        for a in 0..SLOTS {
            for b in a + 1..SLOTS {
                let (la, lb) = (p.life[a], p.life[b]);
                if la.0 > la.1 || lb.0 > lb.1 || la.1 < lb.0 || lb.1 < la.0 {
                    continue;
                }
                let (ra, rb) = (p.slots[a], p.slots[b]);
                assert!(
                    ra.start + ra.len <= rb.start || rb.start + rb.len <= ra.start,
                    "slots {a} and {b} overlap while both alive"
                );
                assert!(ra.start + ra.len <= p.pack.start && rb.start + rb.len <= p.pack.start);
            }
        }
    }

    #[test]
    fn layouts_are_sound_for_every_depth() {
        for levels in 1..=6 {
            for padding in [Padding::Valid, Padding::Same] {
                let c = cfg(levels, 3, padding);
                let g = Geometry::new(levels, padding).unwrap();
                let n = g.min_input();
                for (h, w) in [(n, n), (n + g.step(), n), (n, n + 3 * g.step())] {
                    let p = Plan::new(&c, h, w).unwrap();
                    assert_no_live_overlap(&p);
                    assert!(p.scratch_len() >= p.scratch_lower_bound());
                }
            }
        }
    }

    #[test]
    fn paper_tile_layout_is_near_the_lower_bound() {
        let c = Config {
            in_channels: 1,
            num_classes: 2,
            base_channels: 64,
            levels: 5,
            padding: Padding::Valid,
        };
        let p = Plan::new(&c, 572, 572).unwrap();
        assert_no_live_overlap(&p);
        assert_eq!(p.output_size(), (388, 388));
        let arena = p.scratch_len() - p.pack.len;
        // The greedy layout must stay within 1.2x of the liveness lower bound.
        assert!(
            arena * 5 <= p.scratch_lower_bound() * 6,
            "{arena} vs {}",
            p.scratch_lower_bound()
        );
    }

    #[test]
    fn paper_tile_scratch_with_winograd_stays_within_1_2x() {
        let c = Config {
            in_channels: 1,
            num_classes: 2,
            base_channels: 64,
            levels: 5,
            padding: Padding::Valid,
        };
        for algo in [ConvAlgo::Auto, ConvAlgo::Winograd, ConvAlgo::Direct] {
            let p = Plan::with_conv_algo(&c, 572, 572, algo).unwrap();
            assert_no_live_overlap(&p);
            assert_eq!(p.conv_algo(), algo);
            // Everything (arena, GEMM packing, Winograd work) within 1.2x of the lower bound.
            assert!(
                p.scratch_len() * 5 <= p.scratch_lower_bound() * 6,
                "{algo:?}: {} vs {}",
                p.scratch_len(),
                p.scratch_lower_bound()
            );
        }
    }

    #[test]
    fn refuses_illegal_sizes() {
        let c = cfg(5, 64, Padding::Valid);
        assert!(matches!(
            Plan::new(&c, 571, 572),
            Err(Error::TileSize { .. })
        ));
        assert!(matches!(Plan::new(&c, 0, 572), Err(Error::TileSize { .. })));
        assert!(Plan::new(&c, usize::MAX, 572).is_err());
        // Legal for a one-level 'same' network, but the tensors cannot be sized: Overflow.
        let c = cfg(1, 4, Padding::Same);
        assert_eq!(Plan::new(&c, usize::MAX, usize::MAX), Err(Error::Overflow));
        assert_eq!(Plan::new(&c, 1 << 40, 1 << 40), Err(Error::Overflow));
    }
}
