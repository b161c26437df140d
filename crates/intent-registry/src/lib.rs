//! The model registry: numbered, immutable versions of a model and aliases that point at them.
//!
//! Layout of `ROOT/NAME/`:
//! - `versions/N/`: version `N` (a model folder plus `version.json`: parent, creation time, data
//!   hash, kind, metrics, training parameters). It appears only by a rename of a complete
//!   staging folder, so a crash never leaves a partial version visible; numbers only grow
//!   (`next_version` keeps the counter, so a removed number is never reused).
//! - `aliases/ALIAS`: the version number an alias (`current`, `previous`, …) points at, moved by
//!   write + fsync + rename.
//! - `aliases.log`: one JSON line per alias move (append-only).
//! - `.lock`: held while a process changes the model ([`RegisteredModel::lock`]).
//! - `.staging-N`, `.trash-N`: leftovers of an interrupted change, removed by
//!   [`RegisteredModel::cleanup`].
//!
//! A spec `ROOT/NAME@ALIAS` names the version an alias points at (intent-serve resolves it).
//!
//! ```
//! use intent_registry::Registry;
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let root = tempfile::tempdir()?;
//! let model = Registry::new(root.path()).model("faq")?;
//! assert_eq!(model.alias("current")?, None); // nothing registered yet
//! assert!(model.versions()?.is_empty());
//! # Ok(())
//! # }
//! ```

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use intent_data::durable;
use intent_models::folder::{now_unix, ModelConfig};
use intent_models::{ModelError, ModelKind, Result};

#[doc(hidden)]
pub mod failpoints;
use failpoints::halt_point;

/// What `versions/N/version.json` records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VersionMeta {
    /// The version number.
    pub version: u32,
    /// The version this one was trained to replace (the `current` of that time).
    pub parent: Option<u32>,
    /// Registration time, Unix seconds.
    pub created_unix: u64,
    /// Model kind from `config.json` (`mlp`, `svm`, `bert`, …).
    pub kind: ModelKind,
    /// SHA-256 of the training data, from `config.json`.
    pub data_hash: String,
    /// The folder's `metrics.json`.
    pub metrics: serde_json::Value,
    /// Training parameters from `config.json`.
    pub params: serde_json::Value,
    /// Free text: where the version came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// One line of `aliases.log`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AliasMove {
    /// When, Unix seconds.
    pub time_unix: u64,
    /// Which alias.
    pub alias: String,
    /// Where it pointed before.
    pub from: Option<u32>,
    /// Where it points now (`None`: the alias was removed).
    pub to: Option<u32>,
    /// Why (promote, rollback, retrain …).
    pub reason: String,
}

/// A registry root folder (`models/`).
#[derive(Debug, Clone)]
pub struct Registry {
    root: PathBuf,
}

/// One model of a registry.
#[derive(Debug, Clone)]
pub struct RegisteredModel {
    name: String,
    dir: PathBuf,
}

/// Holds `ROOT/NAME/.lock` until dropped.
#[derive(Debug)]
pub struct RegistryLock {
    _file: fs::File,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ModelError + '_ {
    move |e| ModelError::io(path, e)
}

/// Model names: letters, digits, `-`, `_`, `.`; not starting with a dot.
fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && !name.starts_with('.')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if ok {
        Ok(())
    } else {
        Err(ModelError::invalid(
            name,
            "model name: expected letters, digits, '-', '_' or '.' (not starting with '.')",
        ))
    }
}

/// Writes `path` crash-safely ([`intent_data::durable::write_file`]), with the `write:NAME`
/// halt point of the crash tests between the synced temporary file and the rename.
fn atomic_write(path: &Path, bytes: &[u8]) -> Result<()> {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    intent_data::durable::write_file_then(path, bytes, || halt_point(&format!("write:{name}")))
        .map_err(io(path))
}

/// Copies the files of `from` into `to`, recursively. A symbolic link to a file is copied as the
/// bytes it points at (a version must not depend on a file outside it); a link to a folder, a
/// dangling link or anything else that is not a file or folder is an error naming it.
fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    fs::create_dir_all(to).map_err(io(to))?;
    for entry in fs::read_dir(from).map_err(io(from))? {
        let entry = entry.map_err(io(from))?;
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        let kind = entry.file_type().map_err(io(&src))?;
        let target_is_file = kind.is_symlink() && fs::metadata(&src).is_ok_and(|m| m.is_file());
        if kind.is_dir() {
            copy_tree(&src, &dst)?;
        } else if kind.is_file() || target_is_file {
            fs::copy(&src, &dst).map_err(io(&src))?;
            fs::File::open(&dst).and_then(|f| f.sync_all()).map_err(io(&dst))?;
        } else {
            let what =
                if kind.is_symlink() { "a link to a folder or to nothing" } else { "not a regular file" };
            return Err(ModelError::invalid(&src, format!("{what}: a model version holds files only")));
        }
    }
    Ok(())
}

