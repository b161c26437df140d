//! Admin routes (bearer token): model reload and rollback, the labeling queue and its export.

use crate::api_error::{ApiError, ErrorBody, JsonBody};
use crate::auth;
use crate::querylog::{LabelChange, LabelOutcome, QueueItem, QueueOrder, QueueQuery};
use crate::server::AppState;
use crate::{QueryLog, Served, ServerError};
use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use intent_serve::ModelSpec;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};

/// Admin routes need `Authorization: Bearer <token>`. Without a configured token they are
/// disabled (403), not open. Tokens are compared as SHA-256 digests in constant time, so
/// neither the content nor the length of the token leaks through timing.
pub(crate) async fn require_token(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let Some(expected) = state.0.admin_digest else {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "admin routes are disabled: the server has no admin token (set INTENT_ADMIN_TOKEN or \
                --admin-token-file)",
        )
        .into_response();
    };
    match auth::bearer(req.headers()) {
        Some(t) if auth::matches(t, &expected) => next.run(req).await,
        Some(_) => auth::unauthorized("wrong admin token"),
        None => auth::unauthorized("missing `Authorization: Bearer <token>`"),
    }
}

/// Body of `POST /admin/reload` (optional).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReloadRequest {
    /// A model folder or `NAME@ALIAS` under the server's `--models-root` (default: the served
    /// spec, re-resolved).
    model: Option<String>,
}

/// Loads a model (the served spec re-resolved, or `{"model": "DIR|ROOT/NAME@ALIAS"}`), checks
/// it and swaps it in; metrics follow. Returns the status and body of the answer.
pub(crate) async fn do_reload(state: &AppState, spec: Option<ModelSpec>) -> (StatusCode, serde_json::Value) {
    let metrics = state.metrics();
    match state.slot().reload(spec, state.load_options()).await {
        Ok(swap) => {
            metrics.swaps.inc();
            metrics.set_model(&swap.to.name, &swap.to.version);
            (StatusCode::OK, json!({ "swapped": true, "from": swap.from, "to": swap.to }))
        }
        Err(e) => {
            metrics.swap_failures.inc();
            tracing::warn!("reload refused: {e}");
            let serving = state.slot().current().map(|m| m.info());
            (
                StatusCode::UNPROCESSABLE_ENTITY,
                json!({
                    "error": format!("reload refused, the current model keeps serving: {e}"),
                    "swapped": false,
                    "serving": serving,
                }),
            )
        }
    }
}

/// Loads a model (the served spec re-resolved, or `model`: a folder or `NAME@ALIAS` under the
/// server's `--models-root`), smoke-tests it and swaps it in.
#[utoipa::path(post, path = "/admin/reload", tag = "admin", request_body(content = Option<ReloadRequest>),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "`{swapped: true, from, to}`", body = serde_json::Value),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
        (status = 403, description = "Admin routes disabled (no token configured), or `model` given \
            to a server without `--models-root`", body = ErrorBody),
        (status = 422, description = "Refused: the current model keeps serving", body = serde_json::Value),
    ))]
pub(crate) async fn reload(State(state): State<AppState>, body: Bytes) -> Result<Response, ApiError> {
    let req: ReloadRequest = if body.iter().all(u8::is_ascii_whitespace) {
        ReloadRequest::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            ApiError::unprocessable(format!(
                "body: {e}; expected {{\"model\": \"a folder or NAME@ALIAS under the models root\"}} \
                    or nothing"
            ))
        })?
    };
    let Some(requested) = req.model else {
        let (status, body) = do_reload(&state, None).await;
        return Ok((status, Json(body)).into_response());
    };
    let root = state.0.options.models_root.clone().ok_or_else(|| {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "this server loads no model by name: start it with --models-root DIR to allow \
                `{\"model\": …}` under DIR; without a body, /admin/reload reloads the served model",
        )
    })?;
    let spec = confine(&root, &requested)?;
    let (status, mut body) = do_reload(&state, Some(spec)).await;
    // Errors speak of the models root, never of where it is on the host.
    if let Some(e) = body.get_mut("error") {
        *e = hide_root(e.as_str().unwrap_or_default(), &root).into();
    }
    Ok((status, Json(body)).into_response())
}

