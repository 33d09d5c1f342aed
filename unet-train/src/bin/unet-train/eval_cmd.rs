//! `unet-train eval`: segment labelled images with a model file and print pooled metrics
//! (foreground IoU and Dice, object precision/recall/F1 at IoU > 0.5, pixel and Rand error;
//! definitions in `unet_train::evaluate`), optionally next to a blur + Otsu threshold baseline
//! on the same images, and optionally as a CSV file.

use std::path::PathBuf;

use clap::Args;
use ndarray::s;
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
    /// Foreground of the baseline: bright, dark, or auto (the smaller side of the threshold).
    #[arg(long, default_value = "auto", value_parser = parse_polarity)]
    pub baseline_polarity: Polarity,
    /// Score only the bounding box of each image's labels grown by this many pixels (the
    /// U-Net still sees the whole image; the baseline's threshold comes from the box alone).
    #[arg(long, value_name = "PX")]
    pub crop_to_labels: Option<usize>,
    /// Write the metrics as CSV (one row per method).
    #[arg(long)]
    pub csv: Option<PathBuf>,
}

/// `bright`, `dark` or `auto`.
pub fn parse_polarity(s: &str) -> Result<Polarity, String> {
    match s {
        "bright" => Ok(Polarity::Bright),
        "dark" => Ok(Polarity::Dark),
        "auto" => Ok(Polarity::Auto),
        _ => Err(format!("polarity '{s}': expected bright, dark or auto")),
    }
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
        let (y0, y1, x0, x1) = match a.crop_to_labels {
            Some(margin) => labels_bbox(&s.labels, margin),
            None => (0, s.labels.nrows(), 0, s.labels.ncols()),
        };
        let labels = s.labels.slice(s![y0..y1, x0..x1]);
        unet.add(
            seg.classes.slice(s![y0..y1, x0..x1]),
            labels,
            kind,
            a.data.ignore,
        )
        .map_err(e)?;
        if a.baseline {
            let plane = s.image.slice(s![0, y0..y1, x0..x1]);
            let pred = threshold_baseline(plane, 2.0, a.baseline_polarity);
            base.add(pred.view(), labels, kind, a.data.ignore)
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

/// Bounding box `(y0, y1, x0, x1)` of the non-zero labels grown by `margin` and clipped to the
/// image (the whole image when there are no labels).
pub fn labels_bbox(labels: &ndarray::Array2<u32>, margin: usize) -> (usize, usize, usize, usize) {
    let (h, w) = labels.dim();
    let mut b = (h, 0, w, 0);
    for ((y, x), &l) in labels.indexed_iter() {
        if l != 0 {
            b = (b.0.min(y), b.1.max(y + 1), b.2.min(x), b.3.max(x + 1));
        }
    }
    if b.1 == 0 {
        return (0, h, 0, w);
    }
    (
        b.0.saturating_sub(margin),
        (b.1 + margin).min(h),
        b.2.saturating_sub(margin),
        (b.3 + margin).min(w),
    )
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
