//! Whole camera frames in one call: [`Model::frame_plan`] and [`Model::segment`].
//!
//! A frame of any size `≥ 1×1` (u8, u16 or f32 samples, one or more planar channels with
//! caller-given strides) is normalised as the model file says ([`crate::normalize`]), cut into
//! overlapping network tiles ([`crate::tile`]) whose missing context at the frame borders is
//! mirrored ([`crate::mirror`], numpy `"symmetric"`), run tile by tile on an [`Executor`]
//! (one tile = one job), and written straight into the caller's full-size output. Nothing is
//! allocated; the one scratch buffer's size is known from the plan.
//!
//! # What is exact
//! Let `E` be the frame normalised and extended by mirroring to the whole plane. For a
//! **valid** model, every output pixel `(y, x)` equals the output, at the same frame
//! position, of one single tile of `E` whose input starts at `(−halo, −halo)` and covers the
//! frame (the reference of the tests): tile origins are multiples of `2^(L−1)`, so each pixel
//! goes through the same pooling grid and the same sequence of operations. This holds bit for
//! bit as long as the layers' summation order for an output pixel does not depend on the
//! pixel's position in the feature map (`tests/frame_stitch.rs` checks it bitwise, for
//! every layer implementation the build uses). For a **same** model the tiles keep a margin of [`crate::tile::margin`]
//! (`7·2^(L−1) − 5`: the full dependency cone, wider than the `3·2^L − 4` radius), which is
//! computed and discarded, and the same statement holds with the reference tile starting at
//! `(−margin, −margin)`: the result is that of a same-padded network run on the
//! mirror-extended frame, *not* that of the network run on the bare frame with its own zero
//! padding at the frame border.
//!
//! Consequently the result depends neither on the tile size (tiles of different sizes compute
//! each pixel identically) nor on the executor or its number of workers.
//!
//! This exactness needs the direct convolution ([`Model::frame_plan_with`] and
//! [`ConvAlgo::Direct`]). The default plan ([`ConvAlgo::Auto`]) runs the wider 3×3 layers with
//! Winograd F(4×4, 3×3) ([`crate::winograd`]), whose arithmetic for a pixel depends on its
//! place in a 4×4 grid anchored at the tile's origin: then different tilings agree up to
//! rounding (`tests/frame_stitch.rs` checks `max|Δ| ≤ 1e-4 · max(1, max|logit|)`), still
//! independent of the executor and its number of workers.
//!
//! # Scratch layout (f32 elements)
//! `[2·C channel maps | max(normalisation statistics, workers × per-worker tile workspace)]`:
//! the statistics (histogram or channel copy) are done before any tile runs, so the tile
//! workspaces reuse their memory. A per-worker workspace holds the normalised tile input, the
//! tile's [`Plan::scratch_len`] and the tile's logits.
//!
//! [`Model`] is immutable and `Sync`: several threads may segment frames with one shared model
//! at the same time, each with its own plan copy, scratch and output.
//!
//! ```no_run
//! # fn demo(bytes: &[u8], pixels: &[u16], scratch: &mut [f32], labels: &mut [u8]) -> Result<(), unet_core::Error> {
//! use unet_core::{FrameInput, FrameOptions, FrameOutput, FrameView, Model, SampleType,
//!                 Sequential, TileChoice};
//! let model = Model::from_safetensors(bytes)?;
//! let options = FrameOptions { tile: TileChoice::Budget(256 << 20), workers: 1, sample: SampleType::U16 };
//! let plan = model.frame_plan(2048, 2048, 1, options)?;   // picks the tile, sizes the scratch
//! assert!(scratch.len() >= plan.scratch_len());
//! let frame = FrameView::new(pixels, 1, 2048, 2048, 2048, 2048 * 2048)?; // strides in elements
//! model.segment(&plan, FrameInput::U16(frame), scratch, FrameOutput::Labels8(labels), &Sequential)?;
//! # Ok(()) }
//! ```

use core::sync::atomic::{AtomicBool, Ordering};

use crate::arch::Config;
use crate::error::Error;
use crate::exec::{Executor, Shared};
use crate::forward::Output;
use crate::histogram::{self, Histogram};
use crate::mirror::symmetric_index;
use crate::model::Model;
use crate::normalize::{self, Affine, Normalization};
use crate::plan::Plan;
use crate::tile::AxisTiling;
use crate::winograd::ConvAlgo;

