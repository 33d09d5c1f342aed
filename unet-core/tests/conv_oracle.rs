//! The layers of `unet_core::conv` against naive direct implementations written here
//! (f64 accumulation, independent of the GEMM), for every micro-kernel available.
//!
//! Tolerance for the convolutions: `|out − ref| ≤ 1e-5 · (|b| + Σ|w|·|x|)` per element (f32
//! sums in a different order vs an f64 sum; see gemm_oracle.rs). NaN must appear exactly where
//! the reference has NaN. Max-pool must match exactly (it does no arithmetic).

mod conv_reference;

use conv_reference::{naive_conv, values};
use proptest::prelude::*;
use unet_core::conv::{self, ConvInput, Map, MapMut, Part};
use unet_core::gemm::Kernel;
use unet_core::{DType, Padding, Shape, TensorView};

/// Stores `vals` in `dtype`; returns the bytes and the stored values upcast to f32.
fn encode(vals: &[f32], dtype: DType) -> (Vec<u8>, Vec<f32>) {
    let mut bytes = Vec::new();
    let mut stored = Vec::new();
    for &v in vals {
        let s = match dtype {
            DType::F32 => {
                bytes.extend_from_slice(&v.to_le_bytes());
                v
            }
            DType::F16 => {
                let h = half::f16::from_f32(v);
                bytes.extend_from_slice(&h.to_bits().to_le_bytes());
                h.to_f32()
            }
            _ => {
                let h = half::bf16::from_f32(v);
                bytes.extend_from_slice(&h.to_bits().to_le_bytes());
                h.to_f32()
            }
        };
        stored.push(s);
    }
    (bytes, stored)
}

fn view<'a>(bytes: &'a [u8], dtype: DType, dims: &[usize]) -> TensorView<'a> {
    TensorView::new(dtype, Shape::new(dims).unwrap(), bytes).unwrap()
}

fn dtype_of(i: u8) -> DType {
    [DType::F32, DType::F16, DType::BF16][i as usize % 3]
}

fn assert_close(got: &[f32], want: &[f64], scale: &[f64], what: &str) {
    assert_eq!(got.len(), want.len());
    for (i, ((&g, &w), &s)) in got.iter().zip(want).zip(scale).enumerate() {
        if w.is_nan() {
            assert!(g.is_nan(), "{what}: [{i}] = {g}, want NaN");
        } else {
            assert!(
                (g as f64 - w).abs() <= 1e-5 * s + 1e-30,
                "{what}: [{i}] = {g}, want {w} (scale {s})"
            );
        }
    }
}

