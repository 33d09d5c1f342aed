//! Weighted soft-max cross-entropy, the paper's energy
//! `E = −Σ_x w(x) · log p_{l(x)}(x)`, `p_k(x) = exp(a_k(x)) / Σ_k' exp(a_k'(x))`,
//! with its gradient `∂E/∂a_k(x) = w(x) · (p_k(x) − [k = l(x)])`.
//!
//! **Normalisation.** The trainer minimises `E / D`. [`LossNorm::Pixels`] (the default) takes
//! `D` = the number of output pixels in the batch (`B·H·W`, ignored pixels included), i.e. the
//! mean weighted NLL per pixel as PyTorch's `(w * nll).mean()`: the learning rate then does not
//! depend on the tile or batch size and a weight map scales the loss as it says. [`LossNorm::
//! WeightSum`] takes `D = Σ_x w(x)` (a weighted mean; 0/0 is taken as a zero loss and gradient).
//! Both denominators are computed over the *whole* batch before any sample is processed, so the
//! per-sample sums can be computed independently (in parallel, or on several devices) and added.
//!
//! Pixels with `w(x) = 0` are ignored: their target may be anything (e.g. 255). A pixel with
//! `w(x) ≠ 0` and a target `≥ K` is an error, as is a negative or non-finite weight.

use ndarray::{Array3, ArrayView2, ArrayView3, ArrayView4, Axis};

use crate::error::{Result, TrainError};

/// How the summed energy is normalised (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LossNorm {
    /// Divide by the number of output pixels in the batch.
    #[default]
    Pixels,
    /// Divide by the sum of the weights in the batch.
    WeightSum,
}

impl LossNorm {
    /// The spelling used in metadata and on the command line: `pixels` or `weight_sum`.
    pub fn as_str(self) -> &'static str {
        match self {
            LossNorm::Pixels => "pixels",
            LossNorm::WeightSum => "weight_sum",
        }
    }

    /// Parses [`LossNorm::as_str`]'s spelling.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "pixels" => Ok(LossNorm::Pixels),
            "weight_sum" => Ok(LossNorm::WeightSum),
            _ => Err(TrainError::invalid(format!(
                "loss normalisation '{s}': expected pixels or weight_sum"
            ))),
        }
    }
}

/// The denominator `D` of a batch's weight maps `[B, H, W]` (checked: finite, ≥ 0). Returns 0
/// only for [`LossNorm::WeightSum`] with all-zero weights (or an empty batch).
pub fn denominator(weight: ArrayView3<'_, f32>, norm: LossNorm) -> Result<f64> {
    let mut sum = 0.0f64;
    for &w in weight.iter() {
        if !(w.is_finite() && w >= 0.0) {
            return Err(TrainError::invalid(format!(
                "weight map holds {w}: weights must be finite and >= 0"
            )));
        }
        sum += w as f64;
    }
    Ok(match norm {
        LossNorm::Pixels => weight.len() as f64,
        LossNorm::WeightSum => sum,
    })
}

/// One sample's weighted NLL sum `Σ_x w(x)·(−log p_{l(x)}(x))` (f64) and gradient
/// `scale · w(x) · (p_k(x) − [k = l(x)])` (`[K, H, W]`, f32) for logits `[K, H, W]`, targets and
/// weights `[H, W]`. `scale` is normally `1/D`. The log-sum-exp subtracts the per-pixel max.
pub fn sample_loss(
    logits: ArrayView3<'_, f32>,
    target: ArrayView2<'_, u8>,
    weight: ArrayView2<'_, f32>,
    scale: f64,
) -> Result<(f64, Array3<f32>)> {
    let (k, h, w) = logits.dim();
    if target.dim() != (h, w) || weight.dim() != (h, w) {
        return Err(TrainError::invalid(format!(
            "loss: logits are {h}x{w} but target is {:?} and weight {:?}",
            target.dim(),
            weight.dim()
        )));
    }
    let mut grad = Array3::<f32>::zeros((k, h, w));
    let mut total = 0.0f64;
    let mut p = vec![0.0f64; k];
    for y in 0..h {
        for x in 0..w {
            let wt = weight[[y, x]];
            if wt == 0.0 {
                continue;
            }
            let t = target[[y, x]] as usize;
            if t >= k {
                return Err(TrainError::invalid(format!(
                    "target class {t} at ({y}, {x}) but the model has {k} classes"
                )));
            }
            let mut m = f32::NEG_INFINITY;
            for c in 0..k {
                m = m.max(logits[[c, y, x]]);
            }
            let mut z = 0.0f64;
            for (c, pc) in p.iter_mut().enumerate() {
                *pc = ((logits[[c, y, x]] - m) as f64).exp();
                z += *pc;
            }
            let log_pt = (logits[[t, y, x]] - m) as f64 - z.ln();
            total -= wt as f64 * log_pt;
            let sw = scale * wt as f64;
            for (c, &pc) in p.iter().enumerate() {
                let onehot = if c == t { 1.0 } else { 0.0 };
                grad[[c, y, x]] = (sw * (pc / z - onehot)) as f32;
            }
        }
    }
    Ok((total, grad))
}

