//! The CUDA backend (feature `cuda`): [`CudaBackend`] trains on one NVIDIA GPU through cudarc
//! (dynamic loading: building needs neither the CUDA toolkit nor a driver).
//!
//! # What runs where
//! Parameters, gradients and optimiser state live on the device as flat f32 vectors (tensors in
//! file order); the activations of a batch are device tensors `[B, C, H, W]`. Host↔device
//! copies: the batch in (input, targets, weights, dropout masks), the loss and one error flag
//! out per step, and parameters / gradients / optimiser state only when asked
//! ([`Backend::params`], checkpoints). f32 throughout (the loss sums in f64 as on the CPU).
//! - GEMMs: cuBLAS `sgemm_strided_batched` — 3×3 convolutions as `W · im2col(X)` in blocks of
//!   output rows (at most [`engine::COLS_BUDGET`] column elements per batch), the 2×2
//!   up-convolution as `Wᵀ · X` plus a scatter, the 1×1 head.
//! - Own kernels (`kernels/*.cu`, compiled at run time by NVRTC, `--fmad=false` so that they
//!   round as the CPU code): im2col/col2im, bias + ReLU and ReLU backward, per-channel bias
//!   gradients, max-pool forward/backward, crop+concat and its adjoint, the up-convolution
//!   scatter/gather, dropout masks, weighted soft-max cross-entropy and its f64 reduction,
//!   SGD (momentum, Nesterov, dampening, weight decay) and Adam with `optim.rs`'s formulas.
//! - The network code ([`engine::Engine`]) is written against the small [`gpu::Gpu`] trait;
//!   [`CudaBackend`] is `Engine<CudaGpu>`.
//!
//! # Verified without a GPU (CI: `bash .ci/cuda.sh`)
//! - Every `.cu` file compiles with NVRTC 12.8 (from the `nvidia-cuda-nvrtc-cu12` wheel) for
//!   `compute_80` and `compute_90`, and `ptxas -v` (from `nvidia-cuda-nvcc-cu12`) assembles
//!   the PTX for `sm_80` and `sm_90` with no register spills (`tests/cuda_nvrtc.rs`).
//! - The same `.cu` sources compiled as C++ for the host (feature `cuda-emu`, `host_emu.h`:
//!   thread indices as thread-locals, `__syncthreads` as a real barrier over one std::thread
//!   per CUDA thread) match the CPU backend kernel by kernel on random inputs, including sizes
//!   that are not multiples of the block size (`tests/cuda_parity.rs`, module `emu`).
//! - The whole [`engine::Engine`] — buffer layout, the row-major → cuBLAS column-major GEMM
//!   mapping, batching, the order of operations, loss, optimisers — runs on that host
//!   emulation (SGEMM by matrixmultiply with cuBLAS's strided-batched, column-major contract)
//!   and matches the CPU backend: forward, loss, gradients, several SGD/Adam steps, dropout,
//!   two shards adding up to the whole batch, a short training run (`tests/cuda_parity.rs`).
//! - Kernel argument lists are checked at every launch against [`kernels::KERNELS`], and that
//!   table against the parameter types of the compiled sources.
//! - Without a driver nothing panics: [`device`](crate::backend::device) reports
//!   "no driver found (libcuda not present)", [`CudaBackend::cuda`](Engine::cuda) returns an error.
//!
//! # Only a GPU can verify
//! The real cuBLAS calls and their handle/stream binding, driver-side PTX JIT and module
//! loading, launch limits, memory use and speed, and the numerics of `exp`/`log` in device
//! code (the parity test's tolerances cover them). Run, on a machine with an NVIDIA driver,
//! the CUDA toolkit libraries (or the `nvidia-*-cu12` wheels: libcublas on `LD_LIBRARY_PATH`,
//! NVRTC there or in `UNET_NVRTC_LIB_DIR`):
//!
//! ```text
//! UNET_REQUIRE_GPU=1 cargo test -p unet-train --features cuda --test cuda_parity -- --nocapture
//! ```
//!
//! Without a driver those tests print `skipped: no CUDA driver` (and fail if
//! `UNET_REQUIRE_GPU=1`).
//!
//! # Several GPUs (planned)
//! Data parallelism goes through the [`Shard`](crate::backend::Shard) seam: one `CudaBackend`
//! per GPU, each computing [`Backend::compute_shard_gradients`] on its slice of the batch
//! with the whole batch's loss denominator and dropout sample offset (so shard gradients add
//! up to the batch's; checked on the emulation), then an all-reduce (sum) of the flat
//! gradient vectors — one NCCL `ncclAllReduce` over the single contiguous gradient buffer each
//! engine already keeps (cudarc has NCCL bindings, feature `nccl`) — and the same
//! `apply_gradients` on every replica. Until then, [`Backend::gradients`] /
//! [`Backend::set_gradients`] do the all-reduce through the host.
//!
//! # Known costs (not yet measured on a GPU)
//! Every layer allocates its outputs and scratch per call (zero-filled, stream-ordered); the
//! evaluation [`Backend::forward`] keeps all activations like training does; weight
//! gradients are accumulated by one GEMM per sample and row block. A persistent workspace per
//! batch shape and a batched weight-gradient GEMM are the obvious next steps once a GPU can
//! time them.

pub mod engine;
pub mod gpu;
#[allow(unused_imports)] // for the doc links above
use crate::backend::Backend;
pub mod kernels;

#[cfg(feature = "cuda-emu")]
pub mod emu;

use crate::error::Result;
use crate::optim::Optimizer;
use crate::params::Params;

pub use engine::Engine;
pub use gpu::CudaGpu;

/// The CUDA backend: the network engine on a CUDA device.
pub type CudaBackend = Engine<CudaGpu>;

impl Engine<CudaGpu> {
    /// A backend on CUDA device `ordinal` training `params` with `optimizer`. Errors (never
    /// panics) if there is no driver, no such device, or cuBLAS / NVRTC cannot be loaded.
    pub fn cuda(ordinal: usize, params: Params, optimizer: Optimizer) -> Result<Self> {
        Engine::new(CudaGpu::new(ordinal)?, params, optimizer)
    }
}

/// One line per CUDA device (`cuda:N: NAME, X MiB, compute capability M.m`), or an error
/// (no driver, driver failure).
pub fn device_info() -> Result<Vec<String>> {
    gpu::device_lines()
}
