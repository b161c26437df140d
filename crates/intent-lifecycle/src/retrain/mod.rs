//! Automated retraining: `retrain.toml` → triggers → merged data → candidate → validation on a
//! held-out set (quality gate, no regression against `current`) → register, promote, tell the
//! server → one history line per run.
//!
//! Every run holds the registry model's lock, so concurrent retrains are refused. Nothing moves
//! `current` until the candidate is registered (a complete version folder) and validated.

mod assess;
pub mod drift;
mod history;
mod kinds;
pub mod notify;
pub mod outcome;
mod run;
pub mod schedule;
mod server_calls;
mod sources;

use std::path::{Path, PathBuf};

use intent_models::ModelKind;
use serde::{Deserialize, Serialize};

pub use history::{history, record_bad_config};
pub use kinds::{BertTrain, TrainPlan, ZeroShotTrain};
pub use outcome::{RetrainOutcome, RunStatus};
pub use run::{retrain, status, RunOptions, Status};

/// Errors of retraining (configuration, data, training, registry).
#[derive(Debug, thiserror::Error)]
pub enum RetrainError {
    /// The config file.
    #[error("{}: {message}", path.display())]
    Config {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A data file.
    #[error(transparent)]
    Data(#[from] intent_data::DataError),
    /// Registry or model folders.
    #[error(transparent)]
    Model(#[from] intent_models::ModelError),
    /// Training.
    #[error(transparent)]
    Train(#[from] intent_train::TrainError),
    /// Loading a model for validation.
    #[error(transparent)]
    Serve(#[from] intent_serve::ServeError),
    /// A fine-tune stopped at its time limit; its checkpoint stays for the next run.
    #[error("{0}")]
    TimeLimit(String),
    /// A file of the state folder (history, log).
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

/// When a retrain runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Triggers {
    /// Days since the last successful retrain (30).
    pub min_days: f64,
    /// New labeled samples: texts of the merged data that the current version did not train on (50).
    pub min_new_samples: usize,
    /// The base data changed since the last deployment (its SHA-256 is in each history line;
    /// true).
    pub on_data_change: bool,
    /// The current version answers worse than when it was deployed (`[triggers.drift]`; needs
    /// `[server]`).
    pub drift: Option<drift::Drift>,
}

impl Default for Triggers {
    fn default() -> Self {
        Triggers { min_days: 30.0, min_new_samples: 50, on_data_change: true, drift: None }
    }
}

/// What a candidate must reach on the held-out set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Gate {
    /// Minimum accuracy (micro-F1 for multi-label) (0.0).
    pub min_overall: f64,
    /// Minimum F1 of every class (0.0).
    pub min_class: f64,
    /// Largest drop allowed against the current version's score on the same set (0.01).
    pub max_regression: f64,
}

impl Default for Gate {
    fn default() -> Self {
        Gate { min_overall: 0.0, min_class: 0.0, max_regression: 0.01 }
    }
}

/// A running server to reload after a deployment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerNotify {
    /// Base URL, e.g. `http://127.0.0.1:8080`.
    pub url: String,
    /// Environment variable holding the admin token (`INTENT_ADMIN_TOKEN`).
    #[serde(default = "default_token_env")]
    pub token_env: String,
    /// File holding the admin token instead (for cron jobs, whose environment is bare).
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// Fetch the labeled items of the server's labeling queue (`/admin/labeling/export`) at the
    /// start of each run into `STATE_DIR/labels/from_server.jsonl`, which joins the new data.
    #[serde(default)]
    pub pull_labels: bool,
}

/// Start with one kind (a zero-shot model, while there is little data) and move to another
/// once every label has enough labeled examples.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bootstrap {
    /// The kind to train once the data is large enough (`bert`).
    pub kind: ModelKind,
    /// Labeled examples every label needs first (20).
    #[serde(default = "default_min_per_label")]
    pub min_per_label: usize,
    /// That kind's options (as `[train]` for `kind`).
    #[serde(default)]
    pub train: toml::Table,
}

fn default_min_per_label() -> usize {
    20
}

/// Labels besides the people's (`[labels]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Labels {
    /// Teacher labels, below human labels: `"server"` takes the labels the server's
    /// `--fallback-url` service gave (its query log); a model (`ROOT/NAME@ALIAS` or a folder,
    /// relative to this file) labels the texts still waiting in the server's labeling queue.
    /// Needs `[server]`.
    #[serde(default)]
    pub teacher: Option<String>,
    /// A teacher model's answers less confident than this are not used (0.5).
    #[serde(default = "default_teacher_confidence")]
    pub min_confidence: f64,
    /// Pseudo-labels: the served model's own sure answers from the server's query log, below
    /// human and teacher labels (`[labels.pseudo]`; off unless given).
    #[serde(default)]
    pub pseudo: Option<Pseudo>,
}

/// `[labels.pseudo]`: which logged answers become training examples.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Pseudo {
    /// Least confidence of an answer used (0.9).
    pub min_confidence: f64,
    /// Most pseudo-labels per label (50); never more in all than the human-labeled examples.
    pub max_per_label: usize,
}

