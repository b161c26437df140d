//! End-to-end: the `intent` binary on the embedded data and on malformed inputs.

mod common;

use common::{intent, minilm};

use std::path::Path;
use std::process::{Command, Output};

fn text(o: &Output) -> (String, String) {
    (String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned())
}

/// A malformed input gives exit code 2 and a one-line `error:` naming `needle` (file:line), no panic.
fn assert_clean_error(o: &Output, needle: &str) {
    let (out, err) = text(o);
    assert_eq!(o.status.code(), Some(2), "stdout: {out}\nstderr: {err}");
    assert!(!err.contains("panicked"), "{err}");
    let line =
        err.lines().find(|l| l.starts_with("error:")).unwrap_or_else(|| panic!("no error line: {err}"));
    assert!(line.contains(needle), "expected '{needle}' in: {line}");
}

#[test]
fn pipeline_on_embedded_data_then_predict_and_eval() {
    let dir = tempfile::tempdir().unwrap();
    let o = intent(&["pipeline", "--models-dir", "models"], dir.path());
    let (out, err) = text(&o);
    assert!(o.status.success(), "pipeline failed\nstdout: {out}\nstderr: {err}");
    assert!(out.contains("quality gate passed"), "{out}");
    let version = dir.path().join("models/example/versions/1");
    for f in [
        "config.json",
        "model.safetensors",
        "vocab.txt",
        "metrics.json",
        "report/report.json",
        "report/confusion_matrix.svg",
        "data/test.jsonl",
    ] {
        assert!(version.join(f).is_file(), "{f} missing");
    }
    // A second run makes version 2.
    let o = intent(&["pipeline", "--models-dir", "models", "--epochs", "2", "--no-gate"], dir.path());
    assert!(dir.path().join("models/example/versions/2/config.json").is_file(), "{:?}", text(&o));

    let o = intent(
        &[
            "predict",
            "--model",
            "models/example/versions/1",
            "--top-k",
            "2",
            "where is my order",
            "hello there",
        ],
        dir.path(),
    );
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    let lines: Vec<serde_json::Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["label"], "order_status");
    assert_eq!(lines[1]["label"], "greeting");
    assert_eq!(lines[0]["top_k"].as_array().unwrap().len(), 2);
    assert!(lines[0]["confidence"].as_f64().unwrap() > 0.0);

    let o = intent(
        &[
            "eval",
            "--model",
            "models/example/versions/1",
            "--data",
            "models/example/versions/1/data/test.jsonl",
            "--report",
            "rep",
            "--gate",
            "--min-overall",
            "0.5",
            "--min-class",
            "0.0",
        ],
        dir.path(),
    );
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}\n{err}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("rep/report.json")).unwrap()).unwrap();
    for key in ["accuracy", "macro_f1", "weighted_f1", "per_class"] {
        assert!(report.get(key).is_some(), "report.json lacks {key}");
    }
    let html = std::fs::read_to_string(dir.path().join("rep/report.html")).unwrap();
    assert_eq!(html.matches("data:image/svg+xml;base64,").count(), 2, "confusion matrix and histogram");
    assert!(!html.contains("id=\"oos-curve\""), "no threshold was tuned");
    // Tuned on data with out-of-scope rows: the report shows the threshold curve (0, 0.05, …, 1).
    let mut tune =
        std::fs::read_to_string(dir.path().join("models/example/versions/1/data/test.jsonl")).unwrap();
    for t in ["what is the capital of peru", "play some jazz", "how tall is everest", "tell me a joke"] {
        tune.push_str(&format!("{{\"text\": \"{t}\", \"label\": \"oos\"}}\n"));
    }
    std::fs::write(dir.path().join("tune.jsonl"), tune).unwrap();
    let o = intent(
        &[
            "eval",
            "--model",
            "models/example/versions/1",
            "--data",
            "tune.jsonl",
            "--tune-on",
            "tune.jsonl",
            "--report",
            "rep2",
        ],
        dir.path(),
    );
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}\n{err}");
    assert!(dir.path().join("rep2/oos_curve.svg").is_file());
    let html = std::fs::read_to_string(dir.path().join("rep2/report.html")).unwrap();
    let curve =
        html.split("id=\"oos-curve\"").nth(1).expect("the curve table").split("</table>").next().unwrap();
    assert_eq!(curve.matches("<tr>").count(), 1 + 21, "a header and 21 thresholds");
    assert_eq!(html.matches("data:image/svg+xml;base64,").count(), 3);
    // An impossible gate fails with exit 1 and names classes.
    let o = intent(
        &[
            "eval",
            "--model",
            "models/example/versions/1",
            "--data",
            "models/example/versions/1/data/test.jsonl",
            "--gate",
            "--min-overall",
            "1.01",
        ],
        dir.path(),
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).0.contains("quality gate FAILED"));
}

