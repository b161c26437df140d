//! [`Classifier`]: any model folder this toolkit writes (MLP, SVM, zero-shot, fine-tuned BERT),
//! loaded by kind, with one prediction interface ([`Predictor`]).

use std::path::Path;

use intent_models::bert::classifier::has_classification_head;
use intent_models::bert::BertClassifier;
use intent_models::folder::FolderConfig;
use intent_models::zero_shot::ZeroShot;
use intent_models::{BowMlp, CpuBackend, ModelConfig, ModelError, ModelKind, SvmModel};
use serde::{Deserialize, Serialize};

use crate::{Predictor, ServeError};

/// A label with its score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LabelScore {
    /// The label.
    pub label: String,
    /// Its probability.
    pub score: f32,
}

/// A prediction for one text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prediction {
    /// The predicted label (the out-of-scope label when the confidence is under the model's
    /// threshold).
    pub label: String,
    /// Probability of the top label.
    pub confidence: f32,
    /// The `k` most probable labels, best first.
    pub top_k: Vec<LabelScore>,
    /// Multi-label models: every label whose probability reaches its threshold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<Vec<String>>,
}

/// A loaded model of any supported kind.
#[derive(Debug)]
pub enum Classifier {
    /// Bag-of-words MLP.
    Mlp(BowMlp<CpuBackend>),
    /// Linear SVM or kernel SVC with calibrated probabilities.
    Svm(SvmModel),
    /// Sentence-embedding model with label descriptions (cosine similarity).
    ZeroShot(ZeroShot<CpuBackend>),
    /// Fine-tuned BERT with a sequence-classification head (Hugging Face layout).
    Bert(BertClassifier<CpuBackend>),
}

impl Classifier {
    /// Loads a model folder, dispatching on `kind` in its `config.json`. A Hugging Face BERT
    /// folder (`model_type` instead of `kind`) with a classification head (`classifier.weight`,
    /// `id2label`) is a fine-tuned classifier; one without a head is a sentence-embedding model,
    /// which needs a label set first (`intent zero-shot`), and the error says so.
    ///
    /// `ROOT/NAME@ALIAS` (a registry alias, such as `models/faq@current`) loads the version the
    /// alias points at; `hf://ORG/NAME[@REVISION]` a folder of the Hugging Face Hub.
    pub fn load(dir: &Path) -> Result<Self, ServeError> {
        if !dir.is_dir() {
            let spec = crate::ModelSpec::parse(&dir.to_string_lossy());
            if !matches!(spec, crate::ModelSpec::Dir(_)) {
                return Self::load(&spec.resolve()?.path);
            }
        }
        let config_path = || dir.join(intent_models::folder::CONFIG_FILE);
        let config = match FolderConfig::read(dir)? {
            FolderConfig::Classifier(config) => *config,
            FolderConfig::HuggingFace { model_type: Some(t) } => {
                if has_classification_head(dir) {
                    return Ok(Classifier::Bert(BertClassifier::load(dir, None, &Default::default())?));
                }
                // A Hugging Face folder rather than an intent model folder.
                return Err(ServeError::Model(ModelError::invalid(
                    config_path(),
                    format!(
                        "a Hugging Face '{t}' checkpoint, not an intent model folder: a sentence-embedding \
                         model becomes a classifier with a label set \
                         (`intent zero-shot --encoder {} --labels FILE --out DIR`)",
                        dir.display()
                    ),
                )));
            }
            FolderConfig::HuggingFace { model_type: None } => {
                return Err(ServeError::Model(ModelError::invalid(
                    config_path(),
                    "no `kind` (expected mlp, svm or zero-shot) and no Hugging Face `model_type`: not a \
                        model folder",
                )))
            }
            FolderConfig::Recommender => {
                return Err(ServeError::UnsupportedKind {
                    path: config_path(),
                    kind: ModelKind::Ncf.to_string(),
                })
            }
        };
        match config.kind() {
            ModelKind::Mlp => Ok(Classifier::Mlp(BowMlp::from_config(dir, config, &Default::default())?)),
            ModelKind::Svm => Ok(Classifier::Svm(SvmModel::from_config(dir, config)?)),
            ModelKind::ZeroShot => {
                Ok(Classifier::ZeroShot(ZeroShot::from_config(dir, config, &Default::default())?))
            }
            // Fine-tuned BERT folders are Hugging Face folders (handled above); NCF recommends.
            kind @ (ModelKind::Bert | ModelKind::Ncf) => {
                Err(ServeError::UnsupportedKind { path: config_path(), kind: kind.to_string() })
            }
        }
    }

    /// The model's `config.json`.
    pub fn config(&self) -> &ModelConfig {
        self.predictor().config()
    }

    /// The model as a [`Predictor`].
    pub fn predictor(&self) -> &dyn Predictor {
        match self {
            Classifier::Mlp(m) => m,
            Classifier::Svm(m) => m,
            Classifier::ZeroShot(m) => m,
            Classifier::Bert(m) => m,
        }
    }

    /// Class labels, by output index.
    pub fn labels(&self) -> &[String] {
        &self.config().labels
    }

    /// Class probabilities of each text. Only BERT encoders (zero-shot and fine-tuned) can fail:
    /// a text their tokenizer rejects is [`ServeError::Input`].
    pub fn scores(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, ServeError> {
        self.predictor().scores(texts)
    }

    /// Whether requests to this model should be batched (transformer encoders, whose cost per
    /// call is dominated by matrix products that grow better with more rows).
    pub fn batches(&self) -> bool {
        self.predictor().batches()
    }

    /// Tokens `text` costs in a batch: word pieces (capped at the encoder's length) for BERT
    /// encoders, whitespace-separated words otherwise. Used for the batcher's token budget.
    pub fn token_count(&self, text: &str) -> usize {
        self.predictor().token_count(text)
    }

    /// Predicts one text with the 3 best labels.
    pub fn predict(&self, text: &str) -> Result<Prediction, ServeError> {
        Ok(self.predict_batch(&[text], 3)?.remove(0))
    }

    /// Predicts several texts, each with its `top_k` best labels.
    pub fn predict_batch(&self, texts: &[&str], top_k: usize) -> Result<Vec<Prediction>, ServeError> {
        let config = self.config();
        Ok(self.scores(texts)?.into_iter().map(|s| decide(config, &s, top_k)).collect())
    }
}

/// The prediction from one text's class probabilities: the best label (the out-of-scope label
/// under the model's threshold), the `top_k` best, and for multi-label models every label at its
/// threshold.
pub fn decide(config: &ModelConfig, s: &[f32], top_k: usize) -> Prediction {
    let labels = &config.labels;
    let mut order: Vec<usize> = (0..s.len()).collect();
    order.sort_by(|&a, &b| s[b].total_cmp(&s[a]).then(a.cmp(&b)));
    let best = order[0];
    let top_k: Vec<LabelScore> = order
        .iter()
        .take(top_k.max(1))
        .map(|&i| LabelScore { label: labels[i].clone(), score: s[i] })
        .collect();
    let mut label = labels[best].clone();
    if let Some(oos) = &config.oos {
        if s[best] < oos.threshold {
            label = oos.label.clone();
        }
    }
    let multi = config.multi_label.then(|| {
        let th = config.thresholds.clone().unwrap_or_else(|| vec![0.5; labels.len()]);
        (0..labels.len()).filter(|&i| s[i] >= th[i]).map(|i| labels[i].clone()).collect()
    });
    Prediction { label, confidence: s[best], top_k, labels: multi }
}
