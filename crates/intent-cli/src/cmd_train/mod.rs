//! `intent train …`

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use intent_data::text::{Analyzer, TokenPattern, VectorizerConfig, Weighting};
use intent_data::Dataset;
use intent_models::svm::{ClassWeight, KernelChoice, SvmParams};
use intent_train::bert::PosWeight;
use intent_train::{DeviceSpec, EngineConfig, LrSchedule, MlpOptions, SvmOptions};

use crate::common::InputFlags;

mod bert;
pub use bert::BertArgs;

#[derive(Subcommand, Debug)]
pub enum TrainCommand {
    /// Bag-of-words MLP (softmax head, or sigmoid heads for multi-label data).
    Mlp(MlpArgs),
    /// SVM on TF-IDF features: linear one-vs-rest (default, as scikit-learn's LinearSVC) or a
    /// kernel SVC (--kernel rbf) for small data sets; calibrated confidences.
    Svm(SvmArgs),
    /// Fine-tune a BERT-family encoder (a Hugging Face folder or hub repo id) with a
    /// classification head; writes a Hugging Face folder that transformers loads.
    Bert(BertArgs),
    /// Neural Collaborative Filtering recommender (GMF, MLP, NeuMF) on implicit feedback
    /// (interactions JSON or MovieLens u.data); each user's latest interaction held out.
    Ncf(crate::cmd_ncf::NcfArgs),
}

/// Text features (shared by the models; defaults depend on the model).
#[derive(Args, Debug, Clone)]
pub struct FeatureFlags {
    /// Feature weighting [default: binary for mlp, tfidf for svm].
    #[arg(long, value_enum)]
    pub features: Option<Weighting>,
    /// Word n-grams up to this length [default: 1 for mlp, 2 for svm].
    #[arg(long)]
    pub ngram_max: Option<usize>,
    /// Character n-grams inside words (scikit-learn's char_wb) instead of word n-grams, e.g. 2-5.
    #[arg(long, value_name = "MIN-MAX", conflicts_with_all = ["ngram_max", "tokenizer"])]
    pub char_ngrams: Option<String>,
    /// Word pattern [default: unicode-words for mlp, sklearn (\w\w+) for svm].
    #[arg(long, value_parser = ["unicode-words", "sklearn"])]
    pub tokenizer: Option<String>,
    /// Drop terms seen in fewer training texts.
    #[arg(long, default_value_t = 1)]
    pub min_count: usize,
    /// Keep at most this many terms.
    #[arg(long)]
    pub max_vocab: Option<usize>,
}

impl FeatureFlags {
    /// The vectorizer settings over `base` (the model's defaults).
    pub fn vectorizer(&self, base: VectorizerConfig) -> Result<VectorizerConfig> {
        let mut v = base;
        if let Some(f) = self.features {
            v.weighting = f;
            v.sublinear_tf = v.weighting == Weighting::Tfidf;
        }
        if let Some(n) = self.ngram_max {
            v.ngram_max = n;
        }
        if let Some(t) = &self.tokenizer {
            v.tokenizer = if t == "sklearn" { TokenPattern::Sklearn } else { TokenPattern::UnicodeWords };
        }
        if let Some(range) = &self.char_ngrams {
            let bad = || {
                anyhow::anyhow!("--char-ngrams '{range}': expected MIN-MAX with 1 <= MIN <= MAX, e.g. 2-5")
            };
            let (a, b) = range.split_once('-').ok_or_else(bad)?;
            let (a, b): (usize, usize) =
                (a.trim().parse().map_err(|_| bad())?, b.trim().parse().map_err(|_| bad())?);
            if a == 0 || a > b {
                return Err(bad());
            }
            v.analyzer = Analyzer::CharWb;
            v.ngram_min = a;
            v.ngram_max = b;
        }
        v.min_count = self.min_count;
        v.max_size = self.max_vocab;
        Ok(v)
    }
}

/// Flags of every training run.
#[derive(Args, Debug, Clone)]
pub struct RunFlags {
    /// Out-of-scope label (validation rows with it tune the confidence threshold).
    #[arg(long, default_value = "oos")]
    pub oos_label: String,
    /// Seed of everything random (initialisation, shuffling, dropout, coordinate order).
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
}

