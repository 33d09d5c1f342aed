//! A packed single-precision GEMM, `C[M×N] = A[M×K]·B[K×N]` (+ bias, optional ReLU), that runs
//! entirely inside a caller-provided `pack: &mut [f32]` scratch slice: no allocation, `no_std`.
//!
//! The structure is the GotoBLAS/BLIS one (as in bluss' `matrixmultiply`):
//!
//! ```text
//! for jc in cols step NC          // B block of NC columns          (loop 5)
//!   for pc in 0..K step KC        // K block: pack B[pc.., jc..]     (loop 4)
//!     for ic in 0..M step MC      // M block: pack A[ic.., pc..]     (loop 3)
//!       for jr in 0..nc step NR   // one KC×NR micro-panel of B      (loop 2)
//!         for ir in 0..mc step MR // one MR×KC micro-panel of A      (loop 1)
//!           micro-kernel → MR×NR tile → destination (epilogue)
//! ```
//!
//! Operands are supplied through traits so that layers never materialise anything bigger than
//! one block: [`PackA`] (the convolution weights, read through
//! [`TensorView`](crate::tensor::TensorView) in any dtype and
//! converted to f32 while packing), [`PackB`] (activations; the convolution fuses its im2col
//! into this packing) and [`Dest`] (which receives finished tiles: bias and ReLU are applied in
//! the final store, partial K blocks accumulate, and the layout may be a strided matrix or any
//! scatter such as the one of a 2×2 stride-2 transposed convolution).
//!
//! The pack buffer needs [`pack_len`]`(m, n, k)` elements, which is bounded by the layer's own
//! dimensions (`≤ (MC + 8)·KC + KC·NC`), so tiny models need tiny buffers.
//!
//! The N range is a parameter, and [`gemm_exec`] uses it to split the columns of one product
//! between the workers of an [`Executor`](crate::exec::Executor): jobs of whole micro-panels,
//! each worker with its own pack buffer, all writing one [`SharedDest`] (disjoint columns).
//! Results are bit-identical for any number of workers.
//!
//! Micro-kernels: a portable one (4×8 or 8×8, plain Rust that auto-vectorises, correct everywhere) and,
//! where the target has them, x86-64 AVX-512F (8×32) and AVX2+FMA (6×16), both detected at run
//! time with the `std` feature and at compile time without it, and aarch64 NEON (8×8, compile
//! time). A [`Kernel`]
//! value can only be obtained for a kernel the running CPU supports.

// `Error` is the crate's single error type (large because it carries a `Shape`); without
// `alloc` it cannot be boxed, so the size lint is accepted here.
#![allow(clippy::result_large_err)]

use core::ops::Range;

use crate::error::Error;

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
#[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
mod neon;
mod operand;
mod portable;

pub use operand::{Epilogue, MatMut, MatRef, MatShared, WeightMatrix};

/// Rows of A packed at once: cuts loop 3 (over M). The packed `MC×KC` block of A (72 KB at
/// `KC = 256`) is meant to stay in L2. A multiple of every kernel's MR (4, 6 and 8), so only the
/// last block of M has a partial micro-panel.
pub const MC: usize = 72;
/// Depth of a block: cuts loop 4 (over K). A `KC×NR` micro-panel of B (16 KB at NR = 16) stays
/// in L1 while every A micro-panel of the block streams past it. K is split into equal blocks of
/// at most `KC`.
pub const KC: usize = 256;
/// Columns of B packed at once: cuts loop 5 (over N). The packed `KC×NC` block of B (1 MB) is
/// meant for L2/L3. A multiple of every kernel's NR (8, 16 and 32).
pub const NC: usize = 1024;

/// Depth up to which the micro-tiles of a block run rows-outer (see `run`): a packed `KC×NC`
/// block of B is then at most 64 KB.
const SHALLOW: usize = 16;

/// Largest `MR·NR` of any kernel: the size of the tile buffer handed to [`Dest::store`].
pub const MAX_TILE: usize = 256;

