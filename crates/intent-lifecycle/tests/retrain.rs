//! Retraining: triggers (none, new samples, force), dry run and status change nothing, a worse
//! candidate (shuffled labels) is rejected with `current` unchanged, concurrent runs are refused
//! by the lock, bad configs name the problem. (A deployment that reloads a running server: intent-server's
//! tests.)

use std::path::Path;

use intent_data::write_dataset;
use intent_lifecycle::retrain::{retrain, status, RetrainConfig, RunOptions, RunStatus};
use intent_registry::Registry;
use intent_testkit::{http, new_examples, retrain_setup};

/// The retrain scenario of the test kit, read.
fn setup(dir: &Path, extra: &str) -> RetrainConfig {
    RetrainConfig::read(&retrain_setup(dir, extra)).unwrap()
}

fn history_len(dir: &Path) -> usize {
    std::fs::read_to_string(dir.join("retrain/retrain_history.jsonl")).map_or(0, |t| t.lines().count())
}

#[test]
fn triggers_deploy_skip_dry_run_and_status() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let cfg = setup(d, "");
    let model = Registry::new(d.join("models")).model("faq").unwrap();

    let first = retrain(&cfg, RunOptions::default()).unwrap();
    assert_eq!(first.status, RunStatus::Deployed, "{first}");
    assert_eq!(first.triggers[0], "no current version");
    assert_eq!(model.alias("current").unwrap(), Some(1));
    assert!(
        model.version_dir(1).join("data/train.jsonl").is_file(),
        "the training data is kept with the version"
    );
    assert_eq!(first.dataset_quality.as_ref().unwrap().total_entries, 96);

    let again = retrain(&cfg, RunOptions::default()).unwrap();
    assert_eq!(again.status, RunStatus::Skipped, "{again}");
    assert!(again.reason.contains("0 new samples < 50"), "{again}");
    assert_eq!(history_len(d), 2);

    // 60 new labeled samples fire the trigger.
    write_dataset(&d.join("new/export.jsonl"), &new_examples(60, false)).unwrap();
    let s = status(&cfg).unwrap();
    assert_eq!(
        (s.triggers["would_run"].as_bool(), s.triggers["new_samples"].as_u64()),
        (Some(true), Some(60))
    );
    let dry = retrain(&cfg, RunOptions { dry_run: true, ..RunOptions::default() }).unwrap();
    assert_eq!(dry.status, RunStatus::DryRun);
    assert_eq!((history_len(d), model.version_numbers().unwrap()), (2, vec![1]), "a dry run changes nothing");

    let third = retrain(&cfg, RunOptions::default()).unwrap();
    assert_eq!(third.status, RunStatus::Deployed, "{third}");
    let quality = third.dataset_quality.as_ref().unwrap();
    assert_eq!(quality.new_samples, 60);
    assert!(quality.accuracy_improvement.is_some());
    assert_eq!((model.alias("current").unwrap(), model.alias("previous").unwrap()), (Some(2), Some(1)));
    assert_eq!(model.version(2).unwrap().parent, Some(1));
    assert_eq!(
        model.version(2).unwrap().metrics["holdout"]["accuracy"],
        third.scores.unwrap().candidate,
        "the held-out score is stored"
    );
    let s = status(&cfg).unwrap();
    assert_eq!(s.triggers["would_run"], false);
    assert_eq!(s.last_run.unwrap().versions.current, Some(2));
    let log = std::fs::read_to_string(d.join("retrain/retrain.log")).unwrap();
    assert!(log.contains("deployed: version 2 is current"), "{log}");

    // Time: the last successful retrain 31 days ago fires the days trigger.
    let path = d.join("retrain/retrain_history.jsonl");
    let month_ago = intent_models::folder::now_unix() - 31 * 86400;
    let aged: Vec<String> = std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["timestamp_unix"] = month_ago.into();
            v.to_string()
        })
        .collect();
    std::fs::write(&path, aged.join("\n") + "\n").unwrap();
    let s = status(&cfg).unwrap();
    assert_eq!(s.triggers["would_run"], true, "{}", s.triggers);
    assert!(
        s.triggers["reasons"][0]
            .as_str()
            .unwrap()
            .starts_with("31.0 days since the last successful retrain ≥ 30"),
        "{}",
        s.triggers
    );
    assert_eq!(retrain(&cfg, RunOptions::default()).unwrap().status, RunStatus::Deployed);
}

