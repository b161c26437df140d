//! Shared by the command-line tests: run the `intent` binary and check how it ended.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

/// Runs `intent ARGS` in `cwd` (warnings only in the log).
pub fn intent(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_intent"))
        .args(args)
        .current_dir(cwd)
        .env("RUST_LOG", "warn")
        .output()
        .expect("runs")
}

/// The all-MiniLM-L6-v2 folder that `cargo xtask fetch-model minilm` writes, as a path argument.
pub fn minilm() -> String {
    let folder = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models/all-MiniLM-L6-v2");
    assert!(folder.join("model.safetensors").is_file(), "run `cargo xtask fetch-model minilm` first");
    folder.to_string_lossy().into_owned()
}

/// The standard output of a run that must have succeeded.
pub fn ok(o: &Output) -> String {
    let (out, err) = (String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr));
    assert!(o.status.success(), "stdout: {out}\nstderr: {err}");
    out
}

/// A run that failed with exit code 2 and an `error:` line holding `needle`.
pub fn fails_with(o: &Output, needle: &str) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.lines().any(|l| l.starts_with("error:") && l.contains(needle)),
        "expected '{needle}' in: {err}"
    );
}

/// A request over a new connection (`Connection: close`); the whole answer.
pub fn http(port: u16, method: &str, path: &str, body: &str) -> String {
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

/// A server process, killed when dropped (a failed assertion leaves no server behind).
pub struct Server(std::process::Child);

impl Server {
    /// The process id.
    pub fn id(&self) -> u32 {
        self.0.id()
    }

    /// Sends `signal` and waits for the process to end.
    pub fn signal(&mut self, signal: i32) -> std::process::ExitStatus {
        unsafe { libc::kill(self.0.id() as i32, signal) };
        self.0.wait().unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `intent serve ARGS` in `cwd`, started under `ulimit -n FILES` when given; returns the server,
/// its port and a thread collecting the rest of its log.
pub fn spawn_server(
    cwd: &Path,
    args: &[&str],
    files: Option<u32>,
) -> (Server, u16, std::thread::JoinHandle<Vec<String>>) {
    let mut cmd = match files {
        Some(n) => {
            let mut c = Command::new("bash");
            c.arg("-c").arg(format!("ulimit -n {n} && exec \"$0\" \"$@\"")).arg(env!("CARGO_BIN_EXE_intent"));
            c
        }
        None => Command::new(env!("CARGO_BIN_EXE_intent")),
    };
    let mut child = cmd
        .arg("serve")
        .args(["--addr", "127.0.0.1:0", "--http-threads", "2"])
        .args(args)
        .current_dir(cwd)
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
    (Server(child), port, std::thread::spawn(move || lines.map_while(Result::ok).collect::<Vec<_>>()))
}
