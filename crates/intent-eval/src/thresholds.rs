//! Decision thresholds of multi-label models, tuned on labeled data (validation data, a
//! hold-out, or `intent eval --tune-on`).

/// The threshold in 0.05..0.95 with the best micro-F1 of `probs` (row-major, `k` per row)
/// against `gold` (label indices per row), and that micro-F1.
pub fn best_micro_f1(probs: &[f32], gold: &[Vec<usize>], k: usize) -> (f32, f64) {
    let mut best = (0.5f32, -1.0f64);
    for step in 1..20 {
        let t = step as f32 * 0.05;
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
        let f1 = 2.0 * tp as f64 / (2 * tp + fp + fneg).max(1) as f64;
        if f1 > best.1 {
            best = (t, f1);
        }
    }
    best
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
/// that maximises micro-F1 over all labels.
pub fn tune_label_thresholds(gold: &[Vec<String>], scores: &[Vec<f32>], labels: &[String]) -> Vec<f32> {
    let grid: Vec<f32> = (1..20).map(|k| k as f32 * 0.05).collect();
    let f1 = |(tp, fp, fneg): (usize, usize, usize)| 2.0 * tp as f64 / (2 * tp + fp + fneg).max(1) as f64;
    let pos: Vec<Vec<bool>> =
        (0..labels.len()).map(|c| gold.iter().map(|g| g.contains(&labels[c])).collect()).collect();
    // One threshold for all labels: the best micro-F1 (ties: the first, lowest).
    let mut global = (0.5f32, -1.0f64);
    for &t in &grid {
        let total = (0..labels.len())
            .map(|c| counts(scores, &pos[c], c, t))
            .fold((0, 0, 0), |a, x| (a.0 + x.0, a.1 + x.1, a.2 + x.2));
        if f1(total) > global.1 {
            global = (t, f1(total));
        }
    }
    // Per label with enough positives, the threshold in 0.05..0.95 that maximises its F1.
    (0..labels.len())
        .map(|c| {
            if pos[c].iter().filter(|&&p| p).count() < MIN_POSITIVES_FOR_OWN_THRESHOLD {
                return global.0;
            }
            let mut best = (0.5f32, -1.0f64);
            for &t in &grid {
                let score = f1(counts(scores, &pos[c], c, t));
                if score > best.1 {
                    best = (t, score);
                }
            }
            best.0
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A label with enough validation positives gets its own F1-optimal threshold; a rare one
    /// gets the threshold that maximises micro-F1 over all labels.
    #[test]
    fn rare_labels_take_the_global_threshold() {
        let labels: Vec<String> = ["a", "b"].map(String::from).to_vec();
        // Label a: positives score 0.3, negatives 0.1 → its best threshold is 0.15 (F1 1).
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
            scores.push(vec![if a { 0.3 } else { 0.1 }, if b { 0.9 } else { 0.05 }]);
        }
        let th = tune_label_thresholds(&gold, &scores, &labels);
        assert!((th[0] - 0.15).abs() < 1e-6, "{th:?}");
        // Globally, 0.15 (the lowest threshold above every negative) already gives micro-F1 1.
        assert!((th[1] - 0.15).abs() < 1e-6, "{th:?}");
        // With fewer than three positives of its own, a label never gets a private threshold:
        // b's positive at 0.12 would want 0.10 (F1 1 for b alone), but micro-F1 over both labels
        // is best at 0.15 (8/9 against 10/16 at 0.10), and b takes that.
        scores[9][1] = 0.12;
        let th = tune_label_thresholds(&gold, &scores, &labels);
        assert!((th[1] - 0.15).abs() < 1e-6, "{th:?}");
    }
}
