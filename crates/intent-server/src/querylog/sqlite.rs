//! The embedded store: one SQLite file in WAL mode, created readable by its owner only.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use super::labels::{
    decide, queue_sql, stats_sql, suggestions, Decision, LabelChange, LabelOutcome, Labeled, QueueItem,
    QueueQuery, SqlParam,
};
use super::quality::{window_sql, WindowStats, CONFIDENT_SQL, TEACHER_SQL};
use super::store::{Backend, RowWriter};
use super::{now_ms, sha256_hex, QueryLogOptions, QueryRow};
use crate::ServerError;

/// The schema; `PRAGMA user_version` says which of these a file has.
const MIGRATIONS: [&str; 3] = [
    "
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
",
    "
CREATE INDEX IF NOT EXISTS queries_ts ON queries (ts_ms);
CREATE TABLE IF NOT EXISTS label_history (
    id INTEGER PRIMARY KEY,
    item_id INTEGER NOT NULL,
    labels TEXT NOT NULL,
    previous TEXT,
    labeled_by TEXT,
    ts_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS label_history_item ON label_history (item_id, id);
",
    "ALTER TABLE queries ADD COLUMN teacher_label TEXT;",
];

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

/// The SQLite store of a query log.
pub(super) struct Sqlite {
    path: PathBuf,
}

impl Sqlite {
    /// Creates or opens the file, applies missing migrations, checks its integrity and prunes.
    /// Returns the store and the writer's connection.
    pub(super) fn open(path: &Path, options: &QueryLogOptions) -> Result<(Self, SqliteWriter), ServerError> {
        let err = |source| ServerError::QueryLog { path: path.to_path_buf(), source };
        create_private(path)?;
        let mut conn = open_connection(path).map_err(err)?;
        // After a crash the file must still be sound: check it before appending to it.
        let check: String = conn.query_row("PRAGMA quick_check", [], |r| r.get(0)).map_err(err)?;
        if check != "ok" {
            return Err(ServerError::QueryLogDamaged { path: path.to_path_buf(), check });
        }
        // Each migration and its version in one IMMEDIATE transaction, the version read inside
        // it: a crash cannot leave a migration applied but uncounted, and two processes opening
        // one file take turns.
        for (i, sql) in MIGRATIONS.iter().enumerate() {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(err)?;
            let version: usize = tx.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(err)?;
            if version <= i {
                tx.execute_batch(sql).map_err(err)?;
                tx.pragma_update(None, "user_version", i as i64 + 1).map_err(err)?;
            }
            tx.commit().map_err(err)?;
        }
        let pruned = prune(&conn, options).map_err(err)?;
        let rows: i64 = conn.query_row("SELECT COUNT(*) FROM queries", [], |r| r.get(0)).map_err(err)?;
        tracing::info!("query log {}: {rows} rows ({pruned} pruned), integrity check ok", path.display());
        let writer = SqliteWriter {
            conn,
            #[cfg(test)]
            max_pages: 0,
        };
        Ok((Sqlite { path: path.to_path_buf() }, writer))
    }

    fn read<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, rusqlite::Error>,
    ) -> Result<T, ServerError> {
        let err = |source| ServerError::QueryLog { path: self.path.clone(), source };
        let mut conn = open_connection(&self.path).map_err(err)?;
        f(&mut conn).map_err(err)
    }
}

fn parse_labels(json: Option<String>) -> Option<Vec<String>> {
    json.and_then(|l| serde_json::from_str(&l).ok())
}

impl Backend for Sqlite {
    fn count(&self) -> Result<i64, ServerError> {
        self.read(|c| c.query_row("SELECT COUNT(*) FROM queries", [], |r| r.get(0)))
    }

    fn last_query_id(&self) -> Result<Option<i64>, ServerError> {
        self.read(|c| {
            c.query_row("SELECT MAX(id) FROM queries", [], |r| r.get(0)).optional().map(Option::flatten)
        })
    }

