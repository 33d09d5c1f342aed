//! An allocation-free, panic-free reader for safetensors files, parsed in place.
//!
//! # Format
//!
//! `[0, 8)`: `N`, the header length, a little-endian `u64` (at most [`MAX_HEADER_LEN`]).
//! `[8, 8 + N)`: the header, UTF-8 JSON: one object whose values are tensor entries
//! `{"dtype": "F32", "shape": [2, 3], "data_offsets": [BEGIN, END]}` plus an optional
//! `"__metadata__"` entry holding an object of string → string (or `null`). JSON whitespace may
//! surround the object: trailing padding is how writers align the data, and leading whitespace is
//! accepted too because the crate accepts it on purpose (its README says the header begins with
//! `{`; its tests require readers to tolerate leading padding).
//! `[8 + N, len)`: the data buffer. `data_offsets` are relative to its start; the tensors must
//! cover it exactly, without holes or overlaps (in any header order), and each tensor's byte length
//! must be `numel × bits(dtype) / 8` (sub-byte dtypes such as `F4` must end on a byte boundary).
//!
//! # Agreement with the `safetensors` crate (0.8)
//!
//! [`SafeTensors::parse`] enforces the invariants of `safetensors::SafeTensors::deserialize`:
//! header size limit, UTF-8, the JSON grammar of `serde_json` (escapes incl. surrogate pairs,
//! control characters, leading zeros, integers that must fit `usize`, no trailing garbage), known
//! dtype strings, checked shape products (`numel` folded left to right, as the crate does),
//! offsets that tile the data buffer, and a file that ends exactly at the last tensor byte. Names,
//! keys and dtype strings are compared *decoded*, so `"w\u0065ight"` is the name `weight`.
//! Duplicate `__metadata__` keys in the header are refused, as the crate does; duplicate keys
//! *inside* `__metadata__` are accepted and the last value wins, as with the crate.
//!
//! Every file this reader accepts, the crate accepts with identical tensors and metadata. The
//! reverse holds except for these deliberate refusals (the crate, through `serde`, is lenient):
//!
//! | the crate accepts | this reader says |
//! |---|---|
//! | more than [`MAX_TENSORS`] tensors | `"more than 1024 tensors"` |
//! | the same tensor name twice (the last entry silently wins) | `"duplicate tensor name"` |
//! | a tensor entry written as an array `["F32", [2], [0, 8]]` | `"tensor entry must be a JSON object"` |
//! | unknown keys in a tensor entry (ignored) | `"unknown key in tensor entry"` |
//! | a dtype written as serde's enum map `{"F32": null}` | `"dtype must be a JSON string"` |
//! | rank above [`MAX_RANK`] | `"tensor rank exceeds 8"` |
//!
//! The limits keep the work bounded without a heap. Without a map or a sort buffer, the
//! duplicate-name check compares every pair of names (O(tensors × header) byte steps, on a fast
//! path that skips the already validated entries), and tensors listed out of offset order (legal,
//! but neither the crate nor PyTorch writes them so) cost a second quadratic pass. Tensors listed
//! in offset order need no tiling pass. `examples/parse_bench.rs` times typical and worst cases.
//!
//! # Cost and memory
//!
//! Nothing is copied or allocated: [`SafeTensors`] holds the byte slice and a few positions.
//! [`SafeTensors::parse`] validates everything once; lookups ([`SafeTensors::tensor`],
//! [`SafeTensors::metadata`]) re-scan the (already validated) header, O(header length).
//!
//! # Alignment
//!
//! The bytes may have any alignment. [`TensorInfo::data`] is a plain `&[u8]`; typed access goes
//! through [`crate::tensor::TensorView`], which decodes little-endian values element by element,
//! so an unaligned buffer (or a tensor at an odd offset) is read correctly, never refused.

use core::fmt;

use crate::error::{Error, Shape, MAX_RANK};
use crate::tensor::DType;

/// Largest header length `N` accepted (100 MB, the crate's limit).
pub const MAX_HEADER_LEN: usize = 100_000_000;

/// Most tensor entries a header may hold (a deliberate limit, see the module docs).
pub const MAX_TENSORS: usize = 1024;

/// Length of the little-endian `u64` header-length prefix.
const N_LEN: usize = 8;

fn err(what: &'static str, offset: usize) -> Error {
    Error::Format { what, offset }
}

/// Every dtype string of the safetensors format (crate version 0.8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(non_camel_case_types)]
pub enum FileDtype {
    /// `"BOOL"`, 8 bits.
    BOOL,
    /// `"F4"` (MXF4), 4 bits.
    F4,
    /// `"F6_E2M3"` (MXF6), 6 bits.
    F6_E2M3,
    /// `"F6_E3M2"` (MXF6), 6 bits.
    F6_E3M2,
    /// `"U8"`.
    U8,
    /// `"I8"`.
    I8,
    /// `"F8_E5M2"`.
    F8_E5M2,
    /// `"F8_E4M3"`.
    F8_E4M3,
    /// `"F8_E8M0"`.
    F8_E8M0,
    /// `"F8_E4M3FNUZ"`.
    F8_E4M3FNUZ,
    /// `"F8_E5M2FNUZ"`.
    F8_E5M2FNUZ,
    /// `"I16"`.
    I16,
    /// `"U16"`.
    U16,
    /// `"F16"`.
    F16,
    /// `"BF16"`.
    BF16,
    /// `"I32"`.
    I32,
    /// `"U32"`.
    U32,
    /// `"F32"`.
    F32,
    /// `"C64"`.
    C64,
    /// `"F64"`.
    F64,
    /// `"I64"`.
    I64,
    /// `"U64"`.
    U64,
}

