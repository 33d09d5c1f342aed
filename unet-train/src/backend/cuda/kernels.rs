//! The CUDA C sources of the backend's own kernels (`kernels/*.cu`, embedded with
//! `include_str!`), the table of their parameter types, the launch arguments, and NVRTC
//! compilation.
//!
//! [`KERNELS`] is the single description of every kernel's parameters that both launchers use
//! ([`super::gpu::CudaGpu`] on a GPU and, in tests, the host emulation): every launch is checked
//! against it, and a test checks it against the parameter types of the compiled sources (the
//! host build of the same `.cu` files reports them), so a wrong argument type or order fails a
//! test instead of corrupting memory on a GPU.

use crate::error::{Result, TrainError};

/// One `.cu` file.
#[derive(Debug, Clone, Copy)]
pub struct Source {
    /// File name under `src/backend/cuda/kernels/`.
    pub file: &'static str,
    /// The CUDA C text.
    pub code: &'static str,
    /// The `extern "C" __global__` kernels it defines.
    pub kernels: &'static [&'static str],
}

/// Every kernel source, compiled one NVRTC program each.
pub const SOURCES: &[Source] = &[
    Source {
        file: "elementwise.cu",
        code: include_str!("kernels/elementwise.cu"),
        kernels: &[
            "bias_act_fwd",
            "relu_bwd",
            "mul_elem",
            "add_elem",
            "channel_sum_add",
        ],
    },
    Source {
        file: "im2col.cu",
        code: include_str!("kernels/im2col.cu"),
        kernels: &["im2col3x3", "col2im3x3_add"],
    },
    Source {
        file: "pool.cu",
        code: include_str!("kernels/pool.cu"),
        kernels: &["maxpool_fwd", "maxpool_bwd"],
    },
    Source {
        file: "skip.cu",
        code: include_str!("kernels/skip.cu"),
        kernels: &[
            "crop_concat",
            "split_crop_concat",
            "up_scatter",
            "up_gather",
        ],
    },
    Source {
        file: "loss.cu",
        code: include_str!("kernels/loss.cu"),
        kernels: &["softmax_xent", "sum_f64"],
    },
    Source {
        file: "optim.cu",
        code: include_str!("kernels/optim.cu"),
        kernels: &["sgd_plain", "sgd_momentum", "adam"],
    },
];

/// The C type of a kernel parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Any pointer (device address).
    Ptr,
    /// `int`.
    I32,
    /// `long long`.
    I64,
    /// `float`.
    F32,
    /// `double`.
    F64,
}

impl Kind {
    /// One-letter code (`p`, `i`, `l`, `f`, `d`), as the host build reports signatures.
    pub fn code(self) -> char {
        match self {
            Kind::Ptr => 'p',
            Kind::I32 => 'i',
            Kind::I64 => 'l',
            Kind::F32 => 'f',
            Kind::F64 => 'd',
        }
    }
}

/// A kernel launch argument.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Arg {
    /// A device address (0 = null).
    Ptr(u64),
    /// `int`.
    I32(i32),
    /// `long long`.
    I64(i64),
    /// `float`.
    F32(f32),
    /// `double`.
    F64(f64),
}

impl Arg {
    /// The parameter type this argument fills.
    pub fn kind(&self) -> Kind {
        match self {
            Arg::Ptr(_) => Kind::Ptr,
            Arg::I32(_) => Kind::I32,
            Arg::I64(_) => Kind::I64,
            Arg::F32(_) => Kind::F32,
            Arg::F64(_) => Kind::F64,
        }
    }

    /// The argument's bits in the low bytes of a `u64` (little-endian, as the host emulation
    /// decodes them).
    pub fn bits(&self) -> u64 {
        match *self {
            Arg::Ptr(v) => v,
            Arg::I32(v) => v as u32 as u64,
            Arg::I64(v) => v as u64,
            Arg::F32(v) => v.to_bits() as u64,
            Arg::F64(v) => v.to_bits(),
        }
    }
}

use Kind::{Ptr as P, F32 as F, F64 as D, I32 as I, I64 as L};

/// Parameter types of every kernel, in order (checked against the sources by a test).
pub const KERNELS: &[(&str, &[Kind])] = &[
    ("bias_act_fwd", &[P, P, L, I, L, I]),
    ("relu_bwd", &[P, P, L]),
    ("mul_elem", &[P, P, P, L]),
    ("add_elem", &[P, P, L]),
    ("channel_sum_add", &[P, P, I, I, L]),
    ("im2col3x3", &[P, P, I, I, I, I, I, I, I, I]),
    ("col2im3x3_add", &[P, P, I, I, I, I, I, I, I, I]),
    ("maxpool_fwd", &[P, P, P, L, I, I]),
    ("maxpool_bwd", &[P, P, P, P, L, I, I]),
    ("crop_concat", &[P, P, P, I, I, I, I, I, I, I, I, I]),
    ("split_crop_concat", &[P, P, P, I, I, I, I, I, I, I, I, I]),
    ("up_scatter", &[P, P, P, I, I, I, I]),
    ("up_gather", &[P, P, I, I, I, I]),
    ("softmax_xent", &[P, P, P, P, P, I, I, L, D, P]),
    ("sum_f64", &[P, L, P]),
    ("sgd_plain", &[P, P, L, F, F]),
    ("sgd_momentum", &[P, P, P, L, F, F, F, F, I, I]),
    ("adam", &[P, P, P, P, L, F, F, F, F, F, F]),
];

