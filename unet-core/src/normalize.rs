//! Input normalisation declared in a model file's `normalization` metadata value.
//!
//! Spellings (colon-separated, numbers as decimal floats):
//! - `none` — pixels are used as they are;
//! - `percentile:LOW:HIGH` — per channel, the LOW and HIGH percentiles `p_lo`, `p_hi` of the
//!   frame map to 0 and 1: `(x − p_lo) / (p_hi − p_lo)` (CSBDeep/Cellpose style, no clipping);
//! - `mean_std:MEAN:STD` — `(x − MEAN) / STD`;
//! - `min_max:MIN:MAX` — `(x − MIN) / (MAX − MIN)`.

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

#[cfg(test)]
mod tests {
    use super::*;

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