impl FileDtype {
    /// All dtypes, in the crate's order.
    pub const ALL: [FileDtype; 22] = [
        FileDtype::BOOL,
        FileDtype::F4,
        FileDtype::F6_E2M3,
        FileDtype::F6_E3M2,
        FileDtype::U8,
        FileDtype::I8,
        FileDtype::F8_E5M2,
        FileDtype::F8_E4M3,
        FileDtype::F8_E8M0,
        FileDtype::F8_E4M3FNUZ,
        FileDtype::F8_E5M2FNUZ,
        FileDtype::I16,
        FileDtype::U16,
        FileDtype::F16,
        FileDtype::BF16,
        FileDtype::I32,
        FileDtype::U32,
        FileDtype::F32,
        FileDtype::C64,
        FileDtype::F64,
        FileDtype::I64,
        FileDtype::U64,
    ];

    /// The dtype string as written in the header.
    pub fn name(self) -> &'static str {
        match self {
            FileDtype::BOOL => "BOOL",
            FileDtype::F4 => "F4",
            FileDtype::F6_E2M3 => "F6_E2M3",
            FileDtype::F6_E3M2 => "F6_E3M2",
            FileDtype::U8 => "U8",
            FileDtype::I8 => "I8",
            FileDtype::F8_E5M2 => "F8_E5M2",
            FileDtype::F8_E4M3 => "F8_E4M3",
            FileDtype::F8_E8M0 => "F8_E8M0",
            FileDtype::F8_E4M3FNUZ => "F8_E4M3FNUZ",
            FileDtype::F8_E5M2FNUZ => "F8_E5M2FNUZ",
            FileDtype::I16 => "I16",
            FileDtype::U16 => "U16",
            FileDtype::F16 => "F16",
            FileDtype::BF16 => "BF16",
            FileDtype::I32 => "I32",
            FileDtype::U32 => "U32",
            FileDtype::F32 => "F32",
            FileDtype::C64 => "C64",
            FileDtype::F64 => "F64",
            FileDtype::I64 => "I64",
            FileDtype::U64 => "U64",
        }
    }

    /// Bits per element (4 for `F4`, 6 for the `F6` types).
    pub fn bits(self) -> usize {
        match self {
            FileDtype::F4 => 4,
            FileDtype::F6_E2M3 | FileDtype::F6_E3M2 => 6,
            FileDtype::BOOL
            | FileDtype::U8
            | FileDtype::I8
            | FileDtype::F8_E5M2
            | FileDtype::F8_E4M3
            | FileDtype::F8_E8M0
            | FileDtype::F8_E4M3FNUZ
            | FileDtype::F8_E5M2FNUZ => 8,
            FileDtype::I16 | FileDtype::U16 | FileDtype::F16 | FileDtype::BF16 => 16,
            FileDtype::I32 | FileDtype::U32 | FileDtype::F32 => 32,
            FileDtype::C64 | FileDtype::F64 | FileDtype::I64 | FileDtype::U64 => 64,
        }
    }

    /// The compute-side dtype: F32, F16, BF16, or [`DType::Other`].
    pub fn dtype(self) -> DType {
        match self {
            FileDtype::F32 => DType::F32,
            FileDtype::F16 => DType::F16,
            FileDtype::BF16 => DType::BF16,
            _ => DType::Other,
        }
    }

    /// The dtype whose name is the decoded string `s`.
    pub fn from_json(s: &JsonStr<'_>) -> Option<FileDtype> {
        FileDtype::ALL.iter().copied().find(|d| s.eq_str(d.name()))
    }
}

impl fmt::Display for FileDtype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A JSON string from the header, borrowed raw (the bytes between the quotes, escapes not
/// decoded). Only the parser creates one, after checking it: it is valid UTF-8 and every escape
/// is well formed (surrogates paired), so decoding never fails.
///
/// Equality (`==`) compares the decoded strings.
#[derive(Clone, Copy)]
pub struct JsonStr<'a> {
    raw: &'a [u8],
}

