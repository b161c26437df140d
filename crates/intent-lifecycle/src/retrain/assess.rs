//! What a run starts from: the merged data (base, new files, the server's labels, teacher and
//! pseudo-labels, outcome examples) without the held-out texts, and the triggers as they stand.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use intent_data::formats::outcomes::{outcomes_to_dataset, read_outcomes, OutcomeDef};
use intent_data::split::{merge, ConflictPolicy};
use intent_data::{load_dataset, normalize_text, Dataset};
use intent_models::folder::now_unix;
use intent_registry::RegisteredModel;
use serde_json::Value;

use super::history::history;
use super::outcome::RunStatus;
use super::run::{io_err, PULLED};
use super::sources;
use super::{MergePolicy, RetrainConfig, RetrainError};

/// Data and triggers as they stand now.
pub(super) struct Assessment {
    pub(super) train: Dataset,
    pub(super) holdout: Dataset,
    pub(super) duplicates: usize,
    pub(super) conflicts: usize,
    pub(super) removed_holdout: usize,
    pub(super) new_samples: usize,
    pub(super) current: Option<u32>,
    pub(super) days_since_success: Option<f64>,
    pub(super) reasons: Vec<String>,
    /// SHA-256 of the base data now.
    pub(super) base_hash: String,
    /// Examples per label of the people's labels (the current model's labels included, 0 when
    /// they have none).
    pub(super) label_counts: std::collections::BTreeMap<String, usize>,
    /// Teacher labels and pseudo-labels used.
    pub(super) teacher_labels: Option<usize>,
    pub(super) pseudo_labels: Option<usize>,
    /// The outcome definitions of `[augment]` and their SHA-256.
    pub(super) outcomes: Option<(Vec<OutcomeDef>, String)>,
    /// The current version's answer windows (`[triggers.drift]`), and why they were not read.
    pub(super) served_quality: Option<Value>,
    pub(super) notes: Vec<String>,
}

fn data_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, RetrainError> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut files: Vec<PathBuf> = std::fs::read_dir(p)
                .map_err(io_err(p))?
                .flatten()
                .map(|e| e.path())
                .filter(|f| f.extension().is_some_and(|x| x == "jsonl"))
                .collect();
            files.sort();
            out.extend(files);
        } else {
            out.push(p.clone());
        }
    }
    Ok(out)
}

