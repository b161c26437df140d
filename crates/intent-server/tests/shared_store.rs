//! The query log on PostgreSQL (a throwaway cluster from `initdb`): the same behaviour as on
//! SQLite through the routes, and several replicas sharing one labeling queue.

mod common;

use std::time::{Duration, Instant};

use axum::http::StatusCode;
use common::*;
use intent_serve::ModelSpec;
use intent_server::server::AppState;
use intent_server::{ModelSlot, QueryLog, QueryLogOptions};
use intent_testkit::postgres::PgCluster;

/// Runs blocking database work off the async worker (the PostgreSQL client blocks).
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

async fn open(url: &str, options: QueryLogOptions) -> QueryLog {
    let url = url.to_string();
    blocking(move || QueryLog::open_at(&url, options)).await.expect("query log on PostgreSQL")
}

/// A replica: its own state and query log on the shared database; every query is queued.
async fn replica(model: &std::path::Path, url: &str, options: QueryLogOptions) -> AppState {
    let log = open(url, options).await;
    let mut server = with_token();
    server.load.fallback_threshold = Some(0.999);
    let s = AppState::new(ModelSlot::default(), Some(log), server);
    s.load(&ModelSpec::Dir(model.to_path_buf())).unwrap();
    s
}

async fn count(s: &AppState) -> i64 {
    let s = s.clone();
    blocking(move || s.query_log().unwrap().count().unwrap()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_share_one_log_and_one_labeling_queue() {
    let pg = PgCluster::start();
    let url = pg.url("intent");
    let dir = tempfile::tempdir().unwrap();
    let m = model(dir.path(), "faq", 1);
    // Two replicas open (and migrate) the same database at once.
    let (a, b) = tokio::join!(
        replica(&m, &url, QueryLogOptions::default()),
        replica(&m, &url, QueryLogOptions::default())
    );
    for (s, t) in [(&a, "my card is stuck"), (&b, "card stuck again"), (&a, "give me my money back")] {
        assert_eq!(predict(s, &format!(r#"{{"text": "{t}"}}"#)).await.status, StatusCode::OK);
        // Each replica's writer commits on its own: flushed in turn, the queue ids follow this order.
        s.query_log().unwrap().flush().await;
    }
    // The same text through the other replica: one queue item, seen twice.
    assert_eq!(predict(&b, r#"{"text": "My card is stuck!"}"#).await.status, StatusCode::OK);
    a.query_log().unwrap().flush().await;
    b.query_log().unwrap().flush().await;
    assert_eq!(count(&a).await, 4);

    let qa = call(&a, "GET", "/admin/labeling/queue", None, Some(TOKEN)).await;
    let qb = call(&b, "GET", "/admin/labeling/queue", None, Some(TOKEN)).await;
    assert_eq!(qa.json, qb.json, "the queue is the same from every replica");
    let items = qa.json["items"].as_array().unwrap().clone();
    assert_eq!(items.len(), 3, "{}", qa.text);
    assert_eq!((items[0]["text"].as_str(), items[0]["seen"].as_i64()), (Some("my card is stuck"), Some(2)));

    // Two people label one item through two replicas at once: one wins, one learns of it.
    let item = format!("/admin/labeling/{}", items[0]["id"]);
    let (ra, rb) = tokio::join!(
        call(&a, "POST", &item, Some(r#"{"label": "card"}"#), Some(TOKEN)),
        call(&b, "POST", &item, Some(r#"{"label": "refund"}"#), Some(TOKEN))
    );
    let mut statuses = [ra.status, rb.status];
    statuses.sort();
    assert_eq!(statuses, [StatusCode::OK, StatusCode::CONFLICT], "{} / {}", ra.text, rb.text);
    let won = if ra.status == StatusCode::OK { "card" } else { "refund" };
    let body = format!(r#"{{"label": "card", "replaces": "{won}", "by": "ana"}}"#);
    let r = call(&b, "POST", &item, Some(&body), Some(TOKEN)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let second = format!("/admin/labeling/{}", items[2]["id"]);
    assert_eq!(
        call(&a, "POST", &second, Some(r#"{"label": "refund"}"#), Some(TOKEN)).await.status,
        StatusCode::OK
    );
    let history = call(&a, "GET", &format!("{item}/history"), None, Some(TOKEN)).await;
    assert_eq!(history.json["changes"].as_array().unwrap().len(), if won == "card" { 1 } else { 2 });

    // The export is the same from both, and trains.
    let ea = call(&a, "GET", "/admin/labeling/export", None, Some(TOKEN)).await;
    let eb = call(&b, "GET", "/admin/labeling/export", None, Some(TOKEN)).await;
    assert_eq!(ea.text, eb.text);
    let lines: Vec<serde_json::Value> = ea.text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 2, "{}", ea.text);
    assert_eq!(
        (lines[0]["text"].as_str(), lines[0]["label"].as_str()),
        (Some("my card is stuck"), Some("card"))
    );
    assert_eq!(lines[1]["label"], "refund");

    // The console's queries on PostgreSQL: suggestions, search, order, counters, undo.
    let q = call(&b, "GET", "/admin/labeling/queue?all=true&order=frequent&q=STUCK", None, Some(TOKEN)).await;
    let found = q.json["items"].as_array().unwrap();
    assert_eq!(found.len(), 2, "{}", q.text);
    assert_eq!((found[0]["text"].as_str(), found[0]["seen"].as_i64()), (Some("my card is stuck"), Some(2)));
    assert_eq!(found[0]["suggestions"][0]["label"], found[0]["predicted"]);
    let stats = call(&a, "GET", "/admin/labeling/stats", None, Some(TOKEN)).await;
    assert_eq!(stats.status, StatusCode::OK, "{}", stats.text);
    assert_eq!((stats.json["waiting"].as_i64(), stats.json["labeled_total"].as_i64()), (Some(1), Some(2)));
    assert_eq!(
        (stats.json["queries_last_hour"].as_i64(), stats.json["fallback_last_hour"].as_i64()),
        (Some(4), Some(4))
    );
    // The drift trigger's windows on PostgreSQL: every query so far fell back.
    let q = call(&a, "GET", "/admin/querylog/quality?window=2", None, Some(TOKEN)).await;
    assert_eq!(q.status, StatusCode::OK, "{}", q.text);
    assert_eq!(
        (q.json["baseline"]["queries"].as_i64(), q.json["recent"]["queries"].as_i64()),
        (Some(2), Some(2))
    );
    assert_eq!(q.json["recent"]["fallback_rate"].as_f64(), Some(1.0), "{}", q.text);
    assert!(
        q.json["baseline"]["mean_confidence"].as_f64().is_some_and(|c| c > 0.0 && c < 0.999),
        "{}",
        q.text
    );
    assert!(q.json["baseline"]["to_ms"].as_i64() <= q.json["recent"]["to_ms"].as_i64(), "{}", q.text);
    let q = call(&a, "GET", "/admin/querylog/quality?version=none", None, Some(TOKEN)).await;
    assert_eq!(q.json["recent"]["queries"].as_i64(), Some(0), "{}", q.text);
    let r = call(&b, "POST", &second, Some(r#"{"labels": [], "replaces": "refund"}"#), Some(TOKEN)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let stats = call(&a, "GET", "/admin/labeling/stats", None, Some(TOKEN)).await;
    assert_eq!((stats.json["waiting"].as_i64(), stats.json["labeled_total"].as_i64()), (Some(2), Some(1)));

    // Redaction and retention behave as on SQLite.
    let redacted =
        open(&url, QueryLogOptions { redact: true, max_rows: Some(3), ..Default::default() }).await;
    redacted.record(vec![query_row("a secret 1234"), query_row("another secret")]);
    redacted.flush().await;
    let (n, texts) = blocking(move || {
        let n = redacted.count().unwrap();
        (n, redacted.queue(100, true).unwrap().len())
    })
    .await;
    assert_eq!((n, texts), (3, 3), "3 rows kept; redacted texts never enter the queue");
    let mut c = blocking({
        let url = url.clone();
        move || ::postgres::Client::connect(&url, ::postgres::NoTls).unwrap()
    })
    .await;
    let nulls: i64 = blocking(move || {
        let n = c.query_one("SELECT COUNT(*) FROM queries WHERE text IS NULL", &[]).unwrap().get(0);
        drop(c);
        n
    })
    .await;
    assert_eq!(nulls, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_table_stalls_the_writer_not_the_requests() {
    let pg = PgCluster::start();
    let url = pg.url("intent");
    let log = open(&url, QueryLogOptions { queue_rows: 500, ..Default::default() }).await;
    let (lock_tx, lock_rx) = std::sync::mpsc::channel::<()>();
    let (locked_tx, locked_rx) = std::sync::mpsc::channel::<()>();
    let u = url.clone();
    let holder = std::thread::spawn(move || {
        let mut c = ::postgres::Client::connect(&u, ::postgres::NoTls).unwrap();
        let mut tx = c.transaction().unwrap();
        tx.batch_execute("LOCK TABLE queries IN ACCESS EXCLUSIVE MODE").unwrap();
        locked_tx.send(()).unwrap();
        lock_rx.recv().unwrap();
        tx.rollback().unwrap();
    });
    locked_rx.recv().unwrap();
    let start = Instant::now();
    let mut accepted = 0;
    for i in 0..20 {
        accepted += log.record((0..100).map(|j| query_row(&format!("text {i} {j}"))).collect());
    }
    assert!(start.elapsed() < Duration::from_secs(1), "recording waited on the database");
    assert_eq!(accepted, 500);
    assert_eq!(log.status().dropped_rows, 1500);
    lock_tx.send(()).unwrap();
    holder.join().unwrap();
    log.flush().await;
    assert_eq!(blocking(move || log.count().unwrap()).await, 500);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_database_is_a_clear_error_without_the_password() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("postgres://ana:hunter2@127.0.0.1:{port}/intent");
    let err =
        blocking(move || QueryLog::open_at(&url, QueryLogOptions::default()).err().unwrap().to_string())
            .await;
    assert!(err.contains(&format!("postgres://ana:***@127.0.0.1:{port}/intent")), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
}
