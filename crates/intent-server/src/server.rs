//! The HTTP server: state, router, middleware (metrics, body and request timeouts, concurrency
//! bound) and the optional watcher of a registry alias; the connection loop is in
//! [`crate::listen`].
//!
//! Routes: `POST /v1/predict`, `POST /v1/recommend`, `GET /v1/models`, `GET /health`,
//! `GET /ready`, `GET /metrics`; compatible with text-embeddings-inference and Rasa:
//! `POST /predict`, `POST /embed`, `POST /model/parse` (prediction routes need the API key when
//! one is set); admin (bearer token): `POST /admin/reload`,
//! `POST /admin/rollback`, `GET /admin/labeling/queue`, `POST /admin/labeling/{id}`,
//! `GET /admin/labeling/export`, the labeling console's `GET /admin/labeling/stats`, the drift
//! trigger's `GET /admin/querylog/quality`,
//! `GET /admin/model/report/{file}`, `GET /admin/registry`, `POST /admin/registry/promote` and
//! `POST /admin/registry/rollback`, on-demand retraining `POST /admin/retrain` and
//! `GET /admin/retrain/{id}`; the console itself at `/ui/` (static files).

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use tokio::sync::Semaphore;
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::api;
use crate::api_error::ApiError;
use crate::metrics::Metrics;
use crate::slot::LoadOptions;
use crate::{admin, ModelSlot, QueryLog};
use crate::{auth, compat, console, openapi, retrain_jobs, ui};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Limits and settings of the server.
#[derive(Clone)]
pub struct ServerOptions {
    /// Largest request body in bytes (larger: 413).
    pub max_body_bytes: usize,
    /// Longest text in characters (longer: 422).
    pub max_text_chars: usize,
    /// Most texts in one request (more: 422).
    pub max_texts: usize,
    /// Requests to `/v1/*` being served at once at most (more: 429).
    pub max_concurrent: usize,
    /// Bearer token of the admin routes; `None` disables them.
    pub admin_token: Option<String>,
    /// Bearer token the prediction routes require; `None`: they are open.
    pub api_key: Option<String>,
    /// Origins allowed by CORS (`*` for any); empty: no CORS headers.
    pub cors_allow_origins: Vec<String>,
    /// How models are loaded (fallback threshold, batching).
    pub load: LoadOptions,
    /// A client must send a request's headers within this (and a keep-alive connection idle
    /// this long is closed).
    pub header_timeout: Duration,
    /// A request's body must arrive within this once its headers did (else 408).
    pub body_timeout: Duration,
    /// A whole request, body and answer, within this (else 408).
    pub request_timeout: Duration,
    /// Connections served at once at most (lowered to fit the open-file limit).
    pub max_connections: usize,
    /// On shutdown, requests in flight get this long; then connections are cut.
    pub shutdown_timeout: Duration,
    /// `/ready` answers 503 while the query log cannot write (else it only says so).
    pub require_query_log: bool,
    /// `POST /admin/reload {"model": …}` loads only folders under this one; `None`: only the
    /// served model can be reloaded.
    pub models_root: Option<std::path::PathBuf>,
    /// The retrain job of `POST /admin/retrain` and `--retrain-every`; `None`: no retraining.
    pub retrain_config: Option<intent_lifecycle::retrain::RetrainConfig>,
    /// Where answers under the fallback threshold are sent for a label (`--fallback-url`).
    pub fallback: Option<crate::fallback::FallbackService>,
}

impl Default for ServerOptions {
    /// 1 MiB bodies, texts up to 2000 characters, 256 texts per request, 512 concurrent
    /// requests, 4096 connections; headers within 10 s, bodies within 30 s, requests within
    /// 60 s, 30 s to drain at shutdown; admin disabled.
    fn default() -> Self {
        ServerOptions {
            max_body_bytes: 1 << 20,
            max_text_chars: 2000,
            max_texts: 256,
            max_concurrent: 512,
            admin_token: None,
            api_key: None,
            cors_allow_origins: Vec::new(),
            load: LoadOptions::default(),
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            request_timeout: Duration::from_secs(60),
            max_connections: 4096,
            shutdown_timeout: Duration::from_secs(30),
            require_query_log: false,
            models_root: None,
            retrain_config: None,
            fallback: None,
        }
    }
}

pub(crate) struct Inner {
    pub slot: ModelSlot,
    pub log: Option<QueryLog>,
    pub metrics: Metrics,
    pub options: ServerOptions,
    pub admin_digest: Option<[u8; 32]>,
    pub api_key_digest: Option<[u8; 32]>,
    pub(crate) permits: Arc<Semaphore>,
    pub(crate) retrain: crate::retrain_jobs::RetrainJobs,
}

/// Shared state of the handlers (cheap to clone).
#[derive(Clone)]
pub struct AppState(pub(crate) Arc<Inner>);