#[test]
fn worse_candidate_is_rejected_and_current_stays() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let cfg = setup(d, "");
    assert_eq!(retrain(&cfg, RunOptions::default()).unwrap().status, RunStatus::Deployed);
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
    assert_eq!(r.status, RunStatus::Rejected, "{r}");
    let reason = &r.reason;
    assert!(reason.contains("regression") || reason.contains("quality gate"), "{reason}");
    let model = Registry::new(d.join("models")).model("faq").unwrap();
    assert_eq!((model.alias("current").unwrap(), model.version_numbers().unwrap()), (Some(1), vec![1]));
    assert!(std::fs::read_dir(d.join("retrain"))
        .unwrap()
        .flatten()
        .all(|e| !e.file_name().to_string_lossy().starts_with("candidate-")));
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
        (
            "model = \"faq\"\nkind = \"bert5\"\nbase_data = \"b\"\nholdout = \"h\"\n",
            "unknown variant `bert5`",
        ),
        (
            "model = \"faq\"\nkind = \"ncf\"\nbase_data = \"b\"\nholdout = \"h\"\n",
            "kind 'ncf': retraining trains mlp, svm, bert or zero-shot",
        ),
        ("model = \"faq\"\nkind = \"mlp\"\nbase_data = \"b\"\n", "holdout"),
        ("model = \"faq\"\nkind = \"mlp\"\nbase_data = \"b\"\nholdout = \"h\"\ncolour = 1\n", "colour"),
        ("model = \"../x\"\nkind = \"mlp\"\nbase_data = \"b\"\nholdout = \"h\"\n", "model name"),
    ] {
        std::fs::write(d.join("bad.toml"), toml).unwrap();
        let e = RetrainConfig::read(&d.join("bad.toml")).unwrap_err().to_string();
        assert!(e.contains("bad.toml") && e.contains(needle), "{needle}: {e}");
    }
    std::fs::write(
        d.join("bad.toml"),
        "model = \"faq\"\nkind = \"mlp\"\nbase_data = \"b\"\nholdout = \"h\"\n[train.engine]\nnope = 1\n",
    )
    .unwrap();
    let e = RetrainConfig::read(&d.join("bad.toml")).unwrap_err().to_string();
    assert!(e.contains("bad.toml: [train]: unknown option(s) engine.nope"), "{e}");
    std::fs::write(
        d.join("bad.toml"),
        "model = \"faq\"\nkind = \"mlp\"\nbase_data = \"b\"\nholdout = \"h\"\n[train.engine]\nbatch_size \
            = 0\n",
    )
    .unwrap();
    let e = RetrainConfig::read(&d.join("bad.toml")).unwrap_err().to_string();
    assert!(e.contains("bad.toml: [train]: invalid `batch_size`: must be at least 1"), "{e}");
}

/// A local webhook receiver: answers 200 to every POST and hands over the JSON bodies.
fn webhook_receiver() -> (u16, std::sync::mpsc::Receiver<serde_json::Value>) {
    let (tx, rx) = std::sync::mpsc::channel();
    let tx = std::sync::Mutex::new(tx);
    let port = http::serve(move |r| {
        let _ = tx.lock().unwrap().send(r.json());
        http::ok("")
    });
    (port, rx)
}