    fn queue(&self, query: &QueueQuery) -> Result<Vec<QueueItem>, ServerError> {
        let (sql, params) = queue_sql(query, |n| format!("?{n}"), "instr");
        let params: Vec<rusqlite::types::Value> = params
            .into_iter()
            .map(|p| match p {
                SqlParam::Int(i) => i.into(),
                SqlParam::Real(r) => r.into(),
                SqlParam::Text(t) => t.into(),
            })
            .collect();
        self.read(|c| {
            let mut stmt = c.prepare(&sql)?;
            let rows = stmt.query_map(rusqlite::params_from_iter(params), |r| {
                Ok(QueueItem {
                    id: r.get(0)?,
                    text: r.get(1)?,
                    predicted: r.get(2)?,
                    confidence: r.get::<_, f64>(3)? as f32,
                    seen: r.get(4)?,
                    created_ms: r.get(5)?,
                    labels: parse_labels(r.get(6)?),
                    last_seen_ms: r.get(7)?,
                    suggestions: suggestions(r.get(8)?),
                    model_version: r.get(9)?,
                })
            })?;
            rows.collect()
        })
    }

    fn confident(&self, min_confidence: f64) -> Result<Vec<(String, String, f64, i64)>, ServerError> {
        self.read(|c| {
            let mut stmt = c.prepare(CONFIDENT_SQL)?;
            let rows =
                stmt.query_map([min_confidence], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?;
            rows.collect()
        })
    }

    fn teacher_labels(&self) -> Result<Vec<(String, String, i64)>, ServerError> {
        self.read(|c| {
            let mut stmt = c.prepare(TEACHER_SQL)?;
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
            rows.collect()
        })
    }

    fn window_stats(
        &self,
        model: &str,
        version: &str,
        window: i64,
        first: bool,
    ) -> Result<WindowStats, ServerError> {
        self.read(|c| {
            c.query_row(&window_sql(|n| format!("?{n}"), first), params![model, version, window], |r| {
                Ok(WindowStats {
                    queries: r.get(0)?,
                    mean_confidence: r.get(1)?,
                    fallback_rate: r.get(2)?,
                    from_ms: r.get(3)?,
                    to_ms: r.get(4)?,
                })
            })
        })
    }

    fn stats(&self, since_ms: i64, hour_ago_ms: i64) -> Result<[i64; 5], ServerError> {
        self.read(|c| {
            c.query_row(&stats_sql(|n| format!("?{n}")), [since_ms, hour_ago_ms], |r| {
                Ok([r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?])
            })
        })
    }

    fn set_labels(
        &self,
        id: i64,
        labels: &[String],
        replaces: Option<&[String]>,
        labeled_by: Option<&str>,
    ) -> Result<LabelOutcome, ServerError> {
        self.read(|c| {
            // IMMEDIATE: concurrent labelings of one item are serialized by SQLite's write lock.
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let current: Option<Option<String>> = tx
                .query_row("SELECT labels FROM labeling_queue WHERE id = ?1", [id], |r| r.get(0))
                .optional()?;
            let Some(current) = current else { return Ok(LabelOutcome::NotFound) };
            let (json, history, previous) = match decide(parse_labels(current), labels, replaces) {
                Decision::Done(outcome) => return Ok(outcome),
                Decision::Apply { labels, history, previous } => (labels, history, previous),
            };
            let now = now_ms();
            let labeled_ms = json.as_ref().map(|_| now);
            tx.execute(
                "UPDATE labeling_queue SET labels = ?1, labeled_ms = ?2 WHERE id = ?3",
                params![json, labeled_ms, id],
            )?;
            tx.execute(
                "INSERT INTO label_history (item_id, labels, previous, labeled_by, ts_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![id, history, previous, labeled_by, now],
            )?;
            tx.commit()?;
            Ok(LabelOutcome::Labeled)
        })
    }

    fn label_history(&self, id: i64) -> Result<Option<Vec<LabelChange>>, ServerError> {
        self.read(|c| {
            let exists: Option<i64> =
                c.query_row("SELECT id FROM labeling_queue WHERE id = ?1", [id], |r| r.get(0)).optional()?;
            if exists.is_none() {
                return Ok(None);
            }
            let mut stmt = c.prepare(
                "SELECT labels, previous, labeled_by, ts_ms FROM label_history WHERE item_id = ?1 \
                    ORDER BY id",
            )?;
            let rows = stmt.query_map([id], |r| {
                Ok(LabelChange {
                    labels: parse_labels(r.get(0)?).unwrap_or_default(),
                    previous: parse_labels(r.get(1)?),
                    labeled_by: r.get(2)?,
                    ts_ms: r.get(3)?,
                })
            })?;
            rows.collect::<Result<Vec<_>, _>>().map(Some)
        })
    }

    fn labeled(&self) -> Result<Vec<Labeled>, ServerError> {
        self.read(|c| {
            let mut stmt = c.prepare(
                "SELECT id, text, labels, labeled_ms FROM labeling_queue WHERE labels IS NOT NULL \
                    ORDER BY id",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok(Labeled {
                    id: r.get(0)?,
                    text: r.get(1)?,
                    labels: parse_labels(r.get(2)?).unwrap_or_default(),
                    labeled_ms: r.get(3)?,
                })
            })?;
            rows.collect()
        })
    }
}