impl Registry {
    /// A registry rooted at `root` (created on the first registration).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Registry { root: root.into() }
    }

    /// The root folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The model `name` (which may not exist yet).
    pub fn model(&self, name: &str) -> Result<RegisteredModel> {
        check_name(name)?;
        Ok(RegisteredModel { name: name.to_string(), dir: self.root.join(name) })
    }

    /// Names of the models that have a `versions/` folder, sorted.
    pub fn models(&self) -> Result<Vec<String>> {
        if !self.root.is_dir() {
            return Ok(Vec::new());
        }
        let mut names = Vec::new();
        for entry in fs::read_dir(&self.root).map_err(io(&self.root))? {
            let entry = entry.map_err(io(&self.root))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if check_name(&name).is_ok() && entry.path().join("versions").is_dir() {
                names.push(name);
            }
        }
        names.sort();
        Ok(names)
    }
}

impl RegisteredModel {
    /// The model's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `ROOT/NAME`.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The folder of version `n`.
    pub fn version_dir(&self, n: u32) -> PathBuf {
        self.dir.join("versions").join(n.to_string())
    }

    /// Takes the model's lock, or fails at once when another process holds it.
    pub fn lock(&self) -> Result<RegistryLock> {
        fs::create_dir_all(&self.dir).map_err(io(&self.dir))?;
        let path = self.dir.join(".lock");
        let file =
            fs::OpenOptions::new().create(true).truncate(false).write(true).open(&path).map_err(io(&path))?;
        match file.try_lock() {
            Ok(()) => Ok(RegistryLock { _file: file }),
            Err(fs::TryLockError::WouldBlock) => Err(ModelError::invalid(
                &path,
                "another process is changing this model (lock held); try again when it is done",
            )),
            Err(fs::TryLockError::Error(e)) => Err(ModelError::io(&path, e)),
        }
    }

    /// Version numbers present, ascending.
    pub fn version_numbers(&self) -> Result<Vec<u32>> {
        let dir = self.dir.join("versions");
        if !dir.is_dir() {
            return Ok(Vec::new());
        }
        let mut v: Vec<u32> = Vec::new();
        for entry in fs::read_dir(&dir).map_err(io(&dir))? {
            let entry = entry.map_err(io(&dir))?;
            if let Ok(n) = entry.file_name().to_string_lossy().parse::<u32>() {
                v.push(n);
            }
        }
        v.sort_unstable();
        Ok(v)
    }

    /// `version.json` of version `n`.
    pub fn version(&self, n: u32) -> Result<VersionMeta> {
        let path = self.version_dir(n).join("version.json");
        let text = fs::read_to_string(&path).map_err(io(&path))?;
        serde_json::from_str(&text).map_err(|e| ModelError::invalid(&path, format!("line {}: {e}", e.line())))
    }

    /// Every version's metadata, ascending.
    pub fn versions(&self) -> Result<Vec<VersionMeta>> {
        self.version_numbers()?.into_iter().map(|n| self.version(n)).collect()
    }

