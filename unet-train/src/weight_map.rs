//! Training targets and the paper's loss weight map (Ronneberger et al. 2015, eq. 2).
//!
//! From **instance labels** `[H, W]` (`0` = background, every other id one object):
//! - [`semantic_target`]: the two-class target `1` = cell, `0` = background, where touching
//!   cells are separated by background: a cell pixel becomes background when one of its
//!   **8 neighbours** (the 3×3 block around it, clipped at the image border) carries a different
//!   non-zero, non-ignored id. Both sides of a contact are cut, so a separating line is 2 px wide
//!   where cells touch directly, and cells already separated by ≥ 1 px of background are kept
//!   as they are.
//! - [`weight_map`]: `w(x) = w_c(x) + w0 · exp(−(d1(x) + d2(x))² / (2σ²))` where `d1`, `d2` are the
//!   Euclidean distances from pixel `x` to the nearest and second-nearest cell. "Cell" means the
//!   pixels of one instance that are still cell (`target == 1`) after separation, so a pixel on
//!   a cut border has `d1 ≥ 1`. The distance to a cell is the exact EDT (pixel centre to pixel
//!   centre, [`crate::edt`]) of "not this cell", as
//!   `scipy.ndimage.distance_transform_edt(labels != id)`.
//!   The border term is added on **background pixels only** (`target == 0`), as in the authors'
//!   reference implementation (Falk et al., Nat. Methods 2019): inside a cell `d1 = 0` and the
//!   term would only re-weight cell pixels near other cells. Fewer than two cells: term 0.
//!
//! Cost: one EDT per instance, restricted to the instance's bounding box grown by
//! `margin = ⌈σ · sqrt(2 · ln 10⁶)⌉ + 1` px (≈ 5.26 σ). Beyond that margin a pixel is farther than
//! `σ·sqrt(2 ln 10⁶)` from the cell, so `d1 + d2` exceeds it and the border term is below
//! `10⁻⁶ · w0`; such pixels see the cell as infinitely far. Where the true border term is at least
//! `10⁻⁶ · w0`, both the nearest and the second-nearest cell are within the margin and the
//! result is exact (an EDT inside a box containing the whole cell is the full-image EDT there).
//!
//! Ignore label: pixels whose instance id equals [`WeightParams::ignore`] are neither cell nor
//! background: weight 0, target 0, never a neighbour that splits cells, not counted in class
//! frequencies, and not a "cell" for `d1`/`d2`.

use crate::data::LabelKind;
use crate::edt::edt_squared;
use ndarray::{s, Array2, ArrayView2};
use std::collections::BTreeMap;

/// How the class-balancing term `w_c` is chosen.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ClassBalance {
    /// `w_c = 1` for every class.
    None,
    /// `w_c = N / (K · n_c)`: `n_c` pixels of class `c` among the `N` non-ignored pixels of this
    /// image, `K` the number of classes present in it. Mean of `w_c` over the image is 1.
    InverseFrequency,
    /// Background (class 0) pixels weigh `background`, every other class 1 (Falk et al.: 0.1).
    Fixed {
        /// Weight of background pixels.
        background: f32,
    },
}

/// Parameters of the weight map. `Default` is the paper: `w0 = 10`, `σ = 5 px`, inverse
/// frequency balancing, no ignore label.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WeightParams {
    /// Amplitude of the border term (paper 10, Falk et al. 50).
    pub w0: f32,
    /// Width of the border term in pixels (paper ≈ 5, Falk et al. 6). Must be > 0 for a border
    /// term; `σ ≤ 0` or `w0 == 0` disables it.
    pub sigma: f32,
    /// Class-balancing term.
    pub balance: ClassBalance,
    /// Instance/class id whose pixels get weight 0 (unannotated regions); `None`: no such id.
    pub ignore: Option<u32>,
}

impl Default for WeightParams {
    fn default() -> Self {
        WeightParams {
            w0: 10.0,
            sigma: 5.0,
            balance: ClassBalance::InverseFrequency,
            ignore: None,
        }
    }
}

