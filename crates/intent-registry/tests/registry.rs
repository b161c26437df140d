//! The registry: monotonic immutable versions with their metadata, aliases that move atomically
//! with a log, promote/rollback, gc that spares aliased versions, the lock, and cleanup of what
//! an interrupted change leaves.

use std::path::Path;

use intent_data::text::VectorizerConfig;
use intent_models::folder::{write_json, FORMAT_VERSION};
use intent_models::{ModelConfig, Preprocessing, Versions};
use intent_registry::Registry;

/// A minimal model folder (config and metrics; the registry does not read weights).
fn fake_model(dir: &Path, data_hash: &str, accuracy: f64) {
    std::fs::create_dir_all(dir.join("report")).unwrap();
    let config = ModelConfig {
        architecture: intent_models::Architecture::Mlp(intent_models::MlpArchitecture {
            input_dim: 2,
            hidden_size: 4,
            hidden_layers: 1,
            dropout: 0.0,
            num_classes: 2,
        }),
        format_version: FORMAT_VERSION,
        labels: vec!["a".into(), "b".into()],
        multi_label: false,
        thresholds: None,
        oos: None,
        preprocessing: Preprocessing {
            tokenizer: "unicode-words".into(),
            vectorizer: VectorizerConfig::default(),
            vocab_file: "vocab.txt".into(),
            vocab_size: 2,
        },
        training: serde_json::json!({ "epochs": 3 }),
        data_hash: data_hash.into(),
        versions: Versions::default(),
        created_unix: 0,
    };
    write_json(dir, "config.json", &config).unwrap();
    write_json(dir, "metrics.json", &serde_json::json!({ "accuracy": accuracy })).unwrap();
    std::fs::write(dir.join("report/report.md"), "# report").unwrap();
}

#[test]
fn versions_aliases_promote_rollback_gc() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = Registry::new(tmp.path().join("models"));
    let m = reg.model("faq").unwrap();
    let lock = m.lock().unwrap();
    for (i, acc) in [0.8, 0.85, 0.9].iter().enumerate() {
        let src = tmp.path().join(format!("src{i}"));
        fake_model(&src, &format!("hash{i}"), *acc);
        let n = m.register(&lock, &src, (i > 0).then_some(i as u32), Some(format!("run {i}"))).unwrap();
        assert_eq!(n, i as u32 + 1);
    }
    assert_eq!(reg.models().unwrap(), vec!["faq"]);
    let v2 = m.version(2).unwrap();
    assert_eq!((v2.parent, v2.kind.as_str(), v2.data_hash.as_str()), (Some(1), "mlp", "hash1"));
    assert_eq!(v2.metrics["accuracy"], 0.85);
    assert_eq!(v2.params["epochs"], 3);
    assert!(m.version_dir(2).join("report/report.md").is_file(), "sub-folders are copied");

    m.promote(&lock, 1, "first").unwrap();
    m.promote(&lock, 2, "better").unwrap();
    assert_eq!((m.alias("current").unwrap(), m.alias("previous").unwrap()), (Some(2), Some(1)));
    assert_eq!(m.rollback(&lock, "regression").unwrap(), 1);
    assert_eq!((m.alias("current").unwrap(), m.alias("previous").unwrap()), (Some(1), Some(2)));
    let history = m.history().unwrap();
    let moves: Vec<(&str, Option<u32>, Option<u32>, &str)> =
        history.iter().map(|h| (h.alias.as_str(), h.from, h.to, h.reason.as_str())).collect();
    assert_eq!(
        moves,
        vec![
            ("current", None, Some(1), "first"),
            ("previous", None, Some(1), "better"),
            ("current", Some(1), Some(2), "better"),
            ("previous", Some(1), Some(2), "regression"),
            ("current", Some(2), Some(1), "regression"),
        ]
    );
    assert!(m.set_alias(&lock, "current", 9, "x").unwrap_err().to_string().contains("no version 9"));
    assert!(m.promote(&lock, 9, "x").unwrap_err().to_string().contains("no version 9"));
    assert_eq!(m.history().unwrap().len(), 5, "a refused promote logs nothing");
    assert_eq!(m.alias("current").unwrap(), Some(1), "a refused move changes nothing");

    // Restoring puts both aliases back exactly, removing one that did not exist before.
    let before = m.aliases().unwrap();
    m.promote(&lock, 1, "same").unwrap();
    m.set_alias(&lock, "previous", 1, "moved").unwrap();
    m.restore_aliases(&lock, &before, "undo").unwrap();
    assert_eq!(m.aliases().unwrap(), before);
    let only_current: std::collections::BTreeMap<String, u32> = [("current".to_string(), 2)].into();
    m.restore_aliases(&lock, &only_current, "undo").unwrap();
    assert_eq!(m.aliases().unwrap(), only_current);
    let last = m.history().unwrap().pop().unwrap();
    assert_eq!((last.alias.as_str(), last.from, last.to), ("current", Some(1), Some(2)));
    m.restore_aliases(&lock, &before, "undo").unwrap();
    assert_eq!(m.aliases().unwrap(), before);
    let n = m.history().unwrap().len();

    assert!(n > 5);
    // gc keeps the newest and every aliased version.
    assert_eq!(m.gc(&lock, 1).unwrap(), Vec::<u32>::new());
    let src = tmp.path().join("src3");
    fake_model(&src, "hash3", 0.95);
    assert_eq!(m.register(&lock, &src, Some(1), None).unwrap(), 4);
    m.promote(&lock, 4, "retrain").unwrap();
    assert_eq!(m.gc(&lock, 1).unwrap(), vec![2, 3]);
    assert_eq!(m.version_numbers().unwrap(), vec![1, 4]);
    // Numbers never come back, even after the newest is removed.
    assert_eq!(m.register(&lock, &src, Some(4), None).unwrap(), 5);
    assert_eq!(m.gc(&lock, 0).unwrap(), vec![5]);
    assert_eq!(m.register(&lock, &src, Some(4), None).unwrap(), 6);
}

