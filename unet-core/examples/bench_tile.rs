//! Times whole tiles of unet-core's forward pass and prints median ms and GFLOP/s: one untimed
//! warm-up run, then `RUNS` timed ones (the protocol `bench/peers.py` gives every runtime).
//!
//! `cargo run --release -p unet-core --example bench_tile -- [paper|base16|small] [RUNS]`
//!
//! - `paper`: 5 levels, 64 base channels, valid, 572² → 388², 2 classes (300.9 GFLOP);
//! - `base16`: 5 levels, 16 base channels, valid, 572² → 388², 2 classes (18.9 GFLOP);
//! - `small`: 3 levels, 4 base channels, valid, 188² tile.
//!
//! Weights are random (`unet_core::synth`), which does not change the work done. Environment:
//! - `THREADS=n` (default 1): run each tile with [`Model::forward_with`] on `n` workers
//!   (`RayonExecutor` with `--features rayon`, otherwise scoped std threads per call);
//! - `MODEL=path`: weights from this unet model file instead (its own architecture; the preset
//!   still chooses the tile size, or `TILE=n`);
//! - `INPUT=path`: the input tile as raw little-endian f32 `[in_channels, h, w]` instead of
//!   random values;
//! - `CONV=direct|winograd|auto` (default `auto`): how the 3×3 convolutions run
//!   ([`unet_core::ConvAlgo`]); `RUNS=n` overrides the run count (0 prints the plan only);
//! - `FUSION=0`: run every level layer by layer instead of the narrow levels in bands of rows
//!   ([`unet_core::Plan::with_fusion`]; the same bits);
//! - `KERNEL=name`: force a GEMM micro-kernel (`portable`, `avx2-fma`, `avx512`, `neon`; one
//!   this CPU runs) instead of the fastest available;
//! - `OUTPUT=logits|probabilities|labels` (default `logits`, what the other runtimes of
//!   `bench/peers.py` produce): the output the timed runs write (probabilities add the
//!   soft-max, labels the arg-max);
//! - `PROBE=1`: time every parallel phase (each `Executor::run`) and each worker's busy time
//!   in it; prints how long the workers waited for each other per tile and the worst phases
//!   (`WORST=n` of them, default 5);
//! - `LOGITS=path`: after timing, write the tile's logits there as raw little-endian f32
//!   `[num_classes, out_h, out_w]` (for comparisons with other runtimes: `bench/peers.py`).
//!
//! The last line is machine-readable: `RESULT median_ms=… gflop=… scratch_bytes=… threads=… kernel=…`.

use std::time::Instant;

use unet_core::gemm::Kernel;
use unet_core::{synth, Config, ConvAlgo, DType, Executor, Model, Output, Padding};

/// Runs jobs on `n` scoped std threads spawned per call (used without the `rayon` feature).
#[cfg(not(feature = "rayon"))]
struct ScopedThreads(usize);

