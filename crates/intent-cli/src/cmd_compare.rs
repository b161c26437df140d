//! `intent compare`: trains the chosen model kinds on one split, evaluates them on one test set
//! and prints a leaderboard (score, macro-F1, ECE, training seconds, p50 single-query latency,
//! folder size); writes it as JSON, Markdown and HTML, and with `--register NAME` keeps the best
//! model that passes the quality gate in the registry.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Args;
use intent_data::split::{stratified_split, SplitConfig};
use intent_data::Dataset;
use intent_eval::html::LeaderboardRow;
use intent_eval::{ClassMetric, QualityGate};
use intent_registry::Registry;

use crate::common::InputFlags;

#[derive(Args, Debug)]
pub struct CompareArgs {
    /// Training data; default: the example intents embedded in the binary.
    #[arg(long)]
    pub train: Option<PathBuf>,
    /// Test data; default: a stratified 20 % of --train (seeded).
    #[arg(long)]
    pub test: Option<PathBuf>,
    /// Validation data (early stopping, thresholds) for the kinds that use it.
    #[arg(long)]
    pub val: Option<PathBuf>,
    #[command(flatten)]
    pub input: InputFlags,
    /// Kinds to compare, in this order: mlp, svm, zero-shot, bert (default: all; those that do
    /// not fit --time-budget or lack --base are skipped, with the reason).
    #[arg(long, value_delimiter = ',', default_value = "svm,mlp,zero-shot,bert")]
    pub models: Vec<String>,
    /// Sentence encoder of bert and zero-shot (a folder or hub repo id; default
    /// models/all-MiniLM-L6-v2 when it is there).
    #[arg(long, value_name = "DIR|REPO_ID")]
    pub base: Option<String>,
    /// Time for all the training together (e.g. 30m, 90s): a kind whose estimated training time
    /// exceeds what is left is skipped.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "30m")]
    pub time_budget: Duration,
    /// Folder of the trained models and the leaderboard (leaderboard.json, .md, .html).
    #[arg(long, default_value = "compare")]
    pub out: PathBuf,
    /// Register the best model that passes the gate as a new version of NAME (made current).
    #[arg(long, value_name = "NAME")]
    pub register: Option<String>,
    /// Registry root for --register.
    #[arg(long, default_value = "models")]
    pub models_dir: PathBuf,
    /// Gate: minimum overall score (accuracy, or micro-F1 for multi-label data).
    #[arg(long, default_value_t = 0.90)]
    pub min_overall: f64,
    /// Gate: minimum per-class F1.
    #[arg(long, default_value_t = 0.85)]
    pub min_class: f64,
    /// Seed of the split and of every trainer.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Out-of-scope label.
    #[arg(long, default_value = "oos")]
    pub oos_label: String,
}

/// One row of the leaderboard, and the folder of its model.
#[derive(Debug, Clone)]
pub struct Row {
    /// The scores.
    pub board: LeaderboardRow,
    /// The model folder.
    pub folder: PathBuf,
}

/// Fine-tuning speed assumed for the time estimate: all-MiniLM-L6-v2 on this project's 2-core
/// CPU trains 70–95 texts/s (README, fine-tuning); a GPU is faster, so the estimate errs long.
const BERT_TEXTS_PER_SECOND: f64 = 75.0;

impl Row {
    fn to_json(&self) -> serde_json::Value {
        let b = &self.board;
        serde_json::json!({
            "kind": b.kind, "score": b.score, "macro_f1": b.macro_f1, "ece": b.ece,
            "train_seconds": b.train_seconds, "p50_latency_ms": b.p50_latency_ms,
            "folder_bytes": b.folder_bytes, "gate_passed": b.gate_passed, "folder": self.folder,
        })
    }
}

fn folder_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| {
                    let p = e.path();
                    if p.is_dir() {
                        folder_bytes(&p)
                    } else {
                        e.metadata().map(|m| m.len()).unwrap_or(0)
                    }
                })
                .sum()
        })
        .unwrap_or(0)
}

/// Training, validation and test data, and where they came from.
fn load_data(a: &CompareArgs, scratch: &Path) -> Result<(Dataset, Option<Dataset>, Dataset, String)> {
    let (train_path, source) = match &a.train {
        Some(p) => (p.clone(), p.display().to_string()),
        None => {
            crate::embedded::write_to(scratch).context("writing the embedded example data")?;
            (scratch.join("intents"), "the embedded example data".to_string())
        }
    };
    let train = a.input.load(&train_path)?.data;
    let val = a.val.as_deref().map(|p| a.input.load(p)).transpose()?.map(|l| l.data);
    Ok(match &a.test {
        Some(p) => {
            let test = a.input.load(p)?;
            crate::common::check_known_labels(&test, &train.labels(), train.multi_label, &a.oos_label)?;
            (train, val, test.data, source)
        }
        None => {
            let split = stratified_split(
                &train,
                SplitConfig { train_fraction: 0.8, test_fraction: 0.0, min_val_per_label: 1, seed: a.seed },
            )?;
            (split.train, val, split.val, format!("{source} (80/20 stratified split, seed {})", a.seed))
        }
    })
}