/// Kernels that must be launched with exactly [`REDUCE_BLOCK`] threads per block (they reduce
/// in a fixed-size shared array and use `__syncthreads`).
pub const REDUCTIONS: &[&str] = &["channel_sum_add", "sum_f64"];

/// Block size of the reduction kernels.
pub const REDUCE_BLOCK: u32 = 256;

/// Checks `args` against [`KERNELS`] for `name`.
pub fn check_args(name: &str, args: &[Arg]) -> Result<()> {
    let (_, kinds) = KERNELS
        .iter()
        .find(|(n, _)| *n == name)
        .ok_or_else(|| TrainError::device(format!("unknown kernel {name}")))?;
    if kinds.len() != args.len() || kinds.iter().zip(args).any(|(k, a)| *k != a.kind()) {
        return Err(TrainError::device(format!(
            "kernel {name}: arguments {:?} do not match its parameters {kinds:?}",
            args.iter().map(Arg::kind).collect::<Vec<_>>()
        )));
    }
    Ok(())
}

/// Environment variable naming a directory that holds `libnvrtc.so.12` (e.g. the
/// `nvidia/cuda_nvrtc/lib` directory of the `nvidia-cuda-nvrtc-cu12` Python wheel). Optional:
/// without it the library is looked up by the dynamic loader (`LD_LIBRARY_PATH`, ldconfig).
pub const NVRTC_DIR_ENV: &str = "UNET_NVRTC_LIB_DIR";

/// Loads `libnvrtc.so.12` (or `libnvrtc.so`) from `dir` and keeps it loaded for the process,
/// so that cudarc's later lookup by name finds it (the dynamic loader matches the library's
/// soname). Errors if neither file loads.
pub fn preload_nvrtc(dir: &std::path::Path) -> Result<()> {
    let mut tried = Vec::new();
    for name in ["libnvrtc.so.12", "libnvrtc.so"] {
        let path = dir.join(name);
        if !path.exists() {
            tried.push(path);
            continue;
        }
        // SAFETY: loading libnvrtc runs its initialisers, which have no preconditions; the
        // handle is leaked on purpose so that the library stays loaded.
        return match unsafe { libloading::Library::new(&path) } {
            Ok(lib) => {
                std::mem::forget(lib);
                Ok(())
            }
            Err(e) => Err(TrainError::device(format!("{}: {e}", path.display()))),
        };
    }
    Err(TrainError::device(format!(
        "no NVRTC library among {tried:?}"
    )))
}

/// Makes NVRTC loadable: if [`NVRTC_DIR_ENV`] is set, [`preload_nvrtc`] from that directory
/// (once per process), then checks that cudarc can load the library. A clear error, never a
/// panic, when it cannot.
pub fn ensure_nvrtc() -> Result<()> {
    use std::sync::OnceLock;
    static PRELOADED: OnceLock<std::result::Result<(), String>> = OnceLock::new();
    PRELOADED
        .get_or_init(|| match std::env::var_os(NVRTC_DIR_ENV) {
            Some(dir) => preload_nvrtc(std::path::Path::new(&dir))
                .map_err(|e| format!("{NVRTC_DIR_ENV}: {e}")),
            None => Ok(()),
        })
        .clone()
        .map_err(TrainError::device)?;
    // SAFETY: `is_culib_present` only tries to dlopen the library by its usual names.
    if unsafe { cudarc::nvrtc::sys::is_culib_present() } {
        Ok(())
    } else {
        Err(TrainError::device(format!(
            "NVRTC (libnvrtc.so.12) not found: install the CUDA toolkit or the \
             nvidia-cuda-nvrtc-cu12 wheel and set {NVRTC_DIR_ENV} or LD_LIBRARY_PATH"
        )))
    }
}

/// Compiles one source to PTX with NVRTC. `arch` is an NVRTC `--gpu-architecture` value such
/// as `"compute_80"` (`None`: NVRTC's default; the driver JIT-compiles PTX for newer GPUs).
/// Floating-point contraction is off (`--fmad=false`) so that the kernels round exactly as the
/// CPU backend; `sqrt` and division stay IEEE (NVRTC's defaults).
pub fn compile(src: &Source, arch: Option<&'static str>) -> Result<cudarc::nvrtc::Ptx> {
    ensure_nvrtc()?;
    let opts = cudarc::nvrtc::CompileOptions {
        fmad: Some(false),
        arch,
        name: Some(src.file.to_string()),
        ..Default::default()
    };
    cudarc::nvrtc::compile_ptx_with_opts(src.code, opts)
        .map_err(|e| TrainError::device(format!("NVRTC compiling {}: {e:?}", src.file)))
}
