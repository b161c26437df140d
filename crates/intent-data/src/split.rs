//! Stratified train/validation(/test) splits and merging with de-duplication.

use std::collections::{BTreeMap, HashMap};

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::error::{DataError, Result};
use crate::record::{normalize_text, Dataset, Example};

/// Settings of [`stratified_split`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SplitConfig {
    /// Share of each label that goes to training, in (0, 1].
    pub train_fraction: f64,
    /// Share of each label held out for testing (0 for no test set).
    pub test_fraction: f64,
    /// Each label gets at least this many validation examples.
    pub min_val_per_label: usize,
    /// Seed of the shuffle.
    pub seed: u64,
}

/// The parts of a split.
#[derive(Debug, Clone, PartialEq)]
pub struct Split {
    /// Training part.
    pub train: Dataset,
    /// Validation part.
    pub val: Dataset,
    /// Test part (empty when not asked for).
    pub test: Dataset,
}

/// Splits per label (for multi-label data, per each example's rarest label), so that every label
/// keeps its share in each part. Per label of n examples: test = round(n·test_fraction),
/// val = max(min_val_per_label, round(n·(1 − train_fraction − test_fraction))), the rest train
/// (at least one). Deterministic for a seed; the order inside each part follows the input.
pub fn stratified_split(data: &Dataset, config: SplitConfig) -> Result<Split> {
    let SplitConfig { train_fraction, test_fraction, min_val_per_label, seed } = config;
    if !(train_fraction > 0.0 && train_fraction <= 1.0) {
        return Err(DataError::Option {
            name: "--train-fraction",
            message: format!("{train_fraction} is not in (0, 1]"),
        });
    }
    if !(0.0..1.0).contains(&test_fraction) || train_fraction + test_fraction > 1.0 + 1e-9 {
        return Err(DataError::Option {
            name: "--test-fraction",
            message: format!("{test_fraction} must be in [0, 1) with train + test ≤ 1"),
        });
    }
    // Single-label: one group per label. Multi-label: one group per example's rarest label
    // (label sets are too many and too small to stratify on), "" for examples without a label.
    let counts = data.label_counts();
    let key = |labels: &[String]| -> String {
        if !data.multi_label {
            return labels.join("+");
        }
        labels.iter().min_by_key(|l| (counts[*l], (*l).clone())).cloned().unwrap_or_default()
    };
    let mut groups: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, e) in data.examples.iter().enumerate() {
        groups.entry(key(&e.labels)).or_default().push(i);
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut part = vec![0u8; data.len()]; // 0 train, 1 val, 2 test
    for (label, idx) in &mut groups {
        let n = idx.len();
        let n_test = (n as f64 * test_fraction).round() as usize;
        let n_val =
            ((n as f64 * (1.0 - train_fraction - test_fraction)).round() as usize).max(min_val_per_label);
        if n_test.saturating_add(n_val) >= n && data.multi_label {
            tracing::warn!("label '{label}': {n} example(s) as rarest label, all kept for training");
            continue;
        }
        if n_test.saturating_add(n_val) >= n {
            return Err(DataError::Dataset(format!(
                "label '{label}' has {n} example(s): too few for {n_val} validation + {n_test} test + \
                 at least 1 training (add examples, augment, or lower --min-val-per-label)"
            )));
        }
        idx.shuffle(&mut rng);
        for &i in &idx[..n_val] {
            part[i] = 1;
        }
        for &i in &idx[n_val..n_val + n_test] {
            part[i] = 2;
        }
    }
    let take = |p: u8| Dataset {
        examples: data.examples.iter().zip(&part).filter(|(_, q)| **q == p).map(|(e, _)| e.clone()).collect(),
        multi_label: data.multi_label,
    };
    Ok(Split { train: take(0), val: take(1), test: take(2) })
}

/// What to do when two records have the same normalized text but different labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ConflictPolicy {
    /// Keep the record seen first (earlier file wins; originals preserved). The default.
    #[default]
    KeepFirst,
    /// Keep the record seen last (later file corrects earlier labels).
    KeepLast,
}

/// A conflict found while merging.
#[derive(Debug, Clone, PartialEq)]
pub struct Conflict {
    /// The normalized text.
    pub text: String,
    /// Labels of the record kept.
    pub kept: Vec<String>,
    /// Labels of the record dropped.
    pub dropped: Vec<String>,
}

/// Result of [`merge`].
#[derive(Debug, Clone)]
pub struct Merged {
    /// The merged data, in first-seen order.
    pub data: Dataset,
    /// Exact duplicates (same normalized text, same labels) dropped.
    pub duplicates: usize,
    /// Conflicting records, resolved by the policy.
    pub conflicts: Vec<Conflict>,
}

