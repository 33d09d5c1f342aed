//! unet-core's forward pass against the PyTorch oracle.
//!
//! Fixtures: `tests/fixtures/core/case_*.{f32,f16,bf16,io}.safetensors`, made by the committed
//! script `tests/reference/make_core_fixtures.py` from the reference module
//! `tests/reference/unet_ref.py`. Expected logits and probabilities were computed by PyTorch in
//! float64 from the exactly upcast weights of each model file, so they are the true result for
//! that file up to float64 rounding.
//!
//! Tolerance: `max|got − want| / max(1, max|want|) ≤ 1e-4` for logits and probabilities (for
//! probabilities, which are ≤ 1, this is an absolute error bound). Why 1e-4: core computes in
//! f32; each output is a chain of ≤ 17 convolutions with dot products of ≤ 288 terms, whose
//! rounding error is a few 1e-6 relative in practice (PyTorch's own f32 forward is within
//! 1.3e-6 of float64 on these fixtures); 1e-4 leaves room for other summation orders (blocked
//! GEMM, SIMD, `expf`) while still catching any wrong weight, tap, crop offset or channel order,
//! which move outputs by ≥ 1e-2. Labels must match exactly, except at pixels where core's class
//! is within `2 · tol` of the top float64 logit (two logits each off by `tol` may swap).
//!
//! The same tolerance holds with every 3×3 convolution forced to Winograd F(4×4, 3×3)
//! ([`ConvAlgo::Winograd`]) or to the direct path.
//!
//! Also checked here: f16/bf16 files give bit-identical outputs to an F32 file holding their
//! exactly upcast weights, unaligned model buffers give bit-identical outputs, and
//! [`Model::from_safetensors`] refuses edited files with precise errors.

use std::collections::HashMap;
use std::path::PathBuf;

use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use unet_core::{ConvAlgo, DType, Error, Model, Normalization, Output, ParamId, Shape};

const CASES: [&str; 5] = ["case_a", "case_b", "case_c", "case_d", "case_e"];
const DTYPES: [&str; 3] = ["f32", "f16", "bf16"];
/// Relative tolerance for logits and probabilities; see the module docs.
const REL_TOL: f64 = 1e-4;

fn fixture(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/core")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// What PyTorch computed for one model file.
struct Expected {
    logits: Vec<f64>,
    probs: Vec<f64>,
    labels: Vec<u8>,
    k: usize,
    oh: usize,
    ow: usize,
}

/// One case's io file.
struct Io {
    input: Vec<f32>,
    c: usize,
    h: usize,
    w: usize,
    expected: HashMap<&'static str, Expected>,
}

fn view<'a>(st: &SafeTensors<'a>, name: &str, dtype: Dtype) -> TensorView<'a> {
    let t = st
        .tensor(name)
        .unwrap_or_else(|e| panic!("io tensor {name}: {e}"));
    assert_eq!(t.dtype(), dtype, "io tensor {name}");
    t
}

fn load_io(case: &str) -> Io {
    let bytes = fixture(&format!("{case}.io.safetensors"));
    let st = SafeTensors::deserialize(&bytes).expect("io file parses");
    let input = view(&st, "input", Dtype::F32);
    let [c, h, w] = input.shape().try_into().expect("input is [C, H, W]");
    let input = input
        .data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect();
    let mut expected = HashMap::new();
    for d in DTYPES {
        let logits = view(&st, &format!("logits_{d}"), Dtype::F64);
        let [k, oh, ow] = logits.shape().try_into().expect("logits are [K, H, W]");
        let f64s = |t: TensorView<'_>| -> Vec<f64> {
            t.data()
                .chunks_exact(8)
                .map(|b| f64::from_le_bytes(b.try_into().unwrap()))
                .collect()
        };
        let probs = view(&st, &format!("probs_{d}"), Dtype::F64);
        assert_eq!(probs.shape(), [k, oh, ow]);
        let labels = view(&st, &format!("labels_{d}"), Dtype::U8);
        assert_eq!(labels.shape(), [oh, ow]);
        expected.insert(
            d,
            Expected {
                logits: f64s(logits),
                probs: f64s(probs),
                labels: labels.data().to_vec(),
                k,
                oh,
                ow,
            },
        );
    }
    Io {
        input,
        c,
        h,
        w,
        expected,
    }
}

