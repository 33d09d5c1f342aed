//! Levels of the network run in bands of rows: for the levels with few channels and large maps,
//! whose layers spend more time moving feature maps through the caches than computing.
//!
//! A **fused encoder level** computes its output `S` (the second convolution's) a band of
//! [`Bands::rows`] rows at a time: first the rows of the first convolution's output that the band
//! needs, into a ring of `rows + 4` rows (that map is never stored whole), then the band of `S`,
//! then the band's pooled rows of `P`, read back from the rows just written (still in cache).
//! A **fused decoder level** keeps the up-convolution's output and the first convolution's in
//! rings (`rows + 6` and `rows + 4` rows) and writes its second convolution's output `D2` a band
//! at a time into the map the next level reads, or, at the top, into a ring of `rows` rows that
//! the head turns into output rows at once (so the top `D2` is never stored whole either).
//!
//! **Same bits as layer by layer.** Every convolution call starts at an output row that is a
//! multiple of the Winograd tile (4) of its own output map, covers whole tiles except at the
//! map's bottom edge, and there its input window ends where the whole map's does; so each
//! Winograd tile is computed from the same inputs by the same arithmetic as in the whole-layer
//! call. The direct path and the up-convolution compute every pixel the same way wherever a
//! call starts (their depth order is fixed). A fused pass is therefore bit-identical to an
//! unfused one (`tests/fusion.rs`), for any number of workers.
//!
//! **Workers.** A level's bands are cut into runs, one per worker; each worker runs the whole
//! pipeline on its run with its own rings and work area (recomputing the few ring rows its
//! neighbour also computes), so no worker waits for another inside a level. The filter
//! transforms (`U`) of the level's Winograd convolutions are computed once, before, into a part
//! of the area all workers read.
//!
//! Only valid padding is fused ('same' padding would need the rings' edge rows as zeros).

use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::arch::{Config, Padding};
use crate::conv::{self, Band, ConvInput, Map, Part};
use crate::error::Error;
use crate::exec::{Executor, Sequential, Shared};
use crate::gemm::{self, Kernel};
use crate::geometry::Sizes;
use crate::tensor::TensorView;
use crate::winograd::{self, ConvAlgo, TILE};

/// Levels with at most this many channels run in bands (base-16 networks: the top two levels;
/// the paper's 64-channel top level runs layer by layer).
pub(crate) const MAX_CHANNELS: usize = 32;
/// Target size (f32 elements, 1 MiB) of one worker's rings: about half of a core's L2.
const RING_BUDGET: usize = 1 << 18;
/// Band rows: at least, at most (multiples of [`TILE`]). Bands of 32 rows were faster than
/// bands of 8 that keep the rings in L2 (base-16 tile, 1 and 2 threads): each call's fixed
/// costs (blocking, packing the weights, partial micro-panels) matter more there than the
/// rings' cache misses.
const MIN_ROWS: usize = 32;
const MAX_ROWS: usize = 64;

fn up_to_tile(x: usize) -> usize {
    x.div_ceil(TILE) * TILE
}

fn internal(what: &'static str) -> Error {
    Error::InvalidArgument { what }
}

/// One 3×3 convolution of a fused level: `c_in → c_out` channels, a whole output of `h × w`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub(crate) struct ConvDims {
    pub c_out: usize,
    pub c_in: usize,
    pub h: usize,
    pub w: usize,
}

impl ConvDims {
    /// Whether it runs Winograd (decided on the whole output, as layer by layer).
    fn wino(&self, algo: ConvAlgo) -> bool {
        algo.uses_winograd(self.c_out, self.c_in, self.h, self.w)
    }
    /// Whether a Winograd band can use a `U` transformed once.
    fn fits(&self, algo: ConvAlgo) -> bool {
        !self.wino(algo) || winograd::band_fits(self.c_out, self.c_in)
    }
    /// Elements of its transformed filters (0 on the direct path).
    fn u_len(&self, algo: ConvAlgo) -> usize {
        if self.wino(algo) {
            winograd::u_len(self.c_out, self.c_in)
        } else {
            0
        }
    }
    /// Work area of one call writing `rows` rows.
    fn work(&self, algo: ConvAlgo, rows: usize) -> usize {
        if self.wino(algo) {
            winograd::band_work_len(self.c_out, self.c_in, rows, self.w)
        } else {
            conv::conv3x3_pack_len(self.c_out, self.c_in, rows, self.w)
        }
    }
}

