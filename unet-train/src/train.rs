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

/// Options of a whole run ([`run`]).
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Stop after this many steps in total (counting steps done before a resume).
    pub steps: u64,
    /// Stop (cleanly: checkpoint + export) once this much wall time has passed in this process.
    pub time_budget: Option<std::time::Duration>,
    /// Write the checkpoint every this many steps (0: only at the end).
    pub checkpoint_every: u64,
    /// Checkpoint file (none: no checkpoints).
    pub checkpoint_path: Option<std::path::PathBuf>,
    /// Log a CSV row (mean training loss since the previous row) every this many steps
    /// (0: only at the end).
    pub log_every: u64,
    /// Run the validation callback every this many steps (0: only at the end); a validation
    /// step also logs a row.
    pub validate_every: u64,
    /// Names of the validation metrics, in CSV column order. Empty: the names the first
    /// validation returns (then every row must come from a validation, i.e. `log_every` should
    /// equal `validate_every`). Rows without a validation leave these cells empty; metrics not
    /// listed here are printed but not logged.
    pub metric_names: Vec<String>,
    /// CSV log file (none: no log). Columns: `step,lr,train_loss,tiles_per_s,elapsed_s` then the
    /// validation metrics by name. An existing file is appended to (a resumed run).
    pub log_path: Option<std::path::PathBuf>,
    /// Show an indicatif progress bar on stderr.
    pub progress: bool,
    /// Model file written at the end.
    pub out: std::path::PathBuf,
    /// Stored dtype of the model file.
    pub dtype: crate::export::StoreDtype,
    /// Normalisation, class names and provenance of the model file (steps, seed and date are
    /// added by [`run`]).
    pub info: crate::export::ModelInfo,
    /// The optimiser the backend was built with (recorded in checkpoints).
    pub optimizer: OptimizerKind,
    /// Its weight decay.
    pub weight_decay: f32,
    /// Run settings stored in checkpoints (`run.KEY`).
    pub run_meta: BTreeMap<String, String>,
}

/// What a run did.
#[derive(Debug, Clone, PartialEq)]
pub struct RunSummary {
    /// Steps completed in total.
    pub steps: u64,
    /// Mean training loss of the last logging interval.
    pub last_loss: f64,
    /// Validation metrics of the last evaluation.
    pub last_metrics: Vec<(String, f64)>,
    /// Training throughput of this process, tiles per second.
    pub tiles_per_s: f64,
}

/// A validation callback: metrics `(name, value)` of the current model (same names every call).
pub type Validate<'v, B> = dyn FnMut(&B) -> Result<Vec<(String, f64)>> + 'v;

/// Truncates an append-mode log after its last complete line (a killed run may have left a
/// partial one); returns whether a complete line (the header) remains.
fn drop_partial_line(f: &std::fs::File) -> std::io::Result<bool> {
    use std::io::{Read, Seek, SeekFrom};
    let mut r = f;
    let mut text = Vec::new();
    r.seek(SeekFrom::Start(0))?;
    r.read_to_end(&mut text)?;
    let keep = text.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    if keep < text.len() {
        f.set_len(keep as u64)?;
    }
    Ok(keep > 0)
}

