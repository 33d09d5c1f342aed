//! [`Gpu`]: the handful of device operations the CUDA backend's network code is written
//! against (allocate, copy, zero, launch one of [`super::kernels::KERNELS`], strided-batched
//! SGEMM with cuBLAS semantics), and [`CudaGpu`], its implementation on a CUDA device through
//! cudarc (driver API, cuBLAS, NVRTC).
//!
//! The same network code runs, in tests, on a host emulation of this trait (feature
//! `cuda-emu`: the `.cu` kernels compiled as C++, SGEMM by matrixmultiply with cuBLAS's
//! column-major conventions), which is how the orchestration is checked without a GPU.
//!
//! Addresses are `u64` device addresses (`CUdeviceptr`); every operation is queued in order on
//! one stream, so a buffer may be reused as soon as the operations that read it are queued.

use std::collections::HashMap;
use std::sync::Arc;

use cudarc::cublas::{result as blas_result, sys as blas_sys, CudaBlas};
use cudarc::driver::{
    result as drv, CudaContext, CudaFunction, CudaSlice, CudaStream, DevicePtr, LaunchConfig,
    PushKernelArg,
};

use super::kernels::{self, Arg};
use crate::error::{Result, TrainError};

/// `C ← α·op(A)·op(B) + β·C` for `batch` matrices, **column-major** as
/// `cublasSgemmStridedBatched`: `op(A)` is `m × k`, `op(B)` is `k × n`, `C` is `m × n`; element
/// `(i, j)` of a stored matrix `X` is at `x + 4·(i + j·ldx)` bytes; matrix `s` of the batch
/// starts `s·stride` elements after the first (stride 0 = shared). `ta`/`tb`: the stored
/// matrix is the transpose of `op(·)`. With `β = 0`, `C` need not be initialised.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Gemm {
    /// `op(A) = Aᵀ`.
    pub ta: bool,
    /// `op(B) = Bᵀ`.
    pub tb: bool,
    /// Rows of `C`.
    pub m: usize,
    /// Columns of `C`.
    pub n: usize,
    /// Inner dimension.
    pub k: usize,
    /// `α`.
    pub alpha: f32,
    /// Address of `A`.
    pub a: u64,
    /// Leading dimension of `A`.
    pub lda: usize,
    /// Batch stride of `A` (elements).
    pub stride_a: usize,
    /// Address of `B`.
    pub b: u64,
    /// Leading dimension of `B`.
    pub ldb: usize,
    /// Batch stride of `B` (elements).
    pub stride_b: usize,
    /// `β`.
    pub beta: f32,
    /// Address of `C`.
    pub c: u64,
    /// Leading dimension of `C`.
    pub ldc: usize,
    /// Batch stride of `C` (elements).
    pub stride_c: usize,
    /// Number of products.
    pub batch: usize,
}

/// Device operations (see the module docs). All sizes are in bytes unless stated.
pub trait Gpu: Send {
    /// An owned device allocation, freed on drop.
    type Mem: Send;
    /// `"cuda"` or `"cuda-emu"`.
    fn name(&self) -> &'static str;
    /// A zero-filled allocation of `bytes` (≥ 1) bytes.
    fn alloc(&self, bytes: usize) -> Result<Self::Mem>;
    /// The device address of an allocation.
    fn addr(&self, m: &Self::Mem) -> u64;
    /// Copies `src` to device address `dst` (which must hold `src.len()` bytes).
    fn upload(&self, dst: u64, src: &[u8]) -> Result<()>;
    /// Copies `dst.len()` bytes from device address `src` to the host, waiting for all queued
    /// work first.
    fn download(&self, src: u64, dst: &mut [u8]) -> Result<()>;
    /// Sets `bytes` bytes at `dst` to zero.
    fn zero(&self, dst: u64, bytes: usize) -> Result<()>;
    /// Launches kernel `name` on a 1-D grid (`grid` blocks of `block` threads). The arguments
    /// must match [`kernels::KERNELS`] (checked).
    fn launch(&self, name: &'static str, grid: u32, block: u32, args: &[Arg]) -> Result<()>;
    /// A strided-batched SGEMM (see [`Gemm`]).
    fn gemm(&self, g: &Gemm) -> Result<()>;
}

fn de<E: std::fmt::Debug>(what: &'static str) -> impl FnOnce(E) -> TrainError {
    move |e| TrainError::device(format!("{what}: {e:?}"))
}

/// True if the CUDA driver library (`libcuda.so`) can be loaded.
pub fn driver_present() -> bool {
    // SAFETY: `is_culib_present` only tries to dlopen the driver library by its usual names.
    unsafe { cudarc::driver::sys::is_culib_present() }
}

/// Number of CUDA devices; an error without a driver.
pub fn device_count() -> Result<usize> {
    if !driver_present() {
        return Err(TrainError::device("no driver found (libcuda not present)"));
    }
    let n = CudaContext::device_count().map_err(de("cuInit / cuDeviceGetCount"))?;
    Ok(n.max(0) as usize)
}

/// A CUDA device: context, one stream, a cuBLAS handle on it and the loaded kernels.
pub struct CudaGpu {
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    blas: CudaBlas,
    functions: HashMap<&'static str, CudaFunction>,
}

impl std::fmt::Debug for CudaGpu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CudaGpu")
            .field("ordinal", &self.ctx.ordinal())
            .finish_non_exhaustive()
    }
}

