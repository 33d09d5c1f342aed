//! The allocation-free safetensors reader against the `safetensors` crate (the oracle).
//!
//! * files written by the crate (random names, dtypes, shapes, metadata) read identically;
//! * files written by a test-side JSON writer that uses every legal spelling (escapes, surrogate
//!   pairs, whitespace, key order, tensors out of offset order, `null` metadata, repeated metadata
//!   keys) read identically by both;
//! * random bytes, token soup and mutated valid files never panic, and the reader accepts exactly
//!   what the crate accepts, except for the deliberate refusals listed in `DELIBERATE`;
//! * one golden case per error message, with its offset and the crate's verdict.
// `unet_core::Error` is large by design (see the lib's allow).
#![allow(clippy::result_large_err)]

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};

use proptest::prelude::*;
use unet_core::safetensors::{FileDtype, SafeTensors, MAX_TENSORS};
use unet_core::{DType, Error};

/// Refusals that are deliberate differences from the crate (module docs of
/// `unet_core::safetensors`): when the crate accepts a file and the reader does not, the reader's
/// message must be one of these.
const DELIBERATE: &[&str] = &[
    "more than 1024 tensors",
    "duplicate tensor name",
    "tensor entry must be a JSON object",
    "unknown key in tensor entry",
    "dtype must be a JSON string",
    "tensor rank exceeds 8",
];

type Tensor = (String, String, Vec<usize>, Vec<u8>);

/// What a reader saw: tensors sorted by name (the crate iterates a hash map), metadata by key.
#[derive(Debug, PartialEq, Eq, Clone)]
struct View {
    tensors: Vec<Tensor>,
    metadata: Vec<(String, String)>,
}

/// Reads with the core reader, checking its own consistency (len, lookups, dtypes) on the way.
/// Also returns the tensor names in iteration order.
fn core_view(bytes: &[u8]) -> Result<(View, Vec<String>), Error> {
    let st = SafeTensors::parse(bytes)?;
    let mut tensors = Vec::new();
    let mut order = Vec::new();
    let mut last_end = None;
    for t in st.tensors() {
        let name = t.name.to_string();
        assert_eq!(t.dtype, t.file_dtype.dtype());
        assert_eq!(
            DType::from_safetensors(t.file_dtype.name().as_bytes()),
            Some(t.dtype)
        );
        assert_eq!(
            t.data.len() * 8,
            t.shape.numel().unwrap() * t.file_dtype.bits()
        );
        assert_eq!(t.data.as_ptr(), bytes[t.data_offset..].as_ptr());
        assert_eq!(&bytes[t.name_offset..t.name_offset + 1], b"\"");
        assert!(t.data_offset >= 8 + st.header_len());
        let found = st.tensor(&name).expect("lookup by decoded name");
        assert_eq!(found.name_offset, t.name_offset);
        assert_eq!(found.data_offset, t.data_offset);
        assert!(t.name == found.name);
        let mut buf = vec![0u8; t.name.decoded_len()];
        assert_eq!(t.name.decode_into(&mut buf), Some(name.as_str()));
        if !name.is_empty() {
            assert_eq!(t.name.decode_into(&mut buf[..name.len() - 1]), None);
        }
        last_end = Some(last_end.unwrap_or(0usize).max(t.data_offset + t.data.len()));
        order.push(name.clone());
        tensors.push((
            name,
            t.file_dtype.name().to_string(),
            t.shape.dims().to_vec(),
            t.data.to_vec(),
        ));
    }
    assert_eq!(tensors.len(), st.len());
    assert_eq!(st.is_empty(), tensors.is_empty());
    assert_eq!(st.data().len(), bytes.len() - 8 - st.header_len());
    if let Some(end) = last_end {
        assert_eq!(end, bytes.len());
    }
    let mut metadata = Vec::new();
    for (k, v) in st.metadata_entries() {
        let key = k.to_string();
        assert_eq!(
            st.metadata(&key).map(|s| s.to_string()),
            Some(v.to_string()),
            "metadata({key:?})"
        );
        metadata.push((key, v.to_string()));
    }
    let n = metadata.len();
    metadata.sort();
    metadata.dedup_by(|a, b| a.0 == b.0);
    assert_eq!(metadata.len(), n, "metadata_entries yields each key once");
    tensors.sort();
    Ok((View { tensors, metadata }, order))
}

/// Reads with the crate. A panic (its unchecked `buffer_end + 8 + n` overflows under the test
/// profile's overflow checks; it would wrap and reject in release) counts as a rejection.
fn crate_view(bytes: &[u8]) -> Result<View, String> {
    let read = || -> Result<View, String> {
        let st = safetensors::SafeTensors::deserialize(bytes).map_err(|e| e.to_string())?;
        let (_, meta) =
            safetensors::SafeTensors::read_metadata(bytes).map_err(|e| e.to_string())?;
        let mut tensors: Vec<Tensor> = st
            .iter()
            .map(|(n, t)| {
                (
                    n.to_string(),
                    t.dtype().to_string(),
                    t.shape().to_vec(),
                    t.data().to_vec(),
                )
            })
            .collect();
        tensors.sort();
        let mut metadata: Vec<(String, String)> = meta
            .metadata()
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect();
        metadata.sort();
        Ok(View { tensors, metadata })
    };
    catch_unwind(AssertUnwindSafe(read)).unwrap_or_else(|_| Err("the crate panicked".to_string()))
}

/// Both readers on `bytes`: identical views, or both refuse, or the core refusal is deliberate.
fn agree(bytes: &[u8]) -> Result<(), TestCaseError> {
    let core = catch_unwind(|| core_view(bytes).map(|(v, _)| v));
    let core = match core {
        Ok(c) => c,
        Err(_) => {
            return Err(TestCaseError::fail(format!(
                "core reader panicked on {bytes:?}"
            )))
        }
    };
    match (core, crate_view(bytes)) {
        (Ok(a), Ok(b)) => prop_assert_eq!(a, b),
        (Ok(a), Err(e)) => {
            return Err(TestCaseError::fail(format!(
                "core accepts what the crate refuses ({e}): {a:?}"
            )))
        }
        (Err(Error::Format { what, .. }), Ok(_)) => prop_assert!(
            DELIBERATE.contains(&what),
            "crate accepts, core refuses with a non-deliberate error {:?} on {:?}",
            what,
            String::from_utf8_lossy(bytes)
        ),
        (Err(e), Ok(_)) => return Err(TestCaseError::fail(format!("unexpected error kind {e:?}"))),
        (Err(_), Err(_)) => {}
    }
    Ok(())
}