/// Hyperparameters of the MLP and the engine (shared with `intent pipeline`).
#[derive(Args, Debug, Clone)]
pub struct MlpFlags {
    /// Units per hidden layer.
    #[arg(long, default_value_t = MlpOptions::default().hidden_size)]
    pub hidden_size: usize,
    /// Hidden layers (the playbook recipe for large data sets: 4 with --dropout 0.45).
    #[arg(long, default_value_t = MlpOptions::default().hidden_layers)]
    pub hidden_layers: usize,
    /// Dropout after each hidden layer.
    #[arg(long, default_value_t = MlpOptions::default().dropout)]
    pub dropout: f64,
    /// Maximum epochs.
    #[arg(long, default_value_t = MlpOptions::default().engine.epochs)]
    pub epochs: usize,
    /// Examples per step [default: 64 on the CPU, 256 on a GPU].
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Peak learning rate (AdamW) [default: 3e-3; with the GPU's default batch 6e-3, scaled by
    /// √(256/64)].
    #[arg(long)]
    pub lr: Option<f64>,
    /// AdamW decoupled weight decay.
    #[arg(long, default_value_t = MlpOptions::default().engine.weight_decay)]
    pub weight_decay: f64,
    /// Learning-rate schedule after warm-up.
    #[arg(long, value_enum, default_value_t = MlpOptions::default().engine.schedule)]
    pub lr_schedule: LrSchedule,
    /// Share of steps for linear warm-up.
    #[arg(long, default_value_t = 0.0)]
    pub warmup_ratio: f64,
    /// Early stopping: epochs without a better validation score.
    #[arg(long, default_value_t = 3)]
    pub patience: usize,
    /// Train all epochs (no early stopping).
    #[arg(long)]
    pub no_early_stopping: bool,
    /// Compute device: cpu, ndarray (feature `ndarray`), cuda or cuda:N (feature `cuda`), vulkan or
    /// vulkan:N (feature `vulkan`), auto
    /// (CUDA when there is one). On a GPU this model's steps are tiny: see the README's GPU
    /// section for when the CPU is faster.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Tensor shapes from a small fixed set (the last batch filled up, a fixed-size sparse
    /// input): auto = on for GPUs, where every new shape compiles kernels; off on the CPU.
    #[arg(long, value_enum, default_value_t = ShapeMode::Auto)]
    pub static_shapes: ShapeMode,
    /// Multi-label without --val: share of the training data held out (stratified) to pick the
    /// best epoch and tune per-label thresholds; 0 keeps every example for training and the
    /// thresholds at 0.5.
    #[arg(long, value_name = "SHARE", default_value_t = MlpOptions::default().threshold_holdout)]
    pub threshold_holdout: f64,
    /// Multi-label: weight of each label's positives in BCE, from label frequencies.
    #[arg(long, value_enum, default_value_t = MlpOptions::default().pos_weight)]
    pub pos_weight: PosWeight,
    /// At least this many optimizer steps (the epochs are raised, early stopping waits); default:
    /// 1200 for multi-label data, none otherwise; 0: --epochs alone decides.
    #[arg(long, value_name = "N")]
    pub min_steps: Option<usize>,
}

/// `--static-shapes`.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShapeMode {
    /// On for accelerators (GPUs), off on the CPU.
    Auto,
    /// Always.
    On,
    /// Never.
    Off,
}

impl ShapeMode {
    /// [`EngineConfig::static_shapes`].
    pub fn setting(self) -> Option<bool> {
        match self {
            ShapeMode::Auto => None,
            ShapeMode::On => Some(true),
            ShapeMode::Off => Some(false),
        }
    }
}

impl MlpFlags {
    /// The options and device (the trainer checks the values, once).
    pub fn options(&self, features: &FeatureFlags, run: &RunFlags) -> Result<(MlpOptions, DeviceSpec)> {
        let device: DeviceSpec = self.device.parse()?;
        let (batch_size, lr) = intent_train::mlp::BATCH_DEFAULTS.resolve(device, self.batch_size, self.lr);
        let opts = MlpOptions {
            hidden_size: self.hidden_size,
            hidden_layers: self.hidden_layers,
            dropout: self.dropout,
            vectorizer: features.vectorizer(VectorizerConfig::default())?,
            engine: EngineConfig {
                epochs: self.epochs,
                batch_size,
                lr,
                weight_decay: self.weight_decay,
                schedule: self.lr_schedule,
                warmup_ratio: self.warmup_ratio,
                patience: (!self.no_early_stopping).then_some(self.patience),
                seed: run.seed,
                static_shapes: self.static_shapes.setting(),
                min_steps: self.min_steps,
                ..EngineConfig::default()
            },
            oos_label: run.oos_label.clone(),
            threshold_holdout: self.threshold_holdout,
            pos_weight: self.pos_weight,
        };
        Ok((opts, device))
    }
}

