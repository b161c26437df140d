//! The query log: every prediction in an SQLite database (WAL mode), written by one thread off
//! the request path, plus the labeling queue of low-confidence queries and its label history.
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
//! The database is created readable by its owner only (0600; SQLite gives its `-wal` and `-shm`
//! files the same mode): it holds raw user texts.

mod labels;
mod writer;

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use intent_serve::LabelScore;
use rusqlite::{Connection, OptionalExtension};
use serde::Serialize;
use tokio::sync::watch;

pub use labels::{LabelChange, LabelOutcome, QueueItem};

use crate::ServerError;

/// Rows a transaction holds at most.
pub const MAX_ROWS_PER_TRANSACTION: usize = 1024;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS queries (
    id INTEGER PRIMARY KEY,
    ts_ms INTEGER NOT NULL,
    text TEXT,
    text_sha256 TEXT NOT NULL,
    label TEXT NOT NULL,
    confidence REAL NOT NULL,
    fallback INTEGER NOT NULL,
    top_k TEXT NOT NULL,
    model TEXT NOT NULL,
    model_version TEXT NOT NULL,
    latency_us INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS queries_ts ON queries (ts_ms);
CREATE TABLE IF NOT EXISTS labeling_queue (
    id INTEGER PRIMARY KEY,
    key TEXT NOT NULL UNIQUE,
    text TEXT NOT NULL,
    predicted TEXT NOT NULL,
    confidence REAL NOT NULL,
    first_query_id INTEGER NOT NULL,
    seen INTEGER NOT NULL DEFAULT 1,
    created_ms INTEGER NOT NULL,
    last_seen_ms INTEGER NOT NULL,
    labels TEXT,
    labeled_ms INTEGER
);
CREATE INDEX IF NOT EXISTS labeling_pending ON labeling_queue (labels, id);
CREATE TABLE IF NOT EXISTS label_history (
    id INTEGER PRIMARY KEY,
    item_id INTEGER NOT NULL,
    labels TEXT NOT NULL,
    previous TEXT,
    labeled_by TEXT,
    ts_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS label_history_item ON label_history (item_id, id);
";

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
    path: PathBuf,
    options: QueryLogOptions,
    shared: Arc<Shared>,
    writer: Mutex<Option<JoinHandle<()>>>,
}

/// Now, Unix milliseconds.
pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

fn open_connection(path: &Path) -> Result<Connection, rusqlite::Error> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    // After a checkpoint the WAL file is cut back to this size: it cannot grow without bound.
    conn.pragma_update(None, "journal_size_limit", 16i64 << 20)?;
    Ok(conn)
}

/// Creates `path` readable and writable by its owner only when it does not exist; warns when an
/// existing database can be read by others.
fn create_private(path: &Path) -> Result<(), ServerError> {
    let io = |source| ServerError::Io { path: path.to_path_buf(), source };
    let mut open = std::fs::OpenOptions::new();
    open.append(true).create(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        open.mode(0o600);
        open.open(path).map_err(io)?;
        let mode = std::fs::metadata(path).map_err(io)?.permissions().mode();
        if mode & 0o077 != 0 {
            tracing::warn!(
                "query log {}: mode {:o} lets other users read the logged texts; chmod 600 it",
                path.display(),
                mode & 0o777
            );
        }
    }
    #[cfg(not(unix))]
    open.open(path).map_err(io)?;
    Ok(())
}

impl QueryLog {
    /// Opens (or creates) the database with default bounds; `redact` stores texts as hashes.
    pub fn open(path: &Path, redact: bool) -> Result<Self, ServerError> {
        Self::open_with(path, QueryLogOptions { redact, ..QueryLogOptions::default() })
    }

    /// Opens (or creates) the database, checks it, applies retention and starts the writer.
    pub fn open_with(path: &Path, options: QueryLogOptions) -> Result<Self, ServerError> {
        let err = |source| ServerError::QueryLog { path: path.to_path_buf(), source };
        create_private(path)?;
        let conn = open_connection(path).map_err(err)?;
        conn.execute_batch(SCHEMA).map_err(err)?;
        // After a crash the file must still be sound: check it before appending to it.
        let check: String = conn.query_row("PRAGMA quick_check", [], |r| r.get(0)).map_err(err)?;
        if check != "ok" {
            return Err(ServerError::QueryLogDamaged { path: path.to_path_buf(), check });
        }
        let pruned = writer::prune(&conn, &options).map_err(err)?;
        let rows: i64 = conn.query_row("SELECT COUNT(*) FROM queries", [], |r| r.get(0)).map_err(err)?;
        tracing::info!("query log {}: {rows} rows ({pruned} pruned), integrity check ok", path.display());
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
        let (sh, file, opts) = (shared.clone(), path.to_path_buf(), options.clone());
        let writer = std::thread::Builder::new()
            .name("intent-querylog".into())
            .spawn(move || writer::run(conn, &sh, &opts, &file))
            .map_err(|source| ServerError::Io { path: path.to_path_buf(), source })?;
        Ok(QueryLog { path: path.to_path_buf(), options, shared, writer: Mutex::new(Some(writer)) })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
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
                    self.path.display(),
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

    fn read<T>(&self, f: impl FnOnce(&Connection) -> Result<T, rusqlite::Error>) -> Result<T, ServerError> {
        let err = |source| ServerError::QueryLog { path: self.path.clone(), source };
        let conn = open_connection(&self.path).map_err(err)?;
        f(&conn).map_err(err)
    }

    fn read_mut<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, rusqlite::Error>,
    ) -> Result<T, ServerError> {
        let err = |source| ServerError::QueryLog { path: self.path.clone(), source };
        let mut conn = open_connection(&self.path).map_err(err)?;
        f(&mut conn).map_err(err)
    }

    /// Logged queries.
    pub fn count(&self) -> Result<i64, ServerError> {
        self.read(|c| c.query_row("SELECT COUNT(*) FROM queries", [], |r| r.get(0)))
    }

    /// Id of the last logged query, if any.
    pub fn last_query_id(&self) -> Result<Option<i64>, ServerError> {
        self.read(|c| {
            c.query_row("SELECT MAX(id) FROM queries", [], |r| r.get(0)).optional().map(Option::flatten)
        })
    }
}

impl Drop for QueryLog {
    fn drop(&mut self) {
        self.close();
    }
}

#[cfg(test)]
mod tests;
