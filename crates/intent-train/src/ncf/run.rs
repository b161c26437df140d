//! `intent train ncf`: interactions in, an NCF model folder out (see
//! [`intent_models::ncf::folder`]), with the leave-one-out split and its sampled negatives saved
//! so that `intent eval` reproduces the reported figures.

use std::path::{Path, PathBuf};

use intent_data::formats::interactions::Interactions;
use intent_data::recsys::{
    interactions_hash, leave_one_out, rec_stats, test_negatives, Indexed, LeaveOneOut, RecStats,
};
use intent_eval::ranking::RankingReport;
use intent_models::folder::{now_unix, write_json, write_model_dir, Versions};
use intent_models::ncf::folder::{NcfConfig, NcfModel, SavedSplit};
use intent_models::ncf::{Ncf, NcfArchitecture, NcfKind};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::device::DeviceSpec;
use intent_models::checked::Check;

use crate::ncf::engine::fit_ncf_device;
use crate::ncf::{fit_ncf, NcfEpoch, NcfTrainConfig, SampledEval};
use crate::TrainError;

/// Everything `intent train ncf` takes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct NcfOptions {
    /// GMF, MLP or NeuMF.
    pub kind: NcfKind,
    /// GMF factors.
    pub factors: usize,
    /// MLP tower sizes (the first is the two embeddings concatenated).
    pub layers: Vec<usize>,
    /// Training settings.
    pub train: NcfTrainConfig,
    /// Hold each user's latest interaction out for testing (the paper's protocol).
    pub holdout: bool,
    /// Sampled negatives per test item.
    pub test_negatives: usize,
    /// The cut-off K of HR@K and NDCG@K.
    pub k: usize,
    /// Warn about users with fewer interactions than this.
    pub min_per_user: usize,
    /// Test negatives from a file (He et al.'s `*.test.negative` format) instead of sampling.
    #[serde(skip)]
    pub test_negatives_file: Option<PathBuf>,
    /// NeuMF pre-training: trained GMF and MLP folders (same data).
    #[serde(skip)]
    pub pretrained: Option<(PathBuf, PathBuf)>,
    /// Weight of the GMF part when combining pre-trained models.
    pub alpha: f32,
    /// Train on the shared engine on this burn device (`None`: the host loop, the fastest on a
    /// CPU).
    #[serde(skip)]
    pub device: Option<DeviceSpec>,
}

/// The `training` record of an NCF folder's `config.json`: the options it was trained with and
/// facts of the run. Fields absent from older folders take their defaults.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct NcfTrainingRecord {
    /// The options (those that are recorded: not the paths of the run).
    pub options: NcfOptions,
    /// Where it trained: `host`, or `burn on DEVICE`.
    pub engine: String,
    /// The pre-trained GMF and MLP folders of a NeuMF.
    pub pretrained: Option<[PathBuf; 2]>,
    /// Median seconds per epoch.
    pub median_epoch_s: f64,
}

impl NcfTrainingRecord {
    /// Reads the record of a loaded NCF folder; the error says which field is wrong.
    pub fn of(config: &NcfConfig) -> Result<Self, serde_json::Error> {
        serde_json::from_value(config.training.clone())
    }
}

impl Default for NcfOptions {
    fn default() -> Self {
        NcfOptions {
            kind: NcfKind::Neumf,
            factors: 8,
            layers: vec![64, 32, 16, 8],
            train: NcfTrainConfig::default(),
            holdout: true,
            test_negatives: 99,
            test_negatives_file: None,
            k: 10,
            min_per_user: 5,
            pretrained: None,
            alpha: 0.5,
            device: None,
        }
    }
}

/// What a run reports.
#[derive(Debug, Clone)]
pub struct NcfRunSummary {
    /// Data statistics.
    pub stats: RecStats,
    /// Per-epoch logs.
    pub history: Vec<NcfEpoch>,
    /// The final model's HR/NDCG on the held-out items (with `holdout`).
    pub report: Option<RankingReport>,
    /// Time to the first step and steady-state speed.
    pub timing: crate::timing::Timing,
}

/// The split: leave-one-out, or everything for training.
fn split_of(ix: &Indexed, holdout: bool) -> LeaveOneOut {
    let mut s = leave_one_out(ix);
    if !holdout {
        // Put each test item back (the pairs stay grouped by user).
        for (u, t) in s.test.iter_mut().enumerate() {
            if let Some(i) = t.take() {
                s.train.push((u as u32, i));
            }
        }
        s.train.sort_by_key(|&(u, _)| u);
    }
    s
}

fn load_pretrained(dir: &Path, ix: &Indexed) -> Result<NcfModel, TrainError> {
    let m = NcfModel::load(dir)?;
    if m.ids.users != ix.ids.users || m.ids.items != ix.ids.items {
        return Err(TrainError::Data(format!(
            "{}: trained on other users or items than this data",
            dir.display()
        )));
    }
    Ok(m)
}

