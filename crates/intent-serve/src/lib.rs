//! intent-serve: the inference library. Load any model folder the toolkit writes and predict,
//! with no HTTP, database or training code compiled in (the server is `intent-server`).
//!
//! - [`Classifier`] loads a model folder by kind (MLP, SVM, zero-shot, fine-tuned BERT) and
//!   predicts labels with confidences; every kind implements [`Predictor`].
//! - [`ModelSpec`] names a model: a folder, or `models/NAME@ALIAS` in a registry.
//! - [`Embedder`] gives sentence vectors of a sentence-embedding folder.
//! - [`Batcher`] groups concurrent requests to transformer models under a token budget.
//! - [`evaluation`] scores a classifier on labeled data.
//!
//! ```
//! use intent_data::{Dataset, Example};
//! use intent_serve::Classifier;
//! use intent_train::{train_mlp_to_dir, DeviceSpec, EngineConfig, MlpOptions};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // Load data (here built in place; `intent_data::load_dataset` reads files) and train a tiny MLP.
//! let data = Dataset::new(vec![
//!     Example::new("i lost my card", "card"),
//!     Example::new("my card was stolen", "card"),
//!     Example::new("send money to my brother", "transfer"),
//!     Example::new("transfer money abroad", "transfer"),
//! ]);
//! let dir = tempfile::tempdir()?;
//! let engine = EngineConfig { epochs: 30, lr: 0.05, progress: false, ..Default::default() };
//! let options = MlpOptions { hidden_size: 8, engine, ..Default::default() };
//! train_mlp_to_dir(DeviceSpec::Cpu, &data, None, &options, dir.path())?;
//!
//! // Load the folder and predict.
//! let model = Classifier::load(dir.path())?;
//! let prediction = model.predict("my card is gone")?;
//! assert_eq!(prediction.label, "card");
//! assert!(prediction.confidence > 0.5);
//! # Ok(())
//! # }
//! ```

use std::path::PathBuf;

pub mod batcher;
pub mod classifier;
pub mod embedder;
pub mod evaluation;
pub mod predictor;
pub mod spec;

pub use batcher::{BatchConfig, BatchObserver, Batcher};
pub use classifier::{Classifier, LabelScore, Prediction};
pub use embedder::Embedder;
pub use predictor::Predictor;
pub use spec::{ModelSpec, Resolved};

/// Errors of the inference library.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The folder holds a model kind this build cannot serve.
    #[error(
        "{}: model kind '{kind}' is not a classifier this library loads (it loads mlp, svm, zero-shot, \
         and Hugging Face BERT classification folders; an ncf recommender is served by \
         `intent recommend` and /v1/recommend)",
        path.display()
    )]
    UnsupportedKind {
        /// The config file.
        path: PathBuf,
        /// The kind found.
        kind: String,
    },
    /// Loading failed.
    #[error(transparent)]
    Model(intent_models::ModelError),
    /// An input the model cannot take (a text its tokenizer rejects): the caller's fault.
    #[error("{0}")]
    Input(String),
    /// A model spec (`DIR` or `models/NAME@ALIAS`) that does not resolve.
    #[error("model '{spec}': {message}")]
    Spec {
        /// The spec as given.
        spec: String,
        /// What is wrong.
        message: String,
    },
    /// The model loaded but its smoke prediction was wrong.
    #[error("{}: smoke test failed: {message}", path.display())]
    SmokeTest {
        /// The model folder.
        path: PathBuf,
        /// What was wrong with the prediction.
        message: String,
    },
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The model worker stopped (the model was dropped while a request waited).
    #[error("the model worker stopped")]
    WorkerGone,
}

impl ServeError {
    /// A model error, with rejected inputs as [`ServeError::Input`].
    pub fn from_model(e: intent_models::ModelError) -> Self {
        match e {
            intent_models::ModelError::Input(message) => ServeError::Input(message),
            other => ServeError::Model(other),
        }
    }
}

impl From<intent_models::ModelError> for ServeError {
    fn from(e: intent_models::ModelError) -> Self {
        ServeError::from_model(e)
    }
}