/// Trains `kind` into `dir`; `Ok(None)` with a reason when it is skipped.
fn train_kind(
    a: &CompareArgs,
    kind: &str,
    train: &Dataset,
    val: Option<&Dataset>,
    base: Option<&Path>,
    left: Duration,
    dir: &Path,
) -> Result<Option<String>> {
    let seed = a.seed;
    match kind {
        "mlp" => {
            let mut o = intent_train::MlpOptions::default();
            o.engine.seed = seed;
            o.oos_label = a.oos_label.clone();
            intent_train::train_mlp_to_dir(intent_train::DeviceSpec::Cpu, train, val, &o, dir)?;
        }
        "svm" => {
            let mut o = intent_train::SvmOptions::default();
            o.params.seed = seed;
            intent_train::train_svm_to_dir(train, val, &o, dir)?;
        }
        "zero-shot" | "bert" => {
            let Some(base) = base else {
                return Ok(Some("no --base (and no models/all-MiniLM-L6-v2)".into()));
            };
            if kind == "zero-shot" {
                if train.multi_label {
                    return Ok(Some("zero-shot classifies single-label data only".into()));
                }
                let (encoder, _) =
                    intent_models::bert::SentenceEncoder::<intent_models::CpuBackend>::from_pretrained(
                        &base.to_string_lossy(),
                        None,
                        None,
                        &Default::default(),
                    )?;
                let labels = intent_models::zero_shot::describe(
                    &train.labels(),
                    intent_models::zero_shot::DEFAULT_TEMPLATE,
                );
                let zs = intent_models::zero_shot::ZeroShot::new(
                    encoder,
                    labels,
                    Some(intent_models::zero_shot::DEFAULT_TEMPLATE.to_string()),
                )?;
                zs.save(dir, base, &serde_json::json!({}))?;
            } else {
                let mut o = intent_train::BertOptions::default();
                o.engine.seed = seed;
                o.oos_label = a.oos_label.clone();
                let steps_per_epoch = train.len().div_ceil(o.engine.batch_size);
                let floor = intent_train::bert::default_min_steps(train.multi_label);
                let steps = (steps_per_epoch * o.engine.epochs).max(floor);
                let estimate = (steps * o.engine.batch_size) as f64 / BERT_TEXTS_PER_SECOND;
                if estimate > left.as_secs_f64() {
                    return Ok(Some(format!(
                        "estimated {estimate:.0} s of fine-tuning ({steps} steps at ~{BERT_TEXTS_PER_SECOND} \
                        texts/s) exceeds the {:.0} s left of --time-budget",
                        left.as_secs_f64()
                    )));
                }
                intent_train::train_bert_to_dir(intent_train::DeviceSpec::Auto, base, train, val, &o, dir)?;
            }
        }
        other => anyhow::bail!("--models: unknown kind '{other}'; expected mlp, svm, zero-shot or bert"),
    }
    Ok(None)
}

