//! The `Backend` seam: everything the training loop asks of a compute device.
//!
//! A backend owns the parameters, their gradients and the optimiser state on its device; the
//! training loop, the loss and the optimiser step all go through this trait. The CPU backend
//! ([`cpu::CpuBackend`], ndarray + matrixmultiply + rayon) is the reference; a CUDA backend
//! implements the same trait and is checked against it.
//!
//! **One step** = [`Backend::compute_gradients`] (forward in training mode with the dropout mask
//! of [`dropout`], weighted soft-max cross-entropy, backward; gradients replace the previous
//! ones) then [`Backend::apply_gradients`] (one optimiser update). [`Backend::train_step`] does
//! both and skips the update when the loss is not finite.
//!
//! **Data parallelism** (planned, e.g. NCCL over several GPUs): every replica holds the same
//! parameters and optimiser state; each computes gradients on its shard of the batch with the
//! loss denominator of the *whole* batch (see [`crate::loss`]: `scale = 1/D` is passed in, so
//! shard gradients simply add up); the gradients are all-reduced (summed) between
//! `compute_gradients` and `apply_gradients` — through [`Backend::gradients`] /
//! [`Backend::set_gradients`] on the host, or a device all-reduce inside a backend — and every
//! replica applies the same update. Dropout masks are a pure function of
//! `(seed, step, sample index in the batch)`, so sharding does not change them.

pub mod cpu;
#[cfg(feature = "cuda")]
pub mod cuda;
pub mod device;
pub mod dropout;

use ndarray::{Array4, ArrayView3, ArrayView4};
use unet_core::Config;

use crate::error::{Result, TrainError};
use crate::loss::LossNorm;
use crate::optim::OptimState;
use crate::params::Params;

/// A training batch borrowed from its owner: `input` `[B, in_channels, H, W]` (normalised),
/// `target` `[B, H_out, W_out]` class ids, `weight` `[B, H_out, W_out]` (0 = ignore).
#[derive(Debug, Clone, Copy)]
pub struct BatchView<'a> {
    /// Network input tiles.
    pub input: ArrayView4<'a, f32>,
    /// Class id of every output pixel.
    pub target: ArrayView3<'a, u8>,
    /// Loss weight of every output pixel.
    pub weight: ArrayView3<'a, f32>,
}

impl BatchView<'_> {
    /// Checks the shapes against `config`: batch ≥ 1, channels, a legal tile size, and targets
    /// and weights of the output size.
    pub fn validate(&self, config: &Config) -> Result<()> {
        let (b, c, h, w) = self.input.dim();
        if b == 0 {
            return Err(TrainError::invalid("empty batch"));
        }
        if c != config.in_channels {
            return Err(TrainError::invalid(format!(
                "batch has {c} channels, the model takes {}",
                config.in_channels
            )));
        }
        let g = unet_core::Geometry::new(config.levels, config.padding)?;
        let (oh, ow) = g.output_size(h, w)?;
        for (what, dim) in [("target", self.target.dim()), ("weight", self.weight.dim())] {
            if dim != (b, oh, ow) {
                return Err(TrainError::invalid(format!(
                    "{what} is {dim:?} but a batch of {b} tiles of {h}x{w} gives outputs of ({b}, {oh}, {ow})"
                )));
            }
        }
        Ok(())
    }
}

/// Dropout at the end of the contracting path for one training step (see [`dropout`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Dropout {
    /// Drop probability `p` in `[0, 1)`.
    pub p: f32,
    /// Run seed.
    pub seed: u64,
    /// Step number (masks differ per step).
    pub step: u64,
}

/// Where a shard sits in the whole batch of a data-parallel step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Shard {
    /// Index of the shard's first sample in the whole batch.
    pub first_sample: usize,
    /// The whole batch's loss denominator `D` ([`crate::loss::denominator`]); 0 gives a zero
    /// loss and gradient.
    pub denominator: f64,
}

/// What one gradient computation measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepStats {
    /// The normalised loss `E / D` (see [`crate::loss`]).
    pub loss: f64,
    /// The denominator `D`.
    pub denominator: f64,
    /// Tiles in the batch.
    pub tiles: usize,
}

