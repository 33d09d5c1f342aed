//! The layers of the network on CHW f32 feature maps: 3×3 convolution (+bias, optional ReLU) over
//! one map or the virtual concatenation of a cropped skip and an up-sampled map, 2×2 stride-2
//! transposed convolution, 2×2 max-pool.
//!
//! Layout: a map with `c` channels of `h × w` pixels stores `(ch, y, x)` at `(ch·h + y)·w + x`.
//! Weights are read straight from the model bytes through [`TensorView`] (any dtype, any
//! alignment).
//!
//! Both convolutions are products computed by [`crate::gemm`] inside the caller's `pack`
//! scratch:
//! - [`conv3x3`]: `M = C_out`, `K = C_in·9`, `N = out_h·out_w`; A is the weight tensor
//!   `[C_out, C_in·9]` as stored; B is the im2col matrix of the input, which is never
//!   materialised: it is generated panel by panel while packing (`Im2col`), straight from the
//!   one or two (cropped) input maps, with zeros outside the window for 'same' padding.
//! - [`up2x2`]: `M = C_out·4` (rows `(co, i, j)`), `K = C_in`, `N = in_h·in_w`; A is the
//!   transpose of the stored `[C_in, C_out·4]` weights, B is the input map itself, and the
//!   destination scatters row `(co, i, j)`, column `(y, x)` to `out[co, 2y+i, 2x+j]`.

// `Error` is the crate's single error type (large because it carries a `Shape`); without
// `alloc` it cannot be boxed, so the size lint is accepted here.
#![allow(clippy::result_large_err)]

use crate::arch::Padding;
use crate::error::Error;
use core::marker::PhantomData;

use crate::exec::{Executor, Sequential, Shared};
use crate::gemm::{self, Epilogue, Kernel, MatRef, MatShared, PackB, SharedDest, WeightMatrix};
use crate::tensor::TensorView;

/// A read-only CHW feature map. `data.len() >= c·h·w`.
#[derive(Clone, Copy, Debug)]
pub struct Map<'s> {
    /// Elements, `(ch·h + y)·w + x`.
    pub data: &'s [f32],
    /// Channels.
    pub c: usize,
    /// Height.
    pub h: usize,
    /// Width.
    pub w: usize,
}

/// A writable CHW feature map. `data.len() >= c·h·w`.
#[derive(Debug)]
pub struct MapMut<'s> {
    /// Elements, `(ch·h + y)·w + x`.
    pub data: &'s mut [f32],
    /// Channels.
    pub c: usize,
    /// Height.
    pub h: usize,
    /// Width.
    pub w: usize,
}

/// A writable CHW map whose channel planes are `plane` elements apart (`plane ≥ h·w`): a whole
/// map (`plane = h·w`) or a run of `h` rows of a taller map (`plane` = that map's `h·w`).
/// Element `(c, y, x)` is at `c·plane + y·w + x` from the band's first pixel. Held as a raw
/// pointer so that several threads may write disjoint runs of rows of one map at once, each
/// through its own `Band`; the borrow of the map's elements lasts `'s`.
pub(crate) struct Band<'s> {
    ptr: *mut f32,
    /// Elements reachable from `ptr`: [`Band::span`]`(c, h, w, plane)`.
    len: usize,
    /// Channels.
    pub c: usize,
    /// Rows.
    pub h: usize,
    /// Pixels per row.
    pub w: usize,
    /// Distance between channel planes (elements).
    pub plane: usize,
    _borrow: PhantomData<&'s mut [f32]>,
}

// SAFETY: a `Band` is an exclusive borrow of some elements handed to several threads, which write
// disjoint pixels (the contract of `Band::row`); it is as safe to send as `&mut [f32]`.
unsafe impl Sync for Band<'_> {}
// SAFETY: as above.
unsafe impl Send for Band<'_> {}

