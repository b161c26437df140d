//! Public routes: prediction, recommendation, model info, health, readiness, metrics.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use intent_models::ncf::folder::UnknownUser;
use intent_serve::{Classifier, LabelScore, ServeError};

use crate::api_error::{ApiError, ErrorBody, JsonBody};
use crate::querylog::{now_ms, QueryRow};
use crate::server::{AppState, ServerOptions};
use crate::slot::ModelInfo;
use crate::{LoadedModel, Served};

/// Body of `POST /v1/predict`: `text` or `texts`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PredictRequest {
    /// One text.
    text: Option<String>,
    /// Several texts (at most the server's `--max-texts`).
    texts: Option<Vec<String>>,
    /// Labels to list with their scores (default 3).
    #[schema(minimum = 1)]
    top_k: Option<usize>,
}

/// One prediction in an answer.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct PredictionOut {
    /// The predicted label (multi-label: the best one).
    pub label: String,
    /// Its probability.
    pub confidence: f32,
    /// Under the fallback threshold (queued for labeling).
    pub fallback: bool,
    /// The best labels with their probabilities, best first.
    pub top_k: Vec<LabelScore>,
    /// Multi-label models: every label over its threshold.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub labels: Option<Vec<String>>,
    /// `fallback` when the `--fallback-url` service gave `label` (the model's own answer is
    /// first in `top_k`); absent when the model answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

/// Which model answered, and how fast.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AnswerMeta {
    /// Model name.
    model: String,
    /// Model version (registry version, or the weights' SHA-256).
    version: String,
    /// Time in the server, milliseconds.
    latency_ms: f64,
}

/// Answer of `POST /v1/predict` for one `text`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct PredictOne {
    #[serde(flatten)]
    prediction: PredictionOut,
    #[serde(flatten)]
    meta: AnswerMeta,
}

/// Answer of `POST /v1/predict` for `texts`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct PredictMany {
    /// One prediction per text, in order.
    predictions: Vec<PredictionOut>,
    #[serde(flatten)]
    meta: AnswerMeta,
}

/// Answer of `POST /v1/predict`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub(crate) enum PredictAnswer {
    /// For `text`.
    One(PredictOne),
    /// For `texts`.
    Many(PredictMany),
}

const DEFAULT_TOP_K: usize = 3;

fn validate(req: PredictRequest, state: &AppState) -> Result<(Vec<String>, bool, usize), ApiError> {
    let opts = &state.0.options;
    let (texts, single) = match (req.text, req.texts) {
        (Some(t), None) => (vec![t], true),
        (None, Some(ts)) => (ts, false),
        (Some(_), Some(_)) => return Err(ApiError::unprocessable("give either `text` or `texts`, not both")),
        (None, None) => {
            return Err(ApiError::unprocessable("missing `text` (a string) or `texts` (a list of strings)"))
        }
    };
    let field = |i: usize| if single { "text".to_string() } else { format!("texts[{i}]") };
    check_texts(&texts, "texts", field, opts)?;
    let top_k = req.top_k.unwrap_or(DEFAULT_TOP_K);
    if top_k == 0 {
        return Err(ApiError::unprocessable("`top_k` must be at least 1"));
    }
    Ok((texts, single, top_k))
}

/// Checks a request's texts against the server's limits: at least one, at most `max_texts`,
/// none empty, longer than `max_text_chars` or holding control characters. `list` names the
/// list and `field(i)` text `i` in the message.
pub(crate) fn check_texts(
    texts: &[String],
    list: &str,
    field: impl Fn(usize) -> String,
    opts: &ServerOptions,
) -> Result<(), ApiError> {
    if texts.is_empty() {
        return Err(ApiError::unprocessable(format!("`{list}` is empty")));
    }
    if texts.len() > opts.max_texts {
        return Err(ApiError::unprocessable(format!(
            "{} texts in one request; at most {}",
            texts.len(),
            opts.max_texts
        )));
    }
    for (i, t) in texts.iter().enumerate() {
        if t.trim().is_empty() {
            return Err(ApiError::unprocessable(format!("`{}` is empty", field(i))));
        }
        // Control characters (NUL and the like) poison the query log and the labels pulled from
        // it; tabs and line breaks are text.
        if let Some(c) = t.chars().find(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r')) {
            return Err(ApiError::unprocessable(format!(
                "`{}` contains the control character U+{:04X}",
                field(i),
                c as u32
            )));
        }
        let n = t.chars().count();
        if n > opts.max_text_chars {
            return Err(ApiError::unprocessable(format!(
                "`{}` has {n} characters; at most {}",
                field(i),
                opts.max_text_chars
            )));
        }
    }
    Ok(())
}