#[test]
fn malformed_inputs_give_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    std::fs::write(p.join("trunc.json"), "{\"tag\": \"greet\",\n \"patterns\": [\"hi\",\n").unwrap();
    std::fs::write(p.join("obj.jsonl"), "{\"text\": \"hi\", \"label\": \"a\"}\n\"just a string\"\n").unwrap();
    std::fs::write(p.join("cols.csv"), "text,category\nhello,greet\nno label column\n").unwrap();
    assert_clean_error(&intent(&["data", "stats", "trunc.json"], p), "trunc.json:3");
    assert_clean_error(&intent(&["data", "stats", "obj.jsonl"], p), "obj.jsonl:2");
    assert_clean_error(&intent(&["data", "stats", "cols.csv"], p), "cols.csv:3");
    assert_clean_error(&intent(&["train", "mlp", "--train", "obj.jsonl", "--out", "m"], p), "obj.jsonl:2");
    assert_clean_error(&intent(&["data", "stats", "missing.jsonl"], p), "missing.jsonl");
    std::fs::create_dir(p.join("banking77")).unwrap();
    assert_clean_error(
        &intent(&["data", "import", "--format", "banking77", "banking77", "--out", "b.jsonl"], p),
        "banking77: a folder; --format banking77 reads one CSV file",
    );
    assert_clean_error(
        &intent(&["train", "mlp", "--train", "cols.csv", "--out", "m", "--device", "tpu"], p),
        "unknown device 'tpu'",
    );

    // --skip-invalid loads the rest.
    let o = intent(&["data", "stats", "obj.jsonl", "--skip-invalid"], p);
    assert!(o.status.success());

    // Unknown label at evaluation.
    let mut train = String::new();
    for i in 0..20 {
        train.push_str(&format!(
            "{{\"text\": \"hello friend {i}\", \"label\": \"greet\"}}\n\
             {{\"text\": \"bye for now {i}\", \"label\": \"bye\"}}\n"
        ));
    }
    std::fs::write(p.join("train.jsonl"), train).unwrap();
    std::fs::write(
        p.join("test.jsonl"),
        "{\"text\": \"hello\", \"label\": \"greet\"}\n{\"text\": \"thanks\", \"label\": \"thanks\"}\n",
    )
    .unwrap();
    let o = intent(
        &["train", "mlp", "--train", "train.jsonl", "--out", "m", "--epochs", "2", "--hidden-size", "8"],
        p,
    );
    assert!(o.status.success(), "{:?}", text(&o));
    assert_clean_error(
        &intent(&["eval", "--model", "m", "--data", "test.jsonl"], p),
        "test.jsonl:2: unknown label 'thanks'",
    );
    assert_clean_error(&intent(&["eval", "--model", "nope", "--data", "test.jsonl"], p), "nope");
    std::fs::write(p.join("nolabel.jsonl"), "{\"text\": \"hello\", \"labels\": []}\n").unwrap();
    assert_clean_error(
        &intent(&["eval", "--model", "m", "--data", "nolabel.jsonl"], p),
        "nolabel.jsonl:1: the model is single-label",
    );
    // An output folder that is not a model is never replaced.
    std::fs::create_dir(p.join("notes")).unwrap();
    std::fs::write(p.join("notes/keep.txt"), "x").unwrap();
    assert_clean_error(
        &intent(&["train", "mlp", "--train", "train.jsonl", "--out", "notes", "--epochs", "1"], p),
        "not a model folder",
    );
    assert!(p.join("notes/keep.txt").exists());
}