impl<'a> JsonStr<'a> {
    /// The raw bytes between the quotes.
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }

    /// True if the string contains a backslash escape.
    pub fn has_escapes(&self) -> bool {
        self.raw.contains(&b'\\')
    }

    /// The string if it contains no escapes (always valid UTF-8: the header was checked).
    pub fn as_plain_str(&self) -> Option<&'a str> {
        if self.has_escapes() {
            None
        } else {
            core::str::from_utf8(self.raw).ok()
        }
    }

    /// The decoded characters.
    pub fn chars(&self) -> JsonChars<'a> {
        JsonChars {
            rest: core::str::from_utf8(self.raw).unwrap_or(""),
        }
    }

    /// True if the decoded string equals `s`.
    pub fn eq_str(&self, s: &str) -> bool {
        if self.has_escapes() {
            self.chars().eq(s.chars())
        } else {
            self.raw == s.as_bytes()
        }
    }

    /// Decodes into `buf` as UTF-8; `None` if `buf` is too short.
    pub fn decode_into<'b>(&self, buf: &'b mut [u8]) -> Option<&'b str> {
        let mut n = 0usize;
        for c in self.chars() {
            let len = c.len_utf8();
            let end = n.checked_add(len)?;
            c.encode_utf8(buf.get_mut(n..end)?);
            n = end;
        }
        core::str::from_utf8(buf.get(..n)?).ok()
    }

    /// Length of the decoded string in UTF-8 bytes.
    pub fn decoded_len(&self) -> usize {
        self.chars().map(char::len_utf8).sum()
    }
}

impl PartialEq for JsonStr<'_> {
    fn eq(&self, other: &Self) -> bool {
        if self.raw == other.raw {
            return true;
        }
        if !self.has_escapes() && !other.has_escapes() {
            return false;
        }
        self.chars().eq(other.chars())
    }
}

impl Eq for JsonStr<'_> {}

impl PartialEq<str> for JsonStr<'_> {
    fn eq(&self, other: &str) -> bool {
        self.eq_str(other)
    }
}

impl PartialEq<&str> for JsonStr<'_> {
    fn eq(&self, other: &&str) -> bool {
        self.eq_str(other)
    }
}

impl fmt::Display for JsonStr<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(s) = self.as_plain_str() {
            return f.write_str(s);
        }
        for c in self.chars() {
            fmt::Write::write_char(f, c)?;
        }
        Ok(())
    }
}

impl fmt::Debug for JsonStr<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"")?;
        for c in self.chars() {
            for e in c.escape_debug() {
                fmt::Write::write_char(f, e)?;
            }
        }
        f.write_str("\"")
    }
}

/// Iterator over the decoded characters of a [`JsonStr`].
#[derive(Clone, Debug)]
pub struct JsonChars<'a> {
    rest: &'a str,
}

fn hex4(b: &[u8]) -> Option<u32> {
    let d = b.get(..4)?;
    d.iter()
        .try_fold(0u32, |acc, &c| Some(acc * 16 + char::from(c).to_digit(16)?))
}

impl Iterator for JsonChars<'_> {
    type Item = char;

    fn next(&mut self) -> Option<char> {
        let mut it = self.rest.chars();
        let c = it.next()?;
        if c != '\\' {
            self.rest = it.as_str();
            return Some(c);
        }
        // Escapes are ASCII; a validated string never takes the fallback branches (which end
        // the iteration with U+FFFD rather than panic).
        let b = self.rest.as_bytes();
        let (c, used) = match b.get(1) {
            Some(b'"') => ('"', 2),
            Some(b'\\') => ('\\', 2),
            Some(b'/') => ('/', 2),
            Some(b'b') => ('\u{8}', 2),
            Some(b'f') => ('\u{c}', 2),
            Some(b'n') => ('\n', 2),
            Some(b'r') => ('\r', 2),
            Some(b't') => ('\t', 2),
            Some(b'u') => {
                let hi = b.get(2..).and_then(hex4);
                match hi {
                    Some(hi @ 0xD800..=0xDBFF) => {
                        let lo = match (b.get(6), b.get(7)) {
                            (Some(b'\\'), Some(b'u')) => b.get(8..).and_then(hex4),
                            _ => None,
                        };
                        match lo {
                            Some(lo @ 0xDC00..=0xDFFF) => {
                                let cp = 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00);
                                (
                                    char::from_u32(cp).unwrap_or(char::REPLACEMENT_CHARACTER),
                                    12,
                                )
                            }
                            _ => (char::REPLACEMENT_CHARACTER, usize::MAX),
                        }
                    }
                    Some(cp) => match char::from_u32(cp) {
                        Some(c) => (c, 6),
                        None => (char::REPLACEMENT_CHARACTER, usize::MAX),
                    },
                    None => (char::REPLACEMENT_CHARACTER, usize::MAX),
                }
            }
            _ => (char::REPLACEMENT_CHARACTER, usize::MAX),
        };
        self.rest = self.rest.get(used..).unwrap_or("");
        Some(c)
    }
}

/// One tensor entry of the header, validated.
#[derive(Clone, Copy, Debug)]
pub struct TensorInfo<'a> {
    /// Its name.
    pub name: JsonStr<'a>,
    /// Byte offset of the name (its opening quote) within the file.
    pub name_offset: usize,
    /// Its dtype (F32, F16, BF16 or [`DType::Other`]).
    pub dtype: DType,
    /// Its exact dtype as written in the file.
    pub file_dtype: FileDtype,
    /// Its shape.
    pub shape: Shape,
    /// Its bytes (exactly numel × dtype bits / 8), any alignment.
    pub data: &'a [u8],
    /// Byte offset of `data` within the file (`8 + N + BEGIN`).
    pub data_offset: usize,
}

