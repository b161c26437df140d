//! A fine-tuned BERT classifier in the Hugging Face layout (`BertForSequenceClassification`):
//! the encoder, the pooler (`tanh(W·h_[CLS] + b)`) and a linear `classifier` over it, with the
//! class names in `config.json`'s `id2label` and `problem_type` choosing softmax (single-label)
//! or per-label sigmoids (`multi_label_classification`). Such a folder, as written by
//! `transformers`' `save_pretrained`, is served as is by [`BertClassifier::load`]. A folder
//! written by `intent train bert` also holds `intent.json` (see [`super::sequence::INTENT_FILE`]):
//! per-label thresholds, the out-of-scope threshold, training facts, and the head's pooling
//! (`mean` heads skip the pooler).

use std::path::Path;

use burn::prelude::*;
use intent_data::text::VectorizerConfig;

use super::sequence::{HeadPooling, INTENT_FILE};
use super::{BertConfig, Pooling, PoolingMode, SentenceEncoder};
use crate::architecture::{Architecture, BertArchitecture};
use crate::error::{ModelError, Result};
use crate::folder::{ModelConfig, Preprocessing, Versions, CONFIG_FILE, WEIGHTS_FILE};
use crate::svm::Calibration;
use crate::tensors::TensorFile;

/// Texts per encoder batch.
const BATCH: usize = 32;

/// The weight names of a sequence-classification head (`bert.` prefix optional).
const CLASSIFIER: &str = "classifier";
const POOLER: [&str; 2] = ["bert.pooler.dense", "pooler.dense"];

/// A linear map on the host, PyTorch layout (`weight [out, in]`).
#[derive(Debug, Clone)]
struct HostLinear {
    weight: Vec<f32>,
    bias: Vec<f32>,
    inputs: usize,
}

impl HostLinear {
    fn read(file: &TensorFile, prefix: &str, outputs: usize, inputs: usize) -> Result<Self> {
        let weight = file.float(&format!("{prefix}.weight"), &[outputs, inputs])?;
        let bias = if file.has(&format!("{prefix}.bias")) {
            file.float(&format!("{prefix}.bias"), &[outputs])?
        } else {
            vec![0.0; outputs]
        };
        Ok(HostLinear { weight, bias, inputs })
    }

    fn apply(&self, x: &[f32]) -> Vec<f32> {
        self.weight
            .chunks(self.inputs)
            .zip(&self.bias)
            .map(|(row, b)| row.iter().zip(x).map(|(w, v)| w * v).sum::<f32>() + b)
            .collect()
    }
}

/// A BERT encoder with a sequence-classification head.
#[derive(Debug)]
pub struct BertClassifier<B: Backend> {
    /// The model described in this crate's terms (kind `bert`; labels from `id2label`).
    pub config: ModelConfig,
    /// The encoder (its tokenizer included).
    pub encoder: SentenceEncoder<B>,
    pooler: Option<HostLinear>,
    classifier: HostLinear,
    pooling: HeadPooling,
}

/// Whether `dir` is a Hugging Face BERT folder whose weights include a classification head
/// (read from the weights file's header only).
pub fn has_classification_head(dir: &Path) -> bool {
    let is_bert = BertConfig::read(&dir.join(CONFIG_FILE)).is_ok();
    is_bert
        && crate::tensors::tensor_names(&dir.join(WEIGHTS_FILE))
            .is_ok_and(|names| names.iter().any(|n| n == "classifier.weight"))
}

