//! Every public route answers as documented; bad requests get JSON errors with the right
//! status; admin routes need the right token; `/metrics` counts what happened.

mod common;

use axum::http::StatusCode;
use common::*;
use intent_server::server::{AppState, ServerOptions};
use intent_server::ModelSlot;

#[tokio::test]
async fn predict_single_and_batch() {
    let dir = tempfile::tempdir().unwrap();
    let m = model(dir.path(), "faq", 1);
    let s = state(&m, dir.path(), false, ServerOptions::default());

    let r = predict(&s, r#"{"text": "please reset my password i am locked"}"#).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["label"], "password");
    let conf = r.json["confidence"].as_f64().unwrap();
    assert!(conf > 0.3 && conf <= 1.0, "{conf}");
    assert_eq!(r.json["fallback"], false);
    assert_eq!(r.json["top_k"].as_array().unwrap().len(), 3);
    assert_eq!(r.json["top_k"][0]["label"], "password");
    assert_eq!(r.json["model"], "faq");
    assert!(r.json["version"].as_str().unwrap().starts_with("sha256:"));

    let r =
        predict(&s, r#"{"texts": ["send a wire to my payee", "where is my debit card"], "top_k": 2}"#).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let p = r.json["predictions"].as_array().unwrap();
    assert_eq!(p.len(), 2);
    assert_eq!((p[0]["label"].as_str(), p[1]["label"].as_str()), (Some("transfer"), Some("card")));
    assert_eq!(p[1]["top_k"].as_array().unwrap().len(), 2);
    // The same text alone and in a batch gets the same confidence.
    let alone = predict(&s, r#"{"text": "where is my debit card"}"#).await;
    assert_eq!(alone.json["confidence"], p[1]["confidence"]);
    // top_k beyond the label count is cut to it.
    let r = predict(&s, r#"{"text": "refund", "top_k": 50}"#).await;
    assert_eq!(r.json["top_k"].as_array().unwrap().len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_text_the_tokenizer_rejects_is_a_422_not_a_label() {
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join("bert");
    intent_testkit::bert::write_tiny_classifier(&m, true);
    let s = state(&m, dir.path(), true, ServerOptions::default());
    let r = predict(&s, r#"{"text": "hello world"}"#).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    // "zebra" is outside the word-level vocabulary, which has no unknown token.
    for body in [r#"{"text": "hello zebra"}"#, r#"{"texts": ["hello world", "zebra"]}"#] {
        let r = predict(&s, body).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {}", r.text);
        assert!(r.json["error"].as_str().unwrap().contains("tokenizer"), "{}", r.text);
        assert!(r.json.get("label").is_none(), "no label for a rejected text: {}", r.text);
    }
    // The server goes on answering.
    assert_eq!(predict(&s, r#"{"text": "my card lost"}"#).await.status, StatusCode::OK);
}

#[tokio::test]
async fn fallback_flag_follows_the_threshold() {
    let dir = tempfile::tempdir().unwrap();
    let m = model(dir.path(), "faq", 1);
    let mut opts = ServerOptions::default();
    opts.load.fallback_threshold = Some(0.999);
    let s = state(&m, dir.path(), false, opts);
    let r = predict(&s, r#"{"text": "hello there"}"#).await;
    assert_eq!(r.json["fallback"], true, "{}", r.text);
    let r = call(&s, "GET", "/v1/models", None, None).await;
    assert!((r.json["models"][0]["fallback_threshold"].as_f64().unwrap() - 0.999).abs() < 1e-6);
}

#[tokio::test]
async fn bad_requests_get_json_errors() {
    let dir = tempfile::tempdir().unwrap();
    let m = model(dir.path(), "faq", 1);
    let opts = ServerOptions { max_body_bytes: 4096, max_text_chars: 50, max_texts: 3, ..Default::default() };
    let s = state(&m, dir.path(), false, opts);
    let long = "a".repeat(51);
    let cases: Vec<(String, StatusCode, &str)> = vec![
        (r#"{"text": "a", "texts": ["b"]}"#.into(), StatusCode::UNPROCESSABLE_ENTITY, "not both"),
        ("{}".into(), StatusCode::UNPROCESSABLE_ENTITY, "missing `text`"),
        (r#"{"texts": []}"#.into(), StatusCode::UNPROCESSABLE_ENTITY, "empty"),
        (r#"{"text": "  "}"#.into(), StatusCode::UNPROCESSABLE_ENTITY, "`text` is empty"),
        (format!(r#"{{"text": "{long}"}}"#), StatusCode::UNPROCESSABLE_ENTITY, "51 characters; at most 50"),
        (format!(r#"{{"texts": ["ok", "{long}"]}}"#), StatusCode::UNPROCESSABLE_ENTITY, "texts[1]"),
        (r#"{"texts": ["a", "b", "c", "d"]}"#.into(), StatusCode::UNPROCESSABLE_ENTITY, "4 texts"),
        (r#"{"text": "a", "top_k": 0}"#.into(), StatusCode::UNPROCESSABLE_ENTITY, "top_k"),
        (r#"{"text": "a", "colour": 1}"#.into(), StatusCode::UNPROCESSABLE_ENTITY, "unknown field"),
        (r#"{"text": 5}"#.into(), StatusCode::UNPROCESSABLE_ENTITY, "invalid type"),
        (r#"{"text": "a""#.into(), StatusCode::BAD_REQUEST, "EOF"),
        (format!(r#"{{"text": "{}"}}"#, "a".repeat(5000)), StatusCode::PAYLOAD_TOO_LARGE, "too large"),
    ];
    for (body, status, needle) in cases {
        let r = predict(&s, &body).await;
        assert_eq!(r.status, status, "{body}: {}", r.text);
        assert!(r.content_type.starts_with("application/json"), "{body}: {}", r.content_type);
        let msg = r.json["error"].as_str().unwrap_or_else(|| panic!("{body}: no error field in {}", r.text));
        assert!(msg.contains(needle), "{body}: '{msg}' lacks '{needle}'");
    }
    // No JSON content type.
    let r = call(&s, "POST", "/v1/predict", None, None).await;
    assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(r.json["error"].is_string());
    // Unknown route, wrong method.
    let r = call(&s, "GET", "/v2/nothing", None, None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(r.json["error"].as_str().unwrap().contains("/v2/nothing"));
    assert_eq!(call(&s, "GET", "/v1/predict", None, None).await.status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn health_ready_models_recommend() {
    let dir = tempfile::tempdir().unwrap();
    let empty = AppState::new(ModelSlot::default(), None, ServerOptions::default());
    assert_eq!(call(&empty, "GET", "/health", None, None).await.json["status"], "ok");
    let r = call(&empty, "GET", "/ready", None, None).await;
    assert_eq!((r.status, &r.json["ready"]), (StatusCode::SERVICE_UNAVAILABLE, &serde_json::json!(false)));
    assert_eq!(predict(&empty, r#"{"text": "hi"}"#).await.status, StatusCode::SERVICE_UNAVAILABLE);

    let m = model(dir.path(), "faq", 1);
    let s = state(&m, dir.path(), false, ServerOptions::default());
    let r = call(&s, "GET", "/ready", None, None).await;
    assert_eq!((r.status, &r.json["model"]), (StatusCode::OK, &serde_json::json!("faq")));
    let r = call(&s, "GET", "/v1/models", None, None).await;
    let info = &r.json["models"][0];
    assert_eq!(info["kind"], "mlp");
    assert_eq!(info["labels"], serde_json::json!(["card", "password", "refund", "transfer"]));
    assert_eq!(info["batched"], false);
    assert!(info["metrics"].is_object(), "metrics.json is reported: {info}");
    assert_eq!(r.json["previous"], serde_json::Value::Null);
    let r = call(&s, "POST", "/v1/recommend", Some(r#"{"user": 1}"#), None).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.json["error"].as_str().unwrap().contains("recommender"), "{}", r.text);
}

#[tokio::test]
async fn admin_routes_need_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let m = model(dir.path(), "faq", 1);
    // No token configured: disabled, whatever the request says.
    let open = state(&m, dir.path(), true, ServerOptions::default());
    let r = call(&open, "POST", "/admin/rollback", None, Some(TOKEN)).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.json["error"].as_str().unwrap().contains("disabled"));
    drop(open);

    let dir2 = tempfile::tempdir().unwrap();
    let s = state(&m, dir2.path(), true, with_token());
    for uri in ["/admin/labeling/queue", "/admin/labeling/export?format=jsonl"] {
        let r = call(&s, "GET", uri, None, None).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{uri}");
        assert!(r.json["error"].as_str().unwrap().contains("missing"));
        for wrong in ["nope", &TOKEN[..TOKEN.len() - 1], &format!("{TOKEN}x")] {
            let r = call(&s, "GET", uri, None, Some(wrong)).await;
            assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{uri} {wrong}");
            assert_eq!(r.json["error"], "wrong admin token");
        }
        assert_eq!(call(&s, "GET", uri, None, Some(TOKEN)).await.status, StatusCode::OK, "{uri}");
    }
    // A non-bearer scheme is not accepted.
    let req = axum::http::Request::builder()
        .uri("/admin/labeling/queue")
        .header("authorization", format!("Basic {TOKEN}"))
        .body(axum::body::Body::empty())
        .unwrap();
    let resp = tower::ServiceExt::oneshot(intent_server::server::router(s.clone()), req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(resp.headers()["www-authenticate"], "Bearer");
}

#[tokio::test]
async fn metrics_count_requests_labels_and_models() {
    let dir = tempfile::tempdir().unwrap();
    let m = model(dir.path(), "faq", 1);
    let mut opts = ServerOptions::default();
    opts.load.fallback_threshold = Some(0.999);
    let s = state(&m, dir.path(), false, opts);
    for _ in 0..3 {
        assert_eq!(predict(&s, r#"{"text": "send a wire transfer"}"#).await.status, StatusCode::OK);
    }
    assert_eq!(predict(&s, r#"{"text": ""}"#).await.status, StatusCode::UNPROCESSABLE_ENTITY);
    let r = call(&s, "GET", "/metrics", None, None).await;
    assert!(r.content_type.starts_with("text/plain; version=0.0.4"), "{}", r.content_type);
    let text = r.text;
    let has = |line: &str| text.lines().any(|l| l == line);
    assert!(has(r#"intent_http_requests_total{route="/v1/predict",status="200"} 3"#), "{text}");
    assert!(has(r#"intent_http_requests_total{route="/v1/predict",status="422"} 1"#), "{text}");
    assert!(has(r#"intent_predictions_total{label="transfer"} 3"#), "{text}");
    assert!(has("intent_low_confidence_total 3"), "{text}");
    assert!(has(r#"intent_http_request_duration_seconds_count{route="/v1/predict"} 4"#), "{text}");
    let version = s.slot().current().unwrap().source.version.clone();
    assert!(has(&format!(r#"intent_model_info{{model="faq",version="{version}"}} 1"#)), "{text}");
    assert!(has("intent_model_swaps_total 0"), "{text}");
}

#[tokio::test]
async fn control_characters_are_refused_and_model_info_names_no_host_path() {
    let dir = tempfile::tempdir().unwrap();
    let m = model(dir.path(), "faq", 1);
    let s = state(&m, dir.path(), true, ServerOptions::default());
    for body in [r#"{"text": "my card\u0000"}"#, r#"{"texts": ["ok", "bell \u0007"]}"#] {
        let r = predict(&s, body).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {}", r.text);
        assert!(r.json["error"].as_str().unwrap().contains("control character U+00"), "{}", r.text);
    }
    // Tabs and line breaks are text.
    assert_eq!(predict(&s, r#"{"text": "my\tdebit card\r\nplease"}"#).await.status, StatusCode::OK);
    s.query_log().unwrap().flush().await;
    assert_eq!(s.query_log().unwrap().count().unwrap(), 1, "refused texts are not logged");

    let r = call(&s, "GET", "/v1/models", None, None).await;
    let root = dir.path().to_string_lossy().to_string();
    assert!(r.json["models"][0].get("path").is_none() && !r.text.contains(&root), "{}", r.text);
}