/// A tensor entry as parsed from the header.
#[derive(Clone, Copy)]
struct Entry {
    dtype: FileDtype,
    shape: Shape,
    begin: usize,
    end: usize,
}

/// A position in the header. `end` is the end of the header; nothing past it is read.
#[derive(Clone, Copy)]
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
    end: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<u8> {
        if self.pos < self.end {
            self.buf.get(self.pos).copied()
        } else {
            None
        }
    }

    /// Consumes `b` if it is next.
    fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, b: u8, what: &'static str) -> Result<(), Error> {
        if self.eat(b) {
            Ok(())
        } else {
            Err(err(what, self.pos))
        }
    }

    /// Skips JSON whitespace (space, tab, LF, CR).
    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    /// A JSON string; `what` is the error if the next byte is not `"`.
    fn string(&mut self, what: &'static str) -> Result<JsonStr<'a>, Error> {
        let open = self.pos;
        if !self.eat(b'"') {
            return Err(err(what, open));
        }
        let start = self.pos;
        loop {
            let at = self.pos;
            match self.peek() {
                None => return Err(err("unterminated string", open)),
                Some(b'"') => {
                    self.pos += 1;
                    let raw = self
                        .buf
                        .get(start..at)
                        .ok_or(err("unterminated string", open))?;
                    return Ok(JsonStr { raw });
                }
                Some(b'\\') => {
                    self.pos += 1;
                    self.escape(at)?;
                }
                Some(0..=0x1f) => return Err(err("control character in string", at)),
                Some(_) => self.pos += 1,
            }
        }
    }

    /// The rest of an escape whose backslash (at `at`) was consumed.
    fn escape(&mut self, at: usize) -> Result<(), Error> {
        match self.peek() {
            Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => {
                self.pos += 1;
                Ok(())
            }
            Some(b'u') => {
                self.pos += 1;
                let hi = self.hex4(at)?;
                if (0xDC00..=0xDFFF).contains(&hi) {
                    return Err(err("unpaired surrogate in \\u escape", at));
                }
                if (0xD800..=0xDBFF).contains(&hi) {
                    let second = self.pos;
                    if !(self.eat(b'\\') && self.eat(b'u')) {
                        return Err(err("unpaired surrogate in \\u escape", at));
                    }
                    let lo = self.hex4(second)?;
                    if !(0xDC00..=0xDFFF).contains(&lo) {
                        return Err(err("unpaired surrogate in \\u escape", at));
                    }
                }
                Ok(())
            }
            _ => Err(err("invalid escape in string", at)),
        }
    }

    fn hex4(&mut self, at: usize) -> Result<u32, Error> {
        let mut v = 0u32;
        for _ in 0..4 {
            let d = self
                .peek()
                .and_then(|c| char::from(c).to_digit(16))
                .ok_or(err("\\u escape needs 4 hex digits", at))?;
            v = v * 16 + d;
            self.pos += 1;
        }
        Ok(v)
    }

    /// A non-negative JSON integer that fits `usize` (what serde reads into a `usize`).
    fn uint(&mut self) -> Result<usize, Error> {
        let start = self.pos;
        let first = match self.peek() {
            Some(d @ b'0'..=b'9') => d,
            Some(b'-') => {
                return Err(err(
                    "negative number where an unsigned integer is required",
                    start,
                ))
            }
            _ => return Err(err("expected an unsigned integer", start)),
        };
        let mut v: Option<u64> = Some(0);
        while let Some(d @ b'0'..=b'9') = self.peek() {
            self.pos += 1;
            v = v
                .and_then(|v| v.checked_mul(10))
                .and_then(|v| v.checked_add(u64::from(d - b'0')));
        }
        if first == b'0' && self.pos - start > 1 {
            return Err(err("leading zero in number", start));
        }
        if let Some(b'.' | b'e' | b'E') = self.peek() {
            return Err(err(
                "number must be an integer (no fraction or exponent)",
                start,
            ));
        }
        let v = v.ok_or(err("integer does not fit in 64 bits", start))?;
        usize::try_from(v).map_err(|_| err("integer does not fit in usize", start))
    }

    /// `[` int, ... `]` into `dims`; returns the count.
    fn uint_array(
        &mut self,
        dims: &mut [usize],
        not_array: &'static str,
        too_many: &'static str,
    ) -> Result<usize, Error> {
        if !self.eat(b'[') {
            return Err(err(not_array, self.pos));
        }
        self.ws();
        if self.eat(b']') {
            return Ok(0);
        }
        let mut n = 0usize;
        loop {
            self.ws();
            let at = self.pos;
            let v = self.uint()?;
            *dims.get_mut(n).ok_or(err(too_many, at))? = v;
            n += 1;
            self.ws();
            if self.eat(b',') {
                continue;
            }
            if self.eat(b']') {
                return Ok(n);
            }
            return Err(err("expected ',' or ']' in array", self.pos));
        }
    }

    /// A tensor entry object, fully checked on its own (not against the other entries).
    fn entry(&mut self) -> Result<Entry, Error> {
        let open = self.pos;
        if !self.eat(b'{') {
            return Err(err("tensor entry must be a JSON object", open));
        }
        let mut dtype = None;
        let mut shape: Option<(Shape, usize)> = None;
        let mut offsets: Option<(usize, usize, usize)> = None;
        self.ws();
        if !self.eat(b'}') {
            loop {
                self.ws();
                let key_at = self.pos;
                let key = self.string("expected a key string in tensor entry")?;
                self.ws();
                self.expect(b':', "expected ':' after key")?;
                self.ws();
                let at = self.pos;
                if key.eq_str("dtype") {
                    if dtype.is_some() {
                        return Err(err("duplicate key in tensor entry", key_at));
                    }
                    let s = self.string("dtype must be a JSON string")?;
                    dtype = Some(FileDtype::from_json(&s).ok_or(err("unknown dtype", at))?);
                } else if key.eq_str("shape") {
                    if shape.is_some() {
                        return Err(err("duplicate key in tensor entry", key_at));
                    }
                    let mut dims = [0usize; MAX_RANK];
                    let n = self.uint_array(
                        &mut dims,
                        "shape must be an array of integers",
                        "tensor rank exceeds 8",
                    )?;
                    let s = Shape::new(dims.get(..n).unwrap_or(&[]))
                        .ok_or(err("tensor rank exceeds 8", at))?;
                    shape = Some((s, at));
                } else if key.eq_str("data_offsets") {
                    if offsets.is_some() {
                        return Err(err("duplicate key in tensor entry", key_at));
                    }
                    let mut o = [0usize; 2];
                    let what = "data_offsets must be [begin, end]";
                    if self.uint_array(&mut o, what, what)? != 2 {
                        return Err(err(what, at));
                    }
                    offsets = Some((o[0], o[1], at));
                } else {
                    return Err(err("unknown key in tensor entry", key_at));
                }
                self.ws();
                if self.eat(b',') {
                    continue;
                }
                if self.eat(b'}') {
                    break;
                }
                return Err(err("expected ',' or '}' in tensor entry", self.pos));
            }
        }
        let dtype = dtype.ok_or(err("tensor entry lacks \"dtype\"", open))?;
        let (shape, shape_at) = shape.ok_or(err("tensor entry lacks \"shape\"", open))?;
        let (begin, end, offsets_at) =
            offsets.ok_or(err("tensor entry lacks \"data_offsets\"", open))?;
        let len = end
            .checked_sub(begin)
            .ok_or(err("data_offsets end is before begin", offsets_at))?;
        let numel = shape
            .numel()
            .ok_or(err("shape element count overflows", shape_at))?;
        let bits = numel
            .checked_mul(dtype.bits())
            .ok_or(err("tensor bit size overflows", shape_at))?;
        if bits % 8 != 0 {
            return Err(err(
                "sub-byte tensor does not end on a byte boundary",
                shape_at,
            ));
        }
        if len != bits / 8 {
            return Err(err(
                "data_offsets length disagrees with shape and dtype",
                offsets_at,
            ));
        }
        Ok(Entry {
            dtype,
            shape,
            begin,
            end,
        })
    }

    /// The `__metadata__` value: `null` (→ `None`) or an object of strings (→ position of `{`).
    fn metadata_value(&mut self) -> Result<Option<usize>, Error> {
        let at = self.pos;
        if self.peek() == Some(b'n') {
            for &b in b"null" {
                if !self.eat(b) {
                    return Err(err(
                        "__metadata__ must be an object of strings (or null)",
                        at,
                    ));
                }
            }
            return Ok(None);
        }
        let mut walk =
            MetaWalk::start(*self, "__metadata__ must be an object of strings (or null)")?;
        while walk.next_pair()?.is_some() {}
        *self = walk.cur;
        Ok(Some(at))
    }
}

