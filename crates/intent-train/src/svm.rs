//! Training SVMs: TF-IDF features, the solver, calibration of the decision values on held-out
//! data, the out-of-scope threshold (or per-label thresholds) and the validation report.
//!
//! Calibration data: the validation set when given; otherwise a stratified share of the
//! training data (`calibration_holdout`, 10 %) is held out, a second model is fitted on the
//! rest only to produce decision values on it, and the temperature fitted there is applied to the
//! model trained on all data (as scikit-learn's `CalibratedClassifierCV(ensemble=False)`).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use intent_data::split::{stratified_split, SplitConfig};
use intent_data::text::{SparseVec, Vectorizer, VectorizerConfig};
use intent_data::{data_hash, Dataset};
use intent_eval::Report;
use intent_models::checked::{Check, Checked};
use intent_models::folder::{now_unix, ModelConfig, Preprocessing, Versions, VOCAB_FILE};
use intent_models::svm::calibration::{fit_platt, fit_temperature};
use intent_models::svm::linear::FitInfo;
use intent_models::svm::{fit_body, Calibration, SvmArchitecture, SvmBody, SvmModel, SvmParams};
use intent_models::Architecture;
use serde::{Deserialize, Serialize};

use crate::TrainError;

/// Everything `intent train svm` can set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SvmOptions {
    /// Solver and kernel.
    pub params: SvmParams,
    /// Text features (default: scikit-learn's `TfidfVectorizer(ngram_range=(1, 2),
    /// sublinear_tf=True)`).
    pub vectorizer: VectorizerConfig,
    /// The out-of-scope label: validation rows with it tune the confidence threshold.
    pub oos_label: String,
    /// Share of the training data held out for calibration when there is no validation set
    /// (0 = no calibration: temperature 1).
    pub calibration_holdout: f64,
}

impl Default for SvmOptions {
    fn default() -> Self {
        SvmOptions {
            params: SvmParams::default(),
            vectorizer: VectorizerConfig::sklearn_tfidf(),
            oos_label: "oos".into(),
            calibration_holdout: 0.1,
        }
    }
}

/// A trained SVM and the facts of its training.
#[derive(Debug, Clone)]
pub struct TrainedSvm {
    /// The model, calibrated, with tuned thresholds.
    pub model: SvmModel,
    /// Seconds spent on the final model's features and solver (what scikit-learn's
    /// `TfidfVectorizer().fit_transform` + `LinearSVC().fit` cover).
    pub fit_seconds: f64,
    /// Seconds spent on calibration (including the hold-out model when there was no validation
    /// data).
    pub calibration_seconds: f64,
    /// Solver convergence.
    pub fit_info: FitInfo,
    /// Where the calibration was fitted: `validation`, `holdout` or `none`.
    pub calibrated_on: String,
    /// Negative log-likelihood on the calibration data before (T = 1) and after calibration.
    pub calibration_nll: Option<(f64, f64)>,
    /// Report on the validation data, when there was validation data.
    pub val_report: Option<Report>,
}

impl TrainedSvm {
    /// The `metrics.json` content.
    pub fn metrics_json(&self) -> serde_json::Value {
        serde_json::json!({
            "validation": self.val_report,
            "fit_seconds": self.fit_seconds,
            "calibration_seconds": self.calibration_seconds,
            "solver": self.fit_info,
            "calibration": {
                "fitted_on": self.calibrated_on,
                "method": self.model.calibration,
                "nll_before": self.calibration_nll.map(|p| p.0),
                "nll_after": self.calibration_nll.map(|p| p.1),
            },
        })
    }
}

/// Features and fitted weights.
struct Fitted {
    vectorizer: Vectorizer,
    body: SvmBody,
    info: FitInfo,
}

fn fit_on(
    data: &Dataset,
    index: &BTreeMap<&str, usize>,
    k: usize,
    opts: &SvmOptions,
    params: &Checked<SvmParams>,
) -> Result<Fitted, TrainError> {
    let vectorizer = Vectorizer::fit(&data.texts(), opts.vectorizer.clone())?;
    let rows: Vec<SparseVec> = data.examples.iter().map(|e| vectorizer.transform(&e.text)).collect();
    let targets: Vec<Vec<usize>> =
        data.examples.iter().map(|e| e.labels.iter().map(|l| index[l.as_str()]).collect()).collect();
    let (body, info) = fit_body(&rows, &targets, k, data.multi_label, vectorizer.dim(), params)?;
    Ok(Fitted { vectorizer, body, info })
}

