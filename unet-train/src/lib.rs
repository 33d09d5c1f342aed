//! # unet-train
//!
//! Trains U-Nets (Ronneberger et al. 2015) the way the paper does and exports model files that
//! unet-core, libunet and PyTorch read.
//!
//! Data side: [`data`] (image/label folders), [`weight_map`] (targets and the paper's weight
//! map, with [`edt`]), [`augment`] (elastic deformation and friends), [`sampler`] (training
//! tiles), [`image_norm`], [`metrics`] and [`components`].
//!
//! Network side: [`params`] (tensors in file order), [`init`] (He), [`backend`] (the `Backend`
//! seam and the CPU backend with explicit forward/backward), [`loss`] (weighted soft-max
//! cross-entropy), [`optim`] (SGD with momentum, Adam), [`schedule`] (learning-rate schedules),
//! [`export`] (safetensors model files), [`checkpoint`] (resumable training state),
//! [`atomic_write`] (crash-safe file replacement), [`train`] (the loop), [`session`] (building
//! a fresh or resumed trainer), [`predict`] (overlap-tile whole-image prediction),
//! [`image_out`] (label/probability/overlay images), [`mod@bench`] (step timing), [`plot`]
//! (training-curve PNG charts), [`baseline`] (blur + Otsu threshold segmentation baseline),
//! [`dataset`] (data sets as the command line names them), [`evaluate`] (whole-image
//! segmentation and pooled validation metrics) and [`fetch`] (pinned sample data).
#![deny(missing_docs)]

pub mod atomic_write;
pub mod augment;
pub mod backend;
pub mod baseline;
pub mod bench;
pub mod checkpoint;
pub mod components;
pub mod data;
pub mod dataset;
pub mod edt;
pub mod error;
pub mod evaluate;
pub mod export;
pub mod fetch;
pub mod image_norm;
pub mod image_out;
pub mod init;
pub mod loss;
pub mod metrics;
pub mod optim;
pub mod params;
pub mod plot;
pub mod predict;
pub mod sampler;
pub mod schedule;
pub mod session;
pub mod train;
pub mod weight_map;

pub use error::{Result, TrainError};
