//! One retrain run and the status report.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use intent_data::augment::{augment_avoiding, AugmentConfig};
use intent_data::Dataset;
use intent_eval::{ClassMetric, QualityGate};
use intent_models::folder::{now_unix, read_kind};
use intent_models::ModelKind;
use intent_registry::failpoints::halt_point;
use intent_registry::{RegisteredModel, Registry, RegistryLock};
use serde::Serialize;
use serde_json::{json, Value};

use super::assess::assess;
use super::history::{append_history, history};
use super::kinds::{self, TrainPlan};
use super::outcome::{
    DatasetQuality, Durations, HoldoutScores, LabelsPulled, RetrainOutcome, RunStatus, VersionsSeen,
};
use super::server_calls::{notify, pull_labels};
use super::sources;
use super::{RetrainConfig, RetrainError};
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
pub(super) const PULLED: &str = "labels/from_server.jsonl";

pub(super) fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> RetrainError + '_ {
    move |source| RetrainError::Io { path: path.to_path_buf(), source }
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
        sources::fetch(labels, server, cfg, &|m| journal.line(m));
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
            let mut counts = a.label_counts.clone();
            // The labels a zero-shot labels file names count too (0 without examples).
            for l in kinds::described_labels(&main_plan, &cfg.path) {
                counts.entry(l).or_insert(0);
            }
            let fewest = counts.iter().min_by_key(|(_, n)| **n);
            // A fine-tune already rejected on this very data is not tried again by itself.
            let last_try = history(cfg).into_iter().rev().find(|h| {
                h.kind == Some(b.kind) && matches!(h.status, RunStatus::Deployed | RunStatus::Rejected)
            });
            let same_data = |h: &RetrainOutcome| {
                h.dataset_quality.as_ref().is_some_and(|q| {
                    q.total_entries == a.train.len()
                        && q.base_data_sha256.as_deref() == Some(a.base_hash.as_str())
                })
            };
            let rejected_before = last_try.filter(|h| h.status == RunStatus::Rejected && same_data(h));
            match fewest {
                Some((label, &n)) if n >= b.min_per_label && rejected_before.is_some() => {
                    journal.line(&format!(
                        "bootstrap: every label has ≥ {} examples (fewest: '{label}', {n}), but the \
                         fine-tune on this data was rejected ({}); waiting for new data",
                        b.min_per_label,
                        rejected_before.map(|h| h.reason).unwrap_or_default()
                    ));
                    (p, boot_ready.take())
                }
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
            pseudo_labels: a.pseudo_labels,
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
    let bootstrap_wait = waiting
        .filter(|_| a.current.is_some() && !opts.force)
        .map(|why| format!("{why}; the current {} model keeps serving", kind_before.unwrap_or(cfg.kind)));
    let no_trigger = a.reasons.is_empty().then(|| {
        format!(
            "no trigger: {} new samples < {}, {} days since the last successful retrain < {}",
            a.new_samples,
            cfg.triggers.min_new_samples,
            a.days_since_success.map_or("-".into(), |d| format!("{d:.1}")),
            cfg.triggers.min_days
        )
    });
    if let Some(why) = bootstrap_wait.or(no_trigger) {
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
