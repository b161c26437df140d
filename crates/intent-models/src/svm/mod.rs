//! Support vector machines on TF-IDF features.
//!
//! - [`linear`]: one-vs-rest linear SVM (squared hinge, L2), solved by dual coordinate descent
//!   ([`dcd`]) on sparse rows — scikit-learn's `LinearSVC`, for any data size;
//! - [`kernel`]: one-vs-one kernel SVC (RBF or linear) through smartcore, for small data sets;
//! - [`calibration`]: decision values → probabilities (temperature softmax, or Platt sigmoid
//!   for multi-label models).
//!
//! Hyperparameters are checked once ([`Check::check`] on [`SvmParams`]); [`SvmModel`] predicts, saves and
//! loads (the same folder layout as the MLP: `config.json`, `model.safetensors`, `vocab.txt`,
//! `idf.json`, `metrics.json`).

pub mod calibration;
pub mod dcd;
pub mod kernel;
pub mod linear;

use std::path::Path;

use intent_data::text::{SparseVec, Vectorizer};
use serde::{Deserialize, Serialize};

use crate::architecture::Architecture;
use crate::checked::{Check, Checked};
use crate::error::{ModelError, Result};
use crate::folder::{
    read_vocab, write_json, write_model_dir, write_vocab, ModelConfig, CONFIG_FILE, METRICS_FILE,
    WEIGHTS_FILE,
};
use crate::tensors::{HostTensor, TensorFile};
pub use calibration::Calibration;
pub use kernel::{Kernel, KernelWeights};
pub use linear::LinearWeights;

/// Class weighting of the penalty.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ClassWeight {
    /// Every class weighs 1.
    #[default]
    None,
    /// `n / (k · n_c)`: rare classes weigh more (scikit-learn's `"balanced"`).
    Balanced,
}

/// The kernel choice of `intent train svm --kernel`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum KernelChoice {
    /// Linear SVM on sparse rows (dual coordinate descent, one-vs-rest).
    #[default]
    Linear,
    /// RBF kernel SVC (smartcore, one-vs-one); `gamma` `None` means scikit-learn's `"scale"`.
    Rbf {
        /// γ, or `None` for `1 / (n_features · Var(X))`.
        gamma: Option<f64>,
    },
    /// Linear-kernel SVC (smartcore, one-vs-one), for comparison with the RBF kernel.
    LinearOvo,
}

/// SVM hyperparameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SvmParams {
    /// Penalty `C` (> 0): larger fits the training data more closely.
    pub c: f64,
    /// Stopping tolerance (LIBLINEAR's `eps`, scikit-learn's `LinearSVC` default 1e-4; for the
    /// kernel SVC, smartcore's gradient tolerance).
    pub tol: f64,
    /// Maximum passes of the linear solver (the kernel SVC makes smartcore's two LaSVM passes).
    pub max_iter: usize,
    /// Class weights.
    pub class_weight: ClassWeight,
    /// Value of the bias feature (scikit-learn's `intercept_scaling`, 1).
    pub intercept_scaling: f64,
    /// Kernel.
    pub kernel: KernelChoice,
    /// Seed of the coordinate order.
    pub seed: u64,
}

impl Default for SvmParams {
    /// scikit-learn's `LinearSVC()` defaults: C = 1, tol = 1e-4, max_iter = 1000.
    fn default() -> Self {
        SvmParams {
            c: 1.0,
            tol: 1e-4,
            max_iter: 1000,
            class_weight: ClassWeight::None,
            intercept_scaling: 1.0,
            kernel: KernelChoice::Linear,
            seed: 42,
        }
    }
}

impl Check for SvmParams {
    type Error = ModelError;

