//! The routes behind the labeling console: the queue's suggestions, filters and orders; undo
//! (`"labels": []` with `replaces`); the counters; the served model's report plots; the
//! registry's versions, promote and rollback; the console's files and their headers.

mod common;

use axum::http::StatusCode;
use common::*;
use intent_serve::ModelSpec;
use intent_server::server::{AppState, ServerOptions};
use intent_server::ModelSlot;
use serde_json::json;

fn low_threshold_token() -> ServerOptions {
    let mut o = with_token();
    o.load.fallback_threshold = Some(0.999);
    o
}

#[tokio::test]
async fn queue_suggestions_filters_orders_undo_and_counters() {
    let dir = tempfile::tempdir().unwrap();
    let m = model(dir.path(), "faq", 1);
    let s = state(&m, dir.path(), true, low_threshold_token());
    for t in ["my card is stuck", "give me my money back", "card stuck again", "give me my money back"] {
        let r = predict(&s, &json!({ "text": t }).to_string()).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    }
    s.query_log().unwrap().flush().await;

    let queue = |q: &'static str| {
        let s = s.clone();
        async move {
            let r = call(&s, "GET", &format!("/admin/labeling/queue?{q}"), None, Some(TOKEN)).await;
            assert_eq!(r.status, StatusCode::OK, "{q}: {}", r.text);
            r.json["items"].as_array().unwrap().clone()
        }
    };
    let texts = |items: &[serde_json::Value]| -> Vec<String> {
        items.iter().map(|i| i["text"].as_str().unwrap().to_string()).collect()
    };
    let oldest = queue("").await;
    assert_eq!(texts(&oldest), ["my card is stuck", "give me my money back", "card stuck again"]);
    // Each item carries the model's best labels of its first query (at most 3), best first.
    let first = &oldest[0];
    let sugg = first["suggestions"].as_array().unwrap();
    assert!(!sugg.is_empty() && sugg.len() <= 3, "{first}");
    assert_eq!(sugg[0]["label"], first["predicted"]);
    assert!((sugg[0]["score"].as_f64().unwrap() - first["confidence"].as_f64().unwrap()).abs() < 1e-6);
    let scores: Vec<f64> = sugg.iter().map(|x| x["score"].as_f64().unwrap()).collect();
    assert!(scores.windows(2).all(|w| w[0] >= w[1]), "{scores:?}");
    assert_eq!(first["model_version"], s.slot().current().unwrap().source.version);

    assert_eq!(
        texts(&queue("order=newest").await),
        ["card stuck again", "give me my money back", "my card is stuck"]
    );
    assert_eq!(texts(&queue("order=frequent").await)[0], "give me my money back");
    assert_eq!(texts(&queue("q=STUCK").await), ["my card is stuck", "card stuck again"]);
    let predicted = first["predicted"].as_str().unwrap().to_string();
    let by_label =
        call(&s, "GET", &format!("/admin/labeling/queue?predicted={predicted}"), None, Some(TOKEN)).await;
    assert!(by_label.json["items"].as_array().unwrap().iter().all(|i| i["predicted"] == predicted.as_str()));
    let c = first["confidence"].as_f64().unwrap();
    let above = format!("/admin/labeling/queue?min_confidence={}", (c + 1e-4).min(1.0));
    let r = call(&s, "GET", &above, None, Some(TOKEN)).await;
    assert!(r.json["items"].as_array().unwrap().iter().all(|i| i["confidence"].as_f64().unwrap() > c));
    for bad in ["min_confidence=2", "max_confidence=-0.1", "order=random", "q="] {
        let r = call(&s, "GET", &format!("/admin/labeling/queue?{bad}"), None, Some(TOKEN)).await;
        let want = if bad == "q=" { StatusCode::OK } else { StatusCode::UNPROCESSABLE_ENTITY };
        assert_eq!(r.status, want, "{bad}: {}", r.text);
    }

    // Label two, undo one: it waits again, and the history says so.
    let id0 = oldest[0]["id"].as_i64().unwrap();
    let id1 = oldest[1]["id"].as_i64().unwrap();
    for (id, label) in [(id0, "card"), (id1, "refund")] {
        let r = call(
            &s,
            "POST",
            &format!("/admin/labeling/{id}"),
            Some(&json!({ "label": label }).to_string()),
            Some(TOKEN),
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    }
    let stats = call(&s, "GET", "/admin/labeling/stats", None, Some(TOKEN)).await;
    assert_eq!(stats.status, StatusCode::OK, "{}", stats.text);
    assert_eq!(stats.json["waiting"], 1);
    assert_eq!(stats.json["labeled_since"], 2);
    assert_eq!(stats.json["labeled_total"], 2);
    assert_eq!(stats.json["queries_last_hour"], 4);
    assert_eq!(stats.json["fallback_last_hour"], 4);
    assert_eq!(stats.json["fallback_rate_last_hour"], 1.0);
    let later = intent_server::querylog::now_ms() + 60_000;
    let r = call(&s, "GET", &format!("/admin/labeling/stats?since_ms={later}"), None, Some(TOKEN)).await;
    assert_eq!(r.json["labeled_since"], 0);

    // An empty label list needs `replaces`; with the wrong one it is a conflict.
    let undo = |body: serde_json::Value| {
        let s = s.clone();
        async move {
            call(&s, "POST", &format!("/admin/labeling/{id1}"), Some(&body.to_string()), Some(TOKEN)).await
        }
    };
    let r = undo(json!({ "labels": [] })).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.json["error"].as_str().unwrap().contains("replaces"), "{}", r.text);
    let r = undo(json!({ "labels": [], "replaces": "card" })).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(r.json["current"], json!(["refund"]));
    let r = undo(json!({ "labels": [], "replaces": "refund" })).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["changed"], true);
    // The same undo again (a retried request) changes nothing, as a repeated label does.
    let r = undo(json!({ "labels": [], "replaces": "refund" })).await;
    assert_eq!((r.status, &r.json["changed"]), (StatusCode::OK, &json!(false)), "{}", r.text);
    assert_eq!(texts(&queue("").await), ["give me my money back", "card stuck again"]);
    let h = call(&s, "GET", &format!("/admin/labeling/{id1}/history"), None, Some(TOKEN)).await;
    let changes = h.json["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 2, "{}", h.text);
    assert_eq!(changes[1]["labels"], json!([]));
    assert_eq!(changes[1]["previous"], json!(["refund"]));
    let export = call(&s, "GET", "/admin/labeling/export", None, Some(TOKEN)).await;
    assert_eq!(export.text.lines().count(), 1, "{}", export.text);
    assert!(export.text.contains("\"my card is stuck\""));
    let stats = call(&s, "GET", "/admin/labeling/stats", None, Some(TOKEN)).await;
    assert_eq!((stats.json["waiting"].as_i64(), stats.json["labeled_total"].as_i64()), (Some(2), Some(1)));

    // Every console route takes the admin token.
    for (method, uri) in [
        ("GET", "/admin/labeling/stats"),
        ("GET", "/admin/model/report"),
        ("GET", "/admin/model/report/confusion_matrix.svg"),
        ("GET", "/admin/registry"),
        ("POST", "/admin/registry/rollback"),
    ] {
        assert_eq!(call(&s, method, uri, None, None).await.status, StatusCode::UNAUTHORIZED, "{uri}");
        assert_eq!(
            call(&s, method, uri, None, Some("wrong")).await.status,
            StatusCode::UNAUTHORIZED,
            "{uri}"
        );
    }
}

