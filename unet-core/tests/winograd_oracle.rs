//! Winograd F(4×4, 3×3) (`unet_core::winograd`) against a naive direct convolution written here
//! (f64 accumulation), for every micro-kernel available, on random and exhaustive small shapes:
//! odd and even sizes, sizes that are not multiples of the tile, channel counts that are not
//! multiples of any kernel's MR, valid and same padding, a cropped two-part input, small
//! blockings that exercise every blocking path (several tile blocks, several output-channel
//! blocks, filter transform recomputed).
//!
//! Tolerance: `|out − ref| ≤ TOL · (|b| + Σ|w|·|x|)` per element. Winograd's transforms multiply
//! inputs by up to 5 and weights by up to 1 (G's rows sum to ≤ 1 in magnitude) before the
//! products and the output transform multiplies by up to 8, so its f32 rounding error is larger
//! than the direct convolution's (1e-5 there, conv_oracle.rs); measured worst cases on random
//! data are printed by `winograd_error_vs_channels` (run with `--nocapture`). NaN: where the
//! reference is NaN the result must be NaN too (Winograd may spread it over the rest of a 4×4
//! tile, see the module docs).

// unet-core's `Error` is large on purpose (`Copy`, heap-free; see its lib.rs).
#![allow(clippy::result_large_err)]

mod conv_reference;

use conv_reference::{naive_conv, values};
use proptest::prelude::*;
use std::sync::atomic::{AtomicUsize, Ordering};
use unet_core::conv::{ConvInput, Map, MapMut, Part};
use unet_core::gemm::Kernel;

use unet_core::winograd::{self, Blocking, ConvAlgo, SplitBy, Spread};
use unet_core::Executor;
use unet_core::{DType, Padding, Shape, TensorView};

/// Tolerance relative to `|b| + Σ|w·x|` (see the module docs).
const TOL: f64 = 1e-4;

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn view<'a>(bytes: &'a [u8], dims: &[usize]) -> TensorView<'a> {
    TensorView::new(DType::F32, Shape::new(dims).unwrap(), bytes).unwrap()
}

/// Largest `|got − want| / scale` (NaN checked: NaN wanted ⇒ NaN got; a finite want must not
/// give NaN).
fn worst(got: &[f32], want: &[f64], scale: &[f64], what: &str) -> f64 {
    assert_eq!(got.len(), want.len());
    let mut m = 0.0f64;
    for (i, ((&g, &w), &s)) in got.iter().zip(want).zip(scale).enumerate() {
        if w.is_nan() {
            assert!(g.is_nan(), "{what}: [{i}] = {g}, want NaN");
        } else if !g.is_nan() {
            m = m.max((g as f64 - w).abs() / (s + 1e-30));
        }
    }
    m
}

