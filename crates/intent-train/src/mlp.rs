//! Training the bag-of-words MLP: vocabulary, batches, loss, validation, out-of-scope threshold
//! and multi-label thresholds tuned on validation data.

use std::collections::BTreeMap;
use std::path::Path;

use burn::nn::loss::{BinaryCrossEntropyLossConfig, CrossEntropyLossConfig};
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use intent_data::text::{SparseVec, Vectorizer, VectorizerConfig};
use intent_data::{data_hash, Dataset};
use intent_eval::Report;
use intent_models::folder::{now_unix, ModelConfig, Preprocessing, Versions, VOCAB_FILE};
use intent_models::mlp::{Mlp, MlpArchitecture, SparseBatch};
use intent_models::BowMlp;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use intent_models::checked::Check;

use crate::batches::Batch;
use crate::engine::{fit, EngineConfig, EpochLog, TrainTask};
use crate::sparse::SparseInputTable;
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
    /// Multi-label without validation data: the share of the training data (stratified by each
    /// example's rarest label) held out to pick the best epoch and tune per-label thresholds;
    /// the model trained on the rest is kept. 0: no hold-out (thresholds stay at 0.5).
    #[serde(default)]
    pub threshold_holdout: f64,
    /// Multi-label: BCE's weight of each label's positive examples, from label frequencies.
    #[serde(default)]
    pub pos_weight: crate::loss::PosWeight,
}

impl Default for MlpOptions {
    /// One hidden layer of 512 with dropout 0.3, AdamW lr 3e-3, weight decay 1e-4, batch 64,
    /// at most 20 epochs with early stopping after 3: strong on small intent sets and on
    /// CLINC150. `intent train mlp` takes its flag defaults from here (one source of truth).
    /// The playbook's recipe for large sets is 4 hidden layers with dropout 0.45.
    fn default() -> Self {
        MlpOptions {
            hidden_size: 512,
            hidden_layers: 1,
            dropout: 0.3,
            vectorizer: VectorizerConfig::default(),
            engine: EngineConfig {
                epochs: 20,
                batch_size: BATCH_DEFAULTS.cpu_batch,
                lr: BATCH_DEFAULTS.lr,
                ..EngineConfig::default()
            },
            oos_label: "oos".into(),
            threshold_holdout: 0.1,
            pos_weight: crate::loss::PosWeight::Sqrt,
        }
    }
}

/// The MLP's default batch size and learning rate: 64 at 3e-3 on the CPU, 256 at 6e-3 on
/// accelerators ([`crate::device::BatchDefaults`]). BANKING77, 20 epochs, test accuracy on the
/// CPU: one hidden layer 0.9045 at 64 / 3e-3, 0.9075 at 256 / 6e-3; four layers with dropout
/// 0.45, 0.8792 and 0.8870; a quarter of the steps per epoch.
pub const BATCH_DEFAULTS: crate::device::BatchDefaults =
    crate::device::BatchDefaults { cpu_batch: 64, lr: 3e-3, accelerator_batch: 256 };

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
    /// Time to the first step and steady-state speed.
    pub timing: crate::timing::Timing,
    /// Report on the validation data with the tuned thresholds, when there was validation data.
    pub val_report: Option<Report>,
}

impl<B: Backend> TrainedMlp<B> {
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
}

