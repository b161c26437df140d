//! BERT-family encoders from Hugging Face model folders.
//!
//! - [`config`]: HF `config.json` as is ([`BertConfig`]), sentence-transformers pooling;
//! - [`model`]: the encoder in burn ([`BertModel`]), module tree named after HF's weights;
//! - [`tokenizer`]: `tokenizer.json` or WordPiece from `vocab.txt`, dynamic padding, truncation;
//! - [`classifier`]: fine-tuned `BertForSequenceClassification` folders as classifiers;
//! - [`sequence`]: `BertForSequenceClassification` in burn (fine-tuning, HF-layout export);
//! - [`host`]: the CPU inference engine (the same forward pass on host buffers, faster on CPU);
//! - this module: loading weights (any float dtype, with or without the `bert.` prefix and the
//!   pooler), and [`SentenceEncoder`]: texts → hidden states → pooled sentence vectors.

pub mod classifier;
pub mod config;
pub mod dropout;
pub mod fused;
pub mod gelu;
pub mod host;
pub mod model;
pub mod sequence;
pub mod tokenizer;

/// Tests: burn's random generator is global to the backend; a test that seeds it and then draws
/// from it holds this lock, so a test running beside it cannot draw in between.
#[cfg(test)]
pub(crate) static BACKEND_RNG: std::sync::Mutex<()> = std::sync::Mutex::new(());

use std::path::Path;
use std::rc::Rc;

use burn::prelude::*;
use burn::store::{ModuleAdapter, ModuleSnapshot, PyTorchToBurnAdapter, SafetensorsStore, TensorSnapshot};
use burn::tensor::DType;

pub use classifier::BertClassifier;
pub use config::{BertConfig, Pooling, PoolingMode};
pub use host::HostBert;
pub use model::{BertModel, Precision};
pub use sequence::{BertForSequenceClassification, HeadInit, HeadPooling};
pub use tokenizer::{BertTokenizer, TokenBatch};

use crate::error::{ModelError, Result};

/// Casts every floating-point tensor of a checkpoint (f16, bf16, f64) to f32 on load.
#[derive(Debug, Clone, Default)]
struct CastToF32;

impl ModuleAdapter for CastToF32 {
    fn adapt(&self, snapshot: &TensorSnapshot) -> TensorSnapshot {
        if !matches!(snapshot.dtype, DType::F16 | DType::BF16 | DType::F64) {
            return snapshot.clone();
        }
        let data = snapshot.clone_data_fn();
        TensorSnapshot::from_closure(
            Rc::new(move || Ok(data()?.convert_dtype(DType::F32))),
            DType::F32,
            snapshot.shape.clone(),
            snapshot.path_stack.clone().unwrap_or_default(),
            snapshot.container_stack.clone().unwrap_or_default(),
            snapshot.tensor_id.unwrap_or_default(),
        )
    }

    fn clone_box(&self) -> Box<dyn ModuleAdapter> {
        Box::new(self.clone())
    }
}

/// A burn parameter path back in Hugging Face's spelling (for messages).
fn hf_name(path: &str) -> String {
    path.replace(".layer_norm.", ".LayerNorm.").replace(".self_attn.", ".self.")
}

/// A reader of a Hugging Face `model.safetensors` for this module tree: PyTorch → burn layout,
/// any float dtype → f32, the `bert.` prefix stripped, `LayerNorm` → `layer_norm`, `self` →
/// `self_attn`; partial (the caller checks what is missing).
fn hf_store(path: &Path) -> Result<SafetensorsStore> {
    if !path.is_file() {
        return Err(ModelError::io(
            path,
            std::io::Error::new(std::io::ErrorKind::NotFound, "weights file missing"),
        ));
    }
    Ok(SafetensorsStore::from_file(path)
        .with_from_adapter(PyTorchToBurnAdapter.chain(CastToF32))
        .with_key_remapping(r"^bert\.", "")
        .with_key_remapping(r"\.LayerNorm\.", ".layer_norm.")
        .with_key_remapping(r"\.attention\.self\.", ".attention.self_attn.")
        .allow_partial(true)
        .validate(false))
}

/// Checks a load: tensors that do not fit are an error naming them, and so are missing ones
/// unless `optional` accepts their (burn) path.
fn check_load(r: &burn::store::ApplyResult, path: &Path, optional: impl Fn(&str) -> bool) -> Result<()> {
    if !r.errors.is_empty() {
        let list: Vec<String> = r.errors.iter().take(5).map(|e| hf_name(&e.to_string())).collect();
        return Err(ModelError::invalid(
            path,
            format!("{} tensor(s) do not fit the config: {}", r.errors.len(), list.join("; ")),
        ));
    }
    let missing: Vec<String> =
        r.missing.iter().filter(|(p, _)| !optional(p)).map(|(p, _)| hf_name(p)).collect();
    if !missing.is_empty() {
        return Err(ModelError::invalid(
            path,
            format!(
                "{} tensor(s) missing: {}{}",
                missing.len(),
                missing[..missing.len().min(8)].join(", "),
                if missing.len() > 8 { ", …" } else { "" }
            ),
        ));
    }
    Ok(())
}

