//! libunet's C ABI (the `extern "C"` functions of unet-ffi, called exactly as C would call them)
//! with fuzzed arguments: model bytes (a real model file from the seeds, or a synthetic tiny
//! model with corrupted bytes), NULL or live pointers, sizes from tiny to `usize::MAX`, enum
//! values out of range, buffers shorter or longer than required, misaligned and overlapping
//! buffers, thread counts, NaN/inf samples.
//!
//! Contracts checked (include/unet.h): every call returns a known `unet_status`; NULL required
//! pointers give UNET_ERR_NULL; outputs (parameters and buffers, pre-filled with a sentinel) are
//! untouched unless the call returns UNET_OK; a failed call leaves a non-empty detail message,
//! a successful one an empty message; UNET_ERR_PANIC never happens; successful results are
//! consistent with the Rust API of unet-core. A Rust panic anywhere is a crash (libFuzzer
//! aborts on it), as is any out-of-bounds access (ASan).
//!
//! Input layout: 64 control bytes (read by [`Ctl`], zeros past the end), then the model file
//! bytes (used when control byte 0 is odd; otherwise a synthetic model is generated).
#![no_main]

use std::ffi::{c_char, c_void, CStr};
use std::ptr::{null, null_mut};

use libfuzzer_sys::fuzz_target;
use unet::frame::{
    unet_model_frame_scratch_bytes, unet_model_frame_scratch_len, unet_model_frame_tile_size,
    unet_model_segment_frame,
};
use unet::model::{
    unet_model_base_channels, unet_model_free, unet_model_from_bytes, unet_model_halo,
    unet_model_in_channels, unet_model_is_legal_tile, unet_model_levels, unet_model_load,
    unet_model_metadata, unet_model_min_tile, unet_model_next_legal_tile, unet_model_num_classes,
    unet_model_output_size, unet_model_padding, unet_model_prev_legal_tile,
    unet_model_tile_for_output, unet_model_tile_scratch_bytes, unet_model_tile_scratch_len,
    unet_model_tile_step,
};
use unet::tile::unet_model_run_tile;
use unet::{
    unet_frame_options, unet_last_error, unet_model, unet_status, unet_status_message, unet_version,
};
use unet_core::{synth, Config, DType, Model, Padding};

/// Number of control bytes before the model bytes.
const CTL: usize = 64;
/// Sentinels written into every output before a call.
const S_USIZE: usize = 0xDEAD_BEEF_0BAD_F00D;
const S_F32: f32 = -12345.0;
const S_U8: u8 = 0xAA;
const S_U16: u16 = 0xAAAA;
/// Largest buffer (in elements) the target allocates for one argument; a larger requirement
/// (a huge fuzzed size) gets a 64-element buffer instead, which must be refused.
const CAP: usize = 1 << 20;

/// Largest input (in elements) that may really be run; larger tiles and frames get a 64-element
/// input, which must be refused (this keeps every execution fast).
const WORK: usize = 1 << 12;

/// `len` if it is at most [`CAP`], else 64.
fn cap(len: usize) -> usize {
    if len <= CAP {
        len
    } else {
        64
    }
}

/// Reads the control bytes in order; zeros once they run out.
struct Ctl<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Ctl<'_> {
    fn u8(&mut self) -> u8 {
        let v = self.data.get(self.pos).copied().unwrap_or(0);
        self.pos += 1;
        v
    }
    fn bit(&mut self) -> bool {
        self.u8() & 1 == 1
    }
    fn u16(&mut self) -> u16 {
        u16::from(self.u8()) | u16::from(self.u8()) << 8
    }
    /// A size: mostly small, sometimes near a power of two or `usize::MAX`.
    fn size(&mut self, typical: usize) -> usize {
        let sel = self.u8();
        let v = self.u16() as usize;
        match sel % 8 {
            0 => 0,
            1 => usize::MAX - v % 4,
            2 => 1usize << (v % 64),
            3 => (1usize << (v % 64)).wrapping_add(1),
            4 => typical.wrapping_add(v % 5).wrapping_sub(2),
            _ => v % (typical.max(1) * 2 + 8),
        }
    }
}