#[test]
fn webhooks_hear_of_deployed_and_rejected_runs_and_a_dead_or_slow_one_fails_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let (port, received) = webhook_receiver();
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    // Accepts and never answers.
    let slow = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let slow_port = slow.local_addr().unwrap().port();
    let notify = format!(
        "[notify]\nwebhooks = [\"http://127.0.0.1:{port}/hooks/SECRET1\", \
         \"http://127.0.0.1:{dead}/SECRET2\", \"http://127.0.0.1:{slow_port}/SECRET3\"]\ntimeout_s = 1\n"
    );
    let cfg = setup(d, &notify);
    let first = retrain(&cfg, RunOptions::default()).unwrap();
    assert_eq!(first.status, RunStatus::Deployed, "the dead and slow webhooks fail nothing: {first}");
    let m = received.recv_timeout(std::time::Duration::from_secs(10)).unwrap();
    assert_eq!(m["retrain"]["status"], "deployed");
    assert_eq!(m["retrain"]["model"], "faq");
    let text = m["text"].as_str().unwrap();
    assert!(text.contains("faq: deployed") && text.contains("version 1"), "{text}");
    assert_eq!(m["content"], m["text"], "Discord reads `content`");

    // No trigger: skipped, no message.
    assert_eq!(retrain(&cfg, RunOptions::default()).unwrap().status, RunStatus::Skipped);
    // A worse candidate: rejected, a message.
    let mut worse = cfg.clone();
    let mut bad = intent_data::load_dataset(&d.join("base.jsonl"), None, &Default::default()).unwrap().data;
    for (i, e) in bad.examples.iter_mut().enumerate() {
        e.labels = vec![["card", "transfer", "refund", "password"][(i * 7 + 1) % 4].to_string()];
    }
    write_dataset(&d.join("shuffled.jsonl"), &bad).unwrap();
    worse.base_data = d.join("shuffled.jsonl");
    let r = retrain(&worse, RunOptions { force: true, ..RunOptions::default() }).unwrap();
    assert_eq!(r.status, RunStatus::Rejected, "{r}");
    let m = received.recv_timeout(std::time::Duration::from_secs(10)).unwrap();
    assert_eq!(m["retrain"]["status"], "rejected");
    assert!(received.try_recv().is_err(), "the skipped run sent nothing");

    let log = std::fs::read_to_string(d.join("retrain/retrain.log")).unwrap();
    assert!(log.contains(&format!("notified http://127.0.0.1:{port}/… (200)")), "{log}");
    assert!(log.contains(&format!("webhook http://127.0.0.1:{dead}/… failed")), "{log}");
    assert!(log.contains(&format!("webhook http://127.0.0.1:{slow_port}/… failed")), "{log}");
    assert!(!log.contains("SECRET"), "webhook paths stay out of the log: {log}");
    drop(slow);

    // Bad webhook settings are config errors.
    for (extra, needle) in [
        ("[notify]\nwebhooks = [\"ftp://x/y\"]\n", "not an http:// or https:// URL"),
        ("[notify]\nwebhooks = []\ntimeout_s = 0\n", "timeout_s"),
        ("[notify]\nwebhooks = []\non = [\"exploded\"]\n", "exploded"),
    ] {
        let e = RetrainConfig::read(&retrain_setup(d, extra)).unwrap_err().to_string();
        assert!(e.contains(needle), "{extra}: {e}");
    }
}

#[test]
fn a_change_of_the_base_data_triggers_a_retrain() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let cfg = setup(d, "");
    let first = retrain(&cfg, RunOptions::default()).unwrap();
    assert_eq!(first.status, RunStatus::Deployed, "{first}");
    let hash = first.dataset_quality.as_ref().unwrap().base_data_sha256.clone().unwrap();
    assert_eq!(hash.len(), 64);
    assert_eq!(retrain(&cfg, RunOptions::default()).unwrap().status, RunStatus::Skipped);

    // One example fewer in the base data: a new hash, a trigger (not enough new samples alone).
    let base = std::fs::read_to_string(d.join("base.jsonl")).unwrap();
    let fewer: Vec<&str> = base.lines().skip(1).collect();
    std::fs::write(d.join("base.jsonl"), fewer.join("\n") + "\n").unwrap();
    let mut off = cfg.clone();
    off.triggers.on_data_change = false;
    let r = retrain(&off, RunOptions { dry_run: true, ..RunOptions::default() }).unwrap();
    assert!(r.triggers.is_empty(), "switched off: {:?}", r.triggers);
    let r = retrain(&cfg, RunOptions::default()).unwrap();
    assert_ne!(r.status, RunStatus::Skipped, "{r}");
    assert!(r.triggers.iter().any(|t| t.contains("base data changed") && t.contains(&hash[..12])), "{r}");
    assert_ne!(r.dataset_quality.unwrap().base_data_sha256.unwrap(), hash);
}

