//! [`TrainError`]: the one error type of the trainer's network side (backends, loss, optimisers,
//! export, checkpoints, the training loop).

use std::path::PathBuf;

/// What went wrong while training, exporting or resuming.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// unet-core refused something (a config, a tile size, a model file). Boxed: the core
    /// error carries two shapes and would make every `Result` of the trainer large.
    #[error(transparent)]
    Core(Box<unet_core::Error>),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The `safetensors` crate refused to write or parse a file.
    #[error("safetensors: {0}")]
    SafeTensors(#[from] safetensors::SafeTensorError),
    /// An argument is out of range or two inputs disagree (shapes, configs, class ids).
    #[error("invalid argument: {0}")]
    Invalid(String),
    /// Training data could not be read (the error names the file).
    #[error(transparent)]
    Data(#[from] crate::data::DataError),
    /// The tile sampler refused the training set.
    #[error("training tiles: {0}")]
    Sampler(#[from] crate::sampler::SamplerError),
    /// A checkpoint file is malformed or belongs to another run.
    #[error("checkpoint {path}: {what}")]
    Checkpoint {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        what: String,
    },
    /// The loss became NaN or infinite; training stops and the last good checkpoint is kept.
    #[error("loss is {loss} at step {step}: training diverged (lower --lr?); the last good checkpoint was kept")]
    NonFinite {
        /// Step whose loss was not finite (0-based).
        step: u64,
        /// The loss value.
        loss: f64,
    },
}

impl From<unet_core::Error> for TrainError {
    fn from(e: unet_core::Error) -> Self {
        TrainError::Core(Box::new(e))
    }
}

impl TrainError {
    /// An [`TrainError::Invalid`] from anything printable.
    pub fn invalid(what: impl Into<String>) -> Self {
        TrainError::Invalid(what.into())
    }

    /// An [`TrainError::Io`] for `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        TrainError::Io {
            path: path.into(),
            source,
        }
    }
}

/// Result with [`TrainError`].
pub type Result<T> = std::result::Result<T, TrainError>;
