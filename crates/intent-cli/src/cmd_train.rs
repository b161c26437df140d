//! `intent train …`

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use intent_data::text::{VectorizerConfig, Weighting};
use intent_train::{DeviceSpec, EngineConfig, LrSchedule, MlpOptions};

use crate::common::InputFlags;

#[derive(Subcommand, Debug)]
pub enum TrainCommand {
    /// Bag-of-words MLP (softmax head, or sigmoid heads for multi-label data).
    Mlp(MlpArgs),
}

/// Hyperparameters of the MLP and the engine (shared with `intent pipeline`).
#[derive(Args, Debug, Clone)]
pub struct MlpFlags {
    /// Units per hidden layer.
    #[arg(long, default_value_t = 512)]
    pub hidden_size: usize,
    /// Hidden layers (the playbook recipe for large data sets: 4 with --dropout 0.45).
    #[arg(long, default_value_t = 1)]
    pub hidden_layers: usize,
    /// Dropout after each hidden layer.
    #[arg(long, default_value_t = 0.3)]
    pub dropout: f64,
    /// Maximum epochs.
    #[arg(long, default_value_t = 20)]
    pub epochs: usize,
    /// Examples per step.
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    /// Peak learning rate (AdamW).
    #[arg(long, default_value_t = 3e-3)]
    pub lr: f64,
    /// AdamW decoupled weight decay.
    #[arg(long, default_value_t = 1e-4)]
    pub weight_decay: f64,
    /// Learning-rate schedule after warm-up.
    #[arg(long, default_value = "constant", value_parser = ["constant", "linear", "cosine"])]
    pub lr_schedule: String,
    /// Share of steps for linear warm-up.
    #[arg(long, default_value_t = 0.0)]
    pub warmup_ratio: f64,
    /// Early stopping: epochs without a better validation score.
    #[arg(long, default_value_t = 3)]
    pub patience: usize,
    /// Train all epochs (no early stopping).
    #[arg(long)]
    pub no_early_stopping: bool,
    /// Feature weighting.
    #[arg(long, default_value = "binary", value_parser = ["binary", "count", "tfidf"])]
    pub features: String,
    /// Drop terms seen in fewer training texts.
    #[arg(long, default_value_t = 1)]
    pub min_count: usize,
    /// Keep at most this many terms.
    #[arg(long)]
    pub max_vocab: Option<usize>,
    /// Word n-grams up to this length.
    #[arg(long, default_value_t = 1)]
    pub ngram_max: usize,
    /// Out-of-scope label (validation rows with it tune the confidence threshold).
    #[arg(long, default_value = "oos")]
    pub oos_label: String,
    /// Seed of initialisation, shuffling and dropout.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Compute device: cpu, ndarray (feature `ndarray`), cuda or cuda:N (feature `cuda`).
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

impl MlpFlags {
    /// The checked options and device.
    pub fn options(&self) -> Result<(MlpOptions, DeviceSpec)> {
        let device: DeviceSpec = self.device.parse()?;
        let weighting: Weighting = self.features.parse()?;
        let schedule: LrSchedule = self.lr_schedule.parse().map_err(anyhow::Error::msg)?;
        let opts = MlpOptions {
            hidden_size: self.hidden_size,
            hidden_layers: self.hidden_layers,
            dropout: self.dropout,
            vectorizer: VectorizerConfig {
                weighting,
                ngram_max: self.ngram_max,
                min_count: self.min_count,
                max_size: self.max_vocab,
                sublinear_tf: weighting == Weighting::Tfidf,
            },
            engine: EngineConfig {
                epochs: self.epochs,
                batch_size: self.batch_size,
                lr: self.lr,
                weight_decay: self.weight_decay,
                schedule,
                warmup_ratio: self.warmup_ratio,
                patience: (!self.no_early_stopping).then_some(self.patience),
                seed: self.seed,
                ..EngineConfig::default()
            },
            oos_label: self.oos_label.clone(),
        };
        opts.engine.validate()?;
        Ok((opts, device))
    }
}

#[derive(Args, Debug)]
pub struct MlpArgs {
    /// Training data.
    #[arg(long)]
    pub train: PathBuf,
    /// Validation data (early stopping, best checkpoint, out-of-scope threshold).
    #[arg(long)]
    pub val: Option<PathBuf>,
    /// Test data: evaluated after training; the report goes into the model folder.
    #[arg(long)]
    pub test: Option<PathBuf>,
    /// Model folder to write.
    #[arg(long)]
    pub out: PathBuf,
    #[command(flatten)]
    pub input: InputFlags,
    #[command(flatten)]
    pub mlp: MlpFlags,
}

pub fn run(cmd: TrainCommand) -> Result<ExitCode> {
    match cmd {
        TrainCommand::Mlp(a) => {
            let (opts, device) = a.mlp.options()?;
            let train = a.input.load(&a.train)?.data;
            let val = a.val.as_deref().map(|p| a.input.load(p)).transpose()?.map(|l| l.data);
            let test = a.test.as_deref().map(|p| a.input.load(p)).transpose()?;
            if let Some(t) = &test {
                // Checked before training, so a bad test file does not waste the run.
                crate::common::check_known_labels(t, &train.labels(), train.multi_label, &opts.oos_label)?;
            }
            let summary = intent_train::train_mlp_to_dir(device, &train, val.as_ref(), &opts, &a.out)
                .with_context(|| format!("training into {}", a.out.display()))?;
            println!(
                "saved {} (best epoch {}, median {:.3} s/epoch)",
                a.out.display(),
                summary.best_epoch,
                summary.median_epoch_seconds
            );
            if let Some(r) = &summary.val_report {
                println!("validation:\n{}", intent_eval::report::summary(r));
            }
            if let (Some(test), Some(path)) = (test, a.test.as_ref()) {
                let model = crate::common::load_model(&a.out)?;
                let (report, rows) = crate::cmd_eval::evaluate(&model, &test.data, None, &opts.oos_label);
                println!("test ({}):\n{}", path.display(), intent_eval::report::summary(&report));
                intent_eval::report::write_report(&a.out.join("report"), &report, &rows, None)?;
                crate::cmd_eval::add_metrics(&a.out, "test", &report)?;
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