/// A fused level's band height and the layout of its area: the transformed filters of its two
/// convolutions (shared), then per worker its rings and a work area. All zero: not fused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub(crate) struct Bands {
    /// Rows of the level's output per band (a multiple of [`TILE`]); 0 = not fused.
    pub rows: usize,
    /// `U` of the first and second convolution.
    u: [usize; 2],
    /// Each worker's rings (whole cache lines each).
    rings: [usize; 3],
    /// Each worker's work area.
    work: usize,
}

impl Bands {
    /// The part all workers share: the two convolutions' transformed filters.
    pub(crate) fn shared(&self) -> usize {
        self.u[0].saturating_add(self.u[1])
    }

    /// One worker's part: its rings and work area.
    pub(crate) fn each(&self) -> usize {
        self.rings
            .iter()
            .fold(self.work, |a, &r| a.saturating_add(r))
    }

    /// The whole area for `workers` workers (saturating).
    pub(crate) fn len(&self, workers: usize) -> usize {
        self.shared()
            .saturating_add(self.each().saturating_mul(workers))
    }

    /// Rows per band for rings that hold `fixed + rows · per_row` elements: the most that fit
    /// [`RING_BUDGET`], within [`MIN_ROWS`]..=[`MAX_ROWS`].
    fn choose_rows(fixed: usize, per_row: usize) -> usize {
        let room = RING_BUDGET.saturating_sub(fixed) / per_row.max(1);
        (room / TILE * TILE).clamp(MIN_ROWS, MAX_ROWS)
    }

    /// Ring lengths rounded to whole cache lines.
    fn line(n: usize) -> usize {
        n.saturating_add(gemm::ALIGN - 1) / gemm::ALIGN * gemm::ALIGN
    }
}

/// An encoder level: `conv1` (from the level's input) then `conv2` (its output `S`), pooled
/// into `P` when `pool`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub(crate) struct EncDims {
    pub conv1: ConvDims,
    pub conv2: ConvDims,
    pub pool: bool,
}

impl EncDims {
    /// How this level runs in bands under `algo`, or `None` when it runs layer by layer.
    pub(crate) fn bands(&self, algo: ConvAlgo, padding: Padding) -> Option<Bands> {
        let c = self.conv2.c_out;
        if padding != Padding::Valid
            || c > MAX_CHANNELS
            || !self.conv1.fits(algo)
            || !self.conv2.fits(algo)
        {
            return None;
        }
        let wa = self.conv1.w;
        let per_row = c.saturating_mul(wa);
        let rows = Bands::choose_rows(per_row.saturating_mul(4), per_row);
        Some(Bands {
            rows,
            u: [self.conv1.u_len(algo), self.conv2.u_len(algo)],
            rings: [Bands::line(per_row.saturating_mul(rows + 4)), 0, 0],
            work: self
                .conv1
                .work(algo, rows + 4)
                .max(self.conv2.work(algo, rows)),
        })
    }
}

/// A decoder level: the up-convolution (`c_below → c` channels, output `up_h × up_w` from a
/// `c_below × up_h/2 × up_w/2` map), `conv1` (from the cropped skip and the up-sampled map),
/// `conv2` (output `D2`); with `head`, the head reads `D2` band by band.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub(crate) struct DecDims {
    pub c_below: usize,
    pub up_h: usize,
    pub up_w: usize,
    pub conv1: ConvDims,
    pub conv2: ConvDims,
    pub head: bool,
}

