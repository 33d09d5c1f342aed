//! Synthetic model files for tests, benchmarks and examples (`std` feature only): a U-Net of any
//! [`Config`] with seeded He-initialised weights, written in the unet safetensors format.
//!
//! Weights: `N(0, √(2/fan_in))` with `fan_in = C_in·k·k` (for the transposed conv, `C_out·4`,
//! as PyTorch counts the fan-in of a `[C_in, C_out, 2, 2]` weight), biases `N(0, 0.05)`, drawn
//! from a SplitMix64 stream (Box–Muller), so files are identical on every platform.

use std::string::String;
use std::vec::Vec;

use crate::arch::{Config, ParamId};
use crate::tensor::DType;

/// SplitMix64: tiny, seedable, platform-independent.
struct SplitMix(u64);

impl SplitMix {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in (0, 1].
    fn uniform(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 1.0) / (1u64 << 53) as f64
    }
    fn normal(&mut self) -> f64 {
        let (u, v) = (self.uniform(), self.uniform());
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }
}

/// Encodes `v` as `dtype` little-endian bytes (round to nearest even for F16/BF16).
fn encode(v: f32, dtype: DType, out: &mut Vec<u8>) {
    match dtype {
        DType::F16 => out.extend_from_slice(&half::f16::from_f32(v).to_le_bytes()),
        DType::BF16 => out.extend_from_slice(&half::bf16::from_f32(v).to_le_bytes()),
        _ => out.extend_from_slice(&v.to_le_bytes()),
    }
}

/// A complete model file for `config` with random weights stored as `dtype` (F32, F16 or BF16;
/// anything else is stored as F32). `normalization` is written as the `normalization` metadata
/// value (e.g. `"none"`). Panics only if `config` is invalid (a programming error in a test).
pub fn random_model(config: &Config, dtype: DType, seed: u64, normalization: &str) -> Vec<u8> {
    config
        .validate()
        .expect("synth::random_model needs a valid config");
    let dtype = match dtype {
        DType::F16 | DType::BF16 => dtype,
        _ => DType::F32,
    };
    let dname = match dtype {
        DType::F16 => "F16",
        DType::BF16 => "BF16",
        _ => "F32",
    };
    let mut rng = SplitMix(seed);
    let mut data = Vec::new();
    let mut header = String::from("{");
    header.push_str(&format!(
        "\"__metadata__\":{{\"format\":\"unet\",\"format_version\":\"1\",\"in_channels\":\"{}\",\
         \"num_classes\":\"{}\",\"base_channels\":\"{}\",\"levels\":\"{}\",\"padding\":\"{}\",\
         \"normalization\":\"{}\",\"provenance\":\"unet_core::synth seed {}\"}}",
        config.in_channels,
        config.num_classes,
        config.base_channels,
        config.levels,
        config.padding.as_str(),
        normalization,
        seed
    ));
    for k in 0..config.param_count() {
        let p = config.param(k).expect("index in range");
        let shape = config.param_shape(p).expect("valid config");
        let dims = shape.dims();
        let is_bias = dims.len() == 1;
        let fan_in = match p {
            _ if is_bias => 1,
            ParamId::Up { .. } => dims[1] * 4,
            _ => dims[1] * dims[2] * dims[3],
        };
        let std = if is_bias {
            0.05
        } else {
            (2.0 / fan_in as f64).sqrt()
        };
        let begin = data.len();
        for _ in 0..shape.numel().expect("valid config") {
            encode((rng.normal() * std) as f32, dtype, &mut data);
        }
        let dims: Vec<String> = dims.iter().map(|d| d.to_string()).collect();
        header.push_str(&format!(
            ",\"{p}\":{{\"dtype\":\"{dname}\",\"shape\":[{}],\"data_offsets\":[{begin},{}]}}",
            dims.join(","),
            data.len()
        ));
    }
    header.push('}');
    // Pad the header with spaces so the data starts 8-byte aligned (as the safetensors crate does).
    while (8 + header.len()) % 8 != 0 {
        header.push(' ');
    }
    let mut file = Vec::with_capacity(8 + header.len() + data.len());
    file.extend_from_slice(&(header.len() as u64).to_le_bytes());
    file.extend_from_slice(header.as_bytes());
    file.extend_from_slice(&data);
    file
}

/// A deterministic pseudo-random input tile of `n` values in `[0, 1)`.
pub fn random_input(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = SplitMix(seed ^ 0x5eed);
    (0..n)
        .map(|_| (rng.uniform() - f64::EPSILON) as f32)
        .collect()
}
