//! `intent pipeline`: split → augment → train → evaluate → gate → registered version → samples.
//!
//! Versions go into the model registry (`<models-dir>/<name>/versions/N`, `intent_registry`),
//! the layout `intent models`, `intent retrain` and `intent serve --model NAME@current` use; a
//! version that passes the gate becomes `current`.
//!
//! Augmentation is applied to the training part after the split, so that synthetic variants of
//! a validation or test sentence never leak into training and inflate the scores.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;
use intent_data::augment::{augment_avoiding, AugmentConfig};
use intent_data::formats::outcomes::{outcomes_to_dataset, read_outcomes};
use intent_data::split::{merge, stratified_split, ConflictPolicy, SplitConfig};
use intent_data::validate::{validate_dataset, Severity};
use intent_data::write_dataset;
use intent_eval::{ClassMetric, QualityGate};

use intent_registry::Registry;

use crate::cmd_train::{FeatureFlags, MlpFlags, RunFlags, SvmFlags};
use crate::common::InputFlags;

#[derive(Args, Debug)]
pub struct PipelineArgs {
    /// Labeled data (any supported format); default: the example intents embedded in the binary.
    #[arg(long)]
    pub data: Option<PathBuf>,
    #[command(flatten)]
    pub input: InputFlags,
    /// Outcome definitions for augmentation (file or folder); default with the embedded data:
    /// the embedded outcome definitions.
    #[arg(long)]
    pub outcomes: Option<PathBuf>,
    /// Model name: the version goes to <models-dir>/<name>/versions/<n>/ (the registry).
    #[arg(long)]
    pub name: Option<String>,
    /// Registry root of the versioned models.
    #[arg(long, default_value = "models")]
    pub models_dir: PathBuf,
    /// Model kind to train: the bag-of-words MLP, an SVM (see the SVM flags; --kernel rbf for
    /// the kernel SVC), or `auto`: `intent compare` on this split (svm, mlp, zero-shot, bert
    /// within --time-budget) registers the best model that passes the gate.
    #[arg(long, default_value = "mlp", value_parser = ["mlp", "svm", "auto"])]
    pub model: String,
    /// `--model auto`: time for all the training together.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "30m")]
    pub time_budget: std::time::Duration,
    /// `--model auto`: sentence encoder of bert and zero-shot (default
    /// models/all-MiniLM-L6-v2 when it is there; without one they are skipped).
    #[arg(long, value_name = "DIR|REPO_ID")]
    pub base: Option<String>,
    /// Synthetic sentences per label, added to the training part.
    #[arg(long, default_value_t = 20)]
    pub augment_factor: usize,
    /// Share of each label for training.
    #[arg(long, default_value_t = 0.6)]
    pub train_fraction: f64,
    /// Share of each label for the test set.
    #[arg(long, default_value_t = 0.2)]
    pub test_fraction: f64,
    /// Minimum validation examples per label.
    #[arg(long, default_value_t = 2)]
    pub min_val_per_label: usize,
    /// Gate: minimum overall accuracy.
    #[arg(long, default_value_t = 0.90)]
    pub min_overall: f64,
    /// Gate: minimum per-class F1.
    #[arg(long, default_value_t = 0.85)]
    pub min_class: f64,
    /// Register the model even when the gate fails (not as `current`; the exit code still says
    /// it failed).
    #[arg(long)]
    pub no_gate: bool,
    #[command(flatten, next_help_heading = "Run")]
    pub run: RunFlags,
    #[command(flatten, next_help_heading = "Features")]
    pub features: FeatureFlags,
    #[command(flatten, next_help_heading = "MLP and engine (--model mlp)")]
    pub mlp: MlpFlags,
    #[command(flatten, next_help_heading = "SVM (--model svm)")]
    pub svm: SvmFlags,
}