/// One conv case: input = [crop(skip) at (oy, ox), up] (or only the cropped first part when
/// `c2 == 0`), window `h × w`.
#[allow(clippy::too_many_arguments)]
fn conv_case(
    c1: usize,
    c2: usize,
    h: usize,
    w: usize,
    oy: usize,
    ox: usize,
    extra: usize,
    cout: usize,
    same: bool,
    relu: bool,
    dtype: DType,
    nan: Option<usize>,
    seed: u64,
) {
    let (sh, sw) = (h + oy + extra, w + ox + extra);
    let mut skip = values(c1 * sh * sw, seed);
    let up = values(c2 * h * w, seed ^ 1);
    if let Some(at) = nan {
        let at = at % skip.len();
        skip[at] = f32::NAN;
    }
    let cin = c1 + c2;
    let (wbytes, wvals) = encode(&values(cout * cin * 9, seed ^ 2), dtype);
    let (bbytes, bvals) = encode(&values(cout, seed ^ 3), dtype);
    let wv = view(&wbytes, dtype, &[cout, cin, 3, 3]);
    let bv = view(&bbytes, dtype, &[cout]);

    // The dense concatenated input for the oracle.
    let mut dense = Vec::with_capacity(cin * h * w);
    for c in 0..c1 {
        for y in 0..h {
            for x in 0..w {
                dense.push(skip[(c * sh + y + oy) * sw + x + ox]);
            }
        }
    }
    dense.extend_from_slice(&up);
    let pad = usize::from(same);
    let (want, scale, oh, ow) = naive_conv(&dense, cin, h, w, &wvals, &bvals, cout, pad, relu);

    let input = ConvInput {
        parts: [
            Some(Part {
                map: Map {
                    data: &skip,
                    c: c1,
                    h: sh,
                    w: sw,
                },
                off_y: oy,
                off_x: ox,
            }),
            (c2 > 0).then_some(Part {
                map: Map {
                    data: &up,
                    c: c2,
                    h,
                    w,
                },
                off_y: 0,
                off_x: 0,
            }),
        ],
        h,
        w,
    };
    let padding = if same { Padding::Same } else { Padding::Valid };
    let pack_len = conv::conv3x3_pack_len(cout, cin, oh, ow);
    for kernel in Kernel::available() {
        let mut out = vec![f32::NAN; cout * oh * ow];
        let mut pack = vec![f32::NAN; pack_len];
        let o = MapMut {
            data: &mut out,
            c: cout,
            h: oh,
            w: ow,
        };
        conv::conv3x3_with(kernel, &wv, &bv, &input, padding, relu, o, &mut pack).unwrap();
        let what = format!("{} conv c1={c1} c2={c2} {h}x{w} crop=({oy},{ox}) cout={cout} same={same} relu={relu} {dtype}", kernel.name());
        assert_close(&out, &want, &scale, &what);
    }
    // The default entry point (best kernel) too.
    let mut out = vec![f32::NAN; cout * oh * ow];
    let mut pack = vec![f32::NAN; pack_len];
    conv::conv3x3(
        &wv,
        &bv,
        &input,
        padding,
        relu,
        MapMut {
            data: &mut out,
            c: cout,
            h: oh,
            w: ow,
        },
        &mut pack,
    );
    assert_close(&out, &want, &scale, "conv3x3 (best kernel)");
}

#[test]
fn single_channel_input_rows_in_chunks() {
    // One input channel (the first layer's path with the AVX-512 kernel): rows of 75 and 66
    // output pixels cross the 32-pixel chunks and end in a partial one; both paddings, a
    // cropped window, 16 and 64 output channels (two and eight groups), f16 weights, a NaN;
    // 65 channels take the GEMM path.
    conv_case(1, 0, 9, 75, 1, 2, 1, 16, true, true, DType::F32, None, 31);
    conv_case(1, 0, 6, 66, 0, 0, 0, 64, false, false, DType::F16, None, 32);
    let nan = Some(77);
    conv_case(1, 0, 5, 40, 2, 0, 1, 9, false, true, DType::F32, nan, 33);
    conv_case(1, 0, 4, 33, 0, 1, 0, 65, true, false, DType::F32, None, 34);
}

#[test]
fn single_channel_input_gives_the_gemm_bits() {
    // The AVX-512 kernel convolves a single-channel input straight from its rows; the others
    // through im2col + GEMM. The fused-multiply-add kernels (AVX2, AVX-512) must give the same
    // bits (a C harness compares logits computed under valgrind, which has no AVX-512, with
    // native ones); the portable kernel multiplies and adds separately.
    for (h, w, same, relu, cout) in [(9, 75, true, true, 16), (6, 66, false, false, 64)] {
        let input_vals = values(h * w, 41);
        let (wbytes, _) = encode(&values(cout * 9, 42), DType::F32);
        let (bbytes, _) = encode(&values(cout, 43), DType::F32);
        let wv = view(&wbytes, DType::F32, &[cout, 1, 3, 3]);
        let bv = view(&bbytes, DType::F32, &[cout]);
        let input = ConvInput::single(Map {
            data: &input_vals,
            c: 1,
            h,
            w,
        });
        let (oh, ow) = if same { (h, w) } else { (h - 2, w - 2) };
        let padding = if same { Padding::Same } else { Padding::Valid };
        let mut first: Option<Vec<u32>> = None;
        for kernel in Kernel::available().filter(|k| k.name() != "portable") {
            let mut out = vec![f32::NAN; cout * oh * ow];
            let mut pack = vec![f32::NAN; conv::conv3x3_pack_len(cout, 1, oh, ow)];
            let o = MapMut {
                data: &mut out,
                c: cout,
                h: oh,
                w: ow,
            };
            conv::conv3x3_with(kernel, &wv, &bv, &input, padding, relu, o, &mut pack).unwrap();
            let bits: Vec<u32> = out.iter().map(|v| v.to_bits()).collect();
            let name = kernel.name();
            match &first {
                None => first = Some(bits),
                Some(f) => assert!(*f == bits, "{name}: not the bits of the first kernel"),
            }
        }
    }
}

