//! unet-train: training for unet models (being built; see the project issues).
#![deny(missing_docs)]

pub mod augment;
pub mod components;
pub mod data;
pub mod edt;
pub mod image_norm;
pub mod metrics;
pub mod sampler;
pub mod weight_map;
