//! `unet-train train`: load and split labelled images, normalise them, build the tile sampler
//! (weight maps cached once per image, elastic deformation and friends), build or resume the
//! trainer, run it with periodic validation, and write into `--out`:
//!
//! | file | what |
//! |---|---|
//! | `model.safetensors` | the exported model (unet-core / libunet / PyTorch format) |
//! | `checkpoint.ckpt` | parameters + optimiser state + step + RNG (for `--resume`) |
//! | `log.csv` | one row per validation: step, lr, train loss, tiles/s, elapsed, metrics |
//! | `curves.png` | the loss and validation curves of `log.csv` |
//!
//! All of them are replaced atomically (temporary file + rename), so an interrupted run leaves
//! the previous versions intact; `--resume` continues from `checkpoint.ckpt` to the same
//! result as an uninterrupted run with the same arguments.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use unet_core::{Config, Geometry, Normalization, Padding};
use unet_train::augment::AugmentParams;
use unet_train::backend::cpu::CpuBackend;
use unet_train::data::{LabelKind, SplitSpec};
use unet_train::dataset;
use unet_train::evaluate::{evaluate_samples, Accumulator};
use unet_train::export::{ModelInfo, StoreDtype};
use unet_train::loss::LossNorm;
use unet_train::optim::OptimizerKind;
use unet_train::sampler::TileSampler;
use unet_train::schedule::Schedule;
use unet_train::session::{build, SessionConfig};
use unet_train::train::{run as run_loop, RunOptions, TrainSettings};
use unet_train::weight_map::{ClassBalance, WeightParams};

use crate::args::{check_tile, legal_tile_at_most, padding_str, DataArgs};

/// Arguments of `train`.
#[derive(Args, Clone, Debug)]
pub struct TrainArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// Train only on these samples (positions in load order, e.g. 0..15); default all.
    #[arg(long, value_name = "INDICES")]
    pub train_frames: Option<String>,
    /// Validation samples by position in load order, e.g. 15..20 or 0,4,8.
    #[arg(long, value_name = "INDICES", conflicts_with_all = ["val_names", "val_fraction"])]
    pub val_frames: Option<String>,
    /// Validation samples by name or file stem (comma-separated).
    #[arg(long, value_name = "NAMES", conflicts_with = "val_fraction")]
    pub val_names: Option<String>,
    /// Validate on the last fraction of the samples (default 0.2 with ≥ 2 samples; 0: none).
    #[arg(long, value_name = "F")]
    pub val_fraction: Option<f32>,
    /// Output folder (created if missing).
    #[arg(long)]
    pub out: PathBuf,
    /// Continue from OUT/checkpoint.ckpt (same arguments as the interrupted run).
    #[arg(long)]
    pub resume: bool,

    /// Resolution levels including the bottom (paper: 5).
    #[arg(long, default_value_t = 4)]
    pub levels: usize,
    /// Channels of the first level (paper: 64).
    #[arg(long, default_value_t = 16)]
    pub base: usize,
    /// Convolution padding: valid (paper) or same.
    #[arg(long, default_value = "valid", value_parser = crate::args::parse_padding)]
    pub padding: Padding,
    /// Classes (instance labels give 2: background, cell).
    #[arg(long, default_value_t = 2)]
    pub classes: usize,
    /// Class names stored in the model (comma-separated).
    #[arg(long)]
    pub class_names: Option<String>,
    /// Input normalisation (stored in the model): none, percentile:LO:HI, mean_std:M:S,
    /// min_max:A:B.
    #[arg(long, default_value = "percentile:1:99.8", value_parser = crate::args::parse_normalization)]
    pub normalize: Normalization,

    /// Input tile size (square; must be legal for the network).
    #[arg(long, default_value_t = 188)]
    pub tile: usize,
    /// Tiles per batch.
    #[arg(long, default_value_t = 4)]
    pub batch: usize,
    /// Total steps (counting those before a resume).
    #[arg(long, default_value_t = 2000)]
    pub steps: u64,
    /// Stop cleanly (checkpoint, export) after this many seconds of this process.
    #[arg(long, value_name = "SECS")]
    pub time_budget: Option<f64>,
    /// Optimiser: adam[:beta1=..:beta2=..:eps=..] or sgd[:momentum=..:nesterov=..]
    /// (paper: sgd:momentum=0.99).
    #[arg(long, default_value = "adam")]
    pub optimizer: String,
    /// Base learning rate.
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f32,
    /// Learning-rate schedule: constant, step:EVERY:GAMMA, poly:POWER.
    #[arg(long, default_value = "constant")]
    pub schedule: String,
    /// Weight decay.
    #[arg(long, default_value_t = 0.0)]
    pub weight_decay: f32,
    /// Loss normalisation: pixels (divide by the output pixels of the batch) or weight_sum
    /// (divide by the summed weights).
    #[arg(long, default_value = "pixels")]
    pub loss_norm: String,
    /// Dropout probability at the end of the contracting path (paper: 0.5).
    #[arg(long, default_value_t = 0.5)]
    pub dropout: f32,
    /// Run seed (initialisation, sampling, augmentation, dropout).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,

    /// Border weight amplitude w0 (paper: 10).
    #[arg(long, default_value_t = 10.0)]
    pub w0: f32,
    /// Border weight width σ in pixels (paper: 5).
    #[arg(long, default_value_t = 5.0)]
    pub sigma: f32,
    /// Class balance: inverse (frequency), none, or background:W.
    #[arg(long, default_value = "inverse")]
    pub balance: String,
    /// Probability that a tile is centred on a foreground pixel.
    #[arg(long, default_value_t = 0.9)]
    pub fg_prob: f32,
    /// Elastic deformation σ in pixels on a coarse grid (paper: 10; 0 disables).
    #[arg(long, default_value_t = 10.0)]
    pub elastic_sigma: f32,
    /// Nodes per axis of the elastic grid (paper: 3).
    #[arg(long, default_value_t = 3)]
    pub elastic_grid: usize,
    /// Largest free rotation in degrees (0 disables).
    #[arg(long, default_value_t = 15.0)]
    pub rotation: f32,
    /// No flips and quarter turns.
    #[arg(long)]
    pub no_flip: bool,
    /// No gray-value augmentation.
    #[arg(long)]
    pub no_gray: bool,

    /// Write the checkpoint every N steps (and at the end).
    #[arg(long, default_value_t = 100)]
    pub checkpoint_every: u64,
    /// Log the training loss every N steps (and at the end).
    #[arg(long, default_value_t = 20)]
    pub log_every: u64,
    /// Validate every N steps (and at the end).
    #[arg(long, default_value_t = 200)]
    pub validate_every: u64,
    /// Tile size for validation prediction (default: the largest legal size ≤ 508).
    #[arg(long)]
    pub val_tile: Option<usize>,
    /// Stored dtype of the exported model: f32 or f16.
    #[arg(long, default_value = "f32")]
    pub dtype: String,
    /// No progress bar.
    #[arg(long)]
    pub no_progress: bool,
}

