//! Several `intent serve` replicas sharing one PostgreSQL query log (a throwaway cluster from
//! `initdb`) and one registry folder: 64 clients spread over 3 replicas while `current` is
//! promoted 20 times; no request fails, every answered row is in PostgreSQL after a clean stop,
//! and the labeling queue is the same from every replica. Then a SIGKILL loses at most the
//! query log's queue (4096 rows).

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{http, intent, ok, spawn_server};
use intent_testkit::postgres::PgCluster;

const CLIENTS: usize = 64;
const REQUESTS_PER_CLIENT: usize = 30;
const PROMOTES: usize = 20;

fn rows(url: &str) -> i64 {
    let mut c = postgres::Client::connect(url, postgres::NoTls).unwrap();
    c.query_one("SELECT COUNT(*) FROM queries", &[]).unwrap().get(0)
}

fn body_of(answer: &str) -> serde_json::Value {
    let body = answer.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {answer}"))
}

#[test]
fn three_replicas_one_postgres_twenty_promotes() {
    let pg = PgCluster::start();
    let url = pg.url("intent");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(&intent(&["pipeline", "--models-dir", "models", "--epochs", "3", "--no-gate"], d));
    ok(&intent(&["models", "register", "example", "models/example/versions/1", "--root", "models"], d));
    let args = [
        "--model",
        "models/example@current",
        "--watch",
        "1",
        "--query-log",
        &url,
        "--fallback-threshold",
        "0.999",
    ];
    let mut replicas: Vec<_> = (0..3).map(|_| spawn_server(d, &args, None)).collect();
    let ports: Vec<u16> = replicas.iter().map(|r| r.1).collect();

    let failed = Arc::new(AtomicUsize::new(0));
    let answered = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let (ports, failed, answered) = (ports.clone(), failed.clone(), answered.clone());
            std::thread::spawn(move || {
                for i in 0..REQUESTS_PER_CLIENT {
                    let port = ports[(c + i) % ports.len()];
                    let body = format!(r#"{{"text": "where is my order number {c} {i}"}}"#);
                    let r = http(port, "POST", "/v1/predict", &body);
                    if r.starts_with("HTTP/1.1 200") {
                        answered.fetch_add(1, Ordering::SeqCst);
                    } else {
                        failed.fetch_add(1, Ordering::SeqCst);
                        eprintln!("failed: {r}");
                    }
                }
            })
        })
        .collect();
    let start = Instant::now();
    for p in 0..PROMOTES {
        let version = if p % 2 == 0 { "2" } else { "1" };
        ok(&intent(&["models", "promote", "example", version, "--root", "models"], d));
        std::thread::sleep(Duration::from_millis(150));
    }
    for c in clients {
        c.join().unwrap();
    }
    eprintln!("{} requests in {:?}", CLIENTS * REQUESTS_PER_CLIENT, start.elapsed());
    assert_eq!(failed.load(Ordering::SeqCst), 0, "failed requests");
    assert_eq!(answered.load(Ordering::SeqCst), CLIENTS * REQUESTS_PER_CLIENT);

    // The 20th promote left version 1 current, where the replicas started: one more move to 2
    // must reach every replica (whatever their watchers sampled during the run).
    ok(&intent(&["models", "promote", "example", "2", "--root", "models"], d));
    let deadline = Instant::now() + Duration::from_secs(10);
    for &port in &ports {
        loop {
            let v = body_of(&http(port, "GET", "/ready", ""))["version"].clone();
            if v == "2" {
                break;
            }
            assert!(Instant::now() < deadline, "replica on {port} still serves {v}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    // One labeling queue, whichever replica is asked.
    let queues: Vec<serde_json::Value> = ports
        .iter()
        .map(|&p| {
            let mut c = std::net::TcpStream::connect(("127.0.0.1", p)).unwrap();
            use std::io::{Read, Write};
            write!(
                c,
                "GET /admin/labeling/queue?limit=10000 HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer \
                0123456789abcdef0123\r\nConnection: close\r\n\r\n"
            )
            .unwrap();
            let mut out = String::new();
            c.read_to_string(&mut out).unwrap();
            body_of(&out)
        })
        .collect();
    assert!(queues.windows(2).all(|w| w[0] == w[1]), "the replicas see different queues");

    // A clean stop writes every answered row.
    for (server, _, _) in &mut replicas {
        assert!(server.signal(libc::SIGTERM).success());
    }
    let n = rows(&url);
    assert_eq!(n, (CLIENTS * REQUESTS_PER_CLIENT) as i64, "answered rows in PostgreSQL");
    let items = queues[0]["items"].as_array().unwrap().len();
    assert_eq!(items, CLIENTS * REQUESTS_PER_CLIENT, "every text is a queue item");

    // SIGKILL in the middle of a stream of requests: at most the queue (4096 rows) is lost.
    let (mut server, port, _) = spawn_server(d, &args, None);
    let texts: Vec<String> = (0..200).map(|i| format!("kill test {i}")).collect();
    let body = serde_json::json!({ "texts": texts }).to_string();
    for _ in 0..10 {
        assert!(http(port, "POST", "/v1/predict", &body).starts_with("HTTP/1.1 200"));
    }
    server.signal(libc::SIGKILL);
    let lost = n + 2000 - rows(&url);
    assert!((0..=4096).contains(&lost), "{lost} rows lost");
    eprintln!("SIGKILL after 2000 answered rows: {lost} lost");
}
