//! The training engine shared by the models: epochs of shuffled mini-batches, AdamW with
//! explicit PyTorch-equivalent settings, a learning-rate schedule with warm-up, per-epoch
//! validation, early stopping with patience and best-checkpoint keeping, a progress bar and one
//! log line per epoch.

use std::time::Instant;

use burn::module::AutodiffModule;
use burn::optim::{AdamWConfig, GradientsParams, Optimizer};
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::optim::{AdamWParams, HostAdamW};
use crate::progress::EpochBar;
use crate::schedule::{lr_at, LrSchedule};
use crate::TrainError;

/// Settings of the engine, validated by [`EngineConfig::validate`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EngineConfig {
    /// Passes over the training data (at most).
    pub epochs: usize,
    /// Examples per step.
    pub batch_size: usize,
    /// Peak learning rate.
    pub lr: f64,
    /// AdamW decoupled weight decay.
    pub weight_decay: f64,
    /// AdamW β1, β2 and ε (PyTorch's defaults: 0.9, 0.999, 1e-8).
    pub betas: (f64, f64),
    /// AdamW ε.
    pub epsilon: f64,
    /// Schedule after warm-up.
    pub schedule: LrSchedule,
    /// Share of the steps used for linear warm-up.
    pub warmup_ratio: f64,
    /// Stop after this many epochs without a better validation score (`None`: never).
    pub patience: Option<usize>,
    /// Seed of initialisation, shuffling and dropout.
    pub seed: u64,
    /// Show a progress bar on a terminal.
    pub progress: bool,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            epochs: 10,
            batch_size: 64,
            lr: 3e-3,
            weight_decay: 1e-4,
            betas: (0.9, 0.999),
            epsilon: 1e-8,
            schedule: LrSchedule::Constant,
            warmup_ratio: 0.0,
            patience: Some(3),
            seed: 42,
            progress: true,
        }
    }
}

impl EngineConfig {
    /// The AdamW settings of this configuration.
    pub fn adamw_params(&self) -> AdamWParams {
        AdamWParams {
            beta_1: self.betas.0 as f32,
            beta_2: self.betas.1 as f32,
            epsilon: self.epsilon as f32,
            weight_decay: self.weight_decay as f32,
        }
    }

    /// Checks the numbers once.
    pub fn validate(&self) -> Result<(), TrainError> {
        let bad = |name: &'static str, message: String| Err(TrainError::Hyperparameter { name, message });
        if self.epochs == 0 {
            return bad("--epochs", "must be at least 1".into());
        }
        if self.batch_size == 0 {
            return bad("--batch-size", "must be at least 1".into());
        }
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return bad("--lr", format!("{} must be a positive number", self.lr));
        }
        if !(self.weight_decay >= 0.0 && self.weight_decay.is_finite()) {
            return bad("--weight-decay", format!("{} must be ≥ 0", self.weight_decay));
        }
        if !(0.0..1.0).contains(&self.warmup_ratio) {
            return bad("--warmup-ratio", format!("{} is not in [0, 1)", self.warmup_ratio));
        }
        if self.patience == Some(0) {
            return bad("--patience", "must be at least 1 (omit it to disable early stopping)".into());
        }
        Ok(())
    }
}

/// One epoch's log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochLog {
    /// 1-based epoch.
    pub epoch: usize,
    /// Mean training loss.
    pub loss: f64,
    /// Running training accuracy (with dropout on).
    pub train_accuracy: f64,
    /// Validation score, when there is validation data.
    pub val_score: Option<f64>,
    /// Wall-clock seconds of the training pass.
    pub seconds: f64,
    /// Learning rate at the end of the epoch.
    pub lr: f64,
}

/// What [`fit`] returns.
pub struct Fitted<M> {
    /// The best model (by validation score; the last one without validation data).
    pub model: M,
    /// Per-epoch logs.
    pub history: Vec<EpochLog>,
    /// Epoch of the returned model (1-based).
    pub best_epoch: usize,
    /// True when training stopped early.
    pub stopped_early: bool,
}

/// What a model's training code supplies to [`fit`].
pub trait TrainTask<B: AutodiffBackend, M: AutodiffModule<B>> {
    /// Forward pass on the examples `batch` (indices into the training set): the batch loss and
    /// the number of correct predictions in it.
    fn step(&mut self, model: &M, batch: &[usize]) -> (Tensor<B, 1>, usize);
    /// Called after the backward pass with the raw gradients and the step's learning rate,
    /// before the optimizer updates the module (for state kept outside the module).
    fn after_backward(&mut self, _grads: &B::Gradients, _lr: f64) {}
    /// Called at the end of each epoch, before validation (to write such state back).
    fn end_of_epoch(&mut self, model: M) -> M {
        model
    }
    /// Validation score of the model (higher is better), or `None` without validation data.
    fn validate(&mut self, model: &M::InnerModule) -> Option<f64>;
}

/// True for the CPU backends (flex, ndarray, with or without autodiff), where the host-side
/// optimizer paths are faster than device tensor ops.
pub fn is_cpu_backend<B: burn::tensor::backend::Backend>(device: &B::Device) -> bool {
    let name = B::name(device);
    name.contains("flex") || name.contains("ndarray")
}

