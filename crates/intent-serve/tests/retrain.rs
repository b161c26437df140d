//! Retraining: triggers (none, new samples, force), dry run and status change nothing, a worse
//! candidate (shuffled labels) is rejected with `current` unchanged, concurrent runs are refused
//! by the lock, a deployment reloads a running server, bad configs name the problem.

mod common;

use std::path::Path;

use common::*;
use intent_data::{write_dataset, Dataset, Example};
use intent_models::registry::Registry;
use intent_serve::retrain::{retrain, status, RetrainConfig, RunOptions};

/// Base data, a held-out set with other texts, and a config in `dir`.
fn setup(dir: &Path, extra: &str) -> RetrainConfig {
    let all = synthetic(40);
    let (mut base, mut holdout) = (Vec::new(), Vec::new());
    for (i, e) in all.examples.into_iter().enumerate() {
        if i % 40 < 24 { base.push(e) } else { holdout.push(e) }
    }
    write_dataset(&dir.join("base.jsonl"), &Dataset::new(base)).unwrap();
    write_dataset(&dir.join("holdout.jsonl"), &Dataset::new(holdout)).unwrap();
    std::fs::create_dir_all(dir.join("new")).unwrap();
    let toml = format!(
        "model = \"faq\"\nkind = \"mlp\"\nbase_data = \"base.jsonl\"\nnew_data = [\"new\"]\nholdout = \"holdout.jsonl\"\n\
         [triggers]\nmin_days = 30\nmin_new_samples = 50\n[gate]\nmin_overall = 0.5\nmax_regression = 0.05\n\
         [train]\nhidden_size = 16\n[train.engine]\nepochs = 10\nbatch_size = 16\nlr = 0.01\nseed = 3\n{extra}"
    );
    std::fs::write(dir.join("retrain.toml"), toml).unwrap();
    RetrainConfig::read(&dir.join("retrain.toml")).unwrap()
}

fn history_len(dir: &Path) -> usize {
    std::fs::read_to_string(dir.join("retrain/retrain_history.jsonl")).map_or(0, |t| t.lines().count())
}

/// `n` new examples with texts the base data does not have.
fn new_examples(n: usize, shuffled: bool) -> Dataset {
    let labels = ["card", "transfer", "refund", "password"];
    let words = [["card", "debit"], ["transfer", "wire"], ["refund", "money"], ["password", "login"]];
    Dataset::new(
        (0..n)
            .map(|i| {
                let k = i % 4;
                let label = if shuffled { labels[(k + 1 + i / 4 % 3) % 4] } else { labels[k] };
                Example::new(format!("question {i} about {} and {}", words[k][0], words[k][1]), label)
            })
            .collect(),
    )
}

#[test]
fn triggers_deploy_skip_dry_run_and_status() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let cfg = setup(d, "");
    let model = Registry::new(d.join("models")).model("faq").unwrap();

    let first = retrain(&cfg, RunOptions::default()).unwrap();
    assert_eq!(first["status"], "deployed", "{first}");
    assert_eq!(first["triggers"][0], "no current version");
    assert_eq!(model.alias("current").unwrap(), Some(1));
    assert!(model.version_dir(1).join("data/train.jsonl").is_file(), "the training data is kept with the version");
    assert_eq!(first["dataset_quality"]["total_entries"], 96);

    let again = retrain(&cfg, RunOptions::default()).unwrap();
    assert_eq!(again["status"], "skipped", "{again}");
    assert!(again["reason"].as_str().unwrap().contains("0 new samples < 50"), "{again}");
    assert_eq!(history_len(d), 2);

    // 60 new labeled samples fire the trigger.
    write_dataset(&d.join("new/export.jsonl"), &new_examples(60, false)).unwrap();
    let s = status(&cfg).unwrap();
    assert_eq!((s.triggers["would_run"].as_bool(), s.triggers["new_samples"].as_u64()), (Some(true), Some(60)));
    let dry = retrain(&cfg, RunOptions { dry_run: true, ..RunOptions::default() }).unwrap();
    assert_eq!(dry["status"], "dry-run");
    assert_eq!((history_len(d), model.version_numbers().unwrap()), (2, vec![1]), "a dry run changes nothing");

    let third = retrain(&cfg, RunOptions::default()).unwrap();
    assert_eq!(third["status"], "deployed", "{third}");
    assert_eq!(third["dataset_quality"]["new_samples"], 60);
    assert!(third["dataset_quality"]["accuracy_improvement"].is_number());
    assert_eq!((model.alias("current").unwrap(), model.alias("previous").unwrap()), (Some(2), Some(1)));
    assert_eq!(model.version(2).unwrap().parent, Some(1));
    assert_eq!(model.version(2).unwrap().metrics["holdout"]["accuracy"], third["scores"]["candidate"], "the held-out score is stored");
    let s = status(&cfg).unwrap();
    assert_eq!(s.triggers["would_run"], false);
    assert_eq!(s.last_run.unwrap()["versions"]["current"], 2);
    let log = std::fs::read_to_string(d.join("retrain/retrain.log")).unwrap();
    assert!(log.contains("deployed: version 2 is current"), "{log}");

    // Time: the last successful retrain 31 days ago fires the days trigger.
    let path = d.join("retrain/retrain_history.jsonl");
    let month_ago = intent_models::folder::now_unix() - 31 * 86400;
    let aged: Vec<String> = std::fs::read_to_string(&path).unwrap().lines().map(|l| {
        let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
        v["timestamp_unix"] = month_ago.into();
        v.to_string()
    }).collect();
    std::fs::write(&path, aged.join("\n") + "\n").unwrap();
    let s = status(&cfg).unwrap();
    assert_eq!(s.triggers["would_run"], true, "{}", s.triggers);
    assert!(s.triggers["reasons"][0].as_str().unwrap().starts_with("31.0 days since the last successful retrain ≥ 30"), "{}", s.triggers);
    assert_eq!(retrain(&cfg, RunOptions::default()).unwrap()["status"], "deployed");
}

