//! Text features: a Unicode-aware tokenizer, a vocabulary with min count and max size, and
//! binary / count / TF-IDF sparse vectors.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use unicode_segmentation::UnicodeSegmentation;

use crate::error::{DataError, Result};

/// Splits text into lowercase words by the Unicode word-boundary rules (UAX #29): letters of
/// any script, digits and in-word apostrophes are kept, punctuation and spaces dropped.
pub fn tokenize(text: &str) -> Vec<String> {
    text.unicode_words().map(str::to_lowercase).collect()
}

/// Word n-grams `1..=n_max` of a token list (n-grams joined by a space).
pub fn ngrams(tokens: &[String], n_max: usize) -> Vec<String> {
    let mut out = tokens.to_vec();
    for n in 2..=n_max.max(1) {
        out.extend(tokens.windows(n).map(|w| w.join(" ")));
    }
    out
}

/// How term occurrences become feature values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Weighting {
    /// 1 if the term occurs.
    #[default]
    Binary,
    /// Number of occurrences.
    Count,
    /// Term frequency × smoothed inverse document frequency (as scikit-learn's
    /// `TfidfVectorizer(smooth_idf=True)`), L2-normalised.
    Tfidf,
}

impl std::str::FromStr for Weighting {
    type Err = DataError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "binary" => Ok(Weighting::Binary),
            "count" => Ok(Weighting::Count),
            "tfidf" => Ok(Weighting::Tfidf),
            other => Err(DataError::Option { name: "--features", message: format!("'{other}': expected binary, count or tfidf") }),
        }
    }
}

/// Settings of the vectorizer; stored in a model's `config.json` as its preprocessing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VectorizerConfig {
    /// Feature weighting.
    pub weighting: Weighting,
    /// Largest word n-gram (1 = unigrams).
    pub ngram_max: usize,
    /// Terms seen in fewer training texts are dropped.
    pub min_count: usize,
    /// Keep at most this many terms (most frequent first); `None` keeps all.
    pub max_size: Option<usize>,
    /// Use `1 + ln(tf)` instead of `tf` (TF-IDF and count weighting).
    pub sublinear_tf: bool,
}

impl Default for VectorizerConfig {
    fn default() -> Self {
        VectorizerConfig { weighting: Weighting::Binary, ngram_max: 1, min_count: 1, max_size: None, sublinear_tf: false }
    }
}

/// A sparse row: sorted feature indices and their values.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SparseVec {
    /// Feature indices, ascending, unique.
    pub indices: Vec<u32>,
    /// Values, one per index.
    pub values: Vec<f32>,
}

/// A fitted vocabulary plus weighting: text in, sparse vector out.
#[derive(Debug, Clone, PartialEq)]
pub struct Vectorizer {
    /// The settings it was fitted with.
    pub config: VectorizerConfig,
    /// Terms, by feature index.
    pub terms: Vec<String>,
    index: HashMap<String, u32>,
    /// Inverse document frequencies (TF-IDF only).
    pub idf: Option<Vec<f32>>,
}

impl Vectorizer {
    /// Builds the vocabulary from training texts. Terms are ordered by document frequency
    /// (descending), ties broken alphabetically, so the result does not depend on hash order.
    pub fn fit<S: AsRef<str>>(texts: &[S], config: VectorizerConfig) -> Result<Self> {
        if config.ngram_max == 0 {
            return Err(DataError::Option { name: "ngram_max", message: "must be at least 1".into() });
        }
        let mut df: HashMap<String, usize> = HashMap::new();
        for t in texts {
            let mut terms = ngrams(&tokenize(t.as_ref()), config.ngram_max);
            terms.sort_unstable();
            terms.dedup();
            for term in terms {
                *df.entry(term).or_insert(0) += 1;
            }
        }
        let mut terms: Vec<(String, usize)> = df.into_iter().filter(|(_, n)| *n >= config.min_count.max(1)).collect();
        terms.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        if let Some(max) = config.max_size {
            terms.truncate(max);
        }
        if terms.is_empty() {
            return Err(DataError::Dataset(format!(
                "empty vocabulary: no term occurs in at least {} training text(s)",
                config.min_count
            )));
        }
        let n_docs = texts.len() as f32;
        let idf = (config.weighting == Weighting::Tfidf)
            .then(|| terms.iter().map(|(_, d)| ((1.0 + n_docs) / (1.0 + *d as f32)).ln() + 1.0).collect());
        let terms: Vec<String> = terms.into_iter().map(|(t, _)| t).collect();
        Ok(Self::from_parts(config, terms, idf))
    }

