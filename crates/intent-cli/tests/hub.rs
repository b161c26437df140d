//! `intent models push` against a local stand-in for the Hugging Face Hub (this machine cannot
//! reach the real one: the stub answers the Hub's upload API calls and records them), then
//! `intent predict` and `intent serve --model hf://ORG/NAME` from an offline hub cache.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::IntoResponse;
use base64::Engine;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

/// What the stub saw and holds.
#[derive(Default)]
struct Stub {
    /// (method, path, authorization header).
    calls: Vec<(String, String, String)>,
    create: Value,
    lfs: BTreeMap<String, Vec<u8>>,
    files: BTreeMap<String, Vec<u8>>,
    lfs_files: Vec<String>,
}

type Shared = Arc<Mutex<Stub>>;

async fn hub(
    axum::extract::State((stub, base)): axum::extract::State<(Shared, String)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> axum::response::Response {
    let path = uri.path().to_string();
    let auth = headers.get("authorization").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
    let mut s = stub.lock().unwrap();
    s.calls.push((method.to_string(), path.clone(), auth.clone()));
    let api = path.starts_with("/api/") || path.ends_with("/objects/batch");
    if api && auth != "Bearer hf_test_token" {
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"error": "Invalid credentials in Authorization header"})),
        )
            .into_response();
    }
    let json_body = || serde_json::from_slice::<Value>(&body).unwrap_or(Value::Null);
    if path == "/api/repos/create" {
        s.create = json_body();
        return axum::Json(json!({"url": format!("{base}/acme/faq")})).into_response();
    }
    if path.starts_with("/api/models/acme/faq/preupload/") {
        let files: Vec<Value> = json_body()["files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                let lfs = f["path"].as_str().unwrap().ends_with(".safetensors");
                json!({"path": f["path"], "uploadMode": if lfs { "lfs" } else { "regular" }})
            })
            .collect();
        return axum::Json(json!({"files": files})).into_response();
    }
    if path == "/acme/faq.git/info/lfs/objects/batch" {
        let objects: Vec<Value> = json_body()["objects"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| {
                let oid = o["oid"].as_str().unwrap();
                json!({"oid": oid, "size": o["size"], "actions": {
                    "upload": {"href": format!("{base}/lfs/{oid}"), "header": {"x-upload-key": "k"}},
                    "verify": {"href": format!("{base}/lfs-verify")}}})
            })
            .collect();
        return axum::Json(json!({"transfer": "basic", "objects": objects})).into_response();
    }
    if let Some(oid) = path.strip_prefix("/lfs/") {
        if method != Method::PUT
            || hex::encode(Sha256::digest(&body)) != oid
            || headers.get("x-upload-key").is_none()
        {
            return StatusCode::BAD_REQUEST.into_response();
        }
        s.lfs.insert(oid.to_string(), body.to_vec());
        return StatusCode::OK.into_response();
    }
    if path == "/lfs-verify" {
        let oid = json_body()["oid"].as_str().unwrap_or_default().to_string();
        return if s.lfs.contains_key(&oid) { StatusCode::OK } else { StatusCode::NOT_FOUND }.into_response();
    }
    if path == "/api/models/acme/faq/commit/main" {
        let text = String::from_utf8(body.to_vec()).unwrap();
        let mut lines = text.lines().map(|l| serde_json::from_str::<Value>(l).unwrap());
        assert_eq!(lines.next().unwrap()["key"], "header");
        for line in lines {
            let v = &line["value"];
            let p = v["path"].as_str().unwrap().to_string();
            let bytes = match line["key"].as_str().unwrap() {
                "file" => {
                    base64::engine::general_purpose::STANDARD.decode(v["content"].as_str().unwrap()).unwrap()
                }
                "lfsFile" => match s.lfs.get(v["oid"].as_str().unwrap()).cloned() {
                    Some(b) => {
                        s.lfs_files.push(p.clone());
                        b
                    }
                    None => return (StatusCode::BAD_REQUEST, "LFS object not uploaded").into_response(),
                },
                other => panic!("commit line {other}"),
            };
            s.files.insert(p, bytes);
        }
        return axum::Json(
            json!({"commitUrl": format!("{base}/acme/faq/commit/{COMMIT}"), "commitOid": COMMIT}),
        )
        .into_response();
    }
    (StatusCode::NOT_FOUND, format!("stub: no route {method} {path}")).into_response()
}

/// Starts the stub on a free port; returns its address and state.
fn start_stub() -> (String, Shared) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let stub = Shared::default();
    let state = (stub.clone(), base.clone());
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            let app = axum::Router::new().fallback(hub).with_state(state);
            axum::serve(listener, app).await.unwrap();
        });
    });
    (base, stub)
}