#[tokio::test]
async fn report_plots_of_the_served_model_only() {
    let dir = tempfile::tempdir().unwrap();
    let m = model(dir.path(), "faq", 1);
    std::fs::create_dir_all(m.join("report")).unwrap();
    std::fs::write(m.join("report/confusion_matrix.svg"), "<svg xmlns='http://www.w3.org/2000/svg'/>")
        .unwrap();
    std::fs::write(dir.path().join("secret.svg"), "secret").unwrap();
    let s = state(&m, dir.path(), false, with_token());
    let r = call(&s, "GET", "/admin/model/report", None, Some(TOKEN)).await;
    assert_eq!(r.json["files"], json!(["confusion_matrix.svg"]), "{}", r.text);
    let r = call(&s, "GET", "/admin/model/report/confusion_matrix.svg", None, Some(TOKEN)).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.content_type, "image/svg+xml");
    assert!(r.text.starts_with("<svg"));
    for other in ["confidence_histogram.svg", "..%2F..%2Fsecret.svg", "report.json", "..%2Fconfig.json"] {
        let r = call(&s, "GET", &format!("/admin/model/report/{other}"), None, Some(TOKEN)).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{other}: {}", r.text);
    }
    // A folder is not a registry alias: the registry routes say how to get one.
    let r = call(&s, "GET", "/admin/registry", None, Some(TOKEN)).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert!(r.json["error"].as_str().unwrap().contains("NAME@ALIAS"), "{}", r.text);
}