impl DecDims {
    /// How this level runs in bands under `algo`, or `None` when it runs layer by layer.
    pub(crate) fn bands(&self, algo: ConvAlgo, padding: Padding) -> Option<Bands> {
        let c = self.conv2.c_out;
        if padding != Padding::Valid
            || c > MAX_CHANNELS
            || !self.conv1.fits(algo)
            || !self.conv2.fits(algo)
        {
            return None;
        }
        let (wu, w1, w2) = (self.up_w, self.conv1.w, self.conv2.w);
        let head = if self.head { w2 } else { 0 };
        let per_row = c.saturating_mul(wu.saturating_add(w1).saturating_add(head));
        let fixed = c.saturating_mul(wu.saturating_mul(6).saturating_add(w1.saturating_mul(4)));
        let rows = Bands::choose_rows(fixed, per_row);
        let up = conv::up2x2_pack_len(c, self.c_below, (rows + 6) / 2, wu / 2);
        Some(Bands {
            rows,
            u: [self.conv1.u_len(algo), self.conv2.u_len(algo)],
            rings: [
                Bands::line(c.saturating_mul(wu).saturating_mul(rows + 6)),
                Bands::line(c.saturating_mul(w1).saturating_mul(rows + 4)),
                Bands::line(c.saturating_mul(head).saturating_mul(rows)),
            ],
            work: up
                .max(self.conv1.work(algo, rows + 4))
                .max(self.conv2.work(algo, rows)),
        })
    }
}

impl EncDims {
    /// Encoder level `i` of a network of `cfg` on a tile of sizes `sh` × `sw`.
    pub(crate) fn of(cfg: &Config, sh: &Sizes, sw: &Sizes, i: usize) -> Result<EncDims, Error> {
        let ch = |i: usize| cfg.channels(i).ok_or(Error::Overflow);
        let c = ch(i)?;
        let cin = if i == 0 { cfg.in_channels } else { ch(i - 1)? };
        Ok(EncDims {
            conv1: ConvDims {
                c_out: c,
                c_in: cin,
                h: sh.enc_mid[i],
                w: sw.enc_mid[i],
            },
            conv2: ConvDims {
                c_out: c,
                c_in: c,
                h: sh.enc_out[i],
                w: sw.enc_out[i],
            },
            pool: i + 1 < cfg.levels,
        })
    }
}

impl DecDims {
    /// Decoder level `i` (`i + 1 < levels`) of a network of `cfg` on a tile of sizes `sh` ×
    /// `sw`; the top level (`i = 0`) feeds the head.
    pub(crate) fn of(cfg: &Config, sh: &Sizes, sw: &Sizes, i: usize) -> Result<DecDims, Error> {
        let c = cfg.channels(i).ok_or(Error::Overflow)?;
        Ok(DecDims {
            c_below: cfg.channels(i + 1).ok_or(Error::Overflow)?,
            up_h: sh.up[i],
            up_w: sw.up[i],
            conv1: ConvDims {
                c_out: c,
                c_in: c.checked_mul(2).ok_or(Error::Overflow)?,
                h: sh.dec_mid[i],
                w: sw.dec_mid[i],
            },
            conv2: ConvDims {
                c_out: c,
                c_in: c,
                h: sh.dec_out[i],
                w: sw.dec_out[i],
            },
            head: i == 0,
        })
    }
}

/// Rows `base..front` of a `c × ? × w` map, held in `c` planes of `cap` rows (`data`): the
/// rows a band still needs, slid to the top when new ones would not fit.
struct Ring<'a> {
    data: &'a mut [f32],
    c: usize,
    w: usize,
    cap: usize,
    base: usize,
    front: usize,
}

impl<'a> Ring<'a> {
    /// An empty ring whose first row will be `start`.
    fn new(
        data: &'a mut [f32],
        c: usize,
        w: usize,
        cap: usize,
        start: usize,
    ) -> Result<Self, Error> {
        let need = c.saturating_mul(cap).saturating_mul(w);
        let data = data
            .get_mut(..need)
            .ok_or(internal("fuse: ring area too short"))?;
        Ok(Ring {
            data,
            c,
            w,
            cap,
            base: start,
            front: start,
        })
    }

