//! Optimisers with PyTorch's update rules (`torch.optim.SGD`, `torch.optim.Adam`), so that a
//! run can be compared step by step with PyTorch:
//!
//! - **SGD** with momentum `μ` and dampening `τ` (paper: `μ = 0.99`, `τ = 0`): `g ← ∇ + λθ`;
//!   on the first step `b ← g`, later `b ← μ·b + (1 − τ)·g`; `g ← g + μ·b` (Nesterov) or
//!   `g ← b`; `θ ← θ − η·g`. With `μ = 0` there is no buffer and `θ ← θ − η·g`.
//! - **Adam** (`β1`, `β2`, `ε`), `t` counting from 1: `g ← ∇ + λθ` (L2 penalty, as
//!   `torch.optim.Adam`, not AdamW); `m ← m + (1 − β1)(g − m)`; `v ← β2·v + (1 − β2)·g²`;
//!   `θ ← θ − (η / (1 − β1^t)) · m / (√v / √(1 − β2^t) + ε)`.
//!
//! `λ` is the optional weight decay (applied to biases too, as PyTorch does by default).

use crate::error::{Result, TrainError};
use crate::params::Params;

/// Which optimiser and its hyper-parameters (the learning rate comes from the schedule).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum OptimizerKind {
    /// Stochastic gradient descent with (optional) momentum.
    Sgd {
        /// Momentum `μ` (paper 0.99).
        momentum: f32,
        /// Dampening `τ` (PyTorch default 0).
        dampening: f32,
        /// Nesterov momentum.
        nesterov: bool,
    },
    /// Adam.
    Adam {
        /// `β1` (0.9).
        beta1: f32,
        /// `β2` (0.999).
        beta2: f32,
        /// `ε` (1e-8).
        eps: f32,
    },
}

impl OptimizerKind {
    /// The paper's SGD: momentum 0.99, no dampening, no Nesterov.
    pub fn paper_sgd() -> Self {
        OptimizerKind::Sgd {
            momentum: 0.99,
            dampening: 0.0,
            nesterov: false,
        }
    }

    /// Adam with PyTorch's defaults.
    pub fn adam() -> Self {
        OptimizerKind::Adam {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        }
    }

    /// Number of per-parameter buffers the optimiser keeps (SGD: 1 with momentum, else 0;
    /// Adam: 2).
    pub fn buffers(&self) -> usize {
        match *self {
            OptimizerKind::Sgd { momentum, .. } => usize::from(momentum != 0.0),
            OptimizerKind::Adam { .. } => 2,
        }
    }

    /// A `key=value` description (stored in checkpoints and model provenance), e.g.
    /// `sgd:momentum=0.99:dampening=0:nesterov=false`.
    pub fn describe(&self) -> String {
        match *self {
            OptimizerKind::Sgd {
                momentum,
                dampening,
                nesterov,
            } => {
                format!("sgd:momentum={momentum}:dampening={dampening}:nesterov={nesterov}")
            }
            OptimizerKind::Adam { beta1, beta2, eps } => {
                format!("adam:beta1={beta1}:beta2={beta2}:eps={eps}")
            }
        }
    }

    /// Parses [`OptimizerKind::describe`]'s spelling (missing keys take their defaults).
    pub fn parse(s: &str) -> Result<Self> {
        let mut it = s.split(':');
        let name = it.next().unwrap_or("");
        let mut kind = match name {
            "sgd" => OptimizerKind::Sgd {
                momentum: 0.0,
                dampening: 0.0,
                nesterov: false,
            },
            "adam" => OptimizerKind::adam(),
            _ => {
                return Err(TrainError::invalid(format!(
                    "optimizer '{s}': expected sgd or adam"
                )))
            }
        };
        for kv in it {
            let (k, v) = kv
                .split_once('=')
                .ok_or_else(|| TrainError::invalid(format!("optimizer '{s}': bad '{kv}'")))?;
            let f = || {
                v.parse::<f32>()
                    .map_err(|_| TrainError::invalid(format!("optimizer '{s}': bad number '{v}'")))
            };
            match (&mut kind, k) {
                (OptimizerKind::Sgd { momentum, .. }, "momentum") => *momentum = f()?,
                (OptimizerKind::Sgd { dampening, .. }, "dampening") => *dampening = f()?,
                (OptimizerKind::Sgd { nesterov, .. }, "nesterov") => {
                    *nesterov = v.parse().map_err(|_| {
                        TrainError::invalid(format!("optimizer '{s}': bad bool '{v}'"))
                    })?
                }
                (OptimizerKind::Adam { beta1, .. }, "beta1") => *beta1 = f()?,
                (OptimizerKind::Adam { beta2, .. }, "beta2") => *beta2 = f()?,
                (OptimizerKind::Adam { eps, .. }, "eps") => *eps = f()?,
                _ => {
                    return Err(TrainError::invalid(format!(
                        "optimizer '{s}': unknown key '{k}'"
                    )))
                }
            }
        }
        Ok(kind)
    }
}

