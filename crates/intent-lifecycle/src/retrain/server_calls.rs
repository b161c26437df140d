//! Calls to the running server: the admin token, pulling its labeled items, asking it to
//! reload.

use std::path::Path;

use intent_data::load_dataset;
use serde_json::Value;

use super::ServerNotify;

fn admin_token(server: &ServerNotify) -> Result<String, String> {
    match &server.token_file {
        Some(f) => std::fs::read_to_string(f)
            .map(|t| t.trim().to_string())
            .map_err(|e| format!("{}: the admin token file: {e}", f.display())),
        None => std::env::var(&server.token_env)
            .map_err(|_| format!("environment variable {} (admin token) is not set", server.token_env)),
    }
}

/// Fetches the server's labeled items into `dest` (replaced only by a complete export; an empty
/// export leaves the last copy). A bad line (a text no loader accepts) is left out and logged
/// rather than failing the whole pull. Returns the number of items kept.
pub(super) fn pull_labels(server: &ServerNotify, dest: &Path) -> Result<usize, String> {
    pull_export(server, "", dest)
}

/// The teacher labels the server's `--fallback-url` service gave, into `dest` (as
/// [`pull_labels`]).
pub(super) fn pull_teacher_labels(server: &ServerNotify, dest: &Path) -> Result<usize, String> {
    pull_export(server, "&source=teacher", dest)
}

/// The largest answer read from the server (an export of 100,000 lines fits many times).
const MAX_BODY_BYTES: u64 = 512 << 20;

/// `GET` of `path` on the server with the admin token, within `timeout_s`; the body.
fn get(server: &ServerNotify, path: &str, timeout_s: u64) -> Result<String, String> {
    let token = admin_token(server)?;
    let url = format!("{}{path}", server.url.trim_end_matches('/'));
    match ureq::get(&url)
        .set("authorization", &format!("Bearer {token}"))
        .timeout(std::time::Duration::from_secs(timeout_s))
        .call()
    {
        // Exports can pass ureq's 10 MiB `into_string` limit: read up to our own.
        Ok(r) => {
            use std::io::Read;
            let mut body = String::new();
            r.into_reader()
                .take(MAX_BODY_BYTES + 1)
                .read_to_string(&mut body)
                .map_err(|e| format!("{url}: {e}"))?;
            if body.len() as u64 > MAX_BODY_BYTES {
                return Err(format!("{url}: the answer is larger than {} MiB", MAX_BODY_BYTES >> 20));
            }
            Ok(body)
        }
        Err(ureq::Error::Status(code, r)) => {
            Err(format!("{url}: status {code}: {}", r.into_string().unwrap_or_default()))
        }
        Err(e) => Err(format!("{url}: {e}")),
    }
}

/// The server's logged answers of at least `min_confidence`, into `dest` (as [`pull_labels`]).
pub(super) fn pull_confident(
    server: &ServerNotify,
    min_confidence: f64,
    dest: &Path,
) -> Result<usize, String> {
    pull_export(server, &format!("&source=confident&min_confidence={min_confidence}"), dest)
}

/// The texts of the server's labeling queue that no one has labeled yet (at most 10,000).
pub(super) fn waiting_texts(server: &ServerNotify) -> Result<Vec<String>, String> {
    let body = get(server, "/admin/labeling/queue?limit=10000", 300)?;
    let v: Value = serde_json::from_str(&body).map_err(|e| format!("the labeling queue is not JSON: {e}"))?;
    Ok(v["items"]
        .as_array()
        .map(|items| items.iter().filter_map(|i| i["text"].as_str().map(str::to_string)).collect())
        .unwrap_or_default())
}

fn pull_export(server: &ServerNotify, query: &str, dest: &Path) -> Result<usize, String> {
    let path = format!("/admin/labeling/export?format=jsonl{query}");
    let url = format!("{}{path}", server.url.trim_end_matches('/'));
    let body = get(server, &path, 300)?;
    if body.trim().is_empty() {
        return Ok(0);
    }
    let dir = dest.parent().expect("a file in the state folder");
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let tmp = dir.join(format!(".{}.tmp", dest.file_name().map(|n| n.to_string_lossy()).unwrap_or_default()));
    std::fs::write(&tmp, &body).map_err(|e| format!("{}: {e}", tmp.display()))?;
    let loaded = load_dataset(
        &tmp,
        Some(intent_data::Format::Jsonl),
        &intent_data::LoadOptions { skip_invalid: true },
    );
    let _ = std::fs::remove_file(&tmp);
    let loaded = loaded.map_err(|e| format!("the export of {url} is not valid labeled data: {e}"))?;
    for s in &loaded.skipped {
        tracing::warn!("labels from {url}: left out {s}");
    }
    let kept = if loaded.skipped.is_empty() {
        body.into_bytes()
    } else {
        intent_data::formats::jsonl::to_jsonl(&loaded.data).into_bytes()
    };
    intent_data::durable::write_file(dest, &kept).map_err(|e| format!("{}: {e}", dest.display()))?;
    Ok(loaded.data.len())
}

/// Asks the server to reload and checks that it now serves version `n`: a server that serves a
/// plain folder (not `ROOT/NAME@current`) answers 200 with its old version.
pub(super) fn notify(server: &ServerNotify, n: u32) -> Result<(), String> {
    let token = admin_token(server)?;
    let url = format!("{}/admin/reload", server.url.trim_end_matches('/'));
    match ureq::post(&url)
        .set("authorization", &format!("Bearer {token}"))
        .timeout(std::time::Duration::from_secs(600))
        .call()
    {
        Ok(r) => {
            let body: Value = r.into_json().map_err(|e| format!("{url}: the answer is not JSON: {e}"))?;
            let served = &body["to"]["version"];
            if served.as_str() == Some(n.to_string().as_str()) {
                Ok(())
            } else {
                Err(format!(
                    "{url} answered, but serves version {served} of '{}', not version {n}: is it serving \
                        the registry alias ROOT/NAME@current?",
                    body["to"]["name"].as_str().unwrap_or("?")
                ))
            }
        }
        Err(ureq::Error::Status(code, r)) => {
            Err(format!("{url}: status {code}: {}", r.into_string().unwrap_or_default()))
        }
        Err(e) => Err(format!("{url}: {e}")),
    }
}

/// The server's `/admin/querylog/quality` answer for `version` of `model` (windows of
/// `window` queries).
pub(super) fn quality(
    server: &ServerNotify,
    model: &str,
    version: u32,
    window: usize,
) -> Result<Value, String> {
    let path = format!("/admin/querylog/quality?model={model}&version={version}&window={window}");
    let body = get(server, &path, 60)?;
    serde_json::from_str(&body).map_err(|e| format!("{}{path}: the answer is not JSON: {e}", server.url))
}
