//! unet-train: training for unet models (being built; see the project issues).
#![deny(missing_docs)]
