//! # unet-core
//!
//! Runs a trained U-Net (Ronneberger, Fischer & Brox, 2015) on caller-provided buffers, with no
//! heap at all: `#![no_std]` and no `alloc` anywhere in the dependency graph. Weights are read in
//! place from the bytes of a safetensors file (flash, mmap or a `Vec`), and the exact scratch
//! size of a tile is known before the first run.
//!
//! ```no_run
//! # fn demo(bytes: &[u8], input: &[f32], scratch: &mut [f32], labels: &mut [u8]) -> Result<(), unet_core::Error> {
//! use unet_core::{Model, Output};
//! let model = Model::from_safetensors(bytes)?;   // borrows bytes, validates every tensor
//! let plan = model.plan(572, 572)?;              // checks the geometry: 572² → 388²
//! assert!(scratch.len() >= plan.scratch_len());  // exact f32 count, known up front
//! model.forward(&plan, input, scratch, Output::Labels8(labels))?;
//! # Ok(()) }
//! ```
//!
//! Modules: [`safetensors`] (the file reader), [`arch`] (parameter names and shapes),
//! [`geometry`] (legal sizes, halo), [`plan`] (scratch layout), [`conv`] (the layers), [`winograd`] (fast 3×3 convolutions), [`gemm`] (their packed GEMM),
//! [`model`] and the forward pass; whole frames: [`frame`] (normalise, tile, stitch),
//! [`tile`] (overlap-tile layout), [`mirror`] (border extrapolation), [`normalize`],
//! [`histogram`], [`exec`] (the executor seam for several cores).
#![cfg_attr(not(feature = "std"), no_std)]
#![deny(missing_docs)]
#![forbid(unsafe_op_in_unsafe_fn)]
// `Error` is `Copy` and carries two shapes so that a shape mismatch names expected and found
// dimensions without an allocator; it is ~170 bytes, returned only on failure paths.
#![allow(clippy::result_large_err)]

pub mod arch;
pub mod conv;
pub mod error;
pub mod exec;
mod forward;
pub mod frame;
mod fuse;
pub mod gemm;
pub mod geometry;
pub mod histogram;
pub mod mirror;
pub mod model;
pub mod normalize;
pub mod plan;
pub mod pool;
pub mod safetensors;
mod single;
mod softmax;
#[cfg(feature = "std")]
pub mod synth;
pub mod tensor;
pub mod tile;
pub mod winograd;

pub use arch::{Config, Padding, ParamId};
pub use error::{Error, Shape};
pub use exec::{Executor, Sequential};
pub use forward::Output;
pub use frame::{
    FrameInput, FrameOptions, FrameOutput, FramePlan, FrameView, SampleType, TileChoice,
};
pub use geometry::Geometry;
pub use model::{Model, FORMAT_NAME, FORMAT_VERSION};
pub use normalize::{Affine, Normalization};
pub use plan::Plan;
pub use tensor::{DType, TensorView};
pub use winograd::ConvAlgo;
