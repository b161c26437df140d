//! Public routes: prediction, recommendation, model info, health, readiness, metrics; and the
//! JSON error type every route answers with.

use std::time::Instant;

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::json;

use intent_models::ncf::folder::UnknownUser;
use intent_serve::{LabelScore, ServeError};

use crate::querylog::{now_ms, QueryRow};
use crate::server::AppState;
use crate::{Served, ServerError};

/// An error answer: `{"error": message}` with a status code.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError { status, message: message.into() }
    }

    pub(crate) fn unprocessable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({ "error": self.message }))).into_response()
    }
}

impl From<ServeError> for ApiError {
    /// A text the model cannot take is the client's fault (422); anything else is the server's.
    fn from(e: ServeError) -> Self {
        match e {
            ServeError::Input(message) => ApiError::unprocessable(message),
            e => {
                tracing::error!("{e}");
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
            }
        }
    }
}

impl From<ServerError> for ApiError {
    fn from(e: ServerError) -> Self {
        match e {
            ServerError::Serve(e) => e.into(),
            e => {
                tracing::error!("{e}");
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
            }
        }
    }
}

/// `Json` whose rejections (bad JSON, wrong fields, body over the limit) are JSON errors with
/// the rejection's status: 400 for malformed JSON, 413 for a body over the limit, 415 without
/// a JSON content type, 422 for a well-formed body of the wrong shape.
pub(crate) struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(JsonBody(v)),
            Err(rejection) => Err(rejection_error(rejection)),
        }
    }
}

fn rejection_error(rejection: JsonRejection) -> ApiError {
    let status = rejection.status();
    let message = match status {
        StatusCode::PAYLOAD_TOO_LARGE => "request body too large".to_string(),
        _ => rejection.body_text(),
    };
    ApiError::new(status, message)
}

/// Body of `POST /v1/predict`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PredictRequest {
    text: Option<String>,
    texts: Option<Vec<String>>,
    top_k: Option<usize>,
}

/// One prediction in an answer.
#[derive(Debug, Serialize)]
pub(crate) struct PredictionOut {
    label: String,
    confidence: f32,
    fallback: bool,
    top_k: Vec<LabelScore>,
    #[serde(skip_serializing_if = "Option::is_none")]
    labels: Option<Vec<String>>,
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
    if texts.is_empty() {
        return Err(ApiError::unprocessable("`texts` is empty"));
    }
    if texts.len() > opts.max_texts {
        return Err(ApiError::unprocessable(format!(
            "{} texts in one request; at most {}",
            texts.len(),
            opts.max_texts
        )));
    }
    for (i, t) in texts.iter().enumerate() {
        let field = if single { "text".to_string() } else { format!("texts[{i}]") };
        if t.trim().is_empty() {
            return Err(ApiError::unprocessable(format!("`{field}` is empty")));
        }
        let n = t.chars().count();
        if n > opts.max_text_chars {
            return Err(ApiError::unprocessable(format!(
                "`{field}` has {n} characters; at most {}",
                opts.max_text_chars
            )));
        }
    }
    let top_k = req.top_k.unwrap_or(DEFAULT_TOP_K);
    if top_k == 0 {
        return Err(ApiError::unprocessable("`top_k` must be at least 1"));
    }
    Ok((texts, single, top_k))
}

fn no_model() -> ApiError {
    ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "no model is loaded yet")
}

/// `POST /v1/predict`: `{"text": …}` or `{"texts": […]}`, optional `top_k` (default 3).
pub(crate) async fn predict(
    State(state): State<AppState>,
    JsonBody(req): JsonBody<PredictRequest>,
) -> Result<Response, ApiError> {
    let start = Instant::now();
    let (texts, single, top_k) = validate(req, &state)?;
    let model = state.slot().current().ok_or_else(no_model)?;
    let Served::Classifier(classifier) = &model.served else {
        return Err(ApiError::unprocessable(format!(
            "model '{}' is a recommender (kind 'ncf'); use /v1/recommend",
            model.source.name
        )));
    };
    let top_k = top_k.min(classifier.labels().len());
    let predictions = model.predict(texts.clone(), top_k).await?;
    let latency = start.elapsed();
    let threshold = model.fallback_threshold;
    let metrics = state.metrics();
    let out: Vec<PredictionOut> = predictions
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
            }
        })
        .collect();
    if let Some(log) = state.query_log() {
        let ts_ms = now_ms();
        let latency_us = latency.as_micros() as u64;
        let rows = texts
            .into_iter()
            .zip(&out)
            .map(|(text, p)| QueryRow {
                ts_ms,
                text,
                label: p.label.clone(),
                confidence: p.confidence,
                fallback: p.fallback,
                top_k: p.top_k.clone(),
                model: model.source.name.clone(),
                model_version: model.source.version.clone(),
                latency_us,
            })
            .collect();
        log.record(rows).await;
    }
    let meta = json!({
        "model": model.source.name,
        "version": model.source.version,
        "latency_ms": latency.as_secs_f64() * 1e3,
    });
    let mut body = if single { serde_json::to_value(&out[0]) } else { Ok(json!({ "predictions": out })) }
        .unwrap_or_default();
    if let (Some(b), serde_json::Value::Object(m)) = (body.as_object_mut(), meta) {
        b.extend(m);
    }
    Ok(Json(body).into_response())
}

/// `POST /v1/recommend` body: `{"user": ID, "k": 10, "fallback": "error"|"popular"}` for the top
/// K unseen items of a user, or `{"pairs": [[USER, ITEM], …]}` for the scores of given pairs.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RecommendRequest {
    user: Option<serde_json::Value>,
    k: Option<usize>,
    fallback: Option<String>,
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

/// `POST /v1/recommend`: served by NCF recommender models; a classifier answers 422.
pub(crate) async fn recommend(
    State(state): State<AppState>,
    JsonBody(req): JsonBody<RecommendRequest>,
) -> Result<Response, ApiError> {
    let start = Instant::now();
    let model = state.slot().current().ok_or_else(no_model)?;
    let Served::Recommender(rec) = model.served.clone() else {
        let kind = model.info().kind;
        return Err(ApiError::unprocessable(format!(
            "model '{}' is a classifier (kind '{kind}'); /v1/recommend needs a recommender (NCF) model",
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

/// `GET /v1/models`: the model serving now and the one a rollback would return to.
pub(crate) async fn models(State(state): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    let model = state.slot().current().ok_or_else(no_model)?;
    Ok(Json(json!({
        "models": [model.info()],
        "previous": state.slot().previous().map(|m| m.info()),
        "swaps": state.slot().swaps(),
    })))
}

/// `GET /health`: the process answers.
pub(crate) async fn health() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

/// `GET /ready`: 200 once a model is loaded, 503 before.
pub(crate) async fn ready(State(state): State<AppState>) -> Response {
    match state.slot().current() {
        Some(m) => Json(json!({ "ready": true, "model": m.source.name, "version": m.source.version }))
            .into_response(),
        None => (StatusCode::SERVICE_UNAVAILABLE, Json(json!({ "ready": false }))).into_response(),
    }
}

/// `GET /metrics`: Prometheus text format.
pub(crate) async fn metrics(State(state): State<AppState>) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], state.metrics().render()).into_response()
}

/// Unknown routes: a JSON 404.
pub(crate) async fn not_found(req: Request) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, format!("no route {} {}", req.method(), req.uri().path()))
}