    /// Makes room for rows up to `upto`, keeping rows `keep..front` (`base ≤ keep ≤ front`):
    /// moves them to the top when `upto` would pass the end.
    fn room(&mut self, keep: usize, upto: usize) -> Result<(), Error> {
        if keep < self.base || keep > self.front || upto < keep || upto - keep > self.cap {
            return Err(internal("fuse: ring rows out of order"));
        }
        if upto - self.base <= self.cap {
            return Ok(());
        }
        let (w, cap) = (self.w, self.cap);
        let (from, n) = ((keep - self.base) * w, (self.front - keep) * w);
        for plane in self.data.chunks_exact_mut(cap * w) {
            plane.copy_within(from..from + n, 0);
        }
        self.base = keep;
        Ok(())
    }

    /// The ring as a map (rows `base..` at `0..`; only `base..front` hold values).
    fn map(&self) -> Map<'_> {
        Map {
            data: self.data,
            c: self.c,
            h: self.cap,
            w: self.w,
        }
    }

    /// A window of the ring starting at row `r` (absolute): the part for a convolution input.
    fn part(&self, r: usize) -> Part<'_> {
        Part {
            map: self.map(),
            off_y: r - self.base,
            off_x: 0,
        }
    }

    /// Rows `r0..r1` (absolute, inside the ring after [`Ring::room`]) to write.
    fn band(&mut self, r0: usize, r1: usize) -> Result<Band<'_>, Error> {
        let (c, cap, w) = (self.c, self.cap, self.w);
        let shared = Shared::new(&mut *self.data);
        let start = r0
            .checked_sub(self.base)
            .ok_or(internal("fuse: ring row"))?;
        // SAFETY: the ring is borrowed mutably for the band's life, so nothing else covers it.
        unsafe { Band::rows(&shared, (c, cap, w), start, r1 - r0) }
            .ok_or(internal("fuse: ring rows past its end"))
    }
}

/// The weights of one convolution and its transformed filters.
#[derive(Clone, Copy)]
pub(crate) struct Weights<'a, 's> {
    pub w: &'a TensorView<'s>,
    pub b: &'a TensorView<'s>,
}

/// What every part of a level shares.
struct Common<'a> {
    kernel: Kernel,
    algo: ConvAlgo,
    bands: Bands,
    u: [&'a [f32]; 2],
}

impl Common<'_> {
    /// Convolution `i` (0 or 1) of `d` into `out` (valid padding, ReLU) on this thread.
    fn conv(
        &self,
        i: usize,
        d: &ConvDims,
        wt: Weights<'_, '_>,
        input: &ConvInput<'_>,
        out: Band<'_>,
        work: &mut [f32],
    ) -> Result<(), Error> {
        if d.wino(self.algo) {
            winograd::band(
                self.kernel,
                self.u[i],
                wt.w,
                wt.b,
                input,
                Padding::Valid,
                true,
                out,
                work,
            )
        } else {
            conv::conv3x3_band(
                self.kernel,
                &Sequential,
                wt.w,
                wt.b,
                input,
                0,
                true,
                out,
                work,
            )
        }
    }
}

/// Splits `area` into the two `U`s (transformed now, on `exec`) and the workers' parts: what
/// the level's pipelines share, and the parts.
fn prepare<'a>(
    kernel: Kernel,
    algo: ConvAlgo,
    exec: &dyn Executor,
    bands: Bands,
    convs: [(&ConvDims, Weights<'_, '_>); 2],
    area: &'a mut [f32],
) -> Result<(Common<'a>, Shared<'a, f32>), Error> {
    let workers = exec.workers();
    if area.len() < bands.len(workers) || bands.rows == 0 || !bands.rows.is_multiple_of(TILE) {
        return Err(internal("fuse: band area out of contract"));
    }
    let (u0, rest) = area.split_at_mut(bands.u[0]);
    let (u1, rest) = rest.split_at_mut(bands.u[1]);
    for ((d, wt), u) in convs.into_iter().zip([&mut *u0, &mut *u1]) {
        if d.wino(algo) {
            winograd::prepare_u(kernel, exec, wt.w, d.c_out, d.c_in, u)?;
        }
    }
    let common = Common {
        kernel,
        algo,
        bands,
        u: [u0, u1],
    };
    Ok((common, Shared::new(rest)))
}

