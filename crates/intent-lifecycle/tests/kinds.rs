//! `intent retrain` for the encoder kinds: a zero-shot model that bootstraps to a fine-tuned
//! BERT once every label has enough examples, a BERT fine-tune that stops at its time limit and
//! resumes from its checkpoint, and the errors of bad `[train]` tables, bases and devices.
//! The encoder is a tiny BERT whose vocabulary holds the words of the data.

use std::path::Path;

use intent_data::write_dataset;
use intent_lifecycle::retrain::{history, record_bad_config, retrain, RetrainConfig, RunOptions, RunStatus};
use intent_models::folder::read_kind;
use intent_models::ModelKind;
use intent_registry::Registry;
use intent_testkit::{new_examples, retrain_setup, synthetic};

/// burn's random generator is one per process: the fine-tuning tests take turns, so that each
/// run is seeded alone.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn turn() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Options of a quick fine-tune of the tiny encoder.
fn bert(epochs: usize) -> String {
    format!(
        "base = \"tiny\"\ndevice = \"cpu\"\nmax_len = 16\nepochs = {epochs}\nbatch_size = 8\nlr = 0.005\n\
        warmup_ratio = 0.0\nmin_steps = 1\nseed = 7\n"
    )
}

/// The retrain data of [`retrain_setup`], the tiny encoder in `dir/tiny`, and `retrain.toml`
/// with `body` after the common part.
fn setup(dir: &Path, body: &str) -> RetrainConfig {
    retrain_setup(dir, "");
    let mut words = synthetic(40);
    words.examples.extend(new_examples(40, false).examples);
    intent_testkit::bert::write_tiny_encoder_for(&dir.join("tiny"), &words);
    let toml = format!(
        "model = \"faq\"\nbase_data = \"base.jsonl\"\nnew_data = [\"new\"]\n\
         holdout = \"holdout.jsonl\"\n{body}"
    );
    std::fs::write(dir.join("retrain.toml"), toml).unwrap();
    RetrainConfig::read(&dir.join("retrain.toml")).unwrap()
}

fn current_kind(dir: &Path) -> ModelKind {
    let model = Registry::new(dir.join("models")).model("faq").unwrap();
    let n = model.alias("current").unwrap().unwrap();
    read_kind(&model.version_dir(n)).unwrap().unwrap_or(ModelKind::Bert)
}

#[test]
fn zero_shot_bootstraps_to_bert_when_every_label_has_enough_examples() {
    let _turn = turn();
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let cfg = setup(
        d,
        &format!(
            "kind = \"zero-shot\"\n[triggers]\nmin_new_samples = 1000\n[gate]\nmax_regression = 1.0\n\
             [train]\nencoder = \"tiny\"\ntemplate = \"about {{label}}\"\n\
             [bootstrap]\nkind = \"bert\"\nmin_per_label = 30\n[bootstrap.train]\n{}",
            bert(40)
        ),
    );
    // No version yet: the zero-shot model is built from the label names.
    let first = retrain(&cfg, RunOptions::default()).unwrap();
    assert_eq!(first.status, RunStatus::Deployed, "{first}");
    assert_eq!((first.kind, first.kind_before), (Some(ModelKind::ZeroShot), None));
    assert_eq!(current_kind(d), ModelKind::ZeroShot);
    let model = Registry::new(d.join("models")).model("faq").unwrap();
    let config = std::fs::read_to_string(model.version_dir(1).join("config.json")).unwrap();
    assert!(config.contains("\"about card\"") && config.contains("\"about password\""), "{config}");

    // 24 examples of each label < 30: the zero-shot model keeps serving, and the line says why.
    let waiting = retrain(&cfg, RunOptions::default()).unwrap();
    assert_eq!(waiting.status, RunStatus::Skipped, "{waiting}");
    assert_eq!(
        waiting.reason,
        "bootstrap to bert waits for ≥ 30 examples of every label: 4 of 4 labels have fewer (fewest: \
            'card', 24); the current zero-shot model keeps serving"
    );

    // Ten new labeled examples per label: 34 ≥ 30, the next run fine-tunes BERT.
    write_dataset(&d.join("new/labeled.jsonl"), &new_examples(40, false)).unwrap();
    let boot = retrain(&cfg, RunOptions::default()).unwrap();
    assert_eq!(boot.status, RunStatus::Deployed, "{boot}");
    assert_eq!((boot.kind, boot.kind_before), (Some(ModelKind::Bert), Some(ModelKind::ZeroShot)));
    assert!(
        boot.triggers
            .iter()
            .any(|t| t == "bootstrap: every label has ≥ 30 examples (fewest: 'card', 34): zero-shot → bert"),
        "{boot}"
    );
    let scores = boot.scores.unwrap();
    assert!(scores.current.is_some(), "the zero-shot model was scored on the same held-out set");
    assert!(scores.candidate >= 0.9, "the fine-tuned model learns the keywords: {scores:?}");
    assert_eq!(current_kind(d), ModelKind::Bert);
    assert!(!d.join("retrain/checkpoints").exists(), "a finished fine-tune leaves no checkpoint");

    // `models rollback` returns to the zero-shot model; with the data still large enough, the
    // next run fine-tunes again, and once BERT is current, retrains stay BERT.
    let lock = model.lock().unwrap();
    assert_eq!(model.rollback(&lock, "test").unwrap(), 1);
    drop(lock);
    assert_eq!(current_kind(d), ModelKind::ZeroShot);
    let force = RunOptions { force: true, ..RunOptions::default() };
    let again = retrain(&cfg, force).unwrap();
    assert_eq!(
        (again.kind, again.kind_before),
        (Some(ModelKind::Bert), Some(ModelKind::ZeroShot)),
        "{again}"
    );
    let stays = retrain(&cfg, force).unwrap();
    assert_eq!((stays.kind, stays.kind_before), (Some(ModelKind::Bert), Some(ModelKind::Bert)), "{stays}");
    assert_eq!(history(&cfg).len(), 5);
}

