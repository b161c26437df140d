//! Evaluation of a loaded [`Classifier`] on labeled data (single- or multi-label, with the
//! out-of-scope policy), shared by `intent eval`, the pipeline and retraining.

use intent_data::Dataset;
use intent_eval::{evaluate_multi, evaluate_single, OosPolicy, PredictionRow, Report};

use crate::{Classifier, ServeError};

/// Evaluates a model on data. `threshold`: the out-of-scope threshold to use (`None`: the
/// model's own, if any). Fails only when the model cannot score a text (see
/// [`Classifier::scores`]).
pub fn evaluate(
    model: &Classifier,
    data: &Dataset,
    threshold: Option<f32>,
    oos_label: &str,
) -> Result<(Report, Vec<PredictionRow>), ServeError> {
    evaluate_with(model, data, threshold, None, oos_label)
}

/// [`evaluate`], with per-label thresholds for a multi-label model (`None`: the model's own).
pub fn evaluate_with(
    model: &Classifier,
    data: &Dataset,
    threshold: Option<f32>,
    label_thresholds: Option<&[f32]>,
    oos_label: &str,
) -> Result<(Report, Vec<PredictionRow>), ServeError> {
    let texts = data.texts();
    let scores = model.scores(&texts)?;
    let labels = model.labels();
    let config = model.config();
    if config.multi_label {
        let gold: Vec<Vec<String>> = data.examples.iter().map(|e| e.labels.clone()).collect();
        let th = match label_thresholds {
            Some(t) => t.to_vec(),
            None => config.thresholds.clone().unwrap_or_else(|| vec![0.5; labels.len()]),
        };
        let (report, predicted) = evaluate_multi(&gold, &scores, labels, &th);
        let rows = data
            .examples
            .iter()
            .zip(predicted)
            .zip(&scores)
            .map(|((e, p), s)| PredictionRow {
                text: e.text.clone(),
                gold: e.labels.join("+"),
                predicted: p.join("+"),
                confidence: s.iter().copied().fold(0.0, f32::max),
            })
            .collect();
        return Ok((report, rows));
    }
    let threshold = threshold.or(config.oos.as_ref().map(|o| o.threshold));
    let policy = OosPolicy { label: oos_label.to_string(), threshold };
    let gold: Vec<&str> = data.examples.iter().map(|e| e.label().unwrap_or("")).collect();
    let (report, preds) = evaluate_single(&gold, &scores, labels, Some(&policy));
    let rows = data
        .examples
        .iter()
        .zip(preds)
        .map(|(e, (p, c))| PredictionRow {
            text: e.text.clone(),
            gold: e.labels.join("+"),
            predicted: p,
            confidence: c,
        })
        .collect();
    Ok((report, rows))
}