/// Walks the pairs of a `__metadata__` object.
#[derive(Clone, Copy)]
struct MetaWalk<'a> {
    cur: Cursor<'a>,
    after_pair: bool,
    done: bool,
}

impl<'a> MetaWalk<'a> {
    fn start(mut cur: Cursor<'a>, not_object: &'static str) -> Result<Self, Error> {
        if !cur.eat(b'{') {
            return Err(err(not_object, cur.pos));
        }
        Ok(MetaWalk {
            cur,
            after_pair: false,
            done: false,
        })
    }

    /// The next (key, key offset, value) or `None` after the closing brace.
    fn next_pair(&mut self) -> Result<Option<(JsonStr<'a>, JsonStr<'a>)>, Error> {
        if self.done {
            return Ok(None);
        }
        let c = &mut self.cur;
        c.ws();
        if self.after_pair {
            if c.eat(b'}') {
                self.done = true;
                return Ok(None);
            }
            c.expect(b',', "expected ',' or '}' in __metadata__")?;
            c.ws();
        } else if c.eat(b'}') {
            self.done = true;
            return Ok(None);
        }
        let key = c.string("expected a key string in __metadata__")?;
        c.ws();
        c.expect(b':', "expected ':' after key")?;
        c.ws();
        let value = c.string("__metadata__ values must be strings")?;
        self.after_pair = true;
        Ok(Some((key, value)))
    }
}

