//! Deploying through the Hugging Face Hub: [`push`] uploads a model folder to a model repo (as
//! `huggingface_hub`'s `upload_folder` does), with a model card from [`model_card`]; a server
//! then loads it with `intent serve --model hf://ORG/NAME[@REVISION]`.
//!
//! The Hub's HTTP API, in order: create the repo (`POST /api/repos/create`; an existing repo is
//! fine), create the branch when the revision is not `main`, ask which files go through Git LFS
//! (`POST /api/models/{repo}/preupload/{revision}`), upload those with the LFS batch API
//! (`POST /{repo}.git/info/lfs/objects/batch`, then a `PUT` of the bytes and the optional verify
//! call), and make one commit of every file (`POST /api/models/{repo}/commit/{revision}`, NDJSON:
//! a header line, then small files inline in base64 and LFS files by their SHA-256).
//!
//! Written on `ureq` because the Rust `hf-hub` crate this workspace uses (0.4) only downloads.

use std::path::{Path, PathBuf};

use base64::Engine;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// Folders of a model folder that are not uploaded: the training data (`data/`) and the
/// evaluation report with its error examples (`report/`), which hold user texts.
const NOT_UPLOADED: [&str; 2] = ["data", "report"];

/// Errors of a push, naming the call or file that failed.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// A file of the folder could not be read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The Hub answered an error (or could not be reached).
    #[error("{call}: {message}")]
    Hub {
        /// What was asked (`create repo`, `commit`, …).
        call: &'static str,
        /// The status and the Hub's message.
        message: String,
    },
    /// A setting that cannot work.
    #[error("{0}")]
    Invalid(String),
}

/// Where and how to push.
#[derive(Debug, Clone)]
pub struct PushOptions {
    /// `ORG/NAME`.
    pub repo_id: String,
    /// The branch to commit to (created when missing); `main` by default.
    pub revision: String,
    /// Create the repo private.
    pub private: bool,
    /// A token with write access (`HF_TOKEN`).
    pub token: String,
    /// The Hub's address (`HF_ENDPOINT`, else `https://huggingface.co`).
    pub endpoint: String,
    /// The commit message.
    pub message: String,
}

/// How a file went up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushedFile {
    /// Path in the repo.
    pub path: String,
    /// Bytes.
    pub size: u64,
    /// Through Git LFS (else inline in the commit).
    pub lfs: bool,
}

/// What a push did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushReport {
    /// The files committed.
    pub files: Vec<PushedFile>,
    /// The commit's address, as the Hub answered it.
    pub commit_url: Option<String>,
    /// The commit hash.
    pub commit_oid: Option<String>,
}

/// The files to upload: every file under `folder` but those in [`NOT_UPLOADED`], sorted, as
/// (path in the repo with `/`, file).
fn files_of(folder: &Path) -> Result<Vec<(String, PathBuf)>, PushError> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, PathBuf)>) -> Result<(), PushError> {
        let io = |e| PushError::Io { path: dir.to_path_buf(), source: e };
        for entry in std::fs::read_dir(dir).map_err(io)? {
            let path = entry.map_err(io)?.path();
            let rel = path.strip_prefix(root).expect("under the root");
            let name =
                rel.components().map(|c| c.as_os_str().to_string_lossy()).collect::<Vec<_>>().join("/");
            if path.is_dir() {
                if dir != root || !NOT_UPLOADED.contains(&name.as_str()) {
                    walk(root, &path, out)?;
                }
            } else if path.is_file() {
                out.push((name, path));
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(folder, folder, &mut out)?;
    out.sort();
    Ok(out)
}

/// A path segment or branch name for a URL (`/` and other reserved bytes percent-encoded).
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

struct Hub<'a> {
    o: &'a PushOptions,
    agent: ureq::Agent,
}

impl Hub<'_> {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.o.endpoint.trim_end_matches('/'))
    }

    fn fail(call: &'static str, e: ureq::Error) -> PushError {
        let message = match e {
            ureq::Error::Status(code, r) => {
                let body = r.into_string().unwrap_or_default();
                let detail = serde_json::from_str::<Value>(&body)
                    .ok()
                    .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_string))
                    .unwrap_or(body);
                format!("HTTP {code}: {}", detail.trim())
            }
            other => other.to_string(),
        };
        PushError::Hub { call, message }
    }

    /// A JSON call with the token; `ok_conflict`: a 409 (already exists) is fine.
    fn post(
        &self,
        call: &'static str,
        path: &str,
        body: &Value,
        ok_conflict: bool,
    ) -> Result<Value, PushError> {
        let r = self
            .agent
            .post(&self.url(path))
            .set("authorization", &format!("Bearer {}", self.o.token))
            .send_json(body.clone());
        match r {
            Ok(r) => Ok(r.into_json::<Value>().unwrap_or(Value::Null)),
            Err(ureq::Error::Status(409, _)) if ok_conflict => Ok(Value::Null),
            Err(e) => Err(Self::fail(call, e)),
        }
    }
}