    /// Checks every value, naming the field of the first bad one.
    fn validate(&self) -> Result<()> {
        let bad = |name, message: String| Err(ModelError::Hyperparameter { name, message });
        if !(self.c.is_finite() && self.c > 0.0) {
            return bad("c", format!("{}: C must be a positive number (try 1.0)", self.c));
        }
        if !(self.tol.is_finite() && self.tol > 0.0) {
            return bad("tol", format!("{}: the tolerance must be positive (try 1e-4)", self.tol));
        }
        if self.max_iter == 0 {
            return bad("max_iter", "must be at least 1".into());
        }
        if !(self.intercept_scaling.is_finite() && self.intercept_scaling >= 0.0) {
            return bad("intercept_scaling", format!("{}: must be zero or positive", self.intercept_scaling));
        }
        if let KernelChoice::Rbf { gamma: Some(g) } = self.kernel {
            if !(g.is_finite() && g > 0.0) {
                return bad("gamma", format!("{g}: γ must be a positive number or 'scale'"));
            }
        }
        Ok(())
    }
}

/// What an SVM model computes its decision values with.
#[derive(Debug, Clone, PartialEq)]
pub enum SvmBody {
    /// One-vs-rest linear weights.
    Linear(LinearWeights),
    /// One-vs-one kernel SVC.
    Kernel(KernelWeights),
}

impl SvmBody {
    /// Decision values (per class) of a feature row.
    pub fn decision(&self, row: &SparseVec) -> Vec<f32> {
        match self {
            SvmBody::Linear(w) => w.decision(row),
            SvmBody::Kernel(w) => w.decision(row),
        }
    }
}

/// The `architecture` of an SVM's `config.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SvmArchitecture {
    /// `linear` (one-vs-rest, squared hinge) or `kernel` (one-vs-one SVC).
    #[serde(rename = "type")]
    pub kind: String,
    /// Kernel of a kernel SVC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel: Option<Kernel>,
    /// Number of features.
    pub num_features: usize,
    /// Number of classes.
    pub num_classes: usize,
    /// Support vectors stored (kernel SVC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_support_vectors: Option<usize>,
    /// Decision values → probabilities.
    pub calibration: Calibration,
}

/// A fitted SVM with its vectorizer: text in, probabilities out.
#[derive(Debug, Clone)]
pub struct SvmModel {
    /// The model's `config.json` (kind `svm`).
    pub config: ModelConfig,
    /// TF-IDF features.
    pub vectorizer: Vectorizer,
    /// Weights.
    pub body: SvmBody,
    /// Calibration of the decision values.
    pub calibration: Calibration,
}

impl SvmModel {
    /// The architecture record of this model.
    pub fn architecture(&self) -> SvmArchitecture {
        let (kind, kernel, nsv) = match &self.body {
            SvmBody::Linear(_) => ("linear", None, None),
            SvmBody::Kernel(w) => ("kernel", Some(w.kernel), Some(w.support.len())),
        };
        SvmArchitecture {
            kind: kind.into(),
            kernel,
            num_features: self.vectorizer.dim(),
            num_classes: self.config.labels.len(),
            num_support_vectors: nsv,
            calibration: self.calibration,
        }
    }

    /// Decision values (per class) of a feature row.
    pub fn decision_row(&self, row: &SparseVec) -> Vec<f32> {
        self.body.decision(row)
    }

    /// Decision values of each text.
    pub fn decision_function(&self, texts: &[&str]) -> Vec<Vec<f32>> {
        texts.iter().map(|t| self.decision_row(&self.vectorizer.transform(t))).collect()
    }

    /// Calibrated class probabilities of each text.
    pub fn scores(&self, texts: &[&str]) -> Vec<Vec<f32>> {
        texts
            .iter()
            .map(|t| self.calibration.apply(&self.decision_row(&self.vectorizer.transform(t))))
            .collect()
    }