/// One entry of the header object.
#[derive(Clone, Copy)]
enum Item {
    /// `"__metadata__"`: position of its key, and of its object (`None` for `null`).
    Metadata {
        key_at: usize,
        object_at: Option<usize>,
    },
    /// A tensor.
    Tensor { name_at: usize, entry: Entry },
}

/// Walks the entries of the header object (the cursor starts just after its `{`).
#[derive(Clone, Copy)]
struct Items<'a> {
    cur: Cursor<'a>,
    after_item: bool,
    done: bool,
}

impl<'a> Items<'a> {
    fn new(cur: Cursor<'a>) -> Self {
        Items {
            cur,
            after_item: false,
            done: false,
        }
    }

    fn next_item(&mut self) -> Result<Option<Item>, Error> {
        if self.done {
            return Ok(None);
        }
        let c = &mut self.cur;
        c.ws();
        if self.after_item {
            if c.eat(b'}') {
                self.done = true;
                return Ok(None);
            }
            c.expect(b',', "expected ',' or '}' after a header entry")?;
            c.ws();
        } else if c.eat(b'}') {
            self.done = true;
            return Ok(None);
        }
        let key_at = c.pos;
        let key = c.string("expected a tensor name (a JSON string)")?;
        c.ws();
        c.expect(b':', "expected ':' after key")?;
        c.ws();
        self.after_item = true;
        if key.eq_str("__metadata__") {
            let object_at = c.metadata_value()?;
            Ok(Some(Item::Metadata { key_at, object_at }))
        } else {
            let entry = c.entry()?;
            Ok(Some(Item::Tensor {
                name_at: key_at,
                entry,
            }))
        }
    }
}

/// A tensor entry as skimmed from a validated header: name and offsets only.
#[derive(Clone, Copy)]
struct Skimmed<'a> {
    name: JsonStr<'a>,
    name_at: usize,
    /// File offset of the entry object's `{`.
    value_at: usize,
    begin: usize,
    end: usize,
    offsets_at: usize,
}

impl<'a> Cursor<'a> {
    /// Skips a string of a validated header (at its opening quote); returns its raw bytes.
    fn skip_string(&mut self) -> Option<JsonStr<'a>> {
        if !self.eat(b'"') {
            return None;
        }
        let start = self.pos;
        loop {
            let rest = self.buf.get(self.pos..self.end)?;
            let k = rest.iter().position(|&b| b == b'"' || b == b'\\')?;
            self.pos += k;
            if self.eat(b'"') {
                let raw = self.buf.get(start..self.pos - 1)?;
                return Some(JsonStr { raw });
            }
            // A backslash: step over it and the escaped byte (a `\uXXXX` tail is plain bytes).
            self.pos = self.pos.checked_add(2)?.min(self.end);
        }
    }

    /// Skips one value of a validated header (string, literal, number, array or object).
    fn skip_value(&mut self) -> Option<()> {
        match self.peek()? {
            b'"' => self.skip_string().map(|_| ()),
            b'{' | b'[' => {
                let mut depth = 0usize;
                loop {
                    match self.peek()? {
                        b'"' => {
                            self.skip_string()?;
                        }
                        b'{' | b'[' => {
                            depth += 1;
                            self.pos += 1;
                        }
                        b'}' | b']' => {
                            self.pos += 1;
                            depth = depth.checked_sub(1)?;
                            if depth == 0 {
                                return Some(());
                            }
                        }
                        _ => self.pos += 1,
                    }
                }
            }
            _ => {
                while !matches!(
                    self.peek(),
                    None | Some(b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r')
                ) {
                    self.pos += 1;
                }
                Some(())
            }
        }
    }

    /// Reads only the offsets of a validated tensor entry object, leaving the cursor after it.
    fn skim_entry(&mut self) -> Option<(usize, usize, usize)> {
        if !self.eat(b'{') {
            return None;
        }
        let mut found = None;
        loop {
            self.ws();
            if self.eat(b'}') {
                return found;
            }
            if self.eat(b',') {
                continue;
            }
            let key = self.skip_string()?;
            self.ws();
            if !self.eat(b':') {
                return None;
            }
            self.ws();
            if key.eq_str("data_offsets") {
                let at = self.pos;
                let mut o = [0usize; 2];
                if self.uint_array(&mut o, "", "").ok()? != 2 {
                    return None;
                }
                found = Some((o[0], o[1], at));
            } else {
                self.skip_value()?;
            }
        }
    }
}

/// Walks the tensor entries of a validated header cheaply, without re-validation: names, entry
/// positions and (if `offsets`) the data offsets.
#[derive(Clone, Copy)]
struct Skim<'a> {
    cur: Cursor<'a>,
    offsets: bool,
}

impl<'a> Iterator for Skim<'a> {
    type Item = Skimmed<'a>;