    /// Rebuilds a vectorizer from saved terms (and IDF values).
    pub fn from_parts(config: VectorizerConfig, terms: Vec<String>, idf: Option<Vec<f32>>) -> Self {
        let index = terms.iter().enumerate().map(|(i, t)| (t.clone(), i as u32)).collect();
        Vectorizer { config, terms, index, idf }
    }

    /// Number of features.
    pub fn dim(&self) -> usize {
        self.terms.len()
    }

    /// Feature index of a term.
    pub fn index_of(&self, term: &str) -> Option<u32> {
        self.index.get(term).copied()
    }

    /// The sparse feature vector of a text. Unknown terms are ignored.
    pub fn transform(&self, text: &str) -> SparseVec {
        let mut counts: Vec<(u32, f32)> = ngrams(&tokenize(text), self.config.ngram_max)
            .iter()
            .filter_map(|t| self.index.get(t).map(|&i| (i, 1.0)))
            .collect();
        counts.sort_unstable_by_key(|&(i, _)| i);
        let mut row = SparseVec::default();
        for (i, c) in counts {
            if row.indices.last() == Some(&i) {
                *row.values.last_mut().expect("same length") += c;
            } else {
                row.indices.push(i);
                row.values.push(c);
            }
        }
        match self.config.weighting {
            Weighting::Binary => row.values.iter_mut().for_each(|v| *v = 1.0),
            Weighting::Count | Weighting::Tfidf => {
                if self.config.sublinear_tf {
                    row.values.iter_mut().for_each(|v| *v = 1.0 + v.ln());
                }
                if let Some(idf) = &self.idf {
                    row.indices.iter().zip(row.values.iter_mut()).for_each(|(&i, v)| *v *= idf[i as usize]);
                    let norm = row.values.iter().map(|v| v * v).sum::<f32>().sqrt();
                    if norm > 0.0 {
                        row.values.iter_mut().for_each(|v| *v /= norm);
                    }
                }
            }
        }
        row
    }

    /// Writes rows into a dense row-major `[rows.len(), dim]` buffer.
    pub fn densify(&self, rows: &[&SparseVec]) -> Vec<f32> {
        let dim = self.dim();
        let mut out = vec![0.0f32; rows.len() * dim];
        for (r, row) in rows.iter().enumerate() {
            for (&i, &v) in row.indices.iter().zip(&row.values) {
                out[r * dim + i as usize] = v;
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokenizer_is_unicode_aware() {
        assert_eq!(tokenize("Where's my CARD? Où est-il, 2 days!"), vec!["where's", "my", "card", "où", "est", "il", "2", "days"]);
        assert_eq!(ngrams(&tokenize("a b c"), 2), vec!["a", "b", "c", "a b", "b c"]);
    }

    #[test]
    fn vocabulary_order_min_count_and_max_size() {
        let texts = ["b a", "a c", "a b", "d"];
        let v = Vectorizer::fit(&texts, VectorizerConfig { min_count: 2, ..Default::default() }).unwrap();
        assert_eq!(v.terms, vec!["a", "b"]); // a: 3 docs, b: 2 docs; c and d dropped
        let v = Vectorizer::fit(&texts, VectorizerConfig { max_size: Some(1), ..Default::default() }).unwrap();
        assert_eq!(v.terms, vec!["a"]);
        assert!(Vectorizer::fit(&texts, VectorizerConfig { min_count: 9, ..Default::default() }).is_err());
    }

    #[test]
    fn binary_count_and_tfidf_values() {
        let texts = ["a a b", "a c"];
        let cfg = |w| VectorizerConfig { weighting: w, ..Default::default() };
        let v = Vectorizer::fit(&texts, cfg(Weighting::Binary)).unwrap();
        assert_eq!(v.transform("a a zzz b"), SparseVec { indices: vec![0, 1], values: vec![1.0, 1.0] });
        let v = Vectorizer::fit(&texts, cfg(Weighting::Count)).unwrap();
        assert_eq!(v.transform("a a b").values, vec![2.0, 1.0]);
        // TF-IDF by hand: n=2; df(a)=2 -> idf=ln(3/3)+1=1; df(b)=1 -> idf=ln(3/2)+1=1.405465
        let v = Vectorizer::fit(&texts, cfg(Weighting::Tfidf)).unwrap();
        let r = v.transform("a a b");
        let (a, b) = (2.0f32 * 1.0, 1.0f32 * 1.405_465);
        let n = (a * a + b * b).sqrt();
        assert!((r.values[0] - a / n).abs() < 1e-6 && (r.values[1] - b / n).abs() < 1e-6, "{r:?}");
    }
}