    /// Saves the model folder atomically, with `metrics` as `metrics.json`.
    pub fn save(&self, dir: &Path, metrics: &serde_json::Value) -> Result<()> {
        let mut config = self.config.clone();
        config.architecture = Architecture::Svm(self.architecture());
        write_model_dir(dir, |tmp| {
            write_json(tmp, CONFIG_FILE, &config)?;
            write_vocab(tmp, &self.vectorizer)?;
            write_json(tmp, METRICS_FILE, metrics)?;
            let path = tmp.join(WEIGHTS_FILE);
            match &self.body {
                SvmBody::Linear(w) => crate::tensors::write(
                    &path,
                    vec![
                        ("coef", HostTensor::F32(w.coef(), vec![w.k, w.dim])),
                        ("intercept", HostTensor::F32(w.intercept.clone(), vec![w.k])),
                    ],
                ),
                SvmBody::Kernel(w) => crate::tensors::write(&path, kernel_tensors(w)),
            }
        })
    }

    /// Loads a model folder written by [`SvmModel::save`], checking every file against
    /// `config.json`.
    pub fn load(dir: &Path) -> Result<Self> {
        Self::from_config(dir, ModelConfig::read(dir)?)
    }

    /// Loads the folder `dir` whose `config.json` is `config` (already read).
    pub fn from_config(dir: &Path, config: ModelConfig) -> Result<Self> {
        let cfg_path = dir.join(CONFIG_FILE);
        let Architecture::Svm(arch) = config.architecture.clone() else {
            let kind = config.kind();
            return Err(ModelError::invalid(&cfg_path, format!("kind is '{kind}', expected 'svm'")));
        };
        config.check_labels(&cfg_path)?;
        match arch.calibration {
            Calibration::Temperature { temperature: t } if !(t.is_finite() && t > 0.0) => {
                return Err(ModelError::invalid(
                    &cfg_path,
                    format!("architecture.calibration.temperature {t}: expected a positive number"),
                ))
            }
            Calibration::Platt { a, b } if !(a.is_finite() && b.is_finite()) => {
                return Err(ModelError::invalid(
                    &cfg_path,
                    format!("architecture.calibration: a = {a}, b = {b}: expected finite numbers"),
                ))
            }
            _ => {}
        }
        if let Some(Kernel::Rbf { gamma }) = arch.kernel {
            if !(gamma.is_finite() && gamma > 0.0) {
                return Err(ModelError::invalid(
                    &cfg_path,
                    format!("architecture.kernel.gamma {gamma}: expected a positive number"),
                ));
            }
        }
        let vectorizer = read_vocab(dir, &config.preprocessing)?;
        if arch.num_features != vectorizer.dim() || arch.num_classes != config.labels.len() {
            return Err(ModelError::invalid(
                &cfg_path,
                format!(
                    "architecture says {} features and {} classes; the vocabulary has {} terms and there \
                        are {} labels",
                    arch.num_features,
                    arch.num_classes,
                    vectorizer.dim(),
                    config.labels.len()
                ),
            ));
        }
        let file = TensorFile::open(&dir.join(WEIGHTS_FILE))?;
        let (k, dim) = (arch.num_classes, arch.num_features);
        let body = match (arch.kind.as_str(), arch.kernel) {
            ("linear", _) => {
                let coef = file.f32("coef", &[k, dim])?;
                SvmBody::Linear(LinearWeights::from_coef(&coef, file.f32("intercept", &[k])?, dim))
            }
            ("kernel", Some(kernel)) => SvmBody::Kernel(read_kernel(&file, kernel, k, dim)?),
            (other, _) => {
                return Err(ModelError::invalid(
                    &cfg_path,
                    format!("architecture.type '{other}': expected 'linear' or 'kernel' (with a kernel)"),
                ))
            }
        };
        Ok(SvmModel { config, vectorizer, body, calibration: arch.calibration })
    }
}

/// The kernel SVC refuses data whose estimated training time ([`kernel::estimated_seconds`])
/// exceeds this many seconds.
pub const KERNEL_MAX_SECONDS: f64 = 60.0;

