//! Data augmentation (paper, section 3.1): one random spatial transform per tile — elastic
//! deformation composed with rotation, flips and shift — applied to the image, the target and
//! the weight map alike, plus a gray-value variation of the image.
//!
//! # The transform ([`Warp`])
//! A warp gives, for every pixel `(i, j)` of an output grid of `n_h × n_w` pixels, the continuous
//! source position `(sy, sx)` in the image (pixel centres at integer coordinates) to sample from:
//! ```text
//! p      = (i − (n_h − 1)/2, j − (n_w − 1)/2)        offset from the grid centre
//! q      = p + D(i, j)                               elastic displacement (pixels)
//! source = C + s + F · R90^k · R(θ) · q               C: centre in the image, s: shift
//! ```
//! - `D`: displacements `(dy, dx)` drawn i.i.d. from `N(0, elastic_sigma²)` on a coarse
//!   `elastic_grid × elastic_grid` grid of nodes spread evenly over the grid (corner nodes at the
//!   corner pixels), interpolated to every pixel with bicubic (Catmull-Rom, clamped at the
//!   border nodes) interpolation. Paper: 3×3 nodes, σ = 10 px. `elastic_sigma = 0` (or a grid
//!   of 0 nodes) gives `D = 0`; a grid of 1 node gives a constant displacement.
//! - `R(θ)`: free rotation, θ uniform in `[−rotation_deg, rotation_deg]` degrees (only drawn
//!   when `rotation_deg > 0`); `R90^k`: `k` uniform in `0..4` quarter turns (exact integer
//!   arithmetic) when `rot90`; `F`: independent flips of each axis with probability ½ when
//!   `flip`; `s`: uniform in `[−shift_px, shift_px]` on each axis.
//!
//! With even tile sizes and a centre `C` on a half-integer (what [`crate::sampler`] chooses),
//! flips, quarter turns and integer shifts map pixel centres to pixel centres, so without
//! elastic deformation and free rotation sampling is exact (no interpolation blur).
//!
//! # Sampling
//! - image: **bilinear**, per channel;
//! - target: **nearest** (rounding half away from zero), so only original label values appear;
//! - weight map: **nearest** as well, so every output pixel's weight is that of the very source
//!   pixel its target label comes from (ignored pixels keep weight 0 exactly, border weights are
//!   not smeared onto cell pixels).
//!
//! Positions outside the image are **mirrored** (numpy `np.pad(mode="symmetric")`, edge pixel
//! repeated, any distance; the same extension as unet-core's overlap-tile inference).
//!
//! # Gray values
//! Per tile, after warping: per channel with `lo`/`hi` its min/max over the tile, a gamma
//! `x ← lo + (hi − lo)·((x − lo)/(hi − lo))^γ` (γ log-uniform in `gamma`; skipped if `hi == lo`),
//! then contrast and brightness `x ← m + c·(x − m) + b` with `m` the tile mean before this step,
//! `c` uniform in `contrast`, `b` uniform in `[−brightness, brightness]`. The same `γ, c, b` for
//! every channel.
//!
//! # Randomness
//! All draws come from the caller's `rng`, in a fixed order (elastic nodes row-major `dy, dx`,
//! flips y then x, quarter turns, angle, shift y then x, then γ, c, b), each only when its
//! option is active: the same seed and parameters give the same transform.

use ndarray::{Array2, Array3, ArrayView2, ArrayView3, Axis};
use rand::Rng;
use rand_distr::{Distribution, Normal};

/// Augmentation parameters. `Default`: the paper's elastic deformation (3×3 grid, σ = 10 px),
/// flips, quarter turns, free rotation up to ±15°, no extra shift (the sampler already draws
/// the tile position), and mild gray-value variation (γ ∈ [0.8, 1.25], contrast ∈ [0.9, 1.1],
/// brightness ±0.1 in normalised units). [`AugmentParams::none`] is the identity.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AugmentParams {
    /// Standard deviation of the coarse-grid displacements in pixels (paper 10); 0 disables.
    pub elastic_sigma: f32,
    /// Nodes per axis of the coarse displacement grid (paper 3).
    pub elastic_grid: usize,
    /// Random flips of each axis.
    pub flip: bool,
    /// Random quarter turns.
    pub rot90: bool,
    /// Largest free rotation angle in degrees (uniform in ±this); 0 disables.
    pub rotation_deg: f32,
    /// Largest shift in pixels along each axis (uniform in ±this); 0 disables.
    pub shift_px: f32,
    /// Gamma range `(min, max)`, both > 0, drawn log-uniformly; `(1, 1)` disables.
    pub gamma: (f32, f32),
    /// Contrast factor range `(min, max)`; `(1, 1)` disables.
    pub contrast: (f32, f32),
    /// Largest brightness offset (uniform in ±this); 0 disables.
    pub brightness: f32,
}

