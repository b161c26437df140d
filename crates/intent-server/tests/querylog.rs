//! The query log stores every prediction and survives restarts; redaction; the labeling round
//! trip (query → queue → label → export → the file trains); over real TCP: a slow body holds no
//! concurrency permit, and a graceful shutdown writes every row.

mod common;

use std::time::Duration;

use axum::http::StatusCode;
use common::*;
use intent_serve::ModelSpec;
use intent_server::server::{serve, AppState, ServerOptions};
use intent_server::{ModelSlot, QueryLog};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn low_threshold_token() -> ServerOptions {
    let mut o = with_token();
    o.load.fallback_threshold = Some(0.999);
    o
}

#[tokio::test]
async fn rows_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let m = model(dir.path(), "faq", 1);
    let s = state(&m, dir.path(), true, ServerOptions::default());
    for t in ["reset my password", "send a wire", "refund please"] {
        assert_eq!(predict(&s, &format!(r#"{{"text": "{t}"}}"#)).await.status, StatusCode::OK);
    }
    assert_eq!(predict(&s, r#"{"texts": ["my debit card", "chip card"]}"#).await.status, StatusCode::OK);
    let log = s.query_log().unwrap();
    log.flush().await;
    assert_eq!(log.count().unwrap(), 5);
    let db = log.path().unwrap().to_path_buf();
    log.close();
    drop(s);

    let conn = rusqlite::Connection::open(&db).unwrap();
    let (text, label, version, top_k): (String, String, String, String) = conn
        .query_row("SELECT text, label, model_version, top_k FROM queries WHERE id = 1", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })
        .unwrap();
    assert_eq!((text.as_str(), label.as_str()), ("reset my password", "password"));
    assert!(version.starts_with("sha256:"));
    assert_eq!(serde_json::from_str::<serde_json::Value>(&top_k).unwrap().as_array().unwrap().len(), 3);
    let mode: String = conn.query_row("PRAGMA journal_mode", [], |r| r.get(0)).unwrap();
    assert_eq!(mode, "wal");
    drop(conn);

    // A restarted server appends to the same log.
    let log = QueryLog::open(&db, false).unwrap();
    assert_eq!(log.count().unwrap(), 5);
    let s = AppState::new(ModelSlot::default(), Some(log), ServerOptions::default());
    s.load(&ModelSpec::Dir(m)).unwrap();
    predict(&s, r#"{"text": "locked out of login"}"#).await;
    s.query_log().unwrap().flush().await;
    assert_eq!(s.query_log().unwrap().last_query_id().unwrap(), Some(6));
}

#[tokio::test]
async fn redaction_stores_hashes_only() {
    let dir = tempfile::tempdir().unwrap();
    let m = model(dir.path(), "faq", 1);
    let log = QueryLog::open(&dir.path().join("q.sqlite"), true).unwrap();
    let s = AppState::new(ModelSlot::default(), Some(log), low_threshold_token());
    s.load(&ModelSpec::Dir(m)).unwrap();
    predict(&s, r#"{"text": "my secret account 1234"}"#).await;
    s.query_log().unwrap().flush().await;
    let conn = rusqlite::Connection::open(dir.path().join("q.sqlite")).unwrap();
    let (text, hash): (Option<String>, String) =
        conn.query_row("SELECT text, text_sha256 FROM queries", [], |r| Ok((r.get(0)?, r.get(1)?))).unwrap();
    assert_eq!(text, None);
    assert_eq!(hash, hex::encode(Sha256::digest(b"my secret account 1234")));
    let queued: i64 = conn.query_row("SELECT COUNT(*) FROM labeling_queue", [], |r| r.get(0)).unwrap();
    assert_eq!(queued, 0, "redacted texts never enter the labeling queue");
}

#[tokio::test]
async fn labeling_round_trip_trains() {
    let dir = tempfile::tempdir().unwrap();
    let m = model(dir.path(), "faq", 1);
    let s = state(&m, dir.path(), true, low_threshold_token());
    let texts = [
        "my card is stuck",
        "card stuck again",
        "give me my money back",
        "return the money",
        "My card is stuck!",
    ];
    for t in texts {
        let r = predict(&s, &format!(r#"{{"text": "{t}"}}"#)).await;
        assert_eq!(r.json["fallback"], true);
    }
    s.query_log().unwrap().flush().await;

    let r = call(&s, "GET", "/admin/labeling/queue", None, Some(TOKEN)).await;
    let items = r.json["items"].as_array().unwrap().clone();
    // "My card is stuck!" normalizes like "my card is stuck": one item seen twice.
    assert_eq!(items.len(), 4, "{}", r.text);
    assert_eq!(items[0]["text"], "my card is stuck");
    assert_eq!(items[0]["seen"], 2);
    let ids: Vec<i64> = items.iter().map(|i| i["id"].as_i64().unwrap()).collect();

    // Bad labeling requests.
    let bad = [
        (format!("/admin/labeling/{}", 999), r#"{"label": "card"}"#, StatusCode::NOT_FOUND),
        ("/admin/labeling/abc".to_string(), r#"{"label": "card"}"#, StatusCode::UNPROCESSABLE_ENTITY),
        (format!("/admin/labeling/{}", ids[0]), r#"{"label": "  "}"#, StatusCode::UNPROCESSABLE_ENTITY),
        (format!("/admin/labeling/{}", ids[0]), r#"{}"#, StatusCode::UNPROCESSABLE_ENTITY),
        (
            format!("/admin/labeling/{}", ids[0]),
            r#"{"label": "a", "labels": ["b"]}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
    ];
    for (uri, body, status) in bad {
        let r = call(&s, "POST", &uri, Some(body), Some(TOKEN)).await;
        assert_eq!(r.status, status, "{uri} {body}: {}", r.text);
        assert!(r.json["error"].is_string());
    }

    for (id, label) in ids.iter().zip(["card", "card", "refund", "refund"]) {
        let r = call(
            &s,
            "POST",
            &format!("/admin/labeling/{id}"),
            Some(&format!(r#"{{"label": "{label}"}}"#)),
            Some(TOKEN),
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(r.json["known_labels"], true);
    }
    // A second labeler who does not know of the first gets 409 with the current labels; naming
    // what is replaced goes through, and the history keeps both.
    let item = format!("/admin/labeling/{}", ids[1]);
    let r = call(&s, "POST", &item, Some(r#"{"label": "refund"}"#), Some(TOKEN)).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    assert_eq!(r.json["current"], serde_json::json!(["card"]));
    let r = call(&s, "POST", &item, Some(r#"{"label": "card"}"#), Some(TOKEN)).await;
    assert_eq!((r.status, &r.json["changed"]), (StatusCode::OK, &serde_json::json!(false)), "a retry");
    let body = r#"{"label": "refund", "replaces": "card", "by": "ana"}"#;
    let r = call(&s, "POST", &item, Some(body), Some(TOKEN)).await;
    assert_eq!((r.status, &r.json["changed"]), (StatusCode::OK, &serde_json::json!(true)), "{}", r.text);
    let body = r#"{"label": "card", "replaces": "refund"}"#;
    assert_eq!(call(&s, "POST", &item, Some(body), Some(TOKEN)).await.status, StatusCode::OK);
    let r = call(&s, "GET", &format!("{item}/history"), None, Some(TOKEN)).await;
    let changes = r.json["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 3, "{}", r.text);
    assert_eq!(
        (&changes[1]["labels"], &changes[1]["previous"]),
        (&serde_json::json!(["refund"]), &serde_json::json!(["card"]))
    );
    assert_eq!(changes[1]["labeled_by"], "ana");
    let r = call(&s, "GET", "/admin/labeling/999/history", None, Some(TOKEN)).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = call(&s, "GET", "/admin/labeling/queue", None, Some(TOKEN)).await;
    assert_eq!(r.json["items"].as_array().unwrap().len(), 0, "labeled items leave the pending queue");
    let r = call(&s, "GET", "/admin/labeling/queue?all=true&limit=2", None, Some(TOKEN)).await;
    assert_eq!(r.json["items"].as_array().unwrap().len(), 2);
    assert_eq!(r.json["items"][0]["labels"], serde_json::json!(["card"]));
    assert_eq!(
        call(&s, "GET", "/admin/labeling/queue?limit=x", None, Some(TOKEN)).await.status,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(
        call(&s, "GET", "/admin/labeling/export?format=csv", None, Some(TOKEN)).await.status,
        StatusCode::UNPROCESSABLE_ENTITY
    );

    let r = call(&s, "GET", "/admin/labeling/export?format=jsonl", None, Some(TOKEN)).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.content_type, "application/x-ndjson");
    assert_eq!(r.text.lines().count(), 4, "{}", r.text);
    let file = dir.path().join("labeled.jsonl");
    std::fs::write(&file, &r.text).unwrap();
    let data = intent_data::load_dataset(&file, None, &Default::default()).unwrap().data;
    assert_eq!(
        data.texts(),
        vec!["my card is stuck", "card stuck again", "give me my money back", "return the money"]
    );
    assert_eq!(data.labels(), vec!["card", "refund"]);
    assert!(data.examples[0].source.as_deref().unwrap().starts_with("labeling-queue:"));
    // The export trains a model that serves.
    let trained = train_on(&data, &dir.path().join("retrained"), 3);
    let s2 = state(&trained, &dir.path().join("x"), false, ServerOptions::default());
    assert_eq!(predict(&s2, r#"{"text": "return my money"}"#).await.json["label"], "refund");
}

async fn raw_request(addr: std::net::SocketAddr, body: &str) -> (u16, String) {
    let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "POST /v1/predict HTTP/1.1\r\nHost: t\r\nContent-Type: \
        application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    c.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    c.read_to_string(&mut out).await.unwrap();
    (out[9..12].parse().unwrap(), out)
}

#[tokio::test]
async fn over_tcp_bound_and_graceful_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let m = model(dir.path(), "faq", 1);
    let s = state(&m, dir.path(), true, ServerOptions { max_concurrent: 1, ..Default::default() });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(listener, s.clone(), async move {
        let _ = stopped.await;
    }));

    for i in 0..20 {
        let (status, _) = raw_request(addr, &format!(r#"{{"text": "send wire number {i}"}}"#)).await;
        assert_eq!(status, 200);
    }
    // A request whose body trickles in holds no permit (it is taken once the body is read): with
    // one permit, another request is still answered.
    let body = format!("{:<100}", r#"{"text": "hold the line"}"#);
    let mut slow = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /v1/predict HTTP/1.1\r\nHost: t\r\nContent-Type: \
        application/json\r\nContent-Length: 100\r\nConnection: close\r\n\r\n{}",
        &body[..10]
    );
    slow.write_all(head.as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, text) = raw_request(addr, r#"{"text": "hi"}"#).await;
    assert_eq!(status, 200, "{text}");

    // Shutdown while the slow request is in flight: it is drained, then the log is written.
    stop.send(()).unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    slow.write_all(&body.as_bytes()[10..]).await.unwrap();
    let mut out = String::new();
    slow.read_to_string(&mut out).await.unwrap();
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    server.await.unwrap().unwrap();
    let conn = rusqlite::Connection::open(dir.path().join("queries.sqlite")).unwrap();
    let n: i64 = conn.query_row("SELECT COUNT(*) FROM queries", [], |r| r.get(0)).unwrap();
    assert_eq!(n, 22, "every answered prediction is in the log after shutdown");
}

#[test]
fn a_file_that_is_not_a_database_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.sqlite");
    std::fs::write(
        &path,
        "this is not an SQLite database, and it is long enough to have a header page".repeat(20),
    )
    .unwrap();
    let err = QueryLog::open(&path, false).err().expect("refused").to_string();
    assert!(err.contains("q.sqlite") && err.contains("not a database"), "{err}");
    // Nothing was overwritten.
    assert!(std::fs::read_to_string(&path).unwrap().starts_with("this is not an SQLite database"));
}
