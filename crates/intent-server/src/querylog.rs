//! The query log: every prediction in an SQLite database (WAL mode), written by one thread off
//! the request path, plus the labeling queue of low-confidence queries.
//!
//! Requests hand rows to a bounded channel and return; the writer takes everything queued
//! (up to [`MAX_ROWS_PER_TRANSACTION`]) and commits it as one transaction. A clean shutdown
//! ([`QueryLog::close`]) writes every queued row. After a crash (`kill -9`) the database holds
//! every committed transaction; rows still in the channel or in the transaction being written
//! are lost: at most [`CHANNEL_CAPACITY`] + [`MAX_ROWS_PER_TRANSACTION`] rows. With WAL and
//! `synchronous = NORMAL` a committed transaction survives the process dying; only an OS crash
//! or power loss can lose the last commits (never corrupting the file).

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::thread::JoinHandle;
use std::time::{SystemTime, UNIX_EPOCH};

use intent_serve::LabelScore;
use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, oneshot};

use crate::ServerError;

/// Rows waiting for the writer at most; a full channel makes requests wait (nothing is dropped).
pub const CHANNEL_CAPACITY: usize = 4096;
/// Rows per transaction at most.
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

/// A queued low-confidence query.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct QueueItem {
    /// Queue id (for `POST /admin/labeling/{id}`).
    pub id: i64,
    /// The text.
    pub text: String,
    /// What the model predicted.
    pub predicted: String,
    /// With what confidence (first time seen).
    pub confidence: f32,
    /// How many times the text was asked.
    pub seen: i64,
    /// First seen, Unix milliseconds.
    pub created_ms: i64,
    /// Labels given by a person, once labeled.
    pub labels: Option<Vec<String>>,
}

enum Msg {
    Rows(Vec<QueryRow>),
    Flush(oneshot::Sender<()>),
}

/// The query log of a server.
pub struct QueryLog {
    path: PathBuf,
    redact: bool,
    tx: Mutex<Option<mpsc::Sender<Msg>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
}

/// Now, Unix milliseconds.
pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

fn open_connection(path: &Path) -> Result<Connection, rusqlite::Error> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    Ok(conn)
}

