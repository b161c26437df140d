//! Model folders written before the workspace was restructured (config.json with `kind` as a
//! string, untyped `architecture` and `training`) still load and predict what they predicted
//! then (`expected.json`). How they were made: `tests/fixtures/v0/README.md`.

use std::path::{Path, PathBuf};

use intent_serve::Classifier;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v0").join(name)
}

/// A copy of a fixture folder inside `parent`, to edit.
fn copy_of(fixture: &Path, parent: &Path) -> PathBuf {
    let dir = parent.join("m");
    std::fs::create_dir(&dir).unwrap();
    for f in std::fs::read_dir(fixture).unwrap() {
        let f = f.unwrap();
        std::fs::copy(f.path(), dir.join(f.file_name())).unwrap();
    }
    dir
}

fn check(name: &str) {
    let dir = fixture(name);
    let model = Classifier::load(&dir).unwrap_or_else(|e| panic!("{name}: {e}"));
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).unwrap()).unwrap();
    let rows = expected.as_array().unwrap();
    assert!(!rows.is_empty());
    for row in rows {
        let text = row["text"].as_str().unwrap();
        let p = model.predict(text).unwrap();
        assert_eq!(p.label, row["label"].as_str().unwrap(), "{name}: {text}");
        let want = row["confidence"].as_f64().unwrap();
        assert!((p.confidence as f64 - want).abs() < 1e-5, "{name}: {text}: {} vs {want}", p.confidence);
    }
}

#[test]
fn an_mlp_folder_of_the_old_layout_loads_and_predicts_as_before() {
    check("mlp");
}

#[test]
fn an_svm_folder_of_the_old_layout_loads_and_predicts_as_before() {
    check("svm");
}

#[test]
fn an_unknown_or_non_classifier_kind_is_named_in_the_error() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = copy_of(&fixture("mlp"), tmp.path());
    let config = std::fs::read_to_string(dir.join("config.json")).unwrap();
    for (kind, needles) in [
        ("perceptron", &["config.json", "unknown variant `perceptron`", "`zero-shot`"][..]),
        ("ncf", &["config.json", "'ncf'", "/v1/recommend"][..]),
    ] {
        std::fs::write(
            dir.join("config.json"),
            config.replace("\"kind\": \"mlp\"", &format!("\"kind\": \"{kind}\"")),
        )
        .unwrap();
        let e = Classifier::load(&dir).unwrap_err().to_string();
        for n in needles {
            assert!(e.contains(n), "{kind}: {n} not in {e}");
        }
    }
}

/// `intent.json` of a fine-tuned BERT folder as written before the architecture was typed.
fn old_intent_json(architecture: serde_json::Value) -> String {
    use intent_testkit::bert::LABELS;
    let vectorizer = serde_json::to_value(intent_data::text::VectorizerConfig::default()).unwrap();
    serde_json::json!({
        "kind": "bert", "format_version": 1, "architecture": architecture,
        "labels": LABELS, "multi_label": false,
        "preprocessing": {
            "tokenizer": "bert", "vectorizer": vectorizer, "vocab_file": "vocab.txt", "vocab_size": 17
        },
        "training": { "options": { "epochs": 3 }, "history": [], "best_epoch": 1, "backend": "flex" },
        "data_hash": "abc", "versions": { "intent": "0.1.0", "burn": "0.21.0" }, "created_unix": 1
    })
    .to_string()
}

#[test]
fn a_bert_folder_with_an_old_intent_json_loads_with_the_head_pooling_it_names() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("clf");
    intent_testkit::bert::write_tiny_classifier(&dir, false);
    let texts = ["hello there", "where is my order", "thanks"];
    let scores = |dir: &Path| Classifier::load(dir).unwrap().scores(&texts).unwrap();
    let bare = scores(&dir);

    // Written before `head_pooling` existed: the pooler, as then.
    std::fs::write(
        dir.join("intent.json"),
        old_intent_json(serde_json::json!({"base": "/b", "max_len": 12})),
    )
    .unwrap();
    let model = Classifier::load(&dir).unwrap();
    assert_eq!(model.config().kind(), intent_models::ModelKind::Bert);
    let intent_models::Architecture::Bert(a) = &model.config().architecture else { panic!("not bert") };
    assert_eq!((a.max_len, a.head_pooling), (Some(12), intent_models::bert::HeadPooling::Pooler));
    assert_eq!(scores(&dir), bare);

    // With `head_pooling: mean` the head reads the mean of the hidden states: other scores.
    let mean = serde_json::json!({"base": "/b", "max_len": 12, "head_pooling": "mean"});
    std::fs::write(dir.join("intent.json"), old_intent_json(mean)).unwrap();
    assert_ne!(scores(&dir), bare);

    // A value that is not a pooling is an error naming the file and the value.
    let bad = serde_json::json!({"max_len": 12, "head_pooling": "max"});
    std::fs::write(dir.join("intent.json"), old_intent_json(bad)).unwrap();
    let e = Classifier::load(&dir).unwrap_err().to_string();
    assert!(e.contains("intent.json") && e.contains("unknown variant `max`"), "{e}");
}

#[test]
fn an_architecture_missing_a_field_is_named_when_config_json_is_read() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = copy_of(&fixture("mlp"), tmp.path());
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    config["architecture"].as_object_mut().unwrap().remove("hidden_size");
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    let e = Classifier::load(&dir).unwrap_err().to_string();
    assert!(e.contains("config.json") && e.contains("missing field `hidden_size`"), "{e}");
}