#[test]
fn lock_cleanup_and_bad_inputs() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = Registry::new(tmp.path());
    let m = reg.model("faq").unwrap();
    let lock = m.lock().unwrap();
    let err = m.lock().unwrap_err().to_string();
    assert!(err.contains(".lock") && err.contains("another process"), "{err}");

    // Leftovers of a crash: a staging folder, a trash folder, a temporary alias file.
    let src = tmp.path().join("src");
    fake_model(&src, "h", 0.9);
    m.register(&lock, &src, None, None).unwrap();
    std::fs::create_dir_all(m.dir().join(".staging-2")).unwrap();
    std::fs::create_dir_all(m.dir().join(".trash-7/x")).unwrap();
    std::fs::create_dir_all(m.dir().join("aliases")).unwrap();
    std::fs::write(m.dir().join("aliases/.current.tmp-42"), "1").unwrap();
    assert_eq!(m.version_numbers().unwrap(), vec![1], "leftovers are never versions");
    assert_eq!(m.aliases().unwrap().len(), 0, "nor aliases");
    assert_eq!(m.cleanup(&lock).unwrap().len(), 3);
    assert!(!m.dir().join(".staging-2").exists() && !m.dir().join(".trash-7").exists());
    // Numbering goes on from the counter; the lock is free again once dropped.
    drop(lock);
    let lock = m.lock().unwrap();
    assert_eq!(m.register(&lock, &src, None, None).unwrap(), 2);

    let e = m.register(&lock, tmp.path(), None, None).unwrap_err().to_string();
    assert!(e.contains("not a model folder"), "{e}");
    std::fs::write(m.dir().join("aliases/current"), "two").unwrap();
    let e = m.alias("current").unwrap_err().to_string();
    assert!(e.contains("expected a version number"), "{e}");
    for bad in ["", "../x", ".hidden", "a/b"] {
        assert!(reg.model(bad).is_err(), "{bad}");
    }
    assert!(m.rollback(&lock, "x").is_err());
}

#[test]
fn a_symlinked_file_is_copied_and_a_dangling_link_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = Registry::new(tmp.path().join("models"));
    let m = reg.model("faq").unwrap();
    let lock = m.lock().unwrap();
    let src = tmp.path().join("src");
    fake_model(&src, "h", 0.9);
    // The weights live elsewhere and the folder links to them.
    let weights = tmp.path().join("elsewhere.safetensors");
    std::fs::write(&weights, b"weights").unwrap();
    std::os::unix::fs::symlink(&weights, src.join("model.safetensors")).unwrap();
    let n = m.register(&lock, &src, None, None).unwrap();
    let copied = m.version_dir(n).join("model.safetensors");
    assert!(!copied.symlink_metadata().unwrap().file_type().is_symlink());
    assert_eq!(std::fs::read(&copied).unwrap(), b"weights");
    // The version does not change when the file it was linked from does.
    std::fs::write(&weights, b"other").unwrap();
    assert_eq!(std::fs::read(&copied).unwrap(), b"weights");

    // A link to nothing: refused, naming it, and no version appears.
    std::fs::remove_file(src.join("model.safetensors")).unwrap();
    std::os::unix::fs::symlink(tmp.path().join("missing"), src.join("model.safetensors")).unwrap();
    let e = m.register(&lock, &src, None, None).unwrap_err().to_string();
    assert!(e.contains("model.safetensors") && e.contains("link"), "{e}");
    assert_eq!(m.version_numbers().unwrap(), vec![n]);
}