/// Trains an MLP on `train`, validating on `val` each epoch (early stopping and best checkpoint
/// follow the validation score: accuracy, or micro-F1 for multi-label data).
pub fn train_mlp<B: AutodiffBackend>(
    train: &Dataset,
    val: Option<&Dataset>,
    opts: &MlpOptions,
    device: &B::Device,
) -> Result<TrainedMlp<B::InnerBackend>, TrainError> {
    let multi = train.multi_label;
    let mut engine = opts.engine.clone();
    if multi && engine.min_steps.is_none() {
        engine.min_steps = Some(MULTI_LABEL_MIN_STEPS);
    }
    let engine = engine.check()?;
    let labels = crate::validation::require_two_labels(train)?;
    let held_out = match val {
        None => crate::validation::threshold_holdout(train, opts.threshold_holdout, opts.engine.seed)?,
        Some(_) => None,
    };
    let (train, val) = match &held_out {
        Some((t, v)) => (t, Some(v)),
        None => (train, val),
    };
    if let Some(advice) = crate::advice::data_size_advice(train) {
        tracing::warn!("{advice}");
    }
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
    let targets: Vec<Vec<usize>> =
        train.examples.iter().map(|e| e.labels.iter().map(|l| index[l.as_str()]).collect()).collect();
    let k = labels.len();

    // Validation rows: those whose labels the model knows (multi-label: unknown labels dropped).
    let val_known: Vec<(SparseVec, Vec<usize>)> = val
        .map(|v| {
            v.examples
                .iter()
                .filter(|e| multi || e.label().is_some_and(|l| index.contains_key(l)))
                .map(|e| {
                    (
                        vectorizer.transform(&e.text),
                        e.labels.iter().filter_map(|l| index.get(l.as_str()).copied()).collect(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();

    let model = arch.init_seeded::<B>(device, opts.engine.seed);
    // On CPU the input weight is trained as a host table with lazy AdamW rows (see `sparse`).
    let table = crate::engine::is_cpu_backend::<B>(device).then(|| {
        SparseInputTable::from_tensor(model.first_layer().weight.val().inner(), opts.engine.adamw_params())
    });
    let mut task = MlpTask::<B> {
        rows: &rows,
        targets: &targets,
        val_known: &val_known,
        k,
        multi,
        arch,
        ce: CrossEntropyLossConfig::new().init::<B>(device),
        bce: BinaryCrossEntropyLossConfig::new().with_logits(true).init::<B>(device),
        // Dropout masks come from a seeded generator on the host: deterministic, and much
        // cheaper than sampling a Bernoulli tensor per layer through the backend.
        mask_rng: ChaCha8Rng::seed_from_u64(opts.engine.seed ^ 0xd50f_0a7e),
        seed: opts.engine.seed,
        mask_buf: Vec::new(),
        pos_weight: multi
            .then(|| opts.pos_weight.weights(&targets, k))
            .flatten()
            .map(|w| Tensor::<B, 2>::from_data(TensorData::new(w, [1, k]), device)),
        nnz_capacity: (table.is_none() && crate::engine::static_shapes::<B>(&opts.engine, device))
            .then(|| largest_batch_nnz(&rows, opts.engine.batch_size)),
        table,
        pending: None,
        device: device.clone(),
    };
    let fitted = fit::<B, Mlp<B>, _>(model, train.len(), &engine, &mut task)?;

    let config = ModelConfig {
        architecture: intent_models::Architecture::Mlp(arch),
        format_version: intent_models::folder::FORMAT_VERSION,
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
            "thresholds_from":
                if held_out.is_some() { "holdout" } else if val.is_some() { "validation" } else { "none" },
        }),
        data_hash: data_hash(train),
        versions: Versions::default(),
        created_unix: now_unix(),
    };
    let mut model = BowMlp::new(config, vectorizer.clone(), fitted.model, device.clone())?;

    // Thresholds and the validation report, on the full validation set.
    let val_report = match val {
        Some(v) if !v.is_empty() => {
            let scores = model.scores(&v.texts());
            Some(crate::validation::validation_report(&mut model.config, &scores, v, &index, &opts.oos_label))
        }
        _ => None,
    };
    Ok(TrainedMlp {
        model,
        history: fitted.history,
        best_epoch: fitted.best_epoch,
        stopped_early: fitted.stopped_early,
        timing: fitted.timing,
        val_report,
    })
}

/// The step floor ([`EngineConfig::min_steps`]) of multi-label training when none is set:
/// NLU++ banking with 414 training texts (6 steps per epoch) reached micro-F1 0.50 in the
/// default 20 epochs and 0.68–0.70 (seeds 42, 1, 2) in 200 epochs (README, small data).
pub const MULTI_LABEL_MIN_STEPS: usize = 1200;

/// The most non-zero features a batch of `batch_size` of `rows` can hold.
pub fn largest_batch_nnz(rows: &[SparseVec], batch_size: usize) -> usize {
    let mut nnz: Vec<usize> = rows.iter().map(|r| r.indices.len()).collect();
    nnz.sort_unstable_by(|a, b| b.cmp(a));
    nnz.iter().take(batch_size).sum::<usize>().max(1)
}

/// The MLP's side of the training loop.
struct MlpTask<'a, B: AutodiffBackend> {
    rows: &'a [SparseVec],
    targets: &'a [Vec<usize>],
    val_known: &'a [(SparseVec, Vec<usize>)],
    k: usize,
    multi: bool,
    arch: MlpArchitecture,
    ce: burn::nn::loss::CrossEntropyLoss<B>,
    bce: burn::nn::loss::BinaryCrossEntropyLoss<B>,
    mask_rng: ChaCha8Rng,
    seed: u64,
    mask_buf: Vec<u32>,
    /// Host input weight (CPU backends), and the leaf tensor of the rows the current step uses.
    table: Option<SparseInputTable>,
    pending: Option<(Tensor<B, 2>, Vec<usize>)>,
    /// BCE weights of positives, `[1, labels]` (multi-label with a [`crate::loss::PosWeight`]).
    pos_weight: Option<Tensor<B, 2>>,
    /// With static shapes on a device: entries of every sparse input batch (the most a batch
    /// can have: the sum of the `batch_size` largest rows).
    nnz_capacity: Option<usize>,
    device: B::Device,
}

impl<B: AutodiffBackend> MlpTask<'_, B> {
    fn masks(&mut self, n: usize) -> Option<Vec<Tensor<B, 2>>> {
        let p = self.arch.dropout;
        if p <= 0.0 || self.arch.hidden_layers == 0 {
            return None;
        }
        let keep_scale = (1.0 / (1.0 - p)) as f32;
        let drop_below = (p * u32::MAX as f64) as u32;
        let h = self.arch.hidden_size;
        self.mask_buf.resize(n * h, 0);
        let mut masks = Vec::with_capacity(self.arch.hidden_layers);
        for _ in 0..self.arch.hidden_layers {
            self.mask_rng.fill(&mut self.mask_buf[..]);
            let m: Vec<f32> =
                self.mask_buf.iter().map(|&r| if r < drop_below { 0.0 } else { keep_scale }).collect();
            masks.push(Tensor::<B, 2>::from_data(TensorData::new(m, [n, h]), &self.device));
        }
        Some(masks)
    }

    fn scores(&self, m: &Mlp<B::InnerBackend>, rows: &[&SparseVec]) -> Vec<f32> {
        let mut out = Vec::with_capacity(rows.len() * self.k);
        for chunk in rows.chunks(intent_models::mlp::SCORE_BATCH) {
            let x = SparseBatch::<B::InnerBackend>::new(chunk, &self.device);
            out.extend(m.forward(x, None).into_data().iter::<f32>());
        }
        out
    }
}

impl<B: AutodiffBackend> TrainTask<B, Mlp<B>> for MlpTask<'_, B> {
    fn step(&mut self, model: &Mlp<B>, b: &Batch) -> (Tensor<B, 1>, Tensor<B, 1, Int>) {
        let batch = &b.idx;
        let refs: Vec<&SparseVec> = batch.iter().map(|&i| &self.rows[i]).collect();
        let masks = self.masks(batch.len());
        let mut logits = match &self.table {
            Some(table) => {
                let x = SparseBatch::new(&refs, &self.device);
                let cols: Vec<usize> =
                    refs.iter().flat_map(|r| r.indices.iter().map(|&c| c as usize)).collect();
                let picked = (!cols.is_empty()).then(|| {
                    let data = TensorData::new(table.gather(&cols), [cols.len(), table.width()]);
                    Tensor::<B, 2>::from_data(data, &self.device).require_grad()
                });
                let logits = model.forward_picked(x, picked.clone(), masks.as_deref());
                self.pending = picked.map(|p| (p, cols));
                logits
            }
            None => {
                let x = match self.nnz_capacity {
                    Some(c) => SparseBatch::with_capacity(&refs, c, &self.device),
                    None => SparseBatch::new(&refs, &self.device),
                };
                model.forward(x, masks.as_deref())
            }
        };
        if b.is_filled() {
            // The repeats filling the batch up run through the model (one shape) but not the loss.
            logits = logits.narrow(0, 0, b.real);
        }
        let (n, k) = (b.real, self.k);
        let batch = b.real_idx();
        if self.multi {
            let mut t = vec![0i64; n * k];
            for (r, &i) in batch.iter().enumerate() {
                for &c in &self.targets[i] {
                    t[r * k + c] = 1;
                }
            }
            let target = Tensor::<B, 2, Int>::from_data(TensorData::new(t, [n, k]), &self.device);
            let right = logits.clone().greater_elem(0.0).equal(target.clone().equal_elem(1)).int();
            let correct = right.sum_dim(1).equal_elem(k as i64).int().sum();
            let loss = match &self.pos_weight {
                Some(w) => crate::loss::bce_with_pos_weight(logits, target.float(), w.clone()),
                None => self.bce.forward(logits, target),
            };
            (loss, correct)
        } else {
            let t: Vec<i64> = batch.iter().map(|&i| self.targets[i][0] as i64).collect();
            let target = Tensor::<B, 1, Int>::from_data(TensorData::new(t, [n]), &self.device);
            let correct = logits.clone().argmax(1).reshape([n]).equal(target.clone()).int().sum();
            (self.ce.forward(logits, target), correct)
        }
    }

    fn after_backward(&mut self, grads: &B::Gradients, lr: f64) {
        if let (Some(table), Some((picked, cols))) = (&mut self.table, self.pending.take()) {
            if let Some(g) = picked.grad(grads) {
                let g: Vec<f32> = g.into_data().convert::<f32>().into_vec().expect("f32 after convert");
                table.apply(lr as f32, &cols, &g);
            }
        }
    }

    fn start_epoch(&mut self, epoch: usize) {
        self.mask_rng = ChaCha8Rng::seed_from_u64(self.seed ^ 0xd50f_0a7e);
        self.mask_rng.set_stream(epoch as u64);
    }
    fn fingerprint(&self) -> Option<String> {
        None // the sparse input table and its optimizer live outside the module
    }
    fn end_of_epoch(&mut self, model: Mlp<B>) -> Mlp<B> {
        match &self.table {
            Some(table) => model.with_first_weight(Tensor::from_inner(table.to_tensor(&self.device))),
            None => model,
        }
    }

    fn validate(&mut self, m: &Mlp<B::InnerBackend>) -> Option<f64> {
        if self.val_known.is_empty() {
            return None;
        }
        let k = self.k;
        let refs: Vec<&SparseVec> = self.val_known.iter().map(|(r, _)| r).collect();
        let logits = self.scores(m, &refs);
        if self.multi {
            // Micro-F1 at the best single threshold (the thresholds are tuned after training).
            let probs: Vec<f32> = logits.iter().map(|&z| 1.0 / (1.0 + (-z).exp())).collect();
            let gold: Vec<Vec<usize>> = self.val_known.iter().map(|(_, g)| g.clone()).collect();
            Some(intent_eval::best_micro_f1(&probs, &gold, k).1)
        } else {
            let ok = self
                .val_known
                .iter()
                .enumerate()
                .filter(|(r, (_, gold))| {
                    intent_eval::metrics::argmax(&logits[r * k..(r + 1) * k]).0 == gold[0]
                })
                .count();
            Some(ok as f64 / self.val_known.len() as f64)
        }
    }
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
    /// Time to the first step and steady-state speed.
    pub timing: crate::timing::Timing,
}

struct MlpJob<'a> {
    train: &'a Dataset,
    val: Option<&'a Dataset>,
    opts: &'a MlpOptions,
    out: &'a Path,
}

impl crate::device::BackendJob for MlpJob<'_> {
    type Output = MlpRunSummary;
    fn run<B: AutodiffBackend>(self, device: B::Device) -> Result<MlpRunSummary, TrainError> {
        let trained = train_mlp::<B>(self.train, self.val, self.opts, &device)?;
        trained.model.save(self.out, &trained.metrics_json())?;
        let secs: Vec<f64> = trained.history.iter().map(|h| h.seconds).collect();
        Ok(MlpRunSummary {
            median_epoch_seconds: crate::timing::median(&secs).unwrap_or(0.0),
            timing: trained.timing,
            history: trained.history,
            best_epoch: trained.best_epoch,
            val_report: trained.val_report,
        })
    }
}

/// Trains on the backend named by `device` and saves the model folder to `out` (atomically).
pub fn train_mlp_to_dir(
    device: crate::DeviceSpec,
    train: &Dataset,
    val: Option<&Dataset>,
    opts: &MlpOptions,
    out: &Path,
) -> Result<MlpRunSummary, TrainError> {
    crate::device::dispatch(device, MlpJob { train, val, opts, out })
}