/// Fits the weights chosen by `params.kernel` on feature rows of `dim` columns. `targets[i]`
/// holds the class indices of row `i` (exactly one for single-label data).
pub fn fit_body(
    rows: &[SparseVec],
    targets: &[Vec<usize>],
    k: usize,
    multi_label: bool,
    dim: usize,
    params: &Checked<SvmParams>,
) -> Result<(SvmBody, linear::FitInfo)> {
    if rows.is_empty() || k < 2 {
        return Err(ModelError::Fit(format!(
            "an SVM needs examples of at least two classes ({} examples, {k} classes)",
            rows.len()
        )));
    }
    let kernel = match params.kernel {
        KernelChoice::Linear => {
            let refs: Vec<&SparseVec> = rows.iter().collect();
            let x = dcd::Csr::from_rows(&refs, dim);
            let (w, info) = linear::fit(&x, targets, k, multi_label, params);
            return Ok((SvmBody::Linear(w), info));
        }
        KernelChoice::LinearOvo => Kernel::Linear,
        KernelChoice::Rbf { gamma } => {
            let refs: Vec<&SparseVec> = rows.iter().collect();
            Kernel::Rbf { gamma: gamma.unwrap_or_else(|| kernel::gamma_scale(&refs, dim)) }
        }
    };
    if multi_label {
        return Err(ModelError::Fit(
            "the kernel SVC is single-label; use --kernel linear (one-vs-rest) for multi-label data".into(),
        ));
    }
    if params.class_weight != ClassWeight::None {
        return Err(ModelError::Fit(
            "the kernel SVC (smartcore) has no class weights; use --kernel linear for --class-weight \
                balanced"
                .into(),
        ));
    }
    let target: Vec<usize> = targets.iter().map(|t| t[0]).collect();
    let (estimate, largest) = kernel::estimated_seconds(&target, k);
    if estimate > KERNEL_MAX_SECONDS {
        return Err(ModelError::Fit(format!(
            "the kernel SVC would take about {} on these {} examples, over its limit of \
             {KERNEL_MAX_SECONDS:.0} s: it trains one SVC per pair of classes ({} pairs, the largest with \
             {largest} examples) and each costs the cube of its examples (smartcore's solver keeps no \
             kernel cache, and each pair's Gram matrix is factored); use --kernel linear, which is as \
             accurate on text and fast at any size",
            human_seconds(estimate),
            rows.len(),
            kernel::n_pairs(k)
        )));
    }
    let settings = kernel::KernelSettings { c: params.c, tol: params.tol, epochs: 2, seed: params.seed };
    let w = kernel::fit(rows, &target, k, kernel, &settings)?;
    let info = linear::FitInfo { problems: kernel::n_pairs(k), ..Default::default() };
    Ok((SvmBody::Kernel(w), info))
}

fn human_seconds(s: f64) -> String {
    if s < 120.0 {
        format!("{s:.0} s")
    } else if s < 7200.0 {
        format!("{:.0} minutes", s / 60.0)
    } else {
        format!("{:.0} hours", s / 3600.0)
    }
}

fn kernel_tensors(w: &KernelWeights) -> Vec<(&'static str, HostTensor)> {
    let mut sv_ptr = vec![0i64];
    let (mut sv_idx, mut sv_val) = (Vec::new(), Vec::new());
    for s in &w.support {
        sv_idx.extend(s.indices.iter().map(|&i| i as i64));
        sv_val.extend_from_slice(&s.values);
        sv_ptr.push(sv_idx.len() as i64);
    }
    let mut pair_ptr = vec![0i64];
    let (mut pair_sv, mut pair_coef) = (Vec::new(), Vec::new());
    for t in &w.pair_terms {
        pair_sv.extend(t.iter().map(|p| p.0 as i64));
        pair_coef.extend(t.iter().map(|p| p.1));
        pair_ptr.push(pair_sv.len() as i64);
    }
    let len = |v: &Vec<i64>| vec![v.len()];
    vec![
        ("sv_indptr", HostTensor::I64(sv_ptr.clone(), len(&sv_ptr))),
        ("sv_indices", HostTensor::I64(sv_idx.clone(), len(&sv_idx))),
        ("sv_values", HostTensor::F32(sv_val.clone(), vec![sv_val.len()])),
        ("pair_indptr", HostTensor::I64(pair_ptr.clone(), len(&pair_ptr))),
        ("pair_sv", HostTensor::I64(pair_sv.clone(), len(&pair_sv))),
        ("pair_coef", HostTensor::F32(pair_coef.clone(), vec![pair_coef.len()])),
        ("pair_intercept", HostTensor::F32(w.pair_intercept.clone(), vec![w.pair_intercept.len()])),
    ]
}