/// A compute device that trains a U-Net. See the module docs for the protocol.
pub trait Backend: Send {
    /// Short name, e.g. `"cpu"`.
    fn name(&self) -> &'static str;
    /// The architecture.
    fn config(&self) -> Config;
    /// A host copy of the parameters.
    fn params(&self) -> Result<Params>;
    /// Replaces the parameters (same config).
    fn set_params(&mut self, params: &Params) -> Result<()>;
    /// Evaluation-mode forward pass (no dropout): logits `[B, num_classes, H_out, W_out]` for
    /// input `[B, in_channels, H, W]`.
    fn forward(&self, input: ArrayView4<'_, f32>) -> Result<Array4<f32>>;
    /// Forward in training mode, loss and backward on `batch`; the gradients of `E / D` replace
    /// the stored ones. `dropout: None` (or `p = 0`) disables dropout.
    fn compute_gradients(
        &mut self,
        batch: &BatchView<'_>,
        norm: LossNorm,
        dropout: Option<Dropout>,
    ) -> Result<StepStats> {
        let denominator = crate::loss::denominator(batch.weight, norm)?;
        self.compute_shard_gradients(
            batch,
            Shard {
                first_sample: 0,
                denominator,
            },
            dropout,
        )
    }
    /// As [`Backend::compute_gradients`] for one shard of a larger batch (data parallelism):
    /// the loss is divided by the whole batch's `shard.denominator`, and dropout masks are those
    /// of samples `shard.first_sample..`. Summing the shards' gradients gives the whole batch's.
    /// `StepStats::loss` is this shard's share of the batch loss.
    fn compute_shard_gradients(
        &mut self,
        batch: &BatchView<'_>,
        shard: Shard,
        dropout: Option<Dropout>,
    ) -> Result<StepStats>;
    /// A host copy of the last gradients (zeros before the first computation).
    fn gradients(&self) -> Result<Params>;
    /// Replaces the stored gradients (e.g. after an all-reduce).
    fn set_gradients(&mut self, grads: &Params) -> Result<()>;
    /// One optimiser update with the stored gradients and learning rate `lr`.
    fn apply_gradients(&mut self, lr: f32) -> Result<()>;
    /// A host copy of the optimiser state.
    fn optimizer_state(&self) -> Result<OptimState>;
    /// Replaces the optimiser state (same optimiser kind and shapes).
    fn set_optimizer_state(&mut self, state: OptimState) -> Result<()>;

    /// `compute_gradients` then, if the loss is finite, `apply_gradients(lr)`. A non-finite
    /// loss leaves parameters and optimiser state untouched; the caller decides what to do.
    fn train_step(
        &mut self,
        batch: &BatchView<'_>,
        norm: LossNorm,
        dropout: Option<Dropout>,
        lr: f32,
    ) -> Result<StepStats> {
        let stats = self.compute_gradients(batch, norm, dropout)?;
        if stats.loss.is_finite() {
            self.apply_gradients(lr)?;
        }
        Ok(stats)
    }
}

/// A boxed backend (e.g. from [`device::make_backend`]) is a backend: every call is forwarded,
/// including the provided methods, so a backend's own overrides stay in effect.
impl<B: Backend + ?Sized> Backend for Box<B> {
    fn name(&self) -> &'static str {
        (**self).name()
    }
    fn config(&self) -> Config {
        (**self).config()
    }
    fn params(&self) -> Result<Params> {
        (**self).params()
    }
    fn set_params(&mut self, params: &Params) -> Result<()> {
        (**self).set_params(params)
    }
    fn forward(&self, input: ArrayView4<'_, f32>) -> Result<Array4<f32>> {
        (**self).forward(input)
    }
    fn compute_gradients(
        &mut self,
        batch: &BatchView<'_>,
        norm: LossNorm,
        dropout: Option<Dropout>,
    ) -> Result<StepStats> {
        (**self).compute_gradients(batch, norm, dropout)
    }
    fn compute_shard_gradients(
        &mut self,
        batch: &BatchView<'_>,
        shard: Shard,
        dropout: Option<Dropout>,
    ) -> Result<StepStats> {
        (**self).compute_shard_gradients(batch, shard, dropout)
    }
    fn gradients(&self) -> Result<Params> {
        (**self).gradients()
    }
    fn set_gradients(&mut self, grads: &Params) -> Result<()> {
        (**self).set_gradients(grads)
    }
    fn apply_gradients(&mut self, lr: f32) -> Result<()> {
        (**self).apply_gradients(lr)
    }
    fn optimizer_state(&self) -> Result<OptimState> {
        (**self).optimizer_state()
    }
    fn set_optimizer_state(&mut self, state: OptimState) -> Result<()> {
        (**self).set_optimizer_state(state)
    }
    fn train_step(
        &mut self,
        batch: &BatchView<'_>,
        norm: LossNorm,
        dropout: Option<Dropout>,
        lr: f32,
    ) -> Result<StepStats> {
        (**self).train_step(batch, norm, dropout, lr)
    }
}
