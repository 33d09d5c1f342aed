//! Training-step timing on synthetic data (the `unet-train bench` subcommand): how many seconds
//! one SGD step (forward, loss, backward, update) takes for a configuration, tile and batch on
//! the CPU backend. A measurement tool, not a test.

use std::time::Instant;

use ndarray::{Array3, Array4};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use unet_core::{Config, Geometry};

use crate::backend::cpu::CpuBackend;
use crate::backend::Backend;
use crate::error::Result;
use crate::init::he_init;
use crate::loss::LossNorm;
use crate::optim::{Optimizer, OptimizerKind};
use crate::train::OwnedBatch;

/// Timings of [`time_steps`].
#[derive(Debug, Clone, PartialEq)]
pub struct BenchResult {
    /// Seconds of each timed step (after one untimed warm-up step).
    pub step_secs: Vec<f64>,
    /// Output size of one tile.
    pub output: (usize, usize),
    /// Parameters of the model.
    pub params: usize,
    /// Approximate floating-point operations of one step: 3 × the forward FLOPs of
    /// [`unet_core::Plan::flops`] × batch (forward, input gradient, weight gradient).
    pub step_flops: f64,
}

impl BenchResult {
    /// Throughput in GFLOP/s at the median step time.
    pub fn gflops(&self) -> f64 {
        self.step_flops / self.median() / 1e9
    }

    /// Median of [`BenchResult::step_secs`].
    pub fn median(&self) -> f64 {
        let mut v = self.step_secs.clone();
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
    }
}

/// Times `steps` training steps of `config` on random `batch × tile²` batches (one warm-up step
/// first). Dropout 0.5, paper SGD.
pub fn time_steps(config: &Config, tile: usize, batch: usize, steps: usize) -> Result<BenchResult> {
    let (oh, ow) = Geometry::new(config.levels, config.padding)?.output_size(tile, tile)?;
    let fwd = unet_core::Plan::new(config, tile, tile)?
        .flops()
        .ok_or(unet_core::Error::Overflow)?;
    let step_flops = 3.0 * fwd as f64 * batch as f64;
    let params = he_init(config, 1)?;
    let n = params.numel();
    let opt = Optimizer::new(OptimizerKind::paper_sgd(), 0.0, &params);
    let mut be = CpuBackend::new(params, opt);
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let b = OwnedBatch {
        input: Array4::from_shape_simple_fn((batch, config.in_channels, tile, tile), || {
            rng.random_range(0.0f32..1.0)
        }),
        target: Array3::from_shape_simple_fn((batch, oh, ow), || {
            rng.random_range(0..config.num_classes.min(256)) as u8
        }),
        weight: Array3::from_shape_simple_fn((batch, oh, ow), || rng.random_range(0.5f32..2.0)),
    };
    let mut secs = Vec::with_capacity(steps);
    for s in 0..=steps {
        let t = Instant::now();
        let d = crate::backend::Dropout {
            p: 0.5,
            seed: 3,
            step: s as u64,
        };
        be.train_step(&b.view(), LossNorm::Pixels, Some(d), 1e-3)?;
        if s > 0 {
            secs.push(t.elapsed().as_secs_f64());
        }
    }
    Ok(BenchResult {
        step_secs: secs,
        output: (oh, ow),
        params: n,
        step_flops,
    })
}