fn parse_balance(s: &str) -> Result<ClassBalance, String> {
    match s.split_once(':') {
        None if s == "inverse" => Ok(ClassBalance::InverseFrequency),
        None if s == "none" => Ok(ClassBalance::None),
        Some(("background", w)) => match w.parse::<f32>() {
            Ok(b) if b.is_finite() && b >= 0.0 => Ok(ClassBalance::Fixed { background: b }),
            _ => Err(format!("balance '{s}': bad weight")),
        },
        _ => Err(format!(
            "balance '{s}': expected inverse, none or background:W"
        )),
    }
}

/// What `run` needs besides the arguments: the run's files.
pub struct OutFiles {
    /// `OUT/model.safetensors`.
    pub model: PathBuf,
    /// `OUT/checkpoint.ckpt`.
    pub checkpoint: PathBuf,
    /// `OUT/log.csv`.
    pub log: PathBuf,
    /// `OUT/curves.png`.
    pub curves: PathBuf,
}

impl OutFiles {
    fn new(out: &std::path::Path) -> Self {
        OutFiles {
            model: out.join("model.safetensors"),
            checkpoint: out.join("checkpoint.ckpt"),
            log: out.join("log.csv"),
            curves: out.join("curves.png"),
        }
    }
}

/// Runs `train`.
pub fn run(a: &TrainArgs, threads: usize) -> Result<(), String> {
    let e = |e: unet_train::TrainError| e.to_string();
    let kind = a.data.labels_are;
    if kind == LabelKind::Instance && a.classes != 2 {
        return Err(format!(
            "instance labels give 2 classes (background, cell), not --classes {}",
            a.classes
        ));
    }
    let config = Config {
        in_channels: 1,
        num_classes: a.classes,
        base_channels: a.base,
        levels: a.levels,
        padding: a.padding,
    };
    config.validate().map_err(|x| x.to_string())?;
    let geometry = Geometry::new(a.levels, a.padding).map_err(|x| x.to_string())?;
    let tile = check_tile(&geometry, a.tile)?;
    let (oh, ow) = geometry
        .output_size(tile, tile)
        .map_err(|x| x.to_string())?;
    let val_tile = match a.val_tile {
        Some(t) => check_tile(&geometry, t)?,
        None => legal_tile_at_most(&geometry, 508.max(tile)),
    };
    let optimizer = OptimizerKind::parse(&a.optimizer).map_err(e)?;
    let schedule = Schedule::parse(&a.schedule, a.steps).map_err(e)?;
    let loss_norm = LossNorm::parse(&a.loss_norm).map_err(e)?;
    let dtype = StoreDtype::parse(&a.dtype).map_err(e)?;
    let balance = parse_balance(&a.balance)?;
    let class_names: Vec<String> = match &a.class_names {
        Some(s) => s.split(',').map(|n| n.trim().to_string()).collect(),
        None if kind == LabelKind::Instance => vec!["background".into(), "cell".into()],
        None => Vec::new(),
    };
    if !class_names.is_empty() && class_names.len() != a.classes {
        return Err(format!(
            "{} class names for {} classes",
            class_names.len(),
            a.classes
        ));
    }

    // Data: load, choose training/validation samples, normalise.
    let t0 = std::time::Instant::now();
    let all = dataset::load(&a.data.sources()?, kind, a.classes).map_err(e)?;
    let n_loaded = all.len();
    let names: Vec<String> = all.iter().map(|s| s.name.clone()).collect();
    let (train, mut val) = match (&a.val_frames, &a.val_names, a.val_fraction) {
        (Some(ix), _, _) => {
            let ix = dataset::parse_indices(ix).map_err(e)?;
            dataset::split_checked(all, &SplitSpec::Indices(ix)).map_err(e)?
        }
        (None, Some(names), _) => {
            let names = names.split(',').map(|n| n.trim().to_string()).collect();
            dataset::split_checked(all, &SplitSpec::Names(names)).map_err(e)?
        }
        (None, None, f) => {
            let f = f.unwrap_or(if n_loaded >= 2 { 0.2 } else { 0.0 });
            dataset::split_checked(all, &SplitSpec::LastFraction(f)).map_err(e)?
        }
    };
    let mut train = match &a.train_frames {
        // Positions refer to the load order; map them onto what the split left for training.
        Some(ix) => {
            let ix = dataset::parse_indices(ix).map_err(e)?;
            if let Some(&bad) = ix.iter().find(|&&i| i >= n_loaded) {
                return Err(format!(
                    "training index {bad} is out of range: {n_loaded} samples were loaded"
                ));
            }
            let keep: Vec<&String> = ix.iter().map(|&i| &names[i]).collect();
            train
                .into_iter()
                .filter(|s| keep.contains(&&s.name))
                .collect()
        }
        None => train,
    };
    if train.is_empty() {
        return Err("no training samples left after the split".into());
    }
    dataset::normalize_all(&mut train, a.normalize).map_err(e)?;
    dataset::normalize_all(&mut val, a.normalize).map_err(e)?;
    let weights = WeightParams {
        w0: a.w0,
        sigma: a.sigma,
        balance,
        ignore: a.data.ignore,
    };
    let augment = AugmentParams {
        elastic_sigma: a.elastic_sigma,
        elastic_grid: a.elastic_grid,
        flip: !a.no_flip,
        rot90: !a.no_flip,
        rotation_deg: a.rotation,
        ..if a.no_gray {
            AugmentParams {
                gamma: (1.0, 1.0),
                contrast: (1.0, 1.0),
                brightness: 0.0,
                ..AugmentParams::default()
            }
        } else {
            AugmentParams::default()
        }
    };
    let mut sampler = TileSampler::new(&train, kind, &weights, (tile, tile), (oh, ow), augment)
        .map_err(|x| x.to_string())?
        .with_foreground_probability(a.fg_prob);
    eprintln!(
        "data: {} training and {} validation images ({} loaded), weight maps ready in {:.1} s",
        train.len(),
        val.len(),
        n_loaded,
        t0.elapsed().as_secs_f64()
    );

    // Trainer: fresh or resumed.
    std::fs::create_dir_all(&a.out).map_err(|x| format!("{}: {x}", a.out.display()))?;
    let files = OutFiles::new(&a.out);
    let session = SessionConfig {
        config,
        optimizer,
        weight_decay: a.weight_decay,
        settings: TrainSettings {
            batch: a.batch,
            lr: a.lr,
            schedule,
            loss_norm,
            dropout: a.dropout,
            seed: a.seed,
        },
    };
    if a.resume && !files.checkpoint.exists() {
        return Err(format!(
            "--resume: {} does not exist",
            files.checkpoint.display()
        ));
    }
    if !a.resume && files.log.exists() {
        // A fresh run starts a fresh log.
        std::fs::remove_file(&files.log).map_err(|x| format!("{}: {x}", files.log.display()))?;
    }
    let mut trainer = build(&session, a.resume.then_some(files.checkpoint.as_path())).map_err(e)?;
    eprintln!(
        "model: {} levels, base {}, {} padding, tile {tile}² → {oh}×{ow}, batch {}, {} threads{}",
        a.levels,
        a.base,
        padding_str(a.padding),
        a.batch,
        threads,
        if a.resume {
            format!("; resumed at step {}", trainer.step_count())
        } else {
            String::new()
        }
    );

    let mut run_meta = BTreeMap::new();
    run_meta.insert("tile".into(), tile.to_string());
    run_meta.insert("levels".into(), a.levels.to_string());
    let provenance = vec![
        (
            "trainer".to_string(),
            format!("unet-train {}", env!("CARGO_PKG_VERSION")),
        ),
        (
            "loss".to_string(),
            "weighted softmax cross-entropy".to_string(),
        ),
        ("loss_w0".to_string(), a.w0.to_string()),
        ("loss_sigma".to_string(), a.sigma.to_string()),
        ("loss_balance".to_string(), a.balance.clone()),
        ("train_tile".to_string(), tile.to_string()),
        (
            "train_samples".to_string(),
            train
                .iter()
                .map(|s| s.name.as_str())
                .collect::<Vec<_>>()
                .join(","),
        ),
    ];
    let opts = RunOptions {
        steps: a.steps,
        time_budget: a.time_budget.map(Duration::from_secs_f64),
        checkpoint_every: a.checkpoint_every,
        checkpoint_path: Some(files.checkpoint.clone()),
        log_every: a.log_every,
        validate_every: a.validate_every,
        metric_names: if val.is_empty() {
            Vec::new()
        } else {
            Accumulator::new(a.classes)
                .summary()
                .named()
                .into_iter()
                .map(|(k, _)| k)
                .collect()
        },
        log_path: Some(files.log.clone()),
        progress: !a.no_progress,
        out: files.model.clone(),
        dtype,
        info: ModelInfo {
            normalization: Some(a.normalize),
            class_names,
            provenance,
        },
        optimizer,
        weight_decay: a.weight_decay,
        run_meta,
    };
    let ignore = a.data.ignore;
    let mut validate = |b: &CpuBackend| {
        if val.is_empty() {
            return Ok(Vec::new());
        }
        // Validation images are already normalised.
        evaluate_samples(b, &val, kind, ignore, Normalization::None, val_tile, 2).map(|s| s.named())
    };
    let t_run = std::time::Instant::now();
    let summary = run_loop(&mut trainer, &mut sampler, Some(&mut validate), &opts).map_err(e)?;
    let secs = t_run.elapsed().as_secs_f64();
    write_curves(&files)?;
    println!(
        "trained to step {} in {secs:.1} s ({:.2} tiles/s); last train loss {:.4}",
        summary.steps, summary.tiles_per_s, summary.last_loss
    );
    if !summary.last_metrics.is_empty() {
        println!(
            "validation: {}",
            summary
                .last_metrics
                .iter()
                .map(|(k, v)| format!("{} {v:.4}", k.trim_start_matches("val_")))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    println!(
        "wrote {}, {}, {}, {}",
        files.model.display(),
        files.checkpoint.display(),
        files.log.display(),
        files.curves.display()
    );
    Ok(())
}

/// Renders `log.csv` into `curves.png`.
fn write_curves(files: &OutFiles) -> Result<(), String> {
    if !files.log.exists() {
        return Ok(());
    }
    let (header, rows) = unet_train::plot::read_log_csv(&files.log).map_err(|e| e.to_string())?;
    let panels = unet_train::plot::curves_from_log(&header, &rows);
    unet_train::plot::write_png(&files.curves, &panels, 900, 700).map_err(|e| e.to_string())
}