impl CudaGpu {
    /// Opens device `ordinal`: checks that the driver, cuBLAS and NVRTC libraries load (clear
    /// errors otherwise), creates the context and stream, compiles every kernel with NVRTC.
    pub fn new(ordinal: usize) -> Result<Self> {
        let n = device_count()?;
        if ordinal >= n {
            return Err(TrainError::device(format!(
                "cuda:{ordinal} requested but {n} CUDA device(s) present"
            )));
        }
        // SAFETY: only tries to dlopen libcublas by its usual names.
        if !unsafe { blas_sys::is_culib_present() } {
            return Err(TrainError::device(
                "cuBLAS (libcublas.so.12) not found: install the CUDA toolkit or the \
                 nvidia-cublas-cu12 wheel and put its lib directory on LD_LIBRARY_PATH",
            ));
        }
        kernels::ensure_nvrtc()?;
        let ctx = CudaContext::new(ordinal).map_err(de("creating the CUDA context"))?;
        // SAFETY: everything runs on one stream in issue order, so cudarc's per-buffer events
        // (which order work across streams) are not needed; no buffer is shared with another
        // stream.
        unsafe { ctx.disable_event_tracking() };
        let stream = ctx.default_stream();
        let blas = CudaBlas::new(stream.clone()).map_err(de("creating the cuBLAS handle"))?;
        let mut functions = HashMap::new();
        for src in kernels::SOURCES {
            let ptx = kernels::compile(src, None)?;
            let module = ctx.load_module(ptx).map_err(de("loading a PTX module"))?;
            for &name in src.kernels {
                let f = module
                    .load_function(name)
                    .map_err(de("looking up a kernel"))?;
                functions.insert(name, f);
            }
        }
        Ok(CudaGpu {
            ctx,
            stream,
            blas,
            functions,
        })
    }

    /// Makes the context current on the calling thread: the raw driver and cuBLAS calls need
    /// it, and the backend may move between threads (cudarc's safe calls bind by themselves).
    fn bind(&self) -> Result<()> {
        self.ctx
            .bind_to_thread()
            .map_err(de("binding the CUDA context"))
    }

    /// `NAME, X MiB, compute capability M.m` of this device.
    pub fn describe(&self) -> Result<String> {
        describe_ctx(&self.ctx)
    }
}

fn describe_ctx(ctx: &Arc<CudaContext>) -> Result<String> {
    let name = ctx.name().map_err(de("device name"))?;
    let mem = ctx.total_mem().map_err(de("device memory"))?;
    let (ma, mi) = ctx.compute_capability().map_err(de("compute capability"))?;
    Ok(format!(
        "{name}, {} MiB, compute capability {ma}.{mi}",
        mem >> 20
    ))
}

/// One line per CUDA device (`cuda:N: NAME, X MiB, compute capability M.m`); an error without
/// a driver.
pub fn device_lines() -> Result<Vec<String>> {
    let n = device_count()?;
    (0..n)
        .map(|i| {
            let ctx = CudaContext::new(i).map_err(de("creating a CUDA context"))?;
            Ok(format!("cuda:{i}: {}", describe_ctx(&ctx)?))
        })
        .collect()
}