/// Merges data sets in order, de-duplicating by [`normalize_text`]. Same text with the same
/// labels: the first record is kept. Same text with other labels: resolved by `policy` and
/// reported. The position of a text is where it was first seen.
pub fn merge(parts: &[Dataset], policy: ConflictPolicy) -> Merged {
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut out: Vec<Example> = Vec::new();
    let mut duplicates = 0;
    let mut conflicts = Vec::new();
    for e in parts.iter().flat_map(|d| &d.examples) {
        let key = normalize_text(&e.text);
        match index.get(&key) {
            None => {
                index.insert(key, out.len());
                out.push(e.clone());
            }
            Some(&i) => {
                let mut a = out[i].labels.clone();
                let mut b = e.labels.clone();
                a.sort();
                b.sort();
                if a == b {
                    duplicates += 1;
                } else if policy == ConflictPolicy::KeepLast {
                    conflicts.push(Conflict {
                        text: key,
                        kept: e.labels.clone(),
                        dropped: out[i].labels.clone(),
                    });
                    out[i] = e.clone();
                } else {
                    conflicts.push(Conflict {
                        text: key,
                        kept: out[i].labels.clone(),
                        dropped: e.labels.clone(),
                    });
                }
            }
        }
    }
    let multi_label = parts.iter().any(|d| d.multi_label);
    Merged { data: Dataset { examples: out, multi_label }, duplicates, conflicts }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data() -> Dataset {
        let mut v = Vec::new();
        for (label, n) in [("a", 10), ("b", 20), ("c", 5)] {
            for i in 0..n {
                v.push(Example::new(format!("{label} text {i}"), label));
            }
        }
        Dataset::new(v)
    }

    #[test]
    fn split_is_stratified_deterministic_and_complete() {
        let cfg = SplitConfig { train_fraction: 0.8, test_fraction: 0.0, min_val_per_label: 2, seed: 3 };
        let s = stratified_split(&data(), cfg).unwrap();
        let vc = s.val.label_counts();
        assert_eq!((vc["a"], vc["b"], vc["c"]), (2, 4, 2)); // round(10·.2)=2, round(20·.2)=4, max(2, 1)=2
        assert_eq!(s.train.len() + s.val.len(), 35);
        assert_eq!(s, stratified_split(&data(), cfg).unwrap());
        let other = stratified_split(&data(), SplitConfig { seed: 4, ..cfg }).unwrap();
        assert_ne!(s.val, other.val);
        for e in &s.val.examples {
            assert!(!s.train.examples.contains(e));
        }
    }

    #[test]
    fn split_with_test_and_errors() {
        let cfg = SplitConfig { train_fraction: 0.6, test_fraction: 0.2, min_val_per_label: 1, seed: 0 };
        let s = stratified_split(&data(), cfg).unwrap();
        assert_eq!(s.test.label_counts()["b"], 4);
        let bad = SplitConfig { min_val_per_label: 5, ..cfg };
        let err = stratified_split(&data(), bad).unwrap_err().to_string();
        assert!(err.contains("label 'c' has 5 example(s)"), "{err}");
        assert!(stratified_split(&data(), SplitConfig { train_fraction: 1.5, ..cfg }).is_err());
    }

    #[test]
    fn multi_label_split_stratifies_by_rarest_label() {
        let mut v = Vec::new();
        for i in 0..20 {
            v.push(Example::multi(format!("card {i}"), vec!["card".into()]));
            v.push(Example::multi(format!("card lost {i}"), vec!["card".into(), format!("rare{}", i % 10)]));
        }
        v.push(Example::multi("nothing", vec![]));
        let data = Dataset { examples: v, multi_label: true };
        let cfg = SplitConfig { train_fraction: 0.5, test_fraction: 0.0, min_val_per_label: 1, seed: 0 };
        let s = stratified_split(&data, cfg).unwrap();
        // Each rare label has 2 examples: one each side. "card"-only: 10 / 10. The lone
        // unlabeled example is too few to split and stays in training.
        assert_eq!(s.val.len(), 20);
        assert_eq!(s.train.len(), 21);
        for r in 0..10 {
            let l = format!("rare{r}");
            assert_eq!(s.val.examples.iter().filter(|e| e.labels.contains(&l)).count(), 1);
        }
    }

    #[test]
    fn merge_dedupes_and_reports_conflicts() {
        let a = Dataset::new(vec![Example::new("Hello!", "greet"), Example::new("bye", "bye")]);
        let b = Dataset::new(vec![
            Example::new("hello", "greet"),
            Example::new("BYE", "greet"),
            Example::new("new", "x"),
        ]);
        let m = merge(&[a.clone(), b.clone()], ConflictPolicy::KeepFirst);
        assert_eq!(m.data.len(), 3);
        assert_eq!(m.duplicates, 1);
        assert_eq!(m.conflicts.len(), 1);
        assert_eq!(m.data.examples[1].labels, vec!["bye"]);
        let m = merge(&[a, b], ConflictPolicy::KeepLast);
        assert_eq!(m.data.examples[1].labels, vec!["greet"]);
        assert_eq!(m.data.examples[1].text, "BYE");
    }
}