impl<'s> Band<'s> {
    /// Elements a band of `c × h × w` with planes `plane` apart reaches: `(c − 1)·plane + h·w`
    /// (0 when empty); `None` if `plane < h·w` or on overflow.
    pub(crate) fn span(c: usize, h: usize, w: usize, plane: usize) -> Option<usize> {
        let hw = h.checked_mul(w)?;
        if plane < hw {
            return None;
        }
        if c == 0 || hw == 0 {
            return Some(0);
        }
        (c - 1).checked_mul(plane)?.checked_add(hw)
    }

    /// The whole of `map`; `None` if `data` is shorter than `c·h·w` (or that overflows).
    pub(crate) fn whole(map: MapMut<'s>) -> Option<Band<'s>> {
        let plane = map.h.checked_mul(map.w)?;
        let len = Band::span(map.c, map.h, map.w, plane)?;
        (map.data.len() >= map.c.checked_mul(plane)?).then_some(Band {
            ptr: map.data.as_mut_ptr(),
            len,
            c: map.c,
            h: map.h,
            w: map.w,
            plane,
            _borrow: PhantomData,
        })
    }

    /// [`Band::whole`], or the error for a short `map`: [`Error::BufferTooSmall`] naming
    /// `buffer` ([`Error::Overflow`] if `c·h·w` overflows).
    pub(crate) fn of_map(map: MapMut<'s>, buffer: &'static str) -> Result<Band<'s>, Error> {
        let needed = map
            .c
            .checked_mul(map.h)
            .and_then(|v| v.checked_mul(map.w))
            .ok_or(Error::Overflow)?;
        let got = map.data.len();
        Band::whole(map).ok_or(Error::BufferTooSmall {
            buffer,
            needed,
            got,
        })
    }

    /// Rows `r0..r0 + h` of the `c × full_h × w` map stored in `map` (`None` if they leave it
    /// or `map` is shorter than `c·full_h·w`).
    ///
    /// # Safety
    /// While the band lives, no other reference (on any thread) may cover these rows' pixels;
    /// other rows of the map may be written meanwhile through other bands.
    pub(crate) unsafe fn rows(
        map: &Shared<'s, f32>,
        (c, full_h, w): (usize, usize, usize),
        r0: usize,
        h: usize,
    ) -> Option<Band<'s>> {
        let plane = full_h.checked_mul(w)?;
        if r0.checked_add(h)? > full_h || map.len() < c.checked_mul(plane)? {
            return None;
        }
        let len = Band::span(c, h, w, plane)?;
        Some(Band {
            // In bounds: `r0·w ≤ full_h·w ≤ map.len()` (checked above).
            ptr: map.ptr().wrapping_add(r0 * w),
            len,
            c,
            h,
            w,
            plane,
            _borrow: PhantomData,
        })
    }

    /// The address of pixel `(c, y, x)`, for prefetch hints only (wrapping arithmetic: may lie
    /// outside the band, never dereferenced).
    #[inline(always)]
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    pub(crate) fn addr(&self, c: usize, y: usize, x: usize) -> *const f32 {
        self.ptr.wrapping_add(
            c.wrapping_mul(self.plane)
                .wrapping_add(y.wrapping_mul(self.w))
                .wrapping_add(x),
        ) as *const f32
    }

    /// Pixels `x..x + n` of row `y` of channel `c`. Panics if they leave the band (callers
    /// only ask for pixels inside it).
    ///
    /// # Safety
    /// No other live reference (on any thread) may cover these pixels while the slice lives.
    #[allow(clippy::mut_from_ref)]
    #[inline(always)]
    pub(crate) unsafe fn row(&self, c: usize, y: usize, x: usize, n: usize) -> &mut [f32] {
        assert!(c < self.c && y < self.h && x + n <= self.w);
        let at = c * self.plane + y * self.w + x;
        debug_assert!(at + n <= self.len);
        // SAFETY: in bounds (checked above: `at + n ≤ (c − 1)·plane + h·w = len`) of the
        // elements borrowed for `'s`; exclusivity is the caller's guarantee.
        unsafe { core::slice::from_raw_parts_mut(self.ptr.add(at), n) }
    }

    /// Rows `y..y + k` of channel `c` (`k·w` pixels), to read. Panics if they leave the band.
    ///
    /// # Safety
    /// No thread may write these pixels while the slice lives.
    #[inline(always)]
    pub(crate) unsafe fn lines(&self, c: usize, y: usize, k: usize) -> &[f32] {
        assert!(c < self.c && y + k <= self.h);
        let at = c * self.plane + y * self.w;
        // SAFETY: in bounds (`at + k·w ≤ (c − 1)·plane + h·w = len`) of the borrowed elements;
        // nobody writes them meanwhile (the caller's guarantee).
        unsafe { core::slice::from_raw_parts(self.ptr.add(at), k * self.w) }
    }

    /// The first pixel and the elements reachable from it (for destinations that address the
    /// band themselves).
    pub(crate) fn raw(&self) -> (*mut f32, usize) {
        (self.ptr, self.len)
    }
}

