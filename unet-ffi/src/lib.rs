//! # libunet
//!
//! A C ABI over [`unet_core`]: load a U-Net model file once, then segment tiles from any number
//! of threads into buffers the caller owns. The header `include/unet.h` is generated from this
//! crate by cbindgen (see `build.rs`); `include/unet.hpp` wraps it in C++17 RAII classes.
//!
//! Conventions (after rustls-ffi):
//! - every entry point returns a [`unet_status`] with stable numbers, runs behind a panic
//!   boundary ([`boundary`]) and checks every pointer (NULL, alignment, size, overlap) before
//!   building a Rust reference from it;
//! - outputs are written only on success; the detail of a failure is kept per thread
//!   ([`unet_last_error`]);
//! - handles are `Box`es given to C and taken back by `_free` ([`handle`]); a `const` handle is
//!   immutable and may be shared by threads.
//!
//! Modules: [`status`] (codes, messages, version), [`model`] (the model handle and its
//! queries), [`tile`] (one tile), [`output`] (output kinds).
#![deny(missing_docs)]
#![forbid(unsafe_op_in_unsafe_fn)]

mod boundary;
mod handle;
pub mod model;
mod owned;
pub mod output;
pub mod status;
pub mod tile;

pub use model::{unet_model, unet_padding};
pub use output::unet_output;
pub use status::{unet_last_error, unet_status, unet_status_message, unet_version};