pub fn run(a: CompareArgs) -> Result<ExitCode> {
    for k in &a.models {
        if !["mlp", "svm", "zero-shot", "bert"].contains(&k.as_str()) {
            anyhow::bail!("--models: unknown kind '{k}'; expected mlp, svm, zero-shot or bert");
        }
    }
    let scratch = tempfile::tempdir().context("creating a temporary folder")?;
    let (train, val, test, source) = load_data(&a, scratch.path())?;
    println!("train: {} examples, test: {} ({source})", train.len(), test.len());
    let base = match &a.base {
        Some(b) => Some(
            intent_models::hub::resolve(b, &intent_models::hub::HubOptions::from_env(None))
                .with_context(|| format!("--base {b}"))?,
        ),
        None => Some(PathBuf::from("models/all-MiniLM-L6-v2")).filter(|p| p.join("config.json").is_file()),
    };
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    let gate =
        QualityGate { min_overall: a.min_overall, min_per_class: a.min_class, class_metric: ClassMetric::F1 };
    let started = Instant::now();
    let mut rows: Vec<Row> = Vec::new();
    let mut skipped: Vec<(String, String)> = Vec::new();
    for kind in &a.models {
        let dir = a.out.join(kind);
        let _ = std::fs::remove_dir_all(&dir);
        let left = a.time_budget.saturating_sub(started.elapsed());
        let t = Instant::now();
        if let Some(reason) = train_kind(&a, kind, &train, val.as_ref(), base.as_deref(), left, &dir)
            .with_context(|| format!("training {kind}"))?
        {
            println!("{kind}: skipped ({reason})");
            skipped.push((kind.clone(), reason));
            continue;
        }
        let train_seconds = t.elapsed().as_secs_f64();
        let model = crate::common::load_model(&dir)?;
        let (report, _) = crate::cmd_eval::evaluate(&model, &test, None, &a.oos_label)?;
        let mut latencies: Vec<f64> = test
            .examples
            .iter()
            .take(50)
            .map(|e| {
                let t = Instant::now();
                let _ = model.predict(&e.text);
                t.elapsed().as_secs_f64() * 1e3
            })
            .collect();
        latencies.sort_by(f64::total_cmp);
        let score = if train.multi_label { report.micro_f1.unwrap_or(0.0) } else { report.accuracy };
        rows.push(Row {
            board: LeaderboardRow {
                kind: kind.clone(),
                score,
                macro_f1: report.macro_f1,
                ece: report.ece,
                train_seconds,
                p50_latency_ms: latencies.get(latencies.len() / 2).copied().unwrap_or(0.0),
                folder_bytes: folder_bytes(&dir),
                gate_passed: gate.check(&report).passed,
            },
            folder: dir,
        });
        println!(
            "{kind}: {} {score:.4} in {train_seconds:.1} s",
            if train.multi_label { "micro-F1" } else { "accuracy" }
        );
    }
    rows.sort_by(|x, y| y.board.score.total_cmp(&x.board.score));
    let metric = if train.multi_label { "micro-F1" } else { "accuracy" };
    let mut md = format!(
        "| rank | model | {metric} | macro-F1 | ECE | train s | p50 ms | folder MB | gate |\n\
         |---|---|---|---|---|---|---|---|---|\n"
    );
    for (i, r) in rows.iter().map(|r| &r.board).enumerate() {
        md.push_str(&format!(
            "| {} | {} | {:.4} | {:.4} | {} | {:.1} | {:.2} | {:.1} | {} |\n",
            i + 1,
            r.kind,
            r.score,
            r.macro_f1,
            r.ece.map_or("–".into(), |e| format!("{e:.4}")),
            r.train_seconds,
            r.p50_latency_ms,
            r.folder_bytes as f64 / 1e6,
            if r.gate_passed { "passed" } else { "failed" }
        ));
    }
    for (k, why) in &skipped {
        md.push_str(&format!("| – | {k} | skipped: {why} | | | | | | |\n"));
    }
    print!("{md}");
    let json = serde_json::json!({
        "data": source, "train_examples": train.len(), "test_examples": test.len(), "metric": metric,
        "time_budget_s": a.time_budget.as_secs_f64(),
        "rows": rows.iter().map(Row::to_json).collect::<Vec<_>>(),
        "skipped": skipped
            .iter()
            .map(|(k, r)| serde_json::json!({"kind": k, "reason": r}))
            .collect::<Vec<_>>(),
    });
    intent_data::io::atomic_write(
        &a.out.join("leaderboard.json"),
        serde_json::to_string_pretty(&json)?.as_bytes(),
    )?;
    intent_data::io::atomic_write(&a.out.join("leaderboard.md"), md.as_bytes())?;
    let html_rows: Vec<LeaderboardRow> = rows.iter().map(|r| r.board.clone()).collect();
    let data = format!("{source}: {} training examples, {} test examples", train.len(), test.len());
    let html = intent_eval::html::leaderboard_html(&data, metric, &html_rows, &skipped);
    intent_data::io::atomic_write(&a.out.join("leaderboard.html"), html.as_bytes())?;
    println!("leaderboard written to {} (and .md, .html)", a.out.join("leaderboard.json").display());
    if let Some(name) = &a.register {
        let Some(best) = rows.iter().find(|r| r.board.gate_passed) else {
            println!("no model passed the gate: nothing registered");
            return Ok(ExitCode::from(1));
        };
        // The version keeps the data it was trained and tested on (as `intent pipeline`'s do):
        // `intent retrain` counts new samples against it.
        let data_dir = best.folder.join("data");
        if !data_dir.join("train.jsonl").is_file() {
            std::fs::create_dir_all(&data_dir).with_context(|| format!("creating {}", data_dir.display()))?;
            intent_data::write_dataset(&data_dir.join("train.jsonl"), &train)?;
            intent_data::write_dataset(&data_dir.join("test.jsonl"), &test)?;
        }
        let registered = Registry::new(&a.models_dir).model(name)?;
        std::fs::create_dir_all(registered.dir())?;
        let lock = registered.lock()?;
        let current = registered.alias("current")?;
        let note = format!("intent compare: best of {} ({})", rows.len(), best.board.kind);
        let version = registered.register(&lock, &best.folder, current, Some(note))?;
        registered.promote(&lock, version, "intent compare: best model that passed the gate")?;
        println!("registered {} as {name} version {version} (current)", best.board.kind);
    }
    Ok(ExitCode::SUCCESS)
}