/// One part of a convolution input: `map` seen through a window whose top-left corner is at
/// `(off_y, off_x)` (a centre crop of a skip connection; `(0, 0)` for an uncropped map).
#[derive(Clone, Copy, Debug)]
pub struct Part<'s> {
    /// The stored map.
    pub map: Map<'s>,
    /// Row of the window's origin inside `map`.
    pub off_y: usize,
    /// Column of the window's origin inside `map`.
    pub off_x: usize,
}

/// Input of a 3×3 convolution: the channel-wise concatenation of one or two parts, all seen
/// through windows of `h × w`. Channels of `parts[0]` come first (the skip connection in a
/// decoder), then those of `parts[1]` (the up-sampled map). Nothing is copied.
#[derive(Clone, Copy, Debug)]
pub struct ConvInput<'s> {
    /// The parts; the second is `None` outside decoder levels.
    pub parts: [Option<Part<'s>>; 2],
    /// Window height.
    pub h: usize,
    /// Window width.
    pub w: usize,
}

impl<'s> ConvInput<'s> {
    /// A single uncropped map.
    pub fn single(map: Map<'s>) -> Self {
        ConvInput {
            parts: [
                Some(Part {
                    map,
                    off_y: 0,
                    off_x: 0,
                }),
                None,
            ],
            h: map.h,
            w: map.w,
        }
    }
    /// Total channels of all parts.
    pub fn channels(&self) -> usize {
        self.parts.iter().flatten().map(|p| p.map.c).sum()
    }

    /// Channel `ci` of the concatenation: its plane, the plane's width and the window's origin
    /// in it (`(&[], 0, 0, 0)` past the last channel).
    #[inline]
    pub(crate) fn plane(&self, mut ci: usize) -> (&'s [f32], usize, usize, usize) {
        for p in self.parts.iter().flatten() {
            let m = &p.map;
            if ci < m.c {
                let len = m.h * m.w;
                return (&m.data[ci * len..(ci + 1) * len], m.w, p.off_y, p.off_x);
            }
            ci -= m.c;
        }
        (&[], 0, 0, 0)
    }
    /// Value of input channel `ch` at window position `(y, x)` (no bounds check against the
    /// window; callers stay inside it).
    #[inline(always)]
    pub fn at(&self, mut ch: usize, y: usize, x: usize) -> f32 {
        for p in self.parts.iter().flatten() {
            if ch < p.map.c {
                let m = &p.map;
                return m.data[(ch * m.h + y + p.off_y) * m.w + x + p.off_x];
            }
            ch -= p.map.c;
        }
        0.0
    }
}

