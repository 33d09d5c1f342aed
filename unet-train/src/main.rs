//! `unet-train`: train U-Nets, inspect model files, time training steps.
//!
//! Subcommands: `info` (what a model file holds), `bench` (seconds per training step on
//! synthetic data). `--threads N` sets the rayon pool and matrixmultiply's GEMM threads; it
//! must be applied before the first GEMM, so it is handled first thing in `main`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use unet_core::{Config, Padding};

#[derive(Parser)]
#[command(
    name = "unet-train",
    version,
    about = "Train U-Nets (Ronneberger et al. 2015) and export safetensors model files"
)]
struct Cli {
    /// Worker threads (rayon and GEMM; GEMM uses at most 4). Default: all cores.
    #[arg(long, global = true)]
    threads: Option<usize>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Print what a model file (or a training checkpoint) holds.
    Info {
        /// The .safetensors file.
        file: PathBuf,
    },
    /// Time training steps on synthetic data.
    Bench {
        /// Resolution levels including the bottom.
        #[arg(long, default_value_t = 4)]
        levels: usize,
        /// Channels of level 0.
        #[arg(long, default_value_t = 16)]
        base: usize,
        /// Input channels.
        #[arg(long, default_value_t = 1)]
        in_channels: usize,
        /// Classes.
        #[arg(long, default_value_t = 2)]
        classes: usize,
        /// valid or same.
        #[arg(long, default_value = "valid")]
        padding: String,
        /// Tile size (square, must be legal).
        #[arg(long, default_value_t = 188)]
        tile: usize,
        /// Tiles per batch.
        #[arg(long, default_value_t = 4)]
        batch: usize,
        /// Timed steps (after one warm-up step).
        #[arg(long, default_value_t = 3)]
        steps: usize,
    },
}

fn parse_padding(s: &str) -> Result<Padding, String> {
    match s {
        "valid" => Ok(Padding::Valid),
        "same" => Ok(Padding::Same),
        _ => Err(format!("padding '{s}': expected valid or same")),
    }
}

fn info(path: &PathBuf) -> Result<(), String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let st = safetensors::SafeTensors::deserialize(&bytes)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    println!("file: {} ({} bytes)", path.display(), bytes.len());
    let mut keys: Vec<_> = meta
        .metadata()
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect();
    keys.sort();
    println!("metadata:");
    for (k, v) in &keys {
        println!("  {k} = {v}");
    }
    let mut numel = 0usize;
    let mut dtypes = std::collections::BTreeMap::new();
    for (_, t) in st.tensors() {
        numel += t.shape().iter().product::<usize>();
        *dtypes.entry(format!("{:?}", t.dtype())).or_insert(0usize) += 1;
    }
    println!("tensors: {} ({numel} values; {dtypes:?})", st.len());
    match unet_core::Model::from_safetensors(&bytes) {
        Ok(m) => {
            let g = m.geometry();
            println!(
                "unet-core: valid model; halo {} px, smallest tile {}, tile step {}",
                g.halo(),
                g.min_input(),
                g.step()
            );
        }
        Err(e) => println!("unet-core: not loadable as a model: {e}"),
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let batch = match &cli.cmd {
        Cmd::Bench { batch, .. } => *batch,
        _ => 1,
    };
    let threads = cli
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    if threads == 0 {
        eprintln!("error: --threads must be at least 1");
        return ExitCode::from(2);
    }
    // Two levels of parallelism compete for the cores: samples of a batch (rayon) and the
    // inside of each GEMM (matrixmultiply). With at least as many samples as threads, the
    // samples alone keep every core busy and threaded GEMMs would only oversubscribe them.
    // Read by matrixmultiply at its first GEMM; nothing has run yet and no other thread exists.
    if std::env::var_os("MATMUL_NUM_THREADS").is_none() || cli.threads.is_some() {
        let gemm = if batch >= threads { 1 } else { threads };
        std::env::set_var("MATMUL_NUM_THREADS", gemm.to_string());
    }
    if let Some(n) = cli.threads {
        if let Err(e) = rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build_global()
        {
            eprintln!("error: thread pool: {e}");
            return ExitCode::FAILURE;
        }
    }
    let result = match &cli.cmd {
        Cmd::Info { file } => info(file),
        Cmd::Bench {
            levels,
            base,
            in_channels,
            classes,
            padding,
            tile,
            batch,
            steps,
        } => (|| {
            let config = Config {
                in_channels: *in_channels,
                num_classes: *classes,
                base_channels: *base,
                levels: *levels,
                padding: parse_padding(padding)?,
            };
            let r = unet_train::bench::time_steps(&config, *tile, *batch, *steps)
                .map_err(|e| e.to_string())?;
            println!(
                "levels {levels} base {base} {padding} tile {tile}² → {}×{} batch {batch}, {} params, threads {}: median {:.3} s/step, ~{:.1} GFLOP/s ({:?})",
                r.output.0,
                r.output.1,
                r.params,
                cli.threads.map_or("all".to_string(), |t| t.to_string()),
                r.median(),
                r.gflops(),
                r.step_secs.iter().map(|s| format!("{s:.3}")).collect::<Vec<_>>()
            );
            Ok(())
        })(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
