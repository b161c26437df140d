//! One retrain run and the status report.

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use intent_data::augment::{augment_avoiding, AugmentConfig};
use intent_data::formats::outcomes::{outcomes_to_dataset, read_outcomes, OutcomeDef};
use intent_data::split::{merge, ConflictPolicy};
use intent_data::{load_dataset, normalize_text, Dataset};
use intent_eval::{ClassMetric, QualityGate};
use intent_models::folder::{now_unix, read_kind};
use intent_models::ModelKind;
use intent_registry::failpoints::halt_point;
use intent_registry::{RegisteredModel, Registry, RegistryLock};
use serde::Serialize;
use serde_json::{json, Value};

use super::history::{append_history, history};
use super::kinds::{self, TrainPlan};
use super::outcome::{
    DatasetQuality, Durations, HoldoutScores, LabelsPulled, RetrainOutcome, RunStatus, VersionsSeen,
};
use super::server_calls::{notify, pull_labels, pull_teacher_labels, waiting_texts};
use super::{MergePolicy, RetrainConfig, RetrainError};
use intent_serve::evaluation::evaluate;
use intent_serve::Classifier;

/// `--force`, `--dry-run`, and whether to reload the configured server.
#[derive(Debug, Clone, Copy)]
pub struct RunOptions {
    /// Run whatever the triggers say.
    pub force: bool,
    /// Say what would happen; change nothing.
    pub dry_run: bool,
    /// Call the `[server]` of the config after deploying (true). A server that runs the job
    /// itself (`intent serve --retrain-every`) reloads in process instead.
    pub notify: bool,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions { force: false, dry_run: false, notify: true }
    }
}

const LOG: &str = "retrain.log";
/// Marker of a run in progress (its id, pid and start); left behind only by a killed run.
const RUNNING: &str = "running";
/// The labeled items fetched from the server (`[server] pull_labels`).
const PULLED: &str = "labels/from_server.jsonl";
/// The teacher labels (`[labels] teacher`).
const TEACHER: &str = "labels/teacher.jsonl";

/// Data and triggers as they stand now.
struct Assessment {
    train: Dataset,
    holdout: Dataset,
    duplicates: usize,
    conflicts: usize,
    removed_holdout: usize,
    new_samples: usize,
    current: Option<u32>,
    days_since_success: Option<f64>,
    reasons: Vec<String>,
    /// SHA-256 of the base data now.
    base_hash: String,
    /// Teacher labels used.
    teacher_labels: Option<usize>,
    /// The outcome definitions of `[augment]` and their SHA-256.
    outcomes: Option<(Vec<OutcomeDef>, String)>,
    /// The current version's answer windows (`[triggers.drift]`), and why they were not read.
    served_quality: Option<Value>,
    notes: Vec<String>,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> RetrainError + '_ {
    move |source| RetrainError::Io { path: path.to_path_buf(), source }
}

fn data_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, RetrainError> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut files: Vec<PathBuf> = std::fs::read_dir(p)
                .map_err(io_err(p))?
                .flatten()
                .map(|e| e.path())
                .filter(|f| f.extension().is_some_and(|x| x == "jsonl"))
                .collect();
            files.sort();
            out.extend(files);
        } else {
            out.push(p.clone());
        }
    }
    Ok(out)
}

