//! A Rasa project's `nlu.yml` imports (intents, entity annotations stripped, synonyms kept as
//! outcome synonyms), trains and evaluates end to end; interactions with ISO-8601 timestamps
//! load and validate.

mod common;

use common::*;

use std::path::{Path, PathBuf};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/rasa/nlu.yml")
}

#[test]
fn a_rasa_nlu_file_imports_trains_and_evaluates() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let nlu = fixture();
    let out = ok(&intent(
        &[
            "data",
            "import",
            "--format",
            "rasa",
            nlu.to_str().unwrap(),
            "--out",
            "data.jsonl",
            "--outcomes-out",
            "outcomes",
        ],
        d,
    ));
    assert!(out.contains("data.jsonl: 60 examples, 8 labels"), "{out}");
    let rows: Vec<serde_json::Value> = std::fs::read_to_string(d.join("data.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let texts: Vec<&str> = rows.iter().map(|r| r["text"].as_str().unwrap()).collect();
    // Entity annotations are reduced to their text; examples with metadata are read too.
    assert!(texts.contains(&"how much is left on my credit card"), "{texts:?}");
    assert!(texts.contains(&"balance of my checking account please"));
    assert!(texts.contains(&"what are your opening hours"));
    assert!(!texts.iter().any(|t| t.contains('[') || t.contains('{')), "{texts:?}");
    assert!(rows.iter().any(|r| r["label"] == "faq/opening_hours"));
    // The synonym block and the annotation values became synonyms of the intent that uses them.
    let balance: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("outcomes/check_balance.json")).unwrap())
            .unwrap();
    let syn = &balance["synonyms"];
    assert_eq!(syn["credit card"], serde_json::json!(["credit", "credit card account"]), "{syn}");
    assert_eq!(syn["checking"], serde_json::json!(["current"]), "{syn}");
    assert!(d.join("outcomes/faq_opening_hours.json").is_file());
    // The outcome folder feeds augmentation.
    ok(&intent(
        &["data", "augment", "--train", "data.jsonl", "--outcomes", "outcomes", "--out", "augmented.jsonl"],
        d,
    ));

    // Trained straight from the YAML (the format is detected), then evaluated on new sentences.
    std::fs::write(
        d.join("test.jsonl"),
        [
            ("hello there", "greet"),
            ("bye bye", "goodbye"),
            ("yes of course", "affirm"),
            ("no thanks", "deny"),
            ("I am so happy", "mood_great"),
            ("I feel sad", "mood_unhappy"),
            ("what is my balance", "check_balance"),
            ("when do you open", "faq/opening_hours"),
        ]
        .iter()
        .map(|(t, l)| format!("{}\n", serde_json::json!({"text": t, "label": l})))
        .collect::<String>(),
    )
    .unwrap();
    let nlu_arg = nlu.to_str().unwrap();
    ok(&intent(&["train", "mlp", "--train", nlu_arg, "--out", "model", "--epochs", "40", "--seed", "3"], d));
    let out = ok(&intent(&["eval", "--model", "model", "--data", "test.jsonl", "--report", "report"], d));
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("report/report.json")).unwrap()).unwrap();
    let accuracy = report["accuracy"].as_f64().unwrap_or_else(|| panic!("{report}"));
    assert!(accuracy >= 0.75, "accuracy {accuracy} on the new sentences\n{out}");
}

#[test]
fn bad_rasa_files_name_the_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for (name, text, needle) in [
        ("bad_line.yml", "nlu:\n- intent: greet\n  examples: |\n    - hi\n    hello\n", "bad_line.yml:5"),
        ("no_examples.yml", "nlu:\n- intent: greet\n", "intent 'greet' has no `examples`"),
        ("stories.yml", "version: \"3.1\"\nstories: []\n", "no `nlu:` section"),
        ("broken.yml", "nlu:\n- intent: [unclosed\n", "broken.yml:"),
    ] {
        std::fs::write(d.join(name), text).unwrap();
        let o = intent(&["data", "import", "--format", "rasa", name, "--out", "x.jsonl"], d);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{name}: {err}");
        assert!(err.contains(needle) && !err.contains("panicked"), "{name}: {err}");
    }
}

#[test]
fn interactions_with_iso_timestamps_load_and_validate() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // The interactions example of the multi-label/NCF seed, extended to a few users.
    let mut rows = Vec::new();
    for u in 0..6 {
        for i in 0..6 {
            rows.push(serde_json::json!({
                "user_id": format!("user_{u:03}"), "item_id": format!("item_{:03}", (u * 7 + i * 3) % 11),
                "timestamp": format!("2024-01-{:02}T10:30:00", 10 + i), "interaction_type": "purchase",
                "implicit_rating": 1.0
            }));
        }
    }
    let file = serde_json::json!({"metadata": {"num_users": 6, "num_items": 11, "num_interactions": 36,
        "density": 0.5}, "interactions": rows});
    std::fs::write(d.join("interactions.json"), file.to_string()).unwrap();
    let out = ok(&intent(&["data", "validate", "interactions.json"], d));
    assert!(out.contains("36 interactions, 6 users"), "{out}");
    // A negative rating is an error (exit 1), found by the same command with the flag.
    std::fs::write(
        d.join("bad.json"),
        file.to_string().replacen("\"implicit_rating\":1.0", "\"implicit_rating\":-1.0", 1),
    )
    .unwrap();
    let o = intent(&["data", "validate", "--interactions", "bad.json"], d);
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(out.contains("implicit_rating -1"), "{out}");
    // And an NCF model trains on it.
    ok(&intent(
        &[
            "train",
            "ncf",
            "--train",
            "interactions.json",
            "--out",
            "ncf",
            "--epochs",
            "2",
            "--test-negatives",
            "3",
        ],
        d,
    ));
}
