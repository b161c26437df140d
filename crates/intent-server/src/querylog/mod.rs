//! The query log: every prediction in a database, written by one thread off the request path,
//! plus the labeling queue of low-confidence queries and its label history.
//!
//! Two stores with the same tables: an SQLite file (WAL mode), the embedded default, and
//! PostgreSQL (`postgres://…`), which several replicas share: their labeling queue, export and
//! label history are then one. Migrations are applied when the log opens.
//!
//! Requests never wait on the log. They hand rows to a queue bounded in **rows**
//! ([`QueryLogOptions::queue_rows`]); rows beyond it are dropped and counted
//! ([`QueryLog::status`], `intent_query_log_dropped_rows_total` in `/metrics`). The writer takes
//! up to [`MAX_ROWS_PER_TRANSACTION`] rows at a time and commits them as one transaction.
//!
//! When a write fails (disk full, database locked by another process) the writer keeps the batch,
//! marks the log degraded ([`QueryLogStatus::degraded`], shown by `/ready`) and retries with a
//! growing pause; prediction goes on, new rows fill the queue and the rest are dropped. Once a
//! write succeeds the log is healthy again.
//!
//! **Crash bound:** rows are held in memory only between the request and their commit, and at
//! most `queue_rows` of them at once (the batch being written included): a `kill -9` loses at
//! most `queue_rows` rows (4096 by default). With WAL and `synchronous = NORMAL` a committed
//! transaction survives the process dying; only an OS crash or power loss can lose the last
//! commits (never corrupting the file). A clean shutdown ([`QueryLog::close`]) writes every
//! queued row, or, when the disk refuses them, logs how many were lost and returns.
//!
//! **Retention:** [`QueryLogOptions::max_rows`] and [`QueryLogOptions::max_age`] prune the
//! `queries` table in every write transaction; the labeling queue and label history are kept.
//! An SQLite database is created readable by its owner only (0600; SQLite gives its `-wal` and
//! `-shm` files the same mode): it holds raw user texts.

mod labels;
mod postgres;
mod quality;
mod sqlite;
mod store;
mod writer;

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use intent_serve::LabelScore;
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::sync::watch;

pub use labels::{LabelChange, LabelOutcome, LabelingStats, QueueItem, QueueOrder, QueueQuery};
pub use quality::{Quality, WindowStats};

use crate::ServerError;

/// Rows a transaction holds at most.
pub const MAX_ROWS_PER_TRANSACTION: usize = 1024;

/// One prediction to log.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryRow {
    /// Time, Unix milliseconds.
    pub ts_ms: i64,
    /// The text.
    pub text: String,
    /// Predicted label.
    pub label: String,
    /// Its confidence.
    pub confidence: f32,
    /// Below the fallback threshold (enters the labeling queue).
    pub fallback: bool,
    /// The best labels.
    pub top_k: Vec<LabelScore>,
    /// Model name.
    pub model: String,
    /// Model version.
    pub model_version: String,
    /// Time to answer the request, microseconds.
    pub latency_us: u64,
    /// The label the `--fallback-url` service gave (a teacher label for retraining).
    pub teacher_label: Option<String>,
}

/// How the query log stores, bounds and prunes.
#[derive(Debug, Clone)]
pub struct QueryLogOptions {
    /// Store texts as SHA-256 hashes only; nothing then enters the labeling queue.
    pub redact: bool,
    /// Rows waiting to be written at most (the crash-loss bound); more are dropped and counted.
    pub queue_rows: usize,
    /// Keep at most this many queries (the oldest go first).
    pub max_rows: Option<u64>,
    /// Drop queries older than this.
    pub max_age: Option<Duration>,
}

impl QueryLogOptions {
    /// Queries logged before this (Unix milliseconds) are pruned, under `max_age`.
    fn cutoff_ms(&self) -> Option<i64> {
        let age = self.max_age?;
        Some(now_ms().saturating_sub(i64::try_from(age.as_millis()).unwrap_or(i64::MAX)))
    }
}

