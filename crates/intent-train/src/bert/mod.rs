//! Fine-tuning BERT classifiers: a base encoder folder (all-MiniLM-L6-v2, any BERT checkpoint)
//! plus a fresh sequence-classification head, trained end to end through the shared engine
//! (AdamW, warm-up + linear decay, per-epoch validation, best checkpoint), single-label
//! (cross-entropy) or multi-label (BCE on logits). Batches are padded to their longest text,
//! or up to a multiple of 16 tokens with static shapes ([`Padding`]). The result saves as a
//! Hugging Face folder ([`TrainedBert::save`]).

mod batching;
mod task;

pub use batching::{batch, Padding, DEFAULT_PAD_TO_MULTIPLE_OF, EVAL_BATCH};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use intent_data::text::VectorizerConfig;
use intent_data::{data_hash, Dataset};
use intent_eval::Report;
use intent_models::bert::{
    BertConfig, BertForSequenceClassification, BertTokenizer, HeadInit, HeadPooling, Precision,
};
use intent_models::folder::{now_unix, ModelConfig, Preprocessing, Versions, CONFIG_FILE, WEIGHTS_FILE};
use serde::{Deserialize, Serialize};

use intent_models::checked::Check;

use batching::{probabilities, tokenize};
use task::Task;

use crate::engine::{fit, EngineConfig, EpochLog};
pub use crate::loss::{bce_with_pos_weight, PosWeight};
use crate::schedule::LrSchedule;
use crate::TrainError;

/// Everything `intent train bert` can set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BertOptions {
    /// Token limit per text (longer texts are cut).
    pub max_len: usize,
    /// The head's sentence vector (`None`: the base's own, see [`base_pooling`]).
    #[serde(default)]
    pub pooling: Option<HeadPooling>,
    /// Train the head only (pooler and classifier); embeddings and layers stay as loaded.
    #[serde(default)]
    pub freeze_encoder: bool,
    /// Out-of-scope label of validation data (its threshold is tuned when present).
    #[serde(default = "default_oos")]
    pub oos_label: String,
    /// Batches padded to a multiple of this many tokens (transformers' `pad_to_multiple_of`):
    /// a few sequence lengths instead of one per batch. `None`: 16 with static shapes (the
    /// default on accelerators, see [`EngineConfig::static_shapes`]), no rounding otherwise.
    #[serde(default)]
    pub pad_to_multiple_of: Option<usize>,
    /// Learning rate of the fresh classification head. A head initialised at random next to a
    /// pre-trained encoder learns faster at a higher rate. `None`: [`HEAD_LR_FACTOR`] × the
    /// encoder's rate. Setting it to `lr` gives `hf_finetune.py`'s one rate for everything.
    #[serde(default)]
    pub head_lr: Option<f64>,
    /// Peak learning rate on multi-label data in place of the engine's `lr` (`None`: `lr`).
    /// Default [`MULTI_LABEL_LR`]: BCE over dozens of labels with a few hundred to a few
    /// thousand texts learns too slowly at Hugging Face's 5e-5. Setting `lr` yourself should
    /// set this to `None` (the CLI's `--lr` and `intent retrain`'s `lr` do).
    #[serde(default = "default_multi_label_lr")]
    pub multi_label_lr: Option<f64>,
    /// Multi-label: BCE's weight of each label's positive examples, from label frequencies.
    #[serde(default)]
    pub pos_weight: PosWeight,
    /// Multi-label without validation data: the share of the training data (stratified by each
    /// example's rarest label) held out to pick the best epoch and tune per-label thresholds;
    /// the model trained on the rest is kept. 0: no hold-out (thresholds stay at 0.5).
    #[serde(default)]
    pub threshold_holdout: f64,
    /// How the fresh head starts ([`HeadInit`]): Hugging Face's N(0, 0.02) by default, or
    /// PyTorch's `nn.Linear` (`hf_finetune.py`'s head). BANKING77, `hf_finetune.py`'s recipe
    /// (one rate of 1e-4, 2 epochs), test accuracy with seeds 42 / 1: 0.9039 / 0.8994 with
    /// `hf`, 0.9123 / 0.9117 with `torch` (PyTorch's own loop on a GPU: 0.914). With the
    /// defaults (a 20× faster head) `torch` gained nothing on BANKING77 (0.9286 → 0.9295) and
    /// lost on small multi-label data (NLU++ folds 0–3, micro-F1 0.8623 → 0.8340; folds 0–15
    /// 0.9231 → 0.9206), hence `hf`.
    #[serde(default)]
    pub head_init: HeadInit,
    /// The float type of the encoder's matrix products ([`Precision`]): bf16 mixed precision
    /// for GPUs' bf16 matrix units; f32 by default.
    #[serde(default)]
    pub precision: Precision,
    /// Engine settings.
    pub engine: EngineConfig,
}

