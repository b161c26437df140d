//! From model scores to a [`Report`]: single-label (with out-of-scope handling) and
//! multi-label evaluation, and tuning of the out-of-scope threshold.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::html::CurvePoint;

use crate::metrics::{
    argmax, classification_metrics, expected_calibration_error, f1, top_k_accuracy, Average, ClassMetrics,
    ConfusionMatrix,
};

/// Out-of-scope policy: predictions under `threshold` confidence become `label`.
#[derive(Debug, Clone, PartialEq)]
pub struct OosPolicy {
    /// The out-of-scope label (`oos`).
    pub label: String,
    /// Confidence threshold (`None`: only an explicit `oos` class predicts out-of-scope).
    pub threshold: Option<f32>,
}

/// One prediction, for the errors file and the confidence histogram.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PredictionRow {
    /// The text.
    pub text: String,
    /// Gold label(s), `+`-joined for multi-label data.
    pub gold: String,
    /// Predicted label(s).
    pub predicted: String,
    /// Confidence of the prediction (max probability).
    pub confidence: f32,
}

/// An evaluation report. Its JSON form is `report.json`; the per-class part has the shape of
/// scikit-learn's `classification_report(output_dict=True)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Examples evaluated.
    pub n: usize,
    /// Accuracy (single-label: over all examples, out-of-scope included; multi-label: exact match).
    pub accuracy: f64,
    /// Macro-averaged F1.
    pub macro_f1: f64,
    /// Support-weighted F1.
    pub weighted_f1: f64,
    /// Micro-averaged F1 (multi-label).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub micro_f1: Option<f64>,
    /// Fraction of examples whose label set is predicted exactly (multi-label).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exact_match: Option<f64>,
    /// Accuracy on in-scope examples (data with an out-of-scope label).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_scope_accuracy: Option<f64>,
    /// Recall of the out-of-scope label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oos_recall: Option<f64>,
    /// Out-of-scope confidence threshold used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f32>,
    /// Top-k accuracy, keyed `top_1`, `top_3`, `top_5` (single-label, in-scope examples).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub top_k_accuracy: BTreeMap<String, f64>,
    /// Expected calibration error (15 bins) of the top prediction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ece: Option<f64>,
    /// Per-class metrics.
    pub per_class: BTreeMap<String, ClassMetrics>,
    /// Macro averages.
    #[serde(rename = "macro avg")]
    pub macro_avg: Average,
    /// Weighted averages.
    #[serde(rename = "weighted avg")]
    pub weighted_avg: Average,
    /// Confusion matrix (single-label).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confusion_matrix: Option<ConfusionMatrix>,
}

