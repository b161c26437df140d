#![allow(missing_docs)] // criterion's macros generate undocumented public functions
//! Criterion benchmarks of NCF on MovieLens-100k: one training epoch of NeuMF (factors 8,
//! layers 64-32-16-8, 4 negatives, batch 256: the setting of `../shared/anchors/torch_ncf.py`,
//! negative sampling included as the anchor times it) and the latency of `recommend` (score
//! every item for one user, drop the seen ones, top 10). The ratings file is
//! `$INTENT_ML100K` (default `../shared/datasets/ml-100k/u.data`); without it the benchmarks
//! are skipped with a message.

use std::path::PathBuf;

use criterion::{criterion_group, criterion_main, Criterion};
use intent::data::recsys::{leave_one_out, load_movielens, Indexed};
use intent::models::checked::Check;
use intent::models::ncf::folder::{NcfConfig, NcfModel, SavedSplit, UnknownUser};
use intent::models::ncf::{Ncf, NcfArchitecture, NcfKind};
use intent::train::ncf::{fit_ncf, NcfTrainConfig};

fn benches(c: &mut Criterion) {
    let path = std::env::var_os("INTENT_ML100K")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("../shared/datasets/ml-100k/u.data"));
    let Ok(data) = load_movielens(&path) else {
        eprintln!("{}: no MovieLens-100k ratings (set INTENT_ML100K); skipping", path.display());
        return;
    };
    let ix = Indexed::new(&data);
    let split = leave_one_out(&ix);
    let arch = NcfArchitecture {
        kind: NcfKind::Neumf,
        num_users: ix.num_users(),
        num_items: ix.num_items(),
        factors: 8,
        layers: vec![64, 32, 16, 8],
    };
    let model = Ncf::init(arch.clone(), 42).expect("valid architecture");
    let config = NcfTrainConfig { epochs: 1, progress: false, ..Default::default() }.check().expect("valid");
    let mut g = c.benchmark_group("ncf_ml100k");
    g.sample_size(10);
    g.bench_function("neumf_train_epoch", |b| {
        b.iter(|| fit_ncf(model.clone(), &split, ix.num_items(), None, &config).expect("trains").model)
    });
    let trained = fit_ncf(model.clone(), &split, ix.num_items(), None, &config).expect("trains").model;
    let cfg = NcfConfig {
        kind: intent::models::ModelKind::Ncf,
        format_version: 1,
        architecture: arch,
        training: serde_json::Value::Null,
        data: serde_json::Value::Null,
        data_hash: String::new(),
        versions: Default::default(),
        created_unix: 0,
    };
    let folder = NcfModel::new(
        cfg,
        trained,
        ix.ids.clone(),
        SavedSplit { train: split.train.clone(), test: split.test.clone(), negatives: Vec::new() },
    );
    g.sample_size(100);
    g.bench_function("recommend_top10", |b| {
        b.iter(|| folder.recommend("196", 10, UnknownUser::Error).expect("known user"))
    });
    g.finish();
}

criterion_group!(ncf, benches);
criterion_main!(ncf);