fn default_oos() -> String {
    "oos".into()
}

fn default_multi_label_lr() -> Option<f64> {
    Some(MULTI_LABEL_LR)
}

impl Default for BertOptions {
    /// `hf_finetune.py`'s recipe made explicit: batch 32, AdamW lr 5e-5, weight decay 0.01,
    /// β (0.9, 0.999), ε 1e-8, 10 % linear warm-up then linear decay, max_len 64, 3 epochs;
    /// plus Hugging Face `Trainer`'s gradient clipping at norm 1.0 and length-grouped batches,
    /// the base's own pooling, a faster head ([`HEAD_LR_FACTOR`] × lr), at least
    /// [`DEFAULT_MIN_STEPS`] steps ([`MULTI_LABEL_MIN_STEPS`] for multi-label data; `min_steps`
    /// `None` picks them), and for multi-label data lr [`MULTI_LABEL_LR`], √ positive weights
    /// and a 10 % hold-out for thresholds (without validation data).
    fn default() -> Self {
        BertOptions {
            max_len: 64,
            pooling: None,
            freeze_encoder: false,
            oos_label: default_oos(),
            pad_to_multiple_of: None,
            head_lr: None,
            multi_label_lr: default_multi_label_lr(),
            pos_weight: PosWeight::Sqrt,
            threshold_holdout: 0.1,
            head_init: HeadInit::Hf,
            precision: Precision::F32,
            engine: EngineConfig {
                epochs: 3,
                batch_size: 32,
                lr: 5e-5,
                weight_decay: 0.01,
                schedule: LrSchedule::Linear,
                warmup_ratio: 0.1,
                patience: None,
                min_steps: None,
                max_grad_norm: Some(1.0),
                length_buckets: true,
                ..EngineConfig::default()
            },
        }
    }
}

/// A fine-tuned classifier and its description.
pub struct TrainedBert<B: Backend> {
    /// The model (best epoch).
    pub model: BertForSequenceClassification<B>,
    /// The base's `config.json`.
    pub bert_config: BertConfig,
    /// This crate's description (kind `bert`), written to `intent.json`.
    pub meta: ModelConfig,
    /// Per-epoch logs.
    pub history: Vec<EpochLog>,
    /// Epoch of the model.
    pub best_epoch: usize,
    /// Whether early stopping ended training.
    pub stopped_early: bool,
    /// Time to the first step and steady-state speed.
    pub timing: crate::timing::Timing,
    /// Whether `--stop-after-epochs` ended this invocation before the last epoch.
    pub interrupted: bool,
    /// Report on the validation data with the tuned thresholds, when there was validation data.
    pub val_report: Option<Report>,
    /// The base folder (tokenizer files are copied from it).
    pub base: PathBuf,
}

impl<B: Backend> TrainedBert<B> {
    /// The `metrics.json` content: validation report, history and best epoch.
    pub fn metrics_json(&self) -> serde_json::Value {
        crate::validation::metrics_json(
            self.val_report.as_ref(),
            self.best_epoch,
            self.stopped_early,
            &self.history,
            &self.timing,
        )
    }

    /// Writes the Hugging Face folder (see `BertForSequenceClassification::save_pretrained`)
    /// with `metrics.json`.
    pub fn save(&self, dir: &Path) -> Result<(), TrainError> {
        let mut base = self.bert_config.clone();
        base.extra.remove("architectures");
        Ok(self.model.save_pretrained(dir, &base, &self.base, &self.meta, Some(&self.metrics_json()))?)
    }
}