/// Scratch (f32 elements) that [`conv3x3`] needs for an output of `c_out` channels over
/// `out_h × out_w` pixels from `c_in` input channels (any kernel of this target). Bounded by the
/// GEMM blocking (at most `MC·KC + KC·NC + 2·ALIGN` = 280,608 elements, 1.1 MiB) and by the layer's own
/// size; never overflows.
pub fn conv3x3_pack_len(c_out: usize, c_in: usize, out_h: usize, out_w: usize) -> usize {
    gemm::pack_len(c_out, out_h.saturating_mul(out_w), c_in.saturating_mul(9))
}

/// Scratch (f32 elements) that [`up2x2`] needs for `c_out` output channels from a `c_in ×
/// in_h × in_w` input (any kernel of this target). Never overflows.
pub fn up2x2_pack_len(c_out: usize, c_in: usize, in_h: usize, in_w: usize) -> usize {
    gemm::pack_len(c_out.saturating_mul(4), in_h.saturating_mul(in_w), c_in)
}

/// 3×3 stride-1 convolution: `out[co, y, x] = b[co] + Σ_ci Σ_i Σ_j in[ci, y+i−p, x+j−p] ·
/// w[co, ci, i, j]`, with `p = 0` (valid) or `p = 1` (same, zeros outside the window), then
/// ReLU if `relu` (negatives to 0, NaN kept).
///
/// Shapes: `w` is `[out.c, input.channels(), 3, 3]`, `b` is `[out.c]`; the output is
/// `(input.h − 2) × (input.w − 2)` for valid and `input.h × input.w` for same. `pack` is scratch
/// of at least [`conv3x3_pack_len`] elements; its contents on return are unspecified. Uses
/// [`Kernel::best`].
///
/// # Panics
/// Only outside that contract (the checks of [`conv3x3_with`] fail); see there for a
/// fallible version.
pub fn conv3x3(
    w: &TensorView<'_>,
    b: &TensorView<'_>,
    input: &ConvInput<'_>,
    padding: Padding,
    relu: bool,
    out: MapMut<'_>,
    pack: &mut [f32],
) {
    if let Err(e) = conv3x3_with(Kernel::best(), w, b, input, padding, relu, out, pack) {
        panic!("conv3x3 called outside its contract: {e}");
    }
}

/// [`conv3x3`] with an explicit micro-kernel, checking every size first.
///
/// Errors ([`Error::InvalidArgument`] / [`Error::BufferTooSmall`] / [`Error::Overflow`]), with
/// nothing written: a part's window leaves its map or its data is short; the output size does
/// not match the padding; `w` does not have exactly `out.c · channels · 9` elements; `b` has
/// fewer than `out.c`; `out.data` or `pack` is too short.
#[allow(clippy::too_many_arguments)]
pub fn conv3x3_with(
    kernel: Kernel,
    w: &TensorView<'_>,
    b: &TensorView<'_>,
    input: &ConvInput<'_>,
    padding: Padding,
    relu: bool,
    out: MapMut<'_>,
    pack: &mut [f32],
) -> Result<(), Error> {
    conv3x3_exec(kernel, &Sequential, w, b, input, padding, relu, out, pack)
}

/// [`conv3x3_with`] on the workers of `exec`: the output pixels (GEMM columns) are split between
/// them ([`gemm::gemm_exec`]); the result is bit-identical to one worker's. `pack` is cut into
/// `exec.workers()` equal parts, each of at least [`conv3x3_pack_len`] elements (errors and
/// guarantees otherwise as [`conv3x3_with`]).
#[allow(clippy::too_many_arguments)]
pub fn conv3x3_exec(
    kernel: Kernel,
    exec: &dyn Executor,
    w: &TensorView<'_>,
    b: &TensorView<'_>,
    input: &ConvInput<'_>,
    padding: Padding,
    relu: bool,
    out: MapMut<'_>,
    pack: &mut [f32],
) -> Result<(), Error> {
    let bad = |what| Err(Error::InvalidArgument { what });
    let pad = match padding {
        Padding::Valid => 0,
        Padding::Same => 1,
    };
    for p in input.parts.iter().flatten() {
        let m = &p.map;
        if m.data.len()
            < m.c
                .checked_mul(m.h)
                .and_then(|v| v.checked_mul(m.w))
                .ok_or(Error::Overflow)?
        {
            return bad("conv3x3: input map data shorter than c·h·w");
        }
        if p.off_y.checked_add(input.h).is_none_or(|e| e > m.h)
            || p.off_x.checked_add(input.w).is_none_or(|e| e > m.w)
        {
            return bad("conv3x3: input window leaves its map");
        }
    }
    let out = Band::of_map(out, "conv3x3 output")?;
    conv3x3_band(kernel, exec, w, b, input, pad, relu, out, pack)
}

