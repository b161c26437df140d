//! Zero-shot classification with a sentence-embedding model: each label's description is
//! embedded once; a query is embedded and the labels are ranked by cosine similarity, with
//! `softmax(cos / T)` as the confidence. `T` defaults to 0.05 (the scale of 20 that
//! sentence-transformers' contrastive loss trains with) and can be fitted on labeled data
//! ([`ZeroShot::calibrate`], temperature scaling).
//!
//! Descriptions come from a labels file (`{"label": "description", …}`), or are made from the
//! label name with a template (`"This question is about {label}"`, the name split into
//! lower-case words: [`label_words`]).
//!
//! A zero-shot model folder: `config.json` (kind `zero-shot`: labels, descriptions, template,
//! temperature, pooling), `model.safetensors` (`label_embeddings`), and the encoder's Hugging
//! Face files under `encoder/`.

use std::collections::BTreeMap;
use std::path::Path;

use burn::prelude::Backend;
use intent_data::text::VectorizerConfig;
use serde::{Deserialize, Serialize};

use crate::architecture::Architecture;
use crate::bert::SentenceEncoder;
use crate::error::{ModelError, Result};
use crate::folder::{
    write_json, write_model_dir, ModelConfig, Preprocessing, Versions, CONFIG_FILE, METRICS_FILE,
    WEIGHTS_FILE,
};
use crate::svm::calibration::fit_temperature;
use crate::tensors::{HostTensor, TensorFile};

/// The default description template.
pub const DEFAULT_TEMPLATE: &str = "This question is about {label}";
/// The default temperature (sentence-transformers' contrastive scale 20).
pub const DEFAULT_TEMPERATURE: f64 = 0.05;
/// Texts per encoder batch.
const BATCH: usize = 32;

/// Reads a labels file: a JSON object `{"label": "description", …}` (order kept as in the file
/// is not guaranteed by JSON objects, so labels are sorted); at least two labels.
pub fn read_label_descriptions(path: &Path) -> Result<Vec<(String, String)>> {
    let m = read_some_label_descriptions(path)?;
    if m.len() < 2 {
        return Err(ModelError::invalid(
            path,
            format!("{} label(s): zero-shot classification needs at least two", m.len()),
        ));
    }
    Ok(m)
}

/// Reads a labels file like [`read_label_descriptions`], with any number of labels (for
/// descriptions that join labels from elsewhere, such as a data set's).
pub fn read_some_label_descriptions(path: &Path) -> Result<Vec<(String, String)>> {
    let text = std::fs::read_to_string(path).map_err(|e| ModelError::io(path, e))?;
    let m: BTreeMap<String, String> = serde_json::from_str(&text).map_err(|e| {
        ModelError::invalid(
            path,
            format!("line {}: expected {{\"label\": \"description\", …}}: {e}", e.line()),
        )
    })?;
    if let Some((l, _)) = m.iter().find(|(_, d)| d.trim().is_empty()) {
        return Err(ModelError::invalid(path, format!("label '{l}' has an empty description")));
    }
    Ok(m.into_iter().collect())
}

/// A label name as lower-case words: `snake_case`, `kebab-case`, `dotted.names`,
/// `CamelCase`/`camelCase` and acronyms (`GetETA` → `get eta`) split at their boundaries (heck's
/// word splitting). A sentence encoder knows `book flight`; `BookFlight` is one unknown word.
///
/// ```
/// use intent_models::zero_shot::label_words;
/// assert_eq!(label_words("BookFlight"), "book flight");
/// assert_eq!(label_words("alarm.set"), "alarm set");
/// assert_eq!(label_words("GetETA"), "get eta");
/// assert_eq!(label_words("card_arrival"), "card arrival");
/// ```
pub fn label_words(name: &str) -> String {
    use heck::ToSnakeCase;
    let words = name.to_snake_case().replace('_', " ");
    if words.trim().is_empty() {
        name.to_string()
    } else {
        words
    }
}

/// Descriptions made from label names with `template` (`{label}` is replaced by the name as
/// words, see [`label_words`]).
pub fn describe(labels: &[String], template: &str) -> Vec<(String, String)> {
    labels.iter().map(|l| (l.clone(), template.replace("{label}", &label_words(l)))).collect()
}

