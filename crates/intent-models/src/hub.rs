//! Model folders by local path or Hugging Face hub repo id (through `hf-hub`).
//!
//! [`resolve`] turns what a user typed (`--encoder`, `--base`) into a local folder, the way
//! `transformers`' `from_pretrained` does:
//!
//! 1. an existing local folder is used as is;
//! 2. otherwise the text is a repo id (`owner/name` or `name`): the files a BERT folder needs
//!    (`config.json`, `model.safetensors`, `tokenizer.json` or `vocab.txt`, and the optional
//!    tokenizer and sentence-transformers files) come from the hub cache (`$HF_HOME/hub`, else
//!    `~/.cache/huggingface/hub`; the same layout Python uses, so models downloaded by Python are
//!    found) and, when missing there, are downloaded into it at the requested revision (branch,
//!    tag or commit; default `main`; `HF_ENDPOINT` and `HF_TOKEN` are honoured);
//! 3. with `HF_HUB_OFFLINE=1` (or [`HubOptions::offline`]) only the cache is read; when the hub
//!    cannot be reached the cache is used if it holds the files, and the error says both what the
//!    network said and that the path is not a local folder.
//!
//! Cached files of a branch are used without asking the hub for a newer commit; pass a commit
//! hash as the revision to pin one.

use std::path::{Path, PathBuf};

use hf_hub::api::sync::ApiBuilder;
use hf_hub::{Cache, Repo, RepoType};

use crate::error::{ModelError, Result};

/// Files every BERT folder needs.
const REQUIRED: [&str; 2] = ["config.json", "model.safetensors"];
/// Tokenizer files: the first that exists is enough.
const TOKENIZER: [&str; 2] = ["tokenizer.json", "vocab.txt"];
/// Taken when present.
const OPTIONAL: [&str; 5] = [
    "tokenizer_config.json",
    "special_tokens_map.json",
    "modules.json",
    "1_Pooling/config.json",
    "sentence_bert_config.json",
];

/// Where and how to look for hub models.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubOptions {
    /// Branch, tag or commit (default `main`).
    pub revision: String,
    /// The hub cache folder (`$HF_HOME/hub`, else `~/.cache/huggingface/hub`).
    pub cache_dir: PathBuf,
    /// Read the cache only (`HF_HUB_OFFLINE=1`).
    pub offline: bool,
    /// The hub's address (`HF_ENDPOINT`, else `https://huggingface.co`).
    pub endpoint: Option<String>,
}

impl HubOptions {
    /// Settings from the environment (`HF_HOME`, `HF_HUB_CACHE`, `HF_HUB_OFFLINE`, `HF_ENDPOINT`)
    /// with an optional revision.
    pub fn from_env(revision: Option<&str>) -> Self {
        let cache_dir = match std::env::var_os("HF_HUB_CACHE") {
            Some(dir) => PathBuf::from(dir),
            None => Cache::from_env().path().clone(),
        };
        let offline = std::env::var("HF_HUB_OFFLINE")
            .is_ok_and(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on"));
        HubOptions {
            revision: revision.unwrap_or("main").to_string(),
            cache_dir,
            offline,
            endpoint: std::env::var("HF_ENDPOINT").ok(),
        }
    }
}

/// Whether `s` can be a hub repo id (`name` or `owner/name`, letters, digits, `-_.`).
pub fn is_repo_id(s: &str) -> bool {
    let parts: Vec<&str> = s.split('/').collect();
    let ok = |p: &str| {
        !p.is_empty()
            && !p.starts_with('.')
            && p.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            && !p.contains("..")
    };
    (1..=2).contains(&parts.len()) && parts.iter().all(|p| ok(p))
}

/// A model folder for `spec`: the local folder when it exists, else the hub snapshot folder of
/// the repo id `spec` (see the module documentation).
pub fn resolve(spec: &str, options: &HubOptions) -> Result<PathBuf> {
    let local = Path::new(spec);
    if local.is_dir() {
        return Ok(local.to_path_buf());
    }
    if !is_repo_id(spec) {
        return Err(ModelError::io(
            local,
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "model folder not found (and not a hub repo id)",
            ),
        ));
    }
    let repo = Repo::with_revision(spec.to_string(), RepoType::Model, options.revision.clone());
    if let Some(dir) = from_cache(&repo, options) {
        tracing::info!("{spec}@{}: from the hub cache {}", options.revision, dir.display());
        return Ok(dir);
    }
    let missing = |why: String| {
        ModelError::io(
            local,
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("not a local folder, and hub repo {spec}@{}: {why}", options.revision),
            ),
        )
    };
    if options.offline {
        return Err(missing(format!(
            "not in the cache {} and HF_HUB_OFFLINE is set",
            options.cache_dir.display()
        )));
    }
    download(&repo, options).map_err(|e| missing(format!("{e} (cache: {})", options.cache_dir.display())))
}