fn status_ok(s: unet_status) -> bool {
    let code = s as i32;
    assert!((0..=13).contains(&code), "unknown status {code}");
    assert_ne!(
        code,
        unet_status::UNET_ERR_PANIC as i32,
        "a panic reached the boundary"
    );
    code == 0
}

/// The calling thread's detail message.
fn last_error() -> String {
    let mut buf = [0 as c_char; 512];
    let mut n = S_USIZE;
    // SAFETY: buf is writable for its length, n for one usize.
    let s = unsafe { unet_last_error(buf.as_mut_ptr(), buf.len(), &mut n) };
    assert_eq!(s as i32, 0);
    assert_ne!(n, S_USIZE);
    // SAFETY: unet_last_error NUL-terminates within buf_len.
    let msg = unsafe { CStr::from_ptr(buf.as_ptr()) };
    assert_eq!(msg.to_bytes().len(), n.min(buf.len() - 1));
    msg.to_string_lossy().into_owned()
}

/// Checks the status/detail contract after a call and returns whether it succeeded.
fn checked(s: unet_status, what: &str) -> bool {
    let ok = status_ok(s);
    let msg = last_error();
    if ok {
        assert!(msg.is_empty(), "{what}: success left the message {msg:?}");
    } else {
        assert!(
            !msg.is_empty(),
            "{what}: failure {s:?} without a detail message"
        );
    }
    ok
}

/// A `usize` query `f(model, out)`: NULL model or NULL out give UNET_ERR_NULL; the output is
/// written exactly on success and then equals `expect` (if known).
fn query(
    m: *const unet_model,
    null_out: bool,
    f: unsafe extern "C" fn(*const unet_model, *mut usize) -> unet_status,
    expect: Option<usize>,
) {
    let mut v = S_USIZE;
    let out = if null_out {
        null_mut()
    } else {
        &mut v as *mut usize
    };
    // SAFETY: m is NULL or live; out is NULL or writable.
    let s = unsafe { f(m, out) };
    if checked(s, "query") {
        assert!(!m.is_null() && !null_out);
        if let Some(e) = expect {
            assert_eq!(v, e);
        }
    } else {
        assert_eq!(v, S_USIZE, "query wrote its output on failure");
        if m.is_null() || null_out {
            assert_eq!(s as i32, unet_status::UNET_ERR_NULL as i32);
        }
    }
}

/// A `usize → usize` query `f(model, n, out)`; `expect` is the Rust API's answer.
fn query_n(
    m: *const unet_model,
    n: usize,
    f: unsafe extern "C" fn(*const unet_model, usize, *mut usize) -> unet_status,
    expect: Option<Option<usize>>,
) {
    let mut v = S_USIZE;
    // SAFETY: m is NULL or live; v is writable.
    let s = unsafe { f(m, n, &mut v) };
    let ok = checked(s, "query_n");
    if !ok {
        assert_eq!(v, S_USIZE, "query wrote its output on failure");
    }
    if let Some(e) = expect {
        assert_eq!(ok, e.is_some(), "C says {s:?}, Rust says {e:?} for n = {n}");
        if let Some(e) = e {
            assert_eq!(v, e);
        }
    }
}

fn output_elem_size(kind: u32) -> usize {
    match kind {
        0 | 1 => 4,
        2 => 1,
        3 => 2,
        _ => 4,
    }
}

/// An output buffer of `len` elements of the kind's type (bytes for unknown kinds are sized as
/// floats), filled with the kind's sentinel, 8-byte aligned, plus `misalign` bytes of offset.
struct OutBuf {
    words: Vec<u64>,
    kind: u32,
    len: usize,
    misalign: usize,
}

