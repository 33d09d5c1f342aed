//! libunet: a C ABI over unet-core (being built; see the project issues).
#![deny(missing_docs)]
