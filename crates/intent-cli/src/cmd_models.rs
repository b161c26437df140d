//! `intent models …`: the model registry (numbered versions, aliases, history).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use intent_registry::{RegisteredModel, Registry, VersionMeta};

/// Registry commands.
#[derive(Subcommand, Debug)]
pub enum ModelsCommand {
    /// Models of the registry, or the versions of one model.
    List(ListArgs),
    /// One model (aliases, versions, alias history) or one version (`NAME@ALIAS`, `NAME@N`), as JSON.
    Show(ShowArgs),
    /// Copy a model folder into the registry as the next version.
    Register(RegisterArgs),
    /// Point `current` at a version (the old current becomes `previous`).
    Promote(PromoteArgs),
    /// Point `current` back at `previous`.
    Rollback(NameArgs),
    /// Remove old versions no alias points at, keeping the newest N.
    Gc(GcArgs),
    /// Upload a version (`NAME@ALIAS`, `NAME@N`) or a model folder to a Hugging Face Hub model
    /// repo, with a generated model card (HF_TOKEN; HF_ENDPOINT for another hub).
    Push(PushArgs),
}

#[derive(Args, Debug)]
pub struct PushArgs {
    /// `NAME@ALIAS` or `NAME@N` of the registry, or a model folder.
    pub spec: String,
    /// The Hub repo, `ORG/NAME` (created when missing).
    #[arg(long)]
    pub repo_id: String,
    /// Create the repo private.
    #[arg(long)]
    pub private: bool,
    /// The branch to commit to (created when missing).
    #[arg(long, default_value = "main")]
    pub revision: String,
    /// The commit message (default: which version was pushed).
    #[arg(long)]
    pub message: Option<String>,
    #[command(flatten)]
    pub root: Root,
}

/// The registry root.
#[derive(Args, Debug)]
pub struct Root {
    /// Registry folder.
    #[arg(long, default_value = "models")]
    pub root: PathBuf,
}

#[derive(Args, Debug)]
pub struct ListArgs {
    /// A model name: list its versions.
    pub name: Option<String>,
    #[command(flatten)]
    pub root: Root,
}

#[derive(Args, Debug)]
pub struct ShowArgs {
    /// `NAME`, `NAME@ALIAS` or `NAME@N`.
    pub spec: String,
    #[command(flatten)]
    pub root: Root,
}

#[derive(Args, Debug)]
pub struct RegisterArgs {
    /// Model name.
    pub name: String,
    /// The model folder to copy in.
    pub dir: PathBuf,
    /// Make it `current` too.
    #[arg(long)]
    pub promote: bool,
    /// Note stored with the version.
    #[arg(long)]
    pub note: Option<String>,
    #[command(flatten)]
    pub root: Root,
}

#[derive(Args, Debug)]
pub struct PromoteArgs {
    /// Model name.
    pub name: String,
    /// Version number.
    pub version: u32,
    #[command(flatten)]
    pub root: Root,
}

#[derive(Args, Debug)]
pub struct NameArgs {
    /// Model name.
    pub name: String,
    #[command(flatten)]
    pub root: Root,
}

#[derive(Args, Debug)]
pub struct GcArgs {
    /// Model name.
    pub name: String,
    /// Versions to keep besides the aliased ones (the newest).
    #[arg(long)]
    pub keep: usize,
    #[command(flatten)]
    pub root: Root,
}

fn existing(root: &Root, name: &str) -> Result<RegisteredModel> {
    let m = Registry::new(&root.root).model(name)?;
    if m.version_numbers()?.is_empty() {
        anyhow::bail!("{}: no model '{name}' in the registry (no versions)", m.dir().display());
    }
    Ok(m)
}

fn accuracy(v: &VersionMeta) -> String {
    // Held-out score of a retrain, else the test score of `intent train`/`pipeline`.
    let from = |k: &str| {
        ["holdout", "test"]
            .iter()
            .find_map(|s| v.metrics.get(*s).and_then(|t| t.get(k)))
            .or_else(|| v.metrics.get(k))
            .and_then(|a| a.as_f64())
    };
    from("accuracy").or_else(|| from("micro_f1")).map_or("-".into(), |a| format!("{a:.4}"))
}