/// Scratch full of NaN: any read of a scratch element before it is written poisons the output.
fn scratch_for(
    model: &Model<'_>,
    h: usize,
    w: usize,
    algo: ConvAlgo,
) -> (unet_core::Plan, Vec<f32>) {
    let plan = model
        .plan_with(h, w, algo)
        .expect("fixture tile size is legal");
    let scratch = vec![f32::NAN; plan.scratch_len()];
    (plan, scratch)
}

fn logits(model: &Model<'_>, io: &Io, algo: ConvAlgo) -> Vec<f32> {
    let (plan, mut scratch) = scratch_for(model, io.h, io.w, algo);
    let mut out = vec![f32::NAN; plan.output_len()];
    model
        .forward(&plan, &io.input, &mut scratch, Output::Logits(&mut out))
        .expect("forward");
    out
}

fn probabilities(model: &Model<'_>, io: &Io, algo: ConvAlgo) -> Vec<f32> {
    let (plan, mut scratch) = scratch_for(model, io.h, io.w, algo);
    let mut out = vec![f32::NAN; plan.output_len()];
    model
        .forward(
            &plan,
            &io.input,
            &mut scratch,
            Output::Probabilities(&mut out),
        )
        .expect("forward");
    out
}

fn labels8(model: &Model<'_>, io: &Io, algo: ConvAlgo) -> Vec<u8> {
    let (plan, mut scratch) = scratch_for(model, io.h, io.w, algo);
    let mut out = vec![u8::MAX; plan.label_len()];
    model
        .forward(&plan, &io.input, &mut scratch, Output::Labels8(&mut out))
        .expect("forward");
    out
}

fn labels16(model: &Model<'_>, io: &Io, algo: ConvAlgo) -> Vec<u16> {
    let (plan, mut scratch) = scratch_for(model, io.h, io.w, algo);
    let mut out = vec![u16::MAX; plan.label_len()];
    model
        .forward(&plan, &io.input, &mut scratch, Output::Labels16(&mut out))
        .expect("forward");
    out
}

/// `max|got − want| / max(1, max|want|)`; panics on a non-finite output (unwritten or NaN).
fn rel_err(got: &[f32], want: &[f64]) -> f64 {
    assert_eq!(got.len(), want.len());
    let scale = want.iter().fold(1.0f64, |m, v| m.max(v.abs()));
    let mut err = 0.0f64;
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!(g.is_finite(), "output element {i} is {g}");
        err = err.max((g as f64 - w).abs());
    }
    err / scale
}

/// Checks labels against the oracle; returns how many pixels differ (all near-ties).
fn check_labels(got: &[usize], e: &Expected, what: &str) -> usize {
    let scale = e.logits.iter().fold(1.0f64, |m, v| m.max(v.abs()));
    let slack = 2.0 * REL_TOL * scale;
    let n = e.oh * e.ow;
    assert_eq!(got.len(), n, "{what}: label count");
    let mut near_ties = 0;
    for (p, (&g, &want)) in got.iter().zip(&e.labels).enumerate() {
        if g == want as usize {
            continue;
        }
        assert!(g < e.k, "{what}: pixel {p} has label {g} (k = {})", e.k);
        let top = (0..e.k)
            .map(|c| e.logits[c * n + p])
            .fold(f64::NEG_INFINITY, f64::max);
        let mine = e.logits[g * n + p];
        assert!(
            mine >= top - slack,
            "{what}: pixel {p}: label {g} (logit {mine}) but PyTorch says {want} (logit {top})"
        );
        near_ties += 1;
    }
    near_ties
}

