//! Zero-shot classification with all-MiniLM-L6-v2 (fetched by `cargo xtask fetch-model minilm`):
//! descriptions rank the right label, confidences are a softmax over cosine similarities, the
//! temperature fit lowers the NLL, and a saved folder loads back with identical scores.

use std::path::PathBuf;

use intent_models::bert::SentenceEncoder;
use intent_models::zero_shot::{describe, read_label_descriptions, ZeroShot};
use intent_models::CpuBackend as B;

fn encoder_dir() -> PathBuf {
    let dir = std::env::var_os("INTENT_MINILM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models/all-MiniLM-L6-v2"));
    assert!(
        dir.join("model.safetensors").is_file(),
        "{} has no model: run `cargo xtask fetch-model minilm` first",
        dir.display()
    );
    dir
}

#[test]
fn descriptions_rank_labels_and_the_folder_round_trips() {
    let dir = encoder_dir();
    let enc = SentenceEncoder::<B>::load(&dir, Some(128), &Default::default()).unwrap();
    let labels = vec![
        ("weather".to_string(), "The user asks about the weather forecast, rain or temperature.".to_string()),
        ("card_lost".to_string(), "The user lost their bank card or it was stolen.".to_string()),
        ("greeting".to_string(), "The user says hello.".to_string()),
    ];
    let mut zs = ZeroShot::new(enc, labels, None).unwrap();
    let texts =
        ["will it rain tomorrow in Paris", "I can't find my credit card anywhere", "hi there, good morning"];
    let scores = zs.scores(&texts).unwrap();
    for (r, s) in scores.iter().enumerate() {
        let best = (0..3).max_by(|&a, &b| s[a].total_cmp(&s[b])).unwrap();
        assert_eq!(best, r, "{:?} → {s:?}", texts[r]);
        assert!((s.iter().sum::<f32>() - 1.0).abs() < 1e-5);
    }
    // Cosine similarities are in [−1, 1]; the default temperature is 0.05.
    let sims = zs.similarities(&texts).unwrap();
    assert!(sims.iter().flatten().all(|c| c.abs() <= 1.0 + 1e-5));
    let p = (sims[0][0] / 0.05).exp() / sims[0].iter().map(|c| (c / 0.05).exp()).sum::<f32>();
    assert!((p - scores[0][0]).abs() < 1e-4, "softmax(cos / T): {p} vs {}", scores[0][0]);
    // Fitting the temperature on labeled data (all correct here: the smoothed targets keep T
    // finite, so confidences stay below 1); the ranking is unchanged.
    let t = zs.calibrate(&texts, &[0, 1, 2]).unwrap();
    assert!(t > 2e-3 && t < 500.0, "T = {t}");
    let after = zs.scores(&texts).unwrap();
    for (r, s) in after.iter().enumerate() {
        assert!(s[r] < 1.0 && (0..3).all(|c| c == r || s[c] < s[r]), "{s:?}");
    }
    // Save → load: identical scores, encoder files inside the folder.
    let out = tempfile::tempdir().unwrap();
    let path = out.path().join("zs");
    zs.save(&path, &dir, &serde_json::json!({})).unwrap();
    assert!(path.join("encoder/model.safetensors").is_file());
    let loaded = ZeroShot::<B>::load(&path, &Default::default()).unwrap();
    assert_eq!(loaded.scores(&texts).unwrap(), zs.scores(&texts).unwrap());
    assert_eq!(loaded.config.labels, vec!["weather", "card_lost", "greeting"]);
}

#[test]
fn label_files_and_templates() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("labels.json");
    std::fs::write(&p, r#"{"b": "second", "a": "first"}"#).unwrap();
    assert_eq!(
        read_label_descriptions(&p).unwrap(),
        vec![("a".into(), "first".into()), ("b".into(), "second".into())]
    );
    std::fs::write(&p, r#"{"a": "first"}"#).unwrap();
    assert!(read_label_descriptions(&p).unwrap_err().to_string().contains("at least two"));
    std::fs::write(&p, r#"["a", "b"]"#).unwrap();
    assert!(read_label_descriptions(&p).unwrap_err().to_string().contains("labels.json"));
    let d = describe(&["card_arrival".to_string()], "This question is about {label}");
    assert_eq!(d[0].1, "This question is about card arrival");
    // The project's example labels file describes the embedded intents.
    let ex =
        read_label_descriptions(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data/labels.json"))
            .unwrap();
    assert_eq!(ex.len(), 15);
}