#[test]
fn svm_kernel_pipeline_passes_the_gate_then_linear_train_eval_predict() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    let o = intent(&["pipeline", "--model", "svm", "--kernel", "rbf", "--models-dir", "models"], p);
    let (out, err) = text(&o);
    assert!(o.status.success(), "pipeline failed\nstdout: {out}\nstderr: {err}");
    assert!(out.contains("quality gate passed"), "{out}");
    let v1 = p.join("models/example/versions/1");
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(v1.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["kind"], "svm");
    assert_eq!(config["architecture"]["kernel"]["type"], "rbf");

    // The linear SVM on the pipeline's split, with a test report.
    let data = |f: &str| v1.join("data").join(f).to_string_lossy().into_owned();
    let o = intent(
        &[
            "train",
            "svm",
            "--train",
            &data("train.jsonl"),
            "--val",
            &data("val.jsonl"),
            "--test",
            &data("test.jsonl"),
            "--out",
            "lin",
        ],
        p,
    );
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}\n{err}");
    assert!(out.contains("calibration on validation"), "{out}");
    let o = intent(&["predict", "--model", "lin", "where is my order"], p);
    let line: serde_json::Value = serde_json::from_str(text(&o).0.trim()).unwrap();
    assert_eq!(line["label"], "order_status");
    let c = line["confidence"].as_f64().unwrap();
    assert!(c > 0.0 && c <= 1.0, "{line}");
    let o = intent(&["eval", "--model", "lin", "--data", &data("test.jsonl"), "--report", "rep"], p);
    assert!(o.status.success(), "{:?}", text(&o));
    assert!(text(&o).0.contains("ECE"), "calibration error is reported");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(p.join("rep/report.json")).unwrap()).unwrap();
    assert!(report["accuracy"].as_f64().unwrap() > 0.9, "{}", report["accuracy"]);

    // Bad flags name themselves.
    let train = data("train.jsonl");
    assert_clean_error(&intent(&["train", "svm", "--train", &train, "--out", "x", "--c", "0"], p), "--c");
    assert_clean_error(
        &intent(&["train", "svm", "--train", &train, "--out", "x", "--char-ngrams", "5-2"], p),
        "--char-ngrams '5-2'",
    );
    assert_clean_error(
        &intent(&["train", "svm", "--train", &train, "--out", "x", "--kernel", "rbf", "--gamma", "wide"], p),
        "--gamma 'wide'",
    );
    assert!(!p.join("x").exists(), "no model folder after a refused run");
}

#[test]
fn zero_shot_folder_then_eval_and_predict() {
    let encoder = std::path::PathBuf::from(minilm());
    let labels = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data/labels.json");
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    let (m, l) = (encoder.to_string_lossy().into_owned(), labels.to_string_lossy().into_owned());
    let o = intent(&["zero-shot", "--encoder", &m, "--labels", &l, "--out", "zs", "where is my package"], p);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}\n{err}");
    let line: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    assert_eq!(line["label"], "order_status", "{line}");
    let o = intent(&["predict", "--model", "zs", "hello there"], p);
    assert!(text(&o).0.contains("\"label\":\"greeting\""), "{:?}", text(&o));
    std::fs::write(
        p.join("test.jsonl"),
        "{\"text\": \"can I return this book\", \"label\": \"return_item\"}\n\
         {\"text\": \"thanks so much\", \"label\": \"thanks\"}\n",
    )
    .unwrap();
    let o = intent(&["eval", "--model", "zs", "--data", "test.jsonl"], p);
    assert!(o.status.success() && text(&o).0.contains("accuracy"), "{:?}", text(&o));
    // A Hugging Face folder is not an intent model: the error says what to do.
    assert_clean_error(&intent(&["predict", "--model", &m, "hi"], p), "intent zero-shot");
    // Labels are required.
    assert_clean_error(&intent(&["zero-shot", "--encoder", &m, "hi"], p), "--labels");

    // A hub repo id is read from the hub cache ($HF_HOME/hub, the layout Python writes) when
    // HF_HUB_OFFLINE is set; one that is not cached is a clean error saying so.
    let snap = p.join("hf/hub/models--sentence-transformers--all-MiniLM-L6-v2/snapshots/abc123");
    std::fs::create_dir_all(&snap).unwrap();
    std::fs::create_dir_all(p.join("hf/hub/models--sentence-transformers--all-MiniLM-L6-v2/refs")).ok();
    std::fs::write(p.join("hf/hub/models--sentence-transformers--all-MiniLM-L6-v2/refs/main"), "abc123")
        .unwrap();
    for f in [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
        "modules.json",
        "1_Pooling/config.json",
    ] {
        if encoder.join(f).is_file() {
            std::fs::create_dir_all(snap.join(f).parent().unwrap()).unwrap();
            std::os::unix::fs::symlink(encoder.join(f), snap.join(f)).unwrap();
        }
    }
    let hub = |repo: &str| {
        Command::new(env!("CARGO_BIN_EXE_intent"))
            .args(["zero-shot", "--encoder", repo, "--labels", &l, "where is my package"])
            .current_dir(p)
            .env("HF_HOME", p.join("hf"))
            .env("HF_HUB_OFFLINE", "1")
            .env_remove("HF_HUB_CACHE")
            .output()
            .unwrap()
    };
    let o = hub("sentence-transformers/all-MiniLM-L6-v2");
    assert!(o.status.success() && text(&o).0.contains("order_status"), "{:?}", text(&o));
    assert_clean_error(&hub("someone/absent-model"), "HF_HUB_OFFLINE");
}