impl Default for Pseudo {
    fn default() -> Self {
        Pseudo { min_confidence: 0.9, max_per_label: 50 }
    }
}

fn default_teacher_confidence() -> f64 {
    0.5
}

/// Which of two examples with the same text (and different labels) the merged data keeps.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MergePolicy {
    /// The one seen first: the base data, then `new_data` in order, then the server's labels.
    #[default]
    KeepFirst,
    /// The one seen last: newer corrections replace older examples.
    KeepLast,
}

/// Outcome definitions (as `intent pipeline --outcomes`): their examples join the training data
/// of every kind; the MLP and the SVM also get synthetic sentences made from them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Augment {
    /// A file or a folder of outcome definitions (`*.json`).
    pub outcomes: PathBuf,
    /// Synthetic sentences per label (20, as `intent pipeline`).
    #[serde(default = "default_factor")]
    pub factor: usize,
    /// Seed of every random choice (42).
    #[serde(default = "default_seed")]
    pub seed: u64,
}

fn default_factor() -> usize {
    20
}

fn default_seed() -> u64 {
    42
}

fn default_token_env() -> String {
    "INTENT_ADMIN_TOKEN".into()
}

fn default_registry() -> PathBuf {
    "models".into()
}

fn default_state() -> PathBuf {
    "retrain".into()
}

/// `retrain.toml`. Relative paths are relative to the file's folder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetrainConfig {
    /// Registry model name.
    pub model: String,
    /// Registry root (`models`).
    #[serde(default = "default_registry")]
    pub registry: PathBuf,
    /// Model kind to train: `mlp`, `svm`, `bert` or `zero-shot`.
    pub kind: ModelKind,
    /// Move to another kind once the data allows it (`[bootstrap]`).
    #[serde(default)]
    pub bootstrap: Option<Bootstrap>,
    /// Which example of a text labeled twice is kept (`keep-first`).
    #[serde(default)]
    pub merge: MergePolicy,
    /// Teacher labels (`[labels]`).
    #[serde(default)]
    pub labels: Option<Labels>,
    /// Outcome definitions and augmentation (`[augment]`).
    #[serde(default)]
    pub augment: Option<Augment>,
    /// The base labeled data set.
    pub base_data: PathBuf,
    /// More labeled files (labeling-queue exports, new files); a folder means its `.jsonl` files.
    #[serde(default)]
    pub new_data: Vec<PathBuf>,
    /// Held-out validation set: never trained on (its texts are removed from training data).
    pub holdout: PathBuf,
    /// History (`retrain_history.jsonl`) and log (`retrain.log`) folder (`retrain`).
    #[serde(default = "default_state")]
    pub state_dir: PathBuf,
    /// Triggers.
    #[serde(default)]
    pub triggers: Triggers,
    /// Validation gate.
    #[serde(default)]
    pub gate: Gate,
    /// Server to reload after deploying.
    #[serde(default)]
    pub server: Option<ServerNotify>,
    /// Webhooks told of deployed, rejected and failed runs.
    #[serde(default)]
    pub notify: Option<notify::Notify>,
    /// The config file (set by [`RetrainConfig::read`]).
    #[serde(skip)]
    pub path: PathBuf,
    /// Training options of the kind, over its defaults: the fields of `MlpOptions`,
    /// `SvmOptions`, [`BertTrain`] or [`ZeroShotTrain`]; engine settings in `[train]` or under
    /// `engine`.
    #[serde(default)]
    pub train: toml::Table,
}