// SAFETY: thread `w` (one per worker index `w < n`) runs its jobs one after another; each job
// index is taken once from the shared counter; `thread::scope` joins every thread before
// returning.
#[cfg(not(feature = "rayon"))]
unsafe impl Executor for ScopedThreads {
    fn workers(&self) -> usize {
        self.0
    }
    fn run(&self, jobs: usize, job: &(dyn Fn(usize, usize) + Sync)) {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let next = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for w in 0..self.0.min(jobs) {
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

fn executor(threads: usize) -> Box<dyn Executor> {
    if threads == 1 {
        return Box::new(unet_core::Sequential);
    }
    #[cfg(feature = "rayon")]
    {
        Box::new(unet_core::exec::RayonExecutor::new(threads).expect("thread pool"))
    }
    #[cfg(not(feature = "rayon"))]
    {
        Box::new(ScopedThreads(threads))
    }
}

/// `PROBE=1`: wraps the executor and records, for every parallel phase (`Executor::run`), its
/// wall time and each worker's busy time (the sum of its jobs' times), to show where workers
/// wait for each other.
struct Probe {
    inner: Box<dyn Executor>,
    log: std::sync::Mutex<Vec<Phase>>,
}

/// One run of the executor: `(jobs, wall s, busy s per worker)`.
type Phase = (usize, f64, Vec<f64>);

// SAFETY: forwards every call to `inner` unchanged (its guarantees hold); the timing around
// each job does not change which worker runs it or how often.
unsafe impl Executor for Probe {
    fn workers(&self) -> usize {
        self.inner.workers()
    }
    fn run(&self, jobs: usize, job: &(dyn Fn(usize, usize) + Sync)) {
        let busy: Vec<std::sync::Mutex<f64>> =
            (0..self.workers()).map(|_| Default::default()).collect();
        let t = Instant::now();
        self.inner.run(jobs, &|j, w| {
            let s = Instant::now();
            job(j, w);
            *busy[w].lock().unwrap() += s.elapsed().as_secs_f64();
        });
        let wall = t.elapsed().as_secs_f64();
        let busy = busy.into_iter().map(|b| b.into_inner().unwrap()).collect();
        self.log.lock().unwrap().push((jobs, wall, busy));
    }
}

impl Probe {
    /// Prints the idle time per tile (`tiles` timed tiles in the log) and the phases of the
    /// last tile where the workers waited longest.
    fn report(&self, tiles: usize) {
        let log = self.log.lock().unwrap();
        let w = self.workers() as f64;
        let idle = |r: &Phase| w * r.1 - r.2.iter().sum::<f64>();
        let (wall, lost): (f64, f64) = log
            .iter()
            .map(|r| (r.1, idle(r)))
            .fold((0.0, 0.0), |a, b| (a.0 + b.0, a.1 + b.1));
        let per = log.len() / tiles.max(1);
        println!(
            "probe: {per} parallel phases per tile, {:.1} ms in them, workers idle {:.1} ms of {:.1} ({:.1} %)",
            wall * 1e3 / tiles as f64,
            lost * 1e3 / tiles as f64,
            w * wall * 1e3 / tiles as f64,
            100.0 * lost / (w * wall)
        );
        let last = &log[log.len() - per..];
        let mut worst: Vec<(usize, &Phase)> = last.iter().enumerate().collect();
        worst.sort_by(|a, b| idle(b.1).total_cmp(&idle(a.1)));
        for (i, r) in worst.iter().take(
            std::env::var("WORST")
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(5),
        ) {
            let busy: Vec<String> = r.2.iter().map(|b| format!("{:.2}", b * 1e3)).collect();
            println!(
                "  phase {i}: {} jobs, {:.2} ms, busy {} ms, idle {:.2} ms",
                r.0,
                r.1 * 1e3,
                busy.join(" / "),
                idle(r) * 1e3
            );
        }
    }
}

fn env_usize(name: &str) -> Option<usize> {
    std::env::var(name).ok().map(|s| {
        s.parse()
            .unwrap_or_else(|_| panic!("{name} must be a number, got {s:?}"))
    })
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let which = args.get(1).map(String::as_str).unwrap_or("small");
    let runs: usize = std::env::var("RUNS")
        .ok()
        .or_else(|| args.get(2).cloned())
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let threads = env_usize("THREADS").unwrap_or(1).max(1);
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
    let tile = env_usize("TILE").unwrap_or(tile);
    let config = Config {
        in_channels: 1,
        num_classes: 2,
        base_channels: base,
        levels,
        padding: Padding::Valid,
    };
    let bytes = match std::env::var("MODEL") {
        Ok(path) => std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}")),
        Err(_) => synth::random_model(&config, DType::F32, 1, "none"),
    };
    let model = Model::from_safetensors(&bytes).expect("model loads");
    let probe = std::env::var("PROBE")
        .is_ok_and(|v| v == "1")
        .then(|| Probe {
            inner: executor(threads),
            log: Default::default(),
        });
    let plain = executor(threads);
    let exec: &dyn Executor = match &probe {
        Some(p) => p,
        None => &*plain,
    };
    // `FUSION=0`: every level layer by layer (the same bits; see `Plan::with_fusion`).
    let fusion = std::env::var("FUSION").map_or(true, |v| v != "0");
    let mut plan = unet_core::Plan::with_fusion(model.config(), tile, tile, algo, threads, fusion)
        .expect("legal tile");
    if let Ok(name) = std::env::var("KERNEL") {
        let kernel = Kernel::by_name(&name).unwrap_or_else(|| {
            let have: Vec<_> = Kernel::available().map(Kernel::name).collect();
            panic!("KERNEL={name}: not available here (available: {have:?})")
        });
        plan = plan.with_kernel(kernel);
    }
    let input = match std::env::var("INPUT") {
        Ok(path) => {
            let raw = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
            assert_eq!(raw.len(), plan.input_len() * 4, "{path}: not [c, h, w] f32");
            raw.chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect()
        }
        Err(_) => synth::random_input(plan.input_len(), 2),
    };
    let mut scratch = vec![0f32; plan.scratch_len()];
    let mut out = vec![0f32; plan.output_len()];
    let flops = plan.flops().expect("flop count fits u64") as f64;
    let (oh, ow) = plan.output_size();
    let c = model.config();
    println!(
        "{which} ({algo:?}): levels {}, base {}, {tile}x{tile} -> {oh}x{ow}, {:.2} GFLOP, {threads} thread(s), scratch {} bytes = {:.1} MiB (lower bound of the arena {:.1} MiB, ratio {:.3}; pack {:.1} MiB per worker)",
        c.levels,
        c.base_channels,
        flops / 1e9,
        plan.scratch_bytes(),
        plan.scratch_bytes() as f64 / (1 << 20) as f64,
        plan.scratch_lower_bound() as f64 * 4.0 / (1 << 20) as f64,
        plan.scratch_len() as f64 / plan.scratch_lower_bound() as f64,
        plan.pack_len_per_worker() as f64 * 4.0 / (1 << 20) as f64
    );
    // What the timed runs produce: logits by default, as the peers of `bench/peers.py` do.
    let kind = std::env::var("OUTPUT").unwrap_or_else(|_| "logits".into());
    let mut labels = vec![0u8; plan.label_len()];
    let mut tile = || {
        let output = match kind.as_str() {
            "logits" => Output::Logits(&mut out),
            "probabilities" => Output::Probabilities(&mut out),
            "labels" => Output::Labels8(&mut labels),
            other => panic!("OUTPUT={other}: logits, probabilities or labels"),
        };
        model
            .forward_with(exec, &plan, &input, &mut scratch, output)
            .expect("forward")
    };
    // One untimed warm-up run, as `bench/peers.py` gives every other runtime: the first run
    // also pays for touching the scratch pages (30-50 % slower).
    if runs > 0 {
        tile();
    }
    if let Some(p) = &probe {
        p.log.lock().unwrap().clear();
    }
    let mut times = Vec::with_capacity(runs);
    let mut cpu_times = Vec::with_capacity(runs);
    for r in 0..runs {
        let c0 = thread_cpu_seconds();
        let t = Instant::now();
        tile();
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
    if let (Some(p), true) = (&probe, runs > 0) {
        p.report(runs);
    }
    if !cpu_times.is_empty() {
        cpu_times.sort_by(|a, b| a.total_cmp(b));
        println!(
            "median cpu time {:.1} ms (this thread's user+system time, less sensitive to other load)",
            cpu_times[cpu_times.len() / 2] * 1e3
        );
    }
    if let Ok(path) = std::env::var("LOGITS") {
        model
            .forward_with(exec, &plan, &input, &mut scratch, Output::Logits(&mut out))
            .expect("forward");
        let raw: Vec<u8> = out.iter().flat_map(|v| v.to_le_bytes()).collect();
        std::fs::write(&path, raw).unwrap_or_else(|e| panic!("{path}: {e}"));
    }
    if times.is_empty() {
        return;
    }
    times.sort_by(|a, b| a.total_cmp(b));
    let med = times[times.len() / 2];
    println!(
        "median {:.1} ms, {:.2} GFLOP/s ({threads} thread(s), {runs} runs, kernel {})",
        med * 1e3,
        flops / med / 1e9,
        plan.kernel().name()
    );
    println!(
        "RESULT median_ms={:.3} gflop={:.4} scratch_bytes={} threads={threads} kernel={}",
        med * 1e3,
        flops / 1e9,
        plan.scratch_bytes(),
        plan.kernel().name()
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