/// Most runs of bands one level is cut into (the workers' first runs plus those split off by
/// stealing).
const MAX_RUNS: usize = 32;
/// Bits of a run's word for each of its two band indices.
const HALF: u32 = usize::BITS / 2;

/// Bands `next..end` of a run, in one word (`next` in the high half) so that the run's owner,
/// taking bands from the front, and a thief, taking the back half, agree by compare-and-swap.
struct Run(AtomicUsize);

impl Run {
    fn pack(next: usize, end: usize) -> usize {
        (next << HALF) | end
    }

    fn unpack(v: usize) -> (usize, usize) {
        (v >> HALF, v & ((1 << HALF) - 1))
    }

    fn remaining(&self) -> usize {
        let (n, e) = Run::unpack(self.0.load(Ordering::Acquire));
        e.saturating_sub(n)
    }

    /// The owner's next band, if any remain.
    fn take(&self) -> Option<usize> {
        let mut v = self.0.load(Ordering::Acquire);
        loop {
            let (n, e) = Run::unpack(v);
            if n >= e {
                return None;
            }
            match self.0.compare_exchange_weak(
                v,
                Run::pack(n + 1, e),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return Some(n),
                Err(x) => v = x,
            }
        }
    }

    /// Takes the back half of the remaining bands (the smaller half when their number is odd:
    /// the thief pays a ring start-up), the last one too: the owner is busy with an earlier
    /// band meanwhile.
    fn split(&self) -> Option<(usize, usize)> {
        let mut v = self.0.load(Ordering::Acquire);
        loop {
            let (n, e) = Run::unpack(v);
            if e <= n {
                return None;
            }
            let mid = n + (e - n) / 2;
            match self.0.compare_exchange_weak(
                v,
                Run::pack(n, mid),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return Some((mid, e)),
                Err(x) => v = x,
            }
        }
    }
}

/// The bands of a level's `h` output rows on `exec`: each worker first takes a run of
/// consecutive bands; a worker that finishes its run takes the back half of the run with the
/// most bands left (so a slower core does not hold the others up), and so on.
/// `part(first band, next band, worker area, worker)` runs one pipeline over consecutive bands
/// (`next` yields them in order). Errors are reported after all have finished.
#[allow(clippy::type_complexity)]
fn spread_runs(
    exec: &dyn Executor,
    bands: Bands,
    h: usize,
    parts: &Shared<'_, f32>,
    part: &Pipeline<'_>,
) -> Result<(), Error> {
    let chunks = h.div_ceil(bands.rows);
    let first = chunks.min(exec.workers()).clamp(1, MAX_RUNS);
    // Band indices must fit half a word (always, short of absurd maps: then one run).
    let (first, steal) = if chunks >> HALF == 0 {
        (first, true)
    } else {
        (1, false)
    };
    let runs: [Run; MAX_RUNS] = core::array::from_fn(|_| Run(AtomicUsize::new(0)));
    for (j, r) in runs.iter().enumerate().take(first) {
        let (c0, c1) = (j * chunks / first, (j + 1) * chunks / first);
        r.0.store(if steal { Run::pack(c0, c1) } else { 0 }, Ordering::Relaxed);
    }
    let count = AtomicUsize::new(first);
    let each = bands.each();
    let failed = AtomicBool::new(false);
    let job = |j: usize, wk: usize| {
        // SAFETY: worker `wk` owns elements `wk·each ..` of the parts (the `Executor` contract
        // runs no two jobs of one worker at once).
        let Some(area) = (unsafe { parts.range(wk.saturating_mul(each), each) }) else {
            failed.store(true, Ordering::Relaxed);
            return;
        };
        if !steal {
            let mut it = 0..chunks;
            if part(0, &mut || it.next(), area, wk).is_err() {
                failed.store(true, Ordering::Relaxed);
            }
            return;
        }
        let mut own = j;
        loop {
            let run = &runs[own];
            let (start, _) = Run::unpack(run.0.load(Ordering::Acquire));
            if part(start, &mut || run.take(), area, wk).is_err() {
                failed.store(true, Ordering::Relaxed);
                return;
            }
            // Steal: a new run for the back half of the fullest one.
            let k = count.fetch_add(1, Ordering::AcqRel);
            if k >= MAX_RUNS {
                return;
            }
            let n = k.min(MAX_RUNS);
            let Some(victim) = runs[..n].iter().max_by_key(|r| r.remaining()) else {
                return;
            };
            let Some((mid, end)) = victim.split() else {
                return;
            };
            runs[k].0.store(Run::pack(mid, end), Ordering::Release);
            own = k;
        }
    };
    exec.run(first, &job);
    if failed.load(Ordering::Relaxed) {
        return Err(internal("fuse: a band failed (sizes out of contract)"));
    }
    Ok(())
}

