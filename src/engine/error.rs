//! The engine's error type.

use std::path::PathBuf;

/// Everything that can go wrong in the engine. Messages are one line and end with the
/// path involved, if any.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// Backbone weights are missing or do not fit the network.
    #[error("cannot load backbone weights ({message}): {}", path.display())]
    Weights {
        /// The weights file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A model file could not be read or written.
    #[error("model file error ({message}): {}", path.display())]
    ModelFile {
        /// The model file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// An image could not be decoded.
    #[error(transparent)]
    Image(#[from] crate::core::image_io::ImageLoadError),
    /// The configuration is not usable.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A job needs a model and none is loaded or trained.
    #[error("no model: train one or load a model file first")]
    NoModel,
    /// There is nothing to work on.
    #[error("no usable images: {0}")]
    NoImages(String),
    /// The job was cancelled.
    #[error("cancelled")]
    Cancelled,
    /// The loss became NaN or infinite.
    #[error("training diverged at epoch {epoch} (loss {loss}); the previous model is kept")]
    Diverged {
        /// 0-based epoch.
        epoch: usize,
        /// The offending loss.
        loss: f64,
    },
    /// The requested device is not available.
    #[error("device not available: {0}")]
    Device(String),
    /// An error raised by libtorch.
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
}

/// Result alias of the engine.
pub type Result<T, E = EngineError> = std::result::Result<T, E>;
