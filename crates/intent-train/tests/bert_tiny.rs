//! Fine-tuning a tiny randomly initialised BERT written by the test in the Hugging Face layout
//! (config.json, vocab.txt, model.safetensors): it overfits a small single-label and a small
//! multi-label set (thresholds tuned on validation), a run stopped after two epochs and resumed
//! from its checkpoint ends with exactly the weights of an uninterrupted run, a resume with other
//! settings is refused, and head-only training leaves the encoder untouched.

use std::path::Path;

use burn::backend::{Autodiff, Flex};
use intent_data::{Dataset, Example};
use intent_train::{train_bert, BertOptions};

type AD = Autodiff<Flex>;

/// burn's CPU random generator (weight init, dropout) is one per process: runs that must be
/// reproducible take turns.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn single() -> Dataset {
    let rows = intent_testkit::bert::TINY_INTENTS;
    Dataset::new(rows.iter().map(|(t, l)| Example::new(*t, *l)).collect())
}

fn multi() -> Dataset {
    let rows: [(&str, &[&str]); 8] = [
        ("hello where is my package", &["greeting", "order_status"]),
        ("hi track my parcel please", &["greeting", "order_status"]),
        ("where is my package", &["order_status"]),
        ("track my parcel please", &["order_status"]),
        ("hello there", &["greeting"]),
        ("hey how are you", &["greeting"]),
        ("hello i want to return this jacket", &["greeting", "return_item"]),
        ("return the blender i bought", &["return_item"]),
    ];
    let mut d = Dataset::new(
        rows.iter().map(|(t, l)| Example::multi(*t, l.iter().map(|s| s.to_string()).collect())).collect(),
    );
    d.multi_label = true;
    d
}

/// Writes a tiny BERT base (no pooler, no head) whose vocabulary holds every word of the data,
/// with dropout probability `dropout` in the encoder.
fn write_tiny_bert(dir: &Path, dropout: f64) {
    let (single, multi) = (single(), multi());
    let texts: Vec<&str> = single.examples.iter().chain(&multi.examples).map(|e| e.text.as_str()).collect();
    intent_testkit::bert::write_learnable_tiny_bert(dir, &texts, dropout);
}

/// Takes this file's turn at the random generator and writes a tiny BERT into a fresh folder.
fn tiny_bert(dropout: f64) -> (std::sync::MutexGuard<'static, ()>, tempfile::TempDir, std::path::PathBuf) {
    let turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("tiny");
    write_tiny_bert(&base, dropout);
    (turn, dir, base)
}

#[allow(clippy::field_reassign_with_default)] // reads as the list of what the tests change
fn options(epochs: usize) -> BertOptions {
    let mut o = BertOptions::default();
    o.max_len = 16;
    o.engine.epochs = epochs;
    o.engine.batch_size = 4;
    o.engine.lr = 3e-3;
    o.engine.warmup_ratio = 0.0;
    o.engine.progress = false;
    o.engine.min_steps = Some(0); // these tests count epochs
    o.multi_label_lr = None; // engine.lr for every kind of data
    o
}