fn intent(args: &[&str], cwd: &Path, env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_intent"));
    c.args(args).current_dir(cwd).env("RUST_LOG", "warn").env_remove("HF_TOKEN").env_remove("HF_ENDPOINT");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn push_uploads_the_folder_and_card_then_serve_loads_it_from_the_hub_cache() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(&intent(&["pipeline", "--models-dir", "models", "--epochs", "3", "--no-gate"], d, &[]));
    let (base, stub) = start_stub();
    let env = [("HF_ENDPOINT", base.as_str()), ("HF_TOKEN", "hf_test_token")];

    // Bad settings are clean errors before anything is sent.
    let o =
        intent(&["models", "push", "example@current", "--repo-id", "acme/faq"], d, &[("HF_ENDPOINT", &base)]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("HF_TOKEN"));
    let o = intent(&["models", "push", "example@current", "--repo-id", "faq"], d, &env);
    assert!(String::from_utf8_lossy(&o.stderr).contains("expected ORG/NAME"), "{o:?}");
    assert!(stub.lock().unwrap().calls.is_empty());
    // A token the Hub refuses: the Hub's message.
    let o = intent(
        &["models", "push", "example@current", "--repo-id", "acme/faq"],
        d,
        &[env[0], ("HF_TOKEN", "bad")],
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("create repo: HTTP 401") && err.contains("Invalid credentials"), "{err}");

    stub.lock().unwrap().calls.clear();
    let out =
        ok(&intent(&["models", "push", "example@current", "--repo-id", "acme/faq", "--private"], d, &env));
    assert!(out.contains("serve it with: intent serve --model hf://acme/faq"), "{out}");
    let s = stub.lock().unwrap();
    assert_eq!(s.create, json!({"name": "faq", "organization": "acme", "private": true, "type": "model"}));
    assert!(s.calls.iter().filter(|c| c.1.starts_with("/api/")).all(|c| c.2 == "Bearer hf_test_token"));
    // Config, weights (through LFS, byte for byte), vocabulary, metrics and the model card; not
    // the training data or the report.
    let local = d.join("models/example/versions/1");
    for f in ["config.json", "model.safetensors", "vocab.txt", "metrics.json"] {
        assert_eq!(s.files.get(f), Some(&std::fs::read(local.join(f)).unwrap()), "{f}");
    }
    assert_eq!(s.lfs_files, ["model.safetensors"]);
    assert!(
        !s.files.keys().any(|f| f.starts_with("data/") || f.starts_with("report/")),
        "{:?}",
        s.files.keys()
    );
    let card = String::from_utf8(s.files["README.md"].clone()).unwrap();
    for needle in [
        "library_name: intent",
        "# acme/faq",
        "## Labels",
        "| test | accuracy |",
        "hf://acme/faq",
        "## Intended use",
    ] {
        assert!(card.contains(needle), "{needle} not in the card:\n{card}");
    }

    // The files as the hub cache holds them after a download; then offline use.
    let repo = d.join("cache/models--acme--faq");
    let snapshot = repo.join("snapshots").join(COMMIT);
    for (name, bytes) in &s.files {
        std::fs::create_dir_all(snapshot.join(name).parent().unwrap()).unwrap();
        std::fs::write(snapshot.join(name), bytes).unwrap();
    }
    drop(s);
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs/main"), COMMIT).unwrap();
    let cache = d.join("cache");
    let offline = [("HF_HUB_OFFLINE", "1"), ("HF_HUB_CACHE", cache.to_str().unwrap())];
    let from_hub = ok(&intent(&["predict", "--model", "hf://acme/faq", "where is my order"], d, &offline));
    let from_disk =
        ok(&intent(&["predict", "--model", "models/example@current", "where is my order"], d, &[]));
    assert_eq!(from_hub, from_disk);
    let o = intent(&["predict", "--model", "hf://acme/other", "hi"], d, &offline);
    assert!(String::from_utf8_lossy(&o.stderr).contains("HF_HUB_OFFLINE"), "{o:?}");

    let mut child = Command::new(env!("CARGO_BIN_EXE_intent"))
        .args(["serve", "--model", "hf://acme/faq", "--addr", "127.0.0.1:0", "--no-query-log"])
        .current_dir(d)
        .env("RUST_LOG", "info")
        .envs(offline)
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
    std::thread::spawn(move || lines.map_while(Result::ok).for_each(drop));
    let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(c, "GET /v1/models HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").unwrap();
    let mut answer = String::new();
    c.read_to_string(&mut answer).unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        answer.contains(r#""name":"acme/faq""#) && answer.contains(&format!(r#""version":"{COMMIT}""#)),
        "{answer}"
    );
}