#[test]
fn train_bert_writes_a_hugging_face_folder_that_predicts() {
    let m = minilm();
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    let rows = [
        ("where is my package", "order_status"),
        ("has my order shipped yet", "order_status"),
        ("track my parcel please", "order_status"),
        ("hello there", "greeting"),
        ("hi, good morning", "greeting"),
        ("hey how are you", "greeting"),
    ];
    let jsonl: String =
        rows.iter().map(|(t, l)| format!("{{\"text\": \"{t}\", \"label\": \"{l}\"}}\n")).collect();
    std::fs::write(p.join("train.jsonl"), jsonl).unwrap();
    let o = intent(
        &[
            "train",
            "bert",
            "--base",
            &m,
            "--train",
            "train.jsonl",
            "--test",
            "train.jsonl",
            "--out",
            "clf",
            "--epochs",
            "3",
            "--batch-size",
            "3",
            "--lr",
            "1e-4",
            "--min-steps",
            "0",
            "--pooling",
            "pooler",
        ],
        p,
    );
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}\n{err}");
    assert!(out.contains("samples/s") && out.contains("accuracy"), "{out}");
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(p.join("clf/config.json")).unwrap()).unwrap();
    assert_eq!(cfg["architectures"][0], "BertForSequenceClassification");
    assert!(p.join("clf/intent.json").is_file() && p.join("clf/tokenizer.json").is_file());
    let o = intent(&["predict", "--model", "clf", "hello"], p);
    assert!(text(&o).0.contains("\"label\":\"greeting\""), "{:?}", text(&o));
    // Bad flags are refused by name, before any training; nothing is written.
    assert_clean_error(
        &intent(
            &["train", "bert", "--base", &m, "--train", "train.jsonl", "--out", "x", "--max-len", "100000"],
            p,
        ),
        "--max-len",
    );
    assert_clean_error(
        &intent(&["train", "bert", "--base", &m, "--train", "train.jsonl", "--out", "x", "--lr", "0"], p),
        "--lr",
    );
    assert_clean_error(
        &intent(&["train", "bert", "--base", "./no-such-model", "--train", "train.jsonl", "--out", "x"], p),
        "--base",
    );
    assert_clean_error(
        &intent(
            &["train", "bert", "--base", &m, "--train", "train.jsonl", "--out", "x", "--max-grad-norm=-1"],
            p,
        ),
        "--max-grad-norm",
    );
    let o = intent(&["train", "bert", "--base", &m, "--train", "train.jsonl", "--out", "x", "--resume"], p);
    assert!(o.status.code() == Some(2) && text(&o).1.contains("--checkpoint-dir"), "{:?}", text(&o));
    assert!(!p.join("x").exists());

    // A run stopped after one epoch writes a checkpoint and no model; `--resume` finishes it,
    // with the same weights as the uninterrupted run above (same seed and flags).
    let base = [
        "train",
        "bert",
        "--base",
        &m,
        "--train",
        "train.jsonl",
        "--out",
        "clf2",
        "--epochs",
        "3",
        "--batch-size",
        "3",
        "--lr",
        "1e-4",
        "--min-steps",
        "0",
        "--pooling",
        "pooler",
        "--checkpoint-dir",
        "ckpt",
    ];
    let o = intent(&[&base[..], &["--stop-after-epochs", "1"]].concat(), p);
    let (out, err) = text(&o);
    assert!(o.status.success() && out.contains("--resume"), "{out}\n{err}");
    assert!(!p.join("clf2").exists() && p.join("ckpt/epoch-1/state.json").is_file());
    let o = Command::new(env!("CARGO_BIN_EXE_intent"))
        .args([&base[..], &["--resume"]].concat())
        .current_dir(p)
        .env("RUST_LOG", "info")
        .output()
        .unwrap();
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}\n{err}");
    assert!(err.contains("resuming from") && err.contains("epoch 1 done"), "{err}");
    let (a, b) = (
        std::fs::read(p.join("clf/model.safetensors")).unwrap(),
        std::fs::read(p.join("clf2/model.safetensors")).unwrap(),
    );
    let (a, b) = (
        safetensors::SafeTensors::deserialize(&a).unwrap(),
        safetensors::SafeTensors::deserialize(&b).unwrap(),
    );
    let mut names = a.names();
    names.sort();
    assert_eq!(names.len(), 105);
    for n in names {
        assert!(
            a.tensor(n).unwrap().data() == b.tensor(n).unwrap().data(),
            "{n}: the resumed run differs from the uninterrupted one"
        );
    }
    assert!(p.join("clf2/metrics.json").is_file());
}