#[test]
fn a_time_limited_fine_tune_resumes_from_its_checkpoint() {
    let _turn = turn();
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let cfg = setup(
        d,
        &format!("kind = \"bert\"\n[gate]\nmin_overall = 0.5\n[train]\n{}time_limit = \"1ms\"\n", bert(40)),
    );
    // Each run makes one epoch, then stops at the limit.
    for epoch in 1..=2 {
        let r = retrain(&cfg, RunOptions::default()).unwrap();
        assert_eq!(r.status, RunStatus::Failed, "{r}");
        assert!(
            r.reason
                .contains(&format!("the time limit 1ms was reached after epoch {epoch} of the fine-tune")),
            "{r}"
        );
        let latest = std::fs::read_to_string(d.join("retrain/checkpoints/latest")).unwrap();
        assert_eq!(latest.trim(), format!("epoch-{epoch}"));
        assert!(Registry::new(d.join("models")).model("faq").unwrap().alias("current").unwrap().is_none());
    }
    let log = std::fs::read_to_string(d.join("retrain/retrain.log")).unwrap();
    assert!(log.contains("resuming the fine-tune from"), "{log}");
    // Without the limit, the next run resumes at epoch 3 and finishes (the limit is not part of
    // what the checkpoint belongs to).
    let text = std::fs::read_to_string(d.join("retrain.toml")).unwrap();
    std::fs::write(d.join("retrain.toml"), text.replace("time_limit = \"1ms\"\n", "")).unwrap();
    let unlimited = RetrainConfig::read(&d.join("retrain.toml")).unwrap();
    let done = retrain(&unlimited, RunOptions::default()).unwrap();
    assert_eq!(done.status, RunStatus::Deployed, "{done}");
    assert!(!d.join("retrain/checkpoints").exists());
    let model = Registry::new(d.join("models")).model("faq").unwrap();
    let metrics = std::fs::read_to_string(model.version_dir(1).join("metrics.json")).unwrap();
    let metrics: serde_json::Value = serde_json::from_str(&metrics).unwrap();
    assert_eq!(metrics["history"].as_array().unwrap().len(), 40, "the epochs of all three runs");

    // Other data: the checkpoint of an unfinished run is not resumed.
    write_dataset(&d.join("new/labeled.jsonl"), &new_examples(8, false)).unwrap();
    let r = retrain(&cfg, RunOptions { force: true, ..RunOptions::default() }).unwrap();
    assert!(r.reason.contains("after epoch 1 of"), "{r}");
    write_dataset(&d.join("new/labeled.jsonl"), &new_examples(12, false)).unwrap();
    let r = retrain(&cfg, RunOptions { force: true, ..RunOptions::default() }).unwrap();
    assert!(r.reason.contains("after epoch 1 of"), "started afresh: {r}");
    let log = std::fs::read_to_string(d.join("retrain/retrain.log")).unwrap();
    assert!(log.contains("the checkpoints left are of other data or options: fine-tuning afresh"), "{log}");
}

