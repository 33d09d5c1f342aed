//! Typed, read-only views of tensor data that stays in the caller's bytes (flash, mmap, a `Vec`).
//!
//! Values are decoded element by element from little-endian bytes, so the view works for any
//! alignment of the underlying buffer: unaligned model buffers are *accepted*, never refused.

use core::fmt;

use crate::error::Shape;

/// Element type of a stored tensor (the safetensors dtype strings).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DType {
    /// IEEE binary32, "F32".
    F32,
    /// IEEE binary16, "F16".
    F16,
    /// bfloat16, "BF16".
    BF16,
    /// Any other dtype safetensors knows ("F64", "I64", "U8", "BOOL", ...): readable as a
    /// file, but not usable as a U-Net weight.
    Other,
}

impl DType {
    /// Parses a safetensors dtype string.
    pub fn from_safetensors(s: &[u8]) -> Option<DType> {
        Some(match s {
            b"F32" => DType::F32,
            b"F16" => DType::F16,
            b"BF16" => DType::BF16,
            b"F64" | b"I64" | b"U64" | b"I32" | b"U32" | b"I16" | b"U16" | b"I8" | b"U8"
            | b"BOOL" | b"F8_E4M3" | b"F8_E5M2" | b"F8_E8M0" | b"F8_E4M3FNUZ" | b"F8_E5M2FNUZ"
            | b"F4" | b"F6_E2M3" | b"F6_E3M2" | b"C64" => DType::Other,
            _ => return None,
        })
    }
    /// Bytes per element; `None` for [`DType::Other`] (its size is handled by the file reader).
    pub fn size(self) -> Option<usize> {
        match self {
            DType::F32 => Some(4),
            DType::F16 | DType::BF16 => Some(2),
            DType::Other => None,
        }
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DType::F32 => "F32",
            DType::F16 => "F16",
            DType::BF16 => "BF16",
            DType::Other => "a non-float dtype",
        })
    }
}

/// A float tensor borrowed from model bytes. `data.len() == shape.numel() * dtype.size()` is an
/// invariant established by the model loader.
#[derive(Clone, Copy)]
pub struct TensorView<'a> {
    dtype: DType,
    shape: Shape,
    data: &'a [u8],
}

impl<'a> TensorView<'a> {
    /// Wraps bytes; `None` unless `dtype` is a float type and `data` has exactly the right length.
    pub fn new(dtype: DType, shape: Shape, data: &'a [u8]) -> Option<Self> {
        let n = shape.numel()?.checked_mul(dtype.size()?)?;
        (n == data.len()).then_some(TensorView { dtype, shape, data })
    }
    /// The stored dtype.
    pub fn dtype(&self) -> DType {
        self.dtype
    }
    /// The shape.
    pub fn shape(&self) -> &Shape {
        &self.shape
    }
    /// Number of elements.
    pub fn len(&self) -> usize {
        self.data.len() / self.dtype.size().unwrap_or(1)
    }
    /// True if the tensor has no elements.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
    /// Element `i` (flat, row-major) as f32. Panics only if `i >= self.len()`, which callers
    /// inside the crate rule out by construction.
    #[inline(always)]
    pub fn get(&self, i: usize) -> f32 {
        match self.dtype {
            DType::F32 => {
                let b = &self.data[i * 4..i * 4 + 4];
                f32::from_le_bytes([b[0], b[1], b[2], b[3]])
            }
            DType::F16 => {
                let b = &self.data[i * 2..i * 2 + 2];
                half::f16::from_bits(u16::from_le_bytes([b[0], b[1]])).to_f32()
            }
            DType::BF16 => {
                let b = &self.data[i * 2..i * 2 + 2];
                half::bf16::from_bits(u16::from_le_bytes([b[0], b[1]])).to_f32()
            }
            DType::Other => 0.0,
        }
    }
    /// Copies elements `start..start + dst.len()` into `dst` as f32.
    #[inline]
    pub fn read_into(&self, start: usize, dst: &mut [f32]) {
        match self.dtype {
            DType::F32 => {
                let src = &self.data[start * 4..(start + dst.len()) * 4];
                for (d, b) in dst.iter_mut().zip(src.chunks_exact(4)) {
                    *d = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                }
            }
            _ => {
                for (k, d) in dst.iter_mut().enumerate() {
                    *d = self.get(start + k);
                }
            }
        }
    }
}

impl fmt::Debug for TensorView<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TensorView({} {})", self.dtype, self.shape)
    }
}
