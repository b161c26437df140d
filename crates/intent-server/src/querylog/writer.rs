//! The writer thread of the query log: batches, retries while the disk refuses, retention.

use std::path::Path;
use std::time::Duration;

use rusqlite::{params, Connection};
use sha2::{Digest, Sha256};

use super::{now_ms, QueryLogOptions, QueryRow, Shared, MAX_ROWS_PER_TRANSACTION};

/// First pause after a failed write; it doubles up to [`MAX_RETRY_PAUSE`].
const FIRST_RETRY_PAUSE: Duration = Duration::from_millis(100);
const MAX_RETRY_PAUSE: Duration = Duration::from_secs(1);

fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// Takes batches off the queue and commits them until the log is closed and empty.
pub(super) fn run(mut conn: Connection, shared: &Shared, options: &QueryLogOptions, path: &Path) {
    loop {
        let batch: Vec<QueryRow> = {
            let mut p = shared.lock();
            while p.rows.is_empty() && !p.closed {
                p = shared.wake.wait(p).unwrap_or_else(|e| e.into_inner());
            }
            if p.rows.is_empty() {
                break;
            }
            let n = p.rows.len().min(MAX_ROWS_PER_TRANSACTION);
            p.rows.drain(..n).collect()
        };
        write_with_retry(&mut conn, shared, options, path, &batch);
    }
    if let Err(e) = conn.pragma_update(None, "wal_checkpoint", "TRUNCATE") {
        tracing::warn!("query log {}: checkpoint at shutdown: {e}", path.display());
    }
}

/// Commits `batch`, retrying with a growing pause while the database refuses it (disk full,
/// locked); the log is degraded meanwhile. After [`super::QueryLog::close`] a failed batch, and
/// everything still queued, is given up: shutdown must not wait for disk space.
fn write_with_retry(
    conn: &mut Connection,
    shared: &Shared,
    options: &QueryLogOptions,
    path: &Path,
    batch: &[QueryRow],
) {
    let mut pause = FIRST_RETRY_PAUSE;
    loop {
        #[cfg(test)]
        {
            let pages = shared.max_pages.load(std::sync::atomic::Ordering::SeqCst);
            if pages > 0 {
                conn.pragma_update(None, "max_page_count", pages as i64).expect("max_page_count");
            }
        }
        match write_rows(conn, batch, options) {
            Ok(()) => {
                let mut p = shared.lock();
                p.held -= batch.len();
                if p.error.take().is_some() {
                    tracing::info!("query log {}: writing again", path.display());
                }
                drop(p);
                shared.settled.send_modify(|s| *s += batch.len() as u64);
                return;
            }
            Err(e) => {
                let mut p = shared.lock();
                if p.error.is_none() {
                    tracing::error!(
                        "query log {}: {e}; prediction goes on, {} rows held, newer rows beyond {} \
                            are dropped until writing works again",
                        path.display(),
                        p.held,
                        shared.capacity
                    );
                }
                p.error = Some(e.to_string());
                if p.closed {
                    let lost = batch.len() + p.rows.len();
                    p.rows.clear();
                    p.held -= lost;
                    p.dropped += lost as u64;
                    drop(p);
                    tracing::error!("query log {}: {e}; {lost} rows lost at shutdown", path.display());
                    shared.settled.send_modify(|s| *s += lost as u64);
                    return;
                }
                // Wait, but wake at once for a shutdown.
                let (p, _) = shared.wake.wait_timeout(p, pause).unwrap_or_else(|e| e.into_inner());
                drop(p);
                pause = (pause * 2).min(MAX_RETRY_PAUSE);
            }
        }
    }
}

/// Deletes the queries beyond `max_rows` (oldest first) and those older than `max_age`; returns
/// how many. The labeling queue and label history are kept.
pub(super) fn prune(conn: &Connection, options: &QueryLogOptions) -> Result<usize, rusqlite::Error> {
    let mut n = 0;
    if let Some(max) = options.max_rows {
        n += conn.execute(
            "DELETE FROM queries WHERE id <= (SELECT MAX(id) FROM queries) - ?1",
            [i64::try_from(max).unwrap_or(i64::MAX)],
        )?;
    }
    if let Some(age) = options.max_age {
        let cutoff = now_ms().saturating_sub(i64::try_from(age.as_millis()).unwrap_or(i64::MAX));
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
                model_version, latency_us)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
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
    prune(&tx, options)?;
    tx.commit()
}