#[test]
fn outcome_definitions_join_and_augment_an_mlp_retrain_and_their_change_triggers_one() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let outcome = |examples: &[&str]| {
        serde_json::json!({
            "name": "card", "examples": examples,
            "synonyms": {"card": ["plastic", "debit card"]},
            "templates": ["where is my {card}", "my {card} broke"]
        })
        .to_string()
    };
    std::fs::write(d.join("card.json"), outcome(&["my card got eaten by the machine"])).unwrap();
    let cfg = setup(d, "[augment]\noutcomes = \"card.json\"\nfactor = 5\nseed = 1\n");
    let first = retrain(&cfg, RunOptions::default()).unwrap();
    assert_eq!(first.status, RunStatus::Deployed, "{first}");
    let q = first.dataset_quality.clone().unwrap();
    // 96 base examples and the outcome's example; up to 5 synthetic sentences per label besides.
    assert_eq!(q.total_entries, 97);
    let synthetic = q.synthetic.unwrap();
    assert!((1..=20).contains(&synthetic), "{synthetic}");
    assert_eq!(q.outcomes_sha256.as_ref().map(String::len), Some(64));
    let log = std::fs::read_to_string(d.join("retrain/retrain.log")).unwrap();
    assert!(log.contains(&format!("augmentation: {synthetic} synthetic sentences")), "{log}");
    // The version keeps the labeled data, not the synthetic sentences.
    let stored = std::fs::read_to_string(d.join("models/faq/versions/1/data/train.jsonl")).unwrap();
    assert_eq!(stored.lines().count(), 97);
    assert!(stored.contains("my card got eaten by the machine"));
    assert_eq!(retrain(&cfg, RunOptions::default()).unwrap().status, RunStatus::Skipped);

    // New outcome examples: the definitions' hash changes, and that triggers a run.
    std::fs::write(
        d.join("card.json"),
        outcome(&["my card got eaten by the machine", "card declined abroad"]),
    )
    .unwrap();
    let r = retrain(&cfg, RunOptions::default()).unwrap();
    assert_ne!(r.status, RunStatus::Skipped, "{r}");
    assert!(r.triggers.iter().any(|t| t.starts_with("the outcome definitions changed")), "{r}");
    assert_eq!(r.dataset_quality.unwrap().total_entries, 98);

    // A broken definition file is an error naming it, recorded as failed.
    std::fs::write(d.join("card.json"), "{\"name\": \"card\", \"examples\": [], \"templates\": [\"{x}\"]}")
        .unwrap();
    let e = retrain(&cfg, RunOptions::default()).unwrap_err().to_string();
    assert!(e.contains("card.json") && e.contains("{x}"), "{e}");
}

/// A stand-in for the server's `GET /admin/querylog/quality`: answers `answer` (changeable) and
/// keeps the request lines (with the authorization header).
fn quality_server(
    answer: std::sync::Arc<std::sync::Mutex<serde_json::Value>>,
) -> (u16, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    let port = http::serve(move |r| {
        log.lock().unwrap().push(format!("{} {}", r.line, r.header("authorization").unwrap_or_default()));
        http::ok(answer.lock().unwrap().to_string())
    });
    (port, seen)
}

#[test]
fn the_drift_trigger_reads_the_served_versions_answers() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let window = |n: u64, confidence: f64, fallback: f64, t: i64| {
        serde_json::json!({
            "queries": n, "mean_confidence": confidence, "fallback_rate": fallback,
            "from_ms": t, "to_ms": t + 10
        })
    };
    let answer = std::sync::Arc::new(std::sync::Mutex::new(serde_json::json!({
        "baseline": window(100, 0.9, 0.1, 0), "recent": window(100, 0.89, 0.1, 100)
    })));
    let (port, seen) = quality_server(answer.clone());
    std::fs::write(d.join("admin.token"), "s3cret\n").unwrap();
    let cfg = setup(
        d,
        &format!(
            "[triggers.drift]\nwindow = 100\n[server]\nurl = \"http://127.0.0.1:{port}\"\n\
             token_file = \"admin.token\"\n"
        ),
    );
    // No version yet: nothing to read. Then a steady version: no trigger, the windows in the history.
    assert_eq!(
        retrain(&cfg, RunOptions { notify: false, ..RunOptions::default() }).unwrap().status,
        RunStatus::Deployed
    );
    let steady = retrain(&cfg, RunOptions::default()).unwrap();
    assert_eq!(steady.status, RunStatus::Skipped, "{steady}");
    assert_eq!(steady.served_quality.as_ref().unwrap()["recent"]["mean_confidence"], 0.89);
    let request = seen.lock().unwrap().last().cloned().unwrap();
    assert!(
        request == "GET /admin/querylog/quality?model=faq&version=1&window=100 HTTP/1.1 Bearer s3cret",
        "{request}"
    );

    // The latest answers are less sure: the trigger fires (and says by how much).
    *answer.lock().unwrap() =
        serde_json::json!({"baseline": window(100, 0.9, 0.1, 0), "recent": window(100, 0.7, 0.12, 100)});
    let r = retrain(&cfg, RunOptions { dry_run: true, ..RunOptions::default() }).unwrap();
    assert_eq!(r.status, RunStatus::DryRun, "{r}");
    assert_eq!(
        r.triggers,
        ["quality drift of version 1: mean confidence 0.900 over its first 100 queries, \
          0.700 over the latest 100 (a drop of 0.200 > 0.05)"]
    );

    // A server that cannot be reached: noted in the log, no trigger, the run goes on.
    let mut dead = cfg.clone();
    dead.server.as_mut().unwrap().url = "http://127.0.0.1:9".into();
    assert_eq!(retrain(&dead, RunOptions::default()).unwrap().status, RunStatus::Skipped);
    let log = std::fs::read_to_string(d.join("retrain/retrain.log")).unwrap();
    assert!(
        log.contains(
            "drift trigger: could not read the query log (http://127.0.0.1:9/admin/querylog/quality"
        ),
        "{log}"
    );

    // The trigger needs a server.
    std::fs::write(
        d.join("bad.toml"),
        "model = \"faq\"\nkind = \"mlp\"\nbase_data = \"b\"\nholdout = \"h\"\n\
         [triggers.drift]\nwindow = 10\n",
    )
    .unwrap();
    let e = RetrainConfig::read(&d.join("bad.toml")).unwrap_err().to_string();
    assert!(e.contains("[triggers.drift] reads the server's query log: it needs [server]"), "{e}");
}