/// Element type of a frame's samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SampleType {
    /// 8-bit unsigned.
    U8,
    /// 16-bit unsigned.
    U16,
    /// 32-bit float.
    F32,
}

/// A sample type a frame may hold: `u8`, `u16` or `f32`.
pub trait Sample: Copy + Send + Sync + sealed::Sealed {
    /// The matching [`SampleType`].
    const TYPE: SampleType;
    /// The value as f32 (exact for u8 and u16).
    fn to_f32(self) -> f32;
    /// Histogram bin (the value itself) for integer samples; `None` for f32.
    fn bin(self) -> Option<usize>;
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for u8 {}
    impl Sealed for u16 {}
    impl Sealed for f32 {}
}

impl Sample for u8 {
    const TYPE: SampleType = SampleType::U8;
    #[inline(always)]
    fn to_f32(self) -> f32 {
        self as f32
    }
    #[inline(always)]
    fn bin(self) -> Option<usize> {
        Some(self as usize)
    }
}

impl Sample for u16 {
    const TYPE: SampleType = SampleType::U16;
    #[inline(always)]
    fn to_f32(self) -> f32 {
        self as f32
    }
    #[inline(always)]
    fn bin(self) -> Option<usize> {
        Some(self as usize)
    }
}

impl Sample for f32 {
    const TYPE: SampleType = SampleType::F32;
    #[inline(always)]
    fn to_f32(self) -> f32 {
        self
    }
    #[inline(always)]
    fn bin(self) -> Option<usize> {
        None
    }
}

/// A read-only planar frame: sample `(c, y, x)` is `data[c·channel_stride + y·row_stride + x]`
/// (strides in elements). Made by [`FrameView::new`], which checks that every sample is in
/// `data`.
#[derive(Debug, Clone, Copy)]
pub struct FrameView<'a, T> {
    data: &'a [T],
    channels: usize,
    height: usize,
    width: usize,
    row_stride: usize,
    channel_stride: usize,
}

impl<'a, T: Sample> FrameView<'a, T> {
    /// A view of `channels × height × width` samples. Requires all sizes `≥ 1`,
    /// `row_stride ≥ width`, and `data.len() ≥ (channels−1)·channel_stride +
    /// (height−1)·row_stride + width` (checked, no overflow). Channels may overlap in memory
    /// (read-only).
    pub fn new(
        data: &'a [T],
        channels: usize,
        height: usize,
        width: usize,
        row_stride: usize,
        channel_stride: usize,
    ) -> Result<Self, Error> {
        if channels == 0 || height == 0 || width == 0 {
            return Err(Error::InvalidArgument {
                what: "frame channels, height and width must be at least 1",
            });
        }
        if row_stride < width {
            return Err(Error::InvalidArgument {
                what: "row stride is smaller than the width",
            });
        }
        let needed = (channels - 1)
            .checked_mul(channel_stride)
            .and_then(|a| {
                (height - 1)
                    .checked_mul(row_stride)
                    .and_then(|b| a.checked_add(b))
            })
            .and_then(|a| a.checked_add(width))
            .ok_or(Error::Overflow)?;
        if data.len() < needed {
            return Err(Error::BufferTooSmall {
                buffer: "input",
                needed,
                got: data.len(),
            });
        }
        Ok(FrameView {
            data,
            channels,
            height,
            width,
            row_stride,
            channel_stride,
        })
    }

    /// A densely packed `[channels, height, width]` frame.
    pub fn packed(
        data: &'a [T],
        channels: usize,
        height: usize,
        width: usize,
    ) -> Result<Self, Error> {
        let plane = height.checked_mul(width).ok_or(Error::Overflow)?;
        Self::new(data, channels, height, width, width, plane)
    }

    /// Channels.
    pub fn channels(&self) -> usize {
        self.channels
    }
    /// Height in pixels.
    pub fn height(&self) -> usize {
        self.height
    }
    /// Width in pixels.
    pub fn width(&self) -> usize {
        self.width
    }

