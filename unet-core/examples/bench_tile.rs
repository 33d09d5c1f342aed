//! Times whole tiles of unet-core's forward pass (single thread) and prints median ms and GFLOP/s.
//!
//! `cargo run --release -p unet-core --example bench_tile -- [paper|base16|small] [RUNS]`
//!
//! - `paper`: 5 levels, 64 base channels, valid, 572² → 388², 2 classes (300.9 GFLOP);
//! - `base16`: 5 levels, 16 base channels, valid, 572² → 388², 2 classes (18.9 GFLOP);
//! - `small`: 3 levels, 4 base channels, valid, 188² tile.
//!
//! Weights are random (`unet_core::synth`), which does not change the work done.
//!
//! `CONV=direct|winograd|auto` (default `auto`) forces how the 3×3 convolutions run
//! ([`unet_core::ConvAlgo`]); `RUNS=0` (or a second argument of 0) prints the plan only.

use std::time::Instant;

use unet_core::{synth, Config, ConvAlgo, DType, Model, Output, Padding};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let which = args.get(1).map(String::as_str).unwrap_or("small");
    let runs: usize = std::env::var("RUNS")
        .ok()
        .or_else(|| args.get(2).cloned())
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let algo = match std::env::var("CONV").as_deref() {
        Ok("direct") => ConvAlgo::Direct,
        Ok("winograd") => ConvAlgo::Winograd,
        Ok("auto") | Err(_) => ConvAlgo::Auto,
        Ok(other) => {
            eprintln!("unknown CONV={other}: use direct, winograd or auto");
            std::process::exit(2);
        }
    };
    let (base, levels, tile) = match which {
        "paper" => (64, 5, 572),
        "base16" => (16, 5, 572),
        "small" => (4, 3, 188),
        other => {
            eprintln!("unknown config {other}: use paper, base16 or small");
            std::process::exit(2);
        }
    };
    let config = Config {
        in_channels: 1,
        num_classes: 2,
        base_channels: base,
        levels,
        padding: Padding::Valid,
    };
    let bytes = synth::random_model(&config, DType::F32, 1, "none");
    let model = Model::from_safetensors(&bytes).expect("synthetic model loads");
    let plan = model.plan_with(tile, tile, algo).expect("legal tile");
    let input = synth::random_input(plan.input_len(), 2);
    let mut scratch = vec![0f32; plan.scratch_len()];
    let mut out = vec![0f32; plan.output_len()];
    let flops = plan.flops().expect("flop count fits u64") as f64;
    let (oh, ow) = plan.output_size();
    println!(
        "{which} ({algo:?}): {tile}x{tile} -> {oh}x{ow}, {:.1} GFLOP, scratch {} bytes = {:.1} MiB (lower bound of the arena {:.1} MiB, ratio {:.3})",
        flops / 1e9,
        plan.scratch_bytes(),
        plan.scratch_bytes() as f64 / (1 << 20) as f64,
        plan.scratch_lower_bound() as f64 * 4.0 / (1 << 20) as f64,
        plan.scratch_len() as f64 / plan.scratch_lower_bound() as f64
    );
    let mut times = Vec::with_capacity(runs);
    let mut cpu_times = Vec::with_capacity(runs);
    for r in 0..runs {
        let c0 = thread_cpu_seconds();
        let t = Instant::now();
        model
            .forward(&plan, &input, &mut scratch, Output::Probabilities(&mut out))
            .expect("forward");
        let s = t.elapsed().as_secs_f64();
        match (c0, thread_cpu_seconds()) {
            (Some(a), Some(b)) => {
                println!("  run {r}: {:.1} ms (cpu {:.0} ms)", s * 1e3, (b - a) * 1e3);
                cpu_times.push(b - a);
            }
            _ => println!("  run {r}: {:.1} ms", s * 1e3),
        }
        times.push(s);
    }
    if !cpu_times.is_empty() {
        cpu_times.sort_by(|a, b| a.total_cmp(b));
        println!(
            "median cpu time {:.1} ms (this thread's user+system time, less sensitive to other load)",
            cpu_times[cpu_times.len() / 2] * 1e3
        );
    }
    if times.is_empty() {
        return;
    }
    times.sort_by(|a, b| a.total_cmp(b));
    let med = times[times.len() / 2];
    println!(
        "median {:.1} ms, {:.2} GFLOP/s (1 thread, {runs} runs)",
        med * 1e3,
        flops / med / 1e9
    );
}

/// This thread's user + system CPU time in seconds, from `/proc/thread-self/stat` (Linux; clock
/// ticks of 1/100 s, the kernel's `USER_HZ` on every common configuration); `None` elsewhere.
fn thread_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").ok()?;
    // Fields after the parenthesised command name: state is field 3, utime 14, stime 15.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}