/// Trains an NCF model on `data` and writes its folder to `out` (atomically). `source` names the
/// data in the config.
pub fn train_ncf_to_dir(
    data: &Interactions,
    source: &str,
    opts: &NcfOptions,
    out: &Path,
) -> Result<NcfRunSummary, TrainError> {
    let _clock = crate::timing::JobClock::start();
    let train_config = opts.train.clone().check()?;
    if opts.k == 0 {
        return Err(TrainError::Hyperparameter { name: "k", message: "must be at least 1".into() });
    }
    if opts.holdout && opts.test_negatives == 0 && opts.test_negatives_file.is_none() {
        return Err(TrainError::Hyperparameter {
            name: "test_negatives",
            message: "must be at least 1 (or `holdout` off)".into(),
        });
    }
    if opts.pretrained.is_some() && opts.kind != NcfKind::Neumf {
        return Err(TrainError::Hyperparameter {
            name: "pretrained",
            message: "pre-training initialises NeuMF (`kind` neumf)".into(),
        });
    }
    let ix = Indexed::new(data);
    let stats = rec_stats(&ix, opts.min_per_user);
    for w in &stats.warnings {
        tracing::warn!("{source}: {w}");
    }
    tracing::info!(
        "{source}: {} users, {} items, {} pairs, density {:.4}",
        stats.users,
        stats.items,
        stats.pairs,
        stats.density
    );
    let arch = NcfArchitecture {
        kind: opts.kind,
        num_users: ix.num_users(),
        num_items: ix.num_items(),
        factors: opts.factors,
        layers: opts.layers.clone(),
    };
    arch.validate()?;
    let split = split_of(&ix, opts.holdout);
    let negatives = match (&opts.test_negatives_file, opts.holdout) {
        (_, false) => vec![Vec::new(); split.test.len()],
        (Some(f), true) => intent_data::recsys::load_test_negatives(f, &ix.ids, &split)
            .map_err(|e| TrainError::Data(e.to_string()))?,
        (None, true) => test_negatives(&split, ix.num_items(), opts.test_negatives, opts.train.seed)
            .map_err(|e| TrainError::Hyperparameter {
                name: "test_negatives",
                message: format!("{}: {e}", opts.test_negatives),
            })?,
    };
    let eval = opts.holdout.then(|| SampledEval::new(&split, &negatives, opts.k));
    let model = match &opts.pretrained {
        Some((gmf, mlp)) => {
            let (g, m) = (load_pretrained(gmf, &ix)?, load_pretrained(mlp, &ix)?);
            tracing::info!(
                "NeuMF from pre-trained {} and {} (alpha {})",
                gmf.display(),
                mlp.display(),
                opts.alpha
            );
            Ncf::neumf_from(&g.model, &m.model, opts.alpha)?
        }
        None => Ncf::init(arch, opts.train.seed)?,
    };
    let fit = match opts.device {
        None => fit_ncf(model, &split, ix.num_items(), eval.as_ref(), &train_config)?,
        Some(spec) => {
            tracing::info!("training on the shared engine, device {spec}");
            fit_ncf_device(model, &split, ix.num_items(), eval.as_ref(), &train_config, spec)?
        }
    };
    let report = eval.as_ref().map(|e| e.run(&fit.model));
    let times: Vec<f64> = fit.history.iter().map(|h| h.seconds).collect();
    let config = NcfConfig {
        kind: intent_models::ModelKind::Ncf,
        format_version: 1,
        architecture: fit.model.arch.clone(),
        training: serde_json::to_value(NcfTrainingRecord {
            options: opts.clone(),
            engine: opts.device.map_or("host".to_string(), |d| format!("burn on {d}")),
            pretrained: opts.pretrained.clone().map(|(g, m)| [g, m]),
            median_epoch_s: crate::timing::median(&times).unwrap_or(0.0),
        })
        .expect("serializes"),
        data: json!({
            "source": source, "users": stats.users, "items": stats.items, "pairs": stats.pairs,
            "train_pairs": split.train.len(), "test_users": split.test.iter().flatten().count(),
            "density": stats.density,
        }),
        data_hash: interactions_hash(data),
        versions: Versions::default(),
        created_unix: now_unix(),
    };
    let saved = SavedSplit { train: split.train, test: split.test, negatives };
    let folder = NcfModel::new(config, fit.model, ix.ids, saved);
    let metrics = json!({
        "protocol":
            if opts.holdout { "leave-one-out, sampled negatives" } else { "none (no held-out items)" },
        "k": opts.k, "test_negatives": opts.test_negatives,
        format!("hr@{}", opts.k): report.as_ref().map(|r| r.hr),
        format!("ndcg@{}", opts.k): report.as_ref().map(|r| r.ndcg),
        "users": report.as_ref().map(|r| r.users), "history": fit.history, "stats": stats,
        "timing": fit.timing,
    });
    write_model_dir(out, |dir| {
        folder.write(dir)?;
        write_json(dir, "metrics.json", &metrics)
    })?;
    Ok(NcfRunSummary { stats, history: fit.history, report, timing: fit.timing })
}
