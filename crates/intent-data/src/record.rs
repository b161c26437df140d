//! The in-memory form of labeled data: [`Example`] and [`Dataset`].

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use unicode_normalization::UnicodeNormalization;

/// One labeled utterance. Single-label data has exactly one label; multi-label data may have
/// any number (NLU++ has examples with none).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Example {
    /// The utterance.
    pub text: String,
    /// Its labels (one for single-label data).
    pub labels: Vec<String>,
    /// Annotator or model confidence, when the source gives one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confidence: Option<f32>,
    /// Where the example came from (file, import, augmentation, labeling queue…).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// When it was labeled, as given by the source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<String>,
}

impl Example {
    /// A single-label example.
    pub fn new(text: impl Into<String>, label: impl Into<String>) -> Self {
        Example {
            text: text.into(),
            labels: vec![label.into()],
            confidence: None,
            source: None,
            timestamp: None,
        }
    }
    /// A multi-label example.
    pub fn multi(text: impl Into<String>, labels: Vec<String>) -> Self {
        Example { text: text.into(), labels, confidence: None, source: None, timestamp: None }
    }
    /// The first label (the label, for single-label data); `None` when the example has none.
    pub fn label(&self) -> Option<&str> {
        self.labels.first().map(String::as_str)
    }
    /// The same example with `source` set.
    pub fn with_source(mut self, source: impl Into<String>) -> Self {
        self.source = Some(source.into());
        self
    }
}

/// A list of examples plus whether they are multi-label.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Dataset {
    /// The examples, in file order.
    pub examples: Vec<Example>,
    /// True when examples may carry several labels (or none).
    pub multi_label: bool,
}

impl Dataset {
    /// A single-label data set.
    pub fn new(examples: Vec<Example>) -> Self {
        let multi_label = examples.iter().any(|e| e.labels.len() != 1);
        Dataset { examples, multi_label }
    }
    /// Number of examples.
    pub fn len(&self) -> usize {
        self.examples.len()
    }
    /// True when there is no example.
    pub fn is_empty(&self) -> bool {
        self.examples.is_empty()
    }
    /// The sorted set of labels used.
    pub fn labels(&self) -> Vec<String> {
        let set: BTreeSet<&str> =
            self.examples.iter().flat_map(|e| e.labels.iter().map(String::as_str)).collect();
        set.into_iter().map(str::to_string).collect()
    }
    /// Number of examples per label (an example counts once for each of its labels).
    pub fn label_counts(&self) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for e in &self.examples {
            for l in &e.labels {
                *counts.entry(l.clone()).or_insert(0) += 1;
            }
        }
        counts
    }
    /// The texts, in order.
    pub fn texts(&self) -> Vec<&str> {
        self.examples.iter().map(|e| e.text.as_str()).collect()
    }
    /// Examples whose labels do not include `label` (e.g. drop `oos`). Multi-label examples lose
    /// that label instead of being dropped.
    pub fn without_label(&self, label: &str) -> Dataset {
        let examples = if self.multi_label {
            self.examples
                .iter()
                .map(|e| Example {
                    labels: e.labels.iter().filter(|l| *l != label).cloned().collect(),
                    ..e.clone()
                })
                .collect()
        } else {
            self.examples.iter().filter(|e| e.label() != Some(label)).cloned().collect()
        };
        Dataset { examples, multi_label: self.multi_label }
    }
}

/// The normalized form used to compare texts (merge de-duplication, augmentation uniqueness,
/// conflict detection): Unicode NFKC, lowercase, punctuation at the ends removed, runs of
/// whitespace collapsed to one space.
pub fn normalize_text(text: &str) -> String {
    let lowered: String = text.nfkc().collect::<String>().to_lowercase();
    let mut out = String::with_capacity(lowered.len());
    for word in lowered.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    out.trim_matches(|c: char| c.is_ascii_punctuation() || c.is_whitespace()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_collapses_case_space_and_end_punctuation() {
        assert_eq!(normalize_text("  Where IS my\torder?? "), "where is my order");
        assert_eq!(normalize_text("ﬁle"), "file"); // NFKC ligature
        assert_eq!(normalize_text("don't stop."), "don't stop");
    }

    #[test]
    fn labels_and_counts() {
        let d = Dataset::new(vec![Example::new("a", "x"), Example::new("b", "y"), Example::new("c", "x")]);
        assert_eq!(d.labels(), vec!["x", "y"]);
        assert_eq!(d.label_counts()["x"], 2);
        assert!(!d.multi_label);
        assert_eq!(d.without_label("x").len(), 1);
    }
}