fn file(header: &str, data: &[u8]) -> Vec<u8> {
    let mut f = (header.len() as u64).to_le_bytes().to_vec();
    f.extend_from_slice(header.as_bytes());
    f.extend_from_slice(data);
    f
}

fn all_dtypes() -> Vec<safetensors::Dtype> {
    use safetensors::Dtype::*;
    vec![
        BOOL,
        F4,
        F6_E2M3,
        F6_E3M2,
        U8,
        I8,
        F8_E5M2,
        F8_E4M3,
        F8_E8M0,
        F8_E4M3FNUZ,
        F8_E5M2FNUZ,
        I16,
        U16,
        F16,
        BF16,
        I32,
        U32,
        F32,
        C64,
        F64,
        I64,
        U64,
    ]
}

#[test]
fn file_dtypes_match_the_crate() {
    let ours: Vec<(String, usize)> = FileDtype::ALL
        .iter()
        .map(|d| (d.name().to_string(), d.bits()))
        .collect();
    let theirs: Vec<(String, usize)> = all_dtypes()
        .iter()
        .map(|d| (d.to_string(), d.bitsize()))
        .collect();
    assert_eq!(ours, theirs);
    for d in FileDtype::ALL {
        assert_eq!(d.to_string(), d.name());
        let expected = match d.name() {
            "F32" => DType::F32,
            "F16" => DType::F16,
            "BF16" => DType::BF16,
            _ => DType::Other,
        };
        assert_eq!(d.dtype(), expected);
    }
}

// ---------------------------------------------------------------------------------------------
// Strategies

fn name_strategy() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z][a-z0-9_.]{0,12}",
        "\\PC{0,6}",
        "[\"\\\\/\u{0}-\u{1f} aé€😀\u{7f}]{0,6}",
        Just(String::new()),
        Just("enc.0.conv1.weight".to_string()),
    ]
    .prop_filter("the crate's reserved key", |n| n != "__metadata__")
}

fn meta_string() -> impl Strategy<Value = String> {
    prop_oneof!["[a-z_]{0,8}", "\\PC{0,8}", "[\"\\\\\n\t\u{1}é😀]{0,4}"]
}

/// (dtype index, dims) with a byte-aligned bit size.
fn tensor_spec() -> impl Strategy<Value = (usize, Vec<usize>)> {
    (0..22usize, prop::collection::vec(0..4usize, 0..5)).prop_map(|(d, mut dims)| {
        let bits = all_dtypes()[d].bitsize();
        let numel: usize = dims.iter().product();
        if !(numel * bits).is_multiple_of(8) {
            // F4 needs an even count, F6 a multiple of 4: scale the shape.
            dims.push(4);
        }
        (d, dims)
    })
}

type Spec = (String, usize, Vec<usize>, Vec<u8>);

fn tensors_strategy(max: usize) -> impl Strategy<Value = Vec<Spec>> {
    prop::collection::btree_map(name_strategy(), (tensor_spec(), any::<u64>()), 0..max).prop_map(
        |m| {
            m.into_iter()
                .map(|(name, ((d, dims), seed))| {
                    let bytes = dims.iter().product::<usize>() * all_dtypes()[d].bitsize() / 8;
                    let data = (0..bytes)
                        .map(|i| (seed.wrapping_mul(i as u64 + 7) >> 13) as u8)
                        .collect();
                    (name, d, dims, data)
                })
                .collect()
        },
    )
}

fn metadata_strategy() -> impl Strategy<Value = Option<BTreeMap<String, String>>> {
    prop::option::of(prop::collection::btree_map(
        meta_string(),
        meta_string(),
        0..5,
    ))
}

fn crate_file(tensors: &[Spec], metadata: &Option<BTreeMap<String, String>>) -> Vec<u8> {
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = tensors
        .iter()
        .map(|(n, d, dims, data)| {
            (
                n.clone(),
                safetensors::tensor::TensorView::new(all_dtypes()[*d], dims.clone(), data).unwrap(),
            )
        })
        .collect();
    let meta = metadata
        .as_ref()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect());
    safetensors::serialize(views, meta).unwrap()
}

fn expected_view(tensors: &[Spec], metadata: &BTreeMap<String, String>) -> View {
    let mut t: Vec<Tensor> = tensors
        .iter()
        .map(|(n, d, dims, data)| {
            (
                n.clone(),
                all_dtypes()[*d].to_string(),
                dims.clone(),
                data.clone(),
            )
        })
        .collect();
    t.sort();
    View {
        tensors: t,
        metadata: metadata
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    }
}

/// A JSON string literal for `s`, each character spelled as `choices` says (cycled): plain,
/// short escape, `\uXXXX` (upper or lower case hex), or a surrogate pair.
fn json_string(s: &str, choices: &[u8]) -> String {
    let mut out = String::from("\"");
    for (i, c) in s.chars().enumerate() {
        let pick = choices.get(i % choices.len().max(1)).copied().unwrap_or(0) % 4;
        let short = match c {
            '"' => Some("\\\""),
            '\\' => Some("\\\\"),
            '/' => Some("\\/"),
            '\u{8}' => Some("\\b"),
            '\u{c}' => Some("\\f"),
            '\n' => Some("\\n"),
            '\r' => Some("\\r"),
            '\t' => Some("\\t"),
            _ => None,
        };
        let must_escape = c == '"' || c == '\\' || (c as u32) < 0x20;
        let unicode = |out: &mut String, upper: bool| {
            let mut units = [0u16; 2];
            for u in c.encode_utf16(&mut units) {
                if upper {
                    out.push_str(&format!("\\u{:04X}", u));
                } else {
                    out.push_str(&format!("\\u{:04x}", u));
                }
            }
        };
        match pick {
            0 if !must_escape => out.push(c),
            1 if short.is_some() => out.push_str(short.unwrap()),
            2 => unicode(&mut out, true),
            _ => unicode(&mut out, false),
        }
    }
    out.push('"');
    out
}

