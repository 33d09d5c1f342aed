//! Segmentation quality of a prediction against ground truth.
//!
//! Inputs are class maps `[H, W]` (u8 class ids, 0 = background) and instance maps `[H, W]`
//! (u32 ids, 0 = background) of the same shape. Definitions (`N` pixels):
//! - **pixel error**: fraction of pixels whose predicted class differs from the true class
//!   (the ISBI 2012 pixel error on a binary map);
//! - **IoU / Dice per class** `c`: `|P_c ∩ G_c| / |P_c ∪ G_c|` and `2|P_c ∩ G_c| / (|P_c| + |G_c|)`;
//!   `None` when class `c` occurs in neither map;
//! - **object matching**: a predicted and a true instance match when their IoU is **> 0.5**.
//!   With IoU > 0.5 each instance has at most one partner (two disjoint predictions cannot both
//!   cover more than half of the union with one true object), so the matching is unique without
//!   any assignment algorithm. TP = matched pairs, FP = unmatched predictions,
//!   FN = unmatched true instances; precision = TP/(TP+FP), recall = TP/(TP+FN),
//!   F1 = 2TP/(2TP+FP+FN) (each 1 when its denominator is 0: nothing to find, nothing found);
//! - **Rand error**: `1 − RI`, the Rand index over **all** unordered pixel pairs of the two
//!   instance maps, background (id 0) being one more segment in each (not the ISBI
//!   foreground-restricted variant). From the contingency table `n_ij`, row sums `a_i`, column
//!   sums `b_j`: `RI = (C(N,2) + 2·Σ C(n_ij,2) − Σ C(a_i,2) − Σ C(b_j,2)) / C(N,2)`, computed in
//!   exact integer arithmetic (u128); 0 for `N < 2`.

use std::collections::HashMap;
use std::fmt;

use ndarray::ArrayView2;

/// Object-level detection counts at IoU > 0.5.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ObjectScores {
    /// Matched pairs.
    pub tp: usize,
    /// Predicted instances without a match.
    pub fp: usize,
    /// True instances without a match.
    pub fn_: usize,
    /// TP / (TP + FP).
    pub precision: f64,
    /// TP / (TP + FN).
    pub recall: f64,
    /// 2TP / (2TP + FP + FN).
    pub f1: f64,
}

/// All metrics of one prediction (module documentation).
#[derive(Debug, Clone, PartialEq)]
pub struct Metrics {
    /// Fraction of misclassified pixels.
    pub pixel_error: f64,
    /// IoU of each class `0..num_classes` (`None`: class absent from both maps).
    pub iou: Vec<Option<f64>>,
    /// Dice of each class.
    pub dice: Vec<Option<f64>>,
    /// Object detection scores.
    pub objects: ObjectScores,
    /// 1 − Rand index over all pixel pairs.
    pub rand_error: f64,
}

/// Shapes of the compared maps differ.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("metrics: maps differ in shape: {what} is {found:?}, expected {expected:?}")]
pub struct ShapeMismatch {
    /// Which map.
    pub what: &'static str,
    /// Its shape.
    pub found: (usize, usize),
    /// The ground-truth class map's shape.
    pub expected: (usize, usize),
}

fn ratio(num: u64, den: u64) -> Option<f64> {
    if den == 0 {
        None
    } else {
        Some(num as f64 / den as f64)
    }
}

/// Fraction of pixels where the two class maps differ (0 for empty maps).
pub fn pixel_error(pred: ArrayView2<u8>, gt: ArrayView2<u8>) -> f64 {
    let n = gt.len();
    if n == 0 {
        return 0.0;
    }
    pred.iter().zip(gt.iter()).filter(|(a, b)| a != b).count() as f64 / n as f64
}

/// Per-class `(IoU, Dice)` for classes `0..num_classes` (classes ≥ `num_classes` ignored).
pub fn class_overlap(
    pred: ArrayView2<u8>,
    gt: ArrayView2<u8>,
    num_classes: usize,
) -> Vec<(Option<f64>, Option<f64>)> {
    let k = num_classes.min(256);
    let (mut inter, mut np, mut ng) = (vec![0u64; k], vec![0u64; k], vec![0u64; k]);
    for (&p, &g) in pred.iter().zip(gt.iter()) {
        let (p, g) = (p as usize, g as usize);
        if p < k {
            np[p] += 1;
        }
        if g < k {
            ng[g] += 1;
        }
        if p == g && p < k {
            inter[p] += 1;
        }
    }
    (0..k)
        .map(|c| {
            (
                ratio(inter[c], np[c] + ng[c] - inter[c]),
                ratio(2 * inter[c], np[c] + ng[c]),
            )
        })
        .collect()
}

