//! `unet-train`: train U-Nets, segment and evaluate images, inspect model files, time steps.
//!
//! Subcommands: `train`, `predict`, `eval`, `info`, `bench`. `--threads N` sets the rayon pool
//! and matrixmultiply's GEMM threads; it must be applied before the first GEMM, so it is
//! handled first thing in `main`. Every error is printed as one `error: …` line and gives exit
//! code 1 (2 for unusable command lines, from clap).

mod args;
mod bench_cmd;
mod eval_cmd;
mod info_cmd;
mod predict_cmd;
mod train_cmd;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "unet-train",
    version,
    about = "Train U-Nets (Ronneberger et al. 2015), segment images and export safetensors model files"
)]
struct Cli {
    /// Worker threads (rayon and GEMM). Default: all cores.
    #[arg(long, global = true)]
    threads: Option<usize>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Train a U-Net on labelled images (the paper's weighted loss, weight maps and elastic
    /// deformation); writes the model, a checkpoint, a CSV log and a curve plot into --out.
    Train(Box<train_cmd::TrainArgs>),
    /// Segment images with a model file: class labels, instances, probabilities, overlays.
    Predict(predict_cmd::PredictArgs),
    /// Metrics of a model file on labelled images (optionally next to a threshold baseline).
    Eval(eval_cmd::EvalArgs),
    /// Print what a model file (or a training checkpoint) holds.
    Info(info_cmd::InfoArgs),
    /// Time training steps on synthetic data.
    Bench(bench_cmd::BenchArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let batch = match &cli.cmd {
        Cmd::Bench(b) => b.batch,
        Cmd::Train(t) => t.batch,
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
    let result = match cli.cmd {
        Cmd::Train(a) => train_cmd::run(&a, threads),
        Cmd::Predict(a) => predict_cmd::run(&a),
        Cmd::Eval(a) => eval_cmd::run(&a),
        Cmd::Info(a) => info_cmd::run(&a),
        Cmd::Bench(a) => bench_cmd::run(&a, cli.threads),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