/// The spec of `requested` (`DIR` or `NAME@ALIAS`) inside `root`: relative, without `..`, and
/// still inside `root` once symlinks are followed. Whether the path is missing or outside, the
/// answer is the same, so a caller learns nothing of the host's files.
fn confine(root: &std::path::Path, requested: &str) -> Result<ModelSpec, ApiError> {
    use std::path::Component;
    let relative = std::path::Path::new(requested);
    if requested.starts_with("hf://") {
        return Err(ApiError::unprocessable("Hub models are loaded at start only (--model hf://…)"));
    }
    if requested.is_empty()
        || !relative.components().all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return Err(ApiError::unprocessable(format!(
            "model '{requested}': expected a path relative to the models root, without '..'"
        )));
    }
    let missing = || ApiError::unprocessable(format!("no model '{requested}' under the models root"));
    let spec = ModelSpec::parse(&root.join(relative).to_string_lossy());
    let folder = match &spec {
        ModelSpec::Dir(p) => p.clone(),
        ModelSpec::Alias { model_dir, .. } => model_dir.clone(),
        ModelSpec::Hub { .. } => return Err(missing()),
    };
    let (Ok(root), Ok(folder)) = (root.canonicalize(), folder.canonicalize()) else { return Err(missing()) };
    if !folder.starts_with(&root) || !folder.is_dir() {
        return Err(missing());
    }
    Ok(spec)
}

/// `message` with the models root (as given and as resolved) written as `<models-root>`.
pub(crate) fn hide_root(message: &str, root: &std::path::Path) -> String {
    let mut out = message.to_string();
    let mut forms = vec![root.to_string_lossy().into_owned()];
    if let Ok(c) = root.canonicalize() {
        forms.push(c.to_string_lossy().into_owned());
    }
    forms.sort_by_key(|f| std::cmp::Reverse(f.len()));
    for f in forms.iter().filter(|f| !f.is_empty()) {
        out = out.replace(f.as_str(), "<models-root>");
    }
    out
}

/// Back to the model that served before the last swap.
#[utoipa::path(post, path = "/admin/rollback", tag = "admin", security(("admin_token" = [])),
    responses(
        (status = 200, description = "`{swapped: true, from, to}`", body = serde_json::Value),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
        (status = 409, description = "No previous model", body = ErrorBody),
    ))]
pub(crate) async fn rollback(State(state): State<AppState>) -> Result<Response, ApiError> {
    let swap = state
        .slot()
        .rollback()
        .await
        .ok_or_else(|| ApiError::new(StatusCode::CONFLICT, "no previous model to roll back to"))?;
    state.metrics().swaps.inc();
    state.metrics().set_model(&swap.to.name, &swap.to.version);
    Ok(Json(json!({ "swapped": true, "from": swap.from, "to": swap.to })).into_response())
}

fn log_of(state: &AppState) -> Result<&QueryLog, ApiError> {
    state.query_log().ok_or_else(|| {
        ApiError::new(
            StatusCode::CONFLICT,
            "the labeling queue needs the query log, which is disabled (--no-query-log)",
        )
    })
}

/// Runs a query-log operation on a blocking thread.
pub(crate) async fn blocking<T: Send + 'static>(
    state: &AppState,
    f: impl FnOnce(&QueryLog) -> Result<T, ServerError> + Send + 'static,
) -> Result<T, ApiError> {
    log_of(state)?;
    let st = state.clone();
    let out = tokio::task::spawn_blocking(move || f(st.query_log().expect("checked above")))
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("query log task: {e}")))?;
    Ok(out?)
}

/// Query of `GET /admin/labeling/queue`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct QueueParams {
    /// Most items (default 100, at most 10,000).
    limit: Option<usize>,
    /// Labeled items too (default false).
    all: Option<bool>,
    /// `oldest` (default), `newest` or `frequent` (most often asked first).
    #[param(inline)]
    order: Option<QueueOrder>,
    /// Only items the model predicted as this label.
    predicted: Option<String>,
    /// Only items with at least this confidence (0 to 1).
    min_confidence: Option<f64>,
    /// Only items with at most this confidence (0 to 1).
    max_confidence: Option<f64>,
    /// Only items whose text holds this (at most 200 characters; ASCII letters in any case).
    q: Option<String>,
}

impl QueueParams {
    /// The store's query, the values checked.
    fn into_query(self) -> Result<QueueQuery, ApiError> {
        for (name, v) in [("min_confidence", self.min_confidence), ("max_confidence", self.max_confidence)] {
            if let Some(v) = v.filter(|v| !(0.0..=1.0).contains(v)) {
                return Err(ApiError::unprocessable(format!("{name}={v}: expected a number from 0 to 1")));
            }
        }
        let nonempty = |s: Option<String>| s.map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
        let search = nonempty(self.q);
        if search.as_ref().is_some_and(|s| s.chars().count() > 200) {
            return Err(ApiError::unprocessable("q: expected at most 200 characters"));
        }
        Ok(QueueQuery {
            limit: self.limit.unwrap_or(100).min(10_000),
            include_labeled: self.all.unwrap_or(false),
            order: self.order.unwrap_or_default(),
            predicted: nonempty(self.predicted),
            min_confidence: self.min_confidence,
            max_confidence: self.max_confidence,
            search,
        })
    }
}

