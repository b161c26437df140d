//! Crash safety of `intent retrain`: the process is SIGKILLed at eight stages of a run (named by
//! the `INTENT_HALT_AT` test hook, where it waits to be killed). After each kill the registry is
//! consistent (`intent models show`: every version complete, `current` on a complete version,
//! no partial version visible), `current` is loadable, and a running server that reloads it keeps
//! answering. The next run records the killed one as `interrupted` and removes its leftovers.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

const TOKEN: &str = "0123456789abcdef0123";

fn intent(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_intent"))
        .args(args)
        .current_dir(cwd)
        .env("RUST_LOG", "warn")
        .env_remove("INTENT_HALT_AT")
        .output()
        .expect("runs")
}

fn ok(o: &Output) -> String {
    let (out, err) = (String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr));
    assert!(o.status.success(), "stdout: {out}\nstderr: {err}");
    out
}

fn http(port: u16, method: &str, path: &str, body: &str) -> String {
    let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    write!(
        c,
        "{method} {path} HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: \
            application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    c.read_to_string(&mut out).unwrap();
    out
}

/// Four intents with their own keywords: `n` texts each, starting at `from`.
fn jsonl(n: usize, from: usize) -> String {
    let words = [("card", "debit"), ("transfer", "wire"), ("refund", "money"), ("password", "login")];
    let mut out = String::new();
    for (a, b) in words {
        for i in from..from + n {
            out.push_str(&format!("{{\"text\": \"question {i} on my {a} and {b}\", \"label\": \"{a}\"}}\n"));
        }
    }
    out
}

/// Starts a process with stderr piped and reads it until `needle`; returns the child, the line
/// and the lines read.
#[allow(clippy::zombie_processes)] // the child is returned: the caller kills and waits for it
fn spawn_until(cmd: &mut Command, needle: &str) -> (Child, String) {
    let mut child = cmd.stderr(Stdio::piped()).stdout(Stdio::null()).spawn().unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = Vec::new();
    loop {
        let Some(Ok(line)) = lines.next() else {
            let _ = child.kill();
            panic!("exited before printing '{needle}': {}", seen.join("\n"));
        };
        if line.contains(needle) {
            // Keep draining stderr so the child never blocks on a full pipe.
            std::thread::spawn(move || lines.for_each(drop));
            return (child, line);
        }
        seen.push(line);
    }
}

/// Names of entries in `dir` that an interrupted change may leave.
fn leftovers(d: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for dir in ["models/faq", "models/faq/aliases", "retrain"] {
        for e in std::fs::read_dir(d.join(dir)).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with(".staging-")
                || name.contains(".tmp-")
                || name.starts_with("candidate-")
                || name == "running"
            {
                out.push(format!("{dir}/{name}"));
            }
        }
    }
    out.sort();
    out
}