/// The head pooling a base encoder was trained for: mean when it is a sentence-transformers
/// folder whose pooling module averages the tokens (`modules.json` → `1_Pooling/config.json`,
/// `pooling_mode_mean_tokens`: all-MiniLM-L6-v2 and most sentence encoders), else BERT's pooler
/// over `[CLS]` (Hugging Face's `BertForSequenceClassification`). On NLU++ banking with 414
/// training texts, mean pooling on all-MiniLM-L6-v2 reached micro-F1 0.79 where the pooler
/// reached 0.38 (same recipe); on BANKING77 0.931 against 0.915.
pub fn base_pooling(base: &Path) -> HeadPooling {
    let pooling_dir = std::fs::read_to_string(base.join("modules.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<Vec<serde_json::Value>>(&t).ok())
        .and_then(|modules| {
            modules.into_iter().find_map(|m| {
                let is_pooling = m["type"].as_str().is_some_and(|t| t.ends_with("models.Pooling"));
                is_pooling.then(|| m["path"].as_str().unwrap_or("1_Pooling").to_string())
            })
        });
    let mean = pooling_dir
        .and_then(|d| std::fs::read_to_string(base.join(d).join("config.json")).ok())
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .is_some_and(|c| c["pooling_mode_mean_tokens"].as_bool() == Some(true));
    if mean {
        HeadPooling::Mean
    } else {
        HeadPooling::Pooler
    }
}

/// The head's learning rate over the encoder's when [`BertOptions::head_lr`] is not set.
/// NLU++ banking (multi-label), 414 training texts, mean pooling, √ positive weights, test
/// micro-F1: 30 epochs at lr 2e-4, 0.770 with the same rate and 0.816 with 10×; 400 steps at
/// lr 5e-5, 0.725 with 10× and 0.780 with 20×. BANKING77 (single-label), 3 epochs at 5e-5, test
/// accuracy 0.8666 with the same rate and 0.9286 with 20×; with 10 examples per label (802
/// texts, 400 steps) 0.7273 and 0.8416 (lr 2e-4 with the same rate for the head: 0.8295).
pub const HEAD_LR_FACTOR: f64 = 20.0;

/// The encoder's peak learning rate on multi-label data ([`BertOptions::multi_label_lr`]).
/// NLU++ banking, test folds 16–19, the other defaults (1200 steps, 20× head, √ weights,
/// hold-out thresholds, the lowest of tied thresholds), micro-F1: folds 0–15 (1,658 texts)
/// 0.877 at 5e-5, 0.908 at 2e-4; folds 0–3 (414 texts) 0.818 at 5e-5, 0.855 at 2e-4. With the
/// middle of tied thresholds at 2e-4: 0.923 and 0.862.
pub const MULTI_LABEL_LR: f64 = 2e-4;

/// [`EngineConfig::min_steps`] of fine-tuning on single-label data when none is set.
pub const DEFAULT_MIN_STEPS: usize = 400;

/// [`EngineConfig::min_steps`] of fine-tuning on multi-label data when none is set: a few
/// hundred texts make a dozen steps per epoch, far too few in 3 epochs. NLU++ banking, test
/// micro-F1 with the other defaults: 414 training texts, 0.780 after 400 steps and 0.818 after
/// 1200; 1,658 texts, 0.833 and 0.877.
pub const MULTI_LABEL_MIN_STEPS: usize = 1200;

/// The step floor fine-tuning uses when [`EngineConfig::min_steps`] is not set:
/// [`MULTI_LABEL_MIN_STEPS`] for multi-label data, [`DEFAULT_MIN_STEPS`] otherwise.
pub fn default_min_steps(multi_label: bool) -> usize {
    if multi_label {
        MULTI_LABEL_MIN_STEPS
    } else {
        DEFAULT_MIN_STEPS
    }
}

/// Fine-tunes the encoder in `base` (a Hugging Face folder) with a fresh head on `train`;
/// validation accuracy (micro-F1 for multi-label) on `val` picks the best epoch. Multi-label data
/// without `val` holds out [`BertOptions::threshold_holdout`] of `train` for that and for the
/// per-label thresholds.
pub fn train_bert<B: AutodiffBackend>(
    base: &Path,
    train: &Dataset,
    val: Option<&Dataset>,
    opts: &BertOptions,
    device: &B::Device,
) -> Result<TrainedBert<B::InnerBackend>, TrainError> {
    for (name, value) in [("head_lr", opts.head_lr), ("multi_label_lr", opts.multi_label_lr)] {
        if let Some(v) = value.filter(|v| !(*v > 0.0 && v.is_finite())) {
            return Err(TrainError::Hyperparameter {
                name,
                message: format!("{v} must be a positive number"),
            });
        }
    }
    let mut engine = opts.engine.clone();
    if engine.min_steps.is_none() {
        engine.min_steps = Some(default_min_steps(train.multi_label));
    }
    if let Some(lr) = opts.multi_label_lr.filter(|_| train.multi_label) {
        engine.lr = lr;
    }
    let engine = engine.check()?;
    let labels = crate::validation::require_two_labels(train)?;
    let held_out = match val {
        None => crate::validation::threshold_holdout(train, opts.threshold_holdout, opts.engine.seed)?,
        Some(_) => None,
    };
    let thresholds_from = match (&held_out, val) {
        (Some(_), _) => "holdout",
        (None, Some(_)) => "validation",
        (None, None) => "none",
    };
    let (train, val) = match &held_out {
        Some((t, v)) => (t, Some(v)),
        None => (train, val),
    };
    if let Some(advice) = crate::advice::data_size_advice(train) {
        tracing::warn!("{advice}");
    }
    let bert_config = BertConfig::read(&base.join(CONFIG_FILE))?;
    if opts.max_len < 2 || opts.max_len > bert_config.max_position_embeddings {
        return Err(TrainError::Hyperparameter {
            name: "max_len",
            message: format!(
                "{}: expected 2..={} (max_position_embeddings)",
                opts.max_len, bert_config.max_position_embeddings
            ),
        });
    }
    let tok = BertTokenizer::from_dir(base, bert_config.vocab_size, opts.max_len)?;
    let multi = train.multi_label;
    let index: BTreeMap<&str, usize> = labels.iter().enumerate().map(|(i, l)| (l.as_str(), i)).collect();
    let texts: Vec<&str> = train.examples.iter().map(|e| e.text.as_str()).collect();
    let sorted = |mut v: Vec<usize>| {
        v.sort_unstable();
        v.dedup();
        v
    };
    let targets: Vec<Vec<usize>> =
        train.examples.iter().map(|e| sorted(e.labels.iter().map(|l| index[l.as_str()]).collect())).collect();
    let known: Vec<(&str, Vec<usize>)> = val
        .map(|v| {
            v.examples
                .iter()
                .filter(|e| multi || e.label().is_some_and(|l| index.contains_key(l)))
                .map(|e| {
                    (
                        e.text.as_str(),
                        sorted(e.labels.iter().filter_map(|l| index.get(l.as_str()).copied()).collect()),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let val_texts: Vec<&str> = known.iter().map(|(t, _)| *t).collect();
    tracing::info!(
        "fine-tuning {} ({} layers, hidden {}): {} examples, {} labels, max_len {}, backend {}",
        base.display(),
        bert_config.num_hidden_layers,
        bert_config.hidden_size,
        train.len(),
        labels.len(),
        opts.max_len,
        B::name(device)
    );
    let pooling = opts.pooling.unwrap_or_else(|| base_pooling(base));
    tracing::info!("head: {pooling:?} pooling{}", if opts.pooling.is_none() { " (the base's)" } else { "" });
    B::seed(device, opts.engine.seed);
    let (mut model, had_head) = bert_config
        .init_classifier_with::<B>(labels.len(), pooling, opts.head_init, device)
        .load_weights(&base.join(WEIGHTS_FILE))?;
    if had_head {
        tracing::warn!(
            "{}: the base already has a classification head; it is replaced by a fresh one of {} labels",
            base.display(),
            labels.len()
        );
    }
    model.bert.precision = opts.precision;
    if opts.precision == Precision::Bf16 {
        tracing::info!("mixed precision: the layers' matrix products in bf16, weights and the rest in f32");
        if crate::engine::is_cpu_backend::<B>(device) {
            tracing::warn!("--precision bf16 on the CPU is slower than f32 (no bf16 matrix units there)");
        }
    }
    if opts.freeze_encoder {
        tracing::info!("encoder frozen: training the head only");
        model.bert.embeddings = model.bert.embeddings.no_grad();
        model.bert.encoder = model.bert.encoder.no_grad();
    }
    let rows = tokenize(&tok, &texts)?;
    let padding = Padding::of(opts, crate::engine::static_shapes::<B>(&opts.engine, device));
    if padding.fill {
        tracing::info!(
            "static shapes: batches of {} rows, lengths padded to a multiple of {}",
            opts.engine.batch_size,
            padding.multiple.map_or("1".into(), |m| m.to_string())
        );
    }
    let train_hash = data_hash(train);
    let mut options_json =
        serde_json::to_string(&BertOptions { engine: EngineConfig::default(), ..opts.clone() })
            .expect("serializes");
    // Checkpoints written before these options existed keep their fingerprint (their defaults).
    for added in [r#","head_init":"hf""#, r#","precision":"f32""#] {
        options_json = options_json.replace(added, "");
    }
    let targets_for_weights = targets.clone();
    let head_factor = opts.head_lr.map_or(HEAD_LR_FACTOR, |h| h / engine.lr);
    tracing::info!(
        "peak learning rate {:e}, head {:e}{}",
        engine.lr,
        engine.lr * head_factor,
        if multi && opts.multi_label_lr.is_some() { " (the default rate of multi-label data)" } else { "" }
    );
    let mut task = Task::<B> {
        lengths: rows.iter().map(Vec::len).collect(),
        fingerprint: format!(
            "base={} {options_json} train={} val={}",
            base.display(),
            train_hash,
            val.map(data_hash).unwrap_or_default()
        ),
        rows,
        targets,
        val_rows: tokenize(&tok, &val_texts)?,
        val_targets: known.into_iter().map(|(_, t)| t).collect(),
        labels: labels.len(),
        multi,
        pad: bert_config.pad_token_id.unwrap_or(0) as i64,
        padding,
        pos_weight: multi
            .then(|| opts.pos_weight.weights(&targets_for_weights, labels.len()))
            .flatten()
            .map(|w| Tensor::<B, 2>::from_data(TensorData::new(w, [1, labels.len()]), device)),
        head_factor,
        device: device.clone(),
    };
    let fitted = fit(model, train.len(), &engine, &mut task)?;
    let mut meta = ModelConfig {
        architecture: intent_models::Architecture::Bert(intent_models::BertArchitecture {
            base: Some(base.to_path_buf()),
            max_len: Some(opts.max_len),
            head_pooling: pooling,
        }),
        format_version: intent_models::folder::FORMAT_VERSION,
        labels: labels.clone(),
        multi_label: multi,
        thresholds: None,
        oos: None,
        preprocessing: Preprocessing {
            tokenizer: "bert".into(),
            vectorizer: VectorizerConfig::default(),
            vocab_file: if base.join("tokenizer.json").is_file() {
                "tokenizer.json".into()
            } else {
                "vocab.txt".into()
            },
            vocab_size: bert_config.vocab_size,
        },
        training: serde_json::json!({
            "options": opts,
            "history": fitted.history,
            "best_epoch": fitted.best_epoch,
            "backend": B::name(device),
            "train_examples": train.len(),
            "thresholds_from": thresholds_from,
        }),
        data_hash: train_hash,
        versions: Versions::default(),
        created_unix: now_unix(),
    };
    // Thresholds (per label, or out-of-scope) and the validation report, on the whole validation set.
    let val_report = match val {
        Some(v) if !v.is_empty() && !fitted.interrupted => {
            let rows = tokenize(&tok, &v.texts())?;
            let scores = probabilities(&fitted.model, &rows, task.pad, multi, &task.padding, device);
            Some(crate::validation::validation_report(&mut meta, &scores, v, &index, &opts.oos_label))
        }
        _ => None,
    };
    Ok(TrainedBert {
        model: fitted.model,
        bert_config,
        meta,
        history: fitted.history,
        best_epoch: fitted.best_epoch,
        stopped_early: fitted.stopped_early,
        timing: fitted.timing,
        interrupted: fitted.interrupted,
        val_report,
        base: base.to_path_buf(),
    })
}

/// What `intent train bert` prints.
#[derive(Debug, Clone)]
pub struct BertRunSummary {
    /// Per-epoch logs.
    pub history: Vec<EpochLog>,
    /// Epoch kept.
    pub best_epoch: usize,
    /// Training examples per second (median over epochs).
    pub samples_per_second: f64,
    /// Time to the first step and steady-state speed.
    pub timing: crate::timing::Timing,
    /// The backend's name.
    pub backend: String,
    /// Report on the validation data with the tuned thresholds.
    pub val_report: Option<Report>,
    /// `--stop-after-epochs` ended the run early: nothing was saved but the checkpoint.
    pub interrupted: bool,
}

struct BertJob<'a> {
    base: &'a Path,
    train: &'a Dataset,
    val: Option<&'a Dataset>,
    opts: &'a BertOptions,
    out: &'a Path,
}

impl crate::device::BackendJob for BertJob<'_> {
    type Output = BertRunSummary;
    fn run<B: AutodiffBackend>(self, device: B::Device) -> Result<BertRunSummary, TrainError> {
        let trained = train_bert::<B>(self.base, self.train, self.val, self.opts, &device)?;
        if !trained.interrupted {
            trained.save(self.out)?;
        }
        let rates: Vec<f64> =
            trained.history.iter().map(|h| self.train.len() as f64 / h.seconds.max(1e-9)).collect();
        Ok(BertRunSummary {
            samples_per_second: crate::timing::median(&rates).unwrap_or(0.0),
            timing: trained.timing,
            history: trained.history,
            best_epoch: trained.best_epoch,
            backend: B::name(&device),
            val_report: trained.val_report,
            interrupted: trained.interrupted,
        })
    }
}

/// Fine-tunes on the backend named by `device` and writes the Hugging Face folder to `out`
/// (atomically).
pub fn train_bert_to_dir(
    device: crate::DeviceSpec,
    base: &Path,
    train: &Dataset,
    val: Option<&Dataset>,
    opts: &BertOptions,
    out: &Path,
) -> Result<BertRunSummary, TrainError> {
    crate::device::dispatch(device, BertJob { base, train, val, opts, out })
}
