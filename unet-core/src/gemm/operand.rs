//! Ready-made operands: strided f32 matrices ([`MatRef`]), weight matrices read through a
//! [`TensorView`] in any float dtype ([`WeightMatrix`]), and a row-major destination with a
//! fused bias/ReLU epilogue ([`MatMut`] + [`Epilogue`]; [`MatShared`] for several workers).

use core::marker::PhantomData;

use super::{Dest, PackA, PackB, ALIGN};
use crate::tensor::TensorView;

/// Largest element index of a `rows × cols` matrix with strides `rs`, `cs`, plus one (the
/// length its storage needs); `None` on overflow.
fn span(rows: usize, cols: usize, rs: usize, cs: usize) -> Option<usize> {
    if rows == 0 || cols == 0 {
        return Some(0);
    }
    (rows - 1)
        .checked_mul(rs)?
        .checked_add((cols - 1).checked_mul(cs)?)?
        .checked_add(1)
}

/// A read-only f32 matrix: element `(i, j)` is `data[i·rs + j·cs]`. Usable as A or B.
#[derive(Clone, Copy, Debug)]
pub struct MatRef<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    rs: usize,
    cs: usize,
}

impl<'a> MatRef<'a> {
    /// A `rows × cols` view with row stride `rs` and column stride `cs`; `None` if `data` is too
    /// short (or the extent overflows).
    pub fn new(data: &'a [f32], rows: usize, cols: usize, rs: usize, cs: usize) -> Option<Self> {
        (span(rows, cols, rs, cs)? <= data.len()).then_some(MatRef {
            data,
            rows,
            cols,
            rs,
            cs,
        })
    }
}

/// Writes micro-panels of `mr` rows from `get(row, depth)` (row, depth relative to the block).
#[inline(always)]
fn pack_rows(mc: usize, kc: usize, mr: usize, dst: &mut [f32], get: impl Fn(usize, usize) -> f32) {
    for (s, panel) in dst
        .chunks_exact_mut(kc * mr)
        .take(mc.div_ceil(mr))
        .enumerate()
    {
        for r in 0..mr {
            let row = s * mr + r;
            if row < mc {
                for p in 0..kc {
                    panel[p * mr + r] = get(row, p);
                }
            } else {
                for p in 0..kc {
                    panel[p * mr + r] = 0.0;
                }
            }
        }
    }
}

impl PackA for MatRef<'_> {
    fn dims(&self) -> (usize, usize) {
        (self.rows, self.cols)
    }
    fn pack_a(&self, m0: usize, mc: usize, k0: usize, kc: usize, mr: usize, dst: &mut [f32]) {
        let (d, rs, cs) = (self.data, self.rs, self.cs);
        pack_rows(mc, kc, mr, dst, |r, p| d[(m0 + r) * rs + (k0 + p) * cs]);
    }
}

impl PackB for MatRef<'_> {
    fn dims(&self) -> (usize, usize) {
        (self.rows, self.cols)
    }
    // Inlined into the GEMM's loops, which are compiled with the kernel's target features:
    // there the fixed-length copies below are two vector moves (out of line, a 128-byte copy
    // was a `memmove` call: 8 % of an up-convolution).
    #[inline(always)]
    fn pack_b(&self, k0: usize, kc: usize, n0: usize, nc: usize, nr: usize, dst: &mut [f32]) {
        for (s, panel) in dst
            .chunks_exact_mut(kc * nr)
            .take(nc.div_ceil(nr))
            .enumerate()
        {
            let c0 = n0 + s * nr;
            let cnt = nr.min(n0 + nc - c0);
            for (p, row) in panel.chunks_exact_mut(nr).enumerate() {
                let base = (k0 + p) * self.rs + c0 * self.cs;
                if self.cs == 1 {
                    // The next panel's columns of this row: `kc` rows far apart (a map's
                    // channels), which the hardware prefetchers do not follow.
                    super::prefetch(self.data.as_ptr().wrapping_add(base + nr));
                    let src = &self.data[base..base + cnt];
                    // Fixed lengths for whole micro-panel rows: inline moves, not `memcpy`.
                    match cnt {
                        32 => row[..32].copy_from_slice(&src[..32]),
                        16 => row[..16].copy_from_slice(&src[..16]),
                        8 => row[..8].copy_from_slice(&src[..8]),
                        _ => row[..cnt].copy_from_slice(src),
                    }
                } else {
                    for (c, v) in row[..cnt].iter_mut().enumerate() {
                        *v = self.data[base + c * self.cs];
                    }
                }
                row[cnt..].fill(0.0);
            }
        }
    }
}

