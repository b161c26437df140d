//! Answer quality of a served version, from the query log: the mean confidence and the share of
//! fallbacks over its first queries (as deployed) and over its latest ones, so that a drift can
//! be told from the log (`intent retrain`'s `[triggers.drift]`).

use serde::{Deserialize, Serialize};

use super::QueryLog;
use crate::ServerError;

/// Queries of one window of a version's log.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WindowStats {
    /// Queries in the window (fewer than asked when the version has answered fewer).
    pub queries: i64,
    /// Mean confidence of the answers (`null` without queries).
    pub mean_confidence: Option<f64>,
    /// Share of the answers under the fallback threshold (`null` without queries).
    pub fallback_rate: Option<f64>,
    /// Time of the window's first query, Unix milliseconds.
    pub from_ms: Option<i64>,
    /// Time of its last query.
    pub to_ms: Option<i64>,
}

/// The first and the latest `window` queries a model version answered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Quality {
    /// Model name, as logged.
    pub model: String,
    /// Model version, as logged.
    pub version: String,
    /// Queries per window asked for.
    pub window: i64,
    /// Its first queries: the quality at deployment.
    pub baseline: WindowStats,
    /// Its latest queries.
    pub recent: WindowStats,
}

/// The statistics of the first (`first`) or latest `window` queries of a model version; one SQL
/// text for both stores, with the store's placeholders (1: model, 2: version, 3: window).
pub(super) fn window_sql(placeholder: fn(usize) -> String, first: bool) -> String {
    let (model, version, window) = (placeholder(1), placeholder(2), placeholder(3));
    format!(
        "SELECT COUNT(*), AVG(confidence), \
         AVG(CAST(CASE WHEN fallback THEN 1 ELSE 0 END AS DOUBLE PRECISION)), MIN(ts_ms), MAX(ts_ms) \
         FROM (SELECT confidence, fallback, ts_ms FROM queries \
         WHERE model = {model} AND model_version = {version} \
         ORDER BY id {} LIMIT {window}) AS w",
        if first { "ASC" } else { "DESC" }
    )
}

/// The latest 100,000 logged queries that the fallback service labeled, newest first.
pub(super) const TEACHER_SQL: &str =
    "SELECT text, teacher_label, ts_ms FROM queries WHERE teacher_label IS NOT NULL \
    AND text IS NOT NULL ORDER BY id DESC LIMIT 100000";

/// The latest sure answers (placeholder 1: the least confidence), newest first.
pub(super) const CONFIDENT_SQL: &str =
    "SELECT text, label, confidence, ts_ms FROM queries WHERE text IS NOT NULL \
    AND NOT fallback AND confidence >= ?1 ORDER BY id DESC LIMIT 100000";

impl QueryLog {
    /// Pseudo-labels: the model's own answers of at least `min_confidence` (and not under the
    /// fallback threshold) as labeled JSONL with their `confidence`, the latest of each text,
    /// `"source": "pseudo"`; from the latest 100,000 such answers.
    pub fn export_confident_jsonl(&self, min_confidence: f64) -> Result<String, ServerError> {
        let mut seen = std::collections::HashSet::new();
        let mut out = String::new();
        for (text, label, confidence, ts) in self.backend.confident(min_confidence)? {
            if seen.insert(intent_data::normalize_text(&text)) {
                let obj = serde_json::json!({
                    "text": text, "label": label, "confidence": confidence, "source": "pseudo",
                    "timestamp": ts.to_string()
                });
                out.push_str(&obj.to_string());
                out.push('\n');
            }
        }
        Ok(out)
    }

    /// The teacher labels (of the `--fallback-url` service) as labeled JSONL: the latest label
    /// of each text (normalized), `"source": "teacher"`, newest first, from the latest 100,000.
    pub fn export_teacher_jsonl(&self) -> Result<String, ServerError> {
        let mut seen = std::collections::HashSet::new();
        let mut out = String::new();
        // Newest first: the first row of a text is its latest label.
        for (text, label, ts) in self.backend.teacher_labels()? {
            if seen.insert(intent_data::normalize_text(&text)) {
                let obj = serde_json::json!({
                    "text": text, "label": label, "source": "teacher", "timestamp": ts.to_string()
                });
                out.push_str(&obj.to_string());
                out.push('\n');
            }
        }
        Ok(out)
    }

    /// The first and the latest `window` queries that `version` of `model` answered.
    pub fn quality(&self, model: &str, version: &str, window: i64) -> Result<Quality, ServerError> {
        Ok(Quality {
            model: model.to_string(),
            version: version.to_string(),
            window,
            baseline: self.backend.window_stats(model, version, window, true)?,
            recent: self.backend.window_stats(model, version, window, false)?,
        })
    }
}