/// The two-class target of instance labels without an ignore label: see [`semantic_target_ignoring`].
pub fn semantic_target(instances: ArrayView2<u32>) -> Array2<u8> {
    semantic_target_ignoring(instances, None)
}

/// Two-class target `[H, W]` (1 = cell, 0 = background or ignored) of instance labels, with
/// touching cells separated as the module documentation states (8-neighbourhood).
pub fn semantic_target_ignoring(instances: ArrayView2<u32>, ignore: Option<u32>) -> Array2<u8> {
    let (h, w) = instances.dim();
    let is_cell = |id: u32| id != 0 && Some(id) != ignore;
    Array2::from_shape_fn((h, w), |(y, x)| {
        let id = instances[[y, x]];
        if !is_cell(id) {
            return 0;
        }
        for yy in y.saturating_sub(1)..(y + 2).min(h) {
            for xx in x.saturating_sub(1)..(x + 2).min(w) {
                let o = instances[[yy, xx]];
                if o != id && is_cell(o) {
                    return 0;
                }
            }
        }
        1
    })
}

/// Margin in pixels around each cell's bounding box beyond which the border term is below
/// `1e-6 · w0` (module documentation).
pub fn border_margin(sigma: f32) -> usize {
    if sigma.is_nan() || sigma <= 0.0 {
        return 0;
    }
    let r = (sigma as f64) * (2.0 * 1e6f64.ln()).sqrt();
    (r.ceil() as usize).saturating_add(1)
}

/// Per-pixel distances `(d1, d2)` to the nearest and second-nearest cell, each `[H, W]`
/// (`f32::INFINITY` where fewer cells are within [`border_margin`]`(sigma)`; with `sigma = ∞`
/// no box restriction). Cells are the pixels with `target == 1`, grouped by instance id.
pub fn two_nearest_distances(
    instances: ArrayView2<u32>,
    target: ArrayView2<u8>,
    sigma: f32,
) -> (Array2<f32>, Array2<f32>) {
    let (h, w) = instances.dim();
    // Bounding box of each cell (of its target == 1 pixels).
    let mut boxes: BTreeMap<u32, [usize; 4]> = BTreeMap::new();
    for ((y, x), &id) in instances.indexed_iter() {
        if target[[y, x]] != 1 {
            continue;
        }
        let b = boxes.entry(id).or_insert([y, x, y, x]);
        b[0] = b[0].min(y);
        b[1] = b[1].min(x);
        b[2] = b[2].max(y);
        b[3] = b[3].max(x);
    }
    let margin = if sigma.is_infinite() {
        h.max(w)
    } else {
        border_margin(sigma)
    };
    let mut d1 = Array2::<f64>::from_elem((h, w), f64::INFINITY);
    let mut d2 = Array2::<f64>::from_elem((h, w), f64::INFINITY);
    for (&id, b) in &boxes {
        let y0 = b[0].saturating_sub(margin);
        let x0 = b[1].saturating_sub(margin);
        let y1 = b[2].saturating_add(margin).saturating_add(1).min(h);
        let x1 = b[3].saturating_add(margin).saturating_add(1).min(w);
        let sub_i = instances.slice(s![y0..y1, x0..x1]);
        let sub_t = target.slice(s![y0..y1, x0..x1]);
        let mask = Array2::from_shape_fn(sub_i.dim(), |p| !(sub_i[p] == id && sub_t[p] == 1));
        let d = edt_squared(mask.view());
        for ((yy, xx), &v) in d.indexed_iter() {
            let (y, x) = (y0 + yy, x0 + xx);
            let a = &mut d1[[y, x]];
            if v < *a {
                d2[[y, x]] = *a;
                *a = v;
            } else if v < d2[[y, x]] {
                d2[[y, x]] = v;
            }
        }
    }
    let root = |v: f64| {
        if v.is_finite() {
            v.sqrt() as f32
        } else {
            f32::INFINITY
        }
    };
    (d1.mapv(root), d2.mapv(root))
}

