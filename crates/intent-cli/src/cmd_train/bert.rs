//! `intent train bert`'s flags, and the options they make.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use intent_models::bert::{HeadInit, HeadPooling, Precision};
use intent_train::bert::PosWeight;
use intent_train::{BertOptions, DeviceSpec, EngineConfig};

use super::{DataFlags, RunFlags, ShapeMode};

/// Hyperparameters of BERT fine-tuning (defaults: `hf_finetune.py`'s recipe, a faster head, a step floor).
#[derive(Args, Debug, Clone)]
pub struct BertFlags {
    /// Base encoder: a Hugging Face folder (e.g. models/all-MiniLM-L6-v2 from
    /// `cargo xtask fetch-model minilm`) or a hub repo id.
    #[arg(long, value_name = "DIR|REPO_ID")]
    pub base: String,
    /// Hub revision when --base is a repo id.
    #[arg(long, default_value = "main")]
    pub revision: String,
    /// Epochs.
    #[arg(long, default_value_t = 3)]
    pub epochs: usize,
    /// Texts per step.
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    /// Peak learning rate (AdamW) [default: 5e-5, Hugging Face's; 2e-4 for multi-label data].
    #[arg(long)]
    pub lr: Option<f64>,
    /// Token limit per text.
    #[arg(long, default_value_t = 64)]
    pub max_len: usize,
    /// Share of steps for linear warm-up (then linear decay to 0).
    #[arg(long, default_value_t = 0.1)]
    pub warmup_ratio: f64,
    /// AdamW decoupled weight decay.
    #[arg(long, default_value_t = 0.01)]
    pub weight_decay: f64,
    /// The head's sentence vector: pooler (HF BertForSequenceClassification) or mean; default:
    /// the base's own (mean for sentence-transformers encoders such as all-MiniLM-L6-v2).
    #[arg(long, value_enum)]
    pub pooling: Option<HeadPooling>,
    /// Early stopping: epochs without a better validation score (default: off).
    #[arg(long)]
    pub patience: Option<usize>,
    /// Global gradient-norm clipping (L2 over all gradients, as Hugging Face's Trainer); 0 disables.
    #[arg(long, default_value_t = 1.0)]
    pub max_grad_norm: f64,
    /// Batches in shuffled order as they come, instead of grouped by text length (more padding).
    #[arg(long)]
    pub no_length_buckets: bool,
    /// Train the head only (pooler + classifier); the encoder's weights stay as loaded.
    #[arg(long)]
    pub freeze_encoder: bool,
    /// Write a checkpoint here after every epoch (model, optimizer, best model, position).
    #[arg(long, value_name = "DIR")]
    pub checkpoint_dir: Option<PathBuf>,
    /// Continue from the latest checkpoint in --checkpoint-dir (same flags and data; starts
    /// afresh when there is none).
    #[arg(long, requires = "checkpoint_dir")]
    pub resume: bool,
    /// Stop after this many epochs in this invocation (a time-limited slot); the checkpoint in
    /// --checkpoint-dir continues the run with --resume. Nothing is written to --out until the
    /// last epoch.
    #[arg(long, value_name = "N", requires = "checkpoint_dir")]
    pub stop_after_epochs: Option<usize>,
    /// Compute device: auto (CUDA device 0 when this build has CUDA and a GPU works, else the
    /// CPU), cpu, ndarray (feature `ndarray`), cuda or cuda:N (feature `cuda`), vulkan or
    /// vulkan:N (feature `vulkan`).
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// Tensor shapes from a small fixed set (the last batch filled up, lengths padded to
    /// --pad-to-multiple-of): auto = on for GPUs, where every new shape compiles kernels; off on
    /// the CPU, where padding to the longest text of each batch is fastest.
    #[arg(long, value_enum, default_value_t = ShapeMode::Auto)]
    pub static_shapes: ShapeMode,
    /// Pad each batch's length up to a multiple of N tokens (transformers' pad_to_multiple_of);
    /// default: 16 with static shapes, none otherwise; 0 or 1: the longest text.
    #[arg(long, value_name = "N")]
    pub pad_to_multiple_of: Option<usize>,
    /// Learning rate of the fresh classification head [default: 20 × the encoder's rate; equal to
    /// --lr: hf_finetune.py's one rate].
    #[arg(long, value_name = "LR")]
    pub head_lr: Option<f64>,
    /// Multi-label: weight of each label's positives in BCE, from label frequencies.
    #[arg(long, value_enum, default_value_t = BertOptions::default().pos_weight)]
    pub pos_weight: PosWeight,
    /// At least this many optimizer steps: on small data the epochs are raised until training
    /// makes them, and early stopping waits; default: 1200 for multi-label data, 400 otherwise;
    /// 0: --epochs alone decides.
    #[arg(long, value_name = "N")]
    pub min_steps: Option<usize>,
    /// Multi-label without --val: share of the training data held out (stratified) to pick the
    /// best epoch and tune per-label thresholds; 0 keeps every example for training and the
    /// thresholds at 0.5.
    #[arg(long, value_name = "SHARE", default_value_t = BertOptions::default().threshold_holdout)]
    pub threshold_holdout: f64,
    /// How the fresh head starts: hf (N(0, initializer_range), biases 0, as transformers) or
    /// torch (nn.Linear's U(±1/√hidden), as hf_finetune.py's head).
    #[arg(long, value_enum, default_value_t = HeadInit::Hf)]
    pub head_init: HeadInit,
    /// Float type of the encoder's matrix products: f32, or bf16 mixed precision (the layers'
    /// products in bf16 on a GPU's bf16 units; weights, optimizer, LayerNorm and loss in f32).
    #[arg(long, value_enum, default_value_t = Precision::F32)]
    pub precision: Precision,
}

