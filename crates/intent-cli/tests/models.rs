//! `intent models`: register, list, show, promote, rollback, gc; errors for what is not there;
//! `intent predict` loads `ROOT/NAME@current` and a version folder; `intent compare` registers
//! the best of a leaderboard.

mod common;

use common::*;

use std::path::Path;

#[test]
fn register_promote_rollback_gc() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Short trainings (exit code 1 when the gate fails; the folders are saved anyway).
    for epochs in ["2", "3"] {
        intent(&["pipeline", "--models-dir", "trained", "--epochs", epochs, "--no-gate"], d);
    }
    assert!(d.join("trained/example/versions/2/config.json").is_file());

    fails_with(&intent(&["models", "list", "faq", "--root", "reg"], d), "no model 'faq'");
    fails_with(&intent(&["models", "register", "faq", "nowhere", "--root", "reg"], d), "not a model folder");
    let out = ok(&intent(
        &["models", "register", "faq", "trained/example/versions/1", "--promote", "--root", "reg"],
        d,
    ));
    assert!(out.contains("registered faq version 1 (current)"), "{out}");
    ok(&intent(
        &[
            "models",
            "register",
            "faq",
            "trained/example/versions/2",
            "--root",
            "reg",
            "--note",
            "more epochs",
        ],
        d,
    ));
    ok(&intent(&["models", "register", "faq", "trained/example/versions/2", "--root", "reg"], d));

    let out = ok(&intent(&["models", "list", "--root", "reg"], d));
    assert!(out.lines().any(|l| l.split_whitespace().collect::<Vec<_>>() == ["faq", "3", "1", "-"]), "{out}");
    fails_with(&intent(&["models", "promote", "faq", "7", "--root", "reg"], d), "no version 7");
    ok(&intent(&["models", "promote", "faq", "2", "--root", "reg"], d));
    let show: serde_json::Value =
        serde_json::from_str(&ok(&intent(&["models", "show", "faq@current", "--root", "reg"], d))).unwrap();
    assert_eq!(
        (show["version"].as_u64(), show["parent"].as_u64(), show["note"].as_str()),
        (Some(2), Some(1), Some("more epochs"))
    );
    assert!(Path::new(d).join(show["dir"].as_str().unwrap()).join("model.safetensors").is_file());

    let out = ok(&intent(&["models", "rollback", "faq", "--root", "reg"], d));
    assert!(out.contains("current → 1"), "{out}");
    let out = ok(&intent(&["models", "list", "faq", "--root", "reg"], d));
    let aliases_of = |v: &str| {
        out.lines()
            .find(|l| l.split_whitespace().next() == Some(v))
            .map(|l| l.split_whitespace().last().unwrap().to_string())
    };
    assert_eq!(aliases_of("1").as_deref(), Some("current"), "{out}");
    assert_eq!(aliases_of("2").as_deref(), Some("previous"), "{out}");

    let out = ok(&intent(&["models", "gc", "faq", "--keep", "0", "--root", "reg"], d));
    assert!(out.contains("[3]"), "{out}");
    let show: serde_json::Value =
        serde_json::from_str(&ok(&intent(&["models", "show", "faq", "--root", "reg"], d))).unwrap();
    assert_eq!(show["versions"].as_array().unwrap().len(), 2);
    assert_eq!(show["history"].as_array().unwrap().len(), 5, "{show}");
    fails_with(&intent(&["models", "show", "faq@nope", "--root", "reg"], d), "no alias 'nope'");

    // Through the alias, and a version folder directly.
    for model in ["reg/faq@current", "reg/faq/versions/1"] {
        let out = ok(&intent(&["predict", "--model", model, "where is my order"], d));
        assert!(out.contains("order_status"), "{model}: {out}");
    }
    fails_with(&intent(&["predict", "--model", "reg/faq@gone", "hi"], d), "aliases/gone");
    // A folder whose weights do not load (cut short): refused before any version appears.
    let broken = d.join("broken");
    std::fs::create_dir_all(&broken).unwrap();
    for f in std::fs::read_dir(d.join("trained/example/versions/1")).unwrap() {
        let f = f.unwrap();
        if f.file_type().unwrap().is_file() {
            std::fs::copy(f.path(), broken.join(f.file_name())).unwrap();
        }
    }
    let weights = std::fs::read(broken.join("model.safetensors")).unwrap();
    std::fs::write(broken.join("model.safetensors"), &weights[..weights.len() / 2]).unwrap();
    let before = std::fs::read_dir(d.join("reg/faq/versions")).unwrap().count();
    fails_with(&intent(&["models", "register", "faq", "broken", "--root", "reg"], d), "does not load");
    assert_eq!(std::fs::read_dir(d.join("reg/faq/versions")).unwrap().count(), before);
}

/// Four intents with their own keywords: `n` texts each, starting at `from`.
fn jsonl(n: usize, from: usize) -> String {
    let words = [("card", "debit"), ("transfer", "wire"), ("refund", "money"), ("password", "login")];
    let mut out = String::new();
    for (label, (a, b)) in words.iter().enumerate() {
        for i in from..from + n {
            out.push_str(&format!(
                "{{\"text\": \"question {i} on my {a} and {b}\", \"label\": \"{}\"}}\n",
                words[label].0
            ));
        }
    }
    out
}

