//! Times every 3×3 convolution of a preset network's tile on its own (synthetic weights and
//! input, the layer's real shape), to see which layers the whole-tile time goes to.
//!
//! ```text
//! cargo run --release -p unet-core --features rayon --example bench_layers -- base16 5
//! THREADS=2 CONV=direct cargo run --release -p unet-core --features rayon --example bench_layers -- paper 3
//! ```
//!
//! Prints, per layer: channels, output side, the median of the runs in ms, the effective
//! GFLOP/s (the direct convolution's `2·C_out·C_in·9` flops per output pixel) and the layer's
//! share of the sum. `LAYER=i` runs layer `i` only (e.g. under `perf record`); `OP=pool` /
//! `OP=up` time the max-pools / up-convolutions instead. Valid padding, 572² input tile (`TILE=n` for another size); the decoder's first convolution reads one
//! map of `C_in` channels (the concatenation's two parts cost the same).

use std::time::Instant;

use unet_core::conv::{ConvInput, Map, MapMut};
use unet_core::gemm::Kernel;
use unet_core::winograd::{self, ConvAlgo};
use unet_core::{DType, Executor, Padding, Shape, TensorView};

/// `(c_in, c_out, output side)` of every 3×3 convolution of a `levels`-level U-Net with `base`
/// channels at the top, valid padding, on a `tile`² input.
fn layers(levels: usize, base: usize, tile: usize) -> Vec<(usize, usize, usize)> {
    let mut v = Vec::new();
    let (mut side, mut c) = (tile, 1);
    let mut skips = Vec::new();
    for l in 0..levels {
        let co = base << l;
        v.push((c, co, side - 2));
        v.push((co, co, side - 4));
        side -= 4;
        c = co;
        if l + 1 < levels {
            skips.push(side);
            side /= 2;
        }
    }
    for _ in 1..levels {
        side *= 2;
        let co = c / 2;
        skips.pop();
        v.push((c, co, side - 2));
        v.push((co, co, side - 4));
        side -= 4;
        c = co;
    }
    v
}

fn executor(threads: usize) -> Box<dyn Executor> {
    #[cfg(feature = "rayon")]
    if threads > 1 {
        return Box::new(unet_core::exec::RayonExecutor::new(threads).expect("thread pool"));
    }
    assert!(threads <= 1, "more than one thread needs --features rayon");
    Box::new(unet_core::Sequential)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let preset = args.get(1).map(String::as_str).unwrap_or("base16");
    let runs: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(5);
    let (levels, base) = match preset {
        "paper" => (5, 64),
        "base16" => (5, 16),
        other => panic!("unknown preset {other} (paper, base16)"),
    };
    let threads: usize = std::env::var("THREADS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let algo = match std::env::var("CONV").as_deref() {
        Ok("direct") => ConvAlgo::Direct,
        Ok("winograd") => ConvAlgo::Winograd,
        _ => ConvAlgo::Auto,
    };
    let exec = executor(threads);
    let kernel = Kernel::best();
    match std::env::var("OP").as_deref() {
        Ok("pool") => return pools(levels, base, &*exec, runs),
        Ok("up") => return ups(levels, base, &*exec, runs),
        _ => {}
    }
    // `LAYER=i`: only layer `i` (0-based, in the order printed), e.g. to profile it.
    let only: Option<usize> = std::env::var("LAYER").ok().and_then(|s| s.parse().ok());
    // `TILE=n`: an `n × n` input tile instead of the paper's 572² (valid sizes only).
    let tile: usize = std::env::var("TILE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(572);
    let mut rows = Vec::new();
    for (i, (cin, cout, o)) in layers(levels, base, tile).into_iter().enumerate() {
        if only.is_some_and(|l| l != i) {
            continue;
        }
        let side = o + 2;
        let x: Vec<f32> = (0..cin * side * side)
            .map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5)
            .collect();
        let wb: Vec<u8> = (0..cout * cin * 9)
            .flat_map(|i| ((((i * 31) % 997) as f32 / 997.0 - 0.5) * 0.1).to_le_bytes())
            .collect();
        let bb: Vec<u8> = (0..cout)
            .flat_map(|i| (i as f32 * 0.01).to_le_bytes())
            .collect();
        let wv = TensorView::new(DType::F32, Shape::new(&[cout, cin, 3, 3]).unwrap(), &wb).unwrap();
        let bv = TensorView::new(DType::F32, Shape::new(&[cout]).unwrap(), &bb).unwrap();
        let input = ConvInput::single(Map {
            data: &x,
            c: cin,
            h: side,
            w: side,
        });
        let mut out = vec![0.0f32; cout * o * o];
        let mut work = vec![0.0f32; winograd::conv3x3_scratch_len(algo, cout, cin, o, o, threads)];
        let ms = median_ms(runs, || {
            let dst = MapMut {
                data: &mut out,
                c: cout,
                h: o,
                w: o,
            };
            winograd::conv3x3_by(
                algo,
                kernel,
                &*exec,
                &wv,
                &bv,
                &input,
                Padding::Valid,
                true,
                dst,
                &mut work,
            )
            .expect("conv");
        });
        let gflop = 2.0 * (cout * cin * 9 * o * o) as f64 / 1e9;
        let wino = algo.uses_winograd(cout, cin, o, o);
        rows.push((cin, cout, o, ms, gflop, wino));
    }
    let total: f64 = rows.iter().map(|r| r.3).sum();
    println!(
        "{preset}: 3x3 convolutions, {threads} thread(s), kernel {kernel:?}, median of {runs} runs"
    );
    println!(
        "{:>6} {:>6} {:>5} {:>9} {:>8} {:>7} {:>6}",
        "c_in", "c_out", "out", "ms", "GFLOP/s", "share", "algo"
    );
    for (cin, cout, o, ms, gflop, wino) in &rows {
        println!(
            "{cin:>6} {cout:>6} {o:>5} {ms:>9.2} {:>8.1} {:>6.1}% {:>6}",
            gflop / ms * 1e3,
            100.0 * ms / total,
            if *wino { "wino" } else { "direct" }
        );
    }
    println!("sum {total:.1} ms");
}