impl Default for AugmentParams {
    fn default() -> Self {
        AugmentParams {
            elastic_sigma: 10.0,
            elastic_grid: 3,
            flip: true,
            rot90: true,
            rotation_deg: 15.0,
            shift_px: 0.0,
            gamma: (0.8, 1.25),
            contrast: (0.9, 1.1),
            brightness: 0.1,
        }
    }
}

impl AugmentParams {
    /// No augmentation at all (every transform the identity, no random draws).
    pub fn none() -> Self {
        AugmentParams {
            elastic_sigma: 0.0,
            elastic_grid: 3,
            flip: false,
            rot90: false,
            rotation_deg: 0.0,
            shift_px: 0.0,
            gamma: (1.0, 1.0),
            contrast: (1.0, 1.0),
            brightness: 0.0,
        }
    }
}

/// Source position in the image of every pixel of an output grid (module documentation).
#[derive(Debug, Clone, PartialEq)]
pub struct Warp {
    /// Source row of each output pixel, `[n_h, n_w]`.
    pub src_y: Array2<f32>,
    /// Source column of each output pixel, `[n_h, n_w]`.
    pub src_x: Array2<f32>,
}

/// Gray-value variation drawn for one tile (module documentation).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GrayValue {
    /// Gamma exponent.
    pub gamma: f32,
    /// Contrast factor.
    pub contrast: f32,
    /// Brightness offset.
    pub brightness: f32,
}

fn uniform(rng: &mut impl Rng, lo: f32, hi: f32) -> f32 {
    lo + (hi - lo) * rng.random::<f32>()
}

/// Catmull-Rom weights for fractional position `t ∈ [0, 1)` between nodes 1 and 2 of 4.
fn catmull_rom(t: f64) -> [f64; 4] {
    let t2 = t * t;
    let t3 = t2 * t;
    [
        0.5 * (-t3 + 2.0 * t2 - t),
        0.5 * (3.0 * t3 - 5.0 * t2 + 2.0),
        0.5 * (-3.0 * t3 + 4.0 * t2 + t),
        0.5 * (t3 - t2),
    ]
}

/// Bicubic interpolation of node values `[g, g]` at node coordinates `(u, v)` (clamped nodes).
fn bicubic(nodes: &Array2<f64>, u: f64, v: f64) -> f64 {
    let g = nodes.nrows() as isize;
    let (u0, v0) = (u.floor(), v.floor());
    let (wu, wv) = (catmull_rom(u - u0), catmull_rom(v - v0));
    let (u0, v0) = (u0 as isize, v0 as isize);
    let mut acc = 0.0;
    for (a, wa) in wu.iter().enumerate() {
        let r = (u0 + a as isize - 1).clamp(0, g - 1) as usize;
        for (b, wb) in wv.iter().enumerate() {
            let c = (v0 + b as isize - 1).clamp(0, g - 1) as usize;
            acc += wa * wb * nodes[[r, c]];
        }
    }
    acc
}

impl Warp {
    /// The identity grid of `n_h × n_w` pixels placed with its centre at `centre` (source
    /// position of the grid centre `((n_h − 1)/2, (n_w − 1)/2)`).
    pub fn identity(n_h: usize, n_w: usize, centre: (f32, f32)) -> Warp {
        let (ch, cw) = ((n_h as f64 - 1.0) / 2.0, (n_w as f64 - 1.0) / 2.0);
        Warp {
            src_y: Array2::from_shape_fn((n_h, n_w), |(i, _)| {
                (centre.0 as f64 + i as f64 - ch) as f32
            }),
            src_x: Array2::from_shape_fn((n_h, n_w), |(_, j)| {
                (centre.1 as f64 + j as f64 - cw) as f32
            }),
        }
    }