impl RetrainConfig {
    /// Reads and checks `path`; relative paths become relative to its folder.
    pub fn read(path: &Path) -> Result<Self, RetrainError> {
        let err = |message: String| RetrainError::Config { path: path.to_path_buf(), message };
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        let mut c: RetrainConfig =
            toml::from_str(&text).map_err(|e| err(e.to_string().trim().replace('\n', " ")))?;
        intent_registry::Registry::new(".").model(&c.model).map_err(|e| err(format!("model: {e}")))?;
        // NaN fails every check.
        let non_negative = |x: f64| x >= 0.0;
        if !non_negative(c.triggers.min_days)
            || !(0.0..=1.0).contains(&c.gate.min_overall)
            || !(0.0..=1.0).contains(&c.gate.min_class)
            || !non_negative(c.gate.max_regression)
        {
            return Err(err("triggers.min_days and gate.max_regression must be ≥ 0; gate.min_overall and \
                gate.min_class in [0, 1]"
                .into()));
        }
        if let Some(n) = &c.notify {
            n.check().map_err(err)?;
        }
        if let Some(l) = &c.labels {
            if c.server.is_none() {
                return Err(err("[labels] reads the server's query log: it needs [server]".into()));
            }
            if !(0.0..=1.0).contains(&l.min_confidence) {
                return Err(err(format!(
                    "labels.min_confidence {}: expected a number in [0, 1]",
                    l.min_confidence
                )));
            }
            if l.teacher.as_ref().is_some_and(|t| t.trim().is_empty()) {
                return Err(
                    err("labels.teacher: \"server\" or a model (ROOT/NAME@ALIAS or a folder)".into()),
                );
            }
            if let Some(p) = l.pseudo.as_ref().filter(|p| !(0.0..=1.0).contains(&p.min_confidence)) {
                return Err(err(format!(
                    "labels.pseudo.min_confidence {}: expected a number in [0, 1]",
                    p.min_confidence
                )));
            }
        }
        if let Some(d) = &c.triggers.drift {
            d.check().map_err(err)?;
            if c.server.is_none() {
                return Err(err("[triggers.drift] reads the server's query log: it needs [server]".into()));
            }
        }
        c.path = path.to_path_buf();
        TrainPlan::parse(c.kind, &c.train, path)?;
        if let Some(b) = &c.bootstrap {
            if b.kind == c.kind {
                return Err(err(format!("bootstrap.kind '{}' is the kind already trained", b.kind)));
            }
            if b.min_per_label == 0 {
                return Err(err("bootstrap.min_per_label must be at least 1".into()));
            }
            TrainPlan::parse(b.kind, &b.train, path).map_err(|e| match e {
                RetrainError::Config { message, .. } => {
                    err(message.replacen("[train]", "[bootstrap.train]", 1))
                }
                e => e,
            })?;
        }
        let base = path.parent().unwrap_or(Path::new("."));
        let token_file = c.server.as_mut().and_then(|s| s.token_file.as_mut());
        let outcomes = c.augment.as_mut().map(|a| &mut a.outcomes);
        for p in [&mut c.registry, &mut c.base_data, &mut c.holdout, &mut c.state_dir]
            .into_iter()
            .chain(c.new_data.iter_mut())
            .chain(token_file)
            .chain(outcomes)
        {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
        Ok(c)
    }
}
