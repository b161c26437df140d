//! `BertForSequenceClassification` in burn, for fine-tuning: the encoder with its pooler
//! (`bert.*`), dropout and a linear `classifier`, the module tree named after Hugging Face's
//! weights so that a fine-tuned model is saved as a folder `transformers` loads
//! (`AutoModelForSequenceClassification.from_pretrained`), and such a folder (or a bare encoder
//! such as all-MiniLM-L6-v2, whose head then starts fresh) loads back.
//!
//! Two heads: HF's (`tanh` pooler over `[CLS]`, then the classifier; the default and the one
//! `transformers` computes) and mean pooling over the attention mask straight into the
//! classifier (the recipe of `../shared/anchors/hf_finetune.py`; its folders are served by
//! `intent`, and `transformers` would read them with its own, different head).

use std::path::Path;

use burn::module::{Module, Param};
use burn::nn::{Dropout, DropoutConfig, Initializer, Linear, LinearConfig};
use burn::prelude::*;
use burn::store::{BurnToPyTorchAdapter, ModuleSnapshot, SafetensorsStore};
use burn::tensor::activation::tanh;
use serde::{Deserialize, Serialize};

use super::model::{BertModel, BertPooler};
use super::{check_load, hf_store, BertConfig};
use crate::architecture::Architecture;
use crate::error::{ModelError, Result};
use crate::folder::{write_json, write_model_dir, ModelConfig, CONFIG_FILE, METRICS_FILE, WEIGHTS_FILE};

/// Our metadata beside a Hugging Face folder (labels, thresholds, out-of-scope threshold, head
/// pooling, training facts, data hash, versions): a [`ModelConfig`] of kind `bert`.
pub const INTENT_FILE: &str = "intent.json";

/// Tokenizer files copied into an exported folder when the source has them.
const TOKENIZER_FILES: [&str; 4] =
    ["tokenizer.json", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json"];

/// Which sentence vector the classifier reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum HeadPooling {
    /// HF's pooler: `tanh(W·h_[CLS] + b)`.
    #[default]
    Pooler,
    /// Mean of the hidden states over the attention mask.
    Mean,
}

/// How a fresh head's layers (classifier, and the pooler when the head has one) start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum HeadInit {
    /// Hugging Face's `_init_weights`: weights N(0, `initializer_range`), biases 0 (what
    /// `transformers`' `BertForSequenceClassification` starts from).
    #[default]
    Hf,
    /// PyTorch's `nn.Linear` default: weights and biases U(±1/√fan_in) (the head of
    /// `hf_finetune.py` and of most hand-written PyTorch loops; burn's `LinearConfig` default,
    /// the same Kaiming-uniform rule).
    Torch,
}

/// The encoder, dropout and classification head.
#[derive(Module, Debug)]
pub struct BertForSequenceClassification<B: Backend> {
    /// HF `bert` (embeddings, encoder, pooler).
    pub bert: BertModel<B>,
    /// Dropout on the sentence vector (HF `classifier_dropout`, else `hidden_dropout_prob`).
    pub dropout: Dropout,
    /// `[hidden, labels]`.
    pub classifier: Linear<B>,
    /// The head's pooling.
    #[module(skip)]
    pub pooling: HeadPooling,
}

impl BertConfig {
    /// Dropout probability of the classification head: `classifier_dropout`, else
    /// `hidden_dropout_prob`, else 0.1 (transformers' rule).
    pub fn classifier_dropout(&self) -> f64 {
        let get = |k: &str| self.extra.get(k).and_then(|v| v.as_f64());
        get("classifier_dropout").or_else(|| get("hidden_dropout_prob")).unwrap_or(0.1)
    }

    /// A classifier of this configuration with `labels` outputs and a [`HeadInit::Hf`] head
    /// (weights are then loaded, and the head stays fresh when the checkpoint has none).
    pub fn init_classifier<B: Backend>(
        &self,
        labels: usize,
        pooling: HeadPooling,
        device: &B::Device,
    ) -> BertForSequenceClassification<B> {
        self.init_classifier_with(labels, pooling, HeadInit::Hf, device)
    }