fn int(v: usize, what: &str) -> Result<i32> {
    i32::try_from(v).map_err(|_| TrainError::device(format!("{what} = {v} exceeds cuBLAS's int")))
}

impl Gpu for CudaGpu {
    type Mem = CudaSlice<u8>;

    fn name(&self) -> &'static str {
        "cuda"
    }

    fn alloc(&self, bytes: usize) -> Result<CudaSlice<u8>> {
        self.stream
            .alloc_zeros::<u8>(bytes.max(1))
            .map_err(de("allocating device memory"))
    }

    fn addr(&self, m: &CudaSlice<u8>) -> u64 {
        // Event tracking is off (see `new`), so the returned guard does nothing.
        m.device_ptr(&self.stream).0
    }

    fn upload(&self, dst: u64, src: &[u8]) -> Result<()> {
        self.bind()?;
        // SAFETY: `dst` is a live allocation of at least `src.len()` bytes (caller contract);
        // the host slice is copied before `synchronize` returns, so it outlives the copy.
        unsafe { drv::memcpy_htod_async(dst, src, self.stream.cu_stream()) }
            .map_err(de("copying to the device"))?;
        self.stream.synchronize().map_err(de("synchronising"))
    }

    fn download(&self, src: u64, dst: &mut [u8]) -> Result<()> {
        self.bind()?;
        // SAFETY: `src` holds `dst.len()` bytes (caller contract); we synchronise before the
        // host buffer is read or freed.
        unsafe { drv::memcpy_dtoh_async(dst, src, self.stream.cu_stream()) }
            .map_err(de("copying from the device"))?;
        self.stream.synchronize().map_err(de("synchronising"))
    }

    fn zero(&self, dst: u64, bytes: usize) -> Result<()> {
        self.bind()?;
        // SAFETY: `dst` holds `bytes` bytes (caller contract).
        unsafe { drv::memset_d8_async(dst, 0, bytes, self.stream.cu_stream()) }
            .map_err(de("zeroing device memory"))
    }

    fn launch(&self, name: &'static str, grid: u32, block: u32, args: &[Arg]) -> Result<()> {
        kernels::check_args(name, args)?;
        let f = self
            .functions
            .get(name)
            .ok_or_else(|| TrainError::device(format!("kernel {name} not loaded")))?;
        let cfg = LaunchConfig {
            grid_dim: (grid.max(1), 1, 1),
            block_dim: (block, 1, 1),
            shared_mem_bytes: 0,
        };
        let mut b = self.stream.launch_builder(f);
        for a in args {
            match a {
                Arg::Ptr(v) => b.arg(v),
                Arg::I32(v) => b.arg(v),
                Arg::I64(v) => b.arg(v),
                Arg::F32(v) => b.arg(v),
                Arg::F64(v) => b.arg(v),
            };
        }
        // SAFETY: the argument types match the kernel's parameters (`check_args` against the
        // table that a test checks against the sources); the addresses are live allocations
        // sized by the caller for the kernel's documented layout.
        unsafe { b.launch(cfg) }.map_err(de("launching a kernel"))?;
        Ok(())
    }

    fn gemm(&self, g: &Gemm) -> Result<()> {
        let op = |t: bool| {
            if t {
                blas_sys::cublasOperation_t::CUBLAS_OP_T
            } else {
                blas_sys::cublasOperation_t::CUBLAS_OP_N
            }
        };
        self.bind()?;
        let (alpha, beta) = (g.alpha, g.beta);
        // SAFETY: the caller sizes A, B, C for the dimensions, leading dimensions and strides
        // given (the `Gemm` contract); alpha/beta are host scalars (cuBLAS's default pointer
        // mode) that live across the call.
        unsafe {
            blas_result::sgemm_strided_batched(
                *self.blas.handle(),
                op(g.ta),
                op(g.tb),
                int(g.m, "m")?,
                int(g.n, "n")?,
                int(g.k, "k")?,
                &alpha,
                g.a as *const f32,
                int(g.lda, "lda")?,
                g.stride_a as i64,
                g.b as *const f32,
                int(g.ldb, "ldb")?,
                g.stride_b as i64,
                &beta,
                g.c as *mut f32,
                int(g.ldc, "ldc")?,
                g.stride_c as i64,
                int(g.batch, "batch")?,
            )
        }
        .map_err(de("cublasSgemmStridedBatched"))
    }
}