/// Loads `model.safetensors` (HF names, with or without the `bert.` prefix) into `model`.
/// Missing or mis-shaped tensors are an error naming them; tensors the encoder does not use
/// (pooler, classification heads, `position_ids`) are listed in a debug log.
pub fn load_weights<B: Backend>(mut model: BertModel<B>, path: &Path) -> Result<BertModel<B>> {
    let mut store = hf_store(path)?;
    let r = model
        .load_from(&mut store)
        .map_err(|e| ModelError::invalid(path, format!("cannot read the weights: {e}")))?;
    check_load(&r, path, |_| false)?;
    // burn 0.21 also lists LayerNorm weights matched through the adapter's weight → gamma
    // fallback as unused; they were loaded.
    let unused: Vec<&String> = r.unused.iter().filter(|p| !p.contains("layer_norm.")).collect();
    if !unused.is_empty() {
        tracing::debug!(
            "{}: {} tensor(s) not used by the encoder: {:?}",
            path.display(),
            unused.len(),
            unused
        );
    }
    Ok(model)
}

/// Texts in, hidden states or pooled sentence vectors out.
#[derive(Debug)]
pub struct SentenceEncoder<B: Backend> {
    /// The checkpoint's `config.json`.
    pub config: BertConfig,
    /// The encoder.
    pub model: BertModel<B>,
    /// Its tokenizer.
    pub tokenizer: BertTokenizer,
    /// Pooling (sentence-transformers settings, else mean without normalisation).
    pub pooling: Pooling,
    /// The CPU inference engine, used instead of `model.forward` when present.
    host: Option<HostBert>,
    device: B::Device,
}

impl<B: Backend> SentenceEncoder<B> {
    /// Loads a Hugging Face model folder (`config.json`, `model.safetensors`, `tokenizer.json` or
    /// `vocab.txt`, optional sentence-transformers pooling). Inputs are cut at `max_len` tokens
    /// (default and upper bound: `max_position_embeddings`).
    pub fn load(dir: &Path, max_len: Option<usize>, device: &B::Device) -> Result<Self> {
        if !dir.is_dir() {
            return Err(ModelError::io(
                dir,
                std::io::Error::new(std::io::ErrorKind::NotFound, "model folder not found"),
            ));
        }
        let config = BertConfig::read(&dir.join("config.json"))?;
        let limit = max_len.unwrap_or(config.max_position_embeddings);
        if limit < 2 || limit > config.max_position_embeddings {
            return Err(ModelError::Hyperparameter {
                name: "max_len",
                message: format!(
                    "{limit}: expected 2..={} (max_position_embeddings)",
                    config.max_position_embeddings
                ),
            });
        }
        let tokenizer = BertTokenizer::from_dir(dir, config.vocab_size, limit)?;
        let model = load_weights(config.init::<B>(device), &dir.join("model.safetensors"))?;
        let pooling = Pooling::from_sentence_transformers(dir)?
            .unwrap_or(Pooling { mode: PoolingMode::Mean, normalize: false });
        Self::from_parts(config, model, tokenizer, pooling, device)
    }

    /// Loads a local folder or, when `spec` is no folder, a hub repo id at `revision` (see
    /// [`crate::hub`]: cache, `HF_HUB_OFFLINE`, download). Returns the encoder and its folder.
    pub fn from_pretrained(
        spec: &str,
        revision: Option<&str>,
        max_len: Option<usize>,
        device: &B::Device,
    ) -> Result<(Self, std::path::PathBuf)> {
        let dir = crate::hub::resolve(spec, &crate::hub::HubOptions::from_env(revision))?;
        Ok((Self::load(&dir, max_len, device)?, dir))
    }

    /// Builds an encoder from parts (tests, fine-tuned models). On a CPU backend inference runs
    /// on the [`HostBert`] engine (see [`host::wanted`]).
    pub fn from_parts(
        config: BertConfig,
        model: BertModel<B>,
        tokenizer: BertTokenizer,
        pooling: Pooling,
        device: &B::Device,
    ) -> Result<Self> {
        let host = if host::wanted::<B>() { Some(HostBert::from_model(&model, &config)?) } else { None };
        Ok(SentenceEncoder { config, model, tokenizer, pooling, host, device: device.clone() })
    }

    /// Runs inference on burn's forward pass even on a CPU backend (comparisons, tests).
    pub fn without_host_engine(mut self) -> Self {
        self.host = None;
        self
    }

    /// Whether inference runs on the [`HostBert`] engine.
    pub fn uses_host_engine(&self) -> bool {
        self.host.is_some()
    }