/// One case: input = [crop(skip) at (oy, ox), up] (or only the cropped first part when
/// `c2 == 0`), window `h × w`; checked with every kernel, the automatic blocking and `small`.
#[allow(clippy::too_many_arguments)]
fn case(
    c1: usize,
    c2: usize,
    h: usize,
    w: usize,
    oy: usize,
    ox: usize,
    cout: usize,
    same: bool,
    relu: bool,
    nan: Option<usize>,
    small: Blocking,
    seed: u64,
) {
    let (sh, sw) = (h + oy + 1, w + ox + 2);
    let mut skip = values(c1 * sh * sw, seed);
    let up = values(c2 * h * w, seed ^ 1);
    if let Some(at) = nan {
        let at = at % skip.len();
        skip[at] = f32::NAN;
    }
    let cin = c1 + c2;
    let wvals = values(cout * cin * 9, seed ^ 2);
    let bvals = values(cout, seed ^ 3);
    let (wbytes, bbytes) = (f32_bytes(&wvals), f32_bytes(&bvals));
    let wv = view(&wbytes, &[cout, cin, 3, 3]);
    let bv = view(&bbytes, &[cout]);
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
    for kernel in Kernel::available() {
        let auto = winograd::blocking(cout, cin, oh, ow);
        let mut first: Option<Vec<f32>> = None;
        for bl in [auto, small] {
            let len = winograd::work_len_blocked(bl, cin);
            let mut work = vec![f32::NAN; len];
            let mut out = vec![f32::NAN; cout * oh * ow];
            let o = MapMut {
                data: &mut out,
                c: cout,
                h: oh,
                w: ow,
            };
            winograd::conv3x3_winograd_blocked(
                kernel, bl, &wv, &bv, &input, padding, relu, o, &mut work,
            )
            .unwrap();
            let what = format!(
                "{} winograd c1={c1} c2={c2} {h}x{w} crop=({oy},{ox}) cout={cout} same={same} \
                 relu={relu} {bl:?}",
                kernel.name()
            );
            let e = worst(&out, &want, &scale, &what);
            assert!(e <= TOL, "{what}: relative error {e:e} > {TOL:e}");
            if nan.is_none() {
                assert!(out.iter().all(|v| v.is_finite()), "{what}: non-finite");
            }
            first.get_or_insert(out);
        }
        // Every way of sharing the work between 2 or 3 threads gives the same bits.
        let first = first.unwrap();
        for sp in spreads(cout, cin, oh, ow, small) {
            let exec = Threads(sp.workers);
            let mut work = vec![f32::NAN; winograd::work_len_spread(&sp, cout, cin)];
            let mut out = vec![f32::NAN; cout * oh * ow];
            let o = MapMut {
                data: &mut out,
                c: cout,
                h: oh,
                w: ow,
            };
            winograd::conv3x3_winograd_spread(
                kernel, &exec, sp, &wv, &bv, &input, padding, relu, o, &mut work,
            )
            .unwrap();
            let same_bits = out
                .iter()
                .zip(&first)
                .all(|(a, b)| a.to_bits() == b.to_bits());
            assert!(
                same_bits,
                "{} c1={c1} c2={c2} {h}x{w} cout={cout} {sp:?}: not the bits of one worker",
                kernel.name()
            );
        }
    }
    // The dispatching entry point with Winograd forced, best kernel, its own scratch length.
    let len = winograd::conv3x3_scratch_len(ConvAlgo::Winograd, cout, cin, oh, ow, 1);
    let mut work = vec![f32::NAN; len];
    let mut out = vec![f32::NAN; cout * oh * ow];
    let o = MapMut {
        data: &mut out,
        c: cout,
        h: oh,
        w: ow,
    };
    winograd::conv3x3_by(
        ConvAlgo::Winograd,
        Kernel::best(),
        &unet_core::Sequential,
        &wv,
        &bv,
        &input,
        padding,
        relu,
        o,
        &mut work,
    )
    .unwrap();
    let e = worst(&out, &want, &scale, "conv3x3_by(Winograd)");
    assert!(e <= TOL, "conv3x3_by: {e:e}");
}

/// The automatic spreads for 2 and 3 workers and, for 2, every split forced with the blocks of
/// `small`.
fn spreads(cout: usize, cin: usize, oh: usize, ow: usize, small: Blocking) -> Vec<Spread> {
    let mut all = vec![
        winograd::spread(cout, cin, oh, ow, 2),
        winograd::spread(cout, cin, oh, ow, 3),
    ];
    for by in [SplitBy::Tiles, SplitBy::Channels] {
        for u_once in [false, true] {
            // `U` once with blocks of tiles needs every row in one block.
            let rows = if u_once && by == SplitBy::Tiles {
                cout
            } else {
                small.rows
            };
            all.push(Spread {
                bl: blk(rows, small.tiles),
                u_once,
                by,
                workers: 2,
            });
        }
    }
    all
}

/// An executor on `n` scoped threads, each pulling job numbers from a shared counter (the
/// `Executor` contract: worker index = thread number, each job once, all done on return).
struct Threads(usize);

