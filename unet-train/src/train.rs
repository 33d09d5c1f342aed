//! The training loop: a [`Trainer`] drives any [`Backend`] one step at a time with batches from a
//! [`BatchSource`], a learning-rate [`Schedule`], dropout and the loss normalisation, and turns
//! its state into a [`Checkpoint`] and back.
//!
//! **Determinism.** Step `t` draws its batch from the trainer's sampling RNG
//! (`ChaCha8Rng::seed_from_u64(seed ^ SAMPLER_SALT)`, advanced only by the batch source), uses
//! learning rate `schedule.lr(lr, t)` and the dropout masks of `(seed, t)`. A checkpoint stores
//! the parameters, the optimiser state, `t` and the RNG's exact word position, so "train N
//! steps" and "train k steps, save, load, train N − k steps" give bit-identical weights.
//!
//! **Divergence.** A NaN or infinite loss stops the step before the update
//! ([`TrainError::NonFinite`]); the parameters and the last checkpoint on disk stay as they were.

use std::collections::BTreeMap;

use ndarray::{Array3, Array4};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::backend::{Backend, BatchView, Dropout, StepStats};
use crate::checkpoint::Checkpoint;
use crate::error::{Result, TrainError};
use crate::loss::LossNorm;
use crate::optim::OptimizerKind;
use crate::schedule::Schedule;

/// Mixed into the run seed for the sampling RNG (independent of the init and dropout streams).
pub const SAMPLER_SALT: u64 = 0x5A3F_1E00_0000_0001;

/// An owned training batch, shapes as [`BatchView`].
#[derive(Debug, Clone, PartialEq)]
pub struct OwnedBatch {
    /// `[B, in_channels, H, W]`.
    pub input: Array4<f32>,
    /// `[B, H_out, W_out]` class ids.
    pub target: Array3<u8>,
    /// `[B, H_out, W_out]` weights (0 = ignore).
    pub weight: Array3<f32>,
}

impl OwnedBatch {
    /// A borrowed view.
    pub fn view(&self) -> BatchView<'_> {
        BatchView {
            input: self.input.view(),
            target: self.target.view(),
            weight: self.weight.view(),
        }
    }
}

/// Where batches come from (the tile sampler over a data set, or synthetic data in tests).
pub trait BatchSource {
    /// The next batch of `batch` tiles. All randomness must come from `rng`, so that a resumed
    /// run draws the same batches.
    fn next_batch(&mut self, batch: usize, rng: &mut ChaCha8Rng) -> Result<OwnedBatch>;
}

/// Settings of a run that the loop itself uses.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainSettings {
    /// Tiles per batch (≥ 1).
    pub batch: usize,
    /// Base learning rate.
    pub lr: f32,
    /// Learning-rate schedule.
    pub schedule: Schedule,
    /// Loss normalisation.
    pub loss_norm: LossNorm,
    /// Dropout probability at the end of the contracting path (0 disables).
    pub dropout: f32,
    /// Run seed (init, sampling, dropout).
    pub seed: u64,
}

/// Drives a backend through training steps.
pub struct Trainer<B: Backend> {
    backend: B,
    settings: TrainSettings,
    step: u64,
    rng: ChaCha8Rng,
}

impl<B: Backend> Trainer<B> {
    /// A trainer at step 0.
    pub fn new(backend: B, settings: TrainSettings) -> Result<Self> {
        if settings.batch == 0 {
            return Err(TrainError::invalid("batch size must be at least 1"));
        }
        if !(0.0..1.0).contains(&settings.dropout) {
            return Err(TrainError::invalid(format!(
                "dropout {} is not in [0, 1)",
                settings.dropout
            )));
        }
        if !(settings.lr.is_finite() && settings.lr >= 0.0) {
            return Err(TrainError::invalid(format!(
                "learning rate {} must be finite and >= 0",
                settings.lr
            )));
        }
        let rng = ChaCha8Rng::seed_from_u64(settings.seed ^ SAMPLER_SALT);
        Ok(Trainer {
            backend,
            settings,
            step: 0,
            rng,
        })
    }

    /// Steps completed.
    pub fn step_count(&self) -> u64 {
        self.step
    }

    /// The backend.
    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// The backend, mutably.
    pub fn backend_mut(&mut self) -> &mut B {
        &mut self.backend
    }

    /// The settings.
    pub fn settings(&self) -> &TrainSettings {
        &self.settings
    }

    /// Learning rate of the next step.
    pub fn current_lr(&self) -> f32 {
        self.settings.schedule.lr(self.settings.lr, self.step)
    }

    /// One training step on the next batch of `source`.
    pub fn step(&mut self, source: &mut dyn BatchSource) -> Result<StepStats> {
        let batch = source.next_batch(self.settings.batch, &mut self.rng)?;
        self.step_on(&batch)
    }

    /// One training step on a given batch (the RNG is not touched).
    pub fn step_on(&mut self, batch: &OwnedBatch) -> Result<StepStats> {
        let lr = self.current_lr();
        let dropout = (self.settings.dropout > 0.0).then_some(Dropout {
            p: self.settings.dropout,
            seed: self.settings.seed,
            step: self.step,
        });
        let stats = self
            .backend
            .train_step(&batch.view(), self.settings.loss_norm, dropout, lr)?;
        if !stats.loss.is_finite() {
            return Err(TrainError::NonFinite {
                step: self.step,
                loss: stats.loss,
            });
        }
        self.step += 1;
        Ok(stats)
    }

    /// The training state, with the run settings under `run` (plus the loop's own settings).
    pub fn checkpoint(
        &self,
        optimizer: OptimizerKind,
        weight_decay: f32,
        mut run: BTreeMap<String, String>,
    ) -> Result<Checkpoint> {
        let s = &self.settings;
        run.insert("batch".into(), s.batch.to_string());
        run.insert("lr".into(), format!("{:?}", s.lr));
        run.insert("schedule".into(), s.schedule.describe());
        run.insert("loss_norm".into(), s.loss_norm.as_str().into());
        run.insert("dropout".into(), format!("{:?}", s.dropout));
        run.insert("seed".into(), s.seed.to_string());
        Ok(Checkpoint {
            params: self.backend.params()?,
            optimizer,
            weight_decay,
            optim: self.backend.optimizer_state()?,
            step: self.step,
            rng: self.rng.clone(),
            run,
        })
    }

    /// Continues from `ckpt`: parameters, optimiser state, step and RNG position. The backend
    /// must have been built with the checkpoint's optimiser kind.
    pub fn restore(&mut self, ckpt: &Checkpoint) -> Result<()> {
        if ckpt.params.config() != &self.backend.config() {
            return Err(TrainError::invalid(
                "checkpoint architecture differs from the model being trained",
            ));
        }
        self.backend.set_params(&ckpt.params)?;
        self.backend.set_optimizer_state(ckpt.optim.clone())?;
        self.step = ckpt.step;
        self.rng = ckpt.rng.clone();
        Ok(())
    }
}