/// Decision values of `texts` under fitted features and weights.
fn decisions(f: &Fitted, texts: &[&str]) -> Vec<Vec<f32>> {
    texts.iter().map(|t| f.body.decision(&f.vectorizer.transform(t))).collect()
}

fn placeholder_config() -> ModelConfig {
    ModelConfig {
        // Filled in from the fitted model (`SvmModel::architecture`) before it is used.
        architecture: Architecture::Svm(SvmArchitecture {
            kind: String::new(),
            kernel: None,
            num_features: 0,
            num_classes: 0,
            num_support_vectors: None,
            calibration: Calibration::Temperature { temperature: 1.0 },
        }),
        format_version: intent_models::folder::FORMAT_VERSION,
        labels: Vec::new(),
        multi_label: false,
        thresholds: None,
        oos: None,
        preprocessing: Preprocessing {
            tokenizer: String::new(),
            vectorizer: VectorizerConfig::default(),
            vocab_file: VOCAB_FILE.into(),
            vocab_size: 0,
        },
        training: serde_json::Value::Null,
        data_hash: String::new(),
        versions: Versions::default(),
        created_unix: 0,
    }
}

/// Fits the calibration on decision values of held-out examples (`gold`: class indices).
fn fit_calibration(dec: &[Vec<f32>], gold: &[Vec<usize>], multi: bool) -> Option<(Calibration, f64, f64)> {
    if multi {
        let mut f = Vec::new();
        let mut t = Vec::new();
        for (d, g) in dec.iter().zip(gold) {
            for (c, &v) in d.iter().enumerate() {
                f.push(f64::from(v));
                t.push(g.contains(&c));
            }
        }
        let bce = |a: f64, b: f64| {
            let n = f.len().max(1) as f64;
            f.iter()
                .zip(&t)
                .map(|(&x, &y)| {
                    let p = (1.0 / (1.0 + (-(a * x + b)).exp())).clamp(1e-12, 1.0 - 1e-12);
                    if y {
                        -p.ln()
                    } else {
                        -(1.0 - p).ln()
                    }
                })
                .sum::<f64>()
                / n
        };
        let (a, b) = fit_platt(&f, &t)?;
        Some((Calibration::Platt { a, b }, bce(1.0, 0.0), bce(a, b)))
    } else {
        let g: Vec<usize> = gold.iter().map(|g| g[0]).collect();
        let t = fit_temperature(dec, &g)?;
        let nll = |t| intent_models::svm::calibration::temperature_nll(dec, &g, t);
        Some((Calibration::Temperature { temperature: t }, nll(1.0), nll(t)))
    }
}

