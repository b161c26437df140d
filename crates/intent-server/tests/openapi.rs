//! `/openapi.json` is a valid OpenAPI 3.1 document that lists every route the server answers,
//! and `/docs` renders it from files compiled into the binary.

mod common;

use std::collections::BTreeSet;

use axum::http::StatusCode;
use common::*;
use intent_server::server::{AppState, ServerOptions};
use intent_server::ModelSlot;

/// Every route of the server, as (method, path).
const ROUTES: [(&str, &str); 32] = [
    ("POST", "/v1/predict"),
    ("POST", "/v1/recommend"),
    ("GET", "/v1/models"),
    ("POST", "/predict"),
    ("POST", "/embed"),
    ("POST", "/model/parse"),
    ("POST", "/admin/reload"),
    ("POST", "/admin/rollback"),
    ("GET", "/admin/labeling/queue"),
    ("GET", "/admin/labeling/export"),
    ("POST", "/admin/labeling/{id}"),
    ("GET", "/admin/labeling/{id}/history"),
    ("GET", "/admin/labeling/stats"),
    ("GET", "/admin/querylog/quality"),
    ("GET", "/admin/model/report"),
    ("GET", "/admin/model/report/{file}"),
    ("GET", "/admin/registry"),
    ("POST", "/admin/registry/promote"),
    ("POST", "/admin/registry/rollback"),
    ("POST", "/admin/retrain"),
    ("GET", "/admin/retrain/{id}"),
    ("GET", "/health"),
    ("GET", "/ready"),
    ("GET", "/metrics"),
    ("GET", "/openapi.json"),
    ("GET", "/docs"),
    ("GET", "/docs/docs.js"),
    ("GET", "/docs/docs.css"),
    ("GET", "/ui"),
    ("GET", "/ui/"),
    ("GET", "/ui/console.js"),
    ("GET", "/ui/console.css"),
];

#[tokio::test]
async fn the_document_is_valid_openapi_and_lists_every_route() {
    let state = AppState::new(ModelSlot::default(), None, ServerOptions::default());
    let r = call(&state, "GET", "/openapi.json", None, None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.content_type.starts_with("application/json"), "{}", r.content_type);

    // It parses as OpenAPI 3.1, and every reference in it resolves.
    let spec = oas3::from_json(&r.text).expect("a valid OpenAPI 3.1 document");
    assert_eq!(spec.validate_version().unwrap().major, 3);
    let mut documented = BTreeSet::new();
    for (path, method, op) in spec.operations() {
        documented.insert((method.to_string(), path.clone()));
        if let Some(body) = &op.request_body {
            let body = body.resolve(&spec).unwrap_or_else(|e| panic!("{method} {path}: {e}"));
            for media in body.content.values() {
                if let Some(s) = &media.schema {
                    s.resolve(&spec).unwrap_or_else(|e| panic!("{method} {path} request: {e}"));
                }
            }
        }
        let responses = op.responses.as_ref().unwrap_or_else(|| panic!("{method} {path}: no responses"));
        assert!(responses.keys().any(|k| k.starts_with('2')), "{method} {path}: no 2xx answer");
        for (status, resp) in responses {
            let resp = resp.resolve(&spec).unwrap_or_else(|e| panic!("{method} {path} {status}: {e}"));
            for media in resp.content.values() {
                if let Some(s) = &media.schema {
                    s.resolve(&spec).unwrap_or_else(|e| panic!("{method} {path} {status}: {e}"));
                }
            }
        }
    }
    let expected: BTreeSet<(String, String)> =
        ROUTES.iter().map(|(m, p)| (m.to_string(), p.to_string())).collect();
    assert_eq!(documented, expected);
    // The bearer schemes the routes name exist.
    let schemes = &spec.components.as_ref().unwrap().security_schemes;
    assert!(schemes.contains_key("api_key") && schemes.contains_key("admin_token"));
}

#[tokio::test]
async fn every_documented_route_is_served() {
    // Every route of the document reaches a handler: no fallback 404, no 405.
    let dir = tempfile::tempdir().unwrap();
    let m = model(dir.path(), "faq", 1);
    let state = state(&m, dir.path(), true, with_token());
    for (method, path) in ROUTES {
        let uri = path.replace("{id}", "1").replace("{file}", "confusion_matrix.svg");
        let body = (method == "POST").then_some("{}");
        let r = call(&state, method, &uri, body, Some(TOKEN)).await;
        assert_ne!(r.status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
        assert!(!r.text.contains("no route"), "{method} {path}: {}", r.text);
    }
    // And an undocumented one is the JSON 404.
    let r = call(&state, "GET", "/v2/predict", None, None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(r.text.contains("no route"), "{}", r.text);
}

#[tokio::test]
async fn the_docs_page_is_self_contained() {
    let state = AppState::new(ModelSlot::default(), None, ServerOptions::default());
    let page = call(&state, "GET", "/docs", None, None).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.content_type.starts_with("text/html"), "{}", page.content_type);
    // Only same-origin files: no CDN, no inline script.
    for needle in ["/docs/docs.js", "/docs/docs.css", "/openapi.json"] {
        assert!(page.text.contains(needle), "{needle}");
    }
    assert!(!page.text.contains("http://") && !page.text.contains("https://"), "{}", page.text);
    let js = call(&state, "GET", "/docs/docs.js", None, None).await;
    assert!(js.content_type.starts_with("text/javascript"), "{}", js.content_type);
    assert!(js.text.contains("fetch(\"/openapi.json\")") && !js.text.contains("innerHTML"));
    let css = call(&state, "GET", "/docs/docs.css", None, None).await;
    assert!(css.content_type.starts_with("text/css"), "{}", css.content_type);
}
