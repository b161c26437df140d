//! The query log under pressure: a stalled writer, a full database, retention, file modes, and
//! concurrent labelers. The "full disk" is SQLite's page limit (`max_page_count`), which fails
//! writes with the same `SQLITE_FULL` error a full filesystem gives.

use std::time::{Duration, Instant};

use super::*;

fn row(i: usize, ts_ms: i64) -> QueryRow {
    QueryRow {
        ts_ms,
        text: format!("query number {i} with some padding to fill the pages of the database"),
        label: "card".into(),
        confidence: 0.2,
        fallback: true,
        top_k: vec![],
        model: "faq".into(),
        model_version: "1".into(),
        latency_us: 10,
        teacher_label: None,
    }
}

fn rows(from: usize, n: usize) -> Vec<QueryRow> {
    (from..from + n).map(|i| row(i, now_ms())).collect()
}

fn small_queue(queue_rows: usize) -> QueryLogOptions {
    QueryLogOptions { queue_rows, ..QueryLogOptions::default() }
}

async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < Duration::from_secs(20), "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_stalled_writer_holds_at_most_the_queue_in_rows() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("q.sqlite");
    let log = QueryLog::open_with(&db, small_queue(1000)).unwrap();
    // Another process holds the write lock: the writer stalls inside its first transaction.
    let outside = rusqlite::Connection::open(&db).unwrap();
    outside.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let start = Instant::now();
    let mut accepted = 0;
    for r in 0..30 {
        accepted += log.record(rows(r * 256, 256));
        assert!(log.status().queued_rows <= 1000, "held rows exceed the bound");
    }
    assert!(start.elapsed() < Duration::from_secs(2), "recording waited on the stalled writer");
    assert_eq!(accepted, 1000, "the queue takes exactly its bound");
    assert_eq!(log.status().dropped_rows, 30 * 256 - 1000);
    outside.execute_batch("COMMIT").unwrap();
    log.flush().await;
    assert_eq!(log.count().unwrap(), 1000, "every accepted row is written once the lock goes");
    assert_eq!(log.status().queued_rows, 0);
}

#[tokio::test]
async fn a_full_database_degrades_drops_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("q.sqlite");
    let log = QueryLog::open_with(&db, small_queue(500)).unwrap();
    log.record(rows(0, 10));
    log.flush().await;
    assert!(!log.status().degraded);

    log.set_max_pages(1); // no page more than the file has now
    log.record(rows(10, 200));
    wait_until("the log degrades", || log.status().degraded).await;
    let status = log.status();
    assert!(status.error.as_deref().unwrap().contains("full"), "{status:?}");
    // Requests go on without waiting; what does not fit the queue is dropped and counted.
    let start = Instant::now();
    let mut accepted = 0;
    for r in 0..20 {
        accepted += log.record(rows(1000 + r * 100, 100));
    }
    assert!(start.elapsed() < Duration::from_secs(1));
    assert_eq!(accepted, 300, "200 held + 300 = the 500-row queue");
    assert_eq!(log.status().dropped_rows, 2000 - 300);

    log.set_max_pages(1 << 30); // space is back
    log.flush().await;
    let status = log.status();
    assert!(!status.degraded, "{status:?}");
    assert_eq!(log.count().unwrap(), 10 + 200 + 300);
}

#[tokio::test]
async fn closing_on_a_full_database_gives_up_and_counts() {
    let dir = tempfile::tempdir().unwrap();
    let log = QueryLog::open_with(&dir.path().join("q.sqlite"), small_queue(4096)).unwrap();
    log.set_max_pages(1);
    log.record(rows(0, 3000));
    wait_until("the log degrades", || log.status().degraded).await;
    let start = Instant::now();
    log.close();
    assert!(start.elapsed() < Duration::from_secs(5), "shutdown waited for disk space");
    assert_eq!(log.status().dropped_rows, 3000);
    assert_eq!(log.record(rows(0, 5)), 0, "rows after close are dropped");
    assert_eq!(log.status().dropped_rows, 3005);
}

#[tokio::test]
async fn retention_keeps_the_newest_rows_and_the_labeling_queue() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("q.sqlite");
    let options = QueryLogOptions { max_rows: Some(10), ..QueryLogOptions::default() };
    let log = QueryLog::open_with(&db, options).unwrap();
    log.record(rows(0, 25));
    log.flush().await;
    assert_eq!(log.count().unwrap(), 10);
    let conn = rusqlite::Connection::open(&db).unwrap();
    let first: String =
        conn.query_row("SELECT text FROM queries ORDER BY id LIMIT 1", [], |r| r.get(0)).unwrap();
    assert!(first.starts_with("query number 15 "), "{first}");
    assert_eq!(log.queue(100, true).unwrap().len(), 25, "the labeling queue is kept");
    log.close();
    drop(log);

    // Age: rows older than max_age go when the log opens and with every write.
    let options = QueryLogOptions { max_age: Some(Duration::from_secs(3600)), ..QueryLogOptions::default() };
    let log = QueryLog::open_with(&db, options).unwrap();
    let old = now_ms() - 2 * 3600 * 1000;
    log.record((0..5).map(|i| row(100 + i, old)).collect());
    log.record(rows(200, 3));
    log.flush().await;
    assert_eq!(log.count().unwrap(), 10 + 3, "the 5 old rows are pruned at once");
}