/// Spells a file with every legal variation; returns the bytes and the tensor names in header order.
#[allow(clippy::too_many_arguments)]
fn hand_file(
    tensors: &[Spec],
    metadata: &Option<BTreeMap<String, String>>,
    repeated_key: Option<(usize, String)>,
    null_metadata: bool,
    storage_perm: &[usize],
    header_perm: &[usize],
    meta_slot: usize,
    choices: &[u8],
) -> (Vec<u8>, Vec<String>, BTreeMap<String, String>) {
    const WS: [&str; 6] = ["", " ", "\n", "\t", "\r\n  ", ""];
    let mut k = 0usize;
    let mut ws = || {
        k += 1;
        WS[choices.get(k % choices.len().max(1)).copied().unwrap_or(0) as usize % WS.len()]
    };
    let n = tensors.len();
    let mut storage: Vec<usize> = (0..n).collect();
    storage.sort_by_key(|&i| storage_perm.get(i).copied().unwrap_or(0));
    let mut offsets = vec![(0usize, 0usize); n];
    let mut data = Vec::new();
    for &i in &storage {
        let begin = data.len();
        data.extend_from_slice(&tensors[i].3);
        offsets[i] = (begin, data.len());
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by_key(|&i| header_perm.get(i).copied().unwrap_or(0));

    let mut entries: Vec<String> = Vec::new();
    let mut names = Vec::new();
    for (pos, &i) in order.iter().enumerate() {
        let (name, d, dims, _) = &tensors[i];
        let dims: Vec<String> = dims.iter().map(|x| x.to_string()).collect();
        let sep = format!("{},{}", ws(), ws());
        let fields = [
            format!(
                "{}:{}{}",
                json_string("dtype", &choices[pos % choices.len().max(1)..]),
                ws(),
                json_string(&all_dtypes()[*d].to_string(), choices)
            ),
            format!(
                "{}{}:[{}{}]",
                json_string("shape", choices),
                ws(),
                ws(),
                dims.join(&sep)
            ),
            format!(
                "\"data_offsets\":{}[{}{},{}{}]",
                ws(),
                offsets[i].0,
                ws(),
                ws(),
                offsets[i].1
            ),
        ];
        let rot = choices
            .get(pos % choices.len().max(1))
            .copied()
            .unwrap_or(0) as usize
            % 3;
        let mut fs: Vec<String> = fields.to_vec();
        fs.rotate_left(rot);
        if rot == 1 {
            fs.swap(0, 1);
        }
        entries.push(format!(
            "{}{}:{}{{{}{}{}}}",
            json_string(name, &choices[(pos + 1) % choices.len().max(1)..]),
            ws(),
            ws(),
            ws(),
            fs.join(&format!("{},{}", ws(), ws())),
            ws()
        ));
        names.push(name.clone());
    }
    let mut expected_meta = metadata.clone().unwrap_or_default();
    let meta_json = if null_metadata {
        expected_meta.clear();
        Some("null".to_string())
    } else {
        metadata.as_ref().map(|m| {
            let mut pairs: Vec<String> = m
                .iter()
                .enumerate()
                .map(|(j, (key, v))| {
                    format!(
                        "{}:{}{}",
                        json_string(key, &choices[j % choices.len().max(1)..]),
                        ws(),
                        json_string(v, choices)
                    )
                })
                .collect();
            if let Some((at, value)) = &repeated_key {
                if let Some(key) = m.keys().next() {
                    // The crate keeps the last value of a repeated key.
                    let at = at % (pairs.len() + 1);
                    if at == 0 {
                        pairs.insert(
                            0,
                            format!(
                                "{}:{}",
                                json_string(key, choices),
                                json_string(value, choices)
                            ),
                        );
                    } else {
                        pairs.push(format!(
                            "{}:{}",
                            json_string(key, &[2]),
                            json_string(value, choices)
                        ));
                        expected_meta.insert(key.clone(), value.clone());
                    }
                }
            }
            format!("{{{}{}}}", ws(), pairs.join(","))
        })
    };
    if let Some(mj) = meta_json {
        let slot = meta_slot % (entries.len() + 1);
        entries.insert(
            slot,
            format!("{}:{}", json_string("__metadata__", choices), mj),
        );
    }
    let header = format!(
        "{}{{{}{}}}{}",
        ws(),
        ws(),
        entries.join(","),
        ["", " ", "   \n", "\t\r "][choices[0] as usize % 4]
    );
    (file(&header, &data), names, expected_meta)
}

// ---------------------------------------------------------------------------------------------
// Property tests

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    /// Files the crate writes are read identically, in header (= offset) order.
    #[test]
    fn crate_written_files_read_identically(
        tensors in tensors_strategy(8),
        metadata in metadata_strategy(),
        misalign in 0usize..8,
    ) {
        let bytes = crate_file(&tensors, &metadata);
        if tensors.is_empty() && metadata.as_ref().is_some_and(|m| m.is_empty()) {
            // The crate's writer bug (see `crate_writer_bug_no_tensors_empty_metadata`).
            prop_assert!(SafeTensors::parse(&bytes).is_err() && crate_view(&bytes).is_err());
            return Ok(());
        }
        let (core, order) = core_view(&bytes).map_err(|e| TestCaseError::fail(format!("{e}")))?;
        prop_assert_eq!(&core, &expected_view(&tensors, &metadata.clone().unwrap_or_default()));
        prop_assert_eq!(&core, &crate_view(&bytes).unwrap());
        // Header order is offset order for crate-written files.
        let st = SafeTensors::parse(&bytes).unwrap();
        let offs: Vec<usize> = st.tensors().map(|t| t.data_offset).collect();
        prop_assert!(offs.windows(2).all(|w| w[0] <= w[1]));
        prop_assert_eq!(order.len(), tensors.len());
        // Any alignment of the buffer reads the same.
        let mut shifted = vec![0u8; misalign];
        shifted.extend_from_slice(&bytes);
        prop_assert_eq!(core_view(&shifted[misalign..]).unwrap().0, core);
    }

    /// Every legal spelling (escapes, whitespace, key order, tensors listed out of offset order,
    /// metadata anywhere, `null` metadata, repeated metadata keys) is read identically by both.
    #[test]
    fn hand_spelled_files_read_identically(
        tensors in tensors_strategy(6),
        metadata in metadata_strategy(),
        repeated_key in prop::option::of((0usize..3, meta_string())),
        null_metadata in prop::bool::weighted(0.15),
        storage_perm in prop::collection::vec(any::<u8>().prop_map(usize::from), 6),
        header_perm in prop::collection::vec(any::<u8>().prop_map(usize::from), 6),
        meta_slot in 0usize..8,
        choices in prop::collection::vec(any::<u8>(), 1..16),
    ) {
        let (bytes, names, meta) = hand_file(
            &tensors, &metadata, repeated_key, null_metadata, &storage_perm, &header_perm, meta_slot, &choices,
        );
        let expected = expected_view(&tensors, &meta);
        let oracle = crate_view(&bytes).map_err(|e| TestCaseError::fail(format!("crate: {e}: {}", String::from_utf8_lossy(&bytes))))?;
        prop_assert_eq!(&oracle, &expected);
        let (core, order) = core_view(&bytes).map_err(|e| TestCaseError::fail(format!("{e}: {}", String::from_utf8_lossy(&bytes))))?;
        prop_assert_eq!(&core, &expected);
        prop_assert_eq!(order, names);
    }

    /// Mutated valid files: never a panic; accept/refuse and content agree with the crate.
    #[test]
    fn mutated_files_agree(
        tensors in tensors_strategy(5),
        metadata in metadata_strategy(),
        edits in prop::collection::vec((0u8..9, any::<usize>(), any::<u64>()), 1..4),
    ) {
        let mut bytes = crate_file(&tensors, &metadata);
        for (kind, at, v) in edits {
            let len = bytes.len();
            let n = bytes.get(..8).map(|p| u64::from_le_bytes(p.try_into().unwrap()) as usize);
            let n = n.filter(|&n| n <= len - 8);
            match kind {
                0 | 1 if len == 0 => {}
                0 => { let i = at % len; bytes[i] ^= 1 << (v % 8); }
                1 => { let i = at % len; bytes[i] = v as u8; }
                2 => bytes.truncate(at % (len + 1)),
                3 => { let i = at % (len + 1); bytes.insert(i, v as u8); }
                4 => { if len > 0 { bytes.remove(at % len); } }
                5 if len < 8 => {}
                5 => {
                    // Header length: nudge it, or set it anywhere.
                    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap());
                    let n = match v % 4 { 0 => n.wrapping_add(1), 1 => n.wrapping_sub(1), 2 => v >> 40, _ => v };
                    bytes[..8].copy_from_slice(&n.to_le_bytes());
                }
                6 | 7 if n.is_none() => {}
                6 | 7 => {
                    // Rewrite one number of the header (offsets, dims).
                    let n = n.unwrap();
                    let header = String::from_utf8_lossy(&bytes[8..8 + n]).into_owned();
                    let runs: Vec<(usize, usize)> = digit_runs(&header);
                    if !runs.is_empty() {
                        let (s, e) = runs[at % runs.len()];
                        let old: u64 = header[s..e].parse().unwrap_or(0);
                        let new = match v % 7 {
                            0 => old.wrapping_add(1).to_string(),
                            1 => old.saturating_sub(1).to_string(),
                            2 => "0".to_string(),
                            3 => u64::MAX.to_string(),
                            4 => "18446744073709551616".to_string(),
                            5 => old.wrapping_mul(2).to_string(),
                            _ => format!("{}", v % 64),
                        };
                        let mut h = header.clone();
                        h.replace_range(s..e, &new);
                        let data = bytes[8 + n..].to_vec();
                        bytes = file(&h, &data);
                    }
                }
                _ => bytes.extend_from_slice(&v.to_le_bytes()[..(at % 9)]),
            }
        }
        agree(&bytes)?;
    }

    /// Random bytes, with a plausible header length or not.
    #[test]
    fn random_bytes_agree(mut bytes in prop::collection::vec(any::<u8>(), 0..80), fix_len in any::<bool>()) {
        if fix_len && bytes.len() >= 8 {
            let n = (bytes.len() - 8) as u64;
            bytes[..8].copy_from_slice(&n.to_le_bytes());
        }
        agree(&bytes)?;
    }

    /// Token soup: headers made of JSON pieces the grammar uses, to reach deep parser states.
    #[test]
    fn token_soup_agrees(
        tokens in prop::collection::vec(prop::sample::select(TOKENS.to_vec()), 0..40),
        data in prop::collection::vec(any::<u8>(), 0..12),
        wrap in any::<bool>(),
    ) {
        let body: String = tokens.concat();
        let header = if wrap { format!("{{{body}}}") } else { body };
        agree(&file(&header, &data))?;
    }
}

