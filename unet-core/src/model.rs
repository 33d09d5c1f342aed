//! [`Model`]: a validated U-Net over borrowed safetensors bytes.
//!
//! The file's `__metadata__` must hold (all values are JSON strings):
//!
//! | key | value |
//! |---|---|
//! | `format` | `unet` |
//! | `format_version` | `1` (newer versions are refused with [`Error::UnsupportedVersion`]) |
//! | `in_channels`, `num_classes`, `base_channels`, `levels` | decimal integers |
//! | `padding` | `valid` or `same` |
//! | `normalization` | optional, see [`Normalization`]; default `none` |
//! | `class_names` | optional, comma-separated |
//!
//! Any other key is kept and ignored (the trainer writes provenance there). Every parameter tensor
//! of the architecture ([`crate::arch`]) must be present with the exact shape and an F32, F16 or
//! BF16 dtype, and no other tensor may be present (strict, as PyTorch's `load_state_dict`).

use crate::arch::{Config, Padding, ParamId, MAX_PARAMS};
use crate::error::{Error, Shape};
use crate::geometry::Geometry;
use crate::normalize::Normalization;
use crate::safetensors::{JsonStr, SafeTensors};
use crate::tensor::{DType, TensorView};

/// The `format` metadata value of a unet model file.
pub const FORMAT_NAME: &str = "unet";
/// The newest `format_version` this build reads.
pub const FORMAT_VERSION: u32 = 1;

/// A trained U-Net whose weights stay in the caller's bytes.
///
/// Immutable after loading and `Sync`: several threads may share one `Model` (by reference)
/// and run [`Model::forward`] at the same time, each with its own scratch and output buffers.
#[derive(Clone, Copy)]
pub struct Model<'a> {
    file: SafeTensors<'a>,
    config: Config,
    geometry: Geometry,
    normalization: Normalization,
    params: [Option<TensorView<'a>>; MAX_PARAMS],
}

impl core::fmt::Debug for Model<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Model")
            .field("config", &self.config)
            .field("normalization", &self.normalization)
            .finish_non_exhaustive()
    }
}

fn meta_str<'a>(file: &SafeTensors<'a>, key: &'static str) -> Result<Option<&'a str>, Error> {
    match file.metadata(key) {
        None => Ok(None),
        Some(v) => v.as_plain_str().map(Some).ok_or(Error::BadMetadata {
            key,
            what: "value must not contain JSON escapes",
        }),
    }
}

fn meta_required<'a>(file: &SafeTensors<'a>, key: &'static str) -> Result<&'a str, Error> {
    meta_str(file, key)?.ok_or(Error::MissingMetadata { key })
}

fn meta_usize(file: &SafeTensors<'_>, key: &'static str) -> Result<usize, Error> {
    meta_required(file, key)?
        .parse::<usize>()
        .map_err(|_| Error::BadMetadata {
            key,
            what: "expected a decimal integer",
        })
}

