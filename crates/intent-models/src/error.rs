//! Error type of the models crate.

use std::path::PathBuf;

/// Errors loading, saving or running a model.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// File system error on a model file.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A file of the model folder has the wrong content.
    #[error("{}: {message}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong and what was expected.
        message: String,
    },
    /// A bad option value. Options are named by their field, in backticks, here and inside
    /// `message` (`` `hidden_size` ``); a command-line tool maps them to its flags.
    #[error("invalid `{name}`: {message}")]
    Hyperparameter {
        /// The option's field name.
        name: &'static str,
        /// What was expected.
        message: String,
    },
    /// An input the model cannot take (a text its tokenizer rejects). The request is at fault,
    /// not the model: servers answer it with a 4xx.
    #[error("input rejected: {0}")]
    Input(String),
    /// Training could not proceed (data unsuitable for the model, solver failure).
    #[error("{0}")]
    Fit(String),
    /// An error from the data layer (vocabulary, …).
    #[error(transparent)]
    Data(#[from] intent_data::DataError),
}

impl ModelError {
    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        ModelError::Io { path: path.into(), source }
    }
    /// An invalid-content error on `path`.
    pub fn invalid(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        ModelError::Invalid { path: path.into(), message: message.into() }
    }
}

/// Result alias of the models crate.
pub type Result<T> = std::result::Result<T, ModelError>;
