//! `intent eval` and `intent predict`.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;
use intent_eval::{tune_oos_threshold, ClassMetric, QualityGate, Report};

use crate::common::{check_known_labels, load_model, InputFlags};

#[derive(Args, Debug)]
pub struct EvalArgs {
    /// Model folder, or a registry alias (`models/NAME@current`).
    #[arg(long)]
    pub model: PathBuf,
    /// Labeled evaluation data (classifiers; an NCF model evaluates on its saved held-out split).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// NCF: the cut-off K of HR@K and NDCG@K (default: the one used at training).
    #[arg(short = 'k', long)]
    pub k: Option<usize>,
    /// NCF: rank the test item among every item the user has not trained on (HR, NDCG and
    /// recall@K) instead of against the sampled negatives.
    #[arg(long)]
    pub full_ranking: bool,
    #[command(flatten)]
    pub input: InputFlags,
    /// Write report.json, report.md, errors.jsonl and SVG plots here.
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Out-of-scope label.
    #[arg(long, default_value = "oos")]
    pub oos_label: String,
    /// Out-of-scope confidence threshold (default: the one tuned at training time, if any).
    #[arg(long, conflicts_with = "tune_on")]
    pub threshold: Option<f32>,
    /// Tune thresholds on this labeled file: the out-of-scope threshold (single-label; needs
    /// out-of-scope rows) or per-label thresholds (multi-label).
    #[arg(long)]
    pub tune_on: Option<PathBuf>,
    /// With --tune-on: write the tuned thresholds into the model folder (its intent.json, or
    /// config.json), so that predict, serve and later evaluations use them.
    #[arg(long, requires = "tune_on")]
    pub save_thresholds: bool,
    #[command(flatten)]
    pub gate: GateFlags,
}

/// Quality-gate flags.
#[derive(Args, Debug, Clone)]
pub struct GateFlags {
    /// Apply the quality gate: exit 1 and name the failing classes when it fails.
    #[arg(long)]
    pub gate: bool,
    /// Gate: minimum overall accuracy (micro-F1 for multi-label).
    #[arg(long, default_value_t = 0.90)]
    pub min_overall: f64,
    /// Gate: minimum per-class score.
    #[arg(long, default_value_t = 0.85)]
    pub min_class: f64,
    /// Gate: the per-class score.
    #[arg(long, default_value = "f1", value_parser = ["f1", "recall", "precision"])]
    pub class_metric: String,
}

impl GateFlags {
    pub fn gate(&self) -> QualityGate {
        let class_metric = match self.class_metric.as_str() {
            "recall" => ClassMetric::Recall,
            "precision" => ClassMetric::Precision,
            _ => ClassMetric::F1,
        };
        QualityGate { min_overall: self.min_overall, min_per_class: self.min_class, class_metric }
    }
}

pub use intent_serve::evaluation::evaluate;

/// Adds `report` under `key` in the model folder's metrics.json (rewritten atomically).
pub fn add_metrics(dir: &Path, key: &str, report: &Report) -> Result<()> {
    let path = dir.join(intent_models::folder::METRICS_FILE);
    let mut metrics: serde_json::Value = match std::fs::read_to_string(&path) {
        Ok(t) => serde_json::from_str(&t).with_context(|| format!("{}: not valid JSON", path.display()))?,
        Err(_) => serde_json::json!({}),
    };
    metrics[key] = serde_json::to_value(report)?;
    intent_data::io::atomic_write(&path, serde_json::to_string_pretty(&metrics)?.as_bytes())?;
    Ok(())
}