fn assess(cfg: &RetrainConfig, model: &RegisteredModel, force: bool) -> Result<Assessment, RetrainError> {
    let opts = intent_data::LoadOptions::default();
    let mut parts = vec![load_dataset(&cfg.base_data, None, &opts)?.data];
    let mut files = data_files(&cfg.new_data)?;
    let pulled = cfg.state_dir.join(PULLED);
    if pulled.is_file() && !files.contains(&pulled) {
        files.push(pulled);
    }
    for f in files {
        parts.push(load_dataset(&f, None, &opts)?.data);
    }
    let policy = match cfg.merge {
        MergePolicy::KeepFirst => ConflictPolicy::KeepFirst,
        MergePolicy::KeepLast => ConflictPolicy::KeepLast,
    };
    let outcomes = match &cfg.augment {
        Some(aug) => Some((read_outcomes(&aug.outcomes)?, data_hash(&aug.outcomes)?)),
        None => None,
    };
    // The outcome examples come last: labeled data wins over them.
    if let Some((defs, _)) = &outcomes {
        parts.push(outcomes_to_dataset(defs));
    }
    let mut merged = merge(&parts, policy);
    // Teacher labels join below the people's: only texts no one labeled.
    let teacher_file = cfg.state_dir.join(TEACHER);
    let mut teacher_labels = None;
    if cfg.labels.is_some() && teacher_file.is_file() {
        let labeled: HashSet<String> = merged.data.examples.iter().map(|e| normalize_text(&e.text)).collect();
        let taught = load_dataset(&teacher_file, None, &opts)?.data;
        let fresh: Vec<_> =
            taught.examples.into_iter().filter(|e| !labeled.contains(&normalize_text(&e.text))).collect();
        teacher_labels = Some(fresh.len());
        merged.data.examples.extend(fresh);
    }
    let holdout = load_dataset(&cfg.holdout, None, &opts)?.data;
    let held: HashSet<String> = holdout.examples.iter().map(|e| normalize_text(&e.text)).collect();
    let mut train = merged.data;
    let before = train.len();
    train.examples.retain(|e| !held.contains(&normalize_text(&e.text)));
    let removed_holdout = before - train.len();

    let current = model.alias("current")?;
    let seen: HashSet<String> = match current {
        Some(n) => load_dataset(&model.version_dir(n).join("data/train.jsonl"), None, &opts)
            .map(|d| d.data.examples.iter().map(|e| normalize_text(&e.text)).collect())
            .unwrap_or_default(),
        None => HashSet::new(),
    };
    let new_samples = train.examples.iter().filter(|e| !seen.contains(&normalize_text(&e.text))).count();
    let past = history(cfg);
    let last_deployed = past.iter().rev().find(|h| h.status == RunStatus::Deployed);
    // The last successful retrain, else the creation of the current version.
    let last = last_deployed
        .map(|h| h.timestamp_unix)
        .or_else(|| current.and_then(|n| model.version(n).ok()).map(|v| v.created_unix));
    let days_since_success = last.map(|t| now_unix().saturating_sub(t) as f64 / 86400.0);
    let base_hash = data_hash(&cfg.base_data)?;
    // The hash the last deployment trained on (older history lines have none: no trigger).
    let deployed_hash = last_deployed.and_then(|h| h.dataset_quality.as_ref()?.base_data_sha256.clone());
    let deployed_outcomes = last_deployed.and_then(|h| h.dataset_quality.as_ref()?.outcomes_sha256.clone());
    let mut reasons = Vec::new();
    if force {
        reasons.push("--force".to_string());
    }
    if current.is_none() {
        reasons.push("no current version".to_string());
    }
    if let Some(d) = days_since_success.filter(|&d| d >= cfg.triggers.min_days) {
        reasons.push(format!("{d:.1} days since the last successful retrain ≥ {}", cfg.triggers.min_days));
    }
    if new_samples >= cfg.triggers.min_new_samples {
        reasons.push(format!("{new_samples} new samples ≥ {}", cfg.triggers.min_new_samples));
    }
    if let Some(old) = deployed_hash.filter(|h| cfg.triggers.on_data_change && *h != base_hash) {
        reasons.push(format!(
            "the base data changed since the last deployment (sha256 {} → {})",
            &old[..old.len().min(12)],
            &base_hash[..12]
        ));
    }
    let (mut served_quality, mut notes) = (None, Vec::new());
    if let (Some(drift), Some(server), Some(n)) = (&cfg.triggers.drift, &cfg.server, current) {
        match drift.assess(server, &cfg.model, n) {
            Ok((reason, q)) => {
                reasons.extend(reason);
                served_quality = Some(q);
            }
            Err(e) => notes.push(format!("drift trigger: could not read the query log ({e})")),
        }
    }
    let outcomes_hash = outcomes.as_ref().map(|(_, h)| h.as_str());
    if let (Some(old), Some(now)) = (deployed_outcomes.filter(|_| cfg.triggers.on_data_change), outcomes_hash)
    {
        if old != now {
            reasons.push(format!(
                "the outcome definitions changed since the last deployment (sha256 {} → {})",
                &old[..old.len().min(12)],
                &now[..12]
            ));
        }
    }
    Ok(Assessment {
        train,
        holdout,
        duplicates: merged.duplicates,
        conflicts: merged.conflicts.len(),
        removed_holdout,
        new_samples,
        current,
        days_since_success,
        reasons,
        base_hash,
        teacher_labels,
        outcomes,
        served_quality,
        notes,
    })
}