/// Next free version number under `dir` (1 for a new model).
pub fn run(a: PipelineArgs) -> Result<ExitCode> {
    // The chosen model's flags are checked before any work, so a bad flag fails at once.
    enum Plan {
        Mlp(intent_train::MlpOptions, intent_train::DeviceSpec),
        Svm(intent_train::SvmOptions),
    }
    let plan = match a.model.as_str() {
        "svm" => Some(Plan::Svm(a.svm.options(&a.features, &a.run)?)),
        "auto" => None,
        _ => {
            let (o, d) = a.mlp.options(&a.features, &a.run)?;
            Some(Plan::Mlp(o, d))
        }
    };
    let (seed, oos_label) = (a.run.seed, a.run.oos_label.clone());
    let scratch = tempfile::tempdir().context("creating a temporary folder")?;
    let (data_path, outcomes_path, default_name) = match &a.data {
        Some(p) => (
            p.clone(),
            a.outcomes.clone(),
            p.file_stem().map_or("model".into(), |s| s.to_string_lossy().into_owned()),
        ),
        None => {
            crate::embedded::write_to(scratch.path()).context("writing the embedded example data")?;
            println!("using the embedded example data set ({} intents)", crate::embedded::INTENTS.len());
            (
                scratch.path().join("intents"),
                Some(a.outcomes.clone().unwrap_or(scratch.path().join("outcomes"))),
                "example".to_string(),
            )
        }
    };
    let name = a.name.clone().unwrap_or(default_name);

    // Load, add the outcome examples, validate.
    let mut data = a.input.load(&data_path)?.data;
    let outcomes = outcomes_path.as_deref().map(read_outcomes).transpose()?.unwrap_or_default();
    if !outcomes.is_empty() {
        let merged = merge(&[data, outcomes_to_dataset(&outcomes)], ConflictPolicy::KeepFirst);
        for c in &merged.conflicts {
            tracing::warn!("outcome example \"{}\" conflicts with the data ({:?} kept)", c.text, c.kept);
        }
        data = merged.data;
    }
    let findings = validate_dataset(&data, 5);
    for f in &findings {
        match f.severity {
            Severity::Error => tracing::error!("{}", f.message),
            Severity::Warning => tracing::warn!("{}", f.message),
        }
    }
    if findings.iter().any(|f| f.severity == Severity::Error) {
        anyhow::bail!(
            "{}: the data has errors (see above); fix them or run `intent data validate`",
            data_path.display()
        );
    }
    println!("data: {} examples, {} labels", data.len(), data.labels().len());

    // Split, then augment the training part only.
    let split = stratified_split(
        &data,
        SplitConfig {
            train_fraction: a.train_fraction,
            test_fraction: a.test_fraction,
            min_val_per_label: a.min_val_per_label,
            seed,
        },
    )?;
    let held_out: Vec<&str> = split.val.texts().into_iter().chain(split.test.texts()).collect();
    let augmented = augment_avoiding(
        &split.train,
        &outcomes,
        AugmentConfig { factor: a.augment_factor, seed },
        &held_out,
    );
    println!(
        "split: train {} (+{} synthetic), val {}, test {}",
        split.train.len(),
        augmented.data.len() - split.train.len(),
        split.val.len(),
        split.test.len()
    );

    let Some(plan) = plan else {
        // `--model auto`: every kind on this split; the best that passes the gate is registered.
        let files = scratch.path().join("split");
        std::fs::create_dir_all(&files).context("creating the split files")?;
        let (train, val, test) =
            (files.join("train.jsonl"), files.join("val.jsonl"), files.join("test.jsonl"));
        write_dataset(&train, &augmented.data)?;
        write_dataset(&val, &split.val)?;
        write_dataset(&test, if split.test.is_empty() { &split.val } else { &split.test })?;
        return crate::cmd_compare::run(crate::cmd_compare::CompareArgs {
            train: Some(train),
            test: Some(test),
            val: Some(val),
            // The split files are JSONL whatever the input was.
            input: crate::common::InputFlags { format: Some("jsonl".into()), skip_invalid: false },
            models: ["svm", "mlp", "zero-shot", "bert"].map(String::from).to_vec(),
            base: a.base.clone(),
            time_budget: a.time_budget,
            out: a.models_dir.join(&name).join("compare"),
            register: Some(name.clone()),
            models_dir: a.models_dir.clone(),
            min_overall: a.min_overall,
            min_class: a.min_class,
            seed,
            oos_label: oos_label.clone(),
        });
    };

    // Train into a candidate folder beside the versions, under the registry model's lock.
    let registered = Registry::new(&a.models_dir).model(&name)?;
    let model_root = registered.dir().to_path_buf();
    std::fs::create_dir_all(&model_root).with_context(|| format!("creating {}", model_root.display()))?;
    let lock = registered.lock()?;
    let candidate = model_root.join(format!(".candidate-{}", std::process::id()));
    match plan {
        Plan::Svm(opts) => {
            let s = intent_train::train_svm_to_dir(&augmented.data, Some(&split.val), &opts, &candidate)
                .with_context(|| format!("training {name}"))?;
            println!(
                "trained: SVM ({}), fit {:.3} s, calibrated on {}",
                a.svm.kernel, s.fit_seconds, s.calibrated_on
            );
        }
        Plan::Mlp(opts, device) => {
            let s =
                intent_train::train_mlp_to_dir(device, &augmented.data, Some(&split.val), &opts, &candidate)
                    .with_context(|| format!("training {name}"))?;
            println!(
                "trained: best epoch {} of {}, median {:.3} s/epoch",
                s.best_epoch,
                s.history.len(),
                s.median_epoch_seconds
            );
        }
    }
    let cleanup = |e: anyhow::Error| {
        let _ = std::fs::remove_dir_all(&candidate);
        e
    };

    // Evaluate on the test part (validation when there is no test part) and gate.
    let (eval_name, eval_data) =
        if split.test.is_empty() { ("validation", &split.val) } else { ("test", &split.test) };
    let model = crate::common::load_model(&candidate).map_err(cleanup)?;
    let (report, rows) = crate::cmd_eval::evaluate(&model, eval_data, None, &oos_label)?;
    println!("{eval_name}:\n{}", intent_eval::report::summary(&report));
    let gate =
        QualityGate { min_overall: a.min_overall, min_per_class: a.min_class, class_metric: ClassMetric::F1 }
            .check(&report);
    println!("{}", gate.summary);
    let write_extras = |dir: &Path| -> Result<()> {
        intent_eval::report::write_report(&dir.join("report"), &report, &rows, Some(&gate), None)?;
        crate::cmd_eval::add_metrics(dir, eval_name, &report)?;
        let d = dir.join("data");
        write_dataset(&d.join("train.jsonl"), &augmented.data)?;
        write_dataset(&d.join("val.jsonl"), &split.val)?;
        write_dataset(&d.join("test.jsonl"), &split.test)?;
        Ok(())
    };
    write_extras(&candidate).map_err(cleanup)?;
    if !gate.passed && !a.no_gate {
        let rejected = model_root.join("last-rejected");
        let _ = std::fs::remove_dir_all(&rejected);
        std::fs::rename(&candidate, &rejected).map_err(|e| cleanup(e.into()))?;
        println!("model not saved as a version; the candidate and its report are in {}", rejected.display());
        return Ok(ExitCode::from(1));
    }
    let current = registered.alias("current").map_err(|e| cleanup(e.into()))?;
    let note = format!("intent pipeline: {} on {}", a.model, data_path.display());
    let version =
        registered.register(&lock, &candidate, current, Some(note)).map_err(|e| cleanup(e.into()))?;
    let _ = std::fs::remove_dir_all(&candidate);
    let target = registered.version_dir(version);
    if gate.passed {
        registered.promote(&lock, version, "intent pipeline: quality gate passed")?;
        println!("saved {} (version {version}, current: {}@current)", target.display(), model_root.display());
    } else {
        println!("saved {} (version {version}; not current: the gate failed)", target.display());
    }
    drop(lock);

    // Sample predictions from the evaluation data.
    let model = crate::common::load_model(&target)?;
    println!("sample predictions:");
    for e in eval_data.examples.iter().step_by((eval_data.len() / 6).max(1)).take(6) {
        let p = model.predict(&e.text)?;
        println!(
            "  {:<50} → {} ({:.3}){}",
            format!("\"{}\"", e.text),
            p.label,
            p.confidence,
            if Some(p.label.as_str()) == e.label() { "" } else { "  ✗" }
        );
    }
    Ok(if gate.passed { ExitCode::SUCCESS } else { ExitCode::from(1) })
}