#[test]
fn bad_kind_settings_fail_before_training_and_leave_current() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let cfg =
        setup(d, "kind = \"mlp\"\n[train]\nhidden_size = 16\nepochs = 10\nbatch_size = 16\nlr = 0.01\n");
    assert_eq!(retrain(&cfg, RunOptions::default()).unwrap().status, RunStatus::Deployed);
    let common =
        "model = \"faq\"\nbase_data = \"base.jsonl\"\nnew_data = [\"new\"]\nholdout = \"holdout.jsonl\"\n";

    // Read errors: nothing runs.
    for (body, needle) in [
        ("kind = \"bert\"\n[train]\nbase = \"tiny\"\nlayers = 3\n", "[train]: unknown option(s) layers"),
        ("kind = \"bert\"\n[train]\nbase = \"tiny\"\nlayers = 3\n", "\"max_len\""),
        ("kind = \"bert\"\n[train]\nmax_len = 16\n", "[train]: base: required"),
        (
            "kind = \"bert\"\n[train]\nbase = \"tiny\"\ndevice = \"gpu\"\n",
            "[train]: device: unknown device 'gpu'",
        ),
        ("kind = \"bert\"\n[train]\nbase = \"tiny\"\ntime_limit = \"soon\"\n", "time_limit \"soon\""),
        (
            "kind = \"bert\"\n[train]\nbase = \"tiny\"\nepochs = 2\n[train.engine]\nepochs = 3\n",
            "given twice",
        ),
        ("kind = \"zero-shot\"\n[train]\nencoder = \"tiny\"\ntemplate = \"x\"\n", "must contain {label}"),
        ("kind = \"zero-shot\"\n[train]\nencoder = \"tiny\"\nlr = 0.1\n", "unknown option(s) lr"),
        (
            "kind = \"zero-shot\"\n[train]\nencoder = \"tiny\"\n[bootstrap]\nkind = \"zero-shot\"\n",
            "bootstrap.kind 'zero-shot' is the kind already trained",
        ),
        (
            "kind = \"zero-shot\"\n[train]\nencoder = \"tiny\"\n[bootstrap]\nkind = \"bert\"\n\
             [bootstrap.train]\nbase = \"tiny\"\ndropout = 1\n",
            "[bootstrap.train]: unknown option(s) dropout",
        ),
        ("kind = \"svm\"\nmerge = \"keep-middle\"\n", "unknown variant `keep-middle`"),
    ] {
        std::fs::write(d.join("bad.toml"), format!("{common}{body}")).unwrap();
        let e = RetrainConfig::read(&d.join("bad.toml")).unwrap_err().to_string();
        assert!(e.contains("bad.toml") && e.contains(needle), "{needle}: {e}");
    }

    // `intent retrain` records a config it cannot read as a failed run of the model it names.
    std::fs::write(
        d.join("bad.toml"),
        format!("{common}kind = \"bert\"\n[train]\nbase = \"tiny\"\nlayers = 3\n"),
    )
    .unwrap();
    let e = RetrainConfig::read(&d.join("bad.toml")).unwrap_err();
    let written = record_bad_config(&d.join("bad.toml"), &e).unwrap();
    assert_eq!(written, d.join("retrain/retrain_history.jsonl"));
    let last = history(&cfg).pop().unwrap();
    assert_eq!((last.status, last.kind), (RunStatus::Failed, Some(ModelKind::Bert)));
    assert!(
        last.reason.starts_with("the config cannot be used: ") && last.reason.contains("layers"),
        "{last}"
    );
    std::fs::write(d.join("bad.toml"), "model = [").unwrap();
    let e = RetrainConfig::read(&d.join("bad.toml")).unwrap_err();
    assert_eq!(record_bad_config(&d.join("bad.toml"), &e), None, "no model named: nothing to record");

    // Run errors, before any training: a failed line with the reason, current untouched.
    for (body, needle) in [
        (
            "kind = \"bert\"\n[train]\nbase = \"./no-such-encoder\"\n",
            "[train] base './no-such-encoder' cannot be loaded",
        ),
        ("kind = \"bert\"\n[train]\nbase = \"tiny\"\ndevice = \"cuda:7\"\n", "[train] device: "),
        (
            "kind = \"zero-shot\"\n[train]\nencoder = \"base.jsonl\"\n",
            "[train] encoder 'base.jsonl' cannot be loaded",
        ),
    ] {
        std::fs::write(d.join("retrain.toml"), format!("{common}{body}")).unwrap();
        let cfg = RetrainConfig::read(&d.join("retrain.toml")).unwrap();
        let e = retrain(&cfg, RunOptions { force: true, ..RunOptions::default() }).unwrap_err().to_string();
        assert!(e.contains(needle), "{needle}: {e}");
        let last = history(&cfg).pop().unwrap();
        assert_eq!(last.status, RunStatus::Failed);
        assert!(last.reason.contains(needle) && !last.reason.contains('\n'), "{}", last.reason);
        assert_eq!(current_kind(d), ModelKind::Mlp);
        assert!(!std::fs::read_dir(d.join("retrain"))
            .unwrap()
            .flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with("candidate-")));
    }
}

