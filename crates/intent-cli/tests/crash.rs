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

/// The labeled examples of [`jsonl`] as a data set (for the tiny encoder's vocabulary).
fn dataset(text: &str) -> intent_data::Dataset {
    intent_data::Dataset::new(
        text.lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                intent_data::Example::new(v["text"].as_str().unwrap(), v["label"].as_str().unwrap())
            })
            .collect(),
    )
}

#[test]
fn sigkill_of_a_bert_retrain_leaves_current_serving_and_the_next_run_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (base, holdout) = (jsonl(20, 0), jsonl(5, 100));
    std::fs::write(d.join("base.jsonl"), &base).unwrap();
    std::fs::write(d.join("holdout.jsonl"), &holdout).unwrap();
    let mut words = dataset(&base);
    words.examples.extend(dataset(&holdout).examples);
    intent_testkit::bert::write_tiny_encoder_for(&d.join("tiny"), &words);
    let common = "model = \"faq\"\nbase_data = \"base.jsonl\"\nholdout = \"holdout.jsonl\"\n";
    std::fs::write(d.join("retrain.toml"), format!("{common}kind = \"svm\"\n[gate]\nmax_regression = 1.0\n"))
        .unwrap();
    assert!(ok(&intent(&["retrain", "--config", "retrain.toml"], d)).starts_with("deployed: version 1"));
    // Now a fine-tune of a few seconds, with a checkpoint after each of its 300 epochs.
    std::fs::write(
        d.join("retrain.toml"),
        format!(
            "{common}kind = \"bert\"\n[gate]\nmax_regression = 1.0\n[train]\nbase = \"tiny\"\n\
             device = \"cpu\"\nmax_len = 16\nepochs = 300\n\
             batch_size = 4\nlr = 0.005\nwarmup_ratio = 0.0\nmin_steps = 1\n"
        ),
    )
    .unwrap();

    // (what stops the run, whether it is a halt point, what the kill leaves besides `running`)
    let stages = [
        ("checkpoint written: ", false, "retrain/checkpoints"),
        ("retrain:trained", true, "retrain/candidate-"),
        ("retrain:registered", true, "retrain/checkpoints"),
    ];
    for (stage, halt, left) in stages {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_intent"));
        cmd.args(["retrain", "--config", "retrain.toml", "--force"]).current_dir(d).env("RUST_LOG", "info");
        if halt {
            cmd.env("INTENT_HALT_AT", stage);
        } else {
            cmd.env_remove("INTENT_HALT_AT");
        }
        let (mut child, line) = spawn_until(&mut cmd, if halt { "halted at" } else { stage });
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        if !halt {
            assert!(line.contains("epoch-"), "{line}");
        }
        let mut found = leftovers(d);
        if d.join("retrain/checkpoints").is_dir() {
            found.push("retrain/checkpoints".into());
        }
        assert!(found.iter().any(|f| f.starts_with(left)), "{stage}: expected {left}*, found {found:?}");
        assert!(found.contains(&"retrain/running".to_string()), "{stage}: {found:?}");
        let (current, _) = registry_state(d);
        assert_eq!(current, 1, "{stage}: current moved");
        let out = ok(&intent(&["predict", "--model", "models/faq@current", "my debit card"], d));
        assert!(out.contains("\"label\":\"card\""), "{stage}: the SVM still answers: {out}");
    }
    let log = std::fs::read_to_string(d.join("retrain/retrain.log")).unwrap();
    assert!(log.contains("resuming the fine-tune from"), "the second run resumed the first one's: {log}");

    // The next run records the three kills, resumes from the last checkpoint (all epochs done:
    // nothing left to train) and deploys the fine-tuned model.
    let out = ok(&intent(&["retrain", "--config", "retrain.toml", "--force"], d));
    assert!(out.starts_with("deployed: version 3"), "{out}");
    assert_eq!(leftovers(d), Vec::<String>::new());
    assert!(!d.join("retrain/checkpoints").exists(), "the finished fine-tune's checkpoints are removed");
    let history = std::fs::read_to_string(d.join("retrain/retrain_history.jsonl")).unwrap();
    let lines: Vec<serde_json::Value> = history.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let statuses: Vec<&str> = lines.iter().map(|l| l["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["deployed", "interrupted", "interrupted", "interrupted", "deployed"]);
    let last = lines.last().unwrap();
    assert_eq!((last["kind"].as_str(), last["kind_before"].as_str()), (Some("bert"), Some("svm")));
    let metrics = std::fs::read_to_string(d.join("models/faq/versions/3/metrics.json")).unwrap();
    let metrics: serde_json::Value = serde_json::from_str(&metrics).unwrap();
    assert_eq!(metrics["history"].as_array().unwrap().len(), 300, "one fine-tune across four processes");
    let out =
        ok(&intent(&["predict", "--model", "models/faq@current", "question 3 on my refund and money"], d));
    assert!(out.contains("\"label\":\"refund\""), "{out}");
}