/// `intent models show faq`: (current, versions); asserts every version is complete.
fn registry_state(d: &Path) -> (u64, Vec<u64>) {
    let show: serde_json::Value =
        serde_json::from_str(&ok(&intent(&["models", "show", "faq", "--root", "models"], d))).unwrap();
    let versions: Vec<u64> =
        show["versions"].as_array().unwrap().iter().map(|v| v["version"].as_u64().unwrap()).collect();
    let on_disk: Vec<u64> = std::fs::read_dir(d.join("models/faq/versions"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().parse().unwrap())
        .collect();
    assert_eq!(
        on_disk.len(),
        versions.len(),
        "a folder in versions/ that is not a complete version: {on_disk:?} vs {versions:?}"
    );
    for v in &versions {
        for f in ["version.json", "config.json", "model.safetensors", "data/train.jsonl"] {
            assert!(d.join(format!("models/faq/versions/{v}/{f}")).is_file(), "version {v} lacks {f}");
        }
    }
    let current = show["aliases"]["current"].as_u64().expect("current is set");
    assert!(versions.contains(&current), "current {current} is not a version: {versions:?}");
    if let Some(p) = show["aliases"]["previous"].as_u64() {
        assert!(versions.contains(&p), "previous {p} is not a version");
    }
    (current, versions)
}

#[test]
fn sigkill_at_eight_stages_leaves_the_registry_consistent() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("base.jsonl"), jsonl(20, 0)).unwrap();
    std::fs::write(d.join("holdout.jsonl"), jsonl(5, 100)).unwrap();
    std::fs::write(
        d.join("retrain.toml"),
        "model = \"faq\"\nkind = \"svm\"\nbase_data = \"base.jsonl\"\nholdout = \
            \"holdout.jsonl\"\n[gate]\nmin_overall = 0.9\nmax_regression = 0.5\n",
    )
    .unwrap();
    assert!(ok(&intent(&["retrain", "--config", "retrain.toml"], d)).starts_with("deployed: version 1"));

    let (child, line) = spawn_until(
        Command::new(env!("CARGO_BIN_EXE_intent"))
            .args([
                "serve",
                "--model",
                "models/faq@current",
                "--addr",
                "127.0.0.1:0",
                "--no-query-log",
                "--http-threads",
                "1",
            ])
            .current_dir(d)
            .env("RUST_LOG", "info")
            .env("INTENT_ADMIN_TOKEN", TOKEN),
        "listening on http://",
    );
    let port: u16 = line.rsplit(':').next().unwrap().trim().parse().unwrap();
    let mut server = Server { child };

    // (stage, whether `current` has moved to the new version when the kill lands, what the kill leaves)
    let stages: [(&str, bool, &str); 8] = [
        ("retrain:assessed", false, "retrain/running"),
        ("retrain:trained", false, "retrain/candidate-"),
        ("retrain:validated", false, "retrain/candidate-"),
        ("register:staged", false, "models/faq/.staging-"),
        ("retrain:registered", false, "retrain/running"),
        ("promote:previous", false, "retrain/running"),
        ("write:current", false, "models/faq/aliases/.current.tmp-"),
        ("retrain:promoted", true, "retrain/running"),
    ];
    for (stage, moved, left) in stages {
        let (before, versions_before) = registry_state(d);
        let (mut child, line) = spawn_until(
            Command::new(env!("CARGO_BIN_EXE_intent"))
                .args(["retrain", "--config", "retrain.toml", "--force"])
                .current_dir(d)
                .env("RUST_LOG", "warn")
                .env("INTENT_HALT_AT", stage),
            "halted at",
        );
        assert_eq!(line.trim(), format!("halted at {stage}"));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();

        let found = leftovers(d);
        assert!(
            found.iter().any(|f| f.starts_with(left)),
            "{stage}: expected a leftover {left}*, found {found:?}"
        );
        let (after, versions) = registry_state(d);
        let new_version = versions.iter().copied().find(|v| !versions_before.contains(v));
        if moved {
            assert_eq!(Some(after), new_version, "{stage}: current should be the new version");
        } else {
            assert_eq!(after, before, "{stage}: current moved");
        }
        let out = ok(&intent(&["predict", "--model", "models/faq@current", "my debit card"], d));
        assert!(out.contains("\"label\":\"card\""), "{stage}: {out}");
        let r = http(port, "POST", "/admin/reload", "");
        assert!(r.starts_with("HTTP/1.1 200"), "{stage}: {r}");
        assert!(r.contains(&format!("\"version\":\"{after}\"")), "{stage}: the server reloaded {r}");
        let r = http(port, "POST", "/v1/predict", r#"{"text": "a wire transfer"}"#);
        assert!(r.starts_with("HTTP/1.1 200") && r.contains(r#""label":"transfer""#), "{stage}: {r}");
    }

    // The next run cleans up, records the killed runs, and deploys.
    let out = ok(&intent(&["retrain", "--config", "retrain.toml", "--force"], d));
    assert!(out.starts_with("deployed: version"), "{out}");
    assert_eq!(leftovers(d), Vec::<String>::new());
    let history = std::fs::read_to_string(d.join("retrain/retrain_history.jsonl")).unwrap();
    let statuses: Vec<String> = history
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["status"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(statuses.iter().filter(|s| *s == "interrupted").count(), 8, "{statuses:?}");
    assert_eq!(statuses.last().map(String::as_str), Some("deployed"));
    let (current, _) = registry_state(d);
    let r = http(port, "POST", "/admin/reload", "");
    assert!(r.contains(&format!("\"version\":\"{current}\"")), "{r}");
    server.stop();
}

/// The server process, killed when the test ends (also on a failed assertion).
struct Server {
    child: Child,
}

impl Server {
    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}
