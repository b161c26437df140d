//! The training engine shared by the models: epochs of shuffled mini-batches, AdamW with
//! explicit PyTorch-equivalent settings, a learning-rate schedule with warm-up, per-epoch
//! validation, early stopping with patience and best-checkpoint keeping, a progress bar and one
//! log line per epoch.

use std::time::Instant;

use burn::module::AutodiffModule;
use burn::optim::GradientsParams;
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use serde::{Deserialize, Serialize};

use intent_models::checked::{Check, Checked};

use crate::batches::{epoch_steps, Batch};
use crate::optim::AdamWParams;
use crate::progress::EpochBar;
use crate::schedule::{lr_at, LrSchedule};
use crate::timing::{StepClock, Timing};
use crate::TrainError;

mod run;
use run::Run;

/// Steps between two reads of the loss on accelerator backends (a read waits for the device).
pub const ACCELERATOR_SYNC_EVERY: usize = 25;

/// Settings of the engine, validated by [`EngineConfig::validate`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EngineConfig {
    /// Passes over the training data (at most).
    pub epochs: usize,
    /// At least this many optimizer steps: on small data sets, the epochs are raised until the
    /// run makes them, and early stopping waits for them (`None`: `epochs` alone decides).
    #[serde(default)]
    pub min_steps: Option<usize>,
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
    /// Global gradient-norm clipping: all gradients together are scaled down to this L2 norm
    /// (PyTorch's `clip_grad_norm_`, Hugging Face's `max_grad_norm`); `None`: no clipping.
    #[serde(default)]
    pub max_grad_norm: Option<f64>,
    /// Batches of texts of similar length (Hugging Face's `group_by_length`): each block of 50
    /// batches of the shuffled order is sorted by length before it is cut into batches, and the
    /// batches are then shuffled. Needs the task's [`TrainTask::lengths`]; less padding.
    #[serde(default)]
    pub length_buckets: bool,
    /// Tensor shapes from a small fixed set (see [`crate::batches`]): the short last batch
    /// filled up to `batch_size`, BERT's lengths padded to a multiple, the MLP's sparse input
    /// of one size. `None`: on for accelerator backends (where every new shape compiles
    /// kernels), off on the CPU.
    #[serde(default)]
    pub static_shapes: Option<bool>,
    /// Folder of the per-epoch checkpoints (`None`: none written).
    #[serde(skip)]
    pub checkpoint_dir: Option<std::path::PathBuf>,
    /// Continue from the latest checkpoint in `checkpoint_dir` when there is one.
    #[serde(skip)]
    pub resume: bool,
    /// Stop after this many epochs in this invocation, leaving the checkpoint to resume from
    /// (time-limited or preemptible slots); `None`: run to the end.
    #[serde(skip)]
    pub stop_after_epochs: Option<usize>,
    /// Stop at the end of the first epoch that ends this many seconds or more after this
    /// invocation started, leaving the checkpoint to resume from (a time limit for unattended
    /// runs); `None`: no limit.
    #[serde(skip)]
    pub time_limit_s: Option<f64>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            epochs: 10,
            min_steps: None,
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
            max_grad_norm: None,
            length_buckets: false,
            static_shapes: None,
            checkpoint_dir: None,
            resume: false,
            stop_after_epochs: None,
            time_limit_s: None,
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
}

impl Check for EngineConfig {
    type Error = TrainError;

