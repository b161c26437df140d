//! [`RetrainOutcome`]: what one retrain run did, as returned by [`super::retrain`] and written as
//! one line of `retrain_history.jsonl`.

use intent_models::ModelKind;
use serde::{Deserialize, Serialize};

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RunStatus {
    /// A candidate was registered and is `current`.
    Deployed,
    /// The candidate failed the quality gate or regressed against `current`.
    Rejected,
    /// No trigger fired.
    Skipped,
    /// `--dry-run`: what would happen; nothing changed.
    DryRun,
    /// Training, the data or the server reload failed; `current` unchanged.
    Failed,
    /// A run that was killed or crashed, recorded by the next run.
    Interrupted,
}

impl RunStatus {
    /// The status as written in the history (`deployed`, `dry-run`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Deployed => "deployed",
            RunStatus::Rejected => "rejected",
            RunStatus::Skipped => "skipped",
            RunStatus::DryRun => "dry-run",
            RunStatus::Failed => "failed",
            RunStatus::Interrupted => "interrupted",
        }
    }
}

impl std::fmt::Display for RunStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The merged training data of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetQuality {
    /// Training examples after merging and de-duplication.
    pub total_entries: usize,
    /// Texts the current version did not train on.
    pub new_samples: usize,
    /// Duplicates dropped.
    pub duplicates: usize,
    /// Texts with conflicting labels (the first kept).
    pub conflicts: usize,
    /// Held-out texts removed from the training data.
    pub holdout_removed: usize,
    /// Candidate minus current on the held-out set, once validated.
    pub accuracy_improvement: Option<f64>,
    /// SHA-256 of the base data (a folder: of its files' names and bytes), for the data-change
    /// trigger.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_data_sha256: Option<String>,
    /// SHA-256 of the outcome definitions of `[augment]`, for the same trigger.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcomes_sha256: Option<String>,
    /// Teacher labels used (texts no person labeled; `[labels] teacher`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub teacher_labels: Option<usize>,
    /// Pseudo-labels used (the served model's own sure answers; `[labels.pseudo]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pseudo_labels: Option<usize>,
    /// Synthetic sentences added from the outcome definitions (not stored with the version).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub synthetic: Option<usize>,
}

/// Registry versions around a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct VersionsSeen {
    /// `current` when the run started.
    pub before: Option<u32>,
    /// The version the candidate was registered as.
    pub candidate: Option<u32>,
    /// `current` when the run ended.
    pub current: Option<u32>,
}

/// Held-out scores (accuracy, micro-F1 for multi-label data).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct HoldoutScores {
    /// The candidate's.
    pub candidate: f64,
    /// The current version's on the same set.
    pub current: Option<f64>,
}

/// The labeling queue pulled from the server (`[server] pull_labels`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum LabelsPulled {
    /// Items fetched.
    Count(usize),
    /// Why the pull failed (the last copy was used).
    Failed {
        /// The error.
        error: String,
    },
}

/// Seconds per stage.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Durations {
    /// Reading, merging and assessing the data.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<f64>,
    /// Training the candidate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub train: Option<f64>,
    /// Scoring candidate and current on the held-out set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub validate: Option<f64>,
    /// Registering, promoting and notifying.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deploy: Option<f64>,
    /// The whole run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total: Option<f64>,
}

/// One retrain run: its history line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RetrainOutcome {
    /// `UNIXTIME-PID` of the run.
    pub retrain_id: String,
    /// When the line was written.
    pub timestamp_unix: u64,
    /// Registry model name.
    pub model: String,
    /// Model kind trained (absent on `interrupted` lines).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<ModelKind>,
    /// Kind of the version that was current when the run started (`zero-shot` before a
    /// bootstrap to `bert`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind_before: Option<ModelKind>,
    /// How it ended.
    pub status: RunStatus,
    /// Why, in words.
    pub reason: String,
    /// The triggers that fired.
    #[serde(default)]
    pub triggers: Vec<String>,
    /// The merged training data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset_quality: Option<DatasetQuality>,
    /// Registry versions before and after.
    #[serde(default)]
    pub versions: VersionsSeen,
    /// Held-out scores, once validated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scores: Option<HoldoutScores>,
    /// The current version's answers at deployment and now, from the server's query log
    /// (`[triggers.drift]`): the fallback rate and mean confidence over time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub served_quality: Option<serde_json::Value>,
    /// Labels pulled from the server, when configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels_pulled: Option<LabelsPulled>,
    /// Seconds per stage.
    #[serde(default)]
    pub durations_s: Durations,
}

impl std::fmt::Display for RetrainOutcome {
    /// The history line (one line of JSON).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&serde_json::to_string(self).map_err(|_| std::fmt::Error)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lines written before the typed outcome (an interrupted line with only `current`, a
    /// deployed line with everything) still read.
    #[test]
    fn history_lines_round_trip_and_old_lines_read() {
        let interrupted = r#"{"retrain_id":"17-3","timestamp_unix":20,"model":"faq",
            "status":"interrupted","reason":"stopped","versions":{"current":1}}"#;
        let o: RetrainOutcome = serde_json::from_str(interrupted).unwrap();
        assert_eq!(
            (o.status, o.versions.current, o.versions.before, o.kind),
            (RunStatus::Interrupted, Some(1), None, None)
        );
        let deployed = r#"{"retrain_id":"1-2","timestamp_unix":3,"model":"faq","kind":"mlp",
            "status":"deployed","reason":"version 2 is current","triggers":["forced"],
            "dataset_quality":{"total_entries":96,"new_samples":60,"duplicates":0,"conflicts":0,
                "holdout_removed":0,"accuracy_improvement":0.01},
            "versions":{"before":1,"candidate":2,"current":2},"scores":{"candidate":0.9,"current":0.89},
            "labels_pulled":{"error":"refused"},"durations_s":{"data":0.1,"total":1.5}}"#;
        let o: RetrainOutcome = serde_json::from_str(deployed).unwrap();
        assert_eq!(o.labels_pulled, Some(LabelsPulled::Failed { error: "refused".into() }));
        assert_eq!(o.durations_s.total, Some(1.5));
        let back: serde_json::Value = serde_json::from_str(&o.to_string()).unwrap();
        assert_eq!(back, serde_json::from_str::<serde_json::Value>(deployed).unwrap());
        assert_eq!(serde_json::to_value(RunStatus::DryRun).unwrap(), "dry-run");
    }
}