/// The left operand, `A[M×K]`, as the GEMM packs it.
pub trait PackA {
    /// `(M, K)`.
    fn dims(&self) -> (usize, usize);
    /// Packs rows `m0..m0 + mc` and depths `k0..k0 + kc` (both inside `dims`) into
    /// `ceil(mc / mr)` micro-panels: element `(m0 + s·mr + r, k0 + p)` goes to
    /// `dst[(s·kc + p)·mr + r]`, and rows past `m0 + mc` are zero. `dst` holds at least
    /// `ceil(mc / mr)·mr·kc` elements.
    fn pack_a(&self, m0: usize, mc: usize, k0: usize, kc: usize, mr: usize, dst: &mut [f32]);
    /// The same block when the operand already stores it packed: a slice laid out exactly as
    /// [`PackA::pack_a`] would write it (at least `ceil(mc / mr)·mr·kc` elements; rows past
    /// `m0 + mc` may hold anything finite or not: their results are dropped). The GEMM then
    /// reads it in place instead of copying. `None` (the default): pack it.
    fn packed(&self, m0: usize, mc: usize, k0: usize, kc: usize, mr: usize) -> Option<&[f32]> {
        let _ = (m0, mc, k0, kc, mr);
        None
    }
}

/// The right operand, `B[K×N]`, as the GEMM packs it.
pub trait PackB {
    /// `(K, N)`.
    fn dims(&self) -> (usize, usize);
    /// Packs depths `k0..k0 + kc` and columns `n0..n0 + nc` (inside `dims`) into
    /// `ceil(nc / nr)` micro-panels: element `(k0 + p, n0 + s·nr + c)` goes to
    /// `dst[(s·kc + p)·nr + c]`, and columns past `n0 + nc` are zero. `dst` holds at least
    /// `ceil(nc / nr)·nr·kc` elements. `nr ≤ 32`.
    fn pack_b(&self, k0: usize, kc: usize, n0: usize, nc: usize, nr: usize, dst: &mut [f32]);
    /// The same block when the operand already stores it packed (as [`PackA::packed`]: at
    /// least `ceil(nc / nr)·nr·kc` elements; columns past `n0 + nc` are computed and dropped).
    /// `None` (the default): pack it.
    fn packed(&self, k0: usize, kc: usize, n0: usize, nc: usize, nr: usize) -> Option<&[f32]> {
        let _ = (k0, kc, n0, nc, nr);
        None
    }
}

/// Where finished tiles of `C[M×N]` go.
pub trait Dest {
    /// `(M, N)`.
    fn dims(&self) -> (usize, usize);
    /// Receives the partial product of one K block for rows `m0..m0 + rows` and columns
    /// `n0..n0 + cols` (inside `dims`): element `(m0 + r, n0 + c)` is `tile[r·stride + c]`.
    /// `first`: this is the first K block (the destination's old contents are to be ignored:
    /// store bias + tile); otherwise add the tile to what is stored. `last`: this is the final
    /// K block (apply the activation). Both are true when K fits one block.
    #[allow(clippy::too_many_arguments)]
    fn store(
        &mut self,
        m0: usize,
        n0: usize,
        rows: usize,
        cols: usize,
        tile: &[f32],
        stride: usize,
        first: bool,
        last: bool,
    );
}

/// A micro-kernel: `tile[r·NR + c] = Σ_p a[p·MR + r] · b[p·NR + c]` for `p < kc`, with `a` and
/// `b` micro-panels as laid out by [`PackA`] and [`PackB`]. Callers guarantee
/// `a.len() ≥ kc·MR` and `b.len() ≥ kc·NR`.
pub(crate) trait MicroKernel {
    /// Rows of a tile.
    const MR: usize;
    /// Columns of a tile.
    const NR: usize;
    /// Computes one tile.
    fn run(kc: usize, a: &[f32], b: &[f32], tile: &mut [f32; MAX_TILE]);
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Imp {
    Portable,
    #[cfg(target_arch = "x86_64")]
    Avx2Fma,
    #[cfg(target_arch = "x86_64")]
    Avx512,
    #[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
    Neon,
}

/// A micro-kernel that the running CPU supports. Obtaining one performs the check, so every
/// `Kernel` value is safe to use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Kernel(Imp);

#[cfg(target_arch = "x86_64")]
fn has_avx2_fma() -> bool {
    #[cfg(feature = "std")]
    {
        std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
    }
    #[cfg(not(feature = "std"))]
    {
        cfg!(all(target_feature = "avx2", target_feature = "fma"))
    }
}

#[cfg(target_arch = "x86_64")]
fn has_avx512f() -> bool {
    #[cfg(feature = "std")]
    {
        std::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(feature = "std"))]
    {
        cfg!(target_feature = "avx512f")
    }
}