/// A stand-in server: answers the first body whose needle the request line contains (else 404).
fn routes_server(routes: Vec<(&'static str, String)>) -> u16 {
    http::serve(move |r| match routes.iter().find(|(needle, _)| r.line.contains(needle)) {
        Some((_, body)) => http::ok(body.clone()),
        None => ("404 Not Found".into(), String::new()),
    })
}

#[test]
fn teacher_labels_join_the_data_below_the_peoples() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let line = |text: &str, label: &str| format!("{{\"text\": \"{text}\", \"label\": \"{label}\"}}\n");
    let port = routes_server(vec![
        (
            "source=teacher",
            // The first text is labeled by a person too: the person's label wins.
            line("question 900 about my debit card", "refund")
                + &line("question 901 about a wire transfer", "transfer"),
        ),
        ("/admin/labeling/export", line("question 900 about my debit card", "card")),
        (
            "/admin/labeling/queue",
            r#"{"items": [{"text": "my debit card please"}, {"text": "a wire to a payee"}]}"#.into(),
        ),
    ]);
    std::fs::write(d.join("admin.token"), "s3cret").unwrap();
    let server = format!(
        "[server]\nurl = \"http://127.0.0.1:{port}\"\ntoken_file = \"admin.token\"\npull_labels = true\n"
    );
    let cfg = setup(d, &format!("{server}[labels]\nteacher = \"server\"\n"));
    let quiet = RunOptions { force: true, notify: false, ..RunOptions::default() };
    let r = retrain(&cfg, quiet).unwrap();
    assert_eq!(r.status, RunStatus::Deployed, "{r}");
    let q = r.dataset_quality.unwrap();
    assert_eq!((q.total_entries, q.teacher_labels), (96 + 2, Some(1)), "one human label, one teacher label");
    let stored = std::fs::read_to_string(d.join("models/faq/versions/1/data/train.jsonl")).unwrap();
    let label_of = |text: &str| {
        stored
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .find(|v| v["text"] == text)
            .map(|v| v["label"].clone())
    };
    assert_eq!(label_of("question 900 about my debit card"), Some("card".into()));
    assert_eq!(label_of("question 901 about a wire transfer"), Some("transfer".into()));
    let log = std::fs::read_to_string(d.join("retrain/retrain.log")).unwrap();
    assert!(log.contains("2 teacher labels from server"), "{log}");

    // A registry model as the teacher: it labels the texts waiting in the queue.
    let toml = std::fs::read_to_string(d.join("retrain.toml")).unwrap();
    std::fs::write(
        d.join("retrain.toml"),
        toml.replace("teacher = \"server\"", "teacher = \"models/faq@current\"\nmin_confidence = 0.0"),
    )
    .unwrap();
    let cfg = RetrainConfig::read(&d.join("retrain.toml")).unwrap();
    let r = retrain(&cfg, quiet).unwrap();
    assert_eq!(r.dataset_quality.as_ref().unwrap().teacher_labels, Some(2), "{r}");
    let log = std::fs::read_to_string(d.join("retrain/retrain.log")).unwrap();
    assert!(log.contains("2 teacher labels from models/faq@current"), "{log}");
    let taught = std::fs::read_to_string(d.join("retrain/labels/teacher.jsonl")).unwrap();
    assert!(taught.contains("\"text\":\"my debit card please\",\"label\":\"card\""), "{taught}");

    // Teacher labels need a server.
    std::fs::write(
        d.join("bad.toml"),
        "model = \"faq\"\nkind = \"mlp\"\nbase_data = \"b\"\nholdout = \"h\"\n\
         [labels]\nteacher = \"server\"\n",
    )
    .unwrap();
    let e = RetrainConfig::read(&d.join("bad.toml")).unwrap_err().to_string();
    assert!(e.contains("[labels] reads the server's query log: it needs [server]"), "{e}");
}

