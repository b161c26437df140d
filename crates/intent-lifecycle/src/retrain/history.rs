//! The history file: one JSON line per run, appended and fsynced.

use std::io::Write;
use std::path::{Path, PathBuf};

use intent_models::folder::now_unix;
use intent_models::ModelKind;

use super::outcome::{Durations, RetrainOutcome, RunStatus, VersionsSeen};
use super::{RetrainConfig, RetrainError};

/// The history file in the state folder.
pub(super) const HISTORY: &str = "retrain_history.jsonl";

/// The history lines of the config's state folder (a line cut short by a crash is skipped).
pub fn history(cfg: &RetrainConfig) -> Vec<RetrainOutcome> {
    let text = std::fs::read_to_string(cfg.state_dir.join(HISTORY)).unwrap_or_default();
    text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
}

impl RetrainOutcome {
    /// A line of this config's model with `status`, written now; the rest empty.
    pub(super) fn new(cfg: &RetrainConfig, id: &str, status: RunStatus) -> Self {
        Self::of_model(&cfg.model, id, status)
    }

    /// A line of `model` with `status`, written now; the rest empty.
    fn of_model(model: &str, id: &str, status: RunStatus) -> Self {
        RetrainOutcome {
            retrain_id: id.to_string(),
            timestamp_unix: now_unix(),
            model: model.to_string(),
            kind: None,
            kind_before: None,
            status,
            reason: String::new(),
            triggers: Vec::new(),
            dataset_quality: None,
            versions: VersionsSeen::default(),
            scores: None,
            served_quality: None,
            labels_pulled: None,
            durations_s: Durations::default(),
        }
    }
}

/// Appends `line` to the history file (fsynced).
pub(super) fn append_history(cfg: &RetrainConfig, line: &RetrainOutcome) -> Result<(), RetrainError> {
    append_to(&cfg.state_dir, line)
}

fn append_to(state_dir: &Path, line: &RetrainOutcome) -> Result<(), RetrainError> {
    let path = state_dir.join(HISTORY);
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(|source| RetrainError::Io { path: path.clone(), source })?;
    writeln!(f, "{line}")
        .and_then(|()| f.sync_all())
        .map_err(|source| RetrainError::Io { path: path.clone(), source })
}

/// Appends a `failed` line for a config that could not be read ([`RetrainConfig::read`]'s
/// `error`), when the file still names its model: a bad edit of a scheduled job shows in the
/// history. The state folder is the file's `state_dir` (default `retrain`). Returns the history
/// file written, `None` when the file names no usable model or the line cannot be written.
pub fn record_bad_config(path: &Path, error: &RetrainError) -> Option<PathBuf> {
    let table: toml::Table = std::fs::read_to_string(path).ok()?.parse().ok()?;
    let model = table.get("model")?.as_str()?;
    intent_registry::Registry::new(".").model(model).ok()?;
    let state = table.get("state_dir").and_then(|v| v.as_str()).unwrap_or("retrain");
    let state_dir = path.parent().unwrap_or(Path::new(".")).join(state);
    std::fs::create_dir_all(&state_dir).ok()?;
    let kind = table.get("kind").and_then(|k| k.as_str()).and_then(|k| k.parse::<ModelKind>().ok());
    let line = RetrainOutcome {
        kind,
        reason: format!("the config cannot be used: {}", error.to_string().replace('\n', " ")),
        ..RetrainOutcome::of_model(
            model,
            &format!("{}-{}", now_unix(), std::process::id()),
            RunStatus::Failed,
        )
    };
    append_to(&state_dir, &line).ok()?;
    Some(state_dir.join(HISTORY))
}
