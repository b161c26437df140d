//! Model folders: a self-describing directory with `config.json` (architecture,
//! hyperparameters, labels, preprocessing, data hash, versions), `model.safetensors`, the
//! vocabulary and `metrics.json`. Folders are written to a temporary sibling and renamed into
//! place, so a reader never sees a half-written model and a failed save loses nothing.

use std::fs;
use std::path::{Path, PathBuf};

use intent_data::text::VectorizerConfig;
use serde::{Deserialize, Serialize};

pub use crate::architecture::{Architecture, BertArchitecture};
use crate::error::{ModelError, Result};

/// Name of the configuration file of a model folder.
pub const CONFIG_FILE: &str = "config.json";
/// Name of the weights file.
pub const WEIGHTS_FILE: &str = "model.safetensors";
/// Name of the vocabulary file (one term per line, in feature order).
pub const VOCAB_FILE: &str = "vocab.txt";
/// Name of the IDF file (TF-IDF features only).
pub const IDF_FILE: &str = "idf.json";
/// Name of the metrics file.
pub const METRICS_FILE: &str = "metrics.json";
/// Version of the folder layout written by this crate.
pub const FORMAT_VERSION: u32 = 1;

/// How texts become model input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Preprocessing {
    /// Tokenizer name (`unicode-words`: lowercase, UAX #29 word boundaries).
    pub tokenizer: String,
    /// Vectorizer settings.
    pub vectorizer: VectorizerConfig,
    /// Vocabulary file inside the folder.
    pub vocab_file: String,
    /// Number of terms in the vocabulary.
    pub vocab_size: usize,
}

/// Out-of-scope handling: below `threshold` confidence the prediction becomes `label`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OosConfig {
    /// The out-of-scope label (`oos`).
    pub label: String,
    /// Confidence threshold, tuned on validation data.
    pub threshold: f32,
}

/// Software versions recorded in a model folder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Versions {
    /// intent crate version.
    pub intent: String,
    /// burn version.
    pub burn: String,
}

impl Default for Versions {
    fn default() -> Self {
        Versions { intent: env!("CARGO_PKG_VERSION").to_string(), burn: "0.21.0".to_string() }
    }
}

/// What a model folder holds: the `kind` of its `config.json` (a fine-tuned Hugging Face folder
/// has none: `model_type` there, and [`ModelKind::Bert`] in its `intent.json`). An unknown kind
/// is a parse error that lists the known ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ModelKind {
    /// Bag-of-words MLP ([`crate::mlp`]).
    Mlp,
    /// Linear SVM or kernel SVC ([`crate::svm`]).
    Svm,
    /// Sentence encoder with label descriptions ([`crate::zero_shot`]).
    ZeroShot,
    /// Fine-tuned BERT sequence classifier ([`crate::bert`]).
    Bert,
    /// NCF recommender ([`crate::ncf`]).
    Ncf,
}

impl ModelKind {
    /// Every kind, in the order the docs list them.
    pub const ALL: [ModelKind; 5] =
        [ModelKind::Mlp, ModelKind::Svm, ModelKind::ZeroShot, ModelKind::Bert, ModelKind::Ncf];

    /// The name in `config.json` (`mlp`, `zero-shot`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            ModelKind::Mlp => "mlp",
            ModelKind::Svm => "svm",
            ModelKind::ZeroShot => "zero-shot",
            ModelKind::Bert => "bert",
            ModelKind::Ncf => "ncf",
        }
    }

    /// Classifiers predict labels; the other kinds recommend items.
    pub fn is_classifier(self) -> bool {
        self != ModelKind::Ncf
    }
}

impl std::fmt::Display for ModelKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for ModelKind {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        ModelKind::ALL.into_iter().find(|k| k.as_str() == s).ok_or_else(|| {
            let known: Vec<&str> = ModelKind::ALL.iter().map(|k| k.as_str()).collect();
            format!("model kind '{s}': expected one of {}", known.join(", "))
        })
    }
}

/// Reads only the `kind` of `<dir>/config.json` (`None`: no `kind`, as in a Hugging Face folder).
pub fn read_kind(dir: &Path) -> Result<Option<ModelKind>> {
    #[derive(Deserialize)]
    struct KindOnly {
        kind: Option<ModelKind>,
    }
    let path = dir.join(CONFIG_FILE);
    let text = fs::read_to_string(&path).map_err(|e| ModelError::io(&path, e))?;
    let k: KindOnly = serde_json::from_str(&text)
        .map_err(|e| ModelError::invalid(&path, format!("line {}: {e}", e.line())))?;
    Ok(k.kind)
}

