//! [`Params`]: every weight and bias of a U-Net as ndarray tensors with PyTorch shapes, in
//! [`Config::param`] order (the model file's order). The same type holds gradients and
//! optimiser moment buffers (one tensor per parameter, same shapes).
//!
//! Shapes: conv weight `[C_out, C_in, k, k]`, transposed conv weight `[C_in, C_out, 2, 2]`, bias
//! `[C_out]` (see [`unet_core::arch`]). Every tensor is contiguous and row-major (standard
//! layout); the fields are private so that this invariant holds for every `Params`.

use ndarray::{ArrayD, ArrayViewMutD, IxDyn};
use unet_core::{Config, Model, ParamId};

use crate::error::{Result, TrainError};

/// Weights and biases (or gradients, or optimiser buffers) of one U-Net.
#[derive(Debug, Clone, PartialEq)]
pub struct Params {
    config: Config,
    ids: Vec<ParamId>,
    tensors: Vec<ArrayD<f32>>,
}

impl Params {
    /// All-zero tensors for `config` (validated first).
    pub fn zeros(config: &Config) -> Result<Self> {
        config.validate()?;
        let n = config.param_count();
        let mut ids = Vec::with_capacity(n);
        let mut tensors = Vec::with_capacity(n);
        for k in 0..n {
            let id = config.param(k).ok_or(unet_core::Error::Overflow)?;
            let shape = config.param_shape(id).ok_or(unet_core::Error::Overflow)?;
            ids.push(id);
            tensors.push(ArrayD::zeros(IxDyn(shape.dims())));
        }
        Ok(Params {
            config: *config,
            ids,
            tensors,
        })
    }

    /// Zeros with the same config and shapes as `self`.
    pub fn zeros_like(&self) -> Self {
        Params {
            config: self.config,
            ids: self.ids.clone(),
            tensors: self
                .tensors
                .iter()
                .map(|t| ArrayD::zeros(t.raw_dim()))
                .collect(),
        }
    }

    /// Copies every parameter out of a loaded model file (any stored dtype, converted to f32).
    pub fn from_model(model: &Model<'_>) -> Result<Self> {
        let mut p = Params::zeros(model.config())?;
        for k in 0..p.len() {
            let id = p.ids[k];
            let view = model
                .param(id)
                .ok_or(unet_core::Error::MissingTensor { param: id })?;
            view.read_into(0, p.data_mut(k));
        }
        Ok(p)
    }

    /// The architecture.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Number of tensors (`10·levels − 4`).
    pub fn len(&self) -> usize {
        self.tensors.len()
    }

    /// Always false (a U-Net has at least 6 tensors); for clippy's `len_without_is_empty`.
    pub fn is_empty(&self) -> bool {
        self.tensors.is_empty()
    }

    /// Identity of tensor `k`.
    pub fn id(&self, k: usize) -> ParamId {
        self.ids[k]
    }

    /// Tensor `k` (PyTorch shape, standard layout). Panics if `k >= len()`.
    pub fn tensor(&self, k: usize) -> &ArrayD<f32> {
        &self.tensors[k]
    }

    /// Mutable view of tensor `k` (the layout cannot change through it).
    pub fn tensor_mut(&mut self, k: usize) -> ArrayViewMutD<'_, f32> {
        self.tensors[k].view_mut()
    }

    /// Elements of tensor `k`, row-major.
    pub fn data(&self, k: usize) -> &[f32] {
        // Standard layout is an invariant of `Params` (tensors are only created by `zeros`).
        self.tensors[k]
            .as_slice()
            .expect("Params tensors are contiguous")
    }

    /// Mutable elements of tensor `k`, row-major.
    pub fn data_mut(&mut self, k: usize) -> &mut [f32] {
        self.tensors[k]
            .as_slice_mut()
            .expect("Params tensors are contiguous")
    }

    /// Mutable elements of a weight tensor and of the bias that follows it in file order:
    /// `(data(k), data(k + 1))`. Panics if `k + 1 >= len()`.
    pub fn weight_bias_mut(&mut self, k: usize) -> (&mut [f32], &mut [f32]) {
        let (a, b) = self.tensors.split_at_mut(k + 1);
        (
            a[k].as_slice_mut().expect("Params tensors are contiguous"),
            b[0].as_slice_mut().expect("Params tensors are contiguous"),
        )
    }

    /// Elements of parameter `p`; `None` if `p` is not part of this config.
    pub fn get(&self, p: ParamId) -> Option<&[f32]> {
        Some(self.data(self.config.param_index(p)?))
    }

    /// Mutable elements of parameter `p`.
    pub fn get_mut(&mut self, p: ParamId) -> Option<&mut [f32]> {
        let k = self.config.param_index(p)?;
        Some(self.data_mut(k))
    }

    /// `(id, tensor)` pairs in file order.
    pub fn iter(&self) -> impl Iterator<Item = (ParamId, &ArrayD<f32>)> + '_ {
        self.ids.iter().copied().zip(self.tensors.iter())
    }

    /// Total number of scalars.
    pub fn numel(&self) -> usize {
        self.tensors.iter().map(|t| t.len()).sum()
    }

    /// Sets every element to zero.
    pub fn fill_zero(&mut self) {
        for t in &mut self.tensors {
            t.fill(0.0);
        }
    }

    /// `self += other` element-wise; errors if the configs differ.
    pub fn add_assign(&mut self, other: &Params) -> Result<()> {
        self.check_same(other)?;
        for (a, b) in self.tensors.iter_mut().zip(&other.tensors) {
            *a += b;
        }
        Ok(())
    }

    /// `self *= s` element-wise.
    pub fn scale(&mut self, s: f32) {
        for t in &mut self.tensors {
            t.mapv_inplace(|v| v * s);
        }
    }

    /// Errors unless `other` has the same config (hence the same shapes).
    pub fn check_same(&self, other: &Params) -> Result<()> {
        if self.config != other.config {
            return Err(TrainError::invalid(format!(
                "parameter sets of different architectures: {:?} vs {:?}",
                self.config, other.config
            )));
        }
        Ok(())
    }

    /// Largest `|a − b|` over all elements (configs must match; `inf` otherwise).
    pub fn max_abs_diff(&self, other: &Params) -> f32 {
        if self.config != other.config {
            return f32::INFINITY;
        }
        self.tensors
            .iter()
            .zip(&other.tensors)
            .flat_map(|(a, b)| a.iter().zip(b.iter()).map(|(x, y)| (x - y).abs()))
            .fold(0.0, f32::max)
    }

    /// True if every element is finite.
    pub fn all_finite(&self) -> bool {
        self.tensors.iter().all(|t| t.iter().all(|v| v.is_finite()))
    }
}
