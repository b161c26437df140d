//! What a query-log store does: the writer's side (batches of rows) and the readers' side (the
//! labeling queue, labels, their history and export). SQLite and PostgreSQL implement both.

use super::labels::{LabelChange, LabelOutcome, Labeled, QueueItem, QueueQuery};
use super::quality::WindowStats;
use super::{QueryLogOptions, QueryRow};
use crate::ServerError;

/// Reads and label changes; called from blocking threads.
pub(super) trait Backend: Send + Sync {
    /// Logged queries.
    fn count(&self) -> Result<i64, ServerError>;
    /// Id of the last logged query.
    fn last_query_id(&self) -> Result<Option<i64>, ServerError>;
    /// The labeling queue as `query` says.
    fn queue(&self, query: &QueueQuery) -> Result<Vec<QueueItem>, ServerError>;
    /// Items waiting, labeled since `since_ms`, labeled in all, queries since `hour_ago_ms` and
    /// the fallbacks among them.
    fn stats(&self, since_ms: i64, hour_ago_ms: i64) -> Result<[i64; 5], ServerError>;
    /// Labels an item (see [`super::QueryLog::set_labels`]).
    fn set_labels(
        &self,
        id: i64,
        labels: &[String],
        replaces: Option<&[String]>,
        labeled_by: Option<&str>,
    ) -> Result<LabelOutcome, ServerError>;
    /// An item's label changes; `None` when there is no such item.
    fn label_history(&self, id: i64) -> Result<Option<Vec<LabelChange>>, ServerError>;
    /// Every labeled item, by id.
    fn labeled(&self) -> Result<Vec<Labeled>, ServerError>;
    /// The latest 100,000 logged queries with a teacher label (text, label, time), newest first.
    fn teacher_labels(&self) -> Result<Vec<(String, String, i64)>, ServerError>;
    /// The latest logged answers (at most 100,000) at least `min_confidence` sure and not under
    /// the fallback threshold: (text, label, confidence, time), newest first.
    fn confident(&self, min_confidence: f64) -> Result<Vec<(String, String, f64, i64)>, ServerError>;
    /// The first (`first`) or latest `window` queries of a model version.
    fn window_stats(
        &self,
        model: &str,
        version: &str,
        window: i64,
        first: bool,
    ) -> Result<WindowStats, ServerError>;
}

/// The writer thread's side: one transaction per batch, retention included.
pub(super) trait RowWriter: Send {
    /// Commits `rows` (and prunes); the error is shown by `/ready` while the log is degraded.
    fn write(&mut self, rows: &[QueryRow], options: &QueryLogOptions) -> Result<(), String>;
    /// Called once when the writer stops.
    fn finish(&mut self, location: &str);
    /// Tests: caps an SQLite database at `pages` pages.
    #[cfg(test)]
    fn set_max_pages(&mut self, _pages: u64) {}
}
