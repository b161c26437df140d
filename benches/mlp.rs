#![allow(missing_docs)] // criterion's macros generate undocumented public functions
//! Criterion benchmarks of the bag-of-words MLP on BANKING77: one training epoch with the
//! playbook's settings (4×512, dropout 0.45, batch 64) and prediction latency (one query, a
//! batch of 32). The data set is read from `$INTENT_DATASETS/banking77` (default
//! `../shared/datasets`); without it the benchmarks are skipped with a message. Each training
//! iteration includes fitting the vocabulary (a few milliseconds).

use std::path::PathBuf;

use burn::backend::{Autodiff, Flex};
use criterion::{criterion_group, criterion_main, Criterion};
use intent::data::import::load_labeled_csv;
use intent::data::Dataset;
use intent::train::{train_mlp, EngineConfig, MlpOptions};

fn banking77() -> Option<(Dataset, Dataset)> {
    let root = std::env::var_os("INTENT_DATASETS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("../shared/datasets"));
    let dir = root.join("banking77");
    let train = load_labeled_csv(&dir.join("train.csv"), &Default::default()).ok()?.data;
    let test = load_labeled_csv(&dir.join("test.csv"), &Default::default()).ok()?.data;
    Some((train, test))
}

/// The playbook's recipe: 4×512, dropout 0.45, AdamW lr 3e-3, weight decay 1e-4, batch 64.
fn options(epochs: usize) -> MlpOptions {
    MlpOptions {
        hidden_size: 512,
        hidden_layers: 4,
        dropout: 0.45,
        engine: EngineConfig { epochs, patience: None, progress: false, ..Default::default() },
        ..Default::default()
    }
}

fn benches(c: &mut Criterion) {
    // Like `intent train`, one thread unless RAYON_NUM_THREADS says otherwise (see README).
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        let _ = rayon::ThreadPoolBuilder::new().num_threads(1).build_global();
    }
    let Some((train, test)) = banking77() else {
        eprintln!("BANKING77 not found (set INTENT_DATASETS to the shared datasets folder); skipping");
        return;
    };
    let device = Default::default();
    let mut g = c.benchmark_group("mlp_banking77");
    g.sample_size(10);
    g.bench_function("train_epoch_4x512_b64", |b| {
        b.iter(|| train_mlp::<Autodiff<Flex>>(&train, None, &options(1), &device).expect("trains"))
    });
    g.finish();

    let model = train_mlp::<Autodiff<Flex>>(&train, None, &options(1), &device).expect("trains").model;
    let texts = test.texts();
    let mut g = c.benchmark_group("mlp_predict");
    g.bench_function("single", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % texts.len();
            model.scores(&texts[i..i + 1])
        })
    });
    g.bench_function("batch32", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 32) % (texts.len() - 32);
            model.scores(&texts[i..i + 32])
        })
    });
    g.finish();
}

criterion_group!(mlp, benches);
criterion_main!(mlp);
