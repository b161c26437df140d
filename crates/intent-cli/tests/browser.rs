//! The labeling console and the HTML reports in a real browser: headless Chromium driven over
//! WebDriver (chromedriver). `intent serve` runs a small registry model with every query sent
//! to the labeling queue; the test signs in, labels three items with the keyboard, undoes one,
//! checks the export holds exactly the two labels left, opens the model page, and opens the
//! `report.html` of an MLP, a multi-label and an NCF model from the file system — no console
//! errors anywhere, and texts that look like markup stay text.
//!
//! Needs `chromium` and `chromedriver` (Debian: `chromium`, `chromium-driver`; `.ci/run`
//! installs them and sets `INTENT_REQUIRE_BROWSER=1`). Without them the test says so and passes,
//! unless `INTENT_REQUIRE_BROWSER` is set. Screenshots go to `$INTENT_SCREENSHOTS` when set (the
//! README's are made so), else to a temporary folder.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use fantoccini::wd::{Capabilities, WebDriverCompatibleCommand};
use fantoccini::{Client, ClientBuilder, Locator};
use intent_data::formats::interactions::write_interactions;
use intent_data::recsys::synthetic_interactions;
use serde_json::{json, Value};

const TOKEN: &str = "0123456789abcdef0123";

/// The first of `names` found on `PATH` (or the path in `env`).
fn program(env: &str, names: &[&str]) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(env) {
        return Some(PathBuf::from(p)).filter(|p| p.is_file());
    }
    let path = std::env::var_os("PATH")?;
    names.iter().flat_map(|n| std::env::split_paths(&path).map(move |d| d.join(n))).find(|p| p.is_file())
}

