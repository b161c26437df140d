#![allow(missing_docs)] // criterion's macros generate undocumented public functions
//! Criterion benchmarks of the linear SVM on BANKING77: fitting (TF-IDF features + solver, what
//! scikit-learn's `TfidfVectorizer().fit_transform` + `LinearSVC().fit` do; and with the
//! hold-out calibration `intent train svm` adds without validation data), and prediction
//! latency through the serving path (`Classifier::predict`: features, decision values,
//! calibration, top 3) for one query and a batch of 32. The data set is read from
//! `$INTENT_DATASETS/banking77` (default `../shared/datasets`); without it the benchmarks are
//! skipped with a message.

use std::path::PathBuf;

use criterion::{criterion_group, criterion_main, Criterion};
use intent::data::import::load_labeled_csv;
use intent::data::Dataset;
use intent::serve::Classifier;
use intent::train::{train_svm, SvmOptions};

fn banking77() -> Option<(Dataset, Dataset)> {
    let root = std::env::var_os("INTENT_DATASETS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("../shared/datasets"));
    let dir = root.join("banking77");
    let train = load_labeled_csv(&dir.join("train.csv"), &Default::default()).ok()?.data;
    let test = load_labeled_csv(&dir.join("test.csv"), &Default::default()).ok()?.data;
    Some((train, test))
}

fn benches(c: &mut Criterion) {
    let Some((train, test)) = banking77() else {
        eprintln!("BANKING77 not found (set INTENT_DATASETS to the shared datasets folder); skipping");
        return;
    };
    let plain = SvmOptions { calibration_holdout: 0.0, ..SvmOptions::default() };
    let mut g = c.benchmark_group("svm_banking77");
    g.sample_size(10);
    g.bench_function("fit_features_and_solver", |b| {
        b.iter(|| train_svm(&train, None, &plain).expect("trains"))
    });
    g.bench_function("fit_with_holdout_calibration", |b| {
        b.iter(|| train_svm(&train, None, &SvmOptions::default()).expect("trains"))
    });
    g.finish();

    let trained = train_svm(&train, None, &SvmOptions::default()).expect("trains");
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("svm");
    trained.model.save(&path, &trained.metrics_json()).expect("saves");
    let model = Classifier::load(&path).expect("loads");
    let texts = test.texts();
    let mut g = c.benchmark_group("svm_predict");
    g.bench_function("single", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % texts.len();
            model.predict(texts[i]).expect("predicts")
        })
    });
    g.bench_function("batch32", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 32) % (texts.len() - 32);
            model.predict_batch(&texts[i..i + 32], 3).expect("predicts")
        })
    });
    g.finish();
}

criterion_group!(svm, benches);
criterion_main!(svm);
