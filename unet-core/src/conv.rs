//! The layers of the network on CHW f32 feature maps: 3×3 convolution (+bias, optional ReLU) over
//! one map or the virtual concatenation of a cropped skip and an up-sampled map, 2×2 stride-2
//! transposed convolution, 2×2 max-pool.
//!
//! Layout: a map with `c` channels of `h × w` pixels stores `(ch, y, x)` at `(ch·h + y)·w + x`.
//! Weights are read straight from the model bytes through [`TensorView`] (any dtype, any
//! alignment).

use crate::arch::Padding;
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
/// `out_h × out_w` pixels from `c_in` input channels.
pub fn conv3x3_pack_len(_c_out: usize, _c_in: usize, _out_h: usize, _out_w: usize) -> usize {
    0
}

/// Scratch (f32 elements) that [`up2x2`] needs.
pub fn up2x2_pack_len(_c_out: usize, _c_in: usize, _in_h: usize, _in_w: usize) -> usize {
    0
}

/// 3×3 stride-1 convolution: `out[co, y, x] = b[co] + Σ_ci Σ_i Σ_j in[ci, y+i−p, x+j−p] ·
/// w[co, ci, i, j]`, with `p = 0` (valid) or `p = 1` (same, zeros outside the window), then
/// ReLU if `relu`.
///
/// Shapes: `w` is `[out.c, input.channels(), 3, 3]`, `b` is `[out.c]`; the output is
/// `(input.h − 2) × (input.w − 2)` for valid and `input.h × input.w` for same. `pack` is scratch
/// of at least [`conv3x3_pack_len`] elements; its contents on return are unspecified.
pub fn conv3x3(
    w: &TensorView<'_>,
    b: &TensorView<'_>,
    input: &ConvInput<'_>,
    padding: Padding,
    relu: bool,
    out: MapMut<'_>,
    _pack: &mut [f32],
) {
    let cin = input.channels();
    let p = match padding {
        Padding::Valid => 0isize,
        Padding::Same => 1,
    };
    for co in 0..out.c {
        for y in 0..out.h {
            for x in 0..out.w {
                let mut acc = b.get(co);
                for ci in 0..cin {
                    for i in 0..3 {
                        let yy = y as isize + i as isize - p;
                        if yy < 0 || yy >= input.h as isize {
                            continue;
                        }
                        for j in 0..3 {
                            let xx = x as isize + j as isize - p;
                            if xx < 0 || xx >= input.w as isize {
                                continue;
                            }
                            acc += input.at(ci, yy as usize, xx as usize)
                                * w.get(((co * cin + ci) * 3 + i) * 3 + j);
                        }
                    }
                }
                out.data[(co * out.h + y) * out.w + x] = if relu { acc.max(0.0) } else { acc };
            }
        }
    }
}

/// 2×2 stride-2 transposed convolution: `out[co, 2y+i, 2x+j] = b[co] + Σ_ci in[ci, y, x] ·
/// w[ci, co, i, j]`. Shapes: `w` is `[input.c, out.c, 2, 2]`, `b` is `[out.c]`, `out` is
/// `2·input.h × 2·input.w`. No activation (as in the paper). `pack`: at least
/// [`up2x2_pack_len`] elements.
pub fn up2x2(
    w: &TensorView<'_>,
    b: &TensorView<'_>,
    input: Map<'_>,
    out: MapMut<'_>,
    _pack: &mut [f32],
) {
    let (cin, cout) = (input.c, out.c);
    for co in 0..cout {
        for y in 0..input.h {
            for x in 0..input.w {
                for i in 0..2 {
                    for j in 0..2 {
                        let mut acc = b.get(co);
                        for ci in 0..cin {
                            acc += input.data[(ci * input.h + y) * input.w + x]
                                * w.get(((ci * cout + co) * 2 + i) * 2 + j);
                        }
                        out.data[(co * out.h + 2 * y + i) * out.w + 2 * x + j] = acc;
                    }
                }
            }
        }
    }
}

/// 2×2 stride-2 max-pool: `out[c, y, x] = max(in[c, 2y..2y+2, 2x..2x+2])`; `out` is
/// `input.h/2 × input.w/2` with the same channels (sizes are even by geometry). NaN in a window
/// propagates.
pub fn maxpool2x2(input: Map<'_>, out: MapMut<'_>) {
    for c in 0..input.c {
        for y in 0..out.h {
            for x in 0..out.w {
                let at = |yy: usize, xx: usize| input.data[(c * input.h + yy) * input.w + xx];
                let (a, b2) = (at(2 * y, 2 * x), at(2 * y, 2 * x + 1));
                let (c2, d) = (at(2 * y + 1, 2 * x), at(2 * y + 1, 2 * x + 1));
                out.data[(c * out.h + y) * out.w + x] = nan_max(nan_max(a, b2), nan_max(c2, d));
            }
        }
    }
}

/// `max` that returns NaN if either argument is NaN (as PyTorch's max-pool does).
#[inline(always)]
pub fn nan_max(a: f32, b: f32) -> f32 {
    if a.is_nan() || b.is_nan() {
        f32::NAN
    } else if a >= b {
        a
    } else {
        b
    }
}
