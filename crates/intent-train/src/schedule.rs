//! Learning-rate schedules with linear warm-up (burn 0.21 has no sequential scheduler).

use serde::{Deserialize, Serialize};

/// Shape of the learning rate after warm-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum LrSchedule {
    /// The peak rate throughout.
    #[default]
    Constant,
    /// Linear decay to 0 at the last step (Hugging Face's default).
    Linear,
    /// Half-cosine decay to 0.
    Cosine,
}

impl std::str::FromStr for LrSchedule {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "constant" => Ok(LrSchedule::Constant),
            "linear" => Ok(LrSchedule::Linear),
            "cosine" => Ok(LrSchedule::Cosine),
            o => Err(format!("unknown schedule '{o}': expected constant, linear or cosine")),
        }
    }
}

/// Learning rate at `step` (0-based) of `total`, with `warmup` linear warm-up steps.
pub fn lr_at(schedule: LrSchedule, step: usize, warmup: usize, total: usize, peak: f64) -> f64 {
    if step < warmup {
        return peak * (step + 1) as f64 / warmup as f64;
    }
    let span = total.saturating_sub(warmup).max(1) as f64;
    let progress = ((step - warmup) as f64 / span).min(1.0);
    match schedule {
        LrSchedule::Constant => peak,
        LrSchedule::Linear => peak * (1.0 - progress),
        LrSchedule::Cosine => peak * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warmup_then_decay() {
        assert_eq!(lr_at(LrSchedule::Linear, 0, 2, 10, 1.0), 0.5);
        assert_eq!(lr_at(LrSchedule::Linear, 1, 2, 10, 1.0), 1.0);
        assert_eq!(lr_at(LrSchedule::Linear, 2, 2, 10, 1.0), 1.0);
        assert_eq!(lr_at(LrSchedule::Linear, 6, 2, 10, 1.0), 0.5);
        assert!((lr_at(LrSchedule::Cosine, 6, 2, 10, 1.0) - 0.5).abs() < 1e-12);
        assert_eq!(lr_at(LrSchedule::Constant, 9, 0, 10, 0.3), 0.3);
    }
}