/// Evaluates single-label predictions. `scores[i]` are the model's class scores (over
/// `model_labels`) for the example whose gold label is `gold[i]`. A gold label the model does
/// not know is allowed only when it is the out-of-scope label; callers reject others first.
pub fn evaluate_single(
    gold: &[&str],
    scores: &[Vec<f32>],
    model_labels: &[String],
    oos: Option<&OosPolicy>,
) -> (Report, Vec<(String, f32)>) {
    let mut labels: Vec<String> = model_labels.to_vec();
    let oos_label = oos.map(|o| o.label.as_str());
    if let Some(policy) = oos {
        let used = policy.threshold.is_some() || gold.contains(&policy.label.as_str());
        if used && !labels.contains(&policy.label) {
            labels.push(policy.label.clone());
        }
    }
    let index: BTreeMap<&str, usize> = labels.iter().enumerate().map(|(i, l)| (l.as_str(), i)).collect();
    let mut g_idx = Vec::with_capacity(gold.len());
    let mut p_idx = Vec::with_capacity(gold.len());
    let mut preds = Vec::with_capacity(gold.len());
    for (g, s) in gold.iter().zip(scores) {
        let (mut p, conf) = argmax(s);
        if let Some(OosPolicy { label, threshold: Some(t) }) = oos {
            if conf < *t {
                p = index[label.as_str()];
            }
        }
        g_idx.push(
            *index.get(g).unwrap_or_else(|| {
                panic!("gold label '{g}' unknown to the model; callers check labels first")
            }),
        );
        p_idx.push(p);
        preds.push((labels[p].clone(), conf));
    }
    let (per_class, macro_avg, weighted_avg, cm) = classification_metrics(&g_idx, &p_idx, &labels);
    let correct: Vec<bool> = g_idx.iter().zip(&p_idx).map(|(g, p)| g == p).collect();
    let accuracy = correct.iter().filter(|&&c| c).count() as f64 / gold.len().max(1) as f64;

    // In-scope figures: examples whose gold label is not out-of-scope.
    let oos_idx = oos_label.and_then(|o| index.get(o).copied());
    let in_scope: Vec<usize> = (0..gold.len()).filter(|&i| Some(g_idx[i]) != oos_idx).collect();
    let (in_scope_accuracy, oos_recall) = match oos_idx {
        Some(o) => {
            let ins = in_scope.iter().filter(|&&i| correct[i]).count() as f64 / in_scope.len().max(1) as f64;
            let oos_rows: Vec<usize> = (0..gold.len()).filter(|&i| g_idx[i] == o).collect();
            let rec = (!oos_rows.is_empty())
                .then(|| oos_rows.iter().filter(|&&i| p_idx[i] == o).count() as f64 / oos_rows.len() as f64);
            (Some(ins), rec)
        }
        None => (None, None),
    };
    // Top-k and calibration on examples whose gold label is one of the model's outputs.
    let known: Vec<usize> = (0..gold.len()).filter(|&i| g_idx[i] < model_labels.len()).collect();
    let kg: Vec<usize> = known.iter().map(|&i| g_idx[i]).collect();
    let ks: Vec<Vec<f32>> = known.iter().map(|&i| scores[i].clone()).collect();
    let mut top_k = BTreeMap::new();
    for k in [1usize, 3, 5] {
        if k <= model_labels.len() && !kg.is_empty() {
            top_k.insert(format!("top_{k}"), top_k_accuracy(&kg, &ks, k));
        }
    }
    let conf: Vec<f32> = known.iter().map(|&i| argmax(&scores[i]).1).collect();
    let ok: Vec<bool> = known.iter().map(|&i| argmax(&scores[i]).0 == g_idx[i]).collect();
    let ece = (!known.is_empty()).then(|| expected_calibration_error(&conf, &ok, 15));
    let report = Report {
        n: gold.len(),
        accuracy,
        macro_f1: macro_avg.f1,
        weighted_f1: weighted_avg.f1,
        micro_f1: None,
        exact_match: None,
        in_scope_accuracy,
        oos_recall,
        threshold: oos.and_then(|o| o.threshold),
        top_k_accuracy: top_k,
        ece,
        per_class,
        macro_avg,
        weighted_avg,
        confusion_matrix: Some(cm),
    };
    (report, preds)
}

/// Evaluates multi-label predictions: a label is predicted when its score reaches its threshold.
/// Returns the report and each example's predicted label set.
pub fn evaluate_multi(
    gold: &[Vec<String>],
    scores: &[Vec<f32>],
    labels: &[String],
    thresholds: &[f32],
) -> (Report, Vec<Vec<String>>) {
    let k = labels.len();
    let index: BTreeMap<&str, usize> = labels.iter().enumerate().map(|(i, l)| (l.as_str(), i)).collect();
    let (mut tp, mut fp, mut fne) = (vec![0usize; k], vec![0usize; k], vec![0usize; k]);
    let mut exact = 0usize;
    let mut predicted = Vec::with_capacity(gold.len());
    let mut conf = Vec::new();
    let mut conf_ok = Vec::new();
    for (g, s) in gold.iter().zip(scores) {
        let gset: Vec<usize> = g.iter().filter_map(|l| index.get(l.as_str()).copied()).collect();
        let pset: Vec<usize> = (0..k).filter(|&c| s[c] >= thresholds[c]).collect();
        for c in 0..k {
            match (gset.contains(&c), pset.contains(&c)) {
                (true, true) => tp[c] += 1,
                (false, true) => fp[c] += 1,
                (true, false) => fne[c] += 1,
                _ => {}
            }
            conf.push(s[c]);
            conf_ok.push(gset.contains(&c));
        }
        let mut gs = gset.clone();
        gs.sort_unstable();
        exact += (gs == pset) as usize;
        predicted.push(pset.iter().map(|&c| labels[c].clone()).collect());
    }
    let mut per_class = BTreeMap::new();
    let (mut mp, mut mr, mut mf, mut wp, mut wr, mut wf, mut sup_total) =
        (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0usize);
    for c in 0..k {
        let support = tp[c] + fne[c];
        let p = if tp[c] + fp[c] > 0 { tp[c] as f64 / (tp[c] + fp[c]) as f64 } else { 0.0 };
        let r = if support > 0 { tp[c] as f64 / support as f64 } else { 0.0 };
        let f = f1(p, r);
        per_class.insert(
            labels[c].clone(),
            ClassMetrics { precision: p, recall: r, f1: f, support, confused_with: vec![] },
        );
        mp += p;
        mr += r;
        mf += f;
        wp += p * support as f64;
        wr += r * support as f64;
        wf += f * support as f64;
        sup_total += support;
    }
    let (stp, sfp, sfn) =
        (tp.iter().sum::<usize>() as f64, fp.iter().sum::<usize>() as f64, fne.iter().sum::<usize>() as f64);
    let micro_p = if stp + sfp > 0.0 { stp / (stp + sfp) } else { 0.0 };
    let micro_r = if stp + sfn > 0.0 { stp / (stp + sfn) } else { 0.0 };
    let n = k.max(1) as f64;
    let st = sup_total.max(1) as f64;
    let exact_match = exact as f64 / gold.len().max(1) as f64;
    let report = Report {
        n: gold.len(),
        accuracy: exact_match,
        macro_f1: mf / n,
        weighted_f1: wf / st,
        micro_f1: Some(f1(micro_p, micro_r)),
        exact_match: Some(exact_match),
        in_scope_accuracy: None,
        oos_recall: None,
        threshold: None,
        top_k_accuracy: BTreeMap::new(),
        ece: Some(expected_calibration_error(&conf, &conf_ok, 15)),
        per_class,
        macro_avg: Average { precision: mp / n, recall: mr / n, f1: mf / n, support: sup_total },
        weighted_avg: Average { precision: wp / st, recall: wr / st, f1: wf / st, support: sup_total },
        confusion_matrix: None,
    };
    (report, predicted)
}