const TOKENS: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    ",",
    ":",
    " ",
    "\"a\"",
    "\"b\"",
    "\"dtype\"",
    "\"shape\"",
    "\"data_offsets\"",
    "\"__metadata__\"",
    "\"F32\"",
    "\"U8\"",
    "\"F4\"",
    "\"BOOL\"",
    "0",
    "1",
    "2",
    "4",
    "8",
    "00",
    "-1",
    "1.0",
    "1e1",
    "null",
    "true",
    "\"\\u0041\"",
    "\"\\ud83d\\ude00\"",
    "\"\\ud83d\"",
    "\"\\x\"",
    "\"dtype\":\"U8\"",
    "\"shape\":[]",
    "\"shape\":[1]",
    "\"data_offsets\":[0,1]",
    "\"data_offsets\":[0,0]",
    "\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}",
    "\"b\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[1,2]}",
    "\"__metadata__\":{\"k\":\"v\"}",
];

fn digit_runs(s: &str) -> Vec<(usize, usize)> {
    let b = s.as_bytes();
    let mut runs = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_digit() {
            let s0 = i;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            runs.push((s0, i));
        } else {
            i += 1;
        }
    }
    runs
}

// ---------------------------------------------------------------------------------------------
// Golden cases: one per error message.

/// What the crate does with a golden file.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Crate {
    Refuses,
    Accepts,
}

/// Parses `bytes`, expects `Error::Format { what, offset }`, and checks the crate's verdict (a
/// crate acceptance must be one of the documented deliberate differences).
#[track_caller]
fn golden(bytes: &[u8], what: &str, offset: usize, verdict: Crate) {
    match SafeTensors::parse(bytes) {
        Err(Error::Format { what: w, offset: o }) => {
            assert_eq!(
                (w, o),
                (what, offset),
                "on {:?}",
                String::from_utf8_lossy(bytes)
            );
        }
        other => panic!("expected {what:?} at {offset}, got {other:?}"),
    }
    let theirs = crate_view(bytes);
    assert_eq!(
        if theirs.is_ok() {
            Crate::Accepts
        } else {
            Crate::Refuses
        },
        verdict,
        "crate says {theirs:?}"
    );
    if verdict == Crate::Accepts {
        assert!(
            DELIBERATE.contains(&what),
            "{what} is not a documented difference"
        );
    }
}

/// Header `h` (with data `d`): expects `what` at the file offset of the first occurrence of
/// `at` in the header (or at `8 + h.len()` if `at` is empty).
#[track_caller]
fn golden_h(h: &str, d: &[u8], what: &str, at: &str, verdict: Crate) {
    let off = if at.is_empty() {
        h.len()
    } else {
        h.find(at).expect("marker in header")
    };
    golden(&file(h, d), what, 8 + off, verdict);
}

