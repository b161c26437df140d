//! `intent serve` as a process: bad flags are clean errors; a served model answers over TCP;
//! SIGTERM drains, writes the query log and exits 0.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
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

fn http(port: u16, method: &str, path: &str, body: &str) -> String {
    let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(
        c,
        "{method} {path} HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: \
        {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    c.read_to_string(&mut out).unwrap();
    out
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

    let mut child = Command::new(env!("CARGO_BIN_EXE_intent"))
        .args([
            "serve",
            "--model",
            model,
            "--addr",
            "127.0.0.1:0",
            "--query-log",
            "q.sqlite",
            "--http-threads",
            "2",
        ])
        .current_dir(d)
        .env("RUST_LOG", "info")
        .env("INTENT_ADMIN_TOKEN", "0123456789abcdef0123")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let port: u16 = loop {
        let line = lines.next().expect("server exited before listening").unwrap();
        if let Some(addr) = line.split("listening on http://").nth(1) {
            break addr.rsplit(':').next().unwrap().trim().parse().unwrap();
        }
    };
    let rest = std::thread::spawn(move || lines.map_while(Result::ok).collect::<Vec<_>>());

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

    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    let log = rest.join().unwrap().join("\n");
    assert!(log.contains("SIGTERM") && log.contains("stopped"), "{log}");
    // The row is in the database, and the write-ahead log was folded in at shutdown.
    let db = std::fs::read(d.join("q.sqlite")).unwrap();
    assert!(db.windows(17).any(|w| w == b"where is my order"), "the query is in the log file");
    assert!(std::fs::metadata(d.join("q.sqlite-wal")).map_or(true, |m| m.len() == 0));
}