/// Answer of `GET /admin/labeling/queue`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct QueueAnswer {
    /// The items, oldest first.
    items: Vec<QueueItem>,
}

/// Pending low-confidence queries, oldest first (`all=true`: labeled ones too), with the
/// model's best labels; filtered by predicted label, confidence range and text.
#[utoipa::path(get, path = "/admin/labeling/queue", tag = "admin", params(QueueParams),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "The queue", body = QueueAnswer),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
        (status = 409, description = "The query log is disabled", body = ErrorBody),
    ))]
pub(crate) async fn queue(
    State(state): State<AppState>,
    params: Result<Query<QueueParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(p) = params.map_err(|e| ApiError::unprocessable(e.body_text()))?;
    let query = p.into_query()?;
    let items = blocking(&state, move |log| log.queue_query(&query)).await?;
    Ok(Json(QueueAnswer { items }).into_response())
}

/// A label or a list of labels.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(untagged)]
pub(crate) enum OneOrMany {
    /// One label.
    One(String),
    /// Several labels.
    Many(Vec<String>),
}

/// Body of `POST /admin/labeling/{id}`: `label`, or `labels` for multi-label models; to change
/// an item someone already labeled, `replaces` names the labels it has now; `"labels": []` with
/// `replaces` returns it to the queue (undo).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct LabelRequest {
    /// The label.
    label: Option<String>,
    /// The labels (multi-label).
    labels: Option<Vec<String>>,
    /// The labels this replaces (a label or a list); needed when the item is already labeled.
    replaces: Option<OneOrMany>,
    /// Who labels (kept in the label history).
    by: Option<String>,
}

/// Labels a queued query. An item labeled already is only relabeled when `replaces` names its
/// labels (else 409 with `current`); the same labels again change nothing; no labels with
/// `replaces` return the item to the queue.
#[utoipa::path(post, path = "/admin/labeling/{id}", tag = "admin", request_body = LabelRequest,
    params(("id" = i64, Path, description = "Queue id")),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "`{id, labels, known_labels, changed}`", body = serde_json::Value),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
        (status = 404, description = "No such item", body = ErrorBody),
        (status = 409, description = "Labeled differently already: `{error, current}`",
            body = serde_json::Value),
        (status = 422, description = "A bad label", body = ErrorBody),
    ))]
pub(crate) async fn label(
    State(state): State<AppState>,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<LabelRequest>,
) -> Result<Response, ApiError> {
    let id: i64 =
        id.parse().map_err(|_| ApiError::unprocessable(format!("queue id '{id}' is not a number")))?;
    let labels = match (req.label, req.labels) {
        (Some(l), None) => vec![l],
        (None, Some(ls)) if !ls.is_empty() || req.replaces.is_some() => ls,
        (None, Some(_)) => {
            return Err(ApiError::unprocessable(
                "`labels` is empty; to return a labeled item to the queue, send \"labels\": [] with \
                    \"replaces\": its labels",
            ))
        }
        (Some(_), Some(_)) => {
            return Err(ApiError::unprocessable("give either `label` or `labels`, not both"))
        }
        (None, None) => return Err(ApiError::unprocessable("missing `label` (a string)")),
    };
    let labels = clean_labels(labels)?;
    let replaces = match req.replaces {
        None => None,
        Some(OneOrMany::One(l)) => Some(clean_labels(vec![l])?),
        Some(OneOrMany::Many(ls)) => Some(clean_labels(ls)?),
    };
    let by = req.by.map(|b| b.trim().to_string()).filter(|b| !b.is_empty());
    if let Some(b) = &by {
        if b.chars().count() > 200 || b.chars().any(char::is_control) {
            return Err(ApiError::unprocessable(
                "`by`: expected 1 to 200 characters without control characters",
            ));
        }
    }
    let known = state
        .slot()
        .current()
        .map(|m| matches!(&m.served, Served::Classifier(c) if labels.iter().all(|l| c.labels().contains(l))));
    let ls = labels.clone();
    let outcome =
        blocking(&state, move |log| log.set_labels(id, &ls, replaces.as_deref(), by.as_deref())).await?;
    let changed = match outcome {
        LabelOutcome::Labeled => true,
        LabelOutcome::Unchanged => false,
        LabelOutcome::NotFound => {
            return Err(ApiError::new(StatusCode::NOT_FOUND, format!("no labeling queue item {id}")))
        }
        LabelOutcome::Conflict { current } => {
            let error = match &current {
                Some(c) => format!(
                    "item {id} is labeled {c:?} already; send \"replaces\": {} to change it",
                    serde_json::to_string(c).unwrap_or_default()
                ),
                None => format!("item {id} is not labeled; leave out \"replaces\""),
            };
            return Ok(
                (StatusCode::CONFLICT, Json(json!({ "error": error, "current": current }))).into_response()
            );
        }
    };
    Ok(Json(json!({ "id": id, "labels": labels, "known_labels": known, "changed": changed })).into_response())
}