/// A fused encoder level's inputs.
pub(crate) struct Encoder<'a, 's> {
    pub kernel: Kernel,
    pub algo: ConvAlgo,
    pub bands: Bands,
    pub dims: EncDims,
    pub conv1: Weights<'a, 's>,
    pub conv2: Weights<'a, 's>,
    /// The level's input map (`conv1.c_in` channels, `conv1.h + 2` rows).
    pub input: Map<'a>,
}

impl Encoder<'_, '_> {
    /// Writes `S` (`c × conv2.h × conv2.w`) into `s` and, when the level pools, `P` (half the
    /// rows and columns) into `p`, with `area` of at least `bands.len(exec.workers())`.
    pub(crate) fn run(
        &self,
        exec: &dyn Executor,
        s: &mut [f32],
        p: Option<&mut [f32]>,
        area: &mut [f32],
    ) -> Result<(), Error> {
        let d = &self.dims;
        let (c, hs, ws) = (d.conv2.c_out, d.conv2.h, d.conv2.w);
        let s_len = c.saturating_mul(hs).saturating_mul(ws);
        if s.len() < s_len || d.pool != p.is_some() || self.input.h != d.conv1.h + 2 {
            return Err(internal("fuse: encoder maps out of contract"));
        }
        if let Some(p) = &p {
            if p.len() < c.saturating_mul(hs / 2).saturating_mul(ws / 2) || !hs.is_multiple_of(2) {
                return Err(internal("fuse: pooled map out of contract"));
            }
        }
        let convs = [(&d.conv1, self.conv1), (&d.conv2, self.conv2)];
        let (com, parts) = prepare(self.kernel, self.algo, exec, self.bands, convs, area)?;
        let s = Shared::new(s);
        let p = p.map(Shared::new);
        let part =
            |first: usize,
             next: &mut dyn FnMut() -> Option<usize>,
             area: &mut [f32],
             _wk: usize| { self.part(&com, first, next, area, &s, p.as_ref()) };
        spread_runs(exec, self.bands, hs, &parts, &part)
    }