impl<'a> Model<'a> {
    /// Parses `bytes` as a safetensors model file and validates the metadata and every tensor.
    /// Nothing is copied: the model borrows `bytes`, which may have any alignment.
    pub fn from_safetensors(bytes: &'a [u8]) -> Result<Self, Error> {
        let file = SafeTensors::parse(bytes)?;
        match meta_str(&file, "format")? {
            Some(FORMAT_NAME) => {}
            Some(_) => {
                return Err(Error::BadMetadata {
                    key: "format",
                    what: "expected \"unet\"",
                })
            }
            None => return Err(Error::MissingMetadata { key: "format" }),
        }
        let version = meta_required(&file, "format_version")?;
        let found = version.parse::<u32>().unwrap_or(0);
        if found == 0 || found > FORMAT_VERSION {
            return Err(Error::UnsupportedVersion {
                found,
                supported: FORMAT_VERSION,
            });
        }
        let padding = match meta_required(&file, "padding")? {
            "valid" => Padding::Valid,
            "same" => Padding::Same,
            _ => {
                return Err(Error::BadMetadata {
                    key: "padding",
                    what: "expected valid or same",
                })
            }
        };
        let config = Config {
            in_channels: meta_usize(&file, "in_channels")?,
            num_classes: meta_usize(&file, "num_classes")?,
            base_channels: meta_usize(&file, "base_channels")?,
            levels: meta_usize(&file, "levels")?,
            padding,
        };
        config.validate()?;
        let geometry = Geometry::new(config.levels, padding)?;
        let normalization = match meta_str(&file, "normalization")? {
            None => Normalization::None,
            Some(s) => Normalization::parse(s)?,
        };

        let mut params = [None; MAX_PARAMS];
        for (k, slot) in params.iter_mut().enumerate().take(config.param_count()) {
            let param = config.param(k).ok_or(Error::Overflow)?;
            let mut name = [0u8; 32];
            let n = param.write_name(&mut name);
            // Names are ASCII; `from_utf8` cannot fail.
            let name = core::str::from_utf8(&name[..n]).map_err(|_| Error::Overflow)?;
            let info = file.tensor(name).ok_or(Error::MissingTensor { param })?;
            let expected = config.param_shape(param).ok_or(Error::Overflow)?;
            if !matches!(info.dtype, DType::F32 | DType::F16 | DType::BF16) {
                return Err(Error::TensorDType {
                    param,
                    found: info.dtype,
                });
            }
            if info.shape != expected {
                return Err(Error::TensorShape {
                    param,
                    expected,
                    found: info.shape,
                });
            }
            *slot = Some(TensorView::new(info.dtype, info.shape, info.data).ok_or(
                Error::Format {
                    what: "tensor byte length disagrees with its shape",
                    offset: info.name_offset,
                },
            )?);
        }
        if file.len() != config.param_count() {
            // Every needed tensor was found, so some other tensor is extra: name it.
            let extra = file
                .tensors()
                .find(|t| {
                    (0..config.param_count())
                        .all(|k| config.param(k).is_some_and(|p| !t.name.eq_str_param(p)))
                })
                .map(|t| t.name_offset)
                .unwrap_or(0);
            return Err(Error::UnexpectedTensor { offset: extra });
        }
        Ok(Model {
            file,
            config,
            geometry,
            normalization,
            params,
        })
    }

    /// The architecture.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Geometry of the network (legal sizes, halo).
    pub fn geometry(&self) -> &Geometry {
        &self.geometry
    }

    /// Input normalisation the file declares.
    pub fn normalization(&self) -> Normalization {
        self.normalization
    }

    /// A parameter tensor; `None` if `p` is not part of this architecture.
    pub fn param(&self, p: ParamId) -> Option<TensorView<'a>> {
        self.params[self.config.param_index(p)?]
    }

    /// Any `__metadata__` value, raw (escapes undecoded).
    pub fn metadata(&self, key: &str) -> Option<JsonStr<'a>> {
        self.file.metadata(key)
    }

    /// The underlying file.
    pub fn file(&self) -> &SafeTensors<'a> {
        &self.file
    }

    /// Dtype of the weights (that of `enc.0.conv1.weight`; files may mix dtypes).
    pub fn weight_dtype(&self) -> DType {
        self.params[0].map(|t| t.dtype()).unwrap_or(DType::F32)
    }

    /// Shape a parameter must have.
    pub fn param_shape(&self, p: ParamId) -> Option<Shape> {
        self.config.param_shape(p)
    }
}

impl JsonStr<'_> {
    /// True if this string is the state-dict name of `p`.
    pub fn eq_str_param(&self, p: ParamId) -> bool {
        let mut buf = [0u8; 32];
        let n = p.write_name(&mut buf);
        core::str::from_utf8(&buf[..n]).is_ok_and(|s| self.eq_str(s))
    }
}