#[test]
fn worse_candidate_is_rejected_and_current_stays() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let cfg = setup(d, "");
    assert_eq!(retrain(&cfg, RunOptions::default()).unwrap()["status"], "deployed");
    // The base data with every label shuffled.
    let mut bad = intent_data::load_dataset(&d.join("base.jsonl"), None, &Default::default()).unwrap().data;
    let labels = ["card", "transfer", "refund", "password"];
    for (i, e) in bad.examples.iter_mut().enumerate() {
        e.labels = vec![labels[(i * 7 + 1) % 4].to_string()];
    }
    write_dataset(&d.join("shuffled.jsonl"), &bad).unwrap();
    let mut worse = cfg.clone();
    worse.base_data = d.join("shuffled.jsonl");
    worse.new_data.clear();
    let r = retrain(&worse, RunOptions { force: true, ..RunOptions::default() }).unwrap();
    assert_eq!(r["status"], "rejected", "{r}");
    let reason = r["reason"].as_str().unwrap();
    assert!(reason.contains("regression") || reason.contains("quality gate"), "{reason}");
    let model = Registry::new(d.join("models")).model("faq").unwrap();
    assert_eq!((model.alias("current").unwrap(), model.version_numbers().unwrap()), (Some(1), vec![1]));
    assert!(std::fs::read_dir(d.join("retrain")).unwrap().flatten().all(|e| !e.file_name().to_string_lossy().starts_with("candidate-")));
}