/// A whole model folder of the hub: every file of `repo_id` at the revision, as `intent models
/// push` uploads them (any kind this toolkit writes). From the cache when its snapshot of the
/// revision holds `config.json` and `model.safetensors` (the only source with
/// `HF_HUB_OFFLINE`), else downloaded into it file by file from the repo's file list.
pub fn resolve_folder(repo_id: &str, options: &HubOptions) -> Result<PathBuf> {
    let missing = |why: String| {
        ModelError::io(
            repo_id,
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("hub repo {repo_id}@{}: {why}", options.revision),
            ),
        )
    };
    if !is_repo_id(repo_id) {
        return Err(missing("not a repo id (expected ORG/NAME)".into()));
    }
    let repo = Repo::with_revision(repo_id.to_string(), RepoType::Model, options.revision.clone());
    if let Some(dir) = snapshot(&repo, options).filter(|d| REQUIRED.iter().all(|f| d.join(f).is_file())) {
        return Ok(dir);
    }
    if options.offline {
        return Err(missing(format!(
            "not in the cache {} and HF_HUB_OFFLINE is set",
            options.cache_dir.display()
        )));
    }
    let remote = api(options).map_err(missing)?.repo(repo);
    let info = remote.info().map_err(|e| missing(e.to_string()))?;
    let mut dir = None;
    for file in &info.siblings {
        let path = remote.get(&file.rfilename).map_err(|e| missing(format!("{}: {e}", file.rfilename)))?;
        // `a/b.json` lies two levels below the snapshot folder.
        let depth = Path::new(&file.rfilename).components().count();
        dir.get_or_insert_with(|| path.ancestors().nth(depth).map(Path::to_path_buf).unwrap_or_default());
    }
    dir.ok_or_else(|| missing("the repo has no files".into()))
}

/// The cache's snapshot folder of a revision (a commit hash names its snapshot directly; a
/// branch or tag goes through `refs/`), when it exists.
fn snapshot(repo: &Repo, options: &HubOptions) -> Option<PathBuf> {
    let base = options.cache_dir.join(repo.folder_name());
    let commit = if repo.revision().len() == 40 && repo.revision().chars().all(|c| c.is_ascii_hexdigit()) {
        repo.revision().to_string()
    } else {
        std::fs::read_to_string(base.join("refs").join(repo.revision())).ok()?.trim().to_string()
    };
    Some(base.join("snapshots").join(commit)).filter(|d| d.is_dir())
}

