//! Helpers shared by the subcommands: loading data with the shared flags, reporting skipped
//! records.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;
use intent_data::{load_dataset, Dataset, Format, LoadOptions, Loaded};

/// Flags of every command that reads labeled data.
#[derive(Args, Debug, Clone, Default)]
pub struct InputFlags {
    /// Input format; detected from the content when omitted.
    #[arg(long, value_parser = [
        "jsonl", "intents", "outcomes", "multilabel", "csv", "banking77", "clinc150", "nlupp", "rasa",
    ])]
    pub format: Option<String>,
    /// Leave out invalid records (and list them) instead of stopping at the first one.
    #[arg(long)]
    pub skip_invalid: bool,
}

impl InputFlags {
    /// Loads `path`, logging what was skipped.
    pub fn load(&self, path: &Path) -> Result<Loaded<Dataset>> {
        let format = self.format.as_deref().map(str::parse::<Format>).transpose()?;
        let loaded = load_dataset(path, format, &LoadOptions { skip_invalid: self.skip_invalid })?;
        report_skipped(&loaded);
        if loaded.data.is_empty() {
            anyhow::bail!("{}: no usable record", path.display());
        }
        Ok(loaded)
    }
}

/// Prints the records left out under `--skip-invalid`.
pub fn report_skipped<T>(loaded: &Loaded<T>) {
    if loaded.skipped.is_empty() {
        return;
    }
    tracing::warn!("skipped {} invalid record(s):", loaded.skipped.len());
    for s in loaded.skipped.iter().take(20) {
        tracing::warn!("  {s}");
    }
    if loaded.skipped.len() > 20 {
        tracing::warn!("  … and {} more", loaded.skipped.len() - 20);
    }
}

/// Checks that every label of `data` is known to the model (or is the out-of-scope label);
/// the error names the first record with an unknown label.
pub fn check_known_labels(
    loaded: &Loaded<Dataset>,
    model_labels: &[String],
    multi_label: bool,
    oos_label: &str,
) -> Result<()> {
    for (i, e) in loaded.data.examples.iter().enumerate() {
        if !multi_label && e.labels.len() != 1 {
            let at = loaded.locations.get(i).map_or_else(|| format!("record {}", i + 1), |l| l.to_string());
            anyhow::bail!("{at}: the model is single-label but this record has {} labels", e.labels.len());
        }
        if let Some(l) = e.labels.iter().find(|l| *l != oos_label && !model_labels.contains(l)) {
            let at = loaded.locations.get(i).map_or_else(|| format!("record {}", i + 1), |l| l.to_string());
            let sample: Vec<&str> = model_labels.iter().take(8).map(String::as_str).collect();
            anyhow::bail!(
                "{at}: unknown label '{l}': the model has {} labels ({}{})",
                model_labels.len(),
                sample.join(", "),
                if model_labels.len() > 8 { ", …" } else { "" }
            );
        }
    }
    Ok(())
}

/// `path` as given, or an error naming it when it does not exist.
pub fn existing(path: &Path, what: &str) -> Result<PathBuf> {
    if !path.exists() {
        anyhow::bail!("{}: {what} not found", path.display());
    }
    Ok(path.to_path_buf())
}

/// Loads a model folder with context.
pub fn load_model(dir: &Path) -> Result<intent_serve::Classifier> {
    // `ROOT/NAME@ALIAS` names a registry version, `hf://ORG/NAME` a Hub repo; Classifier::load
    // resolves them.
    if matches!(intent_serve::ModelSpec::parse(&dir.to_string_lossy()), intent_serve::ModelSpec::Dir(_)) {
        existing(dir, "model folder")?;
    }
    intent_serve::Classifier::load(dir).with_context(|| format!("loading model {}", dir.display()))
}