/// The writer thread's connection.
pub(super) struct SqliteWriter {
    conn: Connection,
    /// Tests: the page limit to apply before each write (0: none).
    #[cfg(test)]
    pub(super) max_pages: u64,
}

impl RowWriter for SqliteWriter {
    fn write(&mut self, rows: &[QueryRow], options: &QueryLogOptions) -> Result<(), String> {
        #[cfg(test)]
        if self.max_pages > 0 {
            self.conn
                .pragma_update(None, "max_page_count", self.max_pages as i64)
                .map_err(|e| e.to_string())?;
        }
        write_rows(&mut self.conn, rows, options).map_err(|e| e.to_string())
    }

    fn finish(&mut self, location: &str) {
        if let Err(e) = self.conn.pragma_update(None, "wal_checkpoint", "TRUNCATE") {
            tracing::warn!("query log {location}: checkpoint at shutdown: {e}");
        }
    }

    #[cfg(test)]
    fn set_max_pages(&mut self, pages: u64) {
        self.max_pages = pages;
    }
}

/// Deletes the queries beyond `max_rows` (oldest first) and those older than `max_age`; returns
/// how many. The labeling queue and label history are kept.
fn prune(conn: &Connection, options: &QueryLogOptions) -> Result<usize, rusqlite::Error> {
    let mut n = 0;
    if let Some(max) = options.max_rows {
        n += conn.execute(
            "DELETE FROM queries WHERE id <= (SELECT MAX(id) FROM queries) - ?1",
            [i64::try_from(max).unwrap_or(i64::MAX)],
        )?;
    }
    if let Some(cutoff) = options.cutoff_ms() {
        n += conn.execute("DELETE FROM queries WHERE ts_ms < ?1", [cutoff])?;
    }
    Ok(n)
}

fn write_rows(
    conn: &mut Connection,
    rows: &[QueryRow],
    options: &QueryLogOptions,
) -> Result<(), rusqlite::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    let redact = options.redact;
    let tx = conn.transaction()?;
    {
        let mut insert = tx.prepare_cached(
            "INSERT INTO queries (ts_ms, text, text_sha256, label, confidence, fallback, top_k, model,
                model_version, latency_us, teacher_label)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        )?;
        let mut enqueue = tx.prepare_cached(
            "INSERT INTO labeling_queue (key, text, predicted, confidence, first_query_id, created_ms,
                last_seen_ms)
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
                r.latency_us as i64,
                r.teacher_label.as_deref().filter(|_| !redact)
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
    prune(&tx, options)?;
    tx.commit()
}
