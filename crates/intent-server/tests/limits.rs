//! Hostile and slow clients over real TCP: headers that never end, bodies that stall, idle
//! keep-alive connections, more connections than the cap, and a shutdown with a stalled
//! client.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::*;
use intent_server::server::{serve, AppState, ServerOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

/// The head of a `POST /v1/predict` up to its `Content-Length`.
const POST_HEAD: &str = "POST /v1/predict HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n";

struct Running {
    addr: SocketAddr,
    state: AppState,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: JoinHandle<std::io::Result<()>>,
    _dir: tempfile::TempDir,
}

async fn start(options: ServerOptions) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let m = model(dir.path(), "faq", 1);
    let state = state(&m, dir.path(), true, options);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(listener, state.clone(), async move {
        let _ = stopped.await;
    }));
    Running { addr, state, stop: Some(stop), server, _dir: dir }
}

fn quick(header_ms: u64, body_ms: u64) -> ServerOptions {
    ServerOptions {
        header_timeout: Duration::from_millis(header_ms),
        body_timeout: Duration::from_millis(body_ms),
        ..Default::default()
    }
}

/// Reads until the server closes the connection (or `within` passes: then panics).
async fn read_to_close(c: &mut TcpStream, within: Duration) -> String {
    let mut out = Vec::new();
    tokio::time::timeout(within, c.read_to_end(&mut out))
        .await
        .expect("the server kept the connection open")
        .ok();
    String::from_utf8_lossy(&out).into_owned()
}

async fn request(addr: SocketAddr, method: &str, path: &str, body: &str) -> String {
    let mut c = TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
        Connection: close\r\n\r\n{body}",
        body.len()
    );
    c.write_all(req.as_bytes()).await.unwrap();
    read_to_close(&mut c, Duration::from_secs(10)).await
}