pub fn eval(a: EvalArgs) -> Result<ExitCode> {
    if let Some(dir) = crate::cmd_ncf::ncf_folder_of(&a.model) {
        if let Some(d) = &a.data {
            anyhow::bail!(
                "--data {}: an NCF model is evaluated on the held-out split saved with it; leave --data out",
                d.display()
            );
        }
        return crate::cmd_ncf::eval(&dir, a.report.as_deref(), a.k, a.full_ranking);
    }
    let Some(data_path) = a.data.clone() else {
        anyhow::bail!("--data is required to evaluate a classifier ({})", a.model.display());
    };
    let model = load_model(&a.model)?;
    let data = a.input.load(&data_path)?;
    check_known_labels(&data, model.labels(), model.config().multi_label, &a.oos_label)?;
    let mut curve = None;
    let mut label_thresholds = None;
    let threshold = match &a.tune_on {
        Some(p) if model.config().multi_label => {
            let tune = a.input.load(p)?;
            check_known_labels(&tune, model.labels(), true, &a.oos_label)?;
            let gold: Vec<Vec<String>> = tune.data.examples.iter().map(|e| e.labels.clone()).collect();
            let scores =
                model.scores(&tune.data.texts()).with_context(|| format!("scoring {}", p.display()))?;
            let th = intent_eval::tune_label_thresholds(&gold, &scores, model.labels());
            let mean = th.iter().sum::<f32>() / th.len().max(1) as f32;
            println!(
                "per-label thresholds tuned on {} ({} examples; mean {mean:.3}, min {:.2}, max {:.2})",
                p.display(),
                tune.data.len(),
                th.iter().copied().fold(1.0, f32::min),
                th.iter().copied().fold(0.0, f32::max)
            );
            if a.save_thresholds {
                save_thresholds(&a.model, Some(&th), None)?;
            }
            label_thresholds = Some(th);
            None
        }
        Some(p) => {
            let tune = a.input.load(p)?;
            check_known_labels(&tune, model.labels(), model.config().multi_label, &a.oos_label)?;
            let gold: Vec<&str> = tune.data.examples.iter().map(|e| e.label().unwrap_or("")).collect();
            let scores =
                model.scores(&tune.data.texts()).with_context(|| format!("scoring {}", p.display()))?;
            let (t, score) =
                tune_oos_threshold(&gold, &scores, model.labels(), &a.oos_label).with_context(|| {
                    format!(
                        "{}: no '{}' rows (or no in-scope rows) to tune a threshold on",
                        p.display(),
                        a.oos_label
                    )
                })?;
            println!("threshold {t:.4} tuned on {} (balanced score {score:.4})", p.display());
            curve = Some(intent_eval::oos_curve(&gold, &scores, model.labels(), &a.oos_label, 20));
            if a.save_thresholds {
                save_thresholds(&a.model, None, Some((&a.oos_label, t)))?;
            }
            Some(t)
        }
        None => a.threshold,
    };
    if let Some(t) = threshold {
        if !(0.0..=1.0).contains(&t) {
            anyhow::bail!("--threshold {t} is not in [0, 1]");
        }
    }
    let (report, rows) = intent_serve::evaluation::evaluate_with(
        &model,
        &data.data,
        threshold,
        label_thresholds.as_deref(),
        &a.oos_label,
    )?;
    println!("{}: {}", data_path.display(), a.model.display());
    print!("{}", intent_eval::report::summary(&report));
    let gate = a.gate.gate.then(|| a.gate.gate().check(&report));
    if let Some(dir) = &a.report {
        intent_eval::report::write_report(dir, &report, &rows, gate.as_ref(), curve.as_deref())?;
        println!("report written to {}", dir.display());
    }
    match gate {
        Some(g) => {
            println!("{}", g.summary);
            Ok(if g.passed { ExitCode::SUCCESS } else { ExitCode::from(1) })
        }
        None => Ok(ExitCode::SUCCESS),
    }
}

/// Writes tuned thresholds into the model folder's description (`intent.json` of a Hugging Face
/// folder, else `config.json`), atomically, leaving every other field as it was.
fn save_thresholds(model: &Path, labels: Option<&[f32]>, oos: Option<(&str, f32)>) -> Result<()> {
    let dir = match intent_serve::ModelSpec::parse(&model.to_string_lossy()) {
        intent_serve::ModelSpec::Dir(d) => d,
        _ => anyhow::bail!(
            "--save-thresholds {}: registry versions and hub repos are not edited in place; save into \
            a model folder and register it as a new version",
            model.display()
        ),
    };
    let path = [dir.join("intent.json"), dir.join("config.json")]
        .into_iter()
        .find(|p| p.is_file())
        .with_context(|| format!("{}: no intent.json or config.json", dir.display()))?;
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let mut config: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{}: not valid JSON", path.display()))?;
    if let Some(th) = labels {
        config["thresholds"] = serde_json::json!(th);
    }
    if let Some((label, t)) = oos {
        config["oos"] = serde_json::json!({ "label": label, "threshold": t });
    }
    intent_data::io::atomic_write(&path, serde_json::to_string_pretty(&config)?.as_bytes())?;
    println!("thresholds saved in {}", path.display());
    Ok(())
}

#[derive(Args, Debug)]
pub struct PredictArgs {
    /// Model folder, or a registry alias (`models/NAME@current`).
    #[arg(long)]
    pub model: PathBuf,
    /// Alternatives to list per text.
    #[arg(long, default_value_t = 3)]
    pub top_k: usize,
    /// Texts to classify; when none, one text per line is read from stdin.
    pub texts: Vec<String>,
}

pub fn predict(a: PredictArgs) -> Result<ExitCode> {
    let model = load_model(&a.model)?;
    let texts: Vec<String> = if a.texts.is_empty() {
        std::io::stdin().lock().lines().collect::<std::io::Result<Vec<_>>>().context("reading stdin")?
    } else {
        a.texts
    };
    let texts: Vec<&str> = texts.iter().map(String::as_str).filter(|t| !t.trim().is_empty()).collect();
    for chunk in texts.chunks(256) {
        for (t, p) in chunk.iter().zip(model.predict_batch(chunk, a.top_k)?) {
            let mut v = serde_json::to_value(&p)?;
            v["text"] = serde_json::Value::String(t.to_string());
            println!("{}", serde_json::to_string(&v)?);
        }
    }
    Ok(ExitCode::SUCCESS)
}
