//! Admin routes behind the labeling console (`/ui/`): its counters, the served model's report
//! plots, and the registry of a model served as `NAME@ALIAS` (versions, promote, rollback).
//! Nothing here is open: every route takes the admin token, as the rest of `/admin/*`.

use std::path::PathBuf;

use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use intent_registry::{AliasMove, RegisteredModel, Registry};
use intent_serve::ModelSpec;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::admin::{do_reload, hide_root};
use crate::api_error::{ApiError, ErrorBody, JsonBody};
use crate::querylog::LabelingStats;
use crate::server::AppState;

/// Query of `GET /admin/labeling/stats`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct StatsParams {
    /// Count labels given since this time, Unix milliseconds (default: the last midnight, UTC;
    /// the console sends the browser's local midnight).
    since_ms: Option<i64>,
}

/// The labeling console's counters: items waiting, labeled since a time and in all, and the
/// share of the last hour's queries that fell back.
#[utoipa::path(get, path = "/admin/labeling/stats", tag = "admin", params(StatsParams),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "The counters", body = LabelingStats),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
        (status = 409, description = "The query log is disabled", body = ErrorBody),
    ))]
pub(crate) async fn stats(
    State(state): State<AppState>,
    params: Result<Query<StatsParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(p) = params.map_err(|e| ApiError::unprocessable(e.body_text()))?;
    let now = crate::querylog::now_ms();
    let since = p.since_ms.unwrap_or(now - now.rem_euclid(86_400_000));
    let stats = crate::admin::blocking(&state, move |log| log.labeling_stats(since)).await?;
    Ok(Json(stats).into_response())
}

/// Query of `GET /admin/querylog/quality`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct QualityParams {
    /// Model name as logged (default: the served model's).
    model: Option<String>,
    /// Model version as logged (default: the served model's).
    version: Option<String>,
    /// Queries per window (default 200, 1 to 100,000).
    window: Option<i64>,
}

/// The mean confidence and fallback rate of a model version's first and latest queries: its
/// quality when deployed and now (`intent retrain`'s drift trigger reads this).
#[utoipa::path(get, path = "/admin/querylog/quality", tag = "admin", params(QualityParams),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "The two windows", body = crate::querylog::Quality),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
        (status = 409, description = "The query log is disabled", body = ErrorBody),
        (status = 422, description = "A bad window, or no model named and none served", body = ErrorBody),
    ))]
pub(crate) async fn quality(
    State(state): State<AppState>,
    params: Result<Query<QualityParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(p) = params.map_err(|e| ApiError::unprocessable(e.body_text()))?;
    let window = p.window.unwrap_or(200);
    if !(1..=100_000).contains(&window) {
        return Err(ApiError::unprocessable(format!("`window` {window}: expected 1 to 100000")));
    }
    let served = state.slot().current().map(|m| (m.source.name.clone(), m.source.version.clone()));
    let (model, version) = match (p.model, p.version, served) {
        (Some(m), Some(v), _) => (m, v),
        (m, v, Some((sm, sv))) => (m.unwrap_or(sm), v.unwrap_or(sv)),
        _ => return Err(ApiError::unprocessable("no model is served: give `model` and `version`")),
    };
    let q = crate::admin::blocking(&state, move |log| log.quality(&model, &version, window)).await?;
    Ok(Json(q).into_response())
}

/// Files of the served model's `report/` folder that the console shows.
const REPORT_FILES: [&str; 2] = ["confusion_matrix.svg", "confidence_histogram.svg"];

/// Answer of `GET /admin/model/report`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ReportFiles {
    /// The plots the served model's `report/` folder holds.
    files: Vec<String>,
}

/// Which report plots the served model has (a model trained without test data has none).
#[utoipa::path(get, path = "/admin/model/report", tag = "admin", security(("admin_token" = [])),
    responses(
        (status = 200, description = "The plots", body = ReportFiles),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
    ))]
pub(crate) async fn report_files(State(state): State<AppState>) -> Json<ReportFiles> {
    let dir = state.slot().current().map(|m| m.source.path.join("report"));
    let files = REPORT_FILES
        .iter()
        .filter(|f| dir.as_ref().is_some_and(|d| d.join(f).is_file()))
        .map(|f| f.to_string())
        .collect();
    Json(ReportFiles { files })
}

/// A plot of the served model's evaluation report (`confusion_matrix.svg`,
/// `confidence_histogram.svg`), written by `intent train --test` and `intent pipeline`.
#[utoipa::path(get, path = "/admin/model/report/{file}", tag = "admin",
    params(("file" = String, Path, description = "`confusion_matrix.svg` or `confidence_histogram.svg`")),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "The SVG", body = String, content_type = "image/svg+xml"),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
        (status = 404, description = "No such plot for the served model", body = ErrorBody),
    ))]
pub(crate) async fn report_file(
    State(state): State<AppState>,
    Path(file): Path<String>,
) -> Result<Response, ApiError> {
    let missing =
        || ApiError::new(StatusCode::NOT_FOUND, format!("the served model has no report plot '{file}'"));
    // Only names from the list: the path never comes from the request.
    let name = REPORT_FILES.iter().find(|f| **f == file).ok_or_else(missing)?;
    let model = state.slot().current().ok_or_else(missing)?;
    let path = model.source.path.join("report").join(name);
    let svg = tokio::task::spawn_blocking(move || std::fs::read(path))
        .await
        .ok()
        .and_then(Result::ok)
        .ok_or_else(missing)?;
    Ok((
        [
            (header::CONTENT_TYPE, "image/svg+xml"),
            // An SVG opened on its own runs no script and loads nothing.
            (header::CONTENT_SECURITY_POLICY, "default-src 'none'; style-src 'unsafe-inline'"),
        ],
        svg,
    )
        .into_response())
}