/// Trains an SVM on `train`; `val` (optional) calibrates it, tunes thresholds and is reported.
pub fn train_svm(
    train: &Dataset,
    val: Option<&Dataset>,
    opts: &SvmOptions,
) -> Result<TrainedSvm, TrainError> {
    let params = opts.params.clone().check()?;
    if !(0.0..0.5).contains(&opts.calibration_holdout) {
        return Err(TrainError::Hyperparameter {
            name: "calibration_holdout",
            message: format!("{}: expected a share in [0, 0.5)", opts.calibration_holdout),
        });
    }
    let labels = crate::validation::require_two_labels(train)?;
    let multi = train.multi_label;
    let k = labels.len();
    let index: BTreeMap<&str, usize> = labels.iter().enumerate().map(|(i, l)| (l.as_str(), i)).collect();
    let start = Instant::now();
    let fitted = fit_on(train, &index, k, opts, &params)?;
    let fit_seconds = start.elapsed().as_secs_f64();
    let passes = match fitted.body {
        SvmBody::Linear(_) => format!(", at most {} passes", fitted.info.max_iterations),
        SvmBody::Kernel(ref w) => format!(" (one-vs-one), {} support vectors", w.support.len()),
    };
    tracing::info!(
        "SVM fitted in {fit_seconds:.3} s: {} examples, {k} labels, {} features, {} binary problems{passes}",
        train.len(),
        fitted.vectorizer.dim(),
        fitted.info.problems,
    );

    // Calibration data: validation rows with known labels, else a held-out share of train.
    let start = Instant::now();
    let known = |e: &intent_data::Example| {
        !e.labels.is_empty() && e.labels.iter().all(|l| index.contains_key(l.as_str()))
    };
    let gold_of =
        |e: &intent_data::Example| e.labels.iter().map(|l| index[l.as_str()]).collect::<Vec<usize>>();
    let (fitted_calibration, calibrated_on) = match val.filter(|v| v.examples.iter().any(known)) {
        Some(v) => {
            let ex: Vec<&intent_data::Example> = v.examples.iter().filter(|e| known(e)).collect();
            let texts: Vec<&str> = ex.iter().map(|e| e.text.as_str()).collect();
            let gold: Vec<Vec<usize>> = ex.iter().map(|e| gold_of(e)).collect();
            (fit_calibration(&decisions(&fitted, &texts), &gold, multi), "validation")
        }
        None if opts.calibration_holdout > 0.0 => {
            let split = stratified_split(
                train,
                SplitConfig {
                    train_fraction: 1.0 - opts.calibration_holdout,
                    test_fraction: 0.0,
                    min_val_per_label: 0,
                    seed: opts.params.seed,
                },
            )?;
            let sub_labels = split.train.labels();
            if split.val.is_empty() || sub_labels.len() != k {
                tracing::warn!(
                    "too few examples to hold some out for calibration; confidences use temperature 1"
                );
                (None, "none")
            } else {
                let sub = fit_on(&split.train, &index, k, opts, &params)?;
                let texts: Vec<&str> = split.val.texts();
                let gold: Vec<Vec<usize>> = split.val.examples.iter().map(gold_of).collect();
                (fit_calibration(&decisions(&sub, &texts), &gold, multi), "holdout")
            }
        }
        None => (None, "none"),
    };
    let (calibration, calibration_nll, calibrated_on) = match fitted_calibration {
        Some((c, before, after)) => (c, Some((before, after)), calibrated_on),
        None => (Calibration::Temperature { temperature: 1.0 }, None, "none"),
    };
    let calibration_seconds = start.elapsed().as_secs_f64();
    match calibration {
        Calibration::Temperature { temperature } => {
            tracing::info!("calibration ({calibrated_on}): temperature {temperature:.4}")
        }
        Calibration::Platt { a, b } => {
            tracing::info!("calibration ({calibrated_on}): Platt a = {a:.4}, b = {b:.4}")
        }
    }

    let config = ModelConfig {
        labels: labels.clone(),
        multi_label: multi,
        thresholds: multi.then(|| vec![0.5; k]),
        preprocessing: Preprocessing {
            tokenizer: serde_json::to_value(opts.vectorizer.tokenizer)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default(),
            vectorizer: opts.vectorizer.clone(),
            vocab_file: VOCAB_FILE.into(),
            vocab_size: fitted.vectorizer.dim(),
        },
        training: serde_json::json!({
            "options": opts,
            "train_examples": train.len(),
            "fit_seconds": fit_seconds,
            "calibrated_on": calibrated_on,
        }),
        data_hash: data_hash(train),
        versions: Versions::default(),
        created_unix: now_unix(),
        ..placeholder_config()
    };
    let mut model = SvmModel { config, vectorizer: fitted.vectorizer, body: fitted.body, calibration };
    model.config.architecture = Architecture::Svm(model.architecture());

    let val_report = match val {
        Some(v) if !v.is_empty() => {
            let scores = model.scores(&v.texts());
            Some(crate::validation::validation_report(&mut model.config, &scores, v, &index, &opts.oos_label))
        }
        _ => None,
    };
    Ok(TrainedSvm {
        model,
        fit_seconds,
        calibration_seconds,
        fit_info: fitted.info,
        calibrated_on: calibrated_on.into(),
        calibration_nll,
        val_report,
    })
}

/// Summary of [`train_svm_to_dir`].
#[derive(Debug, Clone, Serialize)]
pub struct SvmRunSummary {
    /// Features + solver seconds of the final model.
    pub fit_seconds: f64,
    /// Calibration seconds.
    pub calibration_seconds: f64,
    /// Where the calibration was fitted.
    pub calibrated_on: String,
    /// Validation report.
    pub val_report: Option<Report>,
}

/// Trains and saves the model folder to `out` (atomically).
pub fn train_svm_to_dir(
    train: &Dataset,
    val: Option<&Dataset>,
    opts: &SvmOptions,
    out: &Path,
) -> Result<SvmRunSummary, TrainError> {
    let trained = train_svm(train, val, opts)?;
    trained.model.save(out, &trained.metrics_json())?;
    Ok(SvmRunSummary {
        fit_seconds: trained.fit_seconds,
        calibration_seconds: trained.calibration_seconds,
        calibrated_on: trained.calibrated_on,
        val_report: trained.val_report,
    })
}