impl BertFlags {
    /// The options and device (the trainer checks the values, once).
    pub fn options(&self, run: &RunFlags) -> Result<(BertOptions, DeviceSpec)> {
        let device: DeviceSpec = self.device.parse()?;
        let defaults = BertOptions::default();
        if !(self.max_grad_norm >= 0.0 && self.max_grad_norm.is_finite()) {
            anyhow::bail!(
                "--max-grad-norm {}: expected a number ≥ 0 (0 disables clipping)",
                self.max_grad_norm
            );
        }
        let opts = BertOptions {
            max_len: self.max_len,
            pooling: self.pooling,
            freeze_encoder: self.freeze_encoder,
            oos_label: run.oos_label.clone(),
            pad_to_multiple_of: self.pad_to_multiple_of,
            head_lr: self.head_lr,
            // An --lr of one's own holds for multi-label data too.
            multi_label_lr: if self.lr.is_some() { None } else { defaults.multi_label_lr },
            pos_weight: self.pos_weight,
            threshold_holdout: self.threshold_holdout,
            head_init: self.head_init,
            precision: self.precision,
            engine: EngineConfig {
                min_steps: self.min_steps,
                static_shapes: self.static_shapes.setting(),
                max_grad_norm: (self.max_grad_norm > 0.0).then_some(self.max_grad_norm),
                length_buckets: !self.no_length_buckets,
                checkpoint_dir: self.checkpoint_dir.clone(),
                resume: self.resume,
                stop_after_epochs: self.stop_after_epochs,
                epochs: self.epochs,
                batch_size: self.batch_size,
                lr: self.lr.unwrap_or(defaults.engine.lr),
                weight_decay: self.weight_decay,
                warmup_ratio: self.warmup_ratio,
                patience: self.patience,
                seed: run.seed,
                ..defaults.engine
            },
        };
        Ok((opts, device))
    }
}

#[derive(Args, Debug)]
pub struct BertArgs {
    #[command(flatten)]
    pub data: DataFlags,
    #[command(flatten, next_help_heading = "BERT and engine")]
    pub bert: BertFlags,
    #[command(flatten, next_help_heading = "Run")]
    pub run: RunFlags,
}