impl OutBuf {
    fn new(kind: u32, len: usize, misalign: usize) -> Self {
        let bytes = len * output_elem_size(kind) + misalign;
        let mut b = OutBuf {
            words: vec![0; bytes.div_ceil(8)],
            kind,
            len,
            misalign,
        };
        let sentinel: &[u8] = match kind {
            2 => &[S_U8],
            3 => &S_U16.to_ne_bytes(),
            _ => &S_F32.to_ne_bytes(),
        };
        for (i, byte) in b.bytes_mut().iter_mut().enumerate() {
            *byte = sentinel[i % sentinel.len()];
        }
        b
    }
    fn bytes_mut(&mut self) -> &mut [u8] {
        let n = self.len * output_elem_size(self.kind);
        // SAFETY: words holds at least misalign + n bytes.
        unsafe {
            std::slice::from_raw_parts_mut(
                (self.words.as_mut_ptr() as *mut u8).add(self.misalign),
                n,
            )
        }
    }
    fn ptr(&mut self) -> *mut c_void {
        // SAFETY: misalign is within the allocation (or one past an empty one).
        unsafe { (self.words.as_mut_ptr() as *mut u8).add(self.misalign) as *mut c_void }
    }
    fn untouched(&mut self) -> bool {
        let sentinel: Vec<u8> = match self.kind {
            2 => vec![S_U8],
            3 => S_U16.to_ne_bytes().to_vec(),
            _ => S_F32.to_ne_bytes().to_vec(),
        };
        self.bytes_mut()
            .iter()
            .enumerate()
            .all(|(i, &b)| b == sentinel[i % sentinel.len()])
    }
    /// Checks a successful result: labels < classes, probabilities sum to 1 (finite inputs).
    fn check_success(&mut self, classes: usize, pixels: usize, finite: bool) {
        let len = self.len;
        match self.kind {
            2 => assert!(self.bytes_mut()[..pixels]
                .iter()
                .all(|&l| usize::from(l) < classes)),
            3 => {
                let b = self.bytes_mut();
                for p in 0..pixels {
                    let l = u16::from_ne_bytes([b[2 * p], b[2 * p + 1]]);
                    assert!(usize::from(l) < classes, "label {l} of {classes} classes");
                }
            }
            1 if finite => {
                let b = self.bytes_mut();
                let f = |i: usize| f32::from_ne_bytes(b[4 * i..4 * i + 4].try_into().unwrap());
                assert!(len >= classes * pixels);
                for p in 0..pixels {
                    let s: f32 = (0..classes).map(|c| f(c * pixels + p)).sum();
                    assert!((s - 1.0).abs() < 1e-3, "probabilities sum to {s}");
                }
            }
            _ => {}
        }
        // Elements past the required length are never written.
        let need = if self.kind <= 1 {
            classes * pixels
        } else {
            pixels
        };
        let es = output_elem_size(self.kind);
        let tail = self.bytes_mut()[need * es..].to_vec();
        let mut probe = OutBuf::new(self.kind, len, 0);
        assert_eq!(
            tail,
            probe.bytes_mut()[need * es..],
            "wrote past the output"
        );
    }
}

/// Model bytes: a synthetic tiny model (possibly corrupted) or the bytes after the controls;
/// and whether they are an uncorrupted synthetic model (finite, moderate weights: finite inputs
/// must then give finite outputs).
fn model_bytes(c: &mut Ctl<'_>, data: &[u8]) -> (Vec<u8>, bool) {
    let sel = c.u8();
    if sel & 1 == 1 {
        return (data.get(CTL..).unwrap_or(&[]).to_vec(), false);
    }
    let cfg = Config {
        in_channels: 1 + usize::from(c.u8()) % 3,
        num_classes: 1 + usize::from(c.u8()) % 4,
        base_channels: 1 + usize::from(c.u8()) % 2,
        // Mostly 1 or 2 levels (fast runs), sometimes 3.
        levels: [1, 2, 1, 2, 1, 2, 1, 3][usize::from(c.u8()) % 8],
        padding: if c.bit() {
            Padding::Same
        } else {
            Padding::Valid
        },
    };
    let dtype = [DType::F32, DType::F16, DType::BF16][usize::from(sel >> 1) % 3];
    let norm = [
        "none",
        "percentile:1:99.8",
        "min_max:0:1",
        "mean_std:0.5:0.25",
    ][usize::from(sel >> 3) % 4];
    let mut bytes = synth::random_model(&cfg, dtype, u64::from(c.u16()), norm);
    let mut pristine = true;
    for _ in 0..usize::from(c.u8() % 4) {
        let pos = usize::from(c.u16()) % bytes.len();
        let x = c.u8();
        bytes[pos] ^= x;
        pristine &= x == 0;
    }
    (bytes, pristine)
}

