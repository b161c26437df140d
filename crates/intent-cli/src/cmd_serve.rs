//! `intent serve`: the HTTP inference server.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Args;
use intent_lifecycle::retrain::RetrainConfig;
use intent_serve::BatchConfig;
use intent_serve::ModelSpec;
use intent_server::background::{check_served_spec, spawn_retrainer};
use intent_server::server::{self, AppState, ServerOptions};
use intent_server::slot::LoadOptions;
use intent_server::{ModelSlot, QueryLog, QueryLogOptions};

/// Serve a model over HTTP: prediction, model info, health, Prometheus metrics; admin routes
/// for hot-swap, rollback and the labeling queue (bearer token).
#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Model folder, or a registry model through an alias: `models/NAME@current`.
    #[arg(long, env = "INTENT_MODEL")]
    pub model: String,
    /// Address to listen on.
    #[arg(long, env = "INTENT_ADDR", default_value = "127.0.0.1:8080")]
    pub addr: String,
    /// Where the query log and labeling queue live: an SQLite file (created when missing), or
    /// a PostgreSQL database `postgres://USER[:PASSWORD]@HOST[:PORT]/DB` that several replicas
    /// share (tables created or migrated at start).
    #[arg(long, env = "INTENT_QUERY_LOG", default_value = "intent-queries.sqlite")]
    pub query_log: String,
    /// Do not log queries (the labeling routes are then unavailable).
    #[arg(long, env = "INTENT_NO_QUERY_LOG")]
    pub no_query_log: bool,
    /// Store texts as SHA-256 hashes only (nothing then enters the labeling queue).
    #[arg(long, env = "INTENT_REDACT")]
    pub redact: bool,
    /// File holding the admin bearer token (else the INTENT_ADMIN_TOKEN environment variable;
    /// neither: admin routes are disabled).
    #[arg(long, env = "INTENT_ADMIN_TOKEN_FILE")]
    pub admin_token_file: Option<PathBuf>,
    /// Predictions less confident than this are flagged `fallback` and queued for labeling
    /// (models with a tuned out-of-scope threshold use theirs).
    #[arg(long, env = "INTENT_FALLBACK_THRESHOLD", default_value_t = 0.3)]
    pub fallback_threshold: f32,
    /// Send predictions under the fallback threshold to this service for a label (`POST` with
    /// `{"text", "top_k", "labels"}`, answer `{"label"}`): its label is the answer
    /// (`source: "fallback"`) and is logged as a teacher label for retraining.
    #[arg(long, env = "INTENT_FALLBACK_URL")]
    pub fallback_url: Option<String>,
    /// How long a request waits for the fallback service; then the model's own answer.
    #[arg(long, env = "INTENT_FALLBACK_TIMEOUT", default_value = "2s", value_parser = parse_timeout)]
    pub fallback_timeout: Duration,
    /// Largest request body in bytes (413 beyond).
    #[arg(long, env = "INTENT_MAX_BODY_BYTES", default_value_t = 1 << 20)]
    pub max_body_bytes: usize,
    /// Longest text in characters (422 beyond).
    #[arg(long, env = "INTENT_MAX_TEXT_CHARS", default_value_t = 2000)]
    pub max_text_chars: usize,
    /// Most texts per request (422 beyond).
    #[arg(long, env = "INTENT_MAX_TEXTS", default_value_t = 256)]
    pub max_texts: usize,
    /// Prediction requests served at once at most (429 beyond).
    #[arg(long, env = "INTENT_MAX_CONCURRENT", default_value_t = 512)]
    pub max_concurrent: usize,
    /// Token budget of a batch for transformer models.
    #[arg(long, env = "INTENT_MAX_BATCH_TOKENS", default_value_t = 16384)]
    pub max_batch_tokens: usize,
    /// Most texts in a batch for transformer models.
    #[arg(long, env = "INTENT_MAX_BATCH_TEXTS", default_value_t = 256)]
    pub max_batch_texts: usize,
    /// Check a registry alias (`NAME@ALIAS`) every this many seconds and reload when it moved.
    #[arg(long, env = "INTENT_WATCH")]
    pub watch: Option<u64>,
    /// Run the retrain job of `--retrain-config` in the server this often (`30d`, `12h`, `90m`):
    /// its triggers decide, training runs off the request path, and a deployed version is
    /// hot-swapped in. The served model must be the config's registry model `ROOT/NAME@current`.
    #[arg(long, env = "INTENT_RETRAIN_EVERY", value_parser = parse_every)]
    pub retrain_every: Option<Duration>,
    /// The retrain job's configuration for `--retrain-every` and `POST /admin/retrain` (used
    /// when the file exists and names the served `ROOT/NAME@ALIAS`).
    #[arg(long, env = "INTENT_RETRAIN_CONFIG", default_value = "retrain.toml")]
    pub retrain_config: PathBuf,
    /// File holding the API key that prediction routes (`/v1/*`, `/predict`, `/embed`,
    /// `/model/parse`) require as `Authorization: Bearer <key>` (else the INTENT_API_KEY
    /// environment variable; neither: those routes are open).
    #[arg(long, env = "INTENT_API_KEY_FILE")]
    pub api_key_file: Option<PathBuf>,
    /// Let browser pages from this origin call the server (CORS); repeat it or separate origins
    /// with commas; `*` allows any origin.
    #[arg(long, env = "INTENT_CORS_ALLOW_ORIGIN", value_delimiter = ',')]
    pub cors_allow_origin: Vec<String>,
    /// Threads answering HTTP requests (default: one per core).
    #[arg(long, env = "INTENT_HTTP_THREADS")]
    pub http_threads: Option<usize>,
    /// A client must send a request's headers within this; a keep-alive connection idle this
    /// long is closed.
    #[arg(long, env = "INTENT_HEADER_TIMEOUT", default_value = "10s", value_parser = parse_timeout)]
    pub header_timeout: Duration,
    /// A request's body must arrive within this (408 beyond).
    #[arg(long, env = "INTENT_BODY_TIMEOUT", default_value = "30s", value_parser = parse_timeout)]
    pub body_timeout: Duration,
    /// A whole request within this (408 beyond).
    #[arg(long, env = "INTENT_REQUEST_TIMEOUT", default_value = "60s", value_parser = parse_timeout)]
    pub request_timeout: Duration,
    /// Connections served at once at most (lowered to fit `ulimit -n`); beyond it a few spare
    /// connections still answer /health and /ready.
    #[arg(long, env = "INTENT_MAX_CONNECTIONS", default_value_t = 4096)]
    pub max_connections: usize,
    /// On SIGTERM, requests in flight get this long to finish; then connections are cut, the
    /// query log is written and the process exits.
    #[arg(long, env = "INTENT_SHUTDOWN_TIMEOUT", default_value = "30s", value_parser = parse_timeout)]
    pub shutdown_timeout: Duration,
    /// Rows the query log holds in memory at most (the most a crash can lose); rows beyond it
    /// are dropped and counted while the disk is slow or full.
    #[arg(long, env = "INTENT_QUERY_LOG_QUEUE_ROWS", default_value_t = 4096)]
    pub query_log_queue_rows: usize,
    /// Keep at most this many logged queries (the oldest go; the labeling queue stays).
    #[arg(long, env = "INTENT_QUERY_LOG_MAX_ROWS")]
    pub query_log_max_rows: Option<u64>,
    /// Drop logged queries older than this (`30d`, `12h`; the labeling queue stays).
    #[arg(long, env = "INTENT_QUERY_LOG_MAX_AGE", value_parser = parse_every)]
    pub query_log_max_age: Option<Duration>,
    /// `/ready` answers 503 while the query log cannot write (by default it stays 200 and
    /// says `query_log.degraded`).
    #[arg(long, env = "INTENT_REQUIRE_QUERY_LOG")]
    pub require_query_log: bool,
    /// Folder under which `POST /admin/reload {"model": …}` may load models (relative paths or
    /// `NAME@ALIAS`); without it only the served model can be reloaded.
    #[arg(long, env = "INTENT_MODELS_ROOT")]
    pub models_root: Option<PathBuf>,
}