/// The classifier `model` serves; a recommender or an embedding model answers 422 naming the
/// route that serves it.
pub(crate) fn classifier_of(model: &LoadedModel) -> Result<&Arc<Classifier>, ApiError> {
    let route = match &model.served {
        Served::Classifier(c) => return Ok(c),
        Served::Recommender(_) => "/v1/recommend",
        Served::Encoder(_) => "/embed",
    };
    Err(ApiError::unprocessable(format!(
        "model '{}' is not a classifier (kind '{}'); use {route}",
        model.source.name,
        model.served.kind()
    )))
}

pub(crate) fn no_model() -> ApiError {
    ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "no model is loaded yet")
}

/// Labels of `{"text": …}` or `{"texts": […]}`, with `top_k` (default 3) scored labels each.
#[utoipa::path(post, path = "/v1/predict", tag = "predict", request_body = PredictRequest,
    security((), ("api_key" = [])),
    responses(
        (status = 200, description = "The predictions", body = PredictAnswer),
        (status = 401, description = "Missing or wrong API key", body = ErrorBody),
        (status = 413, description = "Body over the size limit", body = ErrorBody),
        (status = 422, description = "A text the server or the model refuses", body = ErrorBody),
        (status = 429, description = "Too many requests at once", body = ErrorBody),
        (status = 503, description = "No model loaded yet", body = ErrorBody),
    ))]
pub(crate) async fn predict(
    State(state): State<AppState>,
    JsonBody(req): JsonBody<PredictRequest>,
) -> Result<Json<PredictAnswer>, ApiError> {
    let start = Instant::now();
    let (texts, single, top_k) = validate(req, &state)?;
    let model = state.slot().current().ok_or_else(no_model)?;
    let classifier = classifier_of(&model)?;
    let top_k = top_k.min(classifier.labels().len());
    let mut out = classify(&state, &model, texts, top_k, start).await?;
    let meta = AnswerMeta {
        model: model.source.name.clone(),
        version: model.source.version.clone(),
        latency_ms: start.elapsed().as_secs_f64() * 1e3,
    };
    Ok(Json(if single {
        PredictAnswer::One(PredictOne { prediction: out.remove(0), meta })
    } else {
        PredictAnswer::Many(PredictMany { predictions: out, meta })
    }))
}

/// Predicts `texts` with `model` (through its batcher when it has one), flags the predictions
/// under the fallback threshold, counts them in the metrics and queues them for the query log;
/// every classification route goes through here. `start` is when the request began (the
/// latency logged).
pub(crate) async fn classify(
    state: &AppState,
    model: &LoadedModel,
    texts: Vec<String>,
    top_k: usize,
    start: Instant,
) -> Result<Vec<PredictionOut>, ApiError> {
    let predictions = model.predict(texts.clone(), top_k).await?;
    let threshold = model.fallback_threshold;
    let metrics = state.metrics();
    let mut out: Vec<PredictionOut> = predictions
        .into_iter()
        .map(|p| {
            let fallback = p.confidence < threshold;
            metrics.predictions.with_label_values(&[p.label.as_str()]).inc();
            if fallback {
                metrics.low_confidence.inc();
            }
            PredictionOut {
                label: p.label,
                confidence: p.confidence,
                fallback,
                top_k: p.top_k,
                labels: p.labels,
                source: None,
            }
        })
        .collect();
    let model_labels: Vec<String> = out.iter().map(|p| p.label.clone()).collect();
    let teacher = ask_fallback(state, model, &texts, &mut out).await;
    let latency = start.elapsed();
    if let Some(log) = state.query_log() {
        let ts_ms = now_ms();
        let latency_us = latency.as_micros() as u64;
        let rows = texts
            .into_iter()
            .zip(&out)
            .zip(model_labels.into_iter().zip(teacher))
            .map(|((text, p), (label, teacher_label))| QueryRow {
                ts_ms,
                text,
                label,
                confidence: p.confidence,
                fallback: p.fallback,
                top_k: p.top_k.clone(),
                model: model.source.name.clone(),
                model_version: model.source.version.clone(),
                latency_us,
                teacher_label,
            })
            .collect();
        log.record(rows);
    }
    Ok(out)
}

/// `POST /v1/recommend` body: `{"user": ID, "k": 10, "fallback": "error"|"popular"}` for the top
/// K unseen items of a user, or `{"pairs": [[USER, ITEM], …]}` for the scores of given pairs.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RecommendRequest {
    /// A user id (string or number).
    #[schema(value_type = Option<String>)]
    user: Option<serde_json::Value>,
    /// How many items (default 10).
    k: Option<usize>,
    /// For an unknown user: `error` (default) or `popular` (the most frequent items).
    fallback: Option<String>,
    /// `[user, item]` pairs to score instead.
    #[schema(value_type = Option<Vec<Vec<String>>>)]
    pairs: Option<Vec<(serde_json::Value, serde_json::Value)>>,
}