#[test]
fn forward_matches_pytorch() {
    let mut report = String::new();
    for case in CASES {
        let io = load_io(case);
        for d in DTYPES {
            let e = &io.expected[d];
            let bytes = fixture(&format!("{case}.{d}.safetensors"));
            let model =
                Model::from_safetensors(&bytes).unwrap_or_else(|err| panic!("{case}.{d}: {err}"));
            let cfg = model.config();
            assert_eq!(
                (cfg.in_channels, cfg.num_classes),
                (io.c, e.k),
                "{case}.{d}"
            );
            let plan = model.plan(io.h, io.w).expect("legal");
            assert_eq!(plan.output_size(), (e.oh, e.ow), "{case}.{d}: output size");

            // The automatic choice, and each algorithm forced (Winograd on every 3×3 layer).
            for algo in [ConvAlgo::Auto, ConvAlgo::Direct, ConvAlgo::Winograd] {
                let el = rel_err(&logits(&model, &io, algo), &e.logits);
                assert!(
                    el <= REL_TOL,
                    "{case}.{d} {algo:?}: logits rel err {el:.3e} > {REL_TOL:e}"
                );
                let ep = rel_err(&probabilities(&model, &io, algo), &e.probs);
                assert!(
                    ep <= REL_TOL,
                    "{case}.{d} {algo:?}: probabilities err {ep:.3e} > {REL_TOL:e}"
                );
                let l8: Vec<usize> = labels8(&model, &io, algo)
                    .into_iter()
                    .map(usize::from)
                    .collect();
                let t8 = check_labels(&l8, e, &format!("{case}.{d} {algo:?} u8"));
                let l16: Vec<usize> = labels16(&model, &io, algo)
                    .into_iter()
                    .map(usize::from)
                    .collect();
                let t16 = check_labels(&l16, e, &format!("{case}.{d} {algo:?} u16"));
                assert_eq!(l8, l16, "{case}.{d} {algo:?}: u8 and u16 label maps differ");
                report += &format!(
                    "{case}.{d} {algo:?}: logits rel err {el:.2e}, probs err {ep:.2e}, label near-tie diffs {t8}/{t16} of {}\n",
                    e.oh * e.ow
                );
            }
        }
    }
    // Visible with `cargo test -- --nocapture`: the observed errors.
    eprint!("{report}");
}

/// A file's tensors and metadata, owned, for editing.
struct Owned {
    tensors: Vec<(String, Dtype, Vec<usize>, Vec<u8>)>,
    meta: Option<HashMap<String, String>>,
}

impl Owned {
    fn read(bytes: &[u8]) -> Owned {
        let st = SafeTensors::deserialize(bytes).expect("fixture parses");
        let (_, header) = SafeTensors::read_metadata(bytes).expect("fixture header");
        let mut tensors: Vec<_> = st
            .tensors()
            .into_iter()
            .map(|(n, t)| (n, t.dtype(), t.shape().to_vec(), t.data().to_vec()))
            .collect();
        tensors.sort_by(|a, b| a.0.cmp(&b.0));
        Owned {
            tensors,
            meta: header.metadata().clone(),
        }
    }

    fn write(&self) -> Vec<u8> {
        let views = self.tensors.iter().map(|(n, d, s, b)| {
            (
                n.clone(),
                TensorView::new(*d, s.clone(), b).expect("consistent edited tensor"),
            )
        });
        safetensors::tensor::serialize(views, self.meta.clone()).expect("serialize")
    }

    fn tensor(&mut self, name: &str) -> &mut (String, Dtype, Vec<usize>, Vec<u8>) {
        self.tensors
            .iter_mut()
            .find(|t| t.0 == name)
            .expect("tensor in fixture")
    }

    fn meta(&mut self) -> &mut HashMap<String, String> {
        self.meta.as_mut().expect("fixture has metadata")
    }
}

/// An F32 copy of a model file: every tensor upcast exactly, same metadata.
fn upcast_to_f32(bytes: &[u8]) -> Vec<u8> {
    let mut o = Owned::read(bytes);
    for (_, dtype, _, data) in &mut o.tensors {
        let f: Vec<f32> = match *dtype {
            Dtype::F32 => continue,
            Dtype::F16 => data
                .chunks_exact(2)
                .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            Dtype::BF16 => data
                .chunks_exact(2)
                .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            other => panic!("unexpected dtype {other:?}"),
        };
        *dtype = Dtype::F32;
        *data = f.iter().flat_map(|v| v.to_le_bytes()).collect();
    }
    o.write()
}

#[test]
fn half_precision_files_equal_their_f32_upcast() {
    // f16/bf16 → f32 conversion is exact and the compute is f32 either way, so the outputs must
    // be bit-identical, not merely close.
    for case in CASES {
        let io = load_io(case);
        for (d, dtype) in [("f16", DType::F16), ("bf16", DType::BF16)] {
            let bytes = fixture(&format!("{case}.{d}.safetensors"));
            let half_model = Model::from_safetensors(&bytes).expect("loads");
            assert_eq!(half_model.weight_dtype(), dtype);
            let up = upcast_to_f32(&bytes);
            let f32_model = Model::from_safetensors(&up).expect("upcast loads");
            assert_eq!(f32_model.weight_dtype(), DType::F32);
            let a: Vec<u32> = logits(&half_model, &io, ConvAlgo::Auto)
                .iter()
                .map(|v| v.to_bits())
                .collect();
            let b: Vec<u32> = logits(&f32_model, &io, ConvAlgo::Auto)
                .iter()
                .map(|v| v.to_bits())
                .collect();
            assert!(a == b, "{case}.{d}: logits differ from the f32 upcast file");
        }
    }
}