/// The whole batch: logits `[B, K, H, W]`, targets and weights `[B, H, W]`. Returns the
/// normalised loss `E / D` and `∂(E/D)/∂logits` (`[B, K, H, W]`).
pub fn batch_loss(
    logits: ArrayView4<'_, f32>,
    target: ArrayView3<'_, u8>,
    weight: ArrayView3<'_, f32>,
    norm: LossNorm,
) -> Result<(f64, ndarray::Array4<f32>)> {
    let b = logits.dim().0;
    if target.dim().0 != b || weight.dim().0 != b {
        return Err(TrainError::invalid(
            "loss: batch sizes of logits, target and weight differ",
        ));
    }
    let d = denominator(weight, norm)?;
    let scale = if d > 0.0 { 1.0 / d } else { 0.0 };
    let mut grad = ndarray::Array4::<f32>::zeros(logits.raw_dim());
    let mut total = 0.0;
    for i in 0..b {
        let (s, g) = sample_loss(
            logits.index_axis(Axis(0), i),
            target.index_axis(Axis(0), i),
            weight.index_axis(Axis(0), i),
            scale,
        )?;
        total += s;
        grad.index_axis_mut(Axis(0), i).assign(&g);
    }
    Ok((total * scale, grad))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array3, Array4};

    fn data() -> (Array4<f32>, Array3<u8>, Array3<f32>) {
        let logits = Array4::from_shape_fn((2, 3, 2, 3), |(b, k, y, x)| {
            ((b * 7 + k * 5 + y * 3 + x) as f32 * 0.7).sin() * 3.0
        });
        let target = Array3::from_shape_fn((2, 2, 3), |(b, y, x)| ((b + y * 2 + x) % 3) as u8);
        let weight = Array3::from_shape_fn((2, 2, 3), |(b, y, x)| {
            if (b + y + x) % 4 == 0 {
                0.0
            } else {
                0.5 + (x + y) as f32
            }
        });
        (logits, target, weight)
    }

    #[test]
    fn matches_direct_formula() {
        let (l, t, w) = data();
        for norm in [LossNorm::Pixels, LossNorm::WeightSum] {
            let (e, _) = batch_loss(l.view(), t.view(), w.view(), norm).unwrap();
            let mut sum = 0.0f64;
            for b in 0..2 {
                for y in 0..2 {
                    for x in 0..3 {
                        let z: f64 = (0..3).map(|k| (l[[b, k, y, x]] as f64).exp()).sum();
                        let p = (l[[b, t[[b, y, x]] as usize, y, x]] as f64).exp() / z;
                        sum -= w[[b, y, x]] as f64 * p.ln();
                    }
                }
            }
            let d = if norm == LossNorm::Pixels {
                12.0
            } else {
                w.iter().map(|&v| v as f64).sum()
            };
            // The logit differences are taken in f32 (as in training): ~1e-7 relative error.
            assert!(
                (e - sum / d).abs() < 1e-6 * (sum / d).abs().max(1.0),
                "{e} vs {}",
                sum / d
            );
        }
    }

    #[test]
    fn gradient_matches_finite_differences() {
        let (l, t, w) = data();
        let (_, g) = batch_loss(l.view(), t.view(), w.view(), LossNorm::WeightSum).unwrap();
        let h = 1e-2f32;
        for idx in [[0, 0, 0, 1], [1, 2, 1, 2], [0, 1, 1, 0], [1, 0, 0, 0]] {
            let mut lp = l.clone();
            lp[idx] += h;
            let mut lm = l.clone();
            lm[idx] -= h;
            let ep = batch_loss(lp.view(), t.view(), w.view(), LossNorm::WeightSum)
                .unwrap()
                .0;
            let em = batch_loss(lm.view(), t.view(), w.view(), LossNorm::WeightSum)
                .unwrap()
                .0;
            let fd = (ep - em) / (2.0 * h as f64);
            assert!(
                (fd - g[idx] as f64).abs() < 1e-4,
                "{idx:?}: fd {fd} analytic {}",
                g[idx]
            );
        }
        // Ignored pixel (weight 0) gets no gradient.
        assert!(g
            .index_axis(Axis(0), 0)
            .index_axis(Axis(1), 0)
            .iter()
            .step_by(3)
            .all(|&v| v == 0.0));
    }

    #[test]
    fn bad_inputs_are_errors() {
        let (l, mut t, mut w) = data();
        t[[0, 0, 1]] = 3;
        assert!(batch_loss(l.view(), t.view(), w.view(), LossNorm::Pixels).is_err());
        t[[0, 0, 1]] = 0;
        t[[0, 0, 0]] = 255; // weight 0 there: ignored
        assert!(batch_loss(l.view(), t.view(), w.view(), LossNorm::Pixels).is_ok());
        w[[1, 1, 1]] = f32::NAN;
        assert!(batch_loss(l.view(), t.view(), w.view(), LossNorm::Pixels).is_err());
        let zero = Array3::<f32>::zeros((2, 2, 3));
        let (e, g) = batch_loss(l.view(), t.view(), zero.view(), LossNorm::WeightSum).unwrap();
        assert_eq!(e, 0.0);
        assert!(g.iter().all(|&v| v == 0.0));
    }

    #[test]
    fn large_logits_stay_finite() {
        let l = Array4::from_shape_fn((1, 2, 1, 2), |(_, k, _, x)| if k == x { 1e4 } else { -1e4 });
        let t = Array3::from_elem((1, 1, 2), 0u8);
        let w = Array3::from_elem((1, 1, 2), 1.0f32);
        let (e, g) = batch_loss(l.view(), t.view(), w.view(), LossNorm::Pixels).unwrap();
        assert!((e - 1e4).abs() < 1.0, "{e}");
        assert!(g.iter().all(|v| v.is_finite()));
    }
}