/// An id given as a string or a number.
fn id_of(v: &serde_json::Value, field: &str) -> Result<String, ApiError> {
    match v {
        serde_json::Value::String(s) if !s.is_empty() => Ok(s.clone()),
        serde_json::Value::Number(n) => Ok(n.to_string()),
        other => Err(ApiError::unprocessable(format!(
            "`{field}` must be a non-empty string or a number, found {other}"
        ))),
    }
}

/// The top `k` unseen items of a user, or the scores of `[user, item]` pairs (NCF models).
#[utoipa::path(post, path = "/v1/recommend", tag = "predict", request_body = RecommendRequest,
    security((), ("api_key" = [])),
    responses(
        (status = 200, description = "`{user, k, known_user, recommendations}` or `{scores}`, with the \
            model, version and latency", body = serde_json::Value),
        (status = 401, description = "Missing or wrong API key", body = ErrorBody),
        (status = 422, description = "A bad request, or the model is not a recommender", body = ErrorBody),
        (status = 503, description = "No model loaded yet", body = ErrorBody),
    ))]
pub(crate) async fn recommend(
    State(state): State<AppState>,
    JsonBody(req): JsonBody<RecommendRequest>,
) -> Result<Response, ApiError> {
    let start = Instant::now();
    let model = state.slot().current().ok_or_else(no_model)?;
    let Served::Recommender(rec) = model.served.clone() else {
        let kind = model.info().kind;
        return Err(ApiError::unprocessable(format!(
            "model '{}' is not a recommender (kind '{kind}'); /v1/recommend needs an NCF model",
            model.source.name
        )));
    };
    let max = state.0.options.max_texts;
    let body = match (&req.user, &req.pairs) {
        (Some(u), None) => {
            let user = id_of(u, "user")?;
            let k = req.k.unwrap_or(10);
            if k == 0 || k > rec.ids.items.len() {
                return Err(ApiError::unprocessable(format!(
                    "`k` must be between 1 and {} (the number of items)",
                    rec.ids.items.len()
                )));
            }
            let unknown = match req.fallback.as_deref().unwrap_or("error") {
                "error" => UnknownUser::Error,
                "popular" => UnknownUser::Popular,
                other => {
                    return Err(ApiError::unprocessable(format!(
                        "`fallback` '{other}': expected 'error' or 'popular'"
                    )))
                }
            };
            let known = rec.ids.user(&user).is_some();
            let u = user.clone();
            let items = tokio::task::spawn_blocking(move || rec.recommend(&u, k, unknown))
                .await
                .map_err(|_| ServeError::WorkerGone)?
                .map_err(|e| ApiError::unprocessable(e.to_string()))?;
            json!({ "user": user, "k": k, "known_user": known, "recommendations": items })
        }
        (None, Some(pairs)) => {
            if pairs.is_empty() || pairs.len() > max {
                return Err(ApiError::unprocessable(format!(
                    "`pairs` must hold 1 to {max} [user, item] pairs"
                )));
            }
            let pairs: Vec<(String, String)> = pairs
                .iter()
                .enumerate()
                .map(|(i, (u, it))| {
                    Ok((id_of(u, &format!("pairs[{i}][0]"))?, id_of(it, &format!("pairs[{i}][1]"))?))
                })
                .collect::<Result<_, ApiError>>()?;
            let scores = tokio::task::spawn_blocking(move || rec.score_pairs(&pairs))
                .await
                .map_err(|_| ServeError::WorkerGone)?
                .map_err(|e| ApiError::unprocessable(e.to_string()))?;
            json!({ "scores": scores })
        }
        (Some(_), Some(_)) => return Err(ApiError::unprocessable("give either `user` or `pairs`, not both")),
        (None, None) => {
            return Err(ApiError::unprocessable("missing `user` (an id) or `pairs` (a list of [user, item])"))
        }
    };
    let mut body = body;
    body["model"] = json!(model.source.name);
    body["version"] = json!(model.source.version);
    body["latency_ms"] = json!(start.elapsed().as_secs_f64() * 1e3);
    Ok(Json(body).into_response())
}

/// Answer of `GET /v1/models`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ModelsAnswer {
    /// The model serving now.
    models: Vec<ModelInfo>,
    /// The model a rollback would return to.
    previous: Option<ModelInfo>,
    /// Swaps since the start.
    swaps: u64,
}