    /// [`BertConfig::init_classifier`] with the head's layers initialised by `init`.
    pub fn init_classifier_with<B: Backend>(
        &self,
        labels: usize,
        pooling: HeadPooling,
        init: HeadInit,
        device: &B::Device,
    ) -> BertForSequenceClassification<B> {
        let std = self.extra.get("initializer_range").and_then(|v| v.as_f64()).unwrap_or(0.02);
        let linear = |d_in: usize, d_out: usize| match init {
            HeadInit::Hf => {
                let mut l = LinearConfig::new(d_in, d_out)
                    .with_initializer(Initializer::Normal { mean: 0.0, std })
                    .init::<B>(device);
                l.bias = Some(Param::from_tensor(Tensor::zeros([d_out], device)));
                l
            }
            HeadInit::Torch => LinearConfig::new(d_in, d_out).init::<B>(device),
        };
        let mut bert = self.init::<B>(device);
        if pooling == HeadPooling::Pooler {
            bert.pooler = Some(BertPooler { dense: linear(self.hidden_size, self.hidden_size) });
        }
        BertForSequenceClassification {
            bert,
            dropout: DropoutConfig::new(self.classifier_dropout()).init(),
            classifier: linear(self.hidden_size, labels),
            pooling,
        }
    }
}

impl<B: Backend> BertForSequenceClassification<B> {
    /// Logits `[batch, labels]` of token ids, token types and the attention mask (`[batch, len]`).
    /// Dropout is active only on an autodiff backend in training mode.
    pub fn forward(
        &self,
        input_ids: Tensor<B, 2, Int>,
        token_type_ids: Tensor<B, 2, Int>,
        attention_mask: Tensor<B, 2, Int>,
    ) -> Tensor<B, 2> {
        let h = self.bert.forward(input_ids, token_type_ids, attention_mask.clone());
        let [b, _, d] = h.dims();
        let v = match (self.pooling, &self.bert.pooler) {
            (HeadPooling::Pooler, Some(p)) => {
                tanh(p.dense.forward(h.slice([0..b, 0..1, 0..d]).reshape([b, d])))
            }
            (HeadPooling::Pooler, None) => h.slice([0..b, 0..1, 0..d]).reshape([b, d]),
            (HeadPooling::Mean, _) => {
                let m = attention_mask.float().unsqueeze_dim::<3>(2);
                (h * m.clone()).sum_dim(1).reshape([b, d]) / m.sum_dim(1).reshape([b, 1]).clamp_min(1e-9)
            }
        };
        self.classifier.forward(super::dropout::dropout(&self.dropout, v))
    }

    /// Loads `model.safetensors` of a base encoder (`embeddings.*`, with or without `bert.`)
    /// or of a `BertForSequenceClassification` (then the head too). Returns whether the file
    /// held the head (`classifier.*`); a missing head or pooler keeps its fresh initialisation,
    /// any other missing or mis-shaped tensor is an error naming it.
    pub fn load_weights(mut self, path: &Path) -> Result<(Self, bool)> {
        // The file's `bert.` prefix is stripped by `hf_store`; this tree wants it back.
        let mut store = hf_store(path)?.with_key_remapping(r"^(embeddings|encoder|pooler)\.", "bert.$1.");
        let r = self
            .load_from(&mut store)
            .map_err(|e| ModelError::invalid(path, format!("cannot read the weights: {e}")))?;
        check_load(&r, path, |p| p.starts_with("classifier.") || p.starts_with("bert.pooler."))?;
        let head = !r.missing.iter().any(|(p, _)| p.starts_with("classifier."));
        Ok((self, head))
    }

    /// Writes `model.safetensors` under Hugging Face's names and layout (`bert.…`, `LayerNorm`,
    /// `self`, Linear weights `[out, in]`, `classifier.…`).
    pub fn save_weights(&self, path: &Path) -> Result<()> {
        let mut store = SafetensorsStore::from_file(path)
            .overwrite(true)
            .with_to_adapter(BurnToPyTorchAdapter)
            .with_key_remapping(r"\.layer_norm\.", ".LayerNorm.")
            .with_key_remapping(r"\.self_attn\.", ".self.");
        self.save_into(&mut store)
            .map_err(|e| ModelError::invalid(path, format!("cannot write the weights: {e}")))
    }
}

