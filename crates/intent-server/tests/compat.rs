//! The routes of text-embeddings-inference (`/predict`, `/embed`) and Rasa (`/model/parse`)
//! answer the JSON those servers' clients send as those servers do; the API key and CORS.

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::*;
use intent_server::server::{router, AppState, ServerOptions};
use serde_json::Value;
use tower::ServiceExt;

async fn post(s: &AppState, uri: &str, body: &str) -> Reply {
    call(s, "POST", uri, Some(body), None).await
}

/// `[{score, label}]` as (label, score) pairs.
fn pairs(v: &Value) -> Vec<(String, f64)> {
    v.as_array()
        .unwrap_or_else(|| panic!("not a list: {v}"))
        .iter()
        .map(|x| (x["label"].as_str().unwrap().to_string(), x["score"].as_f64().unwrap()))
        .collect()
}

#[tokio::test]
async fn tei_predict_answers_every_label_best_first_for_one_text_or_a_batch() {
    let dir = tempfile::tempdir().unwrap();
    let m = model(dir.path(), "faq", 1);
    let s = state(&m, dir.path(), true, ServerOptions::default());

    // The request of TEI's README: one text → one list over every label.
    let r = post(&s, "/predict", r#"{"inputs": "please reset my password i am locked"}"#).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let one = pairs(&r.json);
    assert_eq!(one.len(), 4);
    assert_eq!(one[0].0, "password");
    assert!(one.windows(2).all(|w| w[0].1 >= w[1].1), "sorted: {one:?}");
    assert!((one.iter().map(|p| p.1).sum::<f64>() - 1.0).abs() < 1e-5, "probabilities: {one:?}");
    // The same numbers as /v1/predict.
    let v1 = predict(&s, r#"{"text": "please reset my password i am locked", "top_k": 4}"#).await;
    for (i, (label, score)) in one.iter().enumerate() {
        assert_eq!(v1.json["top_k"][i]["label"], label.as_str());
        assert!((v1.json["top_k"][i]["score"].as_f64().unwrap() - score).abs() < 1e-6);
    }

    // TEI's batch form (a list of one-text sequences) and a plain list of texts: a list per text.
    for body in [
        r#"{"inputs": [["send a wire to my payee"], ["where is my debit card"]]}"#,
        r#"{"inputs": ["send a wire to my payee", "where is my debit card"], "truncate": false}"#,
    ] {
        let r = post(&s, "/predict", body).await;
        assert_eq!(r.status, StatusCode::OK, "{body}: {}", r.text);
        let rows = r.json.as_array().unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!((pairs(&rows[0])[0].0.as_str(), pairs(&rows[1])[0].0.as_str()), ("transfer", "card"));
    }

    // raw_scores: the logits, whose softmax is the probabilities.
    let r = post(&s, "/predict", r#"{"inputs": "please reset my password i am locked", "raw_scores": true}"#)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let raw = pairs(&r.json);
    assert_eq!(raw[0].0, "password");
    let z: f64 = raw.iter().map(|p| p.1.exp()).sum();
    for (label, logit) in &raw {
        let p = one.iter().find(|o| &o.0 == label).unwrap().1;
        assert!((logit.exp() / z - p).abs() < 1e-5, "{label}: softmax {} vs {p}", logit.exp() / z);
    }

    // Every text went through the query log like /v1/predict's (not the raw_scores request:
    // it has no probabilities to queue for labeling).
    s.query_log().unwrap().flush().await;
    assert_eq!(s.query_log().unwrap().count().unwrap(), 1 + 1 + 2 + 2);
}

#[tokio::test]
async fn tei_errors_have_tei_types_and_statuses() {
    let dir = tempfile::tempdir().unwrap();
    let m = model(dir.path(), "faq", 1);
    let opts = ServerOptions { max_text_chars: 20, max_texts: 2, ..Default::default() };
    let s = state(&m, dir.path(), false, opts);
    let long = "reset my password now please";
    for (body, status, kind, needle) in [
        (format!(r#"{{"inputs": "{long}"}}"#), 413, "validation", "at most 20"),
        (r#"{"inputs": [["my card", "my payee"]]}"#.to_string(), 413, "validation", "sentence pairs"),
        (r#"{"inputs": ["a card", "a wire", "a refund"]}"#.to_string(), 413, "validation", "at most 2"),
        (r#"{"inputs": []}"#.to_string(), 400, "empty", "empty"),
        (r#"{"inputs": ["  "]}"#.to_string(), 413, "validation", "inputs[0]"),
    ] {
        let r = post(&s, "/predict", &body).await;
        assert_eq!(r.status.as_u16(), status, "{body}: {}", r.text);
        assert_eq!(r.json["error_type"], kind, "{body}: {}", r.text);
        assert!(r.json["error"].as_str().unwrap().contains(needle), "{body}: {}", r.text);
    }
    // `truncate` cuts an over-long text instead (from the end unless told `left`).
    for dir in ["right", "Left"] {
        let body = format!(r#"{{"inputs": "{long}", "truncate": true, "truncation_direction": "{dir}"}}"#);
        let r = post(&s, "/predict", &body).await;
        assert_eq!(r.status, StatusCode::OK, "{dir}: {}", r.text);
    }
    // Malformed JSON is still a JSON error.
    let r = post(&s, "/predict", r#"{"inputs": "#).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_text_the_tokenizer_rejects_is_a_tei_tokenizer_error() {
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join("bert");
    intent_testkit::bert::write_tiny_classifier(&m, true);
    let s = state(&m, dir.path(), false, ServerOptions::default());
    let r = post(&s, "/predict", r#"{"inputs": "hello world"}"#).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(pairs(&r.json).len(), intent_testkit::bert::LABELS.len());
    let r = post(&s, "/predict", r#"{"inputs": "hello zebra"}"#).await;
    assert_eq!(
        (r.status, r.json["error_type"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("tokenizer"))
    );
}

#[tokio::test]
async fn rasa_parse_answers_as_rasa_with_its_fallback_intent() {
    let dir = tempfile::tempdir().unwrap();
    let m = model(dir.path(), "faq", 1);
    let s = state(&m, dir.path(), false, ServerOptions::default());
    // What Rasa's HTTP API clients send.
    let r = post(&s, "/model/parse", r#"{"text": "where is my debit card", "message_id": "b2831e73"}"#).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["text"], "where is my debit card");
    assert_eq!(r.json["message_id"], "b2831e73");
    assert_eq!(r.json["intent"]["name"], "card");
    assert_eq!(r.json["entities"], serde_json::json!([]));
    let ranking = r.json["intent_ranking"].as_array().unwrap();
    assert_eq!(ranking.len(), 4);
    assert_eq!(ranking[0]["name"], "card");
    assert_eq!(ranking[0]["confidence"], r.json["intent"]["confidence"]);
    let confidences: Vec<f64> = ranking.iter().map(|i| i["confidence"].as_f64().unwrap()).collect();
    assert!(confidences.windows(2).all(|w| w[0] >= w[1]), "{confidences:?}");

    // Rasa answers an empty message with no intent.
    let r = post(&s, "/model/parse", r#"{"text": ""}"#).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        (r.json["intent"]["name"].clone(), r.json["intent"]["confidence"].as_f64()),
        (Value::Null, Some(0.0))
    );

    // Under the fallback threshold: FallbackClassifier's `nlu_fallback`, at the threshold.
    let mut opts = ServerOptions::default();
    opts.load.fallback_threshold = Some(0.999);
    let s = state(&m, dir.path(), false, opts);
    let r = post(&s, "/model/parse", r#"{"text": "where is my debit card"}"#).await;
    assert_eq!(r.json["intent"]["name"], "nlu_fallback", "{}", r.text);
    assert!((r.json["intent"]["confidence"].as_f64().unwrap() - 0.999).abs() < 1e-6);
    assert_eq!(r.json["intent_ranking"][0]["name"], "nlu_fallback");
    assert_eq!(r.json["intent_ranking"][1]["name"], "card");
    assert!(r.json.get("message_id").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embed_serves_a_sentence_embedding_folder_as_tei_does() {
    let dir = tempfile::tempdir().unwrap();
    let enc = dir.path().join("encoder");
    intent_testkit::bert::write_tiny_encoder(&enc);
    let s = state(&enc, dir.path(), false, ServerOptions::default());
    let models = call(&s, "GET", "/v1/models", None, None).await;
    assert_eq!(models.json["models"][0]["kind"], "embedding", "{}", models.text);

    let r = post(&s, "/embed", r#"{"inputs": "hello world"}"#).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let v: Vec<Vec<f64>> = serde_json::from_value(r.json.clone()).unwrap();
    assert_eq!((v.len(), v[0].len()), (1, intent_testkit::bert::H));
    let norm = v[0].iter().map(|x| x * x).sum::<f64>().sqrt();
    assert!((norm - 1.0).abs() < 1e-5, "normalized by default: {norm}");
    // The library's numbers, and `normalize: false` gives the same direction unscaled.
    let direct = intent_serve::Embedder::load(&enc).unwrap().embed(&["hello world"], false).unwrap();
    let r = post(&s, "/embed", r#"{"inputs": ["hello world", "my card lost"], "normalize": false}"#).await;
    let raw: Vec<Vec<f64>> = serde_json::from_value(r.json.clone()).unwrap();
    assert_eq!(raw.len(), 2);
    let raw_norm = raw[0].iter().map(|x| x * x).sum::<f64>().sqrt();
    for (i, x) in raw[0].iter().enumerate() {
        assert!((x - direct[0][i] as f64).abs() < 1e-6);
        assert!((x / raw_norm - v[0][i]).abs() < 1e-5);
    }
    assert_ne!(raw[0], raw[1]);
    // Options this model cannot honour are validation errors; classification routes point here.
    let r = post(&s, "/embed", r#"{"inputs": "hello", "dimensions": 4}"#).await;
    assert_eq!((r.status.as_u16(), r.json["error_type"].as_str()), (413, Some("validation")), "{}", r.text);
    let r = predict(&s, r#"{"text": "hello"}"#).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.text.contains("/embed"), "{}", r.text);

    // A bag-of-words classifier has no encoder: /embed says so.
    let m = model(dir.path(), "faq", 1);
    let s = state(&m, dir.path(), false, ServerOptions::default());
    let r = post(&s, "/embed", r#"{"inputs": "my card"}"#).await;
    assert_eq!(r.status.as_u16(), 413, "{}", r.text);
    assert!(r.json["error"].as_str().unwrap().contains("no sentence encoder"), "{}", r.text);
}

/// Sends a request with extra headers through the router.
async fn send(
    s: &AppState,
    method: &str,
    uri: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (StatusCode, Vec<(String, String)>) {
    let mut req = Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = router(s.clone()).oneshot(req.body(Body::from(body.to_string())).unwrap()).await.unwrap();
    let h =
        resp.headers().iter().map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string())).collect();
    (resp.status(), h)
}

#[tokio::test]
async fn an_api_key_guards_the_prediction_routes_only() {
    let dir = tempfile::tempdir().unwrap();
    let m = model(dir.path(), "faq", 1);
    let key = "k-0123456789abcdef";
    let s = state(&m, dir.path(), false, ServerOptions { api_key: Some(key.into()), ..with_token() });
    let json = ("content-type", "application/json");
    let text = r#"{"text": "my card"}"#;
    for (uri, body) in
        [("/v1/predict", text), ("/predict", r#"{"inputs": "my card"}"#), ("/model/parse", text)]
    {
        let (status, headers) = send(&s, "POST", uri, &[json], body).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{uri}");
        assert!(headers.iter().any(|(k, v)| k == "www-authenticate" && v == "Bearer"), "{uri}");
        let (status, _) = send(&s, "POST", uri, &[json, ("authorization", "Bearer wrong-key")], body).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{uri}");
        // The scheme is case-insensitive (RFC 7235).
        let auth = format!("bearer {key}");
        let (status, _) = send(&s, "POST", uri, &[json, ("authorization", &auth)], body).await;
        assert_eq!(status, StatusCode::OK, "{uri}");
    }
    // Rasa's clients send the token in the query; only /model/parse takes it there.
    let (status, _) = send(&s, "POST", &format!("/model/parse?token={key}"), &[json], text).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = send(&s, "POST", &format!("/v1/predict?token={key}"), &[json], text).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // Health and the admin routes keep their own rules.
    assert_eq!(call(&s, "GET", "/health", None, None).await.status, StatusCode::OK);
    assert_ne!(
        call(&s, "GET", "/admin/labeling/queue", None, Some(TOKEN)).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        call(&s, "GET", "/admin/labeling/queue", None, Some(key)).await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn cors_allows_the_listed_origins() {
    let dir = tempfile::tempdir().unwrap();
    let m = model(dir.path(), "faq", 1);
    let opts = ServerOptions { cors_allow_origins: vec!["https://app.example".into()], ..Default::default() };
    let s = state(&m, dir.path(), false, opts);
    let preflight = |origin: &'static str| {
        [
            ("origin", origin),
            ("access-control-request-method", "POST"),
            ("access-control-request-headers", "content-type"),
        ]
    };
    let allowed = |h: &[(String, String)]| {
        h.iter().find(|(k, _)| k == "access-control-allow-origin").map(|(_, v)| v.clone())
    };
    let (status, h) = send(&s, "OPTIONS", "/v1/predict", &preflight("https://app.example"), "").await;
    assert_eq!((status, allowed(&h).as_deref()), (StatusCode::OK, Some("https://app.example")));
    let (_, h) = send(&s, "OPTIONS", "/v1/predict", &preflight("https://evil.example"), "").await;
    assert_eq!(allowed(&h), None);
    let json = ("content-type", "application/json");
    let (status, h) =
        send(&s, "POST", "/v1/predict", &[json, ("origin", "https://app.example")], r#"{"text": "my card"}"#)
            .await;
    assert_eq!((status, allowed(&h).as_deref()), (StatusCode::OK, Some("https://app.example")));
}
