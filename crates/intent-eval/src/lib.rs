//! intent-eval: metrics, reports and the quality gate.
//!
//! - [`metrics`]: accuracy, per-class P/R/F1, averages, confusion matrix, top-k, ECE;
//! - [`evaluate`]: single-label (with out-of-scope threshold) and multi-label reports, and
//!   threshold tuning;
//! - [`gate`]: the quality gate;
//! - [`report`], [`plots`], [`html`]: JSON / Markdown / errors file / SVG plots / a
//!   self-contained `report.html`.
//!
//! ```
//! use intent_eval::{evaluate_single, ClassMetric, QualityGate};
//! let labels = vec!["greeting".to_string(), "order_status".to_string()];
//! // Gold labels and class probabilities of three texts; the third is wrong.
//! let gold = ["greeting", "order_status", "order_status"];
//! let scores = vec![vec![0.9, 0.1], vec![0.2, 0.8], vec![0.6, 0.4]];
//! let (report, predicted) = evaluate_single(&gold, &scores, &labels, None);
//! assert!((report.accuracy - 2.0 / 3.0).abs() < 1e-9);
//! assert_eq!(predicted[2].0, "greeting");
//! let gate = QualityGate { min_overall: 0.9, min_per_class: 0.0, class_metric: ClassMetric::F1 };
//! assert!(!gate.check(&report).passed);
//! ```

pub mod evaluate;
pub mod gate;
pub mod html;
pub mod metrics;
pub mod plots;
pub mod ranking;
pub mod report;
pub mod thresholds;

pub use evaluate::{
    evaluate_multi, evaluate_single, oos_curve, tune_oos_threshold, OosPolicy, PredictionRow, Report,
};
pub use gate::{ClassMetric, GateResult, QualityGate};
pub use html::CurvePoint;
pub use thresholds::{best_micro_f1, tune_label_thresholds};

use std::path::PathBuf;

/// Errors writing reports.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// File system error.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Serialising the report failed.
    #[error("report: {0}")]
    Report(String),
    /// Drawing a plot failed.
    #[error("{}: plot: {message}", path.display())]
    Plot {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
}

impl EvalError {
    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        EvalError::Io { path: path.into(), source }
    }
}