/// Like `golden_h` with the last occurrence of `at`.
#[track_caller]
fn golden_r(h: &str, d: &[u8], what: &str, at: &str, verdict: Crate) {
    golden(
        &file(h, d),
        what,
        8 + h.rfind(at).expect("marker in header"),
        verdict,
    );
}

const U8_1: &str = r#"{"dtype":"U8","shape":[1],"data_offsets":[0,1]}"#;

#[test]
fn golden_length_prefix() {
    use Crate::*;
    golden(
        b"",
        "file shorter than the 8-byte header length",
        0,
        Refuses,
    );
    golden(
        b"\x02\0\0\0\0\0\0",
        "file shorter than the 8-byte header length",
        0,
        Refuses,
    );
    let mut f = file("{}", b"");
    f[..8].copy_from_slice(&100_000_001u64.to_le_bytes());
    golden(&f, "header length exceeds the 100 MB limit", 0, Refuses);
    f[..8].copy_from_slice(&u64::MAX.to_le_bytes());
    golden(&f, "header length exceeds the 100 MB limit", 0, Refuses);
    f[..8].copy_from_slice(&3u64.to_le_bytes());
    golden(&f, "header length exceeds file size", 0, Refuses);
    golden(
        b"\0\0\0\0\0\0\0\0",
        "header must be a JSON object (expected '{')",
        8,
        Refuses,
    );
    golden(
        &file("{\"\u{e9}\":1}", b"")[..13],
        "header length exceeds file size",
        0,
        Refuses,
    );
    let mut f = file("{\"ab\":1}", b"");
    f[11] = 0xC3; // a lone UTF-8 lead byte
    golden(&f, "header is not valid UTF-8", 11, Refuses);
}

#[test]
fn golden_json_syntax() {
    use Crate::*;
    golden_h(
        "[]",
        b"",
        "header must be a JSON object (expected '{')",
        "[",
        Refuses,
    );
    golden_h(
        " \n\u{feff}{}",
        b"",
        "header must be a JSON object (expected '{')",
        "\u{feff}",
        Refuses,
    );
    golden_h(
        "{} x",
        b"",
        "trailing characters after the header object",
        "x",
        Refuses,
    );
    golden_h(
        "{}\0",
        b"",
        "trailing characters after the header object",
        "\0",
        Refuses,
    );
    golden(
        &file("{}{}", b""),
        "trailing characters after the header object",
        10,
        Refuses,
    );
    golden_h(
        "{",
        b"",
        "expected a tensor name (a JSON string)",
        "",
        Refuses,
    );
    golden_h(
        "{a:1}",
        b"",
        "expected a tensor name (a JSON string)",
        "a",
        Refuses,
    );
    golden_r(
        &format!("{{\"a\":{U8_1},}}"),
        b"x",
        "expected a tensor name (a JSON string)",
        "}",
        Refuses,
    );
    let h = format!("{{\"a\":{U8_1} \"b\":{U8_1}}}");
    golden_h(
        &h,
        b"x",
        "expected ',' or '}' after a header entry",
        "\"b\"",
        Refuses,
    );
    golden_h("{\"a\" 1}", b"", "expected ':' after key", "1", Refuses);
    golden_h("{\"a", b"", "unterminated string", "\"", Refuses);
    golden_h(
        "{\"a\tb\":1}",
        b"",
        "control character in string",
        "\t",
        Refuses,
    );
    golden_h(
        "{\"a\\xb\":1}",
        b"",
        "invalid escape in string",
        "\\",
        Refuses,
    );
    golden_h(
        "{\"a\\u12G4\":1}",
        b"",
        "\\u escape needs 4 hex digits",
        "\\",
        Refuses,
    );
    golden_h(
        "{\"a\\udc00\":1}",
        b"",
        "unpaired surrogate in \\u escape",
        "\\",
        Refuses,
    );
    golden_h(
        "{\"a\\ud800b\":1}",
        b"",
        "unpaired surrogate in \\u escape",
        "\\",
        Refuses,
    );
    golden_h(
        "{\"a\\ud800\\n\":1}",
        b"",
        "unpaired surrogate in \\u escape",
        "\\",
        Refuses,
    );
    golden_h(
        "{\"a\\ud800\\u0041\":1}",
        b"",
        "unpaired surrogate in \\u escape",
        "\\",
        Refuses,
    );
    golden_h(
        "{\"a\\ud800\\ud800\":1}",
        b"",
        "unpaired surrogate in \\u escape",
        "\\",
        Refuses,
    );
    golden_h(
        "{\"a\\ud800\\u12\":1}",
        b"",
        "\\u escape needs 4 hex digits",
        "\\u12",
        Refuses,
    );
}

fn entry(body: &str) -> String {
    format!("{{\"t\":{body}}}")
}

