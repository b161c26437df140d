//! The routes of the servers our users come from, beside `/v1/*`, answering as those servers
//! do so that their clients work unchanged:
//!
//! - text-embeddings-inference: `POST /predict` (`{"inputs": "text"}` → `[{"score", "label"}]`
//!   over every label, best first; `{"inputs": [["a"], ["b"]]}` or `["a", "b"]` → one list per
//!   text; `raw_scores` skips the softmax/sigmoid; `truncate` cuts texts over the length limit
//!   instead of refusing them) and `POST /embed` (`{"inputs": "text" | […], "normalize": true}` →
//!   one vector per text). Errors are TEI's `{"error", "error_type"}` with TEI's status codes.
//!   Sentence pairs (cross-encoder input) are refused: an intent classifier reads one text.
//! - Rasa: `POST /model/parse` (`{"text": …}` → `text`, `intent {name, confidence}`,
//!   `intent_ranking` (10 best), `entities` (none)). A prediction under the fallback threshold
//!   is answered as Rasa's `FallbackClassifier` does: intent `nlu_fallback` with the threshold
//!   as its confidence, first in the ranking.

use std::time::Instant;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::api::{check_texts, classifier_of, classify, no_model};
use crate::api_error::{ApiError, ErrorBody, JsonBody};
use crate::server::AppState;

/// How many intents Rasa's `intent_ranking` lists (DIETClassifier's `ranking_length`).
const RASA_RANKING_LENGTH: usize = 10;
/// Rasa's intent name for predictions under the fallback threshold.
const RASA_FALLBACK_INTENT: &str = "nlu_fallback";

/// A TEI error answer: `{"error": …, "error_type": …}`, with TEI's status for the type.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct TeiError {
    /// What was wrong.
    error: String,
    /// `validation` (413), `tokenizer` (422), `empty` (400), `overloaded` (429), `unhealthy`
    /// (503) or `backend` (424).
    #[schema(value_type = String)]
    error_type: &'static str,
}

impl TeiError {
    fn status(&self) -> StatusCode {
        match self.error_type {
            "validation" => StatusCode::PAYLOAD_TOO_LARGE,
            "tokenizer" => StatusCode::UNPROCESSABLE_ENTITY,
            "empty" => StatusCode::BAD_REQUEST,
            "overloaded" => StatusCode::TOO_MANY_REQUESTS,
            "unhealthy" => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::FAILED_DEPENDENCY,
        }
    }

    fn validation(error: impl Into<String>) -> Self {
        TeiError { error: error.into(), error_type: "validation" }
    }
}

impl IntoResponse for TeiError {
    fn into_response(self) -> Response {
        (self.status(), Json(self)).into_response()
    }
}

impl From<ApiError> for TeiError {
    /// Our statuses in TEI's terms: a refused input is a validation error, an input the
    /// tokenizer rejects a tokenizer error, no model yet unhealthy, anything else the backend.
    fn from(e: ApiError) -> Self {
        let error_type = match e.status() {
            StatusCode::UNPROCESSABLE_ENTITY if e.is_input() => "tokenizer",
            StatusCode::UNPROCESSABLE_ENTITY | StatusCode::PAYLOAD_TOO_LARGE => "validation",
            StatusCode::BAD_REQUEST => "empty",
            StatusCode::TOO_MANY_REQUESTS => "overloaded",
            StatusCode::SERVICE_UNAVAILABLE => "unhealthy",
            _ => "backend",
        };
        TeiError { error: e.message().to_string(), error_type }
    }
}

/// One input of TEI's batch: a text, or a sequence (`["text"]`; two texts would be a pair).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(untagged)]
pub(crate) enum TeiSequence {
    /// A text.
    Text(String),
    /// A one-text sequence.
    Sequence(Vec<String>),
}

/// `inputs` of `POST /predict` and `POST /embed`: a text, or a list of them.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(untagged)]
pub(crate) enum TeiInputs {
    /// One text: the answer is for it alone.
    Single(String),
    /// Several: the answer is a list, one entry per input.
    Batch(Vec<TeiSequence>),
}

