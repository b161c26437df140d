//! Single-label metrics: accuracy, per-class precision / recall / F1 / support and the labels a
//! class is confused with, macro and weighted averages, confusion matrix, top-k accuracy,
//! expected calibration error, and out-of-scope figures.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Metrics of one class (keys as scikit-learn's `classification_report`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassMetrics {
    /// TP / (TP + FP); 0 when nothing was predicted as this class.
    pub precision: f64,
    /// TP / (TP + FN); 0 when the class has no example.
    pub recall: f64,
    /// Harmonic mean of precision and recall.
    #[serde(rename = "f1-score")]
    pub f1: f64,
    /// Number of gold examples.
    pub support: usize,
    /// Most frequent wrong predictions for this class's examples: (label, count), at most 3.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub confused_with: Vec<(String, usize)>,
}

/// Averages over classes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Average {
    /// Averaged precision.
    pub precision: f64,
    /// Averaged recall.
    pub recall: f64,
    /// Averaged F1.
    #[serde(rename = "f1-score")]
    pub f1: f64,
    /// Total support.
    pub support: usize,
}

/// Confusion matrix: `matrix[gold][predicted]` over `labels`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConfusionMatrix {
    /// Row / column labels.
    pub labels: Vec<String>,
    /// Counts.
    pub matrix: Vec<Vec<usize>>,
}

pub(crate) fn f1(p: f64, r: f64) -> f64 {
    if p + r > 0.0 {
        2.0 * p * r / (p + r)
    } else {
        0.0
    }
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

/// Per-class metrics, averages and the confusion matrix of label-index predictions.
/// `labels` names indices `0..labels.len()`.
pub fn classification_metrics(
    gold: &[usize],
    pred: &[usize],
    labels: &[String],
) -> (BTreeMap<String, ClassMetrics>, Average, Average, ConfusionMatrix) {
    let k = labels.len();
    let mut m = vec![vec![0usize; k]; k];
    for (&g, &p) in gold.iter().zip(pred) {
        m[g][p] += 1;
    }
    let mut per_class = BTreeMap::new();
    let (mut mp, mut mr, mut mf) = (0.0, 0.0, 0.0);
    let (mut wp, mut wr, mut wf) = (0.0, 0.0, 0.0);
    let mut n_classes = 0usize;
    let total = gold.len();
    for c in 0..k {
        let tp = m[c][c];
        let support: usize = m[c].iter().sum();
        let predicted: usize = (0..k).map(|g| m[g][c]).sum();
        if support == 0 && predicted == 0 {
            continue; // a label absent from both gold and predictions is not reported
        }
        let (p, r) = (ratio(tp, predicted), ratio(tp, support));
        let f = f1(p, r);
        let mut confused: Vec<(String, usize)> =
            (0..k).filter(|&o| o != c && m[c][o] > 0).map(|o| (labels[o].clone(), m[c][o])).collect();
        confused.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        confused.truncate(3);
        per_class.insert(
            labels[c].clone(),
            ClassMetrics { precision: p, recall: r, f1: f, support, confused_with: confused },
        );
        n_classes += 1;
        mp += p;
        mr += r;
        mf += f;
        let w = support as f64;
        wp += p * w;
        wr += r * w;
        wf += f * w;
    }
    let n = n_classes.max(1) as f64;
    let t = total.max(1) as f64;
    let macro_avg = Average { precision: mp / n, recall: mr / n, f1: mf / n, support: total };
    let weighted_avg = Average { precision: wp / t, recall: wr / t, f1: wf / t, support: total };
    (per_class, macro_avg, weighted_avg, ConfusionMatrix { labels: labels.to_vec(), matrix: m })
}

/// Fraction of rows whose gold index is among the `k` highest scores.
pub fn top_k_accuracy(gold: &[usize], scores: &[Vec<f32>], k: usize) -> f64 {
    let hits = gold
        .iter()
        .zip(scores)
        .filter(|(&g, s)| {
            let sg = s[g];
            // rank = number of scores strictly greater (ties count in favour of the gold label)
            s.iter().filter(|&&x| x > sg).count() < k
        })
        .count();
    ratio(hits, gold.len())
}

/// Expected calibration error with `bins` equal-width confidence bins:
/// Σ_b (n_b / n) · |accuracy_b − mean confidence_b|.
pub fn expected_calibration_error(confidence: &[f32], correct: &[bool], bins: usize) -> f64 {
    let bins = bins.max(1);
    let mut acc = vec![(0usize, 0usize, 0.0f64); bins];
    for (&c, &ok) in confidence.iter().zip(correct) {
        let b = ((c.clamp(0.0, 1.0) as f64 * bins as f64) as usize).min(bins - 1);
        acc[b].0 += 1;
        acc[b].1 += ok as usize;
        acc[b].2 += c as f64;
    }
    let n = confidence.len().max(1) as f64;
    acc.iter()
        .filter(|(cnt, _, _)| *cnt > 0)
        .map(|&(cnt, ok, conf)| (cnt as f64 / n) * (ok as f64 / cnt as f64 - conf / cnt as f64).abs())
        .sum()
}

/// Index and value of the largest score (first on ties).
pub fn argmax(scores: &[f32]) -> (usize, f32) {
    scores
        .iter()
        .copied()
        .enumerate()
        .fold((0, f32::NEG_INFINITY), |best, (i, s)| if s > best.1 { (i, s) } else { best })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("c{i}")).collect()
    }

    #[test]
    fn metrics_match_hand_computation() {
        // gold: 0 0 0 1 1 2 ; pred: 0 0 1 1 2 2
        let (pc, ma, wa, cm) = classification_metrics(&[0, 0, 0, 1, 1, 2], &[0, 0, 1, 1, 2, 2], &labels(3));
        // c0: P=2/2 R=2/3 F=0.8 ; c1: P=1/2 R=1/2 F=.5 ; c2: P=1/2 R=1 F=2/3
        assert!((pc["c0"].f1 - 0.8).abs() < 1e-12);
        assert!((pc["c1"].precision - 0.5).abs() < 1e-12);
        assert!((pc["c2"].f1 - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(pc["c0"].confused_with, vec![("c1".to_string(), 1)]);
        assert!((ma.f1 - (0.8 + 0.5 + 2.0 / 3.0) / 3.0).abs() < 1e-12);
        assert!((wa.f1 - (0.8 * 3.0 + 0.5 * 2.0 + 2.0 / 3.0) / 6.0).abs() < 1e-12);
        assert_eq!(cm.matrix, vec![vec![2, 1, 0], vec![0, 1, 1], vec![0, 0, 1]]);
    }

    #[test]
    fn top_k_and_ece() {
        let s = vec![vec![0.5, 0.3, 0.2], vec![0.1, 0.2, 0.7]];
        assert_eq!(top_k_accuracy(&[1, 0], &s, 1), 0.0);
        assert_eq!(top_k_accuracy(&[1, 0], &s, 2), 0.5);
        assert_eq!(top_k_accuracy(&[1, 0], &s, 3), 1.0);
        // two bins: conf .25 (wrong) in bin 0 -> |0-.25|; .75,.75 (1 right) in bin 1 -> |.5-.75|
        let e = expected_calibration_error(&[0.25, 0.75, 0.75], &[false, true, false], 2);
        assert!((e - (1.0 / 3.0 * 0.25 + 2.0 / 3.0 * 0.25)).abs() < 1e-9, "{e}");
        assert_eq!(argmax(&[0.1, 0.7, 0.7]), (1, 0.7));
    }
}