/// What a folder is, from one read of its `config.json`.
#[derive(Debug, Clone, PartialEq)]
pub enum FolderConfig {
    /// A classifier folder of this toolkit (`kind` mlp, svm, zero-shot or bert), parsed.
    Classifier(Box<ModelConfig>),
    /// An NCF recommender folder (read it with [`crate::ncf::folder::NcfModel::load`]).
    Recommender,
    /// No `kind`: a Hugging Face folder, with its `model_type` when it has one.
    HuggingFace {
        /// `model_type` (`bert`, …).
        model_type: Option<String>,
    },
}

impl FolderConfig {
    /// Reads `<dir>/config.json` once and says what the folder holds; a classifier's config is
    /// parsed whole (errors give the line and the field).
    pub fn read(dir: &Path) -> Result<Self> {
        #[derive(Deserialize)]
        struct Head {
            kind: Option<ModelKind>,
            model_type: Option<String>,
        }
        let path = dir.join(CONFIG_FILE);
        let text = fs::read_to_string(&path).map_err(|e| ModelError::io(&path, e))?;
        let invalid = |e: serde_json::Error| ModelError::invalid(&path, format!("line {}: {e}", e.line()));
        let head: Head = serde_json::from_str(&text).map_err(invalid)?;
        Ok(match head.kind {
            None => FolderConfig::HuggingFace { model_type: head.model_type },
            Some(ModelKind::Ncf) => FolderConfig::Recommender,
            Some(_) => FolderConfig::Classifier(Box::new(serde_json::from_str(&text).map_err(invalid)?)),
        })
    }
}

/// The `config.json` of a model folder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    /// The model kind with its architecture: the `kind` and `architecture` fields.
    #[serde(flatten)]
    pub architecture: Architecture,
    /// Folder layout version.
    pub format_version: u32,
    /// Class labels, by output index.
    pub labels: Vec<String>,
    /// Multi-label (sigmoid outputs, per-label thresholds).
    pub multi_label: bool,
    /// Per-label decision thresholds (multi-label only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thresholds: Option<Vec<f32>>,
    /// Out-of-scope threshold, when tuned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oos: Option<OosConfig>,
    /// Text preprocessing.
    pub preprocessing: Preprocessing,
    /// Training hyperparameters and run facts (epochs, seed, device…).
    pub training: serde_json::Value,
    /// SHA-256 of the training data ([`intent_data::data_hash`]).
    pub data_hash: String,
    /// Software versions.
    pub versions: Versions,
    /// Creation time, Unix seconds.
    pub created_unix: u64,
}

impl ModelConfig {
    /// The model kind (the `kind` field).
    pub fn kind(&self) -> ModelKind {
        self.architecture.kind()
    }

    /// Reads and parses `<dir>/config.json`.
    pub fn read(dir: &Path) -> Result<Self> {
        let path = dir.join(CONFIG_FILE);
        let text = fs::read_to_string(&path).map_err(|e| ModelError::io(&path, e))?;
        serde_json::from_str(&text).map_err(|e| ModelError::invalid(&path, format!("line {}: {e}", e.line())))
    }
}

impl ModelConfig {
    /// Checks what every model kind relies on: at least two labels, unique; one threshold per
    /// label (multi-label), thresholds in [0, 1]. `path` is the config file, for the message.
    pub fn check_labels(&self, path: &Path) -> Result<()> {
        if self.labels.len() < 2 {
            return Err(ModelError::invalid(
                path,
                format!("{} label(s): a classifier has at least two", self.labels.len()),
            ));
        }
        let mut seen = std::collections::HashSet::new();
        if let Some(dup) = self.labels.iter().find(|l| !seen.insert(l.as_str())) {
            return Err(ModelError::invalid(path, format!("label '{dup}' appears twice in labels")));
        }
        if let Some(th) = &self.thresholds {
            if th.len() != self.labels.len() {
                return Err(ModelError::invalid(
                    path,
                    format!("{} thresholds for {} labels", th.len(), self.labels.len()),
                ));
            }
            if let Some(t) = th.iter().find(|t| !(0.0..=1.0).contains(*t)) {
                return Err(ModelError::invalid(path, format!("threshold {t} is not in [0, 1]")));
            }
        }
        if let Some(oos) = &self.oos {
            if !(0.0..=1.0).contains(&oos.threshold) {
                return Err(ModelError::invalid(
                    path,
                    format!("oos.threshold {} is not in [0, 1]", oos.threshold),
                ));
            }
        }
        Ok(())
    }
}

/// Seconds since the Unix epoch.
pub fn now_unix() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Writes a JSON value to `dir/name`, pretty-printed.
pub fn write_json<T: Serialize>(dir: &Path, name: &str, value: &T) -> Result<()> {
    let path = dir.join(name);
    let text = serde_json::to_string_pretty(value).map_err(|e| ModelError::invalid(&path, e.to_string()))?;
    fs::write(&path, text).map_err(|e| ModelError::io(&path, e))
}

