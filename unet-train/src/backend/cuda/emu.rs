//! [`EmuGpu`] (feature `cuda-emu`, tests): the [`Gpu`] trait on the host. Kernels are the very
//! `.cu` sources compiled as C++ by `build.rs` (see `kernels/host_emu.h`), SGEMM is
//! matrixmultiply with cuBLAS's column-major, strided-batched contract, "device memory" is
//! host memory. Every copy, zeroing and GEMM operand range and every kernel pointer argument
//! is checked against the live allocations, so an out-of-bounds access in the engine's
//! bookkeeping is an error here rather than silent corruption on a GPU.

use std::collections::BTreeMap;
use std::ffi::{c_char, c_int, CStr, CString};
use std::sync::Mutex;

use super::gpu::{Gemm, Gpu};
use super::kernels::{self, Arg};
use super::Engine;
use crate::error::{Result, TrainError};
use crate::optim::Optimizer;
use crate::params::Params;

extern "C" {
    fn emu_signature(name: *const c_char) -> *const c_char;
    fn emu_launch(
        name: *const c_char,
        grid: u32,
        block: u32,
        args: *const u64,
        nargs: usize,
    ) -> c_int;
}

/// Parameter kinds of kernel `name` as the host compiler sees its declaration (one letter per
/// parameter, see [`kernels::Kind::code`]); `None` if the host build has no such kernel.
pub fn signature(name: &str) -> Option<String> {
    let c = CString::new(name).ok()?;
    // SAFETY: `c` is a valid NUL-terminated string; the result is NULL or points to a string
    // owned by a static table in the C++ code that lives for the whole process.
    let p = unsafe { emu_signature(c.as_ptr()) };
    if p.is_null() {
        return None;
    }
    // SAFETY: non-null, NUL-terminated, static (see above).
    Some(unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
}

/// Host memory standing in for a device allocation (8-byte aligned, zero-filled).
#[derive(Debug)]
pub struct EmuMem {
    ptr: *mut u8,
    layout: std::alloc::Layout,
    live: &'static Mutex<BTreeMap<u64, usize>>,
}

// SAFETY: `EmuMem` owns its allocation exclusively (like a `Box<[u8]>`); the raw pointer is
// only dereferenced through `EmuGpu` operations.
unsafe impl Send for EmuMem {}

impl Drop for EmuMem {
    fn drop(&mut self) {
        if let Ok(mut m) = self.live.lock() {
            m.remove(&(self.ptr as u64));
        }
        // SAFETY: `ptr` came from `alloc_zeroed(layout)` and is freed exactly once.
        unsafe { std::alloc::dealloc(self.ptr, self.layout) }
    }
}

fn live() -> &'static Mutex<BTreeMap<u64, usize>> {
    static LIVE: Mutex<BTreeMap<u64, usize>> = Mutex::new(BTreeMap::new());
    &LIVE
}

/// The host emulation of a CUDA device (see the module docs).
#[derive(Debug, Default)]
pub struct EmuGpu {
    _private: (),
}

impl EmuGpu {
    /// A new emulated device.
    pub fn new() -> Self {
        EmuGpu { _private: () }
    }

    /// Errors unless `[addr, addr + bytes)` lies inside one live allocation.
    pub fn check_range(&self, addr: u64, bytes: usize, what: &str) -> Result<()> {
        let m = live()
            .lock()
            .map_err(|_| TrainError::device("emu: poisoned lock"))?;
        if let Some((&start, &len)) = m.range(..=addr).next_back() {
            if addr - start <= len as u64 && (addr - start) as usize + bytes <= len {
                return Ok(());
            }
        }
        Err(TrainError::device(format!(
            "emu: {what}: {bytes} bytes at {addr:#x} are outside every live allocation"
        )))
    }
}

fn extent(rows: usize, cols: usize, ld: usize, stride: usize, batch: usize) -> usize {
    if rows == 0 || cols == 0 || batch == 0 {
        return 0;
    }
    ((cols - 1) * ld + rows + (batch - 1) * stride) * 4
}

impl Gpu for EmuGpu {
    type Mem = EmuMem;