/// Flushes denormal floats to zero on the calling thread (x86 MXCSR FTZ + DAZ bits; a no-op
/// elsewhere). Optimizer moments of parameters whose gradient stays zero decay into the
/// denormal range after a few hundred steps, and denormal arithmetic is tens of times slower:
/// MLP epochs slowed down 3× from the 5th epoch on before this. PyTorch offers the same as
/// `torch.set_flush_denormal(True)`.
pub fn flush_denormals() {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: only sets the FTZ (bit 15) and DAZ (bit 6) flags of this thread's MXCSR.
    #[allow(deprecated)]
    unsafe {
        use std::arch::x86_64::{_mm_getcsr, _mm_setcsr};
        _mm_setcsr(_mm_getcsr() | 0x8040);
    }
}

/// Trains `model` on `n_train` examples with `task`; see [`TrainTask`]. Denormals are flushed
/// to zero on the calling thread and the threads of the current rayon pool.
pub fn fit<B, M, T>(mut model: M, n_train: usize, config: &EngineConfig, task: &mut T) -> Result<Fitted<M::InnerModule>, TrainError>
where
    B: AutodiffBackend,
    M: AutodiffModule<B>,
    T: TrainTask<B, M>,
{
    config.validate()?;
    flush_denormals();
    rayon::broadcast(|_| flush_denormals());
    if n_train == 0 {
        return Err(TrainError::Data("no training example".into()));
    }
    // CPU backends: the fused host AdamW (same update, one pass); others: burn's AdamW on device.
    let params = config.adamw_params();
    let on_cpu = model.devices().first().is_some_and(is_cpu_backend::<B>);
    let mut host_optim = on_cpu.then(|| HostAdamW::new(params));
    let mut device_optim = (!on_cpu).then(|| {
        AdamWConfig::new()
            .with_beta_1(params.beta_1)
            .with_beta_2(params.beta_2)
            .with_epsilon(params.epsilon)
            .with_weight_decay(params.weight_decay)
            .init::<B, M>()
    });
    let steps_per_epoch = n_train.div_ceil(config.batch_size);
    let total = steps_per_epoch * config.epochs;
    let warmup = (total as f64 * config.warmup_ratio).round() as usize;
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    let mut order: Vec<usize> = (0..n_train).collect();
    let mut history = Vec::new();
    let mut best: Option<(f64, usize, M::InnerModule)> = None;
    let mut since_best = 0usize;
    let mut stopped_early = false;
    let mut global = 0usize;
    let mut lr = config.lr;
    for epoch in 1..=config.epochs {
        order.shuffle(&mut rng);
        let bar = EpochBar::new(config.progress, epoch, config.epochs, steps_per_epoch);
        let start = Instant::now();
        let (mut loss_sum, mut correct, mut seen) = (0.0f64, 0usize, 0usize);
        for batch in order.chunks(config.batch_size) {
            let (loss, ok) = task.step(&model, batch);
            let raw = loss.backward();
            let loss_value: f64 = loss.into_scalar().elem::<f64>();
            if !loss_value.is_finite() {
                return Err(TrainError::Diverged { epoch, step: global, loss: loss_value });
            }
            lr = lr_at(config.schedule, global, warmup, total, config.lr);
            task.after_backward(&raw, lr);
            let grads = GradientsParams::from_grads(raw, &model);
            model = match (&mut host_optim, &mut device_optim) {
                (Some(o), _) => o.step::<B, M>(lr, model, grads),
                (None, Some(o)) => o.step(lr, model, grads),
                (None, None) => unreachable!("one optimizer is always set"),
            };
            global += 1;
            loss_sum += loss_value * batch.len() as f64;
            correct += ok;
            seen += batch.len();
            bar.step(loss_sum / seen as f64);
        }
        bar.finish();
        let seconds = start.elapsed().as_secs_f64();
        model = task.end_of_epoch(model);
        let val_score = task.validate(&model.valid());
        let log = EpochLog { epoch, loss: loss_sum / seen as f64, train_accuracy: correct as f64 / seen as f64, val_score, seconds, lr };
        match val_score {
            Some(v) => tracing::info!(
                "epoch {epoch}/{}: loss {:.4}  train acc {:.4}  val {:.4}  {:.2}s",
                config.epochs, log.loss, log.train_accuracy, v, seconds
            ),
            None => tracing::info!("epoch {epoch}/{}: loss {:.4}  train acc {:.4}  {:.2}s", config.epochs, log.loss, log.train_accuracy, seconds),
        }
        history.push(log);
        let score = val_score.unwrap_or(epoch as f64); // no validation: keep the last epoch
        if best.as_ref().is_none_or(|(b, _, _)| score > *b) {
            best = Some((score, epoch, model.valid()));
            since_best = 0;
        } else {
            since_best += 1;
            if val_score.is_some() && config.patience.is_some_and(|p| since_best >= p) {
                tracing::info!("early stopping: no better validation score for {since_best} epoch(s)");
                stopped_early = true;
                break;
            }
        }
    }
    let (_, best_epoch, model) = best.expect("at least one epoch ran");
    Ok(Fitted { model, history, best_epoch, stopped_early })
}