impl Kernel {
    /// The portable kernel (4×8 on baseline x86-64, 8×8 with AVX or on aarch64), available on every target.
    pub const fn portable() -> Kernel {
        Kernel(Imp::Portable)
    }

    /// The x86-64 AVX2+FMA kernel (6×16), if this CPU has both (run-time detection with the
    /// `std` feature; without it, only if the build enables them as target features).
    pub fn avx2_fma() -> Option<Kernel> {
        #[cfg(target_arch = "x86_64")]
        {
            if has_avx2_fma() {
                return Some(Kernel(Imp::Avx2Fma));
            }
        }
        None
    }

    /// The x86-64 AVX-512F kernel (8×32), if this CPU has AVX-512F (run-time detection with the
    /// `std` feature; without it, only if the build enables the target feature).
    pub fn avx512() -> Option<Kernel> {
        #[cfg(target_arch = "x86_64")]
        {
            if has_avx512f() {
                return Some(Kernel(Imp::Avx512));
            }
        }
        None
    }

    /// The aarch64 NEON kernel (8×8), if the target has NEON (decided at compile time).
    pub fn neon() -> Option<Kernel> {
        #[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
        {
            return Some(Kernel(Imp::Neon));
        }
        #[allow(unreachable_code)]
        None
    }

    /// The fastest kernel available here.
    pub fn best() -> Kernel {
        Kernel::avx512()
            .or_else(Kernel::avx2_fma)
            .or_else(Kernel::neon)
            .unwrap_or(Kernel::portable())
    }

    /// Every kernel available here, portable first (for tests and benchmarks).
    pub fn available() -> impl Iterator<Item = Kernel> {
        [
            Some(Kernel::portable()),
            Kernel::avx2_fma(),
            Kernel::avx512(),
            Kernel::neon(),
        ]
        .into_iter()
        .flatten()
    }

    /// The available kernel called `name` (as [`Kernel::name`] spells it), if any: for
    /// benchmarks and tests that force one.
    pub fn by_name(name: &str) -> Option<Kernel> {
        Kernel::available().find(|k| k.name() == name)
    }

    /// Every kernel compiled for this target that the running CPU does not support (by
    /// name), so tests can say what they did not cover.
    pub fn unavailable() -> impl Iterator<Item = &'static str> {
        type Probe = (&'static str, fn() -> Option<Kernel>);
        const OPTIONAL: &[Probe] = &[
            #[cfg(target_arch = "x86_64")]
            ("avx2-fma", Kernel::avx2_fma),
            #[cfg(target_arch = "x86_64")]
            ("avx512", Kernel::avx512),
        ];
        OPTIONAL
            .iter()
            .filter(|(_, probe)| probe().is_none())
            .map(|&(name, _)| name)
    }