/// The zero-shot part of a model's `config.json` (`architecture`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ZeroShotArchitecture {
    /// Encoder folder inside the model folder.
    pub encoder: String,
    /// Description of each label, by label index.
    pub descriptions: Vec<String>,
    /// Template used for labels without a description (record only).
    pub template: Option<String>,
    /// Softmax temperature over cosine similarities.
    pub temperature: f64,
    /// Encoder input limit.
    pub max_len: usize,
}

/// A zero-shot classifier.
#[derive(Debug)]
pub struct ZeroShot<B: Backend> {
    /// The model's `config.json` (kind `zero-shot`).
    pub config: ModelConfig,
    /// The sentence encoder.
    pub encoder: SentenceEncoder<B>,
    /// Settings.
    pub arch: ZeroShotArchitecture,
    /// L2-normalised label embeddings, `[labels][hidden]`.
    pub label_vectors: Vec<Vec<f32>>,
}

fn normalize(v: &mut [f32]) {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
    v.iter_mut().for_each(|x| *x /= n);
}

impl<B: Backend> ZeroShot<B> {
    /// Builds a classifier over `labels` (name, description) with `encoder`.
    pub fn new(
        encoder: SentenceEncoder<B>,
        labels: Vec<(String, String)>,
        template: Option<String>,
    ) -> Result<Self> {
        if labels.len() < 2 {
            return Err(ModelError::Fit(format!(
                "{} label(s): zero-shot classification needs at least two",
                labels.len()
            )));
        }
        let descriptions: Vec<String> = labels.iter().map(|l| l.1.clone()).collect();
        let refs: Vec<&str> = descriptions.iter().map(String::as_str).collect();
        let mut label_vectors = encoder.embed(&refs, BATCH)?;
        label_vectors.iter_mut().for_each(|v| normalize(v));
        let arch = ZeroShotArchitecture {
            encoder: "encoder".into(),
            descriptions,
            template,
            temperature: DEFAULT_TEMPERATURE,
            max_len: encoder.tokenizer.max_len(),
        };
        let config = ModelConfig {
            architecture: Architecture::ZeroShot(arch.clone()),
            format_version: crate::folder::FORMAT_VERSION,
            labels: labels.into_iter().map(|l| l.0).collect(),
            multi_label: false,
            thresholds: None,
            oos: None,
            preprocessing: Preprocessing {
                tokenizer: "bert".into(),
                vectorizer: VectorizerConfig::default(),
                vocab_file: "encoder/tokenizer.json".into(),
                vocab_size: encoder.config.vocab_size,
            },
            training: serde_json::json!({ "encoder_config": encoder.config }),
            data_hash: String::new(),
            versions: Versions::default(),
            created_unix: crate::folder::now_unix(),
        };
        Ok(ZeroShot { config, encoder, arch, label_vectors })
    }

    /// Cosine similarity of each text with each label.
    pub fn similarities(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        let mut e = self.encoder.embed(texts, BATCH)?;
        Ok(e.iter_mut()
            .map(|v| {
                normalize(v);
                self.label_vectors.iter().map(|l| l.iter().zip(v.iter()).map(|(a, b)| a * b).sum()).collect()
            })
            .collect())
    }

    /// Label probabilities: `softmax(cos / T)`.
    pub fn scores(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        let t = self.arch.temperature;
        let cal = crate::svm::Calibration::Temperature { temperature: t };
        Ok(self.similarities(texts)?.iter().map(|s| cal.apply(s)).collect())
    }

    /// Fits the temperature on labeled texts (`gold` label indices); returns it.
    pub fn calibrate(&mut self, texts: &[&str], gold: &[usize]) -> Result<f64> {
        let sims = self.similarities(texts)?;
        if let Some(t) = fit_temperature(&sims, gold) {
            self.arch.temperature = t;
            self.config.architecture = Architecture::ZeroShot(self.arch.clone());
        }
        Ok(self.arch.temperature)
    }