impl AppState {
    /// State for a server of `slot`, logging to `log` when given. Batch sizes feed the
    /// metrics.
    pub fn new(slot: ModelSlot, log: Option<QueryLog>, mut options: ServerOptions) -> Self {
        let metrics = Metrics::new();
        let batch_texts = metrics.batch_texts.clone();
        options.load.batch_observer = Some(Arc::new(move |texts, _tokens| batch_texts.observe(texts as f64)));
        if let Some(m) = slot.current() {
            metrics.set_model(&m.source.name, &m.source.version);
        }
        let admin_digest = options.admin_token.as_deref().map(crate::auth::digest);
        let api_key_digest = options.api_key.as_deref().map(crate::auth::digest);
        let permits = Arc::new(Semaphore::new(options.max_concurrent.max(1)));
        let retrain = crate::retrain_jobs::RetrainJobs::new(options.retrain_config.clone());
        AppState(Arc::new(Inner {
            slot,
            log,
            metrics,
            options,
            admin_digest,
            api_key_digest,
            permits,
            retrain,
        }))
    }

    /// Loads `spec` (blocking) and serves it: the first model, with the batch metrics hooked up.
    pub fn load(
        &self,
        spec: &intent_serve::ModelSpec,
    ) -> Result<crate::slot::ModelInfo, intent_serve::ServeError> {
        let model = crate::LoadedModel::load(spec, &self.0.options.load)?;
        let swap = self.0.slot.put(model);
        self.0.metrics.set_model(&swap.to.name, &swap.to.version);
        Ok(swap.to)
    }

    /// The model slot.
    pub fn slot(&self) -> &ModelSlot {
        &self.0.slot
    }

    /// The query log, when enabled.
    pub fn query_log(&self) -> Option<&QueryLog> {
        self.0.log.as_ref()
    }

    /// The metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.0.metrics
    }

    /// Load options for reloads (the batch observer included).
    pub fn load_options(&self) -> &LoadOptions {
        &self.0.options.load
    }
}

/// The prediction routes (API key, concurrency bound).
fn prediction_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(api::predict))
        .routes(routes!(api::recommend))
        .routes(routes!(compat::tei_predict))
        .routes(routes!(compat::tei_embed))
        .routes(routes!(compat::rasa_parse))
}

/// The admin routes (admin token).
fn admin_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(admin::reload))
        .routes(routes!(admin::rollback))
        .routes(routes!(admin::queue))
        .routes(routes!(admin::export))
        .routes(routes!(admin::label))
        .routes(routes!(admin::history))
        .routes(routes!(console::stats))
        .routes(routes!(console::quality))
        .routes(routes!(console::report_files))
        .routes(routes!(console::report_file))
        .routes(routes!(console::registry))
        .routes(routes!(console::promote))
        .routes(routes!(console::rollback))
        .routes(routes!(retrain_jobs::start_retrain))
        .routes(routes!(retrain_jobs::retrain_job))
}

/// The open routes: model info, health, readiness, metrics, the API document.
fn open_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(api::models))
        .routes(routes!(api::health))
        .routes(routes!(api::ready))
        .routes(routes!(api::metrics))
        .routes(routes!(openapi::openapi_json))
        .routes(routes!(openapi::docs))
        .routes(routes!(openapi::docs_js))
        .routes(routes!(openapi::docs_css))
        .routes(routes!(ui::console))
        .routes(routes!(ui::console_no_slash))
        .routes(routes!(ui::console_js))
        .routes(routes!(ui::console_css))
}

/// Every route, without middleware: what the OpenAPI document is made from. Routes are only
/// added through `routes!`, so none can be served without being documented.
pub(crate) fn api_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .merge(prediction_routes())
        .merge(admin_routes())
        .merge(open_routes())
}

/// The application: every route with its middleware.
pub fn router(state: AppState) -> Router {
    let predict = prediction_routes()
        .route_layer(middleware::from_fn_with_state(state.clone(), concurrency_bound))
        .route_layer(middleware::from_fn_with_state(state.clone(), auth::require_api_key));
    let admin =
        admin_routes().route_layer(middleware::from_fn_with_state(state.clone(), admin::require_token));
    let (app, _) = OpenApiRouter::new().merge(predict).merge(admin).merge(open_routes()).split_for_parts();
    let app = app
        .fallback(api::not_found)
        .layer(middleware::from_fn_with_state(state.clone(), bound_request))
        .layer(middleware::from_fn_with_state(state.clone(), track))
        .layer(DefaultBodyLimit::max(state.0.options.max_body_bytes));
    let app = match cors(&state.0.options.cors_allow_origins) {
        Some(layer) => app.layer(layer),
        None => app,
    };
    app.with_state(state)
}

