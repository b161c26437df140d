//! Stand-in HTTP services for tests (a webhook receiver, a fallback service, a server's admin
//! routes): one request read, one answer written, each connection on its own thread. Written by
//! hand on the standard library because the stand-ins must be synchronous, tiny, and able to
//! misbehave on purpose (answer late, or not at all).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};

/// One request.
#[derive(Debug, Clone)]
pub struct Request {
    /// The request line, such as `GET /admin/labeling/export?source=teacher HTTP/1.1`.
    pub line: String,
    /// Header names (lower-case) and values.
    pub headers: Vec<(String, String)>,
    /// The body (`Content-Length` bytes).
    pub body: Vec<u8>,
}

impl Request {
    /// The value of header `name` (lower-case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// The body as JSON (`null` when it is not).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_default()
    }
}

/// Reads one request from `stream`.
pub fn read_request(stream: &TcpStream) -> Request {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    let _ = reader.read_line(&mut line);
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
            break;
        }
        if let Some((name, value)) = h.split_once(':') {
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
        }
    }
    let length = headers.iter().find(|(n, _)| n == "content-length").and_then(|(_, v)| v.parse().ok());
    let mut body = vec![0; length.unwrap_or(0)];
    let _ = reader.read_exact(&mut body);
    Request { line: line.trim_end().to_string(), headers, body }
}

/// Writes an answer with `status` (such as `200 OK`) and `body`, and closes.
pub fn respond(mut stream: &TcpStream, status: &str, body: &str) {
    let _ = write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

/// Serves `handle`'s answer (status, body) to every request on a port of 127.0.0.1, each
/// connection on its own thread, until the process ends; returns the port.
pub fn serve(handle: impl Fn(&Request) -> (String, String) + Send + Sync + 'static) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a local port");
    let port = listener.local_addr().expect("bound").port();
    let handle = std::sync::Arc::new(handle);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let handle = handle.clone();
            std::thread::spawn(move || {
                let request = read_request(&stream);
                let (status, body) = handle(&request);
                respond(&stream, &status, &body);
            });
        }
    });
    port
}

/// `200 OK` with `body`.
pub fn ok(body: impl Into<String>) -> (String, String) {
    ("200 OK".into(), body.into())
}