#[test]
fn golden_tensor_entries() {
    use Crate::*;
    let e = |body: &str, d: &[u8], what: &str, at: &str, v: Crate| {
        golden_h(&entry(body), d, what, at, v)
    };
    e("1", b"", "tensor entry must be a JSON object", "1", Refuses);
    e(
        "null",
        b"",
        "tensor entry must be a JSON object",
        "null",
        Refuses,
    );
    e(
        r#"["U8",[1],[0,1]]"#,
        b"x",
        "tensor entry must be a JSON object",
        "[",
        Accepts,
    );
    e(
        r#"{"dtype":"U8","shape":[1],"data_offsets":[0,1],"x":0}"#,
        b"x",
        "unknown key in tensor entry",
        "\"x\"",
        Accepts,
    );
    e(
        r#"{"dtype":{"U8":null},"shape":[1],"data_offsets":[0,1]}"#,
        b"x",
        "dtype must be a JSON string",
        "{\"U8\"",
        Accepts,
    );
    e(
        r#"{"dtype":8,"shape":[1],"data_offsets":[0,1]}"#,
        b"x",
        "dtype must be a JSON string",
        "8",
        Refuses,
    );
    e(
        r#"{"dtype":"u8","shape":[1],"data_offsets":[0,1]}"#,
        b"x",
        "unknown dtype",
        "\"u8\"",
        Refuses,
    );
    e(
        r#"{"dtype":"F8_E4M3FN","shape":[1],"data_offsets":[0,1]}"#,
        b"x",
        "unknown dtype",
        "\"F8",
        Refuses,
    );
    e(
        r#"{"dtype":"U8","shape":[1],"dtype":"U8","data_offsets":[0,1]}"#,
        b"x",
        "duplicate key in tensor entry",
        "\"dtype\":\"U8\",\"d",
        Refuses,
    );
    golden_r(
        &entry(r#"{"shape":[1],"dtype":"U8","shape":[1],"data_offsets":[0,1]}"#),
        b"x",
        "duplicate key in tensor entry",
        "\"shape",
        Refuses,
    );
    golden_r(
        &entry(r#"{"data_offsets":[0,1],"dtype":"U8","shape":[1],"data_offsets":[0,1]}"#),
        b"x",
        "duplicate key in tensor entry",
        "\"data_offsets",
        Refuses,
    );
    e(
        r#"{"shape":[1],"data_offsets":[0,1]}"#,
        b"x",
        "tensor entry lacks \"dtype\"",
        "{\"shape",
        Refuses,
    );
    e(
        r#"{"dtype":"U8","data_offsets":[0,1]}"#,
        b"x",
        "tensor entry lacks \"shape\"",
        "{\"dtype",
        Refuses,
    );
    e(
        r#"{"dtype":"U8","shape":[1]}"#,
        b"x",
        "tensor entry lacks \"data_offsets\"",
        "{\"dtype",
        Refuses,
    );
    e("{}", b"", "tensor entry lacks \"dtype\"", "{}", Refuses);
    e(
        r#"{"dtype":"U8" "shape":[1]}"#,
        b"x",
        "expected ',' or '}' in tensor entry",
        "\"shape",
        Refuses,
    );
    e(
        r#"{"dtype":"U8",}"#,
        b"x",
        "expected a key string in tensor entry",
        "}",
        Refuses,
    );
    e(
        r#"{"dtype" "U8"}"#,
        b"x",
        "expected ':' after key",
        "\"U8",
        Refuses,
    );
    e(
        r#"{"dtype":"U8","shape":1,"data_offsets":[0,1]}"#,
        b"x",
        "shape must be an array of integers",
        "1,",
        Refuses,
    );
    e(
        r#"{"dtype":"U8","shape":[1 1],"data_offsets":[0,1]}"#,
        b"x",
        "expected ',' or ']' in array",
        "1],",
        Refuses,
    );
    e(
        r#"{"dtype":"U8","shape":[1,],"data_offsets":[0,1]}"#,
        b"x",
        "expected an unsigned integer",
        "],",
        Refuses,
    );
    e(
        r#"{"dtype":"U8","shape":["1"],"data_offsets":[0,1]}"#,
        b"x",
        "expected an unsigned integer",
        "\"1\"",
        Refuses,
    );
    e(
        r#"{"dtype":"U8","shape":[-1],"data_offsets":[0,1]}"#,
        b"x",
        "negative number where an unsigned integer is required",
        "-1",
        Refuses,
    );
    e(
        r#"{"dtype":"U8","shape":[-0],"data_offsets":[0,0]}"#,
        b"",
        "negative number where an unsigned integer is required",
        "-0",
        Refuses,
    );
    e(
        r#"{"dtype":"U8","shape":[01],"data_offsets":[0,1]}"#,
        b"x",
        "leading zero in number",
        "01",
        Refuses,
    );
    e(
        r#"{"dtype":"U8","shape":[1.0],"data_offsets":[0,1]}"#,
        b"x",
        "number must be an integer (no fraction or exponent)",
        "1.0",
        Refuses,
    );
    e(
        r#"{"dtype":"U8","shape":[1e0],"data_offsets":[0,1]}"#,
        b"x",
        "number must be an integer (no fraction or exponent)",
        "1e0",
        Refuses,
    );
    e(
        r#"{"dtype":"U8","shape":[18446744073709551616],"data_offsets":[0,1]}"#,
        b"x",
        "integer does not fit in 64 bits",
        "184",
        Refuses,
    );
    e(
        r#"{"dtype":"U8","shape":[1,1,1,1,1,1,1,1,1],"data_offsets":[0,1]}"#,
        b"x",
        "tensor rank exceeds 8",
        "1]",
        Accepts,
    );
    e(
        r#"{"dtype":"U8","shape":[1],"data_offsets":[0]}"#,
        b"",
        "data_offsets must be [begin, end]",
        "[0]",
        Refuses,
    );
    e(
        r#"{"dtype":"U8","shape":[1],"data_offsets":[0,1,2]}"#,
        b"x",
        "data_offsets must be [begin, end]",
        "2]",
        Refuses,
    );
    e(
        r#"{"dtype":"U8","shape":[1],"data_offsets":{}}"#,
        b"x",
        "data_offsets must be [begin, end]",
        "{}}",
        Refuses,
    );
    e(
        r#"{"dtype":"U8","shape":[0],"data_offsets":[1,0]}"#,
        b"",
        "data_offsets end is before begin",
        "[1,0]",
        Refuses,
    );
    e(
        r#"{"dtype":"U8","shape":[4294967296,4294967296,0],"data_offsets":[0,0]}"#,
        b"",
        "shape element count overflows",
        "[4294967296",
        Refuses,
    );
    e(
        r#"{"dtype":"I32","shape":[2,9223372036854775807],"data_offsets":[0,16]}"#,
        b"0123456789abcdef",
        "tensor bit size overflows",
        "[2,",
        Refuses,
    );
    e(
        r#"{"dtype":"F4","shape":[3],"data_offsets":[0,1]}"#,
        b"x",
        "sub-byte tensor does not end on a byte boundary",
        "[3]",
        Refuses,
    );
    e(
        r#"{"dtype":"F6_E2M3","shape":[2],"data_offsets":[0,1]}"#,
        b"x",
        "sub-byte tensor does not end on a byte boundary",
        "[2]",
        Refuses,
    );
    e(
        r#"{"dtype":"I32","shape":[2,2],"data_offsets":[0,4]}"#,
        b"0123",
        "data_offsets length disagrees with shape and dtype",
        "[0,4]",
        Refuses,
    );
}

#[test]
fn golden_metadata_and_names() {
    use Crate::*;
    golden_h(
        r#"{"__metadata__":[]}"#,
        b"",
        "__metadata__ must be an object of strings (or null)",
        "[",
        Refuses,
    );
    golden_h(
        r#"{"__metadata__":nul}"#,
        b"",
        "__metadata__ must be an object of strings (or null)",
        "nul",
        Refuses,
    );
    golden_h(
        r#"{"__metadata__":{"a":1}}"#,
        b"",
        "__metadata__ values must be strings",
        "1",
        Refuses,
    );
    golden_h(
        r#"{"__metadata__":{"a":null}}"#,
        b"",
        "__metadata__ values must be strings",
        "null",
        Refuses,
    );
    golden_h(
        r#"{"__metadata__":{"a":"b",}}"#,
        b"",
        "expected a key string in __metadata__",
        "}}",
        Refuses,
    );
    golden_h(
        r#"{"__metadata__":{"a":"b" "c":"d"}}"#,
        b"",
        "expected ',' or '}' in __metadata__",
        "\"c",
        Refuses,
    );
    golden_h(
        r#"{"__metadata__":{"a" "b"}}"#,
        b"",
        "expected ':' after key",
        "\"b",
        Refuses,
    );
    golden_r(
        r#"{"__metadata__":null,"__metadata__":{}}"#,
        b"",
        "duplicate __metadata__",
        "\"__metadata__",
        Refuses,
    );
    golden_r(
        r#"{"__metadata__":{},"__metad\u0061ta__":{}}"#,
        b"",
        "duplicate __metadata__",
        "\"__metad",
        Refuses,
    );
    // The same name twice: refused (the crate keeps the second entry silently).
    let h = r#"{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"\u0061":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}"#;
    golden_r(h, b"x", "duplicate tensor name", "\"\\u0061\"", Accepts);
    let h = r#"{"a":{"dtype":"U8","shape":[0],"data_offsets":[0,0]},"b":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"a":{"dtype":"U8","shape":[0],"data_offsets":[0,0]}}"#;
    golden_r(h, b"x", "duplicate tensor name", "\"a\"", Accepts);
    let h = r#"{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}"#;
    golden_r(h, b"xy", "duplicate tensor name", "\"a\"", Refuses);
    // More tensors than the reader takes (the crate takes them).
    let mut h = String::from("{");
    for i in 0..=MAX_TENSORS {
        if i > 0 {
            h.push(',');
        }
        h.push_str(&format!(
            "\"t{i}\":{{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[{i},{}]}}",
            i + 1
        ));
    }
    h.push('}');
    golden_h(
        &h,
        &vec![7u8; MAX_TENSORS + 1],
        "more than 1024 tensors",
        "\"t1024\"",
        Accepts,
    );
}

#[test]
fn golden_data_layout() {
    use Crate::*;
    let t = |name: &str, shape: usize, b: usize, e: usize| {
        format!("\"{name}\":{{\"dtype\":\"U8\",\"shape\":[{shape}],\"data_offsets\":[{b},{e}]}}")
    };
    let obj = |parts: &[String]| format!("{{{}}}", parts.join(","));
    // In header order: a gap, then an overlap.
    let h = obj(&[t("a", 1, 0, 1), t("b", 1, 2, 3)]);
    golden_r(
        &h,
        b"xyz",
        "tensor data leaves a gap: it does not start where another tensor ends",
        "[2,3]",
        Refuses,
    );
    let h = obj(&[t("a", 1, 1, 2), t("b", 1, 0, 1), t("c", 1, 0, 1)]);
    golden_r(
        &h,
        b"xy",
        "tensor data overlaps another tensor's data",
        "[0,1]",
        Refuses,
    );
    // Not starting at 0.
    let h = obj(&[t("a", 1, 1, 2)]);
    golden_h(
        &h,
        b"xy",
        "tensor data leaves a gap: it does not start where another tensor ends",
        "[1,2]",
        Refuses,
    );
    // An empty tensor inside another's bytes.
    let h = obj(&[t("a", 2, 0, 2), t("e", 0, 1, 1)]);
    golden_h(
        &h,
        b"xy",
        "tensor data overlaps another tensor's data",
        "[1,1]",
        Refuses,
    );
    let h = obj(&[t("e", 0, 1, 1), t("a", 2, 0, 2)]);
    golden_h(
        &h,
        b"xy",
        "tensor data leaves a gap: it does not start where another tensor ends",
        "[1,1]",
        Refuses,
    );
    // Out of order is fine when they tile, including empty tensors at boundaries.
    let h = obj(&[
        t("c", 1, 2, 3),
        t("e", 0, 3, 3),
        t("a", 1, 0, 1),
        t("z", 0, 0, 0),
        t("b", 1, 1, 2),
        t("m", 0, 1, 1),
    ]);
    let f = file(&h, b"xyz");
    let (core, order) = core_view(&f).unwrap();
    assert_eq!(core, crate_view(&f).unwrap());
    assert_eq!(order, ["c", "e", "a", "z", "b", "m"]);
    // File length.
    let h = obj(&[t("a", 1, 0, 1), t("b", 2, 1, 3)]);
    golden(
        &file(&h, b"xy"),
        "file ends before the last tensor's data",
        8 + h.len() + 2,
        Refuses,
    );
    golden(
        &file(&h, b"xyzw"),
        "bytes after the last tensor's data (the data buffer must be fully covered)",
        8 + h.len() + 3,
        Refuses,
    );
    golden(
        &file("{}", b"x"),
        "bytes after the last tensor's data (the data buffer must be fully covered)",
        10,
        Refuses,
    );
    // Offsets up to u64::MAX: the end of the data cannot be represented.
    let mut parts = Vec::new();
    // (A U8 tensor holds fewer than 2^61 bytes: its bit count must fit 64 bits.)
    let big: u64 = (1 << 61) - 1;
    for i in 0..9u64 {
        let len = if i == 8 { 7 } else { big };
        parts.push(format!(
            "\"t{i}\":{{\"dtype\":\"U8\",\"shape\":[{len}],\"data_offsets\":[{},{}]}}",
            i * big,
            i * big + len
        ));
    }
    let h = format!("{{{}}}", parts.join(","));
    golden(
        &file(&h, b""),
        "tensor data end overflows",
        8 + h.len(),
        Refuses,
    );
}

// ---------------------------------------------------------------------------------------------
// Accepted spellings and API behaviour.

#[test]
fn accepted_spellings_match_the_crate() {
    let cases: &[(&str, &[u8])] = &[
        ("{}", b""),
        ("  \t\n{}\r\n  ", b""),
        (r#"{"__metadata__":null}"#, b""),
        (r#"{"__metadata__":{}}"#, b""),
        (r#"{"__metadata__":{"k":"1","k":"2"}}"#, b""),
        (
            r#"{"t":{"dtype":"F4","shape":[2],"data_offsets":[0,1]}}"#,
            b"\x12",
        ),
        (
            r#"{"t":{"dtype":"F6_E3M2","shape":[4],"data_offsets":[0,3]}}"#,
            b"abc",
        ),
        (
            r#"{"t":{"dtype":"F8_E5M2FNUZ","shape":[],"data_offsets":[0,1]}}"#,
            b"a",
        ),
        (
            r#"{"t":{"dtype":"U8","shape":[0,18446744073709551615],"data_offsets":[0,0]}}"#,
            b"",
        ),
        (
            r#"{"\ud83d\ude00\u00e9":{"d\u0074ype":"F\u0033\u0032","shape":[],"data_offsets":[0,4]}}"#,
            b"abcd",
        ),
        (
            r#"{"x":{"data_offsets":[0,2],"shape":[1],"dtype":"BF16"},"__metadata__":{"a\/b":"\"\\\b\f\n\r\t\u0000"}}"#,
            b"ab",
        ),
    ];
    for (h, d) in cases {
        let f = file(h, d);
        let ours = core_view(&f).unwrap_or_else(|e| panic!("{h}: {e}")).0;
        assert_eq!(ours, crate_view(&f).unwrap(), "{h}");
    }
}

#[test]
fn lookups_decode_escapes() {
    let h = r#"{"__metadata__":{"form\u0061t":"unet","note":"a\nb","plain":"x"},"w\u00e9ight":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#;
    let f = file(h, &1.5f32.to_le_bytes());
    let st = SafeTensors::parse(&f).unwrap();
    let t = st.tensor("wéight").unwrap();
    assert_eq!(t.dtype, DType::F32);
    assert_eq!(t.shape.dims(), &[1]);
    assert_eq!(t.data, 1.5f32.to_le_bytes());
    assert_eq!(t.name.as_plain_str(), None);
    assert_eq!(t.name.to_string(), "wéight");
    assert_eq!(format!("{:?}", t.name), "\"wéight\"");
    assert!(st.tensor("w\\u00e9ight").is_none());
    assert!(st.tensor("weight").is_none());
    assert_eq!(st.metadata("format").unwrap().as_plain_str(), Some("unet"));
    assert!(st.metadata("format").unwrap() == "unet");
    let note = st.metadata("note").unwrap();
    assert_eq!(note.as_plain_str(), None);
    assert_eq!(note.chars().collect::<String>(), "a\nb");
    assert_eq!(note.raw(), b"a\\nb");
    assert_eq!(st.metadata("plain").unwrap().as_plain_str(), Some("x"));
    assert!(st.metadata("missing").is_none());
    assert!(st.metadata("form\\u0061t").is_none());
    assert_eq!(st.len(), 1);
    // The name offset points at the name's opening quote.
    assert_eq!(&f[t.name_offset..t.name_offset + 3], b"\"w\\");
}

#[test]
fn repeated_metadata_key_keeps_the_last_value() {
    let h = r#"{"__metadata__":{"k":"1","j":"x","k":"2"}}"#;
    let f = file(h, b"");
    let st = SafeTensors::parse(&f).unwrap();
    assert_eq!(st.metadata("k").unwrap().to_string(), "2");
    let entries: Vec<(String, String)> = st
        .metadata_entries()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    assert_eq!(
        entries,
        [
            ("j".to_string(), "x".to_string()),
            ("k".to_string(), "2".to_string())
        ]
    );
    assert_eq!(core_view(&f).unwrap().0, crate_view(&f).unwrap());
}

/// `safetensors::serialize` with no tensors and an empty (but present) metadata map writes
/// `{},"__metadata__":{}}` (serde_json closes a map announced with length 0 at once): invalid
/// JSON, which the crate's own reader refuses, and so does this one.
#[test]
fn crate_writer_bug_no_tensors_empty_metadata() {
    let bytes = crate_file(&[], &Some(BTreeMap::new()));
    assert_eq!(&bytes[8..12], b"{},\"");
    assert!(crate_view(&bytes).is_err());
    assert_eq!(
        SafeTensors::parse(&bytes).unwrap_err(),
        Error::Format {
            what: "trailing characters after the header object",
            offset: 10
        }
    );
}

#[test]
fn empty_file_and_no_metadata() {
    let f = file("{}      ", b"");
    let st = SafeTensors::parse(&f).unwrap();
    assert!(st.is_empty());
    assert_eq!(st.tensors().count(), 0);
    assert_eq!(st.metadata_entries().count(), 0);
    assert!(st.metadata("x").is_none());
    assert_eq!(st.header_len(), 8);
}

/// Model files written by `unet_core::synth` load as models, read the same in the crate, and
/// still load when a tensor name is spelled with escapes (lookups compare decoded names).
#[test]
fn synth_models_load_and_agree() {
    use unet_core::{Config, Model, Padding};
    for (levels, dtype) in [(1, DType::F32), (3, DType::F16), (4, DType::BF16)] {
        let config = Config {
            in_channels: 1,
            num_classes: 2,
            base_channels: 2,
            levels,
            padding: Padding::Valid,
        };
        let bytes = unet_core::synth::random_model(&config, dtype, 7, "none");
        let model = Model::from_safetensors(&bytes).unwrap();
        assert_eq!(model.weight_dtype(), dtype);
        assert_eq!(core_view(&bytes).unwrap().0, crate_view(&bytes).unwrap());

        let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        let header = std::str::from_utf8(&bytes[8..8 + n]).unwrap();
        let escaped = header.replacen("\"enc.0.conv1.weight\"", "\"enc.0.conv1.w\\u0065ight\"", 1);
        assert_ne!(escaped, header);
        let respelled = file(&escaped, &bytes[8 + n..]);
        let again = Model::from_safetensors(&respelled).unwrap();
        let p = again.config().param(0).unwrap();
        let (a, b) = (model.param(p).unwrap(), again.param(p).unwrap());
        assert_eq!(a.len(), b.len());
        assert!((0..a.len()).all(|i| a.get(i).to_bits() == b.get(i).to_bits()));
        assert_eq!(
            core_view(&respelled).unwrap().0,
            crate_view(&respelled).unwrap()
        );
    }
}

/// On 32-bit targets (thumbv7em, ...) an integer above `usize::MAX` is refused, as the crate
/// would (serde reads offsets and dims as `usize`). Not reachable on 64-bit hosts.
#[cfg(target_pointer_width = "32")]
#[test]
fn golden_integer_wider_than_usize() {
    let h = entry(r#"{"dtype":"U8","shape":[4294967296],"data_offsets":[0,0]}"#);
    let off = 8 + h.find("4294967296").unwrap();
    assert_eq!(
        SafeTensors::parse(&file(&h, b"")).unwrap_err(),
        Error::Format {
            what: "integer does not fit in usize",
            offset: off
        }
    );
}
