//! `--fallback-url`: answers under the threshold go to a local stand-in for the external
//! service; its label answers (`source: "fallback"`) and is logged as a teacher label that
//! `/admin/labeling/export?source=teacher` gives; a slow service is cut off at the budget and an
//! off-list label is refused, both leaving the model's own answer.

mod common;

use std::time::{Duration, Instant};

use axum::http::StatusCode;
use common::*;
use intent_server::fallback::FallbackService;
use intent_testkit::http;

/// A local service that answers `{"label": label}` after `delay`; returns its URL and the
/// request bodies it got.
fn service(label: &'static str, delay: Duration) -> (String, std::sync::mpsc::Receiver<serde_json::Value>) {
    let (tx, rx) = std::sync::mpsc::channel();
    let tx = std::sync::Mutex::new(tx);
    let port = http::serve(move |r| {
        let _ = tx.lock().unwrap().send(r.json());
        std::thread::sleep(delay);
        http::ok(format!("{{\"label\": \"{label}\"}}"))
    });
    (format!("http://127.0.0.1:{port}/label"), rx)
}

fn serving(dir: &std::path::Path, url: &str, timeout: Duration) -> intent_server::server::AppState {
    let mut options = with_token();
    options.load.fallback_threshold = Some(0.999); // every answer is unsure
    options.fallback = Some(FallbackService::new(url, timeout).unwrap());
    let m = model(dir, "faq", 1);
    state(&m, dir, true, options)
}

async fn metric(s: &intent_server::server::AppState, outcome: &str) -> String {
    let m = call(s, "GET", "/metrics", None, None).await.text;
    let key = format!("intent_fallback_requests_total{{outcome=\"{outcome}\"}} ");
    m.lines().find_map(|l| l.strip_prefix(&key).map(str::to_string)).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fallback_service_labels_unsure_answers_within_its_budget() {
    let dir = tempfile::tempdir().unwrap();
    let (url, asked) = service("refund", Duration::ZERO);
    let s = serving(dir.path(), &url, Duration::from_secs(5));
    let r = predict(&s, r#"{"text": "my debit card is stuck"}"#).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        (r.json["label"].as_str(), r.json["source"].as_str()),
        (Some("refund"), Some("fallback")),
        "{}",
        r.text
    );
    assert_eq!(r.json["top_k"][0]["label"], "card", "the model's own answer stays in top_k");
    let body = asked.recv_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(body["text"], "my debit card is stuck");
    assert_eq!(body["labels"], serde_json::json!(["card", "password", "refund", "transfer"]));
    assert_eq!(body["top_k"][0]["label"], "card");
    assert_eq!(metric(&s, "answered").await, "1");
    // The Rasa-compatible route answers with the service's label too (not `nlu_fallback`).
    let rasa = call(&s, "POST", "/model/parse", Some(r#"{"text": "my debit card is stuck"}"#), None).await;
    assert_eq!(rasa.json["intent"]["name"], "refund", "{}", rasa.text);
    assert_eq!(metric(&s, "answered").await, "2");

    // Both texts of a batch are asked; the labels are logged as teacher labels.
    let r = predict(&s, r#"{"texts": ["wire money to a payee", "reset my password"]}"#).await;
    let labels: Vec<&str> =
        r.json["predictions"].as_array().unwrap().iter().map(|p| p["label"].as_str().unwrap()).collect();
    assert_eq!(labels, ["refund", "refund"]);
    s.query_log().unwrap().flush().await;
    let e = call(&s, "GET", "/admin/labeling/export?source=teacher", None, Some(TOKEN)).await;
    assert_eq!(e.status, StatusCode::OK, "{}", e.text);
    let lines: Vec<serde_json::Value> = e.text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 3, "{}", e.text);
    let first = lines.iter().find(|l| l["text"] == "my debit card is stuck").expect("the first query");
    assert_eq!((first["label"].as_str(), first["source"].as_str()), (Some("refund"), Some("teacher")));
    // The human export is untouched by teacher labels, and a bad source is named.
    assert_eq!(call(&s, "GET", "/admin/labeling/export", None, Some(TOKEN)).await.text, "");
    let bad = call(&s, "GET", "/admin/labeling/export?source=llm", None, Some(TOKEN)).await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(bad.text.contains("source 'llm': expected human, teacher or confident"), "{}", bad.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_or_off_list_fallback_leaves_the_models_answer() {
    let dir = tempfile::tempdir().unwrap();
    let (slow, _) = service("refund", Duration::from_secs(3));
    let s = serving(dir.path(), &slow, Duration::from_millis(300));
    let start = Instant::now();
    let r = predict(&s, r#"{"text": "my debit card is stuck"}"#).await;
    assert!(start.elapsed() < Duration::from_secs(2), "cut off at the budget: {:?}", start.elapsed());
    assert_eq!((r.json["label"].as_str(), r.json.get("source")), (Some("card"), None), "{}", r.text);
    assert_eq!(metric(&s, "timeout").await, "1");

    let dir2 = tempfile::tempdir().unwrap();
    let (odd, _) = service("weather", Duration::ZERO);
    let s = serving(dir2.path(), &odd, Duration::from_secs(5));
    let r = predict(&s, r#"{"text": "my debit card is stuck"}"#).await;
    assert_eq!((r.json["label"].as_str(), r.json.get("source")), (Some("card"), None), "{}", r.text);
    assert_eq!(metric(&s, "failed").await, "1");
    s.query_log().unwrap().flush().await;
    let e = call(&s, "GET", "/admin/labeling/export?source=teacher", None, Some(TOKEN)).await;
    assert_eq!(e.text, "", "an off-list label is no teacher label");

    // A service that is not there: the model answers.
    let dir3 = tempfile::tempdir().unwrap();
    let s = serving(dir3.path(), "http://127.0.0.1:9/label", Duration::from_secs(2));
    let r = predict(&s, r#"{"text": "my debit card is stuck"}"#).await;
    assert_eq!((r.status, r.json["label"].as_str()), (StatusCode::OK, Some("card")), "{}", r.text);
    assert!(FallbackService::new("ftp://x", Duration::from_secs(1))
        .unwrap_err()
        .contains("--fallback-url ftp://x"));
}
