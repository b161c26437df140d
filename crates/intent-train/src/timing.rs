//! How long a run took to get going and how fast it ran once going: time to the first
//! optimizer step (set-up, loading, data preparation and, on GPUs, kernel compilation) apart from
//! steady-state examples per second, for every model kind and device.

use std::cell::Cell;
use std::time::Instant;

use serde::{Deserialize, Serialize};

/// Steps left out of the steady-state rate (as the PyTorch GPU anchor does: it starts its clock
/// after 20 steps); fewer on short runs, see [`warmup_steps`].
pub const WARMUP_STEPS: usize = 20;

/// Timing figures of a training run (this invocation's, when it resumed from a checkpoint).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Timing {
    /// Seconds from the start of the training job (backend, model and data set-up) to the end
    /// of the first optimizer step, its kernel compilation included.
    pub time_to_first_step_s: f64,
    /// Training examples per second after the first [`Timing::warmup_steps`] steps, validation
    /// left out.
    pub steady_samples_per_second: f64,
    /// Steps left out of the steady-state rate.
    pub warmup_steps: usize,
    /// Kernels compiled (and shapes autotuned) before the first step ended: entries added to the
    /// kernel caches (CUDA builds with the cache on; `None` elsewhere).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernels_before_first_step: Option<usize>,
    /// The same, during the whole first epoch, its validation included: on a GPU with static
    /// shapes, all the run compiles (later epochs reuse its shapes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernels_first_epoch: Option<usize>,
    /// The same, during all epochs: more than [`Timing::kernels_first_epoch`] means that later
    /// epochs met tensor shapes the first did not (each one compiled and autotuned anew).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernels_all_epochs: Option<usize>,
    /// Seconds the first epoch's training took beyond the median of the later epochs' (runs of
    /// two or more epochs): on a GPU, what compiling and autotuning kernels cost in it, the
    /// first step's included (which [`Timing::time_to_first_step_s`] also counts, with set-up).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_epoch_extra_s: Option<f64>,
}

/// The median of `values` (of an even count, the mean of the two middle ones); `None` when
/// there are none.
pub fn median(values: &[f64]) -> Option<f64> {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(v[n / 2]),
        _ => Some((v[n / 2 - 1] + v[n / 2]) / 2.0),
    }
}

/// How much longer the first of `epochs` (seconds of training each) took than the median of
/// the others; `None` for fewer than two epochs.
pub fn first_epoch_extra(epochs: &[f64]) -> Option<f64> {
    let (first, later) = epochs.split_first()?;
    Some((first - median(later)?).max(0.0))
}

/// Steps left out of the steady-state rate for a run of `total` steps: [`WARMUP_STEPS`], or a
/// fifth of a shorter run (at least one step, none for a one-step run).
pub fn warmup_steps(total: usize) -> usize {
    if total >= 5 * WARMUP_STEPS {
        WARMUP_STEPS
    } else {
        (total / 5).max(1).min(total.saturating_sub(1))
    }
}

