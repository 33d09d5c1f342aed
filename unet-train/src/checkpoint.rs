//! Training checkpoints: everything needed to continue a run bit-identically — parameters,
//! optimiser kind, hyper-parameters and buffers, the step counter, the sampling RNG's exact
//! position, and the run's settings as free-form strings — in one safetensors file written
//! atomically ([`crate::atomic_write`]).
//!
//! Layout: tensors `model.NAME` (f32) and `optim.I.NAME` (f32, buffer `I` of the optimiser,
//! see [`crate::optim::OptimState`]); `__metadata__`: `format=unet-checkpoint`,
//! `format_version=1`, the model's config keys (as in a model file), `optimizer`
//! ([`OptimizerKind::describe`]), `weight_decay`, `optim_step`, `step`, `rng_seed` (64 hex
//! digits), `rng_stream`, `rng_word_pos` (decimal), and every `run.KEY` of [`Checkpoint::run`].
//! f32 values are stored bit-exactly, so resuming loses nothing.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use safetensors::SafeTensors;
use unet_core::{Config, Padding};

use crate::atomic_write::write_atomic;
use crate::error::{Result, TrainError};
use crate::export::{serialize, StoreDtype};
use crate::optim::{OptimState, OptimizerKind};
use crate::params::Params;

/// `format` value of a checkpoint.
pub const CHECKPOINT_FORMAT: &str = "unet-checkpoint";
/// `format_version` this build writes and reads.
pub const CHECKPOINT_VERSION: u32 = 1;