fn check_model_queries(c: &mut Ctl<'_>, m: *const unet_model, rust: Option<&Model<'_>>) {
    let g = rust.map(|r| r.geometry());
    let cfg = rust.map(|r| *r.config());
    query(
        m,
        c.bit(),
        unet_model_in_channels,
        cfg.map(|c| c.in_channels),
    );
    query(
        m,
        c.bit(),
        unet_model_num_classes,
        cfg.map(|c| c.num_classes),
    );
    query(
        m,
        c.bit(),
        unet_model_base_channels,
        cfg.map(|c| c.base_channels),
    );
    query(m, c.bit(), unet_model_levels, cfg.map(|c| c.levels));
    query(m, c.bit(), unet_model_halo, g.map(|g| g.halo()));
    query(m, c.bit(), unet_model_tile_step, g.map(|g| g.step()));
    query(m, c.bit(), unet_model_min_tile, g.map(|g| g.min_input()));

    // Padding: an enum output, checked through its bytes.
    let mut pad = 0xDEADu32;
    let out = if c.bit() {
        null_mut()
    } else {
        &mut pad as *mut u32 as *mut _
    };
    // SAFETY: out is NULL or points to 4 writable bytes (the enum is a C int).
    let s = unsafe { unet_model_padding(m, out) };
    if checked(s, "padding") {
        let want = cfg.map(|c| c.padding == Padding::Same);
        assert_eq!(Some(pad == 1), want);
        assert!(pad <= 1);
    } else {
        assert_eq!(pad, 0xDEAD);
    }

    let min = g.map_or(1, |g| g.min_input());
    let n = c.size(min);
    let mut legal = 2u8;
    // SAFETY: legal is one writable byte holding a valid bool after a successful call.
    let s = unsafe { unet_model_is_legal_tile(m, n, &mut legal as *mut u8 as *mut bool) };
    if checked(s, "is_legal") {
        assert!(legal <= 1);
        assert_eq!(Some(legal == 1), g.map(|g| g.is_legal(n)));
    } else {
        assert_eq!(legal, 2);
    }
    query_n(m, n, unet_model_next_legal_tile, g.map(|g| g.next_legal(n)));
    query_n(m, n, unet_model_prev_legal_tile, g.map(|g| g.prev_legal(n)));
    query_n(
        m,
        n,
        unet_model_tile_for_output,
        g.map(|g| g.input_for_output(n)),
    );

    let (h, w) = (n, c.size(min));
    let plan = rust.and_then(|r| r.plan(h, w).ok());
    let (mut oh, mut ow) = (S_USIZE, S_USIZE);
    let null_w = c.u8() == 7;
    let ow_ptr = if null_w {
        null_mut()
    } else {
        &mut ow as *mut usize
    };
    // SAFETY: oh writable; ow_ptr NULL or writable.
    let s = unsafe { unet_model_output_size(m, h, w, &mut oh, ow_ptr) };
    if checked(s, "output_size") {
        if let Some(p) = &plan {
            assert_eq!((oh, ow), p.output_size());
        }
    } else {
        assert_eq!((oh, ow), (S_USIZE, S_USIZE), "output_size wrote on failure");
    }
    for f in [unet_model_tile_scratch_len, unet_model_tile_scratch_bytes] {
        let mut v = S_USIZE;
        // SAFETY: v writable.
        let s = unsafe { f(m, h, w, &mut v) };
        if !checked(s, "tile_scratch") {
            assert_eq!(v, S_USIZE);
        }
    }

    // Metadata: a fuzzed key, NULL or short buffers.
    let keys = [
        "normalization",
        "format",
        "levels",
        "padding",
        "",
        "nope",
        "class_names",
    ];
    let key = keys[usize::from(c.u8()) % keys.len()];
    let key = std::ffi::CString::new(key).unwrap();
    let buf_len = usize::from(c.u8() % 40);
    let mut buf = vec![0x55 as c_char; buf_len + 1];
    let buf_ptr = if buf_len == 0 && c.bit() {
        null_mut()
    } else {
        buf.as_mut_ptr()
    };
    let mut out_len = S_USIZE;
    // SAFETY: key NUL-terminated; buf writable for buf_len bytes (or NULL with 0); out_len ok.
    let s = unsafe { unet_model_metadata(m, key.as_ptr(), buf_ptr, buf_len, &mut out_len) };
    let ok = checked(s, "metadata");
    let value = rust
        .and_then(|r| r.metadata(key.to_str().unwrap()))
        .map(|v| v.raw());
    if ok {
        let v = value.expect("C found a key Rust does not");
        assert_eq!(out_len, v.len());
        assert!(out_len < buf_len);
        // SAFETY: NUL-terminated on success.
        assert_eq!(unsafe { CStr::from_ptr(buf.as_ptr()) }.to_bytes(), v);
    } else {
        if s as i32 == unet_status::UNET_ERR_BUFFER_TOO_SMALL as i32 {
            assert_eq!(Some(out_len), value.map(<[u8]>::len));
        } else if !m.is_null() && value.is_some() {
            panic!("metadata failed with {s:?} for a present key");
        }
        assert!(
            buf.iter().all(|&b| b == 0x55),
            "metadata wrote the buffer on failure"
        );
    }
}