    /// The bands `next` yields (consecutive, from band `first`) of `S` and their pooled rows,
    /// with one worker's `area`.
    fn part(
        &self,
        com: &Common<'_>,
        first: usize,
        next: &mut dyn FnMut() -> Option<usize>,
        area: &mut [f32],
        s: &Shared<'_, f32>,
        p: Option<&Shared<'_, f32>>,
    ) -> Result<(), Error> {
        let d = &self.dims;
        let bh = com.bands.rows;
        let (c, ha, wa) = (d.conv1.c_out, d.conv1.h, d.conv1.w);
        let (hs, ws) = (d.conv2.h, d.conv2.w);
        let (ring, work) = area.split_at_mut(com.bands.rings[0]);
        let work = &mut work[..com.bands.work];
        let mut a = Ring::new(ring, c, wa, bh + 4, first * bh)?;
        while let Some(band) = next() {
            let y = band * bh;
            let y1 = (y + bh).min(hs);
            if y >= y1 {
                return Err(internal("fuse: band past the map"));
            }
            // The first convolution's rows this band reads, in whole tiles.
            let t = up_to_tile(y1 + 2).min(ha);
            if t > a.front {
                a.room(y, t)?;
                let f = a.front;
                let input = ConvInput {
                    parts: [
                        Some(Part {
                            map: self.input,
                            off_y: f,
                            off_x: 0,
                        }),
                        None,
                    ],
                    h: t + 2 - f,
                    w: self.input.w,
                };
                com.conv(0, &d.conv1, self.conv1, &input, a.band(f, t)?, work)?;
                a.front = t;
            }
            let input = ConvInput {
                parts: [Some(a.part(y)), None],
                h: y1 + 2 - y,
                w: wa,
            };
            // SAFETY (both bands): this run alone writes rows `y..y1` of `S` (runs are
            // disjoint); the first band is gone when the second is made.
            let out =
                unsafe { Band::rows(s, (c, hs, ws), y, y1 - y) }.ok_or(internal("fuse: S rows"))?;
            com.conv(1, &d.conv2, self.conv2, &input, out, work)?;
            if let Some(p) = p {
                // SAFETY: as above: rows `y..y1` of `S` are this run's.
                let src = unsafe { Band::rows(s, (c, hs, ws), y, y1 - y) }
                    .ok_or(internal("fuse: S rows"))?;
                // SAFETY: this run alone writes rows `y/2..y1/2` of `P`.
                let pb = unsafe { Band::rows(p, (c, hs / 2, ws / 2), y / 2, (y1 - y) / 2) }
                    .ok_or(internal("fuse: P rows"))?;
                // SAFETY: the rows of `S` this run just wrote; nobody writes them now.
                unsafe { crate::pool::maxpool2x2_band(&src, &pb) };
            }
        }
        Ok(())
    }
}

/// The head's side of a fused top level: `head(worker, ring, row in ring, output row)` turns one
/// row of `D2` into one output row.
pub(crate) type HeadRow<'h> = dyn Fn(usize, Map<'_>, usize, usize) -> Result<(), Error> + Sync + 'h;

/// One pipeline over consecutive bands: `part(first band, next band, worker area, worker)`.
type Pipeline<'p> = dyn Fn(usize, &mut dyn FnMut() -> Option<usize>, &mut [f32], usize) -> Result<(), Error>
    + Sync
    + 'p;

/// What a fused decoder level does with its output rows.
pub(crate) enum DecOut<'o> {
    /// `D2` into this map (`c × conv2.h × conv2.w`).
    Map(&'o mut [f32]),
    /// `D2` rows to the head: `head(worker, ring, row in ring, output row)`.
    Head(&'o HeadRow<'o>),
}

/// A fused decoder level's inputs.
pub(crate) struct Decoder<'a, 's> {
    pub kernel: Kernel,
    pub algo: ConvAlgo,
    pub bands: Bands,
    pub dims: DecDims,
    pub up: Weights<'a, 's>,
    pub conv1: Weights<'a, 's>,
    pub conv2: Weights<'a, 's>,
    /// The map below (`c_below × up_h/2 × up_w/2`).
    pub below: Map<'a>,
    /// The skip connection, seen from the window of the first convolution's input.
    pub skip: Part<'a>,
}

impl Decoder<'_, '_> {
    /// Runs the level into `out` with `area` of at least `bands.len(exec.workers())`.
    pub(crate) fn run(
        &self,
        exec: &dyn Executor,
        out: DecOut<'_>,
        area: &mut [f32],
    ) -> Result<(), Error> {
        let d = &self.dims;
        let c = d.conv2.c_out;
        if self.below.c != d.c_below
            || self.below.h.checked_mul(2) != Some(d.up_h)
            || self.below.w.checked_mul(2) != Some(d.up_w)
            || d.conv1.h + 2 != d.up_h
            || d.conv2.h + 2 != d.conv1.h
            || d.head != matches!(out, DecOut::Head(_))
        {
            return Err(internal("fuse: decoder maps out of contract"));
        }
        let convs = [(&d.conv1, self.conv1), (&d.conv2, self.conv2)];
        let (com, parts) = prepare(self.kernel, self.algo, exec, self.bands, convs, area)?;
        let (map, head) = match out {
            DecOut::Map(m) => {
                if m.len() < c.saturating_mul(d.conv2.h).saturating_mul(d.conv2.w) {
                    return Err(internal("fuse: D2 map too short"));
                }
                (Some(Shared::new(m)), None)
            }
            DecOut::Head(h) => (None, Some(h)),
        };
        let part =
            |first: usize, next: &mut dyn FnMut() -> Option<usize>, area: &mut [f32], wk: usize| {
                self.part(&com, first, next, area, map.as_ref(), head, wk)
            };
        spread_runs(exec, self.bands, d.conv2.h, &parts, &part)
    }

