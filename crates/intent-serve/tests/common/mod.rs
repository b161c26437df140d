//! Shared by the server tests: tiny trained models, a server state, and request helpers.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use intent_data::{Dataset, Example};
use intent_serve::server::{router, AppState, ServerOptions};
use intent_serve::{ModelSlot, ModelSpec, QueryLog};
use intent_train::{train_mlp_to_dir, DeviceSpec, EngineConfig, MlpOptions};
use tower::ServiceExt;

pub const TOKEN: &str = "test-token-0123456789abcdef";

/// Four intents with their own keywords; `n` examples each.
pub fn synthetic(n: usize) -> Dataset {
    let keywords = [
        ["card", "debit", "plastic", "chip"],
        ["transfer", "send", "wire", "payee"],
        ["refund", "return", "money", "back"],
        ["password", "login", "reset", "locked"],
    ];
    let fillers = ["please", "my", "the", "i", "need", "help", "with", "now", "today", "can", "you"];
    let mut v = Vec::new();
    for (label, words) in keywords.iter().enumerate() {
        for j in 0..n {
            let text = format!("{} {} {} {}", fillers[j % fillers.len()], words[j % 4], fillers[(j * 7 + 3) % fillers.len()], words[(j / 4 + 1) % 4]);
            v.push(Example::new(text, ["card", "transfer", "refund", "password"][label]));
        }
    }
    Dataset::new(v)
}

/// Trains a small MLP on `data` into `out` (seeded, a second or so).
pub fn train_on(data: &Dataset, out: &Path, seed: u64) -> PathBuf {
    let opts = MlpOptions {
        hidden_size: 16,
        engine: EngineConfig { epochs: 10, batch_size: 16, lr: 1e-2, patience: None, seed, progress: false, ..Default::default() },
        ..Default::default()
    };
    train_mlp_to_dir(DeviceSpec::Cpu, data, None, &opts, out).expect("training the test model");
    out.to_path_buf()
}

/// A trained test model in `dir/name`.
pub fn model(dir: &Path, name: &str, seed: u64) -> PathBuf {
    train_on(&synthetic(24), &dir.join(name), seed)
}

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
pub async fn call(state: &AppState, method: &str, uri: &str, body: Option<&str>, token: Option<&str>) -> Reply {
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
    let content_type = resp.headers().get("content-type").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX).await.unwrap();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let json = serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text.clone()));
    Reply { status, content_type, json, text }
}

/// `POST /v1/predict` with `body`.
pub async fn predict(state: &AppState, body: &str) -> Reply {
    call(state, "POST", "/v1/predict", Some(body), None).await
}