/// Per example: (confidence, top prediction is correct, gold is oos, top prediction is oos),
/// with the in-scope and out-of-scope counts; `None` unless both are present.
type OosRows = (Vec<(f32, bool, bool, bool)>, usize, usize);

fn oos_rows(gold: &[&str], scores: &[Vec<f32>], model_labels: &[String], oos_label: &str) -> Option<OosRows> {
    let model_oos = model_labels.iter().position(|l| l == oos_label);
    let rows: Vec<(f32, bool, bool, bool)> = gold
        .iter()
        .zip(scores)
        .map(|(g, s)| {
            let (p, c) = argmax(s);
            (c, model_labels[p] == *g, *g == oos_label, Some(p) == model_oos)
        })
        .collect();
    let n_oos = rows.iter().filter(|r| r.2).count();
    let n_in = rows.len() - n_oos;
    (n_oos > 0 && n_in > 0).then_some((rows, n_in, n_oos))
}

/// In-scope accuracy and out-of-scope recall at threshold `t`.
fn oos_point(rows: &OosRows, t: f32) -> CurvePoint {
    let (rows, n_in, n_oos) = rows;
    let in_ok = rows.iter().filter(|r| !r.2 && r.1 && r.0 >= t).count() as f64 / *n_in as f64;
    let oos_ok = rows.iter().filter(|r| r.2 && (r.0 < t || r.3)).count() as f64 / *n_oos as f64;
    CurvePoint { threshold: t, in_scope_accuracy: in_ok, oos_recall: oos_ok }
}

/// Tunes the out-of-scope threshold on validation data: the confidence threshold that maximises
/// the mean of in-scope accuracy and out-of-scope recall (ties: the lowest threshold). `gold[i]`
/// is the gold label (the out-of-scope label, or one of `model_labels`). Returns `None` when the
/// data has no out-of-scope example.
pub fn tune_oos_threshold(
    gold: &[&str],
    scores: &[Vec<f32>],
    model_labels: &[String],
    oos_label: &str,
) -> Option<(f32, f64)> {
    let rows = oos_rows(gold, scores, model_labels, oos_label)?;
    let mut candidates: Vec<f32> = rows.0.iter().map(|r| r.0).collect();
    candidates.push(0.0);
    candidates.sort_by(f32::total_cmp);
    candidates.dedup();
    if candidates.len() > 2000 {
        let step = candidates.len() as f64 / 2000.0;
        candidates = (0..2000).map(|i| candidates[(i as f64 * step) as usize]).collect();
    }
    let mut best = (0.0f32, f64::NEG_INFINITY);
    for &t in &candidates {
        let p = oos_point(&rows, t);
        let score = (p.in_scope_accuracy + p.oos_recall) / 2.0;
        if score > best.1 {
            best = (t, score);
        }
    }
    Some(best)
}