fn read_kernel(file: &TensorFile, kernel: Kernel, k: usize, dim: usize) -> Result<KernelWeights> {
    let one = |name: &str| -> Result<usize> {
        match file.shape(name)?.as_slice() {
            [n] => Ok(*n),
            s => Err(ModelError::invalid(
                file.path(),
                format!("tensor '{name}' has shape {s:?}, expected one dimension"),
            )),
        }
    };
    let sv_ptr = file.i64("sv_indptr", &[one("sv_indptr")?])?;
    let nnz = *sv_ptr.last().unwrap_or(&0) as usize;
    let sv_idx = file.i64("sv_indices", &[nnz])?;
    let sv_val = file.f32("sv_values", &[nnz])?;
    let pairs = kernel::n_pairs(k);
    let pair_ptr = file.i64("pair_indptr", &[pairs + 1])?;
    let m = *pair_ptr.last().unwrap_or(&0) as usize;
    let pair_sv = file.i64("pair_sv", &[m])?;
    let pair_coef = file.f32("pair_coef", &[m])?;
    let pair_intercept = file.f32("pair_intercept", &[pairs])?;
    let n_sv = sv_ptr.len().saturating_sub(1);
    let monotone = |p: &[i64], end: usize| {
        p.first() == Some(&0) && p.windows(2).all(|w| w[0] <= w[1]) && *p.last().unwrap_or(&0) as usize == end
    };
    if !monotone(&sv_ptr, nnz) || !monotone(&pair_ptr, m) {
        return Err(ModelError::invalid(
            file.path(),
            "sv_indptr / pair_indptr are not non-decreasing offsets starting at 0",
        ));
    }
    if let Some(i) = sv_idx.iter().find(|&&i| i < 0 || i as usize >= dim) {
        return Err(ModelError::invalid(
            file.path(),
            format!("tensor 'sv_indices' holds {i}, out of range for {dim} features"),
        ));
    }
    if let Some(i) = pair_sv.iter().find(|&&i| i < 0 || i as usize >= n_sv) {
        return Err(ModelError::invalid(
            file.path(),
            format!("tensor 'pair_sv' holds {i}, out of range for {n_sv} support vectors"),
        ));
    }
    // Sparse dot products need each row's indices strictly increasing.
    if let Some(s) = (0..n_sv)
        .find(|&s| sv_idx[sv_ptr[s] as usize..sv_ptr[s + 1] as usize].windows(2).any(|w| w[0] >= w[1]))
    {
        return Err(ModelError::invalid(
            file.path(),
            format!("tensor 'sv_indices': support vector {s} has indices not strictly increasing"),
        ));
    }
    let support = (0..n_sv)
        .map(|s| {
            let (a, b) = (sv_ptr[s] as usize, sv_ptr[s + 1] as usize);
            SparseVec {
                indices: sv_idx[a..b].iter().map(|&i| i as u32).collect(),
                values: sv_val[a..b].to_vec(),
            }
        })
        .collect();
    let pair_terms = (0..pairs)
        .map(|p| {
            let (a, b) = (pair_ptr[p] as usize, pair_ptr[p + 1] as usize);
            (a..b).map(|t| (pair_sv[t] as u32, pair_coef[t])).collect()
        })
        .collect();
    Ok(KernelWeights { kernel, k, support, pair_terms, pair_intercept })
}