fn parse_timeout(s: &str) -> Result<Duration, String> {
    let d =
        humantime::parse_duration(s).map_err(|e| format!("{e}: expected a duration such as 10s or 2m"))?;
    if d.is_zero() {
        return Err("expected more than 0s".into());
    }
    Ok(d)
}

fn parse_every(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s)
        .map_err(|e| format!("{e}: expected a duration such as 30d, 12h or 90m"))?;
    if d < Duration::from_secs(1) {
        return Err("expected at least 1s".into());
    }
    Ok(d)
}

/// A secret from `file` (trimmed; an empty file is an error), else from the environment variable
/// `env`; `what` names it in messages.
fn secret(file: Option<&PathBuf>, env: &str, what: &str) -> Result<Option<String>> {
    Ok(match file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading the {what} file {}", path.display()))?;
            let t = text.trim().to_string();
            if t.is_empty() {
                bail!("{}: the {what} file is empty", path.display());
            }
            Some(t)
        }
        None => std::env::var(env).ok().map(|t| t.trim().to_string()).filter(|t| !t.is_empty()),
    })
}

fn admin_token(a: &ServeArgs) -> Result<Option<String>> {
    let token = secret(a.admin_token_file.as_ref(), "INTENT_ADMIN_TOKEN", "admin token")?;
    match &token {
        None => tracing::warn!(
            "no admin token (INTENT_ADMIN_TOKEN or --admin-token-file): admin routes are disabled"
        ),
        Some(t) if t.len() < 16 => {
            tracing::warn!("the admin token has {} characters; use at least 16 random ones", t.len())
        }
        Some(_) => {}
    }
    Ok(token)
}