/// A matrix read from stored weights (f32, f16 or bf16, converted to f32 while packing):
/// element `(i, j)` is `view.get(i·rs + j·cs)`. Usable as A. With `rs = K, cs = 1` it is a
/// `[M, K]` row-major tensor; with `rs = 1, cs = M` it is the transpose of a `[K, M]` tensor.
#[derive(Clone, Copy, Debug)]
pub struct WeightMatrix<'a> {
    view: TensorView<'a>,
    rows: usize,
    cols: usize,
    rs: usize,
    cs: usize,
}

impl<'a> WeightMatrix<'a> {
    /// A `rows × cols` matrix over `view` with strides `rs`, `cs` (in elements); `None` if the
    /// view is too short (or the extent overflows).
    pub fn new(
        view: TensorView<'a>,
        rows: usize,
        cols: usize,
        rs: usize,
        cs: usize,
    ) -> Option<Self> {
        (span(rows, cols, rs, cs)? <= view.len()).then_some(WeightMatrix {
            view,
            rows,
            cols,
            rs,
            cs,
        })
    }
}

impl PackA for WeightMatrix<'_> {
    fn dims(&self) -> (usize, usize) {
        (self.rows, self.cols)
    }
    fn pack_a(&self, m0: usize, mc: usize, k0: usize, kc: usize, mr: usize, dst: &mut [f32]) {
        let (v, rs, cs) = (&self.view, self.rs, self.cs);
        if rs == 1 && cs != 1 {
            // Columns are contiguous (a transposed convolution's `[C_in, C_out·4]` weights): the
            // `mr` rows of a panel at one depth are adjacent values, i.e. one panel row.
            for (s, panel) in dst
                .chunks_exact_mut(kc * mr)
                .take(mc.div_ceil(mr))
                .enumerate()
            {
                let here = mr.min(mc - s * mr);
                for (p, row) in panel.chunks_exact_mut(mr).enumerate() {
                    v.read_into((k0 + p) * cs + m0 + s * mr, &mut row[..here]);
                    row[here..].fill(0.0);
                }
            }
            return;
        }
        if cs != 1 || kc > super::KC {
            pack_rows(mc, kc, mr, dst, |r, p| v.get((m0 + r) * rs + (k0 + p) * cs));
            return;
        }
        // Rows are contiguous (the usual `[M, K]` weights): decode each row segment in one
        // tight loop, then spread it over the micro-panel.
        let mut buf = [0.0f32; super::KC];
        let buf = &mut buf[..kc];
        for (s, panel) in dst
            .chunks_exact_mut(kc * mr)
            .take(mc.div_ceil(mr))
            .enumerate()
        {
            for r in 0..mr {
                let row = s * mr + r;
                if row < mc {
                    v.read_into((m0 + row) * rs + k0, buf);
                } else {
                    buf.fill(0.0);
                }
                for (p, &x) in buf.iter().enumerate() {
                    panel[p * mr + r] = x;
                }
            }
        }
    }
}

/// What happens to `C` when it is stored: `bias` (row `i` gets `bias[i / group]`; `group = 4`
/// serves a transposed convolution whose rows are `(channel, 2×2 offset)`), added on the first K
/// block, then ReLU on the final one if `relu`. ReLU maps negatives to 0 and keeps NaN (as
/// PyTorch does).
#[derive(Clone, Copy, Debug)]
pub struct Epilogue<'a> {
    bias: Option<TensorView<'a>>,
    group: usize,
    relu: bool,
}