impl TeiInputs {
    /// The texts, and whether the answer is for one input (not a list).
    fn texts(self) -> Result<(Vec<String>, bool), TeiError> {
        match self {
            TeiInputs::Single(t) => Ok((vec![t], true)),
            TeiInputs::Batch(items) => items
                .into_iter()
                .enumerate()
                .map(|(i, s)| match s {
                    TeiSequence::Text(t) => Ok(t),
                    TeiSequence::Sequence(mut v) if v.len() == 1 => Ok(v.remove(0)),
                    TeiSequence::Sequence(v) => Err(TeiError::validation(format!(
                        "`inputs[{i}]` has {} texts: an intent classifier reads one text, not sentence pairs",
                        v.len()
                    ))),
                })
                .collect::<Result<_, _>>()
                .map(|texts| (texts, false)),
        }
    }
}

/// Which end of a text `truncate` cuts.
#[derive(Debug, Clone, Copy, Default, Deserialize, ToSchema)]
pub(crate) enum TruncationDirection {
    /// Cut the end (keep the start).
    #[default]
    #[serde(alias = "right", alias = "RIGHT")]
    Right,
    /// Cut the start (keep the end).
    #[serde(alias = "left", alias = "LEFT")]
    Left,
}

/// Texts checked against the server's limits; with `truncate`, texts over the length limit are
/// cut (from `direction`) instead of refused.
fn checked_texts(
    state: &AppState,
    mut texts: Vec<String>,
    truncate: bool,
    direction: TruncationDirection,
) -> Result<Vec<String>, TeiError> {
    let opts = &state.0.options;
    if truncate {
        for t in &mut texts {
            let n = t.chars().count();
            if n > opts.max_text_chars {
                *t = match direction {
                    TruncationDirection::Right => t.chars().take(opts.max_text_chars).collect(),
                    TruncationDirection::Left => t.chars().skip(n - opts.max_text_chars).collect(),
                };
            }
        }
    }
    if texts.is_empty() {
        return Err(TeiError { error: "`inputs` is empty".into(), error_type: "empty" });
    }
    check_texts(&texts, "inputs", |i| format!("inputs[{i}]"), opts)?;
    Ok(texts)
}

/// Body of TEI's `POST /predict`.
#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct TeiPredictRequest {
    inputs: TeiInputs,
    /// The values before the softmax or sigmoid (logits, SVM decision values, cosine
    /// similarities); such requests are not logged.
    #[serde(default)]
    raw_scores: bool,
    /// Cut texts over the length limit instead of refusing them (default false).
    #[serde(default)]
    truncate: Option<bool>,
    /// Which end `truncate` cuts (`Right` by default).
    #[serde(default)]
    truncation_direction: TruncationDirection,
}

/// A label with its score, as TEI answers.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct TeiScore {
    /// Probability (or raw score).
    score: f32,
    /// The label.
    label: String,
}

/// text-embeddings-inference's `POST /predict`: every label with its score, best first (one
/// list per input for a batch).
#[utoipa::path(post, path = "/predict", tag = "compatible", request_body = TeiPredictRequest,
    security((), ("api_key" = [])),
    responses(
        (status = 200, description = "`[{score, label}]` for one text, `[[{score, label}]]` for a batch",
            body = Vec<TeiScore>),
        (status = 400, description = "No input", body = TeiError),
        (status = 401, description = "Missing or wrong API key", body = ErrorBody),
        (status = 413, description = "An input over the limits", body = TeiError),
        (status = 422, description = "A text the tokenizer rejects", body = TeiError),
        (status = 503, description = "No model loaded yet", body = TeiError),
    ))]
