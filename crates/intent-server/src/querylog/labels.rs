//! The labeling queue: pending items, labels given by people (with a history of every change),
//! and the export of labeled items as training data.

use intent_serve::LabelScore;
use serde::{Deserialize, Serialize};

use super::QueryLog;
use crate::ServerError;

/// Suggestions a queue item carries at most (the model's best labels when it was first asked).
pub const SUGGESTIONS: usize = 3;

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
    /// Last asked, Unix milliseconds.
    pub last_seen_ms: i64,
    /// The model's best labels with their confidences, when the query that queued the item is
    /// still in the log (retention may have pruned it).
    pub suggestions: Vec<LabelScore>,
    /// Version of the model that answered it, when known.
    pub model_version: Option<String>,
}

/// Which queue items, in which order.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueQuery {
    /// Most items.
    pub limit: usize,
    /// Labeled items too.
    pub include_labeled: bool,
    /// Order of the items.
    pub order: QueueOrder,
    /// Only items the model predicted as this label.
    pub predicted: Option<String>,
    /// Only items with at least this confidence.
    pub min_confidence: Option<f64>,
    /// Only items with at most this confidence.
    pub max_confidence: Option<f64>,
    /// Only items whose text holds this (case-insensitive for ASCII letters).
    pub search: Option<String>,
}

impl QueueQuery {
    /// The first `limit` items, oldest first: pending only, or labeled ones too.
    pub fn new(limit: usize, include_labeled: bool) -> Self {
        QueueQuery {
            limit,
            include_labeled,
            order: QueueOrder::Oldest,
            predicted: None,
            min_confidence: None,
            max_confidence: None,
            search: None,
        }
    }
}

/// Order of the labeling queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum QueueOrder {
    /// First queued first.
    #[default]
    Oldest,
    /// Last queued first.
    Newest,
    /// Most often asked first (then oldest).
    Frequent,
}

/// A value bound to a queue query's placeholder.
pub(super) enum SqlParam {
    Int(i64),
    Real(f64),
    Text(String),
}

/// The SQL of a queue query, for a store whose placeholders `placeholder(n)` writes (1-based)
/// and whose substring function is `position` (`instr` or `strpos`), with the values to bind.
/// The columns: id, text, predicted, confidence, seen, created_ms, labels, last_seen_ms, and
/// the queuing query's top_k and model_version (NULL once pruned).
pub(super) fn queue_sql(
    q: &QueueQuery,
    placeholder: fn(usize) -> String,
    position: &str,
) -> (String, Vec<SqlParam>) {
    let mut params = Vec::new();
    let mut wheres = Vec::new();
    let bind = |p: SqlParam, params: &mut Vec<SqlParam>| {
        params.push(p);
        placeholder(params.len())
    };
    if !q.include_labeled {
        wheres.push("lq.labels IS NULL".to_string());
    }
    if let Some(p) = &q.predicted {
        wheres.push(format!("lq.predicted = {}", bind(SqlParam::Text(p.clone()), &mut params)));
    }
    if let Some(c) = q.min_confidence {
        wheres.push(format!("lq.confidence >= {}", bind(SqlParam::Real(c), &mut params)));
    }
    if let Some(c) = q.max_confidence {
        wheres.push(format!("lq.confidence <= {}", bind(SqlParam::Real(c), &mut params)));
    }
    if let Some(s) = &q.search {
        let ph = bind(SqlParam::Text(s.clone()), &mut params);
        wheres.push(format!("{position}(lower(lq.text), lower({ph})) > 0"));
    }
    let order = match q.order {
        QueueOrder::Oldest => "lq.id",
        QueueOrder::Newest => "lq.id DESC",
        QueueOrder::Frequent => "lq.seen DESC, lq.id",
    };
    let limit = bind(SqlParam::Int(i64::try_from(q.limit).unwrap_or(i64::MAX)), &mut params);
    let sql = format!(
        "SELECT lq.id, lq.text, lq.predicted, lq.confidence, lq.seen, lq.created_ms, lq.labels, \
            lq.last_seen_ms, q.top_k, q.model_version \
         FROM labeling_queue lq LEFT JOIN queries q ON q.id = lq.first_query_id \
         {} ORDER BY {order} LIMIT {limit}",
        if wheres.is_empty() { String::new() } else { format!("WHERE {}", wheres.join(" AND ")) }
    );
    (sql, params)
}

