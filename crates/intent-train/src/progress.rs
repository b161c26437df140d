//! Progress display: an indicatif bar on a terminal, nothing extra otherwise (the per-epoch
//! `tracing` lines are the plain-text progress).

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};

/// A per-epoch step bar, shown only when stderr is a terminal and `enabled`.
pub struct EpochBar {
    bar: Option<ProgressBar>,
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
        EpochBar { bar }
    }
    /// Advances one step, showing the running loss.
    pub fn step(&self, loss: f64) {
        if let Some(b) = &self.bar {
            b.set_message(format!("loss {loss:.4}"));
            b.inc(1);
        }
    }
    /// Removes the bar (the epoch's log line follows).
    pub fn finish(self) {
        if let Some(b) = self.bar {
            b.finish_and_clear();
        }
    }
}