#[cfg(unix)]
#[tokio::test]
async fn files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("q.sqlite");
    let log = QueryLog::open(&db, false).unwrap();
    log.record(rows(0, 3));
    log.flush().await;
    for name in ["q.sqlite", "q.sqlite-wal", "q.sqlite-shm"] {
        let mode = std::fs::metadata(dir.path().join(name)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{name}");
    }
}

#[tokio::test]
async fn concurrent_labelers_get_one_winner_and_a_history() {
    let dir = tempfile::tempdir().unwrap();
    let log = std::sync::Arc::new(QueryLog::open(&dir.path().join("q.sqlite"), false).unwrap());
    log.record(rows(0, 1));
    log.flush().await;
    let id = log.queue(1, false).unwrap()[0].id;
    let handles: Vec<_> = (0..20)
        .map(|i| {
            let log = log.clone();
            std::thread::spawn(move || log.set_labels(id, &[format!("label{i}")], None, None).unwrap())
        })
        .collect();
    let outcomes: Vec<LabelOutcome> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let won = outcomes.iter().filter(|o| **o == LabelOutcome::Labeled).count();
    assert_eq!(won, 1, "{outcomes:?}");
    let current = log.queue(1, true).unwrap()[0].labels.clone().unwrap();
    for o in &outcomes {
        if let LabelOutcome::Conflict { current: c } = o {
            assert_eq!(c.as_ref(), Some(&current));
        }
    }
    // The same labels again: a retried request, nothing changes.
    assert_eq!(log.set_labels(id, &current, None, None).unwrap(), LabelOutcome::Unchanged);
    // A change naming what it replaces goes through.
    let new = vec!["card".to_string()];
    assert_eq!(log.set_labels(id, &new, Some(&current), Some("ana")).unwrap(), LabelOutcome::Labeled);
    assert_eq!(log.set_labels(999, &new, None, None).unwrap(), LabelOutcome::NotFound);
    let history = log.label_history(id).unwrap().unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!((history[0].labels.clone(), history[0].previous.clone()), (current.clone(), None));
    assert_eq!(history[1].labels, new);
    assert_eq!(history[1].previous, Some(current));
    assert_eq!(history[1].labeled_by.as_deref(), Some("ana"));
    assert_eq!(log.label_history(999).unwrap(), None);
}

#[tokio::test]
async fn quality_is_measured_over_a_versions_first_and_latest_queries() {
    let dir = tempfile::tempdir().unwrap();
    let log = QueryLog::open_with(&dir.path().join("q.sqlite"), QueryLogOptions::default()).unwrap();
    let answered = |i: usize, confidence: f32, version: &str| QueryRow {
        confidence,
        fallback: confidence < 0.5,
        model_version: version.into(),
        ..row(i, 1_000 + i as i64)
    };
    // Version 1: ten confident answers, then ten unsure ones; version 2's rows do not count.
    let mut rows: Vec<QueryRow> = (0..10).map(|i| answered(i, 0.9, "1")).collect();
    rows.extend((10..20).map(|i| answered(i, 0.3, "1")));
    rows.extend((20..25).map(|i| answered(i, 0.1, "2")));
    log.record(rows);
    log.flush().await;
    let q = log.quality("faq", "1", 10).unwrap();
    let close = |a: Option<f64>, b: f64| a.is_some_and(|a| (a - b).abs() < 1e-6);
    assert_eq!((q.baseline.queries, q.recent.queries), (10, 10));
    assert!(close(q.baseline.mean_confidence, 0.9) && close(q.baseline.fallback_rate, 0.0), "{q:?}");
    assert!(close(q.recent.mean_confidence, 0.3) && close(q.recent.fallback_rate, 1.0), "{q:?}");
    assert_eq!(
        (q.baseline.from_ms, q.baseline.to_ms, q.recent.from_ms, q.recent.to_ms),
        (Some(1000), Some(1009), Some(1010), Some(1019))
    );
    // Windows larger than half the log overlap: 15 of 20 → 10 × 0.9 + 5 × 0.3.
    let q = log.quality("faq", "1", 15).unwrap();
    assert!(close(q.baseline.mean_confidence, 0.7) && close(q.recent.mean_confidence, 0.5), "{q:?}");
    let none = log.quality("faq", "9", 10).unwrap();
    assert_eq!(none.recent, WindowStats::default(), "a version that answered nothing");
}

#[tokio::test]
async fn pseudo_labels_are_the_latest_sure_answers() {
    let dir = tempfile::tempdir().unwrap();
    let log = QueryLog::open_with(&dir.path().join("q.sqlite"), QueryLogOptions::default()).unwrap();
    let answered = |text: &str, label: &str, confidence: f32| QueryRow {
        text: text.into(),
        label: label.into(),
        confidence,
        fallback: confidence < 0.5,
        ..row(0, 5)
    };
    log.record(vec![
        answered("my card is stuck", "card", 0.95),
        answered("send money", "transfer", 0.7),
        answered("My card is stuck!", "refund", 0.92),
        answered("unsure", "card", 0.3),
    ]);
    log.flush().await;
    let lines: Vec<serde_json::Value> =
        log.export_confident_jsonl(0.9).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 1, "the latest answer of a text: {lines:?}");
    assert_eq!(
        (lines[0]["text"].as_str(), lines[0]["label"].as_str()),
        (Some("My card is stuck!"), Some("refund"))
    );
    assert_eq!(lines[0]["source"], "pseudo");
    assert!((lines[0]["confidence"].as_f64().unwrap() - 0.92).abs() < 1e-6);
    assert_eq!(log.export_confident_jsonl(0.6).unwrap().lines().count(), 2);
}