/// Runs a registry command.
pub fn run(c: ModelsCommand) -> Result<ExitCode> {
    match c {
        ModelsCommand::List(a) => match a.name {
            None => {
                let reg = Registry::new(&a.root.root);
                println!("{:<24} {:>8} {:>8} {:>8}", "model", "versions", "current", "previous");
                for name in reg.models()? {
                    let m = reg.model(&name)?;
                    let show = |v: Option<u32>| v.map_or("-".to_string(), |v| v.to_string());
                    println!(
                        "{name:<24} {:>8} {:>8} {:>8}",
                        m.version_numbers()?.len(),
                        show(m.alias("current")?),
                        show(m.alias("previous")?)
                    );
                }
            }
            Some(name) => {
                let m = existing(&a.root, &name)?;
                let aliases = m.aliases()?;
                println!(
                    "{:>7}  {:<20} {:<6} {:>8} {:>6}  aliases",
                    "version", "created (unix)", "kind", "accuracy", "parent"
                );
                for v in m.versions()? {
                    let names: Vec<&str> =
                        aliases.iter().filter(|(_, &n)| n == v.version).map(|(a, _)| a.as_str()).collect();
                    println!(
                        "{:>7}  {:<20} {:<6} {:>8} {:>6}  {}",
                        v.version,
                        v.created_unix,
                        v.kind,
                        accuracy(&v),
                        v.parent.map_or("-".into(), |p| p.to_string()),
                        names.join(",")
                    );
                }
            }
        },
        ModelsCommand::Push(a) => push(a)?,
        ModelsCommand::Show(a) => {
            let (name, which) = match a.spec.split_once('@') {
                Some((n, w)) => (n, Some(w)),
                None => (a.spec.as_str(), None),
            };
            let m = existing(&a.root, name)?;
            let value = match which {
                None => serde_json::json!({
                    "name": name,
                    "dir": m.dir(),
                    "aliases": m.aliases()?,
                    "versions": m.versions()?,
                    "history": m.history()?,
                }),
                Some(w) => {
                    let n = match w.parse::<u32>() {
                        Ok(n) => n,
                        Err(_) => {
                            m.alias(w)?.with_context(|| format!("model '{name}' has no alias '{w}'"))?
                        }
                    };
                    let mut v = serde_json::to_value(m.version(n)?)?;
                    v["dir"] = serde_json::json!(m.version_dir(n));
                    v
                }
            };
            println!("{}", serde_json::to_string_pretty(&value)?);
        }
        ModelsCommand::Register(a) => {
            let m = Registry::new(&a.root.root).model(&a.name)?;
            let lock = m.lock()?;
            m.cleanup(&lock)?;
            let parent = m.alias("current")?;
            // The staged copy is loaded and smoke-tested as the server would, before it appears.
            let serves = |staged: &std::path::Path| {
                let spec = intent_serve::ModelSpec::Dir(staged.to_path_buf());
                intent_server::LoadedModel::load(&spec, &Default::default())
                    .map(drop)
                    .map_err(|e| e.to_string())
            };
            let n = m
                .register_verified(&lock, &a.dir, parent, a.note, &serves)
                .with_context(|| format!("registering {}", a.dir.display()))?;
            if a.promote {
                m.promote(&lock, n, "register --promote")?;
            }
            println!("registered {} version {n}{}", a.name, if a.promote { " (current)" } else { "" });
        }
        ModelsCommand::Promote(a) => {
            let m = existing(&a.root, &a.name)?;
            let lock = m.lock()?;
            m.promote(&lock, a.version, "promote")?;
            println!("{} current → {}", a.name, a.version);
        }
        ModelsCommand::Rollback(a) => {
            let m = existing(&a.root, &a.name)?;
            let lock = m.lock()?;
            let n = m.rollback(&lock, "rollback")?;
            println!("{} current → {n} (rolled back)", a.name);
        }
        ModelsCommand::Gc(a) => {
            let m = existing(&a.root, &a.name)?;
            let lock = m.lock()?;
            m.cleanup(&lock)?;
            let removed = m.gc(&lock, a.keep)?;
            println!("removed {} version(s): {removed:?}", removed.len());
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `intent models push`.
fn push(a: PushArgs) -> Result<()> {
    let (folder, what) = if std::path::Path::new(&a.spec).is_dir() {
        (PathBuf::from(&a.spec), a.spec.clone())
    } else {
        let (name, which) = a.spec.split_once('@').with_context(|| {
            format!("'{}': expected NAME@ALIAS or NAME@N of the registry, or a model folder", a.spec)
        })?;
        let m = existing(&a.root, name)?;
        let n = match which.parse::<u32>() {
            Ok(n) => n,
            Err(_) => m.alias(which)?.with_context(|| format!("model '{name}' has no alias '{which}'"))?,
        };
        (m.version_dir(n), format!("{name} version {n}"))
    };
    let token = std::env::var("HF_TOKEN").ok().filter(|t| !t.trim().is_empty()).with_context(|| {
        "no Hub token: set HF_TOKEN to a token with write access (huggingface.co/settings/tokens)"
    })?;
    let options = intent_lifecycle::hub::PushOptions {
        repo_id: a.repo_id.clone(),
        revision: a.revision.clone(),
        private: a.private,
        token,
        endpoint: std::env::var("HF_ENDPOINT").unwrap_or_else(|_| "https://huggingface.co".into()),
        message: a.message.clone().unwrap_or_else(|| format!("Upload {what} with intent")),
    };
    let card = intent_lifecycle::hub::model_card(&folder, &a.repo_id);
    let report = intent_lifecycle::hub::push(&folder, &card, &options)
        .with_context(|| format!("pushing {} to {}", folder.display(), a.repo_id))?;
    for f in &report.files {
        println!("{:>12} bytes  {}{}", f.size, f.path, if f.lfs { "  (LFS)" } else { "" });
    }
    println!(
        "pushed {what} to {}@{} ({}); serve it with: intent serve --model hf://{}{}",
        a.repo_id,
        a.revision,
        report.commit_url.as_deref().unwrap_or("commit made"),
        a.repo_id,
        if a.revision == "main" { String::new() } else { format!("@{}", a.revision) }
    );
    Ok(())
}