/// The best [`SUGGESTIONS`] labels of a logged `top_k` (JSON); none when it is missing or bad.
pub(super) fn suggestions(top_k: Option<String>) -> Vec<LabelScore> {
    let mut all: Vec<LabelScore> = top_k.and_then(|t| serde_json::from_str(&t).ok()).unwrap_or_default();
    all.truncate(SUGGESTIONS);
    all
}

/// Counters of the labeling console.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct LabelingStats {
    /// Items waiting for a label.
    pub waiting: i64,
    /// Items labeled since `since_ms`.
    pub labeled_since: i64,
    /// The start of that count, Unix milliseconds.
    pub since_ms: i64,
    /// Items labeled in all.
    pub labeled_total: i64,
    /// Queries logged in the last hour.
    pub queries_last_hour: i64,
    /// Of those, answered below the fallback threshold.
    pub fallback_last_hour: i64,
    /// `fallback_last_hour / queries_last_hour` (`None` without queries).
    pub fallback_rate_last_hour: Option<f64>,
}

impl LabelingStats {
    /// The counters from the store's four counts.
    pub(super) fn new(counts: [i64; 5], since_ms: i64) -> Self {
        let [waiting, labeled_since, labeled_total, queries, fallback] = counts;
        LabelingStats {
            waiting,
            labeled_since,
            since_ms,
            labeled_total,
            queries_last_hour: queries,
            fallback_last_hour: fallback,
            fallback_rate_last_hour: (queries > 0).then(|| fallback as f64 / queries as f64),
        }
    }
}

/// The SQL of the five counts of [`LabelingStats`]; `$1`/`?1` is `since_ms`, `$2`/`?2` an hour
/// ago.
pub(super) fn stats_sql(placeholder: fn(usize) -> String) -> String {
    let (since, hour) = (placeholder(1), placeholder(2));
    format!(
        "SELECT (SELECT COUNT(*) FROM labeling_queue WHERE labels IS NULL), \
            (SELECT COUNT(*) FROM labeling_queue WHERE labels IS NOT NULL AND labeled_ms >= {since}), \
            (SELECT COUNT(*) FROM labeling_queue WHERE labels IS NOT NULL), \
            (SELECT COUNT(*) FROM queries WHERE ts_ms >= {hour}), \
            (SELECT COUNT(*) FROM queries WHERE ts_ms >= {hour} AND fallback)"
    )
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
    /// Store `labels` (JSON; `None`: back to the queue, unlabeled), and a history line with
    /// `history` (the labels as JSON, `[]` when cleared) and `previous` (JSON).
    Apply { labels: Option<String>, history: String, previous: Option<String> },
}

/// An unlabeled item takes the labels; a labeled one only when `replaces` names its labels now;
/// the same labels again change nothing (a retried request). No labels (with `replaces`) return
/// an item to the queue: an undo.
pub(super) fn decide(
    current: Option<Vec<String>>,
    labels: &[String],
    replaces: Option<&[String]>,
) -> Decision {
    let target = (!labels.is_empty()).then_some(labels);
    if current.as_deref() == target {
        return Decision::Done(LabelOutcome::Unchanged);
    }
    if current.as_deref() != replaces {
        return Decision::Done(LabelOutcome::Conflict { current });
    }
    let history = serde_json::to_string(labels).unwrap_or_default();
    Decision::Apply {
        labels: target.map(|_| history.clone()),
        history,
        previous: current.map(|c| serde_json::to_string(&c).unwrap_or_default()),
    }
}

impl QueryLog {
    /// The labeling queue, oldest first: pending items only, or labeled ones too.
    pub fn queue(&self, limit: usize, include_labeled: bool) -> Result<Vec<QueueItem>, ServerError> {
        self.backend.queue(&QueueQuery::new(limit, include_labeled))
    }

    /// The labeling queue, filtered and ordered as `query` says.
    pub fn queue_query(&self, query: &QueueQuery) -> Result<Vec<QueueItem>, ServerError> {
        self.backend.queue(query)
    }

    /// The labeling console's counters: items waiting, labeled since `since_ms` and in all, and
    /// the queries of the last hour with how many fell back.
    pub fn labeling_stats(&self, since_ms: i64) -> Result<LabelingStats, ServerError> {
        let hour_ago = super::now_ms() - 3_600_000;
        Ok(LabelingStats::new(self.backend.stats(since_ms, hour_ago)?, since_ms))
    }

    /// Labels queue item `id`. An unlabeled item takes the labels; a labeled one only when
    /// `replaces` names the labels it has now (so of two people labeling one item at once, the
    /// second learns of the first instead of silently overwriting it). No labels, with
    /// `replaces`, return the item to the queue (an undo). Every change is kept in the label
    /// history (a return to the queue as `[]`).
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
