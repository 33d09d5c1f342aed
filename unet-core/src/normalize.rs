//! Input normalisation declared in a model file's `normalization` metadata value.
//!
//! Spellings (colon-separated, numbers as decimal floats):
//! - `none` — pixels are used as they are;
//! - `percentile:LOW:HIGH` — per channel, the LOW and HIGH percentiles `p_lo`, `p_hi` of the
//!   frame map to 0 and 1: `(x − p_lo) / (p_hi − p_lo)` (CSBDeep/Cellpose style, no clipping);
//! - `mean_std:MEAN:STD` — `(x − MEAN) / STD`;
//! - `min_max:MIN:MAX` — `(x − MIN) / (MAX − MIN)`.
//!
//! # Application (the one definition; the trainer calls the same functions)
//!
//! Every normalisation becomes, per channel, an [`Affine`] map applied in f32:
//! `y = (x − offset) · scale` with `x` the sample converted to f32 (exact for u8 and u16).
//! - `none`: offset 0, scale 1 (`y = x` exactly);
//! - `mean_std`: offset = MEAN, scale = `(1 / STD)` computed in f64 and rounded to f32;
//! - `min_max`: offset = MIN, scale = `1 / (MAX − MIN)` (f64, rounded to f32);
//! - `percentile`: `p_lo`, `p_hi` are the LOW and HIGH percentiles of the channel over the
//!   **whole frame** (not a tile), computed exactly as numpy's default
//!   `np.percentile(channel.astype(np.float64), q)` (method `"linear"`, see
//!   [`percentile_linear`]); offset = `p_lo` rounded to f32, scale = `1 / (p_hi − p_lo)` (f64,
//!   rounded to f32). A **constant channel** (`p_hi == p_lo`) gets scale 0, i.e. an all-zero
//!   network input. The percentile numbers are read as the decimals the metadata spells
//!   ([`decimal_f64`]: `99.8` means the f64 `99.8`, as numpy sees it, not the f32 nearest it).
//!
//! Percentile statistics need scratch: u8/u16 frames are counted into an exact histogram of
//! 256 / 65536 `u32` bins ([`crate::histogram`]); f32 frames are copied (one channel at a time)
//! and the two order statistics around each percentile are found by selection
//! (`select_nth_unstable`, O(n)): exact, but it needs `height × width` f32 of scratch, and it
//! refuses NaN and infinities ([`Error::InvalidArgument`]), where numpy would return NaN.

use crate::error::Error;

/// How raw frame values become network input.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Normalization {
    /// Use values as they are.
    None,
    /// Map the `low`/`high` percentiles (in 0..=100) of each channel to 0/1.
    Percentile {
        /// Lower percentile, e.g. 1.0.
        low: f32,
        /// Upper percentile, e.g. 99.8.
        high: f32,
    },
    /// `(x − mean) / std`.
    MeanStd {
        /// Subtracted.
        mean: f32,
        /// Divided by; non-zero.
        std: f32,
    },
    /// `(x − min) / (max − min)`.
    MinMax {
        /// Maps to 0.
        min: f32,
        /// Maps to 1; differs from `min`.
        max: f32,
    },
}

const KEY: &str = "normalization";

impl Normalization {
    /// Parses the metadata spelling; errors name the `normalization` key.
    pub fn parse(s: &str) -> Result<Self, Error> {
        let bad = |what| Error::BadMetadata { key: KEY, what };
        let mut it = s.split(':');
        let kind = it.next().unwrap_or("");
        let mut num = || -> Result<f32, Error> {
            let v: f32 = it
                .next()
                .ok_or(bad("missing a parameter"))?
                .trim()
                .parse()
                .map_err(|_| bad("parameter is not a number"))?;
            if v.is_finite() {
                Ok(v)
            } else {
                Err(bad("parameter is not finite"))
            }
        };
        let n = match kind {
            "none" => Normalization::None,
            "percentile" => {
                let (low, high) = (num()?, num()?);
                if !(0.0..=100.0).contains(&low) || !(0.0..=100.0).contains(&high) || low >= high {
                    return Err(bad("percentiles must satisfy 0 <= LOW < HIGH <= 100"));
                }
                Normalization::Percentile { low, high }
            }
            "mean_std" => {
                let (mean, std) = (num()?, num()?);
                if std == 0.0 {
                    return Err(bad("std must be non-zero"));
                }
                Normalization::MeanStd { mean, std }
            }
            "min_max" => {
                let (min, max) = (num()?, num()?);
                if min == max {
                    return Err(bad("min and max must differ"));
                }
                Normalization::MinMax { min, max }
            }
            _ => {
                return Err(bad(
                    "expected none, percentile:LO:HI, mean_std:M:S or min_max:MIN:MAX",
                ))
            }
        };
        if it.next().is_some() {
            return Err(bad("too many parameters"));
        }
        Ok(n)
    }
}