    /// Row `y` of channel `c` (`width` samples); `c`, `y` in range.
    #[inline]
    fn row(&self, c: usize, y: usize) -> &'a [T] {
        let start = c * self.channel_stride + y * self.row_stride;
        &self.data[start..start + self.width]
    }
}

/// A frame to segment.
#[derive(Debug, Clone, Copy)]
pub enum FrameInput<'a> {
    /// 8-bit samples.
    U8(FrameView<'a, u8>),
    /// 16-bit samples.
    U16(FrameView<'a, u16>),
    /// f32 samples.
    F32(FrameView<'a, f32>),
}

impl FrameInput<'_> {
    fn sample_type(&self) -> SampleType {
        match self {
            FrameInput::U8(_) => SampleType::U8,
            FrameInput::U16(_) => SampleType::U16,
            FrameInput::F32(_) => SampleType::F32,
        }
    }
    fn dims(&self) -> (usize, usize, usize) {
        match self {
            FrameInput::U8(v) => (v.channels, v.height, v.width),
            FrameInput::U16(v) => (v.channels, v.height, v.width),
            FrameInput::F32(v) => (v.channels, v.height, v.width),
        }
    }
}

/// Where [`Model::segment`] writes, densely packed over the whole frame (`H × W` =
/// frame height × width).
#[derive(Debug)]
pub enum FrameOutput<'o> {
    /// Raw class scores `[num_classes, H, W]`.
    Logits(&'o mut [f32]),
    /// Soft-max probabilities `[num_classes, H, W]` (computed as [`Model::forward`] does).
    Probabilities(&'o mut [f32]),
    /// Arg-max label `[H, W]`; needs `num_classes ≤ 256`; ties → lowest class, NaN → first
    /// NaN class (as [`Output::Labels8`]).
    Labels8(&'o mut [u8]),
    /// Arg-max label `[H, W]`.
    Labels16(&'o mut [u16]),
}

/// How the tile size is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TileChoice {
    /// The largest square tile (clamped per axis to what covers the frame in one tile) whose
    /// whole frame scratch ([`FramePlan::scratch_bytes`]) fits in this many bytes.
    Budget(usize),
    /// This tile *input* size `(height, width)`: legal for the model, and, along an axis that
    /// needs several tiles, with a usable window of at least `2^(levels−1)` pixels.
    Explicit(usize, usize),
}

/// Options of [`Model::frame_plan`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameOptions {
    /// Tile size.
    pub tile: TileChoice,
    /// Workers the executor will have (≥ 1): one tile workspace each.
    pub workers: usize,
    /// Sample type of the frames (decides the normalisation scratch).
    pub sample: SampleType,
}

/// A validated frame size with its tiling and scratch layout. Made by [`Model::frame_plan`];
/// valid for models with the same architecture and normalisation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FramePlan {
    config: Config,
    normalization: Normalization,
    tile: Plan,
    rows: AxisTiling,
    cols: AxisTiling,
    workers: usize,
    sample: SampleType,
    stats_len: usize,
    norm_len: usize,
    tile_in_len: usize,
    logits_len: usize,
    worker_len: usize,
    scratch_len: usize,
    output_len: usize,
}

impl FramePlan {
    /// Exact scratch length (f32 elements) that [`Model::segment`] needs.
    pub fn scratch_len(&self) -> usize {
        self.scratch_len
    }
    /// Scratch length in bytes.
    pub fn scratch_bytes(&self) -> usize {
        self.scratch_len.saturating_mul(4)
    }
    /// Frame `(height, width)`.
    pub fn frame_size(&self) -> (usize, usize) {
        (self.rows.frame(), self.cols.frame())
    }
    /// Tile input `(height, width)`.
    pub fn tile_input_size(&self) -> (usize, usize) {
        (self.rows.input(), self.cols.input())
    }
    /// Tiles `(down, across)`.
    pub fn tile_counts(&self) -> (usize, usize) {
        (self.rows.count(), self.cols.count())
    }
    /// The per-tile network plan.
    pub fn tile_plan(&self) -> &Plan {
        &self.tile
    }
    /// Tiling of the rows (height axis).
    pub fn rows(&self) -> &AxisTiling {
        &self.rows
    }
    /// Tiling of the columns (width axis).
    pub fn cols(&self) -> &AxisTiling {
        &self.cols
    }
    /// Workers the scratch has room for.
    pub fn workers(&self) -> usize {
        self.workers
    }
    /// Scratch of one worker's tile workspace (f32 elements).
    pub fn worker_scratch_len(&self) -> usize {
        self.worker_len
    }
    /// Scratch of the normalisation statistics (f32 elements; shares memory with the tile
    /// workspaces).
    pub fn statistics_scratch_len(&self) -> usize {
        self.norm_len
    }
    /// Elements of a logits or probabilities output: `num_classes × H × W`.
    pub fn output_len(&self) -> usize {
        self.output_len
    }
    /// Elements of a label output: `H × W`.
    pub fn label_len(&self) -> usize {
        self.rows.frame() * self.cols.frame()
    }
}

fn add(a: usize, b: usize) -> Result<usize, Error> {
    a.checked_add(b).ok_or(Error::Overflow)
}
fn mul(a: usize, b: usize) -> Result<usize, Error> {
    a.checked_mul(b).ok_or(Error::Overflow)
}

impl<'a> Model<'a> {
    /// Plans segmenting `height × width` frames of `channels` channels (must equal the model's
    /// `in_channels`): picks the tile size, lays the tiles out and computes the exact scratch
    /// length. Any frame size `≥ 1×1` up to `u32::MAX` pixels is accepted.
    pub fn frame_plan(
        &self,
        height: usize,
        width: usize,
        channels: usize,
        options: FrameOptions,
    ) -> Result<FramePlan, Error> {
        self.frame_plan_with(height, width, channels, options, ConvAlgo::Auto)
    }

    /// [`Model::frame_plan`] with the tiles' 3×3 convolutions run as `algo` says
    /// ([`ConvAlgo::Direct`] makes the result independent of the tiling bit for bit; see the
    /// module docs).
    pub fn frame_plan_with(
        &self,
        height: usize,
        width: usize,
        channels: usize,
        options: FrameOptions,
        algo: ConvAlgo,
    ) -> Result<FramePlan, Error> {
        let cfg = *self.config();
        if channels != cfg.in_channels {
            return Err(Error::InvalidArgument {
                what: "frame channels differ from the model's in_channels",
            });
        }
        if options.workers == 0 {
            return Err(Error::InvalidArgument {
                what: "workers must be at least 1",
            });
        }
        if height == 0 || width == 0 {
            return Err(Error::InvalidArgument {
                what: "frame sizes must be at least 1",
            });
        }
        if mul(height, width)? > u32::MAX as usize {
            return Err(Error::InvalidArgument {
                what: "frames are limited to u32::MAX pixels",
            });
        }
        let g = *self.geometry();
        let with = |th: usize, tw: usize| -> Result<FramePlan, Error> {
            let rows = AxisTiling::new(&g, height, th)?;
            let cols = AxisTiling::new(&g, width, tw)?;
            self.layout(rows, cols, options, algo)
        };
        match options.tile {
            TileChoice::Explicit(th, tw) => with(th, tw),
            TileChoice::Budget(bytes) => {
                let cover_h = AxisTiling::covering_input(&g, height).ok_or(Error::Overflow)?;
                let cover_w = AxisTiling::covering_input(&g, width).ok_or(Error::Overflow)?;
                let top = cover_h.max(cover_w);
                let budget = bytes / 4;
                // Scratch grows with the tile size, so the largest fitting tile is found by
                // bisection over `x`, the tile being the largest legal size `≤ x` (a linear scan
                // plans every legal size up to the frame's: billions for a 1 × 4·10⁹ frame).
                let plan_at = |x: usize| -> Option<FramePlan> {
                    let c = g.prev_legal(x)?;
                    with(c.min(cover_h), c.min(cover_w)).ok()
                };
                // Tiles below some size cannot tile the frame (too little kept centre); find the
                // smallest size that plans, again by bisection (it is valid from there on).
                let top = top.max(g.min_input());
                let (mut a, mut b) = (g.min_input(), top);
                if plan_at(b).is_none() {
                    return Err(Error::BufferTooSmall {
                        buffer: "scratch budget",
                        needed: usize::MAX,
                        got: budget,
                    });
                }
                while a < b {
                    let mid = a + (b - a) / 2;
                    if plan_at(mid).is_some() {
                        b = mid;
                    } else {
                        a = mid + 1;
                    }
                }
                let first = a;
                let fits = |x: usize| plan_at(x).filter(|p| p.scratch_len <= budget);
                let Some(mut best) = fits(first) else {
                    return Err(Error::BufferTooSmall {
                        buffer: "scratch budget",
                        needed: plan_at(first).map_or(usize::MAX, |p| p.scratch_len),
                        got: budget,
                    });
                };
                // Invariant: `fits(lo)` holds (and `best` is its plan); nothing above `hi` fits.
                let (mut lo, mut hi) = (first, top);
                while lo < hi {
                    let mid = lo + (hi - lo).div_ceil(2);
                    match fits(mid) {
                        Some(p) => {
                            best = p;
                            lo = mid;
                        }
                        None => hi = mid - 1,
                    }
                }
                Ok(best)
            }
        }
    }

    fn layout(
        &self,
        rows: AxisTiling,
        cols: AxisTiling,
        options: FrameOptions,
        algo: ConvAlgo,
    ) -> Result<FramePlan, Error> {
        let cfg = *self.config();
        let tile = self.plan_with(rows.input(), cols.input(), algo)?;
        let (oh, ow) = tile.output_size();
        let stats_len = mul(2, cfg.in_channels)?;
        let norm_len = statistics_scratch_len(
            self.normalization(),
            options.sample,
            rows.frame(),
            cols.frame(),
        )
        .ok_or(Error::Overflow)?;
        let tile_in_len = mul(cfg.in_channels, mul(rows.input(), cols.input())?)?;
        let logits_len = mul(cfg.num_classes, mul(oh, ow)?)?;
        let worker_len = add(add(tile_in_len, tile.scratch_len())?, logits_len)?;
        let shared = mul(worker_len, options.workers)?.max(norm_len);
        let scratch_len = add(stats_len, shared)?;
        mul(scratch_len, 4)?;
        let output_len = mul(cfg.num_classes, mul(rows.frame(), cols.frame())?)?;
        Ok(FramePlan {
            config: cfg,
            normalization: self.normalization(),
            tile,
            rows,
            cols,
            workers: options.workers,
            sample: options.sample,
            stats_len,
            norm_len,
            tile_in_len,
            logits_len,
            worker_len,
            scratch_len,
            output_len,
        })
    }

    /// Segments a whole frame into `output` (see the [module docs](crate::frame)).
    ///
    /// `plan` must come from [`Model::frame_plan`] of a model with the same architecture and
    /// normalisation, for this frame's size, channels and sample type, with at least
    /// `exec.workers()` workers; `scratch` needs [`FramePlan::scratch_len`] elements (contents
    /// irrelevant, clobbered); `output` [`FramePlan::output_len`] (logits, probabilities) or
    /// [`FramePlan::label_len`] (labels) elements.
    ///
    /// Never allocates, never panics. Everything is validated, and the percentile statistics
    /// computed, before the first output element is written: on error, `output` is untouched.
    pub fn segment(
        &self,
        plan: &FramePlan,
        input: FrameInput<'_>,
        scratch: &mut [f32],
        output: FrameOutput<'_>,
        exec: &(impl Executor + ?Sized),
    ) -> Result<(), Error> {
        let cfg = *self.config();
        if plan.config != cfg || plan.normalization != self.normalization() {
            return Err(Error::InvalidArgument {
                what: "frame plan was made for another model",
            });
        }
        if input.sample_type() != plan.sample {
            return Err(Error::InvalidArgument {
                what: "frame sample type differs from the plan's",
            });
        }
        if input.dims() != (cfg.in_channels, plan.rows.frame(), plan.cols.frame()) {
            return Err(Error::InvalidArgument {
                what: "frame size or channels differ from the plan's",
            });
        }
        let workers = exec.workers();
        if workers == 0 || workers > plan.workers {
            return Err(Error::InvalidArgument {
                what: "executor has more workers than the plan has scratch for",
            });
        }
        if scratch.len() < plan.scratch_len {
            return Err(Error::BufferTooSmall {
                buffer: "scratch",
                needed: plan.scratch_len,
                got: scratch.len(),
            });
        }
        let (needed, got) = match &output {
            FrameOutput::Logits(o) | FrameOutput::Probabilities(o) => (plan.output_len(), o.len()),
            FrameOutput::Labels8(o) => (plan.label_len(), o.len()),
            FrameOutput::Labels16(o) => (plan.label_len(), o.len()),
        };
        if got < needed {
            return Err(Error::BufferTooSmall {
                buffer: "output",
                needed,
                got,
            });
        }
        match output {
            FrameOutput::Labels8(_) if cfg.num_classes > 256 => {
                return Err(Error::InvalidArgument {
                    what: "u8 labels need num_classes <= 256",
                })
            }
            FrameOutput::Labels16(_) if cfg.num_classes > 65536 => {
                return Err(Error::InvalidArgument {
                    what: "u16 labels need num_classes <= 65536",
                })
            }
            _ => {}
        }
        let scratch = &mut scratch[..plan.scratch_len];
        match input {
            FrameInput::U8(v) => self.segment_typed(plan, v, scratch, output, exec),
            FrameInput::U16(v) => self.segment_typed(plan, v, scratch, output, exec),
            FrameInput::F32(v) => self.segment_typed(plan, v, scratch, output, exec),
        }
    }

    fn segment_typed<T: Sample>(
        &self,
        plan: &FramePlan,
        view: FrameView<'_, T>,
        scratch: &mut [f32],
        output: FrameOutput<'_>,
        exec: &(impl Executor + ?Sized),
    ) -> Result<(), Error> {
        let (stats, work) = scratch.split_at_mut(plan.stats_len);
        channel_maps(self.normalization(), &view, stats, work)?;
        let stats: &[f32] = stats;

        let k = self.config().num_classes;
        let (fh, fw) = plan.frame_size();
        let work = Shared::new(work);
        let failed = AtomicBool::new(false);
        let sink = match output {
            FrameOutput::Logits(o) => Sink::Logits(Shared::new(o)),
            FrameOutput::Probabilities(o) => Sink::Probabilities(Shared::new(o)),
            FrameOutput::Labels8(o) => Sink::Labels8(Shared::new(o)),
            FrameOutput::Labels16(o) => Sink::Labels16(Shared::new(o)),
        };
        let (rows, cols) = (plan.rows, plan.cols);
        let tile_plan = plan.tile;
        let (oh, ow) = tile_plan.output_size();
        let job = |j: usize, w: usize| {
            let (ky, kx) = (j / cols.count(), j % cols.count());
            // SAFETY: worker regions `w·worker_len ..` are disjoint for distinct `w`, and the
            // `Executor` contract guarantees that no two concurrent calls share `w`; the
            // statistics region `stats` lies before `work` and is only read.
            let Some(ws) = (unsafe { work.range(w * plan.worker_len, plan.worker_len) }) else {
                failed.store(true, Ordering::Relaxed);
                return;
            };
            let (tile_in, rest) = ws.split_at_mut(plan.tile_in_len);
            let (fwd, logits) = rest.split_at_mut(rest.len() - plan.logits_len);
            gather(&view, stats, &rows, &cols, ky, kx, tile_in);
            if self
                .forward(&tile_plan, tile_in, fwd, Output::Logits(logits))
                .is_err()
            {
                failed.store(true, Ordering::Relaxed);
                return;
            }
            let t = TileOut {
                logits,
                k,
                oh,
                ow,
                fh,
                fw,
            };
            if !t.write(&sink, &rows, &cols, ky, kx) {
                failed.store(true, Ordering::Relaxed);
            }
        };
        exec.run(rows.count() * cols.count(), &job);
        if failed.load(Ordering::Relaxed) {
            return Err(Error::InvalidArgument {
                what: "internal: a tile failed (executor broke its contract?)",
            });
        }
        Ok(())
    }
}

/// Writes the affine map of every channel into `stats` (`[offset, scale]` per channel), using
/// `work` for percentile statistics.
fn channel_maps<T: Sample>(
    norm: Normalization,
    view: &FrameView<'_, T>,
    stats: &mut [f32],
    work: &mut [f32],
) -> Result<(), Error> {
    for c in 0..view.channels {
        let a = channel_affine(norm, view, c, work)?;
        stats[2 * c] = a.offset;
        stats[2 * c + 1] = a.scale;
    }
    Ok(())
}

/// Scratch (f32 elements) that [`channel_affine`] needs for `height × width` frames of
/// `sample`s: 0 unless `norm` is a percentile normalisation; then 256 (u8) or 65536 (u16)
/// histogram bins, or `height × width` (f32: a copy of the channel). `None` on overflow.
pub fn statistics_scratch_len(
    norm: Normalization,
    sample: SampleType,
    height: usize,
    width: usize,
) -> Option<usize> {
    Some(match (norm.needs_statistics(), sample) {
        (false, _) => 0,
        (true, SampleType::U8) => histogram::BINS_U8,
        (true, SampleType::U16) => histogram::BINS_U16,
        (true, SampleType::F32) => height.checked_mul(width)?,
    })
}

/// The affine map ([`crate::normalize`]) that `norm` gives channel `c` of `view`, with
/// percentiles over the whole channel. `scratch` needs [`statistics_scratch_len`] elements
/// (clobbered). Errors: `c` out of range, scratch too small, a non-finite f32 sample under
/// percentile normalisation. This is the function [`Model::segment`] uses; trainers call it
/// to normalise exactly as inference does.
pub fn channel_affine<T: Sample>(
    norm: Normalization,
    view: &FrameView<'_, T>,
    c: usize,
    scratch: &mut [f32],
) -> Result<Affine, Error> {
    if c >= view.channels {
        return Err(Error::InvalidArgument {
            what: "channel index out of range",
        });
    }
    let (low, high) = match norm {
        Normalization::Percentile { low, high } => {
            (normalize::decimal_f64(low), normalize::decimal_f64(high))
        }
        other => return Ok(other.fixed_affine().unwrap_or(Affine::IDENTITY)),
    };
    let n = view.height * view.width;
    let need =
        statistics_scratch_len(norm, T::TYPE, view.height, view.width).ok_or(Error::Overflow)?;
    let got = scratch.len();
    let work = scratch.get_mut(..need).ok_or(Error::BufferTooSmall {
        buffer: "scratch",
        needed: need,
        got,
    })?;
    if T::TYPE != SampleType::F32 {
        let mut h = Histogram::new(histogram::as_counts(work));
        for y in 0..view.height {
            for &s in view.row(c, y) {
                h.add(s.bin().unwrap_or(0));
            }
        }
        let mut kth = |k: usize| h.kth(k) as f64;
        let lo = normalize::percentile_linear(n, low, &mut kth);
        let hi = normalize::percentile_linear(n, high, &mut kth);
        return Ok(Affine::from_range(lo, hi));
    }
    for (y, dst) in work.chunks_exact_mut(view.width).enumerate() {
        for (d, &s) in dst.iter_mut().zip(view.row(c, y)) {
            *d = s.to_f32();
        }
    }
    let (lo, hi) = normalize::percentiles_f32(work, low, high)?;
    Ok(Affine::from_range(lo, hi))
}

/// Fills tile `(ky, kx)`'s normalised network input `[C, in_h, in_w]`, mirroring beyond the
/// frame.
fn gather<T: Sample>(
    view: &FrameView<'_, T>,
    stats: &[f32],
    rows: &AxisTiling,
    cols: &AxisTiling,
    ky: usize,
    kx: usize,
    dst: &mut [f32],
) {
    let (ih, iw) = (rows.input(), cols.input());
    let (y0, x0) = (rows.input_start(ky), cols.input_start(kx));
    let (fh, fw) = (view.height, view.width);
    for c in 0..view.channels {
        let a = Affine {
            offset: stats[2 * c],
            scale: stats[2 * c + 1],
        };
        for ty in 0..ih {
            let src = view.row(c, symmetric_index(y0 + ty as isize, fh));
            let d = &mut dst[(c * ih + ty) * iw..(c * ih + ty + 1) * iw];
            for (tx, v) in d.iter_mut().enumerate() {
                *v = a.apply(src[symmetric_index(x0 + tx as isize, fw)].to_f32());
            }
        }
    }
}

enum Sink<'o> {
    Logits(Shared<'o, f32>),
    Probabilities(Shared<'o, f32>),
    Labels8(Shared<'o, u8>),
    Labels16(Shared<'o, u16>),
}

/// One tile's logits `[k, oh, ow]` and the frame size.
struct TileOut<'t> {
    logits: &'t [f32],
    k: usize,
    oh: usize,
    ow: usize,
    fh: usize,
    fw: usize,
}

impl TileOut<'_> {
    /// Writes the frame pixels tile `(ky, kx)` owns; `false` if a range was out of bounds
    /// (impossible for a validated plan).
    fn write(
        &self,
        sink: &Sink<'_>,
        rows: &AxisTiling,
        cols: &AxisTiling,
        ky: usize,
        kx: usize,
    ) -> bool {
        let (k, oh, ow, fh, fw) = (self.k, self.oh, self.ow, self.fh, self.fw);
        let xs = cols.owned(kx);
        let n = xs.len();
        let tx0 = cols.output_index(kx, xs.start);
        for y in rows.owned(ky) {
            let ty = rows.output_index(ky, y);
            let at = |cls: usize, i: usize| self.logits[(cls * oh + ty) * ow + tx0 + i];
            // Every `unsafe` below asks for part of row `y`, columns `xs`, of one class plane
            // (or of the label map): the owned ranges of the tiles partition each axis
            // (`AxisTiling::owned`), so the owned rectangles partition the frame, and each job
            // index — each tile — is run once (`Executor` contract); so no other live slice
            // overlaps it.
            match sink {
                Sink::Logits(o) => {
                    for cls in 0..k {
                        let Some(d) = (
                            // SAFETY: inside tile (ky, kx)'s owned rectangle, see above.
                            unsafe { o.range((cls * fh + y) * fw + xs.start, n) }
                        ) else {
                            return false;
                        };
                        for (i, v) in d.iter_mut().enumerate() {
                            *v = at(cls, i);
                        }
                    }
                }
                Sink::Probabilities(o) => {
                    for i in 0..n {
                        let mut m = f32::NEG_INFINITY;
                        for cls in 0..k {
                            m = m.max(at(cls, i));
                        }
                        let mut sum = 0.0f32;
                        for cls in 0..k {
                            let e = crate::softmax::exp_nonpositive(at(cls, i) - m);
                            let Some(d) = (
                                // SAFETY: inside tile (ky, kx)'s owned rectangle, see above.
                                unsafe { o.range((cls * fh + y) * fw + xs.start + i, 1) }
                            ) else {
                                return false;
                            };
                            d[0] = e;
                            sum += e;
                        }
                        let inv = 1.0 / sum;
                        for cls in 0..k {
                            let Some(d) = (
                                // SAFETY: inside tile (ky, kx)'s owned rectangle, see above.
                                unsafe { o.range((cls * fh + y) * fw + xs.start + i, 1) }
                            ) else {
                                return false;
                            };
                            d[0] *= inv;
                        }
                    }
                }
                Sink::Labels8(o) => {
                    let Some(d) = (
                        // SAFETY: inside tile (ky, kx)'s owned rectangle, see above.
                        unsafe { o.range(y * fw + xs.start, n) }
                    ) else {
                        return false;
                    };
                    for (i, v) in d.iter_mut().enumerate() {
                        *v = argmax(k, |cls| at(cls, i)) as u8;
                    }
                }
                Sink::Labels16(o) => {
                    let Some(d) = (
                        // SAFETY: inside tile (ky, kx)'s owned rectangle, see above.
                        unsafe { o.range(y * fw + xs.start, n) }
                    ) else {
                        return false;
                    };
                    for (i, v) in d.iter_mut().enumerate() {
                        *v = argmax(k, |cls| at(cls, i)) as u16;
                    }
                }
            }
        }
        true
    }
}

/// Index of the largest `v(cls)`; ties → lowest index; the first NaN wins (as the forward
/// pass's label output).
fn argmax(k: usize, v: impl Fn(usize) -> f32) -> usize {
    let mut best = 0;
    let mut bv = v(0);
    if bv.is_nan() {
        return 0;
    }
    for cls in 1..k {
        let x = v(cls);
        if x.is_nan() {
            return cls;
        }
        if x > bv {
            best = cls;
            bv = x;
        }
    }
    best
}