    fn next(&mut self) -> Option<Skimmed<'a>> {
        let c = &mut self.cur;
        loop {
            c.ws();
            if c.eat(b',') {
                c.ws();
            }
            if c.peek() != Some(b'"') {
                return None; // the closing brace
            }
            let name_at = c.pos;
            let name = c.skip_string()?;
            c.ws();
            if !c.eat(b':') {
                return None;
            }
            c.ws();
            if name.eq_str("__metadata__") {
                c.skip_value()?;
                continue;
            }
            let value_at = c.pos;
            let (begin, end, offsets_at) = if self.offsets {
                c.skim_entry()?
            } else {
                // In a validated tensor entry every string decodes to a key or a dtype name, so
                // the first `}` byte closes it.
                let rest = c.buf.get(c.pos..c.end)?;
                c.pos += rest.iter().position(|&b| b == b'}')? + 1;
                (0, 0, 0)
            };
            return Some(Skimmed {
                name,
                name_at,
                value_at,
                begin,
                end,
                offsets_at,
            });
        }
    }
}

/// A parsed, validated safetensors file borrowed from bytes (see the module docs).
#[derive(Clone, Copy)]
pub struct SafeTensors<'a> {
    bytes: &'a [u8],
    /// `8 + N`: end of the header, start of the data buffer.
    header_end: usize,
    /// File offset just after the header object's `{`.
    body: usize,
    /// Number of tensors.
    count: usize,
    /// File offset of the `__metadata__` object's `{`, if there is one.
    metadata_at: Option<usize>,
}

impl fmt::Debug for SafeTensors<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SafeTensors")
            .field("file_len", &self.bytes.len())
            .field("header_len", &self.header_end.saturating_sub(N_LEN))
            .field("tensors", &self.count)
            .field("has_metadata", &self.metadata_at.is_some())
            .finish()
    }
}

impl<'a> SafeTensors<'a> {
    /// Parses and validates the whole file once. Never panics, never allocates; errors are
    /// [`Error::Format`] with the broken rule and the file offset where it was noticed.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, Error> {
        let prefix: [u8; N_LEN] = bytes
            .get(..N_LEN)
            .and_then(|s| s.try_into().ok())
            .ok_or(err("file shorter than the 8-byte header length", 0))?;
        let n = usize::try_from(u64::from_le_bytes(prefix))
            .ok()
            .filter(|&n| n <= MAX_HEADER_LEN)
            .ok_or(err("header length exceeds the 100 MB limit", 0))?;
        let header_end = n
            .checked_add(N_LEN)
            .ok_or(err("header length exceeds file size", 0))?;
        let header = bytes
            .get(N_LEN..header_end)
            .ok_or(err("header length exceeds file size", 0))?;
        if let Err(e) = core::str::from_utf8(header) {
            return Err(err("header is not valid UTF-8", N_LEN + e.valid_up_to()));
        }

        let mut cur = Cursor {
            buf: bytes,
            pos: N_LEN,
            end: header_end,
        };
        cur.ws();
        cur.expect(b'{', "header must be a JSON object (expected '{')")?;
        let body = cur.pos;

        // Pass 1: syntax and each entry on its own; offsets in header order.
        let mut items = Items::new(cur);
        let mut count = 0usize;
        let mut metadata: Option<Option<usize>> = None;
        let mut in_offset_order = true;
        let mut chain_end = 0usize;
        let mut data_len = 0usize;
        while let Some(item) = items.next_item()? {
            match item {
                Item::Metadata { key_at, object_at } => {
                    if metadata.is_some() {
                        return Err(err("duplicate __metadata__", key_at));
                    }
                    metadata = Some(object_at);
                }
                Item::Tensor { name_at, entry, .. } => {
                    count += 1;
                    if count > MAX_TENSORS {
                        return Err(err("more than 1024 tensors", name_at));
                    }
                    in_offset_order &= entry.begin == chain_end;
                    chain_end = entry.end;
                    data_len = data_len.max(entry.end);
                }
            }
        }
        let mut tail = items.cur;
        tail.ws();
        if tail.pos != header_end {
            return Err(err("trailing characters after the header object", tail.pos));
        }

        let file = SafeTensors {
            bytes,
            header_end,
            body,
            count,
            metadata_at: metadata.flatten(),
        };

        // Pass 2: names are unique (compared decoded).
        let mut outer = file.skim(false);
        while let Some(a) = outer.next() {
            let mut later = outer;
            if let Some(b) = later.find(|b| b.name == a.name) {
                return Err(err("duplicate tensor name", b.name_at));
            }
        }

        // Pass 3: the tensors tile [0, data_len). Listed in offset order, each starting where
        // the previous ends, they do. Otherwise (any order is legal) check that each starts at 0
        // or where a non-empty tensor ends, and that no two overlap: together these hold exactly
        // when the tensors sorted by offsets form such a chain.
        if !in_offset_order {
            file.check_tiling()?;
        }