/// The per-channel map `y = (x − offset) · scale`, evaluated in f32. See the module docs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Affine {
    /// Subtracted first.
    pub offset: f32,
    /// Multiplied second.
    pub scale: f32,
}

impl Affine {
    /// The identity (`none`).
    pub const IDENTITY: Affine = Affine {
        offset: 0.0,
        scale: 1.0,
    };

    /// `(x − offset) · scale`.
    #[inline(always)]
    pub fn apply(&self, x: f32) -> f32 {
        (x - self.offset) * self.scale
    }

    /// The map sending `lo` to 0 and `hi` to 1 (`scale = 1/(hi − lo)` in f64, then f32);
    /// `hi == lo` gives scale 0 (constant input → zeros). Both must be finite.
    pub fn from_range(lo: f64, hi: f64) -> Affine {
        let d = hi - lo;
        let scale = if d == 0.0 { 0.0 } else { (1.0 / d) as f32 };
        Affine {
            offset: lo as f32,
            scale,
        }
    }
}

impl Normalization {
    /// The affine map of a normalisation that does not depend on the frame; `None` for
    /// [`Normalization::Percentile`] (see [`crate::frame::channel_affine`]).
    pub fn fixed_affine(&self) -> Option<Affine> {
        match *self {
            Normalization::None => Some(Affine::IDENTITY),
            Normalization::MeanStd { mean, std } => Some(Affine {
                offset: mean,
                scale: (1.0 / decimal_f64(std)) as f32,
            }),
            Normalization::MinMax { min, max } => {
                Some(Affine::from_range(decimal_f64(min), decimal_f64(max)))
            }
            Normalization::Percentile { .. } => None,
        }
    }

    /// True if the map depends on the frame's statistics (percentiles).
    pub fn needs_statistics(&self) -> bool {
        matches!(self, Normalization::Percentile { .. })
    }
}

/// The f64 whose shortest decimal spelling is that of `x` (`99.8f32` → `99.8f64`), so that
/// metadata numbers mean what they say; falls back to `x as f64` (never for finite `x`).
pub fn decimal_f64(x: f32) -> f64 {
    struct Buf {
        b: [u8; 64],
        n: usize,
    }
    impl core::fmt::Write for Buf {
        fn write_str(&mut self, s: &str) -> core::fmt::Result {
            let end = self.n + s.len();
            if end > self.b.len() {
                return Err(core::fmt::Error);
            }
            self.b[self.n..end].copy_from_slice(s.as_bytes());
            self.n = end;
            Ok(())
        }
    }
    let mut buf = Buf { b: [0; 64], n: 0 };
    if core::fmt::write(&mut buf, format_args!("{x:e}")).is_err() {
        return x as f64;
    }
    core::str::from_utf8(&buf.b[..buf.n])
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .unwrap_or(x as f64)
}