thread_local! {
    static JOB_START: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// Marks the start of a training job on this thread until dropped ([`crate::device::dispatch`]
/// and the `*_to_dir` functions hold one around each job); [`job_start`] reads it. The
/// outermost clock wins: a job started inside another keeps the outer start.
pub struct JobClock {
    previous: Option<Instant>,
}

impl JobClock {
    /// Starts the clock now, unless one already runs on this thread.
    pub fn start() -> Self {
        let previous = JOB_START.with(Cell::get);
        JOB_START.with(|s| s.set(Some(previous.unwrap_or_else(Instant::now))));
        JobClock { previous }
    }
}

impl Drop for JobClock {
    fn drop(&mut self) {
        JOB_START.with(|s| s.set(self.previous));
    }
}

/// When the current job started on this thread, if a [`JobClock`] runs.
pub fn job_start() -> Option<Instant> {
    JOB_START.with(Cell::get)
}

/// Accumulates the figures of [`Timing`] during [`crate::engine::fit`].
pub(crate) struct StepClock {
    start: Instant,
    warmup: usize,
    first_step: Option<f64>,
    steady_seconds: f64,
    steady_samples: usize,
    kernels_at_start: Option<usize>,
    kernels_first_step: Option<usize>,
    kernels_first_epoch: Option<usize>,
    epoch_seconds: Vec<f64>,
}

impl StepClock {
    /// A clock for a run of `total` steps, started at the job's start (or now).
    pub(crate) fn new(total: usize) -> Self {
        StepClock {
            start: job_start().unwrap_or_else(Instant::now),
            warmup: warmup_steps(total),
            first_step: None,
            steady_seconds: 0.0,
            steady_samples: 0,
            kernels_at_start: crate::kernels::entries_so_far(),
            kernels_first_step: None,
            kernels_first_epoch: None,
            epoch_seconds: Vec::new(),
        }
    }

    /// Records steps `done_before + 1 ..= done_before + samples.len()` (this invocation's
    /// counting), which ran from `from` until now with `samples[i]` examples each.
    pub(crate) fn steps(&mut self, done_before: usize, samples: &[usize], from: Instant) {
        let now = Instant::now();
        if self.first_step.is_none() && !samples.is_empty() {
            let s = now.duration_since(self.start).as_secs_f64();
            self.first_step = Some(s);
            self.kernels_first_step = self.kernels_since_start();
            match self.kernels_first_step {
                Some(k) => tracing::info!("first step done {s:.2}s after the start ({k} kernels compiled)"),
                None => tracing::info!("first step done {s:.2}s after the start"),
            }
        }
        // Steps after the warm-up: a block straddling it counts in proportion.
        let n = samples.len();
        let counted = (done_before + n).saturating_sub(self.warmup.max(done_before)).min(n);
        if counted > 0 {
            let share = counted as f64 / n as f64;
            self.steady_seconds += now.duration_since(from).as_secs_f64() * share;
            self.steady_samples += samples[n - counted..].iter().sum::<usize>();
        }
    }

    /// Marks the end of an epoch of this invocation whose training steps took `seconds`
    /// (validation left out); the first call reads the kernels compiled so far.
    pub(crate) fn epoch_done(&mut self, seconds: f64) {
        self.epoch_seconds.push(seconds);
        if self.kernels_first_epoch.is_none() {
            self.kernels_first_epoch = self.kernels_since_start();
            if let Some(k) = self.kernels_first_epoch {
                tracing::info!("first epoch: {k} kernels compiled or autotuned (kernel-cache entries added)");
            }
        }
    }

    /// Whether to wait for the device after the `done`-th step of this invocation where it is
    /// read only every few steps (accelerators): after the first step, so that
    /// [`Timing::time_to_first_step_s`] ends with it and not with the first block of steps read,
    /// and after the last warm-up step, so that the steady rate starts there.
    pub(crate) fn wants_a_sync_after(&self, done: usize) -> bool {
        self.first_step.is_none() || done == self.warmup
    }

    fn kernels_since_start(&self) -> Option<usize> {
        Some(crate::kernels::entries_so_far()?.saturating_sub(self.kernels_at_start?))
    }

    /// The figures, at the end of the training loop.
    pub(crate) fn timing(&self) -> Timing {
        let all = self.kernels_since_start();
        if let (Some(all), Some(first)) = (all, self.kernels_first_epoch) {
            if all > first {
                tracing::warn!(
                    "{} kernels compiled or autotuned after the first epoch: shapes it had not met",
                    all - first
                );
            }
        }
        let first_epoch_extra_s = first_epoch_extra(&self.epoch_seconds);
        if let (Some(extra), Some(k)) = (first_epoch_extra_s, self.kernels_first_epoch) {
            tracing::info!(
                "first epoch: {extra:.1}s longer than the median later one ({k} kernels compiled in it)"
            );
        }
        Timing {
            time_to_first_step_s: self.first_step.unwrap_or(0.0),
            steady_samples_per_second: self.steady_samples as f64 / self.steady_seconds.max(1e-9),
            warmup_steps: self.warmup,
            kernels_before_first_step: self.kernels_first_step,
            kernels_first_epoch: self.kernels_first_epoch,
            kernels_all_epochs: all,
            first_epoch_extra_s,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warmup_is_twenty_steps_or_a_fifth_of_a_short_run() {
        assert_eq!(warmup_steps(1000), 20);
        assert_eq!(warmup_steps(100), 20);
        assert_eq!(warmup_steps(50), 10);
        assert_eq!(warmup_steps(3), 1);
        assert_eq!(warmup_steps(1), 0);
    }

    #[test]
    fn the_median_of_an_even_count_is_the_mean_of_the_middle_two() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[3.0]), Some(3.0));
        assert_eq!(median(&[43.8, 5.6]), Some(24.7), "not the upper one (a first epoch that compiled)");
        assert_eq!(median(&[9.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
    }

    #[test]
    fn the_first_epoch_is_compared_with_the_median_later_one() {
        assert_eq!(first_epoch_extra(&[5.0]), None);
        assert_eq!(first_epoch_extra(&[]), None);
        assert!((first_epoch_extra(&[5.0, 2.0]).unwrap() - 3.0).abs() < 1e-12);
        // Median of 2.2, 2.0, 9.0 (one slow later epoch does not hide the first's cost): 2.2.
        assert!((first_epoch_extra(&[5.0, 2.2, 2.0, 9.0]).unwrap() - 2.8).abs() < 1e-12);
        assert!((first_epoch_extra(&[5.0, 2.0, 2.4, 9.0, 1.0]).unwrap() - 2.8).abs() < 1e-12);
        assert_eq!(first_epoch_extra(&[1.0, 2.0, 3.0]), Some(0.0), "never negative");
        let mut c = StepClock::new(10);
        c.epoch_done(4.0);
        assert_eq!(c.timing().first_epoch_extra_s, None);
        c.epoch_done(1.5);
        assert_eq!(c.timing().first_epoch_extra_s, Some(2.5));
    }

    #[test]
    fn the_device_is_awaited_after_the_first_step_and_after_the_warmup() {
        let mut c = StepClock::new(100);
        assert_eq!(c.warmup, 20);
        assert!(c.wants_a_sync_after(1), "the first step ends alone");
        c.steps(0, &[8], Instant::now());
        assert!(!c.wants_a_sync_after(2));
        assert!(!c.wants_a_sync_after(19));
        assert!(c.wants_a_sync_after(20), "the steady rate starts after the warm-up's last step");
        assert!(!c.wants_a_sync_after(21));
        assert!(!c.wants_a_sync_after(45));
    }

    #[test]
    fn steady_rate_leaves_out_the_warmup_steps() {
        let _clock = JobClock::start();
        let mut c = StepClock::new(100);
        let t = Instant::now();
        // Steps 1..=10 (warm-up), then 11..=30 in a block straddling the end of the warm-up.
        c.steps(0, &[8; 10], t);
        assert!(c.first_step.is_some() && c.steady_samples == 0);
        std::thread::sleep(std::time::Duration::from_millis(20));
        c.steps(10, &[8; 20], Instant::now() - std::time::Duration::from_millis(100));
        // 10 of those 20 steps are past step 20: 80 samples over ~half the block's 100 ms.
        assert_eq!(c.steady_samples, 80);
        let rate = c.timing().steady_samples_per_second;
        assert!((1000.0..2000.0).contains(&rate), "{rate}");
        assert!(c.timing().time_to_first_step_s < 1.0);
        drop(_clock);
        assert!(job_start().is_none(), "the clock is restored when dropped");
    }
}
