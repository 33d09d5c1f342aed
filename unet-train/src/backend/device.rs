//! Choosing a compute device: [`Device`] (parsed from `cpu`, `cuda` or `cuda:N`),
//! [`list_devices`] (what `unet-train info --devices` prints) and [`make_backend`] (a boxed
//! [`Backend`] for a device).
//!
//! Compiled with and without the `cuda` feature. Without it, every CUDA request is a clear
//! [`TrainError::Device`] ("not compiled in; rebuild with --features cuda"); with it but
//! without a driver (`libcuda` cannot be loaded), the error says so. Nothing here panics for a
//! missing driver or library.

use super::cpu::CpuBackend;
use super::Backend;
use crate::error::{Result, TrainError};
use crate::optim::Optimizer;
use crate::params::Params;

/// A compute device for training.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Device {
    /// The CPU backend (all cores through rayon).
    Cpu,
    /// CUDA device with this ordinal (`cuda` = `cuda:0`).
    Cuda(usize),
}

impl Device {
    /// Parses `cpu`, `cuda` (ordinal 0) or `cuda:N`.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "cpu" => Ok(Device::Cpu),
            "cuda" => Ok(Device::Cuda(0)),
            _ => match s.strip_prefix("cuda:").map(str::parse::<usize>) {
                Some(Ok(n)) => Ok(Device::Cuda(n)),
                _ => Err(TrainError::invalid(format!(
                    "device '{s}': expected cpu, cuda or cuda:N"
                ))),
            },
        }
    }
}

impl std::fmt::Display for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Device::Cpu => write!(f, "cpu"),
            Device::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

/// True if this build has the CUDA backend (feature `cuda`).
pub fn cuda_compiled() -> bool {
    cfg!(feature = "cuda")
}

/// One human-readable line per device: first the CPU (`cpu: N cores`), then either one line
/// per CUDA device (`cuda:N: NAME, X MiB, compute capability M.m`), or a single line saying why
/// there is none: `cuda: not compiled in; rebuild with --features cuda`, `cuda: no driver found
/// (libcuda not present)`, or the driver's error.
pub fn list_devices() -> Vec<String> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut lines = vec![format!(
        "cpu: {cores} cores ({} rayon threads)",
        rayon::current_num_threads()
    )];
    lines.extend(cuda_lines());
    lines
}

#[cfg(not(feature = "cuda"))]
fn cuda_lines() -> Vec<String> {
    vec!["cuda: not compiled in; rebuild with --features cuda".to_string()]
}

#[cfg(feature = "cuda")]
fn cuda_lines() -> Vec<String> {
    match super::cuda::device_info() {
        Ok(v) if v.is_empty() => vec!["cuda: driver present, no CUDA device".to_string()],
        Ok(v) => v,
        Err(e) => vec![format!("cuda: {}", device_message(&e))],
    }
}

#[cfg(feature = "cuda")]
fn device_message(e: &TrainError) -> String {
    match e {
        TrainError::Device(m) => m.clone(),
        other => other.to_string(),
    }
}

/// A backend on `device` training `params` with `optimizer` (made for the same shapes). For
/// [`Device::Cuda`] without the `cuda` feature, without a driver, or with a bad ordinal this is
/// a [`TrainError::Device`] error, never a panic.
pub fn make_backend(
    device: Device,
    params: Params,
    optimizer: Optimizer,
) -> Result<Box<dyn Backend>> {
    match device {
        Device::Cpu => Ok(Box::new(CpuBackend::new(params, optimizer))),
        Device::Cuda(ordinal) => make_cuda(ordinal, params, optimizer),
    }
}

#[cfg(feature = "cuda")]
fn make_cuda(ordinal: usize, params: Params, optimizer: Optimizer) -> Result<Box<dyn Backend>> {
    Ok(Box::new(super::cuda::CudaBackend::cuda(
        ordinal, params, optimizer,
    )?))
}

#[cfg(not(feature = "cuda"))]
fn make_cuda(ordinal: usize, _params: Params, _optimizer: Optimizer) -> Result<Box<dyn Backend>> {
    Err(TrainError::device(format!(
        "cuda:{ordinal}: CUDA support is not compiled in; rebuild with --features cuda"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_display() {
        assert_eq!(Device::parse("cpu").unwrap(), Device::Cpu);
        assert_eq!(Device::parse("cuda").unwrap(), Device::Cuda(0));
        assert_eq!(Device::parse("cuda:3").unwrap(), Device::Cuda(3));
        for bad in ["", "gpu", "cuda:", "cuda:x", "cuda:-1", "CPU", "cuda:1:2"] {
            assert!(Device::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(Device::Cuda(2).to_string(), "cuda:2");
        assert_eq!(
            Device::parse(&Device::Cpu.to_string()).unwrap(),
            Device::Cpu
        );
    }

    #[test]
    fn listing_starts_with_the_cpu_and_names_cuda() {
        let l = list_devices();
        assert!(l[0].starts_with("cpu: "), "{l:?}");
        assert!(
            l.len() >= 2 && l[1..].iter().all(|s| s.starts_with("cuda")),
            "{l:?}"
        );
        if !cuda_compiled() {
            assert_eq!(l[1], "cuda: not compiled in; rebuild with --features cuda");
        }
    }
}
