//! What every trainer does with validation data once the model is fitted: per-label thresholds
//! (multi-label), the out-of-scope threshold (single-label with `oos` rows), and the report.

use std::collections::BTreeMap;

use intent_data::Dataset;
use intent_eval::{evaluate_multi, evaluate_single, tune_oos_threshold, OosPolicy, Report};
use intent_models::folder::{ModelConfig, OosConfig};

fn per_label_thresholds(gold: &[Vec<String>], scores: &[Vec<f32>], labels: &[String]) -> Vec<f32> {
    // Per label, the threshold in 0.05..0.95 that maximises that label's F1 on validation data;
    // 0.5 for labels without a positive validation example.
    (0..labels.len())
        .map(|c| {
            let pos: Vec<bool> = gold.iter().map(|g| g.contains(&labels[c])).collect();
            if !pos.iter().any(|&p| p) {
                return 0.5;
            }
            let mut best = (0.5f32, -1.0f64);
            for k in 1..20 {
                let t = k as f32 * 0.05;
                let (mut tp, mut fp, mut fneg) = (0usize, 0usize, 0usize);
                for (s, &p) in scores.iter().zip(&pos) {
                    match (s[c] >= t, p) {
                        (true, true) => tp += 1,
                        (true, false) => fp += 1,
                        (false, true) => fneg += 1,
                        _ => {}
                    }
                }
                let f1 = 2.0 * tp as f64 / (2 * tp + fp + fneg).max(1) as f64;
                if f1 > best.1 {
                    best = (t, f1);
                }
            }
            best.0
        })
        .collect()
}

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
        let th = per_label_thresholds(&gold, scores, &labels);
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
