//! Fine-tuning all-MiniLM-L6-v2 (from `cargo xtask fetch-model minilm`; `INTENT_MINILM`
//! overrides the path) on a handful of texts: the model fits them, the saved Hugging Face folder
//! serves the same predictions, and the same seed gives the same model on CPU.

use std::path::PathBuf;

use burn::backend::{Autodiff, Flex};
use intent_data::{Dataset, Example};
use intent_models::bert::BertClassifier;
use intent_train::{train_bert, BertOptions};

fn minilm() -> PathBuf {
    let dir = std::env::var_os("INTENT_MINILM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models/all-MiniLM-L6-v2"));
    assert!(
        dir.join("model.safetensors").is_file(),
        "{}: run `cargo xtask fetch-model minilm` first",
        dir.display()
    );
    dir
}

fn data() -> Dataset {
    let rows = [
        ("where is my package", "order_status"),
        ("has my order shipped yet", "order_status"),
        ("track my parcel please", "order_status"),
        ("when will my delivery arrive", "order_status"),
        ("hello there", "greeting"),
        ("hi, good morning", "greeting"),
        ("hey how are you", "greeting"),
        ("good evening to you", "greeting"),
        ("I want to return this jacket", "return_item"),
        ("how do I send back a product", "return_item"),
        ("can I get a refund for these shoes", "return_item"),
        ("return the blender I bought", "return_item"),
    ];
    Dataset::new(rows.iter().map(|(t, l)| Example::new(*t, *l)).collect())
}

#[test]
fn fine_tuning_fits_the_data_saves_a_servable_folder_and_is_deterministic() {
    let base = minilm();
    let train = data();
    let mut opts = BertOptions::default();
    opts.engine.epochs = 4;
    opts.engine.batch_size = 4;
    opts.engine.lr = 1e-4;
    opts.engine.progress = false;
    opts.engine.min_steps = Some(0); // 4 epochs of 3 steps: the test counts epochs
    let device = Default::default();
    let a = train_bert::<Autodiff<Flex>>(&base, &train, Some(&train), &opts, &device).unwrap();
    let last = a.history.last().unwrap();
    assert!(
        a.history[0].loss > last.loss,
        "loss falls: {:?}",
        a.history.iter().map(|h| h.loss).collect::<Vec<_>>()
    );
    assert_eq!(a.history.iter().filter_map(|h| h.val_score).fold(0.0, f64::max), 1.0, "fits the 12 texts");

    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("clf");
    a.save(&out).unwrap();
    let served = BertClassifier::<Flex>::load(&out, None, &device).unwrap();
    assert_eq!(served.config.labels, ["greeting", "order_status", "return_item"]);
    let texts: Vec<&str> = train.examples.iter().map(|e| e.text.as_str()).collect();
    let scores = served.scores(&texts).unwrap();
    for (e, s) in train.examples.iter().zip(&scores) {
        let best = (0..s.len()).max_by(|&x, &y| s[x].total_cmp(&s[y])).unwrap();
        assert_eq!(served.config.labels[best], e.labels[0], "{}", e.text);
    }

    // Same seed, same model (CPU).
    let b = train_bert::<Autodiff<Flex>>(&base, &train, Some(&train), &opts, &device).unwrap();
    let losses = |t: &intent_train::TrainedBert<Flex>| t.history.iter().map(|h| h.loss).collect::<Vec<_>>();
    assert_eq!(losses(&a), losses(&b));

    // Bad input: a max_len beyond the model's positions is refused by name.
    opts.max_len = 10_000;
    let e = train_bert::<Autodiff<Flex>>(&base, &train, None, &opts, &device).err().unwrap().to_string();
    assert!(e.contains("`max_len`"), "{e}");
}
