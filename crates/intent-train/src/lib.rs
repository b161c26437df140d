//! intent-train: the training engine (burn 0.21, generic over `B: AutodiffBackend`) and the
//! per-model training code.
//!
//! - [`engine`]: epochs, AdamW, schedule, early stopping, best checkpoint, progress;
//! - [`batches`]: which examples each step sees, in shapes that stay few on accelerators;
//! - [`timing`]: time to the first step and steady-state speed; [`kernels`]: GPU kernel caches;
//! - [`mlp`]: the bag-of-words MLP;
//! - [`svm`]: linear SVM and kernel SVC (no burn: solvers on the host), calibration;
//! - [`ncf`]: NCF recommenders (host loop, [`ncf::engine`] on burn, [`ncf::run`] end to end);
//! - [`device`]: `--device cpu|ndarray|cuda:N|vulkan:N` → backend.
//!
//! ```
//! use intent_data::{Dataset, Example};
//! use intent_train::{train_mlp_to_dir, DeviceSpec, EngineConfig, MlpOptions};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let data = Dataset::new(vec![
//!     Example::new("i lost my card", "card"),
//!     Example::new("send money abroad", "transfer"),
//!     Example::new("my card was stolen", "card"),
//!     Example::new("transfer to my brother", "transfer"),
//! ]);
//! let out = tempfile::tempdir()?;
//! let engine = EngineConfig { epochs: 5, progress: false, ..Default::default() };
//! let options = MlpOptions { hidden_size: 8, engine, ..Default::default() };
//! let summary = train_mlp_to_dir(DeviceSpec::Cpu, &data, None, &options, out.path())?;
//! assert_eq!(summary.history.len(), 5);
//! assert!(out.path().join("config.json").is_file() && out.path().join("model.safetensors").is_file());
//! # Ok(())
//! # }
//! ```

pub mod advice;
pub mod batches;
pub mod bert;
pub mod checkpoint;
pub mod device;
pub mod device_adamw;
pub mod engine;
pub mod kernels;
pub mod loss;
pub mod mlp;
pub mod ncf;
pub mod optim;
pub mod progress;
pub mod schedule;
pub mod sparse;
pub mod svm;
pub mod timing;
mod validation;

pub use bert::{train_bert, train_bert_to_dir, BertOptions, BertRunSummary, TrainedBert};
pub use device::DeviceSpec;
pub use engine::{fit, EngineConfig, EpochLog, TrainTask};
pub use mlp::{train_mlp, train_mlp_to_dir, MlpOptions, MlpRunSummary, TrainedMlp};
pub use ncf::run::{train_ncf_to_dir, NcfOptions, NcfRunSummary, NcfTrainingRecord};
pub use schedule::LrSchedule;
pub use svm::{train_svm, train_svm_to_dir, SvmOptions, SvmRunSummary, TrainedSvm};
pub use timing::Timing;

/// Errors of training.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// A bad option value. Options are named by their field, in backticks, here and inside
    /// `message` (`` `batch_size` ``); a command-line tool maps them to its flags.
    #[error("invalid `{name}`: {message}")]
    Hyperparameter {
        /// The option's field name.
        name: &'static str,
        /// What was expected.
        message: String,
    },
    /// The data cannot be trained on.
    #[error("training data: {0}")]
    Data(String),
    /// The device cannot be used.
    #[error("device: {0}")]
    Device(String),
    /// The loss became NaN or infinite.
    #[error("training diverged at epoch {epoch}, step {step}: loss = {loss} (lower --lr?)")]
    Diverged {
        /// Epoch.
        epoch: usize,
        /// Global step.
        step: usize,
        /// The loss value.
        loss: f64,
    },
    /// A checkpoint cannot be written or resumed.
    #[error("checkpoint {}: {message}", path.display())]
    Checkpoint {
        /// The file or folder.
        path: std::path::PathBuf,
        /// What went wrong or was expected.
        message: String,
    },
    /// Model error (saving, architecture).
    #[error(transparent)]
    Model(#[from] intent_models::ModelError),
    /// Data-layer error.
    #[error(transparent)]
    DataLayer(#[from] intent_data::DataError),
}