impl<'a> Epilogue<'a> {
    /// Plain product: no bias, no activation.
    pub const NONE: Epilogue<'static> = Epilogue {
        bias: None,
        group: 1,
        relu: false,
    };

    /// Bias (one value per `group` rows; `group ≥ 1`, 0 is read as 1) and optional ReLU.
    pub fn new(bias: Option<TensorView<'a>>, group: usize, relu: bool) -> Self {
        Epilogue {
            bias,
            group: group.max(1),
            relu,
        }
    }

    /// True if the bias covers `rows` rows.
    pub(crate) fn covers(&self, rows: usize) -> bool {
        self.bias
            .is_none_or(|b| b.len() >= rows.div_ceil(self.group))
    }

    /// Bias of row `i`.
    #[inline(always)]
    pub(crate) fn bias(&self, i: usize) -> f32 {
        // A plain `match` (not `map_or` with a closure, which the compiler kept out of line: a
        // call per stored row, 2.5 % of a base-16 tile whose products have K = 16).
        match self.bias {
            None => 0.0,
            Some(b) => b.get(i / self.group),
        }
    }

    /// Whether the final store applies ReLU.
    #[inline(always)]
    pub(crate) fn relu(&self) -> bool {
        self.relu
    }
}

/// Stores one row of a tile: `out = (first ? bias : out) + t`, then ReLU if `relu_now`.
#[inline(always)]
pub(crate) fn store_row(out: &mut [f32], t: &[f32], bias: f32, first: bool, relu_now: bool) {
    match (first, relu_now) {
        (true, false) => out.iter_mut().zip(t).for_each(|(o, &t)| *o = bias + t),
        (false, false) => out.iter_mut().zip(t).for_each(|(o, &t)| *o += t),
        (true, true) => out
            .iter_mut()
            .zip(t)
            .for_each(|(o, &t)| *o = relu(bias + t)),
        (false, true) => out.iter_mut().zip(t).for_each(|(o, &t)| *o = relu(*o + t)),
    }
}

/// ReLU that keeps NaN: `v < 0` is false for NaN.
#[inline(always)]
pub(crate) fn relu(v: f32) -> f32 {
    if v < 0.0 {
        0.0
    } else {
        v
    }
}

/// A row-major destination: element `(i, j)` is `data[i·rs + j]`, written through an
/// [`Epilogue`].
#[derive(Debug)]
pub struct MatMut<'a, 'b> {
    data: &'a mut [f32],
    rows: usize,
    cols: usize,
    rs: usize,
    epilogue: Epilogue<'b>,
}

impl<'a, 'b> MatMut<'a, 'b> {
    /// A `rows × cols` destination with row stride `rs`; `None` if `data` is too short, the
    /// extent overflows, or the epilogue's bias does not cover `rows`.
    pub fn new(
        data: &'a mut [f32],
        rows: usize,
        cols: usize,
        rs: usize,
        epilogue: Epilogue<'b>,
    ) -> Option<Self> {
        (span(rows, cols, rs, 1)? <= data.len() && epilogue.covers(rows)).then_some(MatMut {
            data,
            rows,
            cols,
            rs,
            epilogue,
        })
    }
}

impl Dest for MatMut<'_, '_> {
    fn dims(&self) -> (usize, usize) {
        (self.rows, self.cols)
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
        let relu_now = last && self.epilogue.relu();
        for r in 0..rows {
            let i = m0 + r;
            let bias = if first { self.epilogue.bias(i) } else { 0.0 };
            let start = i * self.rs + n0;
            store_row(
                &mut self.data[start..start + cols],
                &tile[r * stride..r * stride + cols],
                bias,
                first,
                relu_now,
            );
        }
    }
}