/// Class-balancing weights `w_c(x)` of a class target `[H, W]`; pixels with `valid == false`
/// get 0 and are not counted.
pub fn class_weights(
    target: ArrayView2<u8>,
    valid: ArrayView2<bool>,
    balance: ClassBalance,
) -> Array2<f32> {
    let mut counts = [0u64; 256];
    let mut n = 0u64;
    for (t, &ok) in target.iter().zip(valid.iter()) {
        if ok {
            counts[*t as usize] += 1;
            n += 1;
        }
    }
    let present = counts.iter().filter(|&&c| c > 0).count() as f64;
    let per_class: Vec<f32> = (0..256)
        .map(|c| match balance {
            ClassBalance::None => 1.0,
            ClassBalance::Fixed { background } => {
                if c == 0 {
                    background
                } else {
                    1.0
                }
            }
            ClassBalance::InverseFrequency => {
                if counts[c] == 0 {
                    0.0
                } else {
                    (n as f64 / (present * counts[c] as f64)) as f32
                }
            }
        })
        .collect();
    Array2::from_shape_fn(target.dim(), |p| {
        if valid[p] {
            per_class[target[p] as usize]
        } else {
            0.0
        }
    })
}

/// The paper's weight map `[H, W]` for instance labels and their [`semantic_target`] (module
/// documentation). `target` must have the shape of `instances` (panics otherwise: a programming
/// error, both come from the same labels).
pub fn weight_map(
    instances: ArrayView2<u32>,
    target: ArrayView2<u8>,
    params: &WeightParams,
) -> Array2<f32> {
    assert_eq!(
        instances.dim(),
        target.dim(),
        "weight_map: instances and target differ in shape"
    );
    let valid = instances.mapv(|id| Some(id) != params.ignore);
    let mut w = class_weights(target, valid.view(), params.balance);
    let border = params.w0 != 0.0 && params.sigma > 0.0 && params.sigma.is_finite();
    if border {
        let (d1, d2) = two_nearest_distances(instances, target, params.sigma);
        let two_s2 = 2.0 * (params.sigma as f64) * (params.sigma as f64);
        for (((wx, &t), &ok), (&a, &b)) in w
            .iter_mut()
            .zip(target.iter())
            .zip(valid.iter())
            .zip(d1.iter().zip(d2.iter()))
        {
            if ok && t == 0 && b.is_finite() {
                let s = a as f64 + b as f64;
                *wx += (params.w0 as f64 * (-(s * s) / two_s2).exp()) as f32;
            }
        }
    }
    w
}

/// Target and weights of one label image, as the trainer uses them:
/// - [`LabelKind::Instance`]: [`semantic_target_ignoring`] and [`weight_map`] (2 classes);
/// - [`LabelKind::Class`]: the class ids themselves (values must be < 256: checked by
///   [`crate::data::validate_labels`]; larger values saturate to 255) and [`class_weights`]
///   (no border term: class maps carry no instances).
///
/// Ignored pixels (`params.ignore`) get target 0 and weight 0.
pub fn prepare_target(
    labels: ArrayView2<u32>,
    kind: LabelKind,
    params: &WeightParams,
) -> (Array2<u8>, Array2<f32>) {
    match kind {
        LabelKind::Instance => {
            let t = semantic_target_ignoring(labels, params.ignore);
            let w = weight_map(labels, t.view(), params);
            (t, w)
        }
        LabelKind::Class => {
            let valid = labels.mapv(|id| Some(id) != params.ignore);
            let t = Array2::from_shape_fn(labels.dim(), |p| {
                if valid[p] {
                    labels[p].min(255) as u8
                } else {
                    0
                }
            });
            let w = class_weights(t.view(), valid.view(), params.balance);
            (t, w)
        }
    }
}