fn api(options: &HubOptions) -> std::result::Result<hf_hub::api::sync::Api, String> {
    let mut builder = ApiBuilder::from_env()
        .with_cache_dir(options.cache_dir.clone())
        .with_progress(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    if let Some(endpoint) = &options.endpoint {
        builder = builder.with_endpoint(endpoint.clone());
    }
    builder.build().map_err(|e| e.to_string())
}

/// The snapshot folder holding every needed file, from the cache alone.
fn from_cache(repo: &Repo, options: &HubOptions) -> Option<PathBuf> {
    let dir = snapshot(repo, options)?;
    let complete =
        REQUIRED.iter().all(|f| dir.join(f).is_file()) && TOKENIZER.iter().any(|f| dir.join(f).is_file());
    complete.then_some(dir)
}

/// Downloads the needed files into the cache; returns their snapshot folder.
fn download(repo: &Repo, options: &HubOptions) -> std::result::Result<PathBuf, String> {
    let remote = api(options)?.repo(repo.clone());
    let mut dir = None;
    for file in REQUIRED {
        let path = remote.get(file).map_err(|e| format!("{file}: {e}"))?;
        dir.get_or_insert_with(|| path.parent().map(Path::to_path_buf).unwrap_or_default());
    }
    if !TOKENIZER.iter().any(|f| remote.get(f).is_ok()) {
        return Err("the repo has neither tokenizer.json nor vocab.txt".into());
    }
    for file in OPTIONAL {
        // Optional files that the repo lacks are simply absent.
        let _ = remote.get(file);
    }
    dir.ok_or_else(|| "no files".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(cache: &Path, offline: bool) -> HubOptions {
        HubOptions {
            revision: "main".into(),
            cache_dir: cache.to_path_buf(),
            offline,
            endpoint: Some("http://127.0.0.1:9".into()),
        }
    }

    /// A cache entry in the hub layout: refs/main → commit, snapshots/<commit>/files.
    fn cached(cache: &Path, repo: &str, files: &[&str]) -> PathBuf {
        let base = cache.join(format!("models--{}", repo.replace('/', "--")));
        let commit = "0123456789abcdef0123456789abcdef01234567";
        std::fs::create_dir_all(base.join("refs")).unwrap();
        std::fs::write(base.join("refs/main"), commit).unwrap();
        let snap = base.join("snapshots").join(commit);
        for f in files {
            std::fs::create_dir_all(snap.join(f).parent().unwrap()).unwrap();
            std::fs::write(snap.join(f), "{}").unwrap();
        }
        snap
    }

    #[test]
    fn repo_ids_are_told_from_paths() {
        for ok in ["bert-base-uncased", "sentence-transformers/all-MiniLM-L6-v2", "BAAI/bge-small-en-v1.5"] {
            assert!(is_repo_id(ok), "{ok}");
        }
        for bad in ["", "a/b/c", "./model", "../x", "/abs/path", "models/", "a b/c"] {
            assert!(!is_repo_id(bad), "{bad}");
        }
    }

    #[test]
    fn local_folder_wins_then_cache_then_clear_errors() {
        let tmp = tempfile::tempdir().unwrap();
        let local = tmp.path().join("local");
        std::fs::create_dir_all(&local).unwrap();
        let cache = tmp.path().join("hub");
        assert_eq!(resolve(local.to_str().unwrap(), &options(&cache, true)).unwrap(), local);

        // A complete cache entry is found offline, by branch and by commit.
        let snap = cached(&cache, "org/enc", &["config.json", "model.safetensors", "vocab.txt"]);
        assert_eq!(resolve("org/enc", &options(&cache, true)).unwrap(), snap);
        let by_commit = HubOptions {
            revision: "0123456789abcdef0123456789abcdef01234567".into(),
            ..options(&cache, true)
        };
        assert_eq!(resolve("org/enc", &by_commit).unwrap(), snap);

        // Offline with nothing (or an incomplete entry) cached: the error names the repo, the
        // revision, the cache and HF_HUB_OFFLINE.
        cached(&cache, "org/partial", &["config.json"]);
        for repo in ["org/absent", "org/partial"] {
            let e = resolve(repo, &options(&cache, true)).unwrap_err().to_string();
            assert!(
                e.contains(repo) && e.contains("@main") && e.contains("HF_HUB_OFFLINE") && e.contains("hub"),
                "{e}"
            );
        }
        let e = resolve("org/enc", &HubOptions { revision: "v2".into(), ..options(&cache, true) })
            .unwrap_err()
            .to_string();
        assert!(e.contains("org/enc@v2"), "{e}");

        // Online with an unreachable hub: the error says what the download said.
        let e = resolve("org/absent", &options(&cache, false)).unwrap_err().to_string();
        assert!(e.contains("not a local folder") && e.contains("config.json"), "{e}");

        // Neither a folder nor a repo id.
        let e = resolve("no/such/folder", &options(&cache, true)).unwrap_err().to_string();
        assert!(e.contains("no/such/folder") && e.contains("not found"), "{e}");
    }
}
