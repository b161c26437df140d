//! Data set statistics: per-label counts, text length distribution, warnings.

use serde::Serialize;

use crate::record::Dataset;
use crate::text::tokenize;

/// Length distribution (in tokens).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LengthStats {
    /// Shortest.
    pub min: usize,
    /// Median.
    pub median: usize,
    /// Mean.
    pub mean: f64,
    /// 95th percentile.
    pub p95: usize,
    /// Longest.
    pub max: usize,
}

/// Statistics of a data set.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Stats {
    /// Examples.
    pub examples: usize,
    /// Distinct labels.
    pub labels: usize,
    /// Multi-label data.
    pub multi_label: bool,
    /// Examples per label, sorted by label.
    pub per_label: Vec<(String, usize)>,
    /// Tokens per text.
    pub length: Option<LengthStats>,
    /// Labels under the minimum, and similar remarks.
    pub warnings: Vec<String>,
}

/// Computes [`Stats`]; labels with fewer than `min_per_label` examples get a warning.
pub fn stats(data: &Dataset, min_per_label: usize) -> Stats {
    let mut lengths: Vec<usize> = data.examples.iter().map(|e| tokenize(&e.text).len()).collect();
    lengths.sort_unstable();
    let length = (!lengths.is_empty()).then(|| LengthStats {
        min: lengths[0],
        median: lengths[lengths.len() / 2],
        mean: lengths.iter().sum::<usize>() as f64 / lengths.len() as f64,
        p95: lengths[((lengths.len() - 1) as f64 * 0.95).round() as usize],
        max: *lengths.last().expect("non-empty"),
    });
    let per_label: Vec<(String, usize)> = data.label_counts().into_iter().collect();
    let mut warnings: Vec<String> = per_label
        .iter()
        .filter(|(_, n)| *n < min_per_label)
        .map(|(l, n)| format!("label '{l}' has {n} example(s), below the minimum of {min_per_label}"))
        .collect();
    if data.multi_label {
        let none = data.examples.iter().filter(|e| e.labels.is_empty()).count();
        if none > 0 {
            warnings.push(format!("{none} example(s) have no label"));
        }
    }
    Stats {
        examples: data.len(),
        labels: per_label.len(),
        multi_label: data.multi_label,
        per_label,
        length,
        warnings,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Example;

    #[test]
    fn counts_lengths_and_warnings() {
        let d =
            Dataset::new(vec![Example::new("a b c", "x"), Example::new("a", "x"), Example::new("a b", "y")]);
        let s = stats(&d, 2);
        assert_eq!(s.per_label, vec![("x".to_string(), 2), ("y".to_string(), 1)]);
        let l = s.length.unwrap();
        assert_eq!((l.min, l.median, l.max), (1, 2, 3));
        assert!((l.mean - 2.0).abs() < 1e-12);
        assert_eq!(s.warnings, vec!["label 'y' has 1 example(s), below the minimum of 2"]);
    }
}
