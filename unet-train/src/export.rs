//! Writing model files: safetensors with the `unet` format metadata that unet-core, libunet and
//! the PyTorch reference read (see [`unet_core::model`]).
//!
//! Tensors are the parameters under their state-dict names, stored as F32, F16 or BF16 (rounded
//! to nearest even). The `safetensors` crate pads the header to a multiple of 8 bytes and every
//! tensor's byte size is a multiple of its element size, so each tensor starts at a multiple of
//! its element size from the file start.
//!
//! `__metadata__`: `format=unet`, `format_version=1`, `in_channels`, `num_classes`,
//! `base_channels`, `levels`, `padding`, `normalization` (e.g. `percentile:1:99.8`),
//! `class_names` (comma-separated, optional) and free-form provenance keys chosen by the caller
//! (the trainer writes `loss_w0`, `loss_sigma`, `steps`, `seed`, `data`, `date`, ...). Files are
//! written atomically ([`crate::atomic_write`]).

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::Path;

use safetensors::{Dtype, View};
use unet_core::{Normalization, FORMAT_NAME, FORMAT_VERSION};

use crate::atomic_write::write_atomic;
use crate::error::{Result, TrainError};
use crate::params::Params;

/// Keys the format defines; provenance may not override them.
pub const RESERVED_KEYS: [&str; 9] = [
    "format",
    "format_version",
    "in_channels",
    "num_classes",
    "base_channels",
    "levels",
    "padding",
    "normalization",
    "class_names",
];

/// Stored element type of the weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StoreDtype {
    /// IEEE binary32 (exact).
    #[default]
    F32,
    /// IEEE binary16 (halves the file; ~3 significant digits).
    F16,
    /// bfloat16.
    BF16,
}

impl StoreDtype {
    /// Parses `f32`, `f16` or `bf16`.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "f32" => Ok(StoreDtype::F32),
            "f16" => Ok(StoreDtype::F16),
            "bf16" => Ok(StoreDtype::BF16),
            _ => Err(TrainError::invalid(format!(
                "dtype '{s}': expected f32, f16 or bf16"
            ))),
        }
    }
}

/// What a model file says besides its weights.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ModelInfo {
    /// Input normalisation the model was trained with.
    pub normalization: Option<Normalization>,
    /// One name per class (no commas), or empty.
    pub class_names: Vec<String>,
    /// Provenance `(key, value)` pairs (keys must not be [`RESERVED_KEYS`]).
    pub provenance: Vec<(String, String)>,
}

/// The metadata spelling of a normalisation (what [`Normalization::parse`] reads back).
pub fn normalization_str(n: &Normalization) -> String {
    match *n {
        Normalization::None => "none".into(),
        Normalization::Percentile { low, high } => format!("percentile:{low}:{high}"),
        Normalization::MeanStd { mean, std } => format!("mean_std:{mean}:{std}"),
        Normalization::MinMax { min, max } => format!("min_max:{min}:{max}"),
    }
}

struct Blob {
    dtype: Dtype,
    shape: Vec<usize>,
    bytes: Vec<u8>,
}

impl View for &Blob {
    fn dtype(&self) -> Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.bytes)
    }
    fn data_len(&self) -> usize {
        self.bytes.len()
    }
}

fn encode(values: &[f32], dtype: StoreDtype) -> (Dtype, Vec<u8>) {
    match dtype {
        StoreDtype::F32 => (
            Dtype::F32,
            values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ),
        StoreDtype::F16 => (
            Dtype::F16,
            values
                .iter()
                .flat_map(|&v| half::f16::from_f32(v).to_le_bytes())
                .collect(),
        ),
        StoreDtype::BF16 => (
            Dtype::BF16,
            values
                .iter()
                .flat_map(|&v| half::bf16::from_f32(v).to_le_bytes())
                .collect(),
        ),
    }
}