#[test]
fn conv_big_crosses_every_block() {
    // K = 32·9 = 288 > KC, M = 75 > MC, N = 38·40 = 1520 > NC; two cropped parts.
    conv_case(
        16,
        16,
        38,
        40,
        3,
        2,
        1,
        75,
        true,
        true,
        DType::F32,
        None,
        11,
    );
    conv_case(
        16,
        16,
        40,
        42,
        0,
        4,
        0,
        75,
        false,
        false,
        DType::BF16,
        Some(777),
        12,
    );
}

#[test]
fn conv_tiny_shapes() {
    // 1-pixel outputs (valid on 3×3), 1-wide rows (each micro-panel spans many output rows).
    conv_case(1, 0, 3, 3, 0, 0, 0, 1, false, false, DType::F32, None, 1);
    conv_case(2, 1, 1, 1, 0, 0, 0, 3, true, true, DType::F16, None, 2);
    conv_case(3, 0, 20, 1, 1, 0, 0, 9, true, false, DType::F32, None, 3);
    conv_case(1, 2, 19, 3, 0, 1, 2, 7, false, true, DType::F32, None, 4);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn conv_random(
        c1 in 1usize..6, c2 in 0usize..6, h in 3usize..15, w in 3usize..15,
        oy in 0usize..3, ox in 0usize..3, extra in 0usize..3, cout in 1usize..20,
        same in any::<bool>(), relu in any::<bool>(), dt in 0u8..3,
        nan in proptest::option::weighted(0.2, 0usize..10_000), seed in any::<u64>(),
    ) {
        conv_case(c1, c2, h, w, oy, ox, extra, cout, same, relu, dtype_of(dt), nan, seed);
    }

    #[test]
    fn up_random(cin in 1usize..40, cout in 1usize..20, h in 1usize..10, w in 1usize..10, dt in 0u8..3, seed in any::<u64>()) {
        up_case(cin, cout, h, w, dtype_of(dt), seed);
    }

    #[test]
    fn pool_random(c in 1usize..5, oh in 1usize..9, ow in 1usize..9, nans in proptest::collection::vec(0usize..1000, 0..4), seed in any::<u64>()) {
        pool_case(c, oh, ow, &nans, seed);
    }
}