fn check_run_tile(c: &mut Ctl<'_>, m: *const unet_model, rust: Option<&Model<'_>>, pristine: bool) {
    let g = rust.map(|r| r.geometry());
    let (min, step) = g.map_or((4, 2), |g| (g.min_input(), g.step()));
    let pick = |c: &mut Ctl<'_>| {
        if c.u8() < 16 {
            c.size(min)
        } else {
            (min + step * usize::from(c.u8() % 3)).wrapping_add(usize::from(c.u8() % 3)) - 1
        }
    };
    let (h, w) = (pick(c), pick(c));
    let plan = rust.and_then(|r| r.plan(h, w).ok());
    let (need_in, need_out, need_lab, need_scr) = plan.as_ref().map_or((16, 16, 16, 16), |p| {
        (
            p.input_len(),
            p.output_len(),
            p.label_len(),
            p.scratch_len(),
        )
    });
    let delta = |c: &mut Ctl<'_>, need: usize| -> usize {
        match c.u8() % 8 {
            0 => need.saturating_sub(1),
            1 => need + 3,
            2 => 0,
            _ => need,
        }
    };
    // A huge tile gets 64-element buffers (refused quickly).
    let huge = need_in > WORK;
    let cap = |len: usize| if huge { len.min(64) } else { cap(len) };
    let in_len = cap(delta(c, need_in));
    let mut input = synth::random_input(in_len, u64::from(c.u8()));
    let mut finite = true;
    for _ in 0..usize::from(c.u8() % 3) {
        if !input.is_empty() {
            let i = usize::from(c.u16()) % input.len();
            input[i] = [f32::NAN, f32::INFINITY, f32::NEG_INFINITY][usize::from(c.u8()) % 3];
            finite = false;
        }
    }
    let kind = match c.u8() {
        k @ 0..=200 => u32::from(k % 4),
        k => u32::from(k) << (k % 24),
    };
    let out_len = cap(delta(
        c,
        if (2..=3).contains(&kind) {
            need_lab
        } else {
            need_out
        },
    ));
    let misalign = if c.u8() == 1 { 1 } else { 0 };
    let mut out = OutBuf::new(kind, out_len, misalign);
    let scratch_mode = c.u8() % 8;
    let mut scratch = vec![
        0f32;
        if scratch_mode == 0 {
            0
        } else {
            cap(delta(c, need_scr))
        }
    ];
    let (scr_ptr, scr_len) = match scratch_mode {
        0 => (null_mut(), 0),
        1 => (null_mut(), scratch.len()), // NULL with a length: refused
        _ => (scratch.as_mut_ptr(), scratch.len()),
    };
    let in_ptr = if c.u8() == 3 { null() } else { input.as_ptr() };
    let out_ptr = if c.u8() == 3 { null_mut() } else { out.ptr() };
    // SAFETY: every pointer is NULL or valid for the length passed with it.
    let s = unsafe {
        unet_model_run_tile(
            m, h, w, in_ptr, in_len, kind, out_ptr, out_len, scr_ptr, scr_len,
        )
    };
    if checked(s, "run_tile") {
        let p = plan.expect("C ran a tile Rust cannot plan");
        // A misaligned output is refused, except for u8 labels (any address is aligned).
        assert!(
            kind <= 3 && (misalign == 0 || kind == 2) && !in_ptr.is_null() && !out_ptr.is_null(),
            "run_tile accepted kind {kind}, misalign {misalign}, input NULL {}, output NULL {}",
            in_ptr.is_null(),
            out_ptr.is_null()
        );
        assert!(in_len >= need_in && out_len >= if kind >= 2 { need_lab } else { need_out });
        // Either the convenience path (NULL, 0) or a scratch long enough; NULL with a length
        // is refused.
        assert!(if scr_ptr.is_null() {
            scr_len == 0
        } else {
            scr_len >= need_scr
        });
        let classes = rust.unwrap().config().num_classes;
        out.check_success(classes, p.label_len(), finite && pristine);
    } else {
        assert!(
            out.untouched(),
            "run_tile wrote its output on failure ({s:?})"
        );
    }

    // Overlapping output and scratch must be refused.
    if plan.is_some() && c.bit() && need_out + need_scr <= CAP {
        let mut shared = vec![S_F32; need_out + need_scr];
        let base = shared.as_mut_ptr();
        let off = usize::from(c.u16()) % need_out;
        // SAFETY: both ranges lie inside `shared` (off < need_out, off + need_scr ≤ len).
        let s = unsafe {
            unet_model_run_tile(
                m,
                h,
                w,
                input.as_ptr(),
                input.len(),
                0,
                base as *mut c_void,
                need_out,
                base.add(off),
                need_scr,
            )
        };
        assert!(
            !checked(s, "run_tile overlap"),
            "overlapping buffers accepted"
        );
        assert!(
            shared.iter().all(|&v| v == S_F32),
            "overlap: written on failure"
        );
    }
}

