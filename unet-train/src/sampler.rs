//! Random training tiles: [`TileSampler`] cuts augmented input tiles and the matching output
//! targets/weights out of the training images.
//!
//! # One batch item
//! 1. A sample is drawn uniformly among the training samples.
//! 2. The tile centre: with probability `foreground_probability` (default 0.9) a pixel drawn
//!    uniformly among the sample's foreground pixels (target > 0 and weight > 0), otherwise a
//!    pixel drawn uniformly in the image (also when the sample has no foreground). For an even
//!    tile size the centre sits half a pixel below/right of that pixel, so that the chosen pixel
//!    is one of the four central pixels and unrotated tiles sample pixel centres exactly.
//! 3. One [`Warp`] is drawn for the whole input tile `[in_h, in_w]`; the image is sampled through
//!    it (bilinear), the cached target and weight map through its centred `[out_h, out_w]` part
//!    (offset `((in_h − out_h)/2, (in_w − out_w)/2)`, the halo; nearest). Beyond the image
//!    border everything is mirrored ([`crate::augment`]), and a gray-value variation is applied
//!    to the image tile.
//!
//! Targets and weight maps are computed once per sample at construction
//! ([`crate::weight_map::prepare_target`]); images must already be normalised.
//!
//! # Determinism
//! [`TileSampler::sample`] draws one `u64` per batch item from the caller's rng, in item order,
//! and builds item `b` from a `ChaCha8Rng` seeded with it, in parallel (rayon). The batch
//! depends only on the caller's rng state, not on thread scheduling.

use crate::augment::{warp_image, warp_nearest, AugmentParams, GrayValue, Warp};
use crate::data::{LabelKind, Sample};
use crate::weight_map::{prepare_target, WeightParams};
use ndarray::{s, Array2, Array3, Array4};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

/// A batch of training tiles.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// Normalised, augmented input tiles `[B, C, in_h, in_w]`.
    pub input: Array4<f32>,
    /// Class of each output pixel `[B, out_h, out_w]`.
    pub target: Array3<u8>,
    /// Loss weight of each output pixel `[B, out_h, out_w]`; 0 = ignored.
    pub weight: Array3<f32>,
}

/// Why a sampler cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SamplerError {
    /// No training samples.
    #[error("no training samples")]
    NoSamples,
    /// Samples differ in channel count.
    #[error("sample {name} has {found} channel(s), the first sample {expected}")]
    Channels {
        /// Offending sample.
        name: String,
        /// Channels of the first sample.
        expected: usize,
        /// Channels found.
        found: usize,
    },
    /// A sample's labels differ in size from its image, or a sample is empty.
    #[error("sample {name}: image and labels differ in size or are empty")]
    Shape {
        /// Offending sample.
        name: String,
    },
    /// Tile sizes inconsistent.
    #[error("tile sizes: input {input:?}, output {output:?}: {what}")]
    Tile {
        /// Input tile `(h, w)`.
        input: (usize, usize),
        /// Output tile `(h, w)`.
        output: (usize, usize),
        /// What is wrong.
        what: &'static str,
    },
}

struct Prepared {
    image: Array3<f32>,
    target: Array2<u8>,
    weight: Array2<f32>,
    /// Flat indices `y·W + x` of the foreground pixels.
    foreground: Vec<usize>,
}

/// Draws augmented training tiles (module documentation).
pub struct TileSampler {
    items: Vec<Prepared>,
    input: (usize, usize),
    output: (usize, usize),
    augment: AugmentParams,
    foreground_probability: f32,
    channels: usize,
}

impl std::fmt::Debug for TileSampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TileSampler")
            .field("samples", &self.items.len())
            .field("input", &self.input)
            .field("output", &self.output)
            .field("augment", &self.augment)
            .field("foreground_probability", &self.foreground_probability)
            .finish()
    }
}

