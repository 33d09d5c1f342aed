//! `unet-train eval`: segment labelled images with a model file and print pooled metrics
//! (foreground IoU and Dice, object precision/recall/F1 at IoU > 0.5, pixel and Rand error;
//! definitions in `unet_train::evaluate`), optionally next to a blur + Otsu threshold baseline
//! on the same images, and optionally as a CSV file.

use std::path::PathBuf;

use clap::Args;
use unet_train::baseline::{threshold_baseline, Polarity};
use unet_train::evaluate::{segment, Accumulator, Summary};

use crate::args::{check_tile, legal_tile_at_most, load_model, DataArgs};

/// Arguments of `eval`.
#[derive(Args)]
pub struct EvalArgs {
    /// The model file.
    #[arg(long)]
    pub model: PathBuf,
    #[command(flatten)]
    pub data: DataArgs,
    /// Evaluate only these samples (positions in load order, e.g. 15..20).
    #[arg(long, value_name = "INDICES")]
    pub frames: Option<String>,
    /// Input tile size (default: the largest legal size ≤ 508).
    #[arg(long)]
    pub tile: Option<usize>,
    /// Also evaluate a Gaussian blur (σ = 2 px) + Otsu threshold baseline.
    #[arg(long)]
    pub baseline: bool,
    /// Write the metrics as CSV (one row per method).
    #[arg(long)]
    pub csv: Option<PathBuf>,
}

/// Runs `eval`.
pub fn run(a: &EvalArgs) -> Result<(), String> {
    use unet_train::backend::Backend;
    let m = load_model(&a.model)?;
    let cfg = m.backend.config();
    let g = unet_core::Geometry::new(cfg.levels, cfg.padding).map_err(|e| e.to_string())?;
    let tile = match a.tile {
        Some(t) => check_tile(&g, t)?,
        None => legal_tile_at_most(&g, 508),
    };
    let e = |e: unet_train::TrainError| e.to_string();
    let kind = a.data.labels_are;
    let mut samples =
        unet_train::dataset::load(&a.data.sources()?, kind, cfg.num_classes).map_err(e)?;
    if let Some(ix) = &a.frames {
        let ix = unet_train::dataset::parse_indices(ix).map_err(e)?;
        samples = unet_train::dataset::select(samples, &ix).map_err(e)?;
    }
    let mut unet = Accumulator::new(cfg.num_classes);
    let mut base = Accumulator::new(2);
    let t = std::time::Instant::now();
    for s in &samples {
        if s.image.dim().0 != cfg.in_channels {
            return Err(format!(
                "{}: {} channels, the model takes {}",
                s.name,
                s.image.dim().0,
                cfg.in_channels
            ));
        }
        let seg = segment(&m.backend, s.image.view(), m.normalization, tile, 2)
            .map_err(|x| format!("{}: {x}", s.name))?;
        unet.add(seg.classes.view(), s.labels.view(), kind, a.data.ignore)
            .map_err(e)?;
        if a.baseline {
            let plane = s.image.index_axis(ndarray::Axis(0), 0);
            let pred = threshold_baseline(plane, 2.0, Polarity::Auto);
            base.add(pred.view(), s.labels.view(), kind, a.data.ignore)
                .map_err(e)?;
        }
    }
    let secs = t.elapsed().as_secs_f64();
    let u = unet.summary();
    println!("{} images in {secs:.1} s", samples.len());
    println!("unet      {u}");
    let mut rows = vec![("unet", u)];
    if a.baseline {
        let b = base.summary();
        println!("baseline  {b}");
        rows.push(("blur+otsu", b));
    }
    if let Some(path) = &a.csv {
        write_csv(path, &rows)?;
    }
    Ok(())
}

fn write_csv(path: &std::path::Path, rows: &[(&str, Summary)]) -> Result<(), String> {
    let mut text = String::from(
        "method,images,iou_fg,dice_fg,precision,recall,f1,tp,fp,fn,pixel_error,rand_error\n",
    );
    for (name, s) in rows {
        text.push_str(&format!(
            "{name},{},{},{},{},{},{},{},{},{},{},{}\n",
            s.images,
            s.foreground_iou(),
            s.foreground_dice(),
            s.precision(),
            s.recall(),
            s.f1(),
            s.tp,
            s.fp,
            s.fn_,
            s.pixel_error,
            s.rand_error
        ));
    }
    unet_train::atomic_write::write_atomic(path, text.as_bytes()).map_err(|e| e.to_string())
}
