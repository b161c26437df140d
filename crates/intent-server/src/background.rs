//! The retrain job inside a running server (`intent serve --retrain-every 30d`): training runs
//! on a blocking thread, off the request path, and a deployed version is hot-swapped in.

use std::path::Path;
use std::time::Duration;

use intent_models::folder::now_unix;

use intent_lifecycle::retrain::{history, RetrainConfig, RunOptions};
use intent_serve::ModelSpec;

use crate::server::AppState;

/// Checks that the server serves the config's registry model through an alias, so that a reload
/// after a deployment picks up the new version. The error says what to pass.
pub fn check_served_spec(spec: &ModelSpec, cfg: &RetrainConfig) -> Result<(), String> {
    let want = cfg.registry.join(&cfg.model);
    let same = |a: &Path, b: &Path| match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    };
    match spec {
        ModelSpec::Alias { model_dir, .. } if same(model_dir, &want) => Ok(()),
        _ => Err(format!(
            "the served model must be the retrain config's registry model through an alias, \
            such as --model {}@current (got {})",
            want.display(),
            spec.display()
        )),
    }
}

/// Seconds to wait before the next run: `every` after the last run of the history (any status),
/// so a restarted server keeps the rhythm; at once when that time has passed; `every` when there
/// is no history.
fn wait_for(cfg: &RetrainConfig, every: Duration) -> Duration {
    let last = history(cfg).last().map(|h| h.timestamp_unix);
    match last {
        Some(t) => Duration::from_secs((t + every.as_secs()).saturating_sub(now_unix())),
        None => every,
    }
}

/// Runs the server's retrain job ([`crate::server::ServerOptions::retrain_config`]) every
/// `every` (as `intent retrain` would: its triggers decide) and, when a version is deployed,
/// reloads the served alias. The config's `[server]` is not called: this server reloads itself.
/// It takes turns with `POST /admin/retrain` (one job at a time). Without a retrain config it
/// logs why and returns.
pub fn spawn_retrainer(state: AppState, every: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let Some(cfg) = crate::retrain_jobs::config(&state) else {
            tracing::warn!("retrain: the server has no retrain config; nothing is scheduled");
            return;
        };
        loop {
            let wait = wait_for(&cfg, every);
            tracing::info!("retrain: next run in {} s", wait.as_secs());
            tokio::time::sleep(wait).await;
            if let Err(crate::retrain_jobs::NotStarted::Busy(id)) =
                crate::retrain_jobs::start(&state, "schedule", RunOptions::default())
            {
                tracing::info!("retrain: job {id} runs already; this run is left out");
            }
            while crate::retrain_jobs::running(&state).is_some() {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            if wait_for(&cfg, every).is_zero() {
                // The run left no history line (e.g. the lock was held): try again after `every`.
                tokio::time::sleep(every).await;
            }
        }
    })
}
