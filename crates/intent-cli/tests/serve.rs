//! `intent serve` as a process: bad flags are clean errors; a served model answers over TCP;
//! SIGTERM drains, writes the query log and exits 0.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::Command;

use common::{http, spawn_server};
use std::time::Duration;

fn intent(args: &[&str], cwd: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_intent"))
        .args(args)
        .current_dir(cwd)
        .env("RUST_LOG", "warn")
        .env_remove("INTENT_ADMIN_TOKEN")
        .output()
        .expect("runs")
}

#[test]
fn serve_answers_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let o = intent(&["pipeline", "--models-dir", "models", "--epochs", "3", "--no-gate"], d);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let model = "models/example/versions/1";

    // Bad flags and inputs: exit 2, one error line naming the problem.
    std::fs::write(d.join("empty_token"), "\n").unwrap();
    for (args, needle) in [
        (vec!["serve", "--model", "nowhere"], "nowhere is not a folder"),
        (vec!["serve", "--model", "models/example@nope"], "aliases/nope"),
        (vec!["serve", "--model", model, "--addr", "localhost"], "expected HOST:PORT"),
        (vec!["serve", "--model", model, "--fallback-threshold", "1.5"], "not in [0, 1]"),
        (vec!["serve", "--model", model, "--max-texts", "0"], "--max-texts must be at least 1"),
        (vec!["serve", "--model", model, "--admin-token-file", "missing_token"], "missing_token"),
        (vec!["serve", "--model", model, "--admin-token-file", "empty_token"], "is empty"),
        (vec!["serve", "--model", model, "--retrain-every", "soon"], "expected a duration such as 30d"),
        (vec!["serve", "--model", model, "--retrain-every", "30d"], "retrain.toml"),
    ] {
        let o = intent(&args, d);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        let line = err.lines().find(|l| l.starts_with("error:")).unwrap_or_else(|| panic!("{args:?}: {err}"));
        assert!(line.contains(needle), "{args:?}: '{line}' lacks '{needle}'");
    }

    let (mut child, port, rest) = spawn_server(d, &["--model", model, "--query-log", "q.sqlite"], None);

    let r = http(port, "POST", "/v1/predict", r#"{"text": "where is my order"}"#);
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    assert!(r.contains(r#""label":"order_status""#), "{r}");
    let r = http(port, "GET", "/v1/models", "");
    assert!(
        r.contains(r#""version":"1""#) && r.contains(r#""name":"example""#) && r.contains(r#""kind":"mlp""#),
        "{r}"
    );
    let r = http(port, "POST", "/admin/reload", "");
    assert!(r.starts_with("HTTP/1.1 401"), "{r}");

    let status = child.signal(libc::SIGTERM);
    assert!(status.success(), "{status:?}");
    let log = rest.join().unwrap().join("\n");
    assert!(log.contains("SIGTERM") && log.contains("stopped"), "{log}");
    // The row is in the database, and the write-ahead log was folded in at shutdown.
    let db = std::fs::read(d.join("q.sqlite")).unwrap();
    assert!(db.windows(17).any(|w| w == b"where is my order"), "the query is in the log file");
    assert!(std::fs::metadata(d.join("q.sqlite-wal")).map_or(true, |m| m.len() == 0));
}

fn count_rows(db: &Path) -> i64 {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.query_row("SELECT COUNT(*) FROM queries", [], |r| r.get(0)).unwrap()
}

/// The operator's probes of issue 21: few file descriptors and many idle sockets, a stalled
/// client at SIGTERM, and a SIGKILL while the query log's writer is stalled.
#[test]
fn serve_holds_against_idle_sockets_stalled_clients_and_a_stalled_log() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let o = intent(&["pipeline", "--models-dir", "models", "--epochs", "3", "--no-gate"], d);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let model = "models/example/versions/1";
    for (flag, value, needle) in [
        ("--header-timeout", "0s", "more than 0s"),
        ("--shutdown-timeout", "soon", "expected a duration"),
        ("--max-connections", "0", "--max-connections must be at least 1"),
        ("--query-log-max-rows", "0", "--query-log-max-rows must be at least 1"),
        ("--models-root", "nowhere", "--models-root nowhere: not a folder"),
    ] {
        let o = intent(&["serve", "--model", model, flag, value], d);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{flag}: {err}");
        assert!(err.contains(needle), "{flag}: {err}");
    }

    // ulimit -n 256 and 300 idle sockets: /health still answers at once.
    let (mut child, port, _) = spawn_server(d, &["--model", model, "--query-log", "q1.sqlite"], Some(256));
    let idle: Vec<_> =
        (0..300).filter_map(|_| std::net::TcpStream::connect(("127.0.0.1", port)).ok()).collect();
    std::thread::sleep(Duration::from_millis(300));
    let start = std::time::Instant::now();
    let r = http(port, "GET", "/health", "");
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    assert!(start.elapsed() < Duration::from_secs(3), "/health took {:?}", start.elapsed());
    drop(idle);
    child.signal(libc::SIGKILL);

    // A client stalled mid-body at SIGTERM: the process exits after --shutdown-timeout.
    let args = ["--model", model, "--query-log", "q2.sqlite", "--shutdown-timeout", "1s"];
    let (mut child, port, rest) = spawn_server(d, &args, None);
    let r = http(port, "POST", "/v1/predict", r#"{"text": "where is my order"}"#);
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    let mut stalled = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(stalled, "POST /v1/predict HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n{{\"te").unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let start = std::time::Instant::now();
    assert!(child.signal(libc::SIGTERM).success());
    assert!(start.elapsed() < Duration::from_secs(5), "shutdown took {:?}", start.elapsed());
    let log = rest.join().unwrap().join("\n");
    assert!(log.contains("still open after 1s"), "{log}");
    assert_eq!(count_rows(&d.join("q2.sqlite")), 1);

    // The writer stalled by another process's lock, 30 requests of 256 texts, then SIGKILL: the
    // rows missing from the log are those counted as dropped plus at most the queue (1000).
    let args = ["--model", model, "--query-log", "q3.sqlite", "--query-log-queue-rows", "1000"];
    let (mut child, port, _) = spawn_server(d, &args, None);
    let lock = rusqlite::Connection::open(d.join("q3.sqlite")).unwrap();
    lock.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let texts: Vec<String> = (0..256).map(|i| format!("where is order {i}")).collect();
    let body = serde_json::json!({ "texts": texts }).to_string();
    for _ in 0..30 {
        let r = http(port, "POST", "/v1/predict", &body);
        assert!(r.starts_with("HTTP/1.1 200"), "{}", &r[..r.len().min(300)]);
    }
    let metrics = http(port, "GET", "/metrics", "");
    let dropped: i64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("intent_query_log_dropped_rows_total "))
        .expect("the dropped-rows counter")
        .trim()
        .parse()
        .unwrap();
    child.signal(libc::SIGKILL);
    lock.execute_batch("ROLLBACK").unwrap();
    let kept = count_rows(&d.join("q3.sqlite"));
    let lost = 30 * 256 - kept - dropped;
    assert!((0..=1000).contains(&lost), "answered 7680, kept {kept}, dropped {dropped}: {lost} lost");
    assert_eq!(dropped, 30 * 256 - 1000, "the queue took 1000 rows, the rest was counted");
}
