//! The batcher keeps to its limits and answers every request with what the model says for it
//! alone; a transformer model (zero-shot on all-MiniLM-L6-v2) is served through it.

mod common;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::http::StatusCode;
use common::*;
use intent_models::bert::SentenceEncoder;
use intent_models::zero_shot::ZeroShot;
use intent_models::CpuBackend;
use intent_serve::Classifier;
use intent_serve::{BatchConfig, Batcher};
use intent_server::server::ServerOptions;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn batches_keep_to_their_limits() {
    let dir = tempfile::tempdir().unwrap();
    let m = model(dir.path(), "faq", 1);
    let classifier = Arc::new(Classifier::load(&m).unwrap());
    let seen: Arc<Mutex<Vec<(usize, usize)>>> = Arc::default();
    let record = seen.clone();
    let config = BatchConfig { max_batch_tokens: 12, max_batch_texts: 3 };
    let batcher = Arc::new(Batcher::start(
        classifier.clone(),
        config,
        Some(Arc::new(move |t, k| record.lock().unwrap().push((t, k)))),
    ));

    let texts: Vec<String> = (0..40)
        .map(|i| ["reset my password", "send a wire", "refund please", "debit card chip"][i % 4].to_string())
        .collect();
    let jobs: Vec<_> = texts
        .iter()
        .map(|t| {
            let b = batcher.clone();
            let t = t.clone();
            tokio::spawn(async move { submit(&b, vec![t], 2).await.unwrap() })
        })
        .collect();
    // One request bigger than the batch limits runs alone.
    let big = submit(&batcher, texts[..5].to_vec(), 4).await.unwrap();
    for (j, t) in jobs.into_iter().zip(&texts) {
        let got = j.await.unwrap();
        let want = classifier.predict_batch(&[t.as_str()], 2).unwrap();
        assert_eq!(got, want, "{t}");
    }
    let refs: Vec<&str> = texts[..5].iter().map(String::as_str).collect();
    assert_eq!(big, classifier.predict_batch(&refs, 4).unwrap());
    let seen = seen.lock().unwrap();
    assert_eq!(seen.iter().map(|s| s.0).sum::<usize>(), 45);
    assert!(seen.contains(&(5, 14)), "the oversized request ran alone: {seen:?}");
    for &(t, k) in seen.iter().filter(|s| s.0 != 5) {
        assert!(t <= 3 && k <= 12, "batch of {t} texts, {k} tokens: over the limits");
    }
}

fn minilm() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models/all-MiniLM-L6-v2")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn zero_shot_minilm_is_served_in_batches() {
    let dir = tempfile::tempdir().unwrap();
    let enc = SentenceEncoder::<CpuBackend>::load(&minilm(), None, &Default::default())
        .expect("all-MiniLM-L6-v2 in models/ (cargo xtask fetch-model minilm)");
    let labels = vec![
        ("check_balance".to_string(), "check my account balance".to_string()),
        ("lost_card".to_string(), "my bank card was lost or stolen".to_string()),
        ("greeting".to_string(), "hello, greeting someone".to_string()),
    ];
    let zs = ZeroShot::new(enc, labels, None).unwrap();
    let folder = dir.path().join("zs");
    zs.save(&folder, &minilm(), &serde_json::json!({})).unwrap();

    let s = state(&folder, dir.path(), false, ServerOptions::default());
    let info = call(&s, "GET", "/v1/models", None, None).await.json;
    assert_eq!(
        (info["models"][0]["kind"].as_str(), info["models"][0]["batched"].as_bool()),
        (Some("zero-shot"), Some(true))
    );

    let texts = [
        "how much money is in my account",
        "i lost my visa card yesterday",
        "hi there",
        "what's my balance",
        "someone stole my card",
        "good morning",
    ];
    let want: Vec<&str> =
        vec!["check_balance", "lost_card", "greeting", "check_balance", "lost_card", "greeting"];
    let alone = Classifier::load(&folder).unwrap();
    let futures: Vec<_> = (0..24)
        .map(|i| {
            let s = s.clone();
            let t = texts[i % texts.len()];
            tokio::spawn(async move { predict(&s, &format!(r#"{{"text": "{t}"}}"#)).await.json })
        })
        .collect();
    for (i, f) in futures.into_iter().enumerate() {
        let got = f.await.unwrap();
        let t = texts[i % texts.len()];
        assert_eq!(got["label"], want[i % texts.len()], "{t}: {got}");
        let reference = alone.predict(t).unwrap().confidence as f64;
        assert!(
            (got["confidence"].as_f64().unwrap() - reference).abs() < 1e-5,
            "{t}: batched {} vs alone {reference}",
            got["confidence"]
        );
    }
    let r = predict(&s, r#"{"texts": ["hi", "my card is gone"]}"#).await;
    assert_eq!(r.status, StatusCode::OK);
    let metrics = call(&s, "GET", "/metrics", None, None).await.text;
    let count: f64 =
        metrics.lines().find_map(|l| l.strip_prefix("intent_batch_texts_sum ")).unwrap().parse().unwrap();
    assert_eq!(count, 26.0, "every text went through the batcher: {metrics}");
}

/// Queues a request on the batcher and awaits its answer (as the server's slot does).
async fn submit(
    b: &Batcher,
    texts: Vec<String>,
    top_k: usize,
) -> Result<Vec<intent_serve::Prediction>, intent_serve::ServeError> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    b.submit(texts, top_k, Box::new(move |r| drop(tx.send(r))))?;
    rx.await.map_err(|_| intent_serve::ServeError::WorkerGone)?
}