/// [`conv3x3_exec`] into a [`Band`] (its window checked by the caller; `pad` 0 or 1): the
/// same checks of everything else, the same bits.
#[allow(clippy::too_many_arguments)]
pub(crate) fn conv3x3_band(
    kernel: Kernel,
    exec: &dyn Executor,
    w: &TensorView<'_>,
    b: &TensorView<'_>,
    input: &ConvInput<'_>,
    pad: usize,
    relu: bool,
    out: Band<'_>,
    pack: &mut [f32],
) -> Result<(), Error> {
    let bad = |what| Err(Error::InvalidArgument { what });
    let expect = |s: usize| if pad == 1 { Some(s) } else { s.checked_sub(2) };
    if expect(input.h) != Some(out.h) || expect(input.w) != Some(out.w) {
        return bad("conv3x3: output size does not match input size and padding");
    }
    let cin = input.channels();
    let k = cin.checked_mul(9).ok_or(Error::Overflow)?;
    let n = out.h.checked_mul(out.w).ok_or(Error::Overflow)?;
    if out.c.checked_mul(k) != Some(w.len()) {
        return bad("conv3x3: weights are not [c_out, c_in, 3, 3]");
    }
    if b.len() < out.c {
        return bad("conv3x3: bias shorter than c_out");
    }
    if cin == 1 && out.c <= crate::single::MAX_COUT && crate::single::supports(kernel) {
        return crate::single::conv3x3_single(kernel, exec, w, b, input, pad, relu, out);
    }
    let a = WeightMatrix::new(*w, out.c, k, k, 1).ok_or(Error::Overflow)?;
    let im2col = Im2col {
        input,
        pad,
        out_h: out.h,
        out_w: out.w,
    };
    let epilogue = Epilogue::new(Some(*b), 1, relu);
    let (ptr, len) = out.raw();
    // SAFETY: the band's elements, borrowed as long as `out`; row `co` of the product is
    // channel `co`'s `h·w` pixels, `plane` apart, which only this call writes.
    let mut dest = unsafe { MatShared::from_raw(ptr, len, out.c, n, out.plane, epilogue) }.ok_or(
        Error::InvalidArgument {
            what: "internal: conv3x3 output band",
        },
    )?;
    gemm::gemm_exec(kernel, exec, &a, &im2col, &mut dest, pack)
}

/// The im2col matrix of a [`ConvInput`], generated while packing: row `ci·9 + 3i + j`, column
/// `y·out_w + x` is `in[ci, y + i − pad, x + j − pad]` (0 outside the window). Sizes were
/// checked by [`conv3x3_with`].
struct Im2col<'a, 's> {
    input: &'a ConvInput<'s>,
    pad: usize,
    out_h: usize,
    out_w: usize,
}

impl PackB for Im2col<'_, '_> {
    fn dims(&self) -> (usize, usize) {
        (self.input.channels() * 9, self.out_h * self.out_w)
    }

