//! Retraining with a running server: labels pulled from the server's labeling API and a
//! deployment that reloads it; the retrain job inside the server (`--retrain-every`).

mod common;

use std::path::Path;

use common::*;
use intent_data::write_dataset;
use intent_lifecycle::retrain::outcome::LabelsPulled;
use intent_lifecycle::retrain::{retrain, status, RetrainConfig, RunOptions, RunStatus};

fn setup(dir: &Path, extra: &str) -> RetrainConfig {
    RetrainConfig::read(&retrain_setup(dir, extra)).unwrap()
}

/// A server on a local port serving `D/models/faq@current`, with its query log in `D`.
async fn listening(
    d: &Path,
    options: intent_server::server::ServerOptions,
) -> (intent_server::server::AppState, u16) {
    let log = intent_server::QueryLog::open(&d.join("queries.sqlite"), false).unwrap();
    let state = intent_server::server::AppState::new(intent_server::ModelSlot::default(), Some(log), options);
    state.load(&intent_serve::ModelSpec::parse(&format!("{}/models/faq@current", d.display()))).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(intent_server::server::serve(listener, state.clone(), std::future::pending()));
    (state, port)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn labels_pulled_from_the_server_and_deployment_reloads_it() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().to_path_buf();
    let cfg = setup(&d, "");
    assert_eq!(retrain(&cfg, RunOptions::default()).unwrap().status, RunStatus::Deployed);
    // Every prediction is queued for labeling (fallback threshold 1).
    let mut options = with_token();
    options.load.fallback_threshold = Some(1.0);
    let (state, port) = listening(&d, options).await;

    // 60 queries, labeled through the admin API.
    let fresh = new_examples(60, false);
    for e in &fresh.examples {
        assert_eq!(predict(&state, &serde_json::json!({ "text": e.text }).to_string()).await.status, 200);
    }
    // A row with a NUL character, as a log written before such texts were refused could hold.
    let log = state.query_log().unwrap();
    log.record(vec![query_row("broken\u{0}text")]);
    state.query_log().unwrap().flush().await;
    let queue = call(&state, "GET", "/admin/labeling/queue?limit=100", None, Some(TOKEN)).await;
    let items = queue.json["items"].as_array().unwrap().clone();
    assert_eq!(items.len(), 61, "{}", queue.text);
    for item in items {
        let text = item["text"].as_str().unwrap();
        let known = fresh.examples.iter().find(|e| e.text == text);
        let label = known.map_or("card", |e| e.labels[0].as_str());
        let r = call(
            &state,
            "POST",
            &format!("/admin/labeling/{}", item["id"]),
            Some(&format!(r#"{{"label": "{label}"}}"#)),
            Some(TOKEN),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text);
    }

    std::env::set_var("INTENT_TEST_RETRAIN_TOKEN", TOKEN);
    let cfg = setup(
        &d,
        &format!(
            "[server]\nurl = \"http://127.0.0.1:{port}\"\ntoken_env = \
        \"INTENT_TEST_RETRAIN_TOKEN\"\npull_labels = true\n"
        ),
    );
    let s = status(&cfg).unwrap();
    assert_eq!(s.triggers["new_samples"], 0, "nothing pulled before a run");
    let line =
        tokio::task::spawn_blocking(move || retrain(&cfg, RunOptions::default()).unwrap()).await.unwrap();
    assert_eq!(line.status, RunStatus::Deployed, "{line}");
    assert_eq!(
        (line.labels_pulled.clone(), line.dataset_quality.as_ref().map(|q| q.new_samples)),
        (Some(LabelsPulled::Count(60)), Some(60)),
        "{line}"
    );
    assert!(d.join("retrain/labels/from_server.jsonl").is_file());
    assert_eq!(state.slot().current().unwrap().source.version, "2", "the server serves the new version");

    // A server that cannot be reached: the run goes on with the last copy, and says so.
    let cfg = setup(
        &d,
        "[server]\nurl = \"http://127.0.0.1:9\"\ntoken_env = \
        \"INTENT_TEST_RETRAIN_TOKEN\"\npull_labels = true\n",
    );
    let line =
        tokio::task::spawn_blocking(move || retrain(&cfg, RunOptions::default()).unwrap()).await.unwrap();
    assert_eq!(line.status, RunStatus::Skipped, "{line}");
    assert!(
        matches!(&line.labels_pulled, Some(LabelsPulled::Failed { error }) if error.contains("127.0.0.1:9")),
        "{line}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_runs_the_job_in_the_background_and_swaps() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().to_path_buf();
    let cfg = setup(&d, "");
    assert_eq!(retrain(&cfg, RunOptions::default()).unwrap().status, RunStatus::Deployed);
    let spec = intent_serve::ModelSpec::parse(&format!("{}/models/faq@current", d.display()));
    intent_server::background::check_served_spec(&spec, &cfg).unwrap();
    let folder = intent_serve::ModelSpec::parse(&format!("{}/models/faq/versions/1", d.display()));
    let e = intent_server::background::check_served_spec(&folder, &cfg).unwrap_err();
    assert!(e.contains("models/faq@current"), "{e}");

    let options = intent_server::server::ServerOptions { retrain_config: Some(cfg.clone()), ..with_token() };
    let state = intent_server::server::AppState::new(intent_server::ModelSlot::default(), None, options);
    state.load(&spec).unwrap();
    write_dataset(&d.join("new/export.jsonl"), &new_examples(60, false)).unwrap();
    let task = intent_server::background::spawn_retrainer(state.clone(), std::time::Duration::from_secs(1));
    let mut waited = 0;
    while state.slot().current().unwrap().source.version != "2" {
        assert!(
            waited < 600,
            "no swap after 60 s: {:?}",
            std::fs::read_to_string(d.join("retrain/retrain.log"))
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        waited += 1;
    }
    // Requests are answered by the new version; the next runs find no trigger.
    let r = predict(&state, r#"{"text": "my debit card"}"#).await;
    assert_eq!(r.status, 200);
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    task.abort();
    let statuses: Vec<String> = std::fs::read_to_string(d.join("retrain/retrain_history.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["status"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(&statuses[..2], ["deployed", "deployed"]);
    assert!(statuses.len() >= 3 && statuses[2..].iter().all(|s| s == "skipped"), "{statuses:?}");
}

/// A server that serves a plain folder answers a reload with its old version: the run fails
/// and both aliases are back exactly where they were (`previous` did not exist: it is gone).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_that_does_not_serve_the_new_version_undoes_the_promotion() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().to_path_buf();
    let cfg = setup(&d, "");
    assert_eq!(retrain(&cfg, RunOptions::default()).unwrap().status, RunStatus::Deployed);
    let state = intent_server::server::AppState::new(intent_server::ModelSlot::default(), None, with_token());
    state.load(&intent_serve::ModelSpec::Dir(d.join("models/faq/versions/1"))).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(intent_server::server::serve(listener, state.clone(), std::future::pending()));
    let model = intent_registry::Registry::new(d.join("models")).model("faq").unwrap();
    let before = model.aliases().unwrap();
    assert_eq!(before.keys().collect::<Vec<_>>(), ["current"]);

    std::env::set_var("INTENT_TEST_RETRAIN_TOKEN_2", TOKEN);
    write_dataset(&d.join("new/export.jsonl"), &new_examples(60, false)).unwrap();
    let cfg = setup(
        &d,
        &format!(
            "[server]\nurl = \"http://127.0.0.1:{port}\"\ntoken_env = \"INTENT_TEST_RETRAIN_TOKEN_2\"\n"
        ),
    );
    let line =
        tokio::task::spawn_blocking(move || retrain(&cfg, RunOptions::default()).unwrap()).await.unwrap();
    assert_eq!(line.status, RunStatus::Failed, "{line}");
    assert!(line.reason.contains("not version 2"), "{line}");
    assert_eq!(model.aliases().unwrap(), before, "both aliases restored exactly");
    assert_eq!(model.version_numbers().unwrap(), [1, 2], "the version stays registered");
}

/// `POST /admin/retrain`: a background job with an id; one at a time; the server answers while
/// it trains and swaps when it deploys; `GET /admin/retrain/{id}` follows it; `/metrics` counts
/// the outcomes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retraining_on_demand_runs_in_the_background_one_at_a_time() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().to_path_buf();
    let cfg = setup(&d, "");
    assert_eq!(retrain(&cfg, RunOptions::default()).unwrap().status, RunStatus::Deployed);
    let spec = intent_serve::ModelSpec::parse(&format!("{}/models/faq@current", d.display()));

    // Without a retrain config the route says how to get one.
    let plain = intent_server::server::AppState::new(intent_server::ModelSlot::default(), None, with_token());
    plain.load(&spec).unwrap();
    let r = call(&plain, "POST", "/admin/retrain", None, Some(TOKEN)).await;
    assert_eq!(r.status, 409);
    assert!(r.json["error"].as_str().unwrap().contains("--retrain-config"), "{}", r.text);

    let options = intent_server::server::ServerOptions { retrain_config: Some(cfg.clone()), ..with_token() };
    let state = intent_server::server::AppState::new(intent_server::ModelSlot::default(), None, options);
    state.load(&spec).unwrap();
    let wait = |id: u64| {
        let state = state.clone();
        async move {
            for _ in 0..1200 {
                let r = call(&state, "GET", &format!("/admin/retrain/{id}"), None, Some(TOKEN)).await;
                assert_eq!(r.status, 200, "{}", r.text);
                if r.json["state"] != "running" {
                    return r.json;
                }
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            panic!("job {id} still running after 120 s");
        }
    };
    // No new data: the triggers say no.
    let r = call(&state, "POST", "/admin/retrain", None, Some(TOKEN)).await;
    assert_eq!(r.status, 202, "{}", r.text);
    let job = wait(r.json["id"].as_u64().unwrap()).await;
    assert_eq!(job["state"], "skipped", "{job}");
    assert_eq!(job["outcome"]["status"], "skipped");
    // A dry run changes nothing.
    let r = call(&state, "POST", "/admin/retrain", Some(r#"{"force": true, "dry_run": true}"#), Some(TOKEN))
        .await;
    let job = wait(r.json["id"].as_u64().unwrap()).await;
    assert_eq!(job["state"], "dry-run", "{job}");

    // New data and `force`: it trains while the server answers; a second request waits its turn.
    write_dataset(&d.join("new/export.jsonl"), &new_examples(60, false)).unwrap();
    let r = call(&state, "POST", "/admin/retrain", Some(r#"{"force": true}"#), Some(TOKEN)).await;
    assert_eq!(r.status, 202, "{}", r.text);
    let id = r.json["id"].as_u64().unwrap();
    assert_eq!(r.json["status_url"], format!("/admin/retrain/{id}"));
    let again = call(&state, "POST", "/admin/retrain", None, Some(TOKEN)).await;
    assert_eq!((again.status.as_u16(), again.json["running"].as_u64()), (409, Some(id)), "{}", again.text);
    assert_eq!(predict(&state, r#"{"text": "my debit card"}"#).await.status, 200);
    let job = wait(id).await;
    assert_eq!(job["state"], "deployed", "{job}");
    assert_eq!(job["reload"]["swapped"], true, "{job}");
    assert_eq!(state.slot().current().unwrap().source.version, "2");
    assert!(job["elapsed_s"].as_f64().unwrap() > 0.0);

    // Bad requests.
    let r = call(&state, "POST", "/admin/retrain", Some(r#"{"force": "yes"}"#), Some(TOKEN)).await;
    assert_eq!(r.status, 422, "{}", r.text);
    assert_eq!(call(&state, "GET", "/admin/retrain/99", None, Some(TOKEN)).await.status, 404);
    assert_eq!(call(&state, "POST", "/admin/retrain", None, None).await.status, 401);
    let metrics = call(&state, "GET", "/metrics", None, None).await.text;
    for (outcome, n) in [("deployed", 1), ("skipped", 1), ("dry-run", 1)] {
        let line = format!("intent_retrains_total{{outcome=\"{outcome}\"}} {n}");
        assert!(metrics.contains(&line), "{line} in {metrics}");
    }
}

/// A local fallback service that labels by keyword (a stand-in for a larger model or an LLM).
fn keyword_teacher() -> String {
    let port = intent_testkit::http::serve(|r| {
        let text = r.json()["text"].to_string();
        let label = ["card", "transfer", "refund", "password"]
            .into_iter()
            .find(|k| text.contains(k))
            .unwrap_or("card");
        intent_testkit::http::ok(format!("{{\"label\": \"{label}\"}}"))
    });
    format!("http://127.0.0.1:{port}/")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fallback_labels_enter_the_next_retrain_and_the_drift_windows_come_from_the_log() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().to_path_buf();
    assert_eq!(retrain(&setup(&d, ""), RunOptions::default()).unwrap().status, RunStatus::Deployed);
    let mut options = with_token();
    options.load.fallback_threshold = Some(1.0); // every answer goes to the fallback service
    options.fallback = Some(
        intent_server::fallback::FallbackService::new(&keyword_teacher(), std::time::Duration::from_secs(5))
            .unwrap(),
    );
    let (state, port) = listening(&d, options).await;

    // 20 user queries: the fallback service answers each, and its labels are logged.
    let fresh = new_examples(20, false);
    for e in &fresh.examples {
        let r = predict(&state, &serde_json::json!({ "text": e.text }).to_string()).await;
        assert_eq!(
            (r.json["source"].as_str(), r.json["label"].as_str()),
            (Some("fallback"), Some(e.labels[0].as_str()))
        );
    }
    state.query_log().unwrap().flush().await;

    std::env::set_var("INTENT_TEST_TEACHER_TOKEN", TOKEN);
    let cfg = setup(
        &d,
        &format!(
            "[triggers.drift]\nwindow = 5\n[server]\nurl = \"http://127.0.0.1:{port}\"\ntoken_env = \
             \"INTENT_TEST_TEACHER_TOKEN\"\n[labels]\nteacher = \"server\"\n"
        ),
    );
    let line = tokio::task::spawn_blocking(move || {
        retrain(&cfg, RunOptions { force: true, ..RunOptions::default() }).unwrap()
    })
    .await
    .unwrap();
    assert_eq!(line.status, RunStatus::Deployed, "{line}");
    let q = line.dataset_quality.as_ref().unwrap();
    assert_eq!(
        (q.teacher_labels, q.new_samples, q.total_entries),
        (Some(20), 0, 96 + 20),
        "the fallback's labels are training data, not new samples of people: {line}"
    );
    let served = line.served_quality.as_ref().expect("the drift windows of version 1");
    assert_eq!(
        (served["version"].as_str(), served["recent"]["queries"].as_i64()),
        (Some("1"), Some(5)),
        "{line}"
    );
    assert_eq!(served["recent"]["fallback_rate"].as_f64(), Some(1.0), "{line}");
    assert_eq!(state.slot().current().unwrap().source.version, "2");
}
