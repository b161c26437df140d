//! Training the bag-of-words MLP: vocabulary, batches, loss, validation, out-of-scope threshold
//! and multi-label thresholds tuned on validation data.

use std::collections::BTreeMap;
use std::path::Path;

use burn::nn::loss::{BinaryCrossEntropyLossConfig, CrossEntropyLossConfig};
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use intent_data::text::{SparseVec, Vectorizer, VectorizerConfig};
use intent_data::{data_hash, Dataset};
use intent_eval::{evaluate_multi, evaluate_single, tune_oos_threshold, OosPolicy, Report};
use intent_models::folder::{now_unix, ModelConfig, OosConfig, Preprocessing, Versions, VOCAB_FILE};
use intent_models::mlp::{Mlp, MlpArchitecture, SparseBatch};
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use intent_models::BowMlp;
use serde::{Deserialize, Serialize};

use crate::engine::{fit, EngineConfig, EpochLog};
use crate::TrainError;

/// Everything `intent train mlp` can set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MlpOptions {
    /// Units per hidden layer.
    pub hidden_size: usize,
    /// Hidden layers.
    pub hidden_layers: usize,
    /// Dropout after each hidden layer.
    pub dropout: f64,
    /// Text features.
    pub vectorizer: VectorizerConfig,
    /// Engine settings (epochs, batch size, optimiser, schedule, early stopping, seed).
    pub engine: EngineConfig,
    /// The out-of-scope label: validation rows with it tune the confidence threshold.
    pub oos_label: String,
}

impl Default for MlpOptions {
    /// One hidden layer of 512 with dropout 0.3, AdamW lr 3e-3, weight decay 1e-4, batch 64:
    /// the defaults of `intent train mlp`, strong on small intent sets and on CLINC150. The
    /// playbook's recipe for large sets is 4 hidden layers with dropout 0.45.
    fn default() -> Self {
        MlpOptions {
            hidden_size: 512,
            hidden_layers: 1,
            dropout: 0.3,
            vectorizer: VectorizerConfig::default(),
            engine: EngineConfig::default(),
            oos_label: "oos".into(),
        }
    }
}

/// A trained MLP plus what happened during training.
pub struct TrainedMlp<B: Backend> {
    /// The model (best epoch), ready to predict or save.
    pub model: BowMlp<B>,
    /// Per-epoch logs.
    pub history: Vec<EpochLog>,
    /// Epoch of the kept model.
    pub best_epoch: usize,
    /// Whether early stopping ended training.
    pub stopped_early: bool,
    /// Report on the validation data with the tuned thresholds, when there was validation data.
    pub val_report: Option<Report>,
}

impl<B: Backend> TrainedMlp<B> {
    /// The `metrics.json` content: validation report, history and best epoch.
    pub fn metrics_json(&self) -> serde_json::Value {
        serde_json::json!({
            "validation": self.val_report,
            "best_epoch": self.best_epoch,
            "stopped_early": self.stopped_early,
            "history": self.history,
        })
    }
}

/// The bytes of a `u32` buffer (to fill it from an RNG in one call).
fn bytemuck_u8(buf: &mut [u32]) -> &mut [u8] {
    // SAFETY: u8 has no alignment requirement and every bit pattern is a valid u32.
    unsafe { std::slice::from_raw_parts_mut(buf.as_mut_ptr().cast::<u8>(), buf.len() * 4) }
}

fn per_label_thresholds(gold: &[Vec<String>], scores: &[Vec<f32>], labels: &[String]) -> Vec<f32> {
    // Per label, the threshold in 0.05..0.95 that maximises that label's F1 on validation data;
    // 0.5 for labels without a positive validation example.
    (0..labels.len())
        .map(|c| {
            let pos: Vec<bool> = gold.iter().map(|g| g.contains(&labels[c])).collect();
            if !pos.iter().any(|&p| p) {
                return 0.5;
            }
            let mut best = (0.5f32, -1.0f64);
            for k in 1..20 {
                let t = k as f32 * 0.05;
                let (mut tp, mut fp, mut fneg) = (0usize, 0usize, 0usize);
                for (s, &p) in scores.iter().zip(&pos) {
                    match (s[c] >= t, p) {
                        (true, true) => tp += 1,
                        (true, false) => fp += 1,
                        (false, true) => fneg += 1,
                        _ => {}
                    }
                }
                let f1 = 2.0 * tp as f64 / (2 * tp + fp + fneg).max(1) as f64;
                if f1 > best.1 {
                    best = (t, f1);
                }
            }
            best.0
        })
        .collect()
}

