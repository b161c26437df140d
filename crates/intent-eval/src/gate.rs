//! Quality gate: the overall score and every class must reach their minimums.

use serde::{Deserialize, Serialize};

use crate::evaluate::Report;

/// Which per-class figure the gate checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ClassMetric {
    /// F1 (default).
    #[default]
    F1,
    /// Recall.
    Recall,
    /// Precision.
    Precision,
}

/// Minimums. The overall score is accuracy (single-label) or micro-F1 (multi-label).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct QualityGate {
    /// Minimum overall score (default 0.90).
    pub min_overall: f64,
    /// Minimum per-class score (default 0.85).
    pub min_per_class: f64,
    /// Per-class figure checked.
    pub class_metric: ClassMetric,
}

impl Default for QualityGate {
    fn default() -> Self {
        QualityGate { min_overall: 0.90, min_per_class: 0.85, class_metric: ClassMetric::F1 }
    }
}

/// Outcome of a gate check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateResult {
    /// True when every minimum is met.
    pub passed: bool,
    /// The overall score.
    pub overall: f64,
    /// Classes under the minimum, with their score, worst first.
    pub failing_classes: Vec<(String, f64)>,
    /// One-line summary.
    pub summary: String,
}

impl QualityGate {
    /// Checks a report. Classes with no gold example are not judged.
    pub fn check(&self, report: &Report) -> GateResult {
        let overall = report.micro_f1.unwrap_or(report.accuracy);
        let mut failing: Vec<(String, f64)> = report
            .per_class
            .iter()
            .filter(|(_, m)| m.support > 0)
            .map(|(l, m)| {
                let v = match self.class_metric {
                    ClassMetric::F1 => m.f1,
                    ClassMetric::Recall => m.recall,
                    ClassMetric::Precision => m.precision,
                };
                (l.clone(), v)
            })
            .filter(|(_, v)| *v < self.min_per_class)
            .collect();
        failing.sort_by(|a, b| a.1.total_cmp(&b.1));
        let passed = overall >= self.min_overall && failing.is_empty();
        let metric = format!("{:?}", self.class_metric).to_lowercase();
        let summary = if passed {
            format!(
                "quality gate passed: overall {overall:.4} ≥ {:.2}, every class {metric} ≥ {:.2}",
                self.min_overall, self.min_per_class
            )
        } else {
            let mut parts = Vec::new();
            if overall < self.min_overall {
                parts.push(format!("overall {overall:.4} < {:.2}", self.min_overall));
            }
            if !failing.is_empty() {
                let names: Vec<String> = failing.iter().map(|(l, v)| format!("{l} ({v:.3})")).collect();
                parts.push(format!(
                    "{} class(es) with {metric} < {:.2}: {}",
                    failing.len(),
                    self.min_per_class,
                    names.join(", ")
                ));
            }
            format!("quality gate FAILED: {}", parts.join("; "))
        };
        GateResult { passed, overall, failing_classes: failing, summary }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evaluate::evaluate_single;

    #[test]
    fn gate_names_failing_classes() {
        let labels: Vec<String> = vec!["a".into(), "b".into()];
        let scores = vec![vec![0.9, 0.1], vec![0.9, 0.1], vec![0.1, 0.9], vec![0.9, 0.1]];
        let (r, _) = evaluate_single(&["a", "a", "b", "b"], &scores, &labels, None);
        let g = QualityGate::default().check(&r);
        assert!(!g.passed);
        assert_eq!(g.failing_classes.iter().map(|f| f.0.as_str()).collect::<Vec<_>>(), vec!["b", "a"]);
        assert!(g.summary.contains("overall 0.7500 < 0.90"), "{}", g.summary);
        let lenient = QualityGate { min_overall: 0.7, min_per_class: 0.6, class_metric: ClassMetric::F1 };
        assert!(lenient.check(&r).passed);
    }
}
