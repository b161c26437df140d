//! What to serve: a model folder, or a version of a registry model named through an alias.
//!
//! Registry layout ([`intent_registry`]): `ROOT/NAME/versions/N/` holds version `N`
//! (immutable), and `ROOT/NAME/aliases/ALIAS` holds the version number an alias points at.
//! `models/faq@current` resolves through `models/faq/aliases/current`. A folder named by a number
//! (`NAME/versions/N`, or `NAME/N` as `intent pipeline` wrote versions before it used the
//! registry) is model NAME, version N; any other folder is named after itself, with a content hash
//! as its version.

use std::path::{Path, PathBuf};

use intent_registry::Registry;
use sha2::{Digest, Sha256};

use crate::ServeError;

/// A model to serve, as given on the command line or to `/admin/reload`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelSpec {
    /// A model folder.
    Dir(PathBuf),
    /// `ROOT/NAME@ALIAS`: the version an alias of a registry model points at.
    Alias {
        /// The model's registry folder (`ROOT/NAME`).
        model_dir: PathBuf,
        /// The alias (`current`, `previous`, …).
        alias: String,
    },
    /// `hf://ORG/NAME[@REVISION]`: a model folder on the Hugging Face Hub (as `intent models
    /// push` uploads it), through the hub cache (`HF_HUB_OFFLINE=1`: the cache only).
    Hub {
        /// `ORG/NAME`.
        repo_id: String,
        /// Branch, tag or commit (default `main`).
        revision: Option<String>,
    },
}

/// A spec resolved to a folder, with the name and version the server reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The model folder.
    pub path: PathBuf,
    /// Model name: the registry name, else the folder's name.
    pub name: String,
    /// Version: the registry version number, else `sha256:` and the first 12 hex digits of a
    /// hash of the folder's config and weights (so a retrained folder gets a new version).
    pub version: String,
}

impl ModelSpec {
    /// Parses `DIR` or `PATH@ALIAS` (the `@` in the last path component). An existing folder
    /// whose name holds an `@` is a folder.
    pub fn parse(spec: &str) -> Self {
        if let Some(rest) = spec.strip_prefix("hf://") {
            let (repo_id, revision) = match rest.rsplit_once('@') {
                Some((r, rev)) if !rev.is_empty() => (r, Some(rev.to_string())),
                _ => (rest.trim_end_matches('@'), None),
            };
            return ModelSpec::Hub { repo_id: repo_id.to_string(), revision };
        }
        let path = Path::new(spec);
        if path.is_dir() {
            return ModelSpec::Dir(path.to_path_buf());
        }
        if let Some(last) = path.file_name().and_then(|n| n.to_str()) {
            if let Some((name, alias)) = last.rsplit_once('@') {
                if !name.is_empty() && !alias.is_empty() {
                    return ModelSpec::Alias {
                        model_dir: path.with_file_name(name),
                        alias: alias.to_string(),
                    };
                }
            }
        }
        ModelSpec::Dir(path.to_path_buf())
    }

    /// The spec as text (as it would be given on the command line).
    pub fn display(&self) -> String {
        match self {
            ModelSpec::Dir(p) => p.display().to_string(),
            ModelSpec::Alias { model_dir, alias } => format!("{}@{alias}", model_dir.display()),
            ModelSpec::Hub { repo_id, revision: None } => format!("hf://{repo_id}"),
            ModelSpec::Hub { repo_id, revision: Some(r) } => format!("hf://{repo_id}@{r}"),
        }
    }

    /// Resolves to a folder. An alias is read now, so a reload after the alias moved picks up
    /// the new version.
    pub fn resolve(&self) -> Result<Resolved, ServeError> {
        let err = |message: String| ServeError::Spec { spec: self.display(), message };
        match self {
            ModelSpec::Dir(p) => {
                if !p.is_dir() {
                    return Err(err(format!("{} is not a folder", p.display())));
                }
                // A numbered version folder: `ROOT/NAME/versions/N` (registry) or `ROOT/NAME/N`
                // (what `intent pipeline` wrote before it used the registry) is model NAME, version N.
                let canonical = p.canonicalize().unwrap_or_else(|_| p.clone());
                let numbered = canonical
                    .file_name()
                    .and_then(|n| n.to_str())
                    .filter(|n| n.chars().all(|c| c.is_ascii_digit()));
                if let Some(n) = numbered {
                    let mut parent = canonical.parent();
                    if parent.is_some_and(|v| v.file_name().is_some_and(|n| n == "versions")) {
                        parent = parent.and_then(Path::parent);
                    }
                    if let Some(name) = parent.and_then(|m| m.file_name()).and_then(|n| n.to_str()) {
                        return Ok(Resolved {
                            path: p.clone(),
                            name: name.to_string(),
                            version: n.to_string(),
                        });
                    }
                }
                let name = canonical.file_name().map(|n| n.to_string_lossy().into_owned());
                Ok(Resolved {
                    path: p.clone(),
                    name: name.unwrap_or_else(|| "model".into()),
                    version: content_version(p)?,
                })
            }
            ModelSpec::Alias { model_dir, alias } => {
                let root = model_dir.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
                let name =
                    model_dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                let model = Registry::new(root).model(&name).map_err(|e| err(e.to_string()))?;
                let version = model.alias(alias).map_err(|e| err(e.to_string()))?.ok_or_else(|| {
                    let file = model_dir.join("aliases").join(alias);
                    err(format!(
                        "no alias file {} (expected a registry model with aliases/{alias})",
                        file.display()
                    ))
                })?;
                let path = model.version_dir(version);
                if !path.is_dir() {
                    return Err(err(format!(
                        "alias '{alias}' points at version {version}, but {} is missing",
                        path.display()
                    )));
                }
                Ok(Resolved { path, name, version: version.to_string() })
            }
            ModelSpec::Hub { repo_id, revision } => {
                let options = intent_models::hub::HubOptions::from_env(revision.as_deref());
                let path =
                    intent_models::hub::resolve_folder(repo_id, &options).map_err(|e| err(e.to_string()))?;
                // The snapshot folder is named by the commit: the version the server reports.
                let commit = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                Ok(Resolved { path, name: repo_id.clone(), version: commit })
            }
        }
    }
}

