//! intent-server: the HTTP server behind `intent serve`, on top of the inference library
//! ([`intent_serve`]).
//!
//! - [`ModelSlot`] holds the served model and swaps it atomically (load and smoke-test off the
//!   request path; requests in flight finish on the model they started with; rollback).
//! - [`QueryLog`] stores every prediction in SQLite (WAL) from a writer thread (requests never
//!   wait on it; bounded in rows, pruned by age and count), and keeps the labeling queue of
//!   low-confidence queries with a history of every label change.
//! - [`server`] is the axum application: routes, auth, limits, metrics; [`listen`] the
//!   connection loop: header timeouts, a connection cap, graceful shutdown with a deadline.
//! - Beside `/v1/*`, the routes of text-embeddings-inference (`POST /predict`, `POST /embed`)
//!   and Rasa (`POST /model/parse`), answering as those servers do.
//! - [`background`] runs the retrain job of [`intent_lifecycle`] inside the server.
//!
//! ```
//! use axum::body::Body;
//! use axum::http::Request;
//! use intent_server::server::{router, AppState, ServerOptions};
//! use intent_server::ModelSlot;
//! use tower::ServiceExt;
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! // A server with no model yet: alive, not ready.
//! let state = AppState::new(ModelSlot::default(), None, ServerOptions::default());
//! let get = |path: &str| Request::get(path).body(Body::empty()).unwrap();
//! let health = router(state.clone()).oneshot(get("/health")).await.unwrap();
//! assert_eq!(health.status(), 200);
//! let ready = router(state).oneshot(get("/ready")).await.unwrap();
//! assert_eq!(ready.status(), 503);
//! # });
//! ```

use std::path::PathBuf;

pub mod background;
pub mod fallback;
pub mod listen;
pub mod metrics;
pub mod querylog;
pub mod retrain_jobs;
pub mod server;
pub mod slot;

mod admin;
mod api;
mod api_error;
mod auth;
mod compat;
mod console;
pub mod openapi;
mod ui;

#[cfg(test)]
mod server_tests;

pub use querylog::{QueryLog, QueryLogOptions, QueryLogStatus, QueryRow};
pub use slot::{LoadedModel, ModelSlot, Served};

/// Errors of the server's own stores (the query log); model errors come from the inference
/// library.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The inference library (loading, predicting).
    #[error(transparent)]
    Serve(#[from] intent_serve::ServeError),
    /// The query log database.
    #[error("query log {}: {source}", path.display())]
    QueryLog {
        /// The database file.
        path: PathBuf,
        /// The SQLite error.
        source: rusqlite::Error,
    },
    /// The PostgreSQL query log.
    #[error("query log {location}: {source}")]
    QueryLogPostgres {
        /// The database URL, without its password.
        location: String,
        /// The PostgreSQL error.
        source: postgres::Error,
    },
    /// The query log database failed its integrity check.
    #[error(
        "query log {}: the database is damaged ({check}); move it aside to start a new one",
        path.display()
    )]
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
}