fn up_case(cin: usize, cout: usize, h: usize, w: usize, dtype: DType, seed: u64) {
    let x = values(cin * h * w, seed);
    let (wbytes, wvals) = encode(&values(cin * cout * 4, seed ^ 5), dtype);
    let (bbytes, bvals) = encode(&values(cout, seed ^ 6), dtype);
    let wv = view(&wbytes, dtype, &[cin, cout, 2, 2]);
    let bv = view(&bbytes, dtype, &[cout]);
    let (oh, ow) = (2 * h, 2 * w);
    let mut want = vec![0.0f64; cout * oh * ow];
    let mut scale = vec![0.0f64; cout * oh * ow];
    for co in 0..cout {
        for y in 0..h {
            for xx in 0..w {
                for i in 0..2 {
                    for j in 0..2 {
                        let mut acc = bvals[co] as f64;
                        let mut sc = acc.abs();
                        for ci in 0..cin {
                            let t = x[(ci * h + y) * w + xx] as f64
                                * wvals[((ci * cout + co) * 2 + i) * 2 + j] as f64;
                            acc += t;
                            sc += t.abs();
                        }
                        want[(co * oh + 2 * y + i) * ow + 2 * xx + j] = acc;
                        scale[(co * oh + 2 * y + i) * ow + 2 * xx + j] = sc;
                    }
                }
            }
        }
    }
    let pack_len = conv::up2x2_pack_len(cout, cin, h, w);
    for kernel in Kernel::available() {
        let mut out = vec![f32::NAN; cout * oh * ow];
        let mut pack = vec![f32::NAN; pack_len];
        let input = Map {
            data: &x,
            c: cin,
            h,
            w,
        };
        conv::up2x2_with(
            kernel,
            &wv,
            &bv,
            input,
            MapMut {
                data: &mut out,
                c: cout,
                h: oh,
                w: ow,
            },
            &mut pack,
        )
        .unwrap();
        assert_close(
            &out,
            &want,
            &scale,
            &format!("{} up cin={cin} cout={cout} {h}x{w} {dtype}", kernel.name()),
        );
    }
    let mut out = vec![f32::NAN; cout * oh * ow];
    let mut pack = vec![f32::NAN; pack_len];
    conv::up2x2(
        &wv,
        &bv,
        Map {
            data: &x,
            c: cin,
            h,
            w,
        },
        MapMut {
            data: &mut out,
            c: cout,
            h: oh,
            w: ow,
        },
        &mut pack,
    );
    assert_close(&out, &want, &scale, "up2x2 (best kernel)");
}

#[test]
fn up_crosses_k_blocks() {
    // K = C_in = 300 > KC, M = 4·20 = 80 > MC.
    up_case(300, 20, 7, 9, DType::F32, 21);
    up_case(300, 3, 1, 1, DType::F16, 22);
}

fn pool_case(c: usize, oh: usize, ow: usize, nans: &[usize], seed: u64) {
    let (h, w) = (2 * oh, 2 * ow);
    let mut x = values(c * h * w, seed);
    for &at in nans {
        let at = at % x.len();
        x[at] = f32::NAN;
    }
    let mut out = vec![0.0f32; c * oh * ow];
    conv::maxpool2x2(
        Map { data: &x, c, h, w },
        MapMut {
            data: &mut out,
            c,
            h: oh,
            w: ow,
        },
    );
    for ch in 0..c {
        for y in 0..oh {
            for xx in 0..ow {
                let win = [
                    x[(ch * h + 2 * y) * w + 2 * xx],
                    x[(ch * h + 2 * y) * w + 2 * xx + 1],
                    x[(ch * h + 2 * y + 1) * w + 2 * xx],
                    x[(ch * h + 2 * y + 1) * w + 2 * xx + 1],
                ];
                let got = out[(ch * oh + y) * ow + xx];
                if win.iter().any(|v| v.is_nan()) {
                    assert!(got.is_nan(), "pool ({ch},{y},{xx}): {got}, window has NaN");
                } else {
                    let m = win.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                    assert_eq!(got, m, "pool ({ch},{y},{xx})");
                }
            }
        }
    }
}