/// What a spare connection beyond the connection cap serves: `/health` and `/ready`; anything
/// else 503.
pub(crate) fn probe_router(state: AppState) -> Router {
    let (app, _) =
        OpenApiRouter::new().routes(routes!(api::health)).routes(routes!(api::ready)).split_for_parts();
    app.fallback(|| async {
        let mut r = ApiError::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "the server is at its connection limit; retry later",
        )
        .into_response();
        r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        r
    })
    .with_state(state)
}

/// CORS for browsers on other origins: `*` allows any origin, else the listed ones (an origin
/// that is not a valid header value is left out, with a warning). `None` when none are given.
fn cors(origins: &[String]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| {
            match HeaderValue::from_str(o.trim_end_matches('/')) {
                Ok(v) => Some(v),
                Err(_) => {
                    tracing::warn!("--cors-allow-origin '{o}' is not a valid origin; left out");
                    None
                }
            }
        }))
    };
    Some(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([Method::GET, Method::POST])
            .allow_headers([header::CONTENT_TYPE, header::AUTHORIZATION]),
    )
}

/// Counts requests by route and status and times them.
async fn track(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let start = Instant::now();
    let response = next.run(req).await;
    let m = &state.0.metrics;
    m.latency.with_label_values(&[&route]).observe(start.elapsed().as_secs_f64());
    m.requests.with_label_values(&[route.as_str(), response.status().as_str()]).inc();
    response
}

/// Every request gets `request_timeout`, and its whole body is read first (at most
/// `max_body_bytes`, within `body_timeout`): a client sending slowly holds no concurrency
/// permit and no model time, only its socket. Timeouts answer 408 and close the connection.
async fn bound_request(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let o = &state.0.options;
    let work = async {
        let (parts, body) = req.into_parts();
        let declared =
            parts.headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        if declared.is_some_and(|n| n > o.max_body_bytes as u64) {
            return ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "request body too large").into_response();
        }
        let read = axum::body::to_bytes(body, o.max_body_bytes);
        let bytes = match tokio::time::timeout(o.body_timeout, read).await {
            Err(_) => {
                return timed_out(
                    &state,
                    format!("the request body did not arrive within {:?}", o.body_timeout),
                )
            }
            Ok(Err(e)) => return body_error(e),
            Ok(Ok(b)) => b,
        };
        next.run(Request::from_parts(parts, Body::from(bytes))).await
    };
    match tokio::time::timeout(o.request_timeout, work).await {
        Ok(response) => response,
        Err(_) => timed_out(&state, format!("the request took longer than {:?}", o.request_timeout)),
    }
}

/// 408 with `Connection: close`, counted.
fn timed_out(state: &AppState, message: String) -> Response {
    state.metrics().timeouts.inc();
    let mut r = ApiError::new(StatusCode::REQUEST_TIMEOUT, message).into_response();
    r.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    r
}

/// 413 for a body over the limit, 400 for one that broke off.
fn body_error(e: axum::Error) -> Response {
    let inner = e.into_inner();
    if inner.downcast_ref::<http_body_util::LengthLimitError>().is_some() {
        return ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "request body too large").into_response();
    }
    ApiError::new(StatusCode::BAD_REQUEST, format!("reading the request body: {inner}")).into_response()
}

/// Refuses `/v1/*` requests beyond `max_concurrent` with 429.
async fn concurrency_bound(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let Ok(_permit) = state.0.permits.clone().try_acquire_owned() else {
        state.0.metrics.rejected.inc();
        let mut r = ApiError::new(
            axum::http::StatusCode::TOO_MANY_REQUESTS,
            format!("more than {} requests at once; retry later", state.0.options.max_concurrent),
        )
        .into_response();
        r.headers_mut().insert(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from_static("1"));
        return r;
    };
    next.run(req).await
}

pub use crate::listen::serve;

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::warn!("cannot listen for Ctrl-C: {e}");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!("cannot listen for SIGTERM: {e}");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => tracing::info!("Ctrl-C: shutting down"),
        _ = term => tracing::info!("SIGTERM: shutting down"),
    }
}

/// Every `interval`, re-resolves the served spec when it is a registry alias and reloads when
/// the alias names another version.
pub fn spawn_watcher(state: AppState, interval: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        tick.tick().await;
        loop {
            tick.tick().await;
            let Some(current) = state.slot().current() else { continue };
            // Only an alias can move; hashing a folder's weights every tick would be waste.
            if !matches!(current.spec, intent_serve::ModelSpec::Alias { .. }) {
                continue;
            }
            let spec = current.spec.clone();
            let resolved = match tokio::task::spawn_blocking(move || spec.resolve()).await {
                Ok(Ok(r)) => r,
                Ok(Err(e)) => {
                    tracing::warn!("watch: {e}");
                    continue;
                }
                Err(_) => continue,
            };
            if resolved.path != current.source.path || resolved.version != current.source.version {
                tracing::info!(
                    "watch: {} now names version {}; reloading",
                    current.spec.display(),
                    resolved.version
                );
                admin::do_reload(&state, None).await;
            }
        }
    })
}