/// SHA-256 (hex) of a data file, or of a folder's files (sorted names and bytes).
fn data_hash(path: &Path) -> Result<String, RetrainError> {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    if path.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(io_err(path))?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        for f in files {
            h.update(f.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default().as_bytes());
            h.update(std::fs::read(&f).map_err(io_err(&f))?);
        }
    } else {
        h.update(std::fs::read(path).map_err(io_err(path))?);
    }
    Ok(hex::encode(h.finalize()))
}

/// Writes the teacher labels of `labels.teacher` to `dest`: the server's fallback labels, or a
/// teacher model's answers (at least `min_confidence`) for the texts waiting in the queue.
fn teach(
    labels: &super::Labels,
    server: &super::ServerNotify,
    cfg: &RetrainConfig,
    dest: &Path,
) -> Result<usize, String> {
    if labels.teacher == "server" {
        return pull_teacher_labels(server, dest);
    }
    let base = cfg.path.parent().unwrap_or(Path::new("."));
    let spec = intent_serve::ModelSpec::parse(&base.join(&labels.teacher).to_string_lossy());
    let dir = spec.resolve().map_err(|e| format!("teacher {}: {e}", labels.teacher))?.path;
    let model = Classifier::load(&dir).map_err(|e| format!("teacher {}: {e}", labels.teacher))?;
    let texts = waiting_texts(server)?;
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let mut out = Vec::new();
    for chunk in refs.chunks(256) {
        let predictions =
            model.predict_batch(chunk, 1).map_err(|e| format!("teacher {}: {e}", labels.teacher))?;
        for (text, p) in chunk.iter().zip(predictions) {
            if f64::from(p.confidence) >= labels.min_confidence {
                out.push(intent_data::Example::new(*text, p.label).with_source("teacher"));
            }
        }
    }
    let n = out.len();
    std::fs::create_dir_all(dest.parent().expect("in the state folder")).map_err(|e| e.to_string())?;
    intent_data::write_dataset(dest, &Dataset::new(out)).map_err(|e| e.to_string())?;
    Ok(n)
}

/// Accuracy (micro-F1 for multi-label) on the held-out set and the gate's verdict.
fn score(
    dir: &Path,
    holdout: &Dataset,
    gate: &QualityGate,
) -> Result<(f64, intent_eval::GateResult), RetrainError> {
    let model = Classifier::load(dir)?;
    let (report, _) = evaluate(&model, holdout, None, "oos")?;
    let verdict = gate.check(&report);
    Ok((report.micro_f1.unwrap_or(report.accuracy), verdict))
}

struct Journal {
    path: PathBuf,
    id: String,
    write: bool,
}

impl Journal {
    fn line(&self, message: &str) {
        tracing::info!("{message}");
        if self.write {
            if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(&self.path) {
                let _ = writeln!(f, "{} {} {message}", now_unix(), self.id);
            }
        }
    }
}