    /// A short name: `"portable"`, `"avx2-fma"`, `"avx512"` or `"neon"`.
    pub fn name(self) -> &'static str {
        match self.0 {
            Imp::Portable => "portable",
            #[cfg(target_arch = "x86_64")]
            Imp::Avx2Fma => "avx2-fma",
            #[cfg(target_arch = "x86_64")]
            Imp::Avx512 => "avx512",
            #[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
            Imp::Neon => "neon",
        }
    }

    /// Pack elements [`gemm`] needs with this kernel for an `m × n × k` product (at most
    /// [`pack_len`], which covers every kernel of the target).
    pub fn pack_len(self, m: usize, n: usize, k: usize) -> usize {
        let (mr, nr) = self.tile();
        pack_len_tile(mr, nr, m, n, k)
    }

    /// One micro-tile straight from packed panels, without the [`gemm`] loops: `tile[r·NR + c]
    /// = Σ_p a[p·MR + r] · b[p·NR + c]` for `p < kc`, `(MR, NR)` = [`Kernel::tile`] (the same
    /// arithmetic, in the same order, as [`gemm`] does for a product whose K fits one block).
    /// Panels shorter than `kc·MR` / `kc·NR` give a tile of zeros (portable kernel: the
    /// products of what is there) instead of reading past them.
    pub(crate) fn tile_product(self, kc: usize, a: &[f32], b: &[f32], tile: &mut [f32; MAX_TILE]) {
        match self.0 {
            Imp::Portable => portable::Portable::run(kc, a, b, tile),
            #[cfg(target_arch = "x86_64")]
            Imp::Avx2Fma => avx2::Avx2Fma::run(kc, a, b, tile),
            #[cfg(target_arch = "x86_64")]
            Imp::Avx512 => avx512::Avx512::run(kc, a, b, tile),
            #[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
            Imp::Neon => neon::Neon::run(kc, a, b, tile),
        }
    }

    /// The tile shape `(MR, NR)`.
    pub fn tile(self) -> (usize, usize) {
        match self.0 {
            Imp::Portable => (portable::Portable::MR, portable::Portable::NR),
            #[cfg(target_arch = "x86_64")]
            Imp::Avx2Fma => (avx2::Avx2Fma::MR, avx2::Avx2Fma::NR),
            #[cfg(target_arch = "x86_64")]
            Imp::Avx512 => (avx512::Avx512::MR, avx512::Avx512::NR),
            #[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
            Imp::Neon => (neon::Neon::MR, neon::Neon::NR),
        }
    }
}

/// Tile shapes of every kernel compiled for this target (available at run time or not), so that
/// [`pack_len`] does not depend on the CPU.
const TILES: &[(usize, usize)] = &[
    (portable::Portable::MR, portable::Portable::NR),
    #[cfg(target_arch = "x86_64")]
    (avx2::Avx2Fma::MR, avx2::Avx2Fma::NR),
    #[cfg(target_arch = "x86_64")]
    (avx512::Avx512::MR, avx512::Avx512::NR),
    #[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
    (neon::Neon::MR, neon::Neon::NR),
];

// Every kernel's tile fits the tile buffer, its NR the `PackB` contract (`nr ≤ 32`), and the
// blocking constants are multiples of its MR and NR (only the last block has partial panels).
const _: () = {
    let mut i = 0;
    while i < TILES.len() {
        let (mr, nr) = TILES[i];
        assert!(mr * nr <= MAX_TILE && nr <= 32);
        assert!(MC.is_multiple_of(mr) && NC.is_multiple_of(nr));
        i += 1;
    }
};

const fn round_up(x: usize, to: usize) -> usize {
    x.div_ceil(to) * to
}

const fn min(a: usize, b: usize) -> usize {
    if a < b {
        a
    } else {
        b
    }
}

/// Pack elements one kernel needs for an `m × n × k` product: a packed `MC×KC` block of A and a
/// packed `KC×NC` block of B, each clipped to the product and padded to whole micro-panels.
/// Never overflows: every factor is clipped to a blocking constant.
const fn pack_len_tile(mr: usize, nr: usize, m: usize, n: usize, k: usize) -> usize {
    let kc = min(KC, k);
    round_up(min(MC, m), mr) * kc + kc * round_up(min(NC, n), nr) + 2 * ALIGN
}

/// Elements (f32) of the alignment the GEMM gives its packed blocks: 64 bytes, a cache line
/// and an AVX-512 vector. A buffer that starts elsewhere loses at most `ALIGN − 1` elements to
/// it, and each block at most `ALIGN − 1` to rounding; [`pack_len`] counts both.
pub const ALIGN: usize = 16;

/// Hints the CPU to bring the cache line holding `p` into L1 ahead of a load or store (x86-64;
/// nothing elsewhere). Any address: a prefetch never faults and `p` is never dereferenced.
#[inline(always)]
pub(crate) fn prefetch(p: *const f32) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch hint has no effect on memory and never faults, whatever the address.
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(p as *const i8)
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// The elements to skip from `p` to the next 64-byte boundary (`0..ALIGN`).
#[inline(always)]
pub(crate) fn align_skip(p: *const f32) -> usize {
    let addr = p as usize;
    (64 - addr % 64) % 64 / 4
}