/// Object-level matching of two instance maps at IoU > 0.5 (module documentation).
pub fn object_scores(pred: ArrayView2<u32>, gt: ArrayView2<u32>) -> ObjectScores {
    let mut area_p: HashMap<u32, u64> = HashMap::new();
    let mut area_g: HashMap<u32, u64> = HashMap::new();
    let mut inter: HashMap<(u32, u32), u64> = HashMap::new();
    for (&p, &g) in pred.iter().zip(gt.iter()) {
        if p != 0 {
            *area_p.entry(p).or_default() += 1;
        }
        if g != 0 {
            *area_g.entry(g).or_default() += 1;
        }
        if p != 0 && g != 0 {
            *inter.entry((p, g)).or_default() += 1;
        }
    }
    let mut tp = 0usize;
    for (&(p, g), &i) in &inter {
        let union = area_p[&p] + area_g[&g] - i;
        // IoU > 0.5  ⇔  2·i > union (exact in integers).
        if 2 * i > union {
            tp += 1;
        }
    }
    let fp = area_p.len() - tp;
    let fn_ = area_g.len() - tp;
    let frac = |a: usize, b: usize| if b == 0 { 1.0 } else { a as f64 / b as f64 };
    ObjectScores {
        tp,
        fp,
        fn_,
        precision: frac(tp, tp + fp),
        recall: frac(tp, tp + fn_),
        f1: frac(2 * tp, 2 * tp + fp + fn_),
    }
}

fn pairs(n: u64) -> u128 {
    let n = n as u128;
    n * n.saturating_sub(1) / 2
}

/// `1 − Rand index` of two instance maps over all pixel pairs (module documentation).
pub fn rand_error(pred: ArrayView2<u32>, gt: ArrayView2<u32>) -> f64 {
    let n = gt.len() as u64;
    if n < 2 {
        return 0.0;
    }
    let mut a: HashMap<u32, u64> = HashMap::new();
    let mut b: HashMap<u32, u64> = HashMap::new();
    let mut nij: HashMap<(u32, u32), u64> = HashMap::new();
    for (&p, &g) in pred.iter().zip(gt.iter()) {
        *a.entry(p).or_default() += 1;
        *b.entry(g).or_default() += 1;
        *nij.entry((p, g)).or_default() += 1;
    }
    let total = pairs(n);
    let sij: u128 = nij.values().map(|&v| pairs(v)).sum();
    let sa: u128 = a.values().map(|&v| pairs(v)).sum();
    let sb: u128 = b.values().map(|&v| pairs(v)).sum();
    // Disagreeing pairs: together in exactly one of the two maps.
    let disagree = (sa - sij) + (sb - sij);
    disagree as f64 / total as f64
}

/// Every metric for a prediction against ground truth (class maps and instance maps, all of
/// the ground-truth class map's shape), classes `0..num_classes`.
pub fn evaluate(
    pred_classes: ArrayView2<u8>,
    pred_instances: ArrayView2<u32>,
    gt_classes: ArrayView2<u8>,
    gt_instances: ArrayView2<u32>,
    num_classes: usize,
) -> Result<Metrics, ShapeMismatch> {
    let expected = gt_classes.dim();
    for (what, found) in [
        ("pred_classes", pred_classes.dim()),
        ("pred_instances", pred_instances.dim()),
        ("gt_instances", gt_instances.dim()),
    ] {
        if found != expected {
            return Err(ShapeMismatch {
                what,
                found,
                expected,
            });
        }
    }
    let overlap = class_overlap(pred_classes, gt_classes, num_classes);
    Ok(Metrics {
        pixel_error: pixel_error(pred_classes, gt_classes),
        iou: overlap.iter().map(|o| o.0).collect(),
        dice: overlap.iter().map(|o| o.1).collect(),
        objects: object_scores(pred_instances, gt_instances),
        rand_error: rand_error(pred_instances, gt_instances),
    })
}

fn opt(v: Option<f64>) -> String {
    v.map_or_else(|| "n/a".to_string(), |x| format!("{x:.4}"))
}

impl fmt::Display for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "pixel error {:.4}, rand error {:.4}",
            self.pixel_error, self.rand_error
        )?;
        for (c, (i, d)) in self.iou.iter().zip(&self.dice).enumerate() {
            write!(f, ", class {c}: IoU {} Dice {}", opt(*i), opt(*d))?;
        }
        let o = &self.objects;
        write!(
            f,
            ", objects (IoU>0.5): TP {} FP {} FN {}, precision {:.4} recall {:.4} F1 {:.4}",
            o.tp, o.fp, o.fn_, o.precision, o.recall, o.f1
        )
    }
}