#[test]
fn unaligned_model_bytes_give_identical_results() {
    for case in ["case_a", "case_e"] {
        let io = load_io(case);
        for d in DTYPES {
            let bytes = fixture(&format!("{case}.{d}.safetensors"));
            let aligned = Model::from_safetensors(&bytes).expect("loads");
            for shift in 1..4 {
                let mut buf = vec![0u8; shift];
                buf.extend_from_slice(&bytes);
                let moved = Model::from_safetensors(&buf[shift..]).expect("unaligned loads");
                let a: Vec<u32> = logits(&aligned, &io, ConvAlgo::Auto)
                    .iter()
                    .map(|v| v.to_bits())
                    .collect();
                let b: Vec<u32> = logits(&moved, &io, ConvAlgo::Auto)
                    .iter()
                    .map(|v| v.to_bits())
                    .collect();
                assert!(
                    a == b,
                    "{case}.{d}: shifted by {shift} bytes gives other logits"
                );
            }
        }
    }
}

#[test]
fn metadata_of_fixtures_is_read() {
    let a = fixture("case_a.f32.safetensors");
    let m = Model::from_safetensors(&a).expect("loads");
    assert_eq!(m.normalization(), Normalization::None);
    assert_eq!(m.config().levels, 3);
    assert_eq!(m.config().padding, unet_core::Padding::Valid);
    assert_eq!(
        m.metadata("epochs").and_then(|v| v.as_plain_str()),
        Some("0")
    );
    assert!(m.metadata("class_names").is_none());

    let b = fixture("case_b.bf16.safetensors");
    let m = Model::from_safetensors(&b).expect("loads");
    assert_eq!(
        m.normalization(),
        Normalization::Percentile {
            low: 1.0,
            high: 99.8
        }
    );
    assert_eq!(m.config().padding, unet_core::Padding::Same);
    assert_eq!(
        m.metadata("class_names").and_then(|v| v.as_plain_str()),
        Some("background,cell,border")
    );

    let c = fixture("case_c.f16.safetensors");
    let m = Model::from_safetensors(&c).expect("loads");
    assert_eq!(
        m.normalization(),
        Normalization::MeanStd {
            mean: 0.5,
            std: 0.25
        }
    );
    assert_eq!(m.config().levels, 1);

    let e = fixture("case_e.f32.safetensors");
    let m = Model::from_safetensors(&e).expect("loads");
    assert_eq!(
        m.normalization(),
        Normalization::MinMax {
            min: 0.0,
            max: 65535.0
        }
    );
    assert_eq!((m.config().num_classes, m.config().base_channels), (5, 3));
}

/// Loads an edited copy of case_a.f32 (3 levels, base 4, 1 in-channel, 2 classes, valid).
fn load_edited(edit: impl FnOnce(&mut Owned)) -> (Vec<u8>, Result<(), Error>) {
    let mut o = Owned::read(&fixture("case_a.f32.safetensors"));
    edit(&mut o);
    let bytes = o.write();
    let r = Model::from_safetensors(&bytes).map(|_| ());
    (bytes, r)
}

fn err(edit: impl FnOnce(&mut Owned)) -> Error {
    match load_edited(edit) {
        (_, Err(e)) => e,
        (_, Ok(())) => panic!("the edited file was accepted"),
    }
}

fn shape(d: &[usize]) -> Shape {
    Shape::new(d).unwrap()
}

#[test]
fn unedited_copy_loads() {
    // The edit machinery itself must not break a file, or every error test below is vacuous.
    assert_eq!(load_edited(|_| {}).1, Ok(()));
}

#[test]
fn missing_tensor_is_named() {
    let e = err(|o| o.tensors.retain(|t| t.0 != "dec.0.conv2.weight"));
    assert_eq!(
        e,
        Error::MissingTensor {
            param: ParamId::Dec {
                level: 0,
                conv: 2,
                bias: false
            }
        }
    );
    let e = err(|o| o.tensors.retain(|t| t.0 != "head.bias"));
    assert_eq!(
        e,
        Error::MissingTensor {
            param: ParamId::Head { bias: true }
        }
    );
    assert_eq!(e.to_string(), "tensor 'head.bias' is missing");
}