/// The optimiser's mutable state: steps taken and the per-parameter buffers (SGD: momentum
/// buffer; Adam: `m`, `v`), each a [`Params`] shaped like the model.
#[derive(Debug, Clone, PartialEq)]
pub struct OptimState {
    /// Steps taken so far (`t` of Adam; SGD uses it to know its first step).
    pub step: u64,
    /// Buffers, [`OptimizerKind::buffers`] of them.
    pub buffers: Vec<Params>,
}

/// An optimiser bound to one parameter set's shapes.
#[derive(Debug, Clone)]
pub struct Optimizer {
    kind: OptimizerKind,
    weight_decay: f32,
    state: OptimState,
}

impl Optimizer {
    /// A fresh optimiser for parameters shaped like `params`.
    pub fn new(kind: OptimizerKind, weight_decay: f32, params: &Params) -> Self {
        let buffers = (0..kind.buffers()).map(|_| params.zeros_like()).collect();
        Optimizer {
            kind,
            weight_decay,
            state: OptimState { step: 0, buffers },
        }
    }

    /// The kind and hyper-parameters.
    pub fn kind(&self) -> OptimizerKind {
        self.kind
    }

    /// Weight decay `λ`.
    pub fn weight_decay(&self) -> f32 {
        self.weight_decay
    }

    /// The state (for checkpoints and for data-parallel replicas).
    pub fn state(&self) -> &OptimState {
        &self.state
    }

    /// Replaces the state; errors if the buffer count or shapes do not fit.
    pub fn set_state(&mut self, state: OptimState) -> Result<()> {
        if state.buffers.len() != self.state.buffers.len() {
            return Err(TrainError::invalid(format!(
                "optimizer state has {} buffers, {} needs {}",
                state.buffers.len(),
                self.kind.describe(),
                self.state.buffers.len()
            )));
        }
        for (a, b) in self.state.buffers.iter().zip(&state.buffers) {
            a.check_same(b)?;
        }
        self.state = state;
        Ok(())
    }

    /// One update of `params` with gradients `grads` and learning rate `lr`.
    pub fn step(&mut self, params: &mut Params, grads: &Params, lr: f32) -> Result<()> {
        params.check_same(grads)?;
        if let Some(b) = self.state.buffers.first() {
            params.check_same(b)?;
        }
        self.state.step += 1;
        let t = self.state.step;
        let wd = self.weight_decay;
        match self.kind {
            OptimizerKind::Sgd {
                momentum,
                dampening,
                nesterov,
            } => {
                for k in 0..params.len() {
                    let g = grads.data(k);
                    let p = params.data_mut(k);
                    if momentum == 0.0 {
                        for (p, &g) in p.iter_mut().zip(g) {
                            let g = if wd != 0.0 { g + wd * *p } else { g };
                            *p += -lr * g;
                        }
                        continue;
                    }
                    let b = self.state.buffers[0].data_mut(k);
                    for ((p, &g), b) in p.iter_mut().zip(g).zip(b.iter_mut()) {
                        let g = if wd != 0.0 { g + wd * *p } else { g };
                        *b = if t == 1 {
                            g
                        } else {
                            *b * momentum + (1.0 - dampening) * g
                        };
                        let d = if nesterov { g + momentum * *b } else { *b };
                        *p += -lr * d;
                    }
                }
            }
            OptimizerKind::Adam { beta1, beta2, eps } => {
                let bc1 = 1.0 - (beta1 as f64).powi(t.min(i32::MAX as u64) as i32);
                let bc2 = 1.0 - (beta2 as f64).powi(t.min(i32::MAX as u64) as i32);
                let step_size = (lr as f64 / bc1) as f32;
                let bc2_sqrt = bc2.sqrt() as f32;
                let (mb, vb) = self.state.buffers.split_at_mut(1);
                for k in 0..params.len() {
                    let g = grads.data(k);
                    let p = params.data_mut(k);
                    let m = mb[0].data_mut(k);
                    let v = vb[0].data_mut(k);
                    for (((p, &g), m), v) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut())
                    {
                        let g = if wd != 0.0 { g + wd * *p } else { g };
                        *m += (1.0 - beta1) * (g - *m);
                        *v = *v * beta2 + (1.0 - beta2) * g * g;
                        let denom = v.sqrt() / bc2_sqrt + eps;
                        *p += -step_size * (*m / denom);
                    }
                }
            }
        }
        Ok(())
    }
}
