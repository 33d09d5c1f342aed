//! Per-channel input normalisation of training images, with the same definition as unet-core's
//! frame normalisation (its `normalize` module documents it as "the one definition"; the
//! numeric pieces — `decimal_f64`, `percentile_linear`, `Affine` — are unet-core's own
//! functions, and `tests/data_normalize.rs` checks the result against `unet_core::frame::channel_affine`):
//!
//! Every normalisation is, per channel, an affine map applied in f32,
//! `y = (x − offset) · scale`:
//! - `None`: offset 0, scale 1 (`y = x` exactly);
//! - `MeanStd { mean, std }`: offset = `mean`, scale = `1 / std` computed in f64 and rounded to f32
//!   (`std` read as the decimal number it prints as, see [`decimal_f64`]);
//! - `MinMax { min, max }`: offset = `min`, scale = `1 / (max − min)` in f64 (both read as
//!   decimals), rounded to f32;
//! - `Percentile { low, high }`: `p_lo`, `p_hi` are the `low`/`high` percentiles of the channel
//!   over the **whole image**, exactly numpy's default `np.percentile(channel.astype(np.float64), q)`
//!   (method "linear", [`percentile_linear`]) with `q` the decimal the f32 prints as (`99.8` means
//!   the f64 `99.8`); offset = `p_lo` rounded to f32, scale = `1 / (p_hi − p_lo)` in f64 rounded to
//!   f32. A **constant channel** (`p_hi == p_lo`) gets scale 0: the output is all zeros.
//!
//! Non-finite samples make percentiles meaningless: [`try_normalize`] refuses them, while
//! [`normalize`] takes the percentiles over the finite samples only (zeros if there are none)
//! and lets the non-finite values through the affine map.

use ndarray::{Array3, ArrayView3, Axis};
use unet_core::{Affine, Normalization};

/// A non-finite pixel value met by percentile normalisation.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("channel {channel} holds a non-finite value (NaN or infinity): cannot take percentiles")]
pub struct NonFinite {
    /// Channel index.
    pub channel: usize,
}

/// The f64 whose shortest decimal spelling is that of `x` (`99.8f32` → `99.8f64`), as the
/// model metadata spells the number: unet-core's `normalize::decimal_f64`.
pub fn decimal_f64(x: f32) -> f64 {
    unet_core::normalize::decimal_f64(x)
}

/// numpy's default linear percentile (Hyndman & Fan type 7, numpy 2.x `_lerp`) of `sorted`
/// (ascending; NaN for empty): `v = (n − 1)·pct/100`, `i = ⌊v⌋`, `t = v − i`,
/// `a + (b − a)·t` if `t < 0.5` else `b − (b − a)·(1 − t)` with `a = sorted[i]`,
/// `b = sorted[i + 1]`; `v ≥ n − 1` gives the maximum, `v < 0` the minimum. Delegates to
/// unet-core's `normalize::percentile_linear`, the definition inference uses.
pub fn percentile_linear(sorted: &[f64], pct: f64) -> f64 {
    unet_core::normalize::percentile_linear(sorted.len(), pct, |k| sorted[k])
}

/// `(offset, scale)` of `y = (x − offset) · scale` mapping `lo` to 0 and `hi` to 1; scale 0
/// when `hi == lo` (unet-core's `Affine::from_range`).
fn from_range(lo: f64, hi: f64) -> (f32, f32) {
    let a = Affine::from_range(lo, hi);
    (a.offset, a.scale)
}

/// The per-channel `(offset, scale)` of `n` for `image` `[C, H, W]`; with `strict`, a
/// non-finite sample is an error in percentile mode, otherwise it is left out of the statistics.
pub fn channel_affines(
    image: ArrayView3<f32>,
    n: Normalization,
    strict: bool,
) -> Result<Vec<(f32, f32)>, NonFinite> {
    let c = image.len_of(Axis(0));
    let mut out = Vec::with_capacity(c);
    for (ch, plane) in image.axis_iter(Axis(0)).enumerate() {
        out.push(match n {
            Normalization::None | Normalization::MeanStd { .. } | Normalization::MinMax { .. } => {
                let a = n.fixed_affine().unwrap_or(Affine::IDENTITY);
                (a.offset, a.scale)
            }
            Normalization::Percentile { low, high } => {
                if strict && plane.iter().any(|x| !x.is_finite()) {
                    return Err(NonFinite { channel: ch });
                }
                let mut v: Vec<f64> = plane
                    .iter()
                    .filter(|x| x.is_finite())
                    .map(|&x| x as f64)
                    .collect();
                if v.is_empty() {
                    (0.0, 0.0)
                } else {
                    v.sort_unstable_by(f64::total_cmp);
                    let lo = percentile_linear(&v, decimal_f64(low));
                    let hi = percentile_linear(&v, decimal_f64(high));
                    from_range(lo, hi)
                }
            }
        });
    }
    Ok(out)
}

/// Normalises `image` `[C, H, W]` channel by channel (module documentation); same shape out.
pub fn normalize(image: ArrayView3<f32>, n: Normalization) -> Array3<f32> {
    match channel_affines(image, n, false) {
        Ok(aff) => apply(image, &aff),
        // Unreachable: the non-strict statistics never fail; zeros keep the contract total.
        Err(_) => Array3::zeros(image.raw_dim()),
    }
}

/// As [`normalize`], but a non-finite sample in percentile mode is an error naming the channel.
pub fn try_normalize(image: ArrayView3<f32>, n: Normalization) -> Result<Array3<f32>, NonFinite> {
    let aff = channel_affines(image, n, true)?;
    Ok(apply(image, &aff))
}

fn apply(image: ArrayView3<f32>, aff: &[(f32, f32)]) -> Array3<f32> {
    let mut out = image.to_owned();
    for (mut plane, &(offset, scale)) in out.axis_iter_mut(Axis(0)).zip(aff.iter()) {
        plane.mapv_inplace(|x| (x - offset) * scale);
    }
    out
}
