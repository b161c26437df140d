//! `intent train ncf` → `intent eval` → `intent recommend` on seeded synthetic interactions
//! (JSON and MovieLens `u.data`); the folder reproduces the training-time figures; bad inputs
//! are clean errors.

mod common;

use common::*;

use std::collections::HashSet;

use intent_data::formats::interactions::write_interactions;
use intent_data::recsys::synthetic_interactions;

/// `HR@10 x  NDCG@10 y` in a line.
fn figures(out: &str) -> (String, String) {
    let words: Vec<&str> = out.split_whitespace().collect();
    let at = |key: &str| {
        words[words.iter().position(|w| *w == key).unwrap_or_else(|| panic!("{key} in {out}")) + 1]
            .to_string()
    };
    (at("HR@10"), at("NDCG@10"))
}

#[test]
fn train_eval_recommend() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = synthetic_interactions(120, 60, 10, 4, 5);
    write_interactions(&d.join("inter.json"), &data).unwrap();
    let out = ok(&intent(
        &[
            "train",
            "ncf",
            "--train",
            "inter.json",
            "--out",
            "m",
            "--epochs",
            "4",
            "--lr",
            "0.005",
            "--batch-size",
            "64",
            "--hidden-layers",
            "16,8",
            "--factors",
            "8",
            "--test-negatives",
            "30",
        ],
        d,
    ));
    assert!(out.contains("120 users, 60 items"), "{out}");
    let trained = figures(&out);
    for f in ["config.json", "model.safetensors", "ids.json", "split.json", "metrics.json"] {
        assert!(d.join("m").join(f).is_file(), "{f}");
    }
    // Save → load: the folder gives the same figures.
    let out = ok(&intent(&["eval", "--model", "m", "--report", "r"], d));
    assert_eq!(figures(&out), trained, "{out}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("r/report.json")).unwrap()).unwrap();
    assert_eq!((report["k"].as_u64(), report["test_negatives"].as_u64()), (Some(10), Some(30)));
    assert_eq!(format!("{:.4}", report["hr@10"].as_f64().unwrap()), trained.0);
    assert!(report["ndcg@10"].as_f64().unwrap() <= report["hr@10"].as_f64().unwrap());
    // Full ranking: among every unseen item (50 per user here) instead of 30 sampled ones.
    let out = ok(&intent(&["eval", "--model", "m", "--full-ranking"], d));
    assert!(out.contains("full ranking"), "{out}");
    let full: f64 = figures(&out).0.parse().unwrap();
    assert!(full <= trained.0.parse::<f64>().unwrap() + 1e-9, "{out}");

    // Recommendations: k lines, never an item the user trained on, best first.
    let out = ok(&intent(&["recommend", "--model", "m", "--user", "u7", "-k", "5"], d));
    let recs: Vec<serde_json::Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(recs.len(), 5);
    let split: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("m/split.json")).unwrap()).unwrap();
    let ids: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("m/ids.json")).unwrap()).unwrap();
    let u7 = ids["users"].as_array().unwrap().iter().position(|u| u == "u7").unwrap() as u64;
    let seen: HashSet<&str> = split["train"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p[0] == u7)
        .map(|p| ids["items"][p[1].as_u64().unwrap() as usize].as_str().unwrap())
        .collect();
    assert!(seen.len() >= 8);
    assert!(recs.iter().all(|r| !seen.contains(r["item"].as_str().unwrap())), "{out}");
    assert!(recs.windows(2).all(|w| w[0]["score"].as_f64() >= w[1]["score"].as_f64()));
    fails_with(&intent(&["recommend", "--model", "m", "--user", "nobody"], d), "unknown user 'nobody'");
    let out =
        ok(&intent(&["recommend", "--model", "m", "--user", "nobody", "-k", "3", "--popular-fallback"], d));
    assert_eq!(out.lines().count(), 3);

    // The registry takes the folder; the alias works wherever a folder does.
    ok(&intent(&["models", "register", "recs", "m", "--promote"], d));
    let listed = ok(&intent(&["models", "list", "recs"], d));
    assert!(listed.lines().any(|l| l.contains("ncf") && l.contains("current")), "{listed}");
    let out = ok(&intent(&["eval", "--model", "models/recs@current"], d));
    assert_eq!(figures(&out), trained, "{out}");
    let via_alias =
        ok(&intent(&["recommend", "--model", "models/recs@current", "--user", "u7", "-k", "5"], d));
    let again = ok(&intent(&["recommend", "--model", "m", "--user", "u7", "-k", "5"], d));
    assert_eq!(via_alias, again);
    fails_with(&intent(&["recommend", "--model", "models/recs@nothing", "--user", "u7"], d), "nothing");

    // The shared burn engine on the CPU trains the same model (to rounding) as the host loop.
    let args = [
        "train",
        "ncf",
        "--train",
        "inter.json",
        "--epochs",
        "2",
        "--batch-size",
        "64",
        "--hidden-layers",
        "16,8",
        "--test-negatives",
        "30",
    ];
    let host = ok(&intent(&[&args[..], &["--out", "h"]].concat(), d));
    let burn = ok(&intent(&[&args[..], &["--out", "b", "--engine", "burn"]].concat(), d));
    let (h, b) = (figures(&host), figures(&burn));
    let close = |x: &str, y: &str| (x.parse::<f64>().unwrap() - y.parse::<f64>().unwrap()).abs() <= 0.02;
    assert!(close(&h.0, &b.0) && close(&h.1, &b.1), "host {host} burn {burn}");
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("b/config.json")).unwrap()).unwrap();
    assert_eq!(config["training"]["engine"], "burn on cpu");
    fails_with(
        &intent(
            &[
                "train",
                "ncf",
                "--train",
                "inter.json",
                "--out",
                "x",
                "--engine",
                "host",
                "--device",
                "ndarray",
            ],
            d,
        ),
        "--engine host runs on the CPU only",
    );

    // Bad inputs.
    fails_with(&intent(&["eval", "--model", "m", "--data", "inter.json"], d), "leave --data out");
    fails_with(
        &intent(&["train", "ncf", "--train", "inter.json", "--out", "x", "--hidden-layers", "15,8"], d),
        "must be even",
    );
    fails_with(
        &intent(
            &[
                "train",
                "ncf",
                "--train",
                "inter.json",
                "--out",
                "x",
                "--model",
                "gmf",
                "--pretrain-gmf",
                "m",
                "--pretrain-mlp",
                "m",
            ],
            d,
        ),
        "--model neumf",
    );
    std::fs::write(d.join("u.data"), "1\t2\t5\t881250949\n1\t3\tfive\t881250950\n").unwrap();
    fails_with(&intent(&["train", "ncf", "--train", "u.data", "--out", "x"], d), "u.data:2: rating 'five'");
}