    fn pack_b(&self, k0: usize, kc: usize, n0: usize, nc: usize, nr: usize, dst: &mut [f32]) {
        // Depth-major: for one depth `(ci, i, j)` every output row of the block reads one input
        // row, so a run of columns is one contiguous source, spread over the micro-panels.
        let (ih, iw, ow, pad) = (self.input.h, self.input.w, self.out_w, self.pad);
        let strips = nc.div_ceil(nr);
        let dst = &mut dst[..strips * kc * nr];
        let (mut ci, mut ij) = (k0 / 9, k0 % 9);
        let mut plane = self.input.plane(ci);
        for p in 0..kc {
            let (i, j) = (ij / 3, ij % 3);
            let (data, mw, off_y, off_x) = plane;
            let (mut y, mut x, mut c) = (n0 / ow, n0 % ow, 0);
            while c < nc {
                let len = (nc - c).min(ow - x);
                // Padded coordinates: input row `y + i − pad`, input columns `x + j + t − pad`.
                let yy = y + i;
                if yy < pad || yy - pad >= ih {
                    spread(dst, kc, nr, p, c, len, None);
                } else {
                    let start = (yy - pad + off_y) * mw + off_x;
                    let src = &data[start..start + iw];
                    let xs = x + j;
                    // Leading columns left of the window (at most `pad`), then the inside, then
                    // trailing columns right of it.
                    let lead = pad.saturating_sub(xs).min(len);
                    let first = xs + lead - pad;
                    let inside = iw.saturating_sub(first).min(len - lead);
                    spread(dst, kc, nr, p, c, lead, None);
                    if inside > 0 {
                        let run = Some(&src[first..first + inside]);
                        spread(dst, kc, nr, p, c + lead, inside, run);
                    }
                    let rest = len - lead - inside;
                    spread(dst, kc, nr, p, c + lead + inside, rest, None);
                }
                c += len;
                x = 0;
                y += 1;
            }
            // Columns past `nc` in the last micro-panel.
            spread(dst, kc, nr, p, nc, strips * nr - nc, None);
            ij += 1;
            if ij == 9 {
                ij = 0;
                ci += 1;
                plane = self.input.plane(ci);
            }
        }
    }
}

/// Writes block columns `c..c + len` of packed depth `p` (micro-panels of `nr` columns and
/// depth `kc`): from `src` (`src.len() == len`), or zeros.
#[inline(always)]
fn spread(
    dst: &mut [f32],
    kc: usize,
    nr: usize,
    p: usize,
    c: usize,
    len: usize,
    src: Option<&[f32]>,
) {
    let mut done = 0;
    while done < len {
        let col = c + done;
        let (s, off) = (col / nr, col % nr);
        let piece = (nr - off).min(len - done);
        let at = (s * kc + p) * nr + off;
        let d = &mut dst[at..at + piece];
        match src {
            Some(src) => {
                let s = &src[done..done + piece];
                // Whole micro-panel rows are the common case: copy them with a fixed length
                // (inline vector moves) instead of a `memcpy` call.
                match piece {
                    32 => d[..32].copy_from_slice(&s[..32]),
                    16 => d[..16].copy_from_slice(&s[..16]),
                    8 => d[..8].copy_from_slice(&s[..8]),
                    _ => d.copy_from_slice(s),
                }
            }
            None => d.fill(0.0),
        }
        done += piece;
    }
}

/// 2×2 stride-2 transposed convolution: `out[co, 2y+i, 2x+j] = b[co] + Σ_ci in[ci, y, x] ·
/// w[ci, co, i, j]`. Shapes: `w` is `[input.c, out.c, 2, 2]`, `b` is `[out.c]`, `out` is
/// `2·input.h × 2·input.w`. No activation (as in the paper). `pack`: at least
/// [`up2x2_pack_len`] elements. Uses [`Kernel::best`].
///
/// # Panics
/// Only outside that contract (the checks of [`up2x2_with`] fail).
pub fn up2x2(
    w: &TensorView<'_>,
    b: &TensorView<'_>,
    input: Map<'_>,
    out: MapMut<'_>,
    pack: &mut [f32],
) {
    if let Err(e) = up2x2_with(Kernel::best(), w, b, input, out, pack) {
        panic!("up2x2 called outside its contract: {e}");
    }
}

