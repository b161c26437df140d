//! The labeling queue: pending items, labels given by people (with a history of every change),
//! and the export of labeled items as training data.

use serde::{Deserialize, Serialize};

use super::QueryLog;
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

/// A labeled item, as exported.
pub(super) struct Labeled {
    pub id: i64,
    pub text: String,
    pub labels: Vec<String>,
    pub labeled_ms: Option<i64>,
}

/// What to do with a labeling request, given the item's labels now.
pub(super) enum Decision {
    /// Nothing to write: `Unchanged` or `Conflict`.
    Done(LabelOutcome),
    /// Store `labels` (JSON) and a history line with `previous` (JSON).
    Apply { labels: String, previous: Option<String> },
}

/// An unlabeled item takes the labels; a labeled one only when `replaces` names its labels now;
/// the same labels again change nothing (a retried request).
pub(super) fn decide(
    current: Option<Vec<String>>,
    labels: &[String],
    replaces: Option<&[String]>,
) -> Decision {
    if current.as_deref() == Some(labels) {
        return Decision::Done(LabelOutcome::Unchanged);
    }
    if current.as_deref() != replaces {
        return Decision::Done(LabelOutcome::Conflict { current });
    }
    Decision::Apply {
        labels: serde_json::to_string(labels).unwrap_or_default(),
        previous: current.map(|c| serde_json::to_string(&c).unwrap_or_default()),
    }
}

impl QueryLog {
    /// The labeling queue, oldest first: pending items only, or labeled ones too.
    pub fn queue(&self, limit: usize, include_labeled: bool) -> Result<Vec<QueueItem>, ServerError> {
        self.backend.queue(limit, include_labeled)
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
        self.backend.set_labels(id, labels, replaces, labeled_by)
    }

    /// Every change of item `id`'s labels, oldest first (`None`: no such item).
    pub fn label_history(&self, id: i64) -> Result<Option<Vec<LabelChange>>, ServerError> {
        self.backend.label_history(id)
    }

    /// Labeled queue items as labeled JSONL (`{"text", "label"}`, or `"labels"` when an item
    /// has several), the format `intent train` reads; `source` is `labeling-queue:<id>`.
    pub fn export_jsonl(&self) -> Result<String, ServerError> {
        let mut out = String::new();
        for item in self.backend.labeled()? {
            let mut obj = serde_json::json!({ "text": item.text });
            if item.labels.len() == 1 {
                obj["label"] = item.labels[0].clone().into();
            } else {
                obj["labels"] = item.labels.into();
            }
            obj["source"] = format!("labeling-queue:{}", item.id).into();
            if let Some(ms) = item.labeled_ms {
                obj["timestamp"] = ms.to_string().into();
            }
            out.push_str(&obj.to_string());
            out.push('\n');
        }
        Ok(out)
    }
}