/// Trains until `opts.steps` or the time budget, logging, checkpointing and finally exporting.
///
/// On a non-finite loss it stops with [`TrainError::NonFinite`] without writing anything more:
/// the last checkpoint on disk (written atomically at a good step) is kept.
pub fn run<B: Backend>(
    trainer: &mut Trainer<B>,
    source: &mut dyn BatchSource,
    mut validate: Option<&mut Validate<'_, B>>,
    opts: &RunOptions,
) -> Result<RunSummary> {
    use std::io::Write;
    let start = std::time::Instant::now();
    let bar = if opts.progress {
        let b = indicatif::ProgressBar::new(opts.steps);
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "{elapsed_precise} [{bar:30}] {pos}/{len} {msg}",
            )
            .map_err(|e| TrainError::invalid(e.to_string()))?
            .progress_chars("=> "),
        );
        b.set_position(trainer.step_count());
        b
    } else {
        indicatif::ProgressBar::hidden()
    };
    let mut log = match &opts.log_path {
        Some(p) => {
            let f = std::fs::OpenOptions::new()
                .create(true)
                .read(true)
                .append(true)
                .open(p)
                .map_err(|e| TrainError::io(p, e))?;
            // A run killed mid-way may have left an empty log (created, no header yet) or a
            // torn last line: drop the partial line, and write the header if none is there.
            let has_header = drop_partial_line(&f).map_err(|e| TrainError::io(p, e))?;
            Some((f, has_header, p.clone()))
        }
        None => None,
    };
    let save_checkpoint = |trainer: &Trainer<B>| -> Result<()> {
        if let Some(p) = &opts.checkpoint_path {
            trainer
                .checkpoint(opts.optimizer, opts.weight_decay, opts.run_meta.clone())?
                .save(p)?;
        }
        Ok(())
    };
    let mut columns: Vec<String> = opts.metric_names.clone();
    let (mut sum, mut count, mut tiles) = (0.0f64, 0u64, 0usize);
    let mut total_tiles = 0usize;
    let mut interval_start = std::time::Instant::now();
    let mut summary = RunSummary {
        steps: trainer.step_count(),
        last_loss: f64::NAN,
        last_metrics: Vec::new(),
        tiles_per_s: 0.0,
    };
    let budget_over = || opts.time_budget.is_some_and(|b| start.elapsed() >= b);
    while trainer.step_count() < opts.steps && !budget_over() {
        let lr = trainer.current_lr();
        let stats = trainer.step(source)?;
        sum += stats.loss;
        count += 1;
        tiles += stats.tiles;
        total_tiles += stats.tiles;
        let t = trainer.step_count();
        let secs = interval_start.elapsed().as_secs_f64().max(1e-9);
        bar.set_position(t);
        bar.set_message(format!(
            "loss {:.4}  {:.2} tiles/s  lr {lr:.3e}",
            sum / count as f64,
            tiles as f64 / secs
        ));
        let last = t >= opts.steps || budget_over();
        if opts.checkpoint_every > 0 && t % opts.checkpoint_every == 0 && !last {
            save_checkpoint(trainer)?;
        }
        let every = |n: u64| n > 0 && t % n == 0;
        let validate_now = every(opts.validate_every) || last;
        if every(opts.log_every) || validate_now {
            let metrics = match (validate_now, validate.as_mut()) {
                (true, Some(v)) => {
                    bar.set_message("validating…");
                    v(trainer.backend())?
                }
                _ => Vec::new(),
            };
            summary.last_loss = sum / count as f64;
            summary.tiles_per_s = tiles as f64 / secs;
            if let Some((f, header_written, p)) = log.as_mut() {
                if columns.is_empty() && !metrics.is_empty() {
                    columns = metrics.iter().map(|(k, _)| k.clone()).collect();
                }
                let mut line = String::new();
                if !*header_written {
                    line.push_str("step,lr,train_loss,tiles_per_s,elapsed_s");
                    for k in &columns {
                        line.push(',');
                        line.push_str(k);
                    }
                    line.push('\n');
                    *header_written = true;
                }
                line.push_str(&format!(
                    "{t},{lr:e},{},{:.4},{:.3}",
                    summary.last_loss,
                    summary.tiles_per_s,
                    start.elapsed().as_secs_f64()
                ));
                for k in &columns {
                    line.push(',');
                    if let Some((_, v)) = metrics.iter().find(|(n, _)| n == k) {
                        line.push_str(&v.to_string());
                    }
                }
                line.push('\n');
                f.write_all(line.as_bytes())
                    .and_then(|_| f.flush())
                    .map_err(|e| TrainError::io(p.clone(), e))?;
            }
            if !metrics.is_empty() {
                bar.println(format!(
                    "step {t}: train loss {:.4}; {}",
                    summary.last_loss,
                    metrics
                        .iter()
                        .map(|(k, v)| format!("{k} {v:.4}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
                summary.last_metrics = metrics;
            }
            (sum, count, tiles) = (0.0, 0, 0);
            interval_start = std::time::Instant::now();
        }
    }
    bar.finish_and_clear();
    summary.steps = trainer.step_count();
    summary.tiles_per_s = total_tiles as f64 / start.elapsed().as_secs_f64().max(1e-9);
    save_checkpoint(trainer)?;
    let mut info = opts.info.clone();
    let s = trainer.settings();
    for (k, v) in [
        ("steps", summary.steps.to_string()),
        ("seed", s.seed.to_string()),
        ("date", crate::export::utc_timestamp()),
        ("optimizer", opts.optimizer.describe()),
        ("lr", format!("{:?}", s.lr)),
        ("schedule", s.schedule.describe()),
        ("batch", s.batch.to_string()),
        ("loss_norm", s.loss_norm.as_str().to_string()),
        ("dropout", format!("{:?}", s.dropout)),
    ] {
        if !info.provenance.iter().any(|(kk, _)| kk == k) {
            info.provenance.push((k.to_string(), v));
        }
    }
    crate::export::write_model(&opts.out, &trainer.backend().params()?, opts.dtype, &info)?;
    Ok(summary)
}
