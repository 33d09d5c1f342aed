//! The training loop end to end on a learnable synthetic task (class = "centre pixel brighter
//! than 0.5"): the loss falls, the CSV log, checkpoint and model file are written, the time
//! budget stops the run, and a diverging run stops with a clear error keeping the last good
//! checkpoint.

use std::collections::BTreeMap;

use ndarray::{s, Array3, Array4};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use unet_core::{Config, Padding};
use unet_train::backend::cpu::CpuBackend;
use unet_train::checkpoint::Checkpoint;
use unet_train::export::{ModelInfo, StoreDtype};
use unet_train::init::he_init;
use unet_train::loss::LossNorm;
use unet_train::optim::{Optimizer, OptimizerKind};
use unet_train::schedule::Schedule;
use unet_train::train::{run, BatchSource, OwnedBatch, RunOptions, TrainSettings, Trainer};
use unet_train::TrainError;

struct Bright;

impl BatchSource for Bright {
    fn next_batch(&mut self, batch: usize, rng: &mut ChaCha8Rng) -> unet_train::Result<OwnedBatch> {
        let input =
            Array4::from_shape_simple_fn((batch, 1, 28, 28), || rng.random_range(0.0f32..1.0));
        let target = Array3::from_shape_fn((batch, 12, 12), |(b, y, x)| {
            u8::from(input[[b, 0, y + 8, x + 8]] > 0.5)
        });
        Ok(OwnedBatch {
            input,
            target,
            weight: Array3::from_elem((batch, 12, 12), 1.0),
        })
    }
}

/// Diverges on purpose: from the third batch on, inputs are NaN.
struct Poison(u32);

impl BatchSource for Poison {
    fn next_batch(&mut self, batch: usize, rng: &mut ChaCha8Rng) -> unet_train::Result<OwnedBatch> {
        self.0 += 1;
        let mut b = Bright.next_batch(batch, rng)?;
        if self.0 >= 3 {
            b.input.slice_mut(s![.., .., 10..12, 10..12]).fill(f32::NAN);
        }
        Ok(b)
    }
}

fn cfg() -> Config {
    Config {
        in_channels: 1,
        num_classes: 2,
        base_channels: 4,
        levels: 2,
        padding: Padding::Valid,
    }
}

fn trainer() -> Trainer<CpuBackend> {
    let p = he_init(&cfg(), 1).unwrap();
    let opt = Optimizer::new(OptimizerKind::adam(), 0.0, &p);
    let settings = TrainSettings {
        batch: 2,
        lr: 3e-3,
        schedule: Schedule::Constant,
        loss_norm: LossNorm::Pixels,
        dropout: 0.0,
        seed: 9,
    };
    Trainer::new(CpuBackend::new(p, opt), settings).unwrap()
}

fn opts(dir: &std::path::Path, steps: u64) -> RunOptions {
    RunOptions {
        steps,
        time_budget: None,
        checkpoint_every: 2,
        checkpoint_path: Some(dir.join("run.ckpt")),
        log_every: 10,
        validate_every: 10,
        metric_names: Vec::new(),
        log_path: Some(dir.join("log.csv")),
        progress: false,
        out: dir.join("model.safetensors"),
        dtype: StoreDtype::F32,
        info: ModelInfo {
            provenance: vec![("data".into(), "synthetic".into())],
            ..ModelInfo::default()
        },
        optimizer: OptimizerKind::adam(),
        weight_decay: 0.0,
        run_meta: BTreeMap::new(),
    }
}

fn tmp(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("unet-run-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn loss_falls_and_files_are_written() {
    let dir = tmp("ok");
    let mut t = trainer();
    let mut calls = 0;
    let mut val = |b: &CpuBackend| -> unet_train::Result<Vec<(String, f64)>> {
        calls += 1;
        let _ = b;
        Ok(vec![("val_calls".to_string(), calls as f64)])
    };
    let s = run(&mut t, &mut Bright, Some(&mut val), &opts(&dir, 60)).unwrap();
    assert_eq!(s.steps, 60);
    let log = std::fs::read_to_string(dir.join("log.csv")).unwrap();
    let rows: Vec<&str> = log.lines().collect();
    assert_eq!(
        rows[0],
        "step,lr,train_loss,tiles_per_s,elapsed_s,val_calls"
    );
    assert_eq!(rows.len(), 7, "{log}");
    let losses: Vec<f64> = rows[1..]
        .iter()
        .map(|r| r.split(',').nth(2).unwrap().parse().unwrap())
        .collect();
    assert!(losses[5] < 0.8 * losses[0], "loss did not fall: {losses:?}");
    let ck = Checkpoint::load(&dir.join("run.ckpt")).unwrap();
    assert_eq!(ck.step, 60);
    let bytes = std::fs::read(dir.join("model.safetensors")).unwrap();
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let meta = meta.metadata().clone().unwrap();
    assert_eq!(meta["steps"], "60");
    assert_eq!(meta["data"], "synthetic");
    assert_eq!(meta["seed"], "9");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn validation_less_often_than_logging_leaves_cells_empty() {
    let dir = tmp("sparse");
    let mut t = trainer();
    let mut calls = 0;
    let mut val = |_: &CpuBackend| -> unet_train::Result<Vec<(String, f64)>> {
        calls += 1;
        Ok(vec![
            ("val_calls".to_string(), calls as f64),
            ("unlisted".to_string(), 7.0),
        ])
    };
    let o = RunOptions {
        log_every: 10,
        validate_every: 30,
        metric_names: vec!["val_calls".into()],
        ..opts(&dir, 50)
    };
    run(&mut t, &mut Bright, Some(&mut val), &o).unwrap();
    let log = std::fs::read_to_string(dir.join("log.csv")).unwrap();
    let rows: Vec<Vec<&str>> = log.lines().map(|l| l.split(',').collect()).collect();
    assert_eq!(rows[0].last(), Some(&"val_calls"));
    // Rows at 10, 20, 30 (validated), 40, 50 (the last step always validates).
    let steps: Vec<&str> = rows[1..].iter().map(|r| r[0]).collect();
    assert_eq!(steps, ["10", "20", "30", "40", "50"]);
    let vals: Vec<&str> = rows[1..].iter().map(|r| r[5]).collect();
    assert_eq!(vals, ["", "", "1", "", "2"], "{log}");
    assert_eq!(calls, 2);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn time_budget_stops_and_still_exports() {
    let dir = tmp("budget");
    let mut t = trainer();
    let o = RunOptions {
        time_budget: Some(std::time::Duration::ZERO),
        ..opts(&dir, 100)
    };
    let s = run(&mut t, &mut Bright, None, &o).unwrap();
    assert_eq!(s.steps, 0);
    assert!(dir.join("model.safetensors").exists());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn divergence_keeps_last_good_checkpoint() {
    let dir = tmp("nan");
    let mut t = trainer();
    let err = run(&mut t, &mut Poison(0), None, &opts(&dir, 10)).unwrap_err();
    assert!(
        matches!(err, TrainError::NonFinite { step: 2, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("last good checkpoint"));
    let ck = Checkpoint::load(&dir.join("run.ckpt")).unwrap();
    assert_eq!(ck.step, 2);
    assert!(ck.params.all_finite());
    assert!(!dir.join("model.safetensors").exists());
    std::fs::remove_dir_all(&dir).unwrap();
}