/// A row-major destination that several workers fill at once, each through its own columns
/// ([`super::SharedDest`], for [`super::gemm_exec`]): element `(i, j)` is `data[i·rs + j]` with
/// `rs ≥ cols`, written through an [`Epilogue`]. Holds the `&mut` borrow of `data` for its
/// lifetime.
#[derive(Debug)]
pub struct MatShared<'a, 'b> {
    ptr: *mut f32,
    len: usize,
    rows: usize,
    cols: usize,
    rs: usize,
    epilogue: Epilogue<'b>,
    _data: PhantomData<&'a mut [f32]>,
}

// SAFETY: a `MatShared` is an exclusive borrow of `[f32]` handed to several threads, which write
// disjoint columns (`SharedDest` contract); `Epilogue` is read-only.
unsafe impl Sync for MatShared<'_, '_> {}
// SAFETY: as above.
unsafe impl Send for MatShared<'_, '_> {}

impl<'a, 'b> MatShared<'a, 'b> {
    /// A `rows × cols` destination with row stride `rs`; `None` if `rs < cols` (rows would
    /// overlap), `data` is too short, the extent overflows, or the bias does not cover `rows`.
    pub fn new(
        data: &'a mut [f32],
        rows: usize,
        cols: usize,
        rs: usize,
        epilogue: Epilogue<'b>,
    ) -> Option<Self> {
        // SAFETY: `data` is borrowed mutably for `'a`, so nothing else covers its elements.
        unsafe { MatShared::from_raw(data.as_mut_ptr(), data.len(), rows, cols, rs, epilogue) }
    }

    /// [`MatShared::new`] over `len` elements at `ptr` (e.g. a [`crate::conv::Band`], whose
    /// other rows other threads may be writing meanwhile); the same checks.
    ///
    /// # Safety
    /// `ptr..ptr + len` must be valid for writes for `'a`, and no other reference may cover the
    /// elements this destination writes (`rows × cols`, rows `rs` apart) while it lives.
    pub(crate) unsafe fn from_raw(
        ptr: *mut f32,
        len: usize,
        rows: usize,
        cols: usize,
        rs: usize,
        epilogue: Epilogue<'b>,
    ) -> Option<Self> {
        (rs >= cols && span(rows, cols, rs, 1)? <= len && epilogue.covers(rows)).then_some(
            MatShared {
                ptr,
                len,
                rows,
                cols,
                rs,
                epilogue,
                _data: PhantomData,
            },
        )
    }
}

// SAFETY: `store_shared` writes row `i`'s elements `i·rs + n0 .. i·rs + n0 + cols`, i.e. only
// columns `n0..n0 + cols` (rows do not overlap since `rs ≥ cols`), and reads only those.
unsafe impl super::SharedDest for MatShared<'_, '_> {
    fn dims(&self) -> (usize, usize) {
        (self.rows, self.cols)
    }
    #[inline(always)]
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
    ) {
        let relu_now = last && self.epilogue.relu();
        for r in 0..rows {
            let i = m0 + r;
            let bias = if first { self.epilogue.bias(i) } else { 0.0 };
            let start = i * self.rs + n0;
            // The GEMM stores inside `dims` only; checked like a slice index would be.
            assert!(start + cols <= self.len && n0 + cols <= self.cols);
            // The same row 4 tiles on (the next stores there, in the shallow products' rows-
            // outer order): the stores of a first layer missed the caches and stalled.
            let ahead = self.ptr.wrapping_add(start + 4 * stride);
            super::prefetch(ahead);
            super::prefetch(ahead.wrapping_add(ALIGN));
            // SAFETY: in bounds of the borrowed slice (checked above); no other live reference
            // covers these elements: concurrent calls have disjoint columns (caller contract)
            // and the slice dies at the end of this iteration.
            let out = unsafe { core::slice::from_raw_parts_mut(self.ptr.add(start), cols) };
            store_row(
                out,
                &tile[r * stride..r * stride + cols],
                bias,
                first,
                relu_now,
            );
        }
    }
}