/// Scratch (f32 elements) that [`gemm`] needs for `C[m×n] = A[m×k]·B[k×n]` over `n` columns,
/// with any kernel compiled for this target. Bounded by `(MC + 8)·KC + KC·NC + 2·ALIGN`.
pub const fn pack_len(m: usize, n: usize, k: usize) -> usize {
    let mut best = 0;
    let mut i = 0;
    while i < TILES.len() {
        let (mr, nr) = TILES[i];
        let l = pack_len_tile(mr, nr, m, n, k);
        if l > best {
            best = l;
        }
        i += 1;
    }
    best
}

/// Computes columns `cols` of `C = A·B` into `dest` with `kernel`: for every row `i < M` and
/// column `j ∈ cols`, `dest` receives `Σ_p A[i, p]·B[p, j]` through [`Dest::store`] (one call
/// per tile and K block, `first` on the first block, `last` on the final one). Columns outside
/// `cols` are not touched, so disjoint column ranges may be computed separately (e.g. by
/// different workers, each with its own `pack`).
///
/// `pack` needs [`pack_len`]`(M, cols.len(), K)` elements; its contents are irrelevant on entry
/// and unspecified on return. When `K = 0` every tile is stored once, as zeros.
///
/// Errors: [`Error::InvalidArgument`] if the operand dimensions disagree or `cols` is not
/// inside `0..N`; [`Error::BufferTooSmall`] if `pack` is too short. Nothing is written then.
pub fn gemm<A, B, D>(
    kernel: Kernel,
    a: &A,
    b: &B,
    dest: &mut D,
    cols: Range<usize>,
    pack: &mut [f32],
) -> Result<(), Error>
where
    A: PackA + ?Sized,
    B: PackB + ?Sized,
    D: Dest + ?Sized,
{
    let (m, k) = a.dims();
    let (kb, n) = b.dims();
    if kb != k || dest.dims() != (m, n) {
        return Err(Error::InvalidArgument {
            what: "gemm: operand dimensions disagree",
        });
    }
    if cols.start > cols.end || cols.end > n {
        return Err(Error::InvalidArgument {
            what: "gemm: column range outside 0..N",
        });
    }
    let needed = kernel.pack_len(m, cols.len(), k);
    if pack.len() < needed {
        return Err(Error::BufferTooSmall {
            buffer: "gemm pack",
            needed,
            got: pack.len(),
        });
    }
    match kernel.0 {
        Imp::Portable => run::<portable::Portable, A, B, D>(m, k, cols, a, b, dest, pack),
        // SAFETY: these kernels exist only on a CPU with their features.
        #[cfg(target_arch = "x86_64")]
        Imp::Avx2Fma => unsafe { run_avx2(m, k, cols, a, b, dest, pack) },
        // SAFETY: as above.
        #[cfg(target_arch = "x86_64")]
        Imp::Avx512 => unsafe { run_avx512(m, k, cols, a, b, dest, pack) },
        #[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
        Imp::Neon => run::<neon::Neon, A, B, D>(m, k, cols, a, b, dest, pack),
    }
    Ok(())
}

/// The depth of the GEMM's K blocks for depth `k`: K is cut into equal blocks of at most
/// [`KC`] (576 = 3×192 rather than 256 + 256 + 64), the last one possibly shorter; block `i`
/// covers depths `i·k_step(k) .. min((i+1)·k_step(k), k)`. Operands stored pre-packed
/// ([`PackB::packed`]) follow it.
pub const fn k_step(k: usize) -> usize {
    if k == 0 {
        0
    } else {
        k.div_ceil(k.div_ceil(KC))
    }
}