    /// Tensors of a token batch.
    pub fn tensors(&self, b: &TokenBatch) -> [Tensor<B, 2, Int>; 3] {
        let t = |v: &Vec<i64>| {
            Tensor::<B, 2, Int>::from_data(TensorData::new(v.clone(), [b.rows, b.len]), &self.device)
        };
        [t(&b.input_ids), t(&b.token_type_ids), t(&b.attention_mask)]
    }

    /// Last hidden states `[rows, len, hidden]` of a batch and its tokens.
    pub fn hidden_states(&self, texts: &[&str]) -> Result<(Tensor<B, 3>, TokenBatch)> {
        let batch = self.tokenizer.encode_batch(texts)?;
        if let Some(host) = &self.host {
            let h = host.forward(&batch)?;
            let t = Tensor::<B, 3>::from_data(
                TensorData::new(h, [batch.rows, batch.len, host.hidden_size()]),
                &self.device,
            );
            return Ok((t, batch));
        }
        let [ids, types, mask] = self.tensors(&batch);
        Ok((self.model.forward(ids, types, mask), batch))
    }

    /// Pools hidden states `[rows, len, hidden]` with the attention mask `[rows, len]` (the
    /// encoder's pooling).
    pub fn pool(&self, hidden: Tensor<B, 3>, mask: Tensor<B, 2, Int>) -> Tensor<B, 2> {
        Self::pool_with(hidden, mask, self.pooling)
    }

    /// Pools hidden states with the given pooling.
    pub fn pool_with(hidden: Tensor<B, 3>, mask: Tensor<B, 2, Int>, pooling: Pooling) -> Tensor<B, 2> {
        let [b, _, d] = hidden.dims();
        let pooled = match pooling.mode {
            PoolingMode::Cls => hidden.slice([0..b, 0..1, 0..d]).reshape([b, d]),
            PoolingMode::Mean => {
                let m = mask.float().unsqueeze_dim::<3>(2);
                let sum = (hidden * m.clone()).sum_dim(1).reshape([b, d]);
                sum / m.sum_dim(1).reshape([b, 1]).clamp_min(1e-9)
            }
        };
        if pooling.normalize {
            let norm = pooled.clone().powi_scalar(2).sum_dim(1).sqrt().clamp_min(1e-12);
            pooled / norm
        } else {
            pooled
        }
    }

    /// Sentence vectors of `texts`, computed in batches of `batch_size` (each padded to its own
    /// longest text).
    pub fn embed(&self, texts: &[&str], batch_size: usize) -> Result<Vec<Vec<f32>>> {
        self.embed_with(texts, batch_size, self.pooling)
    }

    /// [`Self::embed`] with another pooling (a classification head reads the `[CLS]` state).
    ///
    /// Every batch is padded to its longest text, so texts are grouped by length first: sorted
    /// by token count and cut into batches of at most `batch_size` that stop growing once
    /// padding would exceed a quarter of the batch (given at least 4 texts). Results come back
    /// in input order and do not depend on the grouping (padding is masked).
    pub fn embed_with(&self, texts: &[&str], batch_size: usize, pooling: Pooling) -> Result<Vec<Vec<f32>>> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        // Tokenized once; each group is cut out of this batch and re-padded.
        let all = self.tokenizer.encode_batch(texts)?;
        let lens = all.lengths();
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&i| lens[i]);
        let mut out = vec![Vec::new(); texts.len()];
        let mut start = 0;
        while start < order.len() {
            let (mut end, mut tokens) = (start + 1, lens[order[start]]);
            while end < order.len() && end - start < batch_size.max(1) {
                let next = lens[order[end]];
                let (padded, real) = ((end - start + 1) * next, tokens + next);
                if end - start >= 4 && padded * 4 > real * 5 {
                    break;
                }
                tokens += next;
                end += 1;
            }
            let group = &order[start..end];
            for (&i, v) in group.iter().zip(self.embed_batch(&all.select(group), pooling)?) {
                out[i] = v;
            }
            start = end;
        }
        Ok(out)
    }

    /// One padded batch through the encoder, pooled.
    fn embed_batch(&self, batch: &TokenBatch, pooling: Pooling) -> Result<Vec<Vec<f32>>> {
        if let Some(host) = &self.host {
            return Ok(host.pool(&host.forward(batch)?, batch, pooling));
        }
        let [ids, types, mask] = self.tensors(batch);
        let pooled = Self::pool_with(self.model.forward(ids, types, mask.clone()), mask, pooling);
        let d = pooled.dims()[1];
        let flat: Vec<f32> =
            pooled.into_data().convert::<f32>().into_vec().map_err(|e| ModelError::Fit(format!("{e:?}")))?;
        Ok(flat.chunks(d).map(<[f32]>::to_vec).collect())
    }
}