    fn name(&self) -> &'static str {
        "cuda-emu"
    }

    fn alloc(&self, bytes: usize) -> Result<EmuMem> {
        let layout = std::alloc::Layout::from_size_align(bytes.max(1).next_multiple_of(8), 8)
            .map_err(|e| TrainError::device(format!("emu alloc: {e}")))?;
        // SAFETY: the layout has a non-zero size.
        let ptr = unsafe { std::alloc::alloc_zeroed(layout) };
        if ptr.is_null() {
            return Err(TrainError::device("emu: out of memory"));
        }
        live()
            .lock()
            .map_err(|_| TrainError::device("emu: poisoned lock"))?
            .insert(ptr as u64, bytes);
        Ok(EmuMem {
            ptr,
            layout,
            live: live(),
        })
    }

    fn addr(&self, m: &EmuMem) -> u64 {
        m.ptr as u64
    }

    fn upload(&self, dst: u64, src: &[u8]) -> Result<()> {
        self.check_range(dst, src.len(), "upload")?;
        // SAFETY: checked above: `dst` has `src.len()` bytes of a live allocation, which no
        // Rust reference covers (only raw pointers reach it).
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), dst as *mut u8, src.len()) };
        Ok(())
    }

    fn download(&self, src: u64, dst: &mut [u8]) -> Result<()> {
        self.check_range(src, dst.len(), "download")?;
        // SAFETY: checked above.
        unsafe { std::ptr::copy_nonoverlapping(src as *const u8, dst.as_mut_ptr(), dst.len()) };
        Ok(())
    }

    fn zero(&self, dst: u64, bytes: usize) -> Result<()> {
        self.check_range(dst, bytes, "zero")?;
        // SAFETY: checked above.
        unsafe { std::ptr::write_bytes(dst as *mut u8, 0, bytes) };
        Ok(())
    }

    fn launch(&self, name: &'static str, grid: u32, block: u32, args: &[Arg]) -> Result<()> {
        kernels::check_args(name, args)?;
        if block == 0 || block > 1024 {
            return Err(TrainError::device(format!(
                "{name}: block of {block} threads"
            )));
        }
        if kernels::REDUCTIONS.contains(&name) && block != kernels::REDUCE_BLOCK {
            return Err(TrainError::device(format!(
                "{name} needs blocks of 256 threads"
            )));
        }
        for a in args {
            if let Arg::Ptr(p) = *a {
                if p != 0 {
                    self.check_range(p, 1, name)?;
                }
            }
        }
        let bits: Vec<u64> = args.iter().map(Arg::bits).collect();
        let c = CString::new(name).map_err(|_| TrainError::device("kernel name"))?;
        // SAFETY: the argument kinds match the kernel's parameters (checked against the table,
        // which a test checks against the compiled signatures) and every pointer is inside a
        // live allocation; the kernels stay inside the extents the engine allocates (checked
        // by the kernel tests against the CPU backend).
        let r = unsafe { emu_launch(c.as_ptr(), grid.max(1), block, bits.as_ptr(), bits.len()) };
        match r {
            0 => Ok(()),
            _ => Err(TrainError::device(format!(
                "emu_launch({name}) returned {r}"
            ))),
        }
    }

    fn gemm(&self, g: &Gemm) -> Result<()> {
        let (ar, ac) = if g.ta { (g.k, g.m) } else { (g.m, g.k) };
        let (br, bc) = if g.tb { (g.n, g.k) } else { (g.k, g.n) };
        for (what, rows, ld) in [("lda", ar, g.lda), ("ldb", br, g.ldb), ("ldc", g.m, g.ldc)] {
            if ld < rows.max(1) {
                return Err(TrainError::device(format!("gemm: {what} = {ld} < {rows}")));
            }
        }
        self.check_range(g.a, extent(ar, ac, g.lda, g.stride_a, g.batch), "gemm A")?;
        self.check_range(g.b, extent(br, bc, g.ldb, g.stride_b, g.batch), "gemm B")?;
        self.check_range(g.c, extent(g.m, g.n, g.ldc, g.stride_c, g.batch), "gemm C")?;
        let (rsa, csa) = if g.ta { (g.lda, 1) } else { (1, g.lda) };
        let (rsb, csb) = if g.tb { (g.ldb, 1) } else { (1, g.ldb) };
        for s in 0..g.batch {
            // SAFETY: the operand ranges were checked against live allocations above; C does
            // not overlap A or B in the engine's calls (distinct allocations or, for the
            // row-block outputs, disjoint from the inputs).
            unsafe {
                matrixmultiply::sgemm(
                    g.m,
                    g.k,
                    g.n,
                    g.alpha,
                    (g.a as *const f32).add(s * g.stride_a),
                    rsa as isize,
                    csa as isize,
                    (g.b as *const f32).add(s * g.stride_b),
                    rsb as isize,
                    csb as isize,
                    g.beta,
                    (g.c as *mut f32).add(s * g.stride_c),
                    1,
                    g.ldc as isize,
                );
            }
        }
        Ok(())
    }
}

/// The CUDA backend's engine on the host emulation.
pub type EmuBackend = Engine<EmuGpu>;

impl Engine<EmuGpu> {
    /// An engine on a fresh [`EmuGpu`].
    pub fn emu(params: Params, optimizer: Optimizer) -> Result<Self> {
        Engine::new(EmuGpu::new(), params, optimizer)
    }
}