#[test]
fn pseudo_labels_are_the_surest_answers_within_their_caps() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let line = |text: &str, label: &str, c: f64| {
        format!(
            "{{\"text\": \"{text}\", \"label\": \"{label}\", \"confidence\": {c}, \"source\": \"pseudo\"}}\n"
        )
    };
    let port = routes_server(vec![
        (
            "source=confident&min_confidence=0.95",
            line("question 950 about my debit card", "card", 0.96)
                + &line("question 951 about my card", "card", 0.99)
                + &line("question 952 about a wire", "transfer", 0.97)
                + &line("question 953 the person labeled", "card", 0.99),
        ),
        (
            "/admin/labeling/export",
            "{\"text\": \"question 953 the person labeled\", \"label\": \"refund\"}\n".into(),
        ),
    ]);
    std::fs::write(d.join("admin.token"), "s3cret").unwrap();
    let cfg = setup(
        d,
        &format!(
            "[server]\nurl = \"http://127.0.0.1:{port}\"\ntoken_file = \"admin.token\"\npull_labels = true\n\
             [labels.pseudo]\nmin_confidence = 0.95\nmax_per_label = 1\n"
        ),
    );
    let r = retrain(&cfg, RunOptions { force: true, notify: false, ..RunOptions::default() }).unwrap();
    assert_eq!(r.status, RunStatus::Deployed, "{r}");
    let q = r.dataset_quality.as_ref().unwrap();
    // One card answer (the surest) and one transfer answer; the person's label wins for 953.
    assert_eq!((q.pseudo_labels, q.teacher_labels, q.total_entries), (Some(2), None, 96 + 1 + 2), "{r}");
    let stored = std::fs::read_to_string(d.join("models/faq/versions/1/data/train.jsonl")).unwrap();
    assert!(stored.contains("question 951 about my card") && !stored.contains("question 950"), "{stored}");
    assert!(stored.contains("\"text\":\"question 953 the person labeled\",\"label\":\"refund\""), "{stored}");
    let log = std::fs::read_to_string(d.join("retrain/retrain.log")).unwrap();
    assert!(log.contains("4 answers of confidence ≥ 0.95 for pseudo-labels"), "{log}");
}

#[test]
fn merge_keep_last_lets_a_newer_label_replace_an_older_one() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let mut cfg = setup(d, "");
    cfg.gate.max_regression = 1.0; // both runs deploy: the stored data is what is compared
    let first = std::fs::read_to_string(d.join("base.jsonl")).unwrap().lines().next().unwrap().to_string();
    let v: serde_json::Value = serde_json::from_str(&first).unwrap();
    let (text, old) = (v["text"].as_str().unwrap().to_string(), v["label"].as_str().unwrap().to_string());
    let new = if old == "card" { "refund" } else { "card" };
    std::fs::write(d.join("new/fix.jsonl"), format!("{{\"text\": \"{text}\", \"label\": \"{new}\"}}\n"))
        .unwrap();
    let stored_label = |cfg: &RetrainConfig| {
        let r = retrain(cfg, RunOptions { force: true, ..RunOptions::default() }).unwrap();
        assert_eq!(r.dataset_quality.as_ref().unwrap().conflicts, 1, "{r}");
        let n = r.versions.candidate.unwrap();
        let stored =
            std::fs::read_to_string(d.join(format!("models/faq/versions/{n}/data/train.jsonl"))).unwrap();
        let line = stored
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .find(|l| l["text"] == text);
        line.unwrap()["label"].as_str().unwrap().to_string()
    };
    assert_eq!(stored_label(&cfg), old, "keep-first: the base data's label");
    let mut last = cfg.clone();
    last.merge = intent_lifecycle::retrain::MergePolicy::KeepLast;
    assert_eq!(stored_label(&last), new, "keep-last: the correction");
}