/// Serialises named f32 tensors with `metadata` (shared with [`crate::checkpoint`]).
pub(crate) fn serialize(
    tensors: Vec<(String, Vec<usize>, &[f32])>,
    dtype: StoreDtype,
    metadata: HashMap<String, String>,
) -> Result<Vec<u8>> {
    let blobs: Vec<(String, Blob)> = tensors
        .into_iter()
        .map(|(name, shape, values)| {
            let (dtype, bytes) = encode(values, dtype);
            (
                name,
                Blob {
                    dtype,
                    shape,
                    bytes,
                },
            )
        })
        .collect();
    Ok(safetensors::serialize(
        blobs.iter().map(|(n, b)| (n.as_str(), b)),
        Some(metadata),
    )?)
}

/// The metadata of a model file for `params` and `info` (validated).
pub fn model_metadata(params: &Params, info: &ModelInfo) -> Result<HashMap<String, String>> {
    let c = params.config();
    let mut m = HashMap::new();
    m.insert("format".into(), FORMAT_NAME.into());
    m.insert("format_version".into(), FORMAT_VERSION.to_string());
    m.insert("in_channels".into(), c.in_channels.to_string());
    m.insert("num_classes".into(), c.num_classes.to_string());
    m.insert("base_channels".into(), c.base_channels.to_string());
    m.insert("levels".into(), c.levels.to_string());
    m.insert("padding".into(), c.padding.as_str().into());
    if let Some(n) = &info.normalization {
        let s = normalization_str(n);
        Normalization::parse(&s)?;
        m.insert("normalization".into(), s);
    }
    if !info.class_names.is_empty() {
        if info.class_names.len() != c.num_classes {
            return Err(TrainError::invalid(format!(
                "{} class names for {} classes",
                info.class_names.len(),
                c.num_classes
            )));
        }
        if info.class_names.iter().any(|n| {
            n.is_empty()
                || n.contains(',')
                || n.contains(['"', '\\'])
                || n.chars().any(char::is_control)
        }) {
            return Err(TrainError::invalid("class names must be non-empty, without commas, quotes, backslashes or control characters"));
        }
        m.insert("class_names".into(), info.class_names.join(","));
    }
    for (k, v) in &info.provenance {
        if RESERVED_KEYS.contains(&k.as_str()) {
            return Err(TrainError::invalid(format!(
                "provenance may not set the reserved key '{k}'"
            )));
        }
        m.insert(k.clone(), v.clone());
    }
    Ok(m)
}

/// The bytes of a model file.
pub fn model_bytes(params: &Params, dtype: StoreDtype, info: &ModelInfo) -> Result<Vec<u8>> {
    let meta = model_metadata(params, info)?;
    let tensors = (0..params.len())
        .map(|k| {
            (
                params.id(k).to_string(),
                params.tensor(k).shape().to_vec(),
                params.data(k),
            )
        })
        .collect();
    serialize(tensors, dtype, meta)
}

/// Writes a model file atomically.
pub fn write_model(
    path: &Path,
    params: &Params,
    dtype: StoreDtype,
    info: &ModelInfo,
) -> Result<()> {
    if !params.all_finite() {
        return Err(TrainError::invalid("refusing to export non-finite weights"));
    }
    write_atomic(path, &model_bytes(params, dtype, info)?)
}

/// The current UTC time as `YYYY-MM-DDTHH:MM:SSZ` (for the `date` provenance key).
pub fn utc_timestamp() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    format_utc(secs)
}

/// Formats seconds since the Unix epoch as `YYYY-MM-DDTHH:MM:SSZ` (proleptic Gregorian).
pub fn format_utc(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps() {
        assert_eq!(format_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(format_utc(1_795_000_000), "2026-11-18T11:06:40Z");
    }

    #[test]
    fn normalization_round_trips() {
        for s in [
            "none",
            "percentile:1:99.8",
            "mean_std:0.5:0.25",
            "min_max:0:65535",
        ] {
            assert_eq!(normalization_str(&Normalization::parse(s).unwrap()), s);
        }
    }
}