impl Default for QueryLogOptions {
    /// Texts stored, 4096 rows queued at most, no retention limit.
    fn default() -> Self {
        QueryLogOptions { redact: false, queue_rows: 4096, max_rows: None, max_age: None }
    }
}

/// Health of the query log, as `/ready` and `/metrics` show it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct QueryLogStatus {
    /// The last write failed (disk full, database locked…); prediction goes on, rows beyond the
    /// queue are dropped.
    pub degraded: bool,
    /// Why, while degraded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Rows waiting to be written.
    pub queued_rows: usize,
    /// Rows dropped since the start (queue full, or lost at shutdown).
    pub dropped_rows: u64,
}

/// What requests and the writer share.
struct Pending {
    /// Rows waiting for the writer.
    rows: VecDeque<QueryRow>,
    /// Rows accepted and not yet settled (queued + the writer's batch): bounded by `capacity`.
    held: usize,
    /// Rows accepted since the start (settled ones have a number up to `settled`).
    accepted: u64,
    dropped: u64,
    /// When the last warning about dropped rows was logged (one every 10 s at most).
    warned_drop: Option<std::time::Instant>,
    error: Option<String>,
    closed: bool,
}

struct Shared {
    pending: Mutex<Pending>,
    wake: Condvar,
    /// Rows settled (committed, or given up at shutdown) since the start.
    settled: watch::Sender<u64>,
    capacity: usize,
    /// Tests: the database's page limit (`PRAGMA max_page_count`), to fill the "disk" without a
    /// small filesystem; 0 leaves it alone.
    #[cfg(test)]
    max_pages: std::sync::atomic::AtomicU64,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The query log of a server.
pub struct QueryLog {
    /// The SQLite file, or the PostgreSQL URL without its password.
    location: String,
    path: Option<PathBuf>,
    options: QueryLogOptions,
    shared: Arc<Shared>,
    writer: Mutex<Option<JoinHandle<()>>>,
    backend: Box<dyn store::Backend>,
}

fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// Whether `location` names a PostgreSQL database rather than an SQLite file.
pub fn is_postgres_url(location: &str) -> bool {
    location.starts_with("postgres://") || location.starts_with("postgresql://")
}

/// Now, Unix milliseconds.
pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

impl QueryLog {
    /// Opens (or creates) the database with default bounds; `redact` stores texts as hashes.
    pub fn open(path: &Path, redact: bool) -> Result<Self, ServerError> {
        Self::open_with(path, QueryLogOptions { redact, ..QueryLogOptions::default() })
    }

    /// Opens (or creates) the SQLite database, checks it, applies retention and starts the
    /// writer.
    pub fn open_with(path: &Path, options: QueryLogOptions) -> Result<Self, ServerError> {
        let (backend, writer) = sqlite::Sqlite::open(path, &options)?;
        let location = path.display().to_string();
        Self::start(location, Some(path.to_path_buf()), options, Box::new(backend), Box::new(writer))
    }

    /// Opens the query log at `location`: a `postgres://` URL (tables created or migrated when
    /// needed) or an SQLite file. Blocking; not to be called on an async worker thread.
    pub fn open_at(location: &str, options: QueryLogOptions) -> Result<Self, ServerError> {
        if !is_postgres_url(location) {
            return Self::open_with(Path::new(location), options);
        }
        let (backend, writer) = postgres::Postgres::open(location, &options)?;
        let shown = backend.shown().to_string();
        Self::start(shown, None, options, Box::new(backend), Box::new(writer))
    }