#[tokio::test]
async fn headers_that_never_end_are_cut_and_others_are_served_meanwhile() {
    let s = start(quick(300, 5000)).await;
    let mut slow = Vec::new();
    for _ in 0..50 {
        let mut c = TcpStream::connect(s.addr).await.unwrap();
        c.write_all(b"POST /v1/predict HTTP/1.1\r\nHost: t\r\nContent-").await.unwrap();
        slow.push(c);
    }
    let r = request(s.addr, "POST", "/v1/predict", r#"{"text": "reset my password"}"#).await;
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    let start = Instant::now();
    for c in &mut slow {
        read_to_close(c, Duration::from_secs(3)).await;
    }
    assert!(start.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed() {
    let s = start(quick(300, 5000)).await;
    let mut c = TcpStream::connect(s.addr).await.unwrap();
    let body = r#"{"text": "hi"}"#;
    let req = format!("{POST_HEAD}Content-Length: {}\r\n\r\n{body}", body.len());
    c.write_all(req.as_bytes()).await.unwrap();
    // The answer comes, then the connection stays idle until the header timeout closes it.
    let out = read_to_close(&mut c, Duration::from_secs(3)).await;
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
}

#[tokio::test]
async fn a_stalled_body_gets_408_and_holds_no_permit() {
    let s = start(ServerOptions { max_concurrent: 1, ..quick(5000, 400) }).await;
    let mut stalled = TcpStream::connect(s.addr).await.unwrap();
    stalled.write_all(format!("{POST_HEAD}Content-Length: 100\r\n\r\n{{\"te").as_bytes()).await.unwrap();
    // The one permit is free while the body stalls.
    let r = request(s.addr, "POST", "/v1/predict", r#"{"text": "hi"}"#).await;
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    let out = read_to_close(&mut stalled, Duration::from_secs(3)).await;
    assert!(out.starts_with("HTTP/1.1 408"), "{out}");
    assert!(out.contains("did not arrive within"), "{out}");
    let metrics = s.state.metrics().render();
    assert!(metrics.lines().any(|l| l == "intent_request_timeouts_total 1"), "{metrics}");
}

#[tokio::test]
async fn a_body_over_the_limit_is_refused_before_it_is_read() {
    let s = start(ServerOptions { max_body_bytes: 1000, ..quick(5000, 5000) }).await;
    let mut c = TcpStream::connect(s.addr).await.unwrap();
    c.write_all(format!("{POST_HEAD}Content-Length: 5000000\r\n\r\n").as_bytes()).await.unwrap();
    let mut buf = [0u8; 12];
    tokio::time::timeout(Duration::from_secs(3), c.read_exact(&mut buf)).await.unwrap().unwrap();
    assert_eq!(&buf, b"HTTP/1.1 413");
}

#[tokio::test]
async fn at_the_connection_cap_a_new_connection_displaces_the_longest_idle() {
    let s = start(ServerOptions { max_connections: 4, ..quick(10_000, 10_000) }).await;
    let mut idle = Vec::new();
    for _ in 0..4 {
        idle.push(TcpStream::connect(s.addr).await.unwrap());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Half a header on the newest: idle too (no request has begun).
    idle[3].write_all(b"GET /health HTTP/1.1\r\nHo").await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let r = request(s.addr, "POST", "/v1/predict", r#"{"text": "hi"}"#).await;
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    assert_eq!(read_to_close(&mut idle[0], Duration::from_secs(2)).await, "", "the oldest idle one goes");
    // The predict connection closed after its answer: one more idle fills the cap again.
    idle.push(TcpStream::connect(s.addr).await.unwrap());
    tokio::time::sleep(Duration::from_millis(100)).await;
    let health = request(s.addr, "GET", "/health", "").await;
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    assert_eq!(read_to_close(&mut idle[1], Duration::from_secs(2)).await, "");
}

#[tokio::test]
async fn with_every_connection_busy_probes_are_still_answered() {
    let s = start(ServerOptions { max_connections: 4, ..quick(10_000, 10_000) }).await;
    // Four requests in flight (their bodies arrive slowly) fill the cap: none can be displaced.
    let mut busy = Vec::new();
    for _ in 0..4 {
        let mut c = TcpStream::connect(s.addr).await.unwrap();
        c.write_all(format!("{POST_HEAD}Content-Length: 100\r\n\r\n{{").as_bytes()).await.unwrap();
        busy.push(c);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let health = request(s.addr, "GET", "/health", "").await;
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    let ready = request(s.addr, "GET", "/ready", "").await;
    assert!(ready.starts_with("HTTP/1.1 200"), "{ready}");
    let predict = request(s.addr, "POST", "/v1/predict", r#"{"text": "hi"}"#).await;
    assert!(predict.starts_with("HTTP/1.1 503"), "{predict}");
    assert!(predict.contains("connection limit") && predict.to_lowercase().contains("retry-after: 1"));
    // Spare connections are few: past them a connection is closed at once, and counted.
    let mut spare = Vec::new();
    for _ in 0..intent_server::listen::SPARE_CONNECTIONS {
        spare.push(TcpStream::connect(s.addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut extra = TcpStream::connect(s.addr).await.unwrap();
    assert_eq!(read_to_close(&mut extra, Duration::from_secs(1)).await, "");
    assert!(s.state.metrics().refused_connections.get() >= 1);
    // Once the requests are done, full service again.
    drop(busy);
    drop(spare);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let predict = request(s.addr, "POST", "/v1/predict", r#"{"text": "hi"}"#).await;
    assert!(predict.starts_with("HTTP/1.1 200"), "{predict}");
}

#[tokio::test]
async fn shutdown_cuts_a_stalled_client_at_the_deadline_and_writes_the_log() {
    let options = ServerOptions { shutdown_timeout: Duration::from_millis(500), ..quick(60_000, 60_000) };
    let mut s = start(options).await;
    for i in 0..5 {
        let r = request(s.addr, "POST", "/v1/predict", &format!(r#"{{"text": "wire {i}"}}"#)).await;
        assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    }
    let mut stalled = TcpStream::connect(s.addr).await.unwrap();
    stalled
        .write_all(b"POST /v1/predict HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n{\"te")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let start = Instant::now();
    s.stop.take().unwrap().send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), &mut s.server)
        .await
        .expect("shutdown hung")
        .unwrap()
        .unwrap();
    assert!(start.elapsed() >= Duration::from_millis(400), "the deadline was not waited for");
    assert_eq!(s.state.query_log().unwrap().count().unwrap(), 5);
    read_to_close(&mut stalled, Duration::from_secs(1)).await;
}