pub(crate) async fn tei_predict(
    State(state): State<AppState>,
    JsonBody(req): JsonBody<TeiPredictRequest>,
) -> Result<Response, TeiError> {
    let start = Instant::now();
    let (texts, single) = req.inputs.texts()?;
    let texts = checked_texts(&state, texts, req.truncate.unwrap_or(false), req.truncation_direction)?;
    let model = state.slot().current().ok_or_else(no_model)?;
    let classifier = classifier_of(&model)?.clone();
    let mut answers: Vec<Vec<TeiScore>> = if req.raw_scores {
        let labels = classifier.labels().to_vec();
        let rows = tokio::task::spawn_blocking(move || {
            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            classifier.predictor().raw_scores(&refs)
        })
        .await
        .map_err(|_| ApiError::from(intent_serve::ServeError::WorkerGone))?
        .map_err(ApiError::from)?;
        rows.into_iter()
            .map(|row| {
                let mut s: Vec<TeiScore> = row
                    .into_iter()
                    .zip(&labels)
                    .map(|(score, l)| TeiScore { score, label: l.clone() })
                    .collect();
                s.sort_by(|a, b| b.score.total_cmp(&a.score));
                s
            })
            .collect()
    } else {
        let all = classifier.labels().len();
        classify(&state, &model, texts, all, start)
            .await?
            .into_iter()
            .map(|p| p.top_k.into_iter().map(|s| TeiScore { score: s.score, label: s.label }).collect())
            .collect()
    };
    if single {
        return Ok(Json(answers.remove(0)).into_response());
    }
    Ok(Json(answers).into_response())
}

fn default_true() -> bool {
    true
}

/// Body of TEI's `POST /embed`.
#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct TeiEmbedRequest {
    inputs: TeiInputs,
    /// L2-normalise the vectors (default true).
    #[serde(default = "default_true")]
    normalize: bool,
    /// Cut texts over the length limit instead of refusing them (default false).
    #[serde(default)]
    truncate: Option<bool>,
    /// Which end `truncate` cuts.
    #[serde(default)]
    truncation_direction: TruncationDirection,
    /// Not supported (these models have no prompts).
    #[serde(default)]
    prompt_name: Option<String>,
    /// Not supported (no Matryoshka dimensions).
    #[serde(default)]
    dimensions: Option<usize>,
}

/// text-embeddings-inference's `POST /embed`: one vector per input (a list even for one text),
/// L2-normalised unless `normalize` is false. Served by sentence-embedding folders and by the
/// encoder of zero-shot and BERT classifiers.
#[utoipa::path(post, path = "/embed", tag = "compatible", request_body = TeiEmbedRequest,
    security((), ("api_key" = [])),
    responses(
        (status = 200, description = "One vector per input", body = Vec<Vec<f32>>),
        (status = 401, description = "Missing or wrong API key", body = ErrorBody),
        (status = 413, description = "An input over the limits, or a model without an encoder",
            body = TeiError),
        (status = 422, description = "A text the tokenizer rejects", body = TeiError),
    ))]
pub(crate) async fn tei_embed(
    State(state): State<AppState>,
    JsonBody(req): JsonBody<TeiEmbedRequest>,
) -> Result<Response, TeiError> {
    if let Some(p) = req.prompt_name {
        return Err(TeiError::validation(format!("prompt '{p}': this model has no prompts")));
    }
    if let Some(d) = req.dimensions {
        return Err(TeiError::validation(format!(
            "`dimensions` {d}: this model does not support Matryoshka dimensions"
        )));
    }
    let (texts, _) = req.inputs.texts()?;
    let texts = checked_texts(&state, texts, req.truncate.unwrap_or(false), req.truncation_direction)?;
    let model = state.slot().current().ok_or_else(no_model)?;
    let served = model.served.clone();
    let normalize = req.normalize;
    let vectors = tokio::task::spawn_blocking(move || {
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        served.embed(&refs, normalize)
    })
    .await
    .map_err(|_| ApiError::from(intent_serve::ServeError::WorkerGone))?;
    match vectors {
        Some(v) => Ok(Json(v.map_err(ApiError::from)?).into_response()),
        None => Err(TeiError::validation(format!(
            "model '{}' (kind '{}') has no sentence encoder; /embed needs an embedding, zero-shot or \
             BERT model",
            model.source.name,
            model.served.kind()
        ))),
    }
}