/// `OP=pool`: times the 2×2 max-pooling of every encoder level's output (the skip map) of a
/// 572² tile, and prints ms and GB/s (bytes read and written).
fn pools(levels: usize, base: usize, exec: &dyn Executor, runs: usize) {
    let (mut side, mut c) = (572usize, base);
    println!(
        "max-pool 2x2, {} worker(s), median of {runs} runs",
        exec.workers()
    );
    println!("{:>6} {:>5} {:>9} {:>7}", "c", "in", "ms", "GB/s");
    for _ in 0..levels - 1 {
        side -= 4;
        let x: Vec<f32> = (0..c * side * side)
            .map(|i| ((i * 7919) % 1000) as f32)
            .collect();
        let half = side / 2;
        let mut out = vec![0.0f32; c * half * half];
        let ms = median_ms(runs, || {
            let input = Map {
                data: &x,
                c,
                h: side,
                w: side,
            };
            let dst = MapMut {
                data: &mut out,
                c,
                h: half,
                w: half,
            };
            unet_core::conv::maxpool2x2_exec(exec, input, dst);
        });
        let bytes = 4.0 * (x.len() + out.len()) as f64;
        println!("{c:>6} {side:>5} {ms:>9.2} {:>7.1}", bytes / ms / 1e6);
        side = half;
        c *= 2;
    }
}

/// `OP=up`: times every decoder level's 2×2 transposed convolution of a 572² tile (synthetic
/// weights; the input side follows the valid-padding geometry) and prints ms and GB/s (bytes
/// of the input and output maps).
fn ups(levels: usize, base: usize, exec: &dyn Executor, runs: usize) {
    // Output side of the bottom level, then each decoder level's input side.
    let mut side = 572usize;
    for l in 0..levels {
        side -= 4;
        if l + 1 < levels {
            side /= 2;
        }
    }
    let mut c = base << (levels - 1);
    println!(
        "up-convolution 2x2, {} worker(s), median of {runs} runs",
        exec.workers()
    );
    println!(
        "{:>6} {:>6} {:>5} {:>9} {:>7}",
        "c_in", "c_out", "in", "ms", "GB/s"
    );
    for _ in 1..levels {
        let co = c / 2;
        let x: Vec<f32> = (0..c * side * side)
            .map(|i| ((i * 7919) % 1000) as f32 / 1000.0)
            .collect();
        let wb: Vec<u8> = (0..c * co * 4)
            .flat_map(|i| (((i * 31) % 997) as f32 / 997.0 - 0.5).to_le_bytes())
            .collect();
        let bb: Vec<u8> = (0..co).flat_map(|i| (i as f32).to_le_bytes()).collect();
        let wv = TensorView::new(DType::F32, Shape::new(&[c, co, 2, 2]).unwrap(), &wb).unwrap();
        let bv = TensorView::new(DType::F32, Shape::new(&[co]).unwrap(), &bb).unwrap();
        let mut out = vec![0.0f32; co * 4 * side * side];
        let mut pack =
            vec![0.0f32; unet_core::conv::up2x2_pack_len(co, c, side, side) * exec.workers()];
        let ms = median_ms(runs, || {
            let input = Map {
                data: &x,
                c,
                h: side,
                w: side,
            };
            let dst = MapMut {
                data: &mut out,
                c: co,
                h: 2 * side,
                w: 2 * side,
            };
            unet_core::conv::up2x2_exec(Kernel::best(), exec, &wv, &bv, input, dst, &mut pack)
                .expect("up2x2");
        });
        let bytes = 4.0 * (x.len() + out.len()) as f64;
        println!(
            "{c:>6} {co:>6} {side:>5} {ms:>9.2} {:>7.1}",
            bytes / ms / 1e6
        );
        side = 2 * side - 4;
        c = co;
    }
}

/// The median wall time (ms) of `runs` calls of `f`, after one untimed warm-up call.
fn median_ms(runs: usize, mut f: impl FnMut()) -> f64 {
    f();
    let mut times: Vec<f64> = (0..runs.max(1))
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}
