//! What every trainer does with validation data once the model is fitted: per-label thresholds
//! (multi-label), the out-of-scope threshold (single-label with `oos` rows), and the report.

use std::collections::BTreeMap;

use intent_data::Dataset;
use intent_eval::{evaluate_multi, evaluate_single, tune_oos_threshold, OosPolicy, Report};
use intent_models::folder::{ModelConfig, OosConfig};

/// Tunes the thresholds of `config` on validation data `v` scored as `scores` (multi-label:
/// per-label thresholds maximising each label's F1; single-label: the out-of-scope threshold when
/// `v` has `oos_label` rows, rows with labels the model lacks left out) and reports on it.
pub(crate) fn validation_report(
    config: &mut ModelConfig,
    scores: &[Vec<f32>],
    v: &Dataset,
    index: &BTreeMap<&str, usize>,
    oos_label: &str,
) -> Report {
    let labels = config.labels.clone();
    if config.multi_label {
        let gold: Vec<Vec<String>> = v.examples.iter().map(|e| e.labels.clone()).collect();
        let th = intent_eval::tune_label_thresholds(&gold, scores, &labels);
        config.thresholds = Some(th.clone());
        evaluate_multi(&gold, scores, &labels, &th).0
    } else {
        let gold: Vec<&str> = v.examples.iter().map(|e| e.label().unwrap_or("")).collect();
        let usable: Vec<usize> =
            (0..gold.len()).filter(|&i| index.contains_key(gold[i]) || gold[i] == oos_label).collect();
        let g: Vec<&str> = usable.iter().map(|&i| gold[i]).collect();
        let s: Vec<Vec<f32>> = usable.iter().map(|&i| scores[i].clone()).collect();
        let policy = tune_oos_threshold(&g, &s, &labels, oos_label).map(|(t, score)| {
            tracing::info!(
                "out-of-scope threshold {t:.4} tuned on validation data (balanced score {score:.4})"
            );
            config.oos = Some(OosConfig { label: oos_label.to_string(), threshold: t });
            OosPolicy { label: oos_label.to_string(), threshold: Some(t) }
        });
        evaluate_single(&g, &s, &labels, policy.as_ref()).0
    }
}

/// Multi-label data without validation data: `share` of `train` held out, stratified by each
/// example's rarest label (as `intent data split`), to pick the best epoch and tune per-label
/// thresholds. `None` (with a warning) when the rest would lose a label or nothing is held out.
pub(crate) fn threshold_holdout(
    train: &Dataset,
    share: f64,
    seed: u64,
) -> Result<Option<(Dataset, Dataset)>, crate::TrainError> {
    if !(0.0..0.5).contains(&share) {
        return Err(crate::TrainError::Hyperparameter {
            name: "threshold_holdout",
            message: format!("{share}: expected a share in [0, 0.5)"),
        });
    }
    if share == 0.0 || !train.multi_label {
        return Ok(None);
    }
    let split = intent_data::split::stratified_split(
        train,
        intent_data::split::SplitConfig {
            train_fraction: 1.0 - share,
            test_fraction: 0.0,
            min_val_per_label: 0,
            seed,
        },
    )?;
    if split.val.is_empty() || split.train.labels().len() != train.labels().len() {
        tracing::warn!("too few examples to hold some out for thresholds; they stay at 0.5");
        return Ok(None);
    }
    tracing::info!(
        "no validation data: {} of {} examples held out to pick the epoch and tune per-label thresholds",
        split.val.len(),
        train.len()
    );
    Ok(Some((split.train, split.val)))
}

/// The label set of training data, refused when it has fewer than two labels.
pub(crate) fn require_two_labels(train: &Dataset) -> Result<Vec<String>, crate::TrainError> {
    let labels = train.labels();
    if labels.len() < 2 {
        return Err(crate::TrainError::Data(format!(
            "training data has {} label(s) ({}); a classifier needs at least two",
            labels.len(),
            labels.join(", ")
        )));
    }
    Ok(labels)
}

/// The `metrics.json` content of a trained model: validation report, best epoch, whether early
/// stopping ended training, per-epoch history, time to the first step and steady-state speed.
pub(crate) fn metrics_json(
    val_report: Option<&Report>,
    best_epoch: usize,
    stopped_early: bool,
    history: &[crate::engine::EpochLog],
    timing: &crate::timing::Timing,
) -> serde_json::Value {
    serde_json::json!({
        "validation": val_report,
        "best_epoch": best_epoch,
        "stopped_early": stopped_early,
        "history": history,
        "timing": timing,
    })
}
