//! Shared by the server tests: tiny trained models, a server state, and request helpers.
#![allow(dead_code)]

use std::path::Path;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use intent_serve::ModelSpec;
use intent_server::server::{router, AppState, ServerOptions};
use intent_server::{ModelSlot, QueryLog};
pub use intent_testkit::*;
use tower::ServiceExt;

pub const TOKEN: &str = "test-token-0123456789abcdef";

/// Server state serving `model`, with a query log in `dir` when `log` is set.
pub fn state(model: &Path, dir: &Path, log: bool, options: ServerOptions) -> AppState {
    let log = log.then(|| QueryLog::open(&dir.join("queries.sqlite"), false).expect("query log"));
    let state = AppState::new(ModelSlot::default(), log, options);
    state.load(&ModelSpec::Dir(model.to_path_buf())).expect("loading the test model");
    state
}

/// Options with the admin token set.
pub fn with_token() -> ServerOptions {
    ServerOptions { admin_token: Some(TOKEN.into()), ..Default::default() }
}

/// A response: status, content type and body (JSON when it parses, else a string value).
pub struct Reply {
    pub status: StatusCode,
    pub content_type: String,
    pub json: serde_json::Value,
    pub text: String,
}

/// Sends one request through the router.
pub async fn call(
    state: &AppState,
    method: &str,
    uri: &str,
    body: Option<&str>,
    token: Option<&str>,
) -> Reply {
    let mut req = Request::builder().method(method).uri(uri);
    if body.is_some() {
        req = req.header("content-type", "application/json");
    }
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let req = req.body(body.map(|b| Body::from(b.to_string())).unwrap_or_else(Body::empty)).unwrap();
    let resp = router(state.clone()).oneshot(req).await.unwrap();
    let status = resp.status();
    let content_type =
        resp.headers().get("content-type").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX).await.unwrap();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let json = serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text.clone()));
    Reply { status, content_type, json, text }
}

/// `POST /v1/predict` with `body`.
pub async fn predict(state: &AppState, body: &str) -> Reply {
    call(state, "POST", "/v1/predict", Some(body), None).await
}

/// A low-confidence query row of model `faq` version 1, logged now.
pub fn query_row(text: &str) -> intent_server::QueryRow {
    intent_server::QueryRow {
        ts_ms: intent_server::querylog::now_ms(),
        text: text.into(),
        label: "card".into(),
        confidence: 0.1,
        fallback: true,
        top_k: Vec::new(),
        model: "faq".into(),
        model_version: "1".into(),
        latency_us: 1,
        teacher_label: None,
    }
}
