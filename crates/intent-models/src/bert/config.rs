//! The Hugging Face `config.json` of a BERT-architecture checkpoint, deserialized as is, and the
//! sentence-transformers pooling settings (`1_Pooling/config.json`, `modules.json`).

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{ModelError, Result};

fn default_act() -> String {
    "gelu".into()
}
fn default_eps() -> f64 {
    1e-12
}
fn default_type_vocab() -> usize {
    2
}

/// A BERT `config.json` (BERT, MiniLM, bge, e5 … share it). Unknown fields are kept in `extra`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BertConfig {
    /// `bert` (anything else is refused).
    #[serde(default)]
    pub model_type: Option<String>,
    /// Rows of the word embedding.
    pub vocab_size: usize,
    /// Width of every layer.
    pub hidden_size: usize,
    /// Transformer layers.
    pub num_hidden_layers: usize,
    /// Attention heads per layer.
    pub num_attention_heads: usize,
    /// Width of the feed-forward layer.
    pub intermediate_size: usize,
    /// Feed-forward activation: `gelu` (erf), `gelu_new` / `gelu_pytorch_tanh` (tanh
    /// approximation) or `relu`.
    #[serde(default = "default_act")]
    pub hidden_act: String,
    /// LayerNorm epsilon.
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f64,
    /// Longest input (positions).
    pub max_position_embeddings: usize,
    /// Segment types.
    #[serde(default = "default_type_vocab")]
    pub type_vocab_size: usize,
    /// Padding token id.
    #[serde(default)]
    pub pad_token_id: Option<usize>,
    /// Only `absolute` is supported.
    #[serde(default)]
    pub position_embedding_type: Option<String>,
    /// Class names of a classification head, by output index (as strings: JSON keys).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id2label: Option<BTreeMap<String, String>>,
    /// Inverse of `id2label`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label2id: Option<BTreeMap<String, usize>>,
    /// Every other field of the file, kept for writing it back.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// Feed-forward activation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// Exact GELU, `x Φ(x)` (erf).
    Gelu,
    /// GELU's tanh approximation.
    GeluTanh,
    /// `max(0, x)`.
    Relu,
}

impl BertConfig {
    /// Reads `dir/config.json`; a missing or mistyped field is named with its line.
    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| ModelError::io(path, e))?;
        let c: BertConfig = serde_json::from_str(&text)
            .map_err(|e| ModelError::invalid(path, format!("line {}: {e}", e.line())))?;
        c.validate().map_err(|m| ModelError::invalid(path, m))?;
        Ok(c)
    }

    /// Checks the architecture is one this encoder computes.
    pub fn validate(&self) -> std::result::Result<(), String> {
        match self.model_type.as_deref() {
            Some("bert") => {}
            Some(other) => {
                return Err(format!(
                    "model_type '{other}' is not supported: this encoder computes the BERT architecture \
                     (model_type 'bert': BERT, MiniLM, bge, e5, …)"
                ))
            }
            None => return Err("model_type is missing: expected 'bert'".into()),
        }
        if let Some(p) = self.position_embedding_type.as_deref() {
            if p != "absolute" {
                return Err(format!("position_embedding_type '{p}' is not supported (only 'absolute')"));
            }
        }
        self.activation()?;
        for (name, v) in [
            ("vocab_size", self.vocab_size),
            ("hidden_size", self.hidden_size),
            ("num_hidden_layers", self.num_hidden_layers),
            ("num_attention_heads", self.num_attention_heads),
            ("intermediate_size", self.intermediate_size),
            ("max_position_embeddings", self.max_position_embeddings),
            ("type_vocab_size", self.type_vocab_size),
        ] {
            if v == 0 {
                return Err(format!("{name} is 0"));
            }
        }
        if !self.hidden_size.is_multiple_of(self.num_attention_heads) {
            return Err(format!(
                "hidden_size {} is not a multiple of num_attention_heads {}",
                self.hidden_size, self.num_attention_heads
            ));
        }
        if !(self.layer_norm_eps.is_finite() && self.layer_norm_eps > 0.0) {
            return Err(format!("layer_norm_eps {} must be positive", self.layer_norm_eps));
        }
        Ok(())
    }

    /// The activation named by `hidden_act`.
    pub fn activation(&self) -> std::result::Result<Activation, String> {
        match self.hidden_act.as_str() {
            "gelu" => Ok(Activation::Gelu),
            "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Ok(Activation::GeluTanh),
            "relu" => Ok(Activation::Relu),
            other => Err(format!(
                "hidden_act '{other}' is not supported (gelu, gelu_new, gelu_pytorch_tanh, relu)"
            )),
        }
    }

    /// Class names by output index when the checkpoint has a classification head.
    pub fn labels(&self) -> Option<Vec<String>> {
        let m = self.id2label.as_ref()?;
        let mut v: Vec<(usize, String)> =
            m.iter().filter_map(|(k, l)| Some((k.parse().ok()?, l.clone()))).collect();
        v.sort();
        (v.len() == m.len() && v.iter().enumerate().all(|(i, (k, _))| i == *k))
            .then(|| v.into_iter().map(|p| p.1).collect())
    }
}

/// How token states become one sentence vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PoolingMode {
    /// The `[CLS]` state.
    Cls,
    /// Mean over the attention mask.
    Mean,
}

/// Pooling and normalisation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pooling {
    /// CLS or mean.
    pub mode: PoolingMode,
    /// L2-normalise the pooled vector.
    pub normalize: bool,
}

#[derive(Deserialize)]
struct StPooling {
    #[serde(default)]
    pooling_mode_cls_token: bool,
    #[serde(default)]
    pooling_mode_mean_tokens: bool,
}

#[derive(Deserialize)]
struct StModule {
    #[serde(rename = "type")]
    kind: String,
}

impl Pooling {
    /// sentence-transformers' settings of a model folder: `1_Pooling/config.json` (CLS or mean)
    /// and a `Normalize` module in `modules.json`; `None` when the folder has neither.
    pub fn from_sentence_transformers(dir: &Path) -> Result<Option<Self>> {
        let pool_path = dir.join("1_Pooling").join("config.json");
        let modules_path = dir.join("modules.json");
        if !pool_path.is_file() && !modules_path.is_file() {
            return Ok(None);
        }
        let mut mode = PoolingMode::Mean;
        if pool_path.is_file() {
            let text = std::fs::read_to_string(&pool_path).map_err(|e| ModelError::io(&pool_path, e))?;
            let p: StPooling =
                serde_json::from_str(&text).map_err(|e| ModelError::invalid(&pool_path, e.to_string()))?;
            mode = match (p.pooling_mode_cls_token, p.pooling_mode_mean_tokens) {
                (true, false) => PoolingMode::Cls,
                (false, true) => PoolingMode::Mean,
                _ => {
                    return Err(ModelError::invalid(
                        &pool_path,
                        "expected exactly one of pooling_mode_cls_token / pooling_mode_mean_tokens",
                    ))
                }
            };
        }
        let mut normalize = false;
        if modules_path.is_file() {
            let text =
                std::fs::read_to_string(&modules_path).map_err(|e| ModelError::io(&modules_path, e))?;
            let m: Vec<StModule> =
                serde_json::from_str(&text).map_err(|e| ModelError::invalid(&modules_path, e.to_string()))?;
            normalize = m.iter().any(|m| m.kind.ends_with(".Normalize"));
        }
        Ok(Some(Pooling { mode, normalize }))
    }
}