    /// The bands `next` yields (consecutive, from band `first`) of `D2`, with one worker's
    /// `area`.
    #[allow(clippy::type_complexity, clippy::too_many_arguments)]
    fn part(
        &self,
        com: &Common<'_>,
        first: usize,
        next: &mut dyn FnMut() -> Option<usize>,
        area: &mut [f32],
        map: Option<&Shared<'_, f32>>,
        head: Option<&HeadRow<'_>>,
        wk: usize,
    ) -> Result<(), Error> {
        let d = &self.dims;
        let bh = com.bands.rows;
        let c = d.conv2.c_out;
        let (hu, wu) = (d.up_h, d.up_w);
        let (h1, w1) = (d.conv1.h, d.conv1.w);
        let (h2, w2) = (d.conv2.h, d.conv2.w);
        let [r0, r1, r2] = com.bands.rings;
        let (ring_u, rest) = area.split_at_mut(r0);
        let (ring_1, rest) = rest.split_at_mut(r1);
        let (ring_2, work) = rest.split_at_mut(r2);
        let work = &mut work[..com.bands.work];
        let y0 = first * bh;
        let mut u = Ring::new(ring_u, c, wu, bh + 6, y0)?;
        let mut m = Ring::new(ring_1, c, w1, bh + 4, y0)?;
        let mut o = Ring::new(ring_2, c, w2, if head.is_some() { bh } else { 0 }, y0)?;
        while let Some(band) = next() {
            let y = band * bh;
            let y1 = (y + bh).min(h2);
            if y >= y1 {
                return Err(internal("fuse: band past the map"));
            }
            // The first convolution's rows this band reads, in whole tiles.
            let t1 = up_to_tile(y1 + 2).min(h1);
            if t1 > m.front {
                let f1 = m.front;
                // The up-sampled rows those read, in pairs (one input row each).
                let tu = ((t1 + 2).min(hu)).div_ceil(2) * 2;
                if tu > u.front {
                    u.room(f1, tu)?;
                    let fu = u.front;
                    conv::up2x2_band(
                        com.kernel,
                        &Sequential,
                        self.up.w,
                        self.up.b,
                        self.below,
                        fu / 2,
                        (tu - fu) / 2,
                        u.band(fu, tu)?,
                        work,
                    )?;
                    u.front = tu;
                }
                m.room(y, t1)?;
                let input = ConvInput {
                    parts: [
                        Some(Part {
                            off_y: self.skip.off_y + f1,
                            ..self.skip
                        }),
                        Some(u.part(f1)),
                    ],
                    h: t1 + 2 - f1,
                    w: wu,
                };
                com.conv(0, &d.conv1, self.conv1, &input, m.band(f1, t1)?, work)?;
                m.front = t1;
            }
            let input = ConvInput {
                parts: [Some(m.part(y)), None],
                h: y1 + 2 - y,
                w: w1,
            };
            match (map, head) {
                (Some(map), _) => {
                    // SAFETY: this run alone writes rows `y..y1` of `D2` (runs are disjoint).
                    let out = unsafe { Band::rows(map, (c, h2, w2), y, y1 - y) }
                        .ok_or(internal("fuse: D2 rows"))?;
                    com.conv(1, &d.conv2, self.conv2, &input, out, work)?;
                }
                (None, Some(head)) => {
                    o.room(y, y1)?;
                    com.conv(1, &d.conv2, self.conv2, &input, o.band(y, y1)?, work)?;
                    o.front = y1;
                    for row in y..y1 {
                        head(wk, o.map(), row - o.base, row)?;
                    }
                }
                (None, None) => return Err(internal("fuse: decoder without an output")),
            }
        }
        Ok(())
    }
}