/// The `pct`-th percentile (`0..=100`) of `n ≥ 1` samples whose ascending order statistics are
/// `kth(i)`, exactly as numpy's default `np.percentile` (method `"linear"`, Hyndman & Fan
/// type 7) computes it in f64 (numpy 2.x `_QuantileMethods["linear"]`): `q = pct/100`, virtual
/// index `v = (n − 1)·q`, `i = ⌊v⌋` clamped to `0..n`, `t = v − i`, and numpy's `_lerp`:
/// `a + (b − a)·t` if `t < 0.5`, else `b − (b − a)·(1 − t)`, with `a = kth(i)`,
/// `b = kth(i + 1)`.
pub fn percentile_linear(n: usize, pct: f64, mut kth: impl FnMut(usize) -> f64) -> f64 {
    if n == 0 {
        return f64::NAN;
    }
    let q = pct / 100.0;
    let nf = n as f64;
    let v = (nf - 1.0) * q;
    if v >= nf - 1.0 {
        return kth(n - 1);
    }
    if v < 0.0 || v.is_nan() {
        return kth(0);
    }
    let fl = libm::floor(v);
    let i = fl as usize;
    let t = v - fl;
    let (a, b) = (kth(i), kth(i + 1));
    let d = b - a;
    if t >= 0.5 {
        b - d * (1.0 - t)
    } else {
        a + d * t
    }
}

/// LOW and HIGH percentiles of `values` as [`percentile_linear`], by selection in place (the
/// slice is reordered). Errors if `values` is empty or holds NaN or an infinity.
pub fn percentiles_f32(values: &mut [f32], low: f64, high: f64) -> Result<(f64, f64), Error> {
    if values.is_empty() {
        return Err(Error::InvalidArgument {
            what: "percentile of an empty channel",
        });
    }
    if values.iter().any(|v| !v.is_finite()) {
        return Err(Error::InvalidArgument {
            what: "percentile normalisation needs finite samples (NaN or infinity found)",
        });
    }
    let n = values.len();
    let mut kth = |k: usize| -> f64 { select(values, k) as f64 };
    let lo = percentile_linear(n, low, &mut kth);
    let hi = percentile_linear(n, high, &mut kth);
    Ok((lo, hi))
}

/// The `k`-th smallest of `values` (`k < len`), reordering the slice.
fn select(values: &mut [f32], k: usize) -> f32 {
    let (_, v, _) = values.select_nth_unstable_by(k, f32::total_cmp);
    *v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_and_linear() {
        assert_eq!(decimal_f64(99.8), 99.8f64);
        assert_eq!(decimal_f64(1.0), 1.0f64);
        assert_eq!(decimal_f64(1e-7), 1e-7f64);
        // np.percentile([10, 20, 30, 40], 50) == 25; q=0 → min, q=100 → max.
        let v = [10.0, 20.0, 30.0, 40.0];
        assert_eq!(percentile_linear(4, 50.0, |k| v[k]), 25.0);
        assert_eq!(percentile_linear(4, 0.0, |k| v[k]), 10.0);
        assert_eq!(percentile_linear(4, 100.0, |k| v[k]), 40.0);
        assert_eq!(percentile_linear(1, 37.0, |_| 5.0), 5.0);
        let mut x = [3.0f32, 1.0, 2.0, 4.0];
        assert_eq!(percentiles_f32(&mut x, 50.0, 100.0), Ok((2.5, 4.0)));
        assert!(percentiles_f32(&mut [1.0, f32::NAN], 1.0, 2.0).is_err());
        assert_eq!(Affine::from_range(3.0, 3.0).apply(7.0), 0.0);
    }

    #[test]
    fn parses_all_spellings() {
        assert_eq!(Normalization::parse("none"), Ok(Normalization::None));
        assert_eq!(
            Normalization::parse("percentile:1:99.8"),
            Ok(Normalization::Percentile {
                low: 1.0,
                high: 99.8
            })
        );
        assert_eq!(
            Normalization::parse("mean_std:0.5:0.25"),
            Ok(Normalization::MeanStd {
                mean: 0.5,
                std: 0.25
            })
        );
        assert_eq!(
            Normalization::parse("min_max:0:65535"),
            Ok(Normalization::MinMax {
                min: 0.0,
                max: 65535.0
            })
        );
        for bad in [
            "",
            "percentile:5:1",
            "mean_std:1:0",
            "min_max:1",
            "none:1",
            "zscore",
            "mean_std:nan:1",
        ] {
            assert!(Normalization::parse(bad).is_err(), "{bad}");
        }
    }
}