impl TileSampler {
    /// A sampler over `samples` (images already normalised, `[C, H, W]`, all with the same `C`)
    /// for a network taking `input = (in_h, in_w)` tiles and giving `output = (out_h, out_w)`
    /// (e.g. `unet_core::Geometry::output_size`; `in − out` must be even and ≥ 0 per axis).
    pub fn new(
        samples: &[Sample],
        kind: LabelKind,
        weights: &WeightParams,
        input: (usize, usize),
        output: (usize, usize),
        augment: AugmentParams,
    ) -> Result<TileSampler, SamplerError> {
        let tile = |what| SamplerError::Tile {
            input,
            output,
            what,
        };
        if input.0 == 0 || input.1 == 0 || output.0 == 0 || output.1 == 0 {
            return Err(tile("sizes must be positive"));
        }
        if output.0 > input.0 || output.1 > input.1 {
            return Err(tile("output larger than input"));
        }
        if (input.0 - output.0) % 2 != 0 || (input.1 - output.1) % 2 != 0 {
            return Err(tile("input − output must be even (a symmetric halo)"));
        }
        let first = samples.first().ok_or(SamplerError::NoSamples)?;
        let channels = first.image.dim().0;
        for s in samples {
            let (c, h, w) = s.image.dim();
            if c != channels {
                return Err(SamplerError::Channels {
                    name: s.name.clone(),
                    expected: channels,
                    found: c,
                });
            }
            if (h, w) != s.labels.dim() || h == 0 || w == 0 || c == 0 {
                return Err(SamplerError::Shape {
                    name: s.name.clone(),
                });
            }
        }
        let items = samples
            .par_iter()
            .map(|s| {
                let (target, weight) = prepare_target(s.labels.view(), kind, weights);
                let w = target.ncols();
                let foreground = target
                    .indexed_iter()
                    .filter(|&((y, x), &t)| t > 0 && weight[[y, x]] > 0.0)
                    .map(|((y, x), _)| y * w + x)
                    .collect();
                Prepared {
                    image: s.image.clone(),
                    target,
                    weight,
                    foreground,
                }
            })
            .collect();
        Ok(TileSampler {
            items,
            input,
            output,
            augment,
            foreground_probability: 0.9,
            channels,
        })
    }

    /// Sets the probability of centring a tile on a foreground pixel (clamped to `0..=1`).
    pub fn with_foreground_probability(mut self, p: f32) -> Self {
        self.foreground_probability = if p.is_nan() { 0.0 } else { p.clamp(0.0, 1.0) };
        self
    }

    /// Number of training samples.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Always false (a sampler has at least one sample).
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Channels of the input tiles.
    pub fn channels(&self) -> usize {
        self.channels
    }

    /// Cached target `[H, W]` and weight map `[H, W]` of sample `i` (as given to `new`).
    pub fn prepared(&self, i: usize) -> Option<(&Array2<u8>, &Array2<f32>)> {
        self.items.get(i).map(|p| (&p.target, &p.weight))
    }

    /// `batch` random tiles (module documentation); the same rng state gives the same batch.
    pub fn sample(&self, batch: usize, rng: &mut impl Rng) -> Batch {
        let seeds: Vec<u64> = (0..batch).map(|_| rng.random::<u64>()).collect();
        let items: Vec<(Array3<f32>, Array2<u8>, Array2<f32>)> = seeds
            .par_iter()
            .map(|&seed| self.item(&mut ChaCha8Rng::seed_from_u64(seed)))
            .collect();
        let (ih, iw) = self.input;
        let (oh, ow) = self.output;
        let mut input = Array4::<f32>::zeros((batch, self.channels, ih, iw));
        let mut target = Array3::<u8>::zeros((batch, oh, ow));
        let mut weight = Array3::<f32>::zeros((batch, oh, ow));
        for (b, (im, t, w)) in items.into_iter().enumerate() {
            input.slice_mut(s![b, .., .., ..]).assign(&im);
            target.slice_mut(s![b, .., ..]).assign(&t);
            weight.slice_mut(s![b, .., ..]).assign(&w);
        }
        Batch {
            input,
            target,
            weight,
        }
    }

    fn item(&self, rng: &mut ChaCha8Rng) -> (Array3<f32>, Array2<u8>, Array2<f32>) {
        let p = &self.items[rng.random_range(0..self.items.len())];
        let w = p.target.ncols();
        let h = p.target.nrows();
        let use_fg = !p.foreground.is_empty() && rng.random::<f32>() < self.foreground_probability;
        let flat = if use_fg {
            p.foreground[rng.random_range(0..p.foreground.len())]
        } else {
            rng.random_range(0..h * w)
        };
        let (y, x) = (flat / w, flat % w);
        let (ih, iw) = self.input;
        let (oh, ow) = self.output;
        let half = |n: usize| if n % 2 == 0 { 0.5 } else { 0.0 };
        let centre = (y as f32 + half(ih), x as f32 + half(iw));
        let warp = Warp::sample(&self.augment, ih, iw, centre, rng);
        let gray = GrayValue::sample(&self.augment, rng);
        let mut img = warp_image(&warp, p.image.view());
        gray.apply(&mut img);
        let out = warp.crop((ih - oh) / 2, (iw - ow) / 2, oh, ow);
        (
            img,
            warp_nearest(&out, p.target.view()),
            warp_nearest(&out, p.weight.view()),
        )
    }
}

impl crate::train::BatchSource for TileSampler {
    /// [`TileSampler::sample`] as an owned training batch (all randomness from `rng`).
    fn next_batch(
        &mut self,
        batch: usize,
        rng: &mut ChaCha8Rng,
    ) -> crate::Result<crate::train::OwnedBatch> {
        let b = self.sample(batch, rng);
        Ok(crate::train::OwnedBatch {
            input: b.input,
            target: b.target,
            weight: b.weight,
        })
    }
}