/// Runs a retrain: returns its history line (also appended to `retrain_history.jsonl` unless
/// `dry_run`). A rejected or failed candidate is an `Ok` with that status: `current` unchanged.
/// An error (bad data file, registry trouble) is also recorded as a `failed` line.
///
/// A run that was killed leaves its `running` marker in the state folder: the next run records
/// it as `interrupted` and removes what it left (candidate folder, registry staging files).
pub fn retrain(cfg: &RetrainConfig, opts: RunOptions) -> Result<RetrainOutcome, RetrainError> {
    let t0 = Instant::now();
    let id = format!("{}-{}", now_unix(), std::process::id());
    let model = Registry::new(&cfg.registry).model(&cfg.model)?;
    let journal = Journal { path: cfg.state_dir.join(LOG), id: id.clone(), write: !opts.dry_run };
    if opts.dry_run {
        return run(cfg, opts, &model, &journal, None, t0);
    }
    std::fs::create_dir_all(&cfg.state_dir).map_err(io_err(&cfg.state_dir))?;
    let lock = model.lock()?;
    let marker = cfg.state_dir.join(RUNNING);
    if let Ok(text) = std::fs::read_to_string(&marker) {
        let old: Value = serde_json::from_str(&text).unwrap_or_else(|_| json!({}));
        let line = RetrainOutcome {
            retrain_id: old["retrain_id"].as_str().unwrap_or_default().to_string(),
            reason: format!(
                "the run started at {} stopped before finishing (killed or crashed); its leftovers were \
                    removed",
                old["started_unix"]
            ),
            versions: VersionsSeen { current: model.alias("current")?, ..VersionsSeen::default() },
            ..RetrainOutcome::new(cfg, "", RunStatus::Interrupted)
        };
        journal.line(&format!("interrupted: run {} did not finish", old["retrain_id"]));
        append_history(cfg, &line)?;
    }
    for p in model.cleanup(&lock)? {
        journal.line(&format!("removed leftover {}", p.display()));
    }
    for p in std::fs::read_dir(&cfg.state_dir)
        .map_err(io_err(&cfg.state_dir))?
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("candidate-"))
    {
        let _ = std::fs::remove_dir_all(p.path());
        journal.line(&format!("removed leftover {}", p.path().display()));
    }
    let mark = json!({ "retrain_id": id, "pid": std::process::id(), "started_unix": now_unix() }).to_string();
    std::fs::write(&marker, mark).map_err(io_err(&marker))?;
    let result = run(cfg, opts, &model, &journal, Some(lock), t0);
    let mut failed = None;
    if let Err(e) = &result {
        let line = RetrainOutcome {
            kind: Some(cfg.kind),
            reason: e.to_string().replace('\n', " "),
            versions: VersionsSeen {
                current: model.alias("current").ok().flatten(),
                ..VersionsSeen::default()
            },
            durations_s: Durations { total: Some(t0.elapsed().as_secs_f64()), ..Durations::default() },
            ..RetrainOutcome::new(cfg, &id, RunStatus::Failed)
        };
        journal.line(&format!("failed: {e}"));
        append_history(cfg, &line)?;
        failed = Some(line);
    }
    std::fs::remove_file(&marker).map_err(io_err(&marker))?;
    if let (Some(n), Some(line)) = (&cfg.notify, result.as_ref().ok().or(failed.as_ref())) {
        for note in super::notify::send(n, line) {
            journal.line(&note);
        }
    }
    if let Err(e) = super::schedule::write_cron_status(cfg) {
        journal.line(&format!("could not write {}: {e}", super::schedule::CRON_STATUS_FILE));
    }
    result
}

