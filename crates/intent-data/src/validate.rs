//! Checks on single records and on whole data sets.

use std::collections::{BTreeMap, BTreeSet};

use crate::formats::interactions::Interactions;
use crate::record::{normalize_text, Dataset, Example};

/// Checks one record: a non-empty text and, for single-label data, exactly one non-empty label.
/// Returns the reason when the record is not usable.
pub fn check_example(ex: &Example, multi_label: bool) -> Result<(), String> {
    if ex.text.trim().is_empty() {
        return Err("empty text".into());
    }
    if ex.text.chars().any(|c| c == '\0') {
        return Err("text contains a NUL character".into());
    }
    if !multi_label && ex.labels.len() != 1 {
        return Err(format!("expected exactly one label, found {}", ex.labels.len()));
    }
    if let Some(l) = ex.labels.iter().find(|l| l.trim().is_empty()) {
        return Err(format!("empty label '{l}'"));
    }
    if let Some(c) = ex.confidence {
        if !(0.0..=1.0).contains(&c) || c.is_nan() {
            return Err(format!("confidence {c} is outside [0, 1]"));
        }
    }
    Ok(())
}

/// How serious a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// Worth a look; training can go on.
    Warning,
    /// Training on this data would be wrong or impossible.
    Error,
}

/// One finding of [`validate_dataset`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// Warning or error.
    pub severity: Severity,
    /// What was found.
    pub message: String,
}

/// Checks a training set: at least two labels, labels with too few examples, duplicate texts
/// (same normalized text) with conflicting labels, and exact duplicates.
pub fn validate_dataset(data: &Dataset, min_per_label: usize) -> Vec<Finding> {
    let mut findings = Vec::new();
    let counts = data.label_counts();
    if data.is_empty() {
        findings.push(Finding { severity: Severity::Error, message: "the data set is empty".into() });
        return findings;
    }
    if counts.len() < 2 {
        findings.push(Finding {
            severity: Severity::Error,
            message: format!(
                "only {} label ({}); a classifier needs at least two",
                counts.len(),
                counts.keys().cloned().collect::<Vec<_>>().join(", ")
            ),
        });
    }
    for (label, n) in &counts {
        if *n < min_per_label {
            findings.push(Finding {
                severity: Severity::Warning,
                message: format!(
                    "label '{label}' has {n} example(s), fewer than the minimum {min_per_label}"
                ),
            });
        }
    }
    let mut by_text: BTreeMap<String, Vec<(usize, BTreeSet<&str>)>> = BTreeMap::new();
    for (i, e) in data.examples.iter().enumerate() {
        by_text
            .entry(normalize_text(&e.text))
            .or_default()
            .push((i, e.labels.iter().map(String::as_str).collect()));
    }
    let mut duplicates = 0usize;
    for (text, rows) in &by_text {
        if rows.len() < 2 {
            continue;
        }
        let distinct: BTreeSet<&BTreeSet<&str>> = rows.iter().map(|(_, l)| l).collect();
        if distinct.len() > 1 {
            let labels: Vec<String> =
                distinct.iter().map(|s| s.iter().copied().collect::<Vec<_>>().join("+")).collect();
            findings.push(Finding {
                severity: Severity::Error,
                message: format!(
                    "conflicting labels for \"{text}\" (records {}): {}",
                    rows.iter().map(|(i, _)| (i + 1).to_string()).collect::<Vec<_>>().join(", "),
                    labels.join(" vs ")
                ),
            });
        } else {
            duplicates += rows.len() - 1;
        }
    }
    if duplicates > 0 {
        findings.push(Finding {
            severity: Severity::Warning,
            message: format!("{duplicates} duplicate text(s) with the same label"),
        });
    }
    findings
}

/// Labels of `split` that `train` does not have (an evaluation or validation set with labels the
/// model never saw).
pub fn unknown_labels(train: &Dataset, split: &Dataset) -> Vec<String> {
    let known: BTreeSet<String> = train.labels().into_iter().collect();
    split.labels().into_iter().filter(|l| !known.contains(l)).collect()
}

