//! `unet-train bench`: seconds per training step on synthetic data.

use clap::Args;
use unet_core::Config;

/// Arguments of `bench`.
#[derive(Args)]
pub struct BenchArgs {
    /// Resolution levels including the bottom.
    #[arg(long, default_value_t = 4)]
    pub levels: usize,
    /// Channels of level 0.
    #[arg(long, default_value_t = 16)]
    pub base: usize,
    /// Input channels.
    #[arg(long, default_value_t = 1)]
    pub in_channels: usize,
    /// Classes.
    #[arg(long, default_value_t = 2)]
    pub classes: usize,
    /// valid or same.
    #[arg(long, default_value = "valid", value_parser = crate::args::parse_padding)]
    pub padding: unet_core::Padding,
    /// Tile size (square, must be legal).
    #[arg(long, default_value_t = 188)]
    pub tile: usize,
    /// Tiles per batch.
    #[arg(long, default_value_t = 4)]
    pub batch: usize,
    /// Timed steps (after one warm-up step).
    #[arg(long, default_value_t = 3)]
    pub steps: usize,
}

/// Times the steps and prints one line.
pub fn run(a: &BenchArgs, threads: Option<usize>) -> Result<(), String> {
    let config = Config {
        in_channels: a.in_channels,
        num_classes: a.classes,
        base_channels: a.base,
        levels: a.levels,
        padding: a.padding,
    };
    let r = unet_train::bench::time_steps(&config, a.tile, a.batch, a.steps)
        .map_err(|e| e.to_string())?;
    println!(
        "levels {} base {} {} tile {}² → {}×{} batch {}, {} params, threads {}: median {:.3} s/step, ~{:.1} GFLOP/s ({:?})",
        a.levels,
        a.base,
        crate::args::padding_str(a.padding),
        a.tile,
        r.output.0,
        r.output.1,
        a.batch,
        r.params,
        threads.map_or("all".to_string(), |t| t.to_string()),
        r.median(),
        r.gflops(),
        r.step_secs
            .iter()
            .map(|s| format!("{s:.3}"))
            .collect::<Vec<_>>()
    );
    Ok(())
}