/// Labels trimmed and checked: 1 to 200 characters, no control characters.
fn clean_labels(labels: Vec<String>) -> Result<Vec<String>, ApiError> {
    let labels: Vec<String> = labels.into_iter().map(|l| l.trim().to_string()).collect();
    if let Some(bad) =
        labels.iter().find(|l| l.is_empty() || l.chars().count() > 200 || l.chars().any(char::is_control))
    {
        return Err(ApiError::unprocessable(format!(
            "label '{bad}': expected 1 to 200 characters without control characters"
        )));
    }
    Ok(labels)
}

/// Answer of `GET /admin/labeling/{id}/history`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct HistoryAnswer {
    /// The item.
    id: i64,
    /// Every change of its labels, oldest first.
    changes: Vec<LabelChange>,
}

/// Every change of a queue item's labels, oldest first.
#[utoipa::path(get, path = "/admin/labeling/{id}/history", tag = "admin",
    params(("id" = i64, Path, description = "Queue id")),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "The changes", body = HistoryAnswer),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
        (status = 404, description = "No such item", body = ErrorBody),
    ))]
pub(crate) async fn history(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id: i64 =
        id.parse().map_err(|_| ApiError::unprocessable(format!("queue id '{id}' is not a number")))?;
    let changes = blocking(&state, move |log| log.label_history(id))
        .await?
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("no labeling queue item {id}")))?;
    Ok(Json(HistoryAnswer { id, changes }).into_response())
}

/// Query of `GET /admin/labeling/export`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ExportParams {
    /// `jsonl` (the default and only format).
    format: Option<String>,
    /// `human` (the default): the labeled queue items; `teacher`: the labels the
    /// `--fallback-url` service gave (the latest of each text); `confident`: the model's own
    /// sure answers (pseudo-labels, at least `min_confidence`).
    source: Option<String>,
    /// `source=confident`: the least confidence (default 0.9).
    min_confidence: Option<f64>,
}

/// Labeled items as labeled JSONL, the format `intent train` reads (`source=teacher`: the
/// fallback service's labels).
#[utoipa::path(get, path = "/admin/labeling/export", tag = "admin", params(ExportParams),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "One JSON object per line", body = String,
            content_type = "application/x-ndjson"),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
        (status = 409, description = "The query log is disabled", body = ErrorBody),
    ))]
pub(crate) async fn export(
    State(state): State<AppState>,
    params: Result<Query<ExportParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(p) = params.map_err(|e| ApiError::unprocessable(e.body_text()))?;
    match p.format.as_deref().unwrap_or("jsonl") {
        "jsonl" => {}
        other => {
            return Err(ApiError::unprocessable(format!(
                "format '{other}' is not supported; use format=jsonl"
            )))
        }
    }
    let body = match p.source.as_deref().unwrap_or("human") {
        "human" => blocking(&state, |log| log.export_jsonl()).await?,
        "teacher" => blocking(&state, |log| log.export_teacher_jsonl()).await?,
        "confident" => {
            let min = p.min_confidence.unwrap_or(0.9);
            if !(0.0..=1.0).contains(&min) {
                return Err(ApiError::unprocessable(format!("min_confidence {min}: expected 0 to 1")));
            }
            blocking(&state, move |log| log.export_confident_jsonl(min)).await?
        }
        other => {
            return Err(ApiError::unprocessable(format!(
                "source '{other}': expected human, teacher or confident"
            )))
        }
    };
    Ok(([(header::CONTENT_TYPE, "application/x-ndjson")], body).into_response())
}
