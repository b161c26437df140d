//! Model folders written before the workspace was restructured (config.json with `kind` as a
//! string, untyped `architecture` and `training`) still load and predict what they predicted
//! then (`expected.json`). How they were made: `tests/fixtures/v0/README.md`.

use std::path::{Path, PathBuf};

use intent_serve::Classifier;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v0").join(name)
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
    let dir = tmp.path().join("m");
    std::fs::create_dir(&dir).unwrap();
    for f in std::fs::read_dir(fixture("mlp")).unwrap() {
        let f = f.unwrap();
        std::fs::copy(f.path(), dir.join(f.file_name())).unwrap();
    }
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