/// [`up2x2`] with an explicit micro-kernel, checking every size first (errors as for
/// [`conv3x3_with`]; nothing is written on error).
pub fn up2x2_with(
    kernel: Kernel,
    w: &TensorView<'_>,
    b: &TensorView<'_>,
    input: Map<'_>,
    out: MapMut<'_>,
    pack: &mut [f32],
) -> Result<(), Error> {
    up2x2_exec(kernel, &Sequential, w, b, input, out, pack)
}

/// [`up2x2_with`] on the workers of `exec` (input pixels split between them, bit-identical to
/// one worker); `pack` is cut into `exec.workers()` equal parts, each of at least
/// [`up2x2_pack_len`] elements.
pub fn up2x2_exec(
    kernel: Kernel,
    exec: &dyn Executor,
    w: &TensorView<'_>,
    b: &TensorView<'_>,
    input: Map<'_>,
    out: MapMut<'_>,
    pack: &mut [f32],
) -> Result<(), Error> {
    let rows = input.h;
    let out = Band::of_map(out, "up2x2 output")?;
    up2x2_band(kernel, exec, w, b, input, 0, rows, out, pack)
}

/// [`up2x2_exec`] of input rows `r0..r0 + rows` into a [`Band`] of `2·rows` output rows: the
/// same checks of everything else, the same bits.
#[allow(clippy::too_many_arguments)]
pub(crate) fn up2x2_band(
    kernel: Kernel,
    exec: &dyn Executor,
    w: &TensorView<'_>,
    b: &TensorView<'_>,
    input: Map<'_>,
    r0: usize,
    rows: usize,
    out: Band<'_>,
    pack: &mut [f32],
) -> Result<(), Error> {
    let bad = |what| Err(Error::InvalidArgument { what });
    let (cin, cout) = (input.c, out.c);
    if r0.checked_add(rows).is_none_or(|e| e > input.h) {
        return bad("up2x2: input rows leave the map");
    }
    let n = rows.checked_mul(input.w).ok_or(Error::Overflow)?;
    let m = cout.checked_mul(4).ok_or(Error::Overflow)?;
    if rows.checked_mul(2) != Some(out.h) || input.w.checked_mul(2) != Some(out.w) {
        return bad("up2x2: output is not twice the input size");
    }
    if cin.checked_mul(m) != Some(w.len()) {
        return bad("up2x2: weights are not [c_in, c_out, 2, 2]");
    }
    if b.len() < cout {
        return bad("up2x2: bias shorter than c_out");
    }
    let plane = input.h.checked_mul(input.w).ok_or(Error::Overflow)?;
    let got = input.data.len();
    let short = Error::BufferTooSmall {
        buffer: "up2x2 input",
        needed: cin.saturating_mul(plane),
        got,
    };
    if got < cin.checked_mul(plane).ok_or(Error::Overflow)? {
        return Err(short);
    }
    let bmat = MatRef::new(&input.data[r0 * input.w..], cin, n, plane, 1).ok_or(short)?;
    let a = WeightMatrix::new(*w, m, cin, 1, m).ok_or(Error::Overflow)?;
    let (ptr, len) = out.raw();
    let mut dest = Up2x2Dest {
        ptr,
        len,
        c: cout,
        plane: out.plane,
        w: out.w,
        in_w: input.w,
        n,
        epilogue: Epilogue::new(Some(*b), 4, false),
        _out: PhantomData,
    };
    gemm::gemm_exec(kernel, exec, &a, &bmat, &mut dest, pack)
}

/// Destination of [`up2x2`]: row `4·co + 2i + j`, column `y·in_w + x` goes to
/// `out[co, 2y+i, 2x+j]` (a [`Band`] of `c` planes `plane` apart with rows of `w` pixels at
/// `ptr`, `len` elements, borrowed `&mut` for `'o`). Each
/// output element belongs to exactly one column, so workers with disjoint columns write
/// disjoint elements. Sizes were checked by [`up2x2_exec`].
struct Up2x2Dest<'o, 'b> {
    ptr: *mut f32,
    len: usize,
    c: usize,
    plane: usize,
    w: usize,
    in_w: usize,
    n: usize,
    epilogue: Epilogue<'b>,
    _out: PhantomData<&'o mut [f32]>,
}

