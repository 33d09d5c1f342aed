//! Seeded He initialisation (the paper's: Gaussian with standard deviation `√(2/N)`, `N` the
//! number of incoming nodes of one neuron), biases zero.
//!
//! `N` per tensor:
//! - 3×3 and 1×1 convolutions, weight `[C_out, C_in, k, k]`: `N = C_in·k·k` (e.g. 3·3·64 = 576);
//! - 2×2 stride-2 transposed convolutions, weight `[C_in, C_out, 2, 2]`: `N = C_out·2·2`, the
//!   fan-in PyTorch's `kaiming_normal_(mode="fan_in")` computes from this weight layout
//!   (`size(1)·k·k`). Each output pixel of a stride-2 2×2 transposed conv actually sums `C_in`
//!   products (one tap per input channel); since `C_out = C_in/2` here, PyTorch's count is
//!   `2·C_in` and the resulting std is `1/√2` of the "true" He value. We follow PyTorch so that
//!   a model initialised here and one initialised by `torch.nn.init.kaiming_normal_` agree in
//!   distribution.
//!
//! Values are drawn tensor by tensor in file order ([`unet_core::Config::param`]), each tensor in
//! row-major order, from a `ChaCha8Rng` seeded with `seed` (`SeedableRng::seed_from_u64`): the same
//! seed gives the same weights on every platform.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use unet_core::{Config, ParamId};

use crate::error::{Result, TrainError};
use crate::params::Params;

/// The fan-in `N` used for parameter `p`'s He standard deviation `√(2/N)` (see the module docs);
/// `None` for biases.
pub fn fan_in(config: &Config, p: ParamId) -> Option<usize> {
    let shape = config.param_shape(p)?;
    let d = shape.dims();
    match p {
        ParamId::Enc { bias: false, .. }
        | ParamId::Dec { bias: false, .. }
        | ParamId::Head { bias: false } => Some(d[1] * d[2] * d[3]),
        ParamId::Up { bias: false, .. } => Some(d[1] * d[2] * d[3]),
        _ => None,
    }
}

/// He-initialised parameters for `config`, deterministic in `seed`.
pub fn he_init(config: &Config, seed: u64) -> Result<Params> {
    let mut params = Params::zeros(config)?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    for k in 0..params.len() {
        let id = params.id(k);
        if let Some(n) = fan_in(config, id) {
            let std = (2.0 / n as f64).sqrt() as f32;
            let normal =
                Normal::new(0.0f32, std).map_err(|e| TrainError::invalid(format!("init: {e}")))?;
            for v in params.data_mut(k) {
                *v = normal.sample(&mut rng);
            }
        }
    }
    Ok(params)
}

#[cfg(test)]
mod tests {
    use super::*;
    use unet_core::Padding;

    fn cfg() -> Config {
        Config {
            in_channels: 2,
            num_classes: 3,
            base_channels: 8,
            levels: 3,
            padding: Padding::Valid,
        }
    }

    #[test]
    fn deterministic_and_seed_dependent() {
        let a = he_init(&cfg(), 7).unwrap();
        let b = he_init(&cfg(), 7).unwrap();
        let c = he_init(&cfg(), 8).unwrap();
        assert_eq!(a, b);
        assert!(a.max_abs_diff(&c) > 0.0);
    }

    #[test]
    fn std_matches_fan_in_and_biases_are_zero() {
        let c = Config {
            base_channels: 32,
            ..cfg()
        };
        let p = he_init(&c, 1).unwrap();
        for (id, t) in p.iter() {
            match fan_in(&c, id) {
                None => assert!(t.iter().all(|&v| v == 0.0), "{id}"),
                Some(n) => {
                    let m = t.len() as f64;
                    let mean = t.iter().map(|&v| v as f64).sum::<f64>() / m;
                    let var = t.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / m;
                    let want = 2.0 / n as f64;
                    // Sample variance of m Gaussian draws: relative s.e. √(2/m); allow 6 s.e.
                    let tol = 6.0 * (2.0 / m).sqrt() + 0.02;
                    assert!(
                        (var / want - 1.0).abs() < tol,
                        "{id}: var {var} want {want} (m={m})"
                    );
                    assert!(
                        mean.abs() < 6.0 * (want / m).sqrt() + 1e-6,
                        "{id}: mean {mean}"
                    );
                }
            }
        }
        assert_eq!(
            fan_in(
                &c,
                ParamId::Enc {
                    level: 0,
                    conv: 1,
                    bias: false
                }
            ),
            Some(2 * 9)
        );
        assert_eq!(
            fan_in(
                &c,
                ParamId::Dec {
                    level: 1,
                    conv: 1,
                    bias: false
                }
            ),
            Some(128 * 9)
        );
        assert_eq!(
            fan_in(
                &c,
                ParamId::Up {
                    level: 0,
                    bias: false
                }
            ),
            Some(32 * 4)
        );
        assert_eq!(fan_in(&c, ParamId::Head { bias: false }), Some(32));
    }
}