/// Defines `$name`: [`run`] with kernel `$kernel`, compiled with target features `$features`,
/// so that the stores around the kernel (inlined into [`run`]) get the kernel's vector width
/// instead of baseline x86-64 code.
macro_rules! run_with {
    ($name:ident, $kernel:ty, $features:literal) => {
        #[doc = concat!("[`run`] with `", stringify!($kernel), "`, compiled with ", $features, ".")]
        ///
        /// # Safety
        /// The CPU must support these features; [`run`]'s preconditions hold.
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = $features)]
        unsafe fn $name<A, B, D>(
            m: usize,
            k: usize,
            cols: Range<usize>,
            a: &A,
            b: &B,
            dest: &mut D,
            pack: &mut [f32],
        ) where
            A: PackA + ?Sized,
            B: PackB + ?Sized,
            D: Dest + ?Sized,
        {
            run::<$kernel, A, B, D>(m, k, cols, a, b, dest, pack);
        }
    };
}

run_with!(run_avx2, avx2::Avx2Fma, "avx2,fma");
run_with!(run_avx512, avx512::Avx512, "avx512f");

/// The five loops. Preconditions (checked by [`gemm`]): dimensions agree, `cols ⊆ 0..n`,
/// `pack.len() ≥ pack_len_tile(K::MR, K::NR, m, cols.len(), k)`. Inlined into its callers (and
/// the destinations' `store` into it), so that [`run_avx2`] / [`run_avx512`] compile the loops
/// with their target features.
#[inline(always)]
fn run<K, A, B, D>(
    m: usize,
    k: usize,
    cols: Range<usize>,
    a: &A,
    b: &B,
    dest: &mut D,
    pack: &mut [f32],
) where
    K: MicroKernel,
    A: PackA + ?Sized,
    B: PackB + ?Sized,
    D: Dest + ?Sized,
{
    let (mr, nr) = (K::MR, K::NR);
    if m == 0 || cols.is_empty() {
        return;
    }
    let kc_step = k_step(k);
    // Both packed blocks start on a cache line (the kernel's loads of B then never straddle
    // two: measured, a work area 16 bytes off cost every vector load a second line).
    let skip = align_skip(pack.as_ptr()).min(pack.len());
    let pack = &mut pack[skip..];
    let a_len = round_up(round_up(min(MC, m), mr) * kc_step, ALIGN).min(pack.len());
    let (ap, bp) = pack.split_at_mut(a_len);
    // Stays zero when K = 0 (the kernel is then never called).
    let mut tile = [0.0f32; MAX_TILE];

    let mut jc = cols.start;
    while jc < cols.end {
        let nc = min(NC, cols.end - jc);
        let mut pc = 0;
        loop {
            let kc = min(kc_step, k - pc);
            let (first, last) = (pc == 0, pc + kc == k);
            let b_need = nc.div_ceil(nr) * nr * kc;
            let bpack: &[f32] = match b.packed(pc, kc, jc, nc, nr) {
                Some(p) if p.len() >= b_need => p,
                _ => {
                    if kc > 0 {
                        b.pack_b(pc, kc, jc, nc, nr, bp);
                    }
                    &*bp
                }
            };
            let mut ic = 0;
            while ic < m {
                let mc = min(MC, m - ic);
                let a_need = mc.div_ceil(mr) * mr * kc;
                let apack: &[f32] = match a.packed(ic, mc, pc, kc, mr) {
                    Some(p) if p.len() >= a_need => p,
                    _ => {
                        if kc > 0 {
                            a.pack_a(ic, mc, pc, kc, mr, ap);
                        }
                        &*ap
                    }
                };
                // One micro-tile: A panel `ir`, B panel `jr` (a macro, not a closure: a closure
                // was kept out of line and compiled without the kernel's target features).
                macro_rules! step {
                    ($ir:expr, $jr:expr) => {{
                        let (ir, jr) = ($ir, $jr);
                        let bpanel = &bpack[jr * kc..(jr + nr) * kc];
                        let apanel = &apack[ir * kc..(ir + mr) * kc];
                        if kc > 0 {
                            K::run(kc, apanel, bpanel, &mut tile);
                        }
                        let (rows_here, cols_here) = (min(mr, mc - ir), min(nr, nc - jr));
                        dest.store(
                            ic + ir,
                            jc + jr,
                            rows_here,
                            cols_here,
                            &tile,
                            nr,
                            first,
                            last,
                        );
                    }};
                }
                if kc <= SHALLOW {
                    // Shallow products (a first layer, K = 9): the destination, not the
                    // operands, is the traffic. Rows outer, so that each stream of stores runs
                    // along `nc` columns of `mr` rows instead of `mc` rows at once (their
                    // line fills ran out of fill buffers: 3 GB/s written); the whole B block is
                    // small enough to stay in L1/L2 meanwhile.
                    for ir in (0..mc).step_by(mr) {
                        for jr in (0..nc).step_by(nr) {
                            step!(ir, jr);
                        }
                    }
                } else {
                    for jr in (0..nc).step_by(nr) {
                        for ir in (0..mc).step_by(mr) {
                            step!(ir, jr);
                        }
                    }
                }
                ic += mc;
            }
            pc += kc;
            if pc >= k {
                break;
            }
        }
        jc += nc;
    }
}