/// The named tensors of a saved folder's model.safetensors, as f32.
fn weights(dir: &Path) -> Vec<(String, Vec<f32>)> {
    let bytes = std::fs::read(dir.join("model.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut out: Vec<(String, Vec<f32>)> = st
        .tensors()
        .into_iter()
        .map(|(n, v)| {
            (n, v.data().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect())
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

#[test]
fn a_tiny_bert_overfits_single_and_multi_label_data() {
    let (_turn, dir, base) = tiny_bert(0.0);
    let device = Default::default();

    let train = single();
    let t = train_bert::<AD>(&base, &train, Some(&train), &options(25), &device).unwrap();
    let scores: Vec<f64> = t.history.iter().filter_map(|h| h.val_score).collect();
    assert_eq!(scores.iter().cloned().fold(0.0, f64::max), 1.0, "validation accuracy per epoch: {scores:?}");
    assert!(
        t.history[0].loss > 1.3 * t.history.last().unwrap().loss,
        "{:?}",
        t.history.iter().map(|h| h.loss).collect::<Vec<_>>()
    );
    let report = t.val_report.as_ref().expect("validation report");
    assert_eq!(report.accuracy, 1.0);

    let train = multi();
    let mut o = options(100);
    o.engine.lr = 1e-2;
    let t = train_bert::<AD>(&base, &train, Some(&train), &o, &device).unwrap();
    let scores: Vec<f64> = t.history.iter().filter_map(|h| h.val_score).collect();
    assert_eq!(scores.iter().cloned().fold(0.0, f64::max), 1.0, "exact match per epoch: {scores:?}");
    let th = t.meta.thresholds.clone().expect("per-label thresholds tuned on validation");
    assert_eq!(th.len(), 3);
    assert!(th.iter().all(|&x| (0.05..=0.95).contains(&x)), "{th:?}");
    let out = dir.path().join("multi");
    t.save(&out).unwrap();
    let served = intent_models::bert::BertClassifier::<Flex>::load(&out, None, &device).unwrap();
    assert_eq!(served.config.thresholds.as_ref(), Some(&th), "thresholds reach intent.json");
    assert_eq!(served.encoder.tokenizer.max_len(), 16, "served texts are cut where training cut them");
    let metrics: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("metrics.json")).unwrap()).unwrap();
    assert_eq!(metrics["history"].as_array().unwrap().len(), 100);
}

#[test]
fn a_resumed_run_ends_with_the_weights_of_an_uninterrupted_one() {
    let (_turn, dir, base) = tiny_bert(0.1);
    let device = Default::default();
    let train = single();

    let mut whole = options(4);
    whole.engine.checkpoint_dir = Some(dir.path().join("ckpt-a"));
    let a = train_bert::<AD>(&base, &train, Some(&train), &whole, &device).unwrap();
    a.save(&dir.path().join("a")).unwrap();

    let mut first = options(4);
    first.engine.checkpoint_dir = Some(dir.path().join("ckpt-b"));
    first.engine.stop_after_epochs = Some(2);
    let b1 = train_bert::<AD>(&base, &train, Some(&train), &first, &device).unwrap();
    assert!(b1.interrupted);
    assert_eq!(b1.history.len(), 2);
    assert_eq!(std::fs::read_to_string(dir.path().join("ckpt-b/latest")).unwrap(), "epoch-2");

    let mut rest = first.clone();
    rest.engine.stop_after_epochs = None;
    rest.engine.resume = true;
    let b = train_bert::<AD>(&base, &train, Some(&train), &rest, &device).unwrap();
    assert!(!b.interrupted);
    b.save(&dir.path().join("b")).unwrap();
    let losses = |t: &intent_train::TrainedBert<Flex>| t.history.iter().map(|h| h.loss).collect::<Vec<_>>();
    assert_eq!(losses(&a), losses(&b), "same per-epoch losses");
    assert_eq!(a.best_epoch, b.best_epoch);
    let (wa, wb) = (weights(&dir.path().join("a")), weights(&dir.path().join("b")));
    assert_eq!(wa.len(), wb.len());
    for ((na, va), (nb, vb)) in wa.iter().zip(&wb) {
        assert_eq!(na, nb);
        assert!(va == vb, "{na} differs after resume");
    }

    // Resuming with other settings is refused, naming the checkpoint.
    let mut other = rest.clone();
    other.engine.lr = 1e-3;
    let e = train_bert::<AD>(&base, &train, Some(&train), &other, &device).err().unwrap().to_string();
    assert!(e.contains("ckpt-b") && e.contains("other settings"), "{e}");
    // Damaged checkpoint files are errors naming the file, not panics.
    let latest = dir.path().join("ckpt-b/epoch-4");
    let model = std::fs::read(latest.join("model.mpk")).unwrap();
    std::fs::write(latest.join("model.mpk"), &model[..model.len() / 2]).unwrap();
    let e = train_bert::<AD>(&base, &train, Some(&train), &rest, &device).err().unwrap().to_string();
    assert!(e.contains("model.mpk"), "{e}");
    std::fs::write(latest.join("model.mpk"), &model).unwrap();
    std::fs::write(latest.join("optimizer.safetensors"), b"not a safetensors file").unwrap();
    let e = train_bert::<AD>(&base, &train, Some(&train), &rest, &device).err().unwrap().to_string();
    assert!(e.contains("optimizer.safetensors"), "{e}");
    // A corrupt pointer is an error, not a silent fresh start.
    std::fs::write(dir.path().join("ckpt-b/latest"), "../elsewhere").unwrap();
    let e = train_bert::<AD>(&base, &train, Some(&train), &rest, &device).err().unwrap().to_string();
    assert!(e.contains("latest"), "{e}");
}

#[test]
fn head_only_training_leaves_the_encoder_as_loaded() {
    let (_turn, dir, base) = tiny_bert(0.1);
    let device = Default::default();
    let train = single();
    let mut o = options(5);
    o.freeze_encoder = true;
    let t = train_bert::<AD>(&base, &train, None, &o, &device).unwrap();
    let out = dir.path().join("frozen");
    t.save(&out).unwrap();
    let before: std::collections::BTreeMap<String, Vec<f32>> =
        weights(&base).into_iter().map(|(n, v)| (format!("bert.{n}"), v)).collect();
    let after = weights(&out);
    let mut compared = 0;
    for (n, v) in &after {
        if let Some(b) = before.get(n) {
            assert!(b == v, "{n} changed although the encoder is frozen");
            compared += 1;
        }
    }
    assert_eq!(compared, before.len(), "every encoder tensor saved");
    // The head did learn: the training loss falls.
    assert!(t.history[0].loss > t.history.last().unwrap().loss);
}

/// Multi-label data without validation data: a stratified share is held out to pick the epoch
/// (micro-F1 at the best threshold) and tune the per-label thresholds; the options say so.
#[test]
fn multi_label_without_validation_holds_out_data_for_thresholds() {
    let (_turn, _dir, base) = tiny_bert(0.0);
    let device = Default::default();
    let mut o = options(10);
    o.threshold_holdout = 0.4;
    let t = train_bert::<AD>(&base, &multi(), None, &o, &device).unwrap();
    assert_eq!(t.meta.training["thresholds_from"], "holdout");
    assert_eq!(t.meta.training["train_examples"], 4, "8 examples, 4 held out (one or two per label)");
    assert!(t.history.iter().all(|h| h.val_score.is_some()), "every epoch is scored on the hold-out");
    assert_eq!(t.meta.thresholds.as_ref().map(Vec::len), Some(3));
    assert_eq!(t.val_report.as_ref().map(|r| r.n), Some(4));
    // Without a hold-out, nothing is tuned.
    o.threshold_holdout = 0.0;
    let t = train_bert::<AD>(&base, &multi(), None, &o, &device).unwrap();
    assert_eq!(t.meta.training["thresholds_from"], "none");
    assert!(t.val_report.is_none());
    // A share outside [0, 0.5) is refused by name.
    o.threshold_holdout = 0.7;
    let e = train_bert::<AD>(&base, &multi(), None, &o, &device).err().unwrap().to_string();
    assert!(e.contains("threshold_holdout"), "{e}");
}

/// `multi_label_lr` replaces the engine's rate on multi-label data (the schedule scales with it)
/// and leaves single-label data alone; `None` or a bad value is the engine's rate or an error.
#[test]
fn multi_label_data_trains_at_its_own_rate() {
    let (_turn, _dir, base) = tiny_bert(0.0);
    let device = Default::default();
    let mut o = options(2);
    o.threshold_holdout = 0.0;
    let lrs = |o: &BertOptions, data: &Dataset| -> Vec<f64> {
        train_bert::<AD>(&base, data, None, o, &device).unwrap().history.iter().map(|h| h.lr).collect()
    };
    let engine_rate = lrs(&o, &multi());
    o.multi_label_lr = Some(o.engine.lr / 4.0);
    let own_rate = lrs(&o, &multi());
    for (a, b) in engine_rate.iter().zip(&own_rate) {
        assert!((a / 4.0 - b).abs() < 1e-12, "{engine_rate:?} vs {own_rate:?}");
    }
    let single_rate = lrs(&o, &single());
    o.multi_label_lr = None;
    assert_eq!(single_rate, lrs(&o, &single()), "single-label data keeps the engine's rate");
    o.multi_label_lr = Some(-1.0);
    let e = train_bert::<AD>(&base, &multi(), None, &o, &device).err().unwrap().to_string();
    assert!(e.contains("multi_label_lr") && e.contains("-1"), "{e}");
}

#[test]
fn bf16_mixed_precision_learns_and_keeps_f32_weights() {
    let (_turn, dir, base) = tiny_bert(0.0);
    let device = Default::default();
    let train = single();
    let mut o = options(25);
    o.precision = intent_models::bert::Precision::Bf16;
    let t = train_bert::<AD>(&base, &train, Some(&train), &o, &device).unwrap();
    let scores: Vec<f64> = t.history.iter().filter_map(|h| h.val_score).collect();
    assert_eq!(scores.iter().cloned().fold(0.0, f64::max), 1.0, "validation accuracy per epoch: {scores:?}");
    let losses: Vec<f64> = t.history.iter().map(|h| h.loss).collect();
    assert!(losses[0] > 1.3 * losses[losses.len() - 1], "{losses:?}");
    t.save(&dir.path().join("bf16")).unwrap();
    let bytes = std::fs::read(dir.path().join("bf16/model.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    assert!(
        st.tensors().iter().all(|(_, v)| v.dtype() == safetensors::Dtype::F32),
        "master weights stay f32"
    );
    // The same run in f32 ends with other weights: the products really were bf16.
    o.precision = intent_models::bert::Precision::F32;
    let t32 = train_bert::<AD>(&base, &train, Some(&train), &o, &device).unwrap();
    t32.save(&dir.path().join("f32")).unwrap();
    let (a, b) = (weights(&dir.path().join("bf16")), weights(&dir.path().join("f32")));
    let diff = a.iter().zip(&b).flat_map(|(x, y)| x.1.iter().zip(&y.1)).map(|(p, q)| (p - q).abs());
    let largest = diff.fold(0.0f32, f32::max);
    assert!(largest > 1e-5 && largest < 0.05, "bf16 vs f32 weights differ by at most {largest}");
}