/// Writes a model folder atomically: `fill` writes every file into a fresh temporary folder next
/// to `dir`; then the files are synced and the folder takes the place of `dir` through
/// [`intent_data::durable::replace_dir`] (an existing `dir` is swapped out in one step where the
/// platform allows, so the path always names a complete model). On any error the temporary
/// folder is removed and `dir` is left as it was.
pub fn write_model_dir(dir: &Path, fill: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if dir.exists() {
        let is_model = dir.join(CONFIG_FILE).is_file();
        let is_empty_dir = dir.is_dir() && fs::read_dir(dir).map(|mut d| d.next().is_none()).unwrap_or(false);
        if !is_model && !is_empty_dir {
            return Err(ModelError::invalid(
                dir,
                "exists and is not a model folder (no config.json); refusing to replace it, choose \
                    another output path",
            ));
        }
    }
    fs::create_dir_all(&parent).map_err(|e| ModelError::io(&parent, e))?;
    let tmp = intent_data::durable::sibling_name(dir, "tmp");
    fs::create_dir(&tmp).map_err(|e| ModelError::io(&tmp, e))?;
    let result = fill(&tmp)
        .and_then(|()| intent_data::durable::replace_dir(&tmp, dir).map_err(|e| ModelError::io(dir, e)));
    if result.is_err() {
        let _ = fs::remove_dir_all(&tmp);
    }
    result
}

/// Writes the vocabulary (and IDF values) of a vectorizer into a model folder.
pub fn write_vocab(dir: &Path, v: &intent_data::text::Vectorizer) -> Result<()> {
    let path = dir.join(VOCAB_FILE);
    let mut text = v.terms.join("\n");
    text.push('\n');
    fs::write(&path, text).map_err(|e| ModelError::io(&path, e))?;
    if let Some(idf) = &v.idf {
        write_json(dir, IDF_FILE, idf)?;
    }
    Ok(())
}

/// Reads the vectorizer of a model folder and checks it against `config.json`.
pub fn read_vocab(dir: &Path, pre: &Preprocessing) -> Result<intent_data::text::Vectorizer> {
    let path = dir.join(&pre.vocab_file);
    let text = fs::read_to_string(&path).map_err(|e| ModelError::io(&path, e))?;
    let terms: Vec<String> = text.lines().map(str::to_string).collect();
    if terms.len() != pre.vocab_size {
        return Err(ModelError::invalid(
            &path,
            format!(
                "has {} terms but config.json says preprocessing.vocab_size = {}",
                terms.len(),
                pre.vocab_size
            ),
        ));
    }
    let idf = if pre.vectorizer.weighting == intent_data::text::Weighting::Tfidf {
        let p = dir.join(IDF_FILE);
        let t = fs::read_to_string(&p).map_err(|e| ModelError::io(&p, e))?;
        let idf: Vec<f32> = serde_json::from_str(&t).map_err(|e| ModelError::invalid(&p, e.to_string()))?;
        if idf.len() != terms.len() {
            return Err(ModelError::invalid(
                &p,
                format!("has {} values for {} terms", idf.len(), terms.len()),
            ));
        }
        Some(idf)
    } else {
        None
    };
    Ok(intent_data::text::Vectorizer::from_parts(pre.vectorizer.clone(), terms, idf))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_dir_replaces_and_keeps_old_on_failure() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("m");
        write_model_dir(&dir, |t| write_json(t, CONFIG_FILE, &1)).unwrap();
        assert_eq!(fs::read_to_string(dir.join(CONFIG_FILE)).unwrap(), "1");
        let err = write_model_dir(&dir, |t| {
            write_json(t, CONFIG_FILE, &2)?;
            Err(ModelError::invalid(t, "boom"))
        });
        assert!(err.is_err());
        assert_eq!(fs::read_to_string(dir.join(CONFIG_FILE)).unwrap(), "1", "old model kept");
        write_model_dir(&dir, |t| {
            write_json(t, CONFIG_FILE, &3)?;
            write_json(t, "b.json", &3)
        })
        .unwrap();
        assert_eq!(fs::read_to_string(dir.join(CONFIG_FILE)).unwrap(), "3");
        assert!(dir.join("b.json").exists());
        // A folder that is not a model is never replaced.
        let data = root.path().join("data");
        fs::create_dir(&data).unwrap();
        fs::write(data.join("keep.txt"), "x").unwrap();
        let err = write_model_dir(&data, |t| write_json(t, "config.json", &1)).unwrap_err().to_string();
        assert!(err.contains("not a model folder"), "{err}");
        assert!(data.join("keep.txt").exists());
        let leftovers: Vec<_> = fs::read_dir(root.path()).unwrap().collect();
        assert_eq!(leftovers.len(), 2, "no temporary folders left (m and data only)");
    }
}