/// A destination that several workers may fill at once, each through its own range of columns
/// (the parallel counterpart of [`Dest`], used by [`gemm_exec`]).
///
/// # Safety
///
/// An implementation must make [`SharedDest::store_shared`] write (and read) only elements of
/// the columns `n0..n0 + cols` it is given, so that calls with disjoint column ranges touch
/// disjoint memory and may run on different threads at the same time.
pub unsafe trait SharedDest: Sync {
    /// `(M, N)`.
    fn dims(&self) -> (usize, usize);
    /// Same meaning as [`Dest::store`].
    ///
    /// # Safety
    ///
    /// No call that may run at the same time (on any thread) has a column range overlapping
    /// `n0..n0 + cols`.
    #[allow(clippy::too_many_arguments)]
    unsafe fn store_shared(
        &self,
        m0: usize,
        n0: usize,
        rows: usize,
        cols: usize,
        tile: &[f32],
        stride: usize,
        first: bool,
        last: bool,
    );
}

/// The columns of a [`SharedDest`] that one job of [`gemm_exec`] owns: a [`Dest`] that forwards
/// to [`SharedDest::store_shared`]. Only made inside [`gemm_exec`] (which holds the destination
/// `&mut`), for a column range no other job touches; [`run`] stores only inside the range it
/// is given.
struct Columns<'d, D: ?Sized>(&'d D);

impl<D: SharedDest + ?Sized> Dest for Columns<'_, D> {
    fn dims(&self) -> (usize, usize) {
        self.0.dims()
    }
    #[inline(always)]
    fn store(
        &mut self,
        m0: usize,
        n0: usize,
        rows: usize,
        cols: usize,
        tile: &[f32],
        stride: usize,
        first: bool,
        last: bool,
    ) {
        // SAFETY: a `Columns` exists only inside one job of `gemm_exec`, which borrows the
        // destination `&mut` (no caller can use it meanwhile) and passes `run` the job's own
        // column range; `run` stores only inside it (`gemm` likewise for its `cols`); ranges of
        // distinct jobs are disjoint and each job runs once (`Executor` contract).
        unsafe {
            self.0
                .store_shared(m0, n0, rows, cols, tile, stride, first, last)
        }
    }
}

/// Columns per job of [`gemm_exec`] for `n` columns on `workers` workers with a kernel of `nr`
/// columns: all of them for one worker (exactly the loops of [`gemm`]); otherwise a multiple of
/// the workers' count of equal blocks of at most [`NC`] columns, each a multiple of `nr`.
fn column_chunk(n: usize, workers: usize, nr: usize) -> usize {
    if workers <= 1 || n <= nr {
        return n.max(1);
    }
    // At least `JOBS_PER_WORKER` jobs per worker for balance, where each keeps four
    // micro-panels or more (every job packs its own copy of A's blocks).
    let jobs = round_up(n.div_ceil(NC), workers)
        .max((workers * crate::exec::JOBS_PER_WORKER).min(n / (4 * nr)));
    round_up(n.div_ceil(jobs), nr)
}

