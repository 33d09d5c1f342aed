//! `unet-train predict`: segment images with a model file. For every input page `NAME`
//! (`NAME#k` pages of a stack become `NAME_k`) it writes into `--out`:
//!
//! | file | what |
//! |---|---|
//! | `NAME.labels.png` | class of every pixel (8-bit gray) |
//! | `NAME.instances.png` | connected components of the non-background classes (16-bit) |
//! | `NAME.overlay.png` | the image with the outlines of the instances |
//! | `NAME.probs.tif` | class probabilities, one 32-bit float page per class (`--probabilities`) |

use std::path::PathBuf;

use clap::Args;
use unet_train::components::{instances_from_classes, Connectivity};
use unet_train::data::load_image;
use unet_train::evaluate::segment;
use unet_train::image_out::{
    write_labels_png, write_outline_overlay_png, write_probabilities_tiff,
};

use crate::args::{check_tile, legal_tile_at_most, load_model};

/// Arguments of `predict`.
#[derive(Args)]
pub struct PredictArgs {
    /// The model file.
    #[arg(long)]
    pub model: PathBuf,
    /// Output folder (created if missing).
    #[arg(long)]
    pub out: PathBuf,
    /// Input tile size (default: the largest legal size ≤ 508).
    #[arg(long)]
    pub tile: Option<usize>,
    /// Tiles per forward call.
    #[arg(long, default_value_t = 2)]
    pub batch: usize,
    /// Also write class probabilities as a float TIFF.
    #[arg(long)]
    pub probabilities: bool,
    /// Images (TIFF/PNG, 8/16-bit gray, single page or stack).
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
}

/// Runs `predict`.
pub fn run(a: &PredictArgs) -> Result<(), String> {
    let m = load_model(&a.model)?;
    use unet_train::backend::Backend;
    let cfg = m.backend.config();
    if cfg.in_channels != 1 {
        return Err(format!(
            "the model takes {} channels; predict reads single-channel images",
            cfg.in_channels
        ));
    }
    let g = unet_core::Geometry::new(cfg.levels, cfg.padding).map_err(|e| e.to_string())?;
    let tile = match a.tile {
        Some(t) => check_tile(&g, t)?,
        None => legal_tile_at_most(&g, 508),
    };
    if a.batch == 0 {
        return Err("--batch must be at least 1".into());
    }
    std::fs::create_dir_all(&a.out).map_err(|e| format!("{}: {e}", a.out.display()))?;
    if !m.class_names.is_empty() {
        println!("classes: {}", m.class_names.join(", "));
    }
    for input in &a.inputs {
        let pages = load_image(input).map_err(|e| e.to_string())?;
        let stem = input
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("image")
            .to_string();
        let many = pages.len() > 1;
        for (k, page) in pages.into_iter().enumerate() {
            let name = if many {
                format!("{stem}_{k}")
            } else {
                stem.clone()
            };
            let t = std::time::Instant::now();
            let raw = page.insert_axis(ndarray::Axis(0));
            let seg = segment(&m.backend, raw.view(), m.normalization, tile, a.batch)
                .map_err(|e| format!("{}: {e}", input.display()))?;
            let (instances, count) = instances_from_classes(seg.classes.view(), Connectivity::Four);
            let out = |suffix: &str| a.out.join(format!("{name}.{suffix}"));
            let err = |e: unet_train::TrainError| e.to_string();
            write_labels_png(&out("labels.png"), &seg.classes.mapv(u32::from)).map_err(err)?;
            if count > u32::from(u16::MAX) {
                eprintln!("{name}: {count} instances do not fit a 16-bit PNG; skipped");
            } else {
                write_labels_png(&out("instances.png"), &instances).map_err(err)?;
            }
            write_outline_overlay_png(
                &out("overlay.png"),
                raw.index_axis(ndarray::Axis(0), 0),
                &instances,
            )
            .map_err(err)?;
            if a.probabilities {
                write_probabilities_tiff(&out("probs.tif"), &seg.probabilities).map_err(err)?;
            }
            let (h, w) = seg.classes.dim();
            println!(
                "{name}: {h}×{w}, {count} objects, {:.2} s → {}",
                t.elapsed().as_secs_f64(),
                out("*").display()
            );
        }
    }
    Ok(())
}