/// In-scope accuracy and out-of-scope recall at `steps + 1` thresholds evenly from 0 to 1 (the
/// curve `report.html` shows when a threshold was tuned); empty without both kinds of examples.
pub fn oos_curve(
    gold: &[&str],
    scores: &[Vec<f32>],
    model_labels: &[String],
    oos_label: &str,
    steps: usize,
) -> Vec<CurvePoint> {
    let Some(rows) = oos_rows(gold, scores, model_labels, oos_label) else { return Vec::new() };
    let steps = steps.max(1);
    (0..=steps).map(|i| oos_point(&rows, i as f32 / steps as f32)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn oos_curve_by_hand() {
        // a: right at 0.9; oos: answered `a` at 0.6; a: wrong (`b`) at 0.6.
        let gold = ["a", "oos", "a"];
        let scores = vec![vec![0.9, 0.1], vec![0.6, 0.4], vec![0.4, 0.6]];
        let curve = oos_curve(&gold, &scores, &l(&["a", "b"]), "oos", 2);
        let got: Vec<(f32, f64, f64)> =
            curve.iter().map(|p| (p.threshold, p.in_scope_accuracy, p.oos_recall)).collect();
        assert_eq!(got, [(0.0, 0.5, 0.0), (0.5, 0.5, 0.0), (1.0, 0.0, 1.0)]);
        assert!(oos_curve(&["a", "a"], &scores[..2], &l(&["a", "b"]), "oos", 2).is_empty());
    }

    #[test]
    fn oos_threshold_moves_low_confidence_to_oos() {
        let labels = l(&["a", "b"]);
        let scores = vec![vec![0.9, 0.1], vec![0.55, 0.45], vec![0.2, 0.8], vec![0.6, 0.4]];
        let gold = ["a", "oos", "b", "a"];
        let policy = OosPolicy { label: "oos".into(), threshold: Some(0.58) };
        let (r, preds) = evaluate_single(&gold, &scores, &labels, Some(&policy));
        assert_eq!(preds.iter().map(|p| p.0.as_str()).collect::<Vec<_>>(), vec!["a", "oos", "b", "a"]);
        assert_eq!(r.in_scope_accuracy, Some(1.0));
        assert_eq!(r.oos_recall, Some(1.0));
        assert_eq!(r.accuracy, 1.0);
        // without a threshold the oos example is wrong
        let (r, _) = evaluate_single(
            &gold,
            &scores,
            &labels,
            Some(&OosPolicy { label: "oos".into(), threshold: None }),
        );
        assert_eq!(r.oos_recall, Some(0.0));
        assert_eq!(r.accuracy, 0.75);
    }

    #[test]
    fn tuning_finds_separating_threshold() {
        let labels = l(&["a", "b"]);
        let scores = vec![vec![0.9, 0.1], vec![0.55, 0.45], vec![0.2, 0.8], vec![0.6, 0.4]];
        let (t, s) = tune_oos_threshold(&["a", "oos", "b", "a"], &scores, &labels, "oos").unwrap();
        assert!(t > 0.55 && t <= 0.6, "{t}");
        assert_eq!(s, 1.0);
        assert!(tune_oos_threshold(&["a", "b"], &scores[..2], &labels, "oos").is_none());
    }

    #[test]
    fn multi_label_micro_macro_exact() {
        let labels = l(&["x", "y", "z"]);
        let gold = vec![l(&["x", "y"]), l(&["z"]), l(&[])];
        let scores = vec![vec![0.9, 0.2, 0.1], vec![0.1, 0.1, 0.8], vec![0.7, 0.1, 0.1]];
        let (r, pred) = evaluate_multi(&gold, &scores, &labels, &[0.5, 0.5, 0.5]);
        assert_eq!(pred, vec![l(&["x"]), l(&["z"]), l(&["x"])]);
        // tp=2 (x in 1, z in 2), fp=1 (x in 3), fn=1 (y in 1): P=2/3, R=2/3, F=2/3
        assert!((r.micro_f1.unwrap() - 2.0 / 3.0).abs() < 1e-12);
        assert!((r.exact_match.unwrap() - 1.0 / 3.0).abs() < 1e-12);
        // per class F1: x P=1/2 R=1 F=2/3; y 0; z 1 -> macro 5/9
        assert!((r.macro_f1 - 5.0 / 9.0).abs() < 1e-12);
    }
}