impl QueryLog {
    /// Opens (or creates) the database and starts the writer. With `redact`, texts are stored
    /// as SHA-256 hashes only and nothing enters the labeling queue.
    pub fn open(path: &Path, redact: bool) -> Result<Self, ServerError> {
        let err = |source| ServerError::QueryLog { path: path.to_path_buf(), source };
        let conn = open_connection(path).map_err(err)?;
        conn.execute_batch(SCHEMA).map_err(err)?;
        // After a crash the file must still be sound: check it before appending to it.
        let check: String = conn.query_row("PRAGMA quick_check", [], |r| r.get(0)).map_err(err)?;
        if check != "ok" {
            return Err(ServerError::QueryLogDamaged { path: path.to_path_buf(), check });
        }
        let rows: i64 = conn.query_row("SELECT COUNT(*) FROM queries", [], |r| r.get(0)).map_err(err)?;
        tracing::info!("query log {}: {rows} rows, integrity check ok", path.display());
        let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
        let file = path.to_path_buf();
        let writer = std::thread::Builder::new()
            .name("intent-querylog".into())
            .spawn(move || write_loop(conn, rx, redact, &file))
            .map_err(|source| ServerError::Io { path: path.to_path_buf(), source })?;
        Ok(QueryLog {
            path: path.to_path_buf(),
            redact,
            tx: Mutex::new(Some(tx)),
            writer: Mutex::new(Some(writer)),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Texts are stored as hashes only.
    pub fn redacted(&self) -> bool {
        self.redact
    }

    fn sender(&self) -> Option<mpsc::Sender<Msg>> {
        self.tx.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Queues rows for the writer (waits only when the channel is full). After
    /// [`QueryLog::close`] rows are dropped with a warning.
    pub async fn record(&self, rows: Vec<QueryRow>) {
        match self.sender() {
            Some(tx) if tx.send(Msg::Rows(rows)).await.is_ok() => {}
            _ => tracing::warn!("query log closed; a row was not stored"),
        }
    }

    /// Waits until every row queued before this call is committed.
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if let Some(tx) = self.sender() {
            if tx.send(Msg::Flush(done)).await.is_ok() {
                let _ = wait.await;
            }
        }
    }

    /// Writes every queued row and stops the writer (blocking). Idempotent.
    pub fn close(&self) {
        drop(self.tx.lock().unwrap_or_else(|p| p.into_inner()).take());
        if let Some(handle) = self.writer.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = handle.join();
        }
    }

    fn read<T>(&self, f: impl FnOnce(&Connection) -> Result<T, rusqlite::Error>) -> Result<T, ServerError> {
        let err = |source| ServerError::QueryLog { path: self.path.clone(), source };
        let conn = open_connection(&self.path).map_err(err)?;
        f(&conn).map_err(err)
    }

    /// Logged queries.
    pub fn count(&self) -> Result<i64, ServerError> {
        self.read(|c| c.query_row("SELECT COUNT(*) FROM queries", [], |r| r.get(0)))
    }

    /// The labeling queue, oldest first: pending items only, or labeled ones too.
    pub fn queue(&self, limit: usize, include_labeled: bool) -> Result<Vec<QueueItem>, ServerError> {
        self.read(|c| {
            let sql = format!(
                "SELECT id, text, predicted, confidence, seen, created_ms, labels FROM labeling_queue {} \
                    ORDER BY id LIMIT ?1",
                if include_labeled { "" } else { "WHERE labels IS NULL" }
            );
            let mut stmt = c.prepare(&sql)?;
            let rows = stmt.query_map([limit as i64], |r| {
                let labels: Option<String> = r.get(6)?;
                Ok(QueueItem {
                    id: r.get(0)?,
                    text: r.get(1)?,
                    predicted: r.get(2)?,
                    confidence: r.get::<_, f64>(3)? as f32,
                    seen: r.get(4)?,
                    created_ms: r.get(5)?,
                    labels: labels.and_then(|l| serde_json::from_str(&l).ok()),
                })
            })?;
            rows.collect()
        })
    }

    /// Labels queue item `id`; `Ok(false)` when there is no such item.
    pub fn set_labels(&self, id: i64, labels: &[String]) -> Result<bool, ServerError> {
        let json = serde_json::to_string(labels).unwrap_or_default();
        self.read(|c| {
            let n = c.execute(
                "UPDATE labeling_queue SET labels = ?1, labeled_ms = ?2 WHERE id = ?3",
                params![json, now_ms(), id],
            )?;
            Ok(n == 1)
        })
    }

    /// Labeled queue items as labeled JSONL (`{"text", "label"}`, or `"labels"` when an item
    /// has several), the format `intent train` reads; `source` is `labeling-queue:<id>`.
    pub fn export_jsonl(&self) -> Result<String, ServerError> {
        let items: Vec<(i64, String, String, Option<i64>)> = self.read(|c| {
            let mut stmt = c.prepare(
                "SELECT id, text, labels, labeled_ms FROM labeling_queue WHERE \
                labels IS NOT NULL ORDER BY id",
            )?;
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?;
            rows.collect()
        })?;
        let mut out = String::new();
        for (id, text, labels, labeled_ms) in items {
            let labels: Vec<String> = serde_json::from_str(&labels).unwrap_or_default();
            let mut obj = serde_json::json!({ "text": text });
            if labels.len() == 1 {
                obj["label"] = labels[0].clone().into();
            } else {
                obj["labels"] = labels.into();
            }
            obj["source"] = format!("labeling-queue:{id}").into();
            if let Some(ms) = labeled_ms {
                obj["timestamp"] = ms.to_string().into();
            }
            out.push_str(&obj.to_string());
            out.push('\n');
        }
        Ok(out)
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

fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

fn write_loop(mut conn: Connection, mut rx: mpsc::Receiver<Msg>, redact: bool, path: &Path) {
    let mut rows: Vec<QueryRow> = Vec::new();
    let mut flushes: Vec<oneshot::Sender<()>> = Vec::new();
    while let Some(first) = rx.blocking_recv() {
        let mut take = |msg: Msg, rows: &mut Vec<QueryRow>| match msg {
            Msg::Rows(r) => rows.extend(r),
            Msg::Flush(done) => flushes.push(done),
        };
        take(first, &mut rows);
        while rows.len() < MAX_ROWS_PER_TRANSACTION {
            match rx.try_recv() {
                Ok(msg) => take(msg, &mut rows),
                Err(_) => break,
            }
        }
        // A failed write (disk full…) is retried with the next batch rather than dropped;
        // the rows stay in memory meanwhile.
        match write_rows(&mut conn, &rows, redact) {
            Ok(()) => rows.clear(),
            Err(e) => {
                tracing::error!(
                    "query log {}: {e}; {} rows kept for the next attempt",
                    path.display(),
                    rows.len()
                );
                std::thread::sleep(std::time::Duration::from_millis(200));
            }
        }
        for done in flushes.drain(..) {
            let _ = done.send(());
        }
    }
    if !rows.is_empty() {
        if let Err(e) = write_rows(&mut conn, &rows, redact) {
            tracing::error!("query log {}: {e}; {} rows lost at shutdown", path.display(), rows.len());
        }
    }
    if let Err(e) = conn.pragma_update(None, "wal_checkpoint", "TRUNCATE") {
        tracing::warn!("query log {}: checkpoint at shutdown: {e}", path.display());
    }
}

fn write_rows(conn: &mut Connection, rows: &[QueryRow], redact: bool) -> Result<(), rusqlite::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    let tx = conn.transaction()?;
    {
        let mut insert = tx.prepare_cached(
            "INSERT INTO queries (ts_ms, text, text_sha256, label, confidence, fallback, top_k, model, model_version, latency_us)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        )?;
        let mut enqueue = tx.prepare_cached(
            "INSERT INTO labeling_queue (key, text, predicted, confidence, first_query_id, created_ms, last_seen_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)
             ON CONFLICT(key) DO UPDATE SET seen = seen + 1, last_seen_ms = excluded.last_seen_ms",
        )?;
        for r in rows {
            let top_k = serde_json::to_string(&r.top_k).unwrap_or_default();
            let text = (!redact).then_some(r.text.as_str());
            insert.execute(params![
                r.ts_ms,
                text,
                sha256_hex(&r.text),
                r.label,
                r.confidence as f64,
                r.fallback,
                top_k,
                r.model,
                r.model_version,
                r.latency_us as i64
            ])?;
            if r.fallback && !redact {
                let id = tx.last_insert_rowid();
                enqueue.execute(params![
                    intent_data::normalize_text(&r.text),
                    r.text,
                    r.label,
                    r.confidence as f64,
                    id,
                    r.ts_ms
                ])?;
            }
        }
    }
    tx.commit()
}
