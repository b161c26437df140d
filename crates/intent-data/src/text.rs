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

/// scikit-learn's default token pattern `(?u)\b\w\w+\b`: runs of two or more word characters
/// (so "I", "a" and the "s" of "where's" are dropped), lowercased first as sklearn does.
/// Python's `\w` is letters, numbers and `_` (`str.isalnum()`), without the combining marks
/// that Rust's `\w` adds, so the class is spelled out: `[\p{L}\p{N}_]{2,}` finds the same
/// maximal runs.
pub fn tokenize_sklearn(text: &str) -> Vec<String> {
    static PATTERN: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let re = PATTERN.get_or_init(|| regex::Regex::new(r"[\p{L}\p{N}_]{2,}").expect("valid pattern"));
    let lower = text.to_lowercase();
    re.find_iter(&lower).map(|m| m.as_str().to_string()).collect()
}

/// Which words a text is split into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum TokenPattern {
    /// [`tokenize`]: Unicode word boundaries, every word kept.
    #[default]
    UnicodeWords,
    /// [`tokenize_sklearn`]: scikit-learn's `\b\w\w+\b`, words of two or more characters.
    Sklearn,
}

impl TokenPattern {
    /// Splits `text` into lowercase tokens.
    pub fn tokenize(self, text: &str) -> Vec<String> {
        match self {
            TokenPattern::UnicodeWords => tokenize(text),
            TokenPattern::Sklearn => tokenize_sklearn(text),
        }
    }
}

/// What the features are made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Analyzer {
    /// Word n-grams `ngram_min..=ngram_max`.
    #[default]
    Word,
    /// Character n-grams inside word boundaries, padded with a space, as scikit-learn's
    /// `analyzer="char_wb"`: robust to typos and inflections.
    CharWb,
}

/// Character n-grams of each whitespace-separated word padded with one space on each side, as
/// scikit-learn's `char_wb` analyzer (a word shorter than `n` gives itself once).
pub fn char_wb_ngrams(text: &str, n_min: usize, n_max: usize) -> Vec<String> {
    let lower = text.to_lowercase();
    let mut out = Vec::new();
    for word in lower.split_whitespace() {
        let padded: Vec<char> =
            std::iter::once(' ').chain(word.chars()).chain(std::iter::once(' ')).collect();
        for n in n_min.max(1)..=n_max {
            if padded.len() <= n {
                out.push(padded.iter().collect());
                break;
            }
            out.extend(padded.windows(n).map(|w| w.iter().collect::<String>()));
        }
    }
    out
}

/// Word n-grams `1..=n_max` of a token list (n-grams joined by a space).
pub fn ngrams(tokens: &[String], n_max: usize) -> Vec<String> {
    ngram_range(tokens, 1, n_max)
}

/// Word n-grams `n_min..=n_max` of a token list (n-grams joined by a space).
pub fn ngram_range(tokens: &[String], n_min: usize, n_max: usize) -> Vec<String> {
    let n_min = n_min.max(1);
    let mut out = if n_min == 1 { tokens.to_vec() } else { Vec::new() };
    for n in n_min.max(2)..=n_max.max(1) {
        out.extend(tokens.windows(n).map(|w| w.join(" ")));
    }
    out
}

/// How term occurrences become feature values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
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
            other => Err(DataError::Option {
                name: "--features",
                message: format!("'{other}': expected binary, count or tfidf"),
            }),
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
    /// How words are found (word analyzer).
    #[serde(default)]
    pub tokenizer: TokenPattern,
    /// Word or character n-grams.
    #[serde(default)]
    pub analyzer: Analyzer,
    /// Smallest n-gram (1 for words; typically 2 or 3 for characters).
    #[serde(default = "one")]
    pub ngram_min: usize,
}

fn one() -> usize {
    1
}

impl Default for VectorizerConfig {
    fn default() -> Self {
        VectorizerConfig {
            weighting: Weighting::Binary,
            ngram_max: 1,
            min_count: 1,
            max_size: None,
            sublinear_tf: false,
            tokenizer: TokenPattern::UnicodeWords,
            analyzer: Analyzer::Word,
            ngram_min: 1,
        }
    }
}

