//! Learning-rate schedules: `lr(t)` for step `t` (0-based) from the base rate `η`.
//!
//! Spellings (command line, provenance metadata):
//! - `constant` — `η`;
//! - `step:EVERY:GAMMA` — `η · GAMMA^⌊t / EVERY⌋`;
//! - `poly:POWER` — `η · (1 − t/T)^POWER` over the run's `T` total steps (0 at and after `T`).

use crate::error::{Result, TrainError};

/// A learning-rate schedule.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Schedule {
    /// The base rate throughout.
    Constant,
    /// Multiply by `gamma` every `every` steps.
    Step {
        /// Steps between decays (≥ 1).
        every: u64,
        /// Factor per decay.
        gamma: f32,
    },
    /// Polynomial decay to 0 at `total` steps.
    Poly {
        /// Total steps of the run (≥ 1).
        total: u64,
        /// Exponent (0.9 is common).
        power: f32,
    },
}

impl Schedule {
    /// Parses the spelling above; `total_steps` is the run length used by `poly`.
    pub fn parse(s: &str, total_steps: u64) -> Result<Self> {
        let bad = || {
            TrainError::invalid(format!(
                "schedule '{s}': expected constant, step:EVERY:GAMMA or poly:POWER"
            ))
        };
        let parts: Vec<&str> = s.split(':').collect();
        match parts.as_slice() {
            ["constant"] => Ok(Schedule::Constant),
            ["step", every, gamma] => {
                let every: u64 = every.parse().map_err(|_| bad())?;
                let gamma: f32 = gamma.parse().map_err(|_| bad())?;
                if every == 0 || !gamma.is_finite() || gamma < 0.0 {
                    return Err(bad());
                }
                Ok(Schedule::Step { every, gamma })
            }
            ["poly", power] => {
                let power: f32 = power.parse().map_err(|_| bad())?;
                if !power.is_finite() || power < 0.0 || total_steps == 0 {
                    return Err(bad());
                }
                Ok(Schedule::Poly {
                    total: total_steps,
                    power,
                })
            }
            _ => Err(bad()),
        }
    }

    /// The spelling [`Schedule::parse`] reads back (`poly` without its total).
    pub fn describe(&self) -> String {
        match *self {
            Schedule::Constant => "constant".into(),
            Schedule::Step { every, gamma } => format!("step:{every}:{gamma}"),
            Schedule::Poly { power, .. } => format!("poly:{power}"),
        }
    }

    /// Learning rate of step `t` from the base rate `base`.
    pub fn lr(&self, base: f32, t: u64) -> f32 {
        match *self {
            Schedule::Constant => base,
            Schedule::Step { every, gamma } => base * gamma.powf((t / every) as f32),
            Schedule::Poly { total, power } => {
                let frac = 1.0 - (t.min(total) as f64 / total as f64);
                (base as f64 * frac.powf(power as f64)) as f32
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values() {
        assert_eq!(Schedule::parse("constant", 10).unwrap().lr(0.1, 7), 0.1);
        let s = Schedule::parse("step:3:0.5", 10).unwrap();
        assert_eq!(
            [s.lr(1.0, 0), s.lr(1.0, 2), s.lr(1.0, 3), s.lr(1.0, 7)],
            [1.0, 1.0, 0.5, 0.25]
        );
        let p = Schedule::parse("poly:2", 10).unwrap();
        assert_eq!(p.lr(1.0, 0), 1.0);
        assert!((p.lr(1.0, 5) - 0.25).abs() < 1e-7);
        assert_eq!(p.lr(1.0, 10), 0.0);
        assert_eq!(p.lr(1.0, 12), 0.0);
        for bad in ["", "step:0:0.5", "step:3", "poly:x", "linear"] {
            assert!(Schedule::parse(bad, 10).is_err(), "{bad}");
        }
        assert_eq!(Schedule::parse(&s.describe(), 10).unwrap(), s);
    }
}