/// A training state.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    /// Model parameters.
    pub params: Params,
    /// Optimiser kind and hyper-parameters.
    pub optimizer: OptimizerKind,
    /// Optimiser weight decay.
    pub weight_decay: f32,
    /// Optimiser state.
    pub optim: OptimState,
    /// Training steps completed.
    pub step: u64,
    /// The sampling RNG, at the position the next step starts from.
    pub rng: ChaCha8Rng,
    /// Run settings (learning rate, schedule, loss parameters, data path, ...), stored as
    /// `run.KEY` metadata.
    pub run: BTreeMap<String, String>,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex32(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 || !s.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

impl Checkpoint {
    /// The file's bytes.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let p = &self.params;
        let c = p.config();
        let mut meta: HashMap<String, String> = HashMap::new();
        let mut put = |k: &str, v: String| meta.insert(k.to_string(), v);
        put("format", CHECKPOINT_FORMAT.into());
        put("format_version", CHECKPOINT_VERSION.to_string());
        put("in_channels", c.in_channels.to_string());
        put("num_classes", c.num_classes.to_string());
        put("base_channels", c.base_channels.to_string());
        put("levels", c.levels.to_string());
        put("padding", c.padding.as_str().into());
        put("optimizer", self.optimizer.describe());
        put("weight_decay", format!("{:?}", self.weight_decay));
        put("optim_step", self.optim.step.to_string());
        put("optim_buffers", self.optim.buffers.len().to_string());
        put("step", self.step.to_string());
        put("rng_seed", hex(&self.rng.get_seed()));
        put("rng_stream", self.rng.get_stream().to_string());
        put("rng_word_pos", self.rng.get_word_pos().to_string());
        for (k, v) in &self.run {
            meta.insert(format!("run.{k}"), v.clone());
        }
        let mut tensors = Vec::new();
        for k in 0..p.len() {
            tensors.push((
                format!("model.{}", p.id(k)),
                p.tensor(k).shape().to_vec(),
                p.data(k),
            ));
        }
        for (i, b) in self.optim.buffers.iter().enumerate() {
            p.check_same(b)?;
            for k in 0..b.len() {
                tensors.push((
                    format!("optim.{i}.{}", b.id(k)),
                    b.tensor(k).shape().to_vec(),
                    b.data(k),
                ));
            }
        }
        serialize(tensors, StoreDtype::F32, meta)
    }

    /// Writes the checkpoint atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        write_atomic(path, &self.to_bytes()?)
    }

    /// Reads a checkpoint file.
    pub fn load(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| TrainError::io(path, e))?;
        Self::from_bytes(&bytes).map_err(|e| match e {
            TrainError::Invalid(what) => TrainError::Checkpoint {
                path: path.to_path_buf(),
                what,
            },
            e => e,
        })
    }

    /// Parses a checkpoint from bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let (_, header) = SafeTensors::read_metadata(bytes)?;
        let st = SafeTensors::deserialize(bytes)?;
        let meta = header.metadata().clone().unwrap_or_default();
        let get = |k: &str| {
            meta.get(k)
                .map(String::as_str)
                .ok_or_else(|| TrainError::invalid(format!("metadata lacks '{k}'")))
        };
        let num = |k: &str| -> Result<u64> {
            get(k)?
                .parse()
                .map_err(|_| TrainError::invalid(format!("metadata '{k}' is not an integer")))
        };
        if get("format")? != CHECKPOINT_FORMAT {
            return Err(TrainError::invalid(
                "not a unet checkpoint (format is not 'unet-checkpoint')",
            ));
        }
        if num("format_version")? != CHECKPOINT_VERSION as u64 {
            return Err(TrainError::invalid(format!(
                "unsupported checkpoint version {}",
                get("format_version")?
            )));
        }
        let padding = match get("padding")? {
            "valid" => Padding::Valid,
            "same" => Padding::Same,
            p => return Err(TrainError::invalid(format!("bad padding '{p}'"))),
        };
        let usize_of = |k: &str| -> Result<usize> {
            usize::try_from(num(k)?).map_err(|_| TrainError::invalid(format!("'{k}' too large")))
        };
        let config = Config {
            in_channels: usize_of("in_channels")?,
            num_classes: usize_of("num_classes")?,
            base_channels: usize_of("base_channels")?,
            levels: usize_of("levels")?,
            padding,
        };
        let mut params = Params::zeros(&config)?;
        let read = |name: &str, dst: &mut Params, k: usize| -> Result<()> {
            let t = st
                .tensor(name)
                .map_err(|_| TrainError::invalid(format!("tensor '{name}' missing")))?;
            if t.dtype() != safetensors::Dtype::F32 || t.shape() != dst.tensor(k).shape() {
                return Err(TrainError::invalid(format!(
                    "tensor '{name}' has dtype {:?} shape {:?}, expected F32 {:?}",
                    t.dtype(),
                    t.shape(),
                    dst.tensor(k).shape()
                )));
            }
            for (d, b) in dst.data_mut(k).iter_mut().zip(t.data().chunks_exact(4)) {
                *d = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            }
            Ok(())
        };
        for k in 0..params.len() {
            let name = format!("model.{}", params.id(k));
            read(&name, &mut params, k)?;
        }
        let optimizer = OptimizerKind::parse(get("optimizer")?)?;
        let nbuf = usize_of("optim_buffers")?;
        if nbuf != optimizer.buffers() {
            return Err(TrainError::invalid(format!(
                "{nbuf} optimizer buffers for {}",
                optimizer.describe()
            )));
        }
        let mut buffers = Vec::with_capacity(nbuf);
        for i in 0..nbuf {
            let mut b = params.zeros_like();
            for k in 0..b.len() {
                let name = format!("optim.{i}.{}", b.id(k));
                read(&name, &mut b, k)?;
            }
            buffers.push(b);
        }
        let expected = params.len() * (1 + nbuf);
        if st.len() != expected {
            return Err(TrainError::invalid(format!(
                "{} tensors, expected {expected}",
                st.len()
            )));
        }
        let weight_decay: f32 = get("weight_decay")?
            .parse()
            .map_err(|_| TrainError::invalid("bad weight_decay"))?;
        let seed = unhex32(get("rng_seed")?).ok_or_else(|| TrainError::invalid("bad rng_seed"))?;
        let mut rng = ChaCha8Rng::from_seed(seed);
        rng.set_stream(num("rng_stream")?);
        let word_pos: u128 = get("rng_word_pos")?
            .parse()
            .map_err(|_| TrainError::invalid("bad rng_word_pos"))?;
        rng.set_word_pos(word_pos);
        let run = meta
            .iter()
            .filter_map(|(k, v)| k.strip_prefix("run.").map(|k| (k.to_string(), v.clone())))
            .collect();
        Ok(Checkpoint {
            params,
            optimizer,
            weight_decay,
            optim: OptimState {
                step: num("optim_step")?,
                buffers,
            },
            step: num("step")?,
            rng,
            run,
        })
    }
}
