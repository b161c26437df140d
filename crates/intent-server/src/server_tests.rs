//! What needs the server's insides: the concurrency bound with its permits held, and `/ready`
//! and `/metrics` while the query log's database is full.

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use tower::ServiceExt;

use crate::server::{router, AppState, ServerOptions};
use crate::{ModelSlot, QueryLog};

fn state(dir: &std::path::Path, options: ServerOptions) -> AppState {
    let m = intent_testkit::model(dir, "faq", 1);
    let log = QueryLog::open(&dir.join("q.sqlite"), false).unwrap();
    let s = AppState::new(ModelSlot::default(), Some(log), options);
    s.load(&intent_serve::ModelSpec::Dir(m)).unwrap();
    s
}

async fn send(s: &AppState, method: &str, uri: &str, body: &str) -> (StatusCode, String, Option<String>) {
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    let r = router(s.clone()).oneshot(req).await.unwrap();
    let status = r.status();
    let retry = r.headers().get("retry-after").map(|v| v.to_str().unwrap().to_string());
    let bytes = axum::body::to_bytes(r.into_body(), usize::MAX).await.unwrap();
    (status, String::from_utf8_lossy(&bytes).into_owned(), retry)
}

#[tokio::test]
async fn requests_beyond_the_bound_get_429_with_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    let s = state(dir.path(), ServerOptions { max_concurrent: 2, ..Default::default() });
    let held = s.0.permits.clone().try_acquire_many_owned(2).unwrap();
    let (status, text, retry) = send(&s, "POST", "/v1/predict", r#"{"text": "hi"}"#).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{text}");
    assert!(text.contains("more than 2 requests at once"), "{text}");
    assert_eq!(retry.as_deref(), Some("1"));
    // Health and readiness do not count against the bound.
    assert_eq!(send(&s, "GET", "/health", "").await.0, StatusCode::OK);
    assert_eq!(send(&s, "GET", "/ready", "").await.0, StatusCode::OK);
    drop(held);
    assert_eq!(send(&s, "POST", "/v1/predict", r#"{"text": "hi"}"#).await.0, StatusCode::OK);
    let (_, metrics, _) = send(&s, "GET", "/metrics", "").await;
    assert!(metrics.lines().any(|l| l == "intent_rejected_requests_total 1"), "{metrics}");
}

#[tokio::test]
async fn a_full_query_log_degrades_ready_but_not_prediction() {
    for require in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let s = state(dir.path(), ServerOptions { require_query_log: require, ..Default::default() });
        let log = s.query_log().unwrap();
        log.set_max_pages(1);
        let texts: Vec<String> = (0..200).map(|i| format!("my card number {i} is stuck somewhere")).collect();
        let body = serde_json::json!({ "texts": texts }).to_string();
        let start = Instant::now();
        while !log.status().degraded {
            assert_eq!(send(&s, "POST", "/v1/predict", &body).await.0, StatusCode::OK);
            assert!(start.elapsed() < Duration::from_secs(20), "the log never degraded");
        }
        // Fill the queue: requests keep being answered, rows beyond it are dropped.
        for _ in 0..30 {
            assert_eq!(send(&s, "POST", "/v1/predict", &body).await.0, StatusCode::OK);
        }
        let (status, text, _) = send(&s, "GET", "/ready", "").await;
        let ready: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(ready["query_log"]["degraded"], true, "{text}");
        assert!(ready["query_log"]["error"].as_str().unwrap().contains("full"), "{text}");
        assert_eq!(status, if require { StatusCode::SERVICE_UNAVAILABLE } else { StatusCode::OK });
        let (_, metrics, _) = send(&s, "GET", "/metrics", "").await;
        assert!(metrics.lines().any(|l| l == "intent_query_log_degraded 1"), "{metrics}");
        let dropped = log.status().dropped_rows;
        assert!(dropped > 0);
        assert!(
            metrics.lines().any(|l| l == format!("intent_query_log_dropped_rows_total {dropped}")),
            "{metrics}"
        );

        // Space comes back: the log recovers, /ready is plain again.
        log.set_max_pages(1 << 30);
        log.flush().await;
        let (status, text, _) = send(&s, "GET", "/ready", "").await;
        assert_eq!(status, StatusCode::OK, "{text}");
        assert!(text.contains(r#""degraded":false"#), "{text}");
    }
}