#[test]
fn a_label_without_examples_holds_the_bootstrap_and_a_rejected_fine_tune_waits_for_new_data() {
    let _turn = turn();
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    // One label described: it joins the data's labels.
    std::fs::write(d.join("labels.json"), r#"{"loan": "about a loan"}"#).unwrap();
    let body = |labels: &str| {
        format!(
            "kind = \"zero-shot\"\n[triggers]\nmin_new_samples = 1000\n[train]\nencoder = \"tiny\"\n{labels}\
             [bootstrap]\nkind = \"bert\"\nmin_per_label = 30\n[bootstrap.train]\n{}",
            bert(1)
        )
    };
    let cfg = setup(d, &body("labels = \"labels.json\"\n"));
    write_dataset(&d.join("new/labeled.jsonl"), &new_examples(40, false)).unwrap();
    assert_eq!(retrain(&cfg, RunOptions::default()).unwrap().status, RunStatus::Deployed);
    // 34 examples of each labeled intent, none of `loan`: the zero-shot model keeps serving.
    let r = retrain(&cfg, RunOptions::default()).unwrap();
    assert_eq!(r.status, RunStatus::Skipped, "{r}");
    assert!(r.reason.contains("1 of 5 labels have fewer (fewest: 'loan', 0)"), "{r}");

    // Without `loan` (a forced rebuild of the zero-shot model), the counts are met; a fine-tune
    // that fails the gate is rejected, and the next run does not fine-tune the same data again.
    std::fs::write(d.join("retrain.toml"), {
        let t = std::fs::read_to_string(d.join("retrain.toml")).unwrap();
        t.replace("labels = \"labels.json\"\n", "")
    })
    .unwrap();
    let mut cfg = RetrainConfig::read(&d.join("retrain.toml")).unwrap();
    let r = retrain(&cfg, RunOptions { force: true, ..RunOptions::default() }).unwrap();
    assert_eq!((r.status, r.kind), (RunStatus::Deployed, Some(ModelKind::ZeroShot)), "{r}");
    cfg.gate.min_overall = 0.999;
    let r = retrain(&cfg, RunOptions::default()).unwrap();
    assert_eq!((r.status, r.kind), (RunStatus::Rejected, Some(ModelKind::Bert)), "{r}");
    assert_eq!(current_kind(d), ModelKind::ZeroShot, "the zero-shot model keeps serving");
    let r = retrain(&cfg, RunOptions::default()).unwrap();
    assert_eq!(r.status, RunStatus::Skipped, "{r}");
    let log = std::fs::read_to_string(d.join("retrain/retrain.log")).unwrap();
    assert!(log.contains("but the fine-tune on this data was rejected"), "{log}");
}