/// One version of the served model, as the console lists it.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct VersionRow {
    /// The version number.
    version: u32,
    /// Registration time, Unix seconds.
    created_unix: u64,
    /// Model kind.
    kind: String,
    /// Accuracy (or micro-F1 for multi-label models) on its test data, when recorded.
    score: Option<f64>,
    /// Where it came from.
    note: Option<String>,
}

/// Answer of `GET /admin/registry`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct RegistryAnswer {
    /// The model's name.
    name: String,
    /// The alias the server follows.
    alias: String,
    /// Versions, newest first.
    versions: Vec<VersionRow>,
    /// Every alias and its version.
    aliases: std::collections::BTreeMap<String, u32>,
    /// The last 20 alias moves, newest first.
    #[schema(value_type = Vec<Object>)]
    history: Vec<AliasMove>,
}

/// The registry model behind the served `NAME@ALIAS`, its root and the alias.
fn served_registry(state: &AppState) -> Result<(RegisteredModel, PathBuf, String), ApiError> {
    let not_alias = || {
        ApiError::new(
            StatusCode::CONFLICT,
            "the server does not serve a registry alias (start it with --model ROOT/NAME@ALIAS)",
        )
    };
    let model = state.slot().current().ok_or_else(not_alias)?;
    let ModelSpec::Alias { model_dir, alias } = &model.spec else { return Err(not_alias()) };
    let root = model_dir.parent().map(PathBuf::from).unwrap_or_default();
    let name = model_dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let registered = Registry::new(&root).model(&name).map_err(|_| not_alias())?;
    Ok((registered, root, alias.clone()))
}

/// A registry error as a 422 that does not show where the registry is on the host.
fn registry_error(e: impl std::fmt::Display, root: &std::path::Path) -> ApiError {
    ApiError::unprocessable(hide_root(&e.to_string(), root))
}

/// The test score a version's `metrics.json` records: accuracy, or micro-F1 when multi-label.
fn score(metrics: &serde_json::Value) -> Option<f64> {
    let report = metrics.get("test").unwrap_or(metrics);
    report.get("micro_f1").and_then(|v| v.as_f64()).or_else(|| report.get("accuracy")?.as_f64())
}

/// The versions, aliases and alias history of the model the server serves as `NAME@ALIAS`.
#[utoipa::path(get, path = "/admin/registry", tag = "admin", security(("admin_token" = [])),
    responses(
        (status = 200, description = "The registry model", body = RegistryAnswer),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
        (status = 409, description = "The server serves no registry alias", body = ErrorBody),
    ))]
pub(crate) async fn registry(State(state): State<AppState>) -> Result<Response, ApiError> {
    let (model, root, alias) = served_registry(&state)?;
    let answer = tokio::task::spawn_blocking(move || {
        let err = |e| registry_error(e, &root);
        let mut versions: Vec<VersionRow> = model
            .versions()
            .map_err(err)?
            .into_iter()
            .map(|v| VersionRow {
                version: v.version,
                created_unix: v.created_unix,
                kind: v.kind.to_string(),
                score: score(&v.metrics),
                note: v.note,
            })
            .collect();
        versions.reverse();
        let mut history = model.history().map_err(err)?;
        history.reverse();
        history.truncate(20);
        Ok::<_, ApiError>(RegistryAnswer {
            name: model.name().to_string(),
            alias,
            versions,
            aliases: model.aliases().map_err(err)?,
            history,
        })
    })
    .await
    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("registry task: {e}")))??;
    Ok(Json(answer).into_response())
}

/// Body of `POST /admin/registry/promote`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PromoteRequest {
    /// The version to make `current`.
    version: u32,
}

/// What the console's registry buttons do.
enum Move {
    Promote(u32),
    Rollback,
}

/// Moves the registry's aliases (under its lock), then reloads the served alias.
async fn move_alias(state: AppState, action: Move) -> Result<Response, ApiError> {
    let (model, root, _) = served_registry(&state)?;
    tokio::task::spawn_blocking(move || {
        let lock = model.lock().map_err(|e| registry_error(e, &root))?;
        let done = match action {
            Move::Promote(n) => model.promote(&lock, n, "promote from the labeling console"),
            Move::Rollback => model.rollback(&lock, "rollback from the labeling console").map(|_| ()),
        };
        done.map_err(|e| registry_error(e, &root))
    })
    .await
    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("registry task: {e}")))??;
    let (status, body) = do_reload(&state, None).await;
    Ok((status, Json(body)).into_response())
}

/// Makes a version of the served model `current` (the old one `previous`) and reloads.
#[utoipa::path(post, path = "/admin/registry/promote", tag = "admin", request_body = PromoteRequest,
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "Promoted; the reload's `{swapped, from, to}`", body = Object),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
        (status = 409, description = "The server serves no registry alias", body = ErrorBody),
        (status = 422, description = "No such version, the registry is locked, or the reload was \
            refused", body = Object),
    ))]
pub(crate) async fn promote(
    State(state): State<AppState>,
    JsonBody(req): JsonBody<PromoteRequest>,
) -> Result<Response, ApiError> {
    move_alias(state, Move::Promote(req.version)).await
}

/// Makes the served model's `previous` version `current` again and reloads.
#[utoipa::path(post, path = "/admin/registry/rollback", tag = "admin", security(("admin_token" = [])),
    responses(
        (status = 200, description = "Rolled back; the reload's `{swapped, from, to}`", body = Object),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
        (status = 409, description = "The server serves no registry alias", body = ErrorBody),
        (status = 422, description = "No previous version, or the registry is locked", body = Object),
    ))]
pub(crate) async fn rollback(State(state): State<AppState>) -> Result<Response, ApiError> {
    move_alias(state, Move::Rollback).await
}