/// Body of Rasa's `POST /model/parse`.
#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct RasaParseRequest {
    /// The message.
    text: String,
    /// Echoed in the answer.
    #[serde(default)]
    message_id: Option<String>,
}

/// An intent with its confidence, as Rasa answers (`name` is null for an empty text).
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct RasaIntent {
    /// The intent (`nlu_fallback` under the fallback threshold).
    name: Option<String>,
    /// Its confidence.
    confidence: f32,
}

/// Rasa's parse result.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct RasaParse {
    /// The message.
    text: String,
    /// The intent.
    intent: RasaIntent,
    /// Always empty (no entity extraction).
    #[schema(value_type = Vec<Object>)]
    entities: Vec<serde_json::Value>,
    /// The 10 best intents.
    intent_ranking: Vec<RasaIntent>,
    /// The request's `message_id`.
    #[serde(skip_serializing_if = "Option::is_none")]
    message_id: Option<String>,
}

/// Rasa's `POST /model/parse`: the intent of a message, with the ranking.
#[utoipa::path(post, path = "/model/parse", tag = "compatible", request_body = RasaParseRequest,
    params(("token" = Option<String>, Query, description = "The API key, as Rasa's clients send it")),
    security((), ("api_key" = [])),
    responses(
        (status = 200, description = "Rasa's parse result", body = RasaParse),
        (status = 401, description = "Missing or wrong API key", body = ErrorBody),
        (status = 422, description = "A text the server or the model refuses", body = ErrorBody),
    ))]
pub(crate) async fn rasa_parse(
    State(state): State<AppState>,
    JsonBody(req): JsonBody<RasaParseRequest>,
) -> Result<Json<RasaParse>, ApiError> {
    let start = Instant::now();
    let empty = |text: String, message_id| RasaParse {
        text,
        intent: RasaIntent { name: None, confidence: 0.0 },
        entities: Vec::new(),
        intent_ranking: Vec::new(),
        message_id,
    };
    // Rasa answers an empty message with no intent rather than an error.
    if req.text.trim().is_empty() {
        return Ok(Json(empty(req.text, req.message_id)));
    }
    check_texts(std::slice::from_ref(&req.text), "text", |_| "text".into(), &state.0.options)?;
    let model = state.slot().current().ok_or_else(no_model)?;
    let top = classifier_of(&model)?.labels().len().min(RASA_RANKING_LENGTH);
    let p = classify(&state, &model, vec![req.text.clone()], top, start).await?.remove(0);
    let mut intent_ranking: Vec<RasaIntent> =
        p.top_k.into_iter().map(|s| RasaIntent { name: Some(s.label), confidence: s.score }).collect();
    let intent = if p.source.is_some() {
        // The `--fallback-url` service labeled it: its label, with the model's score for it.
        let score =
            intent_ranking.iter().find(|r| r.name.as_deref() == Some(p.label.as_str())).map(|r| r.confidence);
        RasaIntent { name: Some(p.label), confidence: score.unwrap_or(0.0) }
    } else if p.fallback {
        let threshold = model.fallback_threshold;
        intent_ranking
            .insert(0, RasaIntent { name: Some(RASA_FALLBACK_INTENT.into()), confidence: threshold });
        intent_ranking.truncate(RASA_RANKING_LENGTH);
        RasaIntent { name: Some(RASA_FALLBACK_INTENT.into()), confidence: threshold }
    } else {
        RasaIntent { name: Some(p.label), confidence: p.confidence }
    };
    Ok(Json(RasaParse {
        text: req.text,
        intent,
        entities: Vec::new(),
        intent_ranking,
        message_id: req.message_id,
    }))
}