    fn start(
        location: String,
        path: Option<PathBuf>,
        options: QueryLogOptions,
        backend: Box<dyn store::Backend>,
        writer: Box<dyn store::RowWriter>,
    ) -> Result<Self, ServerError> {
        let shared = Arc::new(Shared {
            pending: Mutex::new(Pending {
                rows: VecDeque::new(),
                held: 0,
                accepted: 0,
                dropped: 0,
                warned_drop: None,
                error: None,
                closed: false,
            }),
            wake: Condvar::new(),
            settled: watch::channel(0).0,
            capacity: options.queue_rows.max(1),
            #[cfg(test)]
            max_pages: std::sync::atomic::AtomicU64::new(0),
        });
        let (sh, loc, opts) = (shared.clone(), location.clone(), options.clone());
        let handle = std::thread::Builder::new()
            .name("intent-querylog".into())
            .spawn(move || writer::run(writer, &sh, &opts, &loc))
            .map_err(|source| ServerError::Io { path: PathBuf::from(&location), source })?;
        Ok(QueryLog { location, path, options, shared, writer: Mutex::new(Some(handle)), backend })
    }

    /// The SQLite file, or the PostgreSQL URL without its password.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// The SQLite file (`None` for PostgreSQL).
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Texts are stored as hashes only.
    pub fn redacted(&self) -> bool {
        self.options.redact
    }

    /// The options it was opened with.
    pub fn options(&self) -> &QueryLogOptions {
        &self.options
    }

    /// Queues rows for the writer without waiting: rows beyond the queue's room are dropped and
    /// counted; so are rows recorded after [`QueryLog::close`]. Returns how many were queued.
    pub fn record(&self, rows: Vec<QueryRow>) -> usize {
        let n = rows.len();
        let mut p = self.shared.lock();
        let room = if p.closed { 0 } else { self.shared.capacity - p.held };
        let take = n.min(room);
        p.rows.extend(rows.into_iter().take(take));
        p.held += take;
        p.accepted += take as u64;
        if take < n {
            p.dropped += (n - take) as u64;
            if p.warned_drop.is_none_or(|t| t.elapsed() > Duration::from_secs(10)) {
                p.warned_drop = Some(std::time::Instant::now());
                tracing::warn!(
                    "query log {}: queue full ({} rows); {} rows dropped so far",
                    self.location,
                    self.shared.capacity,
                    p.dropped
                );
            }
        }
        drop(p);
        if take > 0 {
            self.shared.wake.notify_one();
        }
        take
    }

    /// Waits until every row queued before this call is written (or given up at shutdown).
    /// While the log is degraded this waits for it to recover.
    pub async fn flush(&self) {
        let target = self.shared.lock().accepted;
        let mut settled = self.shared.settled.subscribe();
        let _ = settled.wait_for(|&s| s >= target).await;
    }

    /// Health: degraded or not, queued and dropped rows.
    pub fn status(&self) -> QueryLogStatus {
        let p = self.shared.lock();
        QueryLogStatus {
            degraded: p.error.is_some(),
            error: p.error.clone(),
            queued_rows: p.held,
            dropped_rows: p.dropped,
        }
    }

    /// Writes every queued row and stops the writer (blocking). When the disk refuses the rows,
    /// one attempt is made and the lost rows are logged and counted. Idempotent.
    pub fn close(&self) {
        self.shared.lock().closed = true;
        self.shared.wake.notify_all();
        if let Some(handle) = self.writer.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = handle.join();
        }
    }

    /// Tests: caps the database at `pages` pages (1: no page more than it has now), so writes
    /// fail with `SQLITE_FULL` as on a full disk; a large number gives the space back.
    #[cfg(test)]
    pub(crate) fn set_max_pages(&self, pages: u64) {
        self.shared.max_pages.store(pages, std::sync::atomic::Ordering::SeqCst);
    }

    /// Logged queries.
    pub fn count(&self) -> Result<i64, ServerError> {
        self.backend.count()
    }

    /// Id of the last logged query, if any.
    pub fn last_query_id(&self) -> Result<Option<i64>, ServerError> {
        self.backend.last_query_id()
    }
}

impl Drop for QueryLog {
    fn drop(&mut self) {
        self.close();
    }
}

#[cfg(test)]
mod tests;
