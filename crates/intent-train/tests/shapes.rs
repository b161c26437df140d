//! Static shapes (issue 19: GPUs compile kernels for every new tensor shape, so batches must come
//! in a handful of shapes there). CI has no GPU, so these tests run the same batchers on the CPU
//! with static shapes forced on:
//!
//! - over an epoch of BANKING77 with the all-MiniLM-L6-v2 tokenizer, BERT's batches have at most
//!   (number of length buckets + 1) shapes, against dozens with dynamic padding; the MLP's
//!   sparse input batches have one shape; evaluation batches have training's shapes;
//! - filling the short last batch changes nothing the model learns (same weights as without).
//!
//! BANKING77 comes from `../shared/datasets/banking77` (`INTENT_BANKING77` overrides) and the
//! tokenizer from `models/all-MiniLM-L6-v2` (`cargo xtask fetch-model minilm`; `INTENT_MINILM`).

use std::collections::BTreeSet;
use std::path::PathBuf;

use burn::backend::{Autodiff, Flex};
use intent_data::text::{Vectorizer, VectorizerConfig};
use intent_data::{Dataset, Example, LoadOptions};
use intent_models::bert::{BertConfig, BertTokenizer};
use intent_models::mlp::SparseBatch;
use intent_train::batches::epoch_steps;
use intent_train::bert::{batch, BertOptions, Padding};
use intent_train::{train_mlp, EngineConfig, MlpOptions};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn banking77_train() -> Dataset {
    let path = std::env::var_os("INTENT_BANKING77")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("../shared/datasets/banking77"))
        .join("train.csv");
    assert!(path.is_file(), "{} is missing (the shared datasets sit beside the clone)", path.display());
    intent_data::load_dataset(&path, None, &LoadOptions::default()).expect("loads").data
}

#[test]
fn an_epoch_of_banking77_has_few_shapes_with_static_shapes() {
    let train = banking77_train();
    assert!(train.len() > 9000, "{} examples", train.len());
    let minilm = std::env::var_os("INTENT_MINILM")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("models/all-MiniLM-L6-v2"));
    let config = BertConfig::read(&minilm.join("config.json"))
        .unwrap_or_else(|e| panic!("{e}: run `cargo xtask fetch-model minilm` first"));
    let opts = BertOptions::default(); // max_len 64, batch 32, length buckets
    let tok = BertTokenizer::from_dir(&minilm, config.vocab_size, opts.max_len).unwrap();
    let rows: Vec<Vec<i64>> = train
        .examples
        .iter()
        .map(|e| tok.ids(&e.text).unwrap().into_iter().map(i64::from).collect())
        .collect();
    let lengths: Vec<usize> = rows.iter().map(Vec::len).collect();
    let device = Default::default();
    let bs = opts.engine.batch_size;
    assert_ne!(train.len() % bs, 0, "the epoch ends with a short batch");

    let shapes = |on: bool, epoch: usize| -> BTreeSet<[usize; 2]> {
        let padding = Padding::of(&opts, on);
        epoch_steps(train.len(), bs, 42, epoch, Some(&lengths), padding.fill)
            .iter()
            .map(|s| {
                let [ids, types, mask] = batch::<Flex>(&rows, &s.idx, 0, &padding, &device);
                assert_eq!(ids.dims(), types.dims());
                assert_eq!(ids.dims(), mask.dims());
                ids.dims()
            })
            .collect()
    };
    let buckets = opts.max_len.div_ceil(intent_train::bert::DEFAULT_PAD_TO_MULTIPLE_OF);
    let mut all_static = BTreeSet::new();
    for epoch in 1..=3 {
        let s = shapes(true, epoch);
        assert!(s.len() <= buckets + 1, "epoch {epoch}: {} shapes with static shapes: {s:?}", s.len());
        assert!(s.iter().all(|&[b, l]| b == bs && l % 16 == 0 && l <= opts.max_len), "{s:?}");
        all_static.extend(s);
    }
    assert!(all_static.len() <= buckets + 1, "over three epochs: {all_static:?}");
    // Validation batches (the data in its order) come in shapes training has compiled already.
    let padding = Padding::of(&opts, true);
    let eval: BTreeSet<[usize; 2]> = intent_train::batches::eval_chunks(rows.len(), padding.eval_rows, true)
        .iter()
        .map(|c| batch::<Flex>(&rows, &c.idx, 0, &padding, &device)[0].dims())
        .collect();
    assert!(eval.is_subset(&all_static), "evaluation {eval:?}, training {all_static:?}");
    assert_eq!(Padding::of(&opts, false).eval_rows, intent_train::bert::EVAL_BATCH);
    // What the GPU saw before: a new shape for nearly every length in the data.
    let dynamic = shapes(false, 1);
    eprintln!("BANKING77 epoch shapes: {} static, {} dynamic", all_static.len(), dynamic.len());
    assert!(dynamic.len() > 3 * all_static.len(), "dynamic padding: {} shapes", dynamic.len());

    // The MLP's sparse input: one shape for every batch of the epoch.
    let texts = train.texts();
    let vectorizer = Vectorizer::fit(&texts, VectorizerConfig::default()).unwrap();
    let sparse: Vec<_> = texts.iter().map(|t| vectorizer.transform(t)).collect();
    let capacity = intent_train::mlp::largest_batch_nnz(&sparse, 64);
    let mlp_shapes: BTreeSet<(usize, usize)> = epoch_steps(train.len(), 64, 42, 1, None, true)
        .iter()
        .map(|s| {
            let refs: Vec<_> = s.idx.iter().map(|&i| &sparse[i]).collect();
            let x = SparseBatch::<Flex>::with_capacity(&refs, capacity, &device);
            assert_eq!(x.rows.dims(), [x.nnz]);
            (x.batch, x.nnz)
        })
        .collect();
    assert_eq!(mlp_shapes, BTreeSet::from([(64, capacity)]));
}

/// Filling the short batch with repeats (left out of the loss) and padding the sparse input
/// trains the same model as plain batches, up to float rounding.
#[test]
fn static_shapes_train_the_same_mlp() {
    let words = ["card", "transfer", "balance"];
    let examples: Vec<Example> = (0..37)
        .map(|i| {
            let w = words[i % 3];
            Example::new(format!("{w} please {i} {}", words[(i / 3) % 3]), w)
        })
        .collect();
    let data = Dataset::new(examples);
    let train = |static_shapes: Option<bool>| {
        let opts = MlpOptions {
            hidden_size: 16,
            dropout: 0.0,
            engine: EngineConfig {
                epochs: 10,
                batch_size: 8,
                lr: 3e-2,
                patience: None,
                progress: false,
                static_shapes,
                ..Default::default()
            },
            ..Default::default()
        };
        let m = train_mlp::<Autodiff<Flex>>(&data, None, &opts, &Default::default()).unwrap();
        (m.model.scores(&data.texts()), m.history)
    };
    let (plain, plain_history) = train(Some(false));
    let (filled, filled_history) = train(Some(true));
    let diff =
        plain.iter().flatten().zip(filled.iter().flatten()).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
    assert!(diff < 1e-4, "scores differ by {diff}");
    for (a, b) in plain_history.iter().zip(&filled_history) {
        assert!((a.loss - b.loss).abs() < 1e-5, "losses {} vs {}", a.loss, b.loss);
        assert_eq!(a.train_accuracy, b.train_accuracy, "the repeats are not counted");
    }
    // The model did learn (the comparison is not between two untrained models).
    assert!(plain_history.last().unwrap().train_accuracy > 0.9, "{plain_history:?}");
}
