//! Inverted-dropout masks for the bottom of the network, a pure function of
//! `(seed, step, sample index)` so that resumed runs and data-parallel shards draw the same masks.
//!
//! The mask of sample `i` of a step's batch (its index in the *whole* batch, so a data-parallel
//! shard starting at sample `first` draws the same masks as the full batch) is drawn from
//! `ChaCha8Rng::seed_from_u64(seed ^ DROPOUT_SALT)` with stream `step` and word position
//! `i · 2^40`, in row-major order: an element is dropped (0) if a uniform `f32` in `[0, 1)` is
//! `< p`, and kept as `1/(1 − p)` otherwise, so the expected activation is unchanged and
//! evaluation needs no rescaling. (A mask has far fewer than 2^40 elements, so the windows of
//! different samples never overlap.)

use ndarray::Array3;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::Dropout;
use crate::error::{Result, TrainError};

/// Mixed into the run seed so that dropout masks are independent of the other random streams
/// derived from the same seed.
pub const DROPOUT_SALT: u64 = 0xD50F_0A7E_5EED_0001;

/// Masks of shape `(c, h, w)` for samples `first..first + batch`; `None` if `p == 0`. Errors
/// unless `0 ≤ p < 1`.
pub fn masks(
    d: &Dropout,
    first: usize,
    batch: usize,
    shape: (usize, usize, usize),
) -> Result<Option<Vec<Array3<f32>>>> {
    if !(0.0..1.0).contains(&d.p) {
        return Err(TrainError::invalid(format!(
            "dropout probability {} is not in [0, 1)",
            d.p
        )));
    }
    if d.p == 0.0 {
        return Ok(None);
    }
    let keep = 1.0 / (1.0 - d.p);
    Ok(Some(
        (first..first + batch)
            .map(|i| {
                let mut rng = ChaCha8Rng::seed_from_u64(d.seed ^ DROPOUT_SALT);
                rng.set_stream(d.step);
                rng.set_word_pos((i as u128) << 40);
                Array3::from_shape_simple_fn(shape, || {
                    if rng.random::<f32>() < d.p {
                        0.0
                    } else {
                        keep
                    }
                })
            })
            .collect(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_rate_and_scale() {
        let d = Dropout {
            p: 0.5,
            seed: 3,
            step: 9,
        };
        let a = masks(&d, 0, 2, (4, 8, 8)).unwrap().unwrap();
        let b = masks(&d, 0, 2, (4, 8, 8)).unwrap().unwrap();
        assert_eq!(a, b);
        // A shard starting at sample 1 draws sample 1's mask.
        let shard = masks(&d, 1, 1, (4, 8, 8)).unwrap().unwrap();
        assert_eq!(shard[0], a[1]);
        assert_ne!(a[0], a[1]);
        let c = masks(&Dropout { step: 10, ..d }, 0, 2, (4, 8, 8))
            .unwrap()
            .unwrap();
        assert_ne!(a, c);
        let dropped = a
            .iter()
            .flat_map(|m| m.iter())
            .filter(|&&v| v == 0.0)
            .count();
        assert!((dropped as f64 / 512.0 - 0.5).abs() < 0.1, "{dropped}");
        assert!(a
            .iter()
            .flat_map(|m| m.iter())
            .all(|&v| v == 0.0 || v == 2.0));
        assert!(masks(&Dropout { p: 0.0, ..d }, 0, 2, (1, 2, 2))
            .unwrap()
            .is_none());
        assert!(masks(&Dropout { p: 1.0, ..d }, 0, 2, (1, 2, 2)).is_err());
    }
}