        let needed = header_end
            .checked_add(data_len)
            .ok_or(err("tensor data end overflows", header_end))?;
        if bytes.len() < needed {
            return Err(err("file ends before the last tensor's data", bytes.len()));
        }
        if bytes.len() > needed {
            return Err(err(
                "bytes after the last tensor's data (the data buffer must be fully covered)",
                needed,
            ));
        }
        Ok(file)
    }

    /// Skims the tensors: names and entry positions, plus data offsets if `offsets`.
    fn skim(&self, offsets: bool) -> Skim<'a> {
        Skim {
            cur: Cursor {
                buf: self.bytes,
                pos: self.body,
                end: self.header_end,
            },
            offsets,
        }
    }

    /// The full entry (for [`TensorInfo`]) of a skimmed tensor.
    fn full(&self, s: &Skimmed<'a>) -> Option<TensorInfo<'a>> {
        let mut cur = Cursor {
            buf: self.bytes,
            pos: s.value_at,
            end: self.header_end,
        };
        let entry = cur.entry().ok()?;
        self.info(s.name, s.name_at, &entry)
    }

    /// The offsets-out-of-order check of [`SafeTensors::parse`], O(tensors²).
    fn check_tiling(&self) -> Result<(), Error> {
        for a in self.skim(true) {
            let mut starts_after_another = a.begin == 0;
            let mut overlap = None;
            for b in self.skim(true).filter(|b| b.name_at != a.name_at) {
                starts_after_another |= b.end == a.begin && b.end > b.begin;
                if overlap.is_none() && a.begin < b.end && b.begin < a.end {
                    overlap = Some(b.offsets_at);
                }
            }
            if !starts_after_another {
                return Err(err(
                    "tensor data leaves a gap: it does not start where another tensor ends",
                    a.offsets_at,
                ));
            }
            if let Some(at) = overlap {
                return Err(err("tensor data overlaps another tensor's data", at));
            }
        }
        Ok(())
    }

    /// Number of tensors.
    pub fn len(&self) -> usize {
        self.count
    }

    /// True if no tensors.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Length `N` of the JSON header.
    pub fn header_len(&self) -> usize {
        self.header_end.saturating_sub(N_LEN)
    }

    /// The data buffer (everything after the header).
    pub fn data(&self) -> &'a [u8] {
        self.bytes.get(self.header_end..).unwrap_or(&[])
    }

    fn info(&self, name: JsonStr<'a>, name_at: usize, e: &Entry) -> Option<TensorInfo<'a>> {
        let start = self.header_end.checked_add(e.begin)?;
        let end = self.header_end.checked_add(e.end)?;
        Some(TensorInfo {
            name,
            name_offset: name_at,
            dtype: e.dtype.dtype(),
            file_dtype: e.dtype,
            shape: e.shape,
            data: self.bytes.get(start..end)?,
            data_offset: start,
        })
    }

    /// Tensors in header order.
    pub fn tensors(&self) -> Tensors<'a> {
        Tensors {
            file: *self,
            skim: self.skim(false),
        }
    }

    /// Looks a tensor up by its decoded name. O(header length).
    pub fn tensor(&self, name: &str) -> Option<TensorInfo<'a>> {
        let s = self.skim(false).find(|s| s.name.eq_str(name))?;
        self.full(&s)
    }

    /// Looks a `__metadata__` value up by decoded key (the last one if the key repeats, as the
    /// crate does). O(metadata length).
    pub fn metadata(&self, key: &str) -> Option<JsonStr<'a>> {
        let mut walk = self.metadata_walk()?;
        let mut found = None;
        while let Ok(Some((k, v))) = walk.next_pair() {
            if k.eq_str(key) {
                found = Some(v);
            }
        }
        found
    }

    fn metadata_walk(&self) -> Option<MetaWalk<'a>> {
        let at = self.metadata_at?;
        MetaWalk::start(
            Cursor {
                buf: self.bytes,
                pos: at,
                end: self.header_end,
            },
            "",
        )
        .ok()
    }

    /// All metadata entries in header order, one per distinct key (a repeated key appears once,
    /// where it last occurs, with its last value). O(entries²) for the whole iteration.
    pub fn metadata_entries(&self) -> MetadataEntries<'a> {
        MetadataEntries {
            walk: self.metadata_walk(),
        }
    }
}

/// Iterator over the tensors of a [`SafeTensors`], in header order.
#[derive(Clone, Copy)]
pub struct Tensors<'a> {
    file: SafeTensors<'a>,
    skim: Skim<'a>,
}

impl<'a> Iterator for Tensors<'a> {
    type Item = TensorInfo<'a>;

    fn next(&mut self) -> Option<TensorInfo<'a>> {
        // The header was validated, so `full` cannot fail; if it did, iteration would end.
        let s = self.skim.next()?;
        self.file.full(&s)
    }
}

/// Iterator over the `__metadata__` (key, value) pairs of a [`SafeTensors`].
#[derive(Clone, Copy)]
pub struct MetadataEntries<'a> {
    walk: Option<MetaWalk<'a>>,
}

impl<'a> Iterator for MetadataEntries<'a> {
    type Item = (JsonStr<'a>, JsonStr<'a>);

    fn next(&mut self) -> Option<(JsonStr<'a>, JsonStr<'a>)> {
        let walk = self.walk.as_mut()?;
        loop {
            let (k, v) = match walk.next_pair() {
                Ok(Some(pair)) => pair,
                Ok(None) | Err(_) => {
                    self.walk = None;
                    return None;
                }
            };
            let mut later = *walk;
            let mut repeated = false;
            while let Ok(Some((k2, _))) = later.next_pair() {
                if k2 == k {
                    repeated = true;
                    break;
                }
            }
            if !repeated {
                return Some((k, v));
            }
        }
    }
}
