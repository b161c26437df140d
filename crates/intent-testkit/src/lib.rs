//! Fixtures shared by the tests of the intent crates: a small keyword data set, a tiny trained
//! MLP folder, the retrain setup, and a tiny BERT folder. A dev-dependency only.

use std::path::{Path, PathBuf};

use intent_data::{Dataset, Example};
use intent_train::{train_mlp_to_dir, DeviceSpec, EngineConfig, MlpOptions};

pub mod bert;
pub mod http;
#[cfg(unix)]
pub mod postgres;

/// The keywords of the four labels of [`synthetic`] and [`keyword_data`].
pub const KEYWORDS: [[&str; 4]; 4] = [
    ["card", "debit", "plastic", "chip"],
    ["transfer", "send", "wire", "payee"],
    ["refund", "return", "money", "back"],
    ["password", "login", "reset", "locked"],
];

/// Four intents with their own keywords; `n` examples each.
pub fn synthetic(n: usize) -> Dataset {
    let fillers = ["please", "my", "the", "i", "need", "help", "with", "now", "today", "can", "you"];
    let mut v = Vec::new();
    for (label, words) in KEYWORDS.iter().enumerate() {
        for j in 0..n {
            let text = format!(
                "{} {} {} {}",
                fillers[j % fillers.len()],
                words[j % 4],
                fillers[(j * 7 + 3) % fillers.len()],
                words[(j / 4 + 1) % 4]
            );
            v.push(Example::new(text, ["card", "transfer", "refund", "password"][label]));
        }
    }
    Dataset::new(v)
}

/// Four labels (`label_0` … `label_3`), each with its own keywords among shared filler words:
/// `n` examples per label, five words each, starting at example `offset` of each label (so
/// two offsets give disjoint training and test texts). Separable by keywords alone.
pub fn keyword_data(n: usize, offset: usize) -> Dataset {
    let fillers = ["please", "my", "the", "i", "need", "help", "with", "now", "today", "can", "you"];
    let mut v = Vec::new();
    for (label, words) in KEYWORDS.iter().enumerate() {
        for i in 0..n {
            let j = i + offset;
            let text = format!(
                "{} {} {} {} {}",
                fillers[j % fillers.len()],
                words[j % 4],
                fillers[(j * 7 + 3) % fillers.len()],
                words[(j / 4 + 1) % 4],
                fillers[(j * 3 + 1) % fillers.len()]
            );
            v.push(Example::new(text, format!("label_{label}")));
        }
    }
    Dataset::new(v)
}

/// Trains a small MLP on `data` into `out` (seeded, a second or so).
pub fn train_on(data: &Dataset, out: &Path, seed: u64) -> PathBuf {
    let opts = MlpOptions {
        hidden_size: 16,
        engine: EngineConfig {
            epochs: 10,
            batch_size: 16,
            lr: 1e-2,
            patience: None,
            seed,
            progress: false,
            ..Default::default()
        },
        ..Default::default()
    };
    train_mlp_to_dir(DeviceSpec::Cpu, data, None, &opts, out).expect("training the test model");
    out.to_path_buf()
}

/// A trained test model in `dir/name`.
pub fn model(dir: &Path, name: &str, seed: u64) -> PathBuf {
    train_on(&synthetic(24), &dir.join(name), seed)
}

/// Writes the retrain scenario into `dir`: base data (24 of every 40 synthetic examples per
/// label), a held-out set with the other texts, an empty `new/` folder, and `retrain.toml` for
/// registry model `faq` (MLP, quick settings) with `extra` appended. Returns the config path.
pub fn retrain_setup(dir: &Path, extra: &str) -> PathBuf {
    let all = synthetic(40);
    let (mut base, mut holdout) = (Vec::new(), Vec::new());
    for (i, e) in all.examples.into_iter().enumerate() {
        if i % 40 < 24 {
            base.push(e)
        } else {
            holdout.push(e)
        }
    }
    intent_data::write_dataset(&dir.join("base.jsonl"), &Dataset::new(base)).unwrap();
    intent_data::write_dataset(&dir.join("holdout.jsonl"), &Dataset::new(holdout)).unwrap();
    std::fs::create_dir_all(dir.join("new")).unwrap();
    let toml = format!(
        "model = \"faq\"\nkind = \"mlp\"\nbase_data = \"base.jsonl\"\nnew_data = [\"new\"]\n\
         holdout = \"holdout.jsonl\"\n\
         [triggers]\nmin_days = 30\nmin_new_samples = 50\n[gate]\nmin_overall = 0.5\nmax_regression = 0.05\n\
         [train]\nhidden_size = 16\n[train.engine]\nepochs = 10\nbatch_size = 16\nlr = 0.01\nseed = 3\n\
         {extra}"
    );
    let path = dir.join("retrain.toml");
    std::fs::write(&path, toml).unwrap();
    path
}

/// `n` new examples with texts the synthetic base data does not have (labels rotated when
/// `shuffled`, to make a worse candidate).
pub fn new_examples(n: usize, shuffled: bool) -> Dataset {
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