#[test]
fn wrong_shape_is_named() {
    // Same element count, transposed channel dims.
    let e = err(|o| o.tensor("up.1.weight").2 = vec![8, 16, 2, 2]);
    assert_eq!(
        e,
        Error::TensorShape {
            param: ParamId::Up {
                level: 1,
                bias: false
            },
            expected: shape(&[16, 8, 2, 2]),
            found: shape(&[8, 16, 2, 2]),
        }
    );
    // Extra unit dimension.
    let e = err(|o| o.tensor("enc.0.conv1.bias").2 = vec![1, 4]);
    assert_eq!(
        e,
        Error::TensorShape {
            param: ParamId::Enc {
                level: 0,
                conv: 1,
                bias: true
            },
            expected: shape(&[4]),
            found: shape(&[1, 4]),
        }
    );
    // Metadata that disagrees with the tensors: 3 input channels declared, 1 stored.
    let e = err(|o| {
        o.meta().insert("in_channels".into(), "3".into());
    });
    assert_eq!(
        e,
        Error::TensorShape {
            param: ParamId::Enc {
                level: 0,
                conv: 1,
                bias: false
            },
            expected: shape(&[4, 3, 3, 3]),
            found: shape(&[4, 1, 3, 3]),
        }
    );
}

#[test]
fn wrong_dtype_is_named() {
    let e = err(|o| {
        let t = o.tensor("head.bias");
        let v: Vec<u8> =
            t.3.chunks_exact(4)
                .flat_map(|b| f64::from(f32::from_le_bytes(b.try_into().unwrap())).to_le_bytes())
                .collect();
        t.1 = Dtype::F64;
        t.3 = v;
    });
    assert_eq!(
        e,
        Error::TensorDType {
            param: ParamId::Head { bias: true },
            found: DType::Other
        }
    );
    let e = err(|o| o.tensor("enc.1.conv2.bias").1 = Dtype::I32);
    assert_eq!(
        e,
        Error::TensorDType {
            param: ParamId::Enc {
                level: 1,
                conv: 2,
                bias: true
            },
            found: DType::Other
        }
    );
}

#[test]
fn extra_tensor_is_located() {
    for name in ["enc.3.conv1.weight", "extra"] {
        let (bytes, r) = load_edited(|o| {
            o.tensors
                .push((name.to_string(), Dtype::F32, vec![2], vec![0; 8]));
        });
        let Err(Error::UnexpectedTensor { offset }) = r else {
            panic!("extra tensor {name}: got {r:?}");
        };
        // The offset locates the extra tensor's name: its opening quote, as a file offset.
        let quoted = format!("\"{name}\"");
        assert!(
            bytes[offset..].starts_with(quoted.as_bytes()),
            "offset {offset} points at {:?}, not at {quoted}",
            String::from_utf8_lossy(&bytes[offset..(offset + 24).min(bytes.len())])
        );
    }
    // Fewer levels declared than stored: every needed tensor is there, the deeper ones are extra.
    let (_, r) = load_edited(|o| {
        o.meta().insert("levels".into(), "2".into());
    });
    assert!(matches!(r, Err(Error::UnexpectedTensor { .. })), "{r:?}");
}

#[test]
fn missing_metadata_is_named() {
    for key in [
        "format",
        "format_version",
        "in_channels",
        "num_classes",
        "base_channels",
        "levels",
        "padding",
    ] {
        let e = err(|o| {
            o.meta().remove(key);
        });
        assert_eq!(e, Error::MissingMetadata { key }, "removing {key}");
    }
    let e = err(|o| o.meta = None);
    assert_eq!(e, Error::MissingMetadata { key: "format" });
}

#[test]
fn bad_metadata_is_named() {
    for (key, value) in [
        ("format", "onnx"),
        ("padding", "full"),
        ("levels", "9"),
        ("levels", "three"),
        ("num_classes", "0"),
        ("normalization", "zscore"),
    ] {
        let e = err(|o| {
            o.meta().insert(key.into(), value.into());
        });
        assert!(
            matches!(e, Error::BadMetadata { key: k, .. } if k == key),
            "{key}={value}: got {e:?}"
        );
    }
}

#[test]
fn newer_format_version_is_refused() {
    let e = err(|o| {
        o.meta().insert("format_version".into(), "2".into());
    });
    assert_eq!(
        e,
        Error::UnsupportedVersion {
            found: 2,
            supported: 1
        }
    );
    assert!(e.to_string().contains("version 2"), "{e}");
    let e = err(|o| {
        o.meta().insert("format_version".into(), "0".into());
    });
    assert_eq!(
        e,
        Error::UnsupportedVersion {
            found: 0,
            supported: 1
        }
    );
}