/// Hyperparameters of the SVMs (shared with `intent pipeline`).
#[derive(Args, Debug, Clone)]
pub struct SvmFlags {
    /// Penalty C (> 0): larger fits the training data more closely.
    #[arg(long = "c", default_value_t = SvmParams::default().c, value_name = "C")]
    pub c: f64,
    /// Solver tolerance.
    #[arg(long, default_value_t = SvmParams::default().tol)]
    pub tol: f64,
    /// Maximum solver passes.
    #[arg(long, default_value_t = SvmParams::default().max_iter)]
    pub max_iter: usize,
    /// Class weights: none, or balanced (n / (k · n_class)).
    #[arg(long, default_value = "none", value_parser = ["none", "balanced"])]
    pub class_weight: String,
    /// linear: one-vs-rest linear SVM on sparse features (any size); rbf or linear-ovo:
    /// one-vs-one kernel SVC through smartcore (small data sets: refused when its estimated
    /// training time exceeds a minute).
    #[arg(long, default_value = "linear", value_parser = ["linear", "rbf", "linear-ovo"])]
    pub kernel: String,
    /// RBF γ: a positive number, or scale (1 / (n_features · Var(X)), as scikit-learn).
    #[arg(long, default_value = "scale")]
    pub gamma: String,
    /// Share of the training data held out to calibrate confidences when there is no
    /// validation set (0: no calibration).
    #[arg(long, default_value_t = SvmOptions::default().calibration_holdout)]
    pub calibration_holdout: f64,
}

impl SvmFlags {
    /// The options (the trainer checks the values, once).
    pub fn options(&self, features: &FeatureFlags, run: &RunFlags) -> Result<SvmOptions> {
        let gamma = match self.gamma.as_str() {
            "scale" => None,
            g => Some(
                g.parse::<f64>()
                    .map_err(|_| anyhow::anyhow!("--gamma '{g}': expected a positive number or 'scale'"))?,
            ),
        };
        let kernel = match self.kernel.as_str() {
            "rbf" => KernelChoice::Rbf { gamma },
            "linear-ovo" => KernelChoice::LinearOvo,
            _ => KernelChoice::Linear,
        };
        let params = SvmParams {
            c: self.c,
            tol: self.tol,
            max_iter: self.max_iter,
            class_weight: if self.class_weight == "balanced" {
                ClassWeight::Balanced
            } else {
                ClassWeight::None
            },
            kernel,
            seed: run.seed,
            ..SvmParams::default()
        };
        Ok(SvmOptions {
            params,
            vectorizer: features.vectorizer(VectorizerConfig::sklearn_tfidf())?,
            oos_label: run.oos_label.clone(),
            calibration_holdout: self.calibration_holdout,
        })
    }
}

/// Data flags of `intent train …`.
#[derive(Args, Debug)]
pub struct DataFlags {
    /// Training data.
    #[arg(long)]
    pub train: PathBuf,
    /// Validation data (early stopping, calibration, out-of-scope threshold).
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
}

#[derive(Args, Debug)]
pub struct SvmArgs {
    #[command(flatten)]
    pub data: DataFlags,
    #[command(flatten, next_help_heading = "SVM")]
    pub svm: SvmFlags,
    #[command(flatten, next_help_heading = "Features")]
    pub features: FeatureFlags,
    #[command(flatten, next_help_heading = "Run")]
    pub run: RunFlags,
}

#[derive(Args, Debug)]
pub struct MlpArgs {
    #[command(flatten)]
    pub data: DataFlags,
    #[command(flatten, next_help_heading = "MLP and engine")]
    pub mlp: MlpFlags,
    #[command(flatten, next_help_heading = "Features")]
    pub features: FeatureFlags,
    #[command(flatten, next_help_heading = "Run")]
    pub run: RunFlags,
}

/// Loaded training, validation and test data; the test labels are checked against the training
/// labels before any training, so a bad test file does not waste the run.
struct Inputs {
    train: Dataset,
    val: Option<Dataset>,
    test: Option<intent_data::Loaded<Dataset>>,
}

fn load_inputs(d: &DataFlags, oos_label: &str) -> Result<Inputs> {
    let train = d.input.load(&d.train)?.data;
    let val = d.val.as_deref().map(|p| d.input.load(p)).transpose()?.map(|l| l.data);
    let test = d.test.as_deref().map(|p| d.input.load(p)).transpose()?;
    if let Some(t) = &test {
        crate::common::check_known_labels(t, &train.labels(), train.multi_label, oos_label)?;
    }
    Ok(Inputs { train, val, test })
}

/// Evaluates the saved model on the test data, writes `<out>/report/` and adds to metrics.json.
fn test_report(d: &DataFlags, test: Option<intent_data::Loaded<Dataset>>, oos_label: &str) -> Result<()> {
    if let (Some(test), Some(path)) = (test, d.test.as_ref()) {
        let model = crate::common::load_model(&d.out)?;
        let (report, rows) = crate::cmd_eval::evaluate(&model, &test.data, None, oos_label)?;
        println!("test ({}):\n{}", path.display(), intent_eval::report::summary(&report));
        intent_eval::report::write_report(&d.out.join("report"), &report, &rows, None, None)?;
        crate::cmd_eval::add_metrics(&d.out, "test", &report)?;
    }
    Ok(())
}