#[test]
fn pool_nan_in_each_window_position() {
    for at in 0..4 {
        let mut x = vec![1.0f32, 2.0, 3.0, 4.0];
        x[at] = f32::NAN;
        let mut out = [0.0f32];
        conv::maxpool2x2(
            Map {
                data: &x,
                c: 1,
                h: 2,
                w: 2,
            },
            MapMut {
                data: &mut out,
                c: 1,
                h: 1,
                w: 1,
            },
        );
        assert!(out[0].is_nan(), "NaN at {at} lost");
    }
    let x = [-1.0f32, f32::NEG_INFINITY, -3.0, -0.5];
    let mut out = [0.0f32];
    conv::maxpool2x2(
        Map {
            data: &x,
            c: 1,
            h: 2,
            w: 2,
        },
        MapMut {
            data: &mut out,
            c: 1,
            h: 1,
            w: 1,
        },
    );
    assert_eq!(out[0], -0.5);
}

#[test]
fn pack_len_is_exact_enough_and_out_of_contract_is_an_error() {
    let (cin, cout, h, w) = (3usize, 4usize, 6usize, 7usize);
    let x = values(cin * h * w, 1);
    let (wbytes, _) = encode(&values(cout * cin * 9, 2), DType::F32);
    let (bbytes, _) = encode(&values(cout, 3), DType::F32);
    let wv = view(&wbytes, DType::F32, &[cout, cin, 3, 3]);
    let bv = view(&bbytes, DType::F32, &[cout]);
    let input = ConvInput::single(Map {
        data: &x,
        c: cin,
        h,
        w,
    });
    let mut out = vec![0.0f32; cout * h * w];
    for kernel in Kernel::available() {
        let need = kernel.pack_len(cout, h * w, cin * 9);
        assert!(need <= conv::conv3x3_pack_len(cout, cin, h, w));
        let mut pack = vec![0.0f32; need];
        // One element short: refused, nothing written.
        let mut out2 = vec![7.0f32; cout * h * w];
        let r = conv::conv3x3_with(
            kernel,
            &wv,
            &bv,
            &input,
            Padding::Same,
            true,
            MapMut {
                data: &mut out2,
                c: cout,
                h,
                w,
            },
            &mut pack[..need - 1],
        );
        assert!(r.is_err());
        assert!(out2.iter().all(|&v| v == 7.0));
        // Exactly `need`: fine.
        conv::conv3x3_with(
            kernel,
            &wv,
            &bv,
            &input,
            Padding::Same,
            true,
            MapMut {
                data: &mut out,
                c: cout,
                h,
                w,
            },
            &mut pack,
        )
        .unwrap();
        // Wrong output size for the padding.
        let r = conv::conv3x3_with(
            kernel,
            &wv,
            &bv,
            &input,
            Padding::Valid,
            true,
            MapMut {
                data: &mut out,
                c: cout,
                h,
                w,
            },
            &mut pack,
        );
        assert!(r.is_err());
        // A crop window leaving its map.
        let bad = ConvInput {
            parts: [
                Some(Part {
                    map: Map {
                        data: &x,
                        c: cin,
                        h,
                        w,
                    },
                    off_y: 1,
                    off_x: 0,
                }),
                None,
            ],
            h,
            w,
        };
        let r = conv::conv3x3_with(
            kernel,
            &wv,
            &bv,
            &bad,
            Padding::Same,
            true,
            MapMut {
                data: &mut out,
                c: cout,
                h,
                w,
            },
            &mut pack,
        );
        assert!(r.is_err());
        // Weights of the wrong shape (C_in mismatch).
        let two = ConvInput {
            parts: [
                Some(Part {
                    map: Map {
                        data: &x,
                        c: cin,
                        h,
                        w,
                    },
                    off_y: 0,
                    off_x: 0,
                }),
                Some(Part {
                    map: Map {
                        data: &x,
                        c: cin,
                        h,
                        w,
                    },
                    off_y: 0,
                    off_x: 0,
                }),
            ],
            h,
            w,
        };
        let r = conv::conv3x3_with(
            kernel,
            &wv,
            &bv,
            &two,
            Padding::Same,
            true,
            MapMut {
                data: &mut out,
                c: cout,
                h,
                w,
            },
            &mut pack,
        );
        assert!(r.is_err());
    }
}