/// Uploads `folder` (but `data/` and `report/`) and `model_card` as `README.md` to the model repo
/// in one commit. The repo is created when missing, the branch too.
pub fn push(folder: &Path, model_card: &str, o: &PushOptions) -> Result<PushReport, PushError> {
    let (org, name) = o
        .repo_id
        .split_once('/')
        .filter(|(a, b)| intent_models::hub::is_repo_id(&o.repo_id) && !a.is_empty() && !b.is_empty())
        .ok_or_else(|| PushError::Invalid(format!("repo id '{}': expected ORG/NAME", o.repo_id)))?;
    if o.token.trim().is_empty() {
        return Err(PushError::Invalid("no Hub token: set HF_TOKEN (a token with write access)".into()));
    }
    let hub =
        Hub { o, agent: ureq::AgentBuilder::new().timeout(std::time::Duration::from_secs(600)).build() };
    let (repo, rev) = (o.repo_id.as_str(), encode(&o.revision));
    hub.post(
        "create repo",
        "/api/repos/create",
        &json!({ "name": name, "organization": org, "private": o.private, "type": "model" }),
        true,
    )?;
    if o.revision != "main" {
        hub.post("create branch", &format!("/api/models/{repo}/branch/{rev}"), &json!({}), true)?;
    }

    // The files with their bytes; README.md is the model card (a folder's own README.md yields).
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    for (path, file) in files_of(folder)? {
        if path != "README.md" {
            let bytes = std::fs::read(&file).map_err(|e| PushError::Io { path: file.clone(), source: e })?;
            files.push((path, bytes));
        }
    }
    files.push(("README.md".into(), model_card.as_bytes().to_vec()));
    let b64 = base64::engine::general_purpose::STANDARD;

    // Which go through LFS: the Hub decides from size and a sample of the content.
    let sample: Vec<Value> = files
        .iter()
        .map(|(p, b)| json!({ "path": p, "size": b.len(), "sample": b64.encode(&b[..b.len().min(512)]) }))
        .collect();
    let modes = hub.post(
        "preupload",
        &format!("/api/models/{repo}/preupload/{rev}"),
        &json!({ "files": sample }),
        false,
    )?;
    let lfs = |p: &str| {
        modes["files"].as_array().into_iter().flatten().any(|f| f["path"] == p && f["uploadMode"] == "lfs")
    };

    // LFS uploads: the batch call says where each object goes (no actions: the Hub has it).
    let objects: Vec<(String, &[u8])> = files
        .iter()
        .filter(|(p, _)| lfs(p))
        .map(|(_, b)| (hex::encode(Sha256::digest(b)), b.as_slice()))
        .collect();
    if !objects.is_empty() {
        let body = json!({
            "operation": "upload",
            "transfers": ["basic"],
            "hash_algo": "sha256",
            "ref": { "name": format!("refs/heads/{}", o.revision) },
            "objects": objects
                .iter()
                .map(|(oid, b)| json!({ "oid": oid, "size": b.len() }))
                .collect::<Vec<_>>(),
        });
        let batch = hub
            .agent
            .post(&hub.url(&format!("/{repo}.git/info/lfs/objects/batch")))
            .set("authorization", &format!("Bearer {}", o.token))
            .set("accept", "application/vnd.git-lfs+json")
            .set("content-type", "application/vnd.git-lfs+json")
            .send_string(&body.to_string())
            .map_err(|e| Hub::fail("LFS batch", e))?
            .into_json::<Value>()
            .map_err(|e| PushError::Hub { call: "LFS batch", message: e.to_string() })?;
        for obj in batch["objects"].as_array().into_iter().flatten() {
            if let Some(err) = obj.get("error") {
                return Err(PushError::Hub { call: "LFS batch", message: err.to_string() });
            }
            let oid = obj["oid"].as_str().unwrap_or_default();
            let Some((_, bytes)) = objects.iter().find(|(o, _)| o == oid) else { continue };
            let headers = |action: &Value| -> Vec<(String, String)> {
                action["header"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                    .collect()
            };
            if let Some(up) = obj["actions"].get("upload") {
                let mut req = hub.agent.put(up["href"].as_str().unwrap_or_default());
                for (k, v) in headers(up) {
                    req = req.set(&k, &v);
                }
                req.send_bytes(bytes).map_err(|e| Hub::fail("LFS upload", e))?;
            }
            if let Some(verify) = obj["actions"].get("verify") {
                let mut req = hub.agent.post(verify["href"].as_str().unwrap_or_default());
                for (k, v) in headers(verify) {
                    req = req.set(&k, &v);
                }
                req.set("content-type", "application/vnd.git-lfs+json")
                    .send_string(&json!({ "oid": oid, "size": bytes.len() }).to_string())
                    .map_err(|e| Hub::fail("LFS verify", e))?;
            }
        }
    }

    // One commit: a header line, then every file.
    let mut ndjson =
        json!({ "key": "header", "value": { "summary": o.message, "description": "" } }).to_string();
    let mut report = Vec::new();
    for (path, bytes) in &files {
        let line = if lfs(path) {
            let oid = hex::encode(Sha256::digest(bytes));
            let value = json!({ "path": path, "algo": "sha256", "oid": oid, "size": bytes.len() });
            json!({ "key": "lfsFile", "value": value })
        } else {
            let value = json!({ "path": path, "encoding": "base64", "content": b64.encode(bytes) });
            json!({ "key": "file", "value": value })
        };
        ndjson.push('\n');
        ndjson.push_str(&line.to_string());
        report.push(PushedFile { path: path.clone(), size: bytes.len() as u64, lfs: lfs(path) });
    }
    let answer = hub
        .agent
        .post(&hub.url(&format!("/api/models/{repo}/commit/{rev}")))
        .set("authorization", &format!("Bearer {}", o.token))
        .set("content-type", "application/x-ndjson")
        .send_string(&ndjson)
        .map_err(|e| Hub::fail("commit", e))?
        .into_json::<Value>()
        .unwrap_or(Value::Null);
    Ok(PushReport {
        files: report,
        commit_url: answer["commitUrl"].as_str().map(str::to_string),
        commit_oid: answer["commitOid"].as_str().map(str::to_string),
    })
}

/// A model card (`README.md`) for a model folder: Hub metadata, what the model is, its labels,
/// the figures of `metrics.json`, intended use and how to load it from Rust and Python.
pub fn model_card(folder: &Path, repo_id: &str) -> String {
    let read = |name: &str| -> Value {
        std::fs::read_to_string(folder.join(name))
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or(Value::Null)
    };
    let (config, metrics) = (read("config.json"), read("metrics.json"));
    let intent_json = read("intent.json");
    let meta = if intent_json.is_null() { &config } else { &intent_json };
    let kind = meta["kind"].as_str().unwrap_or("bert").to_string();
    let labels: Vec<&str> =
        meta["labels"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
    let multi = meta["multi_label"].as_bool().unwrap_or(false);
    let mut card = format!(
        "---\nlibrary_name: intent\npipeline_tag: text-classification\ntags:\n\
         - intent-classification\n- {kind}\n---\n\n# {repo_id}\n\n\
         An intent classifier ({kind}{}) trained with [intent](https://crates.io/crates/intent-cli) {}.\n",
        if multi { ", multi-label" } else { "" },
        meta["versions"]["intent"].as_str().unwrap_or(env!("CARGO_PKG_VERSION")),
    );
    card.push_str(&format!("\n## Labels\n\n{} labels: ", labels.len()));
    let shown: Vec<String> = labels.iter().take(50).map(|l| format!("`{l}`")).collect();
    card.push_str(&shown.join(", "));
    if labels.len() > 50 {
        card.push_str(&format!(" and {} more", labels.len() - 50));
    }
    card.push_str(&format!(
        "\n\n## Training data\n\nSHA-256 of the training data: `{}`.\n",
        meta["data_hash"].as_str().unwrap_or("unknown")
    ));
    // Reports in metrics.json: `test`, `validation`, or the report itself at the top level.
    let mut rows = Vec::new();
    for (name, r) in
        [("test", &metrics["test"]), ("validation", &metrics["validation"]), ("evaluation", &metrics)]
    {
        for key in ["accuracy", "macro_f1", "weighted_f1", "micro_f1"] {
            if let Some(v) = r[key].as_f64() {
                rows.push(format!("| {name} | {key} | {v:.4} |"));
            }
        }
    }
    if !rows.is_empty() {
        card.push_str("\n## Metrics\n\n| split | metric | value |\n|---|---|---|\n");
        card.push_str(&rows.join("\n"));
        card.push('\n');
    }
    card.push_str(
        "\n## Intended use\n\nClassifying short user messages into the labels above, with a confidence; \
         messages under the serving threshold should go to a fallback (a person, or another system). \
         The model knows only these labels and the kind of messages it was trained on.\n",
    );
    card.push_str(&format!(
        "\n## How to use\n\nServe it (Rust; `cargo install intent-cli`):\n\n```sh\n\
         intent serve --model hf://{repo_id}\n\
         curl -s localhost:8080/v1/predict -H 'content-type: application/json' \
         -d '{{\"text\": \"hello\"}}'\n```\n\n\
         In a Rust program (`intent-serve`; the folder comes through the hub cache):\n\n```rust\n\
         let model = intent_serve::Classifier::load(std::path::Path::new(\"hf://{repo_id}\"))?;\n\
         let prediction = model.predict(\"hello\")?;\n```\n"
    ));
    if kind == "bert" {
        card.push_str(&format!(
            "\nFrom Python, as any sequence classifier:\n\n```python\nfrom transformers import pipeline\n\
             classifier = pipeline(\"text-classification\", model=\"{repo_id}\")\n\
             print(classifier(\"hello\"))\n```\n"
        ));
    } else {
        card.push_str(
            "\nFrom Python, over HTTP (the folder is not a `transformers` model):\n\n```python\n\
             import requests\n\
             print(requests.post(\"http://localhost:8080/v1/predict\", json={\"text\": \"hello\"}).json())\n\
             ```\n",
        );
    }
    card
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn branch_names_are_encoded_for_urls() {
        assert_eq!(encode("main"), "main");
        assert_eq!(encode("release/v1 x"), "release%2Fv1%20x");
    }

    #[test]
    fn data_and_report_folders_stay_home() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for f in ["config.json", "data/train.jsonl", "report/errors.jsonl", "1_Pooling/config.json"] {
            std::fs::create_dir_all(d.join(f).parent().unwrap()).unwrap();
            std::fs::write(d.join(f), "x").unwrap();
        }
        let names: Vec<String> = files_of(d).unwrap().into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["1_Pooling/config.json", "config.json"]);
    }
}