impl VectorizerConfig {
    /// scikit-learn's `TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)`: word 1–2 grams
    /// with sklearn's token pattern, sublinear TF, smoothed IDF, L2 normalisation.
    pub fn sklearn_tfidf() -> Self {
        VectorizerConfig {
            weighting: Weighting::Tfidf,
            ngram_max: 2,
            sublinear_tf: true,
            tokenizer: TokenPattern::Sklearn,
            ..Default::default()
        }
    }

    /// The terms (features before weighting) of a text, with repeats.
    pub fn terms(&self, text: &str) -> Vec<String> {
        match self.analyzer {
            Analyzer::Word => ngram_range(&self.tokenizer.tokenize(text), self.ngram_min, self.ngram_max),
            Analyzer::CharWb => char_wb_ngrams(text, self.ngram_min, self.ngram_max),
        }
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
        if config.ngram_max == 0 || config.ngram_min > config.ngram_max {
            return Err(DataError::Option {
                name: "ngram range",
                message: format!("{}-{}: expected 1 <= min <= max", config.ngram_min, config.ngram_max),
            });
        }
        let mut df: HashMap<String, usize> = HashMap::new();
        for t in texts {
            let mut terms = config.terms(t.as_ref());
            terms.sort_unstable();
            terms.dedup();
            for term in terms {
                *df.entry(term).or_insert(0) += 1;
            }
        }
        let mut terms: Vec<(String, usize)> =
            df.into_iter().filter(|(_, n)| *n >= config.min_count.max(1)).collect();
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
        let mut counts: Vec<(u32, f32)> =
            self.config.terms(text).iter().filter_map(|t| self.index.get(t).map(|&i| (i, 1.0))).collect();
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
        assert_eq!(
            tokenize("Where's my CARD? Où est-il, 2 days!"),
            vec!["where's", "my", "card", "où", "est", "il", "2", "days"]
        );
        assert_eq!(ngrams(&tokenize("a b c"), 2), vec!["a", "b", "c", "a b", "b c"]);
    }

    #[test]
    fn sklearn_token_pattern_and_char_wb() {
        // As `TfidfVectorizer().build_analyzer()` and `TfidfVectorizer(analyzer="char_wb",
        // ngram_range=(2, 3)).build_analyzer()` give for these strings.
        assert_eq!(
            tokenize_sklearn("Where's my CARD? I got 2 of them_now"),
            vec!["where", "my", "card", "got", "of", "them_now"]
        );
        // A combining accent (NFD) is not a word character in Python: "cafe\u{301}" → "cafe";
        // a superscript digit is: "x²" is one token.
        assert_eq!(tokenize_sklearn("cafe\u{301} x\u{b2}"), vec!["cafe", "x\u{b2}"]);
        assert_eq!(
            char_wb_ngrams("Hi ab", 2, 3),
            vec![" h", "hi", "i ", " hi", "hi ", " a", "ab", "b ", " ab", "ab "]
        );
        assert_eq!(char_wb_ngrams("a", 3, 5), vec![" a "]);
        let cfg = VectorizerConfig { ngram_min: 2, ngram_max: 2, ..Default::default() };
        assert_eq!(cfg.terms("a b c"), vec!["a b", "b c"]);
        assert!(Vectorizer::fit(
            &["a"],
            VectorizerConfig { ngram_min: 3, ngram_max: 2, ..Default::default() }
        )
        .is_err());
    }

    #[test]
    fn vocabulary_order_min_count_and_max_size() {
        let texts = ["b a", "a c", "a b", "d"];
        let v = Vectorizer::fit(&texts, VectorizerConfig { min_count: 2, ..Default::default() }).unwrap();
        assert_eq!(v.terms, vec!["a", "b"]); // a: 3 docs, b: 2 docs; c and d dropped
        let v =
            Vectorizer::fit(&texts, VectorizerConfig { max_size: Some(1), ..Default::default() }).unwrap();
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
