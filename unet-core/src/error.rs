//! The one error type of unet-core: small, `Copy`, allocation-free, and precise enough to say
//! which tensor, which key or which size was wrong.

use core::fmt;

use crate::arch::ParamId;
use crate::tensor::DType;

/// A tensor shape as stored in a model file (at most [`MAX_RANK`] dimensions).
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct Shape {
    dims: [usize; MAX_RANK],
    rank: u8,
}

/// Largest tensor rank the reader accepts; deeper tensors are refused with [`Error::Format`].
pub const MAX_RANK: usize = 8;

impl Shape {
    /// Builds a shape from its dimensions; `None` if there are more than [`MAX_RANK`].
    pub fn new(dims: &[usize]) -> Option<Self> {
        if dims.len() > MAX_RANK {
            return None;
        }
        let mut s = Shape {
            dims: [0; MAX_RANK],
            rank: dims.len() as u8,
        };
        s.dims[..dims.len()].copy_from_slice(dims);
        Some(s)
    }
    /// The dimensions, outermost first.
    pub fn dims(&self) -> &[usize] {
        &self.dims[..self.rank as usize]
    }
    /// Number of elements, `None` on overflow.
    pub fn numel(&self) -> Option<usize> {
        self.dims()
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
    }
}

impl fmt::Debug for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[")?;
        for (i, d) in self.dims().iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{d}")?;
        }
        f.write_str("]")
    }
}

/// What went wrong. Every fallible function of unet-core returns this; nothing panics.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// The bytes are not a well-formed safetensors file; `what` says which rule was broken and
    /// `offset` is the byte offset (into the file) where it was noticed.
    Format {
        /// The broken rule, e.g. "header length exceeds file size".
        what: &'static str,
        /// Byte offset into the file.
        offset: usize,
    },
    /// A `__metadata__` key the model needs is missing.
    MissingMetadata {
        /// The key, e.g. "levels".
        key: &'static str,
    },
    /// A `__metadata__` value is present but not acceptable.
    BadMetadata {
        /// The key.
        key: &'static str,
        /// Why it was refused, e.g. "expected an integer in 1..=8".
        what: &'static str,
    },
    /// The file declares a format version this build does not read.
    UnsupportedVersion {
        /// The version found in the file (0 if it was not a number).
        found: u32,
        /// The newest version this build reads.
        supported: u32,
    },
    /// A parameter tensor the architecture needs is not in the file.
    MissingTensor {
        /// Which parameter.
        param: ParamId,
    },
    /// The file holds a tensor the architecture does not use (strict loading, as PyTorch's
    /// `load_state_dict(strict=True)`).
    UnexpectedTensor {
        /// Byte offset into the file of the opening quote of the tensor's name.
        offset: usize,
    },
    /// A parameter tensor has the wrong shape.
    TensorShape {
        /// Which parameter.
        param: ParamId,
        /// Shape the architecture needs.
        expected: Shape,
        /// Shape found in the file.
        found: Shape,
    },
    /// A parameter tensor has a dtype other than F32, F16 or BF16.
    TensorDType {
        /// Which parameter.
        param: ParamId,
        /// The dtype found in the file.
        found: DType,
    },
    /// A tile size the network cannot take (e.g. an odd size before a 2×2 pool, or a size whose
    /// output would be empty).
    TileSize {
        /// Requested input height.
        h: usize,
        /// Requested input width.
        w: usize,
        /// Why it is illegal.
        what: &'static str,
    },
    /// A size computation overflowed `usize`.
    Overflow,
    /// A caller buffer is shorter than required.
    BufferTooSmall {
        /// Which buffer: "input", "output", "scratch".
        buffer: &'static str,
        /// Elements required.
        needed: usize,
        /// Elements given.
        got: usize,
    },
    /// An argument is out of its documented range (e.g. zero channels, a plan from another model).
    InvalidArgument {
        /// What was wrong.
        what: &'static str,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Format { what, offset } => {
                write!(f, "not a valid safetensors file: {what} (at byte {offset})")
            }
            Error::MissingMetadata { key } => write!(f, "model metadata lacks key '{key}'"),
            Error::BadMetadata { key, what } => write!(f, "model metadata '{key}': {what}"),
            Error::UnsupportedVersion { found, supported } => write!(
                f,
                "model format version {found} is not supported (this build reads up to {supported})"
            ),
            Error::MissingTensor { param } => write!(f, "tensor '{param}' is missing"),
            Error::UnexpectedTensor { offset } => {
                write!(f, "the file holds a tensor the architecture does not use (its name starts at byte {offset})")
            }
            Error::TensorShape {
                param,
                expected,
                found,
            } => {
                write!(
                    f,
                    "tensor '{param}': expected shape {expected}, found {found}"
                )
            }
            Error::TensorDType { param, found } => {
                write!(f, "tensor '{param}': dtype {found} is not F32, F16 or BF16")
            }
            Error::TileSize { h, w, what } => write!(f, "tile {h}x{w} is not legal: {what}"),
            Error::Overflow => f.write_str("size computation overflowed"),
            Error::BufferTooSmall {
                buffer,
                needed,
                got,
            } => {
                write!(
                    f,
                    "{buffer} buffer too small: need {needed} elements, got {got}"
                )
            }
            Error::InvalidArgument { what } => write!(f, "invalid argument: {what}"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for Error {}