// SAFETY: an exclusive borrow of the output handed to the workers, which write disjoint
// columns, hence disjoint elements (`SharedDest` contract); the epilogue is read-only.
unsafe impl Sync for Up2x2Dest<'_, '_> {}

// SAFETY: column `(y, x)` of row `(co, i, j)` is the single element `out[co, 2y+i, 2x+j]`; a call
// for columns `n0..n0 + cols` reads and writes only those columns' elements (see below).
unsafe impl SharedDest for Up2x2Dest<'_, '_> {
    fn dims(&self) -> (usize, usize) {
        (self.c * 4, self.n)
    }

    // Inlined into the GEMM's loops, so that it is compiled with the kernel's target features.
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
        _last: bool,
    ) {
        let (plane, ow, iw) = (self.plane, self.w, self.in_w);
        let mut r = 0;
        while r < rows {
            let row = m0 + r;
            let (co, i, j) = (row / 4, (row / 2) % 2, row % 2);
            // Rows `(co, i, 0)` and `(co, i, 1)` fill the even and odd pixels of the same output
            // rows: stored together, interleaved, as contiguous runs.
            let pair = j == 0 && r + 1 < rows;
            let bias = if first { self.epilogue.bias(row) } else { 0.0 };
            let t = &tile[r * stride..r * stride + cols];
            let t1 = if pair {
                &tile[(r + 1) * stride..(r + 1) * stride + cols]
            } else {
                t
            };
            let (mut y, mut x, mut c) = (n0 / iw, n0 % iw, 0);
            while c < cols {
                let len = (cols - c).min(iw - x);
                let start = co * plane + (2 * y + i) * ow + 2 * x + j;
                let span = if pair { 2 * len } else { 2 * len - 1 };
                // Checked like a slice index would be (sizes were checked by `up2x2_exec`).
                assert!(co < self.c && start + span <= self.len);
                // SAFETY: in bounds (checked above). The slice spans output row `2y+i`, pixels
                // `2x+j .. 2x+j+span`, which all belong to columns `(y, x..x+len)` of this
                // call, so no concurrent call touches them (caller contract); it dies at the end
                // of this iteration.
                let run = unsafe { core::slice::from_raw_parts_mut(self.ptr.add(start), span) };
                // The next micro-tile's pixels of this row (its stores missed the caches).
                let ahead = self.ptr.wrapping_add(start + 2 * stride);
                for line in 0..(2 * stride).div_ceil(gemm::ALIGN) {
                    gemm::prefetch(ahead.wrapping_add(line * gemm::ALIGN));
                }
                let (a, b) = (&t[c..c + len], &t1[c..c + len]);
                match (pair, first) {
                    (true, true) => {
                        for ((o, &a), &b) in run.chunks_exact_mut(2).zip(a).zip(b) {
                            o[0] = bias + a;
                            o[1] = bias + b;
                        }
                    }
                    (true, false) => {
                        for ((o, &a), &b) in run.chunks_exact_mut(2).zip(a).zip(b) {
                            o[0] += a;
                            o[1] += b;
                        }
                    }
                    (false, true) => {
                        run.iter_mut()
                            .step_by(2)
                            .zip(a)
                            .for_each(|(o, &v)| *o = bias + v);
                    }
                    (false, false) => {
                        run.iter_mut().step_by(2).zip(a).for_each(|(o, &v)| *o += v);
                    }
                }
                c += len;
                x = 0;
                y += 1;
            }
            r += if pair { 2 } else { 1 };
        }
    }
}

pub use crate::pool::{maxpool2x2, maxpool2x2_exec, nan_max};