/// Checks recommender interactions: not empty; ratings finite and not negative (errors);
/// repeated user–item pairs, users with fewer than `min_per_user` interactions (too few to hold
/// one out and still train on the rest), and timestamps on only some rows (the held-out item is
/// then the last in file order for the users without them) as warnings.
pub fn validate_interactions(data: &Interactions, min_per_user: usize) -> Vec<Finding> {
    let mut findings = Vec::new();
    let rows = &data.interactions;
    if rows.is_empty() {
        findings.push(Finding { severity: Severity::Error, message: "no interaction".into() });
        return findings;
    }
    if let Some((i, r)) =
        rows.iter().enumerate().find(|(_, r)| !r.implicit_rating.is_finite() || r.implicit_rating < 0.0)
    {
        findings.push(Finding {
            severity: Severity::Error,
            message: format!(
                "interactions[{i}] (user '{}', item '{}'): implicit_rating {} is not a finite number ≥ 0",
                r.user_id, r.item_id, r.implicit_rating
            ),
        });
    }
    let mut pairs = BTreeSet::new();
    let repeated = rows.iter().filter(|r| !pairs.insert((r.user_id.as_str(), r.item_id.as_str()))).count();
    if repeated > 0 {
        findings.push(Finding {
            severity: Severity::Warning,
            message: format!("{repeated} repeated user–item pair(s): each pair counts once"),
        });
    }
    let mut per_user: BTreeMap<&str, usize> = BTreeMap::new();
    for r in rows {
        *per_user.entry(r.user_id.as_str()).or_default() += 1;
    }
    let few = per_user.values().filter(|n| **n < min_per_user).count();
    if few > 0 {
        findings.push(Finding {
            severity: Severity::Warning,
            message: format!("{few} of {} users have fewer than {min_per_user} interactions", per_user.len()),
        });
    }
    let timed = rows.iter().filter(|r| r.timestamp.is_some()).count();
    if timed > 0 && timed < rows.len() {
        findings.push(Finding {
            severity: Severity::Warning,
            message: format!(
                "{} of {} interactions have no timestamp: for their users the held-out item is the last \
                 in file order",
                rows.len() - timed,
                rows.len()
            ),
        });
    }
    findings
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_label_and_conflicts_are_errors() {
        let d = Dataset::new(vec![Example::new("hi", "greet"), Example::new("Hi!", "greet")]);
        let f = validate_dataset(&d, 1);
        assert!(f.iter().any(|f| f.severity == Severity::Error && f.message.contains("only 1 label")));
        assert!(f.iter().any(|f| f.message.contains("1 duplicate")));
        let d = Dataset::new(vec![
            Example::new("hi", "greet"),
            Example::new("HI", "bye"),
            Example::new("x", "bye"),
        ]);
        let f = validate_dataset(&d, 1);
        assert!(f.iter().any(|f| f.severity == Severity::Error
            && f.message.contains("conflicting labels for \"hi\" (records 1, 2)")));
    }

    #[test]
    fn check_example_reasons() {
        assert_eq!(check_example(&Example::new("  ", "a"), false).unwrap_err(), "empty text");
        assert!(check_example(&Example::multi("x", vec![]), true).is_ok());
        assert!(check_example(&Example::multi("x", vec![]), false).unwrap_err().contains("exactly one"));
        let mut e = Example::new("x", "a");
        e.confidence = Some(1.5);
        assert!(check_example(&e, false).unwrap_err().contains("outside"));
    }

    #[test]
    fn unknown_labels_are_listed() {
        let tr = Dataset::new(vec![Example::new("a", "x")]);
        let te = Dataset::new(vec![Example::new("b", "x"), Example::new("c", "z")]);
        assert_eq!(unknown_labels(&tr, &te), vec!["z"]);
    }
}
