//! `intent train ncf`, `intent eval` of an NCF folder, `intent recommend`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::Args;
use intent_data::formats::interactions::{load_interactions, Interactions};
use intent_data::recsys::load_movielens;
use intent_eval::ranking::RankingReport;
use intent_models::ncf::folder::{NcfModel, UnknownUser};
use intent_models::ncf::NcfKind;
use intent_train::ncf::{NcfTrainConfig, SampledEval};
use intent_train::NcfOptions;

/// Train an NCF recommender (GMF, MLP or NeuMF) on implicit feedback.
#[derive(Args, Debug)]
pub struct NcfArgs {
    /// Interactions: the interactions JSON format, or MovieLens `u.data` (user, item, rating,
    /// timestamp per line; tab-separated). Default: seeded synthetic data (300 users, 200
    /// items in 10 taste groups, 20 interactions each).
    #[arg(long)]
    pub train: Option<PathBuf>,
    /// Output model folder.
    #[arg(long)]
    pub out: PathBuf,
    /// gmf, mlp or neumf.
    #[arg(long, value_enum, default_value_t = NcfKind::Neumf)]
    pub model: NcfKind,
    /// Passes over the training pairs.
    #[arg(long, default_value_t = 20)]
    pub epochs: usize,
    /// Samples per step [default: 256 on the CPU, 2048 on a GPU].
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Adam learning rate [default: 1e-3; with the GPU's default batch 2.83e-3, scaled by
    /// √(2048/256)].
    #[arg(long, visible_alias = "lr")]
    pub learning_rate: Option<f64>,
    /// GMF factors (predictive factors).
    #[arg(long, visible_alias = "factors", default_value_t = 8)]
    pub embedding_dim: usize,
    /// MLP tower sizes; the first is the user and item embeddings concatenated.
    #[arg(long, value_delimiter = ',', default_value = "64,32,16,8")]
    pub hidden_layers: Vec<usize>,
    /// Sampled negatives per positive, re-sampled every epoch.
    #[arg(long, default_value_t = 4)]
    pub num_neg: usize,
    /// Sampled negatives per held-out test item.
    #[arg(long, default_value_t = 99)]
    pub test_negatives: usize,
    /// Read the held-out items' negatives from this file (He et al.'s `*.test.negative`
    /// format: `(USER,ITEM)` then negative item ids, tab-separated) instead of sampling them.
    #[arg(long)]
    pub test_negatives_file: Option<PathBuf>,
    /// Cut-off K of HR@K and NDCG@K.
    #[arg(long, short = 'k', default_value_t = 10)]
    pub k: usize,
    /// Train on every interaction (no held-out item per user, no evaluation).
    #[arg(long)]
    pub no_holdout: bool,
    /// NeuMF pre-training: a trained GMF folder (with --pretrain-mlp).
    #[arg(long, requires = "pretrain_mlp")]
    pub pretrain_gmf: Option<PathBuf>,
    /// NeuMF pre-training: a trained MLP folder (with --pretrain-gmf).
    #[arg(long, requires = "pretrain_gmf")]
    pub pretrain_mlp: Option<PathBuf>,
    /// Weight of GMF's output layer when combining pre-trained models.
    #[arg(long, default_value_t = 0.5)]
    pub alpha: f32,
    /// Warn about users with fewer interactions than this.
    #[arg(long, default_value_t = 5)]
    pub min_per_user: usize,
    /// Seed of initialisation, sampling and shuffling.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// AdamW decoupled weight decay (0: plain Adam, as in the paper).
    #[arg(long, default_value_t = 0.0)]
    pub weight_decay: f64,
    /// Learning rate over the run: constant (the paper), linear or cosine (decay to 0).
    #[arg(long, value_enum, default_value_t = intent_train::schedule::LrSchedule::Constant)]
    pub lr_schedule: intent_train::schedule::LrSchedule,
    /// Compute device: cpu, ndarray (feature `ndarray`), cuda or cuda:N (feature `cuda`), vulkan or
    /// vulkan:N (feature `vulkan`).
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Training loop: `host` (hand-written forward/backward, the fastest on a CPU; cpu only) or
    /// `burn` (the shared engine on the burn backend of --device). Default: host on cpu, burn
    /// elsewhere.
    #[arg(long, value_parser = ["host", "burn"])]
    pub engine: Option<String>,
}

/// Loads interactions JSON or MovieLens ratings (by content: JSON starts with `{`).
pub fn load_any(path: &Path) -> Result<Interactions> {
    let head = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let first = head.iter().find(|b| !b.is_ascii_whitespace()).copied();
    Ok(if first == Some(b'{') { load_interactions(path)? } else { load_movielens(path)? })
}

/// `intent train ncf`.
pub fn train(a: NcfArgs) -> Result<ExitCode> {
    if !(0.0..=1.0).contains(&a.alpha) {
        bail!("--alpha {} is not in [0, 1]", a.alpha);
    }
    let (data, source) = match &a.train {
        Some(p) => (load_any(p)?, p.display().to_string()),
        None => (
            intent_data::recsys::synthetic_interactions(300, 200, 20, 10, a.seed),
            format!("synthetic (seed {})", a.seed),
        ),
    };
    let spec = a.device.parse::<intent_train::device::DeviceSpec>()?.resolve();
    let device = match (a.engine.as_deref(), spec) {
        (Some("host") | None, intent_train::device::DeviceSpec::Cpu) => None,
        (Some("host"), other) => {
            bail!("--engine host runs on the CPU only (got --device {other}); use --engine burn")
        }
        (_, other) => Some(other),
    };
    let (batch_size, lr) = intent_train::ncf::BATCH_DEFAULTS.resolve(spec, a.batch_size, a.learning_rate);
    let opts = NcfOptions {
        device,
        kind: a.model,
        factors: a.embedding_dim,
        layers: a.hidden_layers,
        train: NcfTrainConfig {
            epochs: a.epochs,
            batch_size,
            lr,
            num_neg: a.num_neg,
            seed: a.seed,
            weight_decay: a.weight_decay,
            schedule: a.lr_schedule,
            progress: true,
        },
        holdout: !a.no_holdout,
        test_negatives: a.test_negatives,
        test_negatives_file: a.test_negatives_file,
        k: a.k,
        min_per_user: a.min_per_user,
        pretrained: a.pretrain_gmf.zip(a.pretrain_mlp),
        alpha: a.alpha,
    };
    let s = intent_train::train_ncf_to_dir(&data, &source, &opts, &a.out)
        .with_context(|| format!("training into {}", a.out.display()))?;
    let times: Vec<f64> = s.history.iter().map(|h| h.seconds).collect();
    println!(
        "saved {} ({} users, {} items, median {:.3} s/epoch)",
        a.out.display(),
        s.stats.users,
        s.stats.items,
        intent_train::timing::median(&times).unwrap_or(0.0)
    );
    if let Some(r) = s.report {
        println!(
            "held-out (latest item per user vs {} sampled negatives): HR@{k} {:.4}  NDCG@{k} {:.4}  \
            ({} users)",
            opts.test_negatives,
            r.hr,
            r.ndcg,
            r.users,
            k = r.k
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `path`, or the registry version a `ROOT/NAME@ALIAS` path names.
pub fn resolve_alias(path: &Path) -> Result<PathBuf> {
    match intent_serve::ModelSpec::parse(&path.to_string_lossy()) {
        spec @ intent_serve::ModelSpec::Alias { .. } if !path.is_dir() => Ok(spec.resolve()?.path),
        _ => Ok(path.to_path_buf()),
    }
}

/// The NCF folder `path` names (directly or through a registry alias), if it is one.
pub fn ncf_folder_of(path: &Path) -> Option<PathBuf> {
    resolve_alias(path).ok().filter(|d| intent_models::ncf::folder::is_ncf_folder(d))
}

/// `intent eval --model NCF_DIR [--report DIR] [--full-ranking]`: the saved held-out split;
/// sampled negatives, or every item the user has not trained on.
pub fn eval(model_dir: &Path, report: Option<&Path>, k: Option<usize>, full: bool) -> Result<ExitCode> {
    let m = NcfModel::load(model_dir)?;
    let k = match k {
        Some(k) => k,
        None => {
            let record = intent_train::NcfTrainingRecord::of(&m.config).with_context(|| {
                format!(
                    "{}: `training` is not an NCF training record",
                    model_dir.join("config.json").display()
                )
            })?;
            record.options.k
        }
    };
    let split = intent_data::recsys::LeaveOneOut { train: m.split.train.clone(), test: m.split.test.clone() };
    if split.test.iter().all(Option::is_none) {
        bail!(
            "{}: trained with --no-holdout: there is no held-out split to evaluate on",
            model_dir.display()
        );
    }
    let negs = m.split.negatives.iter().map(Vec::len).max().unwrap_or(0);
    // The report shows every cut-off of 1, 5, 10, 20 and K.
    let mut cutoffs = vec![1, 5, 10, 20, k];
    cutoffs.sort_unstable();
    cutoffs.dedup();
    let (by_k, protocol): (Vec<RankingReport>, String) = if full {
        let max_k = *cutoffs.last().unwrap_or(&k);
        let (mut top, mut relevant) = (Vec::new(), Vec::new());
        for (u, t) in split.test.iter().enumerate() {
            if let Some(t) = t {
                top.push(m.top_unseen(u as u32, max_k).into_iter().map(|(i, _)| i).collect::<Vec<u32>>());
                relevant.push(vec![*t]);
            }
        }
        (
            cutoffs.iter().map(|&c| intent_eval::ranking::full_ranking(&top, &relevant, c)).collect(),
            "leave-one-out, full ranking of the items each user has not trained on".to_string(),
        )
    } else {
        (
            cutoffs.iter().map(|&c| SampledEval::new(&split, &m.split.negatives, c).run(&m.model)).collect(),
            format!("leave-one-out, latest item vs {negs} sampled negatives"),
        )
    };
    let r = by_k.iter().find(|r| r.k == k).cloned().expect("K is among the cut-offs");
    println!(
        "{}: HR@{k} {:.4}  NDCG@{k} {:.4}  recall@{k} {:.4}  ({} users; {protocol})",
        model_dir.display(),
        r.hr,
        r.ndcg,
        r.recall,
        r.users
    );
    if let Some(dir) = report {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let body = serde_json::json!({
            "model": model_dir, "protocol": protocol, "k": k,
            "test_negatives": if full { None } else { Some(negs) },
            format!("hr@{k}"): r.hr, format!("ndcg@{k}"): r.ndcg, format!("recall@{k}"): r.recall,
            "users": r.users,
        });
        intent_data::io::atomic_write(
            &dir.join("report.json"),
            serde_json::to_string_pretty(&body)?.as_bytes(),
        )?;
        let plot =
            intent_eval::plots::ranking_svg(&by_k).map_err(|m| anyhow::anyhow!("ranking plot: {m}"))?;
        let html = intent_eval::html::ranking_html(
            &model_dir.display().to_string(),
            &protocol,
            &by_k,
            Some(plot.as_bytes()),
        );
        intent_data::io::atomic_write(&dir.join("report.html"), html.as_bytes())?;
        println!("report written to {} (and report.html)", dir.join("report.json").display());
    }
    Ok(ExitCode::SUCCESS)
}

/// Recommend items for a user of an NCF model.
#[derive(Args, Debug)]
pub struct RecommendArgs {
    /// NCF model folder.
    #[arg(long)]
    pub model: PathBuf,
    /// User id (as in the training data).
    #[arg(long)]
    pub user: String,
    /// How many items.
    #[arg(short = 'k', long, default_value_t = 10)]
    pub k: usize,
    /// An unknown user gets the most popular items instead of an error.
    #[arg(long)]
    pub popular_fallback: bool,
}

/// `intent recommend`: one JSON line per item (`item`, `score`).
pub fn recommend(a: RecommendArgs) -> Result<ExitCode> {
    let m = NcfModel::load(&resolve_alias(&a.model)?)?;
    let unknown = if a.popular_fallback { UnknownUser::Popular } else { UnknownUser::Error };
    for r in m.recommend(&a.user, a.k, unknown)? {
        println!("{}", serde_json::to_string(&r)?);
    }
    Ok(ExitCode::SUCCESS)
}