/// Trains an MLP on `train`, validating on `val` each epoch (early stopping and best checkpoint
/// follow the validation score: accuracy, or micro-F1 for multi-label data).
pub fn train_mlp<B: AutodiffBackend>(
    train: &Dataset,
    val: Option<&Dataset>,
    opts: &MlpOptions,
    device: &B::Device,
) -> Result<TrainedMlp<B::InnerBackend>, TrainError> {
    opts.engine.validate()?;
    let labels = train.labels();
    if labels.len() < 2 {
        return Err(TrainError::Data(format!(
            "training data has {} label(s) ({}); a classifier needs at least two",
            labels.len(),
            labels.join(", ")
        )));
    }
    let multi = train.multi_label;
    let vectorizer = Vectorizer::fit(&train.texts(), opts.vectorizer.clone())?;
    let arch = MlpArchitecture {
        input_dim: vectorizer.dim(),
        hidden_size: opts.hidden_size,
        hidden_layers: opts.hidden_layers,
        dropout: opts.dropout,
        num_classes: labels.len(),
    };
    arch.validate()?;
    tracing::info!(
        "training MLP: {} examples, {} labels, vocabulary {}, {}×{} hidden, backend {}",
        train.len(),
        labels.len(),
        vectorizer.dim(),
        arch.hidden_layers,
        arch.hidden_size,
        B::name(device)
    );
    B::seed(device, opts.engine.seed);
    let index: BTreeMap<&str, usize> = labels.iter().enumerate().map(|(i, l)| (l.as_str(), i)).collect();
    let rows: Vec<SparseVec> = train.examples.iter().map(|e| vectorizer.transform(&e.text)).collect();
    let targets: Vec<Vec<usize>> = train.examples.iter().map(|e| e.labels.iter().map(|l| index[l.as_str()]).collect()).collect();
    let k = labels.len();

    // Validation rows: those whose labels the model knows (multi-label: unknown labels dropped).
    let val_known: Vec<(SparseVec, Vec<usize>)> = val
        .map(|v| {
            v.examples
                .iter()
                .filter(|e| multi || e.label().is_some_and(|l| index.contains_key(l)))
                .map(|e| (vectorizer.transform(&e.text), e.labels.iter().filter_map(|l| index.get(l.as_str()).copied()).collect()))
                .collect()
        })
        .unwrap_or_default();

    let ce = CrossEntropyLossConfig::new().init::<B>(device);
    let bce = BinaryCrossEntropyLossConfig::new().with_logits(true).init::<B>(device);
    // Dropout masks come from a seeded generator on the host: deterministic, and much cheaper
    // than sampling a Bernoulli tensor per layer through the backend.
    let mut mask_rng = ChaCha8Rng::seed_from_u64(opts.engine.seed ^ 0xd50f_0a7e);
    let keep_scale = (1.0 / (1.0 - opts.dropout)) as f32;
    let drop_below = (opts.dropout * u32::MAX as f64) as u32;
    let mut mask_buf: Vec<u32> = Vec::new();
    let mut make_masks = move |n: usize| -> Option<Vec<Tensor<B, 2>>> {
        if opts.dropout <= 0.0 || arch.hidden_layers == 0 {
            return None;
        }
        let size = n * arch.hidden_size;
        mask_buf.resize(size, 0);
        Some(
            (0..arch.hidden_layers)
                .map(|_| {
                    mask_rng.fill_bytes(bytemuck_u8(&mut mask_buf));
                    let m: Vec<f32> = mask_buf.iter().map(|&r| if r < drop_below { 0.0 } else { keep_scale }).collect();
                    Tensor::<B, 2>::from_data(TensorData::new(m, [n, arch.hidden_size]), device)
                })
                .collect(),
        )
    };
    let step = |model: &Mlp<B>, batch: &[usize]| {
        let refs: Vec<&SparseVec> = batch.iter().map(|&i| &rows[i]).collect();
        let masks = make_masks(batch.len());
        let logits = model.forward(SparseBatch::new(&refs, device), masks.as_deref());
        if multi {
            let mut t = vec![0i64; batch.len() * k];
            for (r, &i) in batch.iter().enumerate() {
                for &c in &targets[i] {
                    t[r * k + c] = 1;
                }
            }
            let target = Tensor::<B, 2, Int>::from_data(TensorData::new(t.clone(), [batch.len(), k]), device);
            let loss = bce.forward(logits.clone(), target);
            let pred: Vec<bool> = logits.greater_elem(0.0).into_data().iter::<bool>().collect();
            let correct = (0..batch.len()).filter(|&r| (0..k).all(|c| pred[r * k + c] == (t[r * k + c] == 1))).count();
            (loss, correct)
        } else {
            let t: Vec<i64> = batch.iter().map(|&i| targets[i][0] as i64).collect();
            let target = Tensor::<B, 1, Int>::from_data(TensorData::new(t.clone(), [batch.len()]), device);
            let loss = ce.forward(logits.clone(), target);
            let pred: Vec<i64> = logits.argmax(1).into_data().iter::<i64>().collect();
            let correct = pred.iter().zip(&t).filter(|(p, t)| p == t).count();
            (loss, correct)
        }
    };
    let inner_device = device.clone();
    let score_rows = |m: &Mlp<B::InnerBackend>, rows: &[&SparseVec]| -> Vec<f32> {
        let mut out = Vec::with_capacity(rows.len() * k);
        for chunk in rows.chunks(1024) {
            let x = SparseBatch::<B::InnerBackend>::new(chunk, &inner_device);
            out.extend(m.forward(x, None).into_data().iter::<f32>());
        }
        out
    };
    let validate = |m: &Mlp<B::InnerBackend>| -> Option<f64> {
        if val_known.is_empty() {
            return None;
        }
        let refs: Vec<&SparseVec> = val_known.iter().map(|(r, _)| r).collect();
        let logits = score_rows(m, &refs);
        if multi {
            let (mut tp, mut fp, mut fneg) = (0usize, 0usize, 0usize);
            for (r, (_, gold)) in val_known.iter().enumerate() {
                for c in 0..k {
                    match (logits[r * k + c] > 0.0, gold.contains(&c)) {
                        (true, true) => tp += 1,
                        (true, false) => fp += 1,
                        (false, true) => fneg += 1,
                        _ => {}
                    }
                }
            }
            Some(2.0 * tp as f64 / (2 * tp + fp + fneg).max(1) as f64)
        } else {
            let ok = val_known
                .iter()
                .enumerate()
                .filter(|(r, (_, gold))| intent_eval::metrics::argmax(&logits[r * k..(r + 1) * k]).0 == gold[0])
                .count();
            Some(ok as f64 / val_known.len() as f64)
        }
    };
    let fitted = fit::<B, Mlp<B>, _, _>(arch.init::<B>(device), train.len(), &opts.engine, step, validate)?;

    let config = ModelConfig {
        kind: "mlp".into(),
        format_version: intent_models::folder::FORMAT_VERSION,
        architecture: serde_json::to_value(arch).expect("serializes"),
        labels: labels.clone(),
        multi_label: multi,
        thresholds: multi.then(|| vec![0.5; k]),
        oos: None,
        preprocessing: Preprocessing {
            tokenizer: "unicode-words".into(),
            vectorizer: opts.vectorizer.clone(),
            vocab_file: VOCAB_FILE.into(),
            vocab_size: vectorizer.dim(),
        },
        training: serde_json::json!({
            "options": opts,
            "backend": B::name(device),
            "train_examples": train.len(),
            "best_epoch": fitted.best_epoch,
            "epochs_run": fitted.history.len(),
        }),
        data_hash: data_hash(train),
        versions: Versions::default(),
        created_unix: now_unix(),
    };
    let mut model = BowMlp::new(config, vectorizer.clone(), fitted.model, device.clone())?;

    // Thresholds and the validation report, on the full validation set.
    let val_report = match val {
        Some(v) if !v.is_empty() => {
            let texts: Vec<&str> = v.texts();
            let scores = model.scores(&texts);
            if multi {
                let gold: Vec<Vec<String>> = v.examples.iter().map(|e| e.labels.clone()).collect();
                let th = per_label_thresholds(&gold, &scores, &labels);
                model.config.thresholds = Some(th.clone());
                Some(evaluate_multi(&gold, &scores, &labels, &th).0)
            } else {
                let gold: Vec<&str> = v.examples.iter().map(|e| e.label().unwrap_or("")).collect();
                let usable: Vec<usize> =
                    (0..gold.len()).filter(|&i| index.contains_key(gold[i]) || gold[i] == opts.oos_label).collect();
                let g: Vec<&str> = usable.iter().map(|&i| gold[i]).collect();
                let s: Vec<Vec<f32>> = usable.iter().map(|&i| scores[i].clone()).collect();
                let policy = tune_oos_threshold(&g, &s, &labels, &opts.oos_label).map(|(t, score)| {
                    tracing::info!("out-of-scope threshold {t:.4} tuned on validation data (balanced score {score:.4})");
                    model.config.oos = Some(OosConfig { label: opts.oos_label.clone(), threshold: t });
                    OosPolicy { label: opts.oos_label.clone(), threshold: Some(t) }
                });
                Some(evaluate_single(&g, &s, &labels, policy.as_ref()).0)
            }
        }
        _ => None,
    };
    Ok(TrainedMlp { model, history: fitted.history, best_epoch: fitted.best_epoch, stopped_early: fitted.stopped_early, val_report })
}

