//! The inference library on real folders: a fine-tuned-BERT folder whose tokenizer rejects a
//! text answers that text with `ServeError::Input` (not a zero-confidence label), and the
//! batcher fails only the request that held it.

use std::sync::Arc;

use intent_serve::{BatchConfig, Batcher, Classifier, ServeError};
use intent_testkit::bert::{write_tiny_classifier, LABELS};

#[test]
fn a_text_the_tokenizer_rejects_is_an_input_error() {
    let dir = tempfile::tempdir().unwrap();
    write_tiny_classifier(dir.path(), true);
    let model = Classifier::load(dir.path()).unwrap();
    assert!(matches!(model, Classifier::Bert(_)));
    assert_eq!(model.labels(), LABELS);

    let ok = model.predict("hello world").unwrap();
    assert!(LABELS.contains(&ok.label.as_str()));
    let sum: f32 = ok.top_k.iter().map(|s| s.score).sum();
    assert!((sum - 1.0).abs() < 1e-5, "three labels, top 3: probabilities sum to 1 ({sum})");

    // "zebra" is not in the word-level vocabulary, which has no unknown token.
    let err = model.predict("hello zebra").unwrap_err();
    assert!(matches!(err, ServeError::Input(_)), "{err:?}");
    assert!(err.to_string().contains("tokenizer"), "{err}");
    let err = model.predict_batch(&["hello world", "my zebra"], 2).unwrap_err();
    assert!(matches!(err, ServeError::Input(_)), "{err:?}");
    assert!(matches!(model.scores(&["zebra"]), Err(ServeError::Input(_))));
}

#[test]
fn the_batcher_fails_only_the_request_with_the_rejected_text() {
    let dir = tempfile::tempdir().unwrap();
    write_tiny_classifier(dir.path(), true);
    let model = Arc::new(Classifier::load(dir.path()).unwrap());
    assert!(model.batches());
    let batcher = Arc::new(Batcher::start(model.clone(), BatchConfig::default(), None));
    let texts = ["hello world", "my card lost", "the zebra", "hello the world"];
    let handles: Vec<_> = texts
        .iter()
        .map(|t| {
            let b = batcher.clone();
            let t = t.to_string();
            std::thread::spawn(move || b.predict_blocking(vec![t], 2))
        })
        .collect();
    for (t, h) in texts.iter().zip(handles) {
        let got = h.join().unwrap();
        if t.contains("zebra") {
            assert!(matches!(got, Err(ServeError::Input(_))), "{t}: {got:?}");
        } else {
            assert_eq!(got.unwrap(), model.predict_batch(&[t], 2).unwrap(), "{t}");
        }
    }
}
