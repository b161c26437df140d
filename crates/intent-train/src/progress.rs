//! Progress display: an indicatif bar with loss and samples/s on a terminal; otherwise plain
//! `tracing` lines, about ten per epoch when an epoch is long (besides the per-epoch line).

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};

/// A per-epoch step bar, shown only when stderr is a terminal and `enabled`.
pub struct EpochBar {
    bar: Option<ProgressBar>,
    start: std::time::Instant,
    epoch: usize,
    epochs: usize,
    steps: usize,
    done: std::cell::Cell<usize>,
    plain: bool,
}

impl EpochBar {
    /// Starts a bar of `steps` steps for `epoch`.
    pub fn new(enabled: bool, epoch: usize, epochs: usize, steps: usize) -> Self {
        let bar = (enabled && std::io::stderr().is_terminal()).then(|| {
            let b = ProgressBar::new(steps as u64);
            b.set_style(
                ProgressStyle::with_template("epoch {prefix} [{bar:30}] {pos}/{len} {msg} ({elapsed}<{eta})")
                    .expect("static template")
                    .progress_chars("=> "),
            );
            b.set_prefix(format!("{epoch}/{epochs}"));
            b
        });
        // Plain lines only for epochs long enough to be worth them.
        let plain = enabled && bar.is_none() && steps >= 50;
        EpochBar {
            bar,
            start: std::time::Instant::now(),
            epoch,
            epochs,
            steps,
            done: std::cell::Cell::new(0),
            plain,
        }
    }
    /// Advances one step, showing the running loss and the examples per second so far.
    pub fn step(&self, loss: f64, examples_seen: usize) {
        self.advance(1, loss, examples_seen);
    }

    /// Advances `steps` steps at once (accelerators read the loss back every few steps).
    pub fn advance(&self, steps: usize, loss: f64, examples_seen: usize) {
        let rate = examples_seen as f64 / self.start.elapsed().as_secs_f64().max(1e-9);
        let before = self.done.get();
        let done = before + steps;
        self.done.set(done);
        let every = self.steps.div_ceil(10).max(1);
        if let Some(b) = &self.bar {
            b.set_message(format!("loss {loss:.4} {rate:.1} samples/s"));
            b.inc(steps as u64);
        } else if self.plain && done / every > before / every && done < self.steps {
            tracing::info!(
                "epoch {}/{} step {done}/{}: loss {loss:.4} {rate:.1} samples/s",
                self.epoch,
                self.epochs,
                self.steps
            );
        }
    }
    /// Removes the bar (the epoch's log line follows).
    pub fn finish(self) {
        if let Some(b) = self.bar {
            b.finish_and_clear();
        }
    }
}