    /// Draws one transform (module documentation) for an `n_h × n_w` grid centred at `centre`.
    pub fn sample(
        params: &AugmentParams,
        n_h: usize,
        n_w: usize,
        centre: (f32, f32),
        rng: &mut impl Rng,
    ) -> Warp {
        let g = params.elastic_grid;
        let sigma = params.elastic_sigma;
        let elastic = g > 0 && sigma > 0.0 && sigma.is_finite();
        let (mut ny, mut nx) = (Array2::<f64>::zeros((g, g)), Array2::<f64>::zeros((g, g)));
        if elastic {
            // Normal::new fails only for a negative or non-finite σ, excluded above.
            if let Ok(normal) = Normal::new(0.0f64, sigma as f64) {
                for r in 0..g {
                    for c in 0..g {
                        ny[[r, c]] = normal.sample(rng);
                        nx[[r, c]] = normal.sample(rng);
                    }
                }
            }
        }
        let flip_y = params.flip && rng.random::<bool>();
        let flip_x = params.flip && rng.random::<bool>();
        let quarter = if params.rot90 {
            rng.random_range(0..4u8)
        } else {
            0
        };
        let theta = if params.rotation_deg > 0.0 && params.rotation_deg.is_finite() {
            (uniform(rng, -params.rotation_deg, params.rotation_deg) as f64).to_radians()
        } else {
            0.0
        };
        let (sy, sx) = if params.shift_px > 0.0 && params.shift_px.is_finite() {
            (
                uniform(rng, -params.shift_px, params.shift_px),
                uniform(rng, -params.shift_px, params.shift_px),
            )
        } else {
            (0.0, 0.0)
        };
        let (cos, sin) = (theta.cos(), theta.sin());
        let (ch, cw) = ((n_h as f64 - 1.0) / 2.0, (n_w as f64 - 1.0) / 2.0);
        // Node coordinate of pixel i: i·(g − 1)/(n − 1) (all 0 for a 1-pixel axis or g = 1).
        let scale_h = if n_h > 1 && g > 1 {
            (g - 1) as f64 / (n_h - 1) as f64
        } else {
            0.0
        };
        let scale_w = if n_w > 1 && g > 1 {
            (g - 1) as f64 / (n_w - 1) as f64
        } else {
            0.0
        };
        let mut src_y = Array2::<f32>::zeros((n_h, n_w));
        let mut src_x = Array2::<f32>::zeros((n_h, n_w));
        for i in 0..n_h {
            for j in 0..n_w {
                let (mut qy, mut qx) = (i as f64 - ch, j as f64 - cw);
                if elastic {
                    let (u, v) = (i as f64 * scale_h, j as f64 * scale_w);
                    qy += bicubic(&ny, u, v);
                    qx += bicubic(&nx, u, v);
                }
                if theta != 0.0 {
                    (qy, qx) = (cos * qy - sin * qx, sin * qy + cos * qx);
                }
                for _ in 0..quarter {
                    (qy, qx) = (qx, -qy);
                }
                if flip_y {
                    qy = -qy;
                }
                if flip_x {
                    qx = -qx;
                }
                src_y[[i, j]] = (centre.0 as f64 + sy as f64 + qy) as f32;
                src_x[[i, j]] = (centre.1 as f64 + sx as f64 + qx) as f32;
            }
        }
        Warp { src_y, src_x }
    }

    /// Grid size `(n_h, n_w)`.
    pub fn dim(&self) -> (usize, usize) {
        self.src_y.dim()
    }

    /// The sub-grid of `h × w` pixels starting at `(y0, x0)` (e.g. the output part of an
    /// input tile: offset = halo). Panics if it does not fit (a caller's size error).
    pub fn crop(&self, y0: usize, x0: usize, h: usize, w: usize) -> Warp {
        use ndarray::s;
        Warp {
            src_y: self.src_y.slice(s![y0..y0 + h, x0..x0 + w]).to_owned(),
            src_x: self.src_x.slice(s![y0..y0 + h, x0..x0 + w]).to_owned(),
        }
    }
}

/// Index into `0..n` of integer position `i` of the symmetric (edge-repeating) mirror extension
/// of an axis of length `n ≥ 1`, as numpy `np.pad(mode="symmetric")` for any pad width
/// (unet-core's `mirror::symmetric_index`, the extension overlap-tile inference uses).
pub fn symmetric_index(i: i64, n: usize) -> usize {
    // The extension is periodic (period 2n): reduce first so the value fits an isize anywhere.
    let period = (n as i64).saturating_mul(2).max(1);
    unet_core::mirror::symmetric_index(i.rem_euclid(period) as isize, n)
}

/// Floor of a coordinate as an integer, saturating far outside any image (the mirror is
/// periodic, so any in-range integer works).
fn floor_i64(v: f32) -> i64 {
    let f = v.floor();
    if f.is_nan() {
        0
    } else {
        f.clamp(-1e15, 1e15) as i64
    }
}

/// Bilinear samples of every channel of `image` `[C, H, W]` at the warp's positions:
/// `[C, n_h, n_w]`. An empty image gives zeros.
pub fn warp_image(warp: &Warp, image: ArrayView3<f32>) -> Array3<f32> {
    let (c, h, w) = image.dim();
    let (nh, nw) = warp.dim();
    let mut out = Array3::<f32>::zeros((c, nh, nw));
    if h == 0 || w == 0 {
        return out;
    }
    for i in 0..nh {
        for j in 0..nw {
            let (sy, sx) = (warp.src_y[[i, j]], warp.src_x[[i, j]]);
            let (y0, x0) = (floor_i64(sy), floor_i64(sx));
            let (ty, tx) = (sy - sy.floor(), sx - sx.floor());
            let (ty, tx) = (
                if ty.is_finite() { ty } else { 0.0 },
                if tx.is_finite() { tx } else { 0.0 },
            );
            let ya = symmetric_index(y0, h);
            let yb = symmetric_index(y0 + 1, h);
            let xa = symmetric_index(x0, w);
            let xb = symmetric_index(x0 + 1, w);
            for k in 0..c {
                let p = image.index_axis(Axis(0), k);
                let v = if ty == 0.0 && tx == 0.0 {
                    p[[ya, xa]]
                } else {
                    let top = p[[ya, xa]] * (1.0 - tx) + p[[ya, xb]] * tx;
                    let bot = p[[yb, xa]] * (1.0 - tx) + p[[yb, xb]] * tx;
                    top * (1.0 - ty) + bot * ty
                };
                out[[k, i, j]] = v;
            }
        }
    }
    out
}

