//! The CPU backend: explicit forward and backward passes over ndarray tensors, GEMMs by
//! `matrixmultiply` (its `threading` feature splits each GEMM over up to 4 threads, count from
//! the `MATMUL_NUM_THREADS` environment variable read at the first GEMM), rayon across the
//! samples of a batch and inside im2col/col2im, scatters and element-wise passes.
//!
//! Results do not depend on the thread count: per-sample gradients are summed in sample order
//! and matrixmultiply never splits the inner dimension.

pub mod conv;
pub mod gemm;
pub mod network;
pub mod pool;
pub mod skip;
pub mod upconv;

use ndarray::{Array4, ArrayView4, Axis};
use rayon::prelude::*;
use unet_core::Config;

use super::{dropout, Backend, BatchView, Dropout, Shard, StepStats};
use crate::error::{Result, TrainError};
use crate::loss;
use crate::optim::{OptimState, Optimizer};
use crate::params::Params;

/// Parameters, gradients and optimiser in host memory.
#[derive(Debug, Clone)]
pub struct CpuBackend {
    params: Params,
    grads: Params,
    optimizer: Optimizer,
}

impl CpuBackend {
    /// A backend training `params` with `optimizer` (made for the same shapes).
    pub fn new(params: Params, optimizer: Optimizer) -> Self {
        let grads = params.zeros_like();
        CpuBackend {
            params,
            grads,
            optimizer,
        }
    }

    /// The parameters (borrowed).
    pub fn params_ref(&self) -> &Params {
        &self.params
    }

    /// The optimiser.
    pub fn optimizer(&self) -> &Optimizer {
        &self.optimizer
    }
}

impl Backend for CpuBackend {
    fn name(&self) -> &'static str {
        "cpu"
    }

    fn config(&self) -> Config {
        *self.params.config()
    }

    fn params(&self) -> Result<Params> {
        Ok(self.params.clone())
    }

    fn set_params(&mut self, params: &Params) -> Result<()> {
        self.params.check_same(params)?;
        self.params = params.clone();
        Ok(())
    }

    fn forward(&self, input: ArrayView4<'_, f32>) -> Result<Array4<f32>> {
        let b = input.dim().0;
        let outs: Vec<_> = (0..b)
            .into_par_iter()
            .map(|i| network::forward_eval(&self.params, input.index_axis(Axis(0), i)))
            .collect::<Result<_>>()?;
        let (k, h, w) = outs
            .first()
            .map(|o| o.dim())
            .ok_or_else(|| TrainError::invalid("empty batch"))?;
        let mut out = Array4::<f32>::zeros((b, k, h, w));
        for (i, o) in outs.into_iter().enumerate() {
            out.index_axis_mut(Axis(0), i).assign(&o);
        }
        Ok(out)
    }

    fn compute_shard_gradients(
        &mut self,
        batch: &BatchView<'_>,
        shard: Shard,
        dropout: Option<Dropout>,
    ) -> Result<StepStats> {
        let cfg = self.config();
        batch.validate(&cfg)?;
        let b = batch.input.dim().0;
        let denom = shard.denominator;
        if !(denom.is_finite() && denom >= 0.0) {
            return Err(TrainError::invalid(format!(
                "loss denominator {denom} must be finite and >= 0"
            )));
        }
        let scale = if denom > 0.0 { 1.0 / denom } else { 0.0 };
        let masks = match dropout {
            Some(d) => {
                let (_, _, h, w) = batch.input.dim();
                let (sh, sw) = network::sizes(&cfg, h, w)?;
                let l = cfg.levels - 1;
                let c = cfg.channels(l).ok_or(unet_core::Error::Overflow)?;
                dropout::masks(&d, shard.first_sample, b, (c, sh.enc_out[l], sw.enc_out[l]))?
            }
            None => None,
        };
        let params = &self.params;
        let per_sample: Vec<(f64, Params)> = (0..b)
            .into_par_iter()
            .map(|i| {
                let mask = masks.as_ref().map(|m| &m[i]);
                let (logits, acts) =
                    network::forward(params, batch.input.index_axis(Axis(0), i), mask)?;
                let (sum, dlogits) = loss::sample_loss(
                    logits.view(),
                    batch.target.index_axis(Axis(0), i),
                    batch.weight.index_axis(Axis(0), i),
                    scale,
                )?;
                let mut g = params.zeros_like();
                network::backward(params, &acts, mask, dlogits.view(), &mut g)?;
                Ok((sum, g))
            })
            .collect::<Result<_>>()?;
        let mut total = 0.0f64;
        self.grads.fill_zero();
        for (sum, g) in &per_sample {
            total += sum;
            self.grads.add_assign(g)?;
        }
        Ok(StepStats {
            loss: total * scale,
            denominator: denom,
            tiles: b,
        })
    }

    fn gradients(&self) -> Result<Params> {
        Ok(self.grads.clone())
    }

    fn set_gradients(&mut self, grads: &Params) -> Result<()> {
        self.grads.check_same(grads)?;
        self.grads = grads.clone();
        Ok(())
    }

    fn apply_gradients(&mut self, lr: f32) -> Result<()> {
        self.optimizer.step(&mut self.params, &self.grads, lr)
    }

    fn optimizer_state(&self) -> Result<OptimState> {
        Ok(self.optimizer.state().clone())
    }

    fn set_optimizer_state(&mut self, state: OptimState) -> Result<()> {
        self.optimizer.set_state(state)
    }
}