pub fn run(cmd: TrainCommand) -> Result<ExitCode> {
    match cmd {
        TrainCommand::Ncf(a) => crate::cmd_ncf::train(a),
        TrainCommand::Mlp(a) => {
            let (opts, device) = a.mlp.options(&a.features, &a.run)?;
            let inputs = load_inputs(&a.data, &opts.oos_label)?;
            let out = &a.data.out;
            let summary =
                intent_train::train_mlp_to_dir(device, &inputs.train, inputs.val.as_ref(), &opts, out)
                    .with_context(|| format!("training into {}", out.display()))?;
            println!(
                "saved {} (best epoch {}, median {:.3} s/epoch, first step after {:.2} s)",
                out.display(),
                summary.best_epoch,
                summary.median_epoch_seconds,
                summary.timing.time_to_first_step_s
            );
            if let Some(r) = &summary.val_report {
                println!("validation:\n{}", intent_eval::report::summary(r));
            }
            test_report(&a.data, inputs.test, &opts.oos_label)?;
            Ok(ExitCode::SUCCESS)
        }
        TrainCommand::Bert(a) => {
            let (opts, device) = a.bert.options(&a.run)?;
            let inputs = load_inputs(&a.data, &a.run.oos_label)?;
            let base = intent_models::hub::resolve(
                &a.bert.base,
                &intent_models::hub::HubOptions::from_env(Some(&a.bert.revision)),
            )
            .with_context(|| format!("--base {}", a.bert.base))?;
            let out = &a.data.out;
            let summary = intent_train::train_bert_to_dir(
                device,
                &base,
                &inputs.train,
                inputs.val.as_ref(),
                &opts,
                out,
            )
            .with_context(|| format!("training into {}", out.display()))?;
            if summary.interrupted {
                let ckpt =
                    a.bert.checkpoint_dir.as_deref().map(|p| p.display().to_string()).unwrap_or_default();
                println!(
                    "stopped after epoch {} of {}: checkpoint in {ckpt}; run the same command with \
                    --resume to continue",
                    summary.history.len(),
                    opts.engine.epochs
                );
                return Ok(ExitCode::SUCCESS);
            }
            println!(
                "saved {} (Hugging Face folder; best epoch {}, {:.1} samples/s steady on {}, first step \
                after {:.1} s)",
                out.display(),
                summary.best_epoch,
                summary.timing.steady_samples_per_second,
                summary.backend,
                summary.timing.time_to_first_step_s
            );
            if let Some(r) = &summary.val_report {
                println!("validation:\n{}", intent_eval::report::summary(r));
            }
            test_report(&a.data, inputs.test, &a.run.oos_label)?;
            Ok(ExitCode::SUCCESS)
        }
        TrainCommand::Svm(a) => {
            let opts = a.svm.options(&a.features, &a.run)?;
            let inputs = load_inputs(&a.data, &opts.oos_label)?;
            let out = &a.data.out;
            let summary = intent_train::train_svm_to_dir(&inputs.train, inputs.val.as_ref(), &opts, out)
                .with_context(|| format!("training into {}", out.display()))?;
            println!(
                "saved {} (fit {:.3} s: features + solver; calibration on {} {:.3} s)",
                out.display(),
                summary.fit_seconds,
                summary.calibrated_on,
                summary.calibration_seconds
            );
            if let Some(r) = &summary.val_report {
                println!("validation:\n{}", intent_eval::report::summary(r));
            }
            test_report(&a.data, inputs.test, &opts.oos_label)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Mlp {
        #[command(flatten)]
        mlp: MlpFlags,
        #[command(flatten)]
        features: FeatureFlags,
        #[command(flatten)]
        run: RunFlags,
    }

    /// The flags' defaults are the library's: no flag given, the options are `MlpOptions::default()`.
    #[test]
    fn mlp_flag_defaults_are_the_library_defaults() {
        let a = Mlp::parse_from(["mlp"]);
        let (opts, device) = a.mlp.options(&a.features, &a.run).unwrap();
        assert_eq!(opts, MlpOptions::default());
        assert!(matches!(device, DeviceSpec::Cpu));
    }

    #[derive(Parser)]
    struct Svm {
        #[command(flatten)]
        svm: SvmFlags,
        #[command(flatten)]
        features: FeatureFlags,
        #[command(flatten)]
        run: RunFlags,
    }

    #[test]
    fn svm_flag_defaults_are_the_library_defaults() {
        let a = Svm::parse_from(["svm"]);
        assert_eq!(a.svm.options(&a.features, &a.run).unwrap(), SvmOptions::default());
    }
}