#[test]
fn concurrent_runs_are_refused_and_bad_configs_named() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let cfg = setup(d, "");
    let model = Registry::new(d.join("models")).model("faq").unwrap();
    let held = model.lock().unwrap();
    let e = retrain(&cfg, RunOptions::default()).unwrap_err().to_string();
    assert!(e.contains("another process"), "{e}");
    drop(held);

    for (toml, needle) in [
        ("model = \"faq\"\nkind = \"bert5\"\nbase_data = \"b\"\nholdout = \"h\"\n", "kind 'bert5'"),
        ("model = \"faq\"\nkind = \"mlp\"\nbase_data = \"b\"\n", "holdout"),
        ("model = \"faq\"\nkind = \"mlp\"\nbase_data = \"b\"\nholdout = \"h\"\ncolour = 1\n", "colour"),
        ("model = \"../x\"\nkind = \"mlp\"\nbase_data = \"b\"\nholdout = \"h\"\n", "model name"),
    ] {
        std::fs::write(d.join("bad.toml"), toml).unwrap();
        let e = RetrainConfig::read(&d.join("bad.toml")).unwrap_err().to_string();
        assert!(e.contains("bad.toml") && e.contains(needle), "{needle}: {e}");
    }
    std::fs::write(d.join("bad.toml"), "model = \"faq\"\nkind = \"mlp\"\nbase_data = \"b\"\nholdout = \"h\"\n[train.engine]\nnope = 1\n").unwrap();
    let e = RetrainConfig::read(&d.join("bad.toml")).unwrap_err().to_string();
    assert!(e.contains("bad.toml: [train]: unknown option(s) engine.nope"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn labels_pulled_from_the_server_and_deployment_reloads_it() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().to_path_buf();
    let cfg = setup(&d, "");
    assert_eq!(retrain(&cfg, RunOptions::default()).unwrap()["status"], "deployed");
    // Every prediction is queued for labeling (fallback threshold 1).
    let mut options = with_token();
    options.load.fallback_threshold = Some(1.0);
    let log = intent_serve::QueryLog::open(&d.join("queries.sqlite"), false).unwrap();
    let state = intent_serve::server::AppState::new(intent_serve::ModelSlot::default(), Some(log), options);
    state.load(&intent_serve::ModelSpec::parse(&format!("{}/models/faq@current", d.display()))).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(intent_serve::server::serve(listener, state.clone(), std::future::pending()));

    // 60 queries, labeled through the admin API.
    let fresh = new_examples(60, false);
    for e in &fresh.examples {
        assert_eq!(predict(&state, &serde_json::json!({ "text": e.text }).to_string()).await.status, 200);
    }
    state.query_log().unwrap().flush().await;
    let queue = call(&state, "GET", "/admin/labeling/queue?limit=100", None, Some(TOKEN)).await;
    let items = queue.json["items"].as_array().unwrap().clone();
    assert_eq!(items.len(), 60, "{}", queue.text);
    for item in items {
        let label = &fresh.examples.iter().find(|e| e.text == item["text"].as_str().unwrap()).unwrap().labels[0];
        let r = call(&state, "POST", &format!("/admin/labeling/{}", item["id"]), Some(&format!(r#"{{"label": "{label}"}}"#)), Some(TOKEN)).await;
        assert_eq!(r.status, 200, "{}", r.text);
    }

    std::env::set_var("INTENT_TEST_RETRAIN_TOKEN", TOKEN);
    let cfg = setup(&d, &format!("[server]\nurl = \"http://127.0.0.1:{port}\"\ntoken_env = \"INTENT_TEST_RETRAIN_TOKEN\"\npull_labels = true\n"));
    let s = status(&cfg).unwrap();
    assert_eq!(s.triggers["new_samples"], 0, "nothing pulled before a run");
    let line = tokio::task::spawn_blocking(move || retrain(&cfg, RunOptions::default()).unwrap()).await.unwrap();
    assert_eq!(line["status"], "deployed", "{line}");
    assert_eq!((line["labels_pulled"].as_u64(), line["dataset_quality"]["new_samples"].as_u64()), (Some(60), Some(60)), "{line}");
    assert!(d.join("retrain/labels/from_server.jsonl").is_file());
    assert_eq!(state.slot().current().unwrap().source.version, "2", "the server serves the new version");

    // A server that cannot be reached: the run goes on with the last copy, and says so.
    let cfg = setup(&d, "[server]\nurl = \"http://127.0.0.1:9\"\ntoken_env = \"INTENT_TEST_RETRAIN_TOKEN\"\npull_labels = true\n");
    let line = tokio::task::spawn_blocking(move || retrain(&cfg, RunOptions::default()).unwrap()).await.unwrap();
    assert_eq!(line["status"], "skipped", "{line}");
    assert!(line["labels_pulled"]["error"].as_str().unwrap().contains("127.0.0.1:9"), "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_runs_the_job_in_the_background_and_swaps() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().to_path_buf();
    let cfg = setup(&d, "");
    assert_eq!(retrain(&cfg, RunOptions::default()).unwrap()["status"], "deployed");
    let spec = intent_serve::ModelSpec::parse(&format!("{}/models/faq@current", d.display()));
    intent_serve::retrain::check_served_spec(&spec, &cfg).unwrap();
    let folder = intent_serve::ModelSpec::parse(&format!("{}/models/faq/versions/1", d.display()));
    let e = intent_serve::retrain::check_served_spec(&folder, &cfg).unwrap_err();
    assert!(e.contains("models/faq@current"), "{e}");

    let state = intent_serve::server::AppState::new(intent_serve::ModelSlot::default(), None, with_token());
    state.load(&spec).unwrap();
    write_dataset(&d.join("new/export.jsonl"), &new_examples(60, false)).unwrap();
    let task = intent_serve::retrain::spawn_retrainer(state.clone(), cfg.clone(), std::time::Duration::from_secs(1));
    let mut waited = 0;
    while state.slot().current().unwrap().source.version != "2" {
        assert!(waited < 600, "no swap after 60 s: {:?}", std::fs::read_to_string(d.join("retrain/retrain.log")));
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        waited += 1;
    }
    // Requests are answered by the new version; the next runs find no trigger.
    let r = predict(&state, r#"{"text": "my debit card"}"#).await;
    assert_eq!(r.status, 200);
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    task.abort();
    let statuses: Vec<String> = std::fs::read_to_string(d.join("retrain/retrain_history.jsonl")).unwrap().lines().map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["status"].as_str().unwrap().to_string()).collect();
    assert_eq!(&statuses[..2], ["deployed", "deployed"]);
    assert!(statuses.len() >= 3 && statuses[2..].iter().all(|s| s == "skipped"), "{statuses:?}");
}
