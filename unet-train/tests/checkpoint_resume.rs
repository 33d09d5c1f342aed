//! Resuming is exact: "train N steps" and "train k steps, save a checkpoint to disk, load it into
//! a fresh trainer, train N − k steps" give bit-identical weights and optimiser state, for SGD
//! with momentum and for Adam, with dropout on and a batch of 2.

use std::collections::BTreeMap;

use ndarray::{Array3, Array4};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use unet_core::{Config, Padding};
use unet_train::backend::cpu::CpuBackend;
use unet_train::backend::Backend;
use unet_train::checkpoint::Checkpoint;
use unet_train::init::he_init;
use unet_train::loss::LossNorm;
use unet_train::optim::{Optimizer, OptimizerKind};
use unet_train::schedule::Schedule;
use unet_train::train::{BatchSource, OwnedBatch, TrainSettings, Trainer};
use unet_train::TrainError;

/// Random tiles, labels and weights drawn from the trainer's RNG.
struct Synthetic {
    size: usize,
    out: usize,
}

impl BatchSource for Synthetic {
    fn next_batch(&mut self, batch: usize, rng: &mut ChaCha8Rng) -> unet_train::Result<OwnedBatch> {
        Ok(OwnedBatch {
            input: Array4::from_shape_simple_fn((batch, 1, self.size, self.size), || {
                rng.random_range(0.0f32..1.0)
            }),
            target: Array3::from_shape_simple_fn((batch, self.out, self.out), || {
                rng.random_range(0u8..2)
            }),
            weight: Array3::from_shape_simple_fn((batch, self.out, self.out), || {
                rng.random_range(0.0f32..3.0)
            }),
        })
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

fn trainer(kind: OptimizerKind) -> Trainer<CpuBackend> {
    let params = he_init(&cfg(), 5).unwrap();
    let opt = Optimizer::new(kind, 1e-4, &params);
    let settings = TrainSettings {
        batch: 2,
        lr: 0.01,
        schedule: Schedule::Step {
            every: 2,
            gamma: 0.5,
        },
        loss_norm: LossNorm::Pixels,
        dropout: 0.5,
        seed: 42,
    };
    Trainer::new(CpuBackend::new(params, opt), settings).unwrap()
}

#[test]
fn resume_is_bit_identical() {
    let dir = std::env::temp_dir().join(format!("unet-ckpt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for kind in [OptimizerKind::paper_sgd(), OptimizerKind::adam()] {
        let (n, k) = (5u64, 2u64);
        let mut src = Synthetic { size: 28, out: 12 };
        let mut full = trainer(kind);
        let mut losses = Vec::new();
        for _ in 0..n {
            losses.push(full.step(&mut src).unwrap().loss);
        }
        assert!(losses.iter().all(|l| l.is_finite()));

        let mut first = trainer(kind);
        for _ in 0..k {
            first.step(&mut src).unwrap();
        }
        let path = dir.join("run.ckpt");
        let mut run = BTreeMap::new();
        run.insert("data".to_string(), "synthetic".to_string());
        first
            .checkpoint(kind, 1e-4, run)
            .unwrap()
            .save(&path)
            .unwrap();
        drop(first);

        let ckpt = Checkpoint::load(&path).unwrap();
        assert_eq!(ckpt.step, k);
        assert_eq!(ckpt.run.get("data").map(String::as_str), Some("synthetic"));
        assert_eq!(ckpt.optimizer, kind);
        // A fresh trainer with a different init: restore must overwrite everything.
        let params = he_init(&cfg(), 999).unwrap();
        let opt = Optimizer::new(ckpt.optimizer, ckpt.weight_decay, &params);
        let mut resumed =
            Trainer::new(CpuBackend::new(params, opt), full.settings().clone()).unwrap();
        resumed.restore(&ckpt).unwrap();
        let mut resumed_losses = Vec::new();
        for _ in k..n {
            resumed_losses.push(resumed.step(&mut src).unwrap().loss);
        }
        assert_eq!(resumed.step_count(), n);
        let (a, b) = (
            full.backend().params().unwrap(),
            resumed.backend().params().unwrap(),
        );
        for t in 0..a.len() {
            let bits = |p: &unet_train::params::Params| {
                p.data(t).iter().map(|v| v.to_bits()).collect::<Vec<_>>()
            };
            assert_eq!(
                bits(&a),
                bits(&b),
                "{kind:?}: {} differs after resume",
                a.id(t)
            );
        }
        assert_eq!(
            full.backend().optimizer_state().unwrap(),
            resumed.backend().optimizer_state().unwrap()
        );
        assert_eq!(&losses[k as usize..], &resumed_losses[..], "{kind:?}");
        // And training changed the weights at all.
        assert!(a.max_abs_diff(&he_init(&cfg(), 5).unwrap()) > 0.0);
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn corrupt_or_foreign_checkpoints_are_errors() {
    let dir = std::env::temp_dir().join(format!("unet-ckpt-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let t = trainer(OptimizerKind::adam());
    let bytes = t
        .checkpoint(OptimizerKind::adam(), 0.0, BTreeMap::new())
        .unwrap()
        .to_bytes()
        .unwrap();
    assert!(Checkpoint::from_bytes(&bytes).is_ok());
    assert!(Checkpoint::from_bytes(&bytes[..bytes.len() - 4]).is_err());
    assert!(Checkpoint::from_bytes(b"not a file").is_err());
    let p = dir.join("missing.ckpt");
    assert!(matches!(Checkpoint::load(&p), Err(TrainError::Io { .. })));
    // A checkpoint restored into a trainer of another architecture is refused.
    let ck = Checkpoint::from_bytes(&bytes).unwrap();
    let other = Config {
        base_channels: 2,
        ..cfg()
    };
    let params = he_init(&other, 1).unwrap();
    let opt = Optimizer::new(OptimizerKind::adam(), 0.0, &params);
    let mut tr = Trainer::new(CpuBackend::new(params, opt), t.settings().clone()).unwrap();
    assert!(tr.restore(&ck).is_err());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn non_finite_loss_stops_without_update() {
    let mut t = trainer(OptimizerKind::paper_sgd());
    let before = t.backend().params().unwrap();
    let mut batch = Synthetic { size: 28, out: 12 }
        .next_batch(2, &mut rand::SeedableRng::seed_from_u64(1))
        .unwrap();
    batch.input[[0, 0, 5, 5]] = f32::NAN;
    match t.step_on(&batch) {
        Err(TrainError::NonFinite { step: 0, .. }) => {}
        other => panic!("expected NonFinite, got {other:?}"),
    }
    assert_eq!(t.step_count(), 0);
    assert_eq!(t.backend().params().unwrap(), before);
}