#[test]
fn retrain_status_dry_run_force() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("base.jsonl"), jsonl(20, 0)).unwrap();
    std::fs::write(d.join("holdout.jsonl"), jsonl(5, 100)).unwrap();
    std::fs::write(
        d.join("retrain.toml"),
        "model = \"faq\"\nkind = \"svm\"\nbase_data = \"base.jsonl\"\nholdout = \
            \"holdout.jsonl\"\n[gate]\nmin_overall = 0.9\n",
    )
    .unwrap();
    let status: serde_json::Value =
        serde_json::from_str(&ok(&intent(&["retrain", "--config", "retrain.toml", "--status"], d))).unwrap();
    assert_eq!(status["triggers"]["would_run"], true);
    assert_eq!(status["triggers"]["reasons"][0], "no current version");
    let out = ok(&intent(&["retrain", "--config", "retrain.toml", "--dry-run"], d));
    assert!(out.starts_with("dry-run: would train a svm on 80 examples"), "{out}");
    assert!(!d.join("models").exists() && !d.join("retrain").exists(), "a dry run writes nothing");
    let out = ok(&intent(&["retrain", "--config", "retrain.toml"], d));
    assert!(out.starts_with("deployed: version 1 is current"), "{out}");
    let out = ok(&intent(&["retrain", "--config", "retrain.toml"], d));
    assert!(out.starts_with("skipped: no trigger"), "{out}");
    let out = ok(&intent(&["retrain", "--config", "retrain.toml", "--force"], d));
    assert!(out.starts_with("deployed: version 2"), "{out}");
    let history = std::fs::read_to_string(d.join("retrain/retrain_history.jsonl")).unwrap();
    assert_eq!(history.lines().count(), 3);
    let out = ok(&intent(&["predict", "--model", "models/faq@current", "my debit card"], d));
    assert!(out.contains("\"label\":\"card\""), "{out}");
    fails_with(&intent(&["retrain", "--config", "missing.toml"], d), "missing.toml");
}

/// `intent compare` on the embedded data: a leaderboard of the kinds asked for, sorted by score,
/// written as JSON and Markdown; a kind over the time budget is skipped with the reason; the
/// best model that passes the gate is registered as the current version.
#[test]
fn compare_ranks_models_skips_what_does_not_fit_and_registers_the_best() {
    let m = minilm();
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    let args = [
        "compare",
        "--models",
        "svm,mlp,zero-shot,bert",
        "--base",
        &m,
        "--time-budget",
        "1s",
        "--out",
        "cmp",
        "--register",
        "best",
        "--min-overall",
        "0.5",
        "--min-class",
        "0",
    ];
    let out = ok(&intent(&args, p));
    let board: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(p.join("cmp/leaderboard.json")).unwrap()).unwrap();
    let rows = board["rows"].as_array().unwrap();
    let kinds: Vec<&str> = rows.iter().map(|r| r["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds.len(), 3, "svm, mlp and zero-shot ran: {kinds:?}");
    let scores: Vec<f64> = rows.iter().map(|r| r["score"].as_f64().unwrap()).collect();
    assert!(scores.windows(2).all(|w| w[0] >= w[1]), "sorted by score: {scores:?}");
    assert!(rows
        .iter()
        .all(|r| r["folder_bytes"].as_u64().unwrap() > 0 && r["p50_latency_ms"].as_f64().unwrap() > 0.0));
    let skipped = board["skipped"].as_array().unwrap();
    assert_eq!(skipped.len(), 1);
    assert_eq!(skipped[0]["kind"], "bert");
    assert!(skipped[0]["reason"].as_str().unwrap().contains("--time-budget"), "{skipped:?}");
    assert!(std::fs::read_to_string(p.join("cmp/leaderboard.md")).unwrap().contains("| 1 | "));
    assert!(out.contains(&format!("registered {} as best version 1 (current)", kinds[0])), "{out}");
    let list = ok(&intent(&["models", "list"], p));
    assert!(list.contains("best"), "{list}");
    let html = std::fs::read_to_string(p.join("cmp/leaderboard.html")).unwrap();
    assert!(html.contains("<table id=\"leaderboard\"") && html.contains("<li>bert: "), "{html}");
    assert!(p.join("models/best/versions/1/data/train.jsonl").is_file(), "the version keeps its data");
    // An unknown kind is refused by name before anything is trained.
    fails_with(&intent(&["compare", "--models", "svm,gpt", "--out", "c2"], p), "gpt");
    assert!(!p.join("c2").exists());

    // `intent pipeline --model auto`: the same on the pipeline's own split (no encoder in this
    // folder: zero-shot and bert are skipped with the reason).
    let out = ok(&intent(&["pipeline", "--model", "auto", "--min-class", "0"], p));
    assert!(out.contains("zero-shot: skipped (no --base"), "{out}");
    let board: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(p.join("models/example/compare/leaderboard.json")).unwrap(),
    )
    .unwrap();
    let best = board["rows"][0]["kind"].as_str().unwrap().to_string();
    assert!(out.contains(&format!("registered {best} as example version 1 (current)")), "{out}");
    assert!(p.join("models/example/versions/1/data/test.jsonl").is_file());
}
