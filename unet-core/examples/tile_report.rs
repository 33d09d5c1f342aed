//! Runs one tile on the host and prints the same `unet-report v1` lines as the Cortex-M4F
//! firmware in `examples/embedded` (so `run-qemu.sh` can compare the two).
//!
//! `cargo run -p unet-core --example tile_report -- MODEL.safetensors INPUT.f32 TILE`
//! (INPUT: raw little-endian f32, `in_channels × TILE × TILE`).

use std::process::ExitCode;

use unet_core::{Model, Output};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 4 {
        eprintln!("usage: tile_report MODEL.safetensors INPUT.f32 TILE");
        return ExitCode::from(2);
    }
    let run = || -> Result<(), String> {
        let bytes = std::fs::read(&args[1]).map_err(|e| format!("{}: {e}", args[1]))?;
        let raw = std::fs::read(&args[2]).map_err(|e| format!("{}: {e}", args[2]))?;
        let tile: usize = args[3]
            .parse()
            .map_err(|_| "TILE must be an integer".to_string())?;
        let input: Vec<f32> = raw
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        let model = Model::from_safetensors(&bytes).map_err(|e| e.to_string())?;
        let plan = model.plan(tile, tile).map_err(|e| e.to_string())?;
        let (oh, ow) = plan.output_size();
        let k = model.config().num_classes;
        let mut scratch = vec![0f32; plan.scratch_len()];
        let mut labels = vec![0u8; plan.label_len()];
        let mut probs = vec![0f32; plan.output_len()];
        model
            .forward(&plan, &input, &mut scratch, Output::Labels8(&mut labels))
            .map_err(|e| e.to_string())?;
        model
            .forward(
                &plan,
                &input,
                &mut scratch,
                Output::Probabilities(&mut probs),
            )
            .map_err(|e| e.to_string())?;
        println!("unet-report v1");
        println!("tile {tile}x{tile} -> {oh}x{ow}");
        println!("scratch_bytes {}", plan.scratch_bytes());
        let mut counts = vec![0usize; k];
        let mut fnv: u32 = 0x811c_9dc5;
        for &l in &labels {
            counts[l as usize] += 1;
            fnv = (fnv ^ l as u32).wrapping_mul(0x0100_0193);
        }
        println!("labels_fnv1a {fnv:08x}");
        for (c, n) in counts.iter().enumerate() {
            println!("class {c} pixels {n}");
        }
        for c in 0..k {
            let p = &probs[c * oh * ow..(c + 1) * oh * ow];
            let sum: f32 = p.iter().sum();
            println!(
                "class {c} prob_sum {sum} prob_first {} prob_last {}",
                p[0],
                p[p.len() - 1]
            );
        }
        Ok(())
    };
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