    /// Checks the numbers; the error names the field.
    fn validate(&self) -> Result<(), TrainError> {
        let bad = |name: &'static str, message: String| Err(TrainError::Hyperparameter { name, message });
        if self.epochs == 0 {
            return bad("epochs", "must be at least 1".into());
        }
        if self.batch_size == 0 {
            return bad("batch_size", "must be at least 1".into());
        }
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return bad("lr", format!("{} must be a positive number", self.lr));
        }
        if !(self.weight_decay >= 0.0 && self.weight_decay.is_finite()) {
            return bad("weight_decay", format!("{} must be ≥ 0", self.weight_decay));
        }
        if !(0.0..1.0).contains(&self.warmup_ratio) {
            return bad("warmup_ratio", format!("{} is not in [0, 1)", self.warmup_ratio));
        }
        if let Some(m) = self.max_grad_norm {
            if !(m > 0.0 && m.is_finite()) {
                return bad(
                    "max_grad_norm",
                    format!("{m} must be a positive number (0 on the command line disables clipping)"),
                );
            }
        }
        if self.stop_after_epochs.is_some() && self.checkpoint_dir.is_none() {
            return bad("stop_after_epochs", "needs `checkpoint_dir` (the run continues from there)".into());
        }
        if self.stop_after_epochs == Some(0) {
            return bad("stop_after_epochs", "must be at least 1".into());
        }
        if let Some(t) = self.time_limit_s {
            if !(t > 0.0 && t.is_finite()) {
                return bad("time_limit_s", format!("{t} must be a positive number of seconds"));
            }
            if self.checkpoint_dir.is_none() {
                return bad("time_limit_s", "needs `checkpoint_dir` (the run continues from there)".into());
            }
        }
        if self.resume && self.checkpoint_dir.is_none() {
            return bad("resume", "needs `checkpoint_dir` (where the checkpoints are)".into());
        }
        if self.patience == Some(0) {
            return bad("patience", "must be at least 1 (omit it to disable early stopping)".into());
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
    /// True when `stop_after_epochs` ended this invocation before the last epoch (the model is
    /// the best so far; the checkpoint continues the run).
    pub interrupted: bool,
    /// Time to the first step and steady-state speed of this invocation.
    pub timing: Timing,
}

/// What a model's training code supplies to [`fit`].
pub trait TrainTask<B: AutodiffBackend, M: AutodiffModule<B>> {
    /// Forward pass on the examples of `batch`: the loss over its counted examples
    /// ([`Batch::real`]) and the number of correct predictions among them, both left on the
    /// device (the engine reads them back every few steps).
    fn step(&mut self, model: &M, batch: &Batch) -> (Tensor<B, 1>, Tensor<B, 1, Int>);
    /// Called after the backward pass with the raw gradients and the step's learning rate,
    /// before the optimizer updates the module (for state kept outside the module).
    fn after_backward(&mut self, _grads: &B::Gradients, _lr: f64) {}
    /// Called at the end of each epoch, before validation (to write such state back).
    fn end_of_epoch(&mut self, model: M) -> M {
        model
    }
    /// Validation score of the model (higher is better), or `None` without validation data.
    fn validate(&mut self, model: &M::InnerModule) -> Option<f64>;
    /// Length of each training example (tokens), for length buckets.
    fn lengths(&self) -> Option<&[usize]> {
        None
    }
    /// Called before each epoch (1-based), to reseed the task's own random draws so that an
    /// epoch's randomness depends only on the seed and the epoch (exact resume).
    fn start_epoch(&mut self, _epoch: usize) {}
    /// A description of the data and task settings; a checkpoint is resumed only by a run
    /// with the same description. `None`: the task cannot be checkpointed (state outside the
    /// module).
    fn fingerprint(&self) -> Option<String> {
        Some(String::new())
    }
    /// Learning-rate factors of some of the model's parameters (a fresh head faster than a
    /// pre-trained encoder); the others train at the schedule's rate.
    fn lr_factors(&self, _model: &M) -> std::collections::HashMap<burn::module::ParamId, f64> {
        Default::default()
    }
}

/// The epochs a run makes: `epochs`, raised so that it makes at least `min_steps` steps of
/// `steps_per_epoch`.
pub fn epochs_for(epochs: usize, min_steps: Option<usize>, steps_per_epoch: usize) -> usize {
    match min_steps {
        Some(m) => epochs.max(m.div_ceil(steps_per_epoch.max(1))),
        None => epochs,
    }
}

/// Whether `config` asks for static shapes on `device` (see [`EngineConfig::static_shapes`]).
pub fn static_shapes<B: burn::tensor::backend::Backend>(config: &EngineConfig, device: &B::Device) -> bool {
    config.static_shapes.unwrap_or_else(|| !is_cpu_backend::<B>(device))
}

/// True for the CPU backends (flex, ndarray, with or without autodiff), where the host-side
/// optimizer paths are faster than device tensor ops.
pub use intent_models::is_cpu_backend;

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
/// to zero on the calling thread and the threads of the current rayon pool. With
/// `config.checkpoint_dir`, a checkpoint is written after every epoch, and with `config.resume`
/// the run continues from the latest one (see [`crate::checkpoint`]).
pub fn fit<B, M, T>(
    model: M,
    n_train: usize,
    config: &Checked<EngineConfig>,
    task: &mut T,
) -> Result<Fitted<M::InnerModule>, TrainError>
where
    B: AutodiffBackend,
    M: AutodiffModule<B>,
    T: TrainTask<B, M>,
{
    flush_denormals();
    rayon::broadcast(|_| flush_denormals());
    if n_train == 0 {
        return Err(TrainError::Data("no training example".into()));
    }
    let device = model
        .devices()
        .first()
        .cloned()
        .ok_or_else(|| TrainError::Device("the model has no parameters".into()))?;
    let fingerprint = match (&config.checkpoint_dir, task.fingerprint()) {
        (Some(_), None) => {
            return Err(TrainError::Hyperparameter {
                name: "checkpoint_dir",
                message: "this model's training cannot be checkpointed".into(),
            })
        }
        (_, f) => {
            let mut c = EngineConfig::clone(config);
            c.progress = true;
            format!(
                "{} n={n_train} {}",
                serde_json::to_string(&c).expect("serializes"),
                f.unwrap_or_default()
            )
        }
    };
    let mut run = Run::<B, M>::new(model, config, &device, fingerprint)?;
    // The factors are keyed by parameter id: taken from the model as restored from a checkpoint
    // (its ids are the checkpoint's), not from the fresh one passed in.
    let lr_factors = task.lr_factors(&run.model);
    if let Some(o) = &mut run.host_optim {
        o.set_lr_factors(lr_factors.clone());
    }
    run.lr_factors = lr_factors;
    let steps_per_epoch = n_train.div_ceil(config.batch_size);
    let epochs = epochs_for(config.epochs, config.min_steps, steps_per_epoch);
    if epochs > config.epochs {
        tracing::info!(
            "{epochs} epochs instead of {} so that training makes at least {} steps \
             ({steps_per_epoch} per epoch)",
            config.epochs,
            config.min_steps.unwrap_or(0)
        );
    }
    let total = steps_per_epoch * epochs;
    let warmup = (total as f64 * config.warmup_ratio).round() as usize;
    let lengths = if config.length_buckets { task.lengths().map(<[usize]>::to_vec) } else { None };
    let fill = static_shapes::<B>(config, &device);
    let sync_every = if is_cpu_backend::<B>(&device) { 1 } else { ACCELERATOR_SYNC_EVERY };
    let first = run.state.epochs_done + 1;
    let first_global_step = run.state.global_step;
    let mut clock = StepClock::new(total.saturating_sub(first_global_step));
    let mut interrupted = false;
    let started = Instant::now();
    for epoch in first..=epochs {
        if run.state.stopped_early {
            break;
        }
        if config.time_limit_s.is_some_and(|t| epoch > first && started.elapsed().as_secs_f64() >= t) {
            tracing::info!(
                "time limit of {:.0} s reached after epoch {} of {}; resume from {}",
                config.time_limit_s.unwrap_or_default(),
                epoch - 1,
                epochs,
                config.checkpoint_dir.as_deref().unwrap_or(std::path::Path::new("?")).display()
            );
            interrupted = true;
            break;
        }
        if config.stop_after_epochs.is_some_and(|n| epoch - first >= n) {
            tracing::info!(
                "stopping after epoch {} of {} as asked; resume from {}",
                epoch - 1,
                epochs,
                config.checkpoint_dir.as_deref().unwrap_or(std::path::Path::new("?")).display()
            );
            interrupted = true;
            break;
        }
        B::seed(&device, config.seed.wrapping_add(epoch as u64));
        task.start_epoch(epoch);
        let steps = epoch_steps(n_train, config.batch_size, config.seed, epoch, lengths.as_deref(), fill);
        let bar = EpochBar::new(config.progress, epoch, epochs, steps.len());
        let start = Instant::now();
        let (mut loss_sum, mut correct, mut seen) = (0.0f64, 0usize, 0usize);
        let mut lr = config.lr;
        let mut pending: Vec<(Tensor<B, 1>, Tensor<B, 1, Int>, usize)> = Vec::with_capacity(sync_every);
        let mut since = Instant::now();
        // Leading entries of `pending` whose time the clock has already (see the sync below).
        let mut timed = 0;
        for (s, batch) in steps.iter().enumerate() {
            let (loss, ok) = task.step(&run.model, batch);
            let raw = loss.backward();
            pending.push((loss.detach(), ok, batch.real));
            lr = lr_at(config.schedule, run.state.global_step, warmup, total, config.lr);
            task.after_backward(&raw, lr);
            let grads = GradientsParams::from_grads(raw, &run.model);
            run.update(lr, grads, config.max_grad_norm);
            run.state.global_step += 1;
            let done = run.state.global_step - first_global_step;
            let next = after_step(pending.len(), sync_every, s + 1 == steps.len(), &clock, done);
            if next == AfterStep::Read {
                // One read of the device for the steps since the last one.
                let n = pending.len();
                let first_step = run.state.global_step - n;
                let sizes: Vec<usize> = pending.iter().map(|p| p.2).collect();
                let (losses, oks): (Vec<_>, Vec<_>) = pending.drain(..).map(|(l, o, _)| (l, o)).unzip();
                let losses: Vec<f64> = Tensor::cat(losses, 0).into_data().iter::<f64>().collect();
                let oks: i64 = Tensor::cat(oks, 0).sum().into_scalar().elem::<i64>();
                if let Some(k) = losses.iter().position(|l| !l.is_finite()) {
                    return Err(TrainError::Diverged { epoch, step: first_step + k, loss: losses[k] });
                }
                clock.steps(first_step - first_global_step + timed, &sizes[timed..], since);
                since = Instant::now();
                timed = 0;
                loss_sum += losses.iter().zip(&sizes).map(|(l, &b)| l * b as f64).sum::<f64>();
                correct += oks as usize;
                seen += sizes.iter().sum::<usize>();
                bar.advance(n, loss_sum / seen as f64, seen);
            } else if next == AfterStep::Wait {
                // Waits for the device without reading anything: the blocks read keep the lengths
                // of every epoch (a read of a new length could compile a kernel after epoch 1).
                B::sync(&device).map_err(|e| TrainError::Device(format!("waiting for the device: {e:?}")))?;
                let sizes: Vec<usize> = pending[timed..].iter().map(|p| p.2).collect();
                clock.steps(done - sizes.len(), &sizes, since);
                since = Instant::now();
                timed = pending.len();
            }
        }
        bar.finish();
        let seconds = start.elapsed().as_secs_f64();
        run.model = task.end_of_epoch(run.model);
        let val_score = task.validate(&run.model.valid());
        clock.epoch_done(seconds);
        let log = EpochLog {
            epoch,
            loss: loss_sum / seen as f64,
            train_accuracy: correct as f64 / seen as f64,
            val_score,
            seconds,
            lr,
        };
        let rate = seen as f64 / seconds.max(1e-9);
        match val_score {
            Some(v) => tracing::info!(
                "epoch {epoch}/{epochs}: loss {:.4}  train acc {:.4}  val {:.4}  {:.2}s \
                 ({rate:.1} samples/s)",
                log.loss,
                log.train_accuracy,
                v,
                seconds
            ),
            None => tracing::info!(
                "epoch {epoch}/{epochs}: loss {:.4}  train acc {:.4}  {:.2}s ({rate:.1} samples/s)",
                log.loss,
                log.train_accuracy,
                seconds
            ),
        }
        run.state.history.push(log);
        run.state.epochs_done = epoch;
        let score = val_score.unwrap_or(epoch as f64); // no validation: keep the last epoch
        if run.state.best.is_none_or(|(b, _)| score > b) {
            run.state.best = Some((score, epoch));
            run.keep_best(&device);
            run.state.since_best = 0;
        } else {
            run.state.since_best += 1;
            let floor_reached = run.state.global_step >= config.min_steps.unwrap_or(0);
            if val_score.is_some()
                && floor_reached
                && config.patience.is_some_and(|p| run.state.since_best >= p)
            {
                tracing::info!(
                    "early stopping: no better validation score for {} epoch(s)",
                    run.state.since_best
                );
                run.state.stopped_early = true;
            }
        }
        if let Some(dir) = &config.checkpoint_dir {
            run.save_checkpoint(dir)?;
        }
    }
    let best_epoch = run.state.best.map(|(_, e)| e).expect("at least one epoch ran");
    let model = run.best.expect("set with the best epoch");
    Ok(Fitted {
        model,
        history: run.state.history,
        best_epoch,
        stopped_early: run.state.stopped_early,
        interrupted,
        timing: clock.timing(),
    })
}

/// What the training loop does with the device after a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AfterStep {
    /// Queue the next step.
    Continue,
    /// Wait for the device to finish, reading nothing (the clock marks the time).
    Wait,
    /// Read the losses and correct counts of the steps since the last read.
    Read,
}

