//! Building a CPU training session from settings (what the `train` subcommand does before its
//! loop): He-initialised parameters, the optimiser, the trainer, and — with a checkpoint to
//! resume from — everything restored from it after checking that it belongs to the same
//! architecture and optimiser.

use std::path::Path;

use unet_core::Config;

use crate::backend::cpu::CpuBackend;
use crate::backend::device::{make_backend, Device};
use crate::backend::Backend;
use crate::checkpoint::Checkpoint;
use crate::error::{Result, TrainError};
use crate::init::he_init;
use crate::optim::{Optimizer, OptimizerKind};
use crate::train::{TrainSettings, Trainer};

/// Everything that fixes a training session besides the data.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionConfig {
    /// The architecture.
    pub config: Config,
    /// Optimiser and hyper-parameters.
    pub optimizer: OptimizerKind,
    /// Weight decay.
    pub weight_decay: f32,
    /// Loop settings (batch, learning rate, schedule, loss normalisation, dropout, seed).
    pub settings: TrainSettings,
}

/// A fresh CPU trainer (He init from `settings.seed`), or one resumed from `resume`.
pub fn build(cfg: &SessionConfig, resume: Option<&Path>) -> Result<Trainer<CpuBackend>> {
    cfg.config.validate()?;
    let params = he_init(&cfg.config, cfg.settings.seed)?;
    let optimizer = Optimizer::new(cfg.optimizer, cfg.weight_decay, &params);
    let trainer = Trainer::new(CpuBackend::new(params, optimizer), cfg.settings.clone())?;
    restore_from(trainer, cfg, resume)
}

/// As [`build`] on `device` ([`crate::backend::device::make_backend`]): the same He
/// initialisation and checkpoint checks; a device that is not available is an error.
pub fn build_on(
    cfg: &SessionConfig,
    resume: Option<&Path>,
    device: Device,
) -> Result<Trainer<Box<dyn Backend>>> {
    cfg.config.validate()?;
    let params = he_init(&cfg.config, cfg.settings.seed)?;
    let optimizer = Optimizer::new(cfg.optimizer, cfg.weight_decay, &params);
    let backend = make_backend(device, params, optimizer)?;
    let trainer = Trainer::new(backend, cfg.settings.clone())?;
    restore_from(trainer, cfg, resume)
}

fn restore_from<B: Backend>(
    mut trainer: Trainer<B>,
    cfg: &SessionConfig,
    resume: Option<&Path>,
) -> Result<Trainer<B>> {
    if let Some(path) = resume {
        let ck = Checkpoint::load(path)?;
        let bad = |what: String| TrainError::Checkpoint {
            path: path.to_path_buf(),
            what,
        };
        if ck.params.config() != &cfg.config {
            return Err(bad(format!(
                "was made for {:?}, not {:?}",
                ck.params.config(),
                cfg.config
            )));
        }
        if ck.optimizer != cfg.optimizer || ck.weight_decay.to_bits() != cfg.weight_decay.to_bits()
        {
            return Err(bad(format!(
                "uses optimizer {} (weight decay {}), not {} (weight decay {})",
                ck.optimizer.describe(),
                ck.weight_decay,
                cfg.optimizer.describe(),
                cfg.weight_decay
            )));
        }
        trainer.restore(&ck)?;
    }
    Ok(trainer)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::loss::LossNorm;
    use crate::schedule::Schedule;
    use unet_core::Padding;

    fn cfg() -> SessionConfig {
        SessionConfig {
            config: Config {
                in_channels: 1,
                num_classes: 2,
                base_channels: 2,
                levels: 2,
                padding: Padding::Same,
            },
            optimizer: OptimizerKind::paper_sgd(),
            weight_decay: 0.0,
            settings: TrainSettings {
                batch: 1,
                lr: 0.01,
                schedule: Schedule::Constant,
                loss_norm: LossNorm::Pixels,
                dropout: 0.0,
                seed: 3,
            },
        }
    }

    #[test]
    fn resume_checks_architecture_and_optimizer() {
        let dir = std::env::temp_dir().join(format!("unet-session-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("c.ckpt");
        let t = build(&cfg(), None).unwrap();
        t.checkpoint(cfg().optimizer, 0.0, BTreeMap::new())
            .unwrap()
            .save(&path)
            .unwrap();
        let r = build(&cfg(), Some(&path)).unwrap();
        assert_eq!(r.backend().params().unwrap(), t.backend().params().unwrap());
        let mut other = cfg();
        other.config.base_channels = 4;
        assert!(matches!(
            build(&other, Some(&path)),
            Err(TrainError::Checkpoint { .. })
        ));
        let mut adam = cfg();
        adam.optimizer = OptimizerKind::adam();
        assert!(matches!(
            build(&adam, Some(&path)),
            Err(TrainError::Checkpoint { .. })
        ));
        assert!(build(&cfg(), Some(&dir.join("missing"))).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