/// The run itself, under the lock (none for a dry run).
fn run(
    cfg: &RetrainConfig,
    opts: RunOptions,
    model: &RegisteredModel,
    journal: &Journal,
    lock: Option<RegistryLock>,
    t0: Instant,
) -> Result<RetrainOutcome, RetrainError> {
    let id = journal.id.clone();
    // Labels from the server first (not in a dry run: it changes nothing); a failed pull is
    // noted and the last copy used.
    let pulled = match cfg.server.as_ref().filter(|s| s.pull_labels && lock.is_some()) {
        Some(server) => {
            let r = pull_labels(server, &cfg.state_dir.join(PULLED));
            journal.line(&match &r {
                Ok(n) => format!("pulled {n} labeled items from {}", server.url),
                Err(e) => format!("could not pull labels ({e}); using the last copy"),
            });
            Some(r)
        }
        None => None,
    };
    if let (Some(labels), Some(server), Some(_)) = (&cfg.labels, &cfg.server, &lock) {
        let r = teach(labels, server, cfg, &cfg.state_dir.join(TEACHER));
        journal.line(&match &r {
            Ok(n) => format!("{n} teacher labels from {}", labels.teacher),
            Err(e) => format!("could not get teacher labels ({e}); using the last copy"),
        });
    }
    // Encoders loaded and devices checked before any work: a base that cannot be loaded fails
    // the run here.
    let main_plan = TrainPlan::parse(cfg.kind, &cfg.train, &cfg.path)?;
    let boot_plan = match &cfg.bootstrap {
        Some(b) => Some((b, TrainPlan::parse(b.kind, &b.train, &cfg.path)?)),
        None => None,
    };
    let mut main_ready = Some(main_plan.prepare(&cfg.path)?);
    let mut boot_ready = match &boot_plan {
        Some((_, p)) => Some(p.prepare(&cfg.path)?),
        None => None,
    };
    let mut a = assess(cfg, model, opts.force)?;
    halt_point("retrain:assessed");
    for n in &a.notes {
        journal.line(n);
    }
    // A Hugging Face folder's config.json has no `kind`: a fine-tuned BERT.
    let kind_before =
        a.current.and_then(|n| read_kind(&model.version_dir(n)).ok()).map(|k| k.unwrap_or(ModelKind::Bert));
    // The kind of this run: the bootstrap kind once it is current or the data allows it.
    let mut waiting = None;
    let (plan, ready) = match &boot_plan {
        Some((b, p)) if kind_before == Some(b.kind) => (p, boot_ready.take()),
        Some((b, p)) => {
            let counts = a.train.label_counts();
            let fewest = counts.iter().min_by_key(|(_, n)| **n);
            match fewest {
                Some((label, &n)) if n >= b.min_per_label => {
                    a.reasons.push(format!(
                        "bootstrap: every label has ≥ {} examples (fewest: '{label}', {n}): {} → {}",
                        b.min_per_label,
                        kind_before.unwrap_or(cfg.kind),
                        b.kind
                    ));
                    (p, boot_ready.take())
                }
                _ => {
                    let short = counts.values().filter(|&&n| n < b.min_per_label).count();
                    waiting = Some(format!(
                        "bootstrap to {} waits for ≥ {} examples of every label: {short} of {} labels have \
                            fewer{}",
                        b.kind,
                        b.min_per_label,
                        counts.len(),
                        fewest.map_or(String::new(), |(l, n)| format!(" (fewest: '{l}', {n})"))
                    ));
                    (&main_plan, main_ready.take())
                }
            }
        }
        None => (&main_plan, main_ready.take()),
    };
    let ready = ready.expect("each plan is prepared once");
    let data_s = t0.elapsed().as_secs_f64();
    journal.line(&format!(
        "data: {} training examples ({} duplicates dropped, {} conflicts kept first, {} held-out texts \
            removed), {} new; holdout {}",
        a.train.len(),
        a.duplicates,
        a.conflicts,
        a.removed_holdout,
        a.new_samples,
        a.holdout.len()
    ));
    let mut line = RetrainOutcome {
        kind: Some(plan.kind()),
        kind_before,
        triggers: a.reasons.clone(),
        dataset_quality: Some(DatasetQuality {
            total_entries: a.train.len(),
            new_samples: a.new_samples,
            duplicates: a.duplicates,
            conflicts: a.conflicts,
            holdout_removed: a.removed_holdout,
            accuracy_improvement: None,
            base_data_sha256: Some(a.base_hash.clone()),
            outcomes_sha256: a.outcomes.as_ref().map(|(_, h)| h.clone()),
            synthetic: None,
            teacher_labels: a.teacher_labels,
        }),
        versions: VersionsSeen { before: a.current, candidate: None, current: a.current },
        served_quality: a.served_quality.clone(),
        labels_pulled: pulled.map(|r| match r {
            Ok(n) => LabelsPulled::Count(n),
            Err(error) => LabelsPulled::Failed { error },
        }),
        ..RetrainOutcome::new(cfg, &id, RunStatus::Skipped)
    };
    let finish = |mut line: RetrainOutcome,
                  status: RunStatus,
                  reason: String,
                  durations: Durations|
     -> Result<RetrainOutcome, RetrainError> {
        journal.line(&format!("{status}: {reason}"));
        if matches!(status, RunStatus::Deployed | RunStatus::Rejected) && !opts.dry_run {
            kinds::clear_checkpoints(&cfg.state_dir);
        }
        line.status = status;
        line.reason = reason;
        line.durations_s = durations;
        if !opts.dry_run {
            append_history(cfg, &line)?;
        }
        Ok(line)
    };
    if let Some(why) = waiting.filter(|_| a.current.is_some() && !opts.force) {
        let why = format!("{why}; the current {} model keeps serving", kind_before.unwrap_or(cfg.kind));
        let total = Some(t0.elapsed().as_secs_f64());
        return finish(
            line,
            RunStatus::Skipped,
            why,
            Durations { data: Some(data_s), total, ..Durations::default() },
        );
    }
    if a.reasons.is_empty() {
        let why = format!(
            "no trigger: {} new samples < {}, {} days since the last successful retrain < {}",
            a.new_samples,
            cfg.triggers.min_new_samples,
            a.days_since_success.map_or("-".into(), |d| format!("{d:.1}")),
            cfg.triggers.min_days
        );
        let total = Some(t0.elapsed().as_secs_f64());
        return finish(
            line,
            RunStatus::Skipped,
            why,
            Durations { data: Some(data_s), total, ..Durations::default() },
        );
    }
    let Some(lock) = lock else {
        let plan = format!(
            "would train a {} on {} examples, validate on {} held-out examples against \
            version {:?}, then register and promote it",
            plan.kind(),
            a.train.len(),
            a.holdout.len(),
            a.current
        );
        return finish(
            line,
            RunStatus::DryRun,
            plan,
            Durations { data: Some(data_s), ..Durations::default() },
        );
    };

    let candidate = cfg.state_dir.join(format!("candidate-{id}"));
    let t1 = Instant::now();
    let note = |m: &str| journal.line(m);
    // Bag-of-words models also learn from synthetic sentences (never a held-out text); the
    // version keeps the data without them.
    let augmented = match (&cfg.augment, &a.outcomes, plan.kind()) {
        (Some(aug), Some((defs, _)), ModelKind::Mlp | ModelKind::Svm) if aug.factor > 0 => {
            let held: Vec<&str> = a.holdout.examples.iter().map(|e| e.text.as_str()).collect();
            let made =
                augment_avoiding(&a.train, defs, AugmentConfig { factor: aug.factor, seed: aug.seed }, &held);
            let n = made.data.len() - a.train.len();
            note(&format!("augmentation: {n} synthetic sentences from the outcome definitions"));
            if let Some(q) = &mut line.dataset_quality {
                q.synthetic = Some(n);
            }
            Some(made.data)
        }
        _ => None,
    };
    let trained = kinds::train(
        plan,
        ready,
        augmented.as_ref().unwrap_or(&a.train),
        &a.train,
        &candidate,
        &cfg.state_dir,
        &cfg.path,
        &note,
    );
    let train_s = t1.elapsed().as_secs_f64();
    if let Err(e) = trained {
        let _ = std::fs::remove_dir_all(&candidate);
        if !matches!(e, RetrainError::TimeLimit(_)) {
            kinds::clear_checkpoints(&cfg.state_dir);
        }
        let total = Some(t0.elapsed().as_secs_f64());
        let durations = Durations { data: Some(data_s), train: Some(train_s), total, ..Durations::default() };
        return finish(line, RunStatus::Failed, format!("training failed: {e}"), durations);
    }
    journal.line(&format!("trained a candidate in {train_s:.1} s"));
    halt_point("retrain:trained");

    let t2 = Instant::now();
    let gate = QualityGate {
        min_overall: cfg.gate.min_overall,
        min_per_class: cfg.gate.min_class,
        class_metric: ClassMetric::F1,
    };
    let (cand, verdict) = score(&candidate, &a.holdout, &gate)?;
    let current_score = match a.current {
        Some(n) => Some(score(&model.version_dir(n), &a.holdout, &gate)?.0),
        None => None,
    };
    let validate_s = t2.elapsed().as_secs_f64();
    line.scores = Some(HoldoutScores { candidate: cand, current: current_score });
    if let Some(q) = &mut line.dataset_quality {
        q.accuracy_improvement = current_score.map(|c| cand - c);
    }
    journal.line(&format!(
        "holdout: candidate {cand:.4}, current {}",
        current_score.map_or("-".into(), |c| format!("{c:.4}"))
    ));
    let mut durations = Durations {
        data: Some(data_s),
        train: Some(train_s),
        validate: Some(validate_s),
        ..Durations::default()
    };
    let rejection = if !verdict.passed {
        Some(verdict.summary.clone())
    } else {
        current_score.filter(|&c| cand < c - cfg.gate.max_regression).map(|c| {
            format!("regression: candidate {cand:.4} < current {c:.4} − {}", cfg.gate.max_regression)
        })
    };
    if let Some(why) = rejection {
        let _ = std::fs::remove_dir_all(&candidate);
        durations.total = Some(t0.elapsed().as_secs_f64());
        return finish(line, RunStatus::Rejected, why, durations);
    }

    // The held-out score goes with the version (metrics.json, then version.json).
    let metrics_path = candidate.join("metrics.json");
    let mut metrics: Value = std::fs::read_to_string(&metrics_path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_else(|| json!({}));
    if let Some(m) = metrics.as_object_mut() {
        m.insert(
            "holdout".into(),
            json!({ "accuracy": cand, "examples": a.holdout.len(), "current_accuracy": current_score }),
        );
        std::fs::write(&metrics_path, serde_json::to_string_pretty(&metrics).expect("serializes"))
            .map_err(io_err(&metrics_path))?;
    }
    halt_point("retrain:validated");
    let t3 = Instant::now();
    let n = model.register(
        &lock,
        &candidate,
        a.current,
        Some(format!("retrain {id}: {}", a.reasons.join("; "))),
    )?;
    let _ = std::fs::remove_dir_all(&candidate);
    line.versions.candidate = Some(n);
    halt_point("retrain:registered");
    let aliases_before = model.aliases()?;
    model.promote(&lock, n, &format!("retrain {id}"))?;
    halt_point("retrain:promoted");
    let notified = match (&cfg.server, opts.notify) {
        (Some(server), true) => notify(server, n),
        _ => Ok(()),
    };
    durations.deploy = Some(t3.elapsed().as_secs_f64());
    durations.total = Some(t0.elapsed().as_secs_f64());
    if let Err(e) = notified {
        // The server did not take the new version: both aliases go back exactly where they were.
        model.restore_aliases(&lock, &aliases_before, &format!("retrain {id}: server reload failed"))?;
        return finish(
            line,
            RunStatus::Failed,
            format!(
                "version {n} registered, but the server reload failed ({e}); current stays at {:?}",
                a.current
            ),
            durations,
        );
    }
    line.versions.current = Some(n);
    finish(line, RunStatus::Deployed, format!("version {n} is current (holdout {cand:.4})"), durations)
}

/// What `--status` prints.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    /// The last history line.
    pub last_run: Option<RetrainOutcome>,
    /// What the triggers say now.
    pub triggers: Value,
    /// Registry state: aliases and versions.
    pub registry: Value,
}

/// The last run, the triggers now and the registry state; changes nothing.
pub fn status(cfg: &RetrainConfig) -> Result<Status, RetrainError> {
    let model = Registry::new(&cfg.registry).model(&cfg.model)?;
    let a = assess(cfg, &model, false)?;
    Ok(Status {
        last_run: history(cfg).pop(),
        triggers: json!({
            "would_run": !a.reasons.is_empty(),
            "reasons": a.reasons,
            "new_samples": a.new_samples,
            "days_since_success": a.days_since_success,
            "min_new_samples": cfg.triggers.min_new_samples,
            "min_days": cfg.triggers.min_days,
        }),
        registry: json!({ "aliases": model.aliases()?, "versions": model.version_numbers()? }),
    })
}
