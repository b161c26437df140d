//! The labeling queue: pending items, labels given by people (with a history of every change),
//! and the export of labeled items as training data.

use rusqlite::{params, OptionalExtension, TransactionBehavior};
use serde::{Deserialize, Serialize};

use super::{now_ms, QueryLog};
use crate::ServerError;

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

/// One change of an item's labels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LabelChange {
    /// The labels given.
    pub labels: Vec<String>,
    /// The labels they replaced (none for the first labeling).
    pub previous: Option<Vec<String>>,
    /// Who labeled, when the request said.
    pub labeled_by: Option<String>,
    /// When, Unix milliseconds.
    pub ts_ms: i64,
}

/// What became of a labeling request.
#[derive(Debug, Clone, PartialEq)]
pub enum LabelOutcome {
    /// The labels were stored (and a history line written).
    Labeled,
    /// The item already had exactly these labels: nothing changed (a retried request).
    Unchanged,
    /// Someone labeled the item differently first, or `replaces` does not name its labels.
    Conflict {
        /// The labels it has now (`None`: unlabeled).
        current: Option<Vec<String>>,
    },
    /// No such item.
    NotFound,
}

fn parse_labels(json: Option<String>) -> Option<Vec<String>> {
    json.and_then(|l| serde_json::from_str(&l).ok())
}

impl QueryLog {
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
                Ok(QueueItem {
                    id: r.get(0)?,
                    text: r.get(1)?,
                    predicted: r.get(2)?,
                    confidence: r.get::<_, f64>(3)? as f32,
                    seen: r.get(4)?,
                    created_ms: r.get(5)?,
                    labels: parse_labels(r.get(6)?),
                })
            })?;
            rows.collect()
        })
    }

    /// Labels queue item `id`. An unlabeled item takes the labels; a labeled one only when
    /// `replaces` names the labels it has now (so of two people labeling one item at once, the
    /// second learns of the first instead of silently overwriting it). Every change is kept in
    /// the label history.
    pub fn set_labels(
        &self,
        id: i64,
        labels: &[String],
        replaces: Option<&[String]>,
        labeled_by: Option<&str>,
    ) -> Result<LabelOutcome, ServerError> {
        let json = serde_json::to_string(labels).unwrap_or_default();
        self.read_mut(|c| {
            // IMMEDIATE: concurrent labelings of one item are serialized by SQLite's write lock.
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let current: Option<Option<String>> = tx
                .query_row("SELECT labels FROM labeling_queue WHERE id = ?1", [id], |r| r.get(0))
                .optional()?;
            let Some(current) = current else { return Ok(LabelOutcome::NotFound) };
            let current = parse_labels(current);
            if current.as_deref() == Some(labels) {
                return Ok(LabelOutcome::Unchanged);
            }
            if current.as_deref() != replaces {
                return Ok(LabelOutcome::Conflict { current });
            }
            let now = now_ms();
            tx.execute(
                "UPDATE labeling_queue SET labels = ?1, labeled_ms = ?2 WHERE id = ?3",
                params![json, now, id],
            )?;
            let previous = current.map(|c| serde_json::to_string(&c).unwrap_or_default());
            tx.execute(
                "INSERT INTO label_history (item_id, labels, previous, labeled_by, ts_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![id, json, previous, labeled_by, now],
            )?;
            tx.commit()?;
            Ok(LabelOutcome::Labeled)
        })
    }

    /// Every change of item `id`'s labels, oldest first (`None`: no such item).
    pub fn label_history(&self, id: i64) -> Result<Option<Vec<LabelChange>>, ServerError> {
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
}