    /// Where `alias` points, if it exists.
    pub fn alias(&self, alias: &str) -> Result<Option<u32>> {
        check_name(alias)?;
        let path = self.dir.join("aliases").join(alias);
        match fs::read_to_string(&path) {
            Ok(text) => text.trim().parse().map(Some).map_err(|_| {
                ModelError::invalid(&path, format!("expected a version number, found '{}'", text.trim()))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(ModelError::io(&path, e)),
        }
    }

    /// Every alias and its version.
    pub fn aliases(&self) -> Result<BTreeMap<String, u32>> {
        let dir = self.dir.join("aliases");
        let mut out = BTreeMap::new();
        if !dir.is_dir() {
            return Ok(out);
        }
        for entry in fs::read_dir(&dir).map_err(io(&dir))? {
            let name = entry.map_err(io(&dir))?.file_name().to_string_lossy().into_owned();
            if check_name(&name).is_ok() {
                if let Some(v) = self.alias(&name)? {
                    out.insert(name, v);
                }
            }
        }
        Ok(out)
    }

    /// The alias moves, oldest first.
    pub fn history(&self) -> Result<Vec<AliasMove>> {
        let path = self.dir.join("aliases.log");
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(ModelError::io(&path, e)),
        };
        // A line cut short by a crash mid-append is the only one that may fail to parse: skipped.
        Ok(text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect())
    }

    /// Registers a copy of the model folder `from` as the next version and returns its number.
    /// The caller holds [`Self::lock`]. Nothing is visible until the final rename.
    pub fn register(
        &self,
        lock: &RegistryLock,
        from: &Path,
        parent: Option<u32>,
        note: Option<String>,
    ) -> Result<u32> {
        self.register_verified(lock, from, parent, note, &|_| Ok(()))
    }

    /// [`Self::register`], with `verify` run on the staged copy (complete and synced) before it
    /// becomes visible: a copy that `verify` refuses (one that does not load, say) never becomes a
    /// version, and the error names the folder and says why.
    pub fn register_verified(
        &self,
        _lock: &RegistryLock,
        from: &Path,
        parent: Option<u32>,
        note: Option<String>,
        verify: &dyn Fn(&Path) -> std::result::Result<(), String>,
    ) -> Result<u32> {
        // A classifier folder, a fine-tuned Hugging Face folder or an NCF folder; the error is
        // the classifier reader's (the usual case).
        let config = match ModelConfig::read(from) {
            Ok(c) => FolderSummary::from(c),
            Err(first) => read_hf_kind(from)
                .map(FolderSummary::from)
                .or_else(|_| read_ncf_kind(from))
                .map_err(|_| ModelError::invalid(from, format!("not a model folder: {first}")))?,
        };
        let versions = self.dir.join("versions");
        fs::create_dir_all(&versions).map_err(io(&versions))?;
        let counter = self.dir.join("next_version");
        let stored: u32 = fs::read_to_string(&counter).ok().and_then(|t| t.trim().parse().ok()).unwrap_or(1);
        let n = stored.max(self.version_numbers()?.last().map_or(1, |m| m + 1));
        atomic_write(&counter, format!("{}\n", n + 1).as_bytes())?;
        let staging = self.dir.join(format!(".staging-{n}"));
        if staging.exists() {
            fs::remove_dir_all(&staging).map_err(io(&staging))?;
        }
        let result = (|| {
            copy_tree(from, &staging)?;
            let metrics = fs::read_to_string(from.join("metrics.json"))
                .ok()
                .and_then(|t| serde_json::from_str(&t).ok())
                .unwrap_or_default();
            let meta = VersionMeta {
                version: n,
                parent,
                created_unix: now_unix(),
                kind: config.kind,
                data_hash: config.data_hash.clone(),
                metrics,
                params: config.training.clone(),
                note,
            };
            let text = serde_json::to_string_pretty(&meta).expect("serializes");
            atomic_write(&staging.join("version.json"), text.as_bytes())?;
            durable::sync_tree(&staging).map_err(io(&staging))?;
            verify(&staging)
                .map_err(|e| ModelError::invalid(from, format!("the copy to register does not load: {e}")))?;
            halt_point("register:staged");
            let target = self.version_dir(n);
            fs::rename(&staging, &target).map_err(io(&target))?;
            durable::sync_dir(&versions).map_err(io(&versions))?;
            Ok(n)
        })();
        if result.is_err() {
            let _ = fs::remove_dir_all(&staging);
        }
        result
    }

    /// Points `alias` at version `to` (which must exist) and logs the move.
    pub fn set_alias(&self, _lock: &RegistryLock, alias: &str, to: u32, reason: &str) -> Result<()> {
        check_name(alias)?;
        if !self.version_dir(to).join("version.json").is_file() {
            return Err(ModelError::invalid(
                self.version_dir(to),
                format!("no version {to} of model '{}'", self.name),
            ));
        }
        let from = self.alias(alias)?;
        let dir = self.dir.join("aliases");
        fs::create_dir_all(&dir).map_err(io(&dir))?;
        atomic_write(&dir.join(alias), format!("{to}\n").as_bytes())?;
        self.log_move(alias, from, Some(to), reason)
    }

    /// Removes `alias` (nothing to do when it does not exist) and logs the move.
    pub fn remove_alias(&self, _lock: &RegistryLock, alias: &str, reason: &str) -> Result<()> {
        check_name(alias)?;
        let Some(from) = self.alias(alias)? else { return Ok(()) };
        let dir = self.dir.join("aliases");
        let path = dir.join(alias);
        fs::remove_file(&path).map_err(io(&path))?;
        durable::sync_dir(&dir).map_err(io(&dir))?;
        self.log_move(alias, Some(from), None, reason)
    }

    /// Puts `current` and `previous` back exactly as `before` had them (an alias missing from
    /// `before` is removed), e.g. after a deployment the server refused.
    pub fn restore_aliases(
        &self,
        lock: &RegistryLock,
        before: &BTreeMap<String, u32>,
        reason: &str,
    ) -> Result<()> {
        for alias in ["previous", "current"] {
            match before.get(alias) {
                Some(&v) if self.alias(alias)? != Some(v) => self.set_alias(lock, alias, v, reason)?,
                Some(_) => {}
                None => self.remove_alias(lock, alias, reason)?,
            }
        }
        Ok(())
    }

    fn log_move(&self, alias: &str, from: Option<u32>, to: Option<u32>, reason: &str) -> Result<()> {
        let line = serde_json::to_string(&AliasMove {
            time_unix: now_unix(),
            alias: alias.to_string(),
            from,
            to,
            reason: reason.to_string(),
        })
        .expect("serializes");
        let log = self.dir.join("aliases.log");
        let mut f = fs::OpenOptions::new().create(true).append(true).open(&log).map_err(io(&log))?;
        f.write_all(format!("{line}\n").as_bytes()).and_then(|()| f.sync_all()).map_err(io(&log))
    }

    /// Makes version `n` current; the old current becomes `previous`.
    pub fn promote(&self, lock: &RegistryLock, n: u32, reason: &str) -> Result<()> {
        if !self.version_dir(n).join("version.json").is_file() {
            return Err(ModelError::invalid(
                self.version_dir(n),
                format!("no version {n} of model '{}'", self.name),
            ));
        }
        let old = self.alias("current")?;
        if old == Some(n) {
            return Ok(());
        }
        // `previous` moves first: a crash in between leaves both on the old current.
        if let Some(old) = old.filter(|&o| self.alias("previous").ok().flatten() != Some(o)) {
            self.set_alias(lock, "previous", old, reason)?;
            halt_point("promote:previous");
        }
        self.set_alias(lock, "current", n, reason)
    }

    /// Makes `previous` current again (and the rolled-back version `previous`); returns the
    /// version now current.
    pub fn rollback(&self, lock: &RegistryLock, reason: &str) -> Result<u32> {
        let prev = self.alias("previous")?.ok_or_else(|| {
            ModelError::invalid(self.dir.join("aliases/previous"), "no previous version to roll back to")
        })?;
        self.promote(lock, prev, reason)?;
        Ok(prev)
    }

    /// Removes versions beyond the newest `keep` that no alias points at; returns their numbers.
    /// Each is renamed to `.trash-N` first, so no half-removed version stays visible.
    pub fn gc(&self, _lock: &RegistryLock, keep: usize) -> Result<Vec<u32>> {
        let aliased: Vec<u32> = self.aliases()?.into_values().collect();
        let numbers = self.version_numbers()?;
        let cut = numbers.len().saturating_sub(keep);
        let mut removed = Vec::new();
        for &n in &numbers[..cut] {
            if aliased.contains(&n) {
                continue;
            }
            let trash = self.dir.join(format!(".trash-{n}"));
            fs::rename(self.version_dir(n), &trash).map_err(io(&trash))?;
            fs::remove_dir_all(&trash).map_err(io(&trash))?;
            removed.push(n);
        }
        Ok(removed)
    }

    /// Removes what an interrupted change left (`.staging-N`, `.trash-N`, temporary alias
    /// files); returns the paths removed.
    pub fn cleanup(&self, _lock: &RegistryLock) -> Result<Vec<PathBuf>> {
        let mut removed = Vec::new();
        for dir in [self.dir.clone(), self.dir.join("aliases")] {
            let Ok(entries) = fs::read_dir(&dir) else { continue };
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                let path = entry.path();
                if name.starts_with(".staging-") || name.starts_with(".trash-") {
                    fs::remove_dir_all(&path).map_err(io(&path))?;
                    removed.push(path);
                } else if name.starts_with('.') && name.contains(".tmp-") {
                    fs::remove_file(&path).map_err(io(&path))?;
                    removed.push(path);
                }
            }
        }
        Ok(removed)
    }
}