/// Runs the server until SIGTERM or Ctrl-C.
pub fn run(a: ServeArgs) -> Result<ExitCode> {
    if !(0.0..=1.0).contains(&a.fallback_threshold) {
        bail!("--fallback-threshold {} is not in [0, 1]", a.fallback_threshold);
    }
    for (flag, v) in [
        ("--max-body-bytes", a.max_body_bytes),
        ("--max-text-chars", a.max_text_chars),
        ("--max-texts", a.max_texts),
        ("--max-concurrent", a.max_concurrent),
        ("--max-batch-tokens", a.max_batch_tokens),
        ("--max-batch-texts", a.max_batch_texts),
        ("--max-connections", a.max_connections),
        ("--query-log-queue-rows", a.query_log_queue_rows),
    ] {
        if v == 0 {
            bail!("{flag} must be at least 1");
        }
    }
    if a.query_log_max_rows == Some(0) {
        bail!("--query-log-max-rows must be at least 1");
    }
    let models_root = match &a.models_root {
        Some(root) if !root.is_dir() => bail!("--models-root {}: not a folder", root.display()),
        other => other.clone(),
    };
    if a.watch == Some(0) {
        bail!("--watch must be at least 1 second");
    }
    let addr: std::net::SocketAddr = a
        .addr
        .parse()
        .with_context(|| format!("--addr '{}': expected HOST:PORT such as 127.0.0.1:8080", a.addr))?;
    let options = ServerOptions {
        max_body_bytes: a.max_body_bytes,
        max_text_chars: a.max_text_chars,
        max_texts: a.max_texts,
        max_concurrent: a.max_concurrent,
        admin_token: admin_token(&a)?,
        api_key: secret(a.api_key_file.as_ref(), "INTENT_API_KEY", "API key")?,
        cors_allow_origins: a.cors_allow_origin.clone(),
        load: LoadOptions {
            fallback_threshold: Some(a.fallback_threshold),
            batch: BatchConfig { max_batch_tokens: a.max_batch_tokens, max_batch_texts: a.max_batch_texts },
            batch_observer: None,
        },
        header_timeout: a.header_timeout,
        body_timeout: a.body_timeout,
        request_timeout: a.request_timeout,
        max_connections: a.max_connections,
        shutdown_timeout: a.shutdown_timeout,
        require_query_log: a.require_query_log,
        models_root,
        retrain_config: None,
        fallback: match &a.fallback_url {
            Some(url) => Some(
                intent_server::fallback::FallbackService::new(url, a.fallback_timeout)
                    .map_err(|e| anyhow::anyhow!(e))?,
            ),
            None => None,
        },
    };
    let log = if a.no_query_log {
        None
    } else {
        let log_options = QueryLogOptions {
            redact: a.redact,
            queue_rows: a.query_log_queue_rows,
            max_rows: a.query_log_max_rows,
            max_age: a.query_log_max_age,
        };
        let log = QueryLog::open_at(&a.query_log, log_options).context("opening the query log")?;
        tracing::info!("query log: {}{}", log.location(), if a.redact { " (texts redacted)" } else { "" });
        Some(log)
    };
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = a.http_threads {
        rt.worker_threads(n.max(1));
    }
    let spec = ModelSpec::parse(&a.model);
    // The retrain job: required with --retrain-every; otherwise used for POST /admin/retrain when
    // the file is there and fits the served model.
    let retrain_config = if a.retrain_every.is_some() {
        let cfg = RetrainConfig::read(&a.retrain_config).context("--retrain-config")?;
        check_served_spec(&spec, &cfg).map_err(|e| anyhow::anyhow!("--retrain-every: {e}"))?;
        Some(cfg)
    } else if a.retrain_config.is_file() {
        let cfg = RetrainConfig::read(&a.retrain_config).context("--retrain-config")?;
        match check_served_spec(&spec, &cfg) {
            Ok(()) => Some(cfg),
            Err(e) => {
                tracing::warn!("{}: not used for POST /admin/retrain: {e}", a.retrain_config.display());
                None
            }
        }
    } else {
        None
    };
    let retrain = a.retrain_every.zip(retrain_config.as_ref().map(|c| c.path.clone()));
    let options = ServerOptions { retrain_config, ..options };
    let state = AppState::new(ModelSlot::default(), log, options);
    let info = state.load(&spec).with_context(|| format!("loading {}", a.model))?;
    tracing::info!(
        "loaded {} version {} ({}, {} labels)",
        info.name,
        info.version,
        info.path.display(),
        info.labels.len()
    );
    let rt = rt.enable_all().build().context("starting the async runtime")?;
    rt.block_on(async move {
        let listener =
            tokio::net::TcpListener::bind(addr).await.with_context(|| format!("binding {addr}"))?;
        tracing::info!("listening on http://{}", listener.local_addr().unwrap_or(addr));
        if let Some(s) = a.watch {
            server::spawn_watcher(state.clone(), Duration::from_secs(s));
        }
        if let Some((every, path)) = retrain {
            tracing::info!("retraining every {} with {}", humantime::format_duration(every), path.display());
            spawn_retrainer(state.clone(), every);
        }
        server::serve(listener, state, server::shutdown_signal()).await.context("serving")?;
        tracing::info!("stopped");
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(ExitCode::SUCCESS)
}