// SAFETY: worker `w` is thread `w` alone; `fetch_add` hands out each job once; the scope joins
// every thread before `run` returns.
unsafe impl Executor for Threads {
    fn workers(&self) -> usize {
        self.0
    }
    fn run(&self, jobs: usize, job: &(dyn Fn(usize, usize) + Sync)) {
        let next = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for w in 0..self.0 {
                let next = &next;
                s.spawn(move || loop {
                    let j = next.fetch_add(1, Ordering::Relaxed);
                    if j >= jobs {
                        break;
                    }
                    job(j, w);
                });
            }
        });
    }
}

fn blk(rows: usize, tiles: usize) -> Blocking {
    Blocking { rows, tiles }
}

#[test]
fn exhaustive_small_sizes() {
    // Every output size 1..=10 in both directions (edge tiles of 1, 2, 3 and 4 pixels), both
    // paddings; channels 1 and 3, 7 output channels (not a multiple of any MR).
    let mut seed = 100;
    for same in [false, true] {
        for oh in 1..=10 {
            for ow in 1..=10 {
                let (h, w) = if same { (oh, ow) } else { (oh + 2, ow + 2) };
                seed += 1;
                case(
                    3,
                    0,
                    h,
                    w,
                    0,
                    0,
                    7,
                    same,
                    seed % 2 == 0,
                    None,
                    blk(5, 3),
                    seed,
                );
            }
        }
    }
}

#[test]
fn crosses_every_block() {
    // Two cropped parts, K = 40 channels, 75 output channels, 38×41 output: 10×11 = 110 tiles.
    case(24, 16, 40, 43, 2, 1, 75, false, true, None, blk(24, 32), 7);
    case(24, 16, 38, 41, 0, 2, 75, true, false, None, blk(30, 17), 8);
    // Sizes past one GEMM block: K = 300 > KC, M = 80 > MC.
    case(300, 0, 14, 13, 0, 0, 80, true, true, None, blk(80, 200), 9);
}

#[test]
fn micro_tile_products_give_the_gemm_bits() {
    // K = 16 fits one GEMM block: blocks whose `M` holds 36 micro-tiles run the products and the
    // output transform a micro-tile at a time (the automatic blocking here, 15 × 16 = 240
    // tiles), blocks of 8 rows × 16 tiles (`M` too small) through the GEMM into `M`; every
    // split of `spreads` must give the bits of the first. 22 output channels: a partial panel.
    case(10, 6, 62, 66, 1, 2, 22, true, true, None, blk(8, 16), 11);
    case(16, 0, 30, 35, 0, 0, 16, false, false, None, blk(8, 16), 12);
    // Blocks of 22 rows × 16 tiles: `M` holds one channel panel's products at a time (the
    // automatic blocking's hold all three panels at once).
    case(10, 6, 62, 66, 1, 2, 22, true, true, None, blk(22, 16), 13);
}

#[test]
fn nan_reaches_at_least_the_direct_footprint() {
    case(4, 2, 13, 11, 1, 0, 9, false, true, Some(77), blk(6, 4), 21);
    case(4, 2, 13, 11, 0, 1, 9, true, false, Some(400), blk(6, 4), 22);
}