pub(super) fn assess(
    cfg: &RetrainConfig,
    model: &RegisteredModel,
    force: bool,
) -> Result<Assessment, RetrainError> {
    let opts = intent_data::LoadOptions::default();
    let mut parts = vec![load_dataset(&cfg.base_data, None, &opts)?.data];
    let mut files = data_files(&cfg.new_data)?;
    let pulled = cfg.state_dir.join(PULLED);
    if pulled.is_file() && !files.contains(&pulled) {
        files.push(pulled);
    }
    for f in files {
        parts.push(load_dataset(&f, None, &opts)?.data);
    }
    let policy = match cfg.merge {
        MergePolicy::KeepFirst => ConflictPolicy::KeepFirst,
        MergePolicy::KeepLast => ConflictPolicy::KeepLast,
    };
    let outcomes = match &cfg.augment {
        Some(aug) => Some((read_outcomes(&aug.outcomes)?, data_hash(&aug.outcomes)?)),
        None => None,
    };
    // The outcome examples come last: labeled data wins over them.
    if let Some((defs, _)) = &outcomes {
        parts.push(outcomes_to_dataset(defs));
    }
    let merged = merge(&parts, policy);
    let holdout = load_dataset(&cfg.holdout, None, &opts)?.data;
    let held: HashSet<String> = holdout.examples.iter().map(|e| normalize_text(&e.text)).collect();
    let mut train = merged.data;
    let before = train.len();
    train.examples.retain(|e| !held.contains(&normalize_text(&e.text)));
    let removed_holdout = before - train.len();

    let current = model.alias("current")?;
    let seen: HashSet<String> = match current {
        Some(n) => load_dataset(&model.version_dir(n).join("data/train.jsonl"), None, &opts)
            .map(|d| d.data.examples.iter().map(|e| normalize_text(&e.text)).collect())
            .unwrap_or_default(),
        None => HashSet::new(),
    };
    // New samples and label counts are the people's labels only.
    let new_samples = train.examples.iter().filter(|e| !seen.contains(&normalize_text(&e.text))).count();
    let mut label_counts = train.label_counts();
    // A label of the current model without examples counts as 0 (a zero-shot model's labels
    // file may name labels no one has labeled yet).
    if let Some(config) = current.and_then(|n| intent_models::ModelConfig::read(&model.version_dir(n)).ok()) {
        for l in config.labels {
            label_counts.entry(l).or_insert(0);
        }
    }
    // Teacher labels, then pseudo-labels, join below the people's: only texts no one labeled,
    // never a held-out text.
    let (teacher_labels, pseudo_labels) = sources::add_below_human(cfg, &mut train, &held)?;
    let past = history(cfg);
    let last_deployed = past.iter().rev().find(|h| h.status == RunStatus::Deployed);
    // The last successful retrain, else the creation of the current version.
    let last = last_deployed
        .map(|h| h.timestamp_unix)
        .or_else(|| current.and_then(|n| model.version(n).ok()).map(|v| v.created_unix));
    let days_since_success = last.map(|t| now_unix().saturating_sub(t) as f64 / 86400.0);
    let base_hash = data_hash(&cfg.base_data)?;
    // The hash the last deployment trained on (older history lines have none: no trigger).
    let deployed_hash = last_deployed.and_then(|h| h.dataset_quality.as_ref()?.base_data_sha256.clone());
    let deployed_outcomes = last_deployed.and_then(|h| h.dataset_quality.as_ref()?.outcomes_sha256.clone());
    let mut reasons = Vec::new();
    if force {
        reasons.push("--force".to_string());
    }
    if current.is_none() {
        reasons.push("no current version".to_string());
    }
    if let Some(d) = days_since_success.filter(|&d| d >= cfg.triggers.min_days) {
        reasons.push(format!("{d:.1} days since the last successful retrain ≥ {}", cfg.triggers.min_days));
    }
    if new_samples >= cfg.triggers.min_new_samples {
        reasons.push(format!("{new_samples} new samples ≥ {}", cfg.triggers.min_new_samples));
    }
    if let Some(old) = deployed_hash.filter(|h| cfg.triggers.on_data_change && *h != base_hash) {
        reasons.push(format!(
            "the base data changed since the last deployment (sha256 {} → {})",
            &old[..old.len().min(12)],
            &base_hash[..12]
        ));
    }
    let (mut served_quality, mut notes) = (None, Vec::new());
    // With a server, every history line keeps the current version's answer windows (its
    // fallback rate over time); only `[triggers.drift]` makes them a trigger.
    if let (Some(server), Some(n)) = (&cfg.server, current) {
        let drift = cfg.triggers.drift.clone();
        match drift.clone().unwrap_or_default().assess(server, &cfg.model, n) {
            Ok((reason, q)) => {
                if drift.is_some() {
                    reasons.extend(reason);
                }
                served_quality = Some(q);
            }
            Err(e) if drift.is_some() => {
                notes.push(format!("drift trigger: could not read the query log ({e})"))
            }
            Err(e) => tracing::debug!("no answer windows from the server: {e}"),
        }
    }
    let outcomes_hash = outcomes.as_ref().map(|(_, h)| h.as_str());
    if let (Some(old), Some(now)) = (deployed_outcomes.filter(|_| cfg.triggers.on_data_change), outcomes_hash)
    {
        if old != now {
            reasons.push(format!(
                "the outcome definitions changed since the last deployment (sha256 {} → {})",
                &old[..old.len().min(12)],
                &now[..12]
            ));
        }
    }
    Ok(Assessment {
        train,
        holdout,
        duplicates: merged.duplicates,
        conflicts: merged.conflicts.len(),
        removed_holdout,
        new_samples,
        current,
        days_since_success,
        reasons,
        base_hash,
        label_counts,
        teacher_labels,
        pseudo_labels,
        outcomes,
        served_quality,
        notes,
    })
}

/// SHA-256 (hex) of a data file, or of a folder's files (sorted names and bytes).
fn data_hash(path: &Path) -> Result<String, RetrainError> {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    if path.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(io_err(path))?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        for f in files {
            h.update(f.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default().as_bytes());
            h.update(std::fs::read(&f).map_err(io_err(&f))?);
        }
    } else {
        h.update(std::fs::read(path).map_err(io_err(path))?);
    }
    Ok(hex::encode(h.finalize()))
}