    /// Saves the model folder (atomically), copying the encoder's files from `encoder_dir`.
    pub fn save(&self, dir: &Path, encoder_dir: &Path, metrics: &serde_json::Value) -> Result<()> {
        let mut config = self.config.clone();
        config.architecture = Architecture::ZeroShot(self.arch.clone());
        write_model_dir(dir, |tmp| {
            write_json(tmp, CONFIG_FILE, &config)?;
            write_json(tmp, METRICS_FILE, metrics)?;
            let k = self.label_vectors.len();
            let d = self.label_vectors.first().map_or(0, Vec::len);
            crate::tensors::write(
                &tmp.join(WEIGHTS_FILE),
                vec![("label_embeddings", HostTensor::F32(self.label_vectors.concat(), vec![k, d]))],
            )?;
            copy_dir(encoder_dir, &tmp.join(&self.arch.encoder))
        })
    }

    /// Loads a zero-shot model folder.
    pub fn load(dir: &Path, device: &B::Device) -> Result<Self> {
        Self::from_config(dir, ModelConfig::read(dir)?, device)
    }

    /// Loads the folder `dir` whose `config.json` is `config` (already read).
    pub fn from_config(dir: &Path, config: ModelConfig, device: &B::Device) -> Result<Self> {
        let cfg_path = dir.join(CONFIG_FILE);
        let Architecture::ZeroShot(arch) = config.architecture.clone() else {
            let kind = config.kind();
            return Err(ModelError::invalid(&cfg_path, format!("kind is '{kind}', expected 'zero-shot'")));
        };
        config.check_labels(&cfg_path)?;
        if arch.descriptions.len() != config.labels.len() {
            return Err(ModelError::invalid(
                &cfg_path,
                format!("{} descriptions for {} labels", arch.descriptions.len(), config.labels.len()),
            ));
        }
        if !(arch.temperature.is_finite() && arch.temperature > 0.0) {
            return Err(ModelError::invalid(
                &cfg_path,
                format!("architecture.temperature {}: expected a positive number", arch.temperature),
            ));
        }
        if arch.encoder.contains("..") {
            return Err(ModelError::invalid(
                &cfg_path,
                "architecture.encoder must be a folder inside the model folder",
            ));
        }
        let encoder = SentenceEncoder::load(&dir.join(&arch.encoder), Some(arch.max_len), device)?;
        let d = encoder.model.hidden_size();
        let k = config.labels.len();
        let flat = TensorFile::open(&dir.join(WEIGHTS_FILE))?.f32("label_embeddings", &[k, d])?;
        let label_vectors = flat.chunks(d).map(<[f32]>::to_vec).collect();
        Ok(ZeroShot { config, encoder, arch, label_vectors })
    }
}

/// Copies the regular files of `from` (recursively) into `to`.
fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to).map_err(|e| ModelError::io(to, e))?;
    for e in std::fs::read_dir(from).map_err(|e| ModelError::io(from, e))? {
        let e = e.map_err(|e| ModelError::io(from, e))?;
        let (src, dst) = (e.path(), to.join(e.file_name()));
        if src.is_dir() {
            copy_dir(&src, &dst)?;
        } else {
            std::fs::copy(&src, &dst).map_err(|e| ModelError::io(&src, e))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_names_become_lower_case_words() {
        for (name, words) in [
            ("BookFlight", "book flight"),
            ("bookFlight", "book flight"),
            ("alarm.set", "alarm set"),
            ("play-music", "play music"),
            ("card_arrival", "card arrival"),
            ("GetETA", "get eta"),
            ("ETAUpdate", "eta update"),
            ("XMLHttpRequest", "xml http request"),
            ("iot_hue_lightoff", "iot hue lightoff"),
            ("oos", "oos"),
            ("___", "___"),
        ] {
            assert_eq!(label_words(name), words, "{name}");
        }
        let d = describe(&["BookFlight".into(), "alarm.set".into()], DEFAULT_TEMPLATE);
        assert_eq!(d[0], ("BookFlight".into(), "This question is about book flight".into()));
        assert_eq!(d[1].1, "This question is about alarm set");
    }
}