/// The model serving now and the one a rollback would return to.
#[utoipa::path(get, path = "/v1/models", tag = "models",
    responses(
        (status = 200, description = "The models", body = ModelsAnswer),
        (status = 503, description = "No model loaded yet", body = ErrorBody),
    ))]
pub(crate) async fn models(State(state): State<AppState>) -> Result<Json<ModelsAnswer>, ApiError> {
    let model = state.slot().current().ok_or_else(no_model)?;
    Ok(Json(ModelsAnswer {
        models: vec![model.info()],
        previous: state.slot().previous().map(|m| m.info()),
        swaps: state.slot().swaps(),
    }))
}

/// Answer of `GET /health`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Health {
    /// Always `ok`.
    status: &'static str,
}

/// The process answers.
#[utoipa::path(get, path = "/health", tag = "operations",
    responses((status = 200, description = "Alive", body = Health)))]
pub(crate) async fn health() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// Answer of `GET /ready`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Readiness {
    /// A model is loaded (and, with `--require-query-log`, the query log writes).
    ready: bool,
    /// Its name.
    #[serde(skip_serializing_if = "Option::is_none")]
    model: Option<String>,
    /// Its version.
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<String>,
    /// The query log's health, when there is one: `degraded` while it cannot write.
    #[serde(skip_serializing_if = "Option::is_none")]
    query_log: Option<crate::QueryLogStatus>,
}

/// 200 once a model is loaded, 503 before; a query log that cannot write shows as
/// `query_log.degraded` (503 only with `--require-query-log`).
#[utoipa::path(get, path = "/ready", tag = "operations",
    responses(
        (status = 200, description = "Serving", body = Readiness),
        (status = 503, description = "No model loaded yet, or the required query log cannot write",
            body = Readiness),
    ))]
pub(crate) async fn ready(State(state): State<AppState>) -> Response {
    let query_log = state.query_log().map(|l| l.status());
    let log_down = state.0.options.require_query_log && query_log.as_ref().is_some_and(|s| s.degraded);
    let model = state.slot().current();
    let ready = model.is_some() && !log_down;
    let body = Readiness {
        ready,
        model: model.as_ref().map(|m| m.source.name.clone()),
        version: model.as_ref().map(|m| m.source.version.clone()),
        query_log,
    };
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(body)).into_response()
}

/// Prometheus metrics (text format).
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((
        status = 200, description = "Prometheus text format", body = String, content_type = "text/plain"
    )))]
pub(crate) async fn metrics(State(state): State<AppState>) -> Response {
    if let Some(log) = state.query_log() {
        state.metrics().observe_query_log(&log.status());
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], state.metrics().render()).into_response()
}

/// Unknown routes: a JSON 404.
pub(crate) async fn not_found(req: Request) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, format!("no route {} {}", req.method(), req.uri().path()))
}

/// Asks the `--fallback-url` service, all at once, for the predictions under the threshold;
/// an answer within the budget replaces the label (`source: "fallback"`). Returns the teacher
/// label of each text (for the query log).
async fn ask_fallback(
    state: &AppState,
    model: &LoadedModel,
    texts: &[String],
    out: &mut [PredictionOut],
) -> Vec<Option<String>> {
    let mut teacher = vec![None; out.len()];
    let (Some(service), Ok(classifier)) = (state.0.options.fallback.clone(), classifier_of(model)) else {
        return teacher;
    };
    let labels: std::sync::Arc<Vec<String>> = std::sync::Arc::new(classifier.labels().to_vec());
    let mut asks = tokio::task::JoinSet::new();
    for (i, p) in out.iter().enumerate().filter(|(_, p)| p.fallback) {
        let (service, labels, text, top) =
            (service.clone(), labels.clone(), texts[i].clone(), p.top_k.clone());
        asks.spawn(async move { (i, service.ask(&text, &top, &labels).await) });
    }
    while let Some(joined) = asks.join_next().await {
        let Ok((i, answer)) = joined else {
            tracing::warn!("fallback task: {:?}", joined.err());
            continue;
        };
        state.metrics().fallback_requests.with_label_values(&[answer.outcome()]).inc();
        match answer {
            crate::fallback::FallbackAnswer::Label(label) => {
                out[i].label = label.clone();
                out[i].source = Some("fallback".into());
                teacher[i] = Some(label);
            }
            crate::fallback::FallbackAnswer::Timeout => {
                tracing::warn!("fallback service: no answer within {:?}", service.timeout)
            }
            crate::fallback::FallbackAnswer::Failed(e) => tracing::warn!("fallback service: {e}"),
        }
    }
    teacher
}