#[test]
fn movielens_file_and_pretraining() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = synthetic_interactions(80, 40, 8, 4, 9);
    let mut lines = String::new();
    for i in &data.interactions {
        lines.push_str(&format!("{}\t{}\t4\t{}\n", &i.user_id[1..], &i.item_id[1..], i.timestamp.unwrap()));
    }
    std::fs::write(d.join("u.data"), lines).unwrap();
    let common = ["--train", "u.data", "--epochs", "2", "--hidden-layers", "16,8", "--test-negatives", "20"];
    for (kind, out) in [("gmf", "g"), ("mlp", "p")] {
        ok(&intent(&[&["train", "ncf", "--model", kind, "--out", out][..], &common[..]].concat(), d));
    }
    let out = ok(&intent(
        &[&["train", "ncf", "--out", "n", "--pretrain-gmf", "g", "--pretrain-mlp", "p"][..], &common[..]]
            .concat(),
        d,
    ));
    assert!(out.contains("80 users, 40 items"), "{out}");
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("n/config.json")).unwrap()).unwrap();
    assert_eq!(config["architecture"]["kind"], "neumf");
    assert!(config["training"]["pretrained"][0].as_str().unwrap().ends_with('g'));
    // Other data than the pre-trained models': refused.
    let other = synthetic_interactions(30, 40, 8, 4, 1);
    write_interactions(&d.join("other.json"), &other).unwrap();
    fails_with(
        &intent(
            &[
                "train",
                "ncf",
                "--train",
                "other.json",
                "--out",
                "x",
                "--test-negatives",
                "20",
                "--pretrain-gmf",
                "g",
                "--pretrain-mlp",
                "p",
            ],
            d,
        ),
        "other users or items",
    );
    fails_with(
        &intent(&["train", "ncf", "--train", "other.json", "--out", "x"], d),
        "invalid --test-negatives: 99: user index 0 has only 32 items left",
    );
}