fn check_frames(c: &mut Ctl<'_>, m: *const unet_model, rust: Option<&Model<'_>>, pristine: bool) {
    let cfg = rust.map(|r| *r.config());
    let in_c = cfg.map_or(1, |c| c.in_channels);
    let classes = cfg.map_or(1, |c| c.num_classes);
    let g = rust.map(|r| r.geometry());
    let (min, step) = g.map_or((4, 2), |g| (g.min_input(), g.step()));
    let height = if c.u8() == 0 {
        c.size(8)
    } else {
        1 + usize::from(c.u8() % 24)
    };
    let width = if c.u8() == 0 {
        c.size(8)
    } else {
        1 + usize::from(c.u8() % 24)
    };
    let sample = match c.u8() {
        k @ 0..=240 => u32::from(k % 3),
        k => u32::from(k) * 1000,
    };
    let mut opts = unet_frame_options {
        tile_height: 0,
        tile_width: 0,
        scratch_budget_bytes: 0,
        threads: 1 + usize::from(c.u8() % 3),
    };
    match c.u8() % 8 {
        0 => opts.threads = 0,
        1 => opts.threads = c.size(2),
        _ => {}
    }
    match c.u8() % 4 {
        0 => {
            let t = min + step * usize::from(c.u8() % 4);
            opts.tile_height = t;
            opts.tile_width = t.wrapping_add(usize::from(c.u8() % 3)).wrapping_sub(1);
        }
        1 => {
            opts.tile_height = c.size(min);
            opts.tile_width = c.size(min);
        }
        2 => opts.scratch_budget_bytes = c.size(1 << 16),
        _ => {}
    }
    let null_opts = c.u8() == 9;
    let opts_ptr = if null_opts {
        null()
    } else {
        &opts as *const unet_frame_options
    };

    let (mut len, mut bytes, mut th, mut tw) = (S_USIZE, S_USIZE, S_USIZE, S_USIZE);
    // SAFETY: out parameters are writable; opts_ptr NULL or readable.
    let s1 = unsafe { unet_model_frame_scratch_len(m, height, width, sample, opts_ptr, &mut len) };
    let ok1 = checked(s1, "frame_scratch_len");
    // SAFETY: as above.
    let s2 =
        unsafe { unet_model_frame_scratch_bytes(m, height, width, sample, opts_ptr, &mut bytes) };
    let ok2 = checked(s2, "frame_scratch_bytes");
    // SAFETY: as above.
    let s3 =
        unsafe { unet_model_frame_tile_size(m, height, width, sample, opts_ptr, &mut th, &mut tw) };
    let ok3 = checked(s3, "frame_tile_size");
    if ok1 {
        assert!(ok3, "tile size fails where the scratch length succeeds");
        assert!(!ok2 || bytes == len * 4);
        let g = g.expect("a live model");
        assert!(g.is_legal(th) && g.is_legal(tw), "illegal tile {th}×{tw}");
    } else {
        assert_eq!(len, S_USIZE);
        assert!(!ok2 || bytes == S_USIZE);
    }
    if !ok2 {
        assert_eq!(bytes, S_USIZE);
    }
    if !ok3 {
        assert_eq!((th, tw), (S_USIZE, S_USIZE));
    }
    let threads = if null_opts { 1 } else { opts.threads };
    if threads > 4 && (ok1 || m.is_null()) {
        return; // a legal plan for many threads: would spawn them all
    }

    let stride = match c.u8() % 4 {
        0 => 0,
        1 => width.wrapping_add(usize::from(c.u8() % 3)),
        2 => width.wrapping_sub(1),
        _ => width,
    };
    let eff = if stride == 0 { width } else { stride };
    let need_px = eff
        .checked_mul(height)
        .and_then(|v| v.checked_mul(in_c))
        .and_then(|v| v.checked_sub(eff - width.min(eff)))
        .unwrap_or(usize::MAX);
    let px_len = match c.u8() % 6 {
        0 => need_px.saturating_sub(1),
        1 => need_px.saturating_add(2),
        _ => need_px,
    };
    // A huge frame gets 64-element buffers (refused quickly).
    let huge = need_px > WORK || height.saturating_mul(width) > WORK;
    let cap = |len: usize| if huge { len.min(64) } else { cap(len) };
    let px_len = cap(px_len);
    let seed = u64::from(c.u8());
    let vals = synth::random_input(px_len, seed);
    let px_u8: Vec<u8> = vals.iter().map(|v| (v * 255.0) as u8).collect();
    let px_u16: Vec<u16> = vals.iter().map(|v| (v * 65535.0) as u16).collect();
    let mut px_f32: Vec<f32> = vals.iter().map(|v| v * 100.0 - 3.0).collect();
    if c.u8() > 200 && !px_f32.is_empty() {
        let i = usize::from(c.u16()) % px_f32.len();
        px_f32[i] = [f32::NAN, f32::INFINITY, f32::NEG_INFINITY][usize::from(c.u8()) % 3];
    }
    let px_ptr: *const c_void = match sample {
        0 => px_u8.as_ptr().cast(),
        1 => px_u16.as_ptr().cast(),
        _ => px_f32.as_ptr().cast(),
    };
    let kind = match c.u8() {
        k @ 0..=240 => u32::from(k % 4),
        k => u32::from(k) * 7,
    };
    let pixels = height.saturating_mul(width);
    let need_out = if kind == 2 || kind == 3 {
        pixels
    } else {
        pixels.saturating_mul(classes)
    };
    let out_len = cap(match c.u8() % 6 {
        0 => need_out.saturating_sub(1),
        1 => need_out.saturating_add(5),
        _ => need_out,
    });
    let mut out = OutBuf::new(kind, out_len, 0);
    let scratch_mode = c.u8() % 4;
    let scr_need = if ok1 { len } else { 64 };
    let scr_len = cap(match scratch_mode {
        0 => 0,
        1 => scr_need.saturating_sub(1),
        _ => scr_need,
    });
    if scratch_mode == 0 && ok1 && len > CAP {
        return; // libunet would allocate the (large) scratch itself
    }
    let mut scratch = vec![0f32; scr_len];
    let scr_ptr = if scratch_mode == 0 {
        null_mut()
    } else {
        scratch.as_mut_ptr()
    };
    // SAFETY: every pointer is NULL or valid for the length passed with it.
    let s = unsafe {
        unet_model_segment_frame(
            m,
            height,
            width,
            stride,
            sample,
            px_ptr,
            px_len,
            opts_ptr,
            kind,
            out.ptr(),
            out_len,
            scr_ptr,
            scr_len,
        )
    };
    if checked(s, "segment_frame") {
        assert!(ok1, "segment succeeded where the scratch query failed");
        assert!(px_len >= need_px && out_len >= need_out && kind <= 3);
        let finite = px_f32.iter().all(|v| v.is_finite()) || sample != 2;
        out.check_success(classes, pixels, finite && pristine);
    } else {
        assert!(
            out.untouched(),
            "segment_frame wrote its output on failure ({s:?})"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let mut c = Ctl { data, pos: 0 };

    // Stateless functions.
    let code = i32::from(c.u8() as i8) * i32::from(c.u16());
    // SAFETY: both return static NUL-terminated strings.
    unsafe {
        assert!(!CStr::from_ptr(unet_status_message(code))
            .to_bytes()
            .is_empty());
        assert!(!CStr::from_ptr(unet_version()).to_bytes().is_empty());
    }
    let mut n = S_USIZE;
    let mut one = [0x55 as c_char; 1];
    // SAFETY: buffers writable for the lengths given.
    unsafe {
        assert_eq!(unet_last_error(one.as_mut_ptr(), 0, &mut n) as i32, 2);
        assert_eq!(unet_last_error(null_mut(), 1, &mut n) as i32, 1);
        assert_eq!(unet_last_error(one.as_mut_ptr(), 1, null_mut()) as i32, 1);
    }
    assert_eq!(n, S_USIZE);
    assert_eq!(one[0], 0x55);

    let (bytes, pristine) = model_bytes(&mut c, data);
    let rust = Model::from_safetensors(&bytes).ok();
    let mut m: *mut unet_model = 0x10 as *mut unet_model; // sentinel handle
    let (bytes_ptr, out_ptr) = match c.u8() {
        0 => (null(), &mut m as *mut _),
        1 => (bytes.as_ptr(), null_mut()),
        _ => (bytes.as_ptr(), &mut m as *mut _),
    };
    // SAFETY: bytes live (and unchanged) until the model is freed below; out_ptr NULL or valid.
    let s = unsafe { unet_model_from_bytes(bytes_ptr, bytes.len(), out_ptr) };
    let loaded = checked(s, "from_bytes");
    if loaded {
        assert!(rust.is_some(), "C loaded a model Rust refuses");
        assert!(!m.is_null() && m as usize != 0x10);
    } else {
        assert_eq!(m as usize, 0x10, "from_bytes wrote its handle on failure");
        if !bytes_ptr.is_null() && !out_ptr.is_null() {
            assert!(rust.is_none(), "C refused a model Rust loads: {s:?}");
        }
        m = null_mut();
    }
    // Rarely, the file path: a missing file, then the bytes through a file.
    if c.u8() == 0xF1 {
        let mut h: *mut unet_model = 0x10 as *mut _;
        let path = std::env::temp_dir().join(format!("unet-fuzz-{}.st", std::process::id()));
        std::fs::write(&path, &bytes).unwrap();
        let cpath = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
        // SAFETY: NUL-terminated path, h writable.
        let s = unsafe { unet_model_load(cpath.as_ptr(), &mut h) };
        assert_eq!(checked(s, "load"), rust.is_some());
        // SAFETY: h is NULL-or-sentinel (not freed) or a live handle.
        if rust.is_some() {
            unsafe { unet_model_free(h) };
        }
        let _ = std::fs::remove_file(&path);
        let missing = std::ffi::CString::new("/nonexistent/unet/model.safetensors").unwrap();
        let mut h2: *mut unet_model = 0x10 as *mut _;
        // SAFETY: as above.
        let s = unsafe { unet_model_load(missing.as_ptr(), &mut h2) };
        assert_eq!(s as i32, unet_status::UNET_ERR_IO as i32);
        assert_eq!(h2 as usize, 0x10);
    }

    let rust_live = if loaded { rust.as_ref() } else { None };
    check_model_queries(&mut c, m, rust_live);
    check_run_tile(&mut c, m, rust_live, pristine);
    check_frames(&mut c, m, rust_live, pristine);
    // SAFETY: m is NULL or the live handle from above, freed once; NULL is ignored.
    unsafe { unet_model_free(m) };
});