#[test]
fn completions_for_each_shell_name_the_subcommands() {
    let dir = tempfile::tempdir().unwrap();
    for (shell, marker) in
        [("bash", "complete -F _intent"), ("zsh", "#compdef intent"), ("fish", "complete -c intent")]
    {
        let o = intent(&["completions", shell], dir.path());
        let (out, err) = text(&o);
        assert!(o.status.success(), "{shell}: {err}");
        assert!(out.contains(marker), "{shell}: no '{marker}'");
        assert!(out.contains("serve") && out.contains("retrain") && out.contains("model"), "{shell}");
    }
    assert_clean_error(&intent(&["completions", "tcsh"], dir.path()), "tcsh");
}

/// Multi-label data: `data stats` gives the data-size advice, the MLP holds out data for its
/// thresholds by default, and `eval --tune-on` tunes per-label thresholds and with
/// `--save-thresholds` writes them into the folder, which later evaluations then use.
#[test]
fn multi_label_thresholds_are_tuned_saved_and_used() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    let topics = [("card", "my card"), ("transfer", "a transfer"), ("fees", "the fees")];
    let (mut train, mut test) = (String::new(), String::new());
    for i in 0..36 {
        let (a, b) = (i % 3, (i / 3) % 3);
        let mut labels = vec![topics[a].0];
        let mut t = format!("question {i} about {}", topics[a].1);
        if b != a {
            labels.push(topics[b].0);
            t.push_str(&format!(" and {}", topics[b].1));
        }
        let line = serde_json::json!({ "text": t, "labels": labels }).to_string() + "\n";
        if i % 5 == 0 {
            test.push_str(&line)
        } else {
            train.push_str(&line)
        }
    }
    std::fs::write(p.join("train.jsonl"), train).unwrap();
    std::fs::write(p.join("test.jsonl"), test).unwrap();
    let (out, err) = text(&intent(&["data", "stats", "train.jsonl"], p));
    assert!(out.contains("advice: 3 of 3 labels have fewer than 20 examples"), "{out}\n{err}");
    let o = intent(&["train", "mlp", "--train", "train.jsonl", "--out", "m", "--hidden-size", "32"], p);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}\n{err}");
    let config = |p: &Path| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(p.join("m/config.json")).unwrap()).unwrap()
    };
    assert_eq!(config(p)["training"]["thresholds_from"], "holdout", "{}", config(p)["training"]);
    // Tuning on the test file, then saving: the folder's thresholds change to the tuned ones.
    let tuned = intent(&["eval", "--model", "m", "--data", "test.jsonl", "--tune-on", "test.jsonl"], p);
    let (tuned_out, err) = text(&tuned);
    assert!(
        tuned.status.success() && tuned_out.contains("per-label thresholds tuned on"),
        "{tuned_out}\n{err}"
    );
    let before = config(p)["thresholds"].clone();
    let o = intent(
        &["eval", "--model", "m", "--data", "test.jsonl", "--tune-on", "test.jsonl", "--save-thresholds"],
        p,
    );
    assert!(o.status.success() && text(&o).0.contains("thresholds saved in"), "{:?}", text(&o));
    let after = config(p)["thresholds"].clone();
    assert_eq!(after.as_array().unwrap().len(), 3);
    assert!(config(p)["labels"].as_array().unwrap().len() == 3 && config(p)["kind"] == "mlp");
    // A plain evaluation now reports what the tuned one did.
    let (plain, _) = text(&intent(&["eval", "--model", "m", "--data", "test.jsonl"], p));
    let micro = |s: &str| s.lines().find(|l| l.contains("micro F1")).map(str::to_string);
    assert_eq!(micro(&plain), micro(&tuned_out), "before: {before}, after: {after}");
    // Saving into a registry version is refused.
    let o = intent(
        &[
            "eval",
            "--model",
            "models/x@current",
            "--data",
            "test.jsonl",
            "--tune-on",
            "test.jsonl",
            "--save-thresholds",
        ],
        p,
    );
    assert!(!o.status.success());
}