impl<B: Backend> BertForSequenceClassification<B> {
    /// Writes a Hugging Face model folder, atomically: `config.json` (the base config with
    /// `architectures`, `id2label`, `label2id`, `problem_type`), `model.safetensors` under HF
    /// names, the tokenizer files of `tokenizer_dir`, and [`INTENT_FILE`] (`meta`, this crate's
    /// description of the model, with the head pooling in `architecture.head_pooling`), and
    /// `metrics.json` when `metrics` is given.
    pub fn save_pretrained(
        &self,
        dir: &Path,
        base: &BertConfig,
        tokenizer_dir: &Path,
        meta: &ModelConfig,
        metrics: Option<&serde_json::Value>,
    ) -> Result<()> {
        let mut config = base.clone();
        config.id2label =
            Some(meta.labels.iter().enumerate().map(|(i, l)| (i.to_string(), l.clone())).collect());
        config.label2id = Some(meta.labels.iter().enumerate().map(|(i, l)| (l.clone(), i)).collect());
        let problem =
            if meta.multi_label { "multi_label_classification" } else { "single_label_classification" };
        config.extra.insert("architectures".into(), serde_json::json!(["BertForSequenceClassification"]));
        config.extra.insert("problem_type".into(), problem.into());
        let mut meta = meta.clone();
        match &mut meta.architecture {
            Architecture::Bert(a) => a.head_pooling = self.pooling,
            other => {
                let kind = other.kind();
                return Err(ModelError::invalid(
                    dir,
                    format!("kind '{kind}' in the metadata of a BERT classifier"),
                ));
            }
        }
        write_model_dir(dir, |tmp| {
            write_json(tmp, CONFIG_FILE, &config)?;
            self.save_weights(&tmp.join(WEIGHTS_FILE))?;
            for f in TOKENIZER_FILES {
                let src = tokenizer_dir.join(f);
                if src.is_file() {
                    std::fs::copy(&src, tmp.join(f)).map_err(|e| ModelError::io(&src, e))?;
                }
            }
            if let Some(m) = metrics {
                write_json(tmp, METRICS_FILE, m)?;
            }
            write_json(tmp, INTENT_FILE, &meta)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;

    fn floats(t: Tensor<Flex, 1>) -> Vec<f32> {
        t.into_data().to_vec::<f32>().unwrap()
    }

    fn std_dev(v: &[f32]) -> f32 {
        let mean = v.iter().sum::<f32>() / v.len() as f32;
        (v.iter().map(|x| (x - mean).powi(2)).sum::<f32>() / v.len() as f32).sqrt()
    }

    #[test]
    fn fresh_heads_start_as_hugging_face_or_pytorch_do() {
        let config: BertConfig = serde_json::from_value(serde_json::json!({
            "model_type": "bert", "vocab_size": 10, "hidden_size": 64, "num_hidden_layers": 1,
            "num_attention_heads": 2, "intermediate_size": 16, "hidden_act": "gelu",
            "layer_norm_eps": 1e-12, "max_position_embeddings": 8, "type_vocab_size": 2,
            "pad_token_id": 0, "initializer_range": 0.02
        }))
        .unwrap();
        let device = Default::default();
        let bound = 1.0 / 64f32.sqrt();
        // torch.nn.Linear's U(±1/√hidden) for weights and biases.
        let torch = config.init_classifier_with::<Flex>(40, HeadPooling::Mean, HeadInit::Torch, &device);
        let w = floats(torch.classifier.weight.val().reshape([-1]));
        let b = floats(torch.classifier.bias.as_ref().unwrap().val());
        assert!(w.iter().chain(&b).all(|x| x.abs() <= bound), "inside ±1/√64");
        let want = bound / 3f32.sqrt(); // the standard deviation of U(−a, a)
        assert!((std_dev(&w) - want).abs() < 0.1 * want, "std {} vs {want}", std_dev(&w));
        assert!(b.iter().filter(|x| **x != 0.0).count() == 40, "biases drawn, not zero");
        // Hugging Face's N(0, initializer_range) and zero biases, for the pooler too.
        for pooling in [HeadPooling::Mean, HeadPooling::Pooler] {
            let hf = config.init_classifier::<Flex>(40, pooling, &device);
            let w = floats(hf.classifier.weight.val().reshape([-1]));
            assert!((std_dev(&w) - 0.02).abs() < 0.002, "std {}", std_dev(&w));
            assert!(floats(hf.classifier.bias.as_ref().unwrap().val()).iter().all(|x| *x == 0.0));
            assert_eq!(hf.bert.pooler.is_some(), pooling == HeadPooling::Pooler);
        }
        let torch = config.init_classifier_with::<Flex>(40, HeadPooling::Pooler, HeadInit::Torch, &device);
        let p = floats(torch.bert.pooler.as_ref().expect("a pooler").dense.weight.val().reshape([-1]));
        assert!(p.iter().all(|x| x.abs() <= bound) && (std_dev(&p) - want).abs() < 0.1 * want);
    }
}
