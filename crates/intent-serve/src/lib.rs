//! intent-serve: inference over any model folder, and the HTTP server behind `intent serve`.
//!
//! - [`Classifier`] loads a model folder by kind and predicts labels with confidences.
//! - [`ModelSpec`] names what to serve: a folder, or `models/NAME@ALIAS` in a registry.
//! - [`ModelSlot`] holds the served model and swaps it atomically (load and smoke-test off the
//!   request path; requests in flight finish on the model they started with; rollback).
//! - [`Batcher`] groups concurrent requests to transformer models under a token budget.
//! - [`QueryLog`] stores every prediction in SQLite (WAL) from a writer thread, and keeps the
//!   labeling queue of low-confidence queries.
//! - [`server`] is the axum application: routes, auth, limits, metrics, graceful shutdown.

use std::path::PathBuf;

pub mod batcher;
pub mod classifier;
pub mod evaluation;
pub mod metrics;
pub mod querylog;
pub mod retrain;
pub mod server;
pub mod slot;
pub mod spec;

mod admin;
mod api;

pub use batcher::Batcher;
pub use classifier::{Classifier, LabelScore, Prediction};
pub use querylog::{QueryLog, QueryRow};
pub use slot::{LoadedModel, ModelSlot};
pub use spec::ModelSpec;

/// Errors of the inference library and server.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The folder holds a model kind this build cannot serve.
    #[error("{}: model kind '{kind}' is not supported (supported: mlp, svm, zero-shot, and Hugging Face BERT classification folders)", path.display())]
    UnsupportedKind {
        /// The config file.
        path: PathBuf,
        /// The kind found.
        kind: String,
    },
    /// Loading failed.
    #[error(transparent)]
    Model(#[from] intent_models::ModelError),
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
    /// The query log database.
    #[error("query log {}: {source}", path.display())]
    QueryLog {
        /// The database file.
        path: PathBuf,
        /// The SQLite error.
        source: rusqlite::Error,
    },
    /// The query log database failed its integrity check.
    #[error("query log {}: the database is damaged ({check}); move it aside to start a new one", path.display())]
    QueryLogDamaged {
        /// The database file.
        path: PathBuf,
        /// What `PRAGMA quick_check` said.
        check: String,
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