/// Summary of a run of [`train_mlp_to_dir`].
#[derive(Debug, Clone, Serialize)]
pub struct MlpRunSummary {
    /// Per-epoch logs.
    pub history: Vec<EpochLog>,
    /// Epoch kept.
    pub best_epoch: usize,
    /// Validation report.
    pub val_report: Option<Report>,
    /// Median seconds per epoch.
    pub median_epoch_seconds: f64,
}

fn run<B: AutodiffBackend>(device: B::Device, train: &Dataset, val: Option<&Dataset>, opts: &MlpOptions, out: &Path) -> Result<MlpRunSummary, TrainError> {
    let trained = train_mlp::<B>(train, val, opts, &device)?;
    trained.model.save(out, &trained.metrics_json())?;
    let mut secs: Vec<f64> = trained.history.iter().map(|h| h.seconds).collect();
    secs.sort_by(f64::total_cmp);
    Ok(MlpRunSummary {
        median_epoch_seconds: secs[secs.len() / 2],
        history: trained.history,
        best_epoch: trained.best_epoch,
        val_report: trained.val_report,
    })
}

/// Trains on the backend named by `device` and saves the model folder to `out` (atomically).
pub fn train_mlp_to_dir(
    device: crate::DeviceSpec,
    train: &Dataset,
    val: Option<&Dataset>,
    opts: &MlpOptions,
    out: &Path,
) -> Result<MlpRunSummary, TrainError> {
    use burn::backend::{Autodiff, Flex};
    match device {
        crate::DeviceSpec::Cpu => run::<Autodiff<Flex>>(Default::default(), train, val, opts, out),
        #[cfg(feature = "ndarray")]
        crate::DeviceSpec::Ndarray => run::<Autodiff<burn::backend::NdArray>>(Default::default(), train, val, opts, out),
        #[cfg(feature = "cuda")]
        crate::DeviceSpec::Cuda(i) => {
            if !crate::device::cuda_usable(i) {
                return Err(TrainError::Device(format!("CUDA device {i} is not usable (no driver or no such GPU)")));
            }
            run::<Autodiff<burn::backend::Cuda>>(burn::backend::cuda::CudaDevice::new(i), train, val, opts, out)
        }
        #[allow(unreachable_patterns)]
        other => Err(TrainError::Device(format!(
            "device '{other}' is not compiled into this build (rebuild with --features {})",
            if matches!(other, crate::DeviceSpec::Ndarray) { "ndarray" } else { "cuda" }
        ))),
    }
}