/// Pack elements [`gemm_exec`] needs for an `m × n × k` product on `workers` workers (any
/// kernel of this target): `workers ·` [`pack_len`]`(m, n, k)`, or `None` on overflow.
pub const fn pack_len_workers(m: usize, n: usize, k: usize, workers: usize) -> Option<usize> {
    pack_len(m, n, k).checked_mul(workers)
}

/// `C = A·B` over all columns, split between the workers of `exec`: the N columns are cut into
/// jobs of whole micro-panels (at most [`NC`] columns; a multiple of `exec.workers()` jobs, and
/// [`crate::exec::JOBS_PER_WORKER`] per worker where each keeps four panels or more), and
/// each job runs the loops of [`gemm`] on its columns with its worker's own part of `pack`.
/// With one worker this is exactly [`gemm`] over `0..N`.
///
/// The result does not depend on the number of workers, bit for bit: every element is the same
/// sequence of multiply-adds over the same K blocks whichever job computes it.
///
/// `pack` is cut into `exec.workers()` equal parts; each needs [`pack_len`]`(M, N, K)`
/// elements, so [`pack_len_workers`] in total. Contents irrelevant on entry, unspecified on
/// return.
///
/// Errors: as [`gemm`], and [`Error::InvalidArgument`] if `exec.workers()` is 0. Nothing is
/// written then.
pub fn gemm_exec<A, B, D>(
    kernel: Kernel,
    exec: &(dyn crate::exec::Executor + '_),
    a: &A,
    b: &B,
    dest: &mut D,
    pack: &mut [f32],
) -> Result<(), Error>
where
    A: PackA + Sync + ?Sized,
    B: PackB + Sync + ?Sized,
    D: SharedDest + ?Sized,
{
    let (m, k) = a.dims();
    let (kb, n) = b.dims();
    if kb != k || dest.dims() != (m, n) {
        return Err(Error::InvalidArgument {
            what: "gemm: operand dimensions disagree",
        });
    }
    let workers = exec.workers();
    if workers == 0 {
        return Err(Error::InvalidArgument {
            what: "gemm: executor has no workers",
        });
    }
    let (_, nr) = kernel.tile();
    let chunk = column_chunk(n, workers, nr);
    let each = pack.len() / workers;
    let needed = kernel.pack_len(m, chunk.min(n), k);
    if each < needed {
        return Err(Error::BufferTooSmall {
            buffer: "gemm pack (per worker)",
            needed: needed.saturating_mul(workers),
            got: pack.len(),
        });
    }
    if m == 0 || n == 0 {
        return Ok(());
    }
    // Shared by the jobs from here on; `dest` being borrowed `&mut` keeps everyone else out.
    let dest: &D = dest;
    let jobs = n.div_ceil(chunk);
    if jobs == 1 {
        let mut dest = Columns(dest);
        return gemm(kernel, a, b, &mut dest, 0..n, pack);
    }
    let packs = crate::exec::Shared::new(pack);
    let job = |j: usize, w: usize| {
        let cols = j * chunk..n.min((j + 1) * chunk);
        // SAFETY: worker `w` owns `pack[w·each .. (w+1)·each]`; the `Executor` contract says no
        // two concurrent calls share `w`. Out of range (a broken executor): `None`, skipped.
        let Some(p) = (unsafe { packs.range(w.saturating_mul(each), each) }) else {
            return;
        };
        let mut part = Columns(dest);
        // Checked above: dimensions agree, `cols ⊆ 0..n`, `p` is long enough.
        match kernel.0 {
            Imp::Portable => run::<portable::Portable, A, B, _>(m, k, cols, a, b, &mut part, p),
            // SAFETY: these kernels exist only on a CPU with their features.
            #[cfg(target_arch = "x86_64")]
            Imp::Avx2Fma => unsafe { run_avx2(m, k, cols, a, b, &mut part, p) },
            // SAFETY: as above.
            #[cfg(target_arch = "x86_64")]
            Imp::Avx512 => unsafe { run_avx512(m, k, cols, a, b, &mut part, p) },
            #[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
            Imp::Neon => run::<neon::Neon, A, B, _>(m, k, cols, a, b, &mut part, p),
        }
    };
    exec.run(jobs, &job);
    Ok(())
}