impl<B: Backend> BertClassifier<B> {
    /// Loads a `BertForSequenceClassification` folder (`config.json` with `id2label`,
    /// `model.safetensors` with `classifier.*` and, usually, `bert.pooler.dense.*`, a tokenizer).
    /// Errors name the file and the tensor or field that is wrong.
    /// Texts are cut at `max_len` tokens, else at the `architecture.max_len` of `intent.json`
    /// (the length the model was fine-tuned with), else at the encoder's default.
    pub fn load(dir: &Path, max_len: Option<usize>, device: &B::Device) -> Result<Self> {
        let cfg_path = dir.join(CONFIG_FILE);
        let meta_path = dir.join(INTENT_FILE);
        let meta: Option<ModelConfig> = if meta_path.is_file() {
            let text = std::fs::read_to_string(&meta_path).map_err(|e| ModelError::io(&meta_path, e))?;
            Some(
                serde_json::from_str(&text)
                    .map_err(|e| ModelError::invalid(&meta_path, format!("line {}: {e}", e.line())))?,
            )
        } else {
            None
        };
        let trained = match meta.as_ref().map(|c| &c.architecture) {
            None => None,
            Some(Architecture::Bert(a)) => Some(a.clone()),
            Some(other) => {
                let kind = other.kind();
                return Err(ModelError::invalid(&meta_path, format!("kind is '{kind}', expected 'bert'")));
            }
        };
        let trained_len = trained.as_ref().and_then(|a| a.max_len);
        let encoder = SentenceEncoder::<B>::load(dir, max_len.or(trained_len), device)?;
        let bert = encoder.config.clone();
        let file = TensorFile::open(&dir.join(WEIGHTS_FILE))?;
        let shape = file.shape("classifier.weight")?;
        let h = bert.hidden_size;
        if shape.len() != 2 || shape[1] != h || shape[0] == 0 {
            return Err(ModelError::invalid(
                file.path(),
                format!("tensor 'classifier.weight' has shape {shape:?}, expected [num_labels, {h}]"),
            ));
        }
        let n = shape[0];
        let labels = labels_of(&bert, n).map_err(|m| ModelError::invalid(&cfg_path, m))?;
        let classifier = HostLinear::read(&file, CLASSIFIER, n, h)?;
        let pooler = match POOLER.iter().find(|p| file.has(&format!("{p}.weight"))) {
            Some(p) => Some(HostLinear::read(&file, p, h, h)?),
            None => None,
        };
        let problem = bert
            .extra
            .get("problem_type")
            .and_then(|v| v.as_str())
            .unwrap_or("single_label_classification")
            .to_string();
        let multi_label = match problem.as_str() {
            "multi_label_classification" => true,
            "single_label_classification" => false,
            other => {
                return Err(ModelError::invalid(
                    &cfg_path,
                    format!(
                        "problem_type '{other}': expected single_label_classification or \
                        multi_label_classification"
                    ),
                ))
            }
        };
        let vocab_file = if dir.join("tokenizer.json").is_file() { "tokenizer.json" } else { "vocab.txt" };
        if let Some(config) = meta {
            config.check_labels(&meta_path)?;
            if config.labels != labels || config.multi_label != multi_label {
                return Err(ModelError::invalid(
                    &meta_path,
                    "labels or multi_label differ from config.json's id2label / problem_type",
                ));
            }
            let pooling = trained.map(|a| a.head_pooling).unwrap_or_default();
            return Ok(BertClassifier { config, encoder, pooler, classifier, pooling });
        }
        let config = ModelConfig {
            architecture: Architecture::Bert(BertArchitecture {
                base: None,
                max_len: Some(encoder.tokenizer.max_len()),
                head_pooling: HeadPooling::Pooler,
            }),
            format_version: crate::folder::FORMAT_VERSION,
            labels,
            multi_label,
            thresholds: None,
            oos: None,
            preprocessing: Preprocessing {
                tokenizer: "bert".into(),
                vectorizer: VectorizerConfig::default(),
                vocab_file: vocab_file.into(),
                vocab_size: encoder.config.vocab_size,
            },
            training: serde_json::json!({}),
            data_hash: String::new(),
            versions: Versions::default(),
            created_unix: 0,
        };
        config.check_labels(&cfg_path)?;
        Ok(BertClassifier { config, encoder, pooler, classifier, pooling: HeadPooling::Pooler })
    }

    /// Logits `[texts][labels]`.
    pub fn logits(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        let mode = if self.pooling == HeadPooling::Mean { PoolingMode::Mean } else { PoolingMode::Cls };
        let vectors = self.encoder.embed_with(texts, BATCH, Pooling { mode, normalize: false })?;
        Ok(vectors
            .iter()
            .map(|h| match (&self.pooler, self.pooling) {
                (Some(p), HeadPooling::Pooler) => {
                    self.classifier.apply(&p.apply(h).iter().map(|v| v.tanh()).collect::<Vec<_>>())
                }
                _ => self.classifier.apply(h),
            })
            .collect())
    }

    /// Probabilities: softmax over labels, or one sigmoid per label for multi-label models.
    pub fn scores(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        // The calibration maps of the SVMs: softmax at temperature 1, or the plain sigmoid.
        let map = if self.config.multi_label {
            Calibration::Platt { a: 1.0, b: 0.0 }
        } else {
            Calibration::Temperature { temperature: 1.0 }
        };
        Ok(self.logits(texts)?.iter().map(|z| map.apply(z)).collect())
    }
}

/// Class names by output index from `id2label` (`LABEL_i` when absent, as transformers does).
fn labels_of(c: &BertConfig, n: usize) -> std::result::Result<Vec<String>, String> {
    let Some(map) = &c.id2label else { return Ok((0..n).map(|i| format!("LABEL_{i}")).collect()) };
    if map.len() != n {
        return Err(format!("id2label has {} labels but the classifier has {n} outputs", map.len()));
    }
    (0..n)
        .map(|i| {
            map.get(&i.to_string())
                .cloned()
                .ok_or_else(|| format!("id2label has no entry \"{i}\" (expected ids 0..{})", n - 1))
        })
        .collect()
}
