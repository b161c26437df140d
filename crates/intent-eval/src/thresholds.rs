//! Decision thresholds of multi-label models, tuned on labeled data (validation data, a
//! hold-out, or `intent eval --tune-on`).

/// The thresholds tried: 0.05, 0.10, …, 0.95.
fn grid() -> impl Iterator<Item = f32> {
    (1..20).map(|k| k as f32 * 0.05)
}

/// The best of `scored` (threshold, F1) pairs in grid order: the middle of the thresholds that
/// reach the best F1. Small tuning sets often score the same over a wide range (every positive
/// near 1, every negative near 0); its lowest end would let through on new data what the
/// tuning data happened not to hold (NLU++ banking, 161 held-out texts: 23 of 48 labels
/// tuned to 0.05 and test micro-F1 0.908, against 0.927 at 0.5 for all).
fn middle_of_best(scored: &[(f32, f64)]) -> (f32, f64) {
    let best = scored.iter().map(|&(_, f)| f).fold(f64::NEG_INFINITY, f64::max);
    let ties: Vec<f32> = scored.iter().filter(|&&(_, f)| f >= best - 1e-12).map(|&(t, _)| t).collect();
    (ties.get(ties.len() / 2).copied().unwrap_or(0.5), best)
}

/// The threshold in 0.05..0.95 with the best micro-F1 of `probs` (row-major, `k` per row)
/// against `gold` (label indices per row), and that micro-F1 (ties: the middle threshold).
pub fn best_micro_f1(probs: &[f32], gold: &[Vec<usize>], k: usize) -> (f32, f64) {
    let scored: Vec<(f32, f64)> = grid()
        .map(|t| {
            let (mut tp, mut fp, mut fneg) = (0usize, 0usize, 0usize);
            for (row, g) in probs.chunks(k).zip(gold) {
                for (c, &p) in row.iter().enumerate() {
                    match (p >= t, g.contains(&c)) {
                        (true, true) => tp += 1,
                        (true, false) => fp += 1,
                        (false, true) => fneg += 1,
                        _ => {}
                    }
                }
            }
            (t, 2.0 * tp as f64 / (2 * tp + fp + fneg).max(1) as f64)
        })
        .collect();
    middle_of_best(&scored)
}

/// Validation positives a label needs for a threshold of its own; rarer labels take the one
/// threshold that maximises micro-F1 over all labels (a per-label optimum over one or two
/// examples is noise).
const MIN_POSITIVES_FOR_OWN_THRESHOLD: usize = 3;

/// True/false positives and false negatives of label `c` at threshold `t`.
fn counts(scores: &[Vec<f32>], pos: &[bool], c: usize, t: f32) -> (usize, usize, usize) {
    let (mut tp, mut fp, mut fneg) = (0usize, 0usize, 0usize);
    for (s, &p) in scores.iter().zip(pos) {
        match (s[c] >= t, p) {
            (true, true) => tp += 1,
            (true, false) => fp += 1,
            (false, true) => fneg += 1,
            _ => {}
        }
    }
    (tp, fp, fneg)
}

/// Per-label decision thresholds of a multi-label model tuned on labeled data (`gold` label
/// sets, `scores` the model's per-label probabilities): a label with at least three positives
/// gets the threshold in 0.05..0.95 that maximises its F1; rarer labels get the one threshold
/// that maximises micro-F1 over all labels. Ties take the middle of the best thresholds.
pub fn tune_label_thresholds(gold: &[Vec<String>], scores: &[Vec<f32>], labels: &[String]) -> Vec<f32> {
    let f1 = |(tp, fp, fneg): (usize, usize, usize)| 2.0 * tp as f64 / (2 * tp + fp + fneg).max(1) as f64;
    let pos: Vec<Vec<bool>> =
        (0..labels.len()).map(|c| gold.iter().map(|g| g.contains(&labels[c])).collect()).collect();
    // One threshold for all labels: the best micro-F1.
    let global: Vec<(f32, f64)> = grid()
        .map(|t| {
            let total = (0..labels.len())
                .map(|c| counts(scores, &pos[c], c, t))
                .fold((0, 0, 0), |a, x| (a.0 + x.0, a.1 + x.1, a.2 + x.2));
            (t, f1(total))
        })
        .collect();
    let global = middle_of_best(&global).0;
    // Per label with enough positives, the threshold in 0.05..0.95 that maximises its F1.
    (0..labels.len())
        .map(|c| {
            if pos[c].iter().filter(|&&p| p).count() < MIN_POSITIVES_FOR_OWN_THRESHOLD {
                return global;
            }
            let own: Vec<(f32, f64)> = grid().map(|t| (t, f1(counts(scores, &pos[c], c, t)))).collect();
            middle_of_best(&own).0
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A label with enough validation positives gets its own F1-optimal threshold; a rare one
    /// gets the threshold that maximises micro-F1 over all labels; ties take the middle one.
    #[test]
    fn rare_labels_take_the_global_threshold() {
        let labels: Vec<String> = ["a", "b"].map(String::from).to_vec();
        // Label a: positives score 0.33, negatives 0.12 → F1 1 at 0.15, 0.20, 0.25 and 0.30.
        // Label b: one positive at 0.9, negatives at 0.05.
        let mut gold = Vec::new();
        let mut scores = Vec::new();
        for i in 0..10 {
            let a = i < 4;
            let b = i == 9;
            let mut g = Vec::new();
            if a {
                g.push("a".to_string());
            }
            if b {
                g.push("b".to_string());
            }
            gold.push(g);
            scores.push(vec![if a { 0.33 } else { 0.12 }, if b { 0.9 } else { 0.05 }]);
        }
        let th = tune_label_thresholds(&gold, &scores, &labels);
        assert!((th[0] - 0.25).abs() < 1e-6, "the middle of 0.15..=0.30: {th:?}");
        // Over both labels micro-F1 is 1 from 0.15 to 0.30 as well; b takes the middle.
        assert!((th[1] - 0.25).abs() < 1e-6, "{th:?}");
        // With fewer than three positives of its own, a label never gets a private threshold:
        // b's positive at 0.14 would want 0.10 (F1 1 for b alone), but micro-F1 over both labels
        // is best from 0.15 to 0.30 (8/9 against 10/16 at 0.10), and b takes 0.25.
        scores[9][1] = 0.14;
        let th = tune_label_thresholds(&gold, &scores, &labels);
        assert!((th[1] - 0.25).abs() < 1e-6, "{th:?}");
    }

    /// Scores that separate perfectly at every threshold tune to 0.5, not to the lowest one.
    #[test]
    fn a_clean_separation_tunes_to_the_middle() {
        let labels: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
        let gold: Vec<Vec<String>> = (0..12).map(|i| vec![labels[i % 3].clone()]).collect();
        let scores: Vec<Vec<f32>> =
            (0..12).map(|i| (0..3).map(|c| if c == i % 3 { 0.99 } else { 0.01 }).collect()).collect();
        let th = tune_label_thresholds(&gold, &scores, &labels);
        assert!(th.iter().all(|&t| (t - 0.5).abs() < 1e-6), "{th:?}");
        let probs: Vec<f32> = scores.concat();
        let gold_idx: Vec<Vec<usize>> = (0..12).map(|i| vec![i % 3]).collect();
        let (t, f1) = best_micro_f1(&probs, &gold_idx, 3);
        assert_eq!(f1, 1.0);
        assert!((t - 0.5).abs() < 1e-6, "{t}");
    }
}
