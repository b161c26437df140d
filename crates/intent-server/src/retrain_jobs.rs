//! Retraining on demand: `POST /admin/retrain` starts the server's retrain job
//! (`--retrain-config`) in the background and answers with a job id at once;
//! `GET /admin/retrain/{id}` follows it (state, the stage it is at, the outcome). One job runs at
//! a time — a request while one runs gets 409 with its id — and the periodic job
//! (`--retrain-every`) takes the same turn. The server keeps answering while the job trains and
//! swaps the new version in when it is deployed.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use intent_lifecycle::retrain::{retrain, RetrainConfig, RunOptions, RunStatus};
use intent_models::folder::now_unix;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::api_error::{ApiError, ErrorBody};
use crate::server::AppState;

/// Finished jobs kept for `GET /admin/retrain/{id}`.
const KEPT: usize = 50;

/// Where a job stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum JobState {
    /// Training or validating.
    Running,
    /// A new version is current and serving.
    Deployed,
    /// The candidate failed the gate or regressed; the current version keeps serving.
    Rejected,
    /// No trigger fired (send `"force": true` to train anyway).
    Skipped,
    /// What would happen; nothing changed.
    DryRun,
    /// The run failed; the current version keeps serving.
    Failed,
}

/// A retrain job of this server.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RetrainJob {
    /// Job id.
    pub id: u64,
    /// Where it stands.
    pub state: JobState,
    /// Who started it: `request` or `schedule`.
    pub started_by: String,
    /// Run whatever the triggers say.
    pub force: bool,
    /// Say what would happen; change nothing.
    pub dry_run: bool,
    /// Start, Unix seconds.
    pub started_unix: u64,
    /// Seconds since the start (or its length, once finished).
    pub elapsed_s: f64,
    /// The last stage the job logged (`retrain.log`).
    pub progress: Option<String>,
    /// The history line of the run, once finished.
    #[schema(value_type = Option<Object>)]
    pub outcome: Option<serde_json::Value>,
    /// Why it failed.
    pub error: Option<String>,
    /// The reload after a deployment: `{swapped, from, to}` or the refusal.
    #[schema(value_type = Option<Object>)]
    pub reload: Option<serde_json::Value>,
    #[serde(skip)]
    started: Option<Instant>,
}

/// The jobs of a server (none without a retrain config).
pub(crate) struct RetrainJobs {
    config: Option<RetrainConfig>,
    jobs: Mutex<JobList>,
}

#[derive(Default)]
struct JobList {
    next_id: u64,
    running: Option<u64>,
    /// Newest last.
    jobs: VecDeque<RetrainJob>,
}