#[test]
fn every_size_error_is_refused() {
    let wbytes = f32_bytes(&values(2 * 3 * 9, 1));
    let bbytes = f32_bytes(&values(2, 2));
    let wv = view(&wbytes, &[2, 3, 3, 3]);
    let bv = view(&bbytes, &[2]);
    let x = values(3 * 6 * 6, 3);
    let input = ConvInput::single(Map {
        data: &x,
        c: 3,
        h: 6,
        w: 6,
    });
    let len = winograd::work_len(2, 3, 4, 4);
    let mut work = vec![0.0; len];
    let mut out = vec![7.0f32; 2 * 4 * 4];
    let k = Kernel::portable();
    let run = |out: &mut [f32], work: &mut [f32], oh: usize, pad: Padding| {
        let o = MapMut {
            data: out,
            c: 2,
            h: oh,
            w: 4,
        };
        winograd::conv3x3_winograd_with(k, &wv, &bv, &input, pad, true, o, work)
    };
    assert!(run(&mut out, &mut work, 5, Padding::Valid).is_err());
    assert!(run(&mut out, &mut work, 4, Padding::Same).is_err());
    assert!(run(&mut out, &mut work[..len - 1], 4, Padding::Valid).is_err());
    assert!(run(&mut out[..31], &mut work, 4, Padding::Valid).is_err());
    assert!(out.iter().all(|&v| v == 7.0), "nothing written on error");
    let o = MapMut {
        data: &mut out,
        c: 2,
        h: 4,
        w: 4,
    };
    let err = winograd::conv3x3_winograd_blocked(
        k,
        blk(0, 1),
        &wv,
        &bv,
        &input,
        Padding::Valid,
        true,
        o,
        &mut work,
    );
    assert!(err.is_err());
    run(&mut out, &mut work, 4, Padding::Valid).unwrap();
}

/// Winograd vs direct vs the f64 oracle as the channel count grows (the bound quoted in the
/// module docs of `winograd`): prints max |error| / max |reference| of both paths.
#[test]
fn winograd_error_vs_channels() {
    for &cin in &[16usize, 64, 256] {
        let (h, w, cout) = (14, 14, 8);
        let x = values(cin * h * w, cin as u64);
        // He-like weights: uniform(−1, 1) · sqrt(6 / (9·cin)) keeps outputs O(1).
        let s = (6.0 / (9.0 * cin as f32)).sqrt();
        let wvals: Vec<f32> = values(cout * cin * 9, 5).iter().map(|v| v * s).collect();
        let bvals = values(cout, 6);
        let (wb, bb) = (f32_bytes(&wvals), f32_bytes(&bvals));
        let (wv, bv) = (view(&wb, &[cout, cin, 3, 3]), view(&bb, &[cout]));
        let (want, scale, oh, ow) = naive_conv(&x, cin, h, w, &wvals, &bvals, cout, 1, false);
        let input = ConvInput::single(Map {
            data: &x,
            c: cin,
            h,
            w,
        });
        let peak = want.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        let mut errs = [0.0f64; 2];
        for (e, algo) in errs.iter_mut().zip([ConvAlgo::Direct, ConvAlgo::Winograd]) {
            let mut work = vec![0.0; winograd::conv3x3_scratch_len(algo, cout, cin, oh, ow, 1)];
            let mut out = vec![0.0f32; cout * oh * ow];
            let o = MapMut {
                data: &mut out,
                c: cout,
                h: oh,
                w: ow,
            };
            winograd::conv3x3_by(
                algo,
                Kernel::best(),
                &unet_core::Sequential,
                &wv,
                &bv,
                &input,
                Padding::Same,
                false,
                o,
                &mut work,
            )
            .unwrap();
            *e = out
                .iter()
                .zip(&want)
                .fold(0.0f64, |m, (&g, &w)| m.max((g as f64 - w).abs()))
                / peak;
            assert!(worst(&out, &want, &scale, "vs channels") <= TOL);
        }
        println!(
            "c_in {cin:4}: max|err|/max|ref| direct {:.2e}, winograd {:.2e}",
            errs[0], errs[1]
        );
        assert!(errs[1] < 1e-4, "winograd relative error {:e}", errs[1]);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn random_shapes(
        c1 in 1usize..9, c2 in 0usize..6, h in 3usize..23, w in 3usize..23,
        oy in 0usize..3, ox in 0usize..3, cout in 1usize..20,
        same in any::<bool>(), relu in any::<bool>(),
        nan in proptest::option::weighted(0.1, 0usize..10_000),
        rows in 1usize..20, tiles in 1usize..40, seed in any::<u64>(),
    ) {
        case(c1, c2, h, w, oy, ox, cout, same, relu, nan, blk(rows, tiles), seed);
    }
}
