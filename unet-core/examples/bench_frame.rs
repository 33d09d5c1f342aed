//! Times whole camera frames through `Model::segment` (normalise, overlap-tile, stitch) and
//! prints ms per frame, megapixels per second and the GFLOP/s of the tiles' forward passes.
//!
//! `cargo run --release -p unet-core --features rayon --example bench_frame -- \
//!     [paper|base16|small] [FRAME] [THREADS,..] [TILE|budget:MIB] [RUNS]`
//!
//! Defaults: `base16 2048 1,2 572 3`. The frame is a FRAME×FRAME u16 image (deterministic
//! pseudo-random counts), normalised by percentiles (1, 99.8) as a microscope model would be;
//! output is a u8 label map. Models (random weights from `unet_core::synth`, which does not
//! change the work):
//! - `paper`: 5 levels, 64 base channels, valid (the paper's network, 572² → 388² tiles);
//! - `base16`: 5 levels, 16 base channels, valid;
//! - `small`: 3 levels, 4 base channels, valid;
//! - `overhead`: 1 level, 1 base channel: almost no network, so the time is that of the frame
//!   machinery (percentile histogram, mirrored gather + normalisation, stitching).
//!
//! TILE is the tile input size (legal for the model) or `budget:MIB`, the whole scratch budget
//! in MiB (the planner picks the largest tile that fits). Performance figures come from this
//! harness only; no test asserts timings.

use std::time::Instant;

use unet_core::exec::RayonExecutor;
use unet_core::frame::{channel_affine, statistics_scratch_len};
use unet_core::{
    synth, Config, DType, FrameInput, FrameOptions, FrameOutput, FrameView, Model, Padding,
    SampleType, TileChoice,
};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let which = args.get(1).map(String::as_str).unwrap_or("base16");
    let frame: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(2048);
    let threads: Vec<usize> = args
        .get(3)
        .map(|s| s.split(',').filter_map(|t| t.parse().ok()).collect())
        .unwrap_or_else(|| vec![1, 2]);
    let tile_arg = args.get(4).map(String::as_str).unwrap_or("572");
    let runs: usize = args.get(5).and_then(|s| s.parse().ok()).unwrap_or(3);
    let (base, levels) = match which {
        "paper" => (64, 5),
        "base16" => (16, 5),
        "small" => (4, 3),
        "overhead" => (1, 1),
        other => {
            eprintln!("unknown config {other}: use paper, base16, small or overhead");
            std::process::exit(2);
        }
    };
    let tile = match tile_arg.strip_prefix("budget:") {
        Some(mib) => TileChoice::Budget(mib.parse::<usize>().expect("budget in MiB") << 20),
        None => {
            let n: usize = tile_arg.parse().expect("tile size");
            TileChoice::Explicit(n, n)
        }
    };
    let config = Config {
        in_channels: 1,
        num_classes: 2,
        base_channels: base,
        levels,
        padding: Padding::Valid,
    };
    let bytes = synth::random_model(&config, DType::F32, 1, "percentile:1:99.8");
    let model = Model::from_safetensors(&bytes).expect("synthetic model loads");
    let pixels: Vec<u16> = synth::random_input(frame * frame, 3)
        .iter()
        .map(|&v| (v * v * 4000.0) as u16 + 100)
        .collect();
    let view = FrameView::packed(&pixels[..], 1, frame, frame).expect("frame view");
    time_statistics(&model, view, &pixels, frame);
    let mut labels = vec![0u8; frame * frame];
    for &t in &threads {
        let exec = RayonExecutor::new(t).expect("thread pool");
        let opts = FrameOptions {
            tile,
            workers: t,
            sample: SampleType::U16,
        };
        let plan = model.frame_plan(frame, frame, 1, opts).expect("frame plan");
        let (th, tw) = plan.tile_input_size();
        let (ny, nx) = plan.tile_counts();
        let flops = plan.tile_plan().flops().expect("flops") as f64 * (ny * nx) as f64;
        println!(
            "{which} {frame}x{frame} u16, {t} thread(s): tiles {th}x{tw} ({ny}x{nx}), {:.1} GFLOP/frame, scratch {:.1} MiB",
            flops / 1e9,
            plan.scratch_bytes() as f64 / (1 << 20) as f64
        );
        let mut scratch = vec![0f32; plan.scratch_len()];
        let mut times = Vec::with_capacity(runs);
        for r in 0..runs {
            let t0 = Instant::now();
            model
                .segment(
                    &plan,
                    FrameInput::U16(view),
                    &mut scratch,
                    FrameOutput::Labels8(&mut labels),
                    &exec,
                )
                .expect("segment");
            let s = t0.elapsed().as_secs_f64();
            println!("  run {r}: {:.1} ms", s * 1e3);
            times.push(s);
        }
        times.sort_by(|a, b| a.total_cmp(b));
        let med = times[(times.len() - 1) / 2];
        let best = times[0];
        println!(
            "  median {:.1} ms/frame, {:.3} MP/s, {:.2} GFLOP/s; best {:.1} ms, {:.3} MP/s ({t} thread(s), {runs} runs)",
            med * 1e3,
            (frame * frame) as f64 / med / 1e6,
            flops / med / 1e9,
            best * 1e3,
            (frame * frame) as f64 / best / 1e6
        );
    }
}

/// Times the percentile statistics of one channel alone: the u16 histogram and the f32 copy +
/// selection path.
fn time_statistics(model: &Model<'_>, view: FrameView<'_, u16>, pixels: &[u16], frame: usize) {
    let norm = model.normalization();
    let floats: Vec<f32> = pixels.iter().map(|&v| v as f32).collect();
    let fview = FrameView::packed(&floats[..], 1, frame, frame).expect("frame view");
    let n = statistics_scratch_len(norm, SampleType::F32, frame, frame).expect("size");
    let mut scratch = vec![0f32; n.max(65536)];
    let t0 = Instant::now();
    let a = channel_affine(norm, &view, 0, &mut scratch).expect("u16 statistics");
    let t1 = Instant::now();
    let b = channel_affine(norm, &fview, 0, &mut scratch).expect("f32 statistics");
    let t2 = Instant::now();
    assert_eq!(a, b, "u16 and f32 paths agree");
    println!(
        "percentile statistics of a {frame}x{frame} channel: u16 histogram {:.1} ms, f32 selection {:.1} ms",
        (t1 - t0).as_secs_f64() * 1e3,
        (t2 - t1).as_secs_f64() * 1e3
    );
}