/// Nearest-neighbour samples of a 2-D map at the warp's positions (rounding half away from
/// zero, mirrored outside): every output value is a value of `map`. Empty map: default values.
pub fn warp_nearest<T: Copy + Default>(warp: &Warp, map: ArrayView2<T>) -> Array2<T> {
    let (h, w) = map.dim();
    let (nh, nw) = warp.dim();
    if h == 0 || w == 0 {
        return Array2::from_elem((nh, nw), T::default());
    }
    Array2::from_shape_fn((nh, nw), |(i, j)| {
        let y = symmetric_index(floor_i64(warp.src_y[[i, j]].round()), h);
        let x = symmetric_index(floor_i64(warp.src_x[[i, j]].round()), w);
        map[[y, x]]
    })
}

impl GrayValue {
    /// No change.
    pub const IDENTITY: GrayValue = GrayValue {
        gamma: 1.0,
        contrast: 1.0,
        brightness: 0.0,
    };

    /// Draws a gray-value variation (module documentation); the identity without draws when
    /// every range is trivial.
    pub fn sample(params: &AugmentParams, rng: &mut impl Rng) -> GrayValue {
        let (g0, g1) = params.gamma;
        let gamma = if g0 > 0.0 && g1 > 0.0 && g0 != g1 && g0.is_finite() && g1.is_finite() {
            uniform(rng, g0.ln(), g1.ln()).exp()
        } else if g0 > 0.0 && g0.is_finite() {
            g0
        } else {
            1.0
        };
        let (c0, c1) = params.contrast;
        let contrast = if c0 != c1 && c0.is_finite() && c1.is_finite() {
            uniform(rng, c0, c1)
        } else {
            c0
        };
        let brightness = if params.brightness > 0.0 && params.brightness.is_finite() {
            uniform(rng, -params.brightness, params.brightness)
        } else {
            0.0
        };
        GrayValue {
            gamma,
            contrast,
            brightness,
        }
    }

    /// Applies the variation to every channel of `image` `[C, H, W]` in place.
    pub fn apply(&self, image: &mut Array3<f32>) {
        if *self == GrayValue::IDENTITY {
            return;
        }
        for mut p in image.axis_iter_mut(Axis(0)) {
            if p.is_empty() {
                continue;
            }
            if self.gamma != 1.0 {
                let lo = p.iter().copied().fold(f32::INFINITY, f32::min);
                let hi = p.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                if hi > lo && (hi - lo).is_finite() {
                    let g = self.gamma;
                    p.mapv_inplace(|x| {
                        lo + (hi - lo) * ((x - lo) / (hi - lo)).clamp(0.0, 1.0).powf(g)
                    });
                }
            }
            let m = p.iter().map(|&x| x as f64).sum::<f64>() / p.len() as f64;
            let m = m as f32;
            let (c, b) = (self.contrast, self.brightness);
            p.mapv_inplace(|x| m + c * (x - m) + b);
        }
    }
}

/// Augments a whole image, its target and weight map with ONE transform drawn from `rng`
/// (same-size output, grid centred on the image centre) and a gray-value variation. Shapes:
/// image `[C, H, W]`, target and weight `[H, W]` (panics if they differ: a caller's error).
pub fn augment(
    image: ArrayView3<f32>,
    target: ArrayView2<u8>,
    weight: ArrayView2<f32>,
    params: &AugmentParams,
    rng: &mut impl Rng,
) -> (Array3<f32>, Array2<u8>, Array2<f32>) {
    let (_, h, w) = image.dim();
    assert_eq!(
        target.dim(),
        (h, w),
        "augment: target shape differs from the image"
    );
    assert_eq!(
        weight.dim(),
        (h, w),
        "augment: weight shape differs from the image"
    );
    let centre = ((h as f32 - 1.0) / 2.0, (w as f32 - 1.0) / 2.0);
    let warp = Warp::sample(params, h, w, centre, rng);
    let gray = GrayValue::sample(params, rng);
    let mut img = warp_image(&warp, image);
    gray.apply(&mut img);
    (
        img,
        warp_nearest(&warp, target),
        warp_nearest(&warp, weight),
    )
}