/// After the `done`-th step of this invocation, with `pending` steps unread: read every
/// `read_every` steps and at the end of the epoch (`last`), and wait where the clock wants a
/// mark between reads (see [`StepClock::wants_a_sync_after`]).
fn after_step(pending: usize, read_every: usize, last: bool, clock: &StepClock, done: usize) -> AfterStep {
    if pending == read_every || last {
        AfterStep::Read
    } else if clock.wants_a_sync_after(done) {
        AfterStep::Wait
    } else {
        AfterStep::Continue
    }
}

#[cfg(test)]
mod tests {
    use super::{after_step, epochs_for, AfterStep, StepClock, ACCELERATOR_SYNC_EVERY};

    #[test]
    fn accelerators_read_every_25_steps_and_wait_after_the_first_and_the_warmup() {
        // An epoch of 63 steps in a run of 63 (warm-up: 12 steps), as BANKING77's 2,000 texts.
        let mut clock = StepClock::new(63);
        let (mut pending, mut reads, mut waits) = (0, Vec::new(), Vec::new());
        for done in 1..=63 {
            pending += 1;
            match after_step(pending, ACCELERATOR_SYNC_EVERY, done == 63, &clock, done) {
                AfterStep::Read => {
                    clock.steps(done - pending, &vec![32; pending], std::time::Instant::now());
                    reads.push(done);
                    pending = 0;
                }
                AfterStep::Wait => {
                    clock.steps(done - 1, &[32], std::time::Instant::now());
                    waits.push(done);
                }
                AfterStep::Continue => {}
            }
        }
        assert_eq!(reads, [25, 50, 63], "the blocks read have the lengths of every epoch");
        assert_eq!(waits, [1, 12]);
        // The CPU reads every step, and so never waits.
        let clock = StepClock::new(63);
        assert!((1..=63).all(|d| after_step(1, 1, d == 63, &clock, d) == AfterStep::Read));
    }

    #[test]
    fn the_step_floor_raises_the_epochs_of_small_data_only() {
        assert_eq!(epochs_for(3, Some(400), 12), 34, "12 steps per epoch: 34 epochs make 408 steps");
        assert_eq!(epochs_for(3, Some(400), 313), 3, "large data: the epochs already make 939");
        assert_eq!(epochs_for(3, None, 12), 3);
        assert_eq!(epochs_for(3, Some(0), 12), 3);
    }
}