/// chromedriver, killed when dropped.
struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts chromedriver on a free port; returns it and its URL once it answers.
fn start_driver(path: &Path) -> (Driver, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = Command::new(path)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    let driver = Driver(child);
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return (driver, format!("http://127.0.0.1:{port}"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("chromedriver did not listen on port {port} within 10 s");
}

/// The browser's console messages since the last call (chromedriver's log endpoint).
#[derive(Debug)]
struct BrowserLog;

impl WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(&self, base: &url::Url, session: Option<&str>) -> Result<url::Url, url::ParseError> {
        base.join(&format!("session/{}/se/log", session.unwrap_or_default()))
    }

    fn method_and_body(&self, _: &url::Url) -> (axum::http::Method, Option<String>) {
        (axum::http::Method::POST, Some(r#"{"type": "browser"}"#.into()))
    }
}

/// Fails on any console message of level SEVERE (errors, CSP violations, failed loads).
async fn no_console_errors(c: &Client, page: &str) {
    let log = c.issue_cmd(BrowserLog).await.expect("the browser log");
    let severe: Vec<&Value> =
        log.as_array().into_iter().flatten().filter(|e| e["level"] == "SEVERE").collect();
    assert!(severe.is_empty(), "{page}: console errors: {severe:#?}");
}

/// Waits (up to 20 s) until `js` (a function body) returns true.
async fn until(c: &Client, what: &str, js: &str) {
    for _ in 0..200 {
        if c.execute(js, vec![]).await.unwrap() == json!(true) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let shot = c.screenshot().await.unwrap_or_default();
    let _ = std::fs::write(std::env::temp_dir().join("intent-browser-timeout.png"), shot);
    panic!("timed out waiting for {what} ({js})");
}

async fn js(c: &Client, script: &str) -> Value {
    c.execute(script, vec![]).await.unwrap()
}

async fn keys(c: &Client, keys: &str) {
    c.active_element().await.unwrap().send_keys(keys).await.unwrap();
}

/// `GET path` with the admin token; the body.
fn admin_text(port: u16, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {TOKEN}\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    assert!(out.starts_with("HTTP/1.1 200"), "{path}: {out}");
    out.split_once("\r\n\r\n").unwrap().1.to_string()
}

/// `GET path` with the admin token; the body as JSON.
fn admin_get(port: u16, path: &str) -> Value {
    let body = admin_text(port, path);
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"))
}

fn screenshot_dir(fallback: &Path) -> PathBuf {
    let dir = std::env::var_os("INTENT_SCREENSHOTS").map(PathBuf::from).unwrap_or_else(|| fallback.into());
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A small multi-label data set: each text names one or two of three topics.
fn multi_label_data(d: &Path) {
    let topics = [("card", "my card"), ("transfer", "a transfer"), ("fees", "the fees")];
    let (mut train, mut test) = (String::new(), String::new());
    for i in 0..60 {
        let a = i % 3;
        let b = (i / 3) % 3;
        let mut labels = vec![topics[a].0];
        let mut text = format!("question {i} about {}", topics[a].1);
        if b != a {
            labels.push(topics[b].0);
            text.push_str(&format!(" and {}", topics[b].1));
        }
        let line = json!({ "text": text, "labels": labels }).to_string() + "\n";
        if i % 4 == 0 {
            test.push_str(&line);
        } else {
            train.push_str(&line);
        }
    }
    std::fs::write(d.join("ml-train.jsonl"), train).unwrap();
    std::fs::write(d.join("ml-test.jsonl"), test).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_and_reports_in_headless_chromium() {
    let required = std::env::var_os("INTENT_REQUIRE_BROWSER").is_some();
    let chrome = program("CHROME_BIN", &["chromium", "chromium-browser", "google-chrome"]);
    let driver = program("CHROMEDRIVER", &["chromedriver"]);
    let (Some(chrome), Some(driver)) = (chrome, driver) else {
        assert!(!required, "INTENT_REQUIRE_BROWSER is set but chromium or chromedriver is missing");
        eprintln!(
            "SKIPPED: the browser test needs chromium and chromedriver (Debian packages chromium, \
                chromium-driver; .ci/run installs them)"
        );
        return;
    };

    // A registry model with two versions, served; every query goes to the labeling queue.
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(&intent(&["pipeline", "--models-dir", "models", "--epochs", "3", "--no-gate"], d));
    ok(&intent(&["models", "register", "example", "models/example/versions/1", "--root", "models"], d));
    let args =
        ["--model", "models/example@current", "--query-log", "queries.db", "--fallback-threshold", "0.999"];
    // The server's retrain job (retrain.toml in its folder) for the model page's button.
    let retrain_toml = "model = \"example\"\nkind = \"mlp\"\n\
        base_data = \"models/example/versions/1/data/train.jsonl\"\n\
        holdout = \"models/example/versions/1/data/test.jsonl\"\n\
        [gate]\nmax_regression = 1.0\n[train.engine]\nepochs = 3\n";
    std::fs::write(d.join("retrain.toml"), retrain_toml).unwrap();
    let (server, port, server_log) = spawn_server(d, &args, None);
    let hostile =
        [r#"<img src=x onerror="document.title='pwned'">"#, "<script>document.title='pwned'</script>"];
    let texts = ["where is my order", "i would like my money back", "hello there", hostile[0], hostile[1]];
    for t in texts.iter().chain(&["where is my order", "where is my order"]) {
        let r = http(port, "POST", "/v1/predict", &json!({ "text": t }).to_string());
        assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    }
    // The log is written in the background: wait for the five distinct texts.
    let mut queue = Value::Null;
    for _ in 0..100 {
        queue = admin_get(port, "/admin/labeling/queue?order=newest");
        if queue["items"].as_array().map_or(0, Vec::len) == texts.len() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let items = queue["items"].as_array().unwrap().clone();
    assert_eq!(items.len(), texts.len(), "{queue}");
    let suggestion = |i: usize, n: usize| items[i]["suggestions"][n]["label"].as_str().unwrap().to_string();
    let labels: Vec<String> =
        serde_json::from_value(admin_get(port, "/v1/models")["models"][0]["labels"].clone()).unwrap();

    let (_driver, driver_url) = start_driver(&driver);
    let mut caps = Capabilities::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": chrome,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1280,900"],
        }),
    );
    caps.insert("goog:loggingPrefs".into(), json!({ "browser": "ALL" }));
    let c = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&driver_url)
        .await
        .expect("a WebDriver session");
    let shots = screenshot_dir(d);

    // Sign in: the token goes into a password field, never into the URL.
    let base = format!("http://127.0.0.1:{port}");
    c.goto(&format!("{base}/ui/")).await.unwrap();
    let token = c.wait().for_element(Locator::Id("token")).await.unwrap();
    token.send_keys(TOKEN).await.unwrap();
    c.find(Locator::Css("#sign-in button[type=submit]")).await.unwrap().click().await.unwrap();
    until(&c, "the queue", "return document.querySelectorAll('#queue-body tr').length === 5").await;
    assert!(!c.current_url().await.unwrap().as_str().contains(TOKEN));
    // The console log is read for real: a message written now is in it (and then consumed).
    js(&c, "console.error('log probe'); return true").await;
    let probe = c.issue_cmd(BrowserLog).await.unwrap();
    assert!(probe.to_string().contains("log probe"), "the browser log works: {probe}");
    assert_eq!(
        js(&c, &format!("return sessionStorage.getItem('intent-admin-token') === '{TOKEN}'")).await,
        true
    );

    // Texts that look like markup are shown as text: no element made of them, no script run.
    assert_eq!(
        js(&c, "return document.querySelectorAll('#queue-body img, #queue-body script').length").await,
        0
    );
    assert_eq!(js(&c, "return document.title").await, "intent · labeling console");
    let shown =
        js(&c, "return [...document.querySelectorAll('#queue-body td.text')].map(t => t.textContent)").await;
    for h in hostile {
        assert!(shown.as_array().unwrap().iter().any(|t| t == h), "{h} shown as text: {shown}");
    }
    assert_eq!(
        js(&c, "return document.querySelector('#queue-body tr td:nth-child(3)').textContent").await,
        "1"
    );

    // Keyboard: 1 accepts the first suggestion of the newest item, 2 the second of the next,
    // `/` searches the label set for the third, `u` undoes that last label.
    keys(&c, "1").await;
    until(&c, "one label", "return document.querySelectorAll('#queue-body tr.done').length === 1").await;
    keys(&c, "2").await;
    until(&c, "two labels", "return document.querySelectorAll('#queue-body tr.done').length === 2").await;
    keys(&c, "/").await;
    assert_eq!(js(&c, "return document.activeElement.id").await, "label-search");
    keys(&c, &format!("{}\u{e007}", labels[0])).await;
    until(&c, "three labels", "return document.querySelectorAll('#queue-body tr.done').length === 3").await;
    until(&c, "the counter", "return document.getElementById('count-today').textContent === '3'").await;
    keys(&c, "u").await;
    until(&c, "the undo", "return document.querySelectorAll('#queue-body tr.done').length === 2").await;
    until(&c, "the counter", "return document.getElementById('count-today').textContent === '2'").await;
    std::fs::write(shots.join("console.png"), c.screenshot().await.unwrap()).unwrap();

    // The export holds exactly the two labels left.
    let export = admin_text(port, "/admin/labeling/export");
    let lines: Vec<Value> = export.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 2, "{export}");
    let got: Vec<(&str, &str)> =
        lines.iter().map(|l| (l["text"].as_str().unwrap(), l["label"].as_str().unwrap())).collect();
    let (first, second) = (suggestion(0, 0), suggestion(1, 1));
    let mut want = vec![
        (items[0]["text"].as_str().unwrap(), first.as_str()),
        (items[1]["text"].as_str().unwrap(), second.as_str()),
    ];
    want.sort();
    let mut got_sorted = got.clone();
    got_sorted.sort();
    assert_eq!(got_sorted, want);
    let third = items[2]["id"].as_i64().unwrap();
    let history = admin_get(port, &format!("/admin/labeling/{third}/history"));
    assert_eq!(history["changes"].as_array().unwrap().len(), 2, "labeled, then undone: {history}");
    assert_eq!(history["changes"][1]["labels"], json!([]));

    // The model page: metrics per class, the plots, both registry versions.
    c.find(Locator::Id("nav-model")).await.unwrap().click().await.unwrap();
    until(&c, "the per-class table", "return document.querySelectorAll('#per-class tbody tr').length > 0")
        .await;
    until(
        &c,
        "the plots",
        "return ['plot-confusion', 'plot-histogram'].every(id => {
        const i = document.getElementById(id); return i.complete && i.naturalWidth > 0; })",
    )
    .await;
    until(&c, "the registry", "return document.querySelectorAll('#versions tbody tr').length === 2").await;
    std::fs::write(shots.join("model.png"), c.screenshot().await.unwrap()).unwrap();
    // "Retrain now": the server trains in the background and swaps to the new version.
    let before = admin_get(port, "/v1/models")["models"][0]["version"].clone();
    c.find(Locator::Id("retrain-now")).await.unwrap().click().await.unwrap();
    until(
        &c,
        "the retrain",
        "return /deployed: now serving version/.test(document.getElementById('retrain-state')\
        .textContent)",
    )
    .await;
    let after = admin_get(port, "/v1/models")["models"][0]["version"].clone();
    assert_ne!(before, after, "the server swapped to the retrained version");
    until(&c, "the registry", "return document.querySelectorAll('#versions tbody tr').length === 3").await;
    no_console_errors(&c, "/ui/").await;

    // report.html of an MLP, a multi-label SVM and an NCF model, from the file system.
    multi_label_data(d);
    ok(&intent(&["train", "svm", "--train", "ml-train.jsonl", "--test", "ml-test.jsonl", "--out", "ml"], d));
    let data = synthetic_interactions(60, 40, 8, 4, 5);
    write_interactions(&d.join("inter.json"), &data).unwrap();
    let ncf =
        ["train", "ncf", "--train", "inter.json", "--out", "ncf", "--epochs", "2", "--test-negatives", "20"];
    ok(&intent(&ncf, d));
    ok(&intent(&["eval", "--model", "ncf", "--report", "ncf-report"], d));
    let reports = [
        ("mlp", d.join("models/example/versions/1/report/report.html"), "per-class", 2),
        ("multi-label", d.join("ml/report/report.html"), "per-class", 1),
        ("ncf", d.join("ncf-report/report.html"), "by-k", 1),
    ];
    for (name, path, table, images) in reports {
        assert!(path.is_file(), "{}", path.display());
        c.goto(&format!("file://{}", path.display())).await.unwrap();
        until(
            &c,
            "the images",
            &format!(
                "const i = [...document.images]; return i.length === {images} && \
            i.every(x => x.complete && x.naturalWidth > 0)"
            ),
        )
        .await;
        // The sort script ran (its hash is in the page's CSP): a click marks the column.
        c.find(Locator::Css(&format!("#{table} th:nth-child(2)"))).await.unwrap().click().await.unwrap();
        until(
            &c,
            "the sort",
            &format!("return document.querySelector('#{table} th:nth-child(2)').dataset.up === '1'"),
        )
        .await;
        no_console_errors(&c, name).await;
        std::fs::write(shots.join(format!("report-{name}.png")), c.screenshot().await.unwrap()).unwrap();
    }

    // A multi-label model takes several labels: 1 and 2 choose, Enter saves both.
    let args = ["--model", "ml", "--query-log", "ml.db", "--fallback-threshold", "0.999"];
    let (_ml_server, ml_port, _ml_log) = spawn_server(d, &args, None);
    let r = http(ml_port, "POST", "/v1/predict", r#"{"text": "a question about my card and the fees"}"#);
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    let mut ml_items = Value::Null;
    for _ in 0..100 {
        ml_items = admin_get(ml_port, "/admin/labeling/queue")["items"].clone();
        if ml_items.as_array().is_some_and(|a| !a.is_empty()) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut two: Vec<String> =
        (0..2).map(|n| ml_items[0]["suggestions"][n]["label"].as_str().unwrap().to_string()).collect();
    c.goto(&format!("http://127.0.0.1:{ml_port}/ui/")).await.unwrap();
    c.wait().for_element(Locator::Id("token")).await.unwrap().send_keys(TOKEN).await.unwrap();
    c.find(Locator::Css("#sign-in button[type=submit]")).await.unwrap().click().await.unwrap();
    until(&c, "the queue", "return document.querySelectorAll('#queue-body tr').length === 1").await;
    keys(&c, "1").await;
    keys(&c, "2").await;
    until(
        &c,
        "two chosen labels",
        "return document.getElementById('draft').textContent.split(',').length === 2",
    )
    .await;
    keys(&c, "\u{e007}").await;
    until(&c, "the labels", "return document.querySelectorAll('#queue-body tr.done').length === 1").await;
    let export = admin_text(ml_port, "/admin/labeling/export");
    let line: Value = serde_json::from_str(export.trim()).unwrap();
    let mut got: Vec<String> = serde_json::from_value(line["labels"].clone()).unwrap();
    got.sort();
    two.sort();
    assert_eq!(got, two, "{export}");
    no_console_errors(&c, "/ui/ (multi-label)").await;
    c.close().await.unwrap();
    // The admin token went through every console request; the server's log never shows it.
    drop(server);
    let lines = server_log.join().unwrap();
    assert!(lines.len() > 3 && lines.iter().all(|l| !l.contains(TOKEN)), "{lines:#?}");
}