impl RetrainJobs {
    pub(crate) fn new(config: Option<RetrainConfig>) -> Self {
        RetrainJobs { config, jobs: Mutex::new(JobList { next_id: 1, ..Default::default() }) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, JobList> {
        self.jobs.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A job as it stands now, its elapsed time and stage brought up to date.
    fn get(&self, id: u64) -> Option<RetrainJob> {
        let mut job = self.lock().jobs.iter().find(|j| j.id == id)?.clone();
        if job.state == JobState::Running {
            job.elapsed_s = job.started.map_or(0.0, |s| s.elapsed().as_secs_f64());
            job.progress = self.config.as_ref().and_then(|c| last_stage(c, job.started_unix));
        }
        Some(job)
    }
}

/// The last message of `retrain.log` written at or after `since` (Unix seconds).
fn last_stage(cfg: &RetrainConfig, since: u64) -> Option<String> {
    let text = std::fs::read_to_string(cfg.state_dir.join("retrain.log")).ok()?;
    let line = text.lines().next_back()?;
    let mut parts = line.splitn(3, ' ');
    let t: u64 = parts.next()?.parse().ok()?;
    let _id = parts.next()?;
    (t >= since).then(|| parts.next().unwrap_or_default().to_string())
}

/// Why a job did not start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotStarted {
    /// The server has no retrain config.
    NoConfig,
    /// This job runs.
    Busy(u64),
}

/// The server's retrain config, if it has one.
pub fn config(state: &AppState) -> Option<RetrainConfig> {
    state.0.retrain.config.clone()
}

/// Whether a job runs now.
pub fn running(state: &AppState) -> Option<u64> {
    state.0.retrain.lock().running
}

/// Starts a retrain job (`by`: `request` or `schedule`) unless one runs; returns its id.
pub fn start(state: &AppState, by: &str, opts: RunOptions) -> Result<u64, NotStarted> {
    let jobs = &state.0.retrain;
    let Some(cfg) = jobs.config.clone() else { return Err(NotStarted::NoConfig) };
    let id = {
        let mut list = jobs.lock();
        if let Some(running) = list.running {
            return Err(NotStarted::Busy(running));
        }
        let id = list.next_id;
        list.next_id += 1;
        list.running = Some(id);
        list.jobs.push_back(RetrainJob {
            id,
            state: JobState::Running,
            started_by: by.to_string(),
            force: opts.force,
            dry_run: opts.dry_run,
            started_unix: now_unix(),
            elapsed_s: 0.0,
            progress: None,
            outcome: None,
            error: None,
            reload: None,
            started: Some(Instant::now()),
        });
        while list.jobs.len() > KEPT {
            list.jobs.pop_front();
        }
        id
    };
    let state = state.clone();
    let by = by.to_string();
    tokio::spawn(async move {
        tracing::info!("retrain job {id} started ({by})");
        let opts = RunOptions { notify: false, ..opts };
        let result = tokio::task::spawn_blocking(move || retrain(&cfg, opts)).await;
        let (job_state, outcome, error) = match result {
            Ok(Ok(line)) => {
                let s = match line.status {
                    RunStatus::Deployed => JobState::Deployed,
                    RunStatus::Rejected => JobState::Rejected,
                    RunStatus::Skipped => JobState::Skipped,
                    RunStatus::DryRun => JobState::DryRun,
                    RunStatus::Failed | RunStatus::Interrupted => JobState::Failed,
                };
                let error = (s == JobState::Failed).then(|| line.reason.clone());
                (s, serde_json::to_value(&line).ok(), error)
            }
            Ok(Err(e)) => (JobState::Failed, None, Some(e.to_string())),
            Err(e) => (JobState::Failed, None, Some(format!("the retrain task stopped: {e}"))),
        };
        let reload = if job_state == JobState::Deployed {
            let (code, body) = crate::admin::do_reload(&state, None).await;
            if !code.is_success() {
                tracing::warn!("retrain job {id}: deployed, but the reload was refused: {body}");
            }
            Some(body)
        } else {
            None
        };
        let outcome_name = serde_json::to_value(job_state).ok();
        let name = outcome_name.as_ref().and_then(|v| v.as_str()).unwrap_or("failed");
        state.metrics().retrains.with_label_values(&[name]).inc();
        tracing::info!(
            "retrain job {id}: {name}{}",
            error.as_deref().map(|e| format!(": {e}")).unwrap_or_default()
        );
        let jobs = &state.0.retrain;
        let mut list = jobs.lock();
        list.running = None;
        if let Some(job) = list.jobs.iter_mut().find(|j| j.id == id) {
            job.state = job_state;
            job.elapsed_s = job.started.map_or(0.0, |s| s.elapsed().as_secs_f64());
            job.progress = None;
            job.outcome = outcome;
            job.error = error;
            job.reload = reload;
        }
    });
    Ok(id)
}

/// Body of `POST /admin/retrain` (optional).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RetrainRequest {
    /// Train whatever the triggers say (default false).
    #[serde(default)]
    force: bool,
    /// Say what would happen; change nothing (default false).
    #[serde(default)]
    dry_run: bool,
}

/// Starts the server's retrain job (`--retrain-config`) in the background; follow it at
/// `GET /admin/retrain/{id}`. One at a time.
#[utoipa::path(post, path = "/admin/retrain", tag = "admin", request_body(content = Option<RetrainRequest>),
    security(("admin_token" = [])),
    responses(
        (status = 202, description = "Started: `{id, state, status_url}`", body = Object),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
        (status = 409, description = "A job runs already (`running`: its id), or the server has no \
            retrain config", body = Object),
        (status = 422, description = "A bad body", body = ErrorBody),
    ))]
pub(crate) async fn start_retrain(State(state): State<AppState>, body: Bytes) -> Result<Response, ApiError> {
    let req: RetrainRequest = if body.iter().all(u8::is_ascii_whitespace) {
        RetrainRequest::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            ApiError::unprocessable(format!(
                "body: {e}; expected {{\"force\": bool, \"dry_run\": bool}} or nothing"
            ))
        })?
    };
    match start(&state, "request", RunOptions { force: req.force, dry_run: req.dry_run, notify: false }) {
        Ok(id) => Ok((
            StatusCode::ACCEPTED,
            Json(serde_json::json!({
                "id": id, "state": JobState::Running, "status_url": format!("/admin/retrain/{id}")
            })),
        )
            .into_response()),
        Err(NotStarted::NoConfig) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "this server has no retrain job: start it with --retrain-config FILE (a retrain.toml for the \
                served NAME@ALIAS)",
        )),
        Err(NotStarted::Busy(running)) => Ok((
            StatusCode::CONFLICT,
            Json(serde_json::json!({
                "error": format!("retrain job {running} is running; one at a time"), "running": running
            })),
        )
            .into_response()),
    }
}

/// A retrain job: its state, the stage it is at, and the outcome once finished.
#[utoipa::path(get, path = "/admin/retrain/{id}", tag = "admin",
    params(("id" = u64, Path, description = "Job id")),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "The job", body = RetrainJob),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
        (status = 404, description = "No such job", body = ErrorBody),
    ))]
pub(crate) async fn retrain_job(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let missing = || ApiError::new(StatusCode::NOT_FOUND, format!("no retrain job '{id}'"));
    let n: u64 = id.parse().map_err(|_| missing())?;
    let job = state.0.retrain.get(n).ok_or_else(missing)?;
    Ok(Json(job).into_response())
}