/// A version for a folder outside a registry: a hash of the files that define the model.
fn content_version(dir: &Path) -> Result<String, ServeError> {
    let mut h = Sha256::new();
    for name in ["config.json", "intent.json", "model.safetensors", "vocab.txt", "labels.json"] {
        let path = dir.join(name);
        if path.is_file() {
            let bytes =
                std::fs::read(&path).map_err(|source| ServeError::Io { path: path.clone(), source })?;
            h.update(name.as_bytes());
            h.update((bytes.len() as u64).to_le_bytes());
            h.update(&bytes);
        }
    }
    Ok(format!("sha256:{}", &hex::encode(h.finalize())[..12]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_dirs_and_aliases() {
        assert_eq!(ModelSpec::parse("models/faq"), ModelSpec::Dir("models/faq".into()));
        assert_eq!(
            ModelSpec::parse("models/faq@current"),
            ModelSpec::Alias { model_dir: "models/faq".into(), alias: "current".into() }
        );
        assert_eq!(ModelSpec::parse("a@b/faq"), ModelSpec::Dir("a@b/faq".into()));
        assert_eq!(ModelSpec::parse("models/faq@"), ModelSpec::Dir("models/faq@".into()));
        assert_eq!(ModelSpec::parse("models/faq@current").display(), "models/faq@current");
    }

    #[test]
    fn resolves_aliases_and_versions() {
        let root = tempfile::tempdir().unwrap();
        let m = root.path().join("faq");
        std::fs::create_dir_all(m.join("versions/3")).unwrap();
        std::fs::create_dir_all(m.join("aliases")).unwrap();
        std::fs::write(m.join("aliases/current"), "3\n").unwrap();
        let r = ModelSpec::parse(&format!("{}@current", m.display())).resolve().unwrap();
        assert_eq!((r.name.as_str(), r.version.as_str()), ("faq", "3"));
        assert_eq!(r.path, m.join("versions/3"));
        // The folder of a version, named directly, reports the same; so does the pipeline's
        // former `NAME/N` layout.
        let d = ModelSpec::Dir(m.join("versions/3")).resolve().unwrap();
        assert_eq!((d.name.as_str(), d.version.as_str()), ("faq", "3"));
        std::fs::create_dir_all(root.path().join("example/12")).unwrap();
        let d = ModelSpec::Dir(root.path().join("example/12")).resolve().unwrap();
        assert_eq!((d.name.as_str(), d.version.as_str()), ("example", "12"));

        // A real folder with an `@` in its name is a folder.
        std::fs::create_dir_all(root.path().join("odd@name")).unwrap();
        assert_eq!(
            ModelSpec::parse(root.path().join("odd@name").to_str().unwrap()),
            ModelSpec::Dir(root.path().join("odd@name"))
        );

        std::fs::write(m.join("aliases/previous"), "2").unwrap();
        let e = ModelSpec::parse(&format!("{}@previous", m.display())).resolve().unwrap_err().to_string();
        assert!(e.contains("version 2") && e.contains("missing"), "{e}");
        std::fs::write(m.join("aliases/bad"), "v3").unwrap();
        let e = ModelSpec::parse(&format!("{}@bad", m.display())).resolve().unwrap_err().to_string();
        assert!(e.contains("expected a version number"), "{e}");
        let e = ModelSpec::parse(&format!("{}@nope", m.display())).resolve().unwrap_err().to_string();
        assert!(e.contains("aliases/nope"), "{e}");
    }

    #[test]
    fn folder_version_follows_content() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("config.json"), "{}").unwrap();
        let v1 = ModelSpec::Dir(d.path().into()).resolve().unwrap().version;
        assert!(v1.starts_with("sha256:") && v1.len() == 19, "{v1}");
        std::fs::write(d.path().join("config.json"), "{ }").unwrap();
        let v2 = ModelSpec::Dir(d.path().into()).resolve().unwrap().version;
        assert_ne!(v1, v2);
        assert!(ModelSpec::Dir(d.path().join("missing")).resolve().is_err());
    }
}