/// What the registry records of a model folder's `config.json`.
struct FolderSummary {
    kind: ModelKind,
    data_hash: String,
    training: serde_json::Value,
}

impl From<ModelConfig> for FolderSummary {
    fn from(c: ModelConfig) -> Self {
        FolderSummary { kind: c.kind(), data_hash: c.data_hash, training: c.training }
    }
}

/// An NCF recommender folder ([`intent_models::ncf::folder`]): `kind` `ncf`, no labels.
fn read_ncf_kind(dir: &Path) -> Result<FolderSummary> {
    let path = dir.join("config.json");
    let text = fs::read_to_string(&path).map_err(io(&path))?;
    let c: intent_models::ncf::folder::NcfConfig =
        serde_json::from_str(&text).map_err(|e| ModelError::invalid(&path, e.to_string()))?;
    if c.kind != ModelKind::Ncf {
        return Err(ModelError::invalid(&path, format!("kind '{}' is not ncf", c.kind)));
    }
    Ok(FolderSummary { kind: c.kind, data_hash: c.data_hash, training: c.training })
}

/// A Hugging Face folder (fine-tuned BERT) has `intent.json` for this toolkit's metadata.
fn read_hf_kind(dir: &Path) -> Result<ModelConfig> {
    let path = dir.join("intent.json");
    let text = fs::read_to_string(&path).map_err(io(&path))?;
    serde_json::from_str(&text).map_err(|e| ModelError::invalid(&path, e.to_string()))
}