#[tokio::test]
async fn registry_versions_promote_and_rollback_reload_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("models");
    let reg = intent_registry::Registry::new(&root).model("faq").unwrap();
    {
        let lock = reg.lock().unwrap();
        for seed in [1, 2] {
            let m = model(dir.path(), &format!("m{seed}"), seed);
            reg.register(&lock, &m, None, Some(format!("seed {seed}"))).unwrap();
        }
        reg.promote(&lock, 1, "test").unwrap();
    }
    let s = AppState::new(ModelSlot::default(), None, with_token());
    s.load(&ModelSpec::parse(&format!("{}/faq@current", root.display()))).unwrap();

    let r = call(&s, "GET", "/admin/registry", None, Some(TOKEN)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["name"], "faq");
    assert_eq!(r.json["alias"], "current");
    let versions: Vec<u64> =
        r.json["versions"].as_array().unwrap().iter().map(|v| v["version"].as_u64().unwrap()).collect();
    assert_eq!(versions, [2, 1], "newest first");
    assert_eq!(r.json["aliases"]["current"], 1);
    assert_eq!(r.json["versions"][1]["note"], "seed 1");

    let r = call(&s, "POST", "/admin/registry/promote", Some(r#"{"version": 2}"#), Some(TOKEN)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["to"]["version"], "2");
    assert_eq!(s.slot().current().unwrap().source.version, "2");
    assert_eq!(reg.alias("previous").unwrap(), Some(1));

    let r = call(&s, "POST", "/admin/registry/rollback", None, Some(TOKEN)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(s.slot().current().unwrap().source.version, "1");

    let r = call(&s, "POST", "/admin/registry/promote", Some(r#"{"version": 9}"#), Some(TOKEN)).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    let msg = r.json["error"].as_str().unwrap();
    assert!(msg.contains("no version 9"), "{msg}");
    assert!(!msg.contains(&*root.to_string_lossy()), "no host path: {msg}");
    let r = call(&s, "POST", "/admin/registry/promote", Some(r#"{"version": "two"}"#), Some(TOKEN)).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    // While another process holds the registry's lock, nothing moves.
    let held = reg.lock().unwrap();
    let r = call(&s, "POST", "/admin/registry/promote", Some(r#"{"version": 2}"#), Some(TOKEN)).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.json["error"].as_str().unwrap().contains("lock"), "{}", r.text);
    drop(held);
    assert_eq!(s.slot().current().unwrap().source.version, "1");
}

#[tokio::test]
async fn console_files_carry_a_strict_policy() {
    let s = AppState::new(ModelSlot::default(), None, ServerOptions::default());
    for (uri, kind) in
        [("/ui/", "text/html"), ("/ui/console.js", "text/javascript"), ("/ui/console.css", "text/css")]
    {
        let req = axum::http::Request::get(uri).body(axum::body::Body::empty()).unwrap();
        let resp = tower::ServiceExt::oneshot(intent_server::server::router(s.clone()), req).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{uri}");
        let h = resp.headers();
        assert!(h["content-type"].to_str().unwrap().starts_with(kind), "{uri}");
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"), "{csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
        assert_eq!(h["x-content-type-options"], "nosniff");
    }
    let page = call(&s, "GET", "/ui/", None, None).await.text;
    // No inline script or handler: the only script is the file.
    assert_eq!(page.matches("<script").count(), 1);
    assert!(page.contains(r#"<script src="/ui/console.js" defer></script>"#));
    let handlers = page.split(" on").skip(1).filter(|rest| {
        let name: String = rest.chars().take_while(char::is_ascii_lowercase).collect();
        !name.is_empty() && rest[name.len()..].starts_with('=')
    });
    assert_eq!(handlers.count(), 0, "no inline event handlers");
    let js = call(&s, "GET", "/ui/console.js", None, None).await.text;
    assert!(
        !js.contains("innerHTML") && !js.contains("insertAdjacentHTML"),
        "texts are never parsed as HTML"
    );
    assert!(!js.contains("localStorage"), "the token stays in session storage");
    let r = call(&s, "GET", "/ui", None, None).await;
    assert_eq!((r.status, r.text), (StatusCode::OK, page));
}
