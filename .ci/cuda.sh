#!/usr/bin/env bash
# CUDA backend checks on a machine without a GPU (see unet-train/src/backend/cuda/mod.rs):
# build and clippy with the feature, NVRTC compilation and `ptxas -v` (sm_80, sm_90, no spills)
# of every kernel, the kernels compiled for the host against the CPU backend, the whole CUDA
# engine on that emulation against the CPU backend, and the GPU tests' skip path.
# Installs the two NVIDIA wheels it needs (pinned). Run from anywhere: `bash .ci/cuda.sh`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

NVRTC_WHEEL=nvidia-cuda-nvrtc-cu12==12.8.93
NVCC_WHEEL=nvidia-cuda-nvcc-cu12==12.8.93   # ships ptxas
python3 -m pip install --quiet --disable-pip-version-check "$NVRTC_WHEEL" "$NVCC_WHEEL"

nvidia=$(python3 -c 'import nvidia.cuda_nvrtc as m, os; print(os.path.dirname(list(m.__path__)[0]))')
export UNET_NVRTC_LIB_DIR="$nvidia/cuda_nvrtc/lib"
export UNET_PTXAS="$nvidia/cuda_nvcc/bin/ptxas"
export UNET_REQUIRE_NVRTC=1   # a missing NVRTC or ptxas fails instead of skipping

cargo build -p unet-train --features cuda
# `cuda-emu` = `cuda` + the kernels compiled for the host (tests only); one feature set below so
# that clippy and the tests share one build.
cargo clippy -p unet-train --features cuda-emu --all-targets -- -D warnings
cargo test -p unet-train --features cuda-emu --test cuda_nvrtc --test cuda_parity -- --nocapture
cargo test -p unet-train --features cuda-emu --lib backend::device
