//! PLACEHOLDER — being written by the reader helper. API contract only.
use crate::error::{Error, Shape};
use crate::tensor::DType;

/// A JSON string from the header, borrowed raw (between the quotes, escapes not decoded).
#[derive(Clone, Copy, Debug)]
pub struct JsonStr<'a> {
    raw: &'a [u8],
}

impl<'a> JsonStr<'a> {
    /// The raw bytes between the quotes.
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }
    /// The string if it contains no escapes (always valid UTF-8: the header was checked).
    pub fn as_plain_str(&self) -> Option<&'a str> {
        None
    }
    /// True if the decoded string equals `s`.
    pub fn eq_str(&self, _s: &str) -> bool {
        false
    }
}

/// One tensor entry of the header, validated.
#[derive(Clone, Copy, Debug)]
pub struct TensorInfo<'a> {
    /// Its name.
    pub name: JsonStr<'a>,
    /// Byte offset of the name within the file.
    pub name_offset: usize,
    /// Its dtype.
    pub dtype: DType,
    /// Its shape.
    pub shape: Shape,
    /// Its bytes (exactly numel × dtype size).
    pub data: &'a [u8],
}

/// A parsed, validated safetensors file borrowed from bytes.
#[derive(Clone, Copy, Debug)]
pub struct SafeTensors<'a> {
    bytes: &'a [u8],
}

impl<'a> SafeTensors<'a> {
    /// Parses and validates.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, Error> {
        let _ = bytes;
        Err(Error::Format {
            what: "reader not written yet",
            offset: 0,
        })
    }
    /// Number of tensors.
    pub fn len(&self) -> usize {
        let _ = self.bytes;
        0
    }
    /// True if no tensors.
    pub fn is_empty(&self) -> bool {
        true
    }
    /// Tensors in header order.
    pub fn tensors(&self) -> impl Iterator<Item = TensorInfo<'a>> + '_ {
        core::iter::empty()
    }
    /// Looks a tensor up by name.
    pub fn tensor(&self, _name: &str) -> Option<TensorInfo<'a>> {
        None
    }
    /// Looks a `__metadata__` value up by key.
    pub fn metadata(&self, _key: &str) -> Option<JsonStr<'a>> {
        None
    }
    /// All metadata entries.
    pub fn metadata_entries(&self) -> impl Iterator<Item = (JsonStr<'a>, JsonStr<'a>)> + '_ {
        core::iter::empty()
    }
}
